//! An in-memory [`Repository`], for tests, examples and benchmarks.
//!
//! It keeps content in memory, resumes interrupted puts from what it
//! already received, checks sizes against the key's `-s` field (it does not
//! hash), discards content sent as INVALID, refuses to remove locked
//! content, and honours REMOVE-BEFORE with a monotonic clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use crate::key::Key;
use crate::message::AssociatedFile;
use crate::repository::{
    ContentLock, GetOutcome, GetSink, PutOutcome, PutSource, RemoveOutcome, RepoError, Repository,
    Validity,
};
use crate::uuid::Uuid;

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Bytes>,
    /// Partially received content, by key.
    partial: HashMap<Key, Vec<u8>>,
    locks: HashMap<Key, usize>,
}

/// A repository held in memory.
#[derive(Clone)]
pub struct MemoryRepository {
    uuid: Uuid,
    state: Arc<Mutex<State>>,
    epoch: Instant,
}

impl MemoryRepository {
    /// An empty repository with the given UUID.
    pub fn new(uuid: Uuid) -> Self {
        MemoryRepository {
            uuid,
            state: Arc::default(),
            epoch: Instant::now(),
        }
    }

    /// Stores content directly.
    pub fn insert(&self, key: Key, content: impl Into<Bytes>) {
        self.state().objects.insert(key, content.into());
    }

    /// The stored content of a key.
    pub fn content(&self, key: &Key) -> Option<Bytes> {
        self.state().objects.get(key).cloned()
    }

    /// The bytes received so far of an interrupted put.
    pub fn partial_len(&self, key: &Key) -> u64 {
        self.state().partial.get(key).map_or(0, |p| p.len() as u64)
    }

    /// Keeps the first `len` bytes of a key's content as a partial upload
    /// and removes the complete content; for testing resumption.
    pub fn truncate_to_partial(&self, key: &Key, len: usize) {
        let mut st = self.state();
        if let Some(c) = st.objects.remove(key) {
            let keep = c[..len.min(c.len())].to_vec();
            st.partial.insert(key.clone(), keep);
        }
    }

    /// Whether the key's content is locked.
    pub fn is_locked(&self, key: &Key) -> bool {
        self.state().locks.get(key).copied().unwrap_or(0) > 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave State inconsistent: every update
        // is a single map operation.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }
}

struct MemoryLock {
    key: Key,
    state: Arc<Mutex<State>>,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = st.locks.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                st.locks.remove(&self.key);
            }
        }
    }
}

#[async_trait]
impl Repository for MemoryRepository {
    fn uuid(&self) -> &Uuid {
        &self.uuid
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        Ok(self.state().objects.contains_key(key))
    }

    async fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, RepoError> {
        let mut st = self.state();
        if !st.objects.contains_key(key) {
            return Ok(None);
        }
        *st.locks.entry(key.clone()).or_default() += 1;
        Ok(Some(ContentLock::new(MemoryLock {
            key: key.clone(),
            state: self.state.clone(),
        })))
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        let now = self.now();
        let mut st = self.state();
        if st.locks.contains_key(key) {
            return Ok(RemoveOutcome::default());
        }
        if let Some(deadline) = before {
            if now >= deadline {
                return Ok(RemoveOutcome::default());
            }
        }
        st.objects.remove(key);
        Ok(RemoveOutcome {
            removed: true,
            also_removed_from: Vec::new(),
        })
    }

    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        Ok(self.now())
    }

    async fn get(
        &self,
        key: &Key,
        _file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        let Some(content) = self.content(key) else {
            return Ok(GetOutcome::NotPresent);
        };
        let start = (offset.min(content.len() as u64)) as usize;
        let mut rest = &content[start..];
        sink.data(rest.len() as u64, &mut rest).await?;
        let accepted = sink.finish(Some(Validity::Valid)).await?;
        Ok(GetOutcome::Sent { accepted })
    }

    async fn put(
        &self,
        key: &Key,
        _file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        if self.state().objects.contains_key(key) {
            return Ok(PutOutcome::AlreadyHave(Vec::new()));
        }
        let mut buf = self.state().partial.remove(key).unwrap_or_default();
        let offset = buf.len() as u64;
        match source.open(offset).await?.into_stream() {
            Some((len, mut data)) => {
                let mut limited = data.stream().take(len);
                let read = limited.read_to_end(&mut buf).await;
                let complete = matches!(read, Ok(n) if n as u64 == len);
                if !complete {
                    // Keep what arrived, for resuming.
                    self.state().partial.insert(key.clone(), buf);
                    read?;
                    return Err(RepoError::Other("content ended early".into()));
                }
            }
            None => {
                return Ok(if self.state().objects.contains_key(key) {
                    PutOutcome::Stored(Vec::new())
                } else {
                    PutOutcome::NotStored
                });
            }
        }
        let validity = source.validity().await?;
        if validity == Some(Validity::Invalid) {
            return Ok(PutOutcome::NotStored);
        }
        if let Some(size) = key.size() {
            if buf.len() as u64 != size {
                return Ok(PutOutcome::NotStored);
            }
        }
        self.state().objects.insert(key.clone(), Bytes::from(buf));
        Ok(PutOutcome::Stored(Vec::new()))
    }
}
