//! Uploads staged for external special remotes, which take content
//! through files: one temporary file per key in the gateway's
//! `annex/tmp/external/`, verified against the key as it arrives, and
//! shared by every external remote the upload goes to (the nodes of a
//! cluster: git-annex's gateway writes one file per node), then removed
//! once the last of them has stored it.
//!
//! The first upload of a key writes the file (from the size of what an
//! interrupted earlier upload left, for resuming); uploads of the same key
//! that come while it is in the gateway join it: they ask their sender
//! for no more than they must (nothing, for a key with a size) and wait
//! for the file. annex.diskreserve is checked before the content is asked
//! for and again as it is written, receives in progress counted (annex-repo's
//! [`ReceiveLock`]). The staged file is never visible to a remote before
//! it is complete and verified.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use annex_protocol::repository::{PutData, PutSource, Validity};
use annex_protocol::{Key, KeyVariety, RepoError};
use annex_repo::verify::Verifier;
use annex_repo::{receive_verified_hashing, ReceiveLock};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// How many bytes are written between two checks of the free space.
const CHECK_EVERY: u64 = 64 << 20;

/// Where a staged upload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Being received.
    Receiving,
    /// Complete and verified: this many bytes.
    Ready(u64),
    /// Not the key's content (or not of its size): nothing to store.
    Invalid,
    /// The sender put the content in place by other means (DATA-PRESENT).
    Present,
    /// Receiving failed; what arrived stays for a later upload to resume.
    Failed(String),
}

/// The staged uploads in this process, by path: at most one per key.
static STAGED: LazyLock<tokio::sync::Mutex<HashMap<PathBuf, Weak<Staged>>>> =
    LazyLock::new(Default::default);

/// A staged upload, shared by the uploads of its key.
pub(crate) struct Staged {
    path: PathBuf,
    key: Key,
    phase: watch::Sender<Phase>,
    lock: Mutex<Option<ReceiveLock>>,
    reserve: u64,
    git_dir: PathBuf,
}

/// What an upload does with a staged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Receives the content, from this offset.
    Writer { offset: u64 },
    /// Waits for another upload to receive it.
    Joiner,
}

/// Where uploads are staged.
pub(crate) struct Staging {
    /// `GIT_DIR/annex/tmp/external/put`.
    pub dir: PathBuf,
    /// The gateway's git directory.
    pub git_dir: PathBuf,
    /// annex.diskreserve.
    pub reserve: u64,
}

fn blocking(e: tokio::task::JoinError) -> RepoError {
    RepoError::context("background task failed", e)
}

fn usable(s: &Staged) -> bool {
    matches!(*s.phase.borrow(), Phase::Receiving | Phase::Ready(_))
}

impl Staging {
    /// The staged upload of `key`: the one in progress (or complete) in
    /// this process, joined, or a new one this upload writes. Refused
    /// when another process is receiving the key, or when the content
    /// would not leave annex.diskreserve free.
    pub async fn join(&self, key: &Key) -> Result<(Arc<Staged>, Role), RepoError> {
        let path = self.dir.join(key.to_file_name());
        let mut reg = STAGED.lock().await;
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(s) = reg.get(&path).and_then(Weak::upgrade) {
            if usable(&s) {
                return Ok((s, Role::Joiner));
            }
        }
        let dir = self.dir.clone();
        let p = path.clone();
        let k = key.clone();
        let git_dir = self.git_dir.clone();
        let reserve = self.reserve;
        let (lock, offset) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let lock = ReceiveLock::take(&p)?.ok_or_else(|| {
                RepoError::Refused(format!("a transfer of {k} is already in progress"))
            })?;
            let mut offset = match std::fs::metadata(&p) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e.into()),
            };
            if k.size().is_some_and(|s| offset > s) {
                std::fs::remove_file(&p)?;
                offset = 0;
            }
            if let Some(size) = k.size() {
                lock.claim_space(size - offset, reserve, Some(&git_dir))?;
            }
            Ok::<_, RepoError>((lock, offset))
        })
        .await
        .map_err(blocking)??;
        let staged = Arc::new(Staged {
            path: path.clone(),
            key: key.clone(),
            phase: watch::Sender::new(Phase::Receiving),
            lock: Mutex::new(Some(lock)),
            reserve: self.reserve,
            git_dir: self.git_dir.clone(),
        });
        reg.insert(path, Arc::downgrade(&staged));
        Ok((staged, Role::Writer { offset }))
    }
}

/// Reads and drops `len` bytes of content this upload does not need.
async fn drain(data: PutData<'_>) -> Result<(), RepoError> {
    match data {
        PutData::Present => Ok(()),
        PutData::Stream { len, stream } => {
            let mut left = len;
            let mut buf = vec![0u8; 64 * 1024];
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = stream.read(&mut buf[..want]).await?;
                if n == 0 {
                    return Err(RepoError::Other("content ended early".into()));
                }
                left -= n as u64;
            }
            Ok(())
        }
        PutData::Chunks { chunks, .. } => {
            while let Some(c) = std::future::poll_fn(|cx| chunks.poll_chunk(cx)).await {
                c?;
            }
            Ok(())
        }
    }
}

