//! `annex shell p2pstdio GATEWAY CLIENT --uuid NODE` for a node at a local
//! path sends the node's content as the gateway sends its own: moved into
//! a standard output that is a pipe (splice) or a Unix socket (sendfile).
//! The bytes that arrive, from several offsets in one session, are the
//! object's. The repositories are made by git-annex, which must be
//! installed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use annex_test_support::{git, init_annex_repo, pseudo_random};

const CLIENT: &str = "00000000-0000-0000-0000-000000000001";
const SIZE: usize = (5 << 20) + 3;
const OFFSETS: [u64; 4] = [0, 1, 3 << 20, SIZE as u64 - 1];

struct Setup {
    _tmp: tempfile::TempDir,
    gw: PathBuf,
    node_uuid: String,
    key: String,
    content: Vec<u8>,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let (node, node_uuid) = init_annex_repo(tmp.path(), "node", "node");
    let content = pseudo_random(SIZE, 9);
    std::fs::write(node.join("file"), &content).unwrap();
    git(&node, &["annex", "add", "-q", "file"]);
    let key = git(&node, &["annex", "lookupkey", "file"])
        .trim()
        .to_owned();
    let (gw, _) = init_annex_repo(tmp.path(), "gw", "gateway");
    git(&gw, &["remote", "add", "node", "../node"]);
    git(&gw, &["config", "remote.node.annex-uuid", &node_uuid]);
    git(&gw, &["config", "remote.node.annex-proxy", "true"]);
    let out = annex_test_support::run_ok(&mut annex_test_support::command(
        &gw,
        env!("CARGO_BIN_EXE_annex"),
        &["updateproxy"],
    ));
    assert!(out.contains("Started proxying for node"), "{out}");
    Setup {
        _tmp: tmp,
        gw,
        node_uuid,
        key,
        content,
    }
}

fn line(r: &mut impl BufRead) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l.trim_end().to_owned()
}

/// A GET session: for each offset, the content that arrives.
fn session(out: &mut impl BufRead, input: &mut impl Write, s: &Setup) -> Vec<Vec<u8>> {
    assert_eq!(line(out), format!("AUTH-SUCCESS {}", s.node_uuid));
    writeln!(input, "VERSION 1").unwrap();
    assert_eq!(line(out), "VERSION 1");
    let mut got = Vec::new();
    for offset in OFFSETS {
        writeln!(input, "GET {offset} file {}", s.key).unwrap();
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

fn gateway(s: &Setup) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
    c.args(["shell", "p2pstdio"])
        .arg(&s.gw)
        .args([CLIENT, "--uuid", &s.node_uuid]);
    c
}

fn check(got: Vec<Vec<u8>>, content: &[u8]) {
    for (offset, bytes) in OFFSETS.iter().zip(got) {
        assert!(bytes == content[*offset as usize..], "from offset {offset}");
    }
}

#[test]
fn a_local_nodes_content_through_a_pipe() {
    let s = setup();
    let mut child = gateway(&s)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let got = session(&mut out, &mut input, &s);
    drop(input);
    assert!(child.wait().unwrap().success());
    check(got, &s.content);
}

#[test]
fn a_local_nodes_content_through_a_socket() {
    let s = setup();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs_out = theirs.try_clone().unwrap();
    let mut child = gateway(&s)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)))
        .spawn()
        .unwrap();
    let mut input = ours.try_clone().unwrap();
    let mut out = BufReader::new(ours);
    let got = session(&mut out, &mut input, &s);
    input.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(child.wait().unwrap().success());
    check(got, &s.content);
}
