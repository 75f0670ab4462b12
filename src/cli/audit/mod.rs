//! `shuzhu audit`: the auditor's commands. Through the gateway (auditor token; every read is itself
//! a ledger entry): `list`, `show` (entry + inclusion proof checked locally against a signed
//! checkpoint), `export`, `prove`, `watch` (keeps the last verified checkpoint on the auditor's disk
//! and checks each new one extends it), `report`. Offline: `verify` (of a ledger directory,
//! read-only, or of an export file; always against a key given with `--key`, never one found in the
//! ledger directory; it never signs), and, on a ledger directory no running gateway holds, `purge`
//! and `init`. Entries are numbered from 1 in every command, in answers and in exports.

mod report;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use shuzhu_ledger::checkpoint::{Checkpoint, NoteVerifier};
use shuzhu_ledger::merkle::{self, Hash};
use shuzhu_proto::v1 as pb;
use tonic::transport::Channel;

use crate::output::Format;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// List entries, with filters (needs an auditor token).
    #[command(
        after_help = "Examples:\n  shuzhu audit list --demo ./demo\n  shuzhu audit list --demo ./demo --agency xm-sfj --decision deny --from 2026-12-01\n  shuzhu audit list --gateway https://127.0.0.1:8443 --ca pki/ca.pem --token-file auditor.jwt --from-seq 100 --format json"
    )]
    List {
        #[command(flatten)]
        conn: super::Connection,
        /// First sequence number (without filters).
        #[arg(long, default_value_t = 1)]
        from_seq: u64,
        /// Entries to show (at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        filter: FilterArgs,
        /// Cursor printed by the previous page.
        #[arg(long)]
        page_token: Option<String>,
        /// table or json.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Print one entry and verify its inclusion proof locally against the signed checkpoint.
    #[command(
        after_help = "Example:\n  shuzhu audit show 42 --demo ./demo\n  shuzhu audit show 42 --gateway https://gw:8443 --ca ca.pem --token-file auditor.jwt --key checkpoint-key.pub"
    )]
    Show {
        /// The entry's sequence number.
        seq: u64,
        #[command(flatten)]
        conn: super::Connection,
        /// Verifier key file of the gateway's checkpoints (`checkpoint-key.pub`; default with --demo: the demo's).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Download a verifiable export of the whole ledger (JSON lines).
    #[command(after_help = "Example:\n  shuzhu audit export --demo ./demo --out audit.jsonl --key checkpoint-key.pub")]
    Export {
        #[command(flatten)]
        conn: super::Connection,
        /// File to write.
        #[arg(long)]
        out: PathBuf,
        /// Also verify the export with this verifier key file.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Recompute the Merkle tree of a ledger (or of an export) and check it against every signed checkpoint.
    #[command(
        after_help = "Examples:\n  shuzhu audit verify --ledger ./demo/fed/ledger --key ./demo/fed/ledger.keys/checkpoint-key.pub\n  shuzhu audit verify --export audit.jsonl --key checkpoint-key.pub\n\nThe key is the only one trusted: use the copy you received from the gateway's operator, never one\nfound in the directory you verify. A ledger directory is read without any change (nothing is\nrepaired or signed); every entry must be covered by a checkpoint signed with the key, so stop the\ngateway (it seals its entries on shutdown) before verifying its directory.\nExit status: 0 verified, 2 does NOT verify, 1 other errors."
    )]
    Verify {
        /// Ledger directory, verified offline and read-only.
        #[arg(long, required_unless_present = "export", conflicts_with = "export")]
        ledger: Option<PathBuf>,
        /// Export file (JSON lines) to verify instead.
        #[arg(long)]
        export: Option<PathBuf>,
        /// Verifier key file of the gateway's checkpoints (`checkpoint-key.pub`), obtained from the
        /// gateway's operator; required.
        #[arg(long)]
        key: PathBuf,
    },
    /// Seal a ledger whose entries have no signed checkpoint (offline; the gateway must be stopped).
    #[command(
        after_help = "Example:\n  shuzhu audit init --ledger /var/lib/shuzhu/ledger --config /etc/shuzhu/gateway.toml --operator zhang\n\nA ledger signs a checkpoint when it is created, so a ledger whose checkpoints.log is missing or\nempty has lost its checkpoints: someone may have removed them to hide a cut. The gateway refuses\nto start on it. Run this only for a ledger you have checked by other means (an export or a\nwatcher's state, a backup), or one from a version that did not sign at creation. The sealing is\nrecorded as an entry."
    )]
    Init {
        /// Ledger directory of a stopped gateway.
        #[arg(long)]
        ledger: PathBuf,
        /// Gateway configuration whose `[ledger]` section gives key and origin.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Who seals it (recorded).
        #[arg(long, default_value = "operator")]
        operator: String,
    },
    /// Print and verify an inclusion proof (`--seq`) or a consistency proof (`--old`, `--new`).
    #[command(
        after_help = "Examples:\n  shuzhu audit prove --seq 7 --demo ./demo\n  shuzhu audit prove --old 10 --new 40 --demo ./demo"
    )]
    Prove {
        #[command(flatten)]
        conn: super::Connection,
        /// Verifier key file of the gateway's checkpoints (default with --demo: the demo's).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Entry whose inclusion in the latest checkpoint to prove.
        #[arg(long, conflicts_with_all = ["old", "new"], required_unless_present = "old")]
        seq: Option<u64>,
        /// Older tree size.
        #[arg(long)]
        old: Option<u64>,
        /// Newer tree size (default: the latest checkpoint).
        #[arg(long, requires = "old")]
        new: Option<u64>,
    },
    /// Keep the last verified checkpoint in a state file and check every new one is consistent with it.
    #[command(
        after_help = "Examples:\n  shuzhu audit watch --demo ./demo --state watch.json\n  shuzhu audit watch --demo ./demo --state watch.json --key checkpoint-key.pub --once\n\nExit status: 0 consistent, 3 INCONSISTENT (the log was rewritten or forked), 1 other errors."
    )]
    Watch {
        #[command(flatten)]
        conn: super::Connection,
        /// State file holding the last verified checkpoint (created on first run: trust on first use).
        #[arg(long)]
        state: PathBuf,
        /// Verifier key file of the gateway's checkpoints (default with --demo: the demo's).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Seconds between checks.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        /// Check once and exit.
        #[arg(long)]
        once: bool,
    },
    /// Delete the plaintext of entries before DATE that are past retention (offline; the gateway must be stopped).
    #[command(
        after_help = "Example:\n  shuzhu audit purge --ledger ./demo/ledger --before 2026-06-01 --config ./demo/gateway.toml\n\nEntries keep their digests, so every proof and checkpoint still verifies. Retention ([ledger] in the\ngateway config, or the defaults 183 / 1095 days) is never cut short: an entry younger than its\nretention keeps its plaintext whatever DATE says. The purge is itself recorded as an entry."
    )]
    Purge {
        /// Ledger directory of a stopped gateway.
        #[arg(long)]
        ledger: PathBuf,
        /// Purge entries older than this date (YYYY-MM-DD or RFC 3339, UTC).
        #[arg(long)]
        before: String,
        /// Gateway configuration whose `[ledger]` section gives key and retention.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Who runs the purge (recorded).
        #[arg(long, default_value = "operator")]
        operator: String,
    },
    /// Summarise access per agency, indicator and decision, denials, and unusual patterns.
    #[command(
        after_help = "Examples:\n  shuzhu audit report --demo ./demo --from 2026-11-01 --to 2026-12-01\n  shuzhu audit report --demo ./demo --from 2026-11-01 --to 2026-12-01 --format csv > report.csv\n\nPatterns: burst (more than --burst queries by one principal within a minute), differencing\n(same indicator and dimensions, period or one filter value differing by one step), off-hours\n(outside 08:00-20:00 China time, UTC+8)."
    )]
    Report {
        #[command(flatten)]
        conn: super::Connection,
        /// Start date, inclusive (YYYY-MM-DD or RFC 3339, UTC).
        #[arg(long)]
        from: String,
        /// End date, exclusive.
        #[arg(long)]
        to: String,
        /// table, json or csv.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// A burst is more than this many queries by one principal within a minute.
        #[arg(long, default_value_t = 20)]
        burst: usize,
    },
    /// Compare a node's release journal with the ledger; report releases missing from either side.
    Reconcile(super::reconcile::Args),
}

