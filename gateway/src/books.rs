//! The privacy books' storage: append-only JSON-lines files (`releases.jsonl`, `dp-budget.jsonl`,
//! `quota.jsonl` in the ledger directory) whose lines are hash-chained, and whose chain heads are
//! committed in the audit ledger, so that a book deleted, cut short or altered on disk is found at
//! start instead of silently resetting the differencing defence, the ε budget or the quotas.
//!
//! **The chain.** Each line is `HEAD CONTENT\n`: `CONTENT` is the book's own JSON line and `HEAD`
//! is 64 hex digits of `h_n = SHA-256(h_{n−1} ‖ CONTENT)`, starting from
//! `h_0 = SHA-256("shuzhu-book-v1\n" ‖ FILE NAME)` (so one book cannot stand in for another). The
//! head of a book of `n` lines is `h_n`; it depends only on the contents, so a book written before
//! chaining (plain JSON lines) has the same head once chained: such a book is read once as it is and
//! rewritten chained (atomically, by rename) when it is opened.
//!
//! **The commitment.** The audit entry of every request that finds the books changed since the last
//! commitment carries `books`: per file, `lines` and `head` (see [`BookHead`]). The entry is
//! appended, like every entry, before the answer leaves, so every book line an answer depends on is
//! committed by the time the answer is seen. At start ([`check_committed`]) each book must begin with
//! exactly the committed lines: a book that is missing while the ledger committed lines of it, that
//! has fewer lines, or whose first lines chain to another head refuses the start, naming the file.
//! Lines after the commitment (a crash between a book's append and the entry) are accepted and
//! committed at start. A book rewritten at start (the quota book's compaction) is committed *before*
//! the rename, with the head it replaces (`replaces`), so a crash between the two leaves a book the
//! check accepts.
//!
//! **Durability.** [`LineFile::append`] returns only once the lines are `fdatasync`ed; on a failure
//! the file is cut back to where it ended, so a crash or a full disk never leaves a fragment that a
//! later line would glue onto. An unterminated last line (a write torn by a crash, never
//! acknowledged) is cut off when the book is opened.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Domain of the chain's first head.
const CHAIN_DOMAIN: &[u8] = b"shuzhu-book-v1\n";

/// The names of the books the gateway keeps in its ledger directory, in the order they are checked.
pub const BOOK_FILE_NAMES: [&str; 3] =
    [crate::releases::RELEASES_FILE_NAME, crate::budget::BUDGET_FILE_NAME, crate::quota::QUOTA_FILE_NAME];

/// What an operator can do about a book that does not match the audit ledger.
const FIX: &str = "restore the book from a backup taken at or after that entry and start again; \
                   see docs/operations.md, \"privacy books\"";

/// Why a book could not be opened, checked or appended to. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// The file could not be read or written.
    #[error("privacy book {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not text, or not a record of the book.
    #[error("privacy book {path}: line {line} is corrupt")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
    },
    /// A line's stored head is not the chain's: the line (or one before it) was altered, inserted
    /// or removed.
    #[error("privacy book {path}: line {line} does not match its hash chain (altered, inserted or removed); {FIX}")]
    Broken {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
    },
    /// The file is gone although the audit ledger committed lines of it.
    #[error("privacy book {path} is missing, but audit entry {seq} committed {lines} lines of it; {FIX}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// Lines committed.
        lines: u64,
        /// The committing entry (from 1).
        seq: u64,
    },
    /// The file has fewer lines than the audit ledger committed.
    #[error("privacy book {path} has {found} lines, but audit entry {seq} committed {lines}: it was cut short; {FIX}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Lines found.
        found: u64,
        /// Lines committed.
        lines: u64,
        /// The committing entry (from 1).
        seq: u64,
    },
    /// The file's first committed lines chain to another head than the one committed.
    #[error("privacy book {path}: its first {lines} lines differ from what audit entry {seq} committed; {FIX}")]
    Altered {
        /// The file.
        path: PathBuf,
        /// Lines committed.
        lines: u64,
        /// The committing entry (from 1).
        seq: u64,
    },
    /// The latest commitment could not be read from the audit ledger.
    #[error("privacy books: the audit ledger's commitment cannot be read: {0}")]
    Ledger(String),
}

