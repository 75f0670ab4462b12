//! The node's durable storage, behind its own trait so the engine and import never see sled.
//!
//! Layout: records are kept in *blocks*, immutable files of many records each
//! (`blocks/<dataset>/<id>.blk`, a plain sequence of `key length ‖ key ‖ value length ‖ value`, lengths
//! u32 LE). sled holds, per dataset, the list of live blocks (`block id → record count, byte length,
//! CRC-32`), so one sled write commits a whole block of records instead of one sled key per record
//! (sled's per-key cost was what limited import). A block is written and `fdatasync`ed, its directory
//! `fsync`ed, and only then named in sled; a block sled does not name (left by a crash before the commit)
//! is deleted when the store opens. Blocks are never modified: an upsert that replaces a record writes
//! the survivors of its old block to a new block and swaps the two in one atomic sled batch; the old file
//! is deleted only after the next [`SledStore::make_durable`], so every durable sled state names only
//! files that exist. Reading checks each block's length and checksum.
//!
//! Upsert by primary key uses an in-memory index (a 128-bit hash of each key → its block and a 128-bit
//! hash of its value), built from the blocks on the first write of a process: a record equal to the one
//! stored is not written again, so re-importing a file changes nothing.
//!
//! Durability: sled 0.34's `flush` ends in `sync_file_range`, which does not make data durable on every
//! file system and does not sync metadata. After flushing, [`SledStore::make_durable`] therefore calls
//! `fsync` on every file of the store and on its directories; only then is an import acknowledged.
//!
//! Besides blocks, sled's `meta` tree holds node metadata, including per dataset the [`StoredForms`]:
//! the most revealing minimised forms ever written, committed in the same sled transaction as the
//! blocks that hold them.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (including the store being locked by another process).
    #[error("store error: {0}")]
    Sled(#[from] sled::Error),
    /// A file could not be synced.
    #[error("cannot sync {path}: {source}")]
    Sync {
        /// The file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store directory is in use by another process (a running node).
    #[error("store {0} is in use by another process (is the node running? stop it before importing)")]
    Locked(String),
    /// The store's own lock is held by another process (named by its pid), or could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// A block file could not be read or written.
    #[error("cannot access block {path}: {source}")]
    Block {
        /// The block file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A block does not match what sled recorded for it (length, checksum or framing).
    #[error("block {path} is corrupt: {what}")]
    Corrupt {
        /// The block file (or sled record).
        path: String,
        /// What did not match.
        what: &'static str,
    },
    /// A dataset name that cannot name a directory.
    #[error("invalid dataset name ({0} characters)")]
    DatasetName(usize),
}

/// Durable key-value storage of one node, one keyspace per dataset.
pub trait Store: Send + Sync {
    /// Inserts or replaces the records, keyed by primary key (a key repeated in `rows`: the last wins).
    fn upsert(&self, dataset: &str, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError>;
    /// Makes everything written so far durable (flush and fsync).
    fn make_durable(&self) -> Result<(), StoreError>;
    /// Calls `f` for every record of `dataset`, in storage order (not key order).
    fn scan(&self, dataset: &str, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError>;
    /// Number of records in `dataset`.
    fn count(&self, dataset: &str) -> Result<u64, StoreError>;
    /// Reads a metadata value.
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes a metadata value.
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Like [`Store::upsert`], and adds `forms` to the dataset's sticky record of stored forms in the same
    /// atomic commit (a store whose dataset holds rows but no record yet starts from
    /// [`StoredForms::LEGACY`]). Nothing is recorded when no row needs writing.
    fn upsert_recording(
        &self,
        dataset: &str,
        rows: &[(Vec<u8>, Vec<u8>)],
        forms: StoredForms,
    ) -> Result<(), StoreError>;
    /// The forms ever stored in `dataset`, if recorded.
    fn stored_forms(&self, dataset: &str) -> Result<Option<StoredForms>, StoreError>;
}

/// Which minimised forms of `summary` and `defendant_address` rows of a dataset have ever been stored
/// in. Sticky: once recorded, a form stays recorded until the store is rebuilt, since an upsert leaves
/// rows it does not touch as they were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredForms {
    /// Some row was stored with a scrubbed `summary`.
    pub scrubbed_summary: bool,
    /// Some row was stored with the county code of `defendant_address`.
    pub county_address: bool,
}

impl StoredForms {
    /// What a store written before forms were recorded is taken to hold: the schema's minimised forms
    /// (import always stored them then).
    pub const LEGACY: StoredForms = StoredForms { scrubbed_summary: true, county_address: true };

    /// Every form either holds.
    pub fn union(self, other: StoredForms) -> StoredForms {
        StoredForms {
            scrubbed_summary: self.scrubbed_summary || other.scrubbed_summary,
            county_address: self.county_address || other.county_address,
        }
    }

    fn encode(self) -> String {
        let summary = if self.scrubbed_summary { "scrubbed" } else { "dropped" };
        let address = if self.county_address { "county" } else { "dropped" };
        format!("summary={summary} address={address}")
    }

    fn decode(s: &str) -> Option<StoredForms> {
        let (summary, address) = s.split_once(' ')?;
        let scrubbed_summary = match summary.strip_prefix("summary=")? {
            "scrubbed" => true,
            "dropped" => false,
            _ => return None,
        };
        let county_address = match address.strip_prefix("address=")? {
            "county" => true,
            "dropped" => false,
            _ => return None,
        };
        Some(StoredForms { scrubbed_summary, county_address })
    }
}

/// The `meta` key of a dataset's [`StoredForms`].
fn forms_key(dataset: &str) -> String {
    format!("stored_forms/{dataset}")
}

/// sled's page cache. sled holds only block metadata now, so a small cache is plenty.
const CACHE_BYTES: u64 = 16 << 20;

/// What sled records of one block: 16 bytes, `count u32 ‖ length u64 ‖ crc32 u32`, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BlockMeta {
    count: u32,
    len: u64,
    crc: u32,
}

impl BlockMeta {
    fn encode(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&self.count.to_le_bytes());
        out[4..12].copy_from_slice(&self.len.to_le_bytes());
        out[12..].copy_from_slice(&self.crc.to_le_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let b: &[u8; 16] = b.try_into().ok()?;
        let (c, rest) = b.split_at(4);
        let (l, k) = rest.split_at(8);
        Some(BlockMeta {
            count: u32::from_le_bytes(c.try_into().ok()?),
            len: u64::from_le_bytes(l.try_into().ok()?),
            crc: u32::from_le_bytes(k.try_into().ok()?),
        })
    }
}

/// Where a stored record lives, and a hash of its value.
#[derive(Clone, Copy)]
struct Slot {
    block: u64,
    value: u128,
}

/// The in-memory upsert index of one dataset.
struct Index {
    slots: HashMap<u128, Slot, PreHashedState>,
    next_block: u64,
}

/// The hasher of maps whose keys are already keyed, uniformly random 128-bit hashes ([`Hasher128`], the
/// import's duplicate check): their low 64 bits, rather than hashing them again.
#[derive(Default)]
pub(crate) struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; any other input is still hashed, byte by byte.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// Builds [`PreHashed`] hashers.
pub(crate) type PreHashedState = std::hash::BuildHasherDefault<PreHashed>;

/// Two independently keyed SipHashes make a 128-bit hash: two different keys (or values) share one with
/// probability about n²/2¹²⁹, below 10⁻²⁴ for 10 million records.
struct Hasher128([std::hash::RandomState; 2]);

impl Hasher128 {
    fn new() -> Self {
        Hasher128([std::hash::RandomState::new(), std::hash::RandomState::new()])
    }

    fn hash(&self, b: &[u8]) -> u128 {
        (u128::from(self.0[0].hash_one(b)) << 64) | u128::from(self.0[1].hash_one(b))
    }
}

/// The sled implementation of [`Store`] (sled for block metadata and node metadata, files for blocks).
pub struct SledStore {
    db: sled::Db,
    dir: PathBuf,
    hasher: Hasher128,
    indexes: Mutex<HashMap<String, Index>>,
    /// Files of superseded blocks, deleted once the sled state that no longer names them is durable.
    doomed: Mutex<Vec<PathBuf>>,
    /// The exclusive lock on the store directory (dropped after `db`: fields drop in order); none for a
    /// store opened by [`SledStore::open_beside_holder`].
    lock: Option<crate::lock::DirLock>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The index is changed only after a successful sled commit, and the doomed list only extended: a
    // panic while a lock is held leaves neither inconsistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn block_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Block { path: path.display().to_string(), source }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, deleting block files that no committed state names. Takes
    /// the store's exclusive lock first (see [`crate::lock`]): a store another process has open (a serving
    /// node, an import) is refused with that process's pid.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Sync { path: dir.display().to_string(), source })?;
        let lock = crate::lock::DirLock::acquire(dir, "store")?;
        let store = Self::open_sled(dir, Some(lock))?;
        store.remove_orphans()?;
        Ok(store)
    }

    /// Opens an existing store whose lock a serving node holds, for reading only (`node status`): the
    /// node keeps sled closed once its engine is in memory and refuses imports while it lives, so nobody
    /// writes meanwhile. Nothing is written here (no orphan clean-up); sled itself may log its recovery.
    pub fn open_beside_holder(dir: &Path) -> Result<Self, StoreError> {
        if !dir.is_dir() {
            return Err(StoreError::Sync {
                path: dir.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store here"),
            });
        }
        Self::open_sled(dir, None)
    }

    fn open_sled(dir: &Path, lock: Option<crate::lock::DirLock>) -> Result<Self, StoreError> {
        let db =
            sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).cache_capacity(CACHE_BYTES).open().map_err(
                |e| match e {
                    sled::Error::Io(ref io)
                        if io.kind() == std::io::ErrorKind::WouldBlock || io.raw_os_error() == Some(11) =>
                    {
                        StoreError::Locked(dir.display().to_string())
                    }
                    other => StoreError::Sled(other),
                },
            )?;
        let store = SledStore {
            db,
            dir: dir.to_path_buf(),
            hasher: Hasher128::new(),
            indexes: Mutex::new(HashMap::new()),
            doomed: Mutex::new(Vec::new()),
            lock,
        };
        Ok(store)
    }

    /// Closes the store and hands back its lock, for a node that keeps the store locked for its whole
    /// life while holding its data in memory.
    pub fn into_lock(self) -> Option<crate::lock::DirLock> {
        self.lock
    }

    fn blocks_root(&self) -> PathBuf {
        self.dir.join("blocks")
    }

    fn block_dir(&self, dataset: &str) -> Result<PathBuf, StoreError> {
        let ok = !dataset.is_empty()
            && dataset.len() <= 64
            && dataset.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(StoreError::DatasetName(dataset.chars().count()));
        }
        Ok(self.blocks_root().join(dataset))
    }

    fn block_path(dir: &Path, id: u64) -> PathBuf {
        dir.join(format!("{id:016x}.blk"))
    }

    fn tree(&self, dataset: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(format!("blocks/{dataset}"))?)
    }

    /// Deletes block files (and temporary files) that sled does not name: written before a crash and
    /// never committed, or superseded and not yet deleted.
    fn remove_orphans(&self) -> Result<(), StoreError> {
        let root = self.blocks_root();
        let Ok(entries) = std::fs::read_dir(&root) else { return Ok(()) };
        for entry in entries {
            let entry = entry.map_err(block_err(&root))?;
            // Only dataset directories hold blocks; anything else here is not ours to judge.
            let Some(dataset) = entry.file_name().to_str().map(String::from) else { continue };
            let Ok(dir) = self.block_dir(&dataset) else { continue };
            if !entry.file_type().map_err(block_err(&dir))?.is_dir() {
                continue;
            }
            let tree = self.tree(&dataset)?;
            let mut removed = false;
            for file in std::fs::read_dir(&dir).map_err(block_err(&dir))? {
                let file = file.map_err(block_err(&dir))?;
                let name = file.file_name();
                let live = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".blk"))
                    .and_then(|n| u64::from_str_radix(n, 16).ok())
                    .map(|id| tree.contains_key(id.to_be_bytes()))
                    .transpose()?
                    .unwrap_or(false);
                if !live {
                    std::fs::remove_file(file.path()).map_err(block_err(&file.path()))?;
                    removed = true;
                }
            }
            if removed {
                sync_dir(&dir)?;
            }
        }
        Ok(())
    }

    /// Reads and checks one block.
    fn read_block(dir: &Path, id: u64, meta: BlockMeta) -> Result<Vec<u8>, StoreError> {
        let path = Self::block_path(dir, id);
        let bytes = std::fs::read(&path).map_err(block_err(&path))?;
        let corrupt = |what| StoreError::Corrupt { path: path.display().to_string(), what };
        if bytes.len() as u64 != meta.len {
            return Err(corrupt("length differs"));
        }
        if crc32fast::hash(&bytes) != meta.crc {
            return Err(corrupt("checksum mismatch"));
        }
        let mut n = 0u32;
        for r in Records(&bytes) {
            r.ok_or_else(|| corrupt("bad framing"))?;
            n += 1;
        }
        if n != meta.count {
            return Err(corrupt("record count differs"));
        }
        Ok(bytes)
    }

    /// Every live block of `dataset`, in id order.
    fn blocks(&self, dataset: &str) -> Result<Vec<(u64, BlockMeta)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(dataset)?.iter() {
            let (k, v) = item?;
            let id = <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes);
            match (id, BlockMeta::decode(&v)) {
                (Ok(id), Some(meta)) => out.push((id, meta)),
                _ => {
                    return Err(StoreError::Corrupt { path: format!("blocks/{dataset}"), what: "bad block entry" });
                }
            }
        }
        Ok(out)
    }

    /// Builds the upsert index of `dataset` from its blocks.
    fn build_index(&self, dataset: &str) -> Result<Index, StoreError> {
        let dir = self.block_dir(dataset)?;
        let blocks = self.blocks(dataset)?;
        let mut slots = HashMap::default();
        for &(id, meta) in &blocks {
            let bytes = Self::read_block(&dir, id, meta)?;
            for (k, v) in Records(&bytes).flatten() {
                slots.insert(self.hasher.hash(k), Slot { block: id, value: self.hasher.hash(v) });
            }
        }
        let next_block = blocks.last().map_or(0, |(id, _)| id + 1);
        Ok(Index { slots, next_block })
    }

    /// Writes one block file durably (data synced; the caller syncs the directory).
    fn write_block(dir: &Path, id: u64, payload: &[u8]) -> Result<(), StoreError> {
        let path = Self::block_path(dir, id);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(block_err(&path))?;
        let written = f.write_all(payload).and_then(|()| f.sync_data());
        if let Err(e) = written {
            // A half-written block (disk full, I/O error) is never named by sled; removing it now lets a
            // later write in this process reuse its id (a crash leaves it to the cleanup at open).
            drop(f);
            let _ = std::fs::remove_file(&path);
            return Err(block_err(&path)(e));
        }
        Ok(())
    }
}

