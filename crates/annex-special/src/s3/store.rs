//! The put path of an S3 remote: content streamed from the sender to the
//! bucket as it arrives, hashed on the way, visible only once it is
//! known to match its key.
//!
//! The content is written as objects (one, or the chunks of a `chunk=`
//! remote), each by one streamed PUT or, when larger than a part
//! (`partsize=`, or more than S3 takes in one request), by a multipart
//! upload whose parts stream the same way. Every piece goes to the
//! hasher and to the object's request at once; the last piece of the
//! content is held back until the hash (or the cluster's, for a sender
//! that hashes for all its nodes) says the content is the key's, and the
//! last object is finished only then. Wrong content breaks its request
//! off (the server stores nothing of an incomplete request) or aborts
//! its multipart upload, and the chunks written before it are deleted.
//!
//! An interrupted put of chunked content leaves its complete chunks in
//! the bucket; the next put starts after them, reading them back to
//! hash them, so the content is still verified end to end. Unchunked
//! content written in parts, of a SHA-256 or SHA-512 key, resumes after
//! the parts of its pending multipart upload (see `resume`).

use std::collections::VecDeque;
use std::io;

use annex_protocol::repository::{
    ByteStream, ChunkStream, PutData, PutOutcome, PutSource, Validity,
};
use annex_protocol::{Key, RepoError, Repository};
use annex_repo::verify::Verifier;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::{BodySender, ObjectStore, S3Error};
use super::S3Remote;
use crate::chunk::{chunk_count, chunk_key, is_stable_key, Chunking};

/// The most content read from the sender at a time.
pub(super) const PIECE: usize = 256 * 1024;

/// Objects finished in the background while the next one is written.
const FINISHING: usize = 2;

pub(super) type Answer = JoinHandle<Result<Option<String>, S3Error>>;

fn joined(e: tokio::task::JoinError) -> S3Error {
    S3Error::Transfer {
        op: "PUT",
        object: String::new(),
        reason: e.to_string(),
    }
}

/// Where received content comes from.
pub(super) enum Incoming<'a> {
    Stream(&'a mut dyn ByteStream),
    /// Chunks, and what is left of the last one taken.
    Chunks(&'a mut dyn ChunkStream, Bytes),
}

impl Incoming<'_> {
    /// The next piece of at most `max` bytes; empty at the end. Chunks
    /// are passed on without a copy.
    pub(super) async fn next(&mut self, max: usize) -> io::Result<Bytes> {
        match self {
            Incoming::Stream(stream) => {
                let mut buf = BytesMut::with_capacity(max);
                stream.read_buf(&mut buf).await?;
                Ok(buf.freeze())
            }
            Incoming::Chunks(chunks, pending) => {
                while pending.is_empty() {
                    match std::future::poll_fn(|cx| chunks.poll_chunk(cx)).await {
                        None => return Ok(Bytes::new()),
                        Some(Err(e)) => return Err(e),
                        Some(Ok(chunk)) => *pending = chunk,
                    }
                }
                let n = pending.len().min(max);
                Ok(pending.split_to(n))
            }
        }
    }
}

/// One object being written.
pub(super) enum Writer {
    /// One streamed PUT.
    Single { tx: BodySender, answer: Answer },
    /// A multipart upload whose parts stream in turn.
    Multipart(Multipart),
}

pub(super) struct Multipart {
    store: ObjectStore,
    name: String,
    upload_id: String,
    part_size: u64,
    /// Bytes of the object not yet given to a part.
    left: u64,
    /// The part being written and how much of it is left.
    current: Option<(BodySender, u64)>,
    /// The parts' answers, in order.
    parts: Vec<Answer>,
}

impl Writer {
    pub(super) async fn start(
        store: &ObjectStore,
        part_size: Option<u64>,
        name: &str,
        len: u64,
    ) -> Result<Writer, S3Error> {
        match part_size {
            None => {
                let (tx, answer) = store.put(name, len)?;
                Ok(Writer::Single { tx, answer })
            }
            Some(part_size) => {
                let upload_id = store.create_multipart(name).await?;
                Ok(Writer::Multipart(Multipart {
                    store: store.clone(),
                    name: name.to_owned(),
                    upload_id,
                    part_size,
                    left: len,
                    current: None,
                    parts: Vec::new(),
                }))
            }
        }
    }

