//! A real git-annex client killed halfway through `git annex copy --to`
//! a node behind our gateway (over ssh), for each kind of node other than
//! the local one (which `proxy_faults.rs` covers): a node reached over ssh
//! and served by the real `git-annex-shell`, one reached over annex+http
//! and served by the real `git annex p2phttp`, and a directory special
//! remote. Only the git-annex process is killed: the gateway sees its
//! client go away in the middle of the DATA and must end, leaving no
//! session to the node behind, and the partial content on the node. The
//! copy run again resumes from there (`PUT-FROM` at a non-zero offset),
//! and the real `git annex fsck` in the node (or `fsck --from` in the
//! gateway, for the special remote) finds the object valid.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use annex_test_support::proxy::{ProxyEnv as Env, Reach, Role};
use annex_test_support::{
    descendants_named, files_under, pseudo_random, wait_until_none_left, KillOnDrop,
};

const SIZE: usize = 32 << 20;

/// The node behind the gateway, as the gateway reaches it.
enum Kind {
    Ssh,
    Http,
    Directory,
}

struct Setup {
    env: Env,
    gw: PathBuf,
    /// The node's repository, or the special remote's directory.
    node: PathBuf,
    node_uuid: String,
    _server: Option<KillOnDrop>,
}

impl Setup {
    fn new(kind: Kind) -> Setup {
        let env = Env::new(env!("CARGO_BIN_EXE_annex"));
        let (gw, _) = env.init("gw", "gateway");
        let mut server = None;
        let (node, node_uuid) = match kind {
            Kind::Ssh | Kind::Http => {
                let (node, uuid) = env.init("node", "node");
                let reach = if let Kind::Ssh = kind {
                    Reach::SshReal
                } else {
                    let (child, port) = env.serve_git_annex_p2phttp(&node);
                    server = Some(child);
                    Reach::Http(port)
                };
                env.add_remote(&gw, "node", &node, &uuid, reach, Role::Proxied);
                (node, uuid)
            }
            Kind::Directory => {
                let made = env.init_directory_remote(&gw, "node", "store", &["encryption=none"]);
                env.git(&gw, &["config", "remote.node.annex-proxy", "true"]);
                made
            }
        };
        let out = env.annex(&gw, &["updateproxy"]);
        assert!(out.contains("Started proxying for node"), "{out}");
        Setup {
            env,
            gw,
            node,
            node_uuid,
            _server: server,
        }
    }

    /// The bytes of the partial upload on the node (its temporary area).
    fn partial(&self) -> u64 {
        let tmp = if self.node.join(".git").exists() {
            self.node.join(".git/annex/tmp")
        } else {
            self.node.join("tmp")
        };
        files_under(&tmp)
            .iter()
            .filter(|p| !p.to_string_lossy().ends_with(".lck"))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    }
}

/// The `p2pstdio` sessions whose command line names `path` (sessions this
/// test started, through the gateway: the path is in its own temporary
/// directory).
fn sessions_of(path: &Path) -> Vec<String> {
    let needle = path.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().parse::<i32>().is_err() {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&needle) && cmd.contains("p2pstdio") && !cmd.starts_with("bash") {
            out.push(cmd);
        }
    }
    out
}

fn killed_halfway_and_resumed(kind: Kind) {
    let s = Setup::new(kind);
    let env = &s.env;
    let client = env.clone_client(&s.gw, "client");
    std::fs::write(client.join("big.bin"), pseudo_random(SIZE, 11)).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "big.bin"]);
    let mut child = env.slow_copy(&client, "origin-node", "big.bin", "8MiB");
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.partial() < (4 << 20) {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the node"
        );
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the upload ended before it could be interrupted: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The git-annex client dies; git, its parent, and the gateway's
    // session are left to notice.
    let annex = descendants_named(child.id() as i32, "git-annex");
    assert!(!annex.is_empty(), "no git-annex process under the copy");
    for pid in annex {
        // SAFETY: signalling a process this test started (a child of the
        // git it spawned).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    // The gateway's session ends, and with it any session to the node.
    wait_until_none_left(
        Duration::from_secs(20),
        "sessions left behind by the interrupted copy",
        || {
            [&s.gw, &s.node]
                .iter()
                .flat_map(|p| sessions_of(p))
                .collect::<Vec<String>>()
        },
    );
    let _ = child.wait();
    // SAFETY: the process group this test started (whatever is left of it).
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    // (A node's server may still be writing what reached it.)
    let mut partial = s.partial();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = s.partial();
        if now == partial || Instant::now() > deadline {
            break;
        }
        partial = now;
    }
    assert!(partial > 0 && (partial as usize) < SIZE, "{partial}");

    // The copy run again resumes from what the node already has.
    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--debug", "--to", "origin-node", "big.bin"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let from: Vec<u64> = err
        .lines()
        .filter_map(|l| l.split("P2P < PUT-FROM ").nth(1))
        .filter_map(|o| o.trim().parse().ok())
        .collect();
    assert!(
        from.iter().any(|&o| o > 0 && o <= partial),
        "no resumed PUT-FROM (partial {partial}): {from:?}\n{err}"
    );
    let w = env.whereis_uuids(&client, "big.bin");
    assert!(w.contains(&s.node_uuid), "{w:?}");
    assert_eq!(s.partial(), 0, "the partial upload is gone once stored");
    if s.node.join(".git").exists() {
        env.git(&s.node, &["annex", "fsck", "--quiet", "--all"]);
    } else {
        env.git(
            &s.gw,
            &["annex", "fsck", "--quiet", "--from", "node", "--all"],
        );
    }
}

#[test]
fn a_copy_to_an_ssh_node_killed_halfway_resumes() {
    killed_halfway_and_resumed(Kind::Ssh);
}

#[test]
fn a_copy_to_an_http_node_killed_halfway_resumes() {
    killed_halfway_and_resumed(Kind::Http);
}

#[test]
fn a_copy_to_a_directory_remote_killed_halfway_resumes() {
    killed_halfway_and_resumed(Kind::Directory);
}
