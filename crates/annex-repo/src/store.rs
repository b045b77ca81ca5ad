//! Receiving content: into the temporary file, verified while it streams
//! in, then moved into place.

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use annex_protocol::{Key, KeyVariety, PutData, PutOutcome, PutSource, RepoError, Validity};
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::space::ReceiveLock;
use crate::verify::Verifier;
use crate::{blocking_err, LocalRepository};

/// Size of the chunks content is received and written in.
const CHUNK: usize = 256 * 1024;

fn is_hash_key(key: &Key) -> bool {
    matches!(key.variety(), KeyVariety::Hash { .. })
}

pub(crate) async fn put(
    repo: &LocalRepository,
    key: &Key,
    source: &mut dyn PutSource,
) -> Result<PutOutcome, RepoError> {
    if repo.has_content(key) {
        return Ok(PutOutcome::AlreadyHave(Vec::new()));
    }
    let tmp = repo.tmp_path(key);
    let tmpdir = tmp.parent().unwrap_or(Path::new(".")).to_owned();
    tokio::fs::create_dir_all(&tmpdir).await?;

    // One receiver of a key at a time: a second concurrent PUT is refused
    // rather than allowed to interleave writes into the temporary file.
    let recv_lock = ReceiveLock::take(&tmp)?
        .ok_or_else(|| RepoError::Refused(format!("a transfer of {key} is already in progress")))?;

    let mut offset = match tokio::fs::metadata(&tmp).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    };
    if key.size().is_some_and(|s| offset > s) {
        tokio::fs::remove_file(&tmp).await?;
        offset = 0;
    }
    // Room for the content, before the sender is asked for it (a key
    // without a size: once the sender says how much it sends).
    let claim = |need: u64| recv_lock.claim_space(need, repo.disk_reserve(), Some(repo.git_dir()));
    if let Some(size) = key.size() {
        claim(size - offset)?;
    }

    let data = source.open(offset).await?;
    let len = match &data {
        PutData::Present => {
            return Ok(if repo.has_content(key) {
                PutOutcome::Stored(Vec::new())
            } else {
                PutOutcome::NotStored
            });
        }
        PutData::Stream { len, .. } | PutData::Chunks { len, .. } => *len,
    };
    match key.size() {
        // The sender's idea of the content's size is not the key's.
        Some(s) if offset + len != s => return Ok(PutOutcome::NotStored),
        Some(_) => {}
        // Nothing is read nor written: the temporary file stays as it
        // was, for a later attempt.
        None => claim(len)?,
    }
    // A sender in this process that hashes the content itself (a cluster
    // gateway writing one upload to several repositories) spares the
    // hashing here.
    let checked_by_source = offset == 0
        && matches!(&data, PutData::Chunks { chunks, .. } if chunks.checked_by_sender());
    // Hash what an earlier transfer left, then append to it.
    let prefix: Box<dyn Read + Send> = if offset > 0 {
        Box::new(std::fs::File::open(&tmp)?.take(offset))
    } else {
        Box::new(io::empty())
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&tmp)?;
    let verifier = receive_with(
        key,
        prefix,
        data,
        move |b: &[u8]| file.write_all(b),
        !checked_by_source,
    )
    .await?;
    let validity = source.validity().await?;
    let matched =
        verifier.finish().is_ok() && (!checked_by_source || source.content_verified().await?);

    let ok = matched && (is_hash_key(key) || validity != Some(Validity::Invalid));
    if !ok {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Ok(PutOutcome::NotStored);
    }
    let this = repo.clone();
    let key = key.clone();
    tokio::task::spawn_blocking(move || -> Result<(), RepoError> {
        move_into_place(&this, &key, &tmp)?;
        drop(recv_lock);
        this.record_location(&key, true)?;
        Ok(())
    })
    .await
    .map_err(blocking_err)??;
    Ok(PutOutcome::Stored(Vec::new()))
}

/// Where received content comes from.
enum Incoming<'a> {
    Stream(&'a mut dyn annex_protocol::ByteStream),
    /// Chunks, and what is left of the last one taken.
    Chunks(&'a mut dyn annex_protocol::ChunkStream, Bytes),
}

impl Incoming<'_> {
    /// The next piece of at most `max` bytes; empty at the end. Chunks are
    /// passed on without a copy.
    async fn next(&mut self, max: usize) -> io::Result<Bytes> {
        match self {
            Incoming::Stream(stream) => {
                let mut buf = BytesMut::with_capacity(max);
                stream.read_buf(&mut buf).await?;
                Ok(buf.freeze())
            }
            Incoming::Chunks(chunks, pending) => {
                while pending.is_empty() {
                    match std::future::poll_fn(|cx| chunks.poll_chunk(cx)).await {
                        None => return Ok(Bytes::new()),
                        Some(Err(e)) => return Err(e),
                        Some(Ok(chunk)) => *pending = chunk,
                    }
                }
                let n = pending.len().min(max);
                Ok(pending.split_to(n))
            }
        }
    }
}

