//! The export format and its offline verification, for auditors and watchers.
//!
//! An export is JSON lines: one `header` line, then one `entry` line per entry in order (its
//! number `seq`, from 1 as everywhere else: the answer's `audit_seq`, `audit list/show/prove`;
//! leaf bytes in base64; each field's hex salt and plaintext, or `"fields":null` once purged — the
//! key is required), then one `checkpoint` line per signed note:
//!
//! ```text
//! {"type":"header","format":"shuzhu-ledger-export-v2","origin":"gw.example/audit","size":2}
//! {"type":"entry","seq":1,"leaf":"c2h1emh1…","fields":[{"name":"agency","salt":"9f…","value":"court-a"}]}
//! {"type":"checkpoint","note":"gw.example/audit\n2\n…\n\n— gw.example/audit …\n"}
//! ```
//!
//! Entry number `n` is leaf index `n − 1` of the Merkle tree (RFC 9162 counts leaves from 0), so
//! the checkpoint of size `n` ends with entry `n`. Exports of the older format
//! `shuzhu-ledger-export-v1` numbered entries from 0 and still verify.
//!
//! [`verify_export`] re-derives the tree from the leaves, checks every plaintext against the
//! digest its leaf commits to, and checks every checkpoint's signature and root; the export must
//! be covered whole by a checkpoint. An entry without plaintext must be covered by a recorded
//! purge: a purge record (an entry carrying [`crate::entry::keys::PURGE_HORIZON`], whose own
//! plaintext is never purged) after it, with a horizon it is older than; so an entry cannot be
//! passed off as purged to hide what it says. [`verify_dir`] does the same on a ledger directory,
//! read-only, against a key given from outside it. It reads the export as a stream; [`verify_export_with`]
//! can keep the re-derived node hashes in files instead of memory (so memory stays bounded
//! whatever the size of the export: lines are capped at [`MAX_LINE`] and notes are checked as
//! they arrive), report progress, and hand each entry to the caller.
//! [`check_consistent`] is what a watcher runs on a new checkpoint against the last one it
//! verified.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, NoteError, NoteVerifier};
use crate::entry::{self, EntryError, Leaf};
use crate::ledger::{Ledger, LedgerError};
use crate::merkle::{self, Hash, MemTree, MerkleError, NodeStore};
use crate::segment::{self, SegmentError};
use crate::tree::NodeFiles;

/// [`verify_export_with`] reports progress every this many entries.
pub const PROGRESS_EVERY: u64 = 1 << 20;

/// Longest export line accepted, in bytes (without its newline). The longest line written is an
/// entry whose values reach [`crate::entry::MAX_VALUES`] (1 MiB), each byte escaped as `\u00XX` at
/// worst (6 MiB), with its leaf, salts and names (under 200 KiB for [`crate::entry::MAX_FIELDS`]
/// fields); a note is at most 1 MiB before escaping. A longer line is refused as it is read, so a
/// crafted line with no newline cannot make the verifier read gigabytes into memory.
pub const MAX_LINE: usize = 8 << 20;

