//! Union merge, as git-annex merges versions of its branch: a file that
//! differs takes every line of every version, sorted, each once.

use std::collections::BTreeSet;

use gix::objs::tree::Entry;
use gix::objs::FindExt;
use gix::ObjectId;

use crate::error::{git, BranchError};

/// The union of the lines of two versions of a log: every line of either,
/// sorted by bytes, each once, each ending in a newline.
pub fn union_lines(a: &[u8], b: &[u8]) -> Vec<u8> {
    let set = line_set(a, b);
    let mut out = Vec::with_capacity(a.len() + b.len());
    for l in set {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    let empty = data.is_empty();
    data.split(|&b| b == b'\n').filter(move |_| !empty)
}

fn line_set<'a>(a: &'a [u8], b: &'a [u8]) -> BTreeSet<&'a [u8]> {
    lines(a).chain(lines(b)).collect()
}

/// Whether the union of `a` and `b` holds the same lines as `a` (in any
/// order, with any repeats), so that `a`'s blob is kept unchanged, as
/// git-annex keeps it.
fn union_is(a: &[u8], b: &[u8]) -> bool {
    let own: BTreeSet<&[u8]> = lines(a).collect();
    lines(b).all(|l| own.contains(l))
}

/// Union-merges two trees of the git-annex branch and writes the result:
/// files in one tree only are kept, files that differ get the union of
/// their lines.
pub fn union_merge_trees(
    repo: &gix::Repository,
    a: ObjectId,
    b: ObjectId,
) -> Result<ObjectId, BranchError> {
    if a == b {
        return Ok(a);
    }
    let ea = entries(repo, a)?;
    let eb = entries(repo, b)?;
    let mut out: Vec<Entry> = Vec::with_capacity(ea.len().max(eb.len()));
    let (mut i, mut j) = (0, 0);
    while i < ea.len() || j < eb.len() {
        let ord = match (ea.get(i), eb.get(j)) {
            (Some(x), Some(y)) => x.filename.cmp(&y.filename),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                out.push(ea[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(eb[j].clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&ea[i], &eb[j]);
                let merged = if x.oid == y.oid {
                    x.clone()
                } else if x.mode.is_tree() && y.mode.is_tree() {
                    Entry {
                        mode: x.mode,
                        filename: x.filename.clone(),
                        oid: union_merge_trees(repo, x.oid, y.oid)?,
                    }
                } else if x.mode.is_blob() && y.mode.is_blob() {
                    Entry {
                        mode: x.mode,
                        filename: x.filename.clone(),
                        oid: merge_blobs(repo, x.oid, y.oid)?,
                    }
                } else {
                    // A file against a directory: keep the first side.
                    x.clone()
                };
                out.push(merged);
                i += 1;
                j += 1;
            }
        }
    }
    out.sort();
    let tree = gix::objs::Tree { entries: out };
    Ok(repo.write_object(&tree).map_err(git)?.detach())
}

fn merge_blobs(repo: &gix::Repository, a: ObjectId, b: ObjectId) -> Result<ObjectId, BranchError> {
    let mut ba = Vec::new();
    let mut bb = Vec::new();
    let da = repo.objects.find_blob(&a, &mut ba).map_err(git)?.data;
    let db = repo.objects.find_blob(&b, &mut bb).map_err(git)?.data;
    if union_is(da, db) {
        return Ok(a);
    }
    if union_is(db, da) {
        return Ok(b);
    }
    Ok(repo.write_blob(union_lines(da, db)).map_err(git)?.detach())
}

/// A tree's entries, sorted by name bytes for the merge walk.
fn entries(repo: &gix::Repository, tree: ObjectId) -> Result<Vec<Entry>, BranchError> {
    let mut buf = Vec::new();
    let t = repo.objects.find_tree(&tree, &mut buf).map_err(git)?;
    let mut v: Vec<Entry> = t
        .entries
        .iter()
        .map(|e| Entry {
            mode: e.mode,
            filename: e.filename.to_owned(),
            oid: e.oid.to_owned(),
        })
        .collect();
    v.sort_by(|x, y| x.filename.cmp(&y.filename));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_sorts_and_dedups() {
        assert_eq!(union_lines(b"b\na\n", b"c\na\n"), b"a\nb\nc\n");
        assert_eq!(union_lines(b"", b"x"), b"x\n");
        assert_eq!(union_lines(b"", b""), b"");
        assert!(union_is(b"a\nb\n", b"b\n"));
        assert!(union_is(b"b\na\n", b"b\n"));
        assert!(!union_is(b"a\n", b"c\n"));
    }
}
