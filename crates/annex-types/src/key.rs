//! git-annex keys: `BACKEND[-sSIZE][-mMTIME][-SCHUNK-CNUM]--NAME`.
//!
//! A [`Key`] keeps its serialisation, so formatting a parsed key gives back
//! the bytes it was parsed from (git-annex normalises numeric fields, and so
//! does this type: `-s007` is formatted as `-s7`, the only case where the
//! bytes change).

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The key was empty.
    #[error("empty key")]
    Empty,
    /// The key holds whitespace, NUL or another control character.
    #[error("key contains whitespace or a control character")]
    BadCharacter,
    /// The backend name before the first `-` is missing.
    #[error("key has no backend name")]
    NoBackend,
    /// The key has no `--` separating its fields from its name.
    #[error("key has no \"--\" before its name")]
    NoName,
    /// A field between the backend and `--` is not one git-annex knows, or
    /// is not a decimal number.
    #[error("key has an unknown or malformed field")]
    BadField,
    /// A numeric field does not fit in 64 bits.
    #[error("key field is too large")]
    FieldTooLarge,
    /// The extension of an E backend key is longer than git-annex allows.
    #[error("key extension is longer than 64 bytes")]
    ExtensionTooLong,
}

/// The longest extension git-annex accepts in the name of an E backend key.
const MAX_EXTENSION_LEN: usize = 64;

/// A git-annex key.
///
/// Cheap to clone (the serialisation is shared). Equality and ordering
/// compare the serialisation.
#[derive(Clone)]
pub struct Key {
    text: Arc<str>,
    /// Byte offset of the name (just after `--`).
    name_start: u32,
    /// Length of the backend name.
    backend_len: u32,
    size: Option<u64>,
    mtime: Option<u64>,
    chunk_size: Option<u64>,
    chunk_num: Option<u64>,
}

// Every field but the text is derived from the text: equality, order and
// hashing look at the text alone (and equality first at whether the text
// is the same shared string, which clones of a key are).
impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        Arc::ptr_eq(&self.text, &other.text) || self.text == other.text
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

/// The parts of a key, for building one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyParts<'a> {
    /// The backend, such as `SHA256E`, `WORM` or `URL`.
    pub backend: &'a str,
    /// The `-s` field: the size of the content in bytes.
    pub size: Option<u64>,
    /// The `-m` field: a modification time in seconds.
    pub mtime: Option<u64>,
    /// The `-S` field: the chunk size of a chunked key.
    pub chunk_size: Option<u64>,
    /// The `-C` field: the number of a chunk.
    pub chunk_num: Option<u64>,
    /// The name, after `--`.
    pub name: &'a str,
}

impl Key {
    /// Parses a key as git-annex does, refusing whitespace and control
    /// characters.
    pub fn parse(s: &str) -> Result<Key, KeyError> {
        Self::parse_bytes(s.as_bytes())
    }

    /// Parses a key from bytes. Keys are bytes to git-annex; this type keeps
    /// only those that are valid UTF-8, which every backend git-annex makes
    /// produces (a key with other bytes is refused as a bad character).
    pub fn parse_bytes(b: &[u8]) -> Result<Key, KeyError> {
        if b.is_empty() {
            return Err(KeyError::Empty);
        }
        if b.iter().any(|&c| c <= b' ' || c == 0x7f) {
            return Err(KeyError::BadCharacter);
        }
        let s = std::str::from_utf8(b).map_err(|_| KeyError::BadCharacter)?;
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(KeyError::BadCharacter);
        }
        let backend_len = s.find('-').ok_or(KeyError::NoName)?;
        if backend_len == 0 {
            return Err(KeyError::NoBackend);
        }
        let backend = &s[..backend_len];
        let mut rest = &s[backend_len..];
        let mut fields: [Option<u64>; 4] = [None; 4];
        let mut canonical = true;
        // Fields come in a fixed order, each at most once, as git-annex's
        // parser requires.
        for (slot, letter) in [b's', b'm', b'S', b'C'].iter().enumerate() {
            let rb = rest.as_bytes();
            if rb.len() >= 2 && rb[0] == b'-' && rb[1] == *letter {
                let digits = rb[2..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 {
                    // git-annex would fail this field, then fail on "--".
                    return Err(KeyError::BadField);
                }
                let num = &rest[2..2 + digits];
                if num.len() > 1 && num.starts_with('0') {
                    canonical = false;
                }
                let v = parse_decimal(num)?;
                fields[slot] = Some(v);
                rest = &rest[2 + digits..];
            }
        }
        let name = rest.strip_prefix("--").ok_or(if rest.starts_with('-') {
            KeyError::BadField
        } else {
            KeyError::NoName
        })?;
        if has_extension(backend) {
            let ext = name.find('.').map(|i| &name[i..]).unwrap_or("");
            if ext.len() > MAX_EXTENSION_LEN {
                return Err(KeyError::ExtensionTooLong);
            }
        }
        let [size, mtime, chunk_size, chunk_num] = fields;
        if canonical {
            let name_start = (s.len() - name.len()) as u32;
            Ok(Key {
                text: Arc::from(s),
                name_start,
                backend_len: backend_len as u32,
                size,
                mtime,
                chunk_size,
                chunk_num,
            })
        } else {
            Ok(Key::build(&KeyParts {
                backend,
                size,
                mtime,
                chunk_size,
                chunk_num,
                name,
            }))
        }
    }

