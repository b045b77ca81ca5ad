//! One upload streamed to many repositories at once.
//!
//! Every node is asked to store the key; each answers with the offset it
//! wants the content from (the size of its partial copy, for resuming),
//! or that it already has it, or fails. The sender is then asked for the
//! content from the smallest of those offsets, and each chunk it sends is
//! read once and handed to every node still receiving, from that node's
//! own offset on. Each node has a small queue of chunks: a slow node
//! holds the others back only once its queue is full, and a node that
//! fails is dropped without failing the others. What the sender says
//! about the content's validity afterwards reaches every node.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use annex_protocol::repository::{
    ChunkStream, PutData, PutOutcome, PutSource, Repository, Validity,
};
use annex_protocol::{AssociatedFile, Key, RepoError, Uuid};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

/// Chunks queued for each node.
const QUEUE: usize = 8;
/// Size of the chunks read from a sender that streams.
const CHUNK: usize = 256 * 1024;

/// What one node did with the upload.
#[derive(Debug)]
pub enum NodeResult {
    /// The node stored it (further repositories it named: -PLUS).
    Stored(Vec<Uuid>),
    /// The node already had it (and further repositories that do).
    AlreadyHave(Vec<Uuid>),
    /// The node did not store it.
    NotStored,
    /// The node failed.
    Failed(RepoError),
}

/// What an upload to many nodes did, node by node (in the order given),
/// and whether the sender's content was asked for.
#[derive(Debug)]
pub struct FanOut {
    /// Each node's result.
    pub results: Vec<NodeResult>,
    /// Whether any node asked for the content.
    pub opened: bool,
}

/// What the coordinator hands a node once the sender's content is known.
enum Feed {
    Data {
        len: u64,
        chunks: mpsc::Receiver<io::Result<Bytes>>,
        /// The coordinator hashes the whole content for this node.
        checked: bool,
    },
    Present,
    /// The sender failed before sending any content.
    Abort(String),
}

/// The source one node reads: its offset goes to the coordinator, the
/// content and validity come back from it.
struct NodeSource {
    offset_tx: Option<oneshot::Sender<u64>>,
    feed_rx: Option<oneshot::Receiver<Feed>>,
    chunks: Option<QueueChunks>,
    /// The sender's validity and whether the coordinator's hash matched.
    end: watch::Receiver<Option<End>>,
    limit: Option<Arc<Semaphore>>,
    checked: bool,
}

/// What is known once all the content has been handed out.
#[derive(Debug, Clone, Copy)]
struct End {
    validity: Option<Validity>,
    verified: bool,
}

/// A node's queue of chunks, as a [`ChunkStream`]; with a limit on how
/// many nodes write at once, a permit is held from one chunk to the next.
struct QueueChunks {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    checked: bool,
    limit: Option<Arc<Semaphore>>,
    permit: Option<OwnedSemaphorePermit>,
    acquiring:
        Option<Pin<Box<dyn std::future::Future<Output = Option<OwnedSemaphorePermit>> + Send>>>,
}

impl ChunkStream for QueueChunks {
    fn checked_by_sender(&self) -> bool {
        self.checked
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        // The previous chunk is written: let another node write.
        self.permit = None;
        if let Some(limit) = &self.limit {
            let fut = self.acquiring.get_or_insert_with(|| {
                let l = limit.clone();
                Box::pin(async move { l.acquire_owned().await.ok() })
            });
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(p) => {
                    self.acquiring = None;
                    self.permit = p;
                }
            }
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) => {
                self.permit = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(c)) => Poll::Ready(Some(c)),
            Poll::Pending => {
                // Nothing to write yet: do not hold the permit while
                // waiting for the sender.
                self.permit = None;
                Poll::Pending
            }
        }
    }
}

