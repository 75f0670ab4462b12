//! 立案偏离度 (`filing_deviation`) over the real federation equals a brute-force computation from the
//! generated CSVs: for each group, the cases filed in P and in the same months of each of the three
//! previous years; the level from exact integers; cells where any of those counts is 1..k−1
//! suppressed; a zero baseline answered as `no_baseline`. The CLI shows the level.

use std::collections::BTreeMap;
use std::process::Command;

use crate::util::{fx, request};

struct Filing {
    region: String,
    court: String,
    type_code: String,
    year: i32,
    month: u32,
}

fn load() -> Vec<Filing> {
    let mut out = Vec::new();
    for path in fx().cases_csvs() {
        let mut r = csv::Reader::from_path(path).unwrap();
        let h = r.headers().unwrap().clone();
        let col = |name: &str| h.iter().position(|x| x == name).unwrap();
        let (c_region, c_court, c_type, c_filed) =
            (col("region_code"), col("court_code"), col("type_code"), col("filed_on"));
        for rec in r.records() {
            let rec = rec.unwrap();
            let filed = &rec[c_filed];
            out.push(Filing {
                region: rec[c_region].to_string(),
                court: rec[c_court].to_string(),
                type_code: rec[c_type].to_string(),
                year: filed[..4].parse().unwrap(),
                month: filed[5..7].parse().unwrap(),
            });
        }
    }
    out
}

/// A court node as the gateway sees it: the regions and courts of its records and its first month of
/// data (`data_from`, as a month index year·12 + month − 1).
struct NodeData {
    regions: Vec<String>,
    courts: Vec<String>,
    first: i32,
}

fn nodes() -> Vec<NodeData> {
    fx().cases_csvs()
        .iter()
        .map(|path| {
            let mut r = csv::Reader::from_path(path).unwrap();
            let h = r.headers().unwrap().clone();
            let col = |name: &str| h.iter().position(|x| x == name).unwrap();
            let (c_region, c_court, c_filed) = (col("region_code"), col("court_code"), col("filed_on"));
            let mut node = NodeData { regions: Vec::new(), courts: Vec::new(), first: i32::MAX };
            for rec in r.records() {
                let rec = rec.unwrap();
                let filed = &rec[c_filed];
                let m = filed[..4].parse::<i32>().unwrap() * 12 + filed[5..7].parse::<i32>().unwrap() - 1;
                node.first = node.first.min(m);
                for (list, v) in [(&mut node.regions, &rec[c_region]), (&mut node.courts, &rec[c_court])] {
                    if !list.iter().any(|x| x == v) {
                        list.push(v.to_string());
                    }
                }
            }
            node
        })
        .collect()
}

/// Whether the baseline of the cell `key` (three years before its first month in P) starts before the
/// first month of data of a node whose records can lie in it.
fn baseline_uncovered(nodes: &[NodeData], dims: &[&str], key: &[String], from: u32) -> bool {
    let from = (from / 100) as i32 * 12 + (from % 100) as i32 - 1;
    let mut first = from;
    let mut touching: Vec<&NodeData> = nodes.iter().collect();
    for (d, v) in dims.iter().zip(key) {
        match *d {
            "region" => touching.retain(|n| n.regions.contains(v)),
            "region:city" => touching.retain(|n| n.regions.iter().any(|r| format!("{:0<6}", &r[..4]) == *v)),
            "court" => touching.retain(|n| n.courts.contains(v)),
            "year" => first = first.max(v.parse::<i32>().unwrap() * 12),
            "quarter" => {
                first = first.max(v[..4].parse::<i32>().unwrap() * 12 + 3 * (v[6..].parse::<i32>().unwrap() - 1))
            }
            "month" => first = first.max(v[..4].parse::<i32>().unwrap() * 12 + v[5..].parse::<i32>().unwrap() - 1),
            _ => {}
        }
    }
    touching.iter().map(|n| n.first).max().is_some_and(|m| first - 36 < m)
}

fn time_label(dim: &str, year: i32, month: u32) -> String {
    match dim {
        "year" => year.to_string(),
        "quarter" => format!("{year}-Q{}", (month - 1) / 3 + 1),
        "month" => format!("{year}-{month:02}"),
        other => panic!("{other}"),
    }
}

