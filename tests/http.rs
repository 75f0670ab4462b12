//! The HTTPS JSON API against real federations: every endpoint over real TLS (a hyper client that
//! trusts only the federation CA), the same answers and ledger as gRPC, every error as
//! `application/problem+json` with the gRPC message, and malformed requests refused before anything
//! is released.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use shuzhu::federation::{self, Prepared, Running};
use shuzhu_ledger::merkle::{self, Hash};
use tonic::Code;

use crate::util::{fx, request};

/// One HTTP answer.
struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    /// Asserts a problem+json answer with `status` and `code`; returns its detail.
    fn problem(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type"), "application/problem+json");
        let p = self.json();
        assert_eq!(p["status"], status);
        assert_eq!(p["code"], code, "{p}");
        assert!(p["title"].is_string() && p["type"].is_string(), "{p}");
        p["detail"].as_str().unwrap().to_owned()
    }
}

/// A request to the API at `base` (`https://127.0.0.1:PORT`), trusting only `ca`.
fn call(
    rt: &tokio::runtime::Runtime,
    base: &str,
    ca: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let addr = base.strip_prefix("https://").unwrap().to_owned();
    let mut roots = rustls::RootCertStore::empty();
    for c in shuzhu_net::load_certs(ca).unwrap() {
        roots.add(c).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut req = hyper::Request::builder().method(method).uri(path).header("host", addr.as_str());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes().to_vec(),
        }
    })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get(path: &str, token: Option<&str>) -> Reply {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    call(&fx().rt, &fx().running.http_url, &fx().prepared.pki.ca_cert, "GET", path, &headers, vec![])
}

fn post_query(token: &str, body: &Value) -> Reply {
    let auth = bearer(token);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    call(
        &fx().rt,
        &fx().running.http_url,
        &fx().prepared.pki.ca_cert,
        "POST",
        "/v1/query",
        &headers,
        body.to_string().into(),
    )
}

fn query_body(indicator: &str, group_by: &[&str], from: u32, to: u32, purpose: &str) -> Value {
    json!({"indicator": indicator, "group_by": group_by, "period": {"from_month": from, "to_month": to}, "purpose": purpose})
}

fn assert_security_headers(r: &Reply) {
    assert_eq!(r.header("content-security-policy"), "default-src 'self'; frame-ancestors 'none'");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(r.header("cache-control"), "no-store");
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect()
}

