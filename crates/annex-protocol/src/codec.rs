//! The line serialisation of the P2P protocol over async byte streams.
//!
//! [`ProtocolReader`] reads messages one line at a time, never buffering
//! more than one bounded line, and hands out the payload of a DATA message
//! as an [`AsyncRead`] limited to its length, so a payload of any size
//! passes through in constant memory. [`ProtocolWriter`] writes messages
//! and DATA payloads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::message::{Message, ParseError};

/// The longest line accepted by default, as in git-annex (32 KiB).
pub const DEFAULT_MAX_LINE: usize = 32 * 1024;

/// Size of the read buffer.
const BUF_SIZE: usize = 64 * 1024;

/// Size of the chunks payloads are copied in.
const COPY_SIZE: usize = 256 * 1024;

/// Errors reading or writing the protocol.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The stream failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    /// The stream ended in the middle of a line or of a DATA payload.
    #[error("connection closed in the middle of a message")]
    UnexpectedEof,
    /// A line was longer than the bound.
    #[error("protocol line longer than {0} bytes")]
    LineTooLong(usize),
    /// A line was not a message. The line has been consumed, so the
    /// connection can go on (git-annex answers such a line with an ERROR).
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// A payload was shorter than the DATA message announced.
    #[error("data source ended {missing} bytes short of the announced length")]
    ShortData {
        /// How many bytes were missing.
        missing: u64,
    },
}

impl CodecError {
    /// Whether the connection can still be used after this error.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, CodecError::Parse(_))
    }
}

/// Reads messages and DATA payloads from a byte stream.
pub struct ProtocolReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    max_line: usize,
    /// Bytes of the current DATA payload not yet consumed.
    data_remaining: u64,
}

impl<R: AsyncRead + Unpin> ProtocolReader<R> {
    /// A reader with the default line bound.
    pub fn new(inner: R) -> Self {
        Self::with_max_line(inner, DEFAULT_MAX_LINE)
    }

    /// A reader that refuses lines longer than `max_line` bytes.
    pub fn with_max_line(inner: R, max_line: usize) -> Self {
        ProtocolReader {
            inner,
            buf: vec![0u8; BUF_SIZE.max(max_line + 2)].into_boxed_slice(),
            start: 0,
            end: 0,
            max_line,
            data_remaining: 0,
        }
    }

    /// Bytes of the last DATA payload not yet read.
    pub fn data_remaining(&self) -> u64 {
        self.data_remaining
    }

    /// Reads the next message. Any unread part of a previous DATA payload is
    /// skipped first. Returns `Ok(None)` when the stream ends cleanly between
    /// messages. After a DATA message, its payload is read by reading from
    /// this reader as an [`AsyncRead`].
    pub async fn read_message(&mut self) -> Result<Option<Message>, CodecError> {
        self.skip_data().await?;
        let Some(line) = self.read_line().await? else {
            return Ok(None);
        };
        let (s, e) = line;
        let msg = Message::parse(&self.buf[s..e])?;
        if let Message::Data(len) = msg {
            self.data_remaining = len;
        }
        Ok(Some(msg))
    }

