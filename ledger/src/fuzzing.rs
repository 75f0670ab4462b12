//! Fuzz harnesses of the ledger's parsers of untrusted text (what an auditor is handed), shared by the
//! `cargo fuzz` targets in `fuzz/` and by the corpus replay in `tests/fuzz_replay.rs` (CI replays every
//! committed corpus file through the very function the fuzzer calls, on the stable toolchain). Not an API:
//! each function takes arbitrary bytes, must never panic on them, and panics only when an invariant it
//! states is broken.

use std::sync::OnceLock;

use crate::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use crate::verify::verify_export;

/// Key name (and checkpoint origin) of the fixed key the harnesses and their seed corpora use.
pub const FUZZ_KEY_NAME: &str = "fuzz.shuzhu/audit";

/// The fixed Ed25519 checkpoint key of the harnesses (a PKCS#8 v1 document around a constant seed), so
/// that committed corpora hold notes this key signed. Never a real key.
pub fn fuzz_signer() -> NoteSigner {
    // PKCS#8 v1 of an Ed25519 private key (RFC 8410): this 16-byte prefix, then the 32-byte seed.
    let mut doc = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    doc.extend_from_slice(&[0x5a; 32]);
    NoteSigner::from_pkcs8(FUZZ_KEY_NAME, &doc).unwrap_or_else(|e| unreachable!("a fixed valid key: {e}"))
}

fn signer() -> &'static NoteSigner {
    static SIGNER: OnceLock<NoteSigner> = OnceLock::new();
    SIGNER.get_or_init(fuzz_signer)
}

/// An export (`shuzhu audit export`, JSON lines) verified as `shuzhu audit verify --export` does, against
/// the fixed key. Invariant: an export that verifies is covered whole by its latest checkpoint.
pub fn export_lines(data: &[u8]) {
    let verifier = signer().verifier();
    if let Ok(summary) = verify_export(data, &verifier) {
        assert!(summary.latest.size >= summary.entries, "a verified export is covered by its checkpoint");
        assert!(summary.checkpoints >= 1, "a verified export has a checkpoint");
        assert!(summary.purged <= summary.entries, "no more purged entries than entries");
    }
}

/// A checkpoint note, a checkpoint body and a verifier key, as an auditor or a watcher reads them.
/// Invariants: a note that verifies parses back from its own body; a body that parses, signed, verifies
/// to the same checkpoint; a text signed as a note opens to exactly that text; a verifier key that
/// parses round-trips through its text form.
pub fn checkpoint_note(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let s = signer();
    let verifier = s.verifier();
    if let Ok(cp) = verifier.verify(text) {
        assert_eq!(Checkpoint::parse(&cp.body()).ok(), Some(cp.clone()), "a verified checkpoint re-parses");
    }
    if let Ok(cp) = Checkpoint::parse(text) {
        let note = s.sign(&cp);
        assert_eq!(verifier.verify(&note).ok(), Some(cp), "a signed checkpoint verifies to itself");
    }
    if text.ends_with('\n') {
        let note = s.sign_text(text);
        if let Ok(opened) = verifier.open(&note) {
            assert_eq!(opened, text, "a signed note opens to the text signed");
        }
    }
    if let Ok(v) = NoteVerifier::parse(text) {
        assert_eq!(NoteVerifier::parse(&v.to_text()).ok(), Some(v), "a verifier key round-trips");
    }
}
