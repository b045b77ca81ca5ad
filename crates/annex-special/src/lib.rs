//! git-annex special remotes as [`Repository`]s, opened from their
//! configuration in remote.log, laid out as git-annex lays them out, so
//! that git-annex and this program can both use one such remote.
//!
//! - [`open`]: a special remote from its remote.log configuration and
//!   the settings of the repository using it ([`Setup`]); a setting it
//!   cannot honour yet is a [`SpecialError`] naming it.
//! - [`directory`]: the directory special remote (`type=directory`),
//!   chunked or not.
//! - [`s3`]: the S3 special remote (`type=S3`), chunked or not, its
//!   content streamed to and from the bucket.
//! - [`initremote`]: a new special remote (directory or S3) made as
//!   `git annex initremote` makes it.
//! - [`chunk`]: chunked content: the `chunk=` and `chunksize=` settings,
//!   chunk keys and the chunk log.
//! - [`export`]: remotes with `exporttree=yes` (and `annexobjects=yes`):
//!   files at their paths in the remote, the stores of the kinds of
//!   remote that keep them, and exporting a tree as `git annex export`
//!   does.
//!
//! Nothing here knows of proxies or clusters: a gateway serves a special
//! remote as it serves any other repository.
//!
//! A directory special remote, stored into and read back:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use annex_branch::logs::remote_config::RemoteConfig;
//! use annex_branch::Branch;
//! use annex_protocol::{AssociatedFile, BytesSource, Key, PutOutcome, Repository, Uuid};
//! use annex_special::{open, Setup};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let repo = tmp.path().join("repo");
//! # std::fs::create_dir(&repo)?;
//! # std::process::Command::new("git").args(["init", "-q"]).current_dir(&repo).status()?;
//! # let store = tmp.path().join("store");
//! # std::fs::create_dir(&store)?;
//! // The remote as remote.log describes it (`git annex initremote store
//! // type=directory directory=... encryption=none chunk=1MiB`).
//! let config = RemoteConfig::from_iter([
//!     ("type", "directory"),
//!     ("encryption", "none"),
//!     ("chunk", "1MiB"),
//!     ("directory", store.to_str().unwrap()),
//! ]);
//! let setup = Setup::new(
//!     Uuid::parse("794fec3b-bb73-45fb-8f9b-4f11e080df39")?,
//!     Arc::new(Mutex::new(Branch::open(&repo)?)),
//! );
//! let remote = open(&config, setup)?.into_repository();
//!
//! let key = Key::parse(
//!     "SHA256E-s5--2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.txt",
//! )?;
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     let mut content = BytesSource::new(&b"hello"[..]);
//!     let stored = remote.put(&key, &AssociatedFile::none(), &mut content).await?;
//!     assert_eq!(stored, PutOutcome::Stored(Vec::new()));
//!     assert!(remote.check_present(&key).await?);
//!     Ok::<_, annex_protocol::RepoError>(())
//! })?;
//!
//! // Settings not supported yet are refused, naming the setting.
//! let mut rsync = config.clone();
//! rsync.0.insert("type".into(), "rsync".into());
//! let err = open(&rsync, Setup::new(remote.uuid().clone(), Arc::new(Mutex::new(Branch::open(&repo)?))));
//! assert_eq!(err.unwrap_err().to_string(), "special remote type rsync is not supported yet");
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod chunk;
pub mod directory;
pub mod export;
pub mod external;
pub mod initremote;
pub mod s3;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use annex_branch::logs::paths::REMOTE_LOG;
use annex_branch::logs::remote_config::{self, RemoteConfig};
use annex_branch::{Branch, BranchError};
use annex_protocol::{Repository, Uuid};

pub use chunk::Chunking;
pub use directory::DirectoryRemote;
pub use export::ExportRemote;
pub use external::ExternalRemote;
pub use s3::S3Remote;

