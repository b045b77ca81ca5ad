//! The logs on the git-annex branch, as pure functions over bytes.
//!
//! Parsing never fails as a whole: like git-annex, a line that does not
//! parse is skipped (and kept aside where the log is rewritten, so that
//! lines a newer git-annex wrote are never lost).

pub mod cluster;
pub mod export;
pub mod group;
pub mod maxsize;
pub mod metadata;
pub mod numcopies;
pub mod paths;
pub mod preferred_content;
pub mod presence;
pub mod proxy;
pub mod readish;
pub mod remote_config;
pub mod single_value;
pub mod trust;
pub mod union;
pub mod uuid_based;
pub mod uuid_log;
