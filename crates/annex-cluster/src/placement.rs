//! Which nodes an upload to a cluster goes to, as git-annex's gateway
//! chooses them (Annex/Cluster.hs): the nodes the location log does not
//! list for the key; of those, the ones whose preferred content wants it
//! (a node without preferred content wants everything); when none does,
//! all of those; when the log lists every node, every node.
//!
//! A node that wants the key because of its size (the balanced family
//! with maxsize) has the key's size reserved until the upload ends, so
//! that concurrent uploads do not overfill it. A placement is refreshed
//! when the gateway's configuration is read again, keeping the sizes and
//! the reservations of uploads in flight.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use annex_branch::{Branch, BranchError};
use annex_preferred::{
    BranchKeys, Decider, Facts, LiveSizes, Policies, Reservation, Settings, Wants,
};
use annex_protocol::{Key, Uuid};

/// What decisions about a cluster's uploads read: the gateway's branch,
/// the repositories' facts and compiled preferred content, and live
/// sizes shared by every upload this gateway makes.
pub struct Placement {
    branch: Arc<Mutex<Branch>>,
    read: RwLock<Read>,
    /// Read from the branch at the first upload: a session that only
    /// downloads never needs them.
    sizes: std::sync::OnceLock<LiveSizes>,
    settings: Settings,
}

/// What was read from the branch, replaced by a refresh.
struct Read {
    facts: Facts,
    policies: Policies,
}

impl Read {
    fn load(branch: &Branch) -> Result<Read, BranchError> {
        let facts = Facts::load(branch)?;
        let policies = Policies::compile(&facts);
        Ok(Read { facts, policies })
    }
}

/// The nodes chosen for one upload.
#[derive(Debug, Default)]
pub struct Chosen {
    /// Indexes into the node list given to [`Placement::choose`].
    pub nodes: Vec<usize>,
    /// Sizes reserved on the chosen nodes, to finish when the content is
    /// stored there.
    pub reservations: Vec<Reservation>,
}

/// A node's size and maxsize, as placement reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSize {
    /// The node.
    pub uuid: Uuid,
    /// Its content's size, with reservations in flight, when known.
    pub size: Option<i128>,
    /// Its maxsize, when it has one.
    pub maxsize: Option<i128>,
}

impl Placement {
    /// Loads facts and preferred content from the gateway's branch (sizes
    /// when first needed); `here` is the gateway's UUID.
    pub fn load(branch: Arc<Mutex<Branch>>, here: Uuid) -> Result<Placement, BranchError> {
        let read = Read::load(&branch.lock().unwrap_or_else(|p| p.into_inner()))?;
        Ok(Placement {
            branch,
            read: RwLock::new(read),
            sizes: std::sync::OnceLock::new(),
            settings: Settings {
                here: Some(here),
                ..Settings::default()
            },
        })
    }

    /// Reads facts, preferred content and (when already read) sizes from
    /// the branch again, after the configuration changed. Uploads in
    /// flight keep their reservations, and are counted in the sizes
    /// decisions read from now on: once, as in flight until their
    /// locations are recorded, then as recorded. Blocking.
    pub fn refresh(&self) -> Result<(), BranchError> {
        let b = self.branch.lock().unwrap_or_else(|p| p.into_inner());
        let read = Read::load(&b)?;
        if let Some(sizes) = self.sizes.get() {
            let base = annex_preferred::live::branch_sizes(&b, &read.facts)?;
            // An upload whose location is recorded but whose reservation
            // is not finished yet counts in the sizes just read: no
            // longer as in flight too. (Locations are recorded under the
            // branch's lock, held from here until the sizes are set.)
            let mut recorded = Vec::new();
            for r in sizes.in_flight() {
                if b.locations_without_clusters(&r.key)?.contains(&r.uuid) {
                    recorded.push(r.id);
                }
            }
            sizes.set_base_recorded(base, &recorded);
        }
        *self.read.write().unwrap_or_else(|p| p.into_inner()) = read;
        Ok(())
    }

    /// The gateway's branch.
    pub fn branch(&self) -> &Arc<Mutex<Branch>> {
        &self.branch
    }

    /// Where the key is, by the gateway's location log (with the
    /// clusters of the nodes that have it, as git-annex reads it).
    pub fn locations(&self, key: &Key) -> Result<Vec<Uuid>, BranchError> {
        let b = self.branch.lock().unwrap_or_else(|p| p.into_inner());
        let locs = b.locations_without_clusters(key)?;
        let read = self.read.read().unwrap_or_else(|p| p.into_inner());
        Ok(annex_branch::locations::add_cluster_uuids(
            &read.facts.clusters,
            locs,
        ))
    }

    /// The size of each of `nodes` (what the branch records, with the
    /// sizes reserved by uploads in flight) and its maxsize, where known.
    /// Blocking: reads the branch the first time.
    pub fn sizes(&self, nodes: &[Uuid]) -> Result<Vec<NodeSize>, BranchError> {
        let read = self.read.read().unwrap_or_else(|p| p.into_inner());
        let sizes = match self.sizes.get() {
            Some(s) => s,
            None => {
                let b = self.branch.lock().unwrap_or_else(|p| p.into_inner());
                let s = LiveSizes::from_branch(&b, &read.facts)?;
                self.sizes.get_or_init(|| s)
            }
        };
        Ok(nodes
            .iter()
            .map(|u| NodeSize {
                uuid: u.clone(),
                size: sizes.size(u),
                maxsize: read.facts.maxsizes.get(u).copied(),
            })
            .collect())
    }

