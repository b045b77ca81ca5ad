//! A local git-annex repository (annex.version 10), as a
//! [`Repository`].
//!
//! ```
//! use annex_protocol::{Key, Repository};
//! use annex_repo::LocalRepository;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path();
//! # let git = |args: &[&str]| std::process::Command::new("git").args(args).current_dir(path).output();
//! # git(&["init", "-q"])?;
//! # git(&["config", "annex.uuid", "5b7d8c3e-0f55-4f3a-9e3b-6b2d1c0a9f00"])?;
//! # git(&["config", "annex.version", "10"])?;
//! // A git-annex repository on disk (here a fresh one): where it keeps a
//! // key's content, and whether it has it.
//! let repo = LocalRepository::open(path)?;
//! let key = Key::parse("SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt")?;
//! assert!(repo.object_path(&key).ends_with(key.to_string()));
//! let present = tokio::runtime::Runtime::new()?.block_on(repo.check_present(&key))?;
//! assert!(!present);
//! # Ok(())
//! # }
//! ```
//!
//! Objects are where git-annex keeps them (`.git/annex/objects/Xx/Yy/KEY/KEY`
//! with a work tree, `annex/objects/xxx/yyy/KEY/KEY` in a bare repository,
//! and found under the other layout too). Received content goes to
//! `annex/tmp/KEY`, is verified against its key while it streams in, and is
//! moved into place only when complete and valid; an interrupted transfer
//! resumes from the temporary file. Content locks are compatible with
//! git-annex's own, so both programs can serve one repository at once.

#![warn(missing_docs)]

pub mod config;
pub mod location;
mod objects;
pub use annex_branch::lock;
pub mod read;
pub mod remotes;
pub mod space;
mod store;
pub mod verify;
pub mod worktree;

pub use space::{ensure_free_space, free_space, ReceiveLock};
pub use store::{receive_verified, receive_verified_hashing};
pub use worktree::annexed_key;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use annex_protocol::{
    AssociatedFile, ContentLock, GetOutcome, GetSink, Key, LockGuard, PutOutcome, PutSource,
    RemoveOutcome, RepoError, Repository, Uuid, Validity,
};
use async_trait::async_trait;
use thiserror::Error;

use crate::lock::{try_lock, FileLock, LockKind};

/// How long a LOCKCONTENT keeps content from being removed after the
/// locking process has gone, as git-annex does (10 minutes).
pub const LOCK_RETENTION_SECS: u64 = 600;

/// Why a repository could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The path is not a git repository.
    #[error("{0} is not a git repository")]
    NotGit(PathBuf),
    /// The repository has no annex.uuid.
    #[error("{0} is not a git-annex repository (run `git annex init` there)")]
    NotAnnex(PathBuf),
    /// The repository uses an annex.version this program does not handle.
    #[error("{path} has annex.version {version}; only version 10 is supported (run `git annex upgrade` there)")]
    Version {
        /// The repository.
        path: PathBuf,
        /// Its version.
        version: String,
    },
    /// Reading the repository failed.
    #[error("cannot read the repository: {0}")]
    Io(#[from] io::Error),
}

/// Whether `path` is a git repository, by git-annex's rules: a work tree
/// with `.git/config` (or `.git/gitdir`, or a `.git` file naming the git
/// directory, as submodules and linked work trees have), or a bare
/// repository with `config` and `objects`. Symlinks are followed.
pub fn looks_like_repository(path: &Path) -> bool {
    let dot_git = path.join(".git");
    dot_git.join("config").is_file()
        || dot_git.join("gitdir").is_file()
        || dot_git.is_file()
        || (path.join("config").is_file() && path.join("objects").is_dir())
}

