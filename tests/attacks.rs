//! Differencing and tracker attacks against a real federation of its own (three court nodes, a
//! gateway with the release ledger on its default setting: pooled across agencies).
//!
//! Each attack is chosen from the generated data so that, without the defences, the attacker's
//! subtraction WOULD isolate 1..k−1 cases (asserted first, against the CSV ground truth); then the
//! queries are sent as a user would, and the test computes everything the attacker can derive from
//! what came back and asserts that none of it is a small non-zero count: each sequence is refused
//! (PERMISSION_DENIED, reason "differencing") or answers only safe values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use shuzhu::federation::{self, Prepared, Running};
use shuzhu_proto::v1 as pb;

const K: i64 = 10;

struct Fx {
    rt: tokio::runtime::Runtime,
    prepared: Prepared,
    running: Running,
    cases: Vec<Case>,
}

#[derive(Clone)]
struct Case {
    region: String,
    court: String,
    type_code: String,
    cause: String,
    filed: u32,
    closed: Option<u32>,
    on_time: bool,
    /// Day numbers of `filed_on` and `closed_on` (stock counts depend on days).
    filed_day: i32,
    closed_day: Option<i32>,
    closure: String,
    appealed: bool,
}

fn fx() -> &'static Fx {
    static FX: OnceLock<Fx> = OnceLock::new();
    FX.get_or_init(|| {
        let dir = crate::util::fixture_dir("shuzhu-attacks-");
        let data = dir.join("data");
        let cfg = shuzhu_gen::GenConfig { courts: 3, cases_per_court: 3000, seed: 29, ..Default::default() };
        shuzhu_gen::generate(&data, &cfg).unwrap();
        let specs: Vec<_> =
            federation::discover(&data).unwrap().into_iter().filter(|s| s.id.starts_with("court-")).collect();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let prepared = federation::prepare(&dir.join("fed"), &specs, &mut |_| {}).unwrap();
        let running = rt.block_on(federation::start(&prepared)).unwrap();
        let mut cases = Vec::new();
        for s in &specs {
            let mut r = csv::Reader::from_path(data.join(&s.id).join("cases.csv")).unwrap();
            let h = r.headers().unwrap().clone();
            let col = |n: &str| h.iter().position(|x| x == n).unwrap();
            let ym = |d: &str| d[..4].parse::<u32>().unwrap() * 100 + d[5..7].parse::<u32>().unwrap();
            for rec in r.records() {
                let rec = rec.unwrap();
                let closed = (!rec[col("closed_on")].is_empty()).then(|| rec[col("closed_on")].to_string());
                cases.push(Case {
                    region: rec[col("region_code")].into(),
                    court: rec[col("court_code")].into(),
                    type_code: rec[col("type_code")].into(),
                    cause: rec[col("cause")].into(),
                    filed: ym(&rec[col("filed_on")]),
                    closed: closed.as_deref().map(ym),
                    on_time: closed.as_deref().is_some_and(|c| c <= &rec[col("deadline_on")]),
                    filed_day: day(&rec[col("filed_on")]),
                    closed_day: closed.as_deref().map(day),
                    closure: rec[col("closure_method")].into(),
                    appealed: &rec[col("appealed")] == "true",
                });
            }
        }
        Fx { rt, prepared, running, cases }
    })
}

fn day(text: &str) -> i32 {
    shuzhu_policy::period::parse_day(text).unwrap()
}

/// The last day of month `yyyymm`.
fn month_end(yyyymm: u32) -> i32 {
    let next = if yyyymm % 100 == 12 { (yyyymm / 100 + 1) * 100 + 1 } else { yyyymm + 1 };
    shuzhu_policy::period::days_from_civil((next / 100) as i32, next % 100, 1) - 1
}

fn token(name: &str) -> String {
    shuzhu::client::read_token(&fx().prepared.tokens[name]).unwrap()
}

fn small(n: i64) -> bool {
    (1..K).contains(&n)
}

/// What a user sees.
#[derive(Debug)]
enum Seen {
    /// PERMISSION_DENIED for differencing.
    Refused,
    /// The rows.
    Rows(Vec<pb::Row>),
}

struct Q<'a> {
    ind: &'a str,
    group_by: &'a [&'a str],
    from: u32,
    to: u32,
    filters: Vec<(&'a str, Vec<String>)>,
}

fn q<'a>(ind: &'a str, from: u32, to: u32) -> Q<'a> {
    Q { ind, group_by: &[], from, to, filters: Vec::new() }
}

impl<'a> Q<'a> {
    fn by(mut self, g: &'a [&'a str]) -> Self {
        self.group_by = g;
        self
    }
    fn filter(mut self, d: &'a str, vals: &[String]) -> Self {
        self.filters.push((d, vals.to_vec()));
        self
    }
}

