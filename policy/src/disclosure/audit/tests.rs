// Slices of one cloned release read more plainly than `slice::from_ref` in these tests.
#![allow(clippy::cloned_ref_to_slice_refs)]

use super::*;
use crate::dimension::Dimension;
use crate::disclosure::recordset::{CAUSE, NEVER, Span, TYPE_CODE};
use crate::indicator::measure;

fn topo() -> Topology {
    let c = |s: &str| vec![s.to_string()];
    let (c1, r1, c2, r2) = (c("闽0213"), c("350213"), c("闽0212"), c("350212"));
    Topology::from_nodes([(&c1[..], &r1[..]), (&c2[..], &r2[..])])
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A month as days (months are 30 days here; only order matters).
fn month(m: i32) -> (i32, i32) {
    (m * 30, m * 30 + 29)
}

fn set(measure_id: &str, from: i32, to: i32, dims: &[(Dimension, Vec<String>)]) -> RecordSet {
    let t = topo();
    let (a, _) = month(from);
    let (_, b) = month(to);
    let mut r = RecordSet::of_measure(measure(measure_id).unwrap(), a, b, &t).unwrap();
    for (d, v) in dims {
        r.restrict_dim(*d, v, &t);
    }
    r
}

fn rel(measure_id: &str, from: i32, to: i32, dims: &[(Dimension, Vec<String>)], count: i64) -> Release {
    Release::count(measure_id, set(measure_id, from, to, dims), count)
}

fn check(released: &[Release], new: &[Release], k: u32) -> Result<(), Refusal> {
    let mut l = Ledger::new();
    for r in released {
        l.push(r.clone());
    }
    l.audit(new, k, &topo(), &Limits::default())
}

#[test]
fn finding_1_judgments_of_first_instance_minus_two_of_its_types() {
    // judgment_rate's numerator over 一审 and appeal_rate's denominator over 民初|刑初: 行初 judgments.
    let a = rel("cases.closed_judgment", 0, 11, &[(Dimension::Instance, s(&["一审"]))], 219);
    let b = rel("cases.closed_first_judgment", 0, 11, &[(Dimension::TypeCode, s(&["民初", "刑初"]))], 214);
    assert!(matches!(check(&[a.clone()], &[b.clone()], 10), Err(Refusal::Small { .. })));
    // A difference of k or more is no leak.
    let b = Release { count: 209, ..b };
    assert_eq!(check(&[a], &[b], 10), Ok(()));
}

#[test]
fn finding_2_a_court_and_its_region_without_two_types() {
    let all: Vec<String> =
        crate::schema::TYPE_CODES.iter().filter(|t| !["执", "执恢"].contains(t)).map(|t| t.to_string()).collect();
    let region =
        rel("cases.open_at_end", 5, 5, &[(Dimension::Region, s(&["350213"])), (Dimension::TypeCode, all)], 210);
    let court = rel("cases.open_at_end", 5, 5, &[(Dimension::Court, s(&["闽0213"]))], 214);
    assert!(matches!(check(&[region], &[court], 10), Err(Refusal::Small { .. })));
}

#[test]
fn every_value_of_a_dimension_is_no_filter() {
    let all = s(&["民事", "刑事", "行政", "执行"]);
    let a = rel("cases.filed", 0, 2, &[(Dimension::Division, all), (Dimension::Cause, s(&["x"]))], 40);
    let b = rel("cases.filed", 0, 1, &[(Dimension::Cause, s(&["x"]))], 37);
    assert!(check(&[a], &[b], 10).is_err());
}

#[test]
fn inclusion_exclusion_over_overlapping_periods() {
    // Jan–Mar + Mar–May − Jan–May = March (a 1-month count under k); each pair alone is nested nowhere.
    let a = rel("cases.filed", 0, 2, &[], 30);
    let b = rel("cases.filed", 2, 4, &[], 31);
    let c = rel("cases.filed", 0, 4, &[], 58);
    assert_eq!(check(&[a.clone()], &[b.clone()], 10), Ok(()));
    assert!(check(&[a, b], &[c], 10).is_err());
}

#[test]
fn stock_identity_gives_filings() {
    // active(m) − open_at_end(m−1) = filed(m): 3 filings.
    let active = rel("cases.active", 5, 5, &[], 120);
    let open = rel("cases.open_at_end", 4, 4, &[], 117);
    assert!(check(&[active.clone()], &[open], 10).is_err());
    // Active in m and open at the end of m overlap without nesting: an open case of m−1 still open.
    let open_now = rel("cases.open_at_end", 5, 5, &[], 100);
    assert_eq!(check(&[active], &[open_now], 10), Ok(()));
}

#[test]
fn exact_cover_that_greedy_packing_misses() {
    // Causes {a,b} and {b,c} released, then {c}: {a} = {a,b} − ({b,c} − {c}). No released cell holds
    // another, so no pairwise or packing test relates them.
    let r = |v: &[&str], n| rel("cases.filed", 0, 0, &[(Dimension::Cause, s(v))], n);
    let released = [r(&["a", "b"], 25), r(&["b", "c"], 50)];
    assert!(check(&released, &[r(&["c"], 30)], 10).is_err(), "{{a}} = 25 − (50 − 30) = 5");
    assert_eq!(check(&released, &[r(&["c"], 38)], 10), Ok(()), "{{a}} = 13, {{b}} = 12");
}

#[test]
fn deviation_baseline_against_plain_counts() {
    // The baseline of a deviation is the sum over three years; two of the years released plainly.
    let base = Release {
        measure: "cases.filed".into(),
        terms: (1..=3).map(|y| (1, set("cases.filed", -12 * y, -12 * y, &[]))).collect(),
        count: 65,
        money: None,
    };
    let y1 = rel("cases.filed", -12, -12, &[], 30);
    let y2 = rel("cases.filed", -24, -24, &[], 30);
    assert!(check(&[base, y1], &[y2], 10).is_err(), "the third year would be 5");
}

#[test]
fn money_differenced_across_windows_is_refused() {
    let m = |from: i32, to: i32, n: i64, sum: i64| Release {
        money: Some(("enforce_collected".into(), sum)),
        ..rel("cases.enforce_collected", from, to, &[], n)
    };
    let year = m(0, 11, 120, 9_000_000);
    let eleven = m(0, 10, 110, 1_000_000);
    assert!(matches!(check(&[year.clone()], &[eleven], 10), Err(Refusal::Money { .. })));
    // Months that add up to the year are a union of released cells: safe.
    let h1 = m(0, 5, 60, 4_000_000);
    let h2 = m(6, 11, 60, 5_000_000);
    assert_eq!(check(&[h1, h2], &[year], 10), Ok(()));
}

#[test]
fn identical_repeats_and_unrelated_cells_are_safe() {
    let a = rel("cases.filed", 0, 0, &[(Dimension::Cause, s(&["a"]))], 25);
    let b = rel("cases.closed", 0, 0, &[(Dimension::Cause, s(&["b"]))], 12);
    assert_eq!(check(&[a.clone()], &[a.clone()], 10), Ok(()));
    assert_eq!(check(&[a.clone()], &[b], 10), Ok(()));
    // A released number is itself a determined set: a small one is refused.
    let tiny = rel("cases.closed", 0, 0, &[(Dimension::Cause, s(&["c"]))], 3);
    assert!(check(&[a], &[tiny], 10).is_err());
}

#[test]
fn closed_cases_of_an_open_period_need_no_closure_method_split() {
    // Closed in P by every method = closed in P (a closed case always has a method).
    let methods: Vec<String> = crate::schema::CLOSURE_METHODS.iter().map(|t| t.to_string()).collect();
    let mut a = set("cases.closed", 0, 0, &[]);
    a.restrict(crate::disclosure::recordset::CLOSURE, &methods[1..], &topo());
    let a = Release::count("cases.closed", a, 40);
    let mut b = set("cases.closed", 0, 0, &[]);
    b.restrict(crate::disclosure::recordset::CLOSURE, &methods[..1], &topo());
    let b = Release::count("cases.closed", b, 20);
    let total = rel("cases.closed", 0, 0, &[], 62);
    assert!(check(&[a, b], &[total], 10).is_err());
}

mod brute {
    //! Random small universes, random releases, and an independent brute force: every possible record
    //! point of a tiny domain, grouped by the released sets that hold it; every subset of the groups is
    //! tested for membership of the row space with dense exact elimination.

    use super::*;
    use proptest::prelude::*;

    const TYPES: [&str; 3] = ["民初", "刑初", "民终"];
    const CAUSES: [&str; 3] = ["a", "b", "z"];
    const DAYS: i32 = 4;

    #[derive(Clone, Debug)]
    struct Point {
        filed: i32,
        closed: i32,
        type_code: &'static str,
        cause: &'static str,
    }

    fn points() -> Vec<Point> {
        let mut out = Vec::new();
        // A day before and a day after those the sets name stand for every earlier and later day.
        for filed in -1..=DAYS {
            for closed in (filed..=DAYS).chain([OPEN]) {
                for type_code in TYPES {
                    for cause in CAUSES {
                        out.push(Point { filed, closed, type_code, cause });
                    }
                }
            }
        }
        out
    }

    fn holds(s: &RecordSet, p: &Point) -> bool {
        let field = |axis: &str, v: &str| s.fields.get(axis).is_none_or(|vals| vals.iter().any(|x| x == v));
        s.first.lo <= p.filed
            && p.filed <= s.first.hi
            && s.last.lo <= p.closed
            && p.closed <= s.last.hi
            && field(TYPE_CODE, p.type_code)
            && field(CAUSE, p.cause)
    }

    fn arb_span(open: bool) -> impl Strategy<Value = Span> {
        prop_oneof![
            Just(Span::ALL),
            (0..DAYS, 0..DAYS).prop_map(|(a, b)| Span { lo: a.min(b), hi: a.max(b) }),
            (0..DAYS).prop_map(move |a| if open { Span { lo: a, hi: OPEN } } else { Span { lo: NEVER, hi: a } }),
        ]
    }

    fn arb_set() -> impl Strategy<Value = RecordSet> {
        let values =
            |pool: &'static [&'static str]| prop::option::of(prop::sample::subsequence(pool.to_vec(), 1..=pool.len()));
        (arb_span(false), arb_span(true), values(&["民初", "刑初"]), values(&["a", "b"])).prop_map(
            |(first, last, types, causes)| {
                let t = Topology::default();
                let mut r = RecordSet::all("cases");
                r.first = first;
                r.last = last;
                if let Some(v) = types {
                    r.restrict(TYPE_CODE, &s(&v), &t);
                }
                if let Some(v) = causes {
                    r.restrict(CAUSE, &s(&v), &t);
                }
                r
            },
        )
    }

    fn arb_data() -> impl Strategy<Value = Vec<usize>> {
        let n = points().len();
        prop::collection::vec(0..n, 0..40)
    }

    /// Dense exact row reduction: returns a basis in echelon form (pivot column per row).
    fn basis(rows: &[Vec<Q>]) -> Vec<(usize, Vec<Q>)> {
        let mut out: Vec<(usize, Vec<Q>)> = Vec::new();
        for r in rows {
            if let Some(v) = reduce(&out, r.clone())
                && let Some(p) = v.iter().position(|x| !x.is_zero())
            {
                let inv = Q::ONE.div(v[p]).ok().unwrap();
                let v: Vec<Q> = v.iter().map(|x| x.mul(inv).ok().unwrap()).collect();
                out.push((p, v));
            }
        }
        out
    }

    fn reduce(basis: &[(usize, Vec<Q>)], mut v: Vec<Q>) -> Option<Vec<Q>> {
        for (p, b) in basis {
            let f = v[*p];
            if !f.is_zero() {
                for (x, y) in v.iter_mut().zip(b) {
                    *x = x.sub(f.mul(*y).ok()?).ok()?;
                }
            }
        }
        Some(v)
    }

    /// Whether some set of 1..k−1 records of the data is determined by the releases (brute force);
    /// `None` when there are too many groups to enumerate.
    fn brute_unsafe(sets: &[RecordSet], data: &[usize], k: i64) -> Option<bool> {
        let pts = points();
        let mut groups: BTreeMap<Vec<bool>, Vec<usize>> = BTreeMap::new();
        for (i, p) in pts.iter().enumerate() {
            let sig: Vec<bool> = sets.iter().map(|s| holds(s, p)).collect();
            if sig.iter().any(|b| *b) {
                groups.entry(sig).or_default().push(i);
            }
        }
        let groups: Vec<(Vec<bool>, Vec<usize>)> = groups.into_iter().collect();
        if groups.len() > 14 {
            return None;
        }
        let rows: Vec<Vec<Q>> = (0..sets.len())
            .map(|r| groups.iter().map(|(sig, _)| if sig[r] { Q::ONE } else { Q::ZERO }).collect())
            .collect();
        let b = basis(&rows);
        let count = |g: usize| data.iter().filter(|d| groups[g].1.contains(d)).count() as i64;
        let n = groups.len();
        for mask in 1u32..(1 << n) {
            let v: Vec<Q> = (0..n).map(|g| if mask & (1 << g) != 0 { Q::ONE } else { Q::ZERO }).collect();
            let rest = reduce(&b, v)?;
            if rest.iter().all(|x| x.is_zero()) {
                let total: i64 = (0..n).filter(|g| mask & (1 << g) != 0).map(count).sum();
                if (1..k).contains(&total) {
                    return Some(true);
                }
            }
        }
        Some(false)
    }

    fn release_of(set: &RecordSet, data: &[usize]) -> Release {
        let pts = points();
        let n = data.iter().filter(|d| holds(set, &pts[**d])).count() as i64;
        Release::count("cases.filed", set.clone(), n)
    }

    /// The audit never calls a release safe that lets a small set be determined (brute force over
    /// random universes and release sequences); false positives are counted and printed.
    #[test]
    fn the_audit_never_misses_what_brute_force_finds() {
        let mut runner =
            proptest::test_runner::TestRunner::new(ProptestConfig { cases: 600, ..ProptestConfig::default() });
        let agreed = std::cell::Cell::new(0u64);
        let false_positives = std::cell::Cell::new(0u64);
        let caught = std::cell::Cell::new(0u64);
        let strategy = (prop::collection::vec(arb_set(), 1..7), arb_data(), 2i64..5);
        runner
            .run(&strategy, |(sets, data, k)| {
                let t = Topology::default();
                let mut ledger = Ledger::new();
                let mut released: Vec<RecordSet> = Vec::new();
                for s in &sets {
                    let r = release_of(s, &data);
                    let mut with = released.clone();
                    with.push(s.clone());
                    let Some(unsafe_) = brute_unsafe(&with, &data, k) else { break };
                    let exact = Limits { pairs_when_too_complex: false, ..Limits::default() };
                    let verdict = ledger.audit(std::slice::from_ref(&r), k as u32, &t, &exact);
                    if unsafe_ {
                        prop_assert!(verdict.is_err(), "missed: {:?} after {:?}", s, released);
                        caught.set(caught.get() + 1);
                    } else if verdict.is_err() {
                        false_positives.set(false_positives.get() + 1);
                    } else {
                        agreed.set(agreed.get() + 1);
                    }
                    if verdict.is_ok() {
                        ledger.push(r);
                        released.push(s.clone());
                    }
                }
                Ok(())
            })
            .unwrap();
        let (a, f) = (agreed.get(), false_positives.get());
        println!(
            "exact audit vs brute force: {} unsafe releases all refused; {f} false positives among {} safe releases ({:.2} %)",
            caught.get(),
            a + f,
            100.0 * f as f64 / (a + f).max(1) as f64
        );
    }
}

