//! `annex wanted`, `required`, `groupwanted`, `group`, `ungroup`,
//! `numcopies` and `mincopies` against the real git-annex: what either
//! writes the other reads to the same meaning, and both answer the same
//! commands with the same output, messages and exit codes.

use std::path::{Path, PathBuf};
use std::process::Output;

use annex_test_support::{command, git, init_annex_repo, output, run_ok};

fn annex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_annex"))
}

/// `annex ARGS` in `dir`, which must succeed; its stdout.
fn annex(dir: &Path, args: &[&str]) -> String {
    run_ok(&mut command(dir, annex_bin(), args))
}

/// `git annex ARGS` in `dir`, which must succeed; its stdout.
fn git_annex(dir: &Path, args: &[&str]) -> String {
    let mut full = vec!["annex"];
    full.extend_from_slice(args);
    git(dir, &full)
}

const OTHER: &str = "11111111-2222-3333-4444-555555555555";

/// A repository initialised by git-annex as `main`, with a remote `other`
/// (not reachable) described as `the other one`.
fn repository(parent: &Path, name: &str) -> PathBuf {
    let (dir, _) = init_annex_repo(parent, name, "main");
    git(&dir, &["remote", "add", "other", "../nonexistent"]);
    git(&dir, &["config", "remote.other.annex-uuid", OTHER]);
    git_annex(&dir, &["describe", "other", "the other one"]);
    dir
}

/// Two repositories made alike: one for git-annex, one for ours.
struct Pair {
    _tmp: tempfile::TempDir,
    git_annex: PathBuf,
    ours: PathBuf,
}

impl Pair {
    fn new() -> Pair {
        let tmp = tempfile::tempdir().unwrap();
        let git_annex = repository(tmp.path(), "g");
        let ours = repository(tmp.path(), "o");
        Pair {
            _tmp: tmp,
            git_annex,
            ours,
        }
    }

    /// Runs `git annex ARGS` in one repository and `annex ARGS` in the
    /// other, and checks that both print the same (git-annex's `git-annex:`
    /// prefix being ours `annex:`) and exit the same way. Returns stdout.
    fn same(&self, args: &[&str]) -> String {
        let mut full = vec!["annex"];
        full.extend_from_slice(args);
        let theirs = output(&mut command(&self.git_annex, "git", &full));
        let ours = output(&mut command(&self.ours, annex_bin(), args));
        let text = |o: &Output| {
            (
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).replace("git-annex: ", "annex: "),
                o.status.code(),
            )
        };
        assert_eq!(text(&ours), text(&theirs), "annex {args:?}");
        text(&ours).0
    }

    /// Sets up the same thing in both repositories with git-annex.
    fn both(&self, args: &[&str]) {
        git_annex(&self.git_annex, args);
        git_annex(&self.ours, args);
    }
}

/// The git-annex branch's commit and the journal's files: what a refused
/// command must leave as it was.
fn branch_state(dir: &Path) -> (String, Vec<PathBuf>) {
    let head = git(dir, &["rev-parse", "git-annex"]);
    let journal = dir.join(".git/annex/journal");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&journal)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    (head, files)
}

#[test]
fn expressions_written_by_either_read_the_same_in_both() {
    let t = tempfile::tempdir().unwrap();
    let dir = repository(t.path(), "r");
    let expr = "include=*.mp3 and (not copies=archive:2 or present)";
    // Ours writes, git-annex reads.
    assert_eq!(
        annex(&dir, &["wanted", "here", expr]),
        "wanted here ok\n(recording state in git...)\n"
    );
    assert_eq!(git_annex(&dir, &["wanted", "here"]), format!("{expr}\n"));
    annex(&dir, &["required", "other", "copies=2"]);
    assert_eq!(git_annex(&dir, &["required", OTHER]), "copies=2\n");
    annex(&dir, &["groupwanted", "archive", "not copies=archive:3"]);
    assert_eq!(
        git_annex(&dir, &["groupwanted", "archive"]),
        "not copies=archive:3\n"
    );
    // git-annex writes, ours reads; a later setting replaces the earlier.
    git_annex(&dir, &["wanted", "here", "standard"]);
    assert_eq!(annex(&dir, &["wanted", "main"]), "standard\n");
    git_annex(&dir, &["required", "the other one", "anything"]);
    assert_eq!(annex(&dir, &["required", "other"]), "anything\n");
    git_annex(&dir, &["groupwanted", "archive", "present"]);
    assert_eq!(annex(&dir, &["groupwanted", "archive"]), "present\n");
    // And back again.
    annex(&dir, &["wanted", ".", "groupwanted"]);
    assert_eq!(git_annex(&dir, &["wanted", "."]), "groupwanted\n");
    // Nothing is left in the journal: both commit it.
    assert!(branch_state(&dir).1.is_empty());
}

