//! Chinese personal names: the surname lists, the party words that announce a name in legal prose,
//! and the characters that end one.

use std::sync::LazyLock;

/// Two-character (compound) surnames; checked before single ones.
pub const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "诸葛", "上官", "司徒", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙", "宇文", "夏侯",
    "轩辕", "端木", "独孤", "南宫", "西门", "万俟", "闻人", "澹台", "公冶", "申屠", "太史", "呼延", "钟离", "宗政",
    "濮阳", "淳于", "单于", "赫连", "拓跋", "百里", "东郭", "仲孙", "漆雕", "乐正", "壤驷", "公良", "谷梁", "左丘",
];

/// Common single-character surnames (the most frequent ~300 of the national register).
pub const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁\
任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔\
向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕\
单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚\
娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池\
查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴\
盖练廉禹井祖漆巴丰支卿国狄平计索宣晋相初门云容敬来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓修邰赫杭况\
傅洪\
那宿鲜印逯隆茹诸战慕危玉银亢嵇公哈湛宾戎勾茅利於呼居揭干但尉冶斯元束檀衣信展阴昝智幸奉植衡富尧闭由";

/// Words that announce a party's name, longest first so that `被告人` wins over `被告`.
pub const PARTY_WORDS: &[&str] = &[
    "委托诉讼代理人",
    "原审被告人",
    "原审上诉人",
    "复议申请人",
    "赔偿请求人",
    "被申诉人",
    "原审第三人",
    "犯罪嫌疑人",
    "申请执行人",
    "再审申请人",
    "被申请再审人",
    "法定代表人",
    "法定代理人",
    "委托代理人",
    "原审原告",
    "原审被告",
    "被执行人",
    "被上诉人",
    "被申请人",
    "被告人",
    "申诉人",
    "异议人",
    "案外人",
    "被害人",
    "当事人",
    "申请人",
    "上诉人",
    "第三人",
    "负责人",
    "代理人",
    "辩护人",
    "担保人",
    "借款人",
    "出借人",
    "债权人",
    "债务人",
    "调解员",
    "原告",
    "被告",
    "证人",
    "罪犯",
];

/// Characters that end a name: verbs and particles that follow a party's name in legal prose.
pub const NAME_STOPS: &str =
    "诉与和及等的因于称在向对是为犯欠未已住系将应不均以之被请要由经从把给共并也都就即某、，。；：:（）()《》“”\"' ";

/// Words that follow a party word but are not a name (`被告支付`, `原告主张`).
pub const NOT_NAMES: &[&str] = &[
    "支付", "偿还", "承担", "返还", "赔偿", "提供", "提出", "提交", "辩称", "认为", "主张", "同意", "申请", "住所",
    "确认", "签订", "共同", "应当", "之间", "双方", "方面", "公司", "单位", "一方", "名下", "本人", "自愿", "明确",
    "陈述", "答辩", "出具", "归还", "给付", "尚欠", "多次", "另行", "相关", "上述", "信息", "身份", "联系", "电话",
    "手机", "户籍", "公民", "公诉", "公安", "公告", "国家", "平台", "安全", "高级", "金额", "房屋", "代表", "经营",
    "利息", "起诉", "上诉", "到庭", "未到", "缺席", "所述", "所称", "所有", "调解", "诉称", "拖欠", "驾驶",
];

/// The first two characters of common causes of action (案由): after a one-character given name, one
/// of these means the name has ended (`李霞民间借贷纠纷`).
const CAUSE_HEADS: &[&str] = &[
    "民间", "信用", "金融", "买卖", "离婚", "房屋", "机动", "劳动", "劳务", "生命", "物业", "追偿", "同居", "排除",
    "产品", "服务", "租赁", "保险", "小额", "网络", "合同", "股权", "建设", "运输", "承揽", "侵害", "提供", "追索",
    "借款", "抚养", "继承", "赡养", "婚约", "确认", "不当", "财产", "相邻", "健康", "名誉", "人格", "装饰", "分家",
    "共有", "债权", "债务", "危险", "盗窃", "诈骗", "故意", "交通", "寻衅", "帮助", "非法", "走私", "贩卖", "开设",
    "行政", "工伤", "商品", "储蓄", "居间", "委托", "保证", "抵押", "质押", "融资", "所有", "物权", "占有", "返还",
];

static CAUSE_HEAD_LIST: LazyLock<WordList> = LazyLock::new(|| WordList::new(CAUSE_HEADS));

/// Whether a cause of action starts at `chars[i..]`.
pub fn cause_head_at(chars: &[char], i: usize) -> bool {
    CAUSE_HEAD_LIST.at(chars, i.min(chars.len())).is_some()
}

