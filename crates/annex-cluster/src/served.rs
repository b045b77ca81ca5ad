//! Clusters served next to a gateway's own repository and the
//! repositories it proxies: by `annex shell p2pstdio --uuid CLUSTER` for
//! one session ([`open_cluster`]), and by p2phttp for as long as it runs
//! ([`ClusterRepositories`]).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use annex_branch::Branch;
use annex_protocol::{Repositories, Repository, Uuid};
use annex_proxy::{Gateway, GatewayRepositories, NodePool, PoolSettings, Recorded};

use crate::cluster::{Cluster, ClusterNode, Rebypass};
use crate::nodes::{cluster_nodes, NodeSpec};
use crate::placement::Placement;

/// The pools made for clusters' nodes, by node and the gateways each is
/// asked to bypass, with the pool as served (its changes recorded).
type NodePools = HashMap<(Uuid, Vec<Uuid>), (Arc<NodePool>, Arc<dyn Repository>)>;

/// What building a cluster needs from the gateway.
struct Parts<'a> {
    gateway: &'a Gateway,
    work: &'a Path,
    branch: &'a Arc<Mutex<Branch>>,
    settings: PoolSettings,
    /// Pools of the previous build: a node configured as before keeps its
    /// pool, and the sessions in it.
    previous: &'a NodePools,
}

impl Parts<'_> {
    /// The pool for `spec` asked to bypass `bypass`: the previous one when
    /// the node is reached as before, else a new one. Added to `made`.
    fn pool(
        &self,
        spec: &NodeSpec,
        bypass: Vec<Uuid>,
        made: &mut NodePools,
    ) -> Arc<dyn Repository> {
        let key = (spec.proxied.uuid.clone(), bypass);
        let (pool, repo) = match self.previous.get(&key) {
            Some((pool, repo)) if pool.proxied().remote == spec.proxied.remote => {
                (pool.clone(), repo.clone())
            }
            _ => {
                let pool = Arc::new(
                    NodePool::new(
                        spec.proxied.clone(),
                        self.work,
                        self.gateway.uuid.clone(),
                        self.branch.clone(),
                        self.settings,
                    )
                    .with_bypass(key.1.clone()),
                );
                let repo: Arc<dyn Repository> =
                    Arc::new(Recorded::new(pool.clone(), self.branch.clone()));
                (pool, repo)
            }
        };
        made.insert(key, (pool, repo.clone()));
        repo
    }

    /// The nodes of `cluster`; a direct node's repository is taken from
    /// `existing` when the gateway already has it. Pools made or carried
    /// over are added to `made`.
    fn nodes(
        &self,
        cluster: &Uuid,
        existing: impl Fn(&Uuid) -> Option<Arc<dyn Repository>>,
        made: &mut NodePools,
    ) -> Vec<Arc<ClusterNode>> {
        let here = self.gateway.uuid.clone();
        let mut nodes = Vec::new();
        for spec in cluster_nodes(self.gateway, cluster, &BTreeSet::new()) {
            if spec.via_gateway.is_some() {
                let repo = self.pool(&spec, vec![here.clone()], made);
                let rebypass: Rebypass = {
                    let spec = spec.clone();
                    let work = self.work.to_owned();
                    let branch = self.branch.clone();
                    let gateway = here.clone();
                    let settings = PoolSettings {
                        connections: 1,
                        ..self.settings
                    };
                    Arc::new(move |avoid: &[Uuid]| {
                        let pool = Arc::new(
                            NodePool::new(
                                spec.proxied.clone(),
                                &work,
                                gateway.clone(),
                                branch.clone(),
                                settings,
                            )
                            .with_bypass(avoid.to_vec()),
                        );
                        Arc::new(Recorded::new(pool, branch.clone())) as Arc<dyn Repository>
                    })
                };
                nodes.push(Arc::new(ClusterNode::new(spec, repo, Some(rebypass))));
            } else {
                let repo = match existing(&spec.proxied.uuid) {
                    Some(r) => r,
                    None => self.pool(&spec, Vec::new(), made),
                };
                nodes.push(Arc::new(ClusterNode::new(spec, repo, None)));
            }
        }
        nodes
    }
}