/// Format tag of the header line: entries numbered from 1.
pub const EXPORT_FORMAT: &str = "shuzhu-ledger-export-v2";
/// Format tag of older exports, whose entries were numbered from 0 (still verified).
pub const EXPORT_FORMAT_V1: &str = "shuzhu-ledger-export-v1";
/// File of the signed checkpoints in a ledger directory.
pub const CHECKPOINT_LOG: &str = "checkpoints.log";

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
        /// The number that should come next (as the export numbers entries).
        expected: u64,
    },
    /// An entry has no plaintext, but no purge record after it has a horizon it is older than: it
    /// was not purged, its plaintext was removed.
    #[error(
        "entry {seq} is shown as purged, but no recorded purge covers it (a purge entry after it whose horizon it is older than)"
    )]
    UnrecordedPurge {
        /// The entry's number (from 1).
        seq: u64,
    },
    /// A purge record lacks its plaintext or a readable horizon (purge records are never purged).
    #[error("entry {seq} records a purge but its horizon cannot be read")]
    BadPurgeRecord {
        /// The entry's number (from 1).
        seq: u64,
    },
    /// The ledger directory has no checkpoint log, or one without a signed checkpoint: nothing
    /// signed covers its entries (a ledger signs a checkpoint as it is created).
    #[error("{} is missing or holds no signed checkpoint: no signature covers the entries", path.display())]
    NoCheckpointLog {
        /// The checkpoint log.
        path: std::path::PathBuf,
    },
    /// The checkpoint log is damaged before notes signed by the key.
    #[error("{} is damaged at offset {offset} before further signed checkpoints", path.display())]
    CheckpointHole {
        /// The checkpoint log.
        path: std::path::PathBuf,
        /// Offset of the damaged frame.
        offset: u64,
    },
    /// The ledger's segments could not be read, or are damaged.
    #[error("cannot read the ledger's segments: {0}")]
    Segment(#[source] SegmentError),
    /// An entry's leaf or fields are malformed or do not match.
    #[error("entry {seq}: {source}")]
    Entry {
        /// The entry's number (from 1).
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
        /// Salts and plaintext, or `null` once purged. Required: a line without it is refused.
        #[serde(deserialize_with = "required")]
        fields: Option<Vec<ExportField>>,
    },
    /// One signed checkpoint note.
    Checkpoint {
        /// The note.
        note: String,
    },
}

