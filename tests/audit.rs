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
    let key = public_key();
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

/// The gateway's verifier key, as its operator hands it to auditors (kept beside the signing key,
/// outside the ledger directory).
fn public_key() -> std::path::PathBuf {
    fx().running.gateway.ledger.public_key_path().to_owned()
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
    let other_key = chain.public_key_path().to_owned();
    drop(chain);
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
    let defaults = shuzhu_gateway::config::LedgerSettings::default();
    let settings = shuzhu_gateway::config::LedgerSettings {
        checkpoint_key_file: Some(shuzhu_gateway::ledger::key_file(&fx().ledger_dir(), &defaults)),
        origin: Some(shuzhu_gateway::config::default_origin(shuzhu::federation::DEMO_GATEWAY)),
        ..defaults
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
    let key = chain.public_key_path().to_owned();
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
    let (code, out) = run(&["verify", "--ledger", l, "--key", key.to_str().unwrap()]);
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
    assert!(export.starts_with(r#"{"type":"header","format":"shuzhu-ledger-export-v2""#));
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

/// Runs `shuzhu ARGS` (no gateway connection).
fn run_cli(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn os(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<std::ffi::OsString> {
    args.iter().map(|a| a.as_ref().to_owned()).collect()
}

fn cli(args: &[std::ffi::OsString]) -> (i32, String) {
    run_cli(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>())
}

/// Every file under `dir` with its bytes: what a read-only command must leave as it found it.
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    crate::util::walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

/// A verifier key text file for a key the gateway never had.
fn foreign_key(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    use shuzhu_ledger::checkpoint::NoteSigner;
    let signer = NoteSigner::from_pkcs8(name, &NoteSigner::generate_pkcs8().unwrap()).unwrap();
    let path = dir.join("other.pub");
    std::fs::write(&path, format!("{}\n", signer.verifier().to_text())).unwrap();
    path
}

/// Security review, finding 1: cut entries already under a signed checkpoint, delete
/// `checkpoints.log`, verify with another key. Verification must fail loudly and sign nothing.
#[test]
fn verifying_a_cut_ledger_with_another_key_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let chain = shuzhu_gateway::ledger::AuditChain::open(&ledger).unwrap();
    for i in 0..20 {
        chain.append(format!(r#"{{"action":"query","decision":"allow","n":{i}}}"#)).unwrap();
    }
    let right = chain.public_key_path().to_owned();
    assert!(!right.starts_with(&ledger), "the verifier key is kept outside the ledger directory");
    drop(chain);
    let (code, out) = cli(&os(&[&"audit", &"verify", &"--ledger", &ledger, &"--key", &right]));
    assert_eq!(code, 0, "the intact ledger verifies: {out}");
    assert!(out.contains("ok: 20 entries"), "{out}");
    // The attacker cuts the last 5 entries (all under the signed checkpoint of 20) and the checkpoints.
    let segments = ledger.join("segments");
    let first = shuzhu_ledger::segment::list_segments(&segments).unwrap()[0];
    let records = shuzhu_ledger::segment::read_segment(&segments, first).unwrap();
    let seg = shuzhu_ledger::segment::segment_path(&segments, first);
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(records[15].0.offset).unwrap();
    std::fs::remove_file(ledger.join("checkpoints.log")).unwrap();
    let other = foreign_key(dir.path(), "shuzhu-gateway/audit");
    let before = snapshot(&ledger);
    let (code, out) = cli(&os(&[&"audit", &"verify", &"--ledger", &ledger, &"--key", &other]));
    assert_eq!(code, 2, "a cut ledger verified: {out}");
    assert!(out.contains("does not verify"), "{out}");
    assert!(!out.contains("ok:"), "{out}");
    assert_eq!(snapshot(&ledger), before, "verification changed the ledger directory (signed or repaired something)");
    assert!(!ledger.join("checkpoints.log").exists(), "verification signed a checkpoint");
    // With the gateway's own key it fails as loudly: no signed checkpoint covers the entries.
    let (code, out) = cli(&os(&[&"audit", &"verify", &"--ledger", &ledger, &"--key", &right]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("checkpoints.log is missing or holds no signed checkpoint"), "{out}");
    assert_eq!(snapshot(&ledger), before);
    // No key given: refused before anything is read (a key in the directory is never used).
    let (code, out) = cli(&os(&[&"audit", &"verify", &"--ledger", &ledger]));
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("--key"), "{out}");
    // The gateway refuses to start on it rather than re-seal the cut log.
    let e = shuzhu_gateway::ledger::AuditChain::open(&ledger).unwrap_err().to_string();
    assert!(e.contains("no signed checkpoint") && e.contains("shuzhu audit init"), "{e}");
    assert!(!ledger.join("checkpoints.log").exists(), "the gateway signed a checkpoint");
    // Cut but with the checkpoints kept: the signed checkpoint claims entries that are gone.
    let dir2 = tempfile::tempdir().unwrap();
    let ledger2 = dir2.path().join("ledger");
    let chain = shuzhu_gateway::ledger::AuditChain::open(&ledger2).unwrap();
    for i in 0..20 {
        chain.append(format!(r#"{{"action":"query","n":{i}}}"#)).unwrap();
    }
    let right2 = chain.public_key_path().to_owned();
    drop(chain);
    let segments = ledger2.join("segments");
    let first = shuzhu_ledger::segment::list_segments(&segments).unwrap()[0];
    let records = shuzhu_ledger::segment::read_segment(&segments, first).unwrap();
    let seg = shuzhu_ledger::segment::segment_path(&segments, first);
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(records[15].0.offset).unwrap();
    let (code, out) = cli(&os(&[&"audit", &"verify", &"--ledger", &ledger2, &"--key", &right2]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("claims 20 entries"), "{out}");
}

/// Security review, finding 3: an entry rewritten as "purged" (its `fields` set to null or
/// removed) in an export verifies only if a recorded purge covers it.
#[test]
fn an_export_passing_recent_entries_off_as_purged_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let chain = shuzhu_gateway::ledger::AuditChain::open(&ledger).unwrap();
    for i in 0..4 {
        chain.append(format!(r#"{{"action":"query","decision":"allow","indicator":"closed","n":{i}}}"#)).unwrap();
    }
    let export = dir.path().join("audit.jsonl");
    chain.export(std::fs::File::create(&export).unwrap()).unwrap();
    let chain_key = chain.public_key_path().to_owned();
    drop(chain);
    let key = dir.path().join("gateway.pub");
    std::fs::copy(chain_key, &key).unwrap();
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (code, out) = cli(&os(&[&"audit", &"verify", &"--export", &export, &"--key", &key]));
    assert_eq!(code, 0, "{out}");
    // Entry line 3 (the third entry) with its fields nulled, then with its fields removed.
    let mut entry: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    entry["fields"] = serde_json::Value::Null;
    let nulled = entry.to_string();
    entry.as_object_mut().unwrap().remove("fields");
    let removed = entry.to_string();
    for forged in [nulled, removed] {
        let mut l = lines.clone();
        l[3] = &forged;
        std::fs::write(&export, l.join("\n") + "\n").unwrap();
        let (code, out) = cli(&os(&[&"audit", &"verify", &"--export", &export, &"--key", &key]));
        assert_eq!(code, 2, "a recent entry passed off as purged verified: {forged}\n{out}");
        assert!(out.contains("does not verify"), "{out}");
    }
    // The same forgery in the ledger directory: entry 3's record rewritten without its plaintext.
    let segments = ledger.join("segments");
    let first = shuzhu_ledger::segment::list_segments(&segments).unwrap()[0];
    let seg = shuzhu_ledger::segment::segment_path(&segments, first);
    let records = shuzhu_ledger::segment::read_segment(&segments, first).unwrap();
    let (loc, payload) = &records[2];
    let leaf = shuzhu_ledger::entry::decode_record(payload).unwrap().leaf;
    let mut purged = vec![0u8];
    purged.extend_from_slice(&(leaf.len() as u32).to_be_bytes());
    purged.extend_from_slice(&leaf);
    let mut frame = Vec::new();
    shuzhu_ledger::segment::encode_frame(&purged, &mut frame);
    let mut bytes = std::fs::read(&seg).unwrap();
    let end = (loc.offset + shuzhu_ledger::segment::FRAME_HEADER_LEN) as usize + payload.len();
    bytes.splice(loc.offset as usize..end, frame);
    std::fs::write(&seg, bytes).unwrap();
    let (code, out) = cli(&os(&[&"audit", &"verify", &"--ledger", &ledger, &"--key", &key]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("entry 3 is shown as purged, but no recorded purge covers it"), "{out}");
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// Security review, finding 4: secrets are born 0600 in 0700 directories, and a node or gateway
/// with a secret others may read refuses to start, naming the file and the fix.
#[test]
fn secrets_are_created_owner_only_and_a_loose_secret_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out) = cli(&os(&[&"pki", &"init", &"--dir", &d.join("pki"), &"--gateway", &"gw-t", &"--node", &"n-t"]));
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(&os(&[&"token", &"keygen", &"--out", &d.join("issuer")]));
    assert_eq!(code, 0, "{out}");
    let jwt = d.join("tokens/a.jwt");
    std::fs::create_dir_all(d.join("tokens")).unwrap();
    let (code, out) = cli(&os(&[
        &"token",
        &"issue",
        &"--key",
        &d.join("issuer/issuer.key"),
        &"--issuer",
        &"https://idp",
        &"--audience",
        &"gw",
        &"--sub",
        &"a",
        &"--agency",
        &"xm-sfj",
        &"--role",
        &"requester",
        &"--out",
        &jwt,
    ]));
    assert_eq!(code, 0, "{out}");
    let p = &fx().prepared;
    let mut secrets = vec![
        d.join("pki/ca.key"),
        d.join("pki/gateways/gw-t.key"),
        d.join("pki/nodes/n-t.key"),
        d.join("pki/nodes/n-t.journal.pk8"),
        d.join("issuer/issuer.key"),
        jwt,
        p.issuer_key.clone(),
        p.dir.join("cell-key.secret"),
    ];
    secrets.extend(p.tokens.values().cloned());
    secrets.extend(p.nodes.iter().map(|(_, config)| config.parent().unwrap().join("pseudonym.key")));
    for s in &secrets {
        assert_eq!(mode(s), 0o600, "{} is not 0600", s.display());
    }
    for holder in [d.join("pki"), d.join("pki/gateways"), d.join("pki/nodes"), d.join("issuer")] {
        assert_eq!(mode(&holder), 0o700, "{} is not 0700", holder.display());
    }

    // A gateway whose cell-key secret others may read refuses to start.
    use std::os::unix::fs::PermissionsExt;
    let secret = d.join("cell-key.secret");
    std::fs::write(&secret, "00".repeat(32)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let gw = std::fs::read_to_string(p.dir.join("gateway.toml"))
        .unwrap()
        .replace(r#"policy = "policy.toml""#, &format!("policy = {:?}", p.policy))
        .replace(r#"ledger_dir = "ledger""#, &format!("ledger_dir = {:?}", d.join("gw-ledger")))
        .replace(r#"cell_key_secret = "cell-key.secret""#, &format!("cell_key_secret = {secret:?}"));
    let gw_config = d.join("gateway.toml");
    std::fs::write(&gw_config, gw).unwrap();
    let e = shuzhu_gateway::config::GatewayConfig::load(&gw_config).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains(&format!("chmod 600 {}", secret.display())), "{e}");
    // A node whose pseudonym key others may read refuses to start.
    let (_, node_toml) = &p.nodes[0];
    let key = d.join("pseudonym.key");
    std::fs::copy(node_toml.parent().unwrap().join("pseudonym.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let node = std::fs::read_to_string(node_toml)
        .unwrap()
        .replace(r#"pseudonym_key_file = "pseudonym.key""#, &format!("pseudonym_key_file = {key:?}"));
    let node_config = d.join("node.toml");
    std::fs::write(&node_config, node).unwrap();
    let e = shuzhu_node::config::NodeConfig::load(&node_config).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains(&format!("chmod 600 {}", key.display())), "{e}");
}

/// Finding 11: the checkpoint origin is this deployment's own, a note with a second, invalid
/// signature by the trusted key is refused, and one numbering (from 1) names an entry in the
/// answer, `audit show`, and the export.
#[test]
fn origin_is_per_deployment_a_bad_second_signature_is_refused_and_entries_are_numbered_alike() {
    let resp = fx().query(&fx().token("requester"), request("closed", &["year"], 202301, 202306, "诉源治理")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("audit.jsonl");
    let key = public_key();
    let (code, out) = audit_cli("auditor", &["export", "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let origin = format!("{}.shuzhu/audit", shuzhu::federation::DEMO_GATEWAY);
    assert_eq!(lines[0]["origin"], origin.as_str(), "{}", lines[0]);
    let note = lines.last().unwrap()["note"].as_str().unwrap().to_owned();
    assert!(note.starts_with(&format!("{origin}\n")), "{note}");

    // The entry the answer names is the export's entry of the same number, and `audit show`'s.
    let listed = fx().list_entries(&fx().token("auditor"), resp.audit_seq, 1).unwrap();
    let body = &listed.entries[0].body;
    let exported = lines
        .iter()
        .find(|l| l["type"] == "entry" && l["seq"].as_u64() == Some(resp.audit_seq))
        .expect("no export entry with the answer's number");
    let value = exported["fields"].as_array().unwrap().iter().find(|f| f["name"] == "body").unwrap()["value"].clone();
    assert_eq!(value.as_str(), Some(body.as_str()), "export entry {} is another entry", resp.audit_seq);
    let (code, out) = audit_cli("auditor", &["show", &resp.audit_seq.to_string(), "--key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("entry {} ", resp.audit_seq)), "{out}");

    // A second signature line by the trusted key that does not verify rejects the note.
    let (_, sig_line) = note.trim_end().rsplit_once('\n').unwrap();
    let (name_part, b64) = sig_line.rsplit_once(' ').unwrap();
    use base64::Engine as _;
    let mut blob = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    blob[10] ^= 1;
    let bad = format!("{note}{name_part} {}\n", base64::engine::general_purpose::STANDARD.encode(blob));
    let mut forged: Vec<String> = text.lines().map(str::to_owned).collect();
    *forged.last_mut().unwrap() = serde_json::json!({"type": "checkpoint", "note": bad}).to_string();
    std::fs::write(&export, forged.join("\n") + "\n").unwrap();
    let (code, out) = cli(&os(&[&"audit", &"verify", &"--export", &export, &"--key", &key]));
    assert_eq!(code, 2, "a note with an invalid second signature verified: {out}");
}
