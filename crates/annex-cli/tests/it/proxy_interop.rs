//! A gateway of ours in front of three repositories, used by the real
//! git-annex as a client over ssh and over p2phttp:
//! - `n1`, a repository at a local path, used in the gateway's process;
//! - `n2`, reached over ssh, served by the real `git-annex-shell`;
//! - `n3`, reached over annex+http, served by the real `git annex p2phttp`.
//!
//! For each, through the gateway: copy, whereis, get, fsck --from, drop
//! (with its lock proofs), move; afterwards the real `git annex fsck` in
//! each node finds every object valid, and a fresh clone of the gateway
//! sees the locations.

use std::path::{Path, PathBuf};
use std::process::Output;

use annex_test_support::proxy::{real_git_annex_shell, ProxyEnv as Env, Reach, Role};
use annex_test_support::{pseudo_random, KillOnDrop};

struct Setup {
    env: Env,
    gw: PathBuf,
    nodes: Vec<(String, PathBuf, String)>,
    _n3_server: KillOnDrop,
}

fn setup() -> Setup {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let (gw, _gw_uuid) = env.init("gw", "gateway");
    let mut nodes = Vec::new();
    for (name, desc) in [
        ("n1", "local node"),
        ("n2", "ssh node"),
        ("n3", "http node"),
    ] {
        let (d, u) = env.init(name, desc);
        nodes.push((name.to_string(), d, u));
    }
    // n3 behind the real git annex p2phttp.
    let (n3_server, port) = env.serve_git_annex_p2phttp(&nodes[2].1);
    for (name, dir, uuid) in &nodes {
        let reach = match name.as_str() {
            "n2" => Reach::SshReal,
            "n3" => Reach::Http(port),
            _ => Reach::Local,
        };
        env.add_remote(&gw, name, dir, uuid, reach, Role::Proxied);
        env.git(&gw, &["fetch", "-q", name]);
    }
    env.git(&gw, &["annex", "merge", "-q"]);
    let out = env.annex(&gw, &["updateproxy"]);
    for n in ["n1", "n2", "n3"] {
        assert!(out.contains(&format!("Started proxying for {n}")), "{out}");
    }
    assert_eq!(
        env.annex(&gw, &["updateproxy"]).trim(),
        "No proxy changes to record."
    );
    Setup {
        env,
        gw,
        nodes,
        _n3_server: n3_server,
    }
}

/// Every operation through `remote` (the client's name for a proxied
/// node), ending with the content on the node.
fn exercise(
    env: &Env,
    client: &Path,
    remote: &str,
    node_uuid: &str,
    file: &str,
    seed: u64,
) -> String {
    env.exercise(
        client,
        remote,
        node_uuid,
        file,
        200_000 + seed as usize,
        seed,
    )
}

fn whereis_uuids(env: &Env, dir: &Path, file: &str) -> Vec<String> {
    env.whereis_uuids(dir, file)
}

/// [`exercise`] through every node, each with a file named after
/// `prefix` and the node, from seed `first_seed` on; each file's key and
/// node.
fn exercise_every_node(
    s: &Setup,
    client: &Path,
    prefix: &str,
    first_seed: u64,
) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for (i, (name, _, uuid)) in s.nodes.iter().enumerate() {
        let file = format!("{prefix}-{name}.bin");
        let remote = format!("origin-{name}");
        let key = exercise(&s.env, client, &remote, uuid, &file, first_seed + i as u64);
        files.push((key, name.clone()));
    }
    files
}

/// Checks the nodes and the gateway after `files` (key, node) were
/// stored.
fn check_nodes_and_gateway(s: &Setup, files: &[(String, String)]) {
    // The real git-annex finds every object in every node valid.
    for (_, dir, _) in &s.nodes {
        s.env.git(dir, &["annex", "fsck", "--quiet", "--all"]);
    }
    // A fresh clone of the gateway sees where the content went.
    let fresh = s.env.dir("fresh");
    let _ = std::fs::remove_dir_all(&fresh);
    s.env.git(
        s.env.tmp.path(),
        &[
            "clone",
            "-q",
            &format!("localhost:{}", s.gw.display()),
            "fresh",
        ],
    );
    s.env.git(&fresh, &["annex", "init", "-q", "fresh"]);
    for (key, node) in files {
        let uuid = &s.nodes.iter().find(|(n, _, _)| n == node).unwrap().2;
        let out = s.env.git(&fresh, &["annex", "whereis", "--key", key]);
        assert!(out.contains(uuid.as_str()), "{key} on {node}: {out}");
    }
}