/// Suffixes that make a name an organisation's.
const ORGANISATION_SUFFIXES: &[&str] = &[
    "公司",
    "银行",
    "中心",
    "分行",
    "支行",
    "企业",
    "合伙",
    "商行",
    "店",
    "厂",
    "医院",
    "学校",
    "政府",
    "局",
    "检察院",
    "法院",
    "委员会",
    "合作社",
    "集团",
    "协会",
    "研究院",
    "事务所",
    "工作室",
    "维修部",
    "经营部",
];

/// Causes of action that start with 公司 (the name before them may be a person's).
const COMPANY_CAUSES: &[&str] = &[
    "公司解散",
    "公司决议",
    "公司证照",
    "公司盈余",
    "公司关联",
    "公司减资",
    "公司增资",
    "公司合并",
    "公司分立",
    "公司设立",
];

/// Whether an organisation suffix comes within the next Chinese characters from `chars[i]`, before
/// punctuation, a particle or a party word: the candidate name is an organisation's.
pub fn organisation_follows(chars: &[char], i: usize) -> bool {
    static CAUSES: LazyLock<WordList> = LazyLock::new(|| WordList::new(COMPANY_CAUSES));
    static SUFFIXES: LazyLock<WordList> = LazyLock::new(|| WordList::new(ORGANISATION_SUFFIXES));
    let mut k = i;
    while k < chars.len() && k - i < 24 && is_han(chars[k]) {
        if CAUSES.at(chars, k).is_some() {
            return false;
        }
        if SUFFIXES.at(chars, k).is_some() {
            return true;
        }
        if k > i && (is_name_stop(chars[k]) || party_word_at(chars, k).is_some()) {
            return false;
        }
        k += 1;
    }
    false
}

/// Characters that end a part of a transliterated name (`买买提·艾力`): punctuation and the particles
/// that follow a name. Narrower than [`NAME_STOPS`], since such names hold characters like 不 (阿不都).
pub const DOT_NAME_STOPS: &str = "与诉因犯的等和及系、，。；：:（）()《》“”\"' ";

/// The length in characters of the surname that opens `name` (2 for a compound surname, else 1).
pub fn surname_len(name: &str) -> usize {
    if COMPOUND_SURNAMES.iter().any(|s| name.starts_with(s)) { 2 } else { 1 }
}

/// Whether `c` is a Chinese character (CJK unified ideographs and extension A).
pub fn is_han(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c) || ('\u{3400}'..='\u{4DBF}').contains(&c)
}

/// A set of characters with a constant-time test: a bitmap over the CJK blocks (extension A and the
/// unified ideographs), a sorted list for anything else.
pub struct CharSet {
    han: Vec<u64>,
    other: Vec<char>,
}

/// The range of code points [`CharSet`] keeps as a bitmap.
const BITMAP: std::ops::Range<u32> = 0x3400..0xA000;

impl CharSet {
    /// The set of `chars`.
    pub fn new(chars: impl IntoIterator<Item = char>) -> Self {
        let mut han = vec![0u64; (BITMAP.end - BITMAP.start).div_ceil(64) as usize];
        let mut other = Vec::new();
        for c in chars {
            let u = c as u32;
            if BITMAP.contains(&u) {
                let i = (u - BITMAP.start) as usize;
                han[i / 64] |= 1 << (i % 64);
            } else {
                other.push(c);
            }
        }
        other.sort_unstable();
        other.dedup();
        CharSet { han, other }
    }

    /// Whether `c` is in the set.
    pub fn contains(&self, c: char) -> bool {
        let u = c as u32;
        if BITMAP.contains(&u) {
            let i = (u - BITMAP.start) as usize;
            self.han[i / 64] >> (i % 64) & 1 == 1
        } else {
            self.other.binary_search(&c).is_ok()
        }
    }
}