    /// Writes the next piece of the object.
    pub(super) async fn write(&mut self, mut piece: Bytes) -> Result<(), S3Error> {
        match self {
            Writer::Single { tx, answer } => {
                if tx.send(piece).await.is_err() {
                    // The request ended: its answer says why.
                    return Err(finished(answer).await.err().unwrap_or_else(|| {
                        S3Error::Transfer {
                            op: "PUT",
                            object: String::new(),
                            reason: "the request ended before its content".into(),
                        }
                    }));
                }
                Ok(())
            }
            Writer::Multipart(m) => {
                while !piece.is_empty() {
                    if m.current.as_ref().is_none_or(|(_, left)| *left == 0) {
                        let len = m.part_size.min(m.left);
                        let number =
                            u16::try_from(m.parts.len() + 1).map_err(|_| S3Error::Transfer {
                                op: "UploadPart",
                                object: m.name.clone(),
                                reason: "more than 10000 parts".into(),
                            })?;
                        let (tx, answer) =
                            m.store.upload_part(&m.name, &m.upload_id, number, len)?;
                        m.left -= len;
                        m.parts.push(answer);
                        m.current = Some((tx, len));
                    }
                    let Some((tx, left)) = m.current.as_mut() else {
                        break;
                    };
                    let n = (*left).min(piece.len() as u64) as usize;
                    let part = piece.split_to(n);
                    *left -= n as u64;
                    if tx.send(part).await.is_err() {
                        let answer = m.parts.last_mut().expect("a part was started");
                        return Err(finished(answer).await.err().unwrap_or_else(|| {
                            S3Error::Transfer {
                                op: "UploadPart",
                                object: m.name.clone(),
                                reason: "the request ended before its content".into(),
                            }
                        }));
                    }
                }
                Ok(())
            }
        }
    }

    /// Finishes the object, all its content written: it then exists.
    pub(super) async fn finish(self) -> Result<(), S3Error> {
        match self {
            Writer::Single { tx, mut answer } => {
                drop(tx);
                finished(&mut answer).await.map(|_| ())
            }
            Writer::Multipart(mut m) => {
                m.current = None;
                let mut etags = Vec::with_capacity(m.parts.len());
                let mut failure = None;
                for mut a in std::mem::take(&mut m.parts) {
                    match finished(&mut a).await {
                        Ok(Some(tag)) => etags.push(tag),
                        Ok(None) => {
                            failure.get_or_insert(S3Error::Transfer {
                                op: "UploadPart",
                                object: m.name.clone(),
                                reason: "no ETag in the answer".into(),
                            });
                        }
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    }
                }
                if etags.is_empty() && failure.is_none() {
                    // An empty object: one empty part.
                    let (tx, mut a) = m.store.upload_part(&m.name, &m.upload_id, 1, 0)?;
                    drop(tx);
                    match finished(&mut a).await {
                        Ok(Some(tag)) => etags.push(tag),
                        Ok(None) => {}
                        Err(e) => failure = Some(e),
                    }
                }
                if let Some(e) = failure {
                    let _ = m.store.abort_multipart(&m.name, &m.upload_id).await;
                    return Err(e);
                }
                let r = m
                    .store
                    .complete_multipart(&m.name, &m.upload_id, &etags)
                    .await;
                if r.is_err() {
                    let _ = m.store.abort_multipart(&m.name, &m.upload_id).await;
                }
                r
            }
        }
    }

    /// Gives the object up: nothing of it is stored.
    pub(super) async fn abort(self) {
        match self {
            Writer::Single { tx, mut answer } => {
                tx.abort().await;
                let _ = finished(&mut answer).await;
            }
            Writer::Multipart(mut m) => {
                if let Some((tx, _)) = m.current.take() {
                    tx.abort().await;
                }
                for mut a in std::mem::take(&mut m.parts) {
                    let _ = finished(&mut a).await;
                }
                let _ = m.store.abort_multipart(&m.name, &m.upload_id).await;
            }
        }
    }
}

