//! Free space for content being received, checked as git-annex's
//! checkDiskSpace (Annex/Content/LowLevel.hs) checks it: what is free on
//! the filesystem, less what receives in progress there have still to
//! write, must hold the content and leave annex.diskreserve free.
//!
//! A receive in progress is one holding the lock `TMP.lck` of its
//! temporary path `TMP` (a file, or a directory of files), in this
//! process or another; the lock file holds the size `TMP` reaches when
//! the receive is complete (written by [`ReceiveLock::claim_space`]).
//! git-annex's own downloads into a repository count too: its transfer
//! files (`annex/transfer/download/UUID/KEY`, locked while running) with
//! the bytes done so far, for keys that have a size, as git-annex counts
//! them.
//!
//! Where git-annex checks a key without a size as 1 byte (the P2P
//! protocol does not pass it the DATA length), the length the sender
//! announces is checked here, so that a peer cannot fill the disk with
//! content of a key that does not say its size.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use annex_protocol::{Key, RepoError};

use crate::lock::{is_locked, try_lock, FileLock, LockKind};
use crate::with_suffix;

/// Free bytes on the filesystem holding `path` (for an unprivileged
/// writer: what statvfs(3) calls available).
pub fn free_space(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds NUL"))?;
    // SAFETY: a zeroed statvfs is valid to be written by statvfs(3), and
    // `c` is a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// The error of a receive that does not fit: an [`io::Error`] of kind
/// [`io::ErrorKind::StorageFull`], with git-annex's words
/// (needMoreDiskSpace), which name no path and may go to the peer.
pub fn not_enough_space(more: u64) -> RepoError {
    RepoError::Io(io::Error::new(
        io::ErrorKind::StorageFull,
        format!(
            "not enough free space, need {} more (use --force to override this check or adjust annex.diskreserve)",
            annex_types::size::rough_size(more, 2)
        ),
    ))
}

/// Refuses to receive `need` more bytes into the directory `dir` when
/// that would leave less than `reserve` bytes free on its filesystem
/// (annex.diskreserve), receives in progress not counted (see
/// [`ReceiveLock::claim_space`], which counts them).
pub fn ensure_free_space(dir: &Path, need: u64, reserve: u64) -> Result<(), RepoError> {
    check(free_space(dir)?, need, reserve, 0)
}

fn check(free: u64, need: u64, reserve: u64, in_progress: u64) -> Result<(), RepoError> {
    let want = u128::from(need) + u128::from(reserve) + u128::from(in_progress);
    if want > u128::from(free) {
        let more = (want - u128::from(free)).min(u128::from(u64::MAX)) as u64;
        return Err(not_enough_space(more));
    }
    Ok(())
}

/// Serialises the claims of this process, so that two receives cannot
/// both find room for themselves in the same free space. (Between
/// processes, as between git-annex processes, a claim made at the same
/// moment can be missed.)
static CLAIMS: Mutex<()> = Mutex::new(());

/// The exclusive lock held while a key's content is being received (in
/// this process or another), on `TMP.lck` beside the temporary file or
/// directory `TMP`; the lock file is removed when it is released.
pub struct ReceiveLock {
    lock: Option<FileLock>,
    tmp: PathBuf,
}

impl ReceiveLock {
    /// Takes the lock for the temporary path `tmp`, or `Ok(None)` when
    /// another receiver holds it.
    pub fn take(tmp: &Path) -> io::Result<Option<ReceiveLock>> {
        let path = with_suffix(tmp, ".lck");
        loop {
            match try_lock(&path, LockKind::Exclusive)? {
                None => return Ok(None),
                // Another receiver removed the file after we opened it.
                Some(l) if !l.is_sane() => continue,
                Some(l) => {
                    return Ok(Some(ReceiveLock {
                        lock: Some(l),
                        tmp: tmp.to_owned(),
                    }))
                }
            }
        }
    }

    /// Makes sure that `need` more bytes can be written to the temporary
    /// path, keeping `reserve` bytes free on its filesystem once the other
    /// receives in progress there have written what they still have to,
    /// and records the claim, so that receives that start later count it.
    ///
    /// Counted: the receives in the temporary path's directory, and, when
    /// `repository` (a git directory) is given and its annex is on the
    /// same filesystem, the receives into its `annex/tmp` and git-annex's
    /// downloads into it.
    pub fn claim_space(
        &self,
        need: u64,
        reserve: u64,
        repository: Option<&Path>,
    ) -> Result<(), RepoError> {
        let dir = self.tmp.parent().unwrap_or(Path::new("."));
        let _claims = CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
        let mut in_progress = receives_in_progress(dir, &self.tmp);
        if let Some(git_dir) = repository {
            let annex = git_dir.join("annex");
            if same_filesystem(dir, &annex) {
                let annex_tmp = annex.join("tmp");
                if !same_dir(&annex_tmp, dir) {
                    in_progress += receives_in_progress(&annex_tmp, &self.tmp);
                }
                in_progress += git_annex_downloads_in_progress(git_dir, self.tmp.file_name());
            }
        }
        check(free_space(dir)?, need, reserve, in_progress)?;
        // Once complete, the temporary path holds what it holds now and
        // what is still to come.
        let total = received(&self.tmp).saturating_add(need);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(with_suffix(&self.tmp, ".lck"))?;
        f.write_all(total.to_string().as_bytes())?;
        Ok(())
    }
}

impl Drop for ReceiveLock {
    fn drop(&mut self) {
        if let Some(l) = self.lock.take() {
            let _ = fs::remove_file(l.path());
        }
    }
}

/// Bytes of content in a temporary path: the file's, or the files'
/// directly in the directory.
fn received(tmp: &Path) -> u64 {
    match fs::metadata(tmp) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) if m.is_dir() => fs::read_dir(tmp)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0),
        _ => 0,
    }
}

