//! The git-annex branch of one repository, read and written with gix.
//!
//! Reads see `refs/heads/git-annex` overlaid with the journal, as
//! git-annex's do. Writes go through the journal under git-annex's journal
//! lock; [`Branch::commit`] turns the journal into a commit on the branch
//! by building trees in the object store, without running git.

use std::path::{Path, PathBuf};

use gix::objs::tree::EntryKind;
use gix::objs::FindExt;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use gix::ObjectId;

use crate::error::{git, BranchError};
use crate::journal::{Journal, JournalLock};
use crate::merge;

/// The branch's full ref name.
pub const BRANCH_REF: &str = "refs/heads/git-annex";

/// How many times a commit is retried when the branch moves under it.
const MAX_RACES: u32 = 16;

/// The git-annex branch of a repository.
pub struct Branch {
    repo: gix::Repository,
    git_dir: PathBuf,
    journal: Journal,
    /// The entries of the last root tree read, by name: the root of a big
    /// branch holds thousands of hash directories, and decoding it for
    /// every log read would cost more than the rest of the read.
    root: std::sync::Mutex<Option<RootEntries>>,
}

/// A root tree's entries: name to (is a tree, is a blob, object).
struct RootEntries {
    tree: ObjectId,
    entries: std::collections::HashMap<Vec<u8>, (bool, bool, ObjectId)>,
}

impl std::fmt::Debug for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Branch")
            .field("git_dir", &self.git_dir)
            .finish()
    }
}

/// What [`Branch::merge`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// The commit the journal was committed as, if it held anything.
    pub journal_commit: Option<ObjectId>,
    /// The remote branches that were merged in.
    pub merged: Vec<String>,
    /// Whether the branch was fast-forwarded rather than merged.
    pub fast_forwarded: bool,
}

