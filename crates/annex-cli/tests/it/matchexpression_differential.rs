//! `annex matchexpression` against `git annex matchexpression`: the same
//! generated expressions, files, keys and sizes, asked in one repository
//! whose git-annex branch knows up to 20 other repositories (groups,
//! trust, maxsizes, numcopies, location logs), with several of them taking
//! turns as "here". Exit codes, explanations and, whenever either program
//! fails, error messages must agree (a refused option's usage aside).
//!
//! The cases come from proptest with a fixed seed, so a run is repeatable;
//! `MATCHEXPRESSION_CASES` changes how many each test runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use annex_branch::logs::paths::{GROUP_LOG, MAX_SIZE_LOG, NUMCOPIES_LOG, TRUST_LOG, UUID_LOG};
use annex_branch::logs::trust::TrustLevel;
use annex_branch::logs::{group, maxsize, numcopies, trust, uuid_log};
use annex_branch::{Branch, VectorClock};
use annex_protocol::Uuid;
use annex_test_support::{command, git, output, setpresentkey, PseudoRandom};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn annex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_annex"))
}

/// The repositories and keys of one scenario.
struct World {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    uuids: Vec<String>,
    groups: Vec<String>,
    keys: Vec<String>,
}

const GLOBS: &[&str] = &[
    "*",
    "*.jpg",
    "*.png",
    "dir/*",
    "*/sub/*",
    "a?c*",
    "[abc]*",
    "*.[jp][pn]g",
    "archive/*",
    "*/archive/*",
    "file*",
    "*x*",
    "public/*",
    "[!a]*",
    "*/",
    "dir/sub",
    "?",
];
const FILES: &[&str] = &[
    "a.jpg",
    "abc",
    "dir/x.png",
    "dir/sub/y.jpg",
    "archive/a.jpg",
    "x/archive/b.txt",
    "public/p.jpg",
    "x/public/q.png",
    "file1.jpg",
    "dir//sub/z.jpg",
    "b",
];
const SIZES: &[&str] = &[
    "0", "1", "100", "1kb", "1mb", "2.5MB", "1KiB", "10mbit", "3 gb", "1x", "-5",
];

