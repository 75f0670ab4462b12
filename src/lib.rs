//! The `shuzhu` command: one binary for every party of a federation (node, gateway, requester,
//! auditor) plus the development tools (`pki`, `token`, `gen`, `demo`). `main.rs` only parses the
//! command line and calls [`cli::run`]; the libraries do the work.
//!
//! - [`pki`]: a development federation CA and party certificates;
//! - [`federation`]: a whole federation on one machine, for `demo` and the integration tests;
//! - [`client`]: the requester's TLS channel and calls;
//! - [`output`]: tables, JSON and CSV.

pub mod cli;
pub mod client;
pub mod federation;
pub mod output;
pub mod pki;
