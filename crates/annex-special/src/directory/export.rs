//! The directory special remote with `exporttree=yes`: files at their
//! exported paths below the directory, as git-annex's directory remote
//! keeps them (Remote/Directory.hs `storeExportM` and friends).
//!
//! Content is written into `DIR/.git/annex/tmp/` (inside the directory
//! no exported file can be in, and on the same filesystem) and renamed
//! to its path once verified, so that no partial file is ever seen at a
//! path. Directories a removal or a rename leaves empty are removed, up
//! to the directory itself, as git-annex removes them.

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use annex_protocol::{Key, RepoError};
use annex_repo::read::FileStream;
use annex_repo::ReceiveLock;
use async_trait::async_trait;

use crate::export::{ExportPath, ExportStore, PendingStore, Retrieved};

fn blocking_err(e: tokio::task::JoinError) -> RepoError {
    RepoError::context("background task failed", e)
}

/// A directory holding an exported tree.
#[derive(Debug, Clone)]
pub struct DirectoryExport {
    dir: PathBuf,
    disk_reserve: u64,
    /// The using repository's git directory, whose receives in progress
    /// count against the reserve when on the same filesystem.
    git_dir: Option<PathBuf>,
}

/// Temporary files of this process, numbered.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

impl DirectoryExport {
    /// The tree exported to `dir`, keeping `disk_reserve` bytes free on
    /// its filesystem.
    pub fn new(dir: PathBuf, disk_reserve: u64, git_dir: Option<PathBuf>) -> DirectoryExport {
        DirectoryExport {
            dir,
            disk_reserve,
            git_dir,
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Path {
        &self.dir
    }

    /// Where a path of the export is.
    pub fn file(&self, p: &ExportPath) -> PathBuf {
        self.dir.join(std::ffi::OsStr::from_bytes(p.as_bytes()))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join(".git/annex/tmp")
    }

    fn accessible(&self) -> Result<(), RepoError> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(RepoError::Other(format!(
                "directory {} is not accessible",
                self.dir.display()
            )))
        }
    }

    /// Removes the directories `p` is in while they are empty, deepest
    /// first, never the top (git-annex's `removeExportLocation`).
    fn remove_empty_parents(&self, p: &ExportPath) {
        for d in p.parents() {
            if fs::remove_dir(self.dir.join(std::ffi::OsStr::from_bytes(d))).is_err() {
                break;
            }
        }
    }

    fn create_parents(&self, p: &ExportPath) -> io::Result<()> {
        match self.file(p).parent() {
            Some(d) => fs::create_dir_all(d),
            None => Ok(()),
        }
    }

    /// Removes the temporary directory and the `.git` it is in when
    /// nothing else is left in them.
    fn tidy_tmp(&self) {
        let tmp = self.tmp_dir();
        let _ = fs::remove_dir(&tmp);
        let _ = fs::remove_dir(self.dir.join(".git/annex"));
        let _ = fs::remove_dir(self.dir.join(".git"));
    }

    fn start_blocking(&self, path: &ExportPath, len: u64) -> Result<DirectoryPending, RepoError> {
        self.accessible()?;
        let tmp_dir = self.tmp_dir();
        let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
        let tmp = tmp_dir.join(format!("export-{}-{n}", std::process::id()));
        // Another store may tidy the directory away meanwhile: again.
        let mut tries = 0;
        let (file, lock) = loop {
            tries += 1;
            fs::create_dir_all(&tmp_dir)?;
            let lock = match ReceiveLock::take(&tmp) {
                Ok(Some(l)) => l,
                Ok(None) => return Err(RepoError::Other("temporary file in use".into())),
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 5 => continue,
                Err(e) => return Err(e.into()),
            };
            match fs::File::create(&tmp) {
                Ok(f) => break (f, lock),
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 5 => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let pending = DirectoryPending {
            store: self.clone(),
            path: path.clone(),
            tmp,
            file: Some(file),
            lock: Some(lock),
        };
        if let Some(l) = &pending.lock {
            l.claim_space(len, self.disk_reserve, self.git_dir.as_deref())?;
        }
        Ok(pending)
    }
}

/// Content being written to a temporary file of a directory export.
struct DirectoryPending {
    store: DirectoryExport,
    path: ExportPath,
    tmp: PathBuf,
    file: Option<fs::File>,
    lock: Option<ReceiveLock>,
}

impl DirectoryPending {
    fn commit_blocking(&mut self) -> Result<(), RepoError> {
        drop(self.file.take());
        let moved = self
            .store
            .create_parents(&self.path)
            .and_then(|_| fs::rename(&self.tmp, self.store.file(&self.path)));
        if moved.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        self.lock = None;
        self.store.tidy_tmp();
        Ok(moved?)
    }
}

impl Drop for DirectoryPending {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
            self.lock = None;
            self.store.tidy_tmp();
        }
    }
}

#[async_trait]
impl PendingStore for DirectoryPending {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.write_all(bytes),
            None => Err(io::Error::other("already committed")),
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<(), RepoError> {
        tokio::task::spawn_blocking(move || self.commit_blocking())
            .await
            .map_err(blocking_err)?
    }
}

