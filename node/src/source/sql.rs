//! SQL generated from a measure's definition, for push-down to PostgreSQL.
//!
//! Every statement reads the court's relation through one inner `SELECT` that maps the court's columns
//! onto the schema's fields and works out, per row, whether import would have accepted it (`ok`): the
//! same type, enumeration, date-order and presence rules as [`crate::record::validate`], written in
//! SQL. Only the fields below are ever named ([`read_fields`]): no personal (L4) field, and no case or
//! staff identifier. The outer query joins the rows to the period's sub-periods (passed as arrays of
//! day numbers) by the measure's anchor, applies the measure's condition and the request's filters,
//! and groups by the requested dimensions. Every value from a request or a mapping is a bind
//! parameter; the only text spliced into SQL is quoted identifiers from the configuration (checked to
//! be plain identifiers) and constants of this module.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use shuzhu_policy::dimension::{Dimension, TimeGrain, time_grain};
use shuzhu_policy::indicator::{Accumulate, Anchor, Condition, Measure};
use shuzhu_policy::period::{Month, Period, days_from_civil};
use shuzhu_policy::schema::{self, Dataset, FieldType, Grade, TYPE_CODES};

use crate::engine::Filter;
use crate::source::config::DatasetMapping;

/// Identifiers (L3, linkable to a case, a person or staff) the node never reads: aggregates do not
/// need them.
const NEVER_READ: &[&str] = &["case_no", "origin_case_no", "judge_id", "mediation_id", "mediator_id"];

/// The schema fields the node reads from the court's relation for `dataset`: every field below L4
/// except identifiers.
pub fn read_fields(dataset: &Dataset) -> Vec<&'static schema::Field> {
    dataset.fields.iter().filter(|f| f.grade < Grade::L4 && !NEVER_READ.contains(&f.name)).collect()
}

/// How the court stores a column, from its PostgreSQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// text, varchar, char.
    Text,
    /// date.
    Date,
    /// timestamp, timestamptz (the date part is used).
    Timestamp,
    /// boolean.
    Bool,
    /// smallint, integer, bigint.
    Int,
    /// numeric.
    Numeric,
}

impl ColumnKind {
    /// The kind of a PostgreSQL type name (`pg_type.typname`), when the node can read it.
    pub fn of(typname: &str) -> Option<Self> {
        Some(match typname {
            "text" | "varchar" | "bpchar" | "name" => ColumnKind::Text,
            "date" => ColumnKind::Date,
            "timestamp" | "timestamptz" => ColumnKind::Timestamp,
            "bool" => ColumnKind::Bool,
            "int2" | "int4" | "int8" => ColumnKind::Int,
            "numeric" => ColumnKind::Numeric,
            _ => return None,
        })
    }

    /// Whether a field of type `ty` can be read from a column of this kind.
    pub fn fits(self, ty: FieldType) -> bool {
        use ColumnKind as K;
        match ty {
            FieldType::Text => self == K::Text,
            FieldType::Region => matches!(self, K::Text | K::Int),
            FieldType::Enum(_) => matches!(self, K::Text | K::Int),
            FieldType::Date => matches!(self, K::Text | K::Date | K::Timestamp),
            FieldType::Bool => matches!(self, K::Text | K::Bool | K::Int),
            FieldType::Amount => matches!(self, K::Text | K::Int | K::Numeric),
            FieldType::Integer => matches!(self, K::Text | K::Int),
        }
    }
}

/// A value bound to a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// text.
    Text(String),
    /// text[].
    Texts(Vec<String>),
    /// int4[].
    Ints(Vec<i32>),
    /// int4.
    Int(i32),
}

/// A statement and its parameters.
#[derive(Clone, Debug, Default)]
pub struct Statement {
    /// SQL text.
    pub sql: String,
    /// `$1`, `$2`, … in order.
    pub params: Vec<Param>,
}

impl Statement {
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }
}

/// `"name"` with any `"` doubled (names are checked to be plain identifiers already).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"` of a relation `schema.name` or `name`.
pub fn quote_relation(rel: &str) -> String {
    rel.split('.').map(quote_ident).collect::<Vec<_>>().join(".")
}

/// The court's relation mapped for one dataset, with the kind of each read column.
#[derive(Clone, Debug)]
pub struct Mapped {
    /// The dataset.
    pub dataset: &'static Dataset,
    /// The mapping.
    pub mapping: DatasetMapping,
    /// Kind of the column of each read field.
    pub kinds: BTreeMap<&'static str, ColumnKind>,
}