/// A cluster for one session of `annex shell p2pstdio`: its nodes
/// connected when first used (one ssh session each), and the pools made,
/// to close and commit when the session ends. `jobs` bounds how many
/// nodes are written at once.
pub fn open_cluster(
    gateway: &Gateway,
    cluster: &Uuid,
    work: &Path,
    branch: &Arc<Mutex<Branch>>,
    jobs: Option<usize>,
) -> Result<(Cluster, Vec<Arc<NodePool>>), annex_branch::BranchError> {
    let parts = Parts {
        gateway,
        work,
        branch,
        settings: PoolSettings::new(1),
        previous: &NodePools::new(),
    };
    let mut made = NodePools::new();
    let nodes = parts.nodes(cluster, |_| None, &mut made);
    let pools = made.into_values().map(|(pool, _)| pool).collect();
    let placement = Arc::new(Placement::load(branch.clone(), gateway.uuid.clone())?);
    Ok((
        Cluster::new(
            cluster.clone(),
            gateway.uuid.clone(),
            nodes,
            placement,
            jobs,
        ),
        pools,
    ))
}

#[derive(Default)]
struct Built {
    generation: Option<u64>,
    clusters: HashMap<Uuid, Arc<Cluster>>,
    pools: NodePools,
    /// Shared by every build, so that sizes and the reservations of
    /// uploads in flight outlive a rebuild.
    placement: Option<Arc<Placement>>,
}

/// A gateway's repositories for p2phttp with its clusters: the clusters
/// proxy.log lists for it and cluster.log knows, rebuilt (on the thread
/// that read the configuration, never on a request's) whenever the
/// gateway's configuration is read again; everything else as
/// [`GatewayRepositories`] serves it. A rebuild keeps the pools of nodes
/// configured as before, and the sizes and reservations placement reads.
pub struct ClusterRepositories {
    inner: Arc<GatewayRepositories>,
    jobs: Option<usize>,
    built: Mutex<Built>,
    /// Held while rebuilding: one rebuild at a time.
    rebuilding: Mutex<()>,
    /// When the sizes of a gateway without clusters were last read for
    /// the metrics (a cluster's are kept up to date by its uploads).
    sizes_read: Mutex<Option<Instant>>,
}

/// How old the sizes of a gateway without clusters may be when the
/// metrics are read.
const SIZES_MAX_AGE: Duration = Duration::from_secs(5);

impl ClusterRepositories {
    /// Serves `inner`'s repositories and its clusters; `jobs` bounds how
    /// many nodes an upload writes at once. Builds the clusters now
    /// (blocking).
    pub fn new(inner: Arc<GatewayRepositories>, jobs: Option<usize>) -> ClusterRepositories {
        let c = ClusterRepositories {
            inner,
            jobs,
            built: Mutex::new(Built::default()),
            rebuilding: Mutex::new(()),
            sizes_read: Mutex::new(None),
        };
        c.refresh();
        c
    }

    /// The repositories without the clusters.
    pub fn gateway_repositories(&self) -> &Arc<GatewayRepositories> {
        &self.inner
    }

    /// Reads the gateway's configuration again when it changed, checking
    /// every `every`, and rebuilds the clusters then, on a blocking thread;
    /// runs until the task is dropped.
    pub async fn watch(self: Arc<Self>, every: std::time::Duration) {
        let me = self.clone();
        let Ok(mut last) = tokio::task::spawn_blocking(move || me.inner.stamp()).await else {
            return;
        };
        loop {
            tokio::time::sleep(every).await;
            let me = self.clone();
            match tokio::task::spawn_blocking(move || {
                if me.inner.reload_if_changed(&mut last) {
                    me.refresh();
                }
                last
            })
            .await
            {
                Ok(l) => last = l,
                Err(_) => return,
            }
            self.probe_down_nodes();
        }
    }