impl BookError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BookError + '_ {
        move |source| BookError::Io { path: path.to_owned(), source }
    }
}

/// A book's state as committed in an audit entry: how many lines and the chain's head after them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookHead {
    /// Lines in the book.
    pub lines: u64,
    /// Hex SHA-256 chain head after them.
    pub head: String,
    /// For a book rewritten at start (compacted): the state it replaced. Until the rewrite lands,
    /// a book in that state is accepted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Box<BookHead>>,
}

impl BookHead {
    /// The head of an empty book named `name`.
    pub fn empty(name: &str) -> Self {
        BookHead { lines: 0, head: hex::encode(genesis(name)), replaces: None }
    }

    fn of(lines: u64, head: &[u8; 32]) -> Self {
        BookHead { lines, head: hex::encode(head), replaces: None }
    }
}

/// The books' heads by file name, as an audit entry commits them.
pub type BookHeads = BTreeMap<String, BookHead>;

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn genesis(name: &str) -> [u8; 32] {
    sha256(&[CHAIN_DOMAIN, name.as_bytes()])
}

fn next(prev: &[u8; 32], content: &[u8]) -> [u8; 32] {
    sha256(&[prev, content])
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A book as read from disk (nothing changed).
struct BookRead {
    /// Contents of its whole, non-empty lines.
    contents: Vec<String>,
    /// The chain's head after each line (`heads[i]` after line `i + 1`); `heads.len() == contents.len()`.
    heads: Vec<[u8; 32]>,
    /// Whether the lines are plain (written before chaining).
    plain: bool,
    /// Bytes of whole lines (a torn last line starts there).
    whole: usize,
    /// Bytes in the file.
    len: usize,
}

impl BookRead {
    #[cfg(test)]
    fn head(&self, name: &str) -> BookHead {
        match self.heads.last() {
            Some(h) => BookHead::of(self.heads.len() as u64, h),
            None => BookHead::empty(name),
        }
    }

    fn head_at(&self, name: &str, lines: u64) -> Option<String> {
        match lines {
            0 => Some(hex::encode(genesis(name))),
            n => self.heads.get(n as usize - 1).map(hex::encode),
        }
    }
}

/// Splits a stored line into its head and its content, when it is chained.
fn split_chained(line: &str) -> Option<([u8; 32], &str)> {
    let (head, content) = (line.get(..64)?, line.get(64..)?.strip_prefix(' ')?);
    let mut out = [0u8; 32];
    hex::decode_to_slice(head, &mut out).ok()?;
    Some((out, content))
}

/// Parses a book's bytes, checking each chained line's stored head. A book is all plain (written
/// before chaining) or all chained.
fn parse(path: &Path, bytes: &[u8]) -> Result<BookRead, BookError> {
    let name = file_name(path);
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let text = std::str::from_utf8(&bytes[..whole]).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count();
        BookError::Corrupt { path: path.to_owned(), line: line + 1 }
    })?;
    let mut head = genesis(&name);
    let mut read = BookRead { contents: Vec::new(), heads: Vec::new(), plain: false, whole, len: bytes.len() };
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let content = match split_chained(line) {
            Some((stored, content)) if !read.plain => {
                head = next(&head, content.as_bytes());
                if stored != head {
                    return Err(BookError::Broken { path: path.to_owned(), line: i + 1 });
                }
                content
            }
            // A plain line among chained ones was put there by hand.
            None if !read.contents.is_empty() && !read.plain => {
                return Err(BookError::Broken { path: path.to_owned(), line: i + 1 });
            }
            // And a chained-looking line in a plain book is not a record of it.
            Some(_) => return Err(BookError::Corrupt { path: path.to_owned(), line: i + 1 }),
            None => {
                read.plain = true;
                head = next(&head, line.as_bytes());
                line
            }
        };
        read.contents.push(content.to_owned());
        read.heads.push(head);
    }
    Ok(read)
}

/// Reads the book at `path`, or `None` when there is none.
fn read_book(path: &Path) -> Result<Option<BookRead>, BookError> {
    match std::fs::read(path) {
        Ok(bytes) => parse(path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BookError::Io { path: path.to_owned(), source: e }),
    }
}

