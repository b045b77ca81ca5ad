//! The one trait every reachable repository implements.
//!
//! A local repository, a protocol [`Client`](crate::Client) talking to a
//! peer, an HTTP client, a proxy and a cluster are all a [`Repository`], and
//! every server ([`serve`](crate::serve), p2phttp) serves any of them.
//!
//! Content flows through callbacks so that it can be streamed end to end:
//! [`Repository::get`] pushes content into a [`GetSink`], and
//! [`Repository::put`] pulls content from a [`PutSource`] once it knows from
//! which offset it wants it. A proxy passes the sink or source it was given
//! straight on to the repository behind it, so no byte is staged.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::{Buf, Bytes};
use thiserror::Error;
use tokio::io::{AsyncRead, ReadBuf};

use crate::codec::CodecError;
use crate::key::Key;
use crate::message::AssociatedFile;
use crate::uuid::Uuid;

/// A readable byte stream, as passed through the trait.
pub trait ByteStream: AsyncRead + Send + Unpin {}
impl<T: AsyncRead + Send + Unpin + ?Sized> ByteStream for T {}

/// Content that is already in memory, handed over chunk by chunk (a file
/// read ahead on another thread, for example), so that a sink able to keep
/// whole chunks need not copy them. See [`GetSink::data_chunks`].
pub trait ChunkStream: Send + Unpin {
    /// The next chunk of content; `None` at its end.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>>;

    /// Whether the sender of these chunks, in this process, checks all of
    /// the content against the key itself as it hands it out (a gateway
    /// that hashes an upload once for several repositories): a repository
    /// receiving all of it may skip its own hashing and ask
    /// [`PutSource::content_verified`] once the content is in. Never true
    /// for content from a peer. The default: no.
    fn checked_by_sender(&self) -> bool {
        false
    }
}

/// Reads a [`ChunkStream`] as a [`ByteStream`], copying its chunks into
/// the reader's buffers.
pub struct ChunkReader<'a> {
    chunks: &'a mut dyn ChunkStream,
    current: Bytes,
    done: bool,
}

impl<'a> ChunkReader<'a> {
    /// A reader of `chunks`.
    pub fn new(chunks: &'a mut dyn ChunkStream) -> ChunkReader<'a> {
        ChunkReader {
            chunks,
            current: Bytes::new(),
            done: false,
        }
    }
}

impl AsyncRead for ChunkReader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.current.is_empty() {
            if this.done {
                return Poll::Ready(Ok(()));
            }
            match this.chunks.poll_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Ok(chunk))) => this.current = chunk,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
        let n = buf.remaining().min(this.current.len());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// Whether content was unchanged while it was being sent (VALID/INVALID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validity {
    /// The sender vouches that the content did not change while sent.
    Valid,
    /// The content may have changed while sent; the receiver must verify it
    /// (or discard it when it cannot).
    Invalid,
}

