//! The `Node` gRPC service over mutual TLS: `Describe` and `Aggregate`.
//!
//! Every call must come over a TLS 1.3 connection whose client certificate, issued by the federation
//! CA, names one of the gateways the local policy lists. The node then applies its own policy again,
//! whatever the gateway decided: dataset served, agency answered (for that gateway), grade ceiling of
//! every field read, and its own threshold. A refusal is `PERMISSION_DENIED` whose message starts
//! `node <id> local policy:` and states the reason (never a personal value), which the gateway shows
//! in its coverage. Every release and every local-policy refusal is journalled (see [`crate::journal`])
//! before the node answers; a release carries the node's signed receipt. When the journal cannot
//! append, the node answers `UNAVAILABLE` and releases nothing. The local policy is swapped without downtime when the config file changes or on
//! SIGHUP; a call in flight finishes under the policy it started with.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prost::Message;
use shuzhu_net::Role;
use shuzhu_policy::dimension::Dimension;
use shuzhu_policy::indicator::measure;
use shuzhu_policy::period::Period;
use shuzhu_policy::schema;
use shuzhu_proto::v1::{self as pb, node_server::NodeServer};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::config::{LocalPolicy, NodeConfig};
use crate::engine::{CaseTable, Filter};
use crate::journal::{KIND_REFUSAL, KIND_RELEASE, Release, ReleaseJournal};
use crate::source::postgres::{DatasetFacts, PgSource};
use crate::source::{Source, SourceError, StoreSource};
use crate::store::{SledStore, Store, StoredForms};
use crate::tables::{MediationTable, PopulationTable};

