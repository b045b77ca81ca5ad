//! cluster.log: the nodes of each cluster, in the new UUID-based form
//! (`CLOCK CLUSTER-UUID NODE-UUID NODE-UUID...`).
//!
//! Nodes are separated by single spaces (one trailing space is allowed;
//! two spaces in a row make the line unreadable, as in git-annex). git-annex
//! only counts lines whose field is a cluster UUID (see
//! [`Uuid::is_cluster`]), and leaves dead nodes out of the clusters it
//! uses: see [`clusters`] and [`Clusters::without_nodes`].

use std::collections::{BTreeMap, BTreeSet};

use annex_types::Uuid;

use super::proxy::not_plain;
use super::trust::{with_level, TrustLevel, TrustLog};
use super::uuid_based::{LogField, LogValue, UuidLog, ValueError};
use crate::clock::VectorClock;

/// The nodes of one cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ClusterNodes(pub BTreeSet<Uuid>);

impl LogValue for ClusterNodes {
    fn parse_value(b: &[u8]) -> Option<Self> {
        let mut set = BTreeSet::new();
        let mut i = 0;
        while i < b.len() && b[i] != b' ' {
            let end = b[i..]
                .iter()
                .position(|&c| c == b' ')
                .map_or(b.len(), |p| i + p);
            set.insert(Uuid::parse_field(&b[i..end])?);
            i = if end == b.len() { end } else { end + 1 };
        }
        (i == b.len()).then_some(ClusterNodes(set))
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        for (i, u) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(u.as_str().as_bytes());
        }
    }
}

/// cluster.log as read.
pub type ClusterLog = UuidLog<ClusterNodes>;

/// Parses cluster.log.
pub fn parse(data: &[u8]) -> ClusterLog {
    ClusterLog::parse_new(data)
}

/// Writes cluster.log as git-annex does.
pub fn write(log: &ClusterLog) -> Vec<u8> {
    log.write_new()
}

/// Records the nodes of a cluster (`git annex updatecluster`); refuses a
/// UUID that is not a cluster UUID. Callers leave out repositories
/// configured as private, as git-annex does. Returns the clock used.
pub fn record(
    log: &mut ClusterLog,
    cluster: Uuid,
    nodes: BTreeSet<Uuid>,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    if !cluster.is_cluster() {
        return Err(ValueError::NotACluster(cluster));
    }
    log.set(cluster, ClusterNodes(nodes), now)
}

/// The clusters, indexed both ways (git-annex's `Clusters`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Clusters {
    /// The nodes of each cluster (a cluster whose line lists no node has
    /// an empty set).
    pub nodes: BTreeMap<Uuid, BTreeSet<Uuid>>,
    /// The clusters each node is in.
    pub clusters_of_node: BTreeMap<Uuid, BTreeSet<Uuid>>,
}

impl Clusters {
    /// The clusters of a log, dead nodes included: lines whose field is
    /// not a cluster UUID are left out, and so are clusters and nodes
    /// whose UUID is not plain (see [`Uuid::is_plain`]): a UUID from
    /// here names a repository a gateway reaches. See
    /// [`Clusters::from_log_checked`] for the warnings.
    pub fn from_log(log: &ClusterLog) -> Clusters {
        Clusters::from_log_checked(log).0
    }

    /// [`Clusters::from_log`], with a warning for each cluster or node
    /// skipped because its UUID is not plain.
    pub fn from_log_checked(log: &ClusterLog) -> (Clusters, Vec<String>) {
        let mut warnings = Vec::new();
        let mut nodes = BTreeMap::new();
        for (c, e) in log.entries.iter().filter(|(c, _)| c.is_cluster()) {
            if !c.is_plain() {
                warnings.push(not_plain("cluster.log", "cluster", c));
                continue;
            }
            let mut ok = BTreeSet::new();
            for n in &e.value.0 {
                if n.is_plain() {
                    ok.insert(n.clone());
                } else {
                    warnings.push(not_plain("cluster.log", &format!("node of {c}"), n));
                }
            }
            nodes.insert(c.clone(), ok);
        }
        (Clusters::from_nodes(nodes), warnings)
    }

    fn from_nodes(nodes: BTreeMap<Uuid, BTreeSet<Uuid>>) -> Clusters {
        let mut clusters_of_node: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
        for (c, ns) in &nodes {
            for n in ns {
                clusters_of_node
                    .entry(n.clone())
                    .or_default()
                    .insert(c.clone());
            }
        }
        Clusters {
            nodes,
            clusters_of_node,
        }
    }

    /// The same clusters without some nodes (git-annex leaves dead nodes
    /// out of the clusters it uses).
    pub fn without_nodes(&self, gone: &BTreeSet<Uuid>) -> Clusters {
        Clusters::from_nodes(
            self.nodes
                .iter()
                .map(|(c, ns)| (c.clone(), ns.difference(gone).cloned().collect()))
                .collect(),
        )
    }

