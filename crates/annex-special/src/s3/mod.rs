//! A git-annex `type=S3` special remote (`encryption=none`) as a
//! [`Repository`], its objects named and laid out as git-annex names and
//! lays them out, so that git-annex and this program can both use one
//! bucket; content streamed both ways, never staged on this machine's
//! disk.
//!
//! The modules, each usable alone:
//! - [`config`]: the remote's settings from remote.log, as git-annex
//!   reads them; what this crate cannot honour is refused by name.
//! - [`creds`]: credentials, where git-annex finds them (environment,
//!   `.git/annex/creds/UUID`, `s3creds=` of `embedcreds=yes`).
//! - [`naming`]: object names (`fileprefix` + key, `annex-uuid`), kept
//!   inside the bucket.
//! - [`client`]: the object store: put, get (from an offset), head and
//!   delete of an object named by its path, multipart uploads, buckets;
//!   signed by rusty-s3 (SigV4), sent with hyper. An export layer names
//!   objects by their path in a tree and uses it as it is.
//! - [`export`]: the remote with `exporttree=yes`: files at their
//!   exported paths, one object each.
//! - `store` (the put path) and `read` (the get path) of [`S3Remote`];
//!   `resume`, the put path of unchunked multipart uploads that resume
//!   after an interruption, over `hashstate` (a SHA-256/512 whose state
//!   can be saved).
//!
//! What a put does (see `store`): the content streams from the sender
//! to S3 as it arrives, hashed on the way (once, by the sender, when a
//! cluster gateway hashes for all its nodes), with nothing written to
//! this machine's disk and no more than a few pieces of 256 KiB held in
//! memory. An object becomes visible only once the content is known to
//! match its key: the last piece of the last object is held back until
//! then (a single PUT), or the multipart upload is completed only then;
//! otherwise the request is broken off (S3 stores nothing of an
//! incomplete request) or the upload aborted, and the chunks written
//! before are deleted. Chunked content (`chunk=`) resumes after an
//! interruption from the complete chunks in the bucket, which are read
//! back and hashed so that the whole is still verified end to end.
//! Unchunked content written as a multipart upload, of a SHA-256 or
//! SHA-512 key, resumes after the parts the server acknowledged: the
//! hash state after them is kept with the upload's record in the using
//! repository's `.git/annex/s3-uploads/`, so they need no reading back.
//!
//! A get sends the objects holding the content from the offset asked
//! for, with ranged GETs, as hyper reads them.

pub mod client;
pub mod config;
pub mod creds;
pub mod export;
mod hashstate;
pub mod naming;
mod read;
mod resume;
mod store;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use annex_branch::logs::remote_config::RemoteConfig;
use annex_branch::Branch;
use annex_protocol::repository::{
    ContentLock, GetOutcome, GetSink, PutOutcome, PutSource, RemoveOutcome, Repository,
};
use annex_protocol::{AssociatedFile, Key, RepoError, Uuid};
use annex_repo::monotonic_seconds;
use async_trait::async_trait;

use crate::chunk::{
    chunk_key, layouts, non_chunk_key, recorded_chunks, Chunking, Layout as Candidate,
};
use crate::{Setup, SpecialError};
use client::{AddressPolicy, ObjectStore, S3Error};
use config::{S3Config, Signing};
use naming::Naming;

/// An S3 special remote.
#[derive(Clone)]
pub struct S3Remote {
    inner: Arc<Inner>,
}

struct Inner {
    uuid: Uuid,
    config: S3Config,
    naming: Naming,
    store: ObjectStore,
    branch: Arc<Mutex<Branch>>,
    /// Set once the bucket's `annex-uuid` was found to be this remote's
    /// (or absent).
    uuid_checked: tokio::sync::OnceCell<()>,
    /// Keys being received, one receiver of a key at a time.
    receiving: Mutex<HashSet<Key>>,
}

impl std::fmt::Debug for S3Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Remote")
            .field("uuid", &self.inner.uuid)
            .field("name", &self.inner.config.name)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// Holds a key as being received; released when dropped.
