//! Trees exported to a remote, read from git: each file with the key it
//! is exported as (git-annex's `exportKey`: an annexed file's key, or for
//! a file kept in git a `GIT--SHA` key of its blob), the files of each
//! key, what changed between two trees, and the tree git-annex's
//! `filterExport` makes of a branch.

use std::collections::HashMap;

use annex_protocol::Key;
use annex_repo::worktree::{key_of_link_or_pointer, MAX_POINTER_SIZE};
use gix::objs::tree::{Entry, EntryKind, EntryMode};
use gix::ObjectId;

use super::path::ExportPath;

/// What a file of an exported tree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// An annexed file: its content is the key's.
    Annexed,
    /// A file kept in git: its content is the blob's.
    Git,
}

/// A file of an exported tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Where it is exported.
    pub path: ExportPath,
    /// Its blob in git.
    pub blob: ObjectId,
    /// Its entry's kind (blob, executable, symlink).
    pub mode: EntryKind,
    /// The key it is exported as.
    pub key: Key,
    /// Annexed or kept in git.
    pub kind: FileKind,
}

/// Every file of a tree, by path and by key.
#[derive(Debug)]
pub struct TreeIndex {
    tree: ObjectId,
    files: Vec<TreeFile>,
    by_key: HashMap<Key, Vec<usize>>,
    /// Paths that could not be exported (not a usable path, or inside
    /// `.git`), left out.
    pub skipped: Vec<String>,
}

/// Why a tree cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("reading tree {tree} from git: {message}")]
pub struct TreeError {
    /// The tree.
    pub tree: String,
    /// What failed.
    pub message: String,
}

fn tree_err(tree: ObjectId, e: impl std::fmt::Display) -> TreeError {
    TreeError {
        tree: tree.to_string(),
        message: e.to_string(),
    }
}

/// The `GIT--SHA` key git-annex exports a file kept in git as
/// (`gitShaKey`).
pub fn git_sha_key(blob: ObjectId) -> Key {
    // A hex object name always makes a key.
    Key::parse(&format!("GIT--{blob}")).unwrap_or_else(|_| unreachable!("hex key"))
}

/// Whether a key stands for a file kept in git (`isGitShaKey`).
pub fn is_git_sha_key(key: &Key) -> bool {
    matches!(key.variety(), annex_protocol::KeyVariety::Other(ref v) if v == "GIT")
}

/// The key an annexed file's blob names (a symlink's target or a pointer
/// file), as git-annex's `catKey` reads it: only blobs small enough to be
/// one are read.
pub fn cat_key(repo: &gix::Repository, blob: ObjectId) -> Result<Option<Key>, String> {
    let header = repo.find_header(blob).map_err(|e| e.to_string())?;
    if header.size() > MAX_POINTER_SIZE as u64 {
        return Ok(None);
    }
    let obj = repo.find_object(blob).map_err(|e| e.to_string())?;
    Ok(key_of_link_or_pointer(&obj.data))
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        name.to_vec()
    } else {
        let mut p = prefix.to_vec();
        p.push(b'/');
        p.extend_from_slice(name);
        p
    }
}

fn read_tree(repo: &gix::Repository, id: ObjectId) -> Result<Vec<Entry>, TreeError> {
    let t = repo.find_tree(id).map_err(|e| tree_err(id, e))?;
    let decoded = t.decode().map_err(|e| tree_err(id, e))?;
    Ok(decoded.entries.iter().map(|e| (*e).into()).collect())
}

/// Keys of blobs, each blob read once.
#[derive(Default)]
struct KeyCache(HashMap<ObjectId, Option<Key>>);

impl KeyCache {
    fn key(&mut self, repo: &gix::Repository, blob: ObjectId) -> Result<Option<Key>, TreeError> {
        if let Some(k) = self.0.get(&blob) {
            return Ok(k.clone());
        }
        let k = cat_key(repo, blob).map_err(|e| tree_err(blob, e))?;
        self.0.insert(blob, k.clone());
        Ok(k)
    }

    /// The key a file is exported as, and its kind.
    fn export_key(
        &mut self,
        repo: &gix::Repository,
        blob: ObjectId,
    ) -> Result<(Key, FileKind), TreeError> {
        Ok(match self.key(repo, blob)? {
            Some(k) => (k, FileKind::Annexed),
            None => (git_sha_key(blob), FileKind::Git),
        })
    }
}

