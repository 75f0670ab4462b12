//! `mediations.csv` for the justice bureau: people's mediation (人民调解) cases in the regions of the
//! generated courts, region by region, each in order of acceptance.
//!
//! Most disputes are settled (成功 about 85 %) within a month; some settlements get a court's
//! judicial confirmation (司法确认, a `民特` case number of the region's court).

use std::path::Path;

use crate::GenError;
use crate::calendar::{Day, day_from_civil, year_of};
use crate::output::CsvOut;
use crate::people::{Party, People, Role};
use crate::regions::Region;
use crate::sample::{GenRng, Weighted, apportion, chance, rng_for, uniform};
use crate::seasons::{spread_over_year, spread_over_years};
use crate::text::{push_date, push_padded, push_uint, push_yuan};

/// The columns of `mediations.csv`, in order.
pub const MEDIATION_COLUMNS: [&str; 15] = [
    "mediation_id",
    "region_code",
    "org_type",
    "dispute_type",
    "source",
    "accepted_on",
    "closed_on",
    "result",
    "agreement_amount",
    "auto_fulfilled",
    "judicial_confirm_case_no",
    "party_name",
    "party_id_no",
    "party_phone",
    "mediator_id",
];

/// Every `org_type` (调解组织类型).
pub const ORG_TYPES: [&str; 3] = ["人民调解委员会", "行业性专业性调解组织", "法院特邀调解"];
/// Every `dispute_type` (纠纷类型).
#[rustfmt::skip]
pub const DISPUTE_TYPES: [&str; 8] = [
    "婚姻家庭", "邻里", "合同", "损害赔偿", "劳动", "物业", "民间借贷", "其他",
];
/// Every `source` (案件来源).
pub const SOURCES: [&str; 3] = ["当事人申请", "主动排查", "法院委派"];
/// Every `result` (调解结果).
pub const RESULTS: [&str; 3] = ["成功", "失败", "终止"];

#[rustfmt::skip]
const ORG_MIX: [(&str, u32); 3] = [
    ("人民调解委员会", 70), ("行业性专业性调解组织", 18), ("法院特邀调解", 12),
];
/// Dispute types with how often a settlement of each names a sum of money (per 10 000).
#[rustfmt::skip]
const DISPUTE_MIX: [((&str, u32), u32); 8] = [
    (("婚姻家庭", 4000), 12), (("邻里", 2000), 20), (("合同", 7500), 15), (("损害赔偿", 8000), 12), (("劳动", 8000), 10),
    (("物业", 7000), 10), (("民间借贷", 9000), 8), (("其他", 3000), 13),
];
const RESULT_MIX: [(&str, u32); 3] = [("成功", 85), ("失败", 11), ("终止", 4)];
#[rustfmt::skip]
const DURATIONS: &[((u32, u32), u32)] = &[
    ((0, 3), 20), ((4, 15), 40), ((16, 30), 30), ((31, 60), 8), ((61, 120), 2),
];
#[rustfmt::skip]
const AMOUNTS: &[((u64, u64), u32)] = &[
    ((200, 2_000), 25), ((2_000, 10_000), 35), ((10_000, 50_000), 28), ((50_000, 300_000), 10),
    ((300_000, 2_000_000), 2),
];

struct Tables {
    orgs: Weighted<&'static str>,
    disputes: Weighted<(&'static str, u32)>,
    results: Weighted<&'static str>,
    durations: Weighted<(u32, u32)>,
    amounts: Weighted<(u64, u64)>,
}

impl Tables {
    fn new() -> Self {
        Self {
            orgs: Weighted::new(ORG_MIX),
            disputes: Weighted::new(DISPUTE_MIX),
            results: Weighted::new(RESULT_MIX),
            durations: Weighted::new(DURATIONS.iter().copied()),
            amounts: Weighted::new(AMOUNTS.iter().copied()),
        }
    }
}

/// One row, reused.
struct MediationRow {
    id: String,
    org_type: &'static str,
    dispute_type: &'static str,
    source: &'static str,
    accepted_on: String,
    closed_on: String,
    result: &'static str,
    agreement_amount: String,
    auto_fulfilled: bool,
    judicial_confirm_case_no: String,
    party: Party,
    mediator_id: String,
}

impl MediationRow {
    fn record<'a>(&'a self, region: &'a Region) -> [&'a [u8]; 15] {
        [
            self.id.as_bytes(),
            region.code.as_bytes(),
            self.org_type.as_bytes(),
            self.dispute_type.as_bytes(),
            self.source.as_bytes(),
            self.accepted_on.as_bytes(),
            self.closed_on.as_bytes(),
            self.result.as_bytes(),
            self.agreement_amount.as_bytes(),
            if self.auto_fulfilled { b"true" } else { b"false" },
            self.judicial_confirm_case_no.as_bytes(),
            self.party.name.as_bytes(),
            self.party.id_no.as_bytes(),
            self.party.phone.as_bytes(),
            self.mediator_id.as_bytes(),
        ]
    }
}

