//! Two gateways of one cluster that proxy each other: `gw1` has node `n1`
//! and the cluster behind `gw2`; `gw2` has node `n3` and the cluster
//! behind `gw1` (`annex extendcluster` both ways). A real git-annex client
//! of `gw1` stores, gets and drops through `origin-c`; `gw1` relays to
//! `gw2` with BYPASS naming itself, and `gw2` serves the cluster from its
//! own node only, never opening a session back to `gw1`. The sessions
//! each gateway is asked for are logged by a wrapper standing in for
//! `git-annex-shell` (our program).
//!
//! Both with our `gw1` (the BYPASS is ours) and with the real
//! git-annex-shell serving `gw1` to the client (the BYPASS is
//! git-annex's), `gw2` being ours.

use std::path::{Path, PathBuf};

use annex_test_support::proxy::{real_git_annex_shell, ProxyEnv as Env, Reach, Role};
use annex_test_support::{pseudo_random, write_executable};

struct Setup {
    env: Env,
    gw1: PathBuf,
    gw2: PathBuf,
    gw2_uuid: String,
    cluster: String,
    n1: (PathBuf, String),
    n3: (PathBuf, String),
    log: PathBuf,
}

fn setup() -> Setup {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    // git-annex-shell: our program, each session's arguments logged.
    let log = env.dir("sessions.log");
    // (Our program is git-annex-shell when called by that name.)
    let ours = env.dir("ours/git-annex-shell");
    std::fs::create_dir(ours.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(env.annex_program(), &ours).unwrap();
    let shell = env.dir("bin/git-annex-shell");
    std::fs::remove_file(&shell).unwrap();
    write_executable(
        &shell,
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            ours.display()
        ),
    );
    let n1 = env.init("n1", "node n1");
    let n3 = env.init("n3", "node n3");
    let (gw1, _) = env.init("gw1", "gateway 1");
    let (gw2, gw2_uuid) = env.init("gw2", "gateway 2");
    let node = |gw: &Path, name: &str, (dir, uuid): &(PathBuf, String)| {
        env.add_remote(gw, name, dir, uuid, Reach::Local, Role::Node("c"));
    };
    node(&gw1, "n1", &n1);
    env.annex(&gw1, &["initcluster", "c"]);
    let out = env.annex(&gw1, &["updatecluster"]);
    assert!(out.contains("Added node n1 to cluster: c"), "{out}");
    // gw2 becomes a gateway of the cluster, with its own node.
    env.add_ssh_remote(&gw2, "gw1", &gw1);
    node(&gw2, "n3", &n3);
    env.git(&gw2, &["fetch", "-q", "gw1"]);
    env.annex(&gw2, &["extendcluster", "gw1", "c"]);
    // And gw1 reaches the cluster behind gw2 in turn.
    env.add_ssh_remote(&gw1, "gw2", &gw2);
    env.git(&gw1, &["fetch", "-q", "gw2"]);
    env.annex(&gw1, &["extendcluster", "gw2", "c"]);
    env.git(&gw2, &["fetch", "-q", "gw1"]);
    env.annex(&gw2, &["updatecluster"]);
    std::fs::write(&log, "").unwrap();
    let cluster = env
        .git(&gw1, &["config", "annex.cluster.c"])
        .trim()
        .to_string();
    Setup {
        env,
        gw1,
        gw2,
        gw2_uuid,
        cluster,
        n1,
        n3,
        log,
    }
}

impl Setup {
    /// The p2pstdio sessions asked of our git-annex-shell since the last
    /// call, as argument lines.
    fn sessions(&self) -> Vec<String> {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        std::fs::write(&self.log, "").unwrap();
        s.lines()
            .filter(|l| l.starts_with("p2pstdio "))
            .map(str::to_owned)
            .collect()
    }

    /// Whether the node's own git-annex has `key`.
    fn has(&self, (dir, _): &(PathBuf, String), key: &str) -> bool {
        self.env.has_key(dir, key)
    }

