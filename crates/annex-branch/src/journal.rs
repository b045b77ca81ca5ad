//! The journal: changes to the git-annex branch that are written but not
//! yet committed, in `annex/journal/` under the git directory, one file
//! per branch file, guarded by `annex/journal.lck` as git-annex guards it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::lock::{lock_blocking, FileLock, LockKind};

/// The journal of one repository.
#[derive(Clone, Debug)]
pub struct Journal {
    dir: PathBuf,
    lock_path: PathBuf,
    tmp_dir: PathBuf,
    tmp_lock: PathBuf,
}

/// Proof that the journal lock is held; released when dropped.
#[derive(Debug)]
pub struct JournalLock {
    _lock: FileLock,
}

/// A journal file name for a branch path: `/` becomes `_` and `_`
/// becomes `__`, as git-annex names them.
pub fn journal_file_name(branch_path: &str) -> String {
    let mut out = String::with_capacity(branch_path.len() + 4);
    for c in branch_path.chars() {
        match c {
            '/' => out.push('_'),
            '_' => out.push_str("__"),
            c => out.push(c),
        }
    }
    out
}

/// The branch path a journal file name stands for, read as git-annex
/// reads it (the inverse of [`journal_file_name`] for every path that has
/// no `_` right after a `/`; git-annex's naming cannot tell those apart).
pub fn branch_path_of(journal_file: &str) -> String {
    let mut out = String::with_capacity(journal_file.len());
    let mut chars = journal_file.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            match chars.peek() {
                Some('_') => {
                    chars.next();
                    out.push('_');
                }
                Some(_) => out.push('/'),
                // A lone `_` at the end stands for nothing, as git-annex
                // reads it.
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Journal {
    /// The journal of the repository whose git directory is `git_dir`.
    pub fn new(git_dir: &Path) -> Journal {
        let annex = git_dir.join("annex");
        Journal {
            dir: annex.join("journal"),
            lock_path: annex.join("journal.lck"),
            tmp_dir: annex.join("othertmp"),
            tmp_lock: annex.join("othertmp.lck"),
        }
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the journal lock, waiting for other writers (git-annex
    /// included) to finish.
    pub fn lock(&self) -> io::Result<JournalLock> {
        if let Some(parent) = self.lock_path.parent() {
            fs::create_dir_all(parent)?;
        }
        Ok(JournalLock {
            _lock: lock_blocking(&self.lock_path, LockKind::Exclusive)?,
        })
    }

    /// The journalled content of a branch file, if it has any. A last line
    /// without its newline (an append cut short) is left out, as git-annex
    /// leaves it out.
    pub fn read(&self, branch_path: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.dir.join(journal_file_name(branch_path))) {
            Ok(mut b) => {
                if b.last().is_some_and(|&c| c != b'\n') {
                    let keep = b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
                    b.truncate(keep);
                }
                Ok(Some(b))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a branch file's new content into the journal, through a
    /// temporary file renamed into place so that readers never see half
    /// of it.
    pub fn write(&self, _lock: &JournalLock, branch_path: &str, content: &[u8]) -> io::Result<()> {
        // git-annex empties `othertmp` whenever it can take this lock
        // exclusively; holding it shared keeps our file there.
        let _tmp = lock_blocking(&self.tmp_lock, LockKind::Shared)?;
        fs::create_dir_all(&self.dir)?;
        fs::create_dir_all(&self.tmp_dir)?;
        let name = journal_file_name(branch_path);
        let tmp = self
            .tmp_dir
            .join(format!("{}.{}", name, std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_data()?;
        drop(f);
        fs::rename(&tmp, self.dir.join(name))
    }

    /// Every journalled file: its branch path and its file.
    pub fn files(&self) -> io::Result<Vec<(String, PathBuf)>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            if let Some(name) = entry.file_name().to_str() {
                out.push((branch_path_of(name), entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether anything is journalled.
    pub fn is_dirty(&self) -> io::Result<bool> {
        Ok(!self.files()?.is_empty())
    }

    /// Whether something is journalled and nothing was written to the
    /// journal for `quiet` (by the journal directory's modification time,
    /// which every write changes): the moment to commit after activity.
    pub fn settled(&self, quiet: std::time::Duration) -> io::Result<bool> {
        let modified = match fs::metadata(&self.dir) {
            Ok(m) => m.modified()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        // A clock set back counts as quiet: the commit is then early, not
        // lost.
        let quiet_enough = modified.elapsed().map_or(true, |e| e >= quiet);
        Ok(quiet_enough && self.is_dirty()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_once_written_and_quiet() {
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::new(tmp.path());
        let quiet = std::time::Duration::from_secs(3600);
        assert!(
            !j.settled(std::time::Duration::ZERO).unwrap(),
            "nothing yet"
        );
        let l = j.lock().unwrap();
        j.write(&l, "a/b.log", b"x\n").unwrap();
        assert!(!j.settled(quiet).unwrap(), "just written");
        assert!(j.settled(std::time::Duration::ZERO).unwrap());
        fs::remove_file(j.dir().join(journal_file_name("a/b.log"))).unwrap();
        assert!(!j.settled(std::time::Duration::ZERO).unwrap(), "empty");
    }

    #[test]
    fn names_round_trip() {
        for p in [
            "a/b_c/K.log",
            "uuid.log",
            "x__y/z_",
            "992/280/SHA256E-s6--ab.log",
        ] {
            assert_eq!(branch_path_of(&journal_file_name(p)), p);
        }
        assert_eq!(branch_path_of("a_"), "a");
        assert_eq!(journal_file_name("a/b_c/K.log"), "a_b__c_K.log");
    }

    #[test]
    fn write_read_list() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::new(d.path());
        assert!(!j.is_dirty().unwrap());
        let l = j.lock().unwrap();
        j.write(&l, "abc/def/K.log", b"1s 1 u\n").unwrap();
        assert_eq!(j.read("abc/def/K.log").unwrap().unwrap(), b"1s 1 u\n");
        j.write(&l, "cut.log", b"1s 1 u\n2s 0").unwrap();
        assert_eq!(j.read("cut.log").unwrap().unwrap(), b"1s 1 u\n");
        assert_eq!(j.read("other.log").unwrap(), None);
        let files = j.files().unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "abc/def/K.log");
    }
}
