//! Sizes written as git-annex reads them in expressions (Utility/DataUnits.hs
//! `readSize dataUnits`): a number as Haskell reads a `Double`, then an
//! optional unit, any case, from the storage (`kB`, `MB`... powers of
//! 1000), committee (`KiB`, `MiB`... powers of 1024) and bandwidth
//! (`kbit`, `Mbit`...) tables, by abbreviation, name or plural, or an
//! abbreviation without its final `b` (`1m` is `1MB`). What follows the
//! unit's letters is ignored.

const UNITS: &[(f64, &str, &str)] = &[
    (1e30, "QB", "quettabyte"),
    (1e27, "RB", "ronnabyte"),
    (1e24, "YB", "yottabyte"),
    (1e21, "ZB", "zettabyte"),
    (1e18, "EB", "exabyte"),
    (1e15, "PB", "petabyte"),
    (1e12, "TB", "terabyte"),
    (1e9, "GB", "gigabyte"),
    (1e6, "MB", "megabyte"),
    (1e3, "kB", "kilobyte"),
    (1.0, "B", "byte"),
    (1208925819614629174706176.0, "YiB", "yobibyte"),
    (1180591620717411303424.0, "ZiB", "zebibyte"),
    (1152921504606846976.0, "EiB", "exbibyte"),
    (1125899906842624.0, "PiB", "pebibyte"),
    (1099511627776.0, "TiB", "tebibyte"),
    (1073741824.0, "GiB", "gibibyte"),
    (1048576.0, "MiB", "mebibyte"),
    (1024.0, "KiB", "kibibyte"),
    (1.0, "B", "byte"),
    (1e24 / 8.0, "Ybit", "yottabit"),
    (1e21 / 8.0, "Zbit", "zettabit"),
    (1e18 / 8.0, "Ebit", "exabit"),
    (1e15 / 8.0, "Pbit", "petabit"),
    (1e12 / 8.0, "Tbit", "terabit"),
    (1e9 / 8.0, "Gbit", "gigabit"),
    (1e6 / 8.0, "Mbit", "megabit"),
    (1e3 / 8.0, "kbit", "kilobit"),
];

