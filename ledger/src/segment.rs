//! Append-only segment files of framed records, with group commit and torn-tail recovery.
//!
//! A segment is `DIR/<first seq, 20 digits>.seg`: a 16-byte header (`SZLSEG01` ‖ first seq as
//! u64 little-endian) then frames `len: u32 LE ‖ crc32(payload): u32 LE ‖ payload`. Records are
//! numbered by position: the first frame of a segment has the header's seq. A new segment is
//! started when the active one reaches the roll size; its header is synced and the directory is
//! fsynced before any record goes in, so its name survives a crash.
//!
//! [`SegmentLog::append`] is group commit: appenders queue; whoever finds no leader becomes one,
//! writes every queued frame in one write, calls `sync_data` once, runs the commit hook (which
//! updates the tree and indexes) and only then marks the batch durable and wakes the others. No
//! append returns before the sync that covers it. Writes and syncs go through [`SegmentIo`], the
//! storage seam a test uses to record the order of operations.
//!
//! [`recover`] scans the segments on open; a partial or corrupt frame at the very end of the last
//! segment (a torn tail) is truncated to the last whole frame and reported as a [`TornTail`], not
//! printed. Damage anywhere else is an error: it is not what a crash leaves.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Magic at the start of every segment.
const MAGIC: &[u8; 8] = b"SZLSEG01";
/// Header length: magic and first seq.
pub const HEADER_LEN: u64 = 16;
/// Frame header length: length and checksum.
pub const FRAME_HEADER_LEN: u64 = 8;
/// Largest payload accepted in a frame.
pub const MAX_PAYLOAD: u32 = 16 << 20;

/// Why a segment operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// A file or directory could not be created, read, written or synced.
    #[error("segment storage: cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A segment is damaged somewhere a crash cannot have damaged it.
    #[error("segment {path} is corrupt at byte {offset}: {what}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// An earlier write or sync failed, so the file's state is unknown; reopen to recover.
    #[error("segment log refuses appends after a failed write or sync; reopen it to recover")]
    Poisoned,
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("record of {0} bytes is too large")]
    TooLarge(usize),
    /// The commit hook failed after the batch was synced.
    #[error("commit hook failed: {0}")]
    Hook(String),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SegmentError + use<'a> {
    move |source| SegmentError::Io { op, path: path.to_owned(), source }
}

/// One open segment file as the writer sees it: append and sync only.
pub trait SegmentFile: Send {
    /// Appends all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes the appended data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The storage seam: how the writer creates, opens and syncs segments.
pub trait SegmentIo: Send {
    /// Creates a new, empty segment file (failing if it exists).
    fn create(&mut self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Opens an existing segment for appending at its end.
    fn open_append(&mut self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Fsyncs a directory so the names in it are durable.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsIo;

struct FsFile(File);

impl SegmentFile for FsFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl SegmentIo for FsIo {
    fn create(&mut self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FsFile(OpenOptions::new().append(true).create_new(true).open(path)?)))
    }
    fn open_append(&mut self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FsFile(OpenOptions::new().append(true).open(path)?)))
    }
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        sync_dir(dir)
    }
}

/// Fsyncs a directory.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Path of the segment whose first record is `first_seq`.
pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

/// Segment header bytes.
pub fn header(first_seq: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&first_seq.to_le_bytes());
    h
}

/// Appends one frame for `payload` to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    // Callers check MAX_PAYLOAD first, so the length fits in a u32.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Where a record lives: its segment (by first seq) and the byte offset of its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// First seq of the segment.
    pub segment: u64,
    /// Offset of the frame in the segment file.
    pub offset: u64,
}

/// A torn tail that recovery truncated away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment that was truncated (removed, when even its header was torn).
    pub segment: PathBuf,
    /// Length kept.
    pub kept_bytes: u64,
    /// Bytes dropped.
    pub dropped_bytes: u64,
}