    /// The nodes of a cluster.
    pub fn nodes_of(&self, cluster: &Uuid) -> Option<&BTreeSet<Uuid>> {
        self.nodes.get(cluster)
    }

    /// The clusters a node is in.
    pub fn clusters_of(&self, node: &Uuid) -> Option<&BTreeSet<Uuid>> {
        self.clusters_of_node.get(node)
    }
}

/// The clusters as git-annex uses them: from the log, without the nodes
/// trust.log says are dead (git-annex's `loadClusters`).
pub fn clusters(log: &ClusterLog, trust: &TrustLog) -> Clusters {
    clusters_checked(log, trust).0
}

/// [`clusters`], with the warnings of [`Clusters::from_log_checked`].
pub fn clusters_checked(log: &ClusterLog, trust: &TrustLog) -> (Clusters, Vec<String>) {
    let (all, warnings) = Clusters::from_log_checked(log);
    (
        all.without_nodes(&with_level(trust, TrustLevel::Dead)),
        warnings,
    )
}

/// The nodes cluster.log records for `cluster` as read, without the
/// nodes trust.log says are dead: nodes [`Clusters::from_log`] skips are
/// kept, so that an update can drop them.
pub fn recorded(log: &ClusterLog, trust: &TrustLog, cluster: &Uuid) -> BTreeSet<Uuid> {
    let dead = with_level(trust, TrustLevel::Dead);
    log.entries
        .get(cluster)
        .map(|e| e.value.0.difference(&dead).cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "ac9862b1-9d54-867e-a030-2239ee991ae6";
    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    fn u(s: &str) -> Uuid {
        Uuid::parse(s).unwrap()
    }

    #[test]
    fn node_lists() {
        let ok = |s: &str| ClusterNodes::parse_value(s.as_bytes()).map(|n| n.0.len());
        assert_eq!(ok(""), Some(0));
        assert_eq!(ok(&format!("{U1} {U2}")), Some(2));
        assert_eq!(ok(&format!("{U1} {U2} ")), Some(2));
        assert_eq!(ok(&format!("{U1}  {U2}")), None);
        assert_eq!(ok(&format!(" {U1}")), None);
        assert_eq!(ok(" "), None);
    }

    #[test]
    fn both_ways_and_without_dead() {
        let log = parse(format!("5s {C} {U2} {U1}\n5s {U1} {U2}\n").as_bytes());
        let trust = super::super::trust::parse(format!("{U2} X timestamp=1s\n").as_bytes());
        let all = Clusters::from_log(&log);
        assert_eq!(all.nodes.len(), 1);
        assert_eq!(all.nodes_of(&u(C)).unwrap().len(), 2);
        assert_eq!(all.clusters_of(&u(U1)), Some(&BTreeSet::from([u(C)])));
        let live = clusters(&log, &trust);
        assert_eq!(live.nodes_of(&u(C)), Some(&BTreeSet::from([u(U1)])));
        assert_eq!(live.clusters_of(&u(U2)), None);
        assert_eq!(
            write(&log),
            format!("5s {U1} {U2}\n5s {C} {U1} {U2}\n").as_bytes()
        );
    }

    #[test]
    fn skips_uuids_that_are_not_plain() {
        let hostile = "a;touch${IFS}/tmp/x;b";
        // A "cluster UUID" that is not plain, too.
        let bad_cluster = "ac;touch${IFS}8/x";
        assert!(u(bad_cluster).is_cluster());
        let log = parse(format!("5s {C} {U1} {hostile} {U2}\n5s {bad_cluster} {U1}\n").as_bytes());
        let (ok, warnings) = Clusters::from_log_checked(&log);
        assert_eq!(
            ok.nodes,
            BTreeMap::from([(u(C), BTreeSet::from([u(U1), u(U2)]))])
        );
        assert_eq!(ok.clusters_of(&u(hostile)), None);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains(bad_cluster) || warnings[1].contains(bad_cluster));
        assert!(warnings.iter().any(|w| w.contains(hostile)), "{warnings:?}");
        let trust = super::super::trust::parse(format!("{U2} X timestamp=1s\n").as_bytes());
        assert_eq!(
            recorded(&log, &trust, &u(C)),
            BTreeSet::from([u(U1), u(hostile)])
        );
        assert_eq!(
            clusters_checked(&log, &trust).0.nodes_of(&u(C)),
            Some(&BTreeSet::from([u(U1)]))
        );
    }

    #[test]
    fn records_only_clusters() {
        let mut log = ClusterLog::new();
        let t = VectorClock::from_secs(5);
        assert_eq!(
            record(&mut log, u(U1), BTreeSet::new(), t),
            Err(ValueError::NotACluster(u(U1)))
        );
        record(&mut log, u(C), BTreeSet::from([u(U1)]), t).unwrap();
        assert_eq!(write(&log), format!("5s {C} {U1}\n").as_bytes());
    }
}
