//! Chunked content, as git-annex stores it in special remotes: the
//! `chunk=` and `chunksize=` settings, chunk keys
//! (`BACKEND-sSIZE-SCHUNKSIZE-CN--NAME`, `N` from 1), and the chunk log
//! on the git-annex branch (`xxx/yyy/KEY.log.cnk`, lines
//! `CLOCK UUID:CHUNKSIZE COUNT`), which records how many chunks of which
//! size each remote holds.

use std::sync::Mutex;

use annex_branch::logs::remote_config::RemoteConfig;
use annex_branch::logs::uuid_based::{LogField, LogValue, MapLog};
use annex_branch::{Branch, VectorClock};
use annex_protocol::key::KeyParts;
use annex_protocol::{Key, KeyVariety, RepoError, Uuid};

use crate::SpecialError;

/// How a special remote splits content (its `chunk=` or `chunksize=`
/// setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Each key's content in one file.
    None,
    /// `chunk=SIZE`: chunk keys of that size, recorded in the chunk log.
    Chunks(u64),
    /// `chunksize=SIZE` (deprecated): `KEY.chunkN` files in the key's
    /// directory, counted in `KEY.chunkcount`.
    Legacy(u64),
}

impl Chunking {
    /// The chunking a remote's configuration asks for, read as git-annex
    /// reads it (sizes as [`annex_types::size::read_size`] reads them):
    /// `chunksize=` wins over `chunk=`, a size of 0 means no chunks, and a
    /// negative one is refused.
    pub fn from_config(config: &RemoteConfig) -> Result<Chunking, SpecialError> {
        let size = |field: &'static str, v: &str| {
            annex_types::size::read_size(v)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| SpecialError::BadSetting {
                    field,
                    value: v.to_owned(),
                })
        };
        if let Some(v) = config.get("chunksize") {
            return Ok(match size("chunksize", v)? {
                0 => Chunking::None,
                n => Chunking::Legacy(n),
            });
        }
        if let Some(v) = config.get("chunk") {
            return Ok(match size("chunk", v)? {
                0 => Chunking::None,
                n => Chunking::Chunks(n),
            });
        }
        Ok(Chunking::None)
    }
}

/// Whether git-annex stores a key's content in chunks when the remote is
/// chunked: only keys of a stable backend, whose content cannot differ
/// between two copies (not URL or VURL keys, nor external backends,
/// which this program cannot ask).
pub fn is_stable_key(key: &Key) -> bool {
    matches!(
        key.variety(),
        KeyVariety::Hash { .. }
            | KeyVariety::Worm
            | KeyVariety::GitBundle
            | KeyVariety::GitManifest
    )
}

fn bad_key(e: annex_protocol::KeyError) -> RepoError {
    RepoError::context("cannot make a chunk key", e)
}

/// The key without chunk fields (git-annex's `nonChunkKey`).
pub fn non_chunk_key(key: &Key) -> Result<Key, RepoError> {
    if key.chunk_size().is_none() && key.chunk_num().is_none() {
        return Ok(key.clone());
    }
    Key::from_parts(&KeyParts {
        backend: key.backend(),
        size: key.size(),
        mtime: key.mtime(),
        chunk_size: None,
        chunk_num: None,
        name: key.name(),
    })
    .map_err(bad_key)
}

/// The key of chunk `num` (from 1) of `key`'s content in chunks of
/// `chunk_size` bytes.
pub fn chunk_key(key: &Key, chunk_size: u64, num: u64) -> Result<Key, RepoError> {
    Key::from_parts(&KeyParts {
        backend: key.backend(),
        size: key.size(),
        mtime: key.mtime(),
        chunk_size: Some(chunk_size),
        chunk_num: Some(num),
        name: key.name(),
    })
    .map_err(bad_key)
}

/// How many chunks of `chunk_size` hold `size` bytes: at least one, even
/// for empty content, as git-annex stores it.
pub fn chunk_count(size: u64, chunk_size: u64) -> u64 {
    size.div_ceil(chunk_size.max(1)).max(1)
}

