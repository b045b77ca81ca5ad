//! A git-annex gateway's proxied remotes.
//!
//! - [`remotes`]: the remotes of git config, with the settings a gateway
//!   reads, and where each repository is ([`annex_repo::remotes`],
//!   re-exported here).
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
//! - [`health`]: which nodes answer; down ones are skipped and probed
//!   again with backoff.
//! - [`ssh`]: the ssh command that runs git-annex-shell on another host,
//!   every argument quoted.
//!
//! The remotes of git config and where each one is ([`GitRemotes`],
//! [`Remote`], [`Location`]) live in [`annex_repo::remotes`], which
//! special remotes use too; they are re-exported here at their old paths.
#![warn(missing_docs)]

pub use annex_special::directory;
pub mod gateway;
pub mod health;
pub mod node;
pub mod pool;
pub use annex_repo::remotes;
pub mod ssh;

pub use directory::DirectoryRemote;
pub use gateway::{
    update_proxy, Gateway, Proxied, ProxyChange, ProxyError, ProxyUpdate, Served, HOP_COST,
};
pub use node::{commit_journal, connect, connect_bypassing, Node, Recorded};
pub use pool::{
    ConfigStamp, GatewayRepositories, NodePool, PoolSettings, DEFAULT_LOCK_SESSIONS,
    DEFAULT_SESSION_WAIT,
};
pub use remotes::{GitRemotes, Location, Remote};
