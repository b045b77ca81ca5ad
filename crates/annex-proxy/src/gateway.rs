//! A gateway: the repository that proxies, what proxy.log says it proxies,
//! and the checks git-annex makes before serving a proxied UUID.

use std::collections::{BTreeMap, BTreeSet};

use annex_branch::logs::cluster::{self, Clusters};
use annex_branch::logs::paths::{CLUSTER_LOG, PROXY_LOG, REMOTE_LOG, UUID_LOG};
use annex_branch::logs::proxy::{self, Proxy};
use annex_branch::logs::remote_config;
use annex_branch::logs::uuid_log;
use annex_branch::{Branch, BranchError, VectorClock};
use annex_protocol::Uuid;

use crate::remotes::{GitRemotes, Remote};
pub use annex_repo::remotes::annex_remote_list;
pub use annex_special::export::unproxyable_warning;

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

/// The cluster names of a remote's `annex-cluster-node` that git-annex
/// takes (legal remote names).
fn cluster_node_names(r: &Remote) -> impl Iterator<Item = &String> {
    r.cluster_node
        .iter()
        .filter(|n| proxy::is_legal_remote_name(n))
}

/// The clusters this repository is a gateway for, as git-annex takes
/// them from `annex.cluster.NAME`: legal names and cluster UUIDs.
fn my_clusters(remotes: &GitRemotes) -> impl Iterator<Item = (&String, &Uuid)> {
    remotes
        .clusters
        .iter()
        .filter(|(n, u)| proxy::is_legal_remote_name(n) && u.is_cluster())
}

