//! Where content is: the per-key location logs, `xxx/yyy/KEY.log`.

use annex_types::{Key, Uuid};

use std::collections::BTreeSet;

use crate::clock::VectorClock;
use crate::logs::cluster::{self, Clusters};
use crate::logs::paths::{CLUSTER_LOG, TRUST_LOG};
use crate::logs::presence::{self, Status};
use crate::logs::trust;
use crate::{Branch, BranchError};

/// The location log's path on the branch: `xxx/yyy/KEY.log`, in the
/// lower-case hash directories the branch uses.
pub fn location_log_path(key: &Key) -> String {
    format!("{}{}.log", key.hash_dir_lower(), key.to_file_name())
}

/// The UUIDs a location log says have the content, in the order git-annex
/// lists them (sorted), without cluster UUIDs.
pub fn present_uuids(log: &[u8]) -> Vec<Uuid> {
    presence::present(log)
        .into_iter()
        .filter_map(|u| {
            std::str::from_utf8(&u)
                .ok()
                .and_then(|s| Uuid::parse(s).ok())
        })
        .collect()
}

/// Adds the UUID of every cluster that has one of `locations` as a node,
/// in front of them, as git-annex does when it reads a location log.
pub fn add_cluster_uuids(clusters: &Clusters, locations: Vec<Uuid>) -> Vec<Uuid> {
    if clusters.clusters_of_node.is_empty() {
        return locations;
    }
    let found: BTreeSet<&Uuid> = locations
        .iter()
        .filter_map(|u| clusters.clusters_of(u))
        .flatten()
        .collect();
    let mut out: Vec<Uuid> = found.into_iter().cloned().collect();
    out.extend(locations);
    out
}

impl Branch {
    /// The clusters as git-annex uses them: cluster.log without the nodes
    /// trust.log says are dead.
    pub fn clusters(&self) -> Result<Clusters, BranchError> {
        Ok(self.clusters_checked()?.0)
    }

    /// [`Branch::clusters`], with a warning for each cluster or node
    /// skipped because its UUID is not plain (see
    /// [`cluster::Clusters::from_log_checked`]).
    pub fn clusters_checked(&self) -> Result<(Clusters, Vec<String>), BranchError> {
        let log = cluster::parse(&self.read(CLUSTER_LOG)?);
        if log.entries.is_empty() {
            return Ok((Clusters::default(), Vec::new()));
        }
        Ok(cluster::clusters_checked(
            &log,
            &trust::parse(&self.read(TRUST_LOG)?),
        ))
    }

    /// The repositories that have the key's content according to the
    /// branch and the journal, with the clusters any of them is a node of.
    pub fn locations(&self, key: &Key) -> Result<Vec<Uuid>, BranchError> {
        let locs = self.locations_without_clusters(key)?;
        Ok(add_cluster_uuids(&self.clusters()?, locs))
    }

    /// The repositories that have the key's content according to the
    /// branch and the journal, without cluster UUIDs.
    pub fn locations_without_clusters(&self, key: &Key) -> Result<Vec<Uuid>, BranchError> {
        Ok(present_uuids(&self.read(&location_log_path(key))?))
    }

    /// Records that `uuid` has (or no longer has) the key's content, in
    /// the journal, unless the log already says so. A cluster's UUID is
    /// never recorded, as git-annex never records one: its nodes are.
    /// Returns whether the log changed.
    pub fn set_location(&self, key: &Key, uuid: &Uuid, present: bool) -> Result<bool, BranchError> {
        if uuid.is_cluster() {
            return Ok(false);
        }
        let status = if present {
            Status::Present
        } else {
            Status::Missing
        };
        self.change(&location_log_path(key), |old| {
            presence::change(old, uuid.as_str().as_bytes(), status, VectorClock::now())
        })
    }
}
