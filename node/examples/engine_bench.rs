//! Node engine benchmark against DuckDB (run by `bench/node_vs_duckdb.sh`; not a test).
//!
//! `engine_bench import --csv FILE --store DIR` imports the cases CSV into a fresh node store (validation,
//! minimisation, sled, fsync) and prints rows per second.
//! `engine_bench load --csv FILE --store DIR` only loads the engine and prints resident bytes per case.
//! `engine_bench query --csv FILE --store DIR [--runs N] [--duckdb bench/duckdb_side.py]` loads the engine
//! from the store (resident bytes per case from /proc/self/status), starts the DuckDB side as a child
//! process (one DuckDB session), and for each query alternates one node run and one DuckDB run, N times;
//! it checks that every group's numerator and denominator agree and prints min/median times and ratios.
//!
//! The node timing covers what the node does to answer `Aggregate` apart from the network and TLS:
//! parsing the request's measures, dimensions and period, the aggregation, building the protobuf groups,
//! encoding them and digesting the release.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use shuzhu_node::engine::CaseTable;
use shuzhu_node::import::{ImportOptions, import_file};
use shuzhu_node::store::SledStore;
use shuzhu_policy::dimension::Dimension;
use shuzhu_policy::indicator::{indicator, measure};
use shuzhu_policy::period::Period;
use shuzhu_policy::pseudonym::PseudonymKey;

type Error = Box<dyn std::error::Error>;
/// (numerator, denominator) by (group label, time label).
type Answer = BTreeMap<(String, String), (i64, i64)>;

const QUERIES: &[(&str, &str)] = &[
    ("closure_rate", "region_year"),
    ("avg_trial_days", "region_year"),
    ("mediation_withdrawal_rate", "region_year"),
    ("closure_rate", "cause_month"),
    ("avg_trial_days", "cause_month"),
    ("mediation_withdrawal_rate", "cause_month"),
];

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn vm_rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}

/// A `kB` line of /proc/self/status, in bytes.
fn status_bytes(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let csv = PathBuf::from(arg(&args, "--csv").ok_or("--csv FILE is required")?);
    let store_dir = PathBuf::from(arg(&args, "--store").ok_or("--store DIR is required")?);
    match args.first().map(String::as_str) {
        Some("import") => import(&csv, &store_dir),
        Some("load") => load(&store_dir).map(|_| ()),
        Some("query") => {
            let runs: usize = arg(&args, "--runs").map_or(Ok(5), |r| r.parse())?;
            let side = arg(&args, "--duckdb").unwrap_or_else(|| "bench/duckdb_side.py".into());
            query(&csv, &store_dir, runs, &side)
        }
        _ => Err("usage: engine_bench import|load|query --csv FILE --store DIR [--runs N] [--duckdb SCRIPT]".into()),
    }
}

fn import(csv: &std::path::Path, dir: &std::path::Path) -> Result<(), Error> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let store = SledStore::open(dir)?;
    let key = PseudonymKey::from_bytes(&[7u8; 32])?;
    let started = Instant::now();
    let report = import_file(
        &store,
        csv,
        ImportOptions {
            dataset: "cases",
            key: &key,
            keep_raw: &[],
            minimise: Default::default(),
            progress: &mut |_| {},
        },
    )?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "import: {} rows read, {} imported, {} rejected in {:.2} s = {:.0} rows/s (validation, minimisation, sled, fsync); peak RSS {} MB",
        report.rows_read,
        report.imported,
        report.rejected_rows,
        secs,
        report.rows_read as f64 / secs,
        peak_rss_bytes() / 1_000_000
    );
    Ok(())
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// What the node does for one `Aggregate`, minus network and TLS; returns (numerator, denominator) by group.
fn node_answer(table: &CaseTable, ind: &str, grouping: &str) -> Result<Answer, Error> {
    let ind = indicator(ind).ok_or("unknown indicator")?;
    let ids = ind.measures();
    let measures: Vec<_> = ids.iter().map(|m| measure(m).ok_or("unknown measure")).collect::<Result<_, _>>()?;
    let dims: &[&str] = if grouping == "region_year" { &["region", "year"] } else { &["cause", "month"] };
    let group_by: Vec<Dimension> =
        dims.iter().map(|d| Dimension::parse(d).ok_or("dimension")).collect::<Result<_, _>>()?;
    let period = Period::from_wire(201901, 202412)?;
    let groups = table.aggregate(&measures, &group_by, period, &[])?;
    let (groups, digest) = shuzhu_node::service::release(groups, &ids)?;
    std::hint::black_box(digest);
    Ok(groups
        .into_iter()
        .map(|g| {
            let v: Vec<i64> = g.measures.iter().map(|m| m.value).collect();
            ((g.key[0].clone(), g.key[1].clone()), (v[0], v.get(1).copied().unwrap_or(0)))
        })
        .collect())
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
    (v[0], median)
}

