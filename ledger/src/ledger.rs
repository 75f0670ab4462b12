//! [`Ledger`]: the audit log itself, tying segments, the node-hash store, the sled indexes and
//! signed checkpoints together.
//!
//! Layout of the ledger directory: `segments/` (the durable truth), `tree/` (node hashes, derived),
//! `index/` (sled, derived), `checkpoints.log` (framed signed notes, fsynced). On open the segments
//! are scanned (a torn tail is truncated and reported in [`OpenReport`]), the node store is cut
//! back to the last checkpoint and the rest re-appended, the indexes are brought up to date (or
//! rebuilt when missing, behind, or left mid-purge), and the recovered tree must contain the last
//! signed checkpoint: the ledger refuses to open on anything else. A new ledger signs a checkpoint of
//! size 0 as it is created, so a ledger always has a signed checkpoint: segments holding entries
//! with no signed checkpoint beside them (`checkpoints.log` removed or emptied) are refused
//! ([`LedgerError::Unsealed`]) unless the operator opens them with [`LedgerOptions::init`]. In
//! `checkpoints.log` a torn last
//! frame is cut, but a damaged frame followed by a signed note (a hole, which appends that roll back
//! on failure never leave) refuses the open, naming the file and offset, rather than drop the signed
//! checkpoints after it.
//!
//! An append is acknowledged only after its segment frame is synced and the tree and indexes
//! include it. A checkpoint is signed every N entries, every T seconds (a background thread) and
//! on [`Ledger::close`], never when it is not consistent with the last one signed. Signed
//! checkpoints are verified once (on open, or as they are signed) and kept in memory by size, so
//! proof requests read them without re-reading `checkpoints.log` or taking the signing lock.
//!
//! ```
//! use shuzhu_ledger::{EntryFields, Ledger, LedgerOptions, checkpoint::NoteSigner};
//! let dir = tempfile::tempdir().unwrap();
//! let signer = NoteSigner::from_pkcs8("gw.test/audit", &NoteSigner::generate_pkcs8().unwrap()).unwrap();
//! let verifier = signer.verifier();
//! let ledger = Ledger::open(dir.path(), LedgerOptions::new(signer)).unwrap();
//! let a = ledger.append(EntryFields::new(1).with("decision", "allow")).unwrap();
//! let (size, root) = ledger.head().unwrap();
//! let proof = ledger.inclusion_proof(a.seq, size).unwrap();
//! shuzhu_ledger::merkle::verify_inclusion(a.seq, size, &a.leaf_hash, &proof, &root).unwrap();
//! let note = ledger.close().unwrap().unwrap();
//! assert_eq!(verifier.verify(&note).unwrap().size, 1);
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use ring::rand::SystemRandom;

use crate::checkpoint::{Checkpoint, NoteError, NoteSigner, NoteVerifier};
use crate::entry::{self, EntryError, EntryFields, Prepared, StoredEntry};
use crate::merkle::{self, Hash, MerkleError};
use crate::segment::{self, Committed, FsIo, Location, SegmentError, SegmentIo, SegmentLog, TornTail};
use crate::tree::NodeFiles;

/// Why a ledger operation failed. Messages never contain entry values.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A file or directory could not be created, read, written or synced.
    #[error("audit ledger: cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The segment log failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// The sled index failed.
    #[error("audit index: {0}")]
    Index(#[from] sled::Error),
    /// A proof could not be produced.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// The entry was refused or a stored one is malformed.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// A checkpoint note is malformed or not signed by this ledger's key.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// No entry has that seq.
    #[error("no audit entry {0}")]
    NotFound(u64),
    /// Stored data contradicts itself.
    #[error("audit ledger is corrupt: {0}")]
    Corrupt(&'static str),
    /// The segments hold fewer entries than the last signed checkpoint: entries were lost.
    #[error("audit ledger holds {recovered} entries but checkpoint {checkpoint} was signed")]
    Truncated {
        /// Size of the last signed checkpoint.
        checkpoint: u64,
        /// Entries recovered.
        recovered: u64,
    },
    /// The recovered tree does not have the root the last signed checkpoint has.
    #[error("audit ledger does not match its last signed checkpoint (size {size})")]
    CheckpointMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    /// `checkpoints.log` has a damaged frame with signed notes after it (a hole, not a torn tail):
    /// cutting it would drop signed checkpoints, so the ledger does not open.
    #[error(
        "checkpoint log {path} is damaged at offset {offset} and holds signed checkpoints after it (from offset {next}); \
         refusing to open rather than drop signed checkpoints"
    )]
    CheckpointHole {
        /// The checkpoint log.
        path: PathBuf,
        /// Offset of the damaged frame.
        offset: u64,
        /// Offset of the first frame after it holding a signed note.
        next: u64,
    },
    /// The segments hold entries but `checkpoints.log` is missing or holds no signed checkpoint. A
    /// ledger signs one as it is created, so either the checkpoints were removed (an attacker
    /// hiding a cut) or the ledger predates that; sealing it takes an operator's decision
    /// ([`LedgerOptions::init`]).
    #[error(
        "audit ledger {path} holds {entries} entries but no signed checkpoint (checkpoints.log is missing or empty); \
         refusing to open. If nobody removed the checkpoints (e.g. a ledger from before checkpoints were signed at \
         creation), verify it by other means, then seal it with: shuzhu audit init --ledger {path}"
    )]
    Unsealed {
        /// The ledger directory.
        path: PathBuf,
        /// Entries in the segments.
        entries: u64,
    },
    /// The checkpoints in `checkpoints.log` name another origin than the one this ledger is opened
    /// with (the origin is part of the key name, so none of them could verify).
    #[error(
        "checkpoint log {path} is for origin {found:?}, not {configured:?}; to keep this ledger set [ledger] origin = {found:?}"
    )]
    OriginMismatch {
        /// The checkpoint log.
        path: PathBuf,
        /// Origin of its first checkpoint.
        found: String,
        /// Origin the ledger was opened with.
        configured: String,
    },
    /// The current tree is not consistent with the last signed checkpoint; nothing was signed.
    #[error("refusing to sign checkpoint {now}: not consistent with signed checkpoint {last}")]
    Inconsistent {
        /// Size of the last signed checkpoint.
        last: u64,
        /// Size of the tree now.
        now: u64,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LedgerError + use<'a> {
    move |source| LedgerError::Io { op, path: path.to_owned(), source }
}

/// How to open a ledger.
#[derive(Debug)]
pub struct LedgerOptions {
    /// Signs checkpoints.
    pub signer: NoteSigner,
    /// Checkpoint origin line; defaults to the signer's key name.
    pub origin: String,
    /// A segment is rolled once it reaches this many bytes.
    pub segment_bytes: u64,
    /// Sign a checkpoint once this many entries were appended since the last (0: never by count).
    pub checkpoint_every: u64,
    /// Sign a checkpoint this often when entries were appended (None: never by time).
    pub checkpoint_interval: Option<Duration>,
    /// Rehash every entry on open and check the result against the last signed checkpoint, so a
    /// ledger altered on disk is refused at start (O(n)); otherwise only the entries after the
    /// last checkpoint are rehashed and old ones are checked by `verify`.
    pub verify_on_open: bool,
    /// Seal segments that have no signed checkpoint beside them by signing one over them (see
    /// [`LedgerError::Unsealed`]). Off by default: only an operator who has checked the entries by
    /// other means turns it on (`shuzhu audit init`).
    pub init: bool,
}

impl LedgerOptions {
    /// Defaults: 64 MiB segments, a checkpoint every 1 000 entries or 10 s.
    pub fn new(signer: NoteSigner) -> Self {
        Self {
            origin: signer.name().to_owned(),
            signer,
            segment_bytes: 64 << 20,
            checkpoint_every: 1000,
            checkpoint_interval: Some(Duration::from_secs(10)),
            verify_on_open: false,
            init: false,
        }
    }
}

/// What an append returns once the entry is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The entry's seq, which is also its leaf index.
    pub seq: u64,
    /// Its RFC 9162 leaf hash.
    pub leaf_hash: Hash,
}

