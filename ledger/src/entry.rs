//! The canonical, versioned entry encoding and the stored record around it.
//!
//! A **leaf** (what the Merkle tree hashes) commits to the entry's seq, its time and, for each
//! named text field, a *salted digest* `SHA-256(salt ‖ u16 BE name length ‖ name ‖ value)` with a
//! fresh random 32-byte salt per field — never to the plaintext itself:
//!
//! ```text
//! "shuzhu-audit-leaf-v1\n" ‖ seq u64 BE ‖ time_ms u64 BE ‖ field count u32 BE
//!   ‖ per field, sorted by name: name length u16 BE ‖ name ‖ digest (32 bytes)
//! ```
//!
//! A **record** (what a segment frame holds) is the leaf plus, until purged, each field's salt and
//! plaintext: `kind u8 (1 = with plaintext, 0 = purged) ‖ leaf length u32 BE ‖ leaf ‖ per field:
//! salt ‖ value length u32 BE ‖ value`. Purging drops the salts and values; the leaf, and so every
//! proof, is unchanged.

use ring::rand::{SecureRandom, SystemRandom};

use crate::merkle::{Hash, leaf_hash, sha256};

/// Version tag that opens every leaf.
pub const LEAF_VERSION: &str = "shuzhu-audit-leaf-v1";
/// Longest field name.
pub const MAX_NAME: usize = 64;
/// Most fields in an entry.
pub const MAX_FIELDS: usize = 256;
/// Largest total of field values.
pub const MAX_VALUES: usize = 1 << 20;

/// Field names the ledger indexes.
pub mod keys {
    /// The requesting agency.
    pub const AGENCY: &str = "agency";
    /// The requesting principal.
    pub const PRINCIPAL: &str = "principal";
    /// The indicator asked for.
    pub const INDICATOR: &str = "indicator";
    /// The policy decision.
    pub const DECISION: &str = "decision";
    /// On a purge record: the purge's horizon, ms since the epoch (decimal). Entries older than it
    /// that precede the record may have lost their plaintext; no other entry may. A purge record
    /// itself is never purged, so its horizon stays readable and verifiable.
    pub const PURGE_HORIZON: &str = "purge.horizon_ms";
}

/// Why an entry could not be encoded or a record decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    /// A field name is empty, too long, or not `[a-z0-9_.-]`.
    #[error("invalid field name")]
    BadName,
    /// Two fields have the same name.
    #[error("duplicate field name")]
    DuplicateName,
    /// Too many fields or too much text.
    #[error("entry too large")]
    TooLarge,
    /// Random salt could not be drawn.
    #[error("cannot draw random salt")]
    Random,
    /// Stored bytes are not a valid leaf or record.
    #[error("malformed stored entry: {0}")]
    Malformed(&'static str),
    /// A stored plaintext does not match the digest its leaf commits to.
    #[error("stored plaintext of field {0} does not match its digest")]
    DigestMismatch(String),
}

/// What the caller appends: the time and named text fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryFields {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Name → value pairs, in any order; names must be unique.
    pub fields: Vec<(String, String)>,
}

impl EntryFields {
    /// An entry at `time_ms` with no fields yet.
    pub fn new(time_ms: u64) -> Self {
        Self { time_ms, fields: Vec::new() }
    }

    /// Adds a field.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields.push((name.to_owned(), value.into()));
        self
    }
}

/// Salted digest of one field.
pub fn field_digest(salt: &[u8; 32], name: &str, value: &str) -> Hash {
    // Names are at most MAX_NAME bytes, so the length fits in a u16.
    sha256(&[salt, &(name.len() as u16).to_be_bytes(), name.as_bytes(), value.as_bytes()])
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// One field of a stored entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredField {
    /// The field name.
    pub name: String,
    /// The salted digest the leaf commits to.
    pub digest: Hash,
    /// Salt and plaintext, until purged.
    pub plaintext: Option<([u8; 32], String)>,
}

/// An entry as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// Position in the log, from 0 (also the leaf index).
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The leaf bytes.
    pub leaf: Vec<u8>,
    /// The fields, sorted by name.
    pub fields: Vec<StoredField>,
}

impl StoredEntry {
    /// RFC 9162 leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.leaf)
    }

    /// Whether the plaintext has been purged.
    pub fn purged(&self) -> bool {
        self.fields.iter().all(|f| f.plaintext.is_none()) && !self.fields.is_empty()
    }

    /// Whether this entry records a purge (it carries [`keys::PURGE_HORIZON`]).
    pub fn is_purge_record(&self) -> bool {
        self.fields.iter().any(|f| f.name == keys::PURGE_HORIZON)
    }

    /// A field's plaintext, unless purged or absent.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|f| f.name == name).and_then(|f| f.plaintext.as_ref()).map(|(_, v)| v.as_str())
    }
}

