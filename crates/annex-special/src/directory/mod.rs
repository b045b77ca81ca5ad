//! A git-annex `type=directory` special remote (`encryption=none`) as a
//! [`Repository`], laid out on disk exactly as git-annex lays it out, so
//! that git-annex and this gateway can both use one such remote.
//!
//! - A key's content is the file `DIR/xxx/yyy/KEY/KEY`, in the lower-case
//!   hash directories of the key (chunk fields left out of the hash);
//!   content is also found under the mixed-case hash directories
//!   (`DIR/Xx/Yy/KEY/KEY`), where older versions of git-annex wrote it.
//! - Content is written into `DIR/tmp/KEY/KEY`, and the directory
//!   `DIR/tmp/KEY` is renamed to `DIR/xxx/yyy/KEY` once complete; file
//!   and directory are then made read-only.
//! - With `chunk=SIZE`, content of a key whose backend is stable (every
//!   hash backend and WORM; not URL keys) is stored as chunk keys
//!   `BACKEND-sSIZE-SCHUNKSIZE-CN--NAME`, `N` from 1, each where a key's
//!   content goes, and the number of chunks is recorded in the chunk log
//!   of the gateway's git-annex branch (`xxx/yyy/KEY.log.cnk`, lines
//!   `CLOCK UUID:CHUNKSIZE COUNT`). Content is found under any chunk size
//!   the log records for the remote, unchunked, and (when the log does
//!   not know it) under the configured chunk size, as git-annex looks.
//! - With the deprecated `chunksize=SIZE`, content is the files
//!   `DIR/xxx/yyy/KEY/KEY.chunkN` with their count in `KEY.chunkcount`.
//!
//! Received content is verified against its key as it streams in (with
//! annex-repo's verifier), an interrupted upload resumes from what reached
//! the temporary files, and annex.diskreserve of the gateway is kept free
//! on the remote's filesystem. Content cannot be locked (git-annex's proxy
//! answers FAILURE for a special remote), and the clock is the gateway's.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use annex_branch::logs::remote_config::RemoteConfig;
use annex_branch::logs::uuid_based::{LogField, LogValue, MapLog};
use annex_branch::{Branch, VectorClock};
use annex_protocol::key::KeyParts;
use annex_protocol::repository::{
    ChunkStream, ContentLock, GetOutcome, GetSink, PutData, PutOutcome, PutSource, RemoveOutcome,
    Repository, Validity,
};
use annex_protocol::{AssociatedFile, Key, KeyVariety, RepoError, Uuid};
use annex_repo::read::FileStream;
use annex_repo::{monotonic_seconds, receive_verified, ReceiveLock};
use async_trait::async_trait;
use bytes::Bytes;

/// Why a special remote's configuration cannot be used as a directory
/// remote by this gateway.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    /// The remote is a special remote of another type.
    #[error("special remotes of type {0} are not supported by this gateway (only type=directory)")]
    UnsupportedType(String),
    /// The remote's content is encrypted.
    #[error("encryption={0} is not supported by this gateway (only encryption=none)")]
    Encrypted(String),
    /// The remote holds an exported (or imported) tree, not keys.
    #[error("{0}=yes remotes are not supported by this gateway")]
    ExportTree(&'static str),
    /// Neither git config (`remote.NAME.annex-directory`) nor the remote's
    /// configuration says where the directory is.
    #[error("missing directory")]
    MissingDirectory,
    /// A chunk setting is not a size.
    #[error("bad configuration {field}={value}")]
    BadChunkConfig {
        /// `chunk` or `chunksize`.
        field: &'static str,
        /// The value.
        value: String,
    },
}

/// How a directory remote splits content (its `chunk=` or `chunksize=`
/// setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Each key's content in one file.
    None,
    /// `chunk=SIZE`: chunk keys of that size, recorded in the chunk log.
    Chunks(u64),
    /// `chunksize=SIZE` (deprecated): `KEY.chunkN` files in the key's
    /// directory, counted in `KEY.chunkcount`.
    Legacy(u64),
}

impl Chunking {
    /// The chunking a remote's configuration asks for, read as git-annex
    /// reads it (sizes as [`annex_types::size::read_size`] reads them):
    /// `chunksize=` wins over `chunk=`, a size of 0 means no chunks, and a
    /// negative one is refused.
    pub fn from_config(config: &RemoteConfig) -> Result<Chunking, DirectoryError> {
        let size = |field: &'static str, v: &str| {
            annex_types::size::read_size(v)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| DirectoryError::BadChunkConfig {
                    field,
                    value: v.to_owned(),
                })
        };
        if let Some(v) = config.get("chunksize") {
            return Ok(match size("chunksize", v)? {
                0 => Chunking::None,
                n => Chunking::Legacy(n),
            });
        }
        if let Some(v) = config.get("chunk") {
            return Ok(match size("chunk", v)? {
                0 => Chunking::None,
                n => Chunking::Chunks(n),
            });
        }
        Ok(Chunking::None)
    }
}

/// Whether git-annex stores a key's content in chunks when the remote is
/// chunked: only keys of a stable backend, whose content cannot differ
/// between two copies (not URL or VURL keys, nor external backends,
/// which this gateway cannot ask).
pub fn is_stable_key(key: &Key) -> bool {
    matches!(
        key.variety(),
        KeyVariety::Hash { .. }
            | KeyVariety::Worm
            | KeyVariety::GitBundle
            | KeyVariety::GitManifest
    )
}

fn bad_key(e: annex_protocol::KeyError) -> RepoError {
    RepoError::context("cannot make a chunk key", e)
}

/// The key without chunk fields (git-annex's `nonChunkKey`).
pub fn non_chunk_key(key: &Key) -> Result<Key, RepoError> {
    if key.chunk_size().is_none() && key.chunk_num().is_none() {
        return Ok(key.clone());
    }
    Key::from_parts(&KeyParts {
        backend: key.backend(),
        size: key.size(),
        mtime: key.mtime(),
        chunk_size: None,
        chunk_num: None,
        name: key.name(),
    })
    .map_err(bad_key)
}

/// The key of chunk `num` (from 1) of `key`'s content in chunks of
/// `chunk_size` bytes.
pub fn chunk_key(key: &Key, chunk_size: u64, num: u64) -> Result<Key, RepoError> {
    Key::from_parts(&KeyParts {
        backend: key.backend(),
        size: key.size(),
        mtime: key.mtime(),
        chunk_size: Some(chunk_size),
        chunk_num: Some(num),
        name: key.name(),
    })
    .map_err(bad_key)
}

/// How many chunks of `chunk_size` hold `size` bytes: at least one, even
/// for empty content, as git-annex stores it.
pub fn chunk_count(size: u64, chunk_size: u64) -> u64 {
    size.div_ceil(chunk_size.max(1)).max(1)
}

/// The chunk log's path on the git-annex branch: `xxx/yyy/KEY.log.cnk`.
pub fn chunk_log_path(key: &Key) -> String {
    format!("{}{}.log.cnk", key.hash_dir_lower(), key.to_file_name())
}

/// How content was split, as the chunk log names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChunkMethod {
    /// Chunks of this many bytes.
    Fixed(u64),
    /// A method this program does not know, kept as written.
    Unknown(String),
}

/// The field of a chunk log line: a repository and a chunk method
/// (`UUID:CHUNKSIZE`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkField {
    /// The repository holding the chunks.
    pub uuid: Uuid,
    /// How the content was split.
    pub method: ChunkMethod,
}

