//! An external special remote over real processes: the misbehaving test
//! remote of annex-test-support (a directory remote in shell that crashes,
//! hangs or answers garbage for keys named so), with and without ASYNC.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annex_branch::Branch;
use annex_protocol::repository::{ByteStream, ChunkStream, PutData};
use annex_protocol::{BytesSource, VecSink};
use annex_test_support::external::{install_example, install_misbehaving, misbehaving_log};
use annex_test_support::{pseudo_random, sha256e_key};

use super::*;

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    bin: PathBuf,
    store: PathBuf,
    branch: Arc<Mutex<Branch>>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    annex_test_support::git(&repo, &["init", "-q"]);
    let bin = tmp.path().join("bin");
    install_misbehaving(&bin, "misbehaving");
    install_misbehaving(&bin, "misbehaving-async");
    install_misbehaving(&bin, "misbehaving-unordered");
    install_example(&bin);
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let branch = Arc::new(Mutex::new(Branch::open(&repo).unwrap()));
    Fixture {
        _tmp: tmp,
        repo,
        bin,
        store,
        branch,
    }
}

const UUID: &str = "8d5bd4a7-5c39-4b0b-9a3e-2e0c9c1b1f00";

impl Fixture {
    fn remote_at(
        &self,
        uuid: &str,
        store: &Path,
        externaltype: &str,
        settings: &[(&str, &str)],
    ) -> ExternalRemote {
        let config = RemoteConfig::from_iter([
            ("type", "external"),
            ("externaltype", externaltype),
            ("encryption", "none"),
            ("directory", store.to_str().unwrap()),
        ]);
        let mut setup = Setup::new(Uuid::parse(uuid).unwrap(), self.branch.clone());
        setup.work = self.repo.clone();
        setup.name = Some("ext".into());
        setup
            .git_config
            .insert("annex-externaltype".into(), externaltype.into());
        for (k, v) in settings {
            setup.git_config.insert(k.to_string(), v.to_string());
        }
        ExternalRemote::open_in(&config, setup, Some(vec![self.bin.clone()])).unwrap()
    }

    fn remote(&self, externaltype: &str, settings: &[(&str, &str)]) -> ExternalRemote {
        self.remote_at(UUID, &self.store, externaltype, settings)
    }

    /// The processes the remote ran (their PIDs), in the order seen.
    fn pids(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for (pid, _) in misbehaving_log(&self.store) {
            if !out.contains(&pid) {
                out.push(pid);
            }
        }
        out
    }

