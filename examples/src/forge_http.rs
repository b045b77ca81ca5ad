//! A forge's HTTP application serving git-annex repositories.
//!
//! The forge has its own routes (`/`, `/api/health`, `/metrics`: its own
//! metrics beside the gateway's) and its own users.
//! Its authentication runs as a middleware on every request: valid basic
//! credentials leave a [`ForgeUser`] in the request's extensions, wrong
//! ones are refused. The p2phttp service ([`P2pHttp`]) is mounted at
//! `/git-annex` over every git-annex repository below a directory, and
//! asks the forge about each request through its
//! [`Authorize`](annex_http::server::Authorize) hook:
//! anyone may read, signed-in users may also store, lock and remove.
//!
//! A git-annex client uses it with `git config remote.NAME.annexUrl
//! annex+http://HOST:PORT/git-annex/` and its credentials in a git
//! credential helper.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use annex_http::server::{
    Access, ActionClass, Decision, DirectoryRepositories, P2pHttp, Repositories,
};
use annex_metrics::prometheus_client::encoding::text::encode;
use annex_metrics::prometheus_client::metrics::counter::Counter;
use annex_metrics::prometheus_client::registry::Registry;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;

/// The forge's users: name and password.
#[derive(Debug, Clone, Default)]
pub struct Users(Arc<HashMap<String, String>>);

impl Users {
    /// Users from `name:password` pairs separated by commas.
    pub fn parse(text: &str) -> Users {
        Users(Arc::new(
            text.split(',')
                .filter_map(|pair| pair.split_once(':'))
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .collect(),
        ))
    }

    fn check(&self, user: &str, password: &str) -> bool {
        self.0.get(user).is_some_and(|p| p == password)
    }
}

/// Who made a request, as the forge's authentication found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeUser(pub String);

/// The forge's authentication: basic credentials of a forge user.
async fn authenticate(State(users): State<Users>, mut req: Request, next: Next) -> Response {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let user = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|text| {
                let (user, password) = text.split_once(':')?;
                users.check(user, password).then(|| user.to_owned())
            });
        match user {
            Some(user) => {
                req.extensions_mut().insert(ForgeUser(user));
            }
            None => {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"forge\"")],
                    "wrong user or password\n",
                )
                    .into_response()
            }
        }
    }
    next.run(req).await
}

/// The forge's rule for git-annex requests: reading is public, anything
/// else needs a signed-in user.
fn authorize(access: &Access<'_>) -> Decision {
    let signed_in = access.request.extensions.get::<ForgeUser>().is_some();
    match access.action {
        ActionClass::Read => Decision::Allowed,
        _ if signed_in => Decision::Allowed,
        _ => Decision::AuthRequired,
    }
}

/// The forge's metrics registry: its own counter, and the git-annex
/// service's families (requests, transfers, locks) registered beside it.
fn metrics_registry() -> (Arc<Registry>, Counter) {
    let mut registry = Registry::default();
    let pages = Counter::default();
    registry.register("forge_pages", "Pages the forge served", pages.clone());
    annex_metrics::global().register(&mut registry);
    (Arc::new(registry), pages)
}

/// `/metrics`: the forge's registry in the OpenMetrics text format.
async fn metrics(State(registry): State<Arc<Registry>>) -> Response {
    annex_metrics::global().refresh();
    let mut text = String::new();
    if encode(&mut text, &registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The forge's application: its own routes, and the git-annex
/// repositories below `repositories` at `/git-annex/`.
pub fn router(repositories: &Path, users: Users) -> Router {
    let repos: Arc<dyn Repositories> =
        Arc::new(DirectoryRepositories::new(vec![repositories.to_owned()]));
    let annex = P2pHttp::with_authorizer(repos, authorize);
    let (registry, pages) = metrics_registry();
    Router::new()
        .route(
            "/",
            get(move || async move {
                pages.inc();
                "a forge\n"
            }),
        )
        .route("/metrics", get(metrics).with_state(registry))
        .route("/api/health", get(|| async { "ok\n" }))
        .nest_service("/git-annex", annex)
        .layer(middleware::from_fn_with_state(users, authenticate))
}