/// Errors of repository operations.
#[derive(Debug, Error)]
pub enum RepoError {
    /// The operation is not allowed here (read-only, append-only, ...). The
    /// text is what a server sends the peer in its ERROR message.
    #[error("{0}")]
    Refused(String),
    /// The peer answered with an ERROR message.
    #[error("remote error: {0}")]
    Remote(String),
    /// The peer does not support this operation (its protocol version is
    /// too old, for example).
    #[error("not supported by this repository: {0}")]
    Unsupported(&'static str),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Reading or writing the protocol failed; the connection is unusable.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Local input or output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Any other failure that has no underlying error, described.
    #[error("{0}")]
    Other(String),
    /// A failure caused by another error (a task that panicked, a URL that
    /// does not parse, a log that cannot be read), kept as its
    /// [`source`](std::error::Error::source). Shown as `CONTEXT: SOURCE`,
    /// or as the source alone where there is no context. Made by
    /// [`RepoError::context`] and [`RepoError::failed`].
    #[error("{}{source}", context_prefix(.context))]
    Failed {
        /// What was being done (`recording the location`); may be empty.
        context: String,
        /// The error that made it fail.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn context_prefix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    }
}

/// What a server tells its peer about a failure whose cause is the
/// server's own business (a path, an ssh error, a node's answer): the
/// details belong in the server's log. git-annex has no words of its own
/// for this case: its p2phttp leaves such a request unanswered (or answers
/// with the exception's text), its git-annex-shell ends the session.
pub const SERVER_FAILURE: &str = "the repository failed (the server's log says why)";

impl RepoError {
    /// A failure of `context` (what was being done) caused by `source`,
    /// which is kept: `RepoError::context("recording the location", e)`.
    pub fn context(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> RepoError {
        RepoError::Failed {
            context: context.into(),
            source: source.into(),
        }
    }

    /// A failure caused by `source`, kept, and shown as its own text.
    pub fn failed(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> RepoError {
        RepoError::context(String::new(), source)
    }

    /// Whether the peer may be told this error's own text: refusals (their
    /// text is written for the peer), a full disk (git-annex's words, no
    /// path), what a repository cannot do. Anything else may hold paths,
    /// host names or another server's answers.
    pub fn is_for_peer(&self) -> bool {
        match self {
            RepoError::Refused(_) | RepoError::Unsupported(_) => true,
            RepoError::Io(e) => e.kind() == io::ErrorKind::StorageFull,
            _ => false,
        }
    }

    /// What a server sends its peer about this error (in ERROR, or as an
    /// HTTP answer's body): its text when [`is_for_peer`](Self::is_for_peer),
    /// git-annex's `protocol error` for a broken protocol, and otherwise
    /// [`SERVER_FAILURE`].
    pub fn peer_message(&self) -> String {
        match self {
            e if e.is_for_peer() => e.to_string(),
            RepoError::Protocol(_) => "protocol error".to_owned(),
            _ => SERVER_FAILURE.to_owned(),
        }
    }
}

/// What a remove did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoveOutcome {
    /// Whether the content is gone (also true when it was not there).
    pub removed: bool,
    /// Further repositories the content was removed from (a cluster's
    /// nodes): sent as SUCCESS-PLUS or FAILURE-PLUS.
    pub also_removed_from: Vec<Uuid>,
}

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The repository already had the content; the list names further
    /// repositories that have it (ALREADY-HAVE-PLUS).
    AlreadyHave(Vec<Uuid>),
    /// The content was stored; the list names further repositories it was
    /// stored in (SUCCESS-PLUS).
    Stored(Vec<Uuid>),
    /// The content was not stored.
    NotStored,
}

/// What a get did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetOutcome {
    /// The content was sent to the sink; the flag is the receiver's answer
    /// (whether it accepted the content).
    Sent {
        /// Whether the receiver accepted the content.
        accepted: bool,
    },
    /// The repository does not have the content; nothing was sent to the
    /// sink.
    NotPresent,
}

/// The content a put reads, from the offset the repository asks for.
#[async_trait]
pub trait PutSource: Send {
    /// Asks for the content from `offset` (the size of a partial temporary
    /// file, for resuming). Called at most once per put.
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError>;

    /// After the stream from [`PutSource::open`] has been read to its end:
    /// whether the sender vouches the content was unchanged (`None` when the
    /// protocol version cannot say).
    async fn validity(&mut self) -> Result<Option<Validity>, RepoError>;

    /// After [`validity`](Self::validity), for a source whose chunks are
    /// [`checked_by_sender`](ChunkStream::checked_by_sender): whether the
    /// whole content matched the key. The default: no.
    async fn content_verified(&mut self) -> Result<bool, RepoError> {
        Ok(false)
    }
}

/// The answer of [`PutSource::open`].
pub enum PutData<'a> {
    /// `len` bytes of content follow on `stream`.
    Stream {
        /// Exactly how many bytes the stream yields.
        len: u64,
        /// The content from the requested offset.
        stream: &'a mut dyn ByteStream,
    },
    /// `len` bytes of content follow as chunks already in memory (an
    /// HTTP request body): a repository that keeps chunks whole takes them
    /// without a copy; any other reads them with a [`ChunkReader`], as
    /// [`PutData::into_stream`] does.
    Chunks {
        /// Exactly how many bytes the chunks hold.
        len: u64,
        /// The content from the requested offset.
        chunks: &'a mut dyn ChunkStream,
    },
    /// The sender put the content in place by other means (DATA-PRESENT):
    /// the repository should check that it is there.
    Present,
}

