//! A local S3 server for tests: s3s-fs (installed by
//! scripts/install-deps.sh), serving a directory of its own on a free
//! port of 127.0.0.1 and checking every request's signature against one
//! key pair. A test that needs it fails when it is not installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::KillOnDrop;

/// The access key id the server accepts.
pub const ACCESS_KEY: &str = "annextestkey";
/// The secret key the server accepts.
pub const SECRET_KEY: &str = "annextestsecret";

/// The s3s-fs program: on PATH, or where `cargo install` puts it.
pub fn s3s_fs_program() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file());
    if let Some(p) = on_path {
        return p;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(p) = cargo_home.map(|h| h.join("bin").join("s3s-fs")) {
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "s3s-fs is not installed: run scripts/install-deps.sh (cargo install s3s-fs@0.14.1 --features binary --locked)"
    )
}

/// A running s3s-fs, stopped when dropped.
pub struct S3Server {
    child: Option<KillOnDrop>,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// The directory it serves: one subdirectory per bucket, one file per
    /// object.
    pub root: PathBuf,
    log: PathBuf,
}

impl S3Server {
    /// Starts a server serving `root` (created if missing), logging to
    /// `root`'s sibling `NAME.log`.
    pub fn start(root: &Path) -> S3Server {
        std::fs::create_dir_all(root).unwrap();
        let log = root.with_extension("log");
        let mut s = S3Server {
            child: None,
            port: 0,
            root: root.to_owned(),
            log,
        };
        s.restart();
        s
    }

    /// Starts the server again (after [`S3Server::stop`]) on the same
    /// port when it is still free, or on another.
    pub fn restart(&mut self) {
        self.stop();
        let port =
            if self.port != 0 && std::net::TcpListener::bind(("127.0.0.1", self.port)).is_ok() {
                self.port
            } else {
                crate::free_port()
            };
        let mut child = KillOnDrop(
            Command::new(s3s_fs_program())
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--access-key",
                    ACCESS_KEY,
                    "--secret-key",
                    SECRET_KEY,
                ])
                .arg(&self.root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&self.log).unwrap())
                .spawn()
                .unwrap(),
        );
        crate::wait_for_port(port, &mut child, Some(&self.log));
        self.port = port;
        self.child = Some(child);
    }

    /// Stops the server (its port then refuses connections).
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The files holding the objects of `bucket` whose names contain
    /// `needle` (s3s-fs keeps each object as a file named by it), its
    /// own bookkeeping files left out.
    pub fn objects(&self, bucket: &str, needle: &str) -> Vec<PathBuf> {
        let dir = self.root.join(bucket);
        crate::files_under(&dir)
            .into_iter()
            .filter(|p| {
                let rel = p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
                rel.contains(needle) && !rel.split('/').any(|s| s.starts_with('.'))
            })
            .collect()
    }

    /// The environment variables git-annex's `initremote` reads the
    /// server's credentials from.
    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
    }
}

/// A TCP relay on a free port of 127.0.0.1 in front of another port
/// there, counting the bytes the server behind it answers with (what a
/// client of the server costs it to send); stopped when dropped.
pub struct CountingRelay {
    /// The port it listens on.
    pub port: u16,
    answered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CountingRelay {
    /// A relay to `127.0.0.1:target`.
    pub fn start(target: u16) -> CountingRelay {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let answered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (answered.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let count = count.clone();
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        use std::io::{Read, Write};
                        match s_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                count.fetch_add(n as u64, Ordering::SeqCst);
                                if c_out.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CountingRelay {
            port,
            answered,
            stop,
        }
    }

    /// The bytes the server has answered with so far (headers included).
    pub fn answered(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accepting thread up so that it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}
