//! The datasets of the federation, each field with its grade (数据分级, L1–L4) and personal-information
//! tag, and the enumerations the CSV formats use. DESIGN.md, "Datasets" and "Classification and
//! grading", is the source; when in doubt a field takes the higher grade (就高从严).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The grade of a field (数据分级). Ordered: `L1 < L2 < L3 < L4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grade {
    /// 公开: may be published.
    L1,
    /// 内部: internal workflow data (dates, closure method, amounts).
    L2,
    /// 敏感: identifies cases or staff, links to persons.
    L3,
    /// 个人: personal and sensitive personal information.
    L4,
}

impl Grade {
    /// Parses `L1`..`L4`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "L1" => Some(Grade::L1),
            "L2" => Some(Grade::L2),
            "L3" => Some(Grade::L3),
            "L4" => Some(Grade::L4),
            _ => None,
        }
    }

    /// The label `L1`..`L4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::L1 => "L1",
            Grade::L2 => "L2",
            Grade::L3 => "L3",
            Grade::L4 => "L4",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Personal-information tag of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personal {
    /// Not personal.
    None,
    /// P: personal information.
    Personal,
    /// S: sensitive personal information (PIPL art. 28).
    Sensitive,
    /// K: an identifier that links to a person or a published judgment.
    Linking,
}

impl Personal {
    /// The one-letter tag used in DESIGN.md (empty for none).
    pub fn tag(self) -> &'static str {
        match self {
            Personal::None => "",
            Personal::Personal => "P",
            Personal::Sensitive => "S",
            Personal::Linking => "K",
        }
    }
}

/// The value type of a CSV column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Free or coded text.
    Text,
    /// Six-digit GB/T 2260 region code.
    Region,
    /// `YYYY-MM-DD`.
    Date,
    /// `true` / `false`.
    Bool,
    /// Yuan with up to two decimals, stored as integer fen.
    Amount,
    /// Non-negative integer.
    Integer,
    /// One of a fixed list of labels.
    Enum(&'static [&'static str]),
}

/// How a node keeps a field after import (minimisation at the edge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Stored as given.
    Raw,
    /// Replaced by a keyed pseudonym (HMAC-SHA-256 under the node's secret).
    Pseudonym,
    /// Replaced by coarse derived attributes (birth year, sex, region of issue).
    Derived,
    /// Free text stored only after scrubbing (names → 某, identifiers, phones and addresses below county
    /// level removed), as judgments are for publication.
    Scrubbed,
    /// An address stored only as the code of its county (区/县); dropped when no county is recognised.
    County,
    /// Not stored at all.
    Dropped,
}

impl Storage {
    /// Lowercase label.
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Raw => "raw",
            Storage::Pseudonym => "pseudonym",
            Storage::Derived => "derived",
            Storage::Scrubbed => "scrubbed",
            Storage::County => "county",
            Storage::Dropped => "dropped",
        }
    }
}

/// One column of a dataset.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Column name in the CSV header.
    pub name: &'static str,
    /// Value type.
    pub ty: FieldType,
    /// Whether an empty cell is allowed.
    pub optional: bool,
    /// Grade.
    pub grade: Grade,
    /// Personal-information tag.
    pub personal: Personal,
    /// What a node stores by default.
    pub storage: Storage,
}

/// A dataset of the federation.
#[derive(Clone, Copy, Debug)]
pub struct Dataset {
    /// Name (`cases`, `mediations`, `population`).
    pub name: &'static str,
    /// The primary-key column.
    pub key: &'static str,
    /// Columns in CSV order.
    pub fields: &'static [Field],
}

