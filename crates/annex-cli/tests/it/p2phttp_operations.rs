//! `annex p2phttp` as a service is run: stopped by SIGTERM while a transfer
//! is in flight, started by systemd socket activation, and receiving very
//! large content in constant memory. Every test runs the real `annex`
//! binary in a repository made by the real git-annex, and talks raw
//! HTTP/1.1 to it over 127.0.0.1.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use annex_test_support::{
    git, hex, init_annex_repo, read_log, read_response_head, spawn_annex_p2phttp, KillOnDrop,
    PseudoRandom, ResponseHead,
};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

/// The UUID the tests give as `clientuuid`.
const CLIENT_UUID: &str = "5e0bb8b4-7c57-4b59-a5d4-2a4b1f6e0c31";

/// Deterministic content of any length, made without holding it: a
/// pseudo-random block of 1 MiB repeated, each copy stamped with its index
/// in its first 8 bytes so that no two blocks are alike.
struct Content {
    block: Vec<u8>,
    len: u64,
}

impl Content {
    fn new(len: u64, seed: u64) -> Content {
        let mut random = PseudoRandom::new(seed);
        let mut block = Vec::with_capacity(MIB as usize);
        while block.len() < MIB as usize {
            block.extend_from_slice(&random.next_u64().to_le_bytes());
        }
        Content { block, len }
    }

    /// Calls `f` with the content, block by block.
    fn for_each_block(&self, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut buf = self.block.clone();
        let mut offset = 0u64;
        let mut index = 0u64;
        while offset < self.len {
            buf[..8].copy_from_slice(&index.to_le_bytes());
            let n = (self.len - offset).min(MIB) as usize;
            f(&buf[..n])?;
            offset += n as u64;
            index += 1;
        }
        Ok(())
    }

    fn sha256_hex(&self) -> String {
        let mut h = Sha256::new();
        self.for_each_block(|b| {
            h.update(b);
            Ok(())
        })
        .unwrap();
        hex(&h.finalize())
    }
}

/// The SHA-256 a SHA256E key names (the part after `--`, without an
/// extension).
fn key_sha256(key: &str) -> &str {
    let (_, hash) = key.split_once("--").expect("a SHA256E key");
    hash.split('.').next().unwrap()
}

/// A git-annex repository made by git-annex, in a temporary directory.
struct Repo {
    tmp: tempfile::TempDir,
    path: PathBuf,
    uuid: String,
}

