//! Disclosure control of merged cells (DESIGN.md, "Disclosure control").
//!
//! Threshold rule with k (default 10, never below 5): no count of 1..k−1 contributors may be shown,
//! directly or by derivation. A ratio of counts is suppressed when its numerator or denominator has
//! 1..k−1 contributors or, when the numerator's records are a subset of the denominator's, when their
//! difference has; a mean follows the threshold rule on its contributor count. Zero is shown as zero.
//! Cells of one answer are disjoint groups and answers carry no totals, so no suppressed cell can be
//! recovered by subtraction inside an answer.

use crate::indicator::{Indicator, IndicatorKind, MeasureId};

/// The smallest threshold any policy may set.
pub const MIN_THRESHOLD: u32 = 5;
/// The threshold used when the policy names none.
pub const DEFAULT_THRESHOLD: u32 = 10;

/// A merged partial measure: an exact value and how many records contributed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Partial {
    /// Exact value (count, sum of days, or fen).
    pub value: i64,
    /// Distinct records that contributed.
    pub contributors: u64,
    /// Largest single record's contribution.
    pub max_single: i64,
}

impl Partial {
    /// Adds another node's partial for the same group.
    pub fn merge(&mut self, other: Partial) {
        self.value = self.value.saturating_add(other.value);
        self.contributors = self.contributors.saturating_add(other.contributors);
        self.max_single = self.max_single.max(other.max_single);
    }
}

/// What a requester sees for a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Shown.
    Ok,
    /// Withheld by disclosure control.
    Suppressed,
    /// Withheld because a node that could have contributed did not answer.
    Partial,
}

impl Status {
    /// `ok`, `suppressed` or `partial`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Suppressed => "suppressed",
            Status::Partial => "partial",
        }
    }
}

/// One evaluated cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// Status.
    pub status: Status,
    /// The value, only when `status` is `Ok` and it is defined (a ratio over zero is not).
    pub value: Option<f64>,
    /// Exact numerator (ratios and means), only when `Ok`.
    pub numerator: Option<i64>,
    /// Exact denominator (ratios and means), only when `Ok`.
    pub denominator: Option<i64>,
    /// Which rule suppressed the cell, for the audit entry.
    pub rule: Option<&'static str>,
}

impl Cell {
    fn suppressed(rule: &'static str) -> Self {
        Cell { status: Status::Suppressed, value: None, numerator: None, denominator: None, rule: Some(rule) }
    }

    /// A cell withheld because coverage is incomplete.
    pub fn partial() -> Self {
        Cell { status: Status::Partial, value: None, numerator: None, denominator: None, rule: None }
    }
}

/// Whether `n` contributors is a small, disclosive count under threshold `k`.
pub fn is_small(n: u64, k: u32) -> bool {
    n >= 1 && n < u64::from(k)
}

/// Evaluates the indicator for one group from its merged partials, applying the threshold rule.
/// `get` returns the merged partial of a measure (zero when no node reported it).
pub fn evaluate(indicator: &Indicator, k: u32, get: impl Fn(MeasureId) -> Partial) -> Cell {
    let k = k.max(MIN_THRESHOLD);
    match indicator.kind {
        IndicatorKind::Count { measure } => {
            let m = get(measure);
            if is_small(m.contributors, k) {
                return Cell::suppressed("count below threshold");
            }
            Cell { status: Status::Ok, value: Some(m.value as f64), numerator: None, denominator: None, rule: None }
        }
        IndicatorKind::Ratio { numerator, denominator, subset } => {
            let (n, d) = (get(numerator), get(denominator));
            if is_small(d.contributors, k) {
                return Cell::suppressed("denominator below threshold");
            }
            if is_small(n.contributors, k) {
                return Cell::suppressed("numerator below threshold");
            }
            if subset && is_small(d.contributors.saturating_sub(n.contributors), k) {
                return Cell::suppressed("complement below threshold");
            }
            let value = (d.value != 0).then(|| n.value as f64 / d.value as f64);
            Cell { status: Status::Ok, value, numerator: Some(n.value), denominator: Some(d.value), rule: None }
        }
        IndicatorKind::Mean { sum, count } => {
            let (s, c) = (get(sum), get(count));
            if is_small(c.contributors, k) {
                return Cell::suppressed("contributors below threshold");
            }
            let value = (c.value != 0).then(|| s.value as f64 / c.value as f64);
            Cell { status: Status::Ok, value, numerator: Some(s.value), denominator: Some(c.value), rule: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::indicator;

    fn p(n: i64) -> Partial {
        Partial { value: n, contributors: n as u64, max_single: 1 }
    }

    fn ratio(id: &str, num: i64, den: i64) -> Cell {
        let ind = indicator(id).unwrap();
        let (nm, dm) = match ind.kind {
            IndicatorKind::Ratio { numerator, denominator, .. } => (numerator, denominator),
            _ => unreachable!(),
        };
        evaluate(ind, 10, |m| {
            if m == nm {
                p(num)
            } else if m == dm {
                p(den)
            } else {
                Partial::default()
            }
        })
    }

    #[test]
    fn counts_under_k_are_suppressed_zero_is_shown() {
        let ind = indicator("filed").unwrap();
        for n in 1..10 {
            assert_eq!(evaluate(ind, 10, |_| p(n)).status, Status::Suppressed, "{n}");
        }
        assert_eq!(evaluate(ind, 10, |_| p(0)).value, Some(0.0));
        assert_eq!(evaluate(ind, 10, |_| p(10)).value, Some(10.0));
    }

    #[test]
    fn ratios_protect_numerator_denominator_and_complement() {
        assert_eq!(ratio("on_time_rate", 199, 200).status, Status::Suppressed);
        assert_eq!(ratio("on_time_rate", 5, 200).status, Status::Suppressed);
        assert_eq!(ratio("on_time_rate", 9, 9).status, Status::Suppressed);
        let ok = ratio("on_time_rate", 150, 200);
        assert_eq!((ok.status, ok.value, ok.numerator, ok.denominator), (Status::Ok, Some(0.75), Some(150), Some(200)));
        let zero = ratio("closure_rate", 0, 40);
        assert_eq!((zero.status, zero.value), (Status::Ok, Some(0.0)));
        let empty = ratio("closure_rate", 0, 0);
        assert_eq!((empty.status, empty.value), (Status::Ok, None));
    }

    #[test]
    fn threshold_never_below_five() {
        let ind = indicator("filed").unwrap();
        assert_eq!(evaluate(ind, 2, |_| p(4)).status, Status::Suppressed);
        assert_eq!(evaluate(ind, 2, |_| p(5)).status, Status::Ok);
    }
}