impl Staged {
    /// The staged file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn set(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    fn claim(&self, need: u64) -> Result<(), RepoError> {
        let lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match lock.as_ref() {
            Some(l) => l.claim_space(need, self.reserve, Some(&self.git_dir)),
            None => Ok(()),
        }
    }

    /// Receives the content from `source`, from `offset` on, into the
    /// staged file, verifying it; the phase it ends in.
    pub async fn receive(
        self: &Arc<Staged>,
        offset: u64,
        source: &mut dyn PutSource,
    ) -> Result<Phase, RepoError> {
        // Given up in the middle (its caller went away): failed, for the
        // uploads waiting for it.
        struct Interrupted<'a>(&'a Staged, bool);
        impl Drop for Interrupted<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0
                        .set(Phase::Failed("the upload was interrupted".into()));
                    drop(self.0.lock.lock().unwrap_or_else(|p| p.into_inner()).take());
                }
            }
        }
        let mut interrupted = Interrupted(self, true);
        let r = self.receive_inner(offset, source).await;
        let phase = match &r {
            Ok(p) => p.clone(),
            Err(e) => Phase::Failed(e.to_string()),
        };
        if !matches!(phase, Phase::Ready(_)) {
            // Another upload may start at once: a failed one's content
            // stays for it to resume from, content that is not the key's
            // goes first.
            let lock = self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
            let discard = !matches!(phase, Phase::Failed(_));
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || {
                if discard {
                    let _ = std::fs::remove_file(&path);
                }
                drop(lock);
            })
            .await
            .map_err(blocking)?;
        }
        interrupted.1 = false;
        self.set(phase);
        r
    }

    async fn receive_inner(
        self: &Arc<Staged>,
        offset: u64,
        source: &mut dyn PutSource,
    ) -> Result<Phase, RepoError> {
        let key = &self.key;
        let data = source.open(offset).await?;
        let len = match &data {
            PutData::Present => return Ok(Phase::Present),
            PutData::Stream { len, .. } | PutData::Chunks { len, .. } => *len,
        };
        let total = offset + len;
        match key.size() {
            Some(s) if total != s => return Ok(Phase::Invalid),
            Some(_) => {}
            None => {
                let this = self.clone();
                tokio::task::spawn_blocking(move || this.claim(len))
                    .await
                    .map_err(blocking)??;
            }
        }
        // The sender in this process hashes what it hands out (a cluster
        // upload): no second hashing here.
        let checked = offset == 0
            && matches!(&data, PutData::Chunks { chunks, .. } if chunks.checked_by_sender());
        let prefix: Box<dyn Read + Send> = if offset > 0 {
            Box::new(std::fs::File::open(&self.path)?.take(offset))
        } else {
            Box::new(io::empty())
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let this = self.clone();
        let mut written = offset;
        let mut checked_at = offset;
        let write = move |b: &[u8]| -> io::Result<()> {
            file.write_all(b)?;
            written += b.len() as u64;
            if written - checked_at >= CHECK_EVERY {
                checked_at = written;
                this.claim(total.saturating_sub(written))
                    .map_err(|e| match e {
                        RepoError::Io(e) => e,
                        e => io::Error::other(e.to_string()),
                    })?;
            }
            Ok(())
        };
        let checks_hash = Verifier::new(key).checks_hash();
        let verifier = receive_verified_hashing(key, prefix, data, write, !checked).await?;
        let validity = source.validity().await?;
        let matched = verifier.finish().is_ok() && (!checked || source.content_verified().await?);
        let hash_key = matches!(key.variety(), KeyVariety::Hash { .. }) && checks_hash;
        let ok = matched && (hash_key || validity != Some(Validity::Invalid));
        Ok(if ok {
            Phase::Ready(total)
        } else {
            Phase::Invalid
        })
    }

    /// For an upload that joined: asks `source` for as little content as
    /// it must (none for a key with a size), drops it, and waits for the
    /// upload that writes the file.
    pub async fn wait_for_writer(&self, source: &mut dyn PutSource) -> Result<Phase, RepoError> {
        let ask = match (&*self.phase.borrow(), self.key.size()) {
            (Phase::Ready(n), _) => *n,
            (_, Some(s)) => s,
            (_, None) => 0,
        };
        let data = source.open(ask).await?;
        drain(data).await?;
        let _ = source.validity().await?;
        let mut rx = self.phase.subscribe();
        loop {
            let phase = rx.borrow_and_update().clone();
            if phase != Phase::Receiving {
                return Ok(phase);
            }
            if rx.changed().await.is_err() {
                return Ok(Phase::Failed("the upload was abandoned".into()));
            }
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let remove = matches!(*self.phase.borrow(), Phase::Ready(_));
        let path = self.path.clone();
        let lock = self
            .lock
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let done = move || {
            if remove {
                let _ = std::fs::remove_file(&path);
            }
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
