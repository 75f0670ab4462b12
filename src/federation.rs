//! A whole federation on one machine: PKI, keys, tokens, policy and configs written under one
//! directory, every node's data imported, then the nodes and the gateway started on loopback with TLS.
//! `shuzhu demo` runs it for a newcomer; the integration tests run it with small data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use shuzhu_gateway::auth::{JwtAlgorithm, SigningKey, TokenClaims, issue_token};
use shuzhu_gateway::config::GatewayConfig;
use shuzhu_gateway::state::GatewayState;
use shuzhu_net::Role;
use shuzhu_node::config::NodeConfig;
use shuzhu_node::import::{ImportOptions, ImportReport, import_file};
use shuzhu_node::service::NodeState;
use shuzhu_node::store::SledStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pki::{self, PkiLayout};

/// Issuer of development tokens.
pub const DEV_ISSUER: &str = "https://idp.shuzhu.test";
/// Audience of development tokens.
pub const DEV_AUDIENCE: &str = "shuzhu-gateway";
/// Id of the demo gateway.
pub const DEMO_GATEWAY: &str = "gw-xiamen";
/// Agency of the demo analyst (an external agency: regions, not courts).
pub const ANALYST_AGENCY: &str = "xm-sfj";
/// Agency of the demo court manager (may compare courts).
pub const MANAGER_AGENCY: &str = "xm-court-mgmt";
/// Agency of the demo auditor.
pub const AUDITOR_AGENCY: &str = "xm-audit";

/// One node to set up: its id and the folder holding its CSV files.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node id (`court-350203`).
    pub id: String,
    /// Folder with `cases.csv`, `mediations.csv` and/or `population.csv`.
    pub data: PathBuf,
}

/// Everything written under the federation directory.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The directory.
    pub dir: PathBuf,
    /// PKI files.
    pub pki: PkiLayout,
    /// Dev token-signing key (PKCS#8 PEM).
    pub issuer_key: PathBuf,
    /// Its public key.
    pub issuer_pub: PathBuf,
    /// Policy file.
    pub policy: PathBuf,
    /// Tokens by name (`requester`, `manager`, `auditor`).
    pub tokens: BTreeMap<String, PathBuf>,
    /// Node id → config path.
    pub nodes: Vec<(String, PathBuf)>,
    /// Import reports by node.
    pub imports: Vec<(String, ImportReport)>,
}

/// Discovers node folders: every subfolder of `data` holding a known CSV file, in name order.
pub fn discover(data: &Path) -> Result<Vec<NodeSpec>> {
    let mut specs = Vec::new();
    let entries = std::fs::read_dir(data).with_context(|| format!("reading data folder {}", data.display()))?;
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let id = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if !["cases.csv", "mediations.csv", "population.csv"].iter().any(|f| path.join(f).exists()) {
            continue;
        }
        if !shuzhu_net::is_valid_party_id(&id) {
            bail!("data folder {id:?} cannot name a node: use 1-63 characters of a-z, 0-9 and -");
        }
        specs.push(NodeSpec { id, data: path });
    }
    specs.sort_by(|a, b| a.id.cmp(&b.id));
    if specs.is_empty() {
        bail!("no node folders with cases.csv, mediations.csv or population.csv under {}", data.display());
    }
    Ok(specs)
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
    Ok(hex::encode(buf))
}

