//! Text as git-annex's Haskell reads it, where git-annex reads values
//! with the standard library's readers.

/// Whether `c` is whitespace as Haskell's `isSpace` sees it.
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// Reads a number as Haskell's `reads :: ReadS Double` takes the first
/// result: leading whitespace, optional enclosing parentheses, a `-`
/// token, then decimal digits with an optional fraction and exponent, or a
/// `0x`/`0o` integer. Returns the value and the text after it.
pub fn read_double(input: &str) -> Option<(f64, &str)> {
    let s = input.trim_start_matches(is_space);
    if let Some(inner) = s.strip_prefix('(') {
        // `(n)`: the number, then a closing parenthesis.
        let (v, rest) = read_double(inner)?;
        let rest = rest.trim_start_matches(is_space);
        return rest.strip_prefix(')').map(|r| (v, r));
    }
    if let Some(rest) = s.strip_prefix('-') {
        // `-` must be a token of its own, not the start of `->` or `--`.
        if rest.starts_with(|c: char| "!#$%&*+./<=>?@\\^|-~:".contains(c)) {
            return None;
        }
        let (v, rest) = read_double(rest)?;
        return Some((-v, rest));
    }
    for (prefix, radix) in [("0x", 16), ("0X", 16), ("0o", 8), ("0O", 8)] {
        if let Some(rest) = s.strip_prefix(prefix) {
            let n = rest.chars().take_while(|c| c.is_digit(radix)).count();
            if n > 0 {
                let mut v = 0f64;
                for c in rest[..n].chars() {
                    v = v * radix as f64 + c.to_digit(radix)? as f64;
                }
                return Some((v, &rest[n..]));
            }
        }
    }
    let bytes = s.as_bytes();
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int = digits(0);
    if int == 0 {
        return None;
    }
    let mut end = int;
    if bytes.get(end) == Some(&b'.') {
        let frac = digits(end + 1);
        if frac > 0 {
            end += 1 + frac;
        }
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut e = end + 1;
        if matches!(bytes.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        let exp = digits(e);
        if exp > 0 {
            end = e + exp;
        }
    }
    let v: f64 = s[..end].parse().ok()?;
    Some((v, &s[end..]))
}

/// A double as Haskell's `show` writes it, for the magnitudes sizes have
/// (how git-annex shows sizes): exponent notation outside 0.1 to 10^7,
/// and always a fractional part (`1.0`, `2.5e-2`).
pub fn show_double(v: f64) -> String {
    if v != 0.0 && !(0.1..1e7).contains(&v.abs()) {
        let s = format!("{v:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = if m.contains('.') {
            m.to_owned()
        } else {
            format!("{m}.0")
        };
        return format!("{m}e{e}");
    }
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_read_as_haskell_reads_them() {
        assert_eq!(read_double(" 1.5e3kB"), Some((1500.0, "kB")));
        assert_eq!(read_double("(2)x"), Some((2.0, "x")));
        assert_eq!(read_double("1."), Some((1.0, ".")));
        assert_eq!(read_double("1e"), Some((1.0, "e")));
        assert_eq!(read_double("0o17"), Some((15.0, "")));
        assert_eq!(read_double("->1"), None);
        assert_eq!(read_double(".5"), None);
    }

    #[test]
    fn doubles_shown_as_haskell_shows_them() {
        assert_eq!(show_double(1.0), "1.0");
        assert_eq!(show_double(2.5), "2.5");
        assert_eq!(show_double(0.025), "2.5e-2");
        assert_eq!(show_double(12345678.0), "1.2345678e7");
        assert_eq!(show_double(0.0), "0.0");
    }
}
