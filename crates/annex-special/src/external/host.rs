//! The using repository's side of the protocol: answers to the requests
//! an external special remote makes while a request of ours is pending,
//! kept where git-annex keeps them.
//!
//! - GETCONFIG and SETCONFIG: the remote's configuration from remote.log,
//!   changed by SETCONFIG for the running process only (git-annex records
//!   such changes only during `initremote`).
//! - GETCREDS and SETCREDS: git-annex's credentials: the environment
//!   (`UUID-SETTINGlogin`, `UUID-SETTINGpassword`), the cache
//!   `.git/annex/creds/UUID-SETTING` (two lines, readable by its owner
//!   only; written unless `annex.cachecreds` is false), then the setting
//!   embedded in the configuration (base64 of the two lines, with
//!   `embedcreds=yes`).
//! - GETUUID, GETGITDIR, GETGITREMOTENAME, DIRHASH, DIRHASH-LOWER.
//! - SETSTATE and GETSTATE: `KEY.log.rmt` on the git-annex branch
//!   (`CLOCK UUID STATE`, one per remote).
//! - SETURLPRESENT, SETURLMISSING, SETURIPRESENT, SETURIMISSING, GETURLS:
//!   the URL log `KEY.log.web` (a URI is logged as `:URI`), and the web's
//!   location (UUID `00000000-0000-0000-0000-000000000001`) for URLs the
//!   web can download.
//! - GETWANTED and SETWANTED: the remote's preferred content expression.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use annex_branch::logs::paths::PREFERRED_CONTENT_LOG;
use annex_branch::logs::preferred_content;
use annex_branch::logs::presence::{self, Status};
use annex_branch::logs::uuid_based::MapLog;
use annex_branch::{Branch, VectorClock};
use annex_protocol::{Key, Uuid};
use base64::Engine;

use super::protocol::{RemoteRequest, Reply};
use super::ExternalError;

/// The web's UUID in location logs.
pub const WEB_UUID: &str = "00000000-0000-0000-0000-000000000001";

/// What the remote's requests are answered from.
pub(crate) struct Host {
    /// The remote's UUID.
    pub uuid: Uuid,
    /// The using repository's git directory, absolute.
    pub git_dir: PathBuf,
    /// The answer to GETGITDIR: as git-annex answers it, the git
    /// directory relative to the work tree the remote runs in (`.git`),
    /// or absolute in a bare repository.
    pub git_dir_answer: String,
    /// The git remote's name, when known.
    pub remote_name: Option<String>,
    /// The using repository's git-annex branch.
    pub branch: Arc<Mutex<Branch>>,
    /// Whether credentials are cached in `.git/annex/creds`
    /// (annex.cachecreds).
    pub cache_creds: bool,
    /// The name the remote goes by in messages.
    pub label: String,
}

/// The path of `key`'s log with extension `ext` on the branch.
fn key_log(key: &Key, ext: &str) -> String {
    format!("{}{}{ext}", key.hash_dir_lower(), key.to_file_name())
}

/// How git-annex tells which downloader a logged URL is for: `yt:` and
/// `quvi:` URLs are youtube-dl's, `:` ones are some other remote's, the
/// rest the web's.
fn is_web_url(logged: &str) -> bool {
    !(logged.starts_with(':') || logged.starts_with("yt:") || logged.starts_with("quvi:"))
}

/// A logged URL without its downloader prefix.
fn without_downloader(logged: &str) -> &str {
    for p in ["yt:", "quvi:", ":"] {
        if let Some(rest) = logged.strip_prefix(p) {
            return rest;
        }
    }
    logged
}

impl Host {
    fn failed(&self, what: &str, e: impl std::fmt::Display) -> ExternalError {
        ExternalError::Broken {
            remote: self.label.clone(),
            why: format!("{what}: {e}"),
        }
    }

