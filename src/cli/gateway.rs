//! `shuzhu gateway serve`: the gateway for requesters and auditors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use shuzhu_gateway::config::GatewayConfig;
use shuzhu_gateway::state::GatewayState;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Serve Gateway and Audit over TLS; ask nodes over mutual TLS.
    #[command(after_help = "Example:\n  shuzhu gateway serve --config gateway.toml")]
    Serve {
        /// Gateway configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// What the gateway holds: its nodes and their health, ledger size, checkpoint age, release-ledger
    /// size, today's quota use, certificate expiry. Reads beside a running gateway without disturbing it.
    #[command(after_help = "Example:\n  shuzhu gateway status --config gateway.toml --format json")]
    Status {
        /// Gateway configuration file.
        #[arg(long)]
        config: PathBuf,
        /// `text` or `json`.
        #[arg(long, value_enum, default_value_t = super::status::Format::Text)]
        format: super::status::Format,
    },
}

pub(crate) fn run(c: Command) -> Result<ExitCode> {
    let config = match c {
        Command::Serve { config } => config,
        Command::Status { config, format } => return super::status::gateway(&config, format),
    };
    let config = GatewayConfig::load(&config)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let state = Arc::new(GatewayState::open(&config)?);
        let tls = shuzhu_net::tls_server(&config.tls.cert, &config.tls.key)?;
        let listener = tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let http_listener = match config.http_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding http_listen {addr}"))?),
            None => None,
        };
        let stop = super::admin_and_stop(config.admin_listen, |listener, stop| {
            shuzhu_gateway::ops::serve_admin(Arc::clone(&state), listener, stop)
        })
        .await?;
        tracing::info!(gateway = %config.gateway_id, addr = %listener.local_addr()?, nodes = config.nodes.len(), ledger_entries = state.ledger.len(), "gateway serving");
        shuzhu_gateway::serve(state, tls, listener, http_listener, stop).await?;
        tracing::info!("gateway stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
