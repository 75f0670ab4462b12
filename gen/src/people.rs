//! Parties: natural persons (name, resident ID, mobile), organisations (name, credit code) and
//! addresses, written into reusable buffers.
//!
//! Names follow the frequencies of south Fujian (陈 and 林 lead), with a few compound surnames
//! (欧阳, 司马, 诸葛) and a few Uyghur names written with `·`. A person's sex, given name and the
//! parity of the ID's sequence number agree. An organisation's credit code is derived from its name,
//! so a bank that sues thousands of card holders keeps one code throughout.

use crate::ids::{push_resident_id, push_uscc};
use crate::regions::{ELSEWHERE, FUJIAN, Place, RETIRED_AREAS, Region, XINJIANG_AREAS};
use crate::sample::{GenRng, Weighted, chance, fnv1a, pick, uniform};
use crate::text::{push_padded, push_uint};

/// 当事人类型.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartyKind {
    /// 自然人
    Person,
    /// 法人
    LegalPerson,
    /// 非法人组织
    Unincorporated,
}

impl PartyKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            PartyKind::Person => "自然人",
            PartyKind::LegalPerson => "法人",
            PartyKind::Unincorporated => "非法人组织",
        }
    }
}

/// What kind of party to make; organisations by the part they play in a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Person,
    /// A commercial bank branch (金融借款).
    Bank,
    /// A bank's credit-card centre (信用卡纠纷).
    CardCentre,
    /// A consumer-finance or micro-loan company.
    ConsumerFinance,
    Insurer,
    PropertyManager,
    /// Any business; now and then a partnership or an individual business.
    Company,
    /// An individual business (个体工商户), credit code `92…`.
    Shop,
    Builder,
    Hospital,
    School,
    /// An administrative organ (行政机关), the defendant of administrative cases.
    Agency,
    /// The people's procuratorate, the public prosecutor.
    Prosecutor,
}

#[rustfmt::skip]
const SURNAMES: &[(&str, u32)] = &[
    ("陈", 90), ("林", 75), ("黄", 50), ("张", 45), ("李", 45), ("王", 40), ("吴", 35), ("郑", 30), ("刘", 30),
    ("杨", 22), ("蔡", 20), ("许", 18), ("洪", 15), ("庄", 12), ("苏", 12), ("曾", 12), ("谢", 12), ("周", 12),
    ("叶", 11), ("徐", 10), ("郭", 10), ("柯", 8), ("何", 8), ("赵", 8), ("邱", 7), ("卢", 7), ("江", 7), ("朱", 7),
    ("胡", 7), ("孙", 6), ("高", 6), ("罗", 6), ("马", 5), ("梁", 5), ("宋", 5), ("唐", 5), ("韩", 4), ("冯", 4),
    ("邓", 4), ("曹", 4), ("彭", 4), ("肖", 4), ("潘", 4), ("余", 4), ("魏", 4), ("田", 3), ("董", 3), ("袁", 3),
    ("于", 3), ("蒋", 3), ("杜", 3), ("程", 3), ("吕", 3), ("丁", 3), ("沈", 3), ("姚", 3), ("钟", 3), ("廖", 3),
    ("方", 3), ("施", 3), ("颜", 3), ("任", 2), ("姜", 2), ("崔", 2), ("谭", 2), ("陆", 2), ("汪", 2), ("范", 2),
    ("金", 2), ("石", 2), ("贾", 2), ("夏", 2), ("韦", 2), ("付", 2), ("白", 2), ("邹", 2), ("孟", 2), ("熊", 2),
    ("秦", 2), ("尹", 2), ("薛", 2), ("雷", 2), ("侯", 2), ("龙", 2), ("陶", 2), ("黎", 2), ("戴", 2), ("卓", 2),
    ("阮", 2), ("傅", 2), ("詹", 2), ("游", 2), ("康", 2), ("纪", 2), ("史", 1), ("贺", 1), ("顾", 1), ("毛", 1),
    ("郝", 1), ("龚", 1), ("邵", 1), ("万", 1), ("钱", 1), ("严", 1), ("莫", 1), ("孔", 1), ("向", 1), ("骆", 1),
    ("欧阳", 2), ("司马", 1), ("诸葛", 1), ("上官", 1), ("司徒", 1),
];

