//! `annex p2phttp --directory` as a forge's one server: repositories
//! addressed by their path (`annexUrl = annex+http://HOST/owner/repo/`),
//! with the real git-annex as the client; Range requests, checkpresent
//! over GET, the git-annex branch committed while the server runs, a Unix
//! socket, and the authorization hook.
//!
//! These tests need git-annex 10.20250416 and fail (never skip) without it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use annex_test_support::{
    command, git, http_exchange, init_annex_repo, init_bare_annex_repo, output, pseudo_random,
    read_log, sha256e_key, spawn_annex_p2phttp, KillOnDrop, ResponseHead,
};

/// `annex p2phttp --directory` serving a directory of repositories,
/// killed when dropped.
pub(crate) struct Forge {
    _tmp: tempfile::TempDir,
    pub(crate) tmp: PathBuf,
    pub(crate) dir: PathBuf,
    /// alice/one.git (bare), addressed as alice/one.
    pub(crate) one: PathBuf,
    pub(crate) one_uuid: String,
    /// bob/two (with a work tree).
    pub(crate) two: PathBuf,
    pub(crate) two_uuid: String,
    pub(crate) client: PathBuf,
    pub(crate) client_uuid: String,
}

pub(crate) struct Running {
    pub(crate) child: KillOnDrop,
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
}

impl Running {
    pub(crate) fn log_text(&self) -> String {
        read_log(&self.log)
    }
}

impl Forge {
    pub(crate) fn new() -> Forge {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("forge");
        std::fs::create_dir_all(dir.join("alice")).unwrap();
        std::fs::create_dir_all(dir.join("bob")).unwrap();
        let (one, one_uuid) = init_bare_annex_repo(&dir.join("alice"), "one.git", "one");
        let (two, two_uuid) = init_annex_repo(&dir.join("bob"), "two", "two");
        let (client, client_uuid) = init_annex_repo(tmp.path(), "client", "client");
        git(
            &client,
            &["config", "annex.security.allowed-ip-addresses", "all"],
        );
        Forge {
            tmp: tmp.path().to_owned(),
            _tmp: tmp,
            dir,
            one,
            one_uuid,
            two,
            two_uuid,
            client,
            client_uuid,
        }
    }

    pub(crate) fn serve(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        let n = std::fs::read_dir(&self.tmp).unwrap().count();
        let log = self.tmp.join(format!("server{n}.log"));
        let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
        c.arg("p2phttp")
            .args(["--port", "0", "--bind", "127.0.0.1", "--directory"])
            .arg(&self.dir)
            .args(args)
            .current_dir(&self.tmp)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied());
        let (child, port) = spawn_annex_p2phttp(c, &log);
        Running { child, port, log }
    }

    /// Points the client's remote `name` at `url`, with a git URL that
    /// leads nowhere: content can only go over annexUrl.
    pub(crate) fn remote(&self, name: &str, uuid: &str, url: &str) {
        let _ = output(&mut command(
            &self.client,
            "git",
            &["remote", "remove", name],
        ));
        git(
            &self.client,
            &["remote", "add", name, "http://127.0.0.1:9/nothing.git"],
        );
        git(
            &self.client,
            &["config", &format!("remote.{name}.annex-uuid"), uuid],
        );
        git(
            &self.client,
            &["config", &format!("remote.{name}.annexUrl"), url],
        );
    }

    pub(crate) fn add(&self, name: &str, content: &[u8]) -> String {
        std::fs::write(self.client.join(name), content).unwrap();
        git(&self.client, &["annex", "add", "-q", name]);
        git(&self.client, &["commit", "-q", "-m", name]);
        git(&self.client, &["annex", "lookupkey", name])
            .trim()
            .to_owned()
    }

    pub(crate) fn annex(&self, args: &[&str]) -> Output {
        let mut a = vec!["annex"];
        a.extend_from_slice(args);
        output(&mut command(&self.client, "git", &a))
    }

    pub(crate) fn annex_ok(&self, args: &[&str]) -> String {
        let mut a = vec!["annex"];
        a.extend_from_slice(args);
        git(&self.client, &a)
    }
}

