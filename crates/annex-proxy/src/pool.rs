//! Proxied repositories for a long-running server: each node connected
//! on first use and kept; ssh sessions pooled up to a limit
//! (`--proxyconnections`), a session that fails replaced by a new one.
//! Content locks hold sessions of their own beyond that limit (up to a
//! bound), so that a client holding locks never keeps transfers and
//! checks from the node; a request waits for a session up to a deadline,
//! then fails saying which node was busy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annex_branch::Branch;
use annex_protocol::message::MAX_PROTOCOL_VERSION;
use annex_protocol::repository::{
    ContentLock, GetOutcome, GetSink, PutOutcome, PutSource, RemoveOutcome, Repository,
};
use annex_protocol::{AssociatedFile, Client, Key, RepoError, Repositories, Uuid};
use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::gateway::{Gateway, Proxied};
use crate::health::{self, NodeHealth};
use crate::node::{connect_bypassing, Node, Recorded};
use crate::remotes::GitRemotes;

enum Connected {
    /// Local, HTTP and directory nodes: one repository serves every
    /// request at once.
    Shared(Arc<dyn Repository>),
    /// ssh: sessions taken one per request.
    Sessions(Vec<Arc<Client>>),
}

/// How the pools of sessions to proxied nodes behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// The most ssh sessions to one node for transfers and checks
    /// (`--proxyconnections`).
    pub connections: usize,
    /// The most ssh sessions to one node holding content locks, beyond
    /// `connections`.
    pub lock_sessions: usize,
    /// How long a request waits for a free session before it fails.
    pub session_wait: Duration,
}

/// The most content locks held at once on one node reached over ssh, each
/// on a session of its own (git-annex's client locks one key at a time
/// for each drop it proves).
pub const DEFAULT_LOCK_SESSIONS: usize = 8;

/// How long a request waits for a free session to a node unless told
/// otherwise: long enough for transfers of ordinary files ahead of it to
/// finish.
pub const DEFAULT_SESSION_WAIT: Duration = Duration::from_secs(60);

impl PoolSettings {
    /// At most `connections` sessions per node for transfers and checks,
    /// and the defaults for the rest.
    pub fn new(connections: usize) -> PoolSettings {
        PoolSettings {
            connections: connections.max(1),
            lock_sessions: DEFAULT_LOCK_SESSIONS,
            session_wait: DEFAULT_SESSION_WAIT,
        }
    }
}

/// What a session is taken for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A transfer, check, removal or timestamp.
    Request,
    /// A content lock, held for as long as the client keeps it.
    Lock,
}

/// A proxied node, connected when first used.
pub struct NodePool {
    proxied: Proxied,
    gateway_work: PathBuf,
    gateway: Uuid,
    branch: Arc<Mutex<Branch>>,
    settings: PoolSettings,
    /// Sessions for requests.
    limit: Arc<Semaphore>,
    /// Sessions holding locks.
    lock_limit: Arc<Semaphore>,
    state: Arc<Mutex<Option<Connected>>>,
    local_git_dir: Mutex<Option<PathBuf>>,
    bypass: Vec<Uuid>,
    /// Whether the node answers (shared with every pool reaching it).
    health: Arc<NodeHealth>,
    /// Requests waiting for a free session.
    waiting: AtomicUsize,
    /// Reaches the node in place of its remote's location (tests).
    #[cfg(test)]
    connector: Option<tests::Connector>,
}

/// A session borrowed from the pool; given back unless it failed.
struct Lease<'a> {
    pool: &'a NodePool,
    repo: Arc<dyn Repository>,
    session: Option<Arc<Client>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lease<'_> {
    fn give_back(self, ok: bool) {
        if let Some(c) = self.session {
            if ok && !c.is_broken() {
                let mut st = self.pool.state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(Connected::Sessions(v)) = st.as_mut() {
                    v.push(c);
                }
            }
        }
    }
}

