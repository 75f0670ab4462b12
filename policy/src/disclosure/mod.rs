//! Disclosure control of merged cells (DESIGN.md, "Disclosure control").
//!
//! Threshold rule with k (default 10, never below 5): no count of 1..k−1 contributors may be shown,
//! directly or by derivation. A ratio of counts is suppressed when its numerator or denominator has
//! 1..k−1 contributors or, when the numerator's records are a subset of the denominator's, when their
//! difference has; a mean follows the threshold rule on its contributor count. Zero is shown as zero.
//! A sum of money (or a ratio of such sums) is also suppressed under (1, 85) dominance. A rate per
//! population is suppressed when its count has 1..k−1 contributors (the population is public), and
//! withheld as `partial` when no population figure joins it.
//!
//! Secondary suppression: every margin of an answer (the cells of one "line", all group values but one
//! fixed) can be had from another allowed query, so within each line the suppressed cells together must
//! not hold 1..k−1 contributors of any protected count (and a line never has exactly one suppressed
//! cell while others could join it); the smallest safe complementary cells are suppressed until so.

use crate::indicator::{Indicator, IndicatorKind, MeasureId};

pub mod audit;
pub mod pairs;
pub mod recordset;

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
    /// A cell withheld by disclosure control under `rule`.
    pub fn suppressed(rule: &'static str) -> Self {
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

/// Whether a sum of money is dominated: one contributor holds more than 85 % of the total ((1, 85) rule).
/// `total` and `max_single` are in fen; a non-positive total is not dominated (nothing to reveal).
pub fn dominated(total: i64, max_single: i64) -> bool {
    // 100·max > 85·total, in i128 so that no sum of fen can overflow.
    total > 0 && i128::from(max_single) * 100 > i128::from(total) * 85
}

/// The counts of contributors disclosure control protects in one cell: the count itself, or a
/// ratio's numerator, denominator and (subset ratios) their difference, or a mean's contributors.
pub fn protected_counts(indicator: &Indicator, get: impl Fn(MeasureId) -> Partial) -> Vec<u64> {
    match indicator.kind {
        IndicatorKind::Count { measure } => vec![get(measure).contributors],
        IndicatorKind::Ratio { numerator, denominator, subset } => {
            let (n, d) = (get(numerator).contributors, get(denominator).contributors);
            if subset { vec![n, d, d.saturating_sub(n)] } else { vec![n, d] }
        }
        IndicatorKind::Mean { count, .. } => vec![get(count).contributors],
        // The count in P only; [`deviation_protected_counts`] adds the baseline years.
        IndicatorKind::Deviation { measure, .. } => vec![get(measure).contributors],
        // The population is public (L1): only the counted records are protected.
        IndicatorKind::PerPopulation { numerator, .. } => vec![get(numerator).contributors],
    }
}

/// The protected counts of a deviation cell: the count in P and each baseline year's count.
pub fn deviation_protected_counts(current: Partial, baseline: &[Partial]) -> Vec<u64> {
    std::iter::once(current).chain(baseline.iter().copied()).map(|p| p.contributors).collect()
}

/// Evaluates a deviation cell from the count in P (`current`) and each previous year's count of the
/// same months (`baseline`, year −1 first). Every count used follows the threshold rule: if any has
/// 1..k−1 contributors the cell is suppressed. Shown: the deviation as value, the count in P as
/// numerator and the baseline's sum as denominator (a zero denominator: no value, no level).
pub fn evaluate_deviation(indicator: &Indicator, k: u32, current: Partial, baseline: &[Partial]) -> Cell {
    let k = k.max(MIN_THRESHOLD);
    let IndicatorKind::Deviation { baseline_years, .. } = indicator.kind else {
        return Cell::suppressed("not a deviation indicator");
    };
    if is_small(current.contributors, k) {
        return Cell::suppressed("count below threshold");
    }
    if baseline.iter().any(|b| is_small(b.contributors, k)) {
        return Cell::suppressed("baseline year count below threshold");
    }
    let sum = baseline.iter().fold(0i64, |a, b| a.saturating_add(b.value));
    Cell {
        status: Status::Ok,
        value: crate::deviation::deviation(current.value, sum, baseline_years),
        numerator: Some(current.value),
        denominator: Some(sum),
        rule: None,
    }
}

/// One cell as secondary suppression sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protected {
    /// Group values, one per group-by dimension.
    pub key: Vec<String>,
    /// The protected counts ([`protected_counts`]).
    pub counts: Vec<u64>,
    /// Whether the cell is withheld (by a primary rule, or by this function).
    pub suppressed: bool,
    /// Whether the cell may be chosen as a complementary suppression (false for `partial` cells).
    pub eligible: bool,
}

