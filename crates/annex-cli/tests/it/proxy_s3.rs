//! A gateway of ours in front of S3 special remotes that the real
//! git-annex made (`git annex initremote NAME type=S3 ...
//! encryption=none`), on a local S3 server that checks signatures
//! (s3s-fs, started here): `s3plain` unchunked, `s3chunk` with
//! `chunk=1MiB` and `fileprefix=pre/`.
//!
//! The real git-annex, as a client over ssh and over our p2phttp,
//! copies, gets, fscks, drops and moves content on each through the
//! gateway; the real `git annex fsck --from NAME` in the gateway then
//! finds all of it valid, and content the real git-annex stored is
//! served through the gateway. Wrong content (protocol versions 0 to 4)
//! is stored nowhere; a copy killed halfway resumes past zero (after the
//! chunks of `s3chunk`, after the parts of an `s3plain` multipart
//! upload), and so
//! does a get (a ranged GET from S3); `git annex
//! testremote` passes against the proxied remote; a server that is down
//! fails alone, naming the remote; bad credentials fail with the
//! server's status (403 Forbidden), as git-annex's do.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use annex_protocol::client::{Client, ClientOptions};
use annex_protocol::message::ProtocolVersion;
use annex_protocol::repository::PutOutcome;
use annex_protocol::{AssociatedFile, BytesSource, Key, RepoError, Repository};
use annex_test_support::proxy::ProxyEnv as Env;
use annex_test_support::s3::S3Server;
use annex_test_support::{command, pseudo_random, run_ok, sha256e_key};

use crate::proxy_directory::content_written_in_the_gateway_reaches_the_client;

/// An S3 special remote of the gateway.
struct Remote {
    name: &'static str,
    bucket: &'static str,
    prefix: &'static str,
    uuid: String,
}

struct Setup {
    env: Env,
    server: S3Server,
    gw: PathBuf,
    remotes: Vec<Remote>,
}

const REMOTES: [(&str, &str, &str, Option<&str>); 2] = [
    ("s3plain", "plainbucket", "", None),
    ("s3chunk", "chunkbucket", "pre/", Some("chunk=1MiB")),
];

/// `git annex initremote NAME type=S3 ...` for the local server, with
/// its credentials in the environment (git-annex caches them in the
/// repository), then `extra` settings.
pub(crate) fn initremote(
    env: &Env,
    server: &S3Server,
    repo: &Path,
    name: &str,
    extra: &[&str],
) -> String {
    let port = format!("port={}", server.port);
    let mut args = vec![
        "annex",
        "initremote",
        "-q",
        name,
        "type=S3",
        "encryption=none",
        "host=127.0.0.1",
        port.as_str(),
        "protocol=http",
        "requeststyle=path",
    ];
    args.extend(extra);
    let mut cmd = command(repo, "git", &args);
    cmd.env("PATH", &env.path).envs(server.env());
    run_ok(&mut cmd);
    env.git(repo, &["config", &format!("remote.{name}.annex-uuid")])
        .trim()
        .to_string()
}

fn setup() -> Setup {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let server = S3Server::start(&env.dir("s3"));
    let (gw, _) = env.init("gw", "gateway");
    // git-annex refuses 127.0.0.1 without it, and so do we.
    env.git(
        &gw,
        &["config", "annex.security.allowed-ip-addresses", "all"],
    );
    let mut remotes = Vec::new();
    for (name, bucket, prefix, chunk) in REMOTES {
        let b = format!("bucket={bucket}");
        let p = format!("fileprefix={prefix}");
        let mut extra = vec![b.as_str()];
        if !prefix.is_empty() {
            extra.push(&p);
        }
        extra.extend(chunk);
        let uuid = initremote(&env, &server, &gw, name, &extra);
        env.git(
            &gw,
            &["config", &format!("remote.{name}.annex-proxy"), "true"],
        );
        remotes.push(Remote {
            name,
            bucket,
            prefix,
            uuid,
        });
    }
    let out = env.annex(&gw, &["updateproxy"]);
    for (name, ..) in REMOTES {
        assert!(
            out.contains(&format!("Started proxying for {name}")),
            "{out}"
        );
    }
    Setup {
        env,
        server,
        gw,
        remotes,
    }
}