/// Largest request a node accepts.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Most values a region filter may list (a gateway joining population figures lists every district its
/// court nodes serve).
pub const MAX_REGION_FILTER: usize = 4096;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Store problem.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Engine problem while loading.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// Problem loading the mediations or population table.
    #[error(transparent)]
    Table(#[from] crate::tables::TableError),
    /// TLS material problem.
    #[error(transparent)]
    Tls(#[from] shuzhu_net::NetError),
    /// The release journal could not be opened (the node fails closed).
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// The receipt signing key could not be loaded.
    #[error(transparent)]
    ReceiptKey(#[from] shuzhu_ledger::receipt::ReceiptError),
    /// The database source could not be opened (connection, mapping or column types).
    #[error("source: {0}")]
    Source(#[from] SourceError),
    /// The server failed.
    #[error("server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The store is new or holds nothing the node serves, and `allow_empty` was not given.
    #[error(
        "store {path} {what}: is the `store` path mistyped? (to start a node with no data yet, pass --allow-empty or set allow_empty = true)"
    )]
    EmptyStore {
        /// The store directory.
        path: String,
        /// `does not exist` or what it lacks.
        what: String,
    },
}

/// What the node serves, loaded once at start; the local policy is swappable.
pub struct NodeState {
    id: String,
    policy: RwLock<Arc<LocalPolicy>>,
    cases: Arc<CaseTable>,
    mediations: Arc<MediationTable>,
    population: Arc<PopulationTable>,
    /// Every dataset the store knows; `Describe` shows those the policy in force serves.
    datasets: Vec<pb::DatasetInfo>,
    /// Where every release and refusal is journalled before the node answers.
    journal: Arc<ReleaseJournal>,
    /// Where aggregates come from (`[source]`).
    source: Arc<dyn Source>,
    /// What the database source holds (empty for a store source).
    source_facts: Vec<DatasetFacts>,
    /// The store's lock, held for the node's whole life (an import while it serves is refused).
    _store_lock: Option<crate::lock::DirLock>,
    /// This node's metrics (the admin listener renders them).
    pub metrics: shuzhu_net::admin::Metrics,
    /// The store's directory (its size is a metric).
    store_dir: std::path::PathBuf,
    /// The node's certificate (its expiry is a metric).
    cert_path: std::path::PathBuf,
    /// Set once the node is asked to stop: it reports NOT_SERVING while calls in flight finish.
    stopping: std::sync::atomic::AtomicBool,
    /// How long calls in flight may run on after the node is asked to stop.
    shutdown_grace: Duration,
}

impl NodeState {
    /// Opens the store and loads the engine.
    ///
    /// Refuses a certificate that does not name `config.node_id`, a store that does not exist yet (and creates nothing), or one holding no record of any
    /// dataset the local policy serves, unless `config.allow_empty`. Holds the store's and the journal's
    /// locks for as long as the state lives, and moves a journal left inside the store (the old layout)
    /// to its configured place.
    pub fn open(config: &NodeConfig) -> Result<Self, NodeError> {
        // Another party's certificate would let the node run and fail every handshake: refuse now.
        shuzhu_net::check_own_certificate(&config.tls.cert, Role::Node, &config.node_id)?;
        Self::load(config)
    }

    /// [`NodeState::open`] without the certificate check.
    fn load(config: &NodeConfig) -> Result<Self, NodeError> {
        let empty = |what: &str| NodeError::EmptyStore { path: config.store.display().to_string(), what: what.into() };
        if !config.allow_empty && !config.store.is_dir() {
            return Err(empty("does not exist"));
        }
        let store = SledStore::open(&config.store)?;
        let journal_dir = config.journal_dir();
        if crate::journal::move_legacy(&config.store, &journal_dir)? {
            tracing::warn!(node = %config.node_id, from = %config.store.join(crate::journal::JOURNAL_DIR).display(), to = %journal_dir.display(), "release journal moved out of the store to its configured place");
        }
        let cases = CaseTable::load(&store)?;
        let mediations = MediationTable::load(&store)?;
        let population = PopulationTable::load(&store)?;
        let (cases, mediations, population) = (Arc::new(cases), Arc::new(mediations), Arc::new(population));
        let store_source = StoreSource {
            cases: Arc::clone(&cases),
            mediations: Arc::clone(&mediations),
            population: Arc::clone(&population),
        };
        let (source, source_facts): (Arc<dyn Source>, Vec<DatasetFacts>) = match config.data_source.kind {
            crate::source::config::SourceKind::Store => (Arc::new(store_source), vec![]),
            crate::source::config::SourceKind::Postgres => {
                let (pg, facts) = block_on(PgSource::open(&config.data_source, store_source))??;
                (Arc::new(pg), facts)
            }
        };
        let mut datasets = Vec::new();
        for ds in schema::DATASETS {
            let name = &ds.name.to_string();
            let rows = store.count(name)?;
            let held = held_forms(store.stored_forms(name)?, rows, config);
            let fields = ds
                .fields
                .iter()
                .map(|f| pb::FieldInfo {
                    name: f.name.into(),
                    grade: f.grade.to_string(),
                    personal: f.personal.tag().into(),
                    stored_as: stored_as(f, config, held).into(),
                })
                .collect();
            let (data_until, regions) = match name.as_str() {
                "cases" => (cases.data_until(), cases.regions()),
                "mediations" => (mediations.data_until(), mediations.regions()),
                "population" => (population.data_until(), population.regions()),
                _ => (None, vec![]),
            };
            let data_until = data_until.unwrap_or_default();
            // A dataset the database serves: its accepted rows, span and regions.
            let (rows, data_until, regions) = match source_facts.iter().find(|f| &f.dataset == name) {
                Some(f) => (f.accepted, f.data_until.clone().unwrap_or_default(), f.regions.clone()),
                None => (rows, data_until, regions),
            };
            datasets.push(pb::DatasetInfo {
                name: name.clone(),
                rows,
                fields,
                last_import: store.meta(&format!("last_import/{name}"))?.unwrap_or_default(),
                data_until,
                regions,
            });
        }
        let served: Vec<&pb::DatasetInfo> =
            datasets.iter().filter(|d| config.policy.datasets.contains(&d.name)).collect();
        if served.iter().all(|d| d.rows == 0) && !config.allow_empty {
            let names: Vec<&str> = served.iter().map(|d| d.name.as_str()).collect();
            return Err(empty(&format!("holds no record of {}", names.join(", "))));
        }
        for d in served.iter().filter(|d| d.rows == 0) {
            tracing::warn!(node = %config.node_id, dataset = %d.name, "serving a dataset with no records: the gateway will count this node missing for it");
        }
        let store_lock = store.into_lock();
        let signer = config.journal_key_file.as_deref().map(shuzhu_ledger::receipt::ReceiptSigner::load).transpose()?;
        let (journal, report) = ReleaseJournal::open(&journal_dir, &config.node_id, signer)?;
        if report.torn_bytes > 0 {
            tracing::warn!(node = %config.node_id, dropped_bytes = report.torn_bytes, "release journal: truncated a torn tail");
        }
        // The store is closed here (its lock kept); the engine holds what it needs in memory.
        Ok(NodeState {
            _store_lock: store_lock,
            journal: Arc::new(journal),
            id: config.node_id.clone(),
            policy: RwLock::new(Arc::new(config.policy.clone())),
            cases,
            mediations,
            population,
            datasets,
            source,
            source_facts,
            metrics: shuzhu_net::admin::Metrics::new(),
            store_dir: config.store.clone(),
            cert_path: config.tls.cert.clone(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        })
    }

    /// The local policy in force.
    pub fn local_policy(&self) -> Arc<LocalPolicy> {
        // A poisoned lock only means a reload panicked; the last stored policy is still whole.
        match self.policy.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Checks a config file's `text` (already read from `path`, which is not opened again) and, when
    /// its local policy passes, puts that policy in force. Returns the new local policy version, or why
    /// it was refused (the old policy stays).
    pub fn reload_from(&self, path: &std::path::Path, text: &str) -> Result<String, String> {
        let policy = checked_local_policy(&self.id, path, text)?;
        let version = policy.version();
        let mut slot = match self.policy.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(policy);
        Ok(version)
    }

    /// Why the node is not ready, or `Ok`.
    pub fn readiness(&self) -> Result<(), String> {
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("shutting down".into());
        }
        Ok(())
    }

    /// Refreshes the gauges read at scrape time and renders every series.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        m.gauge("shuzhu_node_journal_records", &[]).set(self.journal.len() as f64);
        m.gauge("shuzhu_node_journal_bytes", &[]).set(shuzhu_net::admin::dir_bytes(self.journal.dir()) as f64);
        m.gauge("shuzhu_node_store_bytes", &[]).set(shuzhu_net::admin::dir_bytes(&self.store_dir) as f64);
        for d in &self.datasets {
            m.gauge("shuzhu_node_dataset_records", &[("dataset", &d.name)]).set(d.rows as f64);
        }
        if let Ok(t) = shuzhu_net::admin::certificate_not_after(&self.cert_path) {
            m.gauge("shuzhu_node_certificate_expiry_timestamp_seconds", &[]).set(t as f64);
        }
        m.gauge("shuzhu_node_ready", &[]).set(if self.readiness().is_ok() { 1.0 } else { 0.0 });
        m.render()
    }

    /// Number of cases loaded.
    pub fn cases(&self) -> usize {
        match self.source_facts.iter().find(|f| f.dataset == "cases") {
            Some(f) => usize::try_from(f.accepted).unwrap_or(usize::MAX),
            None => self.cases.len(),
        }
    }

    /// District codes the node's data (cases, mediations, population figures) come from.
    pub fn regions(&self) -> Vec<String> {
        let mut all = self.cases.regions();
        all.extend(self.mediations.regions());
        all.extend(self.population.regions());
        all.extend(self.source_facts.iter().flat_map(|f| f.regions.iter().cloned()));
        all.sort();
        all.dedup();
        all
    }

    /// Court codes the node's cases come from.
    pub fn courts(&self) -> Vec<String> {
        let mut all = self.cases.courts();
        all.extend(self.source_facts.iter().flat_map(|f| f.courts.iter().cloned()));
        all.sort();
        all.dedup();
        all
    }
}

/// The local policy of a config file's `text` (read from `path`), when the whole file passes its
/// checks and still names node `id`; otherwise why it was refused.
fn checked_local_policy(id: &str, path: &std::path::Path, text: &str) -> Result<LocalPolicy, String> {
    let config: NodeConfig = shuzhu_net::config::parse(path, text).map_err(|e| e.to_string())?;
    if config.node_id != id {
        return Err("node_id changed; restart the node to change its identity".into());
    }
    Ok(config.policy)
}

struct NodeService {
    state: Arc<NodeState>,
}

impl NodeService {
    fn check_caller<T>(&self, req: &Request<T>, policy: &LocalPolicy) -> Result<String, Status> {
        let certs = shuzhu_net::peer_certificates(req)
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let leaf = certs.first().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        policy
            .gateways
            .iter()
            .find(|g| shuzhu_net::certificate_names(leaf, Role::Gateway, g))
            .cloned()
            .ok_or_else(|| Status::permission_denied("caller is not a gateway this node answers"))
    }
}

/// What the request asks, as journalled (free texts masked and bounded).
fn journal_facts(r: &pb::AggregateRequest, gateway: &str) -> Release {
    Release {
        kind: KIND_RELEASE,
        request_id: r.request_id.chars().take(128).collect(),
        gateway: gateway.to_owned(),
        agency: mask(&r.agency),
        dataset: mask(&r.dataset),
        measures: r.measures.iter().take(16).map(|m| mask(&m.id)).collect(),
        period: r.period.map(|p| format!("{}..{}", p.from_month, p.to_month)).unwrap_or_default(),
        group_by: r.group_by.iter().take(8).map(|d| mask(d)).collect(),
        filters: r
            .filters
            .iter()
            .take(16)
            .map(|f| {
                let text: String = format!("{}={}", f.dimension, f.values.join("|")).chars().take(2000).collect();
                shuzhu_policy::mask::mask_text(&text)
            })
            .collect(),
        release_digest: String::new(),
        reason: String::new(),
    }
}

/// Appends to the journal off the async threads (it waits for an fsync).
async fn journal_append(
    journal: &Arc<ReleaseJournal>,
    node: &str,
    release: Release,
    metrics: &shuzhu_net::admin::Metrics,
) -> Result<crate::journal::Appended, Status> {
    let j = Arc::clone(journal);
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || j.append(&release)).await;
    metrics.seconds("shuzhu_node_journal_append_seconds", &[], started.elapsed());
    match result {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(error)) => {
            tracing::error!(%node, %error, "release journal cannot append; answering nothing");
            Err(Status::unavailable(format!("node {node} cannot journal the release, so it releases nothing")))
        }
        Err(_) => Err(Status::unavailable(format!("node {node} cannot journal the release, so it releases nothing"))),
    }
}

