//! `cases.csv` for one basic court: one row per case, in filing order.
//!
//! What makes the rows look like a real court's: the mix of case types (民初 about 58 %, 执 about
//! 20 %, …), causes skewed the way Xiamen's dockets are, durations and statutory time limits per
//! type (so a realistic share closes late), cases still pending at the as-of date (recent ones, and
//! a few old ones pending for years), enforcement amounts that are rarely recovered in full, and
//! parties whose kinds fit the cause (banks sue card holders; the procuratorate prosecutes). The fifth
//! court's filings surge in the latest year, so that a federation of five or more courts has a region
//! whose 立案偏离度 is red.

use std::path::Path;

use crate::GenError;
use crate::calendar::{Day, civil_from_day, day_from_civil};
use crate::output::CsvOut;
use crate::people::{Party, PartyKind, People, Role, push_address};
use crate::regions::Region;
use crate::sample::{GenRng, Weighted, chance, pick, rng_for, uniform, uniform64};
use crate::seasons::{spread_over_year, spread_over_years_surging};

/// The court (by position) whose filings surge in the latest year.
pub(crate) const SURGE_COURT: usize = 4;
/// How much heavier its latest year is than its growth alone would make it, per mille.
pub(crate) const SURGE_PER_MILLE: u64 = 1400;
use crate::text::{push_date, push_padded, push_uint, push_yuan, push_yuan_grouped};

/// The columns of `cases.csv`, in order.
pub const CASE_COLUMNS: [&str; 28] = [
    "case_no",
    "court_code",
    "region_code",
    "type_code",
    "cause",
    "filed_on",
    "closed_on",
    "deadline_on",
    "closure_method",
    "appealed",
    "origin_case_no",
    "claim_amount",
    "enforce_requested",
    "enforce_collected",
    "online_filed",
    "pre_suit_mediated",
    "judge_id",
    "plaintiff_kind",
    "defendant_kind",
    "plaintiff_name",
    "defendant_name",
    "plaintiff_id_no",
    "defendant_id_no",
    "plaintiff_phone",
    "defendant_phone",
    "defendant_address",
    "minor_involved",
    "summary",
];

/// Every `type_code` (案件类型代字).
#[rustfmt::skip]
pub const TYPE_CODES: [&str; 12] = [
    "民初", "民终", "民申", "民再", "刑初", "刑终", "行初", "行终", "执", "执恢", "执保", "执异",
];

/// Every `closure_method` (结案方式).
#[rustfmt::skip]
pub const CLOSURE_METHODS: [&str; 12] = [
    "判决", "调解", "准予撤诉", "按撤诉处理", "驳回起诉", "移送", "终结", "维持原判", "改判", "发回重审", "执行完毕", "终结本次执行程序",
];

/// Every party kind (当事人类型).
pub const PARTY_KINDS: [&str; 3] = ["自然人", "法人", "非法人组织"];

/// Case types, in the order of `TYPE_CODES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaseType {
    /// 民初
    CivilFirst,
    /// 民终
    CivilAppeal,
    /// 民申
    CivilPetition,
    /// 民再
    CivilRetrial,
    /// 刑初
    CriminalFirst,
    /// 刑终
    CriminalAppeal,
    /// 行初
    AdminFirst,
    /// 行终
    AdminAppeal,
    /// 执
    Enforcement,
    /// 执恢
    EnforcementResumed,
    /// 执保
    Preservation,
    /// 执异
    EnforcementObjection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Division {
    Civil,
    Criminal,
    Administrative,
    Enforcement,
}

impl CaseType {
    fn label(self) -> &'static str {
        TYPE_CODES[self as usize]
    }

    fn division(self) -> Division {
        match self {
            CaseType::CivilFirst | CaseType::CivilAppeal | CaseType::CivilPetition | CaseType::CivilRetrial => {
                Division::Civil
            }
            CaseType::CriminalFirst | CaseType::CriminalAppeal => Division::Criminal,
            CaseType::AdminFirst | CaseType::AdminAppeal => Division::Administrative,
            _ => Division::Enforcement,
        }
    }
}

/// Share of each type in a basic court's intake, per mille.
#[rustfmt::skip]
const TYPE_MIX: [(CaseType, u32); 12] = [
    (CaseType::CivilFirst, 580), (CaseType::Enforcement, 200), (CaseType::CriminalFirst, 80),
    (CaseType::Preservation, 40), (CaseType::EnforcementObjection, 20), (CaseType::EnforcementResumed, 20),
    (CaseType::CivilAppeal, 20), (CaseType::CivilPetition, 10), (CaseType::CivilRetrial, 5),
    (CaseType::CriminalAppeal, 10), (CaseType::AdminFirst, 10), (CaseType::AdminAppeal, 5),
];

/// Who the parties of a civil dispute usually are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Loan,
    Bank,
    Card,
    MicroLoan,
    Trade,
    Consumer,
    Labour,
    Divorce,
    Child,
    Family,
    Tort,
    Product,
    Medical,
    School,
    Property,
    Housing,
    Construction,
    Corporate,
    Insurance,
    Trademark,
}

/// How large the money at stake usually is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Amount {
    /// Fees, card debts, wages: mostly a few thousand yuan.
    Small,
    /// Most contract and tort disputes: 5 000–200 000 yuan, a few millions.
    Standard,
    /// Bank loans, construction, shares: hundreds of thousands to millions.
    Large,
    /// Family property: often no money claim at all.
    Family,
    /// Non-monetary claims (nuisance, dissolution): usually none.
    NonMonetary,
}

struct CivilCause {
    name: &'static str,
    /// Weight among first-instance civil filings.
    trial: u32,
    /// Weight among enforcement filings (执行案件 carry the cause of the underlying dispute).
    enforcement: u32,
    profile: Profile,
    amount: Amount,
}

const fn cause(name: &'static str, trial: u32, enforcement: u32, profile: Profile, amount: Amount) -> CivilCause {
    CivilCause { name, trial, enforcement, profile, amount }
}

/// Civil causes (民事案由) with their weights, roughly as a Xiamen district court's docket.
const CIVIL_CAUSES: &[CivilCause] = &[
    cause("民间借贷纠纷", 140, 200, Profile::Loan, Amount::Standard),
    cause("买卖合同纠纷", 120, 130, Profile::Trade, Amount::Standard),
    cause("金融借款合同纠纷", 100, 150, Profile::Bank, Amount::Large),
    cause("机动车交通事故责任纠纷", 80, 40, Profile::Tort, Amount::Standard),
    cause("信用卡纠纷", 70, 90, Profile::Card, Amount::Small),
    cause("离婚纠纷", 60, 10, Profile::Divorce, Amount::Family),
    cause("劳动争议", 50, 30, Profile::Labour, Amount::Small),
    cause("物业服务合同纠纷", 50, 40, Profile::Property, Amount::Small),
    cause("房屋租赁合同纠纷", 40, 40, Profile::Housing, Amount::Standard),
    cause("建设工程施工合同纠纷", 30, 30, Profile::Construction, Amount::Large),
    cause("追索劳动报酬纠纷", 30, 20, Profile::Labour, Amount::Small),
    cause("生命权、身体权、健康权纠纷", 30, 10, Profile::Tort, Amount::Standard),
    cause("服务合同纠纷", 30, 20, Profile::Trade, Amount::Standard),
    cause("小额借款合同纠纷", 20, 30, Profile::MicroLoan, Amount::Small),
    cause("承揽合同纠纷", 20, 15, Profile::Trade, Amount::Standard),
    cause("租赁合同纠纷", 20, 15, Profile::Trade, Amount::Standard),
    cause("房屋买卖合同纠纷", 20, 10, Profile::Housing, Amount::Large),
    cause("追偿权纠纷", 20, 25, Profile::Loan, Amount::Standard),
    cause("合同纠纷", 20, 15, Profile::Trade, Amount::Standard),
    cause("劳务合同纠纷", 15, 10, Profile::Labour, Amount::Small),
    cause("装饰装修合同纠纷", 15, 10, Profile::Trade, Amount::Standard),
    cause("保险人代位求偿权纠纷", 15, 10, Profile::Insurance, Amount::Standard),
    cause("融资租赁合同纠纷", 10, 15, Profile::Trade, Amount::Large),
    cause("网络购物合同纠纷", 10, 3, Profile::Consumer, Amount::Small),
    cause("保证合同纠纷", 10, 10, Profile::Loan, Amount::Standard),
    cause("不当得利纠纷", 10, 8, Profile::Loan, Amount::Standard),
    cause("财产损害赔偿纠纷", 10, 5, Profile::Tort, Amount::Standard),
    cause("提供劳务者受害责任纠纷", 10, 5, Profile::Tort, Amount::Standard),
    cause("继承纠纷", 10, 1, Profile::Family, Amount::Family),
    cause("抚养纠纷", 8, 2, Profile::Child, Amount::Family),
    cause("离婚后财产纠纷", 7, 2, Profile::Family, Amount::Family),
    cause("委托合同纠纷", 7, 5, Profile::Trade, Amount::Standard),
    cause("医疗损害责任纠纷", 5, 2, Profile::Medical, Amount::Standard),
    cause("运输合同纠纷", 5, 3, Profile::Trade, Amount::Standard),
    cause("股权转让纠纷", 5, 5, Profile::Corporate, Amount::Large),
    cause("侵害商标权纠纷", 5, 3, Profile::Trademark, Amount::Small),
    cause("排除妨害纠纷", 5, 1, Profile::Housing, Amount::NonMonetary),
    cause("相邻关系纠纷", 4, 1, Profile::Housing, Amount::NonMonetary),
    cause("产品责任纠纷", 3, 1, Profile::Product, Amount::Standard),
    cause("确认合同无效纠纷", 3, 0, Profile::Corporate, Amount::NonMonetary),
    cause("同居关系纠纷", 3, 1, Profile::Family, Amount::Family),
    cause("分家析产纠纷", 3, 1, Profile::Family, Amount::Family),
    cause("名誉权纠纷", 3, 0, Profile::Tort, Amount::Small),
    cause("债权人撤销权纠纷", 2, 1, Profile::Corporate, Amount::Standard),
    cause("教育机构责任纠纷", 2, 1, Profile::School, Amount::Standard),
    cause("旅游合同纠纷", 2, 1, Profile::Consumer, Amount::Small),
    cause("公司解散纠纷", 1, 0, Profile::Corporate, Amount::NonMonetary),
    cause("股东知情权纠纷", 1, 0, Profile::Corporate, Amount::NonMonetary),
];

