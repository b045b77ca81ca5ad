//! The logs on the git-annex branch, as pure functions over bytes.
//!
//! Parsing never fails as a whole: like git-annex, a line that does not
//! parse is skipped (and kept aside where the log is rewritten, so that
//! lines a newer git-annex wrote are never lost).

pub mod presence;
