//! An [`ExportStore`] with the tree exported to it, as a [`Repository`]
//! that follows git-annex's rules for an exporttree remote behind a
//! gateway (Remote/Helper/ExportImport.hs, Annex/Proxy.hs):
//!
//! - CHECKPRESENT: a file is at one of the key's paths in the exported
//!   tree, or (with annexobjects) at its annexobjects path.
//! - PUT: to the key's paths in the exported tree that lack it; a key
//!   the tree does not have goes to its annexobjects path (without
//!   annexobjects, refused with git-annex's words). Verified before it
//!   is visible.
//! - GET: from a path in the exported tree, else the annexobjects path,
//!   hashed as it is sent; keys whose content cannot be verified (WORM,
//!   URL) are refused, as git-annex refuses them.
//! - REMOVE: the annexobjects copy only; a key in the exported tree is
//!   refused, with git-annex's message.
//!
//! The exported tree is what export.log says (read at each request, so a
//! push that changes it is seen at once), its files read from git once
//! per tree.

use std::sync::{Arc, Mutex};

use annex_branch::logs::export::{self as export_log, EMPTY_TREE};
use annex_branch::logs::paths::EXPORT_LOG;
use annex_branch::Branch;
use annex_protocol::repository::{
    ContentLock, GetOutcome, GetSink, PutData, PutOutcome, PutSource, RemoveOutcome, Repository,
    Validity,
};
use annex_protocol::{AssociatedFile, Key, KeyVariety, RepoError, Uuid};
use annex_repo::monotonic_seconds;
use async_trait::async_trait;
use gix::ObjectId;

use super::path::ExportPath;
use super::tree::{is_git_sha_key, TreeIndex};
use super::verify::{copy_into, receive_into, send_verified, Received};
use super::ExportStore;

fn blocking_err(e: tokio::task::JoinError) -> RepoError {
    RepoError::context("background task failed", e)
}

/// What git-annex answers when a key of the exported tree is to be
/// dropped.
pub(super) const IN_EXPORTED_TREE: &str = "This key is part of the exported tree, so can only be removed by exporting a tree that does not include it.";

/// A special remote with `exporttree=yes`, over any store.
#[derive(Clone)]
pub struct ExportRemote {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) uuid: Uuid,
    pub(super) store: Arc<dyn ExportStore>,
    pub(super) annex_objects: bool,
    pub(super) branch: Arc<Mutex<Branch>>,
    /// The files of the trees last read, by tree.
    trees: Mutex<Vec<Arc<TreeIndex>>>,
}

impl std::fmt::Debug for ExportRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportRemote")
            .field("uuid", &self.inner.uuid)
            .field("store", &self.inner.store)
            .field("annex_objects", &self.inner.annex_objects)
            .finish_non_exhaustive()
    }
}

/// The trees exported to a remote, as export.log says.
#[derive(Clone, Default)]
pub(super) struct Exports {
    /// One normally; several after an export conflict; none before any
    /// export.
    pub(super) trees: Vec<Arc<TreeIndex>>,
}

impl Exports {
    /// The paths of `key` in the exported trees.
    pub(super) fn paths(&self, key: &Key) -> Vec<ExportPath> {
        let mut out: Vec<ExportPath> = Vec::new();
        for t in &self.trees {
            for f in t.files_of(key) {
                if !out.contains(&f.path) {
                    out.push(f.path.clone());
                }
            }
        }
        out
    }

    pub(super) fn conflict(&self) -> bool {
        self.trees.len() > 1
    }
}