/// Secondary suppression over the cells of one answer grouped by `dims` dimensions: marks further
/// cells suppressed until, in every line of every dimension, the suppressed cells' sum of each
/// protected count is 0 or at least `k`, and no line with other shown cells has exactly one
/// suppressed cell. Returns the indices newly suppressed, in the order chosen.
pub fn secondary_suppress(cells: &mut [Protected], dims: usize, k: u32) -> Vec<usize> {
    secondary_suppress_nested(cells, &vec![Vec::new(); dims], k)
}

/// Maps a group value to the coarser group it lies in (a month to its quarter or year).
pub type Parent = fn(&str) -> String;

/// The coarser groups of a dimension's values whose totals another query can give: a month's
/// quarter and year, a quarter's year; none for record dimensions.
pub fn parents_of(dim: crate::dimension::Dimension) -> Vec<Parent> {
    use crate::dimension::Dimension;
    fn year(v: &str) -> String {
        v.get(..4).unwrap_or(v).to_string()
    }
    fn quarter_of_month(v: &str) -> String {
        let m: u32 = v.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(0);
        format!("{}-Q{}", year(v), m.saturating_sub(1) / 3 + 1)
    }
    match dim {
        Dimension::Month => vec![year, quarter_of_month],
        Dimension::Quarter => vec![year],
        _ => Vec::new(),
    }
}