/// The chunk log's path on the git-annex branch: `xxx/yyy/KEY.log.cnk`.
pub fn chunk_log_path(key: &Key) -> String {
    format!("{}{}.log.cnk", key.hash_dir_lower(), key.to_file_name())
}

/// How content was split, as the chunk log names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChunkMethod {
    /// Chunks of this many bytes.
    Fixed(u64),
    /// A method this program does not know, kept as written.
    Unknown(String),
}

/// The field of a chunk log line: a repository and a chunk method
/// (`UUID:CHUNKSIZE`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkField {
    /// The repository holding the chunks.
    pub uuid: Uuid,
    /// How the content was split.
    pub method: ChunkMethod,
}

impl LogField for ChunkField {
    fn parse_field(b: &[u8]) -> Option<Self> {
        let colon = b.iter().position(|&c| c == b':')?;
        let uuid = Uuid::parse(std::str::from_utf8(&b[..colon]).ok()?).ok()?;
        let rest = std::str::from_utf8(&b[colon + 1..]).ok()?;
        let method = match rest.parse::<u64>() {
            Ok(n) if rest.bytes().all(|c| c.is_ascii_digit()) => ChunkMethod::Fixed(n),
            _ => ChunkMethod::Unknown(rest.to_owned()),
        };
        Some(ChunkField { uuid, method })
    }

    fn write_field(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.uuid.as_str().as_bytes());
        out.push(b':');
        match &self.method {
            ChunkMethod::Fixed(n) => out.extend_from_slice(n.to_string().as_bytes()),
            ChunkMethod::Unknown(s) => out.extend_from_slice(s.as_bytes()),
        }
    }
}

/// The value of a chunk log line: how many chunks (0 once removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCount(pub u64);

impl LogValue for ChunkCount {
    fn parse_value(b: &[u8]) -> Option<Self> {
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(b).ok()?.parse().ok().map(ChunkCount)
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.to_string().as_bytes());
    }
}

/// A chunk log as read.
pub type ChunkLog = MapLog<ChunkField, ChunkCount>;

/// The chunk sizes and counts a chunk log records for `uuid`, in the
/// log's order, without those logged as removed.
pub fn current_chunks(log: &ChunkLog, uuid: &Uuid) -> Vec<(ChunkMethod, u64)> {
    log.entries
        .iter()
        .filter(|(f, e)| &f.uuid == uuid && e.value.0 > 0)
        .map(|(f, e)| (f.method.clone(), e.value.0))
        .collect()
}

/// The chunks the chunk log on `branch` records for the remote `uuid`.
pub fn recorded_chunks(
    branch: &Mutex<Branch>,
    uuid: &Uuid,
    key: &Key,
) -> Result<Vec<(ChunkMethod, u64)>, RepoError> {
    let b = branch.lock().unwrap_or_else(|p| p.into_inner());
    let data = b
        .read(&chunk_log_path(key))
        .map_err(|e| RepoError::context("reading the chunk log", e))?;
    Ok(current_chunks(&ChunkLog::parse_new(&data), uuid))
}

/// Records in the chunk log on `branch` that the remote `uuid` holds
/// `count` chunks of `size` of the key (0: no longer holds them).
pub fn log_chunks(
    branch: &Mutex<Branch>,
    uuid: &Uuid,
    key: &Key,
    size: u64,
    count: u64,
) -> Result<(), RepoError> {
    let field = ChunkField {
        uuid: uuid.clone(),
        method: ChunkMethod::Fixed(size),
    };
    let b = branch.lock().unwrap_or_else(|p| p.into_inner());
    b.change(&chunk_log_path(key), |old| {
        let mut log = ChunkLog::parse_new(old);
        log.set(field, ChunkCount(count), VectorClock::now()).ok()?;
        Some(log.write_new())
    })
    .map_err(|e| RepoError::context("recording the chunk log", e))?;
    Ok(())
}

/// One way a key's content may be laid out in a special remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One file or object named by the key.
    Unchunked,
    /// `count` chunks of `size`; `logged` when the chunk log records them
    /// (else the configured chunk size, tried last).
    Chunks {
        /// The chunk size.
        size: u64,
        /// How many chunks.
        count: u64,
        /// Whether the chunk log records them.
        logged: bool,
    },
}

