//! What one client can cost the server: a GET whose client stops reading
//! and a PUT whose client stops sending end after their timeouts, freeing
//! what the repository held for them; a burst of requests for UUIDs not
//! served makes the server look for repositories once, and requests
//! refused anyway make it look only where git-annex's server would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use annex_http::server::{
    AccessPolicy, P2pHttp, Repositories, Server, ServerSettings, SingleRepository,
};
use annex_protocol::repository::{GetOutcome, GetSink, PutOutcome, PutSource};
use annex_protocol::{AssociatedFile, Forward, Key, MemoryRepository, RepoError, Repository, Uuid};
use annex_repo::LocalRepository;
use annex_test_support::{git, init_annex_repo, pseudo_random, sha256e_key};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CLIENT: &str = "79a5a1f4-07e8-11ef-873d-97f93ca91925";
const UNKNOWN: &str = "0e5d4a02-0000-4000-8000-000000000000";

/// A repository counting the transfers it is in the middle of.
struct Counting {
    inner: Arc<dyn Repository>,
    active: Arc<AtomicUsize>,
}

struct Active(Arc<AtomicUsize>);

impl Active {
    fn new(n: &Arc<AtomicUsize>) -> Active {
        n.fetch_add(1, Ordering::SeqCst);
        Active(n.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Forward for Counting {
    fn inner(&self) -> &dyn Repository {
        &*self.inner
    }

    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        let _active = Active::new(&self.active);
        self.inner.get(key, file, offset, sink).await
    }

    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        let _active = Active::new(&self.active);
        self.inner.put(key, file, source).await
    }
}

/// Serves `repo` with short send and receive timeouts; the address and
/// the count of transfers in progress.
async fn serve_counting(repo: Arc<dyn Repository>) -> (SocketAddr, Arc<AtomicUsize>) {
    let active = Arc::new(AtomicUsize::new(0));
    let counting = Counting {
        inner: repo,
        active: active.clone(),
    };
    let mut policy = AccessPolicy::default();
    policy.wide_open = true;
    let settings = ServerSettings {
        policy,
        send_timeout: Duration::from_secs(1),
        receive_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(
        Arc::new(SingleRepository::new(Arc::new(counting))),
        settings,
    );
    tokio::spawn(server.run(vec![listener], std::future::pending()));
    (addr, active)
}

/// Waits until no transfer is in progress; fails when one still is after
/// far longer than the timeouts (it then never ends).
async fn until_idle(active: &AtomicUsize, what: &str) {
    for _ in 0..2400 {
        if active.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: still in progress two minutes later");
}

/// Asks for `key` over HTTP/1.1 and reads nothing of the answer; returns
/// the connection once the repository has started sending.
async fn stalled_get(addr: SocketAddr, uuid: &Uuid, key: &str, active: &AtomicUsize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /git-annex/{uuid}/v4/key/{key}?clientuuid={CLIENT} HTTP/1.1\r\nHost: test\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    for _ in 0..2400 {
        if active.load(Ordering::SeqCst) > 0 {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the GET never started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_whose_client_stops_reading_ends() {
    // Far more than the socket buffers and the response's queue hold.
    let content = pseudo_random(48 << 20, 7);
    let key = sha256e_key(&content, ".bin");

    // Content streamed by the repository.
    let memory = MemoryRepository::new(Uuid::new_v4());
    memory.insert(Key::parse(&key).unwrap(), content.clone());
    let uuid = memory.uuid().clone();
    let (addr, active) = serve_counting(Arc::new(memory)).await;
    let _stalled = stalled_get(addr, &uuid, &key, &active).await;
    until_idle(&active, "a streamed GET to a client reading nothing").await;

    // Content sent from its file (sendfile).
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = init_annex_repo(tmp.path(), "repo", "served");
    std::fs::write(repo.join("big.bin"), &content).unwrap();
    git(&repo, &["annex", "add", "-q", "big.bin"]);
    let stored = git(&repo, &["annex", "lookupkey", "big.bin"]);
    assert_eq!(stored.trim(), key);
    let local = LocalRepository::open(&repo).unwrap();
    let uuid = local.uuid().clone();
    let (addr, active) = serve_counting(Arc::new(local)).await;
    let _stalled = stalled_get(addr, &uuid, &key, &active).await;
    until_idle(&active, "a GET from a file to a client reading nothing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_client_stops_sending_ends_and_stores_nothing() {
    let content = pseudo_random(1 << 20, 8);
    let key = sha256e_key(&content, ".bin");
    let memory = MemoryRepository::new(Uuid::new_v4());
    let uuid = memory.uuid().clone();
    let (addr, active) = serve_counting(Arc::new(memory.clone())).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /git-annex/{uuid}/v4/put?key={key}&clientuuid={CLIENT} HTTP/1.1\r\nHost: test\r\n\
         Content-Type: application/octet-stream\r\nX-git-annex-data-length: {len}\r\n\
         Content-Length: {len}\r\n\r\n",
        len = content.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&content[..100_000]).await.unwrap();
    // Then nothing more.
    for _ in 0..2400 {
        if active.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    until_idle(&active, "a PUT from a client sending nothing").await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut answer))
        .await
        .expect("the PUT was answered")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#""stored":false"#), "{text}");
    assert!(memory.content(&Key::parse(&key).unwrap()).is_none());
}

/// Repositories that count the looks made for UUIDs not served.
struct Looking {
    repo: Arc<dyn Repository>,
    looks: AtomicUsize,
    when_refused: bool,
}

impl Repositories for Looking {
    fn lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        (self.repo.uuid() == uuid).then(|| self.repo.clone())
    }

    fn rescans(&self) -> bool {
        true
    }

    fn rescan_and_lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        self.looks.fetch_add(1, Ordering::SeqCst);
        self.lookup(uuid)
    }

    fn rescan_when_refused(&self) -> bool {
        self.when_refused
    }

    fn uuids(&self) -> Vec<Uuid> {
        vec![self.repo.uuid().clone()]
    }
}

fn looking(when_refused: bool) -> Arc<Looking> {
    Arc::new(Looking {
        repo: Arc::new(MemoryRepository::new(Uuid::new_v4())),
        looks: AtomicUsize::new(0),
        when_refused,
    })
}

async fn checkpresent(service: &P2pHttp, uuid: &str) -> u16 {
    let key = sha256e_key(b"x", ".bin");
    let req = http::Request::post(format!(
        "/git-annex/{uuid}/v4/checkpresent?key={key}&clientuuid={CLIENT}"
    ))
    .body(http_body_util::Empty::<Bytes>::new())
    .unwrap();
    service.call(req).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_for_unknown_uuids_looks_once() {
    let repos = looking(false);
    let mut policy = AccessPolicy::default();
    policy.wide_open = true;
    let service = P2pHttp::new(repos.clone(), policy);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let service = service.clone();
        burst.spawn(async move { checkpresent(&service, UNKNOWN).await });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.unwrap(), 404);
    }
    // One look for the requests that came before it started, and at most
    // one more for any that came while it ran.
    let looks = repos.looks.load(Ordering::SeqCst);
    assert!((1..=2).contains(&looks), "{looks} looks for one burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_anyway_look_only_where_git_annex_would() {
    // Nobody may do anything without credentials, and there are none.
    let repos = looking(false);
    let service = P2pHttp::new(repos.clone(), AccessPolicy::default());
    // Unknown: 404 whoever asks, as git-annex answers; no look.
    assert_eq!(checkpresent(&service, UNKNOWN).await, 404);
    assert_eq!(repos.looks.load(Ordering::SeqCst), 0);
    // Served: refused.
    let known = repos.repo.uuid().to_string();
    assert_eq!(checkpresent(&service, &known).await, 401);

    // Where git-annex looks for every request (--directory), so does this.
    let repos = looking(true);
    let service = P2pHttp::new(repos.clone(), AccessPolicy::default());
    assert_eq!(checkpresent(&service, UNKNOWN).await, 404);
    assert_eq!(repos.looks.load(Ordering::SeqCst), 1);
}
