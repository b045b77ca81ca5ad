//! `metadata=` terms, as git-annex parses them (`parseMetaDataMatcher` in
//! its Annex/MetaData.hs) and evaluates them (`limitMetaData` in Limit.hs).
//!
//! The text after `metadata=` is a field name, then the first of `=`, `<`
//! or `>` and what follows:
//!
//! - `FIELD=GLOB` matches a value by glob, without case, a `/` being only a
//!   `/` ([`Glob::new_metadata`]); `FIELD` alone is `FIELD=`, matching only
//!   an empty value;
//! - `FIELD<VALUE`, `FIELD<=VALUE`, `FIELD>VALUE`, `FIELD>=VALUE` compare
//!   numerically when both the field's value and `VALUE` read as Haskell
//!   reads a `Double` (see [`read_double`]), else as text, character by
//!   character (so ISO dates such as `2024-01-05` and the `lastchanged`
//!   stamps compare as dates).
//!
//! The field name must be one git-annex accepts, or the term is refused
//! with git-annex's message, `Illegal metadata field name, "FIELD"`. Field
//! names compare without case. The term matches a key when any current
//! value of the field matches; the `lastchanged` pseudo fields are current
//! values too.
//!
//! A glob whose regex does not compile (`metadata=tag=[`) is accepted, and
//! fails when first matched against a value, as in git-annex
//! ([`MetaDataMatcher::try_matches`]).

use annex_branch::logs::metadata::{fold_field, illegal_field_message, is_legal_field, MetaData};

use crate::glob::{Glob, GlobError};

/// A compiled `metadata=FIELD...VALUE` term.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaDataMatcher {
    source: String,
    /// The field, case folded.
    field: String,
    test: Test,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Glob(Glob),
    Compare {
        op: Op,
        /// The operand, as code points.
        text: Vec<u32>,
        /// The operand as a number, when it reads as one.
        number: Option<f64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds<T: PartialOrd + ?Sized>(self, a: &T, b: &T) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }
}

