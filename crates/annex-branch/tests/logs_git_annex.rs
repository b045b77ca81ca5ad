//! The log parsers and writers against the real git-annex, the other way
//! round from tests/logs_fixtures.rs: logs are put on the git-annex branch
//! of a fresh repository (with git plumbing), and what `git annex group`,
//! `wanted`, `numcopies`, `maxsize` and `info` then report must be what
//! this crate reads from the same bytes. Each log goes on the branch twice:
//! as written by hand, with superseded lines, ties and odd values, and as
//! this crate writes it back. remote.log, proxy.log and cluster.log are
//! checked through what git-annex does with them: enabling the special
//! remote we configured, and updatecluster/updateproxy finding the logs we
//! wrote up to date (or not).
//!
//! git-annex must be installed (scripts/install-deps.sh); these tests fail
//! without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use annex_branch::logs::{
    cluster, group, maxsize, numcopies, paths, preferred_content, proxy, remote_config, trust,
    uuid_log,
};
use annex_branch::VectorClock;
use annex_test_support::{command, files_under, git, init_annex_repo, run_ok};
use annex_types::Uuid;

const HERE: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const U: [&str; 6] = [
    "11111111-1111-4111-8111-111111111111",
    "22222222-2222-4222-8222-222222222222",
    "33333333-3333-4333-8333-333333333333",
    "44444444-4444-4444-8444-444444444444",
    "55555555-5555-4555-8555-555555555555",
    "66666666-6666-4666-8666-666666666666",
];

/// A fresh repository initialised by git-annex, with UUID [`HERE`], whose
/// uuid.log describes every UUID of [`U`] (git-annex only accepts UUIDs it
/// knows of on its command line).
struct Repo {
    _t: tempfile::TempDir,
    dir: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r");
        git(t.path(), &["init", "-q", "r"]);
        git(&dir, &["config", "annex.uuid", HERE]);
        git(&dir, &["annex", "init", "-q", "here"]);
        let r = Repo { _t: t, dir };
        let mut uuids = String::new();
        for u in U {
            uuids.push_str(&format!("{u} repository {u} timestamp=1s\n"));
        }
        r.put(paths::UUID_LOG, uuids.as_bytes());
        r
    }

    fn git(&self, args: &[&str]) -> String {
        git(&self.dir, args)
    }

    /// Commits a file to the git-annex branch, as git-annex would find it
    /// after a merge.
    fn put(&self, name: &str, data: &[u8]) {
        put_on_branch(&self.dir, name, data);
    }

    /// The output of a git-annex command, without its final newline.
    fn annex(&self, args: &[&str]) -> String {
        let mut a = vec!["annex"];
        a.extend_from_slice(args);
        let out = self.git(&a);
        out.strip_suffix('\n').unwrap_or(&out).to_string()
    }

    fn info(&self, uuid: &str) -> serde_json::Value {
        serde_json::from_str(&self.annex(&["info", "--fast", "--json", uuid])).unwrap()
    }
}

/// Commits a file to the git-annex branch of the repository at `dir`
/// (replacing what the branch had at that path) with git plumbing.
fn put_on_branch(dir: &Path, name: &str, data: &[u8]) {
    let git_dir = dir.join(".git");
    let index = git_dir.join("logs-test-index");
    let blob = git_dir.join("logs-test-blob");
    std::fs::write(&blob, data).unwrap();
    let with_index =
        |args: &[&str]| run_ok(command(dir, "git", args).env("GIT_INDEX_FILE", &index));
    with_index(&["read-tree", "refs/heads/git-annex"]);
    let sha = git(dir, &["hash-object", "-w", blob.to_str().unwrap()]);
    let info = format!("100644,{},{name}", sha.trim());
    with_index(&["update-index", "--add", "--cacheinfo", &info]);
    let tree = with_index(&["write-tree"]);
    let commit = git(
        dir,
        &[
            "commit-tree",
            tree.trim(),
            "-p",
            "refs/heads/git-annex",
            "-m",
            "logs written by the tests",
        ],
    );
    git(dir, &["update-ref", "refs/heads/git-annex", commit.trim()]);
    std::fs::remove_file(&index).unwrap();
}

