//! Resumable multipart uploads of unchunked content whose key is a
//! SHA-256 or SHA-512 hash.
//!
//! After each part the server acknowledges, a record is written
//! (atomically) in the using repository's `.git/annex/s3-uploads/`: the
//! upload id, the parts' sizes and ETags, and the hash state after them.
//! A later put of the same key whose record the server agrees with (its
//! ListParts has those parts, of those sizes, with those ETags when it
//! says them) asks the sender for the content from where the parts end,
//! restores the hash state and goes on; the upload is completed only
//! once the whole content hashes to the key, and aborted (its record
//! removed) otherwise. A record that is unreadable, that the server does
//! not agree with, or that has no part yet, has its upload aborted and
//! the put starts from zero: no upload is left behind.

use std::io::Write;
use std::path::Path;

use annex_protocol::repository::{PutData, PutOutcome, PutSource};
use annex_protocol::{Key, KeyVariety, RepoError, Repository};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::{BodySender, PartInfo, S3Error};
use super::hashstate::{Sha2Kind, Sha2State};
use super::store::{Incoming, PIECE};
use super::S3Remote;

/// What is kept of an unfinished multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    key: String,
    upload_id: String,
    part_size: u64,
    /// The acknowledged parts (numbered from 1): size and ETag.
    parts: Vec<(u64, String)>,
    /// The hash state after them.
    state: Sha2State,
}

const HEADER: &str = "annex-rs s3 upload 1";

impl Record {
    fn to_text(&self) -> String {
        let mut s = format!(
            "{HEADER}\nkey {}\nupload {}\npartsize {}\nhash {}\n",
            self.key,
            self.upload_id,
            self.part_size,
            self.state.save()
        );
        for (size, etag) in &self.parts {
            s.push_str(&format!("part {size} {etag}\n"));
        }
        s
    }

    /// The record in `text`, if it is one, consistent with itself.
    fn parse(text: &str) -> Option<Record> {
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_owned)
        };
        let key = field("key")?;
        let upload_id = field("upload")?;
        let part_size: u64 = field("partsize")?.parse().ok()?;
        let state = Sha2State::restore(&field("hash")?)?;
        let mut parts = Vec::new();
        for l in lines {
            let (size, etag) = l.strip_prefix("part ")?.split_once(' ')?;
            parts.push((size.parse::<u64>().ok()?, etag.to_owned()));
        }
        let done: u64 = parts.iter().map(|(s, _)| s).sum();
        let sizes_ok = parts.iter().all(|(s, _)| *s == part_size);
        if upload_id.is_empty() || done != state.len() || !sizes_ok {
            return None;
        }
        Some(Record {
            key,
            upload_id,
            part_size,
            parts,
            state,
        })
    }

    /// Whether the server's parts are those recorded (parts after them,
    /// of a part acknowledged but not yet recorded, are written again).
    fn agrees(&self, server: &[PartInfo]) -> bool {
        let plain = |t: &str| t.trim_matches('"').to_owned();
        self.parts.iter().enumerate().all(|(i, (size, etag))| {
            server.iter().any(|p| {
                usize::from(p.number) == i + 1
                    && p.size == *size
                    && (p.etag.is_empty() || plain(&p.etag) == plain(etag))
            })
        })
    }

    /// Writes the record to `path` atomically.
    fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(self.to_text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

/// Hashes the pieces of one part on a thread of its own, from the state
/// after the parts before it.
struct PartHasher {
    tx: mpsc::Sender<Bytes>,
    task: JoinHandle<Sha2State>,
}

impl PartHasher {
    fn start(mut state: Sha2State) -> PartHasher {
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(b) = rx.blocking_recv() {
                state.update(&b);
            }
            state
        });
        PartHasher { tx, task }
    }

    async fn feed(&self, piece: Bytes) {
        let _ = self.tx.send(piece).await;
    }

    /// The state after all the pieces fed.
    async fn state(self) -> Result<Sha2State, RepoError> {
        drop(self.tx);
        self.task
            .await
            .map_err(|e| RepoError::context("background task failed", e))
    }
}

/// Removes the record at `path`, and the one a killed gateway may have
/// left half written beside it.
fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("tmp"));
}

/// The hash kind of `key` if its content can be uploaded resumably.
pub(super) fn resumable_kind(key: &Key) -> Option<Sha2Kind> {
    match key.variety() {
        KeyVariety::Hash { kind, .. } => Sha2Kind::for_hash(kind),
        _ => None,
    }
}

/// The digest `key` names (its extension left out).
fn key_digest(key: &Key) -> String {
    let name = key.name();
    let digest = match key.variety() {
        KeyVariety::Hash {
            extension: true, ..
        } => name.split('.').next().unwrap_or(name),
        _ => name,
    };
    digest.to_ascii_lowercase()
}

