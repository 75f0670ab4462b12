//! The indicators and the partial measures behind them, as runtime types built from the catalogue.
//!
//! Indicators are data: `policy/catalogue.toml` lists each `[[measure]]` (dataset, anchor date, conditions,
//! accumulation) and each `[[indicator]]` (Chinese name, kind, measures, dimensions, formula). This module
//! turns those entries into the compact runtime types the node's engine and the gateway's arithmetic use,
//! and keeps the process-wide registry of them ([`indicator`], [`measure`], [`indicators`]), filled from the
//! embedded catalogue and extended by [`install`]. A node computes *measures* (counts and sums with
//! contributor counts) over its own records; the gateway merges them by group and turns them into indicator
//! values exactly: integers until the final division.

use std::sync::{OnceLock, RwLock};

use crate::catalogue::{Catalogue, IndicatorEntry, MeasureEntry};
use crate::dimension::Dimension;
use crate::schema::{CASES, CLOSURE_METHODS, Grade, MEDIATION_RESULTS, TYPE_CODES};

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
    /// The case was open at the end of the sub-period (filed on or before its last day, not closed on or
    /// before it) and its last day is more than `older_than_days` days after `filed_on` (−1: any age).
    OpenAtEnd {
        /// Minimum age, exclusive, in days at the end of the sub-period.
        older_than_days: i32,
    },
    /// `accepted_on` falls in the sub-period (mediations).
    Accepted,
    /// The record's `year` is the sub-period's year (yearly figures: population). A sub-period that is
    /// part of a year takes that year's figure; a sub-period spanning several years has none.
    Year,
}

impl Anchor {
    /// Whether the anchor counts a stock (cases open at some time or at the end) rather than a flow: the
    /// same record falls in several sub-periods, so counts of different sub-periods do not add up.
    pub fn is_stock(self) -> bool {
        matches!(self, Anchor::Active | Anchor::OpenAtEnd { .. })
    }
}

/// A further condition on the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Every anchored record.
    Any,
    /// `closed_on <= deadline_on` (closed within the statutory time limit, 审限内).
    ClosedOnTime,
    /// The case type is one of `type_codes`, unless `closure_methods` is empty the case was closed by one
    /// of `closure_methods` (labels of the schema's enumerations), and each boolean field of `flags` (one
    /// of [`FLAG_FIELDS`]) has the value given (an absent value is false).
    Cases {
        /// Accepted case types (empty: any).
        type_codes: &'static [&'static str],
        /// Accepted closure methods (empty: any, including none).
        closure_methods: &'static [&'static str],
        /// Required values of boolean fields.
        flags: &'static [(&'static str, bool)],
    },
    /// A mediation whose `result` is one of `results` (empty: any, including none) and, unless
    /// `confirmed` is `None`, whose `judicial_confirm_case_no` is present (`Some(true)`) or absent.
    Mediations {
        /// Accepted results (labels of [`MEDIATION_RESULTS`]).
        results: &'static [&'static str],
        /// Required presence of a judicial confirmation case number.
        confirmed: Option<bool>,
    },
}

/// What is accumulated per record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accumulate {
    /// One per record.
    Count,
    /// `closed_on − filed_on` in days.
    TrialDays,
    /// The value of an integer field (money in fen), one of [`SUM_FIELDS`]; records without a value
    /// are not counted.
    Sum {
        /// The summed field.
        field: &'static str,
    },
    /// The sum of integer fields of a yearly figure (population: one of [`POPULATION_FIELDS`]), over
    /// every record anchored in the sub-period; contributors are the records (regions × years).
    Total {
        /// The added fields.
        fields: &'static [&'static str],
    },
}

/// The integer `population` fields a `sum:A+B` measure may add.
pub const POPULATION_FIELDS: &[&str] = &["resident_pop", "registered_floating_pop", "hukou_pop"];

/// The integer `cases` fields a measure may sum (money in fen; the engine keeps a column of each).
pub const SUM_FIELDS: &[&str] = &["enforce_requested", "enforce_collected"];

/// The boolean `cases` fields a condition may test (the engine keeps one bit of each, in this order).
pub const FLAG_FIELDS: &[&str] = &["appealed", "online_filed", "pre_suit_mediated"];

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
    /// Fields it reads (for grade checks), sorted, without repeats.
    pub reads: &'static [&'static str],
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
    /// (count in P − mean count in the same months of the `baseline_years` previous years) ÷ that mean,
    /// with a warning level (see [`crate::deviation`]).
    Deviation {
        /// The counted measure (a dated count, e.g. `cases.filed`).
        measure: MeasureId,
        /// How many previous years the baseline averages.
        baseline_years: u32,
        /// Warning thresholds on |deviation|.
        levels: crate::deviation::Levels,
    },
    /// numerator ÷ population × scale: a count of records per `scale` people, the population being a
    /// [`Accumulate::Total`] measure over another dataset (held by other nodes), joined by group key
    /// (region and year).
    PerPopulation {
        /// The counted measure.
        numerator: MeasureId,
        /// The population measure.
        population: MeasureId,
        /// People per rate unit (10 000 for 万人成讼率).
        scale: u32,
    },
}

