//! Object names in the bucket, as git-annex names them: `fileprefix`
//! followed by the key (a chunk's key for chunked content), and
//! `fileprefix` followed by `annex-uuid` for the object holding the
//! remote's UUID.
//!
//! The object store itself ([`super::client`]) works with any name
//! (an export layer names objects by their path in a tree); every name
//! is checked here so that it stays inside the bucket once made into a
//! URL.

use annex_protocol::Key;

/// Why a name cannot be an object's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} cannot name an object in the bucket")]
pub struct BadName(pub String);

/// Checks a `fileprefix`: names made with it must stay names of objects
/// in the bucket (no `.` or `..` path segment, no leading `/`, no
/// control character).
pub fn check_prefix(prefix: &str) -> Result<(), BadName> {
    if prefix.is_empty() {
        return Ok(());
    }
    // A prefix is checked as the start of a name.
    check_name(&format!("{prefix}x"))
}

/// Checks that `name` names an object in the bucket: not empty, not
/// starting with `/`, with no `.` or `..` segment (which a URL would
/// resolve), no control characters, at most 1024 bytes (S3's limit).
pub fn check_name(name: &str) -> Result<(), BadName> {
    let bad = || Err(BadName(name.to_owned()));
    if name.is_empty() || name.len() > 1024 || name.starts_with('/') {
        return bad();
    }
    if name.chars().any(char::is_control) {
        return bad();
    }
    if name.split('/').any(|seg| seg == "." || seg == "..") {
        return bad();
    }
    Ok(())
}

/// The names of a remote's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    prefix: String,
}

impl Naming {
    /// Names under `prefix` (the remote's `fileprefix`, checked with
    /// [`check_prefix`]).
    pub fn new(prefix: &str) -> Result<Naming, BadName> {
        check_prefix(prefix)?;
        Ok(Naming {
            prefix: prefix.to_owned(),
        })
    }

    /// The object holding a key's content (or a chunk's).
    pub fn key(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    /// The object holding the remote's UUID.
    pub fn uuid_object(&self) -> String {
        format!("{}annex-uuid", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_git_annex_writes_them() {
        let k = Key::parse("SHA256E-s3500000-S1048576-C2--abc.bin").unwrap();
        let n = Naming::new("pre/").unwrap();
        assert_eq!(n.key(&k), "pre/SHA256E-s3500000-S1048576-C2--abc.bin");
        assert_eq!(n.uuid_object(), "pre/annex-uuid");
        let plain = Naming::new("").unwrap();
        assert_eq!(plain.uuid_object(), "annex-uuid");
    }

    #[test]
    fn names_that_would_leave_the_bucket_are_refused() {
        for p in ["../", "/abs/", "a/./b/", "a/../", "x\n"] {
            assert!(Naming::new(p).is_err(), "{p:?}");
        }
        for p in ["", "pre/", "a.b/..c/", "dir/sub-"] {
            assert!(Naming::new(p).is_ok(), "{p:?}");
        }
        assert!(check_name("a/b.txt").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(1025)).is_err());
    }
}
