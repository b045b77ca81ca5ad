//! The git-annex P2P protocol.
//!
//! - [`Key`] and [`Uuid`]: git-annex keys and repository UUIDs, parsed and
//!   formatted exactly as git-annex does.
//! - [`Message`]: every message of protocol versions 0 to 4, with its line
//!   serialisation.
//! - [`codec`]: reading and writing the line serialisation over any async
//!   byte stream, with DATA payloads streamed in constant memory.
//! - [`Repository`]: the one trait for "a repository this program can
//!   reach"; [`serve`] answers a peer by calling it, and [`Client`]
//!   implements it by talking to a peer.

pub mod client;
pub mod codec;
pub mod content;
#[doc(hidden)]
pub mod fuzzing;
mod hashdirs;
pub mod key;
pub mod memory;
pub mod message;
pub mod repository;
pub mod server;
pub mod uuid;

pub use client::{Client, ClientOptions};
pub use codec::FileOutput;
pub use content::{BytesSource, VecSink};
pub use hashdirs::HashDirs;
pub use key::{Key, KeyError, KeyVariety};
pub use memory::MemoryRepository;
pub use message::{AssociatedFile, AuthToken, Message, ParseError, ProtocolVersion, Service};
pub use repository::{
    ByteStream, ChunkReader, ChunkStream, ContentLock, GetOutcome, GetSink, LockGuard, PutData,
    PutOutcome, PutSource, RemoveOutcome, RepoError, Repository, StreamData, Validity,
};
pub use server::{
    serve, serve_split, serve_split_with_output, Authentication, ServeEnd, ServeError, ServerMode,
    ServerOptions,
};
pub use uuid::{Uuid, UuidError};
