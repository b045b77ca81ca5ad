//! Bad input to `annex shell p2pstdio`: wrong content, hostile keys,
//! garbage, a peer that disappears mid-transfer, concurrent uploads of one
//! key, and a full disk. The repositories are made by the real git-annex,
//! which also checks them afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use annex_protocol::codec::{ProtocolReader, ProtocolWriter};
use annex_protocol::{AssociatedFile, Key, Message, ProtocolVersion};
use annex_test_support::{files_under, git, init_annex_repo, sha256e_key};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, ChildStdout};

fn served_repo(tmp: &Path) -> PathBuf {
    init_annex_repo(tmp, "srv", "served").0
}

fn sha256e(content: &[u8]) -> Key {
    Key::parse(&sha256e_key(content, ".bin")).unwrap()
}

struct Session {
    child: Child,
    r: ProtocolReader<ChildStdout>,
    w: ProtocolWriter<ChildStdin>,
}

async fn session(srv: &Path) -> Session {
    session_with_stderr(srv, Stdio::inherit()).await
}

async fn session_with_stderr(srv: &Path, stderr: Stdio) -> Session {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_annex"))
        .args(["shell", "p2pstdio"])
        .arg(srv)
        .arg("00000000-0000-4000-8000-000000000001")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut r = ProtocolReader::new(child.stdout.take().unwrap());
    let mut w = ProtocolWriter::new(child.stdin.take().unwrap());
    assert!(matches!(
        r.read_message().await.unwrap(),
        Some(Message::AuthSuccess(_))
    ));
    w.send(&Message::Version(ProtocolVersion(4))).await.unwrap();
    assert_eq!(
        r.read_message().await.unwrap(),
        Some(Message::Version(ProtocolVersion(4)))
    );
    Session { child, r, w }
}

/// A session with `srv` that has locked `key` (LOCKCONTENT answered
/// SUCCESS).
async fn locking(srv: &Path, key: &Key) -> Session {
    let mut s = session(srv).await;
    assert_eq!(
        s.call(Message::LockContent(key.clone())).await,
        Message::Success
    );
    s
}

impl Session {
    async fn call(&mut self, m: Message) -> Message {
        self.w.send(&m).await.unwrap();
        self.r.read_message().await.unwrap().expect("a reply")
    }

    async fn put(&mut self, key: &Key, content: &[u8]) -> Message {
        match self
            .call(Message::Put(AssociatedFile::none(), key.clone()))
            .await
        {
            Message::PutFrom(off) => {
                self.w
                    .send_data_bytes(&content[off as usize..])
                    .await
                    .unwrap();
                self.call(Message::Valid).await
            }
            other => other,
        }
    }
}

/// Every file under `dir`, relative.
fn tree(dir: &Path) -> Vec<String> {
    files_under(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

#[tokio::test]
async fn wrong_content_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = served_repo(tmp.path());
    let mut s = session(&srv).await;
    let key = sha256e(b"the real content");
    let reply = s.put(&key, b"other content!!!").await;
    assert_eq!(reply, Message::Failure);
    // Right size, wrong bytes, and a WORM key sent as INVALID.
    let objects = srv.join(".git/annex/objects");
    assert!(!objects.exists() || tree(&objects).is_empty());
    let tmpdir = srv.join(".git/annex/tmp");
    assert!(
        !tmpdir.exists() || tree(&tmpdir).is_empty(),
        "{:?}",
        tree(&tmpdir)
    );
    let worm = Key::parse("WORM-s5-m1--w").unwrap();
    assert!(matches!(
        s.call(Message::Put(AssociatedFile::none(), worm.clone()))
            .await,
        Message::PutFrom(0)
    ));
    s.w.send_data_bytes(b"hello").await.unwrap();
    assert_eq!(s.call(Message::Invalid).await, Message::Failure);
    assert_eq!(s.call(Message::CheckPresent(worm)).await, Message::Failure);
    // The right content is then accepted.
    assert_eq!(s.put(&key, b"the real content").await, Message::Success);
    assert_eq!(
        s.call(Message::CheckPresent(key.clone())).await,
        Message::Success
    );
    drop(s);
    git(&srv, &["annex", "fsck", "--all", "--quiet"]);
}

#[tokio::test]
async fn hostile_keys_stay_inside_the_annex() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = served_repo(tmp.path());
    let before: Vec<String> = tree(tmp.path());
    let mut s = session(&srv).await;
    for k in [
        "WORM-s4--../../../../escaped",
        "URL-s4--/etc/passwd",
        "WORM-s4--..",
        "URL-s4--a/../../b",
    ] {
        let key = Key::parse(k).unwrap();
        assert_eq!(s.put(&key, b"evil").await, Message::Success, "{k}");
        assert_eq!(s.call(Message::CheckPresent(key)).await, Message::Success);
    }
    drop(s);
    let after = tree(tmp.path());
    let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    for p in &new {
        assert!(
            p.starts_with("srv/.git/"),
            "file written outside the repository: {p}"
        );
        assert!(
            !Path::new(p)
                .components()
                .any(|c| c == std::path::Component::ParentDir),
            "{p}"
        );
    }
    assert!(!tmp.path().join("escaped").exists());
    git(&srv, &["annex", "fsck", "--all", "--quiet"]);
}

