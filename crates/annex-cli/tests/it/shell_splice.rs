//! `annex shell p2pstdio` sending content to a standard output that is a
//! pipe (moved with splice) or a Unix socket (moved with sendfile): the
//! bytes that arrive, from several offsets in one session, are the object's.
//! The repository is made by git-annex, which must be installed.

use std::process::Command;

use annex_test_support::p2p::{check_from_offsets, get_from, Through};
use annex_test_support::{git, init_annex_repo, pseudo_random};

fn setup() -> (tempfile::TempDir, std::path::PathBuf, String, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = init_annex_repo(tmp.path(), "repo", "served");
    let content = pseudo_random((5 << 20) + 3, 7);
    std::fs::write(repo.join("file"), &content).unwrap();
    git(&repo, &["annex", "add", "-q", "file"]);
    let key = git(&repo, &["annex", "lookupkey", "file"])
        .trim()
        .to_owned();
    (tmp, repo, key, content)
}

const CLIENT: &str = "00000000-0000-0000-0000-000000000001";
const OFFSETS: [u64; 4] = [0, 1, 3 << 20, (5 << 20) + 2];

/// `annex shell p2pstdio` serving `repo`.
fn shell(repo: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
    c.args(["shell", "p2pstdio"]).arg(repo).arg(CLIENT);
    c
}

fn authenticated(line: &str) {
    assert!(line.starts_with("AUTH-SUCCESS "));
}

#[test]
fn content_through_a_pipe() {
    let (_tmp, repo, key, content) = setup();
    let got = get_from(shell(&repo), Through::Pipe, authenticated, &key, &OFFSETS);
    check_from_offsets(got, &content, &OFFSETS);
}

#[test]
fn content_through_a_socket() {
    let (_tmp, repo, key, content) = setup();
    let got = get_from(shell(&repo), Through::Socket, authenticated, &key, &OFFSETS);
    check_from_offsets(got, &content, &OFFSETS);
}
