//! The audit hash chain: an append-only file, `DIR/audit-chain.jsonl`, in which every entry
//! commits to the one before it, so that changing, removing or reordering any acknowledged entry
//! is detected by [`verify_chain_file`] (and by [`AuditChain::open`], which refuses to start on
//! a broken chain: the gateway fails closed rather than answer without a trustworthy ledger).
//!
//! It owns the file format, durability and verification; what goes into an entry (the caller's
//! canonical JSON text) is the caller's business. A later step replaces this chain with an
//! RFC 9162 Merkle log with signed checkpoints, which also detects truncation of the tail; a plain
//! hash chain cannot, so keep the API small.
//!
//! # Format
//! One compact JSON object per line:
//! `{"seq":N,"prev":"<hex>","body":"<body as a JSON string>","hash":"<hex>"}`. The body is
//! stored as a JSON *string* so the exact bytes hashed survive any re-encoding, and
//! `hash = SHA-256("shuzhu-audit-v1\n" ‖ seq as u64 big-endian ‖ prev (32 bytes) ‖ body)`, with
//! 32 zero bytes as the `prev` of entry 1. A line must also be byte-for-byte the canonical
//! encoding of its fields, so that no alternative spelling (upper-case hex, `\u001F` for
//! `\u001f`) of the same entry is accepted.
//!
//! # Durability
//! [`AuditChain::append`] writes the line and `fdatasync`s the file before it returns the
//! sequence number; `open` fsyncs the directory so the file's name is durable too. A crash
//! mid-write leaves at most one incomplete last line, which `open` truncates away with a warning.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shuzhu_gateway::ledger::{AuditChain, verify_chain_file};
//! let dir = tempfile::tempdir()?;
//! let chain = AuditChain::open(dir.path())?;
//! assert_eq!(chain.append(r#"{"action":"query","decision":"allow"}"#.to_owned())?, 1);
//! let summary = verify_chain_file(chain.path())?;
//! assert_eq!((summary.entries, summary.head_hash), (1, chain.head_hash()));
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ring::digest;
use serde::{Deserialize, Serialize};

/// Name of the chain file inside the ledger directory.
pub const CHAIN_FILE_NAME: &str = "audit-chain.jsonl";
/// Largest entry body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Domain-separation prefix of every entry hash.
const HASH_DOMAIN: &[u8] = b"shuzhu-audit-v1\n";
/// Longest possible line: a body of `MAX_BODY_BYTES` where every byte needs a six-byte
/// `\u00XX` escape, plus the fixed fields.
const MAX_LINE_BYTES: u64 = 6 * MAX_BODY_BYTES as u64 + 256;
/// The `prev` of entry 1.
const GENESIS: [u8; 32] = [0; 32];

/// One entry as stored, hashes in lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Hash of the previous entry (64 zeros for entry 1).
    pub prev_hash: String,
    /// The caller's JSON text, exactly as appended.
    pub body: String,
    /// This entry's hash.
    pub hash: String,
}

/// What a successful verification saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifySummary {
    /// Number of entries.
    pub entries: u64,
    /// Hash of the last entry (64 zeros for an empty chain).
    pub head_hash: String,
}

/// The first place where a chain fails verification. `what` never contains an entry body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {what}")]
pub struct ChainBroken {
    /// The seq the failing entry should have, which is also its 1-based line number; 0 when
    /// the file could not be read at all.
    pub seq: u64,
    /// What is wrong there.
    pub what: String,
}

/// Why the ledger could not be opened or appended to.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger file or directory could not be created, read, written or synced.
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
    /// The chain on disk does not verify; the gateway must not start on it.
    #[error("audit ledger does not verify")]
    Broken(#[from] ChainBroken),
    /// The entry body is not valid JSON text.
    #[error("audit entry body is not valid json")]
    InvalidBody,
    /// The entry body exceeds [`MAX_BODY_BYTES`].
    #[error("audit entry body is {len} bytes, more than the {max} allowed")]
    BodyTooLarge {
        /// The body's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write could not be undone or sync failed, so the file's state is unknown;
    /// appends are refused until the ledger is reopened (and re-verified).
    #[error("audit ledger refuses appends after a failed write or sync; reopen it to re-verify")]
    Poisoned,
}

/// The append-only audit hash chain. `Send + Sync`: one mutex guards the file and the state.
pub struct AuditChain {
    path: PathBuf,
    state: Mutex<ChainState>,
}

struct ChainState {
    file: Box<dyn ChainFile>,
    /// Byte offset of the line of entry `i + 1`: the index that makes `list` a seek, not a scan.
    offsets: Vec<u64>,
    /// Length of the verified file, where the next line goes.
    end: u64,
    /// Hash of the last entry.
    head: [u8; 32],
    /// Set when the file may hold bytes the state does not account for.
    poisoned: bool,
}

impl fmt::Debug for AuditChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditChain").field("path", &self.path).field("len", &self.len()).finish()
    }
}

