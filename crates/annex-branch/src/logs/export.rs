//! export.log: what each repository exported to each special remote with
//! `exporttree=yes`, in the new UUID-based form
//! (`CLOCK FROM-UUID:TO-UUID TREE [INCOMPLETE-TREE...]`).
//!
//! The field is the pair of the exporting repository and the remote; the
//! value is the tree exported, followed by the trees whose export began
//! and did not finish (git-annex's `recordExportBeginning` adds the new
//! tree there before it changes anything in the remote, and
//! `recordExportUnderway` records it as the exported tree once the old
//! files are renamed or removed). Trees are git object names as git-annex
//! writes them; they are kept as text.
//!
//! The tree a remote holds is what every repository's line for it says
//! (see [`exported_trees`]): one tree, or several when two repositories
//! exported different trees (an export conflict).

use std::collections::BTreeMap;

use annex_types::Uuid;

use super::uuid_based::{Entry, LogField, LogValue, MapLog, ValueError};
use crate::clock::VectorClock;

/// The tree git-annex records as exported before anything was: git's
/// empty tree.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Who exported to which remote: the field of an export.log line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Participants {
    /// The repository that exported.
    pub from: Uuid,
    /// The special remote exported to.
    pub to: Uuid,
}

impl LogField for Participants {
    fn parse_field(b: &[u8]) -> Option<Self> {
        // The first UUID goes up to the first `:`, the second is the rest;
        // neither may be empty.
        let colon = b.iter().position(|&c| c == b':')?;
        let (from, to) = (&b[..colon], &b[colon + 1..]);
        if from.is_empty() || to.is_empty() {
            return None;
        }
        Some(Participants {
            from: Uuid::parse_field(from)?,
            to: Uuid::parse_field(to)?,
        })
    }

    fn write_field(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.from.as_str().as_bytes());
        out.push(b':');
        out.extend_from_slice(self.to.as_str().as_bytes());
    }

    fn check_field(&self) -> Result<(), ValueError> {
        if self.from.as_str().contains(':') {
            return Err(ValueError::BadProxyUuid(self.from.clone()));
        }
        Ok(())
    }
}

/// What one repository exported to a remote.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Exported {
    /// The tree exported.
    pub tree: String,
    /// Trees whose export began and did not finish.
    pub incomplete: Vec<String>,
}

impl Exported {
    /// A finished export of `tree`.
    pub fn of(tree: impl Into<String>) -> Exported {
        Exported {
            tree: tree.into(),
            incomplete: Vec::new(),
        }
    }
}

impl LogValue for Exported {
    /// Words separated by single spaces, one space allowed at the end, as
    /// git-annex's parser takes them; at least one.
    fn parse_value(b: &[u8]) -> Option<Self> {
        let b = b.strip_suffix(b" ").unwrap_or(b);
        let mut words = Vec::new();
        for w in b.split(|&c| c == b' ') {
            if w.is_empty() {
                return None;
            }
            words.push(String::from_utf8(w.to_vec()).ok()?);
        }
        let mut words = words.into_iter();
        Some(Exported {
            tree: words.next()?,
            incomplete: words.collect(),
        })
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.tree.as_bytes());
        for t in &self.incomplete {
            out.push(b' ');
            out.extend_from_slice(t.as_bytes());
        }
    }

    fn check_value(&self) -> Result<(), ValueError> {
        for t in std::iter::once(&self.tree).chain(&self.incomplete) {
            if t.is_empty() || t.contains([' ', '\n', '\r']) {
                return Err(ValueError::LineBreak {
                    what: "an exported tree",
                    text: t.clone(),
                });
            }
        }
        Ok(())
    }
}

/// export.log as read.
pub type ExportLog = MapLog<Participants, Exported>;

/// Parses export.log.
pub fn parse(data: &[u8]) -> ExportLog {
    ExportLog::parse_new(data)
}

/// Writes export.log as git-annex does.
pub fn write(log: &ExportLog) -> Vec<u8> {
    log.write_new()
}

/// Every repository's export to the remote `to`, by exporting repository.
pub fn exports_to<'a>(log: &'a ExportLog, to: &Uuid) -> BTreeMap<&'a Uuid, &'a Exported> {
    log.entries
        .iter()
        .filter(|(p, _)| &p.to == to)
        .map(|(p, e)| (&p.from, &e.value))
        .collect()
}

/// The trees exported to `to` (git-annex's `exportedTreeishes`): none
/// before any export, one normally, several after an export conflict;
/// each once, in the order of the exporting repositories.
pub fn exported_trees(log: &ExportLog, to: &Uuid) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in exports_to(log, to).values() {
        if !out.contains(&e.tree) {
            out.push(e.tree.clone());
        }
    }
    out
}

/// The trees whose export to `to` began and did not finish, from every
/// repository's line (git-annex's `incompleteExportedTreeishes`).
pub fn incomplete_trees(log: &ExportLog, to: &Uuid) -> Vec<String> {
    exports_to(log, to)
        .values()
        .flat_map(|e| e.incomplete.iter().cloned())
        .collect()
}

/// Records that `here` begins exporting `tree` to `to`, before changing
/// anything in the remote (git-annex's `recordExportBeginning`): the tree
/// exported so far stays (the empty tree when there was none) and `tree`
/// is added first to the incomplete ones. Returns the clock used.
pub fn record_beginning(
    log: &mut ExportLog,
    here: &Uuid,
    to: &Uuid,
    tree: &str,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    let p = Participants {
        from: here.clone(),
        to: to.clone(),
    };
    let old = log
        .get(&p)
        .cloned()
        .unwrap_or_else(|| Exported::of(EMPTY_TREE));
    let mut incomplete = vec![tree.to_owned()];
    for t in old.incomplete {
        if !incomplete.contains(&t) {
            incomplete.push(t);
        }
    }
    log.set(
        p,
        Exported {
            tree: old.tree,
            incomplete,
        },
        now,
    )
}

