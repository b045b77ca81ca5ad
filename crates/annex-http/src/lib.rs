//! The git-annex P2P protocol over HTTP (p2phttp), server and client.
//!
//! [`wire`] holds what both sides share: API versions, request paths,
//! parameters, the `[base64url]` wrapping of values and the JSON answers.

pub mod wire;
