//! The aggregation tables of the two small datasets: `mediations` (justice-bureau nodes) and
//! `population` (statistics-bureau nodes). Each is loaded once from the durable store into a vector of
//! narrow rows and aggregated with one exact pass per query: these datasets hold thousands of rows,
//! not millions, so plain loops answer in microseconds and stay obviously equal to their definitions.
//!
//! Mediations are placed in a sub-period by `accepted_on` or `closed_on`, may be required to have a
//! `result` among given labels and a judicial confirmation case number present or absent, and are
//! counted; they group by region and dispute type. Population figures are yearly: a record falls in a
//! sub-period of its own year, so a query must either keep its period within one year or group by year
//! (a sub-period spanning several years has no one population, and is refused rather than summed).

use std::collections::BTreeMap;

use shuzhu_policy::dimension::{Dimension, TimeGrain, time_grain};
use shuzhu_policy::disclosure::Partial;
use shuzhu_policy::indicator::{Accumulate, Anchor, Condition, Measure, POPULATION_FIELDS};
use shuzhu_policy::period::{Month, Period, days_from_civil, format_day, month_of_day};
use shuzhu_policy::schema::{DISPUTE_TYPES, MEDIATION_RESULTS, MEDIATIONS, POPULATION};

use crate::engine::{Filter, GroupOut, time_label};
use crate::record::{Record, Value};
use crate::store::{Store, StoreError};

/// Why a small table cannot load or answer.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The store failed while loading.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record could not be decoded.
    #[error("a stored {0} record is unreadable")]
    Corrupt(&'static str),
    /// A dimension or filter the dataset does not have.
    #[error("dimension {0} is not available for dataset {1}")]
    Dimension(String, &'static str),
    /// A measure the table does not compute.
    #[error("measure {0} is not over dataset {1}")]
    Measure(&'static str, &'static str),
    /// Yearly figures asked for a sub-period that is not within one year.
    #[error(
        "population figures are yearly: keep the period within one calendar year or group by year (a sub-period spanning several years has no one population)"
    )]
    YearlyFigures,
}

fn index_of(fields: &[shuzhu_policy::schema::Field], name: &str) -> usize {
    fields.iter().position(|f| f.name == name).unwrap_or(usize::MAX)
}

/// Decodes every stored record of `dataset`.
fn load_records(store: &dyn Store, dataset: &'static str, mut each: impl FnMut(&[Value])) -> Result<(), TableError> {
    let mut bad = false;
    store.scan(dataset, &mut |_, v| match postcard::from_bytes::<Record>(v) {
        Ok(rec) => each(&rec.values),
        Err(_) => bad = true,
    })?;
    if bad { Err(TableError::Corrupt(dataset)) } else { Ok(()) }
}

/// The sub-period (bucket) month `m` of `period` falls in under `grain`, counted from the period's
/// first month as the case engine does.
fn bucket(grain: TimeGrain, period: Period, m: Month) -> u32 {
    let (pa, x) = (period.from().index(), m.index());
    (match grain {
        TimeGrain::Whole => 0,
        TimeGrain::Year => x.div_euclid(12) - pa.div_euclid(12),
        TimeGrain::Quarter => x.div_euclid(3) - pa.div_euclid(3),
        TimeGrain::Month => x - pa,
    }) as u32
}

/// Accumulates partials by group key.
#[derive(Default)]
struct Groups {
    cells: BTreeMap<Vec<String>, Vec<Partial>>,
}

impl Groups {
    fn add(&mut self, key: Vec<String>, measures: usize, i: usize, value: i64) {
        let slot = self.cells.entry(key).or_insert_with(|| vec![Partial::default(); measures]);
        slot[i].merge(Partial { value, contributors: 1, max_single: value });
    }

    fn finish(self) -> Vec<GroupOut> {
        self.cells.into_iter().map(|(key, partials)| GroupOut { key, partials }).collect()
    }
}

/// One mediation, as the table keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediationRow {
    /// District code.
    pub region: u32,
    /// Index into [`DISPUTE_TYPES`].
    pub dispute_type: u8,
    /// Day number of `accepted_on`.
    pub accepted: i32,
    /// Day number of `closed_on`, if closed.
    pub closed: Option<i32>,
    /// Index into [`MEDIATION_RESULTS`], if any.
    pub result: Option<u8>,
    /// Whether a judicial confirmation case number is present.
    pub confirmed: bool,
}

