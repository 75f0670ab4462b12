//! `shuzhu node`: import data into a node's store, or serve it to the gateway.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use shuzhu_node::config::NodeConfig;
use shuzhu_node::import::{ImportOptions, InputEncoding, import_file_with};
use shuzhu_node::service::NodeState;
use shuzhu_node::store::SledStore;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Validate, minimise and durably store a CSV file.
    #[command(
        after_help = "Example:\n  shuzhu node import --config node.toml --dataset cases data/court-350203/cases.csv\n\nBad rows are listed in the quarantine report (line, field, reason) and never stop the good ones.\nRe-importing the same file changes nothing. Stop the node before importing: the store is locked while it\nserves, and an import is refused with the serving process's pid."
    )]
    Import {
        /// Node configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Dataset: cases, mediations or population.
        #[arg(long)]
        dataset: String,
        /// Quarantine report (default: FILE.quarantine.csv).
        #[arg(long)]
        report: Option<PathBuf>,
        /// The file's character encoding: auto (UTF-8 with or without a byte-order mark when its start is
        /// UTF-8, otherwise GB18030), utf-8, gb18030 or gbk (what Excel writes on a Chinese Windows).
        #[arg(long, default_value = "auto", value_parser = parse_encoding)]
        encoding: InputEncoding,
        /// The CSV file.
        file: PathBuf,
    },
    /// Check or export the node's release journal.
    #[command(subcommand)]
    Journal(super::journal::Command),
    /// Check the `[source]` database: connection, mapping, column types, row counts, rows excluded by
    /// reason and the data span (no value of the database is shown).
    #[command(
        after_help = "Example:\n  shuzhu node check-source --config node.toml\n\nExits 0 when the mapping is sound, 3 when rows would be excluded, 1 on an error."
    )]
    CheckSource {
        /// Node configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// What the node holds: datasets, rows, data span, store size, journal length and head, last
    /// release, certificate expiry. Reads beside a running node without disturbing it.
    #[command(after_help = "Example:\n  shuzhu node status --config node.toml --format json")]
    Status {
        /// Node configuration file.
        #[arg(long)]
        config: PathBuf,
        /// `text` or `json`.
        #[arg(long, value_enum, default_value_t = super::status::Format::Text)]
        format: super::status::Format,
    },
    /// Serve partial aggregates to the configured gateways over mutual TLS.
    #[command(after_help = "Example:\n  shuzhu node serve --config node.toml")]
    Serve {
        /// Node configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Serve even a new or empty store (a node being set up); otherwise it is refused, since a
        /// mistyped `store` path would serve nothing (config: `allow_empty = true`).
        #[arg(long)]
        allow_empty: bool,
    },
}

pub(crate) fn run(c: Command) -> Result<ExitCode> {
    match c {
        Command::Journal(j) => return super::journal::run(j),
        Command::Import { config, dataset, report, encoding, file } => {
            let config = NodeConfig::load(&config)?;
            let key = config.pseudonym_key()?;
            let store = SledStore::open(&config.store)?;
            // A progress bar on a terminal only: piped or logged, stderr gets nothing but errors.
            let bar = if std::io::stderr().is_terminal() {
                indicatif::ProgressBar::new_spinner()
            } else {
                indicatif::ProgressBar::hidden()
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed} read {human_pos} rows ({per_sec})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            let mut progress = |n: u64| bar.set_position(n);
            let r = import_file_with(
                &store,
                &file,
                encoding,
                ImportOptions {
                    dataset: &dataset,
                    key: &key,
                    keep_raw: &config.policy.keep_raw,
                    minimise: config.minimise,
                    progress: &mut progress,
                },
            );
            bar.finish_and_clear();
            let r = r?;
            let rate = r.rows_read as f64 / r.elapsed.as_secs_f64().max(1e-9);
            println!(
                "{}: read {} rows ({}), imported {}, refused {} ({:.0} rows/s); {} records stored, durable",
                r.dataset, r.rows_read, r.encoding, r.imported, r.rejected_rows, rate, r.total_records
            );
            if !r.minimise_dropped.is_empty() {
                println!(
                    "[minimise] turned off the minimised form of {}: dropped from these rows",
                    r.minimise_dropped.join(", ")
                );
            }
            if !r.quarantine.is_empty() {
                let path = report.unwrap_or_else(|| PathBuf::from(format!("{}.quarantine.csv", file.display())));
                std::fs::write(&path, r.quarantine_csv()).with_context(|| format!("writing {}", path.display()))?;
                println!("quarantine report: {} ({} problems)", path.display(), r.quarantine.len());
                for q in r.quarantine.iter().take(5) {
                    println!("  line {}: {} {}", q.line, q.field, q.reason);
                }
                return Ok(ExitCode::from(3));
            }
        }
        Command::CheckSource { config } => return check_source(&config),
        Command::Status { config, format } => return super::status::node(&config, format),
        Command::Serve { config, allow_empty } => {
            let mut config = NodeConfig::load(&config)?;
            config.allow_empty |= allow_empty;
            shuzhu_net::install_crypto_provider();
            let rt = super::runtime()?;
            rt.block_on(async {
                let state = Arc::new(tokio::task::block_in_place(|| NodeState::open(&config))?);
                let listener = tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
                let stop = super::admin_and_stop(config.admin_listen, |listener, stop| {
                    shuzhu_node::ops::serve_admin(Arc::clone(&state), listener, stop)
                })
                .await?;
                tracing::info!(node = %config.node_id, addr = %listener.local_addr()?, cases = state.cases(), "node serving over mutual TLS");
                shuzhu_node::service::serve(&config, state, listener, stop).await?;
                tracing::info!("node stopped");
                anyhow::Ok(())
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_source(config: &std::path::Path) -> Result<ExitCode> {
    let config = NodeConfig::load(config)?;
    let source = &config.data_source;
    if source.kind == shuzhu_node::source::config::SourceKind::Store {
        println!("source: store (the node answers from its own store; nothing to check)");
        return Ok(ExitCode::SUCCESS);
    }
    shuzhu_net::install_crypto_provider();
    let rt = super::runtime()?;
    let (version, reports) = rt.block_on(shuzhu_node::source::postgres::check(source))?;
    println!(
        "source: postgres {version}, reached{}, read-only session",
        if source.tls { " over TLS (server certificate verified)" } else { " without TLS" }
    );
    let mut excluded_any = false;
    for r in reports {
        let f = &r.facts;
        println!("{} ← {}", f.dataset, r.relation);
        for (field, column, kind) in &r.columns {
            println!("  {field:<20} ← {column} ({kind})");
        }
        println!("  rows: {}, accepted: {}, excluded: {}", f.rows, f.accepted, f.rows.saturating_sub(f.accepted));
        for (reason, n) in &r.excluded {
            println!("    excluded {n:>8}  {reason}");
        }
        excluded_any |= f.rows > f.accepted;
        println!(
            "  data span: {} .. {}",
            f.data_from.as_deref().unwrap_or("(none)"),
            f.data_until.as_deref().unwrap_or("(none)")
        );
        println!("  regions: {}", f.regions.join(" "));
        if !f.courts.is_empty() {
            println!("  courts: {}", f.courts.join(" "));
        }
    }
    println!(
        "personal (L4) columns and case or staff identifiers are never read; rows with an invalid ID number are not detected without them"
    );
    Ok(if excluded_any { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

/// Parses `--encoding`.
fn parse_encoding(name: &str) -> Result<InputEncoding, String> {
    InputEncoding::parse(name).ok_or_else(|| format!("unknown encoding {name:?}; use auto, utf-8, gb18030 or gbk"))
}