/// Journals a local-policy refusal, then returns it (or `UNAVAILABLE` when it cannot be journalled).
async fn local_refusal(state: &NodeState, mut facts: Release, why: String) -> Status {
    let node = &state.id;
    facts.kind = KIND_REFUSAL;
    facts.reason = why.clone();
    if let Err(status) = journal_append(&state.journal, node, facts, &state.metrics).await {
        return status;
    }
    Status::permission_denied(format!("node {node} local policy: {why}"))
}

#[tonic::async_trait]
impl pb::node_server::Node for NodeService {
    async fn describe(&self, req: Request<pb::DescribeRequest>) -> Result<Response<pb::DescribeResponse>, Status> {
        let policy = self.state.local_policy();
        self.check_caller(&req, &policy)?;
        Ok(Response::new(pb::DescribeResponse {
            node_id: self.state.id.clone(),
            datasets: self.state.datasets.iter().filter(|d| policy.datasets.contains(&d.name)).cloned().collect(),
            local_policy_version: policy.version(),
            threshold: policy.threshold,
            receipt_key_id: self.state.journal.receipt_key_id().unwrap_or_default().to_owned(),
        }))
    }

    async fn aggregate(&self, req: Request<pb::AggregateRequest>) -> Result<Response<pb::AggregateResponse>, Status> {
        let started = std::time::Instant::now();
        let policy = self.state.local_policy();
        let id = crate::ops::request_id_of(&req);
        let (dataset, agency) = crate::ops::labels(&policy, req.get_ref());
        // One span per call, carrying the gateway's request id: gateway and node lines match on it.
        let span = tracing::info_span!("request", request_id = %id);
        let result = tracing::Instrument::instrument(self.aggregate_inner(req), span).await;
        crate::ops::record_call(&self.state.metrics, &dataset, &agency, &result, started.elapsed());
        result
    }
}