/// Criminal causes (罪名), skewed as in a coastal city's basic court: drunk driving and theft lead,
/// telecom-fraud helpers (帮信罪) close behind, smuggling because Xiamen is a port.
#[rustfmt::skip]
const CRIMINAL_CAUSES: &[(&str, u32)] = &[
    ("危险驾驶罪", 250), ("盗窃罪", 180), ("帮助信息网络犯罪活动罪", 120), ("诈骗罪", 100), ("故意伤害罪", 60),
    ("掩饰、隐瞒犯罪所得、犯罪所得收益罪", 50), ("寻衅滋事罪", 30), ("开设赌场罪", 30), ("走私普通货物、物品罪", 20), ("贩卖毒品罪", 20), ("交通肇事罪", 20),
    ("信用卡诈骗罪", 15), ("妨害公务罪", 15), ("非法吸收公众存款罪", 15), ("容留他人吸毒罪", 10), ("职务侵占罪", 10), ("合同诈骗罪", 10),
    ("侵犯公民个人信息罪", 10), ("销售假冒注册商标的商品罪", 8), ("聚众斗殴罪", 5), ("抢劫罪", 5), ("假冒注册商标罪", 5), ("拒不执行判决、裁定罪", 5),
    ("非法经营罪", 5), ("敲诈勒索罪", 5), ("污染环境罪", 2),
];

/// Administrative causes (行政案由) with the act complained of, for the summary.
const ADMIN_CAUSES: &[(&str, u32, &str)] = &[
    ("行政处罚", 250, "作出的行政处罚决定"),
    ("行政确认", 120, "作出的工伤认定决定"),
    ("不履行法定职责", 100, "不履行法定职责"),
    ("政府信息公开", 100, "作出的政府信息公开答复"),
    ("行政登记", 80, "作出的不动产登记行为"),
    ("行政复议", 80, "作出的行政复议决定"),
    ("行政强制", 60, "实施的行政强制措施"),
    ("行政征收", 50, "作出的房屋征收决定"),
    ("行政协议", 40, "解除行政协议的行为"),
    ("行政许可", 40, "作出的不予行政许可决定"),
    ("行政赔偿", 30, "拒绝行政赔偿的决定"),
    ("行政给付", 20, "不予行政给付的决定"),
    ("行政裁决", 10, "作出的行政裁决"),
];

// Closure methods by type, per mille. 民申 and 执异 end in rulings the enumeration has no label
// for: 驳回再审申请 / 驳回异议 are recorded as 驳回起诉, 撤回申请 as 准予撤诉.
#[rustfmt::skip]
const M_CIVIL_FIRST: &[(&str, u32)] = &[
    ("判决", 380), ("调解", 220), ("准予撤诉", 280), ("按撤诉处理", 70), ("驳回起诉", 30), ("移送", 20),
];
#[rustfmt::skip]
const M_CIVIL_FIRST_FAMILY: &[(&str, u32)] = &[
    ("判决", 280), ("调解", 350), ("准予撤诉", 320), ("按撤诉处理", 30), ("驳回起诉", 10), ("移送", 10),
];
#[rustfmt::skip]
const M_CIVIL_FIRST_FINANCE: &[(&str, u32)] = &[
    ("判决", 620), ("调解", 120), ("准予撤诉", 200), ("按撤诉处理", 40), ("驳回起诉", 10), ("移送", 10),
];
#[rustfmt::skip]
const M_CIVIL_APPEAL: &[(&str, u32)] = &[
    ("维持原判", 650), ("改判", 120), ("发回重审", 40), ("调解", 50), ("准予撤诉", 120), ("按撤诉处理", 20),
];
const M_CIVIL_PETITION: &[(&str, u32)] = &[("驳回起诉", 750), ("准予撤诉", 150), ("终结", 100)];
#[rustfmt::skip]
const M_CIVIL_RETRIAL: &[(&str, u32)] = &[
    ("维持原判", 500), ("改判", 300), ("发回重审", 100), ("调解", 50), ("准予撤诉", 50),
];
const M_CRIMINAL_FIRST: &[(&str, u32)] = &[("判决", 950), ("准予撤诉", 20), ("终结", 30)];
#[rustfmt::skip]
const M_CRIMINAL_APPEAL: &[(&str, u32)] = &[
    ("维持原判", 750), ("改判", 150), ("发回重审", 50), ("准予撤诉", 50),
];
#[rustfmt::skip]
const M_ADMIN_FIRST: &[(&str, u32)] = &[
    ("判决", 450), ("驳回起诉", 250), ("准予撤诉", 250), ("调解", 30), ("移送", 20),
];
#[rustfmt::skip]
const M_ADMIN_APPEAL: &[(&str, u32)] = &[
    ("维持原判", 750), ("改判", 80), ("发回重审", 50), ("准予撤诉", 120),
];
const M_ENFORCEMENT: &[(&str, u32)] = &[("执行完毕", 450), ("终结本次执行程序", 450), ("终结", 100)];
const M_ENFORCEMENT_RESUMED: &[(&str, u32)] = &[("执行完毕", 350), ("终结本次执行程序", 550), ("终结", 100)];
const M_PRESERVATION: &[(&str, u32)] = &[("执行完毕", 950), ("终结", 50)];
const M_OBJECTION: &[(&str, u32)] = &[("驳回起诉", 600), ("准予撤诉", 250), ("终结", 150)];

type Buckets = &'static [((u32, u32), u32)];

// Days from filing to closing, by type and course.
#[rustfmt::skip]
const D_CIVIL_SIMPLE: Buckets = &[
    ((7, 30), 25), ((31, 60), 35), ((61, 90), 28), ((91, 150), 9), ((151, 240), 3),
];
#[rustfmt::skip]
const D_CIVIL_ORDINARY: Buckets = &[
    ((30, 90), 20), ((91, 180), 55), ((181, 270), 15), ((271, 365), 6), ((366, 540), 4),
];
#[rustfmt::skip]
const D_WITHDRAWN: Buckets = &[
    ((3, 20), 40), ((21, 45), 35), ((46, 90), 20), ((91, 180), 5),
];
const D_TRANSFERRED: Buckets = &[((3, 30), 1)];
#[rustfmt::skip]
const D_CIVIL_APPEAL: Buckets = &[
    ((20, 60), 40), ((61, 90), 40), ((91, 150), 15), ((151, 240), 5),
];
const D_PETITION: Buckets = &[((20, 60), 35), ((61, 90), 40), ((91, 180), 25)];
const D_RETRIAL: Buckets = &[((40, 120), 40), ((121, 180), 35), ((181, 365), 25)];
#[rustfmt::skip]
const D_CRIMINAL_FIRST: Buckets = &[
    ((5, 15), 30), ((16, 40), 35), ((41, 90), 25), ((91, 180), 8), ((181, 365), 2),
];
#[rustfmt::skip]
const D_CRIMINAL_APPEAL: Buckets = &[
    ((15, 45), 40), ((46, 60), 35), ((61, 120), 20), ((121, 200), 5),
];
#[rustfmt::skip]
const D_ADMIN_FIRST: Buckets = &[
    ((20, 90), 30), ((91, 180), 45), ((181, 300), 20), ((301, 450), 5),
];
const D_ADMIN_APPEAL: Buckets = &[((20, 60), 35), ((61, 90), 40), ((91, 180), 25)];
#[rustfmt::skip]
const D_ENFORCEMENT: Buckets = &[
    ((5, 30), 10), ((31, 90), 20), ((91, 180), 35), ((181, 300), 28), ((301, 500), 7),
];
const D_PRESERVATION: Buckets = &[((1, 7), 40), ((8, 30), 52), ((31, 90), 8)];
#[rustfmt::skip]
const D_OBJECTION: Buckets = &[
    ((5, 15), 45), ((16, 30), 35), ((31, 60), 15), ((61, 120), 5),
];

