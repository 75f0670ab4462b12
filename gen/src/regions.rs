//! The districts the generator knows: which courts exist, where people live and were born.
//!
//! Courts come first from the six districts of Xiamen, then from real Fujian districts and counties
//! (GB/T 2260 codes, court code `闽` + the last four digits, as Fujian's basic courts use), then from
//! synthetic but unique codes for benchmarks that need hundreds of nodes.

use crate::sample::fnv1a;

/// A real place: a district or county with its approximate resident population (thousands, 2024).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub(crate) code: &'static str,
    pub(crate) province: &'static str,
    pub(crate) city: &'static str,
    pub(crate) district: &'static str,
    pub(crate) population_k: u32,
}

const fn fj(code: &'static str, city: &'static str, district: &'static str, population_k: u32) -> Place {
    Place { code, province: "福建省", city, district, population_k }
}

/// Fujian districts and counties in the order courts are taken: Xiamen's six first.
pub(crate) const FUJIAN: &[Place] = &[
    fj("350203", "厦门市", "思明区", 1100),
    fj("350205", "厦门市", "海沧区", 600),
    fj("350206", "厦门市", "湖里区", 1050),
    fj("350211", "厦门市", "集美区", 1070),
    fj("350212", "厦门市", "同安区", 900),
    fj("350213", "厦门市", "翔安区", 700),
    fj("350102", "福州市", "鼓楼区", 690),
    fj("350103", "福州市", "台江区", 450),
    fj("350104", "福州市", "仓山区", 1010),
    fj("350111", "福州市", "晋安区", 950),
    fj("350502", "泉州市", "鲤城区", 410),
    fj("350503", "泉州市", "丰泽区", 720),
    fj("350602", "漳州市", "芗城区", 700),
    fj("350105", "福州市", "马尾区", 260),
    fj("350112", "福州市", "长乐区", 770),
    fj("350121", "福州市", "闽侯县", 970),
    fj("350122", "福州市", "连江县", 560),
    fj("350123", "福州市", "罗源县", 210),
    fj("350124", "福州市", "闽清县", 230),
    fj("350125", "福州市", "永泰县", 250),
    fj("350128", "福州市", "平潭县", 360),
    fj("350181", "福州市", "福清市", 1390),
    fj("350302", "莆田市", "城厢区", 510),
    fj("350303", "莆田市", "涵江区", 430),
    fj("350304", "莆田市", "荔城区", 560),
    fj("350305", "莆田市", "秀屿区", 520),
    fj("350322", "莆田市", "仙游县", 850),
    fj("350404", "三明市", "三元区", 380),
    fj("350405", "三明市", "沙县区", 230),
    fj("350421", "三明市", "明溪县", 90),
    fj("350423", "三明市", "清流县", 120),
    fj("350424", "三明市", "宁化县", 270),
    fj("350425", "三明市", "大田县", 270),
    fj("350426", "三明市", "尤溪县", 340),
    fj("350428", "三明市", "将乐县", 140),
    fj("350429", "三明市", "泰宁县", 110),
    fj("350430", "三明市", "建宁县", 110),
    fj("350481", "三明市", "永安市", 340),
    fj("350504", "泉州市", "洛江区", 210),
    fj("350505", "泉州市", "泉港区", 320),
    fj("350521", "泉州市", "惠安县", 960),
    fj("350524", "泉州市", "安溪县", 990),
    fj("350525", "泉州市", "永春县", 450),
    fj("350526", "泉州市", "德化县", 280),
    fj("350581", "泉州市", "石狮市", 690),
    fj("350582", "泉州市", "晋江市", 2070),
    fj("350583", "泉州市", "南安市", 1520),
    fj("350603", "漳州市", "龙文区", 300),
    fj("350604", "漳州市", "龙海区", 800),
    fj("350605", "漳州市", "长泰区", 200),
    fj("350622", "漳州市", "云霄县", 380),
    fj("350623", "漳州市", "漳浦县", 800),
    fj("350624", "漳州市", "诏安县", 560),
    fj("350626", "漳州市", "东山县", 210),
    fj("350627", "漳州市", "南靖县", 310),
    fj("350628", "漳州市", "平和县", 470),
    fj("350629", "漳州市", "华安县", 140),
    fj("350702", "南平市", "延平区", 430),
    fj("350703", "南平市", "建阳区", 310),
    fj("350721", "南平市", "顺昌县", 170),
    fj("350722", "南平市", "浦城县", 300),
    fj("350723", "南平市", "光泽县", 130),
    fj("350724", "南平市", "松溪县", 120),
    fj("350725", "南平市", "政和县", 170),
    fj("350781", "南平市", "邵武市", 280),
    fj("350782", "南平市", "武夷山市", 250),
    fj("350783", "南平市", "建瓯市", 450),
    fj("350802", "龙岩市", "新罗区", 860),
    fj("350803", "龙岩市", "永定区", 380),
    fj("350821", "龙岩市", "长汀县", 400),
    fj("350823", "龙岩市", "上杭县", 380),
    fj("350824", "龙岩市", "武平县", 280),
    fj("350825", "龙岩市", "连城县", 250),
    fj("350881", "龙岩市", "漳平市", 240),
    fj("350902", "宁德市", "蕉城区", 470),
    fj("350921", "宁德市", "霞浦县", 460),
    fj("350922", "宁德市", "古田县", 330),
    fj("350923", "宁德市", "屏南县", 140),
    fj("350924", "宁德市", "寿宁县", 170),
    fj("350925", "宁德市", "周宁县", 110),
    fj("350926", "宁德市", "柘荣县", 90),
    fj("350981", "宁德市", "福安市", 600),
    fj("350982", "宁德市", "福鼎市", 560),
];

