//! A cluster as one [`Repository`], made of its nodes' repositories, with
//! git-annex's behaviour (Annex/Cluster.hs, P2P/Proxy.hs):
//!
//! - CHECKPRESENT asks a node that the location log says has the key;
//!   no such node: not present.
//! - GET sends from a node the log says has the key and that is up: the
//!   cheapest (a node's cost counts the gateways in between, so the
//!   nearest copy is read), the least busy among equally cheap ones, and
//!   of those the fastest lately; a node that fails or turns out not to
//!   have it is replaced by the next, from where it stopped.
//! - LOCKCONTENT fails: content is locked on a node, not on the cluster.
//! - REMOVE goes to every node (the log may be stale); the answer names
//!   the nodes it was removed from.
//! - GETTIMESTAMP is the gateway's clock when there are several nodes,
//!   translated to each node's clock for REMOVE-BEFORE.
//! - PUT goes to the nodes [`Placement`] chooses, streamed to all of them
//!   at once ([`fanout`](crate::fanout)); the answer names the nodes that
//!   stored it. The cluster's own UUID is never recorded as a location.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use annex_protocol::repository::{
    ContentLock, GetOutcome, GetSink, PutOutcome, PutSource, RemoveOutcome, Repository,
};
use annex_protocol::{AssociatedFile, Forward, Key, RepoError, Uuid};
use async_trait::async_trait;
use futures_util::future::join_all;
use rand::Rng;

use crate::fanout::{put_all, NodeResult};
use crate::nodes::NodeSpec;
use crate::placement::Placement;
use crate::relay::{get_from_any, Tracked};

/// The weight of the latest download in a node's recent speed.
const SPEED_WEIGHT: f64 = 0.3;

/// A node whose downloads are timed into its recent speed.
struct Timed<'a>(&'a ClusterNode);

#[async_trait]
impl Forward for Timed<'_> {
    fn inner(&self) -> &dyn Repository {
        &*self.0.repo
    }

    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        let start = Instant::now();
        let r = self.0.repo.get(key, file, offset, sink).await;
        if let (Ok(GetOutcome::Sent { .. }), Some(size)) = (&r, key.size()) {
            self.0
                .record_speed(size.saturating_sub(offset), start.elapsed());
        }
        r
    }
}

/// Makes the same node again, asking it to avoid more gateways.
pub type Rebypass = Arc<dyn Fn(&[Uuid]) -> Arc<dyn Repository> + Send + Sync>;

/// One node of a cluster.
pub struct ClusterNode {
    /// Which remote it is.
    pub spec: NodeSpec,
    /// The node, its changes recorded in the gateway's branch.
    pub repo: Arc<dyn Repository>,
    /// Transfers under way from or to it.
    busy: AtomicUsize,
    /// For the cluster behind another gateway: the node again, avoiding
    /// more gateways.
    rebypass: Option<Rebypass>,
    /// Whether the node answers (as its pools find).
    health: Arc<annex_proxy::health::NodeHealth>,
    /// Its recent download speed, bytes per second, as f64 bits (0: not
    /// measured yet).
    speed: AtomicU64,
}

impl ClusterNode {
    /// A node.
    pub fn new(spec: NodeSpec, repo: Arc<dyn Repository>, rebypass: Option<Rebypass>) -> Self {
        let health = annex_proxy::health::of(&spec.proxied.uuid, &spec.proxied.remote.name);
        ClusterNode {
            spec,
            repo,
            busy: AtomicUsize::new(0),
            rebypass,
            health,
            speed: AtomicU64::new(0),
        }
    }

    /// How fast the node sent content lately, in bytes per second (a
    /// moving average of its downloads); `None` before its first.
    pub fn recent_speed(&self) -> Option<f64> {
        let s = f64::from_bits(self.speed.load(Ordering::Relaxed));
        (s > 0.0).then_some(s)
    }

    /// Counts a download of `bytes` that took `took` in the recent speed.
    fn record_speed(&self, bytes: u64, took: Duration) {
        let now = (bytes.max(1) as f64) / took.as_secs_f64().max(1e-6);
        let new = match self.recent_speed() {
            Some(old) => old * (1.0 - SPEED_WEIGHT) + now * SPEED_WEIGHT,
            None => now,
        };
        self.speed.store(new.to_bits(), Ordering::Relaxed);
    }

    /// Whether the node answered when last tried: a node down is skipped
    /// for downloads and left out of uploads.
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    /// The node's UUID (for the cluster behind another gateway, the
    /// cluster's).
    pub fn uuid(&self) -> &Uuid {
        &self.spec.proxied.uuid
    }

