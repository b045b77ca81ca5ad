//! Log lines written by a thread of their own when standard error is a
//! terminal or a pipe (to a journal, say): a request's thread hands its
//! formatted line to a bounded queue and goes on, rather than waiting for
//! the reader to take it. Lines that find the queue full are dropped and
//! counted, and the count is written when there is room again: a server
//! never slows down for its log. A regular file is written directly: a
//! write into the page cache costs less than handing the line over, and
//! keeps the lines in the file in step with what the server did.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use std::os::fd::AsFd;

use tracing_subscriber::fmt::writer::BoxMakeWriter;
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

/// The writer of the log: standard error itself when it is a regular
/// file, else [`queued_stderr`] (with the guard that flushes it).
pub fn stderr_writer() -> io::Result<(BoxMakeWriter, Option<FlushOnDrop>)> {
    let is_file = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.file_type().is_file());
    if is_file {
        return Ok((BoxMakeWriter::new(io::stderr), None));
    }
    let (queued, flush) = queued_stderr()?;
    Ok((BoxMakeWriter::new(queued), Some(flush)))
}

/// A queued standard error, and the guard that flushes it.
pub fn queued_stderr() -> io::Result<(QueuedStderr, FlushOnDrop)> {
    queued(io::stderr, QUEUE)
}

/// Lines queued (at most `queue` waiting) for a thread that writes them
/// to what `out` opens, and the guard that flushes them.
fn queued<W: Write>(
    out: impl Fn() -> W + Send + 'static,
    queue: usize,
) -> io::Result<(QueuedStderr, FlushOnDrop)> {
    let (tx, rx) = mpsc::sync_channel(queue);
    let dropped = Arc::new(AtomicU64::new(0));
    let thread = {
        let dropped = dropped.clone();
        std::thread::Builder::new()
            .name("log".into())
            .spawn(move || write_lines(rx, &dropped, out))?
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

fn write_lines<W: Write>(rx: Receiver<Message>, dropped: &AtomicU64, open: impl Fn() -> W) {
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
        let mut out = open();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn queued_lines_are_written_in_order_and_flushed() {
        let out = Shared::default();
        let (queue, flush) = {
            let out = out.clone();
            queued(move || out.clone(), 1024).unwrap()
        };
        for i in 0..100 {
            queue
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(flush);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let want: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, want);
    }

    #[test]
    fn lines_finding_the_queue_full_are_dropped_and_counted() {
        let out = Shared::default();
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let (queue, flush) = {
            let (out, gate) = (out.clone(), gate.clone());
            // The writer waits for the gate: the queue fills up.
            queued(
                move || {
                    drop(gate.lock().unwrap());
                    out.clone()
                },
                2,
            )
            .unwrap()
        };
        for i in 0..50 {
            queue
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(held);
        drop(flush);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("log lines dropped"), "{text}");
        assert!(text.contains("line 0\n"), "{text}");
        assert!(text.lines().count() < 50, "{text}");
    }
}
