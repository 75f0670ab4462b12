//! When things get filed: growth from year to year, and the working calendar inside a year
//! (weekends, the Spring Festival, the May Day and National Day holidays, the year-end peak).

use crate::calendar::{Day, day_from_civil, days_in_year, weekday};
use crate::sample::{GenRng, apportion, uniform};

/// Spring Festival (正月初一) dates, as (month, day), for 2000–2035.
#[rustfmt::skip]
const SPRING_FESTIVAL: [(u32, u32); 36] = [
    (2, 5), (1, 24), (2, 12), (2, 1), (1, 22), (2, 9), (1, 29), (2, 18), (2, 7), (1, 26), // 2000–2009
    (2, 14), (2, 3), (1, 23), (2, 10), (1, 31), (2, 19), (2, 8), (1, 28), (2, 16), (2, 5), // 2010–2019
    (1, 25), (2, 12), (2, 1), (1, 22), (2, 10), (1, 29), (2, 17), (2, 6), (1, 26), (2, 13), // 2020–2029
    (2, 3), (1, 23), (2, 11), (1, 31), (2, 19), (2, 8), // 2030–2035
];

/// Relative volume by month (per mille): a February dip, a quiet October, a year-end peak as
/// courts push to close and creditors to file before the year ends.
#[rustfmt::skip]
const MONTH_FACTOR: [u64; 12] = [
    1000, 800, 1060, 1000, 970, 1040, 1000, 980, 1010, 880, 1060, 1250,
];

fn spring_festival(year: i32) -> Day {
    let (m, d) = usize::try_from(year - 2000).ok().and_then(|i| SPRING_FESTIVAL.get(i)).copied().unwrap_or((2, 1));
    day_from_civil(year, m, d)
}

/// The weight of each day of `year` for filings: the working calendar times a little noise.
pub(crate) fn day_weights(rng: &mut GenRng, year: i32) -> Vec<u64> {
    let first = day_from_civil(year, 1, 1);
    let festival = spring_festival(year);
    let may_day = day_from_civil(year, 5, 1);
    let national_day = day_from_civil(year, 10, 1);
    let mut weights = Vec::with_capacity(366);
    let mut month = 0usize;
    let mut next_month_start = day_from_civil(year, 2, 1);
    for offset in 0..days_in_year(year) as i32 {
        let day = first + offset;
        if day >= next_month_start && month < 11 {
            month += 1;
            next_month_start = if month < 11 { day_from_civil(year, month as u32 + 2, 1) } else { Day::MAX };
        }
        let mut w = MONTH_FACTOR[month];
        let holiday = (festival - 1..=festival + 6).contains(&day)
            || (may_day..may_day + 3).contains(&day)
            || (national_day..national_day + 7).contains(&day)
            || day == first;
        if holiday {
            w = w * 120 / 1000;
        } else if (festival + 7..festival + 14).contains(&day) {
            w = w * 600 / 1000;
        } else if weekday(day) >= 5 {
            w = w * 150 / 1000;
        }
        if year == 2020 && (1..=2).contains(&month) {
            // The first COVID-19 lockdown, February and March 2020.
            w = w * 600 / 1000;
        }
        weights.push(w * u64::from(uniform(rng, 850, 1150)));
    }
    weights
}

/// Spreads `count` events over the days of `year`: `(day, how many)` for each day, in order.
pub(crate) fn spread_over_year(rng: &mut GenRng, year: i32, count: u64) -> impl Iterator<Item = (Day, u64)> {
    let first = day_from_civil(year, 1, 1);
    let weights = day_weights(rng, year);
    apportion(count, &weights).into_iter().enumerate().map(move |(i, n)| (first + i as i32, n))
}

/// Splits `total` over `from..=to` growing by `growth_per_mille` a year (2020 a little lower).
pub(crate) fn spread_over_years(total: u64, from: i32, to: i32, growth_per_mille: u64) -> Vec<(i32, u64)> {
    let mut weights = Vec::new();
    let mut w = 1_000_000u64;
    for year in from..=to {
        weights.push(if year == 2020 { w * 92 / 100 } else { w });
        w = w * (1000 + growth_per_mille) / 1000;
    }
    (from..=to).zip(apportion(total, &weights)).collect()
}

/// [`spread_over_years`] with the last year's weight scaled by `last_year_per_mille` (1000: unchanged), for
/// a court whose filings surge in the latest year; the total is still apportioned exactly.
pub(crate) fn spread_over_years_surging(
    total: u64,
    from: i32,
    to: i32,
    growth_per_mille: u64,
    last_year_per_mille: u64,
) -> Vec<(i32, u64)> {
    let mut weights = Vec::new();
    let mut w = 1_000_000u64;
    for year in from..=to {
        let base = if year == 2020 { w * 92 / 100 } else { w };
        weights.push(if year == to { base * last_year_per_mille / 1000 } else { base });
        w = w * (1000 + growth_per_mille) / 1000;
    }
    (from..=to).zip(apportion(total, &weights)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::civil_from_day;
    use crate::sample::rng_for;

    #[test]
    fn a_surge_raises_only_the_last_year_and_keeps_the_total() {
        let plain = spread_over_years(120_000, 2019, 2024, 60);
        assert_eq!(spread_over_years_surging(120_000, 2019, 2024, 60, 1000), plain);
        let surging = spread_over_years_surging(120_000, 2019, 2024, 60, 1400);
        assert_eq!(surging.iter().map(|y| y.1).sum::<u64>(), 120_000);
        // The last year against the mean of the three before it: well above 30 %.
        let mean3 = surging[2..5].iter().map(|y| y.1).sum::<u64>() / 3;
        assert!(surging[5].1 * 100 > mean3 * 140, "{surging:?}");
    }

    #[test]
    fn years_grow_and_sum_exactly() {
        let years = spread_over_years(120_000, 2019, 2024, 60);
        assert_eq!(years.iter().map(|y| y.1).sum::<u64>(), 120_000);
        assert!(years[5].1 > years[0].1);
        assert!(years[1].1 < years[0].1, "2020 dips: {years:?}");
    }

    #[test]
    fn february_and_weekends_are_quieter_and_december_busier() {
        let mut rng = rng_for(1, 0, b"season\0\0");
        let mut by_month = [0u64; 12];
        let mut weekend = 0;
        for (day, n) in spread_over_year(&mut rng, 2024, 100_000) {
            by_month[civil_from_day(day).1 as usize - 1] += n;
            if weekday(day) >= 5 {
                weekend += n;
            }
        }
        assert_eq!(by_month.iter().sum::<u64>(), 100_000);
        assert!(by_month[1] * 3 / 2 < by_month[0], "Spring Festival 2024 fell in February: {by_month:?}");
        assert!(by_month[11] > by_month[10] && by_month[11] > by_month[2], "{by_month:?}");
        assert!(weekend < 8_000, "{weekend}");
    }
}
