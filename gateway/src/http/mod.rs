//! The HTTPS JSON API (`/v1/…`) for scripts, spreadsheets, BI tools and the web console.
//!
//! It is served on a **second listener** (`http_listen` in gateway.toml; off when absent) with the
//! gateway's own certificate: tonic's server owns its listener and speaks HTTP/2 only, so sharing one
//! port would mean routing every byte through a second HTTP stack in front of gRPC.
//!
//! The API adds no decision of its own. Each handler turns the JSON request into the proto request,
//! wraps it in a `tonic::Request` carrying the `authorization` header and the peer address, and calls
//! the very [`Services`] methods the gRPC server calls — so authentication, policy, quotas, disclosure
//! control and the audit ledger are the same code, and a request through either API is one ledger
//! entry. A `tonic::Status` becomes `application/problem+json` (RFC 9457) in one function
//! ([`problem::http_status`]). Requests the API cannot parse (bad JSON, unknown fields or parameters,
//! oversize bodies, wrong content types) are refused before any service runs: nothing is released.
//!
//! ```text
//! curl --cacert pki/ca.pem -H "authorization: Bearer $(cat tokens/requester.jwt)" \
//!      -H 'content-type: application/json' https://127.0.0.1:8444/v1/query \
//!      -d '{"indicator":"filed","group_by":["region"],"period":{"from_month":202401,"to_month":202412},"purpose":"司法统计"}'
//! ```

pub mod console;
pub mod problem;
pub mod report;
pub(crate) mod wire;

pub use wire::answer_json;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shuzhu_proto::v1 as pb;
use shuzhu_proto::v1::audit_server::Audit;
use shuzhu_proto::v1::gateway_server::Gateway;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use crate::auth::Role;
use crate::service::Services;
use problem::Problem;

/// Largest request body the API reads (the gRPC services' cap too).
pub const MAX_BODY_BYTES: usize = crate::service::MAX_REQUEST_BYTES;

/// Most bytes of an oversize body read (and dropped) before answering 413.
const DRAIN_BYTES: usize = 1024 * 1024;

/// The OpenAPI 3.1 description of this API, served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Content-Security-Policy of every answer: nothing but the gateway's own origin, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-ancestors 'none'";

type ApiResult = Result<Response, Problem>;

