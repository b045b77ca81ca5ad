//! Making a special remote as `git annex initremote NAME KEY=VALUE...`
//! makes it (git-annex 10.20250416), so that a program without git-annex
//! (a forge) can make one that git-annex then uses unchanged: a new UUID,
//! the remote's fields in remote.log, its name as its description in
//! uuid.log, and the using repository's git config
//! (`remote.NAME.annex-uuid`, `remote.NAME.skipfetchall`, and
//! `remote.NAME.annex-s3` or `remote.NAME.annex-directory`).
//!
//! - `type=S3`: the bucket (`bucket=`, by default `NAME-UUID`, lower
//!   case) is made when missing, its `annex-uuid` object written (a
//!   bucket whose `annex-uuid` names another remote is refused), and the
//!   credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`
//!   cached in `.git/annex/creds/UUID` (and, with `embedcreds=yes`,
//!   recorded in remote.log as `s3creds=`). `datacenter=US` and
//!   `storageclass=STANDARD` are recorded when not given, as git-annex
//!   records them.
//! - `type=directory`: `directory=` must be an existing directory; its
//!   absolute path goes to git config only, as git-annex keeps it.
//!
//! Only `encryption=none` is supported.

use std::path::{Path, PathBuf};

use annex_branch::logs::paths::REMOTE_LOG;
use annex_branch::logs::remote_config::{self, RemoteConfig};
use annex_branch::logs::uuid_based::ValueError;
use annex_branch::{Branch, BranchError, VectorClock};
use annex_protocol::Uuid;
use bytes::Bytes;

use crate::s3::client::{AddressPolicy, ObjectStore, S3Error};
use crate::s3::config::{S3Config, Signing};
use crate::s3::{creds, naming::Naming};
use crate::SpecialError;

/// Why a special remote was not made.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// No `type=`.
    #[error("Specify the type of remote with type=")]
    NoType,
    /// No `encryption=`.
    #[error("Specify encryption=none (the only encryption supported here)")]
    NoEncryption,
    /// A remote of that name is in remote.log already.
    #[error("There is already a special remote named \"{0}\". (Use enableremote to enable an existing special remote.)")]
    Exists(String),
    /// The name cannot be a git remote's.
    #[error("bad remote name {0:?}")]
    BadName(String),
    /// A field that cannot be recorded.
    #[error("bad field {0:?}")]
    BadField(String),
    /// `type=directory` without an existing `directory=`.
    #[error("{0}")]
    Directory(String),
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] SpecialError),
    /// The bucket belongs to another special remote.
    #[error("The bucket already exists, and its annex-uuid file indicates it is used by a different special remote. Cannot reuse this bucket.")]
    BucketInUse,
    /// The S3 server refused or could not be reached.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// The git-annex branch could not be changed.
    #[error(transparent)]
    Branch(#[from] BranchError),
    /// Git config or the credentials cache could not be written.
    #[error("{0}")]
    Io(String),
}

impl From<ValueError> for InitError {
    fn from(e: ValueError) -> InitError {
        InitError::BadField(e.to_string())
    }
}

/// What `initremote` is told.
pub struct Request<'a> {
    /// The remote's name.
    pub name: &'a str,
    /// Its fields, as given (`type=S3`, `bucket=...`).
    pub fields: RemoteConfig,
    /// The using repository's git-annex branch.
    pub branch: &'a Branch,
    /// Where a relative `directory=` starts.
    pub work: &'a Path,
    /// Reads the environment (`AWS_ACCESS_KEY_ID`, ...).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

fn io(what: &str, e: impl std::fmt::Display) -> InitError {
    InitError::Io(format!("{what}: {e}"))
}

