//! Preferred content decisions per second, on one core, over 1,000,000
//! keys whose locations are held in memory (a `MemoryKeys`) and spread
//! over 10 repositories:
//!
//! - `balanced=g:2` with all 10 repositories in group `g`, some with a
//!   maxsize and a recorded size, evaluated for one repository per key (the
//!   repository rotates with the key);
//! - `include=*.jpg and (largerthan=1mb or copies=backup:2)` with four
//!   repositories in group `backup`;
//! - `standard` for a repository in group `archive`.
//!
//! Each criterion iteration is one decision, for the next of the 1,000,000
//! keys. For a plain rate per expression, one line each (the best of three
//! passes over all the keys, in the thread's CPU time), and the rate of the
//! location lookups alone for comparison:
//!
//!     cargo bench -p annex-benches --bench preferred -- --rates [NAME]
//!
//! (NAME: only the expressions whose name holds it, as criterion's filter.)
//!
//! A decision reads the key's locations once, from a hash table of a
//! million keys: that lookup alone is a large part of each decision here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use annex_preferred::{Decider, Facts, KeyInfo, LiveSizes, MemoryKeys, Policy, Settings, Subject};
use annex_protocol::{Key, Uuid};
use criterion::{black_box, Criterion, Throughput};

const KEYS: usize = 1_000_000;
const REPOS: usize = 10;

/// SplitMix64: a fixed, well-mixed sequence from a counter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn uuid(i: usize) -> Uuid {
    Uuid::parse(&format!("5eed{i:04x}-0a0b-4c0d-8e0f-{i:012x}")).unwrap()
}

/// The keys, their files and their locations, and the repositories.
struct World {
    repos: Vec<Uuid>,
    keys: Vec<Key>,
    files: Vec<String>,
    memory: MemoryKeys,
    /// The same locations by key index, for callers that have them.
    locs: Vec<Vec<Uuid>>,
    facts: Facts,
    sizes: LiveSizes,
}

fn world() -> World {
    let repos: Vec<Uuid> = (0..REPOS).map(uuid).collect();
    let mut keys = Vec::with_capacity(KEYS);
    let mut files = Vec::with_capacity(KEYS);
    let mut memory = MemoryKeys::default();
    memory.locations.reserve(KEYS);
    let mut all_locs = Vec::with_capacity(KEYS);
    for i in 0..KEYS as u64 {
        let h = mix(i);
        // 1 kB to 16 MB, a third of them over 1 MB.
        let size = (1000u64 << (h % 15)) | ((h >> 8) % 1000);
        let hex: String = (0..4)
            .map(|j| format!("{:016x}", mix(i * 4 + j + (1 << 40))))
            .collect();
        let ext = if h % 3 == 0 { "png" } else { "jpg" };
        let key = Key::parse(&format!("SHA256E-s{size}--{hex}.{ext}")).unwrap();
        files.push(format!(
            "dir{}/sub{}/name{i}.{ext}",
            (h >> 16) % 100,
            (h >> 24) % 10
        ));
        // One to three distinct repositories.
        let first = (h >> 32) as usize % REPOS;
        let count = 1 + (h >> 40) as usize % 3;
        let locs: Vec<Uuid> = (0..count)
            .map(|j| repos[(first + 3 * j) % REPOS].clone())
            .collect();
        all_locs.push(locs.clone());
        memory.locations.insert(key.clone(), locs);
        keys.push(key);
    }

    let mut groups: BTreeMap<Uuid, BTreeSet<String>> = BTreeMap::new();
    for (i, u) in repos.iter().enumerate() {
        let mut gs = BTreeSet::from(["g".to_owned()]);
        match i {
            0..=3 => gs.insert("backup".to_owned()),
            5 | 6 => gs.insert("archive".to_owned()),
            7 => gs.insert("smallarchive".to_owned()),
            _ => false,
        };
        groups.insert(u.clone(), gs);
    }
    let mut facts = Facts::default();
    facts.set_groups(groups);
    facts.numcopies = Some(2);
    facts.known = repos.iter().cloned().collect();
    // Repositories 0 to 4 have a maxsize of 1 TB; repository 0 has room
    // for keys of up to 5 MB only, so it is no candidate for the larger.
    const TB: i128 = 1_000_000_000_000;
    let mut base = HashMap::new();
    for (i, u) in repos.iter().enumerate() {
        if i < 5 {
            facts.maxsizes.insert(u.clone(), TB);
        }
        let used = if i == 0 { TB - 5_000_000 } else { TB / 2 };
        base.insert(u.clone(), used);
    }
    World {
        repos,
        keys,
        files,
        memory,
        locs: all_locs,
        facts,
        sizes: LiveSizes::new(base),
    }
}

/// The three cases: a name, the policy for each key index, and whether the
/// decision reads sizes.
struct Case {
    name: &'static str,
    policies: Vec<Policy>,
    rotate: bool,
}

