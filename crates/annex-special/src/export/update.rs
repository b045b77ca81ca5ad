//! Exporting a tree to a remote, as `git annex export TREE --to REMOTE`
//! does (Command/Export.hs), for the gateway's `post-receive`:
//!
//! 1. under git-annex's locks of the remote's export database (so that
//!    git-annex's own `export` waits for this one, and the other way
//!    round), export.log records the beginning of the export and the tree
//!    is grafted into the git-annex branch (`recordExportBeginning`);
//! 2. what an interrupted export left at temporary names is cleaned up;
//! 3. files the new tree moved are renamed (through a temporary name, so
//!    that swapped names do not clash), and files it no longer has go to
//!    the annexobjects location (or are removed when there is none, or
//!    they are files kept in git);
//! 4. export.log records the new tree (`recordExportUnderway`), moving on
//!    the lines of other repositories that exported the old tree;
//! 5. git-annex's export database is removed, for git-annex to rebuild
//!    from the log ([`forget_git_annex_database`]);
//! 6. each file of the tree that the remote lacks is filled in: from the
//!    annexobjects location (renamed where the store can), from another
//!    path of the same key in the remote, from the using repository's own
//!    annex, or for a file kept in git from git; all verified on the
//!    way. The location log records what arrived.
//!
//! Better than git-annex's: temporary files an interrupted export left
//! are moved to the annexobjects location rather than deleted (git-annex
//! deletes them, losing content that was nowhere else).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use annex_branch::lock::{lock_blocking, FileLock, LockKind};
use annex_branch::logs::export as export_log;
use annex_branch::logs::paths::EXPORT_LOG;
use annex_branch::{BranchError, VectorClock};
use annex_protocol::repository::ChunkStream;
use annex_protocol::{Key, RepoError, Uuid};
use annex_repo::LocalRepository;
use bytes::Bytes;
use gix::ObjectId;

use super::path::ExportPath;
use super::remote::ExportRemote;
use super::tree::{diff, filter_tree, is_git_sha_key, FileKind, TreeError, TreeFile, Wanted};
use super::verify::copy_into;

/// Why an export could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The remote failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The git-annex branch could not be read or written.
    #[error(transparent)]
    Branch(#[from] BranchError),
    /// A tree could not be read.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// git-annex's export locks could not be taken, or its database
    /// removed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExportError {
    move |source| ExportError::Io {
        context: context.into(),
        source,
    }
}

fn blocking_err(e: tokio::task::JoinError) -> ExportError {
    ExportError::Repo(RepoError::context("background task failed", e))
}

/// What an export needs besides the tree.
pub struct ExportOptions {
    /// The remote's name, for messages.
    pub name: String,
    /// The exporting repository's UUID (the gateway's).
    pub here: Uuid,
    /// Where git-annex keeps its export databases' directory `export/`:
    /// the repository's `annex` directory, or `annex.dbdir`.
    pub db_parent: PathBuf,
    /// The using repository, whose annexed content fills in what the
    /// remote lacks.
    pub local: Option<LocalRepository>,
    /// The remote tracking branch to point at a commit once every file
    /// is in the remote (`refs/remotes/NAME/BRANCH`, as
    /// `git annex export` sets it), and the commit.
    pub tracking: Option<(String, ObjectId)>,
}

/// What an export did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Files renamed in the remote.
    pub renamed: usize,
    /// Files no longer exported (moved to annexobjects, or removed).
    pub unexported: usize,
    /// Files the remote received.
    pub filled: usize,
    /// Files of the tree whose content was nowhere to be had.
    pub unavailable: Vec<String>,
    /// Actions that failed, with why.
    pub failures: Vec<String>,
    /// Whether the export was recorded as done (nothing failed while
    /// changing the remote to the new tree).
    pub recorded: bool,
}

impl ExportReport {
    /// Whether every file of the tree is in the remote and nothing
    /// failed.
    pub fn complete(&self) -> bool {
        self.recorded && self.unavailable.is_empty() && self.failures.is_empty()
    }
}

