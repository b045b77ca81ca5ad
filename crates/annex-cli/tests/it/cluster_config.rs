//! `annex initcluster`, `updatecluster`, `extendcluster` and
//! `updateproxy` against git-annex's own: the same commands in alike
//! repositories print the same, exit the same way and leave the same
//! cluster.log, proxy.log, uuid.log and git config; a real git-annex
//! client of our gateway sees the cluster and its nodes as it sees them
//! through git-annex's gateway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use annex_test_support::proxy::ProxyEnv;

const GW: &str = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee";
const GW2: &str = "ffffffff-ffff-4fff-8fff-ffffffffffff";
const N1: &str = "11111111-1111-4111-8111-111111111111";
const N2: &str = "22222222-2222-4222-8222-222222222222";
const N3: &str = "b3333333-3333-4333-8333-333333333333";
const CLIENT: &str = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";

/// Which program runs the command under test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    GitAnnex,
    Ours,
}

const SIDES: [Side; 2] = [Side::GitAnnex, Side::Ours];

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::GitAnnex => "theirs",
            Side::Ours => "ours",
        }
    }
}

/// A scratch area: `ProxyEnv` (the fake ssh first on PATH).
struct Area(ProxyEnv);

impl Area {
    fn new() -> Area {
        Area(ProxyEnv::new(env!("CARGO_BIN_EXE_annex")))
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.0.dir(name)
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        self.0.git(dir, args)
    }

    /// A git-annex repository `name` with UUID `uuid`, described as
    /// `name` without its side's prefix (so that both sides' alike
    /// repositories have the same description).
    fn repo(&self, name: &str, uuid: &str) -> PathBuf {
        let d = self.dir(name);
        self.git(self.0.tmp.path(), &["init", "-q", name]);
        self.git(&d, &["config", "annex.uuid", uuid]);
        let desc = SIDES
            .iter()
            .find_map(|s| name.strip_prefix(&format!("{}-", s.name())))
            .unwrap_or(name);
        self.git(&d, &["annex", "init", "-q", desc]);
        d
    }

    /// The command under test (`git annex ARGS` or our `annex ARGS`) in
    /// `dir`.
    fn run(&self, side: Side, dir: &Path, args: &[&str]) -> Output {
        match side {
            Side::GitAnnex => {
                let mut full = vec!["annex"];
                full.extend_from_slice(args);
                self.0.run(dir, "git", &full)
            }
            Side::Ours => self
                .0
                .run(dir, self.0.annex_program().to_str().unwrap(), args),
        }
    }

    /// Runs the command on both sides (`dirs[0]` git-annex's, `dirs[1]`
    /// ours) and checks that stdout, stderr (git-annex's `git-annex:`
    /// being our `annex:`) and the exit status are the same once each
    /// side's cluster UUIDs are named. Returns our stdout.
    fn same(&self, dirs: [&Path; 2], args: &[&str]) -> String {
        let results: Vec<(String, String, Option<i32>)> = SIDES
            .iter()
            .zip(dirs)
            .map(|(side, dir)| {
                let o = self.run(*side, dir, args);
                let names = cluster_names(dir);
                (
                    normalize(&String::from_utf8_lossy(&o.stdout), &names),
                    normalize(
                        &String::from_utf8_lossy(&o.stderr).replace("git-annex: ", "annex: "),
                        &names,
                    ),
                    o.status.code(),
                )
            })
            .collect();
        assert_eq!(
            results[1], results[0],
            "annex {args:?}: ours, then git-annex's"
        );
        results[1].0.clone()
    }

    /// A branch file as git-annex shows it in `dir`, with timestamps and
    /// cluster UUIDs replaced, its lines sorted (git-annex orders them by
    /// UUID, and cluster UUIDs differ between the sides).
    fn log(&self, dir: &Path, file: &str) -> String {
        let o = self
            .0
            .run(dir, "git", &["show", &format!("git-annex:{file}")]);
        let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
        if ["proxy.log", "cluster.log"].contains(&file) {
            text = newest_lines(&text);
        }
        let text = normalize(&text, &cluster_names(dir));
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| {
                // The repositories of a proxy.log or cluster.log line, in
                // UUID order, likewise.
                let mut w: Vec<&str> = l.split(' ').collect();
                if ["proxy.log", "cluster.log"].contains(&file) && w.len() > 2 {
                    w[2..].sort();
                }
                w.join(" ")
            })
            .collect();
        lines.sort();
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// `git config --get-regexp PATTERN` in `dir`, cluster UUIDs named.
    fn config(&self, dir: &Path, pattern: &str) -> String {
        let o = self.0.run(dir, "git", &["config", "--get-regexp", pattern]);
        normalize(&String::from_utf8_lossy(&o.stdout), &cluster_names(dir))
    }
}

