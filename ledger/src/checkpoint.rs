//! Checkpoints: the C2SP `tlog-checkpoint` body (`origin\nsize\nbase64(root)\n`) signed as a C2SP
//! signed note with Ed25519 (ring), plus key generation and loading from a PKCS#8 file.
//!
//! A signed note is the text, a blank line, then signature lines
//! `— <key name> base64(key id ‖ signature)` where the key id is the first 4 bytes of
//! SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key) and the signature covers the text including its
//! final newline. A verifier key is shared as `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
//! Verification follows C2SP signed-note: signature lines by other keys (another name, or our name
//! with another key id) are ignored, every line by the trusted key must verify (one that does not
//! rejects the whole note, wherever it stands), and at least one must. The origin line is unique
//! per log ([`valid_origin`]): the gateway's is `<gateway-id>.shuzhu/audit` unless configured.
//!
//! ```
//! use shuzhu_ledger::checkpoint::{Checkpoint, NoteSigner};
//! let signer = NoteSigner::from_pkcs8("gw.example/audit", &NoteSigner::generate_pkcs8().unwrap()).unwrap();
//! let cp = Checkpoint { origin: "gw.example/audit".into(), size: 3, root: [7; 32] };
//! let note = signer.sign(&cp);
//! assert_eq!(signer.verifier().verify(&note).unwrap(), cp);
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair};

use crate::merkle::{Hash, sha256};

/// Signature algorithm byte of Ed25519 in the signed-note key id.
const ALG_ED25519: u8 = 0x01;
/// Prefix of a signature line: em dash and space.
const SIG_PREFIX: &str = "\u{2014} ";
/// Largest note accepted.
const MAX_NOTE: usize = 1 << 20;

/// Why a key or a note was refused.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// The key name is empty or has spaces, `+` or control characters.
    #[error("invalid key name")]
    BadKeyName,
    /// The PKCS#8 key could not be parsed.
    #[error("signing key is not a valid ed25519 pkcs#8 document")]
    BadKey,
    /// A key could not be generated.
    #[error("cannot generate a signing key")]
    KeyGeneration,
    /// The key file could not be read or written.
    #[error("cannot {op} key file {path}")]
    KeyFile {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The verifier key text is malformed.
    #[error("malformed verifier key")]
    BadVerifierKey,
    /// The note is not a well-formed signed note.
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    /// No signature by the expected key verifies.
    #[error("note is not signed by the expected key")]
    NotSigned,
    /// The note text is not a well-formed checkpoint.
    #[error("malformed checkpoint body: {0}")]
    BadCheckpoint(&'static str),
}

/// A checkpoint: the log's origin, size and root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (usually its key name).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Merkle root of those leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The C2SP `tlog-checkpoint` body.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// Parses a checkpoint body; extension lines after the root are allowed and ignored. A control
    /// character other than a line end refuses it.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        // The same rule as a note's text: no control character but the line ends, so that every body that
        // parses can be signed and verified.
        if text.chars().any(|c| c.is_ascii_control() && c != '\n') {
            return Err(NoteError::BadCheckpoint("control character"));
        }
        let mut lines = text.split_terminator('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(NoteError::BadCheckpoint("no origin"))?;
        let size = lines.next().ok_or(NoteError::BadCheckpoint("no size"))?;
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NoteError::BadCheckpoint("bad size"));
        }
        let size = size.parse().map_err(|_| NoteError::BadCheckpoint("bad size"))?;
        let root = lines.next().ok_or(NoteError::BadCheckpoint("no root"))?;
        let root = STANDARD.decode(root).map_err(|_| NoteError::BadCheckpoint("root is not base64"))?;
        let root = Hash::try_from(root.as_slice()).map_err(|_| NoteError::BadCheckpoint("root is not 32 bytes"))?;
        if !text.ends_with('\n') || lines.any(str::is_empty) {
            return Err(NoteError::BadCheckpoint("bad line structure"));
        }
        Ok(Self { origin: origin.to_owned(), size, root })
    }
}

/// Whether `origin` is a host-style checkpoint origin, as C2SP tlog-checkpoint recommends: a
/// schema-less URL such as `gw-xiamen.shuzhu/audit` — a lowercase host of dot-separated labels of
/// `a-z`, `0-9` and `-` (at least two labels), then optionally `/` and a path of printable ASCII
/// without spaces or `+`.
pub fn valid_origin(origin: &str) -> bool {
    let (host, path) = origin.split_once('/').unwrap_or((origin, ""));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    origin.len() <= 255
        && host.split('.').count() >= 2
        && host.split('.').all(label_ok)
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'+')
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

fn key_id(name: &str, public_key: &[u8]) -> [u8; 4] {
    let h = sha256(&[name.as_bytes(), b"\n", &[ALG_ED25519], public_key]);
    [h[0], h[1], h[2], h[3]]
}