impl TreeIndex {
    /// Reads every file of `tree` (submodules left out, as git-annex
    /// exports none).
    pub fn read(repo: &gix::Repository, tree: ObjectId) -> Result<TreeIndex, TreeError> {
        let mut index = TreeIndex {
            tree,
            files: Vec::new(),
            by_key: HashMap::new(),
            skipped: Vec::new(),
        };
        let mut keys = KeyCache::default();
        let mut stack = vec![(Vec::new(), tree)];
        while let Some((prefix, id)) = stack.pop() {
            for e in read_tree(repo, id)? {
                let path = join(&prefix, &e.filename);
                match e.mode.kind() {
                    EntryKind::Tree => stack.push((path, e.oid)),
                    EntryKind::Commit => {}
                    mode => {
                        let p = match ExportPath::new(path) {
                            Ok(p) if !p.is_in_git_dir() => p,
                            Ok(p) => {
                                index.skipped.push(p.to_string());
                                continue;
                            }
                            Err(bad) => {
                                index.skipped.push(bad.0);
                                continue;
                            }
                        };
                        let (key, kind) = keys.export_key(repo, e.oid)?;
                        index.files.push(TreeFile {
                            path: p,
                            blob: e.oid,
                            mode,
                            key,
                            kind,
                        });
                    }
                }
            }
        }
        // In git's order (`git ls-tree -r`'s, by path), the order
        // git-annex's export sends files in.
        index.files.sort_by(|a, b| a.path.cmp(&b.path));
        for (i, f) in index.files.iter().enumerate() {
            index.by_key.entry(f.key.clone()).or_default().push(i);
        }
        Ok(index)
    }

    /// The tree.
    pub fn tree(&self) -> ObjectId {
        self.tree
    }

    /// Every file, in git's order (by path).
    pub fn files(&self) -> &[TreeFile] {
        &self.files
    }

    /// The files holding `key`.
    pub fn files_of(&self, key: &Key) -> impl Iterator<Item = &TreeFile> {
        self.by_key
            .get(key)
            .into_iter()
            .flatten()
            .map(|&i| &self.files[i])
    }

    /// Whether some file holds `key`.
    pub fn has_key(&self, key: &Key) -> bool {
        self.by_key.contains_key(key)
    }
}

/// One path that differs between two trees: the file before and after
/// (`None` where there is none), with the key each is exported as.
#[derive(Debug, Clone)]
pub struct Change {
    /// The path.
    pub path: ExportPath,
    /// The file in the old tree.
    pub old: Option<(ObjectId, Key, FileKind)>,
    /// The file in the new tree.
    pub new: Option<(ObjectId, Key, FileKind)>,
}

/// The files that differ between `old` and `new` (git's `diff-tree -r`,
/// a mode change counting as a change): subtrees with the same object
/// are not looked into. Paths that cannot be exported are left out.
pub fn diff(
    repo: &gix::Repository,
    old: ObjectId,
    new: ObjectId,
) -> Result<Vec<Change>, TreeError> {
    type Side = Option<(ObjectId, EntryMode)>;
    let mut raw: Vec<(Vec<u8>, Side, Side)> = Vec::new();
    let mut stack: Vec<(Vec<u8>, Option<ObjectId>, Option<ObjectId>)> =
        vec![(Vec::new(), Some(old), Some(new))];
    while let Some((prefix, a, b)) = stack.pop() {
        if a == b {
            continue;
        }
        let list = |t: Option<ObjectId>| -> Result<Vec<Entry>, TreeError> {
            t.map_or(Ok(Vec::new()), |t| read_tree(repo, t))
        };
        let mut files: HashMap<Vec<u8>, (Side, Side)> = HashMap::new();
        let mut dirs: HashMap<Vec<u8>, (Option<ObjectId>, Option<ObjectId>)> = HashMap::new();
        for (side, entries) in [(0, list(a)?), (1, list(b)?)] {
            for e in entries {
                let name = e.filename.to_vec();
                match e.mode.kind() {
                    EntryKind::Tree => {
                        let d = dirs.entry(name).or_default();
                        if side == 0 {
                            d.0 = Some(e.oid);
                        } else {
                            d.1 = Some(e.oid);
                        }
                    }
                    EntryKind::Commit => {}
                    _ => {
                        let f = files.entry(name).or_default();
                        if side == 0 {
                            f.0 = Some((e.oid, e.mode));
                        } else {
                            f.1 = Some((e.oid, e.mode));
                        }
                    }
                }
            }
        }
        for (name, (x, y)) in files {
            if x != y {
                raw.push((join(&prefix, &name), x, y));
            }
        }
        for (name, (x, y)) in dirs {
            stack.push((join(&prefix, &name), x, y));
        }
    }
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    let mut keys = KeyCache::default();
    let mut out = Vec::with_capacity(raw.len());
    for (path, x, y) in raw {
        let Ok(path) = ExportPath::new(path) else {
            continue;
        };
        if path.is_in_git_dir() {
            continue;
        }
        let mut side = |s: Side| -> Result<_, TreeError> {
            s.map(|(oid, _)| {
                keys.export_key(repo, oid)
                    .map(|(key, kind)| (oid, key, kind))
            })
            .transpose()
        };
        let (old, new) = (side(x)?, side(y)?);
        out.push(Change { path, old, new });
    }
    Ok(out)
}

