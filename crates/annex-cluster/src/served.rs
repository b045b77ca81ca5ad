//! Clusters served next to a gateway's own repository and the
//! repositories it proxies: by `annex shell p2pstdio --uuid CLUSTER` for
//! one session ([`open_cluster`]), and by p2phttp for as long as it runs
//! ([`ClusterRepositories`]).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use annex_branch::Branch;
use annex_http::server::Repositories;
use annex_protocol::{Repository, Uuid};
use annex_proxy::{Gateway, GatewayRepositories, NodePool, Recorded};

use crate::cluster::{Cluster, ClusterNode, Rebypass};
use crate::nodes::{cluster_nodes, NodeSpec};
use crate::placement::Placement;

/// What building a cluster needs from the gateway.
struct Parts<'a> {
    gateway: &'a Gateway,
    work: &'a Path,
    branch: &'a Arc<Mutex<Branch>>,
    connections: usize,
}

impl Parts<'_> {
    fn pool(&self, spec: &NodeSpec, bypass: Vec<Uuid>) -> Arc<NodePool> {
        Arc::new(
            NodePool::new(
                spec.proxied.clone(),
                self.work,
                self.gateway.uuid.clone(),
                self.branch.clone(),
                self.connections,
            )
            .with_bypass(bypass),
        )
    }

    fn recorded(&self, pool: Arc<NodePool>) -> Arc<dyn Repository> {
        Arc::new(Recorded::new(pool, self.branch.clone()))
    }

    /// The nodes of `cluster`; a direct node's repository is taken from
    /// `existing` when the gateway already has it. Returns the pools made.
    fn nodes(
        &self,
        cluster: &Uuid,
        existing: impl Fn(&Uuid) -> Option<Arc<dyn Repository>>,
    ) -> (Vec<Arc<ClusterNode>>, Vec<Arc<NodePool>>) {
        let here = self.gateway.uuid.clone();
        let mut made = Vec::new();
        let mut nodes = Vec::new();
        for spec in cluster_nodes(self.gateway, cluster, &BTreeSet::new()) {
            if spec.via_gateway.is_some() {
                let pool = self.pool(&spec, vec![here.clone()]);
                made.push(pool.clone());
                let rebypass: Rebypass = {
                    let spec = spec.clone();
                    let work = self.work.to_owned();
                    let branch = self.branch.clone();
                    let gateway = here.clone();
                    Arc::new(move |avoid: &[Uuid]| {
                        let pool = Arc::new(
                            NodePool::new(
                                spec.proxied.clone(),
                                &work,
                                gateway.clone(),
                                branch.clone(),
                                1,
                            )
                            .with_bypass(avoid.to_vec()),
                        );
                        Arc::new(Recorded::new(pool, branch.clone())) as Arc<dyn Repository>
                    })
                };
                let repo = self.recorded(pool);
                nodes.push(Arc::new(ClusterNode::new(spec, repo, Some(rebypass))));
            } else {
                let repo = match existing(&spec.proxied.uuid) {
                    Some(r) => r,
                    None => {
                        let pool = self.pool(&spec, Vec::new());
                        made.push(pool.clone());
                        self.recorded(pool)
                    }
                };
                nodes.push(Arc::new(ClusterNode::new(spec, repo, None)));
            }
        }
        (nodes, made)
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
        connections: 1,
    };
    let (nodes, pools) = parts.nodes(cluster, |_| None);
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
    pools: Vec<Arc<NodePool>>,
}

/// A gateway's repositories for p2phttp with its clusters: the clusters
/// proxy.log lists for it and cluster.log knows, rebuilt whenever the
/// gateway's configuration is read again; everything else as
/// [`GatewayRepositories`] serves it.
pub struct ClusterRepositories {
    inner: Arc<GatewayRepositories>,
    jobs: Option<usize>,
    built: Mutex<Built>,
}

impl ClusterRepositories {
    /// Serves `inner`'s repositories and its clusters; `jobs` bounds how
    /// many nodes an upload writes at once.
    pub fn new(inner: Arc<GatewayRepositories>, jobs: Option<usize>) -> ClusterRepositories {
        ClusterRepositories {
            inner,
            jobs,
            built: Mutex::new(Built::default()),
        }
    }

    /// The repositories without the clusters.
    pub fn gateway_repositories(&self) -> &Arc<GatewayRepositories> {
        &self.inner
    }

    /// The clusters, rebuilt first when the configuration was read again.
    fn with_clusters<T>(&self, f: impl FnOnce(&HashMap<Uuid, Arc<Cluster>>) -> T) -> T {
        let generation = self.inner.generation();
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if built.generation != Some(generation) {
            self.rebuild(&mut built, generation);
        }
        f(&built.clusters)
    }

    fn rebuild(&self, built: &mut Built, generation: u64) {
        let mut fresh = Built {
            generation: Some(generation),
            ..Built::default()
        };
        if let Some(gateway) = self.inner.gateway() {
            let served = gateway.served_clusters();
            let placement = (!served.is_empty())
                .then(|| Placement::load(self.inner.branch().clone(), gateway.uuid.clone()).ok())
                .flatten()
                .map(Arc::new);
            if let Some(placement) = placement {
                let parts = Parts {
                    gateway: &gateway,
                    work: self.inner.work(),
                    branch: self.inner.branch(),
                    connections: self.inner.connections(),
                };
                for cu in served {
                    let (nodes, pools) = parts.nodes(&cu, |u| self.inner.lookup(u));
                    fresh.pools.extend(pools);
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
            }
        }
        // Pools of the previous configuration are closed by whoever holds
        // them last; their sessions end when dropped.
        *built = fresh;
    }

    /// Closes idle ssh sessions to every node (at shutdown).
    pub async fn close(&self) {
        self.inner.close().await;
        let pools = self
            .built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pools
            .clone();
        for p in pools {
            p.close().await;
        }
    }

    /// Commits the journals of the gateway and of the nodes used in this
    /// process (at shutdown); returns the errors.
    pub fn commit(&self) -> Vec<String> {
        let mut errors = self.inner.commit();
        let dirs: Vec<PathBuf> = self
            .built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pools
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
            if let Some(c) = self.with_clusters(|cs| cs.get(uuid).cloned()) {
                return Some(c as Arc<dyn Repository>);
            }
        }
        self.inner.lookup(uuid)
    }

    fn rescans(&self) -> bool {
        true
    }

    fn rescan_and_lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        self.inner.reload();
        self.lookup(uuid)
    }

    fn refusal(&self, uuid: &Uuid) -> Option<String> {
        self.inner.refusal(uuid)
    }

    fn uuids(&self) -> Vec<Uuid> {
        let mut v = self.inner.uuids();
        v.extend(self.with_clusters(|cs| cs.keys().cloned().collect::<Vec<_>>()));
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
