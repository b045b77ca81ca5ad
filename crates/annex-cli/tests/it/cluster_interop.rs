//! A cluster behind a gateway of ours, used by the real git-annex as a
//! client over ssh and over p2phttp. The cluster `c` has three nodes:
//! - `n1`, a repository at a local path, used in the gateway's process;
//! - `n2`, reached over ssh, served by the real `git-annex-shell`;
//! - `n3`, reached over annex+http, served by the real `git annex p2phttp`.
//!
//! Through `origin-c`: copy stores on every node, whereis lists the nodes,
//! get, fsck --from, drop --from removes from every node, move; afterwards
//! the real `git annex fsck` in each node finds every object valid, and a
//! fresh clone of the gateway sees the locations.

use std::path::{Path, PathBuf};

use annex_test_support::proxy::{ProxyEnv as Env, Reach, Role};
use annex_test_support::{pseudo_random, KillOnDrop};

struct Setup {
    env: Env,
    gw: PathBuf,
    cluster: String,
    nodes: Vec<(String, PathBuf, String)>,
    n3_server: Option<KillOnDrop>,
}

fn setup(node_kinds: &[&str]) -> Setup {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let (gw, _gw_uuid) = env.init("gw", "gateway");
    let mut nodes = Vec::new();
    for name in node_kinds {
        let (d, u) = env.init(name, &format!("node {name}"));
        nodes.push((name.to_string(), d, u));
    }
    let mut n3_server = None;
    for (name, dir, uuid) in &nodes {
        let reach = match name.as_str() {
            "n2" => Reach::SshReal,
            "n3" => {
                let (child, port) = env.serve_git_annex_p2phttp(dir);
                n3_server = Some(child);
                Reach::Http(port)
            }
            _ => Reach::Local,
        };
        env.add_remote(&gw, name, dir, uuid, reach, Role::Node("c"));
        env.git(&gw, &["fetch", "-q", name]);
    }
    env.git(&gw, &["annex", "merge", "-q"]);
    env.annex(&gw, &["initcluster", "c"]);
    let out = env.annex(&gw, &["updatecluster"]);
    for (n, _, _) in &nodes {
        assert!(
            out.contains(&format!("Added node {n} to cluster: c")),
            "{out}"
        );
    }
    let cluster = env
        .git(&gw, &["config", "annex.cluster.c"])
        .trim()
        .to_string();
    Setup {
        env,
        gw,
        cluster,
        nodes,
        n3_server,
    }
}

/// The nodes (by name) whose own `git annex` has the file's key.
fn nodes_with(s: &Setup, key: &str) -> Vec<String> {
    s.nodes
        .iter()
        .filter(|(_, dir, _)| s.env.has_key(dir, key))
        .map(|(n, _, _)| n.clone())
        .collect()
}

fn exercise(s: &Setup, client: &Path, tag: &str, seed: u64) {
    let env = &s.env;
    let file = format!("{tag}.bin");
    let content = pseudo_random(300_000 + seed as usize, seed);
    let key = env.add_file(client, &file, &content);
    // Stored on every node.
    env.git(
        client,
        &["annex", "copy", "--quiet", "--to", "origin-c", &file],
    );
    assert_eq!(nodes_with(s, &key).len(), s.nodes.len());
    let w = env.whereis_uuids(client, &file);
    for (_, _, u) in &s.nodes {
        assert!(w.contains(u), "{w:?}");
    }
    // The cluster itself is not a copy: numcopies counts the nodes.
    let info = env.git(client, &["annex", "whereis", &file]);
    assert!(
        info.contains(&format!("({} copies)", s.nodes.len() + 1)),
        "{info}"
    );
    // Again: every node has it already.
    env.git(
        client,
        &["annex", "copy", "--quiet", "--to", "origin-c", &file],
    );
    // get --from and fsck --from.
    env.git(client, &["annex", "drop", "--quiet", &file]);
    env.git(
        client,
        &["annex", "get", "--quiet", "--from", "origin-c", &file],
    );
    assert_eq!(std::fs::read(client.join(&file)).unwrap(), content);
    env.git(
        client,
        &["annex", "fsck", "--quiet", "--from", "origin-c", &file],
    );
    // drop --from removes from every node.
    env.git(
        client,
        &["annex", "drop", "--quiet", "--from", "origin-c", &file],
    );
    assert!(nodes_with(s, &key).is_empty());
    let w = env.whereis_uuids(client, &file);
    for (_, _, u) in &s.nodes {
        assert!(!w.contains(u), "{w:?}");
    }
    // move to and from.
    env.git(
        client,
        &["annex", "move", "--quiet", "--to", "origin-c", &file],
    );
    assert_eq!(nodes_with(s, &key).len(), s.nodes.len());
    env.git(
        client,
        &["annex", "move", "--quiet", "--from", "origin-c", &file],
    );
    assert!(nodes_with(s, &key).is_empty());
    assert_eq!(std::fs::read(client.join(&file)).unwrap(), content);
    env.git(
        client,
        &["annex", "copy", "--quiet", "--to", "origin-c", &file],
    );
}

