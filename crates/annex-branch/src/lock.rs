//! File locks compatible with git-annex's.
//!
//! git-annex takes POSIX record locks (fcntl) on whole files. This module
//! takes open-file-description locks (`F_OFD_SETLK`), which conflict with
//! git-annex's locks in the same way but belong to one open file rather
//! than to the whole process, so that several locks held by one server
//! process do not release each other.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Kind of lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Many holders at once; excludes exclusive locks.
    Shared,
    /// One holder; excludes all other locks.
    Exclusive,
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// The locked file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the lock still guards the file at its path: another process
    /// may have deleted and recreated the lock file after this one opened
    /// it (git-annex's checkSaneLock).
    pub fn is_sane(&self) -> bool {
        match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        }
    }
}

fn set_lock(file: &File, kind: LockKind, wait: bool) -> io::Result<bool> {
    // SAFETY: a zeroed flock is a valid value; the fields set below are the
    // ones F_OFD_SETLK reads, and l_pid must be 0 for OFD locks.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = match kind {
        LockKind::Shared => libc::F_RDLCK,
        LockKind::Exclusive => libc::F_WRLCK,
    } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0;
    let cmd = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: the descriptor is open for the duration of the call and
        // `fl` points to a valid flock.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EACCES) if !wait => return Ok(false),
            _ => return Err(e),
        }
    }
}

fn open_lock_file(path: &Path, kind: LockKind, mode: u32) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).create(true).mode(mode);
    // A shared (read) lock needs the file open for reading, an exclusive
    // (write) lock for writing.
    if kind == LockKind::Exclusive {
        o.write(true);
    } else {
        o.append(true);
    }
    o.open(path)
}

/// Tries to take a lock without waiting. `Ok(None)` when another holder
/// has a conflicting lock.
pub fn try_lock(path: &Path, kind: LockKind) -> io::Result<Option<FileLock>> {
    let file = open_lock_file(path, kind, 0o644)?;
    if !set_lock(&file, kind, false)? {
        return Ok(None);
    }
    Ok(Some(FileLock {
        file,
        path: path.to_owned(),
    }))
}

/// Whether some holder (this process through another open file, or any
/// other process, git-annex included) has a lock on `path`, without taking
/// one: a lock file that does not exist is not locked.
pub fn is_locked(path: &Path) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    // SAFETY: a zeroed flock is a valid value; F_OFD_GETLK reads the
    // fields set below and writes the conflicting lock, if any, back.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    loop {
        // SAFETY: the descriptor is open for the duration of the call and
        // `fl` points to a valid flock.
        let r = unsafe {
            libc::fcntl(
                file.as_raw_fd(),
                libc::F_OFD_GETLK,
                &mut fl as *mut libc::flock,
            )
        };
        if r == 0 {
            return Ok(fl.l_type != libc::F_UNLCK as libc::c_short);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Takes a lock, waiting for conflicting holders to release theirs. Blocks
/// the calling thread.
pub fn lock_blocking(path: &Path, kind: LockKind) -> io::Result<FileLock> {
    let file = open_lock_file(path, kind, 0o644)?;
    set_lock(&file, kind, true)?;
    Ok(FileLock {
        file,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_exclusive_conflict() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lck");
        let a = try_lock(&p, LockKind::Shared).unwrap().unwrap();
        let b = try_lock(&p, LockKind::Shared).unwrap().unwrap();
        assert!(try_lock(&p, LockKind::Exclusive).unwrap().is_none());
        drop(a);
        assert!(try_lock(&p, LockKind::Exclusive).unwrap().is_none());
        drop(b);
        let e = try_lock(&p, LockKind::Exclusive).unwrap().unwrap();
        assert!(e.is_sane());
        assert!(try_lock(&p, LockKind::Shared).unwrap().is_none());
        std::fs::remove_file(&p).unwrap();
        assert!(!e.is_sane());
    }

    #[test]
    fn locks_are_seen_without_being_taken() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lck");
        assert!(!is_locked(&p).unwrap(), "no file, no lock");
        let shared = try_lock(&p, LockKind::Shared).unwrap().unwrap();
        // Held by this process, through another open file.
        assert!(is_locked(&p).unwrap());
        drop(shared);
        assert!(!is_locked(&p).unwrap());
        let ex = try_lock(&p, LockKind::Exclusive).unwrap().unwrap();
        assert!(is_locked(&p).unwrap());
        // Looking took nothing: the holder is undisturbed, and after it
        // the lock is free to take.
        drop(ex);
        assert!(try_lock(&p, LockKind::Exclusive).unwrap().is_some());
    }
}
