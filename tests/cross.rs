//! Cross-agency indicators against brute force over the generated CSV files: 人民调解成功率 and 司法确认率
//! from the justice bureau's node, 万人成讼率 joining court filings with the statistics bureau's
//! population by region and year. And the partial answer: with the statistics node down, no rate is
//! ever computed from a missing population; with a court node down, its region's rows are partial.

use std::collections::{BTreeMap, BTreeSet};

use shuzhu::federation;
use shuzhu_proto::v1 as pb;

use crate::util::{fx, request};

const K: i64 = 10;

fn small(n: i64) -> bool {
    (1..K).contains(&n)
}

/// Label of month `ym` (YYYYMM) under a time dimension.
fn time_label(dim: &str, ym: u32) -> String {
    let (y, m) = (ym / 100, ym % 100);
    match dim {
        "year" => y.to_string(),
        "quarter" => format!("{y}-Q{}", (m - 1) / 3 + 1),
        "month" => format!("{y:04}-{m:02}"),
        other => panic!("{other}"),
    }
}

fn ym(date: &str) -> u32 {
    date[..4].parse::<u32>().unwrap() * 100 + date[5..7].parse::<u32>().unwrap()
}

fn rows_of(path: &std::path::Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    r.records().map(|rec| h.iter().zip(rec.unwrap().iter()).map(|(k, v)| (k.into(), v.into())).collect()).collect()
}

/// The label of a record's region under `region`, `region:city` or `region:province`.
fn region_label(dim: &str, code: &str) -> String {
    let digits = match dim {
        "region:city" => 4,
        "region:province" => 2,
        _ => 6,
    };
    format!("{:0<6}", &code[..digits])
}

/// The row key of an answer, in group-by order (`region:city` answers under `region`).
fn key_of(r: &pb::Row, dims: &[&str]) -> Vec<String> {
    dims.iter().map(|d| r.group[d.split(':').next().unwrap()].clone()).collect()
}

/// Sends a query; `None` when the release ledger refuses it as a differencing risk (answers of other
/// tests over the same records may have shown cells that this one's would difference).
fn ask(token: &str, req: pb::QueryRequest) -> Option<pb::QueryResponse> {
    match fx().query(&fx().token(token), req.clone()) {
        Ok(r) => Some(r),
        Err(s) if s.code() == tonic::Code::PermissionDenied && s.message().starts_with("differencing:") => None,
        Err(s) => panic!("{} {:?}: {s:?}", req.indicator, req.group_by),
    }
}

/// Compares rows with expected (status, value): a primary suppression must be there; a cell the rules
/// would show may be hidden only by secondary suppression (no value), and a shown value must be exact.
fn compare(what: &str, got: &[pb::Row], dims: &[&str], want: &BTreeMap<Vec<String>, (&str, Option<f64>)>) -> usize {
    let got: BTreeMap<Vec<String>, &pb::Row> = got.iter().map(|r| (key_of(r, dims), r)).collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: groups differ");
    let mut shown = 0;
    for (k, (status, value)) in want {
        let g = got[k];
        match *status {
            "ok" if g.status == "suppressed" => assert_eq!(g.value, None, "{what} {k:?}: secondary suppression"),
            "ok" => {
                assert_eq!(g.status, "ok", "{what} {k:?}");
                match (g.value, value) {
                    (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what} {k:?}: {a} vs {b}"),
                    (a, b) => assert_eq!(a, *b, "{what} {k:?}"),
                }
                shown += 1;
            }
            s => assert_eq!((g.status.as_str(), g.value), (s, None), "{what} {k:?}"),
        }
    }
    shown
}

/// Mediations: (region, dispute_type, closed month, result, has a judicial confirmation).
fn mediations() -> Vec<(String, String, Option<u32>, String, bool)> {
    rows_of(&fx().data.join(shuzhu_gen::JUSTICE_NODE_ID).join("mediations.csv"))
        .into_iter()
        .map(|r| {
            let closed = (!r["closed_on"].is_empty()).then(|| ym(&r["closed_on"]));
            (
                r["region_code"].clone(),
                r["dispute_type"].clone(),
                closed,
                r["result"].clone(),
                !r["judicial_confirm_case_no"].is_empty(),
            )
        })
        .collect()
}

