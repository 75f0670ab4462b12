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
use crate::state::{GatewayState, StartError};

/// Largest request the gateway accepts from a requester.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Generic message for every authentication failure.
const UNAUTHENTICATED: &str = "invalid or missing credentials";

fn request_id() -> String {
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
    fn authenticate<T>(&self, req: &Request<T>, record: &mut AuditRecord) -> Result<Principal, Status> {
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        match self.state.auth.authenticate(header, now_unix()) {
            Ok(p) => {
                record.principal = Some(PrincipalRecord::from(&p));
                Ok(p)
            }
            Err(failure) => {
                record.decision = "unauthenticated".into();
                record.reason = failure.reason().into();
                Err(Status::unauthenticated(UNAUTHENTICATED))
            }
        }
    }

    /// Appends `record` durably, then returns `outcome`; if the ledger fails, the request fails.
    async fn audited<T>(
        &self,
        mut record: AuditRecord,
        started: Instant,
        outcome: Result<T, Status>,
    ) -> Result<(u64, T), Status> {
        record.latency_ms = started.elapsed().as_millis() as u64;
        let body = record.canonical();
        let ledger = Arc::clone(&self.state.ledger);
        let appended = tokio::task::spawn_blocking(move || ledger.append(body)).await;
        match appended {
            Ok(Ok(seq)) => outcome.map(|v| (seq, v)),
            Ok(Err(error)) => {
                tracing::error!(request_id = %record.request_id, %error, "audit append failed; refusing to answer");
                Err(Status::unavailable("the audit ledger cannot record this request, so it is not answered"))
            }
            Err(_) => Err(Status::unavailable("the audit ledger cannot record this request, so it is not answered")),
        }
    }

    fn record(&self, action: &str, id: &str) -> AuditRecord {
        AuditRecord::new(&self.state.id, id, action, &self.state.current_policy().version)
    }
}

#[tonic::async_trait]
impl pb::gateway_server::Gateway for Services {
    async fn query(&self, req: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let started = Instant::now();
        let id = request_id();
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

    async fn list_indicators(
        &self,
        req: Request<pb::ListIndicatorsRequest>,
    ) -> Result<Response<pb::ListIndicatorsResponse>, Status> {
        let started = Instant::now();
        let mut record = self.record("list_indicators", &request_id());
        let outcome = self.authenticate(&req, &mut record).map(|_| {
            record.decision = "allow".into();
            pb::ListIndicatorsResponse {
                indicators: indicators()
                    .into_iter()
                    .map(|i| pb::IndicatorInfo {
                        id: i.id.into(),
                        name: i.name.into(),
                        formula: i.formula.into(),
                        dimensions: i.dimensions.iter().map(|d| d.as_str().into()).collect(),
                        kind: i.kind.as_str().into(),
                    })
                    .collect(),
            }
        });
        let (_, answer) = self.audited(record, started, outcome).await?;
        Ok(Response::new(answer))
    }
}

#[tonic::async_trait]
impl pb::audit_server::Audit for Services {
    async fn list_entries(
        &self,
        req: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let started = Instant::now();
        let mut record = self.record("audit.list_entries", &request_id());
        let outcome = match self.authenticate(&req, &mut record) {
            Err(s) => Err(s),
            Ok(p) if !p.has_role(Role::Auditor) => {
                record.decision = "deny".into();
                record.reason = "role: reading the ledger needs the auditor role".into();
                Err(Status::permission_denied("reading the audit ledger needs the auditor role"))
            }
            Ok(_) => {
                let r = req.get_ref();
                let limit = match r.limit {
                    0 => 100,
                    n => n.min(1000) as usize,
                };
                record.decision = "allow".into();
                record.filters = vec![format!("from_seq={}", r.from_seq), format!("limit={limit}")];
                let ledger = Arc::clone(&self.state.ledger);
                let from = r.from_seq.max(1);
                match tokio::task::spawn_blocking(move || ledger.list(from, limit).map(|e| (e, ledger.len()))).await {
                    Ok(Ok((entries, total))) => Ok(pb::ListEntriesResponse {
                        next_seq: entries.last().map_or(from, |e| e.seq + 1),
                        entries: entries
                            .into_iter()
                            .map(|e| pb::AuditEntry { seq: e.seq, body: e.body, prev_hash: e.prev_hash, hash: e.hash })
                            .collect(),
                        total,
                    }),
                    _ => Err(Status::unavailable("the audit ledger cannot be read")),
                }
            }
        };
        let (_, answer) = self.audited(record, started, outcome).await?;
        Ok(Response::new(answer))
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
    let incoming = shuzhu_net::tls_incoming(listener, tls, Duration::from_secs(10));
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<GatewayServer<Services>>().await;
    reporter.set_serving::<AuditServer<Services>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(shuzhu_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Node { node: "reflection".into(), message: e.to_string() })?;
    let watched = Arc::clone(&state);
    let watcher = shuzhu_net::reload::spawn_watcher(
        "policy",
        state.policy_path.clone(),
        shuzhu_net::reload::POLL_EVERY,
        move |_| watched.reload_policy().map_err(|e| e.to_string()),
    );
    let services = Services { state };
    let served = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(60))
        .add_service(health)
        .add_service(reflection)
        .add_service(GatewayServer::new(services.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(AuditServer::new(services).max_decoding_message_size(MAX_REQUEST_BYTES))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    watcher.abort();
    served?;
    Ok(())
}