struct Receiving {
    remote: S3Remote,
    key: Key,
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.remote
            .inner
            .receiving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

impl S3Remote {
    /// The remote described by its configuration in remote.log (of type
    /// `S3`, with no setting [`crate::check_supported`] or
    /// [`S3Config::from_remote_config`] refuses), as `setup` says: its
    /// credentials found as git-annex finds them (this process's
    /// environment, then the using repository's `.git/annex/creds/UUID`,
    /// then `s3creds=`), connecting only to addresses the using
    /// repository's `annex.security.allowed-ip-addresses` allows.
    pub fn open(config: &RemoteConfig, setup: Setup) -> Result<S3Remote, SpecialError> {
        let s3 = S3Config::from_remote_config(config)?;
        let git_dir = setup
            .branch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .git_dir()
            .to_owned();
        let creds = match s3.signing {
            Signing::Anonymous => None,
            Signing::V4 => {
                let env = |v: &str| std::env::var(v).ok();
                match creds::find(config, &git_dir, &setup.uuid, &env)? {
                    Some((c, _)) => Some(c),
                    None => {
                        return Err(SpecialError::NoCredentials {
                            remote: s3.name.clone(),
                        })
                    }
                }
            }
        };
        let allowed = annex_repo::config::GitConfig::read(&git_dir)
            .ok()
            .and_then(|c| {
                c.get("annex.security.allowed-ip-addresses")
                    .map(str::to_owned)
            });
        let policy = AddressPolicy::from_setting(allowed.as_deref());
        S3Remote::new(setup.uuid, s3, creds.as_ref(), policy, setup.branch)
    }