#[async_trait]
impl PutSource for NodeSource {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        let tx = self
            .offset_tx
            .take()
            .ok_or_else(|| RepoError::Protocol("content asked for twice".into()))?;
        let _ = tx.send(offset);
        let feed = self
            .feed_rx
            .take()
            .ok_or_else(|| RepoError::Protocol("content asked for twice".into()))?
            .await
            .map_err(|_| RepoError::Other("the upload was abandoned".into()))?;
        match feed {
            Feed::Present => Ok(PutData::Present),
            Feed::Abort(why) => Err(RepoError::Other(why)),
            Feed::Data {
                len,
                chunks,
                checked,
            } => {
                self.checked = checked && offset == 0;
                self.chunks = Some(QueueChunks {
                    rx: chunks,
                    checked: self.checked,
                    limit: self.limit.clone(),
                    permit: None,
                    acquiring: None,
                });
                let chunks = self.chunks.as_mut().map(|c| c as &mut dyn ChunkStream);
                Ok(PutData::Chunks {
                    len,
                    chunks: chunks.expect("just set"),
                })
            }
        }
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(self.end().await?.validity)
    }

    async fn content_verified(&mut self) -> Result<bool, RepoError> {
        Ok(self.checked && self.end().await?.verified)
    }
}

impl NodeSource {
    async fn end(&mut self) -> Result<End, RepoError> {
        loop {
            if let Some(e) = *self.end.borrow_and_update() {
                return Ok(e);
            }
            self.end
                .changed()
                .await
                .map_err(|_| RepoError::Other("the upload was abandoned".into()))?;
        }
    }
}

/// A node's side of the coordinator.
struct Lane {
    offset_rx: oneshot::Receiver<u64>,
    feed_tx: Option<oneshot::Sender<Feed>>,
    offset: Option<u64>,
    chunks: Option<mpsc::Sender<io::Result<Bytes>>>,
}

/// Stores `key` in every node of `nodes`, reading the content from
/// `source` once. At most `jobs` nodes write a chunk at the same time
/// (`None`: all of them). With `hash_once`, the content is hashed here
/// once, and nodes in this process that receive all of it trust that
/// hash instead of hashing it again (see `PutSource::checks_content`).
pub async fn put_all(
    nodes: &[Arc<dyn Repository>],
    key: &Key,
    file: &AssociatedFile,
    source: &mut dyn PutSource,
    jobs: Option<usize>,
    hash_once: bool,
) -> Result<FanOut, RepoError> {
    let limit = jobs.map(|j| Arc::new(Semaphore::new(j.max(1))));
    let (validity_tx, validity_rx) = watch::channel(None);
    let mut lanes = Vec::with_capacity(nodes.len());
    let mut sources = Vec::with_capacity(nodes.len());
    for _ in nodes {
        let (offset_tx, offset_rx) = oneshot::channel();
        let (feed_tx, feed_rx) = oneshot::channel();
        lanes.push(Lane {
            offset_rx,
            feed_tx: Some(feed_tx),
            offset: None,
            chunks: None,
        });
        sources.push(NodeSource {
            offset_tx: Some(offset_tx),
            feed_rx: Some(feed_rx),
            chunks: None,
            end: validity_rx.clone(),
            limit: limit.clone(),
            checked: false,
        });
    }
    // Each node owns its source, so that a node that answers without
    // asking for content (or fails) lets the coordinator know at once.
    let puts = join_all(nodes.iter().zip(sources).map(|(n, mut s)| async move {
        let r = n.put(key, file, &mut s).await;
        drop(s);
        r
    }));
    let coordinate = coordinate(&mut lanes, key, source, validity_tx, hash_once);
    let (outcomes, coordinated) = tokio::join!(puts, coordinate);
    let opened = coordinated?;
    let results = outcomes
        .into_iter()
        .map(|o| match o {
            Ok(PutOutcome::Stored(more)) => NodeResult::Stored(more),
            Ok(PutOutcome::AlreadyHave(more)) => NodeResult::AlreadyHave(more),
            Ok(PutOutcome::NotStored) => NodeResult::NotStored,
            Err(e) => NodeResult::Failed(e),
        })
        .collect();
    Ok(FanOut { results, opened })
}