fn u(s: &str) -> Uuid {
    Uuid::parse(s).unwrap()
}

#[test]
fn git_annex_reads_descriptions_as_we_do() {
    let r = Repo::new();
    let [u1, u2, u3, u4, u5, u6] = U;
    let raw = format!(
        "{HERE} here timestamp=1s\n\
         {u1} first timestamp=10s\n\
         {u1} first, superseded timestamp=9s\n\
         {u2} tie a timestamp=10s\n\
         {u2} tie b timestamp=10s\n\
         {u3} has timestamp=5s inside timestamp=11s\n\
         {u4} no clock at all\n\
         {u5}  two  spaces timestamp=12s\n\
         {u6} \n\
         \x20leading space is no line\n"
    );
    let mut log = uuid_log::parse(raw.as_bytes());
    assert_eq!(log.unparsed.len(), 1);
    let check = |log: &uuid_log::DescriptionLog| {
        let d = uuid_log::descriptions(log);
        for uuid in U {
            let shown = r.info(uuid);
            assert_eq!(shown["description"], d[&u(uuid)].as_str(), "{uuid}");
        }
    };
    r.put(paths::UUID_LOG, raw.as_bytes());
    check(&log);
    assert_eq!(uuid_log::descriptions(&log)[&u(u2)], "tie b");

    uuid_log::describe(&mut log, u(u6), "two\nlines", VectorClock::now()).unwrap();
    r.put(paths::UUID_LOG, &uuid_log::write(&log));
    check(&log);
    assert_eq!(r.info(u6)["description"], "two\\nlines");
}

#[test]
fn git_annex_reads_trust_as_we_do() {
    let r = Repo::new();
    let [u1, u2, u3, u4, u5, u6] = U;
    let raw = format!(
        "{u1} 1 timestamp=10s\n\
         {u1} 0 timestamp=9s\n\
         {u2} Z timestamp=10s\n\
         {u3} timestamp=10s\n\
         {u4} X timestamp=10s\n\
         {u4} 1 timestamp=10s\n\
         {u5} 0\n\
         {u6} 10 timestamp=20s\n\
         {u6} X timestamp=2s\n"
    );
    let mut log = trust::parse(raw.as_bytes());
    let check = |log: &trust::TrustLog| {
        for uuid in U {
            let level = trust::lookup(log, &u(uuid));
            assert_eq!(r.info(uuid)["trust"], level.as_str(), "{uuid}");
        }
    };
    r.put(paths::TRUST_LOG, raw.as_bytes());
    check(&log);
    let expect = [
        trust::TrustLevel::Trusted,
        trust::TrustLevel::Semitrusted,
        trust::TrustLevel::Trusted,
        trust::TrustLevel::Trusted,
        trust::TrustLevel::Untrusted,
        trust::TrustLevel::Dead,
    ];
    for (uuid, level) in U.iter().zip(expect) {
        assert_eq!(trust::lookup(&log, &u(uuid)), level, "{uuid}");
    }

    trust::set(
        &mut log,
        u(u2),
        trust::TrustLevel::Untrusted,
        VectorClock::now(),
    )
    .unwrap();
    r.put(paths::TRUST_LOG, &trust::write(&log));
    check(&log);
}

