//! Shuzhu gateway (数助网关): authenticates requesters, decides by policy, fans queries out to
//! nodes over mutual TLS, merges and suppresses the partial results, and records every request
//! in a tamper-evident audit ledger. It must not depend on `shuzhu-node`: the two meet only
//! over the wire.

pub mod audit;
pub mod auth;
pub mod books;
pub mod budget;
pub mod config;
pub mod connector;
pub mod failures;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod ledger;
pub mod ops;
pub mod protection;
pub mod query;
pub mod quota;
pub mod releases;
pub mod service;
pub mod state;

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use tokio::net::TcpListener;

/// Serves the gateway until `shutdown` resolves: gRPC (`Gateway`, `Audit`, health, reflection) on
/// `listener` and, when `http_listener` is given (`http_listen` in gateway.toml), the HTTPS JSON API
/// on it, both with the gateway's certificate and over the same state, ledger and pipeline.
pub async fn serve(
    state: Arc<state::GatewayState>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    http_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), state::StartError> {
    let shutdown = shutdown.shared();
    let api = async {
        match http_listener {
            Some(l) => {
                http::serve(service::Services::new(Arc::clone(&state)), Arc::clone(&tls), l, shutdown.clone()).await
            }
            None => Ok(()),
        }
    };
    let (grpc, api) =
        tokio::join!(service::serve(Arc::clone(&state), Arc::clone(&tls), listener, shutdown.clone()), api);
    grpc?;
    api.map_err(state::StartError::Http)
}
