//! Typed, minimised records as a node stores them.
//!
//! A CSV row is validated field by field against the dataset's schema (shuzhu-policy) and becomes a
//! [`Record`]: one [`Value`] per schema field. Personal fields never reach the store in clear: the
//! schema says whether each is kept raw, replaced by a keyed pseudonym, reduced to coarse derived
//! attributes, or dropped. Two fields the schema drops are kept in a safe form by default: the free-text
//! `summary`, scrubbed as judgments are for publication, and `defendant_address`, generalised to the
//! code of its county ([`MinimiseOptions`]).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use shuzhu_policy::period::parse_day;
use shuzhu_policy::pii::{self, Masked, MaskingRule};
use shuzhu_policy::pseudonym::{self, PseudonymKey, Sex};
use shuzhu_policy::schema::{Dataset, Field, FieldType, Personal, Storage};

/// One stored value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// Empty cell, or a field the node does not keep.
    Absent,
    /// Text (codes, causes, pseudonyms).
    Text(String),
    /// Integer (counts; money in fen).
    Int(i64),
    /// Date as days since 1970-01-01.
    Day(i32),
    /// Boolean.
    Bool(bool),
    /// Index into the field's enumeration.
    Enum(u8),
    /// What is kept of a resident ID number: birth year, sex (1 male, 2 female), city of issue; or, for
    /// an organisation's credit code, zeros with `sex` 0.
    IdDerived {
        /// Year of birth (0 when not a person).
        birth_year: u16,
        /// 1 male, 2 female, 0 not a person.
        sex: u8,
        /// First four digits of the area code (0 when not a person).
        city: u16,
    },
}

/// A stored record: values in schema order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Values, one per schema field.
    pub values: Vec<Value>,
}

/// Why a field was refused. Messages never carry a personal value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field (column) name.
    pub field: String,
    /// What was wrong.
    pub reason: String,
}

fn problem(field: &Field, reason: impl Into<String>) -> FieldProblem {
    FieldProblem { field: field.name.to_string(), reason: reason.into() }
}

/// Shows a rejected value only for non-personal fields, truncated and masked.
fn shown(field: &Field, raw: &str) -> String {
    if field.personal == Personal::None {
        let short: String = raw.chars().take(24).collect();
        format!(" {:?}", shuzhu_policy::mask::mask_text(&short))
    } else {
        String::new()
    }
}

/// Parses yuan with up to two decimals into fen.
pub fn parse_fen(raw: &str) -> Option<i64> {
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if whole.is_empty() || whole.len() > 13 || frac.len() > 2 || !raw.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || (raw.contains('.') && frac.is_empty()) {
        return None;
    }
    let w: i64 = whole.parse().ok()?;
    let f: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().ok()? };
    Some(w * 100 + f)
}

/// Whether `raw` holds a control character (`char::is_control`: U+0000–U+001F, U+007F–U+009F), tested
/// on the UTF-8 bytes: U+0080–U+009F are encoded `C2 80`–`C2 9F`.
fn has_control(raw: &str) -> bool {
    let b = raw.as_bytes();
    // A pass without early exit (vectorised), then the rare two-byte controls only where `C2` occurs.
    b.iter().fold(false, |found, &x| found | (x < 0x20) | (x == 0x7F))
        || (b.contains(&0xC2) && b.windows(2).any(|w| w[0] == 0xC2 && w[1] <= 0x9F))
}

