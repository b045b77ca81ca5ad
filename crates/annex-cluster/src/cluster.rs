//! A cluster as one [`Repository`], made of its nodes' repositories, with
//! git-annex's behaviour (Annex/Cluster.hs, P2P/Proxy.hs):
//!
//! - CHECKPRESENT asks a node that the location log says has the key;
//!   no such node: not present.
//! - GET sends from a node the log says has the key: the cheapest, the
//!   least busy among equally cheap ones; a node that fails or turns out
//!   not to have it is replaced by the next, from where it stopped.
//! - LOCKCONTENT fails: content is locked on a node, not on the cluster.
//! - REMOVE goes to every node (the log may be stale); the answer names
//!   the nodes it was removed from.
//! - GETTIMESTAMP is the gateway's clock when there are several nodes,
//!   translated to each node's clock for REMOVE-BEFORE.
//! - PUT goes to the nodes [`Placement`] chooses, streamed to all of them
//!   at once ([`fanout`](crate::fanout)); the answer names the nodes that
//!   stored it. The cluster's own UUID is never recorded as a location.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use annex_protocol::repository::{
    ContentLock, GetOutcome, GetSink, PutOutcome, PutSource, RemoveOutcome, Repository,
};
use annex_protocol::{AssociatedFile, Key, RepoError, Uuid};
use async_trait::async_trait;
use futures_util::future::join_all;
use rand::Rng;

use crate::fanout::{put_all, NodeResult};
use crate::nodes::NodeSpec;
use crate::placement::Placement;
use crate::relay::{get_from_any, Tracked};

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
}

impl ClusterNode {
    /// A node.
    pub fn new(spec: NodeSpec, repo: Arc<dyn Repository>, rebypass: Option<Rebypass>) -> Self {
        ClusterNode {
            spec,
            repo,
            busy: AtomicUsize::new(0),
            rebypass,
        }
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
            .filter(|n| locs.contains(n.uuid()))
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
                only.repo.get(key, file, offset, sink).await
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
                    let r = first.repo.get(key, file, offset, &mut tracked).await;
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
                let repos: Vec<&dyn Repository> = rest.iter().map(|n| &*n.repo).collect();
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
        let uuids: Vec<Uuid> = self.nodes.iter().map(|n| n.uuid().clone()).collect();
        let p = self.placement.clone();
        let (k, f) = (key.clone(), file.display_path());
        let chosen = tokio::task::spawn_blocking(move || p.choose(&uuids, &k, f.as_deref()))
            .await
            .map_err(RepoError::failed)?
            .map_err(|e| RepoError::context("choosing the nodes", e))?;
        let nodes: Vec<&Arc<ClusterNode>> = chosen.nodes.iter().map(|&i| &self.nodes[i]).collect();
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
