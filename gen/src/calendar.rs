//! Calendar arithmetic on plain day numbers (days since 1970-01-01), so the hot loops never build
//! date structs or parse strings.
//!
//! The conversions are Howard Hinnant's `days_from_civil` / `civil_from_days`; the unit tests check
//! them against the `time` crate over the whole range the generator uses.

/// A calendar day, counted from 1970-01-01 (day 0).
pub(crate) type Day = i32;

/// Whether `year` is a leap year in the proleptic Gregorian calendar.
pub(crate) fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in `month` (1–12) of `year`.
pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// Number of days in `year`.
pub(crate) fn days_in_year(year: i32) -> u32 {
    if is_leap(year) { 366 } else { 365 }
}

/// The day number of `year-month-day`; `month` is 1–12 and `day` must exist in that month.
pub(crate) fn day_from_civil(year: i32, month: u32, day: u32) -> Day {
    let (m, d) = (month as i32, day as i32);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `(year, month, day)` of a day number.
pub(crate) fn civil_from_day(day: Day) -> (i32, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i32::from(m <= 2);
    (y, m, d)
}

/// The year a day falls in.
pub(crate) fn year_of(day: Day) -> i32 {
    civil_from_day(day).0
}

/// Day of the week, 0 = Monday … 6 = Sunday.
pub(crate) fn weekday(day: Day) -> u32 {
    // 1970-01-01 was a Thursday.
    (day + 3).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_agree_with_the_time_crate() {
        let epoch = time::Date::from_calendar_date(1970, time::Month::January, 1).unwrap();
        let start = day_from_civil(1990, 1, 1);
        let end = day_from_civil(2110, 12, 31);
        for day in start..=end {
            let date = epoch + time::Duration::days(i64::from(day));
            let (y, m, d) = civil_from_day(day);
            assert_eq!((y, m, d), (date.year(), u8::from(date.month()) as u32, date.day() as u32));
            assert_eq!(day_from_civil(y, m, d), day);
            assert_eq!(weekday(day), date.weekday().number_days_from_monday() as u32);
            assert_eq!(days_in_month(y, m), time::util::days_in_month(date.month(), y) as u32);
        }
    }

    #[test]
    fn leap_years() {
        assert!(is_leap(2000) && is_leap(2024) && !is_leap(1900) && !is_leap(2023));
        assert_eq!(days_in_year(2024), 366);
        assert_eq!(days_in_month(2023, 2), 28);
    }
}
