//! The gateway's audit ledger: a thin wrapper over [`shuzhu_ledger::Ledger`] (an RFC 9162 Merkle
//! log in `fdatasync`ed segments with group commit, sled indexes, signed checkpoints) that keeps
//! the small API the services use: append a request's [`AuditRecord`] (its canonical JSON, with
//! the indexed values taken from the typed record, so nothing is parsed back) and get its seq,
//! list entries from a seq, count them. [`AuditChain::open`] refuses to start on a ledger that
//! does not recover consistently with its last signed checkpoint: the gateway fails closed.
//!
//! Each request is one entry. Its fields are `body` (the canonical JSON record, exactly as
//! given) and copies of the indexed values `agency`, `principal`, `indicator` and `decision`; the
//! leaf commits to salted digests of them. Entries are numbered from 1 everywhere (the answer's
//! `audit_seq`, `audit list/show/prove`, the export); entry `n` is leaf `n − 1` of the tree.
//!
//! The ledger is not its own trust anchor: checkpoints are signed with an Ed25519 key kept
//! **outside** the ledger directory — `[ledger] checkpoint_key_file`, by default
//! `LEDGER_DIR.keys/checkpoint-key.pk8` beside it (directory 0700, key created 0600 on first open;
//! a key inside the ledger directory is refused) — and its verifier key text is written beside
//! the key (`checkpoint-key.pub`) for the operator to hand to auditors through another channel.
//! Verification ([`verify_ledger_dir`]) reads the directory without changing it and trusts only
//! the key it is given. The checkpoint origin (and key name) is `[ledger] origin`, by default
//! `<gateway-id>.shuzhu/audit`. Cadence comes from the same section. A final checkpoint is signed
//! when the chain is dropped. [`AuditChain::purge`] records a purge (with its horizon) and then
//! deletes plaintext past its retention period (longer for releases computed over personal
//! information).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shuzhu_gateway::ledger::{AuditChain, verify_ledger_dir};
//! let dir = tempfile::tempdir()?;
//! let ledger = dir.path().join("ledger");
//! let chain = AuditChain::open(&ledger)?;
//! assert_eq!(chain.append(r#"{"action":"query","decision":"allow"}"#.to_owned())?, 1);
//! // The auditor's copy of the public key, handed over outside the ledger directory.
//! let key = shuzhu_gateway::ledger::load_verifier(chain.public_key_path())?;
//! drop(chain);
//! assert_eq!(verify_ledger_dir(&ledger, &key)?.entries, 1);
//! # Ok(())
//! # }
//! ```

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use shuzhu_ledger::checkpoint::{Checkpoint, NoteError, NoteSigner, NoteVerifier};
pub use shuzhu_ledger::verify::EntryVisitor;
pub use shuzhu_ledger::verify::{ExportField, ExportSummary, VerifyError, verify_export};
use shuzhu_ledger::verify::{VerifyOptions, verify_export_with};
use shuzhu_ledger::{EntryFields, Ledger, LedgerOptions, PurgeReport, StoredEntry};

use crate::audit::AuditRecord;
use crate::config::LedgerSettings;

/// File of the checkpoint signing key (PKCS#8) in the default key directory (and where versions
/// before 0.2 kept it, inside the ledger directory).
pub const KEY_FILE_NAME: &str = "checkpoint-key.pk8";
/// File of the checkpoint verifier key text, beside the signing key.
pub const PUBLIC_KEY_FILE_NAME: &str = "checkpoint-key.pub";
/// The origin (and key name) every gateway used before origins were per deployment; still
/// accepted in `[ledger] origin` so that such a ledger stays verifiable.
pub const LEGACY_ORIGIN: &str = "shuzhu-gateway/audit";
/// File of the hash chain that preceded this ledger.
pub const LEGACY_CHAIN_FILE_NAME: &str = "audit-chain.jsonl";
/// Largest entry body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// One entry as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEntry {
    /// Position in the ledger, from 1.
    pub seq: u64,
    /// Hex root of the tree before this entry (of the first `seq - 1` entries).
    pub prev_hash: String,
    /// The canonical JSON record, or empty once its plaintext was purged.
    pub body: String,
    /// Hex RFC 9162 leaf hash of this entry.
    pub hash: String,
    /// Time of the entry, ms since the epoch.
    pub time_ms: u64,
    /// Whether its plaintext was purged.
    pub purged: bool,
}