#[rustfmt::skip]
const MALE_CHARS: &[&str] = &[
    "伟", "强", "磊", "军", "勇", "杰", "涛", "斌", "超", "明", "刚", "平", "辉", "鹏", "华", "飞",
    "鑫", "波", "宇", "浩", "凯", "健", "俊", "帆", "帅", "旭", "宁", "龙", "林", "阳", "建", "国",
    "志", "文", "海", "东", "峰", "晨", "毅", "鸿", "福", "荣", "庆", "振", "坤", "锋", "彬", "炜",
    "泽", "昊", "睿", "轩", "航", "清", "榕", "金", "水", "德", "忠", "群",
];

#[rustfmt::skip]
const FEMALE_CHARS: &[&str] = &[
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "玲", "桂", "英", "燕", "萍", "红", "婷",
    "雪", "琳", "晶", "慧", "颖", "倩", "洁", "梅", "丹", "莉", "欣", "悦", "佳", "怡", "琪", "璐",
    "蓉", "淑", "惠", "珍", "凤", "兰", "翠", "薇", "妍", "萱", "涵", "诗", "雅", "思", "瑶", "美", "月", "碧",
];

#[rustfmt::skip]
const NEUTRAL_CHARS: &[&str] = &[
    "晓", "小", "一", "子", "雨", "春", "秋", "玉", "永", "立", "少", "志", "文", "明", "海", "丽", "嘉", "亚", "清", "宏",
];

#[rustfmt::skip]
const UYGHUR_MALE: &[&str] = &[
    "买买提", "艾尔肯", "阿不都", "吐尔逊", "艾力", "努尔", "热合曼", "艾合买提",
];
#[rustfmt::skip]
const UYGHUR_FEMALE: &[&str] = &[
    "阿依古丽", "古丽娜尔", "热依拉", "迪丽努尔", "帕提古丽", "米热古丽",
];
#[rustfmt::skip]
const UYGHUR_FATHER: &[&str] = &[
    "艾力", "买买提", "吐尔逊", "司马义", "阿不都", "玉素甫", "亚森", "依明",
];

/// Mobile prefixes in use (China Mobile, Unicom, Telecom, Broadnet).
#[rustfmt::skip]
const MOBILE_PREFIXES: &[u16] = &[
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 153, 155, 156, 157, 158,
    159, 166, 170, 173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191,
    193, 195, 196, 197, 198, 199,
];

/// Birth decades of litigants.
#[rustfmt::skip]
const BIRTH_YEARS: &[((u32, u32), u32)] = &[
    ((1950, 1959), 6), ((1960, 1969), 14), ((1970, 1979), 22), ((1980, 1989), 30), ((1990, 1999), 23),
    ((2000, 2004), 5),
];

/// Roads by district (Xiamen) or city; anything else uses `GENERIC_ROADS`.
const ROADS: &[(&str, &[&str])] = &[
    (
        "思明区",
        &[
            "湖滨南路",
            "厦禾路",
            "嘉禾路",
            "莲前西路",
            "鹭江道",
            "中山路",
            "思明南路",
            "湖滨北路",
            "莲花南路",
            "禾祥西路",
        ],
    ),
    ("海沧区", &["海沧大道", "新阳路", "马青路", "沧林路", "滨湖北路", "钟林路"]),
    ("湖里区", &["湖里大道", "仙岳路", "枋湖路", "金山路", "殿前路", "江头北路", "五缘湾道", "华泰路"]),
    ("集美区", &["集美大道", "杏林湾路", "银江路", "乐海路", "嘉庚路", "诚毅大街", "杏滨路"]),
    ("同安区", &["环城南路", "同集中路", "银湖中路", "城南路", "西柯街", "祥平街"]),
    ("翔安区", &["翔安南路", "新店路", "民安大道", "洪钟大道", "马巷路", "舫山北路"]),
    ("福州市", &["五四路", "八一七路", "杨桥路", "工业路", "六一路", "福飞路", "江滨大道", "华林路"]),
    ("泉州市", &["温陵路", "刺桐路", "丰泽街", "泉秀路", "津淮街", "田安路"]),
    ("漳州市", &["胜利路", "延安路", "新华路", "瑞京路", "水仙大街", "大同路"]),
];