    /// Finds the next line; returns its range in the buffer (without the
    /// newline) and consumes it.
    async fn read_line(&mut self) -> Result<Option<(usize, usize)>, CodecError> {
        let mut scanned = 0;
        loop {
            let avail = &self.buf[self.start + scanned..self.end];
            if let Some(pos) = memchr(b'\n', avail) {
                let line_end = self.start + scanned + pos;
                if line_end - self.start > self.max_line {
                    return Err(CodecError::LineTooLong(self.max_line));
                }
                let s = self.start;
                self.start = line_end + 1;
                return Ok(Some((s, line_end)));
            }
            scanned = self.end - self.start;
            if scanned > self.max_line {
                return Err(CodecError::LineTooLong(self.max_line));
            }
            // Make room: move the partial line to the front.
            if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.inner.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return if self.start == self.end {
                    Ok(None)
                } else {
                    Err(CodecError::UnexpectedEof)
                };
            }
            self.end += n;
        }
    }

    /// Discards what is left of the current DATA payload.
    pub async fn skip_data(&mut self) -> Result<(), CodecError> {
        if self.data_remaining == 0 {
            return Ok(());
        }
        let mut sink = tokio::io::sink();
        copy_large(self, &mut sink).await.map_err(from_io)?;
        Ok(())
    }

    /// Reads the whole DATA payload into memory; for small payloads only
    /// (fails if it is longer than `limit`).
    pub async fn read_data_to_vec(&mut self, limit: usize) -> Result<Vec<u8>, CodecError> {
        if self.data_remaining > limit as u64 {
            return Err(CodecError::LineTooLong(limit));
        }
        let mut v = Vec::with_capacity(self.data_remaining as usize);
        self.read_to_end(&mut v).await.map_err(from_io)?;
        Ok(v)
    }

    /// Gives back the underlying stream. Buffered bytes are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn poll_data(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.data_remaining == 0 || out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let want = (out.remaining() as u64).min(self.data_remaining) as usize;
        if self.start < self.end {
            let n = want.min(self.end - self.start);
            out.put_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            self.data_remaining -= n as u64;
            return Poll::Ready(Ok(()));
        }
        // Nothing buffered: read straight into the caller's buffer.
        let mut limited = out.take(want);
        match Pin::new(&mut self.inner).poll_read(cx, &mut limited) {
            Poll::Ready(Ok(())) => {
                let n = limited.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed in the middle of a DATA payload",
                    )));
                }
                // SAFETY: `limited` wrote `n` initialised bytes into the
                // unfilled part of `out`.
                unsafe { out.assume_init(n) };
                out.advance(n);
                self.data_remaining -= n as u64;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

fn from_io(e: io::Error) -> CodecError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        CodecError::UnexpectedEof
    } else {
        CodecError::Io(e)
    }
}

/// As a byte stream, a reader yields what remains of the payload of the
/// DATA message just read, and then ends; it fails if the connection ends
/// before the announced length.
impl<R: AsyncRead + Unpin> AsyncRead for ProtocolReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_data(cx, buf)
    }
}