/// Appends one framed record to a block payload.
fn push_record(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    // Keys and records are far below 4 GiB (the CSV reader bounds a row); the casts cannot truncate.
    out.extend_from_slice(&(k.len() as u32).to_le_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(v);
}

/// The records of a block payload; `None` on bad framing (then iteration ends).
struct Records<'a>(&'a [u8]);

impl<'a> Iterator for Records<'a> {
    type Item = Option<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        fn take<'b>(b: &mut &'b [u8]) -> Option<&'b [u8]> {
            let (len, rest) = b.split_first_chunk::<4>()?;
            let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
            if rest.len() < len {
                return None;
            }
            let (item, rest) = rest.split_at(len);
            *b = rest;
            Some(item)
        }
        let mut b = self.0;
        let item = take(&mut b).and_then(|k| Some((k, take(&mut b)?)));
        self.0 = if item.is_some() { b } else { &[] };
        Some(item)
    }
}

impl SledStore {
    /// [`Store::upsert`], recording `forms` (if any) in the same commit.
    fn upsert_with(
        &self,
        dataset: &str,
        rows: &[(Vec<u8>, Vec<u8>)],
        forms: Option<StoredForms>,
    ) -> Result<(), StoreError> {
        let dir = self.block_dir(dataset)?;
        let mut indexes = lock(&self.indexes);
        if !indexes.contains_key(dataset) {
            let index = self.build_index(dataset)?;
            indexes.insert(dataset.to_string(), index);
        }
        let Some(index) = indexes.get_mut(dataset) else { return Ok(()) };

        // The rows to write (last wins within `rows`), and the stored records they replace, by block.
        let mut fresh: Vec<(usize, u128, u128)> = Vec::with_capacity(rows.len());
        let mut at: HashMap<u128, usize, PreHashedState> =
            HashMap::with_capacity_and_hasher(rows.len(), Default::default());
        for (i, (k, v)) in rows.iter().enumerate() {
            let (kh, vh) = (self.hasher.hash(k), self.hasher.hash(v));
            match at.get(&kh) {
                Some(&j) => fresh[j] = (i, kh, vh),
                None => {
                    at.insert(kh, fresh.len());
                    fresh.push((i, kh, vh));
                }
            }
        }
        let mut replaced: HashMap<u64, HashSet<&[u8]>> = HashMap::new();
        fresh.retain(|&(i, kh, vh)| match index.slots.get(&kh) {
            Some(slot) if slot.value == vh => false, // stored exactly so already
            Some(slot) => {
                replaced.entry(slot.block).or_default().insert(rows[i].0.as_slice());
                true
            }
            None => true,
        });
        if fresh.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&dir).map_err(block_err(&dir))?;
        let tree = self.tree(dataset)?;
        let mut batch = sled::Batch::default();
        let mut moved: Vec<(u128, Slot)> = Vec::new();
        let mut superseded = Vec::new();

