//! The sim file language, command by command, on simulations whose outcome
//! is fixed: each sim file checks itself with `present`/`notpresent`, and
//! the tests check that what should fail fails, with its line.

use annex_sim::{run, NoHost, Sim};

/// Failed expectations: line and message.
type Failures = Vec<(Option<usize>, String)>;

/// Runs a sim file; the failures' lines and messages, and the notes.
fn sim(text: &str) -> (Sim, Failures, Vec<String>) {
    let mut s = Sim::new(7);
    let mut host = NoHost::default();
    run(&mut s, text, &mut host).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let f = s
        .failures
        .iter()
        .map(|f| (f.line, f.message.clone()))
        .collect();
    (s, f, host.notes)
}

fn passes(text: &str) -> Sim {
    let (s, failures, _) = sim(text);
    assert!(failures.is_empty(), "{failures:?}\n{}", s.show());
    s
}

fn error(text: &str) -> String {
    let mut s = Sim::new(7);
    run(&mut s, text, &mut NoHost::default())
        .expect_err("the sim should not run")
        .to_string()
}

#[test]
fn sim_wanted_content_moves_and_unwanted_content_is_dropped() {
    passes(
        "# a comment\n-- another\n\ninit foo\ninit bar\nconnect foo <-> bar\n\
         wanted bar include=*.jpg\nadd x.jpg 1mb foo\nadd y.txt 2mb foo\n\
         stepstable 20\npresent bar x.jpg\nnotpresent foo x.jpg\n\
         present foo y.txt\nnotpresent bar y.txt\n",
    );
}

#[test]
fn sim_numcopies_keeps_copies_and_mincopies_needs_locked_ones() {
    // foo wants nothing but cannot drop below numcopies.
    passes(
        "init foo\ninit bar\ninit baz\nconnect foo <-> bar\nconnect foo <-> baz\n\
         numcopies 2\nwanted bar anything\nwanted baz exclude=*\nadd a 10kb foo\n\
         stepstable 50\npresent bar a\npresent foo a\nnotpresent baz a\n",
    );
    // A special remote's copy is not a locked copy: it counts for
    // numcopies, not for mincopies, so foo keeps its copy...
    passes(
        "init foo\ninitremote sp\nconnect foo -> sp\nwanted sp anything\n\
         mincopies 1\nnumcopies 1\nadd a 10kb foo\nstepstable 20\n\
         present sp a\npresent foo a\n",
    );
    // ... until a repository it can lock a copy in has one too.
    passes(
        "init foo\ninit bar\ninitremote sp\nconnect foo -> sp\nconnect foo <-> bar\n\
         wanted sp anything\nwanted bar include=a\nnumcopies 1\nadd a 10kb foo\n\
         add b 10kb foo\nstepstable 20\npresent sp a\npresent bar a\nnotpresent foo a\n\
         present sp b\npresent foo b\n",
    );
}

#[test]
fn sim_trust_groups_required_and_groupwanted() {
    passes(
        "init foo\ninit bar\ninit baz\nconnect foo <-> bar\nconnect foo <-> baz\n\
         group bar archive\nwanted bar standard\ngroup baz g\ngroupwanted g include=*.mp3\n\
         wanted baz groupwanted\nrequired foo include=*.keep\nnumcopies 1\n\
         add a.mp3 1mb foo\nadd b.keep 1mb foo\nadd c.bin 1mb foo\n\
         stepstable 50\npresent baz a.mp3\npresent foo b.keep\npresent bar c.bin\n\
         notpresent foo c.bin\n",
    );
    // An untrusted copy does not satisfy copies=2 ... but trusted does.
    passes(
        "init foo\ninit bar\nconnect foo <-> bar\ntrustlevel bar untrusted\n\
         wanted foo not copies=2\nwanted bar anything\nadd a 1kb foo\nstepstable 20\n\
         present foo a\npresent bar a\n",
    );
    passes(
        "init foo\ninit bar\ninit baz\nconnect foo <-> bar\ngroup baz g\nungroup baz g\n\
         group bar g\nwanted bar include=x and inallgroup=g\nadd x 1kb bar\nstepstable 5\n\
         present bar x\n",
    );
}