/// A list of words, searched in list order, with a set of their first characters as a quick filter.
pub struct WordList {
    first: CharSet,
    words: Vec<(&'static str, Vec<char>)>,
}

impl WordList {
    /// The list of `words`, in the same order.
    pub fn new(words: &[&'static str]) -> Self {
        WordList {
            first: CharSet::new(words.iter().filter_map(|w| w.chars().next())),
            words: words.iter().map(|w| (*w, w.chars().collect())).collect(),
        }
    }

    /// The first word of the list (in list order) that `chars[i..]` starts with.
    pub fn at(&self, chars: &[char], i: usize) -> Option<&'static str> {
        let c = *chars.get(i)?;
        if !self.first.contains(c) {
            return None;
        }
        let rest = &chars[i..];
        // Words are a few characters: compared inline rather than through `memcmp`.
        self.words
            .iter()
            .find(|(_, w)| w.len() <= rest.len() && w.iter().zip(rest).all(|(a, b)| a == b))
            .map(|(w, _)| *w)
    }
}

/// [`SURNAMES`] as a set.
static SURNAME_SET: LazyLock<CharSet> = LazyLock::new(|| CharSet::new(SURNAMES.chars()));

/// [`COMPOUND_SURNAMES`] with a quick filter.
static COMPOUND_LIST: LazyLock<WordList> = LazyLock::new(|| WordList::new(COMPOUND_SURNAMES));

/// The surname at `chars[i..]`, as a length, if one starts there.
pub fn surname_at(chars: &[char], i: usize) -> Option<usize> {
    let c = *chars.get(i)?;
    if COMPOUND_LIST.at(chars, i).is_some() {
        return Some(2);
    }
    SURNAME_SET.contains(c).then_some(1)
}

/// Whether `c` is one of [`NAME_STOPS`].
pub fn is_name_stop(c: char) -> bool {
    static SET: LazyLock<CharSet> = LazyLock::new(|| CharSet::new(NAME_STOPS.chars()));
    SET.contains(c)
}

/// Whether `c` is one of [`DOT_NAME_STOPS`].
pub fn is_dot_name_stop(c: char) -> bool {
    static SET: LazyLock<CharSet> = LazyLock::new(|| CharSet::new(DOT_NAME_STOPS.chars()));
    SET.contains(c)
}

/// Whether one of [`NOT_NAMES`] starts at `chars[i..]`.
pub fn not_name_at(chars: &[char], i: usize) -> bool {
    static LIST: LazyLock<WordList> = LazyLock::new(|| WordList::new(NOT_NAMES));
    LIST.at(chars, i).is_some()
}

/// Whether `chars` starts with `word`.
pub fn starts_with(chars: &[char], word: &str) -> bool {
    let mut it = chars.iter();
    word.chars().all(|w| it.next() == Some(&w))
}

/// The first characters of [`PARTY_WORDS`].
#[cfg(test)]
const PARTY_FIRST: &str = "委原犯申再被法当上第负代辩担借出债调证罪复赔异案";

/// [`PARTY_WORDS`] with a quick filter.
static PARTY_LIST: LazyLock<WordList> = LazyLock::new(|| WordList::new(PARTY_WORDS));

/// The party word at `chars[i..]`, if any (the longest, as [`PARTY_WORDS`] is ordered).
pub fn party_word_at(chars: &[char], i: usize) -> Option<&'static str> {
    PARTY_LIST.at(chars, i)
}

/// Whether `name` looks like a masked name already (`张某`, `欧阳某`, `张某某`).
pub fn is_masked_name(name: &str) -> bool {
    let s = surname_len(name);
    name.chars().skip(s).all(|c| c == '某' || c == '*') && name.chars().count() > s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_surnames_are_two_characters() {
        assert_eq!(surname_len("欧阳娜娜"), 2);
        assert_eq!(surname_len("诸葛亮"), 2);
        assert_eq!(surname_len("张伟"), 1);
        assert_eq!(surname_at(&"司马光".chars().collect::<Vec<_>>(), 0), Some(2));
        assert_eq!(surname_at(&"厦门".chars().collect::<Vec<_>>(), 0), None);
    }

    #[test]
    fn party_first_covers_every_party_word() {
        for w in PARTY_WORDS {
            assert!(PARTY_FIRST.contains(w.chars().next().unwrap()), "{w}");
        }
    }

    #[test]
    fn char_sets_and_word_lists_equal_plain_scans() {
        let text: Vec<char> = "原告张伟诉被告欧阳娜娜民间借贷纠纷一案，被告人买买提·艾力；司马光与公司解散纠纷abc１２·"
            .chars()
            .chain(NAME_STOPS.chars())
            .chain(SURNAMES.chars().take(40))
            .chain(PARTY_WORDS.concat().chars())
            .chain(NOT_NAMES.concat().chars())
            .collect();
        let stops = CharSet::new(NAME_STOPS.chars());
        for (i, &c) in text.iter().enumerate() {
            assert_eq!(stops.contains(c), NAME_STOPS.contains(c), "{c}");
            assert_eq!(is_dot_name_stop(c), DOT_NAME_STOPS.contains(c), "{c}");
            assert_eq!(SURNAME_SET.contains(c), SURNAMES.contains(c), "{c}");
            assert_eq!(party_word_at(&text, i), PARTY_WORDS.iter().copied().find(|w| starts_with(&text[i..], w)));
            assert_eq!(not_name_at(&text, i), NOT_NAMES.iter().any(|w| starts_with(&text[i..], w)));
            assert_eq!(cause_head_at(&text, i), CAUSE_HEADS.iter().any(|w| starts_with(&text[i..], w)));
        }
        assert!(!stops.contains('\u{10000}') && !stops.contains('a'));
    }

    #[test]
    fn longest_party_word_wins() {
        let chars: Vec<char> = "被告人王强".chars().collect();
        assert_eq!(party_word_at(&chars, 0), Some("被告人"));
        assert!(is_masked_name("欧阳某") && is_masked_name("张某某") && !is_masked_name("张伟"));
    }
}
