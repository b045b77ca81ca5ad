//! `annex sim run` against the real `git annex sim run` on the same sim
//! files, in the same repository: the repositories come in with `use` and
//! the files with `addtree`, so that UUIDs and keys are the same in both,
//! and the sims are ones whose outcome does not depend on the order of
//! random choices. Each ends with `visit main git-annex whereis --json`:
//! every file must end in the same repositories in both (untrusted ones
//! included).
//!
//! Globs with a directory (`include=sub/*`) are left out: git-annex's sim
//! matches them against the file's path from inside the simulated
//! repository's directory (`../../../../sub/x`), so they never match
//! there; ours matches the file's path in the work tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use annex_test_support::{command, git, init_annex_repo, output, run_ok};

fn annex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_annex"))
}

/// A repository `main` with annexed files, two clones known to it as
/// remotes (`r1`, `r2`, r2 trusted) and a directory special remote `s`.
fn setup(tmp: &Path) -> PathBuf {
    let (main, _) = init_annex_repo(tmp, "main", "main");
    let files: &[(&str, usize)] = &[
        ("a.txt", 10),
        ("b.txt", 2000),
        ("c.jpg", 3000),
        ("d.jpg", 40),
        ("e.bin", 5000),
        ("f.bin", 60),
        ("sub/g.jpg", 700),
        ("sub/h.txt", 8000),
        ("sub/i.bin", 900),
        ("j.mp3", 1000),
        ("k.mp3", 11000),
        ("l.bin", 1200),
    ];
    for (i, (f, n)) in files.iter().enumerate() {
        let p = main.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let content: Vec<u8> = (0..*n).map(|j| (i * 31 + j * 7) as u8).collect();
        std::fs::write(p, content).unwrap();
    }
    run_ok(&mut command(
        &main,
        "git",
        &["annex", "add", "--quiet", "."],
    ));
    git(&main, &["commit", "-q", "-m", "files"]);
    for r in ["r1", "r2"] {
        git(tmp, &["clone", "-q", "main", r]);
        run_ok(&mut command(
            &tmp.join(r),
            "git",
            &["annex", "init", "-q", r],
        ));
        git(&main, &["remote", "add", r, &format!("../{r}")]);
        git(&main, &["fetch", "-q", r]);
    }
    let sdir = tmp.join("sdir");
    std::fs::create_dir(&sdir).unwrap();
    run_ok(&mut command(
        &main,
        "git",
        &[
            "annex",
            "initremote",
            "-q",
            "s",
            "type=directory",
            &format!("directory={}", sdir.display()),
            "encryption=none",
        ],
    ));
    let cfg: &[&[&str]] = &[
        &["merge"],
        &["group", "r1", "g"],
        &["group", "r2", "g"],
        &["wanted", "r1", "balanced=g:1"],
        &["wanted", "r2", "balanced=g:1"],
        &["wanted", "s", "include=*.jpg or include=*.mp3"],
        &["wanted", "here", "include=*.txt"],
        &["trust", "r2", "--force"],
    ];
    for c in cfg {
        let mut args = vec!["annex"];
        args.extend_from_slice(c);
        args.push("--quiet");
        run_ok(&mut command(&main, "git", &args));
    }
    main
}

/// Each file's repositories from `whereis --json` lines in `out`.
fn whereis(out: &str) -> BTreeMap<String, Vec<String>> {
    let mut m = BTreeMap::new();
    for l in out.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let file = v["file"].as_str().unwrap().to_owned();
        let mut us: Vec<String> = ["whereis", "untrusted"]
            .iter()
            .flat_map(|f| v[*f].as_array().unwrap().iter())
            .map(|w| w["uuid"].as_str().unwrap().to_owned())
            .collect();
        us.sort();
        m.insert(file, us);
    }
    m
}

