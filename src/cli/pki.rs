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
    #[command(
        after_help = "Examples:\n  shuzhu pki issue --dir pki --role node --id court-350205\n  shuzhu pki issue --dir pki --role node --id court-350205 --days 365 --rotate-receipt-key\n\nRenewing a node's certificate keeps its receipt key unless --rotate-receipt-key is given.\nThe serial printed is what a gateway's deny_serials lists to refuse this certificate."
    )]
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
        /// Days the certificate is valid (default two years).
        #[arg(long, default_value_t = crate::pki::DEFAULT_DAYS)]
        days: u32,
        /// Also replace the node's receipt signing key (then give the gateway the new NODE.journal.pub
        /// as that node's receipt_key_file). Without it an existing receipt key is kept.
        #[arg(long)]
        rotate_receipt_key: bool,
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
        Command::Issue { dir, role, id, days, rotate_receipt_key } => {
            let role = match role.as_str() {
                "gateway" => Role::Gateway,
                "node" => Role::Node,
                other => anyhow::bail!("role {other:?} must be gateway or node"),
            };
            if rotate_receipt_key && role != Role::Node {
                anyhow::bail!("--rotate-receipt-key applies to nodes only");
            }
            let layout = crate::pki::PkiLayout::at(&dir);
            let opts = crate::pki::IssueOptions { days, rotate_receipt_key };
            let issued = crate::pki::issue_with(&layout, role, &id, opts)?;
            println!("{} {}", issued.cert.display(), issued.key.display());
            println!("serial {} valid until {}", issued.serial, issued.not_after);
            if role == Role::Node {
                let (_, jpub) = layout.journal_key(&id);
                if issued.new_receipt_key {
                    println!(
                        "new receipt key {}: give it to the gateway as receipt_key_file of node {id}",
                        jpub.display()
                    );
                } else {
                    println!("receipt key kept: {} (pass --rotate-receipt-key to replace it)", jpub.display());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
