//! The node's durable storage, behind its own trait so the engine and import never see sled.
//!
//! Layout: sled pays several microseconds per key, so records are not one sled key each. A dataset's
//! tree holds blocks of up to [`BLOCK_RECORDS`] records (key and value side by side) under
//! `0x00 ‖ block number`, a marker `0x01 ‖ block ‖ slot` for each record since replaced by a later
//! upsert of the same primary key, and the live record count under `0x02`; each upsert call is one sled
//! batch, so the three always agree. Upserting by primary key uses an index (128-bit key hash → block,
//! slot and 64-bit value hash) built in memory from the tree on the first upsert of a dataset: a record
//! identical to the stored one is not written again, so re-importing a file changes nothing. Records of
//! the earlier one-key-per-record layout (tree `dataset/NAME`) are still read, and are moved into blocks
//! by the next upsert of their dataset.
//!
//! Durability: sled 0.34's `flush` ends in `sync_file_range`, which does not make data durable on every
//! file system and does not sync metadata. After flushing, [`SledStore::make_durable`] therefore calls
//! `fsync` on every file of the store and on its directories; only then is an import acknowledged.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    /// A block or counter of the store cannot be read.
    #[error("store is damaged: {0} is unreadable")]
    Damaged(String),
    /// The store directory is in use by another process (a running node).
    #[error("store {0} is in use by another process (is the node running? stop it before importing)")]
    Locked(String),
}

