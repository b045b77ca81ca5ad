//! Timestamps on log lines: git-annex's vector clocks.
//!
//! git-annex writes a POSIX time as Haskell shows it: whole seconds and an
//! optional fraction with trailing zeros removed, followed by `s`
//! (`1795546889s`, `1431286201.113452s`). Very old lines carry no time;
//! that is [`VectorClock::Unknown`], older than any time, written `0`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Picoseconds in a second: git-annex keeps times as Haskell's `Pico`.
const PICOS: i128 = 1_000_000_000_000;

/// When a log line was written; lines with later clocks win.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VectorClock {
    /// No time recorded (very old logs); older than every time.
    Unknown,
    /// A POSIX time in picoseconds.
    Time(i128),
}

impl VectorClock {
    /// A clock at a whole number of seconds since the epoch.
    pub fn from_secs(secs: i64) -> VectorClock {
        VectorClock::Time(i128::from(secs) * PICOS)
    }

    /// The clock git-annex would use now: whole seconds, or the time in
    /// `GIT_ANNEX_VECTOR_CLOCK` when that is set and parses.
    pub fn now() -> VectorClock {
        if let Some(c) = std::env::var_os("GIT_ANNEX_VECTOR_CLOCK")
            .and_then(|v| v.into_string().ok())
            .and_then(|v| VectorClock::parse(v.as_bytes()))
        {
            return c;
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        VectorClock::from_secs(secs)
    }

    /// The clock to write a change with: `candidate`, unless an earlier
    /// line already has a clock at or past it, in which case one second
    /// after the newest of those (so clock skew never hides a change).
    pub fn advance(
        candidate: VectorClock,
        previous: impl IntoIterator<Item = VectorClock>,
    ) -> Self {
        match previous.into_iter().max() {
            Some(VectorClock::Time(p)) if VectorClock::Time(p) >= candidate => {
                VectorClock::Time(p + PICOS)
            }
            _ => candidate,
        }
    }

    /// Whole seconds since the epoch (rounded down), if known.
    pub fn secs(&self) -> Option<i64> {
        match self {
            VectorClock::Unknown => None,
            VectorClock::Time(p) => i64::try_from(p.div_euclid(PICOS)).ok(),
        }
    }

    /// Parses a clock as git-annex does: an optionally signed decimal
    /// number of seconds, an optional fraction, an optional `s`.
    /// Fractions finer than a picosecond are cut off.
    pub fn parse(b: &[u8]) -> Option<VectorClock> {
        let (neg, rest) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            Some(b'+') => (false, &b[1..]),
            _ => (false, b),
        };
        let rest = rest.strip_suffix(b"s").unwrap_or(rest);
        let (whole, frac) = match rest.iter().position(|&c| c == b'.') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if whole.is_empty() || whole.len() > 24 || !whole.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut picos: i128 = 0;
        for &d in whole {
            picos = picos * 10 + i128::from(d - b'0');
        }
        picos = picos.checked_mul(PICOS)?;
        if let Some(f) = frac {
            if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let mut scale = PICOS / 10;
            for &d in f.iter().take(12) {
                picos += i128::from(d - b'0') * scale;
                scale /= 10;
            }
        }
        // git-annex applies the sign to the whole seconds and then subtracts
        // the fraction only when they are negative, so `-0.5s` reads as half
        // a second after the epoch.
        let negative = neg && !whole.iter().all(|&d| d == b'0');
        Some(VectorClock::Time(if negative { -picos } else { picos }))
    }

    /// Appends the clock as git-annex writes it.
    pub fn write(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        match self {
            VectorClock::Unknown => out.push(b'0'),
            VectorClock::Time(p) => {
                let neg = *p < 0;
                let a = p.unsigned_abs();
                let whole = a / PICOS as u128;
                let frac = a % PICOS as u128;
                if neg {
                    out.push(b'-');
                }
                let _ = write!(out, "{whole}");
                if frac != 0 {
                    let digits = format!("{frac:012}");
                    out.push(b'.');
                    out.extend_from_slice(digits.trim_end_matches('0').as_bytes());
                }
                out.push(b's');
            }
        }
    }
}

impl fmt::Display for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::with_capacity(24);
        self.write(&mut v);
        f.write_str(&String::from_utf8_lossy(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_git_annex_writes() {
        for s in ["1795546889s", "1431286201.113452s", "0.5s", "-1.25s"] {
            let c = VectorClock::parse(s.as_bytes()).unwrap();
            assert_eq!(c.to_string(), s);
        }
        assert_eq!(VectorClock::Unknown.to_string(), "0");
    }

    #[test]
    fn parses_what_git_annex_accepts() {
        assert_eq!(VectorClock::parse(b"12"), Some(VectorClock::from_secs(12)));
        assert_eq!(VectorClock::parse(b"12.500s").unwrap().to_string(), "12.5s");
        assert_eq!(
            VectorClock::parse(b"1.1234567890129s").unwrap().to_string(),
            "1.123456789012s"
        );
        for bad in ["", "s", "x1s", "1.s", "1.2.3s", "1ss", "--1"] {
            assert_eq!(VectorClock::parse(bad.as_bytes()), None, "{bad}");
        }
        assert!(VectorClock::Unknown < VectorClock::from_secs(-5));
        // The sign belongs to the whole seconds: with none, the fraction
        // counts forward, as git-annex reads it.
        assert_eq!(VectorClock::parse(b"-0.5s"), VectorClock::parse(b"0.5s"));
        assert_eq!(VectorClock::parse(b"-00.25s"), VectorClock::parse(b"0.25s"));
        assert_eq!(VectorClock::parse(b"-1.5s").unwrap().to_string(), "-1.5s");
        assert_eq!(VectorClock::parse(b"+3s"), Some(VectorClock::from_secs(3)));
    }

    #[test]
    fn advances_past_earlier_lines() {
        let now = VectorClock::from_secs(100);
        assert_eq!(VectorClock::advance(now, []), now);
        assert_eq!(VectorClock::advance(now, [VectorClock::from_secs(50)]), now);
        assert_eq!(
            VectorClock::advance(now, [VectorClock::from_secs(100)]),
            VectorClock::from_secs(101)
        );
        assert_eq!(
            VectorClock::advance(now, [VectorClock::from_secs(200), VectorClock::Unknown]),
            VectorClock::from_secs(201)
        );
    }
}