impl Dataset {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// 案件类型代字, in DESIGN.md order.
pub const TYPE_CODES: &[&str] =
    &["民初", "民终", "民申", "民再", "刑初", "刑终", "行初", "行终", "执", "执恢", "执保", "执异"];

/// 结案方式.
pub const CLOSURE_METHODS: &[&str] = &[
    "判决",
    "调解",
    "准予撤诉",
    "按撤诉处理",
    "驳回起诉",
    "移送",
    "终结",
    "维持原判",
    "改判",
    "发回重审",
    "执行完毕",
    "终结本次执行程序",
];

/// 当事人类型.
pub const PARTY_KINDS: &[&str] = &["自然人", "法人", "非法人组织"];

/// 调解组织类型.
pub const ORG_TYPES: &[&str] = &["人民调解委员会", "行业性专业性调解组织", "法院特邀调解"];
/// 纠纷类型.
pub const DISPUTE_TYPES: &[&str] = &["婚姻家庭", "邻里", "合同", "损害赔偿", "劳动", "物业", "民间借贷", "其他"];
/// 调解来源.
pub const MEDIATION_SOURCES: &[&str] = &["当事人申请", "主动排查", "法院委派"];
/// 调解结果.
pub const MEDIATION_RESULTS: &[&str] = &["成功", "失败", "终止"];

/// Division (民事/刑事/行政/执行) of a case type.
pub fn division_of(type_code: &str) -> Option<&'static str> {
    Some(match type_code {
        "民初" | "民终" | "民申" | "民再" => "民事",
        "刑初" | "刑终" => "刑事",
        "行初" | "行终" => "行政",
        "执" | "执恢" | "执保" | "执异" => "执行",
        _ => return None,
    })
}

/// Instance (一审/二审/再审/执行) of a case type.
pub fn instance_of(type_code: &str) -> Option<&'static str> {
    Some(match type_code {
        "民初" | "刑初" | "行初" => "一审",
        "民终" | "刑终" | "行终" => "二审",
        "民申" | "民再" => "再审",
        "执" | "执恢" | "执保" | "执异" => "执行",
        _ => return None,
    })
}

use FieldType as T;
use Personal as Pi;
use Storage as St;

const fn f(
    name: &'static str,
    ty: FieldType,
    optional: bool,
    grade: Grade,
    personal: Personal,
    storage: Storage,
) -> Field {
    Field { name, ty, optional, grade, personal, storage }
}

/// `cases`: one row per case, held by court nodes.
pub const CASES: Dataset = Dataset {
    name: "cases",
    key: "case_no",
    fields: &[
        f("case_no", T::Text, false, Grade::L3, Pi::Linking, St::Raw),
        f("court_code", T::Text, false, Grade::L1, Pi::None, St::Raw),
        f("region_code", T::Region, false, Grade::L1, Pi::None, St::Raw),
        f("type_code", T::Enum(TYPE_CODES), false, Grade::L1, Pi::None, St::Raw),
        f("cause", T::Text, false, Grade::L1, Pi::None, St::Raw),
        f("filed_on", T::Date, false, Grade::L2, Pi::None, St::Raw),
        f("closed_on", T::Date, true, Grade::L2, Pi::None, St::Raw),
        f("deadline_on", T::Date, false, Grade::L2, Pi::None, St::Raw),
        f("closure_method", T::Enum(CLOSURE_METHODS), true, Grade::L2, Pi::None, St::Raw),
        f("appealed", T::Bool, false, Grade::L2, Pi::None, St::Raw),
        f("origin_case_no", T::Text, true, Grade::L3, Pi::Linking, St::Pseudonym),
        f("claim_amount", T::Amount, true, Grade::L2, Pi::None, St::Raw),
        f("enforce_requested", T::Amount, true, Grade::L3, Pi::None, St::Raw),
        f("enforce_collected", T::Amount, true, Grade::L3, Pi::None, St::Raw),
        f("online_filed", T::Bool, false, Grade::L2, Pi::None, St::Raw),
        f("pre_suit_mediated", T::Bool, false, Grade::L2, Pi::None, St::Raw),
        f("judge_id", T::Text, false, Grade::L3, Pi::Personal, St::Pseudonym),
        f("plaintiff_kind", T::Enum(PARTY_KINDS), false, Grade::L2, Pi::None, St::Raw),
        f("defendant_kind", T::Enum(PARTY_KINDS), false, Grade::L2, Pi::None, St::Raw),
        f("plaintiff_name", T::Text, false, Grade::L4, Pi::Personal, St::Pseudonym),
        f("defendant_name", T::Text, false, Grade::L4, Pi::Personal, St::Pseudonym),
        f("plaintiff_id_no", T::Text, true, Grade::L4, Pi::Sensitive, St::Derived),
        f("defendant_id_no", T::Text, true, Grade::L4, Pi::Sensitive, St::Derived),
        f("plaintiff_phone", T::Text, true, Grade::L4, Pi::Personal, St::Dropped),
        f("defendant_phone", T::Text, true, Grade::L4, Pi::Personal, St::Dropped),
        f("defendant_address", T::Text, true, Grade::L4, Pi::Personal, St::County),
        f("minor_involved", T::Bool, false, Grade::L4, Pi::Sensitive, St::Raw),
        f("summary", T::Text, true, Grade::L4, Pi::Personal, St::Scrubbed),
    ],
};

