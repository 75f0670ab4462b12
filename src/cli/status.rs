//! `shuzhu node status` and `shuzhu gateway status`: what a node or gateway holds, read from its files
//! without taking the locks a running one holds (and saying when it runs), as text or JSON.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};
use shuzhu_net::admin::{certificate_not_after, dir_bytes, unix_now};

/// Output format of a status command.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Lines for people.
    Text,
    /// One JSON object.
    Json,
}

fn rfc3339(unix: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(i64::MAX))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn certificate(path: &Path) -> Value {
    match certificate_not_after(path) {
        Ok(t) => json!({
            "path": path.display().to_string(),
            "not_after": rfc3339(t),
            "days_left": (t as i64 - unix_now() as i64).div_euclid(86_400),
        }),
        Err(e) => json!({ "path": path.display().to_string(), "error": e.to_string() }),
    }
}

fn print(v: &Value, format: Format) -> Result<ExitCode> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Format::Text => print_text(v, 0),
    }
    Ok(ExitCode::SUCCESS)
}

/// Nested keys as indented `key: value` lines, lists item by item.
fn print_text(v: &Value, indent: usize) {
    let pad = "  ".repeat(indent);
    let Value::Object(map) = v else { return };
    for (k, v) in map {
        match v {
            Value::Object(_) => {
                println!("{pad}{k}:");
                print_text(v, indent + 1);
            }
            Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
                println!("{pad}{k}:");
                for item in items {
                    println!("{pad}  -");
                    print_text(item, indent + 2);
                }
            }
            Value::String(s) => println!("{pad}{k}: {s}"),
            other => println!("{pad}{k}: {other}"),
        }
    }
}

/// `shuzhu node status --config FILE`.
pub(crate) fn node(config: &Path, format: Format) -> Result<ExitCode> {
    use shuzhu_node::store::{SledStore, Store};
    let config = shuzhu_node::config::NodeConfig::load(config)?;
    let holder = shuzhu_node::lock::holder(&config.store);
    let mut out = json!({
        "node_id": config.node_id,
        "running": holder.is_some(),
        "store": { "path": config.store.display().to_string(), "bytes": dir_bytes(&config.store) },
    });
    if let Some(pid) = &holder {
        out["pid"] = json!(pid);
    }
    // A running node holds the store's lock but keeps sled closed: read it beside the holder.
    let store = match &holder {
        Some(_) => SledStore::open_beside_holder(&config.store),
        None if config.store.is_dir() => SledStore::open(&config.store),
        None => Err(shuzhu_node::store::StoreError::Sync {
            path: config.store.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store here yet"),
        }),
    };
    match store {
        Ok(store) => {
            let cases = shuzhu_node::engine::CaseTable::load(&store);
            let mediations = shuzhu_node::tables::MediationTable::load(&store);
            let population = shuzhu_node::tables::PopulationTable::load(&store);
            let mut datasets = Vec::new();
            for ds in shuzhu_policy::schema::DATASETS {
                let name = ds.name;
                let (from, until) = match name {
                    "cases" => cases.as_ref().map(|t| (t.data_from(), t.data_until())).unwrap_or_default(),
                    "mediations" => mediations.as_ref().map(|t| (t.data_from(), t.data_until())).unwrap_or_default(),
                    "population" => population.as_ref().map(|t| (t.data_from(), t.data_until())).unwrap_or_default(),
                    _ => (None, None),
                };
                datasets.push(json!({
                    "name": name,
                    "served": config.policy.datasets.iter().any(|d| d == name),
                    "rows": store.count(name).unwrap_or(0),
                    "data_from": from,
                    "data_until": until,
                    "last_import": store.meta(&format!("last_import/{name}")).ok().flatten(),
                }));
            }
            out["datasets"] = json!(datasets);
        }
        Err(e) => out["datasets_error"] = json!(e.to_string()),
    }
    let journal_dir = config.journal_to_read();
    out["journal"] = match shuzhu_node::journal::load(&journal_dir) {
        Ok((records, report)) => {
            let last = records.last().map(|r| {
                json!({
                    "seq": r.record.seq,
                    "time": r.record.time,
                    "kind": r.record.kind,
                    "dataset": r.record.dataset,
                    "gateway": r.record.gateway,
                })
            });
            let last_release = records.iter().rev().find(|r| r.record.kind != "refusal").map(|r| r.record.time.clone());
            json!({
                "path": journal_dir.display().to_string(),
                "bytes": dir_bytes(&journal_dir),
                "records": report.records,
                "releases": report.releases,
                "refusals": report.refusals,
                "head": report.head,
                "torn_bytes": report.torn_bytes,
                "last_record": last,
                "last_release": last_release,
            })
        }
        Err(e) => json!({ "path": journal_dir.display().to_string(), "error": e.to_string() }),
    };
    out["certificate"] = certificate(&config.tls.cert);
    out["admin_listen"] = json!(config.admin_listen.map(|a| a.to_string()));
    print(&out, format)
}