/// Content to be received as a byte stream, whichever way it came.
pub enum StreamData<'a> {
    /// Content on a stream of the sender's.
    Stream(&'a mut dyn ByteStream),
    /// Chunks read through a [`ChunkReader`].
    Chunks(ChunkReader<'a>),
}

impl StreamData<'_> {
    /// The stream to read.
    pub fn stream(&mut self) -> &mut dyn ByteStream {
        match self {
            StreamData::Stream(s) => *s,
            StreamData::Chunks(r) => r,
        }
    }
}

impl<'a> PutData<'a> {
    /// The content's length and a stream of it, for a repository that
    /// reads content as a stream either way; `None` for
    /// [`PutData::Present`].
    pub fn into_stream(self) -> Option<(u64, StreamData<'a>)> {
        match self {
            PutData::Stream { len, stream } => Some((len, StreamData::Stream(stream))),
            PutData::Chunks { len, chunks } => {
                Some((len, StreamData::Chunks(ChunkReader::new(chunks))))
            }
            PutData::Present => None,
        }
    }
}

impl fmt::Debug for PutData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutData::Stream { len, .. } => write!(f, "PutData::Stream {{ len: {len} }}"),
            PutData::Chunks { len, .. } => write!(f, "PutData::Chunks {{ len: {len} }}"),
            PutData::Present => f.write_str("PutData::Present"),
        }
    }
}

/// Where the content of a get goes.
#[async_trait]
pub trait GetSink: Send {
    /// Receives `len` bytes of content from `stream`. Must read exactly
    /// `len` bytes or fail.
    async fn data(&mut self, len: u64, stream: &mut dyn ByteStream) -> Result<(), RepoError>;

    /// Receives `len` bytes of content as chunks already in memory, as
    /// [`data`](Self::data) does. The default reads them through `data`; a
    /// sink that can keep whole chunks (an HTTP response body) overrides it
    /// to spare a copy.
    async fn data_chunks(
        &mut self,
        len: u64,
        chunks: &mut dyn ChunkStream,
    ) -> Result<(), RepoError> {
        let mut reader = ChunkReader::new(chunks);
        self.data(len, &mut reader).await
    }

    /// Receives `len` bytes of content that is in `file` on this machine,
    /// from `offset`, when the sink can have the kernel move them to where
    /// they go (`sendfile`, `splice`) without copying them through this
    /// process; like [`data`](Self::data), it then moves exactly `len`
    /// bytes or fails. Returns `Ok(false)`, having read nothing, when it
    /// cannot: the repository sends the content with `data` or
    /// [`data_chunks`](Self::data_chunks) instead. The default cannot.
    async fn data_file(
        &mut self,
        len: u64,
        file: &std::fs::File,
        offset: u64,
    ) -> Result<bool, RepoError> {
        let _ = (len, file, offset);
        Ok(false)
    }

    /// After the data: the sender's word on whether the content was
    /// unchanged while sent (`None` when the protocol version cannot say).
    /// Returns whether the receiver accepts the content.
    async fn finish(&mut self, validity: Option<Validity>) -> Result<bool, RepoError>;
}

/// What holds a content lock; dropping it releases the lock.
pub trait LockGuard: Send {
    /// The lock's holder went away without unlocking (its connection
    /// broke). A repository that promises to keep content locked for a
    /// while after that (git-annex keeps it for 10 minutes) arranges it
    /// here; the guard is dropped right after.
    fn abandon(&mut self) {}
}

