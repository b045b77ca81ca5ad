//! Recording where content is: the key's location log, updated through the
//! git-annex journal as git-annex does, so the next git-annex command (or
//! `annex merge`) commits it to the git-annex branch.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use annex_protocol::{Key, Uuid};

use crate::lock::{lock_blocking, LockKind};

/// The location log's path on the git-annex branch: `xxx/yyy/KEY.log`.
pub fn location_log_path(key: &Key) -> String {
    format!("{}{}.log", key.hash_dir_lower(), key.to_file_name())
}

/// The journal's file name for a branch path: `/` becomes `_` and `_`
/// becomes `__`.
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

/// Reads a file of the git-annex branch as git-annex would see it: the
/// journalled version when there is one, else the committed one.
fn read_current(git_dir: &Path, journal_file: &Path, branch_path: &str) -> io::Result<String> {
    match std::fs::read_to_string(journal_file) {
        Ok(s) => return Ok(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["cat-file", "blob"])
        .arg(format!("refs/heads/git-annex:{branch_path}"))
        .stderr(std::process::Stdio::null())
        .output()?;
    // A path that is not on the branch yet reads as empty.
    Ok(if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::new()
    })
}

/// Records in the key's location log that `uuid` has (or no longer has)
/// the content. Blocks: call from a blocking context.
pub fn record(git_dir: &Path, key: &Key, uuid: &Uuid, present: bool) -> io::Result<()> {
    let annex = git_dir.join("annex");
    let journal = annex.join("journal");
    std::fs::create_dir_all(&journal)?;
    let _lock = lock_blocking(&annex.join("journal.lck"), LockKind::Exclusive)?;
    let branch_path = location_log_path(key);
    let jfile = journal.join(journal_file_name(&branch_path));
    let current = read_current(git_dir, &jfile, &branch_path)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut ts = now;
    let mut kept = String::with_capacity(current.len() + 64);
    for line in current.lines() {
        let mut words = line.split_whitespace();
        let (t, _status, u) = (words.next(), words.next(), words.next());
        if u == Some(uuid.as_str()) {
            // Our newer line replaces this one; keep time moving forward so
            // that ours wins under last-writer-wins.
            if let Some(prev) = t.and_then(parse_timestamp) {
                ts = ts.max(prev + 1);
            }
            continue;
        }
        if !line.trim().is_empty() {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept.push_str(&format!("{ts}s {} {uuid}\n", if present { 1 } else { 0 }));
    write_atomically(&annex, &jfile, kept.as_bytes())
}

fn parse_timestamp(t: &str) -> Option<u64> {
    let t = t.strip_suffix('s').unwrap_or(t);
    let whole = t.split('.').next()?;
    whole.parse().ok()
}

/// Writes through a temporary file in `annex/othertmp` and renames it into
/// place, so a reader sees the old or the new content, never a mix.
fn write_atomically(annex: &Path, dest: &Path, content: &[u8]) -> io::Result<()> {
    let tmpdir = annex.join("othertmp");
    std::fs::create_dir_all(&tmpdir)?;
    let name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let tmp: PathBuf = tmpdir.join(name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_names() {
        assert_eq!(journal_file_name("a/b_c/K.log"), "a_b__c_K.log");
        let k = Key::parse(
            "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
        )
        .unwrap();
        assert_eq!(
            location_log_path(&k),
            "992/280/SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.log"
        );
    }
}
