//! GETs of stored content over plain HTTP/1.1, which the server sends from
//! the object file with sendfile: the bytes that arrive for every size and
//! offset, several responses on one kept-alive connection, the ordinary
//! path of HTTP/1.0 beside it, and a client that goes away in the middle
//! of a large one. The repository is a real git-annex repository on disk;
//! git-annex must be installed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use annex_http::server::{AccessPolicy, Server, ServerSettings, SingleRepository};
use annex_repo::LocalRepository;
use annex_test_support::{git, init_annex_repo, pseudo_random};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CLIENT: &str = "79a5a1f4-07e8-11ef-873d-97f93ca91925";

struct Served {
    _tmp: tempfile::TempDir,
    uuid: String,
    addr: SocketAddr,
    /// (key, content) of each file stored.
    files: Vec<(String, Vec<u8>)>,
}

async fn serve(sizes: &[usize]) -> Served {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, uuid) = init_annex_repo(tmp.path(), "repo", "served");
    let mut files = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let content = pseudo_random(size, i as u64 + 1);
        let name = format!("f{i}");
        std::fs::write(repo.join(&name), &content).unwrap();
        git(&repo, &["annex", "add", "-q", &name]);
        let key = git(&repo, &["annex", "lookupkey", &name]).trim().to_owned();
        files.push((key, content));
    }
    let local = LocalRepository::open(&repo).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut policy = AccessPolicy::default();
    policy.wide_open = true;
    let settings = ServerSettings {
        policy,
        ..Default::default()
    };
    let server = Server::new(Arc::new(SingleRepository::new(Arc::new(local))), settings);
    tokio::spawn(server.run(vec![listener], std::future::pending()));
    Served {
        _tmp: tmp,
        uuid,
        addr,
        files,
    }
}

async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// GETs `path` on `sender`; the status, the data length header and the
/// body.
async fn get(sender: &mut SendRequest<Empty<Bytes>>, path: &str) -> (u16, Option<u64>, Vec<u8>) {
    let req = http::Request::get(path)
        .header("host", "test")
        .body(Empty::new())
        .unwrap();
    sender
        .ready()
        .await
        .expect("the connection is kept for another request");
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .expect("answered in time")
        .unwrap();
    let status = resp.status().as_u16();
    let len = resp
        .headers()
        .get("x-git-annex-data-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, len, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_size_and_offset_arrives_whole_on_one_connection() {
    let sizes = [0, 1, 2, 3, 4096, (1 << 20) + 7, 8 << 20];
    let s = serve(&sizes).await;
    let mut sender = connect(s.addr).await;
    for (key, content) in &s.files {
        let len = content.len();
        for offset in [0, 1, len / 2, len.saturating_sub(1), len] {
            for version in ["v4", "v1", "v0"] {
                let path = format!(
                    "/git-annex/{}/{version}/key/{key}?clientuuid={CLIENT}&offset={offset}",
                    s.uuid
                );
                let (status, data_length, body) = get(&mut sender, &path).await;
                assert_eq!(status, 200, "{path}");
                let want = &content[offset.min(len)..];
                assert_eq!(data_length, Some(want.len() as u64), "{path}");
                assert!(
                    body == want,
                    "{path}: {} bytes, not {}",
                    body.len(),
                    want.len()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_takes_the_ordinary_path() {
    let s = serve(&[3 << 20]).await;
    let (key, content) = &s.files[0];
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "GET /git-annex/{}/v4/key/{key}?clientuuid={CLIENT} HTTP/1.0\r\nHost: test\r\n\r\n",
        s.uuid
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(raw[..end].starts_with(b"HTTP/1.0 200"));
    assert!(raw[end..] == content[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_going_away_mid_transfer_leaves_the_server_serving() {
    let s = serve(&[64 << 20]).await;
    let (key, content) = &s.files[0];
    let path = format!("/git-annex/{}/v4/key/{key}?clientuuid={CLIENT}", s.uuid);
    for _ in 0..3 {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut some = vec![0u8; 1 << 20];
        stream.read_exact(&mut some).await.unwrap();
        drop(stream);
    }
    let mut sender = connect(s.addr).await;
    let (status, _, body) = get(&mut sender, &path).await;
    assert_eq!(status, 200);
    assert!(body == content[..]);
}
