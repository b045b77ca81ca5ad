//! A gateway of ours in front of external special remotes that the real
//! git-annex made (`git annex initremote NAME type=external
//! externaltype=directory ...`): `ext` runs git-annex's own example
//! external remote (the shell script its Debian package ships with the
//! protocol's documentation, installed as `git-annex-remote-directory`,
//! asking for credentials at initremote); `bad` runs the misbehaving
//! remote of annex-test-support.
//!
//! The real git-annex, as a client over ssh and over our p2phttp, copies,
//! gets, fscks, drops and moves content on `ext` through the gateway;
//! then the real `git annex fsck --from ext` in the gateway finds all of
//! it valid, and content the real git-annex wrote into the remote reaches
//! the client through the gateway. `bad` returning wrong content,
//! crashing, hanging or answering garbage fails that request alone,
//! cleanly: `ext` goes on serving in the same gateway, and so does `bad`
//! for the next request, with a new process.

use std::path::{Path, PathBuf};
use std::process::Output;

use annex_test_support::external::{install_example, install_misbehaving, misbehaving_log};
use annex_test_support::proxy::ProxyEnv as Env;
use annex_test_support::{files_under, pseudo_random};

struct Setup {
    env: Env,
    gw: PathBuf,
    /// `ext`'s directory and UUID.
    store: PathBuf,
    uuid: String,
}