type MoneyBuckets = &'static [((u64, u64), u32)];

// Amounts in yuan.
#[rustfmt::skip]
const A_SMALL: MoneyBuckets = &[
    ((300, 3_000), 25), ((3_000, 20_000), 45), ((20_000, 80_000), 25), ((80_000, 300_000), 5),
];
#[rustfmt::skip]
const A_STANDARD: MoneyBuckets = &[
    ((500, 5_000), 70), ((5_000, 20_000), 280), ((20_000, 50_000), 250), ((50_000, 200_000), 280),
    ((200_000, 1_000_000), 70), ((1_000_000, 5_000_000), 15), ((5_000_000, 50_000_000), 3),
];
#[rustfmt::skip]
const A_LARGE: MoneyBuckets = &[
    ((20_000, 100_000), 300), ((100_000, 500_000), 400), ((500_000, 2_000_000), 220),
    ((2_000_000, 20_000_000), 70), ((20_000_000, 100_000_000), 10),
];
const A_FAMILY: MoneyBuckets = &[((10_000, 200_000), 55), ((200_000, 2_000_000), 45)];

/// The statutory time limit and how a case may run against it.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// 审限, days from filing.
    limit: u32,
    /// What an approved extension (or conversion to ordinary procedure) adds.
    extension: u32,
    /// How often a case that needs the extension gets it, per 10 000.
    extension_per_10k: u32,
}

const fn limits(limit: u32, extension: u32, extension_per_10k: u32) -> Limits {
    Limits { limit, extension, extension_per_10k }
}

/// A drawn closure: method, duration and limits.
struct Course {
    method: &'static str,
    duration: u32,
    limits: Limits,
}

/// All weighted tables, built once per court file.
struct Tables {
    types: Weighted<CaseType>,
    civil_trial: Weighted<usize>,
    civil_enforcement: Weighted<usize>,
    criminal: Weighted<&'static str>,
    admin: Weighted<usize>,
    civil_first: Weighted<&'static str>,
    civil_first_family: Weighted<&'static str>,
    civil_first_finance: Weighted<&'static str>,
    /// Methods for every type other than 民初, indexed by `CaseType as usize`.
    methods: Vec<Weighted<&'static str>>,
    civil_simple: Weighted<(u32, u32)>,
    civil_ordinary: Weighted<(u32, u32)>,
    withdrawn: Weighted<(u32, u32)>,
    transferred: Weighted<(u32, u32)>,
    /// Durations for every type other than 民初, indexed by `CaseType as usize`.
    durations: Vec<Weighted<(u32, u32)>>,
    small: Weighted<(u64, u64)>,
    standard: Weighted<(u64, u64)>,
    large: Weighted<(u64, u64)>,
    family: Weighted<(u64, u64)>,
}

fn table<T: Copy>(pairs: &[(T, u32)]) -> Weighted<T> {
    Weighted::new(pairs.iter().copied())
}

impl Tables {
    fn new() -> Self {
        let methods = [
            M_CIVIL_FIRST,
            M_CIVIL_APPEAL,
            M_CIVIL_PETITION,
            M_CIVIL_RETRIAL,
            M_CRIMINAL_FIRST,
            M_CRIMINAL_APPEAL,
            M_ADMIN_FIRST,
            M_ADMIN_APPEAL,
            M_ENFORCEMENT,
            M_ENFORCEMENT_RESUMED,
            M_PRESERVATION,
            M_OBJECTION,
        ];
        let durations = [
            D_CIVIL_ORDINARY,
            D_CIVIL_APPEAL,
            D_PETITION,
            D_RETRIAL,
            D_CRIMINAL_FIRST,
            D_CRIMINAL_APPEAL,
            D_ADMIN_FIRST,
            D_ADMIN_APPEAL,
            D_ENFORCEMENT,
            D_ENFORCEMENT,
            D_PRESERVATION,
            D_OBJECTION,
        ];
        Self {
            types: table(&TYPE_MIX),
            civil_trial: Weighted::new(CIVIL_CAUSES.iter().enumerate().map(|(i, c)| (i, c.trial))),
            civil_enforcement: Weighted::new(CIVIL_CAUSES.iter().enumerate().map(|(i, c)| (i, c.enforcement))),
            criminal: table(CRIMINAL_CAUSES),
            admin: Weighted::new(ADMIN_CAUSES.iter().enumerate().map(|(i, c)| (i, c.1))),
            civil_first: table(M_CIVIL_FIRST),
            civil_first_family: table(M_CIVIL_FIRST_FAMILY),
            civil_first_finance: table(M_CIVIL_FIRST_FINANCE),
            methods: methods.iter().map(|m| table(m)).collect(),
            civil_simple: table(D_CIVIL_SIMPLE),
            civil_ordinary: table(D_CIVIL_ORDINARY),
            withdrawn: table(D_WITHDRAWN),
            transferred: table(D_TRANSFERRED),
            durations: durations.iter().map(|d| table(d)).collect(),
            small: table(A_SMALL),
            standard: table(A_STANDARD),
            large: table(A_LARGE),
            family: table(A_FAMILY),
        }
    }

    /// Draws how a case of type `ty` would end, if nothing kept it pending.
    fn course(&self, rng: &mut GenRng, ty: CaseType, profile: Option<Profile>) -> Course {
        if ty == CaseType::CivilFirst {
            let methods = match profile {
                Some(Profile::Divorce | Profile::Child | Profile::Family) => &self.civil_first_family,
                Some(Profile::Bank | Profile::Card | Profile::MicroLoan) => &self.civil_first_finance,
                _ => &self.civil_first,
            };
            let method = methods.pick(rng);
            // About 70 % of first-instance civil cases are tried by the simple procedure (简易程序):
            // 3 months; ordinary procedure 6 months. Converting to ordinary adds 3 months.
            let simple = chance(rng, 7000);
            let limits = if simple { limits(90, 90, 6000) } else { limits(180, 180, 6000) };
            let durations = match method {
                "准予撤诉" | "按撤诉处理" => &self.withdrawn,
                "移送" => &self.transferred,
                _ if simple => &self.civil_simple,
                _ => &self.civil_ordinary,
            };
            return Course { method, duration: durations.pick_in(rng), limits };
        }
        let i = ty as usize;
        let limits = match ty {
            CaseType::CivilFirst | CaseType::CivilRetrial => limits(180, 180, 6000),
            CaseType::CivilAppeal | CaseType::CivilPetition | CaseType::AdminAppeal => limits(90, 90, 6000),
            CaseType::CriminalFirst => limits(90, 90, 6000),
            CaseType::CriminalAppeal => limits(60, 60, 6000),
            CaseType::AdminFirst => limits(180, 90, 6000),
            CaseType::Enforcement | CaseType::EnforcementResumed => limits(180, 90, 7000),
            CaseType::Preservation => limits(30, 30, 6000),
            CaseType::EnforcementObjection => limits(15, 15, 7000),
        };
        Course { method: self.methods[i].pick(rng), duration: self.durations[i].pick_in(rng), limits }
    }

    /// A money amount in fen for a dispute of class `class`, or `None` when there is no money claim.
    fn amount(&self, rng: &mut GenRng, class: Amount) -> Option<u64> {
        let yuan = match class {
            Amount::Small => self.small.pick_in(rng),
            Amount::Standard => self.standard.pick_in(rng),
            Amount::Large => self.large.pick_in(rng),
            Amount::Family if chance(rng, 5500) => return None,
            Amount::Family => self.family.pick_in(rng),
            Amount::NonMonetary if chance(rng, 8000) => return None,
            Amount::NonMonetary => self.small.pick_in(rng),
        };
        // Claims are mostly round sums; interest and fees make the rest exact to the fen.
        let fen = match uniform(rng, 0, 99) {
            0..=44 if yuan >= 10_000 => yuan / 1000 * 100_000,
            0..=69 => yuan / 100 * 10_000,
            70..=84 => yuan * 100,
            _ => yuan * 100 + u64::from(uniform(rng, 1, 99)),
        };
        Some(fen.max(100))
    }
}

