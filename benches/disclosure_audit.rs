//! Cost of the exact disclosure audit per query (issue 11; the target, in issue 21, is ≤ 50 ms of gateway
//! CPU for a first-time 6 000-cell answer with 100 000 cells already released).
//!
//! `cargo bench --bench disclosure_audit -- [--released 1000,10000,100000] [--runs 5] [--causes 500]
//! [--budget-s 120]`
//!
//! The data are real in kind: `--cases` synthetic cases a year (filed over the year, most closed within
//! months, some still pending at the end of 2024; 32 courts each serving one district; case types,
//! causes and closure methods drawn at random), so every released number is the true count of its
//! record set and the releases are consistent, as they are in service. For each size a pooled release
//! ledger is filled, as the gateway records answers, with the releases of ordinary grouped answers —
//! `filed`, `closed` and `active` by region × month, one year and one case type at a time (2024 first,
//! then earlier years): each shown cell's count (cells of 1..k−1 are suppressed and not released) and
//! each month's empty remainder (the month's whole record set minus every listed cell). Then the audit of
//! a first-time `avg_trial_days` answer by cause × month of 2024 (500 causes × 12 months ≈ 6 000 cells,
//! each with its count, plus each month's remainder) is timed: CPU time of the auditing thread
//! (`/proc/thread-self/schedstat`) and wall time, median over `--runs`. The timed audits do not change the
//! ledger. Filling stops (and the size is reported as skipped) once it has taken `--budget-s` seconds.
//! Pure computation: no file, no network.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shuzhu_policy::dimension::Dimension;
use shuzhu_policy::disclosure::audit::{Checked, Ledger, Limits};
use shuzhu_policy::disclosure::recordset::{
    CAUSE, CLOSURE, ON_TIME, OPEN, PLACE, RecordSet, Release, TYPE_CODE, Topology, month_days,
};
use shuzhu_policy::indicator::measure;
use shuzhu_policy::period::Month;
use shuzhu_policy::schema::{CLOSURE_METHODS, TYPE_CODES};

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns: u64 = text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_nanos(ns)
}

/// A synthetic case: its first and last day ([`OPEN`] while pending) and its categorical fields.
struct Case {
    filed: i32,
    closed: i32,
    fields: Vec<(&'static str, String)>,
}

impl Case {
    fn field(&self, axis: &str) -> &str {
        self.fields.iter().find(|(a, _)| *a == axis).map_or("", |(_, v)| v.as_str())
    }

    fn holds(&self, s: &RecordSet) -> bool {
        s.first.lo <= self.filed
            && self.filed <= s.first.hi
            && s.last.lo <= self.closed
            && self.closed <= s.last.hi
            && s.fields.iter().all(|(axis, vals)| vals.binary_search_by(|v| v.as_str().cmp(self.field(axis))).is_ok())
    }
}

/// A small deterministic generator (xorshift), so every run audits the same data.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn year_days(year: i32) -> (i32, i32) {
    (month_days(Month::new(year, 1).expect("month")).0, month_days(Month::new(year, 12).expect("month")).1)
}

/// `per_year` cases filed in each of `years`, pending when not closed by the end of 2024.
fn cases(years: std::ops::RangeInclusive<i32>, per_year: u64, places: &[String], causes: &[String]) -> Vec<Case> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let end = year_days(2024).1;
    let mut out = Vec::new();
    for year in years {
        let (lo, hi) = year_days(year);
        for _ in 0..per_year {
            let filed = lo + rng.below((hi - lo + 1) as u64) as i32;
            let days = rng.below(40) as i32 + rng.below(40) as i32 * rng.below(6) as i32;
            let closed = if filed + days > end { OPEN } else { filed + days };
            let method = if closed == OPEN {
                String::new()
            } else {
                CLOSURE_METHODS[rng.below(CLOSURE_METHODS.len() as u64) as usize].to_string()
            };
            let on_time = if closed != OPEN && days <= 90 { "1" } else { "0" };
            out.push(Case {
                filed,
                closed,
                fields: vec![
                    (PLACE, places[rng.below(places.len() as u64) as usize].clone()),
                    (TYPE_CODE, TYPE_CODES[rng.below(TYPE_CODES.len() as u64) as usize].to_string()),
                    (CAUSE, causes[rng.below(causes.len() as u64) as usize].clone()),
                    (CLOSURE, method),
                    (ON_TIME, on_time.to_string()),
                ],
            });
        }
    }
    out
}