fn ask_as(who: &str, q: &Q<'_>) -> Seen {
    let purpose = if who == "manager" { "审判管理" } else { "诉源治理" };
    let req = pb::QueryRequest {
        indicator: q.ind.into(),
        group_by: q.group_by.iter().map(|s| s.to_string()).collect(),
        period: Some(pb::Period { from_month: q.from, to_month: q.to }),
        filters: q
            .filters
            .iter()
            .map(|(d, v)| pb::DimensionFilter { dimension: d.to_string(), values: v.clone() })
            .collect(),
        purpose: purpose.into(),
        legal_basis: String::new(),
    };
    let f = fx();
    let t = token(who);
    let out = f.rt.block_on(async {
        let ch = shuzhu::client::connect(&f.running.gateway_url, &f.prepared.pki.ca_cert).await.unwrap();
        shuzhu::client::query(ch, &t, req).await
    });
    match out {
        Ok(resp) => {
            for r in &resp.rows {
                match r.status.as_str() {
                    "ok" => {
                        if let Some(v) = r.value.filter(|_| r.numerator.is_none()) {
                            assert!(!small(v as i64), "a shown count is small: {r:?}");
                        }
                    }
                    "suppressed" => assert!(r.value.is_none() && r.numerator.is_none() && r.denominator.is_none()),
                    other => panic!("unexpected status {other}"),
                }
            }
            Seen::Rows(resp.rows)
        }
        Err(s) => {
            assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
            assert!(s.message().contains("differencing"), "{}", s.message());
            Seen::Refused
        }
    }
}

fn ask(q: &Q<'_>) -> Seen {
    ask_as("requester", q)
}

/// The single (ungrouped) count a user saw: a number, or nothing (refused or suppressed).
fn total(s: &Seen) -> Option<i64> {
    match s {
        Seen::Refused => None,
        Seen::Rows(rows) if rows.is_empty() => Some(0),
        Seen::Rows(rows) => rows[0].value.filter(|_| rows[0].status == "ok").map(|v| v as i64),
    }
}

/// The shown counts of a grouped answer by the value of `dim`.
fn by(s: &Seen, dim: &str) -> Option<BTreeMap<String, Option<i64>>> {
    match s {
        Seen::Refused => None,
        Seen::Rows(rows) => Some(
            rows.iter()
                .map(|r| (r.group[dim].clone(), r.value.filter(|_| r.status == "ok").map(|v| v as i64)))
                .collect(),
        ),
    }
}

/// The attacker subtracts two numbers; nothing small may come out.
fn assert_safe_difference(a: Option<i64>, b: Option<i64>, what: &str) {
    if let (Some(a), Some(b)) = (a, b) {
        assert!(!small((a - b).abs()), "{what}: the attacker derived {}", (a - b).abs());
    }
}

/// A total minus every shown part: nothing small may come out.
fn assert_safe_remainder(total: Option<i64>, parts: &BTreeMap<String, Option<i64>>, what: &str) {
    if let Some(t) = total {
        let shown: i64 = parts.values().flatten().sum();
        assert!(!small(t - shown), "{what}: the attacker derived {}", t - shown);
    }
}

fn filed(pred: impl Fn(&Case) -> bool, from: u32, to: u32) -> i64 {
    fx().cases.iter().filter(|c| c.filed >= from && c.filed <= to && pred(c)).count() as i64
}

fn values(f: impl Fn(&Case) -> String) -> Vec<String> {
    fx().cases.iter().map(f).collect::<BTreeSet<_>>().into_iter().collect()
}

fn months(year: u32) -> impl Iterator<Item = u32> {
    (1..=12).map(move |m| year * 100 + m)
}

const YEARS: [u32; 6] = [2019, 2020, 2021, 2022, 2023, 2024];

/// Every (value, year, first month) of a three-month window inside one year.
fn windows(v: String) -> Vec<(String, u32, u32)> {
    YEARS.into_iter().flat_map(|y| (1..=10).map(move |m| (y, m))).map(|(y, m)| (v.clone(), y, m)).collect()
}

/// The first cause and year where a three-month window's last month adds 1..k−1 cases to a shown
/// two-month count.
#[test]
fn period_tracker_jan_to_mar_minus_jan_to_feb() {
    let (cause, y, m) = values(|c| c.cause.clone())
        .into_iter()
        .flat_map(windows)
        .find(|(c, y, m)| {
            let a = filed(|x| &x.cause == c, y * 100 + m, y * 100 + m + 2);
            let b = filed(|x| &x.cause == c, y * 100 + m, y * 100 + m + 1);
            b >= K && small(a - b)
        })
        .expect("the data has a period tracker");
    let c = [cause];
    let a = ask(&q("filed", y * 100 + m, y * 100 + m + 2).filter("cause", &c));
    let b = ask(&q("filed", y * 100 + m, y * 100 + m + 1).filter("cause", &c));
    assert_safe_difference(total(&a), total(&b), "period tracker");
    assert!(matches!(b, Seen::Refused) || total(&a).is_none(), "{a:?} / {b:?}");
}