    /// Runs `f` on the branch, on a blocking thread.
    async fn with_branch<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Branch) -> Result<T, annex_branch::BranchError> + Send + 'static,
    ) -> Result<T, ExternalError> {
        let branch = self.branch.clone();
        tokio::task::spawn_blocking(move || {
            let b = branch.lock().unwrap_or_else(|p| p.into_inner());
            f(&b)
        })
        .await
        .map_err(|e| self.failed(what, e))?
        .map_err(|e| self.failed(what, e))
    }

    /// The answer to `q` (none for requests that have no reply), with
    /// `config` the running process's configuration.
    pub async fn answer(
        &self,
        q: RemoteRequest,
        config: &Mutex<BTreeMap<String, String>>,
    ) -> Result<Option<Reply>, ExternalError> {
        use RemoteRequest as Q;
        let value = |s: String| Ok(Some(Reply::Value(s)));
        match q {
            Q::GetConfig(setting) => {
                let c = config.lock().unwrap_or_else(|p| p.into_inner());
                value(c.get(&setting).cloned().unwrap_or_default())
            }
            Q::SetConfig(setting, v) => {
                config
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(setting, v);
                Ok(None)
            }
            Q::GetCreds(setting) => {
                let (u, p) = self.get_creds(&setting, config).await?.unwrap_or_default();
                Ok(Some(Reply::Creds(u, p)))
            }
            Q::SetCreds(setting, login, password) => {
                self.set_creds(&setting, &login, &password, config).await?;
                Ok(None)
            }
            Q::GetUuid => value(self.uuid.as_str().to_owned()),
            Q::GetGitDir => value(self.git_dir_answer.clone()),
            Q::GetGitRemoteName => match &self.remote_name {
                Some(n) => value(n.clone()),
                None => Ok(Some(Reply::Error("git remote name not known".into()))),
            },
            Q::DirHash(k) => value(k.hash_dir_mixed()),
            Q::DirHashLower(k) => value(k.hash_dir_lower()),
            Q::SetState(k, state) => {
                let u = self.uuid.clone();
                self.with_branch("recording the remote's state", move |b| {
                    b.change(&key_log(&k, ".log.rmt"), |old| {
                        let mut log: MapLog<Uuid, String> = MapLog::parse_new(old);
                        log.set(u, state, VectorClock::now()).ok()?;
                        Some(log.write_new())
                    })
                })
                .await?;
                Ok(None)
            }
            Q::GetState(k) => {
                let u = self.uuid.clone();
                let state = self
                    .with_branch("reading the remote's state", move |b| {
                        let log: MapLog<Uuid, String> =
                            MapLog::parse_new(&b.read(&key_log(&k, ".log.rmt"))?);
                        Ok(log.get(&u).cloned().unwrap_or_default())
                    })
                    .await?;
                value(state)
            }
            Q::SetUrlPresent(k, url) => {
                self.set_url(k, url, true).await?;
                Ok(None)
            }
            Q::SetUrlMissing(k, url) => {
                self.set_url(k, url, false).await?;
                Ok(None)
            }
            Q::SetUriPresent(k, uri) => {
                self.set_url(k, format!(":{uri}"), true).await?;
                Ok(None)
            }
            Q::SetUriMissing(k, uri) => {
                self.set_url(k, format!(":{uri}"), false).await?;
                Ok(None)
            }
            Q::GetUrls(k, prefix) => {
                // Several VALUEs, then an empty one: answered by
                // `urls` (see Job::answer).
                let urls = self.urls(&k).await?;
                let mut out: Vec<String> = urls
                    .iter()
                    .map(|u| without_downloader(u).to_owned())
                    .filter(|u| u.starts_with(&prefix))
                    .collect();
                out.push(String::new());
                Ok(Some(Reply::Values(out)))
            }
            Q::GetWanted => {
                let u = self.uuid.clone();
                let expr = self
                    .with_branch("reading preferred content", move |b| {
                        let log = preferred_content::parse(&b.read(PREFERRED_CONTENT_LOG)?);
                        Ok(preferred_content::expressions(&log)
                            .remove(&u)
                            .unwrap_or_default())
                    })
                    .await?;
                value(expr)
            }
            Q::SetWanted(expr) => {
                let u = self.uuid.clone();
                self.with_branch("recording preferred content", move |b| {
                    b.change(PREFERRED_CONTENT_LOG, |old| {
                        let mut log = preferred_content::parse(old);
                        preferred_content::set(&mut log, u, &expr, VectorClock::now()).ok()?;
                        Some(preferred_content::write(&log))
                    })
                })
                .await?;
                Ok(None)
            }
            Q::Version(_) | Q::Progress(_) | Q::Debug(_) | Q::Info(_) => Ok(None),
        }
    }

    /// The URLs the branch records for `k`, as logged.
    async fn urls(&self, k: &Key) -> Result<Vec<String>, ExternalError> {
        let path = key_log(k, ".log.web");
        self.with_branch("reading the URL log", move |b| {
            Ok(presence::present(&b.read(&path)?)
                .into_iter()
                .map(|u| String::from_utf8_lossy(&u).into_owned())
                .collect())
        })
        .await
    }

    /// Records `logged` (a URL as logged) present or missing for `k`, as
    /// git-annex's setUrlPresent and setUrlMissing do.
    async fn set_url(&self, k: Key, logged: String, present: bool) -> Result<(), ExternalError> {
        let path = key_log(&k, ".log.web");
        let web = Uuid::parse(WEB_UUID).map_err(|e| self.failed("the web's UUID", e))?;
        self.with_branch("recording a URL", move |b| {
            let before: Vec<Vec<u8>> = presence::present(&b.read(&path)?);
            let listed = before.iter().any(|u| u == logged.as_bytes());
            if present {
                if !listed {
                    b.change(&path, |old| {
                        presence::change(
                            old,
                            logged.as_bytes(),
                            Status::Present,
                            VectorClock::now(),
                        )
                    })?;
                }
                if is_web_url(&logged) {
                    b.set_location(&k, &web, true)?;
                }
            } else if listed {
                b.change(&path, |old| {
                    presence::change(old, logged.as_bytes(), Status::Missing, VectorClock::now())
                })?;
                let other_web = before
                    .iter()
                    .filter(|u| u.as_slice() != logged.as_bytes())
                    .any(|u| is_web_url(&String::from_utf8_lossy(u)));
                if is_web_url(&logged) && !other_web {
                    b.set_location(&k, &web, false)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// The file name of a credential pair in the cache, and the prefix of
    /// its environment variables (`UUID-SETTING`, `/` made `_`).
    fn creds_base(&self, setting: &str) -> String {
        format!("{}-{setting}", self.uuid.as_str()).replace('/', "_")
    }

    fn creds_dir(&self) -> PathBuf {
        self.git_dir.join("annex").join("creds")
    }

    async fn get_creds(
        &self,
        setting: &str,
        config: &Mutex<BTreeMap<String, String>>,
    ) -> Result<Option<(String, String)>, ExternalError> {
        let base = self.creds_base(setting);
        if let (Ok(u), Ok(p)) = (
            std::env::var(format!("{base}login")),
            std::env::var(format!("{base}password")),
        ) {
            return Ok(Some((u, p)));
        }
        let file = self.creds_dir().join(&base);
        let cached = tokio::task::spawn_blocking(move || std::fs::read(file).ok())
            .await
            .map_err(|e| self.failed("reading credentials", e))?;
        if let Some(pair) = cached.as_deref().and_then(decode_pair) {
            return Ok(Some(pair));
        }
        let embedded = config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(setting)
            .cloned();
        let Some(embedded) = embedded else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(embedded.trim())
            .ok();
        let Some(pair) = bytes.as_deref().and_then(decode_pair) else {
            return Err(ExternalError::Failed {
                remote: self.label.clone(),
                message: "bad creds".into(),
            });
        };
        if self.cache_creds {
            self.write_creds(&base, &pair).await?;
        }
        Ok(Some(pair))
    }

    async fn set_creds(
        &self,
        setting: &str,
        login: &str,
        password: &str,
        config: &Mutex<BTreeMap<String, String>>,
    ) -> Result<(), ExternalError> {
        let pair = (login.to_owned(), password.to_owned());
        if self.cache_creds {
            self.write_creds(&self.creds_base(setting), &pair).await?;
        }
        let mut c = config.lock().unwrap_or_else(|p| p.into_inner());
        let embed = c
            .get("embedcreds")
            .is_some_and(|v| matches!(v.as_str(), "yes" | "true"));
        if embed {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(encode_pair(login, password));
            c.insert(setting.to_owned(), encoded);
        }
        Ok(())
    }

    async fn write_creds(&self, base: &str, pair: &(String, String)) -> Result<(), ExternalError> {
        let dir = self.creds_dir();
        let file = dir.join(base);
        let data = encode_pair(&pair.0, &pair.1);
        tokio::task::spawn_blocking(move || write_protected(&dir, &file, data.as_bytes()))
            .await
            .map_err(|e| self.failed("caching credentials", e))?
            .map_err(|e| self.failed("caching credentials", e))
    }
}

fn encode_pair(login: &str, password: &str) -> String {
    format!("{login}\n{password}\n")
}

/// Two lines, login and password (git-annex's decodeCredPair).
fn decode_pair(data: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().collect();
    match lines.as_slice() {
        [l, p] => Some((l.to_string(), p.to_string())),
        _ => None,
    }
}

/// Writes `file` readable by its owner only, in `dir` (made if missing).
fn write_protected(dir: &Path, file: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_pairs_are_two_lines() {
        assert_eq!(
            decode_pair(b"x\ny\n"),
            Some(("x".to_string(), "y".to_string()))
        );
        assert_eq!(decode_pair(b"x\ny"), Some(("x".into(), "y".into())));
        assert_eq!(decode_pair(b"x\n"), None);
        assert_eq!(decode_pair(b"x\ny\nz\n"), None);
        assert_eq!(encode_pair("a b", "c"), "a b\nc\n");
    }

    #[test]
    fn logged_urls_name_their_downloader() {
        assert!(is_web_url("https://example.com/x"));
        assert!(!is_web_url(":ipfs:Qm1"));
        assert!(!is_web_url("yt:https://example.com/v"));
        assert_eq!(without_downloader(":ipfs:Qm1"), "ipfs:Qm1");
        assert_eq!(without_downloader("https://e/x"), "https://e/x");
    }
}