/// `mediations`: one row per mediation, held by justice-bureau nodes.
pub const MEDIATIONS: Dataset = Dataset {
    name: "mediations",
    key: "mediation_id",
    fields: &[
        f("mediation_id", T::Text, false, Grade::L3, Pi::Linking, St::Raw),
        f("region_code", T::Region, false, Grade::L1, Pi::None, St::Raw),
        f("org_type", T::Enum(ORG_TYPES), false, Grade::L1, Pi::None, St::Raw),
        f("dispute_type", T::Enum(DISPUTE_TYPES), false, Grade::L1, Pi::None, St::Raw),
        f("source", T::Enum(MEDIATION_SOURCES), false, Grade::L1, Pi::None, St::Raw),
        f("accepted_on", T::Date, false, Grade::L2, Pi::None, St::Raw),
        f("closed_on", T::Date, true, Grade::L2, Pi::None, St::Raw),
        f("result", T::Enum(MEDIATION_RESULTS), true, Grade::L2, Pi::None, St::Raw),
        f("agreement_amount", T::Amount, true, Grade::L2, Pi::None, St::Raw),
        f("auto_fulfilled", T::Bool, false, Grade::L2, Pi::None, St::Raw),
        f("judicial_confirm_case_no", T::Text, true, Grade::L3, Pi::Linking, St::Pseudonym),
        f("party_name", T::Text, false, Grade::L4, Pi::Personal, St::Pseudonym),
        f("party_id_no", T::Text, true, Grade::L4, Pi::Sensitive, St::Derived),
        f("party_phone", T::Text, true, Grade::L4, Pi::Personal, St::Dropped),
        f("mediator_id", T::Text, false, Grade::L3, Pi::Personal, St::Pseudonym),
    ],
};

/// `population`: one row per region and year, held by the statistics bureau.
pub const POPULATION: Dataset = Dataset {
    name: "population",
    key: "region_code",
    fields: &[
        f("region_code", T::Region, false, Grade::L1, Pi::None, St::Raw),
        f("year", T::Integer, false, Grade::L1, Pi::None, St::Raw),
        f("resident_pop", T::Integer, false, Grade::L1, Pi::None, St::Raw),
        f("registered_floating_pop", T::Integer, false, Grade::L1, Pi::None, St::Raw),
        f("hukou_pop", T::Integer, false, Grade::L1, Pi::None, St::Raw),
    ],
};

/// Every dataset of the federation.
pub const DATASETS: &[Dataset] = &[CASES, MEDIATIONS, POPULATION];

/// The dataset called `name`.
pub fn dataset(name: &str) -> Option<&'static Dataset> {
    DATASETS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_fields_are_graded_l3_or_higher_and_not_kept_raw_unless_needed() {
        for ds in DATASETS {
            for field in ds.fields {
                if field.personal != Personal::None {
                    assert!(
                        field.grade >= Grade::L3,
                        "{}.{} is personal but graded {}",
                        ds.name,
                        field.name,
                        field.grade
                    );
                }
                if field.grade == Grade::L4 && field.ty == FieldType::Text {
                    assert_ne!(field.storage, Storage::Raw, "{}.{} would be stored raw", ds.name, field.name);
                }
            }
        }
    }

    #[test]
    fn every_type_code_has_a_division_and_instance() {
        for t in TYPE_CODES {
            assert!(division_of(t).is_some() && instance_of(t).is_some(), "{t}");
        }
        assert_eq!(division_of("民初"), Some("民事"));
        assert_eq!(instance_of("刑终"), Some("二审"));
        assert_eq!(division_of("民特"), None);
    }
}