    /// Builds a key from its parts. The parts are not validated; use
    /// [`Key::from_parts`] for parts that come from outside.
    fn build(p: &KeyParts<'_>) -> Key {
        use std::fmt::Write;
        let mut s = String::with_capacity(p.backend.len() + p.name.len() + 24);
        s.push_str(p.backend);
        for (letter, v) in [
            ('s', p.size),
            ('m', p.mtime),
            ('S', p.chunk_size),
            ('C', p.chunk_num),
        ] {
            if let Some(v) = v {
                let _ = write!(s, "-{letter}{v}");
            }
        }
        s.push_str("--");
        let name_start = s.len() as u32;
        s.push_str(p.name);
        Key {
            text: Arc::from(s),
            name_start,
            backend_len: p.backend.len() as u32,
            size: p.size,
            mtime: p.mtime,
            chunk_size: p.chunk_size,
            chunk_num: p.chunk_num,
        }
    }

    /// Builds a key from its parts, validating the result as [`Key::parse`]
    /// would.
    pub fn from_parts(parts: &KeyParts<'_>) -> Result<Key, KeyError> {
        if parts.backend.contains('-') {
            return Err(KeyError::BadField);
        }
        let k = Key::build(parts);
        // Re-parse so that the same rules apply to built and parsed keys.
        Key::parse(k.as_str())
    }

    /// The key's serialisation.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key's serialisation as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// The backend name, such as `SHA256E`.
    pub fn backend(&self) -> &str {
        &self.text[..self.backend_len as usize]
    }

    /// The name after `--`.
    pub fn name(&self) -> &str {
        &self.text[self.name_start as usize..]
    }

    /// The `-s` field: the size of the content, when the key records it.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The `-m` field.
    pub fn mtime(&self) -> Option<u64> {
        self.mtime
    }

    /// The `-S` field.
    pub fn chunk_size(&self) -> Option<u64> {
        self.chunk_size
    }

    /// The `-C` field.
    pub fn chunk_num(&self) -> Option<u64> {
        self.chunk_num
    }

    /// The parsed backend.
    pub fn variety(&self) -> KeyVariety {
        KeyVariety::parse(self.backend())
    }

    /// The extension at the end of the name of an E backend key (from the
    /// first `.`, the dot included), or `""`.
    pub fn extension(&self) -> &str {
        if !has_extension(self.backend()) {
            return "";
        }
        let name = self.name();
        name.find('.').map(|i| &name[i..]).unwrap_or("")
    }

    /// The key as a file name, escaped as git-annex escapes it (`&` -> `&a`,
    /// `%` -> `&s`, `:` -> `&c`, `/` -> `%`). The result never contains `/`
    /// and is never `.` or `..`.
    pub fn to_file_name(&self) -> String {
        let mut out = String::new();
        self.push_file_name(&mut out);
        out
    }

    /// Appends [`Key::to_file_name`] to `out`.
    pub fn push_file_name(&self, out: &mut String) {
        let s = self.as_str();
        if !s.contains(['&', '%', ':', '/']) {
            out.push_str(s);
            return;
        }
        out.reserve(s.len() + 8);
        for c in s.chars() {
            match c {
                '&' => out.push_str("&a"),
                '%' => out.push_str("&s"),
                ':' => out.push_str("&c"),
                '/' => out.push('%'),
                c => out.push(c),
            }
        }
    }

