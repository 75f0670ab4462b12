//! The ledger records every answered query before the answer leaves, and `shuzhu audit verify`
//! detects a single flipped byte anywhere in an export of it.

use std::process::Command;

use shuzhu_proto::v1 as pb;

use crate::util::{fx, request};

#[test]
fn every_answer_names_its_ledger_entry() {
    let resp =
        fx().query(&fx().token("requester"), request("closed", &["region"], 202401, 202406, "诉源治理")).unwrap();
    assert!(resp.audit_seq > 0);
    let entries = fx().list_entries(&fx().token("auditor"), resp.audit_seq, 1).unwrap();
    let e = &entries.entries[0];
    assert_eq!(e.seq, resp.audit_seq);
    let body: serde_json::Value = serde_json::from_str(&e.body).unwrap();
    assert_eq!(body["indicator"], "closed");
    assert_eq!(body["decision"], "allow");
    assert_eq!(body["principal"]["agency"], "xm-sfj");
    assert_eq!(body["policy_version"], resp.policy_version.as_str());
    assert_eq!(body["nodes"].as_array().unwrap().len(), 3);
}

fn verify(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(["audit", "verify"]).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn audit_verify_detects_a_flipped_byte_in_an_export() {
    for _ in 0..3 {
        fx().query(&fx().token("requester"), request("filed", &["year"], 202001, 202412, "诉源治理")).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("audit.jsonl");
    let summary = fx().running.gateway.ledger.export(std::fs::File::create(&copy).unwrap()).unwrap();
    assert!(summary.entries >= 3);
    let key = fx().ledger_dir().join(shuzhu_gateway::ledger::PUBLIC_KEY_FILE_NAME);
    let args = |f: &std::path::Path| -> Vec<std::ffi::OsString> {
        vec!["--export".into(), f.into(), "--key".into(), key.clone().into()]
    };
    let run = |f: &std::path::Path| {
        let a = args(f);
        verify(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>())
    };
    let (code, out) = run(&copy);
    assert_eq!(code, 0, "an intact export verifies: {out}");
    assert!(out.contains("signed checkpoints verified"), "{out}");
    let bytes = std::fs::read(&copy).unwrap();
    // Flip one bit at positions spread over the whole file (several inside each line's parts).
    let step = (bytes.len() / 97).max(1);
    let mut checked = 0;
    for pos in (0..bytes.len()).step_by(step) {
        let mut b = bytes.clone();
        b[pos] ^= 0x01;
        std::fs::write(&copy, &b).unwrap();
        let (code, out) = run(&copy);
        assert_eq!(code, 2, "flip at byte {pos} not detected: {out}");
        assert!(out.contains("does not verify"), "{out}");
        checked += 1;
    }
    assert!(checked >= 90);
}

/// Runs `shuzhu audit ARGS` against the fixture's gateway as `role`.
fn audit_cli(role: &str, args: &[&str]) -> (i32, String) {
    let p = &fx().prepared;
    let out = Command::new(env!("CARGO_BIN_EXE_shuzhu"))
        .arg("audit")
        .args(args)
        .arg("--gateway")
        .arg(&fx().running.gateway_url)
        .arg("--ca")
        .arg(&p.pki.ca_cert)
        .arg("--token-file")
        .arg(&p.tokens[role])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn public_key() -> std::path::PathBuf {
    fx().ledger_dir().join(shuzhu_gateway::ledger::PUBLIC_KEY_FILE_NAME)
}

/// How many entries record `action` with `decision`.
fn recorded(action: &str, decision: &str) -> usize {
    let chain = &fx().running.gateway.ledger;
    chain
        .list(1, chain.len() as usize)
        .unwrap()
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.body).ok())
        .filter(|b| b["action"] == action && b["decision"] == decision)
        .count()
}

fn audit_client() -> pb::audit_client::AuditClient<tonic::transport::Channel> {
    fx().rt.block_on(async {
        let ch = shuzhu::client::connect(&fx().running.gateway_url, &fx().prepared.pki.ca_cert).await.unwrap();
        pb::audit_client::AuditClient::new(ch)
    })
}

/// One audit RPC made with a token; checks what an allowed call returns.
type AuditCall =
    dyn Fn(&mut pb::audit_client::AuditClient<tonic::transport::Channel>, &str) -> Result<(), tonic::Status>;

#[test]
fn every_audit_rpc_is_for_auditors_only_and_every_read_is_recorded() {
    fx().query(&fx().token("requester"), request("closed", &["region"], 202401, 202403, "诉源治理")).unwrap();
    let mut c = audit_client();
    let calls: [(&str, &AuditCall); 5] = [
        ("audit.list_entries", &|c, t| {
            let req = pb::ListEntriesRequest { decision: "allow".into(), limit: 5, ..Default::default() };
            let r = fx().rt.block_on(c.list_entries(shuzhu::client::authorized(req, t).unwrap()))?.into_inner();
            assert!(r.entries.iter().all(|e| e.body.contains(r#""decision":"allow""#)));
            assert!(!r.entries.is_empty());
            Ok(())
        }),
        ("audit.get_entry", &|c, t| {
            let req = pb::GetEntryRequest { seq: 1, tree_size: 0 };
            let r = fx().rt.block_on(c.get_entry(shuzhu::client::authorized(req, t).unwrap()))?.into_inner();
            assert!(!r.checkpoint.is_empty() && r.tree_size >= 1);
            Ok(())
        }),
        ("audit.get_checkpoint", &|c, t| {
            let req = pb::GetCheckpointRequest {};
            let r = fx().rt.block_on(c.get_checkpoint(shuzhu::client::authorized(req, t).unwrap()))?.into_inner();
            let v = shuzhu_gateway::ledger::load_verifier(&public_key()).unwrap();
            assert_eq!(v.verify(&r.note).unwrap().size, r.size);
            Ok(())
        }),
        ("audit.get_consistency_proof", &|c, t| {
            let req = pb::GetConsistencyProofRequest { old_size: 1, new_size: 0 };
            let r =
                fx().rt.block_on(c.get_consistency_proof(shuzhu::client::authorized(req, t).unwrap()))?.into_inner();
            assert!(r.new_size >= 1 && !r.new_checkpoint.is_empty());
            Ok(())
        }),
        ("audit.export", &|c, t| {
            let req = pb::ExportRequest {};
            fx().rt.block_on(async {
                let mut s = c.export(shuzhu::client::authorized(req, t).unwrap()).await?.into_inner();
                let mut bytes = Vec::new();
                while let Some(chunk) = s.message().await? {
                    bytes.extend_from_slice(&chunk.data);
                }
                let v = shuzhu_gateway::ledger::load_verifier(&public_key()).unwrap();
                let summary = shuzhu_gateway::ledger::verify_export(bytes.as_slice(), &v).unwrap();
                assert!(summary.entries >= 2);
                Ok(())
            })
        }),
    ];
    for (action, call) in calls {
        let (allowed, denied) = (recorded(action, "allow"), recorded(action, "deny"));
        let refused = call(&mut c, &fx().token("requester")).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{action}");
        call(&mut c, &fx().token("auditor")).unwrap_or_else(|s| panic!("{action}: {s}"));
        assert!(recorded(action, "deny") > denied, "{action}: the refused read is not recorded");
        assert!(recorded(action, "allow") > allowed, "{action}: the allowed read is not recorded");
    }
}

#[test]
fn show_and_prove_verify_against_the_signed_checkpoint_and_fail_with_another_key() {
    let seq = fx()
        .query(&fx().token("requester"), request("filed", &["region"], 202402, 202405, "诉源治理"))
        .unwrap()
        .audit_seq
        .to_string();
    let key = public_key();
    let key = key.to_str().unwrap();
    let (code, out) = audit_cli("auditor", &["show", &seq, "--key", key]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified: included in the signed checkpoint"), "{out}");
    assert!(out.contains(r#""indicator": "filed""#), "{out}");
    let (code, out) = audit_cli("auditor", &["prove", "--seq", &seq, "--key", key]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("inclusion proof of entry") && out.contains("verified against the signed checkpoint"));
    let (code, out) = audit_cli("auditor", &["prove", "--old", "1", "--key", key]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified: the tree of size"), "{out}");
    // A key that is not the gateway's rejects the same answer.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    let chain = shuzhu_gateway::ledger::AuditChain::open(&other).unwrap();
    drop(chain);
    let other_key = other.join(shuzhu_gateway::ledger::PUBLIC_KEY_FILE_NAME);
    let (code, out) = audit_cli("auditor", &["show", &seq, "--key", other_key.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does NOT verify"), "{out}");
    let (code, out) = audit_cli("requester", &["show", &seq, "--key", key]);
    assert_ne!(code, 0, "{out}");
}

#[test]
fn watch_accepts_growth_and_fails_loudly_on_a_forked_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("watch.json");
    let key = public_key();
    let args = ["watch", "--once", "--state", state.to_str().unwrap(), "--key", key.to_str().unwrap()];
    let (code, out) = audit_cli("auditor", &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("trusting the first checkpoint"), "{out}");
    fx().query(&fx().token("requester"), request("closed", &["year"], 202301, 202312, "诉源治理")).unwrap();
    let (code, out) = audit_cli("auditor", &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("consistent: size"), "{out}");
    // A log forked with the gateway's own key: a checkpoint of a tree the gateway never had.
    let forged_dir = dir.path().join("fork");
    let settings = shuzhu_gateway::config::LedgerSettings {
        checkpoint_key_file: Some(fx().ledger_dir().join(shuzhu_gateway::ledger::KEY_FILE_NAME)),
        ..Default::default()
    };
    let fork = shuzhu_gateway::ledger::AuditChain::open_with(&forged_dir, &settings).unwrap();
    for i in 0..3 {
        fork.append(format!(r#"{{"action":"query","decision":"allow","n":{i}}}"#)).unwrap();
    }
    let (_, note) = fork.ledger().checkpoint().unwrap().unwrap();
    drop(fork);
    let forged = serde_json::json!({ "note": note }).to_string();
    std::fs::write(&state, &forged).unwrap();
    let (code, out) = audit_cli("auditor", &args);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("INCONSISTENT"), "{out}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), forged, "the evidence is kept");
}

#[test]
fn purge_removes_old_plaintext_keeps_proofs_and_is_itself_an_entry() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let now = time::OffsetDateTime::now_utc();
    let at = |days: i64, marker: &str| {
        let t = (now - time::Duration::days(days)).format(&time::format_description::well_known::Rfc3339).unwrap();
        format!(r#"{{"time":"{t}","action":"query","decision":"allow","indicator":"closed","purpose":"{marker}"}}"#)
    };
    let chain = shuzhu_gateway::ledger::AuditChain::open(&ledger).unwrap();
    chain.append(at(400, "old-marker-one")).unwrap();
    chain.append(at(300, "old-marker-two")).unwrap();
    chain.append(at(30, "recent-marker")).unwrap();
    drop(chain);
    let before = (now - time::Duration::days(10)).date().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_shuzhu")).arg("audit").args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let l = ledger.to_str().unwrap();
    let (code, out) = run(&["purge", "--ledger", l, "--before", &before, "--operator", "retention-job"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("purged the plaintext of 2 entries") && out.contains("entry 4"), "{out}");
    let (code, out) = run(&["verify", "--ledger", l]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: 4 entries (2 purged)"), "{out}");
    let stored: String = std::fs::read_dir(ledger.join("segments"))
        .unwrap()
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap()).into_owned())
        .collect();
    assert!(!stored.contains("old-marker"), "purged plaintext is still on disk");
    assert!(stored.contains("recent-marker"), "an entry within retention lost its plaintext");
    let chain = shuzhu_gateway::ledger::AuditChain::open(&ledger).unwrap();
    let last = chain.list(4, 1).unwrap().remove(0);
    assert!(last.body.contains(r#""action":"audit.purge""#) && last.body.contains("retention-job"), "{}", last.body);
}

#[test]
fn report_flags_a_burst_and_a_differencing_pair() {
    let t = fx().token("requester");
    let mut seqs = Vec::new();
    for to in [202406, 202407] {
        seqs.push(fx().query(&t, request("filed", &["region"], 202401, to, "诉源治理")).unwrap().audit_seq);
    }
    for _ in 0..3 {
        seqs.push(fx().query(&t, request("closed", &["year"], 202001, 202412, "诉源治理")).unwrap().audit_seq);
    }
    let today = time::OffsetDateTime::now_utc().date();
    let (from, to) = ((today - time::Duration::days(1)).to_string(), (today + time::Duration::days(1)).to_string());
    let (code, out) =
        audit_cli("auditor", &["report", "--from", &from, "--to", &to, "--burst", "4", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let findings = r["findings"].as_array().unwrap();
    let has = |kind: &str, want: &[u64]| {
        findings.iter().any(|f| {
            f["kind"] == kind
                && want.iter().all(|s| f["seqs"].as_array().unwrap().iter().any(|v| v.as_u64() == Some(*s)))
        })
    };
    assert!(has("differencing", &seqs[..2]), "{out}");
    assert!(has("burst", &seqs), "{out}");
    assert!(r["access"].as_array().unwrap().iter().any(|a| a["agency"].is_string() && a["count"].as_u64() >= Some(1)));
    let (code, out) = audit_cli("auditor", &["report", "--from", &from, "--to", &to, "--format", "csv"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("section,agency,action,indicator,decision,count\n"), "{out}");
}

#[test]
fn list_filters_page_with_a_token_and_export_downloads_a_verified_copy() {
    let t = fx().token("requester");
    for to in [202402, 202403, 202404] {
        fx().query(&t, request("on_time_rate", &["region"], 202401, to, "诉源治理")).unwrap();
    }
    let mut c = audit_client();
    let auditor = fx().token("auditor");
    let mut seen = Vec::new();
    let mut page_token = String::new();
    for _ in 0..3 {
        let req = pb::ListEntriesRequest {
            indicator: "on_time_rate".into(),
            limit: 1,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let r =
            fx().rt.block_on(c.list_entries(shuzhu::client::authorized(req, &auditor).unwrap())).unwrap().into_inner();
        assert_eq!(r.entries.len(), 1);
        assert!(r.entries[0].body.contains(r#""indicator":"on_time_rate""#), "{}", r.entries[0].body);
        assert!(r.entries[0].time_ms > 0 && !r.entries[0].purged);
        seen.push(r.entries[0].seq);
        page_token = r.next_page_token;
        assert!(!page_token.is_empty());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    // A time range that ended before the ledger began holds nothing.
    let req = pb::ListEntriesRequest { to_time_ms: 1_000, ..Default::default() };
    let r = fx().rt.block_on(c.list_entries(shuzhu::client::authorized(req, &auditor).unwrap())).unwrap().into_inner();
    assert!(r.entries.is_empty() && r.next_page_token.is_empty());
    let bad =
        pb::ListEntriesRequest { indicator: "on_time_rate".into(), page_token: "zz".into(), ..Default::default() };
    let invalid = recorded("audit.list_entries", "invalid");
    let e = fx().rt.block_on(c.list_entries(shuzhu::client::authorized(bad, &auditor).unwrap())).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(recorded("audit.list_entries", "invalid") > invalid, "a refused read is recorded too");
    let req = pb::GetConsistencyProofRequest { old_size: 5, new_size: 2 };
    let e = fx().rt.block_on(c.get_consistency_proof(shuzhu::client::authorized(req, &auditor).unwrap())).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let req = pb::GetEntryRequest { seq: u64::MAX, tree_size: 0 };
    let e = fx().rt.block_on(c.get_entry(shuzhu::client::authorized(req, &auditor).unwrap())).unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit.jsonl");
    let key = public_key();
    let (code, text) =
        audit_cli("auditor", &["export", "--out", out.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("signed checkpoints verified"), "{text}");
    let export = std::fs::read_to_string(&out).unwrap();
    assert!(export.starts_with(r#"{"type":"header","format":"shuzhu-ledger-export-v1""#));
    assert!(export.contains("audit.export"), "the export read is recorded before the export is cut");
}

#[test]
fn a_graceful_shutdown_seals_every_entry_with_a_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = shuzhu_gen::GenConfig { courts: 1, cases_per_court: 50, seed: 3, ..Default::default() };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let specs = shuzhu::federation::discover(&data).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let prepared = shuzhu::federation::prepare(&dir.path().join("fed"), &specs, &mut |_| {}).unwrap();
    let running = rt.block_on(shuzhu::federation::start(&prepared)).unwrap();
    let token = shuzhu::client::read_token(&prepared.tokens["requester"]).unwrap();
    let req = request("filed", &["year"], 202001, 202412, "诉源治理");
    rt.block_on(async {
        let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
        shuzhu::client::query(ch, &token, req).await.unwrap();
    });
    rt.block_on(running.shutdown());
    let ledger_dir = prepared.dir.join("ledger");
    let notes = String::from_utf8_lossy(&std::fs::read(ledger_dir.join("checkpoints.log")).unwrap()).into_owned();
    let chain = shuzhu_gateway::ledger::AuditChain::open(&ledger_dir).unwrap();
    let (last, _) = chain.ledger().last_checkpoint().expect("no checkpoint after shutdown");
    assert_eq!(last.size, chain.len(), "entries left unsealed by the shutdown");
    assert!(!chain.is_empty());
    assert!(notes.contains(&format!("\n{}\n", chain.len())), "the sealing checkpoint was signed before this open");
}
