//! annex.diskreserve kept whatever a sender announces: keys without a
//! size are checked against the DATA length, and receives in progress
//! count. The reserve is set relative to the real free space (a small
//! filesystem cannot be made here), with margins far wider than what
//! other programs on the machine write meanwhile.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use annex_protocol::{
    AssociatedFile, BytesSource, Key, PutData, PutOutcome, PutSource, RepoError, Repository,
    Validity,
};
use annex_repo::{free_space, LocalRepository};
use tokio::io::{AsyncWriteExt, DuplexStream};

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A repository keeping free all but `room` bytes of what is free now.
fn repo_with_room(dir: &Path, room: u64) -> (LocalRepository, PathBuf) {
    git(dir, &["init", "-q"]);
    git(
        dir,
        &[
            "config",
            "annex.uuid",
            "5b7d8c3e-0f55-4f3a-9e3b-6b2d1c0a9f00",
        ],
    );
    git(dir, &["config", "annex.version", "10"]);
    let reserve = free_space(dir).unwrap() - room;
    git(dir, &["config", "annex.diskreserve", &reserve.to_string()]);
    let repo = LocalRepository::open(dir).unwrap();
    assert_eq!(repo.disk_reserve(), reserve);
    let tmp = repo.git_dir().join("annex/tmp");
    (repo, tmp)
}

fn is_full(e: &RepoError) -> bool {
    matches!(e, RepoError::Io(io) if io.kind() == io::ErrorKind::StorageFull)
}

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

async fn put(
    repo: &LocalRepository,
    k: &Key,
    source: &mut dyn PutSource,
) -> Result<PutOutcome, RepoError> {
    repo.put(k, &AssociatedFile::none(), source).await
}

#[tokio::test]
async fn a_key_without_a_size_is_checked_against_the_data_length() {
    let d = tempfile::tempdir().unwrap();
    let room = free_space(d.path()).unwrap() / 2;
    let (repo, tmp) = repo_with_room(d.path(), room);

    // Announced: twice the room. Refused before a byte is read or
    // written, in git-annex's words.
    let big = key("WORM--big");
    let mut source = BytesSource::new(&b"some bytes"[..]).announcing(2 * room);
    let err = put(&repo, &big, &mut source).await.unwrap_err();
    assert!(is_full(&err), "{err}");
    assert!(
        err.to_string().starts_with("not enough free space, need ")
            && err.to_string().ends_with(
                " more (use --force to override this check or adjust annex.diskreserve)"
            ),
        "{err}"
    );
    assert!(!tmp.join(big.to_file_name()).exists());
    assert!(!repo.has_content(&big));

    // What fits is received.
    let small = key("WORM--small");
    let mut source = BytesSource::new(&b"small content"[..]);
    let out = put(&repo, &small, &mut source).await.unwrap();
    assert_eq!(out, PutOutcome::Stored(Vec::new()));
    assert!(repo.has_content(&small));
}

/// A sender that announces `len` bytes, sends what the test writes into
/// the other end of a pipe, and ends when the test drops it.
struct PipeSource {
    len: u64,
    pipe: DuplexStream,
}

#[async_trait::async_trait]
impl PutSource for PipeSource {
    async fn open(&mut self, _offset: u64) -> Result<PutData<'_>, RepoError> {
        Ok(PutData::Stream {
            len: self.len,
            stream: &mut self.pipe,
        })
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(Some(Validity::Valid))
    }
}

#[tokio::test]
async fn receives_in_progress_count_against_the_room() {
    let d = tempfile::tempdir().unwrap();
    let room = free_space(d.path()).unwrap() / 4;
    let (repo, tmp) = repo_with_room(d.path(), room);
    let share = room / 10 * 6;

    // A receive of 60% of the room is under way: 1000 bytes are in.
    let (mut to_first, pipe) = tokio::io::duplex(64 * 1024);
    let first = key("WORM--first");
    let first_tmp = tmp.join(first.to_file_name());
    let receiving = {
        let repo = repo.clone();
        let first = first.clone();
        tokio::spawn(async move {
            let mut source = PipeSource { len: share, pipe };
            put(&repo, &first, &mut source).await
        })
    };
    to_first.write_all(&[7u8; 1000]).await.unwrap();
    to_first.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&first_tmp).map(|m| m.len()).unwrap_or(0) < 1000 {
        assert!(Instant::now() < deadline, "the first receive never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Another 60% does not fit beside it, with or without a size.
    let second = key("WORM--second");
    let mut source = BytesSource::new(&b"x"[..]).announcing(share);
    let err = put(&repo, &second, &mut source).await.unwrap_err();
    assert!(is_full(&err), "{err}");
    let sized = key(&format!("WORM-s{share}-m1--third"));
    let mut source = BytesSource::new(&b"x"[..]).announcing(share);
    let err = put(&repo, &sized, &mut source).await.unwrap_err();
    assert!(is_full(&err), "{err}");
    assert_eq!(source.offset_requested(), None, "refused before asking");

    // Once the first sender breaks off, its claim is gone: the second
    // receive goes ahead (and fails only because its sender sends one
    // byte of what it announced).
    drop(to_first);
    let first_result = receiving.await.unwrap();
    assert!(
        matches!(first_result, Err(ref e) if !is_full(e)),
        "{first_result:?}"
    );
    let mut source = BytesSource::new(&b"x"[..]).announcing(share);
    let err = put(&repo, &second, &mut source).await.unwrap_err();
    assert!(!is_full(&err), "{err}");
    assert!(err.to_string().contains("ended early"), "{err}");
}

/// The reserve git-annex reads from the repository's annex.diskreserve:
/// what `git annex info` shows in "(+N reserved)".
fn git_annex_reserve(dir: &Path) -> u64 {
    let info = annex_test_support::git(dir, &["annex", "info", "--fast", "--bytes", "--json"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let space = info["available local disk space"].as_str().unwrap();
    let reserved = space
        .split_once("(+")
        .and_then(|(_, r)| r.strip_suffix(" reserved)"))
        .unwrap_or_else(|| panic!("no reserve in {space:?}"));
    reserved.parse().unwrap()
}

#[test]
fn the_reserve_is_read_as_git_annex_reads_it() {
    let t = tempfile::tempdir().unwrap();
    let (dir, _) = annex_test_support::init_annex_repo(t.path(), "r", "reserve");
    // Exponents, bandwidth units, fractions rounded half to even, hex,
    // spaces, committee units, and no reserve set at all.
    for value in [
        Some("1e3"),
        Some("1kbit"),
        Some("8Mbit"),
        Some("2.5"),
        Some("3.5"),
        Some("1.5kB"),
        Some("0x10"),
        Some("1 megabyte"),
        Some("1MiB"),
        Some("2 KILOBYTES"),
        Some("lots"),
        None,
    ] {
        match value {
            Some(v) => annex_test_support::git(&dir, &["config", "annex.diskreserve", v]),
            None => annex_test_support::git(&dir, &["config", "--unset", "annex.diskreserve"]),
        };
        let ours = LocalRepository::open(&dir).unwrap().disk_reserve();
        assert_eq!(ours, git_annex_reserve(&dir), "annex.diskreserve {value:?}");
    }
}
