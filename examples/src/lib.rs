//! Programs that embed the annex crates, as a forge would.
//!
//! - [`forge_http`]: an axum application that serves the git-annex
//!   repositories of a directory at `/git-annex/`, beside its own routes,
//!   with its own authentication deciding who may write (binary
//!   `forge_http`).
//! - [`forge_ssh`]: the command a forge's ssh server runs for a session,
//!   answering git-annex's `git-annex-shell` requests for the repository
//!   the forge chose (binary `forge_ssh`).
//! - the binary `memory_roundtrip`: a protocol server and client over an
//!   in-process pipe.
//!
//! ```
//! // The forge's router, with p2phttp mounted at /git-annex/.
//! let dir = tempfile::tempdir().unwrap();
//! let users = annex_examples::forge_http::Users::parse("alice:secret");
//! let app: axum::Router = annex_examples::forge_http::router(dir.path(), users);
//! # let _ = app;
//! ```

#![warn(missing_docs)]

pub mod forge_http;
pub mod forge_ssh;
