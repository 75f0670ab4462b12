//! Shuzhu node (数助节点): keeps a court's or agency's data at home and answers only with partial
//! aggregates.
//!
//! - [`import`] validates CSV against the dataset schema, quarantines bad rows with line, field and
//!   reason, minimises personal fields at the edge (pseudonyms, derived attributes, scrubbing) and
//!   acknowledges only once the store is durable;
//! - [`store`] is the node's storage trait and its sled implementation (with real fsync);
//! - [`engine`] holds the cases as columns in memory and computes partial measures with contributor
//!   counts;
//! - [`tables`] holds the small `mediations` and `population` datasets and aggregates them exactly;
//! - [`lock`] is the exclusive lock on a store and on a journal, held for a node's whole life and
//!   during an import;
//! - [`journal`] is the hash-chained, fsynced journal of every release and refusal, and the signed
//!   receipts the node returns;
//! - [`source`] chooses where aggregates come from: the store's engine, or the court's PostgreSQL
//!   database with aggregation pushed down as generated SQL;
//! - [`service`] is the `Node` gRPC service over mutual TLS, which checks that the caller is a
//!   configured gateway and applies the node's own local policy on every call.
//!
//! Must not depend on `shuzhu-gateway`.

pub mod config;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
pub mod journal;
pub mod lock;
pub mod ops;
pub mod record;
pub mod service;
pub mod source;
pub mod store;
pub mod tables;
