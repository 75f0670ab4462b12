//! The node's durable storage, behind its own trait so the engine and import never see sled.
//!
//! Durability: sled 0.34's `flush` ends in `sync_file_range`, which does not make data durable on every
//! file system and does not sync metadata. After flushing, [`SledStore::make_durable`] therefore calls
//! `fsync` on every file of the store and on its directories; only then is an import acknowledged.

use std::path::{Path, PathBuf};

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
}

/// Durable key-value storage of one node, one keyspace per dataset.
pub trait Store: Send + Sync {
    /// Inserts or replaces the records, keyed by primary key.
    fn upsert(&self, dataset: &str, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError>;
    /// Makes everything written so far durable (flush and fsync).
    fn make_durable(&self) -> Result<(), StoreError>;
    /// Calls `f` for every record of `dataset`, in key order.
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
        Ok(SledStore { db, dir: dir.to_path_buf() })
    }

    fn tree(&self, dataset: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(format!("dataset/{dataset}"))?)
    }
}

impl Store for SledStore {
    fn upsert(&self, dataset: &str, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let tree = self.tree(dataset)?;
        let mut batch = sled::Batch::default();
        for (k, v) in rows {
            batch.insert(k.as_slice(), v.as_slice());
        }
        tree.apply_batch(batch)?;
        Ok(())
    }

    fn make_durable(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        fsync_dir_tree(&self.dir)
    }

    fn scan(&self, dataset: &str, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        for item in self.tree(dataset)?.iter() {
            let (k, v) = item?;
            f(&k, &v);
        }
        Ok(())
    }

    fn count(&self, dataset: &str) -> Result<u64, StoreError> {
        Ok(self.tree(dataset)?.len() as u64)
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