impl Repo {
    fn new() -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let (path, uuid) = init_annex_repo(tmp.path(), "repo", "served");
        Repo { tmp, path, uuid }
    }

    /// Adds `content` as the file `name` with `git annex add`; its key.
    fn add(&self, name: &str, content: &Content) -> String {
        let mut f = std::fs::File::create(self.path.join(name)).unwrap();
        content.for_each_block(|b| f.write_all(b)).unwrap();
        drop(f);
        git(
            &self.path,
            &["annex", "add", "-q", "--backend", "SHA256E", name],
        );
        git(&self.path, &["commit", "-q", "-m", name]);
        git(&self.path, &["annex", "lookupkey", name])
            .trim()
            .to_owned()
    }

    fn log(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// An `annex p2phttp` process this test started, killed (by its pid) when
/// dropped if it is still running.
struct Server {
    child: KillOnDrop,
    log: PathBuf,
    /// The port it printed it listens on.
    port: u16,
}

impl Server {
    /// Starts `annex p2phttp ARGS` in `repo`, letting `setup` adjust the
    /// command, and waits for it to print where it listens.
    fn start(repo: &Repo, args: &[&str], setup: impl FnOnce(&mut Command)) -> Server {
        let n = std::fs::read_dir(repo.tmp.path()).unwrap().count();
        let log = repo.log(&format!("server{n}.log"));
        let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
        c.arg("p2phttp").args(args).current_dir(&repo.path);
        setup(&mut c);
        let (child, port) = spawn_annex_p2phttp(c, &log);
        Server { child, log, port }
    }

    /// `annex p2phttp --wideopen` on a free port of 127.0.0.1, with
    /// `extra` options.
    fn start_wide_open(repo: &Repo, extra: &[&str]) -> Server {
        let mut args = vec!["--port", "0", "--bind", "127.0.0.1", "--wideopen"];
        args.extend(extra);
        Server::start(repo, &args, |_| {})
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log_text(&self) -> String {
        read_log(&self.log)
    }

    fn sigterm(&self) {
        // SAFETY: kill(2) on the pid of a child this test started and has
        // not reaped yet (so the pid is still ours).
        let r = unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        assert_eq!(r, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the process to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// A field of /proc/PID/status, in KiB.
    fn status_kib(&self, field: &str) -> Option<u64> {
        proc_status_kib(self.pid(), field)
    }
}

fn proc_status_kib(pid: i32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How a response body ends.
enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    UntilClose,
}

/// A response body, read as it is framed; a body cut short is an
/// `UnexpectedEof` error.
struct Body<R> {
    r: R,
    framing: Framing,
}

impl<R: BufRead> Body<R> {
    fn new(r: R, head: &ResponseHead) -> Body<R> {
        let framing = if head
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            Framing::Chunked {
                left: 0,
                done: false,
            }
        } else if let Some(len) = head.header("content-length") {
            Framing::Length(len.parse().unwrap())
        } else {
            Framing::UntilClose
        };
        Body { r, framing }
    }

    fn into_inner(self) -> R {
        self.r
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Body { r, framing } = self;
        let eof = || io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short");
        match framing {
            Framing::UntilClose => r.read(buf),
            Framing::Length(left) => {
                if *left == 0 || buf.is_empty() {
                    return Ok(0);
                }
                let max = (*left).min(buf.len() as u64) as usize;
                let n = r.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(eof());
                }
                *left -= n as u64;
                Ok(n)
            }
            Framing::Chunked { left, done } => {
                if *done || buf.is_empty() {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    if r.read_line(&mut line)? == 0 {
                        return Err(eof());
                    }
                    let size = line.trim().split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("chunk size: {line}"))
                    })?;
                    if size == 0 {
                        // Trailers, up to the empty line.
                        loop {
                            line.clear();
                            if r.read_line(&mut line)? == 0 {
                                return Err(eof());
                            }
                            if line.trim().is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let max = (*left).min(buf.len() as u64) as usize;
                let n = r.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(eof());
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = [0u8; 2];
                    r.read_exact(&mut crlf)?;
                    if &crlf != b"\r\n" {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "no CRLF after a chunk",
                        ));
                    }
                }
                Ok(n)
            }
        }
    }
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_write_timeout(Some(Duration::from_secs(60)))?;
    Ok(s)
}

/// Sends the head of a request.
fn send_head(s: &mut TcpStream, method: &str, target: &str, headers: &[(&str, String)]) {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
}

fn checkpresent_target(server_uuid: &str, key: &str) -> String {
    format!("/git-annex/{server_uuid}/v4/checkpresent?key={key}&clientuuid={CLIENT_UUID}")
}

/// POSTs checkpresent on a new connection to `port`; the JSON answer.
fn checkpresent(port: u16, server_uuid: &str, key: &str) -> serde_json::Value {
    let mut s = connect(port).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    send_head(
        &mut s,
        "POST",
        &checkpresent_target(server_uuid, key),
        &[("Content-Length", "0".into())],
    );
    let mut r = BufReader::new(s);
    let head = read_response_head(&mut r).unwrap();
    let mut body = Vec::new();
    Body::new(r, &head).read_to_end(&mut body).unwrap();
    assert_eq!(
        head.status,
        200,
        "checkpresent: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

/// What became of a request on a new connection.
#[derive(Debug, PartialEq)]
enum Probe {
    /// The connection was refused.
    Refused,
    /// The connection was accepted (or queued) and then closed or reset
    /// without an answer.
    Closed,
    /// An answer came, with this status.
    Answered(u16),
    /// Nothing came within the time allowed.
    Silent,
}

/// Tries a checkpresent request on a new connection to `port`.
fn probe(port: u16, server_uuid: &str, key: &str) -> Probe {
    let mut s =
        match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Probe::Refused,
            // The listening socket closed as the connection was being made.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Probe::Closed
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Probe::Silent,
            Err(e) => panic!("connecting to 127.0.0.1:{port}: {e}"),
        };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
        checkpresent_target(server_uuid, key)
    );
    if s.write_all(req.as_bytes()).is_err() {
        return Probe::Closed;
    }
    let mut r = BufReader::new(s);
    match read_response_head(&mut r) {
        Ok(head) => Probe::Answered(head.status),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Probe::Silent
        }
        Err(_) => Probe::Closed,
    }
}