impl AuditChain {
    /// Opens the chain in `dir`, creating the directory and an empty chain if absent, and
    /// verifies every entry. An incomplete last line (a crash mid-write) is truncated away with a
    /// warning; any other damage is an error.
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        let dir_existed = dir.is_dir();
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let path = dir.join(CHAIN_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("open", &path))?;
        // Sync the directory on every open, not only when the file is new: a crash right after
        // an earlier creation may have left the name not yet durable.
        sync_dir(dir).map_err(io_error("sync directory", dir))?;
        if !dir_existed {
            let parent = match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            sync_dir(parent).map_err(io_error("sync directory", parent))?;
        }
        Self::from_file(path, Box::new(DiskFile { file }))
    }

    /// Builds the chain over any [`ChainFile`]: the seam unit tests use to watch the file ops.
    fn from_file(path: PathBuf, mut file: Box<dyn ChainFile>) -> Result<Self, LedgerError> {
        let file_len = file.len().map_err(io_error("read", &path))?;
        let scan =
            scan_chain(FileReader { file: file.as_mut(), pos: 0, len: file_len }, true).map_err(
                |error| match error {
                    ScanError::Io(source) => io_error("read", &path)(source),
                    ScanError::Broken(broken) => LedgerError::Broken(broken),
                },
            )?;
        if scan.torn_tail > 0 {
            check_torn_tail(&scan)?;
            tracing::warn!(
                path = %path.display(),
                entries = scan.verifier.entries,
                offset = scan.complete_len,
                torn_bytes = scan.torn_tail,
                "audit ledger ends with an incomplete line, truncating it"
            );
            file.truncate(scan.complete_len).map_err(io_error("truncate", &path))?;
        }
        Ok(Self {
            path,
            state: Mutex::new(ChainState {
                file,
                offsets: scan.offsets,
                end: scan.complete_len,
                head: scan.verifier.head,
                poisoned: false,
            }),
        })
    }

    /// Appends `body` (the caller's canonical JSON text) and returns its seq once the line is
    /// on disk (written and `fdatasync`ed). On any error nothing is acknowledged and the chain's
    /// state does not advance.
    pub fn append(&self, body: String) -> Result<u64, LedgerError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(LedgerError::BodyTooLarge { len: body.len(), max: MAX_BODY_BYTES });
        }
        // A body that is not JSON would make the next `open` refuse the whole ledger.
        if serde_json::from_str::<serde::de::IgnoredAny>(&body).is_err() {
            return Err(LedgerError::InvalidBody);
        }
        let mut state = self.lock();
        if state.poisoned {
            return Err(LedgerError::Poisoned);
        }
        let seq = state.offsets.len() as u64 + 1;
        let hash = entry_hash(seq, &state.head, body.as_bytes());
        let mut line = encode_line(seq, &hex::encode(state.head), &body, &hex::encode(hash));
        line.push(b'\n');

        let end = state.end;
        if let Err(source) = state.file.write_all_at(end, &line) {
            // Part of the line may be in the file; cut it off so the next line starts clean.
            if let Err(undo) = state.file.truncate(end) {
                state.poisoned = true;
                tracing::error!(path = %self.path.display(), error = %undo, "audit ledger cannot undo a failed write");
            }
            return Err(io_error("write", &self.path)(source));
        }
        if let Err(source) = state.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages: what is on disk
            // is unknown, so refuse further appends until a reopen re-verifies the file.
            state.poisoned = true;
            tracing::error!(path = %self.path.display(), error = %source, "audit ledger sync failed");
            return Err(io_error("sync", &self.path)(source));
        }
        state.offsets.push(end);
        state.end = end + line.len() as u64;
        state.head = hash;
        Ok(seq)
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.lock().offsets.len() as u64
    }

    /// Whether the chain has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hash of the last entry in hex (64 zeros for an empty chain).
    pub fn head_hash(&self) -> String {
        hex::encode(self.lock().head)
    }

    /// The chain file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Up to `limit` entries starting at seq `from_seq` (seq 0 is read as 1), read from the file
    /// with one seek. Each entry's hash is re-checked, so a file changed behind the gateway's
    /// back is reported rather than served.
    pub fn list(&self, from_seq: u64, limit: usize) -> Result<Vec<ChainEntry>, LedgerError> {
        let mut state = self.lock();
        let len = state.offsets.len();
        let first = usize::try_from(from_seq.max(1) - 1).unwrap_or(usize::MAX);
        if first >= len || limit == 0 {
            return Ok(Vec::new());
        }
        let stop = first.saturating_add(limit).min(len);
        // `first < stop <= len`, so both lookups are in bounds.
        let start_offset = state.offsets[first];
        let end_offset = state.offsets.get(stop).copied().unwrap_or(state.end);
        let mut bytes = vec![0; (end_offset - start_offset) as usize];
        state.file.read_exact_at(start_offset, &mut bytes).map_err(io_error("read", &self.path))?;
        drop(state);

        let lines = bytes.split(|&b| b == b'\n').take(stop - first);
        let entries = (first as u64 + 1..)
            .zip(lines)
            .map(|(seq, line)| reread_entry(line, seq))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(entries)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChainState> {
        // The state advances only after a line is durable, in plain assignments that cannot
        // panic, so a panic elsewhere while the lock was held cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Verifies the chain file at `path` from its first line to its last: each line parses, is
/// canonical, has seq previous+1, `prev` equal to the previous hash, a hash that recomputes, and
/// a body that is valid JSON; the file ends with a newline. Reports the first failure.
pub fn verify_chain_file(path: &Path) -> Result<VerifySummary, ChainBroken> {
    let file = File::open(path)
        .map_err(|error| ChainBroken { seq: 0, what: format!("cannot open the chain file: {error}") })?;
    verify_chain_reader(file)
}

/// [`verify_chain_file`] over any reader.
pub(crate) fn verify_chain_reader(reader: impl Read) -> Result<VerifySummary, ChainBroken> {
    let scan = scan_chain(reader, false).map_err(|error| match error {
        ScanError::Broken(broken) => broken,
        ScanError::Io(error) => ChainBroken { seq: 0, what: format!("cannot read the chain file: {error}") },
    })?;
    if scan.torn_tail > 0 {
        return Err(ChainBroken {
            seq: scan.verifier.entries + 1,
            what: "the last line is incomplete (no trailing newline)".to_owned(),
        });
    }
    Ok(VerifySummary { entries: scan.verifier.entries, head_hash: hex::encode(scan.verifier.head) })
}

// ---------------------------------------------------------------------------------------------
// Lines, hashes and verification
// ---------------------------------------------------------------------------------------------

/// One line's fields, in their canonical order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineRecord<'a> {
    seq: u64,
    #[serde(borrow)]
    prev: Cow<'a, str>,
    #[serde(borrow)]
    body: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

fn entry_hash(seq: u64, prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(HASH_DOMAIN);
    context.update(&seq.to_be_bytes());
    context.update(prev);
    context.update(body);
    let mut out = [0; 32];
    // SHA-256 digests are always 32 bytes.
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// The canonical line for these fields, without its newline.
fn encode_line(seq: u64, prev: &str, body: &str, hash: &str) -> Vec<u8> {
    let record = LineRecord { seq, prev: Cow::Borrowed(prev), body: Cow::Borrowed(body), hash: Cow::Borrowed(hash) };
    // Serializing a u64 and three strings into memory has no failure path in serde_json.
    serde_json::to_vec(&record).expect("serializing a chain line cannot fail")
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    let mut out = [0; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Running state of a verification from the first line.
struct ChainVerifier {
    entries: u64,
    head: [u8; 32],
}

impl ChainVerifier {
    fn new() -> Self {
        Self { entries: 0, head: GENESIS }
    }

    /// Checks the next complete line (without its newline) and advances.
    fn check_line(&mut self, line: &[u8]) -> Result<(), ChainBroken> {
        let seq = self.entries + 1;
        let broken = |what: &str| ChainBroken { seq, what: what.to_owned() };
        let record: LineRecord<'_> =
            serde_json::from_slice(line).map_err(|_| broken("the line is not a chain entry"))?;
        if record.seq != seq {
            return Err(ChainBroken { seq, what: format!("the entry says seq {}", record.seq) });
        }
        if decode_hash(&record.prev) != Some(self.head) {
            return Err(broken("prev does not match the previous entry's hash"));
        }
        let hash = entry_hash(seq, &self.head, record.body.as_bytes());
        if decode_hash(&record.hash) != Some(hash) {
            return Err(broken("the hash does not match the entry"));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&record.body).is_err() {
            return Err(broken("the body is not valid json"));
        }
        // Re-encode from the computed hashes, so that upper-case hex is refused too.
        if encode_line(seq, &hex::encode(self.head), &record.body, &hex::encode(hash)) != line {
            return Err(broken("the line is not in canonical form"));
        }
        self.entries = seq;
        self.head = hash;
        Ok(())
    }
}

/// Re-reads an entry for `list`: its own fields must still hash to its hash.
fn reread_entry(line: &[u8], seq: u64) -> Result<ChainEntry, LedgerError> {
    let changed = || {
        LedgerError::Broken(ChainBroken {
            seq,
            what: "the entry changed on disk since the ledger was opened".to_owned(),
        })
    };
    let record: LineRecord<'_> = serde_json::from_slice(line).map_err(|_| changed())?;
    let prev = decode_hash(&record.prev).ok_or_else(changed)?;
    if record.seq != seq || decode_hash(&record.hash) != Some(entry_hash(seq, &prev, record.body.as_bytes())) {
        return Err(changed());
    }
    Ok(ChainEntry {
        seq,
        prev_hash: record.prev.into_owned(),
        body: record.body.into_owned(),
        hash: record.hash.into_owned(),
    })
}

struct Scan {
    verifier: ChainVerifier,
    /// Offsets of the verified lines (only when asked for).
    offsets: Vec<u64>,
    /// Bytes up to and including the last newline.
    complete_len: u64,
    /// Number of bytes after the last newline.
    torn_tail: u64,
    /// Those bytes, for [`check_torn_tail`].
    torn_head: Vec<u8>,
}

enum ScanError {
    Io(io::Error),
    Broken(ChainBroken),
}

impl From<ChainBroken> for ScanError {
    fn from(broken: ChainBroken) -> Self {
        Self::Broken(broken)
    }
}

/// Verifies complete lines in order and measures the incomplete tail, if any.
fn scan_chain(reader: impl Read, keep_offsets: bool) -> Result<Scan, ScanError> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut scan = Scan {
        verifier: ChainVerifier::new(),
        offsets: Vec::new(),
        complete_len: 0,
        torn_tail: 0,
        torn_head: Vec::new(),
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader).take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut line).map_err(ScanError::Io)?;
        if read == 0 {
            return Ok(scan);
        }
        if line.last() != Some(&b'\n') {
            if read as u64 > MAX_LINE_BYTES {
                return Err(ChainBroken {
                    seq: scan.verifier.entries + 1,
                    what: "the line is longer than any entry can be".to_owned(),
                }
                .into());
            }
            scan.torn_tail = read as u64;
            scan.torn_head = line;
            return Ok(scan);
        }
        line.pop();
        scan.verifier.check_line(&line)?;
        if keep_offsets {
            scan.offsets.push(scan.complete_len);
        }
        scan.complete_len += read as u64;
    }
}

/// Accepts an incomplete last line only if it could be a partial write of the entry that would
/// have come next: a prefix of `{"seq":N,"prev":"<head>","body":"<escaped body>","hash":"<hex>"}`
/// for the next N and the current head, where a zero byte may stand for any byte (a block the
/// crash left unwritten). Anything else, such as a damaged final newline, which leaves a whole
/// entry followed by one more byte, is corruption rather than a torn write.
fn check_torn_tail(scan: &Scan) -> Result<(), LedgerError> {
    let seq = scan.verifier.entries + 1;
    if is_partial_entry_line(&scan.torn_head, seq, &scan.verifier.head) {
        return Ok(());
    }
    Err(LedgerError::Broken(ChainBroken {
        seq,
        what: "the last line is incomplete and is not a partial write of the next entry".to_owned(),
    }))
}

fn is_partial_entry_line(tail: &[u8], seq: u64, head: &[u8; 32]) -> bool {
    /// Whether `found` agrees with `template` as far as it goes; `#` in the template stands for
    /// a lower-case hex digit, and a zero byte in `found` for anything.
    fn agrees(found: &[u8], template: &[u8]) -> bool {
        found.len() <= template.len()
            && found
                .iter()
                .zip(template)
                .all(|(&f, &t)| f == 0 || f == t || (t == b'#' && matches!(f, b'0'..=b'9' | b'a'..=b'f')))
    }
    let opening = format!(r#"{{"seq":{seq},"prev":"{}","body":""#, hex::encode(head));
    let Some(rest) = tail.get(opening.len()..) else {
        return agrees(tail, opening.as_bytes());
    };
    if !agrees(&tail[..opening.len()], opening.as_bytes()) {
        return false;
    }
    // The body string: any bytes but raw control characters, up to an unescaped quote.
    let mut index = 0;
    while let Some(&byte) = rest.get(index) {
        match byte {
            b'"' => break,
            b'\\' => index += 2,
            0 => index += 1,
            0x01..=0x1f => return false,
            _ => index += 1,
        }
    }
    match rest.get(index + 1..) {
        Some(closing) => agrees(closing, format!(r#","hash":"{}"}}"#, "#".repeat(64)).as_bytes()),
        None => true,
    }
}

// ---------------------------------------------------------------------------------------------
// The file seam
// ---------------------------------------------------------------------------------------------

/// The file operations the chain needs, so unit tests can record their order and inject faults.
pub(crate) trait ChainFile: Send {
    /// Current length in bytes.
    fn len(&mut self) -> io::Result<u64>;
    /// Fills `buf` from `offset`.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `bytes` at `offset`.
    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// `fdatasync`: data and the metadata needed to read it back (the length) reach the disk.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes, durably.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

struct DiskFile {
    file: File,
}

impl ChainFile for DiskFile {
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }

    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_data()
    }
}

/// Sequential `Read` over a [`ChainFile`], for the verifying scan at open.
struct FileReader<'a> {
    file: &'a mut dyn ChainFile,
    pos: u64,
    len: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.len - self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file.read_exact_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened for syncing here; the file system orders metadata itself.
    Ok(())
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LedgerError + use<> {
    let path = path.to_path_buf();
    move |source| LedgerError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Bodies with multi-byte characters, JSON whitespace that the line must escape (`\n`, `\t`)
    /// and an escape inside a body string, so that the bit-flip test meets escapes.
    fn bodies() -> [String; 3] {
        [
            r#"{"action":"query","indicator":"调撤率","decision":"allow"}"#.to_owned(),
            "{\n\t\"action\":\"query\",\"note\":\"\\u001f\",\"decision\":\"deny\"}".to_owned(),
            r#"{"action":"audit.read","from":1}"#.to_owned(),
        ]
    }

    fn chain_with_three(dir: &Path) -> AuditChain {
        let chain = AuditChain::open(dir).unwrap();
        for body in bodies() {
            chain.append(body).unwrap();
        }
        chain
    }

    #[test]
    fn audit_chain_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<AuditChain>();
    }

    #[test]
    fn append_reopen_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let chain = AuditChain::open(dir.path()).unwrap();
        assert!(chain.is_empty());
        assert_eq!(chain.head_hash(), "0".repeat(64));
        for (index, body) in bodies().into_iter().enumerate() {
            assert_eq!(chain.append(body).unwrap(), index as u64 + 1);
        }
        let head = chain.head_hash();
        drop(chain);

        let chain = AuditChain::open(dir.path()).unwrap();
        assert_eq!(chain.len(), 3);
        assert_eq!(chain.head_hash(), head);
        let all = chain.list(0, 10).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all.iter().map(|e| e.body.clone()).collect::<Vec<_>>(), bodies());
        assert_eq!(all[0].prev_hash, "0".repeat(64));
        assert_eq!(all[1].prev_hash, all[0].hash);
        assert_eq!(all[2].hash, head);
        assert_eq!(chain.list(2, 1).unwrap(), all[1..2]);
        assert_eq!(chain.list(2, usize::MAX).unwrap(), all[1..]);
        assert!(chain.list(4, 10).unwrap().is_empty());
        assert!(chain.list(1, 0).unwrap().is_empty());

        assert_eq!(chain.append(r#"{"n":4}"#.to_owned()).unwrap(), 4);
        assert_eq!(chain.list(4, 1).unwrap()[0].prev_hash, head);
    }

    #[test]
    fn known_answer_for_the_first_entry_hash() {
        // Computed outside Rust:
        // printf 'shuzhu-audit-v1\n\0\0\0\0\0\0\0\1' > x; head -c 32 /dev/zero >> x;
        // printf '{}' >> x; sha256sum x
        let hash = hex::encode(entry_hash(1, &GENESIS, b"{}"));
        assert_eq!(hash, "9f0c3b21593117bcda273543302227125d62f105373d3d728c6af69ed3f48aa1");
        let zeros = "0".repeat(64);
        assert_eq!(
            String::from_utf8(encode_line(1, &zeros, "{}", &hash)).unwrap(),
            format!(r#"{{"seq":1,"prev":"{zeros}","body":"{{}}","hash":"{hash}"}}"#)
        );
    }

    #[test]
    fn verify_passes_on_a_good_chain() {
        let dir = tempfile::tempdir().unwrap();
        let chain = chain_with_three(dir.path());
        let summary = verify_chain_file(chain.path()).unwrap();
        assert_eq!(summary, VerifySummary { entries: 3, head_hash: chain.head_hash() });
        let empty = tempfile::tempdir().unwrap();
        let chain = AuditChain::open(empty.path()).unwrap();
        assert_eq!(verify_chain_file(chain.path()).unwrap().entries, 0);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let chain = chain_with_three(dir.path());
        let original = fs::read(chain.path()).unwrap();
        assert!(verify_chain_reader(original.as_slice()).is_ok());
        let flipped_path = dir.path().join("flipped.jsonl");
        for position in 0..original.len() {
            for bit in 0..8 {
                let mut damaged = original.clone();
                damaged[position] ^= 1 << bit;
                assert!(
                    verify_chain_reader(damaged.as_slice()).is_err(),
                    "flip of bit {bit} at byte {position} went unnoticed"
                );
                if bit == 0 {
                    fs::write(&flipped_path, &damaged).unwrap();
                    assert!(verify_chain_file(&flipped_path).is_err());
                }
            }
        }
    }

    #[test]
    fn deleting_or_reordering_lines_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let chain = chain_with_three(dir.path());
        let text = fs::read_to_string(chain.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let rewrite = |order: &[usize]| {
            let path = dir.path().join("rewritten.jsonl");
            let text: String = order.iter().map(|&i| format!("{}\n", lines[i])).collect();
            fs::write(&path, text).unwrap();
            verify_chain_file(&path)
        };
        assert_eq!(rewrite(&[0, 2]).unwrap_err().seq, 2);
        assert_eq!(rewrite(&[1, 2]).unwrap_err().seq, 1);
        assert_eq!(rewrite(&[0, 2, 1]).unwrap_err().seq, 2);
        assert_eq!(rewrite(&[0, 1, 1]).unwrap_err().seq, 3);
        assert!(rewrite(&[0, 1]).is_ok(), "a plain chain cannot see its tail cut");
    }

    #[test]
    fn open_fails_closed_on_a_broken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let chain = chain_with_three(dir.path());
        let path = chain.path().to_owned();
        drop(chain);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replacen("allow", "alloW", 1)).unwrap();
        match AuditChain::open(dir.path()) {
            Err(LedgerError::Broken(broken)) => {
                assert_eq!(broken.seq, 1);
                assert!(!broken.to_string().contains("alloW"));
            }
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn torn_tail_is_truncated_and_the_chain_continues() {
        let dir = tempfile::tempdir().unwrap();
        let chain = chain_with_three(dir.path());
        let path = chain.path().to_owned();
        let head = chain.head_hash();
        let intact = fs::read(&path).unwrap();
        drop(chain);

        // The line entry 4 would have been, cut in half by a crash.
        let hash = entry_hash(4, &decode_hash(&head).unwrap(), br#"{"n":4}"#);
        let next = encode_line(4, &head, r#"{"n":4}"#, &hex::encode(hash));
        let mut torn = intact.clone();
        torn.extend_from_slice(&next[..next.len() / 2]);
        // Every prefix of a possible next line counts as torn; a line that does not follow does not.
        let head_bytes = decode_hash(&head).unwrap();
        let body = &bodies()[1];
        let possible = encode_line(4, &head, body, &hex::encode(entry_hash(4, &head_bytes, body.as_bytes())));
        for cut in 0..=possible.len() {
            assert!(is_partial_entry_line(&possible[..cut], 4, &head_bytes), "cut at {cut}");
            let mut holed = possible[..cut].to_vec();
            holed.iter_mut().skip(cut / 3).take(8).for_each(|b| *b = 0);
            assert!(is_partial_entry_line(&holed, 4, &head_bytes), "hole at {cut}");
        }
        assert!(!is_partial_entry_line(&possible[..40], 3, &head_bytes));
        assert!(!is_partial_entry_line(&[&possible[..], b"}"].concat(), 4, &head_bytes));
        fs::write(&path, &torn).unwrap();
        assert!(verify_chain_file(&path).is_err());

        let chain = AuditChain::open(dir.path()).unwrap();
        assert_eq!(chain.len(), 3);
        assert_eq!(chain.head_hash(), head);
        assert_eq!(fs::read(&path).unwrap(), intact);
        assert_eq!(chain.append(r#"{"n":4}"#.to_owned()).unwrap(), 4);
        assert_eq!(chain.list(1, 10).unwrap().len(), 4);
        assert_eq!(verify_chain_file(&path).unwrap().entries, 4);
    }

    #[test]
    fn torn_tail_of_zeros_is_truncated_but_a_merged_last_line_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let chain = chain_with_three(dir.path());
        let path = chain.path().to_owned();
        drop(chain);
        let intact = fs::read(&path).unwrap();

        let mut zeros = intact.clone();
        zeros.extend([0; 100]);
        fs::write(&path, &zeros).unwrap();
        assert_eq!(AuditChain::open(dir.path()).unwrap().len(), 3);
        assert_eq!(fs::read(&path).unwrap(), intact);

        // A damaged final newline leaves a whole entry plus one byte: no partial write of it.
        for bit in 0..8 {
            let mut merged = intact.clone();
            *merged.last_mut().unwrap() ^= 1 << bit;
            fs::write(&path, &merged).unwrap();
            assert!(matches!(AuditChain::open(dir.path()), Err(LedgerError::Broken(_))));
            assert_eq!(fs::read(&path).unwrap(), merged, "a refused ledger is left untouched");
        }

        // Garbage after the last newline is not a torn write either.
        let mut garbage = intact.clone();
        garbage.extend_from_slice(b"{\"seq\":9}");
        fs::write(&path, &garbage).unwrap();
        assert!(matches!(AuditChain::open(dir.path()), Err(LedgerError::Broken(_))));

        // A whole next entry that lost only its newline is a torn write of it.
        let head = verify_chain_reader(intact.as_slice()).unwrap().head_hash;
        let hash = entry_hash(4, &decode_hash(&head).unwrap(), b"[]");
        let mut whole = intact.clone();
        whole.extend(encode_line(4, &head, "[]", &hex::encode(hash)));
        fs::write(&path, &whole).unwrap();
        assert_eq!(AuditChain::open(dir.path()).unwrap().len(), 3);
        assert_eq!(fs::read(&path).unwrap(), intact);
    }

    #[test]
    fn bodies_that_are_not_json_or_too_large_are_refused_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let chain = AuditChain::open(dir.path()).unwrap();
        assert!(matches!(chain.append("not json".to_owned()), Err(LedgerError::InvalidBody)));
        assert!(matches!(chain.append(String::new()), Err(LedgerError::InvalidBody)));
        let huge = format!("\"{}\"", "x".repeat(MAX_BODY_BYTES));
        assert!(matches!(chain.append(huge), Err(LedgerError::BodyTooLarge { .. })));
        assert!(chain.is_empty());
        assert_eq!(fs::metadata(chain.path()).unwrap().len(), 0);
    }

    // --- The file seam: a recording fake with fault injection ---------------------------------

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Op {
        Write { offset: u64, len: usize },
        Sync,
        Truncate(u64),
    }

    #[derive(Default)]
    struct FakeDisk {
        bytes: Vec<u8>,
        ops: Vec<Op>,
        /// Write only this many bytes of the next write, then fail.
        fail_next_write_after: Option<usize>,
        fail_next_sync: bool,
        fail_truncate: bool,
    }

    #[derive(Clone, Default)]
    struct FakeFile(Arc<Mutex<FakeDisk>>);

    impl FakeFile {
        fn disk(&self) -> std::sync::MutexGuard<'_, FakeDisk> {
            self.0.lock().unwrap()
        }
    }

    impl ChainFile for FakeFile {
        fn len(&mut self) -> io::Result<u64> {
            Ok(self.disk().bytes.len() as u64)
        }

        fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let disk = self.disk();
            let start = offset as usize;
            let source = disk
                .bytes
                .get(start..start + buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(source);
            Ok(())
        }

        fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
            let mut disk = self.disk();
            disk.ops.push(Op::Write { offset, len: bytes.len() });
            let (written, result) = match disk.fail_next_write_after.take() {
                Some(n) => (&bytes[..n], Err(io::Error::other("disk full"))),
                None => (bytes, Ok(())),
            };
            let start = offset as usize;
            disk.bytes.truncate(start);
            disk.bytes.extend_from_slice(written);
            result
        }

        fn sync_data(&mut self) -> io::Result<()> {
            let mut disk = self.disk();
            disk.ops.push(Op::Sync);
            if std::mem::take(&mut disk.fail_next_sync) {
                return Err(io::Error::other("eio"));
            }
            Ok(())
        }

        fn truncate(&mut self, len: u64) -> io::Result<()> {
            let mut disk = self.disk();
            disk.ops.push(Op::Truncate(len));
            if disk.fail_truncate {
                return Err(io::Error::other("eio"));
            }
            disk.bytes.truncate(len as usize);
            Ok(())
        }
    }

    fn fake_chain() -> (AuditChain, FakeFile) {
        let fake = FakeFile::default();
        let chain = AuditChain::from_file(PathBuf::from("fake"), Box::new(fake.clone())).unwrap();
        (chain, fake)
    }

    #[test]
    fn append_syncs_before_it_acknowledges() {
        let (chain, fake) = fake_chain();
        let first = chain.append(bodies()[0].clone()).unwrap();
        let ops = fake.disk().ops.clone();
        let first_len = fake.disk().bytes.len();
        assert_eq!(first, 1);
        assert_eq!(ops, [Op::Write { offset: 0, len: first_len }, Op::Sync]);

        chain.append(bodies()[1].clone()).unwrap();
        let ops = fake.disk().ops.clone();
        assert!(matches!(ops[2], Op::Write { offset, .. } if offset == first_len as u64));
        assert_eq!(ops[3], Op::Sync);
        assert_eq!(ops.len(), 4);
        assert!(verify_chain_reader(fake.disk().bytes.as_slice()).is_ok());
    }

    #[test]
    fn failed_sync_is_not_acknowledged_and_poisons_the_chain() {
        let (chain, fake) = fake_chain();
        chain.append(bodies()[0].clone()).unwrap();
        let head = chain.head_hash();
        fake.disk().fail_next_sync = true;
        assert!(matches!(chain.append(bodies()[1].clone()), Err(LedgerError::Io { op: "sync", .. })));
        assert_eq!(chain.len(), 1);
        assert_eq!(chain.head_hash(), head);
        assert!(matches!(chain.append(bodies()[2].clone()), Err(LedgerError::Poisoned)));
        assert_eq!(fake.disk().ops.len(), 4, "no write after the failed sync");
    }

    #[test]
    fn failed_write_is_undone_and_the_chain_continues() {
        let (chain, fake) = fake_chain();
        chain.append(bodies()[0].clone()).unwrap();
        let good_len = fake.disk().bytes.len() as u64;
        fake.disk().fail_next_write_after = Some(10);
        assert!(matches!(chain.append(bodies()[1].clone()), Err(LedgerError::Io { op: "write", .. })));
        assert_eq!(chain.len(), 1);
        assert_eq!(fake.disk().ops.last(), Some(&Op::Truncate(good_len)));
        assert_eq!(fake.disk().bytes.len() as u64, good_len);

        assert_eq!(chain.append(bodies()[1].clone()).unwrap(), 2);
        assert_eq!(verify_chain_reader(fake.disk().bytes.as_slice()).unwrap().entries, 2);
    }

    #[test]
    fn failed_write_that_cannot_be_undone_poisons_the_chain() {
        let (chain, fake) = fake_chain();
        {
            let mut disk = fake.disk();
            disk.fail_next_write_after = Some(10);
            disk.fail_truncate = true;
        }
        assert!(chain.append(bodies()[0].clone()).is_err());
        assert!(matches!(chain.append(bodies()[0].clone()), Err(LedgerError::Poisoned)));
        assert!(chain.is_empty());
    }
}
