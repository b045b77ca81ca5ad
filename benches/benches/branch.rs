//! One key's locations read from the git-annex branch (with the journal
//! and cluster.log consulted, as `Branch::locations` does for every
//! decision), and without clusters.
//!
//! Uses the repository named by ANNEX_BENCH_BRANCH_REPO (for example one
//! made by `benches/scripts/gen-branch.py 1000000 10 DIR`), or generates one
//! of 100,000 keys over 10 repositories in a temporary directory.

use std::path::PathBuf;
use std::process::Command;

use annex_branch::Branch;
use annex_protocol::Key;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn repository() -> (PathBuf, Option<tempfile::TempDir>) {
    if let Some(dir) = std::env::var_os("ANNEX_BENCH_BRANCH_REPO") {
        return (PathBuf::from(dir), None);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gen-branch.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["100000", "10"])
        .arg(&dir)
        .output()
        .expect("python3 and git-annex are needed to generate the branch");
    assert!(out.status.success(), "{out:?}");
    (dir, Some(tmp))
}

/// Keys the generator wrote (it names them after the SHA-256 of their
/// number).
fn some_keys(branch: &Branch) -> Vec<Key> {
    let out = Command::new("git")
        .args(["ls-tree", "-r", "--name-only", "refs/heads/git-annex"])
        .current_dir(branch.git_dir())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(".log") && l.matches('/').count() == 2)
        .step_by(997)
        .take(100)
        .filter_map(|l| {
            let name = l.rsplit('/').next()?.strip_suffix(".log")?;
            Key::from_file_name(name).ok()
        })
        .collect()
}

fn locations(c: &mut Criterion) {
    let (dir, _tmp) = repository();
    let branch = Branch::open(&dir).unwrap();
    let keys = some_keys(&branch);
    assert!(!keys.is_empty());
    assert!(!branch.locations(&keys[0]).unwrap().is_empty());
    let mut i = 0;
    c.bench_function("one key's locations", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(branch.locations(&keys[i]).unwrap())
        })
    });
    c.bench_function("one key's locations, without clusters", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(branch.locations_without_clusters(&keys[i]).unwrap())
        })
    });
}

criterion_group!(benches, locations);
criterion_main!(benches);