/// Day number of `DATE '1970-01-01'` arithmetic: `date - DATE '1970-01-01'` is the engine's day number.
const EPOCH: &str = "DATE '1970-01-01'";
/// A well-formed `YYYY-MM-DD` with year 0001–9999, month 01–12, day 01–31.
const DATE_RE: &str = "'^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'";

impl Mapped {
    fn col(&self, field: &str) -> String {
        format!("c.{}", quote_ident(self.mapping.column(field)))
    }

    /// `(value, valid)` SQL of one field: the value as the engine sees it (NULL when absent or
    /// invalid) and whether import would accept the cell.
    fn field_sql(&self, st: &mut Statement, f: &schema::Field) -> (String, String) {
        let x = self.col(f.name);
        let kind = self.kinds.get(f.name).copied().unwrap_or(ColumnKind::Text);
        let absent =
            if kind == ColumnKind::Text { format!("({x} IS NULL OR {x} = '')") } else { format!("{x} IS NULL") };
        // The stored spelling mapped to the schema's label (text), for enumerations and booleans.
        let mapped = |st: &mut Statement| -> String {
            let raw = format!("{x}::text");
            match self.mapping.values.get(f.name).filter(|m| !m.is_empty()) {
                None => raw,
                Some(map) => {
                    let mut s = format!("(CASE {raw}");
                    for (stored, label) in map {
                        let a = st.bind(Param::Text(stored.clone()));
                        let b = st.bind(Param::Text(label.clone()));
                        let _ = write!(s, " WHEN {a} THEN {b}");
                    }
                    let _ = write!(s, " ELSE {raw} END)");
                    s
                }
            }
        };
        let value = match f.ty {
            FieldType::Text => format!("{x}::text"),
            FieldType::Region => match kind {
                ColumnKind::Int => format!("(CASE WHEN {x} BETWEEN 0 AND 999999 THEN lpad({x}::text, 6, '0') END)"),
                _ => format!("(CASE WHEN {x} ~ '^[0-9]{{6}}$' THEN {x}::text END)"),
            },
            FieldType::Enum(labels) => {
                let m = mapped(st);
                let l = st.bind(Param::Texts(labels.iter().map(|s| s.to_string()).collect()));
                format!("(CASE WHEN {m} = ANY({l}::text[]) THEN {m} END)")
            }
            FieldType::Date => match kind {
                ColumnKind::Date => format!("({x} - {EPOCH})"),
                ColumnKind::Timestamp => format!("({x}::date - {EPOCH})"),
                // Nested CASEs: PostgreSQL does not promise to evaluate AND left to right, and a cast
                // of a malformed date would fail the whole statement.
                _ => format!(
                    "(CASE WHEN {x} ~ {DATE_RE} THEN CASE WHEN substr({x}, 9, 2)::int <= extract(day from make_date(substr({x}, 1, 4)::int, substr({x}, 6, 2)::int, 1) + interval '1 month' - interval '1 day')::int THEN ({x}::date - {EPOCH}) END END)"
                ),
            },
            FieldType::Bool => {
                if kind == ColumnKind::Bool && !self.mapping.values.contains_key(f.name) {
                    x.clone()
                } else {
                    let m = mapped(st);
                    format!("(CASE {m} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END)")
                }
            }
            FieldType::Amount => match kind {
                ColumnKind::Int => format!("(CASE WHEN {x} >= 0 AND {x} < 10000000000000 THEN {x}::int8 * 100 END)"),
                ColumnKind::Numeric => format!(
                    "(CASE WHEN {x} >= 0 AND {x} < 10000000000000 THEN CASE WHEN {x} * 100 = trunc({x} * 100) THEN ({x} * 100)::int8 END END)"
                ),
                _ => {
                    format!("(CASE WHEN {x} ~ '^[0-9]{{1,13}}(\\.[0-9]{{1,2}})?$' THEN ({x}::numeric * 100)::int8 END)")
                }
            },
            FieldType::Integer => match kind {
                ColumnKind::Int => format!("(CASE WHEN {x} BETWEEN 0 AND 4294967295 THEN {x}::int8 END)"),
                _ => format!(
                    "(CASE WHEN {x} ~ '^[0-9]{{1,10}}$' THEN CASE WHEN {x}::int8 <= 4294967295 THEN {x}::int8 END END)"
                ),
            },
        };
        let present_ok = match f.ty {
            // Text: no control characters, no leading or trailing space, at most 200 characters.
            FieldType::Text => {
                format!("({x} !~ '[\\x01-\\x1f\\x7f-\\x9f]' AND {x} !~ '^\\s|\\s$' AND char_length({x}) <= 200)")
            }
            _ => format!("{value} IS NOT NULL"),
        };
        let valid =
            format!("(CASE WHEN {absent} THEN {} ELSE {present_ok} END)", if f.optional { "TRUE" } else { "FALSE" });
        let value = match f.ty {
            // An L3 text (a judicial confirmation case number) only counts as present or not: its
            // value never leaves the database.
            FieldType::Text if f.grade >= Grade::L3 => format!("(CASE WHEN {absent} THEN NULL ELSE TRUE END)"),
            FieldType::Text => format!("(CASE WHEN {absent} THEN NULL ELSE {value} END)"),
            _ => value,
        };
        (value, valid)
    }