/// Today's count of each agency in the quota file (read only).
fn quota_use(path: &Path) -> Value {
    let today = shuzhu_gateway::query::today();
    let Ok(text) = std::fs::read_to_string(path) else { return json!({}) };
    let mut used = std::collections::BTreeMap::<String, u64>::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v["day"].as_i64() == Some(i64::from(today))
            && let Some(agency) = v["agency"].as_str()
        {
            *used.entry(agency.to_string()).or_default() += v["count"].as_u64().unwrap_or(0);
        }
    }
    json!(used)
}

/// `shuzhu gateway status --config FILE`.
pub(crate) fn gateway(config: &Path, format: Format) -> Result<ExitCode> {
    use shuzhu_gateway::config::GatewayConfig;
    let config = GatewayConfig::load(config)?;
    let dir = &config.ledger_dir;
    let mut ledger = json!({
        "dir": dir.display().to_string(),
        "bytes": dir_bytes(&dir.join("segments")),
        "checkpoint_age_secs": shuzhu_gateway::ops::checkpoint_age_secs(dir),
    });
    // The gateway holds its ledger (sled locks the index): opened only when no gateway runs.
    let key_exists = shuzhu_gateway::ledger::key_file(dir, &config.ledger).is_file();
    let mut running = false;
    if key_exists {
        match shuzhu_gateway::ledger::AuditChain::open_with(dir, &config.ledger) {
            Ok(chain) => {
                ledger["entries"] = json!(chain.len());
                if let Some((cp, _)) = chain.ledger().last_checkpoint() {
                    ledger["checkpointed_entries"] = json!(cp.size);
                    ledger["unsealed_entries"] = json!(chain.len().saturating_sub(cp.size));
                }
            }
            Err(e) => {
                let text = e.to_string();
                running = text.contains("lock") || text.contains("Resource temporarily unavailable");
                ledger["note"] = json!(if running {
                    "a running gateway holds the ledger: entries are in its metrics (shuzhu_gateway_ledger_entries)"
                        .to_string()
                } else {
                    format!("the ledger cannot be opened: {text}")
                });
            }
        }
    } else {
        ledger["note"] = json!("no ledger yet (the gateway creates it on first start)");
    }
    let releases = dir.join(shuzhu_gateway::releases::RELEASES_FILE_NAME);
    let release_cells =
        std::fs::read_to_string(&releases).map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count());
    let rt = super::runtime()?;
    let nodes = rt.block_on(probe_nodes(&config));
    let out = json!({
        "gateway_id": config.gateway_id,
        "running": running,
        "ledger": ledger,
        "release_ledger": {
            "path": releases.display().to_string(),
            "bytes": std::fs::metadata(&releases).map_or(0, |m| m.len()),
            "cells": release_cells,
        },
        "quota_used_today": quota_use(&dir.join(shuzhu_gateway::quota::QUOTA_FILE_NAME)),
        "nodes": nodes,
        "certificate": certificate(&config.tls.cert),
        "admin_listen": config.admin_listen.map(|a| a.to_string()),
    });
    print(&out, format)
}

/// Asks every configured node for its health over mutual TLS with the gateway's own certificate.
async fn probe_nodes(config: &shuzhu_gateway::config::GatewayConfig) -> Vec<Value> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    shuzhu_net::install_crypto_provider();
    let pems = (
        shuzhu_net::load_pem(&config.tls.ca),
        shuzhu_net::load_pem(&config.tls.cert),
        shuzhu_net::load_pem(&config.tls.key),
    );
    let (ca, cert, key) = match pems {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            return config
                .nodes
                .iter()
                .map(|n| json!({"id": n.id, "address": n.address, "health": "unknown: the gateway's TLS files cannot be read"}))
                .collect();
        }
    };
    let mut out = Vec::new();
    for n in &config.nodes {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca))
            .identity(Identity::from_pem(&cert, &key))
            .domain_name(shuzhu_net::party_dns_name(shuzhu_net::Role::Node, &n.id));
        let health = match Endpoint::from_shared(n.address.clone()).and_then(|e| e.tls_config(tls)) {
            Err(e) => format!("unusable address: {e}"),
            Ok(e) => {
                let e = e.connect_timeout(std::time::Duration::from_secs(3)).timeout(std::time::Duration::from_secs(3));
                match e.connect().await {
                    Err(_) => "unreachable".to_string(),
                    Ok(ch) => {
                        let mut c = tonic_health::pb::health_client::HealthClient::new(ch);
                        let req = tonic_health::pb::HealthCheckRequest { service: "shuzhu.v1.Node".into() };
                        match c.check(req).await {
                            Ok(r) if r.get_ref().status == 1 => "serving".to_string(),
                            Ok(_) => "not serving".to_string(),
                            Err(s) => format!("error: {:?}", s.code()),
                        }
                    }
                }
            }
        };
        out.push(json!({ "id": n.id, "address": n.address, "health": health }));
    }
    out
}
