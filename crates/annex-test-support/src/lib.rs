//! Helpers shared by the workspace's integration tests: running git and
//! git-annex, making repositories with git-annex, starting and stopping
//! servers, test content, and reading HTTP responses from raw sockets.
//!
//! ```
//! // Deterministic test content and its git-annex key.
//! let content = annex_test_support::pseudo_random(1000, 7);
//! assert_eq!(content, annex_test_support::pseudo_random(1000, 7));
//! let key = annex_test_support::sha256e_key(&content, ".bin");
//! assert!(key.starts_with("SHA256E-s1000--") && key.ends_with(".bin"));
//! ```
//!
//! A helper that fails fails the test: it panics, saying what went wrong.
//!
//! [`proxy`]: a scratch area of repositories reached over a fake ssh, for
//! tests of gateways with the real git-annex as the client. [`p2p`]: raw
//! P2P protocol sessions with a server on its standard input and output.
//! [`external`]: external special remotes for tests (git-annex's example,
//! and one that misbehaves on request).
//!
//! [`s3`]: a local S3 server (s3s-fs) that checks signatures, started by
//! a test on a free port with a directory of its own.

#![warn(missing_docs)]

use std::ffi::OsStr;
use std::io::{self, BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub mod external;
pub mod p2p;
pub mod proxy;
pub mod s3;

/// A command running `program ARGS` in `dir`, with a fixed git author and
/// committer (so that commits work whatever the user's configuration).
pub fn command(dir: &Path, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
    c
}

/// Runs `cmd` to its end; its output, whatever its exit status.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} (git and git-annex must be installed: scripts/install-deps.sh): {e}",
            cmd.get_program().to_string_lossy()
        )
    })
}

/// Runs `cmd`, failing the test (showing its stdout and stderr) unless it
/// succeeds; its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{} {:?} failed:\n{}\n{}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `git ARGS` in `dir`, which must succeed; its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    run_ok(&mut command(dir, "git", args))
}

/// Creates `parent/name` and makes it a git repository initialised by
/// git-annex with `description`; its path and its UUID.
pub fn init_annex_repo(parent: &Path, name: &str, description: &str) -> (PathBuf, String) {
    init(parent, name, description, false)
}

/// [`init_annex_repo`], for a bare repository.
pub fn init_bare_annex_repo(parent: &Path, name: &str, description: &str) -> (PathBuf, String) {
    init(parent, name, description, true)
}

fn init(parent: &Path, name: &str, description: &str, bare: bool) -> (PathBuf, String) {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    if bare {
        git(&dir, &["init", "-q", "--bare"]);
    } else {
        git(&dir, &["init", "-q"]);
    }
    git(&dir, &["annex", "init", "-q", description]);
    let uuid = git(&dir, &["config", "annex.uuid"]).trim().to_owned();
    (dir, uuid)
}

