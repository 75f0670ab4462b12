//! Gateway configuration (TOML, unknown keys refused, relative paths resolved against the file).

use std::path::{Path, PathBuf};

use serde::Deserialize;
pub use shuzhu_net::config::ConfigError;
use shuzhu_net::config::ConfigFile;
pub use shuzhu_net::config::TlsFiles;

use crate::auth::{AuthPolicy, JwtAlgorithm};

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
    /// The node's receipt public key (64 hex digits, `shuzhu pki init` writes it). When set, every
    /// answer must carry a receipt signed with it, or the node is counted missing ("receipt invalid").
    #[serde(default)]
    pub receipt_key_file: Option<PathBuf>,
}

/// The gateway's configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Gateway id; its certificate must name it.
    pub gateway_id: String,
    /// Address requesters connect to.
    pub listen: String,
    /// Address of the HTTPS JSON API (`/v1/…`, same certificate, a second listener because tonic's
    /// server owns the first); the API is off when absent.
    #[serde(default)]
    pub http_listen: Option<std::net::SocketAddr>,
    /// Address of the admin listener (plain HTTP: `GET /metrics` in the Prometheus text format, `GET
    /// /healthz` for readiness), e.g. `127.0.0.1:9464`; off when absent. Keep it on loopback.
    #[serde(default)]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// How often the gateway checks that its nodes answer (gRPC health over mutual TLS), in seconds: a
    /// gateway with no reachable node reports NOT_SERVING.
    #[serde(default = "default_node_probe_secs")]
    pub node_probe_secs: u64,
    /// On SIGTERM the gateway stops taking connections, reports NOT_SERVING and lets requests in flight
    /// finish for at most this many seconds before it exits.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// The federation policy file.
    pub policy: PathBuf,
    /// Directory of the audit ledger.
    pub ledger_dir: PathBuf,
    /// Checkpoint key, cadence and retention of the audit ledger (`[ledger]`).
    #[serde(default)]
    pub ledger: LedgerSettings,
    /// Deadline of each node call, in milliseconds (shorter than the gateway's own).
    #[serde(default = "default_node_timeout")]
    pub node_timeout_ms: u64,
    /// Token limits.
    #[serde(default)]
    pub auth: AuthPolicy,
    /// Whether the release ledger (differencing defence) pools every agency's releases, so that
    /// colluding agencies cannot combine their answers (default on); off keeps one ledger per agency.
    #[serde(default = "default_true")]
    pub releases_across_agencies: bool,
    /// What the differencing audit does with an answer too large for its exact check within its
    /// limits: `"pairs"` (the default) checks it with the pairwise record-set check and answers when
    /// that finds nothing (the audit entry says `disclosure_check = "pairs"`); `"refuse"` refuses it.
    #[serde(default)]
    pub releases_too_complex: TooComplex,
    /// File holding the secret key (hex) of the cell-key method; needed only by `cell_key` grants.
    /// Never logged.
    #[serde(default)]
    pub cell_key_secret: Option<PathBuf>,
    /// TLS material.
    pub tls: TlsFiles,
    /// Connection and request limits of the requester-facing server (`[server]`).
    #[serde(default)]
    pub server: shuzhu_net::ServerLimits,
    /// Free space (MiB) the ledger's file system must keep: below it every request is refused
    /// (UNAVAILABLE, naming the reason) before an append could fail half-way.
    #[serde(default = "default_ledger_min_free_mb")]
    pub ledger_min_free_mb: u64,
    /// Serial numbers (hex, as `openssl x509 -serial` or `shuzhu pki issue` prints them) of node
    /// certificates that are revoked: a node presenting one is refused at the handshake and shown as
    /// missing with the reason.
    #[serde(default)]
    pub deny_serials: Vec<String>,
    /// Trusted issuers.
    #[serde(rename = "issuer")]
    pub issuers: Vec<IssuerConfig>,
    /// Nodes.
    #[serde(rename = "node", default)]
    pub nodes: Vec<NodeEntry>,
}

fn default_true() -> bool {
    true
}

