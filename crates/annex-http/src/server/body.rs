//! Streaming bodies: a request body read as an `AsyncRead`, and a
//! response body fed from a bounded channel, so content is never held
//! whole in memory.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// The body type of every response.
pub type ResponseBody = BoxBody<Bytes, io::Error>;

/// Any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request, whatever server or framework it came from.
pub type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A response body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A request or response body read as a byte stream.
pub struct IncomingReader<B = Incoming> {
    body: B,
    chunk: Bytes,
    done: bool,
}

impl<B> IncomingReader<B> {
    /// Reads `body`.
    pub fn new(body: B) -> IncomingReader<B> {
        IncomingReader {
            body,
            chunk: Bytes::new(),
            done: false,
        }
    }
}

impl<B> IncomingReader<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Reads at most `max` bytes into `buf`.
    pub fn poll_read_max(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        max: u64,
    ) -> Poll<io::Result<()>> {
        let max = max.min(buf.remaining() as u64);
        if max == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(chunk) = ready!(self.poll_chunk_max(cx, max))? {
            buf.put_slice(&chunk);
        }
        Poll::Ready(Ok(()))
    }

    /// The next piece of the body, of at most `max` bytes, without a
    /// copy; `None` at its end.
    pub fn poll_chunk_max(
        &mut self,
        cx: &mut Context<'_>,
        max: u64,
    ) -> Poll<io::Result<Option<Bytes>>> {
        if max == 0 {
            return Poll::Ready(Ok(Some(Bytes::new())));
        }
        loop {
            if !self.chunk.is_empty() {
                let n = self.chunk.len().min(max.min(usize::MAX as u64) as usize);
                return Poll::Ready(Ok(Some(self.chunk.split_to(n))));
            }
            if self.done {
                return Poll::Ready(Ok(None));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.chunk = data;
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Err(io::Error::other(e.into())));
                }
                None => self.done = true,
            }
        }
    }
}

impl<B> AsyncRead for IncomingReader<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_read_max(cx, buf, u64::MAX)
    }
}

/// A response body whose chunks arrive over a channel. The sender ends the
/// body by dropping its end, or fails it by sending an error (the
/// connection is then cut, so the client sees a short body).
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
}

impl ChannelBody {
    /// A body and the sender feeding it; `depth` chunks may wait.
    pub fn new(depth: usize) -> (mpsc::Sender<Result<Bytes, io::Error>>, ChannelBody) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, ChannelBody { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match ready!(self.rx.poll_recv(cx)) {
            Some(Ok(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// How big the chunks of content streamed through a body are.
pub(crate) const CHUNK: usize = 512 * 1024;

/// Reads the next chunk of at most [`CHUNK`] bytes of the `remaining`
/// bytes of `stream`; a stream ending early is an error.
pub(crate) async fn next_chunk(
    stream: &mut dyn annex_protocol::ByteStream,
    remaining: u64,
) -> io::Result<Bytes> {
    use tokio::io::AsyncReadExt;
    let want = (CHUNK as u64).min(remaining) as usize;
    let mut buf = bytes::BytesMut::with_capacity(want);
    while buf.len() < want {
        let n = (&mut *stream)
            .take((want - buf.len()) as u64)
            .read_buf(&mut buf)
            .await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the content ended early",
            ));
        }
    }
    Ok(buf.freeze())
}