/// Records that `here` exported `new` to `to` in place of the trees in
/// `old` (git-annex's `recordExportUnderway`): its own line says `new`
/// with nothing incomplete, and other repositories' lines that said one
/// of `old` move on to `new` too, so that repositories exporting in
/// lock-step do not conflict. Returns the clock of `here`'s line.
pub fn record_underway(
    log: &mut ExportLog,
    here: &Uuid,
    to: &Uuid,
    old: &[String],
    new: &str,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    let exported = Exported::of(new);
    exported.check_value()?;
    for (p, e) in log.entries.iter_mut() {
        if &p.from == here || &p.to != to || !old.contains(&e.value.tree) {
            continue;
        }
        *e = Entry {
            clock: VectorClock::advance(now, [e.clock]),
            value: Exported {
                tree: new.to_owned(),
                incomplete: e.value.incomplete.clone(),
            },
        };
    }
    log.set(
        Participants {
            from: here.clone(),
            to: to.clone(),
        },
        exported,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: &str = "6600d86e-3e3d-4286-a013-196f7f6fc831";
    const OTHER: &str = "11111111-1111-1111-1111-111111111111";
    const REMOTE: &str = "5cf391c0-9b13-4387-ac73-e690628ea6fd";
    const T1: &str = "0847467f02f9c969014e89856b125bfea0d642a0";
    const T2: &str = "de650f891eba1ff19ad9ee6152cc3a94e1bee1a1";

    fn u(s: &str) -> Uuid {
        Uuid::parse(s).unwrap()
    }

    fn t(s: i64) -> VectorClock {
        VectorClock::from_secs(s)
    }

    /// A line as `git annex export master --to dexp` (10.20250416) wrote
    /// it reads and writes back byte for byte.
    #[test]
    fn git_annex_line_round_trips() {
        let line = format!("1796672201s {HERE}:{REMOTE} {T1}\n");
        let log = parse(line.as_bytes());
        assert_eq!(exported_trees(&log, &u(REMOTE)), vec![T1.to_string()]);
        assert!(incomplete_trees(&log, &u(REMOTE)).is_empty());
        assert_eq!(write(&log), line.as_bytes());
        let with_incomplete = format!("5s {HERE}:{REMOTE} {T1} {T2}\n");
        let log = parse(with_incomplete.as_bytes());
        assert_eq!(incomplete_trees(&log, &u(REMOTE)), vec![T2.to_string()]);
        assert_eq!(write(&log), with_incomplete.as_bytes());
    }

    #[test]
    fn values_are_read_as_git_annex_reads_them() {
        let log = parse(format!("5s {HERE}:{REMOTE} {T1} \n").as_bytes());
        assert_eq!(log.entries.len(), 1);
        for bad in [
            format!("5s {HERE}:{REMOTE} {T1}  {T2}\n"),
            format!("5s {HERE}:{REMOTE} \n"),
            format!("5s {HERE}{REMOTE} {T1}\n"),
            format!("5s :{REMOTE} {T1}\n"),
        ] {
            let log = parse(bad.as_bytes());
            assert!(log.entries.is_empty(), "{bad}");
            assert_eq!(write(&log), bad.as_bytes());
        }
    }

    #[test]
    fn beginning_then_underway_as_git_annex_records_them() {
        let mut log = ExportLog::new();
        let (here, remote) = (u(HERE), u(REMOTE));
        record_beginning(&mut log, &here, &remote, T1, t(10)).unwrap();
        assert_eq!(
            write(&log),
            format!("10s {HERE}:{REMOTE} {EMPTY_TREE} {T1}\n").as_bytes()
        );
        // The empty tree counts as exported meanwhile, as in git-annex.
        assert_eq!(exported_trees(&log, &remote), vec![EMPTY_TREE.to_string()]);
        record_underway(&mut log, &here, &remote, &[], T1, t(10)).unwrap();
        assert_eq!(
            write(&log),
            format!("11s {HERE}:{REMOTE} {T1}\n").as_bytes()
        );
        record_beginning(&mut log, &here, &remote, T2, t(20)).unwrap();
        record_beginning(&mut log, &here, &remote, T2, t(21)).unwrap();
        assert_eq!(
            write(&log),
            format!("21s {HERE}:{REMOTE} {T1} {T2}\n").as_bytes()
        );
    }

    #[test]
    fn other_repositories_in_lock_step_move_on_too() {
        let (here, other, remote) = (u(HERE), u(OTHER), u(REMOTE));
        let mut log = parse(
            format!("5s {OTHER}:{REMOTE} {T1}\n6s {HERE}:{REMOTE} {T1}\n7s {OTHER}:{HERE} {T1}\n")
                .as_bytes(),
        );
        record_underway(&mut log, &here, &remote, &[T1.to_string()], T2, t(5)).unwrap();
        assert_eq!(exported_trees(&log, &remote), vec![T2.to_string()]);
        // The other remote's line is left alone.
        assert_eq!(
            log.get(&Participants {
                from: other.clone(),
                to: here.clone()
            })
            .unwrap()
            .tree,
            T1
        );
        assert_eq!(
            write(&log),
            format!("6s {OTHER}:{REMOTE} {T2}\n7s {OTHER}:{HERE} {T1}\n7s {HERE}:{REMOTE} {T2}\n")
                .as_bytes()
        );
    }
}
