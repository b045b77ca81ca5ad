//! The logs the real git-annex wrote (tests/fixtures/branch/, made by
//! scripts/capture-branch-fixtures.sh): each parses to what git-annex
//! reported about it, the versions git-annex wrote itself are written back
//! byte for byte, and the union merge of the two sides gives the merged
//! files byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use annex_branch::logs::{
    cluster, group, maxsize, numcopies, paths, preferred_content, proxy, remote_config, trust,
    union, uuid_log,
};
use annex_types::Uuid;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/branch")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn u(s: &str) -> Uuid {
    Uuid::parse(s).unwrap()
}

/// Parses a log by its file name and writes it back; also returns how many
/// lines did not parse.
fn round_trip(name: &str, data: &[u8]) -> (Vec<u8>, usize) {
    match name {
        paths::UUID_LOG => {
            let l = uuid_log::parse(data);
            (uuid_log::write(&l), l.unparsed.len())
        }
        paths::TRUST_LOG => {
            let l = trust::parse(data);
            (trust::write(&l), l.unparsed.len())
        }
        paths::GROUP_LOG => {
            let l = group::parse(data);
            (group::write(&l), l.unparsed.len())
        }
        paths::PREFERRED_CONTENT_LOG | paths::REQUIRED_CONTENT_LOG => {
            let l = preferred_content::parse(data);
            (preferred_content::write(&l), l.unparsed.len())
        }
        paths::GROUP_PREFERRED_CONTENT_LOG => {
            let l = preferred_content::parse_group(data);
            (preferred_content::write_group(&l), l.unparsed.len())
        }
        paths::NUMCOPIES_LOG | paths::MINCOPIES_LOG => {
            let l = numcopies::parse(data);
            (numcopies::write(&l), l.unparsed.len())
        }
        paths::REMOTE_LOG => {
            let l = remote_config::parse(data);
            (remote_config::write(&l), l.unparsed.len())
        }
        paths::PROXY_LOG => {
            let l = proxy::parse(data);
            (proxy::write(&l), l.unparsed.len())
        }
        paths::CLUSTER_LOG => {
            let l = cluster::parse(data);
            (cluster::write(&l), l.unparsed.len())
        }
        paths::MAX_SIZE_LOG => {
            let l = maxsize::parse(data);
            (maxsize::write(&l), l.unparsed.len())
        }
        other => panic!("no parser for {other}"),
    }
}

fn log_files(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_log_git_annex_wrote_is_covered() {
    let names = log_files(&dir());
    for n in [
        paths::UUID_LOG,
        paths::TRUST_LOG,
        paths::GROUP_LOG,
        paths::PREFERRED_CONTENT_LOG,
        paths::REQUIRED_CONTENT_LOG,
        paths::GROUP_PREFERRED_CONTENT_LOG,
        paths::NUMCOPIES_LOG,
        paths::MINCOPIES_LOG,
        paths::REMOTE_LOG,
        paths::PROXY_LOG,
        paths::CLUSTER_LOG,
        paths::MAX_SIZE_LOG,
    ] {
        assert!(names.iter().any(|x| x == n), "no fixture for {n}");
    }
}

#[test]
fn logs_git_annex_wrote_itself_are_written_back_byte_for_byte() {
    for side in ["side-gw", "side-laptop"] {
        let d = dir().join(side);
        for name in log_files(&d) {
            let data = read(&d.join(&name));
            let (out, unparsed) = round_trip(&name, &data);
            assert_eq!(unparsed, 0, "{side}/{name}");
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&data),
                "{side}/{name}"
            );
        }
    }
}

#[test]
fn merged_logs_read_back_the_same_after_writing() {
    for name in log_files(&dir()) {
        let data = read(&dir().join(&name));
        let (out, unparsed) = round_trip(&name, &data);
        assert_eq!(unparsed, 0, "{name}");
        assert_eq!(round_trip(&name, &out).0, out, "{name}");
        // A merged log holds superseded lines; written, it is compacted.
        assert!(out.len() <= data.len(), "{name}");
    }
}

