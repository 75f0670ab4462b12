//! 立案偏离度 (filing deviation) and its warning levels, in exact integer arithmetic.
//!
//! The deviation of a count `c` in period P from the mean `s / n` of the same months of the `n` previous
//! years is `(c − s/n) ÷ (s/n) = (n·c − s) ÷ s`. The level reads its absolute value — a fall in filings is as
//! alarming as a rise — against the catalogue's thresholds, held in parts per million and compared with
//! integers only (`|n·c − s| · 10⁶` against `threshold · s`), so that no float rounding moves a case across a
//! boundary: green below `yellow_from`, yellow from `yellow_from` up to and including `red_above`, red above.
//! A zero baseline has no deviation and no level.

/// Thresholds are held in parts per million of the baseline mean.
pub const PPM: u32 = 1_000_000;

/// The most previous years a baseline may average.
pub const MAX_BASELINE_YEARS: u32 = 10;

/// The warning thresholds of a deviation indicator, on |deviation|, in parts per million.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// The smallest |deviation| that is yellow (150 000 = 15 %).
    pub yellow_from_ppm: u32,
    /// The largest |deviation| that is still yellow; above it is red (300 000 = 30 %).
    pub red_above_ppm: u32,
}

/// A warning level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// |deviation| below the yellow threshold.
    Green,
    /// |deviation| from the yellow threshold up to the red one, both included.
    Yellow,
    /// |deviation| above the red threshold.
    Red,
}

impl Level {
    /// `green`, `yellow` or `red` (the wire form).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Green => "green",
            Level::Yellow => "yellow",
            Level::Red => "red",
        }
    }

    /// 绿, 黄 or 红.
    pub fn zh(self) -> &'static str {
        match self {
            Level::Green => "绿",
            Level::Yellow => "黄",
            Level::Red => "红",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "green" => Some(Level::Green),
            "yellow" => Some(Level::Yellow),
            "red" => Some(Level::Red),
            _ => None,
        }
    }
}

/// Parses a non-negative decimal fraction written as text (`"0.15"`, `"1"`, `"0.125"`; at most six
/// decimals, at most 10) into parts per million, exactly.
pub fn parse_ppm(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let bad = || format!("{t:?} is not a decimal fraction such as \"0.15\" (at most 6 decimals, at most 10)");
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() || frac.len() > 6 || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac_ppm: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().map_err(|_| bad())? };
    let ppm = whole.checked_mul(u64::from(PPM)).and_then(|w| w.checked_add(frac_ppm)).ok_or_else(bad)?;
    if ppm > 10 * u64::from(PPM) {
        return Err(bad());
    }
    u32::try_from(ppm).map_err(|_| bad())
}

impl Levels {
    /// Thresholds from the catalogue's text, checked: yellow at most red.
    pub fn parse(yellow_from: &str, red_above: &str) -> Result<Levels, String> {
        let levels = Levels { yellow_from_ppm: parse_ppm(yellow_from)?, red_above_ppm: parse_ppm(red_above)? };
        if levels.yellow_from_ppm > levels.red_above_ppm {
            return Err(format!("yellow_from {yellow_from} is above red_above {red_above}"));
        }
        Ok(levels)
    }

    /// The level of a count `current` against the sum `baseline_sum` of `years` previous years' counts;
    /// `None` when the baseline is zero (no deviation is defined) or `years` is zero.
    pub fn level(self, current: i64, baseline_sum: i64, years: u32) -> Option<Level> {
        if baseline_sum <= 0 || years == 0 {
            return None;
        }
        let s = i128::from(baseline_sum);
        // |dev| = |n·c − s| ÷ s; |dev| < t  ⇔  |n·c − s|·10⁶ < t·s (s > 0).
        let scaled = (i128::from(years) * i128::from(current) - s).abs() * i128::from(PPM);
        Some(if scaled < i128::from(self.yellow_from_ppm) * s {
            Level::Green
        } else if scaled <= i128::from(self.red_above_ppm) * s {
            Level::Yellow
        } else {
            Level::Red
        })
    }
}