/// git-annex's locks of a remote's export database, held while an export
/// runs (its `writeLockDbWhile`: the update lock, then the database
/// lock), and the database's directory.
struct DbLocks {
    _update: FileLock,
    _db: FileLock,
    db_dir: PathBuf,
}

fn take_db_locks(db_parent: &Path, uuid: &Uuid) -> Result<DbLocks, ExportError> {
    let dir = db_parent.join("export").join(uuid.as_str());
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let update = lock_blocking(&dir.join("exportdb.upl"), LockKind::Exclusive)
        .map_err(io_err("locking git-annex's export database"))?;
    let db = lock_blocking(&dir.join("exportdb.lck"), LockKind::Exclusive)
        .map_err(io_err("locking git-annex's export database"))?;
    Ok(DbLocks {
        _update: update,
        _db: db,
        db_dir: dir.join("exportdb"),
    })
}

/// Removes git-annex's export database of a remote (`DB_PARENT/export/
/// UUID/exportdb`, git-annex's sqlite cache of what it exported), so
/// that git-annex builds it anew: it then reads the tree from export.log
/// and finds the files present by looking at the remote, instead of
/// trusting what it recorded of a tree that was since changed by this
/// program. Call with git-annex's locks held.
pub fn forget_git_annex_database(db_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(db_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes the tree to export of `tree` as git-annex's `filterExport` does
/// (submodules and symlinks that are not annexed left out; with `wanted`,
/// the remote's preferred content given the key and the path, annexed
/// files it does not want left out too), writing what it leaves out to
/// `ANNEX_DIR/export.ex/UUID` (one `git ls-tree` line each), where
/// git-annex's import looks for it.
pub fn filter_for_export(
    repo: &gix::Repository,
    tree: ObjectId,
    wanted: Option<Wanted<'_>>,
    annex_dir: &Path,
    uuid: &Uuid,
) -> Result<ObjectId, ExportError> {
    let filtered = filter_tree(repo, tree, wanted)?;
    let dir = annex_dir.join("export.ex");
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let mut log = Vec::new();
    for e in &filtered.excluded {
        log.extend(e.ls_tree_line());
        log.push(b'\n');
    }
    let file = dir.join(uuid.as_str());
    std::fs::write(&file, log).map_err(io_err(format!("writing {}", file.display())))?;
    Ok(filtered.tree)
}

/// Content in memory as a chunk stream.
struct OneChunk(Option<Bytes>);

impl ChunkStream for OneChunk {
    fn poll_chunk(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::io::Result<Bytes>>> {
        std::task::Poll::Ready(self.0.take().map(Ok))
    }
}

/// How an export changed a key's files: the paths it leaves (with what
/// they held), and the paths it comes to.
type KeyChange = (Vec<(ExportPath, FileKind)>, Vec<ExportPath>);

/// The keys whose files an export changed, and how.
type DiffMap = BTreeMap<Key, KeyChange>;

/// The entries of `map` in the order git-annex's export goes through
/// them (its keys' order: by the name part first, the hash and
/// extension, then the rest), so that the remote changes in the same
/// order and the actions are reported in the same order.
fn in_git_annex_order(map: &DiffMap) -> Vec<(&Key, &KeyChange)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|(a, _), (b, _)| (a.name(), a.as_str()).cmp(&(b.name(), b.as_str())));
    entries
}

impl ExportRemote {
    fn git(&self) -> gix::Repository {
        self.inner
            .branch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .repo()
            .clone()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ExportRemote) -> Result<T, ExportError> + Send + 'static,
    ) -> Result<T, ExportError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(blocking_err)?
    }

    /// Moves a file to another path: renamed where the store can, else
    /// copied (verified) and removed.
    async fn move_file(
        &self,
        key: &Key,
        from: &ExportPath,
        to: &ExportPath,
    ) -> Result<(), RepoError> {
        let store = &self.inner.store;
        if store.rename(key, from, to).await? {
            return Ok(());
        }
        if !self.copy_within(key, from, to).await? {
            return Err(RepoError::Other(format!(
                "{from} does not hold the content of {key}"
            )));
        }
        store.remove(key, from).await
    }

    /// Takes a file out of the export: to the annexobjects location when
    /// the remote keeps one and it is annexed content, else removed.
    async fn dispose(&self, key: &Key, kind: FileKind, path: &ExportPath) -> Result<(), RepoError> {
        let store = &self.inner.store;
        if self.inner.annex_objects && kind == FileKind::Annexed && !is_git_sha_key(key) {
            // A file of the tree that never reached the remote (its
            // content was not available when it was exported) leaves
            // nothing to move: the removal of nothing, as git-annex's
            // fallback to unexporting makes it.
            if !store.check_present(key, path).await? {
                return Ok(());
            }
            let obj = ExportPath::annex_object(key);
            if store.check_present(key, &obj).await? {
                return store.remove(key, path).await;
            }
            return self.move_file(key, path, &obj).await;
        }
        store.remove(key, path).await
    }

    /// Exports `tree` to the remote (see the module's documentation),
    /// telling `say` each action as git-annex words it.
    pub async fn export(
        &self,
        tree: ObjectId,
        opts: &ExportOptions,
        say: &(dyn Fn(&str) + Sync),
    ) -> Result<ExportReport, ExportError> {
        let name = opts.name.as_str();
        let uuid = self.inner.uuid.clone();
        let db_parent = opts.db_parent.clone();
        let locks = {
            let u = uuid.clone();
            tokio::task::spawn_blocking(move || take_db_locks(&db_parent, &u))
                .await
                .map_err(blocking_err)??
        };
        let new_hex = tree.to_string();

        // 1. The beginning, recorded before anything changes.
        let here = opts.here.clone();
        let (old, incomplete) = {
            let (u, h, t) = (uuid.clone(), here.clone(), new_hex.clone());
            self.blocking(move |this| {
                let b = this.inner.branch.lock().unwrap_or_else(|p| p.into_inner());
                let log = export_log::parse(&b.read(EXPORT_LOG)?);
                let old = export_log::exported_trees(&log, &u);
                let incomplete = export_log::incomplete_trees(&log, &u);
                b.try_change::<ExportError>(EXPORT_LOG, |cur| {
                    let mut log = export_log::parse(cur);
                    export_log::record_beginning(&mut log, &h, &u, &t, VectorClock::now())
                        .map_err(RepoError::failed)?;
                    Ok(Some(export_log::write(&log)))
                })?;
                b.remember_tree(tree, "export.tree")?;
                Ok((old, incomplete))
            })
            .await?
        };
        let mut report = ExportReport::default();
        let store = self.inner.store.clone();
        let fail = |report: &mut ExportReport, what: String, e: RepoError| {
            say(&format!("{what} failed: {e}"));
            report.failures.push(format!("{what}: {e}"));
        };

        // 2. What an interrupted export left at temporary names.
        for t in incomplete {
            let Ok(t) = ObjectId::from_hex(t.as_bytes()) else {
                continue;
            };
            let changes = self
                .blocking(move |this| Ok(diff(&this.git(), t, tree)?))
                .await?;
            for c in changes {
                let Some((_, key, kind)) = c.old else {
                    continue;
                };
                let tmp = ExportPath::temp_name(&key);
                let r = async {
                    if !store.check_present(&key, &tmp).await? {
                        return Ok(false);
                    }
                    self.dispose(&key, kind, &tmp).await.map(|_| true)
                }
                .await;
                match r {
                    Ok(false) => {}
                    Ok(true) => say(&format!("unexport {name} {tmp} ok")),
                    Err(e) => fail(&mut report, format!("unexport {name} {tmp}"), e),
                }
            }
        }

        // 3. Renames and removals.
        let mut touched: Vec<Key> = Vec::new();
        match old.as_slice() {
            [] => {}
            [t] if *t == new_hex => {}
            [t] => {
                let Ok(t) = ObjectId::from_hex(t.as_bytes()) else {
                    return Err(RepoError::Other(format!(
                        "export.log names {t}, which is not a tree"
                    ))
                    .into());
                };
                let changes = self
                    .blocking(move |this| Ok(diff(&this.git(), t, tree)?))
                    .await?;
                let mut map = DiffMap::new();
                for c in changes {
                    if let Some((_, k, kind)) = c.old {
                        map.entry(k).or_default().0.push((c.path.clone(), kind));
                    }
                    if let Some((_, k, _)) = c.new {
                        map.entry(k).or_default().1.push(c.path);
                    }
                }
                let mut in_temp: Vec<Key> = Vec::new();
                for (key, (olds, news)) in in_git_annex_order(&map) {
                    let mut olds = olds.iter();
                    if !news.is_empty() {
                        if let Some((first, kind)) = olds.next() {
                            let tmp = ExportPath::temp_name(key);
                            let what = format!("rename {name} {first} -> {tmp}");
                            let moved = async {
                                if !store.check_present(key, first).await? {
                                    return Ok(false);
                                }
                                self.move_file(key, first, &tmp).await.map(|_| true)
                            }
                            .await;
                            match moved {
                                Ok(true) => {
                                    say(&format!("{what} ok"));
                                    in_temp.push(key.clone());
                                }
                                Ok(false) => {}
                                Err(e) => {
                                    fail(&mut report, what, e);
                                    if let Err(e) = self.dispose(key, *kind, first).await {
                                        fail(&mut report, format!("unexport {name} {first}"), e);
                                    }
                                }
                            }
                        }
                    }
                    for (p, kind) in olds {
                        let what = format!("unexport {name} {p}");
                        match self.dispose(key, *kind, p).await {
                            Ok(()) => {
                                say(&format!("{what} ok"));
                                report.unexported += 1;
                            }
                            Err(e) => fail(&mut report, what, e),
                        }
                        touched.push(key.clone());
                    }
                }
                for key in in_temp {
                    let Some(dest) = map.get(&key).and_then(|(_, n)| n.first()) else {
                        continue;
                    };
                    let tmp = ExportPath::temp_name(&key);
                    let what = format!("rename {name} {tmp} -> {dest}");
                    match self.move_file(&key, &tmp, dest).await {
                        Ok(()) => {
                            say(&format!("{what} ok"));
                            report.renamed += 1;
                        }
                        Err(e) => fail(&mut report, what, e),
                    }
                }
            }
            several => {
                say("Resolving export conflict..");
                for t in several {
                    let Ok(t) = ObjectId::from_hex(t.as_bytes()) else {
                        continue;
                    };
                    let changes = self
                        .blocking(move |this| Ok(diff(&this.git(), t, tree)?))
                        .await?;
                    for c in changes {
                        // The content there is not known: removed.
                        let what = format!("unexport {name} {}", c.path);
                        // The key the tree had there names it to a store
                        // that asks (git-annex's is the old tree's).
                        let Some(key) =
                            c.old.as_ref().or(c.new.as_ref()).map(|(_, k, _)| k.clone())
                        else {
                            continue;
                        };
                        match store.remove(&key, &c.path).await {
                            Ok(()) => {
                                say(&format!("{what} ok"));
                                report.unexported += 1;
                            }
                            Err(e) => fail(&mut report, what, e),
                        }
                        for (_, k, _) in c.old.into_iter().chain(c.new) {
                            touched.push(k);
                        }
                    }
                }
            }
        }

        // 4. The new tree recorded, when the remote now holds nothing
        // but its files.
        if report.failures.is_empty() {
            let (u, h, o, t) = (uuid.clone(), here.clone(), old.clone(), new_hex.clone());
            self.blocking(move |this| {
                let b = this.inner.branch.lock().unwrap_or_else(|p| p.into_inner());
                b.try_change::<ExportError>(EXPORT_LOG, |cur| {
                    let mut log = export_log::parse(cur);
                    export_log::record_underway(&mut log, &h, &u, &o, &t, VectorClock::now())
                        .map_err(RepoError::failed)?;
                    Ok(Some(export_log::write(&log)))
                })?;
                Ok(())
            })
            .await?;
            report.recorded = true;
        }

        // 5. git-annex's database, rebuilt by git-annex from the log.
        let db_dir = locks.db_dir.clone();
        tokio::task::spawn_blocking(move || forget_git_annex_database(&db_dir))
            .await
            .map_err(blocking_err)?
            .map_err(io_err("removing git-annex's export database"))?;

        // 6. The files the remote lacks.
        let index = self.blocking(move |this| Ok(this.index(tree)?)).await?;
        let mut sent: Vec<Key> = Vec::new();
        for f in index.files() {
            let what = format!("export {name} {}", f.path);
            match self.fill(f, &index, opts).await {
                Ok(Fill::Present) => {}
                Ok(Fill::Sent) => {
                    say(&format!("{what} ok"));
                    report.filled += 1;
                    sent.push(f.key.clone());
                }
                Ok(Fill::Unavailable) => {
                    say(&format!("{what} (not available) failed"));
                    report.unavailable.push(f.path.to_string());
                }
                Err(e) => fail(&mut report, what, e),
            }
        }

        // The location log: content that arrived, and content that went.
        let exports = self.exports().await?;
        let mut changes: Vec<(Key, bool)> = sent.into_iter().map(|k| (k, true)).collect();
        for k in touched {
            if !self.present_in(&k, &exports).await? {
                changes.push((k, false));
            }
        }
        changes.retain(|(k, _)| !is_git_sha_key(k));
        if !changes.is_empty() {
            let u = uuid.clone();
            self.blocking(move |this| {
                let b = this.inner.branch.lock().unwrap_or_else(|p| p.into_inner());
                for (k, present) in changes {
                    b.set_location(&k, &u, present)?;
                }
                Ok(())
            })
            .await?;
        }

        // The remote tracking branch, once the remote has all of it.
        if let (true, Some((name, commit))) = (report.complete(), opts.tracking.clone()) {
            self.blocking(move |this| {
                let repo = this.git();
                repo.reference(
                    name.as_str(),
                    commit,
                    gix::refs::transaction::PreviousValue::Any,
                    "export",
                )
                .map_err(|e| RepoError::context(format!("setting {name}"), e))?;
                Ok(())
            })
            .await?;
        }
        drop(locks);
        Ok(report)
    }

    /// Puts a file of the tree into the remote when it lacks it.
    async fn fill(
        &self,
        f: &TreeFile,
        index: &super::tree::TreeIndex,
        opts: &ExportOptions,
    ) -> Result<Fill, RepoError> {
        let store = &self.inner.store;
        if store.check_present(&f.key, &f.path).await? {
            return Ok(Fill::Present);
        }
        let key = &f.key;
        if f.kind == FileKind::Git {
            let blob = f.blob;
            let data = {
                let repo = self
                    .inner
                    .branch
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .repo()
                    .clone();
                tokio::task::spawn_blocking(move || {
                    repo.find_object(blob)
                        .map(|o| Bytes::from(o.detach().data))
                        .map_err(|e| RepoError::context(format!("reading {blob} from git"), e))
                })
                .await
                .map_err(|e| RepoError::context("background task failed", e))??
            };
            let len = data.len() as u64;
            let stored = copy_into(&**store, &f.path, key, len, &mut OneChunk(Some(data))).await?;
            return Ok(if stored {
                Fill::Sent
            } else {
                Fill::Unavailable
            });
        }
        if self.inner.annex_objects {
            let obj = ExportPath::annex_object(key);
            if store.check_present(key, &obj).await? {
                self.move_file(key, &obj, &f.path).await?;
                return Ok(Fill::Sent);
            }
        }
        for other in index.files_of(key) {
            if other.path != f.path
                && store.check_present(key, &other.path).await?
                && self.copy_within(key, &other.path, &f.path).await?
            {
                return Ok(Fill::Sent);
            }
        }
        if let Some(local) = &opts.local {
            if local.has_content(key) {
                let path = local.object_path(key);
                let opened = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                    let len = std::fs::metadata(&path)?.len();
                    Ok((len, annex_repo::read::FileStream::open(&path, 0, len)?))
                })
                .await
                .map_err(|e| RepoError::context("background task failed", e))?;
                if let Ok((len, mut stream)) = opened {
                    if copy_into(&**store, &f.path, key, len, &mut stream).await? {
                        return Ok(Fill::Sent);
                    }
                }
            }
        }
        Ok(Fill::Unavailable)
    }
}

/// What filling a file did.
enum Fill {
    /// It was there.
    Present,
    /// It was put there.
    Sent,
    /// Its content was nowhere to be had.
    Unavailable,
}
