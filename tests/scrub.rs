//! The free-text scrubber of `shuzhu_policy::pii` on its own (no known values of the row to help it),
//! over generated case summaries, which embed the parties' names, ID numbers, phones and addresses as
//! clerks' notes do: after `scrub_text`, none of a natural person's name, ID number, phone or street
//! address survives, and `mask_text` (the gateway's exit masking) leaves none either.

use shuzhu_policy::mask::mask_text;
use shuzhu_policy::pii::{detect, scrub_text};

#[test]
fn generated_summaries_keep_no_personal_value_after_scrubbing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = shuzhu_gen::GenConfig { courts: 2, cases_per_court: 3000, seed: 7, ..Default::default() };
    let nodes = shuzhu_gen::generate(dir.path(), &cfg).unwrap();
    let mut checked = 0;
    let mut persons = 0;
    for node in nodes.iter().filter(|n| n.dataset == "cases") {
        let mut r = csv::Reader::from_path(&node.file).unwrap();
        let headers = r.headers().unwrap().clone();
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let summary = col("summary");
        for rec in r.records() {
            let rec = rec.unwrap();
            let mut secrets: Vec<&str> = Vec::new();
            for side in ["plaintiff", "defendant"] {
                if &rec[col(&format!("{side}_kind"))] == "自然人" {
                    secrets.push(&rec[col(&format!("{side}_name"))]);
                    persons += 1;
                }
                secrets.push(&rec[col(&format!("{side}_id_no"))]);
                secrets.push(&rec[col(&format!("{side}_phone"))]);
            }
            // The street part of the address (what follows the county).
            let address = &rec[col("defendant_address")];
            if let Some(at) = address.find(['区', '县']) {
                secrets.push(&address[at + '区'.len_utf8()..]);
            }
            let text = &rec[summary];
            for out in [scrub_text(text), mask_text(text)] {
                for s in secrets.iter().filter(|s| s.chars().count() >= 2) {
                    assert!(!out.contains(s), "a personal value survives in {out}");
                }
                assert!(detect(&out).is_empty(), "still detectable: {out}");
            }
            checked += 1;
        }
    }
    assert!(checked > 5000 && persons > 3000, "the data must exercise the scrubber ({checked}, {persons})");
}