    /// Chooses the nodes (given by UUID, in the cluster's order) that an
    /// upload of `key` goes to. Blocking: reads the branch.
    pub fn choose(
        &self,
        nodes: &[Uuid],
        key: &Key,
        file: Option<&str>,
    ) -> Result<Chosen, BranchError> {
        let locs: HashSet<Uuid> = self.locations(key)?.into_iter().collect();
        let missing: Vec<usize> = (0..nodes.len())
            .filter(|&i| !locs.contains(&nodes[i]))
            .collect();
        let b = self.branch.lock().unwrap_or_else(|p| p.into_inner());
        let read = self.read.read().unwrap_or_else(|p| p.into_inner());
        let sizes = match self.sizes.get() {
            Some(s) => s,
            None => {
                let s = LiveSizes::from_branch(&b, &read.facts)?;
                self.sizes.get_or_init(|| s)
            }
        };
        let keys = BranchKeys::new(&b, read.facts.clusters.clone());
        let wants = Wants {
            decider: Decider {
                facts: &read.facts,
                keys: &keys,
                sizes: Some(sizes),
                settings: &self.settings,
            },
            policies: &read.policies,
        };
        let mut chosen = Chosen::default();
        for &i in &missing {
            // A node whose expression cannot be evaluated does not want
            // the key, as git-annex treats a failing match.
            if let Ok(v) = wants.want_get(&nodes[i], key, file, true) {
                if v.matches {
                    chosen.nodes.push(i);
                    chosen.reservations.extend(v.reservation);
                }
            }
        }
        if chosen.nodes.is_empty() {
            chosen.nodes = if missing.is_empty() {
                (0..nodes.len()).collect()
            } else {
                missing
            };
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annex_test_support::{git, init_annex_repo};

    const MAXSIZE: u64 = 1_000_000;

    /// A gateway whose branch knows one node, a directory special remote
    /// in the group `nodes` that wants `balanced=nodes:1` with a maxsize:
    /// every upload to it reserves the key's size. The placement and the
    /// node's UUID.
    fn placement(tmp: &std::path::Path) -> (Placement, Uuid) {
        let (gw, here) = init_annex_repo(tmp, "gw", "gateway");
        let dir = tmp.join("n1");
        std::fs::create_dir(&dir).unwrap();
        let dir_setting = format!("directory={}", dir.display());
        git(
            &gw,
            &[
                "annex",
                "initremote",
                "-q",
                "n1",
                "type=directory",
                &dir_setting,
                "encryption=none",
            ],
        );
        git(&gw, &["annex", "group", "n1", "nodes"]);
        git(&gw, &["annex", "wanted", "n1", "groupwanted"]);
        git(&gw, &["annex", "groupwanted", "nodes", "balanced=nodes:1"]);
        git(&gw, &["annex", "maxsize", "n1", &MAXSIZE.to_string()]);
        let node = Uuid::parse(git(&gw, &["config", "remote.n1.annex-uuid"]).trim()).unwrap();
        let branch = Arc::new(Mutex::new(Branch::open(&gw).unwrap()));
        let p = Placement::load(branch, Uuid::parse(&here).unwrap()).unwrap();
        (p, node)
    }

    fn key(size: u64) -> Key {
        Key::parse(&format!("WORM-s{size}-m1--file{size}")).unwrap()
    }

    fn size(p: &Placement, u: &Uuid) -> Option<i128> {
        p.sizes.get().and_then(|s| s.size(u))
    }

    fn record(p: &Placement, key: &Key, u: &Uuid) {
        let b = p.branch().lock().unwrap();
        assert!(b.set_location(key, u, true).unwrap());
    }

    /// An upload recorded on the branch before the sizes are read again,
    /// whose reservation is finished after, counts once, as does one
    /// recorded after the sizes are read again.
    #[test]
    fn an_upload_recorded_around_a_refresh_counts_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, node) = placement(tmp.path());
        let nodes = [node.clone()];

        let first = key(100);
        let chosen = p.choose(&nodes, &first, None).unwrap();
        assert_eq!(chosen.nodes, vec![0]);
        assert_eq!(chosen.reservations.len(), 1);
        assert_eq!(size(&p, &node), Some(100));
        // Stored and recorded; the configuration is read again before the
        // upload's reservation is finished.
        record(&p, &first, &node);
        p.refresh().unwrap();
        assert_eq!(size(&p, &node), Some(100));
        chosen
            .reservations
            .into_iter()
            .for_each(Reservation::finish);
        assert_eq!(size(&p, &node), Some(100));

        // Read again while in flight, then recorded and finished.
        let second = key(50);
        let chosen = p.choose(&nodes, &second, None).unwrap();
        assert_eq!(chosen.reservations.len(), 1);
        p.refresh().unwrap();
        assert_eq!(size(&p, &node), Some(150));
        record(&p, &second, &node);
        chosen
            .reservations
            .into_iter()
            .for_each(Reservation::finish);
        assert_eq!(size(&p, &node), Some(150));
        p.refresh().unwrap();
        assert_eq!(size(&p, &node), Some(150));
    }
}