impl IndicatorKind {
    /// `count`, `ratio`, `mean` or `deviation`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IndicatorKind::Count { .. } => "count",
            IndicatorKind::Ratio { .. } => "ratio",
            IndicatorKind::Mean { .. } => "mean",
            IndicatorKind::Deviation { .. } => "deviation",
            IndicatorKind::PerPopulation { .. } => "per_population",
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
    /// Dataset the indicator's counted records come from ([`Indicator::datasets`] lists every dataset
    /// its measures read).
    pub dataset: &'static str,
    /// How it is computed.
    pub kind: IndicatorKind,
    /// Dimensions it may be grouped or filtered by.
    pub dimensions: &'static [Dimension],
}

/// The measures and indicators in force.
#[derive(Default)]
struct Registry {
    measures: Vec<&'static Measure>,
    indicators: Vec<&'static Indicator>,
}

fn registry() -> &'static RwLock<Registry> {
    static REG: OnceLock<RwLock<Registry>> = OnceLock::new();
    REG.get_or_init(|| {
        let mut reg = Registry::default();
        // Invariant: the embedded catalogue builds; `the_embedded_catalogue_builds` tests it, so a panic
        // here can only come from a build whose tests failed.
        let (ms, is) = build(&Catalogue::embedded()).expect("embedded catalogue builds");
        merge(&mut reg, ms, is);
        RwLock::new(reg)
    })
}

fn merge(reg: &mut Registry, ms: Vec<Measure>, is: Vec<Indicator>) {
    for m in ms {
        let m: &'static Measure = Box::leak(Box::new(m));
        match reg.measures.iter_mut().find(|x| x.id == m.id) {
            Some(slot) => *slot = m,
            None => reg.measures.push(m),
        }
    }
    for i in is {
        let i: &'static Indicator = Box::leak(Box::new(i));
        match reg.indicators.iter_mut().find(|x| x.id == i.id) {
            Some(slot) => *slot = i,
            None => reg.indicators.push(i),
        }
    }
}

/// Adds (or replaces) every measure and indicator of `cat` in this process's registry, and makes `cat` the
/// catalogue policies load with ([`Catalogue::current`]). Meant for start-up: each call keeps its
/// definitions for the life of the process.
pub fn install(cat: Catalogue) -> Result<(), crate::catalogue::CatalogueError> {
    let problems = cat.problems();
    if !problems.is_empty() {
        return Err(crate::catalogue::CatalogueError::Invalid(problems));
    }
    let (ms, is) = build(&cat).map_err(crate::catalogue::CatalogueError::Invalid)?;
    {
        let mut reg = registry().write().unwrap_or_else(|e| e.into_inner());
        merge(&mut reg, ms, is);
    }
    Catalogue::set_current(cat);
    Ok(())
}

/// The measure called `id`.
pub fn measure(id: &str) -> Option<&'static Measure> {
    registry().read().unwrap_or_else(|e| e.into_inner()).measures.iter().copied().find(|m| m.id == id)
}

/// The indicator called `id`.
pub fn indicator(id: &str) -> Option<&'static Indicator> {
    registry().read().unwrap_or_else(|e| e.into_inner()).indicators.iter().copied().find(|i| i.id == id)
}

/// Every indicator in force, in catalogue order.
pub fn indicators() -> Vec<&'static Indicator> {
    registry().read().unwrap_or_else(|e| e.into_inner()).indicators.clone()
}

/// Every measure in force, in catalogue order.
pub fn measures() -> Vec<&'static Measure> {
    registry().read().unwrap_or_else(|e| e.into_inner()).measures.clone()
}

fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_strs(v: &[String]) -> &'static [&'static str] {
    Box::leak(v.iter().map(|s| leak_str(s)).collect::<Vec<_>>().into_boxed_slice())
}

