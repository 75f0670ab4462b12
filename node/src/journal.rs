//! The node's release journal: every `Aggregate` release (and every local-policy refusal) as one
//! record in a hash-chained journal, durable before the node answers, and the signed receipt the
//! node returns for each release.
//!
//! The journal lives in its own directory (the node config's `journal`, by default `journal` beside the
//! store; nodes before that kept it in `STORE/journal/`, see [`move_legacy`]) as segment files of the ledger crate
//! ([`shuzhu_ledger::segment`]: length + CRC framed records, `fdatasync`ed with group commit,
//! torn tails truncated on open). Each record is the canonical JSON of a [`JournalRecord`]; it
//! carries `prev`, the SHA-256 of the previous record's bytes (64 zeros for the first), so
//! deleting, reordering or editing any record breaks the chain at that point. A record's hash is
//! the SHA-256 of its bytes. [`ReleaseJournal::open`] refuses a journal whose chain does not
//! verify: the node fails closed rather than journal onto a broken chain.

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use shuzhu_ledger::receipt::ReceiptSigner;
use shuzhu_ledger::segment::{self, FsIo, SegmentError, SegmentIo, SegmentLog};

/// Name of the journal directory inside the node's store.
pub const JOURNAL_DIR: &str = "journal";
/// Version of the record encoding.
pub const RECORD_VERSION: u32 = 1;
/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Size at which a new segment is started.
const ROLL_BYTES: u64 = 16 << 20;

/// Why the journal could not be opened, appended to or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The segment files failed (I/O, damage, or an earlier failed sync).
    #[error("release journal: {0}")]
    Segment(#[from] SegmentError),
    /// A file or directory could not be created, read or written.
    #[error("release journal: cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A record is not a journal record.
    #[error("release journal record {seq} is malformed")]
    Malformed {
        /// Position of the record.
        seq: u64,
    },
    /// The chain is broken at a record.
    #[error("release journal chain is broken at record {seq}: {what}")]
    Broken {
        /// Position of the record.
        seq: u64,
        /// What does not match.
        what: &'static str,
    },
    /// A record of more than the largest frame.
    #[error("release journal record is too large")]
    TooLarge,
    /// Another process (named by its pid) holds the journal open for writing, or the lock failed.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// A journal in the old place (inside the store) and one in the configured place both hold records.
    #[error(
        "two release journals: {old} (inside the store, the old place) and {new} (configured) both hold records; keep the one this node wrote last, move the other away and start again"
    )]
    TwoJournals {
        /// The journal inside the store.
        old: String,
        /// The configured journal.
        new: String,
    },
    /// The journal's records name another node.
    #[error("release journal {dir} holds records of node {found}, not of this node {expected}")]
    OtherNode {
        /// The journal directory.
        dir: String,
        /// The node its records name.
        found: String,
        /// This node's id.
        expected: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> JournalError + use<'a> {
    move |source| JournalError::Io { op, path: path.to_owned(), source }
}

/// Whether a record is a release or a refusal.
pub const KIND_RELEASE: &str = "release";
/// A local-policy refusal.
pub const KIND_REFUSAL: &str = "refusal";

/// What the node did for one request, as the caller describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Release {
    /// [`KIND_RELEASE`] or [`KIND_REFUSAL`].
    pub kind: &'static str,
    /// The gateway's request id.
    pub request_id: String,
    /// The gateway that asked (from its certificate).
    pub gateway: String,
    /// The agency it asked for.
    pub agency: String,
    /// Dataset.
    pub dataset: String,
    /// Measure ids.
    pub measures: Vec<String>,
    /// Period `YYYYMM..YYYYMM`.
    pub period: String,
    /// Group-by dimensions.
    pub group_by: Vec<String>,
    /// Filters as `dim=v1|v2`.
    pub filters: Vec<String>,
    /// SHA-256 (hex) of what was returned; empty for a refusal.
    pub release_digest: String,
    /// Why it was refused; empty for a release.
    pub reason: String,
}