#[test]
fn groups_written_by_either_read_the_same_in_both() {
    let t = tempfile::tempdir().unwrap();
    let dir = repository(t.path(), "r");
    assert_eq!(
        annex(&dir, &["group", "here", "client"]),
        "group here ok\n(recording state in git...)\n"
    );
    git_annex(&dir, &["group", "here", "backup"]);
    assert_eq!(annex(&dir, &["group", "here"]), "backup client\n");
    assert_eq!(git_annex(&dir, &["group", "here"]), "backup client\n");
    // A name with a space is two groups, as git-annex reads what it writes.
    annex(&dir, &["group", "other", "x y"]);
    assert_eq!(git_annex(&dir, &["group", "other"]), "x y\n");
    assert_eq!(git_annex(&dir, &["group", "--list"]), "backup client x y\n");
    assert_eq!(annex(&dir, &["group", "--list"]), "backup client x y\n");
    annex(&dir, &["ungroup", "here", "client"]);
    assert_eq!(git_annex(&dir, &["group", "here"]), "backup\n");
    git_annex(&dir, &["ungroup", "here", "backup"]);
    assert_eq!(annex(&dir, &["group", "here"]), "\n");
    annex(&dir, &["ungroup", "the other one", "x"]);
    assert_eq!(git_annex(&dir, &["group", "other"]), "y\n");
    // A dead repository's groups are not listed.
    git_annex(&dir, &["dead", "other"]);
    assert_eq!(annex(&dir, &["group", "--list"]), "\n");
    assert_eq!(git_annex(&dir, &["group", "--list"]), "\n");
}

#[test]
fn numcopies_written_by_either_read_the_same_in_both() {
    let t = tempfile::tempdir().unwrap();
    let dir = repository(t.path(), "r");
    assert_eq!(
        annex(&dir, &["numcopies", "3"]),
        "numcopies 3 ok\n(recording state in git...)\n"
    );
    assert_eq!(git_annex(&dir, &["numcopies"]), "3\n");
    git_annex(&dir, &["numcopies", "5"]);
    assert_eq!(annex(&dir, &["numcopies"]), "5\n");
    // The same number again records nothing.
    let before = branch_state(&dir);
    assert_eq!(annex(&dir, &["numcopies", "5"]), "numcopies 5 ok\n");
    assert_eq!(branch_state(&dir), before);
    annex(&dir, &["mincopies", "2"]);
    assert_eq!(git_annex(&dir, &["mincopies"]), "2\n");
    git_annex(&dir, &["mincopies", "4"]);
    assert_eq!(annex(&dir, &["mincopies"]), "4\n");
    assert_eq!(git_annex(&dir, &["numcopies"]), "5\n");
}

#[test]
fn showing_and_setting_print_as_git_annex_prints() {
    let p = Pair::new();
    for args in [
        &["wanted", "here"][..],
        &["required", "other"],
        &["groupwanted", "archive"],
        &["group", "here"],
        &["group", "--list"],
        &["numcopies"],
        &["mincopies"],
        &["wanted", "here", "include=*.mp3"],
        &["wanted", "here"],
        &["wanted", "main"],
        &["wanted", ".", "present"],
        &["wanted", "here"],
        &["wanted", OTHER, "standard"],
        &["wanted", "the other one"],
        &["wanted", "web", "include=*"],
        &["wanted", "web"],
        &["required", "other", "copies=2"],
        &["required", "other"],
        &["groupwanted", "archive", "anything"],
        &["groupwanted", "archive"],
        &["groupwanted", "", "present"],
        &["groupwanted", ""],
        &["group", "here", "client"],
        &["group", "here", "client"],
        &["group", "other", "backup"],
        &["group", "here"],
        &["group", "--list"],
        &["ungroup", "here", "client"],
        &["ungroup", "here", "nosuch"],
        &["group", "here"],
        &["numcopies", "3"],
        &["numcopies", "3"],
        &["numcopies", "03"],
        &["numcopies", "2x"],
        &["numcopies", "0x10"],
        &["numcopies", "99999999999999999999"],
        &["numcopies"],
        &["mincopies", "2"],
        &["mincopies"],
    ] {
        p.same(args);
    }
}