/// Deserializes an `Option` whose key must be present (serde would default a missing one to `None`).
fn required<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<ExportField>>, D::Error> {
    Option::deserialize(d)
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

/// The export fields of a stored entry: `None` once purged.
fn export_fields(e: &crate::StoredEntry) -> Option<Vec<ExportField>> {
    if e.purged() {
        return None;
    }
    Some(
        e.fields
            .iter()
            .filter_map(|f| {
                let (salt, value) = f.plaintext.as_ref()?;
                Some(ExportField { name: f.name.clone(), salt: hex::encode(salt), value: value.clone() })
            })
            .collect(),
    )
}

/// Writes an export of the whole ledger (entries numbered from 1), signing a checkpoint of it
/// first so it is covered. This is the gateway's side; verifiers never sign.
pub fn write_export(ledger: &Ledger, mut w: impl Write) -> Result<ExportSummary, VerifyError> {
    let (latest, _) = ledger.checkpoint()?.ok_or(VerifyError::Uncovered { uncovered: 0 })?;
    let size = latest.size;
    write_line(&mut w, &ExportLine::Header { format: EXPORT_FORMAT.into(), origin: latest.origin.clone(), size })?;
    let mut purged = 0;
    for index in 0..size {
        let e = ledger.get(index)?;
        let fields = export_fields(&e);
        purged += u64::from(fields.is_none());
        write_line(&mut w, &ExportLine::Entry { seq: index + 1, leaf: STANDARD.encode(&e.leaf), fields })?;
    }
    let notes = ledger.checkpoints_up_to(size)?;
    let count = notes.len();
    for note in notes {
        write_line(&mut w, &ExportLine::Checkpoint { note })?;
    }
    w.flush()?;
    Ok(ExportSummary { entries: size, purged, checkpoints: count, root: latest.root, latest })
}

/// Checks one entry's leaf (at leaf index `index`) and fields; returns the decoded leaf and its hash.
fn check_entry(index: u64, leaf_bytes: &[u8], fields: Option<&[ExportField]>) -> Result<(Leaf, Hash), VerifyError> {
    let bad = |source| VerifyError::Entry { seq: index + 1, source };
    let leaf = entry::decode_leaf(leaf_bytes).map_err(bad)?;
    if leaf.seq != index {
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
    Ok((leaf, merkle::leaf_hash(leaf_bytes)))
}

/// What [`VerifyOptions::on_entry`] is called with: an entry's leaf index (its number − 1) and
/// fields (`None` once purged).
pub type EntryVisitor<'a> = dyn FnMut(u64, Option<&[ExportField]>) + 'a;

/// How [`verify_export_with`] keeps the tree it re-derives, and what it tells the caller.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Keep the re-derived node hashes in files in this directory (created; any node files in it
    /// are overwritten; the caller removes it) instead of in memory (64 bytes per entry).
    pub tree_dir: Option<&'a Path>,
    /// Called with (entries checked, entries the header announces, or 0 when unknown) every
    /// `progress_every` entries.
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
    /// How often `progress` is called (0: every [`PROGRESS_EVERY`] entries).
    pub progress_every: u64,
    /// Called with each entry's leaf index and fields (`None` once purged) after its leaf and
    /// fields were checked. The export as a whole is verified only when [`verify_export_with`]
    /// returns `Ok`: discard what was collected otherwise.
    pub on_entry: Option<&'a mut EntryVisitor<'a>>,
}

/// The re-derived tree: in memory, or in node files for big exports.
enum Rederived {
    Mem(MemTree),
    Files { tree: NodeFiles, pending: Vec<Hash> },
}

impl Rederived {
    fn push(&mut self, leaf: Hash) -> std::io::Result<()> {
        match self {
            Rederived::Mem(t) => t.push(leaf),
            Rederived::Files { tree, pending } => {
                pending.push(leaf);
                if pending.len() >= 4096 {
                    tree.append(pending)?;
                    pending.clear();
                }
            }
        }
        Ok(())
    }

    /// Writes out what is buffered; call before reading nodes.
    fn finish(&mut self) -> std::io::Result<()> {
        if let Rederived::Files { tree, pending } = self {
            tree.append(pending)?;
            pending.clear();
        }
        Ok(())
    }

    fn count(&self) -> u64 {
        match self {
            Rederived::Mem(t) => t.leaf_count(),
            Rederived::Files { tree, pending } => tree.size() + pending.len() as u64,
        }
    }
}

impl NodeStore for Rederived {
    fn node(&self, level: u32, index: u64) -> std::io::Result<Hash> {
        match self {
            Rederived::Mem(t) => t.node(level, index),
            Rederived::Files { tree, .. } => tree.node(level, index),
        }
    }

    fn leaf_count(&self) -> u64 {
        self.count()
    }
}

/// Checks entries, then checkpoints, as they arrive, whatever their source (an export read line by
/// line, or a ledger directory read in place): every leaf and plaintext, every purge against a
/// recorded purge, every note's signature, origin and root. Beside the tree it keeps only the
/// largest checkpoint and one purged entry not yet covered.
struct Checker<'v, 'o> {
    verifier: &'v NoteVerifier,
    options: VerifyOptions<'o>,
    progress_every: u64,
    tree: Rederived,
    /// The origin every checkpoint must carry (the export's header's; for a directory, the first
    /// checkpoint's).
    origin: Option<String>,
    /// Entries the source announces (0: unknown), for progress.
    announced: u64,
    checkpoints: usize,
    latest: Option<Checkpoint>,
    purged: u64,
    /// The purged entry with the latest time among those that no purge record after them covers
    /// yet: (time, leaf index). A purge record of horizon `h` covers every purged entry before it
    /// older than `h`; so all are covered once one with a later horizon than this one's time comes.
    pending_purge: Option<(u64, u64)>,
}

impl<'v, 'o> Checker<'v, 'o> {
    fn new(verifier: &'v NoteVerifier, options: VerifyOptions<'o>) -> Result<Self, VerifyError> {
        let progress_every = if options.progress_every == 0 { PROGRESS_EVERY } else { options.progress_every };
        let tree = match options.tree_dir {
            Some(dir) => Rederived::Files { tree: NodeFiles::open(dir, 0)?, pending: Vec::with_capacity(4096) },
            None => Rederived::Mem(MemTree::default()),
        };
        Ok(Self {
            verifier,
            options,
            progress_every,
            tree,
            origin: None,
            announced: 0,
            checkpoints: 0,
            latest: None,
            purged: 0,
            pending_purge: None,
        })
    }

    /// The entry at leaf `index`: its leaf bytes and fields (`None`: shown as purged).
    fn entry(&mut self, index: u64, leaf_bytes: &[u8], fields: Option<&[ExportField]>) -> Result<(), VerifyError> {
        let (leaf, hash) = check_entry(index, leaf_bytes, fields)?;
        let is_purge_record = leaf.fields.iter().any(|(n, _)| n == entry::keys::PURGE_HORIZON);
        match fields {
            None if is_purge_record => return Err(VerifyError::BadPurgeRecord { seq: index + 1 }),
            None => {
                self.purged += 1;
                if self.pending_purge.is_none_or(|(t, _)| leaf.time_ms > t) {
                    self.pending_purge = Some((leaf.time_ms, index));
                }
            }
            Some(fields) if is_purge_record => {
                let horizon = fields
                    .iter()
                    .find(|f| f.name == entry::keys::PURGE_HORIZON)
                    .and_then(|f| f.value.parse::<u64>().ok())
                    .ok_or(VerifyError::BadPurgeRecord { seq: index + 1 })?;
                if self.pending_purge.is_some_and(|(t, _)| t < horizon) {
                    self.pending_purge = None;
                }
            }
            Some(_) => {}
        }
        self.tree.push(hash)?;
        if let Some(f) = self.options.on_entry.as_mut() {
            f(index, fields);
        }
        if (index + 1).is_multiple_of(self.progress_every)
            && let Some(p) = self.options.progress.as_mut()
        {
            p(index + 1, self.announced);
        }
        Ok(())
    }

    /// One signed note; every entry must have been given before the first.
    fn checkpoint(&mut self, note: &str) -> Result<(), VerifyError> {
        let have = self.tree.count();
        if self.checkpoints == 0 {
            // The entries are over: the tree is whole.
            self.tree.finish()?;
        }
        let index = self.checkpoints;
        let cp = self.verifier.verify(note).map_err(|source| VerifyError::Note { index, source })?;
        if *self.origin.get_or_insert_with(|| cp.origin.clone()) != cp.origin {
            return Err(VerifyError::WrongOrigin { index });
        }
        if cp.size > have {
            return Err(VerifyError::BeyondExport { index, size: cp.size, have });
        }
        let root = merkle::root(&self.tree, cp.size).map_err(VerifyError::Inconsistent)?;
        if root != cp.root {
            return Err(VerifyError::RootMismatch { index, size: cp.size });
        }
        if self.latest.as_ref().is_none_or(|l| cp.size >= l.size) {
            self.latest = Some(cp);
        }
        self.checkpoints += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<ExportSummary, VerifyError> {
        self.tree.finish()?;
        let have = self.tree.count();
        if let Some((_, index)) = self.pending_purge {
            return Err(VerifyError::UnrecordedPurge { seq: index + 1 });
        }
        let latest = self.latest.ok_or(VerifyError::Uncovered { uncovered: have })?;
        if latest.size < have {
            return Err(VerifyError::Uncovered { uncovered: have - latest.size });
        }
        let root = merkle::root(&self.tree, have).map_err(VerifyError::Inconsistent)?;
        Ok(ExportSummary { entries: have, purged: self.purged, checkpoints: self.checkpoints, root, latest })
    }
}

/// Re-derives the tree from an export and checks it against every signed checkpoint in it,
/// keeping the tree in memory.
pub fn verify_export(reader: impl BufRead, verifier: &NoteVerifier) -> Result<ExportSummary, VerifyError> {
    verify_export_with(reader, verifier, VerifyOptions::default())
}

/// Reads the next line of at most `cap` bytes into `buf` (its `\n` or `\r\n` removed); `false` at
/// the end of the export. A longer line is `BadLine` once `cap + 2` bytes were read.
fn read_line_capped(reader: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize, n: usize) -> Result<bool, VerifyError> {
    buf.clear();
    // `cap + 2` bytes hold a line of `cap` bytes and its `\r\n`.
    let read = reader.take(cap as u64 + 2).read_until(b'\n', buf)?;
    if read == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    // Without a newline, a line that fits ended the export; one that does not is too long.
    if buf.len() > cap {
        return Err(VerifyError::BadLine { line: n });
    }
    Ok(true)
}

/// [`verify_export`] with the options of [`VerifyOptions`]. The export is read line by line, each
/// line at most [`MAX_LINE`] bytes; entries precede checkpoints, so the tree is complete at the
/// first checkpoint line and each note is checked as it arrives: beside the tree, only the
/// largest checkpoint is kept.
pub fn verify_export_with(
    reader: impl BufRead,
    verifier: &NoteVerifier,
    options: VerifyOptions<'_>,
) -> Result<ExportSummary, VerifyError> {
    verify_lines(reader, verifier, options, MAX_LINE)
}

/// [`verify_export_with`] with lines capped at `max_line` bytes.
fn verify_lines(
    mut reader: impl BufRead,
    verifier: &NoteVerifier,
    options: VerifyOptions<'_>,
    max_line: usize,
) -> Result<ExportSummary, VerifyError> {
    let mut checker = Checker::new(verifier, options)?;
    // Entries are numbered from `first` (1; 0 in the older v1 format) and announced by the header.
    let mut header: Option<(u64, u64)> = None;
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        n += 1;
        if !read_line_capped(&mut reader, &mut buf, max_line, n)? {
            break;
        }
        let parsed: ExportLine = serde_json::from_slice(&buf).map_err(|_| VerifyError::BadLine { line: n })?;
        match parsed {
            ExportLine::Header { format, origin, size } => {
                let first = match format.as_str() {
                    EXPORT_FORMAT => 1,
                    EXPORT_FORMAT_V1 => 0,
                    _ => return Err(VerifyError::BadHeader),
                };
                if header.is_some() || n != 1 {
                    return Err(VerifyError::BadHeader);
                }
                header = Some((first, size));
                checker.origin = Some(origin);
                checker.announced = size;
            }
            ExportLine::Entry { seq, leaf, fields } => {
                let Some((first, _)) = header else {
                    return Err(VerifyError::BadHeader);
                };
                let expected = checker.tree.count();
                if seq.checked_sub(first) != Some(expected) || checker.checkpoints > 0 {
                    return Err(VerifyError::OutOfOrder { line: n, expected: expected + first });
                }
                let leaf = STANDARD.decode(leaf).map_err(|_| VerifyError::Entry {
                    seq: expected + 1,
                    source: EntryError::Malformed("leaf is not base64"),
                })?;
                checker.entry(expected, &leaf, fields.as_deref())?;
            }
            ExportLine::Checkpoint { note } => {
                let Some((_, announced)) = header else {
                    return Err(VerifyError::BadHeader);
                };
                let have = checker.tree.count();
                if checker.checkpoints == 0 && announced != have {
                    return Err(VerifyError::SizeMismatch { announced, have });
                }
                checker.checkpoint(&note)?;
            }
        }
    }
    let (_, announced) = header.ok_or(VerifyError::BadHeader)?;
    let have = checker.tree.count();
    if announced != have {
        return Err(VerifyError::SizeMismatch { announced, have });
    }
    checker.finish()
}

/// Verifies a ledger directory in place, **read-only**: nothing in it is created, repaired or
/// signed, and no key in it is read. The segments are scanned (a torn tail a crash or a running
/// writer left is not part of the log and is skipped), every entry is checked as in an export,
/// and every note in `checkpoints.log` must be signed by `verifier` (the auditor's copy of the
/// gateway's public key, obtained outside this directory) and match the entries; the last one
/// must cover them all. A directory without a signed checkpoint is refused
/// ([`VerifyError::NoCheckpointLog`]): a ledger signs one when it is created.
pub fn verify_dir(
    dir: &Path,
    verifier: &NoteVerifier,
    options: VerifyOptions<'_>,
) -> Result<ExportSummary, VerifyError> {
    let cp_path = dir.join(CHECKPOINT_LOG);
    let cp_bytes = match std::fs::read(&cp_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VerifyError::NoCheckpointLog { path: cp_path });
        }
        Err(e) => return Err(e.into()),
    };
    let notes = crate::ledger::whole_notes(&cp_bytes, &cp_path, verifier)?;
    if notes.is_empty() {
        return Err(VerifyError::NoCheckpointLog { path: cp_path });
    }
    let mut checker = Checker::new(verifier, options)?;
    let mut failure = None;
    let segments = dir.join("segments");
    if !segments.is_dir() {
        return Err(VerifyError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} has no segments directory", dir.display()),
        )));
    }
    segment::scan(&segments, |index, _, payload| {
        let checked = entry::decode_record(payload)
            .map_err(|source| VerifyError::Entry { seq: index + 1, source })
            .and_then(|e| checker.entry(index, &e.leaf, export_fields(&e).as_deref()));
        // The error only stops the scan; `failure` says why.
        checked.map_err(|e| {
            failure = Some(e);
            SegmentError::Hook(String::new())
        })
    })
    .map_err(|e| failure.take().unwrap_or(VerifyError::Segment(e)))?;
    for note in &notes {
        checker.checkpoint(note)?;
    }
    checker.finish()
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
    fn export_numbers_entries_from_one_like_every_command() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        let lines = export(&l);
        let first: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        let last: serde_json::Value = serde_json::from_str(&lines[10]).unwrap();
        assert_eq!((first["seq"].as_u64(), last["seq"].as_u64()), (Some(1), Some(10)));
    }

    #[test]
    fn export_verifies_and_any_tampering_is_caught_at_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        let v = l.verifier().clone();
        let lines = export(&l);
        let s = verify(&lines, &v).unwrap();
        assert_eq!((s.entries, s.checkpoints, s.latest.size), (10, 4, 10));
        assert_eq!(s.root, l.head().unwrap().1);

        // Changing a plaintext value.
        let mut bad = lines.clone();
        bad[4] = bad[4].replace("\"a3\"", "\"a9\"");
        assert!(matches!(verify(&bad, &v), Err(VerifyError::Entry { seq: 4, .. })));
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
        // ... or by setting them to null, or by removing them: no recorded purge covers entry 3.
        let mut line: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        line["fields"] = serde_json::Value::Null;
        let mut bad = lines.clone();
        bad[3] = line.to_string();
        assert!(matches!(verify(&bad, &v), Err(VerifyError::UnrecordedPurge { seq: 3 })), "{:?}", verify(&bad, &v));
        line.as_object_mut().unwrap().remove("fields");
        bad[3] = line.to_string();
        assert!(matches!(verify(&bad, &v), Err(VerifyError::BadLine { line: 4 })));
        // Another key.
        let other = NoteSigner::from_pkcs8("shuzhu.test/audit", &NoteSigner::generate_pkcs8().unwrap()).unwrap();
        assert!(matches!(verify(&lines, &other.verifier()), Err(VerifyError::Note { .. })));
        // No checkpoint at all.
        let bare: Vec<String> = lines.iter().filter(|l| !l.contains("\"checkpoint\"")).cloned().collect();
        assert!(matches!(verify(&bare, &v), Err(VerifyError::Uncovered { uncovered: 10 })));
    }

    #[test]
    fn a_tree_kept_in_files_verifies_alike_reports_progress_and_hands_over_each_entry() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(&dir.path().join("ledger"), &key);
        l.purge_before(EntryFields::new(100), 3).unwrap();
        let lines = export(&l);
        let in_memory = verify(&lines, l.verifier()).unwrap();
        let tree_dir = dir.path().join("rederived");
        let mut seen = Vec::new();
        let mut ticks = Vec::new();
        let mut on_entry = |seq: u64, fields: Option<&[ExportField]>| {
            let agency = fields.and_then(|f| f.iter().find(|x| x.name == "agency")).map(|x| x.value.clone());
            seen.push((seq, agency));
        };
        let mut progress = |done: u64, total: u64| ticks.push((done, total));
        let options = VerifyOptions {
            tree_dir: Some(&tree_dir),
            progress: Some(&mut progress),
            progress_every: 4,
            on_entry: Some(&mut on_entry),
        };
        let in_files = verify_export_with(lines.join("\n").as_bytes(), l.verifier(), options).unwrap();
        assert_eq!(in_files, in_memory);
        assert!(tree_dir.join("level-00.hash").exists(), "the node hashes went to files");
        assert_eq!(ticks, [(4, 11), (8, 11)]);
        let mut want: Vec<(u64, Option<String>)> = (0..10).map(|i| (i, (i >= 3).then(|| format!("a{i}")))).collect();
        want.push((10, None));
        assert_eq!(seen, want, "purged entries come without fields");
        // Tampering is caught the same way with the tree in files.
        let mut bad = lines.clone();
        bad[5] = bad[5].replace("\"a4\"", "\"a8\"");
        let options = VerifyOptions { tree_dir: Some(&tree_dir), ..VerifyOptions::default() };
        let r = verify_export_with(bad.join("\n").as_bytes(), l.verifier(), options);
        assert!(matches!(r, Err(VerifyError::Entry { seq: 5, .. })));
        let mut bad = lines.clone();
        bad.swap(6, 7);
        let options = VerifyOptions { tree_dir: Some(&tree_dir), ..VerifyOptions::default() };
        let r = verify_export_with(bad.join("\n").as_bytes(), l.verifier(), options);
        assert!(matches!(r, Err(VerifyError::OutOfOrder { line: 7, expected: 6 })));
    }

    #[test]
    fn purged_entries_still_verify() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        l.purge_before(EntryFields::new(100), 5).unwrap();
        let lines = export(&l);
        let s = verify(&lines, l.verifier()).unwrap();
        assert_eq!((s.entries, s.purged), (11, 5));
        assert!(!lines[1].contains("\"a0\""), "purged plaintext is not exported");
    }

    #[test]
    fn a_purge_verifies_only_before_its_record_and_its_horizon() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        l.purge_before(EntryFields::new(100).with("action", "purge"), 5).unwrap();
        l.append(EntryFields::new(1).with("decision", "allow")).unwrap();
        let lines = export(&l);
        let v = l.verifier().clone();
        verify(&lines, &v).unwrap();
        let purge = |line: &str| {
            let mut e: serde_json::Value = serde_json::from_str(line).unwrap();
            e["fields"] = serde_json::Value::Null;
            e.to_string()
        };
        // Entry 7 (time 6) is younger than the horizon 5: not covered.
        let mut bad = lines.clone();
        bad[7] = purge(&bad[7]);
        assert!(matches!(verify(&bad, &v), Err(VerifyError::UnrecordedPurge { seq: 7 })));
        // Entry 12 (time 1) is old enough, but comes after the purge record (entry 11).
        let mut bad = lines.clone();
        bad[12] = purge(&bad[12]);
        assert!(matches!(verify(&bad, &v), Err(VerifyError::UnrecordedPurge { seq: 12 })));
        // The purge record itself can never pass for purged: its horizon would be lost.
        let mut bad = lines.clone();
        bad[11] = purge(&bad[11]);
        assert!(matches!(verify(&bad, &v), Err(VerifyError::BadPurgeRecord { seq: 11 })));
        // Entry 5 (time 4) was genuinely purged; a forged horizon breaks the purge record's digest.
        assert!(lines[5].contains("\"fields\":null"));
        let mut bad = lines.clone();
        bad[11] = bad[11].replace("\"value\":\"5\"", "\"value\":\"50\"");
        assert!(matches!(verify(&bad, &v), Err(VerifyError::Entry { seq: 11, .. })));
    }

    #[test]
    fn a_directory_verifies_read_only_against_an_outside_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        l.purge_before(EntryFields::new(100), 5).unwrap();
        let v = l.verifier().clone();
        l.close().unwrap();
        let before: Vec<(std::path::PathBuf, Vec<u8>)> = walk(dir.path());
        let s = verify_dir(dir.path(), &v, VerifyOptions::default()).unwrap();
        assert_eq!((s.entries, s.purged, s.latest.size), (11, 5, 11));
        assert_eq!(walk(dir.path()), before, "nothing in the directory changed");
        let other = NoteSigner::from_pkcs8("shuzhu.test/audit", &NoteSigner::generate_pkcs8().unwrap()).unwrap();
        assert!(matches!(
            verify_dir(dir.path(), &other.verifier(), VerifyOptions::default()),
            Err(VerifyError::Note { .. })
        ));
        std::fs::remove_file(dir.path().join(CHECKPOINT_LOG)).unwrap();
        let r = verify_dir(dir.path(), &v, VerifyOptions::default());
        assert!(matches!(r, Err(VerifyError::NoCheckpointLog { .. })), "{r:?}");
        assert!(!dir.path().join(CHECKPOINT_LOG).exists());
    }

    /// Every file under `dir` with its bytes, sorted.
    fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
        out.sort();
        out
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

    /// Counts the bytes the verifier pulls from its source.
    struct Counting<R> {
        inner: R,
        read: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: std::io::Read> std::io::Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    #[test]
    fn a_line_longer_than_the_cap_is_refused_without_being_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        let lines = export(&l);
        // The header, two entries, then a line of 4 × MAX_LINE bytes with no newline.
        let head = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]);
        let huge = std::io::repeat(b'x').take(4 * MAX_LINE as u64);
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let source = Counting { inner: head.as_bytes().chain(huge), read: read.clone() };
        let r = verify_export(std::io::BufReader::new(source), l.verifier());
        assert!(matches!(r, Err(VerifyError::BadLine { line: 4 })), "{r:?}");
        assert!(read.get() < head.len() as u64 + MAX_LINE as u64 + (64 << 10), "read {} bytes", read.get());
    }

    #[test]
    fn lines_up_to_the_cap_are_read_and_longer_ones_refused() {
        let mut buf = Vec::new();
        let mut r: &[u8] = b"abcd\nabcde\r\nabcdefgh\nxyz";
        assert!(read_line_capped(&mut r, &mut buf, 5, 1).unwrap());
        assert_eq!(buf, b"abcd");
        assert!(read_line_capped(&mut r, &mut buf, 5, 2).unwrap(), "exactly the cap, with \\r\\n");
        assert_eq!(buf, b"abcde");
        assert!(matches!(read_line_capped(&mut r, &mut buf, 5, 3), Err(VerifyError::BadLine { line: 3 })));
        let mut r: &[u8] = b"xyz";
        assert!(read_line_capped(&mut r, &mut buf, 5, 1).unwrap(), "a last line without newline");
        assert_eq!(buf, b"xyz");
        assert!(!read_line_capped(&mut r, &mut buf, 5, 2).unwrap());
        // A whole export verifies under a cap just above its longest line, and not under it.
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        let lines = export(&l);
        let longest = lines.iter().map(String::len).max().unwrap();
        let text = lines.join("\n");
        assert!(verify_lines(text.as_bytes(), l.verifier(), VerifyOptions::default(), longest).is_ok());
        let r = verify_lines(text.as_bytes(), l.verifier(), VerifyOptions::default(), longest - 1);
        assert!(matches!(r, Err(VerifyError::BadLine { .. })));
    }

    #[test]
    fn each_checkpoint_is_checked_as_it_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let l = filled(dir.path(), &key);
        let mut lines = export(&l);
        let first_cp = lines.iter().position(|x| x.contains("\"checkpoint\"")).unwrap();
        // Another key signed the first note; a later line is garbage. The note is refused first:
        // it was checked when read, not kept for the end.
        let other = NoteSigner::from_pkcs8("shuzhu.test/audit", &NoteSigner::generate_pkcs8().unwrap()).unwrap();
        let (cp, _) = l.checkpoint().unwrap().unwrap();
        lines[first_cp] = serde_json::to_string(&ExportLine::Checkpoint { note: other.sign(&cp) }).unwrap();
        lines.push("not json".into());
        assert!(matches!(verify(&lines, l.verifier()), Err(VerifyError::Note { index: 0, .. })));
        // The size is checked at the first checkpoint too, and an entry after a checkpoint is refused.
        let mut lines = export(&l);
        lines.remove(first_cp - 1);
        lines.push("not json".into());
        assert!(matches!(verify(&lines, l.verifier()), Err(VerifyError::SizeMismatch { announced: 10, have: 9 })));
        let mut lines = export(&l);
        let entry = lines[1].clone();
        lines.insert(first_cp + 1, entry);
        assert!(matches!(verify(&lines, l.verifier()), Err(VerifyError::OutOfOrder { .. })));
    }
}
