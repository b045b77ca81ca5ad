//! A git-annex `type=directory` special remote (`encryption=none`) as a
//! [`Repository`], laid out on disk exactly as git-annex lays it out, so
//! that git-annex and this program can both use one such remote.
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
//!   of the using repository's git-annex branch (`xxx/yyy/KEY.log.cnk`, lines
//!   `CLOCK UUID:CHUNKSIZE COUNT`). Content is found under any chunk size
//!   the log records for the remote, unchunked, and (when the log does
//!   not know it) under the configured chunk size, as git-annex looks.
//! - With the deprecated `chunksize=SIZE`, content is the files
//!   `DIR/xxx/yyy/KEY/KEY.chunkN` with their count in `KEY.chunkcount`.
//!
//! Received content is verified against its key as it streams in (with
//! annex-repo's verifier), an interrupted upload resumes from what reached
//! the temporary files, and annex.diskreserve of the using repository is kept free
//! on the remote's filesystem. Content cannot be locked (git-annex answers
//! FAILURE to LOCKCONTENT for a special remote it proxies), and the clock
//! is this machine's.
//!
//! Within: `store` lays a put's content out and moves it into place,
//! `read` reads stored pieces back as one stream; [`crate::chunk`] names
//! chunks and reads and writes the chunk log.

mod export;
mod read;
mod store;

pub use export::DirectoryExport;

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use annex_branch::logs::remote_config::RemoteConfig;
use annex_branch::Branch;
use annex_protocol::repository::{
    ContentLock, GetOutcome, GetSink, PutData, PutOutcome, PutSource, RemoveOutcome, Repository,
    Validity,
};
use annex_protocol::{AssociatedFile, Key, RepoError, Uuid};
use annex_repo::{monotonic_seconds, receive_verified, ReceiveLock};
use async_trait::async_trait;

use crate::chunk::{
    chunk_key, is_stable_key, layouts, non_chunk_key, recorded_chunks, Chunking,
    Layout as Candidate,
};
use crate::{Setup, SpecialError};
use read::{stamp, Concat, FilesStream};
use store::{remove_dir_generic, Layout, PieceWriter, Plan};

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

impl std::fmt::Debug for DirectoryRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryRemote")
            .field("uuid", &self.inner.uuid)
            .field("dir", &self.inner.dir)
            .field("chunking", &self.inner.chunking)
            .field("disk_reserve", &self.inner.disk_reserve)
            .finish_non_exhaustive()
    }
}

fn blocking_err(e: tokio::task::JoinError) -> RepoError {
    RepoError::context("background task failed", e)
}

/// The directory of a directory remote: git config's
/// (`remote.NAME.annex-directory`), or else the `directory=` an older
/// git-annex recorded in remote.log, relative to `setup.work`.
fn directory_setting(config: &RemoteConfig, setup: &Setup) -> Result<PathBuf, SpecialError> {
    setup
        .git("annex-directory")
        .or_else(|| config.get("directory"))
        .filter(|d| !d.is_empty())
        .map(|d| setup.work.join(d))
        .ok_or(SpecialError::Missing("directory"))
}

/// A directory remote with `exporttree=yes` (see [`crate::export`]): its
/// directory found as [`DirectoryRemote::open`] finds it, annex.diskreserve
/// kept on its filesystem.
pub fn open_export(
    config: &RemoteConfig,
    setup: Setup,
    annex_objects: bool,
) -> Result<crate::export::ExportRemote, SpecialError> {
    let dir = directory_setting(config, &setup)?;
    let git_dir = setup
        .branch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .git_dir()
        .to_owned();
    let store = DirectoryExport::new(dir, setup.disk_reserve, Some(git_dir));
    Ok(crate::export::ExportRemote::new(
        setup.uuid,
        Arc::new(store),
        annex_objects,
        setup.branch,
    ))
}

impl DirectoryRemote {
    /// A directory remote with UUID `uuid` at `dir`, splitting content as
    /// `chunking` says, keeping `disk_reserve` bytes free on the
    /// directory's filesystem, and recording chunks in `branch` (the
    /// using repository's).
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

    /// The remote described by its configuration in remote.log (of type
    /// `directory`, with no setting [`crate::check_supported`] refuses),
    /// as `setup` says: at the directory of git config
    /// (`remote.NAME.annex-directory`), or else at the `directory=` an
    /// older git-annex recorded in remote.log, relative to `setup.work`.
    pub fn open(config: &RemoteConfig, setup: Setup) -> Result<DirectoryRemote, SpecialError> {
        match config.get("type") {
            Some("directory") => {}
            Some(other) => return Err(SpecialError::UnsupportedType(other.to_owned())),
            None => return Err(SpecialError::MissingType),
        }
        crate::check_supported(config)?;
        let chunking = Chunking::from_config(config)?;
        let dir = directory_setting(config, &setup)?;
        Ok(DirectoryRemote::new(
            setup.uuid,
            dir,
            chunking,
            setup.disk_reserve,
            setup.branch,
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
    /// keeping the using repository's annex.diskreserve free on the
    /// directory's filesystem after the other receives in progress into
    /// it and, when that repository's annex is on the same filesystem,
    /// into that repository (git-annex's checkDiskSpaceDirectory).
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

    /// Records in the using repository's chunk log that this remote holds `count`
    /// chunks of `size` of the key (0: no longer holds them).
    fn log_chunks(&self, key: &Key, size: u64, count: u64) -> Result<(), RepoError> {
        crate::chunk::log_chunks(&self.inner.branch, &self.inner.uuid, key, size, count)
    }

    /// The lists of files that may hold a key's content, in the order
    /// git-annex tries them: without chunking configured, the unchunked
    /// file then what the chunk log records; with chunks configured, what
    /// the chunk log records, the unchunked file, then the configured
    /// chunk size when the log does not record it.
    fn candidates(&self, key: &Key, chunk_size: Option<u64>) -> Result<Vec<Candidate>, RepoError> {
        let recorded = recorded_chunks(&self.inner.branch, &self.inner.uuid, key)?;
        Ok(layouts(&recorded, key, chunk_size))
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
                        logged: false,
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
    use super::store::allow_write;
    use super::*;
    use crate::chunk::{chunk_count, chunk_log_path};
    use std::io;
    use std::os::unix::fs::PermissionsExt;
    use std::task::{Context, Poll};

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