/// The `mediations` dataset of a justice-bureau node.
#[derive(Default)]
pub struct MediationTable {
    rows: Vec<MediationRow>,
    /// Earliest acceptance day and latest day (acceptance or closure) of the rows, worked out once.
    span: Option<(i32, i32)>,
}

impl MediationTable {
    /// Loads every stored mediation.
    pub fn load(store: &dyn Store) -> Result<Self, TableError> {
        let f = |n| index_of(MEDIATIONS.fields, n);
        let (region, dispute, accepted, closed, result, confirm) = (
            f("region_code"),
            f("dispute_type"),
            f("accepted_on"),
            f("closed_on"),
            f("result"),
            f("judicial_confirm_case_no"),
        );
        let mut rows = Vec::new();
        let mut bad = false;
        load_records(store, "mediations", |v| {
            let day = |i: usize| match v.get(i) {
                Some(Value::Day(d)) => Some(*d),
                _ => None,
            };
            let en = |i: usize| match v.get(i) {
                Some(Value::Enum(e)) => Some(*e),
                _ => None,
            };
            let region = match v.get(region) {
                Some(Value::Int(n)) => u32::try_from(*n).ok(),
                _ => None,
            };
            match (region, en(dispute), day(accepted)) {
                (Some(region), Some(dispute_type), Some(accepted)) => rows.push(MediationRow {
                    region,
                    dispute_type,
                    accepted,
                    closed: day(closed),
                    result: en(result),
                    confirmed: !matches!(v.get(confirm), None | Some(Value::Absent)),
                }),
                _ => bad = true,
            }
        })?;
        if bad {
            return Err(TableError::Corrupt("mediations"));
        }
        Ok(MediationTable::from_rows(rows))
    }

    /// A table of the given rows (tests, tools).
    pub fn from_rows(rows: Vec<MediationRow>) -> Self {
        let from = rows.iter().map(|r| r.accepted).min();
        let until = rows.iter().map(|r| r.closed.unwrap_or(r.accepted).max(r.accepted)).max();
        MediationTable { span: from.zip(until), rows }
    }

    /// Number of mediations.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The distinct district codes, as six digits.
    pub fn regions(&self) -> Vec<String> {
        distinct_regions(self.rows.iter().map(|r| r.region))
    }

    /// Latest date in the data, `YYYY-MM-DD`.
    pub fn data_until(&self) -> Option<String> {
        self.span.map(|(_, until)| format_day(until))
    }

    /// Earliest acceptance date in the data, `YYYY-MM-DD`: months before it are not covered.
    pub fn data_from(&self) -> Option<String> {
        self.span.map(|(from, _)| format_day(from))
    }

    /// Computes `measures` grouped by `group_by` over `period`, keeping mediations that pass `filters`.
    pub fn aggregate(
        &self,
        measures: &[&Measure],
        group_by: &[Dimension],
        period: Period,
        filters: &[Filter],
    ) -> Result<Vec<GroupOut>, TableError> {
        const DS: &str = "mediations";
        if let Some(m) = measures.iter().find(|m| m.dataset != DS) {
            return Err(TableError::Measure(m.id, DS));
        }
        let allowed = |d: &Dimension| matches!(d, Dimension::Region | Dimension::DisputeType) || d.is_time();
        if let Some(d) = group_by.iter().chain(filters.iter().map(|f| &f.dimension)).find(|d| !allowed(d)) {
            return Err(TableError::Dimension(d.to_string(), DS));
        }
        let grain = time_grain(group_by);
        let pa = period.from().index();
        let label = |r: &MediationRow, d: Dimension| match d {
            Dimension::Region => format!("{:06}", r.region),
            _ => DISPUTE_TYPES.get(usize::from(r.dispute_type)).copied().unwrap_or("").to_string(),
        };
        let mut groups = Groups::default();
        for r in &self.rows {
            if !filters.iter().all(|f| f.values.contains(&label(r, f.dimension))) {
                continue;
            }
            for (i, m) in measures.iter().enumerate() {
                let day = match m.anchor {
                    Anchor::Accepted => Some(r.accepted),
                    Anchor::Closed => r.closed,
                    _ => return Err(TableError::Measure(m.id, DS)),
                };
                let Some(month) = day.map(month_of_day).filter(|mo| period.contains(*mo)) else { continue };
                let passes = match m.condition {
                    Condition::Any => true,
                    Condition::Mediations { results, confirmed } => {
                        (results.is_empty()
                            || r.result
                                .and_then(|x| MEDIATION_RESULTS.get(usize::from(x)))
                                .is_some_and(|l| results.contains(l)))
                            && confirmed.is_none_or(|c| c == r.confirmed)
                    }
                    _ => return Err(TableError::Measure(m.id, DS)),
                };
                if !passes {
                    continue;
                }
                if m.accumulate != Accumulate::Count {
                    return Err(TableError::Measure(m.id, DS));
                }
                let b = bucket(grain, period, month);
                let key = group_by
                    .iter()
                    .map(|d| if d.is_time() { time_label(*d, grain, pa, b) } else { label(r, *d) })
                    .collect();
                groups.add(key, measures.len(), i, 1);
            }
        }
        Ok(groups.finish())
    }
}