    /// The inner `SELECT`: one column `f_<field>` per read field and `ok`, over the court's relation.
    pub fn rows(&self, st: &mut Statement) -> String {
        let mut cols = Vec::new();
        let mut valid = Vec::new();
        let mut values = BTreeMap::new();
        for f in read_fields(self.dataset) {
            let (v, ok) = self.field_sql(st, f);
            values.insert(f.name, v.clone());
            cols.push(format!("{v} AS f_{}", f.name));
            valid.push(ok);
        }
        // Cross-field rules of import.
        let v = |n: &str| values.get(n).cloned().unwrap_or_else(|| "NULL".into());
        match self.dataset.name {
            "cases" => {
                let (filed, closed, deadline, method) =
                    (v("filed_on"), v("closed_on"), v("deadline_on"), v("closure_method"));
                valid.push(format!("NOT coalesce({closed} < {filed}, FALSE)"));
                valid.push(format!("NOT coalesce({deadline} < {filed}, FALSE)"));
                valid.push(format!("(({closed}) IS NULL) = (({method}) IS NULL)"));
            }
            "mediations" => {
                let (acc, closed, result) = (v("accepted_on"), v("closed_on"), v("result"));
                valid.push(format!("NOT coalesce({closed} < {acc}, FALSE)"));
                valid.push(format!("(({closed}) IS NULL) = (({result}) IS NULL)"));
            }
            _ => {}
        }
        // `OFFSET 0` keeps the planner from pulling this query up into the outer one, so every
        // field is worked out once per row, not once per row and sub-period.
        format!(
            "SELECT {}, ({}) AS ok FROM {} c OFFSET 0",
            cols.join(", "),
            valid.join(" AND "),
            quote_relation(self.mapping.relation())
        )
    }
}

/// Sub-periods of `period` under the grain of `group_by`: (first day, last day, bucket index).
pub fn buckets(period: Period, group_by: &[Dimension]) -> Vec<(i32, i32, i32)> {
    let grain = time_grain(group_by);
    let (pa, pb) = (period.from().index(), period.to().index());
    let bucket_of = |m: i32| -> i32 {
        match grain {
            TimeGrain::Whole => 0,
            TimeGrain::Year => m.div_euclid(12) - pa.div_euclid(12),
            TimeGrain::Quarter => m.div_euclid(3) - pa.div_euclid(3),
            TimeGrain::Month => m - pa,
        }
    };
    let first_day = |m: i32| {
        let mo = Month::from_index(m);
        days_from_civil(mo.year(), mo.month(), 1)
    };
    let mut out: Vec<(i32, i32, i32)> = Vec::new();
    for m in pa..=pb {
        let b = bucket_of(m);
        let (lo, hi) = (first_day(m), first_day(m + 1) - 1);
        match out.last_mut() {
            Some(last) if last.2 == b => last.1 = hi,
            _ => out.push((lo, hi, b)),
        }
    }
    out
}

/// The record dimension's column a query groups by (type-derived dimensions group by the type code
/// and are labelled afterwards).
fn group_column(d: Dimension) -> Option<&'static str> {
    Some(match d {
        Dimension::Region => "f_region_code",
        Dimension::Court => "f_court_code",
        Dimension::Cause => "f_cause",
        Dimension::TypeCode | Dimension::Division | Dimension::Instance => "f_type_code",
        Dimension::DisputeType => "f_dispute_type",
        Dimension::Year | Dimension::Quarter | Dimension::Month => return None,
    })
}