/// Whether `raw` holds an invisible format character (Unicode general category Cf: soft hyphen, Arabic
/// and Syriac marks, Mongolian vowel separator, zero-width space/joiners, direction marks and embeddings,
/// word joiner and invisible operators, byte-order mark, interlinear annotations, tags). Such characters
/// make two codes that look equal differ (`闽0213` and `闽0213` + U+200B), so codes refuse them.
fn has_format_char(raw: &str) -> bool {
    !raw.is_ascii()
        && raw.chars().any(|c| {
            matches!(c as u32,
                0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2 | 0x180E
                | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
                | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
        })
}

/// A case number (案号) in its canonical form: NFKC, so that full-width parentheses and digits
/// (`（2023）闽０２１３民初１号`) name the same case as `(2023)闽0213民初1号`.
pub fn canonical_case_no(raw: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::UnicodeNormalization;
    if raw.is_ascii() || unicode_normalization::is_nfkc_quick(raw.chars()) == unicode_normalization::IsNormalized::Yes {
        std::borrow::Cow::Borrowed(raw)
    } else {
        std::borrow::Cow::Owned(raw.nfkc().collect())
    }
}

/// The fields that hold a case number (案号): checked against [`is_case_number`].
const CASE_NUMBER_FIELDS: &[&str] = &["case_no", "origin_case_no", "judicial_confirm_case_no"];

/// Whether `no` (in its canonical form, [`canonical_case_no`]) has the shape of a case number:
/// `(YYYY)`, the court's code and the case type (Han characters and digits, at least three characters
/// together, beginning and ending with a Han character: `闽0213民初`, `最高法民终`, `闽0213执`), the case's
/// sequence number (1 to 7 digits), `号`.
pub fn is_case_number(no: &str) -> bool {
    let Some(rest) = no.strip_prefix('(') else { return false };
    let Some((year, rest)) = rest.split_once(')') else { return false };
    let Some(body) = rest.strip_suffix('号') else { return false };
    let year_ok = year.len() == 4 && year.parse::<u32>().is_ok_and(|y| (1949..=2099).contains(&y));
    let head = body.trim_end_matches(|c: char| c.is_ascii_digit());
    let seq = body.len() - head.len();
    let han = shuzhu_policy::pii::names::is_han;
    year_ok
        && (1..=7).contains(&seq)
        && head.chars().count() >= 3
        && head.chars().next().is_some_and(han)
        && head.chars().last().is_some_and(han)
        && head.chars().all(|c| han(c) || c.is_ascii_digit())
}

/// The cause of action (案由), a public (L1) field.
const CAUSE: &str = "cause";

/// Whether a cause holds what the detectors of personal information find (a party's name, an ID
/// number, a phone …) or a long number: a cause is a 案由 from the courts' list, never free text about
/// the parties, and it is stored and served as given.
///
/// A docket has a few hundred distinct causes, so each worker thread keeps the verdicts it computed (up to
/// 4 096 causes, then it starts again) and scans each cause once, not once per row.
fn cause_holds_personal_information(raw: &str) -> bool {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static VERDICTS: RefCell<HashMap<String, bool>> = RefCell::new(HashMap::new());
    }
    VERDICTS.with_borrow_mut(|seen| {
        if let Some(v) = seen.get(raw) {
            return *v;
        }
        let v = !shuzhu_policy::pii::detect(raw).is_empty() || shuzhu_policy::mask::contains_identifier(raw);
        if seen.len() >= 4096 {
            seen.clear();
        }
        seen.insert(raw.to_string(), v);
        v
    })
}

/// Validates one raw cell and converts it to its typed value (before minimisation).
///
/// A text field that minimisation replaces (any storage but [`Storage::Raw`]) is not copied: its value is an
/// empty `Value::Text` standing for the cell, which [`Validated`] keeps.
fn parse_cell(field: &Field, raw: &str) -> Result<Value, FieldProblem> {
    if raw.is_empty() {
        return if field.optional { Ok(Value::Absent) } else { Err(problem(field, "is required but empty")) };
    }
    if has_control(raw) {
        return Err(problem(field, "contains control characters"));
    }
    if field.name != SUMMARY && has_format_char(raw) {
        return Err(problem(field, "contains an invisible format character (such as a zero-width space)"));
    }
    match field.ty {
        FieldType::Text => {
            let limit = if field.name == "summary" { 4000 } else { 200 };
            // A text of no more bytes than the limit has no more characters either.
            if raw.len() > limit && raw.chars().count() > limit {
                return Err(problem(field, format!("is longer than {limit} characters")));
            }
            if raw.trim() != raw {
                return Err(problem(field, "has leading or trailing spaces"));
            }
            if CASE_NUMBER_FIELDS.contains(&field.name) && !is_case_number(&canonical_case_no(raw)) {
                return Err(problem(field, "is not a case number like (2023)闽0213民初1234号"));
            }
            if field.name == CAUSE && cause_holds_personal_information(raw) {
                return Err(problem(field, "holds personal information; a cause is a 案由 such as 民间借贷纠纷"));
            }
            Ok(Value::Text(match field.storage {
                Storage::Raw if field.name == CASE_NO => canonical_case_no(raw).into_owned(),
                Storage::Raw => raw.to_string(),
                _ => String::new(),
            }))
        }
        FieldType::Region => {
            if raw.len() == 6 && raw.bytes().all(|b| b.is_ascii_digit()) {
                Ok(Value::Int(raw.parse().unwrap_or(0)))
            } else {
                Err(problem(field, format!("{} is not a 6-digit region code", shown(field, raw).trim())))
            }
        }
        FieldType::Date => parse_day(raw)
            .map(Value::Day)
            .ok_or_else(|| problem(field, format!("{} is not a date YYYY-MM-DD", shown(field, raw).trim()))),
        FieldType::Bool => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(problem(field, format!("{} is not true or false", shown(field, raw).trim()))),
        },
        FieldType::Amount => parse_fen(raw).map(Value::Int).ok_or_else(|| {
            problem(field, format!("{} is not an amount in yuan with up to two decimals", shown(field, raw).trim()))
        }),
        FieldType::Integer => raw
            .parse::<u32>()
            .map(|n| Value::Int(i64::from(n)))
            .map_err(|_| problem(field, format!("{} is not a non-negative integer", shown(field, raw).trim()))),
        FieldType::Enum(labels) => {
            labels.iter().position(|l| *l == raw).map(|i| Value::Enum(i as u8)).ok_or_else(|| {
                problem(field, format!("{} is not one of {}", shown(field, raw).trim(), labels.join(" ")))
            })
        }
    }
}

