//! `shuzhu node import`: CSV in, validated and minimised records out, durably.
//!
//! Every row is validated against the dataset's schema. A bad row is never dropped silently and never
//! stops the good ones: it goes to the quarantine report with its line number, field and reason (never
//! the personal value). Rows upsert by primary key, so importing the same file twice changes nothing.
//! The import is acknowledged only after the store has been flushed and fsynced.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use shuzhu_policy::pseudonym::PseudonymKey;
use shuzhu_policy::schema::{self, Dataset};

use crate::record::{FieldProblem, validate};
use crate::store::{Store, StoreError};

/// Rows written per storage batch.
const BATCH_ROWS: usize = 20_000;

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
    /// Records in the dataset after the import.
    pub total_records: u64,
    /// Wall time.
    pub elapsed: Duration,
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
    /// Called now and then with the number of rows read so far.
    pub progress: &'a mut dyn FnMut(u64),
}

/// Imports the CSV file at `path`.
pub fn import_file(store: &dyn Store, path: &Path, opts: ImportOptions<'_>) -> Result<ImportReport, ImportError> {
    let file =
        std::fs::File::open(path).map_err(|source| ImportError::Read { path: path.display().to_string(), source })?;
    import_reader(store, std::io::BufReader::with_capacity(1 << 20, file), &path.display().to_string(), opts)
}

/// Imports CSV text from `reader`; `name` names it in errors.
pub fn import_reader(
    store: &dyn Store,
    reader: impl Read,
    name: &str,
    opts: ImportOptions<'_>,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let dataset: &Dataset =
        schema::dataset(opts.dataset).ok_or_else(|| ImportError::UnknownDataset(opts.dataset.into()))?;
    let mut csv = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(reader);
    let header_err = |what: String| ImportError::Header { path: name.into(), dataset: dataset.name.into(), what };
    let headers = csv.headers().map_err(|e| header_err(format!("unreadable header: {e}")))?.clone();
    let columns = map_columns(dataset, &headers).map_err(header_err)?;

    let mut report = ImportReport { dataset: dataset.name.into(), ..Default::default() };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(BATCH_ROWS);
    let mut record = csv::StringRecord::new();
    loop {
        let line_hint = csv.position().line() + 1;
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // Invalid UTF-8 or a broken quote: the row is refused, reading goes on where possible.
                report.rows_read += 1;
                report.rejected_rows += 1;
                let line = e.position().map_or(line_hint, |p| p.line());
                let reason = match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_string(),
                    _ => "cannot be parsed as CSV".to_string(),
                };
                report.quarantine.push(Quarantined { line, field: "row".into(), reason });
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        report.rows_read += 1;
        let line = record.position().map_or(line_hint, |p| p.line());
        if report.rows_read.is_multiple_of(100_000) {
            (opts.progress)(report.rows_read);
        }
        if record.len() != headers.len() {
            report.rejected_rows += 1;
            report.quarantine.push(Quarantined {
                line,
                field: "row".into(),
                reason: format!("has {} fields, expected {}", record.len(), headers.len()),
            });
            continue;
        }
        let cells: Vec<&str> = columns.iter().map(|&c| &record[c]).collect();
        let validated = match validate(dataset, &cells) {
            Ok(v) => v,
            Err(problems) => {
                report.rejected_rows += 1;
                report.quarantine.extend(problems.into_iter().map(|FieldProblem { field, reason }| Quarantined {
                    line,
                    field,
                    reason,
                }));
                continue;
            }
        };
        if let Some(first) = seen.get(validated.key()) {
            report.rejected_rows += 1;
            report.quarantine.push(Quarantined {
                line,
                field: dataset.key.into(),
                reason: format!("duplicates the key of line {first}"),
            });
            continue;
        }
        seen.insert(validated.key().to_string(), line);
        let key = validated.key().as_bytes().to_vec();
        let stored = validated.minimise(dataset, opts.key, opts.keep_raw);
        // Encoding plain enums and strings into a Vec cannot fail.
        let value = postcard::to_allocvec(&stored).unwrap_or_default();
        batch.push((key, value));
        report.imported += 1;
        if batch.len() >= BATCH_ROWS {
            store.upsert(dataset.name, &batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.upsert(dataset.name, &batch)?;
    }
    (opts.progress)(report.rows_read);
    store.set_meta(&format!("last_import/{}", dataset.name), &now_rfc3339())?;
    store.make_durable()?;
    report.total_records = store.count(dataset.name)?;
    report.elapsed = started.elapsed();
    Ok(report)
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