impl NodePool {
    /// A pool for `proxied`, with ssh sessions as `settings` says;
    /// `branch` is the gateway's (see [`connect`](crate::node::connect)).
    pub fn new(
        proxied: Proxied,
        gateway_work: &Path,
        gateway: Uuid,
        branch: Arc<Mutex<Branch>>,
        settings: PoolSettings,
    ) -> NodePool {
        let health = health::of(&proxied.uuid, &proxied.remote.name);
        NodePool {
            health,
            waiting: AtomicUsize::new(0),
            proxied,
            gateway_work: gateway_work.to_owned(),
            gateway,
            branch,
            settings,
            limit: Arc::new(Semaphore::new(settings.connections.max(1))),
            lock_limit: Arc::new(Semaphore::new(settings.lock_sessions.max(1))),
            state: Arc::new(Mutex::new(None)),
            local_git_dir: Mutex::new(None),
            bypass: Vec::new(),
            #[cfg(test)]
            connector: None,
        }
    }

    /// The same pool, asking the node not to relay to the gateways in
    /// `bypass` (for a node that is a cluster behind another gateway).
    pub fn with_bypass(mut self, bypass: Vec<Uuid>) -> NodePool {
        self.bypass = bypass;
        self
    }

    /// What the pool reaches.
    pub fn proxied(&self) -> &Proxied {
        &self.proxied
    }

    /// The gateways the node is asked not to relay to.
    pub fn bypass(&self) -> &[Uuid] {
        &self.bypass
    }

    /// How the pool's sessions behave.
    pub fn settings(&self) -> PoolSettings {
        self.settings
    }

    /// Whether the node answers.
    pub fn health(&self) -> &Arc<NodeHealth> {
        &self.health
    }

    /// The ssh sessions open to the node (idle, or taken by a request or
    /// a lock), and the requests waiting for one.
    pub fn sessions(&self) -> (usize, usize) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let open = match st.as_ref() {
            Some(Connected::Sessions(idle)) => {
                let taken = self
                    .settings
                    .connections
                    .max(1)
                    .saturating_sub(self.limit.available_permits())
                    + self
                        .settings
                        .lock_sessions
                        .max(1)
                        .saturating_sub(self.lock_limit.available_permits());
                idle.len() + taken
            }
            _ => 0,
        };
        (open, self.waiting.load(Ordering::Relaxed))
    }

    /// Tries a down node again when it is due (with a timestamp request),
    /// marking it up if it answers. Does nothing for a node that is up,
    /// resting, or being probed already.
    pub async fn probe(&self) {
        if !self.health.start_probe() {
            return;
        }
        // A failure to connect marks the node down again in lease.
        if let Ok(l) = self.lease(Purpose::Request).await {
            let r = l.repo.get_timestamp().await;
            l.give_back(r.is_ok());
            match r {
                Err(e) if health::is_unreachable(&e) => self.health.failed(&e),
                // An answer, even an error, is the node's.
                _ => self.health.answered(),
            }
        }
        self.health.probe_done();
    }

    /// Records how a request to the node ended: an error saying no
    /// connection could be made (a node over HTTP connects per request)
    /// marks it down; a session that broke does not (the next request
    /// opens a new one, whose failure marks it). `transport` says whether
    /// the request's errors count at all: not for transfers, whose errors
    /// may be the client's.
    fn outcome<T>(&self, r: &Result<T, RepoError>, transport: bool) {
        match r {
            Ok(_) => self.health.answered(),
            Err(e) if transport && health::is_connect_failure(e) => self.health.failed(e),
            Err(_) => {}
        }
    }

    /// A free session for `purpose`, waiting for one up to the deadline.
    async fn permit(&self, purpose: Purpose) -> Result<OwnedSemaphorePermit, RepoError> {
        let (limit, what, n, hint) = match purpose {
            Purpose::Request => (
                &self.limit,
                "transfers and checks",
                self.settings.connections,
                "; see --proxyconnections",
            ),
            Purpose::Lock => (
                &self.lock_limit,
                "content locks",
                self.settings.lock_sessions,
                "",
            ),
        };
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waited = Waiting(&self.waiting);
        match tokio::time::timeout(self.settings.session_wait, limit.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(e)) => Err(RepoError::failed(e)),
            Err(_) => Err(RepoError::Other(format!(
                "{}: no ssh session to the node came free within {} s (all {n} sessions for {what} \
                 are in use{hint})",
                self.proxied.remote.name,
                self.settings.session_wait.as_secs()
            ))),
        }
    }

    /// Closes the idle ssh sessions, letting each node's git-annex-shell
    /// finish (and commit) as at the end of any session.
    pub async fn close(&self) {
        let sessions = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match st.as_mut() {
                Some(Connected::Sessions(v)) => std::mem::take(v),
                _ => Vec::new(),
            }
        };
        for c in sessions {
            if let Ok(c) = Arc::try_unwrap(c) {
                let _ = c.close().await;
            }
        }
    }

    /// The git directory of the node, when it is a repository used in
    /// this process (and has been used).
    pub fn local_git_dir(&self) -> Option<PathBuf> {
        self.local_git_dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A new connection to the node: an ssh session, or the repository
    /// that serves every request.
    async fn connect(&self) -> Result<Node, RepoError> {
        #[cfg(test)]
        if let Some(connect) = &self.connector {
            return connect().await;
        }
        connect_bypassing(
            &self.proxied,
            &self.gateway_work,
            &self.gateway,
            MAX_PROTOCOL_VERSION,
            &self.branch,
            &self.bypass,
        )
        .await
    }

    async fn lease(&self, purpose: Purpose) -> Result<Lease<'_>, RepoError> {
        // A node down and not due to be tried again fails at once.
        if self.health.is_resting() {
            return Err(self.health.down_error());
        }
        {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(Connected::Shared(r)) = st.as_ref() {
                return Ok(Lease {
                    pool: self,
                    repo: r.clone(),
                    session: None,
                    permit: None,
                });
            }
        }
        let permit = self.permit(purpose).await?;
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match st.as_mut() {
                Some(Connected::Shared(r)) => {
                    return Ok(Lease {
                        pool: self,
                        repo: r.clone(),
                        session: None,
                        permit: None,
                    })
                }
                Some(Connected::Sessions(v)) => {
                    // Sessions that broke while idle are dropped.
                    while let Some(c) = v.pop() {
                        if !c.is_broken() {
                            return Ok(Lease {
                                pool: self,
                                repo: c.clone(),
                                session: Some(c),
                                permit: Some(permit),
                            });
                        }
                    }
                }
                None => {}
            }
        }
        let node = self.connect().await.map_err(|e| {
            if health::is_unreachable(&e) {
                self.health.failed(&e);
            }
            RepoError::context(self.proxied.remote.name.clone(), e)
        })?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match node {
            Node::Ssh(c) => {
                if st.is_none() {
                    *st = Some(Connected::Sessions(Vec::new()));
                }
                let c = Arc::new(c);
                Ok(Lease {
                    pool: self,
                    repo: c.clone(),
                    session: Some(c),
                    permit: Some(permit),
                })
            }
            other => {
                if let Node::Local(l) = &other {
                    *self.local_git_dir.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(l.git_dir().to_owned());
                }
                let r = other.into_repository();
                *st = Some(Connected::Shared(r.clone()));
                Ok(Lease {
                    pool: self,
                    repo: r,
                    session: None,
                    permit: None,
                })
            }
        }
    }
}