/// Signs checkpoints with an Ed25519 key under a key name.
pub struct NoteSigner {
    name: String,
    key: Ed25519KeyPair,
    id: [u8; 4],
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A new random Ed25519 key as a PKCS#8 document.
    pub fn generate_pkcs8() -> Result<Vec<u8>, NoteError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| NoteError::KeyGeneration)?;
        Ok(doc.as_ref().to_vec())
    }

    /// Writes a new key to `path` (mode 0600, fails if it exists) and syncs it.
    pub fn generate_key_file(path: &Path) -> Result<(), NoteError> {
        let doc = Self::generate_pkcs8()?;
        let err = |op| move |source| NoteError::KeyFile { op, path: path.to_owned(), source };
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(err("create"))?;
        f.write_all(&doc).map_err(err("write"))?;
        f.sync_all().map_err(err("sync"))?;
        Ok(())
    }

    /// Loads a signer from a PKCS#8 key file.
    pub fn load(name: &str, path: &Path) -> Result<Self, NoteError> {
        let doc = fs::read(path).map_err(|source| NoteError::KeyFile { op: "read", path: path.to_owned(), source })?;
        Self::from_pkcs8(name, &doc)
    }

    /// A signer from a PKCS#8 document.
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadKeyName);
        }
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| NoteError::BadKey)?;
        let id = key_id(name, key.public_key().as_ref());
        Ok(Self { name: name.to_owned(), key, id })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this key.
    pub fn verifier(&self) -> NoteVerifier {
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(self.key.public_key().as_ref());
        NoteVerifier { name: self.name.clone(), public_key, id: self.id }
    }

    /// Signs `cp`'s body as a signed note.
    pub fn sign(&self, cp: &Checkpoint) -> String {
        self.sign_text(&cp.body())
    }

    /// Signs `text` (which ends in a newline) as a signed note.
    pub(crate) fn sign_text(&self, text: &str) -> String {
        let sig = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(sig.as_ref());
        format!("{text}\n{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// Verifies notes signed by one Ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    public_key: [u8; 32],
    id: [u8; 4],
}

impl NoteVerifier {
    /// A verifier from a key name and a raw 32-byte Ed25519 public key.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadKeyName);
        }
        Ok(Self { name: name.to_owned(), public_key, id: key_id(name, &public_key) })
    }

    /// Parses the text form `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadVerifierKey);
        };
        let key = STANDARD.decode(key).map_err(|_| NoteError::BadVerifierKey)?;
        let [ALG_ED25519, rest @ ..] = key.as_slice() else { return Err(NoteError::BadVerifierKey) };
        let public_key: [u8; 32] = rest.try_into().map_err(|_| NoteError::BadVerifierKey)?;
        let v = Self::new(name, public_key)?;
        if id.len() != 8 || hex::decode(id).ok().as_deref() != Some(&v.id[..]) {
            return Err(NoteError::BadVerifierKey);
        }
        Ok(v)
    }

    /// The text form, see [`NoteVerifier::parse`].
    pub fn to_text(&self) -> String {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(&self.public_key);
        format!("{}+{}+{}", self.name, hex::encode(self.id), STANDARD.encode(key))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies a signed note and returns its text (with the final newline).
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        if note.len() > MAX_NOTE {
            return Err(NoteError::Malformed("too long"));
        }
        if note.chars().any(|c| c.is_ascii_control() && c != '\n') {
            return Err(NoteError::Malformed("control character"));
        }
        let split = note.rfind("\n\n").ok_or(NoteError::Malformed("no signature block"))?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        if !sigs.ends_with('\n') {
            return Err(NoteError::Malformed("signature block does not end in a newline"));
        }
        let pk = signature::UnparsedPublicKey::new(&signature::ED25519, &self.public_key);
        let mut verified = false;
        for line in sigs.split_terminator('\n') {
            let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed("bad signature line"))?;
            let (name, b64) = rest.rsplit_once(' ').ok_or(NoteError::Malformed("bad signature line"))?;
            let blob = STANDARD.decode(b64).map_err(|_| NoteError::Malformed("bad signature encoding"))?;
            if !valid_key_name(name) || blob.len() < 5 {
                return Err(NoteError::Malformed("bad signature line"));
            }
            // C2SP signed-note: a signature by an unknown key (name or id differs) is ignored; every
            // signature by the known key must verify, wherever it stands, or the whole note is
            // refused; and at least one must.
            if name != self.name || blob[..4] != self.id {
                continue;
            }
            if pk.verify(text.as_bytes(), &blob[4..]).is_err() {
                return Err(NoteError::NotSigned);
            }
            verified = true;
        }
        if verified { Ok(text) } else { Err(NoteError::NotSigned) }
    }

    /// Verifies a signed checkpoint note and parses its body.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse(self.open(note)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_pkcs8("shuzhu.test/audit", &NoteSigner::generate_pkcs8().unwrap()).unwrap()
    }

    fn cp() -> Checkpoint {
        Checkpoint { origin: "shuzhu.test/audit".into(), size: 42, root: [9; 32] }
    }

    #[test]
    fn note_has_the_c2sp_shape_and_verifies() {
        let s = signer();
        let note = s.sign(&cp());
        let (text, sig) = note.split_once("\n\n").unwrap();
        assert_eq!(format!("{text}\n"), cp().body());
        assert_eq!(cp().body(), format!("shuzhu.test/audit\n42\n{}\n", STANDARD.encode([9u8; 32])));
        let sig = sig.strip_prefix("\u{2014} shuzhu.test/audit ").unwrap().trim_end();
        let blob = STANDARD.decode(sig).unwrap();
        assert_eq!(blob.len(), 4 + 64);
        let pk = s.verifier().public_key;
        let want_id = &sha256(&[b"shuzhu.test/audit\n\x01", &pk])[..4];
        assert_eq!(&blob[..4], want_id);
        assert_eq!(s.verifier().verify(&note).unwrap(), cp());
    }

    #[test]
    fn a_body_with_a_control_character_is_no_checkpoint() {
        // Found by fuzzing (fuzz/regressions/checkpoint_note): such a body parsed, yet no note carrying it
        // can verify (notes refuse control characters), so a checkpoint that parsed could not be signed.
        let body = format!("fuzz\0f.shuzhu/audit\n4\n{}\n", STANDARD.encode([1u8; 32]));
        assert!(matches!(Checkpoint::parse(&body), Err(NoteError::BadCheckpoint(_))));
        let tab = format!("shuzhu.test/audit\n4\n{}\nextension\tline\n", STANDARD.encode([1u8; 32]));
        assert!(matches!(Checkpoint::parse(&tab), Err(NoteError::BadCheckpoint(_))));
    }

    #[test]
    fn tampering_or_another_key_is_refused() {
        let s = signer();
        let note = s.sign(&cp());
        let bad = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(s.verifier().verify(&bad), Err(NoteError::NotSigned)));
        assert!(matches!(signer().verifier().verify(&note), Err(NoteError::NotSigned)));
        assert!(s.verifier().verify(&note.replace('\u{2014}', "-")).is_err());
        assert!(s.verifier().verify(note.trim_end()).is_err());
    }

    #[test]
    fn a_second_signature_by_the_trusted_key_that_fails_rejects_the_note() {
        let s = signer();
        let note = s.sign(&cp());
        let line = note.lines().last().unwrap().to_owned();
        let (head, b64) = line.rsplit_once(' ').unwrap();
        let mut blob = STANDARD.decode(b64).unwrap();
        blob[20] ^= 1;
        let bad_line = format!("{head} {}\n", STANDARD.encode(&blob));
        // Valid then invalid, and invalid then valid: both refused (C2SP signed-note).
        let valid_first = format!("{note}{bad_line}");
        assert!(matches!(s.verifier().verify(&valid_first), Err(NoteError::NotSigned)), "valid, then invalid");
        let (text, sigs) = note.split_once("\n\n").unwrap();
        let invalid_first = format!("{text}\n\n{bad_line}{sigs}");
        assert!(s.verifier().verify(&invalid_first).is_err(), "invalid, then valid");
        // A signature by an unknown key (another name, or our name with another key id) is ignored.
        let other = NoteSigner::from_pkcs8("other.test/log", &NoteSigner::generate_pkcs8().unwrap()).unwrap();
        let other_sig = other.sign(&cp());
        let other_line = other_sig.lines().last().unwrap();
        assert_eq!(s.verifier().verify(&format!("{note}{other_line}\n")).unwrap(), cp());
        let mut foreign_id = blob.clone();
        foreign_id[0] ^= 0xff;
        let foreign = format!("{head} {}\n", STANDARD.encode(&foreign_id));
        assert_eq!(s.verifier().verify(&format!("{note}{foreign}")).unwrap(), cp());
    }

    #[test]
    fn origins_are_host_style() {
        for ok in ["gw-xiamen.shuzhu/audit", "audit.court.example", "a.b/c/d"] {
            assert!(valid_origin(ok), "{ok}");
        }
        for bad in ["shuzhu-gateway/audit", "", "GW.shuzhu/audit", "gw..x/a", "gw.x/a b", "gw.x/a+b", "-gw.x"] {
            assert!(!valid_origin(bad), "{bad}");
        }
    }

    #[test]
    fn verifier_key_text_round_trips() {
        let v = signer().verifier();
        let text = v.to_text();
        assert_eq!(NoteVerifier::parse(&text).unwrap(), v);
        let wrong_id = text.replacen('+', "+0", 1);
        assert!(NoteVerifier::parse(&wrong_id).is_err());
    }

    #[test]
    fn checkpoint_body_parsing_is_strict() {
        assert!(Checkpoint::parse("o\n01\nAAAA\n").is_err());
        assert!(Checkpoint::parse("o\n1\n").is_err());
        assert!(Checkpoint::parse(&cp().body()[..cp().body().len() - 1]).is_err());
        let with_ext = format!("{}ext line\n", cp().body());
        assert_eq!(Checkpoint::parse(&with_ext).unwrap(), cp());
    }

    #[test]
    fn key_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pk8");
        NoteSigner::generate_key_file(&path).unwrap();
        assert!(NoteSigner::generate_key_file(&path).is_err(), "never overwrites a key");
        let a = NoteSigner::load("n", &path).unwrap();
        let b = NoteSigner::load("n", &path).unwrap();
        assert_eq!(a.verifier(), b.verifier());
    }
}