/// Per group: [filed in P, filed in P − 1 year, − 2 years, − 3 years], keyed by the asked dimensions.
fn brute(filings: &[Filing], dims: &[&str], from: u32, to: u32) -> BTreeMap<Vec<String>, [i64; 4]> {
    let mut out: BTreeMap<Vec<String>, [i64; 4]> = BTreeMap::new();
    for f in filings {
        for y in 0..4 {
            // The filing month moved y years later: in P, it counts for baseline year y.
            let (year, month) = (f.year + y as i32, f.month);
            let ym = year as u32 * 100 + month;
            if ym < from || ym > to {
                continue;
            }
            let key = dims
                .iter()
                .map(|d| match *d {
                    "region" => f.region.clone(),
                    "region:city" => format!("{:0<6}", &f.region[..4]),
                    "court" => f.court.clone(),
                    "type_code" => f.type_code.clone(),
                    t => time_label(t, year, month),
                })
                .collect();
            out.entry(key).or_default()[y] += 1;
        }
    }
    out
}

fn small(n: i64) -> bool {
    (1..10).contains(&n)
}

/// (status, value, numerator, denominator, level) the rules demand.
type Expected = (&'static str, Option<f64>, Option<i64>, Option<i64>, &'static str);

/// `uncovered`: the baseline starts before the data of a node counting the cell (the count in P only).
fn expected(c: &[i64; 4], uncovered: bool) -> Expected {
    if c.iter().any(|&n| small(n)) {
        return ("suppressed", None, None, None, "");
    }
    let (now, sum) = (c[0], c[1] + c[2] + c[3]);
    if uncovered {
        return ("no_baseline", None, Some(now), None, "");
    }
    if sum == 0 {
        return ("no_baseline", None, Some(now), Some(0), "");
    }
    // |dev| = |3·now − sum| ÷ sum against 15/100 and 30/100, in integers.
    let d = (3 * now - sum).abs();
    let level = if 100 * d < 15 * sum {
        "green"
    } else if 100 * d <= 30 * sum {
        "yellow"
    } else {
        "red"
    };
    ("ok", Some((3 * now - sum) as f64 / sum as f64), Some(now), Some(sum), level)
}

#[derive(Default, Debug)]
struct Tally {
    answers: usize,
    refused: usize,
    cells: usize,
    suppressed: usize,
    no_baseline: usize,
    uncovered: usize,
    levels: BTreeMap<String, usize>,
}

fn check(filings: &[Filing], dims: &[&str], from: u32, to: u32, tally: &mut Tally) {
    let (token, purpose) =
        if dims.contains(&"court") { ("manager", "审判管理") } else { ("requester", "诉源治理") };
    let resp = match fx().query(&fx().token(token), request("filing_deviation", dims, from, to, purpose)) {
        Ok(resp) => resp,
        Err(s) if s.code() == tonic::Code::PermissionDenied && s.message().starts_with("differencing:") => {
            tally.refused += 1;
            return;
        }
        Err(s) => panic!("{dims:?} {from}..{to}: {s:?}"),
    };
    tally.answers += 1;
    let nodes = nodes();
    let want: BTreeMap<Vec<String>, Expected> = brute(filings, dims, from, to)
        .iter()
        .map(|(k, c)| (k.clone(), expected(c, baseline_uncovered(&nodes, dims, k, from))))
        .collect();
    let got: BTreeMap<Vec<String>, &shuzhu_proto::v1::Row> = resp
        .rows
        .iter()
        .map(|r| (dims.iter().map(|d| r.group[d.split(':').next().unwrap()].clone()).collect(), r))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{dims:?} {from}..{to}: the groups differ"
    );
    for (k, w) in &want {
        let g = got[k];
        tally.cells += 1;
        if w.0 == "suppressed" || g.status == "suppressed" {
            // Primary suppression must be there; a secondary one shows nothing either.
            assert_eq!(
                (g.status.as_str(), g.value, g.numerator, g.denominator, g.level.as_str()),
                ("suppressed", None, None, None, ""),
                "{dims:?} {from}..{to} {k:?}: want {w:?}"
            );
            tally.suppressed += 1;
            continue;
        }
        assert_eq!(
            (g.status.as_str(), g.numerator, g.denominator, g.level.as_str()),
            (w.0, w.2, w.3, w.4),
            "{dims:?} {from}..{to} {k:?}"
        );
        match (g.value, w.1) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{k:?}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{k:?}"),
        }
        if w.0 == "no_baseline" {
            tally.no_baseline += 1;
            tally.uncovered += usize::from(w.3.is_none());
        } else {
            *tally.levels.entry(g.level.clone()).or_default() += 1;
        }
    }
}