async fn finished(answer: &mut Answer) -> Result<Option<String>, S3Error> {
    answer.await.map_err(joined)?
}

/// Stores `key` (without chunk fields, not present in the remote) from
/// `source`.
pub(super) async fn put(
    remote: &S3Remote,
    key: &Key,
    source: &mut dyn PutSource,
) -> Result<PutOutcome, RepoError> {
    let store = remote.store().clone();
    let config = remote.config();
    let naming = remote.naming();
    let chunk = match (config.chunking, key.size()) {
        (Chunking::Chunks(s), Some(_)) if is_stable_key(key) => Some(s),
        _ => None,
    };
    // Unchunked content written in parts, of a key whose hash state can
    // be saved: resumable after an interruption.
    if chunk.is_none() {
        if let (Some(total), Some(kind)) = (key.size(), super::resume::resumable_kind(key)) {
            if let Some(part_size) = config.part_size_for(total) {
                return super::resume::put(remote, key, kind, total, part_size, source).await;
            }
        }
    }
    // Complete chunks an interrupted put left (never the last: with it,
    // the content would be there).
    let mut resumed = 0u64;
    let mut offset = 0u64;
    if let (Some(s), Some(total)) = (chunk, key.size()) {
        for i in 1..chunk_count(total, s) {
            let name = naming.key(&chunk_key(key, s, i)?);
            match store.head(&name).await.map_err(|e| remote.failed(e))? {
                Some(info) if info.len == s => {
                    resumed = i;
                    offset += s;
                }
                _ => break,
            }
        }
    }
    let data = source.open(offset).await?;
    let len = match &data {
        PutData::Present => {
            return Ok(if remote.check_present(key).await? {
                PutOutcome::Stored(Vec::new())
            } else {
                PutOutcome::NotStored
            });
        }
        PutData::Stream { len, .. } | PutData::Chunks { len, .. } => *len,
    };
    let total = offset + len;
    if key.size().is_some_and(|s| s != total) {
        // The sender's idea of the content's size is not the key's.
        return Ok(PutOutcome::NotStored);
    }
    // A sender in this process that hashes all of the content itself (a
    // cluster gateway writing one upload to several repositories) spares
    // the hashing here.
    let checked = offset == 0
        && matches!(&data, PutData::Chunks { chunks, .. } if chunks.checked_by_sender());
    let mut incoming = match data {
        PutData::Stream { stream, .. } => Incoming::Stream(stream),
        PutData::Chunks { chunks, .. } => Incoming::Chunks(chunks, Bytes::new()),
        PutData::Present => unreachable!("answered above"),
    };

    // The objects to write, after the chunks already there.
    let objects: Vec<(String, u64)> = match chunk {
        Some(s) => (resumed + 1..=chunk_count(total, s))
            .map(|i| {
                let len = s.min(total - (i - 1) * s);
                Ok((naming.key(&chunk_key(key, s, i)?), len))
            })
            .collect::<Result<_, RepoError>>()?,
        None => vec![(naming.key(key), total)],
    };
    let in_place: Vec<String> = match chunk {
        Some(s) => (1..=resumed)
            .map(|i| Ok(naming.key(&chunk_key(key, s, i)?)))
            .collect::<Result<_, RepoError>>()?,
        None => Vec::new(),
    };

    // Hashing on a thread of its own, fed the chunks in place first.
    let (hash_tx, mut hash_rx) = mpsc::channel::<Bytes>(8);
    let mut verifier = if checked {
        Verifier::size_only(key)
    } else {
        Verifier::new(key)
    };
    let hasher = tokio::task::spawn_blocking(move || {
        while let Some(c) = hash_rx.blocking_recv() {
            verifier.update(&c);
        }
        verifier
    });
    for name in &in_place {
        let body = store
            .get(name, 0, None)
            .await
            .map_err(|e| remote.failed(e))?
            .ok_or_else(|| RepoError::Other(format!("{name} vanished while being read")))?;
        let mut body = body.body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| RepoError::context(format!("reading {name}"), e))?;
            if let Ok(d) = frame.into_data() {
                let _ = hash_tx.send(d).await;
            }
        }
    }

    let mut pending = objects.into_iter();
    let mut writer: Option<(Writer, u64)> = None;
    let mut finishing: VecDeque<JoinHandle<Result<(), S3Error>>> = VecDeque::new();
    let mut written: Vec<String> = in_place;
    let mut remaining = len;
    let mut held: Option<Bytes> = None;
    let mut failure: Option<RepoError> = None;
    while remaining > 0 {
        // The next object, once this one has all its content.
        if writer.as_ref().is_none_or(|(_, left)| *left == 0) {
            if let Some((w, _)) = writer.take() {
                finishing.push_back(tokio::spawn(w.finish()));
                if finishing.len() > FINISHING {
                    if let Some(f) = finishing.pop_front() {
                        if let Err(e) = f.await.map_err(joined).and_then(|r| r) {
                            failure = Some(remote.failed(e));
                            break;
                        }
                    }
                }
            }
            let Some((name, olen)) = pending.next() else {
                failure = Some(RepoError::Other("more content than the key holds".into()));
                break;
            };
            match Writer::start(&store, config.part_size_for(olen), &name, olen).await {
                Ok(w) => writer = Some((w, olen)),
                Err(e) => {
                    failure = Some(remote.failed(e));
                    break;
                }
            }
            written.push(name);
        }
        let Some((w, left)) = writer.as_mut() else {
            break;
        };
        let max = PIECE.min((*left).min(remaining) as usize);
        let piece = match incoming.next(max).await {
            Ok(p) if p.is_empty() => {
                failure = Some(RepoError::Other("content ended early".into()));
                break;
            }
            Ok(p) => p,
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        };
        remaining -= piece.len() as u64;
        *left -= piece.len() as u64;
        let _ = hash_tx.send(piece.clone()).await;
        if remaining == 0 {
            // The last piece waits for the verdict.
            held = Some(piece);
        } else if let Err(e) = w.write(piece).await {
            failure = Some(remote.failed(e));
            break;
        }
    }
    drop(hash_tx);
    if let Some(e) = failure {
        // Interrupted: complete chunks stay for a later put to resume
        // from; the object being written is given up.
        if let Some((w, _)) = writer {
            w.abort().await;
        }
        for f in finishing {
            let _ = f.await;
        }
        return Err(e);
    }
    let verifier = hasher
        .await
        .map_err(|e| RepoError::context("background task failed", e))?;
    let validity = source.validity().await?;
    let verified_by_sender = checked && source.content_verified().await?;
    let hashed = verifier.checks_hash() || verified_by_sender;
    let ok = verifier.finish().is_ok()
        && (!checked || verified_by_sender)
        && (hashed || validity != Some(Validity::Invalid));

    // Empty content: its one object is started only now.
    if writer.is_none() && ok {
        if let Some((name, olen)) = pending.next() {
            match Writer::start(&store, config.part_size_for(olen), &name, olen).await {
                Ok(w) => writer = Some((w, olen)),
                Err(e) => return Err(remote.failed(e)),
            }
            written.push(name);
        }
    }
    let mut result = Ok(());
    if ok {
        if let Some((mut w, _)) = writer {
            let wrote = match held {
                Some(p) => w.write(p).await,
                None => Ok(()),
            };
            result = match wrote {
                Ok(()) => w.finish().await,
                Err(e) => {
                    w.abort().await;
                    Err(e)
                }
            };
        }
        for f in finishing {
            let r = f.await.map_err(joined).and_then(|r| r);
            if result.is_ok() {
                result = r;
            }
        }
        result.map_err(|e| remote.failed(e))?;
        if let (Some(s), Some(total)) = (chunk, key.size()) {
            remote.log_chunks(key, s, chunk_count(total, s))?;
        }
        return Ok(PutOutcome::Stored(Vec::new()));
    }
    // Not the key's content: nothing of it stays. The object being
    // written is given up before its end, so the server never stores it;
    // the chunks before it, those of an earlier, interrupted put
    // included (they were part of what failed), are deleted.
    if let Some((w, _)) = writer {
        w.abort().await;
        written.pop();
    }
    for f in finishing {
        let _ = f.await;
    }
    for name in &written {
        store.delete(name).await.map_err(|e| remote.failed(e))?;
    }
    Ok(PutOutcome::NotStored)
}
