//! git-annex's vocabulary, shared by every annex crate: keys, repository
//! UUIDs, the hash directories of object files and sizes, parsed and
//! formatted as git-annex 10.20250416 does. Pure: no async runtime, no I/O.
//!
//! ```
//! use annex_types::{Key, Uuid};
//!
//! let key = Key::parse("SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt")?;
//! assert_eq!(key.size(), Some(6));
//! // As `git annex examinekey --format '${hashdirlower}'` gives it.
//! assert_eq!(key.hash_dir_lower(), "d91/b11/");
//! let here = Uuid::parse("5b7d8c3e-0f55-4f3a-9e3b-6b2d1c0a9f00")?;
//! assert!(!here.is_cluster());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `annex-protocol` re-exports these at the same paths
//! (`annex_protocol::Key`, `annex_protocol::key::...`).

#![warn(missing_docs)]

pub mod hashdirs;
pub mod haskell;
pub mod key;
pub mod size;
pub mod uuid;

pub use hashdirs::HashDirs;
pub use key::{Key, KeyError, KeyVariety};
pub use uuid::{Uuid, UuidError};
