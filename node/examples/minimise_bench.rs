//! The CPU cost of validation and minimisation alone, on one thread, over a cases CSV (as `shuzhu gen`
//! writes it), and optionally a dump of every minimised record, so that two builds can be compared
//! record for record:
//!
//! `cargo run --release -p shuzhu-node --example minimise_bench -- FILE.csv [ROWS] [--dump OUT]`
//!
//! Prints rows, CPU seconds of this thread's work (wall time of a single-threaded loop) and µs per row
//! for: CSV parsing + UTF-8, validation, minimisation, encoding.

use std::io::Write;
use std::time::{Duration, Instant};

use shuzhu_node::record::validate;
use shuzhu_policy::pseudonym::PseudonymKey;
use shuzhu_policy::schema::CASES;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = args.first().ok_or("usage: minimise_bench FILE.csv [ROWS] [--dump OUT]")?;
    let limit: usize = args.get(1).filter(|a| !a.starts_with("--")).map_or(Ok(usize::MAX), |a| a.parse())?;
    let dump = args.iter().position(|a| a == "--dump").and_then(|i| args.get(i + 1));
    let mut out = dump.map(std::fs::File::create).transpose()?.map(std::io::BufWriter::new);
    let key = PseudonymKey::from_bytes(&[7u8; 32])?;

    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_path(file)?;
    let headers = rdr.headers()?.clone();
    let columns: Vec<usize> = CASES
        .fields
        .iter()
        .map(|f| headers.iter().position(|h| h == f.name).ok_or(format!("no column {}", f.name)))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    while rows.len() < limit && rdr.read_byte_record(&mut record)? {
        rows.push(record.clone());
    }
    let (mut t_validate, mut t_minimise, mut t_encode) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut bytes = 0usize;
    let mut bad = 0usize;
    let started = Instant::now();
    for rec in &rows {
        let t0 = Instant::now();
        let cells: Vec<&str> = columns.iter().map(|&c| std::str::from_utf8(&rec[c]).unwrap_or("")).collect();
        let Ok(v) = validate(&CASES, &cells) else {
            bad += 1;
            continue;
        };
        let t1 = Instant::now();
        let r = v.minimise(&CASES, &key, &[]);
        let t2 = Instant::now();
        let enc = postcard::to_allocvec(&r)?;
        let t3 = Instant::now();
        bytes += enc.len();
        t_validate += t1 - t0;
        t_minimise += t2 - t1;
        t_encode += t3 - t2;
        if let Some(o) = out.as_mut() {
            writeln!(o, "{:?}", r.values)?;
        }
    }
    let total = started.elapsed();
    let n = rows.len().max(1) as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!(
        "{} rows ({bad} refused), {bytes} bytes encoded: {:.2} µs/row in all; validate {:.2}, minimise {:.2}, encode {:.2}",
        rows.len(),
        us(total),
        us(t_validate),
        us(t_minimise),
        us(t_encode)
    );
    Ok(())
}