#[rustfmt::skip]
const GENERIC_ROADS: &[&str] = &[
    "人民路", "中山路", "解放路", "建设路", "胜利路", "新华路", "府前路", "滨江路", "城南路", "东街", "和平路",
];

#[rustfmt::skip]
const NAME_STEMS: &[&str] = &[
    "鑫", "盛", "宏", "达", "华", "源", "恒", "泰", "嘉", "禾", "翔", "鹭", "海", "峰", "泓", "润",
    "博", "睿", "瑞", "祥", "宇", "辰", "安", "信", "德", "隆", "兴", "昌", "汇", "通", "丰", "联",
    "创", "银", "金", "天", "龙", "腾", "凯", "远", "新", "锦", "成", "佳", "明", "正", "元", "中",
    "融", "闽", "厦", "顺", "益", "立",
];

#[rustfmt::skip]
const INDUSTRIES: &[(&str, u32)] = &[
    ("贸易", 20), ("科技", 14), ("网络科技", 8), ("供应链管理", 6), ("电子商务", 6), ("建材", 5), ("餐饮管理", 5), ("装饰工程", 6),
    ("物流", 5), ("进出口", 5), ("汽车服务", 4), ("房地产开发", 3), ("文化传媒", 4), ("信息咨询", 4), ("投资管理", 3), ("实业", 6),
    ("服饰", 3), ("食品", 4), ("机械设备", 3), ("医疗器械", 2), ("人力资源", 2), ("教育咨询", 2), ("石材", 2), ("茶业", 2),
];

#[rustfmt::skip]
const SHOP_TRADES: &[&str] = &[
    "小吃店", "便利店", "五金店", "水果店", "服装店", "汽车维修部", "茶叶店", "美容店", "餐饮店", "装修工作室", "百货商行", "建材商行", "海鲜排档", "手机店",
];

/// Where non-local firms are registered: the name's place and the registering office's area code.
#[rustfmt::skip]
const FIRM_ORIGINS: &[(&str, &str)] = &[
    ("福建", "350000"), ("泉州", "350500"), ("漳州", "350600"), ("福州", "350100"), ("深圳", "440300"),
    ("上海", "310000"),
];

#[rustfmt::skip]
const BANKS: &[&str] = &[
    "中国工商银行", "中国农业银行", "中国银行", "中国建设银行", "交通银行", "招商银行", "兴业银行", "中信银行", "平安银行", "中国民生银行", "中国光大银行", "华夏银行",
    "上海浦东发展银行", "中国邮政储蓄银行", "广发银行",
];

const XIAMEN_BANKS: &[&str] = &["厦门银行股份有限公司", "厦门国际银行股份有限公司", "厦门农村商业银行股份有限公司"];

const CARD_CENTRES: &[&str] = &[
    "招商银行股份有限公司信用卡中心",
    "广发银行股份有限公司信用卡中心",
    "中信银行股份有限公司信用卡中心",
    "平安银行股份有限公司信用卡中心",
    "上海浦东发展银行股份有限公司信用卡中心",
    "中国光大银行股份有限公司信用卡中心",
    "交通银行股份有限公司太平洋信用卡中心",
    "兴业银行股份有限公司信用卡中心",
];

const CONSUMER_FINANCE: &[&str] = &[
    "马上消费金融股份有限公司",
    "中银消费金融有限公司",
    "招联消费金融股份有限公司",
    "厦门金美信消费金融有限责任公司",
    "兴业消费金融股份公司",
    "捷信消费金融有限公司",
    "重庆蚂蚁消费金融有限公司",
    "深圳前海微众银行股份有限公司",
];

#[rustfmt::skip]
const INSURERS: &[&str] = &[
    "中国人民财产保险", "中国平安财产保险", "中国太平洋财产保险", "中国人寿财产保险", "中华联合财产保险", "阳光财产保险", "中国大地财产保险", "天安财产保险",
];