fn check_nodes(s: &Setup) {
    for (_, dir, _) in &s.nodes {
        s.env.git(dir, &["annex", "fsck", "--quiet", "--all"]);
    }
}

#[test]
fn git_annex_client_over_ssh_uses_the_cluster() {
    let s = setup(&["n1", "n2", "n3"]);
    let env = &s.env;
    let client = env.clone_client(&s.gw, "client");
    let info = env.git(&client, &["annex", "info", "origin"]);
    assert!(info.contains("origin-c"), "{info}");
    exercise(&s, &client, "ssh", 1);
    check_nodes(&s);
    // A fresh clone of the gateway sees the nodes' locations.
    let fresh = env.clone_client(&s.gw, "fresh");
    let key = env
        .git(&client, &["annex", "lookupkey", "ssh.bin"])
        .trim()
        .to_string();
    let out = env.git(&fresh, &["annex", "whereis", "--key", &key]);
    for (_, _, u) in &s.nodes {
        assert!(out.contains(u.as_str()), "{out}");
    }
    assert!(!s.cluster.is_empty());
}

#[test]
fn git_annex_client_over_http_uses_the_cluster() {
    let s = setup(&["n1", "n2", "n3"]);
    let env = &s.env;
    let (server, port) = env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let client = env.clone_http_client(&s.gw, "hclient", port);
    exercise(&s, &client, "http", 2);
    drop(server);
    check_nodes(&s);
}

#[test]
fn a_node_down_during_an_upload_leaves_the_others_storing() {
    let mut s = setup(&["n1", "n2", "n3"]);
    let env = &s.env;
    let client = env.clone_client(&s.gw, "dclient");
    env.add_file(&client, "d.bin", &pseudo_random(50_000, 9));
    let key = env
        .git(&client, &["annex", "lookupkey", "d.bin"])
        .trim()
        .to_string();
    drop(s.n3_server.take());
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "d.bin"],
    );
    assert_eq!(
        nodes_with(&s, &key),
        vec!["n1".to_string(), "n2".to_string()]
    );
    let w = env.whereis_uuids(&client, "d.bin");
    assert!(w.contains(&s.nodes[0].2) && w.contains(&s.nodes[1].2));
    assert!(!w.contains(&s.nodes[2].2), "{w:?}");
}

#[test]
fn a_cluster_with_no_reachable_node_fails_clearly() {
    let mut s = setup(&["n3"]);
    let env = &s.env;
    let client = env.clone_client(&s.gw, "nclient");
    env.add_file(&client, "x.bin", &pseudo_random(1000, 3));
    drop(s.n3_server.take());
    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--to", "origin-c", "x.bin"],
    );
    assert!(!out.status.success());
    let w = env.whereis_uuids(&client, "x.bin");
    assert!(!w.contains(&s.nodes[0].2), "{w:?}");
}
