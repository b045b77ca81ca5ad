//! Sizes shown as git-annex shows them: decimal storage units (`kB`, `MB`,
//! `GB`...), rounded to a given number of decimals, and percentages.

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
    show_size(bytes, true, annex_preferred::size::show_double)
}

/// A percentage of `have` in `full`, with no decimals, like `42%`.
pub fn percentage(full: u64, have: u64) -> String {
    if full == 0 {
        return "0%".into();
    }
    let p = have as f64 * 100.0 / full as f64;
    format!("{}%", show_imprecise(0, p))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn precise_and_percentages() {
        assert_eq!(precise_size(1_000_000_000), "1.0 GB");
        assert_eq!(precise_size(1_500_000), "1.5 MB");
        assert_eq!(percentage(1000, 0), "0%");
        // Halves round to even, as Haskell's round does.
        assert_eq!(percentage(1000, 425), "42%");
        assert_eq!(percentage(1000, 435), "44%");
        assert_eq!(percentage(0, 5), "0%");
    }
}
