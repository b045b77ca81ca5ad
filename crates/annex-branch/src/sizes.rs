//! Repository sizes: for each repository, how many keys and how many bytes
//! the location logs say it holds, computed by streaming the branch's tree
//! and kept current by diffing trees from one branch commit to the next.
//!
//! As in git-annex, a key counts with the size in its name (0 when it has
//! none), and cluster UUIDs (never in location logs) are not counted.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::Path;

use annex_types::{Key, Uuid};
use gix::objs::FindExt;
use gix::ObjectId;

use crate::error::{git, BranchError};
use crate::logs::presence::{self, Status};
use crate::Branch;

/// Where `annex` keeps the sizes it last computed, under the git directory.
pub const REPO_SIZES_FILE: &str = "annex/repo-sizes";

/// What one repository holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepoSize {
    /// Number of keys.
    pub keys: u64,
    /// Sum of the keys' sizes, in bytes.
    pub bytes: u64,
}

/// The size of every repository at one commit of the branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoSizes {
    /// The branch commit these sizes describe.
    pub commit: ObjectId,
    /// Each repository's holdings, by UUID.
    pub sizes: BTreeMap<Uuid, RepoSize>,
}

/// What an incremental update looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Location logs that differed between the two commits.
    pub changed_logs: u64,
}

/// Sums keyed by UUID bytes, for the hot loop.
#[derive(Default)]
struct Tally(HashMap<Vec<u8>, (i128, i128)>);

impl Tally {
    fn add(&mut self, log: &[u8], size: u64, sign: i128) {
        presence::current(log, |info, status| {
            if status == Status::Present {
                let e = match self.0.get_mut(info) {
                    Some(e) => e,
                    None => self.0.entry(info.to_vec()).or_default(),
                };
                e.0 += sign;
                e.1 += sign * i128::from(size);
            }
        });
    }

    fn merge(&mut self, other: Tally) {
        for (k, (n, b)) in other.0 {
            let e = self.0.entry(k).or_default();
            e.0 += n;
            e.1 += b;
        }
    }

    fn apply(self, sizes: &mut BTreeMap<Uuid, RepoSize>) {
        for (k, (n, b)) in self.0 {
            let Some(u) = std::str::from_utf8(&k)
                .ok()
                .and_then(|s| Uuid::parse(s).ok())
            else {
                continue;
            };
            if u.is_cluster() {
                continue;
            }
            let e = sizes.entry(u).or_default();
            e.keys = clamp(i128::from(e.keys) + n);
            e.bytes = clamp(i128::from(e.bytes) + b);
        }
        sizes.retain(|_, s| s.keys > 0 || s.bytes > 0);
    }
}

