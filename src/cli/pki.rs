//! `shuzhu pki`: development federation CA and certificates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use shuzhu_net::Role;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Create a CA and certificates for a gateway and nodes.
    #[command(
        after_help = "Example:\n  shuzhu pki init --dir pki --gateway gw-xiamen --node court-350203 --node court-350213"
    )]
    Init {
        /// Output folder.
        #[arg(long)]
        dir: PathBuf,
        /// Gateway id.
        #[arg(long)]
        gateway: String,
        /// Node ids (repeatable).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Replace an existing PKI in the folder.
        #[arg(long)]
        force: bool,
    },
    /// Issue one more certificate from an existing CA.
    #[command(after_help = "Example:\n  shuzhu pki issue --dir pki --role node --id court-350205")]
    Issue {
        /// Folder holding ca.pem and ca.key.
        #[arg(long)]
        dir: PathBuf,
        /// `gateway` or `node`.
        #[arg(long)]
        role: String,
        /// Party id.
        #[arg(long)]
        id: String,
    },
}

pub(crate) fn run(c: Command) -> Result<ExitCode> {
    match c {
        Command::Init { dir, gateway, nodes, force } => {
            let layout = crate::pki::init(&dir, &gateway, &nodes, force)?;
            println!("CA certificate: {}", layout.ca_cert.display());
            println!("CA key:         {} (keep it offline)", layout.ca_key.display());
            let (c, k) = layout.party(Role::Gateway, &gateway);
            println!("gateway {gateway}: {} {}", c.display(), k.display());
            for n in &nodes {
                let (c, k) = layout.party(Role::Node, n);
                let (jk, jp) = layout.journal_key(n);
                println!("node {n}: {} {} (receipt key {} {})", c.display(), k.display(), jk.display(), jp.display());
            }
        }
        Command::Issue { dir, role, id } => {
            let role = match role.as_str() {
                "gateway" => Role::Gateway,
                "node" => Role::Node,
                other => anyhow::bail!("role {other:?} must be gateway or node"),
            };
            let (c, k) = crate::pki::issue(&crate::pki::PkiLayout::at(&dir), role, &id)?;
            println!("{} {}", c.display(), k.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
