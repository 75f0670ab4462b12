//! Appending numbers, dates and money to reusable `String` buffers without `format!`, which keeps
//! the per-row cost of the writers low.

use crate::calendar::{Day, civil_from_day};

/// Appends `n` in decimal.
pub(crate) fn push_uint(out: &mut String, n: u64) {
    push_padded(out, n, 1);
}

/// Appends `n` in decimal, left-padded with zeros to at least `width` digits.
pub(crate) fn push_padded(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let width = width.min(digits.len());
    let start = start.min(digits.len() - width);
    out.extend(digits[start..].iter().map(|&b| char::from(b)));
}

/// Appends a date as `YYYY-MM-DD`.
pub(crate) fn push_date(out: &mut String, day: Day) {
    let (y, m, d) = civil_from_day(day);
    push_padded(out, y.max(0) as u64, 4);
    out.push('-');
    push_padded(out, u64::from(m), 2);
    out.push('-');
    push_padded(out, u64::from(d), 2);
}

/// Appends an amount held in fen as yuan: `500` when whole, else two decimals (`12345.67`).
pub(crate) fn push_yuan(out: &mut String, fen: u64) {
    push_uint(out, fen / 100);
    if !fen.is_multiple_of(100) {
        out.push('.');
        push_padded(out, fen % 100, 2);
    }
}

/// Appends whole yuan with thousands separators, the way a clerk writes it in prose (`1,250,000`).
pub(crate) fn push_yuan_grouped(out: &mut String, fen: u64) {
    let yuan = fen / 100;
    let mut groups = [0u64; 7];
    let mut count = 0;
    let mut rest = yuan;
    loop {
        groups[count] = rest % 1000;
        count += 1;
        rest /= 1000;
        if rest == 0 || count == groups.len() {
            break;
        }
    }
    push_uint(out, groups[count - 1] + rest * 1000);
    for group in groups[..count - 1].iter().rev() {
        out.push(',');
        push_padded(out, *group, 3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::day_from_civil;

    fn with(f: impl FnOnce(&mut String)) -> String {
        let mut s = String::new();
        f(&mut s);
        s
    }

    #[test]
    fn numbers() {
        assert_eq!(with(|s| push_uint(s, 0)), "0");
        assert_eq!(with(|s| push_uint(s, 1_234_567)), "1234567");
        assert_eq!(with(|s| push_uint(s, u64::MAX)), u64::MAX.to_string());
        assert_eq!(with(|s| push_padded(s, 7, 3)), "007");
        assert_eq!(with(|s| push_padded(s, 12_345, 3)), "12345");
    }

    #[test]
    fn dates() {
        assert_eq!(with(|s| push_date(s, day_from_civil(2023, 2, 5))), "2023-02-05");
        assert_eq!(with(|s| push_date(s, day_from_civil(2024, 12, 31))), "2024-12-31");
    }

    #[test]
    fn money() {
        assert_eq!(with(|s| push_yuan(s, 50_000)), "500");
        assert_eq!(with(|s| push_yuan(s, 1_234_567)), "12345.67");
        assert_eq!(with(|s| push_yuan(s, 1_234_560)), "12345.60");
        assert_eq!(with(|s| push_yuan(s, 5)), "0.05");
        assert_eq!(with(|s| push_yuan_grouped(s, 125_000_000)), "1,250,000");
        assert_eq!(with(|s| push_yuan_grouped(s, 99_900)), "999");
        assert_eq!(with(|s| push_yuan_grouped(s, 100_000)), "1,000");
        assert_eq!(with(|s| push_yuan_grouped(s, 0)), "0");
    }
}