    /// The gateway's temporary files of transfers, once the transfers
    /// have let go of them (they are removed in the background).
    fn staged_files(&self) -> Vec<PathBuf> {
        let files = || -> Vec<PathBuf> {
            annex_test_support::files_under(&self.repo.join(".git/annex/tmp/external"))
        };
        for _ in 0..200 {
            if files().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        files()
    }
}

fn content_key(len: usize, seed: u64, ext: &str) -> (Vec<u8>, Key) {
    let c = pseudo_random(len, seed);
    let k = Key::parse(&sha256e_key(&c, ext)).unwrap();
    (c, k)
}

async fn get_all(r: &ExternalRemote, k: &Key, offset: u64) -> Result<Option<Vec<u8>>, RepoError> {
    let mut sink = VecSink::new(1 << 30);
    match r
        .get(k, &AssociatedFile::default(), offset, &mut sink)
        .await?
    {
        GetOutcome::NotPresent => Ok(None),
        GetOutcome::Sent { .. } => {
            assert_eq!(sink.validity(), Some(Validity::Valid));
            Ok(Some(sink.into_data()))
        }
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Waits until the process `pid` is gone (a test deadline, not a timed
/// assertion: it fails only if the process never goes).
async fn gone(pid: u32) {
    for _ in 0..600 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("process {pid} still runs");
}

#[tokio::test]
async fn content_goes_in_and_out_through_one_process_kept_between_requests() {
    for externaltype in ["misbehaving", "misbehaving-async"] {
        let f = fixture();
        let r = f.remote(externaltype, &[]);
        let (c, k) = content_key(300_000, 1, ".bin");
        let file = AssociatedFile::default();
        assert!(!r.check_present(&k).await.unwrap());
        let mut src = BytesSource::new(c.clone());
        let out = r.put(&k, &file, &mut src).await.unwrap();
        assert_eq!(out, PutOutcome::Stored(Vec::new()));
        assert_eq!(src.offset_requested(), Some(0));
        assert_eq!(std::fs::read(f.store.join(k.as_str())).unwrap(), c);
        assert!(r.check_present(&k).await.unwrap());
        assert_eq!(get_all(&r, &k, 0).await.unwrap().unwrap(), c);
        assert_eq!(
            get_all(&r, &k, 299_000).await.unwrap().unwrap(),
            &c[299_000..]
        );
        assert_eq!(
            r.put(&k, &file, &mut BytesSource::new(c.clone()))
                .await
                .unwrap(),
            PutOutcome::AlreadyHave(Vec::new())
        );
        assert!(r.remove(&k, None).await.unwrap().removed);
        assert!(!r.check_present(&k).await.unwrap());
        assert_eq!(get_all(&r, &k, 0).await.unwrap(), None);
        assert!(r.ordered().await);
        assert_eq!(r.cost().await.unwrap(), 150.0);
        assert_eq!(r.availability().await, Availability::Global);
        // It serves the export requests too (see its documentation).
        assert!(r.export_supported().await);
        // One process, prepared once; nothing left in the gateway's
        // temporary files.
        assert_eq!(f.pids().len(), 1, "{externaltype}");
        let prepares = misbehaving_log(&f.store)
            .iter()
            .filter(|(_, l)| l == "PREPARE")
            .count();
        assert_eq!(prepares, 1, "{externaltype}");
        assert!(f.staged_files().is_empty(), "{:?}", f.staged_files());
    }
}

#[tokio::test]
async fn wrong_content_is_refused_before_the_remote_sees_it() {
    let f = fixture();
    let r = f.remote("misbehaving", &[]);
    let (c, k) = content_key(100_000, 2, ".bin");
    let mut wrong = c.clone();
    wrong[50_000] ^= 1;
    let out = r
        .put(&k, &AssociatedFile::default(), &mut BytesSource::new(wrong))
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::NotStored);
    assert!(!f.store.join(k.as_str()).exists());
    let stores = misbehaving_log(&f.store)
        .iter()
        .filter(|(_, l)| l.starts_with("TRANSFER STORE"))
        .count();
    assert_eq!(stores, 0);
    assert!(f.staged_files().is_empty());
}

#[tokio::test]
async fn the_disk_reserve_is_checked_before_the_content_is_asked_for() {
    let f = fixture();
    let mut r = f.remote("misbehaving", &[]);
    Arc::get_mut(&mut r.inner).unwrap().staging.reserve = u64::MAX / 2;
    let (c, k) = content_key(1000, 3, ".bin");
    let mut src = BytesSource::new(c);
    let err = r
        .put(&k, &AssociatedFile::default(), &mut src)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not enough free space"), "{err}");
    assert_eq!(src.offset_requested(), None);
}

#[tokio::test]
async fn a_remote_that_crashes_fails_the_request_and_a_new_process_serves_the_next() {
    for externaltype in ["misbehaving", "misbehaving-async"] {
        let f = fixture();
        let r = f.remote(externaltype, &[]);
        let file = AssociatedFile::default();
        let (c, k) = content_key(50_000, 4, ".crashstore");
        let err = r
            .put(&k, &file, &mut BytesSource::new(c))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("external special remote ext (git-annex-remote-")
                && err.contains("exited"),
            "{externaltype}: {err}"
        );
        // The next request works, on a new process.
        let (c, k) = content_key(50_000, 5, ".bin");
        let out = r.put(&k, &file, &mut BytesSource::new(c)).await.unwrap();
        assert_eq!(out, PutOutcome::Stored(Vec::new()), "{externaltype}");
        assert_eq!(f.pids().len(), 2, "{externaltype}");

        // A crash in the middle of a download fails it (the content is
        // there: not "not present").
        let (c, k) = content_key(50_000, 6, ".crashget");
        r.put(&k, &file, &mut BytesSource::new(c)).await.unwrap();
        let err = get_all(&r, &k, 0).await.unwrap_err().to_string();
        assert!(err.contains("exited"), "{externaltype}: {err}");
        assert!(r.check_present(&k).await.unwrap());
        assert!(f.staged_files().is_empty(), "{:?}", f.staged_files());
    }
}

#[tokio::test]
async fn a_remote_that_hangs_is_stopped_at_the_deadline() {
    for externaltype in ["misbehaving", "misbehaving-async"] {
        let f = fixture();
        let r = f.remote(externaltype, &[("annex-external-timeout", "1")]);
        let (_, k) = content_key(10, 7, ".hang");
        let err = r.check_present(&k).await.unwrap_err().to_string();
        assert!(
            err.contains("no answer to CHECKPRESENT within 1 s; the program was stopped"),
            "{externaltype}: {err}"
        );
        let hung = f.pids()[0];
        gone(hung).await;
        let (_, k) = content_key(10, 8, ".bin");
        assert!(!r.check_present(&k).await.unwrap());
        assert_eq!(f.pids().len(), 2);
    }
}

#[tokio::test]
async fn garbage_and_errors_fail_the_request_with_the_remotes_name() {
    for externaltype in ["misbehaving", "misbehaving-async"] {
        let f = fixture();
        let r = f.remote(externaltype, &[]);
        let (_, k) = content_key(10, 9, ".garbage");
        let err = r.check_present(&k).await.unwrap_err().to_string();
        let want = if externaltype.contains("async") {
            "unexpected non-async message"
        } else {
            "protocol error, unexpectedly received \"HELLO this is not the protocol\" (unable to parse command)"
        };
        assert!(
            err.starts_with("external special remote ext (git-annex-remote-") && err.contains(want),
            "{externaltype}: {err}"
        );
        let (_, k) = content_key(10, 10, ".error");
        let err = r.check_present(&k).await.unwrap_err().to_string();
        assert!(
            err.contains("error: something broke"),
            "{externaltype}: {err}"
        );
        let (_, k) = content_key(10, 11, ".bin");
        assert!(!r.check_present(&k).await.unwrap());
        assert_eq!(f.pids().len(), 3, "{externaltype}");
    }
}

#[tokio::test]
async fn a_missing_program_is_named_with_the_path_searched() {
    let f = fixture();
    let r = f.remote("nosuch", &[]);
    let (_, k) = content_key(10, 12, ".bin");
    let err = r.check_present(&k).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "Cannot run git-annex-remote-nosuch -- It is not installed in PATH ({})",
            f.bin.display()
        )
    );
}

