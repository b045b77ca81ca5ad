//! The p2phttp client against the real `git annex p2phttp` (every
//! operation, resuming, locks, authentication), against our own server
//! over https, and against a server that only speaks older API versions.
//!
//! git-annex 10.20250416 must be installed; these tests fail without it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use annex_http::client::{HttpOptions, HttpRepository, ServerUrl};
use annex_http::wire::ApiVersion;
use annex_protocol::{
    AssociatedFile, BytesSource, GetOutcome, Key, PutData, PutOutcome, PutSource, RepoError,
    Repository, Uuid, Validity, VecSink,
};
use annex_test_support::{
    free_port, git_annex_p2phttp, init_annex_repo, read_log, sha256e_key, wait_for_port,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Makes a self-signed certificate for localhost and 127.0.0.1.
fn self_signed(cert: &Path, key_file: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(key_file)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("openssl is needed to make a test certificate");
    assert!(out.status.success(), "{out:?}");
}

/// A repository served by `git annex p2phttp`, stopped when dropped.
struct GitAnnexServer {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    uuid: Uuid,
    port: u16,
    child: Child,
    log: PathBuf,
    https: bool,
    cert: PathBuf,
}

impl GitAnnexServer {
    fn start(args: &[&str], env: &[(&str, &str)]) -> GitAnnexServer {
        GitAnnexServer::start_with(args, env, false)
    }

    /// Served over https, with a self-signed certificate for localhost
    /// (`self.cert`).
    fn start_https(args: &[&str], env: &[(&str, &str)]) -> GitAnnexServer {
        GitAnnexServer::start_with(args, env, true)
    }

    fn start_with(args: &[&str], env: &[(&str, &str)], https: bool) -> GitAnnexServer {
        let tmp = tempfile::tempdir().unwrap();
        let cert = tmp.path().join("cert.pem");
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if https {
            let key_file = tmp.path().join("key.pem");
            self_signed(&cert, &key_file);
            args.extend([
                format!("--certfile={}", cert.display()),
                format!("--privatekeyfile={}", key_file.display()),
            ]);
        }
        let (repo, uuid) = init_annex_repo(tmp.path(), "served", "served");
        let uuid = Uuid::parse(&uuid).unwrap();
        let log = tmp.path().join("server.log");
        let port = free_port();
        let mut c = git_annex_p2phttp(&repo, port);
        c.arg("--debug")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("git annex p2phttp");
        wait_for_port(port, &mut child, Some(&log));
        GitAnnexServer {
            _tmp: tmp,
            repo,
            uuid,
            port,
            child,
            log,
            https,
            cert,
        }
    }

    fn client(&self, options: HttpOptions) -> HttpRepository {
        let url = if self.https {
            format!("annex+https://localhost:{}/git-annex/", self.port)
        } else {
            format!("annex+http://127.0.0.1:{}/git-annex/", self.port)
        };
        let url = ServerUrl::parse(&url).unwrap();
        HttpRepository::new(url, self.uuid.clone(), Uuid::new_v4(), options).unwrap()
    }

    /// Runs `git annex ARGS` in the served repository.
    fn annex(&self, args: &[&str]) -> std::process::Output {
        Command::new("git")
            .arg("annex")
            .args(args)
            .current_dir(&self.repo)
            .output()
            .unwrap()
    }

    fn fsck(&self) {
        let out = Command::new("git")
            .args(["annex", "fsck", "--all"])
            .current_dir(&self.repo)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("failed"), "fsck: {text}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("failed"),
            "{out:?}"
        );
    }
}

impl Drop for GitAnnexServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = read_log(&self.log);
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("git annex p2phttp log, last lines:");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn key_of(data: &[u8]) -> Key {
    Key::parse(&sha256e_key(data, ".bin")).unwrap()
}

/// Fails the test when a step takes more than 30 seconds.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in 30 seconds"))
}

/// Sends `data` as `key`'s content, with no associated file.
async fn put_bytes(repo: &dyn Repository, key: &Key, data: &[u8]) -> Result<PutOutcome, RepoError> {
    repo.put(
        key,
        &AssociatedFile::none(),
        &mut BytesSource::new(data.to_vec()),
    )
    .await
}

/// Whether `repo` has `key`, asked as `step` (within 30 seconds).
async fn present(step: &str, repo: &dyn Repository, key: &Key) -> bool {
    within(step, repo.check_present(key)).await.unwrap()
}