/// A guard that does nothing special when abandoned.
struct PlainGuard<G>(#[allow(dead_code)] G);

impl<G: Send> LockGuard for PlainGuard<G> {}

/// A lock on a key's content in a repository, preventing its removal. The
/// lock is released when this guard is dropped.
#[must_use = "the content is unlocked as soon as the guard is dropped"]
pub struct ContentLock {
    guard: Box<dyn LockGuard>,
}

impl ContentLock {
    /// Wraps anything whose drop releases the lock.
    pub fn new<G: Send + 'static>(guard: G) -> ContentLock {
        ContentLock {
            guard: Box::new(PlainGuard(guard)),
        }
    }

    /// Wraps a guard that also knows what to do when abandoned.
    pub fn with_guard<G: LockGuard + 'static>(guard: G) -> ContentLock {
        ContentLock {
            guard: Box::new(guard),
        }
    }

    /// Releases the lock because its holder went away without unlocking;
    /// see [`LockGuard::abandon`].
    pub fn abandon(mut self) {
        self.guard.abandon();
    }
}

impl fmt::Debug for ContentLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentLock")
    }
}

/// A repository this program can reach.
#[async_trait]
pub trait Repository: Send + Sync {
    /// The UUID of the repository.
    fn uuid(&self) -> &Uuid;

    /// Whether the repository has the key's content.
    async fn check_present(&self, key: &Key) -> Result<bool, RepoError>;

    /// Locks the key's content against removal. `Ok(None)` when the content
    /// is not present or cannot be locked.
    async fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, RepoError>;

    /// Removes the key's content. With `before`, a timestamp of this
    /// repository's monotonic clock (see [`Repository::get_timestamp`]), the
    /// removal must fail if it would happen at or after that time.
    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError>;

    /// The repository's monotonic clock, in seconds.
    async fn get_timestamp(&self) -> Result<u64, RepoError>;

    /// Sends the key's content from `offset` into `sink`.
    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError>;

    /// Stores the key's content, read from `source`.
    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError>;

    /// A view of this repository that avoids the given cluster gateways
    /// (BYPASS). Repositories that relay to no gateway return `None`, and
    /// are used as they are.
    fn bypass(&self, _gateways: &[Uuid]) -> Option<Box<dyn Repository>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::VecSink;

    /// Chunks handed out one per poll, each announced as pending first.
    struct Chunks {
        chunks: Vec<io::Result<Bytes>>,
        pending: bool,
    }

    impl ChunkStream for Chunks {
        fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
            self.pending = !self.pending;
            if self.pending {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.chunks.is_empty() {
                Poll::Ready(None)
            } else {
                Poll::Ready(Some(self.chunks.remove(0)))
            }
        }
    }

    #[tokio::test]
    async fn chunks_reach_a_sink_without_its_own_chunk_path() {
        let mut chunks = Chunks {
            chunks: vec![
                Ok(Bytes::from_static(b"hello ")),
                Ok(Bytes::new()),
                Ok(Bytes::from_static(b"chunked world")),
            ],
            pending: false,
        };
        let mut sink = VecSink::new(1 << 20);
        sink.data_chunks(19, &mut chunks).await.unwrap();
        assert_eq!(sink.data(), b"hello chunked world");
    }

    #[tokio::test]
    async fn a_failing_chunk_fails_the_data() {
        let mut chunks = Chunks {
            chunks: vec![
                Ok(Bytes::from_static(b"part")),
                Err(io::Error::other("disk gone")),
            ],
            pending: false,
        };
        let mut sink = VecSink::new(1 << 20);
        let err = sink.data_chunks(10, &mut chunks).await.unwrap_err();
        assert!(err.to_string().contains("disk gone"), "{err}");
    }

    #[test]
    fn a_failure_keeps_its_source_and_tells_the_peer_nothing_of_it() {
        use std::error::Error as _;
        let e = RepoError::context("recording the location", io::Error::other("disk gone"));
        assert_eq!(e.to_string(), "recording the location: disk gone");
        let source = e.source().expect("the source is kept");
        assert_eq!(source.to_string(), "disk gone");
        assert!(source.downcast_ref::<io::Error>().is_some());
        assert!(!e.is_for_peer());
        assert_eq!(e.peer_message(), SERVER_FAILURE);

        let e = RepoError::failed(io::Error::other("no route to host"));
        assert_eq!(e.to_string(), "no route to host");
        assert!(e.source().is_some());
        assert_eq!(e.peer_message(), SERVER_FAILURE);

        assert!(RepoError::Other("went away".into()).source().is_none());
    }
}