/// What the receives in progress in `dir` other than into `except` have
/// still to write.
fn receives_in_progress(dir: &Path, except: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut sum = 0u64;
    for entry in entries.filter_map(Result::ok) {
        let lck = entry.path();
        let Some(tmp) = lck
            .to_str()
            .and_then(|p| p.strip_suffix(".lck"))
            .map(PathBuf::from)
        else {
            continue;
        };
        if tmp == except || !is_locked(&lck).unwrap_or(false) {
            continue;
        }
        let total = fs::read_to_string(&lck)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        sum = sum.saturating_add(total.saturating_sub(received(&tmp)));
    }
    sum
}

/// What git-annex's downloads in progress into the repository `git_dir`
/// have still to write, other than of the key whose file name is
/// `except` (as sizeOfDownloadsInProgress counts: keys without a size
/// count nothing).
fn git_annex_downloads_in_progress(git_dir: &Path, except: Option<&OsStr>) -> u64 {
    let downloads = git_dir.join("annex").join("transfer").join("download");
    let Ok(uuids) = fs::read_dir(&downloads) else {
        return 0;
    };
    let mut sum = 0u64;
    for uuid_dir in uuids.filter_map(Result::ok) {
        if uuid_dir.file_name() == "lck" {
            continue;
        }
        let Ok(files) = fs::read_dir(uuid_dir.path()) else {
            continue;
        };
        for f in files.filter_map(Result::ok) {
            let name = f.file_name();
            let Some(key_file) = name.to_str().filter(|n| !n.starts_with("lck.")) else {
                continue;
            };
            if Some(name.as_os_str()) == except {
                continue;
            }
            let Some(size) = Key::from_file_name(key_file).ok().and_then(|k| k.size()) else {
                continue;
            };
            // The lock of a running download: in transfer/download/lck,
            // or (older versions) beside the transfer file.
            let lock_name = format!("lck.{key_file}");
            let running = is_locked(&downloads.join("lck").join(&lock_name)).unwrap_or(false)
                || is_locked(&uuid_dir.path().join(&lock_name)).unwrap_or(false);
            if !running {
                continue;
            }
            // The first line: the start time, then the bytes done.
            let done = fs::read_to_string(f.path())
                .ok()
                .and_then(|s| {
                    s.lines()
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .and_then(|b| b.parse::<u64>().ok())
                })
                .unwrap_or(0);
            sum = sum.saturating_add(size.saturating_sub(done));
        }
    }
    sum
}

fn same_filesystem(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_git_annexs() {
        let e = not_enough_space(1_500_000);
        assert_eq!(
            e.to_string(),
            "not enough free space, need 1.5 MB more (use --force to override this check or adjust annex.diskreserve)"
        );
        assert!(e.is_for_peer());
        assert!(check(100, 50, 50, 0).is_ok());
        assert!(check(100, 50, 50, 1).is_err());
        assert!(check(100, u64::MAX, u64::MAX, u64::MAX).is_err());
    }

    #[test]
    fn claims_of_receives_in_progress_are_counted_until_they_end() {
        let d = tempfile::tempdir().unwrap();
        let a = ReceiveLock::take(&d.path().join("A")).unwrap().unwrap();
        a.claim_space(1000, 0, None).unwrap();
        fs::write(d.path().join("A"), [0u8; 300]).unwrap();
        let b_tmp = d.path().join("B");
        // A has 700 bytes to come.
        assert_eq!(receives_in_progress(d.path(), &b_tmp), 700);
        // A lock file left by a receiver that is gone counts nothing.
        fs::write(d.path().join("C.lck"), "5000").unwrap();
        assert_eq!(receives_in_progress(d.path(), &b_tmp), 700);
        drop(a);
        assert_eq!(receives_in_progress(d.path(), &b_tmp), 0);
    }

    #[test]
    fn git_annex_downloads_count_what_is_left_of_sized_keys() {
        let d = tempfile::tempdir().unwrap();
        let downloads = d.path().join("annex/transfer/download");
        let u = downloads.join("11111111-1111-4111-8111-111111111111");
        fs::create_dir_all(&u).unwrap();
        fs::create_dir_all(downloads.join("lck")).unwrap();
        let sized = "WORM-s1000-m1--a";
        let sizeless = "WORM--b";
        let stopped = "WORM-s50-m1--c";
        fs::write(u.join(sized), "1700000000.5s 400\nfile\n").unwrap();
        fs::write(u.join(sizeless), "1700000000.5s\n\n").unwrap();
        fs::write(u.join(stopped), "1700000000.5s\n\n").unwrap();
        let _l1 = try_lock(
            &downloads.join(format!("lck/lck.{sized}")),
            LockKind::Exclusive,
        )
        .unwrap()
        .unwrap();
        let _l2 = try_lock(&u.join(format!("lck.{sizeless}")), LockKind::Exclusive)
            .unwrap()
            .unwrap();
        assert_eq!(git_annex_downloads_in_progress(d.path(), None), 600);
        assert_eq!(
            git_annex_downloads_in_progress(d.path(), Some(OsStr::new(sized))),
            0
        );
    }
}
