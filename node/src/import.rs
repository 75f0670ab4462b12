//! `shuzhu node import`: CSV in, validated and minimised records out, durably.
//!
//! Every row is validated against the dataset's schema. A bad row is never dropped silently and never
//! stops the good ones: it goes to the quarantine report with its line number, field and reason (never
//! the personal value). Rows upsert by primary key, so importing the same file twice changes nothing.
//! The import is acknowledged only after the store has been flushed and fsynced.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shuzhu_policy::pseudonym::PseudonymKey;
use shuzhu_policy::schema::{self, Dataset};

use crate::record::{FieldProblem, MinimiseOptions, validate};
use crate::store::{PreHashedState, Store, StoreError, StoredForms};

/// Rows written per storage batch.
const BATCH_ROWS: usize = 50_000;

/// One quarantined row problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// Line number in the file (the header is line 1).
    pub line: u64,
    /// Field name, or `row` for problems with the row as a whole.
    pub field: String,
    /// What was wrong.
    pub reason: String,
}

/// The outcome of an import.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// Dataset name.
    pub dataset: String,
    /// Data rows read (excluding the header).
    pub rows_read: u64,
    /// Rows stored (inserted or replaced).
    pub imported: u64,
    /// Rows refused.
    pub rejected_rows: u64,
    /// Each problem of each refused row.
    pub quarantine: Vec<Quarantined>,
    /// Fields whose minimised form `[minimise]` turned off, so this import dropped them.
    pub minimise_dropped: Vec<String>,
    /// Records in the dataset after the import.
    pub total_records: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The character encoding the file was read in (`UTF-8` or `GB18030`).
    pub encoding: &'static str,
}

impl ImportReport {
    /// The quarantine report as CSV (`line,field,reason`).
    pub fn quarantine_csv(&self) -> String {
        let mut out = String::from("line,field,reason\n");
        for q in &self.quarantine {
            out.push_str(&format!("{},{},\"{}\"\n", q.line, q.field, q.reason.replace('"', "'")));
        }
        out
    }
}

/// Why an import failed as a whole (nothing was acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The dataset is not one of the federation's.
    #[error("unknown dataset {0:?}; known: cases, mediations, population")]
    UnknownDataset(String),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The header row does not match the dataset's columns.
    #[error("header of {path} does not match dataset {dataset}: {what}")]
    Header {
        /// The file.
        path: String,
        /// Dataset name.
        dataset: String,
        /// Missing or unknown columns.
        what: String,
    },
    /// The store failed; nothing of this import is acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Options of one import.
pub struct ImportOptions<'a> {
    /// Dataset name.
    pub dataset: &'a str,
    /// The node's pseudonymisation key.
    pub key: &'a PseudonymKey,
    /// Personal fields the node's local policy keeps raw (normally none).
    pub keep_raw: &'a [String],
    /// What minimisation keeps of `summary` and `defendant_address` (the node config's `[minimise]`).
    pub minimise: MinimiseOptions,
    /// Called now and then with the number of rows read so far.
    pub progress: &'a mut dyn FnMut(u64),
}

/// The minimised forms an import under `minimise` stores in `dataset` (a field kept raw by the local
/// policy holds no minimised form), and the fields whose minimised form `minimise` turns off.
fn forms_of(dataset: &Dataset, keep_raw: &[String], minimise: MinimiseOptions) -> (StoredForms, Vec<String>) {
    let mut forms = StoredForms::default();
    let mut dropped = Vec::new();
    for f in dataset.fields.iter().filter(|f| !keep_raw.iter().any(|k| k == f.name)) {
        let on = match f.storage {
            schema::Storage::Scrubbed => {
                forms.scrubbed_summary |= minimise.scrub_summary;
                minimise.scrub_summary
            }
            schema::Storage::County => {
                forms.county_address |= minimise.address_to_county;
                minimise.address_to_county
            }
            _ => true,
        };
        if !on {
            dropped.push(f.name.to_string());
        }
    }
    (forms, dropped)
}

/// Why a row that is not UTF-8 was refused, with the likely fix.
const NOT_UTF8: &str = "is not valid UTF-8 (if the file is GB18030 or GBK, import it with --encoding gb18030)";

/// The character encoding of a CSV file to import (`node import --encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputEncoding {
    /// UTF-8 when the file starts with a UTF-8 byte-order mark or its first mebibyte is valid UTF-8,
    /// otherwise GB18030.
    Auto,
    /// UTF-8, with or without a byte-order mark.
    Utf8,
    /// GB18030, which includes GBK and GB2312 (what Excel writes on a Chinese Windows).
    Gb18030,
}