fn ended(op: &'static str, name: &str) -> S3Error {
    S3Error::Transfer {
        op,
        object: name.to_owned(),
        reason: "the request ended before its content".into(),
    }
}

/// Stores `key` (unchunked, of known size `total`, hashed by `kind`) as
/// one object written by a multipart upload of `part_size` parts,
/// resuming an interrupted one when its record and the server agree.
pub(super) async fn put(
    remote: &S3Remote,
    key: &Key,
    kind: Sha2Kind,
    total: u64,
    part_size: u64,
    source: &mut dyn PutSource,
) -> Result<PutOutcome, RepoError> {
    let store = remote.store().clone();
    let name = remote.naming().key(key);
    let path = remote.upload_record_path(key);
    let key_text = key.to_string();

    // An earlier upload of the key, resumed if the server agrees, else
    // given up.
    let mut resumed = None;
    match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => remove(&path),
        Ok(text) => match Record::parse(&text) {
            Some(r) if r.key == key_text && r.state.kind() == kind => {
                let usable =
                    !r.parts.is_empty() && r.part_size == part_size && r.state.len() < total;
                // A server that cannot be reached now is an error: the
                // record is kept for when it can. One that refuses to
                // list the upload's parts, or answers nonsense, has none
                // of them.
                let agrees = usable
                    && match store.list_parts(&name, &r.upload_id).await {
                        Ok(parts) => parts.is_some_and(|p| r.agrees(&p)),
                        Err(e @ S3Error::Connect { .. }) => return Err(remote.failed(e)),
                        Err(_) => false,
                    };
                if agrees {
                    resumed = Some(r);
                } else {
                    let _ = store.abort_multipart(&name, &r.upload_id).await;
                    remove(&path);
                }
            }
            Some(r) => {
                let _ = store.abort_multipart(&name, &r.upload_id).await;
                remove(&path);
            }
            None => {
                // Damaged: its upload, if it names one, is given up.
                if let Some(id) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("upload "))
                    .filter(|id| !id.is_empty())
                {
                    let _ = store.abort_multipart(&name, id).await;
                }
                remove(&path);
            }
        },
    }
    let offset = resumed.as_ref().map_or(0, |r| r.state.len());
    let data = source.open(offset).await?;
    let len = match &data {
        PutData::Present => {
            return Ok(if remote.check_present(key).await? {
                PutOutcome::Stored(Vec::new())
            } else {
                PutOutcome::NotStored
            });
        }
        PutData::Stream { len, .. } | PutData::Chunks { len, .. } => *len,
    };
    if offset + len != total {
        return Ok(PutOutcome::NotStored);
    }
    // A sender hashing for several nodes (a cluster) has the last word.
    let checked = offset == 0
        && matches!(&data, PutData::Chunks { chunks, .. } if chunks.checked_by_sender());
    let mut incoming = match data {
        PutData::Stream { stream, .. } => Incoming::Stream(stream),
        PutData::Chunks { chunks, .. } => Incoming::Chunks(chunks, Bytes::new()),
        PutData::Present => unreachable!("answered above"),
    };
    let mut record = match resumed {
        Some(r) => r,
        None => {
            let upload_id = store
                .create_multipart(&name)
                .await
                .map_err(|e| remote.failed(e))?;
            let r = Record {
                key: key_text,
                upload_id,
                part_size,
                parts: Vec::new(),
                state: Sha2State::new(kind),
            };
            // Recorded at once, so that an upload broken off before its
            // first part is aborted by the next put rather than leaked.
            if let Err(e) = r.save(&path) {
                tracing::warn!("cannot record the upload of {key}: {e}");
            }
            r
        }
    };

    // The parts after those done; the last piece of the content is held
    // back until the hash is known.
    let mut done = offset;
    let mut last: Option<(BodySender, super::store::Answer, Bytes)> = None;
    let mut last_hasher: Option<PartHasher> = None;
    let mut failure: Option<RepoError> = None;
    'parts: while done < total {
        let plen = part_size.min(total - done);
        let Ok(number) = u16::try_from(record.parts.len() + 1) else {
            failure = Some(RepoError::Other("more than 10000 parts".into()));
            break;
        };
        let (tx, answer) = match store.upload_part(&name, &record.upload_id, number, plen) {
            Ok(s) => s,
            Err(e) => {
                failure = Some(remote.failed(e));
                break;
            }
        };
        let hasher = PartHasher::start(record.state.clone());
        let mut left = plen;
        while left > 0 {
            let piece = match incoming.next(PIECE.min(left as usize)).await {
                Ok(p) if p.is_empty() => Err(RepoError::Other("content ended early".into())),
                Ok(p) => Ok(p),
                Err(e) => Err(e.into()),
            };
            let piece = match piece {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e);
                    tx.abort().await;
                    let _ = answer.await;
                    break 'parts;
                }
            };
            left -= piece.len() as u64;
            hasher.feed(piece.clone()).await;
            if left == 0 && done + plen == total {
                last = Some((tx, answer, piece));
                last_hasher = Some(hasher);
                break 'parts;
            }
            if tx.send(piece).await.is_err() {
                let e = match answer.await {
                    Ok(Err(e)) => e,
                    _ => ended("UploadPart", &name),
                };
                failure = Some(remote.failed(e));
                break 'parts;
            }
        }
        drop(tx);
        let state = match hasher.state().await {
            Ok(s) => s,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        match answer.await {
            Ok(Ok(Some(etag))) => {
                record.parts.push((plen, etag));
                record.state = state;
            }
            Ok(Ok(None)) => {
                failure = Some(RepoError::Other(format!(
                    "S3 remote: UploadPart {name}: no ETag in the answer"
                )));
                break;
            }
            Ok(Err(e)) => {
                failure = Some(remote.failed(e));
                break;
            }
            Err(e) => {
                failure = Some(RepoError::context("background task failed", e));
                break;
            }
        }
        done += plen;
        if let Err(e) = record.save(&path) {
            tracing::warn!("cannot record the upload of {key}: {e}");
        }
    }
    if let Some(e) = failure {
        // Interrupted: the parts acknowledged stay for a later put.
        return Err(e);
    }
    let _validity = source.validity().await?;
    let upload_id = record.upload_id.clone();
    let state = match last_hasher {
        Some(h) => h.state().await?,
        None => record.state.clone(),
    };
    let ok = state.len() == total
        && state.finish_hex() == key_digest(key)
        && (!checked || source.content_verified().await?);
    let Some((tx, answer, piece)) = last else {
        let _ = store.abort_multipart(&name, &upload_id).await;
        remove(&path);
        return Err(RepoError::Other("no content to upload".into()));
    };
    if !ok {
        // Not the key's content: the last part is broken off and the
        // upload aborted; nothing of it is visible.
        tx.abort().await;
        let _ = answer.await;
        let _ = store.abort_multipart(&name, &upload_id).await;
        remove(&path);
        return Ok(PutOutcome::NotStored);
    }
    let sent = tx.send(piece).await;
    drop(tx);
    let result = match (sent, answer.await) {
        (Ok(()), Ok(Ok(Some(etag)))) => {
            let mut etags: Vec<String> = record.parts.iter().map(|(_, t)| t.clone()).collect();
            etags.push(etag);
            store.complete_multipart(&name, &upload_id, &etags).await
        }
        (_, Ok(Err(e))) => Err(e),
        _ => Err(ended("UploadPart", &name)),
    };
    if result.is_err() {
        let _ = store.abort_multipart(&name, &upload_id).await;
    }
    remove(&path);
    result.map_err(|e| remote.failed(e))?;
    Ok(PutOutcome::Stored(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_damaged_ones_refused() {
        let mut state = Sha2State::new(Sha2Kind::S256);
        state.update(&[7u8; 10]);
        let r = Record {
            key: "SHA256E-s20--ab.bin".into(),
            upload_id: "u-1".into(),
            part_size: 5,
            parts: vec![(5, "\"e1\"".into()), (5, "\"e2\"".into())],
            state,
        };
        let text = r.to_text();
        assert_eq!(Record::parse(&text), Some(r.clone()));
        for bad in [
            text.replace("part 5 \"e2\"", "part 4 \"e2\""),
            text.replace("partsize 5", "partsize 6"),
            text.replace(HEADER, "other"),
            text.replace("upload u-1", "upload "),
            text.lines().take(5).collect::<Vec<_>>().join("\n"),
        ] {
            assert_eq!(Record::parse(&bad), None, "{bad}");
        }
        let p = |number, size, etag: &str| PartInfo {
            number,
            size,
            etag: etag.into(),
        };
        assert!(r.agrees(&[p(1, 5, "e1"), p(2, 5, "\"e2\"")]));
        assert!(r.agrees(&[p(2, 5, ""), p(1, 5, ""), p(3, 1, "")]));
        assert!(!r.agrees(&[p(1, 5, "e1")]));
        assert!(!r.agrees(&[p(1, 5, "e1"), p(2, 4, "e2")]));
        assert!(!r.agrees(&[p(1, 5, "e1"), p(2, 5, "other")]));
    }
}