#[test]
fn region_complement() {
    let regions = values(|c| c.region.clone());
    let (r, y) = regions
        .iter()
        .flat_map(|r| YEARS.map(|y| (r.clone(), y)))
        .find(|(r, y)| {
            let t = filed(|x| x.type_code == "行初", y * 100 + 1, y * 100 + 12);
            let in_r = filed(|x| x.type_code == "行初" && &x.region == r, y * 100 + 1, y * 100 + 12);
            t - in_r >= K && small(in_r)
        })
        .expect("a region with few administrative cases");
    let others: Vec<String> = regions.iter().filter(|x| **x != r).cloned().collect();
    let tc = ["行初".to_string()];
    let all = ask(&q("filed", y * 100 + 1, y * 100 + 12).filter("type_code", &tc));
    let rest = ask(&q("filed", y * 100 + 1, y * 100 + 12).filter("type_code", &tc).filter("region", &others));
    assert_safe_difference(total(&all), total(&rest), "region complement");
}

#[test]
fn cause_complement() {
    // A set of causes and the same set without one rare cause (filters take at most 64 values).
    let mut causes = values(|c| c.cause.clone());
    causes.sort_by_key(|c| std::cmp::Reverse(fx().cases.iter().filter(|x| &x.cause == c).count()));
    let region = values(|c| c.region.clone())[0].clone();
    let (cause, mth) = causes[20..]
        .iter()
        .flat_map(|c| YEARS.into_iter().flat_map(months).map(|m| (c.clone(), m)).collect::<Vec<_>>())
        .find(|(c, m)| small(filed(|x| &x.cause == c && x.region == region, *m, *m)))
        .expect("a rare cause");
    let mut set: Vec<String> = causes[..20].to_vec();
    let rest = set.clone();
    set.push(cause);
    let reg = [region];
    let all = ask(&q("filed", mth, mth).filter("region", &reg).filter("cause", &set));
    let minus = ask(&q("filed", mth, mth).filter("region", &reg).filter("cause", &rest));
    assert_safe_difference(total(&all), total(&minus), "cause complement");
}

#[test]
fn type_code_filter_complement() {
    let types = values(|c| c.type_code.clone());
    let (t, mth) = types
        .iter()
        .flat_map(|t| YEARS.into_iter().flat_map(months).map(move |m| (t.clone(), m)))
        .filter(|(_, m)| m % 100 == 6)
        .find(|(t, m)| small(filed(|x| &x.type_code == t, *m, *m)))
        .expect("a rare case type");
    let rest: Vec<String> = types.iter().filter(|x| **x != t).cloned().collect();
    let all = ask(&q("filed", mth, mth));
    let minus = ask(&q("filed", mth, mth).filter("type_code", &rest));
    assert_safe_difference(total(&all), total(&minus), "type_code complement");
}

#[test]
fn total_minus_siblings_in_one_answer_and_its_margin() {
    // By region for a cause and quarter where exactly one region is small; the margin comes from an
    // ungrouped query.
    let regions = values(|c| c.region.clone());
    let (cause, from) = values(|c| c.cause.clone())
        .into_iter()
        .flat_map(|c| {
            YEARS
                .into_iter()
                .flat_map(|y| (0..4).map(move |i| y * 100 + 3 * i + 1))
                .map(|f| (c.clone(), f))
                .collect::<Vec<_>>()
        })
        .find(|(c, f)| {
            let n: Vec<i64> = regions.iter().map(|r| filed(|x| &x.cause == c && &x.region == r, *f, f + 2)).collect();
            n.iter().filter(|v| small(**v)).count() == 1
                && n.iter().any(|v| *v >= K)
                && n.iter().all(|v| small(*v) || *v == 0 || *v >= K)
        })
        .expect("a cause and quarter with exactly one small region");
    let cs = [cause];
    let grouped = ask(&q("filed", from, from + 2).by(&["region"]).filter("cause", &cs));
    let margin = ask(&q("filed", from, from + 2).filter("cause", &cs));
    if let Some(parts) = by(&grouped, "region") {
        assert_safe_remainder(total(&margin), &parts, "margin minus shown regions");
    }
}