#[test]
fn sim_metadata_and_maxsize_and_balanced() {
    passes(
        "init foo\ninit bar\nconnect foo <-> bar\nwanted bar metadata=year=2025\n\
         wanted foo anything\nadd a 1kb foo\nadd b 1kb foo\nmetadata a year=2025\n\
         stepstable 10\npresent bar a\nnotpresent bar b\n",
    );
    // Two repositories share the files by balanced preferred content,
    // one copy each; maxsize keeps a full one out.
    let s = passes(
        "seed 3\ninit foo\ninit a\ninit b\nconnect foo -> a\nconnect foo -> b\n\
         group a g\ngroup b g\nwanted a balanced=g:1\nwanted b balanced=g:1\n\
         maxsize a 5mb\naddmulti 40 .f 100kb 200kb foo\nstepstable 500\n",
    );
    let rep = annex_sim::report::report(&s);
    let a = rep.repositories.iter().find(|r| r.name == "a").unwrap();
    let b = rep.repositories.iter().find(|r| r.name == "b").unwrap();
    assert_eq!(a.files + b.files, 40, "{rep:?}");
    assert!(a.bytes <= 5_000_000, "{rep:?}");
    assert!(a.files > 5 && b.files > 5, "{rep:?}");
    assert_eq!(rep.balanced_groups.len(), 1);
    assert!(rep.below_numcopies.is_empty() && rep.in_no_repository.is_empty());
}

#[test]
fn sim_actions_and_while() {
    passes(
        "init foo\ninit bar\nconnect foo <-> bar\nwanted bar anything\nadd a 1kb foo\n\
         action bar getwanted foo\nnotpresent bar a\n\
         action bar gitpull foo\naction bar getwanted foo\npresent bar a\npresent foo a\n\
         action foo dropunwanted\npresent foo a\n\
         action foo gitpull bar\naction foo dropunwanted\nnotpresent foo a\n",
    );
    passes(
        "init foo\ninit bar\nconnect foo <-> bar\nwanted bar anything\nwanted foo anything\n\
         add a 1kb foo\naction foo sendwanted bar\npresent bar a\n\
         wanted bar nothing\naction foo push bar\nnotpresent bar a\npresent foo a\n\
         add b 1kb bar\naction foo pull bar\npresent foo b\n\
         action foo sync bar\npresent foo a\npresent foo b\n",
    );
    passes(
        "init foo\ninit bar\ninit baz\nconnect foo <-> bar\nconnect baz -> foo\n\
         wanted bar anything\nwanted baz anything\naddmulti 5 .x 1kb 2kb foo\naction bar gitpull foo\naction baz gitpull foo\n\
         action bar getwanted foo while action baz getwanted foo\n\
         present bar 1.x\npresent baz 5.x\n",
    );
}

#[test]
fn sim_cluster_nodes_share_what_they_learn() {
    passes(
        "init foo\ninit bar\ninit node\nclusternode cn node\nconnect foo -> cn\n\
         connect bar -> cn\nwanted node anything\nadd a 1kb foo\n\
         action foo sendwanted cn\npresent node a\n\
         action bar dropunwantedfrom cn\npresent node a\n",
    );
}

#[test]
fn sim_connections_can_be_undone() {
    passes(
        "init foo\ninit bar\nconnect foo <-> bar\ndisconnect foo <-> bar\n\
         wanted bar anything\nadd a 1kb foo\nstepstable 5\nnotpresent bar a\n",
    );
}

#[test]
fn sim_random_expressions_are_repeatable() {
    let text = "seed 11\ninit foo\ninit bar\nconnect foo <-> bar\n\
                addmulti 10 .x 100kb 10mb foo\n\
                randomwanted bar largerthan=1MB include=*.x anything\n\
                randomrequired foo include=*.x anything\n\
                randomgroupwanted g anything\nstep 40\n";
    let (a, _, _) = sim(text);
    let (b, _, _) = sim(text);
    assert_eq!(a.show(), b.show());
    assert!(
        a.show().lines().any(|l| l.starts_with("present ")),
        "{}",
        a.show()
    );
}

