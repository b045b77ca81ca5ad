//! Nothing from the git-annex branch reaches a shell unquoted.
//!
//! Our gateway `gw1` has a cluster `c` with a node `n1`, and reaches
//! `gw2` over (fake) ssh as a gateway of that cluster. Someone who can
//! push to gw2's git-annex branch writes there that gw2 proxies a
//! repository whose "UUID" is a shell command (`a;touch${IFS}MARKER;b`)
//! and that it is a node of `c`; and, in gw1's own line of proxy.log,
//! that gw1 proxies another. gw1 fetches gw2 and runs `annex
//! updateproxy`, which would relay the entry. Then clients use gw1:
//! - one naming that UUID in `git-annex-shell p2pstdio --uuid` over ssh;
//! - one naming it, percent-encoded, in a p2phttp request path;
//! - the real git-annex storing a file in the cluster over ssh and over
//!   p2phttp.
//!
//! The command never runs (the marker file never appears), the hostile
//! entries are neither relayed nor kept in gw1's lines (updateproxy warns
//! about them; updatecluster drops the node), the UUID is refused as one gw1 does not serve, and the
//! cluster works as before for git-annex.
//!
//! (A real git-annex client is not made to name the UUID over ssh itself:
//! git-annex writes `--uuid` unquoted into the command it sends, so it
//! would run the command on the gateway's host whatever the gateway
//! does. A gateway of ours never lists such a UUID for it to learn.)

use std::path::{Path, PathBuf};

use annex_branch::logs::paths::{CLUSTER_LOG, PROXY_LOG};
use annex_branch::{Branch, VectorClock};
use annex_test_support::proxy::{ProxyEnv as Env, Reach, Role};
use annex_test_support::{pseudo_random, read_response_head};

/// Writes `CLOCK FIELD VALUE` as the line of `field` in the UUID-based
/// log `path` of `repo`'s git-annex branch, newer than `field`'s line in
/// `repo` and in each of `others` (so that it wins when they are merged),
/// and commits it.
fn write_line(repo: &Path, path: &str, field: &str, value: &str, others: &[&Path]) {
    let clock_of = |text: &[u8]| {
        text.split(|&b| b == b'\n')
            .filter_map(|l| {
                let mut w = l.splitn(3, |&b| b == b' ');
                let c = VectorClock::parse(w.next()?)?;
                (w.next()? == field.as_bytes()).then_some(c)
            })
            .max()
    };
    let clocks: Vec<VectorClock> = std::iter::once(repo)
        .chain(others.iter().copied())
        .filter_map(|r| clock_of(&Branch::open(r).unwrap().read(path).unwrap()))
        .collect();
    let clock = VectorClock::advance(VectorClock::now(), clocks);
    let b = Branch::open(repo).unwrap();
    b.change(path, |old| {
        let mut out: Vec<u8> = Vec::new();
        for l in old.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if l.split(|&b| b == b' ').nth(1) != Some(field.as_bytes()) {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
        }
        out.extend_from_slice(format!("{clock} {field} {value}\n").as_bytes());
        Some(out)
    })
    .unwrap();
    b.commit("update").unwrap();
}

/// Every byte but ASCII letters and digits percent-encoded.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Setup {
    env: Env,
    gw1: PathBuf,
    n1: PathBuf,
    hostile: String,
    /// In gw1's own line of proxy.log.
    hostile_own: String,
    marker: PathBuf,
}

fn setup() -> Setup {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let marker = env.dir("ran");
    let hostile = format!("a;touch${{IFS}}{};b", marker.display());
    let hostile_own = format!("b;touch${{IFS}}{};c", marker.display());
    let (gw1, gw1_uuid) = env.init("gw1", "gateway 1");
    let (gw2, gw2_uuid) = env.init("gw2", "gateway 2");
    let (n1, n1_uuid) = env.init("n1", "node n1");
    env.add_remote(&gw1, "n1", &n1, &n1_uuid, Reach::Local, Role::Node("c"));
    env.annex(&gw1, &["initcluster", "c"]);
    let out = env.annex(&gw1, &["updatecluster"]);
    assert!(out.contains("Added node n1 to cluster: c"), "{out}");
    let cluster = env
        .git(&gw1, &["config", "annex.cluster.c"])
        .trim()
        .to_string();
    // gw2, reached over ssh, is a gateway of the cluster as far as gw1
    // knows.
    env.add_ssh_remote(&gw1, "gw2", &gw2);
    env.git(&gw1, &["config", "remote.gw2.annex-uuid", &gw2_uuid]);
    env.git(
        &gw1,
        &["config", "remote.gw2.annex-cluster-gateway", &cluster],
    );
    // Written by whoever can push to gw2's git-annex branch.
    write_line(&gw2, PROXY_LOG, &gw2_uuid, &format!("{hostile}:x"), &[]);
    write_line(
        &gw2,
        CLUSTER_LOG,
        &cluster,
        &format!("{n1_uuid} {hostile}"),
        &[&gw1],
    );
    // And by whoever can push to gw1's: its own line, with what it
    // proxies and one more.
    let own = Branch::open(&gw1).unwrap().read(PROXY_LOG).unwrap();
    let own = String::from_utf8(own).unwrap();
    let entries = own
        .lines()
        .find_map(|l| {
            let mut w = l.splitn(3, ' ');
            w.next()?;
            (w.next()? == gw1_uuid).then(|| w.next().unwrap_or("").to_owned())
        })
        .unwrap();
    write_line(
        &gw1,
        PROXY_LOG,
        &gw1_uuid,
        &format!("{entries} {hostile_own}:y"),
        &[],
    );
    env.git(&gw1, &["fetch", "-q", "gw2"]);
    Setup {
        env,
        gw1,
        n1,
        hostile,
        hostile_own,
        marker,
    }
}