/// The repository's clusters by UUID (`annex.cluster.NAME`), to be shown
/// as `CLUSTER-NAME`.
fn cluster_names(dir: &Path) -> BTreeMap<String, String> {
    let o = std::process::Command::new("git")
        .current_dir(dir)
        .args(["config", "--get-regexp", r"^annex\.cluster\."])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            let name = k.strip_prefix("annex.cluster.")?;
            Some((v.to_owned(), format!("CLUSTER-{name}")))
        })
        .collect()
}

/// A UUID-based log (`CLOCK UUID VALUE`) as git-annex reads it: the
/// newest line of each UUID. (git-annex's union merge of its index can
/// leave an older line beside a newer one, which readers ignore.)
fn newest_lines(text: &str) -> String {
    let mut newest: BTreeMap<&str, (f64, &str)> = BTreeMap::new();
    for line in text.lines() {
        let mut w = line.splitn(3, ' ');
        let (Some(clock), Some(uuid)) = (w.next(), w.next()) else {
            continue;
        };
        let t: f64 = clock.trim_end_matches('s').parse().unwrap_or(0.0);
        if newest.get(uuid).is_none_or(|(old, _)| t >= *old) {
            newest.insert(uuid, (t, line));
        }
    }
    newest.values().map(|(_, l)| format!("{l}\n")).collect()
}