impl InputEncoding {
    /// Parses `auto`, `utf-8` (`utf8`), `gb18030`, `gbk` or `gb2312` (any case).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "utf-8" | "utf8" => Some(Self::Utf8),
            "gb18030" | "gbk" | "gb2312" | "cp936" => Some(Self::Gb18030),
            _ => None,
        }
    }

    /// What `Auto` takes a file starting with `head` to be.
    fn detect(head: &[u8]) -> Self {
        if head.starts_with(b"\xEF\xBB\xBF") {
            return Self::Utf8;
        }
        match std::str::from_utf8(head) {
            Ok(_) => Self::Utf8,
            // A character cut at the end of the sample is still UTF-8.
            Err(e) if e.error_len().is_none() => Self::Utf8,
            Err(_) => Self::Gb18030,
        }
    }
}

/// Imports the CSV file at `path`, its encoding detected ([`InputEncoding::Auto`]).
pub fn import_file(store: &dyn Store, path: &Path, opts: ImportOptions<'_>) -> Result<ImportReport, ImportError> {
    import_file_with(store, path, InputEncoding::Auto, opts)
}

/// Imports the CSV file at `path` in `encoding`; GB18030 is decoded to UTF-8 as it streams in, and a row
/// holding a byte sequence GB18030 does not have is refused. The report names the encoding read.
pub fn import_file_with(
    store: &dyn Store,
    path: &Path,
    encoding: InputEncoding,
    opts: ImportOptions<'_>,
) -> Result<ImportReport, ImportError> {
    use std::io::BufRead as _;
    let name = path.display().to_string();
    let read_err = |source| ImportError::Read { path: name.clone(), source };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let encoding = match encoding {
        InputEncoding::Auto => InputEncoding::detect(reader.fill_buf().map_err(read_err)?),
        chosen => chosen,
    };
    let mut report = match encoding {
        InputEncoding::Gb18030 => {
            let decoded =
                encoding_rs_io::DecodeReaderBytesBuilder::new().encoding(Some(encoding_rs::GB18030)).build(reader);
            import_records(store, decoded, &name, opts, true)?
        }
        _ => import_records(store, reader, &name, opts, false)?,
    };
    report.encoding = match encoding {
        InputEncoding::Gb18030 => "GB18030",
        _ => "UTF-8",
    };
    Ok(report)
}

/// Imports CSV text from `reader`; `name` names it in errors.
///
/// A pipeline on scoped threads: this thread reads the CSV into chunks of raw records; two workers
/// validate, minimise and encode the chunks; one writer takes the workers' results back in file order,
/// refuses repeated keys (first line wins) and hands the good rows in large batches to a storing thread,
/// which writes one batch while the next is gathered. The quarantine therefore comes out in line order,
/// exactly as a single pass would produce it.
pub fn import_reader(
    store: &dyn Store,
    reader: impl Read,
    name: &str,
    opts: ImportOptions<'_>,
) -> Result<ImportReport, ImportError> {
    let mut report = import_records(store, reader, name, opts, false)?;
    report.encoding = "UTF-8";
    Ok(report)
}