/// The git directory named by the `.git` file of a submodule or linked
/// work tree (`gitdir: PATH`, relative to the work tree). A linked work
/// tree's own directory names the repository's common directory, which
/// holds the config and the annex: that one is returned.
fn linked_git_dir(work_tree: &Path, dot_git: &Path) -> Result<PathBuf, OpenError> {
    let text = std::fs::read_to_string(dot_git)?;
    let named = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("gitdir:"))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| OpenError::NotGit(work_tree.to_owned()))?;
    let git_dir = work_tree.join(named);
    match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(common) if !common.trim().is_empty() => Ok(git_dir.join(common.trim())),
        _ => Ok(git_dir),
    }
}

/// A git-annex repository on this machine.
#[derive(Debug, Clone)]
pub struct LocalRepository {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    git_dir: PathBuf,
    bare: bool,
    uuid: Uuid,
    disk_reserve: u64,
    branch: location::BranchCell,
    objects: objects::ObjectsDir,
}

impl LocalRepository {
    /// Opens the repository at `path` (its work tree or, for a bare
    /// repository, its git directory).
    pub fn open(path: &Path) -> Result<LocalRepository, OpenError> {
        let dot_git = path.join(".git");
        let (git_dir, bare) = if dot_git.is_dir() {
            (dot_git, false)
        } else if dot_git.is_file() {
            (linked_git_dir(path, &dot_git)?, false)
        } else if path.join("HEAD").is_file() && path.join("objects").is_dir() {
            (path.to_owned(), true)
        } else {
            return Err(OpenError::NotGit(path.to_owned()));
        };
        let cfg = config::GitConfig::read(&git_dir)?;
        let uuid = cfg
            .get("annex.uuid")
            .and_then(|u| Uuid::parse(u).ok())
            .ok_or_else(|| OpenError::NotAnnex(path.to_owned()))?;
        match cfg.get("annex.version") {
            Some("10") => {}
            Some(v) => {
                return Err(OpenError::Version {
                    path: path.to_owned(),
                    version: v.to_owned(),
                })
            }
            None => return Err(OpenError::NotAnnex(path.to_owned())),
        }
        let disk_reserve = config::disk_reserve(cfg.get("annex.diskreserve"));
        Ok(LocalRepository {
            inner: Arc::new(Inner {
                bare,
                uuid,
                disk_reserve,
                branch: location::BranchCell::default(),
                objects: objects::ObjectsDir::new(git_dir.join("annex").join("objects")),
                git_dir,
            }),
        })
    }

    /// The repository's git directory.
    pub fn git_dir(&self) -> &Path {
        &self.inner.git_dir
    }

    /// Whether the repository is bare.
    pub fn is_bare(&self) -> bool {
        self.inner.bare
    }

    /// The free space kept in reserve (annex.diskreserve).
    pub fn disk_reserve(&self) -> u64 {
        self.inner.disk_reserve
    }

    /// Where git-annex keeps a key's content in this repository: the
    /// first of the two layouts where it exists, or the layout new content
    /// goes to.
    pub fn object_path(&self, key: &Key) -> PathBuf {
        let (candidates, found) = self.find_object(key);
        self.inner
            .objects
            .path()
            .join(&candidates[found.unwrap_or(0)])
    }

    /// The two possible object paths of `key` (see
    /// [`object_candidates`](Self::object_candidates)) and which of them
    /// holds its content, if either does.
    fn find_object(&self, key: &Key) -> ([String; 2], Option<usize>) {
        let candidates = self.object_candidates(key);
        let found = self.inner.objects.find(&[&candidates[0], &candidates[1]]);
        (candidates, found)
    }

    /// The two possible object paths, relative to `annex/objects`: first
    /// the one for new content (the lower-case hash directories in a bare
    /// repository, the mixed-case ones otherwise), then the other.
    fn object_candidates(&self, key: &Key) -> [String; 2] {
        let dirs = key.hash_dirs();
        let mut file = String::new();
        key.push_file_name(&mut file);
        let path = |dir: &str| {
            let mut p = String::with_capacity(dir.len() + 2 * file.len() + 1);
            p.push_str(dir);
            p.push_str(&file);
            p.push('/');
            p.push_str(&file);
            p
        };
        let (lower, mixed) = (path(dirs.lower()), path(dirs.mixed()));
        if self.inner.bare {
            [lower, mixed]
        } else {
            [mixed, lower]
        }
    }

