//! Starting `annex p2phttp` as the README says: with a repository's path,
//! with none inside a repository, and with none outside any, where it says
//! in one line what to run. The URL it prints is what a real git-annex
//! client then uses.
//!
//! These tests need git-annex 10.20250416 and fail (never skip) without it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use annex_test_support::{git, init_annex_repo, KillOnDrop};

#[test]
fn outside_a_repository_it_says_in_one_line_what_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    // `annex p2phttp --wideopen --port 0 [PATH]` in `cwd` fails; the
    // one line it writes.
    let one_line_error = |path: Option<&std::path::Path>| {
        let out = Command::new(env!("CARGO_BIN_EXE_annex"))
            .args(["p2phttp", "--wideopen", "--port", "0"])
            .args(path)
            .current_dir(tmp.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    let err = one_line_error(None);
    for words in ["annex p2phttp PATH", "--directory", "annex init"] {
        assert!(err.contains(words), "{words} missing from: {err}");
    }
    // A path that is not a repository: one line too.
    let err = one_line_error(Some(tmp.path()));
    assert!(err.contains("annex init"), "{err}");
}

/// Starts `annex p2phttp` with `args` in `cwd` and reads the client's
/// configuration line it prints.
fn start(cwd: &std::path::Path, args: &[&str]) -> (KillOnDrop, String) {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_annex"))
            .arg("p2phttp")
            .args(args)
            .args(["--wideopen", "--port", "0", "--bind", "127.0.0.1"])
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    (child, line.trim_end().to_owned())
}

#[test]
fn the_printed_url_is_what_a_git_annex_client_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, uuid) = init_annex_repo(tmp.path(), "served", "served");
    // Given by path, from elsewhere.
    let (server, line) = start(tmp.path(), &[served.to_str().unwrap()]);
    let url = line
        .strip_prefix("git config remote.NAME.annexUrl ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    assert!(url.starts_with("annex+http://127.0.0.1:"), "{url}");
    assert!(url.ends_with("/git-annex/"), "{url}");

    let client = tmp.path().join("client");
    git(
        tmp.path(),
        &["clone", "-q", served.to_str().unwrap(), "client"],
    );
    git(&client, &["annex", "init", "-q", "client"]);
    // The git URL leads nowhere: content can only go over annexUrl.
    git(
        &client,
        &[
            "remote",
            "set-url",
            "origin",
            "http://127.0.0.1:9/nothing.git",
        ],
    );
    git(
        &client,
        &["config", "annex.security.allowed-ip-addresses", "all"],
    );
    git(&client, &["config", "remote.origin.annexUrl", url]);
    std::fs::write(client.join("file"), b"served as the README says\n").unwrap();
    git(&client, &["annex", "add", "-q", "file"]);
    git(&client, &["commit", "-q", "-m", "file"]);
    git(&client, &["annex", "copy", "-q", "--to", "origin", "file"]);
    git(&client, &["annex", "drop", "-q", "file"]);
    git(&client, &["annex", "get", "-q", "--from", "origin", "file"]);
    assert_eq!(
        std::fs::read(client.join("file")).unwrap(),
        b"served as the README says\n"
    );
    drop(server);

    // No path, run inside the repository (in a subdirectory of it): the
    // same repository.
    std::fs::create_dir(served.join("sub")).unwrap();
    let (_server, line) = start(&served.join("sub"), &[]);
    let url = line
        .strip_prefix("git config remote.NAME.annexUrl ")
        .unwrap();
    git(&client, &["config", "remote.origin.annexUrl", url]);
    let whereis = git(&client, &["annex", "whereis", "file"]);
    assert!(whereis.contains(&uuid), "{whereis}");
    git(
        &client,
        &["annex", "fsck", "-q", "--from", "origin", "file"],
    );
}
