//! Authentication failures, rate-limited per peer before they reach the audit ledger.
//!
//! Every request is audited, but a flood of bad tokens must not turn into one fsync'ed entry each (an
//! anonymous client could then fill the ledger's disk and slow every honest request). So each peer
//! (IP address) gets a small budget of failures recorded one by one, with their own entry, per minute;
//! beyond it a failure is only *counted*, by peer and reason, and the counts are appended as summary
//! entries (`action` `auth_failures`: peer, reason, count, first and last time) every few seconds, before
//! any auditor read, and at shutdown. The ledger thus grows by at most `budget` entries per peer per
//! minute plus one entry per (peer, reason) per summary interval, whatever the flood's rate. The number
//! of peers tracked is bounded too: past [`MAX_PEERS`], new peers are counted under `other`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::audit::FailureCount;

/// Most peers tracked at once (their budgets and pending counts).
pub const MAX_PEERS: usize = 4096;

/// The window of each peer's budget.
const WINDOW: Duration = Duration::from_secs(60);

/// Whether one failure gets its own entry or is counted into the next summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Append this failure as its own entry.
    Record,
    /// Only count it; the next summary carries it.
    Counted,
}

#[derive(Default)]
struct Inner {
    /// Per peer: when its current window started and how many failures it recorded in it.
    budgets: HashMap<IpAddr, (Instant, u32)>,
    /// Counted failures by (peer, reason), waiting for the next summary.
    pending: BTreeMap<(String, &'static str), FailureCount>,
}

/// Per-peer budgets and the counts waiting to be summarised.
pub struct FailureLimiter {
    per_peer_per_minute: u32,
    inner: Mutex<Inner>,
}

impl FailureLimiter {
    /// A limiter that records up to `per_peer_per_minute` failures of each peer one by one.
    pub fn new(per_peer_per_minute: u32) -> Self {
        Self { per_peer_per_minute, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counts that are still whole numbers.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides for one failure of `peer` (`None` when the transport gave no address) for `reason`,
    /// at `now` (`time` is its RFC 3339 form, for the summary).
    pub fn admit(&self, peer: Option<IpAddr>, reason: &'static str, now: Instant, time: &str) -> Admission {
        let mut inner = self.lock();
        let key = match peer {
            Some(ip) => {
                if !inner.budgets.contains_key(&ip) && inner.budgets.len() >= MAX_PEERS {
                    inner.budgets.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
                }
                if inner.budgets.contains_key(&ip) || inner.budgets.len() < MAX_PEERS {
                    let (start, used) = inner.budgets.entry(ip).or_insert((now, 0));
                    if now.duration_since(*start) >= WINDOW {
                        *start = now;
                        *used = 0;
                    }
                    if *used < self.per_peer_per_minute {
                        *used += 1;
                        return Admission::Record;
                    }
                    ip.to_string()
                } else {
                    "other".to_string()
                }
            }
            None => "unknown".to_string(),
        };
        let pending = inner.pending.len();
        let key = if pending >= MAX_PEERS && !inner.pending.contains_key(&(key.clone(), reason)) {
            ("other".to_string(), reason)
        } else {
            (key, reason)
        };
        inner
            .pending
            .entry(key)
            .and_modify(|c| {
                c.count += 1;
                c.last = time.to_string();
            })
            .or_insert_with(|| FailureCount { count: 1, first: time.to_string(), last: time.to_string() });
        Admission::Counted
    }

    /// Takes every pending count, for the summary entries.
    pub fn take_pending(&self) -> Vec<(String, &'static str, FailureCount)> {
        std::mem::take(&mut self.lock().pending).into_iter().map(|((peer, reason), c)| (peer, reason, c)).collect()
    }

    /// Puts counts back (when the ledger could not append them), adding to what came since.
    pub fn restore(&self, counts: Vec<(String, &'static str, FailureCount)>) {
        let mut inner = self.lock();
        for (peer, reason, c) in counts {
            inner
                .pending
                .entry((peer, reason))
                .and_modify(|p| {
                    p.count += c.count;
                    p.first.clone_from(&c.first);
                })
                .or_insert(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_past_its_budget_is_counted_by_reason_and_others_keep_theirs() {
        let l = FailureLimiter::new(3);
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let got: Vec<Admission> = (0..10).map(|_| l.admit(Some(a), "bad_signature", now, "t1")).collect();
        assert_eq!(got.iter().filter(|x| **x == Admission::Record).count(), 3);
        l.admit(Some(a), "expired", now, "t2");
        assert_eq!(l.admit(Some(b), "expired", now, "t2"), Admission::Record);
        let pending = l.take_pending();
        assert_eq!(pending.len(), 2);
        assert_eq!(
            pending[0],
            ("10.0.0.1".into(), "bad_signature", FailureCount { count: 7, first: "t1".into(), last: "t1".into() })
        );
        assert_eq!(pending[1].2.count, 1);
        assert!(l.take_pending().is_empty());
        // A new window gives the budget back.
        assert_eq!(l.admit(Some(a), "expired", now + WINDOW, "t3"), Admission::Record);
    }
}
