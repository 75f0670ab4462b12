//! `shuzhu audit reconcile`: compares one node's release journal with the gateway's audit ledger
//! and reports every release missing from either side.
//!
//! A release is matched by request id and release digest: the journal's `release` records (from
//! the ledger's gateways) against the ledger entries that record the node as `answered`. Where the
//! ledger holds the node's receipt, the journal record it names (seq and hash) must be that
//! release. The journal's own hash chain is verified first, and an export is verified (as
//! `shuzhu audit verify --export` does) before anything in it is trusted. Exit status: 0 when both
//! sides agree, 1 when any release is missing or a receipt does not match, 2 when an input cannot
//! be read or does not verify.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use shuzhu_gateway::ledger::ExportField;
use shuzhu_node::journal::{self, KIND_RELEASE, ReadRecord};

use crate::output::Format;

/// Arguments of `shuzhu audit reconcile`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  shuzhu audit reconcile --journal ./demo/nodes/court-350203/store --ledger ./demo/ledger --key ./demo/ledger.keys/checkpoint-key.pub\n  shuzhu audit reconcile --journal court-350203.journal.jsonl --export audit.jsonl --key checkpoint-key.pub --format json\n\nExit status: 0 when journal and ledger agree, 1 when a release is missing from either side, 2 when an input cannot be read, the journal's chain is broken or the export does not verify."
)]
pub(crate) struct Args {
    /// The node's journal: its store directory, its journal directory, or a `node journal export` file.
    #[arg(long)]
    journal: PathBuf,
    /// Ledger directory, read offline and read-only, verified with `--key` first.
    #[arg(long, required_unless_present = "export", conflicts_with = "export", requires = "key")]
    ledger: Option<PathBuf>,
    /// Audit export (JSON lines, `shuzhu audit export`) to read instead; verified with `--key` first.
    #[arg(long, requires = "key")]
    export: Option<PathBuf>,
    /// Verifier key file of the gateway's checkpoints (`checkpoint-key.pub`, obtained outside the
    /// ledger directory), to verify `--ledger` or `--export` before anything is compared.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Node id (default: the one the journal names; needed only for an empty journal).
    #[arg(long)]
    node: Option<String>,
    /// table or json.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// One release found on one side only, or a receipt that names another record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Discrepancy {
    /// `missing_from_ledger`, `missing_from_journal` or `receipt_mismatch`.
    pub(crate) kind: &'static str,
    /// Request id.
    pub(crate) request_id: String,
    /// Release digest.
    pub(crate) release_digest: String,
    /// Journal seq, when the journal has it.
    pub(crate) journal_seq: Option<u64>,
    /// Ledger seq (1-based), when the ledger has it.
    pub(crate) ledger_seq: Option<u64>,
    /// What else is known.
    pub(crate) note: String,
}

/// The outcome of a comparison.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reconciliation {
    /// Releases in the journal considered (from the ledger's gateways).
    pub(crate) journal_releases: usize,
    /// Releases of the node the ledger records.
    pub(crate) ledger_releases: usize,
    /// Releases found on both sides.
    pub(crate) matched: usize,
    /// Ledger receipts checked against the journal.
    pub(crate) receipts_checked: usize,
    /// Ledger entries whose plaintext was purged (cannot be compared).
    pub(crate) purged: usize,
    /// Everything that does not match.
    pub(crate) discrepancies: Vec<Discrepancy>,
}

struct LedgerRelease {
    seq: u64,
    request_id: String,
    digest: String,
    receipt: Option<(u64, String)>,
}