/// A sink that, once the first bytes arrive, lets the gated remote write
/// the rest (creates `go`); with `fail`, it fails there instead.
struct GateSink {
    go: PathBuf,
    fail: bool,
    got: Vec<u8>,
    validity: Option<Validity>,
}

#[async_trait]
impl GetSink for GateSink {
    async fn data(&mut self, len: u64, stream: &mut dyn ByteStream) -> Result<(), RepoError> {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        stream.take(len).read_to_end(&mut buf).await?;
        self.got = buf;
        Ok(())
    }

    async fn data_chunks(
        &mut self,
        len: u64,
        chunks: &mut dyn ChunkStream,
    ) -> Result<(), RepoError> {
        while (self.got.len() as u64) < len {
            match std::future::poll_fn(|cx| chunks.poll_chunk(cx)).await {
                Some(Ok(c)) => self.got.extend_from_slice(&c),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(RepoError::Other("short".into())),
            }
            if self.fail {
                return Err(RepoError::Other("the client went away".into()));
            }
            if !self.go.exists() {
                std::fs::write(&self.go, b"").unwrap();
            }
        }
        Ok(())
    }

    async fn finish(&mut self, validity: Option<Validity>) -> Result<bool, RepoError> {
        self.validity = validity;
        Ok(true)
    }
}