    /// Whether the node is a repository on this machine, used in the
    /// gateway's process.
    pub fn is_local(&self) -> bool {
        matches!(
            self.spec.proxied.remote.location(),
            annex_repo::remotes::Location::Local(_)
        )
    }

    fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(&self.busy)
    }
}

struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A cluster served by this gateway.
pub struct Cluster {
    uuid: Uuid,
    here: Uuid,
    nodes: Vec<Arc<ClusterNode>>,
    placement: Arc<Placement>,
    jobs: Option<usize>,
}

impl Cluster {
    /// The cluster `uuid` served by the gateway `here`, with its nodes
    /// (cheapest first). At most `jobs` nodes are written to at once
    /// (`None`: all).
    pub fn new(
        uuid: Uuid,
        here: Uuid,
        nodes: Vec<Arc<ClusterNode>>,
        placement: Arc<Placement>,
        jobs: Option<usize>,
    ) -> Cluster {
        Cluster {
            uuid,
            here,
            nodes,
            placement,
            jobs,
        }
    }

    /// The nodes, cheapest first.
    pub fn nodes(&self) -> &[Arc<ClusterNode>] {
        &self.nodes
    }

    async fn locations(&self, key: &Key) -> Result<HashSet<Uuid>, RepoError> {
        let p = self.placement.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || p.locations(&key))
            .await
            .map_err(RepoError::failed)?
            .map(|l| l.into_iter().collect())
            .map_err(|e| RepoError::context("reading the location log", e))
    }

    /// The nodes the location log says have the key, in the order to try
    /// them: the least busy of the cheapest first (chosen at random among
    /// equals), then the others by cost.
    async fn containing(&self, key: &Key) -> Result<Vec<Arc<ClusterNode>>, RepoError> {
        let locs = self.locations(key).await?;
        let mut have: Vec<Arc<ClusterNode>> = self
            .nodes
            .iter()
            .filter(|n| locs.contains(n.uuid()) && n.is_up())
            .cloned()
            .collect();
        // At the same cost, a node reached directly comes before the
        // cluster behind another gateway.
        have.sort_by(|a, b| {
            a.spec
                .cost
                .partial_cmp(&b.spec.cost)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(
                    a.spec
                        .via_gateway
                        .is_some()
                        .cmp(&b.spec.via_gateway.is_some()),
                )
        });
        let Some(first) = have.first() else {
            return Ok(have);
        };
        let lowest = first.spec.cost;
        let direct = first.spec.via_gateway.is_none();
        let cheapest = have
            .iter()
            .take_while(|n| n.spec.cost == lowest && n.spec.via_gateway.is_none() == direct)
            .count();
        let least = have[..cheapest]
            .iter()
            .map(|n| n.busy.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        let idle: Vec<usize> = (0..cheapest)
            .filter(|&i| have[i].busy.load(Ordering::Relaxed) == least)
            .collect();
        // Of those, the fastest lately; a node not measured yet is tried
        // as if it were as fast.
        let fastest = idle
            .iter()
            .filter_map(|&i| have[i].recent_speed())
            .fold(0.0, f64::max);
        let idle: Vec<usize> = idle
            .into_iter()
            .filter(|&i| have[i].recent_speed().is_none_or(|s| s >= fastest))
            .collect();
        let pick = idle[rand::thread_rng().gen_range(0..idle.len())];
        have[..=pick].rotate_right(1);
        Ok(have)
    }
}

/// Adds `u` to `list` unless it is there.
fn push_unique(list: &mut Vec<Uuid>, u: &Uuid) {
    if !list.contains(u) {
        list.push(u.clone());
    }
}

#[async_trait]
impl Repository for Cluster {
    fn uuid(&self) -> &Uuid {
        &self.uuid
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        match self.containing(key).await?.first() {
            Some(n) => n.repo.check_present(key).await,
            None => Ok(false),
        }
    }