    /// Reverses [`Key::to_file_name`].
    pub fn from_file_name(name: &str) -> Result<Key, KeyError> {
        let mut out = String::with_capacity(name.len());
        let mut chars = name.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => out.push('/'),
                '&' => match chars.next() {
                    Some('a') => out.push('&'),
                    Some('s') => out.push('%'),
                    Some('c') => out.push(':'),
                    Some(other) => out.push(other),
                    None => {}
                },
                c => out.push(c),
            }
        }
        Key::parse(&out)
    }

    /// The key without its chunk fields (`-S`, `-C`), as git-annex hashes
    /// it: every chunk of a key lives in the key's hash directories.
    fn hash_source(&self) -> std::borrow::Cow<'_, str> {
        if self.chunk_size().is_none() && self.chunk_num().is_none() {
            return std::borrow::Cow::Borrowed(self.as_str());
        }
        let s = self.as_str();
        let Some(sep) = s.find("--") else {
            return std::borrow::Cow::Borrowed(s);
        };
        let (fields, name) = s.split_at(sep);
        let mut parts = fields.split('-');
        let mut out = String::with_capacity(s.len());
        out.push_str(parts.next().unwrap_or(""));
        for f in parts {
            if !(f.starts_with('S') || f.starts_with('C')) {
                out.push('-');
                out.push_str(f);
            }
        }
        out.push_str(name);
        std::borrow::Cow::Owned(out)
    }

    /// The two-level hash directory git-annex uses in non-bare repositories
    /// (`.git/annex/objects/Xx/Yy/`): mixed case, from the MD5 of the key
    /// (without its chunk fields).
    pub fn hash_dir_mixed(&self) -> String {
        crate::hashdirs::hash_dir_mixed(self.hash_source().as_bytes())
    }

    /// The two-level hash directory git-annex uses in bare repositories and
    /// special remotes (`annex/objects/xxx/yyy/`): lower case, from the MD5
    /// of the key (without its chunk fields).
    pub fn hash_dir_lower(&self) -> String {
        crate::hashdirs::hash_dir_lower(self.hash_source().as_bytes())
    }

    /// Both hash directories at once (one MD5 instead of two).
    pub fn hash_dirs(&self) -> crate::hashdirs::HashDirs {
        crate::hashdirs::HashDirs::of(self.hash_source().as_bytes())
    }
}

fn parse_decimal(digits: &str) -> Result<u64, KeyError> {
    let mut v: u64 = 0;
    for d in digits.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(KeyError::FieldTooLarge)?;
    }
    Ok(v)
}

/// Whether keys of this backend carry an extension at the end of the name.
fn has_extension(backend: &str) -> bool {
    KeyVariety::parse(backend).has_extension()
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", &*self.text)
    }
}

impl std::str::FromStr for Key {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Key, KeyError> {
        Key::parse(s)
    }
}

/// The kind of hash a backend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// SHA-2 with the given output size in bits (224, 256, 384, 512).
    Sha2(u16),
    /// SHA-3 with the given output size in bits.
    Sha3(u16),
    /// Skein with the given output size in bits.
    Skein(u16),
    /// BLAKE2b with the given output size in bits.
    Blake2b(u16),
    /// BLAKE2bp with the given output size in bits.
    Blake2bp(u16),
    /// BLAKE2s with the given output size in bits.
    Blake2s(u16),
    /// BLAKE2sp with the given output size in bits.
    Blake2sp(u16),
    /// SHA-1.
    Sha1,
    /// MD5.
    Md5,
}

/// The backend of a key, as git-annex classifies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyVariety {
    /// A cryptographic hash of the content; `extension` for the E backends.
    Hash {
        /// Which hash.
        kind: HashKind,
        /// Whether the name ends with the file's extension.
        extension: bool,
    },
    /// WORM: name, size and mtime of the file; verified by size only.
    Worm,
    /// URL: content at a URL; verified by size only.
    Url,
    /// VURL: a URL key with verifiable content.
    Vurl,
    /// A git bundle (git-remote-annex).
    GitBundle,
    /// A git manifest (git-remote-annex).
    GitManifest,
    /// An external backend (`X` prefix).
    External {
        /// The backend name without `X` and `E`.
        name: String,
        /// Whether the name ends with the file's extension.
        extension: bool,
    },
    /// Any other backend name.
    Other(String),
}