/// One region's figures for one year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PopulationRow {
    /// District code.
    pub region: u32,
    /// Calendar year.
    pub year: i32,
    /// Values of [`POPULATION_FIELDS`], in that order.
    pub values: [i64; 3],
}

/// The `population` dataset of a statistics-bureau node.
#[derive(Default)]
pub struct PopulationTable {
    rows: Vec<PopulationRow>,
}

impl PopulationTable {
    /// Loads every stored figure.
    pub fn load(store: &dyn Store) -> Result<Self, TableError> {
        let f = |n| index_of(POPULATION.fields, n);
        let (region, year) = (f("region_code"), f("year"));
        let cols: Vec<usize> = POPULATION_FIELDS.iter().map(|n| f(n)).collect();
        let mut rows = Vec::new();
        let mut bad = false;
        load_records(store, "population", |v| {
            let int = |i: usize| match v.get(i) {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            };
            let region = match v.get(region) {
                Some(Value::Int(n)) => u32::try_from(*n).ok(),
                _ => None,
            };
            let values = [int(cols[0]), int(cols[1]), int(cols[2])];
            match (region, int(year).and_then(|y| i32::try_from(y).ok()), values) {
                (Some(region), Some(year), [Some(a), Some(b), Some(c)]) => {
                    rows.push(PopulationRow { region, year, values: [a, b, c] })
                }
                _ => bad = true,
            }
        })?;
        if bad {
            return Err(TableError::Corrupt("population"));
        }
        Ok(PopulationTable { rows })
    }

    /// A table of the given rows (tests, tools).
    pub fn from_rows(rows: Vec<PopulationRow>) -> Self {
        PopulationTable { rows }
    }

    /// Number of figures (regions × years).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The distinct district codes, as six digits.
    pub fn regions(&self) -> Vec<String> {
        distinct_regions(self.rows.iter().map(|r| r.region))
    }

    /// The last day of the latest year with figures, `YYYY-MM-DD`.
    pub fn data_until(&self) -> Option<String> {
        self.rows.iter().map(|r| r.year).max().map(|y| format_day(days_from_civil(y, 12, 31)))
    }

    /// The first day of the earliest year with figures, `YYYY-MM-DD`.
    pub fn data_from(&self) -> Option<String> {
        self.rows.iter().map(|r| r.year).min().map(|y| format_day(days_from_civil(y, 1, 1)))
    }

    /// Computes `measures` grouped by `group_by` over `period`, keeping figures that pass `filters`.
    pub fn aggregate(
        &self,
        measures: &[&Measure],
        group_by: &[Dimension],
        period: Period,
        filters: &[Filter],
    ) -> Result<Vec<GroupOut>, TableError> {
        const DS: &str = "population";
        if let Some(m) = measures.iter().find(|m| m.dataset != DS || m.anchor != Anchor::Year) {
            return Err(TableError::Measure(m.id, DS));
        }
        let allowed = |d: &Dimension| matches!(d, Dimension::Region | Dimension::Year);
        if let Some(d) = group_by.iter().chain(filters.iter().map(|f| &f.dimension)).find(|d| !allowed(d)) {
            return Err(TableError::Dimension(d.to_string(), DS));
        }
        let grain = time_grain(group_by);
        if grain == TimeGrain::Whole && period.from().year() != period.to().year() {
            return Err(TableError::YearlyFigures);
        }
        let pa = period.from().index();
        let region = |r: &PopulationRow| format!("{:06}", r.region);
        let mut groups = Groups::default();
        for r in &self.rows {
            if !filters.iter().all(|f| f.values.contains(&region(r))) {
                continue;
            }
            // The year's first month inside the period places the figure in its sub-period.
            let Some(month) = period.iter().find(|m| m.year() == r.year) else { continue };
            let b = bucket(grain, period, month);
            let key: Vec<String> =
                group_by.iter().map(|d| if d.is_time() { time_label(*d, grain, pa, b) } else { region(r) }).collect();
            for (i, m) in measures.iter().enumerate() {
                let Accumulate::Total { fields } = m.accumulate else { return Err(TableError::Measure(m.id, DS)) };
                let mut total = 0i64;
                for f in fields {
                    let Some(c) = POPULATION_FIELDS.iter().position(|x| x == f) else {
                        return Err(TableError::Measure(m.id, DS));
                    };
                    total = total.saturating_add(r.values[c]);
                }
                groups.add(key.clone(), measures.len(), i, total);
            }
        }
        Ok(groups.finish())
    }
}

