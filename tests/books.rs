//! The privacy books (`releases.jsonl`, `dp-budget.jsonl`, `quota.jsonl`) are committed in the audit
//! ledger: a book deleted, cut short or altered on disk stops the gateway at start, naming the file,
//! instead of silently resetting the differencing defence, the ε budget or the quotas.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shuzhu_gateway::config::GatewayConfig;
use shuzhu_gateway::state::GatewayState;

use crate::util::{fx, request};

/// A gateway beside the fixture's, with its own ledger directory and a policy whose analyst grant
/// spends ε (`dp`) and counts a daily quota, so that every book gets lines.
fn books_config(name: &str) -> (GatewayConfig, PathBuf) {
    let f = fx();
    let policy = std::fs::read_to_string(&f.prepared.policy).unwrap();
    let limited = policy.replacen(
        "valid_from = \"2024-01-01\"",
        "valid_from = \"2024-01-01\"\ndaily_quota = 1000\nprotection = \"dp\"\ndp_epsilon_milli = 1\ndp_budget_milli = 100000",
        1,
    );
    assert_ne!(limited, policy);
    let policy_path = f.prepared.dir.join(format!("policy-{name}.toml"));
    std::fs::write(&policy_path, limited).unwrap();
    let text = std::fs::read_to_string(&f.running.gateway_config).unwrap();
    let text = text
        .replace("ledger_dir = \"ledger\"", &format!("ledger_dir = \"ledger-{name}\""))
        .replace("policy = \"policy.toml\"", &format!("policy = \"policy-{name}.toml\""));
    let path = f.prepared.dir.join(format!("gateway-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let config = GatewayConfig::load(&path).unwrap();
    let dir = config.ledger_dir.clone();
    (config, dir)
}

/// Starts the gateway of `config`, answers `queries` through it over mTLS, and stops it (its ledger
/// and books closed).
fn serve_queries(config: &GatewayConfig, queries: usize) {
    let f = fx();
    f.rt.block_on(async {
        let state = Arc::new(GatewayState::open(config).unwrap());
        let tls = shuzhu_net::tls_server(&config.tls.cert, &config.tls.key).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(shuzhu_gateway::service::serve(Arc::clone(&state), tls, listener, async {
            let _ = rx.await;
        }));
        let token = f.token("requester");
        for i in 0..queries {
            let ch = shuzhu::client::connect(&url, &f.prepared.pki.ca_cert).await.unwrap();
            let year = 2021 + i as u32;
            let req = request("filed", &["region"], year * 100 + 1, year * 100 + 12, "司法统计");
            shuzhu::client::query(ch, &token, req).await.unwrap();
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        drop(state);
    });
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

/// Opening the gateway must fail, naming `file`; returns the message.
fn refused(config: &GatewayConfig, file: &str) -> String {
    let f = fx();
    let opened = f.rt.block_on(async { GatewayState::open(config).map(drop) });
    let message = opened.expect_err("the gateway started on a damaged privacy book").to_string();
    assert!(message.contains(file), "the refusal names {file}: {message}");
    message
}

#[test]
fn a_deleted_truncated_or_altered_privacy_book_stops_the_gateway_at_start_naming_the_file() {
    let (config, dir) = books_config("books");
    serve_queries(&config, 3);
    let releases = dir.join(shuzhu_gateway::releases::RELEASES_FILE_NAME);
    let budget = dir.join(shuzhu_gateway::budget::BUDGET_FILE_NAME);
    let quota = dir.join(shuzhu_gateway::quota::QUOTA_FILE_NAME);
    assert!(lines(&releases) > 0 && lines(&budget) > 0 && lines(&quota) > 0, "every book has lines");
    // The books as they were start (the quota book is compacted at start, and that is committed too).
    fx().rt.block_on(async { GatewayState::open(&config).map(drop) }).unwrap();
    let kept: Vec<(PathBuf, Vec<u8>)> =
        [&releases, &budget, &quota].iter().map(|p| (p.to_path_buf(), std::fs::read(p).unwrap())).collect();
    let restore = || {
        for (path, bytes) in &kept {
            std::fs::write(path, bytes).unwrap();
        }
    };

    // Deleted: the release ledger is gone, so every earlier release would be forgotten.
    std::fs::remove_file(&releases).unwrap();
    let m = refused(&config, "releases.jsonl");
    assert!(m.contains("missing"), "{m}");
    restore();

    // Truncated: the budget book lost its last line (a spend).
    let text = String::from_utf8(kept[1].1.clone()).unwrap();
    let cut: String = text.lines().take(text.lines().count() - 1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&budget, cut).unwrap();
    let m = refused(&config, "dp-budget.jsonl");
    assert!(m.contains("lines"), "{m}");
    restore();

    // Altered: one byte of the quota book (a count) changed.
    let mut bytes = kept[2].1.clone();
    let at = bytes.windows(8).position(|w| w == b"\"count\":").expect("a count") + 8;
    bytes[at] = if bytes[at] == b'1' { b'0' } else { b'1' };
    std::fs::write(&quota, &bytes).unwrap();
    refused(&config, "quota.jsonl");
    restore();

    // Restored from the copy, the books start again.
    fx().rt.block_on(async { GatewayState::open(&config).map(drop) }).unwrap();
}