fn hash(v: &Value) -> Hash {
    hex::decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn tomorrow() -> String {
    let d = time::OffsetDateTime::now_utc().date().next_day().unwrap();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[test]
fn health_openapi_and_the_catalogue_answer_with_security_headers() {
    let r = get("/healthz", None);
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    assert_security_headers(&r);

    let r = get("/v1/openapi.json", None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/healthz",
        "/v1/indicators",
        "/v1/me",
        "/v1/query",
        "/v1/audit/entries",
        "/v1/audit/entries/{seq}",
        "/v1/audit/checkpoint",
        "/v1/audit/consistency",
        "/v1/audit/report",
        "/v1/openapi.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }

    let r = get("/v1/indicators", Some(&fx().token("requester")));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_security_headers(&r);
    let list = r.json()["indicators"].as_array().unwrap().clone();
    let catalogue = shuzhu_gateway::service::indicator_infos();
    assert_eq!(list.len(), catalogue.len());
    let closure = list.iter().find(|i| i["id"] == "closure_rate").unwrap();
    assert_eq!(closure["name"], "结案率");
    assert_eq!(closure["kind"], "ratio");
    assert!(closure["dimensions"].as_array().unwrap().contains(&json!("region")));

    let r = get("/v1/no-such-thing", None);
    r.problem(404, "not_found");
    assert_security_headers(&r);
    let r = call(&fx().rt, &fx().running.http_url, &fx().prepared.pki.ca_cert, "DELETE", "/v1/me", &[], vec![]);
    r.problem(405, "method_not_allowed");
}

#[test]
fn me_says_what_the_grants_allow_and_how_much_quota_is_left() {
    let r = get("/v1/me", Some(&fx().token("requester")));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let me = r.json();
    assert_eq!(me["agency"], federation::ANALYST_AGENCY);
    assert_eq!(me["agency_name"], "厦门市司法局");
    assert_eq!(me["subject"], "analyst-001");
    assert_eq!(me["roles"], json!(["requester"]));
    assert_eq!(me["policy_version"], fx().running.gateway.current_policy().version.as_str());
    let grants = me["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{me}");
    let g = &grants[0];
    assert_eq!(g["clearance"], "L2");
    assert!(g["indicators"].as_array().unwrap().contains(&json!("closure_rate")));
    assert!(!g["indicators"].as_array().unwrap().contains(&json!("enforcement_recovery_rate")), "L3 is beyond L2");
    assert!(!g["dimensions"].as_array().unwrap().contains(&json!("court")), "an agency sees regions, not courts");
    assert_eq!(g["purposes"], json!(["诉源治理", "司法统计"]));
    assert_eq!((g["valid_from"].as_str(), g["valid_until"].as_str()), (Some("2024-01-01"), Some("2030-12-31")));
    assert_eq!(g["valid_today"], true);
    assert_eq!(g["threshold"], 10);
    // The demo grants set no quota: nothing to count down.
    assert_eq!(me["quota"]["per_day"], Value::Null);
    assert_eq!(me["quota"]["left_today"], Value::Null);

    let manager = get("/v1/me", Some(&fx().token("manager"))).json();
    assert!(manager["grants"][0]["dimensions"].as_array().unwrap().contains(&json!("court")));

    let auditor = get("/v1/me", Some(&fx().token("auditor"))).json();
    assert_eq!(auditor["roles"], json!(["auditor"]));
    assert_eq!(auditor["grants"], json!([]));
}

#[test]
fn the_same_query_through_grpc_and_http_gives_the_same_answer_and_two_ledger_entries() {
    let token = fx().token("requester");
    let grpc = fx().query(&token, request("closure_rate", &["region", "year"], 202301, 202312, "司法统计")).unwrap();
    let r = post_query(&token, &query_body("closure_rate", &["region", "year"], 202301, 202312, "司法统计"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), "application/json");
    assert_security_headers(&r);
    let http = r.json();
    assert!(!http["rows"].as_array().unwrap().is_empty());
    let mut expected = shuzhu::output::answer_json(&grpc);
    let http_seq = http["audit_seq"].as_u64().unwrap();
    assert_ne!(http_seq, grpc.audit_seq, "each request is its own ledger entry");
    expected["audit_seq"] = json!(http_seq);
    assert_eq!(http, expected, "the HTTP answer has the fields and values of `shuzhu query --format json`");

    let auditor = fx().token("auditor");
    let bodies: Vec<Value> = [grpc.audit_seq, http_seq]
        .iter()
        .map(|&seq| {
            let e = fx().list_entries(&auditor, seq, 1).unwrap().entries.remove(0);
            assert_eq!(e.seq, seq);
            serde_json::from_str(&e.body).unwrap()
        })
        .collect();
    for b in &bodies {
        assert_eq!(b["action"], "query");
        assert_eq!(b["decision"], "allow");
        assert_eq!(b["indicator"], "closure_rate");
        assert_eq!(b["principal"]["agency"], federation::ANALYST_AGENCY);
    }
    for key in ["group_by", "period", "purpose", "answer_digest", "cells", "cells_suppressed"] {
        assert_eq!(bodies[0][key], bodies[1][key], "{key}");
    }
    // An auditor recomputes the digest from the answer alone, with the documented recipe.
    assert_eq!(bodies[1]["answer_digest"], json!(recompute_digest(&http)), "docs/answer_digest.py agrees");
}

/// The answer digest as docs/answer_digest.py computes it from the JSON answer (Python, not our code).
fn recompute_digest(answer: &Value) -> String {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/answer_digest.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (it is on every machine of this project)");
    child.stdin.take().unwrap().write_all(answer.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "answer_digest.py failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn errors_are_problem_json_with_the_grpc_status_and_message() {
    let requester = fx().token("requester");
    let auditor = fx().token("auditor");

    // 401: one generic message for a missing, a malformed and a forged token; the same as gRPC's.
    let grpc = fx().query("not-a-token", request("filed", &[], 202301, 202312, "司法统计")).unwrap_err();
    assert_eq!(grpc.code(), Code::Unauthenticated);
    let forged = format!("{}x", requester);
    for token in [None, Some("not-a-token"), Some(forged.as_str())] {
        let r = get("/v1/me", token);
        assert_eq!(r.problem(401, "unauthenticated"), grpc.message());
        assert_eq!(r.header("www-authenticate"), "Bearer");
        assert_security_headers(&r);
    }
    let r = post_query("not-a-token", &query_body("filed", &[], 202301, 202312, "司法统计"));
    assert_eq!(r.problem(401, "unauthenticated"), grpc.message());
    // A request whose form is wrong tells an unauthenticated caller only that it is not authenticated.
    assert_eq!(
        get("/v1/audit/report?from=2026-12-01&to=2026-12-01", None).problem(401, "unauthenticated"),
        grpc.message()
    );
    assert_eq!(get("/v1/audit/entries?limit=0", Some("x")).problem(401, "unauthenticated"), grpc.message());
    let r = call(&fx().rt, &fx().running.http_url, &fx().prepared.pki.ca_cert, "POST", "/v1/query", &[], b"{".to_vec());
    assert_eq!(r.problem(401, "unauthenticated"), grpc.message());

    // 403 by role: an auditor cannot query data, a requester cannot read the ledger.
    let grpc = fx().query(&auditor, request("filed", &[], 202301, 202312, "司法统计")).unwrap_err();
    let r = post_query(&auditor, &query_body("filed", &[], 202301, 202312, "司法统计"));
    assert_eq!(r.problem(403, "permission_denied"), grpc.message());
    let grpc = fx().list_entries(&requester, 1, 1).unwrap_err();
    assert_eq!(grpc.code(), Code::PermissionDenied);
    for path in ["/v1/audit/entries", "/v1/audit/entries/1", "/v1/audit/checkpoint", "/v1/audit/consistency?old=1"] {
        assert_eq!(get(path, Some(&requester)).problem(403, "permission_denied"), grpc.message(), "{path}");
    }
    let report = format!("/v1/audit/report?from={}&to={}", today(), tomorrow());
    assert_eq!(get(&report, Some(&requester)).problem(403, "permission_denied"), grpc.message());

    // 403 by policy rule: the rule and policy version, as gRPC says them.
    let grpc = fx().query(&requester, request("filed", &["court"], 202301, 202312, "司法统计")).unwrap_err();
    assert_eq!(grpc.code(), Code::PermissionDenied);
    let r = post_query(&requester, &query_body("filed", &["court"], 202301, 202312, "司法统计"));
    let detail = r.problem(403, "permission_denied");
    assert_eq!(detail, grpc.message());
    assert!(detail.contains("rule"), "{detail}");
    assert_eq!(r.json()["policy_version"], fx().running.gateway.current_policy().version.as_str());

    // 400: an invalid request the pipeline refuses, with gRPC's message.
    let grpc = fx().query(&requester, request("no_such_indicator", &[], 202301, 202312, "司法统计")).unwrap_err();
    assert_eq!(grpc.code(), Code::InvalidArgument);
    let r = post_query(&requester, &query_body("no_such_indicator", &[], 202301, 202312, "司法统计"));
    assert_eq!(r.problem(400, "invalid_argument"), grpc.message());
    let r = post_query(&requester, &query_body("filed", &[], 202313, 202312, "司法统计"));
    r.problem(400, "invalid_argument");

    // 404: an entry beyond the ledger; 400: parameters that are not numbers.
    get("/v1/audit/entries/999999999", Some(&auditor)).problem(404, "not_found");
    get("/v1/audit/entries/abc", Some(&auditor)).problem(400, "invalid_argument");
    get("/v1/audit/consistency?old=x", Some(&auditor)).problem(400, "invalid_argument");
    get("/v1/audit/entries?cursor=zzz", Some(&auditor)).problem(400, "invalid_argument");
    get("/v1/audit/report?from=2026-12-01", Some(&auditor)).problem(400, "invalid_argument");
    get("/v1/audit/report?from=2026-12-01&to=2026-12-01", Some(&auditor)).problem(400, "invalid_argument");
    get("/v1/audit/entries?to=", Some(&auditor)).problem(400, "invalid_argument");
    get("/v1/audit/entries?cursor=", Some(&auditor)).problem(400, "invalid_argument");
}

#[test]
fn malformed_requests_are_refused_before_anything_is_released() {
    let token = fx().token("requester");
    let auth = bearer(&token);
    let marker = format!("marker{}", std::process::id());
    let send = |content_type: Option<&str>, body: Vec<u8>| {
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        call(&fx().rt, &fx().running.http_url, &fx().prepared.pki.ca_cert, "POST", "/v1/query", &headers, body)
    };
    let mut good = query_body("filed", &["year"], 202301, 202312, "司法统计");
    good["legal_basis"] = json!(marker);

    let detail = send(Some("application/json"), b"{\"indicator\": ".to_vec()).problem(400, "invalid_argument");
    assert!(detail.contains("not a valid query"), "{detail}");
    let mut unknown = good.clone();
    unknown["limit"] = json!(5);
    let detail = send(Some("application/json"), unknown.to_string().into()).problem(400, "invalid_argument");
    assert!(detail.contains("unknown field `limit`"), "{detail}");
    let mut nested = good.clone();
    nested["period"]["day"] = json!(1);
    let detail = send(Some("application/json"), nested.to_string().into()).problem(400, "invalid_argument");
    assert!(detail.contains("unknown field `day`"), "{detail}");
    let mut wrong_type = good.clone();
    wrong_type["group_by"] = json!("year");
    send(Some("application/json"), wrong_type.to_string().into()).problem(400, "invalid_argument");

    let mut big = good.clone();
    big["filters"] = json!([{"dimension": "region", "values": ["x".repeat(70 * 1024)]}]);
    let detail = send(Some("application/json"), big.to_string().into()).problem(413, "payload_too_large");
    assert!(detail.contains("64 KiB"), "{detail}");

    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let detail = send(ct, good.to_string().into()).problem(415, "unsupported_media_type");
        assert!(detail.contains("application/json"), "{detail}");
    }
    let r = call(
        &fx().rt,
        &fx().running.http_url,
        &fx().prepared.pki.ca_cert,
        "POST",
        "/v1/query?token=secret",
        &[("authorization", auth.as_str()), ("content-type", "application/json")],
        good.to_string().into(),
    );
    let detail = r.problem(400, "invalid_argument");
    assert!(!detail.contains("secret"), "{detail}");

    // None of them reached the pipeline: no entry carries the marker.
    let text = fx().ledger_text();
    assert!(!text.contains(&marker), "a refused request was recorded");
    // A charset parameter is fine, and the well-formed request is answered and recorded.
    let r = send(Some("application/json; charset=utf-8"), good.to_string().into());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(fx().ledger_text().contains(&marker));
}

#[test]
fn an_auditor_pages_the_ledger_and_checks_proofs_and_signatures() {
    let requester = fx().token("requester");
    let auditor = fx().token("auditor");
    for _ in 0..3 {
        assert_eq!(post_query(&requester, &query_body("filed", &["region"], 202401, 202406, "诉源治理")).status, 200);
    }
    // A denied one, to filter on.
    post_query(&requester, &query_body("filed", &["court"], 202401, 202406, "诉源治理"))
        .problem(403, "permission_denied");

    // Paging without filters: the cursor continues where the page ended.
    let first = get("/v1/audit/entries?limit=2", Some(&auditor));
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    assert_security_headers(&first);
    let first = first.json();
    let seqs = |page: &Value| {
        page["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(seqs(&first), [1, 2]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get(&format!("/v1/audit/entries?limit=2&cursor={cursor}"), Some(&auditor)).json();
    assert_eq!(seqs(&second), [3, 4]);
    assert!(first["total"].as_u64().unwrap() >= 4);

    // Paging with filters: every entry matches, pages do not overlap, the last has no cursor.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(
            &format!("/v1/audit/entries?decision=deny&agency={}&limit=1{cursor}", federation::ANALYST_AGENCY),
            Some(&auditor),
        )
        .json();
        for e in page["entries"].as_array().unwrap() {
            let body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["decision"], "deny");
            assert_eq!(body["principal"]["agency"], federation::ANALYST_AGENCY);
            seen.push(e["seq"].as_u64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
        assert!(seen.len() < 10_000);
    }
    assert!(!seen.is_empty());
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    // One entry: its leaf hashes to its hash, the proof leads to the signed checkpoint's root.
    let key =
        shuzhu_gateway::ledger::default_key_dir(&fx().ledger_dir()).join(shuzhu_gateway::ledger::PUBLIC_KEY_FILE_NAME);
    let verifier = shuzhu_gateway::ledger::load_verifier(&key).unwrap();
    let seq = seen[0];
    let r = get(&format!("/v1/audit/entries/{seq}"), Some(&auditor));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json();
    assert_eq!(e["entry"]["seq"], seq);
    assert_eq!(e["leaf_index"], seq - 1);
    assert_eq!(e["verifier_key"], verifier.to_text());
    let leaf = hex::decode(e["leaf"].as_str().unwrap()).unwrap();
    assert_eq!(hex::encode(merkle::leaf_hash(&leaf)), e["entry"]["hash"].as_str().unwrap());
    let cp = verifier.verify(e["checkpoint"].as_str().unwrap()).unwrap();
    assert_eq!(cp.size, e["tree_size"].as_u64().unwrap());
    merkle::verify_inclusion(seq - 1, cp.size, &merkle::leaf_hash(&leaf), &hashes(&e["inclusion_proof"]), &cp.root)
        .unwrap();
    let body_field = e["fields"].as_array().unwrap().iter().find(|f| f["name"] == "body").unwrap();
    assert_eq!(body_field["value"], e["entry"]["body"]);
    // A proof with one hash altered does not verify.
    let mut bad = hashes(&e["inclusion_proof"]);
    bad[0][0] ^= 1;
    assert!(merkle::verify_inclusion(seq - 1, cp.size, &merkle::leaf_hash(&leaf), &bad, &cp.root).is_err());

    // The checkpoint, and a consistency proof from the entry's tree size to it.
    let c = get("/v1/audit/checkpoint", Some(&auditor)).json();
    let latest = verifier.verify(c["note"].as_str().unwrap()).unwrap();
    assert_eq!(
        (latest.size, hex::encode(latest.root)),
        (c["size"].as_u64().unwrap(), c["root"].as_str().unwrap().to_owned())
    );
    let old = cp.size;
    let p = get(&format!("/v1/audit/consistency?old={old}&new={}", latest.size), Some(&auditor));
    assert_eq!(p.status, 200, "{}", String::from_utf8_lossy(&p.body));
    let p = p.json();
    assert_eq!(hash(&p["old_root"]), cp.root);
    assert_eq!(hash(&p["new_root"]), latest.root);
    merkle::verify_consistency(old, latest.size, &cp.root, &latest.root, &hashes(&p["proof"])).unwrap();
    get(&format!("/v1/audit/consistency?old={}&new={old}", old + 1), Some(&auditor)).problem(400, "invalid_argument");

    // The access report over today: the queries above, the refusal with its rule.
    let r = get(&format!("/v1/audit/report?from={}&to={}", today(), tomorrow()), Some(&auditor));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let report = r.json();
    assert!(report["entries"].as_u64().unwrap() >= 4);
    let access = report["access"].as_array().unwrap();
    assert!(access.iter().any(|a| a["agency"] == federation::ANALYST_AGENCY && a["decision"] == "deny"), "{report}");
    assert!(report["denials"].as_array().unwrap().iter().any(
        |d| d["reason"].as_str().unwrap().contains("dimension") || d["reason"].as_str().unwrap().contains("court")
    ));
    assert!(report["findings"].is_array());

    // Every read above is itself in the ledger.
    let reads = get("/v1/audit/entries?decision=allow&agency=xm-audit&limit=1000", Some(&auditor)).json();
    let actions: Vec<String> = reads["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["body"].as_str().unwrap()).unwrap()["action"].as_str().unwrap().to_owned()
        })
        .collect();
    for action in
        ["audit.list_entries", "audit.get_entry", "audit.get_checkpoint", "audit.get_consistency_proof", "audit.report"]
    {
        assert!(actions.iter().any(|a| a == action), "{action} not recorded: {actions:?}");
    }
}

/// A federation of its own (the shared one's policy must not change under other tests).
struct Own {
    rt: tokio::runtime::Runtime,
    prepared: Prepared,
    running: Option<Running>,
    _dir: PathBuf,
}

impl Own {
    fn start() -> Self {
        let dir = crate::util::fixture_dir("shuzhu-http-");
        let data = dir.join("data");
        let cfg = shuzhu_gen::GenConfig { courts: 2, cases_per_court: 200, seed: 5, ..Default::default() };
        shuzhu_gen::generate(&data, &cfg).unwrap();
        let specs = federation::discover(&data).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let prepared = federation::prepare(&dir.join("fed"), &specs, &mut |_| {}).unwrap();
        let running = rt.block_on(federation::start(&prepared)).unwrap();
        Own { rt, prepared, running: Some(running), _dir: dir }
    }

    fn post_query(&self, token: &str, body: &Value) -> Reply {
        let auth = bearer(token);
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let url = &self.running.as_ref().unwrap().http_url;
        call(&self.rt, url, &self.prepared.pki.ca_cert, "POST", "/v1/query", &headers, body.to_string().into())
    }

    fn get(&self, path: &str, token: &str) -> Reply {
        let auth = bearer(token);
        let url = &self.running.as_ref().unwrap().http_url;
        call(&self.rt, url, &self.prepared.pki.ca_cert, "GET", path, &[("authorization", auth.as_str())], vec![])
    }
}

#[test]
fn quotas_answer_429_and_a_gateway_that_cannot_answer_503() {
    let mut own = Own::start();
    let token = shuzhu::client::read_token(&own.prepared.tokens["requester"]).unwrap();
    let text = std::fs::read_to_string(&own.prepared.policy).unwrap();
    let limited = text.replacen("valid_from = \"2024-01-01\"", "valid_from = \"2024-01-01\"\ndaily_quota = 2", 1);
    assert_ne!(limited, text);
    std::fs::write(&own.prepared.policy, limited).unwrap();
    own.running.as_ref().unwrap().gateway.reload_policy().unwrap();

    let me = own.get("/v1/me", &token).json();
    assert_eq!((me["quota"]["per_day"].as_u64(), me["quota"]["left_today"].as_u64()), (Some(2), Some(2)), "{me}");
    let ask = query_body("filed", &["year"], 202301, 202312, "司法统计");
    for _ in 0..2 {
        assert_eq!(own.post_query(&token, &ask).status, 200);
    }
    let me = own.get("/v1/me", &token).json();
    assert_eq!((me["quota"]["used_today"].as_u64(), me["quota"]["left_today"].as_u64()), (Some(2), Some(0)));
    let detail = own.post_query(&token, &ask).problem(429, "resource_exhausted");
    assert!(detail.contains("daily quota of 2 queries used up"), "{detail}");

    // Without a quota, and with every node stopped: no node answered, 503.
    std::fs::write(&own.prepared.policy, &text).unwrap();
    own.running.as_ref().unwrap().gateway.reload_policy().unwrap();
    let ids: Vec<String> = own.running.as_ref().unwrap().nodes.iter().map(|n| n.id.clone()).collect();
    let running = own.running.as_mut().unwrap();
    for id in ids {
        own.rt.block_on(running.stop_node(&id));
    }
    let detail = own.post_query(&token, &ask).problem(503, "unavailable");
    assert!(detail.contains("no node answered"), "{detail}");
    let running = own.running.take().unwrap();
    own.rt.block_on(running.shutdown());
}

#[test]
fn the_catalogue_says_each_indicators_grade() {
    let r = get("/v1/indicators", Some(&fx().token("requester")));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let list = r.json()["indicators"].as_array().unwrap().clone();
    let cat = shuzhu_policy::catalogue::Catalogue::current();
    for i in &list {
        let id = i["id"].as_str().unwrap();
        let want = shuzhu_policy::indicator::indicators()
            .iter()
            .find(|x| x.id == id)
            .and_then(|x| cat.grade_of(x.id, &[]))
            .map(|g| format!("{g:?}"));
        assert_eq!(i["grade"].as_str().map(str::to_owned), want, "{i}");
    }
    assert!(list.iter().any(|i| i["grade"] == "L3"), "enforcement amounts are L3: {list:?}");
}

#[test]
fn the_console_keeps_its_own_stricter_content_security_policy() {
    let r = get("/", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-security-policy"), shuzhu_gateway::http::console::CSP);
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    // The API's answers keep the API's.
    assert_security_headers(&get("/healthz", None));
}

#[test]
fn a_client_sending_its_headers_slowly_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fx();
    let addr = f.running.http_url.strip_prefix("https://").unwrap().to_owned();
    let mut roots = rustls::RootCertStore::empty();
    for c in shuzhu_net::load_certs(&f.prepared.pki.ca_cert).unwrap() {
        roots.add(c).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let limit = std::time::Duration::from_millis(shuzhu_net::ServerLimits::default().header_read_timeout_ms);
    let cut_after = f.rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
        let (mut rd, mut wr) = tokio::io::split(tls);
        let started = std::time::Instant::now();
        let writer = tokio::spawn(async move {
            // A request line, then one header line a second, never the blank line that ends them.
            let _ = wr.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n").await;
            for i in 0..60 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if wr.write_all(format!("x-slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = [0u8; 1024];
        let ended = tokio::time::timeout(limit * 2 + std::time::Duration::from_secs(5), async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        writer.abort();
        ended.map(|()| started.elapsed())
    });
    let cut_after = cut_after.expect("the server kept a connection whose headers never ended");
    assert!(cut_after >= limit / 2, "cut after {cut_after:?}, before the timeout of {limit:?}");
}
