//! Errors of this crate.

use std::path::PathBuf;

/// Something went wrong reading or writing the git-annex branch.
#[derive(Debug, thiserror::Error)]
pub enum BranchError {
    /// The path is not a git repository.
    #[error("{}: not a git repository ({message})", path.display())]
    NotARepository {
        /// The path given.
        path: PathBuf,
        /// Why it could not be opened.
        message: String,
    },
    /// The repository has no git-annex branch.
    #[error("{}: no git-annex branch; run `annex init` to make this a git-annex repository", .0.display())]
    NoBranch(PathBuf),
    /// The object store or the refs could not be read or written.
    #[error("git: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A file of the repository could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The branch kept moving while a commit was being made.
    #[error("refs/heads/git-annex kept changing while committing; gave up after {0} tries")]
    Raced(u32),
}

/// Wraps an error of gix.
pub(crate) fn git<E: std::error::Error + Send + Sync + 'static>(e: E) -> BranchError {
    BranchError::Git(Box::new(e))
}
