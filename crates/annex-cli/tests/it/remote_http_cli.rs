//! `annex remote annex+http://...` against the real `git annex p2phttp` and
//! against `annex p2phttp`: put, checkpresent, get, remove.
//!
//! git-annex 10.20250416 must be installed; these tests fail without it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use annex_test_support::{
    command, free_port, git, git_annex_p2phttp, init_annex_repo, output, sha256e_key,
    wait_for_port, KillOnDrop,
};

fn annex(dir: &Path, args: &[&str]) -> Output {
    output(command(dir, env!("CARGO_BIN_EXE_annex"), args).env("ANNEX_P2PHTTP_PASSWORD", "pw"))
}

fn session(served: &Path, url: &str, user: Option<&str>) {
    let dir = served.parent().unwrap();
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let file = dir.join("content");
    std::fs::write(&file, &data).unwrap();
    let key = sha256e_key(&data, "");
    let mut base: Vec<&str> = vec!["remote", url];
    if let Some(u) = user {
        base.extend(["--user", u]);
    }
    let run = |extra: &[&str]| {
        let mut a = base.clone();
        a.extend_from_slice(extra);
        annex(dir, &a)
    };
    let out = run(&["checkpresent", &key]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run(&["put", &key, file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["--json", "checkpresent", &key]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"present\":true"),
        "{out:?}"
    );
    let got = dir.join("got");
    let out = run(&["get", &key, "-o", got.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&got).unwrap(), data);
    // git-annex's fsck of what was stored.
    git(served, &["annex", "fsck", "--key", &key]);
    let out = run(&["remove", &key]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["checkpresent", &key]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn annex_remote_against_git_annex_p2phttp() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, uuid) = init_annex_repo(tmp.path(), "served", "served");
    let port = free_port();
    let child = git_annex_p2phttp(&served, port)
        .args(["--authenv-http"])
        .env("GIT_ANNEX_P2PHTTP_PASSWORD_alice", "pw")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = KillOnDrop(child);
    wait_for_port(port, &mut server, None);
    let url = format!("annex+http://127.0.0.1:{port}/git-annex/{uuid}");
    // Without credentials: refused, with a message saying what to do.
    let out = annex(
        tmp.path(),
        &["remote", &url, "checkpresent", "SHA256E-s1--00"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("authentication"), "{err}");
    session(&served, &url, Some("alice"));
}

#[test]
fn annex_remote_against_annex_p2phttp() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, uuid) = init_annex_repo(tmp.path(), "served", "served");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_annex"))
        .args([
            "p2phttp",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--wideopen",
        ])
        .current_dir(&served)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = KillOnDrop(child);
    wait_for_port(port, &mut server, None);
    let url = format!("annex+http://127.0.0.1:{port}/git-annex/");
    let out = annex(tmp.path(), &["remote", &url, "timestamp"]);
    assert!(!out.status.success(), "no UUID given: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--uuid"));
    let out = annex(tmp.path(), &["remote", &url, "--uuid", &uuid, "timestamp"]);
    assert!(out.status.success(), "{out:?}");
    session(&served, &format!("{url}{uuid}"), None);
}
