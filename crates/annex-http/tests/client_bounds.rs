//! The HTTP client against a hostile server that answers without end: a
//! JSON answer, an error's text, or the head of an answer that never
//! stops. The client gives up after [`MAX_ANSWER`] bytes with
//! [`AnswerTooLong`], and stops reading: the server cannot write much
//! more than what the sockets buffer before its connection breaks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use annex_http::client::{AnswerTooLong, HttpOptions, HttpRepository, MAX_ANSWER};
use annex_protocol::{Key, RepoError, Repository, Uuid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The most the hostile server writes. A client that read answers whole
/// would read all of it.
const CAP: u64 = 256 << 20;

/// What the server writes after it has read a request's head.
#[derive(Clone, Copy)]
enum Hostile {
    /// 200, JSON, a chunked body without end.
    EndlessJson,
    /// 500, a body without end (no length given).
    EndlessError,
    /// 500 with a body announced as 10 GB.
    HugeError,
    /// 200, then header lines without end.
    EndlessHead,
}

/// Serves one connection as `hostile` says; how many bytes of the
/// endless part it managed to write before the connection broke (or
/// `CAP`).
async fn serve(hostile: Hostile) -> (String, tokio::task::JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("annex+http://{}/git-annex/", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0, "the client sent no request");
            head.extend_from_slice(&b[..n]);
        }
        let (start, piece): (&[u8], Vec<u8>) = match hostile {
            Hostile::EndlessJson => {
                let mut chunk = format!("{:x}\r\n", 16384).into_bytes();
                chunk.extend(std::iter::repeat_n(b' ', 16384));
                chunk.extend_from_slice(b"\r\n");
                (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                    chunk,
                )
            }
            Hostile::EndlessError => (
                b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n",
                vec![b'e'; 16384],
            ),
            Hostile::HugeError => (
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 10000000000\r\n\r\n",
                vec![b'e'; 16384],
            ),
            Hostile::EndlessHead => (
                b"HTTP/1.1 200 OK\r\n",
                format!("X-Junk: {}\r\n", "j".repeat(1000)).into_bytes(),
            ),
        };
        if s.write_all(start).await.is_err() {
            return 0;
        }
        let mut n = 0u64;
        while n < CAP {
            if s.write_all(&piece).await.is_err() {
                break;
            }
            n += piece.len() as u64;
            written.store(n, Ordering::Relaxed);
        }
        n
    });
    (url, task)
}

fn too_long(e: &RepoError) -> bool {
    matches!(e, RepoError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<AnswerTooLong>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_are_not_content_are_bounded() {
    let key =
        Key::parse("SHA256E-s1--4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a")
            .unwrap();
    for hostile in [
        Hostile::EndlessJson,
        Hostile::EndlessError,
        Hostile::HugeError,
        Hostile::EndlessHead,
    ] {
        let (url, server) = serve(hostile).await;
        let repo = HttpRepository::open(
            &url,
            Some(Uuid::parse("0f0f0f0f-0000-4000-8000-000000000001").unwrap()),
            Uuid::parse("c1c1c1c1-0000-4000-8000-000000000001").unwrap(),
            HttpOptions::default(),
        )
        .unwrap();
        let err = repo.check_present(&key).await.unwrap_err();
        assert!(too_long(&err), "{err}");
        assert!(err.to_string().contains(&MAX_ANSWER.to_string()), "{err}");
        drop(repo);
        // The client hung up: the server's writes failed long before it
        // could write all it meant to.
        let written = server.await.unwrap();
        assert!(written < CAP / 4, "{written} bytes written");
    }
}