#[test]
fn total_minus_siblings_released_one_by_one() {
    let regions = values(|c| c.region.clone());
    let (a, b, c) = (regions[0].clone(), regions[1].clone(), regions[2].clone());
    let (cause, y) = values(|x| x.cause.clone())
        .into_iter()
        .flat_map(|cs| YEARS.map(|y| (cs.clone(), y)))
        .find(|(cs, y)| {
            let n = |r: &str| filed(|x| &x.cause == cs && x.region == r, y * 100 + 1, y * 100 + 12);
            n(&a) >= K && n(&b) >= K && small(n(&c))
        })
        .expect("a cause with one small region");
    let cs = [cause];
    let (from, to) = (y * 100 + 1, y * 100 + 12);
    let sa = ask(&q("filed", from, to).filter("cause", &cs).filter("region", std::slice::from_ref(&a)));
    let sb = ask(&q("filed", from, to).filter("cause", &cs).filter("region", std::slice::from_ref(&b)));
    let all = ask(&q("filed", from, to).filter("cause", &cs));
    if let (Some(x), Some(y2), Some(t)) = (total(&sa), total(&sb), total(&all)) {
        assert!(!small(t - x - y2), "total minus released siblings gave {}", t - x - y2);
    }
}

#[test]
fn rate_over_a_group_of_one() {
    // closure rate and on-time rate for a cause and month with 1..k−1 closed cases: suppressed.
    let (cause, mth) = values(|c| c.cause.clone())
        .into_iter()
        .flat_map(|c| YEARS.into_iter().flat_map(months).map(|m| (c.clone(), m)).collect::<Vec<_>>())
        .find(|(c, m)| fx().cases.iter().filter(|x| &x.cause == c && x.closed == Some(*m)).count() == 1)
        .expect("a group of one");
    let cs = [cause];
    for ind in ["on_time_rate", "avg_trial_days"] {
        match ask(&q(ind, mth, mth).filter("cause", &cs)) {
            Seen::Refused => {}
            Seen::Rows(rows) => {
                assert_eq!(rows.len(), 1);
                assert_eq!(rows[0].status, "suppressed", "{ind}: {rows:?}");
            }
        }
    }
}

#[test]
fn ratio_whose_numerator_and_denominator_differ_by_one() {
    // A year and cause where all closed cases but 1..k−1 were on time: the rate is suppressed.
    let (cause, y) = values(|c| c.cause.clone())
        .into_iter()
        .flat_map(|c| YEARS.map(|y| (c.clone(), y)))
        .find(|(c, y)| {
            let closed: Vec<&Case> =
                fx().cases.iter().filter(|x| &x.cause == c && x.closed.is_some_and(|m| m / 100 == *y)).collect();
            let late = closed.iter().filter(|x| !x.on_time).count() as i64;
            closed.len() as i64 >= K && small(late)
        })
        .expect("an almost-always-on-time cause");
    let cs = [cause];
    match ask(&q("on_time_rate", y * 100 + 1, y * 100 + 12).filter("cause", &cs)) {
        Seen::Refused => {}
        Seen::Rows(rows) => {
            assert_eq!(rows[0].status, "suppressed", "{rows:?}");
            assert!(rows[0].numerator.is_none() && rows[0].denominator.is_none());
        }
    }
}

#[test]
fn repeated_identical_queries_give_identical_answers() {
    // Averaging cannot help: the same question always gets the same answer (never fresh noise).
    let qq = q("filed", 202104, 202106).by(&["region"]);
    let first = format!("{:?}", ask(&qq));
    for _ in 0..3 {
        assert_eq!(format!("{:?}", ask(&qq)), first);
    }
}

#[test]
fn two_agencies_colluding_on_a_period_tracker() {
    let (court, y, m) = values(|c| c.court.clone())
        .into_iter()
        .flat_map(windows)
        .find(|(c, y, m)| {
            let p = |x: &Case| &x.court == c && x.type_code == "执";
            let a = filed(p, y * 100 + m, y * 100 + m + 2);
            let b = filed(p, y * 100 + m, y * 100 + m + 1);
            b >= K && small(a - b)
        })
        .expect("a court period tracker");
    // The analyst cannot filter by court; the region of a court's cases is the court's district.
    let region = fx().cases.iter().find(|x| x.court == court).map(|x| x.region.clone()).unwrap();
    let tc = ["执".to_string()];
    let a = ask_as(
        "manager",
        &q("filed", y * 100 + m, y * 100 + m + 2)
            .filter("type_code", &tc)
            .filter("region", std::slice::from_ref(&region)),
    );
    let b = ask_as(
        "requester",
        &q("filed", y * 100 + m, y * 100 + m + 1)
            .filter("type_code", &tc)
            .filter("region", std::slice::from_ref(&region)),
    );
    assert_safe_difference(total(&a), total(&b), "colluding agencies");
}

