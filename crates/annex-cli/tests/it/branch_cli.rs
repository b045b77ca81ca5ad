//! `annex init`, `maxsize`, `info` and `merge` against the real git-annex:
//! what ours writes git-annex reads, and what git-annex writes ours shows
//! the same way git-annex shows it.

use std::path::{Path, PathBuf};
use std::process::Output;

use annex_test_support::{command, git, output, run_ok, setpresentkey};

fn annex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_annex"))
}

/// `annex ARGS` in `dir`, whatever its exit status.
fn annex_output(dir: &Path, args: &[&str]) -> Output {
    output(&mut command(dir, annex_bin(), args))
}

/// `annex ARGS` in `dir`, which must succeed; its stdout.
fn annex(dir: &Path, args: &[&str]) -> String {
    run_ok(&mut command(dir, annex_bin(), args))
}

const OTHER: &str = "11111111-2222-3333-4444-555555555555";

#[test]
fn init_makes_a_repository_git_annex_uses() {
    let t = tempfile::tempdir().unwrap();
    for bare in [false, true] {
        let name = if bare { "bare.git" } else { "work" };
        let mut args = vec!["init", "-q"];
        if bare {
            args.push("--bare");
        }
        args.push(name);
        git(t.path(), &args);
        let dir = t.path().join(name);
        git(&dir, &["config", "user.name", "t"]);
        git(&dir, &["config", "user.email", "t@example.invalid"]);
        annex(&dir, &["init", "my repo"]);
        let uuid = git(&dir, &["config", "annex.uuid"]).trim().to_string();
        assert_eq!(git(&dir, &["config", "annex.version"]).trim(), "10");
        // git-annex takes it as initialised: same UUID, our description.
        let info = git(&dir, &["annex", "info", "--fast", "--json"]);
        let v: serde_json::Value = serde_json::from_str(info.trim()).unwrap();
        let here: Vec<_> = v["semitrusted repositories"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["here"] == true)
            .collect();
        assert_eq!(here.len(), 1);
        assert_eq!(here[0]["uuid"], uuid.as_str());
        assert_eq!(here[0]["description"], "my repo");
        assert_eq!(git(&dir, &["config", "annex.uuid"]).trim(), uuid);
        if !bare {
            // Adding and committing a file works as in a git-annex init'd
            // repository.
            std::fs::write(dir.join("big.dat"), b"some content").unwrap();
            git(&dir, &["annex", "add", "--quiet", "big.dat"]);
            git(&dir, &["commit", "-q", "-m", "add"]);
            git(&dir, &["annex", "fsck", "--quiet"]);
        }
        // Running it again changes nothing.
        annex(&dir, &["init"]);
        assert_eq!(git(&dir, &["config", "annex.uuid"]).trim(), uuid);
        let info = git(&dir, &["annex", "info", "--fast", "--json"]);
        assert!(info.contains("my repo"), "{info}");
    }
}

