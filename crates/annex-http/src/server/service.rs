//! The p2phttp API as a [`tower_service::Service`], for mounting in any
//! HTTP server or router (hyper 1, axum, a tower stack).
//!
//! [`P2pHttp`] answers `http::Request`s whose path is git-annex's
//! (`/git-annex/UUID/v4/...`), or that path with `/git-annex` already taken
//! off by a router that mounted it there (axum's `nest_service`). It does
//! not listen or accept connections: [`Server`](super::Server) does that
//! around it. Who may do what is decided for each request by an
//! [`Authorize`]: git-annex's rules ([`AccessPolicy`]), or the embedding
//! application's own.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use annex_protocol::Uuid;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;

use super::auth::{AccessPolicy, ActionClass, Decision};
use super::body::{BoxError, RequestBody, ResponseBody};
use super::handlers;
use super::locks::{self, LockTable};
use super::repos::{Repositories, Rescans};

/// What an [`Authorize`] is asked: may this request do this to this
/// repository?
#[derive(Debug)]
pub struct Access<'a> {
    /// The request's method, URI, headers and extensions (where an
    /// application's own authentication layer leaves who the user is).
    pub request: &'a http::request::Parts,
    /// The repository asked for (it is served).
    pub repository: &'a Uuid,
    /// The path of the repository the request named
    /// (`/PATH/git-annex/UUID/...`), if it named one.
    pub path: Option<&'a str>,
    /// What the request does.
    pub action: ActionClass,
}

/// Decides, for each request, whether it may go on.
///
/// Called after the repository is found and before anything is done to
/// it, on the server's async threads: it must not block. An application
/// whose authentication is itself asynchronous runs it in a layer in
/// front of the service and leaves its answer in the request's extensions
/// for `authorize` to read.
pub trait Authorize: Send + Sync + 'static {
    /// The decision for `access`: [`Decision::AuthRequired`] is answered
    /// 401 with a basic-auth challenge (git-annex's client then asks for
    /// credentials), [`Decision::Forbidden`] 403.
    fn authorize(&self, access: &Access<'_>) -> Decision;
}

impl<F> Authorize for F
where
    F: Fn(&Access<'_>) -> Decision + Send + Sync + 'static,
{
    fn authorize(&self, access: &Access<'_>) -> Decision {
        self(access)
    }
}

/// Decides, for each request, whether it may go on, taking the time it
/// needs (asking another program or a database) without blocking the
/// server's threads. Called where [`Authorize`] would be.
pub trait AuthorizeAsync: Send + Sync + 'static {
    /// The decision for `access`, as [`Authorize::authorize`]'s.
    fn authorize<'a>(
        &'a self,
        access: &'a Access<'a>,
    ) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;
}

/// A request extension saying that the request came over https: the
/// [`AccessPolicy`] accepts some credentials only then (`--authenv`).
/// [`Server`](super::Server) adds it to requests over TLS; an application
/// terminating TLS itself adds it in a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secure;

/// How requests are authorised.
pub(crate) enum Gate {
    /// git-annex's rules; a malformed basic-auth header is refused before
    /// anything else, as git-annex refuses it.
    Policy(AccessPolicy),
    /// The application's.
    Custom(Arc<dyn Authorize>),
    /// The application's, asynchronous.
    Async(Arc<dyn AuthorizeAsync>),
}

/// What every request handler shares.
pub(crate) struct Shared {
    pub(crate) repos: Arc<dyn Repositories>,
    pub(crate) access: Gate,
    pub(crate) locks: Arc<LockTable>,
    /// The looks for repositories made for requests.
    pub(crate) rescans: Rescans,
    /// How long a PUT's body may send nothing before the upload is given
    /// up.
    pub(crate) receive_timeout: Duration,
}

/// git-annex's p2phttp API over any [`Repositories`], as a
/// [`tower_service::Service`] of `http::Request<B>` for any body `B`.
///
/// Cheap to clone: clones share the repositories and the content locks
/// clients hold. Its future is `Send`, never fails (errors are HTTP
/// answers), and its response body streams content in bounded memory.
///
/// ```
/// use std::sync::Arc;
/// use annex_http::server::{AccessPolicy, P2pHttp, SingleRepository};
/// use annex_protocol::{MemoryRepository, Uuid};
///
/// let repo = Arc::new(MemoryRepository::new(Uuid::new_v4()));
/// let mut policy = AccessPolicy::default();
/// policy.unauth_read_only = true;
/// let service = P2pHttp::new(Arc::new(SingleRepository::new(repo)), policy);
/// // Mount it: axum::Router::new().nest_service("/git-annex", service)
/// # let _ = service;
/// ```
#[derive(Clone)]
pub struct P2pHttp {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for P2pHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pHttp")
            .field("uuids", &self.shared.repos.uuids())
            .finish()
    }
}

