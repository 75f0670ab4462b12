//! `shuzhu audit`: list ledger entries through the gateway (auditor role), verify a ledger file.

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
    /// Recompute the hash chain of a ledger and report the first broken entry.
    #[command(
        after_help = "Examples:\n  shuzhu audit verify --ledger ./demo/ledger\n  shuzhu audit verify --ledger ./demo/ledger/audit-chain.jsonl"
    )]
    Verify {
        /// Ledger directory or chain file.
        #[arg(long)]
        ledger: PathBuf,
    },
}

pub(crate) fn run(c: Command) -> Result<ExitCode> {
    match c {
        Command::Verify { ledger } => {
            let file = if ledger.is_dir() { ledger.join(shuzhu_gateway::ledger::CHAIN_FILE_NAME) } else { ledger };
            match shuzhu_gateway::ledger::verify_chain_file(&file) {
                Ok(s) => {
                    println!("ok: {} entries, chain intact, head {}", s.entries, s.head_hash);
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => {
                    eprintln!("error: ledger {} is broken at entry {}: {}", file.display(), b.seq, b.what);
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