/// The parties' roles for a civil dispute with `profile` (plaintiff, defendant).
fn civil_roles(rng: &mut GenRng, profile: Profile) -> (Role, Role) {
    let either = |rng: &mut GenRng, person_per_10k: u32, org: Role| {
        if chance(rng, person_per_10k) { Role::Person } else { org }
    };
    match profile {
        Profile::Loan => (either(rng, 8500, Role::Company), either(rng, 8800, Role::Company)),
        Profile::Bank => {
            (if chance(rng, 8500) { Role::Bank } else { Role::ConsumerFinance }, either(rng, 8500, Role::Company))
        }
        Profile::Card => (Role::CardCentre, Role::Person),
        Profile::MicroLoan => (Role::ConsumerFinance, Role::Person),
        Profile::Trade => (either(rng, 5000, Role::Company), either(rng, 4500, Role::Company)),
        Profile::Consumer => (Role::Person, either(rng, 500, Role::Company)),
        Profile::Labour => {
            if chance(rng, 8500) {
                (Role::Person, either(rng, 1500, Role::Company))
            } else {
                (Role::Company, Role::Person)
            }
        }
        Profile::Divorce | Profile::Child | Profile::Family => (Role::Person, Role::Person),
        Profile::Tort => {
            let defendant = match uniform(rng, 0, 99) {
                0..=54 => Role::Person,
                55..=84 => Role::Insurer,
                _ => Role::Company,
            };
            (either(rng, 9200, Role::Company), defendant)
        }
        Profile::Product => (Role::Person, Role::Company),
        Profile::Medical => (Role::Person, Role::Hospital),
        Profile::School => (Role::Person, Role::School),
        Profile::Property => (Role::PropertyManager, either(rng, 9500, Role::Company)),
        Profile::Housing => (either(rng, 7500, Role::Company), either(rng, 7000, Role::Company)),
        Profile::Construction => {
            let plaintiff = match uniform(rng, 0, 99) {
                0..=54 => Role::Builder,
                55..=84 => Role::Person,
                _ => Role::Company,
            };
            let defendant = match uniform(rng, 0, 99) {
                0..=39 => Role::Builder,
                40..=89 => Role::Company,
                _ => Role::Person,
            };
            (plaintiff, defendant)
        }
        Profile::Corporate => (either(rng, 6000, Role::Company), either(rng, 3000, Role::Company)),
        Profile::Insurance => (Role::Insurer, either(rng, 7000, Role::Company)),
        Profile::Trademark => (Role::Company, if chance(rng, 5000) { Role::Shop } else { Role::Company }),
    }
}

/// How often a case with this profile involves a minor, per 10 000.
fn minor_rate(profile: Profile) -> u32 {
    match profile {
        Profile::Divorce => 4000,
        Profile::Child | Profile::School => 9000,
        Profile::Medical => 1000,
        Profile::Family | Profile::Tort => 500,
        _ => 20,
    }
}

/// Appends a case number: `(2023)闽0213民初1234号`.
fn push_case_no(out: &mut String, year: i32, court_code: &str, type_code: &str, seq: u64) {
    out.push('(');
    push_uint(out, year.max(0) as u64);
    out.push(')');
    out.push_str(court_code);
    out.push_str(type_code);
    push_uint(out, seq);
    out.push('号');
}

/// One row, reused; text fields are cleared and refilled for every case.
struct CaseRow {
    case_no: String,
    type_code: &'static str,
    cause: &'static str,
    filed_on: String,
    closed_on: String,
    deadline_on: String,
    closure_method: &'static str,
    appealed: bool,
    origin_case_no: String,
    claim_amount: String,
    enforce_requested: String,
    enforce_collected: String,
    online_filed: bool,
    pre_suit_mediated: bool,
    judge_id: String,
    plaintiff: Party,
    defendant: Party,
    defendant_address: String,
    minor_involved: bool,
    summary: String,
}

fn flag(b: bool) -> &'static [u8] {
    if b { b"true" } else { b"false" }
}

impl CaseRow {
    fn new() -> Self {
        Self {
            case_no: String::with_capacity(32),
            type_code: "",
            cause: "",
            filed_on: String::with_capacity(10),
            closed_on: String::with_capacity(10),
            deadline_on: String::with_capacity(10),
            closure_method: "",
            appealed: false,
            origin_case_no: String::with_capacity(32),
            claim_amount: String::with_capacity(16),
            enforce_requested: String::with_capacity(16),
            enforce_collected: String::with_capacity(16),
            online_filed: false,
            pre_suit_mediated: false,
            judge_id: String::with_capacity(8),
            plaintiff: Party::new(),
            defendant: Party::new(),
            defendant_address: String::with_capacity(96),
            minor_involved: false,
            summary: String::with_capacity(512),
        }
    }

    fn clear(&mut self) {
        for s in [
            &mut self.case_no,
            &mut self.closed_on,
            &mut self.deadline_on,
            &mut self.origin_case_no,
            &mut self.claim_amount,
            &mut self.enforce_requested,
            &mut self.enforce_collected,
            &mut self.judge_id,
            &mut self.defendant_address,
            &mut self.summary,
        ] {
            s.clear();
        }
        self.closure_method = "";
    }

    fn record<'a>(&'a self, region: &'a Region) -> [&'a [u8]; 28] {
        [
            self.case_no.as_bytes(),
            region.court_code.as_bytes(),
            region.code.as_bytes(),
            self.type_code.as_bytes(),
            self.cause.as_bytes(),
            self.filed_on.as_bytes(),
            self.closed_on.as_bytes(),
            self.deadline_on.as_bytes(),
            self.closure_method.as_bytes(),
            flag(self.appealed),
            self.origin_case_no.as_bytes(),
            self.claim_amount.as_bytes(),
            self.enforce_requested.as_bytes(),
            self.enforce_collected.as_bytes(),
            flag(self.online_filed),
            flag(self.pre_suit_mediated),
            self.judge_id.as_bytes(),
            self.plaintiff.kind.label().as_bytes(),
            self.defendant.kind.label().as_bytes(),
            self.plaintiff.name.as_bytes(),
            self.defendant.name.as_bytes(),
            self.plaintiff.id_no.as_bytes(),
            self.defendant.id_no.as_bytes(),
            self.plaintiff.phone.as_bytes(),
            self.defendant.phone.as_bytes(),
            self.defendant_address.as_bytes(),
            flag(self.minor_involved),
            self.summary.as_bytes(),
        ]
    }
}

/// Which court decided an earlier case.
#[derive(Debug, Clone, Copy)]
enum Court {
    Own,
    /// Another basic court of the same city, by index into `CaseGen::neighbour_courts`.
    Neighbour(usize),
    /// The city's intermediate court.
    Intermediate,
}

/// Generates the cases of one court, one at a time, in filing order.
struct CaseGen<'a> {
    rng: GenRng,
    tables: Tables,
    people: People,
    region: &'a Region,
    /// Court codes of the other basic courts of the same city (origin of some cases).
    neighbour_courts: Vec<String>,
    as_of: Day,
    from_year: i32,
    to_year: i32,
    /// Cases filed in an average year, to keep earlier case numbers plausible.
    annual: u64,
    /// Judges by division: civil, criminal, administrative, enforcement, as `lo..=hi` staff numbers.
    judges: [(u32, u32); 4],
    /// Sequence numbers of the current year, by type.
    seq: [u64; 12],
    row: CaseRow,
}

impl<'a> CaseGen<'a> {
    fn new(seed: u64, index: usize, region: &'a Region, cases: u64, (from_year, to_year): (i32, i32)) -> Self {
        let mut rng = rng_for(seed, index as u64, b"cases\0\0\0");
        let n = uniform(&mut rng, 30, 60);
        let civil = n * 55 / 100;
        let enforcement = civil + n * 25 / 100;
        let criminal = enforcement + n * 12 / 100;
        let judges = [(1, civil), (enforcement + 1, criminal), (criminal + 1, n), (civil + 1, enforcement)];
        Self {
            rng,
            tables: Tables::new(),
            people: People::new(),
            region,
            neighbour_courts: region.neighbours.iter().map(|p| format!("闽{}", &p.code[2..])).collect(),
            as_of: day_from_civil(to_year, 12, 31),
            from_year,
            to_year,
            annual: cases / (to_year - from_year + 1) as u64,
            judges,
            seq: [0; 12],
            row: CaseRow::new(),
        }
    }

    /// A court for a case decided by this court (mostly) or a neighbouring basic court.
    fn basic_court(&mut self, own_per_10k: u32) -> Court {
        if self.neighbour_courts.is_empty() || chance(&mut self.rng, own_per_10k) {
            Court::Own
        } else {
            Court::Neighbour(uniform(&mut self.rng, 0, self.neighbour_courts.len() as u32 - 1) as usize)
        }
    }