/// How many mediations the bureau records: half as many as the courts' cases.
pub(crate) fn mediation_count(courts: usize, cases_per_court: usize) -> u64 {
    ((courts as u64) * (cases_per_court as u64) / 2).max(1)
}

/// The per-region state of the writer.
struct RegionState<'a> {
    region: &'a Region,
    /// Mediators on the region's roster, `M<4 digits>001` to this number.
    mediators: u32,
    /// Judicial confirmations issued so far, by year since `from_year`; they are numbered per court
    /// and year of confirmation, which can be the year after acceptance.
    confirmations: Vec<u64>,
    from_year: i32,
}

/// Writes `mediations.csv` covering `regions`; returns the row count.
pub(crate) fn write_mediations(
    path: &Path,
    seed: u64,
    regions: &[Region],
    total: u64,
    years: (i32, i32),
    progress: &mut dyn FnMut(usize),
) -> Result<usize, GenError> {
    let (from_year, to_year) = years;
    let as_of = day_from_civil(to_year, 12, 31);
    let mut rng = rng_for(seed, 0, b"mediatn\0");
    let tables = Tables::new();
    let people = People::new();
    let mut out = CsvOut::create(path, &MEDIATION_COLUMNS)?;
    let mut row = MediationRow {
        id: String::with_capacity(24),
        org_type: "",
        dispute_type: "",
        source: "",
        accepted_on: String::with_capacity(10),
        closed_on: String::with_capacity(10),
        result: "",
        agreement_amount: String::with_capacity(16),
        auto_fulfilled: false,
        judicial_confirm_case_no: String::with_capacity(32),
        party: Party::new(),
        mediator_id: String::with_capacity(8),
    };
    let weights: Vec<u64> = regions.iter().map(|r| r.population).collect();
    let mut rows = 0usize;
    for (region, count) in regions.iter().zip(apportion(total, &weights)) {
        let mut state = RegionState {
            region,
            mediators: uniform(&mut rng, 40, 120),
            confirmations: vec![0; (to_year - from_year + 1) as usize],
            from_year,
        };
        for (year, count) in spread_over_years(count, from_year, to_year, 40) {
            let mut seq = 0u64;
            let days: Vec<(Day, u64)> = spread_over_year(&mut rng, year, count).collect();
            for (day, n) in days {
                row.accepted_on.clear();
                push_date(&mut row.accepted_on, day);
                for _ in 0..n {
                    seq += 1;
                    fill(&mut rng, &tables, &people, &mut row, &mut state, (year, day, seq), as_of);
                    out.write(row.record(region))?;
                    rows += 1;
                    if rows.is_multiple_of(crate::PROGRESS_EVERY) {
                        progress(rows);
                    }
                }
            }
        }
    }
    out.finish()?;
    progress(rows);
    Ok(rows)
}

