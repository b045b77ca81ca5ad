//! Single-value logs: `CLOCK VALUE` lines, the newest line giving the
//! value (numcopies.log, mincopies.log).
//!
//! git-annex reads such a log into a set of (clock, value) entries and
//! takes the greatest: the newest clock, and among lines with the same
//! clock the greatest value. Setting a value writes a log of that one line,
//! its clock advanced past every line read. After a union merge the file
//! holds several lines until the next change.
//!
//! Lines that do not parse are kept in [`SingleValueLog::unparsed`] and
//! written back after the entries (git-annex drops them when it sets a
//! value; this crate keeps them).

use std::collections::BTreeSet;

use super::presence::lines;
use super::uuid_based::{write_unparsed, Entry, LogValue, Unparsed, ValueError};
use crate::clock::VectorClock;

/// A single-value log as git-annex reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleValueLog<V: Ord> {
    /// Every entry read, each once, ordered by clock then value.
    pub entries: BTreeSet<Entry<V>>,
    /// Lines that did not parse, in file order, each once.
    pub unparsed: Vec<Vec<u8>>,
}

impl<V: Ord> Default for SingleValueLog<V> {
    fn default() -> Self {
        SingleValueLog {
            entries: BTreeSet::new(),
            unparsed: Vec::new(),
        }
    }
}

/// Parses one `CLOCK VALUE` line.
pub fn parse_line<V: LogValue>(line: &[u8]) -> Option<Entry<V>> {
    let sp = line.iter().position(|&b| b == b' ')?;
    Some(Entry {
        clock: VectorClock::parse(&line[..sp])?,
        value: V::parse_value(&line[sp + 1..])?,
    })
}

impl<V: LogValue + Ord> SingleValueLog<V> {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a single-value log.
    pub fn parse(data: &[u8]) -> Self {
        let mut log = SingleValueLog::new();
        let mut unparsed = Unparsed::default();
        for l in lines(data) {
            match parse_line(l) {
                Some(e) => {
                    log.entries.insert(e);
                }
                None => unparsed.push(l),
            }
        }
        log.unparsed = unparsed.into_lines();
        log
    }

    /// Writes the log as git-annex writes a set of entries: one line per
    /// entry, ordered by clock then value; then the lines that did not
    /// parse.
    pub fn write(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            e.clock.write(&mut out);
            out.push(b' ');
            e.value.write_value(&mut out);
            out.push(b'\n');
        }
        write_unparsed(&self.unparsed, &mut out);
        out
    }

    /// The current entry: the newest, the greatest value on a tie.
    pub fn newest_entry(&self) -> Option<&Entry<V>> {
        self.entries.last()
    }

    /// The current value.
    pub fn newest(&self) -> Option<&V> {
        self.newest_entry().map(|e| &e.value)
    }

    /// Sets the value as git-annex's `setLog` does: the log becomes that
    /// one entry, with the clock `now` advanced past every entry's clock.
    /// Returns the clock used. Unparsed lines are kept.
    pub fn set(&mut self, value: V, now: VectorClock) -> Result<VectorClock, ValueError> {
        value.check_value()?;
        let clock = VectorClock::advance(now, self.entries.iter().map(|e| e.clock));
        self.entries = BTreeSet::from([Entry { clock, value }]);
        Ok(clock)
    }

    /// Merges another version of the log into this one: the result is what
    /// parsing the lines of both gives.
    pub fn union(&mut self, other: &SingleValueLog<V>) {
        self.entries.extend(other.entries.iter().cloned());
        let mut u = Unparsed::new(std::mem::take(&mut self.unparsed));
        for l in &other.unparsed {
            u.push(l);
        }
        self.unparsed = u.into_lines();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl LogValue for u8 {
        fn parse_value(b: &[u8]) -> Option<Self> {
            std::str::from_utf8(b).ok()?.parse().ok()
        }
        fn write_value(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(self.to_string().as_bytes());
        }
    }

    fn t(s: i64) -> VectorClock {
        VectorClock::from_secs(s)
    }

    #[test]
    fn newest_wins_then_greatest_value() {
        let log = SingleValueLog::<u8>::parse(b"10s 3\n12s 2\n12s 1\nbad\n5s 9\n");
        assert_eq!(log.newest(), Some(&2));
        assert_eq!(log.write(), b"5s 9\n10s 3\n12s 1\n12s 2\nbad\n");
        assert_eq!(SingleValueLog::<u8>::parse(b"").newest(), None);
    }

    #[test]
    fn set_replaces_every_entry() {
        let mut log = SingleValueLog::<u8>::parse(b"10s 3\n12s 2\n");
        assert_eq!(log.set(4, t(11)).unwrap(), t(13));
        assert_eq!(log.write(), b"13s 4\n");
        assert_eq!(log.set(5, t(20)).unwrap(), t(20));
        assert_eq!(log.write(), b"20s 5\n");
    }

    #[test]
    fn union_is_parsing_both() {
        let a = b"10s 3\nx\n".as_slice();
        let b = b"12s 2\nx\ny\n".as_slice();
        let mut m = SingleValueLog::<u8>::parse(a);
        m.union(&SingleValueLog::parse(b));
        assert_eq!(m, SingleValueLog::parse(&[a, b].concat()));
        assert_eq!(m.newest(), Some(&2));
    }
}
