//! `DirectoryRepositories`, the repositories of `annex p2phttp --directory`,
//! over repositories made by git-annex: which are found, and how additions
//! and removals are followed.

use std::path::Path;

use annex_http::server::{DirectoryRepositories, Repositories};
use annex_protocol::Uuid;
use annex_test_support::{git, init_annex_repo, init_bare_annex_repo};

fn uuid(text: &str) -> Uuid {
    Uuid::parse(text).unwrap()
}

fn served(repos: &DirectoryRepositories) -> Vec<Uuid> {
    repos.uuids()
}

fn sorted(mut uuids: Vec<Uuid>) -> Vec<Uuid> {
    uuids.sort();
    uuids
}

#[test]
fn repositories_found_below_the_directory_by_git_annex_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("top");
    std::fs::create_dir_all(top.join("user")).unwrap();
    std::fs::create_dir_all(top.join("deep/er/still")).unwrap();
    let (a, a_uuid) = init_annex_repo(&top, "a", "a");
    let (_, b_uuid) = init_bare_annex_repo(&top.join("user"), "b.git", "b");
    let (_, deep_uuid) = init_annex_repo(&top.join("deep/er/still"), "d", "d");
    // A repository inside another is not found.
    let (_, nested_uuid) = init_annex_repo(&a, "nested", "nested");
    // A git repository without git-annex is passed over.
    std::fs::create_dir(top.join("plain")).unwrap();
    git(&top.join("plain"), &["init", "-q"]);
    // A symlink to a repository serves it; a symlink to any other
    // directory is not followed.
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let (linked, linked_uuid) = init_annex_repo(&outside, "linked", "linked");
    let (_, hidden_uuid) = init_annex_repo(&outside, "hidden", "hidden");
    std::os::unix::fs::symlink(&linked, top.join("link-to-repo")).unwrap();
    std::os::unix::fs::symlink(&outside, top.join("link-to-dir")).unwrap();
    // A linked work tree serves its repository's annex.
    let (main, main_uuid) = init_annex_repo(&outside, "main", "main");
    git(&main, &["commit", "-q", "--allow-empty", "-m", "first"]);
    let wt = top.join("wt");
    git(
        &main,
        &["worktree", "add", "-q", "--detach", wt.to_str().unwrap()],
    );

    let repos = DirectoryRepositories::new(vec![top.clone()]);
    assert_eq!(
        served(&repos),
        sorted(vec![
            uuid(&a_uuid),
            uuid(&b_uuid),
            uuid(&deep_uuid),
            uuid(&linked_uuid),
            uuid(&main_uuid)
        ])
    );
    for absent in [&nested_uuid, &hidden_uuid] {
        assert!(repos.lookup(&uuid(absent)).is_none());
        assert!(repos.rescan_and_lookup(&uuid(absent)).is_none());
    }
    let b = repos.lookup(&uuid(&b_uuid)).unwrap();
    assert_eq!(b.uuid(), &uuid(&b_uuid));
}

#[test]
fn additions_are_served_at_once_and_removals_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("top");
    std::fs::create_dir(&top).unwrap();
    let (a, a_uuid) = init_annex_repo(&top, "a", "a");
    let repos = DirectoryRepositories::new(vec![top.clone()]);
    assert!(repos.rescans());
    assert_eq!(served(&repos), vec![uuid(&a_uuid)]);

    // Added after the server started: not known to `lookup`, found by the
    // look a request for it makes.
    std::fs::create_dir(top.join("group")).unwrap();
    let (_, late_uuid) = init_bare_annex_repo(&top.join("group"), "late.git", "late");
    assert!(repos.lookup(&uuid(&late_uuid)).is_none());
    let late = repos.rescan_and_lookup(&uuid(&late_uuid)).unwrap();
    assert_eq!(late.uuid(), &uuid(&late_uuid));
    assert!(repos.lookup(&uuid(&late_uuid)).is_some());

    // Removed: served until a look does not find it any more.
    remove_repository(&a);
    assert!(repos.lookup(&uuid(&a_uuid)).is_some());
    assert!(repos.rescan_and_lookup(&uuid(&a_uuid)).is_none());
    assert!(repos.lookup(&uuid(&a_uuid)).is_none());
    assert_eq!(served(&repos), vec![uuid(&late_uuid)]);

    // Another repository made at the same path is opened afresh.
    let (_, again_uuid) = init_annex_repo(&top, "a", "again");
    assert_ne!(again_uuid, a_uuid);
    assert!(repos.rescan_and_lookup(&uuid(&again_uuid)).is_some());
    assert!(repos.lookup(&uuid(&a_uuid)).is_none());
}