/// Filters of `list`.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct FilterArgs {
    /// Earliest time, inclusive (YYYY-MM-DD or RFC 3339, UTC).
    #[arg(long)]
    from: Option<String>,
    /// Latest time, exclusive.
    #[arg(long)]
    to: Option<String>,
    /// Agency of the principal.
    #[arg(long)]
    agency: Option<String>,
    /// Principal (`sub`).
    #[arg(long)]
    principal: Option<String>,
    /// Indicator id.
    #[arg(long)]
    indicator: Option<String>,
    /// Decision: allow, deny, unauthenticated, invalid, error.
    #[arg(long)]
    decision: Option<String>,
}

/// Milliseconds since the epoch of `YYYY-MM-DD` (UTC midnight) or an RFC 3339 time.
pub(crate) fn parse_time_ms(text: &str) -> Result<u64> {
    use time::format_description::well_known::Rfc3339;
    let t = match time::OffsetDateTime::parse(text, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            let d = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
                .with_context(|| format!("{text:?} is not a date like 2026-12-01 or an RFC 3339 time"))?;
            d.midnight().assume_utc()
        }
    };
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| anyhow::anyhow!("{text:?} is before 1970"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn client(conn: &super::Connection) -> Result<(pb::audit_client::AuditClient<Channel>, String)> {
    let (gateway, ca, token) = conn.resolve("auditor")?;
    let ch = crate::client::connect(&gateway, &ca).await?;
    Ok((pb::audit_client::AuditClient::new(ch), token))
}

fn rpc_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(crate::client::explain(&s))
}

