//! Protection beyond suppression, chosen per grant: rounding counts to a base, the cell-key method
//! (a consistent perturbation per cell) and differential privacy with an exact discrete Laplace
//! (two-sided geometric) sampler. These apply to cells that disclosure control already shows; they
//! never replace the threshold rules.
//!
//! No floating point touches the noise: the DP sampler follows Canonne, Kamath and Steinke (2020),
//! "The Discrete Gaussian for Differential Privacy", algorithms 1 and 2, with Bernoulli trials drawn
//! from uniform integers (rejection sampling from `ring::rand` bytes) and exact rational arithmetic.

use ring::hmac;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

/// How shown counts are protected beyond suppression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// Threshold rules only (exact values).
    #[default]
    Suppress,
    /// Counts rounded to the nearest multiple of 5.
    Round5,
    /// Cell-key perturbation: a small integer from a fixed table, chosen by a keyed hash of the cell.
    CellKey,
    /// Discrete Laplace noise with a privacy budget per agency and dataset.
    Dp,
}

impl Protection {
    /// `suppress`, `round5`, `cell_key` or `dp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::Suppress => "suppress",
            Protection::Round5 => "round5",
            Protection::CellKey => "cell_key",
            Protection::Dp => "dp",
        }
    }
}

/// Why noise could not be drawn.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoiseError {
    /// The system random source failed.
    #[error("the random source failed")]
    Random,
    /// Epsilon must be a positive fraction.
    #[error("epsilon must be positive")]
    Epsilon,
}

/// Rounds `value` to the nearest multiple of `base` (halves round up); zero stays zero.
pub fn round_to(value: i64, base: i64) -> i64 {
    if base <= 1 {
        return value;
    }
    let r = value.rem_euclid(base);
    if r * 2 >= base { value - r + base } else { value - r }
}

/// The cell-key perturbation table: a small, zero-mean set of shifts.
const CELL_KEY_TABLE: [i64; 16] = [-2, -2, -1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2];

/// The cell-key value of a count: `count` shifted by an entry of a fixed table chosen by
/// HMAC-SHA-256 under `secret` of the cell's canonical `description` and the true count. The same
/// cell always gets the same value; zero stays zero and no value goes below zero. Builds the key for
/// this one count: for a whole answer, prepare a [`CellKey`] once.
pub fn cell_key(secret: &[u8], description: &str, count: i64) -> i64 {
    CellKey::new(secret).apply(description, count)
}

/// The cell-key method's HMAC key, prepared once (per answer) and applied to each count.
pub struct CellKey {
    key: hmac::Key,
}

impl CellKey {
    /// Prepares the key from the secret.
    pub fn new(secret: &[u8]) -> Self {
        CellKey { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    /// The cell-key value of `count` for the cell `description` (see [`cell_key`]).
    pub fn apply(&self, description: &str, count: i64) -> i64 {
        if count == 0 {
            return 0;
        }
        // The message is `description ‖ 0x00 ‖ count as 8 big-endian bytes`.
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(description.as_bytes());
        ctx.update(&[0]);
        ctx.update(&count.to_be_bytes());
        let tag = ctx.sign();
        let shift = CELL_KEY_TABLE[usize::from(tag.as_ref()[0] & 0x0f)];
        (count + shift).max(0)
    }
}

/// A source of uniform integers from a secure random generator.
pub struct Uniform<'a> {
    rng: &'a dyn SecureRandom,
}

impl<'a> Uniform<'a> {
    /// Wraps a random generator (e.g. `ring::rand::SystemRandom`).
    pub fn new(rng: &'a dyn SecureRandom) -> Self {
        Uniform { rng }
    }

    /// A uniform integer in `0..n` (`n >= 1`), by rejection sampling.
    pub fn below(&mut self, n: u128) -> Result<u128, NoiseError> {
        if n <= 1 {
            return Ok(0);
        }
        // Largest multiple of n that fits; values at or above it are rejected.
        let limit = u128::MAX - (u128::MAX % n);
        loop {
            let mut b = [0u8; 16];
            self.rng.fill(&mut b).map_err(|_| NoiseError::Random)?;
            let x = u128::from_le_bytes(b);
            if x < limit {
                return Ok(x % n);
            }
        }
    }

    /// Bernoulli(num/den).
    fn bernoulli(&mut self, num: u128, den: u128) -> Result<bool, NoiseError> {
        Ok(self.below(den)? < num)
    }

    /// Bernoulli(exp(−num/den)) for `0 <= num/den`, exactly.
    fn bernoulli_exp(&mut self, num: u128, den: u128) -> Result<bool, NoiseError> {
        let mut num = num;
        while num > den {
            if !self.bernoulli_exp(1, 1)? {
                return Ok(false);
            }
            num -= den;
        }
        // 0 <= γ <= 1: K = smallest k with A_k = 0, answer is whether K is odd.
        let mut k: u128 = 1;
        loop {
            if !self.bernoulli(num, den.saturating_mul(k))? {
                return Ok(k % 2 == 1);
            }
            k += 1;
        }
    }

