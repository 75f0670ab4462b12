//! `shuzhu audit`: list ledger entries through the gateway (auditor role), verify a ledger or an export.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use shuzhu_proto::v1 as pb;

use crate::output::Format;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// List entries (needs an auditor token).
    #[command(
        after_help = "Examples:\n  shuzhu audit list --demo ./demo\n  shuzhu audit list --gateway https://127.0.0.1:8443 --ca pki/ca.pem --token-file auditor.jwt --from-seq 100 --format json"
    )]
    List {
        #[command(flatten)]
        conn: super::Connection,
        /// First sequence number.
        #[arg(long, default_value_t = 1)]
        from_seq: u64,
        /// Entries to show (at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// table or json.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Recompute the Merkle tree of a ledger (or of an export) and check it against every signed checkpoint.
    #[command(
        after_help = "Examples:\n  shuzhu audit verify --ledger ./demo/ledger\n  shuzhu audit verify --export audit.jsonl --key ./demo/ledger/checkpoint-key.pub"
    )]
    Verify {
        /// Ledger directory, verified offline (no running gateway may hold it).
        #[arg(long, required_unless_present = "export", conflicts_with = "export")]
        ledger: Option<PathBuf>,
        /// Export file (JSON lines) to verify instead.
        #[arg(long, requires = "key")]
        export: Option<PathBuf>,
        /// Verifier key file of the gateway's checkpoints (`checkpoint-key.pub`).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Compare a node's release journal with the ledger; report releases missing from either side.
    Reconcile(super::reconcile::Args),
}

pub(crate) fn run(c: Command) -> Result<ExitCode> {
    match c {
        Command::Reconcile(args) => super::reconcile::run(args),
        Command::Verify { ledger, export, key } => {
            let (what, result) = match (ledger, export) {
                (Some(dir), _) => (dir.clone(), shuzhu_gateway::ledger::verify_ledger_dir(&dir)),
                (None, Some(file)) => {
                    let result = key
                        .ok_or_else(|| anyhow::anyhow!("--export needs --key"))
                        .and_then(|k| Ok(shuzhu_gateway::ledger::load_verifier(&k)?))
                        .and_then(|v| {
                            let f = std::fs::File::open(&file)?;
                            Ok(shuzhu_gateway::ledger::verify_export(std::io::BufReader::new(f), &v)
                                .map_err(shuzhu_gateway::ledger::LedgerError::from))
                        })?;
                    (file, result)
                }
                (None, None) => anyhow::bail!("give --ledger or --export"),
            };
            match result {
                Ok(s) => {
                    println!(
                        "ok: {} entries ({} purged), {} signed checkpoints verified, root {}",
                        s.entries,
                        s.purged,
                        s.checkpoints,
                        hex::encode(s.root)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: ledger {} does not verify: {e}", what.display());
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::List { conn, from_seq, limit, format } => {
            let (gateway, ca, token) = conn.resolve("auditor")?;
            let rt = super::runtime()?;
            let resp = rt.block_on(async {
                let ch = crate::client::connect(&gateway, &ca).await?;
                let mut client = pb::audit_client::AuditClient::new(ch);
                let req = crate::client::authorized(pb::ListEntriesRequest { from_seq, limit }, &token)?;
                client
                    .list_entries(req)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| anyhow::anyhow!(crate::client::explain(&s)))
            })?;
            match format {
                Format::Json => {
                    let entries: Vec<serde_json::Value> = resp
                        .entries
                        .iter()
                        .map(|e| {
                            serde_json::json!({"seq": e.seq, "hash": e.hash, "prev_hash": e.prev_hash,
                                "entry": serde_json::from_str::<serde_json::Value>(&e.body).unwrap_or(serde_json::Value::Null)})
                        })
                        .collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"entries": entries, "next_seq": resp.next_seq, "total": resp.total})
                        )?
                    );
                }
                _ => {
                    let rows: Vec<Vec<String>> = resp
                        .entries
                        .iter()
                        .map(|e| {
                            let b: serde_json::Value = serde_json::from_str(&e.body).unwrap_or_default();
                            let s = |k: &str| b.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                            let agency =
                                b.pointer("/principal/agency").and_then(|v| v.as_str()).unwrap_or("-").to_string();
                            vec![
                                e.seq.to_string(),
                                s("time"),
                                agency,
                                s("action"),
                                s("indicator"),
                                s("decision"),
                                s("reason"),
                            ]
                        })
                        .collect();
                    let header: Vec<String> = ["seq", "time", "agency", "action", "indicator", "decision", "reason"]
                        .map(String::from)
                        .to_vec();
                    print!("{}", crate::output::table(&header, &rows));
                    println!("{} of {} entries; next --from-seq {}", resp.entries.len(), resp.total, resp.next_seq);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
