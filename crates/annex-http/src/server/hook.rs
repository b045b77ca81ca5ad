//! Authorization by an external command, for a forge not written in Rust:
//! [`CommandAuthorizer`] runs the operator's command for each (user,
//! repository, action) not decided recently, and allows the request when
//! it exits 0.
//!
//! The command gets what it decides on in its environment, never on a
//! command line (nothing a client sends reaches a shell):
//!
//! | variable | value |
//! |---|---|
//! | `ANNEX_HTTP_USER` | the user: from the header named by `user_header` when it is set and present, else from basic authentication; empty when neither names one |
//! | `ANNEX_HTTP_PASSWORD` | the basic-authentication password (set only when the user came from basic authentication) |
//! | `ANNEX_HTTP_REPOSITORY` | the repository's path as the request named it (`owner/repo`), empty when the request named a UUID alone |
//! | `ANNEX_HTTP_UUID` | the UUID the request is for (the repository, or a repository it proxies) |
//! | `ANNEX_HTTP_ACTION` | `read`, `store`, `remove` or `lock` |
//!
//! Exit 0 allows. Any other exit refuses: 401 (asking for credentials)
//! when no user was named, 403 otherwise. A command that cannot be run,
//! is killed by a signal, or runs past the timeout refuses with 403 and a
//! warning in the log; such failures are not remembered.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderName;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::auth::{parse_basic, ActionClass, Decision};
use super::service::{Access, AuthorizeAsync};

/// How long a decision is remembered unless told otherwise.
pub const DEFAULT_CACHE_TIME: Duration = Duration::from_secs(10);
/// How long the command may run unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many commands run at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The most decisions remembered: past it, expired ones are forgotten,
/// then all of them.
const MAX_CACHED: usize = 10_000;

/// Runs an operator's command to decide each request (see the module).
pub struct CommandAuthorizer {
    command: String,
    user_header: Option<HeaderName>,
    cache_time: Duration,
    timeout: Duration,
    running: Arc<Semaphore>,
    cache: Mutex<HashMap<CacheKey, (Decision, Instant)>>,
}

/// What a decision is remembered for: the user (with a digest of the
/// password, so that a wrong one is not let in by a right one's answer),
/// the repository and the action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    user: Option<String>,
    password: Option<[u8; 32]>,
    repository: String,
    uuid: String,
    action: ActionClass,
}

/// The header `name` as a [`CommandAuthorizer`]'s user header.
pub fn header_name(name: &str) -> Result<HeaderName, http::header::InvalidHeaderName> {
    HeaderName::from_bytes(name.as_bytes())
}

/// The words for actions given to the command.
pub fn action_word(action: ActionClass) -> &'static str {
    match action {
        ActionClass::Read => "read",
        ActionClass::Write => "store",
        ActionClass::Remove => "remove",
        ActionClass::Lock => "lock",
    }
}

impl CommandAuthorizer {
    /// Runs `command` with `sh -c`, at most [`DEFAULT_CONCURRENCY`] at
    /// once, each for at most [`DEFAULT_TIMEOUT`], remembering decisions
    /// for [`DEFAULT_CACHE_TIME`]. The user comes from `user_header` (set
    /// by a reverse proxy, which must then remove it from what clients
    /// send) when given and present, else from basic authentication.
    pub fn new(command: impl Into<String>, user_header: Option<HeaderName>) -> CommandAuthorizer {
        CommandAuthorizer {
            command: command.into(),
            user_header,
            cache_time: DEFAULT_CACHE_TIME,
            timeout: DEFAULT_TIMEOUT,
            running: Arc::new(Semaphore::new(DEFAULT_CONCURRENCY)),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers decisions for `time` (zero: asks the command every time).
    pub fn cache_time(mut self, time: Duration) -> CommandAuthorizer {
        self.cache_time = time;
        self
    }

    /// Kills the command, refusing, once it has run for `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> CommandAuthorizer {
        self.timeout = timeout;
        self
    }

    /// Runs at most `n` commands at once; more requests wait.
    pub fn concurrency(mut self, n: usize) -> CommandAuthorizer {
        self.running = Arc::new(Semaphore::new(n.max(1)));
        self
    }

    /// Who the request says it is: the user, and the password when it
    /// came from basic authentication.
    fn who(&self, request: &http::request::Parts) -> (Option<String>, Option<String>) {
        if let Some(h) = &self.user_header {
            if let Some(user) = request.headers.get(h).and_then(|v| v.to_str().ok()) {
                if !user.is_empty() {
                    return (Some(user.to_owned()), None);
                }
            }
        }
        match request
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| parse_basic(v.as_bytes()))
        {
            Some((user, password)) => (Some(user), Some(password)),
            None => (None, None),
        }
    }

    fn cached(&self, key: &CacheKey) -> Option<Decision> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.cache_time)
            .map(|(d, _)| *d)
    }

    fn remember(&self, key: CacheKey, decision: Decision) {
        if self.cache_time.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            let time = self.cache_time;
            cache.retain(|_, (_, at)| at.elapsed() < time);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, (decision, Instant::now()));
    }

    async fn decide(&self, access: &Access<'_>) -> Decision {
        let (user, password) = self.who(access.request);
        let key = CacheKey {
            user: user.clone(),
            password: password
                .as_ref()
                .map(|p| Sha256::digest(p.as_bytes()).into()),
            repository: access.path.unwrap_or("").to_owned(),
            uuid: access.repository.to_string(),
            action: access.action,
        };
        if let Some(d) = self.cached(&key) {
            return d;
        }
        let Ok(_permit) = self.running.clone().acquire_owned().await else {
            return Decision::Forbidden;
        };
        // Another request may have asked meanwhile.
        if let Some(d) = self.cached(&key) {
            return d;
        }
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .env("ANNEX_HTTP_USER", user.as_deref().unwrap_or(""))
            .env("ANNEX_HTTP_REPOSITORY", &key.repository)
            .env("ANNEX_HTTP_UUID", &key.uuid)
            .env("ANNEX_HTTP_ACTION", action_word(access.action))
            .env_remove("ANNEX_HTTP_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        if let Some(p) = &password {
            command.env("ANNEX_HTTP_PASSWORD", p);
        }
        let what = || {
            format!(
                "user {:?}, repository {:?}, uuid {}, action {}",
                user.as_deref().unwrap_or(""),
                key.repository,
                key.uuid,
                action_word(access.action)
            )
        };
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot run the authorization command: refused ({})", what());
                return Decision::Forbidden;
            }
        };
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the authorization command failed: refused ({})", what());
                return Decision::Forbidden;
            }
            Err(_) => {
                let _ = child.kill().await;
                tracing::warn!(
                    "the authorization command ran past {:?} and was killed: refused ({})",
                    self.timeout,
                    what()
                );
                return Decision::Forbidden;
            }
        };
        let decision = match status.code() {
            Some(0) => Decision::Allowed,
            Some(_) if user.is_none() => Decision::AuthRequired,
            Some(_) => Decision::Forbidden,
            None => {
                tracing::warn!(
                    "the authorization command was killed by a signal: refused ({})",
                    what()
                );
                return Decision::Forbidden;
            }
        };
        tracing::debug!(?decision, "authorization command decided ({})", what());
        self.remember(key, decision);
        decision
    }
}

impl AuthorizeAsync for CommandAuthorizer {
    fn authorize<'a>(
        &'a self,
        access: &'a Access<'a>,
    ) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(self.decide(access))
    }
}
