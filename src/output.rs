//! How answers are shown: an aligned table for people (Chinese characters count double width), JSON
//! for programs, CSV for spreadsheets.

use serde_json::Value;
use shuzhu_proto::v1 as pb;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table.
    Table,
    /// JSON document.
    Json,
    /// CSV with a header row.
    Csv,
}

/// The JSON form of an answer (the contract `shuzhu query --format json` prints): the gateway's
/// `POST /v1/query` answer, from the same function.
pub fn answer_json(r: &pb::QueryResponse) -> Value {
    shuzhu_gateway::http::answer_json(r)
}

/// Whether the answer is partial: a node asked did not answer (its rows may be missing altogether).
pub fn is_partial(r: &pb::QueryResponse) -> bool {
    r.coverage.as_ref().is_some_and(|c| c.answered < c.asked || !c.missing.is_empty())
}

/// One line saying the answer is partial and which nodes are missing, for people and for CSV readers.
pub fn partial_line(r: &pb::QueryResponse) -> Option<String> {
    if !is_partial(r) {
        return None;
    }
    let cov = r.coverage.clone().unwrap_or_default();
    let missing: Vec<String> = cov.missing.iter().map(|m| format!("{} ({})", m.node, m.reason)).collect();
    Some(format!(
        "partial answer: nodes answered {}/{}; missing {}; rows of what they serve may be absent",
        cov.answered,
        cov.asked,
        if missing.is_empty() { "-".to_string() } else { missing.join(", ") }
    ))
}

/// Display width of `s` in a terminal (CJK and full-width characters take two columns).
pub fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// Renders rows of cells as an aligned table with a header and a rule.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(width(c));
        }
    }
    let line = |cells: &[String]| {
        cells.iter().zip(&widths).map(|(c, w)| pad(c, *w)).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    let mut out = line(header);
    out.push('\n');
    out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// The value of a row as a person reads it.
pub fn show_value(kind: &str, row: &pb::Row, threshold: u32) -> String {
    match row.status.as_str() {
        "suppressed" => format!("<{threshold} (suppressed)"),
        "partial" if kind == "per_population" => "partial (node or population figure missing)".into(),
        "partial" => "partial (node missing)".into(),
        "no_baseline" => "n/a (no baseline)".into(),
        _ => match (row.value, kind) {
            (None, _) => "n/a (0 of 0)".into(),
            (Some(v), "ratio") => format!("{:.2}%", v * 100.0),
            (Some(v), "deviation") => format!("{:+.2}%", v * 100.0),
            (Some(v), "per_population") => format!("{v:.2}"),
            (Some(v), "mean") => format!("{v:.1}"),
            (Some(v), _) => format!("{v:.0}"),
        },
    }
}

/// A warning level as a person reads it: `红 red`, `黄 yellow`, `绿 green` (empty when none).
pub fn show_level(level: &str) -> String {
    shuzhu_policy::deviation::Level::parse(level).map(|l| format!("{} {}", l.zh(), l.as_str())).unwrap_or_default()
}

/// Whether the answer is of a deviation indicator (its rows carry a warning level).
fn has_levels(r: &pb::QueryResponse) -> bool {
    shuzhu_policy::indicator::indicator(&r.indicator).is_some_and(|i| i.kind.as_str() == "deviation")
        || r.rows.iter().any(|row| !row.level.is_empty())
}

/// Renders an answer as a table, with coverage and provenance underneath. A deviation's table has a
/// level column; its numerator is the count in P and its denominator the baseline years' sum.
pub fn answer_table(r: &pb::QueryResponse, group_by: &[String], kind: &str) -> String {
    let levels = has_levels(r);
    let mut header: Vec<String> = group_by.to_vec();
    header.extend(["value".to_string(), "numerator".into(), "denominator".into()]);
    if levels {
        header.push("level".into());
    }
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| {
            let mut cells: Vec<String> =
                group_by.iter().map(|d| row.group.get(d).cloned().unwrap_or_default()).collect();
            cells.push(show_value(kind, row, r.threshold));
            cells.push(row.numerator.map(|n| n.to_string()).unwrap_or_default());
            cells.push(row.denominator.map(|n| n.to_string()).unwrap_or_default());
            if levels {
                cells.push(show_level(&row.level));
            }
            cells
        })
        .collect();
    let mut out = table(&header, &rows);
    if rows.is_empty() {
        out.push_str("(no rows: no case falls in this period)\n");
    }
    let cov = r.coverage.clone().unwrap_or_default();
    out.push_str(&format!(
        "nodes answered {}/{}; data until {}; policy {}; audit #{}; cells under {} contributors suppressed\n",
        cov.answered,
        cov.asked,
        if r.data_until.is_empty() { "-" } else { &r.data_until },
        r.policy_version,
        r.audit_seq,
        r.threshold
    ));
    for m in &cov.missing {
        out.push_str(&format!("missing node {}: {}\n", m.node, m.reason));
    }
    if let Some(line) = partial_line(r) {
        out.push_str(&format!("PARTIAL ANSWER — {line}\n"));
    }
    out
}

/// Column headers of CSV answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Headers {
    /// `region,year,value,status,…`
    En,
    /// `地区,年度,指标值,状态,…`, with statuses in words.
    Zh,
}

