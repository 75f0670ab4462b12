//! The ledger records every answered query before the answer leaves, and `shuzhu audit verify`
//! detects a single flipped byte anywhere in an export of it.

use std::process::Command;

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