/// The whole API: `/v1/…`, `/healthz`, and the console's routes ([`console::console_routes`]).
pub fn router(services: Services) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/indicators", get(indicators))
        .route("/v1/me", get(me))
        .route("/v1/query", post(query))
        .route("/v1/audit/entries", get(audit_entries))
        .route("/v1/audit/entries/{seq}", get(audit_entry))
        .route("/v1/audit/checkpoint", get(audit_checkpoint))
        .route("/v1/audit/consistency", get(audit_consistency))
        .route("/v1/audit/report", get(audit_report))
        .merge(console::console_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(services.clone())
        .layer(axum::middleware::from_fn_with_state(services, authenticate_form_refusals))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Serves the API on `listener` over TLS 1.3 with `tls` (the gateway's certificate; ALPN `http/1.1`)
/// until `shutdown` resolves, then lets requests in flight finish.
///
/// Each connection is served by hyper's HTTP/1.1 server directly rather than through `axum::serve`,
/// which sets no timer: here every request's line and headers must arrive within
/// `[server] header_read_timeout_ms` of its first byte, or the connection is closed (slowloris). The
/// other limits (handshake, first request, idle, connection caps) are the TLS layer's.
pub async fn serve(
    services: Services,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let mut config = (*tls).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let limits = services.state().limits.clone();
    let mut incoming = shuzhu_net::tls_incoming_limited(listener, Arc::new(config), &limits);
    let header_timeout = std::time::Duration::from_millis(limits.header_read_timeout_ms);
    let app = router(services);
    tracing::info!(addr = %local, "https json api serving");
    // Connections watch `closing` to shut down gracefully; the server waits for all of them.
    let (closing, _) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            next = incoming.next() => match next {
                Some(Ok(stream)) => stream,
                Some(Err(_)) => continue,
                // The accept loop ended: no connection will come again; wait for shutdown.
                None => {
                    shutdown.as_mut().await;
                    break;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let peer = stream.get_ref().get_ref().0.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let app = app.clone();
        let mut closing = closing.subscribe();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(Peer(peer)));
                // The router is always ready (axum documents `poll_ready` as always `Ready`).
                tower_call(app.clone(), request.map(Body::new))
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Calls the router with one request.
async fn tower_call(mut app: Router, request: Request) -> Result<Response, std::convert::Infallible> {
    use tower::Service;
    app.call(request).await
}

/// The client's address, as the connection info of every request.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A refusal of the request's form (parameters, body, content type) is made before any service runs;
/// a caller whose token does not authenticate gets the one generic 401 instead, as from the services,
/// so that only authenticated callers learn what an endpoint expects. Neither is recorded in the
/// ledger: nothing reached the pipeline.
async fn authenticate_form_refusals(State(s): State<Services>, request: Request, next: Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let response = next.run(request).await;
    if response.extensions().get::<problem::FormRefusal>().is_none() {
        return response;
    }
    let header = authorization.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match s.state().auth.authenticate(header, now) {
        Ok(_) => response,
        Err(_) => Problem::from(tonic::Status::unauthenticated(crate::service::UNAUTHENTICATED)).into_response(),
    }
}

/// Security headers on every answer, and one log line per request (method, path and status; never
/// the query string or a header, which could carry a token or a personal value).
async fn security_headers(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(200).collect();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // The console's pages carry their own, stricter policy (`console::CSP`): keep it.
    headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // API answers are personal to the caller and change with every request: never cached. A console
    // asset may set its own policy.
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    tracing::info!(
        %method,
        path = %crate::audit::clip(&path),
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        "http request"
    );
    response
}

/// A JSON answer.
fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], value.to_string()).into_response()
}

fn ok(value: &Value) -> ApiResult {
    Ok(json_response(StatusCode::OK, value))
}

/// The proto request as the gRPC server would hand it to the services: the `authorization` header
/// (only that one) as metadata and the peer address as the connection info.
fn grpc_request<T>(msg: T, headers: &HeaderMap, peer: SocketAddr) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
        req.metadata_mut().insert("authorization", v);
    }
    req.extensions_mut().insert(tonic::transport::server::TcpConnectInfo { local_addr: None, remote_addr: Some(peer) });
    req
}

async fn healthz() -> ApiResult {
    ok(&json!({"status": "ok"}))
}

async fn openapi() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI_JSON)
        .into_response()
}

async fn not_found() -> Problem {
    Problem { form: false, ..Problem::not_found("no such endpoint; see /v1/openapi.json") }
}

async fn method_not_allowed() -> Problem {
    let p =
        Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method");
    Problem { form: false, ..p }
}

async fn indicators(
    State(s): State<Services>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    wire::Params::parse(q.as_deref(), &[])?;
    let answer = s.list_indicators(grpc_request(pb::ListIndicatorsRequest {}, &headers, peer)).await?.into_inner();
    ok(&json!({"indicators": answer.indicators.iter().map(wire::indicator_json).collect::<Vec<_>>()}))
}

/// Reads a JSON request body: `application/json` only, at most [`MAX_BODY_BYTES`].
async fn json_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, Problem> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = media.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON sent with content-type: application/json",
        ));
    }
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {} KiB", MAX_BODY_BYTES / 1024),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_BYTES as u64) {
        return Err(too_large());
    }
    // Read frame by frame. Past the cap the rest is read and dropped (up to DRAIN_BYTES), so that a
    // client still sending sees the 413 rather than a connection reset mid-write.
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(Problem::invalid("the request body could not be read")) };
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen > DRAIN_BYTES {
            return Err(too_large());
        }
        if seen <= MAX_BODY_BYTES {
            kept.extend_from_slice(&data);
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(kept.into())
}

async fn query(
    State(s): State<Services>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    wire::Params::parse(q.as_deref(), &[])?;
    let bytes = json_body(&headers, body).await?;
    let request = wire::parse_query_body(&bytes)?;
    let answer = s.query(grpc_request(request, &headers, peer)).await?.into_inner();
    ok(&wire::answer_json(&answer))
}

