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
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    parse(path, &text)
}

/// Parses and checks `text`, already read from `path` (relative paths inside resolve against the
/// file's directory; `path` is not opened again).
pub fn parse<T: ConfigFile>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let p = path.display().to_string();
    let mut c: T = toml::from_str(text).map_err(|e| ConfigError::Parse { path: p.clone(), message: e.to_string() })?;
    let base = path.parent().unwrap_or(Path::new("."));
    for f in c.paths() {
        if f.is_relative() {
            *f = base.join(&*f);
        }
    }
    c.check().map_err(|message| ConfigError::Invalid { path: p, message })?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        file: PathBuf,
        n: u32,
    }

    impl ConfigFile for Sample {
        fn paths(&mut self) -> Vec<&mut PathBuf> {
            vec![&mut self.file]
        }
        fn check(&self) -> Result<(), String> {
            if self.n > 0 { Ok(()) } else { Err("n must be positive".into()) }
        }
    }

    #[test]
    fn parse_resolves_paths_against_a_file_it_never_opens() {
        let path = Path::new("/nowhere/conf/x.toml");
        let s: Sample = parse(path, "file = \"k.pem\"\nn = 1").unwrap();
        assert_eq!(s.file, Path::new("/nowhere/conf/k.pem"));
        assert_eq!(s.n, 1);
        let bad = parse::<Sample>(path, "file = \"k\"\nn = 0").err().unwrap().to_string();
        assert!(bad.contains("/nowhere/conf/x.toml") && bad.contains("n must be positive"), "{bad}");
        let unknown = parse::<Sample>(path, "file = \"k\"\nn = 1\nm = 2").err().unwrap().to_string();
        assert!(unknown.contains("unknown field"), "{unknown}");
        assert!(matches!(load::<Sample>(path), Err(ConfigError::Read { .. })));
    }
}
