//! The p2phttp server driven by raw HTTP: every endpoint in each version,
//! and bad input (malformed keys and values, unknown UUIDs, missing
//! parameters, wrong data lengths, bodies shorter or longer than declared,
//! path traversal, many connections, idle connections). The repository is
//! a real git-annex repository on disk; git-annex must be installed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use annex_http::server::{AccessPolicy, Server, ServerSettings, SingleRepository};
use annex_protocol::Uuid;
use annex_repo::LocalRepository;
use annex_test_support::{files_under, init_annex_repo, read_response_head, sha256e_key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const CLIENT: &str = "79a5a1f4-07e8-11ef-873d-97f93ca91925";

struct Served {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    uuid: String,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    async fn start(policy: AccessPolicy) -> Served {
        Served::start_with(ServerSettings {
            policy,
            ..Default::default()
        })
        .await
    }

    async fn start_with(settings: ServerSettings) -> Served {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, _) = init_annex_repo(tmp.path(), "repo", "served");
        let local = LocalRepository::open(&repo).unwrap();
        let uuid = annex_protocol::Repository::uuid(&local).as_str().to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::new(Arc::new(SingleRepository::new(Arc::new(local))), settings);
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            server
                .run(vec![listener], async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Served {
            _tmp: tmp,
            repo,
            uuid,
            addr,
            stop: Some(stop),
            done: Some(done),
        }
    }

    fn base(&self, version: &str) -> String {
        format!("/git-annex/{}/{version}", self.uuid)
    }

    /// The target of endpoint `op` of API `version` for `key`, asked by
    /// [`CLIENT`], with the parameters of `extra` (`&name=value...`) last.
    fn key_target(&self, version: &str, op: &str, key: &str, extra: &str) -> String {
        format!(
            "{}/{op}?key={key}&clientuuid={CLIENT}{extra}",
            self.base(version)
        )
    }

    /// POSTs to [`Served::key_target`], with no body.
    async fn post_key(&self, version: &str, op: &str, key: &str, extra: &str) -> Answer {
        post(self.addr, &self.key_target(version, op, key, extra)).await
    }

    /// GETs `key`'s content from API `version`, with the parameters of
    /// `extra` after the client's UUID.
    async fn get_key(&self, version: &str, key: &str, extra: &str) -> Answer {
        let target = format!(
            "{}/key/{key}?clientuuid={CLIENT}{extra}",
            self.base(version)
        );
        send(self.addr, "GET", &target, &[], b"").await
    }

    fn has_object(&self, key: &str) -> bool {
        files_under(&self.repo.join(".git/annex/objects"))
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == key))
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap();
    }
}

struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends one HTTP/1.0 request (so the answer ends with the connection)
/// and reads the answer.
async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.0\r\nHost: test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let mut rest = raw;
    let head = read_response_head(&mut rest)
        .unwrap_or_else(|e| panic!("no head in {:?}: {e}", String::from_utf8_lossy(raw)));
    Answer {
        status: head.status,
        headers: head
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        body: rest.to_vec(),
    }
}

async fn post(addr: SocketAddr, target: &str) -> Answer {
    send(addr, "POST", target, &[], b"").await
}

async fn put(
    s: &Served,
    version: &str,
    key: &str,
    body: &[u8],
    declared: u64,
    extra: &str,
) -> Answer {
    send(
        s.addr,
        "POST",
        &s.key_target(version, "put", key, extra),
        &[
            ("Content-Type", "application/octet-stream".into()),
            ("X-git-annex-data-length", declared.to_string()),
        ],
        body,
    )
    .await
}

