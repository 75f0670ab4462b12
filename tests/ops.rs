//! What an operator watches: the admin listeners' metrics (closed-set labels, exact counts, no personal
//! value or token), readiness that follows the nodes, reflection in both versions, request ids that
//! match across gateway and node logs, and the status commands.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use shuzhu_proto::v1 as pb;

use crate::util::{fx, personal_values, request};

/// `GET path` on a plain-HTTP admin listener: (status code, body).
pub(crate) fn admin_get(url: &str, path: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// Every sample of `metric` in a Prometheus text: its label set (as written) → value.
fn samples(text: &str, metric: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        if name == metric {
            out.insert(labels.to_string(), value.parse().unwrap());
        }
    }
    out
}

fn sum(text: &str, metric: &str, having: &str) -> f64 {
    samples(text, metric).iter().filter(|(l, _)| l.contains(having)).map(|(_, v)| v).sum()
}

#[test]
fn metrics_count_every_request_exactly_with_closed_labels_and_no_personal_value_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let (prepared, rt, token) = crate::coverage::small_federation(dir.path(), 600, 21);
    let running = rt.block_on(shuzhu::federation::start(&prepared)).unwrap();
    let values = personal_values(&dir.path().join("data"));
    assert!(values.len() > 100, "the data holds personal values");
    let name = values.iter().find(|v| v.chars().count() == 3 && !v.is_ascii()).unwrap().clone();
    let id = values.iter().find(|v| v.len() == 18 && v[..17].bytes().all(|b| b.is_ascii_digit())).unwrap().clone();
    let phone = values.iter().find(|v| v.len() == 11 && v.starts_with('1')).unwrap().clone();
    let hostile = format!("原告{name}，身份证{id}，电话{phone}");

    // The privacy test's kinds of request: allowed ones, personal data pasted into every free field.
    let mut hostile_basis = request("closure_rate", &["region", "cause"], 202301, 202312, "诉源治理");
    hostile_basis.legal_basis = hostile.clone();
    let mut bad_filter = request("filed", &["region"], 202401, 202412, &hostile);
    bad_filter.filters = vec![pb::DimensionFilter { dimension: "cause".into(), values: vec![hostile.clone()] }];
    let mut bad_group = request(&hostile, &["region"], 202401, 202412, "诉源治理");
    bad_group.group_by = vec![phone.clone()];
    let reqs = vec![
        request("filed", &["region", "cause", "month"], 202401, 202406, "诉源治理"),
        request("avg_trial_days", &["type_code", "year"], 201901, 202412, "司法统计"),
        hostile_basis,
        bad_filter,
        bad_group,
        request("filed", &[&id], 202401, 202412, "诉源治理"),
    ];
    let asked = reqs.len() + 1;
    let outcomes = rt.block_on(async {
        let mut outcomes = Vec::new();
        for r in reqs {
            let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
            outcomes.push(shuzhu::client::query(ch, &token, r).await);
        }
        // One request with a forged token: an authentication failure, counted by reason.
        let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
        let forged = format!("{}x", &token[..token.len() - 1]);
        let e = shuzhu::client::query(ch, &forged, request("filed", &["region"], 202401, 202412, "诉源治理")).await;
        assert_eq!(e.unwrap_err().code(), tonic::Code::Unauthenticated);
        outcomes
    });
    let allowed = outcomes.iter().filter(|o| o.is_ok()).count();
    assert!(allowed >= 2, "the ordinary requests are answered: {outcomes:?}");

    let (code, gw) = admin_get(&running.admin_url, "/metrics");
    assert_eq!(code, 200, "{gw}");
    // Nothing personal, nothing of the token, nothing of the free texts.
    for v in values.iter().filter(|v| v.chars().count() >= 3) {
        assert!(!gw.contains(v.as_str()), "the gateway's metrics hold a personal value");
    }
    let signature = token.rsplit('.').next().unwrap();
    assert!(!gw.contains(&token) && !gw.contains(signature), "the gateway's metrics hold the token");
    assert!(!gw.contains("原告") && !gw.contains("诉源治理"), "free text reached a label");

    // Exact counts: every request once, by service, agency, indicator and decision.
    assert_eq!(sum(&gw, "shuzhu_gateway_requests_total", "service=\"query\"") as usize, asked, "{gw}");
    assert_eq!(
        sum(&gw, "shuzhu_gateway_requests_total", "decision=\"allow\"") as usize,
        allowed,
        "every answered query is one allow: {gw}"
    );
    let requests = samples(&gw, "shuzhu_gateway_requests_total");
    assert!(
        requests.contains_key("service=\"query\",agency=\"xm-sfj\",indicator=\"filed\",decision=\"allow\""),
        "{requests:?}"
    );
    assert!(requests.keys().any(|l| l.contains("indicator=\"other\"")), "an unknown indicator is other: {requests:?}");
    let failures = samples(&gw, "shuzhu_gateway_auth_failures_total");
    assert_eq!(failures.values().sum::<f64>(), 1.0, "{gw}");
    assert!(failures.keys().all(|l| l == "reason=\"malformed\"" || l == "reason=\"bad_signature\""), "{failures:?}");
    assert!(sum(&gw, "shuzhu_gateway_cells_total", "") >= 1.0, "{gw}");
    assert!(!samples(&gw, "shuzhu_gateway_cells_suppressed_total").is_empty(), "{gw}");
    assert_eq!(
        sum(&gw, "shuzhu_gateway_request_seconds_count", "service=\"query\"") as usize,
        asked,
        "end-to-end latency of every request: {gw}"
    );
    assert_eq!(
        samples(&gw, "shuzhu_gateway_ledger_entries").get(""),
        Some(&(running.gateway.ledger.len() as f64)),
        "{gw}"
    );
    assert!(sum(&gw, "shuzhu_gateway_ledger_append_seconds_count", "") as usize >= asked, "{gw}");
    assert!(sum(&gw, "shuzhu_gateway_ledger_bytes", "") > 0.0, "{gw}");
    let expiry = sum(&gw, "shuzhu_gateway_certificate_expiry_timestamp_seconds", "");
    assert!(expiry > shuzhu_net::admin::unix_now() as f64, "the certificate expires in the future: {gw}");
    assert_eq!(sum(&gw, "shuzhu_gateway_ready", ""), 1.0, "{gw}");

    // Each node's own metrics agree exactly with what the gateway counted of it.
    let mut released = 0.0;
    for n in &running.nodes {
        let node_label = format!("node=\"{}\"", n.id);
        let round_trips = sum(&gw, "shuzhu_gateway_node_round_trip_seconds_count", &node_label);
        assert!(round_trips >= 1.0, "{} was asked: {gw}", n.id);
        assert_eq!(sum(&gw, "shuzhu_gateway_node_up", &node_label), 1.0, "{gw}");
        let (code, text) = admin_get(&n.admin_url, "/metrics");
        assert_eq!(code, 200);
        for v in values.iter().filter(|v| v.chars().count() >= 3) {
            assert!(!text.contains(v.as_str()), "node {} metrics hold a personal value", n.id);
        }
        assert!(!text.contains(signature));
        let node_calls = sum(&text, "shuzhu_node_requests_total", "");
        assert_eq!(node_calls, round_trips, "{}: every call the gateway timed, the node counted: {text}", n.id);
        released += sum(&text, "shuzhu_node_requests_total", "outcome=\"released\"");
        assert!(sum(&text, "shuzhu_node_journal_records", "") >= node_calls, "{text}");
        assert!(sum(&text, "shuzhu_node_store_bytes", "") > 0.0, "{text}");
        assert!(sum(&text, "shuzhu_node_dataset_records", "dataset=\"cases\"") > 0.0, "{text}");
        assert!(sum(&text, "shuzhu_node_journal_append_seconds_count", "") >= 1.0, "{text}");
        assert!(sum(&text, "shuzhu_node_certificate_expiry_timestamp_seconds", "") > 0.0, "{text}");
        assert_eq!(admin_get(&n.admin_url, "/healthz").0, 200);
    }
    assert_eq!(
        released,
        sum(&gw, "shuzhu_gateway_node_answers_total", "status=\"answered\""),
        "releases at the nodes = answers the gateway counted: {gw}"
    );
    rt.block_on(running.shutdown());
}