/// Builds the runtime measures and indicators of a catalogue; every problem is listed.
pub fn build(cat: &Catalogue) -> Result<(Vec<Measure>, Vec<Indicator>), Vec<String>> {
    let mut problems = Vec::new();
    let mut ms = Vec::new();
    for e in &cat.measures {
        match build_measure(cat, e) {
            Ok(m) => ms.push(m),
            Err(p) => problems.push(format!("measure {}: {p}", e.id)),
        }
    }
    let mut is = Vec::new();
    for e in &cat.indicators {
        match build_indicator(e, &ms) {
            Ok(i) => is.push(i),
            Err(p) => problems.push(format!("indicator {}: {p}", e.id)),
        }
    }
    if problems.is_empty() { Ok((ms, is)) } else { Err(problems) }
}

/// Parsed shape of one condition, before it is matched to what the engine computes.
enum Clause<'a> {
    In(&'a str, &'a [String]),
    AtMost(&'a str, &'a str),
    Is(&'a str, bool),
    Present(&'a str, bool),
}

fn build_measure(cat: &Catalogue, e: &MeasureEntry) -> Result<Measure, String> {
    let Some(ds) = cat.dataset(&e.dataset) else { return Err(format!("unknown dataset {}", e.dataset)) };
    let known = |f: &str| ds.fields.iter().any(|x| x.name == f);
    let mut reads: Vec<String> = Vec::new();
    let anchor = match (e.dataset.as_str(), e.anchor.as_str()) {
        ("cases", "filed_on") => Anchor::Filed,
        ("cases" | "mediations", "closed_on") => Anchor::Closed,
        ("cases", "active") => Anchor::Active,
        ("cases", "open_at_end") => {
            Anchor::OpenAtEnd { older_than_days: e.filed_more_than_days_before.map_or(-1, i32::from) }
        }
        ("mediations", "accepted_on") => Anchor::Accepted,
        ("population", "year") => Anchor::Year,
        ("cases", other) => return Err(format!("anchor {other:?} is not filed_on, closed_on, active or open_at_end")),
        ("mediations", other) => return Err(format!("anchor {other:?} is not accepted_on or closed_on")),
        ("population", other) => return Err(format!("anchor {other:?} is not year")),
        (ds, _) => return Err(format!("dataset {ds} has no aggregation engine")),
    };
    if e.filed_more_than_days_before.is_some() && !matches!(anchor, Anchor::OpenAtEnd { .. }) {
        return Err("filed_more_than_days_before needs anchor open_at_end".into());
    }
    match anchor {
        Anchor::Active | Anchor::OpenAtEnd { .. } => reads.extend(["filed_on".into(), "closed_on".into()]),
        _ => reads.push(e.anchor.clone()),
    }
    let mut clauses = Vec::new();
    for c in &e.conditions {
        let clause = match (&c.any_of, &c.at_most, c.is, c.present) {
            (Some(v), None, None, None) => Clause::In(&c.field, v),
            (None, Some(other), None, None) => Clause::AtMost(&c.field, other),
            (None, None, Some(b), None) => Clause::Is(&c.field, b),
            (None, None, None, Some(b)) => Clause::Present(&c.field, b),
            _ => return Err(format!("condition on {} needs exactly one of any_of, at_most, is, present", c.field)),
        };
        for f in std::iter::once(c.field.as_str()).chain(c.at_most.as_deref()) {
            if !known(f) {
                return Err(format!("condition reads unknown field {}.{f}", e.dataset));
            }
            reads.push(f.into());
        }
        clauses.push(clause);
    }
    let condition = match e.dataset.as_str() {
        "mediations" => mediation_condition_of(&clauses)?,
        "population" if !clauses.is_empty() => return Err("population figures take no conditions".into()),
        _ => condition_of(&clauses)?,
    };
    let accumulate = match (e.dataset.as_str(), e.accumulate.as_str()) {
        ("population", total) => {
            let fields: Vec<String> =
                total.strip_prefix("sum:").map(|f| f.split('+').map(str::to_string).collect()).unwrap_or_default();
            if fields.is_empty() || !fields.iter().all(|f| POPULATION_FIELDS.contains(&f.as_str())) {
                return Err(format!(
                    "accumulation {total:?} is not sum:A+B+… with each field one of {}",
                    POPULATION_FIELDS.join(", ")
                ));
            }
            reads.extend(fields.iter().cloned());
            Accumulate::Total { fields: leak_strs(&fields) }
        }
        ("mediations", "count") => Accumulate::Count,
        ("mediations", other) => return Err(format!("accumulation {other:?} over mediations is not count")),
        (_, acc) => cases_accumulate(acc, anchor, &mut reads)?,
    };
    for f in &reads {
        if !known(f) {
            return Err(format!("reads unknown field {}.{f}", e.dataset));
        }
    }
    reads.sort();
    reads.dedup();
    Ok(Measure {
        id: leak_str(&e.id),
        dataset: leak_str(&e.dataset),
        anchor,
        condition,
        accumulate,
        reads: leak_strs(&reads),
    })
}

/// What a `cases` measure accumulates.
fn cases_accumulate(acc: &str, anchor: Anchor, reads: &mut Vec<String>) -> Result<Accumulate, String> {
    Ok(match acc {
        "count" => Accumulate::Count,
        "days:filed_on:closed_on" if matches!(anchor, Anchor::OpenAtEnd { .. }) => {
            return Err("an open case has no trial days".into());
        }
        "days:filed_on:closed_on" => {
            reads.extend(["filed_on".into(), "closed_on".into()]);
            Accumulate::TrialDays
        }
        other => match other.strip_prefix("sum:").and_then(|f| SUM_FIELDS.iter().find(|x| **x == f)) {
            Some(_) if anchor.is_stock() => return Err("sums over open cases are not supported".into()),
            Some(field) => {
                reads.push((*field).into());
                Accumulate::Sum { field }
            }
            None => {
                return Err(format!(
                    "accumulation {other:?} is not count, days:filed_on:closed_on or sum:FIELD with FIELD one of {}",
                    SUM_FIELDS.join(", ")
                ));
            }
        },
    })
}

/// Matches conditions on mediations: `result` labels and the presence of a judicial confirmation.
fn mediation_condition_of(clauses: &[Clause<'_>]) -> Result<Condition, String> {
    if clauses.is_empty() {
        return Ok(Condition::Any);
    }
    let mut results: Option<&[String]> = None;
    let mut confirmed = None;
    for c in clauses {
        match c {
            Clause::In("result", v) if results.is_none() => {
                check_labels(v, MEDIATION_RESULTS, "result")?;
                results = Some(v);
            }
            Clause::Present("judicial_confirm_case_no", b) if confirmed.is_none() => confirmed = Some(*b),
            Clause::In(f, _) | Clause::Present(f, _) | Clause::Is(f, _) | Clause::AtMost(f, _) => {
                return Err(format!("a condition on mediations.{f} is not supported here"));
            }
        }
    }
    Ok(Condition::Mediations { results: leak_strs(results.unwrap_or_default()), confirmed })
}

/// Matches conditions to the engine's condition shapes.
fn condition_of(clauses: &[Clause<'_>]) -> Result<Condition, String> {
    if clauses.is_empty() {
        return Ok(Condition::Any);
    }
    if let [Clause::AtMost("closed_on", "deadline_on")] = clauses {
        return Ok(Condition::ClosedOnTime);
    }
    let mut types: Option<&[String]> = None;
    let mut methods: Option<&[String]> = None;
    let mut flags: Vec<(&'static str, bool)> = Vec::new();
    for c in clauses {
        match c {
            Clause::In("type_code", v) if types.is_none() => {
                check_labels(v, TYPE_CODES, "type_code")?;
                types = Some(v);
            }
            Clause::In("closure_method", v) if methods.is_none() => {
                check_labels(v, CLOSURE_METHODS, "closure_method")?;
                methods = Some(v);
            }
            Clause::In(f, _) => return Err(format!("a condition on {f} is not supported here")),
            Clause::AtMost(a, b) => return Err(format!("{a} <= {b} combined with other conditions is not supported")),
            Clause::Is(f, v) => match FLAG_FIELDS.iter().find(|x| *x == f) {
                Some(name) if !flags.iter().any(|(n, _)| n == name) => flags.push((name, *v)),
                _ => return Err(format!("a condition {f} is {v} is not supported here")),
            },
            Clause::Present(f, _) => return Err(format!("a presence condition on {f} is not supported here")),
        }
    }
    Ok(Condition::Cases {
        type_codes: leak_strs(types.unwrap_or_default()),
        closure_methods: leak_strs(methods.unwrap_or_default()),
        flags: Box::leak(flags.into_boxed_slice()),
    })
}

fn check_labels(values: &[String], labels: &[&str], field: &str) -> Result<(), String> {
    if values.is_empty() {
        return Err(format!("{field} any_of is empty"));
    }
    match values.iter().find(|v| !labels.contains(&v.as_str())) {
        Some(bad) => Err(format!("{bad:?} is not a {field} value")),
        None => Ok(()),
    }
}

fn build_indicator(e: &IndicatorEntry, ms: &[Measure]) -> Result<Indicator, String> {
    let id_of = |name: &String| -> Result<MeasureId, String> {
        let m = ms.iter().find(|m| m.id == name).ok_or_else(|| format!("unknown measure {name}"))?;
        if m.dataset != e.dataset {
            return Err(format!("measure {name} is over {}, not {}", m.dataset, e.dataset));
        }
        Ok(m.id)
    };
    if e.kind == "per_population" {
        return build_per_population(e, ms);
    }
    if e.scale.is_some() {
        return Err("only a per_population indicator has a scale".into());
    }
    let ids = e.measures.iter().map(id_of).collect::<Result<Vec<_>, _>>()?;
    let kind = match (e.kind.as_str(), ids.as_slice()) {
        ("count", [m]) => IndicatorKind::Count { measure: m },
        ("ratio", [n, d]) => IndicatorKind::Ratio { numerator: n, denominator: d, subset: e.subset },
        ("mean", [s, c]) => IndicatorKind::Mean { sum: s, count: c },
        ("deviation", [m]) => deviation_kind(e, ms, m)?,
        ("count" | "ratio" | "mean" | "deviation", _) => {
            let n = if matches!(e.kind.as_str(), "count" | "deviation") { 1 } else { 2 };
            return Err(format!("kind {} takes {n} measures", e.kind));
        }
        (other, _) => return Err(format!("kind {other:?} is not count, ratio, mean, deviation or per_population")),
    };
    if !matches!(kind, IndicatorKind::Deviation { .. }) && (e.baseline_years.is_some() || e.levels.is_some()) {
        return Err("only a deviation has baseline_years and levels".into());
    }
    if e.subset && !matches!(kind, IndicatorKind::Ratio { .. }) {
        return Err("only a ratio can be a subset".into());
    }
    finish_indicator(e, kind)
}

/// A count per population: a count measure over the indicator's dataset and a population total over
/// another, joined by region and year.
fn build_per_population(e: &IndicatorEntry, ms: &[Measure]) -> Result<Indicator, String> {
    let find = |name: &String| ms.iter().find(|m| m.id == name).ok_or_else(|| format!("unknown measure {name}"));
    let [n, p] = e.measures.as_slice() else { return Err("kind per_population takes 2 measures".into()) };
    let (n, p) = (find(n)?, find(p)?);
    if n.dataset != e.dataset || n.accumulate != Accumulate::Count || n.anchor.is_stock() {
        return Err(format!("measure {} must count records of {} by a date", n.id, e.dataset));
    }
    if !matches!(p.accumulate, Accumulate::Total { .. }) || p.anchor != Anchor::Year {
        return Err(format!("measure {} must be a yearly population total (anchor year, sum:…)", p.id));
    }
    let scale = e.scale.filter(|s| *s > 0).ok_or("kind per_population needs a scale above 0")?;
    if e.subset {
        return Err("only a ratio can be a subset".into());
    }
    let ind = finish_indicator(e, IndicatorKind::PerPopulation { numerator: n.id, population: p.id, scale })?;
    // The population side is joined by region and year only: no other dimension can split it.
    if let Some(d) = ind.dimensions.iter().find(|d| !matches!(d, Dimension::Region | Dimension::Year)) {
        return Err(format!("dimension {d} cannot split a population; use region and year"));
    }
    Ok(ind)
}

fn finish_indicator(e: &IndicatorEntry, kind: IndicatorKind) -> Result<Indicator, String> {
    let mut dims = Vec::new();
    for d in &e.dimensions {
        let dim = Dimension::parse(d).ok_or_else(|| format!("unknown dimension {d:?}"))?;
        if !dims.contains(&dim) {
            dims.push(dim);
        }
    }
    if e.name.trim().is_empty() || e.formula.trim().is_empty() {
        return Err("needs a name and a formula".into());
    }
    Ok(Indicator {
        id: leak_str(&e.id),
        name: leak_str(&e.name),
        formula: leak_str(&e.formula),
        dataset: leak_str(&e.dataset),
        kind,
        dimensions: Box::leak(dims.into_boxed_slice()),
    })
}

/// A deviation's kind: a dated count measure, 1..=10 baseline years (3 when not given) and its levels.
fn deviation_kind(e: &IndicatorEntry, ms: &[Measure], m: MeasureId) -> Result<IndicatorKind, String> {
    let dated_count = ms.iter().any(|x| x.id == m && !x.anchor.is_stock() && x.accumulate == Accumulate::Count);
    if !dated_count {
        return Err(format!("a deviation needs a count of dated records (filed_on or closed_on), not {m}"));
    }
    let baseline_years = e.baseline_years.unwrap_or(3);
    if !(1..=crate::deviation::MAX_BASELINE_YEARS).contains(&baseline_years) {
        return Err(format!("baseline_years must be 1 to {}", crate::deviation::MAX_BASELINE_YEARS));
    }
    let Some(levels) = &e.levels else {
        return Err("a deviation needs levels = { yellow_from = \"0.15\", red_above = \"0.30\" }".into());
    };
    let levels = crate::deviation::Levels::parse(&levels.yellow_from, &levels.red_above)?;
    Ok(IndicatorKind::Deviation { measure: m, baseline_years, levels })
}

impl Indicator {
    /// The measures the indicator needs, without repeats, in a fixed order.
    pub fn measures(&self) -> Vec<MeasureId> {
        let mut out: Vec<MeasureId> = match self.kind {
            IndicatorKind::Count { measure } | IndicatorKind::Deviation { measure, .. } => vec![measure],
            IndicatorKind::Ratio { numerator, denominator, .. } => vec![numerator, denominator],
            IndicatorKind::Mean { sum, count } => vec![sum, count],
            IndicatorKind::PerPopulation { numerator, population, .. } => vec![numerator, population],
        };
        out.dedup();
        out
    }

    /// Every dataset the indicator's measures read, its own first.
    pub fn datasets(&self) -> Vec<&'static str> {
        let mut out = vec![self.dataset];
        for ds in self.measures().iter().filter_map(|m| measure(m)).map(|m| m.dataset) {
            if !out.contains(&ds) {
                out.push(ds);
            }
        }
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
        let fields = self.measures().into_iter().filter_map(measure).flat_map(|m| {
            let dataset = crate::schema::dataset(m.dataset).unwrap_or(&CASES);
            m.reads.iter().filter_map(|f| dataset.field(f)).map(|f| f.grade)
        });
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
    fn the_embedded_catalogue_builds() {
        let (ms, is) = build(&Catalogue::embedded()).unwrap();
        assert!(ms.len() >= 7 && is.len() >= 6);
        assert_eq!(indicators().len(), is.len());
    }

    #[test]
    fn every_indicator_names_known_measures_of_its_dataset() {
        for ind in indicators() {
            for m in ind.measures() {
                let measure = measure(m).unwrap_or_else(|| panic!("{} names unknown measure {m}", ind.id));
                // Only a per-population indicator joins a second dataset (its population measure).
                if !matches!(ind.kind, IndicatorKind::PerPopulation { population, .. } if population == m) {
                    assert_eq!(measure.dataset, ind.dataset);
                }
                let ds = crate::schema::dataset(measure.dataset).unwrap();
                for f in measure.reads {
                    assert!(ds.field(f).is_some(), "{m} reads unknown field {f}");
                }
            }
        }
    }

    #[test]
    fn measures_parse_into_the_engine_shapes() {
        let m = measure("cases.closed_civil_first_mediated_withdrawn").unwrap();
        assert_eq!(m.anchor, Anchor::Closed);
        assert_eq!(
            m.condition,
            Condition::Cases {
                type_codes: &["民初"],
                closure_methods: &["调解", "准予撤诉", "按撤诉处理"],
                flags: &[]
            }
        );
        assert_eq!(m.reads, &["closed_on", "closure_method", "type_code"]);
        assert_eq!(measure("cases.closed_on_time").unwrap().condition, Condition::ClosedOnTime);
        assert_eq!(measure("cases.trial_days").unwrap().accumulate, Accumulate::TrialDays);
        assert_eq!(measure("cases.active").unwrap().anchor, Anchor::Active);
        let ind = indicator("closure_rate").unwrap();
        assert_eq!(ind.name, "结案率");
        assert_eq!(
            ind.kind,
            IndicatorKind::Ratio { numerator: "cases.closed", denominator: "cases.active", subset: true }
        );
    }

    #[test]
    fn cross_agency_measures_and_indicators_parse() {
        let m = measure("mediations.closed_success_confirmed").unwrap();
        assert_eq!(m.anchor, Anchor::Closed);
        assert_eq!(m.condition, Condition::Mediations { results: &["成功"], confirmed: Some(true) });
        assert_eq!(m.reads, &["closed_on", "judicial_confirm_case_no", "result"]);
        let p = measure("population.resident_and_floating").unwrap();
        assert_eq!(
            (p.anchor, p.accumulate),
            (Anchor::Year, Accumulate::Total { fields: &["resident_pop", "registered_floating_pop"] })
        );
        let ind = indicator("litigation_per_10k").unwrap();
        assert_eq!(
            ind.kind,
            IndicatorKind::PerPopulation {
                numerator: "cases.filed_civil_first",
                population: "population.resident_and_floating",
                scale: 10_000
            }
        );
        assert_eq!(ind.datasets(), vec!["cases", "population"]);
        assert_eq!(ind.grade_with(&[Dimension::Region]), Grade::L2);
        // Reading whether a judicial confirmation case number exists reads an L3 field (就高从严).
        assert_eq!(indicator("judicial_confirmation_rate").unwrap().grade_with(&[]), Grade::L3);
        assert_eq!(indicator("mediation_success_rate").unwrap().grade_with(&[Dimension::DisputeType]), Grade::L2);
        assert!(indicator("mediation_success_rate").unwrap().allows(Dimension::DisputeType));
        assert!(!indicator("filed").unwrap().allows(Dimension::DisputeType));
    }

    #[test]
    fn a_catalogue_entry_adds_a_rate_per_population() {
        let cat = with(
            "[[measure]]\nid = \"population.hukou_test\"\ndataset = \"population\"\nanchor = \"year\"\naccumulate = \"sum:hukou_pop\"\n\n[[measure]]\nid = \"cases.filed_criminal_first_test\"\ndataset = \"cases\"\nanchor = \"filed_on\"\naccumulate = \"count\"\nconditions = [{ field = \"type_code\", any_of = [\"刑初\"] }]\n\n[[indicator]]\nid = \"crime_per_100k_test\"\nname = \"十万户籍人口刑事案件数\"\nformula = \"刑初 filed in P ÷ hukou_pop of P's year × 100 000\"\ndataset = \"cases\"\nkind = \"per_population\"\nmeasures = [\"cases.filed_criminal_first_test\", \"population.hukou_test\"]\nscale = 100000\ndimensions = [\"region\", \"year\"]\n",
        )
        .unwrap();
        let (ms, is) = build(&cat).unwrap();
        let ind = is.iter().find(|i| i.id == "crime_per_100k_test").unwrap();
        assert_eq!(
            ind.kind,
            IndicatorKind::PerPopulation {
                numerator: "cases.filed_criminal_first_test",
                population: "population.hukou_test",
                scale: 100_000
            }
        );
        let pop = ms.iter().find(|m| m.id == "population.hukou_test").unwrap();
        assert_eq!(pop.accumulate, Accumulate::Total { fields: &["hukou_pop"] });
        assert_eq!(pop.reads, &["hukou_pop", "year"]);
    }

    #[test]
    fn bad_cross_agency_definitions_are_refused() {
        let m = |ds: &str, body: &str| format!("[[measure]]\nid = \"{ds}.x\"\ndataset = \"{ds}\"\n{body}\n");
        let pp = |measures: &str, rest: &str| {
            format!(
                "[[indicator]]\nid = \"x\"\nname = \"某\"\nformula = \"f\"\ndataset = \"cases\"\nkind = \"per_population\"\nmeasures = [{measures}]\n{rest}\n"
            )
        };
        let cases = [
            (m("mediations", "anchor = \"filed_on\"\naccumulate = \"count\""), "accepted_on or closed_on"),
            (m("population", "anchor = \"year\"\naccumulate = \"sum:resident_pop+party_name\""), "sum:A+B"),
            (
                m(
                    "mediations",
                    "anchor = \"closed_on\"\naccumulate = \"count\"\nconditions = [{ field = \"result\", any_of = [\"赢\"] }]",
                ),
                "赢",
            ),
            (
                m(
                    "cases",
                    "anchor = \"filed_on\"\naccumulate = \"count\"\nconditions = [{ field = \"closed_on\", present = true }]",
                ),
                "presence",
            ),
            (
                pp("\"cases.filed_civil_first\", \"population.resident_and_floating\"", "dimensions = [\"region\"]"),
                "needs a scale",
            ),
            (
                pp("\"cases.filed_civil_first\", \"cases.filed\"", "scale = 10000\ndimensions = [\"region\"]"),
                "yearly population total",
            ),
            (
                pp(
                    "\"cases.filed_civil_first\", \"population.resident_and_floating\"",
                    "scale = 10000\ndimensions = [\"region\", \"cause\"]",
                ),
                "cannot split a population",
            ),
        ];
        for (extra, why) in cases {
            let err = with(&extra).unwrap_err();
            assert!(err.contains(why), "{err} should mention {why}");
        }
    }

    #[test]
    fn grades_follow_fields() {
        let ind = indicator("closure_rate").unwrap();
        assert_eq!(ind.grade_with(&[Dimension::Region]), Grade::L2);
        assert_eq!(ind.measures(), vec!["cases.closed", "cases.active"]);
        assert_eq!(ind.fields_read(), vec!["closed_on", "filed_on"]);
    }

    fn with(extra: &str) -> Result<Catalogue, String> {
        Catalogue::parse(&format!("{}\n{extra}", crate::catalogue::EMBEDDED)).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        let m = |body: &str| format!("[[measure]]\nid = \"cases.x\"\ndataset = \"cases\"\n{body}\n");
        let cases = [
            (m("anchor = \"deadline\"\naccumulate = \"count\""), "anchor"),
            (m("anchor = \"filed_on\"\naccumulate = \"sum\""), "accumulation"),
            (
                m("anchor = \"filed_on\"\naccumulate = \"count\"\nconditions = [{ field = \"type_code\", any_of = [\"民X\"] }]"),
                "民X",
            ),
            (
                m("anchor = \"filed_on\"\naccumulate = \"count\"\nconditions = [{ field = \"nope\", is = true }]"),
                "nope",
            ),
            (
                "[[indicator]]\nid = \"x\"\nname = \"某\"\nformula = \"f\"\ndataset = \"cases\"\nkind = \"ratio\"\nmeasures = [\"cases.filed\"]\ndimensions = []\n".into(),
                "kind ratio takes 2",
            ),
            (
                "[[indicator]]\nid = \"x\"\nname = \"某\"\nformula = \"f\"\ndataset = \"cases\"\nkind = \"count\"\nmeasures = [\"cases.nope\"]\ndimensions = []\n".into(),
                "unknown measure",
            ),
        ];
        let dev = |body: &str| {
            format!(
                "[[indicator]]\nid = \"x\"\nname = \"某\"\nformula = \"f\"\ndataset = \"cases\"\nkind = \"deviation\"\ndimensions = []\n{body}\n"
            )
        };
        let levels = "levels = { yellow_from = \"0.15\", red_above = \"0.30\" }";
        let cases = cases.into_iter().map(|(e, w)| (e, w.to_string())).chain([
            (dev("measures = [\"cases.filed\"]"), "needs levels".to_string()),
            (dev(&format!("measures = [\"cases.active\"]\n{levels}")), "dated records".into()),
            (dev(&format!("measures = [\"cases.trial_days\"]\n{levels}")), "dated records".into()),
            (dev(&format!("measures = [\"cases.filed\"]\nbaseline_years = 0\n{levels}")), "baseline_years".into()),
            (
                dev("measures = [\"cases.filed\"]\nlevels = { yellow_from = \"0.4\", red_above = \"0.30\" }"),
                "above".into(),
            ),
            (dev("measures = [\"cases.filed\"]\nlevels = { yellow_from = \"15%\", red_above = \"0.30\" }"), "15%".into()),
            (
                format!(
                    "[[indicator]]\nid = \"x\"\nname = \"某\"\nformula = \"f\"\ndataset = \"cases\"\nkind = \"count\"\nmeasures = [\"cases.filed\"]\ndimensions = []\n{levels}\n"
                ),
                "only a deviation".into(),
            ),
        ]);
        for (extra, why) in cases {
            let err = with(&extra).unwrap_err();
            assert!(err.contains(why.as_str()), "{err} should mention {why}");
        }
    }

    #[test]
    fn a_catalogue_entry_adds_an_indicator() {
        let cat = with(
            "[[measure]]\nid = \"cases.closed_withdrawn_test\"\ndataset = \"cases\"\nanchor = \"closed_on\"\naccumulate = \"count\"\nconditions = [{ field = \"closure_method\", any_of = [\"准予撤诉\", \"按撤诉处理\"] }]\n\n[[indicator]]\nid = \"withdrawal_rate_test\"\nname = \"撤诉率\"\nformula = \"closed by 准予撤诉 or 按撤诉处理 ÷ closed\"\ndataset = \"cases\"\nkind = \"ratio\"\nmeasures = [\"cases.closed_withdrawn_test\", \"cases.closed\"]\nsubset = true\ndimensions = [\"region\", \"year\"]\n",
        )
        .unwrap();
        let (_, is) = build(&cat).unwrap();
        let ind = is.iter().find(|i| i.id == "withdrawal_rate_test").unwrap();
        let dev = indicator("filing_deviation").unwrap();
        assert_eq!(
            dev.kind,
            IndicatorKind::Deviation {
                measure: "cases.filed",
                baseline_years: 3,
                levels: crate::deviation::Levels { yellow_from_ppm: 150_000, red_above_ppm: 300_000 }
            }
        );
        assert_eq!(dev.measures(), vec!["cases.filed"]);
        assert_eq!(ind.name, "撤诉率");
        assert_eq!(ind.dimensions, &[Dimension::Region, Dimension::Year]);
        assert!(matches!(ind.kind, IndicatorKind::Ratio { subset: true, .. }));
    }
}