fn compare(main: &Path, name: &str, sim: &str) {
    let file = main.join(format!("{name}.sim"));
    std::fs::write(&file, sim).unwrap();
    let theirs = output(command(main, "git", &["annex", "sim", "run"]).arg(&file));
    let ours = output(command(main, annex_bin(), &["sim", "run"]).arg(&file));
    let theirs_out = String::from_utf8_lossy(&theirs.stdout).into_owned();
    let ours_out = String::from_utf8_lossy(&ours.stdout).into_owned();
    assert_eq!(
        theirs.status.success(),
        ours.status.success(),
        "exit status differs for {name}:\ngit-annex: {theirs_out}{}\nours: {ours_out}{}",
        String::from_utf8_lossy(&theirs.stderr),
        String::from_utf8_lossy(&ours.stderr)
    );
    let (a, b) = (whereis(&theirs_out), whereis(&ours_out));
    assert!(
        a.len() >= 12,
        "git-annex's sim listed too few files: {theirs_out}"
    );
    assert_eq!(a, b, "{name}: the files ended in different repositories");
    assert!(
        !main.join(".git/annex/sim").exists(),
        "the simulation was left behind"
    );
}

#[test]
fn sim_matches_git_annex_on_deterministic_sims() {
    let tmp = tempfile::tempdir().unwrap();
    let main = setup(tmp.path());
    compare(
        &main,
        "star",
        "seed 1\nuse main here\nuse r1 r1\nuse r2 r2\nuse s s\n\
         connect main <-> r1\nconnect main <-> r2\nconnect main -> s\n\
         addtree main include=*\nnumcopies 2\nstepstable 200\n\
         visit main git-annex whereis --json\n",
    );
    compare(
        &main,
        "configured",
        "seed 2\nuse main here\nuse r1 r1\nuse r2 r2\nuse s s\n\
         connect main <-> r1\nconnect r1 <-> r2\nconnect r1 -> s\n\
         addtree main exclude=*.bin\naddtree r2 include=*.bin\n\
         numcopies 2\nmincopies 1\nrequired r2 include=*h.txt\n\
         wanted r2 include=*.bin\ngroupwanted g include=*.mp3 or largerthan=4kb\n\
         wanted r1 groupwanted\ntrustlevel r1 untrusted\n\
         wanted main include=*.txt\nmetadata k.mp3 tag=keep\n\
         wanted s metadata=tag=keep\nstepstable 300\n\
         visit main git-annex whereis --json\n",
    );
}

/// Each repository's bytes, from `whereis --json` lines (sizes from the
/// keys), and all files' bytes under the empty name.
fn bytes_by_repo(out: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in out.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let key = v["key"].as_str().unwrap();
        let size: u64 = key
            .split('-')
            .find_map(|f| f.strip_prefix('s'))
            .and_then(|s| s.parse().ok())
            .unwrap();
        *m.entry(String::new()).or_default() += size;
        for f in ["whereis", "untrusted"] {
            for w in v[f].as_array().unwrap() {
                let d = w["description"].as_str().unwrap().to_owned();
                *m.entry(d).or_default() += size;
            }
        }
    }
    m
}

/// A sim whose outcome depends on random choices (sizes of random files,
/// size-balanced placement): the outcomes differ, the invariants hold in
/// both: every file reaches its group, and the group is as evenly filled.
#[test]
fn sim_random_sims_keep_git_annexs_invariants() {
    let tmp = tempfile::tempdir().unwrap();
    let (main, _) = init_annex_repo(tmp.path(), "main", "main");
    let text = "init origin\ninit a\ninit b\ninit c\n\
                connect origin <-> a\nconnect origin <-> b\nconnect origin <-> c\n\
                group a g\ngroup b g\ngroup c g\n\
                wanted a sizebalanced=g:1\nwanted b sizebalanced=g:1\nwanted c sizebalanced=g:1\n\
                maxsize a 200mb\nmaxsize b 200mb\nmaxsize c 100mb\n\
                addmulti 30 .bin 1mb 10mb origin\nstepstable 500\n\
                visit origin git-annex whereis --json\n";
    let file = main.join("random.sim");
    std::fs::write(&file, text).unwrap();
    let theirs = output(command(&main, "git", &["annex", "sim", "run"]).arg(&file));
    let ours = output(command(&main, annex_bin(), &["sim", "run"]).arg(&file));
    assert!(theirs.status.success(), "{theirs:?}");
    assert!(ours.status.success(), "{ours:?}");
    for (who, out) in [("git-annex", &theirs), ("ours", &ours)] {
        let out = String::from_utf8_lossy(&out.stdout);
        let files = whereis(&out);
        assert_eq!(files.len(), 30, "{who}: {out}");
        // Every file is in exactly one group member (and origin, which
        // wants none, has dropped them).
        let sizes = bytes_by_repo(&out);
        let member = |n: &str| {
            sizes
                .get(&format!("simulated repository {n}"))
                .copied()
                .unwrap_or(0) as f64
        };
        let group_total = member("a") + member("b") + member("c");
        assert_eq!(group_total, sizes[""] as f64, "{who}: {sizes:?}");
        assert_eq!(member("origin"), 0.0, "{who}: {sizes:?}");
        // Size balanced: each member as full as the others, in proportion
        // to its maxsize, within one file's share.
        let fulls = [
            member("a") / 200e6,
            member("b") / 200e6,
            member("c") / 100e6,
        ];
        let spread =
            fulls.iter().cloned().fold(0.0, f64::max) - fulls.iter().cloned().fold(1.0, f64::min);
        assert!(spread < 0.11, "{who}: spread {spread} {sizes:?}");
    }
}

