//! Where content is: the per-key location logs, `xxx/yyy/KEY.log`.

use annex_protocol::{Key, Uuid};

use crate::clock::VectorClock;
use crate::logs::presence::{self, Status};
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

impl Branch {
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
