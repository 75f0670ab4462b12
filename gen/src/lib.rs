//! Deterministic synthetic data for Shuzhu demos, tests and benchmarks, in the CSV formats of
//! `DESIGN.md` ("Datasets"), one folder per node.
//!
//! This crate owns the generator and nothing else: the synthetic courts, districts, parties and
//! their identifiers, and the three files it writes — `cases.csv` for each basic court
//! (`OUT/court-350203/cases.csv`, …), `mediations.csv` for the justice bureau
//! (`OUT/justice-3502/`) and `population.csv` for the statistics bureau (`OUT/stats-3502/`). It
//! depends on no other Shuzhu crate; the node's importer is what checks these files.
//!
//! The same [`GenConfig`] always gives byte-identical files: every file draws from its own ChaCha8
//! stream keyed by the seed and the node's index, with integer arithmetic only, so output does not
//! depend on the platform or on how the work is spread over threads. A court's file depends only on
//! the seed, its position and the years, so asking for more courts leaves the first ones unchanged.
//!
//! ```no_run
//! let nodes = shuzhu_gen::generate(std::path::Path::new("data"), &shuzhu_gen::GenConfig::default())?;
//! for node in &nodes {
//!     println!("{} {} rows in {}", node.id, node.rows, node.file.display());
//! }
//! # Ok::<(), shuzhu_gen::GenError>(())
//! ```
//!
//! All people, organisations and numbers are made up, but identifiers pass their checksums
//! ([`is_valid_resident_id`], [`is_valid_uscc`]) so that validation and masking are exercised for
//! real.

mod calendar;
mod cases;
mod ids;
mod mediations;
mod output;
mod people;
mod population;
mod regions;
mod sample;
mod seasons;
mod text;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};

pub use cases::{CASE_COLUMNS, CLOSURE_METHODS, PARTY_KINDS, TYPE_CODES};
pub use ids::{is_valid_resident_id, is_valid_uscc, resident_id_check, uscc_check};
pub use mediations::{DISPUTE_TYPES, MEDIATION_COLUMNS, ORG_TYPES, RESULTS, SOURCES};
pub use population::POPULATION_COLUMNS;
pub use regions::MAX_COURTS;

/// Rows between two progress reports.
pub(crate) const PROGRESS_EVERY: usize = 1 << 16;

/// The most cases one court may be asked for.
pub const MAX_CASES_PER_COURT: usize = 100_000_000;

/// Node id of the justice bureau (司法局), which holds the mediations.
pub const JUSTICE_NODE_ID: &str = "justice-3502";
/// Node id of the statistics bureau (统计局), which holds the population figures.
pub const STATISTICS_NODE_ID: &str = "stats-3502";

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenConfig {
    /// Number of basic courts; the first six are Xiamen's districts (思明, 海沧, 湖里, 集美, 同安,
    /// 翔安), then other Fujian districts, then synthetic ones (up to [`MAX_COURTS`]).
    pub courts: usize,
    /// Cases filed at each court over the whole period.
    pub cases_per_court: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// First filing year.
    pub from_year: i32,
    /// Last filing year; the data are "as of" 31 December of this year.
    pub to_year: i32,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self { courts: 6, cases_per_court: 20_000, seed: 20240101, from_year: 2019, to_year: 2024 }
    }
}

impl GenConfig {
    /// Checks that the generator can produce what is asked for.
    pub fn validate(&self) -> Result<(), GenError> {
        let invalid = |reason: String| Err(GenError::InvalidConfig(reason));
        if !(1..=MAX_COURTS).contains(&self.courts) {
            return invalid(format!("courts must be between 1 and {MAX_COURTS}, got {}", self.courts));
        }
        if !(1..=MAX_CASES_PER_COURT).contains(&self.cases_per_court) {
            return invalid(format!(
                "cases_per_court must be between 1 and {MAX_CASES_PER_COURT}, got {}",
                self.cases_per_court
            ));
        }
        for (name, year) in [("from_year", self.from_year), ("to_year", self.to_year)] {
            if !(2000..=2100).contains(&year) {
                return invalid(format!("{name} must be between 2000 and 2100, got {year}"));
            }
        }
        if self.to_year < self.from_year {
            return invalid(format!("to_year ({}) must not be before from_year ({})", self.to_year, self.from_year));
        }
        Ok(())
    }

