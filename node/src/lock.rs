//! Exclusive locks on a node's store and on its release journal.
//!
//! sled locks its files only while it loads them, and the node keeps no store open once its engine is in
//! memory; without a lock of our own two `node serve` on one store both ran and both appended to the
//! journal, breaking its chain. So whoever opens a store ([`crate::store::SledStore::open`]: a serving
//! node for its whole life, an import while it runs) or a journal for writing
//! ([`crate::journal::ReleaseJournal::open`], `node journal repair`) first takes an exclusive OS lock
//! (`flock`, through the `fs4` crate) on the file [`LOCK_FILE`] inside that directory and
//! writes its process id into it. A second opener is refused at once with the holder's pid and the path.
//! The OS releases the lock when the holder exits, however it exits, so a crashed node leaves no stale
//! lock behind (the pid left in the file is then simply overwritten).

use std::fs::{File, OpenOptions};

use fs4::TryLockError;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = "shuzhu.lock";

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "{what} {dir} is in use by process {pid} (lock file {lock}): only one node may serve or import a store at a time; stop that process first"
    )]
    Held {
        /// `store` or `release journal`.
        what: &'static str,
        /// The locked directory.
        dir: String,
        /// The lock file.
        lock: String,
        /// The holder's process id as it wrote it (`unknown` when unreadable).
        pid: String,
    },
    /// The lock file could not be created, locked or written.
    #[error("cannot lock {what} {path}: {source}")]
    Io {
        /// `store` or `release journal`.
        what: &'static str,
        /// The lock file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive lock on a directory, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    // Never read: holding the open file holds the lock.
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Creates `dir` if needed and locks it exclusively, or says which process holds it. `what` names
    /// the directory in errors (`store`, `release journal`).
    pub fn acquire(dir: &Path, what: &'static str) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io { what, path: path.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        // `fs4` rather than `File::try_lock` (Rust 1.89), which is newer than the workspace's MSRV.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim();
                let pid = if !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit()) {
                    pid.to_string()
                } else {
                    "unknown".to_string()
                };
                return Err(LockError::Held {
                    what,
                    dir: dir.display().to_string(),
                    lock: path.display().to_string(),
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_data())
            .map_err(io)?;
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The process id written by whoever holds `dir`'s lock now (`unknown` when unreadable), or `None` when
/// nobody does. Takes no lock that anyone could notice: a shared lock, tried and let go at once.
pub fn holder(dir: &Path) -> Option<String> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new().read(true).open(path).ok()?;
    match fs4::FileExt::try_lock_shared(&file) {
        Ok(()) => {
            let _ = fs4::FileExt::unlock(&file);
            None
        }
        Err(_) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = text.trim();
            Some(if !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit()) {
                pid.to_string()
            } else {
                "unknown".to_string()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let first = DirLock::acquire(&dir, "store").unwrap();
        assert_eq!(std::fs::read_to_string(first.path()).unwrap().trim(), std::process::id().to_string());
        let err = DirLock::acquire(&dir, "store").unwrap_err().to_string();
        assert!(err.contains(&format!("in use by process {}", std::process::id())), "{err}");
        assert!(err.contains(&dir.display().to_string()), "{err}");
        drop(first);
        DirLock::acquire(&dir, "store").unwrap();
    }
}