/// Salts and digests the fields and returns the record for `seq`.
pub(crate) struct Prepared {
    time_ms: u64,
    fields: Vec<(String, [u8; 32], String, Hash)>,
}

impl Prepared {
    /// Validates the fields and draws their salts; runs outside any lock.
    pub(crate) fn new(entry: EntryFields, rng: &SystemRandom) -> Result<Self, EntryError> {
        let EntryFields { time_ms, mut fields } = entry;
        if fields.len() > MAX_FIELDS || fields.iter().map(|(_, v)| v.len()).sum::<usize>() > MAX_VALUES {
            return Err(EntryError::TooLarge);
        }
        if !fields.iter().all(|(n, _)| valid_name(n)) {
            return Err(EntryError::BadName);
        }
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        if fields.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(EntryError::DuplicateName);
        }
        // One draw for every salt: a system call per field would dominate an append's cost.
        let mut salts = vec![0u8; 32 * fields.len()];
        rng.fill(&mut salts).map_err(|_| EntryError::Random)?;
        let mut out = Vec::with_capacity(fields.len());
        for ((name, value), salt) in fields.into_iter().zip(salts.chunks_exact(32)) {
            let salt: [u8; 32] = salt.try_into().expect("chunks of 32");
            let digest = field_digest(&salt, &name, &value);
            out.push((name, salt, value, digest));
        }
        Ok(Self { time_ms, fields: out })
    }

    /// The index values carried by this entry: `(name, value)` of the indexed keys present.
    pub(crate) fn index_values(&self) -> Vec<(u8, String)> {
        self.fields.iter().filter_map(|(n, _, v, _)| index_kind(n).map(|k| (k, v.clone()))).collect()
    }

    pub(crate) fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// Leaf and record bytes for this entry at `seq`.
    pub(crate) fn encode(&self, seq: u64) -> (Vec<u8>, Vec<u8>) {
        let digests: Vec<(&str, Hash)> = self.fields.iter().map(|(n, _, _, d)| (n.as_str(), *d)).collect();
        let leaf = encode_leaf(seq, self.time_ms, &digests);
        let plain: Vec<(&[u8; 32], &str)> = self.fields.iter().map(|(_, s, v, _)| (s, v.as_str())).collect();
        let record = encode_record(&leaf, Some(&plain));
        (leaf, record)
    }
}

/// Index kind byte for an indexed field name.
pub(crate) fn index_kind(name: &str) -> Option<u8> {
    match name {
        keys::AGENCY => Some(b'a'),
        keys::PRINCIPAL => Some(b'p'),
        keys::INDICATOR => Some(b'i'),
        keys::DECISION => Some(b'd'),
        _ => None,
    }
}

fn encode_leaf(seq: u64, time_ms: u64, fields: &[(&str, Hash)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEAF_VERSION.len() + 21 + fields.len() * 50);
    out.extend_from_slice(LEAF_VERSION.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time_ms.to_be_bytes());
    out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
    for (name, digest) in fields {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(digest);
    }
    out
}

