//! Replays the fuzz corpus of the expression parser
//! (fuzz/corpus/expression_parser/) through the entry point the fuzz
//! target calls, so every test run checks what the fuzzer found.
//!
//! The entry point, [`expression_parser`], lives here and the fuzz target
//! (fuzz/fuzz_targets/expression_parser.rs) includes this file, so both
//! check the same properties through annex-preferred's public API.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use annex_branch::logs::metadata::MetaData;
use annex_branch::logs::trust::TrustLevel;
use annex_preferred::{
    check_expression, Decider, Expansion, Expression, Facts, LiveSizes, MemoryKeys, Policies,
    Policy, Settings, Subject, SubjectKind,
};
use annex_types::{Key, Uuid};

#[cfg(test)]
#[test]
fn expression_parser_corpus() {
    annex_test_support::replay_fuzz_corpus("expression_parser", expression_parser);
}

/// Deeply nested expressions, on a thread with the 2 MiB stack that test
/// threads and tokio's worker threads get (a stack overflow aborts the
/// whole process): the longest accepted expressions, nested every way,
/// are parsed, compiled and evaluated; longer ones are refused.
#[cfg(test)]
#[test]
fn deep_nesting() {
    let max = annex_preferred::syntax::MAX_WORDS;
    let mut inputs = Vec::new();
    for n in [max / 2, max - 1, 5000] {
        inputs.push(format!("{}include=*{}", "(".repeat(n), ")".repeat(n)));
        inputs.push(format!("{}present", "not ".repeat(n)));
        inputs.push("anything and ".repeat(n / 2));
        inputs.push(format!("{}anything", "not ( ".repeat(n / 2)));
        inputs.push("( anything or ".repeat(n / 3));
    }
    for input in inputs {
        if input.split_whitespace().count() > max {
            assert!(check_expression(&input).is_err());
        }
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || expression_parser(input.as_bytes()))
            .unwrap()
            .join()
            .unwrap();
    }
}

fn uuid(name: &str) -> Uuid {
    Uuid::parse(&format!("{name:0>8}-0000-4000-8000-000000000000")).unwrap()
}

/// Six repositories: a client, an archive and a backup in group `nodes`
/// with a repository of group `mine` (whose group preferred content is the
/// input itself), an untrusted small archive and a dead public remote.
fn facts(input: &str) -> Facts {
    let groups: &[(&str, &[&str])] = &[
        ("a", &["client"]),
        ("b", &["archive", "nodes"]),
        ("c", &["backup", "nodes"]),
        ("d", &["mine", "nodes"]),
        ("e", &["smallarchive"]),
        ("f", &["public"]),
    ];
    let mut facts = Facts::default();
    facts.set_groups(
        groups
            .iter()
            .map(|(u, gs)| (uuid(u), gs.iter().map(|g| g.to_string()).collect()))
            .collect::<BTreeMap<Uuid, BTreeSet<String>>>(),
    );
    facts.known = groups.iter().map(|(u, _)| uuid(u)).collect();
    facts.trust.insert(uuid("e"), TrustLevel::Untrusted);
    facts.trust.insert(uuid("f"), TrustLevel::Dead);
    facts.numcopies = Some(2);
    facts.mincopies = Some(1);
    facts.maxsizes.insert(uuid("b"), 1_000_000_000);
    facts.maxsizes.insert(uuid("c"), 10);
    facts.maxsizes.insert(uuid("d"), 0);
    facts.preferreddirs.insert(uuid("f"), "pics".into());
    facts
        .group_wanted
        .insert("archive".into(), "standard and include=*".into());
    facts.group_wanted.insert("mine".into(), input.into());
    for u in ["a", "c", "d"] {
        facts.preferred.insert(uuid(u), input.into());
    }
    facts.required.insert(uuid("a"), input.into());
    facts
        .required
        .insert(uuid("c"), "copies=nodes:2 or groupwanted".into());
    facts
}