#[test]
fn mediation_rates_equal_brute_force() {
    let all = mediations();
    let groupings: [&[&str]; 3] = [&["region", "year"], &["dispute_type", "quarter"], &["region:city", "month"]];
    let periods = [(201901, 202412), (202301, 202306), (201501, 201512)];
    let mut compared = 0;
    let mut shown = 0;
    let mut suppressed = 0;
    for (ind, token, purpose) in
        [("mediation_success_rate", "requester", "诉源治理"), ("judicial_confirmation_rate", "manager", "审判管理")]
    {
        for dims in groupings {
            for (from, to) in periods {
                // (numerator, denominator) per group, straight from the CSV.
                let mut counts: BTreeMap<Vec<String>, (i64, i64)> = BTreeMap::new();
                for (region, dispute, closed, result, confirmed) in &all {
                    let Some(c) = closed.filter(|c| (from..=to).contains(c)) else { continue };
                    let key: Vec<String> = dims
                        .iter()
                        .map(|d| match *d {
                            "dispute_type" => dispute.clone(),
                            d if d.starts_with("region") => region_label(d, region),
                            t => time_label(t, c),
                        })
                        .collect();
                    let success = result == "成功";
                    let (num, den) = match ind {
                        "mediation_success_rate" => (success, true),
                        _ => (success && *confirmed, success),
                    };
                    if den {
                        let e = counts.entry(key).or_default();
                        e.0 += i64::from(num);
                        e.1 += 1;
                    }
                }
                let want: BTreeMap<Vec<String>, (&str, Option<f64>)> = counts
                    .into_iter()
                    .map(|(k, (n, d))| {
                        let cell = if small(n) || small(d) || small(d - n) {
                            ("suppressed", None)
                        } else {
                            ("ok", (d != 0).then(|| n as f64 / d as f64))
                        };
                        (k, cell)
                    })
                    .collect();
                let Some(resp) = ask(token, request(ind, dims, from, to, purpose)) else { continue };
                let cov = resp.coverage.clone().unwrap();
                assert_eq!((cov.asked, cov.answered), (1, 1), "{ind}: only the justice node is asked");
                suppressed += want.values().filter(|(s, _)| *s == "suppressed").count();
                if from == 201501 {
                    assert!(resp.rows.is_empty(), "{ind}: a period without mediations has no rows");
                }
                shown += compare(&format!("{ind} {dims:?} {from}..{to}"), &resp.rows, dims, &want);
                compared += 1;
            }
        }
    }
    assert!(compared >= 12, "only {compared} answers compared");
    assert!(shown > 20 && suppressed > 0, "shown {shown}, suppressed {suppressed}: groups must straddle k");
}

/// 民初 filed per region and month, from the court CSVs.
fn civil_first_filed() -> Vec<(String, u32)> {
    fx().cases_csvs()
        .iter()
        .flat_map(|p| rows_of(p))
        .filter(|r| r["type_code"] == "民初")
        .map(|r| (r["region_code"].clone(), ym(&r["filed_on"])))
        .collect()
}

/// Population figures: (region, year) → resident + registered floating.
fn population(data: &std::path::Path) -> BTreeMap<(String, u32), i64> {
    rows_of(&data.join(shuzhu_gen::STATISTICS_NODE_ID).join("population.csv"))
        .into_iter()
        .map(|r| {
            let pop = r["resident_pop"].parse::<i64>().unwrap() + r["registered_floating_pop"].parse::<i64>().unwrap();
            ((r["region_code"].clone(), r["year"].parse().unwrap()), pop)
        })
        .collect()
}

