//! The `Gateway` and `Audit` gRPC services and the server that carries them (TLS 1.3, health,
//! reflection).
//!
//! Every request is authenticated from its bearer token and lands in the audit ledger, allowed or not.
//! The entry is appended durably *before* the answer leaves: if the ledger cannot append, the request
//! fails (no audit, no answer). Requesters get generic authentication errors; the precise reason goes
//! to the ledger.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shuzhu_policy::indicator::indicators;
use shuzhu_proto::v1 as pb;
use shuzhu_proto::v1::audit_server::AuditServer;
use shuzhu_proto::v1::gateway_server::GatewayServer;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::audit::{AuditRecord, PrincipalRecord};
use crate::auth::{Principal, Role};
use crate::failures::Admission;
use crate::ledger::{AuditChain, ChainEntry, LedgerError};
use crate::state::{GatewayState, StartError};

/// Largest request the gateway accepts from a requester.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Generic message for every authentication failure.
pub(crate) const UNAUTHENTICATED: &str = "invalid or missing credentials";

pub(crate) fn request_id() -> String {
    let mut bytes = [0u8; 8];
    // The system RNG failing is not recoverable in a meaningful way; fall back to the clock.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        bytes = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0).to_be_bytes();
    }
    hex::encode(bytes)
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Shared behaviour of both services.
#[derive(Clone)]
pub struct Services {
    state: Arc<GatewayState>,
}

impl Services {
    /// The services over a gateway's state (the gRPC server and the HTTPS JSON API share one).
    pub fn new(state: Arc<GatewayState>) -> Self {
        Services { state }
    }

    /// The gateway's state.
    pub(crate) fn state(&self) -> &Arc<GatewayState> {
        &self.state
    }

    /// Verifies the bearer token. Records the peer in every entry and the token's `jti` when it
    /// verifies; a failure past the peer's budget is only counted (see [`crate::failures`]).
    pub(crate) fn authenticate<T>(&self, req: &Request<T>, record: &mut AuditRecord) -> Result<Principal, Status> {
        let peer = req.remote_addr();
        record.peer = peer.map(|p| p.to_string()).unwrap_or_default();
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        match self.state.auth.authenticate(header, now_unix()) {
            Ok(p) => {
                record.principal = Some(PrincipalRecord::from(&p));
                record.jti = p.token_id.as_deref().map(crate::audit::clip).unwrap_or_default();
                Ok(p)
            }
            Err(failure) => {
                record.decision = "unauthenticated".into();
                record.reason = failure.reason().into();
                let admitted =
                    self.state.failures.admit(peer.map(|p| p.ip()), failure.reason(), Instant::now(), &record.time);
                record.counted_only = admitted == Admission::Counted;
                Err(Status::unauthenticated(UNAUTHENTICATED))
            }
        }
    }

    /// Appends `record` durably, then returns `outcome`; if the ledger fails, the request fails. A
    /// failure only counted into a summary is not appended here; a ledger disk below its free-space
    /// floor refuses every request.
    pub(crate) async fn audited<T>(
        &self,
        mut record: AuditRecord,
        started: Instant,
        outcome: Result<T, Status>,
    ) -> Result<(u64, T), Status> {
        if record.counted_only {
            crate::ops::record_counted_failure(&self.state, &record);
            return outcome.map(|v| (0, v));
        }
        record.latency_ms = started.elapsed().as_millis() as u64;
        let request_id = record.request_id.clone();
        let state = Arc::clone(&self.state);
        let appended = tokio::task::spawn_blocking(move || {
            let result = match state.ledger_space_problem() {
                Some(problem) => Err(Err(problem)),
                None => {
                    // The books' lines this request added are committed by its own entry, before the
                    // answer leaves (see `crate::books`).
                    record.books = state.books_to_commit();
                    let append = Instant::now();
                    let r = state.ledger.append_record(&record).map_err(Ok);
                    state.metrics.seconds("shuzhu_gateway_ledger_append_seconds", &[], append.elapsed());
                    if r.is_ok()
                        && let Some(heads) = record.books.clone()
                    {
                        state.books_committed(heads);
                    }
                    r
                }
            };
            crate::ops::record_request(&state, &record, started.elapsed());
            result
        })
        .await;
        match appended {
            Ok(Ok(seq)) => outcome.map(|v| (seq, v)),
            Ok(Err(Err(problem))) => {
                tracing::error!(%request_id, %problem, "audit ledger disk low; refusing to answer");
                Err(Status::unavailable(problem))
            }
            Ok(Err(Ok(error))) => {
                tracing::error!(%request_id, %error, "audit append failed; refusing to answer");
                Err(Status::unavailable("the audit ledger cannot record this request, so it is not answered"))
            }
            Err(_) => Err(Status::unavailable("the audit ledger cannot record this request, so it is not answered")),
        }
    }