impl LogField for ChunkField {
    fn parse_field(b: &[u8]) -> Option<Self> {
        let colon = b.iter().position(|&c| c == b':')?;
        let uuid = Uuid::parse(std::str::from_utf8(&b[..colon]).ok()?).ok()?;
        let rest = std::str::from_utf8(&b[colon + 1..]).ok()?;
        let method = match rest.parse::<u64>() {
            Ok(n) if rest.bytes().all(|c| c.is_ascii_digit()) => ChunkMethod::Fixed(n),
            _ => ChunkMethod::Unknown(rest.to_owned()),
        };
        Some(ChunkField { uuid, method })
    }

    fn write_field(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.uuid.as_str().as_bytes());
        out.push(b':');
        match &self.method {
            ChunkMethod::Fixed(n) => out.extend_from_slice(n.to_string().as_bytes()),
            ChunkMethod::Unknown(s) => out.extend_from_slice(s.as_bytes()),
        }
    }
}

/// The value of a chunk log line: how many chunks (0 once removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCount(pub u64);

impl LogValue for ChunkCount {
    fn parse_value(b: &[u8]) -> Option<Self> {
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(b).ok()?.parse().ok().map(ChunkCount)
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.to_string().as_bytes());
    }
}

/// A chunk log as read.
pub type ChunkLog = MapLog<ChunkField, ChunkCount>;

/// The chunk sizes and counts a chunk log records for `uuid`, in the
/// log's order, without those logged as removed.
pub fn current_chunks(log: &ChunkLog, uuid: &Uuid) -> Vec<(ChunkMethod, u64)> {
    log.entries
        .iter()
        .filter(|(f, e)| &f.uuid == uuid && e.value.0 > 0)
        .map(|(f, e)| (f.method.clone(), e.value.0))
        .collect()
}

/// A list of files that together hold a key's content, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Candidate {
    /// The key's own file.
    Unchunked,
    /// Chunks of a size; `speculative` when the chunk log does not record
    /// them (the configured chunk size, tried last).
    Chunks {
        size: u64,
        count: u64,
        speculative: bool,
    },
}

/// What holds a key's content in the remote.
struct Found {
    files: Vec<PathBuf>,
    /// Chunks found that the chunk log did not record: (size, count).
    unlogged: Option<(u64, u64)>,
}

/// A directory special remote.
#[derive(Clone)]
pub struct DirectoryRemote {
    inner: Arc<Inner>,
}

struct Inner {
    uuid: Uuid,
    dir: PathBuf,
    chunking: Chunking,
    disk_reserve: u64,
    branch: Arc<Mutex<Branch>>,
}

fn blocking_err(e: tokio::task::JoinError) -> RepoError {
    RepoError::context("background task failed", e)
}

