//! Record sets: what a released number counts, as a box in the product space of a dataset's records.
//!
//! Every record of `cases` has a first date (`filed_on`), a last date (`closed_on`, or [`OPEN`] while
//! pending) and categorical fields: where it was heard ([`PLACE`]: the court and region pair, from the
//! topology the nodes declare), its case type, cause, closure method (empty while pending), whether it
//! closed on time, the boolean flags of [`FLAG_FIELDS`] and whether each money field has a value.
//! `mediations` have `accepted_on` and `closed_on`, a region, result (empty while open), a judicial
//! confirmation flag and a dispute type. A [`RecordSet`] restricts each date to a span of days and each
//! categorical field to a set of values; the catalogue's measures ([`RecordSet::of_measure`]) and the
//! query's filters and groups ([`RecordSet::restrict_dim`]) build it, so a catalogue-defined indicator is
//! described without code:
//!
//! - `filed in P`: filed ∈ P; `closed in P`: closed ∈ P; `active in P`: filed ≤ end(P) ∧ closed ≥
//!   start(P); `open at the end of P`: filed ≤ end(P) ∧ closed > end(P), and older than n days: filed <
//!   end(P) − n;
//! - conditions restrict fields (`closed_on ≤ deadline_on` is the `on_time` field), a sum of money
//!   restricts its field to records that have a value;
//! - division and instance are rewritten as the case types they stand for; a court or a region as the
//!   (court, region) pairs it covers; a filter listing every value of a field with a known domain is no
//!   filter at all.
//!
//! A released number is a [`Release`]: a signed sum of record sets and its value (a count of records,
//! and for a sum of money the sum too). [`super::audit`] decides what the releases determine.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dimension::Dimension;
use crate::indicator::{Accumulate, Anchor, Condition, FLAG_FIELDS, Measure};
use crate::period::{Month, days_from_civil};
use crate::schema::{CLOSURE_METHODS, DISPUTE_TYPES, MEDIATION_RESULTS, TYPE_CODES, division_of, instance_of};

/// The `closed_on` day of a record still open (later than every real day).
pub const OPEN: i32 = i32::MAX;
/// The earliest day (no lower bound).
pub const NEVER: i32 = i32::MIN;

/// The (court, region) pair of a case (`闽0213|350213`), when the topology is complete.
pub const PLACE: &str = "place";
/// Case type.
pub const TYPE_CODE: &str = "type_code";
/// Cause of action (an open domain: any text).
pub const CAUSE: &str = "cause";
/// Closure method; the empty value while the case is pending.
pub const CLOSURE: &str = "closure_method";
/// `closed_on ≤ deadline_on` (`1`) or not (`0`; always `0` while pending).
pub const ON_TIME: &str = "on_time";
/// Mediation result; the empty value while the mediation is open.
pub const RESULT: &str = "result";
/// Whether a mediation has a judicial confirmation case number.
pub const CONFIRMED: &str = "confirmed";
/// Kind of dispute of a mediation.
pub const DISPUTE: &str = "dispute_type";
/// Region, where places are not pairs (mediations; cases when the topology is incomplete).
pub const REGION: &str = "region";
/// Court, where places are not pairs (cases when the topology is incomplete).
pub const COURT: &str = "court";
/// Prefix of the axis saying a money field has a value (`has:enforce_collected`).
pub const HAS: &str = "has:";

/// A span of days, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    /// First day.
    pub lo: i32,
    /// Last day ([`OPEN`] includes records still open).
    pub hi: i32,
}

impl Span {
    /// Every day, open included.
    pub const ALL: Span = Span { lo: NEVER, hi: OPEN };

    /// The intersection (empty when `lo > hi`).
    pub fn meet(self, other: Span) -> Span {
        Span { lo: self.lo.max(other.lo), hi: self.hi.min(other.hi) }
    }

    /// Whether no day is in the span.
    pub fn is_empty(self) -> bool {
        self.lo > self.hi
    }
}