impl NodeService {
    async fn aggregate_inner(
        &self,
        req: Request<pb::AggregateRequest>,
    ) -> Result<Response<pb::AggregateResponse>, Status> {
        // The policy in force when the call arrived decides the whole call, even if a reload lands.
        let policy = self.state.local_policy();
        let gateway = self.check_caller(&req, &policy)?;
        let r = req.into_inner();
        let st = &self.state;
        let facts = journal_facts(&r, &gateway);
        if !policy.datasets.contains(&r.dataset) {
            return Err(local_refusal(st, facts, format!("dataset {} is not served here", mask(&r.dataset))).await);
        }
        if !policy.answers(&gateway, &r.agency) {
            return Err(local_refusal(st, facts, "this node does not answer for the requesting agency".into()).await);
        }
        if r.threshold < policy.threshold {
            let why = format!("threshold {} is below this node's own threshold {}", r.threshold, policy.threshold);
            return Err(local_refusal(st, facts, why).await);
        }
        if !["cases", "mediations", "population"].contains(&r.dataset.as_str()) {
            return Err(Status::unimplemented(format!("dataset {} has no aggregation engine", mask(&r.dataset))));
        }
        let dataset = schema::dataset(&r.dataset).ok_or_else(|| Status::invalid_argument("unknown dataset"))?;
        let mut measures = Vec::with_capacity(r.measures.len());
        for m in &r.measures {
            let m = measure(&m.id)
                .filter(|m| m.dataset == r.dataset)
                .ok_or_else(|| Status::invalid_argument(format!("unknown measure {}", mask(&m.id))))?;
            for f in m.reads {
                let grade = dataset.field(f).map_or(schema::Grade::L4, |f| f.grade);
                if grade > policy.max_grade {
                    let why = format!("measure {} reads {f} ({grade}) above the ceiling {}", m.id, policy.max_grade);
                    return Err(local_refusal(st, facts, why).await);
                }
            }
            measures.push(m);
        }
        if measures.is_empty() || measures.len() > 16 {
            return Err(Status::invalid_argument("between 1 and 16 measures must be asked"));
        }
        let mut group_by = Vec::new();
        for d in &r.group_by {
            let d = Dimension::parse(d)
                .ok_or_else(|| Status::invalid_argument(format!("unknown dimension {}", mask(d))))?;
            if group_by.contains(&d) {
                return Err(Status::invalid_argument(format!("dimension {d} is repeated")));
            }
            group_by.push(d);
        }
        if group_by.len() > 4 {
            return Err(Status::invalid_argument("at most 4 group-by dimensions"));
        }
        let mut filters = Vec::new();
        for f in &r.filters {
            let d = Dimension::parse(&f.dimension)
                .filter(|d| !d.is_time())
                .ok_or_else(|| Status::invalid_argument(format!("cannot filter on {}", mask(&f.dimension))))?;
            // A gateway restricts population figures to the districts its court nodes serve: more than a
            // requester may list.
            let most = if d == Dimension::Region { MAX_REGION_FILTER } else { 64 };
            if f.values.is_empty() || f.values.len() > most || !f.values.iter().all(|v| d.accepts_value(v)) {
                return Err(Status::invalid_argument(format!("filter {d} needs 1 to {most} valid {d} values")));
            }
            filters.push(Filter { dimension: d, values: f.values.clone() });
        }
        let period = r.period.ok_or_else(|| Status::invalid_argument("period is required"))?;
        let period = Period::from_wire(period.from_month, period.to_month)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let answer =
            st.source.aggregate(&r.dataset, measures, group_by, period, filters).await.map_err(|e| match e {
                SourceError::Invalid(why) => Status::invalid_argument(why),
                SourceError::Unavailable(why) | SourceError::Config(why) => {
                    tracing::warn!(node = %st.id, reason = %why, "source cannot answer");
                    Status::unavailable(format!("node {}: {why}", st.id))
                }
            })?;
        let groups = answer.groups;
        let ids: Vec<&str> = r.measures.iter().map(|m| m.id.as_str()).collect();
        let (groups, digest) = release(groups, &ids).map_err(|_| Status::internal("encoding failed"))?;
        let digest = hex::encode(digest);
        // Durable in the journal before anything leaves (fail closed).
        let appended =
            journal_append(&st.journal, &st.id, Release { release_digest: digest.clone(), ..facts }, &st.metrics)
                .await?;
        tracing::info!(%gateway, dataset = %r.dataset, groups = groups.len(), release = %&digest[..16], journal_seq = appended.seq, "released partial aggregates");
        let receipt = appended.receipt.map(|signature| pb::ReleaseReceipt {
            journal_seq: appended.seq,
            record_hash: appended.record_hash,
            signature,
            key_id: st.journal.receipt_key_id().unwrap_or_default().to_owned(),
        });
        Ok(Response::new(pb::AggregateResponse {
            receipt,
            node_id: st.id.clone(),
            groups,
            data_until: answer.data_until.unwrap_or_default(),
            data_from: answer.data_from.unwrap_or_default(),
            release_digest: digest,
            threshold: policy.threshold,
            local_policy_version: policy.version(),
        }))
    }
}