impl Setup {
    /// Whether the hostile command ran since the last call.
    fn ran(&self) -> bool {
        let ran = self.marker.exists();
        let _ = std::fs::remove_file(&self.marker);
        ran
    }

    /// `git annex copy --to origin-c` of a new file in `client`; whether
    /// it succeeded and n1 got the file.
    fn store_in_cluster(&self, client: &Path, file: &str, seed: u64) -> Result<(), String> {
        let env = &self.env;
        std::fs::write(client.join(file), pseudo_random(50_000, seed)).unwrap();
        env.git(client, &["annex", "add", "--quiet", file]);
        env.git(client, &["commit", "-q", "-m", file]);
        let out = env.run(
            client,
            "git",
            &["annex", "copy", "--quiet", "--to", "origin-c", file],
        );
        if !out.status.success() {
            return Err(format!(
                "copy --to origin-c failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let key = env.git(client, &["annex", "lookupkey", file]);
        if env.has_key(&self.n1, key.trim()) {
            Ok(())
        } else {
            Err(format!("n1 did not get {file}"))
        }
    }
}

#[test]
fn hostile_uuids_from_the_branch_never_reach_a_shell() {
    let s = setup();
    let env = &s.env;
    let mut ran_in = Vec::new();
    let mut problems = Vec::new();

    let out = env.run(
        &s.gw1,
        env.annex_program().to_str().unwrap(),
        &["updateproxy"],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        problems.push(format!("updateproxy failed: {said}"));
    }
    if s.ran() {
        ran_in.push("updateproxy");
    }
    let log = Branch::open(&s.gw1).unwrap().read(PROXY_LOG).unwrap();
    let log = String::from_utf8_lossy(&log);
    let gw1_line = log
        .lines()
        .find(|l| l.contains(":n1 ") || l.ends_with(":n1"))
        .unwrap_or_default();
    if gw1_line.contains(&s.hostile) || gw1_line.contains(&s.hostile_own) {
        problems.push(format!(
            "gw1's proxy.log line lists a hostile entry: {gw1_line}"
        ));
    }
    if !said.contains(&format!("{:?}", s.hostile)) {
        problems.push(format!(
            "updateproxy gave no warning about the entry: {said}"
        ));
    }

    // updatecluster drops the node from the cluster's line.
    let out = env.run(
        &s.gw1,
        env.annex_program().to_str().unwrap(),
        &["updatecluster"],
    );
    if s.ran() {
        ran_in.push("updatecluster");
    }
    let log = Branch::open(&s.gw1).unwrap().read(CLUSTER_LOG).unwrap();
    if !out.status.success() || String::from_utf8_lossy(&log).contains(&s.hostile) {
        problems.push(format!(
            "updatecluster kept the node: {out:?}; cluster.log: {}",
            String::from_utf8_lossy(&log)
        ));
    }

    // A client naming the UUID over ssh.
    let command = format!(
        "git-annex-shell 'p2pstdio' '{}' '11111111-2222-4333-8444-555555555555' --uuid '{}'",
        s.gw1.display(),
        s.hostile
    );
    let out = env.run(env.tmp.path(), "ssh", &["localhost", &command]);
    if s.ran() {
        ran_in.push("p2pstdio --uuid over ssh");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let refused = format!("expected repository UUID {} but found", s.hostile);
    if out.status.success() || !err.contains(&refused) {
        problems.push(format!("p2pstdio --uuid HOSTILE was not refused: {err}"));
    }

    // The real git-annex storing in the cluster over ssh.
    let client = env.clone_client(&s.gw1, "client");
    if let Err(e) = s.store_in_cluster(&client, "ssh.bin", 1) {
        problems.push(format!("over ssh: {e}"));
    }
    if s.ran() {
        ran_in.push("git annex copy --to origin-c over ssh");
    }

    // A client naming the UUID over p2phttp.
    let (_server, port) = env.serve_p2phttp(&s.gw1, "p2phttp.log");
    let status = {
        use std::io::{BufReader, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            c,
            "POST /git-annex/{}/v4/checkpresent?key=SHA256E-s1--{}&clientuuid=11111111-2222-4333-8444-555555555555 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            percent_encode(&s.hostile),
            "0".repeat(64)
        )
        .unwrap();
        read_response_head(&mut BufReader::new(c)).unwrap().status
    };
    if s.ran() {
        ran_in.push("checkpresent over p2phttp");
    }
    if status == 200 {
        problems.push("p2phttp answered for the hostile UUID".into());
    }

    // The real git-annex storing in the cluster over p2phttp.
    let client = env.clone_http_client(&s.gw1, "client-http", port);
    if let Err(e) = s.store_in_cluster(&client, "http.bin", 2) {
        problems.push(format!("over p2phttp: {e}"));
    }
    if s.ran() {
        ran_in.push("git annex copy --to origin-c over p2phttp");
    }

    assert!(
        ran_in.is_empty() && problems.is_empty(),
        "the command from the branch ran in: {ran_in:?}; problems: {problems:#?}"
    );
}