/// [`import_reader`] over UTF-8 that a GB18030 decoder produced when `decoded`.
fn import_records(
    store: &dyn Store,
    reader: impl Read,
    name: &str,
    opts: ImportOptions<'_>,
    decoded: bool,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let dataset: &'static Dataset =
        schema::dataset(opts.dataset).ok_or_else(|| ImportError::UnknownDataset(opts.dataset.into()))?;
    // Records end at `\n` only, and a `\r` before it is taken off the record's last field (`strip_cr`):
    // the csv crate's own CRLF handling counts the line of each record after a `\r\n` one too few.
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(reader);
    let header_err = |what: String| ImportError::Header { path: name.into(), dataset: dataset.name.into(), what };
    let headers = csv.headers().map_err(|e| header_err(format!("unreadable header: {e}")))?.clone();
    let columns = map_columns(dataset, &headers).map_err(header_err)?;
    let width = headers.len();

    let (key, keep_raw, minimise) = (opts.key, opts.keep_raw, opts.minimise);
    let (forms, minimise_dropped) = forms_of(dataset, keep_raw, minimise);
    let mut report = ImportReport { dataset: dataset.name.into(), minimise_dropped, ..Default::default() };
    let progress = opts.progress;
    let written = std::thread::scope(|s| -> Result<Written, StoreError> {
        let mut to_workers = Vec::new();
        let mut from_workers = Vec::new();
        for _ in 0..WORKERS {
            let (tx, rx) = mpsc::sync_channel::<Vec<Raw>>(2);
            let (otx, orx) = mpsc::sync_channel::<Vec<Out>>(2);
            let columns = &columns;
            s.spawn(move || {
                for chunk in rx {
                    let out = chunk
                        .into_iter()
                        .map(|raw| process(dataset, columns, width, key, keep_raw, minimise, decoded, raw))
                        .collect();
                    if otx.send(out).is_err() {
                        break;
                    }
                }
            });
            to_workers.push(tx);
            from_workers.push(orx);
        }
        let writer = s.spawn(move || write_in_order(store, dataset, from_workers, forms));

        // Reader: raw records in chunks, dealt to the workers in turn.
        let mut rows_read = 0u64;
        let mut chunk: Vec<Raw> = Vec::with_capacity(CHUNK_ROWS);
        let mut turn = 0usize;
        let mut record = csv::ByteRecord::new();
        loop {
            let line_hint = csv.position().line() + 1;
            let item = match csv.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(line_hint, |p| p.line());
                    strip_cr(&mut record);
                    if record.len() == 1 && record[0].is_empty() {
                        continue; // a blank line of a CRLF file (the reader skips those of LF files itself)
                    }
                    match refusal(&record, width, line) {
                        Some(reason) => Raw::Bad(Quarantined { line, field: "row".into(), reason }),
                        None => {
                            Raw::Row(line, std::mem::replace(&mut record, csv::ByteRecord::with_capacity(1024, width)))
                        }
                    }
                }
                Err(e) => {
                    // A broken quote or a read error: the row is refused, reading goes on where possible.
                    let line = e.position().map_or(line_hint, |p| p.line());
                    let io = matches!(e.kind(), csv::ErrorKind::Io(_));
                    let q = Quarantined { line, field: "row".into(), reason: "cannot be parsed as CSV".into() };
                    if io {
                        chunk.push(Raw::Bad(q));
                        rows_read += 1;
                        break;
                    }
                    Raw::Bad(q)
                }
            };
            chunk.push(item);
            rows_read += 1;
            if rows_read.is_multiple_of(100_000) {
                progress(rows_read);
            }
            if chunk.len() >= CHUNK_ROWS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                if to_workers[turn % WORKERS].send(full).is_err() {
                    break; // the writer stopped on a store error, reported below
                }
                turn += 1;
            }
        }
        if !chunk.is_empty() {
            let _ = to_workers[turn % WORKERS].send(chunk);
        }
        drop(to_workers);
        progress(rows_read);
        // A panic in the writer is a bug; re-raise it rather than acknowledge a partial import.
        writer.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    })?;
    report.rows_read = written.rows;
    report.imported = written.imported;
    report.rejected_rows = written.rejected;
    report.quarantine = written.quarantine;
    store.set_meta(&format!("last_import/{}", dataset.name), &now_rfc3339())?;
    store.make_durable()?;
    report.total_records = store.count(dataset.name)?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Longest record accepted, in bytes of field content: a longer one is refused whole, naming its line.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Takes the `\r` of a CRLF line end off the record's last field (a `\r` is refused in any field, so
/// none is data).
fn strip_cr(record: &mut csv::ByteRecord) {
    let n = record.len();
    if let Some(last) = n.checked_sub(1).and_then(|i| record.get(i))
        && let Some(kept) = last.strip_suffix(b"\r")
    {
        let kept = kept.to_vec();
        record.truncate(n - 1);
        record.push_field(&kept);
    }
}

/// Why the reader refuses a record as a whole, before validation: one that spans several lines with the
/// wrong number of fields (a quote left open swallows the lines after it; when nothing closes it, up to the
/// end of the file, whose last line end then ends the record's content), or one longer than
/// [`MAX_RECORD_BYTES`].
fn refusal(record: &csv::ByteRecord, width: usize, line: u64) -> Option<String> {
    let bytes = record.as_slice();
    if record.len() != width {
        // Line ends inside fields were inside quotes; the file's last line end, swallowed too, ends no line.
        let inside = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        if inside > 0 {
            let at_end = bytes.ends_with(b"\n");
            let end = line + inside - u64::from(at_end);
            return Some(if at_end {
                format!(
                    "a quote opened on line {line} is never closed: lines {line} to {end} were read as one record and refused"
                )
            } else {
                format!(
                    "lines {line} to {end} were read as one record of {} fields, expected {width}: a quote opened on line {line} may be unbalanced",
                    record.len()
                )
            });
        }
    }
    (bytes.len() > MAX_RECORD_BYTES).then(|| format!("is longer than {MAX_RECORD_BYTES} bytes"))
}

/// Validating workers.
const WORKERS: usize = 2;
/// Rows per chunk handed to a worker.
const CHUNK_ROWS: usize = 4096;

/// A row as read.
enum Raw {
    /// Line number and the raw record.
    Row(u64, csv::ByteRecord),
    /// Refused by the CSV reader itself.
    Bad(Quarantined),
}

/// A row after validation.
enum Out {
    /// Line, primary key and encoded record.
    Good(u64, Vec<u8>, Vec<u8>),
    /// Every problem of a refused row.
    Bad(Vec<Quarantined>),
}