/// A validated row, still holding personal values in clear; it never leaves this module's caller
/// before [`Validated::minimise`].
pub struct Validated<'a> {
    key: String,
    values: Vec<Value>,
    /// The cells, in schema order: the text of every `Value::Text` (copied into `values` only for fields
    /// stored raw).
    cells: Vec<&'a str>,
}

impl std::fmt::Debug for Validated<'_> {
    // Never prints the values: they still hold personal data in clear.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Validated(<not shown>)")
    }
}

impl Validated<'_> {
    /// The primary key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Replaces personal fields as the schema says (pseudonym, derived attributes, dropped), with the
    /// default [`MinimiseOptions`]: `summary` is scrubbed and kept, `defendant_address` becomes the code
    /// of its county.
    pub fn minimise(self, dataset: &Dataset, key: &PseudonymKey, keep_raw: &[String]) -> Record {
        self.minimise_with(dataset, key, keep_raw, MinimiseOptions::default())
    }

    /// Replaces personal fields as the schema says and as `options` refine it. A field named in
    /// `keep_raw` (the node's local policy) is kept as it is.
    pub fn minimise_with(
        self,
        dataset: &Dataset,
        key: &PseudonymKey,
        keep_raw: &[String],
        options: MinimiseOptions,
    ) -> Record {
        let mut values = self.values;
        let cells = self.cells;
        // Scrubbed free text first, while the row's own personal values are still there to be masked
        // in it (whatever of them the free text repeats is masked first).
        let mut scrubbed: Vec<Option<String>> = Vec::new();
        if options.scrub_summary {
            for (i, field) in dataset.fields.iter().enumerate() {
                let Value::Text(_) = &values[i] else { continue };
                if field.storage != Storage::Scrubbed || keep_raw.iter().any(|k| k == field.name) {
                    continue;
                }
                let known: Vec<&str> = dataset
                    .fields
                    .iter()
                    .zip(values.iter().zip(&cells))
                    .filter(|(f, _)| f.personal != Personal::None && f.name != SUMMARY)
                    .filter_map(|(_, (v, cell))| match v {
                        Value::Text(_) => Some(*cell),
                        _ => None,
                    })
                    .collect();
                scrubbed.resize(dataset.fields.len(), None);
                scrubbed[i] = Some(pii::scrub_text_known(cells[i], &known));
            }
        }
        for (i, field) in dataset.fields.iter().enumerate() {
            if keep_raw.iter().any(|k| k == field.name) {
                if let Value::Text(t) = &mut values[i] {
                    cells[i].clone_into(t);
                }
                continue;
            }
            let v = std::mem::replace(&mut values[i], Value::Absent);
            values[i] = match (field.storage, v) {
                (_, Value::Absent) => Value::Absent,
                (Storage::Raw, v) => v,
                (Storage::Scrubbed, Value::Text(_)) if options.scrub_summary => {
                    scrubbed.get_mut(i).and_then(Option::take).map_or(Value::Absent, Value::Text)
                }
                (Storage::County, Value::Text(_)) if options.address_to_county => {
                    match pii::apply_rule(MaskingRule::GeneraliseCounty, field.name, cells[i], None) {
                        Ok(Masked::Text(code)) => code.parse().map_or(Value::Absent, Value::Int),
                        _ => Value::Absent,
                    }
                }
                (Storage::Dropped, _) => Value::Absent,
                (Storage::Pseudonym, Value::Text(_)) => Value::Text(key.pseudonym(field.name, cells[i])),
                (Storage::Derived, Value::Text(_)) => match pseudonym::derive_from_resident_id(cells[i]) {
                    Some(a) => Value::IdDerived {
                        birth_year: a.birth_year,
                        sex: if a.sex == Sex::Male { 1 } else { 2 },
                        city: a.city,
                    },
                    None => Value::IdDerived { birth_year: 0, sex: 0, city: 0 },
                },
                (_, _) => Value::Absent,
            };
        }
        Record { values }
    }
}