        // Survivors of each block that loses records go to a new block.
        let mut old_ids: Vec<u64> = replaced.keys().copied().collect();
        old_ids.sort_unstable();
        for old in old_ids {
            let meta = tree
                .get(old.to_be_bytes())?
                .and_then(|v| BlockMeta::decode(&v))
                .ok_or(StoreError::Corrupt { path: format!("blocks/{dataset}"), what: "indexed block missing" })?;
            let bytes = Self::read_block(&dir, old, meta)?;
            let gone = &replaced[&old];
            let mut payload = Vec::with_capacity(bytes.len());
            let mut count = 0u32;
            let id = index.next_block;
            for (k, v) in Records(&bytes).flatten() {
                if !gone.contains(k) {
                    push_record(&mut payload, k, v);
                    count += 1;
                    moved.push((self.hasher.hash(k), Slot { block: id, value: self.hasher.hash(v) }));
                }
            }
            if count > 0 {
                Self::write_block(&dir, id, &payload)?;
                let meta = BlockMeta { count, len: payload.len() as u64, crc: crc32fast::hash(&payload) };
                batch.insert(&id.to_be_bytes(), &meta.encode());
                index.next_block += 1;
            }
            batch.remove(&old.to_be_bytes());
            superseded.push(Self::block_path(&dir, old));
        }