/// What opening found and repaired.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// Entries recovered.
    pub entries: u64,
    /// A torn tail that was truncated (a crash mid-append; nothing acknowledged is lost).
    pub torn_tail: Option<TornTail>,
    /// Seq the index was brought up to date from (`Some(0)`: rebuilt whole), if it was behind.
    pub index_caught_up_from: Option<u64>,
    /// The sled index was unreadable (a crash can leave it so) and was discarded and rebuilt.
    pub index_discarded: bool,
}

/// Which entries [`Ledger::list`] returns. All given conditions must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Earliest time, inclusive (ms since the epoch).
    pub from_ms: Option<u64>,
    /// Latest time, exclusive.
    pub to_ms: Option<u64>,
    /// Agency.
    pub agency: Option<String>,
    /// Principal.
    pub principal: Option<String>,
    /// Indicator.
    pub indicator: Option<String>,
    /// Decision.
    pub decision: Option<String>,
}

/// One page of [`Ledger::list`].
#[derive(Clone, Debug, Default)]
pub struct Listed {
    /// The entries.
    pub entries: Vec<StoredEntry>,
    /// Cursor for the next page, if there may be more.
    pub next: Option<Vec<u8>>,
}

/// What [`Ledger::purge_before`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Entries whose plaintext and salts were deleted.
    pub entries: u64,
    /// Segment files rewritten.
    pub segments: u64,
}

/// Value carried from an append to the commit hook.
struct Item {
    leaf_hash: Hash,
    time_ms: u64,
    index_values: Vec<(u8, String)>,
}

/// Where one signed checkpoint's note sits in `checkpoints.log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CpRef {
    /// The checkpoint's tree size.
    size: u64,
    /// Offset of its frame in `checkpoints.log`.
    offset: u64,
}

/// The signed checkpoints, verified once (on open, or as they are signed) and kept in memory, so
/// a proof request never re-reads `checkpoints.log` whole nor waits for the lock that appends
/// and signing take.
#[derive(Debug, Default)]
struct Signed {
    /// Every signed checkpoint, in signing order (sizes strictly increase: a checkpoint is only
    /// signed for a tree that grew and is consistent with the last one).
    refs: Vec<CpRef>,
    /// The last signed checkpoint and its note.
    latest: Option<(Checkpoint, String)>,
}

/// The signer's side of `checkpoints.log`; locked while a checkpoint is signed.
struct CpState {
    file: File,
    path: PathBuf,
    /// A failed append could not be cut back: the file's end is unknown, so nothing more is signed
    /// until the ledger is reopened (which cuts the torn tail).
    failed: bool,
}

/// What appending a frame to `checkpoints.log` needs of its storage; [`File`] is the storage, tests
/// put a failing one in its place.
trait CpStore: Write {
    /// Makes the written bytes durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file back to `len` bytes and makes the cut durable.
    fn cut(&mut self, len: u64) -> io::Result<()>;
}

impl CpStore for File {
    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.sync_data()
    }
}

/// Appends `frame` to a file ending at `end` and syncs it; on a write or sync error (a full disk may
/// take part of the frame) cuts the file back to `end`, so that the next frame does not follow a
/// fragment (on reopen the torn frame would be cut together with every signed frame after it).
/// The error is returned with whether the cut succeeded.
fn append_frame(file: &mut impl CpStore, end: u64, frame: &[u8]) -> Result<(), (io::Error, bool)> {
    let written = file.write_all(frame).and_then(|()| file.sync());
    written.map_err(|e| (e, file.cut(end).is_ok()))
}

