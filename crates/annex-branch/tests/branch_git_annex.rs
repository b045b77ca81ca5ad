//! The branch library against the real git-annex, in both directions: what
//! ours commits git-annex reads, what git-annex journals or commits ours
//! reads, concurrent writers lose nothing, union merges agree, and
//! repository sizes match `git annex info`.

use std::path::{Path, PathBuf};

use annex_branch::locations::location_log_path;
use annex_branch::logs::paths::UUID_LOG;
use annex_branch::logs::uuid_based::ValueError;
use annex_branch::sizes::{RepoSize, RepoSizes};
use annex_branch::Branch;
use annex_test_support::{git, init_annex_repo, setpresentkey};
use annex_types::{Key, Uuid};

/// A fresh repository initialised by the real git-annex, with a git user
/// for the commits this crate makes.
fn annex_repo(parent: &Path, name: &str) -> (PathBuf, Uuid) {
    let (dir, uuid) = init_annex_repo(parent, name, name);
    git(&dir, &["config", "user.name", "t"]);
    git(&dir, &["config", "user.email", "t@example.invalid"]);
    (dir, Uuid::parse(&uuid).unwrap())
}

fn key(n: usize, size: u64) -> Key {
    Key::parse(&format!("SHA256E-s{size}--{n:064x}.dat")).unwrap()
}

