//! A cluster of two S3 special remotes (`s1`, `s2`, on a local S3
//! server, s3s-fs) and a local repository (`n1`): uploads land on the
//! nodes git-annex's own gateway chooses, each read once from the client
//! and written to all its nodes at once.
//!
//! One gateway with the cluster `c` is made by git-annex (initremote,
//! initcluster, updatecluster) and copied twice with `cp -a` before any
//! content, so that both copies have the same UUIDs. The copy `a` is
//! served by the real `git-annex-shell`, the copy `b` by ours. Both reach
//! the same buckets, so they run one after the other, the buckets emptied
//! between them. For every file, the nodes holding it must be the same.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use annex_test_support::proxy::{real_git_annex_shell, ProxyEnv as Env};
use annex_test_support::s3::S3Server;
use annex_test_support::{command, files_under, pseudo_random, run_ok};

const S3_NODES: [(&str, &str); 2] = [("s1", "bucket-one"), ("s2", "bucket-two")];

/// Makes the template: the gateway, its local node `n1` and its S3 nodes,
/// all in the group `nodes` with `balanced=nodes:1`, and the cluster.
fn template(env: &Env, server: &S3Server) -> PathBuf {
    let tpl = env.dir("tpl");
    std::fs::create_dir(&tpl).unwrap();
    let (gw, _) = env.init("tpl/gw", "gateway");
    env.git(&gw, &["config", "annex.sshcaching", "false"]);
    env.git(
        &gw,
        &["config", "annex.security.allowed-ip-addresses", "all"],
    );
    let (n1, u1) = env.init("tpl/n1", "node n1");
    env.git(&gw, &["remote", "add", "n1", n1.to_str().unwrap()]);
    env.git(&gw, &["config", "remote.n1.annex-uuid", &u1]);
    env.git(&gw, &["fetch", "-q", "n1"]);
    let port = format!("port={}", server.port);
    for (name, bucket) in S3_NODES {
        let b = format!("bucket={bucket}");
        let mut cmd = command(
            &gw,
            "git",
            &[
                "annex",
                "initremote",
                "-q",
                name,
                "type=S3",
                "encryption=none",
                "host=127.0.0.1",
                &port,
                "protocol=http",
                "requeststyle=path",
                &b,
            ],
        );
        cmd.env("PATH", &env.path).envs(server.env());
        run_ok(&mut cmd);
    }
    for n in ["n1", "s1", "s2"] {
        env.git(
            &gw,
            &["config", &format!("remote.{n}.annex-cluster-node"), "c"],
        );
        env.git(&gw, &["annex", "group", n, "nodes"]);
        env.git(&gw, &["annex", "wanted", n, "groupwanted"]);
    }
    env.git(&gw, &["annex", "groupwanted", "nodes", "balanced=nodes:1"]);
    env.git(&gw, &["annex", "initcluster", "c"]);
    env.git(&gw, &["annex", "updatecluster"]);
    tpl
}

/// One copy of the template: its gateway and a client of it.
struct Side {
    root: PathBuf,
    client: PathBuf,
}

fn side(env: &Env, tpl: &Path, name: &str, client_shell: Option<&str>) -> Side {
    let root = env.dir(name);
    env.ok(
        env.tmp.path(),
        "cp",
        &["-a", tpl.to_str().unwrap(), root.to_str().unwrap()],
    );
    let gw = root.join("gw");
    env.git(
        &gw,
        &["config", "remote.n1.url", root.join("n1").to_str().unwrap()],
    );
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
    Side { root, client }
}

/// The nodes holding each key: n1 by its objects, s1 and s2 by the
/// objects in their buckets.
fn held(root: &Path, server: &S3Server) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut m: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for f in files_under(&root.join("n1/.git/annex/objects")) {
        let key = f.file_name().unwrap().to_string_lossy().into_owned();
        m.entry(key).or_default().insert("n1");
    }
    for (name, bucket) in S3_NODES {
        for f in server.objects(bucket, "SHA256E-") {
            let key = f.file_name().unwrap().to_string_lossy().into_owned();
            m.entry(key).or_default().insert(name);
        }
    }
    m
}

/// Removes every object but `annex-uuid` from the S3 nodes' buckets.
fn empty_buckets(server: &S3Server) {
    for (_, bucket) in S3_NODES {
        for f in server.objects(bucket, "SHA256E-") {
            std::fs::remove_file(f).unwrap();
        }
    }
}

/// Uploads `files` (name, seed) from the side's client to the cluster;
/// the nodes holding each, by file.
fn upload(
    env: &Env,
    s: &Side,
    server: &S3Server,
    files: &[(String, u64)],
) -> Vec<(String, BTreeSet<&'static str>)> {
    for (f, seed) in files {
        std::fs::write(s.client.join(f), pseudo_random(40_000, *seed)).unwrap();
    }
    let names: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    let mut args = vec!["annex", "add", "--quiet"];
    args.extend(&names);
    env.git(&s.client, &args);
    env.git(&s.client, &["commit", "-q", "-m", "files"]);
    let mut args = vec!["annex", "copy", "--quiet", "--fast", "--to", "origin-c"];
    args.extend(&names);
    env.git(&s.client, &args);
    let held = held(&s.root, server);
    files
        .iter()
        .map(|(f, _)| {
            let key = env
                .git(&s.client, &["annex", "lookupkey", f])
                .trim()
                .to_string();
            (f.clone(), held.get(&key).cloned().unwrap_or_default())
        })
        .collect()
}

#[test]
fn uploads_to_s3_and_local_nodes_land_where_git_annex_puts_them() {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let server = S3Server::start(&env.dir("s3"));
    let shell = real_git_annex_shell();
    let tpl = template(&env, &server);
    let sides = [
        side(&env, &tpl, "a", Some(&shell)),
        side(&env, &tpl, "b", None),
    ];
    let files: Vec<(String, u64)> = (0..12).map(|i| (format!("f{i:02}.bin"), 100 + i)).collect();
    let theirs = upload(&env, &sides[0], &server, &files);
    empty_buckets(&server);
    let ours = upload(&env, &sides[1], &server, &files);
    assert_eq!(ours, theirs, "ours, then git-annex's");
    for (_, nodes) in &ours {
        assert_eq!(nodes.len(), 1, "{ours:?}");
    }
    let used: BTreeSet<_> = ours.iter().flat_map(|(_, n)| n).collect();
    assert!(used.len() > 1, "all on one node: {ours:?}");

    // Every node wanting everything: one upload, read once, lands on all
    // three, and each node has it valid.
    let gw = sides[1].root.join("gw");
    env.git(&gw, &["annex", "groupwanted", "nodes", "anything"]);
    let all = upload(
        &env,
        &sides[1],
        &server,
        &[("everywhere.bin".to_string(), 999)],
    );
    assert_eq!(all[0].1, BTreeSet::from(["n1", "s1", "s2"]));
    for (name, _) in S3_NODES {
        env.git(&gw, &["annex", "fsck", "--quiet", "--from", name, "--all"]);
    }
    env.git(
        &sides[1].root.join("n1"),
        &["annex", "fsck", "--quiet", "--all"],
    );
}