#[test]
fn union_merge_gives_git_annex_merged_files() {
    for name in log_files(&dir()) {
        let laptop = std::fs::read(dir().join("side-laptop").join(&name)).ok();
        let gw = std::fs::read(dir().join("side-gw").join(&name)).ok();
        // git-annex merges the branch it fetched (laptop's) into its own.
        let versions: Vec<&[u8]> = [laptop.as_deref(), gw.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let merged = union::merge(&versions);
        assert_eq!(
            String::from_utf8_lossy(&merged),
            String::from_utf8_lossy(&read(&dir().join(&name))),
            "{name}"
        );
    }
    let r = dir().join("reuse");
    let x = read(&r.join("side-x/maxsize.log"));
    let y = read(&r.join("side-y/maxsize.log"));
    let merged = read(&r.join("maxsize.log"));
    assert_eq!(union::merge(&[&x, &y]), merged);
    assert_eq!(union::merge(&[&y, &x]), merged);
    // That version was not sorted, and is kept as it is.
    assert_ne!(union::merge(&[&x, b"other\n"]), x);
}

#[test]
fn merged_meaning_is_reading_both_sides() {
    for name in log_files(&dir()) {
        let Ok(laptop) = std::fs::read(dir().join("side-laptop").join(&name)) else {
            continue;
        };
        let gw = read(&dir().join("side-gw").join(&name));
        let merged = read(&dir().join(&name));
        let mut both = laptop.clone();
        both.extend_from_slice(&gw);
        assert_eq!(
            round_trip(&name, &both).0,
            round_trip(&name, &merged).0,
            "{name}"
        );
    }
}

/// What git-annex reported, from expected.tsv.
struct Expected(Vec<(String, String, String)>);

impl Expected {
    fn load() -> Expected {
        let text = String::from_utf8(read(&dir().join("expected.tsv"))).unwrap();
        Expected(
            text.lines()
                .map(|l| {
                    let mut f = l.splitn(3, '\t');
                    let mut next = || f.next().unwrap_or("").to_string();
                    (next(), next(), next())
                })
                .collect(),
        )
    }

    fn rows<'a>(&'a self, kind: &str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let kind = kind.to_string();
        self.0
            .iter()
            .filter(move |(k, _, _)| *k == kind)
            .map(|(_, s, v)| (s.as_str(), v.as_str()))
    }

    fn one(&self, kind: &str, subject: &str) -> &str {
        self.rows(kind)
            .find(|(s, _)| *s == subject)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {kind} {subject} in expected.tsv"))
    }
}

fn merged(name: &str) -> Vec<u8> {
    read(&dir().join(name))
}

#[test]
fn trust_levels_are_what_git_annex_reports() {
    let e = Expected::load();
    let log = trust::parse(&merged(paths::TRUST_LOG));
    let mut n = 0;
    for (uuid, level) in e.rows("trust") {
        assert_eq!(trust::lookup(&log, &u(uuid)).as_str(), level, "{uuid}");
        n += 1;
    }
    assert!(n >= 8);
}

#[test]
fn groups_are_what_git_annex_reports() {
    let e = Expected::load();
    let log = group::parse(&merged(paths::GROUP_LOG));
    for (uuid, groups) in e.rows("group") {
        let ours: Vec<String> = group::lookup(&log, &u(uuid)).into_iter().collect();
        assert_eq!(ours.join(" "), groups, "{uuid}");
    }
    let by_group = group::uuids_by_group(&log);
    assert_eq!(
        by_group["fast"],
        BTreeSet::from([u(e.one("remote", "node1")), u(e.one("remote", "node2"))])
    );
}

#[test]
fn preferred_content_is_what_git_annex_reports() {
    let e = Expected::load();
    for (kind, file) in [
        ("wanted", paths::PREFERRED_CONTENT_LOG),
        ("required", paths::REQUIRED_CONTENT_LOG),
    ] {
        let m = preferred_content::expressions(&preferred_content::parse(&merged(file)));
        for (uuid, expr) in e.rows(kind) {
            assert_eq!(
                m.get(&u(uuid)).map(String::as_str).unwrap_or(""),
                expr,
                "{kind} {uuid}"
            );
        }
    }
    let g = preferred_content::group_expressions(&preferred_content::parse_group(&merged(
        paths::GROUP_PREFERRED_CONTENT_LOG,
    )));
    for (group, expr) in e.rows("groupwanted") {
        assert_eq!(
            g.get(group).map(String::as_str).unwrap_or(""),
            expr,
            "{group}"
        );
    }
}

#[test]
fn numcopies_and_mincopies_are_what_git_annex_reports() {
    let e = Expected::load();
    for (kind, file) in [
        ("numcopies", paths::NUMCOPIES_LOG),
        ("mincopies", paths::MINCOPIES_LOG),
    ] {
        let n = numcopies::get(&numcopies::parse(&merged(file))).unwrap();
        assert_eq!(n.to_string(), e.one(kind, ""), "{kind}");
    }
}

#[test]
fn max_sizes_are_what_git_annex_reports() {
    let e = Expected::load();
    let m = maxsize::max_sizes(&maxsize::parse(&merged(paths::MAX_SIZE_LOG)));
    for (uuid, bytes) in e.rows("maxsize") {
        let ours = m.get(&u(uuid)).map(|n| n.to_string()).unwrap_or_default();
        assert_eq!(ours, bytes, "{uuid}");
    }
}

/// git-annex shows a description with the name of the remote for the
/// repository added (`addName`).
fn add_name(desc: &str, name: &str) -> String {
    if desc == name || desc.is_empty() {
        format!("[{name}]")
    } else {
        format!("{desc} [{name}]")
    }
}