/// Districts the court nodes count: those their cases lie in (a court node serves the regions of its
/// records).
fn counted_districts(csvs: &[std::path::PathBuf]) -> BTreeSet<String> {
    csvs.iter().flat_map(|p| rows_of(p)).map(|r| r["region_code"].clone()).collect()
}

/// The brute-force 万人成讼率 answer: every group either side has (the population side over the
/// `counted` districts), its count's disclosure, its rate. A cell's population is the sum over its
/// counted districts and years of each one's figure; if any is missing the cell is `partial`.
fn litigation_brute(
    filed: &[(String, u32)],
    pop: &BTreeMap<(String, u32), i64>,
    counted: &BTreeSet<String>,
    dims: &[&str],
    from: u32,
    to: u32,
) -> BTreeMap<Vec<String>, (&'static str, Option<f64>)> {
    let key = |region: &str, year: u32| -> Vec<String> {
        dims.iter().map(|d| if *d == "year" { year.to_string() } else { region_label(d, region) }).collect()
    };
    let mut n: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for (region, m) in filed.iter().filter(|(_, m)| (from..=to).contains(m)) {
        *n.entry(key(region, m / 100)).or_default() += 1;
    }
    let years: BTreeSet<u32> = (from / 100..=to / 100).collect();
    let mut cells: BTreeSet<Vec<String>> = n.keys().cloned().collect();
    for (region, year) in pop.keys().filter(|(r, y)| years.contains(y) && counted.contains(r)) {
        cells.insert(key(region, *year));
    }
    cells
        .into_iter()
        .map(|k| {
            let count = n.get(&k).copied().unwrap_or(0);
            // The cell's districts and years, each of which needs its figure.
            let mut people = Some(0i64);
            for d in counted
                .iter()
                .filter(|d| dims.iter().zip(&k).all(|(dim, v)| *dim == "year" || region_label(dim, d) == *v))
            {
                for y in
                    years.iter().filter(|y| dims.iter().zip(&k).all(|(dim, v)| *dim != "year" || y.to_string() == *v))
                {
                    people = match (people, pop.get(&(d.clone(), *y))) {
                        (Some(sum), Some(&v)) if v > 0 => Some(sum + v),
                        _ => None,
                    };
                }
            }
            let cell = match people {
                _ if small(count) => ("suppressed", None),
                Some(people) if people > 0 => ("ok", Some((count as i128 * 10_000) as f64 / people as f64)),
                _ => ("partial", None),
            };
            (k, cell)
        })
        .collect()
}

#[test]
fn litigation_per_10k_equals_brute_force() {
    let filed = civil_first_filed();
    let pop = population(&fx().data);
    let counted = counted_districts(&fx().cases_csvs());
    let groupings: [&[&str]; 3] = [&["region", "year"], &["region:city", "year"], &["year"]];
    // Several years, part of one year, a period with no filings (population only), and one with
    // neither.
    let periods = [(201901, 202412), (202304, 202309), (201701, 201812), (203001, 203012)];
    let (mut compared, mut shown, mut suppressed) = (0, 0, 0);
    for dims in groupings {
        for (from, to) in periods {
            let want = litigation_brute(&filed, &pop, &counted, dims, from, to);
            let Some(resp) = ask("requester", request("litigation_per_10k", dims, from, to, "诉源治理")) else {
                continue;
            };
            let cov = resp.coverage.clone().unwrap();
            assert_eq!((cov.asked, cov.answered), (4, 4), "three court nodes and the statistics node");
            suppressed += want.values().filter(|(s, _)| *s == "suppressed").count();
            if from == 203001 {
                assert!(resp.rows.is_empty(), "no filings and no population: no rows");
            }
            if from == 201701 {
                assert!(want.values().all(|c| c.1 == Some(0.0)), "before the first filing: rates of 0");
            }
            shown += compare(&format!("litigation_per_10k {dims:?} {from}..{to}"), &resp.rows, dims, &want);
            compared += 1;
        }
    }
    assert!(compared >= 9, "only {compared} answers compared");
    assert!(shown > 10, "shown {shown}");
    // Groups straddling k: the monthly 民初 filings of a district include small ones, which a quarter of
    // one district shows; grouped by region and year over a single month they are suppressed.
    let month = (201901..=202412)
        .filter(|m| m % 100 >= 1 && m % 100 <= 12)
        .find(|m| {
            let per: BTreeMap<&String, i64> =
                filed.iter().filter(|(_, x)| x == m).fold(BTreeMap::new(), |mut acc, (r, _)| {
                    *acc.entry(r).or_default() += 1;
                    acc
                });
            per.values().any(|n| small(*n)) && per.values().any(|n| *n >= K)
        })
        .expect("a month where one district files fewer than k 民初 cases and another at least k");
    let dims: &[&str] = &["region", "year"];
    let want = litigation_brute(&filed, &pop, &counted, dims, month, month);
    if let Some(resp) = ask("requester", request("litigation_per_10k", dims, month, month, "诉源治理")) {
        suppressed += want.values().filter(|(s, _)| *s == "suppressed").count();
        compare(&format!("litigation_per_10k by region in {month}"), &resp.rows, dims, &want);
    }
    assert!(suppressed > 0, "some group straddles the threshold");
}

