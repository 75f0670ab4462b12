//! Shuzhu gateway (数助网关): authenticates requesters, decides by policy, fans queries out to
//! nodes over mutual TLS, merges and suppresses the partial results, and records every request
//! in a tamper-evident audit ledger. It must not depend on `shuzhu-node`: the two meet only
//! over the wire.

pub mod audit;
pub mod auth;
pub mod config;
pub mod ledger;
pub mod query;
pub mod quota;
pub mod releases;
pub mod service;
pub mod state;
/// The HTTPS side of the gateway. Until the JSON API lands, it holds only the web console's files.
pub mod http {
    pub mod console;
}
