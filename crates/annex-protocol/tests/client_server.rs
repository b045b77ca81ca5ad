//! Our client and our server through every operation in every protocol
//! version, over an in-memory pipe.

use std::sync::Arc;

use annex_protocol::codec::{ProtocolReader, ProtocolWriter};
use annex_protocol::{
    serve, AssociatedFile, AuthToken, Authentication, BytesSource, Client, ClientOptions,
    GetOutcome, Key, MemoryRepository, Message, ProtocolVersion, PutOutcome, PutSource, RepoError,
    Repository, ServeEnd, ServerMode, ServerOptions, Uuid, Validity, VecSink,
};
use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

fn key_for(content: &[u8], name: &str) -> Key {
    Key::parse(&format!("WORM-s{}--{name}", content.len())).unwrap()
}

/// Starts a server for `repo` on one end of a pipe and connects a client on
/// the other.
async fn pair(
    repo: MemoryRepository,
    opts: ServerOptions,
    copts: ClientOptions,
) -> (
    Client,
    JoinHandle<Result<ServeEnd, annex_protocol::ServeError>>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move { serve(b, &repo, &opts).await });
    let (r, w) = tokio::io::split(a);
    let client = Client::connect(r, w, &copts).await.unwrap();
    (client, server)
}

fn client_opts(v: u64) -> ClientOptions {
    ClientOptions {
        max_version: ProtocolVersion(v),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_operation_in_every_version() {
    for v in 0..=4u64 {
        let repo = MemoryRepository::new(Uuid::new_v4());
        let (client, server) = pair(repo.clone(), ServerOptions::default(), client_opts(v)).await;
        assert_eq!(client.version(), ProtocolVersion(v));
        assert_eq!(client.uuid(), repo.uuid());

        let content = b"hello world".repeat(1000);
        let key = key_for(&content, "file");
        let af = AssociatedFile::from_path("dir/my file.txt");

        assert!(!client.check_present(&key).await.unwrap(), "v{v}");
        let mut src = BytesSource::new(content.clone());
        let out = client.put(&key, &af, &mut src).await.unwrap();
        assert_eq!(out, PutOutcome::Stored(vec![]), "v{v}");
        assert_eq!(src.offset_requested(), Some(0));
        assert_eq!(repo.content(&key).unwrap(), content);
        assert!(client.check_present(&key).await.unwrap());

        // A second put finds it there.
        let mut src = BytesSource::new(content.clone());
        let out = client.put(&key, &af, &mut src).await.unwrap();
        assert_eq!(out, PutOutcome::AlreadyHave(vec![]));
        assert_eq!(src.offset_requested(), None);

        // Get, whole and from an offset.
        let mut sink = VecSink::new(1 << 30);
        let out = client.get(&key, &af, 0, &mut sink).await.unwrap();
        assert_eq!(out, GetOutcome::Sent { accepted: true });
        assert_eq!(sink.data(), content);
        let expected_validity = if v >= 1 { Some(Validity::Valid) } else { None };
        assert_eq!(sink.validity(), expected_validity);
        let mut sink = VecSink::new(1 << 30);
        client
            .get(&key, &AssociatedFile::none(), 5, &mut sink)
            .await
            .unwrap();
        assert_eq!(sink.data(), &content[5..]);

        // Get of missing content: empty data, invalid from v1.
        let missing = key_for(b"x", "missing");
        let mut sink = VecSink::new(1 << 30);
        let out = client.get(&missing, &af, 0, &mut sink).await.unwrap();
        assert!(sink.data().is_empty());
        if v >= 1 {
            assert_eq!(out, GetOutcome::Sent { accepted: false });
        }

        // Locking prevents removal until the lock is dropped.
        let lock = client.lock_content(&key).await.unwrap().expect("locked");
        while !repo.is_locked(&key) {
            tokio::task::yield_now().await;
        }
        drop(lock);
        assert!(client.check_present(&key).await.unwrap());
        assert!(!repo.is_locked(&key));
        assert!(client.lock_content(&missing).await.unwrap().is_none());

        // Timestamps and REMOVE-BEFORE from v3.
        if v >= 3 {
            let ts = client.get_timestamp().await.unwrap();
            let out = client.remove(&key, Some(ts)).await.unwrap();
            assert!(!out.removed, "a deadline already passed refuses removal");
            assert!(repo.content(&key).is_some());
            let out = client.remove(&key, Some(ts + 600)).await.unwrap();
            assert!(out.removed);
        } else {
            assert!(matches!(
                client.get_timestamp().await,
                Err(RepoError::Unsupported(_))
            ));
            assert!(matches!(
                client.remove(&key, Some(1)).await,
                Err(RepoError::Unsupported(_))
            ));
            assert!(client.remove(&key, None).await.unwrap().removed);
        }
        assert!(repo.content(&key).is_none());
        assert!(!client.check_present(&key).await.unwrap());

        client.close().await.unwrap();
        assert_eq!(server.await.unwrap().unwrap(), ServeEnd::Closed);
    }
}

#[tokio::test]
async fn put_resumes_from_partial_content() {
    let repo = MemoryRepository::new(Uuid::new_v4());
    let content = vec![7u8; 100_000];
    let key = key_for(&content, "big");
    repo.insert(key.clone(), content.clone());
    repo.truncate_to_partial(&key, 40_000);
    let (client, _server) = pair(repo.clone(), ServerOptions::default(), client_opts(4)).await;
    let mut src = BytesSource::new(content.clone());
    let out = client
        .put(&key, &AssociatedFile::none(), &mut src)
        .await
        .unwrap();
    assert_eq!(src.offset_requested(), Some(40_000));
    assert_eq!(out, PutOutcome::Stored(vec![]));
    assert_eq!(repo.content(&key).unwrap(), content);
}

#[tokio::test]
async fn invalid_content_is_not_stored() {
    for v in 1..=4 {
        let repo = MemoryRepository::new(Uuid::new_v4());
        let (client, _server) = pair(repo.clone(), ServerOptions::default(), client_opts(v)).await;
        let content = b"changing".to_vec();
        let key = key_for(&content, "c");
        let mut src = BytesSource::new(content.clone()).with_validity(Validity::Invalid);
        let out = client
            .put(&key, &AssociatedFile::none(), &mut src)
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::NotStored);
        assert!(repo.content(&key).is_none());
        // The connection is still in step.
        assert!(!client.check_present(&key).await.unwrap());
    }
}

#[tokio::test]
async fn server_modes_are_enforced() {
    let repo = MemoryRepository::new(Uuid::new_v4());
    let key = key_for(b"abc", "a");
    repo.insert(key.clone(), &b"abc"[..]);
    let ro = ServerOptions {
        mode: ServerMode::ReadOnly,
        ..Default::default()
    };
    let (client, _s) = pair(repo.clone(), ro, client_opts(4)).await;
    let other = key_for(b"xyz", "b");
    let e = client
        .put(
            &other,
            &AssociatedFile::none(),
            &mut BytesSource::new(&b"xyz"[..]),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    // An ERROR reply leaves the connection open for further requests, as
    // the protocol says.
    assert!(client.check_present(&key).await.unwrap());

    let (client, _s) = pair(
        repo.clone(),
        ServerOptions {
            mode: ServerMode::ReadOnly,
            ..Default::default()
        },
        client_opts(4),
    )
    .await;
    let e = client.remove(&key, None).await.unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");

    let ao = ServerOptions {
        mode: ServerMode::AppendOnly,
        ..Default::default()
    };
    let (client, _s) = pair(repo.clone(), ao, client_opts(4)).await;
    let out = client
        .put(
            &other,
            &AssociatedFile::none(),
            &mut BytesSource::new(&b"xyz"[..]),
        )
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Stored(vec![]));
    let e = client.remove(&key, None).await.unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    assert!(repo.content(&key).is_some());
}

#[tokio::test]
async fn token_authentication() {
    let repo = MemoryRepository::new(Uuid::new_v4());
    let good = AuthToken::new("s3cret").unwrap();
    let expected = good.clone();
    let opts = ServerOptions {
        auth: Authentication::Token(Arc::new(move |_, t| *t == expected)),
        ..Default::default()
    };
    let me = Uuid::new_v4();
    for (token, ok) in [(good, true), (AuthToken::new("wrong").unwrap(), false)] {
        let (a, b) = tokio::io::duplex(4096);
        let r2 = repo.clone();
        let o2 = opts.clone();
        tokio::spawn(async move { serve(b, &r2, &o2).await });
        let (r, w) = tokio::io::split(a);
        let c = Client::connect_with_auth(r, w, &me, &token, &ClientOptions::default()).await;
        assert_eq!(c.is_ok(), ok);
    }
}

/// Runs raw lines against a server and returns what it answered.
async fn raw_session(
    repo: MemoryRepository,
    opts: ServerOptions,
    input: &[u8],
) -> (Vec<u8>, ServeEnd) {
    let (mut a, b) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(async move { serve(b, &repo, &opts).await });
    a.write_all(input).await.unwrap();
    a.shutdown().await.unwrap();
    let mut out = Vec::new();
    a.read_to_end(&mut out).await.unwrap();
    let end = server.await.unwrap().unwrap();
    (out, end)
}

#[tokio::test]
async fn bad_input_gets_error_and_connection_goes_on() {
    let repo = MemoryRepository::new(Uuid::new_v4());
    let u = repo.uuid().to_string();
    let (out, end) = raw_session(
        repo,
        ServerOptions::default(),
        b"VERSION 1\nGARBAGE here\nCHECKPRESENT not a key\nSUCCESS\nREMOVE-BEFORE 1 WORM--x\nGETTIMESTAMP\nCHECKPRESENT WORM--x\n",
    )
    .await;
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        format!(
            "AUTH-SUCCESS {u}\nVERSION 1\nERROR unknown command\nERROR unknown command\nERROR unexpected command\nERROR unexpected command\nERROR unexpected command\nFAILURE\n"
        )
    );
    assert_eq!(end, ServeEnd::Closed);
}

