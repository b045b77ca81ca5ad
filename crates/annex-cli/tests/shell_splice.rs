//! `annex shell p2pstdio` sending content to a standard output that is a
//! pipe (moved with splice) or a Unix socket (moved with sendfile): the
//! bytes that arrive, from several offsets in one session, are the object's.
//! The repository is made by git-annex, which must be installed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use annex_test_support::{git, init_annex_repo, pseudo_random};

/// Reads one protocol line.
fn line(r: &mut impl BufRead) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l.trim_end().to_owned()
}

/// A GET session: for each offset, the content that arrives.
fn session(
    out: &mut impl BufRead,
    input: &mut impl Write,
    key: &str,
    offsets: &[u64],
) -> Vec<Vec<u8>> {
    assert!(line(out).starts_with("AUTH-SUCCESS "));
    writeln!(input, "VERSION 1").unwrap();
    assert_eq!(line(out), "VERSION 1");
    let mut got = Vec::new();
    for offset in offsets {
        writeln!(input, "GET {offset} file {key}").unwrap();
        input.flush().unwrap();
        let data = line(out);
        let len: usize = data.strip_prefix("DATA ").unwrap().parse().unwrap();
        let mut buf = vec![0u8; len];
        out.read_exact(&mut buf).unwrap();
        assert_eq!(line(out), "VALID");
        writeln!(input, "SUCCESS").unwrap();
        input.flush().unwrap();
        got.push(buf);
    }
    got
}

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

fn check(got: Vec<Vec<u8>>, content: &[u8]) {
    for (offset, bytes) in OFFSETS.iter().zip(got) {
        assert!(bytes == content[*offset as usize..], "from offset {offset}");
    }
}

#[test]
fn content_through_a_pipe() {
    let (_tmp, repo, key, content) = setup();
    let mut child = Command::new(env!("CARGO_BIN_EXE_annex"))
        .args(["shell", "p2pstdio"])
        .arg(&repo)
        .arg(CLIENT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let got = session(&mut out, &mut input, &key, &OFFSETS);
    drop(input);
    assert!(child.wait().unwrap().success());
    check(got, &content);
}

#[test]
fn content_through_a_socket() {
    let (_tmp, repo, key, content) = setup();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs_out = theirs.try_clone().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_annex"))
        .args(["shell", "p2pstdio"])
        .arg(&repo)
        .arg(CLIENT)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)))
        .spawn()
        .unwrap();
    let mut input = ours.try_clone().unwrap();
    let mut out = BufReader::new(ours);
    let got = session(&mut out, &mut input, &key, &OFFSETS);
    input.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(child.wait().unwrap().success());
    check(got, &content);
}