#[test]
fn filing_deviation_equals_brute_force_with_levels_and_suppression() {
    let filings = load();
    let mut tally = Tally::default();
    // P as whole years, as whole quarters and as loose months (each node request is split by a
    // different grain); 2019 is the first year of data, so the baselines of 2019 and 2021 (2016–2018)
    // start before the data: no_baseline, never a deviation from filings counted as zero.
    let periods = [(202401, 202412), (202304, 202309), (202202, 202203), (201901, 201912), (202101, 202112)];
    // Case types (rare ones such as 行终 or 执恢 straddle the threshold) by month too.
    for dims in [
        &["region", "year"][..],
        &["court", "month"],
        &["region", "quarter"],
        &["region"],
        &["type_code", "month"],
        &["region:city", "quarter"],
    ] {
        for (from, to) in periods {
            check(&filings, dims, from, to, &mut tally);
        }
    }
    eprintln!("filing_deviation compared: {tally:?}");
    assert!(tally.answers >= 17, "{tally:?}");
    assert!(tally.cells > 100, "{tally:?}");
    assert!(tally.suppressed > 0, "no threshold-straddling group was exercised: {tally:?}");
    assert!(tally.no_baseline > 0, "no empty baseline was exercised: {tally:?}");
    assert!(tally.uncovered > 0, "no baseline before the data was exercised: {tally:?}");
    assert!(tally.levels.len() >= 2, "levels exercised: {tally:?}");
}

#[test]
fn filing_deviation_of_a_period_without_data_has_no_rows_and_grouping_limits_are_clear() {
    let t = fx().token("requester");
    let resp = fx().query(&t, request("filing_deviation", &["region"], 203001, 203012, "诉源治理")).unwrap();
    assert!(resp.rows.is_empty(), "{:?}", resp.rows);
    // The node request adds a time grain: four record dimensions leave no room for it.
    let req = request("filing_deviation", &["region", "division", "instance", "type_code"], 202401, 202412, "诉源治理");
    let err = fx().query(&t, req).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("at most 3 group-by dimensions besides"), "{}", err.message());
    // P over 12 months would count a case in P and in a baseline year (or in several cells' baselines
    // when grouped by year), under-charging ε: refused with the limit named.
    for dims in [&["year"][..], &["region"]] {
        let err = fx().query(&t, request("filing_deviation", dims, 202201, 202412, "诉源治理")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("at most 12 months"), "{}", err.message());
    }
    // A baseline reaching before 1990 is refused, not counted as zero filings.
    let err = fx().query(&t, request("filing_deviation", &["region"], 199201, 199212, "诉源治理")).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("before 1990-01"), "{}", err.message());
}

#[test]
fn the_cli_shows_the_level() {
    let f = fx();
    let gw = f.running.gateway_url.clone();
    let ca = f.prepared.pki.ca_cert.display().to_string();
    let tok = f.prepared.tokens["requester"].display().to_string();
    let base = [
        "query",
        "--gateway",
        &gw,
        "--ca",
        &ca,
        "--token-file",
        &tok,
        "--indicator",
        "filing_deviation",
        "--group-by",
        "region",
        "--from",
        "2024-01",
        "--to",
        "2024-12",
        "--purpose",
        "诉源治理",
    ];
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(base).args(extra).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let want: BTreeMap<String, &str> = brute(&load(), &["region"], 202401, 202412)
        .into_iter()
        .map(|(k, c)| (k[0].clone(), expected(&c, false).4))
        .collect();
    assert!(!want.is_empty());
    let table = run(&[]);
    assert!(table.contains("立案偏离度") && table.lines().nth(1).unwrap().ends_with("level"), "{table}");
    for (region, level) in &want {
        let zh = match *level {
            "green" => "绿 green",
            "yellow" => "黄 yellow",
            "red" => "红 red",
            _ => continue,
        };
        let line =
            table.lines().find(|l| l.starts_with(region.as_str())).unwrap_or_else(|| panic!("{region}: {table}"));
        assert!(line.ends_with(zh), "{region} should be {zh}: {line}");
    }
    let csv = run(&["--format", "csv"]);
    assert!(csv.starts_with("\u{feff}region,region_name,value,status,numerator,denominator,level\n"), "{csv}");
    let json: serde_json::Value = serde_json::from_str(&run(&["--format", "json"])).unwrap();
    for row in json["rows"].as_array().unwrap() {
        let region = row["group"]["region"].as_str().unwrap();
        assert_eq!(row["level"].as_str().unwrap_or(""), want[region], "{row}");
    }
}

