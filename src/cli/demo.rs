//! `shuzhu demo`: the one command a newcomer runs. Generates data (or takes `--data`), writes PKI,
//! tokens, policy and configs under `--dir`, imports every node, starts nodes and the gateway on
//! loopback with TLS, writes `demo.json`, prints example indicators through the real client path, then
//! serves until interrupted (`--once`: exits).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use shuzhu_proto::v1 as pb;

use crate::federation::{self, NodeSpec};

/// Arguments of `shuzhu demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Working folder for data, PKI, tokens, configs, stores and the ledger.
    #[arg(long, default_value = "demo")]
    dir: PathBuf,
    /// Use this data instead of generating it: one subfolder per node (named by node id) with cases.csv,
    /// mediations.csv or population.csv.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print the example indicators and exit.
    #[arg(long)]
    once: bool,
    /// Test hook (the browser tests use it): on SIGUSR1, stop this node, so that later answers are
    /// partial and name it as missing.
    #[arg(long, value_name = "NODE")]
    stop_node_on_usr1: Option<String>,
    #[command(flatten)]
    gen_args: super::generate::DataArgs,
}

pub(crate) fn run(a: Args) -> Result<ExitCode> {
    let rt = super::runtime()?;
    rt.block_on(run_async(a))
}

async fn run_async(a: Args) -> Result<ExitCode> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let dir = std::fs::canonicalize(&a.dir)?;
    let specs: Vec<NodeSpec> = match &a.data {
        Some(data) => federation::discover(data)?,
        None => {
            let out = dir.join("data");
            if out.exists() {
                std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
            }
            let cfg = a.gen_args.config();
            eprintln!("generating {} courts × {} cases (seed {}) …", cfg.courts, cfg.cases_per_court, cfg.seed);
            shuzhu_gen::generate(&out, &cfg)?;
            federation::discover(&out)?
        }
    };
    for sub in ["nodes", "ledger"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("clearing {}", p.display()))?;
        }
    }
    let prepared = tokio::task::block_in_place(|| federation::prepare(&dir, &specs, &mut |line| eprintln!("{line}")))?;
    let mut running = federation::start(&prepared).await?;
    // Console links log in through the URL fragment, which the browser never sends to the server.
    let console =
        console_link(&running.http_url, &[("token", &crate::client::read_token(&prepared.tokens["requester"])?)]);
    let key_file =
        shuzhu_gateway::ledger::default_key_dir(&dir.join("ledger")).join(shuzhu_gateway::ledger::PUBLIC_KEY_FILE_NAME);
    let verifier_key = std::fs::read_to_string(key_file).unwrap_or_default();
    let console_auditor = console_link(
        &running.http_url,
        &[
            ("token", &crate::client::read_token(&prepared.tokens["auditor"])?),
            ("key", verifier_key.trim()),
            ("view", "audit"),
        ],
    );
    let demo_json = serde_json::json!({
        "gateway": running.gateway_url,
        "http": running.http_url,
        "console": console,
        "ca": prepared.pki.ca_cert,
        "issuer_key": prepared.issuer_key,
        "tokens": prepared.tokens,
        "nodes": specs.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "policy": prepared.policy,
        "gateway_config": running.gateway_config,
        "ledger": dir.join("ledger"),
    });
    std::fs::write(dir.join("demo.json"), serde_json::to_string_pretty(&demo_json)?)?;
    println!(
        "\n数助 Shuzhu demo federation: gateway {} with {} nodes ({})\n",
        running.gateway_url,
        specs.len(),
        specs.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
    );
    println!("HTTPS JSON API: {}/v1/ (OpenAPI 3.1 at {}/v1/openapi.json)\n", running.http_url, running.http_url);
    println!("Web console (demo CA: accept the certificate), logged in as the agency analyst:\n  {console}");
    println!("  … as the auditor, with the checkpoint key for in-browser verification:\n  {console_auditor}\n");

    let ca = prepared.pki.ca_cert.clone();
    let analyst = crate::client::read_token(&prepared.tokens["requester"])?;
    let manager = crate::client::read_token(&prepared.tokens["manager"])?;
    // (token, indicator, group-by, from, to, purpose)
    type Example<'a> = (&'a str, &'a str, &'a [&'a str], &'a str, &'a str, &'a str);
    let examples: [Example<'_>; 8] = [
        ("requester", "closure_rate", &["region", "year"], "2023-01", "2024-12", "诉源治理"),
        ("requester", "on_time_rate", &["year"], "2019-01", "2024-12", "司法统计"),
        ("requester", "avg_trial_days", &["division"], "2024-01", "2024-12", "司法统计"),
        ("requester", "filed", &["cause"], "2024-01", "2024-12", "诉源治理"),
        ("manager", "closed", &["court", "quarter"], "2024-01", "2024-06", "审判管理"),
        // Cross-agency: courts with the statistics bureau, and the justice bureau's mediations.
        ("requester", "litigation_per_10k", &["region", "year"], "2023-01", "2024-12", "诉源治理"),
        ("requester", "mediation_success_rate", &["dispute_type"], "2024-01", "2024-12", "诉源治理"),
        ("manager", "judicial_confirmation_rate", &["region:city", "year"], "2022-01", "2024-12", "审判管理"),
    ];
    // How far the court data reach, as the answers of cases-only indicators say (each the earliest
    // `data_until` of the nodes that answered it).
    let mut cases_until: Vec<String> = Vec::new();
    for (who, ind, dims, from, to, purpose) in examples {
        let token = if who == "manager" { &manager } else { &analyst };
        let from_m = shuzhu_policy::Month::parse(from)?;
        let to_m = shuzhu_policy::Month::parse(to)?;
        let req = pb::QueryRequest {
            indicator: ind.into(),
            group_by: dims.iter().map(|d| d.to_string()).collect(),
            period: Some(pb::Period { from_month: from_m.yyyymm(), to_month: to_m.yyyymm() }),
            filters: vec![],
            purpose: purpose.into(),
            legal_basis: String::new(),
        };
        let ch = crate::client::connect(&running.gateway_url, &ca).await?;
        let ind_meta = shuzhu_policy::indicator::indicator(ind);
        println!(
            "{ind} {} — {} by {} ({})",
            ind_meta.map_or("", |i| i.name),
            if who == "manager" { "court manager" } else { "agency analyst" },
            dims.join(" × "),
            format_args!("{from}..{to}")
        );
        match crate::client::query(ch, token, req).await {
            Ok(resp) => {
                if ind_meta.is_some_and(|i| i.datasets() == ["cases"]) && !resp.data_until.is_empty() {
                    cases_until.push(resp.data_until.clone());
                }
                if let Some(i) = ind_meta.filter(|i| i.datasets() != ["cases"]) {
                    let kinds: Vec<&str> = i.datasets().iter().map(|d| node_kind(d)).collect();
                    let cov = resp.coverage.clone().unwrap_or_default();
                    println!("  answered by {} of {} nodes: {}", cov.answered, cov.asked, kinds.join(" + "));
                }
                let g: Vec<String> = dims.iter().map(|d| d.split(':').next().unwrap_or(d).to_string()).collect();
                let mut text = crate::output::answer_table(&resp, &g, ind_meta.map_or("count", |i| i.kind.as_str()));
                let lines: Vec<&str> = text.lines().collect();
                if lines.len() > 18 {
                    text = format!(
                        "{}\n… {} more rows …\n{}\n",
                        lines[..14].join("\n"),
                        lines.len() - 15,
                        lines[lines.len() - 1]
                    );
                }
                println!("{text}");
            }
            Err(s) => println!("  {}\n", crate::client::explain(&s)),
        }
    }
    // 立案偏离度 of the latest year of the data, and which regions are red.
    match latest_full_year(&cases_until) {
        Some(latest) => {
            let ch = crate::client::connect(&running.gateway_url, &ca).await?;
            println!("{}", red_regions(ch, &analyst, latest).await);
        }
        None => println!("filing_deviation 立案偏离度 — skipped: no answer said how far the court data reach\n"),
    }
    // A refusal, to show deny-by-default: the analyst's agency may not compare courts.
    let ch = crate::client::connect(&running.gateway_url, &ca).await?;
    let refused = crate::client::query(
        ch,
        &analyst,
        pb::QueryRequest {
            indicator: "closure_rate".into(),
            group_by: vec!["court".into()],
            period: Some(pb::Period { from_month: 202401, to_month: 202412 }),
            filters: vec![],
            purpose: "诉源治理".into(),
            legal_basis: String::new(),
        },
    )
    .await;
    if let Err(s) = refused {
        println!("closure_rate by court, asked by the agency analyst → {}\n", crate::client::explain(&s));
    }
    let d = dir.display();
    println!("Files: {d}/demo.json (gateway, CA, tokens), {d}/policy.toml, {d}/gateway.toml, {d}/nodes/*/node.toml");
    println!("Ask more while this runs:");
    println!("  shuzhu query --demo {d} --indicator closure_rate --group-by region,month --from 2024-01 --to 2024-12");
    println!(
        "  shuzhu query --demo {d} --as-role manager --indicator avg_trial_days --group-by court,year --from 2022-01 --to 2024-12 --purpose 审判管理"
    );
    println!("  shuzhu audit list --demo {d}");
    println!("  shuzhu audit verify --ledger {d}/ledger --key {d}/ledger.keys/checkpoint-key.pub");
    println!(
        "  curl --cacert {} -H \"authorization: Bearer $(cat {})\" {}/v1/me",
        prepared.pki.ca_cert.display(),
        prepared.tokens["requester"].display(),
        running.http_url
    );
    if a.once {
        running.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    println!("\nServing until Ctrl-C …");
    match &a.stop_node_on_usr1 {
        Some(node) => stop_node_on_usr1(&mut running, node).await?,
        None => super::stop_signal().await,
    }
    eprintln!("stopping: draining queries in flight");
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Serves until a stop signal; a SIGUSR1 before it stops `node` (once) and keeps serving.
async fn stop_node_on_usr1(running: &mut federation::Running, node: &str) -> Result<()> {
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .context("listening for SIGUSR1")?;
    tokio::select! {
        _ = super::stop_signal() => return Ok(()),
        _ = usr1.recv() => {}
    }
    running.stop_node(node).await;
    eprintln!("stopped node {node} (SIGUSR1)");
    super::stop_signal().await;
    Ok(())
}

/// `filing_deviation` by region for `year` against its three previous years, as a table, then the
/// regions whose level is red (or "no red regions").
async fn red_regions(ch: tonic::transport::Channel, token: &str, year: i32) -> String {
    let (from, to) = (year as u32 * 100 + 1, year as u32 * 100 + 12);
    let req = pb::QueryRequest {
        indicator: "filing_deviation".into(),
        group_by: vec!["region".into()],
        period: Some(pb::Period { from_month: from, to_month: to }),
        filters: vec![],
        purpose: "诉源治理".into(),
        legal_basis: String::new(),
    };
    let mut out = format!(
        "filing_deviation 立案偏离度 — agency analyst by region ({year} against {}..{})
",
        year - 3,
        year - 1
    );
    let resp = match crate::client::query(ch, token, req).await {
        Ok(resp) => resp,
        Err(s) => {
            return format!(
                "{out}  {}
",
                crate::client::explain(&s)
            );
        }
    };
    out.push_str(&crate::output::answer_table(&resp, &["region".into()], "deviation"));
    let red: Vec<String> = resp
        .rows
        .iter()
        .filter(|r| r.level == "red")
        .map(|r| {
            format!("{} ({:+.1}%)", r.group.get("region").map_or("?", String::as_str), r.value.unwrap_or(0.0) * 100.0)
        })
        .collect();
    if red.is_empty() {
        out.push_str(&format!("no red regions in {year}\n"));
    } else {
        let above = match shuzhu_policy::indicator::indicator("filing_deviation").map(|i| i.kind) {
            Some(shuzhu_policy::indicator::IndicatorKind::Deviation { levels, .. }) => {
                format!(" (|deviation| above {}%)", f64::from(levels.red_above_ppm) / 10_000.0)
            }
            _ => String::new(),
        };
        out.push_str(&format!("red regions in {year}{above}: {}\n", red.join(", ")));
    }
    out
}

/// The latest year the court data cover whole, from answers' `data_until` dates (`YYYY-MM-DD`): the
/// year of the latest date when it falls in December, else the year before (a year cut off mid-way
/// would look like a fall in filings everywhere). None when no date parses.
fn latest_full_year(data_until: &[String]) -> Option<i32> {
    let latest = data_until.iter().filter_map(|d| shuzhu_policy::Month::parse(d.get(..7)?).ok()).max()?;
    Some(if latest.month() == 12 { latest.year() } else { latest.year() - 1 })
}

/// A console link that logs in through the URL fragment, which browsers never send to the server:
/// `BASE/#token=…` (and `&key=…` for an auditor: the checkpoint verifier key, public). The page moves
/// both into `sessionStorage` and clears the address bar.
fn console_link(base: &str, params: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", fragment_encode(v))).collect();
    format!("{}/#{}", base.trim_end_matches('/'), pairs.join("&"))
}

/// Percent-encodes everything but unreserved characters (`+` would read as a space).
fn fragment_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Which kind of node serves a dataset, for the demo's explanations.
fn node_kind(dataset: &str) -> &'static str {
    match dataset {
        "cases" => "court nodes (cases)",
        "mediations" => "the justice bureau's node (mediations)",
        "population" => "the statistics bureau's node (population)",
        _ => "other nodes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_link_carries_its_values_in_the_fragment_encoded() {
        assert_eq!(console_link("https://127.0.0.1:9/", &[("token", "a.b-c_d")]), "https://127.0.0.1:9/#token=a.b-c_d");
        assert_eq!(
            console_link("https://h:1", &[("token", "t"), ("key", "gw/audit+0a1b2c3d+AQ+/=")]),
            "https://h:1/#token=t&key=gw%2Faudit%2B0a1b2c3d%2BAQ%2B%2F%3D"
        );
    }

    #[test]
    fn the_latest_full_year_comes_from_the_latest_data_date() {
        let dates = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(latest_full_year(&dates(&["2022-12-31"])), Some(2022));
        assert_eq!(latest_full_year(&dates(&["2021-12-30", "2022-12-04"])), Some(2022));
        // Data ending mid-year: the year before is the latest whole one.
        assert_eq!(latest_full_year(&dates(&["2024-06-30", "2023-12-31"])), Some(2023));
        assert_eq!(latest_full_year(&dates(&["2025-01-02"])), Some(2024));
        assert_eq!(latest_full_year(&dates(&["", "soon"])), None);
        assert_eq!(latest_full_year(&[]), None);
    }
}