#[test]
fn cross_classified_answers_of_one_period_are_audited_quickly() {
    // The same year by 32 regions and by 12 case types: every union of regions and every union of
    // types is determined (2³² + 2¹² sets); the value bound keeps the search small.
    let regions: Vec<String> = (0..32).map(|i| format!("3502{i:02}")).collect();
    let mut released = Vec::new();
    for r in &regions {
        released.push(rel("cases.filed", 0, 11, &[(Dimension::Region, vec![r.clone()])], 40));
    }
    let types = crate::schema::TYPE_CODES;
    // Consistent totals: 11 types of 107 and one of 103 make the regions' 1 280.
    let new: Vec<Release> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let n = if i == 0 { 1280 - 11 * 107 } else { 107 };
            rel("cases.filed", 0, 11, &[(Dimension::TypeCode, vec![t.to_string()])], n)
        })
        .collect();
    let t = Topology::default();
    let mut l = Ledger::new();
    released.into_iter().for_each(|r| l.push(r));
    let limits = Limits { max_nodes: 200_000, ..Limits::default() };
    let started = std::time::Instant::now();
    assert_eq!(l.audit(&new, 10, &t, &limits), Ok(()));
    println!("32 regions × 12 types audited in {:?}", started.elapsed());
}

/// Limits no shape fits: every audit falls back to the pairwise check.
fn pairs_only() -> Limits {
    Limits { max_work: 0, ..Limits::default() }
}

