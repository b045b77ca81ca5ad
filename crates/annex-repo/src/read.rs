//! Reading a file as a stream of chunks: a blocking thread reads ahead in
//! large chunks while the stream is consumed, so disk reads and sending
//! overlap.

use std::io::{self, Read};
use std::path::Path;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

const CHUNK: usize = 1 << 20;

/// Reads `len` bytes of a file from `offset` on a blocking thread, as a
/// [`ChunkStream`](annex_protocol::ChunkStream) (read it as bytes with a
/// [`ChunkReader`](annex_protocol::ChunkReader)).
pub struct FileStream {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl FileStream {
    /// Starts reading `len` bytes of the open `file` from its current
    /// position.
    pub fn start(mut file: std::fs::File, len: u64) -> FileStream {
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut remaining = len;
            while remaining > 0 {
                let want = CHUNK.min(remaining as usize);
                // read_to_end fills spare capacity without zeroing it first.
                let mut buf = Vec::with_capacity(want);
                let r = (&mut file).take(want as u64).read_to_end(&mut buf);
                let msg = match r {
                    Ok(0) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    )),
                    Ok(n) => {
                        remaining -= n as u64;
                        Ok(Bytes::from(buf))
                    }
                    Err(e) => Err(e),
                };
                let failed = msg.is_err();
                if tx.blocking_send(msg).is_err() || failed {
                    return;
                }
            }
        });
        FileStream { rx }
    }

    /// Opens `path` and streams `len` bytes from `offset`.
    pub fn open(path: &Path, offset: u64, len: u64) -> io::Result<FileStream> {
        use std::io::Seek;
        let mut f = std::fs::File::open(path)?;
        f.seek(io::SeekFrom::Start(offset))?;
        Ok(FileStream::start(f, len))
    }
}

impl annex_protocol::ChunkStream for FileStream {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        // The reading thread stops after an error, ending the channel.
        self.rx.poll_recv(cx)
    }
}