/// The releases of a grouped answer of `measure_id` by `dim` × month of `year` over `data`, restricted
/// by `filters`, as the gateway records them: each cell of `k` or more with its count, and each month's
/// empty remainder (the whole minus every listed cell, shown or suppressed).
#[allow(clippy::too_many_arguments)]
fn answer(
    measure_id: &str,
    year: i32,
    dim: Dimension,
    axis: &str,
    filters: &[(Dimension, Vec<String>)],
    data: &[&Case],
    k: i64,
    topology: &Topology,
) -> Vec<Release> {
    let m = measure(measure_id).expect("catalogue measure");
    let mut out = Vec::new();
    for month in 1..=12 {
        let (lo, hi) = month_days(Month::new(year, month).expect("valid month"));
        let Some(mut whole) = RecordSet::of_measure(m, lo, hi, topology) else { continue };
        for (d, v) in filters {
            whole.restrict_dim(*d, v, topology);
        }
        let mut groups: BTreeMap<&str, i64> = BTreeMap::new();
        for c in data.iter().filter(|c| c.holds(&whole)) {
            *groups.entry(c.field(axis)).or_default() += 1;
        }
        let mut zero = vec![(1, whole.clone())];
        for (value, n) in groups {
            // A place is asked for by its region (one court per district here).
            let label = value.rsplit('|').next().unwrap_or(value).to_string();
            let mut cell = whole.clone();
            cell.restrict_dim(dim, std::slice::from_ref(&label), topology);
            zero.push((-1, cell.clone()));
            if n >= k {
                out.push(Release::count(measure_id, cell, n));
            }
        }
        out.push(Release { measure: "zero".into(), terms: zero, count: 0, money: None });
    }
    out
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = arg::<String>(&args, "--released")
        .unwrap_or_else(|| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let runs: usize = arg(&args, "--runs").unwrap_or(5).max(1);
    let causes: usize = arg(&args, "--causes").unwrap_or(500);
    let budget = Duration::from_secs(arg(&args, "--budget-s").unwrap_or(120));

    let per_year: u64 = arg(&args, "--cases").unwrap_or(100_000);
    let first_year: i32 = arg(&args, "--since").unwrap_or(2019);

    // 32 courts, one per district.
    let courts: Vec<Vec<String>> = (0..32).map(|i| vec![format!("闽02{i:02}")]).collect();
    let regions: Vec<Vec<String>> = (0..32).map(|i| vec![format!("3502{i:02}")]).collect();
    let topology = Topology::from_nodes(courts.iter().zip(&regions).map(|(c, r)| (&c[..], &r[..])));
    let places: Vec<String> = courts.iter().zip(&regions).map(|(c, r)| format!("{}|{}", c[0], r[0])).collect();
    let cause_names: Vec<String> = (0..causes).map(|i| format!("案由{i:03}")).collect();
    let data = cases(first_year..=2024, per_year, &places, &cause_names);
    let all: Vec<&Case> = data.iter().collect();
    let k = 10;

    // The first-time answer: avg_trial_days (closed cases, counted with their trial days) by cause × month.
    let new = answer("cases.closed", 2024, Dimension::Cause, CAUSE, &[], &all, k, &topology);
    let new_cells = new.iter().filter(|r| !r.is_zero()).count();
    println!(
        "exact disclosure audit: {} synthetic cases ({per_year} filed a year since {first_year}); first-time answer of {new_cells} released cells ({} releases with the monthly remainders)",
        data.len(),
        new.len()
    );
    println!("load: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    let mut ledger = Ledger::new();
    let mut fill = Duration::ZERO;
    let mut years = (first_year..=2024).rev();
    let mut pending: Vec<Release> = Vec::new();
    for &size in &sizes {
        let started = Instant::now();
        while ledger.len() < size {
            if pending.is_empty() {
                let Some(year) = years.next() else { break };
                let (lo, hi) = year_days(year);
                for t in TYPE_CODES {
                    let of_year: Vec<&Case> =
                        data.iter().filter(|c| c.field(TYPE_CODE) == *t && c.filed <= hi && c.closed >= lo).collect();
                    let f = [(Dimension::TypeCode, vec![t.to_string()])];
                    for m in ["cases.filed", "cases.closed", "cases.active"] {
                        pending.extend(answer(m, year, Dimension::Region, PLACE, &f, &of_year, k, &topology));
                    }
                }
                pending.reverse();
            }
            let Some(r) = pending.pop() else { break };
            ledger.push(r);
            if fill + started.elapsed() > budget {
                break;
            }
        }
        fill += started.elapsed();
        if ledger.len() < size {
            println!(
                "released {size:>6}: skipped (the ledger holds {} after {:.0} s of filling)",
                ledger.len(),
                fill.as_secs_f64()
            );
            break;
        }
        let mut cpu: Vec<Duration> = Vec::new();
        let mut wall: Vec<Duration> = Vec::new();
        let mut decision = String::new();
        for _ in 0..runs {
            let (c0, w0) = (thread_cpu(), Instant::now());
            let verdict = ledger.audit_checked(&new, k as u32, &topology, &Limits::default());
            wall.push(w0.elapsed());
            cpu.push(thread_cpu().saturating_sub(c0));
            decision = match verdict {
                Ok(Checked::Exact) => "safe (exact audit)".into(),
                Ok(Checked::Pairs) => "safe (too large for the exact audit: pairwise check)".into(),
                Err(r) => format!("refused: {}", r.reason()),
            };
        }
        cpu.sort();
        wall.sort();
        println!(
            "released {:>6}: audit CPU median {:>9.1} ms (min {:.1}, max {:.1}), wall median {:>9.1} ms over {runs} runs; {decision}",
            ledger.len(),
            cpu[runs / 2].as_secs_f64() * 1e3,
            cpu[0].as_secs_f64() * 1e3,
            cpu[runs - 1].as_secs_f64() * 1e3,
            wall[runs / 2].as_secs_f64() * 1e3,
        );
    }
}
