//! Hook for the web console (served at `/` by the gateway): the console's routes and embedded assets
//! are added here and merged into the API's router by [`super::router`]. The API's security headers
//! (Content-Security-Policy, `nosniff`, `frame-ancestors 'none'`) apply to these routes too; an asset
//! may set its own `Cache-Control` (API answers get `no-store`).

use axum::Router;

use crate::service::Services;

/// The console's routes (`/` and its static assets). Empty until the console is added.
pub fn console_routes() -> Router<Services> {
    Router::new()
}