/// An entry `filterExport` left out of an exported tree, for the log of
/// excluded files (`.git/annex/export.ex/UUID`, one `git ls-tree` line
/// each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    /// The entry's mode, as git writes it (`100644`, `120000`, `160000`).
    pub mode: EntryMode,
    /// Its object.
    pub oid: ObjectId,
    /// Its path from the top of the tree.
    pub path: Vec<u8>,
}

impl Excluded {
    /// The entry as `git ls-tree` shows it (without quoting the path):
    /// `MODE TYPE OBJECT\tPATH`.
    pub fn ls_tree_line(&self) -> Vec<u8> {
        let kind = match self.mode.kind() {
            EntryKind::Commit => "commit",
            EntryKind::Tree => "tree",
            _ => "blob",
        };
        let mut out = format!("{:06o} {kind} {}\t", self.mode.value(), self.oid).into_bytes();
        out.extend_from_slice(&self.path);
        out
    }
}

/// A remote's preferred content, asked of an annexed file: its key and
/// its path from the top of the tree.
pub type Wanted<'a> = &'a dyn Fn(&Key, &str) -> bool;

/// What [`filter_tree`] made.
#[derive(Debug)]
pub struct Filtered {
    /// The tree to export (the tree itself when nothing was left out).
    pub tree: ObjectId,
    /// What was left out.
    pub excluded: Vec<Excluded>,
}

/// The tree git-annex's `filterExport` exports of `tree`: submodules and
/// symlinks that are not annexed left out; with `wanted` (the remote's
/// preferred content, given the key and the path), annexed files it does
/// not want left out too. Subtrees keep their place even when nothing is
/// left in them, as git-annex keeps them. New trees are written to git.
pub fn filter_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    wanted: Option<Wanted<'_>>,
) -> Result<Filtered, TreeError> {
    let mut excluded = Vec::new();
    let mut keys = KeyCache::default();
    let tree = filter_at(repo, tree, &[], wanted, &mut keys, &mut excluded)?;
    Ok(Filtered { tree, excluded })
}

fn filter_at(
    repo: &gix::Repository,
    tree: ObjectId,
    prefix: &[u8],
    wanted: Option<Wanted<'_>>,
    keys: &mut KeyCache,
    excluded: &mut Vec<Excluded>,
) -> Result<ObjectId, TreeError> {
    let entries = read_tree(repo, tree)?;
    let mut kept = Vec::with_capacity(entries.len());
    let mut modified = false;
    for mut e in entries {
        let path = join(prefix, &e.filename);
        let keep = match e.mode.kind() {
            EntryKind::Tree => {
                let sub = filter_at(repo, e.oid, &path, wanted, keys, excluded)?;
                if sub != e.oid {
                    e.oid = sub;
                    modified = true;
                }
                true
            }
            EntryKind::Commit => false,
            kind => {
                let symlink = kind == EntryKind::Link;
                match (keys.key(repo, e.oid)?, wanted) {
                    (Some(k), Some(w)) => w(&k, &String::from_utf8_lossy(&path)),
                    (Some(_), None) => true,
                    (None, _) => !symlink,
                }
            }
        };
        if keep {
            kept.push(e);
        } else {
            modified = true;
            excluded.push(Excluded {
                mode: e.mode,
                oid: e.oid,
                path,
            });
        }
    }
    if !modified {
        return Ok(tree);
    }
    let t = gix::objs::Tree { entries: kept };
    repo.write_object(&t)
        .map(|id| id.detach())
        .map_err(|e| tree_err(tree, e))
}
