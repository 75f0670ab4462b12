//! Loading a party's TOML configuration file: read, parse with unknown keys refused by the caller's
//! `serde(deny_unknown_fields)` types, resolve relative paths against the file, and report every
//! problem with the file's path.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Paths of a party's TLS material, as every configuration file names them under `[tls]`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation CA certificate (PEM).
    pub ca: PathBuf,
    /// This party's certificate (PEM).
    pub cert: PathBuf,
    /// This party's private key (PEM).
    pub key: PathBuf,
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

/// A configuration type: its relative paths and its own checks.
pub trait ConfigFile: DeserializeOwned {
    /// Every path in the configuration, to be resolved against the file's directory.
    fn paths(&mut self) -> Vec<&mut PathBuf>;
    /// Checks values the types cannot; the message names the key.
    fn check(&self) -> Result<(), String>;
}

/// Reads, parses and checks the configuration at `path`.
pub fn load<T: ConfigFile>(path: &Path) -> Result<T, ConfigError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
    let mut c: T = toml::from_str(&text).map_err(|e| ConfigError::Parse { path: p.clone(), message: e.to_string() })?;
    let base = path.parent().unwrap_or(Path::new("."));
    for f in c.paths() {
        if f.is_relative() {
            *f = base.join(&*f);
        }
    }
    c.check().map_err(|message| ConfigError::Invalid { path: p, message })?;
    Ok(c)
}