    async fn lock_content(&self, _key: &Key) -> Result<Option<ContentLock>, RepoError> {
        // Locked on a node instead, through the node's own proxied remote.
        Ok(None)
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        if self.nodes.is_empty() {
            return Ok(RemoveOutcome::default());
        }
        let translate = self.nodes.len() > 1;
        let limit = self
            .jobs
            .map(|j| Arc::new(tokio::sync::Semaphore::new(j.max(1))));
        let results = join_all(self.nodes.iter().map(|n| {
            let limit = limit.clone();
            async move {
                let _permit = match &limit {
                    Some(l) => l.clone().acquire_owned().await.ok(),
                    None => None,
                };
                let _busy = n.busy();
                let before = match before {
                    Some(ts) if translate => {
                        // The deadline is on the gateway's clock: carry
                        // what is left of it over to the node's.
                        match n.repo.get_timestamp().await {
                            Ok(node_now) => {
                                let now = annex_repo::monotonic_seconds();
                                if now >= ts {
                                    return Err(RepoError::Other("removal deadline passed".into()));
                                }
                                Some(node_now + (ts - now))
                            }
                            // A node too old for timestamps is asked to
                            // remove without one, as git-annex asks it.
                            Err(RepoError::Unsupported(_)) => None,
                            Err(e) => return Err(e),
                        }
                    }
                    other => other,
                };
                n.repo.remove(key, before).await
            }
        }))
        .await;
        let mut all = true;
        let mut removed_from = Vec::new();
        let mut error = None;
        for (n, r) in self.nodes.iter().zip(results) {
            match r {
                Ok(o) => {
                    if o.removed {
                        push_unique(&mut removed_from, n.uuid());
                    } else {
                        all = false;
                    }
                    for u in &o.also_removed_from {
                        push_unique(&mut removed_from, u);
                    }
                }
                Err(RepoError::Remote(e)) => {
                    all = false;
                    error.get_or_insert(e);
                }
                Err(_) => all = false,
            }
        }
        // Answered as git-annex's gateway answers: with the nodes named,
        // unless none but the cluster itself is.
        let nonplussed = removed_from.iter().all(|u| u == &self.uuid);
        if nonplussed {
            removed_from.clear();
            if !all {
                if let Some(e) = error {
                    return Err(RepoError::Other(e));
                }
            }
        }
        Ok(RemoveOutcome {
            removed: all,
            also_removed_from: removed_from,
        })
    }

    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        match self.nodes.as_slice() {
            [only] => only.repo.get_timestamp().await,
            _ => Ok(annex_repo::monotonic_seconds()),
        }
    }

    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        let have = self.containing(key).await?;
        match have.as_slice() {
            [] => Ok(GetOutcome::NotPresent),
            [only] => {
                let _busy = only.busy();
                Repository::get(&Timed(only), key, file, offset, sink).await
            }
            many => {
                let mut rest = many;
                // A node in this process sends straight into the sink (a
                // file it can hand to the kernel); another node takes over
                // only if it fails before sending anything.
                while let Some((first, others)) = rest.split_first() {
                    if !first.is_local() {
                        break;
                    }
                    let _busy = first.busy();
                    let mut tracked = Tracked::new(sink);
                    let r = Repository::get(&Timed(first), key, file, offset, &mut tracked).await;
                    match r {
                        Ok(GetOutcome::NotPresent) | Err(_) if !tracked.started() => {
                            rest = others;
                        }
                        other => return other,
                    }
                }
                if rest.is_empty() {
                    return Ok(GetOutcome::NotPresent);
                }
                let _busy = rest[0].busy();
                let timed: Vec<Timed<'_>> = rest.iter().map(|n| Timed(n)).collect();
                let repos: Vec<&dyn Repository> =
                    timed.iter().map(|t| t as &dyn Repository).collect();
                get_from_any(&repos, key, file, offset, sink).await
            }
        }
    }

    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        if self.nodes.is_empty() {
            // As git-annex's gateway answers a PUT to no nodes.
            return Ok(PutOutcome::AlreadyHave(Vec::new()));
        }
        // Nodes that are down are left out, as git-annex leaves out nodes
        // it cannot reach.
        let up: Vec<&Arc<ClusterNode>> = self.nodes.iter().filter(|n| n.is_up()).collect();
        if up.is_empty() {
            return Err(RepoError::Other(
                "no node of the cluster could store the content (every node is down)".into(),
            ));
        }
        let uuids: Vec<Uuid> = up.iter().map(|n| n.uuid().clone()).collect();
        let p = self.placement.clone();
        let (k, f) = (key.clone(), file.display_path());
        let chosen = tokio::task::spawn_blocking(move || p.choose(&uuids, &k, f.as_deref()))
            .await
            .map_err(RepoError::failed)?
            .map_err(|e| RepoError::context("choosing the nodes", e))?;
        let nodes: Vec<&Arc<ClusterNode>> = chosen.nodes.iter().map(|&i| up[i]).collect();
        let repos: Vec<Arc<dyn Repository>> = nodes.iter().map(|n| n.repo.clone()).collect();
        let _busy: Vec<Busy<'_>> = nodes.iter().map(|n| n.busy()).collect();
        // Nodes in this process share one hash of the content.
        let local = nodes.iter().filter(|n| n.is_local()).count();
        let out = put_all(&repos, key, file, source, self.jobs, local >= 2).await?;
        let mut stored = Vec::new();
        let mut already = Vec::new();
        let mut failures = Vec::new();
        for (n, r) in nodes.iter().zip(&out.results) {
            match r {
                NodeResult::Stored(more) => {
                    push_unique(&mut stored, n.uuid());
                    for u in more {
                        push_unique(&mut stored, u);
                    }
                }
                NodeResult::AlreadyHave(_) => push_unique(&mut already, n.uuid()),
                NodeResult::NotStored => {}
                NodeResult::Failed(e) => {
                    failures.push(format!("{}: {e}", n.spec.proxied.remote.name))
                }
            }
        }
        for res in chosen.reservations {
            if stored.contains(res.uuid()) {
                res.finish();
            }
        }
        if !out.opened {
            if already.is_empty() {
                return Err(RepoError::Other(format!(
                    "no node of the cluster could store the content ({})",
                    if failures.is_empty() {
                        "none answered".to_owned()
                    } else {
                        failures.join("; ")
                    }
                )));
            }
            already.retain(|u| u != &self.uuid);
            return Ok(PutOutcome::AlreadyHave(already));
        }
        if stored.is_empty() {
            return Ok(PutOutcome::NotStored);
        }
        Ok(PutOutcome::Stored(stored))
    }

    fn bypass(&self, gateways: &[Uuid]) -> Option<Box<dyn Repository>> {
        let mut avoid: Vec<Uuid> = vec![self.here.clone()];
        for g in gateways {
            push_unique(&mut avoid, g);
        }
        let nodes = self
            .nodes
            .iter()
            .filter(|n| match &n.spec.via_gateway {
                Some(gw) => !avoid.contains(gw),
                None => true,
            })
            .map(|n| match &n.rebypass {
                Some(make) => Arc::new(ClusterNode::new(
                    n.spec.clone(),
                    make(&avoid),
                    Some(make.clone()),
                )),
                None => n.clone(),
            })
            .collect();
        Some(Box::new(Cluster {
            uuid: self.uuid.clone(),
            here: self.here.clone(),
            nodes,
            placement: self.placement.clone(),
            jobs: self.jobs,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use annex_branch::Branch;
    use annex_protocol::content::{BytesSource, VecSink};
    use annex_protocol::memory::MemoryRepository;
    use annex_protocol::Forward;
    use annex_proxy::{Proxied, Remote};

    use super::*;

    /// A node's own clock, as GETTIMESTAMP answers it.
    #[derive(Clone, Copy)]
    enum Clock {
        At(u64),
        /// A node too old for timestamps.
        Unsupported,
    }

    /// A node in memory that counts the downloads and uploads asked of
    /// it, records the deadlines its removals come with, answers
    /// GETTIMESTAMP from a clock of its own, and fails every download
    /// when told to.
    struct Double {
        inner: MemoryRepository,
        clock: Clock,
        fail_get: bool,
        gets: AtomicUsize,
        puts: AtomicUsize,
        removes: Mutex<Vec<Option<u64>>>,
    }

    impl Double {
        fn new(clock: Clock, fail_get: bool) -> Arc<Double> {
            Arc::new(Double {
                inner: MemoryRepository::new(Uuid::new_v4()),
                clock,
                fail_get,
                gets: AtomicUsize::new(0),
                puts: AtomicUsize::new(0),
                removes: Mutex::new(Vec::new()),
            })
        }

        fn uuid(&self) -> &Uuid {
            Repository::uuid(&self.inner)
        }

        fn gets(&self) -> usize {
            self.gets.load(Ordering::Relaxed)
        }

        fn puts(&self) -> usize {
            self.puts.load(Ordering::Relaxed)
        }

        fn removes(&self) -> Vec<Option<u64>> {
            self.removes.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Forward for Double {
        fn inner(&self) -> &dyn Repository {
            &self.inner
        }

        async fn get(
            &self,
            key: &Key,
            file: &AssociatedFile,
            offset: u64,
            sink: &mut dyn GetSink,
        ) -> Result<GetOutcome, RepoError> {
            self.gets.fetch_add(1, Ordering::Relaxed);
            if self.fail_get {
                return Err(RepoError::Other("the node's disk failed".into()));
            }
            self.inner.get(key, file, offset, sink).await
        }

        async fn put(
            &self,
            key: &Key,
            file: &AssociatedFile,
            source: &mut dyn PutSource,
        ) -> Result<PutOutcome, RepoError> {
            self.puts.fetch_add(1, Ordering::Relaxed);
            self.inner.put(key, file, source).await
        }

        async fn get_timestamp(&self) -> Result<u64, RepoError> {
            match self.clock {
                Clock::At(t) => Ok(t),
                Clock::Unsupported => Err(RepoError::Unsupported("GETTIMESTAMP")),
            }
        }

        async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
            self.removes.lock().unwrap().push(before);
            self.inner.remove(key, before).await
        }
    }

    /// Where a node is: on this machine (used in the gateway's process)
    /// or over ssh; or the cluster behind another gateway.
    enum Reach {
        Local,
        Ssh,
        Via(Uuid),
    }

    /// A gateway's branch (a git repository without git-annex: the
    /// location log is all a cluster reads from it here) and the
    /// placement over it.
    struct Gateway {
        _tmp: tempfile::TempDir,
        here: Uuid,
        placement: Arc<Placement>,
    }

    fn gateway() -> Gateway {
        let tmp = tempfile::tempdir().unwrap();
        annex_test_support::git(tmp.path(), &["init", "-q"]);
        let branch = Arc::new(std::sync::Mutex::new(Branch::open(tmp.path()).unwrap()));
        let here = Uuid::new_v4();
        let placement = Arc::new(Placement::load(branch, here.clone()).unwrap());
        Gateway {
            _tmp: tmp,
            here,
            placement,
        }
    }

    impl Gateway {
        /// Records in the location log that `node` has the key.
        fn has(&self, node: &Uuid, key: &Key) {
            let b = self.placement.branch().lock().unwrap();
            assert!(b.set_location(key, node, true).unwrap());
        }

        fn cluster(&self, nodes: Vec<Arc<ClusterNode>>) -> Cluster {
            Cluster::new(
                Uuid::new_cluster(),
                self.here.clone(),
                nodes,
                self.placement.clone(),
                None,
            )
        }
    }

    fn node(
        name: &str,
        cost: f64,
        reach: Reach,
        repo: Arc<dyn Repository>,
        rebypass: Option<Rebypass>,
    ) -> Arc<ClusterNode> {
        let (url, via) = match reach {
            Reach::Local => (format!("/srv/{name}"), None),
            Reach::Ssh => (format!("ssh://host/srv/{name}"), None),
            Reach::Via(gw) => (format!("ssh://other/srv/{name}"), Some(gw)),
        };
        let remote = Remote {
            name: name.to_owned(),
            url: Some(url),
            uuid: Some(repo.uuid().clone()),
            cost: Some(cost),
            ..Remote::default()
        };
        let spec = NodeSpec {
            proxied: Proxied {
                uuid: repo.uuid().clone(),
                remote,
            },
            cost,
            hops: u32::from(via.is_some()),
            via_gateway: via,
        };
        Arc::new(ClusterNode::new(spec, repo, rebypass))
    }

    fn content(len: usize, seed: u64) -> (Key, Vec<u8>) {
        let data = annex_test_support::pseudo_random(len, seed);
        let key = Key::parse(&annex_test_support::sha256e_key(&data, ".bin")).unwrap();
        (key, data)
    }

    async fn get_all(c: &Cluster, key: &Key) -> Option<Vec<u8>> {
        let mut sink = VecSink::new(1 << 24);
        match c
            .get(key, &AssociatedFile::none(), 0, &mut sink)
            .await
            .unwrap()
        {
            GetOutcome::NotPresent => None,
            GetOutcome::Sent { accepted } => {
                assert!(accepted);
                Some(sink.into_data())
            }
        }
    }

    fn uuids(nodes: &[Arc<ClusterNode>]) -> Vec<Uuid> {
        nodes.iter().map(|n| n.uuid().clone()).collect()
    }

    /// A download comes from the cheapest node the location log says has
    /// the key; nodes it does not list are never asked, cheap or not.
    #[tokio::test]
    async fn a_download_comes_from_the_cheapest_node_that_has_the_key() {
        let gw = gateway();
        let (key, data) = content(70_000, 1);
        let [dear, cheap, unlisted] = [(); 3].map(|_| Double::new(Clock::Unsupported, false));
        for d in [&dear, &cheap, &unlisted] {
            d.inner.insert(key.clone(), data.clone());
        }
        gw.has(dear.uuid(), &key);
        gw.has(cheap.uuid(), &key);
        let nodes = vec![
            node("dear", 200.0, Reach::Ssh, dear.clone(), None),
            node("cheap", 100.0, Reach::Ssh, cheap.clone(), None),
            node("unlisted", 50.0, Reach::Ssh, unlisted.clone(), None),
        ];
        let c = gw.cluster(nodes.clone());
        assert_eq!(
            uuids(&c.containing(&key).await.unwrap()),
            vec![cheap.uuid().clone(), dear.uuid().clone()]
        );
        assert_eq!(get_all(&c, &key).await.unwrap(), data);
        assert_eq!((cheap.gets(), dear.gets(), unlisted.gets()), (1, 0, 0));
        assert!(c.check_present(&key).await.unwrap());

        // At one cost, a node reached directly before the cluster behind
        // another gateway.
        let relayed = Double::new(Clock::Unsupported, false);
        relayed.inner.insert(key.clone(), data.clone());
        gw.has(relayed.uuid(), &key);
        let c = gw.cluster(vec![
            node(
                "relayed",
                100.0,
                Reach::Via(Uuid::new_v4()),
                relayed.clone(),
                None,
            ),
            nodes[1].clone(),
        ]);
        assert_eq!(
            uuids(&c.containing(&key).await.unwrap()),
            vec![cheap.uuid().clone(), relayed.uuid().clone()]
        );

        // No node listed: not present, and no node asked.
        let (absent, _) = content(10, 2);
        assert_eq!(get_all(&c, &absent).await, None);
        assert!(!c.check_present(&absent).await.unwrap());
    }

    /// Among equally cheap nodes, a download goes to the least busy.
    #[tokio::test]
    async fn among_equally_cheap_nodes_the_least_busy_sends() {
        let gw = gateway();
        let (key, data) = content(50_000, 3);
        let [one, two] = [(); 2].map(|_| Double::new(Clock::Unsupported, false));
        for d in [&one, &two] {
            d.inner.insert(key.clone(), data.clone());
            gw.has(d.uuid(), &key);
        }
        let nodes = vec![
            node("one", 100.0, Reach::Ssh, one.clone(), None),
            node("two", 100.0, Reach::Ssh, two.clone(), None),
        ];
        let c = gw.cluster(nodes.clone());
        for (busy, idle) in [(&nodes[0], &two), (&nodes[1], &one)] {
            let _transfer = busy.busy();
            for _ in 0..8 {
                let before = idle.gets();
                assert_eq!(get_all(&c, &key).await.unwrap(), data);
                assert_eq!(idle.gets(), before + 1);
                assert_eq!(c.containing(&key).await.unwrap()[0].uuid(), idle.uuid());
            }
        }
        // Both idle again: either may send, and the busy count is back.
        assert!(nodes.iter().all(|n| n.busy.load(Ordering::Relaxed) == 0));
    }

    /// A node that fails, or does not have the key after all, is replaced
    /// by the next one, whether it is in the gateway's process or not.
    #[tokio::test]
    async fn a_failing_node_is_replaced_by_the_next() {
        for reach in [Reach::Local, Reach::Ssh] {
            let gw = gateway();
            let (key, data) = content(90_000, 4);
            let failing = Double::new(Clock::Unsupported, true);
            let stale = Double::new(Clock::Unsupported, false);
            let good = Double::new(Clock::Unsupported, false);
            failing.inner.insert(key.clone(), data.clone());
            good.inner.insert(key.clone(), data.clone());
            for d in [&failing, &stale, &good] {
                gw.has(d.uuid(), &key);
            }
            let local = matches!(reach, Reach::Local);
            let c = gw.cluster(vec![
                node("failing", 50.0, reach, failing.clone(), None),
                node("stale", 100.0, Reach::Ssh, stale.clone(), None),
                node("good", 200.0, Reach::Ssh, good.clone(), None),
            ]);
            assert_eq!(get_all(&c, &key).await.unwrap(), data, "local: {local}");
            assert_eq!((failing.gets(), stale.gets(), good.gets()), (1, 1, 1));
        }
    }

    /// REMOVE-BEFORE reaches each node with the time left, on the node's
    /// own clock; a node too old for timestamps is asked to remove without
    /// one (as git-annex's gateway asks it); a deadline already passed
    /// removes from no node that has a clock.
    #[tokio::test]
    async fn a_removal_deadline_is_carried_to_each_nodes_clock() {
        let gw = gateway();
        let (key, data) = content(1000, 5);
        let early = Double::new(Clock::At(1_000), false);
        let late = Double::new(Clock::At(7_000_000), false);
        let old = Double::new(Clock::Unsupported, false);
        let doubles = [&early, &late, &old];
        for d in doubles {
            d.inner.insert(key.clone(), data.clone());
        }
        let c = gw.cluster(
            doubles
                .iter()
                .map(|d| node("n", 100.0, Reach::Ssh, (*d).clone(), None))
                .collect(),
        );
        // Several nodes: the cluster's clock is the gateway's.
        let now = annex_repo::monotonic_seconds();
        assert!(c.get_timestamp().await.unwrap() >= now);

        let deadline = annex_repo::monotonic_seconds() + 600;
        let out = c.remove(&key, Some(deadline)).await.unwrap();
        assert!(out.removed);
        assert_eq!(
            out.also_removed_from,
            doubles.map(|d| d.uuid().clone()).to_vec()
        );
        for (d, clock) in [(&early, 1_000), (&late, 7_000_000)] {
            let [Some(before)] = d.removes()[..] else {
                panic!("{:?}", d.removes());
            };
            assert!(before > clock && before <= clock + 600, "{before}");
        }
        assert_eq!(old.removes(), vec![None]);

        // Passed already.
        for d in doubles {
            d.inner.insert(key.clone(), data.clone());
        }
        let out = c
            .remove(&key, Some(annex_repo::monotonic_seconds()))
            .await
            .unwrap();
        assert!(!out.removed);
        assert_eq!(out.also_removed_from, vec![old.uuid().clone()]);
        assert_eq!(early.removes().len(), 1);
        assert_eq!(late.removes().len(), 1);
        assert!(early.inner.content(&key).is_some());

        // One node: its own clock, and the deadline passed on as it is.
        let c = gw.cluster(vec![node("n", 100.0, Reach::Ssh, early.clone(), None)]);
        assert_eq!(c.get_timestamp().await.unwrap(), 1_000);
        c.remove(&key, Some(1_234)).await.unwrap();
        assert_eq!(early.removes().last(), Some(&Some(1_234)));
    }

    /// The BYPASS view leaves out the clusters behind the gateways named
    /// and behind this one, and asks the clusters behind the others again,
    /// avoiding all of those; direct nodes stay as they are.
    #[tokio::test]
    async fn the_bypass_view_avoids_the_gateways_named() {
        let gw = gateway();
        let (key, data) = content(1000, 6);
        let (passed, other) = (Uuid::new_v4(), Uuid::new_v4());
        let direct = Double::new(Clock::At(5), false);
        let behind_passed = Double::new(Clock::At(5), false);
        let behind_here = Double::new(Clock::At(5), false);
        let behind_other = Double::new(Clock::At(5), false);
        // Each node made again: the gateways it avoids, and the node.
        type Remade = Vec<(Vec<Uuid>, Arc<Double>)>;
        let remade: Arc<Mutex<Remade>> = Arc::default();
        let rebypass: Rebypass = {
            let remade = remade.clone();
            Arc::new(move |avoid: &[Uuid]| {
                let d = Double::new(Clock::At(5), false);
                remade.lock().unwrap().push((avoid.to_vec(), d.clone()));
                d as Arc<dyn Repository>
            })
        };
        let c = gw.cluster(vec![
            node("direct", 100.0, Reach::Ssh, direct.clone(), None),
            node(
                "passed",
                100.0,
                Reach::Via(passed.clone()),
                behind_passed.clone(),
                Some(rebypass.clone()),
            ),
            node(
                "here",
                100.0,
                Reach::Via(gw.here.clone()),
                behind_here.clone(),
                Some(rebypass.clone()),
            ),
            node(
                "other",
                100.0,
                Reach::Via(other.clone()),
                behind_other.clone(),
                Some(rebypass),
            ),
        ]);
        let view = c.bypass(std::slice::from_ref(&passed)).unwrap();
        assert_eq!(view.uuid(), c.uuid());
        let remade = remade.lock().unwrap().clone();
        assert_eq!(remade.len(), 1);
        assert_eq!(remade[0].0, vec![gw.here.clone(), passed.clone()]);
        let again = &remade[0].1;

        again.inner.insert(key.clone(), data.clone());
        direct.inner.insert(key.clone(), data.clone());
        let out = view.remove(&key, None).await.unwrap();
        assert!(out.removed);
        assert_eq!(direct.removes(), vec![None]);
        assert_eq!(again.removes(), vec![None]);
        for d in [&behind_passed, &behind_here, &behind_other] {
            assert!(d.removes().is_empty());
        }
    }

    /// An upload goes to the nodes the location log does not list (all of
    /// them want it: no preferred content is set), and the answer names
    /// the nodes that stored it; when the log lists every node, to every
    /// node.
    /// Among equally cheap and equally idle nodes, the one that sent
    /// faster lately sends; one never measured is tried as if as fast.
    #[tokio::test]
    async fn among_equal_nodes_the_fastest_lately_sends() {
        let gw = gateway();
        let (key, data) = content(10_000, 11);
        let [slow, fast, new] = [(); 3].map(|_| Double::new(Clock::Unsupported, false));
        for d in [&slow, &fast, &new] {
            d.inner.insert(key.clone(), data.clone());
        }
        gw.has(slow.uuid(), &key);
        gw.has(fast.uuid(), &key);
        let nodes = vec![
            node("slow", 100.0, Reach::Ssh, slow.clone(), None),
            node("fast", 100.0, Reach::Ssh, fast.clone(), None),
            node("new", 100.0, Reach::Ssh, new.clone(), None),
        ];
        nodes[0].record_speed(1_000_000, Duration::from_secs(1));
        nodes[1].record_speed(1_000_000, Duration::from_millis(10));
        let c = gw.cluster(nodes.clone());
        for _ in 0..20 {
            assert_eq!(&uuids(&c.containing(&key).await.unwrap())[0], fast.uuid());
        }
        // A download counts in the speed.
        assert_eq!(get_all(&c, &key).await.unwrap(), data);
        assert_eq!((fast.gets(), slow.gets()), (1, 0));
        assert!(nodes[2].recent_speed().is_none());
        // A node not measured yet competes with the fastest.
        gw.has(new.uuid(), &key);
        let mut firsts = HashSet::new();
        for _ in 0..64 {
            firsts.insert(uuids(&c.containing(&key).await.unwrap())[0].clone());
        }
        assert!(!firsts.contains(slow.uuid()));
    }

    /// A node marked down (its pools could not reach it) is skipped for
    /// downloads and left out of uploads until it answers again.
    #[tokio::test]
    async fn a_node_that_is_down_is_skipped_until_it_answers() {
        let gw = gateway();
        let (key, data) = content(30_000, 9);
        let [cheap, dear] = [(); 2].map(|_| Double::new(Clock::Unsupported, false));
        for d in [&cheap, &dear] {
            d.inner.insert(key.clone(), data.clone());
            gw.has(d.uuid(), &key);
        }
        let nodes = vec![
            node("cheap", 100.0, Reach::Ssh, cheap.clone(), None),
            node("dear", 200.0, Reach::Ssh, dear.clone(), None),
        ];
        let c = gw.cluster(nodes.clone());
        let health = annex_proxy::health::of(cheap.uuid(), "cheap");
        health.failed(&RepoError::Io(std::io::ErrorKind::ConnectionRefused.into()));
        assert_eq!(
            uuids(&c.containing(&key).await.unwrap()),
            vec![dear.uuid().clone()]
        );
        assert_eq!(get_all(&c, &key).await.unwrap(), data);
        assert_eq!((cheap.gets(), dear.gets()), (0, 1));
        // An upload of a new key goes to the node that is up only.
        let (new, new_data) = content(20_000, 10);
        let mut source = BytesSource::new(new_data);
        let out = c
            .put(&new, &AssociatedFile::none(), &mut source)
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::Stored(vec![dear.uuid().clone()]));
        assert_eq!((cheap.puts(), dear.puts()), (0, 1));

        health.answered();
        assert_eq!(get_all(&c, &key).await.unwrap(), data);
        assert_eq!((cheap.gets(), dear.gets()), (1, 1));
    }

    #[tokio::test]
    async fn an_upload_goes_to_the_nodes_without_the_key() {
        let gw = gateway();
        let (key, data) = content(40_000, 7);
        let [has, a, b] = [(); 3].map(|_| Double::new(Clock::Unsupported, false));
        gw.has(has.uuid(), &key);
        has.inner.insert(key.clone(), data.clone());
        let c = gw.cluster(
            [&has, &a, &b]
                .iter()
                .map(|d| node("n", 100.0, Reach::Ssh, (*d).clone(), None))
                .collect(),
        );
        let mut source = BytesSource::new(data.clone());
        let out = c
            .put(&key, &AssociatedFile::none(), &mut source)
            .await
            .unwrap();
        assert_eq!(
            out,
            PutOutcome::Stored(vec![a.uuid().clone(), b.uuid().clone()])
        );
        for d in [&a, &b] {
            assert_eq!(d.inner.content(&key).unwrap(), data);
        }
        assert_eq!((has.puts(), a.puts(), b.puts()), (0, 1, 1));

        for d in [&a, &b] {
            gw.has(d.uuid(), &key);
        }
        let mut source = BytesSource::new(data.clone());
        let out = c
            .put(&key, &AssociatedFile::none(), &mut source)
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::AlreadyHave(uuids(c.nodes())));
        assert_eq!((has.puts(), a.puts(), b.puts()), (1, 2, 2));
        assert!(c.lock_content(&key).await.unwrap().is_none());
    }
}
