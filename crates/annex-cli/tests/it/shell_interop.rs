//! The real git-annex as the client, this program as git-annex-shell on the
//! other end of an ssh remote. A fake `ssh` earlier in PATH runs the remote
//! command locally, and `git-annex-shell` in that PATH is this binary.
//!
//! These tests need git-annex 10.20250416 and fail (never skip) without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use annex_test_support::proxy::{write_fake_ssh, FakeSsh, ProxyEnv as Env};
use annex_test_support::{init_annex_repo, init_bare_annex_repo, pseudo_random};

/// A scratch area whose fake ssh keeps the caller's environment: the
/// GIT_ANNEX_SHELL_ settings a test gives the client reach the server.
fn new_env() -> Env {
    Env::with_ssh(env!("CARGO_BIN_EXE_annex"), FakeSsh::KeepingEnv)
}

/// A served repository (made by git-annex) and a client repository with
/// an ssh remote `srv` pointing at it.
fn pair(env: &Env, bare: bool) -> (PathBuf, PathBuf) {
    let (srv, _) = if bare {
        init_bare_annex_repo(env.tmp.path(), "srv", "served")
    } else {
        init_annex_repo(env.tmp.path(), "srv", "served")
    };
    let (client, _) = init_annex_repo(env.tmp.path(), "client", "client");
    env.git(&client, &["config", "annex.sshcaching", "false"]);
    env.add_ssh_remote(&client, "srv", &srv);
    (srv, client)
}

fn add_file(env: &Env, client: &Path, name: &str, content: &[u8]) -> String {
    std::fs::write(client.join(name), content).unwrap();
    env.git(client, &["annex", "add", "-q", name]);
    env.git(client, &["commit", "-qm", &format!("add {name}")]);
    env.git(client, &["annex", "lookupkey", name])
        .trim()
        .to_owned()
}

/// Checks with the real git-annex, in the served repository, that every
/// object is valid and every location is right.
fn fsck_served(env: &Env, srv: &Path) {
    let out = env.run(srv, "git", &["annex", "fsck", "--all", "--quiet"]);
    assert!(
        out.status.success(),
        "git annex fsck in the served repository failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_session(bare: bool) {
    let env = new_env();
    let (srv, client) = pair(&env, bare);
    let files: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("one byte".into(), b"x".to_vec()),
        ("large.bin".into(), pseudo_random(100_000_000, 1)),
    ];
    let mut keys = Vec::new();
    for (name, content) in &files {
        keys.push(add_file(&env, &client, name, content));
    }

    // copy --to
    env.ok(&client, "git", &["annex", "copy", "--to", "srv", "."]);
    let whereis = env.ok(&client, "git", &["annex", "whereis", "large.bin"]);
    assert!(whereis.contains("-- srv"), "{whereis}");
    fsck_served(&env, &srv);

    // Our server has them where git-annex keeps them.
    for k in &keys {
        env.git(&srv, &["annex", "contentlocation", k]);
    }

    // drop here (git-annex locks the remote copy as proof), then get --from.
    env.ok(&client, "git", &["annex", "drop", "."]);
    env.ok(&client, "git", &["annex", "get", "--from", "srv", "."]);
    for (name, content) in &files {
        assert_eq!(
            &std::fs::read(client.join(name)).unwrap(),
            content,
            "{name}"
        );
    }

    // fsck --from downloads and verifies.
    env.ok(&client, "git", &["annex", "fsck", "--from", "srv", "."]);

    // drop --from, then move --to and move --from.
    env.ok(
        &client,
        "git",
        &["annex", "drop", "--from", "srv", "one byte"],
    );
    assert!(!env.has_key(&srv, &keys[1]), "dropped content is gone");
    env.ok(
        &client,
        "git",
        &["annex", "move", "--to", "srv", "one byte"],
    );
    assert!(!client.join("one byte").exists() || std::fs::read(client.join("one byte")).is_err());
    env.ok(
        &client,
        "git",
        &["annex", "move", "--from", "srv", "one byte"],
    );
    assert_eq!(std::fs::read(client.join("one byte")).unwrap(), b"x");
    env.ok(
        &client,
        "git",
        &["annex", "copy", "--to", "srv", "one byte"],
    );
    fsck_served(&env, &srv);
}

#[test]
fn git_annex_client_against_our_shell() {
    run_session(false);
}

#[test]
fn git_annex_client_against_our_shell_bare() {
    run_session(true);
}

