//! The catalogue (数据分类分级): every dataset with every field tagged by category, grade (L1–L4),
//! personal-information kind and masking rule; dataset-level flags for important (重要) and core (核心)
//! data, which are never served; and the fields each indicator reads, so that the grade check of a
//! decision reads grades from one place.
//!
//! The federation's catalogue is `policy/catalogue.toml`, embedded at build time
//! ([`Catalogue::embedded`]). It must agree with the typed schema in [`crate::schema`] and with the
//! indicator definitions in [`crate::indicator`]; the tests below check both.

use std::sync::{Arc, OnceLock, RwLock};

use serde::{Deserialize, Serialize};

use crate::dimension::Dimension;
use crate::schema::Grade;

/// The embedded catalogue text.
pub const EMBEDDED: &str = include_str!("../catalogue.toml");

/// The categories fields are grouped by (DESIGN.md, "Classification and grading").
pub const CATEGORIES: &[&str] =
    &["案件基本信息", "审判流程", "裁判结果", "执行与财产", "当事人", "调解", "人口统计", "人事"];

/// Personal-information kind of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiKind {
    /// Not personal information.
    None,
    /// Personal information (PIPL).
    Personal,
    /// Sensitive personal information (PIPL art. 28).
    Sensitive,
    /// An identifier that links to a person or a published judgment.
    Linking,
}

/// How a field is masked wherever it could appear outside its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Masking {
    /// Never stored or shown.
    Drop,
    /// Replaced by a fixed marker.
    Redact,
    /// Partly shown (e.g. the first and last characters).
    Partial,
    /// Replaced by a keyed pseudonym.
    Pseudonym,
    /// Coarsened (a date to its month, an amount to a band, an ID to birth year and sex, an address to
    /// its county).
    Generalise,
    /// Free text scrubbed as judgments are for publication (names → 某, identifiers removed).
    Scrub,
    /// Shown as is (public or internal workflow data).
    None,
}

/// One field of a dataset as catalogued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldEntry {
    /// Column name.
    pub name: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// Grade.
    pub grade: Grade,
    /// Personal-information kind.
    pub pi: PiKind,
    /// Masking rule.
    pub masking: Masking,
}

/// One dataset as catalogued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    /// Dataset name.
    pub name: String,
    /// 重要数据 under the Data Security Law: never served.
    #[serde(default)]
    pub important: bool,
    /// 核心数据 under the Data Security Law: never served.
    #[serde(default)]
    pub core: bool,
    /// Fields.
    pub fields: Vec<FieldEntry>,
}

/// One condition of a measure: exactly one of `any_of` (an enumerated field takes one of these labels),
/// `at_most` (a date field is on or before another date field) or `is` (a boolean field has this value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionEntry {
    /// The field tested.
    pub field: String,
    /// Accepted labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_of: Option<Vec<String>>,
    /// The date field `field` must not exceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<String>,
    /// The required boolean value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is: Option<bool>,
    /// Whether the (optional) field must have a value (`true`) or be empty (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

/// A partial measure nodes compute, as catalogued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureEntry {
    /// Measure id used on the wire, e.g. `cases.closed`.
    pub id: String,
    /// Dataset it is computed over.
    pub dataset: String,
    /// The date that places a record in a sub-period (`filed_on`, `closed_on`), or `active` (open at
    /// some time during it).
    pub anchor: String,
    /// Conditions every counted record meets (all of them).
    #[serde(default)]
    pub conditions: Vec<ConditionEntry>,
    /// `count`, `days:FROM:TO` (days between two dates) or `sum:FIELD` (money in fen).
    pub accumulate: String,
    /// With anchor `open_at_end`: count only cases filed more than this many days before the end of the
    /// sub-period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed_more_than_days_before: Option<u16>,
}

impl MeasureEntry {
    /// Every field the measure reads, sorted, without repeats.
    pub fn reads(&self) -> Vec<String> {
        let mut out: Vec<String> = match self.anchor.as_str() {
            "active" | "open_at_end" => vec!["filed_on".into(), "closed_on".into()],
            a => vec![a.into()],
        };
        for c in &self.conditions {
            out.push(c.field.clone());
            out.extend(c.at_most.clone());
        }
        let mut parts = self.accumulate.split(':');
        if let (Some("days" | "sum"), rest) = (parts.next(), parts) {
            out.extend(rest.flat_map(|p| p.split('+')).map(str::to_string));
        }
        out.sort();
        out.dedup();
        out
    }
}

