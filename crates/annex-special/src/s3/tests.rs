//! The S3 remote against a real S3 server (s3s-fs, checking signatures),
//! started by each test on a free port with a directory of its own.

use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use annex_branch::logs::remote_config::RemoteConfig;
use annex_branch::Branch;
use annex_protocol::repository::{
    ChunkStream, GetOutcome, PutData, PutOutcome, PutSource, Repository, Validity,
};
use annex_protocol::{AssociatedFile, BytesSource, Key, RepoError, Uuid};
use annex_test_support::s3::{CountingRelay, S3Server, ACCESS_KEY, SECRET_KEY};
use async_trait::async_trait;
use bytes::Bytes;

use super::client::AddressPolicy;
use super::config::S3Config;
use super::creds::Creds;
use super::S3Remote;
use crate::chunk::{chunk_key, chunk_log_path};

const U: &str = "794fec3b-bb73-45fb-8f9b-4f11e080df39";
const BUCKET: &str = "annextest";

struct Fixture {
    _tmp: tempfile::TempDir,
    server: S3Server,
    branch: Arc<Mutex<Branch>>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    annex_test_support::git(&repo, &["init", "-q"]);
    let server = S3Server::start(&tmp.path().join("s3"));
    let branch = Arc::new(Mutex::new(Branch::open(&repo).unwrap()));
    Fixture {
        _tmp: tmp,
        server,
        branch,
    }
}

fn creds() -> Creds {
    Creds {
        key_id: ACCESS_KEY.into(),
        secret: SECRET_KEY.into(),
        token: None,
    }
}

impl Fixture {
    fn config(&self, extra: &[(&str, &str)]) -> RemoteConfig {
        let port = self.server.port.to_string();
        let mut c: RemoteConfig = [
            ("type", "S3"),
            ("name", "s3"),
            ("encryption", "none"),
            ("bucket", BUCKET),
            ("host", "127.0.0.1"),
            ("port", port.as_str()),
            ("protocol", "http"),
            ("requeststyle", "path"),
            ("datacenter", "US"),
            ("storageclass", "STANDARD"),
        ]
        .into_iter()
        .collect();
        for (k, v) in extra {
            c.0.insert((*k).into(), (*v).into());
        }
        c
    }

    /// The remote with `extra` settings, its bucket made if missing.
    async fn remote(&self, extra: &[(&str, &str)]) -> S3Remote {
        let r = self.remote_with(extra, Some(&creds()));
        if !r.store().bucket_exists().await.unwrap() {
            r.store().create_bucket(None).await.unwrap();
        }
        r
    }

    fn remote_with(&self, extra: &[(&str, &str)], creds: Option<&Creds>) -> S3Remote {
        let config = S3Config::from_remote_config(&self.config(extra)).unwrap();
        S3Remote::new(
            Uuid::parse(U).unwrap(),
            config,
            creds,
            AddressPolicy::all(),
            self.branch.clone(),
        )
        .unwrap()
    }

    /// The objects in the bucket whose names contain `needle`.
    fn objects(&self, needle: &str) -> Vec<String> {
        let dir = self.server.root.join(BUCKET);
        self.server
            .objects(BUCKET, needle)
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect()
    }
}

fn content(len: usize) -> Vec<u8> {
    annex_test_support::pseudo_random(len, len as u64)
}

fn key_of(c: &[u8]) -> Key {
    Key::parse(&annex_test_support::sha256e_key(c, ".bin")).unwrap()
}

fn hash_of(k: &Key) -> String {
    k.name().split('.').next().unwrap().to_owned()
}

async fn get_all(r: &S3Remote, k: &Key, offset: u64) -> Option<Vec<u8>> {
    let mut sink = annex_protocol::VecSink::new(1 << 30);
    match r
        .get(k, &AssociatedFile::default(), offset, &mut sink)
        .await
        .unwrap()
    {
        GetOutcome::NotPresent => None,
        GetOutcome::Sent { accepted } => {
            assert!(accepted);
            assert_eq!(sink.validity(), Some(Validity::Valid));
            Some(sink.into_data())
        }
    }
}