#[async_trait]
impl ExportStore for DirectoryExport {
    async fn check_present(&self, _key: &Key, path: &ExportPath) -> Result<bool, RepoError> {
        let this = self.clone();
        let p = this.file(path);
        tokio::task::spawn_blocking(move || {
            if p.is_file() {
                return Ok(true);
            }
            this.accessible().map(|_| false)
        })
        .await
        .map_err(blocking_err)?
    }

    async fn start_store(
        &self,
        _key: &Key,
        path: &ExportPath,
        len: u64,
    ) -> Result<Box<dyn PendingStore>, RepoError> {
        let this = self.clone();
        let path = path.clone();
        let pending = tokio::task::spawn_blocking(move || this.start_blocking(&path, len))
            .await
            .map_err(blocking_err)??;
        Ok(Box::new(pending))
    }

    async fn retrieve(
        &self,
        _key: &Key,
        path: &ExportPath,
        offset: u64,
    ) -> Result<Option<Retrieved>, RepoError> {
        let this = self.clone();
        let p = this.file(path);
        let opened = tokio::task::spawn_blocking(move || -> Result<_, RepoError> {
            let file = match fs::File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    this.accessible()?;
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Ok(None);
            }
            Ok(Some((file, meta.len())))
        })
        .await
        .map_err(blocking_err)??;
        let Some((mut file, total)) = opened else {
            return Ok(None);
        };
        let from = offset.min(total);
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(from))?;
        Ok(Some(Retrieved {
            len: total - from,
            stream: Box::new(FileStream::start(file, total - from)),
        }))
    }

    async fn remove(&self, _key: &Key, path: &ExportPath) -> Result<(), RepoError> {
        let this = self.clone();
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            this.accessible()?;
            match fs::remove_file(this.file(&path)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            this.remove_empty_parents(&path);
            Ok(())
        })
        .await
        .map_err(blocking_err)?
    }

    async fn rename(
        &self,
        _key: &Key,
        from: &ExportPath,
        to: &ExportPath,
    ) -> Result<bool, RepoError> {
        let this = self.clone();
        let (from, to) = (from.clone(), to.clone());
        tokio::task::spawn_blocking(move || {
            this.accessible()?;
            this.create_parents(&to)?;
            fs::rename(this.file(&from), this.file(&to))?;
            this.remove_empty_parents(&from);
            Ok(true)
        })
        .await
        .map_err(blocking_err)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annex_protocol::repository::ChunkReader;
    use tokio::io::AsyncReadExt;

    fn p(s: &str) -> ExportPath {
        ExportPath::new(s).unwrap()
    }

    /// The key requests name, which this store ignores.
    fn k() -> Key {
        Key::parse("WORM-s5-m1--x").unwrap()
    }

    async fn read_all(r: Retrieved) -> Vec<u8> {
        let mut stream = r.stream;
        let mut out = Vec::new();
        ChunkReader::new(&mut *stream)
            .read_to_end(&mut out)
            .await
            .unwrap();
        out
    }

    #[tokio::test]
    async fn files_appear_only_when_committed_and_directories_are_tidied() {
        let d = tempfile::tempdir().unwrap();
        let s = DirectoryExport::new(d.path().to_owned(), 0, None);
        let path = p("a/b/c.txt");
        assert!(!s.check_present(&k(), &path).await.unwrap());
        let mut w = s.start_store(&k(), &path, 5).await.unwrap();
        w.write(b"hello").unwrap();
        // Written, not visible.
        assert!(!s.check_present(&k(), &path).await.unwrap());
        assert!(annex_test_support::files_under(&d.path().join("a")).is_empty());
        w.commit().await.unwrap();
        assert!(s.check_present(&k(), &path).await.unwrap());
        assert_eq!(fs::read(d.path().join("a/b/c.txt")).unwrap(), b"hello");
        // Nothing left of the temporary file, nor of `.git`.
        assert!(!d.path().join(".git").exists());
        let r = s.retrieve(&k(), &path, 1).await.unwrap().unwrap();
        assert_eq!(r.len, 4);
        assert_eq!(read_all(r).await, b"ello");

        // Dropped without a commit: nothing.
        let mut w = s.start_store(&k(), &p("x"), 3).await.unwrap();
        w.write(b"abc").unwrap();
        drop(w);
        assert!(!s.check_present(&k(), &p("x")).await.unwrap());
        assert!(!d.path().join(".git").exists());

        assert!(s.rename(&k(), &path, &p("d/e")).await.unwrap());
        assert!(!d.path().join("a").exists());
        assert_eq!(fs::read(d.path().join("d/e")).unwrap(), b"hello");
        s.remove(&k(), &p("d/e")).await.unwrap();
        s.remove(&k(), &p("d/e")).await.unwrap();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        assert!(s.retrieve(&k(), &p("d/e"), 0).await.unwrap().is_none());

        let gone = DirectoryExport::new(d.path().join("unmounted"), 0, None);
        assert!(gone.check_present(&k(), &p("x")).await.is_err());
        assert!(gone.remove(&k(), &p("x")).await.is_err());
    }

    #[tokio::test]
    async fn disk_reserve_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let s = DirectoryExport::new(d.path().to_owned(), u64::MAX / 2, None);
        let err = match s.start_store(&k(), &p("f"), 10).await {
            Err(e) => e,
            Ok(_) => panic!("stored past the reserve"),
        };
        assert!(err.to_string().contains("free space"), "{err}");
        assert!(!d.path().join(".git").exists());
    }
}
