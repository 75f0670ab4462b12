//! Reloading a file without downtime: a tokio task that watches one file (its modification time and a
//! hash of its content, polled about every second) and listens for SIGHUP, and hands the new text to
//! a callback that checks it and swaps it in. The callback decides; this module only notices and logs.
//! A rejected file leaves whatever the callback kept in force, and the task keeps watching, so fixing
//! the file is enough to have it picked up. The file is opened once per poll; the callback gets the text
//! read then and must not read the file again (what it checks is what was seen to change). Reading the
//! file and running the callback happen on tokio's blocking pool, never on the runtime's worker threads.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often the watched file is polled.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// What the watcher last saw of the file: modification time and a hash of the content. The hash is
/// for change detection only (SipHash); nothing security-relevant depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    modified: Option<SystemTime>,
    content: u64,
}

/// Opens the file once and takes its modification time and its text from that one handle.
fn look(path: &Path) -> Option<(Seen, String)> {
    let mut file = std::fs::File::open(path).ok()?;
    let modified = file.metadata().ok()?.modified().ok();
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    Some((Seen { modified, content: h.finish() }, text))
}

/// [`look`] on the blocking pool.
async fn look_blocking(path: &Path) -> Option<(Seen, String)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || look(&path)).await.ok().flatten()
}

/// Why a reload happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The file changed on disk.
    FileChanged,
    /// The process received SIGHUP.
    Hangup,
}

impl Trigger {
    /// Lowercase label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::FileChanged => "file changed",
            Trigger::Hangup => "sighup",
        }
    }
}

/// Spawns the watcher of `path`. On every change (and on SIGHUP) `apply` gets the file's text and
/// returns `Ok(version)` when it swapped the new content in, `Err(reason)` when it refused it (the old
/// content keeps deciding). `what` names the file in logs (`policy`, `node local policy`). Reasons
/// must not carry personal data or secrets: they are logged. `apply` runs on the blocking pool, one call
/// at a time. Abort the returned handle to stop watching (a call of `apply` already under way finishes).
/// Must be called inside a tokio runtime.
pub fn spawn_watcher<F>(what: &'static str, path: PathBuf, every: Duration, mut apply: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut(&str) -> Result<String, String> + Send + 'static,
{
    // What is on disk now is what the caller loaded: look before returning, so no change is missed.
    let mut last = look(&path).map(|(seen, _)| seen);
    // Registered before returning, so a SIGHUP sent once this returns is never the default (fatal) one.
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let trigger = tokio::select! {
                _ = tick.tick() => Trigger::FileChanged,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => Trigger::Hangup,
            };
            #[cfg(not(unix))]
            let trigger = {
                tick.tick().await;
                Trigger::FileChanged
            };
            let Some((seen, text)) = look_blocking(&path).await else {
                if trigger == Trigger::Hangup {
                    tracing::warn!(what, path = %path.display(), "reload refused: the file cannot be read; the old version stays");
                }
                continue;
            };
            if trigger == Trigger::FileChanged && last == Some(seen) {
                continue;
            }
            last = Some(seen);
            // The callback moves to the blocking pool for the call and comes back with its result.
            let mut callback = apply;
            let joined = tokio::task::spawn_blocking(move || {
                let result = callback(&text);
                (callback, result)
            })
            .await;
            let result;
            (apply, result) = match joined {
                Ok(back) => back,
                Err(e) => {
                    tracing::error!(what, path = %path.display(), error = %e, "the reload callback failed; watching stops");
                    return;
                }
            };
            match result {
                Ok(version) => {
                    tracing::info!(what, path = %path.display(), trigger = trigger.as_str(), %version, "reloaded")
                }
                Err(reason) => tracing::warn!(
                    what,
                    path = %path.display(),
                    trigger = trigger.as_str(),
                    %reason,
                    "reload refused: the new file fails the check; the old version keeps deciding"
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_content_is_seen_even_with_the_same_length() {
        let dir = tempfile_dir("look");
        let p = dir.join("f.toml");
        std::fs::write(&p, "a = 1").unwrap();
        let (first, _) = look(&p).unwrap();
        std::fs::write(&p, "a = 2").unwrap();
        let (second, text) = look(&p).unwrap();
        assert_ne!(first.content, second.content);
        assert_eq!(text, "a = 2");
        assert!(look(&dir.join("missing")).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shuzhu-net-reload-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn the_watcher_applies_changes_and_survives_refusals() {
        let dir = tempfile_dir("watch");
        let p = dir.join("policy.toml");
        std::fs::write(&p, "good 1").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let h = spawn_watcher("test", p.clone(), Duration::from_millis(20), move |text| {
            let _ = tx.send(text.to_string());
            if text.starts_with("good") { Ok(text.into()) } else { Err("bad".into()) }
        });
        // Another test of this binary sends SIGHUP, which reapplies the current text: skip repeats.
        async fn next_new(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, old: &str) -> String {
            loop {
                let t = rx.recv().await.unwrap();
                if t != old {
                    return t;
                }
            }
        }
        std::fs::write(&p, "broken").unwrap();
        assert_eq!(next_new(&mut rx, "good 1").await, "broken");
        std::fs::write(&p, "good 2").unwrap();
        assert_eq!(next_new(&mut rx, "broken").await, "good 2");
        h.abort();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn the_callback_runs_off_the_runtime_thread() {
        let dir = tempfile_dir("blocking");
        let p = dir.join("policy.toml");
        std::fs::write(&p, "good 1").unwrap();
        // A current-thread runtime: every task of the test runs on this thread.
        let runtime_thread = std::thread::current().id();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let h = spawn_watcher("test", p.clone(), Duration::from_millis(20), move |text| {
            let _ = tx.send((text.to_string(), std::thread::current().id()));
            Ok(text.into())
        });
        std::fs::write(&p, "good 2 (changed)").unwrap();
        loop {
            let (text, thread) = rx.recv().await.unwrap();
            assert_ne!(thread, runtime_thread, "the callback ran on the runtime's thread");
            if text == "good 2 (changed)" {
                break;
            }
        }
        h.abort();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sighup_reapplies_the_unchanged_file() {
        let dir = tempfile_dir("hup");
        let p = dir.join("policy.toml");
        std::fs::write(&p, "good 1").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let h = spawn_watcher("test", p.clone(), Duration::from_secs(3600), move |text| {
            let _ = tx.send(text.to_string());
            Ok(text.into())
        });
        let status =
            std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status().unwrap();
        assert!(status.success());
        assert_eq!(rx.recv().await.unwrap(), "good 1");
        h.abort();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
