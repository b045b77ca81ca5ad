//! A gateway of ours in front of directory special remotes that the real
//! git-annex made (`git annex initremote NAME type=directory ...
//! encryption=none`): `dplain` unchunked, `dchunk` with `chunk=64KiB`,
//! `dlegacy` with the deprecated `chunksize=64KiB`.
//!
//! The real git-annex, as a client over ssh and over our p2phttp, copies,
//! gets, fscks, drops and moves content on each through the gateway;
//! then the real `git annex fsck --from NAME` in the gateway finds all
//! of it valid (reading what we wrote, chunks and chunk log included),
//! and content the real git-annex wrote into the remotes reaches the
//! client through the gateway. Wrong content sent through the gateway
//! is refused and leaves nothing behind, an interrupted upload resumes,
//! annex.diskreserve is kept, and remotes the gateway cannot serve
//! (encrypted ones) are refused with a clear error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use annex_protocol::client::{Client, ClientOptions};
use annex_protocol::repository::{ByteStream, PutData, PutOutcome, PutSource, Validity};
use annex_protocol::{AssociatedFile, BytesSource, Key, RepoError, Repository};
use annex_test_support::proxy::ProxyEnv as Env;
use annex_test_support::{files_under, pseudo_random, sha256e_key};

/// A directory special remote of the gateway.
struct Special {
    name: &'static str,
    store: PathBuf,
    uuid: String,
}

struct Setup {
    env: Env,
    gw: PathBuf,
    remotes: Vec<Special>,
}

const REMOTES: [(&str, Option<&str>); 3] = [
    ("dplain", None),
    ("dchunk", Some("chunk=64KiB")),
    ("dlegacy", Some("chunksize=64KiB")),
];

fn setup() -> Setup {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let (gw, _) = env.init("gw", "gateway");
    let mut remotes = Vec::new();
    for (name, chunking) in REMOTES {
        let mut params = vec!["encryption=none"];
        params.extend(chunking);
        let (store, uuid) = env.init_directory_remote(&gw, name, &format!("{name}-store"), &params);
        env.git(
            &gw,
            &["config", &format!("remote.{name}.annex-proxy"), "true"],
        );
        remotes.push(Special { name, store, uuid });
    }
    let out = env.annex(&gw, &["updateproxy"]);
    for (name, _) in REMOTES {
        assert!(
            out.contains(&format!("Started proxying for {name}")),
            "{out}"
        );
    }
    Setup { env, gw, remotes }
}

impl Setup {
    fn remote(&self, name: &str) -> &Special {
        self.remotes.iter().find(|r| r.name == name).unwrap()
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
    async fn client(&self, uuid: &str) -> Result<Client, RepoError> {
        let mut cmd = tokio::process::Command::new(self.env.annex_program());
        cmd.args(["shell", "p2pstdio"])
            .arg(&self.gw)
            .args(["11111111-2222-4333-8444-555555555555", "--uuid", uuid])
            .env("PATH", &self.env.path)
            .current_dir(&self.gw);
        Client::spawn(cmd, &ClientOptions::default()).await
    }
}

/// The files below `store` whose path names `key`'s hash, temporary
/// ones apart.
fn stored(store: &Path, hash: &str) -> Vec<PathBuf> {
    files_under(store)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(hash) && !p.starts_with(store.join("tmp")))
        .collect()
}

fn run_client(s: &Setup, client: &Path, prefix: &str, seed: u64) {
    let env = &s.env;
    let info = env.git(client, &["annex", "info", "origin"]);
    let proxying = info
        .lines()
        .find(|l| l.starts_with("proxying: "))
        .unwrap_or_default();
    for (name, _) in REMOTES {
        let n = format!("origin-{name}");
        assert!(proxying.split_whitespace().any(|w| w == n), "{info}");
    }
    let mut keys = Vec::new();
    for (i, r) in s.remotes.iter().enumerate() {
        let remote = format!("origin-{}", r.name);
        let seed = seed + 10 * i as u64;
        // Several chunks and a partial last one; exactly two chunks; a
        // small file; an empty one.
        for (j, len) in [200_001usize, 131_072, 10, 0].into_iter().enumerate() {
            let file = format!("{prefix}-{}-{j}.bin", r.name);
            let key = env.exercise(client, &remote, &r.uuid, &file, len, seed + j as u64);
            keys.push((r.name, key, len));
        }
    }
    // The layout git-annex reads: chunks of the big file on dchunk, and
    // the chunk log recorded in the gateway's branch.
    let (_, big, _) = keys
        .iter()
        .find(|(n, _, len)| *n == "dchunk" && *len == 200_001)
        .unwrap();
    let dchunk = s.remote("dchunk");
    let hash = big.rsplit("--").next().unwrap();
    let chunks: Vec<String> = stored(&dchunk.store, hash)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let base = big.split_once("--").unwrap();
    let want: Vec<String> = (1..=4)
        .map(|n| format!("{}-S65536-C{n}--{}", base.0, base.1))
        .collect();
    assert_eq!(chunks, want);
    let log = s.chunk_log(big);
    assert!(
        log.lines()
            .any(|l| l.ends_with(&format!(" {}:65536 4", dchunk.uuid))),
        "{log}"
    );
    // The real git-annex in the gateway checks every key on every remote.
    for r in &s.remotes {
        let n = keys.iter().filter(|(name, _, _)| *name == r.name).count();
        s.gateway_fsck(r.name, n);
    }
}

