//! How a put lays content out in a directory remote: the pieces it
//! writes (one file, chunk keys, or `KEY.chunkN` files), each into a
//! temporary directory `DIR/tmp/KEY` first, where an interrupted put
//! resumes from, then moved into place and made read-only as git-annex's
//! `finalizeStoreGeneric` does.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use annex_protocol::{Key, RepoError};

use super::DirectoryRemote;
use crate::chunk::{chunk_count, chunk_key};

pub(super) fn file_size(p: &Path) -> Option<u64> {
    fs::metadata(p)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// Removes the write bits of a file or directory, as git-annex leaves
/// what it stores.
pub(super) fn prevent_write(p: &Path) -> io::Result<()> {
    let mode = fs::metadata(p)?.permissions().mode();
    fs::set_permissions(p, fs::Permissions::from_mode(mode & !0o222))
}

pub(super) fn allow_write(p: &Path) -> io::Result<()> {
    let mode = fs::metadata(p)?.permissions().mode();
    fs::set_permissions(p, fs::Permissions::from_mode(mode | 0o200))
}

/// Removes a key's directory `dir` below the remote's directory `top`,
/// its read-only content included, as git-annex does: a directory that is
/// not there is no failure while `top` is there; with `remove_parents`,
/// the hash directories above it that are left empty go too (never
/// `top`).
pub(super) fn remove_dir_generic(
    remove_parents: bool,
    top: &Path,
    dir: &Path,
) -> Result<(), RepoError> {
    let _ = allow_write(dir);
    if let Err(e) = fs::remove_dir_all(dir) {
        // Gone already is fine, while the remote's directory is there.
        if !top.is_dir() || dir.is_dir() {
            return Err(RepoError::Io(e));
        }
    }
    if remove_parents {
        let mut d = dir.parent();
        while let Some(p) = d {
            if p == top || !p.starts_with(top) || fs::remove_dir(p).is_err() {
                break;
            }
            d = p.parent();
        }
    }
    Ok(())
}

/// Moves a complete temporary directory into place as git-annex's
/// `finalizeStoreGeneric` does: what is already at `dest` is removed,
/// the temporary directory renamed, and its files and itself made
/// read-only.
fn finalize_store(top: &Path, tmp: &Path, dest: &Path) -> Result<(), RepoError> {
    remove_dir_generic(false, top, dest)?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::rename(tmp, dest)?;
    // May fail on some filesystems; content is in place either way.
    if let Ok(entries) = fs::read_dir(dest) {
        for e in entries.flatten() {
            let _ = prevent_write(&e.path());
        }
    }
    let _ = prevent_write(dest);
    Ok(())
}

/// How a put's content is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// One file.
    Whole,
    /// Chunk keys of this size.
    Chunks(u64),
    /// `KEY.chunkN` files of this size.
    Legacy(u64),
}

/// The files a put writes: pieces of content, each a temporary file.
#[derive(Clone)]
pub(super) struct Plan {
    pub(super) remote: DirectoryRemote,
    pub(super) key: Key,
    pub(super) layout: Layout,
}

/// Where a resumed put starts.
pub(super) struct Resume {
    /// Bytes already received.
    pub(super) offset: u64,
    /// The files holding them, with how much of each is content.
    pub(super) prefix: Vec<(PathBuf, u64)>,
    /// The piece to write next, and how much of it is written.
    pub(super) piece: u64,
    pub(super) piece_len: u64,
}

impl Plan {
    pub(super) fn dir(&self) -> &Path {
        &self.remote.inner.dir
    }

    /// The most bytes a piece holds (none for one whole file).
    pub(super) fn capacity(&self) -> Option<u64> {
        match self.layout {
            Layout::Whole => None,
            Layout::Chunks(s) | Layout::Legacy(s) => Some(s),
        }
    }

    /// How many pieces hold `total` bytes.
    pub(super) fn pieces(&self, total: u64) -> u64 {
        match self.capacity() {
            None => 1,
            Some(c) => chunk_count(total, c),
        }
    }

