//! Protection beyond suppression, chosen per grant: rounding to 5, the cell-key method and
//! differential privacy with a budget, each on a small federation of its own whose policy is
//! rewritten and reloaded.

use std::collections::BTreeMap;

use shuzhu::federation::{self, Prepared, Running};
use shuzhu_policy::dimension::Dimension;
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
    // The CLI names it as what it is, not as a rate limit.
    let shown = shuzhu::client::explain(&refusal);
    assert!(shown.starts_with("privacy budget spent"), "{shown}");
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

/// Every answer's ok rows as (labels in `dims` order) → value.
fn values(resp: &pb::QueryResponse, dims: &[&str]) -> BTreeMap<Vec<String>, i64> {
    resp.rows
        .iter()
        .filter(|r| r.status == "ok")
        .map(|r| (dims.iter().map(|d| r.group[*d].clone()).collect(), r.value.unwrap() as i64))
        .collect()
}

fn is_differencing(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::PermissionDenied && s.message().starts_with("differencing:")
}

#[test]
fn cell_key_values_follow_the_records_not_the_wording_of_the_query() {
    let fed = Fed::start("ckrs", "\nprotection = \"cell_key\"\n", "\nprotection = \"cell_key\"\n");
    // The averaging attack of issue 20: region × month of 2024 over many periods, in both orders.
    // Every answer must give a cell the same value, so averaging them learns nothing beyond one.
    let mut seen: BTreeMap<Vec<String>, Vec<i64>> = BTreeMap::new();
    let mut answered = 0;
    for from in 1..=12u32 {
        for order in [["region", "month"], ["month", "region"]] {
            match fed.query("requester", request("filed", &order, 202400 + from, 202412, "诉源治理")) {
                Ok(resp) => {
                    answered += 1;
                    for (k, v) in values(&resp, &["region", "month"]) {
                        seen.entry(k).or_default().push(v);
                    }
                }
                Err(s) if is_differencing(&s) => continue,
                Err(s) => panic!("{s:?}"),
            }
        }
    }
    assert!(answered >= 12, "only {answered} of 24 answers");
    let repeated = seen.values().filter(|v| v.len() >= 2).count();
    assert!(repeated >= 10, "{seen:?}");
    let varied: Vec<_> = seen.iter().filter(|(_, v)| v.iter().any(|x| *x != v[0])).collect();
    assert!(
        varied.is_empty(),
        "{} of {} cells took different values in different answers: {varied:?}",
        varied.len(),
        seen.len()
    );
    // A month asked as the period is the same records as that month's cell of a grouped answer.
    let one = fed.query("requester", request("filed", &["region"], 202405, 202405, "诉源治理")).unwrap();
    for (k, v) in values(&one, &["region"]) {
        if let Some(grouped) = seen.get(&vec![k[0].clone(), "2024-05".to_string()]) {
            assert_eq!(v, grouped[0], "{k:?}");
        }
    }

    // Filters that name the same records: every type code = no filter; a division = its type codes.
    let ask = |filters: Vec<(&str, Vec<&str>)>| {
        let mut req = request("filed", &["region"], 202401, 202412, "诉源治理");
        req.filters = filters
            .into_iter()
            .map(|(d, v)| pb::DimensionFilter {
                dimension: d.into(),
                values: v.iter().map(|s| s.to_string()).collect(),
            })
            .collect();
        values(&fed.query("requester", req).unwrap(), &["region"])
    };
    let plain = ask(vec![]);
    assert!(plain.len() >= 3, "{plain:?}");
    assert_eq!(ask(vec![("type_code", shuzhu_policy::schema::TYPE_CODES.to_vec())]), plain);
    let civil = ask(vec![("division", vec!["民事"])]);
    assert!(!civil.is_empty());
    assert_eq!(ask(vec![("type_code", vec!["民再", "民初", "民申", "民终"])]), civil);

    // A court is its region where the topology says so (each court node serves one court and one
    // region, and no other court serves that region): the manager's court cells are the analyst's
    // region cells.
    let by_court = fed.query("manager", request("filed", &["court"], 202401, 202412, "审判管理")).unwrap();
    let by_court = values(&by_court, &["court"]);
    assert_eq!(by_court.len(), plain.len(), "{by_court:?}");
    let mut court_values: Vec<i64> = by_court.values().copied().collect();
    let mut region_values: Vec<i64> = plain.values().copied().collect();
    court_values.sort();
    region_values.sort();
    assert_eq!(court_values, region_values, "courts {by_court:?} regions {plain:?}");
}