impl ExportRemote {
    /// The remote with UUID `uuid` over `store`, keeping content not in
    /// the exported tree at annexobjects paths when `annex_objects`;
    /// `branch` is the using repository's git-annex branch, where
    /// export.log is read and the exported trees are.
    pub fn new(
        uuid: Uuid,
        store: Arc<dyn ExportStore>,
        annex_objects: bool,
        branch: Arc<Mutex<Branch>>,
    ) -> ExportRemote {
        ExportRemote {
            inner: Arc::new(Inner {
                uuid,
                store,
                annex_objects,
                branch,
                trees: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ExportStore> {
        &self.inner.store
    }

    /// Whether content not in the exported tree is kept (annexobjects).
    pub fn annex_objects(&self) -> bool {
        self.inner.annex_objects
    }

    /// The trees export.log says are exported to the remote, as git
    /// object names (several after an export conflict).
    pub fn exported_trees(&self) -> Result<Vec<String>, RepoError> {
        let b = self.inner.branch.lock().unwrap_or_else(|p| p.into_inner());
        let log = b
            .read(EXPORT_LOG)
            .map_err(|e| RepoError::context("reading export.log", e))?;
        Ok(export_log::exported_trees(
            &export_log::parse(&log),
            &self.inner.uuid,
        ))
    }

    /// The files of `tree`, read once and kept while the tree is the one
    /// exported.
    pub(super) fn index(&self, tree: ObjectId) -> Result<Arc<TreeIndex>, RepoError> {
        if let Some(t) = self
            .inner
            .trees
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|t| t.tree() == tree)
        {
            return Ok(t.clone());
        }
        let repo = self
            .inner
            .branch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .repo()
            .clone();
        let index = Arc::new(
            TreeIndex::read(&repo, tree).map_err(|e| RepoError::context("the exported tree", e))?,
        );
        let mut trees = self.inner.trees.lock().unwrap_or_else(|p| p.into_inner());
        // The newest few: an export in progress reads the old and the new.
        trees.insert(0, index.clone());
        trees.truncate(3);
        Ok(index)
    }

    /// The trees exported now, with their files (blocking).
    pub(super) fn exports_blocking(&self) -> Result<Exports, RepoError> {
        let mut out = Exports::default();
        for t in self.exported_trees()? {
            if t == EMPTY_TREE {
                continue;
            }
            let id = ObjectId::from_hex(t.as_bytes()).map_err(|_| {
                RepoError::Other(format!("export.log names {t}, which is not a tree"))
            })?;
            out.trees.push(self.index(id)?);
        }
        Ok(out)
    }

    pub(super) async fn exports(&self) -> Result<Exports, RepoError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.exports_blocking())
            .await
            .map_err(blocking_err)?
    }

    /// Whether a file is at one of `paths`, the first found.
    async fn first_present(
        &self,
        key: &Key,
        paths: &[ExportPath],
    ) -> Result<Option<ExportPath>, RepoError> {
        for p in paths {
            if self.inner.store.check_present(key, p).await? {
                return Ok(Some(p.clone()));
            }
        }
        Ok(None)
    }

    /// Whether the key's content is in the remote, given the exports.
    pub(super) async fn present_in(&self, key: &Key, exports: &Exports) -> Result<bool, RepoError> {
        if self
            .first_present(key, &exports.paths(key))
            .await?
            .is_some()
        {
            return Ok(true);
        }
        Ok(self.inner.annex_objects
            && !is_git_sha_key(key)
            && self
                .inner
                .store
                .check_present(key, &ExportPath::annex_object(key))
                .await?)
    }

    /// Copies the key's content, at `from` in the store, to `to`,
    /// verifying it on the way; whether it was the key's.
    pub(super) async fn copy_within(
        &self,
        key: &Key,
        from: &ExportPath,
        to: &ExportPath,
    ) -> Result<bool, RepoError> {
        let Some(mut r) = self.inner.store.retrieve(key, from, 0).await? else {
            return Ok(false);
        };
        copy_into(&*self.inner.store, to, key, r.len, &mut *r.stream).await
    }
}

/// Whether git-annex can verify exported content of a key: keys of hash
/// backends (`isVerifiable`).
fn verifiable(key: &Key) -> bool {
    matches!(key.variety(), KeyVariety::Hash { .. })
}

#[async_trait]
impl Repository for ExportRemote {
    fn uuid(&self) -> &Uuid {
        &self.inner.uuid
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        let exports = self.exports().await?;
        self.present_in(key, &exports).await
    }

    async fn lock_content(&self, _key: &Key) -> Result<Option<ContentLock>, RepoError> {
        // A special remote cannot lock content.
        Ok(None)
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        if before.is_some_and(|deadline| monotonic_seconds() >= deadline) {
            return Ok(RemoveOutcome::default());
        }
        if !self.inner.annex_objects {
            return Err(RepoError::Refused(
                "dropping content from an export is not supported; use `git annex export` to export a tree that lacks the files you want to remove".into(),
            ));
        }
        let exports = self.exports().await?;
        if !exports.paths(key).is_empty() {
            return Err(RepoError::Refused(IN_EXPORTED_TREE.into()));
        }
        if exports.conflict() {
            return Err(RepoError::Refused(
                "Cannot remove content from the remote until the conflict has been resolved."
                    .into(),
            ));
        }
        self.inner
            .store
            .remove(key, &ExportPath::annex_object(key))
            .await?;
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
        if !verifiable(key) {
            return Err(RepoError::Refused(format!(
                "exported content cannot be verified due to using the {} backend",
                key.backend()
            )));
        }
        let exports = self.exports().await?;
        let mut candidates = exports.paths(key);
        if self.inner.annex_objects {
            candidates.push(ExportPath::annex_object(key));
        }
        for path in candidates {
            let Some(r) = self.inner.store.retrieve(key, &path, 0).await? else {
                continue;
            };
            // A file of another size holds other content: look further.
            if key.size().is_some_and(|s| s != r.len) {
                continue;
            }
            return send_verified(key, offset, r.len, r.stream, sink).await;
        }
        Ok(GetOutcome::NotPresent)
    }

    async fn put(
        &self,
        key: &Key,
        _file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        let exports = self.exports().await?;
        if self.present_in(key, &exports).await? {
            return Ok(PutOutcome::AlreadyHave(Vec::new()));
        }
        let mut targets = exports.paths(key);
        if targets.is_empty() {
            if !self.inner.annex_objects {
                return Err(RepoError::Refused(
                    "remote is configured with exporttree=yes; use `git-annex export` to store content on it".into(),
                ));
            }
            targets.push(ExportPath::annex_object(key));
        }
        let data = source.open(0).await?;
        let len = match &data {
            PutData::Present => {
                return Ok(if self.check_present(key).await? {
                    PutOutcome::Stored(Vec::new())
                } else {
                    PutOutcome::NotStored
                })
            }
            PutData::Stream { len, .. } | PutData::Chunks { len, .. } => *len,
        };
        if key.size().is_some_and(|s| s != len) {
            return Ok(PutOutcome::NotStored);
        }
        let Received { pending, verifier } =
            receive_into(&*self.inner.store, &targets[0], key, data).await?;
        let validity = source.validity().await?;
        let trusted = verifier.checks_hash() || validity != Some(Validity::Invalid);
        if verifier.finish().is_err() || !trusted {
            // Dropped: nothing becomes visible.
            drop(pending);
            return Ok(PutOutcome::NotStored);
        }
        pending.commit().await?;
        // The key's other paths in the tree get a copy of what arrived.
        for t in &targets[1..] {
            self.copy_within(key, &targets[0], t).await?;
        }
        Ok(PutOutcome::Stored(Vec::new()))
    }
}