/// Content the real git-annex stored in each remote (from the gateway
/// itself) reaches the client through the gateway.
fn git_annex_written_content_reaches_the_client(s: &Setup, client: &Path, file: &str) {
    let names: Vec<&str> = s.remotes.iter().map(|r| r.name).collect();
    content_written_in_the_gateway_reaches_the_client(&s.env, &s.gw, client, &names, file, 150_000);
}

/// Content of `len` bytes that the real git-annex in the gateway `gw`
/// stored in each of the special remotes `remotes` reaches `client`
/// through the gateway (`origin-NAME`), from each in turn.
pub(crate) fn content_written_in_the_gateway_reaches_the_client(
    env: &Env,
    gw: &Path,
    client: &Path,
    remotes: &[&str],
    file: &str,
    len: usize,
) {
    let content = pseudo_random(len, 77);
    std::fs::write(gw.join(file), &content).unwrap();
    env.git(gw, &["annex", "add", "--quiet", file]);
    env.git(gw, &["commit", "-q", "-m", file]);
    for r in remotes {
        env.git(gw, &["annex", "copy", "--quiet", "--to", r, file]);
    }
    env.git(gw, &["annex", "drop", "--quiet", "--force", file]);
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
    for r in remotes {
        let remote = format!("origin-{r}");
        env.git(
            client,
            &["annex", "get", "--quiet", "--from", &remote, file],
        );
        assert_eq!(std::fs::read(client.join(file)).unwrap(), content);
        env.git(client, &["annex", "drop", "--quiet", file]);
    }
}

#[test]
fn git_annex_client_over_ssh_uses_directory_remotes_through_the_gateway() {
    let s = setup();
    let client = s.env.clone_client(&s.gw, "client");
    run_client(&s, &client, "ssh", 1);
    git_annex_written_content_reaches_the_client(&s, &client, "gw-made.bin");
}

#[test]
fn git_annex_client_over_http_uses_directory_remotes_through_the_gateway() {
    let s = setup();
    let env = &s.env;
    let (mut server, port) = env.serve_p2phttp(&s.gw, "gw-p2phttp.log");
    let client = env.clone_http_client(&s.gw, "hclient", port);
    // Content recorded by the server reaches the gateway's branch when it
    // stops: the checks in the gateway come after.
    let mut keys = Vec::new();
    for (i, r) in s.remotes.iter().enumerate() {
        let remote = format!("origin-{}", r.name);
        for (j, len) in [200_001usize, 65_536, 0].into_iter().enumerate() {
            let file = format!("http-{}-{j}.bin", r.name);
            let seed = 100 + 10 * i as u64 + j as u64;
            keys.push((
                r.name,
                env.exercise(&client, &remote, &r.uuid, &file, len, seed),
            ));
        }
    }
    git_annex_written_content_reaches_the_client(&s, &client, "gw-made-h.bin");
    // SAFETY: signalling a child process this test started.
    unsafe {
        libc::kill(server.0.id() as i32, libc::SIGTERM);
    }
    let _ = server.0.wait();
    for r in &s.remotes {
        let n = keys.iter().filter(|(name, _)| *name == r.name).count();
        s.gateway_fsck(r.name, n);
    }
    let (_, big) = keys.iter().find(|(n, _)| *n == "dchunk").unwrap();
    let log = s.chunk_log(big);
    let u = &s.remote("dchunk").uuid;
    assert!(
        log.lines().any(|l| l.ends_with(&format!(" {u}:65536 4"))),
        "{log}"
    );
}

/// Content that stops coming after `data` without ending: the upload
/// hangs until it is given up.
struct Stalling {
    data: Vec<u8>,
    pos: usize,
}

impl tokio::io::AsyncRead for Stalling {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.pos == self.data.len() {
            return std::task::Poll::Pending;
        }
        let n = buf.remaining().min(self.data.len() - self.pos);
        let pos = self.pos;
        buf.put_slice(&self.data[pos..pos + n]);
        self.pos += n;
        std::task::Poll::Ready(Ok(()))
    }
}

/// Sends the first `cut` bytes of `content`, then stalls.
struct StallingSource {
    content: Vec<u8>,
    cut: usize,
    stream: Option<Stalling>,
}

