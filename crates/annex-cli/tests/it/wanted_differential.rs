//! Repositories' whole preferred content decisions, ours against
//! git-annex's: `annex placement` against `git annex find --want-get-by`
//! and `--want-drop-by` for every repository, over generated
//! configurations (groups, standard groups, groupwanted, required content,
//! trust, numcopies, and expressions git-annex cannot read), with the same
//! annexed files and location logs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use annex_branch::logs::paths::{
    GROUP_LOG, GROUP_PREFERRED_CONTENT_LOG, NUMCOPIES_LOG, PREFERRED_CONTENT_LOG,
    REQUIRED_CONTENT_LOG, TRUST_LOG, UUID_LOG,
};
use annex_branch::logs::trust::TrustLevel;
use annex_branch::logs::{group, numcopies, preferred_content, trust, uuid_log};
use annex_branch::{Branch, VectorClock};
use annex_protocol::Uuid;
use annex_test_support::{command, git, run_ok, setpresentkey, PseudoRandom};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn annex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_annex"))
}

const FILES: &[&str] = &[
    "a.jpg",
    "b.png",
    "notes.txt",
    "archive/old.jpg",
    "archive/sub/older.png",
    "x/archive/y.jpg",
    "public/pub.jpg",
    "x/public/p.png",
    "public/deep/q.jpg",
    "docs/manual.pdf",
    "docs/sub/img.jpg",
    "big.iso",
];

const GROUPS: &[&str] = &[
    "client",
    "transfer",
    "backup",
    "incrementalbackup",
    "smallarchive",
    "archive",
    "source",
    "manual",
    "public",
    "unwanted",
    "nodes",
    "g2",
];

struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    uuids: Vec<String>,
}

fn new_world(seed: u64, others: usize) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    git(tmp.path(), &["init", "-q", "repo"]);
    git(&dir, &["config", "user.name", "t"]);
    git(&dir, &["config", "user.email", "t@example.invalid"]);
    git(&dir, &["annex", "init", "-q", "here"]);
    let here = git(&dir, &["config", "annex.uuid"]).trim().to_string();
    let mut rng = PseudoRandom::new(seed);
    let mut uuids = vec![here];
    for i in 0..others {
        uuids.push(format!(
            "{:08x}-0000-4000-8000-{:012x}",
            rng.next_u64() as u32,
            i
        ));
    }
    let branch = Branch::open(&dir).unwrap();
    branch
        .change(UUID_LOG, |old| {
            let mut log = uuid_log::parse(old);
            for (i, u) in uuids.iter().enumerate().skip(1) {
                uuid_log::describe(
                    &mut log,
                    Uuid::parse(u).unwrap(),
                    &format!("repo{i}"),
                    VectorClock::now(),
                )
                .unwrap();
            }
            Some(uuid_log::write(&log))
        })
        .unwrap();
    for (i, f) in FILES.iter().enumerate() {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("content of {f} {seed}").repeat(i * 40 + 1)).unwrap();
    }
    git(&dir, &["annex", "add", "--quiet", "."]);
    git(&dir, &["commit", "-q", "-m", "files"]);
    let mut present = String::new();
    for f in FILES {
        let key = git(&dir, &["annex", "lookupkey", f]).trim().to_string();
        for u in uuids.iter().skip(1) {
            if rng.next_u64() % 3 == 0 {
                present.push_str(&format!("{key} {u} 1\n"));
            }
        }
    }
    setpresentkey(&dir, &present);
    World {
        _tmp: tmp,
        dir,
        uuids,
    }
}

/// One configuration of every repository.
#[derive(Debug, Clone)]
struct Setup {
    groups: Vec<Vec<&'static str>>,
    wanted: Vec<Option<String>>,
    required: Vec<Option<String>>,
    group_wanted: Vec<(&'static str, String)>,
    trust: Vec<u8>,
    numcopies: u64,
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("standard".to_string()),
        Just("groupwanted".to_string()),
        Just("present".to_string()),
        Just("anything".to_string()),
        Just("include=*.jpg".to_string()),
        Just("exclude=archive/*".to_string()),
        Just("largerthan=1kb".to_string()),
        Just("copies=2".to_string()),
        Just("copies=backup:1".to_string()),
        Just("lackingcopies=1".to_string()),
        Just("approxlackingcopies=1".to_string()),
        Just("inallgroup=client".to_string()),
        Just("onlyingroup=nodes".to_string()),
        Just("inpreferreddir".to_string()),
        Just("balanced=nodes".to_string()),
        Just("balanced=nodes:2".to_string()),
        Just("fullybalanced=g2:2".to_string()),
        Just("securehash".to_string()),
        Just("bogus=1".to_string()),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or {b}")),
            inner.prop_map(|a| format!("not {a}")),
        ]
    })
}

fn setup(n: usize) -> impl Strategy<Value = Setup> {
    (
        prop::collection::vec(prop::collection::vec(prop::sample::select(GROUPS), 0..3), n),
        prop::collection::vec(prop::option::weighted(0.8, expr()), n),
        prop::collection::vec(prop::option::weighted(0.2, expr()), n),
        prop::collection::vec(
            (
                prop::sample::select(vec!["nodes", "g2", "client", "archive"]),
                expr(),
            ),
            0..3,
        ),
        prop::collection::vec(0u8..6, n),
        1u64..4,
    )
        .prop_map(
            |(groups, wanted, required, group_wanted, trust, numcopies)| Setup {
                groups,
                wanted,
                required,
                group_wanted,
                trust,
                numcopies,
            },
        )
}

