//! git-annex clusters: membership, node selection and preferred content.
//!
//! Not implemented yet: this crate is empty.