/// Starts a GET of `key` on a new connection; the head of the answer and
/// its body, not read yet.
fn start_get(
    port: u16,
    server_uuid: &str,
    key: &str,
) -> (ResponseHead, Body<BufReader<TcpStream>>) {
    let mut s = connect(port).unwrap();
    send_head(
        &mut s,
        "GET",
        &format!("/git-annex/{server_uuid}/v4/key/{key}?clientuuid={CLIENT_UUID}"),
        &[],
    );
    // A small buffer, so that what the test has read is about what it
    // took from the socket.
    let mut r = BufReader::with_capacity(64 * 1024, s);
    let head = read_response_head(&mut r).unwrap();
    assert_eq!(head.status, 200, "GET {key}: {head:?}");
    let body = Body::new(r, &head);
    (head, body)
}

/// Reads `n` bytes of `body` into `sink`, `piece` bytes at a time with
/// `pause` after each.
fn read_some(
    body: &mut impl Read,
    sink: &mut impl FnMut(&[u8]),
    n: u64,
    piece: usize,
    pause: Duration,
) -> u64 {
    let mut buf = vec![0u8; piece];
    let mut got = 0u64;
    while got < n {
        let want = (n - got).min(piece as u64) as usize;
        let k = body.read(&mut buf[..want]).unwrap();
        assert!(k > 0, "the body ended after {got} bytes");
        sink(&buf[..k]);
        got += k as u64;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    got
}

/// On SIGTERM the server stops taking connections at once, yet lets a GET
/// in flight (a 200 MiB object, read slowly by its client) send its whole
/// content, and only then exits, with status 0.
#[test]
fn sigterm_stops_accepting_and_finishes_the_transfer_in_flight() {
    let repo = Repo::new();
    let content = Content::new(200 * MIB, 11);
    let key = repo.add("big", &content);
    let mut server = Server::start_wide_open(&repo, &["--shutdown-timeout", "30"]);
    // A new connection is served before the signal.
    assert_eq!(
        probe(server.port, &repo.uuid, &key),
        Probe::Answered(200),
        "{}",
        server.log_text()
    );

    let (head, mut body) = start_get(server.port, &repo.uuid, &key);
    assert_eq!(
        head.header("x-git-annex-data-length"),
        Some(content.len.to_string().as_str())
    );
    let mut hasher = Sha256::new();
    let mut sink = |b: &[u8]| hasher.update(b);
    // The first 16 MiB, slowly.
    let mut got = read_some(
        &mut body,
        &mut sink,
        16 * MIB,
        256 * 1024,
        Duration::from_millis(10),
    );

    server.sigterm();
    let signalled = Instant::now();
    // New connections are refused (or closed unanswered) while the
    // transfer is still in flight: the test is not reading it meanwhile.
    // A connection made as the signal arrives may still be answered, but
    // none is left waiting unanswered (the probe gives up after 2 s);
    // probing goes on until one is turned away.
    let mut probes = Vec::new();
    let mut last = Probe::Answered(0);
    while signalled.elapsed() < Duration::from_secs(10) {
        last = probe(server.port, &repo.uuid, &key);
        probes.push((signalled.elapsed(), format!("{last:?}")));
        if matches!(last, Probe::Refused | Probe::Closed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("new connections after SIGTERM: {probes:?}");
    assert!(
        !probes.iter().any(|(_, p)| p == "Silent"),
        "a connection made after SIGTERM was left unanswered: {probes:?}"
    );
    assert!(
        matches!(last, Probe::Refused | Probe::Closed),
        "10 s after SIGTERM, new connections still got {probes:?}: {}",
        server.log_text()
    );
    assert!(
        server.running(),
        "the server exited with a transfer in flight: {}",
        server.log_text()
    );

    // The rest of the content arrives, whole.
    got += read_some(
        &mut body,
        &mut sink,
        content.len - got,
        1 << 20,
        Duration::ZERO,
    );
    let mut end = [0u8; 1];
    assert_eq!(body.read(&mut end).unwrap(), 0, "the body ends there");
    assert_eq!(got, content.len);
    assert_eq!(
        hex(&hasher.finalize()),
        key_sha256(&key),
        "content of {key}"
    );
    // The connection is closed after it (no keep-alive while shutting
    // down).
    let mut rest = body.into_inner();
    assert_eq!(rest.read(&mut end).unwrap(), 0, "the connection is closed");

    let status = server
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running after the transfer: {}", server.log_text()));
    assert!(
        status.success(),
        "exit status {status}: {}",
        server.log_text()
    );
}

/// With --shutdown-timeout 1, a client that stopped reading in the middle
/// of a GET does not keep the server alive: it waits the second it was
/// given, then exits (status 0) within a few seconds of SIGTERM, and the
/// client sees a body cut short.
#[test]
fn sigterm_with_a_stalled_reader_exits_after_the_shutdown_timeout() {
    let repo = Repo::new();
    let content = Content::new(64 * MIB, 12);
    let key = repo.add("big", &content);
    let mut server = Server::start_wide_open(&repo, &["--shutdown-timeout", "1"]);
    let (_head, mut body) = start_get(server.port, &repo.uuid, &key);
    read_some(&mut body, &mut |_| {}, MIB, 64 * 1024, Duration::ZERO);
    // The reader stops here; give the server time to fill the socket.
    std::thread::sleep(Duration::from_millis(300));

    server.sigterm();
    let signalled = Instant::now();
    let status = server.wait_exit(Duration::from_secs(10));
    let waited = signalled.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 10 s after SIGTERM with --shutdown-timeout 1: {}",
            server.log_text()
        )
    });
    assert!(
        status.success(),
        "exit status {status}: {}",
        server.log_text()
    );
    eprintln!("exited {waited:?} after SIGTERM with --shutdown-timeout 1");
    assert!(
        waited >= Duration::from_millis(900),
        "exited {waited:?} after SIGTERM: the transfer in flight was not given its second"
    );

    // What the client reads now ends before the data length.
    let end = io::copy(&mut body, &mut io::sink());
    assert!(
        end.as_ref().is_err_and(|e| !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )),
        "the body of the interrupted GET did not end short: {end:?}"
    );
}