        // The new and changed records in one block.
        let id = index.next_block;
        let mut payload = Vec::with_capacity(rows.iter().map(|(k, v)| k.len() + v.len() + 8).sum());
        for &(i, _, _) in &fresh {
            push_record(&mut payload, &rows[i].0, &rows[i].1);
        }
        Self::write_block(&dir, id, &payload)?;
        index.next_block += 1;
        // At most 2³² rows per call: a block counts its records in a u32.
        let meta = BlockMeta { count: fresh.len() as u32, len: payload.len() as u64, crc: crc32fast::hash(&payload) };
        batch.insert(&id.to_be_bytes(), &meta.encode());

        // The new files' names are durable before sled can name them.
        sync_dir(&dir)?;
        sync_dir(&self.blocks_root())?;
        // The forms record to write with the blocks, if it changes (read under the index lock, which
        // every write of this dataset holds, and sled's lock keeps other processes out).
        let record = match forms {
            Some(forms) => {
                let had = self.stored_forms(dataset)?;
                let prior = match had {
                    Some(f) => f,
                    None if !index.slots.is_empty() => StoredForms::LEGACY,
                    None => StoredForms::default(),
                };
                let next = prior.union(forms);
                (had != Some(next)).then_some(next)
            }
            None => None,
        };
        match record {
            None => tree.apply_batch(batch)?,
            Some(next) => {
                use sled::Transactional;
                let meta = self.db.open_tree("meta")?;
                let (key, value) = (forms_key(dataset), next.encode());
                (&tree, &meta)
                    .transaction(|(t, m)| {
                        t.apply_batch(&batch)?;
                        m.insert(key.as_bytes(), value.as_bytes())?;
                        Ok::<(), sled::transaction::ConflictableTransactionError<std::convert::Infallible>>(())
                    })
                    .map_err(|e| match e {
                        sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
                        sled::transaction::TransactionError::Abort(never) => match never {},
                    })?;
            }
        }
        for (kh, slot) in moved {
            index.slots.insert(kh, slot);
        }
        for (_, kh, vh) in fresh {
            index.slots.insert(kh, Slot { block: id, value: vh });
        }
        lock(&self.doomed).extend(superseded);
        Ok(())
    }
}

