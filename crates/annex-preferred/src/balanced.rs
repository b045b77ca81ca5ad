//! The balanced picker of git-annex (Annex/Balanced.hs): which members of
//! a group get a key.
//!
//! The key's serialised form is hashed with HMAC-SHA256, keyed by the
//! group's UUIDs (all members, sorted, concatenated). Read as a big-endian
//! number N, the digest picks, among the candidates sorted by UUID, the
//! ones at positions `(N + i) mod M` for `i` in `0..count`, where M is the
//! number of candidates. The choice for a key never changes while the
//! group does not.

use annex_types::{Key, Uuid};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The picker of one group, with its HMAC key prepared once.
#[derive(Clone)]
pub struct Picker {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Picker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Picker")
    }
}

impl Picker {
    /// The picker for a group whose members are `members`.
    pub fn new<'a>(members: impl IntoIterator<Item = &'a Uuid>) -> Picker {
        let mut sorted: Vec<&Uuid> = members.into_iter().collect();
        sorted.sort();
        sorted.dedup();
        let key: Vec<u8> = sorted.iter().flat_map(|u| u.as_str().bytes()).collect();
        Picker {
            // HMAC accepts keys of any length.
            mac: Hmac::<Sha256>::new_from_slice(&key).unwrap_or_else(|_| unreachable_mac()),
        }
    }

    /// The key's HMAC reduced modulo `m` (`m` > 0).
    pub fn position(&self, key: &Key, m: usize) -> usize {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        let digest = mac.finalize().into_bytes();
        let m = m as u128;
        let mut r: u128 = 0;
        for chunk in digest.chunks(8) {
            let mut word = 0u128;
            for &b in chunk {
                word = (word << 8) | u128::from(b);
            }
            r = ((r << 64) | word) % m;
        }
        r as usize
    }

    /// Picks `count` of the candidates (sorted, without duplicates) for the
    /// key; the same candidate may be picked more than once when `count`
    /// exceeds their number. Nothing when there are no candidates.
    pub fn pick<'c>(&self, candidates: &'c [Uuid], key: &Key, count: i64) -> Vec<&'c Uuid> {
        if candidates.is_empty() || count <= 0 {
            return Vec::new();
        }
        let m = candidates.len();
        let start = self.position(key, m);
        (0..count as u64)
            .map(|i| &candidates[((start as u64 + i % m as u64) % m as u64) as usize])
            .collect()
    }

    /// Whether `u` is among the `count` picked.
    pub fn picks(&self, candidates: &[Uuid], key: &Key, count: i64, u: &Uuid) -> bool {
        match candidates.binary_search(u) {
            Ok(idx) => self.covers(candidates.len(), idx, key, count),
            Err(_) => false,
        }
    }

    /// [`Picker::picks`] with the candidates given as sorted positions in
    /// the group's member list, and `me` a position there.
    pub fn picks_among(&self, candidates: &[u32], key: &Key, count: i64, me: u32) -> bool {
        match candidates.binary_search(&me) {
            Ok(idx) => self.covers(candidates.len(), idx, key, count),
            Err(_) => false,
        }
    }

    /// Whether the candidate at `idx` of `m` is among the `count` picked.
    fn covers(&self, m: usize, idx: usize, key: &Key, count: i64) -> bool {
        if m == 0 || count <= 0 {
            return false;
        }
        if count as u64 >= m as u64 {
            return true;
        }
        // Positions start, start+1, ... start+count-1 (mod m).
        let start = self.position(key, m);
        let offset = (idx + m - start) % m;
        (offset as u64) < count as u64
    }
}

fn unreachable_mac() -> Hmac<Sha256> {
    // new_from_slice never fails for HMAC; keep a valid value regardless.
    <Hmac<Sha256> as Mac>::new_from_slice(b"").expect("HMAC takes empty keys")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_annex_prop_balanced_stable() {
        // git-annex's own property: UUIDs "1".."500", key WORM--test.
        let us: Vec<Uuid> = {
            let mut v: Vec<Uuid> = (1..=500)
                .map(|i| Uuid::parse(&i.to_string()).unwrap())
                .collect();
            v.sort();
            v
        };
        let p = Picker::new(&us);
        let k = Key::parse("WORM--test").unwrap();
        let one: Vec<&str> = p.pick(&us, &k, 1).iter().map(|u| u.as_str()).collect();
        assert_eq!(one, vec!["332"]);
        let three: Vec<&str> = p.pick(&us, &k, 3).iter().map(|u| u.as_str()).collect();
        assert_eq!(three, vec!["332", "333", "334"]);
        for u in &us {
            let expect = ["332", "333", "334"].contains(&u.as_str());
            assert_eq!(p.picks(&us, &k, 3, u), expect, "{u}");
        }
    }

    #[test]
    fn subsets_and_overlarge_counts() {
        let us: Vec<Uuid> = ["a", "b", "c"]
            .iter()
            .map(|s| Uuid::parse(s).unwrap())
            .collect();
        let p = Picker::new(&us);
        let k = Key::parse("WORM--x").unwrap();
        assert!(us.iter().all(|u| p.picks(&us, &k, 5, u)));
        assert!(p.pick(&[], &k, 1).is_empty());
        assert!(!p.picks(&us, &k, 0, &us[0]));
        let picked = p.pick(&us[..2], &k, 1);
        assert!(picked[0] == &us[0] || picked[0] == &us[1]);
    }
}
