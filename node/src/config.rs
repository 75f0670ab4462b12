//! Node configuration (TOML, unknown keys refused) and the node's local policy: the datasets it serves,
//! the highest grade it will compute over, its own threshold, and which gateways it answers and for
//! which agencies (per gateway where it says so). An empty list answers nobody: a node never allows
//! everything by default. The local policy has its own version (a hash of its canonical form) and is
//! reloaded without downtime when the config file changes or the node gets SIGHUP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use shuzhu_net::config::ConfigError;
use shuzhu_net::config::ConfigFile;
pub use shuzhu_net::config::TlsFiles;

use serde::{Deserialize, Serialize};
use shuzhu_policy::disclosure::MIN_THRESHOLD;
use shuzhu_policy::grant::VersionCache;
use shuzhu_policy::schema::Grade;

/// The node's own say over what it releases.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocalPolicy {
    /// Gateway ids whose certificates this node answers.
    pub gateways: Vec<String>,
    /// Agencies the node answers for (`*` for every agency a listed gateway vouches for).
    pub agencies: Vec<String>,
    /// Per gateway, the agencies the node answers for when that gateway asks (replaces `agencies`
    /// for that gateway).
    #[serde(default)]
    pub agencies_by_gateway: BTreeMap<String, Vec<String>>,
    /// Datasets the node serves.
    pub datasets: Vec<String>,
    /// Highest grade of field the node computes over.
    #[serde(default = "default_grade")]
    pub max_grade: Grade,
    /// The node's own threshold k (never below 5): it refuses any request whose threshold is lower.
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// Personal fields kept raw at import (normally none; never served).
    #[serde(default)]
    pub keep_raw: Vec<String>,
    /// The version, hashed on first use and kept (an empty cache in a clone).
    #[serde(skip)]
    version_cache: VersionCache,
}

fn default_shutdown_grace_secs() -> u64 {
    30
}

fn default_grade() -> Grade {
    Grade::L2
}

fn default_threshold() -> u32 {
    MIN_THRESHOLD
}

impl LocalPolicy {
    /// Every rule the local policy breaks.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.gateways.is_empty() {
            out.push("policy.gateways is empty: the node would answer nobody".into());
        }
        for d in &self.datasets {
            if shuzhu_policy::schema::dataset(d).is_none() {
                out.push(format!("policy.datasets names unknown dataset {d:?}"));
            }
        }
        if self.threshold < MIN_THRESHOLD {
            out.push(format!("policy.threshold {} is below the minimum {MIN_THRESHOLD}", self.threshold));
        }
        for g in self.agencies_by_gateway.keys() {
            if !self.gateways.contains(g) {
                out.push(format!("policy.agencies_by_gateway names {g:?}, which is not in policy.gateways"));
            }
        }
        out
    }

    /// The agencies the node answers for when `gateway` asks.
    pub fn agencies_for(&self, gateway: &str) -> &[String] {
        self.agencies_by_gateway.get(gateway).unwrap_or(&self.agencies)
    }

    /// Whether the node answers `gateway` asking for `agency`.
    pub fn answers(&self, gateway: &str, agency: &str) -> bool {
        self.gateways.iter().any(|g| g == gateway) && self.agencies_for(gateway).iter().any(|a| a == "*" || a == agency)
    }

    /// The local policy version: the first 16 hex digits of SHA-256 over the canonical (JSON) form,
    /// hashed once per policy (asked for on every `Aggregate`). A policy is not changed once its version
    /// has been read: a reload builds a new one.
    pub fn version(&self) -> String {
        self.version_cache.get_or_compute(|| self.hash_version())
    }

    fn hash_version(&self) -> String {
        // Serialising plain structs of strings, vectors and maps cannot fail.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&ring::digest::digest(&ring::digest::SHA256, &canonical).as_ref()[..8])
    }
}

