//! The git-annex branch: its logs, read and written as git-annex 10 does.
//!
//! - [`clock`]: the timestamps on log lines.
//! - [`logs`]: every log on the branch as pure parse and serialise
//!   functions, with git-annex's rules for which line wins.
#![warn(missing_docs)]

pub mod clock;
pub mod logs;

pub use clock::VectorClock;