/// Why the ledger could not be opened, appended to, read or verified.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The underlying Merkle ledger failed.
    #[error(transparent)]
    Ledger(#[from] shuzhu_ledger::LedgerError),
    /// The checkpoint key could not be created, read or parsed.
    #[error("audit ledger key: {0}")]
    Key(#[from] NoteError),
    /// A key or export file could not be written or read.
    #[error("audit ledger: cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The export does not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The directory holds a ledger in the old hash-chain format, which this version does not read.
    #[error(
        "audit ledger directory {0} holds an old hash-chain ledger (audit-chain.jsonl); move it aside to start a new ledger"
    )]
    LegacyChain(PathBuf),
    /// An offline tool was pointed at a ledger directory without its signing key (the gateway keeps it
    /// elsewhere, or this is an auditor's copy): opening would create a new key and overwrite the
    /// directory's public key.
    #[error(
        "audit ledger directory {0} has no checkpoint-key.pk8 (the gateway's key is kept elsewhere or this is a copy); \
         verify an export instead: shuzhu audit export --out FILE, then shuzhu audit verify --export FILE --key PUB"
    )]
    NoSigningKey(PathBuf),
    /// The checkpoint signing key is configured inside the ledger directory, where anyone who can
    /// rewrite the ledger could also re-sign it.
    #[error(
        "checkpoint key {key} lies inside the ledger directory {dir}; keep it outside (set [ledger] checkpoint_key_file)"
    )]
    KeyInsideLedger {
        /// The key file.
        key: PathBuf,
        /// The ledger directory.
        dir: PathBuf,
    },
    /// The signing key is still where older versions kept it, inside the ledger directory.
    #[error(
        "checkpoint key {old} is inside the ledger directory; move it out before starting: \
         mkdir -m 700 {new_dir} && mv {old} {new} && rm -f {old_pub} (or set [ledger] checkpoint_key_file)"
    )]
    KeyInLegacyPlace {
        /// Where it is.
        old: PathBuf,
        /// The old public key file beside it.
        old_pub: PathBuf,
        /// Where it goes.
        new: PathBuf,
        /// The directory it goes into.
        new_dir: PathBuf,
    },
    /// A secret file is readable by others, or could not be created.
    #[error(transparent)]
    Secret(#[from] shuzhu_net::secret::SecretError),
    /// An auditor's request names something the ledger cannot serve (a bad cursor, a size out of range).
    #[error("invalid audit request: {0}")]
    InvalidRequest(&'static str),
    /// The entry body is not valid JSON text.
    #[error("audit entry body is not valid json")]
    InvalidBody,
    /// The entry body exceeds [`MAX_BODY_BYTES`].
    #[error("audit entry body is {len} bytes, more than the {max} allowed")]
    BodyTooLarge {
        /// The body's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// The values of an entry that the ledger indexes (and its time), wherever they come from.
struct Indexed<'a> {
    time: Option<&'a str>,
    agency: Option<&'a str>,
    principal: Option<&'a str>,
    indicator: Option<&'a str>,
    decision: Option<&'a str>,
}

/// The gateway's audit ledger. `Send + Sync`.
pub struct AuditChain {
    dir: PathBuf,
    public_key: PathBuf,
    ledger: Ledger,
}

impl std::fmt::Debug for AuditChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditChain").field("dir", &self.dir).field("len", &self.len()).finish()
    }
}

/// The default directory of the checkpoint key of the ledger in `dir`: `DIR.keys` beside it.
pub fn default_key_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_else(|| std::ffi::OsStr::new("ledger")).to_owned();
    name.push(".keys");
    dir.parent().unwrap_or(Path::new(".")).join(name)
}

/// The checkpoint signing key file of the ledger in `dir` under `settings`.
pub fn key_file(dir: &Path, settings: &LedgerSettings) -> PathBuf {
    settings.checkpoint_key_file.clone().unwrap_or_else(|| default_key_dir(dir).join(KEY_FILE_NAME))
}

/// The verifier key text file written beside the signing key (`KEY.pub`).
pub fn public_key_file(dir: &Path, settings: &LedgerSettings) -> PathBuf {
    key_file(dir, settings).with_extension("pub")
}

/// The checkpoint origin the ledger in `dir` is opened with: the configured one, else the one its
/// checkpoints already carry, else [`LEGACY_ORIGIN`] (a tool opening a new ledger without a
/// configuration; the gateway's configuration always names one).
pub fn origin(dir: &Path, settings: &LedgerSettings) -> String {
    settings.origin.clone().or_else(|| shuzhu_ledger::stored_origin(dir)).unwrap_or_else(|| LEGACY_ORIGIN.to_owned())
}

/// Loads the signing key (`[ledger] checkpoint_key_file`, or the default beside the ledger
/// directory, created 0600 in a 0700 directory on first use; never one inside the ledger
/// directory), refuses it when others may read it, and writes its public half beside it.
fn signer(dir: &Path, settings: &LedgerSettings, origin: &str) -> Result<(NoteSigner, PathBuf), LedgerError> {
    let key = key_file(dir, settings);
    let public = key.with_extension("pub");
    if key.starts_with(dir) {
        return Err(LedgerError::KeyInsideLedger { key, dir: dir.to_owned() });
    }
    if settings.checkpoint_key_file.is_none() && !key.exists() {
        let legacy = dir.join(KEY_FILE_NAME);
        if legacy.exists() {
            let new_dir = default_key_dir(dir);
            return Err(LedgerError::KeyInLegacyPlace {
                old: legacy,
                old_pub: dir.join(PUBLIC_KEY_FILE_NAME),
                new: key,
                new_dir,
            });
        }
        shuzhu_net::secret::create_secret_dir(&default_key_dir(dir))?;
        NoteSigner::generate_key_file(&key)?;
    }
    if key.exists() {
        shuzhu_net::secret::check_secret_permissions(&key)?;
    }
    let signer = NoteSigner::load(origin, &key)?;
    let text = format!("{}\n", signer.verifier().to_text());
    if std::fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&public, text).map_err(|source| LedgerError::Io {
            op: "write",
            path: public.clone(),
            source,
        })?;
    }
    Ok((signer, public))
}