/// Whether git-annex, in `repo`, finds the key's content there and
/// intact.
pub(crate) fn has(repo: &Path, key: &str) -> bool {
    output(&mut command(
        repo,
        "git",
        &["annex", "fsck", "--key", key, "--quiet"],
    ))
    .status
    .success()
}

/// Stores `content` in `repo` with git-annex (`setkey`); its key.
pub(crate) fn store_in(repo: &Path, content: &[u8]) -> String {
    let key = sha256e_key(content, "");
    let src = repo.parent().unwrap().join(format!("{key}.src"));
    std::fs::write(&src, content).unwrap();
    git(repo, &["annex", "setkey", &key, src.to_str().unwrap()]);
    key
}

/// One request over a new connection to 127.0.0.1:`port`.
pub(crate) fn request(
    port: u16,
    method: &str,
    target: &str,
    extra: &str,
) -> (ResponseHead, Vec<u8>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    http_exchange(stream, req.as_bytes())
}

#[test]
fn a_git_annex_client_uses_two_repositories_by_path() {
    let f = Forge::new();
    let server = f.serve(&["--wideopen"], &[]);
    // The forge's URL of each repository; the second given with
    // git-annex/ at its end, which git-annex's client then doubles.
    let base = format!("annex+http://127.0.0.1:{}", server.port);
    f.remote("one", &f.one_uuid, &format!("{base}/alice/one/"));
    f.remote("two", &f.two_uuid, &format!("{base}/bob/two/git-annex/"));
    let a = pseudo_random(300_000, 1);
    let b = pseudo_random(2 * 1024 * 1024 + 3, 2);
    let ka = f.add("a", &a);
    let kb = f.add("b", &b);
    f.annex_ok(&["copy", "--to", "one", "a", "b"]);
    f.annex_ok(&["copy", "--to", "two", "b"]);
    assert!(has(&f.one, &ka) && has(&f.one, &kb));
    assert!(has(&f.two, &kb) && !has(&f.two, &ka));
    f.annex_ok(&["fsck", "--from", "one", "a", "b"]);
    f.annex_ok(&["fsck", "--from", "two", "b"]);
    // Dropping here proves copies over HTTP (with content locks).
    f.annex_ok(&["drop", "a", "b"]);
    f.annex_ok(&["get", "--from", "two", "b"]);
    f.annex_ok(&["get", "--from", "one", "a"]);
    assert_eq!(std::fs::read(f.client.join("a")).unwrap(), a);
    assert_eq!(std::fs::read(f.client.join("b")).unwrap(), b);
    f.annex_ok(&["drop", "--from", "two", "b"]);
    assert!(!has(&f.two, &kb) && has(&f.one, &kb));
    let log = server.log_text();
    assert!(log.contains("/alice/one/git-annex/"), "{log}");
    assert!(log.contains("/bob/two/git-annex/git-annex/"), "{log}");
}

