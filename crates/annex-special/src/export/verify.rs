//! Content moving into and out of an [`ExportStore`], hashed on the way
//! as git-annex verifies exported content: what goes in becomes visible
//! only when it matched its key, and what comes out is sent with the
//! verdict (VALIDITY) its hash gave.

use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use annex_protocol::repository::{ChunkStream, GetOutcome, GetSink, PutData, Validity};
use annex_protocol::{Key, RepoError};
use annex_repo::receive_verified;
use annex_repo::verify::Verifier;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::{ExportPath, ExportStore, PendingStore};

fn blocking_err(e: tokio::task::JoinError) -> RepoError {
    RepoError::context("background task failed", e)
}

/// Content received into a store, not yet visible.
pub(super) struct Received {
    /// Made visible by its commit; dropped, it leaves nothing.
    pub(super) pending: Box<dyn PendingStore>,
    /// Fed every byte received: says whether they are the key's.
    pub(super) verifier: Verifier,
}

/// Receives `data` (a PUT's content, or content read from elsewhere)
/// into `path` of `store`, hashing it against `key` on the way. Nothing
/// is visible at `path` until the caller commits what this returns.
pub(super) async fn receive_into(
    store: &dyn ExportStore,
    path: &ExportPath,
    key: &Key,
    data: PutData<'_>,
) -> Result<Received, RepoError> {
    let len = match &data {
        PutData::Stream { len, .. } | PutData::Chunks { len, .. } => *len,
        PutData::Present => {
            return Err(RepoError::Other(
                "no content to receive: the sender put it in place".into(),
            ))
        }
    };
    let pending = store.start_store(key, path, len).await?;
    let shared: Arc<Mutex<Option<Box<dyn PendingStore>>>> = Arc::new(Mutex::new(Some(pending)));
    let writer = shared.clone();
    let verifier = receive_verified(
        key,
        Box::new(io::empty()),
        data,
        move |b: &[u8]| match writer.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            Some(p) => p.write(b),
            None => Err(io::Error::other("the store was given up")),
        },
    )
    .await?;
    let pending = shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| RepoError::Other("the store was given up".into()))?;
    Ok(Received { pending, verifier })
}

/// Stores `len` bytes of `chunks` at `path` when they are `key`'s
/// content; whether they were (and are now stored).
pub(super) async fn copy_into(
    store: &dyn ExportStore,
    path: &ExportPath,
    key: &Key,
    len: u64,
    chunks: &mut dyn ChunkStream,
) -> Result<bool, RepoError> {
    if key.size().is_some_and(|s| s != len) {
        return Ok(false);
    }
    let received = receive_into(store, path, key, PutData::Chunks { len, chunks }).await?;
    let Received { pending, verifier } = received;
    if verifier.finish().is_err() {
        return Ok(false);
    }
    pending.commit().await?;
    Ok(true)
}

/// Chunks arriving on a channel.
struct Channel(mpsc::Receiver<io::Result<Bytes>>);

impl ChunkStream for Channel {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        self.0.poll_recv(cx)
    }
}

/// Sends the content of `key` (all `total` bytes of it on `stream`, from
/// its start) into `sink` from `offset`, hashing all of it on a blocking
/// thread as it goes; the sink is then told whether the content matched
/// the key. Memory stays bounded: the hasher and the sink each get a few
/// chunks ahead at most.
pub(super) async fn send_verified(
    key: &Key,
    offset: u64,
    total: u64,
    mut stream: Box<dyn ChunkStream>,
    sink: &mut dyn GetSink,
) -> Result<GetOutcome, RepoError> {
    let offset = offset.min(total);
    let (hash_tx, mut hash_rx) = mpsc::channel::<Bytes>(8);
    let hkey = key.clone();
    let hasher = tokio::task::spawn_blocking(move || {
        let mut v = Verifier::new(&hkey);
        while let Some(b) = hash_rx.blocking_recv() {
            v.update(&b);
        }
        v
    });
    let (out_tx, out_rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let pump = async move {
        let mut pos = 0u64;
        loop {
            let chunk = match std::future::poll_fn(|cx| stream.poll_chunk(cx)).await {
                None => return Ok(pos),
                Some(Err(e)) => {
                    let _ = out_tx
                        .send(Err(io::Error::new(e.kind(), e.to_string())))
                        .await;
                    return Err(RepoError::Io(e));
                }
                Some(Ok(c)) => c,
            };
            let start = pos;
            pos += chunk.len() as u64;
            if hash_tx.send(chunk.clone()).await.is_err() {
                return Err(RepoError::Other("the hashing thread stopped".into()));
            }
            if pos > offset {
                let from = offset.saturating_sub(start) as usize;
                if out_tx.send(Ok(chunk.slice(from..))).await.is_err() {
                    // The sink gave up; it says why.
                    return Ok(pos);
                }
            }
        }
    };
    let send = async move {
        let mut chunks = Channel(out_rx);
        sink.data_chunks(total - offset, &mut chunks).await?;
        Ok::<_, RepoError>(sink)
    };
    let (pumped, sent) = tokio::join!(pump, send);
    let verifier = hasher.await.map_err(blocking_err)?;
    let sink = match (pumped, sent) {
        (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
        (Ok(n), Ok(sink)) if n != total => {
            let _ = sink;
            return Err(RepoError::Other(format!(
                "the remote's file changed size while being read ({n} bytes, not {total})"
            )));
        }
        (Ok(_), Ok(sink)) => sink,
    };
    let validity = if verifier.finish().is_ok() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    let accepted = sink.finish(Some(validity)).await?;
    Ok(GetOutcome::Sent { accepted })
}