#[test]
fn descriptions_are_what_git_annex_reports() {
    let e = Expected::load();
    let descs = uuid_log::descriptions(&uuid_log::parse(&merged(paths::UUID_LOG)));
    let dead = trust::with_level(
        &trust::parse(&merged(paths::TRUST_LOG)),
        trust::TrustLevel::Dead,
    );
    let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, uuid) in e.rows("remote") {
        names.entry(uuid).or_default().push(name);
    }
    let shown: BTreeMap<&str, &str> = e.rows("description").collect();
    for (uuid, ours) in &descs {
        if dead.contains(uuid) {
            // git annex info does not list dead repositories.
            assert!(!shown.contains_key(uuid.as_str()));
            continue;
        }
        let shown = shown
            .get(uuid.as_str())
            .unwrap_or_else(|| panic!("git-annex does not list {uuid}"));
        match names.get(uuid.as_str()) {
            None => assert_eq!(shown, ours, "{uuid}"),
            Some(ns) => assert!(
                ns.iter().any(|n| add_name(ours, n) == *shown),
                "{uuid}: {shown:?} from {ours:?} and {ns:?}"
            ),
        }
    }
}

#[test]
fn remote_configs_are_what_git_annex_uses() {
    let e = Expected::load();
    let configs = remote_config::config_map(&remote_config::parse(&merged(paths::REMOTE_LOG)));
    let dir1 = u(e.one("remote", "dir1"));
    let dir2 = u(e.one("config-uuid", "dir2"));
    for (name, uuid) in [("dir1", &dir1), ("dir2", &dir2)] {
        let c = &configs[uuid];
        assert_eq!(c.get("type"), Some(e.one("remote-type", name)), "{name}");
        // dir2 holds no encryption= of its own: it inherits dir1's.
        assert_eq!(
            c.get("encryption"),
            Some(e.one("remote-encryption", name)),
            "{name}"
        );
    }
    // The values given to initremote and enableremote, escaped in the log.
    assert_eq!(configs[&dir1].get("preferreddir"), Some("laptop dir"));
    assert_eq!(configs[&dir1].get("name"), Some("dir1"));
    assert_eq!(
        configs[&dir2].get("preferreddir"),
        Some("my dir&more\ttabbed")
    );
    assert_eq!(configs[&dir2].get("sameas-name"), Some("dir2"));
    assert_eq!(configs[&dir2].get("sameas-uuid"), Some(dir1.as_str()));
    // chunk= was given for dir2, but a sameas remote inherits it.
    assert_eq!(configs[&dir2].get("chunk"), None);
}

#[test]
fn proxies_are_what_git_annex_reports() {
    let e = Expected::load();
    let gw = u(e.one("here", ""));
    let proxies = proxy::proxies(&proxy::parse(&merged(paths::PROXY_LOG)));
    let (clusters, others): (Vec<_>, Vec<_>) =
        proxies[&gw].iter().partition(|p| p.uuid.is_cluster());
    // As a repository with the gateway as its remote "origin" sees them.
    let names = |ps: Vec<&proxy::Proxy>| {
        ps.iter()
            .map(|p| format!("origin-{}", p.name))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(names(others), e.one("proxying", gw.as_str()));
    assert_eq!(names(clusters), e.one("gateway-to-cluster", gw.as_str()));
}

#[test]
fn clusters_are_what_git_annex_reports() {
    let e = Expected::load();
    let log = cluster::parse(&merged(paths::CLUSTER_LOG));
    let trust = trust::parse(&merged(paths::TRUST_LOG));
    let c = u(e.one("cluster", "mycluster"));
    let configured: BTreeSet<&str> = e
        .one("cluster-nodes-configured", "mycluster")
        .split(' ')
        .collect();
    let uuid_of = |n: &str| u(e.one("remote", n));

    let all = cluster::Clusters::from_log(&log);
    let all_nodes: BTreeSet<Uuid> = configured.iter().map(|n| uuid_of(n)).collect();
    assert_eq!(all.nodes_of(&c), Some(&all_nodes));
    for n in &all_nodes {
        assert_eq!(all.clusters_of(n), Some(&BTreeSet::from([c.clone()])));
    }

    // updatecluster compares the configured nodes with the clusters as
    // git-annex uses them, dead nodes left out, and reports the
    // difference.
    let live = cluster::clusters(&log, &trust);
    let recorded = live.nodes_of(&c).cloned().unwrap_or_default();
    let mut report: Vec<String> = configured
        .iter()
        .filter(|n| !recorded.contains(&uuid_of(n)))
        .map(|n| format!("Added node {n} to cluster: mycluster"))
        .collect();
    assert!(recorded.iter().all(|r| all_nodes.contains(r)));
    if report.is_empty() {
        report.push("No cluster node changes for cluster: mycluster".into());
    }
    report.push("No proxy changes to record.".into());
    assert_eq!(report.join("|"), e.one("updatecluster", "mycluster"));
    // The dead node is the one it adds back.
    assert!(!report[0].starts_with("No"));
}
