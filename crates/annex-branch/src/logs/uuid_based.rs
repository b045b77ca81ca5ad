//! UUID-based logs and map logs: one current value per field (a UUID, or
//! a group name), the newest line winning.
//!
//! git-annex writes these in two forms:
//!
//! - the old form, `UUID VALUE timestamp=CLOCK` (uuid.log, remote.log,
//!   trust.log, group.log, preferred-content.log, required-content.log).
//!   Very old lines have no ` timestamp=` at the end; their clock is
//!   [`VectorClock::Unknown`] and they are written back without one;
//! - the new form, `CLOCK FIELD VALUE` (proxy.log, cluster.log,
//!   maxsize.log, and, with a group name as the field,
//!   group-preferred-content.log).
//!
//! For each field, the line with the newest clock wins; when two lines
//! carry the same clock, the later line in the file wins (git-annex's
//! `MapLog`). A compacted log holds one line per field, in field order
//! (byte order of the field), which is how git-annex writes it.
//!
//! Merging two versions of a log (what git-annex's union merge amounts to)
//! is concatenating their lines and parsing the result: see
//! [`MapLog::union`], which gives the same map as parsing the
//! concatenation, and [`crate::logs::union`] for the exact bytes git-annex
//! leaves on the branch after a merge.
//!
//! Lines that do not parse are skipped, as git-annex skips them, but kept
//! in [`MapLog::unparsed`] and written back after the parsed lines, so a
//! rewrite never loses what a newer git-annex wrote. (git-annex itself
//! drops them when it rewrites a log.) Lines whose field this crate cannot
//! hold (a UUID with a tab in it, an empty UUID, text that is not UTF-8)
//! are kept the same way.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use annex_types::Uuid;
use thiserror::Error;

use super::presence::lines;
use crate::clock::VectorClock;

/// A value with the clock of the line that set it.
///
/// Ordered by clock, then value, as git-annex orders the entries of
/// single-value logs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry<V> {
    /// When the value was set.
    pub clock: VectorClock,
    /// The value.
    pub value: V,
}

/// Why a value cannot be written to a log.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ValueError {
    /// The text holds a line break, which would end the log line.
    #[error("{what} cannot hold a line break: {text:?}")]
    LineBreak {
        /// What the text is.
        what: &'static str,
        /// The text.
        text: String,
    },
    /// A group name is empty or holds a space, so it would not read back
    /// as the same group.
    #[error("not a usable group name: {0:?}")]
    BadGroupName(String),
    /// A remote config key holds whitespace or `=`, so it would not read
    /// back as the same key.
    #[error("not a usable remote config key: {0:?}")]
    BadConfigKey(String),
    /// A proxied remote's name is empty or holds a space.
    #[error("not a usable proxied remote name: {0:?}")]
    BadProxyName(String),
    /// A proxied remote's UUID holds a `:`, which separates it from the
    /// name in proxy.log.
    #[error("a proxied remote's UUID cannot hold ':': {0}")]
    BadProxyUuid(Uuid),
    /// A cluster was named by a UUID that is not a cluster UUID.
    #[error("not a cluster UUID: {0}")]
    NotACluster(Uuid),
    /// numcopies and mincopies cannot be set below 1.
    #[error("the number of copies must be between 1 and {max}, not {0}", max = i64::MAX)]
    BadCopies(u64),
}

/// Checks that a text has no line break in it.
pub(crate) fn no_line_break(what: &'static str, text: &str) -> Result<(), ValueError> {
    if text.contains(['\n', '\r']) {
        Err(ValueError::LineBreak {
            what,
            text: text.to_string(),
        })
    } else {
        Ok(())
    }
}

/// The field of a map log line: what a value is about.
pub trait LogField: Ord + Clone + fmt::Debug {
    /// Parses the field from its bytes (never holding a space); `None`
    /// when this is not a field of this kind.
    fn parse_field(b: &[u8]) -> Option<Self>;
    /// Appends the field as git-annex writes it.
    fn write_field(&self, out: &mut Vec<u8>);
    /// Whether the field can be written so that it reads back the same.
    fn check_field(&self) -> Result<(), ValueError> {
        Ok(())
    }
}

