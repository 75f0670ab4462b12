//! Release receipts: the message a node signs (Ed25519) for every release it journals, and the
//! signing and verification of it. A receipt binds the node id, the seq and hash of the journal
//! record, the release digest and the request id, so the gateway can record proof that the release
//! it merged is the one the node journalled, and an auditor can hold the node to it.
//!
//! The node's receipt key is a PKCS#8 Ed25519 document; its public half is shared with the gateway
//! as 64 hex digits in a text file.

use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Domain separation prefix of every receipt message.
pub const RECEIPT_CONTEXT: &str = "shuzhu-release-receipt/v1";

/// Why a receipt key could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The system random generator failed.
    #[error("cannot generate a receipt key")]
    KeyGeneration,
    /// A key file could not be read or written.
    #[error("receipt key file {path}: cannot {op}")]
    KeyFile {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The private key is not a PKCS#8 Ed25519 document.
    #[error("receipt key is not a PKCS#8 Ed25519 key")]
    BadKey,
    /// The public key file does not hold 64 hex digits.
    #[error("receipt public key is not 64 hex digits")]
    BadPublicKey,
}

/// The bytes a receipt signs.
pub fn message(node: &str, seq: u64, record_hash: &str, release_digest: &str, request_id: &str) -> Vec<u8> {
    format!("{RECEIPT_CONTEXT}\n{node}\n{seq}\n{record_hash}\n{release_digest}\n{request_id}\n").into_bytes()
}

/// Signs receipts with a node's key.
pub struct ReceiptSigner {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner").finish_non_exhaustive()
    }
}

impl ReceiptSigner {
    /// Writes a new key pair: the PKCS#8 key at `key_path` (mode 0600, never overwriting) and the
    /// public key as hex at `pub_path`.
    pub fn generate_files(key_path: &Path, pub_path: &Path) -> Result<(), ReceiptError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| ReceiptError::KeyGeneration)?;
        let signer = Self::from_pkcs8(doc.as_ref())?;
        write_file(key_path, doc.as_ref(), true)?;
        write_file(pub_path, format!("{}\n", signer.public_key_hex()).as_bytes(), false)
    }

    /// Loads a signer from a PKCS#8 key file.
    pub fn load(path: &Path) -> Result<Self, ReceiptError> {
        let doc =
            std::fs::read(path).map_err(|source| ReceiptError::KeyFile { op: "read", path: path.into(), source })?;
        Self::from_pkcs8(&doc)
    }

    /// A signer from a PKCS#8 document.
    pub fn from_pkcs8(doc: &[u8]) -> Result<Self, ReceiptError> {
        Ok(Self { key: Ed25519KeyPair::from_pkcs8_maybe_unchecked(doc).map_err(|_| ReceiptError::BadKey)? })
    }

    /// The public key as 64 hex digits.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.public_key().as_ref())
    }

    /// Signs the receipt of one release.
    pub fn sign(&self, node: &str, seq: u64, record_hash: &str, release_digest: &str, request_id: &str) -> Vec<u8> {
        self.key.sign(&message(node, seq, record_hash, release_digest, request_id)).as_ref().to_vec()
    }
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), ReceiptError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |op| move |source| ReceiptError::KeyFile { op, path: path.to_owned(), source };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(err("create"))?;
    f.write_all(bytes).map_err(err("write"))?;
    f.sync_all().map_err(err("sync"))
}

/// Checks receipts against a node's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptVerifier {
    public_key: [u8; 32],
}

impl ReceiptVerifier {
    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, ReceiptError> {
        let bytes = hex::decode(text.trim()).map_err(|_| ReceiptError::BadPublicKey)?;
        Ok(Self { public_key: bytes.try_into().map_err(|_| ReceiptError::BadPublicKey)? })
    }

    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<Self, ReceiptError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReceiptError::KeyFile {
            op: "read",
            path: path.into(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Whether `signature` is the node's signature of this receipt.
    pub fn verify(
        &self,
        node: &str,
        seq: u64,
        record_hash: &str,
        release_digest: &str,
        request_id: &str,
        signature: &[u8],
    ) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(&message(node, seq, record_hash, release_digest, request_id), signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_verifies_only_for_what_was_signed() {
        let dir = tempfile::tempdir().unwrap();
        let (k, p) = (dir.path().join("r.pk8"), dir.path().join("r.pub"));
        ReceiptSigner::generate_files(&k, &p).unwrap();
        assert!(ReceiptSigner::generate_files(&k, &p).is_err(), "never overwrites a key");
        let signer = ReceiptSigner::load(&k).unwrap();
        let verifier = ReceiptVerifier::load(&p).unwrap();
        let sig = signer.sign("court-1", 7, "ab", "cd", "req-1");
        assert!(verifier.verify("court-1", 7, "ab", "cd", "req-1", &sig));
        assert!(!verifier.verify("court-2", 7, "ab", "cd", "req-1", &sig));
        assert!(!verifier.verify("court-1", 8, "ab", "cd", "req-1", &sig));
        assert!(!verifier.verify("court-1", 7, "ab", "ce", "req-1", &sig));
        assert!(!verifier.verify("court-1", 7, "ab", "cd", "req-2", &sig));
        let mut bad = sig.clone();
        bad[3] ^= 1;
        assert!(!verifier.verify("court-1", 7, "ab", "cd", "req-1", &bad));
        let other =
            ReceiptSigner::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap().as_ref()).unwrap();
        assert!(!verifier.verify("court-1", 7, "ab", "cd", "req-1", &other.sign("court-1", 7, "ab", "cd", "req-1")));
        assert!(ReceiptVerifier::parse("zz").is_err());
        assert!(ReceiptVerifier::parse(&"ab".repeat(31)).is_err());
    }
}