#[tokio::test]
async fn client_error_ends_the_session() {
    let repo = MemoryRepository::new(Uuid::new_v4());
    let (out, end) = raw_session(
        repo,
        ServerOptions::default(),
        b"ERROR bye\nCHECKPRESENT WORM--x\n",
    )
    .await;
    assert_eq!(end, ServeEnd::PeerError("bye".into()));
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
}

#[tokio::test]
async fn overlong_line_is_refused_without_allocation() {
    let repo = MemoryRepository::new(Uuid::new_v4());
    let (mut a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move { serve(b, &repo, &ServerOptions::default()).await });
    // Stream 10 MiB without a newline; the server must give up early.
    let chunk = vec![b'A'; 64 * 1024];
    let mut sent = 0;
    while sent < 10 << 20 {
        if a.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let r = server.await.unwrap();
    assert!(matches!(
        r,
        Err(annex_protocol::ServeError::Codec(
            annex_protocol::codec::CodecError::LineTooLong(_)
        ))
    ));
    assert!(sent < 10 << 20, "server kept reading an unbounded line");
}

#[tokio::test]
async fn interrupted_put_keeps_partial_content_for_resume() {
    for v in 0..=4u64 {
        let repo = MemoryRepository::new(Uuid::new_v4());
        let content = vec![3u8; 50_000];
        let key = key_for(&content, "int");
        let (a, b) = tokio::io::duplex(1 << 16);
        let r2 = repo.clone();
        let server = tokio::spawn(async move { serve(b, &r2, &ServerOptions::default()).await });
        let (r, w) = tokio::io::split(a);
        let mut rd = ProtocolReader::new(r);
        let mut wr = ProtocolWriter::new(w);
        assert!(matches!(
            rd.read_message().await.unwrap(),
            Some(Message::AuthSuccess(_))
        ));
        wr.send(&Message::Version(ProtocolVersion(v)))
            .await
            .unwrap();
        assert_eq!(
            rd.read_message().await.unwrap(),
            Some(Message::Version(ProtocolVersion(v)))
        );
        wr.send(&Message::Put(AssociatedFile::none(), key.clone()))
            .await
            .unwrap();
        assert_eq!(rd.read_message().await.unwrap(), Some(Message::PutFrom(0)));
        // Announce all of it, send 20,000 bytes, and hang up.
        let mut w = wr.into_inner();
        w.write_all(format!("DATA {}\n", content.len()).as_bytes())
            .await
            .unwrap();
        w.write_all(&content[..20_000]).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        drop(rd);
        assert!(
            server.await.unwrap().is_err(),
            "v{v}: a cut transfer is a failed session"
        );
        assert_eq!(repo.partial_len(&key), 20_000);
        assert!(repo.content(&key).is_none());

        // A new connection resumes from there.
        let (client, _s) = pair(repo.clone(), ServerOptions::default(), client_opts(v)).await;
        let mut src = BytesSource::new(content.clone());
        let out = client
            .put(&key, &AssociatedFile::none(), &mut src)
            .await
            .unwrap();
        assert_eq!(src.offset_requested(), Some(20_000));
        assert_eq!(out, PutOutcome::Stored(vec![]));
        assert_eq!(repo.content(&key).unwrap(), content);
    }
}

#[tokio::test]
async fn interrupted_get_is_an_error_not_a_hang() {
    // A server that announces more data than it sends, then hangs up.
    let (a, b) = tokio::io::duplex(1 << 16);
    let u = Uuid::new_v4();
    let server_uuid = u.clone();
    tokio::spawn(async move {
        let (r, mut w) = tokio::io::split(b);
        let mut rd = ProtocolReader::new(r);
        w.write_all(format!("AUTH-SUCCESS {server_uuid}\n").as_bytes())
            .await
            .unwrap();
        let _ = rd.read_message().await; // VERSION
        w.write_all(b"VERSION 4\n").await.unwrap();
        let _ = rd.read_message().await; // GET
        w.write_all(b"DATA 1000\nonly a little").await.unwrap();
        w.shutdown().await.unwrap();
    });
    let (r, w) = tokio::io::split(a);
    let client = Client::connect(r, w, &ClientOptions::default())
        .await
        .unwrap();
    let mut sink = VecSink::new(1 << 30);
    let key = Key::parse("WORM-s1000--x").unwrap();
    let e = client
        .get(&key, &AssociatedFile::none(), 0, &mut sink)
        .await;
    assert!(e.is_err());
    // The connection is known to be unusable.
    assert!(client.check_present(&key).await.is_err());
}

#[tokio::test]
async fn plus_replies_from_v2_only() {
    /// A repository that reports further UUIDs, as a cluster does.
    struct Plus(MemoryRepository, Vec<Uuid>);
    #[async_trait]
    impl annex_protocol::Forward for Plus {
        fn inner(&self) -> &dyn Repository {
            &self.0
        }
        async fn remove(
            &self,
            k: &Key,
            b: Option<u64>,
        ) -> Result<annex_protocol::RemoveOutcome, RepoError> {
            let mut o = self.0.remove(k, b).await?;
            o.also_removed_from = self.1.clone();
            Ok(o)
        }
        async fn put(
            &self,
            k: &Key,
            f: &AssociatedFile,
            s: &mut dyn PutSource,
        ) -> Result<PutOutcome, RepoError> {
            Ok(match self.0.put(k, f, s).await? {
                PutOutcome::Stored(_) => PutOutcome::Stored(self.1.clone()),
                PutOutcome::AlreadyHave(_) => PutOutcome::AlreadyHave(self.1.clone()),
                o => o,
            })
        }
    }
    let extra = vec![Uuid::new_v4(), Uuid::new_v4()];
    for v in [1u64, 2, 4] {
        let mem = MemoryRepository::new(Uuid::new_v4());
        let repo = Plus(mem, extra.clone());
        let (a, b) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move { serve(b, &repo, &ServerOptions::default()).await });
        let (r, w) = tokio::io::split(a);
        let client = Client::connect(r, w, &client_opts(v)).await.unwrap();
        let key = key_for(b"abc", "p");
        let want = if v >= 2 { extra.clone() } else { vec![] };
        let out = client
            .put(
                &key,
                &AssociatedFile::none(),
                &mut BytesSource::new(&b"abc"[..]),
            )
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::Stored(want.clone()), "v{v}");
        let out = client
            .put(
                &key,
                &AssociatedFile::none(),
                &mut BytesSource::new(&b"abc"[..]),
            )
            .await
            .unwrap();
        assert_eq!(out, PutOutcome::AlreadyHave(want.clone()), "v{v}");
        let out = client.remove(&key, None).await.unwrap();
        assert_eq!(out.also_removed_from, want, "v{v}");
    }
}