fn whereis(dir: &Path, key: &Key) -> Vec<String> {
    let out = git(
        dir,
        &["annex", "whereis", "--json", &format!("--key={key}")],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let mut u: Vec<String> = v["whereis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["uuid"].as_str().unwrap().to_string())
        .collect();
    u.sort();
    u
}

const OTHER: &str = "11111111-2222-3333-4444-555555555555";

#[test]
fn what_we_commit_git_annex_reads() {
    let t = tempfile::tempdir().unwrap();
    let (dir, here) = annex_repo(t.path(), "r");
    let other = Uuid::parse(OTHER).unwrap();
    let b = Branch::open(&dir).unwrap();
    let k = key(1, 1234);
    assert!(b.set_location(&k, &here, true).unwrap());
    assert!(b.set_location(&k, &other, true).unwrap());
    // Setting what the log already says changes nothing.
    assert!(!b.set_location(&k, &other, true).unwrap());
    let before = b.head().unwrap().unwrap();
    let c = b.commit("update").unwrap().expect("a commit");
    assert_ne!(c, before);
    assert!(!b.journal().is_dirty().unwrap());
    assert_eq!(b.head().unwrap(), Some(c));
    git(&dir, &["fsck", "--no-progress"]);
    let committed = git(
        &dir,
        &[
            "cat-file",
            "-p",
            &format!("git-annex:{}", location_log_path(&k)),
        ],
    );
    assert!(committed.contains(&format!(" 1 {here}\n")), "{committed}");
    assert_eq!(whereis(&dir, &k).len(), 2);
    // git-annex reads what we journal and have not committed (and
    // commits it), and goes on writing the branch we wrote.
    b.set_location(&k, &other, false).unwrap();
    assert!(b.journal().is_dirty().unwrap());
    assert_eq!(whereis(&dir, &k), vec![here.to_string()]);
    assert!(!b.journal().is_dirty().unwrap());
    git(
        &dir,
        &["annex", "setpresentkey", &k.to_string(), OTHER, "1"],
    );
    assert_eq!(whereis(&dir, &k).len(), 2);
    assert_eq!(b.locations_without_clusters(&k).unwrap().len(), 2);
    // With the log true to this repository's (empty) store, git-annex's
    // fsck of every key finds nothing wrong.
    b.set_location(&k, &here, false).unwrap();
    b.commit("update").unwrap();
    git(&dir, &["annex", "fsck", "--fast", "--all", "--quiet"]);
}

#[test]
fn what_git_annex_journals_we_read() {
    let t = tempfile::tempdir().unwrap();
    let (dir, here) = annex_repo(t.path(), "r");
    let k = key(2, 10);
    git(
        &dir,
        &[
            "-c",
            "annex.alwayscommit=false",
            "annex",
            "setpresentkey",
            &k.to_string(),
            &here.to_string(),
            "1",
        ],
    );
    let b = Branch::open(&dir).unwrap();
    assert!(
        b.journal().is_dirty().unwrap(),
        "git-annex left it journalled"
    );
    assert_eq!(
        b.locations_without_clusters(&k).unwrap(),
        vec![here.clone()]
    );
    assert_eq!(b.read_committed(&location_log_path(&k)).unwrap(), None);
    // Committing it ourselves gives what git-annex would have committed.
    b.commit("update").unwrap();
    assert!(b.read_committed(&location_log_path(&k)).unwrap().is_some());
    assert_eq!(whereis(&dir, &k), vec![here.to_string()]);
}

#[test]
fn no_branch_names_annex_init() {
    let t = tempfile::tempdir().unwrap();
    git(t.path(), &["init", "-q", "plain"]);
    let b = Branch::open(&t.path().join("plain")).unwrap();
    let e = b.require_head().unwrap_err().to_string();
    assert!(e.contains("annex init"), "{e}");
    assert!(Branch::open(&t.path().join("nothing-here")).is_err());
}

#[test]
fn concurrent_writers_lose_no_line() {
    let t = tempfile::tempdir().unwrap();
    let (dir, here) = annex_repo(t.path(), "r");
    let n = 40;
    std::thread::scope(|s| {
        let d = dir.clone();
        let h = here.clone();
        let ours = s.spawn(move || {
            let b = Branch::open(&d).unwrap();
            for i in 0..n {
                b.set_location(&key(1000 + i, 1), &h, true).unwrap();
                if i % 5 == 0 {
                    b.commit("update").unwrap();
                }
            }
            b.commit("update").unwrap();
        });
        // Meanwhile git-annex records other keys and commits each time.
        let mut input = String::new();
        for i in 0..n {
            input.push_str(&format!("{} {} 1\n", key(2000 + i, 1), OTHER));
        }
        setpresentkey(&dir, &input);
        ours.join().unwrap();
    });
    let b = Branch::open(&dir).unwrap();
    b.commit("update").unwrap();
    git(&dir, &["annex", "merge", "--quiet"]);
    for i in 0..n {
        assert_eq!(
            b.locations_without_clusters(&key(1000 + i, 1)).unwrap(),
            vec![here.clone()],
            "our key {i}"
        );
        assert_eq!(
            whereis(&dir, &key(2000 + i, 1)),
            vec![OTHER.to_string()],
            "git-annex's key {i}"
        );
        assert_eq!(
            whereis(&dir, &key(1000 + i, 1)),
            vec![here.to_string()],
            "our key {i}"
        );
    }
}

#[test]
fn union_merge_of_remote_branches() {
    let t = tempfile::tempdir().unwrap();
    let (a, ua) = annex_repo(t.path(), "a");
    git(t.path(), &["clone", "-q", "a", "b"]);
    let b_dir = t.path().join("b");
    git(&b_dir, &["config", "user.name", "t"]);
    git(&b_dir, &["config", "user.email", "t@example.invalid"]);
    git(&b_dir, &["annex", "init", "-q", "b"]);
    let ub = Uuid::parse(git(&b_dir, &["config", "annex.uuid"]).trim()).unwrap();
    let k = key(7, 77);
    // Both sides record the same key, concurrently.
    git(
        &a,
        &[
            "annex",
            "setpresentkey",
            &k.to_string(),
            &ua.to_string(),
            "1",
        ],
    );
    git(
        &b_dir,
        &[
            "annex",
            "setpresentkey",
            &k.to_string(),
            &ub.to_string(),
            "1",
        ],
    );
    // setpresentkey leaves its change journalled; the next command commits.
    git(&b_dir, &["annex", "merge", "--quiet"]);
    git(&a, &["remote", "add", "b", "../b"]);
    git(&a, &["fetch", "-q", "b"]);
    let branch = Branch::open(&a).unwrap();
    let report = branch.merge().unwrap();
    assert_eq!(report.merged, vec!["refs/remotes/b/git-annex".to_string()]);
    assert!(!report.fast_forwarded);
    let mut want = vec![ua.clone(), ub.clone()];
    want.sort();
    assert_eq!(branch.locations_without_clusters(&k).unwrap(), want);
    // git-annex finds nothing more to merge and agrees on the result.
    let again = branch.merge().unwrap();
    assert!(again.merged.is_empty());
    assert_eq!(whereis(&a, &k).len(), 2);
    // The merge is byte for byte what git-annex makes of the same refs.
    let ours = git(
        &a,
        &[
            "cat-file",
            "-p",
            &format!("git-annex:{}", location_log_path(&k)),
        ],
    );
    git(&b_dir, &["remote", "add", "a", "../a"]);
    git(&b_dir, &["fetch", "-q", "a"]);
    git(
        &b_dir,
        &[
            "update-ref",
            "refs/remotes/a/git-annex",
            &format!("{}^1", git(&a, &["rev-parse", "git-annex"]).trim()),
        ],
    );
    git(&b_dir, &["annex", "merge", "--quiet"]);
    let theirs = git(
        &b_dir,
        &[
            "cat-file",
            "-p",
            &format!("git-annex:{}", location_log_path(&k)),
        ],
    );
    assert_eq!(ours, theirs);
    git(&a, &["fsck", "--no-progress"]);
}

#[test]
fn sizes_match_git_annex_info_and_update_incrementally() {
    let t = tempfile::tempdir().unwrap();
    let (dir, here) = annex_repo(t.path(), "r");
    let mut input = String::new();
    for i in 0..300 {
        input.push_str(&format!("{} {} 1\n", key(i, i as u64 * 10), here));
        if i % 3 == 0 {
            input.push_str(&format!("{} {} 1\n", key(i, i as u64 * 10), OTHER));
        }
    }
    // A key without a size counts as 0 bytes.
    input.push_str(&format!("WORM--nosize {OTHER} 1\n"));
    setpresentkey(&dir, &input);
    git(&dir, &["annex", "merge", "--quiet"]);
    let b = Branch::open(&dir).unwrap();
    let head = b.require_head().unwrap();
    let sizes = RepoSizes::compute(&b, head).unwrap();
    let info = |dir: &Path| -> Vec<(String, u64)> {
        let out = git(dir, &["annex", "info", "--bytes", "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let mut r: Vec<(String, u64)> = v["annex sizes of repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["uuid"].as_str().unwrap().to_string(),
                    e["size"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        r.sort();
        r
    };
    let ours = |s: &RepoSizes| -> Vec<(String, u64)> {
        s.sizes
            .iter()
            .map(|(u, s)| (u.to_string(), s.bytes))
            .collect()
    };
    assert_eq!(ours(&sizes), info(&dir));
    assert_eq!(sizes.sizes[&here].keys, 300);
    assert_eq!(
        sizes.sizes[&Uuid::parse(OTHER).unwrap()],
        RepoSize {
            keys: 101,
            bytes: (0..300).step_by(3).map(|i| i * 10).sum()
        }
    );
    // Change some keys with git-annex, then update incrementally.
    let mut input = String::new();
    for i in 0..30 {
        input.push_str(&format!("{} {} 0\n", key(i, i as u64 * 10), here));
    }
    input.push_str(&format!("{} {} 1\n", key(5000, 12345), OTHER));
    setpresentkey(&dir, &input);
    git(&dir, &["annex", "merge", "--quiet"]);
    let new_head = b.require_head().unwrap();
    let mut updated = sizes.clone();
    let stats = updated.update(&b, new_head).unwrap();
    assert_eq!(stats.changed_logs, 31);
    assert_eq!(updated, RepoSizes::compute(&b, new_head).unwrap());
    assert_eq!(ours(&updated), info(&dir));
    // Saved and loaded, the state gives the same answer.
    let f = t.path().join("sizes");
    updated.save(&f).unwrap();
    assert_eq!(RepoSizes::load(&f).unwrap().unwrap(), updated);
    // Journalled changes count too.
    b.set_location(&key(5000, 12345), &here, true).unwrap();
    let with = updated.with_journal(&b).unwrap();
    assert_eq!(with[&here].bytes, updated.sizes[&here].bytes + 12345);
}

#[test]
fn locations_add_clusters_as_git_annex_does() {
    let t = tempfile::tempdir().unwrap();
    let (gw, _) = annex_repo(t.path(), "gw");
    let (_n1, u1) = annex_repo(t.path(), "n1");
    let (_n2, u2) = annex_repo(t.path(), "n2");
    for (name, u) in [("n1", &u1), ("n2", &u2)] {
        git(&gw, &["remote", "add", name, &format!("../{name}")]);
        git(
            &gw,
            &["config", &format!("remote.{name}.annex-uuid"), u.as_str()],
        );
        git(
            &gw,
            &[
                "config",
                &format!("remote.{name}.annex-cluster-node"),
                "mycluster",
            ],
        );
    }
    git(&gw, &["annex", "initcluster", "mycluster"]);
    git(&gw, &["annex", "updatecluster"]);
    let k = key(9, 9);
    git(
        &gw,
        &["annex", "setpresentkey", &k.to_string(), u1.as_str(), "1"],
    );
    let b = Branch::open(&gw).unwrap();
    let ours: Vec<String> = {
        let mut v: Vec<String> = b
            .locations(&k)
            .unwrap()
            .iter()
            .map(|u| u.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(ours.iter().any(|u| Uuid::parse(u).unwrap().is_cluster()));
    assert_eq!(ours, whereis(&gw, &k));
    // A cluster UUID is never written to a location log.
    let cluster = ours.iter().find(|u| u.starts_with("ac")).unwrap();
    assert!(!b
        .set_location(&k, &Uuid::parse(cluster).unwrap(), false)
        .unwrap());
    assert_eq!(b.locations_without_clusters(&k).unwrap(), vec![u1.clone()]);
}

#[test]
fn a_refused_change_writes_nothing_and_hands_back_its_error() {
    #[derive(Debug, PartialEq)]
    enum Mine {
        TooLong,
        Branch,
    }
    impl From<annex_branch::BranchError> for Mine {
        fn from(_: annex_branch::BranchError) -> Mine {
            Mine::Branch
        }
    }
    let t = tempfile::tempdir().unwrap();
    let (dir, _) = annex_repo(t.path(), "r");
    let b = Branch::open(&dir).unwrap();
    let before = b.read(UUID_LOG).unwrap();
    let r = b.try_change(UUID_LOG, |old| {
        if old.len() > 10 {
            return Err(Mine::TooLong);
        }
        Ok(Some(b"overwritten\n".to_vec()))
    });
    assert_eq!(r, Err(Mine::TooLong));
    assert!(!b.journal().is_dirty().unwrap());
    assert_eq!(b.read(UUID_LOG).unwrap(), before);
    // A change that goes through is written; one to the same bytes is not.
    let grown = [before.clone(), b"x\n".to_vec()].concat();
    assert_eq!(
        b.try_change::<Mine>(UUID_LOG, |_| Ok(Some(grown.clone()))),
        Ok(true)
    );
    assert_eq!(b.read(UUID_LOG).unwrap(), grown);
    assert_eq!(
        b.try_change::<Mine>(UUID_LOG, |_| Ok(Some(grown.clone()))),
        Ok(false)
    );
}

/// The descriptions git-annex shows in `git annex info`, by UUID.
fn described(dir: &Path) -> Vec<(String, String)> {
    let out = git(dir, &["annex", "info", "--fast", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["semitrusted repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |f: &str| r[f].as_str().unwrap().to_owned();
            (s("uuid"), s("description"))
        })
        .collect()
}

#[test]
fn descriptions_we_record_git_annex_shows() {
    type Error = Box<dyn std::error::Error + Send + Sync>;
    let t = tempfile::tempdir().unwrap();
    let (dir, _) = annex_repo(t.path(), "r");
    let b = Branch::open(&dir).unwrap();
    let other = Uuid::parse(OTHER).unwrap();
    // Described twice: the later description wins, a newline written as
    // git-annex writes it.
    assert!(b.set_description::<Error>(&other, "first").unwrap());
    assert!(b.set_description::<Error>(&other, "two\nlines").unwrap());
    b.commit("update").unwrap();
    let want = (OTHER.to_owned(), "two\\nlines".to_owned());
    assert!(described(&dir).contains(&want), "{:?}", described(&dir));

    // A description that cannot be logged is refused with its error, and
    // nothing is written.
    let err = b
        .set_description::<Error>(&other, "carriage\rreturn")
        .unwrap_err();
    assert!(err.downcast_ref::<ValueError>().is_some(), "{err}");
    assert!(!b.journal().is_dirty().unwrap());
    assert!(described(&dir).contains(&want));
}

/// A tree remembered as git-annex remembers exported trees: grafted at
/// `export.tree` in a commit `graft`, then the branch's tree as it was in
/// `graft cleanup`; git-annex goes on using the branch, and the tree is
/// reachable from it.
#[test]
fn remembered_trees_are_grafted_as_git_annex_grafts_them() {
    let t = tempfile::tempdir().unwrap();
    let (dir, here) = annex_repo(t.path(), "r");
    std::fs::write(dir.join("f"), "x").unwrap();
    git(&dir, &["add", "f"]);
    git(&dir, &["commit", "-q", "-m", "f"]);
    let tree = git(&dir, &["rev-parse", "HEAD^{tree}"]).trim().to_string();
    let b = Branch::open(&dir).unwrap();
    let before = git(&dir, &["rev-parse", "git-annex^{tree}"]);
    let c = b
        .remember_tree(
            gix::ObjectId::from_hex(tree.as_bytes()).unwrap(),
            "export.tree",
        )
        .unwrap();
    assert_eq!(git(&dir, &["rev-parse", "git-annex"]).trim(), c.to_string());
    assert_eq!(git(&dir, &["rev-parse", "git-annex^{tree}"]), before);
    assert_eq!(
        git(&dir, &["log", "-1", "--format=%s", "git-annex"]).trim(),
        "graft cleanup"
    );
    assert_eq!(
        git(&dir, &["log", "-1", "--format=%s", "git-annex^"]).trim(),
        "graft"
    );
    assert_eq!(
        git(&dir, &["rev-parse", "git-annex^:export.tree"]).trim(),
        tree
    );
    // git-annex still reads and writes the branch.
    git(&dir, &["annex", "describe", "here", "still here"]);
    assert!(git(&dir, &["annex", "info", "--fast"]).contains("still here"));
    let _ = here;
}