/// Checks the books in `dir` against the commitment of audit entry `seq` (see the module doc): each
/// must begin with exactly the lines committed. Reads only; changes nothing.
pub fn check_committed(dir: &Path, seq: u64, committed: &BookHeads) -> Result<(), BookError> {
    for name in BOOK_FILE_NAMES {
        let Some(want) = committed.get(name) else { continue };
        let path = dir.join(name);
        let Some(book) = read_book(&path)? else {
            if want.lines > 0 && want.replaces.as_ref().is_none_or(|r| r.lines > 0) {
                return Err(BookError::Missing { path, lines: want.lines, seq });
            }
            continue;
        };
        let begins_with = |h: &BookHead| book.head_at(name, h.lines).as_deref() == Some(h.head.as_str());
        if begins_with(want) || want.replaces.as_deref().is_some_and(begins_with) {
            continue;
        }
        let found = book.contents.len() as u64;
        if found < want.lines && want.replaces.as_ref().is_none_or(|r| found < r.lines) {
            return Err(BookError::Truncated { path, found, lines: want.lines, seq });
        }
        return Err(BookError::Altered { path, lines: want.lines, seq });
    }
    Ok(())
}

/// The books' heads committed by the latest audit entry that carries them, with its seq (from 1):
/// `None` when no entry does (a new ledger, or books kept before they were committed).
pub fn last_commitment(ledger: &crate::ledger::AuditChain) -> Result<Option<(u64, BookHeads)>, BookError> {
    #[derive(Deserialize)]
    struct Carrier {
        books: Option<BookHeads>,
    }
    let mut seq = ledger.len();
    while seq > 0 {
        let (entry, _) = ledger.entry(seq).map_err(|e| BookError::Ledger(e.to_string()))?;
        // Entries without `books`, purged ones and bodies of other shapes commit nothing.
        if let Ok(Carrier { books: Some(books) }) = serde_json::from_str::<Carrier>(&entry.body) {
            return Ok(Some((seq, books)));
        }
        seq -= 1;
    }
    Ok(None)
}