/// Each file's repositories by description, from `whereis --json` lines.
fn whereis_by_name(out: &str) -> BTreeMap<String, Vec<String>> {
    let mut m = BTreeMap::new();
    for l in out.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let mut names: Vec<String> = ["whereis", "untrusted"]
            .iter()
            .flat_map(|f| v[*f].as_array().unwrap().iter())
            .map(|w| w["description"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        m.insert(v["file"].as_str().unwrap().to_owned(), names);
    }
    m
}

/// Repositories made with `init` have other UUIDs in each program, so
/// these sims are compared by repository name: cluster nodes (a change
/// through a node is known at once to every repository connected to
/// it), special remotes, trust and `action` commands.
#[test]
fn sim_cluster_nodes_and_actions_match_git_annex() {
    let tmp = tempfile::tempdir().unwrap();
    let (main, _) = init_annex_repo(tmp.path(), "main", "main");
    let sims = [
        "seed 3\ninit foo\ninit bar\ninit node1\ninit node2\n\
         clusternode cn1 node1\nclusternode cn2 node2\n\
         connect foo -> cn1\nconnect foo -> cn2\nconnect bar -> cn1\n\
         wanted node1 include=*.jpg\nwanted node2 include=*.txt\n\
         add a.jpg 1mb foo\nadd b.txt 1mb foo\nadd c.jpg 1mb bar\nadd d.bin 1mb bar\n\
         stepstable 50\nvisit bar git-annex whereis --json ; true\n",
        "seed 4\ninit foo\ninit bar\ninitremote sp\nconnect foo <-> bar\nconnect foo -> sp\n\
         wanted sp include=*.iso\nwanted bar exclude=*.iso\ntrustlevel sp trusted\n\
         numcopies 1\nadd a.iso 1mb foo\nadd b.txt 1mb foo\nadd c.txt 1mb bar\n\
         action foo sendwanted sp\naction bar gitpull foo\n\
         action bar getwanted foo\naction foo pull bar\naction foo dropunwanted\n\
         action bar sync foo\nvisit foo git-annex whereis --json ; true\n",
    ];
    for (i, text) in sims.iter().enumerate() {
        let file = main.join(format!("{i}.sim"));
        std::fs::write(&file, text).unwrap();
        let theirs = output(command(&main, "git", &["annex", "sim", "run"]).arg(&file));
        let ours = output(command(&main, annex_bin(), &["sim", "run"]).arg(&file));
        assert!(theirs.status.success(), "{theirs:?}");
        assert!(ours.status.success(), "{ours:?}");
        let a = whereis_by_name(&String::from_utf8_lossy(&theirs.stdout));
        let b = whereis_by_name(&String::from_utf8_lossy(&ours.stdout));
        assert!(a.len() >= 3, "{a:?}");
        assert_eq!(a, b, "sim {i}:\n{text}");
    }
}