/// Durable key-value storage of one node, one keyspace per dataset.
pub trait Store: Send + Sync {
    /// Inserts or replaces the records, keyed by primary key.
    fn upsert(&self, dataset: &str, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError>;
    /// Makes everything written so far durable (flush and fsync).
    fn make_durable(&self) -> Result<(), StoreError>;
    /// Calls `f` for every record of `dataset`, in storage order.
    fn scan(&self, dataset: &str, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError>;
    /// Number of records in `dataset`.
    fn count(&self, dataset: &str) -> Result<u64, StoreError>;
    /// Reads a metadata value.
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes a metadata value.
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
}

/// sled's page cache. The engine keeps its own columns and reads the store once, front to back, so a
/// large cache (sled's default is 1 GiB) would only stay resident after loading.
const CACHE_BYTES: u64 = 64 << 20;

/// The sled implementation of [`Store`].
pub struct SledStore {
    db: sled::Db,
    dir: PathBuf,
    /// Upsert indexes by dataset, built on first use.
    indexes: Mutex<HashMap<String, Index>>,
    hasher: [std::hash::RandomState; 3],
}

/// Called with block, slot, key and value of each live record.
type SlotVisitor<'a> = dyn FnMut(u64, u32, &[u8], &[u8]) + 'a;

/// Records per block.
pub const BLOCK_RECORDS: usize = 4096;
const BLOCK: u8 = 0;
const REPLACED: u8 = 1;
const COUNT: u8 = 2;

/// Where a stored record is, and a hash of its value.
#[derive(Clone, Copy)]
struct Loc {
    block: u64,
    slot: u32,
    value_hash: u64,
}

/// The upsert index of one dataset.
#[derive(Default)]
struct Index {
    by_key: HashMap<u128, Loc>,
    next_block: u64,
    live: u64,
}

fn block_key(block: u64) -> [u8; 9] {
    let mut k = [BLOCK; 9];
    k[1..].copy_from_slice(&block.to_be_bytes());
    k
}

fn replaced_key(block: u64, slot: u32) -> [u8; 13] {
    let mut k = [REPLACED; 13];
    k[1..9].copy_from_slice(&block.to_be_bytes());
    k[9..].copy_from_slice(&slot.to_be_bytes());
    k
}

/// Appends one record to a block being built.
fn push_record(block: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // Keys and values are far below 4 GiB (a CSV row).
    block.extend_from_slice(&(key.len() as u32).to_le_bytes());
    block.extend_from_slice(key);
    block.extend_from_slice(&(value.len() as u32).to_le_bytes());
    block.extend_from_slice(value);
}

/// The records of a block, in slot order; `None` if it is damaged.
fn block_records(mut bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    let take = |bytes: &mut &'_ [u8]| -> Option<usize> {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        *bytes = rest;
        Some(u32::from_le_bytes(*len) as usize)
    };
    while !bytes.is_empty() {
        let klen = take(&mut bytes)?;
        let (k, rest) = bytes.split_at_checked(klen)?;
        bytes = rest;
        let vlen = take(&mut bytes)?;
        let (v, rest) = bytes.split_at_checked(vlen)?;
        bytes = rest;
        out.push((k, v));
    }
    Some(out)
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Sync { path: dir.display().to_string(), source })?;
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
        Ok(SledStore {
            db,
            dir: dir.to_path_buf(),
            indexes: Mutex::new(HashMap::new()),
            hasher: [std::hash::RandomState::new(), std::hash::RandomState::new(), std::hash::RandomState::new()],
        })
    }

    fn tree(&self, dataset: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(format!("blocks/{dataset}"))?)
    }

    fn legacy_tree(&self, dataset: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(format!("dataset/{dataset}"))?)
    }

    fn key_hash(&self, key: &[u8]) -> u128 {
        (u128::from(self.hasher[0].hash_one(key)) << 64) | u128::from(self.hasher[1].hash_one(key))
    }

    /// Calls `f(block, slot, key, value)` for every live record in blocks.
    fn scan_blocks(&self, tree: &sled::Tree, f: &mut SlotVisitor<'_>) -> Result<(), StoreError> {
        let mut replaced: HashSet<(u64, u32)> = HashSet::new();
        for item in tree.range(&[REPLACED][..]..&[COUNT][..]) {
            let (k, _) = item?;
            if let (Some(b), Some(s)) = (k.get(1..9), k.get(9..13)) {
                let block = u64::from_be_bytes(b.try_into().unwrap_or_default());
                replaced.insert((block, u32::from_be_bytes(s.try_into().unwrap_or_default())));
            }
        }
        for item in tree.range(&[BLOCK][..]..&[REPLACED][..]) {
            let (k, v) = item?;
            let block = k.get(1..9).and_then(|b| b.try_into().ok()).map_or(u64::MAX, u64::from_be_bytes);
            let records = block_records(&v).ok_or_else(|| StoreError::Damaged(format!("block {block}")))?;
            for (slot, (key, value)) in records.into_iter().enumerate() {
                let slot = slot as u32;
                if !replaced.contains(&(block, slot)) {
                    f(block, slot, key, value);
                }
            }
        }
        Ok(())
    }

    /// Builds the upsert index of `dataset`, moving records of the earlier layout into blocks.
    fn build_index(&self, dataset: &str) -> Result<Index, StoreError> {
        let tree = self.tree(dataset)?;
        let mut index = Index::default();
        self.scan_blocks(&tree, &mut |block, slot, key, value| {
            let value_hash = self.hasher[2].hash_one(value);
            index.by_key.insert(self.key_hash(key), Loc { block, slot, value_hash });
            index.live += 1;
        })?;
        if let Some(last) = tree.range(&[BLOCK][..]..&[REPLACED][..]).next_back() {
            let (k, _) = last?;
            index.next_block = k.get(1..9).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes) + 1;
        }
        let legacy = self.legacy_tree(dataset)?;
        if !legacy.is_empty() {
            let mut rows = Vec::new();
            for item in legacy.iter() {
                let (k, v) = item?;
                rows.push((k.to_vec(), v.to_vec()));
            }
            self.write(&tree, &mut index, &rows)?;
            legacy.clear()?;
        }
        Ok(index)
    }

    /// Writes `rows` as one batch, updating `index`.
    fn write(&self, tree: &sled::Tree, index: &mut Index, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut block = Vec::new();
        let mut slot = 0u32;
        for (k, v) in rows {
            let h = self.key_hash(k);
            let value_hash = self.hasher[2].hash_one(v.as_slice());
            match index.by_key.get(&h) {
                Some(old) if old.value_hash == value_hash => continue,
                Some(old) => {
                    batch.insert(&replaced_key(old.block, old.slot)[..], &[][..]);
                    index.live -= 1;
                }
                None => {}
            }
            push_record(&mut block, k, v);
            index.by_key.insert(h, Loc { block: index.next_block, slot, value_hash });
            index.live += 1;
            slot += 1;
            if slot as usize == BLOCK_RECORDS {
                batch.insert(&block_key(index.next_block)[..], std::mem::take(&mut block));
                index.next_block += 1;
                slot = 0;
            }
        }
        if slot > 0 {
            batch.insert(&block_key(index.next_block)[..], block);
            index.next_block += 1;
        }
        batch.insert(&[COUNT][..], &index.live.to_be_bytes()[..]);
        tree.apply_batch(batch)?;
        Ok(())
    }
}