impl MetaDataMatcher {
    /// Parses the text after `metadata=`, with git-annex's error messages.
    pub fn parse(s: &str) -> Result<MetaDataMatcher, String> {
        let at = s.find(['=', '<', '>']).unwrap_or(s.len());
        let (field, rest) = s.split_at(at);
        if !is_legal_field(field) {
            return Err(illegal_field_message(field));
        }
        let compare = |op, v: &str| {
            let text = code_points(v);
            let number = read_double(&text);
            Test::Compare { op, text, number }
        };
        let test = if let Some(v) = rest.strip_prefix('=') {
            Test::Glob(Glob::new_metadata(v))
        } else if let Some(v) = rest.strip_prefix("<=") {
            compare(Op::Le, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            compare(Op::Lt, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            compare(Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            compare(Op::Gt, v)
        } else {
            Test::Glob(Glob::new_metadata(""))
        };
        Ok(MetaDataMatcher {
            source: s.to_owned(),
            field: fold_field(field),
            test,
        })
    }

    /// The term as written (after `metadata=`).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The field the term looks at, case folded as [`MetaData`]'s fields
    /// are.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Whether some current value of the field matches. A glob that cannot
    /// be used matches nothing (git-annex fails instead: see
    /// [`MetaDataMatcher::try_matches`]).
    pub fn matches(&self, md: &MetaData) -> bool {
        self.try_matches(md).unwrap_or(false)
    }

    /// Whether some current value of the field matches; an error when the
    /// field has a value and the glob's regex does not compile, where
    /// git-annex fails with `failed to compile regex: ...`.
    pub fn try_matches(&self, md: &MetaData) -> Result<bool, GlobError> {
        let Some(values) = md.0.get(&self.field) else {
            return Ok(false);
        };
        for v in values {
            if self.matches_value(v)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether one value of the field matches.
    pub fn matches_value(&self, value: &[u8]) -> Result<bool, GlobError> {
        match &self.test {
            Test::Glob(g) => g.matches(&decode_lossy(value)),
            Test::Compare { op, text, number } => {
                let v = decode(value);
                Ok(match (number, read_double(&v)) {
                    (Some(n), Some(x)) => op.holds(&x, n),
                    _ => op.holds(v.as_slice(), text.as_slice()),
                })
            }
        }
    }
}

fn code_points(s: &str) -> Vec<u32> {
    s.chars().map(u32::from).collect()
}

/// A value's characters as git-annex decodes them: UTF-8, each byte that
/// is not part of a character standing for itself as a lone surrogate
/// (U+DC80 to U+DCFF), so text compares as git-annex compares it.
fn decode(value: &[u8]) -> Vec<u32> {
    let mut out = Vec::with_capacity(value.len());
    for chunk in value.utf8_chunks() {
        out.extend(chunk.valid().chars().map(u32::from));
        out.extend(chunk.invalid().iter().map(|&b| 0xdc00 + u32::from(b)));
    }
    out
}

/// A value as text for globs: UTF-8, each byte that is not part of a
/// character replaced by U+FFFD (one character each, as git-annex has).
fn decode_lossy(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for chunk in value.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|_| char::REPLACEMENT_CHARACTER));
    }
    out
}

/// Haskell's `isSpace`, of a code point.
fn is_space(c: u32) -> bool {
    char::from_u32(c).is_some_and(annex_types::haskell::is_space)
}

fn is_ident_char(c: u32) -> bool {
    c == u32::from(b'_')
        || c == u32::from(b'\'')
        || char::from_u32(c).is_some_and(char::is_alphanumeric)
}

fn ascii(c: Option<&u32>) -> Option<u8> {
    c.and_then(|&c| u8::try_from(c).ok())
        .filter(|c| c.is_ascii())
}

/// Reads text as Haskell's `read` reads a `Double` (git-annex's test for
/// a number): optional spaces and balanced parentheses around an optional
/// `-`, spaces, and a number: decimal digits with an optional fraction
/// (`.` and digits) and exponent (`e` or `E`, an optional sign, digits);
/// `0x`/`0X` and hexadecimal digits or `0o`/`0O` and octal digits; `NaN`;
/// `Infinity`. Not `+5`, `.5`, `5.`, `1e`, `0b1`, `1_000`. Exponents out of
/// the range of a 64-bit integer read as infinity (even `0e99999999999999999999`),
/// as in Haskell.
pub fn read_double(s: &[u32]) -> Option<f64> {
    let mut r = Reader { s, i: 0 };
    let mut open = 0usize;
    loop {
        r.skip_spaces();
        if r.peek() == Some(b'(') {
            r.i += 1;
            open += 1;
        } else {
            break;
        }
    }
    let negative = r.peek() == Some(b'-');
    if negative {
        r.i += 1;
        r.skip_spaces();
    }
    let x = r.number()?;
    for _ in 0..open {
        r.skip_spaces();
        if r.peek() != Some(b')') {
            return None;
        }
        r.i += 1;
    }
    r.skip_spaces();
    if r.i != s.len() {
        return None;
    }
    Some(if negative { -x } else { x })
}

struct Reader<'a> {
    s: &'a [u32],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        ascii(self.s.get(self.i))
    }

    fn at(&self, off: usize) -> Option<u8> {
        ascii(self.s.get(self.i + off))
    }

    fn skip_spaces(&mut self) {
        while self.s.get(self.i).is_some_and(|&c| is_space(c)) {
            self.i += 1;
        }
    }