/// Counts a request waiting for a session while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A content lock that keeps its ssh session out of the pool while held.
/// Released, it has the node unlock at once (a node whose lock holder
/// goes away keeps the content locked for a while, as git-annex does)
/// and gives the session back.
struct HeldLock {
    lock: Option<ContentLock>,
    _repo: Option<Arc<dyn Repository>>,
    session: Option<Arc<Client>>,
    state: Arc<Mutex<Option<Connected>>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        drop(self.lock.take());
        let (Some(c), Ok(rt)) = (self.session.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let state = self.state.clone();
        let permit = self.permit.take();
        rt.spawn(async move {
            if c.flush().await.is_ok() && !c.is_broken() {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(Connected::Sessions(v)) = st.as_mut() {
                    v.push(c);
                }
            }
            drop(permit);
        });
    }
}

#[async_trait]
impl Repository for NodePool {
    fn uuid(&self) -> &Uuid {
        &self.proxied.uuid
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        let l = self.lease(Purpose::Request).await?;
        let r = l.repo.check_present(key).await;
        l.give_back(r.is_ok());
        self.outcome(&r, true);
        r
    }

    async fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, RepoError> {
        let l = self.lease(Purpose::Lock).await?;
        let r = l.repo.lock_content(key).await;
        self.outcome(&r, true);
        match r {
            Ok(Some(lock)) => Ok(Some(ContentLock::new(HeldLock {
                lock: Some(lock),
                _repo: Some(l.repo.clone()),
                session: l.session,
                state: self.state.clone(),
                permit: l.permit,
            }))),
            Ok(None) => {
                l.give_back(true);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        let l = self.lease(Purpose::Request).await?;
        let r = l.repo.remove(key, before).await;
        l.give_back(r.is_ok());
        self.outcome(&r, true);
        r
    }

    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        let l = self.lease(Purpose::Request).await?;
        let r = l.repo.get_timestamp().await;
        l.give_back(r.is_ok());
        self.outcome(&r, true);
        r
    }

    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        let l = self.lease(Purpose::Request).await?;
        let r = l.repo.get(key, file, offset, sink).await;
        l.give_back(r.is_ok());
        self.outcome(&r, false);
        r
    }

    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        let l = self.lease(Purpose::Request).await?;
        let r = l.repo.put(key, file, source).await;
        l.give_back(r.is_ok());
        self.outcome(&r, false);
        r
    }
}