fn unit_multiplier(name: &str) -> Option<f64> {
    if name.is_empty() {
        return Some(1.0);
    }
    let eq = |a: &str, b: &str| a.to_lowercase() == b.to_lowercase();
    let with_b = format!("{name}b");
    UNITS.iter().find_map(|&(m, abbrev, full)| {
        (eq(abbrev, name) || eq(full, name) || eq(&format!("{full}s"), name) || eq(abbrev, &with_b))
            .then_some(m)
    })
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

const STORAGE_UNITS: &[(u128, &str, &str)] = &[
    (
        1_000_000_000_000_000_000_000_000_000_000,
        "QB",
        "quettabyte",
    ),
    (1_000_000_000_000_000_000_000_000_000, "RB", "ronnabyte"),
    (1_000_000_000_000_000_000_000_000, "YB", "yottabyte"),
    (1_000_000_000_000_000_000_000, "ZB", "zettabyte"),
    (1_000_000_000_000_000_000, "EB", "exabyte"),
    (1_000_000_000_000_000, "PB", "petabyte"),
    (1_000_000_000_000, "TB", "terabyte"),
    (1_000_000_000, "GB", "gigabyte"),
    (1_000_000, "MB", "megabyte"),
    (1_000, "kB", "kilobyte"),
    (1, "B", "byte"),
];

/// A number with at most `precision` decimals, trailing zeros dropped
/// (git-annex's showImprecise).
pub fn show_imprecise(precision: u32, n: f64) -> String {
    let int = n.trunc();
    let scale = 10f64.powi(precision as i32);
    let mut rem = ((n - int) * scale).round_ties_even() as u64;
    let mut int = int as u64;
    if rem == scale as u64 {
        int += 1;
        rem = 0;
    }
    if precision == 0 || rem == 0 {
        // Haskell's round: halves go to the even neighbour.
        return format!("{}", n.round_ties_even() as u64);
    }
    let digits = format!("{rem:0width$}", width = precision as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

fn show_size(bytes: u64, short: bool, show: impl Fn(f64) -> String) -> String {
    let b = u128::from(bytes);
    let &(size, abbrev, name) = STORAGE_UNITS
        .iter()
        .find(|(s, _, _)| b >= *s)
        .unwrap_or(&STORAGE_UNITS[STORAGE_UNITS.len() - 1]);
    let s = show(bytes as f64 / size as f64);
    let unit = if short {
        abbrev.to_string()
    } else if s == "1" {
        name.to_string()
    } else {
        format!("{name}s")
    };
    format!("{s} {unit}")
}

/// An approximate size with `precision` decimals, like `1.5 GB`.
pub fn rough_size(bytes: u64, precision: u32) -> String {
    show_size(bytes, true, |v| show_imprecise(precision, v))
}

/// A precise size, like `1.0 GB` (git-annex shows the number as Haskell
/// shows a double).
pub fn precise_size(bytes: u64) -> String {
    show_size(bytes, true, show_double)
}

/// Reads a size; `None` where git-annex's `readSize` gives nothing.
/// Fractions round to the nearest byte, halves to even.
pub fn read_size(input: &str) -> Option<i128> {
    let (number, rest) = read_double(input)?;
    let rest = rest.trim_start_matches(crate::syntax::is_space);
    let unit: String = rest.chars().take_while(|c| c.is_alphabetic()).collect();
    let m = unit_multiplier(&unit)?;
    let v = number * m;
    if v.is_nan() {
        return Some(0);
    }
    let r = v.round_ties_even();
    Some(if r >= i128::MAX as f64 {
        i128::MAX
    } else if r <= i128::MIN as f64 {
        i128::MIN
    } else {
        r as i128
    })
}

/// Reads a number as Haskell's `reads :: ReadS Double` takes the first
/// result: leading whitespace, optional enclosing parentheses, a `-`
/// token, then decimal digits with an optional fraction and exponent, or a
/// `0x`/`0o` integer. Returns the value and the text after it.
fn read_double(input: &str) -> Option<(f64, &str)> {
    let s = input.trim_start_matches(crate::syntax::is_space);
    if let Some(inner) = s.strip_prefix('(') {
        // `(n)`: the number, then a closing parenthesis.
        let (v, rest) = read_double(inner)?;
        let rest = rest.trim_start_matches(crate::syntax::is_space);
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

#[cfg(test)]
mod tests {
    use super::{read_size, rough_size};

    #[test]
    fn rough_sizes_as_git_annex_shows_them() {
        assert_eq!(rough_size(100, 0), "100 B");
        assert_eq!(rough_size(1_000_000_000, 0), "1 GB");
        assert_eq!(rough_size(1_500_000_000, 0), "2 GB");
        assert_eq!(rough_size(1_500_000_000, 2), "1.5 GB");
        assert_eq!(rough_size(1_234_567, 2), "1.23 MB");
        assert_eq!(rough_size(999, 2), "999 B");
        assert_eq!(rough_size(0, 0), "0 B");
        assert_eq!(rough_size(1_999_999, 2), "2 MB");
    }

    #[test]
    fn units_as_git_annex_reads_them() {
        assert_eq!(read_size("1mb"), Some(1_000_000));
        assert_eq!(read_size("1MB"), Some(1_000_000));
        assert_eq!(read_size("1m"), Some(1_000_000));
        assert_eq!(read_size("2 kilobytes"), Some(2000));
        assert_eq!(read_size("1KiB"), Some(1024));
        assert_eq!(read_size("1kib"), Some(1024));
        assert_eq!(read_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(read_size("8mbit"), Some(1_000_000));
        assert_eq!(read_size("100"), Some(100));
        assert_eq!(read_size("1e3"), Some(1000));
        assert_eq!(read_size("1mb2"), Some(1_000_000));
        assert_eq!(read_size("1.mb"), Some(1));
        assert_eq!(read_size("-1"), Some(-1));
        assert_eq!(read_size("0x10"), Some(16));
        assert_eq!(read_size("2.5"), Some(2));
        assert_eq!(read_size("3.5"), Some(4));
    }

    #[test]
    fn refused_sizes() {
        assert_eq!(read_size(""), None);
        assert_eq!(read_size("mb"), None);
        assert_eq!(read_size("1xyz"), None);
        assert_eq!(read_size("1emb"), None);
        assert_eq!(read_size("--1"), None);
    }
}
