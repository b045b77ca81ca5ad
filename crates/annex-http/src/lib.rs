//! The git-annex P2P protocol over HTTP (p2phttp), server and client.
//!
//! ```
//! use std::sync::Arc;
//! use annex_http::server::{ActionClass, Decision, P2pHttp, SingleRepository};
//! use annex_protocol::{MemoryRepository, Uuid};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The p2phttp API as a tower Service, reading allowed to anyone: mount
//! // it with axum::Router::new().nest_service("/git-annex", service).
//! let uuid = Uuid::new_v4();
//! let repo = Arc::new(MemoryRepository::new(uuid.clone()));
//! let service = P2pHttp::with_authorizer(
//!     Arc::new(SingleRepository::new(repo)),
//!     |access: &annex_http::server::Access<'_>| match access.action {
//!         ActionClass::Read => Decision::Allowed,
//!         _ => Decision::AuthRequired,
//!     },
//! );
//! let request = http::Request::post(format!(
//!     "/git-annex/{uuid}/v4/checkpresent?key=SHA1-s0--da39a3ee5e6b4b0d3255bfef95601890afd80709&clientuuid={}",
//!     Uuid::new_v4()
//! ))
//! .body(http_body_util::Empty::<bytes::Bytes>::new())
//! .unwrap();
//! let response = service.call(request).await;
//! assert_eq!(response.status(), 200);
//! # }
//! ```
//!
//! - [`wire`]: what both sides share: API versions, request paths,
//!   parameters, the `[base64url]` wrapping of values and the JSON answers.
//! - [`server`]: serving any [`Repository`](annex_protocol::Repository).
//! - [`client`]: a [`Repository`](annex_protocol::Repository) reached over
//!   HTTP.

#![warn(missing_docs)]

pub mod client;
pub mod server;
pub mod wire;