fn apply(world: &World, s: &Setup) {
    let branch = Branch::open(&world.dir).unwrap();
    let now = VectorClock::now();
    let uuid = |i: usize| Uuid::parse(&world.uuids[i]).unwrap();
    branch
        .change(GROUP_LOG, |old| {
            let mut log = group::parse(old);
            for (i, gs) in s.groups.iter().enumerate() {
                group::change(
                    &mut log,
                    uuid(i),
                    |set| {
                        set.clear();
                        set.extend(gs.iter().map(|g| g.to_string()));
                    },
                    now,
                )
                .unwrap();
            }
            Some(group::write(&log))
        })
        .unwrap();
    for (path, values) in [
        (PREFERRED_CONTENT_LOG, &s.wanted),
        (REQUIRED_CONTENT_LOG, &s.required),
    ] {
        branch
            .change(path, |old| {
                let mut log = preferred_content::parse(old);
                for (i, v) in values.iter().enumerate() {
                    // An empty expression is git-annex's "not configured".
                    let e = v.clone().unwrap_or_default();
                    preferred_content::set(&mut log, uuid(i), &e, now).unwrap();
                }
                Some(preferred_content::write(&log))
            })
            .unwrap();
    }
    branch
        .change(GROUP_PREFERRED_CONTENT_LOG, |old| {
            let mut log = preferred_content::parse_group(old);
            for g in ["nodes", "g2", "client", "archive"] {
                let e = s
                    .group_wanted
                    .iter()
                    .rev()
                    .find(|(gg, _)| *gg == g)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_default();
                preferred_content::set_group(&mut log, g, &e, now).unwrap();
            }
            Some(preferred_content::write_group(&log))
        })
        .unwrap();
    branch
        .change(TRUST_LOG, |old| {
            let mut log = trust::parse(old);
            for (i, t) in s.trust.iter().enumerate().skip(1) {
                let level = match t {
                    0 => TrustLevel::Untrusted,
                    1 => TrustLevel::Trusted,
                    2 => TrustLevel::Dead,
                    _ => TrustLevel::Semitrusted,
                };
                trust::set(&mut log, uuid(i), level, now).unwrap();
            }
            Some(trust::write(&log))
        })
        .unwrap();
    branch
        .change(NUMCOPIES_LOG, |old| {
            let mut log = numcopies::parse(old);
            numcopies::set(&mut log, s.numcopies, now).unwrap();
            Some(numcopies::write(&log))
        })
        .unwrap();
    branch.commit("setup").unwrap();
}

fn git_annex_find(dir: &Path, flag: &str, u: &str) -> BTreeSet<String> {
    let out = run_ok(&mut command(
        dir,
        "git",
        &[
            "annex",
            "find",
            &format!("{flag}={u}"),
            "--format=${file}\\n",
        ],
    ));
    out.lines()
        .filter(|l| !(l.starts_with('(') && l.ends_with("...)")))
        .map(String::from)
        .collect()
}

/// How often each answer came up, so that a run that only ever saw one
/// answer fails instead of passing without testing anything.
#[derive(Default)]
struct Seen {
    wants: [usize; 2],
    keeps: [usize; 2],
}

fn check(world: &World, s: &Setup, seen: &std::cell::RefCell<Seen>) -> Result<(), TestCaseError> {
    apply(world, s);
    let mut args = vec!["placement", "--json"];
    args.extend(FILES);
    let out = run_ok(&mut command(&world.dir, annex_bin(), &args));
    // file -> uuid -> (wants, keeps)
    let mut ours: BTreeMap<String, BTreeMap<String, (bool, bool)>> = BTreeMap::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let file = v["file"].as_str().unwrap().to_string();
        for r in v["repositories"].as_array().unwrap() {
            let u = r["uuid"].as_str().unwrap().to_string();
            // Not configured: git-annex's find takes "does not want".
            let wants = r["wants"].as_bool().unwrap_or(false);
            let keeps = r["keeps"].as_bool().unwrap_or(false);
            ours.entry(file.clone())
                .or_default()
                .insert(u, (wants, keeps));
        }
    }
    for u in &world.uuids {
        let get = git_annex_find(&world.dir, "--want-get-by", u);
        let drop = git_annex_find(&world.dir, "--want-drop-by", u);
        for f in FILES {
            let (wants, keeps) = ours[*f][u];
            seen.borrow_mut().wants[usize::from(wants)] += 1;
            seen.borrow_mut().keeps[usize::from(keeps)] += 1;
            prop_assert_eq!(
                wants,
                get.contains(*f),
                "want-get-by {} of {} disagrees with {:?}",
                u,
                f,
                s
            );
            prop_assert_eq!(
                !keeps,
                drop.contains(*f),
                "want-drop-by {} of {} disagrees with {:?}",
                u,
                f,
                s
            );
        }
    }
    Ok(())
}

fn differential(seed: u64, others: usize, cases: u32) {
    let world = new_world(seed, others);
    let cases = std::env::var("WANTED_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 100,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    seed_bytes[8] = 0x77;
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let seen = std::cell::RefCell::new(Seen::default());
    if let Err(e) = runner.run(&setup(others + 1), |s| check(&world, &s, &seen)) {
        panic!("{e}");
    }
    let seen = seen.into_inner();
    eprintln!("wants {:?} keeps {:?}", seen.wants, seen.keeps);
    assert!(seen.wants.iter().chain(&seen.keeps).all(|&n| n >= 10));
}

#[test]
fn repositories_want_what_git_annex_says_they_want() {
    differential(11, 4, 8);
}

#[test]
fn more_repositories_want_what_git_annex_says_they_want() {
    differential(12, 7, 6);
}
