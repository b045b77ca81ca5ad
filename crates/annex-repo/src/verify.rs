//! Verifying content against its key while it streams in, as git-annex
//! does: hash keys by their hash, WORM and URL keys by size only.

use annex_protocol::key::HashKind;
use annex_protocol::{Key, KeyVariety};
use blake2::digest::{Update, VariableOutput};
use sha2::Digest;
use thiserror::Error;

/// Why content does not match its key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// The content's size is not the key's.
    #[error("size mismatch: the key says {expected} bytes, the content has {actual}")]
    Size {
        /// The key's size.
        expected: u64,
        /// The content's size.
        actual: u64,
    },
    /// The content's digest is not the key's.
    #[error("checksum mismatch: expected {expected}, got {actual}")]
    Digest {
        /// The digest in the key.
        expected: String,
        /// The digest of the content.
        actual: String,
    },
}

/// How a key's content is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMethod {
    /// By a hash of the content (and the size, when the key has one).
    Hash(HashKind),
    /// By size only, when the key has one (WORM, URL, and backends whose
    /// hash this program does not compute).
    SizeOnly,
}

impl VerifyMethod {
    /// The method for a key.
    pub fn for_key(key: &Key) -> VerifyMethod {
        match key.variety() {
            KeyVariety::Hash { kind, .. } if Hasher::new(kind).is_some() => {
                VerifyMethod::Hash(kind)
            }
            _ => VerifyMethod::SizeOnly,
        }
    }
}

enum Hasher {
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Sha3_224(sha3::Sha3_224),
    Sha3_256(sha3::Sha3_256),
    Sha3_384(sha3::Sha3_384),
    Sha3_512(sha3::Sha3_512),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Blake2b(blake2::Blake2bVar),
    Blake2s(blake2::Blake2sVar),
}

impl Hasher {
    fn new(kind: HashKind) -> Option<Hasher> {
        Some(match kind {
            HashKind::Sha2(224) => Hasher::Sha224(Default::default()),
            HashKind::Sha2(256) => Hasher::Sha256(Default::default()),
            HashKind::Sha2(384) => Hasher::Sha384(Default::default()),
            HashKind::Sha2(512) => Hasher::Sha512(Default::default()),
            HashKind::Sha3(224) => Hasher::Sha3_224(Default::default()),
            HashKind::Sha3(256) => Hasher::Sha3_256(Default::default()),
            HashKind::Sha3(384) => Hasher::Sha3_384(Default::default()),
            HashKind::Sha3(512) => Hasher::Sha3_512(Default::default()),
            HashKind::Sha1 => Hasher::Sha1(Default::default()),
            HashKind::Md5 => Hasher::Md5(Default::default()),
            HashKind::Blake2b(bits) => {
                Hasher::Blake2b(blake2::Blake2bVar::new(bits as usize / 8).ok()?)
            }
            HashKind::Blake2s(bits) => {
                Hasher::Blake2s(blake2::Blake2sVar::new(bits as usize / 8).ok()?)
            }
            // Skein and the parallel BLAKE2 variants are not computed here.
            _ => return None,
        })
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha224(h) => Digest::update(h, b),
            Hasher::Sha256(h) => Digest::update(h, b),
            Hasher::Sha384(h) => Digest::update(h, b),
            Hasher::Sha512(h) => Digest::update(h, b),
            Hasher::Sha3_224(h) => Digest::update(h, b),
            Hasher::Sha3_256(h) => Digest::update(h, b),
            Hasher::Sha3_384(h) => Digest::update(h, b),
            Hasher::Sha3_512(h) => Digest::update(h, b),
            Hasher::Sha1(h) => Digest::update(h, b),
            Hasher::Md5(h) => Digest::update(h, b),
            Hasher::Blake2b(h) => Update::update(h, b),
            Hasher::Blake2s(h) => Update::update(h, b),
        }
    }

    fn finish_hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Sha3_224(h) => h.finalize().to_vec(),
            Hasher::Sha3_256(h) => h.finalize().to_vec(),
            Hasher::Sha3_384(h) => h.finalize().to_vec(),
            Hasher::Sha3_512(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Blake2b(h) => h.finalize_boxed().to_vec(),
            Hasher::Blake2s(h) => h.finalize_boxed().to_vec(),
        };
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// Verifies content fed to it in pieces against a key.
pub struct Verifier {
    hasher: Option<Hasher>,
    expected_digest: String,
    expected_size: Option<u64>,
    seen: u64,
}

impl Verifier {
    /// A verifier for `key`'s content.
    pub fn new(key: &Key) -> Verifier {
        let hasher = match key.variety() {
            KeyVariety::Hash { kind, .. } => Hasher::new(kind),
            _ => None,
        };
        // E backends end the name with the file's extension, which is not
        // part of the digest.
        let name = key.name();
        let digest = match key.variety() {
            KeyVariety::Hash {
                extension: true, ..
            } => name.split('.').next().unwrap_or(name),
            _ => name,
        };
        Verifier {
            hasher,
            expected_digest: digest.to_ascii_lowercase(),
            expected_size: key.size(),
            seen: 0,
        }
    }

