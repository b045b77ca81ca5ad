//! Faults around a cluster behind a gateway of ours, with the real
//! git-annex as the client:
//! - a client killed in the middle of an upload: the gateway's session
//!   and every session it had to the nodes end, and the retry resumes on
//!   every node (the client is asked for the content from where the nodes
//!   got to) and succeeds;
//! - the seed's bug: after an interrupted upload, a node added to the
//!   cluster, and the upload repeated, the nodes with partial copies and
//!   the new node all end with a valid copy, over ssh and over HTTP;
//! - a node that ends up with wrong content (its partial copy of the key
//!   was corrupted before the upload resumed it) is not reported as
//!   having it;
//! - a download whose cheapest node dies in the middle reaches the client
//!   as one successful download, the rest coming from another node;
//! - a drop with a node down removes the content from the other nodes,
//!   fails, and the client learns which nodes no longer have it;
//! - a client killed in the middle of a download: no session is left
//!   behind over ssh; over HTTP, the session that carried it ends and the
//!   gateway goes on serving.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use annex_test_support::proxy::{ProxyEnv as Env, Reach, Role};
use annex_test_support::{
    command, descendants_named, pseudo_random, run_ok, wait_until_none_left, write_executable,
    KillOnDrop,
};

/// How the gateway reaches a node.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// A repository at a local path, used in the gateway's process.
    Local,
    /// Over ssh, served by the real `git-annex-shell`.
    SshReal,
    /// Over ssh, served by our `git-annex-shell`.
    SshOurs,
    /// Over annex+http, served by our `annex p2phttp`.
    HttpOurs,
}

struct Node {
    name: String,
    dir: PathBuf,
    uuid: String,
    server: Option<KillOnDrop>,
}

struct Setup {
    env: Env,
    gw: PathBuf,
    nodes: Vec<Node>,
}

impl Setup {
    fn new(nodes: &[(&str, Kind)]) -> Setup {
        let env = Env::new(env!("CARGO_BIN_EXE_annex"));
        let (gw, _) = env.init("gw", "gateway");
        env.annex(&gw, &["initcluster", "c"]);
        let mut s = Setup {
            env,
            gw,
            nodes: Vec::new(),
        };
        for (name, kind) in nodes {
            s.add_node(name, *kind);
        }
        let out = s.env.annex(&s.gw, &["updatecluster"]);
        for (name, _) in nodes {
            assert!(out.contains(&format!("Added node {name} to cluster: c")));
        }
        s
    }

    /// A new node `name` of the cluster, configured at the gateway (to be
    /// recorded by updatecluster).
    fn add_node(&mut self, name: &str, kind: Kind) {
        let env = &self.env;
        let gw = &self.gw;
        let (dir, uuid) = env.init(name, &format!("node {name}"));
        let mut server = None;
        let reach = match kind {
            Kind::Local => Reach::Local,
            Kind::SshReal => Reach::SshReal,
            Kind::SshOurs => Reach::Ssh,
            Kind::HttpOurs => {
                let (child, port) = env.serve_p2phttp(&dir, &format!("{name}-p2phttp.log"));
                server = Some(child);
                Reach::Http(port)
            }
        };
        env.add_remote(gw, name, &dir, &uuid, reach, Role::Node("c"));
        env.git(gw, &["fetch", "-q", name]);
        self.nodes.push(Node {
            name: name.to_string(),
            dir,
            uuid,
            server,
        });
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).unwrap()
    }

    /// The nodes (by name) whose own repository has `key`.
    fn nodes_with(&self, key: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| self.env.has_key(&n.dir, key))
            .map(|n| n.name.clone())
            .collect()
    }

    /// The real `git annex fsck` in every node finds every object valid.
    fn fsck_nodes(&self) {
        for n in &self.nodes {
            self.env.git(&n.dir, &["annex", "fsck", "--quiet", "--all"]);
        }
    }

    /// The pids of the servers this test started (left out of the
    /// processes that must end).
    fn servers(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter_map(|n| n.server.as_ref().map(|c| c.id() as i32))
            .collect()
    }

    /// A script for GIT_SSH_COMMAND (used by git-annex with
    /// GIT_ANNEX_USE_GIT_SSH=1): the fake ssh, with what the client sends
    /// written to `sent` and what the far side answers to `answered` too.
    /// (The fake ssh drops GIT_ variables, so the gateway's own ssh
    /// connections are not logged.)
    fn logging_ssh(&self, sent: &Path, answered: &Path) -> PathBuf {
        let script = self.env.dir("logging-ssh");
        write_executable(
            &script,
            &format!(
                "#!/bin/bash\nset -o pipefail\ntee -a {} | {}/bin/ssh \"$@\" | tee -a {}\n",
                sent.display(),
                self.env.tmp.path().display(),
                answered.display()
            ),
        );
        script
    }
}