/// When a gateway's configuration last changed, as
/// [`GatewayRepositories::stamp`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigStamp(Vec<Option<std::time::SystemTime>>);

/// A proxied node's pool, and the pool as served (its changes recorded).
type ServedNode = (Arc<NodePool>, Arc<dyn Repository>);

/// The repositories a gateway's p2phttp serves: its own, and the ones it
/// proxies. proxy.log and git config are read once, and again when a
/// request names an unknown UUID or (with [`GatewayRepositories::watch`])
/// when either changes, so that `updateproxy` and config changes take
/// effect without a restart.
pub struct GatewayRepositories {
    own: Arc<dyn Repository>,
    work: PathBuf,
    git_dir: PathBuf,
    settings: PoolSettings,
    branch: Arc<Mutex<Branch>>,
    /// Held while reading the configuration: one read at a time.
    reloading: Mutex<()>,
    nodes: Mutex<HashMap<Uuid, ServedNode>>,
    /// The configuration last read, for refusals.
    gateway: Mutex<Option<Gateway>>,
    /// Counts the reloads, so that users of the configuration can tell
    /// when to rebuild what they made of it.
    generation: std::sync::atomic::AtomicU64,
}

impl GatewayRepositories {
    /// Serves `own` (at `work`, with its git directory `git_dir`) and what
    /// it proxies, with at most `connections` ssh sessions per node.
    pub fn new(
        own: Arc<dyn Repository>,
        work: &Path,
        git_dir: &Path,
        connections: usize,
    ) -> Result<GatewayRepositories, annex_branch::BranchError> {
        GatewayRepositories::with_settings(own, work, git_dir, PoolSettings::new(connections))
    }

    /// [`new`](GatewayRepositories::new), with the nodes' sessions as
    /// `settings` says.
    pub fn with_settings(
        own: Arc<dyn Repository>,
        work: &Path,
        git_dir: &Path,
        settings: PoolSettings,
    ) -> Result<GatewayRepositories, annex_branch::BranchError> {
        let branch = Branch::open(git_dir)?;
        let g = GatewayRepositories {
            own,
            work: work.to_owned(),
            git_dir: git_dir.to_owned(),
            settings,
            branch: Arc::new(Mutex::new(branch)),
            reloading: Mutex::new(()),
            nodes: Mutex::new(HashMap::new()),
            gateway: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        };
        g.reload();
        Ok(g)
    }

    /// When git config or the git-annex branch last changed (blocking).
    pub fn stamp(&self) -> ConfigStamp {
        ConfigStamp(
            ["config", "refs/heads/git-annex", "packed-refs"]
                .iter()
                .map(|f| {
                    std::fs::metadata(self.git_dir.join(f))
                        .and_then(|m| m.modified())
                        .ok()
                })
                .collect(),
        )
    }

    /// Reads proxy.log and git config again when either changed since
    /// `last` (blocking); returns whether it did.
    pub fn reload_if_changed(&self, last: &mut ConfigStamp) -> bool {
        let now = self.stamp();
        if now == *last {
            return false;
        }
        *last = now;
        self.reload();
        true
    }

    /// Reads proxy.log and git config again whenever either changes,
    /// checking every `every` on a blocking thread; runs until the task is
    /// dropped.
    pub async fn watch(self: Arc<Self>, every: std::time::Duration) {
        let me = self.clone();
        let Ok(mut last) = tokio::task::spawn_blocking(move || me.stamp()).await else {
            return;
        };
        loop {
            tokio::time::sleep(every).await;
            let me = self.clone();
            match tokio::task::spawn_blocking(move || {
                me.reload_if_changed(&mut last);
                last
            })
            .await
            {
                Ok(l) => last = l,
                Err(_) => return,
            }
        }
    }

