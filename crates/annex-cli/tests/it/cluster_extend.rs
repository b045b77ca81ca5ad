//! A cluster with two gateways of ours, used by the real git-annex as the
//! client of either:
//! - `gw1` made the cluster `c` of `n1` (a repository at a local path)
//!   and `n2` (reached over ssh, served by the real `git-annex-shell`);
//! - `gw2` joined it with `annex extendcluster gw1 c`, with its own node
//!   `n3`, reaching `gw1` over ssh (served by our `git-annex-shell`);
//! - `gw1` was then extended back to `gw2`, so each gateway has the
//!   cluster behind the other as a node: requests carry BYPASS, and
//!   nothing cycles.
//!
//! A client of `gw2` copies to `origin-c`: the content lands on `n3` and,
//! through `gw1`, on `n1` and `n2`; get (from the nodes behind `gw1` when
//! `n3` lost it) and drop (from every node) work, and so do they from a
//! client of `gw1`, and from a client of `gw2` served by our p2phttp.
//! Afterwards the real `git annex fsck` in every node is clean, and no
//! session is left running.
//!
//! The same with `gw1` git-annex's own gateway (configured by git-annex,
//! served by the real `git-annex-shell`): our `gw2` and it reach each
//! other's side of the cluster with BYPASS on the wire as git-annex
//! speaks it.

use std::path::{Path, PathBuf};

use annex_test_support::proxy::{real_git_annex_shell, ProxyEnv as Env, Reach, Role};
use annex_test_support::pseudo_random;

struct Setup {
    env: Env,
    gw1: PathBuf,
    gw2: PathBuf,
    /// Name, directory, UUID.
    nodes: Vec<(&'static str, PathBuf, String)>,
}

/// The two gateways; the first is git-annex's own (served by the real
/// `git-annex-shell`, configured by git-annex) when `theirs_first`.
fn setup(theirs_first: bool) -> Setup {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let shell = real_git_annex_shell();
    let (gw1, _) = env.init("gw1", "gateway 1");
    let (gw2, _) = env.init("gw2", "gateway 2");
    let mut nodes = Vec::new();
    for n in ["n1", "n2", "n3"] {
        let (d, u) = env.init(n, &format!("node {n}"));
        nodes.push((n, d, u));
    }
    let add_node = |gw: &Path, (name, dir, uuid): &(&str, PathBuf, String)| {
        let reach = if *name == "n2" {
            Reach::SshReal
        } else {
            Reach::Local
        };
        env.add_remote(gw, name, dir, uuid, reach, Role::Node("c"));
        env.git(gw, &["fetch", "-q", name]);
    };
    // Cluster commands at the first gateway, by git-annex or by us.
    let gw1_cmd = |args: &[&str]| {
        if theirs_first {
            let mut a = vec!["annex"];
            a.extend(args);
            env.git(&gw1, &a)
        } else {
            env.annex(&gw1, args)
        }
    };
    add_node(&gw1, &nodes[0]);
    add_node(&gw1, &nodes[1]);
    gw1_cmd(&["initcluster", "c"]);
    gw1_cmd(&["updatecluster"]);
    // The second gateway, reaching the first over ssh.
    env.git(&gw2, &["config", "annex.sshcaching", "false"]);
    env.add_ssh_remote(&gw2, "gw1", &gw1);
    if theirs_first {
        env.git(&gw2, &["config", "remote.gw1.annex-shell", &shell]);
    }
    add_node(&gw2, &nodes[2]);
    env.git(&gw2, &["fetch", "-q", "gw1"]);
    let out = env.annex(&gw2, &["extendcluster", "gw1", "c"]);
    assert!(out.contains("Added node n3 to cluster: c"), "{out}");
    // The first extended back to the second.
    env.git(&gw1, &["config", "annex.sshcaching", "false"]);
    env.add_ssh_remote(&gw1, "gw2", &gw2);
    env.git(&gw1, &["fetch", "-q", "gw2"]);
    gw1_cmd(&["extendcluster", "gw2", "c"]);
    // The second learns that the first is extended back.
    env.git(&gw2, &["fetch", "-q", "gw1"]);
    env.git(&gw2, &["annex", "merge", "-q"]);
    Setup {
        env,
        gw1,
        gw2,
        nodes,
    }
}

/// The nodes (by name) whose own repository has `key`.
fn nodes_with(s: &Setup, key: &str) -> Vec<&'static str> {
    s.nodes
        .iter()
        .filter(|(_, dir, _)| s.env.has_key(dir, key))
        .map(|(n, _, _)| *n)
        .collect()
}

