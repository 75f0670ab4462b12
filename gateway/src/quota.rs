//! Quotas per agency: a rate limit (queries in any sliding minute) and a daily quota (queries per UTC
//! day), both taken from the policy in force (the smallest each of the agency's grants sets). Only
//! queries the policy allows are counted; a refused query costs nothing. A query over either limit is
//! refused with `RESOURCE_EXHAUSTED` and a message naming the limit and when it frees up.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shuzhu_policy::grant::Quota;

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
}

#[derive(Default)]
struct Usage {
    /// Start times of the queries of the last minute (at most `per_minute` of them).
    recent: VecDeque<Instant>,
    /// UTC day number and queries counted that day.
    day: (i32, u32),
}

/// What each agency has used.
#[derive(Default)]
pub struct QuotaBook {
    usage: Mutex<HashMap<String, Usage>>,
}

impl QuotaBook {
    /// Counts one query of `agency` at `now` on UTC day `today`, or refuses it when a limit is reached
    /// (a refused query is not counted).
    pub fn take(&self, agency: &str, quota: Quota, now: Instant, today: i32) -> Result<(), QuotaExceeded> {
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
}