    /// A discrete Laplace (two-sided geometric) sample with scale `t/s`: P(x) ∝ exp(−|x|·s/t).
    pub fn discrete_laplace(&mut self, s: u128, t: u128) -> Result<i64, NoiseError> {
        if s == 0 || t == 0 {
            return Err(NoiseError::Epsilon);
        }
        loop {
            let u = self.below(t)?;
            if !self.bernoulli_exp(u, t)? {
                continue;
            }
            let mut v: u128 = 0;
            while self.bernoulli_exp(1, 1)? {
                v += 1;
            }
            let y = (u + t * v) / s;
            let negative = self.bernoulli(1, 2)?;
            if negative && y == 0 {
                continue;
            }
            let y = i64::try_from(y).unwrap_or(i64::MAX);
            return Ok(if negative { -y } else { y });
        }
    }
}

/// A count with ε-differential privacy (sensitivity 1): `count` plus discrete Laplace noise of scale
/// 1/ε where ε = `eps_milli`/1000, clamped at zero (post-processing).
pub fn dp_count(u: &mut Uniform<'_>, count: i64, eps_milli: u32) -> Result<i64, NoiseError> {
    if eps_milli == 0 {
        return Err(NoiseError::Epsilon);
    }
    let noise = u.discrete_laplace(u128::from(eps_milli), 1000)?;
    Ok(count.saturating_add(noise).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn rounding_to_five() {
        let got: Vec<i64> = [0, 1, 2, 3, 10, 12, 13, 17, 99].iter().map(|v| round_to(*v, 5)).collect();
        assert_eq!(got, vec![0, 0, 0, 5, 10, 10, 15, 15, 100]);
        assert_eq!(round_to(7, 1), 7);
    }

    #[test]
    fn cell_key_is_consistent_small_and_keyed() {
        let a = cell_key(b"secret", "filed|2024-01..2024-03|region=350203", 57);
        assert_eq!(a, cell_key(b"secret", "filed|2024-01..2024-03|region=350203", 57));
        assert!((a - 57).abs() <= 2);
        assert_eq!(cell_key(b"secret", "x", 0), 0);
        // Over many cells both the key and the description change the shift somewhere.
        let differs_by_key = (0..64).any(|i| {
            let d = format!("cell {i}");
            cell_key(b"one", &d, 100) != cell_key(b"two", &d, 100)
        });
        assert!(differs_by_key);
        let shifts: std::collections::BTreeSet<i64> =
            (0..200).map(|i| cell_key(b"k", &format!("c{i}"), 100) - 100).collect();
        assert_eq!(shifts, [-2, -1, 0, 1, 2].into_iter().collect());
    }

    #[test]
    fn a_prepared_key_gives_the_known_answers() {
        // Expected values from an independent HMAC-SHA-256 (Python's `hmac`) of
        // `description ‖ 0x00 ‖ count (i64, big-endian)`: low nibble of the first tag byte → table.
        let known: [(&[u8], &str, i64, i64); 7] = [
            (b"secret", "filed|2024-01..2024-03|region=350203", 57, 56),
            (b"k", "c0", 100, 102),
            (b"k", "c1", 100, 99),
            (b"k", "c2", 100, 102),
            (b"k", "c3", 100, 101),
            (b"k", "c4", 100, 99),
            (b"one", "cell 0", 1, 2),
        ];
        for (secret, description, count, want) in known {
            let prepared = CellKey::new(secret);
            assert_eq!(prepared.apply(description, count), want, "{description}");
            assert_eq!(cell_key(secret, description, count), want, "{description}");
        }
        let k = CellKey::new(b"k");
        for i in 0..50 {
            let d = format!("c{i}");
            assert_eq!(k.apply(&d, 100 + i), cell_key(b"k", &d, 100 + i), "one key serves every count");
        }
        assert_eq!(k.apply("c0", 0), 0);
    }

    #[test]
    fn uniform_is_in_range_and_covers_it() {
        let rng = SystemRandom::new();
        let mut u = Uniform::new(&rng);
        let mut seen = [false; 7];
        for _ in 0..500 {
            let x = u.below(7).unwrap();
            assert!(x < 7);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn discrete_laplace_is_symmetric_and_scaled() {
        // ε = 1: P(0) = (1−e^−1)/(1+e^−1) ≈ 0.462; mean |x| ≈ 0.85. Checked with wide margins over
        // 20 000 draws (the chance of a false failure is far below 1e-9).
        let rng = SystemRandom::new();
        let mut u = Uniform::new(&rng);
        let n = 20_000;
        let draws: Vec<i64> = (0..n).map(|_| u.discrete_laplace(1, 1).unwrap()).collect();
        let zeros = draws.iter().filter(|x| **x == 0).count() as f64 / n as f64;
        assert!((0.43..0.50).contains(&zeros), "P(0) = {zeros}");
        let pos = draws.iter().filter(|x| **x > 0).count() as f64;
        let neg = draws.iter().filter(|x| **x < 0).count() as f64;
        assert!((pos - neg).abs() / n as f64 <= 0.03, "{pos} vs {neg}");
        let mean_abs = draws.iter().map(|x| x.abs()).sum::<i64>() as f64 / n as f64;
        assert!((0.75..0.95).contains(&mean_abs), "mean |x| = {mean_abs}");
        // ε = 0.1 spreads far wider.
        let wide: i64 = (0..2000).map(|_| u.discrete_laplace(100, 1000).unwrap().abs()).sum();
        assert!(wide as f64 / 2000.0 > 5.0);
    }

    #[test]
    fn dp_counts_never_go_negative_and_reject_zero_epsilon() {
        let rng = SystemRandom::new();
        let mut u = Uniform::new(&rng);
        for _ in 0..200 {
            assert!(dp_count(&mut u, 0, 500).unwrap() >= 0);
        }
        assert_eq!(dp_count(&mut u, 5, 0), Err(NoiseError::Epsilon));
    }
}