#[test]
fn grouping_versus_the_ungrouped_total() {
    // By division in one region and month where exactly one division is small: the ungrouped total
    // minus the shown divisions would be that division.
    let division = |x: &Case| shuzhu_policy::schema::division_of(&x.type_code).unwrap_or("").to_string();
    let divisions = values(division);
    let (region, mth) = values(|c| c.region.clone())
        .into_iter()
        .flat_map(|r| YEARS.into_iter().flat_map(months).map(|m| (r.clone(), m)).collect::<Vec<_>>())
        .find(|(r, m)| {
            let n: Vec<i64> =
                divisions.iter().map(|d| filed(|x| &x.region == r && &division(x) == d, *m, *m)).collect();
            n.iter().filter(|c| small(**c)).count() == 1
                && n.iter().any(|c| *c >= K)
                && n.iter().all(|c| small(*c) || *c == 0 || *c >= K)
        })
        .expect("a region and month with exactly one small division");
    let reg = [region];
    let grouped = ask(&q("filed", mth, mth).by(&["division"]).filter("region", &reg));
    let all = ask(&q("filed", mth, mth).filter("region", &reg));
    if let Some(parts) = by(&grouped, "division") {
        assert_safe_remainder(total(&all), &parts, "ungrouped total minus divisions");
    }
}

#[test]
fn quarter_versus_its_months() {
    // A cause by month over a quarter, then the quarter.
    let (cause, from) = values(|c| c.cause.clone())
        .into_iter()
        .flat_map(|c| {
            YEARS
                .into_iter()
                .flat_map(|y| (0..4).map(move |i| y * 100 + 3 * i + 1))
                .map(|f| (c.clone(), f))
                .collect::<Vec<_>>()
        })
        .find(|(c, f)| {
            let ms: Vec<i64> = (0..3).map(|i| filed(|x| &x.cause == c, f + i, f + i)).collect();
            ms.iter().filter(|n| small(**n)).count() == 1 && ms.iter().filter(|n| **n >= K).count() == 2
        })
        .expect("a quarter with one small month");
    let cs = [cause];
    let monthly = ask(&q("filed", from, from + 2).by(&["month"]).filter("cause", &cs));
    let quarter = ask(&q("filed", from, from + 2).by(&["quarter"]).filter("cause", &cs));
    if let Some(parts) = by(&monthly, "month") {
        assert_safe_remainder(total(&quarter), &parts, "quarter minus months");
    }
}

#[test]
fn year_versus_its_quarters() {
    let region = values(|c| c.region.clone())[0].clone();
    let (t, y) = values(|c| c.type_code.clone())
        .into_iter()
        .flat_map(|t| YEARS.map(|y| (t.clone(), y)))
        .find(|(t, y)| {
            let p = |x: &Case| &x.type_code == t && x.region == region;
            let qs: Vec<i64> = (0..4).map(|i| filed(p, y * 100 + 3 * i + 1, y * 100 + 3 * i + 3)).collect();
            qs.iter().filter(|n| small(**n)).count() == 1 && qs.iter().filter(|n| **n >= K).count() == 3
        })
        .expect("a year with one small quarter");
    let tc = [t];
    let reg = [region];
    let (from, to) = (y * 100 + 1, y * 100 + 12);
    let quarters = ask(&q("filed", from, to).by(&["quarter"]).filter("type_code", &tc).filter("region", &reg));
    let year = ask(&q("filed", from, to).filter("type_code", &tc).filter("region", &reg));
    if let Some(parts) = by(&quarters, "quarter") {
        assert_safe_remainder(total(&year), &parts, "year minus quarters");
    }
}

#[test]
fn type_codes_versus_their_division() {
    // 刑事 = 刑初 + 刑终: the division total minus the shown first instances, over a quarter.
    let from = YEARS
        .into_iter()
        .flat_map(|y| (0..4).map(move |i| y * 100 + 3 * i + 1))
        .find(|f| {
            filed(|x| x.type_code == "刑初", *f, f + 2) >= K && small(filed(|x| x.type_code == "刑终", *f, f + 2))
        })
        .expect("a quarter with few criminal appeals");
    let division = ask(&q("filed", from, from + 2).filter("division", &["刑事".to_string()]));
    let one = ask(&q("filed", from, from + 2).filter("type_code", &["刑初".to_string()]));
    assert_safe_difference(total(&division), total(&one), "刑事 minus 刑初");
}

#[test]
fn region_set_versus_the_same_set_minus_one() {
    let regions = values(|c| c.region.clone());
    let (cause, y) = values(|c| c.cause.clone())
        .into_iter()
        .flat_map(|c| YEARS.map(|y| (c.clone(), y)))
        .find(|(c, y)| {
            let n = |r: &str| filed(|x| &x.cause == c && x.region == r, y * 100 + 1, y * 100 + 6);
            n(&regions[0]) + n(&regions[1]) >= K && small(n(&regions[2]))
        })
        .expect("a half-year with one small region");
    let cs = [cause];
    let (from, to) = (y * 100 + 1, y * 100 + 6);
    let three = ask(&q("filed", from, to).filter("cause", &cs).filter("region", &regions[..3]));
    let two = ask(&q("filed", from, to).filter("cause", &cs).filter("region", &regions[..2]));
    assert_safe_difference(total(&three), total(&two), "region set minus one");
}

