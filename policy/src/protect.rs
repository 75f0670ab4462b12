//! Protection beyond suppression, chosen per grant: rounding counts to a base, the cell-key method
//! (a consistent perturbation per cell) and differential privacy with an exact discrete Laplace
//! (two-sided geometric) sampler. These apply to cells that disclosure control already shows; they
//! never replace the threshold rules.
//!
//! No floating point touches the noise: the DP sampler follows Canonne, Kamath and Steinke (2020),
//! "The Discrete Gaussian for Differential Privacy", algorithms 1 and 2, with Bernoulli trials drawn
//! from uniform integers (rejection sampling from `ring::rand` bytes) and exact rational arithmetic.
//!
//! Two pure rules the gateway builds on live here too: the canonical bytes of a cell's record set
//! ([`record_set_key`]), which key the cell-key perturbation, so that every query asking for the same
//! records gets the same value; and the sensitivity of an answer under DP
//! ([`released_counts_per_record`]), the largest number of released counts one record can change,
//! which the ε charged is a multiple of.

use std::collections::BTreeMap;

use ring::hmac;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use crate::dimension::{TimeGrain, time_grain};
use crate::indicator::{Accumulate, Indicator, IndicatorKind, measure};
use crate::period::Period;

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

/// Domain tag opening every [`record_set_key`] (and its version).
const RECORD_SET_TAG: &[u8] = b"shuzhu-record-set-v1";

/// The canonical bytes of a record set: the records of `measure` anchored in months
/// `from_month..=to_month` (month indices, [`crate::period::Month::index`]) whose value of each
/// dimension named in `dims` is one of the values listed (a dimension absent from `dims` is
/// unrestricted). Two record sets that are equal as sets of (measure, months, values) get equal
/// bytes, whatever order the values are given in: the caller makes equal sets equal first (division
/// and instance as type codes, a filter listing every value as no filter, a court as its region).
///
/// The bytes are, with every length and count a 4-byte big-endian unsigned integer:
/// `"shuzhu-record-set-v1" ‖ 0x00 ‖ len(measure) ‖ measure ‖ from_month (i32 BE) ‖ to_month (i32 BE)
/// ‖ count(dims)` and then, for each dimension in byte order of its name, `len(name) ‖ name ‖
/// count(values) ‖ (len(value) ‖ value)*` with the values sorted bytewise and without repeats.
pub fn record_set_key(measure: &str, from_month: i32, to_month: i32, dims: &BTreeMap<String, Vec<String>>) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(RECORD_SET_TAG);
    out.push(0);
    put(&mut out, measure.as_bytes());
    out.extend_from_slice(&from_month.to_be_bytes());
    out.extend_from_slice(&to_month.to_be_bytes());
    out.extend_from_slice(&(dims.len() as u32).to_be_bytes());
    for (name, values) in dims {
        put(&mut out, name.as_bytes());
        let mut values: Vec<&str> = values.iter().map(String::as_str).collect();
        values.sort_unstable();
        values.dedup();
        out.extend_from_slice(&(values.len() as u32).to_be_bytes());
        for v in values {
            put(&mut out, v.as_bytes());
        }
    }
    out
}

/// How many of an answer's released counts one record can change at most (the L1 sensitivity of the
/// answer's counts, each count changing by one), for an indicator answered over `time_groups` time
/// groups (see [`time_groups`]). The ε a `dp` query is charged is this times ε.
///
/// Each record has one value per record dimension, so it falls in one group of the non-time
/// dimensions. A count of dated records (filed, closed, accepted) places it in one time group; a stock
/// (`active`, `open_at_end`) in every time group it is open in, so up to `time_groups`. The released
/// counts of a cell are: a count's value; a ratio's numerator and denominator (a case can be in
/// both); a mean's count (its sum is withheld); a rate per population's numerator (the population is
/// public). A deviation shows the count in P and the sum of its baseline years: P spans at most 12
/// months (the gateway refuses longer), so P and the baseline periods are disjoint and a dated record
/// lies in one of them, in one cell: 1.
pub fn released_counts_per_record(ind: &Indicator, time_groups: u64) -> u64 {
    let of = |m: &str| match measure(m) {
        Some(x) if matches!(x.accumulate, Accumulate::Total { .. }) => 0,
        Some(x) if !x.anchor.is_stock() => 1,
        // A stock, or a measure not known here (counted as a stock, the larger charge).
        _ => time_groups.max(1),
    };
    let n = match ind.kind {
        IndicatorKind::Count { measure } => of(measure),
        IndicatorKind::Ratio { numerator, denominator, .. } => of(numerator) + of(denominator),
        IndicatorKind::Mean { count, .. } => of(count),
        IndicatorKind::Deviation { .. } => 1,
        IndicatorKind::PerPopulation { numerator, .. } => of(numerator),
    };
    n.max(1)
}