/// Which dimensions a dataset has.
pub fn dimension_allowed(dataset: &str, d: Dimension) -> bool {
    d.is_time()
        || match dataset {
            "mediations" => matches!(d, Dimension::Region | Dimension::DisputeType),
            _ => !matches!(d, Dimension::DisputeType),
        }
}

/// The distinct grouping columns of `group_by`, in a fixed order.
pub fn group_columns(group_by: &[Dimension]) -> Vec<&'static str> {
    let mut cols: Vec<&'static str> = group_by.iter().filter_map(|d| group_column(*d)).collect();
    cols.sort_unstable();
    cols.dedup();
    cols
}

/// The type codes whose label under `d` is one of `values`.
pub fn type_codes_matching(d: Dimension, values: &[String]) -> Vec<String> {
    TYPE_CODES
        .iter()
        .filter(|tc| {
            let label = match d {
                Dimension::Division => schema::division_of(tc).unwrap_or(""),
                Dimension::Instance => schema::instance_of(tc).unwrap_or(""),
                _ => tc,
            };
            values.iter().any(|v| v == label)
        })
        .map(|tc| tc.to_string())
        .collect()
}

/// The statement computing `m` grouped by `group_by` over `period` for the rows that pass `filters`.
/// Its result rows: one text column per [`group_columns`], the bucket index (int4), then value,
/// contributors and largest single contribution (int8).
pub fn measure_statement(
    mapped: &Mapped,
    m: &Measure,
    group_by: &[Dimension],
    period: Period,
    filters: &[Filter],
) -> Statement {
    let mut st = Statement::default();
    let rows = mapped.rows(&mut st);
    let b = buckets(period, group_by);
    let date = |n: &str| format!("n.f_{n}");
    let (filed, closed) = if mapped.dataset.name == "mediations" {
        (date("accepted_on"), date("closed_on"))
    } else {
        (date("filed_on"), date("closed_on"))
    };
    // A dated anchor falls in one sub-period, found by binary search over their first days
    // (`width_bucket`); a stock anchor (open at some time, open at the end) in several, found by joining
    // the sub-periods.
    let first_days = Param::Ints(b.iter().map(|x| x.0).collect());
    let last_day = b.last().map_or(0, |x| x.1);
    let mut wh = vec!["n.ok".to_string()];
    let (from, bucket) = match m.anchor {
        Anchor::Filed | Anchor::Accepted | Anchor::Closed => {
            let day = if m.anchor == Anchor::Closed { &closed } else { &filed };
            let lows = st.bind(first_days);
            let end = st.bind(Param::Int(last_day));
            wh.push(format!("{day} >= ({lows}::int4[])[1] AND {day} <= {end}::int4"));
            (String::new(), format!("(width_bucket({day}, {lows}::int4[]) - 1)::int4"))
        }
        Anchor::Active | Anchor::OpenAtEnd { .. } => {
            let lo = st.bind(first_days);
            let hi = st.bind(Param::Ints(b.iter().map(|x| x.1).collect()));
            let ix = st.bind(Param::Ints(b.iter().map(|x| x.2).collect()));
            let on = match m.anchor {
                Anchor::OpenAtEnd { older_than_days } => format!(
                    "{filed} <= b.hi AND ({closed} IS NULL OR {closed} > b.hi) AND b.hi - {filed} > {older_than_days}"
                ),
                _ => format!("{filed} <= b.hi AND ({closed} IS NULL OR {closed} >= b.lo)"),
            };
            (
                format!(" JOIN unnest({lo}::int4[], {hi}::int4[], {ix}::int4[]) AS b(lo, hi, i) ON {on}"),
                "b.i".to_string(),
            )
        }
        // Yearly figures are never pushed down (population stays in the store); match nothing.
        Anchor::Year => {
            wh.push("FALSE".into());
            (String::new(), "0".to_string())
        }
    };
    match m.condition {
        Condition::Any => {}
        Condition::ClosedOnTime => wh.push(format!("{closed} IS NOT NULL AND {closed} <= n.f_deadline_on")),
        Condition::Cases { type_codes, closure_methods, flags } => {
            if !type_codes.is_empty() {
                let p = st.bind(Param::Texts(type_codes.iter().map(|s| s.to_string()).collect()));
                wh.push(format!("n.f_type_code = ANY({p}::text[])"));
            }
            if !closure_methods.is_empty() {
                let p = st.bind(Param::Texts(closure_methods.iter().map(|s| s.to_string()).collect()));
                wh.push(format!("n.f_closure_method = ANY({p}::text[])"));
            }
            for (name, value) in flags {
                // The catalogue only admits boolean fields here; an unknown one matches nothing.
                if read_fields(mapped.dataset).iter().any(|f| f.name == *name && f.ty == FieldType::Bool) {
                    wh.push(format!("n.f_{name} IS {}", if *value { "TRUE" } else { "NOT TRUE" }));
                } else {
                    wh.push("FALSE".into());
                }
            }
        }
        Condition::Mediations { results, confirmed } => {
            if !results.is_empty() {
                let p = st.bind(Param::Texts(results.iter().map(|s| s.to_string()).collect()));
                wh.push(format!("n.f_result = ANY({p}::text[])"));
            }
            match confirmed {
                Some(true) => wh.push("n.f_judicial_confirm_case_no IS NOT NULL".into()),
                Some(false) => wh.push("n.f_judicial_confirm_case_no IS NULL".into()),
                None => {}
            }
        }
    }
    // Filters: region, court and cause as the store engine takes them (the last filter of a dimension
    // decides), type-derived ones all apply.
    let mut last: BTreeMap<&'static str, &Filter> = BTreeMap::new();
    for f in filters {
        match f.dimension {
            Dimension::TypeCode | Dimension::Division | Dimension::Instance => {
                let p = st.bind(Param::Texts(type_codes_matching(f.dimension, &f.values)));
                wh.push(format!("n.f_type_code = ANY({p}::text[])"));
            }
            d => {
                if let Some(col) = group_column(d) {
                    if mapped.dataset.name == "cases" {
                        last.insert(col, f);
                    } else {
                        let p = st.bind(Param::Texts(f.values.clone()));
                        wh.push(format!("n.{col} = ANY({p}::text[])"));
                    }
                }
            }
        }
    }
    for (col, f) in last {
        let p = st.bind(Param::Texts(f.values.clone()));
        wh.push(format!("n.{col} = ANY({p}::text[])"));
    }
    let days = format!("({closed} - {filed})::int8");
    let (agg, extra) = match m.accumulate {
        Accumulate::Count => ("count(*)::int8, count(*)::int8, least(count(*), 1)::int8".to_string(), None),
        Accumulate::TrialDays => (
            format!("sum({days})::int8, count(*)::int8, greatest(max({days}), 0)::int8"),
            Some(format!("{closed} IS NOT NULL")),
        ),
        Accumulate::Sum { field } => {
            let col = format!("n.f_{field}");
            (
                format!("sum({col})::int8, count(*)::int8, greatest(max({col}), 0)::int8"),
                Some(format!("{col} IS NOT NULL")),
            )
        }
        Accumulate::Total { .. } => {
            ("count(*)::int8, count(*)::int8, least(count(*), 1)::int8".to_string(), Some("FALSE".into()))
        }
    };
    wh.extend(extra);
    let gcols: Vec<String> = group_columns(group_by).iter().map(|c| format!("n.{c}")).collect();
    let mut select = gcols.clone();
    select.push(format!("{bucket} AS bucket"));
    let mut group = gcols;
    group.push("bucket".into());
    st.sql = format!(
        "SELECT {sel}, {agg} FROM ({rows}) n{from} WHERE {wh} GROUP BY {grp}",
        sel = select.join(", "),
        wh = wh.join(" AND "),
        grp = group.join(", "),
    );
    st
}

