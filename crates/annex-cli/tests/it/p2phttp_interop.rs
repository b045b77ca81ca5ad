//! The real git-annex as the client of `annex p2phttp`: a client repository
//! whose remote `srv` has `annexUrl = annex+http://127.0.0.1:PORT/git-annex/`
//! and a git URL nothing answers, so every content operation must go over
//! HTTP to our server. The server's request log is checked to prove it.
//!
//! These tests need git-annex 10.20250416 and fail (never skip) without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use annex_test_support::{
    command, files_under, git, init_annex_repo, init_bare_annex_repo, output, pseudo_random,
    read_log, spawn_annex_p2phttp, write_executable, KillOnDrop,
};

/// `annex p2phttp` running in a repository, killed when dropped.
struct Server {
    _child: KillOnDrop,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(repo: &Path, log: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
        c.arg("p2phttp")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .args(args)
            .current_dir(repo)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied());
        let (child, port) = spawn_annex_p2phttp(c, &log);
        Server {
            _child: child,
            port,
            log,
        }
    }

    fn log_text(&self) -> String {
        read_log(&self.log)
    }

    /// How many requests the server answered on an endpoint.
    fn requests(&self, endpoint: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(" request ") || l.contains(": request"))
            .filter(|l| l.contains(&format!("/{endpoint}")))
            .count()
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    served: PathBuf,
    client: PathBuf,
    tmp: PathBuf,
}

