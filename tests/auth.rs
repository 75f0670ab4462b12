//! Hostile and broken tokens are refused with a generic message, and the reason lands in the ledger;
//! roles separate querying data from reading the ledger.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use shuzhu::federation::{DEV_AUDIENCE, DEV_ISSUER};

use crate::util::{fx, request};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

/// Signs `claims` with the federation's dev issuer key (Ed25519), with any header.
fn sign(header: Value, claims: Value) -> String {
    let pem = std::fs::read_to_string(&fx().prepared.issuer_key).unwrap();
    let key = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pem_der(&pem)).unwrap();
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn claims() -> Value {
    json!({"iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": "analyst-x", "agency": "xm-sfj",
           "roles": ["requester"], "iat": now() - 10, "exp": now() + 600})
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

fn ask(token: &str) -> Result<shuzhu_proto::v1::QueryResponse, tonic::Status> {
    fx().query(token, request("filed", &["year"], 202401, 202412, "诉源治理"))
}

#[test]
fn a_well_formed_token_is_accepted() {
    let t = sign(json!({"alg": "EdDSA", "typ": "JWT"}), claims());
    ask(&t).expect("a valid token must be accepted (positive control for the refusals below)");
}

#[test]
fn broken_and_hostile_tokens_are_refused() {
    let ed = json!({"alg": "EdDSA", "typ": "JWT"});
    let public_pem = std::fs::read_to_string(&fx().prepared.issuer_pub).unwrap();
    let hs256 = {
        let input = format!(
            "{}.{}",
            B64.encode(json!({"alg":"HS256","typ":"JWT"}).to_string()),
            B64.encode(claims().to_string())
        );
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public_pem.as_bytes());
        format!("{input}.{}", B64.encode(ring::hmac::sign(&k, input.as_bytes()).as_ref()))
    };
    let none =
        format!("{}.{}.", B64.encode(json!({"alg":"none","typ":"JWT"}).to_string()), B64.encode(claims().to_string()));
    let other_key = {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let k = ring::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let input = format!("{}.{}", B64.encode(ed.to_string()), B64.encode(claims().to_string()));
        format!("{input}.{}", B64.encode(k.sign(input.as_bytes()).as_ref()))
    };
    let cases: Vec<(&str, String)> = vec![
        ("expired", sign(ed.clone(), with(with(claims(), "exp", json!(now() - 3600)), "iat", json!(now() - 7200)))),
        ("not_yet_valid", sign(ed.clone(), with(claims(), "nbf", json!(now() + 3600)))),
        ("exp as string", sign(ed.clone(), with(claims(), "exp", json!((now() + 600).to_string())))),
        ("nbf as string", sign(ed.clone(), with(claims(), "nbf", json!((now() - 60).to_string())))),
        ("wrong audience", sign(ed.clone(), with(claims(), "aud", json!("someone-else")))),
        ("wrong issuer", sign(ed.clone(), with(claims(), "iss", json!("https://evil.example")))),
        ("no agency", sign(ed.clone(), without(claims(), "agency"))),
        ("roles not a list", sign(ed.clone(), with(claims(), "roles", json!("requester")))),
        ("lifetime too long", sign(ed.clone(), with(claims(), "exp", json!(now() + 40 * 24 * 3600)))),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("another key", other_key),
        ("garbage", "not.a.token".into()),
    ];
    let before = fx().running.gateway.ledger.len();
    for (name, token) in &cases {
        let err = ask(token).expect_err(name);
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{name}");
        assert_eq!(err.message(), "invalid or missing credentials", "{name}: the reason must not reach the requester");
    }
    // Each refusal is in the ledger with its reason (alone, or counted in a summary when the peer has
    // used its budget of single entries), and no token is.
    let entries = fx().list_entries(&fx().token("auditor"), before + 1, 1000).unwrap();
    let text: String = entries.entries.iter().map(|e| e.body.clone()).collect::<Vec<_>>().join("\n");
    let bodies: Vec<String> = entries.entries.iter().map(|e| e.body.clone()).collect();
    assert!(failures_recorded(&bodies) >= cases.len() as u64, "{text}");
    for reason in
        ["expired", "not_yet_valid", "wrong_audience", "unknown_issuer", "algorithm_not_allowed", "bad_signature"]
    {
        assert!(text.contains(reason), "ledger lacks reason {reason}");
    }
    for (_, token) in &cases {
        if token.len() > 20 {
            assert!(!text.contains(token.as_str()), "a token reached the ledger");
        }
    }
}

