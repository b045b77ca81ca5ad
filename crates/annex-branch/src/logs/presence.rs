//! Presence logs: `CLOCK STATUS INFO` lines, one fact per line. The
//! per-key location logs (`xxx/yyy/KEY.log`, INFO a repository's UUID)
//! are presence logs, as are a few others (URL logs, for example).
//!
//! For each INFO the line with the newest clock is the current one; when
//! two lines tie, the one earlier in the file wins, as in git-annex.

use std::collections::BTreeMap;

use crate::clock::VectorClock;

/// What a line says about its INFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// `1`: present (for a location log: the repository has the content).
    Present,
    /// `0`: not present.
    Missing,
    /// `X`: dead (the key was marked dead).
    Dead,
}

impl Status {
    fn from_byte(b: u8) -> Option<Status> {
        match b {
            b'1' => Some(Status::Present),
            b'0' => Some(Status::Missing),
            b'X' => Some(Status::Dead),
            _ => None,
        }
    }

    fn as_byte(self) -> u8 {
        match self {
            Status::Present => b'1',
            Status::Missing => b'0',
            Status::Dead => b'X',
        }
    }
}

/// One line of a presence log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When it was written.
    pub clock: VectorClock,
    /// What it says.
    pub status: Status,
    /// What it is about (for a location log, a repository's UUID).
    pub info: Vec<u8>,
}

/// A line borrowed from the log's bytes, for reading without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRef<'a> {
    /// When it was written.
    pub clock: VectorClock,
    /// What it says.
    pub status: Status,
    /// What it is about.
    pub info: &'a [u8],
}

impl LineRef<'_> {
    /// An owned copy.
    pub fn to_owned_line(&self) -> LogLine {
        LogLine {
            clock: self.clock,
            status: self.status,
            info: self.info.to_vec(),
        }
    }
}

/// Splits a log into lines as git-annex does: any run of `\r` and `\n`
/// ends a line.
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n' || b == b'\r')
        .filter(|l| !l.is_empty())
}

/// Parses one line; `None` when it is not a presence log line.
pub fn parse_line(line: &[u8]) -> Option<LineRef<'_>> {
    let sp = line.iter().position(|&b| b == b' ')?;
    let clock = VectorClock::parse(&line[..sp])?;
    let rest = &line[sp + 1..];
    let status = Status::from_byte(*rest.first()?)?;
    if rest.get(1) != Some(&b' ') {
        return None;
    }
    Some(LineRef {
        clock,
        status,
        info: &rest[2..],
    })
}

/// Calls `f` on each line that parses, in file order; other lines are
/// skipped, as git-annex skips them.
pub fn for_each_line<'a>(data: &'a [u8], mut f: impl FnMut(LineRef<'a>)) {
    for l in lines(data) {
        if let Some(l) = parse_line(l) {
            f(l);
        }
    }
}

/// Every line that parses, in file order.
pub fn parse(data: &[u8]) -> Vec<LogLine> {
    let mut out = Vec::new();
    for_each_line(data, |l| out.push(l.to_owned_line()));
    out
}

/// Appends one line, with its newline.
pub fn write_line(clock: VectorClock, status: Status, info: &[u8], out: &mut Vec<u8>) {
    clock.write(out);
    out.push(b' ');
    out.push(status.as_byte());
    out.push(b' ');
    out.extend_from_slice(info);
    out.push(b'\n');
}

/// Serialises lines in order.
pub fn write(lines: &[LogLine], out: &mut Vec<u8>) {
    for l in lines {
        write_line(l.clock, l.status, &l.info, out);
    }
}

/// The current line for each INFO (newest clock; the earlier line on a
/// tie), ordered by INFO as git-annex writes a compacted log.
pub fn compact(lines: Vec<LogLine>) -> Vec<LogLine> {
    let mut map: BTreeMap<Vec<u8>, LogLine> = BTreeMap::new();
    for l in lines {
        match map.get(&l.info) {
            Some(old) if old.clock >= l.clock => {}
            _ => {
                map.insert(l.info.clone(), l);
            }
        }
    }
    map.into_values().collect()
}

