//! `annex shell p2pstdio GATEWAY CLIENT --uuid NODE` for a node at a local
//! path sends the node's content as the gateway sends its own: moved into
//! a standard output that is a pipe (splice) or a Unix socket (sendfile).
//! The bytes that arrive, from several offsets in one session, are the
//! object's. The repositories are made by git-annex, which must be
//! installed.

use std::path::PathBuf;
use std::process::Command;

use annex_test_support::p2p::{check_from_offsets, get_from, Through};
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

/// A GET session with the gateway standing in for the node: for each
/// offset, the content that arrives.
fn session(s: &Setup, through: Through) -> Vec<Vec<u8>> {
    let auth = |line: &str| assert_eq!(line, format!("AUTH-SUCCESS {}", s.node_uuid));
    get_from(gateway(s), through, auth, &s.key, &OFFSETS)
}

fn gateway(s: &Setup) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
    c.args(["shell", "p2pstdio"])
        .arg(&s.gw)
        .args([CLIENT, "--uuid", &s.node_uuid]);
    c
}

#[test]
fn a_local_nodes_content_through_a_pipe() {
    let s = setup();
    check_from_offsets(session(&s, Through::Pipe), &s.content, &OFFSETS);
}

#[test]
fn a_local_nodes_content_through_a_socket() {
    let s = setup();
    check_from_offsets(session(&s, Through::Socket), &s.content, &OFFSETS);
}