#[test]
fn git_annex_reads_groups_as_we_do() {
    let r = Repo::new();
    let [u1, u2, u3, u4, u5, _] = U;
    let raw = format!(
        "{u1} b  a timestamp=10s\n\
         {u2} x timestamp=10s\n\
         {u2} y timestamp=10s\n\
         {u3}  timestamp=10s\n\
         {u4} old timestamp=5s\n\
         {u4} new timestamp=4s\n\
         {u5} very-old\n"
    );
    let mut log = group::parse(raw.as_bytes());
    let check = |log: &group::GroupLog| {
        for uuid in U {
            let ours: Vec<String> = group::lookup(log, &u(uuid)).into_iter().collect();
            assert_eq!(r.annex(&["group", uuid]), ours.join(" "), "{uuid}");
        }
    };
    r.put(paths::GROUP_LOG, raw.as_bytes());
    check(&log);
    assert_eq!(r.annex(&["group", u2]), "y");

    let now = VectorClock::now();
    group::add(&mut log, u(u3), "archive", now).unwrap();
    group::remove(&mut log, u(u1), "b", now).unwrap();
    r.put(paths::GROUP_LOG, &group::write(&log));
    check(&log);
    assert_eq!(r.annex(&["group", u1]), "a");
}

#[test]
fn git_annex_reads_preferred_content_as_we_do() {
    let r = Repo::new();
    let [u1, u2, u3, ..] = U;
    let raw = format!(
        "{u1} include=*.mp3 and  exclude=old/* timestamp=10s\n\
         {u2} present timestamp=10s\n\
         {u2} anything timestamp=10s\n\
         {u3} standard timestamp=3s\n"
    );
    let required = format!("{u1} include=important/* timestamp=10s\n");
    let groups = b"10s g1 anything\n10s g1 present\n9s g2 not copies=g2:2\n8s g2 anything\n";
    let mut wanted = preferred_content::parse(raw.as_bytes());
    let mut group_log = preferred_content::parse_group(groups);
    let req = preferred_content::parse(required.as_bytes());
    let check = |wanted: &preferred_content::ExpressionLog,
                 group_log: &preferred_content::GroupExpressionLog| {
        let w = preferred_content::expressions(wanted);
        let q = preferred_content::expressions(&req);
        for uuid in U {
            let ours = w.get(&u(uuid)).map(String::as_str).unwrap_or("");
            assert_eq!(r.annex(&["wanted", uuid]), ours, "{uuid}");
            let ours = q.get(&u(uuid)).map(String::as_str).unwrap_or("");
            assert_eq!(r.annex(&["required", uuid]), ours, "{uuid}");
        }
        let g = preferred_content::group_expressions(group_log);
        for grp in ["g1", "g2", "g3"] {
            let ours = g.get(grp).map(String::as_str).unwrap_or("");
            assert_eq!(r.annex(&["groupwanted", grp]), ours, "{grp}");
        }
    };
    r.put(paths::PREFERRED_CONTENT_LOG, raw.as_bytes());
    r.put(paths::REQUIRED_CONTENT_LOG, required.as_bytes());
    r.put(paths::GROUP_PREFERRED_CONTENT_LOG, groups);
    check(&wanted, &group_log);
    assert_eq!(r.annex(&["wanted", u2]), "anything");

    let now = VectorClock::now();
    preferred_content::set(&mut wanted, u(u3), "include=*  or  present", now).unwrap();
    preferred_content::set_group(&mut group_log, "g3", "inallgroup=g3", now).unwrap();
    r.put(
        paths::PREFERRED_CONTENT_LOG,
        &preferred_content::write(&wanted),
    );
    r.put(
        paths::GROUP_PREFERRED_CONTENT_LOG,
        &preferred_content::write_group(&group_log),
    );
    check(&wanted, &group_log);
}