impl KeyVariety {
    /// Classifies a backend name.
    pub fn parse(backend: &str) -> KeyVariety {
        use HashKind::*;
        let (base, ext) = match backend.strip_suffix('E') {
            Some(b) => (b, true),
            None => (backend, false),
        };
        let sized = |prefix: &str, allowed: &[u16], mk: fn(u16) -> HashKind| {
            base.strip_prefix(prefix)
                .and_then(|n| n.parse::<u16>().ok())
                .filter(|n| allowed.contains(n))
                .map(mk)
        };
        let kind = match base {
            "SHA1" => Some(Sha1),
            "MD5" => Some(Md5),
            _ => sized("SHA3_", &[224, 256, 384, 512], Sha3)
                .or_else(|| sized("SHA", &[224, 256, 384, 512], Sha2))
                .or_else(|| sized("SKEIN", &[256, 512], Skein))
                .or_else(|| sized("BLAKE2BP", &[512], Blake2bp))
                .or_else(|| sized("BLAKE2SP", &[224, 256], Blake2sp))
                .or_else(|| sized("BLAKE2B", &[160, 224, 256, 384, 512], Blake2b))
                .or_else(|| sized("BLAKE2S", &[160, 224, 256], Blake2s)),
        };
        // The number must be written exactly as git-annex writes it.
        let kind = kind.filter(|k| format_hash(*k) == base);
        if let Some(kind) = kind {
            return KeyVariety::Hash {
                kind,
                extension: ext,
            };
        }
        match backend {
            "WORM" => KeyVariety::Worm,
            "URL" => KeyVariety::Url,
            "VURL" => KeyVariety::Vurl,
            "GITBUNDLE" => KeyVariety::GitBundle,
            "GITMANIFEST" => KeyVariety::GitManifest,
            b if b.starts_with('X') => {
                let rest = &b[1..];
                match rest.strip_suffix('E') {
                    Some(n) if !rest.is_empty() => KeyVariety::External {
                        name: n.to_owned(),
                        extension: true,
                    },
                    _ => KeyVariety::External {
                        name: rest.to_owned(),
                        extension: false,
                    },
                }
            }
            b => KeyVariety::Other(b.to_owned()),
        }
    }

    /// Whether keys of this variety carry an extension in their name.
    pub fn has_extension(&self) -> bool {
        match self {
            KeyVariety::Hash { extension, .. } | KeyVariety::External { extension, .. } => {
                *extension
            }
            KeyVariety::Other(s) => s.ends_with('E'),
            _ => false,
        }
    }
}

