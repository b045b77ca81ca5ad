//! The simulation's randomness: a SplitMix64 generator whose whole state
//! is the simulation's seed, so that the same sim file and seed give the
//! same run. As in git-annex, each use of randomness starts a generator
//! from the current seed and leaves a new seed behind.

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function, also a good 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator started from a seed.
    pub fn new(seed: i64) -> Rng {
        Rng(mix64(seed as u64 ^ GAMMA))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix64(self.0)
    }

    /// A number in `0..n` (`n` > 0), without bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// A number between `lo` and `hi`, both included (swapped when
    /// `hi < lo`, as Haskell's `randomR`).
    pub fn range(&mut self, lo: i128, hi: i128) -> i128 {
        let (lo, hi) = if hi < lo { (hi, lo) } else { (lo, hi) };
        let span = (hi - lo) as u128 + 1;
        if span > u128::from(u64::MAX) {
            return lo + (self.next_u64() as i128);
        }
        lo + i128::from(self.below(span as u64))
    }

    /// A coin flip.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A pseudo-random permutation of `0..n` (a keyed Feistel network with
/// cycle walking): every index comes out once, in an order fixed by the
/// seed, with no memory used for the list.
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
    next: u64,
}

impl Permutation {
    /// The permutation of `0..n` chosen by `seed`.
    pub fn new(n: u64, seed: u64) -> Permutation {
        let bits = (64 - n.max(4).saturating_sub(1).leading_zeros()).max(2);
        let half_bits = bits.div_ceil(2);
        let mut r = Rng(seed);
        Permutation {
            n,
            half_bits,
            keys: [r.next_u64(), r.next_u64(), r.next_u64(), r.next_u64()],
            next: 0,
        }
    }

    fn encrypt(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut l, mut r) = (x >> self.half_bits, x & mask);
        for k in self.keys {
            let f = mix64(r ^ k) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half_bits) | r
    }

    /// How many indices have not come out yet.
    pub fn remaining(&self) -> u64 {
        self.n - self.next
    }

    /// The next index, or `None` when all have come out.
    pub fn next_index(&mut self) -> Option<u64> {
        if self.next >= self.n {
            return None;
        }
        let mut x = self.encrypt(self.next);
        while x >= self.n {
            x = self.encrypt(x);
        }
        self.next += 1;
        Some(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_cover_every_index_once() {
        for n in [0u64, 1, 2, 3, 7, 100, 1000, 4097] {
            let mut p = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            while let Some(i) = p.next_index() {
                assert!(!seen[i as usize]);
                seen[i as usize] = true;
            }
            assert!(seen.iter().all(|s| *s));
        }
        let a: Vec<u64> = std::iter::from_fn({
            let mut p = Permutation::new(50, 1);
            move || p.next_index()
        })
        .collect();
        let b: Vec<u64> = std::iter::from_fn({
            let mut p = Permutation::new(50, 2);
            move || p.next_index()
        })
        .collect();
        assert_ne!(a, b);
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            let v = r.range(5, 9);
            assert!((5..=9).contains(&v));
            assert!((2..=3).contains(&r.range(3, 2)));
        }
    }
}