/// Runs `fut` to completion from synchronous start-up code: on the current runtime when there is one
/// (the caller is inside `block_in_place`), else on a runtime of its own.
fn block_on<F: Future>(fut: F) -> Result<F::Output, NodeError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(tokio::task::block_in_place(|| handle.block_on(fut))),
        Err(_) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| SourceError::Config(format!("cannot start a runtime: {e}")))?;
            Ok(rt.block_on(fut))
        }
    }
}

fn mask(text: &str) -> String {
    shuzhu_policy::mask::mask_text(&text.chars().take(64).collect::<String>())
}

/// Serves the node on `listener` until `shutdown` resolves, with mutual TLS from `config.tls`. Refuses
/// to start when the certificate does not name `config.node_id`.
pub async fn serve(
    config: &NodeConfig,
    state: Arc<NodeState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), NodeError> {
    shuzhu_net::check_own_certificate(&config.tls.cert, Role::Node, &config.node_id)?;
    let tls =
        shuzhu_net::mutual_tls_server_denying(&config.tls.ca, &config.tls.cert, &config.tls.key, &config.deny_serials)?;
    let incoming = shuzhu_net::tls_incoming(listener, tls, Duration::from_secs(10));
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<NodeServer<NodeService>>().await;
    let final_state = Arc::clone(&state);
    let watcher = config.source.clone().map(|path| {
        let st = Arc::clone(&state);
        let file = path.clone();
        shuzhu_net::reload::spawn_watcher("node local policy", path, shuzhu_net::reload::POLL_EVERY, move |text| {
            st.reload_from(&file, text)
        })
    });
    let svc = NodeServer::new(NodeService { state }).max_decoding_message_size(MAX_REQUEST_BYTES);
    // On the stop signal: NOT_SERVING at once (the gateway stops asking), no new connections, and the
    // calls in flight get `shutdown_grace` to finish.
    let (drain_tx, mut drain_rx) = tokio::sync::watch::channel(false);
    // Connection and request limits at their defaults (shuzhu_net::ServerLimits, docs/operations.md).
    let server = shuzhu_net::ServerLimits::default()
        .server_builder()
        .timeout(Duration::from_secs(30))
        .add_service(health)
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = drain_rx.wait_for(|d| *d).await;
        });
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = shutdown => {
            final_state.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
            reporter.set_not_serving::<NodeServer<NodeService>>().await;
            let _ = drain_tx.send(true);
            let grace = final_state.shutdown_grace;
            tracing::info!(grace_secs = grace.as_secs(), "stopping: draining calls in flight");
            match tokio::time::timeout(grace, &mut server).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!(grace_secs = grace.as_secs(), "grace period over; calls still in flight are dropped");
                    Ok(())
                }
            }
        }
    };
    if let Some(w) = watcher {
        w.abort();
    }
    served?;
    Ok(())
}

