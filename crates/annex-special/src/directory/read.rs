//! Reading stored content back: the pieces of a key's content as one
//! stream from an offset, and as one reader for the start of a resumed
//! put.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};
use std::time::SystemTime;

use annex_protocol::repository::ChunkStream;
use annex_repo::read::FileStream;
use bytes::Bytes;

/// Reads the first bytes of several files one after the other, opening
/// each only when it is reached.
pub(super) struct Concat {
    pub(super) parts: VecDeque<(PathBuf, u64)>,
    pub(super) current: Option<io::Take<fs::File>>,
}

impl Read for Concat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(cur) = self.current.as_mut() {
                let n = cur.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            let Some((path, len)) = self.parts.pop_front() else {
                return Ok(0);
            };
            self.current = Some(fs::File::open(path)?.take(len));
        }
    }
}

/// Reads parts of several files one after the other, as one stream.
pub(super) struct FilesStream {
    pub(super) parts: VecDeque<(PathBuf, u64, u64)>,
    pub(super) current: Option<FileStream>,
}

impl ChunkStream for FilesStream {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            if let Some(cur) = self.current.as_mut() {
                match cur.poll_chunk(cx) {
                    Poll::Ready(None) => self.current = None,
                    other => return other,
                }
            }
            let Some((path, offset, len)) = self.parts.pop_front() else {
                return Poll::Ready(None);
            };
            if len == 0 {
                continue;
            }
            match FileStream::open(&path, offset, len) {
                Ok(s) => self.current = Some(s),
                Err(e) => {
                    self.parts.clear();
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

pub(super) fn stamp(p: &Path) -> Option<(u64, Option<SystemTime>)> {
    fs::metadata(p).ok().map(|m| (m.len(), m.modified().ok()))
}