/// Content sent from the offset asked for, failing after `cut` bytes of
/// the whole when told to.
struct Cutting {
    content: Vec<u8>,
    cut: Option<usize>,
    asked: Option<u64>,
    stream: Option<io::Cursor<Vec<u8>>>,
    failing: Option<FailAfter>,
}

struct FailAfter(io::Cursor<Vec<u8>>);

impl tokio::io::AsyncRead for FailAfter {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.0.position() == self.0.get_ref().len() as u64 {
            return Poll::Ready(Err(io::Error::other("connection lost")));
        }
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Cutting {
    fn new(content: &[u8], cut: Option<usize>) -> Cutting {
        Cutting {
            content: content.to_vec(),
            cut,
            asked: None,
            stream: None,
            failing: None,
        }
    }
}

#[async_trait]
impl PutSource for Cutting {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        self.asked = Some(offset);
        let from = offset as usize;
        let len = (self.content.len() - from) as u64;
        match self.cut {
            Some(cut) => {
                self.failing = Some(FailAfter(io::Cursor::new(self.content[from..cut].to_vec())));
                Ok(PutData::Stream {
                    len,
                    stream: self.failing.as_mut().unwrap(),
                })
            }
            None => {
                self.stream = Some(io::Cursor::new(self.content[from..].to_vec()));
                Ok(PutData::Stream {
                    len,
                    stream: self.stream.as_mut().unwrap(),
                })
            }
        }
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(Some(Validity::Valid))
    }
}

#[tokio::test]
async fn whole_objects_stored_found_read_from_offsets_and_removed() {
    let f = fixture();
    let r = f.remote(&[("fileprefix", "pre/")]).await;
    let file = AssociatedFile::default();
    for len in [0usize, 1, 300_000] {
        let c = content(len);
        let k = key_of(&c);
        assert!(!r.check_present(&k).await.unwrap());
        assert_eq!(get_all(&r, &k, 0).await, None);
        let out = r.put(&k, &file, &mut BytesSource::new(c.clone())).await;
        assert_eq!(out.unwrap(), PutOutcome::Stored(Vec::new()), "{len}");
        // Named as git-annex names it.
        assert_eq!(f.objects(&hash_of(&k)), vec![format!("pre/{k}")], "{len}");
        assert!(r.check_present(&k).await.unwrap());
        assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
        if len > 0 {
            let from = len as u64 / 3;
            assert_eq!(get_all(&r, &k, from).await.unwrap(), &c[from as usize..]);
            assert_eq!(get_all(&r, &k, len as u64).await.unwrap(), b"");
        }
        let again = r.put(&k, &file, &mut BytesSource::new(c.clone())).await;
        assert_eq!(again.unwrap(), PutOutcome::AlreadyHave(Vec::new()));
        assert!(r.remove(&k, None).await.unwrap().removed);
        assert!(!r.check_present(&k).await.unwrap());
        assert!(f.objects(&hash_of(&k)).is_empty());
    }
    assert!(r.lock_content(&key_of(b"x")).await.unwrap().is_none());
}

