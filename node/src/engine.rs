//! The node's aggregation engine: the `cases` dataset held in memory as narrow columns (dictionary-encoded
//! u16/u8 codes, i32 day numbers, bit flags of the boolean fields measures test and two i64 money columns
//! in fen: about 33 bytes per case) built from the durable store, and a
//! column-wise aggregation into dense arrays indexed by packed group codes that produces partial measures
//! with contributor counts per group and sub-period.
//!
//! Time dimensions split the period into sub-periods (years, quarters or months); each measure's anchor
//! decides which sub-periods a case falls in: the month of `filed_on`, of `closed_on`, or — for
//! "active" (pending at the start + filed in) — every sub-period the case was open in. A day-number →
//! sub-period table built per query replaces any per-case date arithmetic; "active" counts go through a
//! difference array, so a case open for years costs two additions, not one per month.

use std::collections::HashMap;

use shuzhu_policy::dimension::{Dimension, TimeGrain, time_grain};
use shuzhu_policy::disclosure::Partial;
use shuzhu_policy::indicator::{Accumulate, Anchor, Condition, FLAG_FIELDS, Measure, SUM_FIELDS};
use shuzhu_policy::period::{Month, Period, days_from_civil, format_day};
use shuzhu_policy::schema::{self, CASES, CLOSURE_METHODS, TYPE_CODES};

use crate::record::{Record, Value};
use crate::store::{Store, StoreError};

const OPEN: i32 = i32::MAX;
/// An amount column's value of a case without one.
const NO_AMOUNT: i64 = i64::MIN;
/// `method` of a case without a closure method.
const NO_METHOD: u8 = u8::MAX;
/// Bit of `flags`: closed, and on or before the deadline.
const ON_TIME: u8 = 1;
/// Bit of `flags` holding the boolean field `FLAG_FIELDS[i]` (appealed, online_filed, pre_suit_mediated).
const fn flag_bit(i: usize) -> u8 {
    2 << i
}
/// Rows handled per block: group codes of a block are computed once and shared by every measure.
const BLOCK: usize = 2048;
/// Group code of a row that a filter rejects (any code at or above it).
const REJECTED: u64 = 1 << 62;
/// Largest number of (group, sub-period) cells held as dense arrays; beyond it groups are numbered
/// through a hash map as they appear.
const DENSE_CELLS: u64 = 1 << 20;
/// Fewest rows worth a second thread.
const PARALLEL_ROWS: usize = 200_000;

/// The `cases` dataset as columns.
#[derive(Default)]
pub struct CaseTable {
    courts: Vec<String>,
    causes: Vec<String>,
    regions: Vec<u32>,
    court: Vec<u16>,
    region: Vec<u16>,
    cause: Vec<u16>,
    type_code: Vec<u8>,
    method: Vec<u8>,
    flags: Vec<u8>,
    filed: Vec<i32>,
    closed: Vec<i32>,
    /// One column per [`SUM_FIELDS`] entry (fen; [`NO_AMOUNT`] when absent).
    amounts: [Vec<i64>; 2],
    max_day: Option<i32>,
    min_filed: Option<i32>,
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
    /// A dimension has more distinct values than its column can encode.
    #[error("dimension {0} has more than 65 535 distinct values")]
    Cardinality(&'static str),
    /// A measure over another dataset (served by [`crate::tables`]).
    #[error("measure {0} is not over dataset cases")]
    Measure(&'static str),
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

/// The fields the engine reads, borrowed from one stored record.
#[derive(Default)]
struct Fields<'a> {
    court: &'a str,
    cause: &'a str,
    region: u32,
    type_code: u8,
    method: u8,
    filed: i32,
    closed: i32,
    deadline: i32,
    /// Bits of the true boolean fields ([`flag_bit`]).
    flags: u8,
    /// Values of [`SUM_FIELDS`].
    amounts: [i64; 2],
}

/// Positions of the engine's fields in the schema.
struct FieldIdx {
    court: usize,
    region: usize,
    type_code: usize,
    cause: usize,
    filed: usize,
    closed: usize,
    deadline: usize,
    method: usize,
    /// Positions of [`FLAG_FIELDS`].
    flags: [usize; 3],
    /// Positions of [`SUM_FIELDS`].
    amounts: [usize; 2],
    last: usize,
}

impl FieldIdx {
    fn new() -> Self {
        let f = FieldIdx {
            court: field_index("court_code"),
            region: field_index("region_code"),
            type_code: field_index("type_code"),
            cause: field_index("cause"),
            filed: field_index("filed_on"),
            closed: field_index("closed_on"),
            deadline: field_index("deadline_on"),
            method: field_index("closure_method"),
            flags: [field_index(FLAG_FIELDS[0]), field_index(FLAG_FIELDS[1]), field_index(FLAG_FIELDS[2])],
            amounts: [field_index(SUM_FIELDS[0]), field_index(SUM_FIELDS[1])],
            last: 0,
        };
        let last = [f.court, f.region, f.type_code, f.cause, f.filed, f.closed, f.deadline, f.method]
            .into_iter()
            .chain(f.flags)
            .chain(f.amounts)
            .max()
            .unwrap_or(0);
        FieldIdx { last, ..f }
    }

    fn set<'a>(&self, out: &mut Fields<'a>, i: usize, v: Val<'a>) {
        match v {
            Val::Text(t) if i == self.court => out.court = t,
            Val::Text(t) if i == self.cause => out.cause = t,
            Val::Int(n) if i == self.region => out.region = u32::try_from(n).unwrap_or(0),
            Val::Int(n) if i == self.amounts[0] => out.amounts[0] = n,
            Val::Int(n) if i == self.amounts[1] => out.amounts[1] = n,
            Val::Enum(e) if i == self.type_code => out.type_code = e,
            Val::Enum(e) if i == self.method => out.method = e,
            Val::Day(d) if i == self.filed => out.filed = d,
            Val::Day(d) if i == self.closed => out.closed = d,
            Val::Day(d) if i == self.deadline => out.deadline = d,
            Val::Bool(true) => {
                if let Some(k) = self.flags.iter().position(|&x| x == i) {
                    out.flags |= flag_bit(k);
                }
            }
            _ => {}
        }
    }
}

/// A value as the walker sees it.
enum Val<'a> {
    Other,
    Text(&'a str),
    Int(i64),
    Day(i32),
    Enum(u8),
    Bool(bool),
}

fn fields_default<'a>() -> Fields<'a> {
    Fields {
        method: NO_METHOD,
        filed: OPEN,
        closed: OPEN,
        deadline: OPEN,
        amounts: [NO_AMOUNT; 2],
        ..Default::default()
    }
}

/// Reads the engine's fields straight from postcard bytes of a [`Record`] without allocating. Returns
/// `None` on anything unexpected; the caller then decodes the record in full.
fn walk<'a>(bytes: &'a [u8], idx: &FieldIdx) -> Option<Fields<'a>> {
    let mut pos = 0usize;
    let varint = |pos: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *bytes.get(*pos)?;
            *pos += 1;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let zigzag = |v: u64| ((v >> 1) as i64) ^ -((v & 1) as i64);
    let n = usize::try_from(varint(&mut pos)?).ok()?;
    let mut out = fields_default();
    for i in 0..n.min(idx.last + 1) {
        // Variant order of `Value`: Absent, Text, Int, Day, Bool, Enum, IdDerived.
        let v = match varint(&mut pos)? {
            0 => Val::Other,
            1 => {
                let len = usize::try_from(varint(&mut pos)?).ok()?;
                let text = std::str::from_utf8(bytes.get(pos..pos.checked_add(len)?)?).ok()?;
                pos += len;
                Val::Text(text)
            }
            2 => Val::Int(zigzag(varint(&mut pos)?)),
            3 => Val::Day(i32::try_from(zigzag(varint(&mut pos)?)).ok()?),
            4 => {
                let b = *bytes.get(pos)?;
                pos += 1;
                Val::Bool(b != 0)
            }
            5 => {
                let e = *bytes.get(pos)?;
                pos += 1;
                Val::Enum(e)
            }
            6 => {
                varint(&mut pos)?;
                pos += 1;
                varint(&mut pos)?;
                Val::Other
            }
            _ => return None,
        };
        idx.set(&mut out, i, v);
    }
    Some(out)
}

