//! Numbers read the lenient way git-annex reads them from logs (Haskell's
//! `reads`, first result, rest of the text ignored).
//!
//! What is accepted, at the start of the text: leading whitespace; any
//! number of enclosing parentheses; a `-` sign as its own token (`- 3`
//! too, but not `+3` or `--3`); decimal digits, or `0x`/`0X` hexadecimal,
//! or `0o`/`0O` octal. A decimal number with a fraction (`3.5`) or an
//! exponent (`3e2`) is not an integer and reads as nothing, but a `.` or
//! `e` that is not followed by digits just ends the number (`3.x` is 3).
//! Whatever follows the number is ignored (`3abc` is 3).
//!
//! A fixed-size integer (git-annex's `Int`) wraps around modulo 2^64 as
//! Haskell's conversion does; an unbounded one (`Integer`) is returned when
//! it fits an `i128`. Parentheses nested more than 1000 deep read as
//! nothing here (Haskell has no such limit). Non-ASCII symbol characters
//! are not taken as part of a `-` token, where Haskell's lexer would.

/// Whitespace as Haskell's `isSpace` sees it.
pub(crate) fn is_hs_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// ASCII symbol characters of the Haskell lexer.
fn is_symbol_char(c: char) -> bool {
    "!@#$%&*+./<=>?\\^|:-~".contains(c)
}

/// A number as lexed: its sign, base and digit values.
struct Number {
    negative: bool,
    base: u32,
    digits: Vec<u32>,
}

fn skip_spaces(s: &[char], mut i: usize) -> usize {
    while s.get(i).is_some_and(|&c| is_hs_space(c)) {
        i += 1;
    }
    i
}

fn digits(s: &[char], mut i: usize, base: u32) -> (Vec<u32>, usize) {
    let mut d = Vec::new();
    while let Some(v) = s.get(i).and_then(|c| c.to_digit(base)) {
        d.push(v);
        i += 1;
    }
    (d, i)
}

/// Lexes an integer literal at `i`, returning it and where it ends;
/// `None` when the token there is not an integer literal (not a number, or
/// a number with a fraction or an exponent).
fn integer_token(s: &[char], i: usize) -> Option<(Number, usize)> {
    if s.get(i) == Some(&'0') {
        let base = match s.get(i + 1) {
            Some('x' | 'X') => 16,
            Some('o' | 'O') => 8,
            _ => 0,
        };
        if base != 0 {
            let (digits, end) = digits(s, i + 2, base);
            if !digits.is_empty() {
                let n = Number {
                    negative: false,
                    base,
                    digits,
                };
                return Some((n, end));
            }
        }
    }
    let (digits, end) = digits(s, i, 10);
    if digits.is_empty() {
        return None;
    }
    if s.get(end) == Some(&'.') && s.get(end + 1).is_some_and(char::is_ascii_digit) {
        return None;
    }
    if matches!(s.get(end), Some('e' | 'E')) {
        let mut j = end + 1;
        if matches!(s.get(j), Some('-' | '+')) {
            j += 1;
        }
        if s.get(j).is_some_and(char::is_ascii_digit) {
            return None;
        }
    }
    let n = Number {
        negative: false,
        base: 10,
        digits,
    };
    Some((n, end))
}

/// Reads a number at `i` the way `readPrec` does for integers: optionally
/// in parentheses, optionally negated. Returns it and where it ends.
fn read_number(s: &[char], i: usize, depth: usize) -> Option<(Number, usize)> {
    let i = skip_spaces(s, i);
    match s.get(i)? {
        '(' if depth < 1000 => {
            let (n, j) = read_number(s, i + 1, depth + 1)?;
            let j = skip_spaces(s, j);
            (s.get(j) == Some(&')')).then_some((n, j + 1))
        }
        '-' => {
            // `-` must be a symbol token of its own.
            if s.get(i + 1).is_some_and(|&c| is_symbol_char(c)) {
                return None;
            }
            let (mut n, j) = integer_token(s, skip_spaces(s, i + 1))?;
            n.negative = true;
            Some((n, j))
        }
        _ => integer_token(s, i),
    }
}

fn lex(text: &[u8]) -> Option<Number> {
    let s: Vec<char> = String::from_utf8_lossy(text).chars().collect();
    read_number(&s, 0, 0).map(|(n, _)| n)
}

/// Reads a fixed-size integer (Haskell `Int`), wrapping around on
/// overflow as Haskell does.
pub fn read_int(text: &[u8]) -> Option<i64> {
    let n = lex(text)?;
    let mut v: u64 = 0;
    for d in n.digits {
        v = v.wrapping_mul(u64::from(n.base)).wrapping_add(u64::from(d));
    }
    let v = v as i64;
    Some(if n.negative { v.wrapping_neg() } else { v })
}

/// Reads an unbounded integer (Haskell `Integer`); `None` also when it
/// does not fit an `i128`.
pub fn read_integer(text: &[u8]) -> Option<i128> {
    let n = lex(text)?;
    let mut v: u128 = 0;
    for d in n.digits {
        v = v
            .checked_mul(u128::from(n.base))?
            .checked_add(u128::from(d))?;
    }
    if n.negative {
        0i128.checked_sub_unsigned(v)
    } else {
        i128::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_haskell() {
        let cases: &[(&str, Option<i64>)] = &[
            ("3", Some(3)),
            (" 3", Some(3)),
            ("\t3 ", Some(3)),
            ("3abc", Some(3)),
            ("3 4", Some(3)),
            ("(3)", Some(3)),
            ("( (3) )x", Some(3)),
            ("(3", None),
            ("-3", Some(-3)),
            ("- 3", Some(-3)),
            ("(-3)", Some(-3)),
            ("--3", None),
            ("-+3", None),
            ("+3", None),
            ("0x1f", Some(31)),
            ("0X1F", Some(31)),
            ("0o17", Some(15)),
            ("0x", Some(0)),
            ("0xg", Some(0)),
            ("3.5", None),
            ("3.", Some(3)),
            ("3.x", Some(3)),
            ("3e2", None),
            ("3e-2", None),
            ("3e", Some(3)),
            ("3e+", Some(3)),
            ("", None),
            ("x3", None),
            ("\u{a0}7", Some(7)),
            ("18446744073709551617", Some(1)),
            ("9223372036854775808", Some(i64::MIN)),
        ];
        for (s, want) in cases {
            assert_eq!(read_int(s.as_bytes()), *want, "{s:?}");
        }
        assert_eq!(
            read_integer(b"18446744073709551617"),
            Some(18446744073709551617)
        );
        assert_eq!(read_integer(b"-5"), Some(-5));
        assert_eq!(
            read_integer(b"-170141183460469231731687303715884105728"),
            Some(i128::MIN)
        );
        assert_eq!(
            read_integer(b"170141183460469231731687303715884105728"),
            None
        );
        assert_eq!(read_int(&[0xff, b'3']), None);
        assert_eq!(read_int(&[b'3', 0xff]), Some(3));
    }
}