impl Store for SledStore {
    fn upsert(&self, dataset: &str, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        // A poisoned lock means an earlier upsert panicked; its index may be stale, so rebuild it.
        let mut indexes = self.indexes.lock().unwrap_or_else(|p| {
            let mut g = p.into_inner();
            g.clear();
            g
        });
        let mut index = match indexes.remove(dataset) {
            Some(index) => index,
            None => self.build_index(dataset)?,
        };
        // On failure the index is dropped: the next upsert rebuilds it from what sled holds.
        self.write(&self.tree(dataset)?, &mut index, rows)?;
        indexes.insert(dataset.to_string(), index);
        Ok(())
    }

    fn make_durable(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        fsync_dir_tree(&self.dir)
    }

    fn scan(&self, dataset: &str, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        self.scan_blocks(&self.tree(dataset)?, &mut |_, _, k, v| f(k, v))?;
        for item in self.legacy_tree(dataset)?.iter() {
            let (k, v) = item?;
            f(&k, &v);
        }
        Ok(())
    }

    fn count(&self, dataset: &str) -> Result<u64, StoreError> {
        let blocks = match self.tree(dataset)?.get([COUNT])? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Damaged("count".into()))?),
            None => 0,
        };
        Ok(blocks + self.legacy_tree(dataset)?.len() as u64)
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

    fn all(store: &SledStore) -> Vec<(String, String)> {
        let mut out = Vec::new();
        store
            .scan("cases", &mut |k, v| {
                out.push((String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            })
            .unwrap();
        out.sort();
        out
    }

    #[test]
    fn upsert_replaces_by_key_across_blocks_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let n = BLOCK_RECORDS as u32 + 10;
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.upsert("cases", &rows(0..n, "a")).unwrap();
            assert_eq!(store.count("cases").unwrap(), u64::from(n));
            // The same rows again change nothing: no new block, same count.
            let before = store.tree("cases").unwrap().len();
            store.upsert("cases", &rows(0..n, "a")).unwrap();
            assert_eq!(store.tree("cases").unwrap().len(), before);
            store.make_durable().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        // A fresh index is built from the tree: replacing works after reopening.
        store.upsert("cases", &rows(5..15, "b")).unwrap();
        store.upsert("cases", &rows(n..n + 3, "c")).unwrap();
        assert_eq!(store.count("cases").unwrap(), u64::from(n + 3));
        let got = all(&store);
        assert_eq!(got.len(), (n + 3) as usize);
        let value = |k: u32| got.iter().find(|(key, _)| *key == format!("k{k}")).unwrap().1.clone();
        assert_eq!(
            (value(4), value(5), value(14), value(15), value(n + 1)),
            ("a4".into(), "b5".into(), "b14".into(), "a15".into(), format!("c{}", n + 1))
        );
        assert!(matches!(store.db.open_tree("blocks/other").unwrap().len(), 0));
        assert_eq!(store.count("other").unwrap(), 0);
    }

    #[test]
    fn records_of_the_one_key_layout_are_read_and_moved_into_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let legacy = store.legacy_tree("cases").unwrap();
        for (k, v) in rows(0..5, "old") {
            legacy.insert(k, v).unwrap();
        }
        assert_eq!(store.count("cases").unwrap(), 5);
        assert_eq!(all(&store).len(), 5);
        store.upsert("cases", &rows(3..7, "new")).unwrap();
        assert!(store.legacy_tree("cases").unwrap().is_empty());
        let got = all(&store);
        assert_eq!(got.len(), 7);
        assert_eq!(got[0], ("k0".into(), "old0".into()));
        assert_eq!(got[3], ("k3".into(), "new3".into()));
        assert_eq!(store.count("cases").unwrap(), 7);
    }

    #[test]
    fn a_damaged_block_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.tree("cases").unwrap().insert(block_key(0), &[1u8, 2, 3][..]).unwrap();
        assert!(matches!(store.scan("cases", &mut |_, _| {}), Err(StoreError::Damaged(_))));
    }
}