struct Shared {
    segments_dir: PathBuf,
    tree: RwLock<NodeFiles>,
    index: sled::Tree,
    db: sled::Db,
    cp: Mutex<CpState>,
    /// Read by proof requests without taking `cp`; written (briefly) by the signer.
    signed: RwLock<Signed>,
    /// Read-only handle on `checkpoints.log` for positioned reads of single notes.
    cp_reader: File,
    cp_path: PathBuf,
    signer: NoteSigner,
    verifier: NoteVerifier,
    origin: String,
    checkpoint_every: u64,
    /// Write-locked while purge swaps segment files, read-locked by readers of records.
    files: RwLock<()>,
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // Every update under these locks is a single step; a panicking holder leaves them whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
fn read<X>(m: &RwLock<X>) -> RwLockReadGuard<'_, X> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}
fn write<X>(m: &RwLock<X>) -> RwLockWriteGuard<'_, X> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}

const META_INDEXED: &[u8] = b"M:indexed";
const META_DIRTY: &[u8] = b"M:dirty";

fn seq_key(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'S');
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn time_key(time_ms: u64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'T');
    k.extend_from_slice(&time_ms.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn field_prefix(kind: u8, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + value.len() + 8);
    k.push(b'F');
    k.push(kind);
    k.extend_from_slice(&(value.len().min(u16::MAX as usize) as u16).to_be_bytes());
    k.extend_from_slice(value.as_bytes());
    k
}

fn field_key(kind: u8, value: &str, seq: u64) -> Vec<u8> {
    let mut k = field_prefix(kind, value);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn location_value(loc: Location, time_ms: u64) -> [u8; 24] {
    let mut v = [0u8; 24];
    v[..8].copy_from_slice(&loc.segment.to_be_bytes());
    v[8..16].copy_from_slice(&loc.offset.to_be_bytes());
    v[16..].copy_from_slice(&time_ms.to_be_bytes());
    v
}

fn parse_location(v: &[u8]) -> Option<Location> {
    Some(Location {
        segment: u64::from_be_bytes(v.get(..8)?.try_into().ok()?),
        offset: u64::from_be_bytes(v.get(8..16)?.try_into().ok()?),
    })
}

fn index_ops(batch: &mut sled::Batch, seq: u64, loc: Location, time_ms: u64, values: &[(u8, String)]) {
    batch.insert(seq_key(seq), &location_value(loc, time_ms)[..]);
    batch.insert(time_key(time_ms, seq), &[][..]);
    for (kind, value) in values {
        batch.insert(field_key(*kind, value, seq), &[][..]);
    }
}

fn stored_index_values(e: &StoredEntry) -> Vec<(u8, String)> {
    e.fields.iter().filter_map(|f| Some((entry::index_kind(&f.name)?, f.plaintext.as_ref()?.1.clone()))).collect()
}

impl Shared {
    fn size(&self) -> u64 {
        read(&self.tree).size()
    }

    fn sign_checkpoint(&self) -> Result<Option<(Checkpoint, String)>, LedgerError> {
        let tree = read(&self.tree);
        let size = tree.size();
        let root = merkle::root(&*tree, size)?;
        let mut cp = lock(&self.cp);
        // Only signers change `latest`, and they hold `cp`: it cannot move under us.
        let latest = read(&self.signed).latest.clone();
        if let Some((last, note)) = &latest {
            if last.size == size && last.root == root {
                return Ok(Some((last.clone(), note.clone())));
            }
            let inconsistent = LedgerError::Inconsistent { last: last.size, now: size };
            if size < last.size {
                return Err(inconsistent);
            }
            // Every tree extends the empty one (the checkpoint a new ledger signs).
            if last.size == 0 {
                if last.root != merkle::empty_root() {
                    return Err(inconsistent);
                }
            } else {
                let proof = merkle::consistency_proof(&*tree, last.size, size)?;
                if merkle::verify_consistency(last.size, size, &last.root, &root, &proof).is_err() {
                    return Err(inconsistent);
                }
            }
        }
        // Node files become durable up to `size` before a checkpoint claims it.
        tree.sync().map_err(io_err("sync", Path::new("tree")))?;
        let checkpoint = Checkpoint { origin: self.origin.clone(), size, root };
        let note = self.signer.sign(&checkpoint);
        let mut frame = Vec::with_capacity(note.len() + 8);
        segment::encode_frame(note.as_bytes(), &mut frame);
        let path = cp.path.clone();
        if cp.failed {
            let e = io::Error::other("an earlier failed append could not be undone; reopen the ledger");
            return Err(io_err("append to", &path)(e));
        }
        // The file is opened for appending: the frame lands at its current end.
        let offset = cp.file.metadata().map_err(io_err("stat", &path))?.len();
        if let Err((e, undone)) = append_frame(&mut cp.file, offset, &frame) {
            // Without the cut the file's end is unknown: sign nothing more until reopened.
            cp.failed |= !undone;
            return Err(io_err("append to", &path)(e));
        }
        let mut signed = write(&self.signed);
        signed.refs.push(CpRef { size, offset });
        signed.latest = Some((checkpoint.clone(), note.clone()));
        Ok(Some((checkpoint, note)))
    }

    fn commit(&self, batch: &[Committed<Item>]) -> Result<(), LedgerError> {
        let leaves: Vec<Hash> = batch.iter().map(|c| c.item.leaf_hash).collect();
        write(&self.tree).append(&leaves).map_err(io_err("append to", Path::new("tree")))?;
        let mut ops = sled::Batch::default();
        for c in batch {
            index_ops(&mut ops, c.seq, c.location, c.item.time_ms, &c.item.index_values);
        }
        if let Some(last) = batch.last() {
            ops.insert(META_INDEXED, &(last.seq + 1).to_be_bytes()[..]);
        }
        self.index.apply_batch(ops)?;
        if self.checkpoint_every > 0 {
            let size = self.size();
            let last = read(&self.signed).latest.as_ref().map_or(0, |(c, _)| c.size);
            if size - last >= self.checkpoint_every {
                self.sign_checkpoint()?;
            }
        }
        Ok(())
    }

    /// Reads one signed note from `checkpoints.log` (a positioned read, no lock) and checks it
    /// is signed by this ledger's key and is the checkpoint `r` describes.
    fn read_note(&self, r: CpRef) -> Result<(Checkpoint, String), LedgerError> {
        let payload = segment::read_frame_at(&self.cp_reader, &self.cp_path, r.offset)?;
        let note = String::from_utf8(payload).map_err(|_| NoteError::Malformed("not utf-8"))?;
        let checkpoint = self.verifier.verify(&note)?;
        if checkpoint.size != r.size {
            return Err(LedgerError::Corrupt("checkpoints.log changed under the ledger"));
        }
        Ok((checkpoint, note))
    }

    fn read_entry(&self, seq: u64) -> Result<StoredEntry, LedgerError> {
        let _files = read(&self.files);
        let loc = self.index.get(seq_key(seq))?.ok_or(LedgerError::NotFound(seq))?;
        let loc = parse_location(&loc).ok_or(LedgerError::Corrupt("bad index location"))?;
        let e = entry::decode_record(&segment::read_record(&self.segments_dir, loc)?)?;
        if e.seq != seq {
            return Err(LedgerError::Corrupt("index points at the wrong entry"));
        }
        Ok(e)
    }
}

struct Timer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The audit ledger. `Send + Sync`; share it with an `Arc`.
pub struct Ledger {
    shared: Arc<Shared>,
    log: SegmentLog<Item>,
    rng: SystemRandom,
    timer: Mutex<Option<Timer>>,
    report: OpenReport,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("dir", &self.shared.segments_dir).finish_non_exhaustive()
    }
}

/// Offset of the first whole frame after `bad` in `buf` that holds a note signed by this ledger's
/// key, if any: what tells a hole from a torn tail. Tried at every offset, since the damaged frame's
/// length cannot be trusted. Only a signed note counts: a tail of zeros (a file extended but never
/// written before a crash) parses as empty frames, and those are torn tail.
fn signed_frame_after(buf: &[u8], bad: u64, verifier: &NoteVerifier) -> Option<u64> {
    (bad + 1..buf.len() as u64).find(|&at| {
        let mut signed = false;
        // `scan_frames` checks the frame at `at`; the visitor's error only stops it there.
        let _ = segment::scan_frames(buf, at, |_, payload| {
            signed = std::str::from_utf8(payload).is_ok_and(|note| verifier.verify(note).is_ok());
            Err(SegmentError::Hook(String::new()))
        });
        signed
    })
}

/// The notes in the whole frames of a checkpoint log's bytes, read-only: each must verify with
/// `verifier`. A damaged frame followed by a note that verifies is a hole (an error); a torn tail
/// (a crash, or a writer appending now) is left out.
pub(crate) fn whole_notes(
    buf: &[u8],
    path: &Path,
    verifier: &NoteVerifier,
) -> Result<Vec<String>, crate::verify::VerifyError> {
    use crate::verify::VerifyError;
    let mut notes = Vec::new();
    let mut failure = None;
    let scanned = segment::scan_frames(buf, 0, |_, payload| {
        // The ledger never writes an empty note: an empty frame is damage; the error stops the scan.
        if payload.is_empty() {
            return Err(SegmentError::Hook(String::new()));
        }
        match std::str::from_utf8(payload).map_err(|_| NoteError::Malformed("not utf-8")) {
            Ok(note) => notes.push(note.to_owned()),
            Err(source) => failure = Some(VerifyError::Note { index: notes.len(), source }),
        }
        Ok(())
    });
    if let Some(f) = failure {
        return Err(f);
    }
    let end = match scanned {
        Ok((_, false)) => return Ok(notes),
        Ok((end, true)) => end,
        // An empty frame stopped the scan: it ends where the notes read so far end.
        Err(_) => notes.iter().map(|n| segment::FRAME_HEADER_LEN + n.len() as u64).sum(),
    };
    if signed_frame_after(buf, end, verifier).is_some() {
        return Err(VerifyError::CheckpointHole { path: path.to_owned(), offset: end });
    }
    Ok(notes)
}

/// Reads the signed notes in `checkpoints.log`, truncating a torn tail; every note must verify. A
/// damaged frame followed by a whole one is a hole, not a torn tail: the ledger refuses to open
/// ([`LedgerError::CheckpointHole`]) rather than cut the signed checkpoints after it.
fn load_checkpoints(path: &Path, verifier: &NoteVerifier, origin: &str) -> Result<Signed, LedgerError> {
    let buf = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Signed::default()),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    // The origin is part of the key name: a log of another origin would fail every signature. Say so.
    if let Some(found) = first_origin(&buf)
        && found != origin
    {
        return Err(LedgerError::OriginMismatch { path: path.to_owned(), found, configured: origin.to_owned() });
    }
    let mut out = Signed::default();
    let mut bad = None;
    let mut empty_at = None;
    let scanned = segment::scan_frames(&buf, 0, |offset, payload| {
        // The ledger never writes an empty note: an empty frame is damage (zeros a crash left at the
        // end of the file parse as one), not a note that fails to verify. The error only stops the scan.
        if payload.is_empty() {
            empty_at = Some(offset);
            return Err(SegmentError::Hook(String::new()));
        }
        let parsed = std::str::from_utf8(payload)
            .map_err(|_| NoteError::Malformed("not utf-8"))
            .and_then(|note| Ok((verifier.verify(note)?, note.to_owned())));
        match parsed {
            Ok(p) => {
                out.refs.push(CpRef { size: p.0.size, offset });
                out.latest = Some(p);
            }
            Err(e) => {
                bad.get_or_insert(e);
            }
        }
        Ok(())
    });
    let (end, rest) = match empty_at {
        Some(at) => (at, true),
        None => scanned?,
    };
    if let Some(e) = bad {
        return Err(e.into());
    }
    if rest {
        if let Some(next) = signed_frame_after(&buf, end, verifier) {
            return Err(LedgerError::CheckpointHole { path: path.to_owned(), offset: end, next });
        }
        let f = OpenOptions::new().write(true).open(path).map_err(io_err("open", path))?;
        f.set_len(end).map_err(io_err("truncate", path))?;
        f.sync_all().map_err(io_err("sync", path))?;
    }
    Ok(out)
}

/// The origin line of the first whole note in a checkpoint log's bytes (unverified), if any.
fn first_origin(buf: &[u8]) -> Option<String> {
    let mut found = None;
    let _ = segment::scan_frames(buf, 0, |_, payload| {
        found = std::str::from_utf8(payload).ok().and_then(|n| n.split('\n').next()).map(str::to_owned);
        // Only the first frame is wanted; the error stops the scan.
        Err(SegmentError::Hook(String::new()))
    });
    found.filter(|o| !o.is_empty())
}