/// The statement of the data span and counts: rows, rows accepted, earliest anchor day, latest day.
pub fn span_statement(mapped: &Mapped) -> Statement {
    let mut st = Statement::default();
    let rows = mapped.rows(&mut st);
    let (first, closed) = if mapped.dataset.name == "mediations" {
        ("n.f_accepted_on", "n.f_closed_on")
    } else {
        ("n.f_filed_on", "n.f_closed_on")
    };
    st.sql = format!(
        "SELECT count(*)::int8, count(*) FILTER (WHERE n.ok)::int8, min({first}) FILTER (WHERE n.ok)::int4, max(greatest({first}, coalesce({closed}, {first}))) FILTER (WHERE n.ok)::int4 FROM ({rows}) n"
    );
    st
}

/// The statement listing distinct values of a grouping column over accepted rows.
pub fn distinct_statement(mapped: &Mapped, column: &str) -> Statement {
    let mut st = Statement::default();
    let rows = mapped.rows(&mut st);
    st.sql = format!("SELECT DISTINCT n.{column} FROM ({rows}) n WHERE n.ok ORDER BY 1");
    st
}

/// The statements counting rows import would refuse, one per read field and cross-field rule:
/// `(label, statement)`; each returns one int8. Used by `check-source` (no value is ever selected).
pub fn exclusion_statements(mapped: &Mapped) -> Vec<(String, Statement)> {
    let mut out = Vec::new();
    for f in read_fields(mapped.dataset) {
        let mut st = Statement::default();
        let (_, valid) = mapped.field_sql(&mut st, f);
        st.sql =
            format!("SELECT count(*)::int8 FROM {} c WHERE NOT {valid}", quote_relation(mapped.mapping.relation()));
        out.push((format!("{}: not a valid value", f.name), st));
    }
    let rule = |label: &str, cond: &str| {
        let mut st = Statement::default();
        let rows = mapped.rows(&mut st);
        st.sql = format!("SELECT count(*)::int8 FROM ({rows}) n WHERE {cond}");
        (label.to_string(), st)
    };
    match mapped.dataset.name {
        "cases" => {
            out.push(rule("closed_on: before filed_on", "n.f_closed_on < n.f_filed_on"));
            out.push(rule("deadline_on: before filed_on", "n.f_deadline_on < n.f_filed_on"));
            out.push(rule(
                "closure_method: not given exactly when closed_on is",
                "(n.f_closed_on IS NULL) <> (n.f_closure_method IS NULL)",
            ));
        }
        "mediations" => {
            out.push(rule("closed_on: before accepted_on", "n.f_closed_on < n.f_accepted_on"));
            out.push(rule(
                "result: not given exactly when closed_on is",
                "(n.f_closed_on IS NULL) <> (n.f_result IS NULL)",
            ));
        }
        _ => {}
    }
    out
}

