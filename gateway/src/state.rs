//! Everything a running gateway holds: policy, authenticator, ledger, quotas, and a channel per node.
//!
//! The policy sits behind a lock holding an `Arc`: a query takes the `Arc` once and decides, plans and
//! answers under that version even if a reload swaps in another meanwhile. A reload that fails the
//! check changes nothing.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use shuzhu_net::Role;
use shuzhu_policy::FederationPolicy;
use tonic::transport::{Channel, Endpoint};

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
    /// A privacy book does not match what the audit ledger committed, or the commitment could not be
    /// read or written (the gateway fails closed).
    #[error(transparent)]
    Books(#[from] crate::books::BookError),
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
    /// Round trip of each call to the node (`shuzhu_gateway_node_round_trip_seconds{node}`).
    pub round_trip: metrics::Histogram,
    /// Why the last handshake with the node was refused by `deny_serials`, if it was.
    pub refusals: crate::connector::Refusals,
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
    /// This gateway's metrics (the admin listener renders them).
    pub metrics: shuzhu_net::admin::Metrics,
    /// Readiness as last probed.
    pub health: crate::ops::Health,
    /// How often the nodes' health is probed.
    pub node_probe_every: Duration,
    /// How long requests in flight may run on after the gateway is asked to stop.
    pub shutdown_grace: Duration,
    /// The gateway's certificate (its expiry is a metric).
    pub cert_path: std::path::PathBuf,
    /// The privacy books' heads as last committed in the audit ledger (see [`crate::books`]).
    books_committed: std::sync::Mutex<crate::books::BookHeads>,
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

/// The heads of the books kept in files.
fn book_heads(
    releases: &crate::releases::ReleaseBook,
    budget: &crate::budget::BudgetBook,
    quotas: &crate::quota::QuotaBook,
) -> crate::books::BookHeads {
    let mut heads = crate::books::BookHeads::new();
    heads.extend(releases.head().map(|h| (crate::releases::RELEASES_FILE_NAME.to_string(), h)));
    heads.extend(budget.head().map(|h| (crate::budget::BUDGET_FILE_NAME.to_string(), h)));
    heads.extend(quotas.head().map(|h| (crate::quota::QUOTA_FILE_NAME.to_string(), h)));
    heads
}

/// Appends an entry (`action`) committing the books' `heads` to the ledger, durably.
fn commit_books(
    ledger: &AuditChain,
    gateway: &str,
    policy_version: &str,
    action: &str,
    heads: crate::books::BookHeads,
) -> Result<u64, crate::ledger::LedgerError> {
    let mut record = crate::audit::AuditRecord::new(gateway, &crate::service::request_id(), action, policy_version);
    record.decision = "allow".into();
    record.reason = "privacy books checked at start and committed".into();
    record.books = Some(heads);
    ledger.append_record(&record)
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
        // The privacy books must begin with what the audit ledger last committed of them; a book
        // rewritten at start (the quota compaction) is committed before it replaces the old one.
        let committed = crate::books::last_commitment(&ledger)?;
        if let Some((seq, heads)) = &committed {
            crate::books::check_committed(&config.ledger_dir, *seq, heads)?;
        }
        let limits = shuzhu_policy::disclosure::audit::Limits {
            pairs_when_too_complex: config.releases_too_complex == crate::config::TooComplex::Pairs,
            ..Default::default()
        };
        let releases = crate::releases::ReleaseBook::open_limited(
            &config.ledger_dir,
            config.releases_across_agencies,
            topology(&config.nodes),
            limits,
        )?;
        let budget = Arc::new(crate::budget::BudgetBook::open(&config.ledger_dir)?);
        let commit_compaction = |quota: &crate::books::BookHead| {
            let mut heads = crate::books::BookHeads::new();
            heads.extend(releases.head().map(|h| (crate::releases::RELEASES_FILE_NAME.to_string(), h)));
            heads.extend(budget.head().map(|h| (crate::budget::BUDGET_FILE_NAME.to_string(), h)));
            heads.insert(crate::quota::QUOTA_FILE_NAME.to_string(), quota.clone());
            commit_books(&ledger, &config.gateway_id, &policy.version, "books.compact", heads)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let quotas = Arc::new(crate::quota::QuotaBook::open_committing(&config.ledger_dir, &commit_compaction)?);
        let heads = book_heads(&releases, &budget, &quotas);
        let unchanged = match &committed {
            Some((_, c)) => *c == heads,
            None => heads.values().all(|h| h.lines == 0),
        };
        if !unchanged {
            commit_books(&ledger, &config.gateway_id, &policy.version, "books.open", heads.clone())?;
        }
        let cell_key_secret = match &config.cell_key_secret {
            None => None,
            Some(path) => Some(
                hex::decode(read(path)?.trim())
                    .ok()
                    .filter(|k| k.len() >= 16)
                    .ok_or_else(|| StartError::CellKeySecret(path.display().to_string()))?,
            ),
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in shuzhu_net::load_certs(&config.tls.ca)? {
            roots.add(ca).map_err(|e| StartError::Read {
                path: config.tls.ca.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        let identity = (shuzhu_net::load_certs(&config.tls.cert)?, shuzhu_net::load_key(&config.tls.key)?);
        let deny: Arc<std::collections::BTreeSet<String>> =
            Arc::new(config.deny_serials.iter().filter_map(|s| shuzhu_net::normalise_serial(s)).collect());
        let node_timeout = Duration::from_millis(config.node_timeout_ms);
        let metrics = shuzhu_net::admin::Metrics::new();
        let mut nodes = Vec::new();
        for entry in &config.nodes {
            let err = |message: String| StartError::Node { node: entry.id.clone(), message };
            let refusals = crate::connector::Refusals::default();
            // The gateway's own connector (webpki, then the deny list); TLS is its, so tonic sees http.
            let connector = crate::connector::NodeConnector::new(
                roots.clone(),
                (identity.0.clone(), identity.1.clone_key()),
                &shuzhu_net::party_dns_name(Role::Node, &entry.id),
                Arc::clone(&deny),
                refusals.clone(),
            )
            .map_err(err)?;
            let address = match entry.address.strip_prefix("https://") {
                Some(rest) => format!("http://{rest}"),
                None => entry.address.clone(),
            };
            let channel = Endpoint::from_shared(address)
                .map_err(|e| err(format!("address: {e}")))?
                .connect_timeout(node_timeout.min(Duration::from_secs(3)))
                .timeout(node_timeout)
                .tcp_nodelay(true)
                .connect_with_connector_lazy(connector);
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
            let round_trip = metrics.histogram("shuzhu_gateway_node_round_trip_seconds", &[("node", &entry.id)]);
            nodes.push(NodeHandle { entry: entry.clone(), channel, receipt_key, receipt_key_id, round_trip, refusals });
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
            health: crate::ops::Health::new(config.nodes.len()),
            metrics,
            node_probe_every: Duration::from_secs(config.node_probe_secs),
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            cert_path: config.tls.cert.clone(),
            books_committed: std::sync::Mutex::new(heads),
        })
    }

    /// The privacy books' lines and chain heads now.
    pub fn book_heads(&self) -> crate::books::BookHeads {
        book_heads(&self.releases, &self.budget, &self.quotas)
    }

    /// The books' heads when they changed since they were last committed (for the next audit entry).
    pub(crate) fn books_to_commit(&self) -> Option<crate::books::BookHeads> {
        let now = self.book_heads();
        let committed = self.books_committed.lock().unwrap_or_else(|p| p.into_inner());
        (*committed != now).then_some(now)
    }

    /// Notes that an audit entry carrying `heads` was appended.
    pub(crate) fn books_committed(&self, heads: crate::books::BookHeads) {
        *self.books_committed.lock().unwrap_or_else(|p| p.into_inner()) = heads;
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
