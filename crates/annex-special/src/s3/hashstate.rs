//! SHA-256 and SHA-512 whose state between two pieces of content can be
//! saved and restored, so that a multipart upload interrupted after some
//! parts resumes hashing where they end, without reading them back.

use sha2::digest::generic_array::GenericArray;

/// Which SHA-2 function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sha2Kind {
    /// SHA-256.
    S256,
    /// SHA-512.
    S512,
}

impl Sha2Kind {
    /// The kind for a key backend's hash, if its state can be saved.
    pub(crate) fn for_hash(kind: annex_protocol::key::HashKind) -> Option<Sha2Kind> {
        match kind {
            annex_protocol::key::HashKind::Sha2(256) => Some(Sha2Kind::S256),
            annex_protocol::key::HashKind::Sha2(512) => Some(Sha2Kind::S512),
            _ => None,
        }
    }

    fn block(self) -> usize {
        match self {
            Sha2Kind::S256 => 64,
            Sha2Kind::S512 => 128,
        }
    }

    /// Its name in a saved state.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Sha2Kind::S256 => "sha256",
            Sha2Kind::S512 => "sha512",
        }
    }
}

const IV256: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const IV512: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Words {
    S256([u32; 8]),
    S512([u64; 8]),
}

/// A SHA-256 or SHA-512 computation in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sha2State {
    words: Words,
    /// Bytes fed not yet compressed (less than a block).
    tail: Vec<u8>,
    /// Bytes fed in all.
    len: u64,
}

impl Sha2State {
    /// A computation that has seen nothing.
    pub(crate) fn new(kind: Sha2Kind) -> Sha2State {
        Sha2State {
            words: match kind {
                Sha2Kind::S256 => Words::S256(IV256),
                Sha2Kind::S512 => Words::S512(IV512),
            },
            tail: Vec::new(),
            len: 0,
        }
    }

    /// Which function this computes.
    pub(crate) fn kind(&self) -> Sha2Kind {
        match self.words {
            Words::S256(_) => Sha2Kind::S256,
            Words::S512(_) => Sha2Kind::S512,
        }
    }

    /// Bytes fed so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn compress(&mut self, block: &[u8]) {
        match &mut self.words {
            Words::S256(w) => {
                sha2::compress256(w, std::slice::from_ref(GenericArray::from_slice(block)))
            }
            Words::S512(w) => {
                sha2::compress512(w, std::slice::from_ref(GenericArray::from_slice(block)))
            }
        }
    }

    /// Feeds the next bytes.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        let block = self.kind().block();
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let n = (block - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.tail.len() < block {
                return;
            }
            let full = std::mem::take(&mut self.tail);
            self.compress(&full);
        }
        let whole = data.len() - data.len() % block;
        for b in data[..whole].chunks_exact(block) {
            self.compress(b);
        }
        self.tail.extend_from_slice(&data[whole..]);
    }

    /// The digest of all bytes fed, in lower-case hex.
    pub(crate) fn finish_hex(mut self) -> String {
        let block = self.kind().block();
        let bits = u128::from(self.len) * 8;
        let len_field = block / 8;
        let mut pad = vec![0x80u8];
        let used = (self.tail.len() + 1) % block;
        let zeros = (block + block - len_field - used) % block;
        pad.resize(1 + zeros, 0);
        match self.kind() {
            Sha2Kind::S256 => pad.extend_from_slice(&(bits as u64).to_be_bytes()),
            Sha2Kind::S512 => pad.extend_from_slice(&bits.to_be_bytes()),
        }
        self.update(&pad);
        let mut s = String::new();
        match self.words {
            Words::S256(w) => w.iter().for_each(|x| s.push_str(&format!("{x:08x}"))),
            Words::S512(w) => w.iter().for_each(|x| s.push_str(&format!("{x:016x}"))),
        }
        s
    }

    /// The state as one line of text: kind, length, words, tail (hex).
    pub(crate) fn save(&self) -> String {
        let mut s = format!("{} {} ", self.kind().name(), self.len);
        match &self.words {
            Words::S256(w) => w.iter().for_each(|x| s.push_str(&format!("{x:08x}"))),
            Words::S512(w) => w.iter().for_each(|x| s.push_str(&format!("{x:016x}"))),
        }
        s.push(' ');
        self.tail
            .iter()
            .for_each(|b| s.push_str(&format!("{b:02x}")));
        s
    }

    /// A state saved by [`Sha2State::save`]; `None` if it is not one.
    pub(crate) fn restore(line: &str) -> Option<Sha2State> {
        let mut f = line.split(' ');
        let kind = match f.next()? {
            "sha256" => Sha2Kind::S256,
            "sha512" => Sha2Kind::S512,
            _ => return None,
        };
        let len: u64 = f.next()?.parse().ok()?;
        let words = f.next()?;
        let tail = unhex(f.next().unwrap_or(""))?;
        if f.next().is_some() || tail.len() as u64 != len % kind.block() as u64 {
            return None;
        }
        let words = match kind {
            Sha2Kind::S256 => {
                let mut w = [0u32; 8];
                if words.len() != 64 {
                    return None;
                }
                for (i, x) in w.iter_mut().enumerate() {
                    *x = u32::from_str_radix(words.get(i * 8..i * 8 + 8)?, 16).ok()?;
                }
                Words::S256(w)
            }
            Sha2Kind::S512 => {
                let mut w = [0u64; 8];
                if words.len() != 128 {
                    return None;
                }
                for (i, x) in w.iter_mut().enumerate() {
                    *x = u64::from_str_radix(words.get(i * 16..i * 16 + 16)?, 16).ok()?;
                }
                Words::S512(w)
            }
        };
        Some(Sha2State { words, tail, len })
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn digests_match_sha2_on_many_lengths_and_splits() {
        let data: Vec<u8> = (0..1200u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for n in (0..300).chain([511, 512, 513, 1023, 1024, 1025, 1200]) {
            let content = &data[..n];
            let want256 = hex(&sha2::Sha256::digest(content));
            let want512 = hex(&sha2::Sha512::digest(content));
            for split in [0, 1.min(n), n / 3, n / 2, n.saturating_sub(1), n] {
                for (kind, want) in [(Sha2Kind::S256, &want256), (Sha2Kind::S512, &want512)] {
                    let mut h = Sha2State::new(kind);
                    h.update(&content[..split]);
                    // Saved and restored between the two pieces.
                    let mut h = Sha2State::restore(&h.save()).expect("restores");
                    for piece in content[split..].chunks(37) {
                        h.update(piece);
                    }
                    assert_eq!(h.len(), n as u64);
                    assert_eq!(&h.finish_hex(), want, "{kind:?} n={n} split={split}");
                }
            }
        }
    }

    #[test]
    fn damaged_states_are_refused() {
        let mut h = Sha2State::new(Sha2Kind::S256);
        h.update(b"hello");
        let saved = h.save();
        assert_eq!(Sha2State::restore(&saved), Some(h));
        for bad in [
            saved.replacen("sha256", "md5", 1),
            saved.replacen(" 5 ", " 6 ", 1),
            format!("{saved}00"),
            saved[..saved.len() - 2].to_string(),
            format!("{saved} x"),
            String::new(),
        ] {
            assert_eq!(Sha2State::restore(&bad), None, "{bad}");
        }
    }
}