/// The origin of the checkpoints in the ledger directory `dir`, read from its first signed note
/// without verifying it (None when there is none): what a tool that opens an existing ledger
/// without a configured origin opens it with. The signature is verified on open all the same.
pub fn stored_origin(dir: &Path) -> Option<String> {
    first_origin(&fs::read(dir.join("checkpoints.log")).ok()?)
}

impl Ledger {
    /// Opens (creating) the ledger in `dir`, recovering as described in the module docs.
    pub fn open(dir: &Path, options: LedgerOptions) -> Result<Self, LedgerError> {
        Self::open_with_io(dir, options, Box::new(FsIo))
    }

    /// [`Ledger::open`] with a storage seam for segment writes and syncs.
    pub fn open_with_io(dir: &Path, options: LedgerOptions, io: Box<dyn SegmentIo>) -> Result<Self, LedgerError> {
        let segments_dir = dir.join("segments");
        fs::create_dir_all(&segments_dir).map_err(io_err("create", &segments_dir))?;
        segment::sync_dir(dir).map_err(io_err("sync", dir))?;
        // sled locks its directory, so a second process cannot open the same ledger.
        let index_dir = dir.join("index");
        let mut index_discarded = false;
        let sled_config = || sled::Config::new().path(&index_dir);
        let db = match sled_config().open() {
            Err(sled::Error::Corruption { .. }) => {
                // The index is derived from the segments: a crash that left sled unreadable
                // costs a rebuild, never an entry.
                fs::remove_dir_all(&index_dir).map_err(io_err("remove", &index_dir))?;
                index_discarded = true;
                sled_config().open()?
            }
            other => other?,
        };
        let index = match db.open_tree("audit") {
            Err(sled::Error::Corruption { .. }) => {
                db.drop_tree("audit")?;
                index_discarded = true;
                db.open_tree("audit")?
            }
            other => other?,
        };
        let verifier = options.signer.verifier();
        let cp_path = dir.join("checkpoints.log");
        let signed = load_checkpoints(&cp_path, &verifier, &options.origin)?;
        let last = signed.latest.clone();
        let cp_size = last.as_ref().map_or(0, |(c, _)| c.size);

        let tree_dir = dir.join("tree");
        let tree_start = if options.verify_on_open { 0 } else { cp_size };
        let mut tree = match NodeFiles::open(&tree_dir, tree_start) {
            Ok(t) => t,
            Err(_) => NodeFiles::open(&tree_dir, 0).map_err(io_err("open", &tree_dir))?,
        };
        let mut report = OpenReport { index_discarded, ..OpenReport::default() };
        let dirty = index.get(META_DIRTY)?.is_some();
        let mut indexed = match index.get(META_INDEXED)? {
            Some(v) if !dirty => {
                u64::from_be_bytes(v.as_ref().try_into().map_err(|_| LedgerError::Corrupt("index meta"))?)
            }
            _ => 0,
        };
        let mut recovery = None;
        for attempt in 0..2 {
            if indexed == 0 {
                index.clear()?;
            }
            let rec = Self::replay(&segments_dir, &mut tree, &index, indexed)?;
            if indexed > rec.records {
                // The index is ahead of the segments: rebuild it whole.
                indexed = 0;
                continue;
            }
            if rec.records < cp_size {
                return Err(LedgerError::Truncated { checkpoint: cp_size, recovered: rec.records });
            }
            if tree.size() != rec.records {
                return Err(LedgerError::Corrupt("node store and segments disagree on the size"));
            }
            if let Some((c, _)) = &last
                && merkle::root(&tree, c.size)? != c.root
            {
                if attempt == 0 && tree.size() > 0 {
                    // The node files may be damaged: rebuild them from the segments and look again.
                    tree.truncate(0).map_err(io_err("truncate", &tree_dir))?;
                    continue;
                }
                return Err(LedgerError::CheckpointMismatch { size: c.size });
            }
            if indexed < rec.records {
                report.index_caught_up_from = Some(indexed);
            }
            recovery = Some(rec);
            break;
        }
        let recovery = recovery.ok_or(LedgerError::Corrupt("cannot reconcile index and segments"))?;
        if last.is_none() && recovery.records > 0 && !options.init {
            return Err(LedgerError::Unsealed { path: dir.to_owned(), entries: recovery.records });
        }
        index.remove(META_DIRTY)?;
        index.insert(META_INDEXED, &recovery.records.to_be_bytes()[..])?;
        report.entries = recovery.records;
        report.torn_tail = recovery.torn.clone();

        let cp_file = OpenOptions::new().create(true).append(true).open(&cp_path).map_err(io_err("open", &cp_path))?;
        segment::sync_dir(dir).map_err(io_err("sync", dir))?;
        let cp_reader = File::open(&cp_path).map_err(io_err("open", &cp_path))?;
        let shared = Arc::new(Shared {
            segments_dir: segments_dir.clone(),
            tree: RwLock::new(tree),
            index,
            db,
            cp: Mutex::new(CpState { file: cp_file, path: cp_path.clone(), failed: false }),
            signed: RwLock::new(signed),
            cp_reader,
            cp_path,
            signer: options.signer,
            verifier,
            origin: options.origin,
            checkpoint_every: options.checkpoint_every,
            files: RwLock::new(()),
        });
        let hook_shared = shared.clone();
        let log = SegmentLog::open(
            &segments_dir,
            io,
            &recovery,
            options.segment_bytes,
            Box::new(move |batch: &[Committed<Item>]| hook_shared.commit(batch).map_err(|e| e.to_string())),
        )?;
        if last.is_none() {
            // A new ledger signs the empty tree, so that from now on it always has a signed
            // checkpoint; with `init`, this seals the entries found.
            shared.sign_checkpoint()?;
        }
        let timer = options.checkpoint_interval.map(|every| {
            let stop = Arc::new(AtomicBool::new(false));
            let (stop2, shared2) = (stop.clone(), shared.clone());
            let thread = std::thread::spawn(move || {
                loop {
                    std::thread::park_timeout(every);
                    if stop2.load(Ordering::Acquire) {
                        return;
                    }
                    // A failure here is seen again, and reported, by the next append or close.
                    let _ = shared2.sign_checkpoint();
                }
            });
            Timer { stop, thread }
        });
        Ok(Self { shared, log, rng: SystemRandom::new(), timer: Mutex::new(timer), report })
    }

    /// Scans the segments: re-appends leaf hashes past the node store's size and indexes entries
    /// from `indexed` on.
    fn replay(
        segments_dir: &Path,
        tree: &mut NodeFiles,
        index: &sled::Tree,
        indexed: u64,
    ) -> Result<segment::Recovery, LedgerError> {
        let tree_from = tree.size();
        let mut leaves = Vec::new();
        let mut ops = sled::Batch::default();
        let mut ops_len = 0;
        let mut failure: Option<LedgerError> = None;
        let rec = segment::recover_from(segments_dir, tree_from.min(indexed), |seq, loc, payload| {
            if seq < tree_from && seq < indexed {
                return Ok(());
            }
            let e = match entry::decode_record(payload) {
                Ok(e) if e.seq == seq => e,
                Ok(_) => {
                    failure = failure.take().or(Some(LedgerError::Corrupt("entry seq does not match its position")));
                    return Ok(());
                }
                Err(err) => {
                    failure = failure.take().or(Some(err.into()));
                    return Ok(());
                }
            };
            if seq >= tree_from {
                leaves.push(e.leaf_hash());
                if leaves.len() >= 4096
                    && let Err(err) = tree.append(&std::mem::take(&mut leaves))
                {
                    failure = failure.take().or(Some(io_err("append to", Path::new("tree"))(err)));
                }
            }
            if seq >= indexed {
                index_ops(&mut ops, seq, loc, e.time_ms, &stored_index_values(&e));
                ops_len += 1;
                if ops_len >= 4096 {
                    if let Err(err) = index.apply_batch(std::mem::take(&mut ops)) {
                        failure = failure.take().or(Some(err.into()));
                    }
                    ops_len = 0;
                }
            }
            Ok(())
        })?;
        if let Some(f) = failure {
            return Err(f);
        }
        tree.append(&leaves).map_err(io_err("append to", Path::new("tree")))?;
        index.apply_batch(ops)?;
        Ok(rec)
    }

