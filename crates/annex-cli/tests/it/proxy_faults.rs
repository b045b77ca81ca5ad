//! Faults through a gateway of ours, with the real git-annex as the
//! client over ssh: an upload killed halfway resumes where it stopped,
//! and two gateways that proxy each other serve without looping.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use annex_test_support::proxy::{ProxyEnv, Reach, Role};
use annex_test_support::pseudo_random;

struct Env(ProxyEnv);

impl std::ops::Deref for Env {
    type Target = ProxyEnv;
    fn deref(&self) -> &ProxyEnv {
        &self.0
    }
}

impl Env {
    fn new() -> Env {
        Env(ProxyEnv::new(env!("CARGO_BIN_EXE_annex")))
    }

    fn init(&self, name: &str) -> (PathBuf, String) {
        self.0.init(name, name)
    }

    /// `gw` proxies the repository at `dir` as remote `name`.
    fn proxy(&self, gw: &Path, name: &str, dir: &Path, uuid: &str, reach: Reach) {
        self.add_remote(gw, name, dir, uuid, reach, Role::Proxied);
        self.annex(gw, &["updateproxy"]);
    }
}

fn tmp_size(node: &Path) -> u64 {
    let dir = node.join(".git/annex/tmp");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[test]
fn an_upload_killed_halfway_resumes_through_the_gateway() {
    let env = Env::new();
    let (node, node_uuid) = env.init("node");
    let (gw, _) = env.init("gw");
    env.proxy(&gw, "node", &node, &node_uuid, Reach::Local);
    let client = env.clone_client(&gw, "client");
    let size = 96 << 20;
    let content = pseudo_random(size, 42);
    std::fs::write(client.join("big.bin"), &content).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "big.bin"]);
    // Slow the first upload down so that it can be caught halfway.
    let mut child = env.slow_copy(&client, "origin-node", "big.bin", "8MiB");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tmp_size(&node) < (8 << 20) {
        assert!(Instant::now() < deadline, "the upload never started");
        if let Ok(Some(s)) = child.try_wait() {
            panic!("the upload ended before it could be interrupted: {s}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling the process group this test started.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
    let partial = tmp_size(&node);
    assert!(partial > 0 && (partial as usize) < size, "{partial}");
    // The retry resumes from what the node already has.
    env.git(
        &client,
        &["annex", "copy", "--to", "origin-node", "big.bin"],
    );
    let log = env.run(&client, "git", &["annex", "whereis", "big.bin"]);
    assert!(String::from_utf8_lossy(&log.stdout).contains(&node_uuid));
    env.git(&node, &["annex", "fsck", "--quiet", "--all"]);
    assert_eq!(tmp_size(&node), 0, "the temporary file is gone once stored");
}

#[test]
fn the_resumed_upload_starts_at_the_partial_offset() {
    let env = Env::new();
    let (node, node_uuid) = env.init("node");
    let (gw, _) = env.init("gw");
    env.proxy(&gw, "node", &node, &node_uuid, Reach::Local);
    let client = env.clone_client(&gw, "client");
    let content = pseudo_random(1 << 20, 7);
    std::fs::write(client.join("f.bin"), &content).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "f.bin"]);
    let key = env
        .git(&client, &["annex", "lookupkey", "f.bin"])
        .trim()
        .to_string();
    // A partial upload left in the node's temporary area.
    let tmp = node.join(".git/annex/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join(&key), &content[..300_000]).unwrap();
    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--debug", "--to", "origin-node", "f.bin"],
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("P2P < PUT-FROM 300000"), "{err}");
    env.git(&node, &["annex", "fsck", "--quiet", "--all"]);
}

#[test]
fn gateways_proxying_each_other_do_not_loop() {
    let env = Env::new();
    let (a, a_uuid) = env.init("a");
    let (b, b_uuid) = env.init("b");
    env.proxy(&a, "b", &b, &b_uuid, Reach::Ssh);
    env.proxy(&b, "a", &a, &a_uuid, Reach::Ssh);
    let client = env.clone_client(&a, "client");
    std::fs::write(client.join("x.bin"), pseudo_random(50_000, 3)).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "x.bin"]);
    // a reaches b, which serves itself rather than going back to a.
    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--quiet", "--to", "origin-b", "x.bin"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.git(&client, &["annex", "drop", "--quiet", "x.bin"]);
    env.git(
        &client,
        &["annex", "get", "--quiet", "--from", "origin-b", "x.bin"],
    );
    env.git(&b, &["annex", "fsck", "--quiet", "--all"]);
}