#[tokio::test]
async fn an_ordered_download_streams_while_the_remote_writes() {
    let f = fixture();
    let r = f.remote("misbehaving", &[]);
    let (c, k) = content_key(400_000, 13, ".gated");
    std::fs::write(f.store.join(k.as_str()), &c).unwrap();
    let mut sink = GateSink {
        go: f.store.join(format!("{k}.go")),
        fail: false,
        got: Vec::new(),
        validity: None,
    };
    // The remote writes the second half only once the first has reached
    // the client: a download that waited for the whole file would never
    // end.
    let got = tokio::time::timeout(
        Duration::from_secs(120),
        r.get(&k, &AssociatedFile::default(), 1000, &mut sink),
    )
    .await
    .expect("the download waited for the whole file")
    .unwrap();
    assert_eq!(got, GetOutcome::Sent { accepted: true });
    assert_eq!(sink.got, &c[1000..]);
    assert_eq!(sink.validity, Some(Validity::Valid));
    assert!(f.staged_files().is_empty(), "{:?}", f.staged_files());
}

#[tokio::test]
async fn an_interrupted_download_leaves_what_the_remote_wrote_for_it_to_resume() {
    let f = fixture();
    let r = f.remote("misbehaving", &[]);
    let (c, k) = content_key(400_000, 14, ".gated");
    std::fs::write(f.store.join(k.as_str()), &c).unwrap();
    let mut sink = GateSink {
        go: f.store.join(format!("{k}.go")),
        fail: true,
        got: Vec::new(),
        validity: None,
    };
    let err = r
        .get(&k, &AssociatedFile::default(), 0, &mut sink)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("went away"), "{err}");
    // The remote, left waiting, is stopped.
    let first = f.pids()[0];
    gone(first).await;
    // Asked again, it continues the half it wrote, and the content (checked
    // against the key) reaches the client.
    let got = get_all(&r, &k, 0).await.unwrap().unwrap();
    assert_eq!(got, c);
    let resumed: Vec<String> = misbehaving_log(&f.store)
        .into_iter()
        .filter(|(_, l)| l.starts_with("RESUME"))
        .map(|(_, l)| l)
        .collect();
    assert_eq!(resumed, vec!["RESUME 200000".to_string()]);
    assert!(f.staged_files().is_empty(), "{:?}", f.staged_files());
}

#[tokio::test]
async fn requests_beyond_the_bound_wait_for_a_process_then_fail_naming_the_remote() {
    let f = fixture();
    let r = f.remote(
        "misbehaving",
        &[
            ("annex-external-processes", "1"),
            ("annex-external-timeout", "1"),
        ],
    );
    let (c, k) = content_key(100_000, 15, ".gated");
    std::fs::write(f.store.join(k.as_str()), &c).unwrap();
    let go = f.store.join(format!("{k}.go"));
    // A download holds the one process, waiting for `go`.
    let r2 = r.clone();
    let k2 = k.clone();
    let download = tokio::spawn(async move {
        let mut sink = VecSink::new(1 << 30);
        r2.get(&k2, &AssociatedFile::default(), 0, &mut sink)
            .await
            .map(|_| sink.into_data())
    });
    // Wait until it has begun (the remote logged the TRANSFER).
    while !misbehaving_log(&f.store)
        .iter()
        .any(|(_, l)| l.starts_with("TRANSFER RETRIEVE"))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, other) = content_key(10, 16, ".bin");
    let err = r.check_present(&other).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "external special remote ext (git-annex-remote-misbehaving): no process came free within 1 s (all 1 are busy)"
    );
    std::fs::write(&go, b"").unwrap();
    assert_eq!(download.await.unwrap().unwrap(), c);
    assert!(!r.check_present(&other).await.unwrap());
    assert_eq!(f.pids().len(), 1);
}