#[test]
fn configlist_and_uuid_checks() {
    let env = new_env();
    let (srv, client) = pair(&env, false);
    let annex = env!("CARGO_BIN_EXE_annex");
    let uuid = env.git(&srv, &["config", "annex.uuid"]).trim().to_owned();
    let out = env.ok(
        &client,
        annex,
        &["shell", "configlist", srv.to_str().unwrap()],
    );
    assert_eq!(out, format!("annex.uuid={uuid}\ncore.gcrypt-id=\n"));
    // The -c form, as ssh runs forced commands.
    let cmd = format!("git-annex-shell 'configlist' '{}'", srv.display());
    let out = env.ok(&client, "git-annex-shell", &["-c", &cmd]);
    assert_eq!(out, format!("annex.uuid={uuid}\ncore.gcrypt-id=\n"));
    // A --uuid that is not the repository's is refused.
    let out = env.run(
        &client,
        annex,
        &[
            "shell",
            "p2pstdio",
            srv.to_str().unwrap(),
            "client-uuid",
            "--uuid",
            "not-this-one",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected repository UUID not-this-one"));
}

/// `git ARGS` in `dir` with `setting` set to 1 for the server side.
fn git_with(env: &Env, dir: &Path, args: &[&str], setting: &str) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("PATH", &env.path)
        .env(setting, "1")
        .output()
        .unwrap()
}

#[test]
fn read_only_and_append_only() {
    let env = new_env();
    let (srv, client) = pair(&env, false);
    let key = add_file(&env, &client, "f", b"content");
    let ro = git_with(
        &env,
        &client,
        &["annex", "copy", "--to", "srv", "f"],
        "GIT_ANNEX_SHELL_READONLY",
    );
    assert!(!ro.status.success(), "a read-only shell refuses uploads");
    assert!(!env.has_key(&srv, &key));
    let ao = git_with(
        &env,
        &client,
        &["annex", "copy", "--to", "srv", "f"],
        "GIT_ANNEX_SHELL_APPENDONLY",
    );
    assert!(
        ao.status.success(),
        "{}",
        String::from_utf8_lossy(&ao.stderr)
    );
    let drop = git_with(
        &env,
        &client,
        &["annex", "drop", "--from", "srv", "f"],
        "GIT_ANNEX_SHELL_APPENDONLY",
    );
    assert!(
        !drop.status.success(),
        "an append-only shell refuses removal"
    );
    env.git(&srv, &["annex", "contentlocation", &key]);
}

#[test]
fn killed_copy_resumes() {
    let env = new_env();
    let (srv, client) = pair(&env, false);
    let content = pseudo_random(100_000_000, 7);
    let key = add_file(&env, &client, "big", &content);
    let tmpfile = srv.join(".git/annex/tmp").join(&key);
    let mut child = Command::new("git-annex")
        .args(["copy", "--to", "srv", "big"])
        .current_dir(&client)
        .env("PATH", &env.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill the client once part of the content has arrived.
    let start = std::time::Instant::now();
    let mut partial = 0;
    while start.elapsed() < std::time::Duration::from_secs(60) {
        partial = std::fs::metadata(&tmpfile).map(|m| m.len()).unwrap_or(0);
        if partial > 1_000_000 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(partial > 1_000_000, "the copy was not caught in the middle");
    // Our server noticed the client going away and kept what arrived.
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        let lock = srv.join(".git/annex/tmp").join(format!("{key}.lck"));
        if !lock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let kept = std::fs::metadata(&tmpfile).unwrap().len();
    assert!(kept >= partial && kept < content.len() as u64);

    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--debug", "--to", "srv", "big"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let debug = String::from_utf8_lossy(&out.stderr);
    let resumed_from = debug
        .lines()
        .find_map(|l| l.split("P2P < PUT-FROM ").nth(1))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .expect("a PUT-FROM in the transcript");
    assert!(
        resumed_from > 0,
        "the second copy resumed from {resumed_from}"
    );
    env.git(&srv, &["annex", "contentlocation", &key]);
    fsck_served(&env, &srv);
}

#[test]
fn git_commands_are_handed_to_git_shell() {
    let env = new_env();
    let (srv, client) = pair(&env, false);
    std::fs::write(srv.join("README"), b"hello").unwrap();
    env.git(&srv, &["add", "README"]);
    env.git(&srv, &["commit", "-qm", "first"]);
    // ssh with git-annex-shell as the login shell: the whole command comes
    // as one string after -c.
    let login = env.dir("bin").join("ssh-login");
    write_fake_ssh(&login, FakeSsh::LoginShell);
    let url = format!("localhost:{}", srv.display());
    let clone = |extra_env: Option<(&str, &str)>| {
        let mut c = Command::new("git");
        c.args(["clone", "-q", &url, "cloned"])
            .current_dir(&client)
            .env("PATH", &env.path)
            .env("GIT_SSH_COMMAND", &login);
        if let Some((k, v)) = extra_env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = clone(Some(("GIT_ANNEX_SHELL_LIMITED", "1")));
    assert!(
        !out.status.success(),
        "GIT_ANNEX_SHELL_LIMITED blocks git commands"
    );
    let _ = std::fs::remove_dir_all(client.join("cloned"));
    let out = clone(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(client.join("cloned/README")).unwrap(),
        b"hello"
    );
    // Outside GIT_ANNEX_SHELL_DIRECTORY nothing is served.
    let _ = std::fs::remove_dir_all(client.join("cloned"));
    let out = clone(Some(("GIT_ANNEX_SHELL_DIRECTORY", "/nonexistent")));
    assert!(!out.status.success());
}

#[test]
fn annex_remote_over_ssh() {
    let env = new_env();
    let (srv, client) = pair(&env, false);
    let key = add_file(&env, &client, "f", b"over ssh");
    let target = format!("localhost:{}", srv.display());
    let annex = env!("CARGO_BIN_EXE_annex");
    let out = env.run(&client, annex, &["remote", &target, "checkpresent", &key]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&client, annex, &["remote", &target, "put", &key, "f"]);
    let out = env.ok(&client, annex, &["remote", &target, "checkpresent", &key]);
    assert_eq!(out, format!("{key} present\n"));
    env.ok(
        &client,
        annex,
        &["remote", &target, "get", &key, "-o", "copy"],
    );
    assert_eq!(std::fs::read(client.join("copy")).unwrap(), b"over ssh");
    fsck_served(&env, &srv);
}
