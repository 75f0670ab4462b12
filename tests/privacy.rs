//! No personal value of the data (name, ID number, credit code, phone, address) appears in any
//! answer, error, log line or audit record, nor in the nodes' stores — even when a requester pastes
//! personal data into the request.

use std::collections::HashSet;

use shuzhu_proto::v1 as pb;

use crate::util::{fx, personal_values, request, walk};

fn is_han(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c) || c == '·'
}

/// Finds personal values in `text`: digit runs (and their ID- and phone-length windows) and every
/// 2–6 character window of runs of Chinese characters are looked up in `needles`; longer values
/// (addresses, organisation names) are searched directly.
fn find(text: &str, needles: &HashSet<String>, long: &[String]) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut hits = HashSet::new();
    let mut i = 0;
    while i < chars.len() {
        let digit = |c: char| c.is_ascii_digit() || c == 'X' || c == 'x';
        let han = is_han(chars[i]);
        if !(digit(chars[i]) || han) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (if han { is_han(chars[i]) } else { digit(chars[i]) }) {
            i += 1;
        }
        let run = &chars[start..i];
        let lens: &[usize] = if han { &[2, 3, 4, 5, 6] } else { &[11, 15, 18] };
        for &l in lens {
            for w in run.windows(l) {
                let s: String = w.iter().collect();
                if needles.contains(&s) {
                    hits.insert(s);
                }
            }
        }
    }
    // Long values by their first six characters, so the scan stays linear in the text.
    let mut by_prefix: std::collections::HashMap<String, Vec<&String>> = std::collections::HashMap::new();
    for l in long {
        by_prefix.entry(l.chars().take(6).collect()).or_default().push(l);
    }
    for (byte_at, _) in text.char_indices() {
        let prefix: String = text[byte_at..].chars().take(6).collect();
        if let Some(candidates) = by_prefix.get(&prefix) {
            for l in candidates {
                if text[byte_at..].starts_with(l.as_str()) {
                    hits.insert((*l).clone());
                }
            }
        }
    }
    hits.into_iter().collect()
}

#[test]
fn no_personal_value_leaves_or_is_stored() {
    let values = personal_values(&fx().data);
    assert!(values.len() > 1000, "the data must hold personal values for this test to mean anything");
    let needles: HashSet<String> = values.iter().filter(|v| v.chars().count() <= 18).cloned().collect();
    let long: Vec<String> = values.iter().filter(|v| v.chars().count() > 18).cloned().collect();
    // Two-character names can be ordinary words inside labels (案由); answers are checked for longer
    // values, stores, logs and the ledger for all.
    let needles_3plus: HashSet<String> = needles.iter().filter(|v| v.chars().count() >= 3).cloned().collect();

    // A requester who pastes real personal data of the dataset into every free-text field.
    let name = values.iter().find(|v| v.chars().count() == 3 && v.chars().all(is_han)).unwrap().clone();
    let id = values.iter().find(|v| v.len() == 18 && v[..17].bytes().all(|b| b.is_ascii_digit())).unwrap().clone();
    let phone = values.iter().find(|v| v.len() == 11 && v.starts_with('1')).unwrap().clone();
    let hostile = format!("原告{name}，身份证{id}，电话{phone}");
    // The scanner itself must find what it looks for, or the checks below prove nothing.
    let address = long.iter().find(|v| v.contains('号')).unwrap().clone();
    for probe in [&name, &id, &phone, &address] {
        assert_eq!(find(&format!("前{probe}后"), &needles, &long).len(), 1, "scanner misses {probe}");
    }
    let analyst = fx().token("requester");
    let mut outputs = Vec::new();
    let mut hostile_req = request("closure_rate", &["region", "cause"], 202301, 202312, "诉源治理");
    hostile_req.legal_basis = hostile.clone();
    let mut reqs = vec![
        request("filed", &["region", "cause", "month"], 202401, 202406, "诉源治理"),
        request("avg_trial_days", &["type_code", "year"], 201901, 202412, "司法统计"),
        hostile_req,
    ];
    let mut bad = request("filed", &["region"], 202401, 202412, &hostile);
    bad.filters = vec![pb::DimensionFilter { dimension: "cause".into(), values: vec![hostile.clone()] }];
    reqs.push(bad);
    let mut bad2 = request(&hostile, &["region"], 202401, 202412, "诉源治理");
    bad2.group_by = vec![phone.clone()];
    reqs.push(bad2);
    reqs.push(request("filed", &[&id], 202401, 202412, "诉源治理"));
    for r in reqs {
        match fx().query(&analyst, r) {
            Ok(resp) => outputs.push(serde_json::to_string(&shuzhu::output::answer_json(&resp)).unwrap()),
            Err(s) => outputs.push(s.message().to_string()),
        }
    }
    for o in &outputs {
        let leaked = find(o, &needles_3plus, &long);
        assert!(leaked.is_empty(), "answer or error leaked {leaked:?}: {o}");
        assert!(!o.contains(&id) && !o.contains(&phone), "{o}");
    }
    let ledger = fx().ledger_text();
    let leaked = find(&ledger, &needles, &long);
    assert!(leaked.is_empty(), "ledger leaked {leaked:?}");
    assert!(ledger.contains("原告") && !ledger.contains(&name), "the legal basis is recorded, masked");

    let logs = String::from_utf8_lossy(&fx().logs.lock().unwrap()).into_owned();
    assert!(logs.contains("query answered"), "logs were captured");
    let leaked = find(&logs, &needles, &long);
    assert!(leaked.is_empty(), "logs leaked {leaked:?}");

    let mut scanned = 0;
    for f in walk(&fx().prepared.dir.join("nodes")) {
        if f.components().any(|c| c.as_os_str() == "store") {
            let bytes = std::fs::read(&f).unwrap();
            scanned += bytes.len();
            let leaked = find(&String::from_utf8_lossy(&bytes), &needles, &long);
            assert!(leaked.is_empty(), "store file {} holds {leaked:?}", f.display());
        }
    }
    assert!(scanned > 100_000, "stores were scanned ({scanned} bytes)");
}