/// How many time groups an answer grouped by `group_by` over `period` has at most: the months,
/// quarters or years `period` touches at the finest time dimension asked, or 1 without one.
pub fn time_groups(group_by: &[crate::dimension::Dimension], period: Period) -> u64 {
    let (from, to) = (period.from(), period.to());
    let n = match time_grain(group_by) {
        TimeGrain::Whole => 1,
        TimeGrain::Month => i64::from(period.months()),
        TimeGrain::Quarter => {
            let q = |m: crate::period::Month| i64::from(m.year()) * 4 + i64::from(m.quarter());
            q(to) - q(from) + 1
        }
        TimeGrain::Year => i64::from(to.year()) - i64::from(from.year()) + 1,
    };
    n.max(1) as u64
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
        self.apply_bytes(description.as_bytes(), count)
    }

    /// The cell-key value of `count` for the cell whose canonical bytes are `cell` (the gateway
    /// passes a [`record_set_key`], so that equal record sets get equal values).
    pub fn apply_bytes(&self, cell: &[u8], count: i64) -> i64 {
        if count == 0 {
            return 0;
        }
        // The message is `cell ‖ 0x00 ‖ count as 8 big-endian bytes`.
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(cell);
        ctx.update(&[0]);
        ctx.update(&count.to_be_bytes());
        let tag = ctx.sign();
        let shift = CELL_KEY_TABLE[usize::from(tag.as_ref()[0] & 0x0f)];
        (count + shift).max(0)
    }
}

/// Where the noise's random bytes come from: `ring::rand::SystemRandom` in service; a
/// [`SeededBytes`] stream in tests and figures that must be reproducible.
pub trait RandomBytes {
    /// Fills `dest` with random bytes.
    fn fill_bytes(&self, dest: &mut [u8]) -> Result<(), NoiseError>;
}

impl RandomBytes for ring::rand::SystemRandom {
    fn fill_bytes(&self, dest: &mut [u8]) -> Result<(), NoiseError> {
        self.fill(dest).map_err(|_| NoiseError::Random)
    }
}

/// A deterministic byte stream (SHA-256 of `seed ‖ counter`), for tests and reproducible figures
/// only: noise drawn from it is predictable by anyone who knows the seed, so the gateway never uses it.
pub struct SeededBytes {
    seed: Vec<u8>,
    counter: std::cell::Cell<u64>,
}

impl SeededBytes {
    /// A stream determined by `seed`.
    pub fn new(seed: &[u8]) -> Self {
        SeededBytes { seed: seed.to_vec(), counter: std::cell::Cell::new(0) }
    }
}

impl RandomBytes for SeededBytes {
    fn fill_bytes(&self, dest: &mut [u8]) -> Result<(), NoiseError> {
        for chunk in dest.chunks_mut(32) {
            let n = self.counter.get();
            self.counter.set(n.wrapping_add(1));
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            ctx.update(&self.seed);
            ctx.update(&n.to_be_bytes());
            let block = ctx.finish();
            chunk.copy_from_slice(&block.as_ref()[..chunk.len()]);
        }
        Ok(())
    }
}

/// A source of uniform integers from a random byte source.
pub struct Uniform<'a> {
    rng: &'a dyn RandomBytes,
}