#[test]
fn sim_failed_expectations_are_named_with_their_lines() {
    let (_, failures, notes) = sim(
        "init foo\ninit bar\nconnect foo <-> bar\nadd a 1kb foo\nstep 5\n\
         present bar a\nnotpresent foo a\npresent foo nosuch\n\
         wanted bar anything\nrebalance on\nrebalance off\nstepstable 0\n",
    );
    assert_eq!(
        failures,
        vec![
            (Some(6), "Expected a to be present in bar, but it is not.".into()),
            (Some(7), "Expected a not to be present in foo, but it is present.".into()),
            (
                Some(8),
                "Expected nosuch to be present in foo, but the simulation does not include that file."
                    .into()
            ),
            (Some(12), "Simulation failed to stabilize after 0 steps.".into()),
        ]
    );
    assert!(notes
        .iter()
        .any(|n| n == "Simulation has stabilized after 0 steps."));
}

#[test]
fn sim_bad_input_names_the_line_and_git_annexs_message() {
    assert_eq!(
        error("init foo\n\nfly away\n"),
        "line 3: Unable to parse sim command: \"fly away\""
    );
    assert_eq!(
        error("init foo\nadd x 1mb bar\n"),
        "line 2: No repository in the simulation is named \"bar\". Choose from: foo"
    );
    assert_eq!(
        error("init foo\nadd x 1zz foo\n"),
        "line 2: Unable to parse file size \"1zz\""
    );
    assert_eq!(
        error("init foo\nwanted foo include=*.x and bogus=1\n"),
        "line 2: Failed parsing \"include=*.x and bogus=1\": Parse failure: near \"bogus=1\""
    );
    assert_eq!(
        error("init foo\ninit foo\n"),
        "line 2: There is already a repository in the simulation named \"foo\"."
    );
    assert_eq!(
        error("initremote s\ninit foo\nconnect s -> foo\n"),
        "line 3: s is a special remote, and cannot connect to foo"
    );
    assert_eq!(
        error("init foo\ninit bar\naction foo getwanted bar\n"),
        "line 3: Repository foo does not have a remote \"bar\"."
    );
    assert_eq!(
        error("initremote s\naction s dropunwanted\n"),
        "line 2: s is a special remote, so git-annex cannot run on it."
    );
    assert_eq!(
        error("init foo\nmetadata nosuch a=b\n"),
        "line 2: Cannot set metadata of unknown file nosuch"
    );
    assert_eq!(
        error("init foo\nclusternode foo foo\n"),
        "line 2: There is already a repository in the simulation named \"foo\"."
    );
    // Nothing runs when a later line cannot be read.
    let mut s = Sim::new(1);
    assert!(run(&mut s, "init foo\nbogus\n", &mut NoHost::default()).is_err());
    assert_eq!(s.repo_names().count(), 0);
}

#[test]
fn sim_state_survives_saving() {
    let (s, _, _) = sim(
        "seed 5\ninit foo\ninit bar\nconnect foo <-> bar\nwanted bar anything\nadd a 1kb foo\n",
    );
    let mut t = Sim::load(&s.save().unwrap()).unwrap();
    let mut host = NoHost::default();
    run(&mut t, "step 5\npresent bar a\n", &mut host).unwrap();
    assert!(!t.failed(), "{:?}", t.failures);
    assert!(t.show().starts_with("seed 5\ninit foo\n"));
}

#[test]
fn sim_sizes_each_repository_sees_add_up() {
    let (s, _, _) = sim(
        "seed 9\ninit foo\ninit a\ninit b\nconnect foo <-> a\nconnect foo <-> b\n\
         connect a <-> b\ngroup a g\ngroup b g\nwanted a sizebalanced=g:1\n\
         wanted b sizebalanced=g:1\nmaxsize a 20mb\nmaxsize b 30mb\n\
         addmulti 30 .x 100kb 2mb foo\nstepstable 300\naction a sync b\n\
         action foo gitpull a\n",
    );
    for (_, r) in s.repo_names() {
        let st = s.state(r);
        let mut want = vec![0i128; st.sizes.len().max(3)];
        for (k, l) in st.locs.iter().enumerate() {
            for x in l.iter().filter(|x| x.2) {
                want[x.0 as usize] += i128::from(s.key(k as u32).size().unwrap());
            }
        }
        let mut have = st.sizes.clone();
        have.resize(want.len(), 0);
        assert_eq!(have, want, "sizes as {} sees them", st.name);
    }
}

