//! The indicator catalogue and the partial measures behind it.
//!
//! A node computes *measures* (counts and sums with contributor counts) over its own records; the gateway
//! merges them by group and turns them into indicator values here, exactly: integers until the final
//! division. Each measure names its anchor (which date puts a record "in" a sub-period) and the fields it
//! reads, so that the policy can check grades and the node can check its own clearance.

use crate::dimension::Dimension;
use crate::schema::{CASES, Grade};

/// Which date places a record in a sub-period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// `filed_on` falls in the sub-period.
    Filed,
    /// `closed_on` falls in the sub-period.
    Closed,
    /// The case was open at some time during the sub-period: filed on or before its last day and not
    /// closed before its first day (= pending at its start + filed in it, 旧存 + 新收).
    Active,
}

/// A further condition on the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Every anchored record.
    Any,
    /// `closed_on <= deadline_on` (closed within the statutory time limit, 审限内).
    ClosedOnTime,
    /// The case type is one of `type_codes` and, unless `closure_methods` is empty, the case was closed
    /// by one of `closure_methods` (labels of the schema's enumerations).
    Cases {
        /// Accepted case types (empty: any).
        type_codes: &'static [&'static str],
        /// Accepted closure methods (empty: any, including none).
        closure_methods: &'static [&'static str],
    },
}

/// What is accumulated per record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accumulate {
    /// One per record.
    Count,
    /// `closed_on − filed_on` in days.
    TrialDays,
}

/// Identifier of a measure, e.g. `cases.closed`.
pub type MeasureId = &'static str;

/// A partial measure a node computes.
#[derive(Clone, Copy, Debug)]
pub struct Measure {
    /// Identifier used on the wire.
    pub id: MeasureId,
    /// Dataset it is computed over.
    pub dataset: &'static str,
    /// Anchor date.
    pub anchor: Anchor,
    /// Extra condition.
    pub condition: Condition,
    /// What is summed.
    pub accumulate: Accumulate,
    /// Fields it reads (for grade checks).
    pub reads: &'static [&'static str],
}

/// Every measure nodes know.
pub const MEASURES: &[Measure] = &[
    Measure {
        id: "cases.filed",
        dataset: "cases",
        anchor: Anchor::Filed,
        condition: Condition::Any,
        accumulate: Accumulate::Count,
        reads: &["filed_on"],
    },
    Measure {
        id: "cases.closed",
        dataset: "cases",
        anchor: Anchor::Closed,
        condition: Condition::Any,
        accumulate: Accumulate::Count,
        reads: &["closed_on"],
    },
    Measure {
        id: "cases.active",
        dataset: "cases",
        anchor: Anchor::Active,
        condition: Condition::Any,
        accumulate: Accumulate::Count,
        reads: &["filed_on", "closed_on"],
    },
    Measure {
        id: "cases.closed_on_time",
        dataset: "cases",
        anchor: Anchor::Closed,
        condition: Condition::ClosedOnTime,
        accumulate: Accumulate::Count,
        reads: &["closed_on", "deadline_on"],
    },
    Measure {
        id: "cases.trial_days",
        dataset: "cases",
        anchor: Anchor::Closed,
        condition: Condition::Any,
        accumulate: Accumulate::TrialDays,
        reads: &["filed_on", "closed_on"],
    },
    Measure {
        id: "cases.closed_civil_first",
        dataset: "cases",
        anchor: Anchor::Closed,
        condition: Condition::Cases { type_codes: &["民初"], closure_methods: &[] },
        accumulate: Accumulate::Count,
        reads: &["closed_on", "type_code"],
    },
    Measure {
        id: "cases.closed_civil_first_mediated_withdrawn",
        dataset: "cases",
        anchor: Anchor::Closed,
        condition: Condition::Cases {
            type_codes: &["民初"], closure_methods: &["调解", "准予撤诉", "按撤诉处理"]
        },
        accumulate: Accumulate::Count,
        reads: &["closed_on", "type_code", "closure_method"],
    },
];

/// The measure called `id`.
pub fn measure(id: &str) -> Option<&'static Measure> {
    MEASURES.iter().find(|m| m.id == id)
}

/// How an indicator is computed from measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndicatorKind {
    /// A count of records.
    Count {
        /// The counted measure.
        measure: MeasureId,
    },
    /// numerator ÷ denominator.
    Ratio {
        /// Numerator measure.
        numerator: MeasureId,
        /// Denominator measure.
        denominator: MeasureId,
        /// Whether the numerator's records are a subset of the denominator's, so that the difference
        /// is itself a count that disclosure control must protect.
        subset: bool,
    },
    /// sum ÷ count (a mean over records).
    Mean {
        /// The summed measure.
        sum: MeasureId,
        /// The counted measure.
        count: MeasureId,
    },
}

impl IndicatorKind {
    /// `count`, `ratio` or `mean`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IndicatorKind::Count { .. } => "count",
            IndicatorKind::Ratio { .. } => "ratio",
            IndicatorKind::Mean { .. } => "mean",
        }
    }
}