    /// The temporary file content is received into.
    pub fn tmp_path(&self, key: &Key) -> PathBuf {
        self.inner
            .git_dir
            .join("annex")
            .join("tmp")
            .join(key.to_file_name())
    }

    /// Whether the key's content is here.
    pub fn has_content(&self, key: &Key) -> bool {
        self.find_object(key).1.is_some()
    }

    fn record_location(&self, key: &Key, present: bool) -> io::Result<()> {
        self.inner
            .branch
            .record(&self.inner.git_dir, key, &self.inner.uuid, present)
    }
}

/// The system's monotonic clock in seconds, counting suspended time, as
/// git-annex's GETTIMESTAMP does; the same in every process.
pub fn monotonic_seconds() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if r != 0 {
        // SAFETY: as above.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    }
    ts.tv_sec as u64
}

fn now_posix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Makes a directory writable by its owner for the duration of `f`, then
/// restores its mode (git-annex keeps key directories read-only).
fn with_writable_dir<T>(dir: &Path, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let old = std::fs::metadata(dir)?.permissions();
    let mode = old.mode();
    if mode & 0o200 != 0 {
        return f();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o200))?;
    let r = f();
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
    r
}

fn retention_path(object: &Path) -> PathBuf {
    with_suffix(object, ".rtm")
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read_retention(object: &Path) -> Option<f64> {
    let s = std::fs::read_to_string(retention_path(object)).ok()?;
    s.trim().trim_end_matches('s').parse().ok()
}

/// Writes the retention timestamp as git-annex does (a POSIX time followed
/// by `s`), keeping a later one that is already there.
fn write_retention(object: &Path, until: f64) -> io::Result<()> {
    let dir = object.parent().unwrap_or(Path::new("."));
    with_writable_dir(dir, || {
        let _l = lock::lock_blocking(&with_suffix(object, ".rtl"), LockKind::Exclusive)?;
        if read_retention(object).is_some_and(|t| t >= until) {
            return Ok(());
        }
        let tmp = with_suffix(object, ".rtm.tmp");
        std::fs::write(&tmp, format!("{until:.9}s"))?;
        std::fs::rename(tmp, retention_path(object))
    })
}

/// A shared lock on a key's content, taken for LOCKCONTENT.
struct SharedContentLock {
    lock: Option<FileLock>,
    object: PathBuf,
    retention: f64,
    /// The holder went away: leave the retention timestamp in place.
    abandoned: bool,
}

impl LockGuard for SharedContentLock {
    fn abandon(&mut self) {
        self.abandoned = true;
    }
}

impl Drop for SharedContentLock {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else {
            return;
        };
        let lockfile = lock.path().to_owned();
        drop(lock);
        if self.abandoned {
            return;
        }
        // Clean up the lock file (and our retention timestamp) when no
        // other process holds a shared lock, as git-annex does.
        let dir = self.object.parent().map(Path::to_owned);
        if let Ok(Some(ex)) = try_lock(&lockfile, LockKind::Exclusive) {
            if ex.is_sane() {
                let object = self.object.clone();
                let mine = self.retention;
                let _ = with_writable_dir(dir.as_deref().unwrap_or(Path::new(".")), || {
                    if read_retention(&object) == Some(mine) {
                        let _ = std::fs::remove_file(retention_path(&object));
                        let _ = std::fs::remove_file(with_suffix(&object, ".rtl"));
                    }
                    let _ = std::fs::remove_file(&lockfile);
                    Ok(())
                });
            }
        }
    }
}

fn blocking_err(e: tokio::task::JoinError) -> RepoError {
    RepoError::context("background task failed", e)
}

#[async_trait]
impl Repository for LocalRepository {
    fn uuid(&self) -> &Uuid {
        &self.inner.uuid
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        // One stat of a local file: cheaper done here than handed to a
        // blocking thread (servers answer many of these a second).
        Ok(self.has_content(key))
    }

