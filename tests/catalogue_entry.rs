//! A new indicator of an existing kind needs catalogue entries and no code: this binary (its own process,
//! so that the added indicator stays out of the shared fixture's catalogue) appends 撤诉率
//! (`tests/data/withdrawal_rate.toml`) to the embedded catalogue, installs it, starts a real federation
//! (court nodes, gateway, TLS, JWTs) and checks the answers by region × year and court × month over three
//! periods (one without data) against a brute-force count straight from the generated CSV files.

use std::collections::BTreeMap;

use shuzhu::federation;
use shuzhu_policy::catalogue::{Catalogue, EMBEDDED};
use shuzhu_proto::v1 as pb;

/// Per group and sub-period: (closed, closed by withdrawal).
type Truth = BTreeMap<(String, String), (i64, i64)>;

fn label(date: &str, time_dim: &str) -> String {
    match time_dim {
        "year" => date[..4].to_string(),
        "month" => date[..7].to_string(),
        other => panic!("{other}"),
    }
}

fn brute(csvs: &[std::path::PathBuf], dim: &str, time_dim: &str, from: u32, to: u32) -> Truth {
    let mut out = Truth::new();
    for path in csvs {
        let mut r = csv::Reader::from_path(path).unwrap();
        let h = r.headers().unwrap().clone();
        let col = |name: &str| h.iter().position(|x| x == name).unwrap();
        let (c_group, c_closed, c_method) = (col(&format!("{dim}_code")), col("closed_on"), col("closure_method"));
        for rec in r.records() {
            let rec = rec.unwrap();
            let closed = &rec[c_closed];
            if closed.is_empty() {
                continue;
            }
            let ym: u32 = format!("{}{}", &closed[..4], &closed[5..7]).parse().unwrap();
            if ym < from || ym > to {
                continue;
            }
            let e = out.entry((rec[c_group].to_string(), label(closed, time_dim))).or_default();
            e.0 += 1;
            e.1 += i64::from(["准予撤诉", "按撤诉处理"].contains(&&rec[c_method]));
        }
    }
    out
}

fn small(n: i64) -> bool {
    (1..10).contains(&n)
}

#[test]
fn withdrawal_rate_from_a_catalogue_entry_equals_brute_force() {
    let extra =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/withdrawal_rate.toml")).unwrap();
    let cat = Catalogue::parse(&format!("{EMBEDDED}\n{extra}")).unwrap();
    assert!(shuzhu_policy::indicator::indicator("withdrawal_rate").is_none(), "not built in");
    shuzhu_policy::indicator::install(cat).unwrap();

    let dir = tempfile::Builder::new().prefix("shuzhu-cat-").tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = shuzhu_gen::GenConfig { courts: 2, cases_per_court: 5000, seed: 11, ..Default::default() };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let specs = federation::discover(&data).unwrap();
    let prepared = federation::prepare(&dir.path().join("fed"), &specs, &mut |_| {}).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let running = rt.block_on(federation::start(&prepared)).unwrap();
    let csvs: Vec<_> = specs.iter().map(|s| s.data.join("cases.csv")).filter(|p| p.exists()).collect();
    assert_eq!(csvs.len(), 2);

    let query = |role: &str, req: pb::QueryRequest| {
        let token = shuzhu::client::read_token(&prepared.tokens[role]).unwrap();
        rt.block_on(async {
            let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
            shuzhu::client::query(ch, &token, req).await
        })
    };
    // The gateway lists it with its Chinese name and formula.
    let list = rt.block_on(async {
        let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
        let token = shuzhu::client::read_token(&prepared.tokens["requester"]).unwrap();
        let req = shuzhu::client::authorized(pb::ListIndicatorsRequest {}, &token).unwrap();
        pb::gateway_client::GatewayClient::new(ch).list_indicators(req).await.unwrap().into_inner()
    });
    let listed = list.indicators.iter().find(|i| i.id == "withdrawal_rate").expect("listed");
    assert_eq!((listed.name.as_str(), listed.kind.as_str()), ("撤诉率", "ratio"));

    let (mut compared, mut suppressed, mut answered) = (0, 0, 0);
    for (from, to) in [(202301, 202412), (202402, 202403), (200001, 200012)] {
        for (dim, time_dim, role, purpose) in
            [("region", "year", "requester", "诉源治理"), ("court", "month", "manager", "审判管理")]
        {
            let req = pb::QueryRequest {
                indicator: "withdrawal_rate".into(),
                group_by: vec![dim.into(), time_dim.into()],
                period: Some(pb::Period { from_month: from, to_month: to }),
                filters: vec![],
                purpose: purpose.into(),
                legal_basis: String::new(),
            };
            let resp = match query(role, req) {
                Ok(r) => r,
                Err(s) if s.message().starts_with("differencing:") => continue,
                Err(s) => panic!("{dim},{time_dim} {from}..{to}: {s:?}"),
            };
            answered += 1;
            let truth = brute(&csvs, dim, time_dim, from, to);
            assert_eq!(resp.rows.len(), truth.len(), "{dim},{time_dim} {from}..{to}: groups");
            for row in &resp.rows {
                let key = (row.group[dim].clone(), row.group[time_dim].clone());
                let &(closed, withdrawn) = truth.get(&key).unwrap_or_else(|| panic!("{key:?} not in the data"));
                if small(closed) || small(withdrawn) || small(closed - withdrawn) {
                    assert_eq!(row.status, "suppressed", "{key:?}: {closed} closed, {withdrawn} withdrawn");
                }
                if row.status == "suppressed" {
                    assert_eq!((row.value, row.numerator, row.denominator), (None, None, None));
                    suppressed += 1;
                    continue;
                }
                assert_eq!(row.status, "ok");
                assert_eq!((row.numerator, row.denominator), (Some(withdrawn), Some(closed)), "{key:?}");
                let v = row.value.unwrap();
                assert!((v - withdrawn as f64 / closed as f64).abs() < 1e-12, "{key:?}: {v}");
                compared += 1;
            }
        }
    }
    assert!(answered >= 4, "only {answered} of 6 answers");
    assert!(compared > 20 && suppressed > 0, "{compared} compared, {suppressed} suppressed");
    rt.block_on(running.shutdown());
}

#[test]
fn the_cli_takes_catalogue_entries_from_a_file() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/withdrawal_rate.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu"))
        .args(["--catalogue", file, "indicators", "--local"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("withdrawal_rate  撤诉率  (ratio)"), "{stdout}");
    assert!(stdout.contains("closure_rate  结案率  (ratio)"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, std::fs::read_to_string(file).unwrap().replace("准予撤诉", "准许撤诉")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu"))
        .args(["--catalogue", bad.to_str().unwrap(), "indicators", "--local"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("准许撤诉") && stderr.contains("closure_method"), "{stderr}");
}