#[test]
fn git_annex_reads_numcopies_as_we_do() {
    let r = Repo::new();
    let cases: &[&str] = &[
        "10s 3\n",
        "10s  7\n",
        "10s (4)\n",
        "10s ( ( 6 ) )\n",
        "10s 0x10\n",
        "10s 0o17\n",
        "10s 3abc\n",
        "10s 3 4\n",
        "10s -2\n",
        "10s - 5\n",
        "10s 0\n",
        "10s 3.5\n",
        "10s 3.x\n",
        "10s 3e2\n",
        "10s 3e\n",
        "10s +3\n",
        "10s --3\n",
        "10s (3\n",
        "10s x\n",
        "10s 18446744073709551618\n",
        "10s 9223372036854775808\n",
        "10s 5\n10s 2\n",
        "10s 5\n11s 2\n",
        "10.5s 8\n10s 9\n",
        "garbage\n10s 4\n",
    ];
    for raw in cases {
        r.put(paths::NUMCOPIES_LOG, raw.as_bytes());
        r.put(paths::MINCOPIES_LOG, raw.as_bytes());
        let ours = numcopies::get(&numcopies::parse(raw.as_bytes()));
        for cmd in ["numcopies", "mincopies"] {
            let shown = r.annex(&[cmd]);
            match ours {
                Some(n) => assert_eq!(shown, n.to_string(), "{cmd} {raw:?}"),
                None => assert!(
                    shown.starts_with(&format!("global {cmd} is not set")),
                    "{cmd} {raw:?}: {shown}"
                ),
            }
        }
    }

    let mut log = numcopies::parse(b"10s 5\n11s 2\n");
    numcopies::set(&mut log, 4, VectorClock::now()).unwrap();
    r.put(paths::NUMCOPIES_LOG, &numcopies::write(&log));
    assert_eq!(r.annex(&["numcopies"]), "4");
}

#[test]
fn git_annex_reads_max_sizes_as_we_do() {
    let r = Repo::new();
    let [u1, u2, u3, u4, u5, u6] = U;
    let raw = format!(
        "10s {u1}  100\n\
         10s {u1} 200\n\
         10s {u2} (5)\n\
         10s {u3} 0x10\n\
         10s {u4} -7\n\
         10s {u5} 3.5\n\
         10s {u6} 123456789012345678901234567890\n\
         9s {u6} 1\n"
    );
    let mut log = maxsize::parse(raw.as_bytes());
    let check = |log: &maxsize::MaxSizeLog| {
        let m: BTreeMap<Uuid, i128> = maxsize::max_sizes(log);
        for uuid in U {
            let ours = m.get(&u(uuid)).map(|n| n.to_string()).unwrap_or_default();
            assert_eq!(r.annex(&["maxsize", uuid, "--bytes"]), ours, "{uuid}");
        }
    };
    r.put(paths::MAX_SIZE_LOG, raw.as_bytes());
    check(&log);
    assert_eq!(r.annex(&["maxsize", u1, "--bytes"]), "200");

    maxsize::set(&mut log, u(u5), 1_000_000_000_000, VectorClock::now()).unwrap();
    r.put(paths::MAX_SIZE_LOG, &maxsize::write(&log));
    check(&log);
}

/// A special remote's config written by us: git-annex enables the remote by
/// the name in it and stores content where its (escaped) `directory` value
/// says.
#[test]
fn git_annex_reads_our_remote_log() {
    let r = Repo::new();
    let store = r._t.path().join("a dir & more");
    std::fs::create_dir(&store).unwrap();
    let mut config = remote_config::RemoteConfig::default();
    for (k, v) in [
        ("name", "mydir"),
        ("type", "directory"),
        ("encryption", "none"),
        ("directory", store.to_str().unwrap()),
    ] {
        config.0.insert(k.to_string(), v.to_string());
    }
    let mut log = remote_config::parse(b"");
    remote_config::set(&mut log, u(U[0]), config.clone(), VectorClock::now()).unwrap();
    let written = remote_config::write(&log);
    assert!(
        String::from_utf8_lossy(&written).contains("&32;&38;&32;"),
        "the value's spaces and & are escaped: {}",
        String::from_utf8_lossy(&written)
    );
    assert_eq!(
        remote_config::config_map(&remote_config::parse(&written))[&u(U[0])],
        config
    );
    r.put(paths::REMOTE_LOG, &written);

    r.annex(&["enableremote", "mydir"]);
    assert_eq!(r.git(&["config", "remote.mydir.annex-uuid"]).trim(), U[0]);
    std::fs::write(r.dir.join("f"), b"special remote content").unwrap();
    r.annex(&["add", "f"]);
    r.annex(&["copy", "--to", "mydir", "f"]);
    let stored: Vec<_> = files_under(&store)
        .into_iter()
        .filter(|p| std::fs::read(p).ok().as_deref() == Some(&b"special remote content"[..]))
        .collect();
    assert_eq!(stored.len(), 1, "content stored under {}", store.display());
}