fn format_hash(k: HashKind) -> String {
    match k {
        HashKind::Sha2(n) => format!("SHA{n}"),
        HashKind::Sha3(n) => format!("SHA3_{n}"),
        HashKind::Skein(n) => format!("SKEIN{n}"),
        HashKind::Blake2b(n) => format!("BLAKE2B{n}"),
        HashKind::Blake2bp(n) => format!("BLAKE2BP{n}"),
        HashKind::Blake2s(n) => format!("BLAKE2S{n}"),
        HashKind::Blake2sp(n) => format!("BLAKE2SP{n}"),
        HashKind::Sha1 => "SHA1".to_owned(),
        HashKind::Md5 => "MD5".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunk_keys_hash_as_their_key() {
        // From git annex examinekey: chunks live in their key's directories.
        let k = Key::parse("SHA256E-s100-S10-C2--abc.txt").unwrap();
        assert_eq!(k.hash_dir_lower(), "495/b95/");
        assert_eq!(k.hash_dir_mixed(), "x9/5Z/");
        let k = Key::parse("WORM-s5-m10-S2-C1--x").unwrap();
        assert_eq!(k.hash_dir_lower(), "6b6/4ce/");
        assert_eq!(k.hash_dir_mixed(), "wq/p6/");
    }

    use super::*;

    #[test]
    fn parses_fields() {
        let k = Key::parse("SHA256E-s1048576-m1700000000-S100-C2--abc.tar.gz").unwrap();
        assert_eq!(k.backend(), "SHA256E");
        assert_eq!(k.size(), Some(1048576));
        assert_eq!(k.mtime(), Some(1700000000));
        assert_eq!(k.chunk_size(), Some(100));
        assert_eq!(k.chunk_num(), Some(2));
        assert_eq!(k.name(), "abc.tar.gz");
        assert_eq!(k.extension(), ".tar.gz");
        assert_eq!(
            k.variety(),
            KeyVariety::Hash {
                kind: HashKind::Sha2(256),
                extension: true
            }
        );
    }

    #[test]
    fn round_trips_bytes() {
        for s in [
            "SHA256E-s0--e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "WORM-s3-m1700000000--dir/file:name",
            "URL--http://example.com/a%20b&c",
            "URL-s12--http&c%%x",
            "XFOOE-s1--x.y",
            "SHA1--",
            "MD5E-s5--n-a-m-e.-s5",
        ] {
            assert_eq!(Key::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn normalises_leading_zeros_like_git_annex() {
        assert_eq!(
            Key::parse("SHA256-s007--x").unwrap().as_str(),
            "SHA256-s7--x"
        );
    }

    #[test]
    fn refuses_bad_keys() {
        assert_eq!(Key::parse(""), Err(KeyError::Empty));
        assert_eq!(Key::parse("SHA256--a b"), Err(KeyError::BadCharacter));
        assert_eq!(Key::parse("SHA256--a\tb"), Err(KeyError::BadCharacter));
        assert_eq!(Key::parse("SHA256--a\0b"), Err(KeyError::BadCharacter));
        assert_eq!(Key::parse("SHA256--a\u{85}b"), Err(KeyError::BadCharacter));
        assert_eq!(Key::parse("--x"), Err(KeyError::NoBackend));
        assert_eq!(Key::parse("SHA256"), Err(KeyError::NoName));
        assert_eq!(Key::parse("SHA256-x--y"), Err(KeyError::BadField));
        assert_eq!(Key::parse("SHA256-s--y"), Err(KeyError::BadField));
        assert_eq!(Key::parse("SHA256-m1-s1--y"), Err(KeyError::BadField));
        assert_eq!(
            Key::parse("SHA256-s99999999999999999999--y"),
            Err(KeyError::FieldTooLarge)
        );
        let long = format!("SHA256E--x.{}", "a".repeat(64));
        assert_eq!(Key::parse(&long), Err(KeyError::ExtensionTooLong));
        // Without E the extension is not limited.
        assert!(Key::parse(&format!("SHA256--x.{}", "a".repeat(64))).is_ok());
    }

    #[test]
    fn file_names_escape_like_git_annex() {
        let k = Key::parse("URL--http://x/a&b%c").unwrap();
        let f = k.to_file_name();
        assert_eq!(f, "URL--http&c%%x%a&ab&sc");
        assert!(!f.contains('/'));
        assert_eq!(Key::from_file_name(&f).unwrap(), k);
        let dots = Key::parse("WORM--../../etc/passwd").unwrap();
        assert_eq!(dots.to_file_name(), "WORM--..%..%etc%passwd");
    }

    #[test]
    fn classifies_backends() {
        assert_eq!(
            KeyVariety::parse("SHA256"),
            KeyVariety::Hash {
                kind: HashKind::Sha2(256),
                extension: false
            }
        );
        assert_eq!(
            KeyVariety::parse("SHA3_512E"),
            KeyVariety::Hash {
                kind: HashKind::Sha3(512),
                extension: true
            }
        );
        assert_eq!(
            KeyVariety::parse("BLAKE2BP512"),
            KeyVariety::Hash {
                kind: HashKind::Blake2bp(512),
                extension: false
            }
        );
        assert_eq!(
            KeyVariety::parse("BLAKE2SP224E"),
            KeyVariety::Hash {
                kind: HashKind::Blake2sp(224),
                extension: true
            }
        );
        assert_eq!(
            KeyVariety::parse("SHA1E"),
            KeyVariety::Hash {
                kind: HashKind::Sha1,
                extension: true
            }
        );
        assert_eq!(
            KeyVariety::parse("SHA0256"),
            KeyVariety::Other("SHA0256".into())
        );
        assert_eq!(KeyVariety::parse("WORM"), KeyVariety::Worm);
        assert_eq!(
            KeyVariety::parse("XE"),
            KeyVariety::External {
                name: "".into(),
                extension: true
            }
        );
        assert_eq!(
            KeyVariety::parse("X"),
            KeyVariety::External {
                name: "".into(),
                extension: false
            }
        );
        assert_eq!(
            KeyVariety::parse("XFOOE"),
            KeyVariety::External {
                name: "FOO".into(),
                extension: true
            }
        );
    }
}
