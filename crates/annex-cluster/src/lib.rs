//! git-annex clusters: many repositories served as one.
//!
//! - [`Cluster`]: a cluster as a [`Repository`](annex_protocol::Repository)
//!   made of node repositories: an upload goes to every node that wants
//!   the key, streamed to all of them at once ([`fanout`]); a download
//!   comes from the cheapest, least busy node that has the key, and
//!   carries on from another node if that one fails ([`relay`]); a removal
//!   goes to every node.
//! - [`nodes`]: which remotes are a cluster's nodes at a gateway, as
//!   git-annex decides (direct nodes, and the same cluster behind other
//!   gateways).
//! - [`placement`]: which nodes an upload goes to (preferred content,
//!   with content in flight counted).
//! - [`served`]: a gateway's clusters next to its proxied repositories,
//!   for the servers.
//! - [`config`]: a cluster's configuration as git-annex keeps it
//!   (`initcluster`, `updatecluster`, `extendcluster`).
#![warn(missing_docs)]

pub mod config;
pub use config::{extend_cluster, init_cluster, update_clusters, ClusterUpdate, ConfigError};

pub mod cluster;
pub mod fanout;
pub mod nodes;
pub mod placement;
pub mod relay;
pub mod served;

pub use cluster::{Cluster, ClusterNode};
pub use nodes::{cluster_nodes, NodeSpec};
pub use placement::Placement;
pub use served::{open_cluster, ClusterRepositories};
