//! The git-annex P2P protocol.
//!
//! ```
//! use annex_protocol::{serve, Client, ClientOptions, Key, MemoryRepository, Repository};
//! use annex_protocol::{ServerOptions, Uuid};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = Key::parse("SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt")?;
//! // A repository served over a byte stream, as git-annex-shell p2pstdio
//! // serves one over ssh; the client is a Repository too.
//! let served = MemoryRepository::new(Uuid::new_v4());
//! served.insert(key.clone(), &b"hello\n"[..]);
//! let (ours, theirs) = tokio::io::duplex(64 * 1024);
//! let server = served.clone();
//! tokio::spawn(async move { serve(theirs, &server, &ServerOptions::default()).await });
//! let (r, w) = tokio::io::split(ours);
//! let client = Client::connect(r, w, &ClientOptions::default()).await?;
//! assert_eq!(client.uuid(), served.uuid());
//! assert!(client.check_present(&key).await?);
//! # Ok(())
//! # }
//! ```
//!
//! - [`Key`] and [`Uuid`]: git-annex keys and repository UUIDs, parsed and
//!   formatted exactly as git-annex does (from annex-types, re-exported
//!   here at the same paths).
//! - [`Message`]: every message of protocol versions 0 to 4, with its line
//!   serialisation.
//! - [`codec`]: reading and writing the line serialisation over any async
//!   byte stream, with DATA payloads streamed in constant memory.
//! - [`Repository`]: the one trait for "a repository this program can
//!   reach"; [`serve`] answers a peer by calling it, and [`Client`]
//!   implements it by talking to a peer.
//! - [`Repositories`]: the repositories a server serves, looked up by
//!   UUID.

#![warn(missing_docs)]

pub mod client;
pub mod codec;
pub mod content;
pub mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub use annex_types::hashdirs;
pub use annex_types::key;
pub mod memory;
pub mod message;
pub mod repositories;
pub mod repository;
pub mod server;
pub use annex_types::uuid;

pub use annex_types::{HashDirs, Key, KeyError, KeyVariety};
pub use annex_types::{Uuid, UuidError};
pub use client::{Client, ClientOptions};
pub use codec::FileOutput;
pub use content::{BytesSource, VecSink};
pub use forward::Forward;
pub use memory::MemoryRepository;
pub use message::{AssociatedFile, AuthToken, Message, ParseError, ProtocolVersion, Service};
pub use repositories::{Repositories, SingleRepository};
pub use repository::{
    ByteStream, ChunkReader, ChunkStream, ContentLock, GetOutcome, GetSink, LockGuard, PutData,
    PutOutcome, PutSource, RemoveOutcome, RepoError, Repository, StreamData, Validity,
};
pub use server::{
    serve, serve_split, serve_split_with_output, Authentication, ServeEnd, ServeError, ServerMode,
    ServerOptions,
};
