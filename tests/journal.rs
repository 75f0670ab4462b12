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
    // The gateway says the key changed (naming both keys) rather than that the receipt is forged.
    let key_id = |pub_file: &Path| {
        let bytes = hex::decode(std::fs::read_to_string(pub_file).unwrap().trim()).unwrap();
        hex::encode(&ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()[..8])
    };
    let changed = format!(
        "receipt key changed: node {forged} now signs with key {}, not the configured {}",
        key_id(&p2),
        key_id(&prepared.pki.journal_key(&forged).1)
    );

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
                pb::MissingNode { node: forged.clone(), reason: changed.clone() },
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
        assert_eq!((f["status"].as_str(), f["reason"].as_str()), (Some("missing"), Some(changed.as_str())));
        assert!(f.get("receipt").is_none());
    }
    // The receipts name the journal records of exactly these releases.
    let good_store = tmp.path().join("fed/nodes").join(&good).join("journal");
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
    let refusing_store = tmp.path().join("fed/nodes").join(&refusing).join("journal");
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
    let forged_store = tmp.path().join("fed/nodes").join(&forged).join("journal");
    let (code, out) =
        shuzhu(&["audit", "reconcile", "--journal", p(&forged_store), "--export", p(&export), "--key", p(&key)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("receipt key changed") && out.contains("4 discrepancies"), "{out}");

    // A ledger rebuilt without the second query's entry.
    let copy = tmp.path().join("ledger-copy");
    let chain = AuditChain::open(&copy).unwrap();
    for b in bodies.iter().filter(|b| !b.contains(&request_ids[1])) {
        chain.append(b.clone()).unwrap();
    }
    let copy_key = chain.public_key_path().to_owned();
    drop(chain);
    // A ledger directory is read only against a key from outside it, read-only: without `--key` it
    // is refused; with another key it does not verify; nothing in it changes either way.
    let snapshot = |dir: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() { stack.push(path) } else { files.push((path.clone(), std::fs::read(&path).unwrap())) }
            }
        }
        files.sort();
        files
    };
    let before = snapshot(&copy);
    let (code, out) = shuzhu(&["audit", "reconcile", "--journal", p(&good_store), "--ledger", p(&copy)]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("--key"), "a ledger directory needs the verifier key: {out}");
    let (code, out) =
        shuzhu(&["audit", "reconcile", "--journal", p(&good_store), "--ledger", p(&copy), "--key", p(&key)]);
    assert_eq!(code, 2, "the copy is not signed by the gateway's key: {out}");
    assert!(out.contains("does not verify") && !out.contains("matched"), "{out}");
    let (code, out) =
        shuzhu(&["audit", "reconcile", "--journal", p(&good_store), "--ledger", p(&copy), "--key", p(&copy_key)]);
    assert_eq!(snapshot(&copy), before, "reconcile changed nothing in the ledger directory");
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

/// A small federation of its own under `dir` (courts of 80 cases, plus the justice and statistics
/// nodes), and the id and config file of its first court.
fn small(dir: &Path, courts: usize) -> (federation::Prepared, String, std::path::PathBuf) {
    let data = dir.join("data");
    let cfg = shuzhu_gen::GenConfig { courts, cases_per_court: 80, seed: 5, ..Default::default() };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let specs = federation::discover(&data).unwrap();
    let prepared = federation::prepare(&dir.join("fed"), &specs, &mut |_| {}).unwrap();
    let (id, config) = prepared.nodes.iter().find(|(id, _)| id.starts_with("court-")).unwrap().clone();
    (prepared, id, config)
}

fn release(i: u32) -> journal::Release {
    journal::Release {
        kind: journal::KIND_RELEASE,
        request_id: format!("req-{i}"),
        gateway: federation::DEMO_GATEWAY.into(),
        agency: "xm-sfj".into(),
        dataset: "cases".into(),
        measures: vec!["cases.filed".into()],
        period: "202401..202412".into(),
        group_by: vec!["year".into()],
        filters: vec![],
        release_digest: format!("{i:064x}"),
        reason: String::new(),
    }
}