/// The value of a log line.
pub trait LogValue: Clone + PartialEq + fmt::Debug {
    /// Parses a value from the bytes git-annex hands its value parser;
    /// `None` when git-annex's parser fails (the line is then skipped).
    fn parse_value(b: &[u8]) -> Option<Self>;
    /// Appends the value as git-annex writes it.
    fn write_value(&self, out: &mut Vec<u8>);
    /// Whether the value can be written so that it reads back the same.
    fn check_value(&self) -> Result<(), ValueError> {
        Ok(())
    }
}

impl LogField for Uuid {
    fn parse_field(b: &[u8]) -> Option<Self> {
        Uuid::parse(std::str::from_utf8(b).ok()?).ok()
    }

    fn write_field(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_str().as_bytes());
    }
}

/// A group name as the field of group-preferred-content.log: any text
/// without a space (even empty, as git-annex reads it).
impl LogField for String {
    fn parse_field(b: &[u8]) -> Option<Self> {
        String::from_utf8(b.to_vec()).ok()
    }

    fn write_field(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn check_field(&self) -> Result<(), ValueError> {
        if self.contains([' ', '\n', '\r']) {
            Err(ValueError::BadGroupName(self.clone()))
        } else {
            Ok(())
        }
    }
}

/// Text kept as it is (descriptions, preferred content expressions): the
/// rest of the line, which must be UTF-8.
impl LogValue for String {
    fn parse_value(b: &[u8]) -> Option<Self> {
        String::from_utf8(b.to_vec()).ok()
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn check_value(&self) -> Result<(), ValueError> {
        no_line_break("a log value", self)
    }
}

/// A map log: the current entry for each field, and the lines that did not
/// parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapLog<K, V> {
    /// The winning entry of each field.
    pub entries: BTreeMap<K, Entry<V>>,
    /// Lines that did not parse, in file order, each once: written back
    /// after the parsed lines.
    pub unparsed: Vec<Vec<u8>>,
}

/// A map log whose fields are repository UUIDs.
pub type UuidLog<V> = MapLog<Uuid, V>;

impl<K, V> Default for MapLog<K, V> {
    fn default() -> Self {
        MapLog {
            entries: BTreeMap::new(),
            unparsed: Vec::new(),
        }
    }
}

/// Collects lines that did not parse, each once, in order.
#[derive(Default)]
pub(crate) struct Unparsed {
    lines: Vec<Vec<u8>>,
    seen: HashSet<Vec<u8>>,
}

impl Unparsed {
    pub(crate) fn new(existing: Vec<Vec<u8>>) -> Self {
        let mut u = Unparsed::default();
        for l in existing {
            u.push(&l);
        }
        u
    }

    pub(crate) fn push(&mut self, line: &[u8]) {
        if self.seen.insert(line.to_vec()) {
            self.lines.push(line.to_vec());
        }
    }