fn file_size(p: &Path) -> Option<u64> {
    fs::metadata(p)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// Removes the write bits of a file or directory, as git-annex leaves
/// what it stores.
fn prevent_write(p: &Path) -> io::Result<()> {
    let mode = fs::metadata(p)?.permissions().mode();
    fs::set_permissions(p, fs::Permissions::from_mode(mode & !0o222))
}

fn allow_write(p: &Path) -> io::Result<()> {
    let mode = fs::metadata(p)?.permissions().mode();
    fs::set_permissions(p, fs::Permissions::from_mode(mode | 0o200))
}

impl DirectoryRemote {
    /// A directory remote with UUID `uuid` at `dir`, splitting content as
    /// `chunking` says, keeping `disk_reserve` bytes free on the
    /// directory's filesystem, and recording chunks in `branch` (the
    /// gateway's).
    pub fn new(
        uuid: Uuid,
        dir: PathBuf,
        chunking: Chunking,
        disk_reserve: u64,
        branch: Arc<Mutex<Branch>>,
    ) -> DirectoryRemote {
        DirectoryRemote {
            inner: Arc::new(Inner {
                uuid,
                dir,
                chunking,
                disk_reserve,
                branch,
            }),
        }
    }

    /// The remote described by its configuration in remote.log: of type
    /// `directory`, not encrypted, not an export; at `directory` (from
    /// git config, `remote.NAME.annex-directory`), or else at the
    /// `directory=` an older git-annex recorded in remote.log.
    pub fn from_config(
        uuid: Uuid,
        config: &RemoteConfig,
        directory: Option<PathBuf>,
        disk_reserve: u64,
        branch: Arc<Mutex<Branch>>,
    ) -> Result<DirectoryRemote, DirectoryError> {
        match config.get("type") {
            Some("directory") => {}
            other => {
                return Err(DirectoryError::UnsupportedType(
                    other.unwrap_or("(unknown)").to_owned(),
                ))
            }
        }
        match config.get("encryption") {
            None | Some("none") => {}
            Some(other) => return Err(DirectoryError::Encrypted(other.to_owned())),
        }
        for field in ["exporttree", "importtree"] {
            if matches!(config.get(field), Some("yes" | "true")) {
                return Err(DirectoryError::ExportTree(field));
            }
        }
        let chunking = Chunking::from_config(config)?;
        let dir = directory
            .or_else(|| {
                config
                    .get("directory")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            })
            .ok_or(DirectoryError::MissingDirectory)?;
        Ok(DirectoryRemote::new(
            uuid,
            dir,
            chunking,
            disk_reserve,
            branch,
        ))
    }

    /// The directory.
    pub fn directory(&self) -> &Path {
        &self.inner.dir
    }

    /// How content is split.
    pub fn chunking(&self) -> Chunking {
        self.inner.chunking
    }

    /// Where a key's content may be, most likely first: under the
    /// lower-case hash directories, then the mixed-case ones.
    pub fn locations(&self, key: &Key) -> Result<[PathBuf; 2], RepoError> {
        let dirs = non_chunk_key(key)?.hash_dirs();
        let f = key.to_file_name();
        let d = &self.inner.dir;
        Ok([
            d.join(dirs.lower()).join(&f).join(&f),
            d.join(dirs.mixed()).join(&f).join(&f),
        ])
    }

    /// The directory new content of a key goes in: `DIR/xxx/yyy/KEY`.
    pub fn store_dir(&self, key: &Key) -> Result<PathBuf, RepoError> {
        let dirs = non_chunk_key(key)?.hash_dirs();
        Ok(self.inner.dir.join(dirs.lower()).join(key.to_file_name()))
    }

    /// The other directory a key's content may be in, as older git-annex
    /// versions wrote it: `DIR/Xx/Yy/KEY`.
    fn mixed_store_dir(&self, key: &Key) -> Result<PathBuf, RepoError> {
        let dirs = non_chunk_key(key)?.hash_dirs();
        Ok(self.inner.dir.join(dirs.mixed()).join(key.to_file_name()))
    }

    /// The temporary directory a key's content is written in:
    /// `DIR/tmp/KEY`.
    pub fn tmp_dir(&self, key: &Key) -> PathBuf {
        self.inner.dir.join("tmp").join(key.to_file_name())
    }

    /// Makes room for `need` more bytes of the receive holding `lock`,
    /// keeping the gateway's annex.diskreserve free on the directory's
    /// filesystem after the other receives in progress into it and, when
    /// the gateway's annex is on the same filesystem, into the gateway
    /// (git-annex's checkDiskSpaceDirectory).
    fn claim_space(&self, lock: &ReceiveLock, need: u64) -> Result<(), RepoError> {
        let git_dir = self
            .inner
            .branch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .git_dir()
            .to_owned();
        lock.claim_space(need, self.inner.disk_reserve, Some(&git_dir))
    }

    fn not_accessible(&self) -> RepoError {
        RepoError::Other(format!(
            "directory {} is not accessible",
            self.inner.dir.display()
        ))
    }

    fn first_existing(&self, key: &Key) -> Result<Option<PathBuf>, RepoError> {
        Ok(self
            .locations(key)?
            .into_iter()
            .find(|p| p.symlink_metadata().is_ok() && p.is_file()))
    }

    /// The chunks the gateway's chunk log records for this remote.
    fn recorded_chunks(&self, key: &Key) -> Result<Vec<(ChunkMethod, u64)>, RepoError> {
        let b = self.inner.branch.lock().unwrap_or_else(|p| p.into_inner());
        let data = b
            .read(&chunk_log_path(key))
            .map_err(|e| RepoError::context("reading the chunk log", e))?;
        Ok(current_chunks(
            &ChunkLog::parse_new(&data),
            &self.inner.uuid,
        ))
    }

    /// Records in the gateway's chunk log that this remote holds `count`
    /// chunks of `size` of the key (0: no longer holds them).
    fn log_chunks(&self, key: &Key, size: u64, count: u64) -> Result<(), RepoError> {
        let field = ChunkField {
            uuid: self.inner.uuid.clone(),
            method: ChunkMethod::Fixed(size),
        };
        let b = self.inner.branch.lock().unwrap_or_else(|p| p.into_inner());
        b.change(&chunk_log_path(key), |old| {
            let mut log = ChunkLog::parse_new(old);
            log.set(field, ChunkCount(count), VectorClock::now()).ok()?;
            Some(log.write_new())
        })
        .map_err(|e| RepoError::context("recording the chunk log", e))?;
        Ok(())
    }

    /// The lists of files that may hold a key's content, in the order
    /// git-annex tries them: without chunking configured, the unchunked
    /// file then what the chunk log records; with chunks configured, what
    /// the chunk log records, the unchunked file, then the configured
    /// chunk size when the log does not record it.
    fn candidates(&self, key: &Key, chunk_size: Option<u64>) -> Result<Vec<Candidate>, RepoError> {
        let recorded = self.recorded_chunks(key)?;
        let mut out: Vec<Candidate> = recorded
            .iter()
            .filter_map(|(m, count)| match m {
                ChunkMethod::Fixed(size) => Some(Candidate::Chunks {
                    size: *size,
                    count: *count,
                    speculative: false,
                }),
                ChunkMethod::Unknown(_) => None,
            })
            .collect();
        match chunk_size {
            None => out.insert(0, Candidate::Unchunked),
            Some(size) => {
                out.push(Candidate::Unchunked);
                if let Some(ks) = key.size() {
                    let count = chunk_count(ks, size);
                    if !recorded.contains(&(ChunkMethod::Fixed(size), count)) {
                        out.push(Candidate::Chunks {
                            size,
                            count,
                            speculative: true,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// The files of one candidate list, when all of them are there.
    fn candidate_files(&self, key: &Key, c: &Candidate) -> Result<Option<Vec<PathBuf>>, RepoError> {
        match c {
            Candidate::Unchunked => Ok(self.first_existing(key)?.map(|p| vec![p])),
            Candidate::Chunks { size, count, .. } => {
                let mut files = Vec::new();
                for n in 1..=*count {
                    match self.first_existing(&chunk_key(key, *size, n)?)? {
                        Some(p) => files.push(p),
                        None => return Ok(None),
                    }
                }
                Ok(Some(files))
            }
        }
    }

    /// The files of `KEY.chunkN` content (`chunksize=`), as git-annex
    /// finds them: the count in `KEY.chunkcount` (all of those chunks must
    /// be there), or else the chunks there are from 1 on.
    fn legacy_files(&self, key: &Key) -> Result<Option<Vec<PathBuf>>, RepoError> {
        let with = |base: &Path, suffix: &str| {
            let mut s = base.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        for base in self.locations(key)? {
            let count_file = with(&base, ".chunkcount");
            if count_file.is_file() {
                let count: u64 = fs::read_to_string(&count_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                let files: Vec<PathBuf> = (1..=count)
                    .map(|n| with(&base, &format!(".chunk{n}")))
                    .collect();
                return Ok(files.iter().all(|f| f.is_file()).then_some(files));
            }
            let mut files = Vec::new();
            for n in 1.. {
                let f = with(&base, &format!(".chunk{n}"));
                if !f.is_file() {
                    break;
                }
                files.push(f);
            }
            if !files.is_empty() {
                return Ok(Some(files));
            }
        }
        Ok(None)
    }

    /// Where the key's content is, if it is here. Fails when the
    /// directory cannot be reached.
    fn find(&self, key: &Key) -> Result<Option<Found>, RepoError> {
        let key = &non_chunk_key(key)?;
        let found = match self.inner.chunking {
            Chunking::Legacy(_) => self.legacy_files(key)?.map(|files| Found {
                files,
                unlogged: None,
            }),
            Chunking::None => {
                // The unchunked file first, before the branch is read.
                match self.first_existing(key)? {
                    Some(p) => Some(Found {
                        files: vec![p],
                        unlogged: None,
                    }),
                    None => self.find_in(key, None)?,
                }
            }
            Chunking::Chunks(size) => self.find_in(key, Some(size))?,
        };
        if found.is_none() && !self.inner.dir.is_dir() {
            return Err(self.not_accessible());
        }
        Ok(found)
    }

    fn find_in(&self, key: &Key, chunk_size: Option<u64>) -> Result<Option<Found>, RepoError> {
        for c in self.candidates(key, chunk_size)? {
            if let Some(files) = self.candidate_files(key, &c)? {
                let unlogged = match c {
                    Candidate::Chunks {
                        size,
                        count,
                        speculative: true,
                    } => Some((size, count)),
                    _ => None,
                };
                return Ok(Some(Found { files, unlogged }));
            }
        }
        Ok(None)
    }

    fn check_present_blocking(&self, key: &Key) -> Result<bool, RepoError> {
        match self.find(key)? {
            None => Ok(false),
            Some(found) => {
                // Chunks found at the configured size that the log did not
                // know are recorded, so that a later change of the chunk
                // size still finds them.
                if let Some((size, count)) = found.unlogged {
                    self.log_chunks(&non_chunk_key(key)?, size, count)?;
                }
                Ok(true)
            }
        }
    }

    fn remove_blocking(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        if !self.inner.dir.is_dir() {
            return Err(self.not_accessible());
        }
        if before.is_some_and(|deadline| monotonic_seconds() >= deadline) {
            return Ok(RemoveOutcome::default());
        }
        let key = &non_chunk_key(key)?;
        let mut keys = Vec::new();
        let mut removed_sizes = Vec::new();
        match self.inner.chunking {
            Chunking::Legacy(_) => keys.push(key.clone()),
            Chunking::None | Chunking::Chunks(_) => {
                let size = match self.inner.chunking {
                    Chunking::Chunks(s) => Some(s),
                    _ => None,
                };
                for c in self.candidates(key, size)? {
                    match c {
                        Candidate::Unchunked => keys.push(key.clone()),
                        Candidate::Chunks { size, count, .. } => {
                            for n in 1..=count {
                                keys.push(chunk_key(key, size, n)?);
                            }
                            removed_sizes.push(size);
                        }
                    }
                }
            }
        }
        for k in &keys {
            remove_dir_generic(true, &self.inner.dir, &self.store_dir(k)?)?;
            let mixed = self.mixed_store_dir(k)?;
            if mixed.exists() {
                remove_dir_generic(true, &self.inner.dir, &mixed)?;
            }
        }
        for size in removed_sizes {
            self.log_chunks(key, size, 0)?;
        }
        Ok(RemoveOutcome {
            removed: true,
            also_removed_from: Vec::new(),
        })
    }

    /// How a put of `key` lays its content out.
    fn plan(&self, key: &Key) -> Plan {
        let layout = match self.inner.chunking {
            Chunking::None => Layout::Whole,
            Chunking::Chunks(s) if is_stable_key(key) => Layout::Chunks(s),
            Chunking::Chunks(_) => Layout::Whole,
            Chunking::Legacy(s) => Layout::Legacy(s),
        };
        Plan {
            remote: self.clone(),
            key: key.clone(),
            layout,
        }
    }
}

/// Removes a key's directory `dir` below the remote's directory `top`,
/// its read-only content included, as git-annex does: a directory that is
/// not there is no failure while `top` is there; with `remove_parents`,
/// the hash directories above it that are left empty go too (never
/// `top`).
fn remove_dir_generic(remove_parents: bool, top: &Path, dir: &Path) -> Result<(), RepoError> {
    let _ = allow_write(dir);
    if let Err(e) = fs::remove_dir_all(dir) {
        // Gone already is fine, while the remote's directory is there.
        if !top.is_dir() || dir.is_dir() {
            return Err(RepoError::Io(e));
        }
    }
    if remove_parents {
        let mut d = dir.parent();
        while let Some(p) = d {
            if p == top || !p.starts_with(top) || fs::remove_dir(p).is_err() {
                break;
            }
            d = p.parent();
        }
    }
    Ok(())
}

/// Moves a complete temporary directory into place as git-annex's
/// `finalizeStoreGeneric` does: what is already at `dest` is removed,
/// the temporary directory renamed, and its files and itself made
/// read-only.
fn finalize_store(top: &Path, tmp: &Path, dest: &Path) -> Result<(), RepoError> {
    remove_dir_generic(false, top, dest)?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::rename(tmp, dest)?;
    // May fail on some filesystems; content is in place either way.
    if let Ok(entries) = fs::read_dir(dest) {
        for e in entries.flatten() {
            let _ = prevent_write(&e.path());
        }
    }
    let _ = prevent_write(dest);
    Ok(())
}

/// How a put's content is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One file.
    Whole,
    /// Chunk keys of this size.
    Chunks(u64),
    /// `KEY.chunkN` files of this size.
    Legacy(u64),
}

/// The files a put writes: pieces of content, each a temporary file.
#[derive(Clone)]
struct Plan {
    remote: DirectoryRemote,
    key: Key,
    layout: Layout,
}

/// Where a resumed put starts.
struct Resume {
    /// Bytes already received.
    offset: u64,
    /// The files holding them, with how much of each is content.
    prefix: Vec<(PathBuf, u64)>,
    /// The piece to write next, and how much of it is written.
    piece: u64,
    piece_len: u64,
}

impl Plan {
    fn dir(&self) -> &Path {
        &self.remote.inner.dir
    }

    /// The most bytes a piece holds (none for one whole file).
    fn capacity(&self) -> Option<u64> {
        match self.layout {
            Layout::Whole => None,
            Layout::Chunks(s) | Layout::Legacy(s) => Some(s),
        }
    }

    /// How many pieces hold `total` bytes.
    fn pieces(&self, total: u64) -> u64 {
        match self.capacity() {
            None => 1,
            Some(c) => chunk_count(total, c),
        }
    }

    /// The key whose temporary directory piece `i` (from 0) is in.
    fn piece_key(&self, i: u64) -> Result<Key, RepoError> {
        match self.layout {
            Layout::Chunks(s) => chunk_key(&self.key, s, i + 1),
            Layout::Whole | Layout::Legacy(_) => Ok(self.key.clone()),
        }
    }

    /// The temporary file of piece `i`.
    fn piece_tmp(&self, i: u64) -> Result<PathBuf, RepoError> {
        let k = self.piece_key(i)?;
        let f = k.to_file_name();
        let dir = self.remote.tmp_dir(&k);
        Ok(match self.layout {
            Layout::Legacy(_) => dir.join(format!("{f}.chunk{}", i + 1)),
            Layout::Whole | Layout::Chunks(_) => dir.join(f),
        })
    }

    /// Piece `i` already stored in place (a chunk key's content), if it
    /// is.
    fn piece_in_place(&self, i: u64) -> Result<Option<PathBuf>, RepoError> {
        match self.layout {
            Layout::Chunks(_) => self.remote.first_existing(&self.piece_key(i)?),
            _ => Ok(None),
        }
    }

    /// What earlier, interrupted puts left: complete pieces (in place, for
    /// chunks stored by an interrupted git-annex, or in their temporary
    /// files) and the partial piece after them.
    fn resume(&self) -> Result<Resume, RepoError> {
        let total = self.key.size();
        let cap = self.capacity();
        let mut r = Resume {
            offset: 0,
            prefix: Vec::new(),
            piece: 0,
            piece_len: 0,
        };
        let last = total.map(|t| self.pieces(t));
        loop {
            if last.is_some_and(|n| r.piece >= n) {
                return Ok(r);
            }
            let expect = match (cap, total) {
                (Some(c), Some(t)) => Some(c.min(t.saturating_sub(r.offset))),
                (Some(c), None) => Some(c),
                (None, _) => None,
            };
            if let Some(p) = self.piece_in_place(r.piece)? {
                let s = file_size(&p).unwrap_or(0);
                if Some(s) == expect {
                    // A temporary copy of this chunk would replace it.
                    let stale = self.remote.tmp_dir(&self.piece_key(r.piece)?);
                    if stale.exists() {
                        fs::remove_dir_all(stale)?;
                    }
                    r.offset += s;
                    r.prefix.push((p, s));
                    r.piece += 1;
                    continue;
                }
            }
            let tmp = self.piece_tmp(r.piece)?;
            match file_size(&tmp) {
                Some(s) if expect == Some(s) => {
                    r.offset += s;
                    r.prefix.push((tmp, s));
                    r.piece += 1;
                }
                Some(s) if expect.is_none_or(|e| s < e) => {
                    r.offset += s;
                    r.prefix.push((tmp, s));
                    r.piece_len = s;
                    return Ok(r);
                }
                Some(_) => {
                    fs::remove_file(&tmp)?;
                    return Ok(r);
                }
                None => return Ok(r),
            }
        }
    }

    /// Removes every temporary file of the put, and with `in_place` the
    /// chunks of this size already in place (an incomplete set, or the
    /// content would have been found).
    fn discard(&self, in_place: bool) -> Result<(), RepoError> {
        match self.layout {
            Layout::Whole | Layout::Legacy(_) => {
                let d = self.remote.tmp_dir(&self.key);
                if d.exists() {
                    fs::remove_dir_all(d)?;
                }
            }
            Layout::Chunks(_) => {
                let n = self.key.size().map(|t| self.pieces(t)).unwrap_or(0);
                if in_place {
                    for i in 0..n {
                        if self.piece_in_place(i)?.is_some() {
                            let k = self.piece_key(i)?;
                            remove_dir_generic(true, self.dir(), &self.remote.store_dir(&k)?)?;
                            let mixed = self.remote.mixed_store_dir(&k)?;
                            if mixed.exists() {
                                remove_dir_generic(true, self.dir(), &mixed)?;
                            }
                        }
                    }
                }
                for i in 0.. {
                    let d = self.remote.tmp_dir(&self.piece_key(i)?);
                    if !d.exists() {
                        if i >= n {
                            break;
                        }
                        continue;
                    }
                    fs::remove_dir_all(d)?;
                }
            }
        }
        Ok(())
    }

    /// Moves the received content (`total` bytes) into place, and for
    /// chunk keys records them in the chunk log.
    fn finalize(&self, total: u64) -> Result<(), RepoError> {
        let top = self.dir().to_owned();
        let n = self.pieces(total);
        let ensure = |p: &Path| -> Result<(), RepoError> {
            if !p.exists() {
                if let Some(d) = p.parent() {
                    fs::create_dir_all(d)?;
                }
                fs::File::create(p)?;
            }
            Ok(())
        };
        match self.layout {
            Layout::Whole => {
                ensure(&self.piece_tmp(0)?)?;
                finalize_store(
                    &top,
                    &self.remote.tmp_dir(&self.key),
                    &self.remote.store_dir(&self.key)?,
                )?;
            }
            Layout::Legacy(_) => {
                for i in 0..n {
                    ensure(&self.piece_tmp(i)?)?;
                }
                // Chunks an earlier, longer attempt left.
                for i in n.. {
                    let p = self.piece_tmp(i)?;
                    if !p.exists() {
                        break;
                    }
                    fs::remove_file(p)?;
                }
                let tmp = self.remote.tmp_dir(&self.key);
                let count = tmp.join(format!("{}.chunkcount", self.key.to_file_name()));
                fs::write(count, n.to_string())?;
                finalize_store(&top, &tmp, &self.remote.store_dir(&self.key)?)?;
            }
            Layout::Chunks(size) => {
                for i in 0..n {
                    let k = self.piece_key(i)?;
                    let tmp = self.remote.tmp_dir(&k);
                    if !tmp.exists() && self.piece_in_place(i)?.is_some() {
                        continue;
                    }
                    ensure(&self.piece_tmp(i)?)?;
                    finalize_store(&top, &tmp, &self.remote.store_dir(&k)?)?;
                }
                for i in n.. {
                    let d = self.remote.tmp_dir(&self.piece_key(i)?);
                    if !d.exists() {
                        break;
                    }
                    fs::remove_dir_all(d)?;
                }
                self.remote.log_chunks(&self.key, size, n)?;
            }
        }
        Ok(())
    }
}

/// Writes received content into the pieces of a plan, from a piece on.
struct PieceWriter {
    plan: Plan,
    piece: u64,
    piece_len: u64,
    file: Option<fs::File>,
}

impl PieceWriter {
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let cap = self.plan.capacity();
        while !bytes.is_empty() {
            let room = cap.map_or(u64::MAX, |c| c.saturating_sub(self.piece_len));
            if room == 0 {
                self.file = None;
                self.piece += 1;
                self.piece_len = 0;
                continue;
            }
            if self.file.is_none() {
                let path = self.plan.piece_tmp(self.piece).map_err(io::Error::other)?;
                if let Some(d) = path.parent() {
                    fs::create_dir_all(d)?;
                }
                // A partial piece is continued; any other is written anew.
                let mut o = fs::OpenOptions::new();
                o.create(true);
                if self.piece_len > 0 {
                    o.append(true);
                } else {
                    o.write(true).truncate(true);
                }
                self.file = Some(o.open(&path)?);
            }
            let n = room.min(bytes.len() as u64) as usize;
            if let Some(f) = self.file.as_mut() {
                f.write_all(&bytes[..n])?;
            }
            self.piece_len += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

/// Reads the first bytes of several files one after the other, opening
/// each only when it is reached.
struct Concat {
    parts: VecDeque<(PathBuf, u64)>,
    current: Option<io::Take<fs::File>>,
}

impl Read for Concat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(cur) = self.current.as_mut() {
                let n = cur.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            let Some((path, len)) = self.parts.pop_front() else {
                return Ok(0);
            };
            self.current = Some(fs::File::open(path)?.take(len));
        }
    }
}

/// Reads parts of several files one after the other, as one stream.
struct FilesStream {
    parts: VecDeque<(PathBuf, u64, u64)>,
    current: Option<FileStream>,
}

impl ChunkStream for FilesStream {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            if let Some(cur) = self.current.as_mut() {
                match cur.poll_chunk(cx) {
                    Poll::Ready(None) => self.current = None,
                    other => return other,
                }
            }
            let Some((path, offset, len)) = self.parts.pop_front() else {
                return Poll::Ready(None);
            };
            if len == 0 {
                continue;
            }
            match FileStream::open(&path, offset, len) {
                Ok(s) => self.current = Some(s),
                Err(e) => {
                    self.parts.clear();
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

fn stamp(p: &Path) -> Option<(u64, Option<SystemTime>)> {
    fs::metadata(p).ok().map(|m| (m.len(), m.modified().ok()))
}

#[async_trait]
impl Repository for DirectoryRemote {
    fn uuid(&self) -> &Uuid {
        &self.inner.uuid
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        let this = self.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || this.check_present_blocking(&key))
            .await
            .map_err(blocking_err)?
    }

    async fn lock_content(&self, _key: &Key) -> Result<Option<ContentLock>, RepoError> {
        // A special remote cannot lock content.
        Ok(None)
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
        let this = self.clone();
        let k = key.clone();
        let stamped = tokio::task::spawn_blocking(move || {
            let Some(found) = this.find(&k)? else {
                return Ok(None);
            };
            let mut files = Vec::with_capacity(found.files.len());
            for f in found.files {
                let st = stamp(&f).ok_or_else(|| {
                    RepoError::Other(format!("{} vanished while being read", f.display()))
                })?;
                files.push((f, st));
            }
            Ok::<_, RepoError>(Some(files))
        })
        .await
        .map_err(blocking_err)??;
        let Some(files) = stamped else {
            return Ok(GetOutcome::NotPresent);
        };
        let total: u64 = files.iter().map(|(_, (len, _))| *len).sum();
        let start = offset.min(total);
        let mut parts = VecDeque::with_capacity(files.len());
        let mut pos = 0u64;
        for (f, (len, _)) in &files {
            let end = pos + len;
            if end > start {
                let from = start.saturating_sub(pos);
                parts.push_back((f.clone(), from, len - from));
            }
            pos = end;
        }
        let mut stream = FilesStream {
            parts,
            current: None,
        };
        sink.data_chunks(total - start, &mut stream).await?;
        // Valid if no file changed while it was being sent.
        let unchanged = tokio::task::spawn_blocking(move || {
            files.iter().all(|(f, st)| stamp(f).as_ref() == Some(st))
        })
        .await
        .map_err(blocking_err)?;
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
        if self.check_present(key).await? {
            return Ok(PutOutcome::AlreadyHave(Vec::new()));
        }
        let key = non_chunk_key(key)?;
        let plan = self.plan(&key);
        let this = self.clone();
        let p = plan.clone();
        // One receiver of a key at a time (in this process or another).
        let (lock, resume) = tokio::task::spawn_blocking(move || {
            let dir = &this.inner.dir;
            if !dir.is_dir() {
                return Err(this.not_accessible());
            }
            let tmp = dir.join("tmp");
            fs::create_dir_all(&tmp)?;
            let lock = ReceiveLock::take(&this.tmp_dir(&p.key))?.ok_or_else(|| {
                RepoError::Refused(format!("a transfer of {} is already in progress", p.key))
            })?;
            let mut resume = p.resume()?;
            if p.key.size().is_some_and(|s| resume.offset > s) {
                p.discard(false)?;
                resume = p.resume()?;
            }
            if let Some(size) = p.key.size() {
                this.claim_space(&lock, size - resume.offset)?;
            }
            Ok((lock, resume))
        })
        .await
        .map_err(blocking_err)??;

        let data = source.open(resume.offset).await?;
        let len = match &data {
            PutData::Present => {
                drop(lock);
                return Ok(if self.check_present(&key).await? {
                    PutOutcome::Stored(Vec::new())
                } else {
                    PutOutcome::NotStored
                });
            }
            PutData::Stream { len, .. } | PutData::Chunks { len, .. } => *len,
        };
        let total = resume.offset + len;
        match key.size() {
            // The sender's idea of the content's size is not the key's.
            Some(s) if total != s => return Ok(PutOutcome::NotStored),
            Some(_) => {}
            // Room for what the sender says it sends, before reading it.
            None => self.claim_space(&lock, len)?,
        }
        let prefix = Box::new(Concat {
            parts: resume.prefix.into_iter().collect(),
            current: None,
        });
        let mut writer = PieceWriter {
            plan: plan.clone(),
            piece: resume.piece,
            piece_len: resume.piece_len,
            file: None,
        };
        let verifier =
            receive_verified(&key, prefix, data, move |b: &[u8]| writer.write(b)).await?;
        let validity = source.validity().await?;
        let ok = verifier.checks_hash() || validity != Some(Validity::Invalid);
        let ok = verifier.finish().is_ok() && ok;
        let p = plan.clone();
        tokio::task::spawn_blocking(move || {
            let r = if ok {
                p.finalize(total)
            } else {
                // Chunks left in place by an interrupted store were part
                // of what failed: they go too, so that a retry starts
                // afresh.
                p.discard(true)
            };
            drop(lock);
            r
        })
        .await
        .map_err(blocking_err)??;
        Ok(if ok {
            PutOutcome::Stored(Vec::new())
        } else {
            PutOutcome::NotStored
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kv: &[(&str, &str)]) -> RemoteConfig {
        RemoteConfig(
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn chunk_settings_as_git_annex_reads_them() {
        assert_eq!(Chunking::from_config(&cfg(&[])), Ok(Chunking::None));
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "64KiB")])),
            Ok(Chunking::Chunks(65536))
        );
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "1MB"), ("chunksize", "10")])),
            Ok(Chunking::Legacy(10))
        );
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "0")])),
            Ok(Chunking::None)
        );
        assert!(Chunking::from_config(&cfg(&[("chunk", "lots")])).is_err());
        // Sizes in every form git-annex reads; a negative one is refused.
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "1e3")])),
            Ok(Chunking::Chunks(1000))
        );
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "8kbit")])),
            Ok(Chunking::Chunks(1000))
        );
        assert!(Chunking::from_config(&cfg(&[("chunk", "-1")])).is_err());
    }

    #[test]
    fn chunk_keys_and_counts() {
        let k = Key::parse(
            "SHA256E-s200000--f57ca603a9f83494e63603993c337f56932d4f13a318bfc6ad9d9a51cdee5cdb",
        )
        .unwrap();
        let c = chunk_key(&k, 65536, 2).unwrap();
        assert_eq!(
            c.as_str(),
            "SHA256E-s200000-S65536-C2--f57ca603a9f83494e63603993c337f56932d4f13a318bfc6ad9d9a51cdee5cdb"
        );
        assert_eq!(non_chunk_key(&c).unwrap(), k);
        assert_eq!(chunk_count(200_000, 65536), 4);
        assert_eq!(chunk_count(65536, 65536), 1);
        assert_eq!(chunk_count(0, 65536), 1);
        assert_eq!(
            chunk_log_path(&k),
            "cb9/bac/SHA256E-s200000--f57ca603a9f83494e63603993c337f56932d4f13a318bfc6ad9d9a51cdee5cdb.log.cnk"
        );
    }

    #[test]
    fn chunk_log_lines_as_git_annex_writes_them() {
        let u = "794fec3b-bb73-45fb-8f9b-4f11e080df39";
        let text = format!("1796018829s {u}:65536 4\n1796018830s {u}:1024 0\nbad line\n");
        let log = ChunkLog::parse_new(text.as_bytes());
        let uuid = Uuid::parse(u).unwrap();
        assert_eq!(
            current_chunks(&log, &uuid),
            vec![(ChunkMethod::Fixed(65536), 4)]
        );
        // Fields in order (the smaller chunk size first), unparsed kept.
        assert_eq!(
            String::from_utf8(log.write_new()).unwrap(),
            format!("1796018830s {u}:1024 0\n1796018829s {u}:65536 4\nbad line\n")
        );
    }

    #[test]
    fn only_directory_remotes_without_encryption() {
        let dir = tempfile::tempdir().unwrap();
        annex_test_support::git(dir.path(), &["init", "-q"]);
        let branch = Arc::new(Mutex::new(Branch::open(dir.path()).unwrap()));
        let u = Uuid::parse("794fec3b-bb73-45fb-8f9b-4f11e080df39").unwrap();
        let open = |c: &[(&str, &str)]| {
            DirectoryRemote::from_config(
                u.clone(),
                &cfg(c),
                Some(dir.path().to_owned()),
                0,
                branch.clone(),
            )
            .map(|_| ())
        };
        assert_eq!(
            open(&[("type", "directory"), ("encryption", "none")]),
            Ok(())
        );
        assert_eq!(
            open(&[("type", "rsync"), ("encryption", "none")]),
            Err(DirectoryError::UnsupportedType("rsync".into()))
        );
        assert_eq!(
            open(&[("type", "directory"), ("encryption", "shared")]),
            Err(DirectoryError::Encrypted("shared".into()))
        );
        assert_eq!(
            open(&[
                ("type", "directory"),
                ("encryption", "none"),
                ("exporttree", "yes")
            ]),
            Err(DirectoryError::ExportTree("exporttree"))
        );
    }

    /// A put source that sends the content from the offset asked for,
    /// and fails after `cut` bytes of the whole content when told to.
    struct Source {
        content: Vec<u8>,
        cut: Option<usize>,
        asked: Option<u64>,
        validity: Validity,
        stream: Option<Cutting>,
    }

    struct Cutting {
        data: Vec<u8>,
        pos: usize,
        fail: bool,
    }

    impl tokio::io::AsyncRead for Cutting {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.pos == self.data.len() {
                if self.fail {
                    return Poll::Ready(Err(io::Error::other("connection lost")));
                }
                return Poll::Ready(Ok(()));
            }
            let n = buf.remaining().min(self.data.len() - self.pos).min(10_000);
            let pos = self.pos;
            buf.put_slice(&self.data[pos..pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    impl Source {
        fn new(content: &[u8]) -> Source {
            Source {
                content: content.to_vec(),
                cut: None,
                asked: None,
                validity: Validity::Valid,
                stream: None,
            }
        }
    }

    #[async_trait]
    impl PutSource for Source {
        async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
            self.asked = Some(offset);
            let from = offset as usize;
            let to = self.cut.unwrap_or(self.content.len());
            self.stream = Some(Cutting {
                data: self.content[from..to].to_vec(),
                pos: 0,
                fail: self.cut.is_some(),
            });
            Ok(PutData::Stream {
                len: (self.content.len() - from) as u64,
                stream: self.stream.as_mut().unwrap(),
            })
        }

        async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
            Ok(Some(self.validity))
        }
    }

    fn content(len: usize) -> Vec<u8> {
        annex_test_support::pseudo_random(len, len as u64)
    }

    fn key_of(c: &[u8]) -> Key {
        Key::parse(&annex_test_support::sha256e_key(c, ".bin")).unwrap()
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        branch: Arc<Mutex<Branch>>,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        fs::create_dir(&repo).unwrap();
        annex_test_support::git(&repo, &["init", "-q"]);
        let dir = tmp.path().join("remote");
        fs::create_dir(&dir).unwrap();
        let branch = Arc::new(Mutex::new(Branch::open(&repo).unwrap()));
        Fixture {
            _tmp: tmp,
            dir,
            branch,
        }
    }

    fn remote(f: &Fixture, chunking: Chunking) -> DirectoryRemote {
        DirectoryRemote::new(
            Uuid::parse("794fec3b-bb73-45fb-8f9b-4f11e080df39").unwrap(),
            f.dir.clone(),
            chunking,
            0,
            f.branch.clone(),
        )
    }

    async fn get_all(r: &DirectoryRemote, k: &Key, offset: u64) -> Option<Vec<u8>> {
        let mut sink = annex_protocol::VecSink::new(1 << 30);
        match r
            .get(k, &AssociatedFile::default(), offset, &mut sink)
            .await
            .unwrap()
        {
            GetOutcome::NotPresent => None,
            GetOutcome::Sent { .. } => {
                assert_eq!(sink.validity(), Some(Validity::Valid));
                Some(sink.into_data())
            }
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        annex_test_support::files_under(dir)
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect()
    }

    #[tokio::test]
    async fn whole_content_stored_found_and_removed_as_git_annex_does() {
        let f = fixture();
        let r = remote(&f, Chunking::None);
        let c = content(100_000);
        let k = key_of(&c);
        let file = AssociatedFile::default();
        assert!(!r.check_present(&k).await.unwrap());
        let out = r.put(&k, &file, &mut Source::new(&c)).await.unwrap();
        assert_eq!(out, PutOutcome::Stored(Vec::new()));
        let f_name = k.to_file_name();
        let d = k.hash_dir_lower();
        assert_eq!(files(&f.dir), vec![format!("{d}{f_name}/{f_name}")]);
        let obj = f.dir.join(&d).join(&f_name);
        assert_eq!(fs::metadata(&obj).unwrap().permissions().mode() & 0o222, 0);
        assert!(r.check_present(&k).await.unwrap());
        assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
        assert_eq!(get_all(&r, &k, 99_000).await.unwrap(), &c[99_000..]);
        assert_eq!(
            r.put(&k, &file, &mut Source::new(&c)).await.unwrap(),
            PutOutcome::AlreadyHave(Vec::new())
        );
        let out = r.remove(&k, None).await.unwrap();
        assert!(out.removed);
        assert!(!r.check_present(&k).await.unwrap());
        // The hash directories went with it; tmp stays.
        let left: Vec<_> = fs::read_dir(&f.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("tmp")]);
        assert!(r.lock_content(&k).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn chunked_content_is_resumed_logged_and_read_back() {
        let f = fixture();
        let r = remote(&f, Chunking::Chunks(65536));
        let c = content(200_000);
        let k = key_of(&c);
        let file = AssociatedFile::default();
        // Interrupted past the first chunk.
        let mut src = Source::new(&c);
        src.cut = Some(100_000);
        assert!(r.put(&k, &file, &mut src).await.is_err());
        assert_eq!(src.asked, Some(0));
        assert!(!r.check_present(&k).await.unwrap());
        // Resumed where it stopped.
        let mut src = Source::new(&c);
        let out = r.put(&k, &file, &mut src).await.unwrap();
        assert_eq!(src.asked, Some(100_000));
        assert_eq!(out, PutOutcome::Stored(Vec::new()));
        let d = k.hash_dir_lower();
        let want: Vec<String> = (1..=4)
            .map(|n| {
                let ck = chunk_key(&k, 65536, n).unwrap().to_file_name();
                format!("{d}{ck}/{ck}")
            })
            .collect();
        assert_eq!(files(&f.dir), want);
        let sizes: Vec<u64> = want
            .iter()
            .map(|p| fs::metadata(f.dir.join(p)).unwrap().len())
            .collect();
        assert_eq!(sizes, vec![65536, 65536, 65536, 3392]);
        let log = f.branch.lock().unwrap().read(&chunk_log_path(&k)).unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(
            log.ends_with(" 794fec3b-bb73-45fb-8f9b-4f11e080df39:65536 4\n"),
            "{log}"
        );
        assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
        assert_eq!(get_all(&r, &k, 70_000).await.unwrap(), &c[70_000..]);
        // Without chunking configured, the chunk log still finds it.
        let plain = remote(&f, Chunking::None);
        assert!(plain.check_present(&k).await.unwrap());
        assert_eq!(get_all(&plain, &k, 0).await.unwrap(), c);
        assert!(r.remove(&k, None).await.unwrap().removed);
        assert!(files(&f.dir).is_empty());
        assert!(!r.check_present(&k).await.unwrap());
        let log = f.branch.lock().unwrap().read(&chunk_log_path(&k)).unwrap();
        assert!(String::from_utf8(log).unwrap().ends_with(":65536 0\n"));
    }

    #[tokio::test]
    async fn empty_and_exact_multiple_contents_in_chunks() {
        let f = fixture();
        let r = remote(&f, Chunking::Chunks(65536));
        let file = AssociatedFile::default();
        for len in [0usize, 65536, 131072, 1] {
            let c = content(len);
            let k = key_of(&c);
            let out = r.put(&k, &file, &mut Source::new(&c)).await.unwrap();
            assert_eq!(out, PutOutcome::Stored(Vec::new()), "{len}");
            assert_eq!(get_all(&r, &k, 0).await.unwrap(), c, "{len}");
            let n = chunk_count(len as u64, 65536);
            for i in 1..=n {
                let ck = chunk_key(&k, 65536, i).unwrap();
                assert!(r.first_existing(&ck).unwrap().is_some(), "{len} {i}");
            }
            assert!(r
                .first_existing(&chunk_key(&k, 65536, n + 1).unwrap())
                .unwrap()
                .is_none());
        }
    }

    #[tokio::test]
    async fn legacy_chunks_written_and_read() {
        let f = fixture();
        let r = remote(&f, Chunking::Legacy(65536));
        let c = content(140_000);
        let k = key_of(&c);
        let file = AssociatedFile::default();
        let out = r.put(&k, &file, &mut Source::new(&c)).await.unwrap();
        assert_eq!(out, PutOutcome::Stored(Vec::new()));
        let d = format!("{}{}", k.hash_dir_lower(), k.to_file_name());
        let fname = k.to_file_name();
        let mut want: Vec<String> = (1..=3).map(|n| format!("{d}/{fname}.chunk{n}")).collect();
        want.push(format!("{d}/{fname}.chunkcount"));
        assert_eq!(files(&f.dir), want);
        assert_eq!(
            fs::read_to_string(f.dir.join(&d).join(format!("{fname}.chunkcount"))).unwrap(),
            "3"
        );
        assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
        assert!(r.remove(&k, None).await.unwrap().removed);
        assert!(files(&f.dir).is_empty());
    }

    #[tokio::test]
    async fn wrong_content_is_refused_and_leaves_nothing() {
        let f = fixture();
        for chunking in [
            Chunking::None,
            Chunking::Chunks(65536),
            Chunking::Legacy(65536),
        ] {
            let r = remote(&f, chunking);
            let c = content(150_000);
            let k = key_of(&c);
            let mut wrong = c.clone();
            wrong[140_000] ^= 1;
            let out = r
                .put(&k, &AssociatedFile::default(), &mut Source::new(&wrong))
                .await
                .unwrap();
            assert_eq!(out, PutOutcome::NotStored, "{chunking:?}");
            assert!(
                files(&f.dir).is_empty(),
                "{chunking:?}: {:?}",
                files(&f.dir)
            );
            assert!(!r.check_present(&k).await.unwrap());
            // A size that is not the key's is refused before anything is
            // written.
            let out = r
                .put(&k, &AssociatedFile::default(), &mut Source::new(&c[..10]))
                .await
                .unwrap();
            assert_eq!(out, PutOutcome::NotStored);
            assert!(files(&f.dir).is_empty());
        }
    }

    #[tokio::test]
    async fn disk_reserve_is_kept_on_the_remote_filesystem() {
        let f = fixture();
        let r = DirectoryRemote::new(
            Uuid::parse("794fec3b-bb73-45fb-8f9b-4f11e080df39").unwrap(),
            f.dir.clone(),
            Chunking::None,
            u64::MAX / 2,
            f.branch.clone(),
        );
        let c = content(1000);
        let k = key_of(&c);
        let err = r
            .put(&k, &AssociatedFile::default(), &mut Source::new(&c))
            .await
            .unwrap_err();
        assert!(is_full(&err), "{err}");
        assert!(files(&f.dir).is_empty());
    }

    fn is_full(e: &RepoError) -> bool {
        matches!(e, RepoError::Io(io) if io.kind() == io::ErrorKind::StorageFull)
    }

    /// A key without a size is checked against the length its sender
    /// announces, and receives in progress into the remote count.
    #[tokio::test]
    async fn disk_reserve_holds_for_keys_without_a_size() {
        let f = fixture();
        // Room for a quarter of what is free now: far more than other
        // programs write meanwhile.
        let room = annex_repo::free_space(&f.dir).unwrap() / 4;
        let reserve = annex_repo::free_space(&f.dir).unwrap() - room;
        for chunking in [Chunking::None, Chunking::Chunks(1 << 20)] {
            let r = DirectoryRemote::new(
                Uuid::parse("794fec3b-bb73-45fb-8f9b-4f11e080df39").unwrap(),
                f.dir.clone(),
                chunking,
                reserve,
                f.branch.clone(),
            );
            let k = Key::parse("WORM--big").unwrap();
            let mut source = annex_protocol::BytesSource::new(&b"x"[..]).announcing(2 * room);
            let err = r
                .put(&k, &AssociatedFile::default(), &mut source)
                .await
                .unwrap_err();
            assert!(is_full(&err), "{chunking:?}: {err}");
            assert!(files(&f.dir.join("tmp")).is_empty(), "{chunking:?}");

            // 60% of the room is claimed by a receive in progress (another
            // process's: a lock on its temporary path and its claim).
            let other = r.tmp_dir(&Key::parse("WORM--other").unwrap());
            let lock = ReceiveLock::take(&other).unwrap().unwrap();
            lock.claim_space(room / 10 * 6, 0, None).unwrap();
            let mut source = annex_protocol::BytesSource::new(&b"x"[..]).announcing(room / 10 * 6);
            let err = r
                .put(&k, &AssociatedFile::default(), &mut source)
                .await
                .unwrap_err();
            assert!(is_full(&err), "{chunking:?}: {err}");
            drop(lock);
            // Alone, it fits (and fails only for want of the bytes
            // announced).
            let mut source = annex_protocol::BytesSource::new(&b"x"[..]).announcing(room / 10 * 6);
            let err = r
                .put(&k, &AssociatedFile::default(), &mut source)
                .await
                .unwrap_err();
            assert!(!is_full(&err), "{chunking:?}: {err}");
            let _ = fs::remove_dir_all(f.dir.join("tmp"));
        }
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error_not_absence() {
        let f = fixture();
        let mut r = remote(&f, Chunking::None);
        r = DirectoryRemote::new(
            r.uuid().clone(),
            f.dir.join("unmounted"),
            Chunking::None,
            0,
            f.branch.clone(),
        );
        let k = key_of(b"x");
        let err = r.check_present(&k).await.unwrap_err();
        assert!(err.to_string().contains("is not accessible"), "{err}");
        assert!(r.remove(&k, None).await.is_err());
    }

    #[tokio::test]
    async fn chunks_an_interrupted_store_left_in_place_are_resumed_from() {
        let f = fixture();
        let r = remote(&f, Chunking::Chunks(65536));
        let c = content(200_000);
        let k = key_of(&c);
        let file = AssociatedFile::default();
        r.put(&k, &file, &mut Source::new(&c)).await.unwrap();
        // As git-annex leaves an interrupted store: the first chunks in
        // place, the rest missing, nothing logged.
        for n in [3, 4] {
            let ck = chunk_key(&k, 65536, n).unwrap();
            remove_dir_generic(false, &f.dir, &r.store_dir(&ck).unwrap()).unwrap();
        }
        let empty = f
            .branch
            .lock()
            .unwrap()
            .change(&chunk_log_path(&k), |_| Some(Vec::new()));
        assert!(empty.unwrap());
        assert!(!r.check_present(&k).await.unwrap());
        let mut src = Source::new(&c);
        assert_eq!(
            r.put(&k, &file, &mut src).await.unwrap(),
            PutOutcome::Stored(Vec::new())
        );
        assert_eq!(src.asked, Some(131_072));
        assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);

        // A damaged chunk in place fails the upload once, and goes.
        for n in [3, 4] {
            let ck = chunk_key(&k, 65536, n).unwrap();
            remove_dir_generic(false, &f.dir, &r.store_dir(&ck).unwrap()).unwrap();
        }
        let c1 = r
            .first_existing(&chunk_key(&k, 65536, 1).unwrap())
            .unwrap()
            .unwrap();
        allow_write(c1.parent().unwrap()).unwrap();
        allow_write(&c1).unwrap();
        let mut damaged = fs::read(&c1).unwrap();
        damaged[5] ^= 1;
        fs::write(&c1, damaged).unwrap();
        let mut src = Source::new(&c);
        assert_eq!(
            r.put(&k, &file, &mut src).await.unwrap(),
            PutOutcome::NotStored
        );
        assert!(files(&f.dir).is_empty(), "{:?}", files(&f.dir));
        let mut src = Source::new(&c);
        assert_eq!(
            r.put(&k, &file, &mut src).await.unwrap(),
            PutOutcome::Stored(Vec::new())
        );
        assert_eq!(src.asked, Some(0));
        assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
    }
}