#[test]
fn a_second_node_on_one_store_is_refused_naming_the_holder_and_the_journal_lives_outside_the_store() {
    use shuzhu_node::config::NodeConfig;
    use shuzhu_node::service::NodeState;
    let tmp = tempfile::tempdir().unwrap();
    let (_prepared, _id, config_path) = small(tmp.path(), 1);
    let config = NodeConfig::load(&config_path).unwrap();
    let first = NodeState::open(&config).unwrap();
    let pid = std::process::id();
    let err = match NodeState::open(&config) {
        Ok(_) => panic!("a second node opened a store that a running node holds"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("in use by process {pid}")), "{err}");
    assert!(err.contains(&config.store.display().to_string()), "{err}");
    // The same from another process: `node serve` on the store refuses to start.
    let (code, out) = shuzhu(&["node", "serve", "--config", p(&config_path)]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("in use by process {pid}")), "{out}");
    // The journal is beside the store, not inside it, and locked too.
    let journal_dir = config_path.parent().unwrap().join("journal");
    assert!(!config.store.join("journal").exists());
    assert!(journal_dir.join(shuzhu_node::lock::LOCK_FILE).exists());
    let err = ReleaseJournal::open(&journal_dir, &_id, None).unwrap_err().to_string();
    assert!(err.contains(&format!("in use by process {pid}")) && err.contains("release journal"), "{err}");
    drop(first);
    // Let go when the node stops.
    drop(NodeState::open(&config).unwrap());
}

#[test]
fn a_chain_broken_at_the_tail_is_repaired_after_showing_what_is_cut_and_an_old_journal_is_moved_out() {
    use shuzhu_ledger::segment;
    use shuzhu_node::config::NodeConfig;
    use shuzhu_node::service::NodeState;
    let tmp = tempfile::tempdir().unwrap();
    let (_prepared, id, config_path) = small(tmp.path(), 1);
    let cfg = p(&config_path);
    let config = NodeConfig::load(&config_path).unwrap();
    drop(NodeState::open(&config).unwrap());
    let journal_dir = config_path.parent().unwrap().join("journal");
    // Two writers on one journal, as two nodes on one store once made: each appends its own record 3.
    let (j, _) = ReleaseJournal::open(&journal_dir, &id, None).unwrap();
    for i in 0..3 {
        j.append(&release(i)).unwrap();
    }
    drop(j);
    let seg = segment::segment_path(&journal_dir, 0);
    let common = std::fs::metadata(&seg).unwrap().len() as usize;
    let twin = tmp.path().join("twin");
    std::fs::create_dir(&twin).unwrap();
    std::fs::copy(&seg, segment::segment_path(&twin, 0)).unwrap();
    let (j, _) = ReleaseJournal::open(&journal_dir, &id, None).unwrap();
    j.append(&release(3)).unwrap();
    j.append(&release(4)).unwrap();
    drop(j);
    let (j, _) = ReleaseJournal::open(&twin, &id, None).unwrap();
    j.append(&release(33)).unwrap();
    drop(j);
    let other = std::fs::read(segment::segment_path(&twin, 0)).unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&other[common..]);
    std::fs::write(&seg, &bytes).unwrap();

    // The node fails closed; verify says where.
    let err = match NodeState::open(&config) {
        Ok(_) => panic!("a node opened a broken journal"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("broken at record 5"), "{err}");
    let (code, out) = shuzhu(&["node", "journal", "verify", "--config", cfg]);
    assert_eq!(code, 2, "{out}");
    // Repair shows what it would cut and changes nothing without --yes.
    let (code, out) = shuzhu(&["node", "journal", "repair", "--config", cfg]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the first 5 records verify") && out.contains("record is out of place"), "{out}");
    assert!(out.contains("record 5: seq 3 release") && out.contains("request req-33"), "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
    // With --yes it cuts the broken tail, keeping a copy of the whole journal.
    let (code, out) = shuzhu(&["node", "journal", "repair", "--config", cfg, "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cut 1 records, 5 kept"), "{out}");
    let copies: Vec<_> = std::fs::read_dir(journal_dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("journal.broken-"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(
        std::fs::read(segment::segment_path(&copies[0], 0)).unwrap(),
        bytes,
        "the copy is the journal as it was"
    );
    let (code, out) = shuzhu(&["node", "journal", "verify", "--config", cfg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: 5 records (5 releases, 0 refusals)"), "{out}");
    let (code, out) = shuzhu(&["node", "journal", "repair", "--config", cfg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to cut"), "{out}");
    // The node starts again and appends after the kept records.
    let state = NodeState::open(&config).unwrap();
    drop(state);

    // A journal in the old place (inside the store) is found by the journal commands and moved out by
    // the node.
    let legacy = config.store.join("journal");
    std::fs::remove_file(journal_dir.join(shuzhu_node::lock::LOCK_FILE)).unwrap();
    std::fs::rename(&journal_dir, &legacy).unwrap();
    let (code, out) = shuzhu(&["node", "journal", "verify", "--config", cfg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: 5 records"), "{out}");
    drop(NodeState::open(&config).unwrap());
    assert!(!legacy.exists(), "moved out of the store");
    assert_eq!(journal::load(&journal_dir).unwrap().1.records, 5);
}
