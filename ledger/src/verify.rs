//! The export format and its offline verification, for auditors and watchers.
//!
//! An export is JSON lines: one `header` line, then one `entry` line per entry in seq order
//! (leaf bytes in base64 and, unless purged, each field's hex salt and plaintext), then one
//! `checkpoint` line per signed note:
//!
//! ```text
//! {"type":"header","format":"shuzhu-ledger-export-v1","origin":"gw.example/audit","size":2}
//! {"type":"entry","seq":0,"leaf":"c2h1emh1…","fields":[{"name":"agency","salt":"9f…","value":"court-a"}]}
//! {"type":"checkpoint","note":"gw.example/audit\n2\n…\n\n— gw.example/audit …\n"}
//! ```
//!
//! [`verify_export`] re-derives the tree from the leaves, checks every plaintext against the
//! digest its leaf commits to, and checks every checkpoint's signature and root; the export must
//! be covered whole by a checkpoint. [`check_consistent`] is what a watcher runs on a new
//! checkpoint against the last one it verified.

use std::io::{BufRead, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, NoteError, NoteVerifier};
use crate::entry::{self, EntryError};
use crate::ledger::{Ledger, LedgerError};
use crate::merkle::{self, Hash, MemTree, MerkleError};

/// Format tag of the header line.
pub const EXPORT_FORMAT: &str = "shuzhu-ledger-export-v1";

/// Why an export or a checkpoint pair failed verification. Never contains entry values.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The export could not be read or written.
    #[error("cannot read or write the export")]
    Io(#[from] std::io::Error),
    /// A line is not valid export JSON.
    #[error("line {line}: not a valid export line")]
    BadLine {
        /// 1-based line number.
        line: usize,
    },
    /// The header is missing, repeated or of another format.
    #[error("export header missing or of an unknown format")]
    BadHeader,
    /// Entries are missing, repeated or out of order.
    #[error("line {line}: expected entry {expected}")]
    OutOfOrder {
        /// 1-based line number.
        line: usize,
        /// The seq that should come next.
        expected: u64,
    },
    /// An entry's leaf or fields are malformed or do not match.
    #[error("entry {seq}: {source}")]
    Entry {
        /// The entry.
        seq: u64,
        /// What is wrong.
        #[source]
        source: EntryError,
    },
    /// A checkpoint note does not verify.
    #[error("checkpoint {index}: {source}")]
    Note {
        /// 0-based position among the checkpoints.
        index: usize,
        /// What is wrong.
        #[source]
        source: NoteError,
    },
    /// A checkpoint's origin is not the export's.
    #[error("checkpoint {index} is for another log")]
    WrongOrigin {
        /// 0-based position among the checkpoints.
        index: usize,
    },
    /// A checkpoint's root does not match the tree re-derived from the entries.
    #[error("checkpoint {index} (size {size}) does not match the entries")]
    RootMismatch {
        /// 0-based position among the checkpoints.
        index: usize,
        /// Its size.
        size: u64,
    },
    /// A checkpoint claims more entries than the export has.
    #[error("checkpoint {index} claims {size} entries but the export has {have}")]
    BeyondExport {
        /// 0-based position among the checkpoints.
        index: usize,
        /// Its size.
        size: u64,
        /// Entries in the export.
        have: u64,
    },
    /// The entries after the largest checkpoint are covered by no signature.
    #[error("{uncovered} entries after the last checkpoint are not covered by any signature")]
    Uncovered {
        /// How many.
        uncovered: u64,
    },
    /// The header's size does not match the entries.
    #[error("header announces {announced} entries, export has {have}")]
    SizeMismatch {
        /// Size in the header.
        announced: u64,
        /// Entries present.
        have: u64,
    },
    /// A consistency proof does not verify.
    #[error("checkpoints are not consistent: {0}")]
    Inconsistent(#[source] MerkleError),
    /// Exporting failed in the ledger.
    #[error("cannot export: {0}")]
    Ledger(#[from] LedgerError),
}

/// One field in an export line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExportField {
    /// Field name.
    pub name: String,
    /// Salt, hex.
    pub salt: String,
    /// Plaintext.
    pub value: String,
}

/// One line of an export.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportLine {
    /// First line.
    Header {
        /// [`EXPORT_FORMAT`].
        format: String,
        /// Checkpoint origin of the log.
        origin: String,
        /// Entries that follow.
        size: u64,
    },
    /// One entry.
    Entry {
        /// Its seq.
        seq: u64,
        /// Leaf bytes, base64.
        leaf: String,
        /// Salts and plaintext, or `null` once purged.
        fields: Option<Vec<ExportField>>,
    },
    /// One signed checkpoint note.
    Checkpoint {
        /// The note.
        note: String,
    },
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// Entries verified.
    pub entries: u64,
    /// Entries whose plaintext has been purged (digests only).
    pub purged: u64,
    /// Checkpoints verified.
    pub checkpoints: usize,
    /// Root of the whole export.
    pub root: Hash,
    /// The largest checkpoint.
    pub latest: Checkpoint,
}

