//! Protection beyond suppression, chosen per grant: rounding to 5, the cell-key method and
//! differential privacy with a budget, each on a small federation of its own whose policy is
//! rewritten and reloaded.

use std::collections::BTreeMap;

use shuzhu::federation::{self, Prepared, Running};
use shuzhu_proto::v1 as pb;

use crate::util::request;

struct Fed {
    rt: tokio::runtime::Runtime,
    prepared: Prepared,
    running: Running,
    /// Cases filed per (region, year).
    truth: BTreeMap<(String, String), i64>,
}

impl Fed {
    /// Starts a federation whose analyst grant has `analyst` protection and whose manager grant has
    /// `manager` protection (extra TOML lines appended to each grant).
    fn start(tag: &str, analyst: &str, manager: &str) -> Fed {
        let dir = crate::util::fixture_dir(&format!("shuzhu-protect-{tag}-"));
        let data = dir.join("data");
        let cfg = shuzhu_gen::GenConfig { courts: 3, cases_per_court: 800, seed: 5, ..Default::default() };
        shuzhu_gen::generate(&data, &cfg).unwrap();
        let specs: Vec<_> =
            federation::discover(&data).unwrap().into_iter().filter(|s| s.id.starts_with("court-")).collect();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let prepared = federation::prepare(&dir.join("fed"), &specs, &mut |_| {}).unwrap();
        let running = rt.block_on(federation::start(&prepared)).unwrap();
        let mut truth = BTreeMap::new();
        for s in &specs {
            let mut r = csv::Reader::from_path(data.join(&s.id).join("cases.csv")).unwrap();
            let h = r.headers().unwrap().clone();
            let (cr, cf) =
                (h.iter().position(|x| x == "region_code").unwrap(), h.iter().position(|x| x == "filed_on").unwrap());
            for rec in r.records() {
                let rec = rec.unwrap();
                *truth.entry((rec[cr].to_string(), rec[cf][..4].to_string())).or_default() += 1;
            }
        }
        let fed = Fed { rt, prepared, running, truth };
        fed.set_protection(analyst, manager);
        fed
    }

    fn set_protection(&self, analyst: &str, manager: &str) {
        let text = federation::demo_policy();
        let mut parts: Vec<String> = text.split("[[grant]]").map(str::to_string).collect();
        assert_eq!(parts.len(), 3, "two grants in the demo policy");
        parts[1] = format!("{}{analyst}\n\n", parts[1].trim_end());
        parts[2] = format!("{}{manager}\n", parts[2].trim_end());
        std::fs::write(&self.prepared.policy, parts.join("[[grant]]")).unwrap();
        self.running.gateway.reload_policy().unwrap();
    }

    fn query(&self, who: &str, req: pb::QueryRequest) -> Result<pb::QueryResponse, tonic::Status> {
        let token = shuzhu::client::read_token(&self.prepared.tokens[who]).unwrap();
        self.rt.block_on(async {
            let ch = shuzhu::client::connect(&self.running.gateway_url, &self.prepared.pki.ca_cert).await.unwrap();
            shuzhu::client::query(ch, &token, req).await
        })
    }

    fn by_region_year(&self, who: &str, purpose: &str) -> BTreeMap<(String, String), i64> {
        let resp = self.query(who, request("filed", &["region", "year"], 201901, 202412, purpose)).unwrap();
        resp.rows
            .iter()
            .filter(|r| r.status == "ok")
            .map(|r| ((r.group["region"].clone(), r.group["year"].clone()), r.value.unwrap() as i64))
            .collect()
    }
}

#[test]
fn round5_and_cell_key_give_close_consistent_values() {
    let fed = Fed::start("ck", "\nprotection = \"cell_key\"\n", "\nprotection = \"round5\"\n");
    let ck = fed.by_region_year("requester", "诉源治理");
    assert!(ck.len() >= 15, "{ck:?}");
    let mut moved = 0;
    for (k, v) in &ck {
        let t = fed.truth[k];
        assert!((v - t).abs() <= 2, "{k:?}: {v} vs {t}");
        moved += usize::from(*v != t);
    }
    assert!(moved > 0, "the cell key never moved a value: {ck:?}");
    // The same cells get the same values every time: averaging repeated answers learns nothing.
    for _ in 0..3 {
        assert_eq!(fed.by_region_year("requester", "诉源治理"), ck);
    }
    let rounded = fed.by_region_year("manager", "审判管理");
    for (k, v) in &rounded {
        let t = fed.truth[k];
        assert_eq!(v % 5, 0, "{k:?}: {v}");
        assert!((v - t).abs() <= 2, "{k:?}: {v} vs {t}");
    }
}

#[test]
fn dp_answers_are_noisy_near_the_truth_and_refused_when_the_budget_is_spent() {
    let fed = Fed::start(
        "dp",
        "\nprotection = \"dp\"\ndp_epsilon_milli = 1000\ndp_budget_milli = 3000\n",
        "\nprotection = \"round5\"\n",
    );
    let mut answers = Vec::new();
    let refusal = loop {
        match fed.query("requester", request("filed", &["region", "year"], 201901, 202412, "诉源治理")) {
            Ok(resp) => answers.push(resp),
            Err(status) => break status,
        }
        assert!(answers.len() <= 3, "the budget allows three queries at ε 1");
    };
    assert_eq!(answers.len(), 3);
    assert_eq!(refusal.code(), tonic::Code::ResourceExhausted, "{refusal:?}");
    assert!(refusal.message().contains("privacy budget"), "{}", refusal.message());
    // Noise of scale 1: every value near the truth (|noise| > 40 has probability below e^-40), never
    // below k, and not every answer identical to the truth.
    let mut exact = 0;
    let mut total = 0;
    for resp in &answers {
        for r in resp.rows.iter().filter(|r| r.status == "ok") {
            let k = (r.group["region"].clone(), r.group["year"].clone());
            let (v, t) = (r.value.unwrap() as i64, fed.truth[&k]);
            assert!((v - t).abs() <= 40 && v >= 10, "{k:?}: {v} vs {t}");
            exact += usize::from(v == t);
            total += 1;
        }
    }
    assert!(exact < total, "no noise was added");
    // Another agency's budget is its own.
    assert!(fed.query("manager", request("filed", &["region"], 201901, 202412, "审判管理")).is_ok());
}