fn clamp(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

/// The key a branch file name is the location log of (`KEY.log`), with
/// its size (0 when the key has none).
fn location_log_key_size(name: &[u8]) -> Option<u64> {
    let stem = name.strip_suffix(b".log")?;
    let key = Key::from_file_name(std::str::from_utf8(stem).ok()?).ok()?;
    Some(key.size().unwrap_or(0))
}

/// Whether a top-level or second-level tree name is a hash directory.
fn is_hash_dir(name: &[u8]) -> bool {
    name.len() == 3 && name.iter().all(|c| c.is_ascii_hexdigit())
}

impl RepoSizes {
    /// Computes every repository's size at `commit` from scratch, reading
    /// every location log, on all cores.
    pub fn compute(branch: &Branch, commit: ObjectId) -> Result<RepoSizes, BranchError> {
        let repo = branch.repo();
        let root = branch.tree_of(commit)?;
        let mut buf = Vec::new();
        let dirs: Vec<ObjectId> = repo
            .objects
            .find_tree(&root, &mut buf)
            .map_err(git)?
            .entries
            .iter()
            .filter(|e| e.mode.is_tree() && is_hash_dir(e.filename))
            .map(|e| e.oid.to_owned())
            .collect();
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 16);
        let chunk = dirs.len().div_ceil(threads).max(1);
        let tally = std::thread::scope(|s| {
            let handles: Vec<_> = dirs
                .chunks(chunk)
                .map(|part| {
                    let repo = repo.clone();
                    s.spawn(move || tally_dirs(&repo, part))
                })
                .collect();
            let mut total = Tally::default();
            for h in handles {
                match h.join() {
                    Ok(t) => total.merge(t?),
                    Err(_) => return Err(BranchError::Git("a size counting thread failed".into())),
                }
            }
            Ok(total)
        })?;
        let mut sizes = BTreeMap::new();
        tally.apply(&mut sizes);
        Ok(RepoSizes { commit, sizes })
    }

    /// Brings the sizes from their commit to `new`, reading only the
    /// location logs whose blobs differ between the two trees.
    pub fn update(&mut self, branch: &Branch, new: ObjectId) -> Result<UpdateStats, BranchError> {
        if new == self.commit {
            return Ok(UpdateStats::default());
        }
        let repo = branch.repo();
        let old_tree = branch.tree_of(self.commit)?;
        let new_tree = branch.tree_of(new)?;
        // The hash directories that differ, then those on all cores.
        let mut pairs: Vec<(Option<ObjectId>, Option<ObjectId>)> = Vec::new();
        diff_entries(
            repo,
            Some(old_tree),
            Some(new_tree),
            &mut |name, is_tree, ox, oy| {
                if is_tree && is_hash_dir(name) {
                    pairs.push((ox, oy));
                }
                Ok(())
            },
        )?;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 16);
        let chunk = pairs.len().div_ceil(threads).max(1);
        let (tally, changed_logs) = std::thread::scope(|s| {
            let handles: Vec<_> = pairs
                .chunks(chunk)
                .map(|part| {
                    let repo = repo.clone();
                    s.spawn(move || tally_changes(&repo, part))
                })
                .collect();
            let mut total = Tally::default();
            let mut changed = 0;
            for h in handles {
                match h.join() {
                    Ok(r) => {
                        let (t, n) = r?;
                        total.merge(t);
                        changed += n;
                    }
                    Err(_) => return Err(BranchError::Git("a size updating thread failed".into())),
                }
            }
            Ok((total, changed))
        })?;
        let stats = UpdateStats {
            changed_logs: changed_logs as u64,
        };
        tally.apply(&mut self.sizes);
        self.commit = new;
        Ok(stats)
    }

    /// The sizes with the journal's uncommitted location changes applied.
    pub fn with_journal(&self, branch: &Branch) -> Result<BTreeMap<Uuid, RepoSize>, BranchError> {
        let mut sizes = self.sizes.clone();
        let files = branch.journal().files().map_err(|source| BranchError::Io {
            context: "listing the journal".into(),
            source,
        })?;
        let tree = branch.tree_of(self.commit)?;
        let mut tally = Tally::default();
        for (path, _) in files {
            let name = path.rsplit('/').next().unwrap_or(&path);
            let Some(size) = location_log_key_size(name.as_bytes()) else {
                continue;
            };
            if let Some(old) = branch.read_in_tree(tree, &path)? {
                tally.add(&old, size, -1);
            }
            if let Some(new) = branch
                .journal()
                .read(&path)
                .map_err(|source| BranchError::Io {
                    context: "reading the journal".into(),
                    source,
                })?
            {
                tally.add(&new, size, 1);
            }
        }
        tally.apply(&mut sizes);
        Ok(sizes)
    }

    /// Loads sizes saved by [`RepoSizes::save`]; `None` when there are none
    /// or they do not parse.
    pub fn load(path: &Path) -> io::Result<Option<RepoSizes>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut lines = text.lines();
        let Some(commit) = lines
            .next()
            .and_then(|l| ObjectId::from_hex(l.as_bytes()).ok())
        else {
            return Ok(None);
        };
        let mut sizes = BTreeMap::new();
        for l in lines {
            let mut w = l.split(' ');
            let (Some(u), Some(k), Some(b), None) = (w.next(), w.next(), w.next(), w.next()) else {
                return Ok(None);
            };
            let (Ok(u), Ok(keys), Ok(bytes)) = (Uuid::parse(u), k.parse(), b.parse()) else {
                return Ok(None);
            };
            sizes.insert(u, RepoSize { keys, bytes });
        }
        Ok(Some(RepoSizes { commit, sizes }))
    }

    /// Saves the sizes, atomically: the commit, then `UUID KEYS BYTES`
    /// lines.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut out = Vec::new();
        writeln!(out, "{}", self.commit)?;
        for (u, s) in &self.sizes {
            writeln!(out, "{u} {} {}", s.keys, s.bytes)?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, out)?;
        std::fs::rename(tmp, path)
    }

    /// The current sizes of the branch: loaded from `REPO_SIZES_FILE` and
    /// updated incrementally when they are for an older commit, computed
    /// from scratch otherwise, and saved back.
    pub fn current(branch: &Branch) -> Result<RepoSizes, BranchError> {
        let head = branch.require_head()?;
        let path = branch.git_dir().join(REPO_SIZES_FILE);
        let saved = RepoSizes::load(&path).ok().flatten();
        let sizes = match saved {
            Some(s) if s.commit == head => return Ok(s),
            Some(mut s) if branch.is_ancestor(s.commit, head)? => {
                s.update(branch, head)?;
                s
            }
            _ => RepoSizes::compute(branch, head)?,
        };
        // Not being able to save (a read-only repository) only costs time.
        let _ = sizes.save(&path);
        Ok(sizes)
    }
}