/// ε (thousandths) a refused `dp` query says it needs.
fn needs(s: &tonic::Status) -> u64 {
    let text = s.message().split("this query needs ").nth(1).unwrap_or_else(|| panic!("{}", s.message()));
    let number: String = text.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let (whole, frac) = number.split_once('.').unwrap();
    whole.parse::<u64>().unwrap() * 1000 + frac.parse::<u64>().unwrap()
}

/// How many counts of the answer one case changes: the node's own engine over a table holding only
/// that case, grouped as the query asks (each measure of each group it falls in is one count).
fn counts_one_case_changes(
    csv_header: &str,
    row: &str,
    indicator: &str,
    group_by: &[Dimension],
    from: u32,
    to: u32,
) -> u64 {
    use shuzhu_node::engine::CaseTable;
    use shuzhu_node::import::{ImportOptions, import_reader};
    use shuzhu_node::store::SledStore;
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let key = shuzhu_policy::pseudonym::PseudonymKey::from_bytes(&[7u8; 32]).unwrap();
    let text = format!("{csv_header}\n{row}\n");
    let report = import_reader(
        &store,
        text.as_bytes(),
        "worst-case",
        ImportOptions {
            dataset: "cases",
            key: &key,
            keep_raw: &[],
            minimise: Default::default(),
            progress: &mut |_| {},
        },
    )
    .unwrap();
    assert_eq!(report.imported, 1, "{}", report.quarantine_csv());
    let table = CaseTable::load(&store).unwrap();
    let ind = shuzhu_policy::indicator::indicator(indicator).unwrap();
    let ms: Vec<&shuzhu_policy::indicator::Measure> =
        ind.measures().iter().map(|m| shuzhu_policy::indicator::measure(m).unwrap()).collect();
    let period = shuzhu_policy::period::Period::from_wire(from, to).unwrap();
    let groups = table.aggregate(&ms, group_by, period, &[]).unwrap();
    groups.iter().flat_map(|g| g.partials.iter()).filter(|p| p.contributors > 0).count() as u64
}

#[test]
fn dp_charges_epsilon_times_the_counts_one_record_can_change() {
    let fed = Fed::start(
        "dpsens",
        "\nprotection = \"dp\"\ndp_epsilon_milli = 1000\ndp_budget_milli = 1000\n",
        "\nprotection = \"dp\"\ndp_epsilon_milli = 1000\ndp_budget_milli = 1000\n",
    );
    // One count per cell, one cell per case: ε × 1, which uses the whole budget.
    assert!(fed.query("manager", request("filed", &["year"], 202401, 202412, "审判管理")).is_ok());
    // The rest is refused, each saying what it would have cost.
    let mix: [(&str, &[&str], u32, u32, &str); 11] = [
        ("closure_rate", &["region", "year"], 201901, 202412, "司法统计"),
        ("closure_rate", &["month"], 202401, 202412, "审判管理"),
        ("closure_rate", &[], 202401, 202412, "审判管理"),
        ("long_pending_ratio", &["quarter"], 202401, 202412, "审判管理"),
        ("on_time_rate", &["cause"], 202401, 202412, "司法统计"),
        ("avg_trial_days", &["region", "quarter"], 202401, 202412, "司法统计"),
        ("filed", &["year"], 201901, 202412, "司法统计"),
        ("mediation_withdrawal_rate", &["region", "year"], 202301, 202412, "司法统计"),
        ("closed", &["type_code", "quarter"], 202401, 202412, "司法统计"),
        ("filing_deviation", &["month"], 202401, 202412, "审判管理"),
        ("litigation_per_10k", &["region", "year"], 202301, 202412, "审判管理"),
    ];
    let mut charged = BTreeMap::new();
    for (ind, dims, from, to, purpose) in mix {
        let s = fed.query("manager", request(ind, dims, from, to, purpose)).unwrap_err();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
        eprintln!(
            "ε charged at ε = 1: {ind:<26} by {:<20} {from}..{to}: {:.3}",
            dims.join(","),
            needs(&s) as f64 / 1000.0
        );
        charged.insert((ind, dims.join(","), from), needs(&s));
    }
    // The worst-case records, counted by the node's engine: a case filed long before 2024 and closed in
    // its last month is active in every month of 2024 and closed in one; one still open is open at the
    // end of every quarter and older than 365 days at each.
    let path = fed.prepared.dir.parent().unwrap().join("data/court-350203/cases.csv");
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|c| c == name).unwrap();
    let row = reader.records().map(Result::unwrap).find(|r| &r[at("type_code")] == "民初").unwrap();
    let line = |fields: &[String]| {
        let mut w = csv::WriterBuilder::new().from_writer(vec![]);
        w.write_record(fields).unwrap();
        String::from_utf8(w.into_inner().unwrap()).unwrap().trim_end().to_string()
    };
    let header = line(&headers.iter().map(str::to_string).collect::<Vec<_>>());
    let header = header.as_str();
    let with = |filed: &str, closed: &str, method: &str| -> String {
        let mut f: Vec<String> = row.iter().map(str::to_string).collect();
        f[at("filed_on")] = filed.into();
        f[at("closed_on")] = closed.into();
        f[at("deadline_on")] = "2022-07-10".into();
        f[at("closure_method")] = method.into();
        f[at("appealed")] = "false".into();
        line(&f)
    };
    let closed_late = with("2022-01-10", "2024-12-20", "判决");
    let still_open = with("2022-01-10", "", "");
    let worst = counts_one_case_changes(header, &closed_late, "closure_rate", &[Dimension::Month], 202401, 202412);
    assert_eq!(worst, 13);
    assert_eq!(charged[&("closure_rate", "month".to_string(), 202401)], worst * 1000);
    let worst =
        counts_one_case_changes(header, &still_open, "long_pending_ratio", &[Dimension::Quarter], 202401, 202412);
    assert_eq!(worst, 8);
    assert_eq!(charged[&("long_pending_ratio", "quarter".to_string(), 202401)], worst * 1000);
    // Over six years, the worst case was filed before them.
    let older = with("2018-06-10", "2024-12-20", "判决");
    let worst =
        counts_one_case_changes(header, &older, "closure_rate", &[Dimension::Region, Dimension::Year], 201901, 202412);
    assert_eq!(worst, 7);
    assert_eq!(charged[&("closure_rate", "region,year".to_string(), 201901)], worst * 1000);
    let worst = counts_one_case_changes(header, &closed_late, "filed", &[Dimension::Year], 201901, 202412);
    assert_eq!((worst, charged[&("filed", "year".to_string(), 201901)]), (1, 1000));
    // Two counts of one case per cell, and each case in one cell.
    assert_eq!(charged[&("on_time_rate", "cause".to_string(), 202401)], 2000);
    // A deviation's count in P and its baseline never hold the same case.
    assert_eq!(charged[&("filing_deviation", "month".to_string(), 202401)], 1000);
}