#[tokio::test]
async fn garbage_gets_error_and_the_session_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = served_repo(tmp.path());
    let mut s = session(&srv).await;
    let mut w = s.w.into_inner();
    w.write_all(b"\x00\x01garbage line\nCHECKPRESENT not a key\nCHECKPRESENT WORM--x\n")
        .await
        .unwrap();
    w.flush().await.unwrap();
    assert_eq!(
        s.r.read_message().await.unwrap(),
        Some(Message::Error("unknown command".into()))
    );
    assert_eq!(
        s.r.read_message().await.unwrap(),
        Some(Message::Error("unknown command".into()))
    );
    assert_eq!(s.r.read_message().await.unwrap(), Some(Message::Failure));
    // A line with no end is refused without growing without bound.
    let chunk = vec![b'x'; 1 << 16];
    for _ in 0..64 {
        if w.write_all(&chunk).await.is_err() {
            break;
        }
    }
    drop(w);
    let status = s.child.wait().await.unwrap();
    assert!(!status.success());
}

#[tokio::test]
async fn peer_gone_mid_data_leaves_a_resumable_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = served_repo(tmp.path());
    let content: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let key = sha256e(&content);
    let mut s = session(&srv).await;
    assert_eq!(
        s.call(Message::Put(AssociatedFile::none(), key.clone()))
            .await,
        Message::PutFrom(0)
    );
    let mut w = s.w.into_inner();
    w.write_all(format!("DATA {}\n", content.len()).as_bytes())
        .await
        .unwrap();
    w.write_all(&content[..700_000]).await.unwrap();
    w.flush().await.unwrap();
    drop(w);
    let _ = s.child.wait().await;
    let tmpfile = srv.join(".git/annex/tmp").join(key.to_file_name());
    assert_eq!(std::fs::metadata(&tmpfile).unwrap().len(), 700_000);
    assert!(
        Command::new("git")
            .args(["annex", "contentlocation", key.as_str()])
            .current_dir(&srv)
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );

    let mut s = session(&srv).await;
    assert_eq!(
        s.call(Message::Put(AssociatedFile::none(), key.clone()))
            .await,
        Message::PutFrom(700_000)
    );
    s.w.send_data_bytes(&content[700_000..]).await.unwrap();
    assert_eq!(s.call(Message::Valid).await, Message::Success);
    drop(s);
    git(&srv, &["annex", "contentlocation", key.as_str()]);
    git(&srv, &["annex", "fsck", "--all", "--quiet"]);
}

#[tokio::test]
async fn concurrent_puts_of_one_key_do_not_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = served_repo(tmp.path());
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    let key = sha256e(&content);
    let mut a = session(&srv).await;
    let mut b = session(&srv).await;
    assert_eq!(
        a.call(Message::Put(AssociatedFile::none(), key.clone()))
            .await,
        Message::PutFrom(0)
    );
    // While the first upload holds the key, the second is refused.
    let second = b
        .call(Message::Put(AssociatedFile::none(), key.clone()))
        .await;
    assert!(
        matches!(second, Message::Error(ref e) if e.contains("in progress")),
        "{second:?}"
    );
    a.w.send_data_bytes(&content).await.unwrap();
    assert_eq!(a.call(Message::Valid).await, Message::Success);
    assert_eq!(b.put(&key, &content).await, Message::AlreadyHave);
    drop((a, b));
    git(&srv, &["annex", "fsck", "--all", "--quiet"]);
}

#[tokio::test]
async fn disk_reserve_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = served_repo(tmp.path());
    git(&srv, &["config", "annex.diskreserve", "1000000 terabytes"]);
    let mut s = session(&srv).await;
    let key = sha256e(b"abc");
    let reply = s.call(Message::Put(AssociatedFile::none(), key)).await;
    assert!(
        matches!(reply, Message::Error(ref e) if e.contains("annex.diskreserve")),
        "{reply:?}"
    );
}