#[test]
fn litigation_per_10k_over_several_years_needs_year_grouping() {
    let err = fx()
        .query(&fx().token("requester"), request("litigation_per_10k", &["region"], 202301, 202406, "诉源治理"))
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("group by year"), "{}", err.message());
    let err = fx()
        .query(&fx().token("requester"), request("litigation_per_10k", &["cause"], 202301, 202306, "诉源治理"))
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let err = fx()
        .query(&fx().token("requester"), request("filed", &["dispute_type"], 202301, 202306, "诉源治理"))
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "dispute_type is not a dimension of cases: {err:?}");
}

/// A federation of two court nodes and the statistics node: with everything up the rates equal brute
/// force; with a court node down its region's rows are partial; with the statistics node down every row
/// is partial, without a number, and coverage names it.
#[test]
fn litigation_per_10k_is_partial_when_the_statistics_node_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Three districts generated, two of their courts in the federation: the statistics node holds a
    // district no court counts, which must not swell any denominator.
    let cfg = shuzhu_gen::GenConfig { courts: 3, cases_per_court: 1500, seed: 41, ..Default::default() };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let all = federation::discover(&data).unwrap();
    let courts: Vec<String> = all.iter().filter(|s| s.id.starts_with("court-")).map(|s| s.id.clone()).take(2).collect();
    let specs: Vec<_> =
        all.into_iter().filter(|s| courts.contains(&s.id) || s.id == shuzhu_gen::STATISTICS_NODE_ID).collect();
    let prepared = federation::prepare(&dir.path().join("fed"), &specs, &mut |_| {}).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let token = shuzhu::client::read_token(&prepared.tokens["requester"]).unwrap();
    let filed: Vec<(String, u32)> = specs
        .iter()
        .filter(|s| s.id.starts_with("court-"))
        .flat_map(|s| rows_of(&data.join(&s.id).join("cases.csv")))
        .filter(|r| r["type_code"] == "民初")
        .map(|r| (r["region_code"].clone(), ym(&r["filed_on"])))
        .collect();
    let counted = counted_districts(
        &specs
            .iter()
            .filter(|s| s.id.starts_with("court-"))
            .map(|s| data.join(&s.id).join("cases.csv"))
            .collect::<Vec<_>>(),
    );
    let everywhere = population(&data);
    let pop: BTreeMap<(String, u32), i64> =
        everywhere.iter().filter(|((r, _), _)| counted.contains(r)).map(|(k, v)| (k.clone(), *v)).collect();
    assert!(pop.len() < everywhere.len(), "the statistics node holds a district no court counts");
    let dims: &[&str] = &["region", "year"];
    rt.block_on(async {
        let mut running = federation::start(&prepared).await.unwrap();
        let ask = |url: String, dims: &'static [&'static str]| {
            let (ca, token) = (prepared.pki.ca_cert.clone(), token.clone());
            async move {
                let ch = shuzhu::client::connect(&url, &ca).await.unwrap();
                shuzhu::client::query(ch, &token, request("litigation_per_10k", dims, 202201, 202412, "诉源治理"))
                    .await
                    .unwrap()
            }
        };
        let full = ask(running.gateway_url.clone(), &["region", "year"]).await;
        let cov = full.coverage.clone().unwrap();
        assert_eq!((cov.asked, cov.answered), (3, 3));
        let want = litigation_brute(&filed, &pop, &counted, dims, 202201, 202412);
        assert!(compare("with every node up", &full.rows, dims, &want) >= 4);
        assert!(full.rows.iter().all(|r| r.status != "partial"));
        // Without region grouping each year's rate is over the counted districts' population only.
        let by_year = ask(running.gateway_url.clone(), &["year"]).await;
        let want = litigation_brute(&filed, &pop, &counted, &["year"], 202201, 202412);
        assert_eq!(compare("by year over the counted districts", &by_year.rows, &["year"], &want), 3);

        // One court node down: its district's rows are partial, the other district's are unchanged.
        let court = running.nodes.iter().find(|n| n.id.starts_with("court-")).unwrap();
        let (court_id, court_regions) = (court.id.clone(), court.regions.clone());
        running.stop_node(&court_id).await;
        let part = ask(running.gateway_url.clone(), &["region", "year"]).await;
        assert_eq!(part.coverage.as_ref().unwrap().missing[0].node, court_id);
        for r in &part.rows {
            if court_regions.contains(&r.group["region"]) {
                assert_eq!((r.status.as_str(), r.value), ("partial", None), "{r:?}");
            } else {
                assert_eq!(Some(r), full.rows.iter().find(|f| f.group == r.group), "unaffected rows stay whole");
            }
        }
        assert!(part.rows.iter().any(|r| r.status == "partial") && part.rows.iter().any(|r| r.status == "ok"));

        // The statistics node down too: no row has a number, and coverage names it.
        running.stop_node(shuzhu_gen::STATISTICS_NODE_ID).await;
        for dims in [&["region", "year"][..], &["year"][..]] {
            let none =
                ask(running.gateway_url.clone(), if dims.len() == 2 { &["region", "year"] } else { &["year"] }).await;
            let cov = none.coverage.clone().unwrap();
            assert_eq!((cov.asked, cov.answered), (3, 1), "{dims:?}");
            let missing: BTreeSet<&str> = cov.missing.iter().map(|m| m.node.as_str()).collect();
            assert!(missing.contains(shuzhu_gen::STATISTICS_NODE_ID) && missing.contains(court_id.as_str()));
            assert!(!none.rows.is_empty(), "{dims:?}: the remaining court still reports its groups");
            for r in &none.rows {
                assert_eq!(r.status, "partial", "{dims:?} {r:?}");
                assert_eq!((r.value, r.numerator, r.denominator), (None, None, None), "{dims:?} {r:?}");
            }
        }
        running.shutdown().await;
    });
}