fn distinct_regions(codes: impl Iterator<Item = u32>) -> Vec<String> {
    let mut r: Vec<u32> = codes.collect();
    r.sort_unstable();
    r.dedup();
    r.iter().map(|r| format!("{r:06}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use shuzhu_policy::indicator::measure;

    use crate::store::SledStore;

    fn m(id: &str) -> &'static Measure {
        measure(id).unwrap()
    }

    /// The label of month `x` under time dimension `d` (straight from the calendar, not from buckets).
    fn calendar_label(d: Dimension, x: Month) -> String {
        match d {
            Dimension::Year => x.year().to_string(),
            Dimension::Quarter => format!("{}-Q{}", x.year(), x.quarter()),
            _ => x.to_string(),
        }
    }

    /// The brute-force mediations answer: each row, measure and month of the period, from the
    /// definitions.
    fn naive_mediations(
        rows: &[MediationRow],
        measures: &[&Measure],
        group_by: &[Dimension],
        period: Period,
        filters: &[Filter],
    ) -> Vec<GroupOut> {
        let mut out: BTreeMap<Vec<String>, Vec<Partial>> = BTreeMap::new();
        for r in rows {
            let region = format!("{:06}", r.region);
            let dispute = DISPUTE_TYPES[usize::from(r.dispute_type)].to_string();
            let pass = filters.iter().all(|f| match f.dimension {
                Dimension::Region => f.values.contains(&region),
                _ => f.values.contains(&dispute),
            });
            if !pass {
                continue;
            }
            for (i, me) in measures.iter().enumerate() {
                for x in period.iter() {
                    let day = if me.anchor == Anchor::Accepted { Some(r.accepted) } else { r.closed };
                    if day.map(month_of_day) != Some(x) {
                        continue;
                    }
                    let result = r.result.map(|x| MEDIATION_RESULTS[usize::from(x)]);
                    let ok = match me.condition {
                        Condition::Mediations { results, confirmed } => {
                            (results.is_empty() || result.is_some_and(|l| results.contains(&l)))
                                && confirmed.is_none_or(|c| c == r.confirmed)
                        }
                        _ => true,
                    };
                    if !ok {
                        continue;
                    }
                    let key = group_by
                        .iter()
                        .map(|d| match d {
                            Dimension::Region => region.clone(),
                            Dimension::DisputeType => dispute.clone(),
                            t => calendar_label(*t, x),
                        })
                        .collect();
                    let slot = out.entry(key).or_insert_with(|| vec![Partial::default(); measures.len()]);
                    slot[i].value += 1;
                    slot[i].contributors += 1;
                    slot[i].max_single = 1;
                }
            }
        }
        out.into_iter().map(|(key, partials)| GroupOut { key, partials }).collect()
    }

    fn arb_mediation() -> impl Strategy<Value = MediationRow> {
        let base = days_from_civil(2022, 11, 1);
        (
            prop::sample::select(vec![350203u32, 350205, 350206]),
            0u8..8,
            0i32..500,
            prop::option::of(0i32..200),
            prop::option::of(0u8..3),
            any::<bool>(),
        )
            .prop_map(move |(region, dispute_type, a, c, result, confirmed)| MediationRow {
                region,
                dispute_type,
                accepted: base + a,
                closed: c.map(|c| base + a + c),
                result,
                confirmed,
            })
    }

    fn arb_period() -> impl Strategy<Value = Period> {
        (0i32..20, 0i32..18).prop_map(|(start, len)| {
            let from = Month::new(2022, 11).unwrap().index() + start;
            Period::new(Month::from_index(from), Month::from_index(from + len)).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn mediations_equal_brute_force(
            rows in prop::collection::vec(arb_mediation(), 0..150),
            period in arb_period(),
            dims in prop::sample::subsequence(
                vec![Dimension::Region, Dimension::DisputeType, Dimension::Year, Dimension::Quarter, Dimension::Month],
                0..=3,
            ),
            region_filter in prop::option::of(prop::sample::subsequence(vec!["350203", "350206", "350299"], 1..=3)),
            dispute_filter in prop::option::of(prop::sample::subsequence(vec!["邻里", "合同", "劳动"], 1..=3)),
        ) {
            // Beside the catalogue's: accepted mediations, and failed or ended ones without a confirmation.
            let accepted = Measure {
                id: "mediations.accepted_test",
                dataset: "mediations",
                anchor: Anchor::Accepted,
                condition: Condition::Any,
                accumulate: Accumulate::Count,
                reads: &["accepted_on"],
            };
            let unconfirmed = Measure {
                id: "mediations.closed_unsuccessful_unconfirmed_test",
                dataset: "mediations",
                anchor: Anchor::Closed,
                condition: Condition::Mediations { results: &["失败", "终止"], confirmed: Some(false) },
                accumulate: Accumulate::Count,
                reads: &["closed_on", "judicial_confirm_case_no", "result"],
            };
            let measures = [
                m("mediations.closed"),
                m("mediations.closed_success"),
                m("mediations.closed_success_confirmed"),
                &accepted,
                &unconfirmed,
            ];
            let mut filters = Vec::new();
            if let Some(v) = region_filter {
                filters.push(Filter { dimension: Dimension::Region, values: v.iter().map(|s| s.to_string()).collect() });
            }
            if let Some(v) = dispute_filter {
                filters.push(Filter { dimension: Dimension::DisputeType, values: v.iter().map(|s| s.to_string()).collect() });
            }
            let t = MediationTable::from_rows(rows.clone());
            let got = t.aggregate(&measures, &dims, period, &filters).unwrap();
            prop_assert_eq!(got, naive_mediations(&rows, &measures, &dims, period, &filters));
        }

        #[test]
        fn population_equals_brute_force(
            figures in prop::collection::btree_map(
                (prop::sample::select(vec![350203u32, 350205, 350206]), 2019i32..2025),
                (0i64..2_000_000, 0i64..500_000, 0i64..2_000_000),
                0..18,
            ),
            period in arb_period(),
            by_region in any::<bool>(),
            region_filter in prop::option::of(prop::sample::subsequence(vec!["350203", "350206"], 1..=2)),
        ) {
            let rows: Vec<PopulationRow> = figures
                .iter()
                .map(|(&(region, year), &(a, b, c))| PopulationRow { region, year, values: [a, b, c] })
                .collect();
            let t = PopulationTable::from_rows(rows.clone());
            let pm = m("population.resident_and_floating");
            let filters: Vec<Filter> = region_filter
                .iter()
                .map(|v| Filter { dimension: Dimension::Region, values: v.iter().map(|s| s.to_string()).collect() })
                .collect();
            let mut dims = vec![Dimension::Year];
            if by_region {
                dims.insert(0, Dimension::Region);
            }
            let got = t.aggregate(&[pm], &dims, period, &filters).unwrap();
            // Brute force: each year the period touches, each figure of that year.
            let mut want: BTreeMap<Vec<String>, Partial> = BTreeMap::new();
            let years: std::collections::BTreeSet<i32> = period.iter().map(|x| x.year()).collect();
            for r in &rows {
                let region = format!("{:06}", r.region);
                if !years.contains(&r.year) || !filters.iter().all(|f| f.values.contains(&region)) {
                    continue;
                }
                let key = if by_region { vec![region, r.year.to_string()] } else { vec![r.year.to_string()] };
                want.entry(key).or_default().merge(Partial {
                    value: r.values[0] + r.values[1],
                    contributors: 1,
                    max_single: r.values[0] + r.values[1],
                });
            }
            let want: Vec<GroupOut> = want.into_iter().map(|(key, p)| GroupOut { key, partials: vec![p] }).collect();
            prop_assert_eq!(got, want);
            // Ungrouped by year: one year's figures, or a refusal when the period spans several.
            let whole = t.aggregate(&[pm], &[], period, &filters);
            if period.from().year() == period.to().year() {
                let total: i64 = rows
                    .iter()
                    .filter(|r| r.year == period.from().year())
                    .filter(|r| filters.iter().all(|f| f.values.contains(&format!("{:06}", r.region))))
                    .map(|r| r.values[0] + r.values[1])
                    .sum();
                let got: i64 = whole.unwrap().iter().map(|g| g.partials[0].value).sum();
                prop_assert_eq!(got, total);
            } else {
                prop_assert!(matches!(whole, Err(TableError::YearlyFigures)));
            }
        }
    }

    #[test]
    fn other_dimensions_and_measures_are_refused() {
        let t = MediationTable::default();
        let p = Period::from_wire(202401, 202412).unwrap();
        let err = t.aggregate(&[m("mediations.closed")], &[Dimension::Cause], p, &[]).unwrap_err();
        assert_eq!(err.to_string(), "dimension cause is not available for dataset mediations");
        assert!(matches!(t.aggregate(&[m("cases.filed")], &[], p, &[]), Err(TableError::Measure(..))));
        let pt = PopulationTable::default();
        let q = Period::from_wire(202401, 202403).unwrap();
        let err = pt.aggregate(&[m("population.resident_and_floating")], &[Dimension::Quarter], q, &[]);
        assert!(matches!(err, Err(TableError::Dimension(..))));
    }

    #[test]
    fn both_tables_load_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let (mf, pf) = (MEDIATIONS.fields, POPULATION.fields);
        let mut batch = Vec::new();
        for i in 0..6i64 {
            let mut values = vec![Value::Absent; mf.len()];
            values[index_of(mf, "region_code")] = Value::Int(350203 + i % 2);
            values[index_of(mf, "dispute_type")] = Value::Enum(1);
            values[index_of(mf, "accepted_on")] = Value::Day(19_700 + i as i32);
            values[index_of(mf, "closed_on")] = Value::Day(19_720 + i as i32);
            values[index_of(mf, "result")] = Value::Enum(0);
            if i < 2 {
                values[index_of(mf, "judicial_confirm_case_no")] = Value::Text("pseudonym".into());
            }
            batch.push((format!("M{i}").into_bytes(), postcard::to_allocvec(&Record { values }).unwrap()));
        }
        store.upsert("mediations", &batch).unwrap();
        let mut values = vec![Value::Absent; pf.len()];
        values[index_of(pf, "region_code")] = Value::Int(350203);
        values[index_of(pf, "year")] = Value::Int(2023);
        values[index_of(pf, "resident_pop")] = Value::Int(500_000);
        values[index_of(pf, "registered_floating_pop")] = Value::Int(120_000);
        values[index_of(pf, "hukou_pop")] = Value::Int(300_000);
        store
            .upsert("population", &[(b"350203|2023".to_vec(), postcard::to_allocvec(&Record { values }).unwrap())])
            .unwrap();
        let mt = MediationTable::load(&store).unwrap();
        assert_eq!((mt.len(), mt.regions()), (6, vec!["350203".to_string(), "350204".to_string()]));
        assert_eq!(mt.data_until().unwrap(), format_day(19_725));
        assert_eq!(mt.data_from().unwrap(), format_day(19_700));
        let rows = mt.aggregate(
            &[m("mediations.closed_success_confirmed")],
            &[],
            Period::from_wire(202301, 202412).unwrap(),
            &[],
        );
        assert_eq!(rows.unwrap()[0].partials[0].value, 2);
        let pt = PopulationTable::load(&store).unwrap();
        assert_eq!(pt.data_until().unwrap(), "2023-12-31");
        assert_eq!(pt.data_from().unwrap(), "2023-01-01");
        let got = pt.aggregate(
            &[m("population.resident_and_floating")],
            &[],
            Period::from_wire(202303, 202305).unwrap(),
            &[],
        );
        assert_eq!(got.unwrap()[0].partials[0], Partial { value: 620_000, contributors: 1, max_single: 620_000 });
        store.upsert("population", &[(b"bad".to_vec(), vec![0xff, 0xff])]).unwrap();
        assert!(matches!(PopulationTable::load(&store), Err(TableError::Corrupt("population"))));
    }
}