fn cases(w: &World) -> Vec<Case> {
    let compile = |u: &Uuid, e: &str| {
        let p = Policy::compile(&w.facts, u, e, "preferred content");
        assert!(p.unreadable().is_none(), "{e}: {:?}", p.unreadable());
        p
    };
    vec![
        Case {
            name: "balanced=g:2",
            policies: w.repos.iter().map(|u| compile(u, "balanced=g:2")).collect(),
            rotate: true,
        },
        Case {
            name: "include=*.jpg and (largerthan=1mb or copies=backup:2)",
            policies: vec![compile(
                &w.repos[8],
                "include=*.jpg and (largerthan=1mb or copies=backup:2)",
            )],
            rotate: false,
        },
        Case {
            name: "standard (archive)",
            policies: vec![compile(&w.repos[5], "standard")],
            rotate: false,
        },
    ]
}

impl Case {
    fn policy(&self, i: usize) -> &Policy {
        if self.rotate {
            &self.policies[i % self.policies.len()]
        } else {
            &self.policies[0]
        }
    }
}

/// One decision for key `i`; whether it wants the key. The reservation a
/// balanced decision makes is given up at once, so sizes stay as recorded.
fn decide(d: &Decider<'_>, w: &World, case: &Case, none: &HashSet<Uuid>, i: usize) -> bool {
    let subject = Subject::key(&w.keys[i], Some(&w.files[i]));
    d.evaluate(case.policy(i), &subject, none, false)
        .unwrap()
        .matches
}

/// [`decide`] with the key's locations given by the caller, as a gateway
/// that has just read them or a simulation passes them.
fn decide_given(d: &Decider<'_>, w: &World, case: &Case, none: &HashSet<Uuid>, i: usize) -> bool {
    let subject = Subject::key(&w.keys[i], Some(&w.files[i])).with_locations(&w.locs[i]);
    d.evaluate(case.policy(i), &subject, none, false)
        .unwrap()
        .matches
}

fn decider<'a>(w: &'a World, settings: &'a Settings) -> Decider<'a> {
    Decider {
        facts: &w.facts,
        keys: &w.memory,
        sizes: Some(&w.sizes),
        settings,
    }
}

fn criterion_benches(w: &World, c: &mut Criterion) {
    let settings = Settings::default();
    let d = decider(w, &settings);
    let none = HashSet::new();
    let mut g = c.benchmark_group("preferred");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for case in cases(w) {
        let mut i = 0;
        g.bench_function(case.name, |b| {
            b.iter(|| {
                i = (i + 1) % KEYS;
                black_box(decide(&d, w, &case, &none, i))
            })
        });
    }
    g.finish();
}

/// One pass over every key per expression whose name holds `filter`, best
/// of `passes`, timed in this thread's CPU time (other work on the machine
/// slows a pass down less than it lengthens it); prints each rate on a line
/// of its own, and for comparison the rate of the location lookups alone.
fn rates(w: &World, passes: usize, filter: &str) {
    let settings = Settings::default();
    let d = decider(w, &settings);
    let none = HashSet::new();
    let best_of = |f: &mut dyn FnMut() -> usize| {
        let mut best = Duration::MAX;
        let mut n = 0;
        for _ in 0..passes {
            let start = cpu_time();
            n = f();
            best = best.min(cpu_time() - start);
        }
        (KEYS as f64 / best.as_secs_f64(), n)
    };
    for case in cases(w).into_iter().filter(|c| c.name.contains(filter)) {
        let (rate, wanted) = best_of(&mut || {
            (0..KEYS)
                .filter(|&i| decide(&d, w, &case, &none, i))
                .count()
        });
        println!(
            "{}: {rate:.0} decisions/s ({wanted} of {KEYS} keys wanted)",
            case.name
        );
        let (rate, wanted_given) = best_of(&mut || {
            (0..KEYS)
                .filter(|&i| decide_given(&d, w, &case, &none, i))
                .count()
        });
        assert_eq!(wanted, wanted_given, "given locations decide the same");
        println!("{} (locations given): {rate:.0} decisions/s", case.name);
    }
    if filter.is_empty() {
        let (rate, _) = best_of(&mut || {
            w.keys
                .iter()
                .map(|k| w.memory.locations(k).map_or(0, |l| l.len()))
                .sum()
        });
        println!("(for comparison) MemoryKeys::locations alone: {rate:.0} lookups/s");
    }
}

/// The CPU time this thread has used.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--rates");
    let filter = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("", String::as_str);
    let start = Instant::now();
    let w = world();
    eprintln!(
        "{} keys over {} repositories made in {:.1?}",
        w.keys.len(),
        w.repos.len(),
        start.elapsed()
    );
    if quick {
        rates(&w, 3, filter);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&w, &mut c);
    c.final_summary();
}