/// Writes messages and DATA payloads to a byte stream.
pub struct ProtocolWriter<W> {
    inner: W,
    line: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> ProtocolWriter<W> {
    /// A writer over `inner`.
    pub fn new(inner: W) -> Self {
        ProtocolWriter {
            inner,
            line: Vec::with_capacity(256),
        }
    }

    /// Writes one message and flushes it.
    pub async fn send(&mut self, msg: &Message) -> Result<(), CodecError> {
        self.line.clear();
        msg.write_line(&mut self.line);
        self.line.push(b'\n');
        self.inner.write_all(&self.line).await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// Writes `DATA len` followed by exactly `len` bytes from `src`, and
    /// flushes. If `src` ends early the connection can no longer be used
    /// (the peer expects more bytes), and [`CodecError::ShortData`] is
    /// returned. Bytes of `src` past `len` are not read.
    pub async fn send_data<S>(&mut self, len: u64, src: &mut S) -> Result<(), CodecError>
    where
        S: AsyncRead + Unpin + ?Sized,
    {
        self.line.clear();
        Message::Data(len).write_line(&mut self.line);
        self.line.push(b'\n');
        self.inner.write_all(&self.line).await?;
        let mut limited = (&mut *src).take(len);
        let copied = copy_large(&mut limited, &mut self.inner).await?;
        self.inner.flush().await?;
        if copied < len {
            return Err(CodecError::ShortData {
                missing: len - copied,
            });
        }
        Ok(())
    }

    /// Writes `DATA len` followed by `bytes` (whose length is `len`).
    pub async fn send_data_bytes(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        self.line.clear();
        Message::Data(bytes.len() as u64).write_line(&mut self.line);
        self.line.push(b'\n');
        self.inner.write_all(&self.line).await?;
        self.inner.write_all(bytes).await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// Shuts the stream down for writing.
    pub async fn shutdown(&mut self) -> Result<(), CodecError> {
        self.inner.shutdown().await?;
        Ok(())
    }

    /// Gives back the underlying stream.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: AsyncWrite + Unpin> ProtocolWriter<W> {
    /// Writes `DATA len` followed by `len` bytes of `file` from `offset`,
    /// moved by the kernel from the file into `out`, the descriptor this
    /// writer writes to (see [`FileOutput`]). The line goes through the
    /// writer and is flushed first, so the payload follows it.
    pub async fn send_data_file(
        &mut self,
        out: &FileOutput,
        len: u64,
        file: &std::fs::File,
        offset: u64,
    ) -> Result<(), CodecError> {
        self.line.clear();
        Message::Data(len).write_line(&mut self.line);
        self.line.push(b'\n');
        self.inner.write_all(&self.line).await?;
        self.inner.flush().await?;
        let sent = out.send_file(file, offset, len).await?;
        if sent < len {
            return Err(CodecError::ShortData {
                missing: len - sent,
            });
        }
        Ok(())
    }
}

/// An output (a pipe or a socket) that content can be moved into from a
/// file by the kernel, `splice` into a pipe and `sendfile` into a socket,
/// without passing through this process. Linux only: elsewhere
/// [`FileOutput::new`] answers `None` and content is copied as usual.
///
/// It is a second descriptor of an output that a writer already writes
/// to: whoever uses it flushes that writer first.
pub struct FileOutput {
    #[cfg(target_os = "linux")]
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    #[cfg(target_os = "linux")]
    pipe: bool,
}

impl std::fmt::Debug for FileOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileOutput")
    }
}

impl FileOutput {
    /// An output over `fd` (a duplicate of the output's descriptor, which
    /// must be non-blocking) when it is a pipe or a socket; `None` for
    /// anything else (a terminal, a regular file), on other platforms, or
    /// outside a tokio runtime.
    pub fn new(fd: std::os::fd::OwnedFd) -> Option<FileOutput> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: fstat writes into the zeroed struct it is given.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
                return None;
            }
            let pipe = match st.st_mode & libc::S_IFMT {
                libc::S_IFIFO => true,
                libc::S_IFSOCK => false,
                _ => return None,
            };
            tokio::runtime::Handle::try_current().ok()?;
            // SAFETY: the descriptor is owned by the AsyncFd, and neither
            // replaced nor closed while registered.
            let fd = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::WRITABLE)
            }
            .ok()?;
            Some(FileOutput { fd, pipe })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = fd;
            None
        }
    }

    /// Moves `len` bytes of `file` from `offset` into the output, waiting
    /// whenever it is full. Returns how many bytes were moved: fewer than
    /// `len` only when the file ends first.
    pub async fn send_file(&self, file: &std::fs::File, offset: u64, len: u64) -> io::Result<u64> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsFd;
            let mut offset = offset;
            let mut sent = 0u64;
            while sent < len {
                let mut guard = self.fd.writable().await?;
                let want = (len - sent).min(1 << 30) as usize;
                match guard.try_io(|fd| {
                    send_file_once(fd.get_ref().as_fd(), self.pipe, file, &mut offset, want)
                }) {
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => sent += n as u64,
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => continue,
                }
            }
            Ok(sent)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (file, offset, len);
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
    }
}