/// Validates, minimises and encodes one row.
#[allow(clippy::too_many_arguments)] // the import's fixed parameters, passed to each worker as they are
fn process(
    dataset: &Dataset,
    columns: &[usize],
    width: usize,
    key: &PseudonymKey,
    keep_raw: &[String],
    minimise: MinimiseOptions,
    decoded: bool,
    raw: Raw,
) -> Out {
    let (line, record) = match raw {
        Raw::Row(line, record) => (line, record),
        Raw::Bad(q) => return Out::Bad(vec![q]),
    };
    let bad = |field: &str, reason: String| Out::Bad(vec![Quarantined { line, field: field.into(), reason }]);
    if record.len() != width {
        return bad("row", format!("has {} fields, expected {}", record.len(), width));
    }
    let mut cells: Vec<&str> = Vec::with_capacity(columns.len());
    for &c in columns {
        match std::str::from_utf8(&record[c]) {
            // A GB18030 decoder replaces what is no GB18030 character by U+FFFD: such a row is refused,
            // never stored altered.
            Ok(cell) if decoded && cell.contains('\u{FFFD}') => return bad("row", "is not valid GB18030".into()),
            Ok(cell) => cells.push(cell),
            Err(_) => return bad("row", NOT_UTF8.into()),
        }
    }
    match validate(dataset, &cells) {
        Ok(validated) => {
            let k = validated.key().as_bytes().to_vec();
            let stored = validated.minimise_with(dataset, key, keep_raw, minimise);
            // Encoding plain enums and strings into a Vec cannot fail.
            Out::Good(line, k, postcard::to_allocvec(&stored).unwrap_or_default())
        }
        Err(problems) => Out::Bad(
            problems.into_iter().map(|FieldProblem { field, reason }| Quarantined { line, field, reason }).collect(),
        ),
    }
}

/// What the writer did.
#[derive(Default)]
struct Written {
    rows: u64,
    imported: u64,
    rejected: u64,
    quarantine: Vec<Quarantined>,
}

/// A 128-bit hash of a primary key (two independently keyed SipHashes): repeated keys are found without
/// keeping the keys themselves. Two different keys share a hash with probability about n²/2¹²⁹ (below
/// 10⁻²⁴ for 10 million rows).
fn key_hash(states: &[std::hash::RandomState; 2], key: &[u8]) -> u128 {
    use std::hash::BuildHasher;
    (u128::from(states[0].hash_one(key)) << 64) | u128::from(states[1].hash_one(key))
}

/// Takes the workers' results back in file order, refuses repeated keys and hands full batches to a
/// storing thread, so that writing and syncing one batch overlaps with checking the next. Each batch
/// records `forms` in the store with its rows.
fn write_in_order(
    store: &dyn Store,
    dataset: &'static Dataset,
    from_workers: Vec<mpsc::Receiver<Vec<Out>>>,
    forms: StoredForms,
) -> Result<Written, StoreError> {
    std::thread::scope(|s| {
        let (to_store, batches) = mpsc::sync_channel::<Vec<(Vec<u8>, Vec<u8>)>>(1);
        let storer = s.spawn(move || -> Result<(), StoreError> {
            for batch in batches {
                store.upsert_recording(dataset.name, &batch, forms)?;
            }
            Ok(())
        });
        let mut w = Written::default();
        let states = [std::hash::RandomState::new(), std::hash::RandomState::new()];
        let mut seen: HashMap<u128, u64, PreHashedState> = HashMap::default();
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(BATCH_ROWS);
        let mut turn = 0usize;
        'chunks: while let Ok(chunk) = from_workers[turn % from_workers.len()].recv() {
            turn += 1;
            for out in chunk {
                w.rows += 1;
                match out {
                    Out::Bad(problems) => {
                        w.rejected += 1;
                        w.quarantine.extend(problems);
                    }
                    Out::Good(line, key, value) => {
                        match seen.entry(key_hash(&states, &key)) {
                            std::collections::hash_map::Entry::Occupied(first) => {
                                w.rejected += 1;
                                w.quarantine.push(Quarantined {
                                    line,
                                    field: dataset.key.into(),
                                    reason: format!("duplicates the key of line {}", first.get()),
                                });
                                continue;
                            }
                            std::collections::hash_map::Entry::Vacant(v) => {
                                v.insert(line);
                            }
                        }
                        batch.push((key, value));
                        w.imported += 1;
                        if batch.len() >= BATCH_ROWS {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                            if to_store.send(full).is_err() {
                                break 'chunks; // the storer failed: its error is returned below
                            }
                        }
                    }
                }
            }
        }
        if !batch.is_empty() {
            // A failed storer has dropped its receiver; its error is returned below.
            let _ = to_store.send(batch);
        }
        drop(to_store);
        // A panic in the storer is a bug; re-raise it rather than acknowledge a partial import.
        storer.join().unwrap_or_else(|e| std::panic::resume_unwind(e))?;
        Ok(w)
    })
}

