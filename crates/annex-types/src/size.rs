//! Sizes as git-annex reads and shows them (Utility/DataUnits.hs), for
//! every place a size is written by a person or shown to one:
//! annex.diskreserve, a special remote's `chunk=`, maxsize,
//! `largerthan=`/`smallerthan=`, the simulator and the command line.
//!
//! Reading ([`read_size`], git-annex's `readSize dataUnits`): a number as
//! Haskell reads a `Double` (`1e3`, `0x10`, `(2)` and `-1` included), then
//! an optional unit, any case, from the storage (`kB`, `MB`... powers of
//! 1000), committee (`KiB`, `MiB`... powers of 1024) and bandwidth
//! (`kbit`, `Mbit`... powers of 1000 bits) tables, by abbreviation, name
//! or plural, or an abbreviation without its final `b` (`1m` is `1MB`).
//! What follows the unit's letters is ignored, and the product is rounded
//! to the nearest byte, halves to even.
//!
//! Showing ([`rough_size`], [`precise_size`]): in the largest storage
//! unit the size reaches, as git-annex's `roughSize` and `preciseSize
//! storageUnits True` show it (`1.5 GB`, `1.0 MB`, `-5 B`).
//!
//! ```
//! use annex_types::size::{precise_size, read_size, rough_size};
//!
//! assert_eq!(read_size("1kbit"), Some(125));
//! assert_eq!(read_size("1e3"), Some(1000));
//! assert_eq!(read_size("2 kilobytes"), Some(2000));
//! assert_eq!(rough_size(1_234_567u64, 2), "1.23 MB");
//! assert_eq!(precise_size(2_500u64), "2.5 kB");
//! ```

pub use crate::haskell::show_double;
use crate::haskell::{is_space, read_double};

/// A unit: how many bytes, its abbreviation and its name.
type Unit = (u128, &'static str, &'static str);

const fn pow(base: u128, n: u32) -> u128 {
    base.pow(n)
}

/// The storage units, largest first (powers of 1000).
const STORAGE: &[Unit] = &[
    (pow(1000, 10), "QB", "quettabyte"),
    (pow(1000, 9), "RB", "ronnabyte"),
    (pow(1000, 8), "YB", "yottabyte"),
    (pow(1000, 7), "ZB", "zettabyte"),
    (pow(1000, 6), "EB", "exabyte"),
    (pow(1000, 5), "PB", "petabyte"),
    (pow(1000, 4), "TB", "terabyte"),
    (pow(1000, 3), "GB", "gigabyte"),
    (pow(1000, 2), "MB", "megabyte"),
    (1000, "kB", "kilobyte"),
    (1, "B", "byte"),
];

/// The committee units (powers of 1024).
const COMMITTEE: &[Unit] = &[
    (pow(1024, 8), "YiB", "yobibyte"),
    (pow(1024, 7), "ZiB", "zebibyte"),
    (pow(1024, 6), "EiB", "exbibyte"),
    (pow(1024, 5), "PiB", "pebibyte"),
    (pow(1024, 4), "TiB", "tebibyte"),
    (pow(1024, 3), "GiB", "gibibyte"),
    (pow(1024, 2), "MiB", "mebibyte"),
    (1024, "KiB", "kibibyte"),
    (1, "B", "byte"),
];

/// The bandwidth units (powers of 1000 bits, in whole bytes).
const BANDWIDTH: &[Unit] = &[
    (pow(1000, 8) / 8, "Ybit", "yottabit"),
    (pow(1000, 7) / 8, "Zbit", "zettabit"),
    (pow(1000, 6) / 8, "Ebit", "exabit"),
    (pow(1000, 5) / 8, "Pbit", "petabit"),
    (pow(1000, 4) / 8, "Tbit", "terabit"),
    (pow(1000, 3) / 8, "Gbit", "gigabit"),
    (pow(1000, 2) / 8, "Mbit", "megabit"),
    (1000 / 8, "kbit", "kilobit"),
];

/// The bytes in a unit named `name` (git-annex's `dataUnits`, looked up
/// in its order: storage, committee, bandwidth); no name is bytes.
fn unit_multiplier(name: &str) -> Option<u128> {
    if name.is_empty() {
        return Some(1);
    }
    let name = name.to_lowercase();
    let with_b = format!("{name}b");
    STORAGE
        .iter()
        .chain(COMMITTEE)
        .chain(BANDWIDTH)
        .find_map(|&(m, abbrev, full)| {
            let abbrev = abbrev.to_lowercase();
            (abbrev == name || full == name || format!("{full}s") == name || abbrev == with_b)
                .then_some(m)
        })
}