/// What [`recover`] found (or, for [`scan`], what it would have repaired).
#[derive(Clone, Debug)]
pub struct Recovery {
    /// First seqs of the segments, in order.
    pub segments: Vec<u64>,
    /// Number of whole records.
    pub records: u64,
    /// Length of the last segment after any truncation.
    pub last_len: u64,
    /// The torn tail removed (by [`scan`]: left in place), if any.
    pub torn: Option<TornTail>,
}

/// Lists segment first seqs in `dir`, sorted.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, SegmentError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let e = e.map_err(io_err("list", dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".seg")
            && stem.len() == 20
            && let Ok(seq) = stem.parse::<u64>()
        {
            out.push(seq);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Parses frames in `buf` starting at `start`; calls `visit(offset, payload)` for each whole one.
/// Returns the end of the last whole frame and whether anything after it remained.
pub(crate) fn scan_frames(
    buf: &[u8],
    start: u64,
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), SegmentError>,
) -> Result<(u64, bool), SegmentError> {
    let mut off = start as usize;
    loop {
        if off == buf.len() {
            return Ok((off as u64, false));
        }
        if buf.len() - off < FRAME_HEADER_LEN as usize {
            return Ok((off as u64, true));
        }
        let len = u32::from_le_bytes(buf[off..off + 4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(buf[off + 4..off + 8].try_into().expect("4 bytes"));
        let body = off + FRAME_HEADER_LEN as usize;
        if len > MAX_PAYLOAD || buf.len() - body < len as usize {
            return Ok((off as u64, true));
        }
        let payload = &buf[body..body + len as usize];
        if crc32fast::hash(payload) != crc {
            return Ok((off as u64, true));
        }
        visit(off as u64, payload)?;
        off = body + len as usize;
    }
}

/// Scans every segment in order, calling `visit(seq, location, payload)` for each whole record,
/// and truncates a torn tail of the last segment. An empty directory recovers as zero records.
pub fn recover(
    dir: &Path,
    visit: impl FnMut(u64, Location, &[u8]) -> Result<(), SegmentError>,
) -> Result<Recovery, SegmentError> {
    recover_from(dir, 0, visit)
}

/// [`recover`], but segments that lie wholly before `skip_before` (every one but the last, whose
/// successor starts at or before it) are not read: they were synced whole before the next one
/// was started, and their records were already applied. Keeps opening a large ledger fast.
pub fn recover_from(
    dir: &Path,
    skip_before: u64,
    visit: impl FnMut(u64, Location, &[u8]) -> Result<(), SegmentError>,
) -> Result<Recovery, SegmentError> {
    walk(dir, skip_before, true, visit)
}

/// [`recover`] for a reader: scans every segment in order the same way, calling `visit(seq,
/// location, payload)` for each whole record, but changes nothing. A torn tail (which a writer
/// appending at that instant may also leave) is left in place and reported in
/// [`Recovery::torn`] as what a recovery would drop.
pub fn scan(
    dir: &Path,
    visit: impl FnMut(u64, Location, &[u8]) -> Result<(), SegmentError>,
) -> Result<Recovery, SegmentError> {
    walk(dir, 0, false, visit)
}

/// The one walk over the segment files that recovery and read-only scans share; `repair`
/// truncates (or removes) a torn tail instead of only reporting it.
fn walk(
    dir: &Path,
    skip_before: u64,
    repair: bool,
    mut visit: impl FnMut(u64, Location, &[u8]) -> Result<(), SegmentError>,
) -> Result<Recovery, SegmentError> {
    let mut segments = list_segments(dir)?;
    let mut torn = None;
    let mut next_seq = 0u64;
    let mut last_len = 0;
    let count = segments.len();
    let mut i = 0;
    while i < segments.len() {
        let first = segments[i];
        let path = segment_path(dir, first);
        let is_last = i + 1 == count;
        if !is_last && segments[i + 1] <= skip_before && first == next_seq {
            next_seq = segments[i + 1];
            i += 1;
            continue;
        }
        let buf = fs::read(&path).map_err(io_err("read", &path))?;
        if buf.len() < HEADER_LEN as usize || buf[..8] != MAGIC[..] {
            if is_last && (buf.len() < HEADER_LEN as usize) && MAGIC.starts_with(&buf[..buf.len().min(8)]) {
                // Created but its header never fully reached the disk: nothing in it was acknowledged.
                if repair {
                    fs::remove_file(&path).map_err(io_err("remove torn segment", &path))?;
                    sync_dir(dir).map_err(io_err("sync", dir))?;
                }
                torn = Some(TornTail { segment: path, kept_bytes: 0, dropped_bytes: buf.len() as u64 });
                segments.pop();
                break;
            }
            return Err(SegmentError::Corrupt { path, offset: 0, what: "bad segment header" });
        }
        let header_seq = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
        if header_seq != first || first != next_seq {
            return Err(SegmentError::Corrupt { path, offset: 8, what: "segment does not continue the sequence" });
        }
        let mut seq = first;
        let (end, rest) = scan_frames(&buf, HEADER_LEN, |offset, payload| {
            visit(seq, Location { segment: first, offset }, payload)?;
            seq += 1;
            Ok(())
        })?;
        if rest {
            if !is_last {
                return Err(SegmentError::Corrupt { path, offset: end, what: "bad frame before the last segment" });
            }
            if repair {
                let f = OpenOptions::new().write(true).open(&path).map_err(io_err("open", &path))?;
                f.set_len(end).map_err(io_err("truncate", &path))?;
                f.sync_all().map_err(io_err("sync", &path))?;
            }
            torn = Some(TornTail { segment: path, kept_bytes: end, dropped_bytes: buf.len() as u64 - end });
        }
        next_seq = seq;
        last_len = end;
        i += 1;
    }
    Ok(Recovery { segments, records: next_seq, last_len, torn })
}

/// Reads the payload of the frame at `loc`, checking its checksum.
pub fn read_record(dir: &Path, loc: Location) -> Result<Vec<u8>, SegmentError> {
    let path = segment_path(dir, loc.segment);
    let f = File::open(&path).map_err(io_err("open", &path))?;
    read_frame_at(&f, &path, loc.offset)
}

/// Reads the payload of the frame at `offset` of the open file `f` (named `path` in errors),
/// checking its checksum. Takes `&File`: positioned reads need no lock.
pub fn read_frame_at(f: &File, path: &Path, offset: u64) -> Result<Vec<u8>, SegmentError> {
    let mut head = [0u8; FRAME_HEADER_LEN as usize];
    f.read_exact_at(&mut head, offset).map_err(io_err("read", path))?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD {
        return Err(SegmentError::Corrupt { path: path.to_owned(), offset, what: "frame too long" });
    }
    let mut payload = vec![0u8; len as usize];
    f.read_exact_at(&mut payload, offset + FRAME_HEADER_LEN).map_err(io_err("read", path))?;
    if crc32fast::hash(&payload) != crc {
        return Err(SegmentError::Corrupt { path: path.to_owned(), offset, what: "checksum mismatch" });
    }
    Ok(payload)
}

/// Reads every record of one segment: `(location, payload)` in order.
pub fn read_segment(dir: &Path, first_seq: u64) -> Result<Vec<(Location, Vec<u8>)>, SegmentError> {
    let path = segment_path(dir, first_seq);
    let mut buf = Vec::new();
    File::open(&path).and_then(|mut f| f.read_to_end(&mut buf)).map_err(io_err("read", &path))?;
    if buf.len() < HEADER_LEN as usize || buf[..8] != MAGIC[..] {
        return Err(SegmentError::Corrupt { path, offset: 0, what: "bad segment header" });
    }
    let mut out = Vec::new();
    let (end, rest) = scan_frames(&buf, HEADER_LEN, |offset, payload| {
        out.push((Location { segment: first_seq, offset }, payload.to_vec()));
        Ok(())
    })?;
    if rest {
        return Err(SegmentError::Corrupt { path, offset: end, what: "bad frame" });
    }
    Ok(out)
}

/// One record of a committed batch, as the commit hook sees it.
#[derive(Debug)]
pub struct Committed<T> {
    /// Its seq.
    pub seq: u64,
    /// Where its frame is.
    pub location: Location,
    /// The caller's value that travelled with it.
    pub item: T,
}

/// Called by the leader after a batch is synced and before it is acknowledged.
pub type CommitHook<T> = Box<dyn Fn(&[Committed<T>]) -> Result<(), String> + Send + Sync>;

/// The writer's side: the active segment. Locked by the leader and by maintenance.
pub struct Writer {
    dir: PathBuf,
    io: Box<dyn SegmentIo>,
    file: Box<dyn SegmentFile>,
    /// First seqs of all segments.
    pub segments: Vec<u64>,
    active_len: u64,
    roll_bytes: u64,
}

impl Writer {
    fn start_segment(&mut self, first_seq: u64) -> Result<(), SegmentError> {
        let path = segment_path(&self.dir, first_seq);
        let mut file = self.io.create(&path).map_err(io_err("create", &path))?;
        file.write_all(&header(first_seq)).map_err(io_err("write", &path))?;
        file.sync_data().map_err(io_err("sync", &path))?;
        self.io.sync_dir(&self.dir).map_err(io_err("sync", &self.dir))?;
        self.file = file;
        self.segments.push(first_seq);
        self.active_len = HEADER_LEN;
        Ok(())
    }

    /// First seq of the active segment.
    pub fn active(&self) -> u64 {
        *self.segments.last().expect("a writer always has a segment")
    }

    /// Reopens the active segment after maintenance replaced its file.
    pub fn reopen_active(&mut self, len: u64) -> Result<(), SegmentError> {
        let path = segment_path(&self.dir, self.active());
        self.file = self.io.open_append(&path).map_err(io_err("open", &path))?;
        self.active_len = len;
        Ok(())
    }
}

struct Pending<T> {
    seq: u64,
    payload: Vec<u8>,
    item: T,
}

struct Queue<T> {
    next_seq: u64,
    durable: u64,
    leader: bool,
    poisoned: bool,
    pending: Vec<Pending<T>>,
    /// Generation of the batch `pending` will become.
    open_gen: u64,
}

/// The append side of the log: group commit over the active segment.
pub struct SegmentLog<T> {
    queue: Mutex<Queue<T>>,
    /// Waiters of even and odd batch generations. Completing a batch wakes only its own waiters
    /// (and one waiter of the next batch to lead it), not every appender.
    cvs: [Condvar; 2],
    writer: Mutex<Writer>,
    hook: CommitHook<T>,
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // A panic in another appender does not leave the queue inconsistent: every field is
    // updated in one step under the lock, so carry on with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> SegmentLog<T> {
    /// Opens the log for appending after [`recover`] has run, starting a first segment when there
    /// is none.
    pub fn open(
        dir: &Path,
        mut io: Box<dyn SegmentIo>,
        recovery: &Recovery,
        roll_bytes: u64,
        hook: CommitHook<T>,
    ) -> Result<Self, SegmentError> {
        let mut writer = match recovery.segments.last() {
            Some(&last) => {
                let path = segment_path(dir, last);
                let file = io.open_append(&path).map_err(io_err("open", &path))?;
                Writer {
                    dir: dir.to_owned(),
                    io,
                    file,
                    segments: recovery.segments.clone(),
                    active_len: recovery.last_len,
                    roll_bytes,
                }
            }
            None => {
                struct NoFile;
                impl SegmentFile for NoFile {
                    fn write_all(&mut self, _: &[u8]) -> io::Result<()> {
                        Err(io::Error::other("no segment"))
                    }
                    fn sync_data(&mut self) -> io::Result<()> {
                        Err(io::Error::other("no segment"))
                    }
                }
                Writer {
                    dir: dir.to_owned(),
                    io,
                    file: Box::new(NoFile),
                    segments: Vec::new(),
                    active_len: 0,
                    roll_bytes,
                }
            }
        };
        if writer.segments.is_empty() {
            writer.start_segment(recovery.records)?;
        }
        Ok(Self {
            queue: Mutex::new(Queue {
                next_seq: recovery.records,
                durable: recovery.records,
                leader: false,
                poisoned: false,
                pending: Vec::new(),
                open_gen: 0,
            }),
            cvs: [Condvar::new(), Condvar::new()],
            writer: Mutex::new(writer),
            hook,
        })
    }

    /// Number of durable (acknowledged or being acknowledged) records.
    pub fn durable(&self) -> u64 {
        lock(&self.queue).durable
    }

    /// Appends one record. `build` gets the record's seq and returns its payload and the value
    /// the commit hook receives; it runs under the queue lock, so keep it cheap. Returns the seq
    /// once the record is synced and the hook has run for it.
    pub fn append(&self, build: impl FnOnce(u64) -> (Vec<u8>, T)) -> Result<u64, SegmentError> {
        let mut q = lock(&self.queue);
        if q.poisoned {
            return Err(SegmentError::Poisoned);
        }
        let seq = q.next_seq;
        let (payload, item) = build(seq);
        if payload.len() > MAX_PAYLOAD as usize {
            return Err(SegmentError::TooLarge(payload.len()));
        }
        q.next_seq += 1;
        q.pending.push(Pending { seq, payload, item });
        // Every record in `pending` is committed as one batch of generation `open_gen`; only one
        // leader commits at a time, so generations complete in order.
        let my_gen = q.open_gen;
        let cv = |g: u64| &self.cvs[(g & 1) as usize];
        loop {
            if q.durable > seq {
                return Ok(seq);
            }
            if q.poisoned {
                return Err(SegmentError::Poisoned);
            }
            if !q.leader {
                q.leader = true;
                let batch_gen = q.open_gen;
                q.open_gen += 1;
                let batch = std::mem::take(&mut q.pending);
                drop(q);
                let result = self.commit(batch);
                q = lock(&self.queue);
                q.leader = false;
                match result {
                    Ok(end) => q.durable = end,
                    Err(e) => {
                        q.poisoned = true;
                        self.cvs.iter().for_each(Condvar::notify_all);
                        // Our own record was in this batch or an earlier one that succeeded.
                        if q.durable > seq {
                            return Ok(seq);
                        }
                        return Err(e);
                    }
                }
                cv(batch_gen).notify_all();
                if !q.pending.is_empty() {
                    // Everyone with a record in the next batch waits on the other condvar; one
                    // of them leads it (unless a new appender gets there first).
                    cv(batch_gen + 1).notify_one();
                }
                continue;
            }
            q = cv(my_gen).wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Writes, syncs and hooks one batch; returns the seq after its last record.
    fn commit(&self, batch: Vec<Pending<T>>) -> Result<u64, SegmentError> {
        let mut w = lock(&self.writer);
        let Some(first) = batch.first() else { return Err(SegmentError::Hook("empty batch".into())) };
        if w.active_len >= w.roll_bytes {
            w.start_segment(first.seq)?;
        }
        let segment = w.active();
        let mut buf = Vec::with_capacity(batch.iter().map(|p| p.payload.len() + 8).sum());
        let mut committed = Vec::with_capacity(batch.len());
        let mut end = 0;
        for p in batch {
            let offset = w.active_len + buf.len() as u64;
            encode_frame(&p.payload, &mut buf);
            committed.push(Committed { seq: p.seq, location: Location { segment, offset }, item: p.item });
            end = p.seq + 1;
        }
        let path = segment_path(&w.dir, segment);
        w.file.write_all(&buf).map_err(io_err("write", &path))?;
        w.file.sync_data().map_err(io_err("sync", &path))?;
        w.active_len += buf.len() as u64;
        // The hook runs with the writer still locked, so maintenance never sees a record whose
        // hook has not run.
        (self.hook)(&committed).map_err(SegmentError::Hook)?;
        drop(w);
        Ok(end)
    }

    /// Runs `f` with the writer locked: no batch is written meanwhile.
    pub fn maintenance<R>(&self, f: impl FnOnce(&mut Writer) -> R) -> R {
        f(&mut lock(&self.writer))
    }
}

/// A recording storage seam for tests: every write (named by the `rec-…` markers in it), sync and
/// directory sync, plus whatever the test pushes (acknowledgements), in one ordered list.
#[cfg(test)]
pub(crate) mod recording {
    use super::*;
    use std::sync::Arc;

    /// The shared, ordered list of events.
    #[derive(Clone, Default)]
    pub(crate) struct Recorder(pub(crate) Arc<Mutex<Vec<String>>>);

    impl Recorder {
        pub(crate) fn push(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }

        pub(crate) fn events(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }

        /// Asserts that every `ack NAME` comes after a `write NAME` and a `sync` after that write;
        /// returns the number of acknowledgements and of syncs.
        pub(crate) fn assert_synced_before_ack(&self) -> (usize, usize) {
            let events = self.events();
            let (mut acks, mut syncs) = (0, 0);
            for (i, e) in events.iter().enumerate() {
                if e == "sync" {
                    syncs += 1;
                }
                let Some(name) = e.strip_prefix("ack ") else { continue };
                acks += 1;
                let w =
                    events.iter().position(|x| x == &format!("write {name}")).expect("every acked record was written");
                assert!(w < i, "{name} acknowledged before it was written");
                assert!(events[w..i].iter().any(|x| x == "sync"), "{name} acknowledged with no sync after its write");
            }
            (acks, syncs)
        }
    }

    struct RecFile(FsFile, Recorder);

    impl SegmentFile for RecFile {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            // Name what is written by the `rec-<digits and dashes>` markers in it; tests end each
            // marker with a '.' so that no byte after it can extend it.
            let mut i = 0;
            while let Some(p) = buf[i..].windows(4).position(|w| w == b"rec-") {
                let start = i + p;
                let mut end = start + 4;
                while end < buf.len() && (buf[end].is_ascii_digit() || buf[end] == b'-') {
                    end += 1;
                }
                self.1.push(format!("write {}", String::from_utf8_lossy(&buf[start..end])));
                i = end;
            }
            self.0.write_all(buf)
        }
        fn sync_data(&mut self) -> io::Result<()> {
            let r = self.0.sync_data();
            self.1.push("sync".into());
            r
        }
    }

    /// The seam itself: real files, recorded.
    pub(crate) struct RecIo(pub(crate) Recorder);

    impl SegmentIo for RecIo {
        fn create(&mut self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
            let f = OpenOptions::new().append(true).create_new(true).open(path)?;
            Ok(Box::new(RecFile(FsFile(f), self.0.clone())))
        }
        fn open_append(&mut self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
            let f = OpenOptions::new().append(true).open(path)?;
            Ok(Box::new(RecFile(FsFile(f), self.0.clone())))
        }
        fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
            sync_dir(dir)?;
            self.0.push("sync-dir".into());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::recording::{RecIo, Recorder};
    use super::*;
    use std::sync::Arc;

    fn no_hook<T>() -> CommitHook<T> {
        Box::new(|_| Ok(()))
    }

    #[test]
    fn appends_recover_in_order_and_roll() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        let log: SegmentLog<()> = SegmentLog::open(dir.path(), Box::new(FsIo), &rec, 100, no_hook()).unwrap();
        for i in 0..20u64 {
            assert_eq!(log.append(|_| (format!("record {i}").into_bytes(), ())).unwrap(), i);
        }
        drop(log);
        let mut seen = Vec::new();
        let rec = recover(dir.path(), |seq, _, p| {
            seen.push((seq, String::from_utf8(p.to_vec()).unwrap()));
            Ok(())
        })
        .unwrap();
        assert_eq!(rec.records, 20);
        assert!(rec.segments.len() > 3, "segments should roll at 100 bytes: {:?}", rec.segments);
        assert!(rec.torn.is_none());
        assert_eq!(seen, (0..20).map(|i| (i, format!("record {i}"))).collect::<Vec<_>>());
        let mut visited = Vec::new();
        let skipped = recover_from(dir.path(), 12, |seq, _, _| {
            visited.push(seq);
            Ok(())
        })
        .unwrap();
        assert_eq!(skipped.records, 20);
        assert!(visited[0] > 0 && visited[0] <= 12, "whole segments before 12 are skipped: {visited:?}");
        assert_eq!(visited, (visited[0]..20).collect::<Vec<_>>());
    }

    #[test]
    fn torn_tail_is_truncated_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        let log: SegmentLog<()> = SegmentLog::open(dir.path(), Box::new(FsIo), &rec, 1 << 20, no_hook()).unwrap();
        for _ in 0..3 {
            log.append(|_| (b"whole".to_vec(), ())).unwrap();
        }
        drop(log);
        let path = segment_path(dir.path(), 0);
        let whole_len = fs::metadata(&path).unwrap().len();
        // A partial frame: a header announcing 100 bytes and only 5 of them.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let mut frame = Vec::new();
        encode_frame(&[7u8; 100], &mut frame);
        f.write_all(&frame[..13]).unwrap();
        drop(f);
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        assert_eq!(rec.records, 3);
        assert_eq!(rec.torn, Some(TornTail { segment: path.clone(), kept_bytes: whole_len, dropped_bytes: 13 }));
        assert_eq!(fs::metadata(&path).unwrap().len(), whole_len);
        // A whole frame with a bad checksum at the end is torn too.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let mut frame = Vec::new();
        encode_frame(b"bad", &mut frame);
        frame[4] ^= 1;
        f.write_all(&frame).unwrap();
        drop(f);
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        assert_eq!(rec.records, 3);
        assert!(rec.torn.is_some());
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        assert!(rec.torn.is_none(), "a clean log reports no torn tail");
    }

    #[test]
    fn a_scan_reads_what_recovery_reads_and_reports_a_torn_tail_without_touching_it() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        let log: SegmentLog<()> = SegmentLog::open(dir.path(), Box::new(FsIo), &rec, 64, no_hook()).unwrap();
        for i in 0..6u8 {
            log.append(|_| (vec![i; 20], ())).unwrap();
        }
        drop(log);
        let segments = list_segments(dir.path()).unwrap();
        assert!(segments.len() > 1, "rolled: {segments:?}");
        let last = segment_path(dir.path(), *segments.last().unwrap());
        let whole_len = fs::metadata(&last).unwrap().len();
        // A segment created after the last whose header never reached the disk.
        let next = segment_path(dir.path(), 6);
        fs::write(&next, &MAGIC[..5]).unwrap();
        let mut seen = Vec::new();
        let scanned = scan(dir.path(), |seq, _, p| {
            seen.push((seq, p[0]));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (0..6u8).map(|i| (u64::from(i), i)).collect::<Vec<_>>());
        assert_eq!((scanned.records, scanned.segments.clone()), (6, segments.clone()));
        assert_eq!(scanned.torn.as_ref().map(|t| t.dropped_bytes), Some(5));
        assert!(next.exists(), "a scan removes nothing");
        fs::remove_file(&next).unwrap();
        // A frame half written at the end of the last segment.
        let mut frame = Vec::new();
        encode_frame(&[9u8; 50], &mut frame);
        OpenOptions::new().append(true).open(&last).unwrap().write_all(&frame[..20]).unwrap();
        let scanned = scan(dir.path(), |_, _, _| Ok(())).unwrap();
        assert_eq!(scanned.torn, Some(TornTail { segment: last.clone(), kept_bytes: whole_len, dropped_bytes: 20 }));
        assert_eq!(fs::metadata(&last).unwrap().len(), whole_len + 20, "a scan truncates nothing");
        // Recovery reads the same records and repairs what the scan reported.
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        assert_eq!((rec.records, rec.torn), (6, scanned.torn));
        assert_eq!(fs::metadata(&last).unwrap().len(), whole_len);
        // Damage before the last segment is an error for a scan as for recovery.
        let first = segment_path(dir.path(), segments[0]);
        let mut bytes = fs::read(&first).unwrap();
        let at = HEADER_LEN as usize + FRAME_HEADER_LEN as usize;
        bytes[at] ^= 1;
        fs::write(&first, bytes).unwrap();
        assert!(matches!(scan(dir.path(), |_, _, _| Ok(())), Err(SegmentError::Corrupt { .. })));
    }

    #[test]
    fn a_last_segment_killed_before_its_header_was_written_is_removed_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        let log: SegmentLog<()> = SegmentLog::open(dir.path(), Box::new(FsIo), &rec, 1 << 20, no_hook()).unwrap();
        for _ in 0..3 {
            log.append(|_| (b"whole".to_vec(), ())).unwrap();
        }
        drop(log);
        // A crash between creating the next segment and its header write: empty, or part of it.
        for kept in [0usize, 7, 15] {
            let path = segment_path(dir.path(), 3);
            fs::write(&path, &header(3)[..kept]).unwrap();
            let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
            assert_eq!(rec.records, 3);
            assert_eq!(rec.segments, vec![0]);
            assert_eq!(rec.torn, Some(TornTail { segment: path.clone(), kept_bytes: 0, dropped_bytes: kept as u64 }));
            assert!(!path.exists(), "the header-less segment is removed");
        }
        // The log carries on after it, recreating the segment it rolls to.
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        let log: SegmentLog<()> = SegmentLog::open(dir.path(), Box::new(FsIo), &rec, 1 << 20, no_hook()).unwrap();
        assert_eq!(log.append(|_| (b"next".to_vec(), ())).unwrap(), 3);
        drop(log);
        // Bytes after a header that was never written are damage no crash leaves: an error.
        let path = segment_path(dir.path(), 4);
        let mut frame = Vec::new();
        encode_frame(&[7u8; 100], &mut frame);
        fs::write(&path, &frame[..50]).unwrap();
        assert!(matches!(recover(dir.path(), |_, _, _| Ok(())), Err(SegmentError::Corrupt { offset: 0, .. })));
    }

    #[test]
    fn damage_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        let log: SegmentLog<()> = SegmentLog::open(dir.path(), Box::new(FsIo), &rec, 40, no_hook()).unwrap();
        for _ in 0..6 {
            log.append(|_| (b"0123456789".to_vec(), ())).unwrap();
        }
        drop(log);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(recover(dir.path(), |_, _, _| Ok(())), Err(SegmentError::Corrupt { .. })));
    }

    #[test]
    fn every_acknowledgement_follows_the_sync_of_its_write_and_syncs_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recover(dir.path(), |_, _, _| Ok(())).unwrap();
        let recorder = Recorder::default();
        let log = Arc::new(
            SegmentLog::<()>::open(dir.path(), Box::new(RecIo(recorder.clone())), &rec, 1 << 20, no_hook()).unwrap(),
        );
        assert_eq!(recorder.events(), ["sync", "sync-dir"], "header synced, then the directory");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                let recorder = recorder.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let name = format!("rec-{t}-{i}");
                        log.append(|_| (format!("{name}.").into_bytes(), ())).unwrap();
                        recorder.push(format!("ack {name}"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (acks, syncs) = recorder.assert_synced_before_ack();
        assert_eq!(acks, 400);
        assert!(syncs <= 401, "at most one sync per batch");
    }
}