/// The minimised forms a dataset holds, as `Describe` reports them: the store's sticky record of every
/// form ever imported; for a store written before that record existed and holding rows, the schema's
/// minimised forms (import always stored them then); for a dataset with no rows and no record, what an
/// import under the config in force would store.
fn held_forms(recorded: Option<StoredForms>, rows: u64, config: &NodeConfig) -> StoredForms {
    match recorded {
        Some(forms) => forms,
        None if rows > 0 => StoredForms::LEGACY,
        None => StoredForms {
            scrubbed_summary: config.minimise.scrub_summary,
            county_address: config.minimise.address_to_county,
        },
    }
}

/// The wire groups of an answer, in the order given, and the SHA-256 of their length-delimited encoding (the
/// release digest the journal records and the receipt signs); `ids` names each group's partials in order.
pub fn release(
    groups: Vec<crate::engine::GroupOut>,
    ids: &[&str],
) -> Result<(Vec<pb::GroupPartial>, ring::digest::Digest), prost::EncodeError> {
    let groups: Vec<pb::GroupPartial> = groups
        .into_iter()
        .map(|g| pb::GroupPartial {
            key: g.key,
            measures: ids
                .iter()
                .zip(g.partials)
                .map(|(id, p)| pb::MeasureValue {
                    id: (*id).to_string(),
                    value: p.value,
                    contributors: p.contributors,
                    max_single: p.max_single,
                })
                .collect(),
        })
        .collect();
    let mut encoded = Vec::new();
    for g in &groups {
        g.encode_length_delimited(&mut encoded)?;
    }
    Ok((groups, ring::digest::digest(&ring::digest::SHA256, &encoded)))
}