#[test]
fn no_token_is_refused() {
    let err = fx().rt.block_on(async {
        let ch = shuzhu::client::connect(&fx().running.gateway_url, &fx().prepared.pki.ca_cert).await.unwrap();
        let mut c = shuzhu_proto::v1::gateway_client::GatewayClient::new(ch);
        c.query(request("filed", &[], 202401, 202412, "诉源治理")).await.unwrap_err()
    });
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

#[test]
fn an_auditor_cannot_query_and_a_requester_cannot_read_the_ledger() {
    let err = ask(&fx().token("auditor")).unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let err = fx().list_entries(&fx().token("requester"), 1, 10).unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let ok = fx().list_entries(&fx().token("auditor"), 1, 10).unwrap();
    assert!(!ok.entries.is_empty());
}

/// Authentication failures the entries record: one per single entry, `count` per summary entry.
fn failures_recorded(bodies: &[String]) -> u64 {
    bodies
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap())
        .filter(|v| v["decision"] == "unauthenticated")
        .map(|v| v["failures"]["count"].as_u64().unwrap_or(1))
        .sum()
}

/// Every entry of a gateway's ledger, read as the auditor through `url`.
fn all_bodies(url: &str) -> Vec<String> {
    fx().rt.block_on(async {
        let ch = shuzhu::client::connect(url, &fx().prepared.pki.ca_cert).await.unwrap();
        let mut c = shuzhu_proto::v1::audit_client::AuditClient::new(ch);
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let req = shuzhu_proto::v1::ListEntriesRequest { from_seq: from, limit: 1000, ..Default::default() };
            let page = c
                .list_entries(shuzhu::client::authorized(req, &fx().token("auditor")).unwrap())
                .await
                .unwrap()
                .into_inner();
            // Each read is itself recorded, so the ledger always has one more entry: stop at a short page.
            let last_page = page.entries.len() < 1000;
            from = page.next_seq;
            out.extend(page.entries.into_iter().map(|e| e.body));
            if last_page {
                return out;
            }
        }
    })
}

#[test]
fn a_token_mixing_data_and_audit_roles_is_refused_for_both() {
    let mixed = sign(json!({"alg": "EdDSA", "typ": "JWT"}), with(claims(), "roles", json!(["requester", "auditor"])));
    let err = ask(&mixed).expect_err("a token holding requester and auditor must not query");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = fx().list_entries(&mixed, 1, 10).expect_err("a token holding requester and auditor must not audit");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let last = fx().running.gateway.ledger.len();
    let entries = fx().list_entries(&fx().token("auditor"), last.saturating_sub(300).max(1), 1000).unwrap();
    assert!(entries.entries.iter().any(|e| e.body.contains("mixed_roles")), "the ledger names the reason");
}

#[test]
fn every_entry_records_the_peer_and_the_token_id_even_when_refused() {
    let token = sign(json!({"alg": "EdDSA", "typ": "JWT"}), with(claims(), "jti", json!("jti-forensics-7")));
    ask(&token).unwrap();
    let refused = sign(json!({"alg": "EdDSA", "typ": "JWT"}), with(claims(), "aud", json!("forensics-elsewhere")));
    ask(&refused).unwrap_err();
    let last = fx().running.gateway.ledger.len();
    let entries = fx().list_entries(&fx().token("auditor"), last.saturating_sub(300).max(1), 1000).unwrap();
    let bodies: Vec<Value> = entries.entries.iter().map(|e| serde_json::from_str(&e.body).unwrap()).collect();
    let answered =
        bodies.iter().find(|b| b["jti"] == "jti-forensics-7").expect("the answered query's entry names its jti");
    assert!(answered["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{answered}");
    assert_eq!(answered["v"], shuzhu_gateway::audit::ENTRY_VERSION, "peer and jti came with version 2; books with 3");
    let unauthenticated: Vec<&Value> = bodies.iter().filter(|b| b["decision"] == "unauthenticated").collect();
    assert!(!unauthenticated.is_empty());
    for b in unauthenticated {
        assert!(b["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1")), "a refused entry names its peer: {b}");
    }
}

/// Sends `n` requests with bad tokens through `lanes` connections to `url`; returns how many were sent.
async fn flood(url: &str, lanes: usize, n: usize) -> usize {
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let ch = shuzhu::client::connect(url, &fx().prepared.pki.ca_cert).await.unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / lanes {
                let token = if i % 2 == 0 { format!("garbage.{lane}.{i}") } else { format!("e30.e30.{i}") };
                let err =
                    shuzhu::client::query(ch.clone(), &token, request("filed", &["year"], 202401, 202412, "诉源治理"))
                        .await
                        .unwrap_err();
                assert_eq!(err.code(), tonic::Code::Unauthenticated);
            }
            n / lanes
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap();
    }
    sent
}

