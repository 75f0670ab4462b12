//! Errors of the HTTPS JSON API as `application/problem+json` (RFC 9457), mapped in one place from the
//! `tonic::Status` the shared services return (so HTTP and gRPC give the same message) and from the
//! API's own refusals of malformed requests (bad JSON, unknown fields, oversize bodies, wrong content
//! types), which never reach the services and so are never recorded as released.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tonic::Code;

/// Media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One error answer: an HTTP status, a stable machine-readable code and a sentence a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`unauthenticated`, `permission_denied`, `invalid_argument`, `resource_exhausted`,
    /// `unavailable`, `not_found`, `payload_too_large`, `unsupported_media_type`, …).
    pub code: &'static str,
    /// What went wrong, without personal values or secrets.
    pub detail: String,
    /// Policy version that decided, when a policy decision was involved.
    pub policy_version: Option<String>,
}

impl Problem {
    /// A problem with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem { status, code, detail: detail.into(), policy_version: None }
    }

    /// 400: the request is not one the API accepts.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", detail)
    }

    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
}

/// The HTTP status and code of a gRPC status code: the one mapping between the two APIs.
///
/// 401 for every authentication failure (one generic message, set by the service), 403 for a refusal
/// by role or policy rule, 400 for an invalid request, 429 for a quota, rate limit or privacy budget,
/// 503 when the gateway cannot serve now (the audit ledger cannot append, no node answered, the
/// gateway lacks configuration a grant needs), 404 for a ledger entry or tree size that does not exist.
pub fn http_status(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
        Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, "invalid_argument"),
        Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
        Code::Unavailable | Code::FailedPrecondition => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Code::DeadlineExceeded | Code::Cancelled => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "unimplemented"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl From<tonic::Status> for Problem {
    fn from(s: tonic::Status) -> Self {
        let (status, code) = http_status(s.code());
        let policy_version =
            s.metadata().get(crate::query::POLICY_VERSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Problem { status, code, detail: s.message().to_owned(), policy_version }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(v) = &self.policy_version {
            body["policy_version"] = json!(v);
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_the_documented_http_statuses() {
        for (code, status) in [
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::InvalidArgument, 400),
            (Code::NotFound, 404),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
        ] {
            assert_eq!(http_status(code).0.as_u16(), status, "{code:?}");
        }
    }

    #[test]
    fn a_status_keeps_its_message_and_policy_version() {
        let mut s = tonic::Status::permission_denied("no grant (rule no_grant, policy abc)");
        s.metadata_mut().insert(crate::query::POLICY_VERSION_HEADER, "abc".parse().unwrap());
        let p = Problem::from(s);
        assert_eq!((p.status, p.code), (StatusCode::FORBIDDEN, "permission_denied"));
        assert_eq!(p.detail, "no grant (rule no_grant, policy abc)");
        assert_eq!(p.policy_version.as_deref(), Some("abc"));
    }
}
