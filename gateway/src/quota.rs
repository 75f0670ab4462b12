//! Quotas per agency: a rate limit (queries in any sliding minute) and a daily quota (queries per UTC
//! day), both taken from the policy in force (the smallest each of the agency's grants sets). Only
//! queries the policy allows are counted; a refused query costs nothing. A query over either limit is
//! refused with `RESOURCE_EXHAUSTED` and a message naming the limit and when it frees up; a query that
//! cannot be counted because the quota file cannot be written is refused with `UNAVAILABLE` (our failure,
//! not the caller's).
//!
//! The daily counts survive a restart: each query counted against a daily quota is appended to
//! `quota.jsonl` in the ledger directory and `fdatasync`ed before the query goes on (a torn last line is
//! cut at start, as for the release ledger), and a restart picks up each agency's count of its latest
//! day. The file is compacted to one line per agency when the gateway starts. The per-minute window is
//! kept in memory only: a restart forgets at most one minute of it.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shuzhu_policy::grant::Quota;

use crate::books::{BookHead, LineFile};

/// File name of the daily quota counts inside the gateway's ledger directory.
pub const QUOTA_FILE_NAME: &str = "quota.jsonl";

/// The sliding window of the rate limit.
const MINUTE: Duration = Duration::from_secs(60);

/// Why a query was over quota.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    /// The per-minute rate limit is reached.
    #[error("rate limit of {limit} queries per minute reached for agency {agency}; try again in {retry_secs} s")]
    RateLimit {
        /// Agency.
        agency: String,
        /// The limit.
        limit: u32,
        /// Seconds until a slot frees.
        retry_secs: u64,
    },
    /// The daily quota is used up.
    #[error("daily quota of {limit} queries used up for agency {agency}; it resets at 00:00 UTC")]
    Daily {
        /// Agency.
        agency: String,
        /// The quota.
        limit: u32,
    },
    /// The query could not be counted durably (the quota file failed), so it is not run.
    #[error("the daily quota count could not be recorded; nothing was answered, try again")]
    Unrecorded,
}

/// Why the quota file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum QuotaFileError {
    /// The file could not be read, compacted or written.
    #[error("quota file i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A line of the file is not a count.
    #[error("quota file line {0} is corrupt")]
    Corrupt(usize),
    /// The book's file could not be read, checked or written (see [`crate::books`]).
    #[error(transparent)]
    Book(#[from] crate::books::BookError),
}

/// One line of the quota file: `count` more queries of `agency` on UTC day `day`.
#[derive(Serialize, Deserialize)]
struct Counted {
    agency: String,
    day: i32,
    count: u32,
}

fn line_of(agency: &str, day: i32, count: u32) -> Vec<u8> {
    // A struct of a string and integers always serialises.
    let mut buf = serde_json::to_vec(&Counted { agency: agency.into(), day, count }).unwrap_or_default();
    buf.push(b'\n');
    buf
}

#[derive(Default)]
struct Usage {
    /// Start times of the queries of the last minute (at most `per_minute` of them).
    recent: VecDeque<Instant>,
    /// UTC day number and queries counted that day.
    day: (i32, u32),
}

/// What each agency has used: in memory only ([`QuotaBook::default`]) or with the daily counts durable
/// in a file ([`QuotaBook::open`]).
#[derive(Default)]
pub struct QuotaBook {
    usage: Mutex<HashMap<String, Usage>>,
    file: Option<Mutex<LineFile>>,
}

impl QuotaBook {
    /// Opens (or creates) the quota file in `dir` and takes up each agency's count of its latest day,
    /// compacting the file to those counts.
    pub fn open(dir: &Path) -> Result<Self, QuotaFileError> {
        Self::open_committing(dir, &|_| Ok(()))
    }