/// `git annex initremote NAME type=external externaltype=TYPE
/// directory=STORE encryption=none` in `gw`, with the credentials
/// git-annex's example asks for in the environment; the store and the
/// remote's UUID.
fn initremote(env: &Env, gw: &Path, name: &str, externaltype: &str) -> (PathBuf, String) {
    let store = env.dir(&format!("{name}-store"));
    std::fs::create_dir(&store).unwrap();
    let out = std::process::Command::new("git")
        .current_dir(gw)
        .args(["annex", "initremote", "-q", name, "type=external"])
        .arg(format!("externaltype={externaltype}"))
        .arg(format!("directory={}", store.display()))
        .arg("encryption=none")
        .env("PATH", &env.path)
        .env("MYLOGIN", "alice")
        .env("MYPASSWORD", "sesame")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initremote {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.git(
        gw,
        &["config", &format!("remote.{name}.annex-proxy"), "true"],
    );
    let uuid = env
        .git(gw, &["config", &format!("remote.{name}.annex-uuid")])
        .trim()
        .to_string();
    (store, uuid)
}

fn setup() -> Setup {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    install_example(&env.dir("bin"));
    let (gw, _) = env.init("gw", "gateway");
    let (store, uuid) = initremote(&env, &gw, "ext", "directory");
    let out = env.annex(&gw, &["updateproxy"]);
    assert!(out.contains("Started proxying for ext"), "{out}");
    Setup {
        env,
        gw,
        store,
        uuid,
    }
}

/// `git ARGS` in `dir` with the test's PATH, whatever its exit status.
fn git(env: &Env, dir: &Path, args: &[&str]) -> Output {
    env.run(dir, "git", args)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Setup {
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

    /// Where git-annex's example keeps `key`: `STORE/DIRHASH/KEY`.
    fn stored_at(&self, key: &str) -> PathBuf {
        let dir = self
            .env
            .git(
                &self.gw,
                &["annex", "examinekey", "--format=${hashdirmixed}", key],
            )
            .trim()
            .to_string();
        self.store.join(dir).join(key)
    }

    /// Content the real git-annex stored in `ext` from the gateway
    /// itself reaches `client` through the gateway.
    fn git_annex_written_content_reaches(&self, client: &Path, file: &str) {
        let env = &self.env;
        let content = pseudo_random(150_000, 77);
        std::fs::write(self.gw.join(file), &content).unwrap();
        env.git(&self.gw, &["annex", "add", "--quiet", file]);
        env.git(&self.gw, &["commit", "-q", "-m", file]);
        env.git(&self.gw, &["annex", "copy", "--quiet", "--to", "ext", file]);
        env.git(&self.gw, &["annex", "drop", "--quiet", "--force", file]);
        env.git(
            client,
            &[
                "pull",
                "-q",
                "--no-rebase",
                "--no-edit",
                "--allow-unrelated-histories",
            ],
        );
        env.git(
            client,
            &["annex", "get", "--quiet", "--from", "origin-ext", file],
        );
        assert_eq!(std::fs::read(client.join(file)).unwrap(), content);
        env.git(client, &["annex", "drop", "--quiet", file]);
    }

    /// Every operation of the client on `origin-ext`, for files of
    /// several sizes; their keys.
    fn exercise(&self, client: &Path, prefix: &str, seed: u64) -> Vec<String> {
        let mut keys = Vec::new();
        for (j, len) in [200_001usize, 10, 0].into_iter().enumerate() {
            let file = format!("{prefix}-{j}.bin");
            let key = self.env.exercise(
                client,
                "origin-ext",
                &self.uuid,
                &file,
                len,
                seed + j as u64,
            );
            // Where git-annex's example put it, with the content.
            let at = self.stored_at(&key);
            assert_eq!(
                std::fs::read(&at).unwrap(),
                pseudo_random(len, seed + j as u64),
                "{}",
                at.display()
            );
            keys.push(key);
        }
        keys
    }

    /// The gateway's temporary files of transfers to and from external
    /// remotes.
    fn gateway_tmp(&self) -> Vec<PathBuf> {
        files_under(&self.gw.join(".git/annex/tmp/external"))
            .into_iter()
            .filter(|p| p.extension().is_none_or(|e| e != "lck"))
            .collect()
    }
}

#[test]
fn git_annex_client_over_ssh_uses_an_external_remote_through_the_gateway() {
    let s = setup();
    let client = s.env.clone_client(&s.gw, "client");
    let info = s.env.git(&client, &["annex", "info", "origin"]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("proxying: ") && l.contains("origin-ext")),
        "{info}"
    );
    let keys = s.exercise(&client, "ssh", 1);
    s.gateway_fsck("ext", keys.len());
    s.git_annex_written_content_reaches(&client, "gw-made.bin");
    assert!(s.gateway_tmp().is_empty(), "{:?}", s.gateway_tmp());
}

#[test]
fn git_annex_client_over_http_uses_an_external_remote_through_the_gateway() {
    let s = setup();
    let env = &s.env;
    let (mut server, port) = env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let client = env.clone_http_client(&s.gw, "hclient", port);
    let keys = s.exercise(&client, "http", 100);
    s.git_annex_written_content_reaches(&client, "gw-made-h.bin");
    // Content recorded by the server reaches the gateway's branch when it
    // stops: the checks in the gateway come after.
    // SAFETY: signalling a child process this test started.
    unsafe {
        libc::kill(server.0.id() as i32, libc::SIGTERM);
    }
    let _ = server.0.wait();
    s.gateway_fsck("ext", keys.len());
}

/// Over p2phttp, where git-annex's "unavailable remote" tests can make
/// the remote unreachable (over the fake ssh, which ignores the host
/// name, they cannot). git-annex's own gateway passes all of them too.
#[test]
fn git_annex_testremote_passes_against_the_proxied_external_remote() {
    let s = setup();
    let (_server, port) = s.env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let client = s.env.clone_http_client(&s.gw, "hclient", port);
    let out = git(
        &s.env,
        &client,
        &[
            "annex",
            "testremote",
            "--fast",
            "--size=100KiB",
            "origin-ext",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" tests passed"),
        "{}",
        text(&out)
    );
}

/// A client's file `name` holding `len` bytes from `seed`, committed; its
/// key.
fn add(env: &Env, client: &Path, name: &str, len: usize, seed: u64) -> String {
    env.add_file(client, name, &pseudo_random(len, seed))
}

/// [`setup`] with `bad`, a misbehaving remote with a short deadline,
/// proxied too; its store and UUID.
fn with_bad(s: &Setup) -> (PathBuf, String) {
    let env = &s.env;
    install_misbehaving(&env.dir("bin"), "misbehaving");
    let (bad_store, bad) = initremote(env, &s.gw, "bad", "misbehaving");
    // A short deadline for the hanging remote.
    env.git(&s.gw, &["config", "remote.bad.annex-external-timeout", "3"]);
    env.annex(&s.gw, &["updateproxy"]);
    (bad_store, bad)
}

#[test]
fn a_misbehaving_external_remote_fails_its_own_requests_cleanly_over_ssh() {
    let s = setup();
    let bad = with_bad(&s);
    let client = s.env.clone_client(&s.gw, "client");
    // The gateway's log is its stderr, which ssh passes on to the client.
    faults(&s, &bad, &client, &|out| text(out));
}

#[test]
fn a_misbehaving_external_remote_fails_its_own_requests_cleanly_over_http() {
    let s = setup();
    let bad = with_bad(&s);
    let (_server, port) = s.env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let client = s.env.clone_http_client(&s.gw, "hclient", port);
    let log = s.env.dir("gw-p2phttp.log");
    // One server serves every request: each fault stops the process of
    // `bad` in it, and the next request starts a new one.
    faults(&s, &bad, &client, &|_| {
        std::fs::read_to_string(&log).unwrap_or_default()
    });
}

/// Each fault of `bad` (its store and UUID) through the gateway for
/// `client`: the request fails, `log` (what the gateway logged, given the
/// client's output) says why, and `ext` and `bad` serve on.
fn faults(
    s: &Setup,
    (bad_store, bad): &(PathBuf, String),
    client: &Path,
    log: &dyn Fn(&Output) -> String,
) {
    let env = &s.env;
    let client = client.to_owned();
    env.git(&client, &["config", "annex.retry", "0"]);
    // Keys that carry the whole extension, which tells the misbehaving
    // remote what to do.
    env.git(&client, &["config", "annex.maxextensionlength", "12"]);
    add(env, &client, "good.bin", 50_000, 1);
    // `ext` serves on, and so does `bad` for a well-behaved request.
    let ok = || {
        for remote in ["origin-ext", "origin-bad"] {
            env.git(
                &client,
                &["annex", "fsck", "--quiet", "--from", remote, "good.bin"],
            );
        }
    };
    for remote in ["origin-ext", "origin-bad"] {
        env.git(
            &client,
            &["annex", "copy", "--quiet", "--to", remote, "good.bin"],
        );
    }
    ok();

    // Wrong content retrieved: the client never gets it.
    add(env, &client, "x.wrongget", 300_000, 2);
    env.git(
        &client,
        &[
            "annex",
            "copy",
            "--quiet",
            "--to",
            "origin-bad",
            "x.wrongget",
        ],
    );
    env.git(&client, &["annex", "drop", "--quiet", "x.wrongget"]);
    let out = git(
        env,
        &client,
        &["annex", "get", "--from", "origin-bad", "x.wrongget"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let says = |why: &str| assert!(log(&out).contains(why), "{}", log(&out));
    says("the content retrieved does not match");
    assert!(std::fs::read(client.join("x.wrongget")).is_err());
    ok();

    // A crash in the middle of a store, and of a retrieve.
    add(env, &client, "y.crashstore", 100_000, 3);
    let out = git(
        env,
        &client,
        &["annex", "copy", "--to", "origin-bad", "y.crashstore"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let says = |why: &str| assert!(log(&out).contains(why), "{}", log(&out));
    // Its stderr reaches the gateway's log.
    says("git-annex-remote-misbehaving[");
    says("]: crashing on purpose");
    says("git-annex-remote-misbehaving exited");
    assert!(!env.whereis_uuids(&client, "y.crashstore").contains(bad));
    ok();
    add(env, &client, "z.crashget", 100_000, 4);
    env.git(
        &client,
        &[
            "annex",
            "copy",
            "--quiet",
            "--to",
            "origin-bad",
            "z.crashget",
        ],
    );
    env.git(&client, &["annex", "drop", "--quiet", "z.crashget"]);
    let out = git(
        env,
        &client,
        &["annex", "get", "--from", "origin-bad", "z.crashget"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        log(&out).contains("git-annex-remote-misbehaving exited"),
        "{}",
        log(&out)
    );
    assert!(std::fs::read(client.join("z.crashget")).is_err());
    ok();

    // A remote that never answers, and one that answers garbage or ERROR.
    for file in ["h.hang", "g.garbage", "e.error"] {
        add(env, &client, file, 1000, 5 + file.len() as u64);
        let out = git(env, &client, &["annex", "copy", "--to", "origin-bad", file]);
        assert!(!out.status.success(), "{file}: {}", text(&out));
        // The gateway's log says why.
        let why = match file {
            "h.hang" => "no answer to CHECKPRESENT within 3 s; the program was stopped",
            "g.garbage" => {
                "protocol error, unexpectedly received \"HELLO this is not the protocol\""
            }
            _ => "(git-annex-remote-misbehaving) error: something broke",
        };
        assert!(log(&out).contains(why), "{file}: {}", log(&out));
        ok();
    }

    // Each failure stopped its process, and a new one served what came
    // next; the gateway keeps no temporary files of them.
    let pids: std::collections::BTreeSet<u32> = misbehaving_log(bad_store)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(pids.len() >= 6, "{pids:?}");
    assert!(s.gateway_tmp().is_empty(), "{:?}", s.gateway_tmp());
    // git-annex in the gateway agrees about what `ext` holds.
    s.gateway_fsck("ext", 1);
}

/// The `ANSWER REQUEST => REPLY` lines the misbehaving remote at `store`
/// logged, in order.
fn answers(store: &Path) -> Vec<String> {
    misbehaving_log(store)
        .into_iter()
        .filter_map(|(_, l)| l.strip_prefix("ANSWER ").map(str::to_owned))
        .collect()
}

#[test]
fn the_remotes_requests_are_answered_as_git_annex_answers_them() {
    let s = setup();
    let env = &s.env;
    install_misbehaving(&env.dir("bin"), "misbehaving");
    let (store, bad) = initremote(env, &s.gw, "bad", "misbehaving");
    env.annex(&s.gw, &["updateproxy"]);
    let client = env.clone_client(&s.gw, "client");
    let key = annex_test_support::sha256e_key(b"probe", ".probe");
    let checkpresent = |dir: &Path, remote: &str| {
        let out = git(env, dir, &["annex", "checkpresentkey", &key, remote]);
        // Not present (1), not an error (100).
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    };
    let write = |ext: &str, value: &str| {
        std::fs::write(store.join(format!("{key}.{ext}")), value).unwrap();
    };

    // git-annex in the gateway, then our gateway for a client, then
    // git-annex again; each run reads the state the one before set.
    write("setstate", "state one");
    checkpresent(&s.gw, "bad");
    let by_git_annex = answers(&store);
    write("setstate", "state two");
    write("seturl", "http://example.invalid/probe");
    checkpresent(&client, "origin-bad");
    let by_us: Vec<String> = answers(&store).split_off(by_git_annex.len());
    std::fs::remove_file(store.join(format!("{key}.setstate"))).unwrap();
    std::fs::remove_file(store.join(format!("{key}.seturl"))).unwrap();
    checkpresent(&s.gw, "bad");
    let again: Vec<String> = answers(&store).split_off(by_git_annex.len() + by_us.len());

    let state = |v: &str| format!("GETSTATE {key} => {v}");
    assert_eq!(by_git_annex.last(), Some(&state("")), "{by_git_annex:?}");
    assert_eq!(by_us.last(), Some(&state("state one")), "{by_us:?}");
    assert_eq!(again.last(), Some(&state("state two")), "{again:?}");
    // Everything else is answered alike: GETCONFIG, GETCREDS (from
    // git-annex's creds cache), GETUUID, GETGITDIR, GETGITREMOTENAME,
    // DIRHASH, DIRHASH-LOWER.
    let n = by_git_annex.len() - 1;
    assert_eq!(n, 7, "{by_git_annex:?}");
    assert_eq!(by_us[..n], by_git_annex[..n]);
    assert_eq!(again[..n], by_git_annex[..n]);
    assert!(
        by_git_annex.contains(&"GETCREDS mycreds => CREDS alice sesame".to_string()),
        "{by_git_annex:?}"
    );
    assert!(
        by_git_annex.contains(&format!("GETUUID => {bad}")),
        "{by_git_annex:?}"
    );
    // SETURLPRESENT through our gateway: git-annex in the gateway sees
    // the URL, and the web holding the key.
    let out = env.git(&s.gw, &["annex", "whereis", "--json", "--key", &key]);
    assert!(out.contains("http://example.invalid/probe"), "{out}");
    assert!(
        out.contains("00000000-0000-0000-0000-000000000001"),
        "{out}"
    );
}

/// The files a TRANSFER STORE of `key` named, in the log of the
/// misbehaving remote at `store`.
fn stored_from(store: &Path, key: &str) -> Vec<String> {
    let prefix = format!("TRANSFER STORE {key} ");
    misbehaving_log(store)
        .into_iter()
        .filter_map(|(_, l)| l.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

#[test]
fn a_cluster_of_external_remotes_takes_one_staged_copy_of_an_upload() {
    let s = setup();
    let env = &s.env;
    install_misbehaving(&env.dir("bin"), "misbehaving");
    let (m1, u1) = initremote(env, &s.gw, "m1", "misbehaving");
    let (m2, u2) = initremote(env, &s.gw, "m2", "misbehaving");
    for n in ["m1", "m2", "ext"] {
        env.git(
            &s.gw,
            &["config", &format!("remote.{n}.annex-cluster-node"), "c"],
        );
    }
    env.annex(&s.gw, &["initcluster", "c"]);
    let out = env.annex(&s.gw, &["updatecluster"]);
    for n in ["m1", "m2", "ext"] {
        assert!(
            out.contains(&format!("Added node {n} to cluster: c")),
            "{out}"
        );
    }
    let client = env.clone_client(&s.gw, "client");
    let content = pseudo_random(300_000, 41);
    let key = env.add_file(&client, "c.bin", &content);
    env.git(
        &client,
        &["annex", "copy", "--quiet", "--to", "origin-c", "c.bin"],
    );
    // Every node has it; the two that log what they were given were
    // given the one file of the gateway's.
    for (store, _) in [(&m1, &u1), (&m2, &u2)] {
        assert_eq!(std::fs::read(store.join(&key)).unwrap(), content);
    }
    assert_eq!(std::fs::read(s.stored_at(&key)).unwrap(), content);
    let (f1, f2) = (stored_from(&m1, &key), stored_from(&m2, &key));
    assert_eq!(f1.len(), 1, "{f1:?}");
    assert_eq!(f1, f2);
    assert!(s.gateway_tmp().is_empty(), "{:?}", s.gateway_tmp());
    let w = env.whereis_uuids(&client, "c.bin");
    for u in [&u1, &u2, &s.uuid] {
        assert!(w.contains(u), "{w:?}");
    }
    // Back from the cluster, checked, and dropped from every node.
    env.git(&client, &["annex", "drop", "--quiet", "c.bin"]);
    env.git(
        &client,
        &["annex", "get", "--quiet", "--from", "origin-c", "c.bin"],
    );
    assert_eq!(std::fs::read(client.join("c.bin")).unwrap(), content);
    env.git(
        &client,
        &["annex", "fsck", "--quiet", "--from", "origin-c", "c.bin"],
    );
    for n in ["m1", "m2", "ext"] {
        s.gateway_fsck(n, 1);
    }
    env.git(
        &client,
        &["annex", "drop", "--quiet", "--from", "origin-c", "c.bin"],
    );
    assert!(!m1.join(&key).exists() && !m2.join(&key).exists());
    assert!(!s.stored_at(&key).exists());
}

#[test]
fn concurrent_transfers_share_the_one_process_of_an_async_remote() {
    let s = setup();
    let env = &s.env;
    install_misbehaving(&env.dir("bin"), "misbehaving-async");
    let (store, uuid) = initremote(env, &s.gw, "as", "misbehaving-async");
    env.annex(&s.gw, &["updateproxy"]);
    let (_server, port) = env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let client = env.clone_http_client(&s.gw, "hclient", port);
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("a{i}.bin"),
                pseudo_random(100_000 + i, 60 + i as u64),
            )
        })
        .collect();
    for (f, c) in &files {
        env.add_file(&client, f, c);
    }
    let mut args = vec!["annex", "copy", "--quiet", "-J4", "--to", "origin-as"];
    args.extend(files.iter().map(|(f, _)| f.as_str()));
    env.git(&client, &args);
    let mut drop_args = vec!["annex", "drop", "--quiet"];
    drop_args.extend(files.iter().map(|(f, _)| f.as_str()));
    env.git(&client, &drop_args);
    let mut get_args = vec!["annex", "get", "--quiet", "-J4", "--from", "origin-as"];
    get_args.extend(files.iter().map(|(f, _)| f.as_str()));
    env.git(&client, &get_args);
    for (f, c) in &files {
        assert_eq!(&std::fs::read(client.join(f)).unwrap(), c, "{f}");
        assert!(env.whereis_uuids(&client, f).contains(&uuid), "{f}");
    }
    // Every request went to one process, with job numbers.
    let log = misbehaving_log(&store);
    let pids: std::collections::BTreeSet<u32> = log.iter().map(|(p, _)| *p).collect();
    assert_eq!(pids.len(), 1, "{log:?}");
    let stores = log
        .iter()
        .filter(|(_, l)| l.starts_with("TRANSFER STORE "))
        .count();
    assert_eq!(stores, files.len(), "{log:?}");
}
