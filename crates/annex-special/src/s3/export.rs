//! An S3 remote with `exporttree=yes`: each exported file one object,
//! named `fileprefix` followed by its path in the tree, as git-annex's
//! S3 remote names exported objects (its `bucketExportLocation`); the
//! annexobjects copies are files of the tree too
//! (`fileprefix.git/annex/objects/…`).
//!
//! A file becomes visible only once its content was verified: the last
//! piece written is held back (and a multipart upload is completed) until
//! the commit; a pending store dropped without one breaks its request
//! off or aborts its upload, and S3 stores nothing of it. S3 cannot
//! rename, so [`rename`](ExportStore::rename) declines and the export
//! layer copies (verified) and removes, as git-annex copies and deletes.
//! As git-annex does for export buckets, the `annex-uuid` object is
//! neither written nor checked.

use std::io;

use annex_protocol::{Key, RepoError};
use async_trait::async_trait;
use bytes::Bytes;

use super::read::ObjectsStream;
use super::store::Writer;
use super::S3Remote;
use crate::export::{ExportPath, ExportStore, PendingStore, Retrieved};

/// The files of a tree exported to an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Export {
    remote: S3Remote,
}

impl S3Export {
    /// The export store of `remote` (opened from a configuration with
    /// `exporttree=yes`).
    pub fn new(remote: S3Remote) -> S3Export {
        S3Export { remote }
    }

    /// The object holding the file at `path`.
    pub fn object(&self, path: &ExportPath) -> Result<String, RepoError> {
        let p = std::str::from_utf8(path.as_bytes()).map_err(|_| {
            RepoError::Other(format!(
                "S3 remote {}: {path} is not UTF-8 and cannot name an object",
                self.remote.config().name
            ))
        })?;
        Ok(format!("{}{p}", self.remote.config().fileprefix))
    }
}

/// Content being written to an object, its last piece held back until
/// the commit.
struct S3Pending {
    remote: S3Remote,
    name: String,
    len: u64,
    runtime: tokio::runtime::Handle,
    /// Started with the first piece sent (never for empty content before
    /// the commit, as an empty PUT would at once make the object).
    writer: Option<Writer>,
    /// The last piece written, not yet sent.
    held: Option<Bytes>,
}

impl S3Pending {
    async fn send(&mut self, piece: Bytes) -> Result<(), RepoError> {
        if self.writer.is_none() {
            let part = self.remote.config().part_size_for(self.len);
            let w = Writer::start(self.remote.store(), part, &self.name, self.len)
                .await
                .map_err(|e| self.remote.failed(e))?;
            self.writer = Some(w);
        }
        if let Some(w) = self.writer.as_mut() {
            w.write(piece).await.map_err(|e| self.remote.failed(e))?;
        }
        Ok(())
    }
}

impl Drop for S3Pending {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            // Not committed: the request is broken off, or the upload
            // aborted, and nothing of the object is stored.
            self.runtime.spawn(w.abort());
        }
    }
}

#[async_trait]
impl PendingStore for S3Pending {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let previous = self.held.replace(Bytes::copy_from_slice(bytes));
        if let Some(piece) = previous {
            let runtime = self.runtime.clone();
            runtime
                .block_on(self.send(piece))
                .map_err(io::Error::other)?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), RepoError> {
        if let Some(piece) = self.held.take() {
            self.send(piece).await?;
        }
        let writer = match self.writer.take() {
            Some(w) => w,
            None => Writer::start(self.remote.store(), None, &self.name, 0)
                .await
                .map_err(|e| self.remote.failed(e))?,
        };
        writer.finish().await.map_err(|e| self.remote.failed(e))
    }
}

#[async_trait]
impl ExportStore for S3Export {
    async fn check_present(&self, _key: &Key, path: &ExportPath) -> Result<bool, RepoError> {
        let name = self.object(path)?;
        let found = self.remote.store().head(&name).await;
        Ok(found.map_err(|e| self.remote.failed(e))?.is_some())
    }

    async fn start_store(
        &self,
        _key: &Key,
        path: &ExportPath,
        len: u64,
    ) -> Result<Box<dyn PendingStore>, RepoError> {
        Ok(Box::new(S3Pending {
            remote: self.remote.clone(),
            name: self.object(path)?,
            len,
            runtime: tokio::runtime::Handle::current(),
            writer: None,
            held: None,
        }))
    }

    async fn retrieve(
        &self,
        _key: &Key,
        path: &ExportPath,
        offset: u64,
    ) -> Result<Option<Retrieved>, RepoError> {
        let name = self.object(path)?;
        let store = self.remote.store();
        let Some(info) = store.head(&name).await.map_err(|e| self.remote.failed(e))? else {
            return Ok(None);
        };
        let from = offset.min(info.len);
        let len = info.len - from;
        Ok(Some(Retrieved {
            len,
            stream: Box::new(ObjectsStream::one(store.clone(), name, from, len)),
        }))
    }

    async fn remove(&self, _key: &Key, path: &ExportPath) -> Result<(), RepoError> {
        let name = self.object(path)?;
        self.remote
            .store()
            .delete(&name)
            .await
            .map_err(|e| self.remote.failed(e))
    }

    async fn rename(
        &self,
        _key: &Key,
        _from: &ExportPath,
        _to: &ExportPath,
    ) -> Result<bool, RepoError> {
        // S3 has no rename: the export layer copies and removes.
        Ok(false)
    }
}