/// Checks that `err` is a refusal whose message starts with `start`.
fn assert_refused(err: &RepoError, start: &str) {
    assert!(
        matches!(err, RepoError::Refused(m) if m.starts_with(start)),
        "{err}"
    );
}

async fn get_all(repo: &dyn Repository, key: &Key, offset: u64) -> Option<Vec<u8>> {
    let mut sink = VecSink::new(1 << 30);
    match repo
        .get(key, &AssociatedFile::none(), offset, &mut sink)
        .await
        .unwrap()
    {
        GetOutcome::Sent { accepted } => {
            assert!(accepted);
            Some(sink.into_data())
        }
        GetOutcome::NotPresent => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_against_git_annex() {
    let server = GitAnnexServer::start(&["--wideopen"], &[]);
    let client = server.client(HttpOptions::default());
    let data = content(3 * 1024 * 1024 + 5, 1);
    let key = key_of(&data);

    assert!(!present("step 1", &client, &key).await);
    assert_eq!(client.version(), Some(ApiVersion::V4));
    assert_eq!(within("step 10", get_all(&client, &key, 0)).await, None);
    let mut source = BytesSource::new(data.clone());
    let out = within(
        "step 2",
        client.put(
            &key,
            &AssociatedFile::from_path("dir/a file.bin"),
            &mut source,
        ),
    )
    .await
    .unwrap();
    assert_eq!(out, PutOutcome::Stored(vec![]));
    assert!(present("step 3", &client, &key).await);
    server.fsck();
    let mut again = BytesSource::new(data.clone());
    assert!(matches!(
        within(
            "step 4",
            client.put(&key, &AssociatedFile::none(), &mut again)
        )
        .await
        .unwrap(),
        PutOutcome::AlreadyHave(_)
    ));
    assert_eq!(
        again.offset_requested(),
        None,
        "nothing sent when the server has it"
    );

    assert_eq!(
        within("step 11", get_all(&client, &key, 0)).await.unwrap(),
        data
    );
    assert_eq!(
        within("step 12", get_all(&client, &key, 1000))
            .await
            .unwrap(),
        &data[1000..]
    );

    let now = within("step 5", client.get_timestamp()).await.unwrap();
    assert!(now > 0);

    let other = key_of(&content(data.len(), 5));
    // Wrong content for the key is not stored.
    let mut wrong = BytesSource::new(content(data.len(), 2));
    let out = within(
        "step 8",
        client.put(&other, &AssociatedFile::none(), &mut wrong),
    )
    .await
    .unwrap();
    assert_eq!(out, PutOutcome::NotStored);
    assert!(!present("step 9", &client, &other).await);

    // Locking: present content locks, absent content does not. One lock
    // at a time: git-annex's server holds a lock on the P2P connection of
    // this client, and a second request of the same client waits for it.
    // (Its own removals are not held off by a lock it took itself; ours
    // are, see https_with_our_server.)
    let lock = within("lockcontent of present content", client.lock_content(&key))
        .await
        .unwrap()
        .expect("locked");
    drop(lock);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let absent = key_of(b"never stored");
    assert!(within(
        "lockcontent of absent content",
        client.lock_content(&absent)
    )
    .await
    .unwrap()
    .is_none());
    assert!(present("checkpresent", &client, &key).await);

    // remove-before a time already past fails; a later one removes.
    let out = within(
        "remove-before",
        client.remove(&key, Some(now.saturating_sub(100))),
    )
    .await
    .unwrap();
    assert!(!out.removed);
    assert!(present("step 6", &client, &key).await);
    let out = within("remove-before", client.remove(&key, Some(now + 3600)))
        .await
        .unwrap();
    assert!(out.removed);
    assert!(!present("step 7", &client, &key).await);
    assert_eq!(within("step 13", get_all(&client, &key, 0)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_a_partial_upload_on_git_annex() {
    let server = GitAnnexServer::start(&["--wideopen"], &[]);
    let client = server.client(HttpOptions::default());
    let data = content(2 * 1024 * 1024, 3);
    let key = key_of(&data);
    let tmp = server.repo.join(".git/annex/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join(key.as_str()), &data[..700_000]).unwrap();
    let mut source = BytesSource::new(data.clone());
    let out = client
        .put(&key, &AssociatedFile::none(), &mut source)
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Stored(vec![]));
    assert_eq!(source.offset_requested(), Some(700_000));
    assert_eq!(get_all(&client, &key, 0).await.unwrap(), data);
    server.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_with_git_annex() {
    let server = GitAnnexServer::start(
        &["--authenv-http", "--unauth-readonly"],
        &[("GIT_ANNEX_P2PHTTP_PASSWORD_bob", "hunter2")],
    );
    let data = b"authenticated content".to_vec();
    let key = key_of(&data);
    let anonymous = server.client(HttpOptions::default());
    assert!(
        !anonymous.check_present(&key).await.unwrap(),
        "reading is open"
    );
    let err = put_bytes(&anonymous, &key, &data).await.unwrap_err();
    assert!(matches!(err, RepoError::Refused(_)), "{err}");
    let wrong = server.client(HttpOptions {
        credentials: Some(("bob".into(), "wrong".into())),
        ..Default::default()
    });
    assert!(put_bytes(&wrong, &key, &data).await.is_err());
    let bob = server.client(HttpOptions {
        credentials: Some(("bob".into(), "hunter2".into())),
        ..Default::default()
    });
    let out = put_bytes(&bob, &key, &data).await.unwrap();
    assert_eq!(out, PutOutcome::Stored(vec![]));
    let err = anonymous.remove(&key, None).await.unwrap_err();
    assert!(matches!(err, RepoError::Refused(_)), "{err}");
    assert!(bob.remove(&key, None).await.unwrap().removed);
}

/// An answer of [`Tiny`].
struct Reply {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn not_found() -> Reply {
        Reply::new("404 Not Found", "")
    }

    fn json(body: &str) -> Reply {
        Reply::new("200 OK", body)
    }

    fn header(mut self, name: &'static str, value: impl ToString) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request with
/// `handler(method, target)`, for what git-annex's server cannot be made
/// to do (speak only old versions, send short bodies). It records the
/// requests and counts connections; with `close_each` it closes every
/// connection after one answer, without saying so.
struct Tiny {
    addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Tiny {
    async fn start(
        close_each: bool,
        handler: impl Fn(&str, &str) -> Reply + Send + Sync + 'static,
    ) -> Tiny {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (seen2, connections2) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                connections2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (seen, handler) = (seen2.clone(), handler.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let n = s.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let body_len: usize = head
                            .lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < body_len {
                            let n = s.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        buf.drain(..body_len);
                        let mut words = head.split(' ');
                        let method = words.next().unwrap_or("").to_owned();
                        let target = words.next().unwrap_or("").to_owned();
                        seen.lock().unwrap().push(format!("{method} {target}"));
                        let reply = handler(&method, &target);
                        let mut out = format!(
                            "HTTP/1.1 {}\r\nContent-Length: {}\r\n",
                            reply.status,
                            reply.body.len()
                        );
                        for (name, value) in &reply.headers {
                            out.push_str(&format!("{name}: {value}\r\n"));
                        }
                        out.push_str("\r\n");
                        let mut out = out.into_bytes();
                        out.extend_from_slice(&reply.body);
                        if s.write_all(&out).await.is_err() || close_each {
                            return;
                        }
                    }
                });
            }
        });
        Tiny {
            addr,
            seen,
            connections,
        }
    }

    fn client(&self, options: HttpOptions) -> HttpRepository {
        let url = ServerUrl::parse(&format!("annex+http://{}/git-annex/", self.addr)).unwrap();
        HttpRepository::new(url, Uuid::new_v4(), Uuid::new_v4(), options).unwrap()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A server that answers 404 to v4 and v3 requests: the client settles on
/// v2 with the request itself, knows v3's endpoints are missing, sends
/// bypass parameters from v2, and keeps using one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_older_versions() {
    let server = Tiny::start(false, |_, target| {
        if target.contains("/v4/") || target.contains("/v3/") {
            Reply::not_found()
        } else if target.contains("/remove?") {
            Reply::json(r#"{"removed":true}"#)
        } else {
            Reply::json(r#"{"present":true}"#)
        }
    })
    .await;
    let client = server.client(HttpOptions::default());
    let key = key_of(b"x");
    assert!(client.check_present(&key).await.unwrap());
    assert_eq!(client.version(), Some(ApiVersion::V2));
    assert!(matches!(
        client.get_timestamp().await,
        Err(RepoError::Unsupported(_))
    ));
    assert!(matches!(
        client.remove(&key, Some(5)).await,
        Err(RepoError::Unsupported(_))
    ));
    let gateway = Uuid::new_v4();
    let view = client.bypass(std::slice::from_ref(&gateway)).unwrap();
    assert!(view.remove(&key, None).await.unwrap().removed);
    for _ in 0..5 {
        assert!(client.check_present(&key).await.unwrap());
    }
    let seen = server.seen();
    assert!(seen[0].starts_with("POST /git-annex/"), "{seen:?}");
    assert!(seen[0].contains("/v4/checkpresent?key="), "{seen:?}");
    assert!(seen[1].contains("/v3/checkpresent?key="), "{seen:?}");
    assert!(seen[2].contains("/v2/checkpresent?key="), "{seen:?}");
    assert_eq!(seen.len(), 9, "no request for what v2 lacks: {seen:?}");
    assert!(
        seen[3].contains("/v2/remove?") && seen[3].contains(&format!("bypass={gateway}")),
        "{seen:?}"
    );
    assert!(!seen[2].contains("bypass"), "{seen:?}");
    assert_eq!(server.connections(), 1, "one connection, reused");
}

/// The max_version option: the client starts lower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_version_is_where_negotiation_starts() {
    let server = Tiny::start(false, |_, _| Reply::json(r#"{"timestamp":77}"#)).await;
    let client = server.client(HttpOptions {
        max_version: ApiVersion::V3,
        ..Default::default()
    });
    assert_eq!(client.get_timestamp().await.unwrap(), 77);
    assert_eq!(client.version(), Some(ApiVersion::V3));
    assert!(server.seen()[0].contains("/v3/gettimestamp?"));
}

/// A server serving v0 only, whose GET does not say how long the content
/// is: the key's size does, and nothing can be said of its validity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_get_without_a_length() {
    let data = content(300_000, 4);
    let key = key_of(&data);
    let served = data.clone();
    let server = Tiny::start(false, move |method, target| {
        if !target.contains("/v0/") {
            Reply::not_found()
        } else if method == "GET" {
            let offset: usize = target
                .split_once("offset=")
                .map(|(_, o)| o.split('&').next().unwrap().parse().unwrap())
                .unwrap_or(0);
            Reply::new("200 OK", served[offset..].to_vec())
        } else {
            Reply::json(r#"{"present":true}"#)
        }
    })
    .await;
    let client = server.client(HttpOptions::default());
    let mut sink = VecSink::new(1 << 20);
    let out = client
        .get(&key, &AssociatedFile::none(), 1000, &mut sink)
        .await
        .unwrap();
    assert_eq!(out, GetOutcome::Sent { accepted: true });
    assert_eq!(client.version(), Some(ApiVersion::V0));
    assert_eq!(sink.data(), &data[1000..]);
    assert_eq!(sink.validity(), None);
    let seen = server.seen();
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET ") && r.contains("/v0/key/") && r.contains("offset=1000")),
        "{seen:?}"
    );
}

/// A body a byte short of its X-git-annex-data-length is content that
/// changed while sent: an error, not content. A longer one is invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_and_long_get_bodies() {
    let data = content(100_000, 6);
    let key = key_of(&data);
    let served = data.clone();
    let long = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let long2 = long.clone();
    let server = Tiny::start(false, move |method, _| {
        if method != "GET" {
            return Reply::json(r#"{"present":true}"#);
        }
        let mut body = served.clone();
        if long2.load(std::sync::atomic::Ordering::SeqCst) {
            body.push(0);
        } else {
            body.pop();
        }
        Reply::new("200 OK", body).header("X-git-annex-data-length", served.len())
    })
    .await;
    let client = server.client(HttpOptions::default());
    let mut sink = VecSink::new(1 << 20);
    let err = client
        .get(&key, &AssociatedFile::none(), 0, &mut sink)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
    long.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut sink = VecSink::new(1 << 20);
    let out = client
        .get(&key, &AssociatedFile::none(), 0, &mut sink)
        .await
        .unwrap();
    assert_eq!(out, GetOutcome::Sent { accepted: false });
    assert_eq!(sink.validity(), Some(Validity::Invalid));
    assert_eq!(sink.data(), &data[..]);
}

/// A server that closes every connection after one answer, without
/// saying so: each request still succeeds, on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_pooled_connections_are_replaced() {
    let server = Tiny::start(true, |_, _| Reply::json(r#"{"present":false}"#)).await;
    let client = server.client(HttpOptions::default());
    let key = key_of(b"z");
    for _ in 0..5 {
        assert!(!client.check_present(&key).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Without the pause, the close may not have arrived yet when the next
    // request goes out; it is then sent again on a new connection.
    for _ in 0..5 {
        assert!(!client.check_present(&key).await.unwrap());
    }
    assert_eq!(server.connections(), 10);
}

/// Status codes become errors saying what went wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_from_status_codes() {
    let server = Tiny::start(false, |_, target| {
        if target.contains("/checkpresent") {
            Reply::new("401 Unauthorized", "")
                .header("WWW-Authenticate", "Basic realm=\"git-annex\"")
        } else if target.contains("/remove?") {
            Reply::new("403 Forbidden", "read-only")
        } else {
            Reply::new("500 Internal Server Error", "the disk is on fire")
        }
    })
    .await;
    let anonymous = server.client(HttpOptions {
        max_version: ApiVersion::V4,
        ..Default::default()
    });
    let key = key_of(b"w");
    let err = anonymous.check_present(&key).await.unwrap_err();
    assert_refused(&err, "authentication required");
    let named = server.client(HttpOptions {
        credentials: Some(("eve".into(), "guess".into())),
        ..Default::default()
    });
    let err = named.check_present(&key).await.unwrap_err();
    assert_refused(&err, "authentication failed");
    let err = anonymous.remove(&key, None).await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Refused(m) if m.contains("read-only")),
        "{err}"
    );
    let err = anonymous.get_timestamp().await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Remote(m) if m.contains("the disk is on fire")),
        "{err}"
    );
    let seen = server.seen();
    assert!(seen.iter().all(|r| r.contains("/v4/")), "{seen:?}");
}

/// Our client and our server over https, with a self-signed certificate
/// made by openssl and trusted through the CA-file option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_our_server() {
    use annex_http::server::{AccessPolicy, Server, ServerSettings, SingleRepository};
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert.pem");
    let key_file = tmp.path().join("key.pem");
    self_signed(&cert, &key_file);
    let (repo, _) = init_annex_repo(tmp.path(), "served", "served");
    let local = annex_repo::LocalRepository::open(&repo).unwrap();
    let uuid = local.uuid().clone();
    let mut policy = AccessPolicy::default();
    policy.wide_open = true;
    let settings = ServerSettings {
        policy,
        tls: Some(annex_http::server::tls::server_config(&cert, &[], &key_file).unwrap()),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::new(Arc::new(SingleRepository::new(Arc::new(local))), settings);
    tokio::spawn(server.run(vec![listener], std::future::pending()));

    let url = ServerUrl::parse(&format!("annex+https://localhost:{port}/git-annex/")).unwrap();
    let untrusting = HttpRepository::new(
        url.clone(),
        uuid.clone(),
        Uuid::new_v4(),
        HttpOptions::default(),
    )
    .unwrap();
    assert!(
        untrusting.check_present(&key_of(b"y")).await.is_err(),
        "an unknown certificate is refused"
    );
    let client = HttpRepository::new(
        url,
        uuid,
        Uuid::new_v4(),
        HttpOptions {
            ca_file: Some(cert.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let data = content(1024 * 1024 + 3, 9);
    let key = key_of(&data);
    let out = put_bytes(&client, &key, &data).await.unwrap();
    assert_eq!(out, PutOutcome::Stored(vec![]));
    assert_eq!(get_all(&client, &key, 0).await.unwrap(), data);
    let lock = client.lock_content(&key).await.unwrap().expect("locked");
    assert!(!client.remove(&key, None).await.unwrap().removed);
    drop(lock);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.remove(&key, None).await.unwrap().removed);
}

/// While our client holds a lock, `git annex drop --force` in the served
/// repository cannot remove the content; once the lock is dropped (and
/// the client closed, which waits for the unlock to be answered), it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_holds_off_a_drop_in_the_served_repository() {
    let server = GitAnnexServer::start(&["--wideopen"], &[]);
    let client = server.client(HttpOptions::default());
    let data = content(200_000, 7);
    let key = key_of(&data);
    let out = within("put", put_bytes(&client, &key, &data))
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Stored(vec![]));
    let lock = within("lockcontent", client.lock_content(&key))
        .await
        .unwrap()
        .expect("locked");
    let drop_it = || server.annex(&["drop", "--force", "--key", key.as_str()]);
    let out = drop_it();
    assert!(!out.status.success(), "dropped while locked: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("locked"),
        "{out:?}"
    );
    // Still locked a while later: the keeplocked request keeps it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!drop_it().status.success(), "the lock went away by itself");
    drop(lock);
    within("close", client.close()).await;
    let out = drop_it();
    assert!(out.status.success(), "not dropped after unlocking: {out:?}");
    assert!(!present("checkpresent", &client, &key).await);
}

/// Content that changed while it was sent (the source says INVALID at
/// the end) is not stored by git-annex, and the client goes on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_content_is_not_stored_by_git_annex() {
    let server = GitAnnexServer::start(&["--wideopen"], &[]);
    let client = server.client(HttpOptions::default());
    let data = content(1024 * 1024 + 17, 8);
    let key = key_of(&data);
    let mut changed = BytesSource::new(data.clone()).with_validity(Validity::Invalid);
    let out = within(
        "invalid put",
        client.put(&key, &AssociatedFile::none(), &mut changed),
    )
    .await
    .unwrap();
    assert_eq!(out, PutOutcome::NotStored);
    assert!(!present("checkpresent", &client, &key).await);
    let out = within("valid put", put_bytes(&client, &key, &data))
        .await
        .unwrap();
    assert!(
        matches!(out, PutOutcome::Stored(_)),
        "{out:?}; sent from offset {:?}",
        changed.offset_requested()
    );
    assert_eq!(
        within("get", get_all(&client, &key, 0)).await.unwrap(),
        data
    );
    server.fsck();
}

/// A source whose content the sender says it put in place itself.
struct PutInPlace;

#[async_trait::async_trait]
impl PutSource for PutInPlace {
    async fn open(&mut self, _offset: u64) -> Result<PutData<'_>, RepoError> {
        Ok(PutData::Present)
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(Some(Validity::Valid))
    }
}

/// v4's data-present: git-annex checks the content is there, and as it is
/// not, nothing is stored (no content is sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_present_with_git_annex() {
    let server = GitAnnexServer::start(&["--wideopen"], &[]);
    let client = server.client(HttpOptions::default());
    let key = key_of(b"put in place by other means");
    let out = within(
        "put data-present",
        client.put(&key, &AssociatedFile::none(), &mut PutInPlace),
    )
    .await
    .unwrap();
    assert_eq!(out, PutOutcome::NotStored);
    // An older API has no data-present.
    let v3 = server.client(HttpOptions {
        max_version: ApiVersion::V3,
        ..Default::default()
    });
    let err = within(
        "put data-present v3",
        v3.put(&key, &AssociatedFile::none(), &mut PutInPlace),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RepoError::Unsupported(_)), "{err}");
}

/// git-annex over https with --authenv (users from the environment, https
/// only): no credentials, wrong ones, right ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_authenv_with_git_annex() {
    let server = GitAnnexServer::start_https(
        &["--authenv"],
        &[("GIT_ANNEX_P2PHTTP_PASSWORD_carol", "s3cret")],
    );
    let trusting = |credentials: Option<(&str, &str)>| {
        server.client(HttpOptions {
            ca_file: Some(server.cert.clone()),
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            ..Default::default()
        })
    };
    let data = content(500_000, 10);
    let key = key_of(&data);
    let err = within("anonymous", trusting(None).check_present(&key))
        .await
        .unwrap_err();
    assert_refused(&err, "authentication required");
    let err = within(
        "wrong password",
        trusting(Some(("carol", "guess"))).check_present(&key),
    )
    .await
    .unwrap_err();
    assert_refused(&err, "authentication failed");
    let untrusting = server.client(HttpOptions {
        credentials: Some(("carol".into(), "s3cret".into())),
        ..Default::default()
    });
    assert!(
        within("untrusted certificate", untrusting.check_present(&key))
            .await
            .is_err(),
        "a certificate nobody vouches for is refused"
    );
    let carol = trusting(Some(("carol", "s3cret")));
    assert!(!present("checkpresent", &carol, &key).await);
    let out = within("put", put_bytes(&carol, &key, &data)).await.unwrap();
    assert_eq!(out, PutOutcome::Stored(vec![]));
    assert_eq!(
        within("get", get_all(&carol, &key, 100)).await.unwrap(),
        &data[100..]
    );
    server.fsck();
    assert!(
        within("remove", carol.remove(&key, None))
            .await
            .unwrap()
            .removed
    );
    assert!(!present("checkpresent", &carol, &key).await);
}
