//! Shuzhu's audit ledger: an append-only RFC 9162 Merkle log whose entries are durable (framed
//! segment files, `fdatasync`ed with group commit) before an append is acknowledged, indexed in
//! sled (rebuilt from the segments), retained as salted digests so plaintext can be purged without
//! breaking a proof, and sealed by Ed25519-signed C2SP checkpoints.
//!
//! It must not depend on tokio, tonic or any other shuzhu crate: the gateway wraps it.

pub mod merkle;
pub mod segment;
