//! Where a cluster's uploads land: our gateway chooses the same nodes as
//! git-annex's own gateway for the same nodes and keys.
//!
//! One set of repositories (three nodes `n1` to `n3` in the group `nodes`,
//! each wanting `groupwanted`, and a gateway with the cluster `c` of the
//! three) is made once and copied twice with `cp -a` before any content,
//! so that both copies have the same UUIDs and the same cluster UUID. The
//! gateway of copy `a` is served by the real `git-annex-shell`, the one of
//! copy `b` by ours; each gateway reaches its nodes over ssh, served by
//! the real `git-annex-shell`. A git-annex client of each uploads the same
//! files to `origin-c`, and for every file the nodes holding it must be
//! the same in both copies:
//! - with `balanced=nodes:1` and `balanced=nodes:2` as the group's
//!   preferred content;
//! - a file a node already has (added there, and fetched by the gateway),
//!   which no other node wants: it goes to every node without it;
//! - with preferred content no node matches: to every node;
//! - with maxsize on the nodes, balanced and sizebalanced, where the
//!   choice depends on how full the nodes are and on the order the nodes
//!   are asked in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use annex_test_support::proxy::{real_git_annex_shell, ProxyEnv as Env, Reach, Role};
use annex_test_support::{files_under, pseudo_random};

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// One of the two copies: its gateway and client.
struct Side {
    root: PathBuf,
    gw: PathBuf,
    client: PathBuf,
}

/// Makes the template: nodes, gateway, group and preferred content, the
/// cluster made by git-annex. No content anywhere.
fn template(env: &Env) -> PathBuf {
    let tpl = env.dir("tpl");
    std::fs::create_dir(&tpl).unwrap();
    let (gw, _) = env.init("tpl/gw", "gateway");
    env.git(&gw, &["config", "annex.sshcaching", "false"]);
    for n in NODES {
        let (d, u) = env.init(&format!("tpl/{n}"), &format!("node {n}"));
        env.add_remote(&gw, n, &d, &u, Reach::SshReal, Role::Node("c"));
        env.git(&gw, &["fetch", "-q", n]);
        env.git(&gw, &["annex", "group", n, "nodes"]);
        env.git(&gw, &["annex", "wanted", n, "groupwanted"]);
    }
    env.git(&gw, &["annex", "groupwanted", "nodes", "balanced=nodes:1"]);
    env.git(&gw, &["annex", "initcluster", "c"]);
    env.git(&gw, &["annex", "updatecluster"]);
    tpl
}

/// Copies the template to `name`, pointing its gateway at its own nodes,
/// and clones a client of the gateway, whose `git-annex-shell` is the real
/// one when `client_shell` is given (ours from PATH otherwise).
fn side(env: &Env, tpl: &Path, name: &str, client_shell: Option<&str>) -> Side {
    let root = env.dir(name);
    env.ok(
        env.tmp.path(),
        "cp",
        &["-a", tpl.to_str().unwrap(), root.to_str().unwrap()],
    );
    let gw = root.join("gw");
    for n in NODES {
        env.git(
            &gw,
            &[
                "config",
                &format!("remote.{n}.url"),
                &format!("localhost:{}", root.join(n).display()),
            ],
        );
    }
    let client = env.dir(&format!("{name}-client"));
    env.git(
        env.tmp.path(),
        &[
            "clone",
            "-q",
            &format!("localhost:{}", gw.display()),
            client.to_str().unwrap(),
        ],
    );
    env.git(&client, &["config", "user.name", "t"]);
    env.git(&client, &["config", "user.email", "t@example.invalid"]);
    env.git(&client, &["config", "annex.sshcaching", "false"]);
    if let Some(shell) = client_shell {
        env.git(&client, &["config", "remote.origin.annex-shell", shell]);
    }
    env.git(&client, &["annex", "init", "-q", name]);
    Side { root, gw, client }
}

/// The keys each node holds, by the objects in its repository.
fn objects(root: &Path) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut m: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for n in NODES {
        for f in files_under(&root.join(n).join(".git/annex/objects")) {
            let key = f.file_name().unwrap().to_string_lossy().into_owned();
            m.entry(key).or_default().insert(n);
        }
    }
    m
}