#[tokio::test]
async fn concurrent_requests_share_the_one_process_of_an_async_remote() {
    let f = fixture();
    let r = f.remote("misbehaving-async", &[("annex-external-processes", "8")]);
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let (c, k) = content_key(20_000 + i as usize, 100 + i, ".bin");
            let out = r
                .put(
                    &k,
                    &AssociatedFile::default(),
                    &mut BytesSource::new(c.clone()),
                )
                .await
                .unwrap();
            assert_eq!(out, PutOutcome::Stored(Vec::new()));
            assert_eq!(get_all(&r, &k, 0).await.unwrap().unwrap(), c);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(f.pids().len(), 1);
}

/// A source that hands out its content only once `gate` opens, and
/// records the offset asked for.
struct GatedSource {
    inner: BytesSource,
    gate: Option<tokio::sync::oneshot::Receiver<()>>,
    opened: Option<tokio::sync::oneshot::Sender<()>>,
}

#[async_trait]
impl PutSource for GatedSource {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        if let Some(tx) = self.opened.take() {
            let _ = tx.send(());
        }
        if let Some(gate) = self.gate.take() {
            let _ = gate.await;
        }
        self.inner.open(offset).await
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        self.inner.validity().await
    }
}

#[tokio::test]
async fn one_staged_file_serves_every_remote_an_upload_goes_to() {
    let f = fixture();
    let store2 = f.store.with_file_name("store2");
    std::fs::create_dir(&store2).unwrap();
    let a = f.remote("misbehaving", &[]);
    let b = f.remote_at(
        "1d2c3b4a-0000-4000-8000-000000000002",
        &store2,
        "misbehaving",
        &[],
    );
    let (c, k) = content_key(500_000, 17, ".bin");
    // The first upload is held back until the second has joined it.
    let (joined_tx, joined_rx) = tokio::sync::oneshot::channel();
    let mut first = GatedSource {
        inner: BytesSource::new(c.clone()),
        gate: Some(joined_rx),
        opened: None,
    };
    let mut second = GatedSource {
        inner: BytesSource::new(c.clone()),
        gate: None,
        opened: Some(joined_tx),
    };
    let file = AssociatedFile::default();
    let (x, y) = tokio::join!(a.put(&k, &file, &mut first), async {
        // After the first has started its staged file (its lock is there).
        while annex_test_support::files_under(&f.repo.join(".git/annex/tmp/external/put"))
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        b.put(&k, &file, &mut second).await
    });
    assert_eq!(x.unwrap(), PutOutcome::Stored(Vec::new()));
    assert_eq!(y.unwrap(), PutOutcome::Stored(Vec::new()));
    // The first sender sent everything, the second nothing (asked from the
    // key's size on).
    assert_eq!(first.inner.offset_requested(), Some(0));
    assert_eq!(second.inner.offset_requested(), Some(500_000));
    assert_eq!(std::fs::read(f.store.join(k.as_str())).unwrap(), c);
    assert_eq!(std::fs::read(store2.join(k.as_str())).unwrap(), c);
    assert!(f.staged_files().is_empty(), "{:?}", f.staged_files());
}

#[tokio::test]
async fn content_retrieved_is_checked_against_its_key_before_it_counts() {
    let f = fixture();
    let (c, k) = content_key(300_000, 21, ".wrongget");
    std::fs::write(f.store.join(k.as_str()), &c).unwrap();
    // A remote that writes in order: streamed as it comes, and the
    // download ends INVALID (or, when the check came first, is refused).
    let ordered = f.remote("misbehaving", &[]);
    let mut sink = VecSink::new(1 << 30);
    match ordered
        .get(&k, &AssociatedFile::default(), 0, &mut sink)
        .await
    {
        Ok(got) => {
            assert!(matches!(got, GetOutcome::Sent { .. }), "{got:?}");
            assert_eq!(sink.validity(), Some(Validity::Invalid));
        }
        Err(e) => assert!(e.to_string().contains("does not match"), "{e}"),
    }
    // A remote that does not: nothing is served, and the error names it.
    let unordered = f.remote("misbehaving-unordered", &[]);
    let mut sink = VecSink::new(1 << 30);
    let err = unordered
        .get(&k, &AssociatedFile::default(), 0, &mut sink)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match"), "{err}");
    assert!(
        err.contains("git-annex-remote-misbehaving-unordered"),
        "{err}"
    );
    assert!(sink.into_data().is_empty());
    // The right content still comes through.
    let (c2, k2) = content_key(300_000, 22, ".plain");
    std::fs::write(f.store.join(k2.as_str()), &c2).unwrap();
    assert_eq!(get_all(&unordered, &k2, 0).await.unwrap().unwrap(), c2);
    assert!(f.staged_files().is_empty(), "{:?}", f.staged_files());
}