/// One party, reused from row to row.
#[derive(Debug)]
pub(crate) struct Party {
    pub(crate) kind: PartyKind,
    pub(crate) name: String,
    /// Resident ID or credit code; empty when not on file.
    pub(crate) id_no: String,
    /// Mobile number; empty when not on file.
    pub(crate) phone: String,
}

impl Party {
    pub(crate) fn new() -> Self {
        Self {
            kind: PartyKind::Person,
            name: String::with_capacity(64),
            id_no: String::with_capacity(18),
            phone: String::with_capacity(11),
        }
    }

    fn clear(&mut self) {
        self.name.clear();
        self.id_no.clear();
        self.phone.clear();
    }
}

/// The weighted tables behind party generation, built once per output file.
#[derive(Debug)]
pub(crate) struct People {
    surnames: Weighted<&'static str>,
    birth_years: Weighted<(u32, u32)>,
    industries: Weighted<&'static str>,
    /// Birth places: `Some(i)` indexes `ELSEWHERE`, `None` means "a Fujian place".
    elsewhere: Weighted<usize>,
}

impl People {
    pub(crate) fn new() -> Self {
        Self {
            surnames: Weighted::new(SURNAMES.iter().copied()),
            birth_years: Weighted::new(BIRTH_YEARS.iter().copied()),
            industries: Weighted::new(INDUSTRIES.iter().copied()),
            elsewhere: Weighted::new(ELSEWHERE.iter().enumerate().map(|(i, (_, w))| (i, *w))),
        }
    }

    /// Fills `party` for `role`, as of a case filed in `year` before the court of `home`. About 5 %
    /// get no identifier on file and 10 % no phone.
    pub(crate) fn fill(&self, rng: &mut GenRng, party: &mut Party, role: Role, home: &Region, year: i32) {
        party.clear();
        match role {
            Role::Person => self.fill_person(rng, party, home, year),
            _ => self.fill_organisation(rng, party, role, home),
        }
        if chance(rng, 500) {
            party.id_no.clear();
        }
        if chance(rng, 1000) {
            party.phone.clear();
        } else {
            push_mobile(rng, &mut party.phone);
        }
    }

    fn fill_person(&self, rng: &mut GenRng, party: &mut Party, home: &Region, year: i32) {
        party.kind = PartyKind::Person;
        let male = chance(rng, 5100);
        let area: &str = if chance(rng, 40) {
            let given = if male { pick(rng, UYGHUR_MALE) } else { pick(rng, UYGHUR_FEMALE) };
            party.name.push_str(given);
            party.name.push('·');
            party.name.push_str(pick(rng, UYGHUR_FATHER));
            pick(rng, XINJIANG_AREAS)
        } else {
            party.name.push_str(self.surnames.pick(rng));
            if chance(rng, 2500) {
                party.name.push_str(self.given_char(rng, male));
            } else {
                party.name.push_str(if chance(rng, 3000) {
                    pick(rng, NEUTRAL_CHARS)
                } else {
                    self.given_char(rng, male)
                });
                party.name.push_str(self.given_char(rng, male));
            }
            self.birth_area(rng, home)
        };
        let hi = 2004.min(year - 18);
        let lo = 1950.min(hi - 20);
        let mut birth_year = self.birth_years.pick_in(rng) as i32;
        if birth_year > hi || birth_year < lo {
            birth_year = uniform(rng, lo as u32, hi as u32) as i32;
        }
        let month = uniform(rng, 1, 12);
        let day = uniform(rng, 1, crate::calendar::days_in_month(birth_year, month));
        push_resident_id(&mut party.id_no, rng, area, (birth_year, month, day), male);
    }