    /// `gw2` was reached as the cluster, and never reached `gw1` back.
    fn no_loop(&self, what: &str) {
        let sessions = self.sessions();
        let gw1 = self.gw1.display().to_string();
        let gw2 = self.gw2.display().to_string();
        let as_cluster = format!("--uuid {}", self.cluster);
        assert!(
            sessions
                .iter()
                .any(|l| l.contains(&gw2) && l.contains(&as_cluster)),
            "{what}: the cluster behind gw2 not reached: {sessions:?}"
        );
        let back: Vec<&String> = sessions
            .iter()
            .filter(|l| l.contains(&gw1) && l.contains(&self.gw2_uuid))
            .collect();
        assert!(back.is_empty(), "{what}: gw2 went back to gw1: {back:?}");
    }
}

/// Returns the file's key.
fn store_get_drop(s: &Setup, client: &Path, file: &str, seed: u64) -> String {
    let env = &s.env;
    let content = pseudo_random(200_000, seed);
    let key = env.add_file(client, file, &content);
    s.sessions();
    env.git(
        client,
        &["annex", "copy", "--quiet", "--to", "origin-c", file],
    );
    assert!(s.has(&s.n1, &key), "not stored on n1");
    assert!(s.has(&s.n3, &key), "not stored on n3 (behind gw2)");
    s.no_loop("copy");
    let w = env.whereis_uuids(client, file);
    assert!(w.contains(&s.n1.1) && w.contains(&s.n3.1), "{w:?}");

    // Only n3 has it: a get through gw1 is served by gw2.
    env.git(
        client,
        &["annex", "drop", "--quiet", "--from", "origin-n1", file],
    );
    assert!(
        !s.has(&s.n1, &key),
        "still on n1 after drop --from origin-n1"
    );
    env.git(client, &["annex", "drop", "--force", "--quiet", file]);
    s.sessions();
    env.git(
        client,
        &["annex", "get", "--quiet", "--from", "origin-c", file],
    );
    assert_eq!(std::fs::read(client.join(file)).unwrap(), content);
    s.no_loop("get");

    env.git(
        client,
        &["annex", "drop", "--quiet", "--from", "origin-c", file],
    );
    assert!(
        !s.has(&s.n3, &key),
        "still on n3 after drop --from origin-c"
    );
    s.no_loop("drop");

    // Stored again on both; each node's own git-annex finds it valid.
    env.git(
        client,
        &["annex", "copy", "--quiet", "--to", "origin-c", file],
    );
    assert!(s.has(&s.n1, &key) && s.has(&s.n3, &key), "not stored again");
    s.no_loop("copy again");
    for n in [&s.n1, &s.n3] {
        env.git(&n.0, &["annex", "fsck", "--quiet", "--all"]);
    }
    key
}

#[test]
fn our_gateways_proxying_each_others_cluster_never_loop() {
    let s = setup();
    let client = s.env.clone_client(&s.gw1, "client");
    let info = s.env.git(&client, &["annex", "info", "origin"]);
    assert!(info.contains("origin-c"), "{info}");
    let key = store_get_drop(&s, &client, "ours.bin", 1);

    // The control: asked for the cluster without a BYPASS (our `annex
    // remote` as the client of gw2), gw2 does relay to the cluster behind
    // gw1; above, it never did.
    let to_cluster = s.env.dir("bin/to-cluster");
    write_executable(
        &to_cluster,
        &format!(
            "#!/bin/sh\nexec git-annex-shell \"$@\" --uuid {}\n",
            s.cluster
        ),
    );
    s.sessions();
    let shell = to_cluster.display().to_string();
    let gw2 = s.gw2.display().to_string();
    s.env.annex(
        s.env.tmp.path(),
        &["remote", "--shell", &shell, &gw2, "remove", &key],
    );
    let sessions = s.sessions();
    let gw1 = s.gw1.display().to_string();
    assert!(
        sessions
            .iter()
            .any(|l| l.contains(&gw1) && l.contains(&s.gw2_uuid)),
        "gw2 did not relay to gw1 without a BYPASS: {sessions:?}"
    );
    assert!(!s.has(&s.n1, &key) && !s.has(&s.n3, &key));
}

#[test]
fn git_annex_gateway_bypassing_ours_never_loops() {
    let s = setup();
    let client = s.env.clone_client(&s.gw1, "client");
    // The client's sessions with gw1 are served by the real
    // git-annex-shell, which relays to our gw2.
    s.env.git(
        &client,
        &[
            "config",
            "remote.origin.annex-shell",
            &real_git_annex_shell(),
        ],
    );
    store_get_drop(&s, &client, "theirs.bin", 2);
}
