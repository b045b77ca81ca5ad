//! Our protocol client against the real `git-annex-shell p2pstdio`, in
//! every protocol version. These tests need git-annex 10.20250416 and fail
//! (never skip) when it is missing.

use std::path::PathBuf;
use std::process::Command;

use annex_protocol::codec::{ProtocolReader, ProtocolWriter};
use annex_protocol::{
    AssociatedFile, BytesSource, Client, ClientOptions, GetOutcome, Key, Message, ProtocolVersion,
    PutOutcome, Repository, Uuid, Validity, VecSink,
};
use annex_test_support::{git, init_annex_repo};
use tokio::io::AsyncWriteExt;

fn require_git_annex() {
    let out = Command::new("git-annex")
        .arg("version")
        .arg("--raw")
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        _ => panic!("git-annex is not installed: run scripts/install-deps.sh"),
    }
}

struct Served {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    uuid: String,
}

/// A git-annex repository holding one annexed file with `content`.
fn served_repo(content: &[u8]) -> (Served, Key) {
    require_git_annex();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, uuid) = init_annex_repo(tmp.path(), "srv", "served");
    if std::env::var_os("ANNEX_TEST_DEBUG").is_some() {
        git(&dir, &["config", "annex.debug", "true"]);
    }
    std::fs::write(dir.join("file"), content).unwrap();
    git(&dir, &["annex", "add", "-q", "file"]);
    git(&dir, &["commit", "-qm", "add"]);
    let key = Key::parse(git(&dir, &["annex", "lookupkey", "file"]).trim()).unwrap();
    (
        Served {
            _tmp: tmp,
            dir,
            uuid,
        },
        key,
    )
}

fn shell_command(s: &Served) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("git-annex-shell");
    cmd.env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .arg("p2pstdio")
        .arg(&s.dir)
        .arg(Uuid::new_v4().as_str())
        .arg("--uuid")
        .arg(&s.uuid);
    cmd
}

async fn connect(s: &Served, v: u64) -> Client {
    let opts = ClientOptions {
        max_version: ProtocolVersion(v),
        ..Default::default()
    };
    Client::spawn(shell_command(s), &opts).await.unwrap()
}

fn sha256e_key(content: &[u8], ext: &str) -> Key {
    Key::parse(&annex_test_support::sha256e_key(content, ext)).unwrap()
}

/// The real git-annex's view of whether a key is in the served repository.
fn git_annex_has(s: &Served, key: &Key) -> bool {
    Command::new("git")
        .args(["annex", "contentlocation", key.as_str()])
        .stdout(std::process::Stdio::null())
        .current_dir(&s.dir)
        .status()
        .unwrap()
        .success()
}