/// The `[ledger]` section: how the audit ledger is sealed and how long plaintext is kept.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSettings {
    /// Ed25519 PKCS#8 file that signs checkpoints; it must lie outside the ledger directory. Default
    /// `LEDGER_DIR.keys/checkpoint-key.pk8` beside the ledger directory (created 0600, in a 0700
    /// directory, on first start). Its verifier key text is written beside it (`.pub`).
    pub checkpoint_key_file: Option<PathBuf>,
    /// Checkpoint origin and key name, unique per deployment and host-style (C2SP tlog-checkpoint),
    /// e.g. `audit.fy.xm.gov.cn/shuzhu`. Default `<gateway_id>.shuzhu/audit`. A ledger begun before
    /// origins were per deployment keeps `"shuzhu-gateway/audit"` (set it here to open one).
    pub origin: Option<String>,
    /// Sign a checkpoint after this many entries (0: never by count).
    pub checkpoint_every: u64,
    /// Sign a checkpoint this many seconds after the last when entries were appended (0: never by time).
    pub checkpoint_interval_secs: u64,
    /// Plaintext of ordinary entries is kept at least this many days (Cybersecurity Law art. 21: 6 months).
    pub retain_logs_days: u32,
    /// Plaintext of entries that recorded a release computed over personal-information (L4) fields is
    /// kept at least this many days (3 years).
    pub retain_personal_info_days: u32,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            checkpoint_key_file: None,
            origin: None,
            checkpoint_every: 1000,
            checkpoint_interval_secs: 10,
            retain_logs_days: 183,
            retain_personal_info_days: 1095,
        }
    }
}

fn default_ledger_min_free_mb() -> u64 {
    256
}

/// The checkpoint origin of a gateway that configures none: `<gateway_id>.shuzhu/audit`.
pub fn default_origin(gateway_id: &str) -> String {
    format!("{gateway_id}.shuzhu/audit")
}

fn default_node_probe_secs() -> u64 {
    5
}

/// Seconds that requests in flight get to finish on SIGTERM, when the configuration says nothing.
pub fn default_shutdown_grace_secs() -> u64 {
    30
}

fn default_node_timeout() -> u64 {
    5_000
}

impl GatewayConfig {
    /// Reads a config file; relative paths inside are resolved against the file's directory. The
    /// ledger's origin defaults to `<gateway_id>.shuzhu/audit`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = shuzhu_net::config::load(path)?;
        if config.ledger.origin.is_none() {
            config.ledger.origin = Some(default_origin(&config.gateway_id));
        }
        Ok(config)
    }
}

impl ConfigFile for GatewayConfig {
    fn paths(&mut self) -> Vec<&mut PathBuf> {
        let mut paths: Vec<&mut PathBuf> =
            vec![&mut self.policy, &mut self.ledger_dir, &mut self.tls.ca, &mut self.tls.cert, &mut self.tls.key];
        paths.extend(self.nodes.iter_mut().filter_map(|n| n.receipt_key_file.as_mut()));
        paths.extend(self.issuers.iter_mut().map(|i| &mut i.public_key));
        paths.extend(self.cell_key_secret.as_mut());
        paths.extend(self.ledger.checkpoint_key_file.as_mut());
        paths
    }

