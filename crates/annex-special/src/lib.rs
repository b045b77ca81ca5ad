//! git-annex special remotes as repositories.
#![warn(missing_docs)]

pub mod directory;

pub use directory::DirectoryRemote;
