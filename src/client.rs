//! The requester's side: a TLS channel to the gateway that trusts the federation CA, and calls that
//! carry the bearer token.

use std::path::Path;

use anyhow::{Context, Result};
use shuzhu_proto::v1 as pb;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Connects to the gateway at `url` (`https://host:port`), trusting only the CA in `ca`.
pub async fn connect(url: &str, ca: &Path) -> Result<Channel> {
    if !url.starts_with("https://") {
        anyhow::bail!("gateway address {url:?} must start with https://");
    }
    let pem = std::fs::read(ca).with_context(|| format!("reading CA certificate {}", ca.display()))?;
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
    let endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("gateway address {url:?}"))?
        .tls_config(tls)
        .context("tls configuration")?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30));
    endpoint.connect().await.with_context(|| format!("cannot connect to gateway {url}"))
}

/// Wraps `msg` in a request carrying `token`.
pub fn authorized<T>(msg: T, token: &str) -> Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(msg);
    let value =
        format!("Bearer {}", token.trim()).parse().context("the token holds characters not allowed in a header")?;
    req.metadata_mut().insert("authorization", value);
    Ok(req)
}

/// Reads a token file, warning on standard error when the token has expired (the gateway will refuse
/// it; nothing of the token is printed).
pub fn read_token(path: &Path) -> Result<String> {
    let t = std::fs::read_to_string(path).with_context(|| format!("reading token file {}", path.display()))?;
    let token = t.trim().to_string();
    if let Some(exp) = token_expiry(&token) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if exp <= now {
            let ago = now - exp;
            let when = time::OffsetDateTime::from_unix_timestamp(exp as i64)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_default();
            eprintln!(
                "warning: the token in {} expired {} ago ({when}); the gateway will refuse it: get a new one",
                path.display(),
                if ago < 120 { format!("{ago} s") } else { format!("{} min", ago / 60) }
            );
        }
    }
    Ok(token)
}

/// The `exp` claim of a JWT, read without checking its signature (only to warn).
fn token_expiry(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?.get("exp")?.as_u64()
}

/// Runs a query.
pub async fn query(channel: Channel, token: &str, req: pb::QueryRequest) -> Result<pb::QueryResponse, tonic::Status> {
    let mut client = pb::gateway_client::GatewayClient::new(channel);
    let request = authorized(req, token).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
    client.query(request).await.map(tonic::Response::into_inner)
}

/// Turns a gRPC status into one line a person can act on.
pub fn explain(status: &tonic::Status) -> String {
    use tonic::Code;
    let what = match status.code() {
        Code::Unauthenticated => "not authenticated",
        Code::PermissionDenied => "refused",
        Code::InvalidArgument => "invalid request",
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "timed out",
        // A spent DP budget is no rate limit: the gateway's message already names it.
        Code::ResourceExhausted if status.message().starts_with("privacy budget spent") => {
            return status.message().to_string();
        }
        Code::ResourceExhausted => "quota exhausted",
        _ => "failed",
    };
    format!("{what}: {}", status.message())
}