/// Where courts sit: the (court, region) pairs the case nodes declare. Complete when every node serving
/// cases names its courts and regions; then a court cell and a region cell are related through the
/// pairs in both directions (equal record sets are equal), else court and region are separate fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    /// Every (court, region) pair a case may have.
    pub pairs: BTreeSet<(String, String)>,
    /// Whether `pairs` holds every place a case may have.
    pub complete: bool,
}

impl Topology {
    /// Builds the topology from each case node's declared courts and regions: a node's cases lie in
    /// one of its courts and one of its regions.
    pub fn from_nodes<'a>(nodes: impl IntoIterator<Item = (&'a [String], &'a [String])>) -> Topology {
        let mut t = Topology { pairs: BTreeSet::new(), complete: true };
        for (courts, regions) in nodes {
            if courts.is_empty() || regions.is_empty() {
                t.complete = false;
            }
            for c in courts {
                for r in regions {
                    t.pairs.insert((c.clone(), r.clone()));
                }
            }
        }
        if t.pairs.is_empty() {
            t.complete = false;
        }
        t
    }

    fn pair(court: &str, region: &str) -> String {
        format!("{court}|{region}")
    }
}

/// The values a categorical axis can take, `None` when the domain is open (causes, places without a
/// complete topology).
pub fn domain(dataset: &str, axis: &str, topology: &Topology) -> Option<Vec<String>> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let with_empty = |v: &[&str]| {
        let mut out = owned(v);
        out.push(String::new());
        out
    };
    match (dataset, axis) {
        ("cases", TYPE_CODE) => Some(owned(TYPE_CODES)),
        ("cases", CLOSURE) => Some(with_empty(CLOSURE_METHODS)),
        ("cases", PLACE) if topology.complete => {
            Some(topology.pairs.iter().map(|(c, r)| Topology::pair(c, r)).collect())
        }
        ("mediations", RESULT) => Some(with_empty(MEDIATION_RESULTS)),
        ("mediations", DISPUTE) => Some(owned(DISPUTE_TYPES)),
        (_, a) if a == ON_TIME || a == CONFIRMED || a.starts_with(HAS) || FLAG_FIELDS.contains(&a) => {
            Some(owned(&["0", "1"]))
        }
        _ => None,
    }
}

/// A set of records of one dataset: a box of day spans and allowed values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordSet {
    /// `cases` or `mediations`.
    pub dataset: String,
    /// Days of `filed_on` (`accepted_on`).
    pub first: Span,
    /// Days of `closed_on` ([`OPEN`] for records still open).
    pub last: Span,
    /// Allowed values per categorical axis (sorted, distinct); an axis absent here is unrestricted.
    pub fields: BTreeMap<String, Vec<String>>,
}

/// The first and last day of a month.
pub fn month_days(m: Month) -> (i32, i32) {
    let first = days_from_civil(m.year(), m.month(), 1);
    let next = m.next();
    (first, days_from_civil(next.year(), next.month(), 1) - 1)
}

fn flag(v: bool) -> String {
    if v { "1".into() } else { "0".into() }
}

impl RecordSet {
    /// Every record of `dataset`.
    pub fn all(dataset: &str) -> RecordSet {
        RecordSet { dataset: dataset.into(), first: Span::ALL, last: Span::ALL, fields: BTreeMap::new() }
    }