    /// Digits of `base` from the current position, as values.
    fn digits(&mut self, base: u32) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(d) = self.peek().and_then(|c| (c as char).to_digit(base)) {
            out.push(d as u8);
            self.i += 1;
        }
        out
    }

    /// One number token: its value, unsigned.
    fn number(&mut self) -> Option<f64> {
        let c = self.peek()?;
        if c.is_ascii_digit() {
            if c == b'0' {
                let base = match self.at(1) {
                    Some(b'x' | b'X') => 16,
                    Some(b'o' | b'O') => 8,
                    _ => 0,
                };
                if base != 0 && self.at(2).is_some_and(|d| (d as char).is_digit(base)) {
                    self.i += 2;
                    let bits = if base == 16 { 4 } else { 3 };
                    return Some(integer_to_f64(&self.digits(base), bits));
                }
            }
            return Some(self.decimal());
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = self.i;
            while self.s.get(self.i).is_some_and(|&c| is_ident_char(c)) {
                self.i += 1;
            }
            let id: String = self.s[start..self.i]
                .iter()
                .filter_map(|&c| char::from_u32(c))
                .collect();
            return match id.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                _ => None,
            };
        }
        None
    }

    /// A decimal number token (the current character is a digit).
    fn decimal(&mut self) -> f64 {
        let whole = self.digits(10);
        let mut frac = Vec::new();
        if self.peek() == Some(b'.') && self.at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
            frac = self.digits(10);
        }
        let mut exponent = None;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let (neg, skip) = match self.at(1) {
                Some(b'-') => (true, 2),
                Some(b'+') => (false, 2),
                _ => (false, 1),
            };
            if self.at(skip).is_some_and(|c| c.is_ascii_digit()) {
                self.i += skip;
                // Saturating far beyond the range of an Int.
                let mut e: i128 = 0;
                for d in self.digits(10) {
                    e = (e * 10 + i128::from(d)).min(i128::from(u64::MAX) * 4);
                }
                exponent = Some(if neg { -e } else { e });
            }
        }
        // Haskell's numberToRangedRational: where the first significant
        // digit falls, by Int arithmetic (which wraps).
        let lead_whole = whole.iter().take_while(|&&d| d == 0).count();
        let lead_frac = frac.iter().take_while(|&&d| d == 0).count();
        let first_digit: Option<i64> = if lead_whole < whole.len() {
            Some((whole.len() - lead_whole) as i64)
        } else if lead_frac < frac.len() {
            Some(-(lead_frac as i64))
        } else {
            None
        };
        let position = match exponent {
            Some(e) if e > i128::from(i64::MAX) || e < i128::from(i64::MIN) => {
                return f64::INFINITY;
            }
            Some(e) => first_digit.map(|f| f.wrapping_add(e as i64)),
            None => first_digit,
        };
        let Some(position) = position else {
            return 0.0;
        };
        if position > 1024 + 3 {
            return f64::INFINITY;
        }
        if position < -1021 - 3 {
            return 0.0;
        }
        // 0.DIGITS × 10^position, DIGITS the significant digits.
        let mut text = String::from("0.");
        text.extend(
            whole
                .iter()
                .chain(frac.iter())
                .skip_while(|&&d| d == 0)
                .map(|&d| char::from(b'0' + d)),
        );
        text.push_str(&format!("e{position}"));
        text.parse().unwrap_or(f64::NAN)
    }
}