#[test]
fn a_uuid_is_served_only_under_its_repositorys_path() {
    let f = Forge::new();
    let key = store_in(&f.two, b"in two only");
    let check = |port: u16, path: &str, uuid: &str| {
        let target = format!(
            "{path}/git-annex/{uuid}/v4/checkpresent?clientuuid={}&key={key}",
            f.client_uuid
        );
        request(port, "POST", &target, "")
    };
    let server = f.serve(&["--wideopen"], &[]);
    let port = server.port;
    let (head, body) = check(port, "/bob/two", &f.two_uuid);
    assert_eq!(head.status, 200);
    assert_eq!(body, br#"{"present":true}"#);
    // The repository at alice/one does not serve two's UUID, though this
    // server does.
    assert_eq!(check(port, "/alice/one", &f.two_uuid).0.status, 404);
    assert_eq!(check(port, "/alice/one.git", &f.one_uuid).0.status, 200);
    // Without a path: git-annex's meaning, any repository of the directory.
    assert_eq!(check(port, "", &f.two_uuid).0.status, 200);
    // Paths that lead out of the directory or nowhere.
    for bad in [
        "/alice/../bob/two",
        "/bob/two/..",
        "/bob//two",
        "/nobody/two",
        "/bob",
    ] {
        assert_eq!(check(port, bad, &f.two_uuid).0.status, 404, "{bad}");
    }
    drop(server);
    // --paths-only: a UUID alone is served no more.
    let server = f.serve(&["--wideopen", "--paths-only"], &[]);
    assert_eq!(check(server.port, "", &f.two_uuid).0.status, 404);
    assert_eq!(check(server.port, "/bob/two", &f.two_uuid).0.status, 200);
}

#[test]
fn a_repository_inside_another_is_not_served_by_path() {
    let f = Forge::new();
    // A repository inside bob/two's work tree, and a symlink to a
    // directory holding a repository.
    let (inner, inner_uuid) = init_annex_repo(&f.two, "inner", "inner");
    let _ = inner;
    let outside = f.tmp.join("outside");
    std::fs::create_dir(&outside).unwrap();
    let (_, out_uuid) = init_annex_repo(&outside, "r", "r");
    std::os::unix::fs::symlink(&outside, f.dir.join("carol")).unwrap();
    let server = f.serve(&["--wideopen"], &[]);
    for (path, uuid) in [("/bob/two/inner", &inner_uuid), ("/carol/r", &out_uuid)] {
        let target = format!(
            "{path}/git-annex/{uuid}/v4/checkpresent?clientuuid={}&key=SHA256E-s1--{}",
            f.client_uuid,
            "0".repeat(64)
        );
        assert_eq!(
            request(server.port, "POST", &target, "").0.status,
            404,
            "{path}"
        );
    }
}

#[test]
fn ranges_are_served_byte_for_byte() {
    let f = Forge::new();
    let content = pseudo_random(1024 * 1024 + 17, 5);
    let key = store_in(&f.two, &content);
    let n = content.len();
    let server = f.serve(&["--wideopen"], &[]);
    let path = format!("/bob/two/git-annex/{}/key/{key}", f.two_uuid);
    let range = |spec: &str| request(server.port, "GET", &path, &format!("Range: {spec}\r\n"));
    for (spec, first, last) in [
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=0-0", 0, 0),
        (&format!("bytes={}-", n - 10) as &str, n - 10, n - 1),
        ("bytes=-5", n - 5, n - 1),
        (&format!("bytes=7-{}", n + 100), 7, n - 1),
        ("bytes=0-", 0, n - 1),
    ] {
        let (head, body) = range(spec);
        assert_eq!(head.status, 206, "{spec}");
        assert_eq!(
            head.header("content-range"),
            Some(format!("bytes {first}-{last}/{n}").as_str()),
            "{spec}"
        );
        assert_eq!(
            head.header("content-length"),
            Some((last - first + 1).to_string().as_str())
        );
        assert!(
            body == content[first..=last],
            "{spec}: the bytes of the range"
        );
    }
    let (head, _) = range(&format!("bytes={n}-"));
    assert_eq!(head.status, 416);
    assert_eq!(
        head.header("content-range"),
        Some(format!("bytes */{n}").as_str())
    );
    // Several ranges, or another unit: the whole content, with its length.
    for spec in ["bytes=0-1,5-6", "items=0-1"] {
        let (head, body) = range(spec);
        assert_eq!(head.status, 200, "{spec}");
        assert_eq!(head.header("content-length"), Some(n.to_string().as_str()));
        assert!(body == content);
    }
    // A range of content not there.
    let absent = format!(
        "/bob/two/git-annex/{}/key/{}",
        f.two_uuid,
        sha256e_key(b"no", "")
    );
    let (head, _) = request(server.port, "GET", &absent, "Range: bytes=0-0\r\n");
    assert_eq!(head.status, 404);
    // git-annex's client's request (v4, no range): as before, the length
    // in X-git-annex-data-length and the content whole.
    let v4 = format!(
        "/bob/two/git-annex/{}/v4/key/{key}?clientuuid={}",
        f.two_uuid, f.client_uuid
    );
    let (head, body) = request(server.port, "GET", &v4, "");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("x-git-annex-data-length"),
        Some(n.to_string().as_str())
    );
    assert!(body == content);
}