/// Whether `e` is sled failing to take its directory lock (another holder, or one that is still
/// releasing it: sled 0.34 drops its file lock from a background thread after `Db` is dropped,
/// spacejam/sled#1234).
fn is_lock_contention(e: &shuzhu_ledger::LedgerError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::WouldBlock)
            || s.to_string().contains("could not acquire lock")
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Opens the ledger, waiting up to a second for a lock a just-closed holder is still releasing.
fn open_waiting_for_lock(
    dir: &Path,
    options: &mut dyn FnMut() -> Result<LedgerOptions, LedgerError>,
) -> Result<Ledger, LedgerError> {
    const TRIES: u32 = 50;
    let mut attempt = 1;
    loop {
        match Ledger::open(dir, options()?) {
            Err(e) if attempt < TRIES && is_lock_contention(&e) => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Reads a verifier key text file (as written beside the ledger).
pub fn load_verifier(path: &Path) -> Result<NoteVerifier, LedgerError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| LedgerError::Io { op: "read", path: path.into(), source })?;
    Ok(NoteVerifier::parse(&text)?)
}

fn str_at<'a>(v: &'a serde_json::Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(serde_json::Value::as_str).filter(|s| !s.is_empty())
}

impl AuditChain {
    /// Opens (creating) the ledger in `dir` with the default settings, recovering and checking it
    /// against its last signed checkpoint.
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        Self::open_with(dir, &LedgerSettings::default())
    }

    /// Opens an existing ledger directory for an offline tool (`audit reconcile --ledger`) with its
    /// signing key in the default place beside it. Unlike [`AuditChain::open`] it never creates a
    /// signing key, so it never replaces the public key with one the gateway did not sign with.
    /// (`audit verify` does not open the ledger at all: see [`verify_ledger_dir`].)
    pub fn open_offline(dir: &Path) -> Result<Self, LedgerError> {
        if !key_file(dir, &LedgerSettings::default()).is_file() {
            return Err(LedgerError::NoSigningKey(dir.to_owned()));
        }
        Self::open(dir)
    }

    /// Opens (creating) the ledger in `dir` with the key, origin and checkpoint cadence of `settings`.
    pub fn open_with(dir: &Path, settings: &LedgerSettings) -> Result<Self, LedgerError> {
        Self::open_inner(dir, settings, false)
    }

    /// `shuzhu audit init`: opens a ledger whose segments hold entries but no signed checkpoint
    /// (see [`shuzhu_ledger::LedgerError::Unsealed`]), seals them with a checkpoint and records who
    /// did it. Only for a ledger an operator has checked by other means.
    pub fn init(dir: &Path, settings: &LedgerSettings, who: &str) -> Result<(Self, u64), LedgerError> {
        let chain = Self::open_inner(dir, settings, true)?;
        let mut record = crate::audit::AuditRecord::new("offline", "", "audit.init", "");
        record.decision = "allow".into();
        record.reason = "sealed the entries found without a signed checkpoint".into();
        record.filters = vec![format!("operator={}", crate::audit::clip(who))];
        let seq = chain.append_record(&record)?;
        chain.ledger.checkpoint()?;
        Ok((chain, seq))
    }

    fn open_inner(dir: &Path, settings: &LedgerSettings, init: bool) -> Result<Self, LedgerError> {
        // Never start a new ledger beside an old one: its records would silently stop being served.
        if dir.join(LEGACY_CHAIN_FILE_NAME).exists() {
            return Err(LedgerError::LegacyChain(dir.to_owned()));
        }
        let origin = origin(dir, settings);
        let mut public_key = PathBuf::new();
        let mut options = || {
            let (signer, public) = signer(dir, settings, &origin)?;
            public_key = public;
            let mut options = LedgerOptions::new(signer);
            options.init = init;
            options.checkpoint_every = settings.checkpoint_every;
            options.checkpoint_interval = (settings.checkpoint_interval_secs > 0)
                .then(|| std::time::Duration::from_secs(settings.checkpoint_interval_secs));
            // Like the hash chain before it, refuse to start on a ledger altered on disk.
            options.verify_on_open = true;
            Ok(options)
        };
        let ledger = open_waiting_for_lock(dir, &mut options)?;
        let report = ledger.open_report();
        if let Some(torn) = &report.torn_tail {
            tracing::warn!(segment = %torn.segment.display(), dropped_bytes = torn.dropped_bytes, "audit ledger: truncated a torn tail left by a crash (nothing acknowledged is lost)");
        }
        if report.index_discarded || report.index_caught_up_from.is_some() {
            tracing::info!(from = ?report.index_caught_up_from, discarded = report.index_discarded, "audit ledger: index rebuilt from the segments");
        }
        Ok(Self { dir: dir.to_owned(), public_key, ledger })
    }

    /// The verifier key text file of this ledger's checkpoints, beside the signing key (outside
    /// the ledger directory): what the operator hands to auditors.
    pub fn public_key_path(&self) -> &Path {
        &self.public_key
    }

    /// Appends the gateway's own record durably; returns its 1-based seq. The indexed values and
    /// the time come from the typed record: its canonical JSON is written, never parsed back.
    pub fn append_record(&self, record: &AuditRecord) -> Result<u64, LedgerError> {
        Ok(self.ledger.append(Self::record_fields(record)?)?.seq + 1)
    }

    /// The ledger entry of a typed record.
    fn record_fields(record: &AuditRecord) -> Result<EntryFields, LedgerError> {
        let principal = record.principal.as_ref();
        let indexed = Indexed {
            time: Some(record.time.as_str()),
            agency: principal.map(|p| p.agency.as_str()),
            principal: principal.map(|p| p.sub.as_str()),
            indicator: Some(record.indicator.as_str()),
            decision: Some(record.decision.as_str()),
        };
        Self::entry_fields(&indexed, record.canonical())
    }

    /// Appends one canonical JSON record given as text durably (tools and tests that hold a
    /// body, not a record); returns its 1-based seq. The text is parsed once for its indexed
    /// values and refused when it is not JSON.
    pub fn append(&self, body: String) -> Result<u64, LedgerError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(LedgerError::BodyTooLarge { len: body.len(), max: MAX_BODY_BYTES });
        }
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|_| LedgerError::InvalidBody)?;
        let indexed = Indexed {
            time: str_at(&v, "/time"),
            agency: str_at(&v, "/principal/agency"),
            principal: str_at(&v, "/principal/sub"),
            indicator: str_at(&v, "/indicator"),
            decision: str_at(&v, "/decision"),
        };
        Ok(self.ledger.append(Self::entry_fields(&indexed, body)?)?.seq + 1)
    }

    /// The ledger entry of a record: its indexed values and its body.
    fn entry_fields(indexed: &Indexed<'_>, body: String) -> Result<EntryFields, LedgerError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(LedgerError::BodyTooLarge { len: body.len(), max: MAX_BODY_BYTES });
        }
        let time_ms = indexed
            .time
            .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
            .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64));
        let mut entry = EntryFields::new(time_ms);
        for (name, value) in [
            ("agency", indexed.agency),
            ("principal", indexed.principal),
            ("indicator", indexed.indicator),
            ("decision", indexed.decision),
        ] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                entry = entry.with(name, value);
            }
        }
        Ok(entry.with("body", body))
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.ledger.size()
    }

    /// Whether the ledger has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hex Merkle root of the whole ledger.
    pub fn head_hash(&self) -> String {
        self.ledger.head().map(|(_, r)| hex::encode(r)).unwrap_or_default()
    }

    /// The ledger directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The underlying Merkle ledger (proofs, checkpoints, filters, purge).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Up to `limit` entries from 1-based `from_seq` on, each read once.
    pub fn list(&self, from_seq: u64, limit: usize) -> Result<Vec<ChainEntry>, LedgerError> {
        let size = self.len();
        let first = from_seq.max(1) - 1;
        let mut out = Vec::new();
        for index in first..size.min(first.saturating_add(limit as u64)) {
            out.push(self.listed(&self.ledger.get(index)?)?);
        }
        Ok(out)
    }

    /// An entry already read from the ledger, as listed (no second read; only the root before
    /// it is looked up).
    pub fn listed(&self, e: &StoredEntry) -> Result<ChainEntry, LedgerError> {
        Ok(ChainEntry {
            seq: e.seq + 1,
            prev_hash: hex::encode(self.ledger.root_at(e.seq)?),
            body: e.value("body").unwrap_or_default().to_owned(),
            hash: hex::encode(e.leaf_hash()),
            time_ms: e.time_ms,
            purged: e.purged(),
        })
    }

    /// Writes a verifiable export (signing a checkpoint of the current tree first).
    pub fn export(&self, out: impl Write) -> Result<ExportSummary, LedgerError> {
        Ok(shuzhu_ledger::verify::write_export(&self.ledger, out)?)
    }

    /// The entry at 1-based `seq` as listed.
    pub fn entry(&self, seq: u64) -> Result<(ChainEntry, StoredEntry), LedgerError> {
        let index = seq.checked_sub(1).ok_or(shuzhu_ledger::LedgerError::NotFound(0))?;
        let e = self.ledger.get(index)?;
        Ok((self.listed(&e)?, e))
    }

    /// A signed checkpoint covering at least `size` entries: the last one if it does, else one
    /// signed now.
    pub fn checkpoint_covering(&self, size: u64) -> Result<(Checkpoint, String), LedgerError> {
        if let Some(last) = self.ledger.last_checkpoint().filter(|(cp, _)| cp.size >= size) {
            return Ok(last);
        }
        self.ledger.checkpoint()?.ok_or(LedgerError::Ledger(shuzhu_ledger::LedgerError::NotFound(size)))
    }

    /// The stored signed checkpoint note of exactly `size` entries, if any (from memory, or one
    /// positioned read; never waits for appends).
    pub fn checkpoint_of_size(&self, size: u64) -> Result<Option<String>, LedgerError> {
        Ok(self.ledger.checkpoint_note(size)?)
    }

    /// Deletes the plaintext of entries older than `before_ms` and past their retention at
    /// `now_ms` (entries that released data computed over personal information keep theirs for
    /// `retain_personal_info_days`), then records the purge as an entry. Returns what was purged
    /// and the seq of the purge's own entry.
    pub fn purge(
        &self,
        before_ms: u64,
        now_ms: u64,
        settings: &LedgerSettings,
        who: &str,
    ) -> Result<(PurgeReport, u64), LedgerError> {
        self.purge_classified(before_ms, now_ms, settings, who, &released_personal_info)
    }

    /// [`AuditChain::purge`] with the rule that tells which bodies fall under the
    /// personal-information retention period.
    fn purge_classified(
        &self,
        before_ms: u64,
        now_ms: u64,
        settings: &LedgerSettings,
        who: &str,
        personal: &dyn Fn(&str) -> bool,
    ) -> Result<(PurgeReport, u64), LedgerError> {
        const DAY_MS: u64 = 86_400_000;
        let logs_cut = before_ms.min(now_ms.saturating_sub(u64::from(settings.retain_logs_days) * DAY_MS));
        let pi_cut = before_ms.min(now_ms.saturating_sub(u64::from(settings.retain_personal_info_days) * DAY_MS));
        let keep = |e: &StoredEntry| e.time_ms >= pi_cut && e.value("body").is_some_and(personal);
        let mut record = crate::audit::AuditRecord::new("offline", "", "audit.purge", "");
        record.decision = "allow".into();
        record.reason = format!(
            "purge of the plaintext of entries older than {logs_cut} ms ({pi_cut} ms for personal information)"
        );
        record.filters = vec![format!("before_ms={before_ms}"), format!("operator={}", crate::audit::clip(who))];
        // The ledger records the purge, with its horizon, before it deletes anything: a verifier
        // accepts a purged entry only before such a record and older than its horizon.
        let (report, appended) = self.ledger.purge_where(Self::record_fields(&record)?, logs_cut, &keep)?;
        self.ledger.checkpoint()?;
        Ok((report, appended.seq + 1))
    }
}