    async fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, RepoError> {
        let this = self.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || -> Result<Option<ContentLock>, RepoError> {
            let object = this.object_path(&key);
            let Some(dir) = object.parent().filter(|_| object.is_file()) else {
                return Ok(None);
            };
            let lockfile = with_suffix(&object, ".lck");
            let lock = with_writable_dir(dir, || try_lock(&lockfile, LockKind::Shared))?;
            let Some(lock) = lock.filter(FileLock::is_sane) else {
                return Ok(None);
            };
            if !object.is_file() {
                return Ok(None);
            }
            let retention = (now_posix() + LOCK_RETENTION_SECS as f64).floor();
            write_retention(&object, retention)?;
            Ok(Some(ContentLock::with_guard(SharedContentLock {
                lock: Some(lock),
                object,
                retention,
                abandoned: false,
            })))
        })
        .await
        .map_err(blocking_err)?
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        let this = self.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || this.remove_blocking(&key, before))
            .await
            .map_err(blocking_err)?
    }

    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        Ok(monotonic_seconds())
    }

    async fn get(
        &self,
        key: &Key,
        _file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        let path = self.object_path(key);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(GetOutcome::NotPresent),
            Err(e) => return Err(e.into()),
        };
        let before = file.metadata()?;
        let size = before.len();
        let start = offset.min(size);
        // Moved by the kernel where the sink can have it so; read ahead on
        // a blocking thread otherwise.
        if !sink.data_file(size - start, &file, start).await? {
            let mut reader = {
                use std::io::Seek;
                let mut file = file;
                file.seek(io::SeekFrom::Start(start))?;
                read::FileStream::start(file, size - start)
            };
            sink.data_chunks(size - start, &mut reader).await?;
        }
        // The content is valid if the file did not change while it was
        // being sent.
        let after = tokio::fs::metadata(&path).await.ok();
        let unchanged = after.is_some_and(|a| {
            a.len() == before.len() && a.modified().ok() == before.modified().ok()
        });
        let validity = if unchanged {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        let accepted = sink.finish(Some(validity)).await?;
        Ok(GetOutcome::Sent { accepted })
    }

    async fn put(
        &self,
        key: &Key,
        _file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        store::put(self, key, source).await
    }
}

impl LocalRepository {
    fn remove_blocking(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        let object = self.object_path(key);
        let Some(dir) = object
            .parent()
            .filter(|_| object.is_file())
            .map(Path::to_owned)
        else {
            return Ok(RemoveOutcome {
                removed: true,
                also_removed_from: Vec::new(),
            });
        };
        let lockfile = with_suffix(&object, ".lck");
        let refused = RemoveOutcome::default();
        let lock = with_writable_dir(&dir, || try_lock(&lockfile, LockKind::Exclusive))?;
        let Some(lock) = lock.filter(FileLock::is_sane) else {
            return Ok(refused);
        };
        if read_retention(&object).is_some_and(|t| t >= now_posix()) {
            return Ok(refused);
        }
        if let Some(deadline) = before {
            if monotonic_seconds() >= deadline {
                return Ok(refused);
            }
        }
        with_writable_dir(&dir, || {
            std::fs::remove_file(&object)?;
            for suffix in [".rtm", ".rtl", ".lck"] {
                let _ = std::fs::remove_file(with_suffix(&object, suffix));
            }
            Ok(())
        })?;
        drop(lock);
        // Remove the now empty key directory and hash directories.
        let _ = std::fs::remove_dir(&dir);
        let mut d = dir.parent();
        for _ in 0..2 {
            match d {
                Some(p) if std::fs::remove_dir(p).is_ok() => d = p.parent(),
                _ => break,
            }
        }
        self.record_location(key, false)?;
        Ok(RemoveOutcome {
            removed: true,
            also_removed_from: Vec::new(),
        })
    }
}