/// The layouts that may hold a key's content, in the order git-annex
/// tries them, from the chunks the log records for the remote
/// (`recorded`) and its configured chunk size: without one, the
/// unchunked content then what the log records; with one, what the log
/// records, the unchunked content, then the configured chunk size when
/// the log does not record it.
pub fn layouts(recorded: &[(ChunkMethod, u64)], key: &Key, chunk_size: Option<u64>) -> Vec<Layout> {
    let mut out: Vec<Layout> = recorded
        .iter()
        .filter_map(|(m, count)| match m {
            ChunkMethod::Fixed(size) => Some(Layout::Chunks {
                size: *size,
                count: *count,
                logged: true,
            }),
            ChunkMethod::Unknown(_) => None,
        })
        .collect();
    match chunk_size {
        None => out.insert(0, Layout::Unchunked),
        Some(size) => {
            out.push(Layout::Unchunked);
            if let Some(ks) = key.size() {
                let count = chunk_count(ks, size);
                if !recorded.contains(&(ChunkMethod::Fixed(size), count)) {
                    out.push(Layout::Chunks {
                        size,
                        count,
                        logged: false,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kv: &[(&str, &str)]) -> RemoteConfig {
        kv.iter().copied().collect()
    }

    #[test]
    fn chunk_settings_as_git_annex_reads_them() {
        assert_eq!(Chunking::from_config(&cfg(&[])), Ok(Chunking::None));
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "64KiB")])),
            Ok(Chunking::Chunks(65536))
        );
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "1MB"), ("chunksize", "10")])),
            Ok(Chunking::Legacy(10))
        );
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "0")])),
            Ok(Chunking::None)
        );
        assert!(Chunking::from_config(&cfg(&[("chunk", "lots")])).is_err());
        // Sizes in every form git-annex reads; a negative one is refused.
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "1e3")])),
            Ok(Chunking::Chunks(1000))
        );
        assert_eq!(
            Chunking::from_config(&cfg(&[("chunk", "8kbit")])),
            Ok(Chunking::Chunks(1000))
        );
        assert!(Chunking::from_config(&cfg(&[("chunk", "-1")])).is_err());
    }

    #[test]
    fn chunk_keys_and_counts() {
        let k = Key::parse(
            "SHA256E-s200000--f57ca603a9f83494e63603993c337f56932d4f13a318bfc6ad9d9a51cdee5cdb",
        )
        .unwrap();
        let c = chunk_key(&k, 65536, 2).unwrap();
        assert_eq!(
            c.as_str(),
            "SHA256E-s200000-S65536-C2--f57ca603a9f83494e63603993c337f56932d4f13a318bfc6ad9d9a51cdee5cdb"
        );
        assert_eq!(non_chunk_key(&c).unwrap(), k);
        assert_eq!(chunk_count(200_000, 65536), 4);
        assert_eq!(chunk_count(65536, 65536), 1);
        assert_eq!(chunk_count(0, 65536), 1);
        assert_eq!(
            chunk_log_path(&k),
            "cb9/bac/SHA256E-s200000--f57ca603a9f83494e63603993c337f56932d4f13a318bfc6ad9d9a51cdee5cdb.log.cnk"
        );
    }

    #[test]
    fn chunk_log_lines_as_git_annex_writes_them() {
        let u = "794fec3b-bb73-45fb-8f9b-4f11e080df39";
        let text = format!("1796018829s {u}:65536 4\n1796018830s {u}:1024 0\nbad line\n");
        let log = ChunkLog::parse_new(text.as_bytes());
        let uuid = Uuid::parse(u).unwrap();
        assert_eq!(
            current_chunks(&log, &uuid),
            vec![(ChunkMethod::Fixed(65536), 4)]
        );
        // Fields in order (the smaller chunk size first), unparsed kept.
        assert_eq!(
            String::from_utf8(log.write_new()).unwrap(),
            format!("1796018830s {u}:1024 0\n1796018829s {u}:65536 4\nbad line\n")
        );
    }
}
