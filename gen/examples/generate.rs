//! Writes a data set and reports how long it took:
//! `cargo run --release -p shuzhu-gen --example generate -- OUT [COURTS] [CASES_PER_COURT] [SEED]`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        return Err("usage: generate OUT [COURTS] [CASES_PER_COURT] [SEED]".into());
    };
    let mut cfg = shuzhu_gen::GenConfig::default();
    if let Some(courts) = args.get(1) {
        cfg.courts = courts.parse()?;
    }
    if let Some(cases) = args.get(2) {
        cfg.cases_per_court = cases.parse()?;
    }
    if let Some(seed) = args.get(3) {
        cfg.seed = seed.parse()?;
    }
    let started = Instant::now();
    let nodes = shuzhu_gen::generate(std::path::Path::new(out), &cfg)?;
    let elapsed = started.elapsed();
    let cases: usize = nodes.iter().filter(|n| n.kind == shuzhu_gen::NodeKind::Court).map(|n| n.rows).sum();
    for node in &nodes {
        println!("{:<14} {:>10} rows  {}", node.id, node.rows, node.file.display());
    }
    println!("{cases} cases in {:.2} s ({:.0} cases/s)", elapsed.as_secs_f64(), cases as f64 / elapsed.as_secs_f64());
    Ok(())
}