#[test]
fn baseline_years_are_released_so_a_later_query_cannot_subtract_from_them() {
    // A region and a case type with 1..9 filings in 2021: the deviation of 2024 uses 2021 as a baseline
    // year, so the ledger knows the region's 2021 count; all types but that one in 2021 would differ
    // from it by 1..9. (No other query of these tests asks for filings in 2021.)
    let filings = load();
    let mut by: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for f in filings.iter().filter(|f| f.year == 2021) {
        *by.entry((f.region.as_str(), f.type_code.as_str())).or_default() += 1;
    }
    let (&(region, rare), _) = by.iter().find(|(_, n)| small(**n)).expect("a rare case type in some region in 2021");
    let others: Vec<String> =
        by.keys().filter(|(r, t)| *r == region && *t != rare).map(|(_, t)| t.to_string()).collect();
    let t = fx().token("requester");
    let mut dev = request("filing_deviation", &[], 202401, 202412, "诉源治理");
    dev.filters = vec![shuzhu_proto::v1::DimensionFilter { dimension: "region".into(), values: vec![region.into()] }];
    let resp = fx().query(&t, dev).unwrap();
    assert_eq!(resp.rows.len(), 1, "{:?}", resp.rows);
    assert_eq!(resp.rows[0].status, "ok", "{:?}", resp.rows);
    let mut rest = request("filed", &[], 202101, 202112, "诉源治理");
    rest.filters = vec![
        shuzhu_proto::v1::DimensionFilter { dimension: "region".into(), values: vec![region.into()] },
        shuzhu_proto::v1::DimensionFilter { dimension: "type_code".into(), values: others },
    ];
    let err = fx().query(&t, rest).unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().starts_with("differencing:"), "{}", err.message());
}

#[test]
fn a_missing_node_leaves_deviation_rows_partial_without_a_level() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = shuzhu_gen::GenConfig { courts: 2, cases_per_court: 800, seed: 13, ..Default::default() };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let specs: Vec<_> =
        shuzhu::federation::discover(&data).unwrap().into_iter().filter(|s| s.id.starts_with("court-")).collect();
    let prepared = shuzhu::federation::prepare(&dir.path().join("fed"), &specs, &mut |_| {}).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let token = shuzhu::client::read_token(&prepared.tokens["requester"]).unwrap();
    rt.block_on(async {
        let mut running = shuzhu::federation::start(&prepared).await.unwrap();
        let url = running.gateway_url.clone();
        let ask = |dims: &'static [&'static str]| {
            let (url, ca, token) = (url.clone(), prepared.pki.ca_cert.clone(), token.clone());
            async move {
                let ch = shuzhu::client::connect(&url, &ca).await.unwrap();
                shuzhu::client::query(ch, &token, request("filing_deviation", dims, 202401, 202412, "诉源治理"))
                    .await
                    .unwrap()
            }
        };
        let full = ask(&["region"]).await;
        assert!(full.rows.iter().all(|r| r.status == "ok" && !r.level.is_empty()), "{:?}", full.rows);
        let stopped = running.nodes[1].id.clone();
        let stopped_regions = running.nodes[1].regions.clone();
        running.stop_node(&stopped).await;
        // By region: the other region is whole and unchanged; the stopped node's region has no row.
        let part = ask(&["region"]).await;
        assert_eq!(part.coverage.as_ref().unwrap().answered, 1);
        assert!(!part.rows.is_empty());
        for r in &part.rows {
            assert!(!stopped_regions.contains(&r.group["region"]), "{r:?}");
            assert_eq!(Some(r), full.rows.iter().find(|f| f.group == r.group));
        }
        // By year: the row could hold the missing node's cases: partial, no number, no level.
        let by_year = ask(&["year"]).await;
        assert!(!by_year.rows.is_empty());
        for r in &by_year.rows {
            assert_eq!((r.status.as_str(), r.value, r.numerator, r.level.as_str()), ("partial", None, None, ""));
        }
        running.shutdown().await;
    });
}