/// Reads a size as git-annex's `readSize dataUnits` does; `None` where it
/// gives nothing. Sizes beyond `i128` are clamped to its bounds.
pub fn read_size(input: &str) -> Option<i128> {
    let (number, rest) = read_double(input)?;
    let rest = rest.trim_start_matches(is_space);
    let unit: String = rest.chars().take_while(|c| c.is_alphabetic()).collect();
    let m = unit_multiplier(&unit)?;
    let v = number * m as f64;
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

/// `bytes` in the largest storage unit it reaches (bytes below a
/// kilobyte), the number shown by `show`, then the unit's abbreviation,
/// as git-annex's `showSize storageUnits True` does.
fn show_size(bytes: i128, show: impl Fn(f64) -> String) -> String {
    let sign = if bytes < 0 { "-" } else { "" };
    let b = bytes.unsigned_abs();
    let &(size, abbrev, _) = STORAGE
        .iter()
        .find(|(s, _, _)| b >= *s)
        .unwrap_or(&STORAGE[STORAGE.len() - 1]);
    format!("{sign}{} {abbrev}", show(b as f64 / size as f64))
}

/// An approximate size with at most `precision` decimals, like `1.5 GB`
/// (git-annex's `roughSize' storageUnits True precision`).
pub fn rough_size(bytes: impl Into<i128>, precision: u32) -> String {
    show_size(bytes.into(), |v| show_imprecise(precision, v))
}

/// A precise size, like `1.0 GB` (git-annex's `preciseSize storageUnits
/// True`: the number as Haskell shows a double).
pub fn precise_size(bytes: impl Into<i128>) -> String {
    show_size(bytes.into(), show_double)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rough_sizes_as_git_annex_shows_them() {
        assert_eq!(rough_size(100u64, 0), "100 B");
        assert_eq!(rough_size(1_000_000_000u64, 0), "1 GB");
        assert_eq!(rough_size(1_500_000_000u64, 0), "2 GB");
        assert_eq!(rough_size(1_500_000_000u64, 2), "1.5 GB");
        assert_eq!(rough_size(1_234_567u64, 2), "1.23 MB");
        assert_eq!(rough_size(999u64, 2), "999 B");
        assert_eq!(rough_size(0u64, 0), "0 B");
        assert_eq!(rough_size(1_999_999u64, 2), "2 MB");
        assert_eq!(rough_size(100_013_078_494i128, 2), "100.01 GB");
        assert_eq!(rough_size(-5i128, 2), "-5 B");
    }

    #[test]
    fn precise_sizes_as_git_annex_shows_them() {
        assert_eq!(precise_size(1_000_000_000u64), "1.0 GB");
        assert_eq!(precise_size(1_500_000u64), "1.5 MB");
        assert_eq!(precise_size(0u64), "0.0 B");
        assert_eq!(precise_size(-5i128), "-5.0 B");
        assert_eq!(precise_size(u64::MAX), "18.446744073709553 EB");
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
        assert_eq!(read_size("1kbit"), Some(125));
        assert_eq!(read_size("100"), Some(100));
        assert_eq!(read_size("1e3"), Some(1000));
        assert_eq!(read_size("1mb2"), Some(1_000_000));
        assert_eq!(read_size("1.mb"), Some(1));
        assert_eq!(read_size("-1"), Some(-1));
        assert_eq!(read_size("0x10"), Some(16));
        assert_eq!(read_size("2.5"), Some(2));
        assert_eq!(read_size("3.5"), Some(4));
        assert_eq!(read_size("3.3terabytes"), Some(3_300_000_000_000));
    }

    #[test]
    fn refused_sizes() {
        assert_eq!(read_size(""), None);
        assert_eq!(read_size("mb"), None);
        assert_eq!(read_size("1xyz"), None);
        assert_eq!(read_size("1emb"), None);
        assert_eq!(read_size("--1"), None);
        assert_eq!(read_size("lots"), None);
    }

    #[test]
    fn shown_sizes_read_back() {
        for n in [1i128, 999, 1234567, 10_000_000_000_000] {
            assert_eq!(read_size(&precise_size(n)), Some(n));
        }
    }
}