fn tally_dirs(repo: &gix::Repository, dirs: &[ObjectId]) -> Result<Tally, BranchError> {
    let mut tally = Tally::default();
    let mut tbuf = Vec::new();
    let mut sbuf = Vec::new();
    let mut bbuf = Vec::new();
    let mut subdirs = Vec::new();
    for d in dirs {
        subdirs.clear();
        let t = repo.objects.find_tree(d, &mut tbuf).map_err(git)?;
        subdirs.extend(
            t.entries
                .iter()
                .filter(|e| e.mode.is_tree())
                .map(|e| e.oid.to_owned()),
        );
        for sd in &subdirs {
            let st = repo.objects.find_tree(sd, &mut sbuf).map_err(git)?;
            for e in &st.entries {
                if !e.mode.is_blob() {
                    continue;
                }
                let Some(size) = location_log_key_size(e.filename) else {
                    continue;
                };
                let blob = repo.objects.find_blob(e.oid, &mut bbuf).map_err(git)?;
                tally.add(blob.data, size, 1);
            }
        }
    }
    Ok(tally)
}

type Visit<'a> =
    dyn FnMut(&[u8], Option<ObjectId>, Option<ObjectId>) -> Result<(), BranchError> + 'a;

/// The changes of the location logs under some pairs of old and new hash
/// directories: the tally of repositories gained and lost, and how many
/// logs changed.
fn tally_changes(
    repo: &gix::Repository,
    pairs: &[(Option<ObjectId>, Option<ObjectId>)],
) -> Result<(Tally, usize), BranchError> {
    let mut tally = Tally::default();
    let mut changed = 0;
    let mut buf = Vec::new();
    for (old, new) in pairs {
        diff_trees(repo, *old, *new, 1, &mut |name, old, new| {
            let Some(size) = location_log_key_size(name) else {
                return Ok(());
            };
            changed += 1;
            if let Some(old) = old {
                tally.add(
                    repo.objects.find_blob(&old, &mut buf).map_err(git)?.data,
                    size,
                    -1,
                );
            }
            if let Some(new) = new {
                tally.add(
                    repo.objects.find_blob(&new, &mut buf).map_err(git)?.data,
                    size,
                    1,
                );
            }
            Ok(())
        })?;
    }
    Ok((tally, changed))
}

type EntryVisit<'a> =
    dyn FnMut(&[u8], bool, Option<ObjectId>, Option<ObjectId>) -> Result<(), BranchError> + 'a;

/// Calls `visit(name, is_tree, old, new)` for every entry that differs
/// between two trees (one level).
fn diff_entries(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    visit: &mut EntryVisit<'_>,
) -> Result<(), BranchError> {
    if old == new {
        return Ok(());
    }
    let load = |id: Option<ObjectId>| -> Result<Vec<(Vec<u8>, bool, ObjectId)>, BranchError> {
        let Some(id) = id else { return Ok(Vec::new()) };
        let mut buf = Vec::new();
        let t = repo.objects.find_tree(&id, &mut buf).map_err(git)?;
        let mut v: Vec<_> = t
            .entries
            .iter()
            .map(|e| (e.filename.to_vec(), e.mode.is_tree(), e.oid.to_owned()))
            .collect();
        v.sort();
        Ok(v)
    };
    let a = load(old)?;
    let b = load(new)?;
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => (&x.0, x.1).cmp(&(&y.0, y.1)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (x, y) = match ord {
            std::cmp::Ordering::Less => {
                i += 1;
                (Some(&a[i - 1]), None)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (None, Some(&b[j - 1]))
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                (Some(&a[i - 1]), Some(&b[j - 1]))
            }
        };
        let (name, is_tree) = match (x, y) {
            (Some(e), _) | (None, Some(e)) => (&e.0, e.1),
            (None, None) => continue,
        };
        let (ox, oy) = (x.map(|e| e.2), y.map(|e| e.2));
        if ox != oy {
            visit(name, is_tree, ox, oy)?;
        }
    }
    Ok(())
}

/// Calls `visit(name, old_blob, new_blob)` for every blob that differs
/// between two trees at `depth`, down to the hash directories' depth (2).
fn diff_trees(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    depth: usize,
    visit: &mut Visit<'_>,
) -> Result<(), BranchError> {
    diff_entries(repo, old, new, &mut |name, is_tree, ox, oy| {
        if is_tree {
            if depth < 2 {
                diff_trees(repo, ox, oy, depth + 1, visit)?;
            }
        } else if depth == 2 {
            visit(name, ox, oy)?;
        }
        Ok(())
    })
}