fn query(csv: &std::path::Path, dir: &std::path::Path, runs: usize, side: &str) -> Result<(), Error> {
    let table = load(dir)?;
    query_loaded(&table, csv, runs, side)
}

/// Loads the engine from the store and prints its load time and resident memory per case.
fn load(dir: &std::path::Path) -> Result<CaseTable, Error> {
    let before = vm_rss_bytes();
    let started = Instant::now();
    let table = {
        let store = SledStore::open(dir)?;
        CaseTable::load(&store)?
    };
    let load_secs = started.elapsed().as_secs_f64();
    let after = vm_rss_bytes();
    println!(
        "after load: RssAnon {} MB, RssFile {} MB, VmHWM {} MB",
        status_bytes("RssAnon:") / 1_000_000,
        status_bytes("RssFile:") / 1_000_000,
        status_bytes("VmHWM:") / 1_000_000
    );
    let n = table.len().max(1) as f64;
    println!(
        "engine: {} cases loaded from sled in {:.2} s; RSS {} MB before, {} MB after (store closed): {:.1} resident bytes per case added ({:.1} per case for the whole process); columns + dictionaries {:.1} bytes per case",
        table.len(),
        load_secs,
        before / 1_000_000,
        after / 1_000_000,
        after.saturating_sub(before) as f64 / n,
        after as f64 / n,
        table.heap_bytes() as f64 / n
    );
    Ok(table)
}

fn query_loaded(table: &CaseTable, csv: &std::path::Path, runs: usize, side: &str) -> Result<(), Error> {
    let mut child = Command::new("python3").arg(side).arg(csv).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let mut to_duck = child.stdin.take().ok_or("no stdin")?;
    let mut from_duck = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    from_duck.read_line(&mut line)?;
    let loaded: serde_json::Value = serde_json::from_str(&line)?;
    println!(
        "duckdb {}: {} rows loaded from CSV in {:.2} s, threads = {}",
        loaded["version"],
        loaded["loaded"],
        loaded["seconds"].as_f64().unwrap_or(0.0),
        loaded["threads"]
    );

    println!();
    println!(
        "| query | groups | node min ms | node median ms | DuckDB min ms | DuckDB median ms | ratio (median) | ratio (min) | agree |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut all_agree = true;
    for (ind, grouping) in QUERIES {
        let (mut node_t, mut duck_t) = (Vec::new(), Vec::new());
        let mut agree = true;
        let mut groups = 0;
        for _ in 0..runs {
            let t0 = Instant::now();
            let node = node_answer(table, ind, grouping)?;
            node_t.push(t0.elapsed().as_secs_f64());

            writeln!(to_duck, "{}", serde_json::json!({ "query": format!("{ind}/{grouping}") }))?;
            line.clear();
            from_duck.read_line(&mut line)?;
            let answer: serde_json::Value = serde_json::from_str(&line)?;
            duck_t.push(answer["seconds"].as_f64().ok_or("no seconds")?);
            let mut duck = BTreeMap::new();
            for row in answer["rows"].as_array().ok_or("no rows")? {
                let k = (row[0].as_str().unwrap_or("").to_string(), row[1].as_str().unwrap_or("").to_string());
                duck.insert(k, (row[2].as_i64().unwrap_or(-1), row[3].as_i64().unwrap_or(-1)));
            }
            if node != duck {
                agree = false;
                let diff: Vec<_> = node.iter().filter(|(k, v)| duck.get(*k) != Some(*v)).take(3).collect();
                eprintln!(
                    "{ind}/{grouping}: node {} groups, DuckDB {}; first differences {diff:?}",
                    node.len(),
                    duck.len()
                );
            }
            groups = node.len();
        }
        all_agree &= agree;
        let ((nmin, nmed), (dmin, dmed)) = (stats(node_t), stats(duck_t));
        println!(
            "| {ind} by {} | {groups} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {} |",
            grouping.replace('_', " × "),
            nmin * 1e3,
            nmed * 1e3,
            dmin * 1e3,
            dmed * 1e3,
            nmed / dmed,
            nmin / dmin,
            if agree { "yes" } else { "NO" }
        );
    }
    drop(to_duck);
    child.wait()?;
    if !all_agree {
        return Err("node and DuckDB disagree".into());
    }
    Ok(())
}