fn is_timestamp(w: &str) -> bool {
    let digits = w.strip_suffix('s').unwrap_or("");
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// `text` with the cluster UUIDs named and vector clocks (`123s`,
/// `timestamp=123s`) replaced by `T`.
fn normalize(text: &str, names: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_owned();
        for (u, n) in names {
            l = l.replace(u.as_str(), n);
        }
        let words: Vec<String> = l
            .split(' ')
            .map(|w| {
                if is_timestamp(w) {
                    "T".to_owned()
                } else if w.strip_prefix("timestamp=").is_some_and(is_timestamp) {
                    "timestamp=T".to_owned()
                } else {
                    w.to_owned()
                }
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

fn is_cluster_uuid(u: &str) -> bool {
    u.len() == 36 && u.starts_with("ac") && u.as_bytes()[14] == b'8'
}

#[test]
fn initcluster_as_git_annex() {
    let a = Area::new();
    let dirs = SIDES.map(|s| a.repo(&format!("{}-g", s.name()), GW));
    let d = [dirs[0].as_path(), dirs[1].as_path()];
    assert_eq!(
        a.same(d, &["initcluster", "c"]),
        "initcluster c ok\n(recording state in git...)\n"
    );
    // The name is taken: nothing changes.
    assert_eq!(
        a.same(d, &["initcluster", "c", "another description"]),
        "initcluster c ok\n"
    );
    assert_eq!(
        a.same(d, &["initcluster", "bad name"]),
        "initcluster bad name \nfailed\n"
    );
    a.same(d, &["initcluster", ".c"]);
    a.same(d, &["initcluster", "a/b", "slash"]);
    a.same(d, &["initcluster"]);
    a.same(d, &["initcluster", "a", "b", "c"]);
    a.same(d, &["initcluster", "d", "the d cluster"]);
    // A value that is no cluster UUID does not take the name.
    for dir in d {
        a.git(dir, &["config", "annex.cluster.e", N1]);
    }
    a.same(d, &["initcluster", "e"]);
    a.same(d, &["initcluster", "-q", "quiet"]);
    // git config lists names in lower case: an upper-case name is never
    // found taken, and each run makes a new cluster, as with git-annex.
    a.same(d, &["initcluster", "Up"]);
    a.same(d, &["initcluster", "Up"]);
    for dir in d {
        let clusters = cluster_names(dir);
        assert_eq!(clusters.len(), 5, "{clusters:?}");
        assert!(clusters.keys().all(|u| is_cluster_uuid(u)), "{clusters:?}");
    }
    assert_eq!(
        a.config(d[1], r"^annex\.cluster\."),
        a.config(d[0], r"^annex\.cluster\.")
    );
    // uuid.log: the same descriptions (two for the upper-case name, whose
    // first UUID is no longer in git config).
    let descriptions = |dir: &Path| {
        let mut v: Vec<String> = a
            .log(dir, "uuid.log")
            .lines()
            .map(|l| {
                let l = l.strip_suffix(" timestamp=T").unwrap_or(l);
                let (u, desc) = l.split_once(' ').unwrap();
                let kind = if u.starts_with("CLUSTER-") {
                    u.to_owned()
                } else if is_cluster_uuid(u) {
                    "cluster".to_owned()
                } else {
                    u.to_owned()
                };
                format!("{kind} {desc}")
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(descriptions(d[1]), descriptions(d[0]));
    // git-annex reads what we wrote.
    let ours = a.git(d[1], &["annex", "info", "--fast"]);
    let c = cluster_names(d[1])
        .into_iter()
        .find(|(_, n)| n == "CLUSTER-c")
        .unwrap()
        .0;
    assert!(ours.contains(&format!("{c} -- cluster c")), "{ours}");
}

/// A gateway `g` (UUID GW) with remotes `n1` and `n2` (git-annex
/// repositories), `plain` (a git repository without git-annex) and
/// `gone` (no repository), in `side`'s directory.
fn gateway_with_nodes(a: &Area, side: Side) -> PathBuf {
    let s = side.name();
    a.repo(&format!("{s}-n1"), N1);
    a.repo(&format!("{s}-n2"), N2);
    a.git(a.0.tmp.path(), &["init", "-q", &format!("{s}-plain")]);
    let g = a.repo(&format!("{s}-g"), GW);
    for (name, url) in [
        ("n1", format!("../{s}-n1")),
        ("n2", format!("../{s}-n2")),
        ("plain", format!("../{s}-plain")),
        ("gone", format!("../{s}-gone")),
    ] {
        a.git(&g, &["remote", "add", name, &url]);
    }
    g
}

#[test]
fn updatecluster_as_git_annex() {
    let a = Area::new();
    let g = SIDES.map(|s| gateway_with_nodes(&a, s));
    let d = [g[0].as_path(), g[1].as_path()];
    for (side, dir) in SIDES.iter().zip(d) {
        let o = a.run(*side, dir, &["initcluster", "c"]);
        assert!(o.status.success());
        a.git(dir, &["config", "remote.n1.annex-cluster-node", "c"]);
        a.git(dir, &["config", "remote.n2.annex-cluster-node", "c other"]);
        a.git(dir, &["config", "remote.plain.annex-cluster-node", "c"]);
        a.git(dir, &["config", "remote.gone.annex-cluster-node", "c"]);
    }
    // Nodes added; the UUIDs of n1 and n2 read from their repositories;
    // warnings for plain and gone.
    let out = a.same(d, &["updatecluster"]);
    assert_eq!(
        out,
        "Added node n1 to cluster: c\nAdded node n2 to cluster: c\nStarted proxying for n1\nStarted proxying for n2\nStarted proxying for c\n"
    );
    for file in ["cluster.log", "proxy.log"] {
        assert_eq!(a.log(d[1], file), a.log(d[0], file), "{file}");
    }
    assert_eq!(
        a.log(d[1], "cluster.log"),
        format!("T CLUSTER-c {N1} {N2}\n")
    );
    assert_eq!(
        a.config(d[1], r"^remote\..*\.annex-uuid"),
        a.config(d[0], r"^remote\..*\.annex-uuid")
    );
    assert_eq!(
        a.same(d, &["updatecluster"]),
        "No cluster node changes for cluster: c\nNo proxy changes to record.\n"
    );
    // A node taken out, known by its description.
    for dir in d {
        a.git(dir, &["annex", "describe", "n2", "node two"]);
        a.git(dir, &["config", "--unset", "remote.n2.annex-cluster-node"]);
    }
    assert_eq!(
        a.same(d, &["updatecluster", "--quiet"]),
        "Removed node node two [n2] from cluster: c\nStopped proxying for n2\n"
    );
    for file in ["cluster.log", "proxy.log"] {
        assert_eq!(a.log(d[1], file), a.log(d[0], file), "{file}");
    }
    // A second cluster, and n1 in both.
    for (side, dir) in SIDES.iter().zip(d) {
        assert!(a.run(*side, dir, &["initcluster", "b"]).status.success());
        a.git(dir, &["config", "remote.n1.annex-cluster-node", "c b"]);
        a.git(dir, &["config", "remote.n2.annex-cluster-node", "b"]);
    }
    a.same(d, &["updatecluster"]);
    // updateproxy alone: nothing left to record. (Our updateproxy does
    // not yet read the UUIDs of remotes on this machine as git-annex
    // does, and so does not warn about one that is missing.)
    for dir in d {
        a.git(dir, &["remote", "remove", "gone"]);
    }
    a.same(d, &["updateproxy"]);
    for file in ["cluster.log", "proxy.log"] {
        assert_eq!(a.log(d[1], file), a.log(d[0], file), "{file}");
    }
    // git-annex finds nothing to change in what we recorded.
    let theirs = a.run(Side::GitAnnex, d[1], &["updatecluster"]);
    assert_eq!(
        String::from_utf8_lossy(&theirs.stdout),
        "No cluster node changes for cluster: b\nNo cluster node changes for cluster: c\nNo proxy changes to record.\n"
    );
    // A dead node is no node, even when configured as one; a private one
    // is kept out of the logs (and so is added again each time).
    for dir in d {
        a.git(dir, &["annex", "dead", "n2"]);
        a.git(dir, &["config", "remote.n1.annex-private", "true"]);
    }
    for _ in 0..2 {
        a.same(d, &["updatecluster"]);
        for file in ["cluster.log", "proxy.log"] {
            assert_eq!(a.log(d[1], file), a.log(d[0], file), "{file}");
        }
    }
    // c is unchanged (n1 is still its node); b is rewritten without n1.
    assert_eq!(
        a.log(d[1], "cluster.log"),
        format!("T CLUSTER-b {N2}\nT CLUSTER-c {N1}\n")
    );
}

#[test]
fn extendcluster_errors_as_git_annex() {
    let a = Area::new();
    let g = SIDES.map(|s| {
        let n = s.name();
        a.repo(&format!("{n}-x"), N1);
        let g = a.repo(&format!("{n}-g"), GW);
        // x and x-c are ordinary repositories; so is z-c, with no z.
        for r in ["x", "x-c", "z-c", "y"] {
            a.git(&g, &["remote", "add", r, &format!("../{n}-x")]);
        }
        g
    });
    let d = [g[0].as_path(), g[1].as_path()];
    a.same(d, &["extendcluster"]);
    a.same(d, &["extendcluster", "x"]);
    a.same(d, &["extendcluster", "x", "c", "d"]);
    // No GATEWAY-NAME remote (the gateway was not fetched from, or has no
    // such cluster).
    a.same(d, &["extendcluster", "nosuch", "c"]);
    a.same(d, &["extendcluster", "y", "c"]);
    // GATEWAY-NAME without GATEWAY.
    a.same(d, &["extendcluster", "z", "c"]);
    // GATEWAY-NAME is not a cluster.
    a.same(d, &["extendcluster", "x", "c"]);
    assert_eq!(a.config(d[1], "cluster"), "");
}

#[test]
fn extendcluster_as_git_annex() {
    let a = Area::new();
    // The first gateway, made by git-annex, and a node for the second.
    a.repo("n1", N1);
    a.repo("n2", N2);
    a.repo("n3", N3);
    let gw1 = a.repo("gw1", GW);
    a.git(&gw1, &["remote", "add", "n1", "../n1"]);
    a.git(&gw1, &["remote", "add", "n2", "../n2"]);
    a.git(&gw1, &["annex", "initcluster", "c"]);
    a.git(&gw1, &["config", "remote.n1.annex-cluster-node", "c"]);
    a.git(&gw1, &["config", "remote.n2.annex-cluster-node", "c"]);
    a.git(&gw1, &["annex", "updatecluster"]);
    let gw1_url = format!("localhost:{}", gw1.display());
    let g = SIDES.map(|s| {
        let g = a.repo(&format!("{}-gw2", s.name()), GW2);
        // Its UUID is asked for over ssh (git-annex-shell configlist).
        a.git(&g, &["remote", "add", "gw1", &gw1_url]);
        a.git(&g, &["remote", "add", "n3", "../n3"]);
        a.git(&g, &["config", "remote.n3.annex-cluster-node", "c"]);
        a.git(&g, &["fetch", "-q", "gw1"]);
        g
    });
    let d = [g[0].as_path(), g[1].as_path()];
    let out = a.same(d, &["extendcluster", "gw1", "c"]);
    assert!(
        out.starts_with("(merging gw1/git-annex into git-annex...)\n"),
        "{out}"
    );
    assert!(
        out.contains("extendcluster c ok\nAdded node n3 to cluster: c\n"),
        "{out}"
    );
    for file in ["cluster.log", "proxy.log", "uuid.log"] {
        assert_eq!(a.log(d[1], file), a.log(d[0], file), "{file}");
    }
    assert_eq!(
        a.log(d[1], "cluster.log"),
        format!("T CLUSTER-c {N1} {N2} {N3}\n")
    );
    assert_eq!(a.config(d[1], "cluster"), a.config(d[0], "cluster"));
    assert_eq!(a.config(d[1], "annex-uuid"), a.config(d[0], "annex-uuid"));
    assert!(a
        .config(d[1], "annex-uuid")
        .contains(&format!("remote.gw1.annex-uuid {GW}")));
    assert_eq!(
        a.config(d[1], "cluster"),
        "remote.gw1.annex-cluster-gateway CLUSTER-c\nremote.n3.annex-cluster-node c\nannex.cluster.c CLUSTER-c\n"
    );
    // Again: nothing more to do.
    a.same(d, &["extendcluster", "gw1", "c"]);
    a.same(d, &["updatecluster"]);
    // Warnings, with and without --quiet: a missing remote named as a
    // node, and errors after them.
    for dir in d {
        a.git(dir, &["remote", "add", "gone", "../nonexistent"]);
        a.git(dir, &["config", "remote.gone.annex-cluster-node", "c"]);
    }
    a.same(d, &["extendcluster", "nosuch", "c"]);
    a.same(d, &["extendcluster", "gw1", "c"]);
    let out = a.same(d, &["extendcluster", "-q", "gw1", "c"]);
    assert_eq!(
        out,
        "No cluster node changes for cluster: c\nNo proxy changes to record.\n"
    );
}

#[test]
fn client_sees_the_cluster_through_our_gateway() {
    let a = Area::new();
    a.repo("n1", N1);
    a.repo("n2", N2);
    let clients = SIDES.map(|s| {
        let n = s.name();
        let g = a.repo(&format!("{n}-gw"), GW);
        a.git(&g, &["remote", "add", "n1", "../n1"]);
        a.git(&g, &["remote", "add", "n2", "../n2"]);
        let client = format!("{n}-client");
        a.git(
            a.0.tmp.path(),
            &[
                "clone",
                "-q",
                &format!("localhost:{}", g.display()),
                &client,
            ],
        );
        let c = a.dir(&client);
        a.git(&c, &["config", "annex.uuid", CLIENT]);
        a.git(&c, &["config", "annex.sshcaching", "false"]);
        a.git(&c, &["annex", "init", "-q", "client"]);
        assert!(a
            .run(s, &g, &["initcluster", "c", "the cluster"])
            .status
            .success());
        a.git(&g, &["config", "remote.n1.annex-cluster-node", "c"]);
        a.git(&g, &["config", "remote.n2.annex-cluster-node", "c"]);
        assert!(a.run(s, &g, &["updatecluster"]).status.success());
        a.git(&c, &["fetch", "-q", "origin"]);
        (g, c)
    });
    let names = |i: usize| cluster_names(&clients[i].0);
    let shown = |i: usize, args: &[&str]| {
        let o = a.0.run(&clients[i].1, "git", args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        let text = String::from_utf8_lossy(&o.stdout)
            .replace(&clients[i].0.display().to_string(), "GATEWAY");
        // Disk space changes as other tests run.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("available local disk space"))
            .map(|l| format!("{l}\n"))
            .collect();
        // When the client last fetched: not the same second on both sides.
        let text = match text.find("\"last synced\":\"") {
            Some(at) => {
                let end = at + text[at..].find("\",").unwrap() + 2;
                format!("{}{}", &text[..at], &text[end..])
            }
            None => text,
        };
        normalize(&text, &names(i))
    };
    for args in [
        &["annex", "info", "--json", "origin"][..],
        &["annex", "info", "origin-c"],
        &["annex", "info", "origin-n1"],
        &["annex", "list"],
        &["annex", "info", "--fast"],
    ] {
        let theirs = shown(0, args);
        let ours = shown(1, args);
        assert_eq!(ours, theirs, "{args:?}");
    }
    let info = shown(1, &["annex", "info", "--json", "origin"]);
    let v: serde_json::Value = serde_json::from_str(info.trim()).unwrap();
    assert_eq!(v["gateway to cluster"], "origin-c");
    assert_eq!(v["proxying"], "origin-n1 origin-n2");
    let list = shown(1, &["annex", "list"]);
    for r in ["origin-n1", "origin-n2", "origin-c"] {
        assert!(list.contains(r), "{list}");
    }
}

/// The first gateway made a gateway of the second one's view of the
/// cluster in turn, as git-annex's documentation has it: the node behind
/// the second gateway is proxied through it.
#[test]
fn first_gateway_extended_back_as_git_annex() {
    let a = Area::new();
    a.repo("n1", N1);
    a.repo("n2", N2);
    a.repo("n3", N3);
    let gw1 = SIDES.map(|s| {
        let n = s.name();
        let gw1 = a.repo(&format!("{n}-gw1"), GW);
        a.git(&gw1, &["remote", "add", "n1", "../n1"]);
        a.git(&gw1, &["remote", "add", "n2", "../n2"]);
        a.git(&gw1, &["annex", "initcluster", "c"]);
        a.git(&gw1, &["config", "remote.n1.annex-cluster-node", "c"]);
        a.git(&gw1, &["config", "remote.n2.annex-cluster-node", "c"]);
        a.git(&gw1, &["annex", "updatecluster"]);
        let gw2 = a.repo(&format!("{n}-gw2"), GW2);
        a.git(
            &gw2,
            &[
                "remote",
                "add",
                "gw1",
                &format!("localhost:{}", gw1.display()),
            ],
        );
        a.git(&gw2, &["remote", "add", "n3", "../n3"]);
        a.git(&gw2, &["config", "remote.n3.annex-cluster-node", "c"]);
        a.git(&gw2, &["fetch", "-q", "gw1"]);
        a.git(&gw2, &["annex", "extendcluster", "gw1", "c"]);
        a.git(
            &gw1,
            &[
                "remote",
                "add",
                "gw2",
                &format!("localhost:{}", gw2.display()),
            ],
        );
        a.git(&gw1, &["fetch", "-q", "gw2"]);
        gw1
    });
    let d = [gw1[0].as_path(), gw1[1].as_path()];
    let out = a.same(d, &["extendcluster", "gw2", "c"]);
    assert!(
        out.ends_with("extendcluster c ok\nNo cluster node changes for cluster: c\nStarted proxying for gw2-n3\n"),
        "{out}"
    );
    for file in ["cluster.log", "proxy.log"] {
        assert_eq!(a.log(d[1], file), a.log(d[0], file), "{file}");
    }
    assert_eq!(a.config(d[1], "cluster"), a.config(d[0], "cluster"));
    a.same(d, &["updatecluster"]);
    a.same(d, &["updateproxy"]);
    // n3 taken out at the second gateway: the first one drops it too.
    for dir in d {
        let gw2 = dir.with_file_name(format!(
            "{}-gw2",
            dir.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches("-gw1")
        ));
        a.git(&gw2, &["config", "--unset", "remote.n3.annex-cluster-node"]);
        a.git(&gw2, &["annex", "updatecluster"]);
        a.git(dir, &["fetch", "-q", "gw2"]);
    }
    let out = a.same(d, &["updatecluster"]);
    assert_eq!(
        out,
        "No cluster node changes for cluster: c\nStopped proxying for gw2-n3\n"
    );
    for file in ["cluster.log", "proxy.log"] {
        assert_eq!(a.log(d[1], file), a.log(d[0], file), "{file}");
    }
}