    /// The key whose temporary directory piece `i` (from 0) is in.
    pub(super) fn piece_key(&self, i: u64) -> Result<Key, RepoError> {
        match self.layout {
            Layout::Chunks(s) => chunk_key(&self.key, s, i + 1),
            Layout::Whole | Layout::Legacy(_) => Ok(self.key.clone()),
        }
    }

    /// The temporary file of piece `i`.
    pub(super) fn piece_tmp(&self, i: u64) -> Result<PathBuf, RepoError> {
        let k = self.piece_key(i)?;
        let f = k.to_file_name();
        let dir = self.remote.tmp_dir(&k);
        Ok(match self.layout {
            Layout::Legacy(_) => dir.join(format!("{f}.chunk{}", i + 1)),
            Layout::Whole | Layout::Chunks(_) => dir.join(f),
        })
    }

    /// Piece `i` already stored in place (a chunk key's content), if it
    /// is.
    pub(super) fn piece_in_place(&self, i: u64) -> Result<Option<PathBuf>, RepoError> {
        match self.layout {
            Layout::Chunks(_) => self.remote.first_existing(&self.piece_key(i)?),
            _ => Ok(None),
        }
    }

    /// What earlier, interrupted puts left: complete pieces (in place, for
    /// chunks stored by an interrupted git-annex, or in their temporary
    /// files) and the partial piece after them.
    pub(super) fn resume(&self) -> Result<Resume, RepoError> {
        let total = self.key.size();
        let cap = self.capacity();
        let mut r = Resume {
            offset: 0,
            prefix: Vec::new(),
            piece: 0,
            piece_len: 0,
        };
        let last = total.map(|t| self.pieces(t));
        loop {
            if last.is_some_and(|n| r.piece >= n) {
                return Ok(r);
            }
            let expect = match (cap, total) {
                (Some(c), Some(t)) => Some(c.min(t.saturating_sub(r.offset))),
                (Some(c), None) => Some(c),
                (None, _) => None,
            };
            if let Some(p) = self.piece_in_place(r.piece)? {
                let s = file_size(&p).unwrap_or(0);
                if Some(s) == expect {
                    // A temporary copy of this chunk would replace it.
                    let stale = self.remote.tmp_dir(&self.piece_key(r.piece)?);
                    if stale.exists() {
                        fs::remove_dir_all(stale)?;
                    }
                    r.offset += s;
                    r.prefix.push((p, s));
                    r.piece += 1;
                    continue;
                }
            }
            let tmp = self.piece_tmp(r.piece)?;
            match file_size(&tmp) {
                Some(s) if expect == Some(s) => {
                    r.offset += s;
                    r.prefix.push((tmp, s));
                    r.piece += 1;
                }
                Some(s) if expect.is_none_or(|e| s < e) => {
                    r.offset += s;
                    r.prefix.push((tmp, s));
                    r.piece_len = s;
                    return Ok(r);
                }
                Some(_) => {
                    fs::remove_file(&tmp)?;
                    return Ok(r);
                }
                None => return Ok(r),
            }
        }
    }

    /// Removes every temporary file of the put, and with `in_place` the
    /// chunks of this size already in place (an incomplete set, or the
    /// content would have been found).
    pub(super) fn discard(&self, in_place: bool) -> Result<(), RepoError> {
        match self.layout {
            Layout::Whole | Layout::Legacy(_) => {
                let d = self.remote.tmp_dir(&self.key);
                if d.exists() {
                    fs::remove_dir_all(d)?;
                }
            }
            Layout::Chunks(_) => {
                let n = self.key.size().map(|t| self.pieces(t)).unwrap_or(0);
                if in_place {
                    for i in 0..n {
                        if self.piece_in_place(i)?.is_some() {
                            let k = self.piece_key(i)?;
                            remove_dir_generic(true, self.dir(), &self.remote.store_dir(&k)?)?;
                            let mixed = self.remote.mixed_store_dir(&k)?;
                            if mixed.exists() {
                                remove_dir_generic(true, self.dir(), &mixed)?;
                            }
                        }
                    }
                }
                for i in 0.. {
                    let d = self.remote.tmp_dir(&self.piece_key(i)?);
                    if !d.exists() {
                        if i >= n {
                            break;
                        }
                        continue;
                    }
                    fs::remove_dir_all(d)?;
                }
            }
        }
        Ok(())
    }

