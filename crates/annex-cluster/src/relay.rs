//! A download that survives the failure of the node it comes from.
//!
//! The receiver's sink is fed from a queue of chunks; nodes are tried in
//! turn, each asked for the content from where the previous one stopped.
//! The receiver sees one stream of the content's length and one answer
//! on its validity, whichever nodes it came from.

use std::io;
use std::task::{Context, Poll};

use annex_protocol::repository::{
    ByteStream, ChunkStream, GetOutcome, GetSink, Repository, Validity,
};
use annex_protocol::{AssociatedFile, Key, RepoError};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

const QUEUE: usize = 8;
const CHUNK: usize = 256 * 1024;

/// What the nodes' side shares with the receiver's side.
struct Shared {
    /// The content's length from the first offset, sent once.
    header: Option<oneshot::Sender<u64>>,
    /// Expected length, once known.
    len: Option<u64>,
    /// Bytes passed on so far.
    sent: u64,
    chunks: mpsc::Sender<Bytes>,
    validity: Option<oneshot::Sender<Option<Validity>>>,
    accepted: Option<oneshot::Receiver<bool>>,
    /// The receiver went away: no other node should be tried.
    receiver_gone: bool,
}

/// The sink one node writes into.
struct NodeSink<'a> {
    shared: &'a mut Shared,
}

impl NodeSink<'_> {
    fn start(&mut self, len: u64) -> Result<(), RepoError> {
        let s = &mut *self.shared;
        match s.len {
            None => {
                s.len = Some(len);
                if let Some(h) = s.header.take() {
                    if h.send(len).is_err() {
                        s.receiver_gone = true;
                        return Err(RepoError::Other("the receiver went away".into()));
                    }
                }
                Ok(())
            }
            Some(total) if total - s.sent == len => Ok(()),
            Some(total) => Err(RepoError::Protocol(format!(
                "a node offered {len} bytes where {} remained",
                total - s.sent
            ))),
        }
    }

    async fn pass(&mut self, chunk: Bytes) -> Result<(), RepoError> {
        let n = chunk.len() as u64;
        if self.shared.chunks.send(chunk).await.is_err() {
            self.shared.receiver_gone = true;
            return Err(RepoError::Other("the receiver went away".into()));
        }
        self.shared.sent += n;
        Ok(())
    }
}

#[async_trait]
impl GetSink for NodeSink<'_> {
    async fn data(&mut self, len: u64, stream: &mut dyn ByteStream) -> Result<(), RepoError> {
        self.start(len)?;
        let mut left = len;
        while left > 0 {
            let want = (left as usize).min(CHUNK);
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                let n = stream.read_buf(&mut buf).await?;
                if n == 0 {
                    break;
                }
            }
            if buf.is_empty() {
                return Err(RepoError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the node's content ended early",
                )));
            }
            left -= buf.len() as u64;
            self.pass(buf.freeze()).await?;
        }
        Ok(())
    }

    async fn data_chunks(
        &mut self,
        len: u64,
        chunks: &mut dyn ChunkStream,
    ) -> Result<(), RepoError> {
        self.start(len)?;
        let mut left = len;
        while left > 0 {
            match std::future::poll_fn(|cx| chunks.poll_chunk(cx)).await {
                Some(Ok(c)) => {
                    let c = if c.len() as u64 > left {
                        c.slice(..left as usize)
                    } else {
                        c
                    };
                    left -= c.len() as u64;
                    self.pass(c).await?;
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(RepoError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the node's content ended early",
                    )))
                }
            }
        }
        Ok(())
    }

    async fn finish(&mut self, validity: Option<Validity>) -> Result<bool, RepoError> {
        let s = &mut *self.shared;
        let (Some(v), Some(a)) = (s.validity.take(), s.accepted.take()) else {
            return Err(RepoError::Protocol("content finished twice".into()));
        };
        let _ = v.send(validity);
        a.await.map_err(|_| {
            s.receiver_gone = true;
            RepoError::Other("the receiver went away".into())
        })
    }
}

/// The receiver's queue as chunks.
struct Queue {
    rx: mpsc::Receiver<Bytes>,
}

impl ChunkStream for Queue {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(c)) => Poll::Ready(Some(Ok(c))),
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "no node could send the rest of the content",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A sink passed straight through, noting whether any content went
/// through it (so that a node that fails before sending anything can be
/// replaced without a relay, and zero-copy paths stay open).
pub struct Tracked<'a> {
    inner: &'a mut dyn GetSink,
    started: bool,
}

impl<'a> Tracked<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn GetSink) -> Tracked<'a> {
        Tracked {
            inner,
            started: false,
        }
    }

    /// Whether content started to go through.
    pub fn started(&self) -> bool {
        self.started
    }
}

#[async_trait]
impl GetSink for Tracked<'_> {
    async fn data(&mut self, len: u64, stream: &mut dyn ByteStream) -> Result<(), RepoError> {
        self.started = true;
        self.inner.data(len, stream).await
    }

    async fn data_chunks(
        &mut self,
        len: u64,
        chunks: &mut dyn ChunkStream,
    ) -> Result<(), RepoError> {
        self.started = true;
        self.inner.data_chunks(len, chunks).await
    }

    async fn data_file(
        &mut self,
        len: u64,
        file: &std::fs::File,
        offset: u64,
    ) -> Result<bool, RepoError> {
        let sent = self.inner.data_file(len, file, offset).await?;
        self.started |= sent;
        Ok(sent)
    }

    async fn finish(&mut self, validity: Option<Validity>) -> Result<bool, RepoError> {
        self.started = true;
        self.inner.finish(validity).await
    }
}

