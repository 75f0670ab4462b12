//! The privacy-budget book: how much ε each agency has spent per dataset under `dp` grants.
//!
//! A query under `dp` first takes its cost from the book ([`BudgetBook::spend`], refused when the
//! budget would be exceeded) and, when it is then refused or fails before anything is released (the
//! differencing check, the release ledger, the noise), gives it back ([`BudgetBook::refund`]). Both
//! are lines of an append-only JSON-lines file (`dp-budget.jsonl` in the ledger directory), synced
//! before the call returns, like the release ledger. A crash between a spend and its refund keeps the
//! spend: the book may over-count what an agency used, never under-count what it was shown.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::books::{BookHead, LineFile, open_lines};
use crate::releases::ReleaseError;

/// File name of the privacy-budget ledger inside the gateway's ledger directory.
pub const BUDGET_FILE_NAME: &str = "dp-budget.jsonl";

/// One line of the book: a spend (positive) or a refund (negative) of ε in thousandths.
#[derive(Serialize, Deserialize)]
struct Spend {
    agency: String,
    dataset: String,
    milli: i64,
}

/// The privacy budget (ε, in thousandths) each agency has spent per dataset, durable in an
/// append-only file like the release ledger.
pub struct BudgetBook {
    file: Option<Mutex<LineFile>>,
    spent: Mutex<BTreeMap<(String, String), u64>>,
}

/// A refused spend: what was used and what the budget is.
#[derive(Debug, PartialEq, Eq)]
pub struct Exhausted {
    /// ε already used, in thousandths.
    pub used_milli: u64,
    /// The budget, in thousandths.
    pub budget_milli: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a spend panicked; the map is changed only after the file append
    // succeeded, so it is whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BudgetBook {
    /// A book kept only in memory.
    pub fn in_memory() -> Self {
        BudgetBook { file: None, spent: Mutex::new(BTreeMap::new()) }
    }