#[test]
fn a_dp_query_refused_for_differencing_is_not_charged() {
    let fed = Fed::start(
        "dpref",
        "\nprotection = \"dp\"\ndp_epsilon_milli = 1000\ndp_budget_milli = 2000\n",
        "\nprotection = \"round5\"\n",
    );
    // A region and a month of 2024 with 1..9 filings: the totals up to the month before and up to it
    // differ by those few cases.
    let mut per_month: BTreeMap<(String, u32), i64> = BTreeMap::new();
    for id in fed.prepared.nodes.iter().map(|(id, _)| id).filter(|id| id.starts_with("court-")) {
        let path = fed.prepared.dir.parent().unwrap().join("data").join(id).join("cases.csv");
        let mut r = csv::Reader::from_path(path).unwrap();
        let h = r.headers().unwrap().clone();
        let (cr, cf) =
            (h.iter().position(|x| x == "region_code").unwrap(), h.iter().position(|x| x == "filed_on").unwrap());
        for rec in r.records() {
            let rec = rec.unwrap();
            let ym: u32 = rec[cf][..7].replace('-', "").parse().unwrap();
            *per_month.entry((rec[cr].to_string(), ym)).or_default() += 1;
        }
    }
    let ((region, month), _) =
        per_month.iter().find(|((_, m), n)| (202402..=202412).contains(m) && (1..=9).contains(*n)).unwrap();
    let total = |to: u32| {
        let mut req = request("filed", &[], 201901, to, "诉源治理");
        req.filters = vec![pb::DimensionFilter { dimension: "region".into(), values: vec![region.clone()] }];
        fed.query("requester", req)
    };
    total(month - 1).unwrap();
    let refused = total(*month).unwrap_err();
    assert!(is_differencing(&refused), "{refused:?}");
    // The refusal spent nothing: a repeat of the first query still fits the budget of two.
    let repeat = total(month - 1);
    assert!(repeat.is_ok(), "{repeat:?}");
    let spent = total(month - 1).unwrap_err();
    assert!(spent.message().contains("has used ε 2.000 of 2.000"), "{}", spent.message());
}