#[tokio::test]
async fn chunks_named_logged_resumed_and_read_back() {
    let f = fixture();
    let r = f.remote(&[("chunk", "64KiB")]).await;
    let file = AssociatedFile::default();
    let c = content(200_000);
    let k = key_of(&c);
    // Interrupted past the second chunk.
    let mut src = Cutting::new(&c, Some(140_000));
    assert!(r.put(&k, &file, &mut src).await.is_err());
    assert_eq!(src.asked, Some(0));
    assert!(!r.check_present(&k).await.unwrap());
    let name = |n| chunk_key(&k, 65536, n).unwrap().to_string();
    assert_eq!(f.objects(&hash_of(&k)), vec![name(1), name(2)]);
    // Resumed after the complete chunks.
    let mut src = Cutting::new(&c, None);
    let out = r.put(&k, &file, &mut src).await.unwrap();
    assert_eq!(out, PutOutcome::Stored(Vec::new()));
    assert_eq!(src.asked, Some(131_072));
    assert_eq!(
        f.objects(&hash_of(&k)),
        (1..=4).map(name).collect::<Vec<_>>()
    );
    let log = f.branch.lock().unwrap().read(&chunk_log_path(&k)).unwrap();
    assert!(
        String::from_utf8(log)
            .unwrap()
            .ends_with(&format!(" {U}:65536 4\n")),
        "chunk log"
    );
    assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
    assert_eq!(get_all(&r, &k, 70_000).await.unwrap(), &c[70_000..]);
    assert_eq!(get_all(&r, &k, 196_608).await.unwrap(), &c[196_608..]);
    // Without chunking configured, the chunk log finds it.
    let plain = f.remote_with(&[], Some(&creds()));
    assert!(plain.check_present(&k).await.unwrap());
    assert_eq!(get_all(&plain, &k, 0).await.unwrap(), c);
    assert!(r.remove(&k, None).await.unwrap().removed);
    assert!(f.objects(&hash_of(&k)).is_empty());
    let log = f.branch.lock().unwrap().read(&chunk_log_path(&k)).unwrap();
    assert!(String::from_utf8(log).unwrap().ends_with(":65536 0\n"));
}

#[tokio::test]
async fn wrong_content_is_stored_nowhere() {
    let f = fixture();
    // Single objects, chunks, and a multipart upload (parts of 5 MiB).
    for (extra, len) in [
        (vec![], 300_000usize),
        (vec![("chunk", "64KiB")], 300_000),
        (vec![("partsize", "5MiB")], 6 << 20),
    ] {
        let r = f.remote(&extra).await;
        let c = content(len);
        let k = key_of(&c);
        for at in [0, len / 2, len - 1] {
            let mut wrong = c.clone();
            wrong[at] ^= 1;
            let out = r
                .put(&k, &AssociatedFile::default(), &mut BytesSource::new(wrong))
                .await
                .unwrap();
            assert_eq!(out, PutOutcome::NotStored, "{extra:?} {at}");
            assert!(f.objects(&hash_of(&k)).is_empty(), "{extra:?} {at}");
            assert!(!r.check_present(&k).await.unwrap());
        }
        // Not the key's size: refused before anything is sent.
        let out = r
            .put(
                &k,
                &AssociatedFile::default(),
                &mut BytesSource::new(c[..10].to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::NotStored);
        // And the right content after all that.
        let out = r
            .put(
                &k,
                &AssociatedFile::default(),
                &mut BytesSource::new(c.clone()),
            )
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::Stored(Vec::new()), "{extra:?}");
        assert_eq!(get_all(&r, &k, 0).await.unwrap(), c, "{extra:?}");
        assert!(r.remove(&k, None).await.unwrap().removed);
    }
    // A WORM key is checked by its size; the sender's INVALID refuses it.
    let r = f.remote(&[]).await;
    let k = Key::parse("WORM-s5-m1700000000--hello").unwrap();
    let out = r
        .put(
            &k,
            &AssociatedFile::default(),
            &mut BytesSource::new(&b"hello"[..]).with_validity(Validity::Invalid),
        )
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::NotStored);
    assert!(f.objects("hello").is_empty());
}

/// Chunks handed over by a sender that hashes the content itself (a
/// cluster gateway), and says at the end whether it matched.
struct Vouched {
    chunks: Vec<Bytes>,
    matched: bool,
    stream: Option<VouchedChunks>,
}

struct VouchedChunks(Vec<Bytes>);

impl ChunkStream for VouchedChunks {
    fn poll_chunk(&mut self, _cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        Poll::Ready((!self.0.is_empty()).then(|| Ok(self.0.remove(0))))
    }

    fn checked_by_sender(&self) -> bool {
        true
    }
}

