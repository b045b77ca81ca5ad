//! Operating a gateway of ours: its metrics, scraped from the listener
//! `--metrics-bind` opens and parsed with a Prometheus text parser, move
//! with the real git-annex client's requests; a node stopped is marked
//! down at once, logged once, and comes back when restarted, without
//! restarting the gateway.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use annex_test_support::proxy::{ProxyEnv, Reach, Role};
use annex_test_support::{read_log, read_response_head, spawn_annex_p2phttp, KillOnDrop};

/// The UUID the tests give as `clientuuid`.
const CLIENT_UUID: &str = "5e0bb8b4-7c57-4b59-a5d4-2a4b1f6e0c31";

/// One HTTP/1.1 request to 127.0.0.1:`port`; the status and body.
fn request(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let head = read_response_head(&mut r).unwrap();
    let mut body = String::new();
    r.read_to_string(&mut body).unwrap();
    (head.status, body)
}

/// The gateway's metrics, parsed.
fn scrape(port: u16) -> prometheus_parse::Scrape {
    let (status, body) = request(port, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("# HELP ") && body.contains("# TYPE "),
        "{body}"
    );
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a single value"),
        })
}

/// Our `annex p2phttp --wideopen` serving `dir`, with metrics; the guard,
/// the API's port and the metrics' port.
fn serve_with_metrics(env: &ProxyEnv, dir: &Path, log: &str) -> (KillOnDrop, u16, u16) {
    let mut cmd = Command::new(env.annex_program());
    cmd.current_dir(dir)
        .args([
            "p2phttp",
            "--wideopen",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .args(["--metrics-bind", "127.0.0.1:0"])
        .env("PATH", &env.path);
    let log = env.dir(log);
    let (child, port) = spawn_annex_p2phttp(cmd, &log);
    let text = read_log(&log);
    let marker = "metrics on http://127.0.0.1:";
    let i = text.find(marker).unwrap_or_else(|| panic!("{text}"));
    let metrics_port: u16 = text[i + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    (child, port, metrics_port)
}

fn checkpresent(port: u16, uuid: &str, key: &str) -> (u16, String) {
    request(
        port,
        "POST",
        &format!("/git-annex/{uuid}/v4/checkpresent?key={key}&clientuuid={CLIENT_UUID}"),
    )
}

#[test]
fn metrics_follow_the_real_clients_requests() {
    let env = ProxyEnv::new(env!("CARGO_BIN_EXE_annex"));
    let (node, node_uuid) = env.init("node", "node");
    let (gw, gw_uuid) = env.init("gw", "gw");
    env.add_remote(&gw, "node", &node, &node_uuid, Reach::Local, Role::Proxied);
    env.annex(&gw, &["updateproxy"]);
    let (_server, port, metrics_port) = serve_with_metrics(&env, &gw, "gw.log");
    // Nothing of the API on the metrics' listener, nothing of the
    // metrics on the API's.
    let api =
        format!("/git-annex/{gw_uuid}/v4/checkpresent?key=SHA256E-s1--00&clientuuid={CLIENT_UUID}");
    assert_eq!(request(metrics_port, "POST", &api).0, 404);
    assert_eq!(request(port, "GET", "/metrics").0, 404);

    let before = scrape(metrics_port);
    let puts = [("endpoint", "put"), ("status", "200")];
    assert_eq!(value(&before, "annex_http_requests_total", &puts), None);

    let client = env.clone_http_client(&gw, "client", port);
    let content = annex_test_support::pseudo_random(300_000, 5);
    std::fs::write(client.join("f.bin"), &content).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "f.bin"]);
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-node", "f.bin"],
    );
    env.git(&client, &["annex", "drop", "--quiet", "f.bin"]);
    env.git(
        &client,
        &["annex", "get", "--quiet", "--from", "origin-node", "f.bin"],
    );
    assert_eq!(std::fs::read(client.join("f.bin")).unwrap(), content);

    let after = scrape(metrics_port);
    assert!(value(&after, "annex_http_requests_total", &puts).unwrap() >= 1.0);
    let node_labels = |direction| [("direction", direction), ("repository", node_uuid.as_str())];
    assert_eq!(
        value(
            &after,
            "annex_transfer_bytes_total",
            &node_labels("received")
        ),
        Some(content.len() as f64),
        "the upload's bytes"
    );
    assert_eq!(
        value(&after, "annex_transfer_bytes_total", &node_labels("sent")),
        Some(content.len() as f64),
        "the download's bytes"
    );
    let gets = [("endpoint", "key"), ("status", "200")];
    assert!(value(&after, "annex_http_requests_total", &gets).unwrap() >= 1.0);
    // The drop checked the node had it (lockcontent or checkpresent).
    let checked = after
        .samples
        .iter()
        .filter(|s| s.metric == "annex_http_requests_total")
        .any(|s| {
            matches!(
                s.labels.get("endpoint"),
                Some("lockcontent" | "checkpresent")
            )
        });
    assert!(checked);
    let durations = [("endpoint", "put")];
    assert!(
        value(
            &after,
            "annex_http_request_duration_seconds_count",
            &durations
        )
        .unwrap()
            >= 1.0
    );
    // Nothing is in flight once the client is done, and the node is up.
    let repo = [("repository", node_uuid.as_str())];
    assert_eq!(value(&after, "annex_transfers_in_flight", &repo), Some(0.0));
    let node_up = [("node", node_uuid.as_str()), ("name", "node")];
    assert_eq!(value(&after, "annex_node_up", &node_up), Some(1.0));
    assert_eq!(value(&after, "annex_locks_held", &[]), Some(0.0));
    // The proxied node's size, from the gateway's branch (no cluster
    // here), read again at most every few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let size = value(&scrape(metrics_port), "annex_repository_size_bytes", &repo);
        if size == Some(content.len() as f64) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node's size: {size:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    // Requests for UUIDs nobody serves add no series.
    for i in 0..5 {
        let stranger = format!("00000000-0000-0000-0000-00000000000{i}");
        let key = format!("/git-annex/{stranger}/v4/key/SHA256E-s1--00?clientuuid={CLIENT_UUID}");
        assert_eq!(request(port, "GET", &key).0, 404);
    }
    let strangers = scrape(metrics_port);
    assert!(!strangers.samples.iter().any(|s| s
        .labels
        .get("repository")
        .is_some_and(|r| r.starts_with("00000000-"))));
}

