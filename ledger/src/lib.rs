//! Shuzhu's audit ledger: an append-only RFC 9162 Merkle log whose entries are durable (framed
//! segment files, `fdatasync`ed with group commit) before an append is acknowledged, indexed in
//! sled (rebuilt from the segments), retained as salted digests so plaintext can be purged without
//! breaking a proof, and sealed by Ed25519-signed C2SP checkpoints.
//!
//! It must not depend on tokio, tonic or any other shuzhu crate: the gateway wraps it.
//!
//! - [`merkle`]: hashing, tree heads, inclusion and consistency proofs (generation, verification).
//! - [`segment`]: framed segment files, group commit, torn-tail recovery.
//! - [`tree`]: the node-hash files proofs read from.
//! - [`entry`]: the canonical, versioned leaf and the stored record.
//! - [`checkpoint`]: C2SP checkpoints as Ed25519 signed notes.
//! - [`Ledger`]: all of the above behind one API.
//! - [`verify`]: the export format and its offline verification.
//! - [`receipt`]: the Ed25519 receipts nodes sign for the releases they journal.

pub mod checkpoint;
pub mod entry;
#[doc(hidden)]
pub mod fuzzing;
mod ledger;
pub mod merkle;
pub mod receipt;
pub mod segment;
pub mod tree;
pub mod verify;

pub use entry::{EntryFields, StoredEntry, StoredField};
pub use ledger::{
    Appended, Filter, Ledger, LedgerError, LedgerOptions, Listed, OpenReport, PurgeReport, stored_origin,
};
