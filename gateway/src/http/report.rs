//! The access report of `shuzhu audit report` and `GET /v1/audit/report`: turns ledger entries into a
//! summary for people: access per agency, indicator and decision, denials with their reasons, and
//! unusual patterns (bursts by one principal, near-identical queries that look like differencing,
//! access outside office hours in China time). Pure functions over entry bodies, so the rules are
//! unit-tested here; [`from_ledger`] reads a time range of the gateway's own ledger for the API.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Office hours in China time (UTC+8): from 08:00 inclusive to 20:00 exclusive.
pub const OFFICE_HOURS: std::ops::Range<u32> = 8..20;

/// One entry as the report sees it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// 1-based seq.
    pub seq: u64,
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    /// The entry body (canonical JSON).
    pub body: Value,
}

impl Seen {
    fn s(&self, pointer: &str) -> String {
        self.body.pointer(pointer).and_then(Value::as_str).unwrap_or("").to_owned()
    }

    fn principal(&self) -> String {
        let (sub, agency) = (self.s("/principal/sub"), self.s("/principal/agency"));
        if sub.is_empty() { "-".into() } else { format!("{sub}@{agency}") }
    }

    fn list(&self, key: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .body
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Access counted by agency, indicator, action and decision.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AccessRow {
    pub agency: String,
    pub action: String,
    pub indicator: String,
    pub decision: String,
    pub count: u64,
}

/// One refused request.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Denial {
    pub seq: u64,
    pub time: String,
    pub principal: String,
    pub action: String,
    pub indicator: String,
    pub decision: String,
    pub reason: String,
}

/// An unusual pattern.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// `burst`, `differencing` or `off_hours`.
    pub kind: &'static str,
    pub principal: String,
    /// Seqs of the entries involved.
    pub seqs: Vec<u64>,
    pub detail: String,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub entries: usize,
    pub access: Vec<AccessRow>,
    pub denials: Vec<Denial>,
    pub findings: Vec<Finding>,
}

/// Thresholds of the pattern rules.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// A burst is more than this many queries by one principal within one minute.
    pub burst: usize,
}

/// Default of [`Rules::burst`].
pub const DEFAULT_BURST: usize = 20;

/// Most entries one report reads from the ledger (a wider range is refused: narrow it).
pub const MAX_REPORT_ENTRIES: usize = 100_000;

