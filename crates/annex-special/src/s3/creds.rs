//! An S3 remote's credentials, found where git-annex finds them (Creds.hs,
//! `getRemoteCredPair`): `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`
//! in the environment (both, or neither counts), else the cache
//! `.git/annex/creds/UUID` that `initremote` and `enableremote` write
//! (two lines: key id and secret), else `s3creds=` in remote.log (the
//! same two lines in base64, recorded with `embedcreds=yes` on a remote
//! without encryption). `AWS_SESSION_TOKEN` in the environment goes with
//! any of them.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use annex_branch::logs::remote_config::RemoteConfig;
use annex_protocol::Uuid;
use base64::Engine as _;

use crate::SpecialError;

/// The environment variable holding the access key id.
pub const KEY_ID_VAR: &str = "AWS_ACCESS_KEY_ID";
/// The environment variable holding the secret access key.
pub const SECRET_VAR: &str = "AWS_SECRET_ACCESS_KEY";
/// The environment variable holding a session token.
pub const TOKEN_VAR: &str = "AWS_SESSION_TOKEN";

/// A key id and its secret (and a session token).
#[derive(Clone, PartialEq, Eq)]
pub struct Creds {
    /// The access key id.
    pub key_id: String,
    /// The secret access key.
    pub secret: String,
    /// A temporary session's token.
    pub token: Option<String>,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Where credentials were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// In the environment.
    Environment,
    /// In the repository's cache file.
    Cache(PathBuf),
    /// Embedded in remote.log (`s3creds=`).
    RemoteLog,
}

/// The cache file of a remote's credentials: `GIT_DIR/annex/creds/UUID`.
pub fn cache_file(git_dir: &Path, uuid: &Uuid) -> PathBuf {
    git_dir.join("annex").join("creds").join(uuid.as_str())
}

/// The two lines git-annex reads as a credential pair, exactly two.
fn decode_pair(text: &str) -> Option<(String, String)> {
    let mut lines = text.lines();
    let (k, s) = (lines.next()?, lines.next()?);
    if lines.next().is_some() {
        return None;
    }
    Some((k.to_owned(), s.to_owned()))
}

/// The credentials of the remote `uuid` (configured by `config`, in the
/// repository whose git directory is `git_dir`), looked up as git-annex
/// looks them up, with `env` reading the environment. `Ok(None)` when
/// there are none; an error when what is there cannot be read.
pub fn find(
    config: &RemoteConfig,
    git_dir: &Path,
    uuid: &Uuid,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(Creds, Found)>, SpecialError> {
    let token = env(TOKEN_VAR).filter(|t| !t.is_empty());
    let with = |(key_id, secret): (String, String), found| {
        Some((
            Creds {
                key_id,
                secret,
                token: token.clone(),
            },
            found,
        ))
    };
    if let (Some(k), Some(s)) = (env(KEY_ID_VAR), env(SECRET_VAR)) {
        return Ok(with((k, s), Found::Environment));
    }
    let file = cache_file(git_dir, uuid);
    if let Ok(text) = std::fs::read_to_string(&file) {
        let pair = decode_pair(&text).ok_or(SpecialError::BadCredentials)?;
        return Ok(with(pair, Found::Cache(file)));
    }
    if let Some(embedded) = config.get("s3creds") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(embedded.trim())
            .map_err(|_| SpecialError::BadCredentials)?;
        let text = String::from_utf8(bytes).map_err(|_| SpecialError::BadCredentials)?;
        let pair = decode_pair(&text).ok_or(SpecialError::BadCredentials)?;
        return Ok(with(pair, Found::RemoteLog));
    }
    Ok(None)
}

/// Writes the cache file of a remote's credentials as git-annex writes
/// it (two lines, readable by its owner only).
pub fn write_cache(git_dir: &Path, uuid: &Uuid, key_id: &str, secret: &str) -> io::Result<()> {
    let file = cache_file(git_dir, uuid);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&file);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)?;
    f.write_all(format!("{key_id}\n{secret}\n").as_bytes())
}

/// The value of `s3creds=` that embeds a credential pair in remote.log
/// (`embedcreds=yes` without encryption).
pub fn embedded(key_id: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{key_id}\n{secret}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "794fec3b-bb73-45fb-8f9b-4f11e080df39";

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn found_in_git_annex_order() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = Uuid::parse(U).unwrap();
        let embedded_cfg: RemoteConfig = [("s3creds", embedded("LOGK", "LOGS").as_str())]
            .into_iter()
            .collect();
        let none = env_of(&[]);
        // Nothing anywhere.
        assert_eq!(
            find(&RemoteConfig::default(), dir.path(), &uuid, &none).unwrap(),
            None
        );
        // Embedded in remote.log.
        let (c, from) = find(&embedded_cfg, dir.path(), &uuid, &none)
            .unwrap()
            .unwrap();
        assert_eq!((c.key_id.as_str(), c.secret.as_str()), ("LOGK", "LOGS"));
        assert_eq!(from, Found::RemoteLog);
        // The cache comes before it.
        write_cache(dir.path(), &uuid, "FILEK", "FILES").unwrap();
        let (c, from) = find(&embedded_cfg, dir.path(), &uuid, &none)
            .unwrap()
            .unwrap();
        assert_eq!(c.key_id, "FILEK");
        assert_eq!(from, Found::Cache(cache_file(dir.path(), &uuid)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache_file(dir.path(), &uuid))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // One variable alone is not enough; both win over the rest.
        let half = env_of(&[(KEY_ID_VAR, "ENVK")]);
        assert_eq!(
            find(&embedded_cfg, dir.path(), &uuid, &half)
                .unwrap()
                .unwrap()
                .0
                .key_id,
            "FILEK"
        );
        let both = env_of(&[
            (KEY_ID_VAR, "ENVK"),
            (SECRET_VAR, "ENVS"),
            (TOKEN_VAR, "TOK"),
        ]);
        let (c, from) = find(&embedded_cfg, dir.path(), &uuid, &both)
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.secret.as_str(), c.token.as_deref()),
            ("ENVK", "ENVS", Some("TOK"))
        );
        assert_eq!(from, Found::Environment);
        assert!(!format!("{c:?}").contains("ENVS"));
    }

    #[test]
    fn unreadable_credentials_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = Uuid::parse(U).unwrap();
        let none = env_of(&[]);
        let bad: RemoteConfig = [("s3creds", "!!!")].into_iter().collect();
        assert_eq!(
            find(&bad, dir.path(), &uuid, &none).unwrap_err(),
            SpecialError::BadCredentials
        );
        let file = cache_file(dir.path(), &uuid);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "only one line\n").unwrap();
        assert_eq!(
            find(&RemoteConfig::default(), dir.path(), &uuid, &none).unwrap_err(),
            SpecialError::BadCredentials
        );
    }
}
