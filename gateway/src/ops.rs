//! What operators watch on a running gateway: its metrics (recorded from each audit record, so every
//! request counted is one the ledger holds), readiness (at least one node answers its health check and
//! the ledger's disk can take entries) and the admin listener that shows both.
//!
//! Label values only from closed sets: the action (a code constant), the agency when the policy names
//! it, the indicator when the catalogue has it, the decision enum, the rule id, node ids from the
//! configuration. Anything else is `other`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shuzhu_net::admin::{AdminSource, closed, unix_now};
use shuzhu_proto::v1::audit_server::AuditServer;
use shuzhu_proto::v1::gateway_server::GatewayServer;

use crate::audit::AuditRecord;
use crate::service::Services;
use crate::state::GatewayState;

/// The gRPC metadata header that carries the request id from the gateway to the nodes.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Decisions an audit record can carry.
const DECISIONS: &[&str] = &["allow", "deny", "unauthenticated", "invalid", "error"];

/// The name of the node service the gateway probes (gRPC health over the node's mutual-TLS channel).
const NODE_SERVICE: &str = "shuzhu.v1.Node";

/// Whether a text is a code-style id (a lowercase letter, then `[a-z0-9_.-]`, at most 40 characters):
/// rule ids, reasons, actions. Digit runs (ID numbers, phones) and anything not ASCII fail.
fn code_like(v: &str) -> bool {
    v.len() <= 40
        && v.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// Readiness as last probed: one flag per node (in configuration order) and whether the gateway is
/// stopping.
#[derive(Debug)]
pub struct Health {
    node_up: Vec<AtomicBool>,
    stopping: AtomicBool,
}

impl Health {
    /// Every node counted up until the first probe says otherwise.
    pub fn new(nodes: usize) -> Self {
        Health { node_up: (0..nodes).map(|_| AtomicBool::new(true)).collect(), stopping: AtomicBool::new(false) }
    }

    /// Marks the gateway as draining: it reports NOT_SERVING from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// How many nodes answered the last probe.
    pub fn nodes_up(&self) -> usize {
        self.node_up.iter().filter(|u| u.load(Ordering::SeqCst)).count()
    }

    /// Whether node `i` answered the last probe.
    pub fn node_is_up(&self, i: usize) -> bool {
        self.node_up.get(i).is_some_and(|u| u.load(Ordering::SeqCst))
    }
}

/// Counts one request from its audit record (called once the record is appended, or refused by the
/// ledger) and the time it took end to end.
pub fn record_request(state: &GatewayState, record: &AuditRecord, elapsed: Duration) {
    let m = &state.metrics;
    let policy = state.current_policy();
    let service = closed(&record.action, code_like);
    let agency = match &record.principal {
        Some(p) => closed(&p.agency, |a| policy.policy.agencies.iter().any(|known| known.id == a)),
        None => "none".to_string(),
    };
    let indicator = if record.indicator.is_empty() {
        "none".to_string()
    } else {
        closed(&record.indicator, |i| shuzhu_policy::indicator::indicator(i).is_some())
    };
    let decision = closed(&record.decision, |d| DECISIONS.contains(&d));
    m.counter(
        "shuzhu_gateway_requests_total",
        &[("service", &service), ("agency", &agency), ("indicator", &indicator), ("decision", &decision)],
    )
    .increment(1);
    m.seconds("shuzhu_gateway_request_seconds", &[("service", &service)], elapsed);
    match decision.as_str() {
        "deny" => {
            let rule = record.reason.split(':').next().unwrap_or_default();
            m.counter("shuzhu_gateway_refusals_total", &[("rule", &closed(rule, code_like))]).increment(1);
        }
        "unauthenticated" => {
            m.counter("shuzhu_gateway_auth_failures_total", &[("reason", &closed(&record.reason, code_like))])
                .increment(1);
        }
        _ => {}
    }
    if record.cells > 0 || record.cells_suppressed > 0 {
        m.counter("shuzhu_gateway_cells_total", &[("indicator", &indicator)]).increment(u64::from(record.cells));
        m.counter("shuzhu_gateway_cells_suppressed_total", &[("indicator", &indicator)])
            .increment(u64::from(record.cells_suppressed));
    }
    for n in &record.nodes {
        let node = closed(&n.node, |id| state.nodes.iter().any(|h| h.entry.id == id));
        m.counter("shuzhu_gateway_node_answers_total", &[("node", &node), ("status", n.status)]).increment(1);
    }
}

/// Counts authentication failures only counted into a summary (never appended alone).
pub fn record_counted_failure(state: &GatewayState, record: &AuditRecord) {
    state
        .metrics
        .counter("shuzhu_gateway_auth_failures_total", &[("reason", &closed(&record.reason, code_like))])
        .increment(1);
}

/// Why the gateway is not ready, or `Ok`.
pub fn readiness(state: &GatewayState) -> Result<(), String> {
    if state.health.stopping.load(Ordering::SeqCst) {
        return Err("shutting down".into());
    }
    if let Some(problem) = state.ledger_space_problem() {
        return Err(problem);
    }
    if !state.nodes.is_empty() && state.health.nodes_up() == 0 {
        return Err(format!("none of the {} nodes answers its health check", state.nodes.len()));
    }
    Ok(())
}

/// Seconds since the last checkpoint was written (the mtime of `checkpoints.log`), when there is one.
pub fn checkpoint_age_secs(ledger_dir: &std::path::Path) -> Option<u64> {
    let modified = std::fs::metadata(ledger_dir.join("checkpoints.log")).and_then(|m| m.modified()).ok()?;
    Some(modified.elapsed().map(|d| d.as_secs()).unwrap_or(0))
}

/// Refreshes the gauges read at scrape time and renders every series.
pub fn metrics_text(state: &GatewayState) -> String {
    let m = &state.metrics;
    m.gauge("shuzhu_gateway_ledger_entries", &[]).set(state.ledger.len() as f64);
    m.gauge("shuzhu_gateway_ledger_bytes", &[])
        .set(shuzhu_net::admin::dir_bytes(&state.ledger_dir.join("segments")) as f64);
    if let Some((cp, _)) = state.ledger.ledger().last_checkpoint() {
        m.gauge("shuzhu_gateway_ledger_unsealed_entries", &[]).set(state.ledger.len().saturating_sub(cp.size) as f64);
    }
    if let Some(age) = checkpoint_age_secs(&state.ledger_dir) {
        m.gauge("shuzhu_gateway_checkpoint_age_seconds", &[]).set(age as f64);
    }
    let releases = std::fs::metadata(state.ledger_dir.join(crate::releases::RELEASES_FILE_NAME)).map_or(0, |m| m.len());
    m.gauge("shuzhu_gateway_release_ledger_bytes", &[]).set(releases as f64);
    if let Ok(free) = fs2::available_space(&state.ledger_dir) {
        m.gauge("shuzhu_gateway_ledger_disk_free_bytes", &[]).set(free as f64);
    }
    if let Ok(t) = shuzhu_net::admin::certificate_not_after(&state.cert_path) {
        m.gauge("shuzhu_gateway_certificate_expiry_timestamp_seconds", &[]).set(t as f64);
    }
    for (i, n) in state.nodes.iter().enumerate() {
        let up = if state.health.node_is_up(i) { 1.0 } else { 0.0 };
        m.gauge("shuzhu_gateway_node_up", &[("node", &n.entry.id)]).set(up);
    }
    m.gauge("shuzhu_gateway_ready", &[]).set(if readiness(state).is_ok() { 1.0 } else { 0.0 });
    m.gauge("shuzhu_gateway_scrape_timestamp_seconds", &[]).set(unix_now() as f64);
    m.render()
}

/// The admin listener's view of a gateway.
pub struct GatewayAdmin(pub Arc<GatewayState>);

impl AdminSource for GatewayAdmin {
    fn metrics_text(&self) -> String {
        metrics_text(&self.0)
    }
    fn readiness(&self) -> Result<(), String> {
        readiness(&self.0)
    }
}

/// Serves the gateway's admin listener (metrics and readiness) until `shutdown` resolves.
pub async fn serve_admin(
    state: Arc<GatewayState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    shuzhu_net::admin::serve(listener, Arc::new(GatewayAdmin(state)), shutdown).await
}

/// Asks every node for its health once (in parallel, each within the node timeout) and keeps the result.
pub async fn probe_nodes(state: &GatewayState) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let checks = state.nodes.iter().map(|n| {
        let mut client = tonic_health::pb::health_client::HealthClient::new(n.channel.clone());
        let deadline = state.node_timeout.min(Duration::from_secs(3));
        async move {
            let call = client.check(tonic_health::pb::HealthCheckRequest { service: NODE_SERVICE.into() });
            matches!(tokio::time::timeout(deadline, call).await, Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32)
        }
    });
    let results = futures::future::join_all(checks).await;
    for ((flag, up), node) in state.health.node_up.iter().zip(results).zip(&state.nodes) {
        let was = flag.swap(up, Ordering::SeqCst);
        if was != up {
            if up {
                tracing::info!(node = %node.entry.id, "node answers its health check again");
            } else {
                tracing::warn!(node = %node.entry.id, "node does not answer its health check");
            }
        }
    }
}