    /// Appends the number of the earlier case a case of type `ty`, filed on `day`, rests on
    /// (原审案号 / 执行依据), when it has one.
    fn push_origin(&mut self, day: Day, year: i32, ty: CaseType) {
        let rng = &mut self.rng;
        let back = |rng: &mut GenRng, max: u32| year - uniform(rng, 0, max) as i32;
        let (origin_year, court, type_code) = match ty {
            CaseType::CivilAppeal => (back(rng, 1), self.basic_court(5000), "民初"),
            CaseType::CivilPetition if chance(rng, 4000) => (back(rng, 2), Court::Intermediate, "民终"),
            CaseType::CivilPetition | CaseType::CivilRetrial => (back(rng, 2), Court::Own, "民初"),
            CaseType::CriminalAppeal => (back(rng, 1), self.basic_court(5000), "刑初"),
            CaseType::AdminAppeal => (back(rng, 1), self.basic_court(5000), "行初"),
            CaseType::Enforcement => {
                let y = back(rng, 2);
                match uniform(rng, 0, 99) {
                    0..=69 => (y, self.basic_court(8500), "民初"),
                    70..=84 => (y, Court::Intermediate, "民终"),
                    _ => (y, Court::Own, "民特"),
                }
            }
            CaseType::EnforcementResumed => (back(rng, 4), Court::Own, "执"),
            CaseType::Preservation if chance(rng, 2000) => (year, Court::Own, "财保"),
            CaseType::Preservation => (year, Court::Own, "民初"),
            CaseType::EnforcementObjection => (back(rng, 2), Court::Own, "执"),
            CaseType::CivilFirst | CaseType::CriminalFirst | CaseType::AdminFirst => return,
        };
        // Keep the sequence number within what a court of this size files in a year, and, for a
        // case of this same year, within what it had filed by `day`.
        let share_per_mille = match type_code {
            "民初" => 580,
            "民终" => 350,
            "执" => 200,
            "刑初" => 80,
            "民特" => 30,
            _ => 10,
        };
        let mut max_seq = self.annual * share_per_mille / 1000;
        if origin_year == year {
            max_seq = max_seq * (day - day_from_civil(year, 1, 1) + 1) as u64 / 366;
        }
        let seq = uniform64(&mut self.rng, 1, max_seq.max(1));
        let court = match court {
            Court::Own => &self.region.court_code,
            Court::Neighbour(i) => &self.neighbour_courts[i],
            Court::Intermediate => &self.region.intermediate_court_code,
        };
        push_case_no(&mut self.row.origin_case_no, origin_year, court, type_code, seq);
    }

    fn push_judge(&mut self, division: Division) {
        let (lo, hi) = self.judges[division as usize];
        let number = uniform(&mut self.rng, lo, hi.max(lo));
        let judge = &mut self.row.judge_id;
        judge.push('J');
        judge.push_str(self.region.short_code());
        push_padded(judge, u64::from(number), 3);
    }

    /// Fills `self.row` with the next case, filed on `day` of `year` (`filed_on` already set).
    fn next(&mut self, day: Day, year: i32) {
        self.row.clear();
        let ty = self.tables.types.pick(&mut self.rng);
        let division = ty.division();
        self.seq[ty as usize] += 1;
        push_case_no(&mut self.row.case_no, year, &self.region.court_code, ty.label(), self.seq[ty as usize]);
        self.row.type_code = ty.label();

        // Cause, parties' roles and the money class.
        let rng = &mut self.rng;
        let (profile, roles, amount_class, minor_per_10k, admin_act) = match division {
            Division::Civil => {
                let c = &CIVIL_CAUSES[self.tables.civil_trial.pick(rng)];
                self.row.cause = c.name;
                (Some(c.profile), civil_roles(rng, c.profile), c.amount, minor_rate(c.profile), "")
            }
            Division::Enforcement => {
                let c = &CIVIL_CAUSES[self.tables.civil_enforcement.pick(rng)];
                self.row.cause = c.name;
                (Some(c.profile), civil_roles(rng, c.profile), c.amount, minor_rate(c.profile) / 10, "")
            }
            Division::Criminal => {
                self.row.cause = self.tables.criminal.pick(rng);
                (None, (Role::Prosecutor, Role::Person), Amount::NonMonetary, 1200, "")
            }
            Division::Administrative => {
                let (name, _, act) = ADMIN_CAUSES[self.tables.admin.pick(rng)];
                self.row.cause = name;
                let plaintiff = match uniform(rng, 0, 99) {
                    0..=69 => Role::Person,
                    70..=94 => Role::Company,
                    _ => Role::Shop,
                };
                (None, (plaintiff, Role::Agency), Amount::NonMonetary, 50, act)
            }
        };

        // How and when it ends, against its time limit.
        let course = self.tables.course(rng, ty, profile);
        let l = course.limits;
        let mut deadline = day + l.limit as i32;
        if (course.duration > l.limit && chance(rng, l.extension_per_10k)) || chance(rng, 300) {
            deadline += l.extension as i32;
        }
        if chance(rng, 1000) {
            // Periods the law excludes from the limit: service by public notice, expert appraisal.
            deadline += uniform(rng, 15, 120) as i32;
        }
        push_date(&mut self.row.deadline_on, deadline);
        let closes = day + course.duration as i32;
        let long_pending = day <= self.as_of - 365 && chance(rng, 200);
        let closed = closes <= self.as_of && !long_pending;
        if closed {
            push_date(&mut self.row.closed_on, closes);
            self.row.closure_method = course.method;
        }
        let appeal_per_10k = match ty {
            CaseType::CivilFirst => 1300,
            CaseType::CriminalFirst => 1000,
            CaseType::AdminFirst => 1500,
            _ => 0,
        };
        self.row.appealed = closed && course.method == "判决" && chance(rng, appeal_per_10k);

        self.push_origin(day, year, ty);

        // Money.
        let rng = &mut self.rng;
        let mut summary_amount = None;
        match ty {
            CaseType::CivilFirst | CaseType::CivilAppeal | CaseType::CivilPetition | CaseType::CivilRetrial => {
                summary_amount = self.tables.amount(rng, amount_class);
                if let Some(fen) = summary_amount {
                    push_yuan(&mut self.row.claim_amount, fen);
                }
            }
            CaseType::Enforcement | CaseType::EnforcementResumed => {
                let class = if amount_class == Amount::Family || amount_class == Amount::NonMonetary {
                    Amount::Small
                } else {
                    amount_class
                };
                let requested = self.tables.amount(rng, class).unwrap_or(100_000);
                let percent = match (closed, course.method) {
                    (true, "执行完毕") if chance(rng, 8500) => 100,
                    (true, "执行完毕") => uniform64(rng, 50, 99),
                    (true, "终结本次执行程序") if chance(rng, 6500) => 0,
                    (true, "终结本次执行程序") => uniform64(rng, 1, 40),
                    (true, _) if chance(rng, 5000) => 0,
                    (true, _) => uniform64(rng, 10, 100),
                    (false, _) if chance(rng, 6000) => 0,
                    (false, _) => uniform64(rng, 1, 60),
                };
                let collected = if percent == 100 { requested } else { requested / 100 * percent };
                push_yuan(&mut self.row.enforce_requested, requested);
                push_yuan(&mut self.row.enforce_collected, collected);
                summary_amount = Some(requested);
            }
            _ => {}
        }

        // Filing channel and pre-suit mediation, both becoming more common each year.
        let progress = if self.to_year > self.from_year {
            (year - self.from_year) as u32 * 10_000 / (self.to_year - self.from_year) as u32
        } else {
            5000
        };
        let online_per_10k = match division {
            Division::Criminal => 3000,
            _ => 6000 + progress / 5,
        };
        self.row.online_filed = chance(rng, online_per_10k);
        self.row.pre_suit_mediated = ty == CaseType::CivilFirst && chance(rng, 2500 + progress / 10);
        self.push_judge(division);

        // Parties.
        let rng = &mut self.rng;
        self.people.fill(rng, &mut self.row.plaintiff, roles.0, self.region, year);
        self.people.fill(rng, &mut self.row.defendant, roles.1, self.region, year);
        if !chance(rng, 500) {
            push_address(rng, &mut self.row.defendant_address, self.region, &self.people);
        }
        self.row.minor_involved = chance(rng, minor_per_10k);

        push_summary(rng, &mut self.row, ty, admin_act, summary_amount, day);
    }
}

/// The label for a party's identifier in prose.
fn id_label(rng: &mut GenRng, party: &Party) -> &'static str {
    if party.kind == PartyKind::Person {
        pick(rng, &["身份证号", "公民身份号码", "身份证号码"])
    } else {
        "统一社会信用代码"
    }
}

/// Appends a phone as people write it: `13805921234`, `138 0592 1234`, `+86 13805921234`,
/// `+86 138-0592-1234` or `138-0592-1234`.
fn push_phone(rng: &mut GenRng, out: &mut String, phone: &str) {
    let split = |out: &mut String, sep: char| {
        out.push_str(&phone[..3]);
        out.push(sep);
        out.push_str(&phone[3..7]);
        out.push(sep);
        out.push_str(&phone[7..]);
    };
    if phone.len() != 11 {
        out.push_str(phone);
        return;
    }
    match uniform(rng, 0, 99) {
        0..=59 => out.push_str(phone),
        60..=74 => split(out, ' '),
        75..=86 => {
            out.push_str("+86 ");
            out.push_str(phone);
        }
        87..=91 => {
            out.push_str("+86 ");
            split(out, '-');
        }
        _ => split(out, '-'),
    }
}

