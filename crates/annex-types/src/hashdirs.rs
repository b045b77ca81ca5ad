//! The hash directories git-annex puts object files in, derived from the MD5
//! of the key with its chunk fields removed.

use md5::{Digest, Md5};

/// The 32 characters of git-annex's mixed-case directory alphabet.
const MIXED_ALPHABET: &[u8; 32] = b"0123456789zqjxkmvwgpfZQJXKMVWGPF";

fn md5_of_unchunked(key: &[u8]) -> [u8; 16] {
    Md5::digest(strip_chunk_fields(key)).into()
}

/// The key's serialisation without `-S` and `-C` fields, as git-annex's
/// nonChunkKey gives it.
fn strip_chunk_fields(key: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let Some(sep) = find_double_dash(key) else {
        return key.into();
    };
    let head = &key[..sep];
    let has_chunk = head
        .windows(2)
        .any(|w| w[0] == b'-' && (w[1] == b'S' || w[1] == b'C'));
    if !has_chunk {
        return key.into();
    }
    let mut out = Vec::with_capacity(key.len());
    let mut fields = head.split(|&c| c == b'-');
    if let Some(backend) = fields.next() {
        out.extend_from_slice(backend);
    }
    for f in fields {
        if matches!(f.first(), Some(b'S') | Some(b'C')) {
            continue;
        }
        out.push(b'-');
        out.extend_from_slice(f);
    }
    out.extend_from_slice(&key[sep..]);
    out.into()
}

fn find_double_dash(key: &[u8]) -> Option<usize> {
    key.windows(2).position(|w| w == b"--")
}

/// Both of a key's hash directories, from one MD5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashDirs {
    mixed: [u8; 6],
    lower: [u8; 8],
}

impl HashDirs {
    /// The hash directories of the key serialised as `key`.
    pub(crate) fn of(key: &[u8]) -> HashDirs {
        let d = md5_of_unchunked(key);
        let word = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        // Only the first four characters of the mixed-case alphabet's
        // encoding are used.
        let c = |x: u32| MIXED_ALPHABET[((word >> (6 * x)) & 31) as usize];
        // git-annex swaps each pair of characters.
        let mixed = [c(1), c(0), b'/', c(3), c(2), b'/'];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let h = |i: usize| HEX[usize::from(d[i / 2] >> (4 * (1 - i % 2)) & 15)];
        let lower = [h(0), h(1), h(2), b'/', h(3), h(4), h(5), b'/'];
        HashDirs { mixed, lower }
    }

    /// `Xx/Yy/`: mixed case, two levels of two characters (the layout of
    /// non-bare repositories).
    pub fn mixed(&self) -> &str {
        // The alphabet and the separators are ASCII.
        std::str::from_utf8(&self.mixed).unwrap_or_default()
    }

    /// `xxx/yyy/`: lower-case hex, two levels of three characters (the
    /// layout of bare repositories and special remotes).
    pub fn lower(&self) -> &str {
        std::str::from_utf8(&self.lower).unwrap_or_default()
    }
}

/// `Xx/Yy/`-style directory: mixed case, two levels of two characters.
pub(crate) fn hash_dir_mixed(key: &[u8]) -> String {
    HashDirs::of(key).mixed().to_owned()
}

/// `xxx/yyy/`-style directory: lower-case hex, two levels of three.
pub(crate) fn hash_dir_lower(key: &[u8]) -> String {
    HashDirs::of(key).lower().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by `git annex examinekey --format '${hashdirmixed}
    /// ${hashdirlower}'` (git-annex 10.20250416).
    #[test]
    fn matches_git_annex() {
        for (key, mixed, lower) in [
            (
                "SHA256E-s3--2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae.txt",
                "JV/jx/",
                "fbd/530/",
            ),
            ("WORM-s3-m17--a", "qF/wz/", "ffa/2c4/"),
            ("SHA256-s10-S5-C2--abc", "7w/99/", "f19/9a4/"),
            ("URL--http://x/a&b%c", "8Q/w9/", "369/ac4/"),
        ] {
            assert_eq!(hash_dir_mixed(key.as_bytes()), mixed, "{key}");
            assert_eq!(hash_dir_lower(key.as_bytes()), lower, "{key}");
        }
    }

    #[test]
    fn strips_chunk_fields_only() {
        assert_eq!(
            &*strip_chunk_fields(b"SHA256-s10-S5-C2--a-S1"),
            b"SHA256-s10--a-S1"
        );
        assert_eq!(&*strip_chunk_fields(b"WORM--x"), b"WORM--x");
    }
}