/// The demo policy: an external analyst agency (regions only), a court manager (courts too), an
/// auditor agency without data grants.
pub fn demo_policy() -> String {
    let cat = shuzhu_policy::catalogue::Catalogue::current();
    let within = |clearance: shuzhu_policy::schema::Grade| {
        shuzhu_policy::indicator::indicators()
            .iter()
            .filter(|i| cat.grade_of(i.id, &[]).is_some_and(|g| g <= clearance))
            .map(|i| format!("{:?}", i.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let indicators = within(shuzhu_policy::schema::Grade::L2);
    let all_indicators = within(shuzhu_policy::schema::Grade::L3);
    format!(
        r#"# Federation policy (数据分类分级 grants). Deny by default: what no grant names is refused.
default_threshold = 10

[[agency]]
id = "{ANALYST_AGENCY}"
name = "厦门市司法局"

[[agency]]
id = "{MANAGER_AGENCY}"
name = "厦门市中级人民法院审判管理办公室"

[[agency]]
id = "{AUDITOR_AGENCY}"
name = "厦门市数据安全监管审计"

[[grant]]
agency = "{ANALYST_AGENCY}"
clearance = "L2"
indicators = [{indicators}]
dimensions = ["region", "year", "quarter", "month", "type_code", "cause", "division", "instance", "dispute_type"]
filters = ["region", "type_code", "cause", "division", "instance", "dispute_type"]
purposes = ["诉源治理", "司法统计"]
valid_from = "2024-01-01"
valid_until = "2030-12-31"

[[grant]]
agency = "{MANAGER_AGENCY}"
clearance = "L3"                # the court's own managers: also enforcement amounts (执行到位率)
indicators = [{all_indicators}]
dimensions = ["court", "region", "year", "quarter", "month", "type_code", "cause", "division", "instance", "dispute_type"]
filters = ["court", "region", "type_code", "cause", "division", "instance", "dispute_type"]
purposes = ["审判管理", "司法统计"]
valid_from = "2024-01-01"
valid_until = "2030-12-31"
"#
    )
}

/// Issues a development token.
pub fn dev_token(key: &SigningKey, sub: &str, agency: &str, roles: &[&str], ttl_secs: u64) -> Result<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let claims = TokenClaims {
        iss: DEV_ISSUER.into(),
        aud: DEV_AUDIENCE.into(),
        sub: sub.into(),
        agency: agency.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        iat: now,
        exp: now + ttl_secs,
        nbf: None,
        jti: Some(random_hex(8)?),
    };
    Ok(issue_token(key, &claims)?)
}

/// Writes PKI, keys, tokens, policy and node configs under `dir`, and imports every node's data.
/// `progress` receives lines for a person to read.
pub fn prepare(dir: &Path, specs: &[NodeSpec], progress: &mut dyn FnMut(String)) -> Result<Prepared> {
    shuzhu_gateway::auth::install_jwt_crypto_provider();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let node_ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let pki = pki::init(&dir.join("pki"), DEMO_GATEWAY, &node_ids, true)?;
    progress(format!("pki: federation CA and {} certificates in {}", node_ids.len() + 1, pki.dir.display()));

    let (key, private_pem, public_pem) = SigningKey::generate(JwtAlgorithm::EdDsa)?;
    let issuer_key = dir.join("issuer/issuer.key");
    let issuer_pub = dir.join("issuer/issuer.pub.pem");
    std::fs::create_dir_all(dir.join("issuer"))?;
    shuzhu_net::secret::write_secret_file(&issuer_key, private_pem.as_bytes())?;
    std::fs::write(&issuer_pub, public_pem)?;
    let mut tokens = BTreeMap::new();
    std::fs::create_dir_all(dir.join("tokens"))?;
    for (name, sub, agency, role) in [
        ("requester", "analyst-001", ANALYST_AGENCY, "requester"),
        ("manager", "manager-001", MANAGER_AGENCY, "requester"),
        ("auditor", "auditor-001", AUDITOR_AGENCY, "auditor"),
    ] {
        let path = dir.join(format!("tokens/{name}.jwt"));
        shuzhu_net::secret::write_secret_file(&path, dev_token(&key, sub, agency, &[role], 12 * 3600)?.as_bytes())?;
        tokens.insert(name.to_string(), path);
    }
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, demo_policy())?;

    let mut nodes = Vec::new();
    let mut imports = Vec::new();
    for spec in specs {
        let ndir = dir.join("nodes").join(&spec.id);
        std::fs::create_dir_all(&ndir)?;
        let key_file = ndir.join("pseudonym.key");
        if !key_file.exists() {
            shuzhu_net::secret::write_secret_file(&key_file, random_hex(32)?.as_bytes())?;
        }
        let datasets: Vec<&str> = ["cases", "mediations", "population"]
            .into_iter()
            .filter(|d| spec.data.join(format!("{d}.csv")).exists())
            .collect();
        let (cert, keyp) = pki.party(Role::Node, &spec.id);
        let (journal_key, _) = pki.journal_key(&spec.id);
        let config_text = format!(
            r#"# Shuzhu node {id}
node_id = "{id}"
listen = "127.0.0.1:0"
store = "store"
pseudonym_key_file = "pseudonym.key"
journal_key_file = {journal_key:?}

[tls]
ca = {ca:?}
cert = {cert:?}
key = {keyp:?}

[policy]
gateways = ["{gw}"]
agencies = ["*"]
datasets = [{datasets}]
max_grade = "L3"                # enforcement sums (执行到位率) read L3 amounts; grants still decide who gets them
threshold = 10
"#,
            id = spec.id,
            ca = pki.ca_cert.display().to_string(),
            cert = cert.display().to_string(),
            keyp = keyp.display().to_string(),
            gw = DEMO_GATEWAY,
            journal_key = journal_key.display().to_string(),
            datasets = datasets.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(", "),
        );
        let config_path = ndir.join("node.toml");
        std::fs::write(&config_path, config_text)?;
        let config = NodeConfig::load(&config_path)?;
        let pkey = config.pseudonym_key()?;
        let store = SledStore::open(&config.store)?;
        for d in datasets {
            let file = spec.data.join(format!("{d}.csv"));
            let report = import_file(
                &store,
                &file,
                ImportOptions {
                    dataset: d,
                    key: &pkey,
                    keep_raw: &config.policy.keep_raw,
                    minimise: config.minimise,
                    progress: &mut |_| {},
                },
            )?;
            if !report.quarantine.is_empty() {
                std::fs::write(ndir.join(format!("quarantine-{d}.csv")), report.quarantine_csv())?;
            }
            progress(format!(
                "{}: imported {} {d} rows ({} refused) in {:.1}s",
                spec.id,
                report.imported,
                report.rejected_rows,
                report.elapsed.as_secs_f64()
            ));
            imports.push((spec.id.clone(), report));
        }
        nodes.push((spec.id.clone(), config_path));
    }
    Ok(Prepared { dir: dir.to_path_buf(), pki, issuer_key, issuer_pub, policy, tokens, nodes, imports })
}

/// A running node inside this process.
pub struct RunningNode {
    /// Node id.
    pub id: String,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// Regions its data covers.
    pub regions: Vec<String>,
    /// Its admin listener (`/metrics`, `/healthz`), `http://127.0.0.1:PORT`.
    pub admin_url: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running federation inside this process.
pub struct Running {
    /// `https://127.0.0.1:PORT`.
    pub gateway_url: String,
    /// The HTTPS JSON API, `https://127.0.0.1:PORT` (the gateway's second listener).
    pub http_url: String,
    /// Gateway config path.
    pub gateway_config: PathBuf,
    /// The gateway's admin listener (`/metrics`, `/healthz`), `http://127.0.0.1:PORT`.
    pub admin_url: String,
    /// Nodes.
    pub nodes: Vec<RunningNode>,
    /// The gateway's state (ledger, policy).
    pub gateway: Arc<GatewayState>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Starts every node and the gateway on loopback.
pub async fn start(prepared: &Prepared) -> Result<Running> {
    shuzhu_net::install_crypto_provider();
    let mut nodes = Vec::new();
    let mut entries = String::new();
    for (id, config_path) in &prepared.nodes {
        let config = NodeConfig::load(config_path)?;
        let datasets = config.policy.datasets.clone();
        let state = tokio::task::block_in_place(|| NodeState::open(&config))?;
        let regions = state.regions();
        let courts = state.courts();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, rx) = watch::channel(false);
        let node_id = id.clone();
        let state = Arc::new(state);
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let admin_url = format!("http://{}", admin.local_addr()?);
        tokio::spawn(shuzhu_node::ops::serve_admin(Arc::clone(&state), admin, stopped(rx.clone())));
        let task = tokio::spawn(async move {
            if let Err(error) = shuzhu_node::service::serve(&config, state, listener, stopped(rx)).await {
                tracing::error!(node = %node_id, %error, "node stopped");
            }
        });
        entries.push_str(&format!(
            "\n[[node]]\nid = \"{id}\"\naddress = \"https://127.0.0.1:{}\"\ndatasets = {datasets:?}\nregions = {regions:?}\ncourts = {courts:?}\n",
            addr.port()
        ));
        let (_, receipt_key) = prepared.pki.journal_key(id);
        if receipt_key.exists() {
            entries.push_str(&format!("receipt_key_file = {:?}\n", receipt_key.display().to_string()));
        }
        nodes.push(RunningNode { id: id.clone(), addr, regions, admin_url, stop, task });
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let http_listener = TcpListener::bind("127.0.0.1:0").await?;
    let http_addr = http_listener.local_addr()?;
    let (cert, key) = prepared.pki.party(Role::Gateway, DEMO_GATEWAY);
    let gateway_config = prepared.dir.join("gateway.toml");
    // The cell-key secret of `cell_key` grants: random, kept beside the config, never logged.
    let cell_key_secret = prepared.dir.join("cell-key.secret");
    if !cell_key_secret.exists() {
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| anyhow::anyhow!("the random source failed"))?;
        shuzhu_net::secret::write_secret_file(&cell_key_secret, hex::encode(key).as_bytes())?;
    }
    std::fs::write(
        &gateway_config,
        format!(
            r#"# Shuzhu gateway {gw}
gateway_id = "{gw}"
listen = "127.0.0.1:{port}"
http_listen = "127.0.0.1:{http_port}"
policy = "policy.toml"
ledger_dir = "ledger"
node_timeout_ms = 5000
node_probe_secs = 1
cell_key_secret = "cell-key.secret"

[tls]
ca = {ca:?}
cert = {cert:?}
key = {key:?}

[[issuer]]
issuer = "{DEV_ISSUER}"
audience = "{DEV_AUDIENCE}"
algorithm = "EdDSA"
public_key = {issuer:?}
{entries}"#,
            gw = DEMO_GATEWAY,
            port = addr.port(),
            http_port = http_addr.port(),
            ca = prepared.pki.ca_cert.display().to_string(),
            cert = cert.display().to_string(),
            key = key.display().to_string(),
            issuer = prepared.issuer_pub.display().to_string(),
        ),
    )?;
    let config = GatewayConfig::load(&gateway_config)?;
    let state = Arc::new(GatewayState::open(&config)?);
    let tls = shuzhu_net::tls_server(&config.tls.cert, &config.tls.key)?;
    let (stop, rx) = watch::channel(false);
    let admin = TcpListener::bind("127.0.0.1:0").await?;
    let admin_url = format!("http://{}", admin.local_addr()?);
    tokio::spawn(shuzhu_gateway::ops::serve_admin(Arc::clone(&state), admin, stopped(rx.clone())));
    let st = Arc::clone(&state);
    let task = tokio::spawn(async move {
        if let Err(error) = shuzhu_gateway::serve(st, tls, listener, Some(http_listener), stopped(rx)).await {
            tracing::error!(%error, "gateway stopped");
        }
    });
    Ok(Running {
        gateway_url: format!("https://127.0.0.1:{}", addr.port()),
        http_url: format!("https://127.0.0.1:{}", http_addr.port()),
        gateway_config,
        admin_url,
        nodes,
        gateway: state,
        stop,
        task,
    })
}

impl Running {
    /// Stops one node (to show partial answers).
    pub async fn stop_node(&mut self, id: &str) {
        if let Some(pos) = self.nodes.iter().position(|n| n.id == id) {
            let n = self.nodes.remove(pos);
            let _ = n.stop.send(true);
            let _ = n.task.await;
        }
    }

    /// Stops everything, draining queries in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        for n in self.nodes {
            let _ = n.stop.send(true);
            let _ = n.task.await;
        }
    }
}