    /// Moves the received content (`total` bytes) into place, and for
    /// chunk keys records them in the chunk log.
    pub(super) fn finalize(&self, total: u64) -> Result<(), RepoError> {
        let top = self.dir().to_owned();
        let n = self.pieces(total);
        let ensure = |p: &Path| -> Result<(), RepoError> {
            if !p.exists() {
                if let Some(d) = p.parent() {
                    fs::create_dir_all(d)?;
                }
                fs::File::create(p)?;
            }
            Ok(())
        };
        match self.layout {
            Layout::Whole => {
                ensure(&self.piece_tmp(0)?)?;
                finalize_store(
                    &top,
                    &self.remote.tmp_dir(&self.key),
                    &self.remote.store_dir(&self.key)?,
                )?;
            }
            Layout::Legacy(_) => {
                for i in 0..n {
                    ensure(&self.piece_tmp(i)?)?;
                }
                // Chunks an earlier, longer attempt left.
                for i in n.. {
                    let p = self.piece_tmp(i)?;
                    if !p.exists() {
                        break;
                    }
                    fs::remove_file(p)?;
                }
                let tmp = self.remote.tmp_dir(&self.key);
                let count = tmp.join(format!("{}.chunkcount", self.key.to_file_name()));
                fs::write(count, n.to_string())?;
                finalize_store(&top, &tmp, &self.remote.store_dir(&self.key)?)?;
            }
            Layout::Chunks(size) => {
                for i in 0..n {
                    let k = self.piece_key(i)?;
                    let tmp = self.remote.tmp_dir(&k);
                    if !tmp.exists() && self.piece_in_place(i)?.is_some() {
                        continue;
                    }
                    ensure(&self.piece_tmp(i)?)?;
                    finalize_store(&top, &tmp, &self.remote.store_dir(&k)?)?;
                }
                for i in n.. {
                    let d = self.remote.tmp_dir(&self.piece_key(i)?);
                    if !d.exists() {
                        break;
                    }
                    fs::remove_dir_all(d)?;
                }
                self.remote.log_chunks(&self.key, size, n)?;
            }
        }
        Ok(())
    }
}

/// Writes received content into the pieces of a plan, from a piece on.
pub(super) struct PieceWriter {
    pub(super) plan: Plan,
    pub(super) piece: u64,
    pub(super) piece_len: u64,
    pub(super) file: Option<fs::File>,
}

impl PieceWriter {
    pub(super) fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let cap = self.plan.capacity();
        while !bytes.is_empty() {
            let room = cap.map_or(u64::MAX, |c| c.saturating_sub(self.piece_len));
            if room == 0 {
                self.file = None;
                self.piece += 1;
                self.piece_len = 0;
                continue;
            }
            if self.file.is_none() {
                let path = self.plan.piece_tmp(self.piece).map_err(io::Error::other)?;
                if let Some(d) = path.parent() {
                    fs::create_dir_all(d)?;
                }
                // A partial piece is continued; any other is written anew.
                let mut o = fs::OpenOptions::new();
                o.create(true);
                if self.piece_len > 0 {
                    o.append(true);
                } else {
                    o.write(true).truncate(true);
                }
                self.file = Some(o.open(&path)?);
            }
            let n = room.min(bytes.len() as u64) as usize;
            if let Some(f) = self.file.as_mut() {
                f.write_all(&bytes[..n])?;
            }
            self.piece_len += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}
