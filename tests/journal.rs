//! Release journals and receipts in a federation of their own (three small courts: one whose
//! receipt key is swapped for a key the gateway does not know, one that refuses the requesting
//! agency): the gateway records every verified receipt and counts the forged node missing; the
//! refusing node journals its refusals; `shuzhu audit reconcile` agrees with an intact
//! ledger and finds a release deleted from a ledger copy and one deleted from a journal copy.

use std::path::Path;
use std::process::Command;

use shuzhu::federation;
use shuzhu_gateway::ledger::AuditChain;
use shuzhu_ledger::receipt::ReceiptSigner;
use shuzhu_node::journal::{self, ReleaseJournal};
use shuzhu_proto::v1 as pb;

use crate::util::request;

fn shuzhu(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn receipts_are_recorded_forgeries_refused_and_reconcile_finds_deleted_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = shuzhu_gen::GenConfig { courts: 3, cases_per_court: 200, seed: 11, ..Default::default() };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let specs = federation::discover(&data).unwrap();
    let prepared = federation::prepare(&tmp.path().join("fed"), &specs, &mut |_| {}).unwrap();
    let courts: Vec<String> =
        prepared.nodes.iter().map(|(id, _)| id.clone()).filter(|id| id.starts_with("court-")).collect();
    let (good, forged, refusing) = (courts[0].clone(), courts[1].clone(), courts[2].clone());
    let config = &prepared.nodes.iter().find(|(id, _)| *id == refusing).unwrap().1;
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, text.replace(r#"agencies = ["*"]"#, r#"agencies = ["xm-court-mgmt"]"#)).unwrap();
    // The forged node signs with a key of its own making, not the one the gateway was given.
    let (key, _) = prepared.pki.journal_key(&forged);
    let (k2, p2) = (tmp.path().join("other.pk8"), tmp.path().join("other.pub"));
    ReceiptSigner::generate_files(&k2, &p2).unwrap();
    std::fs::copy(&k2, &key).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let running = rt.block_on(federation::start(&prepared)).unwrap();
    let token = shuzhu::client::read_token(&prepared.tokens["requester"]).unwrap();
    let mut seqs = Vec::new();
    for (ind, by) in [("closed", "region"), ("filed", "year"), ("closed", "year"), ("filed", "region")] {
        let resp = rt
            .block_on(async {
                let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
                shuzhu::client::query(ch, &token, request(ind, &[by], 202001, 202412, "诉源治理")).await
            })
            .unwrap();
        let cov = resp.coverage.unwrap();
        assert_eq!(
            cov.missing,
            vec![
                pb::MissingNode { node: forged.clone(), reason: "receipt invalid".into() },
                pb::MissingNode {
                    node: refusing.clone(),
                    reason: format!(
                        "node {refusing} local policy: this node does not answer for the requesting agency"
                    )
                },
            ],
        );
        seqs.push(resp.audit_seq);
    }
    let ledger = &running.gateway.ledger;
    let mut request_ids = Vec::new();
    for seq in &seqs {
        let body: serde_json::Value = serde_json::from_str(&ledger.list(*seq, 1).unwrap()[0].body).unwrap();
        request_ids.push(body["request_id"].as_str().unwrap().to_string());
        let nodes = body["nodes"].as_array().unwrap();
        let g = nodes.iter().find(|n| n["node"] == good.as_str()).unwrap();
        assert_eq!(g["status"], "answered");
        assert_eq!(g["receipt"]["verified"], true, "{g}");
        assert_eq!(g["receipt"]["signature"].as_str().unwrap().len(), 128);
        let f = nodes.iter().find(|n| n["node"] == forged.as_str()).unwrap();
        assert_eq!((f["status"].as_str(), f["reason"].as_str()), (Some("missing"), Some("receipt invalid")));
        assert!(f.get("receipt").is_none());
    }
    // The receipts name the journal records of exactly these releases.
    let good_store = tmp.path().join("fed/nodes").join(&good).join("store");
    let (records, chain) = journal::load(&good_store).unwrap();
    assert_eq!(chain.releases as usize, seqs.len());
    for (seq, rid) in seqs.iter().zip(&request_ids) {
        let body: serde_json::Value = serde_json::from_str(&ledger.list(*seq, 1).unwrap()[0].body).unwrap();
        let g = body["nodes"].as_array().unwrap().iter().find(|n| n["node"] == good.as_str()).unwrap().clone();
        let r = &records[g["receipt"]["journal_seq"].as_u64().unwrap() as usize];
        assert_eq!(&r.record.request_id, rid);
        assert_eq!(r.hash, g["receipt"]["record_hash"].as_str().unwrap());
        assert_eq!(r.record.release_digest, g["release_digest"].as_str().unwrap());
    }
    let export = tmp.path().join("audit.jsonl");
    ledger.export(std::fs::File::create(&export).unwrap()).unwrap();
    let key = ledger.public_key_path().to_owned();
    let bodies: Vec<String> = ledger.list(1, 1000).unwrap().into_iter().map(|e| e.body).collect();
    rt.block_on(running.shutdown());

    let (code, out) = shuzhu(&["node", "journal", "verify", "--journal", p(&good_store)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{} releases", seqs.len())), "{out}");
    let refusing_store = tmp.path().join("fed/nodes").join(&refusing).join("store");
    let (code, out) = shuzhu(&["node", "journal", "verify", "--journal", p(&refusing_store)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 releases, 4 refusals"), "the refusals are journalled: {out}");
    let (code, out) =
        shuzhu(&["audit", "reconcile", "--journal", p(&refusing_store), "--export", p(&export), "--key", p(&key)]);
    assert_eq!(code, 0, "nothing released, nothing recorded: {out}");
    let (code, out) =
        shuzhu(&["audit", "reconcile", "--journal", p(&good_store), "--export", p(&export), "--key", p(&key)]);
    assert_eq!(code, 0, "an intact ledger agrees with the journal: {out}");
    assert!(out.contains("4 matched, 4 receipts checked"), "{out}");
    // The same from the node's own export of its journal.
    let good_config = &prepared.nodes.iter().find(|(id, _)| *id == good).unwrap().1;
    let jexport = tmp.path().join("good.journal.jsonl");
    let (code, out) = shuzhu(&["node", "journal", "export", "--config", p(good_config), "--out", p(&jexport)]);
    assert_eq!(code, 0, "{out}");
    let (code, out) =
        shuzhu(&["audit", "reconcile", "--journal", p(&jexport), "--export", p(&export), "--key", p(&key)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 matched, 4 receipts checked"), "{out}");
    // An export altered after it was written is refused before anything in it is compared: here
    // the first query's request id, edited out of its entry, would otherwise show up as a
    // release missing from the ledger.
    let tampered = tmp.path().join("audit-tampered.jsonl");
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(text.contains(&request_ids[0]));
    std::fs::write(&tampered, text.replacen(&request_ids[0], "0123456789abcdef", 1)).unwrap();
    let (code, out) =
        shuzhu(&["audit", "reconcile", "--journal", p(&good_store), "--export", p(&tampered), "--key", p(&key)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not verify") && !out.contains("matched"), "{out}");
    // And an export cannot be reconciled without the key to verify it with.
    let (code, out) = shuzhu(&["audit", "reconcile", "--journal", p(&good_store), "--export", p(&export)]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("--key"), "{out}");
    // The forged node released (and journalled) what the gateway refused to count.
    let forged_store = tmp.path().join("fed/nodes").join(&forged).join("store");
    let (code, out) =
        shuzhu(&["audit", "reconcile", "--journal", p(&forged_store), "--export", p(&export), "--key", p(&key)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("receipt invalid") && out.contains("4 discrepancies"), "{out}");

    // A ledger rebuilt without the second query's entry.
    let copy = tmp.path().join("ledger-copy");
    let chain = AuditChain::open(&copy).unwrap();
    for b in bodies.iter().filter(|b| !b.contains(&request_ids[1])) {
        chain.append(b.clone()).unwrap();
    }
    drop(chain);
    let (code, out) = shuzhu(&["audit", "reconcile", "--journal", p(&good_store), "--ledger", p(&copy)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing from ledger") && out.contains(&request_ids[1]), "{out}");
    assert!(out.contains("1 discrepancies"), "{out}");

    // A journal rebuilt (chain and all) without the third query's release.
    let jcopy = tmp.path().join("journal-copy");
    let (j, _) = ReleaseJournal::open(&jcopy, &good, None).unwrap();
    for r in records.iter().filter(|r| r.record.request_id != request_ids[2]) {
        j.append(&r.record.release()).unwrap();
    }
    drop(j);
    let (code, out) = shuzhu(&["node", "journal", "verify", "--journal", p(&jcopy)]);
    assert_eq!(code, 0, "the rebuilt chain itself verifies: {out}");
    let (code, out) = shuzhu(&[
        "audit",
        "reconcile",
        "--journal",
        p(&jcopy),
        "--export",
        p(&export),
        "--key",
        p(&key),
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let missing: Vec<&serde_json::Value> =
        doc["discrepancies"].as_array().unwrap().iter().filter(|d| d["kind"] == "missing_from_journal").collect();
    assert_eq!(missing.len(), 1, "{out}");
    assert_eq!(missing[0]["request_id"], request_ids[2].as_str());
    // The releases after it moved up one place, so their recorded receipts no longer name them.
    assert!(doc["discrepancies"].as_array().unwrap().iter().any(|d| d["kind"] == "receipt_mismatch"), "{out}");
}