fn add_file(env: &Env, client: &Path, file: &str, seed: u64) -> (Vec<u8>, String) {
    let content = pseudo_random(200_000 + seed as usize, seed);
    let key = env.add_file(client, file, &content);
    (content, key)
}

/// Through `origin-c` of `client`: copy stores on all three nodes; with
/// the content gone from `near` (a node at the client's gateway), if
/// given, get comes from the nodes behind the other gateway; drop removes it from
/// every node; move --to stores it again.
fn exercise(s: &Setup, client: &Path, near: Option<&str>, file: &str, seed: u64) {
    let env = &s.env;
    let (content, key) = add_file(env, client, file, seed);
    env.git(
        client,
        &["annex", "copy", "--quiet", "--to", "origin-c", file],
    );
    assert_eq!(nodes_with(s, &key), ["n1", "n2", "n3"]);
    let w = env.whereis_uuids(client, file);
    for (_, _, u) in &s.nodes {
        assert!(w.contains(u), "{w:?}");
    }
    // Gone from the near node, behind the client's back (git-annex's
    // gateway would not try another node).
    if let Some(near) = near {
        let near_dir = &s.nodes.iter().find(|(n, _, _)| *n == near).unwrap().1;
        env.git(
            near_dir,
            &["annex", "drop", "--quiet", "--force", "--key", &key],
        );
    }
    env.git(client, &["annex", "drop", "--quiet", file]);
    env.git(
        client,
        &["annex", "get", "--quiet", "--from", "origin-c", file],
    );
    assert_eq!(std::fs::read(client.join(file)).unwrap(), content);
    env.git(
        client,
        &["annex", "drop", "--quiet", "--from", "origin-c", file],
    );
    assert!(nodes_with(s, &key).is_empty());
    let w = env.whereis_uuids(client, file);
    for (_, _, u) in &s.nodes {
        assert!(!w.contains(u), "{w:?}");
    }
    env.git(
        client,
        &["annex", "move", "--quiet", "--to", "origin-c", file],
    );
    assert_eq!(nodes_with(s, &key), ["n1", "n2", "n3"]);
}

#[test]
fn a_second_gateway_serves_the_whole_cluster() {
    check(setup(false), false);
}

/// The first gateway is git-annex's own: our second gateway reaches it
/// (and it reaches ours) with git-annex's BYPASS on the wire.
#[test]
fn a_second_gateway_of_ours_extends_a_cluster_of_git_annex() {
    check(setup(true), true);
}

/// Copy, get and drop through either gateway; `theirs_first`: the first
/// gateway is git-annex's.
fn check(s: Setup, theirs_first: bool) {
    let env = &s.env;
    let client = env.clone_client(&s.gw2, "client2");
    let info = env.git(&client, &["annex", "info", "origin"]);
    assert!(info.contains("origin-c"), "{info}");
    exercise(&s, &client, Some("n3"), "via2.bin", 1);
    // And the same from the first gateway, whose cluster reaches n3
    // through the second.
    let client1 = env.clone_client(&s.gw1, "client1");
    if theirs_first {
        let shell = real_git_annex_shell();
        env.git(&client1, &["config", "remote.origin.annex-shell", &shell]);
        exercise(&s, &client1, None, "via1.bin", 2);
    } else {
        exercise(&s, &client1, Some("n1"), "via1.bin", 2);
    }
    // And from a client of the second gateway's p2phttp.
    let (server, port) = env.serve_p2phttp(&s.gw2, "gw2-p2phttp.log");
    let hclient = env.clone_http_client(&s.gw2, "hclient2", port);
    exercise(&s, &hclient, Some("n3"), "http2.bin", 3);
    drop(server);
    for (_, dir, _) in &s.nodes {
        env.git(dir, &["annex", "fsck", "--quiet", "--all"]);
    }
    // No gateway session is left running.
    let ps = env.ok(env.tmp.path(), "ps", &["-eo", "pid,args"]);
    let tmp = env.tmp.path().display().to_string();
    let left: Vec<&str> = ps.lines().filter(|l| l.contains(&tmp)).collect();
    assert!(left.is_empty(), "{left:?}");
}
