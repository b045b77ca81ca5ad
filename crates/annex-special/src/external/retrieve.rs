//! Content retrieved from an external special remote into a file of the
//! gateway's (`annex/tmp/external/get/UUID/KEY`), read by the downloads
//! that want it: while the remote writes it, for a remote that writes in
//! order, or once it is complete.
//!
//! Downloads of one key from one remote at the same time share one
//! retrieve. When every download gives up before the remote is done, the
//! remote's process is stopped (as git-annex stops it when interrupted)
//! and, for a remote that writes in order, what it wrote stays: the next
//! retrieve of the key hands the remote that partial file, as git-annex
//! hands its own partial download to a remote, so that a remote able to
//! resume fetches only the rest. Content completed from such a partial
//! file is checked against its key before it counts as retrieved.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use annex_protocol::repository::ChunkStream;
use annex_protocol::{Key, RepoError};
use annex_repo::ReceiveLock;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, watch, Notify};

/// How often a reader of a growing file looks again when the remote sends
/// no PROGRESS (git-annex's gateway looks every 40 ms).
const POLL: Duration = Duration::from_millis(40);

/// Size of the pieces read from a growing file.
const CHUNK: usize = 256 * 1024;

/// How a retrieve ended.
pub(crate) type Outcome = Result<(), String>;

/// What the retrieving task and the readers share.
pub(crate) struct Progress {
    /// `None` while running.
    pub done: watch::Sender<Option<Outcome>>,
    /// Woken at each PROGRESS and at the end.
    pub moved: Notify,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            done: watch::Sender::new(None),
            moved: Notify::new(),
        }
    }

    /// Records how the retrieve ended.
    pub fn finish(&self, outcome: Outcome) {
        self.done.send_replace(Some(outcome));
        self.moved.notify_waiters();
    }

    fn outcome(&self) -> Option<Outcome> {
        self.done.borrow().clone()
    }
}

/// A retrieve of one key, shared by the downloads that want it.
pub(crate) struct Retrieval {
    /// The file the remote writes.
    pub path: PathBuf,
    /// The size of the partial file it started from.
    pub resumed_from: u64,
    pub progress: Arc<Progress>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    lock: Mutex<Option<ReceiveLock>>,
    /// Whether an interrupted retrieve's file stays for the next one.
    keep_partial: bool,
}

static UNIQUE: AtomicU64 = AtomicU64::new(1);

/// The retrieves in progress of one remote, by key.
#[derive(Default)]
pub(crate) struct Retrievals {
    by_key: Mutex<HashMap<Key, Weak<Retrieval>>>,
    /// Held while a download looks for a retrieve to join and starts one
    /// if there is none, so that downloads at once start one.
    pub starting: tokio::sync::Mutex<()>,
}

/// Where retrieves go, and what they may keep.
pub(crate) struct Place {
    /// `GIT_DIR/annex/tmp/external/get/UUID`.
    pub dir: PathBuf,
    pub git_dir: PathBuf,
    pub reserve: u64,
    /// The remote writes in order: a partial file is a prefix of the
    /// content.
    pub ordered: bool,
}

impl Retrievals {
    /// The retrieve of `key` in progress, or `None`.
    pub fn current(&self, key: &Key) -> Option<Arc<Retrieval>> {
        let mut m = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, w| w.strong_count() > 0);
        let r = m.get(key).and_then(Weak::upgrade)?;
        match r.progress.outcome() {
            Some(Err(_)) => None,
            _ => Some(r),
        }
    }

    /// Prepares a new retrieve of `key` at `place`: its file (with what
    /// an interrupted retrieve left, when the remote writes in order), its
    /// lock, and room for it. The caller starts the transfer with
    /// [`Retrieval::started`].
    pub async fn prepare(&self, key: &Key, place: &Place) -> Result<Arc<Retrieval>, RepoError> {
        let dir = place.dir.clone();
        let k = key.clone();
        let git_dir = place.git_dir.clone();
        let reserve = place.reserve;
        let ordered = place.ordered;
        let (path, lock, resumed_from, keep_partial) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let shared = dir.join(k.to_file_name());
            let (path, lock, keep) = match ReceiveLock::take(&shared)? {
                Some(l) => (shared, l, ordered),
                None => {
                    // Another process retrieves the key: a file of this
                    // one's own, not kept.
                    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
                    let own = dir.join(format!("{}.{}.{n}", k.to_file_name(), std::process::id()));
                    let l = ReceiveLock::take(&own)?
                        .ok_or_else(|| RepoError::Other(format!("{} is locked", own.display())))?;
                    (own, l, false)
                }
            };
            let mut have = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e.into()),
            };
            if have > 0 && (!keep || k.size().is_none_or(|s| have >= s)) {
                std::fs::remove_file(&path)?;
                have = 0;
            }
            let need = k.size().map(|s| s - have).unwrap_or(0);
            lock.claim_space(need, reserve, Some(&git_dir))?;
            Ok::<_, RepoError>((path, lock, have, keep))
        })
        .await
        .map_err(|e| RepoError::context("background task failed", e))??;
        let r = Arc::new(Retrieval {
            path,
            resumed_from,
            progress: Arc::new(Progress::new()),
            task: Mutex::new(None),
            lock: Mutex::new(Some(lock)),
            keep_partial,
        });
        self.by_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), Arc::downgrade(&r));
        Ok(r)
    }
}