/// Adds `files` (name, seed) in the client and copies them to the cluster
/// (with --fast: the client does not ask the cluster first).
fn upload(env: &Env, s: &Side, files: &[(String, u64)]) {
    for (f, seed) in files {
        std::fs::write(s.client.join(f), pseudo_random(20_000, *seed)).unwrap();
    }
    let names: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    let mut args = vec!["annex", "add", "--quiet"];
    args.extend(&names);
    env.git(&s.client, &args);
    env.git(&s.client, &["commit", "-q", "-m", "files"]);
    let mut args = vec!["annex", "copy", "--quiet", "--fast", "--to", "origin-c"];
    args.extend(&names);
    env.git(&s.client, &args);
}

fn key_of(env: &Env, s: &Side, file: &str) -> String {
    env.git(&s.client, &["annex", "lookupkey", file])
        .trim()
        .to_string()
}

/// For each file, the nodes holding it on each side; they must be equal.
fn compare(env: &Env, sides: &[Side; 2], files: &[(String, u64)]) -> Vec<BTreeSet<&'static str>> {
    let held = [objects(&sides[0].root), objects(&sides[1].root)];
    files
        .iter()
        .map(|(f, _)| {
            let key = key_of(env, &sides[0], f);
            assert_eq!(key, key_of(env, &sides[1], f));
            let theirs = held[0].get(&key).cloned().unwrap_or_default();
            let ours = held[1].get(&key).cloned().unwrap_or_default();
            assert_eq!(ours, theirs, "{f} ({key}): ours, then git-annex's");
            ours
        })
        .collect()
}

/// The two copies of the template: `a`, whose client is served by the
/// real git-annex-shell, and `b`, whose client is served by ours.
fn both_sides(env: &Env) -> [Side; 2] {
    let shell = real_git_annex_shell();
    let tpl = template(env);
    [
        side(env, &tpl, "a", Some(&shell)),
        side(env, &tpl, "b", None),
    ]
}

fn batch(prefix: &str, count: u64, seed: u64) -> Vec<(String, u64)> {
    (0..count)
        .map(|i| (format!("{prefix}-{i:02}.bin"), seed + i))
        .collect()
}

