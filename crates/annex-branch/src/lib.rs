//! The git-annex branch: its logs, read and written as git-annex 10 does.
//!
//! ```
//! use annex_branch::logs::group;
//!
//! // A log of the branch read and written back byte for byte, as
//! // git-annex writes it.
//! let text = b"5b7d8c3e-0f55-4f3a-9e3b-6b2d1c0a9f00 archive backup timestamp=1700000000s\n";
//! let log = group::parse(text);
//! assert_eq!(group::write(&log), text);
//! ```
//!
//! - [`clock`]: the timestamps on log lines.
//! - [`logs`]: every log on the branch as pure parse and serialise
//!   functions, with git-annex's rules for which line wins.
//! - [`Branch`]: the branch of a repository, read through the journal and
//!   written through it, committed and union-merged with gix.
//! - [`journal`], [`lock`]: git-annex's journal and file locks.
#![warn(missing_docs)]

pub mod branch;
pub mod clock;
mod description;
mod error;
pub mod journal;
pub mod key_metadata;
pub mod locations;
pub mod lock;
pub mod logs;
pub mod merge;
pub mod sizes;

pub use branch::{Branch, MergeReport, BRANCH_REF};
pub use clock::VectorClock;
pub use error::BranchError;
#[doc(hidden)]
pub mod fuzzing;