#[test]
fn checkpresent_is_answered_for_get_as_for_post() {
    let f = Forge::new();
    let key = store_in(&f.two, b"present");
    let absent = sha256e_key(b"absent", "");
    let server = f.serve(&["--wideopen"], &[]);
    for (k, answer) in [(&key, "true"), (&absent, "false")] {
        let target = format!(
            "/bob/two/git-annex/{}/v4/checkpresent?clientuuid={}&key={k}",
            f.two_uuid, f.client_uuid
        );
        for method in ["GET", "POST"] {
            let (head, body) = request(server.port, method, &target, "");
            assert_eq!(head.status, 200, "{method}");
            assert_eq!(
                String::from_utf8(body).unwrap(),
                format!(r#"{{"present":{answer}}}"#),
                "{method}"
            );
        }
    }
}

/// The content of `path` on the git-annex branch of `repo` (committed,
/// not the journal), if it is there.
fn on_branch(repo: &Path, path: &str) -> Option<String> {
    let out = output(&mut command(
        repo,
        "git",
        &["cat-file", "-p", &format!("refs/heads/git-annex:{path}")],
    ));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The path of a key's location log on the branch, as git-annex names it.
fn location_log(repo: &Path, key: &str) -> String {
    let out = git(
        repo,
        &["annex", "examinekey", "--format=${hashdirlower}", key],
    );
    format!("{}{key}.log", out.trim())
}

#[test]
fn locations_are_committed_shortly_after_a_put_while_serving() {
    let f = Forge::new();
    let mut server = f.serve(&["--wideopen", "--commit-delay", "1"], &[]);
    f.remote(
        "two",
        &f.two_uuid,
        &format!("annex+http://127.0.0.1:{}/bob/two/", server.port),
    );
    let key = f.add("f", b"committed while running");
    f.annex_ok(&["copy", "--to", "two", "f"]);
    let log_path = location_log(&f.two, &key);
    // Waits for the commit (a second after the put here), up to a bound
    // far beyond it for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed = loop {
        if let Some(text) = on_branch(&f.two, &log_path) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the location is not on the branch: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(logged(&committed, &f.two_uuid, "1"), "{committed}");
    assert!(
        server.child.0.try_wait().unwrap().is_none(),
        "still serving"
    );
    // A drop is committed too.
    f.annex_ok(&["drop", "--from", "two", "--force", "f"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = on_branch(&f.two, &log_path).unwrap_or_default();
        if logged(&text, &f.two_uuid, "0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the drop is not on the branch: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        server.child.0.try_wait().unwrap().is_none(),
        "still serving"
    );
}

/// Whether a location log says `status` (1 present, 0 missing) for
/// `uuid`.
fn logged(log: &str, uuid: &str, status: &str) -> bool {
    log.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() == 3 && f[1] == status && f[2] == uuid
    })
}

/// Starts `annex p2phttp --directory` on a Unix socket at `socket`; waits
/// until it says it listens there.
fn serve_on_socket(f: &Forge, socket: &Path, args: &[&str]) -> (KillOnDrop, PathBuf) {
    let n = std::fs::read_dir(&f.tmp).unwrap().count();
    let log = f.tmp.join(format!("server{n}.log"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
    c.arg("p2phttp")
        .arg("--directory")
        .arg(&f.dir)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .current_dir(&f.tmp)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = KillOnDrop(c.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read_log(&log).contains("listening on unix:") {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("the server exited ({status}): {}", read_log(&log));
        }
        assert!(
            Instant::now() < deadline,
            "not listening: {}",
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, log)
}

#[test]
fn a_unix_socket_is_served_with_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let f = Forge::new();
    let key = store_in(&f.two, b"over a socket");
    let socket = f.tmp.join("p2phttp.sock");
    let target = format!(
        "/bob/two/git-annex/{}/v4/checkpresent?clientuuid={}&key={key}",
        f.two_uuid, f.client_uuid
    );
    let ask = || {
        let stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let req = format!(
            "POST {target} HTTP/1.1\r\nHost: forge\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        http_exchange(stream, req.as_bytes())
    };
    let (mut server, _) = serve_on_socket(&f, &socket, &["--wideopen", "--socket-mode", "660"]);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let (head, body) = ask();
    assert_eq!(head.status, 200);
    assert_eq!(body, br#"{"present":true}"#);
    // A second server is refused the socket while the first listens.
    let out = output(
        Command::new(env!("CARGO_BIN_EXE_annex"))
            .arg("p2phttp")
            .arg("--directory")
            .arg(&f.dir)
            .arg("--socket")
            .arg(&socket)
            .arg("--wideopen"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a server is listening there"));
    // Killed, it leaves its socket behind; the next server replaces it,
    // by default for this user alone.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    assert!(socket.exists());
    let (_server, _) = serve_on_socket(&f, &socket, &["--wideopen"]);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(ask().0.status, 200);
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}\r\n")
}

/// A hook that logs what it is asked and allows: alice (password
/// alicepw) everything on alice/one; bob (bobpw) reading alice/one and
/// everything on bob/two; carol (named by the proxy's header) reading
/// bob/two.
fn write_hook(f: &Forge) -> (PathBuf, PathBuf) {
    let asked = f.tmp.join("asked.log");
    let hook = f.tmp.join("hook.sh");
    annex_test_support::write_executable(
        &hook,
        &format!(
            r#"#!/bin/sh
echo "$ANNEX_HTTP_USER|${{ANNEX_HTTP_PASSWORD-unset}}|$ANNEX_HTTP_REPOSITORY|$ANNEX_HTTP_UUID|$ANNEX_HTTP_ACTION" >> '{}'
case "$ANNEX_HTTP_USER:${{ANNEX_HTTP_PASSWORD-}}:$ANNEX_HTTP_REPOSITORY:$ANNEX_HTTP_ACTION" in
  alice:alicepw:alice/one:*) exit 0 ;;
  bob:bobpw:alice/one:read) exit 0 ;;
  bob:bobpw:bob/two:*) exit 0 ;;
  carol::bob/two:read) exit 0 ;;
esac
exit 1
"#,
            asked.display()
        ),
    );
    (hook, asked)
}

#[test]
fn the_authorization_hook_decides_by_user_repository_and_action() {
    let f = Forge::new();
    let (hook, asked) = write_hook(&f);
    let key = store_in(&f.one, b"one's");
    let server = f.serve(
        &[
            "--authorize-command",
            &format!("exec '{}'", hook.display()),
            "--user-header",
            "X-Forge-User",
        ],
        &[],
    );
    let port = server.port;
    let target = |repo: &str, uuid: &str, endpoint: &str| {
        format!(
            "/{repo}/git-annex/{uuid}/v4/{endpoint}?clientuuid={}&key={key}",
            f.client_uuid
        )
    };
    let one_check = target("alice/one", &f.one_uuid, "checkpresent");
    let one_lock = target("alice/one", &f.one_uuid, "lockcontent");
    let two_check = target("bob/two", &f.two_uuid, "checkpresent");
    let two_remove = target("bob/two", &f.two_uuid, "remove");
    let alice = basic("alice", "alicepw");
    let bob = basic("bob", "bobpw");
    let carol = "X-Forge-User: carol\r\n".to_owned();
    for (who, path, status) in [
        ("", &one_check, 401),
        (&alice as &str, &one_check, 200),
        (&alice, &one_lock, 200),
        (&basic("alice", "wrong"), &one_check, 403),
        (&bob, &one_check, 200),
        (&bob, &one_lock, 403),
        (&alice, &two_check, 403),
        (&bob, &two_remove, 200),
        (&carol, &two_check, 200),
        (&carol, &two_remove, 403),
        // The header names the user, whatever basic authentication says.
        (&format!("{carol}{alice}"), &one_check, 403),
    ] {
        let (head, _) = request(port, "POST", path, who);
        assert_eq!(head.status, status, "{who} {path}");
        if status == 401 {
            assert!(head.header("www-authenticate").is_some());
        }
    }
    let log = read_log(&asked);
    // What the hook was given.
    assert!(
        log.lines()
            .any(|l| l == format!("alice|alicepw|alice/one|{}|read", f.one_uuid)),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l == format!("carol|unset|bob/two|{}|remove", f.two_uuid)),
        "{log}"
    );
    assert!(
        log.contains(&format!("|unset|alice/one|{}|read", f.one_uuid)),
        "{log}"
    );
    // Decisions are remembered per user, repository and action: asking
    // again runs nothing.
    let before = log.lines().count();
    for _ in 0..3 {
        assert_eq!(request(port, "POST", &one_check, &alice).0.status, 200);
        assert_eq!(request(port, "POST", &one_lock, &bob).0.status, 403);
    }
    assert_eq!(read_log(&asked).lines().count(), before);
    // A UUID the repository does not serve is not found, and the hook is
    // not asked.
    let cross = target("alice/one", &f.two_uuid, "checkpresent");
    assert_eq!(request(port, "POST", &cross, &bob).0.status, 404);
    assert_eq!(read_log(&asked).lines().count(), before);
}

#[test]
fn a_hook_that_hangs_or_cannot_run_refuses() {
    let f = Forge::new();
    let key = store_in(&f.one, b"x");
    let target = format!(
        "/alice/one/git-annex/{}/v4/checkpresent?clientuuid={}&key={key}",
        f.one_uuid, f.client_uuid
    );
    let server = f.serve(
        &[
            "--authorize-command",
            "sleep 60",
            "--authorize-timeout",
            "1",
        ],
        &[],
    );
    let (head, _) = request(server.port, "POST", &target, &basic("alice", "pw"));
    assert_eq!(head.status, 403);
    assert!(
        server.log_text().contains("was killed: refused"),
        "{}",
        server.log_text()
    );
    let server = f.serve(&["--authorize-command", "kill -9 $$"], &[]);
    let (head, _) = request(server.port, "POST", &target, &basic("alice", "pw"));
    assert_eq!(head.status, 403);
    assert!(
        server.log_text().contains("killed by a signal"),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_git_annex_client_with_credentials_goes_where_the_hook_allows() {
    let f = Forge::new();
    let (hook, asked) = write_hook(&f);
    let server = f.serve(
        &["--authorize-command", &format!("exec '{}'", hook.display())],
        &[],
    );
    let base = format!("annex+http://127.0.0.1:{}", server.port);
    f.remote("one", &f.one_uuid, &format!("{base}/alice/one/"));
    f.remote("two", &f.two_uuid, &format!("{base}/bob/two/"));
    // git's credential helper answers alice for every URL.
    git(
        &f.client,
        &[
            "config",
            "credential.helper",
            "!f() { echo username=alice; echo password=alicepw; }; f",
        ],
    );
    let key = f.add("a", b"alice's file");
    f.annex_ok(&["copy", "--to", "one", "a"]);
    assert!(has(&f.one, &key));
    let out = f.annex(&["copy", "--to", "two", "a"]);
    assert!(!out.status.success(), "alice may not store in bob/two");
    assert!(!has(&f.two, &key));
    let log = read_log(&asked);
    assert!(
        log.contains(&format!("alice|alicepw|alice/one|{}|store", f.one_uuid))
            && log.contains(&format!("alice|alicepw|bob/two|{}|", f.two_uuid)),
        "{log}"
    );
}

#[test]
fn a_repository_by_path_serves_the_remotes_it_proxies() {
    let f = Forge::new();
    let (node, node_uuid) = init_annex_repo(&f.tmp, "node1", "node1");
    let key = store_in(&node, b"on the node");
    git(&f.two, &["remote", "add", "node1", node.to_str().unwrap()]);
    git(&f.two, &["config", "remote.node1.annex-uuid", &node_uuid]);
    git(&f.two, &["config", "remote.node1.annex-proxy", "true"]);
    git(&f.two, &["annex", "updateproxy"]);
    let server = f.serve(&["--wideopen", "--paths-only"], &[]);
    let check = |path: &str| {
        let target = format!(
            "{path}/git-annex/{node_uuid}/v4/checkpresent?clientuuid={}&key={key}",
            f.client_uuid
        );
        request(server.port, "POST", &target, "")
    };
    let (head, body) = check("/bob/two");
    assert_eq!(head.status, 200, "{}", server.log_text());
    assert_eq!(body, br#"{"present":true}"#);
    // Only through the repository that proxies it.
    assert_eq!(check("/alice/one").0.status, 404);
}