/// The INFOs whose current line says present, in INFO order.
pub fn present(data: &[u8]) -> Vec<Vec<u8>> {
    compact(parse(data))
        .into_iter()
        .filter(|l| l.status == Status::Present)
        .map(|l| l.info)
        .collect()
}

/// The current status of each INFO, without allocating per line: calls
/// `f(info, status)` once per INFO in the log, in no particular order.
/// For logs with few INFOs (location logs list a handful of
/// repositories) this is the fast path.
pub fn current<'a>(data: &'a [u8], mut f: impl FnMut(&'a [u8], Status)) {
    let mut seen: Vec<LineRef<'a>> = Vec::new();
    for_each_line(data, |l| match seen.iter_mut().find(|s| s.info == l.info) {
        Some(s) => {
            if s.clock < l.clock {
                *s = l;
            }
        }
        None => seen.push(l),
    });
    for s in seen {
        f(s.info, s.status);
    }
}

/// Records that INFO now has `status`, as git-annex's location logging
/// does: nothing changes (and `None` is returned) when INFO's current line
/// already says so; otherwise the new line, with a clock advanced past
/// INFO's earlier lines, replaces them and the compacted log is returned.
pub fn change(data: &[u8], info: &[u8], status: Status, now: VectorClock) -> Option<Vec<u8>> {
    let old = parse(data);
    let clock = VectorClock::advance(now, old.iter().filter(|l| l.info == info).map(|l| l.clock));
    let mut compacted = compact(old);
    match compacted.iter_mut().find(|l| l.info == info) {
        Some(l) if l.status == status => return None,
        Some(l) => {
            l.clock = clock;
            l.status = status;
        }
        None => {
            let at = compacted.partition_point(|l| l.info.as_slice() < info);
            compacted.insert(
                at,
                LogLine {
                    clock,
                    status,
                    info: info.to_vec(),
                },
            );
        }
    }
    let mut out = Vec::with_capacity(data.len() + 64);
    write(&compacted, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    #[test]
    fn parses_and_writes_back() {
        let log = format!("1795557218s 1 {U1}\n1795557219.5s 0 {U2}\n");
        let lines = parse(log.as_bytes());
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].status, Status::Missing);
        let mut out = Vec::new();
        write(&lines, &mut out);
        assert_eq!(out, log.as_bytes());
    }

    #[test]
    fn skips_bad_lines_and_odd_line_ends() {
        let log =
            format!("garbage\r\n\r\r1795557218s 1 {U1}\r\n1795557218s 7 {U2}\nnot a clock 1 x\n");
        assert_eq!(present(log.as_bytes()), vec![U1.as_bytes().to_vec()]);
    }

    #[test]
    fn newest_wins_and_ties_go_to_the_earlier_line() {
        let log = format!("10s 1 {U1}\n20s 0 {U1}\n15s 1 {U1}\n30s 0 {U2}\n30s 1 {U2}\n");
        let c = compact(parse(log.as_bytes()));
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].clock, c[0].status),
            (VectorClock::from_secs(20), Status::Missing)
        );
        assert_eq!(c[1].status, Status::Missing);
        let mut cur = Vec::new();
        current(log.as_bytes(), |i, s| cur.push((i.to_vec(), s)));
        cur.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(cur[0].1, Status::Missing);
        assert_eq!(cur[1].1, Status::Missing);
    }

    #[test]
    fn change_avoids_churn_and_advances_the_clock() {
        let log = format!("100s 1 {U1}\n");
        assert_eq!(
            change(
                log.as_bytes(),
                U1.as_bytes(),
                Status::Present,
                VectorClock::from_secs(200)
            ),
            None
        );
        let out = change(
            log.as_bytes(),
            U1.as_bytes(),
            Status::Missing,
            VectorClock::from_secs(50),
        )
        .unwrap();
        assert_eq!(out, format!("101s 0 {U1}\n").as_bytes());
        let out = change(
            &out,
            U2.as_bytes(),
            Status::Present,
            VectorClock::from_secs(300),
        )
        .unwrap();
        assert_eq!(out, format!("101s 0 {U1}\n300s 1 {U2}\n").as_bytes());
    }
}
