//! Gateway configuration (TOML, unknown keys refused, relative paths resolved against the file).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::{AuthPolicy, JwtAlgorithm};

/// Paths of the gateway's TLS material.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation CA certificate (PEM): nodes' certificates must chain to it.
    pub ca: PathBuf,
    /// The gateway's certificate (PEM), presented to requesters and, as client certificate, to nodes.
    pub cert: PathBuf,
    /// The gateway's private key (PEM).
    pub key: PathBuf,
}

/// A trusted token issuer as configured.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
    /// Required `aud` value.
    pub audience: String,
    /// `EdDSA` or `ES256`.
    pub algorithm: JwtAlgorithm,
    /// Path of the issuer's public key (SPKI PEM).
    pub public_key: PathBuf,
}

/// A node the gateway may ask.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// Node id; its certificate must name it.
    pub id: String,
    /// `https://host:port`.
    pub address: String,
    /// Datasets it serves.
    pub datasets: Vec<String>,
    /// District codes it serves (for planning and for marking partial rows).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Court codes it serves.
    #[serde(default)]
    pub courts: Vec<String>,
}

/// The gateway's configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Gateway id; its certificate must name it.
    pub gateway_id: String,
    /// Address requesters connect to.
    pub listen: String,
    /// The federation policy file.
    pub policy: PathBuf,
    /// Directory of the audit ledger.
    pub ledger_dir: PathBuf,
    /// Deadline of each node call, in milliseconds (shorter than the gateway's own).
    #[serde(default = "default_node_timeout")]
    pub node_timeout_ms: u64,
    /// Token limits.
    #[serde(default)]
    pub auth: AuthPolicy,
    /// TLS material.
    pub tls: TlsFiles,
    /// Trusted issuers.
    #[serde(rename = "issuer")]
    pub issuers: Vec<IssuerConfig>,
    /// Nodes.
    #[serde(rename = "node", default)]
    pub nodes: Vec<NodeEntry>,
}

fn default_node_timeout() -> u64 {
    5_000
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped keys (the message names line and key).
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What toml said.
        message: String,
    },
    /// A value breaks a rule.
    #[error("config {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl GatewayConfig {
    /// Reads a config file; relative paths inside are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        let mut c: GatewayConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: p.clone(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut paths: Vec<&mut PathBuf> =
            vec![&mut c.policy, &mut c.ledger_dir, &mut c.tls.ca, &mut c.tls.cert, &mut c.tls.key];
        paths.extend(c.issuers.iter_mut().map(|i| &mut i.public_key));
        for f in paths {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        c.check().map_err(|message| ConfigError::Invalid { path: p, message })?;
        Ok(c)
    }

    /// Checks values the types cannot.
    pub fn check(&self) -> Result<(), String> {
        if !shuzhu_net::is_valid_party_id(&self.gateway_id) {
            return Err(format!("gateway_id {:?} must be 1-63 characters of a-z, 0-9 and -", self.gateway_id));
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("listen {:?} is not an address like 127.0.0.1:8443", self.listen));
        }
        if self.issuers.is_empty() {
            return Err("no [[issuer]]: nobody could authenticate".into());
        }
        if !(100..=120_000).contains(&self.node_timeout_ms) {
            return Err(format!("node_timeout_ms {} is outside 100..=120000", self.node_timeout_ms));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !shuzhu_net::is_valid_party_id(&n.id) {
                return Err(format!("node[{i}].id {:?} must be 1-63 characters of a-z, 0-9 and -", n.id));
            }
            if !n.address.starts_with("https://") {
                return Err(format!("node[{i}].address {:?} must start with https:// (no plaintext mode)", n.address));
            }
            if self.nodes.iter().filter(|m| m.id == n.id).count() > 1 {
                return Err(format!("node id {:?} appears twice", n.id));
            }
            for d in &n.datasets {
                if shuzhu_policy::schema::dataset(d).is_none() {
                    return Err(format!("node[{i}] names unknown dataset {d:?}"));
                }
            }
        }
        Ok(())
    }
}