fn load_key(path: &Path) -> Result<NoteVerifier> {
    Ok(shuzhu_gateway::ledger::load_verifier(path)?)
}

/// `--key`, or with `--demo DIR` the verifier key beside the demo's ledger.
fn key_path(conn: &super::Connection, key: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(k) = key {
        return Ok(k);
    }
    let demo = conn.demo.as_ref().context("--key (or --demo DIR) is required")?;
    let p = demo.join("demo.json");
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("reading {} (is the demo running?)", p.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}", p.display()))?;
    let ledger =
        v.get("ledger").and_then(serde_json::Value::as_str).context("demo.json names no ledger; give --key")?;
    let settings = shuzhu_gateway::config::LedgerSettings::default();
    Ok(shuzhu_gateway::ledger::public_key_file(Path::new(ledger), &settings))
}

fn hashes(raw: &[Vec<u8>]) -> Result<Vec<Hash>> {
    raw.iter()
        .map(|h| Hash::try_from(h.as_slice()).map_err(|_| anyhow::anyhow!("a proof hash is not 32 bytes")))
        .collect()
}

/// Checks an entry as served: its signed checkpoint, its leaf against its fields and body, and
/// its inclusion proof against the checkpoint's root. Returns the checkpoint.
pub(crate) fn verify_entry(resp: &pb::GetEntryResponse, verifier: &NoteVerifier) -> Result<Checkpoint> {
    let entry = resp.entry.as_ref().context("the answer has no entry")?;
    if resp.checkpoint.is_empty() {
        bail!("the gateway has no signed checkpoint of size {}", resp.tree_size);
    }
    let cp = verifier.verify(&resp.checkpoint).map_err(|e| anyhow::anyhow!("checkpoint signature: {e}"))?;
    if cp.size != resp.tree_size {
        bail!("the checkpoint is of size {}, the proof of size {}", cp.size, resp.tree_size);
    }
    let index = entry.seq.checked_sub(1).context("seq 0 does not exist")?;
    let leaf = shuzhu_ledger::entry::decode_leaf(&resp.leaf).map_err(|e| anyhow::anyhow!("leaf: {e}"))?;
    if leaf.seq != index {
        bail!("the leaf is for entry {}, not {}", leaf.seq + 1, entry.seq);
    }
    let leaf_hash = merkle::leaf_hash(&resp.leaf);
    if hex::encode(leaf_hash) != entry.hash {
        bail!("the entry's hash is not the hash of its leaf");
    }
    if !resp.fields.is_empty() {
        if resp.fields.len() != leaf.fields.len() {
            bail!("the entry's fields do not match its leaf");
        }
        for (f, (name, digest)) in resp.fields.iter().zip(&leaf.fields) {
            let salt: [u8; 32] =
                hex::decode(&f.salt_hex).ok().and_then(|s| s.try_into().ok()).context("a salt is not 32 bytes")?;
            if &f.name != name || shuzhu_ledger::entry::field_digest(&salt, name, &f.value) != *digest {
                bail!("field {name} does not match the digest its leaf commits to");
            }
            if name == "body" && f.value != entry.body {
                bail!("the body shown is not the body committed to");
            }
        }
    } else if !entry.body.is_empty() {
        bail!("the entry shows a body but no salts to check it with");
    }
    merkle::verify_inclusion(index, cp.size, &leaf_hash, &hashes(&resp.inclusion_proof)?, &cp.root)
        .map_err(|e| anyhow::anyhow!("inclusion proof: {e}"))?;
    Ok(cp)
}