fn check_pairs(released: &[Release], new: &[Release], k: u32) -> Result<Checked, Refusal> {
    let mut l = Ledger::new();
    for r in released {
        l.push(r.clone());
    }
    l.audit_checked(new, k, &topo(), &pairs_only())
}

#[test]
fn the_pairwise_fallback_catches_both_findings() {
    let a = rel("cases.closed_judgment", 0, 11, &[(Dimension::Instance, s(&["一审"]))], 219);
    let b = rel("cases.closed_first_judgment", 0, 11, &[(Dimension::TypeCode, s(&["民初", "刑初"]))], 214);
    assert!(matches!(check_pairs(&[a.clone()], &[b.clone()], 10), Err(Refusal::Small { .. })));
    assert_eq!(check_pairs(&[a], &[Release { count: 209, ..b }], 10), Ok(Checked::Pairs));
    let all: Vec<String> =
        crate::schema::TYPE_CODES.iter().filter(|t| !["执", "执恢"].contains(t)).map(|t| t.to_string()).collect();
    let region =
        rel("cases.open_at_end", 5, 5, &[(Dimension::Region, s(&["350213"])), (Dimension::TypeCode, all)], 210);
    let court = rel("cases.open_at_end", 5, 5, &[(Dimension::Court, s(&["闽0213"]))], 214);
    assert!(matches!(check_pairs(&[region], &[court], 10), Err(Refusal::Small { .. })));
}