#[test]
fn git_annex_client_over_ssh_reaches_every_node_through_the_gateway() {
    let s = setup();
    let env = &s.env;
    let client = env.clone_client(&s.gw, "client");
    let info = env.git(&client, &["annex", "info", "origin"]);
    let proxying = info
        .lines()
        .find(|l| l.starts_with("proxying: "))
        .unwrap_or_default();
    for n in ["origin-n1", "origin-n2", "origin-n3"] {
        assert!(proxying.split_whitespace().any(|w| w == n), "{info}");
    }
    let files = exercise_every_node(&s, &client, "ssh", 1);
    check_nodes_and_gateway(&s, &files);
}

#[test]
fn git_annex_client_over_http_reaches_every_node_through_the_gateway() {
    let s = setup();
    let env = &s.env;
    let (server, port) = env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let client = env.clone_http_client(&s.gw, "hclient", port);
    let files = exercise_every_node(&s, &client, "http", 11);
    // p2phttp commits what it recorded for the nodes when it stops.
    let mut server = server;
    // SAFETY: signalling a child process this test started.
    unsafe {
        libc::kill(server.0.id() as i32, libc::SIGTERM);
    }
    let _ = server.0.wait();
    check_nodes_and_gateway(&s, &files);
}

#[test]
fn uuids_not_proxied_are_refused_as_git_annex_refuses_them() {
    let s = setup();
    let env = &s.env;
    let gw = s.gw.display().to_string();
    let client_uuid = "11111111-2222-4333-8444-555555555555";
    let ours = env.run(
        &s.gw,
        env!("CARGO_BIN_EXE_annex"),
        &[
            "shell",
            "p2pstdio",
            &gw,
            client_uuid,
            "--uuid",
            "00000000-0000-4000-8000-000000000099",
        ],
    );
    let theirs = env.run(
        &s.gw,
        &real_git_annex_shell(),
        &[
            "p2pstdio",
            &gw,
            client_uuid,
            "--uuid",
            "00000000-0000-4000-8000-000000000099",
        ],
    );
    assert!(!ours.status.success() && !theirs.status.success());
    let text = |o: &Output| String::from_utf8_lossy(&o.stderr).trim().to_string();
    let strip = |s: String| {
        s.trim_start_matches("git-annex-shell: ")
            .trim_start_matches("git-annex: ")
            .trim_start_matches("annex: ")
            .to_string()
    };
    assert_eq!(strip(text(&ours)), strip(text(&theirs)));
    // Listed in proxy.log but no longer allowed by git config: git-annex
    // names the repository.
    env.git(&s.gw, &["config", "remote.n1.annex-proxy", "false"]);
    let n1 = &s.nodes[0].2;
    let ours = env.run(
        &s.gw,
        env!("CARGO_BIN_EXE_annex"),
        &["shell", "p2pstdio", &gw, client_uuid, "--uuid", n1],
    );
    let theirs = env.run(
        &s.gw,
        &real_git_annex_shell(),
        &["p2pstdio", &gw, client_uuid, "--uuid", n1],
    );
    assert!(!ours.status.success() && !theirs.status.success());
    assert_eq!(strip(text(&ours)), strip(text(&theirs)));
}

#[test]
fn a_node_that_is_down_fails_alone() {
    let mut s = setup();
    let env = &s.env;
    let client = env.dir("dclient");
    env.git(
        env.tmp.path(),
        &[
            "clone",
            "-q",
            &format!("localhost:{}", s.gw.display()),
            "dclient",
        ],
    );
    env.git(&client, &["config", "annex.sshcaching", "false"]);
    env.git(&client, &["annex", "init", "-q", "dclient"]);
    std::fs::write(client.join("d.bin"), pseudo_random(10_000, 9)).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "d.bin"]);
    // Stop n3's server: copying there fails, the others still work.
    drop(std::mem::replace(
        &mut s._n3_server,
        KillOnDrop(std::process::Command::new("true").spawn().unwrap()),
    ));
    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--to", "origin-n3", "d.bin"],
    );
    assert!(!out.status.success());
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-n1", "d.bin"],
    );
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-n2", "d.bin"],
    );
    let w = whereis_uuids(env, &client, "d.bin");
    assert!(w.contains(&s.nodes[0].2) && w.contains(&s.nodes[1].2) && !w.contains(&s.nodes[2].2));
}