/// Places outside Fujian where many of Xiamen's litigants were born or live (migrant workers,
/// lenders and borrowers from elsewhere), with a weight for how often they appear.
pub(crate) const ELSEWHERE: &[(Place, u32)] = &[
    (Place { code: "360102", province: "江西省", city: "南昌市", district: "东湖区", population_k: 0 }, 6),
    (Place { code: "360121", province: "江西省", city: "南昌市", district: "南昌县", population_k: 0 }, 5),
    (Place { code: "360502", province: "江西省", city: "新余市", district: "渝水区", population_k: 0 }, 3),
    (Place { code: "430102", province: "湖南省", city: "长沙市", district: "芙蓉区", population_k: 0 }, 4),
    (Place { code: "510104", province: "四川省", city: "成都市", district: "锦江区", population_k: 0 }, 5),
    (Place { code: "420102", province: "湖北省", city: "武汉市", district: "江岸区", population_k: 0 }, 3),
    (Place { code: "410102", province: "河南省", city: "郑州市", district: "中原区", population_k: 0 }, 4),
    (Place { code: "440305", province: "广东省", city: "深圳市", district: "南山区", population_k: 0 }, 3),
    (Place { code: "440104", province: "广东省", city: "广州市", district: "越秀区", population_k: 0 }, 2),
    (Place { code: "330106", province: "浙江省", city: "杭州市", district: "西湖区", population_k: 0 }, 2),
    (Place { code: "320106", province: "江苏省", city: "南京市", district: "鼓楼区", population_k: 0 }, 1),
    (Place { code: "340102", province: "安徽省", city: "合肥市", district: "瑶海区", population_k: 0 }, 3),
    (Place { code: "500101", province: "重庆市", city: "重庆市", district: "万州区", population_k: 0 }, 3),
    (
        Place {
            code: "522301",
            province: "贵州省",
            city: "黔西南布依族苗族自治州",
            district: "兴义市",
            population_k: 0,
        },
        2,
    ),
    (
        Place {
            code: "450102", province: "广西壮族自治区", city: "南宁市", district: "兴宁区", population_k: 0
        },
        2,
    ),
    (Place { code: "110105", province: "北京市", city: "北京市", district: "朝阳区", population_k: 0 }, 1),
    (Place { code: "310115", province: "上海市", city: "上海市", district: "浦东新区", population_k: 0 }, 1),
];

/// Birth places of people with Uyghur names (area codes of Xinjiang).
pub(crate) const XINJIANG_AREAS: &[&str] = &["650102", "653101", "652801"];

/// Area codes that still appear in IDs although the district was merged away (开元区, 2003).
pub(crate) const RETIRED_AREAS: &[&str] = &["350204"];

/// A region served by a generated court: real or synthetic.
#[derive(Debug, Clone)]
pub(crate) struct Region {
    /// 6-digit GB/T 2260 code.
    pub(crate) code: String,
    /// 法院代字, `闽` + the last four digits of the code.
    pub(crate) court_code: String,
    pub(crate) province: &'static str,
    pub(crate) city: String,
    pub(crate) district: String,
    /// Resident population in 2024, persons.
    pub(crate) population: u64,
    /// Real districts of the same city (for addresses and cases from neighbouring courts).
    pub(crate) neighbours: Vec<Place>,
    /// The city's 6-digit code (`350200`), where city-level bodies register.
    pub(crate) city_code: String,
    /// The city's intermediate court code (`闽02`), for second-instance case numbers.
    pub(crate) intermediate_court_code: String,
}

impl Region {
    /// The last four digits of the code, used in staff numbers (`J0213017`).
    pub(crate) fn short_code(&self) -> &str {
        &self.code[2..]
    }

    /// The city without its suffix, as used in company and branch names (`厦门`).
    pub(crate) fn city_short(&self) -> &str {
        self.city.strip_suffix('市').unwrap_or(&self.city)
    }

    /// The district without its suffix (`思明`).
    pub(crate) fn district_short(&self) -> &str {
        let d = self.district.as_str();
        d.strip_suffix('区').or_else(|| d.strip_suffix('县')).or_else(|| d.strip_suffix('市')).unwrap_or(d)
    }
}

#[rustfmt::skip]
const CITY_NAMES: [&str; 10] = [
    "", "福州市", "厦门市", "莆田市", "三明市", "泉州市", "漳州市", "南平市", "龙岩市", "宁德市",
];