/// Builds the report over the entries of `ledger` with a time in `from_ms..to_ms`, read page by page
/// through the ledger's time index (blocking: run it off the async threads).
pub fn from_ledger(
    ledger: &crate::ledger::AuditChain,
    from_ms: u64,
    to_ms: u64,
    rules: Rules,
) -> Result<Report, crate::ledger::LedgerError> {
    let filter = shuzhu_ledger::Filter { from_ms: Some(from_ms), to_ms: Some(to_ms), ..Default::default() };
    let mut entries = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = ledger.ledger().list(&filter, cursor.as_deref(), 1000)?;
        for stored in &page.entries {
            let e = ledger.listed(stored)?;
            entries.push(Seen {
                seq: e.seq,
                time_ms: e.time_ms,
                body: serde_json::from_str(&e.body).unwrap_or(Value::Null),
            });
        }
        if entries.len() > MAX_REPORT_ENTRIES {
            return Err(crate::ledger::LedgerError::InvalidRequest(
                "the range holds more than 100000 entries; ask for a shorter one",
            ));
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(build(&entries, rules))
}

/// Builds the report.
pub fn build(entries: &[Seen], rules: Rules) -> Report {
    let mut access: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
    let mut denials = Vec::new();
    for e in entries {
        let key = (e.s("/principal/agency"), e.s("/action"), e.s("/indicator"), e.s("/decision"));
        *access.entry(key).or_default() += 1;
        let decision = e.s("/decision");
        if decision != "allow" && !decision.is_empty() {
            denials.push(Denial {
                seq: e.seq,
                time: e.s("/time"),
                principal: e.principal(),
                action: e.s("/action"),
                indicator: e.s("/indicator"),
                decision,
                reason: e.s("/reason"),
            });
        }
    }
    let mut findings = bursts(entries, rules.burst);
    findings.extend(differencing(entries));
    findings.extend(off_hours(entries));
    Report {
        entries: entries.len(),
        access: access
            .into_iter()
            .map(|((agency, action, indicator, decision), count)| AccessRow {
                agency,
                action,
                indicator,
                decision,
                count,
            })
            .collect(),
        denials,
        findings,
    }
}

fn queries(entries: &[Seen]) -> impl Iterator<Item = &Seen> {
    entries.iter().filter(|e| e.s("/action") == "query")
}

/// More than `limit` queries by one principal within some 60 s window. Every query in such a
/// window is marked; overlapping windows merge into one finding per burst.
fn bursts(entries: &[Seen], limit: usize) -> Vec<Finding> {
    let mut by: BTreeMap<String, Vec<&Seen>> = BTreeMap::new();
    for e in queries(entries) {
        by.entry(e.principal()).or_default().push(e);
    }
    let mut out = Vec::new();
    for (principal, mut list) in by {
        list.sort_by_key(|e| (e.time_ms, e.seq));
        let mut marked = vec![false; list.len()];
        let mut start = 0;
        for i in 0..list.len() {
            while list[i].time_ms.saturating_sub(list[start].time_ms) >= 60_000 {
                start += 1;
            }
            if i + 1 - start > limit {
                marked[start..=i].iter_mut().for_each(|m| *m = true);
            }
        }
        let mut run: Vec<u64> = Vec::new();
        for (i, e) in list.iter().enumerate() {
            let joins = marked[i] && i > 0 && marked[i - 1] && e.time_ms - list[i - 1].time_ms < 60_000;
            if !joins && !run.is_empty() {
                out.push(burst(&principal, std::mem::take(&mut run), limit));
            }
            if marked[i] {
                run.push(e.seq);
            }
        }
        if !run.is_empty() {
            out.push(burst(&principal, run, limit));
        }
    }
    out
}

fn burst(principal: &str, seqs: Vec<u64>, limit: usize) -> Finding {
    Finding {
        kind: "burst",
        principal: principal.to_owned(),
        detail: format!("{} queries, more than {limit} within one minute", seqs.len()),
        seqs,
    }
}

/// `YYYYMM..YYYYMM` (any separators) as month numbers.
fn period(text: &str) -> Option<(i64, i64)> {
    let (a, b) = text.split_once("..")?;
    let month = |s: &str| -> Option<i64> {
        let d: String = s.chars().filter(char::is_ascii_digit).collect();
        let n: i64 = d.parse().ok()?;
        (d.len() == 6).then_some((n / 100) * 12 + n % 100 - 1)
    };
    Some((month(a)?, month(b)?))
}

/// `dim=v1|v2` filters as a map of value sets.
fn filter_sets(filters: &[String]) -> BTreeMap<String, Vec<String>> {
    filters
        .iter()
        .map(|f| {
            let (d, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
            let mut vals: Vec<String> = v.split('|').filter(|s| !s.is_empty()).map(str::to_owned).collect();
            vals.sort();
            (d.to_owned(), vals)
        })
        .collect()
}

/// A query's period and filters, parsed once per entry (the pairwise search below compares every pair
/// of one principal's similar queries, so parsing inside it would repeat for each pair).
struct Shape<'a> {
    seen: &'a Seen,
    period: Option<(i64, i64)>,
    filters: BTreeMap<String, Vec<String>>,
}

impl<'a> Shape<'a> {
    fn of(seen: &'a Seen) -> Self {
        Shape { seen, period: period(&seen.s("/period")), filters: filter_sets(&seen.list("filters")) }
    }
}

/// How two queries over the same indicator and dimensions differ by one step, if they do.
fn one_step(a: &Shape<'_>, b: &Shape<'_>) -> Option<String> {
    let (pa, pb) = (a.period?, b.period?);
    let (fa, fb) = (&a.filters, &b.filters);
    if fa == fb {
        let step = (pa.0 == pb.0 && (pa.1 - pb.1).abs() == 1) || (pa.1 == pb.1 && (pa.0 - pb.0).abs() == 1);
        return step
            .then(|| format!("periods {} and {} differ by one month", a.seen.s("/period"), b.seen.s("/period")));
    }
    if pa != pb {
        return None;
    }
    let dims: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    let differing: Vec<&&String> = dims.iter().filter(|d| fa.get(**d) != fb.get(**d)).collect();
    let [dim] = differing.as_slice() else { return None };
    let empty = Vec::new();
    let (va, vb) = (fa.get(**dim).unwrap_or(&empty), fb.get(**dim).unwrap_or(&empty));
    let diff = va.iter().filter(|v| !vb.contains(v)).count() + vb.iter().filter(|v| !va.contains(v)).count();
    (diff == 1).then(|| format!("filters on {dim} differ by one value"))
}

/// Allowed queries by one principal, same indicator and dimensions, differing by one step.
fn differencing(entries: &[Seen]) -> Vec<Finding> {
    let mut groups: BTreeMap<(String, String, Vec<String>), Vec<Shape<'_>>> = BTreeMap::new();
    for e in queries(entries).filter(|e| e.s("/decision") == "allow") {
        groups.entry((e.principal(), e.s("/indicator"), e.list("group_by"))).or_default().push(Shape::of(e));
    }
    let mut out = Vec::new();
    for ((principal, indicator, _), list) in groups {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if let Some(how) = one_step(a, b) {
                    out.push(Finding {
                        kind: "differencing",
                        principal: principal.clone(),
                        seqs: vec![a.seen.seq, b.seen.seq],
                        detail: format!("{indicator}: {how}"),
                    });
                }
            }
        }
    }
    out
}

