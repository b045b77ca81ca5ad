//! Hop-aware cost with two gateways of one cluster: `gw1` has node `n1`
//! and reaches the cluster behind `gw2` (node `n3`), one gateway further.
//! `annex info` in `gw1` shows each node's hops and cost; a real
//! git-annex client of `gw1` (over ssh, served by our `annex shell`) gets
//! a file both nodes have from `n1`, the nearer, even though the
//! operator's costs alone (n1 205, gw2 200) would read it through `gw2`.

use std::path::Path;

use annex_test_support::proxy::{ProxyEnv, Reach, Role};
use annex_test_support::pseudo_random;

#[test]
fn a_get_reads_the_nearest_copy_and_info_shows_hops_and_costs() {
    let env = ProxyEnv::new(env!("CARGO_BIN_EXE_annex"));
    let log = env.log_shell_sessions();
    let (n1, n1_uuid) = env.init("n1", "node n1");
    let (n3, n3_uuid) = env.init("n3", "node n3");
    let (gw1, _) = env.init("gw1", "gateway 1");
    let (gw2, gw2_uuid) = env.init("gw2", "gateway 2");
    let node = |gw: &Path, name: &str, dir: &Path, uuid: &str| {
        env.add_remote(gw, name, dir, uuid, Reach::Local, Role::Node("c"));
    };
    node(&gw1, "n1", &n1, &n1_uuid);
    env.annex(&gw1, &["initcluster", "c"]);
    env.annex(&gw1, &["updatecluster"]);
    env.add_ssh_remote(&gw2, "gw1", &gw1);
    node(&gw2, "n3", &n3, &n3_uuid);
    env.git(&gw2, &["fetch", "-q", "gw1"]);
    env.annex(&gw2, &["extendcluster", "gw1", "c"]);
    env.add_ssh_remote(&gw1, "gw2", &gw2);
    env.git(&gw1, &["fetch", "-q", "gw2"]);
    env.annex(&gw1, &["extendcluster", "gw2", "c"]);
    env.git(&gw2, &["fetch", "-q", "gw1"]);
    env.annex(&gw2, &["updatecluster"]);
    // The operator's costs alone prefer gw2 (200) to n1 (205).
    env.git(&gw1, &["config", "remote.n1.annex-cost", "205"]);
    env.git(&gw1, &["config", "remote.gw2.annex-cost", "200"]);
    let cluster = env
        .git(&gw1, &["config", "annex.cluster.c"])
        .trim()
        .to_string();

    // annex info: n1 directly, the cluster behind gw2 one hop away.
    let info: serde_json::Value =
        serde_json::from_str(env.annex(&gw1, &["info", "--json"]).trim()).unwrap();
    let clusters = info["routes"]["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1, "{info}");
    assert_eq!(clusters[0]["cluster"], cluster.as_str());
    let nodes: Vec<(String, u64, f64, String)> = clusters[0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["hops"].as_u64().unwrap(),
                n["cost"].as_f64().unwrap(),
                n["via"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [
            ("n1".to_owned(), 0, 205.0, String::new()),
            ("gw2-c".to_owned(), 1, 210.0, gw2_uuid.clone()),
        ]
    );
    let text = env.annex(&gw1, &["info"]);
    assert!(
        text.contains(&format!(
            "gw2-c: {cluster} via {gw2_uuid} (1 hop, cost 210)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("n1: {n1_uuid} (0 hops, cost 205)")),
        "{text}"
    );

    // A file on both nodes, stored through gw1.
    let client = env.clone_client(&gw1, "client");
    let content = pseudo_random(200_000, 3);
    let key = env.add_file(&client, "f", &content);
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "f"],
    );
    assert!(env.has_key(&n1, &key) && env.has_key(&n3, &key));
    env.git(&client, &["annex", "drop", "--force", "--quiet", "f"]);

    // The get is served by n1: gw2 is not asked.
    env.take_sessions(&log);
    env.git(
        &client,
        &["annex", "get", "--quiet", "--from", "origin-c", "f"],
    );
    assert_eq!(std::fs::read(client.join("f")).unwrap(), content);
    let sessions = env.take_sessions(&log);
    let gw2_path = gw2.display().to_string();
    assert!(
        sessions.iter().any(|l| l.contains(&cluster)),
        "the get went through gw1's cluster: {sessions:?}"
    );
    let to_gw2: Vec<&String> = sessions.iter().filter(|l| l.contains(&gw2_path)).collect();
    assert!(to_gw2.is_empty(), "gw2 was asked: {to_gw2:?}");
}