    /// Checks values the types cannot.
    fn check(&self) -> Result<(), String> {
        if !shuzhu_net::is_valid_party_id(&self.gateway_id) {
            return Err(format!("gateway_id {:?} must be 1-63 characters of a-z, 0-9 and -", self.gateway_id));
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("listen {:?} is not an address like 127.0.0.1:8443", self.listen));
        }
        if self.issuers.is_empty() {
            return Err("no [[issuer]]: nobody could authenticate".into());
        }
        if self.ledger.retain_logs_days < 183 || self.ledger.retain_personal_info_days < self.ledger.retain_logs_days {
            return Err(format!(
                "[ledger] retain_logs_days {} must be at least 183 (six months) and retain_personal_info_days {} at least that",
                self.ledger.retain_logs_days, self.ledger.retain_personal_info_days
            ));
        }
        self.server.check()?;
        if let Some(bad) = self.deny_serials.iter().find(|s| shuzhu_net::normalise_serial(s).is_none()) {
            return Err(format!("deny_serials: {bad:?} is not a certificate serial in hex, like \"4a5a26…\""));
        }
        if let Some(origin) = &self.ledger.origin
            && !shuzhu_ledger::checkpoint::valid_origin(origin)
            && origin != crate::ledger::LEGACY_ORIGIN
        {
            return Err(format!(
                "[ledger] origin {origin:?} must be host-style and unique to this deployment, like \"audit.court.example/shuzhu\""
            ));
        }
        if let Some(key) = &self.ledger.checkpoint_key_file
            && key.starts_with(&self.ledger_dir)
        {
            return Err(format!(
                "[ledger] checkpoint_key_file {} must lie outside ledger_dir {}",
                key.display(),
                self.ledger_dir.display()
            ));
        }
        // Secrets others may read are refused: the gateway does not start.
        let secrets = [Some(&self.tls.key), self.cell_key_secret.as_ref(), self.ledger.checkpoint_key_file.as_ref()];
        for secret in secrets.into_iter().flatten() {
            shuzhu_net::secret::check_secret_permissions_if_present(secret).map_err(|e| e.to_string())?;
        }
        if !(1..=3600).contains(&self.node_probe_secs) {
            return Err(format!("node_probe_secs {} is outside 1..=3600", self.node_probe_secs));
        }
        if self.shutdown_grace_secs > 3600 {
            return Err(format!("shutdown_grace_secs {} is above 3600", self.shutdown_grace_secs));
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

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
gateway_id = "gw"
listen = "127.0.0.1:8443"
policy = "policy.toml"
ledger_dir = "ledger"
[tls]
ca = "ca.pem"
cert = "gw.pem"
key = "gw.key"
[[issuer]]
issuer = "https://idp"
audience = "shuzhu-gateway"
algorithm = "EdDSA"
public_key = "idp.pem"
"#;

    fn load(extra: &str) -> Result<GatewayConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, format!("{BASE}{extra}")).unwrap();
        GatewayConfig::load(&path).map(|mut c| {
            // Paths are resolved against the file's directory; keep only the part below it.
            if let Some(k) = c.ledger.checkpoint_key_file.as_mut() {
                *k = k.strip_prefix(dir.path()).unwrap().to_owned();
            }
            c
        })
    }

    #[test]
    fn the_ledger_section_has_defaults_and_resolves_the_key_path() {
        let defaults = LedgerSettings { origin: Some("gw.shuzhu/audit".into()), ..LedgerSettings::default() };
        assert_eq!(load("").unwrap().ledger, defaults);
        let c = load("[ledger]\ncheckpoint_key_file = \"keys/cp.pk8\"\ncheckpoint_every = 5\nretain_logs_days = 200\n")
            .unwrap();
        assert_eq!(c.ledger.checkpoint_key_file.as_deref(), Some(Path::new("keys/cp.pk8")));
        assert_eq!((c.ledger.checkpoint_every, c.ledger.checkpoint_interval_secs), (5, 10));
        assert_eq!((c.ledger.retain_logs_days, c.ledger.retain_personal_info_days), (200, 1095));
    }

    #[test]
    fn http_listen_is_off_by_default_and_must_be_an_address() {
        let with = |top: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("gateway.toml");
            std::fs::write(&path, format!("{top}{BASE}")).unwrap();
            GatewayConfig::load(&path)
        };
        assert_eq!(with("").unwrap().http_listen, None);
        let c = with("http_listen = \"127.0.0.1:8444\"\n").unwrap();
        assert_eq!(c.http_listen, Some("127.0.0.1:8444".parse().unwrap()));
        let e = with("http_listen = \"localhost\"\n").unwrap_err().to_string();
        assert!(e.contains("http_listen"), "{e}");
    }

    #[test]
    fn the_origin_defaults_to_the_gateway_id_and_must_be_host_style() {
        assert_eq!(load("").unwrap().ledger.origin.as_deref(), Some("gw.shuzhu/audit"));
        let c = load("[ledger]\norigin = \"audit.court.example/shuzhu\"\n").unwrap();
        assert_eq!(c.ledger.origin.as_deref(), Some("audit.court.example/shuzhu"));
        assert!(load("[ledger]\norigin = \"shuzhu-gateway/audit\"\n").is_ok(), "the legacy origin stays usable");
        let e = load("[ledger]\norigin = \"my log\"\n").unwrap_err().to_string();
        assert!(e.contains("host-style"), "{e}");
    }

    #[test]
    fn a_checkpoint_key_inside_the_ledger_directory_is_refused() {
        let e = load("[ledger]\ncheckpoint_key_file = \"ledger/cp.pk8\"\n").unwrap_err().to_string();
        assert!(e.contains("outside ledger_dir"), "{e}");
    }

    #[test]
    fn retention_below_the_legal_floor_is_refused() {
        assert!(load("[ledger]\nretain_logs_days = 90\n").is_err());
        assert!(load("[ledger]\nretain_personal_info_days = 100\n").is_err());
        assert!(load("[ledger]\nretain_days = 400\n").is_err());
    }
}

/// See [`GatewayConfig::releases_too_complex`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TooComplex {
    /// The pairwise record-set check, then answer.
    #[default]
    Pairs,
    /// Refuse the answer.
    Refuse,
}