#[test]
fn the_pairwise_fallback_knows_closed_cases_were_active() {
    // closure_rate: closed in P ⊂ active in P, across two measures; 5 cases still pending.
    let active = rel("cases.active", 0, 2, &[], 100);
    let closed = rel("cases.closed", 0, 2, &[], 95);
    assert!(matches!(check_pairs(&[active.clone()], &[closed], 10), Err(Refusal::Small { .. })));
    let closed = rel("cases.closed", 0, 2, &[], 80);
    assert_eq!(check_pairs(&[active], &[closed], 10), Ok(Checked::Pairs));
}

#[test]
fn the_pairwise_fallback_packs_and_uses_whole_lines() {
    // Two types of 40 and 43 inside 88 filings: the other types hold 5.
    let total = rel("cases.filed", 0, 11, &[], 88);
    let a = rel("cases.filed", 0, 11, &[(Dimension::TypeCode, s(&["民初"]))], 40);
    let b = rel("cases.filed", 0, 11, &[(Dimension::TypeCode, s(&["刑初"]))], 43);
    assert!(matches!(check_pairs(&[total.clone(), a.clone()], &[b.clone()], 10), Err(Refusal::Small { .. })));
    // An answer whose every group was shown gives its whole: 40 + 43 against an earlier 88.
    let zero = Release {
        measure: "zero".into(),
        terms: vec![(1, set("cases.filed", 0, 11, &[])), (-1, a.terms[0].1.clone()), (-1, b.terms[0].1.clone())],
        count: 0,
        money: None,
    };
    let earlier = rel("cases.filed", 0, 11, &[], 92);
    assert!(matches!(check_pairs(&[earlier], &[a, b, zero], 10), Err(Refusal::Small { .. })));
}
