//! A key's metadata on the branch: `xxx/yyy/KEY.log.met`, read and changed
//! through the journal (git-annex's `getCurrentMetaData` and
//! `addMetaData`). The log itself is [`crate::logs::metadata`].

use std::collections::BTreeMap;

use annex_types::Key;

use crate::clock::VectorClock;
use crate::logs::metadata::{self, CurrentField, IllegalField, MetaData, MetaDataLog, ModMeta};
use crate::{Branch, BranchError};

/// Why metadata could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum MetaDataError {
    /// A change names a field git-annex refuses.
    #[error(transparent)]
    IllegalField(#[from] IllegalField),
    /// The branch could not be read or written.
    #[error(transparent)]
    Branch(#[from] BranchError),
}

/// The metadata log's path on the branch: `xxx/yyy/KEY.log.met`, in the
/// lower-case hash directories the branch uses (git-annex's
/// `metaDataLogFile`).
pub fn metadata_log_path(key: &Key) -> String {
    format!("{}{}.log.met", key.hash_dir_lower(), key.to_file_name())
}

impl Branch {
    /// The key's metadata log as git-annex reads it, from the journal when
    /// it is there, else from the branch.
    pub fn metadata_log(&self, key: &Key) -> Result<MetaDataLog, BranchError> {
        Ok(MetaDataLog::parse(&self.read(&metadata_log_path(key))?))
    }

    /// The key's current metadata as git-annex's `getCurrentMetaData`
    /// gives it (and `metadata=` in preferred content matches it): field
    /// names case folded, the `lastchanged` pseudo fields included.
    pub fn metadata(&self, key: &Key) -> Result<MetaData, BranchError> {
        Ok(metadata::current(&self.read(&metadata_log_path(key))?))
    }

    /// [`Branch::metadata`] with each field's name spelled as `git annex
    /// metadata` shows it, keyed by folded name.
    pub fn metadata_fields(
        &self,
        key: &Key,
    ) -> Result<BTreeMap<String, CurrentField>, BranchError> {
        Ok(self.metadata_log(key)?.current_fields())
    }

    /// Changes the key's metadata as `git annex metadata --set ...` does,
    /// in the journal, with the clock of now. Returns whether the log
    /// changed. A change naming a field git-annex refuses changes nothing.
    pub fn change_metadata(&self, key: &Key, mods: &[ModMeta]) -> Result<bool, MetaDataError> {
        self.change_metadata_at(key, mods, VectorClock::now())
    }

    /// [`Branch::change_metadata`] with the clock `now` (advanced past the
    /// log's newest line if need be), as git-annex uses one clock for every
    /// key a command changes.
    pub fn change_metadata_at(
        &self,
        key: &Key,
        mods: &[ModMeta],
        now: VectorClock,
    ) -> Result<bool, MetaDataError> {
        for m in mods {
            m.check()?;
        }
        Ok(self.change(&metadata_log_path(key), |old| {
            metadata::modify(old, mods, now)
        })?)
    }
}
