//! group.log: the groups each repository is in, in the old UUID-based form
//! (`UUID GROUP GROUP... timestamp=CLOCK`).
//!
//! The groups are written in byte order, separated by single spaces; a
//! repository taken out of every group keeps a line with no group
//! (`UUID  timestamp=CLOCK`). Extra spaces are ignored when reading.

use std::collections::{BTreeMap, BTreeSet};

use annex_types::Uuid;

use super::uuid_based::{LogValue, UuidLog, ValueError};
use crate::clock::VectorClock;

/// The groups of one repository.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Groups(pub BTreeSet<String>);

impl Groups {
    /// Whether a group name can be written: not empty, no space, no line
    /// break.
    pub fn check_name(name: &str) -> Result<(), ValueError> {
        if name.is_empty() || name.contains([' ', '\n', '\r']) {
            Err(ValueError::BadGroupName(name.to_string()))
        } else {
            Ok(())
        }
    }
}

impl LogValue for Groups {
    fn parse_value(b: &[u8]) -> Option<Self> {
        Some(Groups(
            std::str::from_utf8(b)
                .ok()?
                .split(' ')
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect(),
        ))
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(g.as_bytes());
        }
    }

    fn check_value(&self) -> Result<(), ValueError> {
        self.0.iter().try_for_each(|g| Groups::check_name(g))
    }
}

/// group.log as read.
pub type GroupLog = UuidLog<Groups>;

/// Parses group.log.
pub fn parse(data: &[u8]) -> GroupLog {
    GroupLog::parse_old(data)
}

/// Writes group.log as git-annex does.
pub fn write(log: &GroupLog) -> Vec<u8> {
    log.write_old()
}

/// The groups of a repository (none when it has no line).
pub fn lookup(log: &GroupLog, uuid: &Uuid) -> BTreeSet<String> {
    log.get(uuid).map(|g| g.0.clone()).unwrap_or_default()
}

/// Changes a repository's groups, as git-annex's `groupChange` does: the
/// new set is logged even when it is the same. Returns the clock used.
pub fn change(
    log: &mut GroupLog,
    uuid: Uuid,
    f: impl FnOnce(&mut BTreeSet<String>),
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    let mut groups = lookup(log, &uuid);
    f(&mut groups);
    log.set(uuid, Groups(groups), now)
}

/// Puts a repository in a group (`git annex group REPO GROUP`).
pub fn add(
    log: &mut GroupLog,
    uuid: Uuid,
    group: &str,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    Groups::check_name(group)?;
    change(
        log,
        uuid,
        |g| {
            g.insert(group.to_string());
        },
        now,
    )
}

/// Takes a repository out of a group (`git annex ungroup REPO GROUP`).
pub fn remove(
    log: &mut GroupLog,
    uuid: Uuid,
    group: &str,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    change(
        log,
        uuid,
        |g| {
            g.remove(group);
        },
        now,
    )
}

/// The groups of each repository that has a line.
pub fn groups_by_uuid(log: &GroupLog) -> BTreeMap<Uuid, BTreeSet<String>> {
    log.entries
        .iter()
        .map(|(u, e)| (u.clone(), e.value.0.clone()))
        .collect()
}

/// The repositories in each group (git-annex's `groupsByUUID` turned
/// around); groups with no repository are absent.
pub fn uuids_by_group(log: &GroupLog) -> BTreeMap<String, BTreeSet<Uuid>> {
    let mut m: BTreeMap<String, BTreeSet<Uuid>> = BTreeMap::new();
    for (u, e) in &log.entries {
        for g in &e.value.0 {
            m.entry(g.clone()).or_default().insert(u.clone());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    #[test]
    fn reads_and_changes_groups() {
        let u1 = Uuid::parse(U1).unwrap();
        let u2 = Uuid::parse(U2).unwrap();
        let mut log = parse(format!("{U1}  b  a timestamp=5s\n{U2}  timestamp=6s\n").as_bytes());
        assert_eq!(
            lookup(&log, &u1),
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
        assert!(lookup(&log, &u2).is_empty());
        assert_eq!(
            write(&log),
            format!("{U1} a b timestamp=5s\n{U2}  timestamp=6s\n").as_bytes()
        );
        let t = VectorClock::from_secs(10);
        add(&mut log, u2.clone(), "c", t).unwrap();
        remove(&mut log, u1.clone(), "a", t).unwrap();
        remove(&mut log, u1.clone(), "b", t).unwrap();
        assert_eq!(
            write(&log),
            format!("{U1}  timestamp=11s\n{U2} c timestamp=10s\n").as_bytes()
        );
        assert_eq!(uuids_by_group(&log)["c"], BTreeSet::from([u2.clone()]));
        assert!(add(&mut log, u2.clone(), "x y", t).is_err());
        assert!(add(&mut log, u2, "", t).is_err());
    }
}
