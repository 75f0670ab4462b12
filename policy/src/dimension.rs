//! The dimensions an answer may be grouped or filtered by. Record dimensions (region, court, case type,
//! cause, division, instance; dispute type for mediations) come from a record's own fields; time dimensions (year, quarter, month) split
//! the requested period into sub-periods, and each cell is the indicator computed over its sub-period.

use std::fmt;

use crate::schema::Grade;

/// A dimension of DESIGN.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    /// District (GB/T 2260 six-digit code).
    Region,
    /// Court code (法院代字), e.g. 闽0213.
    Court,
    /// 民事 / 刑事 / 行政 / 执行, derived from the case type.
    Division,
    /// 一审 / 二审 / 再审 / 执行, derived from the case type.
    Instance,
    /// Case type code, e.g. 民初.
    TypeCode,
    /// 案由.
    Cause,
    /// Calendar year of the indicator's sub-period.
    Year,
    /// Calendar quarter (`2023-Q2`).
    Quarter,
    /// Calendar month (`2023-05`).
    Month,
    /// Kind of dispute of a mediation (婚姻家庭, 邻里, 合同, …); only indicators over `mediations` list it.
    DisputeType,
}

/// Every dimension, in a fixed order.
pub const ALL: &[Dimension] = &[
    Dimension::Region,
    Dimension::Court,
    Dimension::Division,
    Dimension::Instance,
    Dimension::TypeCode,
    Dimension::Cause,
    Dimension::Year,
    Dimension::Quarter,
    Dimension::Month,
    Dimension::DisputeType,
];

/// The time granularity a set of dimensions asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimeGrain {
    /// No time dimension: one sub-period, the whole period.
    Whole,
    /// By calendar year.
    Year,
    /// By calendar quarter.
    Quarter,
    /// By calendar month.
    Month,
}

impl Dimension {
    /// Parses a dimension name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "region" => Dimension::Region,
            "court" => Dimension::Court,
            "division" => Dimension::Division,
            "instance" => Dimension::Instance,
            "type_code" => Dimension::TypeCode,
            "cause" => Dimension::Cause,
            "year" => Dimension::Year,
            "quarter" => Dimension::Quarter,
            "month" => Dimension::Month,
            "dispute_type" => Dimension::DisputeType,
            _ => return None,
        })
    }

    /// The dimension's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Region => "region",
            Dimension::Court => "court",
            Dimension::Division => "division",
            Dimension::Instance => "instance",
            Dimension::TypeCode => "type_code",
            Dimension::Cause => "cause",
            Dimension::Year => "year",
            Dimension::Quarter => "quarter",
            Dimension::Month => "month",
            Dimension::DisputeType => "dispute_type",
        }
    }

    /// Whether the dimension splits the period rather than reading a record field.
    pub fn is_time(self) -> bool {
        matches!(self, Dimension::Year | Dimension::Quarter | Dimension::Month)
    }

    /// The grade of the field the dimension reads (time dimensions read the indicator's dates, graded
    /// by the indicator itself).
    pub fn grade(self) -> Grade {
        match self {
            Dimension::Year | Dimension::Quarter | Dimension::Month => Grade::L2,
            _ => Grade::L1,
        }
    }

    /// Whether a value is well-formed for this dimension (filters take dimension values only).
    pub fn accepts_value(self, value: &str) -> bool {
        let n = value.chars().count();
        match self {
            Dimension::Region => value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()),
            Dimension::Court => (2..=12).contains(&n) && !value.chars().any(char::is_whitespace),
            Dimension::Division => ["民事", "刑事", "行政", "执行"].contains(&value),
            Dimension::Instance => ["一审", "二审", "再审", "执行"].contains(&value),
            Dimension::TypeCode => crate::schema::TYPE_CODES.contains(&value),
            Dimension::Cause => (1..=40).contains(&n) && !value.chars().any(|c| c.is_ascii_digit() || c.is_control()),
            Dimension::DisputeType => crate::schema::DISPUTE_TYPES.contains(&value),
            Dimension::Year | Dimension::Quarter | Dimension::Month => false,
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The finest time grain among `dims`.
pub fn time_grain(dims: &[Dimension]) -> TimeGrain {
    dims.iter()
        .map(|d| match d {
            Dimension::Year => TimeGrain::Year,
            Dimension::Quarter => TimeGrain::Quarter,
            Dimension::Month => TimeGrain::Month,
            _ => TimeGrain::Whole,
        })
        .max()
        .unwrap_or(TimeGrain::Whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in ALL {
            assert_eq!(Dimension::parse(d.as_str()), Some(*d));
        }
        assert_eq!(Dimension::parse("plaintiff_name"), None);
    }

    #[test]
    fn finest_time_grain_wins() {
        assert_eq!(time_grain(&[Dimension::Region]), TimeGrain::Whole);
        assert_eq!(time_grain(&[Dimension::Month, Dimension::Year]), TimeGrain::Month);
        assert_eq!(time_grain(&[Dimension::Year, Dimension::Quarter]), TimeGrain::Quarter);
    }

    #[test]
    fn filter_values_are_shaped() {
        assert!(Dimension::Region.accepts_value("350203"));
        assert!(!Dimension::Region.accepts_value("35020"));
        assert!(!Dimension::Cause.accepts_value("13800138000"));
        assert!(Dimension::TypeCode.accepts_value("民初"));
        assert!(!Dimension::Year.accepts_value("2023"));
        assert!(Dimension::DisputeType.accepts_value("邻里"));
        assert!(!Dimension::DisputeType.accepts_value("民间借贷纠纷"));
    }
}