fn wide_open() -> AccessPolicy {
    let mut p = AccessPolicy::default();
    p.wide_open = true;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_in_every_version() {
    let s = Served::start(wide_open()).await;
    for (i, version) in ["v0", "v1", "v2", "v3", "v4"].into_iter().enumerate() {
        let content = format!("content for {version}").into_bytes();
        let key = sha256e_key(&content, "");
        let a = s.post_key(version, "checkpresent", &key, "").await;
        assert_eq!(
            (a.status, a.json()["present"].as_bool()),
            (200, Some(false)),
            "{version}"
        );

        let a = s.post_key(version, "putoffset", &key, "").await;
        if version == "v0" {
            assert_eq!(a.status, 404, "putoffset is v1 and later");
        } else {
            assert_eq!(a.json()["offset"], 0, "{version}");
        }
        let a = put(&s, version, &key, &content, content.len() as u64, "").await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["stored"], true, "{version}");
        assert_eq!(
            a.json().get("plusuuids").is_some(),
            i >= 2,
            "{version}: plusuuids from v2"
        );
        assert!(s.has_object(&key));

        let a = s.post_key(version, "putoffset", &key, "").await;
        if version != "v0" {
            assert_eq!(a.json()["alreadyhave"], true, "{version}");
        }

        let a = s.get_key(version, &key, "").await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body, content);
        assert_eq!(
            a.headers["x-git-annex-data-length"],
            content.len().to_string()
        );
        let a = s.get_key(version, &key, "&offset=3").await;
        assert_eq!(a.body, &content[3..]);

        let a = post(
            s.addr,
            &format!("{}/gettimestamp?clientuuid={CLIENT}", s.base(version)),
        )
        .await;
        if i >= 3 {
            assert!(a.json()["timestamp"].as_u64().is_some());
        } else {
            assert_eq!(a.status, 404, "gettimestamp is v3 and later");
        }

        let a = s.post_key(version, "lockcontent", &key, "").await;
        assert_eq!(a.json()["locked"], true);
        let lockid = a.json()["lockid"].as_str().unwrap().to_owned();
        let a = send(
            s.addr,
            "POST",
            &format!(
                "{}/keeplocked?lockid={lockid}&clientuuid={CLIENT}",
                s.base(version)
            ),
            &[],
            b"{\"unlock\": false}\n{\"unlock\": true}\n",
        )
        .await;
        assert_eq!(a.json()["locked"], false);

        let a = s.post_key(version, "remove", &key, "").await;
        assert_eq!(a.json()["removed"], true, "{version}");
        assert_eq!(a.json().get("plusuuids").is_some(), i >= 2);
        assert!(!s.has_object(&key));
        let a = s.get_key(version, &key, "").await;
        // Gone: no bytes, as git-annex's server answers.
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["x-git-annex-data-length"], "0");
        assert!(a.body.is_empty());
    }
    // The unversioned GET.
    let content = b"unversioned".to_vec();
    let key = sha256e_key(&content, "");
    put(&s, "v4", &key, &content, content.len() as u64, "").await;
    let a = send(
        s.addr,
        "GET",
        &format!("/git-annex/{}/key/{key}", s.uuid),
        &[],
        b"",
    )
    .await;
    assert_eq!((a.status, a.body), (200, content));
    // remove-before: a time already past refuses, a future one removes.
    let a = s
        .post_key("v4", "remove-before", &key, "&timestamp=0")
        .await;
    assert_eq!(a.json()["removed"], false);
    assert!(s.has_object(&key));
    let a = s
        .post_key("v3", "remove-before", &key, "&timestamp=99999999999")
        .await;
    assert_eq!(a.json()["removed"], true);
    let a = s
        .post_key("v2", "remove-before", &key, "&timestamp=1")
        .await;
    assert_eq!(a.status, 404, "remove-before is v3 and later");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_put_and_data_present() {
    let s = Served::start(wide_open()).await;
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let key = sha256e_key(&content, "");
    // A body cut short leaves what arrived for resuming, and is not stored.
    let a = put(&s, "v4", &key, &content[..40_000], content.len() as u64, "").await;
    assert_eq!(a.json()["stored"], false);
    assert!(!s.has_object(&key));
    let a = s.post_key("v4", "putoffset", &key, "").await;
    assert_eq!(a.json()["offset"], 40_000);
    // Sending from before the offset the server has: the server skips.
    let a = put(&s, "v4", &key, &content[30_000..], 70_000, "&offset=30000").await;
    assert_eq!(a.json()["stored"], true);
    assert!(s.has_object(&key));
    // data-present: the content is already there. The data length is
    // still required, as git-annex requires it.
    let target = s.key_target("v4", "put", &key, "&data-present=true");
    let a = send(s.addr, "POST", &target, &[], b"").await;
    assert_eq!(a.status, 400);
    let length = [("X-git-annex-data-length", "0".to_owned())];
    let a = send(s.addr, "POST", &target, &length, b"").await;
    assert_eq!(a.json()["stored"], true);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_the_wrong_length_store_nothing() {
    let s = Served::start(wide_open()).await;
    let content = b"exactly this".to_vec();
    let key = sha256e_key(&content, "");
    let mut longer = content.clone();
    longer.extend_from_slice(b" and more");
    let a = put(&s, "v4", &key, &longer, content.len() as u64, "").await;
    assert_eq!(a.json()["stored"], false, "a longer body is invalid");
    assert!(!s.has_object(&key));
    let a = put(&s, "v1", &key, &content[..5], content.len() as u64, "").await;
    assert_eq!(a.json()["stored"], false, "a shorter body is invalid");
    assert!(!s.has_object(&key));
    // Wrong content of the right length fails verification.
    let a = put(&s, "v4", &key, b"exactly that", content.len() as u64, "").await;
    assert_eq!(a.json()["stored"], false);
    assert!(!s.has_object(&key));
    // No or a malformed data length.
    let a = send(
        s.addr,
        "POST",
        &s.key_target("v4", "put", &key, ""),
        &[],
        &content,
    )
    .await;
    assert_eq!(a.status, 400);
    let a = send(
        s.addr,
        "POST",
        &s.key_target("v4", "put", &key, ""),
        &[("X-git-annex-data-length", "twelve".into())],
        &content,
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(!s.has_object(&key));
    let a = put(&s, "v4", &key, &content, content.len() as u64, "").await;
    assert_eq!(a.json()["stored"], true);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests() {
    let s = Served::start(wide_open()).await;
    let key = sha256e_key(b"x", "");
    let base = s.base("v4");
    let query = format!("?key={key}&clientuuid={CLIENT}");
    let cases: Vec<(String, u16)> = vec![
        (s.key_target("v4", "checkpresent", "notakey", ""), 400),
        (s.key_target("v4", "checkpresent", "[!!!]", ""), 400),
        (format!("{base}/checkpresent?clientuuid={CLIENT}"), 400),
        (format!("{base}/checkpresent?key={key}"), 400),
        (
            format!("{base}/checkpresent?key={key}&clientuuid=[%%%]"),
            400,
        ),
        (s.key_target("v4", "remove-before", &key, ""), 400),
        (
            s.key_target("v4", "remove-before", &key, "&timestamp=soon"),
            400,
        ),
        (format!("{base}/keeplocked?clientuuid={CLIENT}"), 400),
        (s.key_target("v4", "get", &key, ""), 404),
        (format!("/git-annex/{}/v5/checkpresent{query}", s.uuid), 404),
        (
            format!("/git-annex/{}/v4/checkpresent{query}", Uuid::new_v4()),
            404,
        ),
        (format!("/elsewhere/{}/v4/checkpresent{query}", s.uuid), 404),
        (s.key_target("v4", "checkpresent/extra", &key, ""), 404),
    ];
    for (target, status) in cases {
        let a = post(s.addr, &target).await;
        assert_eq!(
            a.status,
            status,
            "{target}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    // GET only for keys and checkpresent, POST only for the rest.
    let a = send(
        s.addr,
        "GET",
        &s.key_target("v4", "remove", &key, ""),
        &[],
        b"",
    )
    .await;
    assert_eq!(a.status, 405);
    let a = send(
        s.addr,
        "GET",
        &s.key_target("v4", "checkpresent", &key, ""),
        &[],
        b"",
    )
    .await;
    assert_eq!(a.status, 200);
    let a = post(s.addr, &format!("{base}/key/{key}?clientuuid={CLIENT}")).await;
    assert_eq!(a.status, 405);
    // Keys that try to leave the repository: refused, nothing written
    // outside it.
    for evil in [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "SHA256E-s1--..%2F..%2Fx",
        "%2Fetc%2Fpasswd",
        "[Li4vLi4vLi4vZXRjL3Bhc3N3ZA==]",
    ] {
        let a = put(&s, "v4", evil, b"x", 1, "").await;
        assert!(
            a.status == 400 || a.json()["stored"] == false,
            "{evil}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        let a = s.get_key("v4", evil, "").await;
        // Refused, or an absent key (no bytes).
        assert!(
            a.status == 400 || (a.status == 200 && a.body.is_empty()),
            "{evil}: {}",
            a.status
        );
    }
    assert!(!s.repo.parent().unwrap().join("x").exists());
    // Garbage instead of HTTP.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"\x00\x01\x02 not http at all\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw).await;
    assert!(
        raw.is_empty() || raw.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    // The server still serves.
    let a = s.post_key("v4", "checkpresent", &key, "").await;
    assert_eq!(a.status, 200);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules() {
    use base64::Engine as _;
    let mut p = AccessPolicy::default();
    p.unauth_read_only = true;
    p.auth_env_http = true;
    p.env_users = annex_http::server::auth::env_users([(
        "GIT_ANNEX_P2PHTTP_PASSWORD_alice".to_string(),
        "pw".to_string(),
    )]);
    let s = Served::start(p).await;
    let content = b"guarded".to_vec();
    let key = sha256e_key(&content, "");
    let a = put(&s, "v4", &key, &content, content.len() as u64, "").await;
    assert_eq!(a.status, 401);
    assert!(a.headers["www-authenticate"].contains("realm=\"git-annex\""));
    assert!(!s.has_object(&key));
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:pw")
    );
    let a = send(
        s.addr,
        "POST",
        &s.key_target("v4", "put", &key, ""),
        &[
            ("X-git-annex-data-length", content.len().to_string()),
            ("Authorization", auth),
        ],
        &content,
    )
    .await;
    assert_eq!(a.json()["stored"], true);
    let a = s.post_key("v4", "checkpresent", &key, "").await;
    assert_eq!(a.json()["present"], true, "reading needs no credentials");
    let a = s.post_key("v4", "remove", &key, "").await;
    assert_eq!(a.status, 401);
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:nope")
    );
    let a = send(
        s.addr,
        "POST",
        &s.key_target("v4", "remove", &key, ""),
        &[("Authorization", wrong)],
        b"",
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(s.has_object(&key));
    s.shutdown().await;

    // Nothing allowed without credentials, and none configured.
    let s = Served::start(AccessPolicy::default()).await;
    let a = s.post_key("v4", "checkpresent", &key, "").await;
    assert_eq!(a.status, 401);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_end_with_their_connection() {
    let s = Served::start(wide_open()).await;
    let content = b"locked content".to_vec();
    let key = sha256e_key(&content, "");
    put(&s, "v4", &key, &content, content.len() as u64, "").await;
    let a = s.post_key("v4", "lockcontent", &key, "").await;
    let lockid = a.json()["lockid"].as_str().unwrap().to_owned();
    // Keep it locked with a keeplocked request whose body stays open.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST {}/keeplocked?lockid={lockid}&clientuuid={CLIENT} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.base("v4")
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let line = b"{\"unlock\": false}\n";
    c.write_all(format!("{:x}\r\n", line.len()).as_bytes())
        .await
        .unwrap();
    c.write_all(line).await.unwrap();
    c.write_all(b"\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = s.post_key("v4", "remove", &key, "").await;
    assert_eq!(a.json()["removed"], false, "locked content is not removed");
    assert!(s.has_object(&key));
    // The connection breaks: the lock goes.
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = s.post_key("v4", "remove", &key, "").await;
    assert_eq!(a.json()["removed"], true);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_and_idle_ones() {
    let s = Served::start_with(ServerSettings {
        policy: wide_open(),
        header_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let key = sha256e_key(b"y", "");
    // Idle connections that never finish a request are dropped.
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"POST /git-annex/").await.unwrap();
        idle.push(c);
    }
    let target = s.key_target("v4", "checkpresent", &key, "");
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let target = target.clone();
            let addr = s.addr;
            tokio::spawn(async move { post(addr, &target).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for mut c in idle {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("an idle connection is closed by the server")
            .unwrap_or(0);
        // Either closed outright or answered with a timeout error first.
        assert!(
            n == 0 || buf.starts_with(b"HTTP/1.1 408") || buf.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    s.shutdown().await;
}