#[test]
fn a_bad_token_flood_grows_the_ledger_by_a_bounded_count_and_valid_queries_still_pass() {
    let (url, state, stop) = crate::util::own_gateway("flood", "", "");
    let before = state.ledger.len();
    let started = std::time::Instant::now();
    let (sent, valid) = fx().rt.block_on(async {
        let flooding = tokio::spawn({
            let url = url.clone();
            async move { flood(&url, 4, 2000).await }
        });
        let ch = shuzhu::client::connect(&url, &fx().prepared.pki.ca_cert).await.unwrap();
        let valid = shuzhu::client::query(
            ch,
            &fx().token("requester"),
            request("filed", &["year"], 202401, 202412, "诉源治理"),
        )
        .await;
        (flooding.await.unwrap(), valid)
    });
    let secs = started.elapsed().as_secs();
    valid.expect("a valid query during the flood is answered");
    let bodies = all_bodies(&url);
    let grown = state.ledger.len() - before;
    // At most the peer's budget of single entries, one summary per reason per interval (and one more
    // at the auditor's read), the valid query and the auditor's reads.
    let bound = 30 + 2 * (secs / 5 + 2) + 4;
    assert!(grown <= bound, "{sent} bad tokens grew the ledger by {grown} entries (bound {bound})");
    // No failure is lost: single entries and summary counts add up to what was sent.
    assert_eq!(failures_recorded(&bodies), sent as u64, "every failure is recorded or counted");
    let summary = bodies.iter().find(|b| b.contains("\"auth_failures\"")).expect("a summary entry");
    let v: Value = serde_json::from_str(summary).unwrap();
    assert_eq!(v["peer"], "127.0.0.1");
    assert!(v["failures"]["first"].is_string() && v["failures"]["last"].is_string(), "{v}");
    let _ = stop.send(());
}

#[test]
fn a_ledger_disk_below_its_floor_refuses_queries_loudly() {
    // A floor no disk can meet: every request is refused, naming why, and nothing is appended.
    let (url, state, stop) = crate::util::own_gateway("full", "ledger_min_free_mb = 1000000000", "");
    let before = state.ledger.len();
    let err = fx()
        .rt
        .block_on(async {
            let ch = shuzhu::client::connect(&url, &fx().prepared.pki.ca_cert).await.unwrap();
            shuzhu::client::query(ch, &fx().token("requester"), request("filed", &["year"], 202401, 202412, "诉源治理"))
                .await
        })
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("free") && err.message().contains("ledger_min_free_mb"), "{}", err.message());
    assert_eq!(state.ledger.len(), before);
    let _ = stop.send(());
}

/// Figures for the report (run once by hand: `cargo test --test integration auth::figures -- --ignored
/// --nocapture`): ledger growth under a 10 s bad-token flood and valid-query latency during it.
#[test]
#[ignore]
fn figures_ledger_growth_and_valid_latency_under_a_10s_flood() {
    let (url, state, stop) = crate::util::own_gateway("figures", "", "");
    let before = state.ledger.len();
    let (sent, latencies) = fx().rt.block_on(async {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut lanes = Vec::new();
        for lane in 0..4 {
            let ch = shuzhu::client::connect(&url, &fx().prepared.pki.ca_cert).await.unwrap();
            lanes.push(tokio::spawn(async move {
                let mut n = 0u64;
                while std::time::Instant::now() < until {
                    let token = format!("garbage.{lane}.{n}");
                    let req = request("filed", &["year"], 202401, 202412, "诉源治理");
                    let _ = shuzhu::client::query(ch.clone(), &token, req).await.unwrap_err();
                    n += 1;
                }
                n
            }));
        }
        let ch = shuzhu::client::connect(&url, &fx().prepared.pki.ca_cert).await.unwrap();
        let mut latencies = Vec::new();
        while std::time::Instant::now() < until {
            let t = std::time::Instant::now();
            let req = request("filed", &["year"], 202401, 202412, "诉源治理");
            shuzhu::client::query(ch.clone(), &fx().token("requester"), req).await.unwrap();
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let mut sent = 0;
        for l in lanes {
            sent += l.await.unwrap();
        }
        (sent, latencies)
    });
    let bodies = all_bodies(&url);
    let grown = state.ledger.len() - before;
    let mut sorted = latencies.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    println!(
        "10 s flood: {sent} bad-token requests; ledger grew by {grown} entries (failures recorded {}); {} valid queries, latency p50 {:.1} ms p99 {:.1} ms",
        failures_recorded(&bodies),
        latencies.len(),
        at(0.5),
        at(0.99)
    );
    let _ = stop.send(());
}
