//! `annex sim` as a command: a simulation kept in the repository between
//! calls, `run` with its report and exit status, bad input refused with
//! the line and git-annex's message and nothing left behind. (The sim
//! files of git-annex's documentation are compared with git-annex's own
//! runs of them in sim_differential.rs.)

use std::path::{Path, PathBuf};
use std::process::Output;

use annex_test_support::{command, init_annex_repo, output};

fn annex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_annex"))
}

fn sim(dir: &Path, args: &[&str]) -> Output {
    let mut a = vec!["sim"];
    a.extend_from_slice(args);
    output(&mut command(dir, annex_bin(), &a))
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn repo() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init_annex_repo(tmp.path(), "r", "r");
    (tmp, dir)
}

#[test]
fn sim_state_is_kept_between_commands() {
    let (_tmp, dir) = repo();
    std::fs::write(
        dir.join("a.sim"),
        "seed 3\ninit foo\ninit bar\nconnect foo <-> bar\nwanted bar include=*.jpg\n",
    )
    .unwrap();
    assert!(sim(&dir, &["start", "a.sim"]).status.success());
    let again = sim(&dir, &["start"]);
    assert!(!again.status.success());
    assert!(text(&again).1.contains("A sim was previously started"));
    for c in [
        &["add", "x.jpg", "1mb", "foo"][..],
        &["add", "y.txt", "2mb", "foo"],
        &["stepstable", "20"],
        &["present", "bar", "x.jpg"],
    ] {
        let o = sim(&dir, c);
        assert!(o.status.success(), "{c:?}: {:?}", text(&o));
    }
    let failed = sim(&dir, &["present", "bar", "y.txt"]);
    assert!(!failed.status.success());
    assert!(text(&failed)
        .1
        .contains("Expected y.txt to be present in bar, but it is not."));
    let shown = text(&sim(&dir, &["show"])).0;
    assert!(shown.starts_with("seed 3\ninit foo\n"), "{shown}");
    assert!(shown.contains("add x.jpg 1.0MB foo\n"), "{shown}");
    assert!(shown.contains("present bar x.jpg\n"), "{shown}");
    let visited = text(&sim(
        &dir,
        &["visit", "bar", "git annex whereis x.jpg y.txt"],
    ))
    .0;
    assert!(
        visited.contains("whereis x.jpg (1 copy)")
            && visited.contains("simulated repository bar [here]")
            && visited.contains("whereis y.txt (1 copy)"),
        "{visited}"
    );
    assert!(sim(&dir, &["end"]).status.success());
    assert!(!dir.join(".git/annex/sim").exists());
    let none = sim(&dir, &["step", "1"]);
    assert!(!none.status.success());
}

#[test]
fn sim_run_reports_and_fails_on_failed_assertions() {
    let (_tmp, dir) = repo();
    std::fs::write(
        dir.join("ok.sim"),
        "init foo\ninit a\ninit b\nconnect foo -> a\nconnect foo -> b\ngroup a g\ngroup b g\n\
         wanted a balanced=g:1\nwanted b balanced=g:1\nmaxsize a 10mb\nmaxsize b 10mb\n\
         addmulti 20 .f 100kb 200kb foo\nstepstable 100\n",
    )
    .unwrap();
    let o = sim(&dir, &["run", "--json", "ok.sim"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(v["files"], 20);
    assert_eq!(v["balanced_groups"][0]["group"], "g");
    assert_eq!(v["below_numcopies"].as_array().unwrap().len(), 0);
    let a = &v["repositories"][0];
    assert_eq!(a["name"], "a");
    assert!(a["full_percent"].as_f64().unwrap() > 0.0);
    std::fs::write(
        dir.join("bad.sim"),
        "init foo\ninit bar\nconnect foo <-> bar\nadd x 1kb foo\nstepstable 10\n\
         present bar x\n# fine\nnotpresent foo x\n",
    )
    .unwrap();
    let o = sim(&dir, &["run", "bad.sim"]);
    assert!(!o.status.success());
    let (out, err) = text(&o);
    assert!(
        out.contains("add x 1.0kB foo"),
        "the history is shown: {out}"
    );
    assert!(
        err.contains("bad.sim line 6: Expected x to be present in bar, but it is not."),
        "{err}"
    );
    assert!(
        err.contains("bad.sim line 8: Expected x not to be present in foo, but it is present."),
        "{err}"
    );
    assert!(!dir.join(".git/annex/sim").exists());
}

#[test]
fn sim_bad_input_leaves_no_simulation_behind() {
    let (_tmp, dir) = repo();
    let cases = [
        (
            "init foo\nfly away\n",
            "line 2: Unable to parse sim command: \"fly away\"",
        ),
        (
            "init foo\nadd x 1mb bar\n",
            "line 2: No repository in the simulation is named \"bar\". Choose from: foo",
        ),
        (
            "init foo\nmaxsize foo lots\n",
            "line 2: Unable to parse maxsize \"lots\"",
        ),
        (
            "init foo\n\nwanted foo include=*.x and bogus=1\n",
            "line 3: Failed parsing \"include=*.x and bogus=1\": Parse failure: near \"bogus=1\"",
        ),
        (
            "init foo\nuse bar nosuchrepo\n",
            "line 2: Unable to use a repository \"bar\" in the simulation because",
        ),
    ];
    for (file, want) in cases {
        std::fs::write(dir.join("t.sim"), file).unwrap();
        for how in ["run", "start"] {
            let o = sim(&dir, &[how, "t.sim"]);
            assert!(!o.status.success(), "{file}");
            let err = text(&o).1;
            assert!(
                err.contains(&format!("t.sim {want}")),
                "{how} {file}: {err}"
            );
            assert!(!dir.join(".git/annex/sim").exists(), "{how} {file}");
        }
    }
    let o = sim(&dir, &["start"]);
    assert!(o.status.success());
    let o = sim(&dir, &["bogus", "command"]);
    assert!(text(&o)
        .1
        .contains("Unable to parse sim command: \"bogus command\""));
    let o = sim(&dir, &["add", "x", "1mb", "nosuch"]);
    assert!(!o.status.success());
    // A failed command changes nothing.
    assert_eq!(text(&sim(&dir, &["show"])).0.lines().count(), 1);
    assert!(sim(&dir, &["end"]).status.success());
}