#[test]
fn concurrent_requests_for_unknown_uuids_share_looks() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("top");
    std::fs::create_dir(&top).unwrap();
    let (_, a_uuid) = init_annex_repo(&top, "a", "a");
    let repos = std::sync::Arc::new(DirectoryRepositories::new(vec![top.clone()]));
    let unknown = uuid("00000000-0000-0000-0000-000000000001");
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let repos = repos.clone();
            let unknown = unknown.clone();
            let a = uuid(&a_uuid);
            std::thread::spawn(move || {
                assert!(repos.rescan_and_lookup(&unknown).is_none());
                assert!(repos.rescan_and_lookup(&a).is_some());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Removes a repository git-annex made (its objects are read-only).
fn remove_repository(path: &Path) {
    let status = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(path).unwrap();
}

#[test]
fn a_uuid_two_repositories_claim_is_served_by_neither() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("top");
    std::fs::create_dir_all(top.join("alice")).unwrap();
    std::fs::create_dir_all(top.join("mallory")).unwrap();
    let (a, a_uuid) = init_annex_repo(&top.join("alice"), "repo", "alice's");
    let (b, b_uuid) = init_annex_repo(&top, "b", "b");
    // A symlink to a repository leads to the same repository: not a
    // second claim.
    std::os::unix::fs::symlink(&b, top.join("link-to-b")).unwrap();
    let repos = DirectoryRepositories::new(vec![top.clone()]);
    assert!(repos.lookup(&uuid(&a_uuid)).is_some());

    // Another user's copy claims alice's UUID: neither is served, whichever
    // the directory lists first.
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&a)
        .arg(top.join("mallory/copy"))
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..2 {
        assert!(repos.rescan_and_lookup(&uuid(&a_uuid)).is_none());
        assert!(repos.lookup(&uuid(&a_uuid)).is_none());
    }
    assert_eq!(served(&repos), vec![uuid(&b_uuid)]);

    // The copy gone, alice's repository is served again.
    remove_repository(&top.join("mallory/copy"));
    assert!(repos.rescan_and_lookup(&uuid(&a_uuid)).is_some());
    assert_eq!(served(&repos), sorted(vec![uuid(&a_uuid), uuid(&b_uuid)]));
}

/// The UUIDs what is served at `path` serves.
fn at(repos: &DirectoryRepositories, path: &str) -> Option<Vec<Uuid>> {
    repos.at_path(path).map(|r| r.uuids())
}

#[test]
fn repositories_named_by_path_are_found_by_the_same_rules_and_closed_when_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("top");
    std::fs::create_dir_all(top.join("alice")).unwrap();
    let (a, a_uuid) = init_annex_repo(&top.join("alice"), "a", "a");
    let (_, b_uuid) = init_bare_annex_repo(&top.join("alice"), "b.git", "b");
    let (_, nested_uuid) = init_annex_repo(&a, "nested", "nested");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let (linked, linked_uuid) = init_annex_repo(&outside, "linked", "linked");
    std::os::unix::fs::symlink(&linked, top.join("alice/link-to-repo")).unwrap();
    std::os::unix::fs::symlink(&outside, top.join("link-to-dir")).unwrap();
    let repos = DirectoryRepositories::by_path_only(vec![top.clone()]);
    // Nothing is looked for until a path is named, and a UUID alone is
    // not served.
    assert!(repos.uuids().is_empty());
    assert!(repos.rescan_and_lookup(&uuid(&a_uuid)).is_none());
    assert_eq!(at(&repos, "alice/a"), Some(vec![uuid(&a_uuid)]));
    assert_eq!(at(&repos, "alice/b"), Some(vec![uuid(&b_uuid)]));
    assert_eq!(at(&repos, "alice/b.git"), Some(vec![uuid(&b_uuid)]));
    assert_eq!(
        at(&repos, "alice/link-to-repo"),
        Some(vec![uuid(&linked_uuid)])
    );
    for refused in [
        "alice/a/nested",
        "link-to-dir/linked",
        "alice/../alice/a",
        "alice/./a",
        "alice//a",
        "alice",
        "nobody/a",
        "/alice/a",
    ] {
        assert_eq!(at(&repos, refused), None, "{refused}");
    }
    let _ = nested_uuid;
    assert!(repos.at_path_open("alice/a").is_some());
    assert_eq!(repos.close_idle(std::time::Duration::from_secs(3600)), 4);
    assert_eq!(repos.close_idle(std::time::Duration::ZERO), 0);
    assert!(repos.at_path_open("alice/a").is_none());
    assert!(repos.open_git_dirs().is_empty());
    assert_eq!(at(&repos, "alice/a"), Some(vec![uuid(&a_uuid)]));
}
