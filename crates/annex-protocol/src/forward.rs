//! A base for [`Repository`] wrappers: a type that implements [`Forward`]
//! is a [`Repository`] that passes every call to the repository it wraps
//! ([`Forward::inner`]), except the ones it writes itself, as a tower
//! layer's service writes only what it changes.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use annex_protocol::repository::{PutOutcome, PutSource};
//! use annex_protocol::{
//!     AssociatedFile, BytesSource, Forward, Key, MemoryRepository, RepoError, Repository,
//! };
//! use async_trait::async_trait;
//!
//! /// Counts the uploads to a repository; everything else goes through.
//! struct CountingPuts {
//!     inner: MemoryRepository,
//!     puts: AtomicU64,
//! }
//!
//! #[async_trait]
//! impl Forward for CountingPuts {
//!     fn inner(&self) -> &dyn Repository {
//!         &self.inner
//!     }
//!
//!     async fn put(
//!         &self,
//!         key: &Key,
//!         file: &AssociatedFile,
//!         source: &mut dyn PutSource,
//!     ) -> Result<PutOutcome, RepoError> {
//!         self.puts.fetch_add(1, Ordering::Relaxed);
//!         self.inner.put(key, file, source).await
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let counting = CountingPuts {
//!     inner: MemoryRepository::new(annex_protocol::Uuid::new_v4()),
//!     puts: AtomicU64::new(0),
//! };
//! let repo: &dyn Repository = &counting;
//! let key = Key::parse("WORM-s5--hello")?;
//! let mut source = BytesSource::new(&b"hello"[..]);
//! repo.put(&key, &AssociatedFile::none(), &mut source).await?;
//! assert_eq!(counting.puts.load(Ordering::Relaxed), 1);
//! // Not written by the wrapper: passed through.
//! assert!(repo.check_present(&key).await?);
//! assert_eq!(repo.uuid(), counting.inner.uuid());
//! # Ok(())
//! # }
//! ```

use async_trait::async_trait;

use crate::key::Key;
use crate::message::AssociatedFile;
use crate::repository::{
    ContentLock, GetOutcome, GetSink, PutOutcome, PutSource, RemoveOutcome, RepoError, Repository,
};
use crate::uuid::Uuid;

/// A [`Repository`] that wraps another: each method, unless the wrapper
/// writes it, calls the same method of [`inner`](Forward::inner). Every
/// type that implements `Forward` is a [`Repository`] with these methods.
#[async_trait]
pub trait Forward: Send + Sync {
    /// The wrapped repository.
    fn inner(&self) -> &dyn Repository;

    /// [`Repository::uuid`]: the wrapped repository's.
    fn uuid(&self) -> &Uuid {
        self.inner().uuid()
    }

    /// [`Repository::check_present`].
    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        self.inner().check_present(key).await
    }

    /// [`Repository::lock_content`].
    async fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, RepoError> {
        self.inner().lock_content(key).await
    }

    /// [`Repository::remove`].
    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        self.inner().remove(key, before).await
    }

    /// [`Repository::get_timestamp`].
    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        self.inner().get_timestamp().await
    }

    /// [`Repository::get`].
    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        self.inner().get(key, file, offset, sink).await
    }

    /// [`Repository::put`].
    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        self.inner().put(key, file, source).await
    }

    /// [`Repository::bypass`]: the wrapped repository's view (not
    /// wrapped).
    fn bypass(&self, gateways: &[Uuid]) -> Option<Box<dyn Repository>> {
        self.inner().bypass(gateways)
    }
}

#[async_trait]
impl<T: Forward> Repository for T {
    fn uuid(&self) -> &Uuid {
        Forward::uuid(self)
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        Forward::check_present(self, key).await
    }

    async fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, RepoError> {
        Forward::lock_content(self, key).await
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        Forward::remove(self, key, before).await
    }

    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        Forward::get_timestamp(self).await
    }

    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        Forward::get(self, key, file, offset, sink).await
    }

    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        Forward::put(self, key, file, source).await
    }

    fn bypass(&self, gateways: &[Uuid]) -> Option<Box<dyn Repository>> {
        Forward::bypass(self, gateways)
    }
}