#[test]
fn mean_duration_tracker_reveals_no_single_case() {
    // avg_trial_days over m..m+2 vs m..m+1 where 1..k−1 cases closed in the last month: the sum of
    // days of those cases would follow by subtraction.
    let (cause, y, m) = values(|c| c.cause.clone())
        .into_iter()
        .flat_map(windows)
        .find(|(c, y, m)| {
            let closed = |from: u32, to: u32| {
                fx().cases.iter().filter(|x| &x.cause == c && x.closed.is_some_and(|cm| cm >= from && cm <= to)).count()
                    as i64
            };
            let a = closed(y * 100 + m, y * 100 + m + 2);
            let b = closed(y * 100 + m, y * 100 + m + 1);
            b >= K && small(a - b)
        })
        .expect("a duration tracker");
    let cs = [cause];
    let a = ask(&q("avg_trial_days", y * 100 + m, y * 100 + m + 2).filter("cause", &cs));
    let b = ask(&q("avg_trial_days", y * 100 + m, y * 100 + m + 1).filter("cause", &cs));
    let den = |s: &Seen| match s {
        Seen::Rows(r) if r.len() == 1 && r[0].status == "ok" => r[0].denominator,
        _ => None,
    };
    assert_safe_difference(den(&a), den(&b), "mean duration tracker");
}

#[test]
fn instance_versus_type_codes() {
    // 一审 = 民初 + 刑初 + 行初, in one region and month.
    let region = values(|c| c.region.clone())[1].clone();
    let first = |x: &Case| x.region == region && (x.type_code == "刑初" || x.type_code == "行初");
    let mth = YEARS
        .into_iter()
        .flat_map(months)
        .find(|m| small(filed(first, *m, *m)) && filed(|x| x.region == region && x.type_code == "民初", *m, *m) >= K)
        .expect("a month with few criminal and administrative first instances");
    let reg = [region.clone()];
    let inst = ask(&q("filed", mth, mth).filter("region", &reg).filter("instance", &["一审".to_string()]));
    let civil = ask(&q("filed", mth, mth).filter("region", &reg).filter("type_code", &["民初".to_string()]));
    assert_safe_difference(total(&inst), total(&civil), "一审 minus 民初");
}

#[test]
fn refusals_name_the_reason_and_the_ledger_survives_a_restart() {
    // The period tracker again, on a fresh cause-free setting: the refusal says why.
    let (y, m) = YEARS
        .into_iter()
        .flat_map(|y| (1..=10).map(move |m| (y, m)))
        .find(|(y, m)| {
            let p = |x: &Case| x.type_code == "执恢";
            let a = filed(p, y * 100 + m, y * 100 + m + 2);
            let b = filed(p, y * 100 + m, y * 100 + m + 1);
            b >= K && small(a - b)
        })
        .expect("an enforcement-resumption tracker");
    let tc = ["执恢".to_string()];
    let a = ask(&q("filed", y * 100 + m, y * 100 + m + 2).filter("type_code", &tc));
    let b = ask(&q("filed", y * 100 + m, y * 100 + m + 1).filter("type_code", &tc));
    assert_safe_difference(total(&a), total(&b), "type tracker");
    // The ledger file holds what was released.
    let file = fx().prepared.dir.join("ledger").join(shuzhu_gateway::releases::RELEASES_FILE_NAME);
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("cases.filed"));
    let reopened = shuzhu_gateway::releases::ReleaseBook::open(&fx().prepared.dir.join("ledger"), true).unwrap();
    assert!(!reopened.is_empty("anyone"));
}

#[test]
fn months_released_one_by_one_then_the_quarter() {
    // Two months asked separately (each shown), then the quarter: the third month would follow.
    let (t, y, m) = values(|c| c.cause.clone())
        .into_iter()
        .flat_map(windows)
        .find(|(t, y, m)| {
            let n = |i: u32| filed(|x| &x.cause == t, y * 100 + m + i, y * 100 + m + i);
            n(0) >= K && n(1) >= K && small(n(2))
        })
        .expect("three months whose last is small");
    let tc = [t];
    let from = y * 100 + m;
    let first = ask(&q("filed", from, from).filter("cause", &tc));
    let second = ask(&q("filed", from + 1, from + 1).filter("cause", &tc));
    let quarter = ask(&q("filed", from, from + 2).filter("cause", &tc));
    if let (Some(a), Some(b), Some(t)) = (total(&first), total(&second), total(&quarter)) {
        assert!(!small(t - a - b), "quarter minus two months gave {}", t - a - b);
    }
}