impl Setup {
    fn new(bare: bool) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let (served, _) = if bare {
            init_bare_annex_repo(tmp.path(), "served", "served")
        } else {
            init_annex_repo(tmp.path(), "served", "served")
        };
        let (client, _) = init_annex_repo(tmp.path(), "client", "client");
        git(
            &client,
            &["config", "annex.security.allowed-ip-addresses", "all"],
        );
        Setup {
            tmp: tmp.path().to_owned(),
            _tmp: tmp,
            served,
            client,
        }
    }

    fn served_uuid(&self) -> String {
        git(&self.served, &["config", "annex.uuid"])
            .trim()
            .to_owned()
    }

    fn serve(&self, args: &[&str], env: &[(&str, &str)]) -> Server {
        let n = std::fs::read_dir(&self.tmp).unwrap().count();
        let server = Server::start(
            &self.served,
            self.tmp.join(format!("server{n}.log")),
            args,
            env,
        );
        // The git URL leads nowhere: content can only go over annexUrl.
        let _ = output(&mut command(
            &self.client,
            "git",
            &["remote", "remove", "srv"],
        ));
        git(
            &self.client,
            &["remote", "add", "srv", "http://127.0.0.1:9/nothing.git"],
        );
        git(
            &self.client,
            &["config", "remote.srv.annex-uuid", &self.served_uuid()],
        );
        let url = format!("annex+http://127.0.0.1:{}/git-annex/", server.port);
        git(&self.client, &["config", "remote.srv.annexUrl", &url]);
        server
    }

    fn add(&self, name: &str, content: &[u8]) -> String {
        std::fs::write(self.client.join(name), content).unwrap();
        git(&self.client, &["annex", "add", "-q", name]);
        git(&self.client, &["commit", "-q", "-m", name]);
        git(&self.client, &["annex", "lookupkey", name])
            .trim()
            .to_owned()
    }

    fn annex(&self, args: &[&str]) -> Output {
        let mut a = vec!["annex"];
        a.extend_from_slice(args);
        output(&mut command(&self.client, "git", &a))
    }

    fn annex_ok(&self, args: &[&str]) -> String {
        let mut a = vec!["annex"];
        a.extend_from_slice(args);
        git(&self.client, &a)
    }

    /// Whether the served repository has the key's content (git-annex's
    /// own view, with its own fsck of the object).
    fn served_has(&self, key: &str) -> bool {
        output(&mut command(
            &self.served,
            "git",
            &["annex", "fsck", "--key", key, "--quiet"],
        ))
        .status
        .success()
    }

    /// git-annex's fsck of every object in the served repository.
    fn fsck_served(&self) {
        let objects = object_keys(&self.served);
        for key in objects {
            let out = output(&mut command(
                &self.served,
                "git",
                &["annex", "fsck", "--key", &key],
            ));
            assert!(
                out.status.success(),
                "fsck {key}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The keys whose objects are under a repository's annex/objects.
fn object_keys(repo: &Path) -> Vec<String> {
    [repo.join(".git/annex/objects"), repo.join("annex/objects")]
        .iter()
        .flat_map(|d| files_under(d))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn session(bare: bool) {
    let s = Setup::new(bare);
    let server = s.serve(&["--wideopen"], &[]);
    let files: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("one".into(), b"x".to_vec()),
        ("big".into(), pseudo_random(5 * 1024 * 1024 + 7, 1)),
    ];
    let mut keys = Vec::new();
    for (name, content) in &files {
        keys.push(s.add(name, content));
    }
    s.annex_ok(&["copy", "--to", "srv", "."]);
    for k in &keys {
        assert!(s.served_has(k), "{k} stored");
    }
    assert!(server.requests("put") >= 3, "{}", server.log_text());
    s.fsck_served();

    // whereis and fsck --from see it over HTTP.
    let whereis = s.annex_ok(&["whereis", "big"]);
    assert!(whereis.contains(&s.served_uuid()), "{whereis}");
    s.annex_ok(&["fsck", "--from", "srv", "."]);
    assert!(server.requests("key/") >= 3, "{}", server.log_text());

    // drop here (proving the copy with a lock), then get back.
    s.annex_ok(&["drop", "."]);
    assert!(server.requests("lockcontent") >= 3);
    assert!(server.requests("keeplocked") >= 3);
    s.annex_ok(&["get", "--from", "srv", "."]);
    for (name, content) in &files {
        let p = s.client.join(name);
        assert_eq!(&std::fs::read(&p).unwrap(), content, "{name}");
    }

    // drop from the server, move both ways.
    s.annex_ok(&["drop", "--from", "srv", "one"]);
    assert!(!s.served_has(&keys[1]));
    assert!(server.requests("remove") >= 1);
    s.annex_ok(&["move", "--to", "srv", "big"]);
    assert!(s.served_has(&keys[2]));
    assert!(!s.client.join("big").exists() || std::fs::read(s.client.join("big")).is_err());
    s.annex_ok(&["move", "--from", "srv", "big"]);
    assert!(!s.served_has(&keys[2]));
    assert_eq!(std::fs::read(s.client.join("big")).unwrap(), files[2].1);
    s.fsck_served();
}

#[test]
fn git_annex_client_against_annex_p2phttp() {
    session(false);
}

#[test]
fn git_annex_client_against_annex_p2phttp_bare() {
    session(true);
}

/// Half of the content already in the served repository's annex/tmp (an
/// upload cut off earlier): the next copy asks putoffset, sends the rest,
/// and the result verifies.
#[test]
fn interrupted_upload_resumes() {
    let s = Setup::new(false);
    let content = pseudo_random(3 * 1024 * 1024, 7);
    let key = s.add("f", &content);
    let tmp = s.served.join(".git/annex/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let half = content.len() / 2;
    std::fs::write(tmp.join(&key), &content[..half]).unwrap();
    let server = s.serve(&["--wideopen"], &[]);
    s.annex_ok(&["copy", "--to", "srv", "f"]);
    assert!(s.served_has(&key));
    let log = server.log_text();
    assert!(
        log.contains(&format!("offset={half}")),
        "the put sent from offset {half}: {log}"
    );
    assert!(!tmp.join(&key).exists());
    s.fsck_served();
}

#[test]
fn unauthenticated_read_only_refuses_put_and_remove() {
    let s = Setup::new(false);
    let key = s.add("f", b"read only");
    // Put the content in place on the server side first.
    std::fs::write(s.served.join("g"), b"read only").unwrap();
    git(&s.served, &["annex", "add", "-q", "g"]);
    let _server = s.serve(&["--unauth-readonly"], &[]);
    let out = s.annex(&["copy", "--to", "srv", "--force", "f"]);
    // git-annex checks presence first and finds it there; a new file is
    // refused.
    assert!(out.status.success(), "{out:?}");
    let key2 = s.add("h", b"not stored");
    let out = s.annex(&["copy", "--to", "srv", "h"]);
    assert!(!out.status.success(), "a read-only server refused the put");
    assert!(!s.served_has(&key2));
    let out = s.annex(&["drop", "--from", "srv", "--force", "f"]);
    assert!(
        !out.status.success(),
        "a read-only server refused the removal"
    );
    assert!(s.served_has(&key));
    // Reading works.
    s.annex_ok(&["drop", "--force", "f"]);
    s.annex_ok(&["get", "--from", "srv", "f"]);
}

#[test]
fn unauthenticated_append_only_refuses_remove() {
    let s = Setup::new(false);
    let key = s.add("f", b"append only");
    let _server = s.serve(&["--unauth-appendonly"], &[]);
    s.annex_ok(&["copy", "--to", "srv", "f"]);
    assert!(s.served_has(&key));
    let out = s.annex(&["drop", "--from", "srv", "--force", "f"]);
    assert!(
        !out.status.success(),
        "an append-only server refused the removal"
    );
    assert!(s.served_has(&key));
}

/// With --authenv-http, requests without credentials are refused, and the
/// client's credentials (from a git credential helper) are accepted.
#[test]
fn credentials_are_required_and_accepted() {
    let s = Setup::new(false);
    let key = s.add("f", b"authenticated");
    let _server = s.serve(
        &["--authenv-http"],
        &[("GIT_ANNEX_P2PHTTP_PASSWORD_alice", "sesame")],
    );
    git(&s.client, &["config", "credential.helper", ""]);
    let out = output(
        command(&s.client, "git", &["annex", "copy", "--to", "srv", "f"])
            .env("GIT_TERMINAL_PROMPT", "0"),
    );
    assert!(!out.status.success(), "no credentials, no put");
    assert!(!s.served_has(&key));

    let helper = s.tmp.join("credential-helper");
    write_executable(
        &helper,
        "#!/bin/sh\nif [ \"$1\" = get ]; then echo username=alice; echo password=sesame; fi\n",
    );
    git(
        &s.client,
        &["config", "credential.helper", helper.to_str().unwrap()],
    );
    s.annex_ok(&["copy", "--to", "srv", "f"]);
    assert!(s.served_has(&key));

    std::fs::write(
        &helper,
        "#!/bin/sh\nif [ \"$1\" = get ]; then echo username=alice; echo password=wrong; fi\n",
    )
    .unwrap();
    let out = output(
        command(
            &s.client,
            "git",
            &["annex", "drop", "--from", "srv", "--force", "f"],
        )
        .env("GIT_TERMINAL_PROMPT", "0"),
    );
    assert!(!out.status.success(), "wrong password, no removal");
    assert!(s.served_has(&key));
}

/// `annex p2phttp --directory`: git-annex's client copies to and gets from
/// repositories found at several depths below the directory, one of them
/// made after the server started, each addressed by its UUID behind the
/// same annexUrl.
#[test]
fn git_annex_client_against_a_directory_of_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().join("served");
    std::fs::create_dir_all(top.join("group")).unwrap();
    let (one, one_uuid) = init_annex_repo(&top, "one", "one");
    let (two, two_uuid) = init_bare_annex_repo(&top.join("group"), "two.git", "two");
    let (client, _) = init_annex_repo(tmp.path(), "client", "client");
    git(
        &client,
        &["config", "annex.security.allowed-ip-addresses", "all"],
    );
    let top_arg = top.to_str().unwrap();
    let server = Server::start(
        tmp.path(),
        tmp.path().join("server.log"),
        &["--wideopen", "--directory", top_arg],
        &[],
    );
    let url = format!("annex+http://127.0.0.1:{}/git-annex/", server.port);
    let add_remote = |name: &str, uuid: &str| {
        git(
            &client,
            &["remote", "add", name, "http://127.0.0.1:9/nothing.git"],
        );
        git(
            &client,
            &["config", &format!("remote.{name}.annex-uuid"), uuid],
        );
        git(
            &client,
            &["config", &format!("remote.{name}.annexUrl"), &url],
        );
    };
    add_remote("one", &one_uuid);
    add_remote("two", &two_uuid);
    let add = |name: &str, content: &[u8]| {
        std::fs::write(client.join(name), content).unwrap();
        git(&client, &["annex", "add", "-q", name]);
        git(&client, &["commit", "-q", "-m", name]);
        git(&client, &["annex", "lookupkey", name])
            .trim()
            .to_owned()
    };
    let has = |repo: &Path, key: &str| {
        output(&mut command(
            repo,
            "git",
            &["annex", "fsck", "--key", key, "--quiet"],
        ))
        .status
        .success()
    };
    let k1 = add("f1", &pseudo_random(300_000, 11));
    let k2 = add("f2", &pseudo_random(200_000, 12));
    git(&client, &["annex", "copy", "-q", "--to", "one", "f1"]);
    git(&client, &["annex", "copy", "-q", "--to", "two", "f2"]);
    assert!(has(&one, &k1) && !has(&two, &k1));
    assert!(has(&two, &k2) && !has(&one, &k2));

    // A repository made now is served from its first request.
    let (three, three_uuid) = init_annex_repo(&top.join("group"), "three", "three");
    add_remote("three", &three_uuid);
    git(&client, &["annex", "copy", "-q", "--to", "three", "f1"]);
    assert!(has(&three, &k1));

    // Content comes back from the repository that has it.
    git(&client, &["annex", "drop", "-q", "--force", "f1", "f2"]);
    git(&client, &["annex", "get", "-q", "--from", "two", "f2"]);
    git(&client, &["annex", "get", "-q", "--from", "three", "f1"]);
    assert_eq!(
        std::fs::read(client.join("f1")).unwrap(),
        pseudo_random(300_000, 11)
    );
    assert_eq!(
        std::fs::read(client.join("f2")).unwrap(),
        pseudo_random(200_000, 12)
    );
    // A UUID served nowhere below the directory is not found.
    let out = output(&mut command(
        &client,
        "git",
        &["annex", "copy", "--to", "one", "--force", "f2"],
    ));
    assert!(out.status.success(), "{out:?}");
    assert!(has(&one, &k2));
    let unknown = "00000000-0000-4000-8000-000000000000";
    git(&client, &["config", "remote.one.annex-uuid", unknown]);
    let out = output(&mut command(
        &client,
        "git",
        &["annex", "copy", "--to", "one", "--force", "f1"],
    ));
    assert!(!out.status.success(), "an unknown UUID is not served");
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(unknown) && l.contains("status=404")),
        "{log}"
    );
}

#[test]
fn a_get_of_absent_content_fails_at_once_as_with_git_annex() {
    let s = Setup::new(false);
    let key = s.add("gone", &pseudo_random(10_000, 8));
    let server = s.serve(&["--wideopen"], &[]);
    s.annex_ok(&["copy", "--to", "srv", "gone"]);
    // The server loses the content behind the client's back: the client
    // still believes it is there.
    let out = output(&mut command(
        &s.served,
        "git",
        &["annex", "drop", "--force", "--key", &key],
    ));
    assert!(out.status.success());
    s.annex_ok(&["drop", "--force", "gone"]);
    let gets_before = server.requests("key");
    let out = s.annex(&["get", "--from", "srv", "gone"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("verification of content failed"), "{err}");
    // One GET, not one per older API version.
    assert_eq!(
        server.requests("key") - gets_before,
        1,
        "{}",
        server.log_text()
    );
}
