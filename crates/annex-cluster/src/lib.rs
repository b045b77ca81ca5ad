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
//!
//! An upload fanned out to three repositories, read once:
//!
//! ```
//! use std::sync::Arc;
//! use annex_cluster::fanout::{put_all, NodeResult};
//! use annex_protocol::content::BytesSource;
//! use annex_protocol::memory::MemoryRepository;
//! use annex_protocol::{AssociatedFile, Key, Repository, Uuid};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let key = Key::parse(&format!("SHA256E-s5--{}", "00".repeat(32))).unwrap();
//! let nodes: Vec<Arc<dyn Repository>> = (0..3)
//!     .map(|_| Arc::new(MemoryRepository::new(Uuid::new_v4())) as Arc<dyn Repository>)
//!     .collect();
//! let mut source = BytesSource::new(&b"hello"[..]);
//! let out = put_all(&nodes, &key, &AssociatedFile::none(), &mut source, None, false)
//!     .await
//!     .unwrap();
//! assert!(out.results.iter().all(|r| matches!(r, NodeResult::Stored(_))));
//! # });
//! ```
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