/// Checks a consistency proof as served; roots are checked against signed checkpoints when the
/// gateway has them. Returns whether both ends were signed.
pub(crate) fn verify_consistency(resp: &pb::GetConsistencyProofResponse, verifier: &NoteVerifier) -> Result<bool> {
    let root = |raw: &[u8]| Hash::try_from(raw).map_err(|_| anyhow::anyhow!("a root is not 32 bytes"));
    let (old_root, new_root) = (root(&resp.old_root)?, root(&resp.new_root)?);
    let mut signed = true;
    for (note, size, r) in
        [(&resp.old_checkpoint, resp.old_size, old_root), (&resp.new_checkpoint, resp.new_size, new_root)]
    {
        if note.is_empty() {
            signed = false;
            continue;
        }
        let cp = verifier.verify(note).map_err(|e| anyhow::anyhow!("checkpoint signature: {e}"))?;
        if cp.size != size || cp.root != r {
            bail!("the signed checkpoint of size {size} does not match the root served");
        }
    }
    merkle::verify_consistency(resp.old_size, resp.new_size, &old_root, &new_root, &hashes(&resp.proof)?)
        .map_err(|e| anyhow::anyhow!("consistency proof: {e}"))?;
    Ok(signed)
}

fn fail(what: &str, e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {what} does NOT verify: {e:#}");
    ExitCode::from(2)
}

pub(crate) fn run(c: Command) -> Result<ExitCode> {
    match c {
        Command::Reconcile(args) => super::reconcile::run(args),
        Command::Verify { ledger, export, key } => verify(ledger, export, &key),
        Command::Init { ledger, config, operator } => {
            let settings = match config {
                Some(p) => shuzhu_gateway::config::GatewayConfig::load(&p)?.ledger,
                None => shuzhu_gateway::config::LedgerSettings::default(),
            };
            let (chain, seq) = shuzhu_gateway::ledger::AuditChain::init(&ledger, &settings, &operator)?;
            let (size, key) = (chain.len(), chain.public_key_path().to_owned());
            drop(chain);
            println!(
                "sealed {size} entries with a signed checkpoint; the sealing is entry {seq}; verifier key: {}",
                key.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::List { conn, from_seq, limit, filter, page_token, format } => {
            let req = pb::ListEntriesRequest {
                from_seq,
                limit,
                from_time_ms: filter.from.as_deref().map(parse_time_ms).transpose()?.unwrap_or(0),
                to_time_ms: filter.to.as_deref().map(parse_time_ms).transpose()?.unwrap_or(0),
                agency: filter.agency.unwrap_or_default(),
                principal: filter.principal.unwrap_or_default(),
                indicator: filter.indicator.unwrap_or_default(),
                decision: filter.decision.unwrap_or_default(),
                page_token: page_token.unwrap_or_default(),
            };
            let resp = super::runtime()?.block_on(async {
                let (mut c, token) = client(&conn).await?;
                c.list_entries(crate::client::authorized(req, &token)?)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(rpc_err)
            })?;
            print_list(&resp, format)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { seq, conn, key } => {
            let verifier = load_key(&key_path(&conn, key)?)?;
            let resp = super::runtime()?.block_on(async {
                let (mut c, token) = client(&conn).await?;
                let req = crate::client::authorized(pb::GetEntryRequest { seq, tree_size: 0 }, &token)?;
                c.get_entry(req).await.map(tonic::Response::into_inner).map_err(rpc_err)
            })?;
            let entry = resp.entry.clone().unwrap_or_default();
            let body: serde_json::Value = serde_json::from_str(&entry.body).unwrap_or(serde_json::Value::Null);
            println!(
                "entry {} (leaf hash {}){}",
                entry.seq,
                entry.hash,
                if entry.purged { ", plaintext purged" } else { "" }
            );
            println!("{}", serde_json::to_string_pretty(&body)?);
            match verify_entry(&resp, &verifier) {
                Ok(cp) => {
                    println!(
                        "verified: included in the signed checkpoint of size {} with root {} ({} proof hashes)",
                        cp.size,
                        hex::encode(cp.root),
                        resp.inclusion_proof.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(fail(&format!("entry {seq}"), &e)),
            }
        }
        Command::Export { conn, out, key } => {
            let bytes = super::runtime()?.block_on(async {
                let (mut c, token) = client(&conn).await?;
                let req = crate::client::authorized(pb::ExportRequest {}, &token)?;
                let mut stream = c.export(req).await.map_err(rpc_err)?.into_inner();
                let tmp = out.with_extension("partial");
                let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
                let mut n = 0u64;
                while let Some(chunk) = stream.message().await.map_err(rpc_err)? {
                    std::io::Write::write_all(&mut f, &chunk.data)?;
                    n += chunk.data.len() as u64;
                }
                f.sync_all()?;
                std::fs::rename(&tmp, &out)?;
                anyhow::Ok(n)
            })?;
            println!("wrote {bytes} bytes to {}", out.display());
            match key {
                Some(k) => verify(None, Some(out), &k),
                None => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Prove { conn, key, seq, old, new } => {
            let verifier = load_key(&key_path(&conn, key)?)?;
            let rt = super::runtime()?;
            if let Some(seq) = seq {
                let resp = rt.block_on(async {
                    let (mut c, token) = client(&conn).await?;
                    let req = crate::client::authorized(pb::GetEntryRequest { seq, tree_size: 0 }, &token)?;
                    c.get_entry(req).await.map(tonic::Response::into_inner).map_err(rpc_err)
                })?;
                println!("inclusion proof of entry {seq} in the tree of size {}:", resp.tree_size);
                for h in &resp.inclusion_proof {
                    println!("  {}", hex::encode(h));
                }
                return match verify_entry(&resp, &verifier) {
                    Ok(cp) => {
                        println!(
                            "verified against the signed checkpoint: size {} root {}",
                            cp.size,
                            hex::encode(cp.root)
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => Ok(fail(&format!("inclusion of entry {seq}"), &e)),
                };
            }
            let old_size = old.context("give --seq, or --old (and --new)")?;
            let resp = rt.block_on(async {
                let (mut c, token) = client(&conn).await?;
                let req = crate::client::authorized(
                    pb::GetConsistencyProofRequest { old_size, new_size: new.unwrap_or(0) },
                    &token,
                )?;
                c.get_consistency_proof(req).await.map(tonic::Response::into_inner).map_err(rpc_err)
            })?;
            println!("consistency proof from size {} to size {}:", resp.old_size, resp.new_size);
            for h in &resp.proof {
                println!("  {}", hex::encode(h));
            }
            match verify_consistency(&resp, &verifier) {
                Ok(signed) => {
                    println!(
                        "verified: the tree of size {} (root {}) extends the tree of size {} (root {}){}",
                        resp.new_size,
                        hex::encode(&resp.new_root),
                        resp.old_size,
                        hex::encode(&resp.old_root),
                        if signed {
                            "; both roots are signed checkpoints"
                        } else {
                            "; at least one root is not a signed checkpoint"
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(fail("the consistency proof", &e)),
            }
        }
        Command::Watch { conn, state, key, interval, once } => {
            let key = key_path(&conn, key)?;
            watch::run(&conn, &state, &key, interval, once)
        }
        Command::Purge { ledger, before, config, operator } => {
            let before_ms = parse_time_ms(&before)?;
            let settings = match config {
                Some(p) => shuzhu_gateway::config::GatewayConfig::load(&p)?.ledger,
                None => shuzhu_gateway::config::LedgerSettings::default(),
            };
            let chain = shuzhu_gateway::ledger::AuditChain::open_with(&ledger, &settings)?;
            let (report, seq) = chain.purge(before_ms, now_ms(), &settings, &operator)?;
            drop(chain);
            println!(
                "purged the plaintext of {} entries ({} segment files rewritten); the purge is entry {seq}",
                report.entries, report.segments
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { conn, from, to, format, burst } => {
            let (from_ms, to_ms) = (parse_time_ms(&from)?, parse_time_ms(&to)?);
            if from_ms >= to_ms {
                bail!("--from must be before --to");
            }
            let entries = super::runtime()?.block_on(async {
                let (mut c, token) = client(&conn).await?;
                let mut out = Vec::new();
                let mut page_token = String::new();
                loop {
                    let req = pb::ListEntriesRequest {
                        limit: 1000,
                        from_time_ms: from_ms,
                        to_time_ms: to_ms,
                        page_token: page_token.clone(),
                        ..Default::default()
                    };
                    let resp = c
                        .list_entries(crate::client::authorized(req, &token)?)
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(rpc_err)?;
                    out.extend(resp.entries.into_iter().map(|e| report::Seen {
                        seq: e.seq,
                        time_ms: e.time_ms,
                        body: serde_json::from_str(&e.body).unwrap_or(serde_json::Value::Null),
                    }));
                    if resp.next_page_token.is_empty() {
                        break;
                    }
                    page_token = resp.next_page_token;
                }
                anyhow::Ok(out)
            })?;
            let r = report::build(&entries, report::Rules { burst });
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                Format::Csv => print!("{}", report::to_csv(&r)),
                Format::Table => print!("{}", report::to_table(&r)),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(ledger: Option<PathBuf>, export: Option<PathBuf>, key: &Path) -> Result<ExitCode> {
    // Big ledgers take a while: say how far verification got (on stderr, every ~1 M entries).
    let mut progress = |done: u64, total: u64| match total {
        0 => eprintln!("verified {done} entries"),
        _ => eprintln!("verified {done} of {total} entries"),
    };
    // The only key trusted: the one given, never one read from the ledger directory.
    let verifier = shuzhu_gateway::ledger::load_verifier(key)?;
    let (what, result) = match (ledger, export) {
        (Some(dir), _) => {
            if !dir.is_dir() {
                bail!("{} is not a ledger directory", dir.display());
            }
            if let Ok(k) = key.canonicalize()
                && dir.canonicalize().is_ok_and(|d| k.starts_with(d))
            {
                eprintln!(
                    "warning: the key {} lies in the directory being verified; whoever can rewrite the ledger can replace it",
                    key.display()
                );
            }
            (dir.clone(), shuzhu_gateway::ledger::verify_ledger_dir_with_progress(&dir, &verifier, &mut progress))
        }
        (None, Some(file)) => {
            let f = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            drop(f);
            let result = shuzhu_gateway::ledger::verify_export_file(&file, &verifier, &mut progress, None);
            (file, result)
        }
        (None, None) => bail!("give --ledger or --export"),
    };
    match result {
        Ok(s) => {
            println!(
                "ok: {} entries ({} purged), {} signed checkpoints verified with key {}, origin {}, root {}",
                s.entries,
                s.purged,
                s.checkpoints,
                verifier.name(),
                s.latest.origin,
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

fn print_list(resp: &pb::ListEntriesResponse, format: Format) -> Result<()> {
    match format {
        Format::Json => {
            let entries: Vec<serde_json::Value> = resp
                .entries
                .iter()
                .map(|e| {
                    serde_json::json!({"seq": e.seq, "hash": e.hash, "prev_hash": e.prev_hash, "time_ms": e.time_ms, "purged": e.purged,
                        "entry": serde_json::from_str::<serde_json::Value>(&e.body).unwrap_or(serde_json::Value::Null)})
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"entries": entries, "next_seq": resp.next_seq,
                    "total": resp.total, "next_page_token": resp.next_page_token}))?
            );
        }
        _ => {
            let rows: Vec<Vec<String>> = resp
                .entries
                .iter()
                .map(|e| {
                    let b: serde_json::Value = serde_json::from_str(&e.body).unwrap_or_default();
                    let s = |k: &str| b.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                    let agency = b.pointer("/principal/agency").and_then(|v| v.as_str()).unwrap_or("-").to_string();
                    let purged = if e.purged { "(purged)".to_string() } else { s("action") };
                    vec![e.seq.to_string(), s("time"), agency, purged, s("indicator"), s("decision"), s("reason")]
                })
                .collect();
            let header: Vec<String> =
                ["seq", "time", "agency", "action", "indicator", "decision", "reason"].map(String::from).to_vec();
            print!("{}", crate::output::table(&header, &rows));
            if resp.next_page_token.is_empty() {
                println!("{} of {} entries; next --from-seq {}", resp.entries.len(), resp.total, resp.next_seq);
            } else {
                println!("{} entries shown; next page: --page-token {}", resp.entries.len(), resp.next_page_token);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_and_times() {
        assert_eq!(parse_time_ms("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert!(parse_time_ms("yesterday").is_err());
    }
}