/// Why a special remote cannot be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecialError {
    /// The configuration names no type.
    #[error("the special remote's configuration has no type=")]
    MissingType,
    /// A type of special remote this crate does not implement yet.
    #[error("special remote type {0} is not supported yet")]
    UnsupportedType(String),
    /// A setting this crate cannot honour yet (`encryption=shared`,
    /// `exporttree=yes`, ...).
    #[error("{field}={value} is not supported yet")]
    Unsupported {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A setting the remote needs is not there (the directory of a
    /// directory remote).
    #[error("missing {0}")]
    Missing(&'static str),
    /// A setting's value cannot be read (a chunk size that is not a
    /// size).
    #[error("bad configuration {field}={value}")]
    BadSetting {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// An S3 remote has no credentials (none in the environment, the
    /// repository's cache or remote.log).
    #[error("No S3 credentials configured for {remote}: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (git annex enableremote {remote} with them set caches them in .git/annex/creds/)")]
    NoCredentials {
        /// The remote's name.
        remote: String,
    },
    /// Credentials are there but cannot be read.
    #[error("bad creds")]
    BadCredentials,
}

/// What opening a special remote needs besides its configuration: its
/// UUID and the settings of the repository that uses it.
#[derive(Clone)]
pub struct Setup {
    /// The remote's UUID.
    pub uuid: Uuid,
    /// The remote's settings in the using repository's git config:
    /// `remote.NAME.VAR` by `VAR` in lower case (`annex-directory`).
    pub git_config: BTreeMap<String, String>,
    /// Where relative paths start: the using repository's work tree (or
    /// its git directory when bare). Empty: the current directory.
    pub work: PathBuf,
    /// Bytes kept free on the remote's filesystem (the using
    /// repository's annex.diskreserve).
    pub disk_reserve: u64,
    /// The using repository's git-annex branch, where chunk logs are read
    /// and recorded.
    pub branch: Arc<Mutex<Branch>>,
    /// The git remote's name in the using repository, when known (an
    /// external remote may ask for it).
    pub name: Option<String>,
}

impl Setup {
    /// A setup with no git config settings, paths relative to the current
    /// directory, and no disk reserve.
    pub fn new(uuid: Uuid, branch: Arc<Mutex<Branch>>) -> Setup {
        Setup {
            uuid,
            git_config: BTreeMap::new(),
            work: PathBuf::new(),
            disk_reserve: 0,
            branch,
            name: None,
        }
    }

    /// A setting of the remote in git config (`annex-directory`).
    fn git(&self, var: &str) -> Option<&str> {
        self.git_config.get(var).map(String::as_str)
    }
}

/// A special remote, by kind.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SpecialRemote {
    /// `type=directory`.
    Directory(DirectoryRemote),
    /// `type=S3`.
    S3(S3Remote),
    /// `type=external`.
    External(ExternalRemote),
    /// Any type with `exporttree=yes` (see [`export`]).
    Export(ExportRemote),
}

impl SpecialRemote {
    /// The remote's UUID.
    pub fn uuid(&self) -> &Uuid {
        match self {
            SpecialRemote::Directory(d) => d.uuid(),
            SpecialRemote::S3(s) => s.uuid(),
            SpecialRemote::External(e) => e.uuid(),
            SpecialRemote::Export(e) => annex_protocol::Repository::uuid(e),
        }
    }

    /// The remote as a repository.
    pub fn into_repository(self) -> Arc<dyn Repository> {
        match self {
            SpecialRemote::Directory(d) => Arc::new(d),
            SpecialRemote::S3(s) => Arc::new(s),
            SpecialRemote::External(e) => Arc::new(e),
            SpecialRemote::Export(e) => Arc::new(e),
        }
    }
}

/// Opens the special remote that `config` (its fields in remote.log)
/// describes, as `setup` says. Refuses a type or a setting not supported
/// yet, naming it.
pub fn open(config: &RemoteConfig, setup: Setup) -> Result<SpecialRemote, SpecialError> {
    if export::ExportConfig::from_config(config)?.export_tree {
        return export::open(config, setup).map(SpecialRemote::Export);
    }
    check_supported(config)?;
    match config.get("type") {
        Some("directory") => DirectoryRemote::open(config, setup).map(SpecialRemote::Directory),
        Some("S3") => S3Remote::open(config, setup).map(SpecialRemote::S3),
        Some("external") => ExternalRemote::open(config, setup).map(SpecialRemote::External),
        Some(other) => Err(SpecialError::UnsupportedType(other.to_owned())),
        None => Err(SpecialError::MissingType),
    }
}

/// Refuses the settings no special remote here supports yet: encryption,
/// and exported or imported trees.
pub fn check_supported(config: &RemoteConfig) -> Result<(), SpecialError> {
    match config.get("encryption") {
        None | Some("none") => {}
        Some(other) => {
            return Err(SpecialError::Unsupported {
                field: "encryption",
                value: other.to_owned(),
            })
        }
    }
    for field in ["exporttree", "importtree"] {
        if let Some(v @ ("yes" | "true")) = config.get(field) {
            return Err(SpecialError::Unsupported {
                field,
                value: v.to_owned(),
            });
        }
    }
    Ok(())
}

/// The configuration remote.log on `branch` records for the special
/// remote `uuid` (with what a `--sameas` remote inherits), if any.
pub fn remote_config(branch: &Branch, uuid: &Uuid) -> Result<Option<RemoteConfig>, BranchError> {
    let log = branch.read(REMOTE_LOG)?;
    Ok(remote_config::config_map(&remote_config::parse(&log)).remove(uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kv: &[(&str, &str)]) -> RemoteConfig {
        kv.iter().copied().collect()
    }

    #[test]
    fn only_what_is_supported_is_opened_and_the_rest_named() {
        let dir = tempfile::tempdir().unwrap();
        annex_test_support::git(dir.path(), &["init", "-q"]);
        let branch = Arc::new(Mutex::new(Branch::open(dir.path()).unwrap()));
        let mut setup = Setup::new(
            Uuid::parse("794fec3b-bb73-45fb-8f9b-4f11e080df39").unwrap(),
            branch,
        );
        setup
            .git_config
            .insert("annex-directory".into(), dir.path().display().to_string());
        let opened_with = |s: &Setup, c: &[(&str, &str)]| open(&cfg(c), s.clone()).map(|_| ());
        let opened = |c: &[(&str, &str)]| opened_with(&setup, c);
        let message = |c: &[(&str, &str)]| opened(c).unwrap_err().to_string();
        assert_eq!(
            opened(&[("type", "directory"), ("encryption", "none")]),
            Ok(())
        );
        assert_eq!(
            message(&[("type", "S3"), ("encryption", "none")]),
            "missing bucket"
        );
        assert_eq!(
            opened(&[("type", "rsync"), ("encryption", "none")]),
            Err(SpecialError::UnsupportedType("rsync".into()))
        );
        assert_eq!(
            message(&[("type", "directory"), ("encryption", "shared")]),
            "encryption=shared is not supported yet"
        );
        assert_eq!(
            message(&[("type", "S3"), ("encryption", "hybrid")]),
            "encryption=hybrid is not supported yet"
        );
        // exporttree=yes: the directory remote's store; other types,
        // encryption and importtree refused.
        assert!(matches!(
            open(
                &cfg(&[
                    ("type", "directory"),
                    ("encryption", "none"),
                    ("exporttree", "yes"),
                    ("annexobjects", "yes")
                ]),
                setup.clone()
            ),
            Ok(SpecialRemote::Export(_))
        ));
        for (bad, why) in [
            (
                [
                    ("type", "rsync"),
                    ("encryption", "none"),
                    ("exporttree", "yes"),
                ],
                "exporttree=yes is not supported yet",
            ),
            (
                [
                    ("type", "directory"),
                    ("importtree", "yes"),
                    ("exporttree", "yes"),
                ],
                "importtree=yes is not supported yet",
            ),
            (
                [
                    ("type", "directory"),
                    ("encryption", "shared"),
                    ("exporttree", "yes"),
                ],
                "encryption=shared is not supported yet",
            ),
        ] {
            assert_eq!(message(&bad), why);
        }
        assert_eq!(
            opened(&[("encryption", "none")]),
            Err(SpecialError::MissingType)
        );
        assert_eq!(
            message(&[("type", "directory"), ("chunk", "lots")]),
            "bad configuration chunk=lots"
        );
        // The directory from git config, else from remote.log, else none.
        let bare = Setup {
            git_config: BTreeMap::new(),
            work: dir.path().to_owned(),
            ..setup.clone()
        };
        assert_eq!(
            opened_with(&bare, &[("type", "directory")]),
            Err(SpecialError::Missing("directory"))
        );
        let from_log = open(&cfg(&[("type", "directory"), ("directory", "store")]), bare).unwrap();
        let SpecialRemote::Directory(d) = from_log else {
            panic!("not a directory remote");
        };
        assert_eq!(d.directory(), dir.path().join("store"));
    }

    #[test]
    fn configuration_read_from_remote_log() {
        let dir = tempfile::tempdir().unwrap();
        annex_test_support::git(dir.path(), &["init", "-q"]);
        let branch = Branch::open(dir.path()).unwrap();
        let u = Uuid::parse("794fec3b-bb73-45fb-8f9b-4f11e080df39").unwrap();
        assert!(remote_config(&branch, &u).unwrap().is_none());
        let line = format!("{u} name=store type=directory encryption=none timestamp=1796018829s\n");
        assert!(branch
            .change(REMOTE_LOG, |_| Some(line.into_bytes()))
            .unwrap());
        let config = remote_config(&branch, &u).unwrap().unwrap();
        assert_eq!(config.get("type"), Some("directory"));
        assert_eq!(config.get("name"), Some("store"));
    }
}