/// Appends `（身份证号…，电话…）` for a party, or nothing when neither is on file.
fn push_particulars(rng: &mut GenRng, out: &mut String, party: &Party) {
    if party.id_no.is_empty() && party.phone.is_empty() {
        return;
    }
    out.push('（');
    if !party.id_no.is_empty() {
        out.push_str(id_label(rng, party));
        out.push_str(&party.id_no);
        if !party.phone.is_empty() {
            out.push('，');
        }
    }
    if !party.phone.is_empty() {
        out.push_str(pick(rng, &["电话", "联系电话", "手机"]));
        push_phone(rng, out, &party.phone);
    }
    out.push('）');
}

/// Appends `，<label><phone>` when the party has a phone on file.
fn push_phone_clause(rng: &mut GenRng, out: &mut String, who: &str, party: &Party) {
    if party.phone.is_empty() {
        return;
    }
    out.push('，');
    out.push_str(who);
    out.push_str(pick(rng, &["联系电话", "电话", "手机号码"]));
    push_phone(rng, out, &party.phone);
}

/// Writes the free-text summary, which embeds the parties' own names, numbers and address as
/// clerks' notes do.
fn push_summary(rng: &mut GenRng, row: &mut CaseRow, ty: CaseType, admin_act: &str, amount: Option<u64>, filed: Day) {
    let CaseRow {
        summary: s,
        plaintiff: p,
        defendant: d,
        defendant_address: address,
        cause: cause_field,
        origin_case_no: origin,
        minor_involved: minor,
        ..
    } = row;
    let cause: &'static str = cause_field;
    match ty {
        CaseType::CivilFirst => match uniform(rng, 0, 2) {
            0 => {
                s.push_str("原告");
                s.push_str(&p.name);
                push_particulars(rng, s, p);
                s.push_str("诉被告");
                s.push_str(&d.name);
                s.push_str(cause);
                s.push_str("一案");
                if !address.is_empty() {
                    s.push_str("，被告住");
                    s.push_str(address);
                }
                s.push('。');
            }
            1 => {
                s.push_str(&p.name);
                s.push('与');
                s.push_str(&d.name);
                s.push_str(cause);
                s.push_str("一案。原告诉称");
                match amount {
                    Some(fen) => {
                        s.push_str("，被告尚欠");
                        push_yuan_grouped(s, fen);
                        s.push_str("元未付，请求判令被告支付");
                    }
                    None => s.push_str("，双方协商未果，请求依法处理"),
                }
                if !d.id_no.is_empty() {
                    s.push_str("。被告");
                    s.push_str(id_label(rng, d));
                    s.push_str(&d.id_no);
                }
                push_phone_clause(rng, s, "被告", d);
                s.push('。');
            }
            _ => {
                s.push_str("本院受理原告");
                s.push_str(&p.name);
                s.push_str("诉被告");
                s.push_str(&d.name);
                push_particulars(rng, s, d);
                s.push_str(cause);
                s.push_str("一案");
                if !address.is_empty() {
                    s.push_str("，被告住所地");
                    s.push_str(address);
                }
                push_phone_clause(rng, s, "原告", p);
                s.push('。');
            }
        },
        CaseType::CivilAppeal | CaseType::CivilPetition | CaseType::CivilRetrial => {
            let (first, second, verb) = match ty {
                CaseType::CivilAppeal => ("上诉人", "被上诉人", "判决，提起上诉"),
                _ => ("再审申请人", "被申请人", "裁判，申请再审"),
            };
            s.push_str(first);
            s.push_str(&p.name);
            s.push_str("因与");
            s.push_str(second);
            s.push_str(&d.name);
            push_particulars(rng, s, d);
            s.push_str(cause);
            s.push_str("一案，不服");
            s.push_str(origin);
            s.push_str(verb);
            push_phone_clause(rng, s, first, p);
            s.push('。');
        }
        CaseType::CriminalFirst => {
            s.push_str(&p.name);
            s.push_str("指控被告人");
            s.push_str(&d.name);
            push_particulars(rng, s, d);
            s.push('犯');
            s.push_str(cause);
            s.push_str("，于");
            let (y, m, day) = civil_from_day(filed);
            push_uint(s, y.max(0) as u64);
            s.push('年');
            push_uint(s, u64::from(m));
            s.push('月');
            push_uint(s, u64::from(day));
            s.push_str("日向本院提起公诉");
            if !address.is_empty() {
                s.push_str("。被告人户籍地");
                s.push_str(address);
            }
            s.push('。');
        }
        CaseType::CriminalAppeal => {
            s.push_str("原审被告人");
            s.push_str(&d.name);
            push_particulars(rng, s, d);
            s.push('犯');
            s.push_str(cause);
            s.push_str("一案，原公诉机关");
            s.push_str(&p.name);
            s.push_str("，上诉人不服");
            s.push_str(origin);
            s.push_str("刑事判决，提出上诉。");
        }
        CaseType::AdminFirst | CaseType::AdminAppeal => {
            s.push_str(if ty == CaseType::AdminFirst { "原告" } else { "上诉人" });
            s.push_str(&p.name);
            push_particulars(rng, s, p);
            s.push_str("不服被告");
            s.push_str(&d.name);
            s.push_str(admin_act);
            if ty == CaseType::AdminFirst {
                s.push_str("，向本院提起行政诉讼。");
            } else {
                s.push_str("，不服");
                s.push_str(origin);
                s.push_str("行政判决，提起上诉。");
            }
        }
        CaseType::Enforcement | CaseType::EnforcementResumed => {
            s.push_str("申请执行人");
            s.push_str(&p.name);
            s.push_str("与被执行人");
            s.push_str(&d.name);
            push_particulars(rng, s, d);
            s.push_str(cause);
            s.push_str(if ty == CaseType::Enforcement { "一案，依据" } else { "一案，申请恢复执行" });
            s.push_str(origin);
            if ty == CaseType::Enforcement {
                s.push_str("申请执行");
            }
            if let Some(fen) = amount {
                s.push_str("，申请执行标的");
                if chance(rng, 5000) {
                    push_yuan_grouped(s, fen);
                } else {
                    push_yuan(s, fen);
                }
                s.push('元');
            }
            if !address.is_empty() {
                s.push_str("，被执行人住");
                s.push_str(address);
            }
            s.push('。');
        }
        CaseType::Preservation => {
            s.push_str("申请人");
            s.push_str(&p.name);
            s.push_str("申请对被申请人");
            s.push_str(&d.name);
            push_particulars(rng, s, d);
            s.push_str("名下财产采取保全措施，冻结其银行存款，原案号");
            s.push_str(origin);
            s.push('。');
        }
        CaseType::EnforcementObjection => {
            s.push_str("异议人");
            s.push_str(&p.name);
            push_particulars(rng, s, p);
            s.push('对');
            s.push_str(origin);
            s.push_str("案件执行行为提出异议，申请执行人");
            s.push_str(&d.name);
            push_phone_clause(rng, s, "申请执行人", d);
            s.push('。');
        }
    }
    if *minor && matches!(cause, "离婚纠纷" | "抚养纠纷") {
        s.push_str(if chance(rng, 5000) { "双方育有一子" } else { "双方育有一女" });
        s.push_str("，现年");
        push_uint(s, u64::from(uniform(rng, 1, 17)));
        s.push_str("岁。");
    }
}

