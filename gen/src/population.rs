//! `population.csv` for the statistics bureau: one row per region and year, from three years before
//! the first case year (so 立案偏离度 has its baseline) to the last.
//!
//! Each region's resident population (常住人口) is anchored at its approximate 2024 size and grows
//! 0.6–2.2 % a year; registered floating population (登记流动人口) is 20–45 % of residents and
//! household-registered population (户籍人口) 45–85 %, each drifting a little from year to year.

use std::path::Path;

use crate::GenError;
use crate::output::CsvOut;
use crate::regions::Region;
use crate::sample::{rng_for, uniform};
use crate::text::push_uint;

/// The columns of `population.csv`, in order.
pub const POPULATION_COLUMNS: [&str; 5] =
    ["region_code", "year", "resident_pop", "registered_floating_pop", "hukou_pop"];

/// The year the regions' population figures are anchored at.
const ANCHOR_YEAR: i32 = 2024;

/// One region's figures for one year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PopulationRow {
    pub(crate) year: i32,
    pub(crate) resident: u64,
    pub(crate) floating: u64,
    pub(crate) hukou: u64,
}

/// The figures of region number `index` for `from..=to`.
pub(crate) fn population_series(seed: u64, index: usize, region: &Region, from: i32, to: i32) -> Vec<PopulationRow> {
    let mut rng = rng_for(seed, index as u64, b"populatn");
    let growth = u64::from(uniform(&mut rng, 6, 22)); // per mille a year
    let floating_share = uniform(&mut rng, 200, 450); // per mille of residents
    let hukou_share = uniform(&mut rng, 450, 850);
    let anchor = region.population + u64::from(uniform(&mut rng, 0, 999));

    // Resident population for every year from `from` to `to`, going out from the anchor year so a
    // region's size does not depend on the range asked for.
    let resident_at = |year: i32| -> u64 {
        let mut p = anchor;
        for _ in year..ANCHOR_YEAR {
            p = p * 1000 / (1000 + growth);
        }
        for _ in ANCHOR_YEAR..year {
            p = p * (1000 + growth) / 1000;
        }
        p
    };
    let mut rows = Vec::with_capacity((to - from + 1).max(0) as usize);
    let (mut floating, mut hukou) = (floating_share, hukou_share);
    for year in from..=to {
        let resident = resident_at(year);
        floating = (floating + uniform(&mut rng, 0, 10)).saturating_sub(5).clamp(200, 450);
        hukou = (hukou + uniform(&mut rng, 0, 6)).saturating_sub(3).clamp(450, 850);
        rows.push(PopulationRow {
            year,
            resident,
            floating: resident * u64::from(floating) / 1000,
            hukou: resident * u64::from(hukou) / 1000,
        });
    }
    rows
}

/// Writes `population.csv` for `regions` and years `from..=to`; returns the row count.
pub(crate) fn write_population(
    path: &Path,
    seed: u64,
    regions: &[Region],
    years: (i32, i32),
    progress: &mut dyn FnMut(usize),
) -> Result<usize, GenError> {
    let mut out = CsvOut::create(path, &POPULATION_COLUMNS)?;
    let mut rows = 0usize;
    let (mut year, mut resident, mut floating, mut hukou) =
        (String::new(), String::new(), String::new(), String::new());
    for (index, region) in regions.iter().enumerate() {
        for row in population_series(seed, index, region, years.0, years.1) {
            for (buf, value) in [
                (&mut year, row.year.max(0) as u64),
                (&mut resident, row.resident),
                (&mut floating, row.floating),
                (&mut hukou, row.hukou),
            ] {
                buf.clear();
                push_uint(buf, value);
            }
            out.write([region.code.as_str(), &year, &resident, &floating, &hukou])?;
            rows += 1;
        }
    }
    out.finish()?;
    progress(rows);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions::regions;

    #[test]
    fn magnitudes_and_growth_are_plausible() {
        let all = regions(6);
        let expected_2024 = [1_100_000, 600_000, 1_050_000, 1_070_000, 900_000, 700_000];
        for (i, region) in all.iter().enumerate() {
            let series = population_series(20240101, i, region, 2016, 2024);
            assert_eq!(series.len(), 9);
            let last = series[8];
            assert_eq!(last.year, 2024);
            assert!(last.resident.abs_diff(expected_2024[i]) < 1_000, "{} {}", region.code, last.resident);
            assert!(series.windows(2).all(|w| w[1].resident > w[0].resident), "grows every year");
            assert!(series[0].resident * 100 > last.resident * 80, "a little, not a lot");
            for row in &series {
                let floating = row.floating * 1000 / row.resident;
                assert!((195..=450).contains(&floating), "{floating}");
                assert!(row.hukou < row.resident);
                assert!(row.hukou * 100 >= row.resident * 44);
            }
        }
    }

    #[test]
    fn a_region_looks_the_same_whatever_the_range() {
        let region = &regions(1)[0];
        let long = population_series(1, 0, region, 2016, 2024);
        let short = population_series(1, 0, region, 2016, 2020);
        assert_eq!(
            long[..5].iter().map(|r| r.resident).collect::<Vec<_>>(),
            short.iter().map(|r| r.resident).collect::<Vec<_>>()
        );
    }
}