/// The most content locks a service holds at once unless told otherwise
/// (git-annex's `--lockedfiles` default).
pub const DEFAULT_MAX_LOCKED_FILES: usize = 100;

/// How long a PUT's body may send nothing, unless told otherwise, before
/// the upload is given up and the node session it holds is freed: far
/// longer than any pause of a slow but live client.
pub const DEFAULT_RECEIVE_TIMEOUT: Duration = Duration::from_secs(300);

impl P2pHttp {
    /// Serves `repos` with git-annex's access rules.
    pub fn new(repos: Arc<dyn Repositories>, policy: AccessPolicy) -> P2pHttp {
        P2pHttp::build(repos, Gate::Policy(policy))
    }

    /// Serves `repos`, asking `authorizer` about every request.
    pub fn with_authorizer(repos: Arc<dyn Repositories>, authorizer: impl Authorize) -> P2pHttp {
        P2pHttp::build(repos, Gate::Custom(Arc::new(authorizer)))
    }

    /// Serves `repos`, asking `authorizer` about every request, and
    /// waiting for its answer.
    pub fn with_async_authorizer(
        repos: Arc<dyn Repositories>,
        authorizer: impl AuthorizeAsync,
    ) -> P2pHttp {
        P2pHttp::build(repos, Gate::Async(Arc::new(authorizer)))
    }

    fn build(repos: Arc<dyn Repositories>, access: Gate) -> P2pHttp {
        P2pHttp {
            shared: Arc::new(Shared {
                repos,
                access,
                locks: LockTable::new(DEFAULT_MAX_LOCKED_FILES, locks::LOCK_LIFETIME),
                rescans: Rescans::default(),
                receive_timeout: DEFAULT_RECEIVE_TIMEOUT,
            }),
        }
    }

    /// Holds at most `max` content locks at once (git-annex's
    /// `--lockedfiles`); past that, `lockcontent` answers not locked. Call
    /// it before the service is cloned or used.
    pub fn max_locked_files(self, max: usize) -> P2pHttp {
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => P2pHttp {
                shared: Arc::new(Shared {
                    locks: LockTable::new(max, locks::LOCK_LIFETIME),
                    ..shared
                }),
            },
            Err(shared) => P2pHttp { shared },
        }
    }

    /// Gives up a PUT whose body has sent nothing for `timeout` (default
    /// [`DEFAULT_RECEIVE_TIMEOUT`]), freeing what the upload holds. Call it
    /// before the service is cloned or used.
    pub fn receive_timeout(self, timeout: Duration) -> P2pHttp {
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => P2pHttp {
                shared: Arc::new(Shared {
                    receive_timeout: timeout,
                    ..shared
                }),
            },
            Err(shared) => P2pHttp { shared },
        }
    }

    /// The repositories served.
    pub fn repositories(&self) -> &Arc<dyn Repositories> {
        &self.shared.repos
    }

    /// Answers one request.
    pub async fn call<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let req = req.map(|b| b.map_err(Into::into).boxed_unsync());
        let shared = self.shared.clone();
        super::metered::observe(req, |req| logged(shared, req)).await
    }
}

impl<B> tower_service::Service<Request<B>> for P2pHttp
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(P2pHttp::call(&this, req).await) })
    }
}

/// The `tracing` target of the line logged for each request: off unless
/// asked for (`annex p2phttp --log-requests`, or a filter naming it), so
/// that a busy server spends nothing on it.
pub const REQUEST_LOG_TARGET: &str = "annex_http::request";

async fn logged(shared: Arc<Shared>, req: Request<RequestBody>) -> Response<ResponseBody> {
    if !tracing::enabled!(target: REQUEST_LOG_TARGET, tracing::Level::INFO) {
        return handlers::handle(shared, req).await;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let resp = handlers::handle(shared, req).await;
    let data_length = resp
        .headers()
        .get(crate::wire::DATA_LENGTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    tracing::info!(
        target: REQUEST_LOG_TARGET,
        %method,
        path,
        query,
        status = resp.status().as_u16(),
        data_length,
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}