/// Opens an append-only book (creating it), returning the contents of its whole lines and the file
/// ready for chained appends. An unterminated last line (a write torn by a crash, never acknowledged)
/// is cut off (and the cut synced) so that the next append starts on a line of its own; a book
/// written before chaining is rewritten chained (its head does not change).
pub(crate) fn open_lines(path: &Path) -> Result<(Vec<String>, LineFile), BookError> {
    let io = BookError::io(path);
    let mut file = OpenOptions::new().create(true).read(true).append(true).open(path).map_err(BookError::io(path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(BookError::io(path))?;
    let read = parse(path, &bytes)?;
    if read.whole < read.len {
        tracing::warn!(path = %path.display(), bytes = read.len - read.whole, "cutting a torn last line");
        file.set_len(read.whole as u64).and_then(|()| file.sync_data()).map_err(io)?;
    }
    let name = file_name(path);
    if read.plain {
        tracing::info!(path = %path.display(), lines = read.contents.len(), "chaining a book written before chaining");
        let bytes = chained_bytes(&name, &read.contents);
        file = replace_file(path, &bytes)?;
    }
    let head = read.heads.last().copied().unwrap_or_else(|| genesis(&name));
    let lines = read.contents.len() as u64;
    Ok((read.contents, LineFile { store: file, failed: false, name, head, lines }))
}

/// The chained bytes of `contents` (one line each) from the start of a book named `name`.
fn chained_bytes(name: &str, contents: &[String]) -> Vec<u8> {
    let mut head = genesis(name);
    let mut out = Vec::new();
    for c in contents {
        head = next(&head, c.as_bytes());
        out.extend_from_slice(hex::encode(head).as_bytes());
        out.push(b' ');
        out.extend_from_slice(c.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Replaces the file at `path` with `bytes` atomically (written beside it, synced, renamed, the
/// directory synced), returning it open for appending.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<File, BookError> {
    let io = BookError::io(path);
    let tmp = path.with_extension("jsonl.tmp");
    let written = (|| {
        let mut out = File::create(&tmp)?;
        out.write_all(bytes)?;
        out.sync_all()?;
        drop(out);
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        OpenOptions::new().read(true).append(true).open(path)
    })();
    written.map_err(io)
}

/// Rewrites the book at `path` to hold `contents` (a compaction), committing the new head first:
/// `commit` is given the new head with the one it replaces (`before`) and must make it durable (an
/// audit entry) before the rename; when it fails, the book is left as it was.
pub(crate) fn rewrite(
    path: &Path,
    contents: &[String],
    before: BookHead,
    commit: &dyn Fn(&BookHead) -> Result<(), String>,
) -> Result<LineFile, BookError> {
    let name = file_name(path);
    let bytes = chained_bytes(&name, contents);
    let head = contents.iter().fold(genesis(&name), |h, c| next(&h, c.as_bytes()));
    let mut new = BookHead::of(contents.len() as u64, &head);
    new.replaces = Some(Box::new(before));
    commit(&new).map_err(|e| BookError::Io { path: path.to_owned(), source: std::io::Error::other(e) })?;
    let file = replace_file(path, &bytes)?;
    Ok(LineFile { store: file, failed: false, name, head, lines: contents.len() as u64 })
}

/// What an append to a book needs of its storage: where the file ends now, and cutting it back there
/// (durably). [`File`] is the storage; tests put a failing one in its place.
pub(crate) trait LineStore: Write {
    /// The current length in bytes.
    fn end(&mut self) -> std::io::Result<u64>;
    /// Makes the written bytes durable.
    fn sync(&mut self) -> std::io::Result<()>;
    /// Cuts the file back to `len` bytes and makes the cut durable.
    fn cut(&mut self, len: u64) -> std::io::Result<()>;
}

impl LineStore for File {
    fn end(&mut self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }

    fn cut(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.sync_data()
    }
}

/// An append-only, hash-chained book (from [`open_lines`]) whose appends land whole or not at all. A
/// failed write (a full disk may take part of a line) or sync is undone by cutting the file back to
/// where it ended, so the next append does not glue onto a fragment (which a restart would read as a
/// corrupt line). When even the cut fails the file's end is unknown: the book is marked failed and
/// refuses every later append until the gateway restarts (and [`open_lines`] cuts the torn tail).
pub(crate) struct LineFile<F = File> {
    store: F,
    failed: bool,
    name: String,
    head: [u8; 32],
    lines: u64,
}

impl<F: LineStore> LineFile<F> {
    /// Wraps storage holding an empty book named `name`.
    #[cfg(test)]
    pub(crate) fn new(store: F, name: &str) -> Self {
        LineFile { store, failed: false, name: name.to_owned(), head: genesis(name), lines: 0 }
    }

    /// Appends `contents` (whole lines, each ending in `\n`), each chained, and syncs them, or leaves
    /// the file as it was and fails. Durable when it returns `Ok`.
    pub(crate) fn append(&mut self, contents: &[u8]) -> std::io::Result<()> {
        if self.failed {
            return Err(std::io::Error::other("an earlier failed append could not be undone; restart to recover"));
        }
        let mut head = self.head;
        let mut lines = self.lines;
        let mut bytes = Vec::with_capacity(contents.len() + 65 * 4);
        for content in contents.split_inclusive(|b| *b == b'\n') {
            let content = content.strip_suffix(b"\n").unwrap_or(content);
            head = next(&head, content);
            lines += 1;
            bytes.extend_from_slice(hex::encode(head).as_bytes());
            bytes.push(b' ');
            bytes.extend_from_slice(content);
            bytes.push(b'\n');
        }
        let end = self.store.end()?;
        let written = self.store.write_all(&bytes).and_then(|()| self.store.sync());
        if let Err(e) = written {
            if let Err(cut) = self.store.cut(end) {
                tracing::error!(error = %cut, "a failed append could not be undone; refusing appends until restart");
                self.failed = true;
            }
            return Err(e);
        }
        (self.head, self.lines) = (head, lines);
        Ok(())
    }

    /// The book's state now: lines and chain head.
    pub(crate) fn head(&self) -> BookHead {
        if self.lines == 0 { BookHead::empty(&self.name) } else { BookHead::of(self.lines, &self.head) }
    }
}

/// The head of the book at `path` as it is now (its whole lines).
#[cfg(test)]
fn head_of(path: &Path) -> Result<BookHead, BookError> {
    let name = file_name(path);
    Ok(read_book(path)?.map_or_else(|| BookHead::empty(&name), |b| b.head(&name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Storage with room for `room` bytes: a write past it takes what fits and then fails, as a full
    /// disk does. Syncs and cuts fail on demand.
    struct Flaky {
        data: Vec<u8>,
        room: usize,
        fail_sync: bool,
        fail_cut: bool,
    }

    impl Flaky {
        fn new(room: usize) -> Self {
            Flaky { data: Vec::new(), room, fail_sync: false, fail_cut: false }
        }

        /// The contents of the stored lines (the chain heads taken off).
        fn contents(&self) -> Vec<String> {
            parse(Path::new("x.jsonl"), &self.data).unwrap().contents
        }
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.room.saturating_sub(self.data.len()));
            if n == 0 && !buf.is_empty() {
                return Err(std::io::Error::other("no space left on device"));
            }
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl LineStore for Flaky {
        fn end(&mut self) -> std::io::Result<u64> {
            Ok(self.data.len() as u64)
        }

        fn sync(&mut self) -> std::io::Result<()> {
            if self.fail_sync { Err(std::io::Error::other("sync failed")) } else { Ok(()) }
        }

        fn cut(&mut self, len: u64) -> std::io::Result<()> {
            if self.fail_cut {
                return Err(std::io::Error::other("cut failed"));
            }
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_write_that_runs_out_of_space_leaves_no_fragment_for_the_next_line_to_glue_onto() {
        let mut f = LineFile::new(Flaky::new(100), "x.jsonl");
        f.append(b"{\"a\":1}\n").unwrap();
        let after_one = f.store.data.clone();
        // Part of this line fits, then the disk is full.
        assert!(f.append(b"{\"agency\":\"a\",\"dataset\":\"cases\",\"milli\":1}\n").is_err());
        assert_eq!(f.store.data, after_one, "the partial line is cut away");
        assert_eq!(f.head().lines, 1, "and the chain did not move");
        // Space is freed: the next append is a line of its own.
        f.store.room = 1000;
        f.append(b"{\"a\":2}\n").unwrap();
        assert_eq!(f.store.contents(), ["{\"a\":1}", "{\"a\":2}"]);
    }

    #[test]
    fn a_failed_sync_is_undone_too() {
        let mut f = LineFile::new(Flaky::new(1000), "x.jsonl");
        f.append(b"one\n").unwrap();
        f.store.fail_sync = true;
        assert!(f.append(b"two\n").is_err());
        assert_eq!(f.store.contents(), ["one"], "a line never synced is never acknowledged, so it is cut");
        f.store.fail_sync = false;
        f.append(b"three\n").unwrap();
        assert_eq!(f.store.contents(), ["one", "three"]);
    }

    #[test]
    fn when_the_cut_fails_too_the_file_refuses_every_later_append() {
        let mut f = LineFile::new(Flaky::new(70), "x.jsonl");
        f.append(b"one\n").unwrap();
        f.store.fail_cut = true;
        assert!(f.append(b"two\n").is_err());
        let torn = f.store.data.clone();
        assert_eq!(torn.len(), 70, "the fragment stays: the cut failed");
        // Even with room again and a working cut, nothing is glued onto the fragment.
        f.store.room = 1000;
        f.store.fail_cut = false;
        assert!(f.append(b"three\n").is_err());
        assert_eq!(f.store.data, torn);
    }

    #[test]
    fn a_real_file_appends_chains_and_cuts_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let (_, mut f) = open_lines(&path).unwrap();
        f.append(b"one\ntwo\n").unwrap();
        let end = f.store.end().unwrap();
        f.store.write_all(b"torn").unwrap();
        f.store.cut(end).unwrap();
        f.append(b"three\n").unwrap();
        let head = f.head();
        drop(f);
        let (contents, f) = open_lines(&path).unwrap();
        assert_eq!(contents, ["one", "two", "three"], "appends land at the cut end");
        assert_eq!(f.head(), head, "the head read back is the head written");
        assert_eq!(head_of(&path).unwrap(), head);
        let want = ["one", "two", "three"].iter().fold(genesis("x.jsonl"), |h, c| next(&h, c.as_bytes()));
        assert_eq!(head, BookHead::of(3, &want));
    }

    #[test]
    fn a_plain_book_is_chained_once_with_the_same_head_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, "{\"a\":1}\n\n{\"a\":2}\n{\"a\":").unwrap();
        let plain_head = head_of(&path).unwrap();
        let (contents, f) = open_lines(&path).unwrap();
        assert_eq!(contents, ["{\"a\":1}", "{\"a\":2}"]);
        assert_eq!((f.head(), plain_head.lines), (plain_head.clone(), 2));
        drop(f);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().all(|l| split_chained(l).is_some()), "every line is chained now: {text}");
        assert_eq!(head_of(&path).unwrap(), plain_head);
    }

    #[test]
    fn the_check_refuses_a_missing_short_or_altered_book_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let name = crate::releases::RELEASES_FILE_NAME;
        let path = dir.path().join(name);
        let (_, mut f) = open_lines(&path).unwrap();
        f.append(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        let committed: BookHeads = [(name.to_string(), f.head())].into();
        f.append(b"{\"a\":3}\n").unwrap();
        drop(f);
        check_committed(dir.path(), 7, &committed).expect("lines after the commitment are accepted");
        let kept = std::fs::read(&path).unwrap();
        let err = |r: Result<(), BookError>| r.unwrap_err().to_string();

        let text = String::from_utf8(kept.clone()).unwrap();
        std::fs::write(&path, text.lines().next().unwrap().to_string() + "\n").unwrap();
        let e = err(check_committed(dir.path(), 7, &committed));
        assert!(e.contains("releases.jsonl has 1 lines, but audit entry 7 committed 2"), "{e}");

        std::fs::write(&path, kept.iter().map(|b| if *b == b'2' { b'5' } else { *b }).collect::<Vec<u8>>()).unwrap();
        let e = err(check_committed(dir.path(), 7, &committed));
        assert!(e.contains("releases.jsonl") && e.contains("does not match its hash chain"), "{e}");
        // Even with the chain recomputed over the altered lines, the committed head differs.
        let altered: Vec<String> = ["{\"a\":1}", "{\"a\":5}"].map(String::from).to_vec();
        std::fs::write(&path, chained_bytes(name, &altered)).unwrap();
        let e = err(check_committed(dir.path(), 7, &committed));
        assert!(e.contains("its first 2 lines differ from what audit entry 7 committed"), "{e}");

        std::fs::remove_file(&path).unwrap();
        let e = err(check_committed(dir.path(), 7, &committed));
        assert!(e.contains("releases.jsonl is missing, but audit entry 7 committed 2 lines"), "{e}");
        // A book never committed (or committed empty) may be absent.
        let empty: BookHeads = [(name.to_string(), BookHead::empty(name))].into();
        check_committed(dir.path(), 7, &empty).unwrap();
    }

    #[test]
    fn a_rewrite_is_committed_before_it_lands_and_either_side_of_it_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let name = crate::quota::QUOTA_FILE_NAME;
        let path = dir.path().join(name);
        let (_, mut f) = open_lines(&path).unwrap();
        f.append(b"a\nb\nc\n").unwrap();
        let before = f.head();
        drop(f);
        let kept = std::fs::read(&path).unwrap();
        // A commit that fails leaves the book as it was.
        let failed = rewrite(&path, &["c".to_string()], before.clone(), &|_| Err("ledger down".into()));
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), kept);
        let seen = std::sync::Mutex::new(None);
        let f = rewrite(&path, &["c".to_string()], before.clone(), &|h| {
            *seen.lock().unwrap() = Some(h.clone());
            Ok(())
        })
        .unwrap();
        let committed = seen.into_inner().unwrap().unwrap();
        assert_eq!((committed.lines, committed.replaces.as_deref()), (1, Some(&before)));
        assert_eq!(f.head().head, committed.head);
        let heads: BookHeads = [(name.to_string(), committed)].into();
        check_committed(dir.path(), 3, &heads).expect("the rewritten book");
        // A crash before the rename: the old book is accepted too.
        std::fs::write(&path, &kept).unwrap();
        check_committed(dir.path(), 3, &heads).expect("the book the rewrite replaces");
    }
}
