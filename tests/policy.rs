//! The federation policy and each node's own say, end to end: a node's local policy refuses what the
//! gateway allowed and the answer names it missing with the node's reason; a policy reload under a
//! steady stream of queries drops none, and a broken file is refused while the old version keeps
//! deciding; quotas answer `RESOURCE_EXHAUSTED`; `shuzhu policy check` and `explain` on the command line.
//!
//! Each test that changes a policy runs its own small federation, so the shared fixture never sees it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shuzhu::federation::{self, Prepared, Running};
use shuzhu_net::Role;
use shuzhu_policy::FederationPolicy;
use shuzhu_proto::v1 as pb;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::util::request;

/// A small federation of three courts, its own runtime and folder.
struct SmallFederation {
    rt: tokio::runtime::Runtime,
    dir: PathBuf,
    prepared: Prepared,
    running: Option<Running>,
}

impl SmallFederation {
    fn start(tag: &str) -> Self {
        let dir = tempfile::Builder::new().prefix(&format!("shuzhu-policy-{tag}-")).tempdir().unwrap().keep();
        let data = dir.join("data");
        let cfg = shuzhu_gen::GenConfig { courts: 3, cases_per_court: 300, seed: 11, ..Default::default() };
        shuzhu_gen::generate(&data, &cfg).unwrap();
        let specs = federation::discover(&data).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let prepared = federation::prepare(&dir.join("fed"), &specs, &mut |_| {}).unwrap();
        let running = rt.block_on(federation::start(&prepared)).unwrap();
        SmallFederation { rt, dir, prepared, running: Some(running) }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    fn token(&self, name: &str) -> String {
        shuzhu::client::read_token(&self.prepared.tokens[name]).unwrap()
    }

    fn query(&self, token: &str, req: pb::QueryRequest) -> Result<pb::QueryResponse, tonic::Status> {
        let url = self.running().gateway_url.clone();
        let ca = self.prepared.pki.ca_cert.clone();
        self.rt.block_on(async move {
            let ch = shuzhu::client::connect(&url, &ca).await.unwrap();
            shuzhu::client::query(ch, token, req).await
        })
    }

    fn version(&self) -> String {
        self.running().gateway.current_policy().version.clone()
    }

    fn court_config(&self, n: usize) -> (String, PathBuf) {
        self.prepared.nodes.iter().filter(|(id, _)| id.starts_with("court-")).nth(n).cloned().unwrap()
    }

    /// Calls a node's `Describe` as the gateway (its certificate, over mutual TLS).
    fn describe(&self, node: &str) -> pb::DescribeResponse {
        let addr = self.running().nodes.iter().find(|n| n.id == node).unwrap().addr;
        let (cert, key) = self.prepared.pki.party(Role::Gateway, federation::DEMO_GATEWAY);
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(&self.prepared.pki.ca_cert).unwrap()))
            .identity(Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()))
            .domain_name(shuzhu_net::party_dns_name(Role::Node, node));
        self.rt.block_on(async move {
            let ch = Endpoint::from_shared(format!("https://{addr}"))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
                .unwrap();
            pb::node_client::NodeClient::new(ch).describe(pb::DescribeRequest {}).await.unwrap().into_inner()
        })
    }

    /// Waits (up to 20 s) until `done` holds, polling every 100 ms; false if it never did.
    fn wait_for(&self, mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..200 {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for SmallFederation {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ask() -> pb::QueryRequest {
    request("filed", &["region"], 202301, 202312, "诉源治理")
}

/// Rewrites a file's text atomically (write then rename), so a watcher never reads half a file.
fn rewrite(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_node_local_policy_refuses_what_the_gateway_allows_and_the_answer_says_why() {
    let fed = SmallFederation::start("node");
    let token = fed.token("requester");
    let before = fed.query(&token, ask()).unwrap();
    assert!(before.coverage.as_ref().unwrap().missing.is_empty());

    // Node 1 stops serving `cases`; node 2 raises its own threshold above the gateway's 10. The gateway
    // is not told: its configuration still lists both nodes for `cases`.
    let (no_cases, path1) = fed.court_config(0);
    let text = std::fs::read_to_string(&path1).unwrap();
    let forbidding: String = text
        .lines()
        .map(|l| if l.starts_with("datasets = ") { "datasets = []".to_string() } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(forbidding, text);
    rewrite(&path1, &forbidding);
    let (strict, path2) = fed.court_config(1);
    let text = std::fs::read_to_string(&path2).unwrap();
    assert!(text.contains("threshold = 10"));
    rewrite(&path2, &text.replace("threshold = 10", "threshold = 50"));

    let mut answer = None;
    let seen = fed.wait_for(|| {
        let a = fed.query(&token, ask()).expect("the gateway allows the query and some node answers");
        let done = a.coverage.as_ref().unwrap().missing.len() == 2;
        answer = Some(a);
        done
    });
    assert!(seen, "the nodes never picked up their new local policies: {answer:?}");
    let answer = answer.unwrap();
    let coverage = answer.coverage.unwrap();
    assert_eq!((coverage.asked, coverage.answered), (3, 1));
    let reason = |node: &str| coverage.missing.iter().find(|m| m.node == node).unwrap().reason.clone();
    assert_eq!(reason(&no_cases), format!("node {no_cases} local policy: dataset cases is not served here"));
    assert_eq!(
        reason(&strict),
        format!("node {strict} local policy: threshold 10 is below this node's own threshold 50")
    );
    // Only the answering court's regions have rows: nothing of the refusing nodes was released.
    assert!(!answer.rows.is_empty());
    let regions_of = |id: &str| fed.running().nodes.iter().find(|n| n.id == id).unwrap().regions.clone();
    let refused: Vec<String> = [regions_of(&no_cases), regions_of(&strict)].concat();
    assert!(answer.rows.iter().all(|r| !refused.contains(&r.group["region"])), "{:?}", answer.rows);

    // The node reports its own threshold and the version of its local policy.
    let described = fed.describe(&strict);
    assert_eq!(described.threshold, 50);
    assert_eq!(described.local_policy_version.len(), 16);
    assert_ne!(described.local_policy_version, fed.describe(&fed.court_config(2).0).local_policy_version);

    // A grant that accepts only complete answers turns the same query into UNAVAILABLE.
    let policy_text = std::fs::read_to_string(&fed.prepared.policy).unwrap();
    let complete_only =
        policy_text.replacen("valid_from = \"2024-01-01\"", "valid_from = \"2024-01-01\"\naccept_partial = false", 1);
    rewrite(&fed.prepared.policy, &complete_only);
    fed.running().gateway.reload_policy().unwrap();
    let err = fed.query(&token, ask()).unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("only complete answers") && err.message().contains(&no_cases), "{}", err.message());
    rewrite(&fed.prepared.policy, &policy_text);
    fed.running().gateway.reload_policy().unwrap();

    // A broken local policy is refused and the node keeps its last one.
    rewrite(&path1, &forbidding.replace("threshold = 10", "threshold = 2"));
    std::thread::sleep(Duration::from_millis(2500));
    let a = fed.query(&token, ask()).unwrap();
    assert!(a.coverage.unwrap().missing.iter().any(|m| m.node == no_cases && m.reason.contains("not served")));
}

#[test]
fn a_reload_under_a_stream_of_queries_drops_none_and_a_broken_policy_is_refused() {
    let fed = SmallFederation::start("reload");
    let token = fed.token("requester");
    let policy_path = fed.prepared.policy.clone();
    let original = std::fs::read_to_string(&policy_path).unwrap();
    let v0 = fed.version();
    assert_eq!(fed.query(&token, ask()).unwrap().policy_version, v0);

    // Two clients query without pause for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let url = fed.running().gateway_url.clone();
    let ca = fed.prepared.pki.ca_cert.clone();
    let streams: Vec<_> = (0..2)
        .map(|_| {
            let (stop, url, ca, token) = (Arc::clone(&stop), url.clone(), ca.clone(), token.clone());
            fed.rt.spawn(async move {
                let ch = shuzhu::client::connect(&url, &ca).await.unwrap();
                let mut outcomes: Vec<Result<(String, u32), Code>> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = shuzhu::client::query(ch.clone(), &token, ask()).await;
                    outcomes.push(r.map(|a| (a.policy_version, a.threshold)).map_err(|s| s.code()));
                }
                outcomes
            })
        })
        .collect();

    // Two good reloads by file change, each picked up while the queries run.
    let v1_text = original.replace("default_threshold = 10", "default_threshold = 12");
    let v1 = FederationPolicy::parse(&v1_text).unwrap().version();
    rewrite(&policy_path, &v1_text);
    assert!(fed.wait_for(|| fed.version() == v1), "the gateway never picked up the new policy");
    let v2_text = original.replace("default_threshold = 10", "default_threshold = 15");
    let v2 = FederationPolicy::parse(&v2_text).unwrap().version();
    rewrite(&policy_path, &v2_text);
    assert!(fed.wait_for(|| fed.version() == v2), "the gateway never picked up the second policy");

    // A broken policy (threshold below 5, unknown indicator) is refused: the old version keeps deciding.
    let broken = v2_text.replace("default_threshold = 15", "default_threshold = 3").replace("\"filed\"", "\"filled\"");
    rewrite(&policy_path, &broken);
    let refused = fed.running().gateway.reload_policy().unwrap_err().to_string();
    assert!(refused.contains("default_threshold") && refused.contains("filled"), "{refused}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(fed.version(), v2);
    let after = fed.query(&token, ask()).unwrap();
    assert_eq!((after.policy_version.as_str(), after.threshold), (v2.as_str(), 15));
    // The watcher hands over the text it read: that text decides, the (broken) file is not read again.
    assert_eq!(fed.running().gateway.reload_policy_text(&v1_text).unwrap(), v1);
    assert_eq!(fed.version(), v1);
    rewrite(&policy_path, &v2_text);
    assert!(fed.wait_for(|| fed.version() == v2), "the gateway never picked up the mended file");

    stop.store(true, Ordering::Relaxed);
    let outcomes: Vec<_> = streams.into_iter().flat_map(|h| fed.rt.block_on(h).unwrap()).collect();
    assert!(outcomes.len() >= 4, "the stream was too thin to mean anything: {}", outcomes.len());
    let failed: Vec<_> = outcomes.iter().filter(|o| o.is_err()).collect();
    assert!(failed.is_empty(), "{} of {} queries failed during reloads: {failed:?}", failed.len(), outcomes.len());
    // Every answer carries the version that decided it, with that version's threshold.
    for o in outcomes.iter().flatten() {
        let expected = if o.0 == v0 {
            10
        } else if o.0 == v1 {
            12
        } else {
            assert_eq!(o.0, v2, "an answer carries a version that never was in force");
            15
        };
        assert_eq!(o.1, expected);
    }
    assert!(outcomes.iter().flatten().any(|o| o.0 == v2));
}

#[test]
fn quotas_refuse_with_resource_exhausted_and_are_audited() {
    let fed = SmallFederation::start("quota");
    let token = fed.token("requester");
    let policy_path = fed.prepared.policy.clone();
    let text = std::fs::read_to_string(&policy_path).unwrap();
    let limited = text.replacen("valid_from = \"2024-01-01\"", "valid_from = \"2024-01-01\"\nrate_limit = 3", 1);
    assert_ne!(limited, text);
    rewrite(&policy_path, &limited);
    fed.running().gateway.reload_policy().unwrap();
    for _ in 0..3 {
        fed.query(&token, ask()).unwrap();
    }
    let err = fed.query(&token, ask()).unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(err.metadata().get("x-shuzhu-policy-version").unwrap().to_str().unwrap(), fed.version());
    assert!(err.message().contains("rate limit of 3 queries per minute"), "{}", err.message());
    assert!(err.message().contains("try again in"), "{}", err.message());
    // Another agency is not affected.
    fed.query(&fed.token("manager"), request("filed", &["court"], 202301, 202312, "审判管理")).unwrap();

    // The refusal is in the ledger.
    let auditor = fed.token("auditor");
    let url = fed.running().gateway_url.clone();
    let ca = fed.prepared.pki.ca_cert.clone();
    let entries = fed.rt.block_on(async move {
        let ch = shuzhu::client::connect(&url, &ca).await.unwrap();
        let mut c = pb::audit_client::AuditClient::new(ch);
        let req = shuzhu::client::authorized(
            pb::ListEntriesRequest { from_seq: 1, limit: 100, ..Default::default() },
            &auditor,
        )
        .unwrap();
        c.list_entries(req).await.unwrap().into_inner().entries
    });
    let bodies: Vec<String> = entries.iter().map(|e| e.body.clone()).collect();
    let refusal = bodies.iter().find(|b| b.contains("quota: rate limit of 3")).expect("no audited refusal");
    // The entry carries the version that decided it.
    let entry: serde_json::Value = serde_json::from_str(refusal).unwrap();
    assert_eq!(entry["policy_version"].as_str(), Some(fed.version().as_str()), "{refusal}");
}

fn shuzhu(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into())
}

#[test]
fn policy_check_reports_every_problem_by_line_and_explain_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("policy.toml");
    std::fs::write(&good, federation::demo_policy()).unwrap();
    let (code, out) = shuzhu(&["policy", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok, policy version"), "{out}");

    let bad = dir.path().join("bad.toml");
    let text = federation::demo_policy().replace("default_threshold = 10", "default_threshold = 4").replacen(
        "purposes = [\"诉源治理\", \"司法统计\"]",
        "purposes = [\"诉源治理\", \"好奇心\"]\nsurprise = true",
        1,
    );
    std::fs::write(&bad, &text).unwrap();
    let (code, out) = shuzhu(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let line = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    // Unknown keys come first (the file's shape), then every rule once the shape is right.
    assert!(
        out.contains(&format!("bad.toml:{}: grant[0].surprise: unknown field `surprise`", line("surprise"))),
        "{out}"
    );
    // Only the shape is reported so far, and the output says more may follow.
    assert!(!out.contains("default_threshold"), "{out}");
    assert!(out.contains("1 problem(s); fix these first: semantic checks run once the file parses"), "{out}");
    std::fs::write(&bad, text.replace("\nsurprise = true", "")).unwrap();
    let (code, out) = shuzhu(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("bad.toml:{}: default_threshold: 4 is below", line("default_threshold"))), "{out}");
    assert!(
        out.contains(&format!("bad.toml:{}: grant[0].purposes: unknown purpose \"好奇心\"", line("好奇心"))),
        "{out}"
    );
    assert!(out.contains("2 problem(s)\n"), "{out}");
    assert!(!out.contains("fix these first"), "{out}");
    // A wrong type is a matter of shape too.
    std::fs::write(
        &bad,
        text.replace("\nsurprise = true", "").replace("default_threshold = 4", "default_threshold = \"x\""),
    )
    .unwrap();
    let (code, out) = shuzhu(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("default_threshold") && out.contains("fix these first"), "{out}");
    assert!(!out.contains("好奇心"), "{out}");

    let p = good.to_str().unwrap();
    let base =
        ["policy", "explain", "--policy", p, "--agency", "xm-sfj", "--indicator", "filed", "--date", "2026-06-01"];
    let (code, out) = shuzhu(&[&base[..], &["--group-by", "region,year", "--purpose", "诉源治理"]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("decision: ALLOW") && out.contains("grant[0]") && out.contains("threshold: 10"), "{out}");
    let (code, out) = shuzhu(&[&base[..], &["--group-by", "court", "--purpose", "诉源治理"]].concat());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("decision: DENY") && out.contains("rule: dimension"), "{out}");
    let (code, out) = shuzhu(&[&base[..], &["--purpose", "营商环境评估"]].concat());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("rule: purpose"), "{out}");
}
