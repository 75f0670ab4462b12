//! Seeded randomness and the small integer samplers every generator shares.
//!
//! Each output file draws from its own ChaCha8 stream, keyed by the configured seed, the node's index
//! and the file's purpose, so files do not depend on each other or on thread scheduling. Only integer
//! draws are used (no floating-point `ln`/`exp`), so a seed gives the same bytes on every platform.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The one random generator type used for output.
pub(crate) type GenRng = ChaCha8Rng;

/// The random stream for one output file.
pub(crate) fn rng_for(seed: u64, stream: u64, purpose: &[u8; 8]) -> GenRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&stream.to_le_bytes());
    key[16..24].copy_from_slice(purpose);
    GenRng::from_seed(key)
}

/// True with probability `per_10k` / 10 000.
pub(crate) fn chance(rng: &mut GenRng, per_10k: u32) -> bool {
    rng.random_range(0..10_000u32) < per_10k
}

/// A uniform integer in `lo..=hi`.
pub(crate) fn uniform(rng: &mut GenRng, lo: u32, hi: u32) -> u32 {
    rng.random_range(lo..=hi)
}

/// A uniform integer in `lo..=hi`.
pub(crate) fn uniform64(rng: &mut GenRng, lo: u64, hi: u64) -> u64 {
    rng.random_range(lo..=hi)
}

/// A uniform pick from a non-empty slice (the tables are constants, each exercised by tests; an
/// empty one would panic).
pub(crate) fn pick<T: Copy>(rng: &mut GenRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len() as u32) as usize]
}

/// A discrete distribution over a fixed set of values, with integer weights.
#[derive(Debug, Clone)]
pub(crate) struct Weighted<T> {
    items: Vec<T>,
    /// Running totals: `ends[i]` is the sum of the weights of items `0..=i`.
    ends: Vec<u32>,
}

impl<T: Copy> Weighted<T> {
    /// Builds the distribution. The weights must not all be zero: every table in this crate is a
    /// constant, and a unit test builds each one.
    pub(crate) fn new(pairs: impl IntoIterator<Item = (T, u32)>) -> Self {
        let mut items = Vec::new();
        let mut ends = Vec::new();
        let mut total = 0u32;
        for (item, weight) in pairs {
            total += weight;
            items.push(item);
            ends.push(total);
        }
        assert!(total > 0, "a weighted table needs a positive total weight");
        Self { items, ends }
    }

    /// Draws one value.
    pub(crate) fn pick(&self, rng: &mut GenRng) -> T {
        let total = self.ends[self.ends.len() - 1];
        let x = rng.random_range(0..total);
        self.items[self.ends.partition_point(|&end| end <= x)]
    }
}

impl Weighted<(u32, u32)> {
    /// Picks a bucket `(lo, hi)` by weight, then a uniform value inside it.
    pub(crate) fn pick_in(&self, rng: &mut GenRng) -> u32 {
        let (lo, hi) = self.pick(rng);
        uniform(rng, lo, hi)
    }
}

impl Weighted<(u64, u64)> {
    /// Picks a bucket `(lo, hi)` by weight, then a uniform value inside it.
    pub(crate) fn pick_in(&self, rng: &mut GenRng) -> u64 {
        let (lo, hi) = self.pick(rng);
        uniform64(rng, lo, hi)
    }
}

/// Splits `total` into parts proportional to `weights` (largest-remainder method, ties to the
/// earlier index), so the parts always add up to `total` exactly.
pub(crate) fn apportion(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if weights.is_empty() {
        return Vec::new();
    }
    if sum == 0 {
        let mut parts = vec![0; weights.len()];
        parts[0] = total;
        return parts;
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given = 0u64;
    for (i, &w) in weights.iter().enumerate() {
        let share = u128::from(total) * u128::from(w);
        let whole = (share / sum) as u64;
        given += whole;
        parts.push(whole);
        remainders.push((share % sum, i));
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let left = (total - given) as usize;
    for &(_, i) in &remainders[..left] {
        parts[i] += 1;
    }
    parts
}

/// FNV-1a, used to derive stable attributes (such as an organisation's credit code) from a name.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One step of SplitMix64: a well-mixed sequence of values from a 64-bit state.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_sums_exactly() {
        assert_eq!(apportion(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(apportion(0, &[5, 7]), vec![0, 0]);
        assert_eq!(apportion(7, &[0, 0]), vec![7, 0]);
        let parts = apportion(1_000_003, &[1000, 1060, 1124, 1191, 1262, 1338]);
        assert_eq!(parts.iter().sum::<u64>(), 1_000_003);
        assert!(parts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn weighted_respects_zero_weights_and_proportions() {
        let table = Weighted::new([('a', 1), ('b', 0), ('c', 3)]);
        let mut rng = rng_for(1, 2, b"test\0\0\0\0");
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            match table.pick(&mut rng) {
                'a' => counts[0] += 1,
                'b' => counts[1] += 1,
                _ => counts[2] += 1,
            }
        }
        assert_eq!(counts[1], 0);
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn streams_differ_by_seed_stream_and_purpose() {
        let draw = |mut r: GenRng| r.random::<u64>();
        let a = draw(rng_for(1, 0, b"cases\0\0\0"));
        assert_eq!(a, draw(rng_for(1, 0, b"cases\0\0\0")));
        assert_ne!(a, draw(rng_for(2, 0, b"cases\0\0\0")));
        assert_ne!(a, draw(rng_for(1, 1, b"cases\0\0\0")));
        assert_ne!(a, draw(rng_for(1, 0, b"mediatn\0")));
    }
}