/// An indicator, as catalogued: what it is called, how it is computed and how it may be broken down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorEntry {
    /// Indicator id.
    pub id: String,
    /// Chinese name.
    pub name: String,
    /// The formula in words.
    pub formula: String,
    /// Dataset its counted records come from (a `per_population` indicator's numerator dataset; its
    /// population measure names its own dataset).
    pub dataset: String,
    /// `count` (one measure), `ratio` (numerator, denominator), `mean` (sum, count) or `per_population`
    /// (a count ÷ a population total of the same region and year × `scale`).
    pub kind: String,
    /// Measure ids, in the order the kind names them.
    pub measures: Vec<String>,
    /// For a ratio: the numerator's records are a subset of the denominator's.
    #[serde(default)]
    pub subset: bool,
    /// For `per_population`: the rate is per this many people (10 000 for 万人成讼率).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Dimensions it may be grouped or filtered by.
    pub dimensions: Vec<String>,
    /// For a `deviation`: how many previous years' same months the baseline averages (e.g. 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_years: Option<u32>,
    /// For a `deviation`: the warning levels on |deviation|.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<LevelsEntry>,
}

/// Warning levels of a deviation, as decimal fractions written as strings so that they stay exact
/// (`"0.15"` is 15 %): green when |deviation| < `yellow_from`, yellow up to and including `red_above`,
/// red above it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelsEntry {
    /// Lowest |deviation| that is yellow, e.g. `"0.15"`.
    pub yellow_from: String,
    /// Highest |deviation| that is still yellow; anything above is red, e.g. `"0.30"`.
    pub red_above: String,
}

/// The whole catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Datasets.
    #[serde(rename = "dataset")]
    pub datasets: Vec<DatasetEntry>,
    /// Measures.
    #[serde(default, rename = "measure")]
    pub measures: Vec<MeasureEntry>,
    /// Indicators.
    #[serde(default, rename = "indicator")]
    pub indicators: Vec<IndicatorEntry>,
}

