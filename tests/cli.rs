//! The binary as people use it: `--help`, `query` in every format with clear errors, `demo --once`.

use std::process::Command;

use crate::util::fx;

fn shuzhu(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn help_lists_every_command() {
    let (code, out, _) = shuzhu(&["--help"]);
    assert_eq!(code, 0);
    for c in ["demo", "gen", "pki", "token", "node", "gateway", "query", "audit"] {
        assert!(out.contains(c), "--help lacks {c}: {out}");
    }
    let (_, out, _) = shuzhu(&["query", "--help"]);
    assert!(out.contains("Examples:"), "{out}");
}

#[test]
fn query_prints_json_table_and_csv_and_fails_with_one_line() {
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
        "closure_rate",
        "--group-by",
        "region,year",
        "--from",
        "2023-01",
        "--to",
        "2024-12",
        "--purpose",
        "诉源治理",
    ];
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--format", "json"]);
    let (code, out, err) = shuzhu(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in ["indicator", "rows", "coverage", "policy_version", "audit_seq"] {
        assert!(v.get(key).is_some(), "json lacks {key}");
    }
    let row = &v["rows"][0];
    assert!(row["group"]["region"].is_string() && row["group"]["year"].is_string());
    assert!(
        row["value"].is_number() && row["status"] == "ok" && row["numerator"].is_i64() && row["denominator"].is_i64()
    );
    assert_eq!(v["coverage"]["asked"], 3);
    assert_eq!(v["rows"].as_array().unwrap().len(), 6, "3 regions × 2 years");

    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--format", "csv"]);
    let (code, out, _) = shuzhu(&args);
    assert_eq!(code, 0);
    // For Excel: UTF-8 with its byte-order mark, region names beside the codes, coverage at the end.
    assert!(out.starts_with("\u{feff}region,region_name,year,value,status,numerator,denominator\n"), "{out}");
    assert_eq!(out.lines().count(), 8, "header, 6 rows, coverage: {out}");
    assert!(out.lines().nth(1).unwrap().contains(",厦门市"), "a district's name: {out}");
    assert_eq!(out.lines().last().unwrap(), "# nodes answered 3/3", "{out}");
    args.extend(["--headers", "zh", "--no-bom"]);
    let (code, out, _) = shuzhu(&args);
    assert_eq!(code, 0);
    assert!(out.starts_with("地区代码,地区,年度,指标值,状态,分子,分母\n"), "{out}");
    assert!(out.contains(",正常,"), "statuses in words: {out}");

    let (code, out, _) = shuzhu(&base);
    assert_eq!(code, 0);
    assert!(out.contains("结案率") && out.contains("nodes answered 3/3"), "{out}");

    let mut args: Vec<&str> = base.to_vec();
    args[8] = "no_such_indicator";
    let (code, out, err) = shuzhu(&args);
    assert_ne!(code, 0);
    assert!(out.is_empty());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unknown indicator"), "{err}");

    let (code, _, err) =
        shuzhu(&["query", "--gateway", &gw, "--ca", &ca, "--token-file", "/nonexistent/token", "--indicator", "filed"]);
    assert_ne!(code, 0);
    assert!(err.contains("token"), "{err}");
}

#[test]
fn demo_once_runs_a_federation_and_writes_demo_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("w");
    let ds = d.display().to_string();
    let (code, out, err) = shuzhu(&["demo", "--once", "--dir", &ds, "--courts", "2", "--cases-per-court", "600"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("结案率") && out.contains("refused"), "{out}");
    // The latest year's 立案偏离度 by region, and which regions are red (two courts: maybe none).
    assert!(out.contains("立案偏离度") && out.contains("level"), "{out}");
    assert!(out.contains("red regions in 2024"), "{out}");
    // One of each cross-agency indicator, saying which kinds of node answered.
    for (name, kinds) in [
        ("万人成讼率", "court nodes (cases) + the statistics bureau's node (population)"),
        ("人民调解成功率", "the justice bureau's node (mediations)"),
        ("司法确认率", "the justice bureau's node (mediations)"),
    ] {
        let at = out.find(name).unwrap_or_else(|| panic!("{name} missing: {out}"));
        let line = out[at..].lines().nth(1).unwrap_or_default();
        assert!(line.contains("answered by") && line.ends_with(kinds), "{name}: {line}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("demo.json")).unwrap()).unwrap();
    assert!(v["gateway"].as_str().unwrap().starts_with("https://127.0.0.1:"));
    for p in [&v["ca"], &v["issuer_key"], &v["tokens"]["requester"], &v["tokens"]["auditor"]] {
        assert!(std::path::Path::new(p.as_str().unwrap()).exists(), "{p}");
    }
    let nodes: Vec<&str> = v["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(nodes, ["court-350203", "court-350205", "justice-3502", "stats-3502"]);
    let key = d.join("ledger.keys/checkpoint-key.pub").display().to_string();
    let (code, out, _) =
        shuzhu(&["audit", "verify", "--ledger", &d.join("ledger").display().to_string(), "--key", &key]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn demo_on_own_data_takes_the_latest_year_from_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Data ending in 2022, not the generator's default 2024.
    let cfg = shuzhu_gen::GenConfig { courts: 2, cases_per_court: 400, seed: 7, from_year: 2019, to_year: 2022 };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let w = dir.path().join("w").display().to_string();
    let (code, out, err) = shuzhu(&["demo", "--once", "--dir", &w, "--data", &data.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("by region (2022 against 2019..2021)"), "{out}");
    assert!(out.contains("red regions in 2022"), "{out}");
    assert!(!out.contains("in 2024"), "{out}");
}

#[test]
fn a_partial_answer_says_so_in_csv_and_table_and_exits_3_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (prepared, rt, _) = crate::coverage::small_federation(dir.path(), 300, 13);
    let mut running = rt.block_on(shuzhu::federation::start(&prepared)).unwrap();
    let stopped = running.nodes[1].id.clone();
    rt.block_on(running.stop_node(&stopped));
    let gw = running.gateway_url.clone();
    let ca = prepared.pki.ca_cert.display().to_string();
    let tok = prepared.tokens["requester"].display().to_string();
    let base = [
        "query",
        "--gateway",
        &gw,
        "--ca",
        &ca,
        "--token-file",
        &tok,
        "--indicator",
        "filed",
        "--group-by",
        "region",
        "--from",
        "2023-01",
        "--to",
        "2024-12",
        "--purpose",
        "诉源治理",
    ];
    let with = |extra: &[&'static str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra);
        shuzhu(&args)
    };
    let (code, out, err) = with(&["--format", "csv"]);
    assert_eq!(code, 3, "a partial answer exits 3: {err}");
    let header = out.lines().next().unwrap();
    assert!(header.ends_with(",coverage"), "a coverage column: {out}");
    assert!(out.lines().nth(1).unwrap().ends_with(",partial"), "{out}");
    let footer = out.lines().last().unwrap();
    assert!(footer.starts_with("# partial answer") && footer.contains(&stopped), "{out}");
    assert!(err.contains("partial") && err.contains("--allow-partial"), "{err}");

    let (code, out, _) = with(&["--format", "table"]);
    assert_eq!(code, 3);
    assert!(out.contains("PARTIAL ANSWER") && out.contains(&stopped), "{out}");

    let (code, out, _) = with(&["--format", "csv", "--allow-partial"]);
    assert_eq!(code, 0, "--allow-partial accepts a partial answer");
    assert!(out.lines().last().unwrap().starts_with("# partial answer"), "{out}");

    let (code, out, _) = with(&["--format", "json"]);
    assert_eq!(code, 3);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["partial"], true);

    let (_, help, _) = shuzhu(&["query", "--help"]);
    assert!(help.contains("Exit codes") && help.contains("--allow-partial"), "{help}");
    rt.block_on(running.shutdown());
}

#[test]
fn token_issue_refuses_an_unknown_role_and_a_lifetime_the_gateway_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let issue = |role: &str, ttl: &str, extra: &[&str]| issue_token(dir.path(), role, ttl, extra);
    let (code, out, err) = issue("requester", "3600", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().split('.').count(), 3, "a JWT: {out}");
    // A role the gateway does not know would give a token that authorises nothing.
    let (code, out, err) = issue("requestor", "3600", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("requestor") && err.contains("requester, auditor, admin"), "{err}");
    // Above the gateway's default maximum lifetime (12 h) the gateway refuses the token at once.
    let (code, out, err) = issue("requester", "86400", &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("86400") && err.contains("43200"), "{err}");
    // With the gateway's own config, its [auth] max_lifetime_secs is the limit.
    let gw = format!("{}/gateway.toml", dir.path().display());
    std::fs::write(&gw, "[auth]\nmax_lifetime_secs = 90000\n").unwrap();
    let (code, _, err) = issue("requester", "86400", &["--max-lifetime-from", &gw]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn query_warns_that_its_token_has_expired() {
    let f = fx();
    let dir = tempfile::tempdir().unwrap();
    let tok = format!("{}/old.jwt", dir.path().display());
    assert_eq!(issue_token(dir.path(), "requester", "0", &["--out", &tok]).0, 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let gw = f.running.gateway_url.clone();
    let ca = f.prepared.pki.ca_cert.display().to_string();
    let (code, _, err) = shuzhu(&[
        "query",
        "--gateway",
        &gw,
        "--ca",
        &ca,
        "--token-file",
        &tok,
        "--indicator",
        "filed",
        "--from",
        "2024-01",
        "--to",
        "2024-12",
        "--purpose",
        "诉源治理",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("expired") && err.contains("old.jwt"), "{err}");
    let token = std::fs::read_to_string(&tok).unwrap();
    assert!(!err.contains(token.trim()), "the token itself is never printed");
}

#[test]
fn a_region_filter_takes_names_as_well_as_codes() {
    let f = fx();
    let gw = f.running.gateway_url.clone();
    let ca = f.prepared.pki.ca_cert.display().to_string();
    let tok = f.prepared.tokens["requester"].display().to_string();
    let ask = |region: &str| {
        let filter = format!("region={region}");
        shuzhu(&[
            "query",
            "--gateway",
            &gw,
            "--ca",
            &ca,
            "--token-file",
            &tok,
            "--indicator",
            "closure_rate",
            "--group-by",
            "year",
            "--filter",
            &filter,
            "--from",
            "2023-01",
            "--to",
            "2024-12",
            "--purpose",
            "诉源治理",
            "--format",
            "json",
        ])
    };
    let rows = |out: &str| serde_json::from_str::<serde_json::Value>(out).unwrap()["rows"].clone();
    let (code, by_code, err) = ask("350203");
    assert_eq!(code, 0, "{err}");
    for name in ["思明区", "厦门市思明区", "厦门思明区"] {
        let (code, by_name, err) = ask(name);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(rows(&by_name), rows(&by_code), "{name} is 350203");
    }
    let (code, _, err) = ask("鼓楼区");
    assert_ne!(code, 0);
    assert!(err.contains("350102") && err.contains("names several places"), "{err}");
    let (code, _, err) = ask("不存在区");
    assert_ne!(code, 0);
    assert!(err.contains("不存在区"), "{err}");
}

/// `shuzhu token issue` with a development key made in `dir` (once), for agency xm-sfj.
fn issue_token(dir: &std::path::Path, role: &str, ttl: &str, extra: &[&str]) -> (i32, String, String) {
    let d = dir.to_str().unwrap();
    let key = format!("{d}/issuer.key");
    if !std::path::Path::new(&key).exists() {
        let (code, _, err) = shuzhu(&["token", "keygen", "--out", d]);
        assert_eq!(code, 0, "{err}");
    }
    let mut args = vec![
        "token",
        "issue",
        "--key",
        &key,
        "--issuer",
        "https://idp.test",
        "--audience",
        "gw",
        "--sub",
        "a-1",
        "--agency",
        "xm-sfj",
        "--role",
        role,
        "--ttl",
        ttl,
    ];
    args.extend_from_slice(extra);
    shuzhu(&args)
}