#[test]
fn a_two_way_table_and_all_its_margins() {
    // Region x division for one month, then each one-way margin and the grand total: no hidden
    // cell or group of hidden cells in any line comes out small.
    let mth = 202108;
    let two = ask(&q("filed", mth, mth).by(&["region", "division"]));
    let by_region = ask(&q("filed", mth, mth).by(&["region"]));
    let by_division = ask(&q("filed", mth, mth).by(&["division"]));
    let division = |x: &Case| shuzhu_policy::schema::division_of(&x.type_code).unwrap_or("").to_string();
    assert!(
        values(division).iter().any(|d| small(filed(|x| &division(x) == d, mth, mth))),
        "the month has a small division"
    );
    let Seen::Rows(rows) = &two else { return };
    for (line_dim, margin) in [("region", &by_region), ("division", &by_division)] {
        let Some(margins) = by(margin, line_dim) else { continue };
        for (value, m) in margins {
            let Some(m) = m else { continue };
            let shown: i64 = rows
                .iter()
                .filter(|r| r.group[line_dim] == value && r.status == "ok")
                .map(|r| r.value.unwrap() as i64)
                .sum();
            assert!(!small(m - shown), "{line_dim} {value}: margin minus shown cells gave {}", m - shown);
        }
    }
}

#[test]
fn rate_numerators_across_periods() {
    // closure_rate over m..m+2 vs m..m+1 where 1..k−1 cases closed in the last month: the closed
    // count (the numerator) of those cases would follow by subtraction.
    let (t, y, m) = values(|c| c.cause.clone())
        .into_iter()
        .flat_map(windows)
        .find(|(t, y, m)| {
            let closed = |from: u32, to: u32| {
                fx().cases.iter().filter(|x| &x.cause == t && x.closed.is_some_and(|c| c >= from && c <= to)).count()
                    as i64
            };
            let active = |from: u32, to: u32| {
                fx().cases
                    .iter()
                    .filter(|x| &x.cause == t && x.filed <= to && x.closed.is_none_or(|c| c >= from))
                    .count() as i64
            };
            let (a, b) = (closed(y * 100 + m, y * 100 + m + 2), closed(y * 100 + m, y * 100 + m + 1));
            let (ad, bd) = (active(y * 100 + m, y * 100 + m + 2), active(y * 100 + m, y * 100 + m + 1));
            // Both rates would be shown on their own.
            [a, b, ad - a, bd - b].iter().all(|v| *v >= K) && small(a - b)
        })
        .expect("a rate tracker");
    let cs = [t];
    let a = ask(&q("closure_rate", y * 100 + m, y * 100 + m + 2).filter("cause", &cs));
    let b = ask(&q("closure_rate", y * 100 + m, y * 100 + m + 1).filter("cause", &cs));
    let part = |s: &Seen| match s {
        Seen::Rows(r) if r.len() == 1 && r[0].status == "ok" => (r[0].numerator, r[0].denominator),
        _ => (None, None),
    };
    let ((an, ad), (bn, bd)) = (part(&a), part(&b));
    assert_safe_difference(an, bn, "rate numerators across periods");
    assert_safe_difference(ad, bd, "rate denominators across periods");
}

#[test]
fn a_court_versus_its_region() {
    // The court management office can filter by court and by region: a region over three months
    // minus its (only) court over two months.
    let (court, y, m) = values(|c| c.court.clone())
        .into_iter()
        .flat_map(windows)
        .find(|(c, y, m)| {
            let p = |x: &Case| &x.court == c && x.cause == "民间借贷纠纷";
            let a = filed(p, y * 100 + m, y * 100 + m + 2);
            let b = filed(p, y * 100 + m, y * 100 + m + 1);
            b >= K && small(a - b)
        })
        .expect("a court tracker");
    let region = fx().cases.iter().find(|x| x.court == court).map(|x| x.region.clone()).unwrap();
    let tc = ["民间借贷纠纷".to_string()];
    let a = ask_as(
        "manager",
        &q("filed", y * 100 + m, y * 100 + m + 2).filter("cause", &tc).filter("region", std::slice::from_ref(&region)),
    );
    let b = ask_as(
        "manager",
        &q("filed", y * 100 + m, y * 100 + m + 1).filter("cause", &tc).filter("court", std::slice::from_ref(&court)),
    );
    assert_safe_difference(total(&a), total(&b), "region minus its court");
}

/// A ratio's numerator and denominator as shown (both `None` when refused or suppressed).
fn parts(s: &Seen) -> (Option<i64>, Option<i64>) {
    match s {
        Seen::Rows(r) if r.len() == 1 && r[0].status == "ok" => (r[0].numerator, r[0].denominator),
        _ => (None, None),
    }
}

fn closed_in(pred: impl Fn(&Case) -> bool, from: u32, to: u32) -> i64 {
    fx().cases.iter().filter(|c| c.closed.is_some_and(|m| m >= from && m <= to) && pred(c)).count() as i64
}

