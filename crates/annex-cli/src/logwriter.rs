//! Log lines written by a thread of their own: a request's thread hands
//! its formatted line to a bounded queue and goes on, rather than waiting
//! for standard error (a terminal, a pipe to a journal) to take it.
//! Lines that find the queue full are dropped and counted, and the count
//! is written when there is room again: a server never slows down for
//! its log.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing_subscriber::fmt::MakeWriter;

/// How many lines may wait to be written.
const QUEUE: usize = 16 * 1024;

enum Message {
    Line(Vec<u8>),
    /// Write everything before, then answer.
    Flush(mpsc::Sender<()>),
}

/// The [`MakeWriter`] to give `tracing_subscriber`.
#[derive(Clone)]
pub struct QueuedStderr {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// Waits, when dropped, for the lines queued so far to be written.
pub struct FlushOnDrop {
    tx: SyncSender<Message>,
    _thread: Option<JoinHandle<()>>,
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        let (ack, done) = mpsc::channel();
        if self.tx.send(Message::Flush(ack)).is_ok() {
            let _ = done.recv();
        }
    }
}

/// A queued standard error, and the guard that flushes it.
pub fn queued_stderr() -> io::Result<(QueuedStderr, FlushOnDrop)> {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let thread = {
        let dropped = dropped.clone();
        std::thread::Builder::new()
            .name("log".into())
            .spawn(move || write_lines(rx, &dropped))?
    };
    Ok((
        QueuedStderr {
            tx: tx.clone(),
            dropped,
        },
        FlushOnDrop {
            tx,
            _thread: Some(thread),
        },
    ))
}

fn write_lines(rx: Receiver<Message>, dropped: &AtomicU64) {
    let stderr = io::stderr();
    let mut batch = Vec::with_capacity(64 * 1024);
    // Whatever is queued goes out in one write: a busy server's lines
    // cost one system call per batch, not per line.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut flushes = Vec::new();
        while let Some(m) = next.take() {
            match m {
                Message::Line(l) => batch.extend_from_slice(&l),
                Message::Flush(ack) => flushes.push(ack),
            }
            if batch.len() < 1 << 20 {
                next = rx.try_recv().ok();
            }
        }
        let mut out = stderr.lock();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                out,
                "({lost} log lines dropped: standard error was too slow)"
            );
        }
        let _ = out.write_all(&batch);
        let _ = out.flush();
        drop(out);
        batch.clear();
        for ack in flushes {
            let _ = ack.send(());
        }
    }
}

/// One event's writer: the formatted event is queued as one line.
pub struct Line<'a>(&'a QueuedStderr);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.tx.try_send(Message::Line(buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writing thread is gone: nothing more is logged.
            Err(TrySendError::Disconnected(_)) => {}
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueuedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self)
    }
}