    /// The remote `uuid` with settings `config`, reached with `creds`,
    /// connecting where `policy` allows, recording chunks in `branch`
    /// (the using repository's).
    pub fn new(
        uuid: Uuid,
        config: S3Config,
        creds: Option<&creds::Creds>,
        policy: AddressPolicy,
        branch: Arc<Mutex<Branch>>,
    ) -> Result<S3Remote, SpecialError> {
        let naming = Naming::new(&config.fileprefix).map_err(|_| SpecialError::BadSetting {
            field: "fileprefix",
            value: config.fileprefix.clone(),
        })?;
        let store =
            ObjectStore::new(&config, creds, policy).map_err(|e| SpecialError::BadSetting {
                field: "host",
                value: e.to_string(),
            })?;
        Ok(S3Remote {
            inner: Arc::new(Inner {
                uuid,
                config,
                naming,
                store,
                branch,
                uuid_checked: tokio::sync::OnceCell::new(),
                receiving: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The remote's settings.
    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    /// The bucket, as an object store of named objects.
    pub fn store(&self) -> &ObjectStore {
        &self.inner.store
    }

    /// How the remote names its objects.
    pub fn naming(&self) -> &Naming {
        &self.inner.naming
    }

    /// Where the record of an unfinished multipart upload of `key` to
    /// this remote is kept: the using repository's own disk (trusted, as
    /// the branch is not), named by a digest of the UUID and the key.
    fn upload_record_path(&self, key: &Key) -> std::path::PathBuf {
        use sha2::Digest;
        let git_dir = self
            .inner
            .branch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .git_dir()
            .to_owned();
        let mut h = sha2::Sha256::new();
        h.update(self.inner.uuid.as_str().as_bytes());
        h.update([0]);
        h.update(key.to_string().as_bytes());
        let name: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        git_dir.join("annex").join("s3-uploads").join(name)
    }

    /// A failure of the remote, naming it.
    fn failed(&self, e: S3Error) -> RepoError {
        RepoError::context(format!("S3 remote {}", self.inner.config.name), e)
    }

    /// Checks, once, that the bucket's `annex-uuid` object is this
    /// remote's UUID (git-annex writes it when it makes the remote; a
    /// bucket without one is used as it is).
    async fn check_uuid(&self) -> Result<(), RepoError> {
        self.inner
            .uuid_checked
            .get_or_try_init(|| async {
                let name = self.inner.naming.uuid_object();
                match self.inner.store.get_small(&name).await {
                    Err(e) => Err(self.failed(e)),
                    Ok(None) => Ok(()),
                    Ok(Some(b)) if b.as_ref() == self.inner.uuid.as_str().as_bytes() => Ok(()),
                    Ok(Some(b)) => Err(RepoError::Other(format!(
                        "S3 remote {}: the bucket's {name} holds {:?}, not this remote's UUID {}: it is another remote's bucket",
                        self.inner.config.name,
                        String::from_utf8_lossy(&b[..b.len().min(64)]),
                        self.inner.uuid
                    ))),
                }
            })
            .await
            .map(|_| ())
    }

    /// Records in the using repository's chunk log that this remote
    /// holds `count` chunks of `size` of the key (0: no longer).
    fn log_chunks(&self, key: &Key, size: u64, count: u64) -> Result<(), RepoError> {
        crate::chunk::log_chunks(&self.inner.branch, &self.inner.uuid, key, size, count)
    }

    /// The layouts that may hold a key's content, in the order git-annex
    /// tries them: without chunking configured, the unchunked object
    /// then what the chunk log records; with chunks configured, what the
    /// chunk log records, the unchunked object, then the configured
    /// chunk size when the log does not record it.
    fn candidates(&self, key: &Key) -> Result<Vec<Candidate>, RepoError> {
        let recorded = recorded_chunks(&self.inner.branch, &self.inner.uuid, key)?;
        let chunk_size = match self.inner.config.chunking {
            Chunking::Chunks(size) => Some(size),
            _ => None,
        };
        Ok(layouts(&recorded, key, chunk_size))
    }

    /// The objects of a candidate layout, with their sizes when known
    /// from the layout.
    fn objects(&self, key: &Key, c: &Candidate) -> Result<Vec<(String, Option<u64>)>, RepoError> {
        match *c {
            Candidate::Unchunked => Ok(vec![(self.inner.naming.key(key), key.size())]),
            Candidate::Chunks { size, count, .. } => (1..=count)
                .map(|n| {
                    let len = key
                        .size()
                        .map(|total| size.min(total.saturating_sub((n - 1) * size)));
                    Ok((self.inner.naming.key(&chunk_key(key, size, n)?), len))
                })
                .collect(),
        }
    }

    /// Whether the key's content is here and, for chunks the log did not
    /// record, their size and count. Every object of a layout is looked
    /// at with HEAD, as git-annex looks.
    async fn find(&self, key: &Key) -> Result<Option<Found>, RepoError> {
        let key = non_chunk_key(key)?;
        for c in self.candidates(&key)? {
            let mut all = true;
            for (name, _) in self.objects(&key, &c)? {
                match self
                    .inner
                    .store
                    .head(&name)
                    .await
                    .map_err(|e| self.failed(e))?
                {
                    Some(_) => {}
                    None => {
                        all = false;
                        break;
                    }
                }
            }
            if all {
                let unlogged = match c {
                    Candidate::Chunks {
                        size,
                        count,
                        logged: false,
                    } => Some((size, count)),
                    _ => None,
                };
                return Ok(Some(Found { unlogged }));
            }
        }
        Ok(None)
    }
}

/// What holds a key's content in the bucket.
struct Found {
    /// Chunks found that the chunk log did not record: (size, count).
    unlogged: Option<(u64, u64)>,
}

#[async_trait]
impl Repository for S3Remote {
    fn uuid(&self) -> &Uuid {
        &self.inner.uuid
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        self.check_uuid().await?;
        match self.find(key).await? {
            None => Ok(false),
            Some(found) => {
                // Chunks at the configured size that the log did not
                // know are recorded, as the directory remote does.
                if let Some((size, count)) = found.unlogged {
                    self.log_chunks(&non_chunk_key(key)?, size, count)?;
                }
                Ok(true)
            }
        }
    }

    async fn lock_content(&self, _key: &Key) -> Result<Option<ContentLock>, RepoError> {
        // A special remote cannot lock content.
        Ok(None)
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        self.check_uuid().await?;
        if before.is_some_and(|deadline| monotonic_seconds() >= deadline) {
            return Ok(RemoveOutcome::default());
        }
        let key = non_chunk_key(key)?;
        let mut removed_sizes = Vec::new();
        for c in self.candidates(&key)? {
            for (name, _) in self.objects(&key, &c)? {
                self.inner
                    .store
                    .delete(&name)
                    .await
                    .map_err(|e| self.failed(e))?;
            }
            if let Candidate::Chunks { size, .. } = c {
                removed_sizes.push(size);
            }
        }
        for size in removed_sizes {
            self.log_chunks(&key, size, 0)?;
        }
        Ok(RemoveOutcome {
            removed: true,
            also_removed_from: Vec::new(),
        })
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
        self.check_uuid().await?;
        read::get(self, key, offset, sink).await
    }

    async fn put(
        &self,
        key: &Key,
        _file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        self.check_uuid().await?;
        if self.check_present(key).await? {
            return Ok(PutOutcome::AlreadyHave(Vec::new()));
        }
        let key = non_chunk_key(key)?;
        let _receiving = {
            let mut set = self
                .inner
                .receiving
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !set.insert(key.clone()) {
                return Err(RepoError::Refused(format!(
                    "a transfer of {key} is already in progress"
                )));
            }
            Receiving {
                remote: self.clone(),
                key: key.clone(),
            }
        };
        store::put(self, &key, source).await
    }
}

#[cfg(test)]
mod tests;