#[tokio::test]
async fn every_operation_against_git_annex_shell() {
    for v in 0..=4u64 {
        let (srv, key) = served_repo(b"hello from git-annex\n");
        let client = connect(&srv, v).await;
        assert_eq!(client.uuid().as_str(), srv.uuid);
        assert_eq!(client.version(), ProtocolVersion(v));

        assert!(client.check_present(&key).await.unwrap(), "v{v}");
        let absent = sha256e_key(b"not there", ".txt");
        assert!(!client.check_present(&absent).await.unwrap());

        // GET, whole and resumed from an offset.
        let mut sink = VecSink::new(1 << 30);
        let out = client
            .get(&key, &AssociatedFile::from_path("file"), 0, &mut sink)
            .await
            .unwrap();
        assert_eq!(out, GetOutcome::Sent { accepted: true });
        assert_eq!(sink.data(), b"hello from git-annex\n");
        assert_eq!(
            sink.validity(),
            if v >= 1 { Some(Validity::Valid) } else { None }
        );
        let mut sink = VecSink::new(1 << 30);
        client
            .get(&key, &AssociatedFile::none(), 6, &mut sink)
            .await
            .unwrap();
        assert_eq!(sink.data(), b"from git-annex\n");
        // Missing content comes as empty, invalid data.
        let mut sink = VecSink::new(1 << 30);
        client
            .get(&absent, &AssociatedFile::none(), 0, &mut sink)
            .await
            .unwrap();
        assert!(sink.data().is_empty());

        // PUT of new content, which git-annex verifies against the key.
        let content = format!("new content for version {v}\n")
            .repeat(1000)
            .into_bytes();
        let newkey = sha256e_key(&content, ".dat");
        let mut src = BytesSource::new(content.clone());
        let out = client
            .put(
                &newkey,
                &AssociatedFile::from_path("dir/new file.dat"),
                &mut src,
            )
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::Stored(vec![]), "v{v}");
        assert_eq!(src.offset_requested(), Some(0));
        let out = client
            .put(
                &newkey,
                &AssociatedFile::none(),
                &mut BytesSource::new(content.clone()),
            )
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::AlreadyHave(vec![]));

        // Content that does not match its key is refused.
        let liar = sha256e_key(b"the truth", "");
        let out = client
            .put(
                &liar,
                &AssociatedFile::none(),
                &mut BytesSource::new(&b"a lie!!!!"[..]),
            )
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::NotStored, "v{v}");

        // LOCKCONTENT holds against removal from another connection.
        let lock = client.lock_content(&newkey).await.unwrap().expect("locked");
        let other = connect(&srv, v).await;
        // git-annex-shell refuses by failing the request and exiting.
        if let Ok(out) = other.remove(&newkey, None).await {
            assert!(!out.removed, "v{v}: removal of locked content must fail");
        }
        drop(lock);
        assert!(client.check_present(&newkey).await.unwrap());

        if v >= 3 {
            let ts = client.get_timestamp().await.unwrap();
            assert!(!client.remove(&newkey, Some(ts)).await.unwrap().removed);
            assert!(
                client
                    .remove(&newkey, Some(ts + 600))
                    .await
                    .unwrap()
                    .removed
            );
        } else {
            assert!(client.remove(&newkey, None).await.unwrap().removed);
        }
        assert!(!client.check_present(&newkey).await.unwrap());
        client.close().await.unwrap();
        drop(other);
        assert!(git_annex_has(&srv, &key));
        assert!(!git_annex_has(&srv, &newkey));
    }
}

#[tokio::test]
async fn interrupted_put_resumes_in_git_annex() {
    let (srv, _) = served_repo(b"x");
    let content = vec![42u8; 300_000];
    let key = sha256e_key(&content, "");
    // Start a PUT by hand, send a third of the content, and hang up.
    let mut child = shell_command(&srv)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut rd = ProtocolReader::new(child.stdout.take().unwrap());
    let mut w = child.stdin.take().unwrap();
    assert!(matches!(
        rd.read_message().await.unwrap(),
        Some(Message::AuthSuccess(_))
    ));
    {
        let mut wr = ProtocolWriter::new(&mut w);
        wr.send(&Message::Version(ProtocolVersion(4)))
            .await
            .unwrap();
        rd.read_message().await.unwrap();
        wr.send(&Message::Put(AssociatedFile::none(), key.clone()))
            .await
            .unwrap();
        assert_eq!(rd.read_message().await.unwrap(), Some(Message::PutFrom(0)));
    }
    w.write_all(format!("DATA {}\n", content.len()).as_bytes())
        .await
        .unwrap();
    w.write_all(&content[..100_000]).await.unwrap();
    w.flush().await.unwrap();
    drop(w);
    let _ = child.wait().await;

    let client = connect(&srv, 4).await;
    let mut src = BytesSource::new(content.clone());
    let out = client
        .put(&key, &AssociatedFile::none(), &mut src)
        .await
        .unwrap();
    assert_eq!(
        src.offset_requested(),
        Some(100_000),
        "git-annex resumes from its temp file"
    );
    assert_eq!(out, PutOutcome::Stored(vec![]));
    client.close().await.unwrap();
    assert!(git_annex_has(&srv, &key));
}