#[async_trait::async_trait]
impl PutSource for StallingSource {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        let from = offset as usize;
        self.stream = Some(Stalling {
            data: self.content[from..self.cut].to_vec(),
            pos: 0,
        });
        let stream: &mut dyn ByteStream = self.stream.as_mut().unwrap();
        Ok(PutData::Stream {
            len: (self.content.len() - from) as u64,
            stream,
        })
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(Some(Validity::Valid))
    }
}

/// The total size of the content files under `dir` (not the lock files
/// of receives, which hold their claims on free space), once it stops
/// changing.
fn settled_size(dir: &Path) -> u64 {
    let size = || -> u64 {
        files_under(dir)
            .iter()
            .filter(|p| p.extension().is_none_or(|e| e != "lck"))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = size();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = size();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn uploads_through_the_gateway_are_verified_resumed_and_kept_within_the_reserve() {
    let s = setup();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let file = AssociatedFile::default();
    for r in &s.remotes {
        let content = pseudo_random(200_000, 500 + r.name.len() as u64);
        let key = Key::parse(&sha256e_key(&content, ".bin")).unwrap();
        let hash = key.name().split('.').next().unwrap().to_string();

        // Wrong content: refused, nothing left in the remote.
        let mut wrong = content.clone();
        wrong[150_000] ^= 0x55;
        let out = rt.block_on(async {
            let c = s.client(&r.uuid).await.unwrap();
            let out = c.put(&key, &file, &mut BytesSource::new(wrong)).await;
            c.close().await.unwrap();
            out
        });
        assert_eq!(out.unwrap(), PutOutcome::NotStored, "{}", r.name);
        let left = files_under(&r.store);
        assert!(left.is_empty(), "{}: {left:?}", r.name);

        // An upload that stops after 150000 bytes, its sender gone.
        rt.block_on(async {
            let c = s.client(&r.uuid).await.unwrap();
            let mut src = StallingSource {
                content: content.clone(),
                cut: 150_000,
                stream: None,
            };
            let put = tokio::time::timeout(Duration::from_secs(3), c.put(&key, &file, &mut src));
            assert!(put.await.is_err(), "{}: the stalled upload ended", r.name);
            drop(c);
        });
        let partial = settled_size(&r.store.join("tmp"));
        assert!(partial > 0 && partial <= 150_000, "{}: {partial}", r.name);
        assert!(stored(&r.store, &hash).is_empty(), "{}", r.name);

        // Resumed where it stopped.
        let (out, asked) = rt.block_on(async {
            let c = s.client(&r.uuid).await.unwrap();
            let mut src = BytesSource::new(content.clone());
            let out = c.put(&key, &file, &mut src).await;
            c.close().await.unwrap();
            (out, src.offset_requested())
        });
        assert_eq!(out.unwrap(), PutOutcome::Stored(Vec::new()), "{}", r.name);
        assert_eq!(asked, Some(partial), "{}", r.name);
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

    // annex.diskreserve of the gateway, on the remote's filesystem.
    s.env
        .git(&s.gw, &["config", "annex.diskreserve", "1000000TB"]);
    let content = pseudo_random(1000, 999);
    let key = Key::parse(&sha256e_key(&content, "")).unwrap();
    let r = s.remote("dplain");
    let err = rt.block_on(async {
        let c = s.client(&r.uuid).await.unwrap();
        let out = c.put(&key, &file, &mut BytesSource::new(content)).await;
        let _ = c.close().await;
        out.unwrap_err()
    });
    assert!(err.to_string().contains("free space"), "{err}");
    assert!(stored(&r.store, key.name()).is_empty());
}

#[test]
fn special_remotes_the_gateway_cannot_serve_are_refused() {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let (gw, _) = env.init("gw", "gateway");
    let (store, uuid) = env.init_directory_remote(&gw, "denc", "enc-store", &["encryption=shared"]);
    env.git(&gw, &["config", "remote.denc.annex-proxy", "true"]);
    env.annex(&gw, &["updateproxy"]);
    let gws = gw.display().to_string();
    let out = env.run(
        &gw,
        env!("CARGO_BIN_EXE_annex"),
        &[
            "shell",
            "p2pstdio",
            &gws,
            "11111111-2222-4333-8444-555555555555",
            "--uuid",
            &uuid,
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot proxy to denc: encryption=shared is not supported"),
        "{err}"
    );
    // The real git-annex client sees the copy fail.
    let client = env.clone_client(&gw, "client");
    std::fs::write(client.join("f"), b"content").unwrap();
    env.git(&client, &["annex", "add", "--quiet", "f"]);
    let out = env.run(
        &client,
        "git",
        &["annex", "copy", "--to", "origin-denc", "f"],
    );
    assert!(!out.status.success());
    assert!(files_under(&store).is_empty());
}