/// Receives the content of a PUT (`data`, from [`PutSource::open`])
/// while verifying it against `key`: each piece is handed to `write` on
/// one blocking thread and hashed on another, after `prefix` (what came
/// before the offset the content starts at, from an earlier interrupted
/// transfer), while the next piece is read. `data` must not be
/// [`PutData::Present`].
///
/// Returns the verifier, fed the prefix and every byte received: its
/// [`Verifier::finish`] says whether the content is the key's. Fails if
/// the content ends early, cannot be read or cannot be written; what was
/// written before stays written, for resuming.
pub async fn receive_verified<W>(
    key: &Key,
    prefix: Box<dyn Read + Send>,
    data: PutData<'_>,
    write: W,
) -> Result<Verifier, RepoError>
where
    W: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
{
    receive_with(key, prefix, data, write, true).await
}

/// [`receive_verified`], hashing only when `hash` is set (otherwise the
/// verifier checks the size alone): a receiver whose chunks come from a
/// sender in this process that hashes them itself
/// ([`ChunkStream::checked_by_sender`](annex_protocol::ChunkStream::checked_by_sender))
/// passes `false`, and asks
/// [`PutSource::content_verified`](annex_protocol::PutSource::content_verified)
/// once the content is in.
pub async fn receive_verified_hashing<W>(
    key: &Key,
    prefix: Box<dyn Read + Send>,
    data: PutData<'_>,
    write: W,
    hash: bool,
) -> Result<Verifier, RepoError>
where
    W: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
{
    receive_with(key, prefix, data, write, hash).await
}

async fn receive_with<W>(
    key: &Key,
    prefix: Box<dyn Read + Send>,
    data: PutData<'_>,
    mut write: W,
    hash: bool,
) -> Result<Verifier, RepoError>
where
    W: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
{
    let (len, mut incoming) = match data {
        PutData::Stream { len, stream } => (len, Incoming::Stream(stream)),
        PutData::Chunks { len, chunks } => (len, Incoming::Chunks(chunks, Bytes::new())),
        PutData::Present => {
            return Err(RepoError::Other(
                "no content to receive: the sender put it in place".into(),
            ))
        }
    };
    // Hashing and writing run on two threads, fed the same chunks.
    let (hash_tx, mut hash_rx) = mpsc::channel::<Bytes>(8);
    let (write_tx, mut write_rx) = mpsc::channel::<Bytes>(8);
    let hkey = key.clone();
    let hasher = tokio::task::spawn_blocking(move || -> io::Result<Verifier> {
        let mut verifier = if hash {
            Verifier::new(&hkey)
        } else {
            Verifier::size_only(&hkey)
        };
        let mut prefix = prefix;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = prefix.read(&mut buf)?;
            if n == 0 {
                break;
            }
            verifier.update(&buf[..n]);
        }
        drop(buf);
        while let Some(chunk) = hash_rx.blocking_recv() {
            verifier.update(&chunk);
        }
        Ok(verifier)
    });
    let writer = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        let mut written = 0u64;
        while let Some(chunk) = write_rx.blocking_recv() {
            write(&chunk)?;
            written += chunk.len() as u64;
        }
        Ok(written)
    });

    let mut remaining = len;
    let mut read_err = None;
    while remaining > 0 {
        match incoming
            .next(CHUNK.min(remaining.min(usize::MAX as u64) as usize))
            .await
        {
            Ok(chunk) if chunk.is_empty() => {
                read_err = Some(RepoError::Other("content ended early".into()));
                break;
            }
            Ok(chunk) => {
                remaining -= chunk.len() as u64;
                if hash_tx.send(chunk.clone()).await.is_err() || write_tx.send(chunk).await.is_err()
                {
                    break;
                }
            }
            Err(e) => {
                read_err = Some(e.into());
                break;
            }
        }
    }
    drop(hash_tx);
    drop(write_tx);
    let written = writer.await.map_err(blocking_err)??;
    let verifier = hasher.await.map_err(blocking_err)??;
    if let Some(e) = read_err {
        return Err(e);
    }
    if written != len {
        return Err(RepoError::Other("content could not be written".into()));
    }
    Ok(verifier)
}

/// Moves verified content from the temporary file to its object path and
/// makes file and directory read-only, as git-annex leaves them.
fn move_into_place(repo: &LocalRepository, key: &Key, tmp: &Path) -> io::Result<()> {
    let object = repo.object_path(key);
    let dir = object.parent().expect("object paths have a directory");
    std::fs::create_dir_all(dir)?;
    crate::with_writable_dir(dir, || {
        std::fs::rename(tmp, &object)?;
        std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o444))
    })?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll};

    struct Chunks(Vec<Bytes>);

    impl annex_protocol::ChunkStream for Chunks {
        fn poll_chunk(&mut self, _cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
            Poll::Ready((!self.0.is_empty()).then(|| Ok(self.0.remove(0))))
        }
    }

    #[tokio::test]
    async fn chunks_larger_than_a_piece_are_split_not_cut() {
        let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let mut chunks = Chunks(vec![
            Bytes::from(big.clone()),
            Bytes::new(),
            Bytes::from_static(b"tail"),
        ]);
        let mut incoming = Incoming::Chunks(&mut chunks, Bytes::new());
        let mut got = Vec::new();
        loop {
            let piece = incoming.next(CHUNK).await.unwrap();
            if piece.is_empty() {
                break;
            }
            assert!(piece.len() <= CHUNK);
            got.extend_from_slice(&piece);
        }
        let mut want = big;
        want.extend_from_slice(b"tail");
        assert_eq!(got, want);
    }
}