impl Branch {
    /// Opens the repository at `path` (a work tree, or a bare repository's
    /// directory). The git-annex branch need not exist yet.
    pub fn open(path: &Path) -> Result<Branch, BranchError> {
        let mut repo = gix::open(path).map_err(|e| BranchError::NotARepository {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        repo.object_cache_size_if_unset(32 << 20);
        let git_dir = repo.git_dir().to_path_buf();
        let journal = Journal::new(&git_dir);
        Ok(Branch {
            repo,
            git_dir,
            journal,
            root: std::sync::Mutex::new(None),
        })
    }

    /// The repository's git directory.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The underlying gix repository.
    pub fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    /// The branch's commit, or `None` when there is no git-annex branch.
    pub fn head(&self) -> Result<Option<ObjectId>, BranchError> {
        self.ref_target(BRANCH_REF)
    }

    /// The branch's commit; an error naming `annex init` when there is
    /// none.
    pub fn require_head(&self) -> Result<ObjectId, BranchError> {
        self.head()?
            .ok_or_else(|| BranchError::NoBranch(self.git_dir.clone()))
    }

    fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, BranchError> {
        match self.repo.try_find_reference(name).map_err(git)? {
            None => Ok(None),
            Some(mut r) => Ok(Some(r.peel_to_id().map_err(git)?.detach())),
        }
    }

    /// The tree of a commit.
    pub fn tree_of(&self, commit: ObjectId) -> Result<ObjectId, BranchError> {
        let c = self.repo.find_commit(commit).map_err(git)?;
        Ok(c.tree_id().map_err(git)?.detach())
    }

    /// A file as committed in `tree`, if it is there.
    pub fn read_in_tree(&self, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>, BranchError> {
        let mut buf = Vec::new();
        let mut id = tree;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if i == 0 {
                match self.root_entry(tree, part.as_bytes())? {
                    Some((is_tree, is_blob, oid)) if (last && is_blob) || (!last && is_tree) => {
                        id = oid
                    }
                    _ => return Ok(None),
                }
                continue;
            }
            let t = self.repo.objects.find_tree(&id, &mut buf).map_err(git)?;
            match t.bisect_entry(part.as_bytes().into(), !last) {
                Some(e) if last && !e.mode.is_blob() => return Ok(None),
                Some(e) => id = e.oid.to_owned(),
                None => return Ok(None),
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let blob = self.repo.objects.find_blob(&id, &mut buf).map_err(git)?;
        Ok(Some(blob.data.to_vec()))
    }

    /// An entry of a root tree, through the cache of the last root read.
    fn root_entry(
        &self,
        tree: ObjectId,
        name: &[u8],
    ) -> Result<Option<(bool, bool, ObjectId)>, BranchError> {
        let mut cache = self.root.lock().unwrap_or_else(|e| e.into_inner());
        if cache.as_ref().is_none_or(|c| c.tree != tree) {
            let mut buf = Vec::new();
            let t = self.repo.objects.find_tree(&tree, &mut buf).map_err(git)?;
            let entries = t
                .entries
                .iter()
                .map(|e| {
                    let kind = (e.mode.is_tree(), e.mode.is_blob(), e.oid.to_owned());
                    (e.filename.to_vec(), kind)
                })
                .collect();
            *cache = Some(RootEntries { tree, entries });
        }
        Ok(cache.as_ref().and_then(|c| c.entries.get(name).copied()))
    }

    /// A file as committed on the branch (without the journal).
    pub fn read_committed(&self, path: &str) -> Result<Option<Vec<u8>>, BranchError> {
        match self.head()? {
            None => Ok(None),
            Some(c) => self.read_in_tree(self.tree_of(c)?, path),
        }
    }

    /// A file of the branch as git-annex sees it: the journalled version
    /// when there is one, else the committed one, else empty.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, BranchError> {
        if let Some(j) = self.journal.read(path).map_err(io("reading the journal"))? {
            return Ok(j);
        }
        Ok(self.read_committed(path)?.unwrap_or_default())
    }

    /// Changes a file through the journal, under the journal lock: `f`
    /// gets the current content and returns the new content, or `None` to
    /// leave it alone. Returns whether anything was written.
    pub fn change(
        &self,
        path: &str,
        f: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<bool, BranchError> {
        self.try_change(path, |old| Ok(f(old)))
    }

    /// [`Branch::change`] with the journal lock already held.
    pub fn change_locked(
        &self,
        lock: &JournalLock,
        path: &str,
        f: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<bool, BranchError> {
        self.try_change_locked(lock, path, |old| Ok(f(old)))
    }

    /// [`Branch::change`] where `f` may refuse the change with an error of
    /// the caller's type, which is returned (nothing is then written); the
    /// branch's own errors are converted to it.
    ///
    /// ```no_run
    /// # fn demo(branch: &annex_branch::Branch) -> Result<(), Box<dyn std::error::Error>> {
    /// let changed = branch.try_change::<Box<dyn std::error::Error>>("numcopies.log", |old| {
    ///     if old.len() > 1000 {
    ///         return Err("numcopies.log is too long".into());
    ///     }
    ///     Ok(Some(b"1795546890s 2\n".to_vec()))
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_change<E: From<BranchError>>(
        &self,
        path: &str,
        f: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<bool, E> {
        let lock = self.journal.lock().map_err(io("locking the journal"))?;
        self.try_change_locked(&lock, path, f)
    }

    /// [`Branch::try_change`] with the journal lock already held.
    pub fn try_change_locked<E: From<BranchError>>(
        &self,
        lock: &JournalLock,
        path: &str,
        f: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<bool, E> {
        let current = self.read(path)?;
        match f(&current)? {
            Some(new) if new != current => {
                self.journal
                    .write(lock, path, &new)
                    .map_err(io("writing the journal"))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Commits the journal to the branch (creating the branch when there
    /// is none) and empties it. Returns the new commit, or `None` when the
    /// journal was empty.
    pub fn commit(&self, message: &str) -> Result<Option<ObjectId>, BranchError> {
        let lock = self.journal.lock().map_err(io("locking the journal"))?;
        self.commit_locked(&lock, message)
    }

    fn commit_locked(
        &self,
        _lock: &JournalLock,
        message: &str,
    ) -> Result<Option<ObjectId>, BranchError> {
        let files = self.journal.files().map_err(io("listing the journal"))?;
        if files.is_empty() {
            return Ok(None);
        }
        let head = self.head()?;
        let base = match head {
            Some(c) => self.tree_of(c)?,
            None => ObjectId::empty_tree(self.repo.object_hash()),
        };
        let mut editor = self.repo.edit_tree(base).map_err(git)?;
        for (path, file) in &files {
            let content = std::fs::read(file).map_err(io("reading the journal"))?;
            let blob = self.repo.write_blob(&content).map_err(git)?.detach();
            editor
                .upsert(path.as_str(), EntryKind::Blob, blob)
                .map_err(git)?;
        }
        let tree = editor.write().map_err(git)?.detach();
        let parents: Vec<ObjectId> = head.into_iter().collect();
        let commit = self.write_commit(tree, &parents, message)?;
        let committed = self.advance_ref(head, commit, message)?;
        // The journal lock is held, so nobody changed these files since
        // they were read.
        for (_, file) in files {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("emptying the journal")(e)),
            }
        }
        Ok(Some(committed))
    }

    /// Makes `tree` reachable from the branch, as git-annex's
    /// `rememberTreeish` does for the trees it exports (so that clones
    /// fetching the branch get them): a commit `graft` with the tree
    /// grafted at `graft_point` (`export.tree`), then a commit `graft
    /// cleanup` with the branch's tree as it was. The journal is left as
    /// it is. Returns the new commit of the branch.
    pub fn remember_tree(
        &self,
        tree: ObjectId,
        graft_point: &str,
    ) -> Result<ObjectId, BranchError> {
        let _lock = self.journal.lock().map_err(io("locking the journal"))?;
        let head = match self.head()? {
            Some(h) => h,
            None => {
                drop(_lock);
                self.create("branch created")?;
                return self.remember_tree(tree, graft_point);
            }
        };
        let base = self.tree_of(head)?;
        let mut editor = self.repo.edit_tree(base).map_err(git)?;
        editor
            .upsert(graft_point, EntryKind::Tree, tree)
            .map_err(git)?;
        let grafted = editor.write().map_err(git)?.detach();
        let graft = self.write_commit(grafted, &[head], "graft")?;
        let cleanup = self.write_commit(base, &[graft], "graft cleanup")?;
        self.advance_ref(Some(head), cleanup, "graft cleanup")
    }

    /// Writes a commit object.
    fn write_commit(
        &self,
        tree: ObjectId,
        parents: &[ObjectId],
        message: &str,
    ) -> Result<ObjectId, BranchError> {
        let sig = self.signature();
        let commit = gix::objs::Commit {
            tree,
            parents: parents.iter().copied().collect(),
            author: sig.clone(),
            committer: sig,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        Ok(self.repo.write_object(&commit).map_err(git)?.detach())
    }

    fn signature(&self) -> gix::actor::Signature {
        let from_config = self
            .repo
            .committer()
            .and_then(|r| r.ok())
            .map(|s| s.to_owned());
        match from_config {
            Some(Ok(s)) => s,
            _ => gix::actor::Signature {
                name: "annex".into(),
                email: "annex@localhost".into(),
                time: gix::date::Time::now_local_or_utc(),
            },
        }
    }

    /// Moves the branch from `expected` to `new`. When the branch moved
    /// meanwhile (a push, or another writer), the two are union-merged as
    /// git-annex recovers from that race, and the merge is tried instead.
    fn advance_ref(
        &self,
        expected: Option<ObjectId>,
        new: ObjectId,
        message: &str,
    ) -> Result<ObjectId, BranchError> {
        let mut expected = expected;
        let mut new = new;
        for _ in 0..MAX_RACES {
            if self.set_ref(BRANCH_REF, expected, new, message)? {
                return Ok(new);
            }
            let moved = self.require_head()?;
            let tree =
                merge::union_merge_trees(&self.repo, self.tree_of(new)?, self.tree_of(moved)?)?;
            new = self.write_commit(
                tree,
                &[new, moved],
                &format!("{message} (recovery from race)"),
            )?;
            expected = Some(moved);
        }
        Err(BranchError::Raced(MAX_RACES))
    }

    /// Compare-and-swap of a ref; `false` when it did not hold `expected`.
    fn set_ref(
        &self,
        name: &str,
        expected: Option<ObjectId>,
        new: ObjectId,
        message: &str,
    ) -> Result<bool, BranchError> {
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: false,
                    message: message.into(),
                },
                expected: match expected {
                    Some(e) => PreviousValue::MustExistAndMatch(Target::Object(e)),
                    None => PreviousValue::MustNotExist,
                },
                new: Target::Object(new),
            },
            name: name.try_into().map_err(git)?,
            deref: false,
        };
        match self.repo.edit_reference(edit) {
            Ok(_) => Ok(true),
            Err(e) => {
                // Tell a lost race from a real failure by looking again.
                if self.ref_target(name)? != expected {
                    Ok(false)
                } else {
                    Err(git(e))
                }
            }
        }
    }

    /// The remote git-annex branches (`refs/remotes/*/git-annex`).
    pub fn remote_branches(&self) -> Result<Vec<(String, ObjectId)>, BranchError> {
        let mut out = Vec::new();
        let platform = self.repo.references().map_err(git)?;
        for r in platform.prefixed("refs/remotes/").map_err(git)? {
            let mut r = r.map_err(git)?;
            let name = r.name().as_bstr().to_string();
            if !name.ends_with("/git-annex") {
                continue;
            }
            let id = r.peel_to_id().map_err(git)?.detach();
            out.push((name, id));
        }
        Ok(out)
    }

    /// Commits the journal, then union-merges every remote git-annex
    /// branch that has something the local one lacks, as `git annex merge`
    /// does. Without a local branch, one is made from the remote ones.
    pub fn merge(&self) -> Result<MergeReport, BranchError> {
        let lock = self.journal.lock().map_err(io("locking the journal"))?;
        let journal_commit = self.commit_locked(&lock, "update")?;
        let head = self.head()?;
        let mut tomerge = Vec::new();
        for (name, id) in self.remote_branches()? {
            if Some(id) == head {
                continue;
            }
            if let Some(h) = head {
                if self.is_ancestor(id, h)? {
                    continue;
                }
            }
            tomerge.push((name, id));
        }
        let mut report = MergeReport {
            journal_commit,
            ..MergeReport::default()
        };
        if tomerge.is_empty() {
            return Ok(report);
        }
        report.merged = tomerge.iter().map(|(n, _)| n.clone()).collect();
        let message = format!(
            "merging {} into git-annex",
            tomerge
                .iter()
                .map(|(n, _)| n.trim_start_matches("refs/").to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        // One remote branch that already holds the local one: fast-forward.
        if let [(_, id)] = tomerge.as_slice() {
            let ff = match head {
                None => true,
                Some(h) => self.is_ancestor(h, *id)?,
            };
            if ff {
                self.advance_ref(head, *id, &message)?;
                report.fast_forwarded = true;
                return Ok(report);
            }
        }
        let mut tree = match head {
            Some(h) => self.tree_of(h)?,
            None => ObjectId::empty_tree(self.repo.object_hash()),
        };
        for (_, id) in &tomerge {
            tree = merge::union_merge_trees(&self.repo, tree, self.tree_of(*id)?)?;
        }
        let parents: Vec<ObjectId> = head
            .into_iter()
            .chain(tomerge.iter().map(|(_, id)| *id))
            .collect();
        let commit = self.write_commit(tree, &parents, &message)?;
        self.advance_ref(head, commit, &message)?;
        Ok(report)
    }

    /// Whether commit `a` is an ancestor of (or equal to) commit `b`.
    pub fn is_ancestor(&self, a: ObjectId, b: ObjectId) -> Result<bool, BranchError> {
        if a == b {
            return Ok(true);
        }
        match self.repo.merge_base(a, b) {
            Ok(base) => Ok(base.map(|b| b.detach()) == Some(a)),
            Err(_) => Ok(false),
        }
    }

    /// Creates the branch when it does not exist yet: from the remote
    /// git-annex branches when there are any, else as a commit of the empty
    /// tree, as git-annex does. Returns the branch's commit.
    pub fn create(&self, message: &str) -> Result<ObjectId, BranchError> {
        let lock = self.journal.lock().map_err(io("locking the journal"))?;
        if let Some(h) = self.head()? {
            return Ok(h);
        }
        let remotes = self.remote_branches()?;
        if let Some((_, id)) = remotes.first() {
            self.set_ref(BRANCH_REF, None, *id, "branch: Created from remote")?;
            drop(lock);
            self.merge()?;
            return self.require_head();
        }
        let tree = self
            .repo
            .write_object(gix::objs::Tree::empty())
            .map_err(git)?
            .detach();
        let commit = self.write_commit(tree, &[], message)?;
        self.set_ref(BRANCH_REF, None, commit, message)?;
        Ok(commit)
    }
}

fn io(context: &'static str) -> impl Fn(std::io::Error) -> BranchError {
    move |source| BranchError::Io {
        context: context.to_string(),
        source,
    }
}