/// The free-text field scrubbed at import.
const SUMMARY: &str = "summary";
/// The primary key of `cases`, kept in its canonical form ([`canonical_case_no`]).
const CASE_NO: &str = "case_no";

/// What minimisation keeps beyond the schema's storage rule (the node's local policy may turn each off;
/// then the field is dropped as the schema says). The `[minimise]` section of the node config; a key
/// left out keeps its default (on), an unknown key is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinimiseOptions {
    /// Keep `summary` scrubbed as judgments are for publication (names → 某, identifiers and
    /// addresses below county level removed), instead of dropping it.
    pub scrub_summary: bool,
    /// Keep `defendant_address` as the 6-digit code of its county (an integer), instead of dropping it.
    pub address_to_county: bool,
}

impl Default for MinimiseOptions {
    fn default() -> Self {
        MinimiseOptions { scrub_summary: true, address_to_county: true }
    }
}

/// Validates a row (cells in schema order) of `dataset`, reporting every problem found.
pub fn validate<'a>(dataset: &Dataset, cells: &[&'a str]) -> Result<Validated<'a>, Vec<FieldProblem>> {
    let mut values = Vec::with_capacity(dataset.fields.len());
    let mut problems = Vec::new();
    for (field, raw) in dataset.fields.iter().zip(cells) {
        match parse_cell(field, raw) {
            Ok(v) => values.push(v),
            Err(p) => {
                problems.push(p);
                values.push(Value::Absent);
            }
        }
    }
    if problems.is_empty() {
        cross_checks(dataset, cells, &values, &mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let key = match dataset.name {
        "population" => format!("{}|{}", cells[0], cells[1]),
        _ => {
            let cell = cells[dataset.fields.iter().position(|f| f.name == dataset.key).unwrap_or(0)];
            if dataset.key == CASE_NO { canonical_case_no(cell).into_owned() } else { cell.to_string() }
        }
    };
    Ok(Validated { key, values, cells: cells.to_vec() })
}

fn idx(dataset: &Dataset, name: &str) -> usize {
    // Field names used here are constants of the schema; a missing one is a programming error caught
    // by the tests of this module.
    dataset.fields.iter().position(|f| f.name == name).unwrap_or(usize::MAX)
}

fn day(values: &[Value], i: usize) -> Option<i32> {
    match values.get(i) {
        Some(Value::Day(d)) => Some(*d),
        _ => None,
    }
}

fn cross_checks(dataset: &Dataset, cells: &[&str], values: &[Value], problems: &mut Vec<FieldProblem>) {
    let mut add =
        |field: &str, reason: &str| problems.push(FieldProblem { field: field.into(), reason: reason.into() });
    match dataset.name {
        "cases" => {
            // Field positions, looked up once (validation runs millions of times per import).
            static AT: OnceLock<[usize; 8]> = OnceLock::new();
            let at = AT.get_or_init(|| {
                [
                    "filed_on",
                    "closed_on",
                    "deadline_on",
                    "closure_method",
                    "plaintiff_kind",
                    "plaintiff_id_no",
                    "defendant_kind",
                    "defendant_id_no",
                ]
                .map(|n| idx(dataset, n))
            });
            let filed = day(values, at[0]);
            let closed = day(values, at[1]);
            let deadline = day(values, at[2]);
            if let (Some(f), Some(c)) = (filed, closed)
                && c < f
            {
                add("closed_on", "is before filed_on");
            }
            if let (Some(f), Some(d)) = (filed, deadline)
                && d < f
            {
                add("deadline_on", "is before filed_on");
            }
            let method = &values[at[3]];
            if closed.is_some() != (*method != Value::Absent) {
                add("closure_method", "must be given exactly when closed_on is given");
            }
            for (kind_at, id_at, id_field) in [(at[4], at[5], "plaintiff_id_no"), (at[6], at[7], "defendant_id_no")] {
                let kind = cells[kind_at];
                let id = cells[id_at];
                if id.is_empty() {
                    continue;
                }
                if kind == "自然人" && !pseudonym::is_valid_resident_id(id) {
                    add(id_field, "is not a valid resident ID number (GB 11643 checksum or birth date)");
                } else if kind != "自然人" && !pseudonym::is_valid_uscc(id) {
                    add(id_field, "is not a valid unified social credit code (GB 32100 checksum)");
                }
            }
        }
        "mediations" => {
            let accepted = day(values, idx(dataset, "accepted_on"));
            let closed = day(values, idx(dataset, "closed_on"));
            if let (Some(a), Some(c)) = (accepted, closed)
                && c < a
            {
                add("closed_on", "is before accepted_on");
            }
            if closed.is_some() != (values[idx(dataset, "result")] != Value::Absent) {
                add("result", "must be given exactly when closed_on is given");
            }
            let id = cells[idx(dataset, "party_id_no")];
            if !id.is_empty() && !pseudonym::is_valid_resident_id(id) && !pseudonym::is_valid_uscc(id) {
                add("party_id_no", "is neither a valid resident ID number nor a valid credit code");
            }
        }
        "population" => {
            if let Some(Value::Int(y)) = values.get(1)
                && !(1990..=2100).contains(y)
            {
                add("year", "is outside 1990..=2100");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shuzhu_policy::schema::CASES;

    fn row() -> Vec<String> {
        let mut cells = vec![String::new(); CASES.fields.len()];
        let set = |cells: &mut Vec<String>, k: &str, v: &str| cells[idx(&CASES, k)] = v.to_string();
        set(&mut cells, "case_no", "(2023)闽0213民初1号");
        set(&mut cells, "court_code", "闽0213");
        set(&mut cells, "region_code", "350213");
        set(&mut cells, "type_code", "民初");
        set(&mut cells, "cause", "民间借贷纠纷");
        set(&mut cells, "filed_on", "2023-01-05");
        set(&mut cells, "closed_on", "2023-03-01");
        set(&mut cells, "deadline_on", "2023-07-05");
        set(&mut cells, "closure_method", "调解");
        set(&mut cells, "appealed", "false");
        set(&mut cells, "claim_amount", "12345.6");
        set(&mut cells, "online_filed", "true");
        set(&mut cells, "pre_suit_mediated", "false");
        set(&mut cells, "judge_id", "J0213001");
        set(&mut cells, "plaintiff_kind", "自然人");
        set(&mut cells, "defendant_kind", "法人");
        set(&mut cells, "plaintiff_name", "张伟");
        set(&mut cells, "defendant_name", "厦门某某贸易有限公司");
        set(&mut cells, "plaintiff_id_no", "11010519491231002X");
        set(&mut cells, "defendant_id_no", "91110000600037341L");
        set(&mut cells, "plaintiff_phone", "13800138000");
        set(&mut cells, "minor_involved", "false");
        set(&mut cells, "defendant_address", "福建省厦门市思明区湖滨南路123号5栋1201室");
        set(
            &mut cells,
            "summary",
            "原告张伟（身份证号11010519491231002X，电话+86 138 0013 8000）诉被告厦门某某贸易有限公司，被告住所地福建省厦门市思明区湖滨南路123号5栋1201室",
        );
        cells
    }

    fn check(cells: &[String]) -> Result<Validated<'_>, Vec<FieldProblem>> {
        let refs: Vec<&str> = cells.iter().map(String::as_str).collect();
        validate(&CASES, &refs)
    }

    #[test]
    fn a_good_row_is_minimised() {
        let cells = row();
        let v = check(&cells).unwrap();
        assert_eq!(v.key(), "(2023)闽0213民初1号");
        let key = PseudonymKey::from_bytes(&[9u8; 32]).unwrap();
        let rec = v.minimise(&CASES, &key, &[]);
        let text = format!("{rec:?}");
        for secret in [
            "张伟",
            "11010519491231002X",
            "13800138000",
            "138 0013 8000",
            "91110000600037341L",
            "J0213001",
            "厦门某某贸易有限公司",
            "湖滨南路",
        ] {
            assert!(!text.contains(secret), "{secret} kept in {text}");
        }
        assert_eq!(rec.values[idx(&CASES, "claim_amount")], Value::Int(1_234_560));
        assert_eq!(
            rec.values[idx(&CASES, "plaintiff_id_no")],
            Value::IdDerived { birth_year: 1949, sex: 2, city: 1101 }
        );
        assert_eq!(
            rec.values[idx(&CASES, "summary")],
            Value::Text("原告张某（身份证号[已遮蔽]，电话[已遮蔽]）诉被告[已遮蔽]，被告住所地[已遮蔽]".into())
        );
        assert_eq!(rec.values[idx(&CASES, "defendant_address")], Value::Int(350203));
    }

    #[test]
    fn a_field_the_local_policy_keeps_raw_keeps_its_text() {
        let key = PseudonymKey::from_bytes(&[9u8; 32]).unwrap();
        let cells = row();
        let keep = ["plaintiff_name".to_string(), "defendant_address".to_string()];
        let rec = check(&cells).unwrap().minimise(&CASES, &key, &keep);
        assert_eq!(rec.values[idx(&CASES, "plaintiff_name")], Value::Text("张伟".into()));
        assert_eq!(
            rec.values[idx(&CASES, "defendant_address")],
            Value::Text("福建省厦门市思明区湖滨南路123号5栋1201室".into())
        );
        assert_eq!(rec.values[idx(&CASES, "case_no")], Value::Text("(2023)闽0213民初1号".into()));
        assert_ne!(rec.values[idx(&CASES, "defendant_name")], Value::Text("厦门某某贸易有限公司".into()));
    }

    #[test]
    fn local_policy_can_drop_summary_and_address() {
        let key = PseudonymKey::from_bytes(&[9u8; 32]).unwrap();
        let off = MinimiseOptions { scrub_summary: false, address_to_county: false };
        let rec = check(&row()).unwrap().minimise_with(&CASES, &key, &[], off);
        assert_eq!(rec.values[idx(&CASES, "summary")], Value::Absent);
        assert_eq!(rec.values[idx(&CASES, "defendant_address")], Value::Absent);
        // An address in no county the table knows is dropped, not guessed.
        let mut cells = row();
        cells[idx(&CASES, "defendant_address")] = "某地某路1号".into();
        let rec = check(&cells).unwrap().minimise(&CASES, &key, &[]);
        assert_eq!(rec.values[idx(&CASES, "defendant_address")], Value::Absent);
    }

    #[test]
    fn bad_rows_name_field_and_reason_without_personal_values() {
        let mut cells = row();
        cells[idx(&CASES, "closed_on")] = "2022-12-31".into();
        let p = check(&cells).unwrap_err();
        assert_eq!((p[0].field.as_str(), p[0].reason.as_str()), ("closed_on", "is before filed_on"));

        let mut cells = row();
        cells[idx(&CASES, "plaintiff_id_no")] = "110105194912310021".into();
        let p = check(&cells).unwrap_err();
        assert_eq!(p[0].field, "plaintiff_id_no");
        assert!(!p[0].reason.contains("110105194912310021"));

        let mut cells = row();
        cells[idx(&CASES, "filed_on")] = "2023-02-30".into();
        cells[idx(&CASES, "type_code")] = "民特".into();
        let p = check(&cells).unwrap_err();
        assert_eq!(p.len(), 2);

        let mut cells = row();
        cells[idx(&CASES, "closure_method")] = String::new();
        assert_eq!(check(&cells).unwrap_err()[0].field, "closure_method");
    }

    #[test]
    fn control_characters_are_found_as_char_is_control_finds_them() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            for text in [format!("{c}"), format!("张{c}伟"), format!("a{c}")] {
                assert_eq!(has_control(&text), text.chars().any(char::is_control), "{:?}", c);
            }
        }
    }

    #[test]
    fn amounts_are_exact_fen() {
        assert_eq!(parse_fen("0"), Some(0));
        assert_eq!(parse_fen("12.3"), Some(1230));
        assert_eq!(parse_fen("12.34"), Some(1234));
        for bad in ["12.345", "-1", "1e5", ".5", "5.", "1,000", " 5"] {
            assert_eq!(parse_fen(bad), None, "{bad}");
        }
    }
}