/// Record bytes: the leaf and, unless purged, the salts and values in leaf order.
pub(crate) fn encode_record(leaf: &[u8], plain: Option<&[(&[u8; 32], &str)]>) -> Vec<u8> {
    let extra: usize = plain.map_or(0, |p| p.iter().map(|(_, v)| 36 + v.len()).sum());
    let mut out = Vec::with_capacity(5 + leaf.len() + extra);
    out.push(u8::from(plain.is_some()));
    out.extend_from_slice(&(leaf.len() as u32).to_be_bytes());
    out.extend_from_slice(leaf);
    for (salt, value) in plain.unwrap_or(&[]) {
        out.extend_from_slice(*salt);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        if self.0.len() < n {
            return Err(EntryError::Malformed("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, EntryError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, EntryError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, EntryError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn hash(&mut self) -> Result<Hash, EntryError> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }
}

/// A decoded leaf: seq, time and `(name, digest)` per field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The seq it was appended at.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Field names and salted digests, sorted by name.
    pub fields: Vec<(String, Hash)>,
}

/// Decodes and validates leaf bytes, including that they are in canonical form.
pub fn decode_leaf(bytes: &[u8]) -> Result<Leaf, EntryError> {
    let mut r = Reader(bytes);
    if r.take(LEAF_VERSION.len() + 1)? != format!("{LEAF_VERSION}\n").as_bytes() {
        return Err(EntryError::Malformed("unknown leaf version"));
    }
    let seq = r.u64()?;
    let time_ms = r.u64()?;
    let n = r.u32()? as usize;
    if n > MAX_FIELDS {
        return Err(EntryError::Malformed("too many fields"));
    }
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::from(r.u16()?);
        let name = std::str::from_utf8(r.take(len)?).map_err(|_| EntryError::Malformed("field name"))?;
        if !valid_name(name) {
            return Err(EntryError::Malformed("field name"));
        }
        fields.push((name.to_owned(), r.hash()?));
    }
    if !r.0.is_empty() {
        return Err(EntryError::Malformed("trailing bytes in leaf"));
    }
    if fields.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(EntryError::Malformed("fields not in canonical order"));
    }
    Ok(Leaf { seq, time_ms, fields })
}

/// Decodes a record and checks every plaintext against its digest.
pub fn decode_record(bytes: &[u8]) -> Result<StoredEntry, EntryError> {
    let mut r = Reader(bytes);
    let kind = r.take(1)?[0];
    if kind > 1 {
        return Err(EntryError::Malformed("record kind"));
    }
    let leaf_len = r.u32()? as usize;
    let leaf_bytes = r.take(leaf_len)?.to_vec();
    let leaf = decode_leaf(&leaf_bytes)?;
    let mut fields = Vec::with_capacity(leaf.fields.len());
    for (name, digest) in leaf.fields {
        let plaintext = if kind == 1 {
            let salt: [u8; 32] = r.hash()?;
            let len = r.u32()? as usize;
            let value = std::str::from_utf8(r.take(len)?).map_err(|_| EntryError::Malformed("value"))?.to_owned();
            if field_digest(&salt, &name, &value) != digest {
                return Err(EntryError::DigestMismatch(name));
            }
            Some((salt, value))
        } else {
            None
        };
        fields.push(StoredField { name, digest, plaintext });
    }
    if !r.0.is_empty() {
        return Err(EntryError::Malformed("trailing bytes in record"));
    }
    Ok(StoredEntry { seq: leaf.seq, time_ms: leaf.time_ms, leaf: leaf_bytes, fields })
}

/// The record of `entry` with its plaintext purged.
pub(crate) fn purged_record(entry: &StoredEntry) -> Vec<u8> {
    encode_record(&entry.leaf, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EntryFields {
        EntryFields::new(1_700_000_000_000)
            .with("principal", "judge-7")
            .with("agency", "court-a")
            .with("action", "query")
    }

    #[test]
    fn record_round_trips_and_leaf_is_canonical() {
        let p = Prepared::new(sample(), &SystemRandom::new()).unwrap();
        let (leaf, record) = p.encode(5);
        let e = decode_record(&record).unwrap();
        assert_eq!((e.seq, e.time_ms), (5, 1_700_000_000_000));
        assert_eq!(e.leaf, leaf);
        assert!(leaf.starts_with(b"shuzhu-audit-leaf-v1\n"));
        let names: Vec<&str> = e.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["action", "agency", "principal"]);
        assert_eq!(e.value("principal"), Some("judge-7"));
        assert!(!e.purged());
        assert!(!leaf.windows(7).any(|w| w == b"judge-7"), "the leaf never holds plaintext");
    }

    #[test]
    fn purging_keeps_the_leaf() {
        let p = Prepared::new(sample(), &SystemRandom::new()).unwrap();
        let (leaf, record) = p.encode(0);
        let e = decode_record(&record).unwrap();
        let purged = decode_record(&purged_record(&e)).unwrap();
        assert_eq!(purged.leaf, leaf);
        assert!(purged.purged());
        assert_eq!(purged.value("principal"), None);
    }

    #[test]
    fn same_entry_twice_has_different_digests() {
        let rng = SystemRandom::new();
        let a = Prepared::new(sample(), &rng).unwrap().encode(0).0;
        let b = Prepared::new(sample(), &rng).unwrap().encode(0).0;
        assert_ne!(a, b, "fresh salts hide equal values");
    }

    #[test]
    fn tampered_plaintext_is_detected() {
        let p = Prepared::new(sample(), &SystemRandom::new()).unwrap();
        let (_, record) = p.encode(0);
        let pos = record.windows(7).position(|w| w == b"judge-7").unwrap();
        let mut bad = record.clone();
        bad[pos] = b'J';
        assert_eq!(decode_record(&bad), Err(EntryError::DigestMismatch("principal".into())));
    }

    #[test]
    fn bad_fields_are_refused() {
        let rng = SystemRandom::new();
        assert_eq!(Prepared::new(EntryFields::new(0).with("Bad Name", "x"), &rng).err(), Some(EntryError::BadName));
        let dup = EntryFields::new(0).with("a", "1").with("a", "2");
        assert_eq!(Prepared::new(dup, &rng).err(), Some(EntryError::DuplicateName));
    }
}