#[async_trait]
impl PutSource for Vouched {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        assert_eq!(offset, 0);
        let len = self.chunks.iter().map(|c| c.len() as u64).sum();
        self.stream = Some(VouchedChunks(self.chunks.clone()));
        Ok(PutData::Chunks {
            len,
            chunks: self.stream.as_mut().unwrap(),
        })
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(Some(Validity::Valid))
    }

    async fn content_verified(&mut self) -> Result<bool, RepoError> {
        Ok(self.matched)
    }
}

#[tokio::test]
async fn a_sender_that_hashes_for_all_its_nodes_decides() {
    let f = fixture();
    let r = f.remote(&[("chunk", "64KiB")]).await;
    let c = content(150_000);
    let k = key_of(&c);
    let chunks = vec![
        Bytes::from(c[..100_000].to_vec()),
        Bytes::from(c[100_000..].to_vec()),
    ];
    // The sender found it wrong (here it is not: the remote trusts the
    // sender's hash and does not hash again).
    let mut src = Vouched {
        chunks: chunks.clone(),
        matched: false,
        stream: None,
    };
    let out = r
        .put(&k, &AssociatedFile::default(), &mut src)
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::NotStored);
    assert!(f.objects(&hash_of(&k)).is_empty());
    let mut src = Vouched {
        chunks,
        matched: true,
        stream: None,
    };
    let out = r
        .put(&k, &AssociatedFile::default(), &mut src)
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Stored(Vec::new()));
    assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
}

