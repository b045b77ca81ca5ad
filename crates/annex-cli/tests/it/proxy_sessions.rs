//! One client cannot take a proxied node away from the others: with
//! `--proxyconnections 1` and a node reached over ssh (a fake ssh running
//! our `git-annex-shell` here), a content lock an unauthenticated client
//! holds, or an upload whose client stopped sending, leaves the node
//! answering other requests through the gateway.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use annex_test_support::proxy::{ProxyEnv, Reach, Role};
use annex_test_support::{command, pseudo_random, spawn_annex_p2phttp, KillOnDrop};

const CLIENT: &str = "11111111-2222-4333-8444-555555555555";

/// A gateway proxying `node` over ssh, the node holding one file.
struct Gateway {
    env: ProxyEnv,
    gw: PathBuf,
    node_uuid: String,
    /// The key of the file the node holds.
    key: String,
}

fn gateway() -> Gateway {
    let env = ProxyEnv::new(env!("CARGO_BIN_EXE_annex"));
    let (node, node_uuid) = env.init("node", "node");
    std::fs::write(node.join("f.bin"), pseudo_random(10_000, 3)).unwrap();
    env.git(&node, &["annex", "add", "--quiet", "f.bin"]);
    env.git(&node, &["commit", "-q", "-m", "f"]);
    let key = env
        .git(&node, &["annex", "lookupkey", "f.bin"])
        .trim()
        .to_owned();
    let (gw, _) = env.init("gw", "gw");
    env.add_remote(&gw, "node", &node, &node_uuid, Reach::Ssh, Role::Proxied);
    env.annex(&gw, &["updateproxy"]);
    Gateway {
        env,
        gw,
        node_uuid,
        key,
    }
}

impl Gateway {
    /// Our p2phttp serving the gateway with one ssh session per node and
    /// `args`.
    fn serve(&self, args: &[&str]) -> (KillOnDrop, u16) {
        let mut cmd = command(&self.gw, self.env.annex_program(), &[]);
        cmd.args([
            "p2phttp",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--proxyconnections",
            "1",
        ])
        .args(args)
        .env("PATH", &self.env.path);
        spawn_annex_p2phttp(cmd, &self.env.dir("p2phttp.log"))
    }

    fn endpoint(&self, endpoint: &str, query: &str) -> String {
        format!(
            "/git-annex/{}/v4/{endpoint}?{query}&clientuuid={CLIENT}",
            self.node_uuid
        )
    }
}

/// POSTs to `target` with an empty body; the status and body. A server
/// that does not answer in two minutes fails the test.
fn post(port: u16, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .unwrap_or_else(|e| panic!("no answer to {target}: {e}"));
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_held_lock_leaves_the_node_answering_checks() {
    let g = gateway();
    let (_server, port) = g.serve(&["--unauth-readonly"]);
    let (status, body) = post(port, &g.endpoint("lockcontent", &format!("key={}", g.key)));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""locked":true"#), "{body}");
    // The lock stays held (no keeplocked comes), and the node answers.
    for _ in 0..3 {
        let (status, body) = post(port, &g.endpoint("checkpresent", &format!("key={}", g.key)));
        assert_eq!((status, body.as_str()), (200, r#"{"present":true}"#));
    }
}

#[test]
fn an_upload_whose_client_stops_sending_frees_the_node_session() {
    let g = gateway();
    let (_server, port) = g.serve(&[
        "--unauth-appendonly",
        "--receive-timeout",
        "2",
        "--proxy-wait",
        "600",
    ]);
    let content = pseudo_random(1 << 20, 4);
    let key = annex_test_support::sha256e_key(&content, ".bin");
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stalled,
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         X-git-annex-data-length: {len}\r\nContent-Length: {len}\r\n\r\n",
        g.endpoint("put", &format!("key={key}")),
        len = content.len()
    )
    .unwrap();
    stalled.write_all(&content[..200_000]).unwrap();
    // Then nothing more: the upload holds the node's only session until
    // it is given up, and the check waits for it.
    let (status, body) = post(port, &g.endpoint("checkpresent", &format!("key={}", g.key)));
    assert_eq!((status, body.as_str()), (200, r#"{"present":true}"#));
    // The stalled upload was answered: nothing stored.
    stalled
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains(r#""stored":false"#), "{text}");
}