/// An integer given as digits of `bits` bits each, rounded to the nearest
/// double (ties to even), as Haskell converts it.
fn integer_to_f64(digits: &[u8], bits: u32) -> f64 {
    let mut top: u64 = 0;
    let mut top_bits = 0u32;
    let mut sticky = false;
    let mut extra: u64 = 0;
    for &d in digits {
        for b in (0..bits).rev() {
            let bit = u64::from(d >> b & 1);
            if top_bits == 0 && bit == 0 {
                continue;
            }
            if top_bits < 64 {
                top = top << 1 | bit;
                top_bits += 1;
            } else {
                sticky |= bit == 1;
                extra += 1;
            }
        }
    }
    // A set bit below the 53 kept decides ties exactly as the bits it
    // stands for would.
    let m = (top | u64::from(sticky)) as f64;
    if extra > 2000 {
        return f64::INFINITY;
    }
    m * 2f64.powi(extra as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn num(s: &str) -> Option<f64> {
        read_double(&code_points(s))
    }

    #[test]
    fn numbers_read_as_haskell_reads_doubles() {
        for (s, v) in [
            ("10", 10.0),
            ("1.5", 1.5),
            ("1e1", 10.0),
            ("1E1", 10.0),
            ("1.5e1", 15.0),
            ("1e+2", 100.0),
            ("1e-5", 1e-5),
            ("0xA", 10.0),
            ("0X1F", 31.0),
            ("0o17", 15.0),
            ("0O17", 15.0),
            ("-5", -5.0),
            ("- 5", -5.0),
            (" 7 ", 7.0),
            ("\t7", 7.0),
            ("\n7\n", 7.0),
            ("7\u{a0}", 7.0),
            ("\u{3000}7", 7.0),
            ("(3)", 3.0),
            ("((3))", 3.0),
            (" ( 3 ) ", 3.0),
            ("(-3)", -3.0),
            ("( - 3 )", -3.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("00012", 12.0),
            ("1e-400", 0.0),
            ("1e99999", f64::INFINITY),
            ("9007199254740993", 9007199254740992.0),
            ("0x1fffffffffffff1", 144115188075855856.0),
            ("1e-99999999999999999999", f64::INFINITY),
            ("0e99999999999999999999", f64::INFINITY),
            ("1e-9223372036854775808", 0.0),
            ("1e-9223372036854775809", f64::INFINITY),
            ("1e9223372036854775806", f64::INFINITY),
            // The first digit's position wraps round, as Int arithmetic
            // does.
            ("1e9223372036854775807", 0.0),
            ("0.01e-9223372036854775808", f64::INFINITY),
            ("0.001e5", 100.0),
            ("0e5", 0.0),
        ] {
            assert_eq!(num(s), Some(v), "{s:?}");
        }
        assert!(num("NaN").unwrap().is_nan());
        assert!(num("-NaN").unwrap().is_nan());
        assert!(num("-0").unwrap().is_sign_negative());
        assert_eq!(num(&format!("0x{}", "f".repeat(300))), Some(f64::INFINITY));
        assert_eq!(
            num(&format!("0x1{}", "0".repeat(255))),
            Some(2f64.powi(1020))
        );
        for bad in [
            "",
            "+5",
            ".5",
            "5.",
            "1e",
            "1e+",
            "0b11",
            "1_0",
            "٣",
            "-(5)",
            "(5",
            "5)",
            "--5",
            "nan",
            "inf",
            "Infinityx",
            "NaN'",
            "5x",
            "0x",
            "0xG",
            "7\u{85}",
            "7\u{2028}",
            "1.5.3",
            "(((",
        ] {
            assert_eq!(num(bad), None, "{bad:?}");
        }
        // No stack to run out of.
        let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(num(&deep), Some(1.0));
    }

    fn md(fields: &[(&str, &[&[u8]])]) -> MetaData {
        MetaData(
            fields
                .iter()
                .map(|(f, vs)| (fold_field(f), vs.iter().map(|v| v.to_vec()).collect()))
                .collect::<BTreeMap<String, BTreeSet<Vec<u8>>>>(),
        )
    }

    fn m(term: &str, md: &MetaData) -> bool {
        MetaDataMatcher::parse(term).unwrap().matches(md)
    }

    #[test]
    fn terms_match_as_git_annex_matches_them() {
        let d = md(&[
            ("foo", &[b"Hello"]),
            ("n", &[b"10"]),
            ("path", &[b"a/b"]),
            ("e", &[b""]),
            ("d", &[b"2024-01-05"]),
            ("w", &[b" 7 "]),
            ("x", &[b"\xff"]),
            ("lastchanged", &[b"2026-11-30@05-29-36"]),
        ]);
        for (term, want) in [
            ("foo=hello", true),
            ("FOO=HELLO", true),
            ("foo=h*", true),
            ("foo=H?LLO", true),
            ("foo=[[:lower:]]*", true),
            ("foo", false),
            ("e", true),
            ("e=", true),
            ("n<9", false),
            ("n<11", true),
            ("n>9.5", true),
            ("n>=10", true),
            ("n<=0xA", true),
            ("n>0xA", false),
            ("n>.5", true),
            ("n>5.", false),
            ("n<=+5", false),
            ("n>NaN", false),
            ("n<Infinity", true),
            ("n>", true),
            ("n<>x", true),
            ("n=>1", false),
            ("w>6", true),
            ("d>2024-01-04", true),
            ("d<2024-1-6", true),
            ("path=a/b", true),
            ("path=a*b", true),
            ("path=a//b", false),
            ("x=?", true),
            ("x>\u{d7ff}", true),
            ("lastchanged>2026", true),
            ("LastChanged<2026-11-30@05-29-37", true),
            ("nosuch<1", false),
            ("zzz=[", false),
        ] {
            assert_eq!(m(term, &d), want, "{term}");
        }
        let bad = MetaDataMatcher::parse("foo=[").unwrap();
        assert_eq!(
            bad.try_matches(&d).unwrap_err().to_string(),
            "failed to compile regex: ^[$"
        );
        assert!(!bad.matches(&d));
        assert_eq!(bad.field(), "foo");
        assert_eq!(bad.as_str(), "foo=[");
    }

    #[test]
    fn bad_field_names_are_refused_with_git_annex_messages() {
        for (term, field) in [
            ("=x", ""),
            ("", ""),
            ("<5", ""),
            ("_a=x", "_a"),
            ("f$=x", "f$"),
            ("a b=x", "a b"),
            ("-x>1", "-x"),
        ] {
            assert_eq!(
                MetaDataMatcher::parse(term),
                Err(format!("Illegal metadata field name, \"{field}\"")),
                "{term}"
            );
        }
        for ok in ["a_=x", "é=x", "1=x", "a.b-c_d<3", "tag"] {
            assert!(MetaDataMatcher::parse(ok).is_ok(), "{ok}");
        }
    }
}