    pub(crate) fn record(&self, action: &str, id: &str) -> AuditRecord {
        AuditRecord::new(&self.state.id, id, action, &self.state.current_policy().version)
    }
}

#[tonic::async_trait]
impl pb::gateway_server::Gateway for Services {
    async fn query(&self, req: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let id = request_id();
        // One span per request: every line logged while it runs, here and at the nodes (which get the
        // id in the `x-request-id` header), carries its request id.
        let span = tracing::info_span!("request", request_id = %id);
        tracing::Instrument::instrument(self.query_in_span(req, id), span).await
    }

    async fn list_indicators(
        &self,
        req: Request<pb::ListIndicatorsRequest>,
    ) -> Result<Response<pb::ListIndicatorsResponse>, Status> {
        let started = Instant::now();
        let mut record = self.record("list_indicators", &request_id());
        let outcome = self.authenticate(&req, &mut record).map(|_| {
            record.decision = "allow".into();
            pb::ListIndicatorsResponse { indicators: indicator_infos() }
        });
        let (_, answer) = self.audited(record, started, outcome).await?;
        Ok(Response::new(answer))
    }
}

impl Services {
    async fn query_in_span(
        &self,
        req: Request<pb::QueryRequest>,
        id: String,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let started = Instant::now();
        let mut record = self.record("query", &id);
        let outcome = match self.authenticate(&req, &mut record) {
            Err(s) => Err(s),
            Ok(p) if !p.has_role(Role::Requester) => {
                record.decision = "deny".into();
                record.reason = "role: querying data needs the requester role".into();
                Err(Status::permission_denied("querying data needs the requester role"))
            }
            Ok(p) => crate::query::execute(&self.state, &p, req.into_inner(), &id, &mut record).await,
        };
        let decision = record.decision.clone();
        let (seq, mut answer) = self.audited(record, started, outcome).await.inspect_err(|s| {
            tracing::info!(request_id = %id, code = ?s.code(), %decision, "query refused");
        })?;
        answer.audit_seq = seq;
        tracing::info!(request_id = %id, audit_seq = seq, rows = answer.rows.len(), "query answered");
        Ok(Response::new(answer))
    }
}

impl Services {
    /// Authenticates and requires the auditor role; marks the record allowed when it passes.
    fn auditor<T>(&self, req: &Request<T>, record: &mut AuditRecord) -> Result<Principal, Status> {
        let p = self.authenticate(req, record)?;
        if !p.has_role(Role::Auditor) {
            record.decision = "deny".into();
            record.reason = "role: reading the ledger needs the auditor role".into();
            return Err(Status::permission_denied("reading the audit ledger needs the auditor role"));
        }
        record.decision = "allow".into();
        Ok(p)
    }

    /// Runs a ledger read off the async threads.
    async fn read_ledger<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AuditChain) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, Status> {
        let ledger = Arc::clone(&self.state.ledger);
        match tokio::task::spawn_blocking(move || f(&ledger)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(LedgerError::Ledger(shuzhu_ledger::LedgerError::NotFound(_)))) => {
                Err(Status::not_found("no such entry or tree size in the audit ledger"))
            }
            Ok(Err(LedgerError::InvalidRequest(why))) => Err(Status::invalid_argument(why)),
            Ok(Err(LedgerError::Ledger(shuzhu_ledger::LedgerError::Merkle(_)))) => {
                Err(Status::invalid_argument("tree sizes or index out of range for the audit ledger"))
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "audit ledger read failed");
                Err(Status::unavailable("the audit ledger cannot be read"))
            }
            Err(_) => Err(Status::unavailable("the audit ledger cannot be read")),
        }
    }

    /// Runs an auditor read: checks the role, runs `read` when allowed, and records the read
    /// (allowed or not) before answering.
    pub(crate) async fn audit_read<T: Send + 'static, F>(
        &self,
        action: &str,
        req: Request<impl Send>,
        filters: Vec<String>,
        read: F,
    ) -> Result<Response<T>, Status>
    where
        F: FnOnce(&AuditChain) -> Result<T, LedgerError> + Send + 'static,
    {
        let started = Instant::now();
        // The auditor sees every counted authentication failure up to now.
        flush_failure_summaries(&self.state).await;
        let mut record = self.record(action, &request_id());
        record.filters = filters;
        let outcome = match self.auditor(&req, &mut record) {
            Err(s) => Err(s),
            Ok(_) => self.read_ledger(read).await,
        };
        if let Err(s) = &outcome
            && record.decision == "allow"
        {
            record.decision = if s.code() == tonic::Code::InvalidArgument { "invalid" } else { "error" }.into();
            record.reason = format!("read failed: {}", s.message());
        }
        let (_, answer) = self.audited(record, started, outcome).await?;
        Ok(Response::new(answer))
    }
}