/// A gateway set up by git-annex (a cluster with one node, both proxied):
/// we read its proxy.log and cluster.log, write them again with a newer
/// clock, and git-annex's updatecluster/updateproxy, which compare the logs
/// with the gateway's configuration, find nothing to change. Logs we write
/// without the node make them record it again.
#[test]
fn git_annex_reads_our_proxy_and_cluster_logs() {
    let t = tempfile::tempdir().unwrap();
    let (node, node_uuid) = init_annex_repo(t.path(), "n1", "node one");
    let (gw, gw_uuid) = init_annex_repo(t.path(), "gw", "gateway");
    git(&gw, &["annex", "initcluster", "mycluster"]);
    git(&gw, &["remote", "add", "node1", node.to_str().unwrap()]);
    git(
        &gw,
        &["config", "remote.node1.annex-cluster-node", "mycluster"],
    );
    git(&gw, &["annex", "updatecluster"]);
    let (node_uuid, gw_uuid) = (u(&node_uuid), u(&gw_uuid));
    let cluster_uuid = u(git(&gw, &["config", "annex.cluster.mycluster"]).trim());

    let theirs_proxy = git(&gw, &["cat-file", "-p", "git-annex:proxy.log"]);
    let theirs_cluster = git(&gw, &["cat-file", "-p", "git-annex:cluster.log"]);
    let proxies = proxy::proxies(&proxy::parse(theirs_proxy.as_bytes()));
    let expected: std::collections::BTreeSet<proxy::Proxy> = [
        proxy::Proxy {
            uuid: cluster_uuid.clone(),
            name: "mycluster".into(),
        },
        proxy::Proxy {
            uuid: node_uuid.clone(),
            name: "node1".into(),
        },
    ]
    .into();
    assert_eq!(proxies[&gw_uuid], expected);
    let clusters = cluster::Clusters::from_log(&cluster::parse(theirs_cluster.as_bytes()));
    assert_eq!(clusters.nodes[&cluster_uuid], [node_uuid.clone()].into());

    let later = VectorClock::from_secs(VectorClock::now().secs().unwrap() + 100);
    let write_logs = |proxied: std::collections::BTreeSet<proxy::Proxy>,
                      nodes: std::collections::BTreeSet<Uuid>| {
        let mut p = proxy::parse(theirs_proxy.as_bytes());
        proxy::record(&mut p, gw_uuid.clone(), proxied, later).unwrap();
        let mut c = cluster::parse(theirs_cluster.as_bytes());
        cluster::record(&mut c, cluster_uuid.clone(), nodes, later).unwrap();
        put_on_branch(&gw, paths::PROXY_LOG, &proxy::write(&p));
        put_on_branch(&gw, paths::CLUSTER_LOG, &cluster::write(&c));
    };

    write_logs(expected.clone(), [node_uuid.clone()].into());
    let out = git(&gw, &["annex", "updatecluster"]);
    assert!(
        out.contains("No cluster node changes for cluster: mycluster"),
        "{out}"
    );
    assert!(out.contains("No proxy changes to record."), "{out}");

    let only_cluster = expected
        .iter()
        .filter(|p| p.uuid == cluster_uuid)
        .cloned()
        .collect();
    write_logs(only_cluster, Default::default());
    let out = git(&gw, &["annex", "updatecluster"]);
    assert!(
        out.contains("Added node node1 to cluster: mycluster"),
        "{out}"
    );
    assert!(out.contains("Started proxying for node1"), "{out}");
}
