//! Deadlines for a client that stops reading or sending: a write to the
//! connection that cannot go on for a while, and a request body that
//! sends nothing for a while, fail, so that what the request holds (a
//! node's session, a connection slot) is freed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long something may wait without going on before it is given up.
pub(crate) struct Stall {
    timeout: Duration,
    /// Since when it has been waiting, if it is.
    since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Stall {
    pub(crate) fn new(timeout: Duration) -> Stall {
        Stall {
            timeout,
            since: None,
            timer: None,
        }
    }

    /// It went on (or did not have to wait).
    pub(crate) fn went_on(&mut self) {
        self.since = None;
    }

    /// It is waiting: whether it has waited for the whole timeout. When
    /// not, `cx` is woken when it has.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let since = *self.since.get_or_insert_with(Instant::now);
        let deadline = since + self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// The error of a write or read given up.
    pub(crate) fn error(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} for {} s: given up", self.timeout.as_secs()),
        )
    }

    /// Polls `op`: its answer when it has one, an error when it has waited
    /// for the whole timeout.
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        what: &str,
        op: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match op(cx) {
            Poll::Ready(r) => {
                self.went_on();
                Poll::Ready(r)
            }
            Poll::Pending if self.poll_expired(cx) => Poll::Ready(Err(self.error(what))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A connection whose writes fail once the client has taken nothing for
/// the timeout.
pub(crate) struct WriteDeadline<I> {
    io: I,
    stall: Stall,
}

/// What a failed write says.
pub(crate) const NOT_READING: &str = "the client read nothing";

impl<I> WriteDeadline<I> {
    pub(crate) fn new(io: I, timeout: Duration) -> WriteDeadline<I> {
        WriteDeadline {
            io,
            stall: Stall::new(timeout),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteDeadline<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = &mut this.io;
        this.stall
            .poll(cx, NOT_READING, |cx| Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = &mut this.io;
        this.stall.poll(cx, NOT_READING, |cx| {
            Pin::new(io).poll_write_vectored(cx, bufs)
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = &mut this.io;
        this.stall
            .poll(cx, NOT_READING, |cx| Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = &mut this.io;
        this.stall
            .poll(cx, NOT_READING, |cx| Pin::new(io).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_takes_fails_after_the_timeout() {
        let (a, _b) = tokio::io::duplex(16);
        let mut w = WriteDeadline::new(a, Duration::from_secs(5));
        let e = w.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_is_never_cut() {
        let (a, mut b) = tokio::io::duplex(16);
        let mut w = WriteDeadline::new(a, Duration::from_secs(5));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let mut got = 0;
            while got < 256 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                got += tokio::io::AsyncReadExt::read(&mut b, &mut buf)
                    .await
                    .unwrap();
            }
        });
        w.write_all(&[0u8; 256]).await.unwrap();
        reader.await.unwrap();
    }
}