/// Whether an entry body records a release of data computed over personal-information fields:
/// an allowed query of an indicator that reads an L4 field.
pub fn released_personal_info(body: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else { return false };
    let allowed = str_at(&v, "/decision") == Some("allow") && str_at(&v, "/action") == Some("query");
    let dims: Vec<shuzhu_policy::dimension::Dimension> = ["/group_by", "/filters"]
        .iter()
        .filter_map(|p| v.pointer(p).and_then(serde_json::Value::as_array))
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .filter_map(|d| shuzhu_policy::dimension::Dimension::parse(d.split('=').next().unwrap_or(d)))
        .collect();
    allowed
        && str_at(&v, "/indicator")
            .and_then(shuzhu_policy::indicator::indicator)
            .is_some_and(|i| i.grade_with(&dims) >= shuzhu_policy::schema::Grade::L4)
}

impl Drop for AuditChain {
    fn drop(&mut self) {
        // Seal what was appended with a final checkpoint; a failure here leaves the entries
        // durable and the next open recovers them.
        if let Err(error) = self.ledger.checkpoint() {
            tracing::warn!(%error, "could not sign the final audit checkpoint");
        }
    }
}

/// How the directories where verification keeps the tree it re-derives begin: in the system's
/// temporary directory for [`verify_ledger_dir`] (never inside the ledger directory, which
/// verification leaves untouched), after the file's name beside it for [`verify_export_file`]
/// (`FILE.verify-tree.XXXXXX.tmp`). Each run makes a new one with a random part, so it is always
/// the run's own: an interrupted run's leftover is never reused nor deleted, and never makes a
/// later run fall back to memory.
pub const VERIFY_TREE_PREFIX: &str = "verify-tree.";