    fn given_char(&self, rng: &mut GenRng, male: bool) -> &'static str {
        if male { pick(rng, MALE_CHARS) } else { pick(rng, FEMALE_CHARS) }
    }

    /// Where a person's ID was issued: mostly the court's own district or elsewhere in Fujian,
    /// a fair share from the provinces migrant workers come from.
    fn birth_area<'a>(&self, rng: &mut GenRng, home: &'a Region) -> &'a str {
        match uniform(rng, 0, 99) {
            0..=39 => &home.code,
            40..=54 => match home.neighbours.is_empty() {
                true => &home.code,
                false => pick(rng, &home.neighbours).code,
            },
            55..=69 => pick(rng, FUJIAN).code,
            70..=71 => pick(rng, RETIRED_AREAS),
            _ => ELSEWHERE[self.elsewhere.pick(rng)].0.code,
        }
    }

    fn fill_organisation(&self, rng: &mut GenRng, party: &mut Party, role: Role, home: &Region) {
        let name = &mut party.name;
        let city = home.city_short();
        let city_code = home.city_code.as_str();
        let (kind, head, area): (PartyKind, &str, &str) = match role {
            Role::Bank => {
                if city == "厦门" && chance(rng, 2000) {
                    name.push_str(pick(rng, XIAMEN_BANKS));
                } else {
                    name.push_str(pick(rng, BANKS));
                    name.push_str("股份有限公司");
                    name.push_str(city);
                    if chance(rng, 6000) {
                        name.push_str("分行");
                    } else {
                        name.push_str(home.district_short());
                        name.push_str("支行");
                    }
                }
                (PartyKind::LegalPerson, "91", city_code)
            }
            Role::CardCentre => {
                name.push_str(pick(rng, CARD_CENTRES));
                (PartyKind::LegalPerson, "91", "440300")
            }
            Role::ConsumerFinance => {
                if chance(rng, 2500) {
                    name.push_str(city);
                    name.push('市');
                    self.push_stem(rng, name);
                    name.push_str("小额贷款有限公司");
                } else {
                    name.push_str(pick(rng, CONSUMER_FINANCE));
                }
                (PartyKind::LegalPerson, "91", city_code)
            }
            Role::Insurer => {
                name.push_str(pick(rng, INSURERS));
                name.push_str("股份有限公司");
                name.push_str(city);
                name.push_str(if chance(rng, 7000) { "分公司" } else { "市分公司" });
                (PartyKind::LegalPerson, "91", city_code)
            }
            Role::PropertyManager => {
                name.push_str(city);
                self.push_stem(rng, name);
                name.push_str(if chance(rng, 5000) { "物业管理有限公司" } else { "物业服务有限公司" });
                (PartyKind::LegalPerson, "91", &home.code)
            }
            Role::Builder => {
                name.push_str(if chance(rng, 5000) { "福建" } else { city });
                self.push_stem(rng, name);
                name.push_str(pick(
                    rng,
                    &["建设工程有限公司", "建筑工程有限公司", "建设集团有限公司", "市政工程有限公司"],
                ));
                (PartyKind::LegalPerson, "91", city_code)
            }
            Role::Hospital => {
                name.push_str(&home.city);
                match uniform(rng, 0, 3) {
                    0 => name.push_str("中医院"),
                    1 => name.push_str("第一医院"),
                    2 => name.push_str("妇幼保健院"),
                    _ => {
                        name.push_str(&home.district);
                        name.push_str("医院");
                    }
                }
                (PartyKind::LegalPerson, "12", city_code)
            }
            Role::School => {
                name.push_str(&home.city);
                name.push_str(&home.district);
                name.push_str(pick(rng, &["实验小学", "第二实验小学", "第一中学", "中心幼儿园", "外国语学校"]));
                (PartyKind::LegalPerson, "12", &home.code)
            }
            Role::Agency => {
                match uniform(rng, 0, 9) {
                    0..=2 => {
                        name.push_str(&home.city);
                        name.push_str("公安局");
                        name.push_str(home.district_short());
                        name.push_str("分局");
                    }
                    3..=4 => {
                        name.push_str(&home.city);
                        name.push_str(&home.district);
                        name.push_str("人民政府");
                    }
                    5 => {
                        name.push_str(&home.city);
                        name.push_str("市场监督管理局");
                    }
                    6 => {
                        name.push_str(&home.city);
                        name.push_str("人力资源和社会保障局");
                    }
                    7 => {
                        name.push_str(&home.city);
                        name.push_str("自然资源和规划局");
                    }
                    8 => {
                        name.push_str(&home.city);
                        name.push_str("住房和城乡建设局");
                    }
                    _ => {
                        name.push_str("国家税务总局");
                        name.push_str(&home.city);
                        name.push_str(&home.district);
                        name.push_str("税务局");
                    }
                }
                (PartyKind::LegalPerson, "11", &home.code)
            }
            Role::Prosecutor => {
                name.push_str(&home.city);
                name.push_str(&home.district);
                name.push_str("人民检察院");
                (PartyKind::LegalPerson, "11", &home.code)
            }
            Role::Shop => {
                self.push_shop(rng, name, home);
                (PartyKind::Unincorporated, "92", &home.code)
            }
            // `Person` is dispatched to `fill_person` and never gets here.
            Role::Company | Role::Person => match uniform(rng, 0, 99) {
                0..=5 => {
                    self.push_shop(rng, name, home);
                    (PartyKind::Unincorporated, "92", &home.code)
                }
                6..=9 => {
                    name.push_str(city);
                    self.push_stem(rng, name);
                    name.push_str(if chance(rng, 5000) {
                        "投资合伙企业（有限合伙）"
                    } else {
                        "企业管理咨询合伙企业（普通合伙）"
                    });
                    (PartyKind::Unincorporated, "91", city_code)
                }
                n => {
                    // Most firms are local; the rest registered elsewhere in Fujian or beyond.
                    let (place, area) = if n < 85 { (city, city_code) } else { pick(rng, FIRM_ORIGINS) };
                    name.push_str(place);
                    self.push_stem(rng, name);
                    name.push_str(self.industries.pick(rng));
                    name.push_str(if chance(rng, 900) { "股份有限公司" } else { "有限公司" });
                    (PartyKind::LegalPerson, "91", area)
                }
            },
        };
        party.kind = kind;
        push_uscc(&mut party.id_no, head, area, fnv1a(party.name.as_bytes()));
    }

    fn push_stem(&self, rng: &mut GenRng, name: &mut String) {
        name.push_str(pick(rng, NAME_STEMS));
        name.push_str(pick(rng, NAME_STEMS));
    }

    fn push_shop(&self, rng: &mut GenRng, name: &mut String, home: &Region) {
        name.push_str(&home.city);
        name.push_str(&home.district);
        self.push_stem(rng, name);
        name.push_str(pick(rng, SHOP_TRADES));
    }
}

