//! What a client is told when a request fails inside the server: not the
//! server's own business (paths, ssh errors, a node's answers), which
//! goes to the server's log instead. A gateway of ours proxies a
//! repository and a directory special remote, both gone from where the
//! gateway looks for them; requests for them go over p2phttp and over
//! `annex shell p2pstdio`.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use annex_protocol::codec::{ProtocolReader, ProtocolWriter};
use annex_protocol::repository::SERVER_FAILURE;
use annex_protocol::{Key, Message, ProtocolVersion};
use annex_test_support::proxy::ProxyEnv;
use annex_test_support::read_response_head;

const CLIENT: &str = "c1c1c1c1-0000-4000-8000-000000000001";
const KEY: &str = "SHA256E-s3--ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

struct Setup {
    env: ProxyEnv,
    gw: PathBuf,
    /// Where the proxied repository was.
    node: PathBuf,
    node_uuid: String,
    /// Where the directory special remote kept its content.
    store: PathBuf,
    store_uuid: String,
}

fn setup() -> Setup {
    let env = ProxyEnv::new(env!("CARGO_BIN_EXE_annex"));
    let (gw, _) = env.init("gw", "gateway");
    let (node, node_uuid) = env.init("node-somewhere-private", "node");
    env.git(&gw, &["remote", "add", "node", &node.display().to_string()]);
    env.git(&gw, &["fetch", "-q", "node"]);
    env.git(&gw, &["config", "remote.node.annex-proxy", "true"]);
    let (store, store_uuid) =
        env.init_directory_remote(&gw, "dir", "store-somewhere-private", &["encryption=none"]);
    env.git(&gw, &["config", "remote.dir.annex-proxy", "true"]);
    let out = env.annex(&gw, &["updateproxy"]);
    assert!(out.contains("Started proxying for node"), "{out}");
    assert!(out.contains("Started proxying for dir"), "{out}");
    // Both go away.
    std::fs::rename(&node, env.dir("moved-away")).unwrap();
    std::fs::remove_dir(&store).unwrap();
    Setup {
        env,
        gw,
        node,
        node_uuid,
        store,
        store_uuid,
    }
}

/// POSTs `endpoint` for `uuid`; the status and body of the answer.
fn post(port: u16, uuid: &str, endpoint: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /git-annex/{uuid}/v4/{endpoint}?key={KEY}&clientuuid={CLIENT} HTTP/1.1\r\n\
         Host: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let head = read_response_head(&mut r).unwrap();
    let mut body = String::new();
    r.read_to_string(&mut body).unwrap();
    (head.status, body)
}

fn mentions(text: &str, path: &Path) -> bool {
    text.contains(&path.display().to_string())
}

#[test]
fn p2phttp_tells_clients_git_annex_words_and_logs_the_details() {
    let s = setup();
    let (_server, port) = s.env.serve_p2phttp(&s.gw, "p2phttp.log");
    for (uuid, path) in [(&s.node_uuid, &s.node), (&s.store_uuid, &s.store)] {
        for endpoint in ["checkpresent", "remove"] {
            let (status, body) = post(port, uuid, endpoint);
            assert_eq!(status, 500, "{endpoint}: {body}");
            assert_eq!(body, SERVER_FAILURE, "{endpoint}");
            assert!(!mentions(&body, path), "{endpoint}: {body}");
        }
    }
    let log = std::fs::read_to_string(s.env.dir("p2phttp.log")).unwrap();
    assert!(mentions(&log, &s.node), "{log}");
    assert!(mentions(&log, &s.store), "{log}");
}

#[tokio::test]
async fn p2pstdio_tells_clients_git_annex_words_and_logs_the_details() {
    let s = setup();
    let mut child = tokio::process::Command::new(s.env.annex_program())
        .args(["shell", "p2pstdio"])
        .arg(&s.gw)
        .arg(CLIENT)
        .args(["--uuid", &s.store_uuid])
        .env("PATH", &s.env.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut r = ProtocolReader::new(child.stdout.take().unwrap());
    let mut w = ProtocolWriter::new(child.stdin.take().unwrap());
    assert!(matches!(
        r.read_message().await.unwrap(),
        Some(Message::AuthSuccess(_))
    ));
    w.send(&Message::Version(ProtocolVersion(4))).await.unwrap();
    assert!(matches!(
        r.read_message().await.unwrap(),
        Some(Message::Version(_))
    ));
    let key = Key::parse(KEY).unwrap();
    for m in [Message::CheckPresent(key.clone()), Message::Remove(key)] {
        w.send(&m).await.unwrap();
        let answer = r.read_message().await.unwrap();
        assert_eq!(answer, Some(Message::Error(SERVER_FAILURE.into())), "{m:?}");
    }
    drop(w);
    drop(r);
    let out = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(mentions(&log, &s.store), "{log}");

    // A proxied repository that cannot be reached: the session does not
    // start, and standard error (the log; what git-annex-shell writes
    // there too) says why, as git-annex does ("Unable to connect to
    // remote.").
    let out = Command::new(s.env.annex_program())
        .args(["shell", "p2pstdio"])
        .arg(&s.gw)
        .arg(CLIENT)
        .args(["--uuid", &s.node_uuid])
        .env("PATH", &s.env.path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Unable to connect to remote."), "{log}");
}