/// Waits for every node's offset, opens the sender's content from the
/// smallest, and hands it out. Returns whether the content was opened.
async fn coordinate(
    lanes: &mut [Lane],
    key: &Key,
    source: &mut dyn PutSource,
    end_tx: watch::Sender<Option<End>>,
    hash_once: bool,
) -> Result<bool, RepoError> {
    for lane in lanes.iter_mut() {
        // A node that answers without asking for content (it has it, or
        // failed) drops its sender.
        lane.offset = (&mut lane.offset_rx).await.ok();
    }
    let Some(min) = lanes.iter().filter_map(|l| l.offset).min() else {
        return Ok(false);
    };
    let data = match source.open(min).await {
        Ok(d) => d,
        Err(e) => {
            for lane in lanes.iter_mut() {
                if let Some(tx) = lane.feed_tx.take() {
                    let _ = tx.send(Feed::Abort(e.to_string()));
                }
            }
            return Err(e);
        }
    };
    let (len, mut reader): (u64, Reader<'_>) = match data {
        PutData::Present => {
            for lane in lanes.iter_mut() {
                if let Some(tx) = lane.feed_tx.take() {
                    let _ = tx.send(Feed::Present);
                }
            }
            let v = source.validity().await.ok().flatten();
            let _ = end_tx.send(Some(End {
                validity: v,
                verified: false,
            }));
            return Ok(true);
        }
        PutData::Stream { len, stream } => (len, Reader::Stream(stream)),
        PutData::Chunks { len, chunks } => (len, Reader::Chunks(chunks)),
    };
    let total = min + len;
    // Hashed once here, on a thread of its own, for the nodes that trust
    // it: only when all of the content passes through.
    let hashing = hash_once && min == 0 && annex_repo::verify::Verifier::new(key).checks_hash();
    let (hash_tx, hasher) = if hashing {
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        let mut verifier = annex_repo::verify::Verifier::new(key);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(c) = rx.blocking_recv() {
                verifier.update(&c);
            }
            verifier.finish().is_ok()
        });
        (Some(tx), Some(task))
    } else {
        (None, None)
    };
    for lane in lanes.iter_mut() {
        let (Some(offset), Some(feed)) = (lane.offset, lane.feed_tx.take()) else {
            continue;
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let node_len = total.saturating_sub(offset);
        if feed
            .send(Feed::Data {
                len: node_len,
                chunks: rx,
                checked: hashing,
            })
            .is_ok()
        {
            lane.chunks = Some(tx);
        }
    }
    let mut pos = min;
    let mut failure: Option<String> = None;
    while pos < total {
        let chunk = match reader.next((total - pos) as usize).await {
            Ok(Some(c)) if !c.is_empty() => c,
            Ok(_) => {
                failure = Some("the content ended early".into());
                break;
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        };
        let end = pos + chunk.len() as u64;
        if let Some(h) = &hash_tx {
            let _ = h.send(chunk.clone()).await;
        }
        let sends = lanes.iter_mut().filter_map(|lane| {
            let offset = lane.offset?;
            if end <= offset {
                return None;
            }
            let tx = lane.chunks.as_ref()?.clone();
            let part = chunk.slice(offset.saturating_sub(pos) as usize..);
            Some(async move { (lane, tx.send(Ok(part)).await.is_ok()) })
        });
        for (lane, ok) in join_all(sends).await {
            if !ok {
                // The node stopped reading: it failed, and is left out.
                lane.chunks = None;
            }
        }
        pos = end;
    }
    if let Some(why) = failure {
        for lane in lanes.iter_mut() {
            if let Some(tx) = lane.chunks.take() {
                let _ = tx
                    .send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        why.clone(),
                    )))
                    .await;
            }
        }
        drop(end_tx);
        return Err(RepoError::Other(format!(
            "the upload was interrupted: {why}"
        )));
    }
    for lane in lanes.iter_mut() {
        lane.chunks = None;
    }
    drop(hash_tx);
    let verified = match hasher {
        Some(h) => h.await.unwrap_or(false),
        None => false,
    };
    let v = source.validity().await?;
    let _ = end_tx.send(Some(End {
        validity: v,
        verified,
    }));
    Ok(true)
}

