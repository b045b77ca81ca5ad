//! trust.log: the trust level of each repository, in the old UUID-based
//! form (`UUID LEVEL timestamp=CLOCK`).
//!
//! git-annex writes a level as one character: `1` trusted, `0` untrusted,
//! `X` dead, `?` semitrusted. It reads any other single character as
//! semitrusted (room for levels yet to come) and an empty value as trusted
//! (the log once listed only trusted repositories); a longer value makes
//! the line unreadable. A repository without a line is semitrusted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use annex_types::Uuid;
use thiserror::Error;

use super::uuid_based::{LogValue, UuidLog, ValueError};
use crate::clock::VectorClock;

/// How far a repository is trusted to keep its content, ordered as in
/// git-annex: dead is the least trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TrustLevel {
    /// `dead`: the repository is gone, its copies do not count.
    Dead,
    /// `untrusted`: its copies are not counted on.
    Untrusted,
    /// `semitrusted`: the default.
    #[default]
    Semitrusted,
    /// `trusted`: its copies are counted on without checking.
    Trusted,
}

impl TrustLevel {
    /// Every level, least trusted first.
    pub const ALL: [TrustLevel; 4] = [
        TrustLevel::Dead,
        TrustLevel::Untrusted,
        TrustLevel::Semitrusted,
        TrustLevel::Trusted,
    ];

    /// The name git-annex shows and accepts (`trusted`, `untrusted`,
    /// `semitrusted`, `dead`).
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Trusted => "trusted",
            TrustLevel::Untrusted => "untrusted",
            TrustLevel::Semitrusted => "semitrusted",
            TrustLevel::Dead => "dead",
        }
    }

    /// The character trust.log holds for the level.
    pub fn log_char(self) -> u8 {
        match self {
            TrustLevel::Trusted => b'1',
            TrustLevel::Untrusted => b'0',
            TrustLevel::Dead => b'X',
            TrustLevel::Semitrusted => b'?',
        }
    }
}

impl fmt::Display for TrustLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a trust level.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("not a trust level: {0:?} (trusted, semitrusted, untrusted or dead)")]
pub struct UnknownTrustLevel(pub String);

impl FromStr for TrustLevel {
    type Err = UnknownTrustLevel;

    /// Reads a level's name as git-annex does (exactly, lower case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrustLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownTrustLevel(s.to_string()))
    }
}

impl LogValue for TrustLevel {
    fn parse_value(b: &[u8]) -> Option<Self> {
        match b {
            [] => Some(TrustLevel::Trusted),
            [b'1'] => Some(TrustLevel::Trusted),
            [b'0'] => Some(TrustLevel::Untrusted),
            [b'X'] => Some(TrustLevel::Dead),
            [_] => Some(TrustLevel::Semitrusted),
            _ => None,
        }
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        out.push(self.log_char());
    }
}

/// trust.log as read.
pub type TrustLog = UuidLog<TrustLevel>;

/// Parses trust.log.
pub fn parse(data: &[u8]) -> TrustLog {
    TrustLog::parse_old(data)
}

/// Writes trust.log as git-annex does.
pub fn write(log: &TrustLog) -> Vec<u8> {
    log.write_old()
}

/// Sets a repository's trust level, as `git annex trust` and the like do.
/// Returns the clock used.
pub fn set(
    log: &mut TrustLog,
    uuid: Uuid,
    level: TrustLevel,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    log.set(uuid, level, now)
}

/// The level logged for each repository (git-annex's trust map before
/// git config and command-line overrides).
pub fn trust_map(log: &TrustLog) -> BTreeMap<Uuid, TrustLevel> {
    log.simple_map()
}

/// A repository's trust level: semitrusted when nothing is logged.
pub fn lookup(log: &TrustLog, uuid: &Uuid) -> TrustLevel {
    log.get(uuid).copied().unwrap_or_default()
}

/// The repositories logged at a level (for semitrusted, only those with a
/// line saying so).
pub fn with_level(log: &TrustLog, level: TrustLevel) -> BTreeSet<Uuid> {
    log.entries
        .iter()
        .filter(|(_, e)| e.value == level)
        .map(|(u, _)| u.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";
    const U3: &str = "33333333-3333-3333-3333-333333333333";

    #[test]
    fn reads_every_form_git_annex_reads() {
        let log = parse(
            format!(
                "{U1} X timestamp=5s\n{U2} Z timestamp=5s\n{U3}\n\
                 44444444-4444-4444-4444-444444444444 10 timestamp=5s\n"
            )
            .as_bytes(),
        );
        let m = trust_map(&log);
        assert_eq!(m[&Uuid::parse(U1).unwrap()], TrustLevel::Dead);
        assert_eq!(m[&Uuid::parse(U2).unwrap()], TrustLevel::Semitrusted);
        assert_eq!(m[&Uuid::parse(U3).unwrap()], TrustLevel::Trusted);
        assert_eq!(m.len(), 3);
        assert_eq!(log.unparsed.len(), 1);
        assert_eq!(
            write(&log),
            format!(
                "{U1} X timestamp=5s\n{U2} ? timestamp=5s\n{U3} 1\n\
                 44444444-4444-4444-4444-444444444444 10 timestamp=5s\n"
            )
            .as_bytes()
        );
        assert_eq!(
            lookup(&log, &Uuid::parse("55555555").unwrap()),
            TrustLevel::Semitrusted
        );
        assert_eq!(
            with_level(&log, TrustLevel::Dead),
            BTreeSet::from([Uuid::parse(U1).unwrap()])
        );
    }

    #[test]
    fn names() {
        for l in TrustLevel::ALL {
            assert_eq!(l.as_str().parse::<TrustLevel>().unwrap(), l);
            assert_eq!(TrustLevel::parse_value(&[l.log_char()]), Some(l));
        }
        assert!("Trusted".parse::<TrustLevel>().is_err());
        assert!(TrustLevel::Dead < TrustLevel::Untrusted);
        assert!(TrustLevel::Semitrusted < TrustLevel::Trusted);
    }
}
