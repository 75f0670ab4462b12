//! Command-line definitions (clap derive) and dispatch. Each subcommand lives in its own file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod demo;
mod gateway;
mod generate;
mod indicators;
mod journal;
mod node;
mod pki;
mod policy;
mod query;
mod reconcile;
mod status;
mod token;

/// 数助 Shuzhu: a federated data-exchange gateway between courts and partner agencies.
///
/// Nodes keep each court's and agency's data at home and answer only with partial aggregates; the
/// gateway authenticates agencies, checks every query against the federation policy, fans it out over
/// mutual TLS, merges, suppresses small cells and records every request in a tamper-evident ledger.
#[derive(Parser, Debug)]
#[command(
    name = "shuzhu",
    version,
    after_help = "Start here:  shuzhu demo        (a whole federation on this machine)\nThen:        shuzhu query --demo ./demo --indicator closure_rate --group-by region,year --from 2023-01 --to 2024-12"
)]
pub struct Cli {
    /// A catalogue file (TOML, the shape of policy/catalogue.toml) whose measures and indicators are added
    /// to the built-in ones (a file without datasets extends the built-in catalogue); give the same file to
    /// every node, the gateway and the clients.
    #[arg(long, global = true)]
    catalogue: Option<PathBuf>,
    /// Log format on stderr: `text` for people, `json` (one object per line, with the request's span and
    /// its request id) for log collectors. Levels: RUST_LOG (default `info` for servers, `warn` otherwise).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a whole federation on this machine: data, PKI, tokens, nodes and gateway.
    #[command(
        after_help = "Examples:\n  shuzhu demo                      # generate data, start, print indicators, keep serving\n  shuzhu demo --once               # print and exit\n  shuzhu demo --data ./mydata      # one subfolder per node with cases.csv …\n  shuzhu demo --dir /tmp/fed --courts 3 --cases-per-court 5000"
    )]
    Demo(demo::Args),
    /// Generate deterministic synthetic data, one folder per node.
    #[command(
        after_help = "Examples:\n  shuzhu gen --out data\n  shuzhu gen --out data --courts 3 --cases-per-court 10000 --seed 7"
    )]
    Gen(generate::Args),
    /// Development PKI: a federation CA and party certificates.
    #[command(subcommand)]
    Pki(pki::Command),
    /// Development tokens signed with a local key.
    #[command(subcommand)]
    Token(token::Command),
    /// Run or feed a node.
    #[command(subcommand)]
    Node(node::Command),
    /// Run the gateway.
    #[command(subcommand)]
    Gateway(gateway::Command),
    /// Ask the gateway for an indicator.
    #[command(after_help = query::EXAMPLES)]
    Query(query::Args),
    /// List the indicators: Chinese name, formula and dimensions.
    #[command(after_help = indicators::EXAMPLES)]
    Indicators(indicators::Args),
    /// Read and verify the audit ledger.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Check a federation policy file, or explain the decision it gives a request.
    #[command(subcommand)]
    Policy(policy::Command),
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One line per event for people: time, level, spans, message, fields.
    Text,
    /// One JSON object per event: `timestamp`, `level`, `fields` (with `message`), `span` and `spans`.
    Json,
}