    /// The records measure `m` counts over the days `from..=to` (whole months), `None` for measures
    /// that count no one (yearly public figures).
    pub fn of_measure(m: &Measure, from: i32, to: i32, topology: &Topology) -> Option<RecordSet> {
        let mut s = RecordSet::all(m.dataset);
        match m.anchor {
            Anchor::Filed | Anchor::Accepted => s.first = Span { lo: from, hi: to },
            Anchor::Closed => s.last = Span { lo: from, hi: to },
            Anchor::Active => {
                s.first = Span { lo: NEVER, hi: to };
                s.last = Span { lo: from, hi: OPEN };
            }
            Anchor::OpenAtEnd { older_than_days } => {
                let newest = if older_than_days >= 0 { to - older_than_days - 1 } else { to };
                s.first = Span { lo: NEVER, hi: newest };
                s.last = Span { lo: to + 1, hi: OPEN };
            }
            Anchor::Year => return None,
        }
        match m.condition {
            Condition::Any => {}
            Condition::ClosedOnTime => s.restrict(ON_TIME, &[flag(true)], topology),
            Condition::Cases { type_codes, closure_methods, flags } => {
                if !type_codes.is_empty() {
                    s.restrict(TYPE_CODE, &type_codes.iter().map(|t| t.to_string()).collect::<Vec<_>>(), topology);
                }
                if !closure_methods.is_empty() {
                    let v: Vec<String> = closure_methods.iter().map(|t| t.to_string()).collect();
                    s.restrict(CLOSURE, &v, topology);
                }
                for (f, v) in flags {
                    s.restrict(f, &[flag(*v)], topology);
                }
            }
            Condition::Mediations { results, confirmed } => {
                if !results.is_empty() {
                    s.restrict(RESULT, &results.iter().map(|t| t.to_string()).collect::<Vec<_>>(), topology);
                }
                if let Some(c) = confirmed {
                    s.restrict(CONFIRMED, &[flag(c)], topology);
                }
            }
        }
        match m.accumulate {
            Accumulate::Count | Accumulate::TrialDays => {}
            Accumulate::Sum { field } => s.restrict(&format!("{HAS}{field}"), &[flag(true)], topology),
            Accumulate::Total { .. } => return None,
        }
        Some(s)
    }

    /// Keeps only records whose `axis` is one of `values`. A restriction to every value of a known
    /// domain is dropped (it equals no restriction); values outside a known domain hold no record.
    pub fn restrict(&mut self, axis: &str, values: &[String], topology: &Topology) {
        let mut vals: Vec<String> = values.to_vec();
        let dom = domain(&self.dataset, axis, topology);
        if let Some(d) = &dom {
            vals.retain(|v| d.contains(v));
        }
        vals.sort();
        vals.dedup();
        let slot = match self.fields.get(axis) {
            Some(old) => old.iter().filter(|v| vals.binary_search(v).is_ok()).cloned().collect(),
            None => vals,
        };
        if dom.is_some_and(|d| d.len() == slot.len()) {
            self.fields.remove(axis);
        } else {
            self.fields.insert(axis.to_string(), slot);
        }
    }

    /// Keeps only records whose dimension `dim` (a record dimension, not a time one) is one of
    /// `values`: division and instance as their case types, courts and regions as places.
    pub fn restrict_dim(&mut self, dim: Dimension, values: &[String], topology: &Topology) {
        let types = |pick: fn(&str) -> Option<&'static str>| -> Vec<String> {
            TYPE_CODES
                .iter()
                .filter(|t| pick(t).is_some_and(|d| values.iter().any(|v| v == d)))
                .map(|t| t.to_string())
                .collect()
        };
        match dim {
            Dimension::Division => self.restrict(TYPE_CODE, &types(division_of), topology),
            Dimension::Instance => self.restrict(TYPE_CODE, &types(instance_of), topology),
            Dimension::TypeCode => self.restrict(TYPE_CODE, values, topology),
            Dimension::Cause => self.restrict(CAUSE, values, topology),
            Dimension::DisputeType => self.restrict(DISPUTE, values, topology),
            Dimension::Region | Dimension::Court if self.dataset == "cases" && topology.complete => {
                let places: Vec<String> = topology
                    .pairs
                    .iter()
                    .filter(|(c, r)| values.contains(if dim == Dimension::Court { c } else { r }))
                    .map(|(c, r)| Topology::pair(c, r))
                    .collect();
                self.restrict(PLACE, &places, topology);
            }
            Dimension::Region => self.restrict(REGION, values, topology),
            Dimension::Court => self.restrict(COURT, values, topology),
            Dimension::Year | Dimension::Quarter | Dimension::Month => {}
        }
    }

    /// Whether the set holds no record whatever the data (a span or a value list is empty, or every
    /// record would close before it was filed).
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
            || self.last.is_empty()
            || self.first.lo > self.last.hi
            || self.fields.values().any(|v| v.is_empty())
    }
}