#[test]
fn no_branch_is_an_error_naming_annex_init() {
    let t = tempfile::tempdir().unwrap();
    git(t.path(), &["init", "-q", "plain"]);
    let out = annex_output(&t.path().join("plain"), &["maxsize"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("annex init"), "{err}");
}

/// A repository with three others holding content and maxsizes set by both
/// programs.
fn populated() -> (tempfile::TempDir, PathBuf, String) {
    let t = tempfile::tempdir().unwrap();
    git(t.path(), &["init", "-q", "r"]);
    let dir = t.path().join("r");
    git(&dir, &["config", "user.name", "t"]);
    git(&dir, &["config", "user.email", "t@example.invalid"]);
    git(&dir, &["annex", "init", "-q", "main"]);
    let here = git(&dir, &["config", "annex.uuid"]).trim().to_string();
    let mut lines = String::new();
    for i in 0..50u64 {
        lines.push_str(&format!("SHA256E-s{}--{i:064x} {here} 1\n", i * 1000 + 7));
        if i % 2 == 0 {
            lines.push_str(&format!("SHA256E-s{}--{i:064x} {OTHER} 1\n", i * 1000 + 7));
        }
    }
    setpresentkey(&dir, &lines);
    git(&dir, &["remote", "add", "other", "../nonexistent"]);
    git(&dir, &["config", "remote.other.annex-uuid", OTHER]);
    git(&dir, &["annex", "describe", "other", "the other one"]);
    (t, dir, here)
}

#[test]
fn maxsize_written_by_either_reads_the_same_in_both() {
    let (_t, dir, _here) = populated();
    // Ours writes, git-annex reads.
    annex(&dir, &["maxsize", "here", "2.5 GB"]);
    assert_eq!(
        git(&dir, &["annex", "maxsize", "here", "--bytes"]).trim(),
        "2500000000"
    );
    // git-annex writes, ours reads.
    git(&dir, &["annex", "maxsize", "the other one", "30kB"]);
    assert_eq!(
        annex(&dir, &["maxsize", "the other one", "--bytes"]).trim(),
        "30000"
    );
    assert_eq!(
        annex(&dir, &["maxsize", OTHER]).trim(),
        git(&dir, &["annex", "maxsize", OTHER]).trim()
    );
    // The overview is git-annex's, line for line, in each form.
    for args in [vec![], vec!["--bytes"], vec!["--json"]] {
        let mut ga = vec!["annex", "maxsize"];
        ga.extend(&args);
        let mut ours = vec!["maxsize"];
        ours.extend(&args);
        assert_eq!(annex(&dir, &ours), git(&dir, &ga), "maxsize {args:?}");
    }
    // Sizes read as git-annex reads them: ours records for here what
    // git-annex records for the other repository from the same words.
    for size in ["1e3", "1kbit", "8Mbit", "2.5", "3.5", "0x10", "1.5 KiB"] {
        annex(&dir, &["maxsize", "here", size]);
        git(&dir, &["annex", "maxsize", OTHER, size]);
        assert_eq!(
            git(&dir, &["annex", "maxsize", "here", "--bytes"]),
            git(&dir, &["annex", "maxsize", OTHER, "--bytes"]),
            "maxsize {size}"
        );
    }
    // A size that does not parse is refused, as git-annex refuses it.
    let out = annex_output(&dir, &["maxsize", "here", "lots"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unable to parse size"));
    // An unknown repository is an error.
    assert!(!annex_output(&dir, &["maxsize", "nowhere"]).status.success());
}

#[test]
fn info_sizes_agree_with_git_annex_and_show_clusters() {
    let (t, dir, here) = populated();
    // A cluster with two nodes, made by git-annex.
    for n in ["n1", "n2"] {
        git(t.path(), &["init", "-q", n]);
        let nd = t.path().join(n);
        git(&nd, &["annex", "init", "-q", n]);
        let u = git(&nd, &["config", "annex.uuid"]).trim().to_string();
        git(&dir, &["remote", "add", n, &format!("../{n}")]);
        git(&dir, &["config", &format!("remote.{n}.annex-uuid"), &u]);
        git(
            &dir,
            &["config", &format!("remote.{n}.annex-cluster-node"), "c1"],
        );
    }
    git(&dir, &["annex", "initcluster", "c1"]);
    git(&dir, &["annex", "updatecluster"]);
    let ours: serde_json::Value =
        serde_json::from_str(annex(&dir, &["info", "--json"]).trim()).unwrap();
    let theirs: serde_json::Value =
        serde_json::from_str(git(&dir, &["annex", "info", "--bytes", "--json"]).trim()).unwrap();
    let mut want: Vec<(String, u64)> = theirs["annex sizes of repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["uuid"].as_str().unwrap().to_string(),
                r["size"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    want.sort();
    let mut got: Vec<(String, u64)> = ours["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["size"].as_u64().unwrap() > 0)
        .map(|r| {
            (
                r["uuid"].as_str().unwrap().to_string(),
                r["size"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        ours["combined size"].as_u64().unwrap(),
        theirs["combined annex size of all repositories"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    );
    let clusters = ours["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0]["nodes"].as_array().unwrap().len(), 2);
    // git-annex describes a cluster as "cluster NAME" in uuid.log.
    assert_eq!(clusters[0]["description"], "cluster c1");
    let proxies = ours["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 1);
    assert_eq!(proxies[0]["gateway"], here.as_str());
    assert!(annex(&dir, &["info"]).contains("cluster "));
}

#[test]
fn merge_unions_remote_branches() {
    let t = tempfile::tempdir().unwrap();
    git(t.path(), &["init", "-q", "a"]);
    let a = t.path().join("a");
    annex(&a, &["init", "a"]);
    git(t.path(), &["clone", "-q", "a", "b"]);
    let b = t.path().join("b");
    git(&b, &["annex", "init", "-q", "b"]);
    let key = format!("SHA256E-s5--{:064x}", 5);
    setpresentkey(&a, &format!("{key} {OTHER} 1\n"));
    let ub = git(&b, &["config", "annex.uuid"]).trim().to_string();
    setpresentkey(&b, &format!("{key} {ub} 1\n"));
    git(&b, &["annex", "merge", "--quiet"]);
    git(&a, &["remote", "add", "b", "../b"]);
    git(&a, &["fetch", "-q", "b"]);
    let out = annex(&a, &["merge"]);
    assert!(out.contains("b/git-annex"), "{out}");
    let w = git(&a, &["annex", "whereis", "--json", &format!("--key={key}")]);
    let v: serde_json::Value = serde_json::from_str(w.trim()).unwrap();
    assert_eq!(v["whereis"].as_array().unwrap().len(), 2, "{w}");
    git(&a, &["fsck", "--no-progress"]);
}

/// `annex init` writes git's post-receive hook as git-annex's init does
/// (only with a work tree; another hook of the user's left alone with
/// git-annex's warning), running `annex post-receive`; git-annex's own
/// post-receive scripts are replaced by it, the other hooks are
/// git-annex's own.
#[test]
fn init_installs_the_post_receive_hook_as_git_annex_does() {
    let t = tempfile::tempdir().unwrap();
    let ours = "#!/bin/sh\n# automatically configured by annex\nif annex post-receive --help >/dev/null 2>&1; then annex post-receive; elif git annex post-receive --help >/dev/null 2>&1; then git annex post-receive; fi\n";
    let hook = |dir: &Path, name: &str| std::fs::read_to_string(dir.join(".git/hooks").join(name));

    // Over git-annex's init: its post-receive is replaced, its other
    // hooks stay as they are, and are what ours writes.
    git(t.path(), &["init", "-q", "ga"]);
    let ga = t.path().join("ga");
    git(&ga, &["annex", "init", "-q", "ga"]);
    let before: Vec<String> = ["pre-commit", "post-checkout", "post-merge"]
        .iter()
        .map(|h| hook(&ga, h).unwrap())
        .collect();
    assert!(hook(&ga, "post-receive")
        .unwrap()
        .contains("git annex post-receive"));
    let out = annex_output(&ga, &["init"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hook(&ga, "post-receive").unwrap(), ours);
    git(t.path(), &["init", "-q", "fresh"]);
    let fresh = t.path().join("fresh");
    annex(&fresh, &["init"]);
    for (h, text) in ["pre-commit", "post-checkout", "post-merge"]
        .iter()
        .zip(&before)
    {
        assert_eq!(&hook(&ga, h).unwrap(), text, "{h}");
        assert_eq!(&hook(&fresh, h).unwrap(), text, "{h}");
    }
    assert_eq!(hook(&fresh, "post-receive").unwrap(), ours);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(fresh.join(".git/hooks/post-receive"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111);

    // A hook of the user's own: left alone, with git-annex's warning,
    // word for word.
    for (prog, name) in [(None, "mine-ga"), (Some(()), "mine")] {
        git(t.path(), &["init", "-q", name]);
        let dir = t.path().join(name);
        std::fs::write(
            dir.join(".git/hooks/post-receive"),
            "#!/bin/sh\necho mine\n",
        )
        .unwrap();
        let out = match prog {
            None => output(command(&dir, "git", &["annex", "init", "-q"]).env("LANG", "C")),
            Some(()) => annex_output(&dir, &["init"]),
        };
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "  post-receive hook (.git/hooks/post-receive) already exists, not configuring\n",
            "{name}"
        );
        assert_eq!(
            hook(&dir, "post-receive").unwrap(),
            "#!/bin/sh\necho mine\n"
        );
    }

    // A bare repository gets no hooks.
    git(t.path(), &["init", "-q", "--bare", "bare.git"]);
    let bare = t.path().join("bare.git");
    annex(&bare, &["init"]);
    assert!(!bare.join("hooks/post-receive").exists());
}
