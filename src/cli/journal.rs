//! `shuzhu node journal`: check a node's release journal (recompute its hash chain), export it
//! as JSON lines for an auditor's `shuzhu audit reconcile`, or repair a chain broken at its tail.

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
        /// Node configuration file (the journal is its `journal` directory).
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
    /// Cut a chain broken at its tail back to the records that verify, keeping a copy of the whole
    /// journal first. Shows what it would cut; cuts only with --yes. The node must be stopped.
    #[command(
        after_help = "Example:\n  shuzhu node journal repair --config node.toml          # shows what would be cut\n  shuzhu node journal repair --config node.toml --yes    # cuts it, keeping JOURNAL.broken-<time>\n\nThe records cut were released (the gateway's ledger may hold their receipts): keep the copy for\n`shuzhu audit reconcile --journal COPY`. Exit status: 0 when the journal verifies or was repaired,\n1 when something would be cut and --yes was not given, 2 when it cannot be repaired."
    )]
    Repair {
        /// Node configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Cut the broken tail (without it, only show what would be cut).
        #[arg(long)]
        yes: bool,
    },
}

fn journal_path(config: Option<PathBuf>, journal: Option<PathBuf>) -> Result<PathBuf> {
    match (config, journal) {
        (_, Some(j)) => Ok(j),
        (Some(c), None) => Ok(NodeConfig::load(&c)?.journal_to_read()),
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
            let path = NodeConfig::load(&config)?.journal_to_read();
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
        Command::Repair { config, yes } => repair(&NodeConfig::load(&config)?.journal_to_read(), yes),
    }
}

fn repair(dir: &std::path::Path, yes: bool) -> Result<ExitCode> {
    let plan = match journal::plan_repair(dir) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: journal {} cannot be read for repair: {e}", dir.display());
            return Ok(ExitCode::from(2));
        }
    };
    let Some(broken) = &plan.broken else {
        println!("ok: journal {} verifies ({} records); nothing to cut", dir.display(), plan.keep);
        if plan.torn_bytes > 0 {
            println!(
                "note: {} bytes of a partly written last record are dropped when the node next opens",
                plan.torn_bytes
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    println!("journal {}: the first {} records verify; {broken}", dir.display(), plan.keep);
    println!("records to cut ({}):", plan.cut.len());
    for c in &plan.cut {
        println!("  record {}: {}", c.position, c.summary);
    }
    if !yes {
        println!("nothing changed; run again with --yes to cut them (a copy of the whole journal is kept first)");
        return Ok(ExitCode::from(1));
    }
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let name = dir.file_name().map_or_else(|| "journal".into(), |n| n.to_string_lossy().into_owned());
    let backup = dir.with_file_name(format!("{name}.broken-{stamp}"));
    if let Err(e) = journal::repair(&plan, &backup) {
        eprintln!("error: journal {} not repaired: {e}", dir.display());
        return Ok(ExitCode::from(2));
    }
    println!(
        "repaired: cut {} records, {} kept; the whole journal as it was is in {}",
        plan.cut.len(),
        plan.keep,
        backup.display()
    );
    Ok(ExitCode::SUCCESS)
}