    pub(crate) fn into_lines(self) -> Vec<Vec<u8>> {
        self.lines
    }
}

/// Writes lines that did not parse back, each with its newline.
pub(crate) fn write_unparsed(unparsed: &[Vec<u8>], out: &mut Vec<u8>) {
    for l in unparsed {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
}

/// Splits the part of an old-form line after the UUID (empty, or starting
/// with a space) into the value and the clock, as git-annex does: the last
/// word is the clock when it is `timestamp=` and a clock; the value is the
/// words before it, separated by single spaces as they were.
fn split_old(rest: &[u8]) -> (&[u8], VectorClock) {
    if let Some(p) = rest.iter().rposition(|&b| b == b' ') {
        if let Some(c) = rest[p..]
            .strip_prefix(b" timestamp=")
            .and_then(VectorClock::parse)
        {
            return (rest.get(1..p).unwrap_or(&[]), c);
        }
    }
    (rest.get(1..).unwrap_or(&[]), VectorClock::Unknown)
}

/// Parses one old-form line: `UUID[ VALUE][ timestamp=CLOCK]`.
pub fn parse_old_line<V: LogValue>(line: &[u8]) -> Option<(Uuid, Entry<V>)> {
    let sp = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let uuid = Uuid::parse_field(&line[..sp])?;
    let (value, clock) = split_old(&line[sp..]);
    Some((
        uuid,
        Entry {
            clock,
            value: V::parse_value(value)?,
        },
    ))
}

/// Parses one new-form line: `CLOCK FIELD VALUE`.
pub fn parse_new_line<K: LogField, V: LogValue>(line: &[u8]) -> Option<(K, Entry<V>)> {
    let sp = line.iter().position(|&b| b == b' ')?;
    let clock = VectorClock::parse(&line[..sp])?;
    let rest = &line[sp + 1..];
    let sp = rest.iter().position(|&b| b == b' ')?;
    let field = K::parse_field(&rest[..sp])?;
    let value = V::parse_value(&rest[sp + 1..])?;
    Some((field, Entry { clock, value }))
}

impl<K: LogField, V: LogValue> MapLog<K, V> {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn parse_with(data: &[u8], parse_line: impl Fn(&[u8]) -> Option<(K, Entry<V>)>) -> Self {
        let mut log = MapLog::new();
        let mut unparsed = Unparsed::default();
        for l in lines(data) {
            match parse_line(l) {
                Some((k, e)) => {
                    log.add(k, e);
                }
                None => unparsed.push(l),
            }
        }
        log.unparsed = unparsed.into_lines();
        log
    }

    /// Parses a new-form log (`CLOCK FIELD VALUE` lines).
    pub fn parse_new(data: &[u8]) -> Self {
        Self::parse_with(data, parse_new_line)
    }

    /// Writes a new-form log as git-annex does: one line per field, in
    /// field order; then the lines that did not parse.
    pub fn write_new(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, e) in &self.entries {
            e.clock.write(&mut out);
            out.push(b' ');
            k.write_field(&mut out);
            out.push(b' ');
            e.value.write_value(&mut out);
            out.push(b'\n');
        }
        write_unparsed(&self.unparsed, &mut out);
        out
    }

    /// The current value of a field.
    pub fn get(&self, field: &K) -> Option<&V> {
        self.entries.get(field).map(|e| &e.value)
    }

    /// The current entry of a field, with its clock.
    pub fn entry(&self, field: &K) -> Option<&Entry<V>> {
        self.entries.get(field)
    }

    /// Sets a field's value as git-annex's `changeLog` does: the clock is
    /// `now`, or one second past the field's current clock when that is
    /// not older. Returns the clock used. Other fields are left alone.
    ///
    /// `now` should be a time ([`VectorClock::now`]), as git-annex's
    /// candidate clocks always are.
    pub fn set(&mut self, field: K, value: V, now: VectorClock) -> Result<VectorClock, ValueError> {
        field.check_field()?;
        value.check_value()?;
        let clock = VectorClock::advance(now, self.entries.get(&field).map(|e| e.clock));
        self.entries.insert(field, Entry { clock, value });
        Ok(clock)
    }

    /// Adds an entry unless the field's current entry is newer, as
    /// git-annex's `addMapLog` does (on equal clocks, the added entry
    /// wins). Returns whether it was added.
    pub fn add(&mut self, field: K, entry: Entry<V>) -> bool {
        match self.entries.get(&field) {
            Some(old) if old.clock > entry.clock => false,
            _ => {
                self.entries.insert(field, entry);
                true
            }
        }
    }

    /// Merges another version of the log into this one: the result is what
    /// parsing this version's lines followed by `other`'s gives (git-annex's
    /// `MapLog` semigroup). Unparsed lines of `other` not already kept are
    /// appended.
    pub fn union(&mut self, other: &MapLog<K, V>) {
        for (k, e) in &other.entries {
            self.add(k.clone(), e.clone());
        }
        let mut u = Unparsed::new(std::mem::take(&mut self.unparsed));
        for l in &other.unparsed {
            u.push(l);
        }
        self.unparsed = u.into_lines();
    }

    /// The current value of each field, without clocks (git-annex's
    /// `simpleMap`).
    pub fn simple_map(&self) -> BTreeMap<K, V> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }

    /// Whether the log has no entries and no unparsed lines.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.unparsed.is_empty()
    }
}

impl<V: LogValue> MapLog<Uuid, V> {
    /// Parses an old-form log (`UUID VALUE timestamp=CLOCK` lines).
    pub fn parse_old(data: &[u8]) -> Self {
        Self::parse_with(data, parse_old_line)
    }

    /// Writes an old-form log as git-annex does: one line per UUID, in
    /// UUID order, `UUID VALUE timestamp=CLOCK` (`UUID VALUE` for an
    /// unknown clock); then the lines that did not parse.
    ///
    /// One departure, for values read from very old lines without a
    /// timestamp: when the value as written would end in a word that reads
    /// as ` timestamp=CLOCK`, a space is added after it so that the line
    /// reads back with the same value and still no clock.
    pub fn write_old(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (u, e) in &self.entries {
            out.extend_from_slice(u.as_str().as_bytes());
            let start = out.len();
            out.push(b' ');
            e.value.write_value(&mut out);
            match e.clock {
                VectorClock::Unknown => {
                    if split_old(&out[start..]).1 != VectorClock::Unknown {
                        out.push(b' ');
                    }
                }
                clock => {
                    out.extend_from_slice(b" timestamp=");
                    clock.write(&mut out);
                }
            }
            out.push(b'\n');
        }
        write_unparsed(&self.unparsed, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    fn u(s: &str) -> Uuid {
        Uuid::parse(s).unwrap()
    }

    fn t(s: i64) -> VectorClock {
        VectorClock::from_secs(s)
    }

    #[test]
    fn old_form_values_keep_their_spaces() {
        let log = UuidLog::<String>::parse_old(
            format!("{U1} a  b timestamp=5s\n{U2}  timestamp=6s\n").as_bytes(),
        );
        assert_eq!(log.get(&u(U1)).unwrap(), "a  b");
        assert_eq!(log.get(&u(U2)).unwrap(), "");
        assert_eq!(log.entry(&u(U2)).unwrap().clock, t(6));
    }

    #[test]
    fn old_form_timestamp_is_only_the_last_word() {
        let log = UuidLog::<String>::parse_old(
            format!("{U1} x timestamp=5s timestamp=6s\n{U2} y timestamp=nope\n").as_bytes(),
        );
        let e = log.entry(&u(U1)).unwrap();
        assert_eq!((e.value.as_str(), e.clock), ("x timestamp=5s", t(6)));
        let e = log.entry(&u(U2)).unwrap();
        assert_eq!(
            (e.value.as_str(), e.clock),
            ("y timestamp=nope", VectorClock::Unknown)
        );
        assert_eq!(
            log.write_old(),
            format!("{U1} x timestamp=5s timestamp=6s\n{U2} y timestamp=nope\n").as_bytes()
        );
    }

    #[test]
    fn old_form_without_timestamp() {
        let log = UuidLog::<String>::parse_old(format!("{U1}\n{U2} \n").as_bytes());
        assert_eq!(log.get(&u(U1)).unwrap(), "");
        assert_eq!(log.entry(&u(U1)).unwrap().clock, VectorClock::Unknown);
        assert_eq!(log.write_old(), format!("{U1} \n{U2} \n").as_bytes());
    }

    #[test]
    fn ties_go_to_the_later_line() {
        let log = UuidLog::<String>::parse_old(
            format!("{U1} a timestamp=5s\n{U1} b timestamp=5s\n{U1} c timestamp=4s\n").as_bytes(),
        );
        assert_eq!(log.get(&u(U1)).unwrap(), "b");
        let log = MapLog::<Uuid, String>::parse_new(
            format!("5s {U1} a\n5s {U1} b\n4s {U1} c\n").as_bytes(),
        );
        assert_eq!(log.get(&u(U1)).unwrap(), "b");
    }

    #[test]
    fn new_form_needs_both_spaces() {
        let log = MapLog::<Uuid, String>::parse_new(
            format!("5s {U1}\n5s {U2} \nx {U1} v\n5s  v\n").as_bytes(),
        );
        assert_eq!(log.entries.len(), 1);
        assert_eq!(log.get(&u(U2)).unwrap(), "");
        assert_eq!(log.unparsed.len(), 3);
        assert_eq!(
            log.write_new(),
            format!("5s {U2} \n5s {U1}\nx {U1} v\n5s  v\n").as_bytes()
        );
    }

    #[test]
    fn group_names_may_be_empty_fields() {
        let log = MapLog::<String, String>::parse_new(b"5s  anything\n");
        assert_eq!(log.get(&String::new()).unwrap(), "anything");
        assert_eq!(log.write_new(), b"5s  anything\n");
    }

    #[test]
    fn unparsed_lines_are_kept_once() {
        let log = UuidLog::<String>::parse_old(b" leading space\r\n leading space\n\n");
        assert_eq!(log.unparsed, vec![b" leading space".to_vec()]);
        assert_eq!(log.write_old(), b" leading space\n");
    }

    #[test]
    fn set_advances_past_the_current_clock() {
        let mut log = UuidLog::<String>::new();
        assert_eq!(log.set(u(U1), "a".into(), t(10)).unwrap(), t(10));
        assert_eq!(log.set(u(U1), "b".into(), t(10)).unwrap(), t(11));
        assert_eq!(log.set(u(U1), "c".into(), t(5)).unwrap(), t(12));
        assert_eq!(log.set(u(U2), "d".into(), t(5)).unwrap(), t(5));
        assert_eq!(
            log.write_old(),
            format!("{U1} c timestamp=12s\n{U2} d timestamp=5s\n").as_bytes()
        );
        assert!(matches!(
            log.set(u(U1), "x\ny".into(), t(20)),
            Err(ValueError::LineBreak { .. })
        ));
        let mut g = MapLog::<String, String>::new();
        assert_eq!(
            g.set("a b".into(), "x".into(), t(1)),
            Err(ValueError::BadGroupName("a b".into()))
        );
    }

    #[test]
    fn union_is_parsing_the_concatenation() {
        let a = format!("{U1} a timestamp=5s\n{U2} b timestamp=9s\n");
        let b = format!("{U1} c timestamp=5s\n{U2} d timestamp=8s\nbad\n");
        let mut m = UuidLog::<String>::parse_old(a.as_bytes());
        m.union(&UuidLog::parse_old(b.as_bytes()));
        assert_eq!(m, UuidLog::parse_old(format!("{a}{b}").as_bytes()));
        assert_eq!(m.get(&u(U1)).unwrap(), "c");
        assert_eq!(m.get(&u(U2)).unwrap(), "b");
    }

    #[test]
    fn unknown_clock_values_that_would_read_as_timestamps() {
        #[derive(Clone, Debug, PartialEq)]
        struct Words(Vec<String>);
        impl LogValue for Words {
            fn parse_value(b: &[u8]) -> Option<Self> {
                Some(Words(
                    std::str::from_utf8(b)
                        .ok()?
                        .split(' ')
                        .filter(|w| !w.is_empty())
                        .map(String::from)
                        .collect(),
                ))
            }
            fn write_value(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.0.join(" ").as_bytes());
            }
        }
        let log = UuidLog::<Words>::parse_old(format!("{U1} timestamp=5s \n").as_bytes());
        assert_eq!(log.entry(&u(U1)).unwrap().clock, VectorClock::Unknown);
        let w = log.write_old();
        assert_eq!(w, format!("{U1} timestamp=5s \n").as_bytes());
        assert_eq!(UuidLog::<Words>::parse_old(&w), log);
    }
}