/// Probes the nodes every `node_probe_every` and sets the gRPC health of `Gateway`, `Audit` and the
/// whole server ("") from [`readiness`]. Runs until aborted.
pub async fn watch_health(state: Arc<GatewayState>, reporter: tonic_health::server::HealthReporter) {
    let mut every = tokio::time::interval(state.node_probe_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<bool> = None;
    loop {
        every.tick().await;
        probe_nodes(&state).await;
        let ready = readiness(&state);
        let serving = ready.is_ok();
        if last != Some(serving) {
            if let Err(why) = &ready {
                tracing::warn!(reason = %why, "gateway not serving");
            } else if last.is_some() {
                tracing::info!("gateway serving again");
            }
            set_status(&reporter, serving).await;
            last = Some(serving);
        }
    }
}

/// Sets the gRPC health of every gateway service.
pub async fn set_status(reporter: &tonic_health::server::HealthReporter, serving: bool) {
    use tonic_health::ServingStatus;
    let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
    reporter.set_service_status("", status).await;
    reporter.set_service_status(<GatewayServer<Services> as tonic::server::NamedService>::NAME, status).await;
    reporter.set_service_status(<AuditServer<Services> as tonic::server::NamedService>::NAME, status).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_like_ids_pass_and_free_text_does_not() {
        assert!(code_like("no_grant") && code_like("audit.list_entries") && code_like("court-350203"));
        assert!(!code_like("原告张三") && !code_like("Bearer eyJ") && !code_like(&"a".repeat(41)));
        assert!(!code_like("350203199001011234") && !code_like("13800000000") && !code_like(""));
    }
}
