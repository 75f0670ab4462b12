//! How `shuzhu audit report` shows the access report: aligned tables or CSV. The report itself (and
//! its rules) lives in the gateway, which also serves it at `GET /v1/audit/report`.

pub(crate) use shuzhu_gateway::http::report::*;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// The report as CSV: one section per table, each with its own header row.
pub(crate) fn to_csv(r: &Report) -> String {
    let mut out = String::from("section,agency,action,indicator,decision,count\n");
    for a in &r.access {
        let row = ["access", &a.agency, &a.action, &a.indicator, &a.decision, &a.count.to_string()];
        out += &(row.map(csv_field).join(",") + "\n");
    }
    out += "\nsection,seq,time,principal,action,indicator,decision,reason\n";
    for d in &r.denials {
        let row =
            ["denial", &d.seq.to_string(), &d.time, &d.principal, &d.action, &d.indicator, &d.decision, &d.reason];
        out += &(row.map(csv_field).join(",") + "\n");
    }
    out += "\nsection,kind,principal,seqs,detail\n";
    for f in &r.findings {
        let seqs = f.seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
        let row = ["finding", f.kind, &f.principal, &seqs, &f.detail];
        out += &(row.map(csv_field).join(",") + "\n");
    }
    out
}

/// The report as aligned tables.
pub(crate) fn to_table(r: &Report) -> String {
    let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut out = format!("{} entries\n\nAccess\n", r.entries);
    let rows: Vec<Vec<String>> = r
        .access
        .iter()
        .map(|a| vec![a.agency.clone(), a.action.clone(), a.indicator.clone(), a.decision.clone(), a.count.to_string()])
        .collect();
    out += &crate::output::table(&h(&["agency", "action", "indicator", "decision", "count"]), &rows);
    out += "\nDenials\n";
    let rows: Vec<Vec<String>> = r
        .denials
        .iter()
        .map(|d| {
            vec![
                d.seq.to_string(),
                d.time.clone(),
                d.principal.clone(),
                d.indicator.clone(),
                d.decision.clone(),
                d.reason.clone(),
            ]
        })
        .collect();
    out += &crate::output::table(&h(&["seq", "time", "principal", "indicator", "decision", "reason"]), &rows);
    out += "\nUnusual patterns\n";
    let rows: Vec<Vec<String>> = r
        .findings
        .iter()
        .map(|f| {
            let seqs = f.seqs.iter().take(12).map(u64::to_string).collect::<Vec<_>>().join(" ");
            vec![f.kind.to_owned(), f.principal.clone(), seqs, f.detail.clone()]
        })
        .collect();
    out += &crate::output::table(&h(&["kind", "principal", "seqs", "detail"]), &rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-01 02:00 UTC is 10:00 in China: office hours.
    const DAY: u64 = 1_796_090_400_000;

    #[test]
    fn csv_quotes_fields() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
        let r = build(
            &[Seen {
                seq: 1,
                time_ms: DAY,
                body: serde_json::json!({"time": "t", "principal": {"sub": "u1", "agency": "ag"}, "action": "query",
                "indicator": "closed", "group_by": ["region"], "period": "202401..202406", "filters": [],
                "decision": "deny", "reason": "rule: no grant"}),
            }],
            Rules { burst: 5 },
        );
        assert!(to_csv(&r).contains("denial,1,t,u1@ag,query,closed,deny,rule: no grant"));
    }
}