/// Appends one summary entry per (peer, reason) of the authentication failures counted since the last
/// summary; counts the ledger could not take are kept for the next one.
pub async fn flush_failure_summaries(state: &Arc<GatewayState>) {
    let pending = state.failures.take_pending();
    if pending.is_empty() {
        return;
    }
    let st = Arc::clone(state);
    let done = tokio::task::spawn_blocking(move || {
        let mut left = Vec::new();
        let mut failed = None;
        for (peer, reason, count) in pending {
            if failed.is_some() {
                left.push((peer, reason, count));
                continue;
            }
            let mut record = AuditRecord::new(&st.id, &request_id(), "auth_failures", &st.current_policy().version);
            record.decision = "unauthenticated".into();
            record.reason = reason.into();
            record.peer = peer.clone();
            record.failures = Some(count.clone());
            let appended = match st.ledger_space_problem() {
                Some(problem) => Err(problem),
                None => st.ledger.append_record(&record).map(|_| ()).map_err(|e| e.to_string()),
            };
            if let Err(problem) = appended {
                failed = Some(problem);
                left.push((peer, reason, count));
            }
        }
        if !left.is_empty() {
            st.failures.restore(left);
        }
        failed
    })
    .await;
    if let Ok(Some(problem)) = done {
        tracing::error!(%problem, "authentication failure summary not recorded; kept for the next");
    }
}

fn entry_pb(e: ChainEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        body: e.body,
        prev_hash: e.prev_hash,
        hash: e.hash,
        time_ms: e.time_ms,
        purged: e.purged,
    }
}

/// A `Write` that sends what is written as chunks of a server stream (from a blocking thread).
struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<Result<pb::ExportChunk, Status>>,
    buf: Vec<u8>,
}

const EXPORT_CHUNK: usize = 64 * 1024;

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= EXPORT_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(Ok(pb::ExportChunk { data }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the export stream was closed"))
    }
}

type ExportStream = tokio_stream::wrappers::ReceiverStream<Result<pb::ExportChunk, Status>>;