fn new_world(seed: u64, nodes: usize) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    git(tmp.path(), &["init", "-q", "repo"]);
    git(&dir, &["config", "user.name", "t"]);
    git(&dir, &["config", "user.email", "t@example.invalid"]);
    git(&dir, &["annex", "init", "-q", "here"]);
    let here = git(&dir, &["config", "annex.uuid"]).trim().to_string();
    let mut rng = PseudoRandom::new(seed);
    let mut uuids = vec![here.clone()];
    for i in 0..nodes {
        let r = rng.next_u64();
        uuids.push(format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            r as u32,
            (r >> 32) as u16,
            i,
            (r >> 48) as u16 & 0xfff,
            rng.next_u64() & 0xffff_ffff_ffff
        ));
    }
    let groups: Vec<String> = ["nodes", "backup", "archive", "client", "g2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let branch = Branch::open(&dir).unwrap();
    let now = VectorClock::now();
    let change = |path: &str, f: &dyn Fn(&[u8]) -> Vec<u8>| {
        branch.change(path, |old| Some(f(old))).unwrap();
    };
    change(UUID_LOG, &|old| {
        let mut log = uuid_log::parse(old);
        for (i, u) in uuids.iter().enumerate().skip(1) {
            uuid_log::describe(&mut log, Uuid::parse(u).unwrap(), &format!("node{i}"), now)
                .unwrap();
        }
        uuid_log::write(&log)
    });
    // Groups: most repositories in "nodes", some also elsewhere.
    let mut membership: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, u) in uuids.iter().enumerate() {
        let r = rng.next_u64();
        let mut gs = Vec::new();
        if i > 0 || r % 3 == 0 {
            gs.push("nodes");
        }
        if r % 5 == 1 {
            gs.push("backup");
        }
        if r % 7 == 2 {
            gs.push("archive");
        }
        if r % 4 == 3 {
            gs.push("client");
        }
        if (r >> 8) % 3 == 0 {
            gs.push("g2");
        }
        membership.insert(u.clone(), gs.iter().map(|s| s.to_string()).collect());
    }
    change(GROUP_LOG, &|old| {
        let mut log = group::parse(old);
        for (u, gs) in &membership {
            for g in gs {
                group::add(&mut log, Uuid::parse(u).unwrap(), g, now).unwrap();
            }
        }
        group::write(&log)
    });
    // Trust: one of each non-default level, when there are enough.
    change(TRUST_LOG, &|old| {
        let mut log = trust::parse(old);
        for (i, level) in [
            (2, TrustLevel::Untrusted),
            (3, TrustLevel::Dead),
            (4, TrustLevel::Trusted),
        ] {
            if let Some(u) = uuids.get(i) {
                trust::set(&mut log, Uuid::parse(u).unwrap(), level, now).unwrap();
            }
        }
        trust::write(&log)
    });
    let mut maxes = Vec::new();
    for (i, u) in uuids.iter().enumerate() {
        if i % 2 == 1 {
            maxes.push((u.clone(), [0i128, 500, 3_000, 10_000, 1_000_000][i / 2 % 5]));
        }
    }
    change(MAX_SIZE_LOG, &|old| {
        let mut log = maxsize::parse(old);
        for (u, m) in &maxes {
            maxsize::set(&mut log, Uuid::parse(u).unwrap(), *m, now).unwrap();
        }
        maxsize::write(&log)
    });
    change(NUMCOPIES_LOG, &|old| {
        let mut log = numcopies::parse(old);
        numcopies::set(&mut log, 2, now).unwrap();
        numcopies::write(&log)
    });
    branch.commit("test setup").unwrap();

    // Keys with locations: sizes in the hundreds and thousands, so that
    // maxsizes bite.
    let mut keys = Vec::new();
    let mut present = String::new();
    for i in 0..30 {
        let size = [0u64, 1, 100, 250, 999, 1000, 1500, 2_000_000][i % 8];
        let ext = [".jpg", ".png", "", ".txt"][i % 4];
        let hex: String = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
        let key = match i % 10 {
            7 => format!("WORM-s{size}-m{i}--file{i}{ext}"),
            8 => format!("MD5E-s{size}--{}{ext}", &hex[..32]),
            9 => format!("SHA1-s{size}--{}", &hex[..40]),
            _ => format!("SHA256E-s{size}--{hex}{ext}"),
        };
        for u in &uuids {
            if rng.next_u64() % 3 == 0 {
                present.push_str(&format!("{key} {u} 1\n"));
            }
        }
        keys.push(key);
    }
    keys.push(
        "SHA256E-s5--0000000000000000000000000000000000000000000000000000000000000000".into(),
    );
    keys.push("URL--http&c%%example.com%x".into());
    setpresentkey(&dir, &present);
    // git-annex commits its journal on its first run and says so; have
    // that happen before the comparisons.
    run(
        &dir,
        Path::new("git"),
        &["annex", "matchexpression", "anything"],
    );
    World {
        dir,
        _tmp: tmp,
        uuids,
        groups,
        keys,
    }
}

/// One question: an expression and what it is asked about.
#[derive(Debug, Clone)]
struct Case {
    expr: String,
    file: Option<String>,
    key: Option<usize>,
    size: Option<String>,
    here: usize,
    explain: bool,
    rebalance: bool,
}

fn term(nodes: usize) -> BoxedStrategy<String> {
    let groups = prop::sample::select(vec!["nodes", "backup", "archive", "client", "g2", "none"]);
    let num = -1i64..5;
    prop_oneof![
        Just("anything".to_string()),
        Just("nothing".to_string()),
        Just("present".to_string()),
        Just("securehash".to_string()),
        Just("standard".to_string()),
        Just("groupwanted".to_string()),
        Just("inpreferreddir".to_string()),
        Just("unused".to_string()),
        prop::sample::select(GLOBS).prop_map(|g| format!("include={g}")),
        prop::sample::select(GLOBS).prop_map(|g| format!("exclude={g}")),
        prop::sample::select(SIZES).prop_map(|s| format!("largerthan={}", s.replace(' ', ""))),
        prop::sample::select(SIZES).prop_map(|s| format!("smallerthan={}", s.replace(' ', ""))),
        num.clone().prop_map(|n| format!("copies={n}")),
        (
            prop::sample::select(vec![
                "trusted",
                "untrusted",
                "semitrusted+",
                "dead",
                "trusted+"
            ]),
            0i64..4
        )
            .prop_map(|(t, n)| format!("copies={t}:{n}")),
        (groups.clone(), 0i64..4).prop_map(|(g, n)| format!("copies={g}:{n}")),
        (-1i64..3).prop_map(|n| format!("lackingcopies={n}")),
        (-1i64..3).prop_map(|n| format!("approxlackingcopies={n}")),
        prop::sample::select(vec!["SHA256E", "WORM", "MD5E", "SHA1", "sha256e"])
            .prop_map(|b| format!("inbackend={b}")),
        groups.clone().prop_map(|g| format!("inallgroup={g}")),
        groups.clone().prop_map(|g| format!("onlyingroup={g}")),
        (
            prop::sample::select(vec![
                "balanced",
                "fullybalanced",
                "sizebalanced",
                "fullysizebalanced"
            ]),
            groups,
            prop::option::of(0i64..(nodes as i64 + 2)),
        )
            .prop_map(|(t, g, n)| match n {
                Some(n) => format!("{t}={g}:{n}"),
                None => format!("{t}={g}"),
            }),
        prop::sample::select(vec![
            "bogus",
            "copies=x",
            "largerthan=xyz",
            "balanced=a:b:c"
        ])
        .prop_map(String::from),
    ]
    .boxed()
}

