//! Who may do what: git-annex's p2phttp access rules, HTTP basic
//! authentication against credentials from the environment
//! (`GIT_ANNEX_P2PHTTP_PASSWORD_user`, `GIT_ANNEX_P2PHTTP_PERMISSIONS_user`)
//! or a users file of password hashes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use annex_protocol::ServerMode;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::Semaphore;

/// What a request does, as git-annex classes it for access control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionClass {
    /// get, checkpresent, gettimestamp.
    Read,
    /// put, putoffset.
    Write,
    /// remove, remove-before.
    Remove,
    /// lockcontent, keeplocked.
    Lock,
}

/// The answer to "may this request go on".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Allowed,
    /// 401 with a basic-auth challenge: credentials would help.
    AuthRequired,
    /// 403: not allowed, and credentials would not change that.
    Forbidden,
}

/// What unauthenticated requests may do, and which credentials are
/// accepted where.
#[derive(Debug, Default)]
pub struct AccessPolicy {
    /// `--wideopen`: full access without authentication.
    pub wide_open: bool,
    /// `--unauth-appendonly`.
    pub unauth_append_only: bool,
    /// `--unauth-readonly`.
    pub unauth_read_only: bool,
    /// `--unauth-nolocking`: unauthenticated users may not lock content.
    pub unauth_no_locking: bool,
    /// `--authenv`: environment credentials, over https.
    pub auth_env: bool,
    /// `--authenv-http`: environment credentials, over http too.
    pub auth_env_http: bool,
    /// `--users-http`: users-file credentials over http too (they are
    /// always accepted over https).
    pub users_http: bool,
    /// Credentials from the environment.
    pub env_users: HashMap<String, (String, ServerMode)>,
    /// Credentials from a users file.
    pub file_users: HashMap<String, (String, ServerMode)>,
    /// Users-file passwords already checked (hashes are slow to check).
    verified: Verified,
}

/// The outcomes of users-file password checks, remembered by a salted
/// hash of the user and password (never the password itself), and the
/// bound on checks running at once.
#[derive(Debug)]
struct Verified {
    /// Random for each process, so the remembered hashes say nothing
    /// outside it.
    salt: [u8; 32],
    /// Whether each (user, password) checked was accepted, and as what.
    outcomes: Mutex<HashMap<[u8; 32], Option<ServerMode>>>,
    /// Argon2 checks running at once on blocking threads.
    checks: Arc<Semaphore>,
}

impl Default for Verified {
    fn default() -> Verified {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Verified {
            salt: rand::random(),
            outcomes: Mutex::new(HashMap::new()),
            checks: Arc::new(Semaphore::new(cpus)),
        }
    }
}

impl Verified {
    fn key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn get(&self, key: &[u8; 32]) -> Option<Option<ServerMode>> {
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    fn remember(&self, key: [u8; 32], outcome: Option<ServerMode>) {
        let mut cache = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(key, outcome);
    }
}

/// Whether `password` is the one `hash` (a PHC string) was made from.
/// Slow by design: tens of milliseconds of CPU.
fn argon2_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// What the credentials of a request are, before any slow check.
enum Credentials<'a> {
    /// Accepted, with this mode.
    Accepted(ServerMode),
    /// Not accepted.
    Refused,
    /// A users-file password, to check against its hash.
    Check {
        hash: &'a str,
        mode: ServerMode,
        key: [u8; 32],
    },
}

/// The mode a request runs in, as git-annex's `ServerMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve {
        mode: ServerMode,
        unauth_locking: bool,
        can_authenticate: bool,
    },
    CannotServe,
}

/// The most users-file passwords remembered as verified.
const VERIFIED_CACHE: usize = 1024;

impl AccessPolicy {
    /// Whether requests can be authenticated over this transport at all.
    fn can_authenticate(&self, secure: bool) -> bool {
        self.auth_env_http
            || (secure && self.auth_env)
            || (!self.file_users.is_empty() && (secure || self.users_http))
    }

