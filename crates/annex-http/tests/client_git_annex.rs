//! The p2phttp client against the real `git annex p2phttp` (every
//! operation, resuming, locks, authentication), against our own server
//! over https, and against a server that only speaks older API versions.
//!
//! git-annex 10.20250416 must be installed; these tests fail without it.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use annex_http::client::{HttpOptions, HttpRepository, ServerUrl};
use annex_http::wire::ApiVersion;
use annex_protocol::{
    AssociatedFile, BytesSource, GetOutcome, Key, PutOutcome, RepoError, Repository, Uuid, VecSink,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git and git-annex must be installed (scripts/install-deps.sh)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A repository served by `git annex p2phttp`, stopped when dropped.
struct GitAnnexServer {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    uuid: Uuid,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl GitAnnexServer {
    fn start(args: &[&str], env: &[(&str, &str)]) -> GitAnnexServer {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("served");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        git(&repo, &["annex", "init", "-q", "served"]);
        let uuid = Uuid::parse(git(&repo, &["config", "annex.uuid"]).trim()).unwrap();
        let log = tmp.path().join("server.log");
        let port = free_port();
        // git-annex itself, not `git annex`, so that killing the child
        // stops the server.
        let mut c = Command::new("git-annex");
        c.args([
            "p2phttp",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-J2",
            "--debug",
        ])
        .args(args)
        .current_dir(&repo)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("git annex p2phttp");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut text = String::new();
                let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
                panic!("git annex p2phttp exited ({status}): {text}");
            }
            assert!(Instant::now() < deadline, "git annex p2phttp did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        GitAnnexServer {
            _tmp: tmp,
            repo,
            uuid,
            port,
            child,
            log,
        }
    }

    fn client(&self, options: HttpOptions) -> HttpRepository {
        let url =
            ServerUrl::parse(&format!("annex+http://127.0.0.1:{}/git-annex/", self.port)).unwrap();
        HttpRepository::new(url, self.uuid.clone(), Uuid::new_v4(), options).unwrap()
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
            let mut text = String::new();
            let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
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
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Key::parse(&format!("SHA256E-s{}--{hex}.bin", data.len())).unwrap()
}

/// Fails the test when a step takes more than 30 seconds.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in 30 seconds"))
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

    assert!(!within("step 1", client.check_present(&key)).await.unwrap());
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
    assert!(within("step 3", client.check_present(&key)).await.unwrap());
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
    assert!(!within("step 9", client.check_present(&other))
        .await
        .unwrap());

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
    assert!(within("checkpresent", client.check_present(&key))
        .await
        .unwrap());

    // remove-before a time already past fails; a later one removes.
    let out = within(
        "remove-before",
        client.remove(&key, Some(now.saturating_sub(100))),
    )
    .await
    .unwrap();
    assert!(!out.removed);
    assert!(within("step 6", client.check_present(&key)).await.unwrap());
    let out = within("remove-before", client.remove(&key, Some(now + 3600)))
        .await
        .unwrap();
    assert!(out.removed);
    assert!(!within("step 7", client.check_present(&key)).await.unwrap());
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
    let err = anonymous
        .put(
            &key,
            &AssociatedFile::none(),
            &mut BytesSource::new(data.clone()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Refused(_)), "{err}");
    let wrong = server.client(HttpOptions {
        credentials: Some(("bob".into(), "wrong".into())),
        ..Default::default()
    });
    assert!(wrong
        .put(
            &key,
            &AssociatedFile::none(),
            &mut BytesSource::new(data.clone())
        )
        .await
        .is_err());
    let bob = server.client(HttpOptions {
        credentials: Some(("bob".into(), "hunter2".into())),
        ..Default::default()
    });
    let out = bob
        .put(
            &key,
            &AssociatedFile::none(),
            &mut BytesSource::new(data.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Stored(vec![]));
    let err = anonymous.remove(&key, None).await.unwrap_err();
    assert!(matches!(err, RepoError::Refused(_)), "{err}");
    assert!(bob.remove(&key, None).await.unwrap().removed);
}

/// A server that answers 404 to v4 and v3 requests and `present: true` to
/// v2 checkpresent: the client settles on v2 and knows v3's endpoints are
/// missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_older_versions() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let seen = seen2.clone();
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
                    let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                    seen.lock().unwrap().push(target.clone());
                    let (status, body) = if target.contains("/v4/") || target.contains("/v3/") {
                        ("404 Not Found", "".to_string())
                    } else {
                        ("200 OK", r#"{"present":true}"#.to_string())
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let url = ServerUrl::parse(&format!("annex+http://{addr}/git-annex/")).unwrap();
    let client =
        HttpRepository::new(url, Uuid::new_v4(), Uuid::new_v4(), HttpOptions::default()).unwrap();
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
    let seen = seen.lock().unwrap().clone();
    assert!(seen[0].contains("/v4/checkpresent"), "{seen:?}");
    assert!(seen[1].contains("/v3/checkpresent"), "{seen:?}");
    assert!(seen[2].contains("/v2/checkpresent"), "{seen:?}");
}

/// Our client and our server over https, with a self-signed certificate
/// made by openssl and trusted through the CA-file option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_our_server() {
    use annex_http::server::{AccessPolicy, Server, ServerSettings, SingleRepository};
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert.pem");
    let key_file = tmp.path().join("key.pem");
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
        .arg(&key_file)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make a test certificate");
    assert!(out.status.success(), "{out:?}");
    let repo = tmp.path().join("served");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["annex", "init", "-q", "served"]);
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
    let out = client
        .put(
            &key,
            &AssociatedFile::none(),
            &mut BytesSource::new(data.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Stored(vec![]));
    assert_eq!(get_all(&client, &key, 0).await.unwrap(), data);
    let lock = client.lock_content(&key).await.unwrap().expect("locked");
    assert!(!client.remove(&key, None).await.unwrap().removed);
    drop(lock);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.remove(&key, None).await.unwrap().removed);
}