    /// Opens (or creates) the book in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ReleaseError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(BUDGET_FILE_NAME);
        let mut spent: BTreeMap<(String, String), u64> = BTreeMap::new();
        let (lines, file) = open_lines(&path)?;
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let s: Spend = serde_json::from_str(line).map_err(|_| ReleaseError::Corrupt(i + 1))?;
            let used = spent.entry((s.agency, s.dataset)).or_default();
            *used = used.saturating_add_signed(s.milli);
        }
        Ok(BudgetBook { file: Some(Mutex::new(file)), spent: Mutex::new(spent) })
    }

    /// Appends one line (`milli` > 0 spends, < 0 refunds), synced before it returns.
    fn append(&self, agency: &str, dataset: &str, milli: i64) -> Result<(), ReleaseError> {
        if let Some(file) = &self.file {
            let line = Spend { agency: agency.into(), dataset: dataset.into(), milli };
            // A struct of strings and an integer always serialises.
            let mut buf = serde_json::to_vec(&line).map_err(|e| std::io::Error::other(e.to_string()))?;
            buf.push(b'\n');
            lock(file).append(&buf)?;
        }
        Ok(())
    }

    /// Spends `cost` of `agency`'s budget on `dataset`, durably, or refuses when it would exceed
    /// `budget` (nothing spent). Returns what is used after the spend. When this returns `Ok(Ok(_))`
    /// the spend is on disk; on any error nothing was spent.
    pub fn spend(
        &self,
        agency: &str,
        dataset: &str,
        cost: u64,
        budget: u64,
    ) -> Result<Result<u64, Exhausted>, ReleaseError> {
        let mut spent = lock(&self.spent);
        let used = spent.get(&(agency.to_string(), dataset.to_string())).copied().unwrap_or(0);
        let milli = i64::try_from(cost).map_err(|_| std::io::Error::other("a privacy cost beyond i64"))?;
        if used.saturating_add(cost) > budget {
            return Ok(Err(Exhausted { used_milli: used, budget_milli: budget }));
        }
        self.append(agency, dataset, milli)?;
        spent.insert((agency.to_string(), dataset.to_string()), used + cost);
        Ok(Ok(used + cost))
    }

    /// Gives back `cost` spent by [`BudgetBook::spend`] for a query that released nothing, durably.
    /// Returns what is used after the refund. On an error the spend stays (the safe side: the agency
    /// is charged for a query it was not answered).
    pub fn refund(&self, agency: &str, dataset: &str, cost: u64) -> Result<u64, ReleaseError> {
        let mut spent = lock(&self.spent);
        let used = spent.get(&(agency.to_string(), dataset.to_string())).copied().unwrap_or(0);
        let cost = cost.min(used);
        if cost == 0 {
            return Ok(used);
        }
        let milli = i64::try_from(cost).map_err(|_| std::io::Error::other("a privacy cost beyond i64"))?;
        self.append(agency, dataset, -milli)?;
        spent.insert((agency.to_string(), dataset.to_string()), used - cost);
        Ok(used - cost)
    }

    /// The book's lines and chain head (see [`crate::books`]), when it is kept in a file.
    pub fn head(&self) -> Option<BookHead> {
        self.file.as_ref().map(|f| lock(f).head())
    }

    /// ε used by `agency` on `dataset`, in thousandths.
    pub fn used(&self, agency: &str, dataset: &str) -> u64 {
        lock(&self.spent).get(&(agency.to_string(), dataset.to_string())).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;

    #[test]
    fn budgets_refuse_when_spent_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let book = BudgetBook::open(dir.path()).unwrap();
        assert_eq!(book.spend("a", "cases", 400, 1000).unwrap(), Ok(400));
        assert_eq!(book.spend("a", "cases", 400, 1000).unwrap(), Ok(800));
        assert_eq!(
            book.spend("a", "cases", 400, 1000).unwrap(),
            Err(Exhausted { used_milli: 800, budget_milli: 1000 })
        );
        assert_eq!(book.spend("b", "cases", 400, 1000).unwrap(), Ok(400), "budgets are per agency");
        assert_eq!(book.spend("a", "mediations", 400, 1000).unwrap(), Ok(400), "and per dataset");
        drop(book);
        let book = BudgetBook::open(dir.path()).unwrap();
        assert_eq!(book.spend("a", "cases", 200, 1000).unwrap(), Ok(1000));
        assert!(book.spend("a", "cases", 1, 1000).unwrap().is_err());
    }

    #[test]
    fn a_refund_gives_the_spend_back_durably_and_never_below_zero() {
        let dir = tempfile::tempdir().unwrap();
        let book = BudgetBook::open(dir.path()).unwrap();
        assert_eq!(book.spend("a", "cases", 700, 1000).unwrap(), Ok(700));
        assert_eq!(book.refund("a", "cases", 700).unwrap(), 0);
        assert_eq!(book.spend("a", "cases", 1000, 1000).unwrap(), Ok(1000), "the refunded ε is available again");
        assert_eq!(book.refund("b", "cases", 50).unwrap(), 0, "nothing to give back");
        drop(book);
        let book = BudgetBook::open(dir.path()).unwrap();
        assert_eq!(book.used("a", "cases"), 1000, "spends and refunds survive reopening");
        assert_eq!(book.used("b", "cases"), 0);
    }

    #[test]
    fn a_torn_last_line_is_cut_so_later_appends_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let book = BudgetBook::open(dir.path()).unwrap();
        assert_eq!(book.spend("a", "cases", 100, 1000).unwrap(), Ok(100));
        drop(book);
        // A crash in the middle of the next write leaves an unterminated fragment (here ending in `}`).
        let path = dir.path().join(BUDGET_FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"agency":"a","dataset":"cases","milli":1}"#).unwrap();
        drop(f);
        let book = BudgetBook::open(dir.path()).unwrap();
        assert_eq!(book.spend("a", "cases", 100, 1000).unwrap(), Ok(200), "the torn spend was never acknowledged");
        drop(book);
        let book = BudgetBook::open(dir.path()).expect("the append after the cut is a line of its own");
        assert_eq!(book.spend("a", "cases", 0, 1000).unwrap(), Ok(200));
        // A damaged whole line is still refused, naming it.
        std::fs::write(&path, "{\"agency\":\"a\"}\n").unwrap();
        assert!(matches!(BudgetBook::open(dir.path()), Err(ReleaseError::Corrupt(1))));
    }
}