/// [`secondary_suppress`] with hierarchies: for dimension `d`, besides its whole lines, every
/// sub-line of values sharing a parent (`parents[d]`, e.g. the months of one quarter) must be safe
/// too, since the parent's total is another allowed query.
pub fn secondary_suppress_nested(cells: &mut [Protected], parents: &[Vec<Parent>], k: u32) -> Vec<usize> {
    let k = k.max(MIN_THRESHOLD);
    let mut added = Vec::new();
    let dims = parents.len();
    if dims == 0 {
        return added;
    }
    fn whole(_: &str) -> String {
        String::new()
    }
    loop {
        let mut changed = false;
        for (d, coarser) in parents.iter().enumerate() {
            for parent in std::iter::once(whole as Parent).chain(coarser.iter().copied()) {
                let mut lines: std::collections::BTreeMap<Vec<String>, Vec<usize>> = std::collections::BTreeMap::new();
                for (i, c) in cells.iter().enumerate() {
                    let mut rest: Vec<String> =
                        c.key.iter().enumerate().filter(|(j, _)| *j != d).map(|(_, v)| v.clone()).collect();
                    rest.push(c.key.get(d).map(|v| parent(v)).unwrap_or_default());
                    lines.entry(rest).or_default().push(i);
                }
                for line in lines.values() {
                    while let Some(i) = complement_needed(cells, line, k) {
                        cells[i].suppressed = true;
                        added.push(i);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return added;
        }
    }
}

/// The next complementary cell a line needs, if any.
fn complement_needed(cells: &[Protected], line: &[usize], k: u32) -> Option<usize> {
    let hidden: Vec<usize> = line.iter().copied().filter(|&i| cells[i].suppressed).collect();
    if hidden.is_empty() {
        return None;
    }
    let candidates: Vec<usize> = line.iter().copied().filter(|&i| !cells[i].suppressed && cells[i].eligible).collect();
    let width = cells[line[0]].counts.len();
    for j in 0..width {
        let sum: u64 = hidden.iter().map(|&i| cells[i].counts.get(j).copied().unwrap_or(0)).sum();
        if !is_small(sum, k) {
            continue;
        }
        let need = u64::from(k) - sum;
        let useful = candidates.iter().copied().filter(|&i| cells[i].counts.get(j).copied().unwrap_or(0) > 0);
        let size = |i: usize| (cells[i].counts.iter().sum::<u64>(), i);
        // The smallest cell that makes the sum safe on its own, else the smallest that helps.
        let enough =
            useful.clone().filter(|&i| cells[i].counts.get(j).copied().unwrap_or(0) >= need).min_by_key(|&i| size(i));
        if let Some(i) = enough.or_else(|| useful.min_by_key(|&i| size(i))) {
            return Some(i);
        }
    }
    if hidden.len() == 1 {
        // One hidden cell in a line with a known margin is recoverable exactly; hide a second.
        let nonzero = candidates.iter().copied().filter(|&i| cells[i].counts.iter().any(|&c| c > 0));
        return nonzero.min_by_key(|&i| (cells[i].counts.iter().sum::<u64>(), i));
    }
    None
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
            // Sums of money follow the (1, 85) dominance rule on top of the threshold.
            let money = |m: MeasureId| {
                crate::indicator::measure(m)
                    .is_some_and(|x| matches!(x.accumulate, crate::indicator::Accumulate::Sum { .. }))
            };
            if (money(numerator) && dominated(n.value, n.max_single))
                || (money(denominator) && dominated(d.value, d.max_single))
            {
                return Cell::suppressed("one contributor dominates the sum");
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
        // A deviation needs its baseline years: [`evaluate_deviation`]. Never shown from P alone.
        IndicatorKind::Deviation { .. } => Cell::suppressed("deviation needs its baseline"),
        IndicatorKind::PerPopulation { numerator, population, scale } => {
            let (n, p) = (get(numerator), get(population));
            if is_small(n.contributors, k) {
                return Cell::suppressed("numerator below threshold");
            }
            // No population figure for the group (or a non-positive one): no rate, never a guess.
            if p.contributors == 0 || p.value <= 0 {
                return Cell { rule: Some("no population figure"), ..Cell::partial() };
            }
            // Exact integers until the one final division.
            let value = (i128::from(n.value) * i128::from(scale)) as f64 / p.value as f64;
            Cell {
                status: Status::Ok,
                value: Some(value),
                numerator: Some(n.value),
                denominator: Some(p.value),
                rule: None,
            }
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

    #[test]
    fn a_deviation_is_suppressed_when_any_count_it_uses_is_small() {
        let ind = indicator("filing_deviation").unwrap();
        let cell = evaluate_deviation(ind, 10, p(115), &[p(100), p(90), p(110)]);
        assert_eq!(cell.status, Status::Ok);
        assert_eq!((cell.numerator, cell.denominator), (Some(115), Some(300)));
        assert!((cell.value.unwrap() - 0.15).abs() < 1e-12);
        // One baseline year of 1..k−1 suppresses, whatever the others are; zero does not.
        let small = evaluate_deviation(ind, 10, p(115), &[p(100), p(9), p(110)]);
        assert_eq!(small.status, Status::Suppressed);
        assert_eq!(small.rule, Some("baseline year count below threshold"));
        assert_eq!(evaluate_deviation(ind, 10, p(3), &[p(100), p(100), p(100)]).status, Status::Suppressed);
        let zero_year = evaluate_deviation(ind, 10, p(50), &[p(0), p(60), p(60)]);
        assert_eq!(zero_year.status, Status::Ok);
        // A zero baseline: shown, no value.
        let none = evaluate_deviation(ind, 10, p(50), &[p(0), p(0), p(0)]);
        assert_eq!((none.status, none.value, none.denominator), (Status::Ok, None, Some(0)));
        assert_eq!(deviation_protected_counts(p(50), &[p(0), p(60), p(61)]), vec![50, 0, 60, 61]);
        // The generic path never shows a deviation from P alone.
        assert_eq!(evaluate(ind, 10, |_| p(100)).status, Status::Suppressed);
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
    fn a_rate_per_population_is_suppressed_on_its_count_and_withheld_without_a_population() {
        let ind = indicator("litigation_per_10k").unwrap();
        let IndicatorKind::PerPopulation { numerator, population, .. } = ind.kind else { unreachable!() };
        let cell = |num: i64, pop: Partial| {
            evaluate(ind, 10, |m| {
                if m == numerator {
                    p(num)
                } else if m == population {
                    pop
                } else {
                    Partial::default()
                }
            })
        };
        let pop = Partial { value: 1_234_567, contributors: 2, max_single: 1_000_000 };
        let ok = cell(25, pop);
        assert_eq!(ok.status, Status::Ok);
        assert_eq!((ok.numerator, ok.denominator), (Some(25), Some(1_234_567)));
        assert_eq!(ok.value, Some(250_000.0 / 1_234_567.0));
        assert_eq!(cell(0, pop).value, Some(0.0));
        assert_eq!(cell(9, pop).status, Status::Suppressed);
        let none = cell(25, Partial::default());
        assert_eq!((none.status, none.value), (Status::Partial, None));
        assert_eq!(protected_counts(ind, |m| if m == numerator { p(12) } else { pop }), vec![12]);
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

    fn prot(key: &[&str], counts: &[u64], suppressed: bool) -> Protected {
        Protected {
            key: key.iter().map(|s| s.to_string()).collect(),
            counts: counts.to_vec(),
            suppressed,
            eligible: true,
        }
    }

    #[test]
    fn money_ratios_are_suppressed_when_one_case_dominates_a_sum() {
        let ind = indicator("enforcement_recovery_rate").unwrap();
        let cell = |collected_max: i64, requested_max: i64| {
            evaluate(ind, 10, |m| match m {
                "cases.enforce_collected" => Partial { value: 1000, contributors: 20, max_single: collected_max },
                _ => Partial { value: 2000, contributors: 20, max_single: requested_max },
            })
        };
        assert_eq!(cell(860, 100).status, Status::Suppressed);
        assert_eq!(cell(100, 1701).status, Status::Suppressed);
        let ok = cell(850, 1700);
        assert_eq!(
            (ok.status, ok.value, ok.numerator, ok.denominator),
            (Status::Ok, Some(0.5), Some(1000), Some(2000))
        );
        // Counts are never subject to dominance: a closed count's max_single is 1.
        let closed = indicator("closure_rate").unwrap();
        let c = evaluate(closed, 10, |_| Partial { value: 20, contributors: 20, max_single: 20 });
        assert_eq!(c.status, Status::Ok);
    }

    #[test]
    fn dominance_is_one_over_85_percent() {
        assert!(dominated(100, 86));
        assert!(!dominated(100, 85));
        assert!(!dominated(0, 0));
        assert!(dominated(i64::MAX, i64::MAX));
    }

    #[test]
    fn protected_counts_cover_numerator_denominator_and_difference() {
        let ind = indicator("on_time_rate").unwrap();
        let c = protected_counts(ind, |m| if m == "cases.closed" { p(200) } else { p(199) });
        assert_eq!(c, vec![199, 200, 1]);
        assert_eq!(protected_counts(indicator("filed").unwrap(), |_| p(7)), vec![7]);
    }

    #[test]
    fn one_small_cell_gets_the_smallest_safe_complement() {
        let mut cells = vec![
            prot(&["a"], &[3], true),
            prot(&["b"], &[40], false),
            prot(&["c"], &[12], false),
            prot(&["d"], &[6], false),
        ];
        // 3 + 6 = 9 is still small, so the smallest cell that suffices on its own (12) is chosen.
        assert_eq!(secondary_suppress(&mut cells, 1, 10), vec![2]);
        assert!(!cells[1].suppressed && !cells[3].suppressed);
    }

    #[test]
    fn two_small_cells_summing_under_k_need_a_third() {
        let mut cells = vec![prot(&["a"], &[2], true), prot(&["b"], &[3], true), prot(&["c"], &[50], false)];
        assert_eq!(secondary_suppress(&mut cells, 1, 10), vec![2]);
    }

    #[test]
    fn no_suppression_no_change_and_zero_cells_are_never_complements() {
        let mut cells = vec![prot(&["a"], &[20], false), prot(&["b"], &[0], false)];
        assert!(secondary_suppress(&mut cells, 1, 10).is_empty());
        let mut cells = vec![prot(&["a"], &[4], true), prot(&["b"], &[0], false)];
        assert!(secondary_suppress(&mut cells, 1, 10).is_empty(), "a zero cell protects nothing");
    }

    #[test]
    fn two_dimensions_propagate_across_lines() {
        // rows x, y; columns 1, 2. Only (x,1) is small.
        let mut cells = vec![
            prot(&["x", "1"], &[4], true),
            prot(&["x", "2"], &[30], false),
            prot(&["y", "1"], &[25], false),
            prot(&["y", "2"], &[50], false),
        ];
        secondary_suppress(&mut cells, 2, 10);
        assert!(cells.iter().all(|c| c.suppressed), "a 2x2 table with one small cell hides all four");
    }

    #[test]
    fn months_are_protected_within_their_quarter_and_year() {
        use crate::dimension::Dimension;
        // Jan..Jun of one year: one small month in Q1. For the half-year line alone April (12, the
        // smallest cell that suffices) would do, but the quarter Q1 (another query) minus February and
        // March would still give January: a Q1 month must be hidden too.
        let counts = [4u64, 30, 40, 12, 60, 70];
        let mut cells: Vec<Protected> =
            counts.iter().enumerate().map(|(i, &n)| prot(&[&format!("2024-{:02}", i + 1)], &[n], n < 10)).collect();
        let mut flat = cells.clone();
        assert_eq!(secondary_suppress(&mut flat, 1, 10), vec![3], "without the hierarchy April is enough");
        secondary_suppress_nested(&mut cells, &[parents_of(Dimension::Month)], 10);
        assert!(cells[1].suppressed, "February (the smallest other month of Q1) joins January");
        for quarter in [0..3, 3..6] {
            let hidden: u64 = cells[quarter].iter().filter(|c| c.suppressed).map(|c| c.counts[0]).sum();
            assert!(!is_small(hidden, 10), "a quarter hides {hidden}");
        }
        assert_eq!(parents_of(Dimension::Month)[1]("2024-11"), "2024-Q4");
        assert_eq!(parents_of(Dimension::Quarter)[0]("2024-Q4"), "2024");
    }

    #[test]
    fn threshold_never_below_five() {
        let ind = indicator("filed").unwrap();
        assert_eq!(evaluate(ind, 2, |_| p(4)).status, Status::Suppressed);
        assert_eq!(evaluate(ind, 2, |_| p(5)).status, Status::Ok);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// After secondary suppression no line of a two-way table lets a small count be derived from
        /// its margin: the hidden cells of each line sum to 0 or at least k, and a line never hides
        /// exactly one cell while another non-empty one is shown.
        #[test]
        fn no_small_count_is_recoverable_from_margins(
            raw in proptest::collection::vec(0u64..40, 1..30),
            cols in 1usize..6,
            k in 5u32..12,
        ) {
            let mut cells: Vec<Protected> = raw
                .iter()
                .enumerate()
                .map(|(i, &n)| Protected {
                    key: vec![(i / cols).to_string(), (i % cols).to_string()],
                    counts: vec![n],
                    suppressed: is_small(n, k),
                    eligible: true,
                })
                .collect();
            let before: Vec<bool> = cells.iter().map(|c| c.suppressed).collect();
            secondary_suppress(&mut cells, 2, k);
            for (b, c) in before.iter().zip(&cells) {
                prop_assert!(!b || c.suppressed, "secondary suppression never reveals a cell");
            }
            for d in 0..2 {
                let mut lines: std::collections::BTreeMap<String, Vec<&Protected>> = Default::default();
                for c in &cells {
                    lines.entry(c.key[1 - d].clone()).or_default().push(c);
                }
                for line in lines.values() {
                    let hidden: Vec<&&Protected> = line.iter().filter(|c| c.suppressed).collect();
                    let sum: u64 = hidden.iter().map(|c| c.counts[0]).sum();
                    let total: u64 = line.iter().map(|c| c.counts[0]).sum();
                    // A line whose own total is small has a margin that is itself suppressed.
                    prop_assert!(!is_small(sum, k) || sum == total, "line hides {sum} contributors");
                    // Every shown cell is itself safe.
                    for c in line.iter().filter(|c| !c.suppressed) {
                        prop_assert!(!is_small(c.counts[0], k));
                    }
                    if hidden.len() == 1 {
                        let shown_nonzero = line.iter().any(|c| !c.suppressed && c.counts[0] > 0);
                        prop_assert!(!shown_nonzero || hidden[0].counts[0] == 0, "single hidden cell recoverable");
                    }
                }
            }
        }

        /// Months of two years: after hierarchical secondary suppression, every year and every
        /// quarter (totals other queries give) hides 0, at least k, or all of its own total.
        #[test]
        fn months_are_safe_within_quarters_and_years(
            raw in proptest::collection::vec(0u64..30, 24),
            k in 5u32..12,
        ) {
            let mut cells: Vec<Protected> = raw
                .iter()
                .enumerate()
                .map(|(i, &n)| Protected {
                    key: vec![format!("{}-{:02}", 2023 + i / 12, i % 12 + 1)],
                    counts: vec![n],
                    suppressed: is_small(n, k),
                    eligible: true,
                })
                .collect();
            secondary_suppress_nested(&mut cells, &[parents_of(crate::dimension::Dimension::Month)], k);
            for group in (0..8).map(|q| q * 3..q * 3 + 3).chain([0..12, 12..24, 0..24]) {
                let hidden: u64 = cells[group.clone()].iter().filter(|c| c.suppressed).map(|c| c.counts[0]).sum();
                let total: u64 = cells[group.clone()].iter().map(|c| c.counts[0]).sum();
                prop_assert!(!is_small(hidden, k) || hidden == total, "{group:?} hides {hidden}");
            }
        }
    }
}
