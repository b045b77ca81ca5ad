//! git-annex clusters: membership, node selection, fan-out.
//!
//! Not implemented yet: this crate is empty.