    /// First and last year of the population figures: three years before the first filing year
    /// (the baseline of 立案偏离度) to the last.
    pub fn population_years(&self) -> (i32, i32) {
        (self.from_year - 3, self.to_year)
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    /// The configuration asks for something the generator cannot produce.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Creating a folder or writing, flushing or renaming a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CSV writer failed (in practice, an I/O error underneath).
    #[error("cannot write csv {}: {source}", path.display())]
    Csv {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: csv::Error,
    },
}

/// Which kind of party a node belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A basic people's court (基层人民法院), serving `cases`.
    Court,
    /// The justice bureau (司法局), serving `mediations`.
    Justice,
    /// The statistics bureau (统计局), serving `population`.
    Statistics,
}

/// One node's generated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedNode {
    /// ASCII node id, usable in DNS names: `court-350203`, `justice-3502`, `stats-3502`.
    pub id: String,
    /// Court, justice bureau or statistics bureau.
    pub kind: NodeKind,
    /// The node's folder, `OUT/<id>`.
    pub dir: PathBuf,
    /// Dataset name: `cases`, `mediations` or `population`.
    pub dataset: String,
    /// The CSV file, `OUT/<id>/<dataset>.csv`.
    pub file: PathBuf,
    /// Data rows written (the header not counted).
    pub rows: usize,
    /// 6-digit region codes the node serves.
    pub regions: Vec<String>,
    /// 法院代字 (`闽0203`) for courts, `None` for the bureaus.
    pub court_code: Option<String>,
}

/// Generates every node's file under `out` (created if missing; existing files are replaced).
///
/// Returns the nodes in order: the courts, then the justice bureau, then the statistics bureau.
pub fn generate(out: &Path, cfg: &GenConfig) -> Result<Vec<GeneratedNode>, GenError> {
    generate_with_progress(out, cfg, &mut |_, _| {})
}

/// Like [`generate`], calling `progress(node_id, rows_written_so_far)` from the calling thread every
/// 65 536 rows of a file and once when the file is complete. Files are written in parallel, so
/// reports for different nodes interleave.
pub fn generate_with_progress(
    out: &Path,
    cfg: &GenConfig,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<Vec<GeneratedNode>, GenError> {
    cfg.validate()?;
    let regions = regions::regions(cfg.courts);
    let mut nodes = plan(out, &regions);
    for node in &nodes {
        std::fs::create_dir_all(&node.dir).map_err(|source| GenError::Io { path: node.dir.clone(), source })?;
    }

    let results: Mutex<Vec<Option<Result<usize, GenError>>>> =
        Mutex::new(std::iter::repeat_with(|| None).take(nodes.len()).collect());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(nodes.len());
    // The justice bureau's file is the largest single file (half as many rows as all courts
    // together), so it starts first rather than trailing behind the courts.
    let order: Vec<usize> = (regions.len()..nodes.len()).chain(0..regions.len()).collect();
    let (tx, rx) = mpsc::channel::<(usize, usize)>();
    std::thread::scope(|scope| {
        let (nodes, regions, results, next, failed, order) = (&nodes, &regions, &results, &next, &failed, &order);
        for _ in 0..workers {
            let tx = tx.clone();
            scope.spawn(move || {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    // The receiver lives until every worker is done, so a send cannot fail.
                    let mut report = |rows: usize| {
                        let _ = tx.send((i, rows));
                    };
                    let result = run(&nodes[i], i, cfg, regions, &mut report);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(result);
                }
            });
        }
        drop(tx);
        for (i, rows) in rx {
            progress(&nodes[i].id, rows);
        }
    });

    let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    for (node, result) in nodes.iter_mut().zip(results) {
        match result {
            Some(Ok(rows)) => node.rows = rows,
            Some(Err(e)) => return Err(e),
            // Not started because another file failed; that failure is reported above or below.
            None => {}
        }
    }
    Ok(nodes)
}

