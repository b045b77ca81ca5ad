//! git-annex clusters: membership, node selection, fan-out.
//!
//! - [`config`]: a cluster's configuration as git-annex keeps it
//!   (`initcluster`, `updatecluster`, `extendcluster`).
#![warn(missing_docs)]

pub mod config;
pub use config::{extend_cluster, init_cluster, update_clusters, ClusterUpdate, ConfigError};