/// For each schema field, the index of its column in the file. Every schema column must be present
/// once; an unknown column refuses the file (it might carry data nobody classified).
fn map_columns(dataset: &Dataset, headers: &csv::StringRecord) -> Result<Vec<usize>, String> {
    let names: Vec<&str> = headers.iter().map(|h| h.trim_start_matches('\u{feff}').trim()).collect();
    let missing: Vec<&str> = dataset.fields.iter().map(|f| f.name).filter(|f| !names.contains(f)).collect();
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| dataset.field(n).is_none())
        .map(|n| format!("{:?}", n.chars().take(40).collect::<String>()))
        .collect();
    let mut dup: Vec<&str> = names.iter().copied().filter(|n| names.iter().filter(|m| *m == n).count() > 1).collect();
    dup.dedup();
    let mut what = Vec::new();
    if !missing.is_empty() {
        what.push(format!("missing columns {}", missing.join(", ")));
    }
    if !unknown.is_empty() {
        what.push(format!("unknown columns {}", unknown.join(", ")));
    }
    if !dup.is_empty() {
        what.push(format!("repeated columns {}", dup.join(", ")));
    }
    if !what.is_empty() {
        return Err(what.join("; "));
    }
    Ok(dataset.fields.iter().map(|f| names.iter().position(|n| *n == f.name).unwrap_or(0)).collect())
}