/// A released number: a signed sum of record sets, the count of records it stands for and, for a sum
/// of money, the money field and the sum. A zero release (`count` 0, e.g. the groups an answer does not
/// list) holds for every additive quantity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Release {
    /// The measure it comes from (for messages; `zero` for the empty remainder of an answer).
    pub measure: String,
    /// Coefficient and record set of each term.
    pub terms: Vec<(i32, RecordSet)>,
    /// Σ coefficient × records of the term.
    pub count: i64,
    /// For a sum of money: the field and Σ coefficient × the sum over the term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub money: Option<(String, i64)>,
}

impl Release {
    /// A count of one record set.
    pub fn count(measure: &str, set: RecordSet, count: i64) -> Release {
        Release { measure: measure.into(), terms: vec![(1, set)], count, money: None }
    }

    /// Whether the release says the records of its terms number zero in every sense.
    pub fn is_zero(&self) -> bool {
        self.count == 0 && self.money.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::measure;

    fn topo() -> Topology {
        let c = |s: &str| vec![s.to_string()];
        let (c1, r1, c2, r2) = (c("闽0213"), c("350213"), c("闽0212"), c("350212"));
        Topology::from_nodes([(&c1[..], &r1[..]), (&c2[..], &r2[..])])
    }

    #[test]
    fn a_court_and_its_region_are_the_same_record_set() {
        let t = topo();
        let m = measure("cases.open_at_end").unwrap();
        let mut a = RecordSet::of_measure(m, 0, 30, &t).unwrap();
        let mut b = a.clone();
        a.restrict_dim(Dimension::Court, &["闽0213".into()], &t);
        b.restrict_dim(Dimension::Region, &["350213".into()], &t);
        assert_eq!(a, b);
    }

    #[test]
    fn every_value_of_a_known_domain_is_no_filter() {
        let t = topo();
        let m = measure("cases.filed").unwrap();
        let plain = RecordSet::of_measure(m, 0, 30, &t).unwrap();
        let mut all = plain.clone();
        all.restrict_dim(Dimension::TypeCode, &TYPE_CODES.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &t);
        assert_eq!(all, plain);
        let mut divisions = plain.clone();
        let d: Vec<String> = ["民事", "刑事", "行政", "执行"].iter().map(|s| s.to_string()).collect();
        divisions.restrict_dim(Dimension::Division, &d, &t);
        assert_eq!(divisions, plain);
        let mut places = plain.clone();
        places.restrict_dim(Dimension::Region, &["350213".into(), "350212".into()], &t);
        assert_eq!(places, plain);
    }

    #[test]
    fn measures_become_boxes() {
        let t = topo();
        let m = measure("cases.open_at_end_over_365_days").unwrap();
        let s = RecordSet::of_measure(m, 1000, 1030, &t).unwrap();
        assert_eq!(s.first, Span { lo: NEVER, hi: 1030 - 366 });
        assert_eq!(s.last, Span { lo: 1031, hi: OPEN });
        let m = measure("cases.closed_first_judgment_appealed").unwrap();
        let s = RecordSet::of_measure(m, 1000, 1030, &t).unwrap();
        assert_eq!(s.fields["appealed"], vec!["1".to_string()]);
        assert_eq!(s.fields[CLOSURE], vec!["判决".to_string()]);
        assert_eq!(s.fields[TYPE_CODE].len(), 3);
        assert!(RecordSet::of_measure(measure("population.resident_and_floating").unwrap(), 0, 1, &t).is_none());
    }
}
