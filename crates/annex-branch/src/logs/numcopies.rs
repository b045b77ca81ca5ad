//! numcopies.log and mincopies.log: the global numcopies and mincopies
//! settings, single-value logs of `CLOCK NUMBER` lines.
//!
//! git-annex reads the number leniently (see [`super::readish`]: `3abc`
//! is 3, `(3)` is 3, `0x10` is 16), as a 64-bit integer, and takes any
//! number below 1 as 1.

use super::readish::read_int;
use super::single_value::SingleValueLog;
use super::uuid_based::{LogValue, ValueError};
use crate::clock::VectorClock;

/// A number of copies: at least 1 (and at most `i64::MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Copies(u64);

impl Copies {
    /// A number of copies; refuses 0 and numbers beyond `i64::MAX`, as
    /// `git annex numcopies` refuses 0.
    pub fn new(n: u64) -> Result<Copies, ValueError> {
        if n == 0 || i64::try_from(n).is_err() {
            Err(ValueError::BadCopies(n))
        } else {
            Ok(Copies(n))
        }
    }

    /// git-annex's reading of a logged number: below 1 counts as 1.
    pub fn configured(n: i64) -> Copies {
        Copies(u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl LogValue for Copies {
    fn parse_value(b: &[u8]) -> Option<Self> {
        read_int(b).map(Copies::configured)
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.to_string().as_bytes());
    }

    fn check_value(&self) -> Result<(), ValueError> {
        Copies::new(self.0).map(|_| ())
    }
}

/// numcopies.log or mincopies.log as read.
pub type CopiesLog = SingleValueLog<Copies>;

/// Parses numcopies.log or mincopies.log.
pub fn parse(data: &[u8]) -> CopiesLog {
    CopiesLog::parse(data)
}

/// Writes numcopies.log or mincopies.log as git-annex writes the entries
/// it holds.
pub fn write(log: &CopiesLog) -> Vec<u8> {
    log.write()
}

/// The configured number, if any.
pub fn get(log: &CopiesLog) -> Option<u64> {
    log.newest().map(|c| c.get())
}

/// Sets the number as `git annex numcopies N` (or `mincopies`) does:
/// nothing is logged when it is already the current value (then `None` is
/// returned); otherwise the log becomes one line with `now` advanced past
/// every logged clock, which is returned.
pub fn set(
    log: &mut CopiesLog,
    n: u64,
    now: VectorClock,
) -> Result<Option<VectorClock>, ValueError> {
    let c = Copies::new(n)?;
    if log.newest() == Some(&c) {
        return Ok(None);
    }
    log.set(c, now).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_leniently_and_clamps() {
        assert_eq!(get(&parse(b"5s 3\n")), Some(3));
        assert_eq!(get(&parse(b"5s 0\n")), Some(1));
        assert_eq!(get(&parse(b"5s -4\n")), Some(1));
        assert_eq!(get(&parse(b"5s  (7)x\n")), Some(7));
        assert_eq!(get(&parse(b"5s x\n")), None);
        assert_eq!(get(&parse(b"5s 2\n5s 9\n4s 10\n")), Some(9));
        assert_eq!(write(&parse(b"5s 0\n5s 1\n")), b"5s 1\n");
    }

    #[test]
    fn set_only_when_changed() {
        let mut log = parse(b"5s 3\n6s 2\n");
        let t = VectorClock::from_secs(6);
        assert_eq!(set(&mut log, 2, t), Ok(None));
        assert_eq!(set(&mut log, 4, t), Ok(Some(VectorClock::from_secs(7))));
        assert_eq!(write(&log), b"7s 4\n");
        assert_eq!(set(&mut log, 0, t), Err(ValueError::BadCopies(0)));
        assert!(Copies::new(u64::MAX).is_err());
    }
}