/// Hour of the day in China time (UTC+8).
pub fn china_hour(time_ms: u64) -> u32 {
    ((time_ms / 3_600_000 + 8) % 24) as u32
}

/// Requests outside office hours, one finding per principal.
fn off_hours(entries: &[Seen]) -> Vec<Finding> {
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.body.get("principal").is_some_and(|p| !p.is_null())) {
        if !OFFICE_HOURS.contains(&china_hour(e.time_ms)) {
            by.entry(e.principal()).or_default().push(e.seq);
        }
    }
    by.into_iter()
        .map(|(principal, seqs)| Finding {
            kind: "off_hours",
            principal,
            detail: format!("{} requests outside 08:00-20:00 China time", seqs.len()),
            seqs,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(seq: u64, time_ms: u64, sub: &str, period: &str, filters: &[&str], decision: &str) -> Seen {
        Seen {
            seq,
            time_ms,
            body: serde_json::json!({"time": "t", "principal": {"sub": sub, "agency": "ag"}, "action": "query",
                "indicator": "closed", "group_by": ["region"], "period": period, "filters": filters,
                "decision": decision, "reason": if decision == "allow" { "" } else { "rule: no grant" }}),
        }
    }

    // 2026-12-01 02:00 UTC is 10:00 in China: office hours.
    const DAY: u64 = 1_796_090_400_000;

    #[test]
    fn flags_a_burst_only_above_the_threshold() {
        let mut e: Vec<Seen> =
            (0..6).map(|i| q(i + 1, DAY + i * 5_000, "u1", "202401..202406", &[], "allow")).collect();
        let r = build(&e, Rules { burst: 6 });
        assert!(r.findings.iter().all(|f| f.kind != "burst"), "{:?}", r.findings);
        e.push(q(7, DAY + 40_000, "u1", "202401..202406", &[], "allow"));
        // Overlapping windows (the one ending at 8 starts at 2) make one burst.
        e.push(q(8, DAY + 62_000, "u1", "202401..202406", &[], "allow"));
        e.push(q(9, DAY + 300_000, "u1", "202401..202406", &[], "allow"));
        e.push(q(10, DAY + 1_000, "u2", "202401..202406", &[], "allow"));
        let r = build(&e, Rules { burst: 6 });
        let b: Vec<&Finding> = r.findings.iter().filter(|f| f.kind == "burst").collect();
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].seqs, (1..=8).collect::<Vec<u64>>());
        assert_eq!(b[0].principal, "u1@ag");
    }

    #[test]
    fn flags_differencing_by_one_month_or_one_filter_value() {
        let e = vec![
            q(1, DAY, "u1", "202401..202406", &[], "allow"),
            q(2, DAY + 1, "u1", "202401..202407", &[], "allow"),
            q(3, DAY + 2, "u2", "202401..202406", &["court=a|b"], "allow"),
            q(4, DAY + 3, "u2", "202401..202406", &["court=a"], "allow"),
            q(5, DAY + 4, "u3", "202401..202406", &[], "allow"),
            q(6, DAY + 5, "u3", "202401..202409", &[], "allow"),
            q(7, DAY + 6, "u1", "202312..202407", &[], "deny"),
        ];
        let r = build(&e, Rules { burst: 100 });
        let d: Vec<Vec<u64>> = r.findings.iter().filter(|f| f.kind == "differencing").map(|f| f.seqs.clone()).collect();
        assert_eq!(d, vec![vec![1, 2], vec![3, 4]]);
        assert_eq!(r.denials.len(), 1);
        assert_eq!(r.denials[0].reason, "rule: no grant");
    }

    #[test]
    fn off_hours_use_china_time() {
        assert_eq!(china_hour(DAY), 10);
        // 13:00 UTC is 21:00 in China.
        let e = vec![
            q(1, DAY, "u1", "202401..202406", &[], "allow"),
            q(2, DAY + 11 * 3_600_000, "u1", "202401..202406", &[], "allow"),
        ];
        let r = build(&e, Rules { burst: 100 });
        let o: Vec<&Finding> = r.findings.iter().filter(|f| f.kind == "off_hours").collect();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].seqs, vec![2]);
        assert_eq!(
            r.access,
            vec![AccessRow {
                agency: "ag".into(),
                action: "query".into(),
                indicator: "closed".into(),
                decision: "allow".into(),
                count: 2
            }]
        );
    }
}