/// Sends `key` from `offset` into `sink` from the first of `nodes` that
/// can, going on from the next one where a node fails. `NotPresent` when
/// none had it and nothing was sent.
pub async fn get_from_any(
    nodes: &[&dyn Repository],
    key: &Key,
    file: &AssociatedFile,
    offset: u64,
    sink: &mut dyn GetSink,
) -> Result<GetOutcome, RepoError> {
    let (header_tx, header_rx) = oneshot::channel();
    let (chunks_tx, chunks_rx) = mpsc::channel(QUEUE);
    let (validity_tx, validity_rx) = oneshot::channel();
    let (accepted_tx, accepted_rx) = oneshot::channel();
    let mut shared = Shared {
        header: Some(header_tx),
        len: None,
        sent: 0,
        chunks: chunks_tx,
        validity: Some(validity_tx),
        accepted: Some(accepted_rx),
        receiver_gone: false,
    };
    let senders = async move {
        let mut last_error = None;
        for node in nodes {
            let at = offset + shared.sent;
            let outcome = node
                .get(
                    key,
                    file,
                    at,
                    &mut NodeSink {
                        shared: &mut shared,
                    },
                )
                .await;
            match outcome {
                Ok(GetOutcome::Sent { accepted }) => return Ok(GetOutcome::Sent { accepted }),
                Ok(GetOutcome::NotPresent) => {}
                Err(e) => {
                    if shared.receiver_gone || shared.validity.is_none() {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        // Nobody could finish: the receiver's queue ends short.
        drop(shared);
        match last_error {
            Some(e) => Err(e),
            None => Ok(GetOutcome::NotPresent),
        }
    };
    let receiver = async move {
        let Ok(len) = header_rx.await else {
            return Ok(None);
        };
        sink.data_chunks(len, &mut Queue { rx: chunks_rx }).await?;
        let Ok(validity) = validity_rx.await else {
            return Err(RepoError::Other(
                "no node could finish sending the content".into(),
            ));
        };
        let accepted = sink.finish(validity).await?;
        let _ = accepted_tx.send(accepted);
        Ok::<_, RepoError>(Some(accepted))
    };
    let (sent, received) = tokio::join!(senders, receiver);
    match (received, sent) {
        (Ok(Some(accepted)), _) => Ok(GetOutcome::Sent { accepted }),
        (Ok(None), Ok(GetOutcome::NotPresent)) => Ok(GetOutcome::NotPresent),
        (Ok(None), Ok(sent)) => Ok(sent),
        (Ok(None), Err(e)) => Err(e),
        (Err(e), _) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annex_protocol::content::VecSink;
    use annex_protocol::memory::MemoryRepository;
    use annex_protocol::{Forward, Uuid};

    /// A node that sends part of the content and then fails.
    struct Breaking {
        inner: MemoryRepository,
        after: usize,
    }

    #[async_trait]
    impl Forward for Breaking {
        fn inner(&self) -> &dyn Repository {
            &self.inner
        }
        async fn get(
            &self,
            key: &Key,
            _file: &AssociatedFile,
            offset: u64,
            sink: &mut dyn GetSink,
        ) -> Result<GetOutcome, RepoError> {
            let content = self.inner.content(key).unwrap();
            let rest = &content[offset as usize..];
            let mut part = &rest[..self.after];
            struct Fails<'a>(&'a mut &'a [u8]);
            impl tokio::io::AsyncRead for Fails<'_> {
                fn poll_read(
                    mut self: std::pin::Pin<&mut Self>,
                    _cx: &mut Context<'_>,
                    buf: &mut tokio::io::ReadBuf<'_>,
                ) -> Poll<io::Result<()>> {
                    if self.0.is_empty() {
                        return Poll::Ready(Err(io::Error::other("disk failed")));
                    }
                    let n = buf.remaining().min(self.0.len());
                    buf.put_slice(&self.0[..n]);
                    *self.0 = &self.0[n..];
                    Poll::Ready(Ok(()))
                }
            }
            sink.data(rest.len() as u64, &mut Fails(&mut part)).await?;
            Ok(GetOutcome::Sent { accepted: true })
        }
    }

    #[tokio::test]
    async fn a_node_failing_midway_is_taken_over_by_another() {
        let data: Vec<u8> = (0..900_000u32).map(|i| (i % 241) as u8).collect();
        let key = Key::parse(&format!("SHA256E-s{}--{}", data.len(), "cd".repeat(32))).unwrap();
        let broken = Breaking {
            inner: MemoryRepository::new(Uuid::new_v4()),
            after: 300_000,
        };
        broken.inner.insert(key.clone(), data.clone());
        let good = MemoryRepository::new(Uuid::new_v4());
        good.insert(key.clone(), data.clone());
        let mut sink = VecSink::new(1 << 24);
        let out = get_from_any(
            &[&broken, &good],
            &key,
            &AssociatedFile::none(),
            0,
            &mut sink,
        )
        .await
        .unwrap();
        assert_eq!(out, GetOutcome::Sent { accepted: true });
        assert_eq!(sink.data(), &data[..]);
    }

    #[tokio::test]
    async fn nothing_sent_when_no_node_has_it() {
        let key = Key::parse(&format!("SHA256E-s5--{}", "ef".repeat(32))).unwrap();
        let a = MemoryRepository::new(Uuid::new_v4());
        let mut sink = VecSink::new(1 << 10);
        let out = get_from_any(&[&a], &key, &AssociatedFile::none(), 0, &mut sink)
            .await
            .unwrap();
        assert_eq!(out, GetOutcome::NotPresent);
    }
}
