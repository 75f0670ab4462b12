//! Node configuration (TOML, unknown keys refused) and the node's local policy: the datasets it serves,
//! the highest grade it will compute over, and which gateways and agencies it answers. An empty list
//! answers nobody: a node never allows everything by default.

use std::path::{Path, PathBuf};

pub use shuzhu_net::config::ConfigError;
use shuzhu_net::config::ConfigFile;
pub use shuzhu_net::config::TlsFiles;

use serde::Deserialize;
use shuzhu_policy::schema::Grade;

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

impl NodeConfig {
    /// Reads a config file; relative paths inside are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        shuzhu_net::config::load(path)
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

impl ConfigFile for NodeConfig {
    fn paths(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.store, &mut self.pseudonym_key_file, &mut self.tls.ca, &mut self.tls.cert, &mut self.tls.key]
    }

    /// Checks values the types cannot.
    fn check(&self) -> Result<(), String> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
node_id = "court-350203"
listen = "127.0.0.1:7443"
store = "store"
pseudonym_key_file = "k"
[tls]
ca = "ca.pem"
cert = "c.pem"
key = "c.key"
[policy]
gateways = ["gw-1"]
agencies = ["*"]
datasets = ["cases"]
"#;

    fn load_text(text: &str) -> Result<NodeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, text).unwrap();
        NodeConfig::load(&p)
    }

    #[test]
    fn a_good_config_loads_with_paths_resolved() {
        let c = load_text(GOOD).unwrap();
        assert!(c.store.is_absolute());
        assert_eq!(c.policy.max_grade, Grade::L2);
    }

    #[test]
    fn bad_configs_name_the_key() {
        let unknown = GOOD.replace("[policy]", "[policy]\nallow_everything = true");
        assert!(load_text(&unknown).unwrap_err().to_string().contains("allow_everything"));
        let no_gateways = GOOD.replace(r#"gateways = ["gw-1"]"#, "gateways = []");
        assert!(load_text(&no_gateways).unwrap_err().to_string().contains("policy.gateways"));
        let bad_id = GOOD.replace("court-350203", "Court 1");
        assert!(load_text(&bad_id).unwrap_err().to_string().contains("node_id"));
        let bad_grade = GOOD.replace("[policy]", "[policy]\nmax_grade = \"L9\"");
        assert!(load_text(&bad_grade).unwrap_err().to_string().contains("max_grade"));
    }
}