impl Cli {
    /// The log format asked for.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// Log level when `RUST_LOG` is not set: servers say what they do, tools stay quiet.
    pub fn default_log_filter(&self) -> &'static str {
        match &self.command {
            Command::Node(node::Command::Serve { .. }) | Command::Gateway(gateway::Command::Serve { .. }) => "info",
            _ => "warn",
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(path) = &cli.catalogue {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        // A file of only measures and indicators extends the built-in catalogue; one with datasets replaces it.
        let text =
            if text.contains("[[dataset]]") { text } else { format!("{}\n{text}", shuzhu_policy::catalogue::EMBEDDED) };
        let cat = shuzhu_policy::catalogue::Catalogue::parse(&text)?;
        shuzhu_policy::indicator::install(cat)?;
    }
    match cli.command {
        Command::Indicators(a) => indicators::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Gen(a) => generate::run(a),
        Command::Pki(c) => pki::run(c),
        Command::Token(c) => token::run(c),
        Command::Node(c) => node::run(c),
        Command::Gateway(c) => gateway::run(c),
        Command::Query(a) => query::run(a),
        Command::Audit(c) => audit::run(c),
        Command::Policy(c) => policy::run(c),
    }
}

/// An error chain as one line.
pub fn one_line(error: &anyhow::Error) -> String {
    error.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The stop signal, once for each of `n` listeners (the servers and the admin listener).
fn stop_signals(n: usize) -> Vec<impl std::future::Future<Output = ()> + Send + 'static> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = tx.send(true);
    });
    (0..n)
        .map(|_| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        })
        .collect()
}

/// A stop signal for a server.
type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// Binds the admin listener when `addr` is set and serves it with `serve` (`/metrics`, `/healthz`) until
/// the stop signal; returns the stop signal for the role's own server.
async fn admin_and_stop<Fut>(
    addr: Option<std::net::SocketAddr>,
    serve: impl FnOnce(tokio::net::TcpListener, Stop) -> Fut,
) -> anyhow::Result<Stop>
where
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    use anyhow::Context as _;
    let admin = shuzhu_net::admin::bind(addr)
        .await
        .with_context(|| format!("binding admin_listen {}", addr.map(|a| a.to_string()).unwrap_or_default()))?;
    let mut stops: Vec<Stop> = stop_signals(2).into_iter().map(|s| Box::pin(s) as Stop).collect();
    let (stop_admin, stop) = (stops.pop(), stops.pop());
    if let (Some(admin), Some(stop_admin)) = (admin, stop_admin) {
        tracing::info!(addr = %admin.local_addr()?, "admin listener: /metrics and /healthz");
        let serving = serve(admin, stop_admin);
        tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(%error, "admin listener stopped");
            }
        });
    }
    stop.ok_or_else(|| anyhow::anyhow!("no stop signal"))
}

/// Where the client finds the gateway: flags, or a demo directory's `demo.json`.
#[derive(clap::Args, Debug, Clone)]
struct Connection {
    /// Demo directory whose demo.json names gateway, CA and tokens.
    #[arg(long)]
    demo: Option<PathBuf>,
    /// Gateway address, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    gateway: Option<String>,
    /// Federation CA certificate (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// File holding the bearer token (JWT).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl Connection {
    /// Gateway URL, CA path and token, with `role` picking the demo token.
    fn resolve(&self, role: &str) -> anyhow::Result<(String, PathBuf, String)> {
        let demo: Option<serde_json::Value> = match &self.demo {
            Some(d) => {
                let p = d.join("demo.json");
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e} (is the demo running?)", p.display()))?;
                Some(serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)
            }
            None => None,
        };
        let from_demo =
            |ptr: &str| demo.as_ref().and_then(|d| d.pointer(ptr)).and_then(|v| v.as_str()).map(str::to_string);
        let gateway = self
            .gateway
            .clone()
            .or_else(|| from_demo("/gateway"))
            .ok_or_else(|| anyhow::anyhow!("--gateway (or --demo DIR) is required"))?;
        let ca = self
            .ca
            .clone()
            .or_else(|| from_demo("/ca").map(PathBuf::from))
            .ok_or_else(|| anyhow::anyhow!("--ca (or --demo DIR) is required"))?;
        let token_file = self
            .token_file
            .clone()
            .or_else(|| from_demo(&format!("/tokens/{role}")).map(PathBuf::from))
            .ok_or_else(|| anyhow::anyhow!("--token-file (or --demo DIR) is required"))?;
        Ok((gateway, ca, crate::client::read_token(&token_file)?))
    }
}