/// Appends an 11-digit mobile number `1[3-9]\d{9}`.
pub(crate) fn push_mobile(rng: &mut GenRng, out: &mut String) {
    push_uint(out, u64::from(pick(rng, MOBILE_PREFIXES)));
    push_padded(out, u64::from(uniform(rng, 0, 99_999_999)), 8);
}

/// Appends a street address in `region` (or, now and then, in another place), in the form
/// `福建省厦门市思明区湖滨南路123号5栋1201室`.
pub(crate) fn push_address(rng: &mut GenRng, out: &mut String, region: &Region, people: &People) {
    let (province, city, district): (&str, &str, &str) = match uniform(rng, 0, 99) {
        0..=69 => (region.province, &region.city, &region.district),
        70..=89 if !region.neighbours.is_empty() => {
            let p = pick(rng, &region.neighbours);
            (p.province, p.city, p.district)
        }
        70..=89 => (region.province, &region.city, &region.district),
        _ => {
            let p: &Place = &ELSEWHERE[people.elsewhere.pick(rng)].0;
            (p.province, p.city, p.district)
        }
    };
    out.push_str(province);
    if city != province {
        out.push_str(city);
    }
    out.push_str(district);
    out.push_str(pick(rng, roads_for(city, district)));
    push_uint(out, u64::from(uniform(rng, 1, 999)));
    out.push('号');
    match uniform(rng, 0, 9) {
        0..=5 => {
            push_uint(out, u64::from(uniform(rng, 1, 30)));
            out.push('栋');
            push_uint(out, u64::from(uniform(rng, 1, 33)));
            push_padded(out, u64::from(uniform(rng, 1, 6)), 2);
            out.push('室');
        }
        6..=7 => {
            push_uint(out, u64::from(uniform(rng, 1, 33)));
            push_padded(out, u64::from(uniform(rng, 1, 8)), 2);
            out.push('室');
        }
        8 => {
            out.push('之');
            push_uint(out, u64::from(uniform(rng, 1, 9)));
        }
        _ => {}
    }
}

