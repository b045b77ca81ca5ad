//! Reading a repository's git config, and git-annex's size syntax.

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

/// Parses a size as git-annex writes them: a number and an optional unit,
/// decimal (`kb`, `megabytes`, `GB`...) or binary (`KiB`, `MiB`...).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix('s')
        .filter(|u| u.len() > 1)
        .unwrap_or(&unit);
    let mult: f64 = match unit {
        "" | "b" | "byte" => 1.0,
        "k" | "kb" | "kilobyte" => 1e3,
        "m" | "mb" | "megabyte" => 1e6,
        "g" | "gb" | "gigabyte" => 1e9,
        "t" | "tb" | "terabyte" => 1e12,
        "p" | "pb" | "petabyte" => 1e15,
        "kib" | "kibibyte" => 1024.0,
        "mib" | "mebibyte" => 1024.0 * 1024.0,
        "gib" | "gibibyte" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "tebibyte" => 1024f64.powi(4),
        _ => return None,
    };
    Some((num * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1 megabyte"), Some(1_000_000));
        assert_eq!(parse_size("2.5GB"), Some(2_500_000_000));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("10 kilobytes"), Some(10_000));
        assert_eq!(parse_size("lots"), None);
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
