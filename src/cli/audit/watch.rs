//! `shuzhu audit watch`: an auditor-side witness. It keeps the last checkpoint it verified in a
//! state file on the auditor's disk and, for every new checkpoint the gateway serves, checks the
//! signature and that the new tree extends the old one (an RFC 9162 consistency proof verified
//! against the two *signed* roots). A log that was rewritten, forked or rolled back fails loudly
//! with exit status 3 and the state file is left untouched.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shuzhu_ledger::checkpoint::{Checkpoint, NoteVerifier};
use shuzhu_proto::v1 as pb;

/// Exit status on an inconsistent checkpoint.
pub(crate) const INCONSISTENT: u8 = 3;

/// What the state file holds.
#[derive(Serialize, Deserialize)]
struct State {
    /// The last verified signed checkpoint note.
    note: String,
}

fn load(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let s: State =
                serde_json::from_str(&text).with_context(|| format!("state file {} is not valid", path.display()))?;
            Ok(Some(s.note))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading state file {}", path.display())),
    }
}

fn save(path: &Path, note: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(&State { note: note.to_owned() })?;
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Outcome of one check.
enum Check {
    /// First run: the checkpoint is now trusted.
    First(Checkpoint),
    /// Consistent with the stored one.
    Consistent { old: u64, new: Checkpoint },
    /// Not consistent: why.
    Inconsistent(String),
}

async fn check_once(
    client: &mut pb::audit_client::AuditClient<tonic::transport::Channel>,
    token: &str,
    state: &Path,
    verifier: &NoteVerifier,
) -> Result<Check> {
    let latest = client
        .get_checkpoint(crate::client::authorized(pb::GetCheckpointRequest {}, token)?)
        .await
        .map_err(super::rpc_err)?
        .into_inner();
    let new = match verifier.verify(&latest.note) {
        Ok(cp) => cp,
        Err(e) => return Ok(Check::Inconsistent(format!("the served checkpoint is not validly signed: {e}"))),
    };
    let Some(old_note) = load(state)? else {
        save(state, &latest.note)?;
        return Ok(Check::First(new));
    };
    let old = verifier
        .verify(&old_note)
        .map_err(|e| anyhow::anyhow!("the stored checkpoint does not verify with this key: {e}"))?;
    if new.origin != old.origin {
        return Ok(Check::Inconsistent(format!(
            "the served checkpoint is for log {:?}, not {:?}",
            new.origin, old.origin
        )));
    }
    if new.size < old.size {
        return Ok(Check::Inconsistent(format!("the log shrank from {} to {} entries", old.size, new.size)));
    }
    let proof = if new.size == old.size {
        vec![]
    } else {
        let req = pb::GetConsistencyProofRequest { old_size: old.size, new_size: new.size };
        let resp = client
            .get_consistency_proof(crate::client::authorized(req, token)?)
            .await
            .map_err(super::rpc_err)?
            .into_inner();
        match super::hashes(&resp.proof) {
            Ok(p) => p,
            Err(e) => return Ok(Check::Inconsistent(format!("{e}"))),
        }
    };
    match shuzhu_ledger::verify::check_consistent(&old_note, &latest.note, &proof, verifier) {
        Ok(cp) => {
            save(state, &latest.note)?;
            Ok(Check::Consistent { old: old.size, new: cp })
        }
        Err(e) => Ok(Check::Inconsistent(format!(
            "the checkpoint of size {} does not extend the verified one of size {}: {e}",
            new.size, old.size
        ))),
    }
}

pub(crate) fn run(
    conn: &super::super::Connection,
    state: &Path,
    key: &Path,
    interval: u64,
    once: bool,
) -> Result<ExitCode> {
    let verifier = super::load_key(key)?;
    super::super::runtime()?.block_on(async {
        let (mut client, token) = super::client(conn).await?;
        loop {
            match check_once(&mut client, &token, state, &verifier).await? {
                Check::First(cp) => {
                    println!("trusting the first checkpoint seen: size {} root {}", cp.size, hex::encode(cp.root));
                }
                Check::Consistent { old, new } => {
                    println!(
                        "consistent: size {old} -> {} root {} (state {} updated)",
                        new.size,
                        hex::encode(new.root),
                        state.display()
                    );
                }
                Check::Inconsistent(why) => {
                    eprintln!("!!! AUDIT LEDGER INCONSISTENT !!!");
                    eprintln!("INCONSISTENT: {why}");
                    eprintln!("the last verified checkpoint is kept in {}; keep it as evidence", state.display());
                    return Ok(ExitCode::from(INCONSISTENT));
                }
            }
            if once {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(std::time::Duration::from_secs(interval.max(1))).await;
        }
    })
}