/// The current UTC time as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;
    use shuzhu_policy::schema::CASES;

    fn line(i: usize) -> Vec<u8> {
        let mut cells: Vec<String> = CASES.fields.iter().map(|_| String::new()).collect();
        let mut set = |k: &str, v: String| cells[CASES.fields.iter().position(|f| f.name == k).unwrap()] = v;
        set("case_no", format!("(2023)闽0213民初{i}号"));
        set("court_code", "闽0213".into());
        set("region_code", "350213".into());
        set("type_code", "民初".into());
        set("cause", "民间借贷纠纷".into());
        set("filed_on", "2023-01-05".into());
        set("deadline_on", "2023-07-05".into());
        set("appealed", "false".into());
        set("online_filed", "true".into());
        set("pre_suit_mediated", "false".into());
        set("judge_id", "J0213001".into());
        set("plaintiff_kind", "自然人".into());
        set("defendant_kind", "法人".into());
        set("plaintiff_name", "张伟".into());
        set("defendant_name", "厦门某某贸易有限公司".into());
        set("minor_involved", "false".into());
        let mut out = cells.join(",").into_bytes();
        out.push(b'\n');
        out
    }

    #[test]
    fn minimise_options_reach_every_row() {
        use crate::record::{Record, Value};
        let at = |name: &str| CASES.fields.iter().position(|f| f.name == name).unwrap();
        let mut text = CASES.fields.iter().map(|f| f.name).collect::<Vec<_>>().join(",").into_bytes();
        text.push(b'\n');
        let row = String::from_utf8(line(1)).unwrap();
        let mut cells: Vec<String> = row.trim_end().split(',').map(String::from).collect();
        cells[at("defendant_address")] = "福建省厦门市思明区湖滨南路123号".into();
        cells[at("summary")] = "原告张伟诉被告厦门某某贸易有限公司，被告住所地福建省厦门市思明区湖滨南路123号".into();
        text.extend(cells.join(",").into_bytes());
        text.push(b'\n');
        let key = PseudonymKey::from_bytes(&[3u8; 32]).unwrap();
        let stored = |minimise: MinimiseOptions| -> Record {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(dir.path()).unwrap();
            let opts = ImportOptions { dataset: "cases", key: &key, keep_raw: &[], minimise, progress: &mut |_| {} };
            assert_eq!(import_reader(&store, text.as_slice(), "test", opts).unwrap().imported, 1);
            let mut records = Vec::new();
            store.scan("cases", &mut |_, v| records.push(postcard::from_bytes::<Record>(v).unwrap())).unwrap();
            records.pop().unwrap()
        };
        let full = stored(MinimiseOptions::default());
        assert_eq!(full.values[at("summary")], Value::Text("原告张某诉被告[已遮蔽]，被告住所地[已遮蔽]".into()));
        assert_eq!(full.values[at("defendant_address")], Value::Int(350203));
        let none = stored(MinimiseOptions { scrub_summary: false, address_to_county: false });
        assert_eq!(none.values[at("summary")], Value::Absent);
        assert_eq!(none.values[at("defendant_address")], Value::Absent);
        let no_summary = stored(MinimiseOptions { scrub_summary: false, address_to_county: true });
        assert_eq!(no_summary.values[at("summary")], Value::Absent);
        assert_eq!(no_summary.values[at("defendant_address")], Value::Int(350203));
    }

    #[test]
    fn format_characters_in_codes_are_refused_and_full_width_case_numbers_are_the_same_case() {
        let mut text = CASES.fields.iter().map(|f| f.name).collect::<Vec<_>>().join(",").into_bytes();
        text.push(b'\n');
        text.extend(line(1));
        // The same case written with full-width parentheses and digits: a duplicate, not a new case.
        text.extend(
            String::from_utf8(line(1))
                .unwrap()
                .replacen("(2023)闽0213民初1号", "（２０２３）闽0213民初１号", 1)
                .into_bytes(),
        );
        // A zero-width space in the court code.
        text.extend(String::from_utf8(line(2)).unwrap().replacen(",闽0213,", ",闽0213\u{200B},", 1).into_bytes());
        // A byte-order mark inside the cause.
        text.extend(
            String::from_utf8(line(3)).unwrap().replacen("民间借贷纠纷", "民间\u{FEFF}借贷纠纷", 1).into_bytes(),
        );
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let key = PseudonymKey::from_bytes(&[3u8; 32]).unwrap();
        let opts = ImportOptions {
            dataset: "cases",
            key: &key,
            keep_raw: &[],
            minimise: MinimiseOptions::default(),
            progress: &mut |_| {},
        };
        let r = import_reader(&store, text.as_slice(), "test", opts).unwrap();
        let got: Vec<(u64, &str, &str)> =
            r.quarantine.iter().map(|q| (q.line, q.field.as_str(), q.reason.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (3, "case_no", "duplicates the key of line 2"),
                (4, "court_code", "contains an invisible format character (such as a zero-width space)"),
                (5, "cause", "contains an invisible format character (such as a zero-width space)"),
            ]
        );
        assert_eq!((r.imported, r.total_records), (1, 1));
        let mut keys = Vec::new();
        store.scan("cases", &mut |k, _| keys.push(String::from_utf8(k.to_vec()).unwrap())).unwrap();
        assert_eq!(keys, ["(2023)闽0213民初1号"]);
    }

    /// Imports `text` as `cases` into a fresh store: the report and the keys stored.
    fn import_cases(text: &[u8]) -> (ImportReport, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let key = PseudonymKey::from_bytes(&[3u8; 32]).unwrap();
        let opts = ImportOptions {
            dataset: "cases",
            key: &key,
            keep_raw: &[],
            minimise: MinimiseOptions::default(),
            progress: &mut |_| {},
        };
        let r = import_reader(&store, text, "test", opts).unwrap();
        let mut keys = Vec::new();
        store.scan("cases", &mut |k, _| keys.push(String::from_utf8(k.to_vec()).unwrap())).unwrap();
        keys.sort();
        (r, keys)
    }

    fn header() -> Vec<u8> {
        let mut text = CASES.fields.iter().map(|f| f.name).collect::<Vec<_>>().join(",").into_bytes();
        text.push(b'\n');
        text
    }

    fn lines_of(r: &ImportReport) -> Vec<(u64, String, String)> {
        r.quarantine.iter().map(|q| (q.line, q.field.clone(), q.reason.clone())).collect()
    }

    #[test]
    fn crlf_files_report_the_same_line_numbers_as_lf_files() {
        let mut lf = header();
        for i in 1..=5 {
            let l = if i == 2 || i == 4 {
                String::from_utf8(line(i)).unwrap().replace("2023-01-05", "2023-02-30").into_bytes()
            } else {
                line(i)
            };
            lf.extend(l);
        }
        let crlf = String::from_utf8(lf.clone()).unwrap().replace('\n', "\r\n").into_bytes();
        let (a, _) = import_cases(&lf);
        let (b, _) = import_cases(&crlf);
        let at: Vec<u64> = a.quarantine.iter().map(|q| q.line).collect();
        assert_eq!(at, [3, 5], "{:?}", lines_of(&a));
        assert_eq!(lines_of(&b), lines_of(&a));
        assert_eq!((b.imported, b.rejected_rows), (3, 2));
    }

    #[test]
    fn an_unbalanced_quote_names_the_line_its_record_began_and_the_lines_it_swallowed() {
        let mut text = header();
        text.extend(line(1));
        // Line 3 opens a quote in `cause` that nothing closes: the reader takes lines 3-5 as one record.
        text.extend(String::from_utf8(line(2)).unwrap().replacen(",民间借贷纠纷,", ",\"民间借贷纠纷,", 1).into_bytes());
        text.extend(line(3));
        text.extend(line(4));
        let crlf = String::from_utf8(text.clone()).unwrap().replace('\n', "\r\n").into_bytes();
        for text in [text, crlf] {
            let (r, keys) = import_cases(&text);
            assert_eq!(
                lines_of(&r),
                [(
                    3,
                    "row".to_string(),
                    "a quote opened on line 3 is never closed: lines 3 to 5 were read as one record and refused"
                        .to_string()
                )]
            );
            assert_eq!(keys, ["(2023)闽0213民初1号"]);
            assert_eq!((r.rows_read, r.imported, r.rejected_rows), (2, 1, 1));
        }
    }

    #[test]
    fn a_record_over_64_kib_is_refused_naming_its_line_and_nothing_else_is_lost() {
        let mut text = header();
        text.extend(line(1));
        let huge = format!("原告{}", "甲".repeat(30_000));
        // `summary` is the last column, empty in `line`: it becomes 90 000 bytes on one physical line.
        let mut long = String::from_utf8(line(2)).unwrap();
        long.truncate(long.len() - 1);
        text.extend(format!("{long}{huge}\n").into_bytes());
        let mut quoted = String::from_utf8(line(3)).unwrap();
        quoted.truncate(quoted.len() - 1);
        // A quoted `summary` of 70 000 bytes over many physical lines.
        text.extend(format!("{quoted}\"{}\"\n", "a\n".repeat(35_000)).into_bytes());
        text.extend(line(4));
        let (r, keys) = import_cases(&text);
        assert_eq!(
            lines_of(&r),
            [
                (3, "row".to_string(), "is longer than 65536 bytes".to_string()),
                (4, "row".to_string(), "is longer than 65536 bytes".to_string()),
            ]
        );
        assert_eq!(keys, ["(2023)闽0213民初1号", "(2023)闽0213民初4号"]);
        assert_eq!((r.rows_read, r.imported, r.rejected_rows), (4, 2, 2));
    }

    #[test]
    fn case_numbers_must_have_the_shape_of_a_case_number() {
        let mut text = header();
        text.extend(line(1));
        for (i, bad) in [
            (2, "闽0213民初2号"),
            (3, "(2023)民初3号"),
            (4, "(23)闽0213民初4号"),
            (5, "(2023)闽0213民初号"),
            (6, "张三的案子"),
        ] {
            text.extend(
                String::from_utf8(line(i)).unwrap().replacen(&format!("(2023)闽0213民初{i}号"), bad, 1).into_bytes(),
            );
        }
        // Full-width forms are the same case number once normalised, and an origin case number is checked too.
        text.extend(
            String::from_utf8(line(7))
                .unwrap()
                .replacen("(2023)闽0213民初7号", "（２０２３）闽0213民初7号", 1)
                .into_bytes(),
        );
        let at = CASES.fields.iter().position(|f| f.name == "origin_case_no").unwrap();
        let mut cells: Vec<String> =
            String::from_utf8(line(8)).unwrap().trim_end().split(',').map(String::from).collect();
        cells[at] = "原审138号".into();
        text.extend((cells.join(",") + "\n").into_bytes());
        let (r, keys) = import_cases(&text);
        let reason = "is not a case number like (2023)闽0213民初1234号";
        let want: Vec<(u64, String, String)> = (3..=7)
            .map(|l| (l, "case_no".to_string(), reason.to_string()))
            .chain([(9, "origin_case_no".to_string(), reason.to_string())])
            .collect();
        assert_eq!(lines_of(&r), want);
        assert_eq!(keys, ["(2023)闽0213民初1号", "(2023)闽0213民初7号"]);
    }

    #[test]
    fn a_cause_holding_personal_information_is_refused() {
        let mut text = header();
        text.extend(line(1));
        for (i, cause) in
            [(2, "原告张伟诉被告李娜民间借贷纠纷"), (3, "民间借贷纠纷13812345678"), (4, "110101199003074514")]
        {
            text.extend(String::from_utf8(line(i)).unwrap().replacen("民间借贷纠纷", cause, 1).into_bytes());
        }
        text.extend(
            String::from_utf8(line(5)).unwrap().replacen("民间借贷纠纷", "机动车交通事故责任纠纷", 1).into_bytes(),
        );
        let (r, keys) = import_cases(&text);
        let reason = "holds personal information; a cause is a 案由 such as 民间借贷纠纷";
        let want: Vec<(u64, String, String)> = (3..=5).map(|l| (l, "cause".to_string(), reason.to_string())).collect();
        assert_eq!(lines_of(&r), want);
        assert_eq!(keys.len(), 2);
    }

    /// Imports the file `bytes` as `cases` with `encoding`: the report and the keys stored.
    fn import_file_as(bytes: &[u8], encoding: InputEncoding) -> (ImportReport, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cases.csv");
        std::fs::write(&file, bytes).unwrap();
        let store = SledStore::open(&dir.path().join("store")).unwrap();
        let key = PseudonymKey::from_bytes(&[3u8; 32]).unwrap();
        let opts = ImportOptions {
            dataset: "cases",
            key: &key,
            keep_raw: &[],
            minimise: MinimiseOptions::default(),
            progress: &mut |_| {},
        };
        let r = import_file_with(&store, &file, encoding, opts).unwrap();
        let mut keys = Vec::new();
        store.scan("cases", &mut |k, _| keys.push(String::from_utf8(k.to_vec()).unwrap())).unwrap();
        keys.sort();
        (r, keys)
    }

    /// A cases file of rows 1..=4 whose row 3 (line 4) has an impossible date, CRLF line ends.
    fn cases_text() -> String {
        let mut text = String::from_utf8(header()).unwrap();
        for i in 1..=4 {
            let l = String::from_utf8(line(i)).unwrap();
            text.push_str(&if i == 3 { l.replace("2023-01-05", "2023-02-30") } else { l });
        }
        text.replace('\n', "\r\n")
    }

    #[test]
    fn gb18030_files_are_detected_and_read_as_excel_writes_them() {
        let text = cases_text();
        let (gb, _, unmappable) = encoding_rs::GB18030.encode(&text);
        assert!(!unmappable);
        // Real GB18030 bytes: 民 C3F1, 初 B3F5, 闽 C3F6.
        assert!(gb.windows(6).any(|w| w == [0xC3, 0xF6, b'0', b'2', b'1', b'3']));
        assert!(gb.windows(4).any(|w| w == [0xC3, 0xF1, 0xB3, 0xF5]));
        for encoding in [InputEncoding::Auto, InputEncoding::Gb18030] {
            let (r, keys) = import_file_as(&gb, encoding);
            assert_eq!(r.encoding, "GB18030");
            assert_eq!((r.rows_read, r.imported, r.rejected_rows), (4, 3, 1));
            assert_eq!(r.quarantine[0].line, 4);
            assert_eq!(keys, ["(2023)闽0213民初1号", "(2023)闽0213民初2号", "(2023)闽0213民初4号"]);
        }
    }

    #[test]
    fn utf8_with_or_without_a_bom_is_detected_and_a_wrong_choice_names_the_lines() {
        let text = cases_text();
        for bytes in [text.clone().into_bytes(), [&b"\xEF\xBB\xBF"[..], text.as_bytes()].concat()] {
            let (r, keys) = import_file_as(&bytes, InputEncoding::Auto);
            assert_eq!(r.encoding, "UTF-8");
            assert_eq!((r.imported, r.rejected_rows, r.quarantine[0].line), (3, 1, 4));
            assert_eq!(keys.len(), 3);
        }
        // GB18030 bytes read as UTF-8: every row with Chinese text is refused, naming its line and the fix.
        let (gb, _, _) = encoding_rs::GB18030.encode(&text);
        let (r, keys) = import_file_as(&gb, InputEncoding::Utf8);
        let got: Vec<(u64, &str)> = r.quarantine.iter().map(|q| (q.line, q.reason.as_str())).collect();
        let reason = "is not valid UTF-8 (if the file is GB18030 or GBK, import it with --encoding gb18030)";
        assert_eq!(got, [(2, reason), (3, reason), (4, reason), (5, reason)]);
        assert!(keys.is_empty());
    }

    #[test]
    fn a_byte_sequence_gb18030_does_not_have_refuses_its_row_only() {
        let text = cases_text();
        let mut gb = encoding_rs::GB18030.encode(&text).0.into_owned();
        // 0xFF is no GB18030 byte: put it into the first row's cause (line 2).
        let at = gb.windows(4).position(|w| w == [0xC3, 0xF1, 0xBC, 0xE4]).unwrap();
        gb.insert(at, 0xFF);
        let (r, keys) = import_file_as(&gb, InputEncoding::Gb18030);
        let got: Vec<(u64, &str, &str)> =
            r.quarantine.iter().map(|q| (q.line, q.field.as_str(), q.reason.as_str())).collect();
        assert_eq!(got[0], (2, "row", "is not valid GB18030"));
        assert_eq!(keys, ["(2023)闽0213民初2号", "(2023)闽0213民初4号"]);
    }

    #[test]
    fn many_chunks_keep_line_order_and_first_key_wins() {
        let n = 3 * CHUNK_ROWS + 17;
        let mut text = CASES.fields.iter().map(|f| f.name).collect::<Vec<_>>().join(",").into_bytes();
        text.push(b'\n');
        for i in 0..n {
            let mut l = match i {
                9000 => line(100),
                7000 => String::from_utf8(line(i)).unwrap().replace("2023-01-05", "2023-02-30").into_bytes(),
                _ => line(i),
            };
            if i == 5000 {
                let at = l.iter().position(|b| *b == b',').unwrap();
                l.insert(at, 0xff);
            }
            text.extend(l);
        }
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let key = PseudonymKey::from_bytes(&[3u8; 32]).unwrap();
        let mut calls = 0;
        let r = import_reader(
            &store,
            text.as_slice(),
            "test",
            ImportOptions {
                dataset: "cases",
                key: &key,
                keep_raw: &[],
                minimise: MinimiseOptions::default(),
                progress: &mut |_| calls += 1,
            },
        )
        .unwrap();
        assert_eq!((r.rows_read, r.imported, r.rejected_rows), (n as u64, n as u64 - 3, 3));
        assert_eq!(r.total_records, n as u64 - 3);
        let got: Vec<(u64, &str, &str)> =
            r.quarantine.iter().map(|q| (q.line, q.field.as_str(), q.reason.as_str())).collect();
        assert_eq!(got[0], (5002, "row", NOT_UTF8));
        assert_eq!((got[1].0, got[1].1), (7002, "filed_on"));
        assert_eq!(got[2], (9002, "case_no", "duplicates the key of line 102"));
        assert_eq!(got.len(), 3);
        assert!(calls >= 1);
    }
}
