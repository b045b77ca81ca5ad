//! The git-annex P2P protocol over HTTP (p2phttp), server and client.
//!
//! - [`wire`]: what both sides share: API versions, request paths,
//!   parameters, the `[base64url]` wrapping of values and the JSON answers.
//! - [`server`]: serving any [`Repository`](annex_protocol::Repository).
//! - [`client`]: a [`Repository`](annex_protocol::Repository) reached over
//!   HTTP.

pub mod client;
pub mod server;
pub mod wire;