/// The nodes to generate, with their folders and files, before any row is written.
fn plan(out: &Path, regions: &[regions::Region]) -> Vec<GeneratedNode> {
    let codes: Vec<String> = regions.iter().map(|r| r.code.clone()).collect();
    let node = |id: String, kind, dataset: &str, regions: Vec<String>, court_code| {
        let dir = out.join(&id);
        GeneratedNode {
            file: dir.join(format!("{dataset}.csv")),
            dir,
            id,
            kind,
            dataset: dataset.to_string(),
            rows: 0,
            regions,
            court_code,
        }
    };
    let mut nodes: Vec<GeneratedNode> = regions
        .iter()
        .map(|r| {
            node(
                format!("court-{}", r.code),
                NodeKind::Court,
                "cases",
                vec![r.code.clone()],
                Some(r.court_code.clone()),
            )
        })
        .collect();
    nodes.push(node(JUSTICE_NODE_ID.to_string(), NodeKind::Justice, "mediations", codes.clone(), None));
    nodes.push(node(STATISTICS_NODE_ID.to_string(), NodeKind::Statistics, "population", codes, None));
    nodes
}

/// Writes node number `i`'s file.
fn run(
    node: &GeneratedNode,
    i: usize,
    cfg: &GenConfig,
    regions: &[regions::Region],
    report: &mut dyn FnMut(usize),
) -> Result<usize, GenError> {
    let years = (cfg.from_year, cfg.to_year);
    match node.kind {
        NodeKind::Court => {
            cases::write_cases(&node.file, cfg.seed, i, &regions[i], cfg.cases_per_court as u64, years, report)
        }
        NodeKind::Justice => {
            let total = mediations::mediation_count(cfg.courts, cfg.cases_per_court);
            mediations::write_mediations(&node.file, cfg.seed, regions, total, years, report)
        }
        NodeKind::Statistics => {
            population::write_population(&node.file, cfg.seed, regions, cfg.population_years(), report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> GenConfig {
        GenConfig { courts: 3, cases_per_court: 2_000, seed, from_year: 2021, to_year: 2024 }
    }

    fn read_all(nodes: &[GeneratedNode]) -> Vec<(String, Vec<u8>)> {
        nodes.iter().map(|n| (n.id.clone(), std::fs::read(&n.file).unwrap())).collect()
    }

    #[test]
    fn the_same_config_gives_the_same_bytes_and_another_seed_does_not() {
        let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = read_all(&generate(a.path(), &small(1)).unwrap());
        let again = read_all(&generate(b.path(), &small(1)).unwrap());
        assert_eq!(first, again);
        let other = read_all(&generate(c.path(), &small(2)).unwrap());
        for ((id, x), (_, y)) in first.iter().zip(&other) {
            if id != STATISTICS_NODE_ID {
                assert_ne!(x, y, "{id}");
            }
        }
        assert_ne!(first.last().unwrap().1, other.last().unwrap().1, "population figures vary with the seed too");
    }

    #[test]
    fn more_courts_leave_the_first_ones_unchanged() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let one = generate(a.path(), &GenConfig { courts: 1, ..small(5) }).unwrap();
        let three = generate(b.path(), &small(5)).unwrap();
        assert_eq!(std::fs::read(&one[0].file).unwrap(), std::fs::read(&three[0].file).unwrap());
    }

    #[test]
    fn layout_ids_and_row_counts() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = small(3);
        let mut reports: Vec<(String, usize)> = Vec::new();
        let nodes =
            generate_with_progress(dir.path(), &cfg, &mut |id, rows| reports.push((id.to_string(), rows))).unwrap();
        let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["court-350203", "court-350205", "court-350206", "justice-3502", "stats-3502"]);
        for node in &nodes {
            assert_eq!(node.dir, dir.path().join(&node.id));
            assert_eq!(node.file, node.dir.join(format!("{}.csv", node.dataset)));
            assert!(node.file.is_file());
            let lines = std::fs::read_to_string(&node.file).unwrap().lines().count();
            assert_eq!(lines, node.rows + 1, "{}: header plus rows", node.id);
            assert_eq!(reports.iter().filter(|(id, _)| *id == node.id).map(|r| r.1).max(), Some(node.rows));
        }
        assert_eq!(nodes[0].kind, NodeKind::Court);
        assert_eq!(nodes[0].dataset, "cases");
        assert_eq!(nodes[0].rows, 2_000);
        assert_eq!(nodes[0].regions, ["350203"]);
        assert_eq!(nodes[0].court_code.as_deref(), Some("闽0203"));
        assert_eq!(nodes[1].court_code.as_deref(), Some("闽0205"));
        assert_eq!(nodes[3].kind, NodeKind::Justice);
        assert_eq!(nodes[3].dataset, "mediations");
        assert_eq!(nodes[3].rows, 3_000);
        assert_eq!(nodes[3].regions, ["350203", "350205", "350206"]);
        assert_eq!(nodes[3].court_code, None);
        assert_eq!(nodes[4].kind, NodeKind::Statistics);
        assert_eq!(nodes[4].dataset, "population");
        assert_eq!(nodes[4].rows, 3 * 7, "three regions, 2018–2024");
        let population = std::fs::read_to_string(&nodes[4].file).unwrap();
        assert!(
            population.starts_with("region_code,year,resident_pop,registered_floating_pop,hukou_pop\n350203,2018,")
        );
        assert!(
            population
                .lines()
                .skip(1)
                .all(|l| { l.split(',').all(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) })
        );
    }

    #[test]
    fn default_years_cover_population_from_2016() {
        let cfg = GenConfig::default();
        assert_eq!(
            (cfg.courts, cfg.cases_per_court, cfg.seed, cfg.from_year, cfg.to_year),
            (6, 20_000, 20240101, 2019, 2024)
        );
        assert_eq!(cfg.population_years(), (2016, 2024));
    }

    #[test]
    fn hundreds_of_courts_get_unique_dns_safe_ids() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = GenConfig { courts: 300, cases_per_court: 3, seed: 1, from_year: 2024, to_year: 2024 };
        let nodes = generate(dir.path(), &cfg).unwrap();
        assert_eq!(nodes.len(), 302);
        let mut ids = std::collections::HashSet::new();
        let mut court_codes = std::collections::HashSet::new();
        for node in &nodes {
            assert!(node.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{}", node.id);
            assert!(ids.insert(node.id.clone()));
            if let Some(code) = &node.court_code {
                assert!(court_codes.insert(code.clone()));
                assert_eq!(node.rows, 3);
            }
        }
        assert_eq!(nodes[300].rows, 450);
        assert_eq!(nodes[301].regions.len(), 300);
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let base = GenConfig::default();
        let cases = [
            (GenConfig { courts: 0, ..base.clone() }, "courts must be between 1 and"),
            (GenConfig { courts: MAX_COURTS + 1, ..base.clone() }, "courts must be between 1 and"),
            (GenConfig { cases_per_court: 0, ..base.clone() }, "cases_per_court must be between 1 and"),
            (GenConfig { from_year: 1999, ..base.clone() }, "from_year must be between 2000 and 2100, got 1999"),
            (GenConfig { to_year: 2101, ..base.clone() }, "to_year must be between 2000 and 2100, got 2101"),
            (
                GenConfig { from_year: 2024, to_year: 2023, ..base.clone() },
                "to_year (2023) must not be before from_year (2024)",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (cfg, expected) in cases {
            let err = generate(dir.path(), &cfg).unwrap_err();
            assert!(matches!(err, GenError::InvalidConfig(_)));
            let message = err.to_string();
            assert!(message.starts_with("invalid config: ") && message.contains(expected), "{message}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
        assert!(base.validate().is_ok());
    }

    #[test]
    fn an_unwritable_destination_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"not a folder").unwrap();
        let err = generate(&blocker, &GenConfig { courts: 1, cases_per_court: 1, ..GenConfig::default() }).unwrap_err();
        assert!(matches!(err, GenError::Io { .. }), "{err}");
        assert!(err.to_string().starts_with("cannot write "), "{err}");
    }
}