fn expression(nodes: usize) -> impl Strategy<Value = String> {
    let leaf = term(nodes);
    let tree = leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("( {a}")),
            inner.prop_map(|a| format!("{a} ) and")),
        ]
    });
    tree
}

fn case(world: &World) -> impl Strategy<Value = Case> {
    let nodes = world.uuids.len() - 1;
    (
        expression(nodes),
        prop::option::weighted(0.8, prop::sample::select(FILES).prop_map(String::from)),
        prop::option::weighted(0.85, 0..world.keys.len()),
        prop::option::weighted(0.3, prop::sample::select(SIZES).prop_map(String::from)),
        0..world.uuids.len().min(6),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(expr, file, key, size, here, explain, rebalance)| Case {
            expr,
            file,
            key,
            size,
            here,
            explain,
            rebalance,
        })
}

fn args_of<'a>(world: &'a World, c: &'a Case) -> Vec<&'a str> {
    let mut args = vec!["matchexpression"];
    if c.explain {
        args.push("--explain");
    }
    if c.rebalance {
        args.push("--rebalance");
    }
    args.push(&c.expr);
    if let Some(f) = &c.file {
        args.extend(["--file", f]);
    }
    if let Some(k) = c.key {
        args.extend(["--key", &world.keys[k]]);
    }
    if let Some(s) = &c.size {
        args.extend(["--size", s]);
    }
    args
}

fn run(dir: &Path, program: &Path, args: &[&str]) -> Output {
    output(&mut command(dir, program, args))
}

fn check(world: &World, c: &Case) -> Result<(), TestCaseError> {
    git(&world.dir, &["config", "annex.uuid", &world.uuids[c.here]]);
    let args = args_of(world, c);
    let mut theirs_args = vec!["annex"];
    theirs_args.extend(&args);
    let theirs = run(&world.dir, Path::new("git"), &theirs_args);
    let ours = run(&world.dir, &annex_bin(), &args);
    let code = |o: &Output| o.status.code();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    prop_assert_eq!(
        code(&theirs),
        code(&ours),
        "exit codes differ for {:?}\n git-annex: {}{}\n annex: {}{}",
        args,
        text(&theirs.stdout),
        text(&theirs.stderr),
        text(&ours.stdout),
        text(&ours.stderr)
    );
    // git-annex says when it commits its journal or sums up repository
    // sizes; that is not an answer.
    let theirs_out: String = text(&theirs.stdout)
        .lines()
        .filter(|l| !(l.starts_with('(') && l.ends_with("...)")))
        .map(|l| format!("{l}\n"))
        .collect();
    prop_assert_eq!(
        theirs_out,
        text(&ours.stdout),
        "stdout differs for {:?}",
        args
    );
    // Whenever either fails (no match, an expression that cannot be
    // matched, an option that does not parse), both say the same; the
    // usage that follows a refused option is each program's own.
    if !theirs.status.success() || !ours.status.success() {
        let (theirs_err, ours_err) = (text(&theirs.stderr), text(&ours.stderr));
        prop_assert_eq!(
            message(&theirs_err),
            message(&ours_err),
            "messages differ for {:?}",
            args
        );
    }
    Ok(())
}

/// Standard error without the usage that follows a refused option.
fn message(stderr: &str) -> &str {
    stderr.split("\n\nUsage:").next().unwrap_or(stderr)
}

fn cases() -> u32 {
    std::env::var("MATCHEXPRESSION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
}

fn differential(seed: u64, nodes: usize) {
    let world = new_world(seed, nodes);
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let result = runner.run(&case(&world), |c| check(&world, &c));
    if let Err(e) = result {
        panic!("{e}");
    }
    let _ = &world.groups;
}

#[test]
fn agrees_with_one_other_repository() {
    differential(1, 1);
}

#[test]
fn agrees_with_three_nodes() {
    differential(3, 3);
}

#[test]
fn agrees_with_seven_nodes() {
    differential(7, 7);
}

#[test]
fn agrees_with_twenty_nodes() {
    differential(20, 20);
}
