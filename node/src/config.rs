//! Node configuration (TOML, unknown keys refused) and the node's local policy: the datasets it serves,
//! the highest grade it will compute over, and which gateways and agencies it answers. An empty list
//! answers nobody: a node never allows everything by default.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use shuzhu_policy::schema::Grade;

/// Paths of the node's TLS material.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation CA certificate (PEM).
    pub ca: PathBuf,
    /// This party's certificate (PEM).
    pub cert: PathBuf,
    /// This party's private key (PEM).
    pub key: PathBuf,
}

/// The node's own say over what it releases.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalPolicy {
    /// Gateway ids whose certificates this node answers.
    pub gateways: Vec<String>,
    /// Agencies the node answers for (`*` for every agency a listed gateway vouches for).
    pub agencies: Vec<String>,
    /// Datasets the node serves.
    pub datasets: Vec<String>,
    /// Highest grade of field the node computes over.
    #[serde(default = "default_grade")]
    pub max_grade: Grade,
    /// Personal fields kept raw at import (normally none; never served).
    #[serde(default)]
    pub keep_raw: Vec<String>,
}

fn default_grade() -> Grade {
    Grade::L2
}

/// A node's configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's id (`court-350203`); must match its certificate.
    pub node_id: String,
    /// Address to listen on, e.g. `127.0.0.1:7443`.
    pub listen: String,
    /// Directory of the node's store.
    pub store: PathBuf,
    /// File holding the pseudonymisation key (64+ hex digits). Never logged.
    pub pseudonym_key_file: PathBuf,
    /// TLS material.
    pub tls: TlsFiles,
    /// Local policy.
    pub policy: LocalPolicy,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
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

impl NodeConfig {
    /// Reads a config file; relative paths inside are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        let mut c: NodeConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: p.clone(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for f in [&mut c.store, &mut c.pseudonym_key_file, &mut c.tls.ca, &mut c.tls.cert, &mut c.tls.key] {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        c.check().map_err(|message| ConfigError::Invalid { path: p, message })?;
        Ok(c)
    }

    /// Checks values the types cannot.
    pub fn check(&self) -> Result<(), String> {
        if !shuzhu_net::is_valid_party_id(&self.node_id) {
            return Err(format!("node_id {:?} must be 1-63 characters of a-z, 0-9 and -", self.node_id));
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("listen {:?} is not an address like 127.0.0.1:7443", self.listen));
        }
        if self.policy.gateways.is_empty() {
            return Err("policy.gateways is empty: the node would answer nobody".into());
        }
        for d in &self.policy.datasets {
            if shuzhu_policy::schema::dataset(d).is_none() {
                return Err(format!("policy.datasets names unknown dataset {d:?}"));
            }
        }
        Ok(())
    }

    /// Reads the pseudonymisation key.
    pub fn pseudonym_key(&self) -> Result<shuzhu_policy::pseudonym::PseudonymKey, ConfigError> {
        let p = self.pseudonym_key_file.display().to_string();
        let text = std::fs::read_to_string(&self.pseudonym_key_file)
            .map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        shuzhu_policy::pseudonym::PseudonymKey::from_hex(&text)
            .map_err(|e| ConfigError::Invalid { path: p, message: e.to_string() })
    }
}