/// How this node keeps a field, as `Describe` reports it: `raw` when the local policy keeps it raw,
/// `dropped` when no row of the dataset holds the scrubbed summary or the county code of the address
/// (`held`, see [`held_forms`]; `[minimise]` turned them off at every import), otherwise the schema's
/// minimised form.
fn stored_as(f: &schema::Field, config: &NodeConfig, held: StoredForms) -> &'static str {
    if config.policy.keep_raw.iter().any(|k| k == f.name) {
        return "raw";
    }
    match f.storage {
        schema::Storage::Scrubbed if !held.scrubbed_summary => schema::Storage::Dropped.as_str(),
        schema::Storage::County if !held.county_address => schema::Storage::Dropped.as_str(),
        other => other.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::seam::Seam;

    const CONFIG: &str = r#"
node_id = "court-1"
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
threshold = 10
"#;

    /// A `cases` CSV of rows `ids`, each with a defendant address and a summary.
    fn cases_csv(ids: std::ops::Range<u32>, cause: &str) -> Vec<u8> {
        let cases = schema::dataset("cases").unwrap();
        let mut text = cases.fields.iter().map(|f| f.name).collect::<Vec<_>>().join(",");
        text.push('\n');
        for i in ids {
            let cell = |name: &str| -> String {
                match name {
                    "case_no" => format!("(2023)闽0213民初{i}号"),
                    "court_code" => "闽0213".into(),
                    "region_code" => "350213".into(),
                    "type_code" => "民初".into(),
                    "cause" => cause.into(),
                    "filed_on" => "2023-01-05".into(),
                    "deadline_on" => "2023-07-05".into(),
                    "appealed" | "pre_suit_mediated" | "minor_involved" => "false".into(),
                    "online_filed" => "true".into(),
                    "judge_id" => "J0213001".into(),
                    "plaintiff_kind" => "自然人".into(),
                    "defendant_kind" => "法人".into(),
                    "plaintiff_name" => "张伟".into(),
                    "defendant_name" => "厦门某某贸易有限公司".into(),
                    "defendant_address" => "福建省厦门市思明区湖滨南路123号".into(),
                    "summary" => "原告张伟诉被告厦门某某贸易有限公司".into(),
                    _ => String::new(),
                }
            };
            text.push_str(&cases.fields.iter().map(|f| cell(f.name)).collect::<Vec<_>>().join(","));
            text.push('\n');
        }
        text.into_bytes()
    }

    /// What `Describe` says of `summary` and `defendant_address` of `cases` under `config`.
    fn described(config: &NodeConfig) -> (String, String) {
        let state = NodeState::load(&NodeConfig { allow_empty: true, ..config.clone() }).unwrap();
        let cases = state.datasets.iter().find(|d| d.name == "cases").unwrap();
        let field = |name: &str| cases.fields.iter().find(|f| f.name == name).unwrap().stored_as.clone();
        (field("summary"), field("defendant_address"))
    }

    fn import(config: &NodeConfig, text: &[u8]) -> crate::import::ImportReport {
        let store = SledStore::open(&config.store).unwrap();
        let key = shuzhu_policy::pseudonym::PseudonymKey::from_bytes(&[3u8; 32]).unwrap();
        let opts = crate::import::ImportOptions {
            dataset: "cases",
            key: &key,
            keep_raw: &config.policy.keep_raw,
            minimise: config.minimise,
            progress: &mut |_| {},
        };
        crate::import::import_reader(&store, text, "test", opts).unwrap()
    }

    #[test]
    fn describe_reports_the_most_revealing_form_ever_imported_into_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = |name: &str, extra: &str| {
            let path = dir.path().join(format!("{name}.toml"));
            std::fs::write(
                &path,
                format!("{CONFIG}{extra}").replace("store = \"store\"", &format!("store = \"{name}\"")),
            )
            .unwrap();
            NodeConfig::load(&path).unwrap()
        };
        let off = "[minimise]\nscrub_summary = false\naddress_to_county = false\n";
        let scrubbed = || ("scrubbed".to_string(), "county".to_string());
        let dropped = || ("dropped".to_string(), "dropped".to_string());

        // Imported with both on, then (other rows, and the same rows changed) with both off: rows scrubbed
        // by the first import remain, so Describe still says so.
        let (on_a, off_a) = (config("a", ""), config("a-off", off));
        let off_a = NodeConfig { store: on_a.store.clone(), ..off_a };
        let first = import(&on_a, &cases_csv(0..5, "民间借贷纠纷"));
        assert!(first.minimise_dropped.is_empty(), "{:?}", first.minimise_dropped);
        assert_eq!(described(&on_a), scrubbed());
        let second = import(&off_a, &cases_csv(3..8, "买卖合同纠纷"));
        assert_eq!((second.imported, second.total_records), (5, 8));
        let mut said = second.minimise_dropped.clone();
        said.sort();
        assert_eq!(said, ["defendant_address", "summary"]);
        assert_eq!(described(&off_a), scrubbed(), "the config in force does not decide");
        assert_eq!(described(&on_a), scrubbed());

        // A fresh store imported with both off holds neither form, whatever the config says now.
        let (off_b, on_b) = (config("b", off), config("b-on", ""));
        let on_b = NodeConfig { store: off_b.store.clone(), ..on_b };
        assert_eq!(described(&off_b), dropped(), "an empty dataset: what an import would store");
        import(&off_b, &cases_csv(0..5, "民间借贷纠纷"));
        assert_eq!(described(&off_b), dropped());
        assert_eq!(described(&on_b), dropped());
        // One changed row stored scrubbed makes the record say so from then on.
        import(&on_b, &cases_csv(4..5, "买卖合同纠纷"));
        assert_eq!(described(&off_b), scrubbed());

        // A store from before the record existed, with rows: the schema's minimised forms, and an import
        // with both off keeps them so.
        let (legacy, source) = (config("c", off), config("c0", ""));
        import(&source, &cases_csv(0..3, "民间借贷纠纷"));
        {
            let (from, to) = (SledStore::open(&source.store).unwrap(), SledStore::open(&legacy.store).unwrap());
            let mut rows = Vec::new();
            from.scan("cases", &mut |k, v| rows.push((k.to_vec(), v.to_vec()))).unwrap();
            to.upsert("cases", &rows).unwrap(); // as import wrote before it recorded forms
            to.make_durable().unwrap();
            assert_eq!(to.stored_forms("cases").unwrap(), None);
        }
        assert_eq!(described(&legacy), scrubbed());
        import(&legacy, &cases_csv(0..2, "民间借贷纠纷"));
        assert_eq!(described(&legacy), scrubbed());
        assert_eq!(
            stored_as(
                schema::dataset("cases").unwrap().field("plaintiff_name").unwrap(),
                &legacy,
                StoredForms::default()
            ),
            "pseudonym"
        );
    }

    #[test]
    fn a_reload_checks_the_text_handed_over_and_never_reopens_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        // The file is gone: only the text handed over can decide.
        let path = tmp.path().join("node.toml");
        let stricter = CONFIG.replace("threshold = 10", "threshold = 25");
        let policy = checked_local_policy("court-1", &path, &stricter).unwrap();
        assert_eq!(policy.threshold, 25);
        assert_ne!(policy.version(), checked_local_policy("court-1", &path, CONFIG).unwrap().version());
        let other_id = checked_local_policy("court-2", &path, CONFIG).unwrap_err();
        assert!(other_id.contains("node_id changed"), "{other_id}");
        let broken = checked_local_policy("court-1", &path, &CONFIG.replace("threshold = 10", "threshold = 2"));
        assert!(broken.unwrap_err().contains("threshold"));
        let unknown = checked_local_policy("court-1", &path, &CONFIG.replace("[policy]", "[policy]\nmystery = 1"));
        assert!(unknown.unwrap_err().contains("mystery"));
    }

    #[tokio::test]
    async fn a_node_whose_journal_cannot_sync_answers_unavailable_and_journals_refusals() {
        let tmp = tempfile::tempdir().unwrap();
        let seam = Seam::default();
        let (j, _) = ReleaseJournal::open_with_io(tmp.path(), "court-1", None, Box::new(seam.clone())).unwrap();
        let j = Arc::new(j);
        let req = pb::AggregateRequest {
            request_id: "req-1".into(),
            dataset: "cases".into(),
            agency: "xm-sfj".into(),
            period: Some(pb::Period { from_month: 202401, to_month: 202406 }),
            ..Default::default()
        };
        let facts = journal_facts(&req, "gw-1");
        assert_eq!(facts.period, "202401..202406");
        let refusal = Release { kind: KIND_REFUSAL, reason: "dataset x is not served here".into(), ..facts.clone() };
        journal_append(&j, "court-1", refusal, &shuzhu_net::admin::Metrics::new()).await.unwrap();
        let a = journal_append(
            &j,
            "court-1",
            Release { release_digest: "ab".repeat(32), ..facts.clone() },
            &shuzhu_net::admin::Metrics::new(),
        )
        .await
        .unwrap();
        assert_eq!(a.seq, 1);
        seam.fail_sync.store(true, std::sync::atomic::Ordering::SeqCst);
        let status =
            journal_append(&j, "court-1", facts.clone(), &shuzhu_net::admin::Metrics::new()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("releases nothing"), "{}", status.message());
        seam.fail_sync.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            journal_append(&j, "court-1", facts, &shuzhu_net::admin::Metrics::new()).await.unwrap_err().code(),
            tonic::Code::Unavailable
        );
        drop(j);
        let (records, report) = crate::journal::load(tmp.path()).unwrap();
        assert_eq!((report.releases, report.refusals), (report.records - 1, 1));
        assert_eq!(records[0].record.kind, KIND_REFUSAL);
        assert_eq!(records[0].record.gateway, "gw-1");
    }
}