fn write_line(w: &mut impl Write, line: &ExportLine) -> Result<(), VerifyError> {
    serde_json::to_writer(&mut *w, line).map_err(std::io::Error::from)?;
    w.write_all(b"\n")?;
    Ok(())
}

/// Writes an export of the whole ledger, signing a checkpoint of it first so it is covered.
pub fn write_export(ledger: &Ledger, mut w: impl Write) -> Result<ExportSummary, VerifyError> {
    let (latest, _) = ledger.checkpoint()?.ok_or(VerifyError::Uncovered { uncovered: 0 })?;
    let size = latest.size;
    write_line(&mut w, &ExportLine::Header { format: EXPORT_FORMAT.into(), origin: latest.origin.clone(), size })?;
    let mut purged = 0;
    for seq in 0..size {
        let e = ledger.get(seq)?;
        let fields = if e.purged() {
            purged += 1;
            None
        } else {
            Some(
                e.fields
                    .iter()
                    .filter_map(|f| {
                        let (salt, value) = f.plaintext.as_ref()?;
                        Some(ExportField { name: f.name.clone(), salt: hex::encode(salt), value: value.clone() })
                    })
                    .collect(),
            )
        };
        write_line(&mut w, &ExportLine::Entry { seq, leaf: STANDARD.encode(&e.leaf), fields })?;
    }
    let notes = ledger.checkpoints_up_to(size)?;
    let count = notes.len();
    for note in notes {
        write_line(&mut w, &ExportLine::Checkpoint { note })?;
    }
    w.flush()?;
    Ok(ExportSummary { entries: size, purged, checkpoints: count, root: latest.root, latest })
}

/// Checks one entry line's leaf and fields; returns the leaf hash and whether it is purged.
fn check_entry(seq: u64, leaf_b64: &str, fields: Option<&[ExportField]>) -> Result<(Hash, bool), VerifyError> {
    let bad = |source| VerifyError::Entry { seq, source };
    let leaf_bytes = STANDARD.decode(leaf_b64).map_err(|_| bad(EntryError::Malformed("leaf is not base64")))?;
    let leaf = entry::decode_leaf(&leaf_bytes).map_err(bad)?;
    if leaf.seq != seq {
        return Err(bad(EntryError::Malformed("leaf seq does not match its position")));
    }
    if let Some(fields) = fields {
        if fields.len() != leaf.fields.len() {
            return Err(bad(EntryError::Malformed("field count does not match the leaf")));
        }
        for (f, (name, digest)) in fields.iter().zip(&leaf.fields) {
            let salt: [u8; 32] = hex::decode(&f.salt)
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| bad(EntryError::Malformed("bad salt")))?;
            if &f.name != name || entry::field_digest(&salt, name, &f.value) != *digest {
                return Err(bad(EntryError::DigestMismatch(name.clone())));
            }
        }
    }
    Ok((merkle::leaf_hash(&leaf_bytes), fields.is_none()))
}