#[test]
fn a_gateway_with_no_reachable_node_is_not_serving_and_says_why() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let dir = tempfile::tempdir().unwrap();
    let (prepared, rt, _) = crate::coverage::small_federation(dir.path(), 200, 23);
    let mut running = rt.block_on(shuzhu::federation::start(&prepared)).unwrap();
    let status = |url: &str, service: &str| {
        rt.block_on(async {
            let ch = shuzhu::client::connect(url, &prepared.pki.ca_cert).await.unwrap();
            let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
            h.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status
        })
    };
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    assert_eq!(status(&running.gateway_url, "shuzhu.v1.Gateway"), serving);
    assert_eq!(admin_get(&running.admin_url, "/healthz").0, 200);
    // One node down: still serving (a partial answer is an answer).
    let first = running.nodes[0].id.clone();
    rt.block_on(running.stop_node(&first));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(status(&running.gateway_url, "shuzhu.v1.Gateway"), serving);
    let (_, text) = admin_get(&running.admin_url, "/metrics");
    assert_eq!(sum(&text, "shuzhu_gateway_node_up", &format!("node=\"{first}\"")), 0.0, "{text}");
    // Every node down: NOT_SERVING for the Gateway service and the whole server, within a few probes.
    let second = running.nodes[0].id.clone();
    rt.block_on(running.stop_node(&second));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while status(&running.gateway_url, "shuzhu.v1.Gateway") != not_serving {
        assert!(std::time::Instant::now() < deadline, "the gateway still says SERVING with no node");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(status(&running.gateway_url, ""), not_serving);
    let (code, body) = admin_get(&running.admin_url, "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("none of the 2 nodes answers"), "{body}");
    let (_, text) = admin_get(&running.admin_url, "/metrics");
    assert_eq!(sum(&text, "shuzhu_gateway_ready", ""), 0.0, "{text}");
    rt.block_on(running.shutdown());
}

#[test]
fn reflection_answers_in_v1_and_v1alpha() {
    let f = fx();
    let services = f.rt.block_on(async {
        let ch = shuzhu::client::connect(&f.running.gateway_url, &f.prepared.pki.ca_cert).await.unwrap();
        let mut out = Vec::new();
        {
            use tonic_reflection::pb::v1::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
            };
            let req = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut c = ServerReflectionClient::new(ch.clone());
            let mut stream = c.server_reflection_info(tokio_stream::once(req)).await.unwrap().into_inner();
            let resp = stream.message().await.unwrap().unwrap();
            let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else { panic!() };
            out.push(list.service.into_iter().map(|s| s.name).collect::<Vec<_>>());
        }
        {
            use tonic_reflection::pb::v1alpha::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
            };
            let req = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut c = ServerReflectionClient::new(ch);
            let mut stream = c.server_reflection_info(tokio_stream::once(req)).await.unwrap().into_inner();
            let resp = stream.message().await.unwrap().unwrap();
            let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else { panic!() };
            out.push(list.service.into_iter().map(|s| s.name).collect::<Vec<_>>());
        }
        out
    });
    for list in services {
        assert!(
            list.iter().any(|s| s == "shuzhu.v1.Gateway") && list.iter().any(|s| s == "shuzhu.v1.Audit"),
            "{list:?}"
        );
    }
}