fn add_file(env: &Env, client: &Path, file: &str, len: usize, seed: u64) -> (Vec<u8>, String) {
    let content = pseudo_random(len, seed);
    let key = env.add_file(client, file, &content);
    (content, key)
}

/// The size of the node's partial copy of `key` (0: none).
fn partial(dir: &Path, key: &str) -> u64 {
    std::fs::metadata(dir.join(".git/annex/tmp").join(key))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Every process (but `except`) whose command line names the test's
/// temporary directory or whose working directory is in it: pid and
/// command line.
fn processes_in(tmp: &Path, except: &[i32]) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me || except.contains(&pid) {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        if cmd.contains(&*tmp.to_string_lossy()) || cwd.starts_with(tmp) {
            out.push((pid, cmd));
        }
    }
    out
}

fn kill(pid: i32) {
    // SAFETY: signalling a process (or, negative, a process group) this
    // test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Waits (up to 15 s) until `done`, failing with `what` otherwise.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a slowed-down copy of `file` to the cluster and waits until
/// every node of `nodes` has received at least 256 KiB of it.
fn start_slow_copy(
    s: &Setup,
    client: &Path,
    file: &str,
    key: &str,
    nodes: &[&str],
) -> std::process::Child {
    let mut child = s.env.slow_copy(client, "origin-c", file, "2MiB");
    let dirs: Vec<&Path> = nodes.iter().map(|n| s.node(n).dir.as_path()).collect();
    wait_until("the upload did not reach every node", || {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the upload ended before it was interrupted: {st}");
        }
        dirs.iter().all(|d| partial(d, key) >= 256 << 10)
    });
    child
}

/// Kills the git-annex client of a copy over ssh (not the gateway's
/// session, which must notice by itself), waits until no process is left
/// in the test's directory but the nodes' servers, and reaps the copy.
fn kill_client_and_wait(s: &Setup, mut child: std::process::Child) {
    let except = s.servers();
    let annex = descendants_named(child.id() as i32, "git-annex");
    assert!(!annex.is_empty(), "no git-annex process under the copy");
    for pid in annex {
        kill(pid);
    }
    let _ = child.wait();
    let tmp = s.env.tmp.path();
    wait_until_none_left(
        Duration::from_secs(15),
        "processes left behind by the interrupted copy",
        || processes_in(tmp, &except),
    );
    // Whatever is left of the copy's process group.
    kill(-(child.id() as i32));
}

/// Runs `git annex copy --to origin-c FILE` in `client` with the far
/// side's messages logged; returns the offsets the client was asked to
/// send from.
fn logged_copy(s: &Setup, client: &Path, file: &str, log_name: &str) -> Vec<u64> {
    let log = s.env.dir(log_name);
    let ssh = s.logging_ssh(Path::new("/dev/null"), &log);
    run_ok(
        command(client, "git", &["annex", "copy", "--to", "origin-c", file])
            .env("PATH", &s.env.path)
            .env("GIT_ANNEX_USE_GIT_SSH", "1")
            .env("GIT_SSH_COMMAND", &ssh),
    );
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let asked: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("PUT-FROM "))
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert!(!asked.is_empty(), "{text}");
    asked
}

const BIG: usize = 12 << 20;

/// A local node and one over ssh each served by git-annex and by us.
const LOCAL_AND_SSH: [(&str, Kind); 3] = [
    ("n1", Kind::Local),
    ("n2", Kind::SshReal),
    ("n3", Kind::SshOurs),
];

/// A local node, one over ssh served by git-annex, one over HTTP by us.
const LOCAL_SSH_AND_HTTP: [(&str, Kind); 3] = [
    ("n1", Kind::Local),
    ("n2", Kind::SshReal),
    ("n3", Kind::HttpOurs),
];