    /// Reads proxy.log and git config again: nodes no longer proxied are
    /// dropped, new ones added, reconfigured ones reconnected.
    pub fn reload(&self) {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(remotes) = GitRemotes::read(&self.git_dir) else {
            return;
        };
        let gateway = {
            let b = self.branch.lock().unwrap_or_else(|p| p.into_inner());
            match Gateway::load(&b, self.own.uuid().clone(), remotes) {
                Ok(g) => g,
                Err(_) => return,
            }
        };
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let allowed: Vec<Proxied> = gateway.proxied().collect();
        *self.gateway.lock().unwrap_or_else(|p| p.into_inner()) = Some(gateway);
        nodes.retain(|u, _| allowed.iter().any(|p| &p.uuid == u));
        for p in allowed {
            let u = p.uuid.clone();
            // A node whose remote is configured as before keeps its
            // connections; one reconfigured gets a new pool.
            if nodes
                .get(&u)
                .is_some_and(|(pool, _)| pool.proxied.remote == p.remote)
            {
                continue;
            }
            {
                let pool = Arc::new(NodePool::new(
                    p,
                    &self.work,
                    self.own.uuid().clone(),
                    self.branch.clone(),
                    self.settings,
                ));
                let repo: Arc<dyn Repository> =
                    Arc::new(Recorded::new(pool.clone(), self.branch.clone()));
                nodes.insert(u, (pool, repo));
            }
        }
    }

    /// The configuration last read.
    pub fn gateway(&self) -> Option<Gateway> {
        self.gateway
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many times the configuration has been read.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The gateway's git-annex branch, shared with the nodes' records.
    pub fn branch(&self) -> &Arc<Mutex<Branch>> {
        &self.branch
    }

    /// Where the gateway's working tree is (relative remote paths start
    /// there).
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// The gateway's own repository.
    pub fn own(&self) -> &Arc<dyn Repository> {
        &self.own
    }

    /// The most ssh sessions per node for transfers and checks.
    pub fn connections(&self) -> usize {
        self.settings.connections
    }

    /// How the nodes' sessions behave.
    pub fn pool_settings(&self) -> PoolSettings {
        self.settings
    }

    /// The pool of a proxied node, when it is proxied.
    pub fn pool(&self, uuid: &Uuid) -> Option<Arc<NodePool>> {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uuid)
            .map(|(p, _)| p.clone())
    }

    /// Every proxied node's pool.
    pub fn pools(&self) -> Vec<Arc<NodePool>> {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Closes the nodes' idle ssh sessions (at shutdown).
    pub async fn close(&self) {
        let pools: Vec<Arc<NodePool>> = self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|(p, _)| p.clone())
            .collect();
        for p in pools {
            p.close().await;
        }
    }

    /// Commits the journals of the gateway and of the nodes used in this
    /// process (at shutdown).
    pub fn commit(&self) -> Vec<String> {
        let mut errors = Vec::new();
        {
            let b = self.branch.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = b.commit("update") {
                errors.push(e.to_string());
            }
        }
        let dirs: Vec<PathBuf> = self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|(p, _)| p.local_git_dir())
            .collect();
        for d in dirs {
            if let Err(e) = crate::node::commit_journal(&d) {
                errors.push(e.to_string());
            }
        }
        errors
    }
}

