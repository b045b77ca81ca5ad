//! A gateway: the repository that proxies, what proxy.log says it proxies,
//! and the checks git-annex makes before serving a proxied UUID.

use std::collections::{BTreeMap, BTreeSet};

use annex_branch::logs::paths::{PROXY_LOG, UUID_LOG};
use annex_branch::logs::cluster::Clusters;
use annex_branch::logs::proxy::{self, Proxy};
use annex_branch::logs::uuid_log;
use annex_branch::{Branch, BranchError, VectorClock};
use annex_protocol::Uuid;

use crate::remotes::{GitRemotes, Remote};

/// Why a UUID cannot be served here.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither this repository nor a repository it proxies.
    #[error("expected repository UUID {expected} but found UUID {found}")]
    Unexpected {
        /// The UUID asked for.
        expected: String,
        /// This repository's UUID.
        found: Uuid,
    },
    /// proxy.log lists it, but git config does not allow proxying it.
    #[error("not configured to proxy for repository {0}")]
    NotConfigured(String),
}

/// What a gateway's `updateproxy` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyChange {
    /// Now proxied, under this name.
    Started(String),
    /// No longer proxied.
    Stopped(String),
}

impl std::fmt::Display for ProxyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyChange::Started(n) => write!(f, "Started proxying for {n}"),
            ProxyChange::Stopped(n) => write!(f, "Stopped proxying for {n}"),
        }
    }
}

/// What `updateproxy` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyUpdate {
    /// The changes recorded (none: "No proxy changes to record.").
    pub changes: Vec<ProxyChange>,
    /// Remotes configured to be proxied that cannot be, with why.
    pub warnings: Vec<String>,
}

/// The remotes git config says to proxy: those with `annex-proxy` or
/// `annex-cluster-node` and a known UUID, and this repository's clusters.
pub fn configured_proxies(remotes: &GitRemotes) -> (BTreeSet<Proxy>, Vec<String>) {
    let mut out = BTreeSet::new();
    let mut warnings = Vec::new();
    for r in &remotes.remotes {
        if !r.proxy && r.cluster_node.is_empty() {
            continue;
        }
        match &r.uuid {
            Some(u) => {
                out.insert(Proxy {
                    uuid: u.clone(),
                    name: r.name.clone(),
                });
            }
            None => warnings.push(format!(
                "{} is a git remote without a known annex-uuid. Cannot proxy to this remote.",
                r.name
            )),
        }
    }
    for (name, cu) in &remotes.clusters {
        out.insert(Proxy {
            uuid: cu.clone(),
            name: name.clone(),
        });
    }
    (out, warnings)
}

/// Records in proxy.log what this repository (`gateway`) proxies, as
/// `git annex updateproxy` does.
pub fn update_proxy(
    branch: &Branch,
    gateway: &Uuid,
    remotes: &GitRemotes,
) -> Result<ProxyUpdate, BranchError> {
    let (wanted, warnings) = configured_proxies(remotes);
    let current = proxy::proxies(&proxy::parse(&branch.read(PROXY_LOG)?))
        .remove(gateway)
        .unwrap_or_default();
    let mut update = ProxyUpdate {
        changes: Vec::new(),
        warnings,
    };
    if current == wanted {
        return Ok(update);
    }
    for p in current.union(&wanted) {
        match (current.contains(p), wanted.contains(p)) {
            (false, true) => update.changes.push(ProxyChange::Started(p.name.clone())),
            (true, false) => update.changes.push(ProxyChange::Stopped(p.name.clone())),
            _ => {}
        }
    }
    let gateway = gateway.clone();
    branch.change(PROXY_LOG, |old| {
        let mut log = proxy::parse(old);
        proxy::record(&mut log, gateway, wanted, VectorClock::now()).ok()?;
        Some(proxy::write(&log))
    })?;
    Ok(update)
}

/// A repository a gateway proxies: its UUID and the remote that reaches it.
#[derive(Debug, Clone)]
pub struct Proxied {
    /// The proxied repository's UUID.
    pub uuid: Uuid,
    /// The remote this gateway reaches it with.
    pub remote: Remote,
}

/// A gateway's view of what it may serve.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// This repository's UUID.
    pub uuid: Uuid,
    /// The repositories proxy.log lists for this gateway, by UUID, with
    /// the remote name there.
    pub listed: BTreeMap<Uuid, String>,
    /// The remotes and clusters of git config, with the remotes proxied
    /// through them (see [`GitRemotes::with_proxied`]).
    pub remotes: GitRemotes,
    /// cluster.log, without dead nodes.
    pub clusters: Clusters,
    /// What proxy.log says every gateway proxies.
    pub proxies: BTreeMap<Uuid, BTreeSet<Proxy>>,
    descriptions: BTreeMap<Uuid, String>,
}

