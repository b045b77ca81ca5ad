//! Decisions over in-memory facts: in-flight sizes keep concurrent
//! uploads from overfilling a node, unreadable expressions fall back to
//! `present`, and defaults apply where nothing is configured.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use annex_preferred::{Decider, Facts, LiveSizes, MemoryKeys, Policies, Settings, Wants};
use annex_types::{Key, Uuid};

fn u(i: usize) -> Uuid {
    Uuid::parse(&format!("00000000-0000-4000-8000-{i:012}")).unwrap()
}

fn key(i: usize, size: u64) -> Key {
    Key::parse(&format!("SHA256E-s{size}--{:064x}.bin", i)).unwrap()
}

fn group_of(nodes: usize) -> BTreeMap<Uuid, BTreeSet<String>> {
    (0..nodes)
        .map(|i| (u(i), ["nodes".to_string()].into_iter().collect()))
        .collect()
}

#[test]
fn reservations_keep_concurrent_uploads_within_maxsize() {
    let mut facts = Facts::default();
    facts.set_groups(group_of(3));
    for i in 0..3 {
        facts.maxsizes.insert(u(i), 1000);
        facts.preferred.insert(u(i), "sizebalanced=nodes:1".into());
    }
    let policies = Policies::compile(&facts);
    let sizes = LiveSizes::new((0..3).map(|i| (u(i), 0i128)).collect());
    let keys = MemoryKeys::default();
    let settings = Settings::default();
    let facts = Arc::new(facts);
    // Eight uploads of 400 bytes decided at once, none finished yet: each
    // node has room for two.
    let reservations: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|k| {
                let (facts, policies, sizes, keys, settings) =
                    (&facts, &policies, &sizes, &keys, &settings);
                s.spawn(move || {
                    let wants = Wants {
                        decider: Decider {
                            facts,
                            keys,
                            sizes: Some(sizes),
                            settings,
                        },
                        policies,
                    };
                    let k = key(k, 400);
                    wants
                        .wanting((0..3).map(u).collect::<Vec<_>>().iter(), &k, None)
                        .unwrap()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut per_node: HashMap<Uuid, usize> = HashMap::new();
    for (node, v) in &reservations {
        assert!(v.reservation.is_some(), "a size-based want reserves");
        *per_node.entry(node.clone()).or_default() += 1;
    }
    assert_eq!(reservations.len(), 6, "{per_node:?}");
    assert!(per_node.values().all(|&n| n == 2), "{per_node:?}");
    for i in 0..3 {
        assert_eq!(sizes.size(&u(i)), Some(800));
    }
    // Giving the reservations up frees the space; finishing one keeps it.
    let mut it = reservations.into_iter();
    let (first, v) = it.next().unwrap();
    v.reservation.unwrap().finish();
    drop(it);
    let total: i128 = (0..3).map(|i| sizes.size(&u(i)).unwrap()).sum();
    assert_eq!(total, 400);
    assert_eq!(sizes.size(&first), Some(400));
}

#[test]
fn unreadable_expressions_keep_what_is_present() {
    let mut facts = Facts::default();
    facts.set_groups(group_of(2));
    facts
        .preferred
        .insert(u(0), "include=*.jpg and newterm=3".into());
    facts.preferred.insert(u(1), "anything".into());
    facts.required.insert(u(1), "copies=x".into());
    let policies = Policies::compile(&facts);
    let warnings = policies.warnings();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[0].2.contains("near \"newterm=3\""));
    let mut keys = MemoryKeys::default();
    let have = key(1, 10);
    let lack = key(2, 10);
    keys.locations.insert(have.clone(), vec![u(0), u(1)]);
    let settings = Settings::default();
    let wants = Wants {
        decider: Decider {
            facts: &facts,
            keys: &keys,
            sizes: None,
            settings: &settings,
        },
        policies: &policies,
    };
    for n in [0, 1] {
        assert!(
            !wants
                .want_get(&u(n), &lack, Some("a.jpg"), true)
                .unwrap()
                .matches
        );
        assert!(
            wants
                .want_get(&u(n), &have, Some("a.jpg"), false)
                .unwrap()
                .matches
        );
    }
    // Not configured: the caller's default.
    assert!(wants.want_get(&u(7), &lack, None, true).unwrap().matches);
    assert!(!wants.want_drop(&u(7), &lack, None, true).unwrap());
    assert!(!wants.required(&u(7), &lack, None).unwrap());
}

#[test]
fn one_compile_many_decisions() {
    let mut facts = Facts::default();
    facts.set_groups(group_of(10));
    facts
        .group_wanted
        .insert("nodes".into(), "balanced=nodes:2".into());
    for i in 0..10 {
        facts.preferred.insert(u(i), "groupwanted".into());
    }
    let policies = Policies::compile(&facts);
    let keys = MemoryKeys::default();
    let settings = Settings::default();
    let wants = Wants {
        decider: Decider {
            facts: &facts,
            keys: &keys,
            sizes: None,
            settings: &settings,
        },
        policies: &policies,
    };
    let nodes: Vec<Uuid> = (0..10).map(u).collect();
    let mut counts = vec![0usize; 10];
    for k in 0..2000 {
        let chosen = wants.wanting(nodes.iter(), &key(k, 1), None).unwrap();
        assert_eq!(chosen.len(), 2, "balanced=nodes:2 picks two");
        for (n, _) in chosen {
            counts[nodes.iter().position(|x| *x == n).unwrap()] += 1;
        }
    }
    // Spread: each node gets about a tenth of 4000 picks.
    assert!(
        counts.iter().all(|&c| (300..500).contains(&c)),
        "{counts:?}"
    );
}
