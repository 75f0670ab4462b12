//! Everything a running gateway holds: policy, authenticator, ledger, quotas, and a channel per node.
//!
//! The policy sits behind a lock holding an `Arc`: a query takes the `Arc` once and decides, plans and
//! answers under that version even if a reload swaps in another meanwhile. A reload that fails the
//! check changes nothing.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use shuzhu_net::Role;
use shuzhu_policy::FederationPolicy;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::auth::{Authenticator, TrustedIssuer};
use crate::config::{GatewayConfig, NodeEntry};
use crate::ledger::AuditChain;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The policy file is invalid.
    #[error("policy {path}: {source}")]
    Policy {
        /// The file.
        path: String,
        /// What is wrong.
        source: shuzhu_policy::grant::PolicyError,
    },
    /// Issuer keys are unusable.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthConfigError),
    /// The ledger could not be opened (the gateway fails closed).
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The release ledger could not be opened (the gateway fails closed).
    #[error(transparent)]
    Releases(#[from] crate::releases::ReleaseError),
    /// The quota file could not be opened (the gateway fails closed).
    #[error(transparent)]
    Quotas(#[from] crate::quota::QuotaFileError),
    /// TLS material problem.
    #[error(transparent)]
    Tls(#[from] shuzhu_net::NetError),
    /// A node address is unusable.
    #[error("node {node}: {message}")]
    Node {
        /// Node id.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// The cell-key secret file does not hold a key (the key itself is never shown).
    #[error("{0} does not hold a hex key of at least 16 bytes")]
    CellKeySecret(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The HTTPS JSON API's server failed.
    #[error("https json api: {0}")]
    Http(std::io::Error),
}

/// A node as the gateway sees it.
pub struct NodeHandle {
    /// Configuration entry.
    pub entry: NodeEntry,
    /// Lazily connected mutual-TLS channel that expects the node's own certificate.
    pub channel: Channel,
    /// The node's receipt key, when configured: answers without a valid receipt are refused.
    pub receipt_key: Option<shuzhu_ledger::receipt::ReceiptVerifier>,
    /// The id of that key (first 16 hex digits of SHA-256 over the public key), to tell a node that
    /// now signs with another key ("receipt key changed") from a forged receipt.
    pub receipt_key_id: Option<String>,
}

/// The loaded policy and its version.
pub struct LoadedPolicy {
    /// The policy.
    pub policy: FederationPolicy,
    /// Its version hash.
    pub version: String,
}

/// The running gateway's state.
pub struct GatewayState {
    /// Gateway id.
    pub id: String,
    /// Current policy (swappable for reloads).
    pub policy: RwLock<Arc<LoadedPolicy>>,
    /// Token verification.
    pub auth: Authenticator,
    /// Audit ledger.
    pub ledger: Arc<AuditChain>,
    /// Nodes.
    pub nodes: Vec<NodeHandle>,
    /// The region of each court served by a node of one court and one region (built once with the
    /// nodes: the cell key makes a court's records its region's with it).
    pub court_region: std::collections::BTreeMap<String, String>,
    /// Deadline of one node call.
    pub node_timeout: Duration,
    /// The policy file (watched for reloads).
    pub policy_path: std::path::PathBuf,
    /// What each agency has used of its quotas.
    pub quotas: Arc<crate::quota::QuotaBook>,
    /// Numbers already released, and the exact audit of new ones against them (differencing defence).
    pub releases: crate::releases::ReleaseBook,
    /// Privacy budget spent per agency and dataset (`dp` grants).
    pub budget: Arc<crate::budget::BudgetBook>,
    /// Secret key of the cell-key method, when configured.
    pub cell_key_secret: Option<Vec<u8>>,
    /// Authentication failures: per-peer budgets and counts awaiting their summary entry.
    pub failures: crate::failures::FailureLimiter,
    /// How often counted authentication failures are summarised into the ledger.
    pub failure_summary_every: Duration,
    /// Connection and request limits of the server.
    pub limits: shuzhu_net::ServerLimits,
    /// The ledger directory (its file system's free space is watched).
    pub ledger_dir: std::path::PathBuf,
    /// Free bytes the ledger's file system must keep, or every request is refused.
    pub ledger_min_free_bytes: u64,
}

fn read(path: &std::path::Path) -> Result<String, StartError> {
    std::fs::read_to_string(path).map_err(|source| StartError::Read { path: path.display().to_string(), source })
}

/// Loads and checks a policy file.
pub fn load_policy(path: &std::path::Path) -> Result<LoadedPolicy, StartError> {
    parse_policy(path, &read(path)?)
}

/// Checks a policy's `text`, already read from `path` (named in errors, not opened again).
pub fn parse_policy(path: &std::path::Path, text: &str) -> Result<LoadedPolicy, StartError> {
    let policy = FederationPolicy::parse(text)
        .map_err(|source| StartError::Policy { path: path.display().to_string(), source })?;
    let version = policy.version();
    Ok(LoadedPolicy { policy, version })
}

/// The id of a receipt public key given as 64 hex digits: the first 16 hex digits of SHA-256 over its
/// 32 bytes (as the node computes it for the `key_id` of its receipts).
fn receipt_key_id(public_key_hex: &str) -> Option<String> {
    let bytes = hex::decode(public_key_hex.trim()).ok().filter(|b| b.len() == 32)?;
    Some(hex::encode(&ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()[..8]))
}

/// Court → region for every node serving exactly one court and one region.
fn court_regions(nodes: &[NodeHandle]) -> std::collections::BTreeMap<String, String> {
    nodes
        .iter()
        .filter(|n| n.entry.courts.len() == 1 && n.entry.regions.len() == 1)
        .map(|n| (n.entry.courts[0].clone(), n.entry.regions[0].clone()))
        .collect()
}

/// Where courts sit, from the courts and regions each node serving cases declares (its entry in the
/// gateway's configuration; a node's answer grouped by a court or region it does not declare is
/// refused): the release ledger relates court cells and region cells through it, in both directions.
fn topology(nodes: &[crate::config::NodeEntry]) -> shuzhu_policy::disclosure::recordset::Topology {
    shuzhu_policy::disclosure::recordset::Topology::from_nodes(
        nodes.iter().filter(|n| n.datasets.iter().any(|d| d == "cases")).map(|n| (&n.courts[..], &n.regions[..])),
    )
}

impl GatewayState {
    /// Why the ledger's disk cannot take another entry, when its free space is below the floor.
    pub fn ledger_space_problem(&self) -> Option<String> {
        let free = match fs2::available_space(&self.ledger_dir) {
            Ok(free) => free,
            Err(error) => return Some(format!("the free space of the audit ledger's disk cannot be read ({error})")),
        };
        (free < self.ledger_min_free_bytes).then(|| {
            format!(
                "the audit ledger's disk has {} MiB free, below the floor of {} MiB (ledger_min_free_mb): requests are refused until space is freed",
                free / (1024 * 1024),
                self.ledger_min_free_bytes / (1024 * 1024)
            )
        })
    }

    /// Builds the state from a loaded configuration. Must run inside a tokio runtime.
    pub fn open(config: &GatewayConfig) -> Result<Self, StartError> {
        // Another party's certificate would let the gateway run and fail every handshake: refuse first.
        shuzhu_net::check_own_certificate(&config.tls.cert, Role::Gateway, &config.gateway_id)?;
        crate::auth::install_jwt_crypto_provider();
        shuzhu_net::install_crypto_provider();
        let policy = load_policy(&config.policy)?;
        let issuers = config
            .issuers
            .iter()
            .map(|i| {
                Ok(TrustedIssuer {
                    issuer: i.issuer.clone(),
                    audience: i.audience.clone(),
                    algorithm: i.algorithm,
                    public_key_pem: read(&i.public_key)?,
                })
            })
            .collect::<Result<Vec<_>, StartError>>()?;
        let auth = Authenticator::new(issuers, config.auth.clone())?;
        let ledger = Arc::new(AuditChain::open_with(&config.ledger_dir, &config.ledger)?);
        let releases = crate::releases::ReleaseBook::open_with(
            &config.ledger_dir,
            config.releases_across_agencies,
            topology(&config.nodes),
        )?;
        let budget = Arc::new(crate::budget::BudgetBook::open(&config.ledger_dir)?);
        let quotas = Arc::new(crate::quota::QuotaBook::open(&config.ledger_dir)?);
        let cell_key_secret = match &config.cell_key_secret {
            None => None,
            Some(path) => Some(
                hex::decode(read(path)?.trim())
                    .ok()
                    .filter(|k| k.len() >= 16)
                    .ok_or_else(|| StartError::CellKeySecret(path.display().to_string()))?,
            ),
        };
        let ca = Certificate::from_pem(shuzhu_net::load_pem(&config.tls.ca)?);
        let identity =
            Identity::from_pem(shuzhu_net::load_pem(&config.tls.cert)?, shuzhu_net::load_pem(&config.tls.key)?);
        let node_timeout = Duration::from_millis(config.node_timeout_ms);
        let mut nodes = Vec::new();
        for entry in &config.nodes {
            let err = |message: String| StartError::Node { node: entry.id.clone(), message };
            let tls = ClientTlsConfig::new()
                .ca_certificate(ca.clone())
                .identity(identity.clone())
                .domain_name(shuzhu_net::party_dns_name(Role::Node, &entry.id));
            let channel = Endpoint::from_shared(entry.address.clone())
                .map_err(|e| err(format!("address: {e}")))?
                .tls_config(tls)
                .map_err(|e| err(format!("tls: {e}")))?
                .connect_timeout(node_timeout.min(Duration::from_secs(3)))
                .timeout(node_timeout)
                .tcp_nodelay(true)
                .connect_lazy();
            let receipt_key = entry
                .receipt_key_file
                .as_deref()
                .map(shuzhu_ledger::receipt::ReceiptVerifier::load)
                .transpose()
                .map_err(|e| err(e.to_string()))?;
            let receipt_key_id = match &entry.receipt_key_file {
                Some(path) => receipt_key_id(&read(path)?),
                None => None,
            };
            nodes.push(NodeHandle { entry: entry.clone(), channel, receipt_key, receipt_key_id });
        }
        let court_region = court_regions(&nodes);
        Ok(GatewayState {
            id: config.gateway_id.clone(),
            policy: RwLock::new(Arc::new(policy)),
            auth,
            ledger,
            nodes,
            court_region,
            node_timeout,
            policy_path: config.policy.clone(),
            quotas,
            releases,
            budget,
            cell_key_secret,
            failures: crate::failures::FailureLimiter::new(config.auth.failures_recorded_per_peer_per_minute),
            failure_summary_every: Duration::from_secs(config.auth.failure_summary_secs),
            limits: config.server.clone(),
            ledger_dir: config.ledger_dir.clone(),
            ledger_min_free_bytes: config.ledger_min_free_mb.saturating_mul(1024 * 1024),
        })
    }

    /// Re-reads and checks the policy file; when it passes, it decides every query that starts from
    /// now on. Returns the new version, or why it was refused (the old policy keeps deciding).
    pub fn reload_policy(&self) -> Result<String, StartError> {
        self.reload_policy_text(&read(&self.policy_path)?)
    }

    /// [`Self::reload_policy`] with the policy file's text already read (by the file watcher): the
    /// file is not opened again, so what was checked is what was read.
    pub fn reload_policy_text(&self, text: &str) -> Result<String, StartError> {
        let loaded = parse_policy(&self.policy_path, text)?;
        let version = loaded.version.clone();
        let mut slot = match self.policy.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(loaded);
        Ok(version)
    }

    /// The policy in force.
    pub fn current_policy(&self) -> Arc<LoadedPolicy> {
        // A poisoned lock only means a reload panicked; the last stored policy is still whole.
        match self.policy.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}