/// Every column of the court's relation the node reads, for `dataset`: (field, column).
pub fn read_columns(mapped_dataset: &Dataset, mapping: &DatasetMapping) -> Vec<(&'static str, String)> {
    read_fields(mapped_dataset).iter().map(|f| (f.name, mapping.column(f.name).to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shuzhu_policy::indicator::measure;
    use shuzhu_policy::schema::MEDIATIONS;

    fn mediations() -> Mapped {
        let mut kinds = BTreeMap::new();
        for f in read_fields(&MEDIATIONS) {
            kinds.insert(f.name, if f.ty == FieldType::Date { ColumnKind::Date } else { ColumnKind::Text });
        }
        Mapped {
            dataset: &MEDIATIONS,
            mapping: DatasetMapping { view: Some("shuzhu_mediations".into()), ..Default::default() },
            kinds,
        }
    }

    #[test]
    fn filter_values_and_labels_are_parameters_not_sql() {
        let m = measure("mediations.closed").unwrap();
        let hostile = "'; DROP TABLE x; --".to_string();
        let filters = [Filter { dimension: Dimension::Region, values: vec![hostile.clone()] }];
        let st = measure_statement(
            &mediations(),
            m,
            &[Dimension::Year],
            Period::from_wire(202301, 202412).unwrap(),
            &filters,
        );
        assert!(!st.sql.contains("DROP") && !st.sql.contains("成功"), "{}", st.sql);
        assert!(st.params.contains(&Param::Texts(vec![hostile])));
        // Every `$n` is bound.
        let highest = (1..=st.params.len()).rev().find(|n| st.sql.contains(&format!("${n}"))).unwrap_or(0);
        assert_eq!(highest, st.params.len());
    }

    #[test]
    fn no_personal_field_nor_identifier_is_read() {
        for ds in [&shuzhu_policy::schema::CASES, &MEDIATIONS] {
            for f in read_fields(ds) {
                assert!(f.grade < Grade::L4 && !NEVER_READ.contains(&f.name), "{}", f.name);
            }
        }
    }

    #[test]
    fn sub_periods_cover_the_period_in_order() {
        let p = Period::from_wire(202302, 202407).unwrap();
        let q = buckets(p, &[Dimension::Quarter]);
        assert_eq!(q.len(), 7);
        assert_eq!(q[0].0, days_from_civil(2023, 2, 1));
        assert_eq!(q[0].1, days_from_civil(2023, 3, 31));
        assert_eq!(q[6].1, days_from_civil(2024, 7, 31));
        assert!(q.windows(2).all(|w| w[0].1 + 1 == w[1].0 && w[0].2 + 1 == w[1].2));
        assert_eq!(buckets(p, &[]).len(), 1);
    }
}