#[test]
fn deprecated_numcopies_config_is_mentioned_as_git_annex_does() {
    let p = Pair::new();
    for value in ["4", "0", "x"] {
        for dir in [&p.git_annex, &p.ours] {
            git(dir, &["config", "annex.numcopies", value]);
        }
        p.same(&["numcopies"]);
    }
}

#[test]
fn an_invalid_expression_fails_as_in_git_annex_and_writes_nothing() {
    let p = Pair::new();
    p.same(&["wanted", "here", "present"]);
    for args in [
        &["wanted", "here", "bogus=1 fooé"][..],
        &["wanted", ".", "copies=x"],
        &["required", "other", "largerthan=zz"],
        &["groupwanted", "archive", "include=*.mp3 or frobnicate"],
    ] {
        let before = branch_state(&p.ours);
        let out = p.same(args);
        assert!(out.ends_with(" \nfailed\n"), "{out}");
        assert_eq!(branch_state(&p.ours), before, "{args:?}");
    }
    let out = p.same(&["wanted", "here", "bogus=1 fooé"]);
    assert_eq!(out, "wanted here \nfailed\n");
    // The message is git-annex's, word for word.
    let refused = output(&mut command(
        &p.ours,
        annex_bin(),
        &["wanted", "here", "bogus=1 fooé"],
    ));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "annex: Parse error: Parse failure: near \"bogus=1\" Parse failure: near \"foo\\233\"\nwanted: 1 failed\n"
    );
    p.same(&["wanted", "here"]);
    p.same(&["groupwanted", "archive"]);
}

#[test]
fn unknown_repositories_and_bad_arguments_fail_as_in_git_annex() {
    let p = Pair::new();
    // A remote whose UUID cannot be known, and one more description.
    for dir in [&p.git_annex, &p.ours] {
        git(dir, &["remote", "add", "far", "example.invalid:repo"]);
        git(dir, &["config", "remote.far.annex-ignore", "true"]);
    }
    for args in [
        &["wanted", "nosuch"][..],
        &["wanted", "nosuch", "present"],
        &["wanted", "22222222-2222-3333-4444-555555555555"],
        &["wanted", ""],
        &["wanted", "far"],
        &["wanted"],
        &["wanted", "here", "present", "extra"],
        &["required", "nosuch", "bogus"],
        &["required"],
        &["groupwanted"],
        &["groupwanted", "a", "present", "extra"],
        &["group"],
        &["group", "nosuch"],
        &["group", "nosuch", "g"],
        &["group", "here", "a", "b"],
        &["group", "--list", "here"],
        &["ungroup", "here"],
        &["ungroup", "nosuch", "g"],
        &["ungroup", "here", "a", "b"],
        &["numcopies", "0"],
        &["numcopies", "abc"],
        &["numcopies", ""],
        &["numcopies", "3.5"],
        &["numcopies", "(-1)"],
        &["numcopies", "--", "-1"],
        &["numcopies", "9223372036854775808"],
        &["numcopies", "1", "2"],
        &["mincopies", "0"],
        &["mincopies", "x"],
        &["mincopies", "--", "-2"],
        &["mincopies", "1", "2"],
    ] {
        let before = branch_state(&p.ours);
        p.same(args);
        assert_eq!(branch_state(&p.ours), before, "{args:?}");
    }
    // Two repositories with one description.
    p.both(&["describe", "other", "main"]);
    p.same(&["wanted", "main"]);
    p.same(&["group", "main", "g"]);
}

/// A remote whose `annex-ignore` is written without a value (`[remote
/// "near"]` then a line `annex-ignore`), as git reads a boolean true: its
/// repository, on this machine, is not looked at for its UUID, so that
/// the remote cannot be named, in git-annex and in ours; with `false`
/// written out, it is looked at in both.
#[test]
fn a_valueless_annex_ignore_ignores_the_remote_as_in_git_annex() {
    let p = Pair::new();
    let (near, _) = init_annex_repo(p._tmp.path(), "near", "the near one");
    for dir in [&p.git_annex, &p.ours] {
        git(dir, &["remote", "add", "near", near.to_str().unwrap()]);
        let config = dir.join(".git/config");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str("[remote \"near\"]\n\tannex-ignore\n");
        std::fs::write(&config, text).unwrap();
    }
    let before = branch_state(&p.ours);
    p.same(&["group", "near", "g"]);
    p.same(&["wanted", "near"]);
    assert_eq!(branch_state(&p.ours), before);
    for dir in [&p.git_annex, &p.ours] {
        git(dir, &["config", "remote.near.annex-ignore", "false"]);
    }
    assert_eq!(
        p.same(&["group", "near", "g"]),
        "group near ok\n(recording state in git...)\n"
    );
}