/// Writes `cases.csv` for court number `index` serving `region`; calls `progress` with the rows
/// written so far every so often, and returns the row count.
pub(crate) fn write_cases(
    path: &Path,
    seed: u64,
    index: usize,
    region: &Region,
    cases: u64,
    years: (i32, i32),
    progress: &mut dyn FnMut(usize),
) -> Result<usize, GenError> {
    let (from_year, to_year) = years;
    let mut out = CsvOut::create(path, &CASE_COLUMNS)?;
    let mut cases_gen = CaseGen::new(seed, index, region, cases, years);
    let growth = u64::from(uniform(&mut cases_gen.rng, 30, 90));
    let mut rows = 0usize;
    // One court of a larger federation sees its filings surge in the latest year (a wave of loan
    // disputes), so that filing_deviation has a red region to show; the first four courts are as before.
    let surge = if index == SURGE_COURT { SURGE_PER_MILLE } else { 1000 };
    for (year, count) in spread_over_years_surging(cases, from_year, to_year, growth, surge) {
        cases_gen.seq = [0; 12];
        let days: Vec<(Day, u64)> = spread_over_year(&mut cases_gen.rng, year, count).collect();
        for (day, n) in days {
            cases_gen.row.filed_on.clear();
            push_date(&mut cases_gen.row.filed_on, day);
            for _ in 0..n {
                cases_gen.next(day, year);
                out.write(cases_gen.row.record(region))?;
                rows += 1;
                if rows.is_multiple_of(crate::PROGRESS_EVERY) {
                    progress(rows);
                }
            }
        }
    }
    out.finish()?;
    progress(rows);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::OnceLock;

    use super::*;
    use crate::ids::{is_valid_resident_id, is_valid_uscc};
    use crate::regions::regions;

    const YEARS: (i32, i32) = (2019, 2024);
    const CASES: u64 = 24_000;

    /// A header and the rows, each as a map from column to value.
    type Sample = (Vec<String>, Vec<HashMap<&'static str, String>>);

    /// The rows of one generated court file (思明, 24 000 cases, 2019–2024), with its header.
    fn sample() -> &'static Sample {
        static SAMPLE: OnceLock<Sample> = OnceLock::new();
        SAMPLE.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("cases.csv");
            let region = &regions(1)[0];
            let mut reports = Vec::new();
            let rows = write_cases(&path, 20240101, 0, region, CASES, YEARS, &mut |n| reports.push(n)).unwrap();
            assert_eq!(rows, CASES as usize);
            assert_eq!(reports.last(), Some(&rows), "a final report with the total");
            assert!(!dir.path().join("cases.csv.part").exists());
            let mut reader = csv::Reader::from_path(&path).unwrap();
            let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
            let records = reader
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    assert_eq!(r.len(), CASE_COLUMNS.len());
                    CASE_COLUMNS.iter().copied().zip(r.iter().map(str::to_string)).collect()
                })
                .collect();
            (header, records)
        })
    }

    fn date(s: &str) -> Day {
        assert!(s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-', "not a date: {s:?}");
        let y: i32 = s[..4].parse().unwrap();
        let m: u32 = s[5..7].parse().unwrap();
        let d: u32 = s[8..].parse().unwrap();
        assert!((1..=12).contains(&m) && d >= 1 && d <= crate::calendar::days_in_month(y, m), "{s}");
        day_from_civil(y, m, d)
    }

    fn is_amount(s: &str) -> bool {
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && (whole == "0" || !whole.starts_with('0'))
            && (!s.contains('.') || fraction.len() == 2 && fraction.bytes().all(|b| b.is_ascii_digit()))
    }

    fn fen(s: &str) -> u64 {
        let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
        whole.parse::<u64>().unwrap() * 100 + fraction.parse::<u64>().unwrap()
    }

    fn is_mobile(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && b.iter().all(u8::is_ascii_digit)
    }

    fn share(part: usize, whole: usize) -> f64 {
        part as f64 / whole as f64
    }

    #[test]
    fn header_is_exact() {
        assert_eq!(sample().0, CASE_COLUMNS);
        assert_eq!(
            CASE_COLUMNS.join(","),
            "case_no,court_code,region_code,type_code,cause,filed_on,closed_on,deadline_on,closure_method,appealed,origin_case_no,claim_amount,enforce_requested,enforce_collected,online_filed,pre_suit_mediated,judge_id,plaintiff_kind,defendant_kind,plaintiff_name,defendant_name,plaintiff_id_no,defendant_id_no,plaintiff_phone,defendant_phone,defendant_address,minor_involved,summary"
        );
    }

    #[test]
    fn case_numbers_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        let mut last_seq: HashMap<(String, String), u64> = HashMap::new();
        for r in &sample().1 {
            let no = &r["case_no"];
            assert!(seen.insert(no.clone()), "duplicate {no}");
            let year = &r["filed_on"][..4];
            let expected_prefix = format!("({year})闽0203{}", r["type_code"]);
            assert!(no.starts_with(&expected_prefix) && no.ends_with('号'), "{no}");
            let seq: u64 = no[expected_prefix.len()..no.len() - '号'.len_utf8()].parse().unwrap();
            // Numbers run in filing order within a court, year and type.
            let key = (year.to_string(), r["type_code"].clone());
            assert_eq!(seq, last_seq.get(&key).copied().unwrap_or(0) + 1, "{no}");
            last_seq.insert(key, seq);
            assert_eq!(r["court_code"], "闽0203");
            assert_eq!(r["region_code"], "350203");
        }
    }

    #[test]
    fn dates_are_ordered_and_not_after_the_as_of_date() {
        let as_of = day_from_civil(YEARS.1, 12, 31);
        let first = day_from_civil(YEARS.0, 1, 1);
        let mut previous = first;
        for r in &sample().1 {
            let filed = date(&r["filed_on"]);
            assert!(filed >= previous && filed <= as_of, "filing order, within the years");
            previous = filed;
            assert!(date(&r["deadline_on"]) > filed);
            match r["closed_on"].as_str() {
                "" => assert!(r["closure_method"].is_empty(), "pending cases have no method"),
                closed => {
                    let closed = date(closed);
                    assert!(closed >= filed && closed <= as_of, "{r:?}");
                    assert!(!r["closure_method"].is_empty());
                }
            }
        }
    }

    #[test]
    fn enumerations_use_the_agreed_labels_and_methods_fit_types() {
        let allowed: HashMap<&str, &[&str]> = HashMap::from([
            ("民初", &["判决", "调解", "准予撤诉", "按撤诉处理", "驳回起诉", "移送"][..]),
            ("民终", &["维持原判", "改判", "发回重审", "调解", "准予撤诉", "按撤诉处理"][..]),
            ("民申", &["驳回起诉", "准予撤诉", "终结"][..]),
            ("民再", &["维持原判", "改判", "发回重审", "调解", "准予撤诉"][..]),
            ("刑初", &["判决", "准予撤诉", "终结"][..]),
            ("刑终", &["维持原判", "改判", "发回重审", "准予撤诉"][..]),
            ("行初", &["判决", "驳回起诉", "准予撤诉", "调解", "移送"][..]),
            ("行终", &["维持原判", "改判", "发回重审", "准予撤诉"][..]),
            ("执", &["执行完毕", "终结本次执行程序", "终结"][..]),
            ("执恢", &["执行完毕", "终结本次执行程序", "终结"][..]),
            ("执保", &["执行完毕", "终结"][..]),
            ("执异", &["驳回起诉", "准予撤诉", "终结"][..]),
        ]);
        let mut types = HashSet::new();
        for r in &sample().1 {
            let ty = r["type_code"].as_str();
            assert!(TYPE_CODES.contains(&ty), "{ty}");
            types.insert(ty.to_string());
            let method = r["closure_method"].as_str();
            assert!(
                method.is_empty() || CLOSURE_METHODS.contains(&method) && allowed[ty].contains(&method),
                "{ty} {method}"
            );
            for field in ["plaintiff_kind", "defendant_kind"] {
                assert!(PARTY_KINDS.contains(&r[field].as_str()), "{}", r[field]);
            }
            for field in ["appealed", "online_filed", "pre_suit_mediated", "minor_involved"] {
                assert!(r[field] == "true" || r[field] == "false", "{field}={}", r[field]);
            }
            let cause = r["cause"].as_str();
            assert!(!cause.is_empty() && !cause.contains(','), "{cause}");
            match ty {
                "刑初" | "刑终" => assert!(cause.ends_with('罪')),
                "行初" | "行终" => {
                    assert!(cause.starts_with("行政") || cause.ends_with("职责") || cause == "政府信息公开")
                }
                _ => assert!(cause.ends_with("纠纷") || cause == "劳动争议", "{cause}"),
            }
            for (field, value) in r {
                assert!(!value.contains(['\n', '\r']), "{field}");
            }
        }
        assert_eq!(types.len(), 12, "every type occurs");
    }

    #[test]
    fn the_mix_of_types_is_that_of_a_basic_court() {
        let rows = &sample().1;
        let count = |ty: &str| rows.iter().filter(|r| r["type_code"] == ty).count();
        let civil = share(count("民初"), rows.len());
        let enforcement = share(count("执"), rows.len());
        let criminal = share(count("刑初"), rows.len());
        assert!((0.55..0.61).contains(&civil), "{civil}");
        assert!((0.18..0.22).contains(&enforcement), "{enforcement}");
        assert!((0.065..0.095).contains(&criminal), "{criminal}");
    }

    #[test]
    fn a_realistic_share_closes_late_and_some_cases_pend_for_years() {
        let rows = &sample().1;
        let as_of = day_from_civil(YEARS.1, 12, 31);
        let closed: Vec<_> = rows.iter().filter(|r| !r["closed_on"].is_empty()).collect();
        let late = closed.iter().filter(|r| date(&r["closed_on"]) > date(&r["deadline_on"])).count();
        let late = share(late, closed.len());
        assert!((0.05..=0.10).contains(&late), "late share {late}");
        let old: Vec<_> = rows.iter().filter(|r| date(&r["filed_on"]) < as_of - 365).collect();
        let long_pending = old.iter().filter(|r| r["closed_on"].is_empty()).count();
        let long_pending = share(long_pending, old.len());
        assert!((0.01..0.04).contains(&long_pending), "long-pending share {long_pending}");
        let pending_2019 =
            rows.iter().filter(|r| r["filed_on"].starts_with("2019") && r["closed_on"].is_empty()).count();
        assert!(pending_2019 > 0, "some 2019 cases are still pending at the end of 2024");
    }

    #[test]
    fn appeals_and_origins_follow_the_case_type() {
        let rows = &sample().1;
        let mut judged = 0;
        let mut appealed = 0;
        for r in rows {
            let ty = r["type_code"].as_str();
            let first_instance = matches!(ty, "民初" | "刑初" | "行初");
            if r["appealed"] == "true" {
                assert!(first_instance && r["closure_method"] == "判决", "{r:?}");
            }
            if first_instance && r["closure_method"] == "判决" {
                judged += 1;
                appealed += usize::from(r["appealed"] == "true");
            }
            let origin = r["origin_case_no"].as_str();
            if first_instance {
                assert!(origin.is_empty());
            } else {
                assert!(origin.starts_with('(') && origin.ends_with('号') && origin.contains('闽'), "{ty} {origin}");
                let origin_year: i32 = origin[1..5].parse().unwrap();
                let filed_year: i32 = r["filed_on"][..4].parse().unwrap();
                assert!(origin_year <= filed_year && origin_year >= filed_year - 4, "{origin}");
            }
        }
        let rate = share(appealed, judged);
        assert!((0.10..=0.15).contains(&rate), "appeal rate {rate}");
    }

    #[test]
    fn amounts_are_yuan_and_enforcement_collects_at_most_what_was_requested() {
        let rows = &sample().1;
        let mut claims = Vec::new();
        let (mut requested, mut collected) = (0u64, 0u64);
        for r in rows {
            let ty = r["type_code"].as_str();
            for field in ["claim_amount", "enforce_requested", "enforce_collected"] {
                let v = r[field].as_str();
                assert!(v.is_empty() || is_amount(v), "{field}={v}");
            }
            if !r["claim_amount"].is_empty() {
                assert!(ty.starts_with('民'), "{ty}");
                claims.push(fen(&r["claim_amount"]));
            }
            let enforcement = matches!(ty, "执" | "执恢");
            assert_eq!(!r["enforce_requested"].is_empty(), enforcement, "{ty}");
            assert_eq!(!r["enforce_collected"].is_empty(), enforcement, "{ty}");
            if enforcement {
                let (req, col) = (fen(&r["enforce_requested"]), fen(&r["enforce_collected"]));
                assert!(col <= req);
                if r["closure_method"] == "执行完毕" || r["closure_method"] == "终结本次执行程序" {
                    requested += req;
                    collected += col;
                }
            }
        }
        claims.sort_unstable();
        let in_band = claims.iter().filter(|&&f| (500_000..=20_000_000).contains(&f)).count();
        assert!(share(in_band, claims.len()) > 0.55, "most claims 5 000–200 000 yuan");
        assert!(claims.iter().any(|&f| f >= 100_000_000), "a few claims of millions");
        let recovery = share(collected as usize, requested as usize);
        assert!((0.2..0.8).contains(&recovery), "{recovery}");
    }

    #[test]
    fn rates_of_the_flags_are_plausible() {
        let rows = &sample().1;
        let by_year = |year: &str| {
            let filed: Vec<_> = rows.iter().filter(|r| r["filed_on"].starts_with(year)).collect();
            share(filed.iter().filter(|r| r["online_filed"] == "true").count(), filed.len())
        };
        let (first, last) = (by_year("2019"), by_year("2024"));
        assert!(first >= 0.5 && last <= 0.85 && last > first + 0.05, "{first} {last}");
        let civil: Vec<_> = rows.iter().filter(|r| r["type_code"] == "民初").collect();
        let mediated = share(civil.iter().filter(|r| r["pre_suit_mediated"] == "true").count(), civil.len());
        assert!((0.2..=0.4).contains(&mediated), "{mediated}");
        assert!(rows.iter().all(|r| r["pre_suit_mediated"] == "false" || r["type_code"] == "民初"));
        let minors = rows.iter().filter(|r| r["minor_involved"] == "true").collect::<Vec<_>>();
        let minor_share = share(minors.len(), rows.len());
        assert!((0.02..0.045).contains(&minor_share), "{minor_share}");
        let family_or_criminal = minors
            .iter()
            .filter(|r| r["type_code"].starts_with('刑') || r["cause"].contains("婚") || r["cause"] == "抚养纠纷")
            .count();
        assert!(share(family_or_criminal, minors.len()) > 0.6);
    }

    #[test]
    fn judges_and_parties_have_well_formed_identifiers() {
        let rows = &sample().1;
        let mut judges = HashSet::new();
        let mut x_checks = 0;
        let mut individual_businesses = 0;
        for r in rows {
            let judge = &r["judge_id"];
            assert!(
                judge.len() == 8 && judge.starts_with("J0203") && judge[1..].bytes().all(|b| b.is_ascii_digit()),
                "{judge}"
            );
            judges.insert(judge.clone());
            for side in ["plaintiff", "defendant"] {
                let kind = r[format!("{side}_kind").as_str()].as_str();
                let id = r[format!("{side}_id_no").as_str()].as_str();
                let phone = r[format!("{side}_phone").as_str()].as_str();
                let name = r[format!("{side}_name").as_str()].as_str();
                assert!(!name.is_empty());
                assert!(phone.is_empty() || is_mobile(phone), "{phone}");
                if id.is_empty() {
                    continue;
                }
                if kind == "自然人" {
                    assert!(is_valid_resident_id(id), "{id}");
                    let birth: i32 = id[6..10].parse().unwrap();
                    assert!((1950..=2004).contains(&birth), "{id}");
                    x_checks += usize::from(id.ends_with('X'));
                } else {
                    assert!(is_valid_uscc(id), "{name} {id}");
                    individual_businesses += usize::from(id.starts_with("92"));
                }
            }
        }
        assert!((30..=60).contains(&judges.len()), "{}", judges.len());
        assert!(x_checks > 0 && individual_businesses > 0);
        let banks = rows
            .iter()
            .filter(|r| r["cause"] == "金融借款合同纠纷" && r["type_code"] == "民初")
            .filter(|r| r["plaintiff_kind"] == "法人" && r["plaintiff_name"].contains("银行"))
            .count();
        assert!(banks > 0);
        let people = rows.iter().filter(|r| r["defendant_kind"] == "自然人").count();
        assert!(share(people, rows.len()) > 0.6, "defendants are mostly natural persons");
        let empty_ids = rows.iter().filter(|r| r["plaintiff_id_no"].is_empty()).count();
        let empty_phones = rows.iter().filter(|r| r["defendant_phone"].is_empty()).count();
        assert!((0.03..0.07).contains(&share(empty_ids, rows.len())));
        assert!((0.07..0.13).contains(&share(empty_phones, rows.len())));
    }

    /// The runs of ASCII digits (an `X` may end one) in a summary, once `+86`, spaces and dashes
    /// are taken out of phone numbers.
    fn number_runs(summary: &str) -> Vec<String> {
        let normalised = summary.replace("+86 ", "").replace(['-', ' '], "");
        let mut runs = Vec::new();
        let mut run = String::new();
        for c in normalised.chars() {
            if c.is_ascii_digit() || (c == 'X' && run.len() == 17) {
                run.push(c);
            } else if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        runs
    }

    #[test]
    fn summaries_carry_the_rows_own_personal_data() {
        let rows = &sample().1;
        let mut with_numbers = 0;
        let mut spaced_or_prefixed = 0;
        let mut quoted_comma = 0;
        for r in rows {
            let s = &r["summary"];
            assert!(s.contains(r["plaintiff_name"].as_str()) && s.contains(r["defendant_name"].as_str()), "{s}");
            if !r["defendant_address"].is_empty() && r["type_code"] == "民初" && s.contains('住') {
                assert!(s.contains(r["defendant_address"].as_str()), "{s}");
            }
            let mut own = 0;
            for run in number_runs(s) {
                match run.len() {
                    18 => {
                        assert!(run == r["plaintiff_id_no"] || run == r["defendant_id_no"], "{run} in {s}");
                        own += 1;
                    }
                    11 if run.starts_with('1') => {
                        assert!(run == r["plaintiff_phone"] || run == r["defendant_phone"], "{run} in {s}");
                        own += 1;
                    }
                    _ => {}
                }
            }
            with_numbers += usize::from(own > 0);
            spaced_or_prefixed += usize::from(s.contains("+86") || s.contains(" "));
            quoted_comma += usize::from(s.contains(','));
        }
        assert!(share(with_numbers, rows.len()) > 0.85);
        assert!(spaced_or_prefixed > rows.len() / 20);
        assert!(quoted_comma > 0, "some summaries need CSV quoting");
    }
}