/// A key without a size is checked against the DATA length: a receive
/// that does not fit is stopped before its content is read, the session
/// closed as git-annex-shell closes it, its reason on standard error; a
/// receive in progress in another session counts.
#[tokio::test]
async fn disk_reserve_holds_for_keys_without_a_size() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = served_repo(tmp.path());
    // Room for a quarter of what is free now: far more than other
    // programs on the machine write meanwhile.
    let room = annex_repo::free_space(&srv).unwrap() / 4;
    let reserve = annex_repo::free_space(&srv).unwrap() - room;
    git(&srv, &["config", "annex.diskreserve", &reserve.to_string()]);

    // Twice the room: stopped.
    let mut s = session_with_stderr(&srv, Stdio::piped()).await;
    let big = Key::parse("WORM--big").unwrap();
    assert_eq!(
        s.call(Message::Put(AssociatedFile::none(), big.clone()))
            .await,
        Message::PutFrom(0)
    );
    // The announcement and a few of the bytes (the server may have gone).
    let _ = s.w.send_data(2 * room, &mut &b"the first bytes"[..]).await;
    // No more comes: a server that reads the content sees it end early.
    let Session { child, mut r, w } = s;
    drop(w);
    assert_eq!(r.read_message().await.unwrap(), None, "the session ends");
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not enough free space, need ")
            && stderr.contains("adjust annex.diskreserve"),
        "{stderr}"
    );
    assert!(!srv.join(".git/annex/tmp").join(big.to_file_name()).exists());

    // 60% of the room is being received in one session: 60% more in
    // another does not fit.
    let share = room / 10 * 6;
    let mut a = session(&srv).await;
    let first = Key::parse("WORM--first").unwrap();
    assert_eq!(
        a.call(Message::Put(AssociatedFile::none(), first.clone()))
            .await,
        Message::PutFrom(0)
    );
    // The first 1000 bytes of what is announced (`send_data` says the
    // rest is missing).
    let _ = a.w.send_data(share, &mut &[7u8; 1000][..]).await;
    let first_tmp = srv.join(".git/annex/tmp").join(first.to_file_name());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&first_tmp).map(|m| m.len()).unwrap_or(0) < 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first upload never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut b = session_with_stderr(&srv, Stdio::piped()).await;
    let second = Key::parse("WORM--second").unwrap();
    assert_eq!(
        b.call(Message::Put(AssociatedFile::none(), second)).await,
        Message::PutFrom(0)
    );
    let _ = b.w.send_data(share, &mut &b"x"[..]).await;
    let Session { child, mut r, w } = b;
    drop(w);
    assert_eq!(r.read_message().await.unwrap(), None, "the session ends");
    let out = child.wait_with_output().await.unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not enough free space"),
        "{out:?}"
    );
    drop(a);
}

/// A repository holding one annexed file, and its key.
fn served_with_file(tmp: &Path) -> (PathBuf, Key) {
    let srv = served_repo(tmp);
    std::fs::write(srv.join("f"), b"locked content").unwrap();
    git(&srv, &["annex", "add", "-q", "f"]);
    git(&srv, &["commit", "-qm", "f"]);
    let key = Key::parse(git(&srv, &["annex", "lookupkey", "f"]).trim()).unwrap();
    (srv, key)
}

fn git_annex_dropkey(srv: &Path, key: &Key) -> bool {
    Command::new("git")
        .args(["annex", "dropkey", "--force", key.as_str()])
        .current_dir(srv)
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn our_content_lock_holds_against_git_annex() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, key) = served_with_file(tmp.path());
    let mut s = locking(&srv, &key).await;
    assert!(
        !git_annex_dropkey(&srv, &key),
        "git-annex removed content we hold locked"
    );
    s.w.send(&Message::UnlockContent).await.unwrap();
    assert_eq!(
        s.call(Message::CheckPresent(key.clone())).await,
        Message::Success
    );
    assert!(git_annex_dropkey(&srv, &key));
}

#[tokio::test]
async fn git_annex_content_lock_holds_against_us() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, key) = served_with_file(tmp.path());
    // The real git-annex-shell takes the lock.
    let mut theirs = tokio::process::Command::new("git-annex-shell")
        .arg("p2pstdio")
        .arg(&srv)
        .arg("00000000-0000-4000-8000-000000000002")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut tr = ProtocolReader::new(theirs.stdout.take().unwrap());
    let mut tw = ProtocolWriter::new(theirs.stdin.take().unwrap());
    tr.read_message().await.unwrap();
    tw.send(&Message::LockContent(key.clone())).await.unwrap();
    assert_eq!(tr.read_message().await.unwrap(), Some(Message::Success));

    let mut ours = session(&srv).await;
    assert_eq!(
        ours.call(Message::Remove(key.clone())).await,
        Message::Failure
    );
    assert_eq!(
        ours.call(Message::CheckPresent(key.clone())).await,
        Message::Success
    );

    tw.send(&Message::UnlockContent).await.unwrap();
    drop(tw);
    let _ = theirs.wait().await;
    // git-annex keeps content locked for a while only when its holder
    // vanished; after a proper unlock, removal goes ahead.
    assert_eq!(
        ours.call(Message::Remove(key.clone())).await,
        Message::Success
    );
    assert_eq!(
        ours.call(Message::CheckPresent(key)).await,
        Message::Failure
    );
}

#[tokio::test]
async fn a_vanished_lock_holder_keeps_content_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, key) = served_with_file(tmp.path());
    let mut s = locking(&srv, &key).await;
    // The client disappears without UNLOCKCONTENT.
    drop(s.w);
    let _ = s.child.wait().await;
    assert!(
        !git_annex_dropkey(&srv, &key),
        "retention must outlive the connection"
    );
    let mut s = session(&srv).await;
    assert_eq!(s.call(Message::Remove(key.clone())).await, Message::Failure);
    assert_eq!(s.call(Message::CheckPresent(key)).await, Message::Success);
}
