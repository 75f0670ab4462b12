//! County-level places (GB/T 2260) the address generaliser recognises: every district and county of
//! Fujian and the places elsewhere that the federation's litigants most often come from. An address
//! naming none of them generalises to nothing (the address is dropped), never to a guess.

use std::collections::HashMap;
use std::sync::LazyLock;

/// `(code, province, city, county)`; for municipalities the city repeats the province.
#[rustfmt::skip]
pub const COUNTIES: &[(&str, &str, &str, &str)] = &[
    ("350203", "福建省", "厦门市", "思明区"),
    ("350205", "福建省", "厦门市", "海沧区"),
    ("350206", "福建省", "厦门市", "湖里区"),
    ("350211", "福建省", "厦门市", "集美区"),
    ("350212", "福建省", "厦门市", "同安区"),
    ("350213", "福建省", "厦门市", "翔安区"),
    ("350102", "福建省", "福州市", "鼓楼区"),
    ("350103", "福建省", "福州市", "台江区"),
    ("350104", "福建省", "福州市", "仓山区"),
    ("350111", "福建省", "福州市", "晋安区"),
    ("350502", "福建省", "泉州市", "鲤城区"),
    ("350503", "福建省", "泉州市", "丰泽区"),
    ("350602", "福建省", "漳州市", "芗城区"),
    ("350105", "福建省", "福州市", "马尾区"),
    ("350112", "福建省", "福州市", "长乐区"),
    ("350121", "福建省", "福州市", "闽侯县"),
    ("350122", "福建省", "福州市", "连江县"),
    ("350123", "福建省", "福州市", "罗源县"),
    ("350124", "福建省", "福州市", "闽清县"),
    ("350125", "福建省", "福州市", "永泰县"),
    ("350128", "福建省", "福州市", "平潭县"),
    ("350181", "福建省", "福州市", "福清市"),
    ("350302", "福建省", "莆田市", "城厢区"),
    ("350303", "福建省", "莆田市", "涵江区"),
    ("350304", "福建省", "莆田市", "荔城区"),
    ("350305", "福建省", "莆田市", "秀屿区"),
    ("350322", "福建省", "莆田市", "仙游县"),
    ("350404", "福建省", "三明市", "三元区"),
    ("350405", "福建省", "三明市", "沙县区"),
    ("350421", "福建省", "三明市", "明溪县"),
    ("350423", "福建省", "三明市", "清流县"),
    ("350424", "福建省", "三明市", "宁化县"),
    ("350425", "福建省", "三明市", "大田县"),
    ("350426", "福建省", "三明市", "尤溪县"),
    ("350428", "福建省", "三明市", "将乐县"),
    ("350429", "福建省", "三明市", "泰宁县"),
    ("350430", "福建省", "三明市", "建宁县"),
    ("350481", "福建省", "三明市", "永安市"),
    ("350504", "福建省", "泉州市", "洛江区"),
    ("350505", "福建省", "泉州市", "泉港区"),
    ("350521", "福建省", "泉州市", "惠安县"),
    ("350524", "福建省", "泉州市", "安溪县"),
    ("350525", "福建省", "泉州市", "永春县"),
    ("350526", "福建省", "泉州市", "德化县"),
    ("350581", "福建省", "泉州市", "石狮市"),
    ("350582", "福建省", "泉州市", "晋江市"),
    ("350583", "福建省", "泉州市", "南安市"),
    ("350603", "福建省", "漳州市", "龙文区"),
    ("350604", "福建省", "漳州市", "龙海区"),
    ("350605", "福建省", "漳州市", "长泰区"),
    ("350622", "福建省", "漳州市", "云霄县"),
    ("350623", "福建省", "漳州市", "漳浦县"),
    ("350624", "福建省", "漳州市", "诏安县"),
    ("350626", "福建省", "漳州市", "东山县"),
    ("350627", "福建省", "漳州市", "南靖县"),
    ("350628", "福建省", "漳州市", "平和县"),
    ("350629", "福建省", "漳州市", "华安县"),
    ("350702", "福建省", "南平市", "延平区"),
    ("350703", "福建省", "南平市", "建阳区"),
    ("350721", "福建省", "南平市", "顺昌县"),
    ("350722", "福建省", "南平市", "浦城县"),
    ("350723", "福建省", "南平市", "光泽县"),
    ("350724", "福建省", "南平市", "松溪县"),
    ("350725", "福建省", "南平市", "政和县"),
    ("350781", "福建省", "南平市", "邵武市"),
    ("350782", "福建省", "南平市", "武夷山市"),
    ("350783", "福建省", "南平市", "建瓯市"),
    ("350802", "福建省", "龙岩市", "新罗区"),
    ("350803", "福建省", "龙岩市", "永定区"),
    ("350821", "福建省", "龙岩市", "长汀县"),
    ("350823", "福建省", "龙岩市", "上杭县"),
    ("350824", "福建省", "龙岩市", "武平县"),
    ("350825", "福建省", "龙岩市", "连城县"),
    ("350881", "福建省", "龙岩市", "漳平市"),
    ("350902", "福建省", "宁德市", "蕉城区"),
    ("350921", "福建省", "宁德市", "霞浦县"),
    ("350922", "福建省", "宁德市", "古田县"),
    ("350923", "福建省", "宁德市", "屏南县"),
    ("350924", "福建省", "宁德市", "寿宁县"),
    ("350925", "福建省", "宁德市", "周宁县"),
    ("350926", "福建省", "宁德市", "柘荣县"),
    ("350981", "福建省", "宁德市", "福安市"),
    ("350982", "福建省", "宁德市", "福鼎市"),
    ("360102", "江西省", "南昌市", "东湖区"),
    ("360121", "江西省", "南昌市", "南昌县"),
    ("360502", "江西省", "新余市", "渝水区"),
    ("430102", "湖南省", "长沙市", "芙蓉区"),
    ("510104", "四川省", "成都市", "锦江区"),
    ("420102", "湖北省", "武汉市", "江岸区"),
    ("410102", "河南省", "郑州市", "中原区"),
    ("440305", "广东省", "深圳市", "南山区"),
    ("440104", "广东省", "广州市", "越秀区"),
    ("330106", "浙江省", "杭州市", "西湖区"),
    ("320106", "江苏省", "南京市", "鼓楼区"),
    ("340102", "安徽省", "合肥市", "瑶海区"),
    ("500101", "重庆市", "重庆市", "万州区"),
    ("522301", "贵州省", "黔西南布依族苗族自治州", "兴义市"),
    ("450102", "广西壮族自治区", "南宁市", "兴宁区"),
    ("110105", "北京市", "北京市", "朝阳区"),
    ("310115", "上海市", "上海市", "浦东新区"),
];

