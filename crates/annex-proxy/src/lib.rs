//! A git-annex gateway's proxied remotes.
//!
//! - [`remotes`]: the remotes of git config, with the settings a gateway
//!   reads, and where each repository is.
//! - [`gateway`]: proxy.log, `updateproxy`, and which UUIDs a gateway
//!   serves, with git-annex's refusals.
//! - [`node`]: a proxied repository as a `Repository`: in this process
//!   for a repository on this machine, over ssh, or over p2phttp; its
//!   changes recorded in the gateway's branch.
//! - [`directory`]: the directory special remote, re-exported from
//!   annex-special, where special remotes live; a proxied special remote
//!   is opened from the gateway's remote.log with `annex_special::open`.
//! - [`pool`]: nodes for a long-running server (p2phttp), connected on
//!   first use and pooled.
//! - [`ssh`]: the ssh command that runs git-annex-shell on another host,
//!   every argument quoted.
//!
//! The remotes of a gateway's git config, and where each one is:
//!
//! ```
//! use annex_proxy::{GitRemotes, Location};
//!
//! let config = b"remote.n1.url\n/srv/n1\0remote.n1.annex-proxy\ntrue\0";
//! let remotes = GitRemotes::parse_z(config);
//! let n1 = remotes.by_name("n1").unwrap();
//! assert!(n1.proxy);
//! assert_eq!(n1.location(), Location::Local("/srv/n1".into()));
//! ```
#![warn(missing_docs)]

pub use annex_special::directory;
pub mod gateway;
pub mod node;
pub mod pool;
pub mod remotes;
pub mod ssh;

pub use directory::DirectoryRemote;
pub use gateway::{update_proxy, Gateway, Proxied, ProxyChange, ProxyError, ProxyUpdate};
pub use node::{commit_journal, connect, connect_bypassing, Node, Recorded};
pub use pool::{
    ConfigStamp, GatewayRepositories, NodePool, PoolSettings, DEFAULT_LOCK_SESSIONS,
    DEFAULT_SESSION_WAIT,
};
pub use remotes::{GitRemotes, Location, Remote};