#[tokio::test]
async fn exports_go_through_git_annex_s_example_remote() {
    let f = fixture();
    let r = f.remote("directory", &[]);
    assert!(r.export_supported().await);
    let (c, k) = content_key(100_000, 31, ".txt");
    let src = f.repo.join("src");
    std::fs::write(&src, &c).unwrap();
    r.store_export(&k, "dir/a b.txt", &src).await.unwrap();
    assert_eq!(std::fs::read(f.store.join("dir/a b.txt")).unwrap(), c);
    assert!(r.check_present_export(&k, "dir/a b.txt").await.unwrap());
    assert!(!r.check_present_export(&k, "dir/other.txt").await.unwrap());
    assert_eq!(
        r.rename_export(&k, "dir/a b.txt", "sub/b.txt")
            .await
            .unwrap(),
        Some(())
    );
    assert!(!f.store.join("dir/a b.txt").exists());
    assert_eq!(std::fs::read(f.store.join("sub/b.txt")).unwrap(), c);
    // (TRANSFEREXPORT RETRIEVE is not tried: git-annex's example passes
    // its source and destination the wrong way round.)
    r.remove_export(&k, "sub/b.txt").await.unwrap();
    assert!(!f.store.join("sub/b.txt").exists());
    r.remove_export_directory("sub").await.unwrap();
    // Keys go where git-annex's example puts them too.
    let mut srcs = BytesSource::new(c.clone());
    r.put(&k, &AssociatedFile::default(), &mut srcs)
        .await
        .unwrap();
    let at = f.store.join(k.hash_dir_mixed()).join(k.as_str());
    assert_eq!(std::fs::read(at).unwrap(), c);
    let info = r.info().await.unwrap();
    assert!(
        info.iter()
            .any(|(f2, v)| f2 == "repository location" && v == f.store.to_str().unwrap()),
        "{info:?}"
    );
    assert_eq!(
        r.list_configs().await.unwrap(),
        Some(vec![(
            "directory".to_string(),
            "store data here".to_string()
        )])
    );
}

/// Content that breaks off with an error after `cut` bytes.
struct BreakingSource {
    content: Vec<u8>,
    cut: usize,
    broken: Option<Breaking>,
}

struct Breaking(std::io::Cursor<Vec<u8>>);

impl tokio::io::AsyncRead for Breaking {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Read;
        let mut tmp = vec![0u8; buf.remaining().min(16 * 1024)];
        let n = self.0.read(&mut tmp)?;
        if n == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("the sender went away")));
        }
        buf.put_slice(&tmp[..n]);
        std::task::Poll::Ready(Ok(()))
    }
}

#[async_trait]
impl PutSource for BreakingSource {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        let from = offset as usize;
        self.broken = Some(Breaking(std::io::Cursor::new(
            self.content[from..self.cut].to_vec(),
        )));
        let stream: &mut dyn ByteStream = self.broken.as_mut().unwrap();
        Ok(PutData::Stream {
            len: (self.content.len() - from) as u64,
            stream,
        })
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(None)
    }
}

#[tokio::test]
async fn an_interrupted_upload_resumes_from_what_arrived() {
    let f = fixture();
    let r = f.remote("misbehaving", &[]);
    let (c, k) = content_key(300_000, 23, ".bin");
    let file = AssociatedFile::default();
    let mut broken = BreakingSource {
        content: c.clone(),
        cut: 150_000,
        broken: None,
    };
    assert!(r.put(&k, &file, &mut broken).await.is_err());
    assert!(!f.store.join(k.as_str()).exists());
    let mut src = BytesSource::new(c.clone());
    let out = r.put(&k, &file, &mut src).await.unwrap();
    assert_eq!(out, PutOutcome::Stored(Vec::new()));
    assert_eq!(src.offset_requested(), Some(150_000));
    assert_eq!(std::fs::read(f.store.join(k.as_str())).unwrap(), c);
    assert!(f.staged_files().is_empty(), "{:?}", f.staged_files());
}

