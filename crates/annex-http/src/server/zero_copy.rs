//! A GET of content in a file, over plain HTTP/1.1 from [`Server`]: the
//! content goes from the file to the socket by `sendfile`, never through
//! this process.
//!
//! hyper writes the response; this only slips the content in. The
//! connection's socket is wrapped in a [`SpliceStream`], and each request
//! carries the connection's [`SpliceSlot`] as an extension. A GET whose
//! repository has the content in a file (`GetSink::data_file`) answers with
//! a [`SplicedBody`]: a chunked body whose first chunk is the file's
//! content but the last byte. When hyper first polls that body, the body
//! leaves the chunk in the slot and waits; hyper then flushes the response
//! head to the socket and asks the socket to flush, and the socket,
//! finding the chunk in the slot, writes its chunk header, sends the file
//! and writes the chunk's end before it answers. The body then goes on as
//! any body: the last byte once the repository has said the content is
//! valid (held back otherwise, which is how the API says it is not), then
//! hyper's end of the chunked body.
//!
//! Requests reaching [`P2pHttp`](super::P2pHttp) any other way (TLS,
//! HTTP/1.0, an embedding application's server) carry no slot and are
//! answered the ordinary way.
//!
//! [`Server`]: super::Server

use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::stall::{Stall, NOT_READING};

/// A connection's slot for content to send from a file.
#[derive(Clone, Default)]
pub(crate) struct SpliceSlot(Arc<Mutex<Slot>>);

#[derive(Default)]
struct Slot {
    job: Option<Job>,
    /// How the latest job ended.
    outcome: Option<Result<(), String>>,
    /// The body waiting for the job.
    waker: Option<Waker>,
}

impl SpliceSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Content to send from a file, as one HTTP chunk.
pub(crate) struct Job {
    file: std::fs::File,
    offset: u64,
    remaining: u64,
    header: Vec<u8>,
    header_sent: usize,
    trailer_sent: usize,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

const TRAILER: &[u8] = b"\r\n";

impl Job {
    /// `len` bytes of `file` from `offset` (`len` > 0); `done` hears how
    /// sending them ended.
    pub(crate) fn new(
        file: std::fs::File,
        offset: u64,
        len: u64,
        done: oneshot::Sender<Result<(), String>>,
    ) -> Job {
        Job {
            file,
            offset,
            remaining: len,
            header: format!("{len:X}\r\n").into_bytes(),
            header_sent: 0,
            trailer_sent: 0,
            done: Some(done),
        }
    }

    /// How far the sending has gone.
    fn sent(&self) -> (usize, u64, usize) {
        (self.header_sent, self.remaining, self.trailer_sent)
    }

    /// Sends what is left of the chunk.
    fn poll_send(&mut self, stream: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.header_sent < self.header.len() {
            ready!(stream.poll_write_ready(cx))?;
            match stream.try_write(&self.header[self.header_sent..]) {
                Ok(n) => self.header_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        while self.remaining > 0 {
            ready!(stream.poll_write_ready(cx))?;
            let want = self.remaining.min(1 << 30) as usize;
            let sent = stream.try_io(Interest::WRITABLE, || {
                annex_protocol::codec::send_file_once(
                    stream.as_fd(),
                    false,
                    &self.file,
                    &mut self.offset,
                    want,
                )
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    )))
                }
                Ok(n) => self.remaining -= n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        while self.trailer_sent < TRAILER.len() {
            ready!(stream.poll_write_ready(cx))?;
            match stream.try_write(&TRAILER[self.trailer_sent..]) {
                Ok(n) => self.trailer_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// A plain TCP connection that sends the job left in its slot when it is
/// flushed: hyper writes everything it buffered before it flushes, and
/// writes nothing while the body is waiting for the job. A write, or a
/// job, that cannot go on for the write timeout fails.
pub(crate) struct SpliceStream {
    stream: TcpStream,
    slot: SpliceSlot,
    stall: Stall,
}

impl SpliceStream {
    /// `stream`, whose writes fail once the client has taken nothing for
    /// `write_timeout`.
    pub(crate) fn new(stream: TcpStream, write_timeout: Duration) -> (SpliceStream, SpliceSlot) {
        let slot = SpliceSlot::default();
        (
            SpliceStream {
                stream,
                slot: slot.clone(),
                stall: Stall::new(write_timeout),
            },
            slot,
        )
    }

    /// Sends the job in the slot, if any, to its end.
    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut slot = self.slot.lock();
        let Some(job) = slot.job.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let before = job.sent();
        let Poll::Ready(result) = job.poll_send(&self.stream, cx) else {
            if job.sent() != before {
                self.stall.went_on();
            }
            return if self.stall.poll_expired(cx) {
                Poll::Ready(Err(self.stall.error(NOT_READING)))
            } else {
                Poll::Pending
            };
        };
        self.stall.went_on();
        let mut job = slot.job.take().expect("the job polled above");
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        if let Some(done) = job.done.take() {
            let _ = done.send(outcome.clone());
        }
        slot.outcome = Some(outcome);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
        Poll::Ready(result)
    }
}

impl Drop for SpliceStream {
    fn drop(&mut self) {
        // Whoever waits for a job not sent hears that it never will be.
        let job = self.slot.lock().job.take();
        drop(job);
    }
}

impl AsyncRead for SpliceStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SpliceStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // What hyper writes while a job waits is what precedes it (the
        // response head): it goes first.
        let this = self.get_mut();
        let stream = &mut this.stream;
        this.stall
            .poll(cx, NOT_READING, |cx| Pin::new(stream).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let stream = &mut this.stream;
        this.stall.poll(cx, NOT_READING, |cx| {
            Pin::new(stream).poll_write_vectored(cx, bufs)
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper has written all it buffered before it flushes.
        let this = self.get_mut();
        ready!(this.poll_job(cx))?;
        let stream = &mut this.stream;
        this.stall
            .poll(cx, NOT_READING, |cx| Pin::new(stream).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let stream = &mut this.stream;
        this.stall
            .poll(cx, NOT_READING, |cx| Pin::new(stream).poll_shutdown(cx))
    }
}

/// A response body whose first chunk the connection sends from a file.
pub(crate) struct SplicedBody {
    slot: SpliceSlot,
    job: Option<Job>,
    armed: bool,
    rest: mpsc::Receiver<Result<Bytes, io::Error>>,
}

impl SplicedBody {
    /// A body sending `job`, then what arrives on `rest`.
    pub(crate) fn new(
        slot: SpliceSlot,
        job: Job,
        rest: mpsc::Receiver<Result<Bytes, io::Error>>,
    ) -> SplicedBody {
        SplicedBody {
            slot,
            job: Some(job),
            armed: false,
            rest,
        }
    }
}

impl Body for SplicedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if !self.armed {
            // hyper has the head buffered: it flushes it, then the socket
            // sends the job.
            let job = self.job.take();
            let mut slot = self.slot.lock();
            slot.job = job;
            slot.outcome = None;
            slot.waker = Some(cx.waker().clone());
            drop(slot);
            self.armed = true;
            return Poll::Pending;
        }
        {
            let mut slot = self.slot.lock();
            match &slot.outcome {
                None => {
                    slot.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(io::Error::other(e.clone())))),
                Some(Ok(())) => {}
            }
        }
        match ready!(self.rest.poll_recv(cx)) {
            Some(Ok(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(None),
        }
    }
}