/// For each entry of [`COUNTIES`], the two ways an address names it with its city: `厦门市思明区` and
/// `厦门思明区`.
static WITH_CITY: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    COUNTIES
        .iter()
        .map(|(_, _, city, county)| (format!("{city}{county}"), format!("{}{county}", city.trim_end_matches('市'))))
        .collect()
});

/// The entries of [`COUNTIES`] (indices, in table order) for each county name.
static BY_NAME: LazyLock<HashMap<&'static str, Vec<usize>>> = LazyLock::new(|| {
    let mut map: HashMap<&'static str, Vec<usize>> = HashMap::new();
    for (i, (_, _, _, county)) in COUNTIES.iter().enumerate() {
        map.entry(county).or_default().push(i);
    }
    map
});

/// The characters county names end with, and the longest name in characters.
static NAME_ENDS: LazyLock<(Vec<char>, usize)> = LazyLock::new(|| {
    let mut ends: Vec<char> = COUNTIES.iter().filter_map(|(_, _, _, county)| county.chars().last()).collect();
    ends.sort_unstable();
    ends.dedup();
    (ends, COUNTIES.iter().map(|(_, _, _, county)| county.chars().count()).max().unwrap_or(0))
});

/// The entries of [`COUNTIES`] whose county name occurs in `address`, in table order: each
/// character a county name can end with is tried as the end of every name length.
fn counties_named(address: &str) -> Vec<usize> {
    let (ends, longest) = &*NAME_ENDS;
    let mut hits = Vec::new();
    for (at, ch) in address.char_indices() {
        if ends.binary_search(&ch).is_err() {
            continue;
        }
        let end = at + ch.len_utf8();
        let mut start = at;
        for _ in 1..*longest {
            let Some(prev) = address[..start].chars().next_back() else { break };
            start -= prev.len_utf8();
            if let Some(entries) = BY_NAME.get(&address[start..end]) {
                hits.extend_from_slice(entries);
            }
        }
    }
    hits.sort_unstable();
    hits.dedup();
    hits
}

