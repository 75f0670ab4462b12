//! Secret files: keys, tokens and HMAC secrets that only their owner may read.
//!
//! A secret is created with mode 0600 *at open time* (never written first and chmod'ed after, which
//! leaves a window in which anyone can read it), in a directory created 0700, and replaced by
//! writing a new file beside it and renaming it over the old one, so an existing file's looser mode
//! never carries over. Node and gateway refuse to start with a secret that the group or others may
//! read ([`check_secret_permissions`]), naming the file and the fix.
//!
//! ```
//! use shuzhu_net::secret::{check_secret_permissions, write_secret_file};
//! let dir = tempfile::tempdir().unwrap();
//! let key = dir.path().join("keys/issuer.key");
//! write_secret_file(&key, b"secret").unwrap();
//! check_secret_permissions(&key).unwrap();
//! ```

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every secret file.
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Mode of a directory created to hold secrets.
pub const SECRET_DIR_MODE: u32 = 0o700;

/// Why a secret file could not be written, or may not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file or its directory could not be created, written, synced or inspected.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The secret file can be read (or written) by its group or by others.
    #[error(
        "secret file {} is accessible to group or others (mode {mode:04o}); restrict it with: chmod 600 {}",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SecretError + 'a {
    move |source| SecretError::Io { op, path: path.to_owned(), source }
}

/// Creates `dir` and its missing parents; every directory this call creates is mode 0700 (an
/// existing one is left as it is).
pub fn create_secret_dir(dir: &Path) -> Result<(), SecretError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(SECRET_DIR_MODE).create(dir).map_err(io_err("create directory", dir))
}

/// Creates a new secret file (mode 0600, failing if it exists) and returns it open for writing.
/// Its directory must exist (see [`create_secret_dir`]).
pub fn create_secret_file(path: &Path) -> Result<File, SecretError> {
    OpenOptions::new().write(true).create_new(true).mode(SECRET_FILE_MODE).open(path).map_err(io_err("create", path))
}

/// Writes `bytes` as the secret file `path` (replacing any file there), durably: a new 0600 file
/// beside it is written and synced, then renamed over `path`, and the directory is synced. Missing
/// directories are created 0700.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_secret_dir(dir)?;
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(name);
    // A leftover of an interrupted write by this same pid: never reuse it, its mode is unknown.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove", &tmp)(e)),
        _ => {}
    }
    let written = create_secret_file(&tmp).and_then(|mut f| {
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path).map_err(io_err("rename", path))) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync", dir))
}

/// Refuses a secret file that its group or others may read or write: returns
/// [`SecretError::TooOpen`], whose message names the file and the `chmod 600` that fixes it.
pub fn check_secret_permissions(path: &Path) -> Result<(), SecretError> {
    let mode = fs::metadata(path).map_err(io_err("inspect", path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen { path: path.to_owned(), mode });
    }
    Ok(())
}

/// [`check_secret_permissions`] for a file that may not exist yet (a missing file is reported by
/// whoever reads it, with its own error).
pub fn check_secret_permissions_if_present(path: &Path) -> Result<(), SecretError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => check_secret_permissions(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secrets_are_born_0600_in_0700_directories_and_replace_looser_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a/b/k.key");
        write_secret_file(&key, b"one").unwrap();
        assert_eq!((mode(&key), mode(&dir.path().join("a")), mode(&dir.path().join("a/b"))), (0o600, 0o700, 0o700));
        // An existing world-readable file is replaced by a 0600 one, not rewritten in place.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        write_secret_file(&key, b"two").unwrap();
        assert_eq!((mode(&key), fs::read(&key).unwrap()), (0o600, b"two".to_vec()));
        assert_eq!(fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1, "no temporary file is left");
        assert!(create_secret_file(&key).is_err(), "create never overwrites");
    }

    #[test]
    fn a_secret_readable_by_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("issuer.key");
        write_secret_file(&key, b"k").unwrap();
        check_secret_permissions(&key).unwrap();
        for loose in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&key, fs::Permissions::from_mode(loose)).unwrap();
            let e = check_secret_permissions(&key).unwrap_err().to_string();
            assert!(
                e.contains(&key.display().to_string()) && e.contains(&format!("chmod 600 {}", key.display())),
                "{e}"
            );
        }
        check_secret_permissions_if_present(&dir.path().join("absent")).unwrap();
    }
}