/// The deviation `(n·c − s) ÷ s` as a number for display; `None` for a zero baseline.
pub fn deviation(current: i64, baseline_sum: i64, years: u32) -> Option<f64> {
    (baseline_sum > 0 && years > 0)
        .then(|| (i128::from(years) * i128::from(current) - i128::from(baseline_sum)) as f64 / baseline_sum as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STD: Levels = Levels { yellow_from_ppm: 150_000, red_above_ppm: 300_000 };

    #[test]
    fn thresholds_parse_exactly() {
        assert_eq!(parse_ppm("0.15"), Ok(150_000));
        assert_eq!(parse_ppm("0.30"), Ok(300_000));
        assert_eq!(parse_ppm("0.125"), Ok(125_000));
        assert_eq!(parse_ppm("1"), Ok(1_000_000));
        assert_eq!(parse_ppm("0.000001"), Ok(1));
        for bad in ["", ".5", "-0.1", "0.1234567", "15%", "11", "0,15", "1e-1"] {
            assert!(parse_ppm(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(Levels::parse("0.15", "0.30"), Ok(STD));
        assert!(Levels::parse("0.30", "0.15").unwrap_err().contains("above"));
    }

    #[test]
    fn exactly_fifteen_percent_is_yellow_and_just_below_is_green() {
        // Baseline 100 + 100 + 100: mean 100. 115 filed = +15 % exactly.
        assert_eq!(STD.level(115, 300, 3), Some(Level::Yellow));
        assert_eq!(STD.level(85, 300, 3), Some(Level::Yellow));
        assert_eq!(STD.level(114, 300, 3), Some(Level::Green));
        assert_eq!(STD.level(86, 300, 3), Some(Level::Green));
        // A mean that is not an integer: sum 20 000 001 over 3 years; 3·c − s = 0.15·s has no integer c,
        // so the nearest counts on each side fall on the right side.
        let s = 20_000_001i64;
        // 3c − s < 0.15 s  ⇔  c < 1.15 s / 3 = 7 666 667.05
        assert_eq!(STD.level(7_666_667, s, 3), Some(Level::Green));
        assert_eq!(STD.level(7_666_668, s, 3), Some(Level::Yellow));
    }

    #[test]
    fn exactly_thirty_percent_is_yellow_and_above_is_red() {
        assert_eq!(STD.level(130, 300, 3), Some(Level::Yellow));
        assert_eq!(STD.level(70, 300, 3), Some(Level::Yellow));
        assert_eq!(STD.level(131, 300, 3), Some(Level::Red));
        assert_eq!(STD.level(69, 300, 3), Some(Level::Red));
        // A float would put 0.3 · 10 = 2.9999999999999996 < 3; integers do not.
        assert_eq!(STD.level(13, 30, 3), Some(Level::Yellow));
    }

    #[test]
    fn negative_deviations_use_the_absolute_value() {
        assert_eq!(deviation(60, 300, 3), Some(-0.4));
        assert_eq!(STD.level(60, 300, 3), Some(Level::Red));
        assert_eq!(STD.level(0, 300, 3), Some(Level::Red));
        assert_eq!(deviation(0, 300, 3), Some(-1.0));
        assert_eq!(STD.level(100, 300, 3), Some(Level::Green));
        assert_eq!(deviation(100, 300, 3), Some(0.0));
    }

    #[test]
    fn a_zero_baseline_has_no_deviation_and_no_level() {
        assert_eq!(STD.level(50, 0, 3), None);
        assert_eq!(deviation(50, 0, 3), None);
        assert_eq!(STD.level(0, 0, 3), None);
        assert_eq!(STD.level(5, 10, 0), None);
    }

    #[test]
    fn levels_have_wire_and_chinese_names() {
        for l in [Level::Green, Level::Yellow, Level::Red] {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(Level::Red.zh(), "红");
        assert_eq!(Level::parse("orange"), None);
    }
}