    /// A verifier that checks only the content's size (its hash is
    /// checked by whoever sends it; see `PutSource::checks_content`).
    pub fn size_only(key: &Key) -> Verifier {
        let mut v = Verifier::new(key);
        v.hasher = None;
        v
    }

    /// Feeds the next piece of content.
    pub fn update(&mut self, bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        if let Some(h) = &mut self.hasher {
            h.update(bytes);
        }
    }

    /// Bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    /// Whether the content's hash is checked (not only its size).
    pub fn checks_hash(&self) -> bool {
        self.hasher.is_some()
    }

    /// Checks the content fed against the key.
    pub fn finish(self) -> Result<(), VerifyError> {
        if let Some(expected) = self.expected_size {
            if expected != self.seen {
                return Err(VerifyError::Size {
                    expected,
                    actual: self.seen,
                });
            }
        }
        if let Some(h) = self.hasher {
            let actual = h.finish_hex();
            if actual != self.expected_digest {
                return Err(VerifyError::Digest {
                    expected: self.expected_digest,
                    actual,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, content: &[u8]) {
        let key = Key::parse(key).unwrap();
        let mut v = Verifier::new(&key);
        for chunk in content.chunks(3) {
            v.update(chunk);
        }
        assert_eq!(v.finish(), Ok(()), "{key}");
        let mut changed = content.to_vec();
        changed[0] ^= 1;
        let mut v = Verifier::new(&key);
        let hashed = v.checks_hash();
        v.update(&changed);
        assert_eq!(v.finish().is_err(), hashed, "{key}");
        let mut v = Verifier::new(&key);
        v.update(content);
        v.update(b"!");
        assert!(matches!(v.finish(), Err(VerifyError::Size { .. })), "{key}");
    }

    /// Keys printed by `git annex calckey --backend=NAME` (git-annex
    /// 10.20250416) for a file holding "hello\n".
    #[test]
    fn matches_git_annex_keys() {
        let c = b"hello\n";
        check(
            "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt",
            c,
        );
        check(
            "SHA256-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
            c,
        );
        check("SHA1-s6--f572d396fae9206628714fb2ce00f72e94f2258f", c);
        check("MD5-s6--b1946ac92492d2347c6235b4d2611184", c);
        check("WORM-s6-m1700000000--hello.txt", c);
        check("SHA512E-s6--e7c22b994c59d9cf2b48e549b1e24666636045930d3da7c1acb299d1c3b7f931f94aae41edda2c2b207a36e10f8bcb8d45223e54878f5b316e7ce3b6bc019629.txt", c);
        check("SHA384-s6--1d0f284efe3edea4b9ca3bd514fa134b17eae361ccc7a1eefeff801b9bd6604e01f21f6bf249ef030599f0c218f2ba8c", c);
        check(
            "SHA224-s6--2d6d67d91d0badcdd06cbbba1fe11538a68a37ec9c2e26457ceff12b",
            c,
        );
        check(
            "SHA3_256-s6--b314e28493eae9dab57ac4f0c6d887bddbbeb810e900d818395ace558e96516d",
            c,
        );
        check("SHA3_512E-s6--ac766ba623301e0ad63c48cb2fc469d10145f65c9f1f28fe761c78c386ed295a1fda1b05e280354e620757d8a83e05a45f66438dd734278668c1c27ac6f27150.txt", c);
        check(
            "BLAKE2B256E-s6--93becc6e9882211c3ec3708c95bcd69baab7bb59c7f4bc84ce637b88a534b783.txt",
            c,
        );
        check("BLAKE2B512-s6--f60ce482e5cc1229f39d71313171a8d9f4ca3a87d066bf4b205effb528192a75f14f3271e2c1a90e1de53f275b4d4793eef2f5e31ea90d2ce29d2e481c36435f", c);
        check(
            "BLAKE2S256-s6--3969b3926654065966b6f8d9a65789b0f76d56e1e2ab67dd94faa770959187ca",
            c,
        );
        check("BLAKE2S160-s6--89d3241bbf3550d9c7d948399d88c392077330c8", c);
        check("BLAKE2B160-s6--d2f799bb9610968a2efa8f7682d5f2f1d45163d7", c);
        // Not computed here: verified by size only.
        let k = Key::parse("BLAKE2BP512-s6--6598ca8cb0c6d2c50be1ae3ce1ec831383fd87ae81d37428d934e73e0cddebaefa2db2fb255d73236543c966f6fd7fc4e0c0ee8158fd7dfd21339fd8a3d88403").unwrap();
        assert_eq!(VerifyMethod::for_key(&k), VerifyMethod::SizeOnly);
    }
}
