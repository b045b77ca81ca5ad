//! Sizes shown as git-annex shows them: decimal storage units (`kB`, `MB`,
//! `GB`...), rounded to a given number of decimals, and percentages.

pub use annex_preferred::size::{precise_size, rough_size, show_imprecise};

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
