//! Benchmarks of the annex crates. The criterion benchmarks are under
//! `benches/benches/`; run them with `cargo bench -p annex-benches`.
//!
//! ```
//! assert_eq!(
//!     annex_benches::split_url("http://127.0.0.1:9417/git-annex/"),
//!     Some(("127.0.0.1:9417", "/git-annex/"))
//! );
//! ```

/// The authority (`host:port`) and path of an `http://` URL, for the
/// load-generating binaries.
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    (!authority.is_empty()).then_some((authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9417/git-annex/x?a=b"),
            Some(("127.0.0.1:9417", "/git-annex/x?a=b"))
        );
        assert_eq!(split_url("http://h:1"), Some(("h:1", "/")));
        assert_eq!(split_url("https://h/"), None);
        assert_eq!(split_url("http:///x"), None);
    }
}