    /// [`Self::open`], with `commit` making the compacted book's head durable (an audit entry, see
    /// [`crate::books`]) before the compacted file replaces the old one.
    pub fn open_committing(
        dir: &Path,
        commit: &dyn Fn(&BookHead) -> Result<(), String>,
    ) -> Result<Self, QuotaFileError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(QUOTA_FILE_NAME);
        let (lines, file) = crate::books::open_lines(&path)?;
        let mut latest: HashMap<String, (i32, u32)> = HashMap::new();
        for (i, line) in lines.iter().enumerate() {
            let c: Counted = serde_json::from_str(line).map_err(|_| QuotaFileError::Corrupt(i + 1))?;
            let slot = latest.entry(c.agency).or_insert((c.day, 0));
            if c.day > slot.0 {
                *slot = (c.day, 0);
            }
            if c.day == slot.0 {
                slot.1 = slot.1.saturating_add(c.count);
            }
        }
        let file = if lines.len() > latest.len() {
            let before = file.head();
            drop(file);
            let mut agencies: Vec<(&String, &(i32, u32))> = latest.iter().collect();
            agencies.sort();
            let compacted: Vec<String> = agencies
                .into_iter()
                .map(|(agency, (day, count))| {
                    let line = line_of(agency, *day, *count);
                    String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned()
                })
                .collect();
            crate::books::rewrite(&path, &compacted, before, commit)?
        } else {
            file
        };
        let usage = latest.into_iter().map(|(agency, day)| (agency, Usage { recent: VecDeque::new(), day })).collect();
        Ok(QuotaBook { usage: Mutex::new(usage), file: Some(Mutex::new(file)) })
    }

    /// The book's lines and chain head (see [`crate::books`]), when it is kept in a file.
    pub fn head(&self) -> Option<BookHead> {
        self.file.as_ref().map(|f| f.lock().unwrap_or_else(|p| p.into_inner()).head())
    }

    /// Counts one query of `agency` at `now` on UTC day `today`, or refuses it when a limit is reached
    /// (a refused query is not counted). Against a daily quota the count is made durable first (blocks
    /// on the file for one `fdatasync`).
    pub fn take(&self, agency: &str, quota: Quota, now: Instant, today: i32) -> Result<(), QuotaExceeded> {
        self.count(agency, quota, now, today)?;
        let Some(file) = self.file.as_ref().filter(|_| quota.per_day.is_some()) else {
            return Ok(());
        };
        let written = {
            // A failed append is cut back (or stops the file) so no fragment is left behind.
            file.lock().unwrap_or_else(|p| p.into_inner()).append(&line_of(agency, today, 1))
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "the quota file failed; the query is refused");
            // Give the count back: the query does not run.
            let mut book = self.usage.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(u) = book.get_mut(agency).filter(|u| u.day.0 == today) {
                u.day.1 = u.day.1.saturating_sub(1);
            }
            return Err(QuotaExceeded::Unrecorded);
        }
        Ok(())
    }

    /// Queries of `agency` counted against its quotas on UTC day `today` (for `/v1/me`).
    pub fn used_on(&self, agency: &str, today: i32) -> u32 {
        let book = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        book.get(agency).filter(|u| u.day.0 == today).map_or(0, |u| u.day.1)
    }

    /// The in-memory decision and count of [`Self::take`].
    fn count(&self, agency: &str, quota: Quota, now: Instant, today: i32) -> Result<(), QuotaExceeded> {
        if quota.per_minute.is_none() && quota.per_day.is_none() {
            return Ok(());
        }
        // A poisoned lock only means another query panicked while counting; the counts stay usable.
        let mut book = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = book.entry(agency.to_string()).or_default();
        if u.day.0 != today {
            u.day = (today, 0);
        }
        if let Some(limit) = quota.per_day
            && u.day.1 >= limit
        {
            return Err(QuotaExceeded::Daily { agency: agency.into(), limit });
        }
        while u.recent.front().is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE) {
            u.recent.pop_front();
        }
        if let Some(limit) = quota.per_minute
            && u.recent.len() >= limit as usize
        {
            let oldest = u.recent.front().copied().unwrap_or(now);
            let retry = MINUTE.saturating_sub(now.saturating_duration_since(oldest));
            return Err(QuotaExceeded::RateLimit { agency: agency.into(), limit, retry_secs: retry.as_secs().max(1) });
        }
        u.recent.push_back(now);
        // Keep the window bounded even if the limit was lowered by a reload.
        while quota.per_minute.is_some_and(|l| u.recent.len() > l as usize) {
            u.recent.pop_front();
        }
        u.day.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_slides_over_a_minute() {
        let book = QuotaBook::default();
        let q = Quota { per_minute: Some(2), per_day: None };
        let t0 = Instant::now();
        assert!(book.take("a", q, t0, 1).is_ok());
        assert!(book.take("a", q, t0 + Duration::from_secs(10), 1).is_ok());
        let err = book.take("a", q, t0 + Duration::from_secs(20), 1).unwrap_err();
        assert_eq!(err, QuotaExceeded::RateLimit { agency: "a".into(), limit: 2, retry_secs: 40 });
        assert!(err.to_string().contains("per minute"));
        // Another agency has its own window.
        assert!(book.take("b", q, t0 + Duration::from_secs(20), 1).is_ok());
        // The first query leaves the window after a minute.
        assert!(book.take("a", q, t0 + Duration::from_secs(60), 1).is_ok());
        assert!(book.take("a", q, t0 + Duration::from_secs(61), 1).is_err());
    }

    #[test]
    fn the_daily_quota_resets_with_the_day_and_refusals_cost_nothing() {
        let book = QuotaBook::default();
        let q = Quota { per_minute: None, per_day: Some(2) };
        let t = Instant::now();
        assert!(book.take("a", q, t, 100).is_ok());
        assert!(book.take("a", q, t, 100).is_ok());
        for _ in 0..3 {
            assert_eq!(book.take("a", q, t, 100), Err(QuotaExceeded::Daily { agency: "a".into(), limit: 2 }));
        }
        assert!(book.take("a", q, t, 101).is_ok());
        assert!(book.take("a", Quota::default(), t, 101).is_ok());
    }

    #[test]
    fn the_daily_counts_survive_a_restart_and_the_file_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(QUOTA_FILE_NAME);
        let q = Quota { per_minute: None, per_day: Some(3) };
        let t = Instant::now();
        let book = QuotaBook::open(dir.path()).unwrap();
        // Day 100: two of a's three, all of b's.
        assert!(book.take("a", q, t, 100).is_ok());
        assert!(book.take("b", q, t, 100).is_ok());
        assert!(book.take("a", q, t, 100).is_ok());
        // A rate limit alone writes nothing.
        assert!(book.take("c", Quota { per_minute: Some(5), per_day: None }, t, 100).is_ok());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        drop(book);
        let book = QuotaBook::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2, "one line per agency");
        assert!(book.take("a", q, t, 100).is_ok());
        assert_eq!(book.take("a", q, t, 100), Err(QuotaExceeded::Daily { agency: "a".into(), limit: 3 }));
        assert!(book.take("b", q, t, 100).is_ok());
        assert!(book.take("b", q, t, 100).is_ok());
        assert!(book.take("b", q, t, 100).is_err());
        drop(book);
        // A crash tore the last write: the fragment is cut, the whole lines still count.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"agency":"b","day":100,"cou"#).unwrap();
        drop(f);
        let book = QuotaBook::open(dir.path()).unwrap();
        assert!(book.take("a", q, t, 100).is_err(), "a used its three before the restart");
        assert!(book.take("b", q, t, 100).is_err());
        // The next day starts from zero, and a restart keeps the new day's count only.
        assert!(book.take("a", q, t, 101).is_ok());
        drop(book);
        let book = QuotaBook::open(dir.path()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(r#"{"agency":"a","day":101,"count":1}"#), "{text}");
        assert!(book.take("a", q, t, 101).is_ok());
        assert!(book.take("a", q, t, 101).is_ok());
        assert!(book.take("a", q, t, 101).is_err());
        // A damaged whole line is refused, naming it.
        std::fs::write(&path, "{\"agency\":\"a\"}\n").unwrap();
        assert!(matches!(QuotaBook::open(dir.path()), Err(QuotaFileError::Corrupt(1))));
    }
}