/// One journal record. Field order is the canonical order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JournalRecord {
    /// Encoding version.
    pub v: u32,
    /// Position in the journal, from 0.
    pub seq: u64,
    /// SHA-256 (hex) of the previous record's bytes.
    pub prev: String,
    /// RFC 3339 UTC time.
    pub time: String,
    /// Node id.
    pub node: String,
    /// `release` or `refusal`.
    pub kind: String,
    /// Request id.
    pub request_id: String,
    /// Gateway id.
    pub gateway: String,
    /// Agency.
    pub agency: String,
    /// Dataset.
    pub dataset: String,
    /// Measures.
    pub measures: Vec<String>,
    /// Period.
    pub period: String,
    /// Group-by dimensions.
    pub group_by: Vec<String>,
    /// Filters.
    pub filters: Vec<String>,
    /// Release digest (empty for a refusal).
    pub release_digest: String,
    /// Refusal reason (empty for a release).
    pub reason: String,
}

impl JournalRecord {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings, numbers and vectors of strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// What the record describes, without its place in the chain.
    pub fn release(&self) -> Release {
        Release {
            kind: if self.kind == KIND_REFUSAL { KIND_REFUSAL } else { KIND_RELEASE },
            request_id: self.request_id.clone(),
            gateway: self.gateway.clone(),
            agency: self.agency.clone(),
            dataset: self.dataset.clone(),
            measures: self.measures.clone(),
            period: self.period.clone(),
            group_by: self.group_by.clone(),
            filters: self.filters.clone(),
            release_digest: self.release_digest.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// SHA-256 of `bytes`, hex.
pub fn record_hash(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// One record as read back, with its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    /// The record.
    pub record: JournalRecord,
    /// SHA-256 (hex) of its bytes.
    pub hash: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// What checking a journal established.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// Records whose chain verified.
    pub records: u64,
    /// Of which releases.
    pub releases: u64,
    /// Of which refusals.
    pub refusals: u64,
    /// Hash of the last record ([`GENESIS`] when empty).
    pub head: String,
    /// Bytes of a partly written last frame that a read-only check skipped (a node's next open
    /// truncates them).
    pub torn_bytes: u64,
}

/// Checks one record against its position and predecessor; returns its hash.
fn check_link(seq: u64, bytes: &[u8], prev: &str) -> Result<(JournalRecord, String), JournalError> {
    let record: JournalRecord = serde_json::from_slice(bytes).map_err(|_| JournalError::Malformed { seq })?;
    if record.seq != seq {
        return Err(JournalError::Broken { seq, what: "record is out of place" });
    }
    if record.prev != prev {
        return Err(JournalError::Broken { seq, what: "prev does not match the previous record's hash" });
    }
    if record.encode() != bytes {
        return Err(JournalError::Broken { seq, what: "record is not in canonical form" });
    }
    Ok((record, record_hash(bytes)))
}

/// Verifies a sequence of record bytes as a chain from the genesis.
pub fn check_chain(records: impl IntoIterator<Item = Vec<u8>>) -> Result<(Vec<ReadRecord>, ChainReport), JournalError> {
    let mut out = Vec::new();
    let mut report = ChainReport { head: GENESIS.into(), ..Default::default() };
    for (seq, bytes) in records.into_iter().enumerate() {
        let (record, hash) = check_link(seq as u64, &bytes, &report.head)?;
        report.records += 1;
        if record.kind == KIND_REFUSAL {
            report.refusals += 1;
        } else {
            report.releases += 1;
        }
        report.head = hash.clone();
        out.push(ReadRecord { record, hash, bytes });
    }
    Ok((out, report))
}

/// Reads every record of a journal directory without changing it, stopping before a partly
/// written last frame (as a node that is appending may leave for an instant). The segment files
/// are read by the ledger crate's own scanner ([`segment::scan`]): one implementation of the
/// frame format for the ledger and the journal.
pub fn read_dir_records(dir: &Path) -> Result<(Vec<Vec<u8>>, u64), JournalError> {
    let mut out = Vec::new();
    let scanned = segment::scan(dir, |_, _, payload| {
        out.push(payload.to_vec());
        Ok(())
    })?;
    Ok((out, scanned.torn.map_or(0, |t| t.dropped_bytes)))
}

/// Reads and verifies a journal: a journal directory, a node store directory holding `journal/`,
/// or an export file (one record per line, as `shuzhu node journal export` writes).
pub fn load(path: &Path) -> Result<(Vec<ReadRecord>, ChainReport), JournalError> {
    if path.is_file() {
        let f = fs::File::open(path).map_err(io_err("open", path))?;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(f).lines() {
            let line = line.map_err(io_err("read", path))?;
            if !line.trim().is_empty() {
                lines.push(line.into_bytes());
            }
        }
        return check_chain(lines);
    }
    let dir = if path.join(JOURNAL_DIR).is_dir() { path.join(JOURNAL_DIR) } else { path.to_path_buf() };
    let (bytes, torn) = read_dir_records(&dir)?;
    let (records, mut report) = check_chain(bytes)?;
    report.torn_bytes = torn;
    Ok((records, report))
}

/// Writes every record of a journal, one canonical JSON line each; returns how many.
pub fn export(path: &Path, mut out: impl Write) -> Result<u64, JournalError> {
    let (records, report) = load(path)?;
    for r in &records {
        out.write_all(&r.bytes).and_then(|()| out.write_all(b"\n")).map_err(io_err("write", Path::new("export")))?;
    }
    Ok(report.records)
}

/// One record a repair would cut, as shown to the operator before it cuts (never a personal value:
/// journal records hold masked texts only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutRecord {
    /// Position in the journal.
    pub position: u64,
    /// What the record says of itself (`seq`, `kind`, `time`, `gateway`, `request_id`), or why it could
    /// not be read.
    pub summary: String,
}

/// What `shuzhu node journal repair` would do to a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairPlan {
    /// The journal directory.
    pub dir: PathBuf,
    /// Records whose chain verifies from the genesis (kept).
    pub keep: u64,
    /// Why the record after them does not chain (`None` when the whole journal verifies).
    pub broken: Option<String>,
    /// The records from the first broken one to the end (cut).
    pub cut: Vec<CutRecord>,
    /// Bytes of a torn last frame (dropped as a node's open would).
    pub torn_bytes: u64,
}

/// Reads a journal directory and finds where its chain first breaks: everything before stays, the
/// broken record and all after it would be cut. Changes nothing.
pub fn plan_repair(dir: &Path) -> Result<RepairPlan, JournalError> {
    let (records, torn_bytes) = read_dir_records(dir)?;
    let mut head = GENESIS.to_string();
    let mut keep = 0u64;
    let mut broken = None;
    for (i, bytes) in records.iter().enumerate() {
        match check_link(i as u64, bytes, &head) {
            Ok((_, hash)) => {
                head = hash;
                keep += 1;
            }
            Err(e) => {
                broken = Some(e.to_string());
                break;
            }
        }
    }
    let cut = records
        .iter()
        .enumerate()
        .skip(keep as usize)
        .map(|(i, bytes)| CutRecord {
            position: i as u64,
            summary: match serde_json::from_slice::<JournalRecord>(bytes) {
                Ok(r) => format!(
                    "seq {} {} at {} from gateway {} request {}",
                    r.seq,
                    r.kind.chars().take(16).collect::<String>(),
                    r.time.chars().take(40).collect::<String>(),
                    r.gateway.chars().take(63).collect::<String>(),
                    r.request_id.chars().take(64).collect::<String>()
                ),
                Err(_) => format!("{} bytes that are not a journal record", bytes.len()),
            },
        })
        .collect();
    Ok(RepairPlan { dir: dir.to_owned(), keep, broken, cut, torn_bytes })
}

/// Cuts a journal back to the records of `plan.keep` (the part whose chain verifies), after copying
/// every segment file, as it was, into `backup` (a new directory). Holds the journal's lock throughout,
/// so a running node (which holds it) makes the repair refuse. The kept records are rewritten byte for
/// byte into one segment that replaces the first (written to a temporary file, synced, then renamed);
/// later segments are then removed. Durable when it returns: files and directories are synced.
pub fn repair(plan: &RepairPlan, backup: &Path) -> Result<(), JournalError> {
    let dir = plan.dir.as_path();
    let _lock = crate::lock::DirLock::acquire(dir, "release journal")?;
    // Read again under the lock: what was planned must still be what is there.
    let again = plan_repair(dir)?;
    if again != *plan {
        return Err(JournalError::Broken { seq: plan.keep, what: "journal changed since the repair was planned" });
    }
    let (records, _) = read_dir_records(dir)?;
    fs::create_dir(backup).map_err(io_err("create", backup))?;
    let segments = segment::list_segments(dir)?;
    for first in &segments {
        let from = segment::segment_path(dir, *first);
        let to = segment::segment_path(backup, *first);
        fs::copy(&from, &to).map_err(io_err("copy", &from))?;
        fs::File::open(&to).and_then(|f| f.sync_all()).map_err(io_err("sync", &to))?;
    }
    segment::sync_dir(backup).map_err(io_err("sync", backup))?;
    let mut bytes = segment::header(0).to_vec();
    for r in records.iter().take(plan.keep as usize) {
        segment::encode_frame(r, &mut bytes);
    }
    let tmp = dir.join("repair.tmp");
    let first = segment::segment_path(dir, 0);
    let mut f = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_err("write", &tmp))?;
    drop(f);
    fs::rename(&tmp, &first).map_err(io_err("replace", &first))?;
    segment::sync_dir(dir).map_err(io_err("sync", dir))?;
    for later in segments.iter().filter(|s| **s != 0) {
        let path = segment::segment_path(dir, *later);
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
    }
    segment::sync_dir(dir).map_err(io_err("sync", dir))?;
    Ok(())
}