/// The engine's fields of a fully decoded record.
fn from_record<'a>(rec: &'a Record, idx: &FieldIdx) -> Fields<'a> {
    let mut out = fields_default();
    for (i, v) in rec.values.iter().enumerate() {
        let v = match v {
            Value::Text(t) => Val::Text(t),
            Value::Int(n) => Val::Int(*n),
            Value::Day(d) => Val::Day(*d),
            Value::Enum(e) => Val::Enum(*e),
            Value::Bool(b) => Val::Bool(*b),
            _ => Val::Other,
        };
        idx.set(&mut out, i, v);
    }
    out
}

/// A dictionary of distinct values, coded as u16 in order of appearance.
struct Dict<K> {
    codes: HashMap<K, u16>,
    name: &'static str,
}

impl<K: std::hash::Hash + Eq> Dict<K> {
    fn new(name: &'static str) -> Self {
        Dict { codes: HashMap::new(), name }
    }

    fn code<Q>(&mut self, key: &Q, values: &mut Vec<Q::Owned>) -> Result<u16, EngineError>
    where
        Q: std::hash::Hash + Eq + ToOwned + ?Sized,
        K: std::borrow::Borrow<Q> + From<Q::Owned>,
        Q::Owned: Clone,
    {
        if let Some(c) = self.codes.get(key) {
            return Ok(*c);
        }
        let c = u16::try_from(values.len()).map_err(|_| EngineError::Cardinality(self.name))?;
        values.push(key.to_owned());
        self.codes.insert(K::from(key.to_owned()), c);
        Ok(c)
    }
}