/// The status of `GET /git-annex/UUID/v4/checkpresent?key=KEY&clientuuid=C`.
fn checkpresent_status(port: u16, uuid: &str, key: &str) -> u16 {
    use std::io::{BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /git-annex/{uuid}/v4/checkpresent?key={key}&clientuuid=11111111-2222-4333-8444-555555555555 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    annex_test_support::read_response_head(&mut BufReader::new(s))
        .unwrap()
        .status
}

#[test]
fn p2phttp_follows_proxy_configuration_changes() {
    let env = Env::new();
    let (node, node_uuid) = env.init("node");
    let (gw, _) = env.init("gw");
    env.proxy(&gw, "node", &node, &node_uuid, Reach::Local);
    let (_server, port) = env.serve_p2phttp(&gw, "p2phttp.log");
    let key = "SHA256E-s1--0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(checkpresent_status(port, &node_uuid, key), 200);
    let wait_for = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = checkpresent_status(port, &node_uuid, key);
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "still {got}, not {want}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // No longer allowed by git config: no longer served, refused as
    // git-annex's gateway refuses it (502, naming the repository).
    env.git(&gw, &["config", "remote.node.annex-proxy", "false"]);
    wait_for(502);
    env.git(&gw, &["config", "remote.node.annex-proxy", "true"]);
    wait_for(200);
}

/// The process ids whose command line holds `needle` (processes this test
/// started: the needle is a path in its own temporary directory).
fn pids_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && cmd.contains("p2pstdio") && !cmd.contains("bash") {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_node_dying_mid_upload_leaves_the_gateway_serving_and_the_retry_resumes() {
    let env = Env::new();
    let (node, node_uuid) = env.init("node");
    let (gw, _) = env.init("gw");
    // The node is reached over ssh, served by the real git-annex-shell.
    env.proxy(&gw, "node", &node, &node_uuid, Reach::SshReal);
    // A log line per request, to find the resumed PUT in.
    let (_server, port) = env.serve_p2phttp_with(&gw, "p2phttp.log", &["--log-requests"]);
    let log = env.dir("p2phttp.log");
    let client = env.clone_http_client(&gw, "client", port);
    std::fs::write(client.join("big.bin"), pseudo_random(32 << 20, 5)).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "big.bin"]);
    let mut child = env.slow_copy(&client, "origin-node", "big.bin", "8MiB");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tmp_size(&node) < (4 << 20) {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the node"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The node's git-annex-shell dies in the middle of the DATA.
    let node_path = node.display().to_string();
    let pids = pids_with(&node_path);
    assert!(!pids.is_empty(), "no node process found");
    for pid in pids {
        // SAFETY: signalling a process this test started (through the
        // gateway it started), found by its own temporary path.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    // git-annex retries a transfer that made progress by itself; either
    // way, the gateway still serves and the upload completes.
    let _ = child.wait().unwrap();
    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--to", "origin-node", "big.bin"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The retry resumed from what the node had: a PUT at a non-zero
    // offset (the log is written by a thread of its own: waited for).
    let resumed_in = |served: &str| {
        served.lines().any(|l| {
            l.contains("/v4/put")
                && l.split(['?', '&', '"'])
                    .any(|p| p.strip_prefix("offset=").is_some_and(|o| o != "0"))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut served = annex_test_support::read_log(&log);
    while !resumed_in(&served) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        served = annex_test_support::read_log(&log);
    }
    assert!(resumed_in(&served), "no resumed PUT in the log:\n{served}");
    let w = env.whereis_uuids(&client, "big.bin");
    assert!(w.contains(&node_uuid), "{w:?}");
    env.git(&node, &["annex", "fsck", "--quiet", "--all"]);
}
