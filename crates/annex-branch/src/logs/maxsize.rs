//! maxsize.log: the maximum size of each repository, in the new
//! UUID-based form (`CLOCK UUID BYTES`).
//!
//! git-annex reads the size leniently as an unbounded integer (see
//! [`super::readish`]); negative sizes read as they are. A size that does
//! not fit an `i128` is not understood here, and its line is kept as
//! unparsed.

use std::collections::BTreeMap;

use annex_types::Uuid;

use super::readish::read_integer;
use super::uuid_based::{LogValue, UuidLog, ValueError};
use crate::clock::VectorClock;

/// A maximum size in bytes, as logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MaxSize(pub i128);

impl LogValue for MaxSize {
    fn parse_value(b: &[u8]) -> Option<Self> {
        read_integer(b).map(MaxSize)
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.to_string().as_bytes());
    }
}

/// maxsize.log as read.
pub type MaxSizeLog = UuidLog<MaxSize>;

/// Parses maxsize.log.
pub fn parse(data: &[u8]) -> MaxSizeLog {
    MaxSizeLog::parse_new(data)
}

/// Writes maxsize.log as git-annex does.
pub fn write(log: &MaxSizeLog) -> Vec<u8> {
    log.write_new()
}

/// Records a repository's maximum size (`git annex maxsize REPO SIZE`).
/// Returns the clock used.
pub fn set(
    log: &mut MaxSizeLog,
    uuid: Uuid,
    size: i128,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    log.set(uuid, MaxSize(size), now)
}

/// The maximum size of each repository that has one.
pub fn max_sizes(log: &MaxSizeLog) -> BTreeMap<Uuid, i128> {
    log.entries
        .iter()
        .map(|(u, e)| (u.clone(), e.value.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    #[test]
    fn reads_and_sets_sizes() {
        let mut log = parse(format!("5s {U2} 100\n6s {U1} 2000000000000\n7s {U2} x\n").as_bytes());
        let u1 = Uuid::parse(U1).unwrap();
        let u2 = Uuid::parse(U2).unwrap();
        assert_eq!(max_sizes(&log)[&u1], 2_000_000_000_000);
        assert_eq!(max_sizes(&log)[&u2], 100);
        set(&mut log, u2, -1, VectorClock::from_secs(3)).unwrap();
        assert_eq!(
            write(&log),
            format!("6s {U1} 2000000000000\n6s {U2} -1\n7s {U2} x\n").as_bytes()
        );
    }
}