/// A node's configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's id (`court-350203`); must match its certificate.
    pub node_id: String,
    /// Address to listen on, e.g. `127.0.0.1:7443`.
    pub listen: String,
    /// Address of the admin listener (plain HTTP: `GET /metrics` in the Prometheus text format, `GET
    /// /healthz` for readiness), e.g. `127.0.0.1:9465`; off when absent. Keep it on loopback.
    #[serde(default)]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// On SIGTERM the node stops taking connections, reports NOT_SERVING and lets calls in flight finish
    /// for at most this many seconds before it exits.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Directory of the node's store.
    pub store: PathBuf,
    /// Directory of the node's release journal (default: `journal` beside the store, i.e. in the
    /// store's parent directory). Kept out of the store so that rebuilding a store never touches the
    /// record of what was released.
    #[serde(default)]
    pub journal: Option<PathBuf>,
    /// Serve even when the store is new or holds no record of any dataset the node serves (a node
    /// being set up). Off by default: a mistyped `store` path would otherwise serve nothing while the
    /// gateway counted the node as answering. `node serve --allow-empty` sets it too.
    #[serde(default)]
    pub allow_empty: bool,
    /// File holding the pseudonymisation key (64+ hex digits). Never logged.
    pub pseudonym_key_file: PathBuf,
    /// File holding the node's receipt signing key (PKCS#8 Ed25519, made by `shuzhu pki init`).
    /// Without it the node still journals every release but signs no receipts.
    #[serde(default)]
    pub journal_key_file: Option<PathBuf>,
    /// Serial numbers (hex) of gateway certificates that are revoked: a gateway presenting one is
    /// refused at the handshake.
    #[serde(default)]
    pub deny_serials: Vec<String>,
    /// TLS material.
    pub tls: TlsFiles,
    /// Local policy.
    pub policy: LocalPolicy,
    /// What import keeps of `summary` and `defendant_address` (`[minimise]`; default: both, in their
    /// minimised forms).
    #[serde(default)]
    pub minimise: crate::record::MinimiseOptions,
    /// Where aggregates come from (`[source]`; default: the node's own store).
    #[serde(default, rename = "source")]
    pub data_source: crate::source::config::SourceConfig,
    /// The file this configuration was read from (watched for local-policy reloads).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl NodeConfig {
    /// Reads a config file; relative paths inside are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: NodeConfig = shuzhu_net::config::load(path)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// The release journal's directory: `journal` when set, otherwise `journal` beside the store.
    pub fn journal_dir(&self) -> PathBuf {
        match (&self.journal, self.store.parent()) {
            (Some(j), _) => j.clone(),
            (None, Some(parent)) => parent.join(crate::journal::JOURNAL_DIR),
            (None, None) => self.store.with_extension(crate::journal::JOURNAL_DIR),
        }
    }

    /// The journal to read: the configured one, or — before a node of this version has moved it there
    /// — the old one inside the store (`STORE/journal`).
    pub fn journal_to_read(&self) -> PathBuf {
        let configured = self.journal_dir();
        let legacy = self.store.join(crate::journal::JOURNAL_DIR);
        let has_segments = |d: &Path| {
            std::fs::read_dir(d)
                .is_ok_and(|mut it| it.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))))
        };
        if !has_segments(&configured) && has_segments(&legacy) { legacy } else { configured }
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
        let mut paths = vec![
            &mut self.store,
            &mut self.pseudonym_key_file,
            &mut self.tls.ca,
            &mut self.tls.cert,
            &mut self.tls.key,
        ];
        paths.extend(self.journal_key_file.as_mut());
        paths.extend(self.data_source.paths());
        paths.extend(self.journal.as_mut());
        paths
    }

    /// Checks values the types cannot.
    fn check(&self) -> Result<(), String> {
        if !shuzhu_net::is_valid_party_id(&self.node_id) {
            return Err(format!("node_id {:?} must be 1-63 characters of a-z, 0-9 and -", self.node_id));
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("listen {:?} is not an address like 127.0.0.1:7443", self.listen));
        }
        if self.shutdown_grace_secs > 3600 {
            return Err(format!("shutdown_grace_secs {} is above 3600", self.shutdown_grace_secs));
        }
        if let Some(bad) = self.deny_serials.iter().find(|s| shuzhu_net::normalise_serial(s).is_none()) {
            return Err(format!("deny_serials: {bad:?} is not a certificate serial in hex, like \"4a5a26…\""));
        }
        // Secrets others may read are refused: the node does not start.
        let secrets = [Some(&self.pseudonym_key_file), self.journal_key_file.as_ref(), Some(&self.tls.key)];
        for secret in secrets.into_iter().flatten() {
            shuzhu_net::secret::check_secret_permissions_if_present(secret).map_err(|e| e.to_string())?;
        }
        let mut problems = self.policy.problems();
        problems.extend(self.data_source.problems());
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
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
    fn minimisation_defaults_to_full_and_can_be_turned_off_per_field() {
        use crate::record::MinimiseOptions;
        assert_eq!(load_text(GOOD).unwrap().minimise, MinimiseOptions { scrub_summary: true, address_to_county: true });
        let off = load_text(&format!("{GOOD}[minimise]\nscrub_summary = false\n")).unwrap();
        assert_eq!(off.minimise, MinimiseOptions { scrub_summary: false, address_to_county: true });
        let both = load_text(&format!("{GOOD}[minimise]\nscrub_summary = false\naddress_to_county = false\n")).unwrap();
        assert_eq!(both.minimise, MinimiseOptions { scrub_summary: false, address_to_county: false });
        let unknown = load_text(&format!("{GOOD}[minimise]\nscrub_sumary = false\n")).unwrap_err();
        assert!(unknown.to_string().contains("scrub_sumary"), "{unknown}");
        assert!(load_text(&format!("{GOOD}[minimise]\nscrub_summary = \"no\"\n")).is_err());
    }

    #[test]
    fn a_good_config_loads_with_paths_resolved() {
        let c = load_text(GOOD).unwrap();
        assert!(c.store.is_absolute());
        assert!(c.journal_key_file.is_none());
        let with_key = load_text(&GOOD.replace("[tls]", "journal_key_file = \"j.pk8\"\n[tls]")).unwrap();
        assert!(with_key.journal_key_file.is_some_and(|p| p.is_absolute() && p.ends_with("j.pk8")));
        assert_eq!(c.policy.max_grade, Grade::L2);
        assert_eq!(c.policy.threshold, MIN_THRESHOLD);
        assert!(c.source.is_some());
    }

    #[test]
    fn agencies_can_be_narrowed_per_gateway() {
        let text = GOOD.replace(
            r#"gateways = ["gw-1"]"#,
            "gateways = [\"gw-1\", \"gw-2\"]\nagencies_by_gateway = { gw-2 = [\"xm-sfj\"] }",
        );
        let p = load_text(&text).unwrap().policy;
        assert!(p.answers("gw-1", "anyone"));
        assert!(p.answers("gw-2", "xm-sfj"));
        assert!(!p.answers("gw-2", "xm-tjj"));
        assert!(!p.answers("gw-3", "xm-sfj"));
        let before = p.version();
        let mut other = p.clone();
        other.threshold = 12;
        assert_ne!(other.version(), before);
        assert_eq!(other.version(), other.hash_version());
        let canonical = serde_json::to_vec(&p).unwrap();
        let expected = hex::encode(&ring::digest::digest(&ring::digest::SHA256, &canonical).as_ref()[..8]);
        assert_eq!(before, expected, "the kept version is the hash of the canonical form");
        assert_eq!(p.version(), expected);
        let stray = GOOD.replace("[policy]", "[policy]\nagencies_by_gateway = { gw-9 = [\"*\"] }");
        assert!(load_text(&stray).unwrap_err().to_string().contains("gw-9"));
        let low = GOOD.replace("[policy]", "[policy]\nthreshold = 4");
        assert!(load_text(&low).unwrap_err().to_string().contains("policy.threshold"));
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
