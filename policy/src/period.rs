//! Whole-month periods. A period is a range of months, inclusive at both ends; "in P" means the
//! date named falls on a day of one of its months. Raw text becomes a [`Period`] once, here.

use std::fmt;

/// Earliest year a period may start in; earlier data is not held anywhere in the federation.
pub const MIN_YEAR: i32 = 1990;
/// Latest year a period may end in.
pub const MAX_YEAR: i32 = 2100;
/// The longest period one query may span, in months (50 years).
pub const MAX_SPAN_MONTHS: u32 = 600;

/// A calendar month, stored as a month index `year * 12 + (month − 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(i32);

/// Why a month or period was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// The text is not `YYYY-MM` (or the number is not `YYYYMM`).
    #[error("month {0:?} is not of the form YYYY-MM")]
    Malformed(String),
    /// The year lies outside the range the federation accepts.
    #[error("year {0} is outside {MIN_YEAR}..={MAX_YEAR}")]
    YearOutOfRange(i32),
    /// The month number is not 1..=12.
    #[error("month number {0} is not between 1 and 12")]
    MonthOutOfRange(u32),
    /// The period ends before it starts.
    #[error("period ends ({to}) before it starts ({from})")]
    Reversed { from: Month, to: Month },
    /// The period is longer than [`MAX_SPAN_MONTHS`].
    #[error("period spans {0} months; at most {MAX_SPAN_MONTHS} are allowed")]
    TooLong(u32),
}

impl Month {
    /// The month of `year`, `month` (1-based), checked against the accepted range.
    pub fn new(year: i32, month: u32) -> Result<Self, PeriodError> {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(PeriodError::YearOutOfRange(year));
        }
        if !(1..=12).contains(&month) {
            return Err(PeriodError::MonthOutOfRange(month));
        }
        Ok(Month(year * 12 + month as i32 - 1))
    }

    /// Builds a month from a raw index without range checks (index = year·12 + month − 1). Used for
    /// dates already parsed from stored data.
    pub fn from_index(index: i32) -> Self {
        Month(index)
    }

    /// The month index `year * 12 + (month − 1)`.
    pub fn index(self) -> i32 {
        self.0
    }

    /// Calendar year.
    pub fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    /// Month number 1..=12.
    pub fn month(self) -> u32 {
        (self.0.rem_euclid(12) + 1) as u32
    }

    /// Quarter 1..=4.
    pub fn quarter(self) -> u32 {
        (self.month() - 1) / 3 + 1
    }

    /// The number `YYYYMM` used on the wire.
    pub fn yyyymm(self) -> u32 {
        (self.year() as u32) * 100 + self.month()
    }

    /// Parses the wire form `YYYYMM`.
    pub fn from_yyyymm(n: u32) -> Result<Self, PeriodError> {
        Month::new((n / 100) as i32, n % 100)
    }

    /// Parses `YYYY-MM` (also accepts `YYYYMM`).
    pub fn parse(text: &str) -> Result<Self, PeriodError> {
        let t = text.trim();
        let bad = || PeriodError::Malformed(t.chars().take(16).collect());
        let (y, m) = match t.len() {
            7 if t.as_bytes()[4] == b'-' => (&t[..4], &t[5..]),
            6 => (&t[..4], &t[4..]),
            _ => return Err(bad()),
        };
        if !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        Month::new(year, month)
    }

    /// The month after this one.
    pub fn next(self) -> Self {
        Month(self.0 + 1)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

/// A range of whole months, inclusive at both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    from: Month,
    to: Month,
}

impl Period {
    /// The months `from ..= to`, checked for order and length.
    pub fn new(from: Month, to: Month) -> Result<Self, PeriodError> {
        if to < from {
            return Err(PeriodError::Reversed { from, to });
        }
        let span = (to.0 - from.0 + 1) as u32;
        if span > MAX_SPAN_MONTHS {
            return Err(PeriodError::TooLong(span));
        }
        Ok(Period { from, to })
    }

    /// Parses the wire form (two `YYYYMM` numbers).
    pub fn from_wire(from: u32, to: u32) -> Result<Self, PeriodError> {
        Period::new(Month::from_yyyymm(from)?, Month::from_yyyymm(to)?)
    }

    /// First month.
    pub fn from(self) -> Month {
        self.from
    }

    /// Last month.
    pub fn to(self) -> Month {
        self.to
    }

    /// Number of months.
    pub fn months(self) -> u32 {
        (self.to.0 - self.from.0 + 1) as u32
    }

    /// Whether `m` lies in the period.
    pub fn contains(self, m: Month) -> bool {
        self.from <= m && m <= self.to
    }

    /// Every month of the period, in order.
    pub fn iter(self) -> impl Iterator<Item = Month> {
        (self.from.0..=self.to.0).map(Month)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.from, self.to)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (negative before). Exact integer arithmetic
/// (the days-from-civil algorithm), so durations in days never go through floats.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day number from [`days_from_civil`].
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn format_day(day: i32) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses a strict `YYYY-MM-DD` date into a day number, checking that the day exists.
pub fn parse_day(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    let (y, m, d) = (digits(0..4)? as i32, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// The month a day number falls in.
pub fn month_of_day(day: i32) -> Month {
    let (y, m, _) = civil_from_days(day);
    Month(y * 12 + m as i32 - 1)
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_print() {
        let m = Month::parse("2023-05").unwrap();
        assert_eq!((m.year(), m.month(), m.quarter()), (2023, 5, 2));
        assert_eq!(m.to_string(), "2023-05");
        assert_eq!(m.yyyymm(), 202305);
        assert_eq!(Month::parse("202312").unwrap().to_string(), "2023-12");
        assert!(matches!(Month::parse("2023-13"), Err(PeriodError::MonthOutOfRange(13))));
        assert!(matches!(Month::parse("1066-10"), Err(PeriodError::YearOutOfRange(1066))));
        assert!(Month::parse("2023/05").is_err());
        assert!(Month::parse("２０２３-05").is_err());
        assert!(Month::parse("").is_err());
    }

    #[test]
    fn periods_are_checked() {
        let a = Month::parse("2024-01").unwrap();
        let b = Month::parse("2023-01").unwrap();
        assert!(matches!(Period::new(a, b), Err(PeriodError::Reversed { .. })));
        let p = Period::new(b, a).unwrap();
        assert_eq!(p.months(), 13);
        assert_eq!(p.iter().count(), 13);
        let far = Month::parse("2099-12").unwrap();
        let old = Month::parse("1990-01").unwrap();
        assert!(matches!(Period::new(old, far), Err(PeriodError::TooLong(_))));
        assert!(Period::from_wire(202301, 202399).is_err());
    }

    #[test]
    fn days_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in -800_000..800_000 {
            if z % 97 != 0 {
                continue;
            }
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(parse_day("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(parse_day("2023-2-01"), None);
        assert_eq!(format_day(parse_day("2019-12-31").unwrap()), "2019-12-31");
        assert_eq!(month_of_day(parse_day("2019-12-31").unwrap()).to_string(), "2019-12");
    }
}
