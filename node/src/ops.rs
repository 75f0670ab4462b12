//! What operators watch on a running node: calls counted by dataset, agency and outcome, their
//! latency, the journal's append latency, and (read at scrape time) journal and store sizes, records per
//! dataset and the certificate's expiry; readiness; the admin listener that shows them.
//!
//! Label values only from closed sets: the dataset when the schema has it, the agency when the local
//! policy names it (an `agencies = ["*"]` node counts every agency as `other`), the outcome enum.

use std::sync::Arc;
use std::time::Duration;

use shuzhu_net::admin::{AdminSource, Metrics, closed};
use shuzhu_proto::v1 as pb;
use tonic::{Response, Status};

use crate::config::LocalPolicy;
use crate::service::NodeState;

/// The gRPC metadata header that carries the gateway's request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of a call: the `x-request-id` header, else the request's own field, when it looks
/// like an id the gateway makes (1–64 of `[0-9A-Za-z_-]`); `invalid` otherwise. Ids are shown
/// unmasked so gateway and node logs can be matched; anything else never reaches a log.
pub fn request_id_of(req: &tonic::Request<pb::AggregateRequest>) -> String {
    let valid = |v: &str| {
        !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let header = req.metadata().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    match header.filter(|v| valid(v)) {
        Some(id) => id.to_string(),
        None if valid(&req.get_ref().request_id) => req.get_ref().request_id.clone(),
        None => "invalid".to_string(),
    }
}

/// The dataset and agency labels of a call.
pub fn labels(policy: &LocalPolicy, r: &pb::AggregateRequest) -> (String, String) {
    let dataset = closed(&r.dataset, |d| shuzhu_policy::schema::dataset(d).is_some());
    let agency = closed(&r.agency, |a| {
        a != "*" && policy.agencies.iter().chain(policy.agencies_by_gateway.values().flatten()).any(|k| k == a)
    });
    (dataset, agency)
}

/// Counts one `Aggregate` call by its outcome.
pub fn record_call(
    m: &Metrics,
    dataset: &str,
    agency: &str,
    result: &Result<Response<pb::AggregateResponse>, Status>,
    elapsed: Duration,
) {
    let outcome = match result {
        Ok(_) => "released",
        Err(s) => match s.code() {
            tonic::Code::PermissionDenied => "refused",
            tonic::Code::Unauthenticated => "unauthenticated",
            tonic::Code::InvalidArgument | tonic::Code::Unimplemented => "invalid",
            tonic::Code::Unavailable => "unavailable",
            _ => "error",
        },
    };
    m.counter("shuzhu_node_requests_total", &[("dataset", dataset), ("agency", agency), ("outcome", outcome)])
        .increment(1);
    m.seconds("shuzhu_node_request_seconds", &[("dataset", dataset)], elapsed);
    if let Ok(r) = result {
        m.counter("shuzhu_node_groups_released_total", &[("dataset", dataset)])
            .increment(r.get_ref().groups.len() as u64);
    }
}

/// The admin listener's view of a node.
pub struct NodeAdmin(pub Arc<NodeState>);

impl AdminSource for NodeAdmin {
    fn metrics_text(&self) -> String {
        self.0.metrics_text()
    }
    fn readiness(&self) -> Result<(), String> {
        self.0.readiness()
    }
}

/// Serves the node's admin listener (metrics and readiness) until `shutdown` resolves.
pub async fn serve_admin(
    state: Arc<NodeState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    shuzhu_net::admin::serve(listener, Arc::new(NodeAdmin(state)), shutdown).await
}
