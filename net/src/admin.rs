//! The admin listener shared by node and gateway: Prometheus metrics (`GET /metrics`, rendered by
//! `metrics-exporter-prometheus`) and readiness (`GET /healthz`), over plain HTTP on an address the
//! operator chooses (`admin_listen`; off when unset, loopback in every example).
//!
//! Every gateway and node owns its own recorder ([`Metrics`]), so that several of them in one process
//! (the demo, the tests) never mix their series. Label values come only from closed sets — party ids
//! from the configuration, catalogue ids, decision and rule enums — and whatever does not belong to its
//! set is recorded as `other` (see [`closed`]): no free text, token or personal value reaches a label.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::net::TcpListener;

/// Bucket bounds (seconds) of every latency histogram: 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The label value recorded for anything outside its closed set.
pub const OTHER: &str = "other";

/// `value` when `known` accepts it, otherwise [`OTHER`]: how every label value is chosen.
pub fn closed(value: &str, known: impl FnOnce(&str) -> bool) -> String {
    if !value.is_empty() && value.len() <= 64 && known(value) { value.to_string() } else { OTHER.to_string() }
}

/// One party's metrics: a Prometheus recorder of its own and the handle that renders it.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, v.to_string())).collect();
    Key::from_parts(name, labels)
}

const META: Metadata<'static> = Metadata::new("shuzhu", Level::INFO, None);

impl Metrics {
    /// A new, empty set of metrics (histograms with [`LATENCY_BUCKETS`]).
    pub fn new() -> Self {
        // The bucket list is non-empty, so the builder cannot refuse it.
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets(LATENCY_BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Metrics { recorder: Arc::new(recorder), handle }
    }

    /// Describes a metric (the `# HELP` line).
    pub fn describe(&self, name: &'static str, help: &'static str) {
        // The recorder keeps one description per name whatever its kind.
        self.recorder.describe_gauge(name.into(), None, help.into());
    }

    /// The counter `name` with `labels`.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &META)
    }

    /// The gauge `name` with `labels`.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &META)
    }

    /// The histogram `name` with `labels`.
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder.register_histogram(&key(name, labels), &META)
    }

    /// Records `elapsed` (as seconds) in the histogram `name`.
    pub fn seconds(&self, name: &'static str, labels: &[(&'static str, &str)], elapsed: Duration) {
        self.histogram(name, labels).record(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// What the admin listener serves: the metrics text (with scrape-time gauges refreshed first) and the
/// readiness (`Err` says why the party is not ready).
pub trait AdminSource: Send + Sync + 'static {
    /// The Prometheus text, with gauges read at scrape time refreshed first.
    fn metrics_text(&self) -> String;
    /// Whether the party is ready to serve, and why not.
    fn readiness(&self) -> Result<(), String>;
}

/// Serves `GET /metrics` and `GET /healthz` over plain HTTP on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn AdminSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let metrics_source = Arc::clone(&source);
    let router = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let s = Arc::clone(&metrics_source);
                async move {
                    let text = tokio::task::spawn_blocking(move || s.metrics_text()).await.unwrap_or_default();
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let s = Arc::clone(&source);
                async move {
                    match tokio::task::spawn_blocking(move || s.readiness()).await {
                        Ok(Ok(())) => (StatusCode::OK, "serving\n".to_string()),
                        Ok(Err(why)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not serving: {why}\n")),
                        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not serving: the check failed\n".to_string()),
                    }
                }
            }),
        );
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// Binds the admin listener when `addr` is set, warning when it is not on loopback (metrics carry agency
/// and indicator ids, and the listener has no TLS).
pub async fn bind(addr: Option<std::net::SocketAddr>) -> std::io::Result<Option<TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "admin_listen is not a loopback address: metrics are plain HTTP, reachable from the network");
    }
    TcpListener::bind(addr).await.map(Some)
}

/// Seconds since the Unix epoch at which the first certificate of the PEM file `path` expires.
pub fn certificate_not_after(path: &Path) -> Result<u64, crate::NetError> {
    use x509_cert::der::Decode;
    let certs = crate::load_certs(path)?;
    let bad = |what| crate::NetError::Pem { path: path.display().to_string(), what };
    let leaf = certs.first().ok_or(bad("no certificate found"))?;
    let cert = x509_cert::Certificate::from_der(leaf.as_ref()).map_err(|_| bad("not an X.509 certificate"))?;
    Ok(cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs())
}

/// Bytes of the regular files under `dir` (not following links).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// Seconds since the Unix epoch now.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_outside_their_set_are_other_and_each_recorder_is_its_own() {
        assert_eq!(closed("xm-sfj", |v| v == "xm-sfj"), "xm-sfj");
        assert_eq!(closed("anything", |_| false), OTHER);
        assert_eq!(closed("", |_| true), OTHER);
        let (a, b) = (Metrics::new(), Metrics::new());
        a.counter("shuzhu_test_total", &[("decision", "allow")]).increment(3);
        a.seconds("shuzhu_test_seconds", &[], Duration::from_millis(3));
        let text = a.render();
        assert!(text.contains("shuzhu_test_total{decision=\"allow\"} 3"), "{text}");
        assert!(text.contains("shuzhu_test_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(!b.render().contains("shuzhu_test_total"), "recorders do not share series");
    }
}