#[test]
fn gateway_and_node_log_lines_of_one_request_carry_the_same_request_id() {
    let f = fx();
    let token = f.token("requester");
    let answer = f.query(&token, request("filed", &["region", "year"], 202301, 202312, "诉源治理")).unwrap();
    let logs = String::from_utf8_lossy(&f.logs.lock().unwrap()).into_owned();
    let seq = answer.audit_seq;
    let line = logs
        .lines()
        .find(|l| l.contains("query answered") && l.contains(&format!("audit_seq={seq} ")))
        .unwrap_or_else(|| panic!("no gateway line for audit_seq {seq}"));
    let id = line.split("request_id=").nth(1).unwrap().split(|c: char| !c.is_ascii_hexdigit()).next().unwrap();
    assert_eq!(id.len(), 16, "{line}");
    let node_lines: Vec<&str> =
        logs.lines().filter(|l| l.contains("released partial aggregates") && l.contains(id)).collect();
    assert!(!node_lines.is_empty(), "no node line carries request id {id}");
    assert!(node_lines.iter().all(|l| l.contains(&format!("request{{request_id={id}}}"))), "{node_lines:?}");
}

fn shuzhu(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn status_reads_a_running_node_and_gateway_without_disturbing_them() {
    let f = fx();
    let token = f.token("requester");
    f.query(&token, request("filed", &["region"], 202301, 202312, "诉源治理")).unwrap();
    let (id, node_config) = f.prepared.nodes.iter().find(|(id, _)| id.starts_with("court-")).unwrap();
    let (code, out, err) =
        shuzhu(&["node", "status", "--config", &node_config.display().to_string(), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["node_id"], id.as_str());
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["pid"], std::process::id().to_string(), "the holder is this test process: {v}");
    let cases = v["datasets"].as_array().unwrap().iter().find(|d| d["name"] == "cases").unwrap();
    assert_eq!(cases["rows"].as_u64(), Some(crate::util::CASES_PER_COURT as u64), "{v}");
    assert!(cases["data_from"].as_str().unwrap() < cases["data_until"].as_str().unwrap(), "{v}");
    assert!(v["journal"]["records"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["journal"]["head"].as_str().unwrap().len(), 64, "{v}");
    assert!(v["journal"]["last_release"].is_string(), "{v}");
    assert!(v["store"]["bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["certificate"]["days_left"].as_i64().unwrap() > 0, "{v}");
    // The node still answers afterwards (its lock and data untouched).
    f.query(&token, request("filed", &["region"], 202301, 202312, "诉源治理")).unwrap();
    let (code, text, _) = shuzhu(&["node", "status", "--config", &node_config.display().to_string()]);
    assert_eq!(code, 0);
    assert!(text.contains("running: true") && text.contains("rows: "), "{text}");

    let gw = f.running.gateway_config.display().to_string();
    let (code, out, err) = shuzhu(&["gateway", "status", "--config", &gw, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["running"], true, "{v}");
    assert!(v["ledger"]["note"].as_str().unwrap().contains("running gateway holds the ledger"), "{v}");
    assert!(v["ledger"]["bytes"].as_u64().unwrap() > 0, "{v}");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), f.prepared.nodes.len(), "{v}");
    assert!(nodes.iter().all(|n| n["health"] == "serving"), "{v}");
    assert!(v["release_ledger"]["cells"].is_u64() && v["quota_used_today"].is_object(), "{v}");
    assert!(v["certificate"]["days_left"].as_i64().unwrap() > 0, "{v}");
}

#[test]
fn a_node_logs_json_serves_its_admin_listener_and_drains_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (prepared, _rt, _) = crate::coverage::small_federation(dir.path(), 100, 29);
    let (_, config) = &prepared.nodes[0];
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replace("[tls]", "admin_listen = \"127.0.0.1:0\"\nshutdown_grace_secs = 5\n\n[tls]");
    std::fs::write(config, text).unwrap();
    /// Kills the node if the test fails before it stops it.
    struct Reaper(std::process::Child);
    impl Drop for Reaper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reaper(
        std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu"))
            .args(["--log-format", "json", "node", "serve", "--config", &config.display().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut admin = None;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
        let message = v["fields"]["message"].as_str().unwrap_or_default().to_string();
        if message.starts_with("admin listener") {
            admin = v["fields"]["addr"].as_str().map(|a| format!("http://{a}"));
        }
        seen.push(message.clone());
        if message == "node serving over mutual TLS" {
            break;
        }
    }
    let admin = admin.unwrap_or_else(|| panic!("no admin listener line: {seen:?}"));
    assert_eq!(admin_get(&admin, "/healthz"), (200, "serving\n".to_string()));
    assert!(admin_get(&admin, "/metrics").1.contains("shuzhu_node_ready 1"));
    let kill = std::process::Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "a node asked to stop exits 0: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("draining calls in flight") && l.contains("\"grace_secs\":5")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("node stopped")), "{rest:?}");
    // Stopped, its status opens the store itself (and says it does not run).
    let (code, out, err) = shuzhu(&["node", "status", "--config", &config.display().to_string(), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["running"], false, "{v}");
    assert!(v.get("pid").is_none(), "{v}");
    let cases = v["datasets"].as_array().unwrap().iter().find(|d| d["name"] == "cases").unwrap();
    assert_eq!(cases["rows"].as_u64(), Some(100), "{v}");
}