/// Fills `row` with mediation number `seq` of `year`, accepted on `accepted`.
fn fill(
    rng: &mut GenRng,
    tables: &Tables,
    people: &People,
    row: &mut MediationRow,
    state: &mut RegionState<'_>,
    (year, accepted, seq): (i32, Day, u64),
    as_of: Day,
) {
    let region = state.region;
    row.id.clear();
    row.id.push_str("TJ");
    row.id.push_str(&region.code);
    row.id.push('-');
    push_uint(&mut row.id, year.max(0) as u64);
    row.id.push('-');
    push_padded(&mut row.id, seq, 6);

    row.org_type = tables.orgs.pick(rng);
    let (dispute, money_per_10k) = tables.disputes.pick(rng);
    row.dispute_type = dispute;
    row.source = match row.org_type {
        "法院特邀调解" if chance(rng, 9000) => "法院委派",
        _ => match uniform(rng, 0, 99) {
            0..=59 => "当事人申请",
            60..=89 => "主动排查",
            _ => "法院委派",
        },
    };

    row.closed_on.clear();
    row.agreement_amount.clear();
    row.judicial_confirm_case_no.clear();
    row.result = "";
    row.auto_fulfilled = false;
    let closed = accepted + tables.durations.pick_in(rng) as i32;
    if closed <= as_of {
        push_date(&mut row.closed_on, closed);
        row.result = tables.results.pick(rng);
        if row.result == "成功" {
            if chance(rng, money_per_10k) {
                push_yuan(&mut row.agreement_amount, tables.amounts.pick_in(rng) * 100);
            }
            row.auto_fulfilled = chance(rng, 7500);
            if chance(rng, 2000) {
                let confirm_year = year_of(closed);
                let last = state.confirmations.len() - 1;
                let slot = &mut state.confirmations[((confirm_year - state.from_year).max(0) as usize).min(last)];
                *slot += 1;
                let s = &mut row.judicial_confirm_case_no;
                s.push('(');
                push_uint(s, confirm_year.max(0) as u64);
                s.push(')');
                s.push_str(&region.court_code);
                s.push_str("民特");
                push_uint(s, *slot);
                s.push('号');
            }
        }
    }

    let role = if chance(rng, 9200) { Role::Person } else { Role::Shop };
    people.fill(rng, &mut row.party, role, region, year);

    row.mediator_id.clear();
    row.mediator_id.push('M');
    row.mediator_id.push_str(region.short_code());
    push_padded(&mut row.mediator_id, u64::from(uniform(rng, 1, state.mediators)), 3);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::ids::{is_valid_resident_id, is_valid_uscc};
    use crate::regions::regions;

    fn rows(total: u64) -> (Vec<String>, Vec<Vec<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mediations.csv");
        let written = write_mediations(&path, 9, &regions(3), total, (2019, 2024), &mut |_| {}).unwrap();
        assert_eq!(written as u64, total);
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let header = reader.headers().unwrap().iter().map(str::to_string).collect();
        let records = reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
        (header, records)
    }

    #[test]
    fn rows_follow_the_schema() {
        let (header, rows) = rows(12_000);
        assert_eq!(header, MEDIATION_COLUMNS);
        assert_eq!(
            MEDIATION_COLUMNS.join(","),
            "mediation_id,region_code,org_type,dispute_type,source,accepted_on,closed_on,result,agreement_amount,auto_fulfilled,judicial_confirm_case_no,party_name,party_id_no,party_phone,mediator_id"
        );
        let codes = ["350203", "350205", "350206"];
        let mut ids = HashSet::new();
        let mut confirmations = HashSet::new();
        let mut per_region = [0usize; 3];
        for r in &rows {
            assert_eq!(r.len(), MEDIATION_COLUMNS.len());
            let region = codes.iter().position(|c| *c == r[1]).expect("a generated region");
            per_region[region] += 1;
            assert!(ids.insert(r[0].clone()), "duplicate {}", r[0]);
            let year = &r[5][..4];
            assert!(
                r[0].starts_with(&format!("TJ{}-{year}-", r[1])) && r[0].len() == "TJ350203-2023-000123".len(),
                "{}",
                r[0]
            );
            assert!(ORG_TYPES.contains(&r[2].as_str()));
            assert!(DISPUTE_TYPES.contains(&r[3].as_str()));
            assert!(SOURCES.contains(&r[4].as_str()));
            assert!(r[5].as_str() >= "2019-01-01" && r[5].as_str() <= "2024-12-31");
            if r[6].is_empty() {
                assert!(r[7].is_empty() && r[8].is_empty() && r[10].is_empty() && r[9] == "false");
            } else {
                assert!(r[6] >= r[5] && r[6].as_str() <= "2024-12-31");
                assert!(RESULTS.contains(&r[7].as_str()));
            }
            assert!(r[9] == "true" || r[9] == "false");
            if !r[8].is_empty() || !r[10].is_empty() || r[9] == "true" {
                assert_eq!(r[7], "成功");
            }
            if !r[10].is_empty() {
                let court = format!("闽{}", &r[1][2..]);
                assert!(
                    r[10].starts_with(&format!("({})", &r[6][..4])) && r[10].contains(&format!("{court}民特")),
                    "{}",
                    r[10]
                );
                assert!(confirmations.insert(r[10].clone()), "duplicate {}", r[10]);
            }
            assert!(!r[11].is_empty());
            assert!(r[12].is_empty() || is_valid_resident_id(&r[12]) || is_valid_uscc(&r[12]), "{}", r[12]);
            assert!(r[13].is_empty() || r[13].len() == 11 && r[13].starts_with('1'));
            assert!(r[14].len() == 8 && r[14].starts_with(&format!("M{}", &r[1][2..])), "{}", r[14]);
        }
        // Regions get mediations in proportion to their population (思明 1.1 M, 海沧 0.6 M).
        assert!(per_region[0] > per_region[1] * 3 / 2, "{per_region:?}");
    }

    #[test]
    fn most_mediations_succeed_and_some_are_confirmed() {
        let (_, rows) = rows(12_000);
        let closed: Vec<_> = rows.iter().filter(|r| !r[6].is_empty()).collect();
        let success: Vec<_> = closed.iter().filter(|r| r[7] == "成功").collect();
        let rate = success.len() as f64 / closed.len() as f64;
        assert!((0.82..0.88).contains(&rate), "{rate}");
        let confirmed = success.iter().filter(|r| !r[10].is_empty()).count() as f64 / success.len() as f64;
        assert!((0.15..=0.25).contains(&confirmed), "{confirmed}");
        let with_amount = success.iter().filter(|r| !r[8].is_empty()).count();
        assert!(with_amount > 0 && with_amount < success.len());
        assert!(rows.len() > closed.len(), "a few are still open at the as-of date");
    }

    #[test]
    fn count_is_half_the_cases() {
        assert_eq!(mediation_count(6, 20_000), 60_000);
        assert_eq!(mediation_count(1, 1), 1);
    }
}