impl Gateway {
    /// Loads proxy.log, cluster.log and uuid.log from the branch.
    pub fn load(branch: &Branch, uuid: Uuid, remotes: GitRemotes) -> Result<Gateway, BranchError> {
        let proxies = proxy::proxies(&proxy::parse(&branch.read(PROXY_LOG)?));
        let listed = proxies
            .get(&uuid)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.uuid, p.name))
            .collect();
        let descriptions = uuid_log::descriptions(&uuid_log::parse(&branch.read(UUID_LOG)?));
        let clusters = branch.clusters()?;
        let remotes = remotes.with_proxied(&proxies, |u| {
            clusters.clusters_of(u).cloned().unwrap_or_default()
        });
        Ok(Gateway {
            uuid,
            listed,
            remotes,
            clusters,
            proxies,
            descriptions,
        })
    }

    /// Whether git config allows proxying for the remote, as git-annex
    /// decides: `annex-proxy`, a node of one of this repository's
    /// clusters, or a remote proxied by a remote that is a gateway of a
    /// cluster (`annex-cluster-gateway`).
    pub fn proxy_configured(&self, r: &Remote) -> bool {
        if r.proxy {
            return true;
        }
        if r.cluster_node
            .iter()
            .any(|n| self.remotes.clusters.contains_key(n))
        {
            return true;
        }
        match &r.proxied_by {
            Some(gw) => self
                .remotes
                .remotes
                .iter()
                .any(|p| p.uuid.as_ref() == Some(gw) && !p.cluster_gateway.is_empty()),
            None => false,
        }
    }

    /// The cluster to serve for `wanted`, when it is a cluster UUID that
    /// proxy.log lists for this gateway and cluster.log knows. A cluster
    /// UUID listed but unknown to cluster.log is refused by
    /// [`Gateway::resolve`].
    pub fn resolve_cluster(&self, wanted: &str) -> Option<Uuid> {
        let u = Uuid::parse(wanted).ok()?;
        (u.is_cluster() && self.listed.contains_key(&u) && self.clusters.nodes.contains_key(&u))
            .then_some(u)
    }

    /// The remote to serve `wanted` through, as git-annex decides: listed
    /// in proxy.log for this gateway, and a remote of the same name and
    /// UUID configured to be proxied (the cheapest such). `Ok(None)` when
    /// `wanted` is this repository.
    pub fn resolve(&self, wanted: &str) -> Result<Option<Proxied>, ProxyError> {
        if wanted == self.uuid.as_str() {
            return Ok(None);
        }
        let unexpected = || ProxyError::Unexpected {
            expected: wanted.to_owned(),
            found: self.uuid.clone(),
        };
        let u = Uuid::parse(wanted).map_err(|_| unexpected())?;
        let not_configured = || match self.descriptions.get(&u) {
            Some(d) => ProxyError::NotConfigured(d.clone()),
            None => unexpected(),
        };
        let Some(name) = self.listed.get(&u) else {
            return Err(unexpected());
        };
        if u.is_cluster() {
            // Served as a cluster (see resolve_cluster), or refused.
            return Err(not_configured());
        }
        let candidates: Vec<&Remote> = self
            .remotes
            .by_cost()
            .into_iter()
            .filter(|r| {
                r.uuid.as_ref() == Some(&u)
                    && &r.name == name
                    && self.proxy_configured(r)
                    && !r.ignore
            })
            .collect();
        match candidates.first() {
            Some(r) => Ok(Some(Proxied {
                uuid: u,
                remote: (*r).clone(),
            })),
            None => Err(not_configured()),
        }
    }

    /// The UUIDs this gateway serves as proxies: listed in proxy.log and
    /// allowed by git config (clusters not included).
    pub fn proxied_uuids(&self) -> Vec<Uuid> {
        self.listed
            .keys()
            .filter(|u| matches!(self.resolve(u.as_str()), Ok(Some(_))))
            .cloned()
            .collect()
    }

    /// The clusters this gateway serves: listed in proxy.log and known
    /// to cluster.log.
    pub fn served_clusters(&self) -> Vec<Uuid> {
        self.listed
            .keys()
            .filter(|u| self.resolve_cluster(u.as_str()).is_some())
            .cloned()
            .collect()
    }
}