/// Whether `dir` holds journal segments.
fn has_segments(dir: &Path) -> bool {
    dir.is_dir() && segment::list_segments(dir).is_ok_and(|s| !s.is_empty())
}

/// Moves a journal from the old place (`STORE/journal`, before the journal had a place of its own) to
/// the configured `journal` directory, when the old one holds records and the new one does not.
/// Returns whether it moved one. Both holding records is refused: which one is current only the
/// operator can tell. The caller holds the store's lock, so no node is writing the old journal.
pub fn move_legacy(store: &Path, journal: &Path) -> Result<bool, JournalError> {
    let old = store.join(JOURNAL_DIR);
    if old == journal || !has_segments(&old) {
        return Ok(false);
    }
    if has_segments(journal) {
        return Err(JournalError::TwoJournals { old: old.display().to_string(), new: journal.display().to_string() });
    }
    if journal.exists() {
        // An empty journal directory (a node that started with the new layout and journalled nothing,
        // or only its lock file): nothing in it to keep.
        let lock = journal.join(crate::lock::LOCK_FILE);
        if lock.exists() {
            fs::remove_file(&lock).map_err(io_err("remove", &lock))?;
        }
        fs::remove_dir(journal).map_err(io_err("replace", journal))?;
    }
    if let Some(parent) = journal.parent() {
        fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    fs::rename(&old, journal).map_err(io_err("move", &old))?;
    for d in [Some(store), journal.parent()].into_iter().flatten() {
        segment::sync_dir(d).map_err(io_err("sync", d))?;
    }
    Ok(true)
}

/// The id of a receipt key: the first 16 hex digits of SHA-256 over the 32-byte Ed25519 public key
/// (given as the 64 hex digits of its `.pub` file). Answers and `Describe` carry it, so that a gateway
/// holding another key can say the key changed rather than that the receipt is forged.
pub fn receipt_key_id(public_key_hex: &str) -> Option<String> {
    let bytes = hex::decode(public_key_hex.trim()).ok().filter(|b| b.len() == 32)?;
    Some(hex::encode(&ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()[..8]))
}

/// A record appended: where it is, its hash, and the node's receipt when it has a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Position of the record.
    pub seq: u64,
    /// SHA-256 (hex) of the record.
    pub record_hash: String,
    /// Ed25519 signature over the receipt message (see [`shuzhu_ledger::receipt`]).
    pub receipt: Option<Vec<u8>>,
}

