//! Every indicator of the skeleton, grouped two ways over several periods, equals a brute-force
//! computation straight from the generated CSV files; every cell the primary disclosure rules name is
//! suppressed, and the further (secondary) suppressions leave no small count derivable from a margin.

use std::collections::BTreeMap;

use time::{Date, Month as TMonth, macros::format_description};

use crate::util::{fx, request};

struct Case {
    court: String,
    region: String,
    filed: Date,
    closed: Option<Date>,
    deadline: Date,
    /// 民初.
    civil_first: bool,
    /// Closed by 调解, 准予撤诉 or 按撤诉处理.
    mediated_or_withdrawn: bool,
    /// Closed by 判决.
    judgment: bool,
    /// 民初, 刑初 or 行初.
    first_instance: bool,
    /// 民终, 刑终 or 行终.
    second_instance: bool,
    /// Closed by 改判 or 发回重审.
    revised_remanded: bool,
    /// `appealed` is true.
    appealed: bool,
    /// `online_filed` is true.
    online: bool,
    /// 执 or 执恢.
    enforcement: bool,
    /// `enforce_requested` and `enforce_collected` in fen, when present.
    amounts: [Option<i64>; 2],
}

/// A yuan amount (`1234.5`, `12`) in fen.
fn fen(v: &str) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    let (y, f) = v.split_once('.').unwrap_or((v, ""));
    let f = format!("{f:0<2}");
    Some(y.parse::<i64>().unwrap() * 100 + f[..2].parse::<i64>().unwrap())
}

fn load_cases() -> Vec<Case> {
    let fmt = format_description!("[year]-[month]-[day]");
    let mut out = Vec::new();
    for path in fx().cases_csvs() {
        let mut r = csv::Reader::from_path(path).unwrap();
        let h = r.headers().unwrap().clone();
        let col = |name: &str| h.iter().position(|x| x == name).unwrap();
        let (c_court, c_region, c_filed, c_closed, c_deadline) =
            (col("court_code"), col("region_code"), col("filed_on"), col("closed_on"), col("deadline_on"));
        for rec in r.records() {
            let rec = rec.unwrap();
            out.push(Case {
                court: rec[c_court].to_string(),
                region: rec[c_region].to_string(),
                filed: Date::parse(&rec[c_filed], fmt).unwrap(),
                closed: (!rec[c_closed].is_empty()).then(|| Date::parse(&rec[c_closed], fmt).unwrap()),
                deadline: Date::parse(&rec[c_deadline], fmt).unwrap(),
                civil_first: &rec[col("type_code")] == "民初",
                mediated_or_withdrawn: ["调解", "准予撤诉", "按撤诉处理"].contains(&&rec[col("closure_method")]),
                judgment: &rec[col("closure_method")] == "判决",
                first_instance: ["民初", "刑初", "行初"].contains(&&rec[col("type_code")]),
                second_instance: ["民终", "刑终", "行终"].contains(&&rec[col("type_code")]),
                revised_remanded: ["改判", "发回重审"].contains(&&rec[col("closure_method")]),
                appealed: &rec[col("appealed")] == "true",
                online: &rec[col("online_filed")] == "true",
                enforcement: ["执", "执恢"].contains(&&rec[col("type_code")]),
                amounts: [fen(&rec[col("enforce_requested")]), fen(&rec[col("enforce_collected")])],
            });
        }
    }
    out
}

/// A sub-period: label and first and last day.
struct Sub {
    label: String,
    first: Date,
    last: Date,
}

fn month_first(y: i32, m: u8) -> Date {
    Date::from_calendar_date(y, TMonth::try_from(m).unwrap(), 1).unwrap()
}

fn month_last(y: i32, m: u8) -> Date {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    month_first(ny, nm).previous_day().unwrap()
}