fn zh_header(name: &str) -> String {
    match name {
        "region" => "地区代码",
        "region_name" => "地区",
        "court" => "法院",
        "year" => "年度",
        "quarter" => "季度",
        "month" => "月份",
        "division" => "审判领域",
        "instance" => "审级",
        "type_code" => "案件类型",
        "cause" => "案由",
        "dispute_type" => "纠纷类型",
        "value" => "指标值",
        "status" => "状态",
        "numerator" => "分子",
        "denominator" => "分母",
        "level" => "预警等级",
        "coverage" => "覆盖",
        other => other,
    }
    .to_string()
}

fn zh_status(status: &str, threshold: u32) -> String {
    match status {
        "ok" => "正常".into(),
        "suppressed" => format!("已抑制（涉及少于 {threshold} 件，或可据此推算出少于 {threshold} 件）"),
        "partial" => "不完整（有节点未答复）".into(),
        "no_baseline" => "无基期".into(),
        other => other.into(),
    }
}

/// The name of a region code the catalogue of counties knows (a district, a city `xxxx00` or a
/// province `xx0000`), or empty.
pub fn region_name(code: &str) -> String {
    for (c, province, city, county) in shuzhu_policy::pii::counties::COUNTIES {
        if *c == code {
            return format!("{city}{county}");
        }
        if code.len() == 6 && code.ends_with("0000") && c.starts_with(&code[..2]) {
            return province.to_string();
        }
        if code.len() == 6 && code.ends_with("00") && c.starts_with(&code[..4]) {
            return city.to_string();
        }
    }
    String::new()
}

/// Renders an answer as CSV with English headers (see [`answer_csv_for`]).
pub fn answer_csv(r: &pb::QueryResponse, group_by: &[String]) -> String {
    answer_csv_for(r, group_by, Headers::En)
}

/// Renders an answer as CSV. Grouped by region, a `region_name` column follows the codes. A partial
/// answer has a last column `coverage` (`partial` on every row); every answer ends with a comment
/// line on coverage: `# partial answer: …` naming the missing nodes, or `# nodes answered n/n`.
pub fn answer_csv_for(r: &pb::QueryResponse, group_by: &[String], headers: Headers) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let levels = has_levels(r);
    let partial = partial_line(r);
    let mut header: Vec<String> = Vec::new();
    for d in group_by {
        header.push(d.clone());
        if d == "region" {
            header.push("region_name".into());
        }
    }
    header.extend(["value".into(), "status".into(), "numerator".into(), "denominator".into()]);
    if levels {
        header.push("level".into());
    }
    if partial.is_some() {
        header.push("coverage".into());
    }
    if headers == Headers::Zh {
        header = header.iter().map(|h| zh_header(h)).collect();
    }
    let _ = w.write_record(&header);
    for row in &r.rows {
        let mut cells: Vec<String> = Vec::new();
        for d in group_by {
            let v = row.group.get(d).cloned().unwrap_or_default();
            if d == "region" {
                let name = region_name(&v);
                cells.push(v);
                cells.push(name);
            } else {
                cells.push(v);
            }
        }
        cells.push(row.value.map(|v| v.to_string()).unwrap_or_default());
        cells.push(match headers {
            Headers::En => row.status.clone(),
            Headers::Zh => zh_status(&row.status, r.threshold),
        });
        cells.push(row.numerator.map(|n| n.to_string()).unwrap_or_default());
        cells.push(row.denominator.map(|n| n.to_string()).unwrap_or_default());
        if levels {
            cells.push(row.level.clone());
        }
        if partial.is_some() {
            cells.push("partial".into());
        }
        let _ = w.write_record(&cells);
    }
    let mut out = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
    match partial {
        Some(line) => out.push_str(&format!("# {}\n", line.replace(['\n', '\r'], " "))),
        None => {
            let cov = r.coverage.clone().unwrap_or_default();
            out.push_str(&format!("# nodes answered {}/{}\n", cov.answered, cov.asked));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deviation_rows_show_a_signed_value_and_a_level() {
        let row = |status: &str, value: Option<f64>, level: &str| pb::Row {
            status: status.into(),
            value,
            numerator: value.map(|_| 131),
            denominator: value.map(|_| 300),
            level: level.into(),
            ..Default::default()
        };
        assert_eq!(show_value("deviation", &row("ok", Some(0.31), "red"), 10), "+31.00%");
        assert_eq!(show_value("deviation", &row("ok", Some(-0.4), "red"), 10), "-40.00%");
        assert_eq!(show_value("deviation", &row("no_baseline", None, ""), 10), "n/a (no baseline)");
        assert_eq!(show_level("red"), "红 red");
        assert_eq!(show_level(""), "");
        let resp = pb::QueryResponse {
            indicator: "filing_deviation".into(),
            rows: vec![row("ok", Some(0.31), "red"), row("suppressed", None, "")],
            threshold: 10,
            ..Default::default()
        };
        let table = answer_table(&resp, &[], "deviation");
        assert!(table.lines().next().unwrap().ends_with("level"), "{table}");
        assert!(table.lines().nth(2).unwrap().ends_with("131        300          红 red"), "{table}");
        let csv = answer_csv(&resp, &[]);
        assert!(csv.starts_with("value,status,numerator,denominator,level\n0.31,ok,131,300,red\n"), "{csv}");
        assert_eq!(answer_json(&resp)["rows"][0]["level"], "red");
        assert!(answer_json(&resp)["rows"][1].get("level").is_none());
    }

    #[test]
    fn chinese_counts_double() {
        assert_eq!(width("结案率"), 6);
        assert_eq!(width("ab"), 2);
        let t = table(&["案由".into(), "n".into()], &[vec!["盗窃罪".into(), "12".into()]]);
        assert!(t.contains("盗窃罪  12"), "{t}");
    }
}
