//! The get path of an S3 remote: the objects holding a key's content,
//! from the offset asked for, streamed to the sink as hyper reads them,
//! each with one GET of the range it holds past the offset (a client
//! resuming at an offset costs the server only the rest).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use annex_protocol::repository::{ChunkStream, GetOutcome, GetSink, Validity};
use annex_protocol::{Key, RepoError};
use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;

use super::client::{ObjectBody, ObjectStore, S3Error};
use super::{Candidate, S3Remote};
use crate::chunk::non_chunk_key;

type Opening = Pin<Box<dyn Future<Output = Result<Option<ObjectBody>, S3Error>> + Send>>;

/// The content of several objects, each from an offset, one after the
/// other, as one stream of chunks; each object is asked for once the one
/// before it has been read.
pub(super) struct ObjectsStream {
    store: ObjectStore,
    /// Objects still to read: name, offset, length from the offset.
    rest: VecDeque<(String, u64, u64)>,
    /// The object being read and how much of it is left.
    current: Option<(String, Incoming, u64)>,
    opening: Option<(String, u64, Opening)>,
}

fn broken(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, why)
}

impl ChunkStream for ObjectsStream {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            if let Some((name, body, left)) = &mut self.current {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(frame))) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        if data.len() as u64 > *left {
                            return Poll::Ready(Some(Err(broken(format!(
                                "{name}: more content than announced"
                            )))));
                        }
                        *left -= data.len() as u64;
                        if data.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Some(Err(broken(format!("{name}: {e}")))))
                    }
                    Poll::Ready(None) => {
                        if *left > 0 {
                            return Poll::Ready(Some(Err(broken(format!(
                                "{name}: the content ended early"
                            )))));
                        }
                        self.current = None;
                    }
                }
                continue;
            }
            if let Some((name, len, fut)) = &mut self.opening {
                match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(Some(ob))) if ob.len == *len => {
                        self.current = Some((std::mem::take(name), ob.body, *len));
                        self.opening = None;
                    }
                    Poll::Ready(Ok(Some(ob))) => {
                        return Poll::Ready(Some(Err(broken(format!(
                            "{name}: {} bytes where {len} were expected",
                            ob.len
                        )))))
                    }
                    Poll::Ready(Ok(None)) => {
                        return Poll::Ready(Some(Err(broken(format!(
                            "{name} vanished while being read"
                        )))))
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(io::Error::other(e)))),
                }
                continue;
            }
            let Some((name, from, len)) = self.rest.pop_front() else {
                return Poll::Ready(None);
            };
            let store = self.store.clone();
            let n = name.clone();
            self.opening = Some((
                name,
                len,
                Box::pin(async move { store.get(&n, from, None).await }),
            ));
        }
    }
}

impl ObjectsStream {
    /// The object `name` from byte `from`, `len` bytes long from there.
    pub(super) fn one(store: ObjectStore, name: String, from: u64, len: u64) -> ObjectsStream {
        ObjectsStream {
            store,
            rest: if len > 0 {
                VecDeque::from([(name, from, len)])
            } else {
                VecDeque::new()
            },
            current: None,
            opening: None,
        }
    }
}

/// Sends the key's content from `offset` into `sink`.
pub(super) async fn get(
    remote: &S3Remote,
    key: &Key,
    offset: u64,
    sink: &mut dyn GetSink,
) -> Result<GetOutcome, RepoError> {
    let key = non_chunk_key(key)?;
    let store = remote.store();
    for c in remote.candidates(&key)? {
        let objects = remote.objects(&key, &c)?;
        // Sizes: an unchunked object's from its answer; chunks' from the
        // layout, checked on the first and last chunk.
        let sized: Vec<(String, u64)> = match c {
            Candidate::Unchunked => {
                let (name, _) = &objects[0];
                let Some(info) = store.head(name).await.map_err(|e| remote.failed(e))? else {
                    continue;
                };
                vec![(name.clone(), info.len)]
            }
            Candidate::Chunks { .. } => {
                let mut sized = Vec::with_capacity(objects.len());
                for (name, len) in &objects {
                    let Some(len) = len else {
                        sized.clear();
                        break;
                    };
                    sized.push((name.clone(), *len));
                }
                if sized.is_empty() {
                    continue;
                }
                let ends = [0, sized.len() - 1];
                let mut all = true;
                for i in ends {
                    let (name, len) = &sized[i];
                    match store.head(name).await.map_err(|e| remote.failed(e))? {
                        Some(info) if info.len == *len => {}
                        _ => all = false,
                    }
                }
                if !all {
                    continue;
                }
                sized
            }
        };
        let total: u64 = sized.iter().map(|(_, l)| l).sum();
        let start = offset.min(total);
        let mut rest = VecDeque::new();
        let mut pos = 0u64;
        for (name, len) in sized {
            let end = pos + len;
            if end > start {
                let from = start.saturating_sub(pos);
                rest.push_back((name, from, len - from));
            }
            pos = end;
        }
        let mut stream = ObjectsStream {
            store: store.clone(),
            rest,
            current: None,
            opening: None,
        };
        sink.data_chunks(total - start, &mut stream).await?;
        // Objects do not change once written: what was sent is what the
        // bucket holds (the receiver checks it against the key).
        let accepted = sink.finish(Some(Validity::Valid)).await?;
        return Ok(GetOutcome::Sent { accepted });
    }
    Ok(GetOutcome::NotPresent)
}