/// The 6-digit code of the county an address lies in, recognised by city and county name (the
/// county name alone when it is unique in the table).
pub fn county_code(address: &str) -> Option<&'static str> {
    // Both city forms end with the county's name, so only the entries named in the address can match.
    let named = counties_named(address);
    let by_city = named.iter().find(|&&i| address.contains(&WITH_CITY[i].0) || address.contains(&WITH_CITY[i].1));
    if let Some(&i) = by_city {
        return Some(COUNTIES[i].0);
    }
    match named.as_slice() {
        [i] => Some(COUNTIES[*i].0),
        _ => None,
    }
}

/// [`county_code`] as a plain scan of the whole table, the definition the fast version must equal.
#[cfg(test)]
fn county_code_by_scan(address: &str) -> Option<&'static str> {
    let by_city = COUNTIES.iter().find(|(_, _, city, county)| {
        address.contains(&format!("{city}{county}"))
            || address.contains(&format!("{}{county}", city.trim_end_matches('市')))
    });
    if let Some((code, ..)) = by_city {
        return Some(code);
    }
    let mut alone = COUNTIES.iter().filter(|(_, _, _, county)| address.contains(county));
    match (alone.next(), alone.next()) {
        (Some((code, ..)), None) => Some(code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counties_are_recognised_by_city_and_name() {
        assert_eq!(county_code("福建省厦门市思明区湖滨南路123号5栋1201室"), Some("350203"));
        assert_eq!(county_code("福州市鼓楼区五四路8号"), Some("350102"));
        assert_eq!(county_code("江苏省南京市鼓楼区中山路1号"), Some("320106"));
        assert_eq!(county_code("重庆市万州区人民路1号"), Some("500101"));
        assert_eq!(county_code("晋江市阳光路2号"), Some("350582"));
        // 鼓楼区 alone is ambiguous (Fuzhou, Nanjing): no guess.
        assert_eq!(county_code("鼓楼区中山路1号"), None);
        assert_eq!(county_code("某地某路1号"), None);
    }

    #[test]
    fn the_indexed_lookup_equals_the_table_scan() {
        let mut addresses: Vec<String> = vec!["".into(), "区".into(), "思明".into(), "厦门思明区".into()];
        for (i, (_, province, city, county)) in COUNTIES.iter().enumerate() {
            let other = COUNTIES[(i * 7 + 3) % COUNTIES.len()];
            addresses.push(format!("{province}{city}{county}某路{i}号"));
            addresses.push(format!("{}{county}", city.trim_end_matches('市')));
            addresses.push(format!("{county}中山路1号"));
            addresses.push(format!("{county}{}", other.3));
            addresses.push(format!("{}{county}{}{}", other.2, other.1, other.3));
            addresses.push(format!("{}{}", &county[..county.len() - 3], city));
        }
        for a in &addresses {
            assert_eq!(county_code(a), county_code_by_scan(a), "{a}");
        }
    }
}
