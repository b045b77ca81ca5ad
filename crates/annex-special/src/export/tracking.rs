//! Which tree a push exports to a remote, as git-annex's `post-receive`
//! decides (Command/PostReceive.hs): the remote's
//! `annex-tracking-branch` (`BRANCH` or `BRANCH:SUBDIR`), when the push
//! updated that branch or its `synced/` twin; and the remote tracking
//! branch `git annex export` points at the commit once every file is in
//! the remote (`getExportCommit`).

use std::collections::BTreeSet;

use gix::ObjectId;

/// The refs a push updated, from what git hands its post-receive hook on
/// standard input: lines `OLD NEW REF`, object names in hex. Lines of
/// another form are skipped, as git-annex skips them.
pub fn parse_hook_input(input: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in input.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let [old, new, r] = words.as_slice() else {
            continue;
        };
        let is_sha =
            |s: &str| matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
        if is_sha(old) && is_sha(new) {
            out.insert((*r).to_owned());
        }
    }
    out
}

/// A ref's short form, as git-annex's `Git.Ref.base` makes it
/// (`refs/heads/` or `refs/remotes/` taken off).
fn base(r: &str) -> &str {
    let r = r.strip_prefix("refs/remotes/").unwrap_or(r);
    r.strip_prefix("refs/heads/").unwrap_or(r)
}

/// A branch without the adjusted or view branch it may be (`adjusted/
/// master(unlocked)` is `master`), as git-annex's `origBranch` does.
fn orig_branch(b: &str) -> &str {
    let b = base(b);
    if let Some(rest) = b.strip_prefix("adjusted/") {
        return rest.split_once('(').map_or(rest, |(o, _)| o);
    }
    if let Some(rest) = b.strip_prefix("views/") {
        return rest.split_once('(').map_or(rest, |(o, _)| o);
    }
    b
}

/// What a push exports to a remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedExport {
    /// The ref pushed, with `:SUBDIR` when the tracking branch names one.
    pub treeish: String,
    /// The tree it names.
    pub tree: ObjectId,
    /// The remote tracking branch to set once the export is complete,
    /// and the commit.
    pub tracking: Option<(String, ObjectId)>,
}

fn resolve(repo: &gix::Repository, spec: &str) -> Option<ObjectId> {
    repo.rev_parse_single(spec).ok().map(|id| id.detach())
}

/// What a push of `pushed` exports to the remote `remote_name` whose
/// `annex-tracking-branch` is `tracking_branch`: the branch's tree (or its
/// subdirectory's) when the push updated the branch or its `synced/`
/// twin; `None` otherwise, or when that tree is not there.
pub fn pushed_export(
    repo: &gix::Repository,
    pushed: &BTreeSet<String>,
    tracking_branch: &str,
    remote_name: &str,
) -> Option<PushedExport> {
    let (b, subdir) = match tracking_branch.split_once(':') {
        Some((b, d)) if !d.is_empty() => (b, Some(d)),
        Some((b, _)) => (b, None),
        None => (tracking_branch, None),
    };
    let branch_ref = format!("refs/heads/{}", base(b));
    let synced_ref = format!("refs/heads/synced/{}", orig_branch(b));
    let pushed_ref = if pushed.contains(&branch_ref) {
        branch_ref
    } else if pushed.contains(&synced_ref) {
        synced_ref
    } else {
        return None;
    };
    let treeish = match subdir {
        Some(d) => format!("{pushed_ref}:{}", d.trim_matches('/')),
        None => pushed_ref,
    };
    let spec = if treeish.contains(':') {
        treeish.clone()
    } else {
        format!("{treeish}^{{tree}}")
    };
    let tree = resolve(repo, &spec)?;
    let is_tree = repo
        .find_header(tree)
        .is_ok_and(|h| h.kind() == gix::objs::Kind::Tree);
    if !is_tree {
        return None;
    }
    Some(PushedExport {
        tracking: export_commit(repo, &treeish, remote_name),
        treeish,
        tree,
    })
}

/// The remote tracking branch `git annex export TREEISH --to REMOTE`
/// sets, and the commit it points it at (git-annex's `getExportCommit`):
/// for a local branch (with or without `:SUBDIR`),
/// `refs/remotes/REMOTE/BRANCH` and the branch's commit; nothing for a
/// ref of a remote.
pub fn export_commit(
    repo: &gix::Repository,
    treeish: &str,
    remote_name: &str,
) -> Option<(String, ObjectId)> {
    let without = treeish.strip_prefix("refs/heads/").unwrap_or(treeish);
    let baseref = without.split(':').next().unwrap_or(without);
    if baseref.contains('/') && resolve(repo, &format!("refs/remotes/{baseref}")).is_some() {
        return None;
    }
    let commit = resolve(repo, &format!("refs/heads/{baseref}"))?;
    Some((
        format!("refs/remotes/{remote_name}/{}", base(baseref)),
        commit,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_input_as_git_annex_reads_it() {
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let input = format!(
            "{z} {a} refs/heads/master\n{a} {z} refs/heads/synced/master\nnot a line\n{a} {a}\n{a} x refs/heads/y\n"
        );
        let got = parse_hook_input(input.as_bytes());
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["refs/heads/master", "refs/heads/synced/master"]
        );
    }

    #[test]
    fn branches_and_their_synced_twins() {
        let d = tempfile::tempdir().unwrap();
        let g = |args: &[&str]| annex_test_support::git(d.path(), args);
        g(&["init", "-q", "-b", "main"]);
        g(&["config", "user.name", "t"]);
        g(&["config", "user.email", "t@example.invalid"]);
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), "x").unwrap();
        g(&["add", "."]);
        g(&["commit", "-q", "-m", "x"]);
        g(&["branch", "synced/main"]);
        let repo = gix::open(d.path()).unwrap();
        let hex = |s: &str| ObjectId::from_hex(g(&["rev-parse", s]).trim().as_bytes()).unwrap();
        let commit = hex("main");
        let pushed: BTreeSet<String> = ["refs/heads/main".to_owned()].into();
        let e = pushed_export(&repo, &pushed, "main", "dexp").unwrap();
        assert_eq!(e.tree, hex("main^{tree}"));
        assert_eq!(e.tracking, Some(("refs/remotes/dexp/main".into(), commit)));
        let e = pushed_export(&repo, &pushed, "main:sub", "dexp").unwrap();
        assert_eq!(
            (e.treeish.as_str(), e.tree),
            ("refs/heads/main:sub", hex("main:sub"))
        );
        assert_eq!(e.tracking, Some(("refs/remotes/dexp/main".into(), commit)));
        assert!(pushed_export(&repo, &pushed, "main:nothere", "dexp").is_none());
        assert!(pushed_export(&repo, &pushed, "other", "dexp").is_none());
        let synced: BTreeSet<String> = ["refs/heads/synced/main".to_owned()].into();
        let e = pushed_export(&repo, &synced, "refs/heads/main", "dexp").unwrap();
        assert_eq!(e.treeish, "refs/heads/synced/main");
        assert_eq!(
            e.tracking,
            Some(("refs/remotes/dexp/synced/main".into(), commit))
        );
    }
}
