//! Who may do what: git-annex's p2phttp access rules, HTTP basic
//! authentication against credentials from the environment
//! (`GIT_ANNEX_P2PHTTP_PASSWORD_user`, `GIT_ANNEX_P2PHTTP_PERMISSIONS_user`)
//! or a users file of password hashes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use annex_protocol::ServerMode;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use thiserror::Error;

/// What a request does, as git-annex classes it for access control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Users-file passwords already verified (hashes are slow to check).
    verified: Mutex<HashMap<(String, String), ServerMode>>,
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

    fn authenticated(&self, secure: bool, user: &str, password: &str) -> Option<ServerMode> {
        if self.auth_env_http || (secure && self.auth_env) {
            if let Some((p, mode)) = self.env_users.get(user) {
                if constant_time_eq(p.as_bytes(), password.as_bytes()) {
                    return Some(*mode);
                }
            }
        }
        if secure || self.users_http {
            let (hash, mode) = self.file_users.get(user)?;
            let cache_key = (user.to_owned(), password.to_owned());
            if let Some(m) = self.verified.lock().ok()?.get(&cache_key) {
                return Some(*m);
            }
            let parsed = PasswordHash::new(hash).ok()?;
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .ok()?;
            let mut cache = self.verified.lock().ok()?;
            if cache.len() >= VERIFIED_CACHE {
                cache.clear();
            }
            cache.insert(cache_key, *mode);
            return Some(*mode);
        }
        None
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
    /// already read from the header by [`parse_basic`].
    pub fn decide_credentials(
        &self,
        credentials: Option<(&str, &str)>,
        secure: bool,
        class: ActionClass,
    ) -> Decision {
        let mode = match credentials {
            None => self.unauthenticated(secure),
            Some((user, password)) => match self.authenticated(secure, user, password) {
                Some(mode) => Mode::Serve {
                    mode,
                    unauth_locking: false,
                    can_authenticate: false,
                },
                // As git-annex: credentials that do not authenticate get
                // what unauthenticated users get, and no second challenge
                // where that is something.
                None => match self.unauthenticated(secure) {
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
}