/// Spawns `annex p2phttp` as systemd would: `listener` as its fd 3,
/// LISTEN_FDS=1, and LISTEN_PID what `listen_pid` makes of the child's
/// own pid.
///
/// The variables are set in the child between fork and exec with setenv:
/// the command must not set any environment variable itself, as the
/// environment it would build replaces the process's at exec.
fn socket_activated(
    repo: &Repo,
    listener: &TcpListener,
    args: &[&str],
    listen_pid: fn(libc::pid_t) -> libc::pid_t,
) -> Server {
    let fd = listener.as_raw_fd();
    Server::start(repo, args, move |c| {
        // SAFETY: between fork and exec the hook only calls dup2, fcntl,
        // getpid, setenv and unsetenv, formatting the pid into a stack
        // buffer. setenv may allocate, which glibc's fork makes safe in
        // the child (it resets malloc's locks there).
        unsafe {
            c.pre_exec(move || {
                if fd == 3 {
                    // Already in place: only let it survive exec.
                    if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, 3) == -1 {
                    // dup2 leaves FD_CLOEXEC clear on the new descriptor.
                    return Err(io::Error::last_os_error());
                }
                let pid = listen_pid(libc::getpid());
                let mut digits = [0u8; 24];
                let mut i = digits.len() - 1; // digits[last] stays 0: the C string's end
                let mut p = pid as u64;
                loop {
                    i -= 1;
                    digits[i] = b'0' + (p % 10) as u8;
                    p /= 10;
                    if p == 0 {
                        break;
                    }
                }
                if libc::setenv(c"LISTEN_PID".as_ptr(), digits[i..].as_ptr().cast(), 1) == -1
                    || libc::setenv(c"LISTEN_FDS".as_ptr(), c"1".as_ptr(), 1) == -1
                    || libc::unsetenv(c"LISTEN_FDNAMES".as_ptr()) == -1
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

/// systemd socket activation: given a listening socket as fd 3 with
/// LISTEN_FDS=1 and LISTEN_PID its own pid, the server serves that socket
/// (the port the test bound, not --port) and answers checkpresent there.
#[test]
fn socket_activation_serves_the_socket_given() {
    let repo = Repo::new();
    let key = repo.add("f", &Content::new(4096, 13));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // --port names a port taken by another socket: a server binding it
    // rather than using the socket given would fail to start.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let server = socket_activated(
        &repo,
        &listener,
        &["--wideopen", "--port", &taken_port, "--bind", "127.0.0.1"],
        |own| own,
    );
    // Only the server holds the socket now.
    drop(listener);
    assert_eq!(
        server.port,
        port,
        "the server listens where systemd said: {}",
        server.log_text()
    );
    assert_eq!(
        server.log_text().matches("listening on").count(),
        1,
        "{}",
        server.log_text()
    );
    let answer = checkpresent(port, &repo.uuid, &key);
    assert_eq!(answer, serde_json::json!({"present": true}));
    let missing = format!("SHA256E-s1--{}", "0".repeat(64));
    let answer = checkpresent(port, &repo.uuid, &missing);
    assert_eq!(answer, serde_json::json!({"present": false}));
}

/// LISTEN_FDS meant for another process (LISTEN_PID not the server's pid)
/// is ignored: the server binds its --port as usual and serves there.
#[test]
fn socket_activation_for_another_pid_is_ignored() {
    let repo = Repo::new();
    let key = repo.add("f", &Content::new(4096, 14));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = socket_activated(
        &repo,
        &listener,
        &["--wideopen", "--port", "0", "--bind", "127.0.0.1"],
        |own| own + 1,
    );
    drop(listener);
    assert_ne!(server.port, port, "{}", server.log_text());
    assert_eq!(
        server.log_text().matches("listening on").count(),
        1,
        "{}",
        server.log_text()
    );
    let answer = checkpresent(server.port, &repo.uuid, &key);
    assert_eq!(answer, serde_json::json!({"present": true}));
}

/// A PUT of 2 GiB, streamed by the test from a generator, is stored in
/// constant memory: the server's peak resident size (VmHWM) grows by less
/// than 64 MiB over the whole transfer, the answer is {"stored": true},
/// the object has its size, and git-annex's fsck of the served repository
/// finds the content good.
#[test]
fn large_put_in_constant_memory() {
    const SIZE: u64 = 2048 * MIB;
    const ALLOWED_GROWTH_KIB: u64 = 64 * 1024;
    let repo = Repo::new();
    let content = Content::new(SIZE, 15);
    let t = Instant::now();
    let key = format!("SHA256E-s{SIZE}--{}", content.sha256_hex());
    eprintln!("key computed in {:?}", t.elapsed());
    let server = Server::start_wide_open(&repo, &[]);
    // A request first, so that the baseline is a server that has served.
    assert_eq!(
        checkpresent(server.port, &repo.uuid, &key),
        serde_json::json!({"present": false})
    );
    let hwm_before = server.status_kib("VmHWM").unwrap();

    // Sample the resident size during the transfer.
    let stop = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, max_rss, pid) = (stop.clone(), max_rss.clone(), server.pid());
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = proc_status_kib(pid, "VmRSS") {
                    max_rss.fetch_max(rss, Ordering::Relaxed);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            samples
        })
    };

    let t = Instant::now();
    let mut s = connect(server.port).unwrap();
    send_head(
        &mut s,
        "POST",
        &format!(
            "/git-annex/{}/v4/put?key={key}&clientuuid={CLIENT_UUID}",
            repo.uuid
        ),
        &[
            ("Content-Length", SIZE.to_string()),
            ("X-git-annex-data-length", SIZE.to_string()),
            ("Content-Type", "application/octet-stream".into()),
        ],
    );
    content.for_each_block(|b| s.write_all(b)).unwrap();
    let mut r = BufReader::new(s);
    let head = read_response_head(&mut r).unwrap();
    let mut answer = Vec::new();
    Body::new(r, &head).read_to_end(&mut answer).unwrap();
    let put_time = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    let hwm_after = server.status_kib("VmHWM").unwrap();
    let max_rss = max_rss.load(Ordering::Relaxed);
    eprintln!(
        "PUT of {SIZE} bytes in {put_time:?}; VmHWM {hwm_before} KiB -> {hwm_after} KiB, \
         largest VmRSS sampled {max_rss} KiB ({samples} samples)"
    );

    assert_eq!(
        head.status,
        200,
        "{}: {}",
        String::from_utf8_lossy(&answer),
        server.log_text()
    );
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["stored"], serde_json::json!(true), "{answer}");
    assert!(samples > 0, "the server's memory was sampled");
    assert!(
        hwm_after < hwm_before + ALLOWED_GROWTH_KIB,
        "peak resident size grew from {hwm_before} KiB to {hwm_after} KiB during a PUT of {SIZE} bytes"
    );
    drop(server);

    // git-annex itself finds the content in place and checks it.
    let location = git(&repo.path, &["annex", "contentlocation", &key]);
    let object = repo.path.join(location.trim());
    assert_eq!(std::fs::metadata(&object).unwrap().len(), SIZE);
    let t = Instant::now();
    git(&repo.path, &["annex", "fsck", "--key", &key, "--quiet"]);
    eprintln!("git annex fsck in {:?}", t.elapsed());
    let present = git(&repo.path, &["annex", "whereis", "--key", &key]);
    assert!(present.contains(&repo.uuid), "{present}");
}