/// `GET /v1/me`: who the token says the caller is and, for requesters, what their grants allow. The
/// read is authenticated and recorded in the ledger like every other request.
async fn me(
    State(s): State<Services>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    wire::Params::parse(q.as_deref(), &[])?;
    let req = grpc_request((), &headers, peer);
    let started = Instant::now();
    let mut record = s.record("me", &crate::service::request_id());
    let outcome = s.authenticate(&req, &mut record).map(|p| {
        record.decision = "allow".into();
        me_json(&s, &p)
    });
    let (_, answer) = s.audited(record, started, outcome).await?;
    ok(&answer)
}

fn me_json(s: &Services, p: &crate::auth::Principal) -> Value {
    let state = s.state();
    let loaded = state.current_policy();
    let policy = &loaded.policy;
    let today = crate::query::today();
    let roles: Vec<&str> = p.roles.iter().map(|r| r.as_str()).collect();
    let requester = p.has_role(Role::Requester);
    let grants: Vec<Value> = if requester {
        policy
            .grants_usable(&p.agency, &roles)
            .map(|g| {
                json!({
                    "indicators": g.indicators,
                    "dimensions": g.dimensions,
                    "filters": g.filters,
                    "purposes": g.purposes,
                    "clearance": g.clearance.as_str(),
                    "legal_basis_required": g.legal_basis_required,
                    "valid_from": g.valid_from,
                    "valid_until": g.valid_until,
                    "valid_today": g.valid_on(today),
                    "threshold": g.threshold.unwrap_or(0).max(policy.default_threshold),
                    "protection": g.protection.as_str(),
                    "accept_partial": g.accept_partial,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let quota = policy.quota(&p.agency, today);
    let used = state.quotas.used_on(&p.agency, today);
    json!({
        "subject": p.subject,
        "agency": p.agency,
        "agency_name": policy.agencies.iter().find(|a| a.id == p.agency).map(|a| a.name.clone()),
        "roles": roles,
        "expires_at": p.expires_at,
        "policy_version": loaded.version,
        "grants": grants,
        "quota": {
            "per_minute": quota.per_minute,
            "per_day": quota.per_day,
            "used_today": used,
            "left_today": quota.per_day.map(|d| d.saturating_sub(used)),
        },
    })
}

/// Paging cursor of `/v1/audit/entries`: `s<seq>` (the next seq, without filters) or `p<token>`
/// (the ledger's page token, with filters). Opaque to clients.
enum Cursor {
    Seq(u64),
    Page(String),
}

fn parse_cursor(text: Option<&str>) -> Result<Option<Cursor>, Problem> {
    let bad = || Problem::invalid("cursor is not one the server gave");
    let Some(text) = text else { return Ok(None) };
    if let Some(n) = text.strip_prefix('s') {
        return n.parse().map(|n| Some(Cursor::Seq(n))).map_err(|_| bad());
    }
    match text.strip_prefix('p') {
        Some(t) if !t.is_empty() && t.len() <= 256 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(Cursor::Page(t.to_owned())))
        }
        _ => Err(bad()),
    }
}

async fn audit_entries(
    State(s): State<Services>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let p = wire::Params::parse(
        q.as_deref(),
        &["agency", "principal", "indicator", "decision", "from", "to", "cursor", "limit"],
    )?;
    let limit = p.number("limit", 100)?;
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid("query parameter limit must be from 1 to 1000"));
    }
    let mut req = pb::ListEntriesRequest {
        limit: limit as u32,
        from_time_ms: p.time_ms("from")?.unwrap_or(0),
        to_time_ms: p.time_ms("to")?.unwrap_or(0),
        agency: p.text("agency"),
        principal: p.text("principal"),
        indicator: p.text("indicator"),
        decision: p.text("decision"),
        ..Default::default()
    };
    let filtered = req.from_time_ms > 0
        || req.to_time_ms > 0
        || !(req.agency.is_empty() && req.principal.is_empty() && req.indicator.is_empty() && req.decision.is_empty());
    match parse_cursor(p.raw("cursor"))? {
        None => req.from_seq = 1,
        Some(Cursor::Seq(n)) if !filtered => req.from_seq = n.max(1),
        Some(Cursor::Page(t)) if filtered => req.page_token = t,
        Some(_) => return Err(Problem::invalid("cursor was given for other filters; start again without it")),
    }
    let answer = s.list_entries(grpc_request(req, &headers, peer)).await?.into_inner();
    let next_cursor = if filtered {
        Some(answer.next_page_token.clone()).filter(|t| !t.is_empty()).map(|t| format!("p{t}"))
    } else {
        (answer.entries.len() as u64 == limit && answer.next_seq <= answer.total)
            .then(|| format!("s{}", answer.next_seq))
    };
    ok(&json!({
        "entries": answer.entries.iter().map(wire::entry_json).collect::<Vec<_>>(),
        "total": answer.total,
        "next_cursor": next_cursor,
    }))
}

async fn audit_entry(
    State(s): State<Services>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    Path(seq): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let p = wire::Params::parse(q.as_deref(), &["tree_size"])?;
    let seq: u64 = seq.parse().map_err(|_| Problem::invalid("seq must be a whole number from 1"))?;
    if seq == 0 {
        return Err(Problem::invalid("seq must be a whole number from 1"));
    }
    let tree_size = p.number("tree_size", 0)?;
    let a = s.get_entry(grpc_request(pb::GetEntryRequest { seq, tree_size }, &headers, peer)).await?.into_inner();
    let entry = a.entry.as_ref().map(wire::entry_json).unwrap_or(Value::Null);
    ok(&json!({
        "entry": entry,
        "leaf_index": seq - 1,
        "leaf": hex::encode(&a.leaf),
        "fields": a.fields.iter().map(|f| json!({"name": f.name, "salt_hex": f.salt_hex, "value": f.value})).collect::<Vec<_>>(),
        "tree_size": a.tree_size,
        "inclusion_proof": wire::hexes(&a.inclusion_proof),
        "checkpoint": a.checkpoint,
        "verifier_key": s.state().ledger.ledger().verifier().to_text(),
    }))
}

async fn audit_checkpoint(
    State(s): State<Services>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    wire::Params::parse(q.as_deref(), &[])?;
    let a = s.get_checkpoint(grpc_request(pb::GetCheckpointRequest {}, &headers, peer)).await?.into_inner();
    ok(&json!({
        "note": a.note,
        "size": a.size,
        "root": hex::encode(&a.root),
        "verifier_key": s.state().ledger.ledger().verifier().to_text(),
    }))
}

async fn audit_consistency(
    State(s): State<Services>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let p = wire::Params::parse(q.as_deref(), &["old", "new"])?;
    if p.raw("old").is_none() {
        return Err(Problem::invalid("query parameter old (the older tree size) is required"));
    }
    let (old_size, new_size) = (p.number("old", 0)?, p.number("new", 0)?);
    let req = pb::GetConsistencyProofRequest { old_size, new_size };
    let a = s.get_consistency_proof(grpc_request(req, &headers, peer)).await?.into_inner();
    ok(&json!({
        "old_size": a.old_size,
        "new_size": a.new_size,
        "proof": wire::hexes(&a.proof),
        "old_root": hex::encode(&a.old_root),
        "new_root": hex::encode(&a.new_root),
        "old_checkpoint": a.old_checkpoint,
        "new_checkpoint": a.new_checkpoint,
    }))
}

async fn audit_report(
    State(s): State<Services>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let p = wire::Params::parse(q.as_deref(), &["from", "to", "burst"])?;
    let (Some(from_ms), Some(to_ms)) = (p.time_ms("from")?, p.time_ms("to")?) else {
        return Err(Problem::invalid("query parameters from and to (RFC 3339 times or dates YYYY-MM-DD) are required"));
    };
    if from_ms >= to_ms {
        return Err(Problem::invalid("from must be before to"));
    }
    let burst = p.number("burst", report::DEFAULT_BURST as u64)?;
    if !(1..=10_000).contains(&burst) {
        return Err(Problem::invalid("query parameter burst must be from 1 to 10000"));
    }
    let req = grpc_request((), &headers, peer);
    let filters = vec![format!("time_ms={from_ms}..{to_ms}"), format!("burst={burst}")];
    let built = s
        .audit_read("audit.report", req, filters, move |ledger| {
            report::from_ledger(ledger, from_ms, to_ms, report::Rules { burst: burst as usize })
        })
        .await?
        .into_inner();
    ok(&serde_json::to_value(&built).unwrap_or(Value::Null))
}