    /// What opening found and repaired.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// Appends an entry and returns once it is durable and in the tree.
    pub fn append(&self, entry: EntryFields) -> Result<Appended, LedgerError> {
        let prepared = Prepared::new(entry, &self.rng)?;
        let index_values = prepared.index_values();
        let time_ms = prepared.time_ms();
        let mut leaf_hash = [0u8; 32];
        let seq = self.log.append(|seq| {
            let (leaf, record) = prepared.encode(seq);
            leaf_hash = merkle::leaf_hash(&leaf);
            (record, Item { leaf_hash, time_ms, index_values })
        })?;
        Ok(Appended { seq, leaf_hash })
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.shared.size()
    }

    /// Size and root, read together.
    pub fn head(&self) -> Result<(u64, Hash), LedgerError> {
        let tree = read(&self.shared.tree);
        let size = tree.size();
        Ok((size, merkle::root(&*tree, size)?))
    }

    /// Root of the first `size` entries.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        Ok(merkle::root(&*read(&self.shared.tree), size)?)
    }

    /// Inclusion proof of entry `seq` in the tree of the first `tree_size` entries.
    pub fn inclusion_proof(&self, seq: u64, tree_size: u64) -> Result<Vec<Hash>, LedgerError> {
        Ok(merkle::inclusion_proof(&*read(&self.shared.tree), seq, tree_size)?)
    }

    /// Consistency proof between the trees of the first `old` and `new` entries.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        Ok(merkle::consistency_proof(&*read(&self.shared.tree), old, new)?)
    }

    /// The entry at `seq`.
    pub fn get(&self, seq: u64) -> Result<StoredEntry, LedgerError> {
        if seq >= self.size() {
            return Err(LedgerError::NotFound(seq));
        }
        self.shared.read_entry(seq)
    }

    /// Entries matching `filter`, at most `limit`, after the cursor of a previous page. Results
    /// come in the order of the index used: seq order, time order for a time-only filter.
    pub fn list(&self, filter: &Filter, after: Option<&[u8]>, limit: usize) -> Result<Listed, LedgerError> {
        let field =
            [(b'a', &filter.agency), (b'p', &filter.principal), (b'i', &filter.indicator), (b'd', &filter.decision)]
                .into_iter()
                .find_map(|(k, v)| v.as_ref().map(|v| (k, v)));
        let (prefix, start, end): (Vec<u8>, Vec<u8>, Vec<u8>) = match field {
            Some((kind, value)) => {
                let p = field_prefix(kind, value);
                let mut end = p.clone();
                end.extend_from_slice(&[0xff; 8]);
                (p.clone(), p, end)
            }
            None if filter.from_ms.is_some() || filter.to_ms.is_some() => {
                let from = time_key(filter.from_ms.unwrap_or(0), 0);
                let to = time_key(filter.to_ms.unwrap_or(u64::MAX), 0);
                (vec![b'T'], from, to)
            }
            None => (vec![b'S'], seq_key(0), seq_key(u64::MAX)),
        };
        let start = match after {
            Some(c) if c.starts_with(&prefix) && c >= start.as_slice() => {
                let mut s = c.to_vec();
                s.push(0);
                s
            }
            _ => start,
        };
        let mut out = Listed::default();
        if limit == 0 || start >= end {
            return Ok(out);
        }
        let size = self.size();
        for kv in self.shared.index.range(start..end) {
            let (key, _) = kv?;
            let seq = match key.get(key.len().saturating_sub(8)..).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(b) if key.len() >= 9 => u64::from_be_bytes(b),
                _ => return Err(LedgerError::Corrupt("bad index key")),
            };
            if seq >= size {
                continue;
            }
            let e = self.shared.read_entry(seq)?;
            let in_time = filter.from_ms.is_none_or(|f| e.time_ms >= f) && filter.to_ms.is_none_or(|t| e.time_ms < t);
            let fields_match = [
                (entry::keys::AGENCY, &filter.agency),
                (entry::keys::PRINCIPAL, &filter.principal),
                (entry::keys::INDICATOR, &filter.indicator),
                (entry::keys::DECISION, &filter.decision),
            ]
            .iter()
            .all(|(name, want)| want.as_ref().is_none_or(|w| e.value(name) == Some(w.as_str())));
            if in_time && fields_match {
                out.entries.push(e);
            }
            if out.entries.len() == limit {
                out.next = Some(key.to_vec());
                break;
            }
        }
        Ok(out)
    }

    /// The last signed checkpoint and its note (kept in memory; never waits for appends).
    pub fn last_checkpoint(&self) -> Option<(Checkpoint, String)> {
        read(&self.shared.signed).latest.clone()
    }

    /// The signed note of the checkpoint of exactly `size` entries, if one was signed. The latest
    /// comes from memory; an older one is one positioned read of `checkpoints.log`, checked
    /// against this ledger's key. Neither waits for appends or for a checkpoint being signed.
    pub fn checkpoint_note(&self, size: u64) -> Result<Option<String>, LedgerError> {
        let found = {
            let signed = read(&self.shared.signed);
            if let Some((cp, note)) = &signed.latest
                && cp.size == size
            {
                return Ok(Some(note.clone()));
            }
            signed.refs.binary_search_by_key(&size, |r| r.size).ok().map(|i| signed.refs[i])
        };
        found.map(|r| self.shared.read_note(r).map(|(_, note)| note)).transpose()
    }

    /// Every signed checkpoint note of at most `max_size` entries, oldest first, each read back
    /// and checked against this ledger's key (without holding any lock appends take).
    pub fn checkpoints_up_to(&self, max_size: u64) -> Result<Vec<String>, LedgerError> {
        let refs: Vec<CpRef> = read(&self.shared.signed).refs.iter().copied().filter(|r| r.size <= max_size).collect();
        refs.into_iter().map(|r| self.shared.read_note(r).map(|(_, note)| note)).collect()
    }

    /// Every signed checkpoint note, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<String>, LedgerError> {
        self.checkpoints_up_to(u64::MAX)
    }

    /// Signs a checkpoint of the current tree now (returns the last one when nothing changed).
    pub fn checkpoint(&self) -> Result<Option<(Checkpoint, String)>, LedgerError> {
        self.shared.sign_checkpoint()
    }

    /// The key that verifies this ledger's checkpoints.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.shared.verifier
    }

    /// Records a purge with horizon `before_ms`, then deletes the plaintext and salts of every entry
    /// before that record older than `before_ms`; leaves, and so all proofs and checkpoints, are
    /// unchanged. See [`Ledger::purge_where`].
    pub fn purge_before(&self, record: EntryFields, before_ms: u64) -> Result<(PurgeReport, Appended), LedgerError> {
        self.purge_where(record, before_ms, &|_| false)
    }

    /// Appends `record` as a purge record carrying its horizon `before_ms`
    /// ([`entry::keys::PURGE_HORIZON`]; durable, like every append, before anything is deleted),
    /// then deletes the plaintext and salts of every entry before it that is older than `before_ms`
    /// and for which `keep` returns false (`keep`: an entry under a longer retention period).
    /// Purge records are never purged. This is what lets a verifier tell a purged entry from a
    /// forged one: a purged entry must precede a purge record whose horizon it is older than. A
    /// crash after the record and before the purge leaves a record that covers nothing yet; the
    /// purge can simply be run again. Segment files are rewritten to a temporary file, synced and
    /// renamed over the old one. Returns what was purged and the purge record.
    pub fn purge_where(
        &self,
        record: EntryFields,
        before_ms: u64,
        keep: &dyn Fn(&StoredEntry) -> bool,
    ) -> Result<(PurgeReport, Appended), LedgerError> {
        if record.fields.iter().any(|(n, _)| n == entry::keys::PURGE_HORIZON) {
            return Err(EntryError::DuplicateName.into());
        }
        let appended = self.append(record.with(entry::keys::PURGE_HORIZON, before_ms.to_string()))?;
        let purge_seq = appended.seq;
        let keep = |e: &StoredEntry| e.seq >= purge_seq || e.is_purge_record() || keep(e);
        Ok((self.purge_records(before_ms, &keep)?, appended))
    }

    fn purge_records(&self, before_ms: u64, keep: &dyn Fn(&StoredEntry) -> bool) -> Result<PurgeReport, LedgerError> {
        let shared = &self.shared;
        let _files = write(&shared.files);
        self.log.maintenance(|w| {
            let mut report = PurgeReport::default();
            let dir = shared.segments_dir.clone();
            for seg in w.segments.clone() {
                let records = segment::read_segment(&dir, seg)?;
                let mut entries = Vec::with_capacity(records.len());
                for (_, payload) in &records {
                    entries.push(entry::decode_record(payload)?);
                }
                let purge: Vec<bool> =
                    entries.iter().map(|e| e.time_ms < before_ms && !e.purged() && !keep(e)).collect();
                if !purge.contains(&true) {
                    continue;
                }
                shared.index.insert(META_DIRTY, &[1u8][..])?;
                shared.index.flush()?;
                let mut bytes = segment::header(seg).to_vec();
                let mut ops = sled::Batch::default();
                for (((_, payload), e), purge) in records.iter().zip(&entries).zip(&purge) {
                    let offset = bytes.len() as u64;
                    if *purge {
                        for (kind, value) in stored_index_values(e) {
                            ops.remove(field_key(kind, &value, e.seq));
                        }
                        segment::encode_frame(&entry::purged_record(e), &mut bytes);
                        report.entries += 1;
                    } else {
                        segment::encode_frame(payload, &mut bytes);
                    }
                    ops.insert(seq_key(e.seq), &location_value(Location { segment: seg, offset }, e.time_ms)[..]);
                }
                let path = segment::segment_path(&dir, seg);
                let tmp = dir.join("purge.tmp");
                let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
                f.write_all(&bytes).map_err(io_err("write", &tmp))?;
                f.sync_all().map_err(io_err("sync", &tmp))?;
                fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
                segment::sync_dir(&dir).map_err(io_err("sync", &dir))?;
                if seg == w.active() {
                    w.reopen_active(bytes.len() as u64)?;
                }
                shared.index.apply_batch(ops)?;
                report.segments += 1;
            }
            shared.index.remove(META_DIRTY)?;
            shared.index.flush()?;
            Ok(report)
        })
    }

    /// Signs a final checkpoint, stops the checkpoint timer and flushes the index. Returns the
    /// final checkpoint note (None for an empty ledger).
    pub fn close(self) -> Result<Option<String>, LedgerError> {
        self.stop_timer();
        let cp = self.shared.sign_checkpoint()?;
        self.shared.db.flush()?;
        Ok(cp.map(|(_, note)| note))
    }

    fn stop_timer(&self) {
        if let Some(t) = lock(&self.timer).take() {
            t.stop.store(true, Ordering::Release);
            t.thread.thread().unpark();
            // The thread only signs checkpoints; a panic there has nothing to hand back.
            let _ = t.thread.join();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.stop_timer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::MemTree;

    fn options(key: &[u8]) -> LedgerOptions {
        let mut o = LedgerOptions::new(NoteSigner::from_pkcs8("shuzhu.test/audit", key).unwrap());
        o.checkpoint_every = 5;
        o.checkpoint_interval = None;
        o.segment_bytes = 2048;
        o
    }

    fn entry(i: u64) -> EntryFields {
        EntryFields::new(1_000 + i)
            .with("agency", format!("agency-{}", i % 3))
            .with("principal", format!("user-{}", i % 2))
            .with("decision", if i.is_multiple_of(4) { "deny" } else { "allow" })
            .with("indicator", "closure_rate")
    }

    #[test]
    fn append_prove_reopen_and_checkpoints_stay_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        let mut mem = MemTree::default();
        for i in 0..23 {
            let a = ledger.append(entry(i)).unwrap();
            assert_eq!(a.seq, i);
            mem.push(a.leaf_hash);
        }
        let (size, root) = ledger.head().unwrap();
        assert_eq!((size, root), (23, merkle::root(&mem, 23).unwrap()));
        for i in [0, 7, 22] {
            let p = ledger.inclusion_proof(i, size).unwrap();
            merkle::verify_inclusion(i, size, &ledger.get(i).unwrap().leaf_hash(), &p, &root).unwrap();
        }
        let (cp, _) = ledger.last_checkpoint().unwrap();
        assert_eq!(cp.size, 20, "signed every 5 entries");
        let notes = ledger.checkpoints().unwrap();
        assert_eq!(notes.len(), 5, "the empty tree's, signed at creation, then every 5 entries");
        let final_note = ledger.close().unwrap().unwrap();
        let verifier = NoteSigner::from_pkcs8("shuzhu.test/audit", &key).unwrap().verifier();
        assert_eq!(verifier.verify(&final_note).unwrap().size, 23);

        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        assert_eq!(ledger.head().unwrap(), (23, root));
        assert_eq!(ledger.get(3).unwrap().value("agency"), Some("agency-0"));
        let p = ledger.consistency_proof(20, 23).unwrap();
        merkle::verify_consistency(20, 23, &cp.root, &root, &p).unwrap();
        assert_eq!(ledger.append(entry(23)).unwrap().seq, 23);
    }

    #[test]
    fn checkpoint_reads_never_wait_for_the_lock_appends_and_signing_take() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::open(dir.path(), options(&NoteSigner::generate_pkcs8().unwrap())).unwrap());
        for i in 0..12 {
            ledger.append(entry(i)).unwrap();
        }
        ledger.checkpoint().unwrap();
        // Hold the lock a checkpoint being signed holds (and that the commit of every append
        // takes), then serve what a proof request needs from another thread.
        let held = lock(&ledger.shared.cp);
        let (tx, rx) = std::sync::mpsc::channel();
        let l = ledger.clone();
        let reader = std::thread::spawn(move || {
            let latest = l.last_checkpoint().unwrap().0.size;
            let note = l.checkpoint_note(5).unwrap();
            let all = l.checkpoints().unwrap().len();
            let proof = l.inclusion_proof(3, 10).unwrap().len();
            tx.send((latest, note.is_some(), all, proof)).unwrap();
        });
        // A bound on liveness, not on speed: reads that took the lock would wait until it is
        // released below, after this gives up.
        let got = rx.recv_timeout(Duration::from_secs(60));
        drop(held);
        reader.join().unwrap();
        assert_eq!(got.expect("checkpoint reads waited for the signing lock"), (12, true, 4, 4));
    }

    #[test]
    fn checkpoint_notes_are_found_by_size_after_reopen_and_a_note_changed_on_disk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        for i in 0..12 {
            ledger.append(entry(i)).unwrap();
        }
        ledger.close().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        let verifier = ledger.verifier().clone();
        for size in [5, 10, 12] {
            let note = ledger.checkpoint_note(size).unwrap().expect("signed");
            let cp = verifier.verify(&note).unwrap();
            assert_eq!((cp.size, cp.root), (size, ledger.root_at(size).unwrap()));
        }
        assert_eq!(ledger.checkpoint_note(7).unwrap(), None, "no checkpoint of size 7 was signed");
        assert_eq!(ledger.checkpoints_up_to(10).unwrap().len(), 3, "0 (at creation), 5 and 10");
        ledger.append(entry(12)).unwrap();
        assert_eq!(ledger.checkpoint().unwrap().unwrap().0.size, 13);
        assert!(ledger.checkpoint_note(13).unwrap().is_some(), "a checkpoint signed after open is found too");
        // Flip a byte of the note of size 5 under the open ledger: it is refused, not served.
        let path = dir.path().join("checkpoints.log");
        let mut bytes = fs::read(&path).unwrap();
        let at = read(&ledger.shared.signed).refs[1].offset;
        assert_eq!(read(&ledger.shared.signed).refs[1].size, 5);
        bytes[(at + segment::FRAME_HEADER_LEN) as usize + 2] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(ledger.checkpoint_note(5).is_err());
        assert!(ledger.checkpoint_note(13).unwrap().is_some(), "the latest is served from memory");
    }

    #[test]
    fn ledger_acknowledges_only_after_the_segment_sync() {
        use crate::segment::recording::{RecIo, Recorder};
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::default();
        let o = options(&NoteSigner::generate_pkcs8().unwrap());
        let ledger = Arc::new(Ledger::open_with_io(dir.path(), o, Box::new(RecIo(recorder.clone()))).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (ledger, recorder) = (ledger.clone(), recorder.clone());
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let name = format!("rec-{t}-{i}");
                        ledger.append(entry(i).with("marker", format!("{name}."))).unwrap();
                        recorder.push(format!("ack {name}"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (acks, _) = recorder.assert_synced_before_ack();
        assert_eq!(acks, 100);
    }

    #[test]
    fn list_filters_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path(), options(&NoteSigner::generate_pkcs8().unwrap())).unwrap();
        for i in 0..30 {
            ledger.append(entry(i)).unwrap();
        }
        let f = Filter { agency: Some("agency-1".into()), decision: Some("allow".into()), ..Filter::default() };
        let mut seen = Vec::new();
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let page = ledger.list(&f, cursor.as_deref(), 3).unwrap();
            seen.extend(page.entries.iter().map(|e| e.seq));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let want: Vec<u64> = (0..30u64).filter(|i| i % 3 == 1 && !i.is_multiple_of(4)).collect();
        assert_eq!(seen, want);
        let t = Filter { from_ms: Some(1_010), to_ms: Some(1_013), ..Filter::default() };
        let got: Vec<u64> = ledger.list(&t, None, 100).unwrap().entries.iter().map(|e| e.seq).collect();
        assert_eq!(got, [10, 11, 12]);
        let all = ledger.list(&Filter::default(), None, 100).unwrap();
        assert_eq!(all.entries.len(), 30);
        let inverted = Filter { from_ms: Some(1_020), to_ms: Some(1_010), ..Filter::default() };
        assert!(ledger.list(&inverted, None, 100).unwrap().entries.is_empty());
    }

    #[test]
    fn index_is_rebuilt_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        for i in 0..12 {
            ledger.append(entry(i)).unwrap();
        }
        let head = ledger.head().unwrap();
        ledger.close().unwrap();
        fs::remove_dir_all(dir.path().join("index")).unwrap();
        fs::remove_dir_all(dir.path().join("tree")).unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        assert_eq!(ledger.open_report().index_caught_up_from, Some(0));
        assert_eq!(ledger.head().unwrap(), head);
        let f = Filter { principal: Some("user-1".into()), ..Filter::default() };
        assert_eq!(ledger.list(&f, None, 100).unwrap().entries.len(), 6);
    }

    #[test]
    fn purge_removes_plaintext_but_keeps_proofs() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        for i in 0..20 {
            ledger.append(entry(i)).unwrap();
        }
        let before = ledger.checkpoint().unwrap().unwrap().0;
        let (report, record) = ledger.purge_before(EntryFields::new(5_000).with("action", "purge"), 1_010).unwrap();
        assert_eq!(report.entries, 10);
        assert_eq!(record.seq, 20, "the purge is recorded as an entry");
        assert_eq!(ledger.get(20).unwrap().value(entry::keys::PURGE_HORIZON), Some("1010"));
        assert!(report.segments >= 1);
        let old = ledger.get(4).unwrap();
        assert!(old.purged());
        assert_eq!(old.value("agency"), None);
        assert!(!ledger.get(10).unwrap().purged());
        assert_eq!(ledger.get(10).unwrap().value("agency"), Some("agency-1"));
        let f = Filter { agency: Some("agency-1".into()), ..Filter::default() };
        let seqs: Vec<u64> = ledger.list(&f, None, 100).unwrap().entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [10, 13, 16, 19], "purged entries leave the field indexes");
        // Appends keep working on the rewritten active segment, and the tree is unchanged.
        ledger.append(entry(20)).unwrap();
        let (size, root) = ledger.head().unwrap();
        let p = ledger.consistency_proof(before.size, size).unwrap();
        merkle::verify_consistency(before.size, size, &before.root, &root, &p).unwrap();
        ledger.close().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        assert!(ledger.get(4).unwrap().purged());
        assert_eq!(ledger.get(21).unwrap().value("decision"), Some("deny"));
        // A later purge with a horizon past everything purges all before it but the purge record.
        let (again, record) = ledger.purge_before(EntryFields::new(6_000).with("action", "purge"), u64::MAX).unwrap();
        assert_eq!((again.entries, record.seq), (11, 22));
        assert!(!ledger.get(20).unwrap().purged() && ledger.get(21).unwrap().purged());
        assert!(!ledger.get(22).unwrap().purged());
    }

    #[test]
    fn purge_where_keeps_what_its_rule_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        for i in 0..6 {
            ledger.append(entry(i)).unwrap();
        }
        let (report, _) = ledger.purge_where(EntryFields::new(9_000), 1_004, &|e| e.seq % 2 == 0).unwrap();
        assert_eq!(report.entries, 2);
        let purged: Vec<bool> = (0..6).map(|i| ledger.get(i).unwrap().purged()).collect();
        assert_eq!(purged, [false, true, false, true, false, false]);
        // A later purge without the rule takes the rest; nothing is purged twice.
        assert_eq!(ledger.purge_before(EntryFields::new(9_001), 1_004).unwrap().0.entries, 2);
    }

    #[test]
    fn refuses_to_sign_a_checkpoint_inconsistent_with_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let mut o = options(&key);
        o.checkpoint_every = 0;
        let ledger = Ledger::open(dir.path(), o).unwrap();
        for i in 0..4 {
            ledger.append(entry(i)).unwrap();
        }
        ledger.checkpoint().unwrap();
        ledger.append(entry(4)).unwrap();
        // Rewrite history under the running ledger: the stored root of leaves 0..4 changes, which
        // is the node both the new root and the consistency proof read.
        let level2 = dir.path().join("tree/level-02.hash");
        let f = OpenOptions::new().write(true).open(&level2).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0xAB; 32], 0).unwrap();
        drop(f);
        assert!(matches!(ledger.checkpoint(), Err(LedgerError::Inconsistent { last: 4, now: 5 })));
        assert_eq!(ledger.last_checkpoint().unwrap().0.size, 4, "nothing new was signed");
    }

    #[test]
    fn verify_on_open_refuses_an_entry_altered_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        for i in 0..6 {
            ledger.append(entry(i)).unwrap();
        }
        ledger.close().unwrap();
        // Replace entry 2 with a well-formed entry of the same seq, checksum and all.
        let seg_dir = dir.path().join("segments");
        let first = segment::list_segments(&seg_dir).unwrap()[0];
        let records = segment::read_segment(&seg_dir, first).unwrap();
        let (loc, payload) = records.iter().find(|(_, p)| entry::decode_record(p).unwrap().seq == 2).unwrap();
        let forged = Prepared::new(entry(2).with("note", "forged"), &SystemRandom::new()).unwrap().encode(2).1;
        let mut bytes = fs::read(segment::segment_path(&seg_dir, first)).unwrap();
        let mut frame = Vec::new();
        segment::encode_frame(&forged, &mut frame);
        let old_end = (loc.offset + segment::FRAME_HEADER_LEN) as usize + payload.len();
        bytes.splice(loc.offset as usize..old_end, frame);
        fs::write(segment::segment_path(&seg_dir, first), bytes).unwrap();
        fs::remove_dir_all(dir.path().join("index")).unwrap();
        let mut o = options(&key);
        o.verify_on_open = true;
        assert!(matches!(Ledger::open(dir.path(), o), Err(LedgerError::CheckpointMismatch { size: 6 })));
    }

    #[test]
    fn segments_without_their_checkpoints_open_only_with_init() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        assert_eq!(ledger.last_checkpoint().unwrap().0.size, 0, "a new ledger signs the empty tree");
        drop(ledger);
        // A crash before the first checkpoint of entries still leaves the one signed at creation.
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        for i in 0..3 {
            ledger.append(entry(i)).unwrap();
        }
        drop(ledger);
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        ledger.close().unwrap();
        fs::remove_file(dir.path().join("checkpoints.log")).unwrap();
        let err = Ledger::open(dir.path(), options(&key)).unwrap_err();
        assert!(matches!(err, LedgerError::Unsealed { entries: 3, .. }), "{err}");
        assert!(err.to_string().contains("shuzhu audit init"), "{err}");
        assert!(!dir.path().join("checkpoints.log").exists(), "nothing was signed");
        fs::write(dir.path().join("checkpoints.log"), b"").unwrap();
        assert!(matches!(Ledger::open(dir.path(), options(&key)), Err(LedgerError::Unsealed { .. })));
        let mut o = options(&key);
        o.init = true;
        let ledger = Ledger::open(dir.path(), o).unwrap();
        assert_eq!(ledger.last_checkpoint().unwrap().0.size, 3, "init seals what is there");
        drop(ledger);
        Ledger::open(dir.path(), options(&key)).unwrap();
    }

    #[test]
    fn a_ledger_of_another_origin_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        Ledger::open(dir.path(), options(&key)).unwrap().close().unwrap();
        assert_eq!(stored_origin(dir.path()).as_deref(), Some("shuzhu.test/audit"));
        let signer = NoteSigner::from_pkcs8("gw.test/audit", &key).unwrap();
        let err = Ledger::open(dir.path(), LedgerOptions::new(signer)).unwrap_err();
        assert!(
            matches!(&err, LedgerError::OriginMismatch { found, configured, .. }
            if found == "shuzhu.test/audit" && configured == "gw.test/audit"),
            "{err}"
        );
    }

    #[test]
    fn opening_refuses_segments_that_lost_signed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let mut o = options(&key);
        o.segment_bytes = 1 << 20;
        let ledger = Ledger::open(dir.path(), o).unwrap();
        for i in 0..6 {
            ledger.append(entry(i)).unwrap();
        }
        ledger.close().unwrap();
        // Cut the last two whole frames: what a tail-truncating attacker would do.
        let seg = segment::segment_path(&dir.path().join("segments"), 0);
        let records = segment::read_segment(&dir.path().join("segments"), 0).unwrap();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(records[4].0.offset).unwrap();
        drop(f);
        let mut o = options(&key);
        o.segment_bytes = 1 << 20;
        assert!(matches!(Ledger::open(dir.path(), o), Err(LedgerError::Truncated { checkpoint: 6, recovered: 4 })));
    }

    /// A real file with room for `room` more bytes: a write past it takes what fits and then fails,
    /// as a full disk does.
    struct Full {
        file: File,
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room);
            if n == 0 && !buf.is_empty() {
                return Err(io::Error::other("no space left on device"));
            }
            self.room -= n;
            self.file.write(&buf[..n])
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl CpStore for Full {
        fn sync(&mut self) -> io::Result<()> {
            self.file.sync()
        }

        fn cut(&mut self, len: u64) -> io::Result<()> {
            self.file.cut(len)
        }
    }

    #[test]
    fn a_checkpoint_append_that_runs_out_of_space_is_cut_so_later_checkpoints_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.log");
        let signer = NoteSigner::from_pkcs8("shuzhu.test/audit", &NoteSigner::generate_pkcs8().unwrap()).unwrap();
        let frame = |size: u64| {
            let note = signer.sign(&Checkpoint { origin: "shuzhu.test/audit".into(), size, root: [size as u8; 32] });
            let mut f = Vec::new();
            segment::encode_frame(note.as_bytes(), &mut f);
            f
        };
        let file = OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let mut store = Full { file, room: usize::MAX };
        append_frame(&mut store, 0, &frame(5)).unwrap();
        // The disk fills in the middle of the next frame.
        let end = fs::metadata(&path).unwrap().len();
        store.room = 10;
        let (_, undone) = append_frame(&mut store, end, &frame(10)).unwrap_err();
        assert!(undone);
        assert_eq!(fs::metadata(&path).unwrap().len(), end, "no fragment is left");
        store.room = usize::MAX;
        append_frame(&mut store, end, &frame(15)).unwrap();
        let signed = load_checkpoints(&path, &signer.verifier(), signer.name()).unwrap();
        let sizes: Vec<u64> = signed.refs.iter().map(|r| r.size).collect();
        assert_eq!(sizes, vec![5, 15], "the checkpoint signed after the failure is kept on reopen");
    }

    #[test]
    fn a_checkpoint_log_whose_cut_failed_signs_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        ledger.append(entry(0)).unwrap();
        let before = fs::metadata(dir.path().join("checkpoints.log")).unwrap().len();
        lock(&ledger.shared.cp).failed = true;
        assert!(ledger.checkpoint().is_err(), "the end of the file is unknown: nothing is appended");
        assert_eq!(fs::metadata(dir.path().join("checkpoints.log")).unwrap().len(), before);
    }

    #[test]
    fn a_torn_last_checkpoint_frame_is_cut_but_a_damaged_frame_before_signed_ones_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = NoteSigner::generate_pkcs8().unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        for i in 0..12 {
            ledger.append(entry(i)).unwrap();
        }
        ledger.close().unwrap();
        let path = dir.path().join("checkpoints.log");
        let whole = fs::read(&path).unwrap();
        let verifier = NoteSigner::from_pkcs8("shuzhu.test/audit", &key).unwrap().verifier();
        let signed = load_checkpoints(&path, &verifier, verifier.name()).unwrap();
        let sizes: Vec<u64> = signed.refs.iter().map(|r| r.size).collect();
        assert_eq!(sizes, [0, 5, 10, 12], "the empty tree's (at creation), then 5, 10 and 12");
        // The checkpoints of 5, 10 and 12 entries.
        let offsets: Vec<u64> = signed.refs[1..].iter().map(|r| r.offset).collect();

        // A torn last frame (half of it written), then a tail of zeros: both cut, the rest kept.
        for tail in [whole[offsets[2] as usize..][..20].to_vec(), vec![0u8; 64]] {
            fs::write(&path, [&whole[..], &tail[..]].concat()).unwrap();
            let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
            assert_eq!(ledger.last_checkpoint().unwrap().0.size, 12);
            drop(ledger);
            assert_eq!(fs::read(&path).unwrap(), whole, "only the torn tail was cut");
        }
        // The last frame damaged is a torn tail too: cut, and the ledger re-signs from its entries.
        let mut last = whole.clone();
        *last.last_mut().unwrap() ^= 1;
        fs::write(&path, &last).unwrap();
        let ledger = Ledger::open(dir.path(), options(&key)).unwrap();
        assert_eq!(ledger.last_checkpoint().unwrap().0.size, 10);
        drop(ledger);
        assert_eq!(fs::metadata(&path).unwrap().len(), offsets[2]);

        // A damaged middle frame with signed checkpoints after it: a hole. Nothing is cut.
        let mut hole = whole.clone();
        hole[offsets[1] as usize + segment::FRAME_HEADER_LEN as usize + 3] ^= 1;
        fs::write(&path, &hole).unwrap();
        let Err(err) = Ledger::open(dir.path(), options(&key)) else { panic!("a hole must refuse the open") };
        match &err {
            LedgerError::CheckpointHole { path: p, offset, next } => {
                assert_eq!((p, *offset, *next), (&path, offsets[1], offsets[2]));
            }
            other => panic!("{other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("checkpoints.log") && message.contains(&format!("offset {}", offsets[1])),
            "{message}"
        );
        assert_eq!(fs::read(&path).unwrap(), hole, "nothing was cut");
        // Its length damaged instead: the next frame cannot be found by length, but is found.
        let mut hole = whole.clone();
        hole[offsets[1] as usize] ^= 0x40;
        fs::write(&path, &hole).unwrap();
        assert!(
            matches!(load_checkpoints(&path, &verifier, verifier.name()), Err(LedgerError::CheckpointHole { next, .. }) if next == offsets[2])
        );
        // Zeros between two frames (parsed as empty frames) with signed checkpoints after them: a hole too.
        let gap = [&whole[..offsets[1] as usize], &[0u8; 16][..], &whole[offsets[1] as usize..]].concat();
        fs::write(&path, &gap).unwrap();
        let r = load_checkpoints(&path, &verifier, verifier.name()).err();
        let found = match r {
            Some(LedgerError::CheckpointHole { offset, next, .. }) => Some((offset, next)),
            _ => None,
        };
        assert_eq!(found, Some((offsets[1], offsets[1] + 16)));
        assert_eq!(fs::read(&path).unwrap(), gap);
    }
}
