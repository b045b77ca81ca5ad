//! Reading a repository's git config, as git and git-annex read it: the
//! one reader of `git config --list -z` for every crate.
//!
//! - Names: the section and the variable are case-insensitive, the
//!   subsection (a remote's name in `remote.NAME.url`) is not; names are
//!   kept as git lists them (`remote.Origin.annexurl`) and looked up the
//!   same way, whatever the case of the section and variable asked for.
//! - Values: a variable set more than once keeps every value in order
//!   ([`GitConfig::get_all`]); a single value is the last one set
//!   ([`GitConfig::get`]), as git and git-annex take it.
//! - A variable with no `=` (`[remote "x"]` then a line `annex-ignore`) is
//!   a boolean true; its text is empty (git-annex's `NoConfigValue`).
//! - Booleans as git-annex reads them ([`parse_bool`]): `true`, `yes`,
//!   `on`, `1` and `false`, `no`, `off`, `0`, the empty text,
//!   case-insensitive, and any other whole number as true.
//!
//! ```
//! use annex_repo::config::GitConfig;
//!
//! let config = GitConfig::parse_z(
//!     b"remote.Origin.url\n../o\0remote.Origin.annex-ignore\0annex.numcopies\n2\0annex.numcopies\n3\0",
//! );
//! assert_eq!(config.get("Remote.Origin.URL"), Some("../o"));
//! assert_eq!(config.get("remote.origin.url"), None);
//! assert_eq!(config.get_bool("remote.Origin.annex-ignore"), Some(true));
//! assert_eq!(config.get("annex.numcopies"), Some("3"));
//! assert_eq!(config.get_all("annex.numcopies"), ["2", "3"]);
//! ```
//!
//! Integers are read where they are used, as git-annex reads each (its
//! `readish`, without git's `k`/`m`/`g` suffixes, which git-annex never
//! applies to its settings); sizes with [`disk_reserve`] and
//! [`annex_types::size`].

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::Command;

/// git-annex's default annex.diskreserve: 100 megabytes.
pub const DEFAULT_DISK_RESERVE: u64 = 100_000_000;

/// One variable as git lists it: its name, and its value (`None` for a
/// variable written without `=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name, section and variable in lower case (as git lists them).
    pub name: String,
    /// The value; `None` when the variable has no `=`.
    pub value: Option<String>,
}

impl Entry {
    /// The value as text: empty for a variable without a value, as
    /// git-annex reads it.
    pub fn text(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }

    /// The value as a boolean (see [`parse_bool`]).
    pub fn as_bool(&self) -> Option<bool> {
        parse_bool(self.value.as_deref())
    }
}

/// The git config that applies in a repository: every variable, in the
/// order git lists them (system, global, then the repository's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitConfig {
    entries: Vec<Entry>,
}

/// Runs `git ... config ... --list -z` as `cmd` is set up (`--git-dir`,
/// `--file` or a directory to run in) and returns its output.
fn list_z(mut cmd: Command) -> io::Result<Vec<u8>> {
    let out = cmd.args(["--list", "-z"]).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "git config failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// `git config`, with `before` given to git ahead of `config`.
fn git_config(before: &[&OsStr]) -> Command {
    let mut cmd = Command::new("git");
    cmd.args(before).arg("config");
    cmd
}

/// `name` with its section and variable in lower case, its subsection
/// as it is: the form git lists names in.
pub fn canonical_name(name: &str) -> String {
    match (name.find('.'), name.rfind('.')) {
        (Some(first), Some(last)) if first < last => format!(
            "{}{}{}",
            name[..first].to_ascii_lowercase(),
            &name[first..last],
            name[last..].to_ascii_lowercase()
        ),
        _ => name.to_ascii_lowercase(),
    }
}

/// A git config value as a boolean, as git-annex reads it: `None` (a
/// variable without `=`) is true; `true`, `yes`, `on`, `1` and any other
/// whole number are true; `false`, `no`, `off`, `0` and the empty text
/// are false (all case-insensitive); anything else is no boolean.
pub fn parse_bool(value: Option<&str>) -> Option<bool> {
    let Some(v) = value else {
        return Some(true);
    };
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" | "" => Some(false),
        n if n.bytes().all(|b| b.is_ascii_digit() || b == b'-') => Some(true),
        _ => None,
    }
}

impl GitConfig {
    /// Reads the config that applies in the repository whose git
    /// directory is `git_dir` (system, global and the repository's own).
    pub fn read(git_dir: &Path) -> io::Result<GitConfig> {
        let cmd = git_config(&[OsStr::new("--git-dir"), git_dir.as_os_str()]);
        Ok(Self::parse_z(&list_z(cmd)?))
    }

    /// Reads one config file only (a repository's `config`, without the
    /// system's and the user's).
    pub fn read_file(file: &Path) -> io::Result<GitConfig> {
        let mut cmd = git_config(&[]);
        cmd.arg("--file").arg(file);
        Ok(Self::parse_z(&list_z(cmd)?))
    }

    /// Reads the config that applies in directory `dir`: the repository's
    /// there if it is in one, else the system's and the user's.
    pub fn read_in(dir: &Path) -> io::Result<GitConfig> {
        let mut cmd = git_config(&[]);
        cmd.current_dir(dir);
        Ok(Self::parse_z(&list_z(cmd)?))
    }