#[tonic::async_trait]
impl pb::audit_server::Audit for Services {
    async fn list_entries(
        &self,
        req: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let r = req.get_ref().clone();
        let limit = match r.limit {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let filter = shuzhu_ledger::Filter {
            from_ms: (r.from_time_ms > 0).then_some(r.from_time_ms),
            to_ms: (r.to_time_ms > 0).then_some(r.to_time_ms),
            agency: Some(r.agency.clone()).filter(|s| !s.is_empty()),
            principal: Some(r.principal.clone()).filter(|s| !s.is_empty()),
            indicator: Some(r.indicator.clone()).filter(|s| !s.is_empty()),
            decision: Some(r.decision.clone()).filter(|s| !s.is_empty()),
        };
        let mut filters = vec![format!("from_seq={}", r.from_seq), format!("limit={limit}")];
        for (k, v) in
            [("agency", &r.agency), ("principal", &r.principal), ("indicator", &r.indicator), ("decision", &r.decision)]
        {
            if !v.is_empty() {
                filters.push(format!("{k}={}", crate::audit::clip(v)));
            }
        }
        if r.from_time_ms > 0 || r.to_time_ms > 0 {
            filters.push(format!("time_ms={}..{}", r.from_time_ms, r.to_time_ms));
        }
        let filtered = filter != shuzhu_ledger::Filter::default() || !r.page_token.is_empty();
        self.audit_read("audit.list_entries", req, filters, move |ledger| {
            let cursor = match r.page_token.as_str() {
                "" => None,
                t => Some(
                    hex::decode(t).map_err(|_| LedgerError::InvalidRequest("page_token is not one the server gave"))?,
                ),
            };
            let total = ledger.len();
            if !filtered {
                let from = r.from_seq.max(1);
                let out: Vec<pb::AuditEntry> = ledger.list(from, limit)?.into_iter().map(entry_pb).collect();
                return Ok(pb::ListEntriesResponse {
                    next_seq: out.last().map_or(from, |e| e.seq + 1),
                    entries: out,
                    total,
                    next_page_token: String::new(),
                });
            }
            let page = ledger.ledger().list(&filter, cursor.as_deref(), limit)?;
            let mut out = Vec::with_capacity(page.entries.len());
            // With filters, `from_seq` still bounds the page from below (a page may then hold fewer).
            for stored in page.entries.iter().filter(|e| e.seq + 1 >= r.from_seq) {
                out.push(entry_pb(ledger.listed(stored)?));
            }
            Ok(pb::ListEntriesResponse {
                next_seq: out.last().map_or(0, |e| e.seq + 1),
                entries: out,
                total,
                next_page_token: page.next.map(hex::encode).unwrap_or_default(),
            })
        })
        .await
    }

    async fn get_entry(&self, req: Request<pb::GetEntryRequest>) -> Result<Response<pb::GetEntryResponse>, Status> {
        let pb::GetEntryRequest { seq, tree_size } = *req.get_ref();
        let filters = vec![format!("seq={seq}"), format!("tree_size={tree_size}")];
        self.audit_read("audit.get_entry", req, filters, move |ledger| {
            let (listed, stored) = ledger.entry(seq)?;
            let (size, note) = if tree_size == 0 {
                let (cp, note) = ledger.checkpoint_covering(seq)?;
                (cp.size, note)
            } else {
                if tree_size < seq {
                    return Err(LedgerError::Ledger(shuzhu_ledger::LedgerError::NotFound(tree_size)));
                }
                (tree_size, ledger.checkpoint_of_size(tree_size)?.unwrap_or_default())
            };
            let proof = ledger.ledger().inclusion_proof(seq - 1, size)?;
            let fields = stored
                .fields
                .iter()
                .filter_map(|f| {
                    let (salt, value) = f.plaintext.as_ref()?;
                    Some(pb::EntryField { name: f.name.clone(), salt_hex: hex::encode(salt), value: value.clone() })
                })
                .collect();
            Ok(pb::GetEntryResponse {
                leaf: stored.leaf.clone(),
                entry: Some(entry_pb(listed)),
                fields,
                tree_size: size,
                inclusion_proof: proof.into_iter().map(|h| h.to_vec()).collect(),
                checkpoint: note,
            })
        })
        .await
    }

    async fn get_checkpoint(
        &self,
        req: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        self.audit_read("audit.get_checkpoint", req, vec![], |ledger| {
            let (cp, note) = ledger.checkpoint_covering(ledger.len())?;
            Ok(pb::GetCheckpointResponse { note, size: cp.size, root: cp.root.to_vec() })
        })
        .await
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let pb::GetConsistencyProofRequest { old_size, new_size } = *req.get_ref();
        let filters = vec![format!("old_size={old_size}"), format!("new_size={new_size}")];
        self.audit_read("audit.get_consistency_proof", req, filters, move |ledger| {
            let new_size = match new_size {
                0 => ledger.checkpoint_covering(0)?.0.size,
                n => n,
            };
            if old_size > new_size || new_size > ledger.len() {
                return Err(LedgerError::InvalidRequest("old_size must not exceed new_size, nor new_size the ledger"));
            }
            let l = ledger.ledger();
            Ok(pb::GetConsistencyProofResponse {
                old_size,
                new_size,
                proof: l.consistency_proof(old_size, new_size)?.into_iter().map(|h| h.to_vec()).collect(),
                old_root: l.root_at(old_size)?.to_vec(),
                new_root: l.root_at(new_size)?.to_vec(),
                old_checkpoint: ledger.checkpoint_of_size(old_size)?.unwrap_or_default(),
                new_checkpoint: ledger.checkpoint_of_size(new_size)?.unwrap_or_default(),
            })
        })
        .await
    }

    type ExportStream = ExportStream;

    async fn export(&self, req: Request<pb::ExportRequest>) -> Result<Response<ExportStream>, Status> {
        // The read is recorded before the first byte leaves; the export then covers it.
        self.audit_read("audit.export", req, vec![], |_| Ok(())).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let ledger = Arc::clone(&self.state.ledger);
        tokio::task::spawn_blocking(move || {
            let mut sink = ChunkSender { tx: tx.clone(), buf: Vec::new() };
            if let Err(error) = ledger.export(&mut sink) {
                tracing::error!(%error, "audit export failed");
                let _ = tx.blocking_send(Err(Status::unavailable("the audit ledger cannot be exported")));
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

/// Serves the gateway's requester-facing services on `listener` (TLS 1.3 with the gateway's
/// certificate) until `shutdown` resolves.
pub async fn serve(
    state: Arc<GatewayState>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let incoming = shuzhu_net::tls_incoming_limited(listener, tls, &state.limits);
    let (reporter, health) = tonic_health::server::health_reporter();
    crate::ops::set_status(&reporter, crate::ops::readiness(&state).is_ok()).await;
    let health_watch = tokio::spawn(crate::ops::watch_health(Arc::clone(&state), reporter.clone()));
    // Reflection in both versions: grpcurl, Postman and Kreya ask for either.
    let reflection_err =
        |e: tonic_reflection::server::Error| StartError::Node { node: "reflection".into(), message: e.to_string() };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(shuzhu_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(reflection_err)?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(shuzhu_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(reflection_err)?;
    let watched = Arc::clone(&state);
    let watcher = shuzhu_net::reload::spawn_watcher(
        "policy",
        state.policy_path.clone(),
        shuzhu_net::reload::POLL_EVERY,
        move |text| watched.reload_policy_text(text).map_err(|e| e.to_string()),
    );
    let checkpoint_ledger = Arc::clone(&state.ledger);
    let summarised = Arc::clone(&state);
    let summaries = tokio::spawn(async move {
        let mut every = tokio::time::interval(summarised.failure_summary_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            flush_failure_summaries(&summarised).await;
        }
    });
    let final_state = Arc::clone(&state);
    let limits = state.limits.clone();
    let services = Services::new(state);
    // On the stop signal: NOT_SERVING at once (balancers stop sending), no new connections, and the
    // requests in flight get `shutdown_grace` to finish.
    let (drain_tx, mut drain_rx) = tokio::sync::watch::channel(false);
    let server = limits
        .server_builder()
        .timeout(Duration::from_secs(60))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(GatewayServer::new(services.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(AuditServer::new(services).max_decoding_message_size(MAX_REQUEST_BYTES))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = drain_rx.wait_for(|d| *d).await;
        });
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = shutdown => {
            health_watch.abort();
            final_state.health.stop();
            crate::ops::set_status(&reporter, false).await;
            let _ = drain_tx.send(true);
            let grace = final_state.shutdown_grace;
            tracing::info!(grace_secs = grace.as_secs(), "stopping: draining requests in flight");
            match tokio::time::timeout(grace, &mut server).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!(grace_secs = grace.as_secs(), "grace period over; requests still in flight are dropped");
                    Ok(())
                }
            }
        }
    };
    health_watch.abort();
    watcher.abort();
    summaries.abort();
    flush_failure_summaries(&final_state).await;
    // Graceful shutdown: seal what was appended with a checkpoint before returning.
    if let Err(error) = checkpoint_ledger.ledger().checkpoint() {
        tracing::warn!(%error, "could not sign the shutdown audit checkpoint");
    }
    served?;
    Ok(())
}

/// The catalogue's indicators as `ListIndicators` shows them (the CLI shows a local catalogue the same way).
pub fn indicator_infos() -> Vec<pb::IndicatorInfo> {
    let catalogue = shuzhu_policy::catalogue::Catalogue::current();
    indicators()
        .into_iter()
        .map(|i| pb::IndicatorInfo {
            id: i.id.into(),
            name: i.name.into(),
            formula: i.formula.into(),
            dimensions: i.dimensions.iter().map(|d| d.as_str().into()).collect(),
            kind: i.kind.as_str().into(),
            datasets: i.datasets().iter().map(|d| d.to_string()).collect(),
            grade: catalogue.grade_of(i.id, &[]).map(|g| format!("{g:?}")).unwrap_or_default(),
        })
        .collect()
}