/// The sender's content, read chunk by chunk.
enum Reader<'a> {
    Stream(&'a mut dyn annex_protocol::repository::ByteStream),
    Chunks(&'a mut dyn ChunkStream),
}

impl Reader<'_> {
    async fn next(&mut self, most: usize) -> io::Result<Option<Bytes>> {
        match self {
            Reader::Chunks(c) => {
                let got = std::future::poll_fn(|cx| c.poll_chunk(cx)).await;
                got.transpose()
            }
            Reader::Stream(s) => {
                let want = most.min(CHUNK);
                let mut buf = BytesMut::with_capacity(want);
                while buf.len() < want {
                    let n = s.read_buf(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                }
                if buf.is_empty() {
                    return Ok(None);
                }
                Ok(Some(buf.freeze()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annex_protocol::content::BytesSource;
    use annex_protocol::memory::MemoryRepository;
    use annex_protocol::repository::ByteStream;

    /// Content that ends early, at `cut`: an interrupted sender.
    struct Cut {
        data: Vec<u8>,
        cut: usize,
        stream: Option<std::io::Cursor<Vec<u8>>>,
    }

    impl Cut {
        fn new(data: Vec<u8>, cut: usize) -> Cut {
            Cut {
                data,
                cut,
                stream: None,
            }
        }
    }

    #[async_trait]
    impl PutSource for Cut {
        async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
            self.stream = Some(std::io::Cursor::new(
                self.data[offset as usize..self.cut].to_vec(),
            ));
            Ok(PutData::Stream {
                len: self.data.len() as u64 - offset,
                stream: self.stream.as_mut().unwrap() as &mut dyn ByteStream,
            })
        }
        async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
            Ok(Some(Validity::Valid))
        }
    }

    /// A key of the data's size (memory repositories check sizes only).
    fn key_of(data: &[u8]) -> Key {
        Key::parse(&format!("SHA256E-s{}--{}", data.len(), "ab".repeat(32))).unwrap()
    }

    #[tokio::test]
    async fn every_node_gets_the_content_read_once() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let key = key_of(&data);
        let nodes: Vec<Arc<dyn Repository>> = (0..3)
            .map(|_| Arc::new(MemoryRepository::new(Uuid::new_v4())) as Arc<dyn Repository>)
            .collect();
        let mut src = BytesSource::new(data.clone());
        let out = put_all(&nodes, &key, &AssociatedFile::none(), &mut src, None, false)
            .await
            .unwrap();
        assert!(out.opened);
        assert_eq!(src.offset_requested(), Some(0));
        for r in &out.results {
            assert!(matches!(r, NodeResult::Stored(_)), "{r:?}");
        }
        for n in &nodes {
            assert!(n.check_present(&key).await.unwrap());
        }
    }

    #[tokio::test]
    async fn a_node_with_a_partial_copy_and_a_new_node_both_end_complete() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 97) as u8).collect();
        let key = key_of(&data);
        let a = Arc::new(MemoryRepository::new(Uuid::new_v4()));
        let mut cut = Cut::new(data.clone(), 250_000);
        let nodes: Vec<Arc<dyn Repository>> = vec![a.clone()];
        assert!(
            put_all(&nodes, &key, &AssociatedFile::none(), &mut cut, None, false)
                .await
                .is_err()
        );
        assert!(a.partial_len(&key) > 0);
        let b = Arc::new(MemoryRepository::new(Uuid::new_v4()));
        let nodes: Vec<Arc<dyn Repository>> = vec![a.clone(), b.clone()];
        let mut src = BytesSource::new(data.clone());
        let out = put_all(&nodes, &key, &AssociatedFile::none(), &mut src, None, false)
            .await
            .unwrap();
        assert_eq!(
            src.offset_requested(),
            Some(0),
            "the new node needs everything"
        );
        assert!(out
            .results
            .iter()
            .all(|r| matches!(r, NodeResult::Stored(_))));
        assert_eq!(a.content(&key).unwrap(), data);
        assert_eq!(b.content(&key).unwrap(), data);
    }

    /// A node that cannot be reached.
    struct Down(Uuid);

    #[async_trait]
    impl Repository for Down {
        fn uuid(&self) -> &Uuid {
            &self.0
        }
        async fn check_present(&self, _: &Key) -> Result<bool, RepoError> {
            Err(RepoError::Other("down".into()))
        }
        async fn lock_content(
            &self,
            _: &Key,
        ) -> Result<Option<annex_protocol::repository::ContentLock>, RepoError> {
            Err(RepoError::Other("down".into()))
        }
        async fn remove(
            &self,
            _: &Key,
            _: Option<u64>,
        ) -> Result<annex_protocol::repository::RemoveOutcome, RepoError> {
            Err(RepoError::Other("down".into()))
        }
        async fn get_timestamp(&self) -> Result<u64, RepoError> {
            Err(RepoError::Other("down".into()))
        }
        async fn get(
            &self,
            _: &Key,
            _: &AssociatedFile,
            _: u64,
            _: &mut dyn annex_protocol::repository::GetSink,
        ) -> Result<annex_protocol::repository::GetOutcome, RepoError> {
            Err(RepoError::Other("down".into()))
        }
        async fn put(
            &self,
            _: &Key,
            _: &AssociatedFile,
            _: &mut dyn PutSource,
        ) -> Result<PutOutcome, RepoError> {
            Err(RepoError::Other("down".into()))
        }
    }

    #[tokio::test]
    async fn nodes_that_answer_without_content_do_not_hold_up_the_others() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let key = key_of(&data);
        let has = Arc::new(MemoryRepository::new(Uuid::new_v4()));
        has.insert(key.clone(), data.clone());
        let fresh = Arc::new(MemoryRepository::new(Uuid::new_v4()));
        let nodes: Vec<Arc<dyn Repository>> =
            vec![Arc::new(Down(Uuid::new_v4())), has, fresh.clone()];
        let mut src = BytesSource::new(data.clone());
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            put_all(&nodes, &key, &AssociatedFile::none(), &mut src, None, false),
        )
        .await
        .expect("no hang")
        .unwrap();
        assert!(matches!(out.results[0], NodeResult::Failed(_)));
        assert!(matches!(out.results[1], NodeResult::AlreadyHave(_)));
        assert!(matches!(out.results[2], NodeResult::Stored(_)));
        assert_eq!(fresh.content(&key).unwrap(), data);
        // Nobody asks for content: the sender is never opened.
        let nodes: Vec<Arc<dyn Repository>> = vec![Arc::new(Down(Uuid::new_v4()))];
        let mut src = BytesSource::new(data);
        let out = put_all(&nodes, &key, &AssociatedFile::none(), &mut src, None, false)
            .await
            .unwrap();
        assert!(!out.opened && src.offset_requested().is_none());
    }

    #[tokio::test]
    async fn an_interrupted_sender_fails_every_node_and_leaves_no_copy() {
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 13) as u8).collect();
        let key = key_of(&data);
        let nodes: Vec<Arc<dyn Repository>> = (0..2)
            .map(|_| Arc::new(MemoryRepository::new(Uuid::new_v4())) as Arc<dyn Repository>)
            .collect();
        let mut src = Cut::new(data, 300_000);
        let err = put_all(
            &nodes,
            &key,
            &AssociatedFile::none(),
            &mut src,
            Some(1),
            false,
        )
        .await;
        assert!(err.is_err());
        for n in &nodes {
            assert!(!n.check_present(&key).await.unwrap());
        }
    }
}