/// Re-derives the tree from an export and checks it against every signed checkpoint in it.
pub fn verify_export(reader: impl BufRead, verifier: &NoteVerifier) -> Result<ExportSummary, VerifyError> {
    let mut tree = MemTree::default();
    let mut header: Option<(String, u64)> = None;
    let mut notes = Vec::new();
    let mut purged = 0;
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let n = i + 1;
        let parsed: ExportLine = serde_json::from_str(&line).map_err(|_| VerifyError::BadLine { line: n })?;
        match parsed {
            ExportLine::Header { format, origin, size } => {
                if header.is_some() || n != 1 || format != EXPORT_FORMAT {
                    return Err(VerifyError::BadHeader);
                }
                header = Some((origin, size));
            }
            ExportLine::Entry { seq, leaf, fields } => {
                let expected = tree.leaf_count();
                if header.is_none() {
                    return Err(VerifyError::BadHeader);
                }
                if seq != expected || !notes.is_empty() {
                    return Err(VerifyError::OutOfOrder { line: n, expected });
                }
                let (hash, was_purged) = check_entry(seq, &leaf, fields.as_deref())?;
                purged += u64::from(was_purged);
                tree.push(hash);
            }
            ExportLine::Checkpoint { note } => {
                if header.is_none() {
                    return Err(VerifyError::BadHeader);
                }
                notes.push(note);
            }
        }
    }
    use merkle::NodeStore as _;
    let (origin, announced) = header.ok_or(VerifyError::BadHeader)?;
    let have = tree.leaf_count();
    if announced != have {
        return Err(VerifyError::SizeMismatch { announced, have });
    }
    let mut latest: Option<Checkpoint> = None;
    for (index, note) in notes.iter().enumerate() {
        let cp = verifier.verify(note).map_err(|source| VerifyError::Note { index, source })?;
        if cp.origin != origin {
            return Err(VerifyError::WrongOrigin { index });
        }
        if cp.size > have {
            return Err(VerifyError::BeyondExport { index, size: cp.size, have });
        }
        let root = merkle::root(&tree, cp.size).map_err(VerifyError::Inconsistent)?;
        if root != cp.root {
            return Err(VerifyError::RootMismatch { index, size: cp.size });
        }
        if latest.as_ref().is_none_or(|l| cp.size >= l.size) {
            latest = Some(cp);
        }
    }
    let latest = latest.ok_or(VerifyError::Uncovered { uncovered: have })?;
    if latest.size < have {
        return Err(VerifyError::Uncovered { uncovered: have - latest.size });
    }
    let root = merkle::root(&tree, have).map_err(VerifyError::Inconsistent)?;
    Ok(ExportSummary { entries: have, purged, checkpoints: notes.len(), root, latest })
}