/// An indicator of the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct Indicator {
    /// Identifier, e.g. `closure_rate`.
    pub id: &'static str,
    /// Chinese name, e.g. 结案率.
    pub name: &'static str,
    /// The formula in words.
    pub formula: &'static str,
    /// Dataset the indicator reads.
    pub dataset: &'static str,
    /// How it is computed.
    pub kind: IndicatorKind,
    /// Dimensions it may be grouped or filtered by.
    pub dimensions: &'static [Dimension],
}

const CASE_DIMENSIONS: &[Dimension] = crate::dimension::ALL;

/// The indicator catalogue.
pub const INDICATORS: &[Indicator] = &[
    Indicator {
        id: "filed",
        name: "新收案件数",
        formula: "count of cases with filed_on in P",
        dataset: "cases",
        kind: IndicatorKind::Count { measure: "cases.filed" },
        dimensions: CASE_DIMENSIONS,
    },
    Indicator {
        id: "closed",
        name: "结案数",
        formula: "count of cases with closed_on in P",
        dataset: "cases",
        kind: IndicatorKind::Count { measure: "cases.closed" },
        dimensions: CASE_DIMENSIONS,
    },
    Indicator {
        id: "closure_rate",
        name: "结案率",
        formula: "closed in P ÷ (pending at start of P + filed in P)",
        dataset: "cases",
        kind: IndicatorKind::Ratio { numerator: "cases.closed", denominator: "cases.active", subset: true },
        dimensions: CASE_DIMENSIONS,
    },
    Indicator {
        id: "on_time_rate",
        name: "法定审限内结案率",
        formula: "closed in P with closed_on <= deadline_on ÷ closed in P",
        dataset: "cases",
        kind: IndicatorKind::Ratio { numerator: "cases.closed_on_time", denominator: "cases.closed", subset: true },
        dimensions: CASE_DIMENSIONS,
    },
    Indicator {
        id: "avg_trial_days",
        name: "平均审理天数",
        formula: "mean of closed_on − filed_on (days) over cases closed in P",
        dataset: "cases",
        kind: IndicatorKind::Mean { sum: "cases.trial_days", count: "cases.closed" },
        dimensions: CASE_DIMENSIONS,
    },
    Indicator {
        id: "mediation_withdrawal_rate",
        name: "调撤率",
        formula: "first-instance civil (民初) closed in P by 调解, 准予撤诉 or 按撤诉处理 ÷ 民初 closed in P",
        dataset: "cases",
        kind: IndicatorKind::Ratio {
            numerator: "cases.closed_civil_first_mediated_withdrawn",
            denominator: "cases.closed_civil_first",
            subset: true,
        },
        dimensions: CASE_DIMENSIONS,
    },
];

/// The indicator called `id`.
pub fn indicator(id: &str) -> Option<&'static Indicator> {
    INDICATORS.iter().find(|i| i.id == id)
}

impl Indicator {
    /// The measures the indicator needs, without repeats, in a fixed order.
    pub fn measures(&self) -> Vec<MeasureId> {
        let mut out: Vec<MeasureId> = match self.kind {
            IndicatorKind::Count { measure } => vec![measure],
            IndicatorKind::Ratio { numerator, denominator, .. } => vec![numerator, denominator],
            IndicatorKind::Mean { sum, count } => vec![sum, count],
        };
        out.dedup();
        out
    }

    /// Every field the indicator reads through its measures.
    pub fn fields_read(&self) -> Vec<&'static str> {
        let mut fields: Vec<&'static str> =
            self.measures().iter().filter_map(|m| measure(m)).flat_map(|m| m.reads.iter().copied()).collect();
        fields.sort_unstable();
        fields.dedup();
        fields
    }

    /// The highest grade among the fields the indicator reads and the dimensions `dims` read.
    pub fn grade_with(&self, dims: &[Dimension]) -> Grade {
        let dataset = crate::schema::dataset(self.dataset).unwrap_or(&CASES);
        let fields = self.fields_read().into_iter().filter_map(|f| dataset.field(f)).map(|f| f.grade);
        fields.chain(dims.iter().map(|d| d.grade())).max().unwrap_or(Grade::L1)
    }

    /// Whether the indicator may be grouped or filtered by `d`.
    pub fn allows(&self, d: Dimension) -> bool {
        self.dimensions.contains(&d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_indicator_names_known_measures_of_its_dataset() {
        for ind in INDICATORS {
            for m in ind.measures() {
                let measure = measure(m).unwrap_or_else(|| panic!("{} names unknown measure {m}", ind.id));
                assert_eq!(measure.dataset, ind.dataset);
                let ds = crate::schema::dataset(measure.dataset).unwrap();
                for f in measure.reads {
                    assert!(ds.field(f).is_some(), "{m} reads unknown field {f}");
                }
            }
        }
    }

    #[test]
    fn grades_follow_fields() {
        let ind = indicator("closure_rate").unwrap();
        assert_eq!(ind.grade_with(&[Dimension::Region]), Grade::L2);
        assert_eq!(ind.measures(), vec!["cases.closed", "cases.active"]);
        assert_eq!(ind.fields_read(), vec!["closed_on", "filed_on"]);
    }
}
