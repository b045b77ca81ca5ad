//! Per-key metadata logs (`KEY.log.met`). Placeholder: filled in by the
//! metadata work (git-annex's Logs/MetaData.hs).

use std::collections::{BTreeMap, BTreeSet};

/// A key's current metadata: each field (lower-cased, as git-annex
/// compares fields without case) with its current values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaData(pub BTreeMap<String, BTreeSet<Vec<u8>>>);

/// The current metadata in a `.log.met` file.
pub fn current(_data: &[u8]) -> MetaData {
    MetaData::default()
}
