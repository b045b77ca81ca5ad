//! Repository UUIDs, and the cluster UUIDs git-annex derives from them.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

/// Why a UUID was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UuidError {
    /// The UUID was empty.
    #[error("empty UUID")]
    Empty,
    /// The UUID holds whitespace or a control character, so it could not be
    /// one word of a protocol line or a log.
    #[error("UUID contains whitespace or a control character")]
    BadCharacter,
}

/// The longest UUID that is plain (see [`Uuid::is_plain`]): room for
/// the usual 36 characters and then some.
pub const MAX_PLAIN_LEN: usize = 64;

/// The UUID of a git-annex repository.
///
/// git-annex treats UUIDs as opaque strings; this type accepts any non-empty
/// string without whitespace or control characters. New UUIDs are random
/// version 4 UUIDs in the usual textual form.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(Arc<str>);

impl Uuid {
    /// Parses a UUID as it appears in protocol messages and logs.
    pub fn parse(s: &str) -> Result<Uuid, UuidError> {
        if s.is_empty() {
            return Err(UuidError::Empty);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UuidError::BadCharacter);
        }
        Ok(Uuid(Arc::from(s)))
    }

    /// A new random (version 4) UUID.
    pub fn new_v4() -> Uuid {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(Arc::from(format_uuid_bytes(&b)))
    }

    /// A new random cluster UUID: a version 8 UUID whose first two
    /// characters are `ac`, so that no ordinary repository UUID can be
    /// mistaken for one.
    pub fn new_cluster() -> Uuid {
        Uuid::new_v4()
            .to_cluster()
            .expect("a version 4 UUID is long enough")
    }

    /// Converts a UUID of the usual 36-character form into a cluster UUID as
    /// git-annex does: `ac` for the first two characters and `8` for the
    /// fifteenth. Returns `None` for UUIDs too short to convert.
    pub fn to_cluster(&self) -> Option<Uuid> {
        let s = self.as_str();
        if s.len() <= 14
            || !s.is_char_boundary(2)
            || !s.is_char_boundary(14)
            || !s.is_char_boundary(15)
        {
            return None;
        }
        Some(Uuid(Arc::from(format!("ac{}8{}", &s[2..14], &s[15..]))))
    }

    /// Whether this is a cluster UUID (`ac` prefix, `8` as the fifteenth
    /// character), as git-annex recognises them.
    pub fn is_cluster(&self) -> bool {
        let b = self.0.as_bytes();
        b.starts_with(b"ac") && b.get(14) == Some(&b'8')
    }

    /// Whether the UUID is plain: 1 to [`MAX_PLAIN_LEN`] ASCII letters,
    /// digits and `-`.
    ///
    /// git-annex treats a UUID as an opaque string, but every UUID it
    /// makes is plain: the 36 characters of the usual textual form
    /// (repositories, clusters, the web and bittorrent remotes, the
    /// simulator's), and so is every UUID its own test generator makes.
    /// Where this workspace reads a UUID from the git-annex branch (which
    /// anyone who can push to the repository writes) and would use it to
    /// name a repository to reach (proxy.log, cluster.log), it takes only
    /// plain UUIDs, and skips the rest with a warning. Protocol messages
    /// keep accepting any UUID [`Uuid::parse`] takes, as git-annex does.
    pub fn is_plain(&self) -> bool {
        let b = self.0.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_PLAIN_LEN
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    }

    /// The UUID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn format_uuid_bytes(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({})", &*self.0)
    }
}

impl std::str::FromStr for Uuid {
    type Err = UuidError;
    fn from_str(s: &str) -> Result<Uuid, UuidError> {
        Uuid::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_has_the_usual_form() {
        let u = Uuid::new_v4();
        let s = u.as_str();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(!u.is_cluster() || s.starts_with("ac"));
        assert_ne!(Uuid::new_v4(), u);
    }

    #[test]
    fn cluster_uuids() {
        let c = Uuid::new_cluster();
        assert!(c.is_cluster());
        assert_eq!(c.as_str().len(), 36);
        // The one from the reference's uuid.log.
        let seen = Uuid::parse("acc31671-1bd0-8a6e-b4cd-d2a6f8bb2a8c").unwrap();
        assert!(seen.is_cluster());
        let plain = Uuid::parse("c31671ab-1bd0-4a6e-b4cd-d2a6f8bb2a8c").unwrap();
        assert!(!plain.is_cluster());
        assert!(plain.to_cluster().unwrap().is_cluster());
        assert_eq!(Uuid::parse("short").unwrap().to_cluster(), None);
    }

    #[test]
    fn plain_uuids() {
        let plain = |s: &str| Uuid::parse(s).unwrap().is_plain();
        assert!(plain("c31671ab-1bd0-4a6e-b4cd-d2a6f8bb2a8c"));
        assert!(plain("00000000-0000-0000-0000-000000000001"));
        assert!(plain("ABC-def-0"));
        assert!(plain(&"a".repeat(MAX_PLAIN_LEN)));
        assert!(Uuid::new_v4().is_plain());
        assert!(Uuid::new_cluster().is_plain());
        assert!(!plain(&"a".repeat(MAX_PLAIN_LEN + 1)));
        for bad in [
            "a;touch${IFS}/tmp/x;b",
            "a'b",
            "a/b",
            "a:b",
            "a%20b",
            "été",
            "a_b",
        ] {
            assert!(!plain(bad), "{bad}");
        }
    }

    #[test]
    fn refuses_bad_uuids() {
        assert_eq!(Uuid::parse(""), Err(UuidError::Empty));
        assert_eq!(Uuid::parse("a b"), Err(UuidError::BadCharacter));
        assert_eq!(Uuid::parse("a\nb"), Err(UuidError::BadCharacter));
    }
}