#[tokio::test]
async fn multipart_uploads_complete_and_read_back() {
    let f = fixture();
    let r = f.remote(&[("partsize", "5MiB")]).await;
    let c = content((11 << 20) + 7);
    let k = key_of(&c);
    let out = r
        .put(
            &k,
            &AssociatedFile::default(),
            &mut BytesSource::new(c.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Stored(Vec::new()));
    assert_eq!(f.objects(&hash_of(&k)), vec![k.to_string()]);
    assert_eq!(get_all(&r, &k, 6 << 20).await.unwrap(), &c[6 << 20..]);
}

#[tokio::test]
async fn a_get_from_an_offset_costs_the_server_only_the_rest() {
    let f = fixture();
    let relay = CountingRelay::start(f.server.port);
    let port = relay.port.to_string();
    let len = 3_000_000usize;
    for (n, chunk) in [None, Some("1MiB")].into_iter().enumerate() {
        let mut extra = vec![("port", port.as_str())];
        extra.extend(chunk.map(|c| ("chunk", c)));
        let r = f.remote(&extra).await;
        let c = content(len + n);
        let k = key_of(&c);
        let file = AssociatedFile::default();
        let out = r.put(&k, &file, &mut BytesSource::new(c.clone())).await;
        assert_eq!(out.unwrap(), PutOutcome::Stored(Vec::new()));
        for from in [2_500_000u64, 1_200_000] {
            let before = relay.answered();
            assert_eq!(get_all(&r, &k, from).await.unwrap(), &c[from as usize..]);
            let sent = relay.answered() - before;
            let rest = c.len() as u64 - from;
            // The rest, and a few answers' headers (HEADs, the GETs').
            assert!(
                (rest..rest + 16 * 1024).contains(&sent),
                "{chunk:?} from {from}: the server sent {sent} bytes for {rest}"
            );
        }
    }
}

#[tokio::test]
async fn another_remotes_bucket_and_bad_credentials_are_refused() {
    let f = fixture();
    let r = f.remote(&[]).await;
    r.store()
        .put_bytes(
            "annex-uuid",
            Bytes::from_static(b"11111111-2222-4333-8444-555555555555"),
        )
        .await
        .unwrap();
    let fresh = f.remote_with(&[], Some(&creds()));
    let err = fresh.check_present(&key_of(b"x")).await.unwrap_err();
    assert!(
        err.to_string().contains("it is another remote's bucket"),
        "{err}"
    );
    r.store()
        .put_bytes("annex-uuid", Bytes::from_static(U.as_bytes()))
        .await
        .unwrap();
    let fresh = f.remote_with(&[], Some(&creds()));
    assert!(!fresh.check_present(&key_of(b"x")).await.unwrap());

    let wrong = Creds {
        secret: "not the secret".into(),
        ..creds()
    };
    let bad = f.remote_with(&[], Some(&wrong));
    let err = bad.check_present(&key_of(b"x")).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("S3 remote s3: ")
            && msg.contains("403")
            && msg.contains("SignatureDoesNotMatch"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_an_error_naming_the_remote() {
    let mut f = fixture();
    let r = f.remote(&[]).await;
    let c = content(1000);
    let k = key_of(&c);
    f.server.stop();
    let err = r.check_present(&k).await.unwrap_err().to_string();
    assert!(
        err.starts_with("S3 remote s3: cannot connect to http://127.0.0.1:"),
        "{err}"
    );
    let err = r
        .put(&k, &AssociatedFile::default(), &mut BytesSource::new(c))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("S3 remote s3: "), "{err}");
}

#[tokio::test]
async fn loopback_is_refused_unless_allowed() {
    let f = fixture();
    let _ = f.remote(&[]).await;
    let config = S3Config::from_remote_config(&f.config(&[])).unwrap();
    let r = S3Remote::new(
        Uuid::parse(U).unwrap(),
        config,
        Some(&creds()),
        AddressPolicy::from_setting(None),
        f.branch.clone(),
    )
    .unwrap();
    let err = r
        .check_present(&key_of(b"x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Configuration of annex.security.allowed-ip-addresses does not allow accessing address 127.0.0.1:"),
        "{err}"
    );
}

mod export {
    use super::*;
    use crate::export::{ExportPath, ExportStore, PendingStore};
    use crate::s3::export::S3Export;
    use annex_protocol::repository::ChunkReader;
    use tokio::io::AsyncReadExt;

    fn p(s: &str) -> ExportPath {
        ExportPath::new(s).unwrap()
    }

    /// The key requests name, which this store ignores.
    fn k() -> Key {
        Key::parse("WORM-s5-m1--x").unwrap()
    }

    /// Writes `pieces` on a blocking thread, as the export layer does.
    async fn written(
        mut pending: Box<dyn PendingStore>,
        pieces: Vec<Vec<u8>>,
    ) -> Box<dyn PendingStore> {
        tokio::task::spawn_blocking(move || {
            for piece in pieces {
                pending.write(&piece).unwrap();
            }
            pending
        })
        .await
        .unwrap()
    }

    async fn read(s: &S3Export, path: &str, offset: u64) -> Option<Vec<u8>> {
        let r = s.retrieve(&k(), &p(path), offset).await.unwrap()?;
        let mut stream = r.stream;
        let mut out = Vec::new();
        ChunkReader::new(&mut *stream)
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out.len() as u64, r.len);
        Some(out)
    }

    async fn files_at_prefixed_paths_appear_only_when_committed(
        extra: &[(&str, &str)],
        len: usize,
    ) {
        let f = fixture();
        let mut settings = vec![("fileprefix", "pre/")];
        settings.extend_from_slice(extra);
        let s = S3Export::new(f.remote(&settings).await);
        let c = content(len);
        let path = p("dir/sub/file one.bin");
        assert_eq!(s.object(&path).unwrap(), "pre/dir/sub/file one.bin");
        let pending = s.start_store(&k(), &path, c.len() as u64).await.unwrap();
        let pieces: Vec<Vec<u8>> = c.chunks(100_000).map(<[u8]>::to_vec).collect();
        let pending = written(pending, pieces).await;
        // All written, not yet committed: nothing at the path.
        assert!(!s.check_present(&k(), &path).await.unwrap());
        assert!(f.objects("file one").is_empty());
        pending.commit().await.unwrap();
        assert!(s.check_present(&k(), &path).await.unwrap());
        assert_eq!(f.objects("file one"), vec!["pre/dir/sub/file one.bin"]);
        assert_eq!(read(&s, "dir/sub/file one.bin", 0).await.unwrap(), c);
        assert_eq!(
            read(&s, "dir/sub/file one.bin", 12345).await.unwrap(),
            &c[12345..]
        );

        // Given up after all its content: nothing, and what was there
        // stays.
        let other = content(len + 1);
        let pending = s
            .start_store(&k(), &path, other.len() as u64)
            .await
            .unwrap();
        let pending = written(pending, vec![other.clone()]).await;
        drop(pending);
        let pending = s.start_store(&k(), &p("gone"), 3).await.unwrap();
        drop(written(pending, vec![b"ab".to_vec(), b"c".to_vec()]).await);
        assert_eq!(read(&s, "dir/sub/file one.bin", 0).await.unwrap(), c);
        assert!(!s.check_present(&k(), &p("gone")).await.unwrap());
        assert!(read(&s, "gone", 0).await.is_none());

        // No rename in S3: the layer copies.
        assert!(!s.rename(&k(), &path, &p("elsewhere")).await.unwrap());
        s.remove(&k(), &path).await.unwrap();
        s.remove(&k(), &path).await.unwrap();
        assert!(!s.check_present(&k(), &path).await.unwrap());
        assert!(f.objects("file one").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_puts() {
        files_at_prefixed_paths_appear_only_when_committed(&[], 300_007).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn multipart_uploads() {
        files_at_prefixed_paths_appear_only_when_committed(&[("partsize", "5MiB")], (11 << 20) + 3)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn empty_files_appear_at_the_commit() {
        let f = fixture();
        let s = S3Export::new(f.remote(&[]).await);
        let pending = s.start_store(&k(), &p("empty"), 0).await.unwrap();
        assert!(!s.check_present(&k(), &p("empty")).await.unwrap());
        pending.commit().await.unwrap();
        assert_eq!(read(&s, "empty", 0).await.unwrap(), b"");
        assert_eq!(read(&s, "empty", 5).await.unwrap(), b"");
    }
}

/// Multipart uploads the server holds unfinished (s3s-fs keeps them as
/// `.upload_id-*` files at its root).
fn pending_uploads(f: &Fixture) -> Vec<String> {
    std::fs::read_dir(&f.server.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload_id-"))
        .collect()
}

/// Puts `c` to `r` (parts of 5 MiB), broken off after 7 MiB: one part
/// acknowledged, the upload pending, its record written.
async fn broken_off(f: &Fixture, r: &S3Remote, c: &[u8], k: &Key) {
    let mut src = Cutting::new(c, Some(7 << 20));
    assert!(r
        .put(k, &AssociatedFile::default(), &mut src)
        .await
        .is_err());
    assert_eq!(src.asked, Some(0));
    assert!(f.objects(&hash_of(k)).is_empty());
    assert!(!r.check_present(k).await.unwrap());
    assert!(r.upload_record_path(k).exists());
    assert!(
        pending_uploads(f).iter().any(|n| n.ends_with(".part-1")),
        "{:?}",
        pending_uploads(f)
    );
}

#[tokio::test]
async fn an_interrupted_multipart_upload_resumes_after_its_parts() {
    let f = fixture();
    let r = f.remote(&[("partsize", "5MiB")]).await;
    let c = content((11 << 20) + 7);
    let k = key_of(&c);
    broken_off(&f, &r, &c, &k).await;
    // Resumed where the acknowledged part ends, hashed end to end.
    let mut src = Cutting::new(&c, None);
    let out = r
        .put(&k, &AssociatedFile::default(), &mut src)
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Stored(Vec::new()));
    assert_eq!(src.asked, Some(5 << 20));
    assert!(!r.upload_record_path(&k).exists());
    assert!(pending_uploads(&f).is_empty(), "{:?}", pending_uploads(&f));
    assert_eq!(f.objects(&hash_of(&k)), vec![k.to_string()]);
    assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
}

#[tokio::test]
async fn a_damaged_record_or_parts_the_server_lacks_start_from_zero() {
    let f = fixture();
    let r = f.remote(&[("partsize", "5MiB")]).await;
    let c = content((11 << 20) + 7);
    let k = key_of(&c);
    let put_all = |expect_from: u64| {
        let r = r.clone();
        let k = k.clone();
        let c = c.clone();
        async move {
            let mut src = Cutting::new(&c, None);
            let out = r
                .put(&k, &AssociatedFile::default(), &mut src)
                .await
                .unwrap();
            assert_eq!(out, PutOutcome::Stored(Vec::new()));
            assert_eq!(src.asked, Some(expect_from));
            assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
            assert!(r.remove(&k, None).await.unwrap().removed);
        }
    };
    // A record that is not one.
    broken_off(&f, &r, &c, &k).await;
    let path = r.upload_record_path(&k);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("part 5242880", "part 5242881")).unwrap();
    put_all(0).await;
    assert!(!path.exists());
    // A part the server no longer has as recorded: the old upload is
    // aborted, nothing of it left behind.
    broken_off(&f, &r, &c, &k).await;
    let part = pending_uploads(&f)
        .into_iter()
        .find(|n| n.ends_with(".part-1"))
        .unwrap();
    std::fs::write(f.server.root.join(&part), b"short").unwrap();
    put_all(0).await;
    assert!(pending_uploads(&f).is_empty(), "{:?}", pending_uploads(&f));
    // Untouched, it resumes.
    broken_off(&f, &r, &c, &k).await;
    put_all(5 << 20).await;
    assert!(pending_uploads(&f).is_empty(), "{:?}", pending_uploads(&f));
}

#[tokio::test]
async fn wrong_content_across_a_resume_aborts_the_upload() {
    let f = fixture();
    let r = f.remote(&[("partsize", "5MiB")]).await;
    let c = content((11 << 20) + 7);
    let k = key_of(&c);
    // Wrong in the part acknowledged before the interruption, right in
    // what the resumed put sends: the whole does not hash to the key.
    for at in [1 << 20, 8 << 20] {
        let mut first = c.clone();
        let mut rest = c.clone();
        if at < 5 << 20 {
            first[at] ^= 1;
        } else {
            rest[at] ^= 1;
        }
        broken_off(&f, &r, &first, &k).await;
        let mut src = Cutting::new(&rest, None);
        let out = r
            .put(&k, &AssociatedFile::default(), &mut src)
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::NotStored, "{at}");
        assert_eq!(src.asked, Some(5 << 20));
        assert!(f.objects(&hash_of(&k)).is_empty());
        assert!(!r.check_present(&k).await.unwrap());
        assert!(!r.upload_record_path(&k).exists());
        assert!(pending_uploads(&f).is_empty(), "{:?}", pending_uploads(&f));
    }
}

#[tokio::test]
async fn keys_whose_hash_state_is_not_saved_start_from_zero() {
    use sha2::Digest;
    let f = fixture();
    let r = f.remote(&[("partsize", "5MiB")]).await;
    let c = content((11 << 20) + 7);
    let digest: String = sha2::Sha384::digest(&c)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let k = Key::parse(&format!("SHA384-s{}--{digest}", c.len())).unwrap();
    let mut src = Cutting::new(&c, Some(7 << 20));
    assert!(r
        .put(&k, &AssociatedFile::default(), &mut src)
        .await
        .is_err());
    // Nothing recorded, and the upload given up at once.
    assert!(!r.upload_record_path(&k).exists());
    assert!(pending_uploads(&f).is_empty(), "{:?}", pending_uploads(&f));
    let mut src = Cutting::new(&c, None);
    let out = r
        .put(&k, &AssociatedFile::default(), &mut src)
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Stored(Vec::new()));
    assert_eq!(src.asked, Some(0));
    assert_eq!(get_all(&r, &k, 0).await.unwrap(), c);
}