impl Repositories for GatewayRepositories {
    fn lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        if self.own.uuid() == uuid {
            return Some(self.own.clone());
        }
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uuid)
            .map(|(_, r)| r.clone())
    }

    fn rescans(&self) -> bool {
        true
    }

    fn rescan_and_lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        self.reload();
        self.lookup(uuid)
    }

    fn refusal(&self, uuid: &Uuid) -> Option<String> {
        let g = self.gateway.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref()?.http_refusal(uuid)
    }

    fn uuids(&self) -> Vec<Uuid> {
        let mut v = vec![self.own.uuid().clone()];
        v.extend(
            self.nodes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned(),
        );
        v
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use annex_protocol::client::ClientOptions;
    use annex_protocol::content::BytesSource;
    use annex_protocol::memory::MemoryRepository;
    use annex_protocol::repository::PutData;
    use annex_protocol::server::{serve, ServerOptions};
    use annex_protocol::Validity;
    use tokio::sync::oneshot;

    use super::*;
    use crate::remotes::Remote;

    /// Makes a new connection to a pool's node.
    pub(super) type Connector = Arc<
        dyn Fn() -> Pin<Box<dyn Future<Output = Result<Node, RepoError>> + Send>> + Send + Sync,
    >;

    /// A node in memory served over the P2P protocol, as git-annex-shell
    /// serves it over ssh: each connection a session of its own, counted,
    /// and each of them can be cut.
    struct Served {
        repo: MemoryRepository,
        sessions: AtomicUsize,
        servers: Mutex<Vec<tokio::task::AbortHandle>>,
    }

    impl Served {
        fn new() -> Arc<Served> {
            Arc::new(Served {
                repo: MemoryRepository::new(Uuid::new_v4()),
                sessions: AtomicUsize::new(0),
                servers: Mutex::new(Vec::new()),
            })
        }

        fn sessions(&self) -> usize {
            self.sessions.load(Ordering::SeqCst)
        }

        /// Ends every session from the node's side, as a node that
        /// restarts or a network that fails.
        fn cut(&self) {
            for s in self.servers.lock().unwrap().drain(..) {
                s.abort();
            }
        }

        fn connector(self: &Arc<Self>) -> Connector {
            let node = self.clone();
            Arc::new(move || {
                let node = node.clone();
                Box::pin(async move {
                    let (ours, theirs) = tokio::io::duplex(1 << 16);
                    let repo = node.repo.clone();
                    let server = tokio::spawn(async move {
                        let _ = serve(theirs, &repo, &ServerOptions::default()).await;
                    });
                    node.servers.lock().unwrap().push(server.abort_handle());
                    node.sessions.fetch_add(1, Ordering::SeqCst);
                    let (r, w) = tokio::io::split(ours);
                    Ok(Node::Ssh(
                        Client::connect(r, w, &ClientOptions::default()).await?,
                    ))
                })
            })
        }
    }

    /// A pool of sessions to `node` as `settings` says, for a gateway
    /// whose branch is in `tmp`.
    fn pool(node: &Arc<Served>, settings: PoolSettings, tmp: &Path) -> Arc<NodePool> {
        annex_test_support::git(tmp, &["init", "-q"]);
        let branch = Arc::new(Mutex::new(Branch::open(tmp).unwrap()));
        let uuid = node.repo.uuid().clone();
        let remote = Remote {
            name: "n1".into(),
            url: Some("ssh://host/srv/n1".into()),
            uuid: Some(uuid.clone()),
            ..Remote::default()
        };
        let mut pool = NodePool::new(
            Proxied { uuid, remote },
            tmp,
            Uuid::new_v4(),
            branch,
            settings,
        );
        pool.connector = Some(node.connector());
        Arc::new(pool)
    }

    fn key(n: u8) -> Key {
        Key::parse(&format!("SHA256E-s5--{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    /// Content that waits to be sent until told to, saying when it is
    /// asked for: an upload that holds its session.
    struct Held {
        asked: Option<oneshot::Sender<()>>,
        go: Option<oneshot::Receiver<()>>,
        content: BytesSource,
    }

    #[async_trait]
    impl PutSource for Held {
        async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
            if let Some(asked) = self.asked.take() {
                let _ = asked.send(());
            }
            if let Some(go) = self.go.take() {
                let _ = go.await;
            }
            self.content.open(offset).await
        }

        async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
            self.content.validity().await
        }
    }

    /// Starts an upload of `key` through `pool` that holds its session
    /// until the sender returned is used (or dropped); returns once the
    /// upload has its session.
    async fn hold_a_session(
        pool: &Arc<NodePool>,
        key: Key,
    ) -> (
        oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<PutOutcome, RepoError>>,
    ) {
        let (asked_tx, asked) = oneshot::channel();
        let (go, go_rx) = oneshot::channel();
        let pool = pool.clone();
        let upload = tokio::spawn(async move {
            let mut source = Held {
                asked: Some(asked_tx),
                go: Some(go_rx),
                content: BytesSource::new(&b"hello"[..]),
            };
            pool.put(&key, &AssociatedFile::none(), &mut source).await
        });
        asked.await.unwrap();
        (go, upload)
    }

    #[tokio::test]
    async fn sessions_are_reused_and_opened_only_for_requests_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let node = Served::new();
        let p = pool(&node, PoolSettings::new(2), tmp.path());
        assert_eq!(node.sessions(), 0, "connected before first use");
        for _ in 0..5 {
            assert!(!p.check_present(&key(1)).await.unwrap());
        }
        assert_eq!(node.sessions(), 1);

        // A second request while the first holds its session: a second
        // session, and both kept.
        let (go, upload) = hold_a_session(&p, key(2)).await;
        assert!(!p.check_present(&key(1)).await.unwrap());
        assert_eq!(node.sessions(), 2);
        go.send(()).unwrap();
        assert_eq!(
            upload.await.unwrap().unwrap(),
            PutOutcome::Stored(Vec::new())
        );
        for _ in 0..5 {
            assert!(p.check_present(&key(2)).await.unwrap());
        }
        assert_eq!(node.sessions(), 2);
    }

    #[tokio::test]
    async fn a_broken_session_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let node = Served::new();
        node.repo.insert(key(1), &b"hello"[..]);
        let p = pool(&node, PoolSettings::new(1), tmp.path());
        assert!(p.check_present(&key(1)).await.unwrap());
        node.cut();
        // The request on the cut session fails; the session is not given
        // back, and the next request has a new one.
        assert!(p.check_present(&key(1)).await.is_err());
        assert!(p.check_present(&key(1)).await.unwrap());
        assert!(p.check_present(&key(1)).await.unwrap());
        assert_eq!(node.sessions(), 2);
    }

    /// Content locks take sessions of their own beyond the ones for
    /// transfers and checks, up to their own bound; a lock released
    /// gives its session back.
    #[tokio::test(start_paused = true)]
    async fn locks_hold_sessions_apart_from_transfers() {
        let tmp = tempfile::tempdir().unwrap();
        let node = Served::new();
        node.repo.insert(key(1), &b"hello"[..]);
        let settings = PoolSettings {
            connections: 1,
            lock_sessions: 2,
            session_wait: Duration::from_secs(60),
        };
        let p = pool(&node, settings, tmp.path());
        let (go, upload) = hold_a_session(&p, key(2)).await;
        let first = p.lock_content(&key(1)).await.unwrap().unwrap();
        let second = p.lock_content(&key(1)).await.unwrap().unwrap();
        assert!(node.repo.is_locked(&key(1)));
        assert_eq!(node.sessions(), 3);
        // Both lock sessions are taken: a third lock waits for one, and
        // gives up at the deadline, saying why.
        let err = p.lock_content(&key(1)).await.unwrap_err().to_string();
        assert!(
            err.contains("n1: no ssh session to the node came free within 60 s")
                && err.contains("all 2 sessions for content locks are in use"),
            "{err}"
        );
        // A lock released unlocks on the node and gives its session back,
        // which the next lock takes.
        drop(first);
        let third = p.lock_content(&key(1)).await.unwrap().unwrap();
        assert_eq!(node.sessions(), 3);
        drop((second, third));
        go.send(()).unwrap();
        upload.await.unwrap().unwrap();
        assert!(p.check_present(&key(2)).await.unwrap());
        assert!(!node.repo.is_locked(&key(1)));
        assert_eq!(node.sessions(), 3);
    }

    /// A request waits for a session while all are in use: it has one
    /// when one comes free, or fails at the deadline naming the node.
    #[tokio::test(start_paused = true)]
    async fn a_request_waits_for_a_session_until_its_deadline() {
        let tmp = tempfile::tempdir().unwrap();
        let node = Served::new();
        let mut settings = PoolSettings::new(1);
        settings.session_wait = Duration::from_secs(30);
        let p = pool(&node, settings, tmp.path());

        let (go, upload) = hold_a_session(&p, key(1)).await;
        let waiting = {
            let p = p.clone();
            tokio::spawn(async move { p.check_present(&key(1)).await })
        };
        // The request waits (it neither fails nor goes ahead while the
        // session is held), and has the session once it frees.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished());
        go.send(()).unwrap();
        upload.await.unwrap().unwrap();
        assert!(waiting.await.unwrap().unwrap());

        let (go, upload) = hold_a_session(&p, key(2)).await;
        let err = p.check_present(&key(1)).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "n1: no ssh session to the node came free within 30 s (all 1 sessions for \
             transfers and checks are in use; see --proxyconnections)"
        );
        go.send(()).unwrap();
        upload.await.unwrap().unwrap();
        assert_eq!(node.sessions(), 1);
    }
}