/// Issue 11, finding 1: differencing across measures. `judgment_rate` filtered by a region and
/// instance 一审 shows first-instance judgments (民初, 刑初, 行初) as its numerator; `appeal_rate`
/// filtered by the region and 民初|刑初 shows the 民初 and 刑初 judgments as its denominator: their
/// difference is the region's 行初 judgments, a count under k.
#[test]
fn differencing_across_measures_judgment_rate_versus_appeal_rate() {
    let regions = values(|c| c.region.clone());
    let first = |x: &Case| ["民初", "刑初", "行初"].contains(&x.type_code.as_str());
    let judged = |x: &Case| first(x) && x.closure == "判决";
    let (region, y) = regions
        .iter()
        .flat_map(|r| YEARS.map(|y| (r.clone(), y)))
        .find(|(r, y)| {
            let (from, to) = (y * 100 + 1, y * 100 + 12);
            let inr = |x: &Case| &x.region == r;
            let num = closed_in(|x| inr(x) && judged(x), from, to);
            let den = closed_in(|x| inr(x) && first(x), from, to);
            let admin = closed_in(|x| inr(x) && judged(x) && x.type_code == "行初", from, to);
            let two = closed_in(|x| inr(x) && judged(x) && x.type_code != "行初", from, to);
            let appealed = fx()
                .cases
                .iter()
                .filter(|x| x.closed.is_some_and(|m| m >= from && m <= to))
                .filter(|x| inr(x) && judged(x) && x.type_code != "行初" && x.appealed)
                .count() as i64;
            num >= K && den - num >= K && two - appealed >= K && appealed >= K && small(admin)
        })
        .expect("a region and year with few 行初 judgments");
    let reg = [region];
    let (from, to) = (y * 100 + 1, y * 100 + 12);
    let a = ask(&q("judgment_rate", from, to).filter("region", &reg).filter("instance", &["一审".to_string()]));
    let b =
        ask(&q("appeal_rate", from, to).filter("region", &reg).filter("type_code", &["民初".into(), "刑初".into()]));
    let ((an, _), (_, bd)) = (parts(&a), parts(&b));
    assert_safe_difference(an, bd, "judgments of 一审 minus judgments of 民初|刑初");
}

/// Issue 11, finding 2: a court's cell and its region's cell are the same records when the court is
/// the only one serving the region. `long_pending_ratio` for the region with a type-code filter of
/// every type but two, against the court unfiltered: the difference is the open cases of those two
/// types, under k.
#[test]
fn a_court_cell_equals_its_region_cell_long_pending_ratio() {
    let types = values(|c| c.type_code.clone());
    let open_at = |x: &Case, end: i32| x.filed_day <= end && x.closed_day.is_none_or(|c| c > end);
    let old = |x: &Case, end: i32| open_at(x, end) && end - x.filed_day > 365;
    let found = values(|c| c.court.clone())
        .into_iter()
        .flat_map(|c| YEARS.into_iter().flat_map(months).map(move |m| (c.clone(), m)).collect::<Vec<_>>())
        .find_map(|(court, m)| {
            let end = month_end(m);
            let here: Vec<&Case> = fx().cases.iter().filter(|x| x.court == court && open_at(x, end)).collect();
            let n_old = here.iter().filter(|x| old(x, end)).count() as i64;
            if n_old < K || here.len() as i64 - n_old < K {
                return None;
            }
            // Two types whose open cases (of every age) are few but not none, leaving a shown rate.
            let count = |t: &str| here.iter().filter(|x| x.type_code == t).count() as i64;
            let count_old = |t: &str| here.iter().filter(|x| x.type_code == t && old(x, end)).count() as i64;
            for (i, t1) in types.iter().enumerate() {
                for t2 in &types[i + 1..] {
                    let gone = count(t1) + count(t2);
                    let gone_old = count_old(t1) + count_old(t2);
                    let rest = here.len() as i64 - gone;
                    let rest_old = n_old - gone_old;
                    if small(gone) && rest_old >= K && rest - rest_old >= K {
                        return Some((court.clone(), m, t1.clone(), t2.clone()));
                    }
                }
            }
            None
        });
    let (court, m, t1, t2) = found.expect("a court and month with two rare open case types");
    let region = fx().cases.iter().find(|x| x.court == court).map(|x| x.region.clone()).unwrap();
    let rest: Vec<String> = types.iter().filter(|t| **t != t1 && **t != t2).cloned().collect();
    let a = ask_as(
        "manager",
        &q("long_pending_ratio", m, m).filter("region", std::slice::from_ref(&region)).filter("type_code", &rest),
    );
    let b = ask_as("manager", &q("long_pending_ratio", m, m).filter("court", std::slice::from_ref(&court)));
    let ((_, ad), (_, bd)) = (parts(&a), parts(&b));
    assert_safe_difference(ad, bd, "court minus its region without two types");
}