/// Moves at most `len` bytes of `file` from `*offset` into `out` inside
/// the kernel (`splice` when `out_is_pipe`, `sendfile` otherwise), without
/// blocking, and advances `*offset`. Returns how many bytes moved (0 at the
/// end of the file); `WouldBlock` when `out` is full. Linux only:
/// elsewhere it fails with `Unsupported`.
pub fn send_file_once(
    out: std::os::fd::BorrowedFd<'_>,
    out_is_pipe: bool,
    file: &std::fs::File,
    offset: &mut u64,
    len: usize,
) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut off = i64::try_from(*offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        loop {
            // SAFETY: both descriptors are open for the call, and `off` is
            // a valid loff_t/off_t the kernel reads and advances.
            let n = unsafe {
                if out_is_pipe {
                    libc::splice(
                        file.as_raw_fd(),
                        &mut off,
                        out.as_raw_fd(),
                        std::ptr::null_mut(),
                        len,
                        libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                    )
                } else {
                    libc::sendfile(out.as_raw_fd(), file.as_raw_fd(), &mut off, len)
                }
            };
            if n >= 0 {
                *offset = off as u64;
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (out, out_is_pipe, file, offset, len);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Copies with a large buffer (tokio's `copy` uses 8 KiB).
pub(crate) async fn copy_large<R, W>(src: &mut R, dst: &mut W) -> io::Result<u64>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; COPY_SIZE];
    let mut total = 0u64;
    loop {
        let n = src.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        dst.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_messages_and_payloads() {
        let input: &[u8] = b"VERSION 4\nDATA 5\nhelloSUCCESS\r\nDATA 3\nabcVALID\n";
        let mut r = ProtocolReader::new(input);
        assert_eq!(
            r.read_message().await.unwrap(),
            Some(Message::Version(crate::ProtocolVersion(4)))
        );
        assert_eq!(r.read_message().await.unwrap(), Some(Message::Data(5)));
        let mut payload = Vec::new();
        r.read_to_end(&mut payload).await.unwrap();
        assert_eq!(payload, b"hello");
        assert_eq!(r.read_message().await.unwrap(), Some(Message::Success));
        assert_eq!(r.read_message().await.unwrap(), Some(Message::Data(3)));
        // An unread payload is skipped.
        assert_eq!(r.read_message().await.unwrap(), Some(Message::Valid));
        assert_eq!(r.read_message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn bounded_lines() {
        let long = [b'A'; 100];
        let mut r = ProtocolReader::with_max_line(&long[..], 10);
        assert!(matches!(
            r.read_message().await,
            Err(CodecError::LineTooLong(10))
        ));
        let mut r = ProtocolReader::with_max_line(&b"SUCCESS\n"[..], 7);
        assert_eq!(r.read_message().await.unwrap(), Some(Message::Success));
        let mut r = ProtocolReader::with_max_line(&b"FAILURE\n"[..], 6);
        assert!(r.read_message().await.is_err());
    }

    #[tokio::test]
    async fn unparsable_lines_are_recoverable() {
        let mut r = ProtocolReader::new(&b"BOGUS\nSUCCESS\n"[..]);
        let e = r.read_message().await.unwrap_err();
        assert!(e.is_recoverable());
        assert_eq!(r.read_message().await.unwrap(), Some(Message::Success));
    }

    #[tokio::test]
    async fn truncated_input() {
        let mut r = ProtocolReader::new(&b"SUCC"[..]);
        assert!(matches!(
            r.read_message().await,
            Err(CodecError::UnexpectedEof)
        ));
        let mut r = ProtocolReader::new(&b"DATA 10\nabc"[..]);
        r.read_message().await.unwrap();
        let mut v = Vec::new();
        assert!(r.read_to_end(&mut v).await.is_err());
    }

    #[tokio::test]
    async fn writes_data() {
        let mut out = Vec::new();
        let mut w = ProtocolWriter::new(&mut out);
        w.send(&Message::Success).await.unwrap();
        w.send_data(3, &mut &b"abcdef"[..]).await.unwrap();
        assert!(matches!(
            w.send_data(10, &mut &b"abc"[..]).await,
            Err(CodecError::ShortData { missing: 7 })
        ));
        assert_eq!(&out[..], b"SUCCESS\nDATA 3\nabcDATA 10\nabc");
    }
}