fn roads_for(city: &str, district: &str) -> &'static [&'static str] {
    ROADS
        .iter()
        .find(|(place, _)| *place == district && city == "厦门市")
        .or_else(|| ROADS.iter().find(|(place, _)| *place == city))
        .map_or(GENERIC_ROADS, |(_, roads)| roads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{is_valid_resident_id, is_valid_uscc};
    use crate::regions::regions;
    use crate::sample::rng_for;

    #[test]
    fn parties_have_valid_identifiers_and_plausible_forms() {
        let people = People::new();
        let home = &regions(6)[0];
        let mut rng = rng_for(3, 0, b"ptest\0\0\0");
        let mut party = Party::new();
        let roles = [
            Role::Person,
            Role::Bank,
            Role::CardCentre,
            Role::ConsumerFinance,
            Role::Insurer,
            Role::PropertyManager,
            Role::Company,
            Role::Shop,
            Role::Builder,
            Role::Hospital,
            Role::School,
            Role::Agency,
            Role::Prosecutor,
        ];
        let (mut compound, mut dotted, mut ids, mut empty_ids) = (0, 0, 0, 0);
        for i in 0..20_000 {
            let role = roles[i % roles.len()];
            people.fill(&mut rng, &mut party, role, home, 2023);
            assert!(!party.name.is_empty());
            assert!(!party.name.contains([',', '\n', '"']), "{}", party.name);
            if party.id_no.is_empty() {
                empty_ids += 1;
            } else if party.kind == PartyKind::Person {
                assert!(is_valid_resident_id(&party.id_no), "{}", party.id_no);
                let year: i32 = party.id_no[6..10].parse().unwrap();
                assert!((1950..=2005).contains(&year), "{}", party.id_no);
                ids += 1;
            } else {
                assert!(is_valid_uscc(&party.id_no), "{} {}", party.name, party.id_no);
                if party.id_no.starts_with("92") {
                    assert_eq!(party.kind, PartyKind::Unincorporated, "{}", party.name);
                }
            }
            if !party.phone.is_empty() {
                let p = party.phone.as_bytes();
                assert!(p.len() == 11 && p[0] == b'1' && (b'3'..=b'9').contains(&p[1]), "{}", party.phone);
                assert!(p.iter().all(u8::is_ascii_digit));
            }
            if role == Role::Person {
                compound +=
                    usize::from(["欧阳", "司马", "诸葛", "上官", "司徒"].iter().any(|s| party.name.starts_with(s)));
                dotted += usize::from(party.name.contains('·'));
            }
        }
        assert!(compound > 0 && dotted > 0, "{compound} {dotted}");
        assert!(ids > 1000);
        assert!((500..1600).contains(&empty_ids), "{empty_ids}");
    }

    #[test]
    fn same_organisation_name_same_code() {
        let people = People::new();
        let home = &regions(1)[0];
        let mut rng = rng_for(3, 1, b"ptest\0\0\0");
        let mut seen = std::collections::HashMap::new();
        let mut party = Party::new();
        for _ in 0..2_000 {
            people.fill(&mut rng, &mut party, Role::CardCentre, home, 2022);
            if party.id_no.is_empty() {
                continue;
            }
            let code = seen.entry(party.name.clone()).or_insert_with(|| party.id_no.clone());
            assert_eq!(*code, party.id_no);
        }
    }

    #[test]
    fn addresses_name_province_city_district_and_number() {
        let people = People::new();
        let home = &regions(6)[5];
        let mut rng = rng_for(3, 2, b"ptest\0\0\0");
        let mut local = 0;
        for _ in 0..1_000 {
            let mut a = String::new();
            push_address(&mut rng, &mut a, home, &people);
            assert!(
                a.contains('号') && a.contains('省')
                    || a.starts_with("北京市")
                    || a.starts_with("上海市")
                    || a.starts_with("重庆市")
                    || a.starts_with("广西"),
                "{a}"
            );
            local += usize::from(a.starts_with("福建省厦门市翔安区"));
        }
        assert!(local > 600, "{local}");
    }
}