/// A real federation whose statistics node lacks one counted district's figure for one year (and holds
/// a district no court counts): that district-year is `partial`, and so is every rolled-up cell it lies
/// in (its city, its year), never a rate over the other districts' population alone; the rest equal
/// brute force.
#[test]
fn litigation_per_10k_is_partial_where_a_counted_district_lacks_its_population() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = shuzhu_gen::GenConfig { courts: 3, cases_per_court: 1200, seed: 43, ..Default::default() };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let all = federation::discover(&data).unwrap();
    let courts: Vec<String> = all.iter().filter(|s| s.id.starts_with("court-")).map(|s| s.id.clone()).take(2).collect();
    let csvs: Vec<std::path::PathBuf> = courts.iter().map(|id| data.join(id).join("cases.csv")).collect();
    let counted = counted_districts(&csvs);
    assert_eq!(counted.len(), 2);
    let gap = (counted.iter().next().unwrap().clone(), 2023u32);
    // Drop the first counted district's 2023 figure from the statistics bureau's file.
    let file = data.join(shuzhu_gen::STATISTICS_NODE_ID).join("population.csv");
    let text = std::fs::read_to_string(&file).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with(&format!("{},{},", gap.0, gap.1))).collect();
    assert_eq!(kept.len() + 1, text.lines().count());
    std::fs::write(&file, kept.join("\n") + "\n").unwrap();
    let pop = population(&data);
    assert!(!pop.contains_key(&gap));
    let specs: Vec<_> =
        all.into_iter().filter(|s| courts.contains(&s.id) || s.id == shuzhu_gen::STATISTICS_NODE_ID).collect();
    let prepared = federation::prepare(&dir.path().join("fed"), &specs, &mut |_| {}).unwrap();
    let token = shuzhu::client::read_token(&prepared.tokens["requester"]).unwrap();
    let filed: Vec<(String, u32)> = csvs
        .iter()
        .flat_map(|p| rows_of(p))
        .filter(|r| r["type_code"] == "民初")
        .map(|r| (r["region_code"].clone(), ym(&r["filed_on"])))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let running = federation::start(&prepared).await.unwrap();
        let groupings: [&'static [&'static str]; 3] = [&["region", "year"], &["region:city", "year"], &["year"]];
        for dims in groupings {
            let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
            let resp =
                shuzhu::client::query(ch, &token, request("litigation_per_10k", dims, 202201, 202412, "诉源治理"))
                    .await
                    .unwrap();
            let want = litigation_brute(&filed, &pop, &counted, dims, 202201, 202412);
            assert!(compare(&format!("{dims:?} with a missing figure"), &resp.rows, dims, &want) >= 2);
            // The cell holding the gap is partial, without numbers; the other years are shown.
            let gap_key: Vec<String> =
                dims.iter().map(|d| if *d == "year" { "2023".into() } else { region_label(d, &gap.0) }).collect();
            let row = resp.rows.iter().find(|r| key_of(r, dims) == gap_key).expect("the gap's cell");
            assert_eq!((row.status.as_str(), row.value, row.numerator, row.denominator), ("partial", None, None, None));
            assert!(resp.rows.iter().any(|r| r.group["year"] != "2023" && r.status == "ok"), "{dims:?}");
        }
        running.shutdown().await;
    });
}