/// Characters for the names of synthetic districts.
#[rustfmt::skip]
const NAME_CHARS: &[char] = &[
    '东', '西', '南', '北', '新', '安', '宁', '平', '和', '丰', '泰', '海', '山', '湖', '江', '溪',
    '源', '兴', '华', '清', '永', '长', '福', '德', '嘉', '禾', '鹭', '岚', '桐', '榕',
];

/// Synthetic county slots that no real Fujian code uses (real ones are 01–30 and 81–83).
const SYNTHETIC_SLOTS: usize = 50;
/// Synthetic codes inside the nine real cities.
const SYNTHETIC_IN_CITIES: usize = 9 * SYNTHETIC_SLOTS;
/// Synthetic cities 10–99, each with counties 01–99.
const SYNTHETIC_EXTRA: usize = 90 * 99;

/// The most courts `generate` can produce.
pub const MAX_COURTS: usize = FUJIAN.len() + SYNTHETIC_IN_CITIES + SYNTHETIC_EXTRA;

// Benchmarks run hundreds of nodes.
const _: () = assert!(MAX_COURTS >= 256);

/// The regions of the first `n` courts (`n <= MAX_COURTS`).
pub(crate) fn regions(n: usize) -> Vec<Region> {
    (0..n.min(MAX_COURTS)).map(region).collect()
}

fn neighbours_of(code: &str) -> Vec<Place> {
    FUJIAN.iter().filter(|p| p.code[..4] == code[..4] && p.code != code).copied().collect()
}

fn synthetic_name(key: u64, suffix: char) -> String {
    let a = NAME_CHARS[(key % NAME_CHARS.len() as u64) as usize];
    let b = NAME_CHARS[((key / 31) % NAME_CHARS.len() as u64) as usize];
    [a, b, suffix].iter().collect()
}

fn region(index: usize) -> Region {
    if let Some(place) = FUJIAN.get(index) {
        return Region {
            code: place.code.to_string(),
            city_code: format!("{}00", &place.code[..4]),
            intermediate_court_code: format!("闽{}", &place.code[2..4]),
            court_code: format!("闽{}", &place.code[2..]),
            province: place.province,
            city: place.city.to_string(),
            district: place.district.to_string(),
            population: u64::from(place.population_k) * 1000,
            neighbours: neighbours_of(place.code),
        };
    }
    let k = index - FUJIAN.len();
    let (city_no, county_no) = if k < SYNTHETIC_IN_CITIES {
        let slot = k % SYNTHETIC_SLOTS;
        (1 + k / SYNTHETIC_SLOTS, if slot < 40 { 40 + slot } else { 90 + slot - 40 })
    } else {
        let j = k - SYNTHETIC_IN_CITIES;
        (10 + j / 99, 1 + j % 99)
    };
    let code = format!("35{city_no:02}{county_no:02}");
    let key = fnv1a(code.as_bytes());
    let city = match CITY_NAMES.get(city_no) {
        Some(name) => (*name).to_string(),
        None => synthetic_name(fnv1a(&code.as_bytes()[..4]), '市'),
    };
    Region {
        court_code: format!("闽{}", &code[2..]),
        province: "福建省",
        city,
        district: synthetic_name(key, '区'),
        population: 150_000 + (key >> 8) % 750_000,
        neighbours: neighbours_of(&code),
        city_code: format!("{}00", &code[..4]),
        intermediate_court_code: format!("闽{}", &code[2..4]),
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn xiamen_comes_first_in_the_agreed_order() {
        let r = regions(6);
        let got: Vec<(&str, &str)> = r.iter().map(|r| (r.code.as_str(), r.court_code.as_str())).collect();
        assert_eq!(
            got,
            [
                ("350203", "闽0203"),
                ("350205", "闽0205"),
                ("350206", "闽0206"),
                ("350211", "闽0211"),
                ("350212", "闽0212"),
                ("350213", "闽0213")
            ]
        );
        assert_eq!(r[0].district, "思明区");
        assert_eq!(r[0].city_short(), "厦门");
        assert_eq!(r[0].district_short(), "思明");
        assert_eq!(r[0].intermediate_court_code, "闽02");
        assert_eq!(r[0].city_code, "350200");
        assert_eq!(r[0].neighbours.len(), 5);
    }

    #[test]
    fn every_code_is_unique_up_to_the_maximum() {
        let all = regions(MAX_COURTS);
        assert_eq!(all.len(), MAX_COURTS);
        let mut codes = HashSet::new();
        let mut courts = HashSet::new();
        for r in &all {
            assert_eq!(r.code.len(), 6);
            assert!(r.code.bytes().all(|b| b.is_ascii_digit()), "{}", r.code);
            assert!(r.code.starts_with("35"));
            assert!(codes.insert(r.code.clone()), "duplicate {}", r.code);
            assert!(courts.insert(r.court_code.clone()), "duplicate {}", r.court_code);
            assert!(r.population > 0);
        }
    }

    #[test]
    fn real_places_have_six_digit_codes() {
        let fujian = FUJIAN.iter().map(|p| p.code);
        let other = ELSEWHERE.iter().map(|(p, _)| p.code);
        for code in fujian.chain(other).chain(XINJIANG_AREAS.iter().copied()).chain(RETIRED_AREAS.iter().copied()) {
            assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
    }
}