/// What this repository should proxy, as git-annex's `updateproxy`
/// decides: the remotes (those proxied through other gateways included,
/// see [`GitRemotes::with_proxied`]) with `annex-proxy` or
/// `annex-cluster-node` set and a known UUID; this repository's clusters
/// (`annex.cluster.NAME`); and the nodes of those clusters that are
/// reached through another gateway, unless already proxied directly.
/// `clusters` is cluster.log without dead nodes. Also returns a warning
/// for each remote that is configured to be proxied but cannot be.
///
/// `unproxyable` names the remotes git-annex refuses to proxy for what
/// they are: exporttree special remotes without annexobjects (see
/// [`unproxyable_exports`]); each gets git-annex's warning.
pub fn configured_proxies(
    remotes: &GitRemotes,
    clusters: &Clusters,
    unproxyable: &BTreeSet<String>,
) -> (BTreeSet<Proxy>, Vec<String>) {
    let list = annex_remote_list(remotes);
    let mut out = BTreeSet::new();
    let mut warnings = Vec::new();
    for r in &list {
        if !r.proxy && cluster_node_names(r).next().is_none() {
            continue;
        }
        match &r.uuid {
            Some(_) if unproxyable.contains(&r.name) => {
                warnings.push(unproxyable_warning(&r.name, "Cannot proxy to this remote."))
            }
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
    let mine: BTreeSet<&Uuid> = my_clusters(remotes).map(|(_, u)| u).collect();
    let proxied_here: BTreeSet<Uuid> = out
        .iter()
        .map(|p| p.uuid.clone())
        .chain(mine.iter().map(|u| (*u).clone()))
        .collect();
    for (name, cu) in my_clusters(remotes) {
        out.insert(Proxy {
            uuid: cu.clone(),
            name: name.clone(),
        });
    }
    // Nodes of these clusters behind other gateways; those proxied here
    // directly are left out, so that no cycle is made.
    for r in &list {
        let Some(u) = &r.uuid else { continue };
        if r.proxied_by.is_none() || proxied_here.contains(u) {
            continue;
        }
        let of_mine = clusters
            .clusters_of(u)
            .is_some_and(|cs| cs.iter().any(|c| mine.contains(c)));
        if of_mine {
            out.insert(Proxy {
                uuid: u.clone(),
                name: r.name.clone(),
            });
        }
    }
    (out, warnings)
}

/// The special remotes of git config (by name) that git-annex does not
/// proxy, nor use as cluster nodes: those configured in remote.log with
/// `exporttree=yes` and without `annexobjects=yes` (found under
/// `annex-config-uuid` for a `--sameas` remote).
pub fn unproxyable_exports(
    branch: &Branch,
    remotes: &GitRemotes,
) -> Result<BTreeSet<String>, BranchError> {
    let log = remote_config::parse(&branch.read(REMOTE_LOG)?);
    let configs = remote_config::config_map(&log);
    let git =
        annex_repo::config::GitConfig::read(branch.git_dir()).map_err(|e| BranchError::Io {
            context: "reading git config".into(),
            source: e,
        })?;
    Ok(remotes
        .remotes
        .iter()
        .filter(|r| r.url.is_none() && !r.synthesized)
        .filter(|r| {
            let config_uuid = git
                .get(&format!("remote.{}.annex-config-uuid", r.name))
                .and_then(|u| Uuid::parse(u.trim()).ok());
            let Some(u) = config_uuid.as_ref().or(r.uuid.as_ref()) else {
                return false;
            };
            configs.get(u).is_some_and(|c| {
                annex_special::export::ExportConfig::from_config(c).is_ok_and(|e| !e.proxyable())
            })
        })
        .map(|r| r.name.clone())
        .collect())
}

/// Records in proxy.log what this repository (`gateway`) proxies, as
/// `git annex updateproxy` does (see [`configured_proxies`]); `remotes`
/// as git config lists them, the remotes proxied through them are added
/// from proxy.log. Private repositories (see
/// [`GitRemotes::private_uuids`]) are kept out of the log.
pub fn update_proxy(
    branch: &Branch,
    gateway: &Uuid,
    remotes: &GitRemotes,
) -> Result<ProxyUpdate, BranchError> {
    let log = proxy::parse(&branch.read(PROXY_LOG)?);
    let (proxies, mut skipped) = proxy::proxies_checked(&log);
    let clusters = branch.clusters()?;
    let (all_nodes, skipped_nodes) =
        Clusters::from_log_checked(&cluster::parse(&branch.read(CLUSTER_LOG)?));
    skipped.extend(skipped_nodes);
    let full = remotes.with_proxied(&proxies, |u| {
        all_nodes.clusters_of(u).cloned().unwrap_or_default()
    });
    let unproxyable = unproxyable_exports(branch, remotes)?;
    let (wanted, mut warnings) = configured_proxies(&full, &clusters, &unproxyable);
    warnings.extend(skipped);
    // Compared with what the log holds, so that entries skipped above
    // (not plain UUIDs) are dropped from this gateway's line.
    let current = proxy::recorded(&log, gateway);
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
    let private = remotes.private_uuids(gateway);
    let recorded: BTreeSet<Proxy> = wanted
        .into_iter()
        .filter(|p| !private.contains(&p.uuid))
        .collect();
    let gateway = gateway.clone();
    branch.change(PROXY_LOG, |old| {
        let mut log = proxy::parse(old);
        proxy::record(&mut log, gateway, recorded, VectorClock::now()).ok()?;
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

/// What a UUID names at a gateway (see [`Gateway::served`]).
#[derive(Debug, Clone)]
pub enum Served {
    /// The gateway's own repository.
    Own,
    /// A repository the gateway proxies, and the remote that reaches it.
    Node(Proxied),
    /// A cluster the gateway is a gateway for.
    Cluster(Uuid),
}

/// What each gateway between this repository and a node adds to the
/// node's cost: less than the steps between git-annex's own costs (100
/// cheap, 150 and 175 semi-expensive, 200 expensive), so that it orders
/// nodes of one kind by distance without overriding costs set apart.
pub const HOP_COST: f64 = 10.0;

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
    /// Entries whose UUIDs are not plain (see [`Uuid::is_plain`]) are
    /// skipped, each with a warning logged (`tracing`).
    pub fn load(branch: &Branch, uuid: Uuid, remotes: GitRemotes) -> Result<Gateway, BranchError> {
        let (proxies, skipped) = proxy::proxies_checked(&proxy::parse(&branch.read(PROXY_LOG)?));
        let listed = proxies
            .get(&uuid)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.uuid, p.name))
            .collect();
        let descriptions = uuid_log::descriptions(&uuid_log::parse(&branch.read(UUID_LOG)?));
        let (clusters, skipped_nodes) = branch.clusters_checked()?;
        for w in skipped.iter().chain(&skipped_nodes) {
            tracing::warn!("{w}");
        }
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

    /// What `wanted` names here, as git-annex's gateway decides (over
    /// ssh and over p2phttp alike): this repository; a cluster that
    /// proxy.log lists for this gateway and cluster.log knows; or a
    /// repository proxy.log lists for this gateway with a remote of the
    /// same name and UUID that git config allows proxying (the cheapest
    /// such). Anything else is refused with git-annex's reason: a UUID not
    /// listed is [`ProxyError::Unexpected`]; one listed but not served is
    /// [`ProxyError::NotConfigured`] with its description (or
    /// `Unexpected` when uuid.log has none).
    pub fn served(&self, wanted: &str) -> Result<Served, ProxyError> {
        if wanted == self.uuid.as_str() {
            return Ok(Served::Own);
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
            return match self.clusters.nodes.contains_key(&u) {
                true => Ok(Served::Cluster(u)),
                false => Err(not_configured()),
            };
        }
        let remote = self.remotes.by_cost().into_iter().find(|r| {
            r.uuid.as_ref() == Some(&u) && &r.name == name && self.proxy_configured(r) && !r.ignore
        });
        match remote {
            Some(r) => Ok(Served::Node(Proxied {
                uuid: u,
                remote: r.clone(),
            })),
            None => Err(not_configured()),
        }
    }

    /// How p2phttp refuses a UUID this gateway does not serve, as
    /// git-annex's p2phttp does: listed in proxy.log for this gateway but
    /// not served (see [`Gateway::served`]), 502 with this text; `None`
    /// for anything else (404, or served).
    pub fn http_refusal(&self, uuid: &Uuid) -> Option<String> {
        if !self.listed.contains_key(uuid) {
            return None;
        }
        match self.served(uuid.as_str()) {
            Err(e @ ProxyError::NotConfigured(_)) => Some(e.to_string()),
            Err(ProxyError::Unexpected { .. }) => Some("unknown uuid".into()),
            Ok(_) => None,
        }
    }

    /// The UUIDs this gateway serves as proxies: listed in proxy.log and
    /// allowed by git config (clusters not included).
    pub fn proxied_uuids(&self) -> Vec<Uuid> {
        self.proxied().map(|p| p.uuid).collect()
    }

    /// The repositories this gateway serves as proxies (see
    /// [`Gateway::served`]), each with the remote that reaches it.
    pub fn proxied(&self) -> impl Iterator<Item = Proxied> + '_ {
        self.listed
            .keys()
            .filter_map(|u| match self.served(u.as_str()) {
                Ok(Served::Node(p)) => Some(p),
                _ => None,
            })
    }

    /// How many gateways stand between this repository and the one the
    /// remote `r` reaches: none for a remote reaching it directly; for a
    /// remote proxied by a gateway (`annex-proxied-by`, a proxy.log
    /// listing, or the cluster behind another of its gateways), one more
    /// than the fewest of the remotes reaching that gateway.
    pub fn hops(&self, r: &Remote) -> u32 {
        self.hops_within(r, self.remotes.remotes.len())
    }

    fn hops_within(&self, r: &Remote, depth: usize) -> u32 {
        let Some(gw) = &r.proxied_by else { return 0 };
        if depth == 0 {
            // A chain longer than the remotes loops: count what is known.
            return 1;
        }
        let before = self
            .remotes
            .remotes
            .iter()
            .filter(|p| p.uuid.as_ref() == Some(gw) && p.name != r.name)
            .map(|p| self.hops_within(p, depth - 1))
            .min()
            .unwrap_or(0);
        1 + before
    }

    /// The cost of reading from the repository that `r` reaches: the
    /// remote's cost, and [`HOP_COST`] for each gateway in between, so that
    /// the nearest copy is read first.
    pub fn cost(&self, r: &Remote) -> f64 {
        r.effective_cost() + HOP_COST * f64::from(self.hops(r))
    }

    /// The clusters this gateway serves: listed in proxy.log and known
    /// to cluster.log.
    pub fn served_clusters(&self) -> Vec<Uuid> {
        self.listed
            .keys()
            .filter(|u| matches!(self.served(u.as_str()), Ok(Served::Cluster(_))))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-4111-8111-111111111111";
    const U3: &str = "33333333-3333-4333-8333-333333333333";
    const G: &str = "99999999-9999-4999-8999-999999999999";
    const CU: &str = "ac000000-0000-8000-8000-000000000000";

    fn u(s: &str) -> Uuid {
        Uuid::parse(s).unwrap()
    }

    fn p(uuid: &str, name: &str) -> Proxy {
        Proxy {
            uuid: u(uuid),
            name: name.into(),
        }
    }

    #[test]
    fn cluster_proxies() {
        let cfg = format!(
            "remote.n1.url\n../n1\0remote.n1.annex-uuid\n{U1}\0remote.n1.annex-cluster-node\nc\0remote.n2.url\n../n2\0remote.n2.annex-proxy\ntrue\0remote.gw.url\nhost:/gw\0remote.gw.annex-uuid\n{G}\0annex.cluster.c\n{CU}\0annex.cluster.bad name\n{CU}\0"
        );
        let remotes = GitRemotes::parse_z(cfg.as_bytes());
        // The other gateway proxies the cluster, n1 and another node.
        let proxies =
            BTreeMap::from([(u(G), BTreeSet::from([p(U1, "n1"), p(U3, "x"), p(CU, "c")]))]);
        let clusters = Clusters {
            nodes: BTreeMap::from([(u(CU), BTreeSet::from([u(U1), u(U3)]))]),
            clusters_of_node: BTreeMap::from([
                (u(U1), BTreeSet::from([u(CU)])),
                (u(U3), BTreeSet::from([u(CU)])),
            ]),
        };
        let full = remotes.with_proxied(&proxies, |n| {
            clusters.clusters_of(n).cloned().unwrap_or_default()
        });
        let (wanted, warnings) = configured_proxies(&full, &clusters, &BTreeSet::new());
        // n1 directly (not again as gw-n1), the cluster, and the node
        // behind the other gateway; not gw-c, which is no node.
        assert_eq!(
            wanted,
            BTreeSet::from([p(U1, "n1"), p(U3, "gw-x"), p(CU, "c")])
        );
        assert_eq!(
            warnings,
            ["n2 is a git remote without a known annex-uuid. Cannot proxy to this remote."]
        );
    }

    #[test]
    fn what_uuids_name_and_how_they_are_refused() {
        const U4: &str = "44444444-4444-4444-8444-444444444444";
        const CU2: &str = "ac000000-0000-8000-8000-000000000002";
        let cfg = format!(
            "remote.n1.url\n../n1\0remote.n1.annex-uuid\n{U1}\0remote.n1.annex-proxy\0remote.n3.url\n../n3\0remote.n3.annex-uuid\n{U3}\0annex.cluster.c\n{CU}\0"
        );
        let g = Gateway {
            uuid: u(G),
            listed: BTreeMap::from([
                (u(U1), "n1".into()),
                (u(U3), "n3".into()),
                (u(CU), "c".into()),
                (u(CU2), "c2".into()),
            ]),
            remotes: GitRemotes::parse_z(cfg.as_bytes()),
            clusters: Clusters {
                nodes: BTreeMap::from([(u(CU), BTreeSet::from([u(U1)]))]),
                clusters_of_node: BTreeMap::from([(u(U1), BTreeSet::from([u(CU)]))]),
            },
            proxies: BTreeMap::new(),
            descriptions: BTreeMap::from([(u(U3), "three".into())]),
        };
        assert!(matches!(g.served(G), Ok(Served::Own)));
        assert!(
            matches!(g.served(U1), Ok(Served::Node(p)) if p.uuid == u(U1) && p.remote.name == "n1")
        );
        assert!(matches!(g.served(CU), Ok(Served::Cluster(c)) if c == u(CU)));
        // Listed, not allowed by git config: refused with its description.
        assert_eq!(
            g.served(U3).unwrap_err().to_string(),
            "not configured to proxy for repository three"
        );
        let unexpected = |w: &str| format!("expected repository UUID {w} but found UUID {G}");
        for w in [CU2, U4, "not a uuid"] {
            assert_eq!(g.served(w).unwrap_err().to_string(), unexpected(w));
        }
        assert_eq!(g.proxied_uuids(), [u(U1)]);
        assert_eq!(g.served_clusters(), [u(CU)]);
        // p2phttp: 502 for what proxy.log lists and is not served, else 404.
        assert_eq!(
            g.http_refusal(&u(U3)).as_deref(),
            Some("not configured to proxy for repository three")
        );
        assert_eq!(g.http_refusal(&u(CU2)).as_deref(), Some("unknown uuid"));
        for w in [U1, CU, U4, G] {
            assert_eq!(g.http_refusal(&u(w)), None, "{w}");
        }
    }

    #[test]
    fn nodes_behind_more_gateways_cost_more() {
        // n1 here; gw2 (over ssh) proxies U3 and the cluster; gw3 is
        // reached only through gw2 (gw2-gw3) and proxies U4.
        const U4: &str = "44444444-4444-4444-8444-444444444444";
        const G2: &str = "22222222-2222-4222-8222-222222222222";
        const G3: &str = "33333333-0000-4333-8333-333333333333";
        let cfg = format!(
            "remote.n1.url\n../n1\0remote.n1.annex-uuid\n{U1}\0remote.gw2.url\nhost:/gw2\0remote.gw2.annex-uuid\n{G2}\0"
        );
        let remotes = GitRemotes::parse_z(cfg.as_bytes());
        let proxies = BTreeMap::from([(
            u(G2),
            BTreeSet::from([p(U3, "n3"), p(CU, "c"), p(G3, "gw3")]),
        )]);
        let mut remotes = remotes.with_proxied(&proxies, |_| BTreeSet::new());
        // A remote through gw2's proxied gateway, as git config may name it.
        let mut deeper = remotes.by_name("gw2-n3").unwrap().clone();
        deeper.name = "gw2-gw3-n4".into();
        deeper.uuid = Some(u(U4));
        deeper.proxied_by = Some(u(G3));
        remotes.remotes.push(deeper);
        let g = Gateway {
            uuid: u(G),
            listed: BTreeMap::new(),
            remotes,
            clusters: Clusters::default(),
            proxies,
            descriptions: BTreeMap::new(),
        };
        let hops = |name: &str| g.hops(g.remotes.by_name(name).unwrap());
        let cost = |name: &str| g.cost(g.remotes.by_name(name).unwrap());
        assert_eq!(
            [
                hops("n1"),
                hops("gw2"),
                hops("gw2-n3"),
                hops("gw2-c"),
                hops("gw2-gw3-n4")
            ],
            [0, 0, 1, 1, 2]
        );
        assert_eq!(cost("n1"), 100.0);
        assert_eq!(cost("gw2"), 200.0);
        assert_eq!(cost("gw2-n3"), 200.0 + HOP_COST);
        assert_eq!(cost("gw2-gw3-n4"), 200.0 + 2.0 * HOP_COST);
    }
}
