//! Reading a repository's git config.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::process::Command;

/// git-annex's default annex.diskreserve: 100 megabytes.
pub const DEFAULT_DISK_RESERVE: u64 = 100_000_000;

/// `git config --list -z` in `git_dir`: the config that applies there
/// (system, global and the repository's own), names as git writes them.
pub fn list_z(git_dir: &Path) -> io::Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["config", "--list", "-z"])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "git config failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// The git config of a repository, as `git config --list` shows it (last
/// value wins).
#[derive(Debug, Clone, Default)]
pub struct GitConfig {
    values: HashMap<String, String>,
}

impl GitConfig {
    /// Reads the config that applies in `git_dir` (system, global and the
    /// repository's own).
    pub fn read(git_dir: &Path) -> io::Result<GitConfig> {
        Ok(Self::parse_z(&list_z(git_dir)?))
    }

    /// Parses `git config --list -z` output.
    pub fn parse_z(out: &[u8]) -> GitConfig {
        let mut values = HashMap::new();
        for entry in out.split(|&b| b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let (k, v) = entry.split_once('\n').unwrap_or((&entry, "true"));
            values.insert(k.to_ascii_lowercase(), v.to_owned());
        }
        GitConfig { values }
    }

    /// A value by its lower-case name (`annex.uuid`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// annex.diskreserve as git-annex reads it (`readSize dataUnits`, see
/// [`annex_types::size`]), given its value if set: unset or unreadable,
/// [`DEFAULT_DISK_RESERVE`]. A negative reserve (which git-annex would
/// count as room the filesystem does not have) is taken as none.
pub fn disk_reserve(value: Option<&str>) -> u64 {
    match value.and_then(annex_types::size::read_size) {
        Some(n) => u64::try_from(n.max(0)).unwrap_or(u64::MAX),
        None => DEFAULT_DISK_RESERVE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_reserves() {
        assert_eq!(disk_reserve(Some("100")), 100);
        assert_eq!(disk_reserve(Some("1 megabyte")), 1_000_000);
        assert_eq!(disk_reserve(Some("2.5GB")), 2_500_000_000);
        assert_eq!(disk_reserve(Some("1MiB")), 1 << 20);
        assert_eq!(disk_reserve(Some("1e3")), 1000);
        assert_eq!(disk_reserve(Some("1kbit")), 125);
        assert_eq!(disk_reserve(Some("-5")), 0);
        assert_eq!(disk_reserve(Some("lots")), DEFAULT_DISK_RESERVE);
        assert_eq!(disk_reserve(None), DEFAULT_DISK_RESERVE);
    }

    #[test]
    fn config_list() {
        let c = GitConfig::parse_z(
            b"annex.uuid\nabc\0core.bare\nfalse\0Annex.DiskReserve\n1mb\0flag\0",
        );
        assert_eq!(c.get("annex.uuid"), Some("abc"));
        assert_eq!(c.get("annex.diskreserve"), Some("1mb"));
        assert_eq!(c.get("flag"), Some("true"));
    }
}