impl Store for SledStore {
    fn upsert(&self, dataset: &str, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        self.upsert_with(dataset, rows, None)
    }

    fn upsert_recording(
        &self,
        dataset: &str,
        rows: &[(Vec<u8>, Vec<u8>)],
        forms: StoredForms,
    ) -> Result<(), StoreError> {
        self.upsert_with(dataset, rows, Some(forms))
    }

    fn stored_forms(&self, dataset: &str) -> Result<Option<StoredForms>, StoreError> {
        let Some(text) = self.meta(&forms_key(dataset))? else { return Ok(None) };
        StoredForms::decode(&text)
            .map(Some)
            .ok_or(StoreError::Corrupt { path: forms_key(dataset), what: "unreadable stored forms record" })
    }

    fn make_durable(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        fsync_dir_tree(&self.dir)?;
        // sled's state without the superseded blocks is durable now: their files can go.
        let doomed = std::mem::take(&mut *lock(&self.doomed));
        let mut dirs = HashSet::new();
        for path in doomed {
            std::fs::remove_file(&path).map_err(block_err(&path))?;
            if let Some(d) = path.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        for d in dirs {
            sync_dir(&d)?;
        }
        Ok(())
    }

    fn scan(&self, dataset: &str, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        let dir = self.block_dir(dataset)?;
        for (id, meta) in self.blocks(dataset)? {
            let bytes = Self::read_block(&dir, id, meta)?;
            for (k, v) in Records(&bytes).flatten() {
                f(k, v);
            }
        }
        Ok(())
    }

    fn count(&self, dataset: &str) -> Result<u64, StoreError> {
        Ok(self.blocks(dataset)?.iter().map(|(_, m)| u64::from(m.count)).sum())
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let tree = self.db.open_tree("meta")?;
        Ok(tree.get(key)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.db.open_tree("meta")?.insert(key, value.as_bytes())?;
        Ok(())
    }
}

/// `fsync`s one directory (so the entries it holds are durable).
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|source| StoreError::Sync { path: dir.display().to_string(), source })
}