    /// Rebuilds the clusters if the configuration was read again since
    /// they were built (blocking). Requests meanwhile see the clusters
    /// built before.
    pub fn refresh(&self) {
        let _one_at_a_time = self.rebuilding.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.inner.generation();
        let (previous, placement) = {
            let built = self.built.lock().unwrap_or_else(|p| p.into_inner());
            if built.generation == Some(generation) {
                return;
            }
            (built.pools.clone(), built.placement.clone())
        };
        let fresh = self.build(generation, &previous, placement);
        // Pools no longer used are closed by whoever holds them last;
        // their sessions end when dropped.
        *self.built.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    fn build(
        &self,
        generation: u64,
        previous: &NodePools,
        placement: Option<Arc<Placement>>,
    ) -> Built {
        let mut fresh = Built {
            generation: Some(generation),
            placement,
            ..Built::default()
        };
        let Some(gateway) = self.inner.gateway() else {
            return fresh;
        };
        let served = gateway.served_clusters();
        if served.is_empty() {
            // Sizes read for the metrics only: kept up to date as a
            // cluster's would be.
            if let Some(p) = &fresh.placement {
                if let Err(e) = p.refresh() {
                    tracing::warn!(error = %e, "reading the git-annex branch for sizes");
                }
            }
            return fresh;
        }
        let placement = match &fresh.placement {
            Some(p) => match p.refresh() {
                Ok(()) => p.clone(),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the git-annex branch for clusters");
                    p.clone()
                }
            },
            None => match Placement::load(self.inner.branch().clone(), gateway.uuid.clone()) {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the git-annex branch for clusters");
                    return fresh;
                }
            },
        };
        fresh.placement = Some(placement.clone());
        let parts = Parts {
            gateway: &gateway,
            work: self.inner.work(),
            branch: self.inner.branch(),
            settings: self.inner.pool_settings(),
            previous,
        };
        for cu in served {
            let nodes = parts.nodes(&cu, |u| self.inner.lookup(u), &mut fresh.pools);
            fresh.clusters.insert(
                cu.clone(),
                Arc::new(Cluster::new(
                    cu,
                    gateway.uuid.clone(),
                    nodes,
                    placement.clone(),
                    self.jobs,
                )),
            );
        }
        fresh
    }

    /// The pools made for the clusters' nodes.
    fn pools(&self) -> Vec<Arc<NodePool>> {
        self.built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pools
            .values()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Tries again, each on a task of its own, the nodes that are down
    /// and due (proxied nodes and clusters' nodes).
    pub fn probe_down_nodes(&self) {
        for p in self.inner.pools().into_iter().chain(self.pools()) {
            if !p.health().is_up() {
                tokio::spawn(async move { p.probe().await });
            }
        }
    }

    /// Sets the ssh session gauges of `metrics` for every node.
    pub fn report_sessions(&self, metrics: &annex_metrics::Metrics) {
        let mut by_node: HashMap<Uuid, (usize, usize)> = HashMap::new();
        for p in self.inner.pools().into_iter().chain(self.pools()) {
            let (open, waiting) = p.sessions();
            let e = by_node.entry(p.proxied().uuid.clone()).or_default();
            e.0 += open;
            e.1 += waiting;
        }
        for (u, (open, waiting)) in by_node {
            let labels = annex_metrics::NodeLabels {
                node: u.as_str().to_owned(),
            };
            metrics
                .sessions_open
                .get_or_create(&labels)
                .set(i64::try_from(open).unwrap_or(i64::MAX));
            metrics
                .sessions_waiting
                .get_or_create(&labels)
                .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        }
    }

    /// Sets the repository size gauges of `metrics` for the gateway's own
    /// repository, the nodes it proxies and every cluster node (blocking:
    /// may read the branch).
    pub fn report_sizes(&self, metrics: &annex_metrics::Metrics) {
        let mut nodes: BTreeSet<Uuid> = self.inner.uuids().into_iter().collect();
        let placement = {
            let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
            nodes.extend(
                built
                    .clusters
                    .values()
                    .flat_map(|c| c.nodes().iter().map(|n| n.uuid().clone())),
            );
            match &built.placement {
                Some(p) if !built.clusters.is_empty() => p.clone(),
                Some(p) => {
                    let mut read = self.sizes_read.lock().unwrap_or_else(|p| p.into_inner());
                    if read.is_none_or(|at| at.elapsed() >= SIZES_MAX_AGE) {
                        if let Err(e) = p.refresh() {
                            tracing::warn!(error = %e, "reading repository sizes for metrics");
                        }
                        *read = Some(Instant::now());
                    }
                    p.clone()
                }
                None => {
                    // A gateway without clusters: sizes read on the first
                    // scrape, refreshed with the configuration afterwards.
                    let Some(gateway) = self.inner.gateway() else {
                        return;
                    };
                    match Placement::load(self.inner.branch().clone(), gateway.uuid.clone()) {
                        Ok(p) => {
                            let p = Arc::new(p);
                            built.placement = Some(p.clone());
                            *self.sizes_read.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(Instant::now());
                            p
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reading repository sizes for metrics");
                            return;
                        }
                    }
                }
            }
        };
        let nodes: Vec<Uuid> = nodes.into_iter().collect();
        let sizes = match placement.sizes(&nodes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading repository sizes for metrics");
                return;
            }
        };
        for s in sizes {
            let labels = annex_metrics::RepositoryLabels {
                repository: s.uuid.as_str().to_owned(),
            };
            if let Some(size) = s.size {
                metrics
                    .repository_size
                    .get_or_create(&labels)
                    .set(i64::try_from(size).unwrap_or(i64::MAX));
            }
            if let Some(max) = s.maxsize {
                metrics
                    .repository_maxsize
                    .get_or_create(&labels)
                    .set(i64::try_from(max).unwrap_or(i64::MAX));
            }
        }
    }

    /// Closes idle ssh sessions to every node (at shutdown).
    pub async fn close(&self) {
        self.inner.close().await;
        for p in self.pools() {
            p.close().await;
        }
    }

    /// Commits the journals of the gateway and of the nodes used in this
    /// process (at shutdown); returns the errors.
    pub fn commit(&self) -> Vec<String> {
        let mut errors = self.inner.commit();
        let dirs: Vec<PathBuf> = self
            .pools()
            .iter()
            .filter_map(|p| p.local_git_dir())
            .collect();
        for d in dirs {
            if let Err(e) = annex_proxy::commit_journal(&d) {
                errors.push(e.to_string());
            }
        }
        errors
    }
}