impl Retrieval {
    /// Records the task that runs the transfer, stopped if every reader
    /// goes away before it ends.
    pub fn started(&self, task: tokio::task::AbortHandle) {
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Waits for the retrieve to end.
    pub async fn finished(&self) -> Outcome {
        let mut rx = self.progress.done.subscribe();
        loop {
            if let Some(o) = rx.borrow_and_update().clone() {
                return o;
            }
            if rx.changed().await.is_err() {
                return Err("the retrieve was abandoned".into());
            }
        }
    }

    async fn wait(&self) {
        let moved = self.progress.moved.notified();
        tokio::select! {
            _ = moved => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }

    /// Waits until the file holds more than `offset` bytes or the
    /// retrieve has ended; fails when it ended in failure first.
    pub async fn first_bytes(&self, offset: u64) -> Outcome {
        loop {
            let outcome = self.progress.outcome();
            if let Some(Err(e)) = outcome {
                return Err(e);
            }
            let len = tokio::fs::metadata(&self.path)
                .await
                .map(|m| m.len())
                .unwrap_or(0);
            if len > offset || outcome.is_some() {
                return Ok(());
            }
            self.wait().await;
        }
    }

    /// Streams bytes `start..end` of the file to the returned chunks as
    /// the remote writes them.
    pub fn stream(self: &Arc<Retrieval>, start: u64, end: u64) -> GrowingChunks {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(grow(self.clone(), start, end, tx));
        GrowingChunks(rx)
    }
}

fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// Reads the growing file into `tx`, from `start` to `end`.
async fn grow(r: Arc<Retrieval>, start: u64, end: u64, tx: mpsc::Sender<io::Result<Bytes>>) {
    let fail = |why: String| io::Error::new(io::ErrorKind::UnexpectedEof, why);
    let mut file: Option<(tokio::fs::File, (u64, u64))> = None;
    let mut pos = start;
    let mut reopened = false;
    while pos < end {
        if tx.is_closed() {
            return;
        }
        if file.is_none() {
            match tokio::fs::File::open(&r.path).await {
                Ok(mut f) => {
                    let id = match f.metadata().await {
                        Ok(m) => identity(&m),
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    if let Err(e) = f.seek(io::SeekFrom::Start(pos)).await {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    file = Some((f, id));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
        if let Some((f, _)) = file.as_mut() {
            let want = CHUNK.min(usize::try_from(end - pos).unwrap_or(CHUNK));
            let mut buf = BytesMut::with_capacity(want);
            match f.read_buf(&mut buf).await {
                Ok(0) => {}
                Ok(n) => {
                    pos += n as u64;
                    if tx.send(Ok(buf.freeze())).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
        // Nothing more to read for now.
        match r.progress.outcome() {
            Some(Err(e)) => {
                let _ = tx.send(Err(fail(e))).await;
                return;
            }
            Some(Ok(())) => {
                // A remote that wrote another file and renamed it into
                // place: read that one.
                let now = tokio::fs::metadata(&r.path).await.map(|m| identity(&m));
                let same = match (&file, &now) {
                    (Some((_, id)), Ok(now)) => id == now,
                    _ => false,
                };
                if !same && !reopened && now.is_ok() {
                    reopened = true;
                    file = None;
                    continue;
                }
                let _ = tx
                    .send(Err(fail(format!(
                        "the remote's file ended at {pos} bytes, before the key's {end}"
                    ))))
                    .await;
                return;
            }
            None => r.wait().await,
        }
    }
}

/// The chunks of a growing file, as a download sends them.
pub(crate) struct GrowingChunks(mpsc::Receiver<io::Result<Bytes>>);

impl ChunkStream for GrowingChunks {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        self.0.poll_recv(cx)
    }
}

impl Drop for Retrieval {
    fn drop(&mut self) {
        let outcome = self.progress.outcome();
        if outcome.is_none() {
            if let Some(t) = self
                .task
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                t.abort();
            }
        }
        // Kept: what an interrupted retrieve of a remote that writes in
        // order wrote, for the next one.
        let remove = outcome.is_some() || !self.keep_partial;
        let lock = self
            .lock
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if !remove {
            // Unlocked at once, so that the next retrieve resumes it.
            drop(lock);
            return;
        }
        let path = self.path.clone();
        let done = move || {
            let _ = std::fs::remove_file(&path);
            drop(lock);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(done);
            }
            Err(_) => done(),
        }
    }
}

/// Whether the file at `path` has grown since the last call (for the
/// deadline of a remote that sends no PROGRESS).
pub(crate) fn grew(path: &Path, last: &AtomicU64) -> bool {
    let now = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    last.swap(now, Ordering::Relaxed) != now
}