/// A 万人成讼率 numerator is the 民初 filings of its region and months: the same count `filed` filtered to
/// 民初 shows, and the release ledger records it as that cell (so the two nest, and an identical ask is
/// never refused; the refusal of a small difference is tested in `gateway::releases`).
#[test]
fn litigation_numerators_are_typed_filings() {
    let filed = civil_first_filed();
    let region = filed.iter().map(|(r, _)| r.clone()).min().unwrap();
    let want = filed.iter().filter(|(r, m)| *r == region && (202207..=202209).contains(m)).count() as i64;
    assert!(want >= K);
    let mut first = request("litigation_per_10k", &["region"], 202207, 202209, "诉源治理");
    first.filters = vec![pb::DimensionFilter { dimension: "region".into(), values: vec![region.clone()] }];
    let shown = fx().query(&fx().token("requester"), first).unwrap();
    assert_eq!((shown.rows.len(), shown.rows[0].status.as_str()), (1, "ok"));
    assert_eq!(shown.rows[0].numerator, Some(want));
    let mut second = request("filed", &[], 202207, 202209, "诉源治理");
    second.filters = vec![
        pb::DimensionFilter { dimension: "region".into(), values: vec![region] },
        pb::DimensionFilter { dimension: "type_code".into(), values: vec!["民初".into()] },
    ];
    let same = fx().query(&fx().token("requester"), second).unwrap();
    assert_eq!(same.rows[0].value, Some(want as f64));
}