/// For a watcher: verifies both notes with `verifier`, then that `new` extends `old` by the
/// consistency `proof`. Returns the new checkpoint.
pub fn check_consistent(
    old_note: &str,
    new_note: &str,
    proof: &[Hash],
    verifier: &NoteVerifier,
) -> Result<Checkpoint, VerifyError> {
    let old = verifier.verify(old_note).map_err(|source| VerifyError::Note { index: 0, source })?;
    let new = verifier.verify(new_note).map_err(|source| VerifyError::Note { index: 1, source })?;
    if old.origin != new.origin {
        return Err(VerifyError::WrongOrigin { index: 1 });
    }
    merkle::verify_consistency(old.size, new.size, &old.root, &new.root, proof).map_err(VerifyError::Inconsistent)?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::NoteSigner;
    use crate::{EntryFields, LedgerOptions};

    fn ledger(dir: &std::path::Path, key: &[u8]) -> Ledger {
        let mut o = LedgerOptions::new(NoteSigner::from_pkcs8("shuzhu.test/audit", key).unwrap());
        o.checkpoint_every = 4;
        o.checkpoint_interval = None;
        Ledger::open(dir, o).unwrap()
    }

    fn export(l: &Ledger) -> Vec<String> {
        let mut buf = Vec::new();
        write_export(l, &mut buf).unwrap();
        String::from_utf8(buf).unwrap().lines().map(str::to_owned).collect()
    }

    fn verify(lines: &[String], v: &NoteVerifier) -> Result<ExportSummary, VerifyError> {
        verify_export(lines.join("\n").as_bytes(), v)
    }

    fn filled(dir: &std::path::Path, key: &[u8]) -> Ledger {
        let l = ledger(dir, key);
        for i in 0..10u64 {
            l.append(EntryFields::new(i).with("agency", format!("a{i}")).with("decision", "allow")).unwrap();
        }
        l
    }

    #[test]
    fn export_verifies_and_any_tampering_is_caught_at_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        let v = l.verifier().clone();
        let lines = export(&l);
        let s = verify(&lines, &v).unwrap();
        assert_eq!((s.entries, s.checkpoints, s.latest.size), (10, 3, 10));
        assert_eq!(s.root, l.head().unwrap().1);

        // Changing a plaintext value.
        let mut bad = lines.clone();
        bad[4] = bad[4].replace("\"a3\"", "\"a9\"");
        assert!(matches!(verify(&bad, &v), Err(VerifyError::Entry { seq: 3, .. })));
        // Changing a leaf (flip one base64 char).
        let mut bad = lines.clone();
        let line: ExportLine = serde_json::from_str(&bad[6]).unwrap();
        let ExportLine::Entry { seq, leaf, .. } = line else { panic!() };
        let mut raw = STANDARD.decode(leaf).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        bad[6] = serde_json::to_string(&ExportLine::Entry { seq, leaf: STANDARD.encode(raw), fields: None }).unwrap();
        assert!(matches!(verify(&bad, &v), Err(VerifyError::RootMismatch { .. })));
        // Dropping an entry.
        let mut bad = lines.clone();
        bad.remove(2);
        assert!(matches!(verify(&bad, &v), Err(VerifyError::OutOfOrder { .. })));
        // Dropping the tail and the header's size with it leaves checkpoints beyond the export.
        let mut bad: Vec<String> = lines.clone();
        bad.remove(10);
        bad[0] = bad[0].replace("\"size\":10", "\"size\":9");
        assert!(matches!(verify(&bad, &v), Err(VerifyError::BeyondExport { .. })));
        // Hiding an entry's fields so it passes for purged.
        let mut bad = lines.clone();
        bad[3] = bad[3].replace("\"fields\":", "\"fieldr\":");
        assert!(matches!(verify(&bad, &v), Err(VerifyError::BadLine { line: 4 })));
        // Another key.
        let other = NoteSigner::from_pkcs8("shuzhu.test/audit", &NoteSigner::generate_pkcs8().unwrap()).unwrap();
        assert!(matches!(verify(&lines, &other.verifier()), Err(VerifyError::Note { .. })));
        // No checkpoint at all.
        let bare: Vec<String> = lines.iter().filter(|l| !l.contains("\"checkpoint\"")).cloned().collect();
        assert!(matches!(verify(&bare, &v), Err(VerifyError::Uncovered { uncovered: 10 })));
    }

    #[test]
    fn purged_entries_still_verify() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        l.purge_before(5).unwrap();
        let lines = export(&l);
        let s = verify(&lines, l.verifier()).unwrap();
        assert_eq!((s.entries, s.purged), (10, 5));
        assert!(!lines[1].contains("\"a0\""), "purged plaintext is not exported");
    }

    #[test]
    fn watcher_checks_consistency() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        let (old, old_note) = l.checkpoint().unwrap().unwrap();
        l.append(EntryFields::new(99).with("decision", "deny")).unwrap();
        let (new, new_note) = l.checkpoint().unwrap().unwrap();
        let proof = l.consistency_proof(old.size, new.size).unwrap();
        assert_eq!(check_consistent(&old_note, &new_note, &proof, l.verifier()).unwrap(), new);
        let mut bad = proof.clone();
        bad[0][0] ^= 1;
        assert!(check_consistent(&old_note, &new_note, &bad, l.verifier()).is_err());
        assert!(check_consistent(&new_note, &old_note, &proof, l.verifier()).is_err());
    }
}