/// Compares `node`'s journal with the ledger's entries (seq, canonical JSON body; `None` once purged).
pub(crate) fn reconcile(records: &[ReadRecord], entries: &[(u64, Option<String>)], node: &str) -> Reconciliation {
    let mut out = Reconciliation::default();
    let mut gateways = BTreeSet::new();
    let mut answered = Vec::new();
    // request id → why the ledger counts the node missing.
    let mut missing: BTreeMap<String, String> = BTreeMap::new();
    for (seq, body) in entries {
        let Some(body) = body else {
            out.purged += 1;
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(body) else { continue };
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(g) = v.get("gateway").and_then(Value::as_str) {
            gateways.insert(g.to_string());
        }
        let request_id = s(&v, "request_id");
        for n in v.get("nodes").and_then(Value::as_array).into_iter().flatten() {
            if n.get("node").and_then(Value::as_str) != Some(node) {
                continue;
            }
            match n.get("status").and_then(Value::as_str) {
                Some("answered") => answered.push(LedgerRelease {
                    seq: *seq,
                    request_id: request_id.clone(),
                    digest: s(n, "release_digest"),
                    receipt: n.get("receipt").and_then(|r| {
                        Some((r.get("journal_seq")?.as_u64()?, r.get("record_hash")?.as_str()?.to_string()))
                    }),
                }),
                _ => {
                    missing.insert(request_id.clone(), s(n, "reason"));
                }
            }
        }
    }
    let releases: Vec<&ReadRecord> = records
        .iter()
        .filter(|r| r.record.kind == KIND_RELEASE && r.record.node == node)
        .filter(|r| gateways.is_empty() || gateways.contains(&r.record.gateway))
        .collect();
    out.journal_releases = releases.len();
    out.ledger_releases = answered.len();
    let in_ledger: BTreeSet<(&str, &str)> =
        answered.iter().map(|a| (a.request_id.as_str(), a.digest.as_str())).collect();
    let in_journal: BTreeMap<(&str, &str), &ReadRecord> =
        releases.iter().map(|r| ((r.record.request_id.as_str(), r.record.release_digest.as_str()), *r)).collect();
    for r in &releases {
        let key = (r.record.request_id.as_str(), r.record.release_digest.as_str());
        if in_ledger.contains(&key) {
            out.matched += 1;
            continue;
        }
        let note = match missing.get(&r.record.request_id) {
            Some(reason) => format!("the ledger records the node as missing ({reason})"),
            None => "no ledger entry records this release".into(),
        };
        out.discrepancies.push(Discrepancy {
            kind: "missing_from_ledger",
            request_id: r.record.request_id.clone(),
            release_digest: r.record.release_digest.clone(),
            journal_seq: Some(r.record.seq),
            ledger_seq: None,
            note,
        });
    }
    for a in &answered {
        let Some(rec) = in_journal.get(&(a.request_id.as_str(), a.digest.as_str())) else {
            out.discrepancies.push(Discrepancy {
                kind: "missing_from_journal",
                request_id: a.request_id.clone(),
                release_digest: a.digest.clone(),
                journal_seq: a.receipt.as_ref().map(|r| r.0),
                ledger_seq: Some(a.seq),
                note: "the journal has no record of this release".into(),
            });
            continue;
        };
        if let Some((seq, hash)) = &a.receipt {
            out.receipts_checked += 1;
            if rec.record.seq != *seq || rec.hash != *hash {
                out.discrepancies.push(Discrepancy {
                    kind: "receipt_mismatch",
                    request_id: a.request_id.clone(),
                    release_digest: a.digest.clone(),
                    journal_seq: Some(rec.record.seq),
                    ledger_seq: Some(a.seq),
                    note: format!("the recorded receipt names journal record {seq}, which is not this release"),
                });
            }
        }
    }
    out
}

/// Every ledger entry's seq and body, from a ledger directory or an export.
fn ledger_entries(args: &Args) -> Result<Vec<(u64, Option<String>)>> {
    let key = args.key.as_ref().ok_or_else(|| anyhow::anyhow!("--ledger and --export need --key"))?;
    let verifier = shuzhu_gateway::ledger::load_verifier(key)?;
    // The same check as `audit verify`; the bodies it hands over are used only if it all verifies.
    let mut out = Vec::new();
    let mut collect = |seq: u64, fields: Option<&[ExportField]>| {
        let body = fields.and_then(|f| f.iter().find(|x| x.name == "body")).map(|x| x.value.clone());
        out.push((seq + 1, body));
    };
    if let Some(dir) = &args.ledger {
        // Read-only: nothing in the directory is created, repaired or signed, and no key in it is read.
        shuzhu_gateway::ledger::verify_ledger_dir_visiting(dir, &verifier, &mut collect).with_context(|| {
            format!("ledger {} does not verify against {}, so it is not reconciled", dir.display(), key.display())
        })?;
        return Ok(out);
    }
    let file = args.export.as_ref().ok_or_else(|| anyhow::anyhow!("give --ledger or --export"))?;
    std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    shuzhu_gateway::ledger::verify_export_file(file, &verifier, &mut |_, _| {}, Some(&mut collect))
        .with_context(|| format!("export {} does not verify, so it is not reconciled", file.display()))?;
    Ok(out)
}

fn short(s: &str) -> String {
    s.chars().take(16).collect()
}

pub(crate) fn run(args: Args) -> Result<ExitCode> {
    let (records, chain) = match journal::load(&args.journal) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: journal {} does not verify: {e}", args.journal.display());
            return Ok(ExitCode::from(2));
        }
    };
    let node = match args.node.clone().or_else(|| records.first().map(|r| r.record.node.clone())) {
        Some(n) => n,
        None => anyhow::bail!("the journal is empty; name the node with --node"),
    };
    let entries = match ledger_entries(&args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}", super::one_line(&e));
            return Ok(ExitCode::from(2));
        }
    };
    let r = reconcile(&records, &entries, &node);
    match args.format {
        Format::Json => {
            let d: Vec<Value> = r
                .discrepancies
                .iter()
                .map(|d| {
                    json!({"kind": d.kind, "request_id": d.request_id, "release_digest": d.release_digest,
                        "journal_seq": d.journal_seq, "ledger_seq": d.ledger_seq, "note": d.note})
                })
                .collect();
            let doc = json!({"node": node, "journal_records": chain.records, "journal_head": chain.head,
                "journal_releases": r.journal_releases, "ledger_entries": entries.len(), "ledger_releases": r.ledger_releases,
                "matched": r.matched, "receipts_checked": r.receipts_checked, "purged": r.purged, "discrepancies": d});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        _ => {
            println!(
                "node {node}: journal chain verified ({} records, head {}); {} journal releases, {} ledger releases of {} entries; {} matched, {} receipts checked",
                chain.records,
                short(&chain.head),
                r.journal_releases,
                r.ledger_releases,
                entries.len(),
                r.matched,
                r.receipts_checked
            );
            if r.purged > 0 {
                println!("{} ledger entries are purged to digests and could not be compared", r.purged);
            }
            if r.discrepancies.is_empty() {
                println!("ok: every release is on both sides");
            } else {
                let header: Vec<String> =
                    ["problem", "request", "release", "journal seq", "ledger seq", "note"].map(String::from).to_vec();
                let opt = |x: Option<u64>| x.map_or("-".into(), |v| v.to_string());
                let rows: Vec<Vec<String>> = r
                    .discrepancies
                    .iter()
                    .map(|d| {
                        vec![
                            d.kind.replace('_', " "),
                            d.request_id.clone(),
                            short(&d.release_digest),
                            opt(d.journal_seq),
                            opt(d.ledger_seq),
                            d.note.clone(),
                        ]
                    })
                    .collect();
                print!("{}", crate::output::table(&header, &rows));
                println!("{} discrepancies", r.discrepancies.len());
            }
        }
    }
    Ok(if r.discrepancies.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shuzhu_node::journal::{Release, ReleaseJournal};

    fn journal(n: u32) -> Vec<ReadRecord> {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = ReleaseJournal::open(dir.path(), "court-1", None).unwrap();
        for i in 0..n {
            j.append(&Release {
                kind: KIND_RELEASE,
                request_id: format!("req-{i}"),
                gateway: "gw-1".into(),
                release_digest: format!("d{i}"),
                ..Default::default()
            })
            .unwrap();
        }
        drop(j);
        journal::load(dir.path()).unwrap().0
    }

    fn entry(seq: u64, i: u32, node_status: &str, receipt: Option<(u64, &str)>) -> (u64, Option<String>) {
        let mut n = json!({"node": "court-1", "status": node_status, "release_digest": format!("d{i}")});
        if let Some((s, h)) = receipt {
            n["receipt"] = json!({"journal_seq": s, "record_hash": h, "signature": "00", "verified": true});
        }
        let other = json!({"node": "court-2", "status": "answered", "release_digest": "zz"});
        (seq, Some(json!({"gateway": "gw-1", "request_id": format!("req-{i}"), "nodes": [n, other]}).to_string()))
    }

    #[test]
    fn finds_releases_missing_from_either_side_and_wrong_receipts() {
        let records = journal(4);
        let mut entries: Vec<_> = (0..4)
            .map(|i| entry(u64::from(i) + 1, i, "answered", Some((u64::from(i), &records[i as usize].hash))))
            .collect();
        let all = reconcile(&records, &entries, "court-1");
        assert_eq!((all.matched, all.receipts_checked, all.discrepancies.len()), (4, 4, 0));
        // A ledger entry deleted; another whose receipt names the wrong record; one purged.
        entries.remove(1);
        entries[1] = entry(3, 2, "answered", Some((0, &records[0].hash)));
        entries.push((9, None));
        // A release the journal lacks, and one the ledger marks missing.
        entries.push(entry(10, 7, "answered", None));
        let r = reconcile(&records, &entries, "court-1");
        let kinds: Vec<(&str, &str)> = r.discrepancies.iter().map(|d| (d.kind, d.request_id.as_str())).collect();
        assert_eq!(
            kinds,
            vec![("missing_from_ledger", "req-1"), ("receipt_mismatch", "req-2"), ("missing_from_journal", "req-7")]
        );
        assert_eq!(r.purged, 1);
        entries.push(entry(11, 1, "missing", None));
        let r = reconcile(&records, &entries, "court-1");
        assert!(r.discrepancies[0].note.contains("missing"), "{:?}", r.discrepancies[0]);
        // Another node's view of the same ledger is separate.
        assert_eq!(reconcile(&records, &entries, "court-2").journal_releases, 0);
    }
}