/// Sub-periods of `from..=to` (YYYYMM) for a time dimension (or the whole period).
fn subs(from: u32, to: u32, time_dim: Option<&str>) -> Vec<Sub> {
    let mut months = Vec::new();
    let (mut y, mut m) = ((from / 100) as i32, (from % 100) as u8);
    while (y as u32) * 100 + m as u32 <= to {
        months.push((y, m));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    let mut out: Vec<Sub> = Vec::new();
    for (y, m) in months {
        let label = match time_dim {
            None => "all".to_string(),
            Some("year") => y.to_string(),
            Some("month") => format!("{y:04}-{m:02}"),
            Some("quarter") => format!("{y:04}-Q{}", (m - 1) / 3 + 1),
            Some(other) => panic!("{other}"),
        };
        match out.last_mut() {
            Some(s) if s.label == label => s.last = month_last(y, m),
            _ => out.push(Sub { label, first: month_first(y, m), last: month_last(y, m) }),
        }
    }
    out
}

#[derive(Default, Clone, Copy)]
struct Measures {
    filed: i64,
    closed: i64,
    active: i64,
    on_time: i64,
    days: i64,
    civil_first_closed: i64,
    civil_first_mediated_withdrawn: i64,
    online: i64,
    judgment: i64,
    first_judgment: i64,
    first_judgment_appealed: i64,
    second: i64,
    second_revised_remanded: i64,
    open_end: i64,
    open_end_old: i64,
    /// Σ, contributors and largest single value of enforce_requested and enforce_collected.
    money: [(i64, i64, i64); 2],
}

fn brute(cases: &[Case], dim: &str, time_dim: &str, from: u32, to: u32) -> BTreeMap<(String, String), Measures> {
    let mut out: BTreeMap<(String, String), Measures> = BTreeMap::new();
    for s in subs(from, to, Some(time_dim)) {
        for c in cases {
            let key = (if dim == "region" { c.region.clone() } else { c.court.clone() }, s.label.clone());
            let within = |d: Date| s.first <= d && d <= s.last;
            let mut m = Measures::default();
            if within(c.filed) {
                m.filed = 1;
                m.online = i64::from(c.online);
            }
            if let Some(cl) = c.closed
                && within(cl)
            {
                m.closed = 1;
                m.days = (cl - c.filed).whole_days();
                if cl <= c.deadline {
                    m.on_time = 1;
                }
                if c.civil_first {
                    m.civil_first_closed = 1;
                    m.civil_first_mediated_withdrawn = i64::from(c.mediated_or_withdrawn);
                }
                m.judgment = i64::from(c.judgment);
                m.first_judgment = i64::from(c.first_instance && c.judgment);
                m.first_judgment_appealed = i64::from(c.first_instance && c.judgment && c.appealed);
                m.second = i64::from(c.second_instance);
                m.second_revised_remanded = i64::from(c.second_instance && c.revised_remanded);
                if c.enforcement {
                    for (slot, a) in m.money.iter_mut().zip(c.amounts) {
                        if let Some(a) = a {
                            *slot = (a, 1, a);
                        }
                    }
                }
            }
            if c.filed <= s.last && c.closed.is_none_or(|cl| cl >= s.first) {
                m.active = 1;
            }
            if c.filed <= s.last && c.closed.is_none_or(|cl| cl > s.last) {
                m.open_end = 1;
                m.open_end_old = i64::from((s.last - c.filed).whole_days() > 365);
            }
            if m.filed + m.closed + m.active > 0 {
                let e = out.entry(key).or_default();
                e.filed += m.filed;
                e.closed += m.closed;
                e.active += m.active;
                e.on_time += m.on_time;
                e.days += m.days;
                e.civil_first_closed += m.civil_first_closed;
                e.civil_first_mediated_withdrawn += m.civil_first_mediated_withdrawn;
                e.online += m.online;
                e.judgment += m.judgment;
                e.first_judgment += m.first_judgment;
                e.first_judgment_appealed += m.first_judgment_appealed;
                e.second += m.second;
                e.second_revised_remanded += m.second_revised_remanded;
                e.open_end += m.open_end;
                e.open_end_old += m.open_end_old;
                for (x, y) in e.money.iter_mut().zip(m.money) {
                    *x = (x.0 + y.0, x.1 + y.1, x.2.max(y.2));
                }
            }
        }
    }
    out
}

fn small(n: i64) -> bool {
    (1..10).contains(&n)
}

/// (status, value, numerator, denominator) the rules demand, or None when the engine would not emit
/// the group at all (no measure of this indicator has a contributor).
/// (status, value, numerator, denominator) of one cell.
type Expected = (&'static str, Option<f64>, Option<i64>, Option<i64>);

fn expected(ind: &str, m: &Measures) -> Option<Expected> {
    let ratio = |n: i64, d: i64, subset: bool| {
        if small(d) || small(n) || (subset && small(d - n)) {
            ("suppressed", None, None, None)
        } else {
            ("ok", (d != 0).then(|| n as f64 / d as f64), Some(n), Some(d))
        }
    };
    Some(match ind {
        "filed" | "closed" => {
            let n = if ind == "filed" { m.filed } else { m.closed };
            if n == 0 {
                return None;
            }
            if small(n) { ("suppressed", None, None, None) } else { ("ok", Some(n as f64), None, None) }
        }
        "closure_rate" => {
            if m.closed + m.active == 0 {
                return None;
            }
            ratio(m.closed, m.active, true)
        }
        "on_time_rate" => {
            if m.closed == 0 {
                return None;
            }
            ratio(m.on_time, m.closed, true)
        }
        "avg_trial_days" => {
            if m.closed == 0 {
                return None;
            }
            if small(m.closed) {
                ("suppressed", None, None, None)
            } else {
                ("ok", Some(m.days as f64 / m.closed as f64), Some(m.days), Some(m.closed))
            }
        }
        "mediation_withdrawal_rate" => {
            if m.civil_first_closed == 0 {
                return None;
            }
            ratio(m.civil_first_mediated_withdrawn, m.civil_first_closed, true)
        }
        "close_to_file_ratio" => {
            if m.closed + m.filed == 0 {
                return None;
            }
            ratio(m.closed, m.filed, false)
        }
        "judgment_rate" => {
            if m.closed == 0 {
                return None;
            }
            ratio(m.judgment, m.closed, true)
        }
        "appeal_rate" => {
            if m.first_judgment == 0 {
                return None;
            }
            ratio(m.first_judgment_appealed, m.first_judgment, true)
        }
        "revise_remand_rate" => {
            if m.second == 0 {
                return None;
            }
            ratio(m.second_revised_remanded, m.second, true)
        }
        "online_filing_rate" => {
            if m.filed == 0 {
                return None;
            }
            ratio(m.online, m.filed, true)
        }
        "long_pending_ratio" => {
            if m.open_end == 0 {
                return None;
            }
            ratio(m.open_end_old, m.open_end, true)
        }
        "enforcement_recovery_rate" => {
            let [(req, req_n, req_max), (col, col_n, col_max)] = m.money;
            if req_n + col_n == 0 {
                return None;
            }
            let dominated = |sum: i64, max: i64| sum > 0 && i128::from(max) * 100 > i128::from(sum) * 85;
            if small(req_n) || small(col_n) || dominated(req, req_max) || dominated(col, col_max) {
                ("suppressed", None, None, None)
            } else {
                ("ok", (req != 0).then(|| col as f64 / req as f64), Some(col), Some(req))
            }
        }
        other => panic!("{other}"),
    })
}

/// Compares one answer with the brute force; `None` when the gateway refused it as a differencing
/// risk (answers of indicators that share a measure but hide different cells can together isolate a
/// small group, and the release ledger refuses the later one).
fn check(ind: &str, dim: &str, time_dim: &str, from: u32, to: u32, cases: &[Case]) -> Option<(usize, usize)> {
    // Enforcement amounts are L3: only the court managers' grant reaches them.
    let (token, purpose) = if dim == "court" || ind == "enforcement_recovery_rate" {
        ("manager", "审判管理")
    } else {
        ("requester", "诉源治理")
    };
    let resp = match fx().query(&fx().token(token), request(ind, &[dim, time_dim], from, to, purpose)) {
        Ok(resp) => resp,
        Err(s) if s.code() == tonic::Code::PermissionDenied && s.message().starts_with("differencing:") => return None,
        Err(s) => panic!("{ind} by {dim},{time_dim}: {s:?}"),
    };
    let coverage = resp.coverage.clone().unwrap();
    assert_eq!((coverage.asked, coverage.answered), (3, 3), "{ind}: every court node answers");
    let want: BTreeMap<(String, String), _> = brute(cases, dim, time_dim, from, to)
        .iter()
        .filter_map(|(k, m)| expected(ind, m).map(|e| (k.clone(), e)))
        .collect();
    let got: BTreeMap<(String, String), _> = resp
        .rows
        .iter()
        .map(|r| {
            (
                (r.group[dim].clone(), r.group[time_dim].clone()),
                (r.status.as_str(), r.value, r.numerator, r.denominator),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{ind} by {dim},{time_dim} {from}..{to}: groups differ");
    for (k, w) in &want {
        let g = got.get(k).unwrap_or_else(|| panic!("{ind} {k:?} missing from the answer"));
        if w.0 == "suppressed" {
            assert_eq!((g.0, g.1, g.2, g.3), ("suppressed", None, None, None), "{ind} {k:?}: primary rule");
            continue;
        }
        if g.0 == "suppressed" {
            // Secondary suppression; checked line by line below.
            assert_eq!((g.1, g.2, g.3), (None, None, None), "{ind} {k:?}");
            continue;
        }
        assert_eq!((g.0, g.2, g.3), (w.0, w.2, w.3), "{ind} {k:?}");
        match (g.1, w.1) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{ind} {k:?}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{ind} {k:?}"),
        }
    }
    // Secondary suppression, modelled by its rule rather than its choices: in every line (one group
    // value fixed, the other free) the hidden cells' protected counts sum to 0, at least k, or the
    // whole line's (a margin that is itself small); and a line never hides exactly one non-empty cell
    // while showing another non-empty one.
    let truth = brute(cases, dim, time_dim, from, to);
    let protected = |m: &Measures| -> Vec<i64> {
        match ind {
            "filed" => vec![m.filed],
            "closed" | "avg_trial_days" => vec![m.closed],
            "closure_rate" => vec![m.closed, m.active, m.active - m.closed],
            "on_time_rate" => vec![m.on_time, m.closed, m.closed - m.on_time],
            "mediation_withdrawal_rate" => vec![
                m.civil_first_mediated_withdrawn,
                m.civil_first_closed,
                m.civil_first_closed - m.civil_first_mediated_withdrawn,
            ],
            "close_to_file_ratio" => vec![m.closed, m.filed],
            "judgment_rate" => vec![m.judgment, m.closed, m.closed - m.judgment],
            "appeal_rate" => {
                vec![m.first_judgment_appealed, m.first_judgment, m.first_judgment - m.first_judgment_appealed]
            }
            "revise_remand_rate" => {
                vec![m.second_revised_remanded, m.second, m.second - m.second_revised_remanded]
            }
            "online_filing_rate" => vec![m.online, m.filed, m.filed - m.online],
            "long_pending_ratio" => vec![m.open_end_old, m.open_end, m.open_end - m.open_end_old],
            "enforcement_recovery_rate" => vec![m.money[1].1, m.money[0].1],
            other => panic!("{other}"),
        }
    };
    // Months are also protected within their quarter and their year, quarters within their year (totals
    // other queries give).
    let sub_lines: &[fn(&str) -> String] = if time_dim == "month" {
        &[
            |_| String::new(),
            |m| m[..4].to_string(),
            |m| format!("{}-Q{}", &m[..4], (m[5..7].parse::<u32>().unwrap() - 1) / 3),
        ]
    } else if time_dim == "quarter" {
        &[|_| String::new(), |q| q[..4].to_string()]
    } else {
        &[|_| String::new()]
    };
    for (side, parent) in
        std::iter::once((1, (|_| String::new()) as fn(&str) -> String)).chain(sub_lines.iter().map(|p| (0, *p)))
    {
        let mut lines: BTreeMap<(String, String), Vec<&(String, String)>> = BTreeMap::new();
        for k in got.keys() {
            let line = if side == 0 { (k.0.clone(), parent(&k.1)) } else { (k.1.clone(), String::new()) };
            lines.entry(line).or_default().push(k);
        }
        for line in lines.values() {
            let hidden: Vec<&&(String, String)> = line.iter().filter(|k| got[**k].0 == "suppressed").collect();
            let nonzero = |k: &(String, String)| protected(&truth[k]).iter().any(|&c| c > 0);
            if hidden.len() == 1 && nonzero(hidden[0]) {
                assert!(!line.iter().any(|k| got[*k].0 == "ok" && nonzero(k)), "{ind} {line:?}: one hidden cell");
            }
            for j in 0..protected(&Measures::default()).len() {
                let sum: i64 = hidden.iter().map(|k| protected(&truth[**k])[j]).sum();
                let total: i64 = line.iter().map(|k| protected(&truth[*k])[j]).sum();
                assert!(!small(sum) || sum == total, "{ind} {line:?}: hidden cells sum to {sum}");
            }
        }
    }
    let suppressed = got.values().filter(|g| g.0 == "suppressed").count();
    Some((want.len(), suppressed))
}

#[test]
fn every_indicator_equals_brute_force_by_region_year_and_court_month() {
    let cases = load_cases();
    let mut cells = 0;
    let mut suppressed = 0;
    let mut refused = 0;
    for ind in ["filed", "closed", "closure_rate", "on_time_rate", "avg_trial_days", "mediation_withdrawal_rate"] {
        for (from, to) in [(202301, 202412), (201901, 202012), (202402, 202403)] {
            for (dim, time_dim) in [("region", "year"), ("court", "month")] {
                match check(ind, dim, time_dim, from, to, &cases) {
                    Some((c, s)) => {
                        cells += c;
                        suppressed += s;
                    }
                    None => refused += 1,
                }
            }
        }
    }
    // Every indicator is compared at least on most of its answers.
    assert!(refused <= 10, "{refused} of 36 answers refused as differencing risks");
    // The data must exercise both sides of the threshold for the comparison to mean something.
    assert!(cells > 500, "only {cells} cells compared");
    assert!(suppressed > 0, "no suppressed cell was exercised");
    assert!(suppressed < cells, "every cell was suppressed");
}

#[test]
fn the_catalogue_indicators_equal_brute_force_by_region_quarter_and_court_month() {
    let cases = load_cases();
    let (mut cells, mut suppressed, mut refused) = (0, 0, 0);
    for ind in [
        "close_to_file_ratio",
        "judgment_rate",
        "appeal_rate",
        "revise_remand_rate",
        "online_filing_rate",
        "long_pending_ratio",
        "enforcement_recovery_rate",
    ] {
        let (mut answered, mut shown) = (0, 0);
        for (from, to) in [(202301, 202412), (200001, 200012), (202402, 202403)] {
            for (dim, time_dim) in [("region", "quarter"), ("court", "month")] {
                match check(ind, dim, time_dim, from, to, &cases) {
                    Some((c, s)) => {
                        cells += c;
                        suppressed += s;
                        shown += c - s;
                        answered += 1;
                    }
                    None => refused += 1,
                }
            }
        }
        assert!(answered >= 3, "{ind}: only {answered} of 6 answers");
        assert!(shown > 0, "{ind}: no value was shown and compared");
    }
    assert!(refused <= 14, "{refused} of 42 answers refused as differencing risks");
    assert!(cells > 300, "only {cells} cells compared");
    assert!(suppressed > 0 && suppressed < cells, "{suppressed} of {cells} suppressed");
}

#[test]
fn a_period_without_data_answers_no_rows() {
    let resp =
        fx().query(&fx().token("requester"), request("closure_rate", &["region"], 200001, 200012, "诉源治理")).unwrap();
    assert!(resp.rows.is_empty(), "{:?}", resp.rows);
    let resp = fx().query(&fx().token("requester"), request("filed", &["region"], 203001, 203012, "诉源治理")).unwrap();
    assert!(resp.rows.is_empty());
}

#[test]
fn small_cells_are_suppressed_and_zero_is_not() {
    // One month by cause: many causes have a handful of cases.
    let resp = fx()
        .query(&fx().token("requester"), request("filed", &["cause", "month"], 202403, 202403, "诉源治理"))
        .unwrap();
    assert!(resp.rows.iter().any(|r| r.status == "suppressed"));
    for r in &resp.rows {
        match r.status.as_str() {
            "suppressed" => assert!(r.value.is_none() && r.numerator.is_none()),
            "ok" => assert!(r.value.unwrap() >= 10.0 || r.value.unwrap() == 0.0, "{r:?}"),
            other => panic!("{other}"),
        }
    }
}

#[test]
fn bad_requests_get_clear_errors() {
    let t = fx().token("requester");
    let cases = [
        (request("closure_rat", &[], 202401, 202412, "诉源治理"), "unknown indicator"),
        (request("filed", &["plaintiff_name"], 202401, 202412, "诉源治理"), "unknown dimension"),
        (request("filed", &[], 202412, 202401, "诉源治理"), "ends"),
        (request("filed", &[], 190001, 999912, "诉源治理"), "year"),
        (request("filed", &[], 202401, 202413, "诉源治理"), "month"),
        (request("filed", &[], 202401, 202412, ""), "purpose"),
        (request("filed", &["region", "region"], 202401, 202412, "诉源治理"), "repeated"),
    ];
    for (req, needle) in cases {
        let err = fx().query(&t, req).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{needle}: {err:?}");
        assert!(err.message().contains(needle), "{needle}: {}", err.message());
    }
}

#[test]
fn grants_decide_courts_and_purposes() {
    let analyst = fx().token("requester");
    let err = fx().query(&analyst, request("closure_rate", &["court"], 202401, 202412, "诉源治理")).unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(err.message().contains("court"), "{}", err.message());
    let err = fx().query(&analyst, request("filed", &["region"], 202401, 202412, "营商环境评估")).unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(err.message().contains("purpose"), "{}", err.message());
    let ok = fx().query(&fx().token("manager"), request("filed", &["court"], 202401, 202412, "审判管理")).unwrap();
    assert_eq!(ok.rows.len(), 3);
}

#[test]
fn the_catalogue_and_health_are_served() {
    let f = fx();
    let (list, health) = f.rt.block_on(async {
        let ch = shuzhu::client::connect(&f.running.gateway_url, &f.prepared.pki.ca_cert).await.unwrap();
        let mut g = shuzhu_proto::v1::gateway_client::GatewayClient::new(ch.clone());
        let req =
            shuzhu::client::authorized(shuzhu_proto::v1::ListIndicatorsRequest {}, &f.token("requester")).unwrap();
        let list = g.list_indicators(req).await.unwrap().into_inner();
        let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
        let health = h
            .check(tonic_health::pb::HealthCheckRequest { service: "shuzhu.v1.Gateway".into() })
            .await
            .unwrap()
            .into_inner();
        (list, health)
    });
    let names: Vec<(&str, &str)> = list.indicators.iter().map(|i| (i.id.as_str(), i.name.as_str())).collect();
    assert!(names.contains(&("closure_rate", "结案率")) && names.len() == 17, "{names:?}");
    for cross in [
        ("litigation_per_10k", "万人成讼率"),
        ("mediation_success_rate", "人民调解成功率"),
        ("judicial_confirmation_rate", "司法确认率"),
    ] {
        assert!(names.contains(&cross), "{cross:?} missing from {names:?}");
    }
    assert_eq!(health.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
}

#[test]
fn regions_roll_up_to_city_and_province() {
    let cases = load_cases();
    for (level, digits) in [("region:city", 4), ("region:province", 2), ("region:district", 6)] {
        let resp = fx()
            .query(&fx().token("requester"), request("closed", &[level, "year"], 202101, 202212, "诉源治理"))
            .unwrap_or_else(|s| panic!("{level}: {s:?}"));
        let mut want: BTreeMap<(String, String), i64> = BTreeMap::new();
        for c in &cases {
            if let Some(cl) = c.closed
                && (2021..=2022).contains(&cl.year())
            {
                *want.entry((format!("{:0<6}", &c.region[..digits]), cl.year().to_string())).or_default() += 1;
            }
        }
        let got: BTreeMap<(String, String), (String, Option<f64>)> = resp
            .rows
            .iter()
            .map(|r| ((r.group["region"].clone(), r.group["year"].clone()), (r.status.clone(), r.value)))
            .collect();
        assert_eq!(got.len(), want.len(), "{level}: {got:?}");
        for (k, n) in &want {
            let (status, value) = &got[k];
            if small(*n) {
                assert_eq!(status, "suppressed", "{level} {k:?}");
            } else if status == "ok" {
                assert_eq!(*value, Some(*n as f64), "{level} {k:?}");
            }
        }
        assert!(got.values().any(|(s, _)| s == "ok"), "{level}: nothing shown");
    }
    let err = fx()
        .query(&fx().token("requester"), request("closed", &["region:county"], 202101, 202212, "诉源治理"))
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("region level"), "{}", err.message());
}
