//! `shuzhu node journal`: check a node's release journal (recompute its hash chain) or export it
//! as JSON lines for an auditor's `shuzhu audit reconcile`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use shuzhu_node::config::NodeConfig;
use shuzhu_node::journal;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Recompute the journal's hash chain and count its releases and refusals.
    #[command(
        after_help = "Examples:\n  shuzhu node journal verify --config node.toml\n  shuzhu node journal verify --journal journal.jsonl\n\nExit status: 0 when the chain verifies, 2 when it does not."
    )]
    Verify {
        /// Node configuration file (the journal is STORE/journal).
        #[arg(long, required_unless_present = "journal", conflicts_with = "journal")]
        config: Option<PathBuf>,
        /// A journal directory, a node store directory or an export file instead.
        #[arg(long)]
        journal: Option<PathBuf>,
    },
    /// Write every record, one canonical JSON line each (what the chain hashes), after checking it.
    #[command(
        after_help = "Example:\n  shuzhu node journal export --config node.toml --out court-350203.journal.jsonl"
    )]
    Export {
        /// Node configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn journal_path(config: Option<PathBuf>, journal: Option<PathBuf>) -> Result<PathBuf> {
    match (config, journal) {
        (_, Some(j)) => Ok(j),
        (Some(c), None) => Ok(NodeConfig::load(&c)?.journal_dir()),
        (None, None) => anyhow::bail!("give --config or --journal"),
    }
}

pub(crate) fn run(c: Command) -> Result<ExitCode> {
    match c {
        Command::Verify { config, journal } => {
            let path = journal_path(config, journal)?;
            match journal::load(&path) {
                Ok((_, report)) => {
                    println!(
                        "ok: {} records ({} releases, {} refusals), chain verified, head {}",
                        report.records, report.releases, report.refusals, report.head
                    );
                    if report.torn_bytes > 0 {
                        println!(
                            "note: {} bytes of a partly written last record skipped (the node truncates them when it next opens)",
                            report.torn_bytes
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: journal {} does not verify: {e}", path.display());
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Export { config, out } => {
            let path = NodeConfig::load(&config)?.journal_dir();
            let n = match &out {
                Some(file) => {
                    let mut f = std::io::BufWriter::new(
                        std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?,
                    );
                    let n = journal::export(&path, &mut f)?;
                    f.flush()?;
                    n
                }
                None => journal::export(&path, std::io::stdout().lock())?,
            };
            if let Some(file) = out {
                println!("{n} records written to {}", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
