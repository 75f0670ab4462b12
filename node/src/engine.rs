//! The node's aggregation engine: the `cases` dataset held in memory as columns (dictionary-encoded
//! codes, day numbers and month indices) built from the durable store, and a single-pass aggregation
//! that produces partial measures with contributor counts per group and sub-period.
//!
//! Time dimensions split the period into sub-periods (years, quarters or months); each measure's anchor
//! decides which sub-periods a case falls in: the month of `filed_on`, of `closed_on`, or — for
//! "active" (pending at the start + filed in) — every sub-period the case was open in.

use std::collections::HashMap;

use shuzhu_policy::dimension::{Dimension, TimeGrain, time_grain};
use shuzhu_policy::disclosure::Partial;
use shuzhu_policy::indicator::{Accumulate, Anchor, Condition, Measure};
use shuzhu_policy::period::{Month, Period, format_day, month_of_day};
use shuzhu_policy::schema::{self, CASES, TYPE_CODES};

use crate::record::{Record, Value};
use crate::store::{Store, StoreError};

const OPEN: i32 = i32::MAX;

/// The `cases` dataset as columns.
#[derive(Default)]
pub struct CaseTable {
    courts: Vec<String>,
    causes: Vec<String>,
    court: Vec<u16>,
    region: Vec<u32>,
    type_code: Vec<u8>,
    cause: Vec<u32>,
    filed: Vec<i32>,
    closed: Vec<i32>,
    deadline: Vec<i32>,
    filed_month: Vec<i32>,
    closed_month: Vec<i32>,
    regions: Vec<u32>,
    max_day: Option<i32>,
}

/// Why a request cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed while loading.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record could not be decoded.
    #[error("stored record {0} is unreadable")]
    Corrupt(String),
    /// A dimension or filter the dataset does not have.
    #[error("dimension {0} is not available for dataset cases")]
    Dimension(String),
}

/// One filter, already parsed.
#[derive(Clone, Debug)]
pub struct Filter {
    /// The dimension.
    pub dimension: Dimension,
    /// Accepted values.
    pub values: Vec<String>,
}

/// One output group: labels in `group_by` order and one partial per requested measure.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupOut {
    /// Labels.
    pub key: Vec<String>,
    /// Partials, in the order measures were asked.
    pub partials: Vec<Partial>,
}

fn field_index(name: &str) -> usize {
    CASES.fields.iter().position(|f| f.name == name).unwrap_or(usize::MAX)
}

impl CaseTable {
    /// Loads every stored case.
    pub fn load(store: &dyn Store) -> Result<Self, EngineError> {
        let mut t = CaseTable::default();
        let mut court_ids: HashMap<String, u16> = HashMap::new();
        let mut cause_ids: HashMap<String, u32> = HashMap::new();
        let (i_court, i_region, i_type, i_cause) =
            (field_index("court_code"), field_index("region_code"), field_index("type_code"), field_index("cause"));
        let (i_filed, i_closed, i_deadline) =
            (field_index("filed_on"), field_index("closed_on"), field_index("deadline_on"));
        let mut bad: Option<String> = None;
        store.scan("cases", &mut |k, v| {
            let Ok(rec) = postcard::from_bytes::<Record>(v) else {
                bad.get_or_insert_with(|| String::from_utf8_lossy(k).chars().count().to_string());
                return;
            };
            let text = |i: usize| match rec.values.get(i) {
                Some(Value::Text(s)) => s.as_str(),
                _ => "",
            };
            let int = |i: usize| match rec.values.get(i) {
                Some(Value::Int(n)) => *n,
                _ => 0,
            };
            let day = |i: usize| match rec.values.get(i) {
                Some(Value::Day(d)) => *d,
                _ => OPEN,
            };
            let next = court_ids.len() as u16;
            let court = *court_ids.entry(text(i_court).to_string()).or_insert(next);
            if court == next {
                t.courts.push(text(i_court).to_string());
            }
            let next = cause_ids.len() as u32;
            let cause = *cause_ids.entry(text(i_cause).to_string()).or_insert(next);
            if cause == next {
                t.causes.push(text(i_cause).to_string());
            }
            let type_code = match rec.values.get(i_type) {
                Some(Value::Enum(e)) => *e,
                _ => 0,
            };
            let (filed, closed, deadline) = (day(i_filed), day(i_closed), day(i_deadline));
            t.court.push(court);
            t.region.push(int(i_region) as u32);
            t.type_code.push(type_code);
            t.cause.push(cause);
            t.filed.push(filed);
            t.closed.push(closed);
            t.deadline.push(deadline);
            t.filed_month.push(month_of_day(filed).index());
            t.closed_month.push(if closed == OPEN { OPEN } else { month_of_day(closed).index() });
            let latest = if closed == OPEN { filed } else { closed.max(filed) };
            t.max_day = Some(t.max_day.map_or(latest, |m: i32| m.max(latest)));
        })?;
        if let Some(key) = bad {
            return Err(EngineError::Corrupt(format!("(key of {key} characters)")));
        }
        t.regions = t.region.clone();
        t.regions.sort_unstable();
        t.regions.dedup();
        Ok(t)
    }