/// `fsync`s every regular file below `dir` and every directory, so that sled's data and the
/// directory entries naming it are on stable storage.
pub fn fsync_dir_tree(dir: &Path) -> Result<(), StoreError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| StoreError::Sync { path, source }
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(err(&d))? {
            let entry = entry.map_err(err(&d))?;
            let path = entry.path();
            let ty = entry.file_type().map_err(err(&path))?;
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() {
                std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(err(&path))?;
            }
        }
        std::fs::File::open(&d).and_then(|f| f.sync_all()).map_err(err(&d))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(range: std::ops::Range<u32>, tag: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        range.map(|i| (format!("k{i}").into_bytes(), format!("{tag}{i}").into_bytes())).collect()
    }

    fn contents(store: &SledStore) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        store.scan("cases", &mut |k, v| out.push((k.to_vec(), v.to_vec()))).unwrap();
        out.sort();
        out
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(dir.join("blocks/cases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn pre_hashed_maps_tell_apart_keys_that_share_their_low_bits() {
        let mut m: HashMap<u128, u32, PreHashedState> = HashMap::default();
        m.insert(5, 1);
        m.insert(5 | (1 << 100), 2);
        m.insert(7, 3);
        assert_eq!((m.get(&5), m.get(&(5 | (1 << 100))), m.get(&7), m.get(&6)), (Some(&1), Some(&2), Some(&3), None));
    }

    #[test]
    fn upsert_replaces_by_key_and_rewriting_equal_records_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.upsert("cases", &rows(0..100, "a")).unwrap();
        store.upsert("cases", &rows(100..200, "a")).unwrap();
        store.make_durable().unwrap();
        assert_eq!(store.count("cases").unwrap(), 200);
        let before = files(dir.path());
        assert_eq!(before.len(), 2);

        store.upsert("cases", &rows(0..200, "a")).unwrap();
        store.make_durable().unwrap();
        assert_eq!(files(dir.path()), before, "equal records are not written again");

        // Three records of the first block change, one twice in the same call (the last wins).
        let mut change = rows(10..13, "b");
        change.push((b"k11".to_vec(), b"c11".to_vec()));
        store.upsert("cases", &change).unwrap();
        assert_eq!(store.count("cases").unwrap(), 200);
        store.make_durable().unwrap();
        let after = files(dir.path());
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(!after.contains(&before[0]), "the first block was superseded and deleted");
        drop(store);

        let store = SledStore::open(dir.path()).unwrap();
        let mut want = rows(0..200, "a");
        want[10].1 = b"b10".to_vec();
        want[11].1 = b"c11".to_vec();
        want[12].1 = b"b12".to_vec();
        want.sort();
        assert_eq!(contents(&store), want);
        // A fresh process's index knows the stored values: repeating the change writes nothing.
        store.upsert("cases", &want).unwrap();
        store.make_durable().unwrap();
        assert_eq!(files(dir.path()), after);
    }

    #[test]
    fn uncommitted_blocks_are_deleted_on_open_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.upsert("cases", &rows(0..50, "a")).unwrap();
        store.make_durable().unwrap();
        drop(store);
        // What a crash between writing a block and committing it leaves behind.
        let stray = dir.path().join("blocks/cases/00000000000000ff.blk");
        std::fs::write(&stray, b"partial").unwrap();
        std::fs::write(dir.path().join("blocks/README"), b"not a dataset").unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert!(!stray.exists());
        let mut want = rows(0..50, "a");
        want.sort();
        assert_eq!(contents(&store), want);
        drop(store);

        let block = dir.path().join("blocks/cases").join(&files(dir.path())[0]);
        let mut bytes = std::fs::read(&block).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&block, bytes).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let err = store.scan("cases", &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { what: "checksum mismatch", .. }), "{err}");
        assert!(matches!(store.upsert("../x", &rows(0..1, "a")), Err(StoreError::DatasetName(4))));
    }

    #[test]
    fn stored_forms_are_sticky_committed_with_rows_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let (none, summary) = (StoredForms::default(), StoredForms { scrubbed_summary: true, county_address: false });
        assert_eq!(store.stored_forms("cases").unwrap(), None);
        store.upsert_recording("cases", &rows(0..10, "a"), none).unwrap();
        assert_eq!(store.stored_forms("cases").unwrap(), Some(none));
        store.upsert_recording("cases", &rows(5..15, "b"), summary).unwrap();
        assert_eq!(store.stored_forms("cases").unwrap(), Some(summary));
        // A later write holding neither form does not unrecord what rows still hold.
        store.upsert_recording("cases", &rows(0..15, "c"), none).unwrap();
        assert_eq!(store.stored_forms("cases").unwrap(), Some(summary));
        // Rows stored exactly so already write nothing and record nothing.
        store.upsert_recording("cases", &rows(0..15, "c"), StoredForms::LEGACY).unwrap();
        assert_eq!(store.stored_forms("cases").unwrap(), Some(summary));
        store.make_durable().unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.stored_forms("cases").unwrap(), Some(summary));
        assert_eq!(store.stored_forms("mediations").unwrap(), None);
        // Rows written before forms were recorded are taken to hold the schema's minimised forms.
        store.upsert("mediations", &rows(0..3, "a")).unwrap();
        store.upsert_recording("mediations", &rows(3..4, "a"), none).unwrap();
        assert_eq!(store.stored_forms("mediations").unwrap(), Some(StoredForms::LEGACY));
        store.set_meta(&forms_key("cases"), "summary=maybe address=county").unwrap();
        assert!(matches!(store.stored_forms("cases"), Err(StoreError::Corrupt { .. })));
        for f in [none, summary, StoredForms::LEGACY] {
            assert_eq!(StoredForms::decode(&f.encode()), Some(f));
        }
    }
}