#[test]
fn a_client_killed_mid_upload_leaves_nothing_behind_and_the_retry_resumes() {
    let s = Setup::new(&LOCAL_AND_SSH);
    let env = &s.env;
    let client = env.clone_client(&s.gw, "client");
    let (content, key) = add_file(env, &client, "big.bin", BIG, 1);
    let child = start_slow_copy(&s, &client, "big.bin", &key, &["n1", "n2", "n3"]);
    kill_client_and_wait(&s, child);
    let partials: Vec<u64> = s.nodes.iter().map(|n| partial(&n.dir, &key)).collect();
    for p in &partials {
        assert!(*p > 0 && (*p as usize) < BIG, "{partials:?}");
    }
    assert!(s.nodes_with(&key).is_empty());
    // The retry asks the client for what the node with the least lacks,
    // and each node goes on from its own partial copy.
    let asked = logged_copy(&s, &client, "big.bin", "retry.log");
    assert_eq!(asked, [*partials.iter().min().unwrap()], "{partials:?}");
    assert_eq!(s.nodes_with(&key), ["n1", "n2", "n3"]);
    let w = env.whereis_uuids(&client, "big.bin");
    for n in &s.nodes {
        assert!(w.contains(&n.uuid), "{w:?}");
    }
    s.fsck_nodes();
    env.git(&client, &["annex", "drop", "--quiet", "big.bin"]);
    env.git(
        &client,
        &["annex", "get", "--quiet", "--from", "origin-c", "big.bin"],
    );
    assert_eq!(std::fs::read(client.join("big.bin")).unwrap(), content);
}

#[test]
fn a_node_added_after_an_interrupted_upload_and_the_partial_copies_all_end_valid_over_ssh() {
    let mut s = Setup::new(&[("n1", Kind::Local), ("n2", Kind::SshReal)]);
    let client = s.env.clone_client(&s.gw, "client");
    let (_, key) = add_file(&s.env, &client, "big.bin", BIG, 2);
    let child = start_slow_copy(&s, &client, "big.bin", &key, &["n1", "n2"]);
    kill_client_and_wait(&s, child);
    s.add_node("n3", Kind::SshOurs);
    let out = s.env.annex(&s.gw, &["updatecluster"]);
    assert!(out.contains("Added node n3 to cluster: c"), "{out}");
    assert!(partial(&s.node("n1").dir, &key) > 0);
    assert!(partial(&s.node("n2").dir, &key) > 0);
    // The new node needs all of it.
    let asked = logged_copy(&s, &client, "big.bin", "retry.log");
    assert_eq!(asked, [0]);
    assert_eq!(s.nodes_with(&key), ["n1", "n2", "n3"]);
    let w = s.env.whereis_uuids(&client, "big.bin");
    for n in &s.nodes {
        assert!(w.contains(&n.uuid), "{w:?}");
    }
    s.fsck_nodes();
}

#[test]
fn a_node_added_after_an_interrupted_upload_and_the_partial_copies_all_end_valid_over_http() {
    let mut s = Setup::new(&LOCAL_SSH_AND_HTTP);
    let (server, port) = s.env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let gw_pid = server.id() as i32;
    let client = s.env.clone_http_client(&s.gw, "hclient", port);
    let (_, key) = add_file(&s.env, &client, "big.bin", BIG, 3);
    let child = start_slow_copy(&s, &client, "big.bin", &key, &["n1", "n2", "n3"]);
    // The gateway's session to n2 that carries the upload.
    let n2 = s.node("n2").dir.to_string_lossy().into_owned();
    let carrying: Vec<i32> = processes_in(s.env.tmp.path(), &[gw_pid])
        .into_iter()
        .filter(|(_, cmd)| cmd.contains(&n2))
        .map(|(p, _)| p)
        .collect();
    assert!(!carrying.is_empty());
    // The client dies (the whole of it: the gateway is a server apart).
    kill(-(child.id() as i32));
    let mut child = child;
    let _ = child.wait();
    wait_until("the session carrying the upload to n2 did not end", || {
        let now: Vec<i32> = processes_in(s.env.tmp.path(), &[gw_pid])
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        carrying.iter().all(|p| !now.contains(p))
    });
    assert!(partial(&s.node("n1").dir, &key) > 0);
    assert!(partial(&s.node("n2").dir, &key) > 0);
    assert!(partial(&s.node("n3").dir, &key) > 0);
    s.add_node("n4", Kind::SshOurs);
    let out = s.env.annex(&s.gw, &["updatecluster"]);
    assert!(out.contains("Added node n4 to cluster: c"), "{out}");
    // The server is started again to serve the cluster as it is now (the
    // nodes are read when a server starts, as git-annex p2phttp reads
    // them).
    drop(server);
    let (server, port) = s.env.serve_p2phttp(&s.gw, "gw-p2phttp-2.log");
    s.env.git(
        &client,
        &[
            "config",
            "remote.origin.annexUrl",
            &format!("annex+http://127.0.0.1:{port}/git-annex/"),
        ],
    );
    s.env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "big.bin"],
    );
    assert_eq!(s.nodes_with(&key), ["n1", "n2", "n3", "n4"]);
    let w = s.env.whereis_uuids(&client, "big.bin");
    for n in &s.nodes {
        assert!(w.contains(&n.uuid), "{w:?}");
    }
    drop(server);
    s.fsck_nodes();
}