/// Feeds `lines` (`KEY UUID 1` or `KEY UUID 0` each) to
/// `git annex setpresentkey --batch` in `dir`, which must succeed.
pub fn setpresentkey(dir: &Path, lines: &str) {
    let mut child = command(dir, "git", &["annex", "setpresentkey", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "git annex setpresentkey --batch failed"
    );
}

/// A port of 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A command running `git annex p2phttp` in `dir`, serving on
/// 127.0.0.1:`port` with two jobs; more options can be added. It runs
/// git-annex itself, not `git annex`, so that killing the child stops the
/// server.
pub fn git_annex_p2phttp(dir: &Path, port: u16) -> Command {
    git_annex_p2phttp_jobs(dir, port, 2)
}

/// [`git_annex_p2phttp`] with `jobs` jobs.
pub fn git_annex_p2phttp_jobs(dir: &Path, port: u16, jobs: u32) -> Command {
    let mut c = Command::new("git-annex");
    c.args([
        "p2phttp",
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        &format!("-J{jobs}"),
    ])
    .current_dir(dir);
    c
}

/// A child process, killed (and reaped) when this is dropped if it is
/// still running.
pub struct KillOnDrop(pub Child);

impl Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Both do nothing for a child already reaped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 30 seconds for `child`, a server, to accept connections on
/// 127.0.0.1:`port`. Fails the test if the time runs out or the server
/// exits first, then showing what it wrote to `log`, if given.
pub fn wait_for_port(port: u16, child: &mut Child, log: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the server exited ({status}): {}",
                log.map(read_log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the server did not start listening on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `command`, an `annex p2phttp` that listens on port 0 of
/// 127.0.0.1, with its standard error going to `log` (its other streams
/// closed), and waits for the port it chose. The child is killed when the
/// returned guard is dropped.
pub fn spawn_annex_p2phttp(mut command: Command, log: &Path) -> (KillOnDrop, u16) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    let mut child = KillOnDrop(command.spawn().unwrap());
    let port = wait_for_listening_port(&mut child, log);
    (child, port)
}

/// Waits up to 20 seconds for `child`, an `annex p2phttp`, to write to its
/// `log` that it listens on 127.0.0.1; the port it names. Fails the test,
/// showing the log, if the time runs out or the server exits first.
pub fn wait_for_listening_port(child: &mut Child, log: &Path) -> u16 {
    let marker = "listening on http://127.0.0.1:";
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let text = read_log(log);
        if let Some(i) = text.find(marker) {
            let digits: String = text[i + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            return digits.parse().unwrap();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("annex p2phttp exited ({status}): {}", read_log(log));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("annex p2phttp did not start: {}", read_log(log));
}

/// Asks `left` every 50 ms what is still there (processes, sessions...)
/// until nothing is; fails the test, saying `what` and what is left, if
/// something still is after `within`.
pub fn wait_until_none_left<T: std::fmt::Debug>(
    within: Duration,
    what: &str,
    mut left: impl FnMut() -> Vec<T>,
) {
    let deadline = Instant::now() + within;
    loop {
        let now = left();
        if now.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `text` to `path` as an executable file (a script).
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What the log file at `path` holds so far; empty if it cannot be read.
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A deterministic pseudo-random sequence (xorshift64) for test content.
pub struct PseudoRandom(u64);

impl PseudoRandom {
    /// The sequence for `seed`.
    pub fn new(seed: u64) -> PseudoRandom {
        PseudoRandom(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }

    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }
}

/// `len` bytes of deterministic pseudo-random content, the same for the
/// same `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut g = PseudoRandom::new(seed);
    (0..len).map(|_| (g.next_u64() >> 24) as u8).collect()
}

/// Every file below `dir` (at any depth, following links), sorted; none
/// if `dir` does not exist. Directories that cannot be read are skipped.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA256E key of `content`, with `extension` (such as `.bin`, or
/// empty) after the hash.
pub fn sha256e_key(content: &[u8], extension: &str) -> String {
    format!(
        "SHA256E-s{}--{}{extension}",
        content.len(),
        hex(&Sha256::digest(content))
    )
}

/// The head of an HTTP response.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Names and values, in the order sent.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The value of the first header named `name` (in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the head of an HTTP response from `r`, up to and including the
/// empty line that ends it; what follows (the body) is left in `r`.
pub fn read_response_head(r: &mut impl BufRead) -> io::Result<ResponseHead> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("status: {line}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    Ok(ResponseHead { status, headers })
}

/// Passes every input of the fuzz corpus `fuzz/corpus/TARGET` to `check`,
/// the entry point the fuzz target calls, failing the test if it panics on
/// any (or if the corpus is empty).
pub fn replay_fuzz_corpus(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!entries.is_empty(), "corpus {} is empty", dir.display());
    for p in entries {
        let data = std::fs::read(&p).unwrap();
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "{} fails {target}", p.display());
    }
}

/// The processes descended from `pid` (children, theirs, and so on),
/// read from /proc: pid and command name.
pub fn descendants(pid: i32) -> Vec<(i32, String)> {
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            all.push((p, ppid, stat[open + 1..close].to_string()));
        }
    }
    let mut out = Vec::new();
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        for (p, pp, comm) in &all {
            if *pp == parent {
                out.push((*p, comm.clone()));
                parents.push(*p);
            }
        }
    }
    out
}

/// The processes descended from `pid` whose command name is `name`
/// (`git-annex`, say): their pids.
pub fn descendants_named(pid: i32, name: &str) -> Vec<i32> {
    descendants(pid)
        .into_iter()
        .filter(|(_, comm)| comm == name)
        .map(|(p, _)| p)
        .collect()
}

/// Sends `request` (a whole HTTP/1.1 request; it should say
/// `Connection: close`) on `stream` and reads the answer to its end: the
/// head, and the body (a chunked body decoded).
pub fn http_exchange<S: Read + Write>(mut stream: S, request: &[u8]) -> (ResponseHead, Vec<u8>) {
    stream.write_all(request).unwrap();
    let mut r = io::BufReader::new(stream);
    let head = read_response_head(&mut r).unwrap();
    let mut raw = Vec::new();
    match head.header("content-length") {
        Some(n) => {
            let n: usize = n.parse().unwrap();
            raw.resize(n, 0);
            r.read_exact(&mut raw).unwrap();
        }
        None => {
            r.read_to_end(&mut raw).unwrap();
        }
    }
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(&raw) } else { raw };
    (head, body)
}

/// The content of a chunked HTTP body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&raw[..end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