    /// Parses `git config --list -z` output (`NAME\nVALUE\0`, or `NAME\0`
    /// for a variable without a value). Names are taken to the form git
    /// lists them in (see [`canonical_name`]).
    pub fn parse_z(out: &[u8]) -> GitConfig {
        let entries = out
            .split(|&b| b == 0)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let e = String::from_utf8_lossy(e);
                match e.split_once('\n') {
                    Some((k, v)) => Entry {
                        name: canonical_name(k),
                        value: Some(v.to_owned()),
                    },
                    None => Entry {
                        name: canonical_name(&e),
                        value: None,
                    },
                }
            })
            .collect();
        GitConfig { entries }
    }

    /// Every variable, in the order git lists them.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The last setting of `name`, which is the one git and git-annex use.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        let name = canonical_name(name);
        self.entries.iter().rev().find(|e| e.name == name)
    }

    /// The value of `name` (the last one set); empty for a variable
    /// without a value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entry(name).map(Entry::text)
    }

    /// Every value of a variable set more than once, in order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        let name = canonical_name(name);
        self.entries
            .iter()
            .filter(|e| e.name == name)
            .map(Entry::text)
            .collect()
    }

    /// `name` as a boolean (see [`parse_bool`]): `None` when it is not set
    /// or is not a boolean.
    pub fn get_bool(&self, name: &str) -> Option<bool> {
        self.entry(name).and_then(Entry::as_bool)
    }

    /// `name` as a boolean, `default` when it is not set or not a
    /// boolean (git-annex's `getbool`).
    pub fn bool_or(&self, name: &str, default: bool) -> bool {
        self.get_bool(name).unwrap_or(default)
    }
}

/// `git config NAME VALUE` in the repository whose git directory is
/// `git_dir`: sets the variable in the repository's own config.
pub fn set(git_dir: &Path, name: &str, value: &str) -> io::Result<()> {
    let out = git_config(&[OsStr::new("--git-dir"), git_dir.as_os_str()])
        .args([name, value])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "git config {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
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
            b"annex.uuid\nabc\0core.bare\nfalse\0Annex.DiskReserve\n1mb\0flag.x\0empty.x\n\0",
        );
        assert_eq!(c.get("annex.uuid"), Some("abc"));
        assert_eq!(c.get("annex.diskreserve"), Some("1mb"));
        assert_eq!(c.get("ANNEX.diskReserve"), Some("1mb"));
        // Without `=`: true, and empty as text; with an empty value: false.
        assert_eq!(c.get("flag.x"), Some(""));
        assert_eq!(c.get_bool("flag.x"), Some(true));
        assert_eq!(c.get_bool("empty.x"), Some(false));
        assert_eq!(c.get_bool("core.bare"), Some(false));
        assert_eq!(c.get_bool("annex.uuid"), None);
        assert!(c.bool_or("annex.uuid", true));
        assert!(!c.bool_or("missing.x", false));
    }

    #[test]
    fn names_compare_as_git_compares_them() {
        assert_eq!(
            canonical_name("Remote.MyRemote.AnnexUrl"),
            "remote.MyRemote.annexurl"
        );
        assert_eq!(canonical_name("remote.a.b.URL"), "remote.a.b.url");
        assert_eq!(canonical_name("Core.Bare"), "core.bare");
        let c = GitConfig::parse_z(b"remote.A.url\n/a\0remote.a.url\n/lower\0");
        assert_eq!(c.get("remote.A.URL"), Some("/a"));
        assert_eq!(c.get("REMOTE.a.url"), Some("/lower"));
    }

    #[test]
    fn last_value_wins_and_all_are_kept() {
        let c = GitConfig::parse_z(
            b"remote.n.annex-cluster-node\nc1\0remote.n.annex-cluster-node\nc2 c3\0remote.n.fetch\0",
        );
        assert_eq!(c.get("remote.n.annex-cluster-node"), Some("c2 c3"));
        assert_eq!(c.get_all("remote.n.annex-cluster-node"), ["c1", "c2 c3"]);
        assert_eq!(c.get_all("remote.n.fetch"), [""]);
        assert!(c.get_all("remote.m.fetch").is_empty());
    }

    #[test]
    fn booleans_as_git_annex_reads_them() {
        for t in [
            None,
            Some("true"),
            Some("YES"),
            Some("On"),
            Some("1"),
            Some("2"),
            Some("-1"),
        ] {
            assert_eq!(parse_bool(t), Some(true), "{t:?}");
        }
        for f in ["false", "No", "OFF", "0", ""] {
            assert_eq!(parse_bool(Some(f)), Some(false), "{f:?}");
        }
        for n in ["maybe", " true", "1.5"] {
            assert_eq!(parse_bool(Some(n)), None, "{n:?}");
        }
    }

    #[test]
    fn reads_what_git_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("config");
        std::fs::write(
            &file,
            "[remote \"Up\"]\n\turl = ../up\n\tannex-ignore\n[Annex]\n\tJobs = 2\n\tjobs = 3\n",
        )
        .unwrap();
        let c = GitConfig::read_file(&file).unwrap();
        assert_eq!(c.get("remote.Up.url"), Some("../up"));
        assert_eq!(c.get("remote.up.url"), None);
        assert_eq!(c.get_bool("remote.Up.annex-ignore"), Some(true));
        assert_eq!(c.get("annex.jobs"), Some("3"));
        assert_eq!(c.get_all("annex.jobs"), ["2", "3"]);
    }
}