impl<'a> Uniform<'a> {
    /// Wraps a random byte source (`ring::rand::SystemRandom` in service).
    pub fn new(rng: &'a dyn RandomBytes) -> Self {
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
            self.rng.fill_bytes(&mut b)?;
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
/// 1/ε where ε = `eps_milli`/1000, clamped at zero (post-processing, the same for every count, zero
/// included, so that the shown value does not single out true zeros).
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

    fn dims(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs.iter().map(|(d, v)| (d.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
    }

    #[test]
    fn a_record_set_key_is_canonical_and_tells_sets_apart() {
        let a = record_set_key(
            "cases.filed",
            24288,
            24288,
            &dims(&[("region", &["350203"]), ("type_code", &["民终", "民初"])]),
        );
        // Values in another order, repeated: the same set, the same bytes.
        let b = record_set_key(
            "cases.filed",
            24288,
            24288,
            &dims(&[("type_code", &["民初", "民终", "民初"]), ("region", &["350203"])]),
        );
        assert_eq!(a, b);
        // The documented layout, byte for byte.
        let mut want = b"shuzhu-record-set-v1\0".to_vec();
        want.extend([0, 0, 0, 11]);
        want.extend(b"cases.filed");
        want.extend(24288i32.to_be_bytes());
        want.extend(24288i32.to_be_bytes());
        want.extend([0, 0, 0, 2, 0, 0, 0, 6]);
        want.extend(b"region");
        want.extend([0, 0, 0, 1, 0, 0, 0, 6]);
        want.extend(b"350203");
        want.extend([0, 0, 0, 9]);
        want.extend("type_code".as_bytes());
        want.extend([0, 0, 0, 2, 0, 0, 0, 6]);
        want.extend("民初".as_bytes());
        want.extend([0, 0, 0, 6]);
        want.extend("民终".as_bytes());
        assert_eq!(a, want);
        // Any difference in measure, months, dimensions or values is another key; lengths keep
        // values from running into each other.
        let others = [
            record_set_key(
                "cases.closed",
                24288,
                24288,
                &dims(&[("region", &["350203"]), ("type_code", &["民终", "民初"])]),
            ),
            record_set_key(
                "cases.filed",
                24287,
                24288,
                &dims(&[("region", &["350203"]), ("type_code", &["民终", "民初"])]),
            ),
            record_set_key("cases.filed", 24288, 24288, &dims(&[("region", &["350203"])])),
            record_set_key(
                "cases.filed",
                24288,
                24288,
                &dims(&[("region", &["350203"]), ("type_code", &["民终民初"])]),
            ),
            record_set_key("cases.filed", 24288, 24288, &dims(&[])),
        ];
        for (i, o) in others.iter().enumerate() {
            assert_ne!(&a, o, "{i}");
        }
    }

    #[test]
    fn a_record_set_key_keys_the_cell_key() {
        let k = CellKey::new(b"k");
        let key = record_set_key("cases.filed", 1, 2, &dims(&[("region", &["350203"])]));
        let shifts: std::collections::BTreeSet<i64> = (100..300).map(|c| k.apply_bytes(&key, c) - c).collect();
        assert_eq!(shifts, [-2, -1, 0, 1, 2].into_iter().collect());
        assert_eq!(k.apply_bytes(&key, 57), k.apply_bytes(&key, 57));
        assert_eq!(k.apply_bytes(b"c0", 100), k.apply("c0", 100), "a description is its bytes");
    }

    #[test]
    fn time_groups_count_what_the_period_touches_at_the_finest_grain() {
        use crate::dimension::Dimension;
        let p = |a, b| Period::from_wire(a, b).unwrap();
        assert_eq!(time_groups(&[], p(201901, 202412)), 1);
        assert_eq!(time_groups(&[Dimension::Region], p(201901, 202412)), 1);
        assert_eq!(time_groups(&[Dimension::Month], p(202401, 202412)), 12);
        assert_eq!(time_groups(&[Dimension::Quarter], p(202402, 202407)), 3);
        assert_eq!(time_groups(&[Dimension::Year, Dimension::Region], p(201901, 202412)), 6);
        assert_eq!(time_groups(&[Dimension::Year, Dimension::Month], p(202311, 202402)), 4);
    }

    #[test]
    fn the_charge_counts_stocks_in_every_time_group_and_both_sides_of_a_ratio() {
        let ind = |id| crate::indicator::indicator(id).unwrap();
        assert_eq!(released_counts_per_record(ind("filed"), 12), 1);
        assert_eq!(released_counts_per_record(ind("closure_rate"), 12), 13, "closed once, active in 12 months");
        assert_eq!(released_counts_per_record(ind("closure_rate"), 1), 2);
        assert_eq!(released_counts_per_record(ind("long_pending_ratio"), 4), 8, "open at the end of 4 quarters, twice");
        assert_eq!(released_counts_per_record(ind("on_time_rate"), 4), 2);
        assert_eq!(released_counts_per_record(ind("avg_trial_days"), 4), 1, "the sum of days is withheld");
        assert_eq!(released_counts_per_record(ind("litigation_per_10k"), 2), 1, "the population is public");
        assert_eq!(released_counts_per_record(ind("filing_deviation"), 12), 1, "P and the baseline are disjoint");
    }

    #[test]
    fn a_seeded_stream_repeats_itself_and_draws_like_the_system_source() {
        let draw = |seed: &[u8]| {
            let bytes = SeededBytes::new(seed);
            let mut u = Uniform::new(&bytes);
            (0..50).map(|_| u.discrete_laplace(1, 1).unwrap()).collect::<Vec<i64>>()
        };
        assert_eq!(draw(b"a"), draw(b"a"));
        assert_ne!(draw(b"a"), draw(b"b"));
        let bytes = SeededBytes::new(b"figures");
        let mut u = Uniform::new(&bytes);
        let zeros = (0..20_000).filter(|_| u.discrete_laplace(1, 1).unwrap() == 0).count();
        assert!((8_600..10_000).contains(&zeros), "P(0) ≈ 0.462: {zeros} of 20 000");
    }
}
