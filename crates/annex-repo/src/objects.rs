//! Looking up object files below `annex/objects` through a directory handle
//! kept open, so that each look-up walks only the four path components
//! below it (`Xx/Yy/KEY/KEY`) instead of the whole path from the root.
//!
//! The handle is checked against the path at least once a second, and
//! whenever a look-up finds nothing, so a directory removed, moved away or
//! replaced is followed within a second.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a handle is trusted to still be the directory at the path.
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// The `annex/objects` directory of a repository.
#[derive(Debug)]
pub(crate) struct ObjectsDir {
    path: PathBuf,
    /// Opened on first use; `None` while the directory does not exist.
    handle: Mutex<Option<Handle>>,
}

#[derive(Debug)]
struct Handle {
    fd: Arc<OwnedFd>,
    /// The directory's device and inode, to recognise it at the path.
    id: (u64, u64),
    checked: Instant,
}

impl ObjectsDir {
    pub(crate) fn new(path: PathBuf) -> ObjectsDir {
        ObjectsDir {
            path,
            handle: Mutex::new(None),
        }
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The first of `candidates` (paths relative to the directory) that is
    /// a regular file, following symbolic links.
    pub(crate) fn find(&self, candidates: &[&str]) -> Option<usize> {
        let Some(dir) = self.handle() else {
            return self.find_by_path(candidates);
        };
        let mut unsure = false;
        for (i, rel) in candidates.iter().enumerate() {
            match stat_at(&dir, rel) {
                Ok(mode) if mode & libc::S_IFMT == libc::S_IFREG => return Some(i),
                Ok(_) => {}
                Err(libc::ENOENT | libc::ENOTDIR) => {}
                Err(_) => unsure = true,
            }
        }
        // Nothing found: make sure the handle still is the repository's
        // directory (it has not been removed since it was opened) before
        // saying so.
        if unsure || !still_linked(&dir) {
            self.forget(&dir);
            return self.find_by_path(candidates);
        }
        None
    }

    fn find_by_path(&self, candidates: &[&str]) -> Option<usize> {
        candidates
            .iter()
            .position(|rel| self.path.join(rel).is_file())
    }

    fn handle(&self) -> Option<Arc<OwnedFd>> {
        let mut slot = self.handle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(h) = slot.as_mut() {
            if now.duration_since(h.checked) < RECHECK_AFTER {
                return Some(h.fd.clone());
            }
            let same = std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == h.id);
            if same {
                h.checked = now;
                return Some(h.fd.clone());
            }
        }
        *slot = open_dir(&self.path).and_then(|fd| {
            let id = dir_id(&fd)?;
            Some(Handle {
                fd: Arc::new(fd),
                id,
                checked: now,
            })
        });
        slot.as_ref().map(|h| h.fd.clone())
    }

    fn forget(&self, stale: &Arc<OwnedFd>) {
        let mut slot = self.handle.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|h| Arc::ptr_eq(&h.fd, stale)) {
            *slot = None;
        }
    }
}

fn open_dir(path: &Path) -> Option<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a NUL-terminated path; the flags open no content.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    // SAFETY: a non-negative result is a new descriptor owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The mode of `rel` below `dir`, following symbolic links, or the errno.
fn stat_at(dir: &OwnedFd, rel: &str) -> Result<libc::mode_t, i32> {
    // A name with a NUL in it names no file.
    let c = CString::new(rel).map_err(|_| libc::ENOENT)?;
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `c` is NUL-terminated and `st` is writable stat storage.
    let r = unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), st.as_mut_ptr(), 0) };
    if r != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: fstatat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() }.st_mode)
}

fn fstat(fd: &OwnedFd) -> Option<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable stat storage for a valid descriptor.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
    // SAFETY: fstat succeeded, so it filled `st`.
    (r == 0).then(|| unsafe { st.assume_init() })
}

/// The device and inode of the directory behind `dir`.
fn dir_id(dir: &OwnedFd) -> Option<(u64, u64)> {
    fstat(dir).map(|st| (st.st_dev, st.st_ino))
}

/// Whether the directory behind `dir` still has a name (it was not removed).
fn still_linked(dir: &OwnedFd) -> bool {
    fstat(dir).is_some_and(|st| st.st_nlink > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_files_and_follows_removal() {
        let tmp = tempfile::tempdir().unwrap();
        let objects = tmp.path().join("objects");
        let dir = ObjectsDir::new(objects.clone());
        // Before the directory exists.
        assert_eq!(dir.find(&["a/b", "c/d"]), None);
        std::fs::create_dir_all(objects.join("c")).unwrap();
        std::fs::write(objects.join("c/d"), b"x").unwrap();
        std::fs::create_dir_all(objects.join("a/b")).unwrap();
        // A directory is not content; the second candidate is.
        assert_eq!(dir.find(&["a/b", "c/d"]), Some(1));
        assert_eq!(dir.find(&["a/b/missing", "c/d/x"]), None);
        assert_eq!(dir.find(&["c/d\0", "c/d"]), Some(1));
        // The directory removed and made again: the handle follows.
        std::fs::remove_dir_all(&objects).unwrap();
        assert_eq!(dir.find(&["c/d"]), None);
        std::fs::create_dir_all(objects.join("e")).unwrap();
        std::fs::write(objects.join("e/f"), b"x").unwrap();
        assert_eq!(dir.find(&["e/f"]), Some(0));
        let long = format!("{}/x", "y".repeat(600));
        assert_eq!(dir.find(&[&long]), None);
    }

    #[test]
    fn a_directory_moved_away_is_followed_within_a_second() {
        let tmp = tempfile::tempdir().unwrap();
        let objects = tmp.path().join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        std::fs::write(objects.join("f"), b"x").unwrap();
        let dir = ObjectsDir::new(objects.clone());
        assert_eq!(dir.find(&["f"]), Some(0));
        // Moved away, with its content, and replaced by an empty one.
        std::fs::rename(&objects, tmp.path().join("moved")).unwrap();
        std::fs::create_dir(&objects).unwrap();
        std::thread::sleep(RECHECK_AFTER + Duration::from_millis(100));
        assert_eq!(dir.find(&["f"]), None);
    }
}