    /// Number of cases.
    pub fn len(&self) -> usize {
        self.filed.len()
    }

    /// Whether there are no cases.
    pub fn is_empty(&self) -> bool {
        self.filed.is_empty()
    }

    /// Latest date in the data, `YYYY-MM-DD`.
    pub fn data_until(&self) -> Option<String> {
        self.max_day.map(format_day)
    }

    /// The distinct region codes.
    pub fn regions(&self) -> Vec<String> {
        self.regions.iter().map(|r| format!("{r:06}")).collect()
    }

    /// The distinct court codes.
    pub fn courts(&self) -> Vec<String> {
        let mut c = self.courts.clone();
        c.sort();
        c
    }

    /// Computes `measures` grouped by `group_by` over `period`, keeping only cases that pass `filters`.
    pub fn aggregate(
        &self,
        measures: &[&Measure],
        group_by: &[Dimension],
        period: Period,
        filters: &[Filter],
    ) -> Result<Vec<GroupOut>, EngineError> {
        let pass = self.filter_masks(filters)?;
        let grain = time_grain(group_by);
        let (pa, pb) = (period.from().index(), period.to().index());
        let bucket_of = |m: i32| -> u32 {
            match grain {
                TimeGrain::Whole => 0,
                TimeGrain::Year => (m.div_euclid(12) - pa.div_euclid(12)) as u32,
                TimeGrain::Quarter => (m.div_euclid(3) - pa.div_euclid(3)) as u32,
                TimeGrain::Month => (m - pa) as u32,
            }
        };
        let record_dims: Vec<Dimension> = group_by.iter().copied().filter(|d| !d.is_time()).collect();
        let mut acc: HashMap<(Vec<u32>, u32), Vec<Partial>> = HashMap::new();
        let n = measures.len();
        let mut key = Vec::with_capacity(record_dims.len());
        for i in 0..self.len() {
            if !pass.accepts(self, i) {
                continue;
            }
            key.clear();
            key.extend(record_dims.iter().map(|d| self.code(*d, i)));
            for (mi, m) in measures.iter().enumerate() {
                if m.condition == Condition::ClosedOnTime
                    && !(self.closed[i] != OPEN && self.closed[i] <= self.deadline[i])
                {
                    continue;
                }
                let amount = match m.accumulate {
                    Accumulate::Count => 1,
                    Accumulate::TrialDays => {
                        if self.closed[i] == OPEN {
                            continue;
                        }
                        i64::from(self.closed[i] - self.filed[i])
                    }
                };
                let (lo, hi) = match m.anchor {
                    Anchor::Filed => (self.filed_month[i], self.filed_month[i]),
                    Anchor::Closed => (self.closed_month[i], self.closed_month[i]),
                    Anchor::Active => (self.filed_month[i].max(pa), self.closed_month[i].min(pb)),
                };
                if lo > hi || hi < pa || lo > pb || lo == OPEN {
                    continue;
                }
                for b in bucket_of(lo)..=bucket_of(hi) {
                    let slot = acc.entry((key.clone(), b)).or_insert_with(|| vec![Partial::default(); n]);
                    let p = &mut slot[mi];
                    p.value += amount;
                    p.contributors += 1;
                    p.max_single = p.max_single.max(amount);
                }
            }
        }
        let mut out: Vec<GroupOut> = acc
            .into_iter()
            .map(|((codes, bucket), partials)| {
                let mut codes = codes.into_iter();
                let labels = group_by
                    .iter()
                    .map(|d| {
                        if d.is_time() {
                            time_label(*d, grain, pa, bucket)
                        } else {
                            self.label(*d, codes.next().unwrap_or(0))
                        }
                    })
                    .collect();
                GroupOut { key: labels, partials }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn code(&self, d: Dimension, i: usize) -> u32 {
        match d {
            Dimension::Region => self.region[i],
            Dimension::Court => u32::from(self.court[i]),
            Dimension::TypeCode | Dimension::Division | Dimension::Instance => u32::from(self.type_code[i]),
            Dimension::Cause => self.cause[i],
            Dimension::Year | Dimension::Quarter | Dimension::Month => 0,
        }
    }

    fn label(&self, d: Dimension, code: u32) -> String {
        let type_code = TYPE_CODES.get(code as usize).copied().unwrap_or("");
        match d {
            Dimension::Region => format!("{code:06}"),
            Dimension::Court => self.courts.get(code as usize).cloned().unwrap_or_default(),
            Dimension::TypeCode => type_code.to_string(),
            Dimension::Division => schema::division_of(type_code).unwrap_or("").to_string(),
            Dimension::Instance => schema::instance_of(type_code).unwrap_or("").to_string(),
            Dimension::Cause => self.causes.get(code as usize).cloned().unwrap_or_default(),
            Dimension::Year | Dimension::Quarter | Dimension::Month => String::new(),
        }
    }

    fn filter_masks(&self, filters: &[Filter]) -> Result<Masks, EngineError> {
        let mut m = Masks::default();
        for f in filters {
            let has = |label: &str| f.values.iter().any(|v| v == label);
            match f.dimension {
                Dimension::Region => {
                    m.region = Some(f.values.iter().filter_map(|v| v.parse::<u32>().ok()).collect());
                }
                Dimension::Court => m.court = Some(self.courts.iter().map(|c| has(c)).collect()),
                Dimension::Cause => m.cause = Some(self.causes.iter().map(|c| has(c)).collect()),
                Dimension::TypeCode | Dimension::Division | Dimension::Instance => {
                    let allowed: Vec<bool> = TYPE_CODES
                        .iter()
                        .map(|t| match f.dimension {
                            Dimension::TypeCode => has(t),
                            Dimension::Division => has(schema::division_of(t).unwrap_or("")),
                            _ => has(schema::instance_of(t).unwrap_or("")),
                        })
                        .collect();
                    m.types = Some(match m.types.take() {
                        Some(prev) => prev.iter().zip(&allowed).map(|(a, b)| *a && *b).collect(),
                        None => allowed,
                    });
                }
                other => return Err(EngineError::Dimension(other.to_string())),
            }
        }
        Ok(m)
    }
}

#[derive(Default)]
struct Masks {
    region: Option<Vec<u32>>,
    court: Option<Vec<bool>>,
    cause: Option<Vec<bool>>,
    types: Option<Vec<bool>>,
}

impl Masks {
    fn accepts(&self, t: &CaseTable, i: usize) -> bool {
        self.region.as_ref().is_none_or(|r| r.contains(&t.region[i]))
            && self.court.as_ref().is_none_or(|c| c[t.court[i] as usize])
            && self.cause.as_ref().is_none_or(|c| c[t.cause[i] as usize])
            && self.types.as_ref().is_none_or(|c| c.get(t.type_code[i] as usize).copied().unwrap_or(false))
    }
}

/// The label of a time dimension for sub-period `bucket` of a period starting at month index `pa`.
fn time_label(d: Dimension, grain: TimeGrain, pa: i32, bucket: u32) -> String {
    let b = bucket as i32;
    // The first month of the bucket; year and quarter labels follow from it.
    let first = match grain {
        TimeGrain::Whole => pa,
        TimeGrain::Year => (pa.div_euclid(12) + b) * 12,
        TimeGrain::Quarter => (pa.div_euclid(3) + b) * 3,
        TimeGrain::Month => pa + b,
    };
    let m = Month::from_index(first);
    match d {
        Dimension::Year => m.year().to_string(),
        Dimension::Quarter => format!("{}-Q{}", m.year(), m.quarter()),
        _ => m.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shuzhu_policy::indicator::measure;
    use shuzhu_policy::period::parse_day;

    fn table(rows: &[(&str, &str, &str, Option<&str>, &str)]) -> CaseTable {
        // (court, region, filed, closed, deadline)
        let mut t = CaseTable { courts: vec![], causes: vec!["c".into()], ..Default::default() };
        for (court, region, filed, closed, deadline) in rows {
            let ci = t.courts.iter().position(|c| c == court).unwrap_or_else(|| {
                t.courts.push(court.to_string());
                t.courts.len() - 1
            });
            let f = parse_day(filed).unwrap();
            let c = closed.map_or(OPEN, |c| parse_day(c).unwrap());
            t.court.push(ci as u16);
            t.region.push(region.parse().unwrap());
            t.type_code.push(0);
            t.cause.push(0);
            t.filed.push(f);
            t.closed.push(c);
            t.deadline.push(parse_day(deadline).unwrap());
            t.filed_month.push(month_of_day(f).index());
            t.closed_month.push(if c == OPEN { OPEN } else { month_of_day(c).index() });
        }
        t
    }

    #[test]
    fn active_counts_pending_at_start_plus_filed_in_each_month() {
        let t = table(&[
            ("闽0203", "350203", "2022-12-20", Some("2023-02-10"), "2023-03-01"),
            ("闽0203", "350203", "2023-01-15", None, "2023-04-01"),
            ("闽0203", "350203", "2023-03-01", Some("2023-03-02"), "2023-03-01"),
            ("闽0203", "350203", "2022-01-01", Some("2022-12-31"), "2022-12-31"),
        ]);
        let p = Period::new(Month::parse("2023-01").unwrap(), Month::parse("2023-03").unwrap()).unwrap();
        let ms = [
            measure("cases.active").unwrap(),
            measure("cases.closed").unwrap(),
            measure("cases.closed_on_time").unwrap(),
        ];
        let out = t.aggregate(&ms, &[Dimension::Month], p, &[]).unwrap();
        let got: Vec<(String, i64, i64, i64)> = out
            .iter()
            .map(|g| (g.key[0].clone(), g.partials[0].value, g.partials[1].value, g.partials[2].value))
            .collect();
        assert_eq!(got, vec![("2023-01".into(), 2, 0, 0), ("2023-02".into(), 2, 1, 1), ("2023-03".into(), 2, 1, 0),]);
        let whole = t.aggregate(&ms, &[], p, &[]).unwrap();
        assert_eq!(whole[0].partials[0].value, 3);
        assert_eq!(whole[0].partials[1].value, 2);
    }

    #[test]
    fn filters_and_trial_days() {
        let t = table(&[
            ("闽0203", "350203", "2023-01-01", Some("2023-01-11"), "2023-06-01"),
            ("闽0213", "350213", "2023-01-01", Some("2023-01-21"), "2023-06-01"),
        ]);
        let p = Period::new(Month::parse("2023-01").unwrap(), Month::parse("2023-12").unwrap()).unwrap();
        let ms = [measure("cases.trial_days").unwrap()];
        let f = [Filter { dimension: Dimension::Region, values: vec!["350213".into()] }];
        let out = t.aggregate(&ms, &[Dimension::Court, Dimension::Year], p, &f).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, vec!["闽0213".to_string(), "2023".to_string()]);
        assert_eq!(out[0].partials[0], Partial { value: 20, contributors: 1, max_single: 20 });
    }
}
