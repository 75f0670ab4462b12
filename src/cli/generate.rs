//! `shuzhu gen`: deterministic synthetic data in the federation's CSV formats.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// Arguments of `shuzhu gen`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Output folder (one subfolder per node).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

/// What to generate (shared with `demo`).
#[derive(clap::Args, Debug)]
pub(crate) struct DataArgs {
    /// Number of basic courts (Xiamen's six districts first).
    #[arg(long, default_value_t = 6)]
    courts: usize,
    /// Cases per court.
    #[arg(long, default_value_t = 20_000)]
    cases_per_court: usize,
    /// Random seed; the same seed gives byte-identical files.
    #[arg(long, default_value_t = 20240101)]
    seed: u64,
}

impl DataArgs {
    /// The generator's configuration.
    pub(crate) fn config(&self) -> shuzhu_gen::GenConfig {
        shuzhu_gen::GenConfig {
            courts: self.courts,
            cases_per_court: self.cases_per_court,
            seed: self.seed,
            ..Default::default()
        }
    }
}

pub(crate) fn run(a: Args) -> Result<ExitCode> {
    let nodes = shuzhu_gen::generate(&a.out, &a.data.config())?;
    for n in &nodes {
        println!("{:<16} {:<11} {:>9} rows  {}", n.id, n.dataset, n.rows, n.file.display());
    }
    Ok(ExitCode::SUCCESS)
}