/// The journal a node appends to.
pub struct ReleaseJournal {
    node: String,
    dir: PathBuf,
    log: SegmentLog<()>,
    /// Hash of the last record handed to the log (updated in seq order under the log's queue).
    last: Mutex<String>,
    signer: Option<ReceiptSigner>,
    /// [`receipt_key_id`] of the signer.
    key_id: Option<String>,
    /// The journal's exclusive lock, held while it is open (see [`crate::lock`]).
    _lock: crate::lock::DirLock,
}

impl std::fmt::Debug for ReleaseJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseJournal").field("node", &self.node).field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl ReleaseJournal {
    /// Opens (creating) the journal in `dir`, truncating a torn tail and verifying the chain.
    pub fn open(dir: &Path, node: &str, signer: Option<ReceiptSigner>) -> Result<(Self, ChainReport), JournalError> {
        Self::open_with_io(dir, node, signer, Box::new(FsIo))
    }

    /// [`ReleaseJournal::open`] writing and syncing through `io` (the storage seam tests use).
    pub fn open_with_io(
        dir: &Path,
        node: &str,
        signer: Option<ReceiptSigner>,
        io: Box<dyn SegmentIo>,
    ) -> Result<(Self, ChainReport), JournalError> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let lock = crate::lock::DirLock::acquire(dir, "release journal")?;
        let mut chain_error = None;
        let mut report = ChainReport { head: GENESIS.into(), ..Default::default() };
        let recovery = segment::recover(dir, |seq, _, bytes| match check_link(seq, bytes, &report.head) {
            Ok((record, _)) if record.node != node => {
                chain_error = Some(JournalError::OtherNode {
                    dir: dir.display().to_string(),
                    found: record.node.chars().take(63).collect(),
                    expected: node.to_owned(),
                });
                Err(SegmentError::Hook("node".into()))
            }
            Ok((record, hash)) => {
                report.records += 1;
                if record.kind == KIND_REFUSAL {
                    report.refusals += 1;
                } else {
                    report.releases += 1;
                }
                report.head = hash;
                Ok(())
            }
            Err(e) => {
                chain_error = Some(e);
                Err(SegmentError::Hook("chain".into()))
            }
        });
        if let Some(e) = chain_error {
            return Err(e);
        }
        let recovery = recovery?;
        report.torn_bytes = recovery.torn.as_ref().map_or(0, |t| t.dropped_bytes);
        let log = SegmentLog::open(dir, io, &recovery, ROLL_BYTES, Box::new(|_| Ok(())))?;
        let journal = ReleaseJournal {
            node: node.to_owned(),
            dir: dir.to_owned(),
            log,
            last: Mutex::new(report.head.clone()),
            key_id: signer.as_ref().and_then(|s| receipt_key_id(&s.public_key_hex())),
            signer,
            _lock: lock,
        };
        Ok((journal, report))
    }

    /// The id of the key receipts are signed with, when the node signs them.
    pub fn receipt_key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records durably appended so far.
    pub fn len(&self) -> u64 {
        self.log.durable()
    }

    /// Whether nothing was journalled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one record and returns only once it is synced (group commit), with the receipt of
    /// a release signed when the node has a key.
    pub fn append(&self, release: &Release) -> Result<Appended, JournalError> {
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
        let mut hash = String::new();
        let mut too_large = false;
        let seq = self.log.append(|seq| {
            // Runs under the log's queue lock, so records are built (and chained) in seq order.
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            let r = release;
            let record = JournalRecord {
                v: RECORD_VERSION,
                seq,
                prev: last.clone(),
                time,
                node: self.node.clone(),
                kind: r.kind.into(),
                request_id: r.request_id.clone(),
                gateway: r.gateway.clone(),
                agency: r.agency.clone(),
                dataset: r.dataset.clone(),
                measures: r.measures.clone(),
                period: r.period.clone(),
                group_by: r.group_by.clone(),
                filters: r.filters.clone(),
                release_digest: r.release_digest.clone(),
                reason: r.reason.clone(),
            };
            let bytes = record.encode();
            hash = record_hash(&bytes);
            if bytes.len() <= segment::MAX_PAYLOAD as usize {
                *last = hash.clone();
            } else {
                too_large = true;
            }
            (bytes, ())
        });
        let seq = match seq {
            Ok(seq) => seq,
            Err(SegmentError::TooLarge(_)) if too_large => return Err(JournalError::TooLarge),
            Err(e) => return Err(e.into()),
        };
        let receipt = match (&self.signer, release.kind) {
            (Some(s), KIND_RELEASE) => {
                Some(s.sign(&self.node, seq, &hash, &release.release_digest, &release.request_id))
            }
            _ => None,
        };
        Ok(Appended { seq, record_hash: hash, receipt })
    }
}

