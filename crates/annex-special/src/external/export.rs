//! An external special remote with `exporttree=yes` as an
//! [`ExportStore`]: each request is the protocol's export request for
//! the path (EXPORT, then TRANSFEREXPORT, CHECKPRESENTEXPORT,
//! REMOVEEXPORT or RENAMEEXPORT, naming the key the path holds).
//!
//! Content goes through files of the gateway's, in
//! `GIT_DIR/annex/tmp/external/export/`: an upload is written into one
//! temporary file as it arrives (the export layer verifies it against its
//! key on the way, annex.diskreserve is claimed before and checked again
//! as it grows) and only a verified, complete file is handed to the
//! remote (TRANSFEREXPORT STORE at commit). A retrieve asks the remote for
//! the file into a new temporary file, checks it against the key, and
//! serves that file; content that is not the key's is never served.
//!
//! The remote itself decides what becomes visible at a path while it
//! stores (git-annex's protocol asks remotes not to expose partial
//! files). Directories a removal leaves empty are the remote's business:
//! REMOVEEXPORTDIRECTORY removes a directory with all it holds, so it is
//! not sent here.

use std::fs;
use std::io::{self, Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use annex_protocol::{Key, RepoError};
use annex_repo::read::FileStream;
use annex_repo::ReceiveLock;
use async_trait::async_trait;

use super::{verify_file, ExternalRemote};
use crate::export::{ExportPath, ExportStore, PendingStore, Retrieved};

/// How many bytes are written between two checks of the free space.
const CHECK_EVERY: u64 = 64 << 20;

/// Temporary files of this process, numbered.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

fn blocking_err(e: tokio::task::JoinError) -> RepoError {
    RepoError::context("background task failed", e)
}

/// An external special remote's exported tree.
#[derive(Debug, Clone)]
pub struct ExternalExport {
    remote: ExternalRemote,
}

/// A temporary file with its receive lock (which counts it against
/// annex.diskreserve), removed when dropped.
struct TmpFile {
    path: PathBuf,
    lock: Option<ReceiveLock>,
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        self.lock = None;
    }
}

impl ExternalExport {
    /// The exported tree of `remote`.
    pub fn new(remote: ExternalRemote) -> ExternalExport {
        ExternalExport { remote }
    }

    /// The remote.
    pub fn remote(&self) -> &ExternalRemote {
        &self.remote
    }

    /// A new temporary file's name, locked, with `need` bytes claimed;
    /// the file itself is not created.
    fn tmp(&self, need: u64) -> Result<TmpFile, RepoError> {
        let inner = &self.remote.inner;
        let dir = inner.git_dir.join("annex/tmp/external/export");
        fs::create_dir_all(&dir)?;
        let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}-{n}", std::process::id()));
        let lock = ReceiveLock::take(&path)?
            .ok_or_else(|| RepoError::Other("temporary file in use".into()))?;
        // Whatever an earlier process left under this name goes.
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        lock.claim_space(need, inner.disk_reserve, Some(&inner.git_dir))?;
        Ok(TmpFile {
            path,
            lock: Some(lock),
        })
    }
}

/// The protocol carries a path as text.
fn name(path: &ExportPath) -> Result<String, RepoError> {
    std::str::from_utf8(path.as_bytes())
        .map(str::to_owned)
        .map_err(|_| {
            RepoError::Other(format!(
                "{path} is not UTF-8, which the external protocol cannot carry"
            ))
        })
}

/// Content being written for an external remote's exported file.
struct ExternalPending {
    remote: ExternalRemote,
    key: Key,
    name: String,
    len: u64,
    written: u64,
    checked_at: u64,
    file: Option<fs::File>,
    tmp: TmpFile,
}

#[async_trait]
impl PendingStore for ExternalPending {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Err(io::Error::other("already committed"));
        };
        f.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if self.written - self.checked_at >= CHECK_EVERY {
            self.checked_at = self.written;
            if let Some(l) = &self.tmp.lock {
                let inner = &self.remote.inner;
                l.claim_space(
                    self.len.saturating_sub(self.written),
                    inner.disk_reserve,
                    Some(&inner.git_dir),
                )
                .map_err(|e| match e {
                    RepoError::Io(e) => e,
                    e => io::Error::other(e.to_string()),
                })?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), RepoError> {
        if let Some(f) = self.file.take() {
            tokio::task::spawn_blocking(move || f.sync_all())
                .await
                .map_err(blocking_err)??;
        }
        self.remote
            .store_export(&self.key, &self.name, &self.tmp.path)
            .await?;
        // The temporary file goes when `self` is dropped.
        Ok(())
    }
}

#[async_trait]
impl ExportStore for ExternalExport {
    async fn check_present(&self, key: &Key, path: &ExportPath) -> Result<bool, RepoError> {
        Ok(self.remote.check_present_export(key, &name(path)?).await?)
    }

    async fn start_store(
        &self,
        key: &Key,
        path: &ExportPath,
        len: u64,
    ) -> Result<Box<dyn PendingStore>, RepoError> {
        let name = name(path)?;
        let this = self.clone();
        let (tmp, file) = tokio::task::spawn_blocking(move || -> Result<_, RepoError> {
            let tmp = this.tmp(len)?;
            let file = fs::File::create(&tmp.path)?;
            Ok((tmp, file))
        })
        .await
        .map_err(blocking_err)??;
        Ok(Box::new(ExternalPending {
            remote: self.remote.clone(),
            key: key.clone(),
            name,
            len,
            written: 0,
            checked_at: 0,
            file: Some(file),
            tmp,
        }))
    }

    async fn retrieve(
        &self,
        key: &Key,
        path: &ExportPath,
        offset: u64,
    ) -> Result<Option<Retrieved>, RepoError> {
        let name = name(path)?;
        let this = self.clone();
        let need = key.size().unwrap_or(0);
        // The file is not created here: the remote writes it.
        let tmp = tokio::task::spawn_blocking(move || this.tmp(need))
            .await
            .map_err(blocking_err)??;
        if let Err(e) = self
            .remote
            .transfer_export(super::Direction::Retrieve, key, &name, &tmp.path)
            .await
        {
            // A file that is not there is none; a failure to read one
            // that is, an error.
            return match self.remote.check_present_export(key, &name).await {
                Ok(false) => Ok(None),
                _ => Err(e.into()),
            };
        }
        if let Err(why) = verify_file(key, &tmp.path).await {
            // Not the key's content: served nowhere.
            tracing::warn!(remote = %self.remote.inner.label, path = %path, "{why}");
            return Ok(None);
        }
        let opened = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let mut file = fs::File::open(&tmp.path)?;
            let total = file.metadata()?.len();
            let from = offset.min(total);
            file.seek(io::SeekFrom::Start(from))?;
            // The open file is read after its name is gone.
            drop(tmp);
            Ok((file, total - from))
        })
        .await
        .map_err(blocking_err)??;
        let (file, len) = opened;
        Ok(Some(Retrieved {
            len,
            stream: Box::new(FileStream::start(file, len)),
        }))
    }

    async fn remove(&self, key: &Key, path: &ExportPath) -> Result<(), RepoError> {
        Ok(self.remote.remove_export(key, &name(path)?).await?)
    }

    async fn rename(
        &self,
        key: &Key,
        from: &ExportPath,
        to: &ExportPath,
    ) -> Result<bool, RepoError> {
        let renamed = self
            .remote
            .rename_export(key, &name(from)?, &name(to)?)
            .await?;
        Ok(renamed.is_some())
    }
}
