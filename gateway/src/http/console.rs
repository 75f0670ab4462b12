//! The web console (数助控制台): static HTML, CSS and ES-module JavaScript from `gateway/web/`,
//! embedded in the binary with `include_bytes!` so that nothing is fetched at run time and building
//! needs no Node.js. The console is a client of the JSON API beside it (`/v1/…`); this module only
//! serves its files.
//!
//! [`console_routes`] is the hook the API's router merges (`GET /` and one route per file); the API's
//! security headers layer then applies to these answers too.
//!
//! Every answer carries a strict Content-Security-Policy (scripts only from this origin, no inline
//! script or style attribute, no framing, no plugins, requests only to this origin), `nosniff`, no
//! referrer, and an `ETag` so a browser revalidates (`no-cache`) instead of trusting a stale copy
//! after an upgrade. The token never appears in a URL: the console keeps it in `sessionStorage`
//! and sends it as the `Authorization` header.
//!
//! ```
//! use shuzhu_gateway::http::console;
//! let a = console::asset("/", None).unwrap();
//! assert_eq!(a.status, 200);
//! assert!(a.content_type.starts_with("text/html"));
//! ```

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::service::Services;

/// Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct File {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Content type of the ES modules.
const JS: &str = "text/javascript; charset=utf-8";

/// The embedded files; `/` serves `index.html`.
const FILES: &[File] = &[
    File {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/index.html"),
    },
    File { path: "/style.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../../web/style.css") },
    File { path: "/app.js", content_type: JS, body: include_bytes!("../../web/app.js") },
    File { path: "/answer.js", content_type: JS, body: include_bytes!("../../web/answer.js") },
    File { path: "/api.js", content_type: JS, body: include_bytes!("../../web/api.js") },
    File { path: "/chart.js", content_type: JS, body: include_bytes!("../../web/chart.js") },
    File { path: "/regions.js", content_type: JS, body: include_bytes!("../../web/regions.js") },
    File { path: "/verify.js", content_type: JS, body: include_bytes!("../../web/verify.js") },
];

/// A console answer, independent of the HTTP library that writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// 200, or 304 when the browser's copy is current.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// The body (empty for 304).
    pub body: &'static [u8],
    /// Every other header to send.
    pub headers: Vec<(&'static str, String)>,
}

/// Whether `path` (without query) is one of the console's paths.
pub fn is_console_path(path: &str) -> bool {
    path == "/" || FILES.iter().any(|f| f.path == path)
}

/// The strong entity tag of a body: the first 16 bytes of its SHA-256, quoted hex.
fn etag(body: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    format!("\"{}\"", hex::encode(&d.as_ref()[..16]))
}

/// The console file at `path` (`/` is `index.html`), or None for any other path. `if_none_match` is
/// the request's `If-None-Match` header: when it names the current tag the answer is a bodiless 304.
pub fn asset(path: &str, if_none_match: Option<&str>) -> Option<Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    let f = FILES.iter().find(|f| f.path == path)?;
    let tag = etag(f.body);
    let fresh = if_none_match.is_some_and(|h| h.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let headers = vec![
        ("content-security-policy", CSP.to_string()),
        ("x-content-type-options", "nosniff".to_string()),
        ("x-frame-options", "DENY".to_string()),
        ("referrer-policy", "no-referrer".to_string()),
        ("cross-origin-opener-policy", "same-origin".to_string()),
        ("cross-origin-resource-policy", "same-origin".to_string()),
        ("cache-control", "no-cache".to_string()),
        ("etag", tag),
    ];
    Some(Asset {
        status: if fresh { 304 } else { 200 },
        content_type: f.content_type,
        body: if fresh { b"" } else { f.body },
        headers,
    })
}

/// The console's routes: `/` and each embedded file, `GET` (and so `HEAD`) only.
pub fn console_routes() -> Router<Services> {
    let mut router = Router::new().route("/", get(serve_asset));
    for f in FILES {
        router = router.route(f.path, get(serve_asset));
    }
    router
}

/// Answers a console path from the embedded files, with a 304 when the browser's copy is current.
async fn serve_asset(uri: axum::http::Uri, request_headers: HeaderMap) -> Response {
    let if_none_match = request_headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let Some(a) = asset(uri.path(), if_none_match) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = (StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK), a.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    for (name, value) in a.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_page_with_a_strict_policy() {
        let a = asset("/", None).unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.content_type, "text/html; charset=utf-8");
        let header = |n: &str| a.headers.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        let csp = header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(header("x-content-type-options"), Some("nosniff"));
        assert_eq!(header("cache-control"), Some("no-cache"));
    }

    #[test]
    fn every_file_has_its_type_and_an_unknown_path_is_none() {
        assert!(asset("/app.js", None).unwrap().content_type.starts_with("text/javascript"));
        assert!(asset("/style.css", None).unwrap().content_type.starts_with("text/css"));
        assert!(asset("/v1/me", None).is_none());
        assert!(asset("/../Cargo.toml", None).is_none());
        assert!(is_console_path("/") && is_console_path("/verify.js") && !is_console_path("/healthz"));
    }

    #[test]
    fn a_current_etag_gets_a_bodiless_304() {
        let a = asset("/app.js", None).unwrap();
        let tag = a.headers.iter().find(|(k, _)| *k == "etag").unwrap().1.clone();
        let again = asset("/app.js", Some(&tag)).unwrap();
        assert_eq!((again.status, again.body.len()), (304, 0));
        assert_eq!(asset("/app.js", Some("\"stale\"")).unwrap().status, 200);
    }

    #[test]
    fn the_page_has_no_inline_script_and_every_module_it_imports_is_served() {
        let html = std::str::from_utf8(asset("/", None).unwrap().body).unwrap();
        assert!(!html.contains("<script>") && !html.contains("style=") && !html.contains("onclick"));
        for f in FILES.iter().filter(|f| f.path.ends_with(".js")) {
            let js = std::str::from_utf8(f.body).unwrap();
            assert!(!js.contains("innerHTML") && !js.contains("eval("), "{} writes HTML or evaluates text", f.path);
            for line in js.lines().filter(|l| l.starts_with("import ")) {
                let from = line.rsplit("\"./").next().unwrap().trim_end_matches("\";");
                assert!(is_console_path(&format!("/{from}")), "{} imports {from}, which is not served", f.path);
            }
        }
    }
}
