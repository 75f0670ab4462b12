//! The on-disk node-hash store: one fixed-width file per tree level (`DIR/level-NN.hash`, 32
//! bytes per node), holding the hash of every complete subtree, so that roots and proofs read
//! O(log n) hashes with `pread` and never rehash leaves.
//!
//! The files are derived data. They are synced only when a checkpoint is signed; on open the
//! ledger truncates them to the last checkpoint's size and re-appends the leaf hashes it
//! recovered from the segments after that, so a crash can never leave a stale node behind.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::merkle::{Hash, NodeStore, completed_subtrees};

/// Levels a tree of up to 2^64 leaves can have.
const MAX_LEVELS: usize = 65;

/// Node hashes in one file per level.
#[derive(Debug)]
pub struct NodeFiles {
    dir: PathBuf,
    levels: Vec<File>,
    counts: Vec<u64>,
    edge: Vec<Option<Hash>>,
}

fn level_path(dir: &Path, level: usize) -> PathBuf {
    dir.join(format!("level-{level:02}.hash"))
}

impl NodeFiles {
    /// Opens (creating) the store in `dir`, truncated to a tree of `size` leaves; every level
    /// must already hold the nodes of that tree (callers pass 0 when unsure).
    pub fn open(dir: &Path, size: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut s = Self { dir: dir.to_owned(), levels: Vec::new(), counts: Vec::new(), edge: Vec::new() };
        s.truncate(size)?;
        Ok(s)
    }

    fn ensure_level(&mut self, level: usize) -> io::Result<()> {
        while self.levels.len() <= level {
            let path = level_path(&self.dir, self.levels.len());
            let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
            self.levels.push(f);
            self.counts.push(0);
        }
        Ok(())
    }

    /// Cuts the store back to a tree of `size` leaves, or fails if it holds fewer.
    pub fn truncate(&mut self, size: u64) -> io::Result<()> {
        let mut level = 0;
        while level < MAX_LEVELS {
            let want = size >> level;
            let path = level_path(&self.dir, level);
            if want == 0 && !path.exists() && level >= self.levels.len() {
                break;
            }
            self.ensure_level(level)?;
            let have = self.levels[level].metadata()?.len() / 32;
            if have < want {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "node store holds fewer nodes than asked"));
            }
            self.levels[level].set_len(want * 32)?;
            self.counts[level] = want;
            level += 1;
        }
        self.edge = vec![None; self.levels.len()];
        for l in 0..self.levels.len() {
            if self.counts[l] % 2 == 1 {
                self.edge[l] = Some(self.node(l as u32, self.counts[l] - 1)?);
            }
        }
        Ok(())
    }

    /// Appends leaf hashes, writing every subtree they complete (one write per level).
    pub fn append(&mut self, leaves: &[Hash]) -> io::Result<()> {
        let mut bufs: Vec<Vec<u8>> = Vec::new();
        for leaf in leaves {
            completed_subtrees(&mut self.edge, *leaf, |level, h| {
                let l = level as usize;
                if bufs.len() <= l {
                    bufs.resize_with(l + 1, Vec::new);
                }
                bufs[l].extend_from_slice(&h);
            });
        }
        for (l, buf) in bufs.iter().enumerate() {
            if buf.is_empty() {
                continue;
            }
            self.ensure_level(l)?;
            self.levels[l].write_all_at(buf, self.counts[l] * 32)?;
            self.counts[l] += buf.len() as u64 / 32;
        }
        Ok(())
    }

    /// Makes every level durable.
    pub fn sync(&self) -> io::Result<()> {
        for f in &self.levels {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.counts.first().copied().unwrap_or(0)
    }
}

impl NodeStore for NodeFiles {
    fn node(&self, level: u32, index: u64) -> io::Result<Hash> {
        let l = level as usize;
        if l >= self.levels.len() || index >= self.counts[l] {
            return Err(io::Error::new(io::ErrorKind::NotFound, "node not stored"));
        }
        let mut h = [0u8; 32];
        self.levels[l].read_exact_at(&mut h, index * 32)?;
        Ok(h)
    }

    fn leaf_count(&self) -> u64 {
        self.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{self, MemTree};

    #[test]
    fn matches_the_in_memory_tree_across_truncation_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let leaves: Vec<Hash> = (0..1000u64).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
        let mut mem = MemTree::default();
        leaves.iter().for_each(|l| mem.push(*l));
        let mut files = NodeFiles::open(dir.path(), 0).unwrap();
        for chunk in leaves[..700].chunks(37) {
            files.append(chunk).unwrap();
        }
        files.truncate(333).unwrap();
        drop(files);
        let mut files = NodeFiles::open(dir.path(), 333).unwrap();
        files.append(&leaves[333..]).unwrap();
        for n in [1u64, 2, 3, 333, 512, 999, 1000] {
            assert_eq!(merkle::root(&files, n).unwrap(), merkle::root(&mem, n).unwrap(), "size {n}");
        }
        assert_eq!(
            merkle::inclusion_proof(&files, 400, 1000).unwrap(),
            merkle::inclusion_proof(&mem, 400, 1000).unwrap()
        );
        assert!(NodeFiles::open(dir.path(), 1001).is_err(), "cannot claim nodes it does not hold");
    }
}