impl Setup {
    fn remote(&self, name: &str) -> &Remote {
        self.remotes.iter().find(|r| r.name == name).unwrap()
    }

    /// The objects of `r`'s bucket whose names contain `needle`, as
    /// names in the bucket.
    fn objects(&self, r: &Remote, needle: &str) -> Vec<String> {
        let dir = self.server.root.join(r.bucket);
        self.server
            .objects(r.bucket, needle)
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect()
    }

    /// The real `git annex fsck --from NAME --all` in the gateway: it
    /// must succeed, having checked at least `at_least` keys.
    fn gateway_fsck(&self, name: &str, at_least: usize) {
        let out = self.env.git(
            &self.gw,
            &["annex", "fsck", "--from", name, "--all", "--json"],
        );
        let checked = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["success"] == serde_json::Value::Bool(true))
            .count();
        assert!(checked >= at_least, "fsck --from {name}: {out}");
    }

    /// The chunk log of `key` on the gateway's git-annex branch.
    fn chunk_log(&self, key: &str) -> String {
        let dir = self
            .env
            .git(
                &self.gw,
                &["annex", "examinekey", "--format=${hashdirlower}", key],
            )
            .trim()
            .to_string();
        let out = self.env.run(
            &self.gw,
            "git",
            &["show", &format!("git-annex:{dir}{key}.log.cnk")],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A protocol client of the gateway for the proxied `uuid`, through
    /// our `annex shell p2pstdio` as the fake ssh would run it.
    async fn client(&self, uuid: &str, version: u64) -> Result<Client, RepoError> {
        let mut cmd = tokio::process::Command::new(self.env.annex_program());
        cmd.args(["shell", "p2pstdio"])
            .arg(&self.gw)
            .args(["11111111-2222-4333-8444-555555555555", "--uuid", uuid])
            .env("PATH", &self.env.path)
            .current_dir(&self.gw);
        let opts = ClientOptions {
            max_version: ProtocolVersion(version),
            ..ClientOptions::default()
        };
        Client::spawn(cmd, &opts).await
    }
}

fn run_client(
    s: &Setup,
    client: &Path,
    prefix: &str,
    seed: u64,
    lens: &[usize],
) -> Vec<(&'static str, String, usize)> {
    let env = &s.env;
    let mut keys = Vec::new();
    for (i, r) in s.remotes.iter().enumerate() {
        let remote = format!("origin-{}", r.name);
        for (j, len) in lens.iter().enumerate() {
            let file = format!("{prefix}-{}-{j}.bin", r.name);
            let seed = seed + 10 * i as u64 + j as u64;
            let key = env.exercise(client, &remote, &r.uuid, &file, *len, seed);
            keys.push((r.name, key, *len));
        }
    }
    keys
}

/// The layout git-annex reads: chunks of the big file on s3chunk under
/// its prefix, and the chunk log recorded in the gateway's branch; the
/// unchunked remote's object named by the key.
fn check_layout(s: &Setup, keys: &[(&'static str, String, usize)]) {
    let (_, big, _) = keys
        .iter()
        .find(|(n, _, len)| *n == "s3chunk" && *len == 2_500_000)
        .unwrap();
    let r = s.remote("s3chunk");
    let hash = big.rsplit("--").next().unwrap();
    let (head, tail) = big.split_once("--").unwrap();
    let want: Vec<String> = (1..=3)
        .map(|n| format!("{}{head}-S1048576-C{n}--{tail}", r.prefix))
        .collect();
    assert_eq!(s.objects(r, hash), want);
    let log = s.chunk_log(big);
    assert!(
        log.lines()
            .any(|l| l.ends_with(&format!(" {}:1048576 3", r.uuid))),
        "{log}"
    );
    let (_, plain, _) = keys
        .iter()
        .find(|(n, _, len)| *n == "s3plain" && *len == 2_500_000)
        .unwrap();
    let r = s.remote("s3plain");
    let hash = plain.rsplit("--").next().unwrap();
    assert_eq!(s.objects(r, hash), vec![plain.clone()]);
}

/// Content the real git-annex stored in each remote (from the gateway
/// itself) reaches the client through the gateway.
fn git_annex_written_content_reaches_the_client(s: &Setup, client: &Path, file: &str) {
    let names: Vec<&str> = s.remotes.iter().map(|r| r.name).collect();
    content_written_in_the_gateway_reaches_the_client(
        &s.env, &s.gw, client, &names, file, 2_200_000,
    );
}

#[test]
fn git_annex_client_over_ssh_uses_s3_remotes_through_the_gateway() {
    let s = setup();
    let client = s.env.clone_client(&s.gw, "client");
    let info = s.env.git(&client, &["annex", "info", "origin"]);
    for (name, ..) in REMOTES {
        assert!(info.contains(&format!("origin-{name}")), "{info}");
    }
    // Several chunks and a partial last one; exactly one chunk; a small
    // file; an empty one.
    let keys = run_client(&s, &client, "ssh", 1, &[2_500_000, 1_048_576, 10, 0]);
    check_layout(&s, &keys);
    for r in &s.remotes {
        let n = keys.iter().filter(|(name, ..)| *name == r.name).count();
        s.gateway_fsck(r.name, n);
    }
    git_annex_written_content_reaches_the_client(&s, &client, "gw-made.bin");
}

#[test]
fn git_annex_client_over_http_uses_s3_remotes_through_the_gateway() {
    let s = setup();
    let env = &s.env;
    let (mut server, port) = env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let client = env.clone_http_client(&s.gw, "hclient", port);
    let keys = run_client(&s, &client, "http", 100, &[2_500_000, 0]);
    git_annex_written_content_reaches_the_client(&s, &client, "gw-made-h.bin");
    // What the server recorded reaches the gateway's branch when it
    // stops: the checks in the gateway come after.
    // SAFETY: signalling a child process this test started.
    unsafe {
        libc::kill(server.0.id() as i32, libc::SIGTERM);
    }
    let _ = server.0.wait();
    check_layout(&s, &keys);
    for r in &s.remotes {
        let n = keys.iter().filter(|(name, ..)| *name == r.name).count();
        s.gateway_fsck(r.name, n);
    }
}

#[test]
fn wrong_content_is_stored_nowhere_whatever_the_protocol_version() {
    let s = setup();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let file = AssociatedFile::default();
    for r in &s.remotes {
        let content = pseudo_random(2_300_000, 500 + r.name.len() as u64);
        let key = Key::parse(&sha256e_key(&content, ".bin")).unwrap();
        let hash = key.name().split('.').next().unwrap().to_string();
        for version in 0..=4 {
            let mut wrong = content.clone();
            wrong[2_000_000] ^= 0x55;
            let out = rt.block_on(async {
                let c = s.client(&r.uuid, version).await.unwrap();
                let out = c.put(&key, &file, &mut BytesSource::new(wrong)).await;
                c.close().await.unwrap();
                out
            });
            assert_eq!(out.unwrap(), PutOutcome::NotStored, "{} v{version}", r.name);
            let left = s.objects(r, &hash);
            assert!(left.is_empty(), "{} v{version}: {left:?}", r.name);
        }
        // The right content, in the oldest version, is stored.
        let out = rt.block_on(async {
            let c = s.client(&r.uuid, 0).await.unwrap();
            let out = c.put(&key, &file, &mut BytesSource::new(content)).await;
            c.close().await.unwrap();
            out
        });
        assert_eq!(out.unwrap(), PutOutcome::Stored(Vec::new()), "{}", r.name);
        s.env.git(
            &s.gw,
            &[
                "annex",
                "fsck",
                "--quiet",
                "--from",
                r.name,
                "--key",
                key.as_str(),
            ],
        );
    }
}

#[test]
fn a_copy_killed_halfway_resumes_past_zero() {
    let s = setup();
    let env = &s.env;
    let r = s.remote("s3chunk");
    let client = env.clone_client(&s.gw, "client");
    let content = pseudo_random(12 << 20, 42);
    std::fs::write(client.join("big.bin"), &content).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "big.bin"]);
    let key = env
        .git(&client, &["annex", "lookupkey", "big.bin"])
        .trim()
        .to_string();
    let hash = key.rsplit("--").next().unwrap().to_string();
    let mut child = env.slow_copy(&client, "origin-s3chunk", "big.bin", "2MiB");
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.objects(r, &hash).len() < 3 {
        assert!(Instant::now() < deadline, "the upload never got going");
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the upload ended before it could be interrupted: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling the process group this test started.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(500));
    let stored = s.objects(r, &hash).len();
    assert!((3..12).contains(&stored), "{stored} chunks");
    let out = command(
        &client,
        "git",
        &[
            "annex",
            "copy",
            "--debug",
            "--to",
            "origin-s3chunk",
            "big.bin",
        ],
    )
    .env("PATH", &env.path)
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let from: u64 = err
        .lines()
        .find_map(|l| l.split("P2P < PUT-FROM ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no PUT-FROM: {err}"));
    assert!(from >= 3 << 20 && from % (1 << 20) == 0, "PUT-FROM {from}");
    assert_eq!(s.objects(r, &hash).len(), 12);
    s.env.git(
        &s.gw,
        &["annex", "fsck", "--quiet", "--from", r.name, "--key", &key],
    );
}

/// The records of unfinished multipart uploads the gateway keeps (not
/// a record being written, which is not one until renamed into place).
fn upload_records(gw: &Path) -> Vec<String> {
    std::fs::read_dir(gw.join(".git/annex/s3-uploads"))
        .map(|d| {
            d.filter_map(|e| {
                let path = e.ok()?.path();
                if path.extension().is_some_and(|x| x == "tmp") {
                    return None;
                }
                std::fs::read_to_string(path).ok()
            })
            .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_copy_to_an_unchunked_remote_killed_halfway_resumes_after_its_parts() {
    let s = setup();
    let env = &s.env;
    let r = s.remote("s3plain");
    // Parts of 5 MiB for our gateway's uploads (read from remote.log).
    env.git(
        &s.gw,
        &["annex", "enableremote", "s3plain", "partsize=5MiB"],
    );
    let client = env.clone_client(&s.gw, "client");
    let content = pseudo_random(12 << 20, 44);
    std::fs::write(client.join("big.bin"), &content).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "big.bin"]);
    let key = env
        .git(&client, &["annex", "lookupkey", "big.bin"])
        .trim()
        .to_string();
    let mut child = env.slow_copy(&client, "origin-s3plain", "big.bin", "2MiB");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Until the gateway has recorded a part the server acknowledged.
    while !upload_records(&s.gw).iter().any(|t| t.contains("\npart ")) {
        assert!(Instant::now() < deadline, "the upload never got going");
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the upload ended before it could be interrupted: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling the process group this test started.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
    assert!(s.objects(r, &key).is_empty());
    // What the gateway kept of the interrupted upload, shown if the
    // resume is not taken.
    let kept = upload_records(&s.gw);
    let out = command(
        &client,
        "git",
        &[
            "annex",
            "copy",
            "--debug",
            "--to",
            "origin-s3plain",
            "big.bin",
        ],
    )
    .env("PATH", &env.path)
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let from: u64 = err
        .lines()
        .find_map(|l| l.split("P2P < PUT-FROM ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no PUT-FROM: {err}"));
    assert!(
        from >= 5 << 20 && from % (5 << 20) == 0,
        "PUT-FROM {from}; the gateway's records before the resume: {kept:?}; the client's log: {err}"
    );
    assert_eq!(s.objects(r, &key), vec![key.clone()]);
    // Nothing left of the upload, half-written records included.
    let left: Vec<_> = std::fs::read_dir(s.gw.join(".git/annex/s3-uploads"))
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    s.env.git(
        &s.gw,
        &["annex", "fsck", "--quiet", "--from", r.name, "--key", &key],
    );
}

#[test]
fn a_get_killed_halfway_resumes_past_zero() {
    let s = setup();
    let env = &s.env;
    let client = env.clone_client(&s.gw, "client");
    for r in &s.remotes {
        let remote = format!("origin-{}", r.name);
        let file = format!("{}.bin", r.name);
        let content = pseudo_random(12 << 20, 43 + r.name.len() as u64);
        std::fs::write(client.join(&file), &content).unwrap();
        env.git(&client, &["annex", "add", "--quiet", &file]);
        env.git(
            &client,
            &["annex", "copy", "--quiet", "--to", &remote, &file],
        );
        env.git(&client, &["annex", "drop", "--quiet", &file]);
        let key = env
            .git(&client, &["annex", "lookupkey", &file])
            .trim()
            .to_string();
        let partial = client.join(".git/annex/tmp").join(&key);
        let mut child = env.slow_get(&client, &remote, &file, "2MiB");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(&partial).map_or(0, |m| m.len()) < 3 << 20 {
            assert!(Instant::now() < deadline, "the download never got going");
            if let Ok(Some(st)) = child.try_wait() {
                panic!("the download ended before it could be interrupted: {st}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling the process group this test started.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
        let _ = child.wait();
        let had = std::fs::metadata(&partial).unwrap().len();
        assert!(had < 12 << 20, "{}: {had} bytes already", r.name);
        let out = command(
            &client,
            "git",
            &["annex", "get", "--debug", "--from", &remote, &file],
        )
        .env("PATH", &env.path)
        .output()
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", r.name);
        // The client asks from where its partial file ends, and the
        // gateway sends the rest (fetched from S3 with a ranged GET).
        let from: u64 = err
            .lines()
            .find_map(|l| l.split("P2P > GET ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no GET: {err}"));
        assert!(from >= 3 << 20, "{}: GET {from}", r.name);
        // Only the rest was sent, and was right the first time (after a
        // failure git-annex would ask again from zero).
        let data: Vec<u64> = err
            .lines()
            .filter_map(|l| l.split("P2P < DATA ").nth(1))
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        assert_eq!(data, vec![(12 << 20) - from], "{}: {err}", r.name);
        assert_eq!(err.matches("P2P > GET ").count(), 1, "{}: {err}", r.name);
        assert_eq!(std::fs::read(client.join(&file)).unwrap(), content);
    }
}

#[test]
fn git_annex_testremote_passes_against_the_proxied_remote() {
    let s = setup();
    // Over p2phttp: testremote's "unavailable remote" renames the host,
    // which the fake ssh of these tests ignores.
    let (_server, port) = s.env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let client = s.env.clone_http_client(&s.gw, "client", port);
    for r in &s.remotes {
        let out = s.env.run(
            &client,
            "git",
            &[
                "annex",
                "testremote",
                "--fast",
                &format!("origin-{}", r.name),
            ],
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}: {text}", r.name);
        assert!(
            text.contains("All ") && text.contains(" tests passed"),
            "{text}"
        );
    }
}

#[test]
fn a_server_down_fails_alone_and_bad_credentials_are_named() {
    let mut s = setup();
    let env = &s.env;
    // A directory special remote next to the S3 ones.
    let store = env.dir("dstore");
    std::fs::create_dir(&store).unwrap();
    env.git(
        &s.gw,
        &[
            "annex",
            "initremote",
            "-q",
            "dir",
            "type=directory",
            &format!("directory={}", store.display()),
            "encryption=none",
        ],
    );
    env.git(&s.gw, &["config", "remote.dir.annex-proxy", "true"]);
    env.annex(&s.gw, &["updateproxy"]);
    let client = env.clone_client(&s.gw, "client");
    std::fs::write(client.join("f.bin"), pseudo_random(3000, 3)).unwrap();
    env.git(&client, &["annex", "add", "--quiet", "f.bin"]);
    s.server.stop();
    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--to", "origin-s3plain", "f.bin"],
    );
    assert!(!out.status.success());
    // The gateway says why in its log (here, the ssh session's stderr).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("S3 remote s3plain: cannot connect to http://127.0.0.1:"),
        "{err}"
    );
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-dir", "f.bin"],
    );

    // Credentials the server does not know: the server's status (and
    // its error code), as git-annex reports them.
    s.server.restart();
    let creds =
        s.gw.join(".git/annex/creds")
            .join(&s.remote("s3plain").uuid);
    std::fs::write(&creds, "annextestkey\nwrong secret\n").unwrap();
    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--to", "origin-s3plain", "f.bin"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("S3 remote s3plain: ") && err.contains("403 Forbidden"),
        "{err}"
    );
    // The same credentials in git-annex itself.
    std::fs::write(s.gw.join("g.bin"), pseudo_random(3000, 4)).unwrap();
    env.git(&s.gw, &["annex", "add", "--quiet", "g.bin"]);
    let theirs = env.run(&s.gw, "git", &["annex", "copy", "--to", "s3plain", "g.bin"]);
    let theirs = format!(
        "{}{}",
        String::from_utf8_lossy(&theirs.stdout),
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert!(
        theirs.contains("statusCode = 403, statusMessage = \"Forbidden\""),
        "{theirs}"
    );
}