/// Our `annex p2phttp --wideopen` serving `dir` on `port` (0: a free
/// one); the guard and the port.
fn serve_node(env: &ProxyEnv, dir: &Path, port: u16, log: &str) -> (KillOnDrop, u16) {
    let mut cmd = Command::new(env.annex_program());
    cmd.current_dir(dir)
        .args(["p2phttp", "--wideopen", "--bind", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .env("PATH", &env.path);
    spawn_annex_p2phttp(cmd, &env.dir(log))
}

fn count(text: &str, what: &str) -> usize {
    text.lines().filter(|l| l.contains(what)).count()
}

#[test]
fn a_node_stopped_is_down_at_once_and_back_when_restarted() {
    let env = ProxyEnv::new(env!("CARGO_BIN_EXE_annex"));
    let (node, node_uuid) = env.init("node", "node");
    std::fs::write(node.join("f"), b"content of f").unwrap();
    env.git(&node, &["annex", "add", "--quiet", "f"]);
    let key = env
        .git(&node, &["annex", "lookupkey", "f"])
        .trim()
        .to_string();
    let (node_server, node_port) = serve_node(&env, &node, 0, "node.log");
    let (gw, _) = env.init("gw", "gw");
    env.add_remote(
        &gw,
        "node",
        &node,
        &node_uuid,
        Reach::Http(node_port),
        Role::Proxied,
    );
    env.annex(&gw, &["updateproxy"]);
    let (_gw_server, port, metrics_port) = serve_with_metrics(&env, &gw, "gw.log");
    let node_up = [("node", node_uuid.as_str()), ("name", "node")];

    let (status, body) = checkpresent(port, &node_uuid, &key);
    assert_eq!((status, body.as_str()), (200, r#"{"present":true}"#));
    assert_eq!(
        value(&scrape(metrics_port), "annex_node_up", &node_up),
        Some(1.0)
    );

    drop(node_server);
    // The first request finds it down; the next ones fail at once,
    // without logging again.
    for _ in 0..5 {
        let (status, _) = checkpresent(port, &node_uuid, &key);
        assert_eq!(status, 500);
    }
    let down = scrape(metrics_port);
    assert_eq!(value(&down, "annex_node_up", &node_up), Some(0.0));
    assert!(
        value(
            &down,
            "annex_node_errors_total",
            &[("node", node_uuid.as_str())]
        )
        .unwrap()
            >= 1.0
    );
    let log = read_log(&env.dir("gw.log"));
    assert_eq!(count(&log, "node marked down"), 1, "{log}");

    // Restarted, it is probed and up again without a request or a
    // restart of the gateway.
    let _node_server = serve_node(&env, &node, node_port, "node-again.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    while value(&scrape(metrics_port), "annex_node_up", &node_up) != Some(1.0) {
        assert!(Instant::now() < deadline, "the node never came back");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = checkpresent(port, &node_uuid, &key);
    assert_eq!((status, body.as_str()), (200, r#"{"present":true}"#));
    let log = read_log(&env.dir("gw.log"));
    assert_eq!(count(&log, "node marked down"), 1, "{log}");
    assert_eq!(count(&log, "node back up"), 1, "{log}");
}

/// Serves `dir` (with `extra` options), answers three checkpresent
/// requests, stops the server with SIGTERM (its log is flushed as it
/// exits) and returns the log.
fn log_of_three_requests(env: &ProxyEnv, dir: &Path, extra: &[&str], log: &str) -> String {
    let uuid = env.git(dir, &["config", "annex.uuid"]).trim().to_string();
    let mut cmd = Command::new(env.annex_program());
    cmd.current_dir(dir)
        .args([
            "p2phttp",
            "--wideopen",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .args(extra)
        .env("PATH", &env.path)
        .env_remove("RUST_LOG");
    let (mut server, port) = spawn_annex_p2phttp(cmd, &env.dir(log));
    for _ in 0..3 {
        let (status, body) = checkpresent(port, &uuid, "SHA256E-s1--00");
        assert_eq!((status, body.as_str()), (200, r#"{"present":false}"#));
    }
    // SAFETY: signalling the server this test started.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");
    read_log(&env.dir(log))
}

#[test]
fn request_lines_are_logged_only_when_asked() {
    let env = ProxyEnv::new(env!("CARGO_BIN_EXE_annex"));
    let (repo, _) = env.init("repo", "repo");
    let quiet = log_of_three_requests(&env, &repo, &[], "quiet.log");
    assert!(quiet.contains("shutting down"), "{quiet}");
    // No line per request, under any target.
    assert_eq!(count(&quiet, "checkpresent"), 0, "{quiet}");
    let logged = log_of_three_requests(&env, &repo, &["--log-requests"], "logged.log");
    let lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("annex_http::request"))
        .collect();
    assert_eq!(lines.len(), 3, "{logged}");
    assert!(lines
        .iter()
        .all(|l| l.contains("checkpresent") && l.contains("status=200")));
}
