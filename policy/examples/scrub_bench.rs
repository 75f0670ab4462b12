//! Times `scrub_text_known` over summaries shaped like the generator's (parties, IDs, phones,
//! addresses), as minimisation at import runs it: `cargo run --release -p shuzhu-policy --example
//! scrub_bench`.

use shuzhu_policy::pii;
use std::time::Instant;

const SURNAMES: &[&str] = &["张", "王", "李", "欧阳", "陈", "司马", "刘", "黄"];
const GIVEN: &[&str] = &["伟", "娜娜", "强", "秀英", "敏", "志明", "丽", "建国"];

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let rows: Vec<(String, Vec<String>)> = (0..n)
        .map(|i| {
            let p = format!("{}{}", SURNAMES[i % 8], GIVEN[(i / 8) % 8]);
            let d = format!("{}{}", SURNAMES[(i + 3) % 8], GIVEN[(i / 3) % 8]);
            let id = format!("3502031985{:02}{:02}{:03}X", 1 + i % 12, 1 + i % 28, i % 1000);
            let phone = format!("138{:08}", i % 100_000_000);
            let addr = format!("福建省厦门市思明区湖滨南路{}号{}室", i % 900 + 1, i % 30 + 101);
            let summary = format!(
                "原告{p}（身份证号{id}，电话{phone}）诉被告{d}民间借贷纠纷一案。{p}称，{d}于2023年5月1日\
                 向其借款12345.00元，约定月息1%，至今未还。被告{d}住{addr}，经传票传唤未到庭。本院认为，\
                 {d}应当偿还借款本金及利息。"
            );
            (summary, vec![p, d, id, phone, addr])
        })
        .collect();
    let start = Instant::now();
    let mut bytes = 0;
    for (summary, known) in &rows {
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        bytes += pii::scrub_text_known(summary, &known).len();
    }
    let t = start.elapsed();
    println!(
        "{n} summaries, {bytes} bytes out: {:.1} ms, {:.2} µs per summary",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e6 / n as f64
    );
    let key = shuzhu_policy::pseudonym::PseudonymKey::from_bytes(&[7; 32]).expect("32 bytes is a valid key");
    let start = Instant::now();
    let mut sum = 0u64;
    for (_, known) in &rows {
        sum += key.pseudonym("plaintiff_name", &known[0]).len() as u64;
        sum += key.pseudonym("plaintiff_id", &known[2]).len() as u64;
        sum += shuzhu_policy::pseudonym::derive_from_resident_id(&known[2]).map_or(0, |a| u64::from(a.city));
    }
    let t = start.elapsed();
    println!(
        "pseudonyms and ID derivation: {:.1} ms, {:.2} µs per row ({sum})",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "sample: {}",
        pii::scrub_text_known(&rows[0].0, &rows[0].1.iter().map(String::as_str).collect::<Vec<_>>())
    );
}
