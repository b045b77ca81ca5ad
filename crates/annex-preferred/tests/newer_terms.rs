//! The preferred content terms of git-annex releases newer than
//! 10.20250416, as their documentation and source define them:
//! `balanced=GROUP:lackingcopies` (and the rest of the balanced family
//! with it; 10.20250520) and `url=GLOB` (10.20250721).

use std::collections::{BTreeMap, BTreeSet};

use annex_preferred::{Decider, Facts, MemoryKeys, Policies, Settings, Wants};
use annex_types::{Key, Uuid};

fn u(i: usize) -> Uuid {
    Uuid::parse(&format!("00000000-0000-4000-8000-{i:012}")).unwrap()
}

fn key(i: usize) -> Key {
    Key::parse(&format!("SHA256E-s100--{:064x}.bin", i)).unwrap()
}

/// Nodes 0, 1 and 2 in group "nodes"; 5, 6 and 7 outside it.
fn facts(expr: &str, numcopies: u64) -> Facts {
    let mut facts = Facts::default();
    let groups: BTreeMap<Uuid, BTreeSet<String>> = (0..3)
        .map(|i| (u(i), ["nodes".to_string()].into_iter().collect()))
        .collect();
    facts.set_groups(groups);
    for i in 0..3 {
        facts.preferred.insert(u(i), expr.into());
    }
    facts.numcopies = Some(numcopies);
    facts
}

/// Which of nodes 0..3 want each of `keys` (located as `keys` says).
fn wanted(facts: &Facts, keys: &MemoryKeys, ks: &[Key]) -> Vec<Vec<bool>> {
    let policies = Policies::compile(facts);
    assert!(policies.warnings().is_empty(), "{:?}", policies.warnings());
    let settings = Settings::default();
    let wants = Wants {
        decider: Decider {
            facts,
            keys,
            sizes: None,
            settings: &settings,
        },
        policies: &policies,
    };
    ks.iter()
        .map(|k| {
            (0..3)
                .map(|n| {
                    wants
                        .want_get(&u(n), k, Some("f.bin"), false)
                        .unwrap()
                        .matches
                })
                .collect()
        })
        .collect()
}

#[test]
fn lackingcopies_balances_over_as_many_as_numcopies_lacks() {
    let ks: Vec<Key> = (0..60).map(key).collect();
    for (others, numcopies, same_as) in [(1, 3, 2), (0, 2, 2), (0, 1, 1), (2, 3, 1)] {
        let mut keys = MemoryKeys::default();
        for k in &ks {
            keys.locations
                .insert(k.clone(), (5..5 + others).map(u).collect());
        }
        let lacking = wanted(
            &facts("balanced=nodes:lackingcopies", numcopies),
            &keys,
            &ks,
        );
        let fixed = wanted(
            &facts(&format!("balanced=nodes:{same_as}"), numcopies),
            &keys,
            &ks,
        );
        assert_eq!(
            lacking, fixed,
            "{others} other copies, numcopies {numcopies}"
        );
        for w in &lacking {
            assert_eq!(w.iter().filter(|b| **b).count(), same_as);
        }
        let fully = wanted(
            &facts("fullybalanced=nodes:lackingcopies", numcopies),
            &keys,
            &ks,
        );
        assert_eq!(fully, fixed);
    }
    // Copies enough already: no node of the group wants the key, unless
    // it has it.
    let mut keys = MemoryKeys::default();
    for k in &ks {
        keys.locations.insert(k.clone(), vec![u(5), u(6)]);
    }
    let w = wanted(&facts("balanced=nodes:lackingcopies", 2), &keys, &ks);
    assert!(w.iter().flatten().all(|b| !b));
    keys.locations.insert(ks[0].clone(), vec![u(5), u(6), u(1)]);
    let w = wanted(&facts("balanced=nodes:lackingcopies", 2), &keys, &ks);
    assert_eq!(w[0], vec![false, true, false], "present stays wanted");
}

#[test]
fn url_matches_the_urls_the_web_log_records() {
    let ks: Vec<Key> = (0..4).map(key).collect();
    let mut keys = MemoryKeys::default();
    keys.urls.insert(
        ks[0].clone(),
        vec!["https://data.example.org/a/b.nii".into()],
    );
    keys.urls.insert(
        ks[1].clone(),
        vec!["yt:https://video.example.org/watch".into()],
    );
    keys.urls
        .insert(ks[2].clone(), vec![":s3://bucket/KEY".into()]);
    let any_node = |expr: &str| -> Vec<bool> {
        wanted(&facts(expr, 1), &keys, &ks)
            .into_iter()
            .map(|w| w[0])
            .collect()
    };
    assert_eq!(
        any_node("url=https://data.example.org/*"),
        [true, false, false, false]
    );
    // The downloader's mark is not part of the URL matched.
    assert_eq!(any_node("url=https://video.*"), [false, true, false, false]);
    assert_eq!(any_node("url=s3://*"), [false, false, true, false]);
    assert_eq!(any_node("url=*"), [true, true, true, false]);
    // Case-sensitive, and `*` crosses `/`.
    assert_eq!(any_node("url=HTTPS://*"), [false; 4]);
    assert_eq!(any_node("url=*.nii"), [true, false, false, false]);
    assert_eq!(any_node("not url=*"), [false, false, false, true]);
}
