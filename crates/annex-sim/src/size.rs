//! Sizes in sim files: read with git-annex's units (`10mb`, `3.3terabytes`,
//! `1GiB`), written as `git annex sim show` writes them (`1.0MB`).

/// Reads a size as git-annex's `readSize dataUnits` does.
pub fn parse_size(s: &str) -> Option<i128> {
    annex_preferred::size::read_size(s)
}

const UNITS: &[(u128, &str)] = &[
    (1_000_000_000_000_000_000_000_000_000_000, "QB"),
    (1_000_000_000_000_000_000_000_000_000, "RB"),
    (1_000_000_000_000_000_000_000_000, "YB"),
    (1_000_000_000_000_000_000_000, "ZB"),
    (1_000_000_000_000_000_000, "EB"),
    (1_000_000_000_000_000, "PB"),
    (1_000_000_000_000, "TB"),
    (1_000_000_000, "GB"),
    (1_000_000, "MB"),
    (1_000, "kB"),
    (1, "B"),
];

/// A size as git-annex's `preciseSize storageUnits True` shows it, with
/// the space taken out (`1.0MB`, `2.5kB`, `0.0B`).
pub fn format_size(n: i128) -> String {
    let (sign, b) = if n < 0 {
        ("-", n.unsigned_abs())
    } else {
        ("", n as u128)
    };
    let &(unit, abbrev) = UNITS
        .iter()
        .find(|(s, _)| b >= *s)
        .unwrap_or(&UNITS[UNITS.len() - 1]);
    format!(
        "{sign}{}{abbrev}",
        annex_preferred::size::show_double(b as f64 / unit as f64)
    )
}

/// A size rounded to two decimals with a space before the unit, as
/// reports show it (`1.5 GB`).
pub fn rough_size(n: i128) -> String {
    let (sign, b) = if n < 0 {
        ("-", n.unsigned_abs())
    } else {
        ("", n as u128)
    };
    let &(unit, abbrev) = UNITS
        .iter()
        .find(|(s, _)| b >= *s)
        .unwrap_or(&UNITS[UNITS.len() - 1]);
    let v = format!("{:.2}", b as f64 / unit as f64);
    let v = v.trim_end_matches('0').trim_end_matches('.');
    format!("{sign}{v} {abbrev}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip() {
        assert_eq!(format_size(1_000_000), "1.0MB");
        assert_eq!(format_size(2_500), "2.5kB");
        assert_eq!(format_size(0), "0.0B");
        assert_eq!(format_size(100_000_000_000), "100.0GB");
        assert_eq!(parse_size("10mb"), Some(10_000_000));
        assert_eq!(parse_size("3.3terabytes"), Some(3_300_000_000_000));
        assert_eq!(parse_size("1KiB"), Some(1024));
        assert_eq!(parse_size("x"), None);
        assert_eq!(rough_size(100_013_078_494), "100.01 GB");
        assert_eq!(rough_size(5_000_000), "5 MB");
        for n in [1, 999, 1234567, 10_000_000_000_000] {
            assert_eq!(parse_size(&format_size(n)), Some(n));
        }
    }
}