    fn unauthenticated(&self, secure: bool) -> Mode {
        let unauth_locking = !self.unauth_no_locking;
        let can_authenticate = self.can_authenticate(secure);
        if self.wide_open {
            Mode::Serve {
                mode: ServerMode::ReadWrite,
                unauth_locking,
                can_authenticate: false,
            }
        } else if self.unauth_append_only {
            Mode::Serve {
                mode: ServerMode::AppendOnly,
                unauth_locking,
                can_authenticate,
            }
        } else if self.unauth_read_only {
            Mode::Serve {
                mode: ServerMode::ReadOnly,
                unauth_locking,
                can_authenticate,
            }
        } else {
            Mode::CannotServe
        }
    }

    /// The credentials as far as they can be judged without an Argon2
    /// check: environment credentials, and users-file passwords already
    /// checked.
    fn credentials(&self, secure: bool, user: &str, password: &str) -> Credentials<'_> {
        if self.auth_env_http || (secure && self.auth_env) {
            if let Some((p, mode)) = self.env_users.get(user) {
                if constant_time_eq(p.as_bytes(), password.as_bytes()) {
                    return Credentials::Accepted(*mode);
                }
            }
        }
        if !(secure || self.users_http) {
            return Credentials::Refused;
        }
        let Some((hash, mode)) = self.file_users.get(user) else {
            return Credentials::Refused;
        };
        let key = self.verified.key(user, password);
        match self.verified.get(&key) {
            Some(Some(mode)) => Credentials::Accepted(mode),
            Some(None) => Credentials::Refused,
            None => Credentials::Check {
                hash,
                mode: *mode,
                key,
            },
        }
    }

    /// The mode the credentials give, checking a users-file password on
    /// this thread (blocking).
    fn authenticated(&self, secure: bool, user: &str, password: &str) -> Option<ServerMode> {
        match self.credentials(secure, user, password) {
            Credentials::Accepted(mode) => Some(mode),
            Credentials::Refused => None,
            Credentials::Check { hash, mode, key } => {
                let outcome = argon2_matches(hash, password).then_some(mode);
                self.verified.remember(key, outcome);
                outcome
            }
        }
    }

    /// The mode the credentials give, checking a users-file password on a
    /// blocking thread, with at most one check per CPU at once.
    async fn authenticated_async(
        &self,
        secure: bool,
        user: &str,
        password: &str,
    ) -> Option<ServerMode> {
        match self.credentials(secure, user, password) {
            Credentials::Accepted(mode) => Some(mode),
            Credentials::Refused => None,
            Credentials::Check { hash, mode, key } => {
                let permit = self.verified.checks.clone().acquire_owned().await.ok()?;
                // Checked meanwhile by a request that held a permit first.
                if let Some(outcome) = self.verified.get(&key) {
                    return outcome;
                }
                let (hash, password) = (hash.to_owned(), password.to_owned());
                let matches = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    argon2_matches(&hash, &password)
                })
                .await
                .unwrap_or(false);
                let outcome = matches.then_some(mode);
                self.verified.remember(key, outcome);
                outcome
            }
        }
    }

    /// Decides a request: `authorization` is the Authorization header, if
    /// any (one that is not basic authentication counts as none); `secure`
    /// whether it came over https.
    pub fn decide(
        &self,
        authorization: Option<&[u8]>,
        secure: bool,
        class: ActionClass,
    ) -> Decision {
        let credentials = authorization.and_then(parse_basic);
        let credentials = credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()));
        self.decide_credentials(credentials, secure, class)
    }

    /// [`decide`](AccessPolicy::decide), given the user and password
    /// already read from the header by [`parse_basic`]. A users-file
    /// password is checked on this thread, which takes tens of
    /// milliseconds: on an async runtime, use
    /// [`decide_credentials_async`](AccessPolicy::decide_credentials_async).
    pub fn decide_credentials(
        &self,
        credentials: Option<(&str, &str)>,
        secure: bool,
        class: ActionClass,
    ) -> Decision {
        let authenticated =
            credentials.map(|(user, password)| self.authenticated(secure, user, password));
        self.decision(authenticated, secure, class)
    }

    /// [`decide_credentials`](AccessPolicy::decide_credentials), checking a
    /// users-file password on a blocking thread (at most one check per
    /// CPU at once; a password checked before is not checked again).
    pub async fn decide_credentials_async(
        &self,
        credentials: Option<(&str, &str)>,
        secure: bool,
        class: ActionClass,
    ) -> Decision {
        let authenticated = match credentials {
            None => None,
            Some((user, password)) => Some(self.authenticated_async(secure, user, password).await),
        };
        self.decision(authenticated, secure, class)
    }

    /// The decision, given what credentials the request had: none, or
    /// ones giving this mode (`None`: not accepted).
    fn decision(
        &self,
        authenticated: Option<Option<ServerMode>>,
        secure: bool,
        class: ActionClass,
    ) -> Decision {
        let mode = match authenticated {
            None => self.unauthenticated(secure),
            Some(Some(mode)) => Mode::Serve {
                mode,
                unauth_locking: false,
                can_authenticate: false,
            },
            // As git-annex: credentials that do not authenticate get
            // what unauthenticated users get, and no second challenge
            // where that is something.
            Some(None) => match self.unauthenticated(secure) {
                Mode::Serve {
                    mode,
                    unauth_locking,
                    ..
                } => Mode::Serve {
                    mode,
                    unauth_locking,
                    can_authenticate: false,
                },
                Mode::CannotServe => Mode::CannotServe,
            },
        };
        match mode {
            Mode::CannotServe => Decision::AuthRequired,
            Mode::Serve {
                mode,
                unauth_locking,
                can_authenticate,
            } => {
                let refuse = if can_authenticate {
                    Decision::AuthRequired
                } else {
                    Decision::Forbidden
                };
                match (mode, class) {
                    (ServerMode::ReadWrite, _) => Decision::Allowed,
                    (_, ActionClass::Lock) if unauth_locking => Decision::Allowed,
                    (ServerMode::AppendOnly, ActionClass::Remove) => refuse,
                    (ServerMode::AppendOnly, _) => Decision::Allowed,
                    (ServerMode::ReadOnly, ActionClass::Read) => Decision::Allowed,
                    (ServerMode::ReadOnly, _) => refuse,
                }
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a `Basic` Authorization header into user and password; None when
/// it is not valid basic authentication.
pub fn parse_basic(header: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = text.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    if decoded.is_empty() {
        return None;
    }
    // As git-annex reads it: without a colon, all of it is the user name
    // and the password is empty. Bytes that are not UTF-8 can match no
    // user, and are kept only to be refused.
    let decoded = String::from_utf8_lossy(&decoded);
    let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    Some((user.to_owned(), password.to_owned()))
}

/// A permission as written in the environment or a users file.
pub fn parse_permission(text: &str) -> Option<ServerMode> {
    match text {
        "readwrite" => Some(ServerMode::ReadWrite),
        "appendonly" => Some(ServerMode::AppendOnly),
        "readonly" => Some(ServerMode::ReadOnly),
        _ => None,
    }
}

/// The credentials git-annex's p2phttp reads from the environment:
/// `GIT_ANNEX_P2PHTTP_PASSWORD_user=password`, with the permission from
/// `GIT_ANNEX_P2PHTTP_PERMISSIONS_user` (`readonly` or `appendonly`;
/// anything else, or nothing, is read-write).
pub fn env_users(
    vars: impl IntoIterator<Item = (String, String)>,
) -> HashMap<String, (String, ServerMode)> {
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    let perms: HashMap<&str, ServerMode> = vars
        .iter()
        .filter_map(|(k, v)| {
            let user = k.strip_prefix("GIT_ANNEX_P2PHTTP_PERMISSIONS_")?;
            let mode = match v.as_str() {
                "readonly" => ServerMode::ReadOnly,
                "appendonly" => ServerMode::AppendOnly,
                _ => return None,
            };
            Some((user, mode))
        })
        .collect();
    vars.iter()
        .filter_map(|(k, v)| {
            let user = k.strip_prefix("GIT_ANNEX_P2PHTTP_PASSWORD_")?;
            let mode = perms.get(user).copied().unwrap_or(ServerMode::ReadWrite);
            Some((user.to_owned(), (v.clone(), mode)))
        })
        .collect()
}

/// A users file that cannot be used.
#[derive(Debug, Error)]
pub enum UsersFileError {
    /// The file cannot be read.
    #[error("cannot read users file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `user:hash:permission`.
    #[error("{path}:{line}: expected USER:PASSWORD-HASH:PERMISSION (permission readwrite, appendonly or readonly; hash from `annex p2phttp --hash-password`)")]
    Line {
        /// The file.
        path: String,
        /// The line number, from 1.
        line: usize,
    },
}

/// Reads a users file: one `user:hash:permission` line per user, where
/// the hash is an Argon2 PHC string and the permission `readwrite`,
/// `appendonly` or `readonly`. Blank lines and lines starting with `#`
/// are ignored.
pub fn read_users_file(
    path: &Path,
) -> Result<HashMap<String, (String, ServerMode)>, UsersFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| UsersFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || UsersFileError::Line {
            path: path.display().to_string(),
            line: i + 1,
        };
        let (user, rest) = line.split_once(':').ok_or_else(bad)?;
        let (hash, perm) = rest.rsplit_once(':').ok_or_else(bad)?;
        let mode = parse_permission(perm).ok_or_else(bad)?;
        PasswordHash::new(hash).map_err(|_| bad())?;
        if user.is_empty() {
            return Err(bad());
        }
        users.insert(user.to_owned(), (hash.to_owned(), mode));
    }
    Ok(users)
}

/// Hashes a password for a users file (Argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))).into_bytes()
    }

    #[test]
    fn unauthenticated_modes() {
        let p = AccessPolicy::default();
        assert_eq!(
            p.decide(None, false, ActionClass::Read),
            Decision::AuthRequired
        );
        let p = AccessPolicy {
            wide_open: true,
            ..Default::default()
        };
        assert_eq!(
            p.decide(None, false, ActionClass::Remove),
            Decision::Allowed
        );
        let p = AccessPolicy {
            unauth_read_only: true,
            ..Default::default()
        };
        assert_eq!(p.decide(None, false, ActionClass::Read), Decision::Allowed);
        assert_eq!(p.decide(None, false, ActionClass::Lock), Decision::Allowed);
        assert_eq!(
            p.decide(None, false, ActionClass::Write),
            Decision::Forbidden
        );
        let p = AccessPolicy {
            unauth_append_only: true,
            unauth_no_locking: true,
            ..Default::default()
        };
        assert_eq!(p.decide(None, false, ActionClass::Write), Decision::Allowed);
        assert_eq!(
            p.decide(None, false, ActionClass::Remove),
            Decision::Forbidden
        );
    }

    #[test]
    fn environment_credentials() {
        let users = env_users([
            (
                "GIT_ANNEX_P2PHTTP_PASSWORD_alice".to_string(),
                "pw".to_string(),
            ),
            (
                "GIT_ANNEX_P2PHTTP_PASSWORD_bob".to_string(),
                "pw2".to_string(),
            ),
            (
                "GIT_ANNEX_P2PHTTP_PERMISSIONS_bob".to_string(),
                "readonly".to_string(),
            ),
        ]);
        let p = AccessPolicy {
            auth_env_http: true,
            unauth_read_only: true,
            env_users: users,
            ..Default::default()
        };
        let alice = basic("alice", "pw");
        let bob = basic("bob", "pw2");
        let wrong = basic("alice", "nope");
        assert_eq!(
            p.decide(Some(&alice), false, ActionClass::Remove),
            Decision::Allowed
        );
        assert_eq!(
            p.decide(Some(&bob), false, ActionClass::Write),
            Decision::Forbidden
        );
        assert_eq!(
            p.decide(Some(&wrong), false, ActionClass::Write),
            Decision::Forbidden
        );
        assert_eq!(
            p.decide(None, false, ActionClass::Write),
            Decision::AuthRequired
        );
        assert_eq!(p.decide(None, false, ActionClass::Read), Decision::Allowed);
        // --authenv alone does not accept credentials over http.
        let p = AccessPolicy {
            auth_env: true,
            env_users: env_users([("GIT_ANNEX_P2PHTTP_PASSWORD_a".into(), "b".into())]),
            ..Default::default()
        };
        assert_eq!(
            p.decide(Some(&basic("a", "b")), false, ActionClass::Read),
            Decision::AuthRequired
        );
        assert_eq!(
            p.decide(Some(&basic("a", "b")), true, ActionClass::Read),
            Decision::Allowed
        );
    }

    #[test]
    fn users_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let hash = hash_password("secret").unwrap();
        std::fs::write(&path, format!("# users\ncarol:{hash}:appendonly\n\n")).unwrap();
        let users = read_users_file(&path).unwrap();
        let p = AccessPolicy {
            file_users: users,
            users_http: true,
            ..Default::default()
        };
        let carol = basic("carol", "secret");
        assert_eq!(
            p.decide(Some(&carol), false, ActionClass::Write),
            Decision::Allowed
        );
        assert_eq!(
            p.decide(Some(&carol), false, ActionClass::Write),
            Decision::Allowed
        );
        assert_eq!(
            p.decide(Some(&carol), false, ActionClass::Remove),
            Decision::Forbidden
        );
        assert_eq!(
            p.decide(Some(&basic("carol", "x")), false, ActionClass::Read),
            Decision::AuthRequired
        );
        assert_eq!(
            p.decide(None, false, ActionClass::Read),
            Decision::AuthRequired
        );
        std::fs::write(&path, "carol:nohash:readwrite\n").unwrap();
        assert!(read_users_file(&path).is_err());
    }

    fn carol(password: &str) -> AccessPolicy {
        let users = [(
            "carol".to_owned(),
            (hash_password(password).unwrap(), ServerMode::ReadWrite),
        )]
        .into_iter()
        .collect();
        AccessPolicy {
            file_users: users,
            users_http: true,
            ..Default::default()
        }
    }

    #[test]
    fn passwords_checked_are_remembered_by_hash_only() {
        let p = carol("correct horse");
        let right = basic("carol", "correct horse");
        let wrong = basic("carol", "battery staple");
        for _ in 0..2 {
            assert_eq!(
                p.decide(Some(&right), false, ActionClass::Write),
                Decision::Allowed
            );
            assert_eq!(
                p.decide(Some(&wrong), false, ActionClass::Write),
                Decision::AuthRequired
            );
        }
        let remembered = format!("{:?}", p.verified);
        assert!(!remembered.contains("correct horse"), "{remembered}");
        assert!(!remembered.contains("battery staple"), "{remembered}");
        assert_eq!(p.verified.outcomes.lock().unwrap().len(), 2);
    }

    #[test]
    fn async_checks_leave_the_async_thread_free() {
        let p = carol("pw");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let other_ran = std::sync::atomic::AtomicBool::new(false);
        let ran_during_check = rt.block_on(async {
            // Polled first: a check made on this (only) thread would
            // finish before the other future ever ran.
            let check = async {
                let d = p
                    .decide_credentials_async(Some(("carol", "pw")), false, ActionClass::Read)
                    .await;
                assert_eq!(d, Decision::Allowed);
                other_ran.load(std::sync::atomic::Ordering::SeqCst)
            };
            let other = async {
                other_ran.store(true, std::sync::atomic::Ordering::SeqCst);
            };
            tokio::join!(check, other).0
        });
        assert!(ran_during_check);
        // Remembered: the second answer needs no check.
        let again = rt.block_on(p.decide_credentials_async(
            Some(("carol", "pw")),
            false,
            ActionClass::Read,
        ));
        assert_eq!(again, Decision::Allowed);
    }
}