#[test]
fn a_node_whose_partial_copy_is_corrupt_is_not_reported_as_having_the_content() {
    let s = Setup::new(&LOCAL_AND_SSH);
    let env = &s.env;
    let client = env.clone_client(&s.gw, "client");
    let (_, key) = add_file(env, &client, "f.bin", 1 << 20, 4);
    // n1 and n2 hold a partial copy of the key whose bytes are wrong (a
    // disk that failed, say): an upload resumes from it.
    for n in ["n1", "n2"] {
        let tmp = s.node(n).dir.join(".git/annex/tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join(&key), pseudo_random(300_000, 99)).unwrap();
    }
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "f.bin"],
    );
    assert_eq!(s.nodes_with(&key), ["n3"]);
    let w = env.whereis_uuids(&client, "f.bin");
    assert!(w.contains(&s.node("n3").uuid), "{w:?}");
    for n in ["n1", "n2"] {
        assert!(!w.contains(&s.node(n).uuid), "{n}: {w:?}");
    }
    // Neither the gateway nor the nodes themselves record it there.
    let out = env.git(&s.gw, &["annex", "whereis", "--key", &key]);
    for n in ["n1", "n2"] {
        assert!(!out.contains(&s.node(n).uuid), "{out}");
    }
    s.fsck_nodes();
}

#[test]
fn a_download_whose_node_dies_midway_is_finished_from_another() {
    let mut s = Setup::new(&[("n1", Kind::Local), ("n3", Kind::HttpOurs)]);
    let env = &s.env;
    // n3 is read from first.
    env.git(&s.gw, &["config", "remote.n3.annex-cost", "50"]);
    env.git(&s.gw, &["config", "remote.n1.annex-cost", "300"]);
    let client = env.clone_client(&s.gw, "client");
    let size = 24 << 20;
    let (content, key) = add_file(env, &client, "big.bin", size, 5);
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "big.bin"],
    );
    assert_eq!(s.nodes_with(&key), ["n1", "n3"]);
    env.git(&client, &["annex", "drop", "--quiet", "big.bin"]);
    // Bytes n3's server has written so far.
    let n3_pid = s.node("n3").server.as_ref().unwrap().id();
    let written = |pid: u32| -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("wchar: "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = written(n3_pid);
    // What the client asks the gateway.
    let requests = env.dir("requests.log");
    use std::os::unix::process::CommandExt;
    let mut get = std::process::Command::new("git")
        .current_dir(&client)
        .args([
            "-c",
            "annex.stalldetection=false",
            "-c",
            "annex.bwlimit=8MiB",
        ])
        .args(["annex", "get", "--from", "origin-c", "big.bin"])
        .env("PATH", &env.path)
        .env("GIT_ANNEX_USE_GIT_SSH", "1")
        .env(
            "GIT_SSH_COMMAND",
            s.logging_ssh(&requests, Path::new("/dev/null")),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let client_tmp = client.join(".git/annex/tmp").join(&key);
    wait_until("the download did not start", || {
        if let Ok(Some(st)) = get.try_wait() {
            panic!("the download ended before the node died: {st}");
        }
        std::fs::metadata(&client_tmp).map(|m| m.len()).unwrap_or(0) >= 1 << 20
    });
    // n3 was sending it.
    let sent = written(n3_pid) - before;
    assert!(sent >= 1 << 20, "n3 sent {sent} bytes");
    let got = std::fs::metadata(&client_tmp).unwrap().len();
    assert!((got as usize) < size);
    // n3 dies in the middle of it.
    for n in &mut s.nodes {
        if n.name == "n3" {
            drop(n.server.take());
        }
    }
    let out = get.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(client.join("big.bin")).unwrap(), content);
    // One download: the client did not have to ask again.
    let asked = std::fs::read_to_string(&requests).unwrap();
    let gets: Vec<&str> = asked.lines().filter(|l| l.starts_with("GET ")).collect();
    assert_eq!(gets.len(), 1, "{asked}");
}