/// A new, empty directory in `parent` named `{prefix}XXXXXX.tmp`, removed (with what the
/// verification wrote in it) when dropped.
fn verify_tree_dir(parent: &Path, prefix: &std::ffi::OsStr) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(prefix).suffix(".tmp").tempdir_in(parent)
}

/// Verifies a ledger directory offline and **read-only** against `verifier`, the auditor's copy of
/// the gateway's checkpoint key (never a key read from the directory): every entry, every purge
/// against a recorded purge, every signed checkpoint, and that the last one covers every entry.
/// Nothing in the directory is created, repaired or signed; a missing or empty `checkpoints.log`
/// fails. See [`shuzhu_ledger::verify::verify_dir`].
pub fn verify_ledger_dir(dir: &Path, verifier: &NoteVerifier) -> Result<ExportSummary, LedgerError> {
    verify_ledger_dir_with_progress(dir, verifier, &mut |_, _| {})
}

/// [`verify_ledger_dir`], calling `progress(entries checked, 0)` every
/// [`shuzhu_ledger::verify::PROGRESS_EVERY`] entries. The re-derived tree is kept in node files in
/// a directory of its own in the system's temporary directory (removed afterwards; in memory when
/// it cannot be created): memory stays bounded whatever the ledger's size.
pub fn verify_ledger_dir_with_progress(
    dir: &Path,
    verifier: &NoteVerifier,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportSummary, LedgerError> {
    verify_dir_inner(dir, verifier, progress, None)
}

/// [`verify_ledger_dir`], handing each checked entry to `on_entry` (as [`verify_export_file`]
/// does: trust what it collected only when this returns `Ok`).
pub fn verify_ledger_dir_visiting(
    dir: &Path,
    verifier: &NoteVerifier,
    on_entry: &mut EntryVisitor<'_>,
) -> Result<ExportSummary, LedgerError> {
    verify_dir_inner(dir, verifier, &mut |_, _| {}, Some(on_entry))
}

fn verify_dir_inner(
    dir: &Path,
    verifier: &NoteVerifier,
    progress: &mut dyn FnMut(u64, u64),
    on_entry: Option<&mut EntryVisitor<'_>>,
) -> Result<ExportSummary, LedgerError> {
    let tree_dir = verify_tree_dir(&std::env::temp_dir(), VERIFY_TREE_PREFIX.as_ref())
        .inspect_err(|error| tracing::warn!(%error, "keeping the re-derived tree in memory"))
        .ok();
    let options = VerifyOptions {
        tree_dir: tree_dir.as_ref().map(tempfile::TempDir::path),
        progress: Some(&mut *progress),
        on_entry: match on_entry {
            Some(f) => Some(&mut *f),
            None => None,
        },
        ..VerifyOptions::default()
    };
    let verified = shuzhu_ledger::verify::verify_dir(dir, verifier, options);
    if let Some(Err(error)) = tree_dir.map(tempfile::TempDir::close) {
        tracing::warn!(%error, "could not remove the verification's tree directory");
    }
    Ok(verified?)
}

/// Verifies an export file against `verifier`, keeping the re-derived tree in node files in a
/// directory of its own beside it (`FILE.verify-tree.XXXXXX.tmp/`, removed afterwards; in memory
/// when it cannot be created, e.g. in a read-only directory), with
/// `progress` as for [`verify_ledger_dir_with_progress`] and `on_entry` given each checked entry
/// (see [`VerifyOptions::on_entry`]: trust what it collected only when this returns `Ok`).
pub fn verify_export_file(
    file: &Path,
    verifier: &NoteVerifier,
    progress: &mut dyn FnMut(u64, u64),
    on_entry: Option<&mut EntryVisitor<'_>>,
) -> Result<ExportSummary, LedgerError> {
    let f = std::fs::File::open(file).map_err(|source| LedgerError::Io { op: "open", path: file.into(), source })?;
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut prefix = file.file_name().unwrap_or_default().to_owned();
    prefix.push(".");
    prefix.push(VERIFY_TREE_PREFIX);
    let tree_dir = verify_tree_dir(parent, &prefix)
        .inspect_err(|error| tracing::warn!(%error, "keeping the re-derived tree in memory"))
        .ok();
    let options = VerifyOptions {
        tree_dir: tree_dir.as_ref().map(tempfile::TempDir::path),
        progress: Some(&mut *progress),
        on_entry: match on_entry {
            Some(f) => Some(&mut *f),
            None => None,
        },
        ..VerifyOptions::default()
    };
    let verified = verify_export_with(io::BufReader::with_capacity(1 << 16, f), verifier, options);
    if let Some(Err(error)) = tree_dir.map(tempfile::TempDir::close) {
        tracing::warn!(%error, "could not remove the verification's tree directory");
    }
    Ok(verified?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_list_and_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = &tmp.path().join("ledger");
        let chain = AuditChain::open(dir).unwrap();
        let body = r#"{"time":"2026-12-01T00:00:00Z","principal":{"sub":"u1","agency":"a1"},"decision":"allow"}"#;
        assert_eq!(chain.append(body.to_owned()).unwrap(), 1);
        assert_eq!(chain.append(r#"{"decision":"deny"}"#.to_owned()).unwrap(), 2);
        assert!(matches!(chain.append("not json".into()), Err(LedgerError::InvalidBody)));
        let listed = chain.list(1, 10).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].body, body);
        assert_eq!(listed[1].prev_hash, hex::encode(chain.ledger().root_at(1).unwrap()));
        assert_eq!((listed[0].time_ms, listed[0].purged), (1_796_083_200_000, false));
        let f = shuzhu_ledger::Filter { agency: Some("a1".into()), ..Default::default() };
        let page = chain.ledger().list(&f, None, 10).unwrap();
        assert_eq!(page.entries.len(), 1);
        // An entry a filtered page already read is listed as the unfiltered listing shows it.
        assert_eq!(chain.listed(&page.entries[0]).unwrap(), listed[0]);
        let head = chain.head_hash();
        drop(chain);
        let chain = AuditChain::open(dir).unwrap();
        assert_eq!((chain.len(), chain.head_hash()), (2, head));
        let key = load_verifier(chain.public_key_path()).unwrap();
        drop(chain);
        let summary = verify_ledger_dir(dir, &key).unwrap();
        assert_eq!(summary.entries, 2);
    }

    #[test]
    fn a_typed_record_is_indexed_and_timed_exactly_like_its_text() {
        use crate::audit::PrincipalRecord;
        let dir = tempfile::tempdir().unwrap();
        let chain = AuditChain::open(&dir.path().join("ledger")).unwrap();
        let mut r = AuditRecord::new("gw-1", "req-1", "query", "v1");
        r.time = "2026-12-01T00:00:01Z".into();
        r.principal =
            Some(PrincipalRecord { sub: "u1".into(), agency: "a1".into(), roles: vec![], issuer: "idp".into() });
        r.indicator = "closure_rate".into();
        r.decision = "allow".into();
        assert_eq!(chain.append_record(&r).unwrap(), 1);
        assert_eq!(chain.append(r.canonical()).unwrap(), 2);
        let (typed_listed, typed) = chain.entry(1).unwrap();
        let (_, text) = chain.entry(2).unwrap();
        assert_eq!(typed.time_ms, 1_796_083_201_000);
        assert_eq!(typed_listed.body, r.canonical());
        let plain = |e: &StoredEntry| -> Vec<(String, Option<String>)> {
            e.fields.iter().map(|f| (f.name.clone(), f.plaintext.as_ref().map(|p| p.1.clone()))).collect()
        };
        assert_eq!((typed.time_ms, plain(&typed)), (text.time_ms, plain(&text)));
        for f in [
            shuzhu_ledger::Filter { agency: Some("a1".into()), ..Default::default() },
            shuzhu_ledger::Filter { principal: Some("u1".into()), ..Default::default() },
            shuzhu_ledger::Filter { indicator: Some("closure_rate".into()), ..Default::default() },
            shuzhu_ledger::Filter { decision: Some("allow".into()), ..Default::default() },
        ] {
            let seqs: Vec<u64> = chain.ledger().list(&f, None, 10).unwrap().entries.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, [0, 1], "{f:?}");
        }
    }

    #[test]
    fn purge_respects_both_retention_periods_and_is_recorded() {
        const DAY: u64 = 86_400_000;
        let now = 1_796_090_400_000; // 2026-12-01T02:00:00Z
        let at = |days_ago: u64, what: &str| {
            let t = time::OffsetDateTime::from_unix_timestamp(((now - days_ago * DAY) / 1000) as i64).unwrap();
            let t = t.format(&time::format_description::well_known::Rfc3339).unwrap();
            format!(r#"{{"time":"{t}","action":"query","decision":"allow","indicator":"{what}"}}"#)
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = &tmp.path().join("ledger");
        let chain = AuditChain::open(dir).unwrap();
        // Old ordinary, old personal-information, PI past its 3 years, recent ordinary.
        for body in [at(400, "plain"), at(400, "pi"), at(1200, "pi"), at(30, "plain")] {
            chain.append(body).unwrap();
        }
        let settings = LedgerSettings::default();
        let pi = |b: &str| b.contains(r#""indicator":"pi""#);
        // `before` later than now: retention still protects the recent entry.
        let (report, seq) = chain.purge_classified(now + DAY, now, &settings, "tester", &pi).unwrap();
        assert_eq!(report.entries, 2);
        assert_eq!(seq, 5);
        let purged: Vec<bool> = (0..4).map(|i| chain.ledger().get(i).unwrap().purged()).collect();
        assert_eq!(purged, vec![true, false, true, false]);
        let listed: Vec<(bool, bool)> =
            chain.list(1, 4).unwrap().iter().map(|e| (e.purged, e.body.is_empty())).collect();
        assert_eq!(listed, [(true, true), (false, false), (true, true), (false, false)]);
        let last = chain.list(5, 1).unwrap().remove(0);
        assert!(last.body.contains(r#""action":"audit.purge""#), "{}", last.body);
        let key = load_verifier(chain.public_key_path()).unwrap();
        drop(chain);
        let summary = verify_ledger_dir(dir, &key).unwrap();
        assert_eq!((summary.entries, summary.purged), (5, 2));
    }

    #[test]
    fn verifying_streams_the_export_and_leaves_no_tree_behind() {
        let dir = tempfile::tempdir().unwrap();
        let ledger_dir = dir.path().join("ledger");
        let chain = AuditChain::open(&ledger_dir).unwrap();
        // More than a pipe's buffer, so the exporter must wait for the verifier to read.
        let pad = "x".repeat(1000);
        for i in 0..300 {
            chain.append(format!(r#"{{"action":"query","decision":"allow","n":{i},"pad":"{pad}"}}"#)).unwrap();
        }
        let export = dir.path().join("audit.jsonl");
        chain.export(std::fs::File::create(&export).unwrap()).unwrap();
        let verifier = load_verifier(chain.public_key_path()).unwrap();
        drop(chain);
        let summary = verify_ledger_dir(&ledger_dir, &verifier).unwrap();
        assert_eq!((summary.entries, summary.latest.size), (300, 300));
        assert_eq!(tree_dirs(&ledger_dir, VERIFY_TREE_PREFIX), Vec::<String>::new(), "no tree is left behind");
        let mut bodies = 0;
        let mut count = |_: u64, f: Option<&[ExportField]>| bodies += usize::from(f.is_some());
        let s = verify_export_file(&export, &verifier, &mut |_, _| {}, Some(&mut count)).unwrap();
        assert_eq!((s.entries, bodies), (300, 300));
        assert_eq!(tree_dirs(dir.path(), "audit.jsonl.verify-tree."), Vec::<String>::new());
        // A flipped byte in a body (of n = 7, entry 8: entries are numbered from 1) is refused, and
        // the tree files are still cleaned up.
        let text = std::fs::read_to_string(&export).unwrap().replacen(r#"\"n\":7,"#, r#"\"n\":8,"#, 1);
        std::fs::write(&export, text).unwrap();
        let r = verify_export_file(&export, &verifier, &mut |_, _| {}, None);
        assert!(matches!(r, Err(LedgerError::Verify(VerifyError::Entry { seq: 8, .. }))), "{r:?}");
        assert_eq!(tree_dirs(dir.path(), "audit.jsonl.verify-tree."), Vec::<String>::new());
    }

    /// The names of the directories in `dir` that begin with `prefix`, sorted.
    fn tree_dirs(dir: &Path, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn leftovers_of_an_interrupted_verification_are_neither_reused_nor_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let ledger_dir = dir.path().join("ledger");
        let chain = AuditChain::open(&ledger_dir).unwrap();
        for i in 0..20 {
            chain.append(format!(r#"{{"action":"query","n":{i}}}"#)).unwrap();
        }
        let export = dir.path().join("audit.jsonl");
        chain.export(std::fs::File::create(&export).unwrap()).unwrap();
        let verifier = load_verifier(chain.public_key_path()).unwrap();
        drop(chain);
        // What an interrupted run of the older code left, and a directory someone else keeps there.
        for leftover in [dir.path().join("audit.jsonl.verify-tree.tmp"), ledger_dir.join("verify-tree.tmp")] {
            std::fs::create_dir(&leftover).unwrap();
            std::fs::write(leftover.join("keep"), "mine").unwrap();
        }
        let before = tree_dirs(dir.path(), "audit.jsonl.verify-tree.");
        // The tree still goes to files: a directory of this run's own appears while entries are checked.
        let mut during = Vec::new();
        let mut look = |_: u64, _: Option<&[ExportField]>| during = tree_dirs(dir.path(), "audit.jsonl.verify-tree.");
        verify_export_file(&export, &verifier, &mut |_, _| {}, Some(&mut look)).unwrap();
        assert_eq!(during.len(), 2, "{during:?}");
        assert!(during.iter().any(|d| d.ends_with(".tmp") && !before.contains(d)), "{during:?}");
        assert_eq!(tree_dirs(dir.path(), "audit.jsonl.verify-tree."), before, "this run's own is removed");
        // Verifying the ledger directory leaves the other directory alone too.
        verify_ledger_dir(&ledger_dir, &verifier).unwrap();
        for leftover in [dir.path().join("audit.jsonl.verify-tree.tmp"), ledger_dir.join("verify-tree.tmp")] {
            assert_eq!(std::fs::read_to_string(leftover.join("keep")).unwrap(), "mine");
        }
        assert_eq!(tree_dirs(&ledger_dir, VERIFY_TREE_PREFIX), vec!["verify-tree.tmp".to_string()]);
    }

    #[test]
    fn configured_key_file_signs_and_cadence_applies() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("gw.pk8");
        NoteSigner::generate_key_file(&key).unwrap();
        let settings = LedgerSettings {
            checkpoint_key_file: Some(key.clone()),
            checkpoint_every: 2,
            checkpoint_interval_secs: 0,
            ..LedgerSettings::default()
        };
        let ledger_dir = dir.path().join("ledger");
        let chain = AuditChain::open_with(&ledger_dir, &settings).unwrap();
        assert!(!ledger_dir.join(KEY_FILE_NAME).exists() && !default_key_dir(&ledger_dir).exists());
        for _ in 0..4 {
            chain.append("{}".into()).unwrap();
        }
        assert_eq!(chain.ledger().last_checkpoint().map(|(c, _)| c.size), Some(4));
        let want = NoteSigner::load(LEGACY_ORIGIN, &key).unwrap().verifier().to_text();
        assert_eq!(chain.public_key_path(), dir.path().join("gw.pub"), "the public key is written beside the key");
        assert_eq!(load_verifier(chain.public_key_path()).unwrap().to_text(), want);
        assert!(!ledger_dir.join(PUBLIC_KEY_FILE_NAME).exists(), "nothing key-like is kept in the ledger directory");
    }

    #[test]
    fn reopens_right_after_close_and_detects_lock_contention() {
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=10u64 {
            let chain = AuditChain::open(&dir.path().join("ledger")).unwrap();
            assert_eq!(chain.append("{}".into()).unwrap(), n);
        }
        let io = io::Error::new(io::ErrorKind::WouldBlock, "busy");
        assert!(is_lock_contention(&shuzhu_ledger::LedgerError::Io {
            op: "lock",
            path: dir.path().into(),
            source: io
        }));
        assert!(!is_lock_contention(&shuzhu_ledger::LedgerError::NotFound(3)));
    }

    #[test]
    fn a_missing_configured_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            LedgerSettings { checkpoint_key_file: Some(dir.path().join("absent.pk8")), ..LedgerSettings::default() };
        assert!(matches!(AuditChain::open_with(&dir.path().join("l"), &settings), Err(LedgerError::Key(_))));
    }

    #[test]
    fn refuses_a_directory_with_an_old_hash_chain() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_CHAIN_FILE_NAME), "{}\n").unwrap();
        assert!(matches!(AuditChain::open(dir.path()), Err(LedgerError::LegacyChain(_))));
    }

    #[test]
    fn the_key_lives_outside_the_ledger_owner_only_and_a_key_left_inside_is_refused_with_the_move() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ledger");
        let chain = AuditChain::open(&dir).unwrap();
        let key = default_key_dir(&dir).join(KEY_FILE_NAME);
        assert_eq!(default_key_dir(&dir), tmp.path().join("ledger.keys"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&key), mode(&default_key_dir(&dir))), (0o600, 0o700));
        assert_eq!(chain.public_key_path(), default_key_dir(&dir).join(PUBLIC_KEY_FILE_NAME));
        drop(chain);
        // A key others may read stops the open, naming the file and the fix.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = AuditChain::open(&dir).unwrap_err().to_string();
        assert!(e.contains(&format!("chmod 600 {}", key.display())), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A deployment upgraded with its key still in the ledger directory is told how to move it.
        std::fs::rename(&key, dir.join(KEY_FILE_NAME)).unwrap();
        let e = AuditChain::open(&dir).unwrap_err();
        assert!(matches!(e, LedgerError::KeyInLegacyPlace { .. }), "{e}");
        assert!(e.to_string().contains(&format!("mv {} {}", dir.join(KEY_FILE_NAME).display(), key.display())), "{e}");
        assert!(!key.exists(), "no new key was made in its place");
        std::fs::rename(dir.join(KEY_FILE_NAME), &key).unwrap();
        AuditChain::open(&dir).unwrap();
        // A key configured inside the ledger directory is refused.
        let inside = LedgerSettings { checkpoint_key_file: Some(dir.join("k.pk8")), ..LedgerSettings::default() };
        assert!(matches!(AuditChain::open_with(&dir, &inside), Err(LedgerError::KeyInsideLedger { .. })));
    }

    #[test]
    fn offline_tools_never_create_a_key_or_replace_the_public_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ledger");
        let chain = AuditChain::open(&dir).unwrap();
        chain.append(r#"{"action":"query"}"#.to_owned()).unwrap();
        let public_path = chain.public_key_path().to_owned();
        drop(chain);
        // An auditor's copy without the private key: reconcile's open refuses clearly and changes
        // nothing; verification does not need the private key at all.
        let key = default_key_dir(&dir).join(KEY_FILE_NAME);
        std::fs::remove_file(&key).unwrap();
        let public = std::fs::read(&public_path).unwrap();
        assert!(matches!(AuditChain::open_offline(&dir), Err(LedgerError::NoSigningKey(_))));
        assert!(!key.exists());
        assert_eq!(std::fs::read(&public_path).unwrap(), public);
        assert_eq!(verify_ledger_dir(&dir, &load_verifier(&public_path).unwrap()).unwrap().entries, 1);
    }
}