/// Feeds `data`, read as UTF-8 with invalid sequences replaced, to the
/// expression parser, then compiles it for every repository (as `present`
/// where git-annex would refuse it) and evaluates it for a key and a file:
/// as a file in the work tree, as values from the command line, as a key
/// alone and with nothing at all. Errors are allowed; panics are not, and neither is disagreement
/// between the ways of reading the same expression:
///
/// - `check_expression`, `Expression::parse`, and `Policy::compile_strict`
///   for a repository whose `standard` and `groupwanted` do not stand for
///   the input, refuse the same expressions with the same reasons;
/// - `Policy::compile` falls back to `present` exactly when the strict
///   compile fails;
/// - an expression with a negated `present` never matches;
/// - explaining a decision does not change it, and explains every
///   expression that has a term;
/// - sizes change only decisions whose expression depends on them.
pub fn expression_parser(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let input: &str = &input;
    let parsed = Expression::parse(input);
    match &parsed {
        Ok(e) => {
            assert_eq!(e.as_str(), input);
            assert_eq!(e.to_string(), input);
            let _ = (e.is_empty(), e.tree().ops().len());
        }
        Err(err) => {
            assert!(!err.failures.is_empty(), "a refusal says why");
            assert!(err.to_string().starts_with("Parse failure: "));
        }
    }
    assert_eq!(check_expression(input).is_ok(), parsed.is_ok());
    let failures = parsed.as_ref().err().map(|e| e.failures.clone());

    let facts = facts(input);
    let match_all = Policy::compile_strict(
        &facts,
        &uuid("a"),
        input,
        "provided expression",
        Expansion::MatchAll,
    );
    assert_eq!(
        match_all.as_ref().err().map(|e| &e.failures),
        failures.as_ref()
    );

    let mut policies = Vec::new();
    for u in &facts.known {
        let lenient = Policy::compile(&facts, u, input, "preferred content");
        assert_eq!(lenient.uuid(), u);
        let _ = (lenient.needs_sizes(), lenient.is_empty());
        // Compiling strictly is compiling again (regexes included, the
        // slowest part): for two repositories only, one of which has the
        // input as its group's preferred content.
        if [uuid("a"), uuid("d")].contains(u) {
            let strict = Policy::compile_strict(
                &facts,
                u,
                input,
                "preferred content",
                Expansion::Repository,
            );
            if !facts.in_group(u, "mine") {
                assert_eq!(
                    strict.as_ref().err().map(|e| &e.failures),
                    failures.as_ref(),
                    "{u}"
                );
            }
            assert_eq!(lenient.unreadable().is_some(), strict.is_err(), "{u}");
        }
        policies.push(lenient);
    }
    if let Ok(p) = match_all {
        policies.push(p);
    }
    // Preferred content combined with required content, and required
    // content alone.
    let all = Policies::compile(&facts);
    let _ = all.warnings();
    policies.extend(all.preferred(&uuid("a")).cloned());
    policies.extend(all.preferred(&uuid("c")).cloned());
    policies.extend(all.required(&uuid("a")).cloned());

    let key = Key::parse(
        "SHA256E-s1048576--9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.jpg",
    )
    .unwrap();
    let mut memory = MemoryKeys::default();
    memory.locations.insert(
        key.clone(),
        vec![uuid("a"), uuid("b"), uuid("e"), uuid("f")],
    );
    memory.metadata.insert(
        key.clone(),
        MetaData(BTreeMap::from([
            ("author".to_owned(), BTreeSet::from([b"alice".to_vec()])),
            ("year".to_owned(), BTreeSet::from([b"2024".to_vec()])),
        ])),
    );
    memory.here = Some(HashSet::from([key.clone()]));
    memory.unused.insert(key.clone());
    let sizes = LiveSizes::new(HashMap::from([
        (uuid("b"), 500_000_000),
        (uuid("c"), 0),
        (uuid("d"), 100),
    ]));
    let file = "photos/archive/pics/2024 été.jpg";
    let subjects = [
        Subject::key(&key, Some(file)),
        Subject {
            key: Some(&key),
            file: Some(file),
            size: Some(1_048_576),
            kind: SubjectKind::User,
            numcopies: Some(3),
            locations: None,
        },
        Subject {
            key: None,
            file: None,
            size: None,
            kind: SubjectKind::User,
            numcopies: None,
            locations: None,
        },
        Subject::key(&key, None),
        Subject {
            key: None,
            file: Some(file),
            size: None,
            kind: SubjectKind::File,
            numcopies: None,
            locations: None,
        },
    ];
    let not_present = HashSet::from([uuid("b")]);
    let plain = Settings {
        here: Some(uuid("a")),
        ..Settings::default()
    };
    let rebalance = Settings {
        rebalance: true,
        fully_balanced_threshold: 0.5,
        ..Settings::default()
    };
    let decider = |settings, sizes| Decider {
        facts: &facts,
        keys: &memory,
        sizes,
        settings,
    };
    let (with_sizes, without) = (decider(&plain, Some(&sizes)), decider(&plain, None));
    let rebalancing = decider(&rebalance, Some(&sizes));
    for policy in &policies {
        let stable = policy.unstable_negations().is_empty();
        for (i, subject) in subjects.iter().enumerate() {
            for gone in [&HashSet::new(), &not_present] {
                // Reservations are given up at once (dropped with the
                // verdicts), so each decision sees the sizes as they were.
                let quiet = with_sizes.evaluate(policy, subject, gone, false);
                if let Ok(v) = &quiet {
                    assert!(stable || !v.matches, "{input:?}");
                    assert!(v.explanation.is_none());
                }
                // Explaining is slower: for the file and the command line.
                if i < 2 && gone.is_empty() {
                    let explained = with_sizes.evaluate(policy, subject, gone, true);
                    match (&quiet, &explained) {
                        (Ok(q), Ok(e)) => {
                            assert_eq!(q.matches, e.matches, "{input:?}");
                            let text = e.explanation.as_deref().expect("asked for");
                            assert_eq!(text.is_empty(), policy.is_empty(), "{input:?}");
                        }
                        (Err(_), Err(_)) => {}
                        _ => panic!("explaining changed the outcome of {input:?}"),
                    }
                }
                if !policy.needs_sizes() {
                    let bare = without.evaluate(policy, subject, gone, false);
                    assert_eq!(
                        bare.map(|v| v.matches).ok(),
                        quiet.map(|v| v.matches).ok(),
                        "{input:?}"
                    );
                }
                if let Ok(v) = rebalancing.evaluate(policy, subject, gone, false) {
                    assert!(stable || !v.matches, "{input:?}");
                }
            }
        }
    }
}