#[tokio::test]
async fn downloads_of_one_key_at_once_share_one_retrieve() {
    let f = fixture();
    let r = f.remote("misbehaving", &[]);
    let (c, k) = content_key(400_000, 25, ".gated");
    std::fs::write(f.store.join(k.as_str()), &c).unwrap();
    let go = f.store.join(format!("{k}.go"));
    // The remote finishes only once both downloads have started.
    let (a, b, ()) = tokio::join!(get_all(&r, &k, 0), get_all(&r, &k, 1000), async {
        while !misbehaving_log(&f.store)
            .iter()
            .any(|(_, l)| l.starts_with("TRANSFER RETRIEVE"))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::write(&go, b"").unwrap();
    });
    assert_eq!(a.unwrap().unwrap(), c);
    assert_eq!(b.unwrap().unwrap(), &c[1000..]);
    let retrieves = misbehaving_log(&f.store)
        .iter()
        .filter(|(_, l)| l.starts_with("TRANSFER RETRIEVE"))
        .count();
    assert_eq!(retrieves, 1);
    assert!(f.staged_files().is_empty(), "{:?}", f.staged_files());
}

mod export_store {
    use super::*;
    use crate::export::{ExportPath, ExportStore, Retrieved};
    use annex_protocol::repository::ChunkReader;
    use export::ExternalExport;
    use tokio::io::AsyncReadExt;

    async fn read_all(r: Retrieved) -> Vec<u8> {
        let mut stream = r.stream;
        let mut out = Vec::new();
        ChunkReader::new(&mut *stream)
            .read_to_end(&mut out)
            .await
            .unwrap();
        out
    }

    #[tokio::test]
    async fn files_go_through_temp_files_and_only_the_keys_content_is_served() {
        let f = fixture();
        let s = ExternalExport::new(f.remote("misbehaving", &[]));
        let (c, k) = content_key(70_000, 1, ".bin");
        let path = ExportPath::new("d/e f.bin").unwrap();
        assert!(!s.check_present(&k, &path).await.unwrap());
        assert!(s.retrieve(&k, &path, 0).await.unwrap().is_none());

        // Given up before its commit: the remote is never asked.
        let mut w = s.start_store(&k, &path, c.len() as u64).await.unwrap();
        w.write(&c).unwrap();
        drop(w);
        assert!(!f.store.join("d").exists());
        let mut w = s.start_store(&k, &path, c.len() as u64).await.unwrap();
        w.write(&c[..1000]).unwrap();
        w.write(&c[1000..]).unwrap();
        w.commit().await.unwrap();
        assert_eq!(std::fs::read(f.store.join("d/e f.bin")).unwrap(), c);
        assert!(s.check_present(&k, &path).await.unwrap());
        let r = s.retrieve(&k, &path, 5).await.unwrap().unwrap();
        assert_eq!(r.len, c.len() as u64 - 5);
        assert_eq!(read_all(r).await, &c[5..]);

        // Other content at the path: not served.
        let mut wrong = c.clone();
        wrong[60_000] ^= 1;
        std::fs::write(f.store.join("d/e f.bin"), &wrong).unwrap();
        assert!(s.retrieve(&k, &path, 0).await.unwrap().is_none());

        let to = ExportPath::new("g.bin").unwrap();
        assert!(s.rename(&k, &path, &to).await.unwrap());
        assert!(!f.store.join("d").exists());
        s.remove(&k, &to).await.unwrap();
        assert!(!s.check_present(&k, &to).await.unwrap());
        // No temporary file is left in the gateway.
        let tmp = f.repo.join(".git/annex/tmp/external/export");
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }
}