/// Makes the special remote `req` describes; its UUID. Nothing is
/// recorded unless all went well (a bucket made on the way stays).
pub async fn initremote(req: Request<'_>) -> Result<Uuid, InitError> {
    let name = req.name;
    if name.is_empty()
        || name.starts_with('-')
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\\/:*?\"<>|[]".contains(c))
    {
        return Err(InitError::BadName(name.to_owned()));
    }
    let mut fields = req.fields;
    for k in fields.0.keys() {
        RemoteConfig::check_key(k)?;
    }
    let kind = fields.get("type").ok_or(InitError::NoType)?.to_owned();
    match fields.get("encryption") {
        None => return Err(InitError::NoEncryption),
        Some("none") => {}
        Some(other) => {
            return Err(SpecialError::Unsupported {
                field: "encryption",
                value: other.to_owned(),
            }
            .into())
        }
    }
    let log = remote_config::parse(&req.branch.read(REMOTE_LOG)?);
    let taken = log
        .simple_map()
        .values()
        .any(|c| c.get("name") == Some(name) && c.get("sameas-uuid").is_none());
    if taken {
        return Err(InitError::Exists(name.to_owned()));
    }
    fields.0.insert("name".into(), name.into());
    let uuid = Uuid::new_v4();
    let git_dir = req.branch.git_dir().to_owned();
    let mut git_config: Vec<(String, String)> = Vec::new();
    match kind.as_str() {
        "S3" => {
            let (git, cache) = init_s3(&mut fields, &uuid, &git_dir, req.env).await?;
            git_config.extend(git);
            if let Some((k, s)) = cache {
                creds::write_cache(&git_dir, &uuid, &k, &s)
                    .map_err(|e| io("caching the credentials", e))?;
            }
        }
        "directory" => {
            let dir = fields
                .0
                .remove("directory")
                .filter(|d| !d.is_empty())
                .ok_or_else(|| InitError::Directory("Specify directory=".into()))?;
            let dir = absolute(req.work, &dir);
            if !dir.is_dir() {
                return Err(InitError::Directory(format!(
                    "Directory does not exist: {}",
                    dir.display()
                )));
            }
            crate::check_supported(&fields)?;
            crate::chunk::Chunking::from_config(&fields)?;
            git_config.push(("annex-directory".into(), dir.display().to_string()));
        }
        other => return Err(SpecialError::UnsupportedType(other.to_owned()).into()),
    }
    git_config.push(("annex-uuid".into(), uuid.to_string()));
    git_config.push(("skipfetchall".into(), "true".into()));
    let now = VectorClock::now();
    req.branch.try_change(REMOTE_LOG, |old| {
        let mut log = remote_config::parse(old);
        remote_config::set(&mut log, uuid.clone(), fields.clone(), now)?;
        Ok::<_, InitError>(Some(remote_config::write(&log)))
    })?;
    req.branch.set_description::<InitError>(&uuid, name)?;
    for (k, v) in git_config {
        annex_repo::config::set(&git_dir, &format!("remote.{name}.{k}"), &v)
            .map_err(|e| io("writing git config", e))?;
    }
    Ok(uuid)
}

fn absolute(work: &Path, dir: &str) -> PathBuf {
    let p = work.join(dir);
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// A cached credential pair: key id and secret.
type CachePair = Option<(String, String)>;

/// Sets an S3 remote up: fields completed, bucket made, `annex-uuid`
/// written; the git config settings and the credentials to cache.
async fn init_s3(
    fields: &mut RemoteConfig,
    uuid: &Uuid,
    git_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<(String, String)>, CachePair), InitError> {
    let name = fields.get("name").unwrap_or("").to_owned();
    for (k, v) in [("datacenter", "US"), ("storageclass", "STANDARD")] {
        fields.0.entry(k.into()).or_insert_with(|| v.into());
    }
    let bucket = fields
        .get("bucket")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{name}-{uuid}"))
        .to_lowercase()
        .replace(' ', "-");
    fields.0.insert("bucket".into(), bucket);
    let config = S3Config::from_remote_config(fields)?;
    let pair = match config.signing {
        Signing::Anonymous => None,
        Signing::V4 => match (env(creds::KEY_ID_VAR), env(creds::SECRET_VAR)) {
            (Some(k), Some(s)) => Some((k, s)),
            _ => return Err(SpecialError::NoCredentials { remote: name }.into()),
        },
    };
    if let Some((k, s)) = &pair {
        if matches!(fields.get("embedcreds"), Some("yes" | "true")) {
            fields.0.insert("s3creds".into(), creds::embedded(k, s));
        }
    }
    let store_creds = pair.as_ref().map(|(k, s)| creds::Creds {
        key_id: k.clone(),
        secret: s.clone(),
        token: env(creds::TOKEN_VAR).filter(|t| !t.is_empty()),
    });
    let allowed = annex_repo::config::GitConfig::read(git_dir)
        .ok()
        .and_then(|c| {
            c.get("annex.security.allowed-ip-addresses")
                .map(str::to_owned)
        });
    let store = ObjectStore::new(
        &config,
        store_creds.as_ref(),
        AddressPolicy::from_setting(allowed.as_deref()),
    )
    .map_err(|e| InitError::Io(e.to_string()))?;
    if !store.bucket_exists().await? {
        let datacenter = fields.get("datacenter").unwrap_or("US");
        let location = (datacenter != "US").then_some(datacenter);
        store.create_bucket(location).await?;
    }
    let naming = Naming::new(&config.fileprefix).map_err(|e| InitError::BadField(e.to_string()))?;
    let object = naming.uuid_object();
    match store.get_small(&object).await? {
        Some(b) if b.as_ref() == uuid.as_str().as_bytes() => {}
        Some(_) => return Err(InitError::BucketInUse),
        None => {
            store
                .put_bytes(&object, Bytes::from(uuid.as_str().to_owned()))
                .await?
        }
    }
    Ok((vec![("annex-s3".into(), "true".into())], pair))
}