/// Random lines made of the language's words, numbers, sizes, arrows and
/// junk: each is read and run (in a simulation that has repositories
/// and files to act on) without a panic, and whatever fails fails with a
/// message.
#[test]
fn sim_random_lines_never_panic() {
    let words = [
        "init",
        "initremote",
        "use",
        "connect",
        "disconnect",
        "addtree",
        "add",
        "addmulti",
        "step",
        "stepstable",
        "action",
        "seed",
        "present",
        "notpresent",
        "numcopies",
        "mincopies",
        "trustlevel",
        "wanted",
        "required",
        "groupwanted",
        "randomwanted",
        "randomrequired",
        "randomgroupwanted",
        "group",
        "ungroup",
        "metadata",
        "maxsize",
        "rebalance",
        "clusternode",
        "visit",
        "getwanted",
        "sendwanted",
        "dropunwanted",
        "dropunwantedfrom",
        "gitpush",
        "gitpull",
        "pull",
        "push",
        "sync",
        "while",
        "foo",
        "bar",
        "baz",
        "cn",
        "g",
        "->",
        "<-",
        "<->",
        "1",
        "0",
        "-3",
        "10mb",
        "1kb",
        "x",
        "f.jpg",
        "trusted",
        "dead",
        "on",
        "off",
        "include=*.jpg",
        "balanced=g:1",
        "sizebalanced=g:2",
        "copies=2",
        "not",
        "and",
        "or",
        "(",
        ")",
        "year=2025",
        "tag+=a",
        "present",
        "anything",
        "largerthan=1kb",
        "9999999999999999999999",
        "-",
        "",
        "#",
    ];
    let mut rng = annex_sim::rng::Rng::new(99);
    let (mut applied, mut refused) = (0, 0);
    for round in 0..200 {
        let mut s = Sim::new(round);
        let mut host = NoHost::default();
        run(
            &mut s,
            "init foo\ninit bar\ninitremote baz\nconnect foo <-> bar\nconnect foo -> baz\n\
             group bar g\nclusternode cn bar\nadd f.jpg 1kb foo\naddmulti 5 .x 1kb 2kb bar\n",
            &mut host,
        )
        .unwrap();
        for _ in 0..100 {
            let n = rng.range(1, 6) as usize;
            let line: Vec<&str> = (0..n)
                .map(|_| words[rng.range(0, words.len() as i128 - 1) as usize])
                .collect();
            let line = line.join(" ");
            if line.starts_with("visit") || line.starts_with("use") || line.starts_with("addtree") {
                continue;
            }
            if let Ok(cmd) = annex_sim::parse_line(&line) {
                // Huge counts would only take long; they are not bad input.
                if matches!(cmd, annex_sim::Command::AddMulti(n, ..) if n > 50) {
                    continue;
                }
                match s.apply(&cmd, &mut host) {
                    Ok(()) => applied += 1,
                    Err(e) => {
                        assert!(!e.0.is_empty(), "{line}");
                        refused += 1;
                    }
                }
            }
        }
        // What is left can still be saved, read back and shown.
        let t = Sim::load(&s.save().unwrap()).unwrap();
        assert_eq!(t.show(), s.show());
    }
    assert!(applied > 500 && refused > 500, "{applied} {refused}");
}

#[test]
fn sim_present_counts_a_repositorys_own_copy() {
    // As `git annex drop --auto` decides it (git-annex's sim, which has
    // no content on disk, would drop here).
    passes(
        "init foo\ninit bar\nconnect foo <-> bar\nwanted foo present\nwanted bar anything\n\
         add x 1kb foo\naction foo sendwanted bar\naction foo dropunwanted\npresent foo x\n\
         wanted foo nothing\naction foo dropunwanted\nnotpresent foo x\n",
    );
}