#[test]
fn a_drop_with_a_node_down_removes_from_the_others_and_says_so() {
    let mut s = Setup::new(&LOCAL_SSH_AND_HTTP);
    let client = s.env.clone_client(&s.gw, "client");
    let (_, key) = add_file(&s.env, &client, "f.bin", 100_000, 6);
    s.env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "f.bin"],
    );
    assert_eq!(s.nodes_with(&key), ["n1", "n2", "n3"]);
    for n in &mut s.nodes {
        if n.name == "n3" {
            drop(n.server.take());
        }
    }
    let out = s.env.run(
        &client,
        "git",
        &["annex", "drop", "--from", "origin-c", "f.bin"],
    );
    assert!(!out.status.success());
    assert_eq!(s.nodes_with(&key), ["n3"]);
    // The client was told which nodes no longer have it.
    let w = s.env.whereis_uuids(&client, "f.bin");
    assert!(w.contains(&s.node("n3").uuid), "{w:?}");
    for n in ["n1", "n2"] {
        assert!(!w.contains(&s.node(n).uuid), "{n}: {w:?}");
    }
    s.env
        .git(&s.node("n3").dir, &["annex", "fsck", "--quiet", "--all"]);
}

/// `git annex get --from origin-c big.bin` in `client`, slowed down, once
/// half a megabyte of `key` has arrived.
fn start_slow_download(env: &Env, client: &Path, key: &str) -> std::process::Child {
    let mut get = env.slow_get(client, "origin-c", "big.bin", "2MiB");
    let client_tmp = client.join(".git/annex/tmp").join(key);
    wait_until("the download did not start", || {
        if let Ok(Some(st)) = get.try_wait() {
            panic!("the download ended before it was interrupted: {st}");
        }
        std::fs::metadata(&client_tmp).map(|m| m.len()).unwrap_or(0) >= 512 << 10
    });
    get
}

#[test]
fn a_client_killed_mid_download_leaves_nothing_behind() {
    let s = Setup::new(&[("n2", Kind::SshReal), ("n3", Kind::SshOurs)]);
    let env = &s.env;
    let client = env.clone_client(&s.gw, "client");
    let (content, key) = add_file(env, &client, "big.bin", BIG, 7);
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "big.bin"],
    );
    env.git(&client, &["annex", "drop", "--quiet", "big.bin"]);
    let get = start_slow_download(env, &client, &key);
    kill_client_and_wait(&s, get);
    // The download is taken up again.
    env.git(
        &client,
        &["annex", "get", "--quiet", "--from", "origin-c", "big.bin"],
    );
    assert_eq!(std::fs::read(client.join("big.bin")).unwrap(), content);
}

#[test]
fn a_client_killed_mid_download_over_http_leaves_the_gateway_serving() {
    let s = Setup::new(&[("n2", Kind::SshReal), ("n3", Kind::SshOurs)]);
    let env = &s.env;
    let (server, port) = env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let gw_pid = server.id() as i32;
    let client = env.clone_http_client(&s.gw, "hclient", port);
    let (content, key) = add_file(env, &client, "big.bin", BIG, 8);
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "big.bin"],
    );
    env.git(&client, &["annex", "drop", "--quiet", "big.bin"]);
    let mut get = start_slow_download(env, &client, &key);
    // The sessions to the nodes while the download runs.
    let nodes: Vec<String> = s
        .nodes
        .iter()
        .map(|n| n.dir.to_string_lossy().into_owned())
        .collect();
    let sessions = || -> Vec<i32> {
        processes_in(env.tmp.path(), &[gw_pid])
            .into_iter()
            .filter(|(_, cmd)| nodes.iter().any(|n| cmd.contains(n.as_str())))
            .map(|(p, _)| p)
            .collect()
    };
    let during = sessions();
    assert!(!during.is_empty());
    kill(-(get.id() as i32));
    let _ = get.wait();
    // The session that carried the download ends (others may be kept).
    wait_until("the session carrying the download did not end", || {
        let now = sessions();
        during.iter().any(|p| !now.contains(p))
    });
    // The gateway goes on serving: the download again, and an upload,
    // through whatever sessions it kept.
    env.git(
        &client,
        &["annex", "get", "--quiet", "--from", "origin-c", "big.bin"],
    );
    assert_eq!(std::fs::read(client.join("big.bin")).unwrap(), content);
    let (_, key2) = add_file(env, &client, "second.bin", 300_000, 9);
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "second.bin"],
    );
    assert_eq!(s.nodes_with(&key2), ["n2", "n3"]);
    drop(server);
    s.fsck_nodes();
}