#[cfg(test)]
pub(crate) mod seam {
    //! A storage seam for tests: records every write (by request id) and sync, and fails syncs on demand.
    use super::*;

    /// A storage seam that records writes and syncs, and can be told to fail syncs.
    #[derive(Clone, Default)]
    pub(crate) struct Seam {
        pub(crate) events: std::sync::Arc<Mutex<Vec<String>>>,
        pub(crate) fail_sync: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    struct SeamFile(fs::File, Seam);

    impl segment::SegmentFile for SeamFile {
        fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
            // Name every record the write carries by its request id.
            let text = String::from_utf8_lossy(buf);
            let mut events = self.1.events.lock().unwrap();
            for part in text.split("\"request_id\":\"").skip(1) {
                events.push(format!("write {}", part.split('"').next().unwrap()));
            }
            drop(events);
            self.0.write_all(buf)
        }
        fn sync_data(&mut self) -> std::io::Result<()> {
            if self.1.fail_sync.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::other("disk gone"));
            }
            self.0.sync_data()?;
            self.1.events.lock().unwrap().push("sync".into());
            Ok(())
        }
    }

    impl SegmentIo for Seam {
        fn create(&mut self, path: &Path) -> std::io::Result<Box<dyn segment::SegmentFile>> {
            let f = fs::OpenOptions::new().append(true).create_new(true).open(path)?;
            Ok(Box::new(SeamFile(f, self.clone())))
        }
        fn open_append(&mut self, path: &Path) -> std::io::Result<Box<dyn segment::SegmentFile>> {
            Ok(Box::new(SeamFile(fs::OpenOptions::new().append(true).open(path)?, self.clone())))
        }
        fn sync_dir(&mut self, dir: &Path) -> std::io::Result<()> {
            segment::sync_dir(dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::seam::Seam;
    use super::*;
    use shuzhu_ledger::receipt::ReceiptVerifier;

    fn release(i: u32) -> Release {
        Release {
            kind: if i % 3 == 2 { KIND_REFUSAL } else { KIND_RELEASE },
            request_id: format!("req-{i}"),
            gateway: "gw-1".into(),
            agency: "xm-sfj".into(),
            dataset: "cases".into(),
            measures: vec!["cases.closed".into()],
            period: "202401..202406".into(),
            group_by: vec!["region".into()],
            filters: vec![],
            release_digest: if i % 3 == 2 { String::new() } else { format!("{i:064x}") },
            reason: if i % 3 == 2 { "threshold 3 is below this node's own threshold 10".into() } else { String::new() },
        }
    }

    #[test]
    fn records_chain_survive_reopen_and_carry_verifiable_receipts() {
        let tmp = tempfile::tempdir().unwrap();
        let (k, p) = (tmp.path().join("j.pk8"), tmp.path().join("j.pub"));
        ReceiptSigner::generate_files(&k, &p).unwrap();
        let dir = tmp.path().join("store/journal");
        let (j, report) = ReleaseJournal::open(&dir, "court-1", Some(ReceiptSigner::load(&k).unwrap())).unwrap();
        assert_eq!((report.records, report.head.as_str()), (0, GENESIS));
        let verifier = ReceiptVerifier::load(&p).unwrap();
        for i in 0..6 {
            let r = release(i);
            let a = j.append(&r).unwrap();
            assert_eq!(a.seq, u64::from(i));
            match a.receipt {
                Some(sig) => {
                    assert_eq!(r.kind, KIND_RELEASE);
                    assert!(verifier.verify("court-1", a.seq, &a.record_hash, &r.release_digest, &r.request_id, &sig));
                }
                None => assert_eq!(r.kind, KIND_REFUSAL, "refusals carry no receipt"),
            }
        }
        drop(j);
        let (j, report) = ReleaseJournal::open(&dir, "court-1", None).unwrap();
        assert_eq!((report.records, report.releases, report.refusals), (6, 4, 2));
        assert_eq!(j.append(&release(6)).unwrap().seq, 6);
        drop(j);
        let (records, report) = load(&tmp.path().join("store")).unwrap();
        assert_eq!(report.records, 7);
        assert_eq!(records[3].record.request_id, "req-3");
        assert_eq!(records[4].record.prev, records[3].hash);
        assert_eq!(records[6].record.release(), release(6));
        let mut text = Vec::new();
        assert_eq!(export(&dir, &mut text).unwrap(), 7);
        let file = tmp.path().join("export.jsonl");
        fs::write(&file, &text).unwrap();
        assert_eq!(load(&file).unwrap().1, ChainReport { torn_bytes: 0, ..report });
    }

    #[test]
    fn a_deleted_or_edited_record_breaks_the_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, _) = ReleaseJournal::open(tmp.path(), "court-1", None).unwrap();
        for i in 0..5 {
            j.append(&release(i)).unwrap();
        }
        drop(j);
        let mut text = Vec::new();
        export(tmp.path(), &mut text).unwrap();
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        let file = tmp.path().join("x.jsonl");
        let without: Vec<u8> =
            lines.iter().enumerate().filter(|(i, _)| *i != 2).flat_map(|(_, l)| [*l, b"\n"].concat()).collect();
        fs::write(&file, without).unwrap();
        assert!(matches!(load(&file), Err(JournalError::Broken { seq: 2, .. })));
        let edited = String::from_utf8(text.clone()).unwrap().replacen("req-3", "req-9", 1);
        fs::write(&file, edited).unwrap();
        assert!(matches!(load(&file), Err(JournalError::Broken { seq: 4, .. })));
        // The same edit inside the segment (with a fresh checksum) stops the node from opening.
        let seg = segment::segment_path(tmp.path(), 0);
        let (bytes, _) = read_dir_records(tmp.path()).unwrap();
        let mut rebuilt = segment::header(0).to_vec();
        for (i, b) in bytes.iter().enumerate() {
            let b = if i == 1 {
                String::from_utf8(b.clone()).unwrap().replace("req-1", "req-7").into_bytes()
            } else {
                b.clone()
            };
            segment::encode_frame(&b, &mut rebuilt);
        }
        fs::write(&seg, rebuilt).unwrap();
        assert!(matches!(ReleaseJournal::open(tmp.path(), "court-1", None), Err(JournalError::Broken { seq: 2, .. })));
    }

    #[test]
    fn every_append_returns_after_the_sync_that_covers_it_and_fails_closed_after_a_failed_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let seam = Seam::default();
        let (j, _) = ReleaseJournal::open_with_io(tmp.path(), "court-1", None, Box::new(seam.clone())).unwrap();
        let j = std::sync::Arc::new(j);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (j, seam) = (j.clone(), seam.clone());
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let r = release(t * 100 + i);
                        j.append(&r).unwrap();
                        // At the moment append returns, the write of its record is followed by a sync.
                        let events = seam.events.lock().unwrap();
                        let written = format!("write {}", r.request_id);
                        let w = events.iter().position(|e| *e == written).expect("the record was written");
                        assert!(
                            events[w..].iter().any(|e| e == "sync"),
                            "{} acknowledged before its sync",
                            r.request_id
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(j.len(), 100);
        seam.fail_sync.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(j.append(&release(1000)).is_err(), "an append whose sync failed is not acknowledged");
        seam.fail_sync.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(
            matches!(j.append(&release(1001)), Err(JournalError::Segment(SegmentError::Poisoned))),
            "after a failed sync the journal refuses every append until it is reopened"
        );
        assert_eq!(j.len(), 100);
        drop(j);
        // Reopening recovers a whole chain (the unsynced record may or may not have reached the disk).
        let (_, report) = ReleaseJournal::open(tmp.path(), "court-1", None).unwrap();
        assert!((100..=101).contains(&report.records), "{report:?}");
    }

    #[test]
    fn a_torn_tail_is_skipped_by_readers_and_truncated_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        let (j, _) = ReleaseJournal::open(tmp.path(), "court-1", None).unwrap();
        for i in 0..3 {
            j.append(&release(i)).unwrap();
        }
        drop(j);
        let mut frame = Vec::new();
        segment::encode_frame(&[b'{'; 100], &mut frame);
        let mut f = fs::OpenOptions::new().append(true).open(segment::segment_path(tmp.path(), 0)).unwrap();
        f.write_all(&frame[..40]).unwrap();
        drop(f);
        let (_, report) = load(tmp.path()).unwrap();
        assert_eq!((report.records, report.torn_bytes), (3, 40));
        let (j, report) = ReleaseJournal::open(tmp.path(), "court-1", None).unwrap();
        assert_eq!((report.records, report.torn_bytes), (3, 40));
        assert_eq!(j.append(&release(3)).unwrap().seq, 3);
        drop(j);
        assert_eq!(load(tmp.path()).unwrap().1.records, 4);
    }
}