impl Repositories for ClusterRepositories {
    fn lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        if uuid.is_cluster() {
            let built = self.built.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = built.clusters.get(uuid) {
                return Some(c.clone() as Arc<dyn Repository>);
            }
        }
        self.inner.lookup(uuid)
    }

    fn rescans(&self) -> bool {
        true
    }

    fn rescan_and_lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        self.inner.reload();
        self.refresh();
        self.lookup(uuid)
    }

    fn refusal(&self, uuid: &Uuid) -> Option<String> {
        self.inner.refusal(uuid)
    }

    fn uuids(&self) -> Vec<Uuid> {
        let mut v = self.inner.uuids();
        v.extend(
            self.built
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clusters
                .keys()
                .cloned(),
        );
        v
    }
}

/// How many nodes an upload writes to at once, from the gateway's
/// `annex.jobs` (a number, or `cpus`); `None` (all of them) when it is
/// not set.
pub fn cluster_jobs(git_dir: &Path) -> Option<usize> {
    let cfg = annex_repo::config::GitConfig::read(git_dir).ok()?;
    jobs_setting(cfg.get("annex.jobs")?)
}

/// Reads an `annex.jobs` value.
pub fn jobs_setting(v: &str) -> Option<usize> {
    match v.trim() {
        "cpus" => std::thread::available_parallelism().ok().map(|n| n.get()),
        n => n.parse::<usize>().ok().filter(|&n| n > 0),
    }
}
