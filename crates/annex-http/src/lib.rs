//! The git-annex P2P protocol over HTTP (p2phttp), server and client.
//!
//! Not implemented yet: this crate is empty.