impl CaseTable {
    /// Loads every stored case, one record at a time (no decoded copy of the dataset is ever held).
    pub fn load(store: &dyn Store) -> Result<Self, EngineError> {
        let n = usize::try_from(store.count("cases")?).unwrap_or(0);
        let mut t = CaseTable::with_capacity(n);
        let idx = FieldIdx::new();
        let mut courts: Dict<String> = Dict::new("court");
        let mut causes: Dict<String> = Dict::new("cause");
        let mut regions: Dict<u32> = Dict::new("region");
        let mut failure: Option<EngineError> = None;
        store.scan("cases", &mut |k, v| {
            if failure.is_some() {
                return;
            }
            let full;
            let f = match walk(v, &idx) {
                Some(f) => f,
                None => match postcard::from_bytes::<Record>(v) {
                    Ok(rec) => {
                        full = rec;
                        from_record(&full, &idx)
                    }
                    Err(_) => {
                        let len = String::from_utf8_lossy(k).chars().count();
                        failure = Some(EngineError::Corrupt(format!("(key of {len} characters)")));
                        return;
                    }
                },
            };
            let coded = (|| -> Result<(u16, u16, u16), EngineError> {
                Ok((
                    courts.code(f.court, &mut t.courts)?,
                    causes.code(f.cause, &mut t.causes)?,
                    regions.code(&f.region, &mut t.regions)?,
                ))
            })();
            match coded {
                Ok((court, cause, region)) => t.push(court, region, cause, &f),
                Err(e) => failure = Some(e),
            }
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(t),
        }
    }

    fn with_capacity(n: usize) -> Self {
        CaseTable {
            court: Vec::with_capacity(n),
            region: Vec::with_capacity(n),
            cause: Vec::with_capacity(n),
            type_code: Vec::with_capacity(n),
            method: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            filed: Vec::with_capacity(n),
            closed: Vec::with_capacity(n),
            amounts: [Vec::with_capacity(n), Vec::with_capacity(n)],
            ..Default::default()
        }
    }

    fn push(&mut self, court: u16, region: u16, cause: u16, f: &Fields<'_>) {
        let on_time = f.closed != OPEN && f.closed <= f.deadline;
        self.court.push(court);
        self.region.push(region);
        self.cause.push(cause);
        self.type_code.push(f.type_code);
        self.method.push(f.method);
        self.flags.push(if on_time { ON_TIME | f.flags } else { f.flags });
        self.filed.push(f.filed);
        self.closed.push(f.closed);
        self.amounts[0].push(f.amounts[0]);
        self.amounts[1].push(f.amounts[1]);
        let latest = if f.closed == OPEN { f.filed } else { f.closed.max(f.filed) };
        self.max_day = Some(self.max_day.map_or(latest, |m: i32| m.max(latest)));
        self.min_filed = Some(self.min_filed.map_or(f.filed, |m: i32| m.min(f.filed)));
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

    /// Earliest filing date in the data (`min(filed_on)`), `YYYY-MM-DD`: months before it are not covered.
    pub fn data_from(&self) -> Option<String> {
        self.min_filed.map(format_day)
    }

    /// The distinct region codes.
    pub fn regions(&self) -> Vec<String> {
        let mut r = self.regions.clone();
        r.sort_unstable();
        r.iter().map(|r| format!("{r:06}")).collect()
    }

    /// The distinct court codes.
    pub fn courts(&self) -> Vec<String> {
        let mut c = self.courts.clone();
        c.sort();
        c
    }

    /// Bytes held by the columns and dictionaries (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        let strings =
            |v: &Vec<String>| v.capacity() * size_of::<String>() + v.iter().map(String::capacity).sum::<usize>();
        strings(&self.courts)
            + strings(&self.causes)
            + self.regions.capacity() * 4
            + (self.court.capacity() + self.region.capacity() + self.cause.capacity()) * 2
            + self.type_code.capacity()
            + self.method.capacity()
            + (self.amounts[0].capacity() + self.amounts[1].capacity()) * 8
            + self.flags.capacity()
            + (self.filed.capacity() + self.closed.capacity()) * 4
    }

    /// Computes `measures` grouped by `group_by` over `period`, keeping only cases that pass `filters`.
    pub fn aggregate(
        &self,
        measures: &[&Measure],
        group_by: &[Dimension],
        period: Period,
        filters: &[Filter],
    ) -> Result<Vec<GroupOut>, EngineError> {
        if let Some(m) = measures.iter().find(|m| m.dataset != "cases") {
            return Err(EngineError::Measure(m.id));
        }
        let plan = Plan::new(self, measures, group_by, period, filters)?;
        let n = self.len();
        let accs = if plan.dense && n >= PARALLEL_ROWS {
            let mid = n / 2;
            let (a, b) = std::thread::scope(|s| {
                let other = s.spawn(|| plan.run(self, mid..n));
                let mine = plan.run(self, 0..mid);
                // A panic in the other half is a bug; re-raise it rather than answer with half the data.
                (mine, other.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            });
            a.merge(b)
        } else {
            plan.run(self, 0..n)
        };
        Ok(plan.output(self, measures, accs))
    }

    fn label(&self, d: Dimension, code: u32) -> String {
        match d {
            Dimension::Region => self.regions.get(code as usize).map(|r| format!("{r:06}")).unwrap_or_default(),
            Dimension::Court => self.courts.get(code as usize).cloned().unwrap_or_default(),
            Dimension::Cause => self.causes.get(code as usize).cloned().unwrap_or_default(),
            Dimension::TypeCode | Dimension::Division | Dimension::Instance => {
                type_labels(d).get(code as usize).copied().unwrap_or("").to_string()
            }
            Dimension::Year | Dimension::Quarter | Dimension::Month | Dimension::DisputeType => String::new(),
        }
    }
}

/// The label of type code `t` under a type-derived dimension.
fn type_label(d: Dimension, t: &str) -> &'static str {
    match d {
        Dimension::Division => schema::division_of(t).unwrap_or(""),
        Dimension::Instance => schema::instance_of(t).unwrap_or(""),
        _ => TYPE_CODES.iter().copied().find(|c| *c == t).unwrap_or(""),
    }
}

/// The distinct labels of a type-derived dimension, in first-appearance order over [`TYPE_CODES`].
fn type_labels(d: Dimension) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for t in TYPE_CODES {
        let l = type_label(d, t);
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// How one measure is computed.
#[derive(Clone, Copy)]
enum Kernel {
    /// One sub-period (anchor filed or closed), one per case.
    Count { closed_anchor: bool },
    /// One sub-period, trial days summed.
    Days { closed_anchor: bool },
    /// Every sub-period the case was open in, one per case (difference array).
    ActiveCount,
    /// Every sub-period the case was open in, trial days summed.
    ActiveDays,
    /// One sub-period, the amount column `column` summed over cases that have a value.
    Sum { closed_anchor: bool, column: usize },
}

/// One measure's plan: its kernel, its condition as a table over (type, method, on-time), and the flag
/// bits that must equal `want` under `mask`.
struct MeasurePlan {
    kernel: Kernel,
    accept: Option<Vec<bool>>,
    mask: u8,
    want: u8,
    /// For an open-at-end anchor: the age (days, exclusive) a case must exceed at the sub-period's end.
    open_at_end: Option<i32>,
}

fn cond_index(type_code: u8, method: u8, flags: u8) -> usize {
    (usize::from(type_code) << 9) | (usize::from(method) << 1) | usize::from(flags & ON_TIME)
}

impl MeasurePlan {
    fn new(m: &Measure) -> Self {
        let closed_anchor = m.anchor == Anchor::Closed;
        let kernel = match (m.anchor, m.accumulate) {
            (Anchor::Active | Anchor::OpenAtEnd { .. }, Accumulate::Count) => Kernel::ActiveCount,
            // The catalogue refuses trial days of open cases; were one asked, it would count none.
            (Anchor::Active | Anchor::OpenAtEnd { .. }, Accumulate::TrialDays) => Kernel::ActiveDays,
            (_, Accumulate::Count) => Kernel::Count { closed_anchor },
            (_, Accumulate::TrialDays) => Kernel::Days { closed_anchor },
            // The catalogue refuses sums with stock anchors (Active, OpenAtEnd are handled above
            // only for counts and days); an unknown field sums the first column, which it cannot name.
            (_, Accumulate::Sum { field }) => {
                Kernel::Sum { closed_anchor, column: SUM_FIELDS.iter().position(|f| *f == field).unwrap_or(0) }
            }
            // Population totals never reach this engine (`aggregate` refuses measures of other datasets).
            (_, Accumulate::Total { .. }) => Kernel::Count { closed_anchor },
        };
        let accept = match m.condition {
            Condition::Any => None,
            cond => {
                // Which type codes and closure methods pass, decided once per code (not once per slot of
                // the 131 072-slot table, which this plan builds for every measure of every query).
                let (mut t_pass, mut m_pass) = ([true; 256], [true; 256]);
                if let Condition::Cases { type_codes, closure_methods, .. } = cond {
                    for (t, pass) in t_pass.iter_mut().enumerate() {
                        *pass = type_codes.is_empty() || TYPE_CODES.get(t).is_some_and(|l| type_codes.contains(l));
                    }
                    for (method, pass) in m_pass.iter_mut().enumerate() {
                        *pass = closure_methods.is_empty()
                            || CLOSURE_METHODS.get(method).is_some_and(|l| closure_methods.contains(l));
                    }
                }
                let mut table = vec![false; 256 << 9];
                for (i, slot) in table.iter_mut().enumerate() {
                    let (t, method, on_time) = (i >> 9, (i >> 1) & 0xff, i & 1 == 1);
                    *slot = match cond {
                        Condition::Any => true,
                        Condition::ClosedOnTime => on_time,
                        Condition::Cases { .. } => t_pass[t] && m_pass[method],
                        // Refused by `aggregate` (a mediations measure); it would match nothing.
                        Condition::Mediations { .. } => false,
                    };
                }
                Some(table)
            }
        };
        let (mut mask, mut want) = (0u8, 0u8);
        if let Condition::Cases { flags, .. } = m.condition {
            for (name, value) in flags {
                // The catalogue only admits conditions on FLAG_FIELDS; an unknown name matches nothing.
                let bit = FLAG_FIELDS.iter().position(|f| f == name).map_or(1 << 7, flag_bit);
                mask |= bit;
                if *value {
                    want |= bit;
                }
            }
        }
        let open_at_end = match m.anchor {
            Anchor::OpenAtEnd { older_than_days } => Some(older_than_days),
            _ => None,
        };
        MeasurePlan { kernel, accept, mask, want, open_at_end }
    }
}

/// Per-measure accumulators over cells (group × sub-period).
struct Acc {
    value: Vec<i64>,
    contributors: Vec<u64>,
    max_single: Vec<i64>,
    /// Difference array of an "active" count: `nb + 1` entries per group.
    diff: Vec<i64>,
}

/// Accumulators of one run over a range of rows.
struct Accs {
    measures: Vec<Acc>,
    /// Hash mode: packed group codes in order of their compact number.
    packed: Vec<u64>,
    groups: usize,
}

impl Accs {
    fn merge(mut self, other: Accs) -> Accs {
        // Only dense runs are merged: both sides share the same cell numbering.
        for (a, b) in self.measures.iter_mut().zip(other.measures) {
            add_into(&mut a.value, &b.value);
            for (x, y) in a.contributors.iter_mut().zip(&b.contributors) {
                *x += y;
            }
            for (x, y) in a.max_single.iter_mut().zip(&b.max_single) {
                *x = (*x).max(*y);
            }
            add_into(&mut a.diff, &b.diff);
        }
        self
    }
}

fn add_into(a: &mut [i64], b: &[i64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// A query compiled against the table's dictionaries.
struct Plan {
    measures: Vec<MeasurePlan>,
    /// Per-dimension group-code contribution (or [`REJECTED`]) by column code.
    region: Vec<u64>,
    court: Vec<u64>,
    cause: Vec<u64>,
    type_code: Vec<u64>,
    /// Record dimensions of `group_by`, with their cardinality and stride.
    dims: Vec<(Dimension, u64, u64)>,
    group_by: Vec<Dimension>,
    groups: u64,
    dense: bool,
    /// Sub-periods.
    nb: usize,
    grain: TimeGrain,
    first_month: i32,
    /// First day of the period, and the sub-period of each day of it.
    day0: i32,
    bucket_of_day: Vec<u32>,
}

impl Plan {
    fn new(
        t: &CaseTable,
        measures: &[&Measure],
        group_by: &[Dimension],
        period: Period,
        filters: &[Filter],
    ) -> Result<Plan, EngineError> {
        // Filters: what passes, per column code. Region, court and cause: the last filter of a dimension
        // decides; type-derived filters all apply.
        let mut region_ok: Option<Vec<bool>> = None;
        let mut court_ok: Option<Vec<bool>> = None;
        let mut cause_ok: Option<Vec<bool>> = None;
        let mut type_ok = vec![true; 256];
        for f in filters {
            let has = |label: &str| f.values.iter().any(|v| v == label);
            match f.dimension {
                Dimension::Region => {
                    let wanted: Vec<u32> = f.values.iter().filter_map(|v| v.parse::<u32>().ok()).collect();
                    region_ok = Some(t.regions.iter().map(|r| wanted.contains(r)).collect());
                }
                Dimension::Court => court_ok = Some(t.courts.iter().map(|c| has(c)).collect()),
                Dimension::Cause => cause_ok = Some(t.causes.iter().map(|c| has(c)).collect()),
                d @ (Dimension::TypeCode | Dimension::Division | Dimension::Instance) => {
                    for (i, ok) in type_ok.iter_mut().enumerate() {
                        *ok &= TYPE_CODES.get(i).is_some_and(|tc| has(type_label(d, tc)));
                    }
                }
                other => return Err(EngineError::Dimension(other.to_string())),
            }
        }
        let base = |n: usize, ok: &Option<Vec<bool>>| -> Vec<u64> {
            (0..n).map(|i| if ok.as_ref().is_none_or(|o| o[i]) { 0 } else { REJECTED }).collect()
        };
        let mut region = base(t.regions.len(), &region_ok);
        let mut court = base(t.courts.len(), &court_ok);
        let mut cause = base(t.causes.len(), &cause_ok);
        let mut type_code: Vec<u64> = type_ok.iter().map(|ok| if *ok { 0 } else { REJECTED }).collect();

        if let Some(d) = group_by.iter().find(|d| **d == Dimension::DisputeType) {
            return Err(EngineError::Dimension(d.to_string()));
        }
        let mut dims = Vec::new();
        let mut stride: u64 = 1;
        let mut overflow = false;
        for d in group_by.iter().copied().filter(|d| !d.is_time()) {
            let card = match d {
                Dimension::Region => t.regions.len(),
                Dimension::Court => t.courts.len(),
                Dimension::Cause => t.causes.len(),
                _ => type_labels(d).len(),
            }
            .max(1) as u64;
            let add = |table: &mut [u64], code_of: &dyn Fn(usize) -> u64| {
                for (i, c) in table.iter_mut().enumerate() {
                    *c = c.saturating_add(code_of(i) * stride).min(REJECTED);
                }
            };
            match d {
                Dimension::Region => add(&mut region, &|i| i as u64),
                Dimension::Court => add(&mut court, &|i| i as u64),
                Dimension::Cause => add(&mut cause, &|i| i as u64),
                _ => {
                    let labels = type_labels(d);
                    add(&mut type_code, &|i| {
                        let l = TYPE_CODES.get(i).map_or("", |tc| type_label(d, tc));
                        labels.iter().position(|x| *x == l).unwrap_or(0) as u64
                    });
                }
            }
            dims.push((d, card, stride));
            stride = stride.saturating_mul(card);
            overflow |= stride >= REJECTED;
        }
        if overflow {
            return Err(EngineError::Cardinality("group"));
        }
        let groups = stride;

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
        let first_day = |m: i32| days_from_civil(m.div_euclid(12), m.rem_euclid(12) as u32 + 1, 1);
        let day0 = first_day(pa);
        let mut bucket_of_day = Vec::with_capacity((first_day(pb + 1) - day0) as usize);
        for m in pa..=pb {
            let b = bucket_of(m);
            bucket_of_day.extend(std::iter::repeat_n(b, (first_day(m + 1) - first_day(m)) as usize));
        }
        let nb = bucket_of(pb) as usize + 1;
        let dense = groups.saturating_mul(nb as u64) <= DENSE_CELLS;
        Ok(Plan {
            measures: measures.iter().map(|m| MeasurePlan::new(m)).collect(),
            region,
            court,
            cause,
            type_code,
            dims,
            group_by: group_by.to_vec(),
            groups,
            dense,
            nb,
            grain,
            first_month: pa,
            day0,
            bucket_of_day,
        })
    }

    fn new_accs(&self, groups: usize) -> Accs {
        let cells = groups * self.nb;
        let measures = self
            .measures
            .iter()
            .map(|m| match m.kernel {
                Kernel::Count { .. } => {
                    Acc { value: vec![0; cells], contributors: vec![], max_single: vec![], diff: vec![] }
                }
                Kernel::ActiveCount => Acc {
                    value: vec![],
                    contributors: vec![],
                    max_single: vec![],
                    diff: vec![0; groups * (self.nb + 1)],
                },
                Kernel::Days { .. } | Kernel::ActiveDays | Kernel::Sum { .. } => Acc {
                    value: vec![0; cells],
                    contributors: vec![0; cells],
                    max_single: vec![0; cells],
                    diff: vec![],
                },
            })
            .collect();
        Accs { measures, packed: Vec::new(), groups }
    }

    /// Aggregates rows `range` into fresh accumulators.
    fn run(&self, t: &CaseTable, range: std::ops::Range<usize>) -> Accs {
        let mut accs = self.new_accs(if self.dense { self.groups as usize } else { 0 });
        let mut compact: HashMap<u64, u32> = HashMap::new();
        let mut gid = [0u32; BLOCK];
        let mut start = range.start;
        while start < range.end {
            let end = (start + BLOCK).min(range.end);
            let len = end - start;
            let (rg, ct, cs, ty) =
                (&t.region[start..end], &t.court[start..end], &t.cause[start..end], &t.type_code[start..end]);
            for j in 0..len {
                let g = self.region[usize::from(rg[j])]
                    + self.court[usize::from(ct[j])]
                    + self.cause[usize::from(cs[j])]
                    + self.type_code[usize::from(ty[j])];
                gid[j] = if g >= REJECTED {
                    u32::MAX
                } else if self.dense {
                    g as u32
                } else {
                    let next = compact.len() as u32;
                    let id = *compact.entry(g).or_insert(next);
                    if id == next {
                        accs.packed.push(g);
                        accs.groups += 1;
                        self.grow(&mut accs);
                    }
                    id
                };
            }
            for (mp, acc) in self.measures.iter().zip(accs.measures.iter_mut()) {
                self.kernel(t, mp, acc, &gid[..len], start);
            }
            start = end;
        }
        accs
    }

    fn grow(&self, accs: &mut Accs) {
        let cells = accs.groups * self.nb;
        for (mp, acc) in self.measures.iter().zip(accs.measures.iter_mut()) {
            match mp.kernel {
                Kernel::Count { .. } => acc.value.resize(cells, 0),
                Kernel::ActiveCount => acc.diff.resize(accs.groups * (self.nb + 1), 0),
                Kernel::Days { .. } | Kernel::ActiveDays | Kernel::Sum { .. } => {
                    acc.value.resize(cells, 0);
                    acc.contributors.resize(cells, 0);
                    acc.max_single.resize(cells, 0);
                }
            }
        }
    }

    /// Runs one measure over a block of rows starting at `start` whose cell groups are `gid`.
    fn kernel(&self, t: &CaseTable, mp: &MeasurePlan, acc: &mut Acc, gid: &[u32], start: usize) {
        let end = start + gid.len();
        let (filed, closed) = (&t.filed[start..end], &t.closed[start..end]);
        let (ty, me, fl) = (&t.type_code[start..end], &t.method[start..end], &t.flags[start..end]);
        let nb = self.nb;
        let days = &self.bucket_of_day;
        let ndays = days.len();
        let day0 = self.day0;
        let (mask, want) = (mp.mask, mp.want);
        let accepts =
            |j: usize| fl[j] & mask == want && mp.accept.as_ref().is_none_or(|a| a[cond_index(ty[j], me[j], fl[j])]);
        // The sub-period of a day in the period, if it is in it.
        let bucket = |d: i32| -> Option<usize> {
            let off = d.wrapping_sub(day0) as u32 as usize;
            if d >= day0 && off < ndays { Some(days[off] as usize) } else { None }
        };
        // First and last sub-period a case was open in, if any.
        let span = |j: usize| -> Option<(usize, usize)> {
            let lo = if filed[j] < day0 { 0 } else { bucket(filed[j])? };
            let hi = if closed[j] < day0 {
                return None;
            } else {
                bucket(closed[j]).unwrap_or(nb - 1)
            };
            (lo <= hi).then_some((lo, hi))
        };
        // First and last sub-period at whose end a case was open and older than `older` days.
        let end_span = |j: usize, older: i32| -> Option<(usize, usize)> {
            let from = filed[j].saturating_add(older).saturating_add(1);
            let lo = if from < day0 { 0 } else { bucket(from)? };
            let hi = match bucket(closed[j]) {
                Some(b) => b.checked_sub(1)?,
                None if closed[j] < day0 => return None,
                None => nb - 1,
            };
            (lo <= hi).then_some((lo, hi))
        };
        match mp.kernel {
            Kernel::Count { closed_anchor } => {
                let anchor = if closed_anchor { closed } else { filed };
                for (j, &g) in gid.iter().enumerate() {
                    if g == u32::MAX || !accepts(j) {
                        continue;
                    }
                    if let Some(b) = bucket(anchor[j]) {
                        acc.value[g as usize * nb + b] += 1;
                    }
                }
            }
            Kernel::Days { closed_anchor } => {
                let anchor = if closed_anchor { closed } else { filed };
                for (j, &g) in gid.iter().enumerate() {
                    if g == u32::MAX || closed[j] == OPEN || !accepts(j) {
                        continue;
                    }
                    if let Some(b) = bucket(anchor[j]) {
                        let cell = g as usize * nb + b;
                        let amount = i64::from(closed[j]) - i64::from(filed[j]);
                        acc.value[cell] += amount;
                        acc.contributors[cell] += 1;
                        acc.max_single[cell] = acc.max_single[cell].max(amount);
                    }
                }
            }
            Kernel::ActiveCount => {
                for (j, &g) in gid.iter().enumerate() {
                    if g == u32::MAX || !accepts(j) {
                        continue;
                    }
                    let s = match mp.open_at_end {
                        None => span(j),
                        Some(older) => end_span(j, older),
                    };
                    if let Some((lo, hi)) = s {
                        let base = g as usize * (nb + 1);
                        acc.diff[base + lo] += 1;
                        acc.diff[base + hi + 1] -= 1;
                    }
                }
            }
            Kernel::Sum { closed_anchor, column } => {
                let anchor = if closed_anchor { closed } else { filed };
                let amounts = &t.amounts[column][start..end];
                for (j, &g) in gid.iter().enumerate() {
                    if g == u32::MAX || amounts[j] == NO_AMOUNT || !accepts(j) {
                        continue;
                    }
                    if let Some(b) = bucket(anchor[j]) {
                        let cell = g as usize * nb + b;
                        acc.value[cell] += amounts[j];
                        acc.contributors[cell] += 1;
                        acc.max_single[cell] = acc.max_single[cell].max(amounts[j]);
                    }
                }
            }
            Kernel::ActiveDays => {
                for (j, &g) in gid.iter().enumerate() {
                    if g == u32::MAX || closed[j] == OPEN || !accepts(j) {
                        continue;
                    }
                    if let Some((lo, hi)) = span(j) {
                        let amount = i64::from(closed[j]) - i64::from(filed[j]);
                        for b in lo..=hi {
                            let cell = g as usize * nb + b;
                            acc.value[cell] += amount;
                            acc.contributors[cell] += 1;
                            acc.max_single[cell] = acc.max_single[cell].max(amount);
                        }
                    }
                }
            }
        }
    }

    /// Turns accumulators into labelled groups, sorted by key.
    fn output(&self, t: &CaseTable, measures: &[&Measure], accs: Accs) -> Vec<GroupOut> {
        let nb = self.nb;
        // Finish "active" counts: prefix sums of the difference arrays.
        let mut active: Vec<Vec<i64>> = Vec::new();
        for (mp, acc) in self.measures.iter().zip(&accs.measures) {
            if let Kernel::ActiveCount = mp.kernel {
                let mut counts = vec![0i64; accs.groups * nb];
                for g in 0..accs.groups {
                    let mut run = 0;
                    for b in 0..nb {
                        run += acc.diff[g * (nb + 1) + b];
                        counts[g * nb + b] = run;
                    }
                }
                active.push(counts);
            }
        }
        let mut active = active.iter();
        let mut partial_of: Vec<Box<dyn Fn(usize, usize) -> Partial + '_>> = Vec::with_capacity(measures.len());
        for (mp, acc) in self.measures.iter().zip(&accs.measures) {
            let count_partial = |n: i64| Partial { value: n, contributors: n as u64, max_single: i64::from(n > 0) };
            partial_of.push(match mp.kernel {
                Kernel::Count { .. } => Box::new(move |g, b| count_partial(acc.value[g * nb + b])),
                Kernel::ActiveCount => {
                    let counts = active.next().map_or(&[][..], |c| c.as_slice());
                    Box::new(move |g, b| count_partial(counts[g * nb + b]))
                }
                Kernel::Days { .. } | Kernel::ActiveDays | Kernel::Sum { .. } => Box::new(move |g, b| {
                    let cell = g * nb + b;
                    Partial {
                        value: acc.value[cell],
                        contributors: acc.contributors[cell],
                        max_single: acc.max_single[cell],
                    }
                }),
            });
        }
        let mut out = Vec::new();
        for g in 0..accs.groups {
            let packed = if self.dense { g as u64 } else { accs.packed[g] };
            for b in 0..nb {
                let partials: Vec<Partial> = partial_of.iter().map(|f| f(g, b)).collect();
                if partials.iter().all(|p| p.contributors == 0) {
                    continue;
                }
                let key = self
                    .group_by
                    .iter()
                    .map(|d| {
                        if d.is_time() {
                            time_label(*d, self.grain, self.first_month, b as u32)
                        } else {
                            let (_, card, stride) =
                                self.dims.iter().find(|(x, _, _)| x == d).copied().unwrap_or((*d, 1, 1));
                            t.label(*d, ((packed / stride) % card) as u32)
                        }
                    })
                    .collect();
                out.push(GroupOut { key, partials });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

/// The label of a time dimension for sub-period `bucket` of a period starting at month index `pa`.
pub(crate) fn time_label(d: Dimension, grain: TimeGrain, pa: i32, bucket: u32) -> String {
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
    use proptest::prelude::*;
    use shuzhu_policy::indicator::{measure, measures};
    use shuzhu_policy::period::{month_of_day, parse_day};
    use std::collections::BTreeMap;

    /// One test case row: (court, region, cause, type index, filed, closed, deadline, method index, flag
    /// bits of the boolean fields, amounts of SUM_FIELDS).
    type Row = (String, u32, String, u8, i32, i32, i32, u8, u8, [i64; 2]);

    fn build(rows: &[Row]) -> CaseTable {
        let mut t = CaseTable::with_capacity(rows.len());
        let mut courts: Dict<String> = Dict::new("court");
        let mut causes: Dict<String> = Dict::new("cause");
        let mut regions: Dict<u32> = Dict::new("region");
        for (court, region, cause, ty, filed, closed, deadline, method, flags, amounts) in rows {
            let c = courts.code(court.as_str(), &mut t.courts).unwrap();
            let k = causes.code(cause.as_str(), &mut t.causes).unwrap();
            let r = regions.code(region, &mut t.regions).unwrap();
            let f = Fields {
                court,
                cause,
                region: *region,
                type_code: *ty,
                method: *method,
                filed: *filed,
                closed: *closed,
                deadline: *deadline,
                flags: *flags,
                amounts: *amounts,
            };
            t.push(c, r, k, &f);
        }
        t
    }

    fn day(s: &str) -> i32 {
        parse_day(s).unwrap()
    }

    fn row(court: &str, region: u32, filed: &str, closed: Option<&str>, deadline: &str) -> Row {
        let c = closed.map_or(OPEN, day);
        (
            court.into(),
            region,
            "c".into(),
            0,
            day(filed),
            c,
            day(deadline),
            if c == OPEN { NO_METHOD } else { 0 },
            0,
            [NO_AMOUNT; 2],
        )
    }

    /// The brute-force definition: every case, every measure, every month of the period, by labels.
    fn naive(
        rows: &[Row],
        measures: &[&Measure],
        group_by: &[Dimension],
        period: Period,
        filters: &[Filter],
    ) -> Vec<GroupOut> {
        let mut acc: BTreeMap<Vec<String>, Vec<Partial>> = BTreeMap::new();
        let first_day = |m: Month| days_from_civil(m.year(), m.month(), 1);
        for (court, region, cause, ty, filed, closed, deadline, method, bits, amounts) in rows {
            let tc = TYPE_CODES[*ty as usize];
            let label = |d: Dimension| -> String {
                match d {
                    Dimension::Region => format!("{region:06}"),
                    Dimension::Court => court.clone(),
                    Dimension::Cause => cause.clone(),
                    Dimension::TypeCode => tc.to_string(),
                    Dimension::Division => schema::division_of(tc).unwrap().to_string(),
                    Dimension::Instance => schema::instance_of(tc).unwrap().to_string(),
                    _ => unreachable!(),
                }
            };
            if !filters.iter().all(|f| f.values.contains(&label(f.dimension))) {
                continue;
            }
            for (mi, m) in measures.iter().enumerate() {
                let is_closed = *closed != OPEN;
                let ok = match m.condition {
                    Condition::Any => true,
                    Condition::ClosedOnTime => is_closed && closed <= deadline,
                    Condition::Cases { type_codes, closure_methods, flags } => {
                        flags.iter().all(|(name, v)| {
                            let i = FLAG_FIELDS.iter().position(|f| f == name).unwrap();
                            (bits & flag_bit(i) != 0) == *v
                        }) && (type_codes.is_empty() || type_codes.contains(&tc))
                            && (closure_methods.is_empty()
                                || (*method != NO_METHOD
                                    && closure_methods.contains(&CLOSURE_METHODS[*method as usize])))
                    }
                    Condition::Mediations { .. } => unreachable!(),
                };
                if !ok {
                    continue;
                }
                let amount = match m.accumulate {
                    Accumulate::Count => 1,
                    Accumulate::TrialDays if is_closed => i64::from(closed - filed),
                    Accumulate::TrialDays => continue,
                    Accumulate::Sum { field } => match amounts[SUM_FIELDS.iter().position(|f| *f == field).unwrap()] {
                        NO_AMOUNT => continue,
                        a => a,
                    },
                    Accumulate::Total { .. } => unreachable!(),
                };
                for month in period.iter() {
                    let next = first_day(month.next());
                    let inside = match m.anchor {
                        Anchor::Filed => month_of_day(*filed) == month,
                        Anchor::Closed => is_closed && month_of_day(*closed) == month,
                        Anchor::Active => *filed < next && *closed >= first_day(month),
                        Anchor::OpenAtEnd { older_than_days } => {
                            let grain = time_grain(group_by);
                            let last = period
                                .iter()
                                .filter(|x| match grain {
                                    TimeGrain::Whole => true,
                                    TimeGrain::Year => x.year() == month.year(),
                                    TimeGrain::Quarter => x.year() == month.year() && x.quarter() == month.quarter(),
                                    TimeGrain::Month => *x == month,
                                })
                                .max();
                            let end = next - 1;
                            last == Some(month) && end - *filed > older_than_days && *closed > end
                        }
                        Anchor::Accepted | Anchor::Year => unreachable!(),
                    };
                    if !inside {
                        continue;
                    }
                    let key: Vec<String> = group_by
                        .iter()
                        .map(|d| match d {
                            Dimension::Year => month.year().to_string(),
                            Dimension::Quarter => format!("{}-Q{}", month.year(), month.quarter()),
                            Dimension::Month => month.to_string(),
                            d => label(*d),
                        })
                        .collect();
                    let slot = acc.entry(key).or_insert_with(|| vec![Partial::default(); measures.len()]);
                    // Time grains coarser than a month: an active case counts once per sub-period.
                    let grain = time_grain(group_by);
                    let bucket_months: Vec<Month> = period
                        .iter()
                        .filter(|x| match grain {
                            TimeGrain::Whole => true,
                            TimeGrain::Year => x.year() == month.year(),
                            TimeGrain::Quarter => x.year() == month.year() && x.quarter() == month.quarter(),
                            TimeGrain::Month => *x == month,
                        })
                        .collect();
                    // Count the case in this sub-period only at the first of its months it is in.
                    let earlier_in_bucket = bucket_months.iter().any(|x| {
                        *x < month
                            && match m.anchor {
                                Anchor::Active => *filed < first_day(x.next()) && *closed >= first_day(*x),
                                _ => false,
                            }
                    });
                    if earlier_in_bucket {
                        continue;
                    }
                    let p = &mut slot[mi];
                    p.value += amount;
                    p.contributors += 1;
                    p.max_single = p.max_single.max(amount);
                }
            }
        }
        acc.into_iter().map(|(key, partials)| GroupOut { key, partials }).collect()
    }

    #[test]
    fn active_counts_pending_at_start_plus_filed_in_each_month() {
        let rows = [
            row("闽0203", 350203, "2022-12-20", Some("2023-02-10"), "2023-03-01"),
            row("闽0203", 350203, "2023-01-15", None, "2023-04-01"),
            row("闽0203", 350203, "2023-03-01", Some("2023-03-02"), "2023-03-01"),
            row("闽0203", 350203, "2022-01-01", Some("2022-12-31"), "2022-12-31"),
        ];
        let t = build(&rows);
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
        assert_eq!(out, naive(&rows, &ms, &[Dimension::Month], p, &[]));
    }

    #[test]
    fn filters_and_trial_days() {
        let rows = [
            row("闽0203", 350203, "2023-01-01", Some("2023-01-11"), "2023-06-01"),
            row("闽0213", 350213, "2023-01-01", Some("2023-01-21"), "2023-06-01"),
        ];
        let t = build(&rows);
        let p = Period::new(Month::parse("2023-01").unwrap(), Month::parse("2023-12").unwrap()).unwrap();
        let ms = [measure("cases.trial_days").unwrap()];
        let f = [Filter { dimension: Dimension::Region, values: vec!["350213".into()] }];
        let out = t.aggregate(&ms, &[Dimension::Court, Dimension::Year], p, &f).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, vec!["闽0213".to_string(), "2023".to_string()]);
        assert_eq!(out[0].partials[0], Partial { value: 20, contributors: 1, max_single: 20 });
    }

    #[test]
    fn divisions_merge_their_case_types() {
        let mut rows = vec![row("闽0203", 350203, "2023-01-01", Some("2023-01-11"), "2023-06-01"); 2];
        rows[1].3 = 1; // 民终: same division 民事 as 民初
        let t = build(&rows);
        let p = Period::new(Month::parse("2023-01").unwrap(), Month::parse("2023-01").unwrap()).unwrap();
        let out = t.aggregate(&[measure("cases.closed").unwrap()], &[Dimension::Division], p, &[]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].partials[0].value, 2);
    }

    #[test]
    fn the_walker_reads_what_postcard_decodes() {
        let mut values = vec![Value::Absent; CASES.fields.len()];
        values[field_index("case_no")] = Value::Text("(2023)闽0213民初1号".into());
        values[field_index("court_code")] = Value::Text("闽0213".into());
        values[field_index("region_code")] = Value::Int(350213);
        values[field_index("type_code")] = Value::Enum(3);
        values[field_index("cause")] = Value::Text("民间借贷纠纷".into());
        values[field_index("filed_on")] = Value::Day(-5);
        values[field_index("closed_on")] = Value::Day(19_500);
        values[field_index("deadline_on")] = Value::Day(19_400);
        values[field_index("closure_method")] = Value::Enum(2);
        values[field_index("appealed")] = Value::Bool(true);
        values[field_index("claim_amount")] = Value::Int(-1_234_567_890_123);
        values[field_index("plaintiff_id_no")] = Value::IdDerived { birth_year: 1990, sex: 2, city: 3502 };
        let rec = Record { values };
        let bytes = postcard::to_allocvec(&rec).unwrap();
        let idx = FieldIdx::new();
        let a = walk(&bytes, &idx).unwrap();
        let b = from_record(&rec, &idx);
        assert_eq!(
            (a.court, a.cause, a.region, a.type_code, a.method, a.filed, a.closed, a.deadline),
            (b.court, b.cause, b.region, b.type_code, b.method, b.filed, b.closed, b.deadline)
        );
        assert_eq!((a.court, a.region, a.method, a.filed), ("闽0213", 350213, 2, -5));
        assert!(walk(&bytes[..bytes.len() / 3], &idx).is_none());
    }

    #[test]
    fn load_reads_the_store() {
        use crate::store::SledStore;
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut batch = Vec::new();
        for i in 0..10 {
            let mut values = vec![Value::Absent; CASES.fields.len()];
            values[field_index("court_code")] = Value::Text(format!("闽02{}", i % 3));
            values[field_index("region_code")] = Value::Int(350200 + i % 2);
            values[field_index("type_code")] = Value::Enum(0);
            values[field_index("cause")] = Value::Text("劳动争议".into());
            values[field_index("filed_on")] = Value::Day(19_000 + i as i32);
            values[field_index("deadline_on")] = Value::Day(19_100);
            batch.push((format!("k{i}").into_bytes(), postcard::to_allocvec(&Record { values }).unwrap()));
        }
        store.upsert("cases", &batch).unwrap();
        let t = CaseTable::load(&store).unwrap();
        assert_eq!(t.len(), 10);
        assert_eq!(t.courts(), vec!["闽020", "闽021", "闽022"]);
        assert_eq!(t.regions(), vec!["350200", "350201"]);
        assert_eq!(t.data_until().unwrap(), format_day(19_009));
        assert_eq!(t.data_from().unwrap(), format_day(19_000));
        assert_eq!(CaseTable::default().data_from(), None);
        store.upsert("cases", &[(b"bad".to_vec(), vec![0xff, 0xff])]).unwrap();
        assert!(matches!(CaseTable::load(&store), Err(EngineError::Corrupt(_))));
    }

    fn arb_row() -> impl Strategy<Value = Row> {
        let start = day("2018-06-01");
        let amount = || prop::option::of(0..5_000_000i64);
        (
            0..3usize,
            0..3u32,
            0..3usize,
            0..12u8,
            0..1200i32,
            prop::option::of(0..800i32),
            0..400i32,
            0..12u8,
            0..8u8,
            amount(),
            amount(),
        )
            .prop_map(move |(c, r, k, ty, f, closed, dl, method, bits, req, col)| {
                let filed = start + f;
                let closed = closed.map_or(OPEN, |c| filed + c);
                let method = if closed == OPEN { NO_METHOD } else { method };
                (
                    ["闽0203", "闽0206", "闽0213"][c].to_string(),
                    350203 + r,
                    ["劳动争议", "离婚纠纷", "盗窃罪"][k].to_string(),
                    ty,
                    filed,
                    closed,
                    filed + dl,
                    method,
                    bits << 1,
                    [req.unwrap_or(NO_AMOUNT), col.unwrap_or(NO_AMOUNT)],
                )
            })
    }

    fn arb_filter() -> impl Strategy<Value = Vec<Filter>> {
        let f = |d: Dimension, pool: &'static [&'static str]| {
            prop::sample::subsequence(pool, 1..=pool.len())
                .prop_map(move |v| Filter { dimension: d, values: v.iter().map(|s| s.to_string()).collect() })
        };
        prop::collection::vec(
            prop_oneof![
                f(Dimension::Region, &["350203", "350205", "350299"]),
                f(Dimension::Court, &["闽0203", "闽0213"]),
                f(Dimension::Cause, &["劳动争议", "盗窃罪"]),
                f(Dimension::Division, &["民事", "执行", "行政"]),
                f(Dimension::Instance, &["一审", "二审"]),
                f(Dimension::TypeCode, &["民初", "执", "刑初", "民终"]),
            ],
            0..3,
        )
        .prop_map(|mut fs| {
            // One filter per dimension (the request form the node receives).
            let mut seen = Vec::new();
            fs.retain(|f| {
                let fresh = !seen.contains(&f.dimension);
                seen.push(f.dimension);
                fresh
            });
            fs
        })
    }

    const GROUPINGS: &[&[Dimension]] = &[
        &[],
        &[Dimension::Region],
        &[Dimension::Region, Dimension::Year],
        &[Dimension::Cause, Dimension::Month],
        &[Dimension::Quarter, Dimension::Court],
        &[Dimension::Division, Dimension::Instance, Dimension::Year],
        &[Dimension::TypeCode, Dimension::Cause, Dimension::Court, Dimension::Region],
        &[Dimension::Month, Dimension::Year],
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn equals_brute_force(
            rows in prop::collection::vec(arb_row(), 0..120),
            grouping in 0..GROUPINGS.len(),
            from in 0..40i32,
            len in 1..30i32,
            filters in arb_filter(),
        ) {
            let t = build(&rows);
            let pa = Month::parse("2018-03").unwrap().index() + from;
            let period = Period::new(Month::from_index(pa), Month::from_index(pa + len - 1)).unwrap();
            let ms: Vec<&Measure> = measures().into_iter().filter(|m| m.dataset == "cases").collect();
            let group_by = GROUPINGS[grouping];
            let fast = t.aggregate(&ms, group_by, period, &filters).unwrap();
            prop_assert_eq!(&fast, &naive(&rows, &ms, group_by, period, &filters));
            // The hash path (many groups) and the two-thread path agree with the dense single pass.
            let mut plan = Plan::new(&t, &ms, group_by, period, &filters).unwrap();
            plan.dense = false;
            let hashed = plan.output(&t, &ms, plan.run(&t, 0..t.len()));
            prop_assert_eq!(&fast, &hashed);
            let plan = Plan::new(&t, &ms, group_by, period, &filters).unwrap();
            let mid = t.len() / 3;
            let split = plan.output(&t, &ms, plan.run(&t, 0..mid).merge(plan.run(&t, mid..t.len())));
            prop_assert_eq!(&fast, &split);
        }
    }
}