/// Why a catalogue was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The TOML did not parse into the catalogue's shape.
    #[error("catalogue: {0}")]
    Syntax(String),
    /// The catalogue parsed but breaks a rule; every problem is listed.
    #[error("catalogue: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Catalogue {
    /// Parses and checks a catalogue.
    pub fn parse(text: &str) -> Result<Self, CatalogueError> {
        let cat: Catalogue = toml::from_str(text).map_err(|e| CatalogueError::Syntax(e.to_string()))?;
        let problems = cat.problems();
        if problems.is_empty() { Ok(cat) } else { Err(CatalogueError::Invalid(problems)) }
    }

    /// The federation's catalogue, embedded at build time.
    pub fn embedded() -> Arc<Catalogue> {
        static CAT: OnceLock<Arc<Catalogue>> = OnceLock::new();
        // Invariant: the embedded text parses and checks; `embedded_catalogue_is_valid` tests it, so a
        // panic here can only come from a build whose tests failed.
        Arc::clone(CAT.get_or_init(|| Arc::new(Catalogue::parse(EMBEDDED).expect("embedded catalogue is valid"))))
    }

    fn current_slot() -> &'static RwLock<Option<Arc<Catalogue>>> {
        static CUR: RwLock<Option<Arc<Catalogue>>> = RwLock::new(None);
        &CUR
    }

    /// The catalogue in force in this process: the embedded one unless
    /// [`install`](crate::indicator::install) replaced it. Policies load with it.
    pub fn current() -> Arc<Catalogue> {
        let cur = Self::current_slot().read().unwrap_or_else(|e| e.into_inner()).clone();
        cur.unwrap_or_else(Catalogue::embedded)
    }

    pub(crate) fn set_current(cat: Catalogue) {
        *Self::current_slot().write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(cat));
    }

    /// Every rule the catalogue breaks.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, ds) in self.datasets.iter().enumerate() {
            if self.datasets.iter().filter(|d| d.name == ds.name).count() > 1 {
                out.push(format!("dataset[{i}] {} is declared twice", ds.name));
            }
            for f in &ds.fields {
                if !CATEGORIES.contains(&f.category.as_str()) {
                    out.push(format!("{}.{}: unknown category {:?}", ds.name, f.name, f.category));
                }
                if ds.fields.iter().filter(|g| g.name == f.name).count() > 1 {
                    out.push(format!("{}.{}: declared twice", ds.name, f.name));
                }
                if f.pi != PiKind::None && f.grade < Grade::L3 {
                    out.push(format!("{}.{}: personal information graded {} (at least L3)", ds.name, f.name, f.grade));
                }
                if f.pi != PiKind::None && f.masking == Masking::None {
                    out.push(format!("{}.{}: personal information needs a masking rule", ds.name, f.name));
                }
            }
        }
        for (i, m) in self.measures.iter().enumerate() {
            if self.measures.iter().filter(|x| x.id == m.id).count() > 1 {
                out.push(format!("measure[{i}] {} is declared twice", m.id));
            }
        }
        for (i, ind) in self.indicators.iter().enumerate() {
            if self.indicators.iter().filter(|x| x.id == ind.id).count() > 1 {
                out.push(format!("indicator[{i}] {} is declared twice", ind.id));
            }
        }
        if let Err(problems) = crate::indicator::build(self) {
            out.extend(problems);
        }
        out
    }

    /// The dataset called `name`.
    pub fn dataset(&self, name: &str) -> Option<&DatasetEntry> {
        self.datasets.iter().find(|d| d.name == name)
    }

    /// The field `field` of dataset `dataset`.
    pub fn field(&self, dataset: &str, field: &str) -> Option<&FieldEntry> {
        self.dataset(dataset)?.fields.iter().find(|f| f.name == field)
    }

    /// Indicator `id` as catalogued.
    pub fn indicator(&self, id: &str) -> Option<&IndicatorEntry> {
        self.indicators.iter().find(|i| i.id == id)
    }

    /// Measure `id` as catalogued.
    pub fn measure(&self, id: &str) -> Option<&MeasureEntry> {
        self.measures.iter().find(|m| m.id == id)
    }

    /// Every field indicator `id` reads through its measures, sorted, without repeats; `None` when the
    /// catalogue lacks the indicator. A measure the catalogue lacks reads an unknown field (就高从严).
    pub fn reads(&self, id: &str) -> Option<Vec<String>> {
        let mut out: Vec<String> = self.reads_in(id)?.into_iter().map(|(_, f)| f).collect();
        out.sort();
        out.dedup();
        Some(out)
    }

    /// Every (dataset, field) indicator `id` reads through its measures, each field in its measure's
    /// dataset (an indicator may join datasets); `None` when the catalogue lacks the indicator. A measure
    /// the catalogue lacks reads an unknown field of the indicator's dataset.
    pub fn reads_in(&self, id: &str) -> Option<Vec<(String, String)>> {
        let ind = self.indicator(id)?;
        let mut out: Vec<(String, String)> = ind
            .measures
            .iter()
            .flat_map(|m| match self.measure(m) {
                Some(e) => e.reads().into_iter().map(|f| (e.dataset.clone(), f)).collect(),
                None => vec![(ind.dataset.clone(), format!("?{m}"))],
            })
            .collect();
        out.sort();
        out.dedup();
        Some(out)
    }

    /// The highest grade among the fields indicator `id` reads and the fields dimensions `dims` read;
    /// `None` when the catalogue lacks the indicator. A field the catalogue lacks counts as L4
    /// (就高从严).
    pub fn grade_of(&self, id: &str, dims: &[Dimension]) -> Option<Grade> {
        let ind = self.indicator(id)?;
        let reads = self.reads_in(id)?;
        let grade_of = |ds: &str, f: &str| self.field(ds, f).map_or(Grade::L4, |f| f.grade);
        let fields = reads.iter().map(|(ds, f)| grade_of(ds, f));
        let dims = dims.iter().filter_map(|d| dimension_field(*d)).map(|f| grade_of(&ind.dataset, f));
        Some(fields.chain(dims).max().unwrap_or(Grade::L1))
    }

    /// Every field indicator `id` reads with dimensions `dims`, without repeats.
    pub fn fields_read(&self, id: &str, dims: &[Dimension]) -> Vec<String> {
        let mut out: Vec<String> = self.reads(id).unwrap_or_default();
        out.extend(dims.iter().filter_map(|d| dimension_field(*d)).map(str::to_string));
        out.sort();
        out.dedup();
        out
    }

    /// Every field indicator `id` reads with dimensions `dims` as `dataset.field` (dimensions read the
    /// indicator's own dataset), sorted, without repeats.
    pub fn qualified_fields_read(&self, id: &str, dims: &[Dimension]) -> Vec<String> {
        let Some(ind) = self.indicator(id) else { return vec![] };
        let mut out: Vec<String> =
            self.reads_in(id).unwrap_or_default().into_iter().map(|(ds, f)| format!("{ds}.{f}")).collect();
        out.extend(dims.iter().filter_map(|d| dimension_field(*d)).map(|f| format!("{}.{f}", ind.dataset)));
        out.sort();
        out.dedup();
        out
    }

    /// Whether the dataset is flagged important or core (never served), or unknown.
    pub fn is_protected(&self, dataset: &str) -> bool {
        self.dataset(dataset).is_none_or(|d| d.important || d.core)
    }

    /// Sets a field's grade (for what-if checks and tests). Returns false when the field is unknown.
    pub fn set_grade(&mut self, dataset: &str, field: &str, grade: Grade) -> bool {
        let Some(ds) = self.datasets.iter_mut().find(|d| d.name == dataset) else { return false };
        let Some(f) = ds.fields.iter_mut().find(|f| f.name == field) else { return false };
        f.grade = grade;
        true
    }

    /// A short hash of the canonical catalogue, folded into the policy version.
    pub fn digest(&self) -> [u8; 32] {
        // Serialising plain structs of strings, enums and vectors cannot fail.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let d = ring::digest::digest(&ring::digest::SHA256, &canonical);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

/// The record field a non-time dimension reads (time dimensions read the indicator's own dates).
pub fn dimension_field(d: Dimension) -> Option<&'static str> {
    match d {
        Dimension::Region => Some("region_code"),
        Dimension::Court => Some("court_code"),
        Dimension::Division | Dimension::Instance | Dimension::TypeCode => Some("type_code"),
        Dimension::Cause => Some("cause"),
        Dimension::DisputeType => Some("dispute_type"),
        Dimension::Year | Dimension::Quarter | Dimension::Month => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::indicators;
    use crate::schema::{DATASETS, Personal};

    #[test]
    fn embedded_catalogue_is_valid() {
        let cat = Catalogue::parse(EMBEDDED).unwrap();
        assert_eq!(cat.datasets.len(), 3);
    }

    #[test]
    fn catalogue_agrees_with_the_schema() {
        let cat = Catalogue::embedded();
        for ds in DATASETS {
            let entry = cat.dataset(ds.name).unwrap_or_else(|| panic!("{} missing from catalogue", ds.name));
            assert_eq!(entry.fields.len(), ds.fields.len(), "{}: field count", ds.name);
            for f in ds.fields {
                let e = cat.field(ds.name, f.name).unwrap_or_else(|| panic!("{}.{} not catalogued", ds.name, f.name));
                assert_eq!(e.grade, f.grade, "{}.{} grade", ds.name, f.name);
                let pi = match f.personal {
                    Personal::None => PiKind::None,
                    Personal::Personal => PiKind::Personal,
                    Personal::Sensitive => PiKind::Sensitive,
                    Personal::Linking => PiKind::Linking,
                };
                assert_eq!(e.pi, pi, "{}.{} personal kind", ds.name, f.name);
            }
        }
        assert_eq!(cat.datasets.len(), DATASETS.len());
    }

    #[test]
    fn catalogue_lists_what_each_indicator_reads() {
        let cat = Catalogue::embedded();
        for ind in indicators() {
            let e = cat.indicator(ind.id).unwrap_or_else(|| panic!("indicator {} not catalogued", ind.id));
            assert_eq!(e.dataset, ind.dataset);
            assert_eq!(cat.reads(ind.id).unwrap(), ind.fields_read(), "{}", ind.id);
            assert_eq!(cat.grade_of(ind.id, &[]), Some(ind.grade_with(&[])), "{}", ind.id);
        }
        assert_eq!(cat.indicators.len(), indicators().len());
    }

    #[test]
    fn bad_catalogues_are_refused() {
        let bad = EMBEDDED.replacen("category = \"人事\"", "category = \"杂项\"", 1);
        assert!(Catalogue::parse(&bad).unwrap_err().to_string().contains("杂项"));
        let low = EMBEDDED.replacen(
            "name = \"judge_id\", category = \"人事\", grade = \"L3\"",
            "name = \"judge_id\", category = \"人事\", grade = \"L1\"",
            1,
        );
        assert!(Catalogue::parse(&low).unwrap_err().to_string().contains("judge_id"));
        let unknown = EMBEDDED.replacen("important = false", "important = false\nsecret = true", 1);
        assert!(Catalogue::parse(&unknown).unwrap_err().to_string().contains("secret"));
    }

    #[test]
    fn dimensions_and_unknown_fields_raise_the_grade() {
        let mut cat = (*Catalogue::embedded()).clone();
        assert_eq!(cat.grade_of("filed", &[Dimension::Region]), Some(Grade::L2));
        assert!(cat.set_grade("cases", "region_code", Grade::L3));
        assert_eq!(cat.grade_of("filed", &[Dimension::Region]), Some(Grade::L3));
        assert_eq!(cat.grade_of("filed", &[]), Some(Grade::L2));
        assert_eq!(cat.grade_of("nope", &[]), None);
        assert!(!cat.is_protected("cases"));
        cat.datasets[0].important = true;
        assert!(cat.is_protected("cases"));
        assert!(cat.is_protected("unknown"));
    }
}