#[test]
fn uploads_land_on_the_nodes_git_annex_chooses() {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let sides = both_sides(&env);

    // A file n1 has already, added there; each gateway learns it by
    // fetching from n1.
    let pre = pseudo_random(30_000, 999);
    for s in &sides {
        let n1 = s.root.join("n1");
        std::fs::write(n1.join("pre.bin"), &pre).unwrap();
        env.git(&n1, &["annex", "add", "--quiet", "pre.bin"]);
        env.git(&n1, &["commit", "-q", "-m", "pre"]);
        env.git(&s.gw, &["fetch", "-q", "n1"]);
        env.git(&s.gw, &["annex", "merge", "-q"]);
        std::fs::write(s.client.join("pre.bin"), &pre).unwrap();
    }

    // balanced=nodes:1: one node each, spread over the nodes; the file n1
    // has is wanted by no other node, so it goes to both nodes without it.
    let mut one = batch("one", 12, 100);
    one.push(("pre.bin".into(), 0));
    for s in &sides {
        let files: Vec<(String, u64)> = one[..12].to_vec();
        upload(&env, s, &files);
        env.git(&s.client, &["annex", "add", "--quiet", "pre.bin"]);
        env.git(&s.client, &["commit", "-q", "-m", "pre"]);
        env.git(
            &s.client,
            &[
                "annex", "copy", "--quiet", "--fast", "--to", "origin-c", "pre.bin",
            ],
        );
    }
    let held = compare(&env, &sides, &one);
    for h in &held[..12] {
        assert_eq!(h.len(), 1, "{held:?}");
    }
    let used: BTreeSet<_> = held[..12].iter().flatten().collect();
    assert!(used.len() > 1, "all on one node: {held:?}");
    assert_eq!(held[12], BTreeSet::from(["n1", "n2", "n3"]));

    // balanced=nodes:2: two nodes each.
    for s in &sides {
        env.git(
            &s.gw,
            &["annex", "groupwanted", "nodes", "balanced=nodes:2"],
        );
    }
    let two = batch("two", 12, 200);
    for s in &sides {
        upload(&env, s, &two);
    }
    for h in compare(&env, &sides, &two) {
        assert_eq!(h.len(), 2);
    }

    // No node wants anything: every node.
    for s in &sides {
        env.git(&s.gw, &["annex", "groupwanted", "nodes", "nothing"]);
    }
    let none = batch("none", 2, 300);
    for s in &sides {
        upload(&env, s, &none);
    }
    for h in compare(&env, &sides, &none) {
        assert_eq!(h, BTreeSet::from(["n1", "n2", "n3"]));
    }

    // Both clients were told the same locations (besides themselves).
    let told = |s: &Side| {
        let me = env.git(&s.client, &["config", "annex.uuid"]);
        let out = env.git(&s.client, &["annex", "whereis", "--json"]);
        out.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let mut u: Vec<String> = v["whereis"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["uuid"].as_str().unwrap().to_string())
                    .filter(|u| u != me.trim())
                    .collect();
                u.sort();
                (v["file"].as_str().unwrap().to_string(), u)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let theirs = told(&sides[0]);
    assert_eq!(theirs.len(), 27);
    assert_eq!(told(&sides[1]), theirs);
    // Every node's own fsck is clean.
    for s in &sides {
        for n in NODES {
            env.git(&s.root.join(n), &["annex", "fsck", "--quiet", "--all"]);
        }
    }
}

/// Adds `files` (name, seed, length) in the client and copies them to the
/// cluster in one command.
fn upload_sized(env: &Env, s: &Side, files: &[(String, u64, usize)]) {
    for (f, seed, len) in files {
        std::fs::write(s.client.join(f), pseudo_random(*len, *seed)).unwrap();
    }
    let names: Vec<&str> = files.iter().map(|(f, _, _)| f.as_str()).collect();
    let mut args = vec!["annex", "add", "--quiet"];
    args.extend(&names);
    env.git(&s.client, &args);
    env.git(&s.client, &["commit", "-q", "-m", "files"]);
    let mut args = vec!["annex", "copy", "--quiet", "--fast", "--to", "origin-c"];
    args.extend(&names);
    env.git(&s.client, &args);
}

/// With the nodes' sizes limited (maxsize), where uploads land depends
/// on how full each node is, counting what the same session stored
/// before and, while one upload's nodes are chosen, the key itself on
/// the nodes already chosen (git-annex asks the nodes in its order:
/// cheapest first, the last listed first among equals): balanced, then
/// sizebalanced (where a key often goes to two nodes, or to all when no
/// node has room), as git-annex's gateway.
#[test]
fn uploads_to_nodes_filling_up_land_where_git_annex_puts_them() {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let sides = both_sides(&env);
    for s in &sides {
        for (n, max) in [("n1", "150kB"), ("n2", "400kB"), ("n3", "600kB")] {
            env.git(&s.gw, &["annex", "maxsize", n, max]);
        }
    }
    let sized = |prefix: &str, seed: u64| -> Vec<(String, u64, usize)> {
        (0..12u64)
            .map(|i| {
                (
                    format!("{prefix}-{i:02}.bin"),
                    seed + i,
                    30_000 + 7_000 * (i as usize % 5),
                )
            })
            .collect()
    };
    let same = |files: &[(String, u64, usize)]| {
        let plain: Vec<(String, u64)> = files.iter().map(|(f, s, _)| (f.clone(), *s)).collect();
        compare(&env, &sides, &plain)
    };
    let one = sized("full", 400);
    for s in &sides {
        upload_sized(&env, s, &one);
    }
    same(&one);
    for s in &sides {
        env.git(
            &s.gw,
            &["annex", "groupwanted", "nodes", "sizebalanced=nodes:1"],
        );
    }
    let two = sized("sized", 500);
    for s in &sides {
        upload_sized(&env, s, &two);
    }
    same(&two);
}
