//! Masking of personal identifiers in free text, applied by the gateway to everything it emits (labels,
//! error messages, audit plaintext) and by nodes to anything they echo.
//!
//! This is the first line of defence, deliberately over-eager: the detectors of [`crate::pii`] (resident
//! IDs, phones, credit codes, bank cards, plates, passports, e-mail, names after party words, addresses
//! below county level) run over the NFKC-normalised text, and then any remaining run of seven or more
//! digits is redacted as well. Dates (`YYYY-MM-DD`) and six-digit region codes stay. The output is the
//! normalised text (full-width forms folded).

pub use crate::pii::REDACTED;

/// Maps full-width ASCII forms and the ideographic space to ASCII (a subset of NFKC that covers how
/// identifiers are typed in Chinese text).
pub fn fold_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Redacts identifiers and party names in `text` (see the module documentation). Idempotent: where
/// redacting a long number exposes something the detectors find (an e-mail address whose domain was
/// glued to the digits), the masking runs again over its own output.
pub fn mask_text(text: &str) -> String {
    let (mut out, mut again) = mask_once(text);
    // Without a number redacted, the output is the scrubbed text, on which scrubbing finds nothing.
    for _ in 0..4 {
        if !again {
            break;
        }
        let (next, redacted) = mask_once(&out);
        again = redacted && next != out;
        out = next;
    }
    out
}

/// One round of [`mask_text`]: the detectors, then long numbers; also whether a number was redacted.
fn mask_once(text: &str) -> (String, bool) {
    let scrubbed = crate::pii::scrub_text(&crate::pii::normalize::Normalized::new(text).text());
    let mut redacted = false;
    let chars: Vec<char> = scrubbed.chars().collect();
    let mut out = String::with_capacity(scrubbed.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_date_at(&chars, i) {
            out.extend(&chars[i..i + 10]);
            i += 10;
            continue;
        }
        if c.is_ascii_digit() || (c == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let (end, digits) = number_span(&chars, i);
            let span: String = chars[i..end].iter().collect();
            if digits >= 7 && !is_date(&span) {
                out.push_str(REDACTED);
                redacted = true;
            } else {
                out.push_str(&span);
            }
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    (out, redacted)
}

/// Whether `text` still holds a personal identifier other than a name ([`crate::pii::detect`]) or an
/// identifier-like number (seven or more digits, not a date) after width folding.
pub fn contains_identifier(text: &str) -> bool {
    if crate::pii::detect(text).iter().any(|f| f.kind != crate::pii::Kind::PersonName) {
        return true;
    }
    let chars: Vec<char> = fold_width(text).chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_date_at(&chars, i) {
            i += 10;
        } else if chars[i].is_ascii_digit() {
            let (end, digits) = number_span(&chars, i);
            let span: String = chars[i..end].iter().collect();
            if digits >= 7 && !is_date(&span) {
                return true;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    false
}

/// The end of the number starting at `start` and how many digits it holds. Single spaces or dashes
/// between digits stay inside the number; a trailing `X`/`x` (resident ID check) too.
fn number_span(chars: &[char], start: usize) -> (usize, usize) {
    let mut i = start;
    let mut digits = 0;
    if chars[i] == '+' {
        i += 1;
    }
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            digits += 1;
            i += 1;
        } else if matches!(c, ' ' | '-')
            && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            && digits > 0
            && !is_date_at(chars, i + 1)
        {
            i += 1;
        } else if matches!(c, 'X' | 'x') && digits >= 14 {
            i += 1;
            break;
        } else {
            break;
        }
    }
    (i, digits)
}

fn is_date_at(chars: &[char], i: usize) -> bool {
    if i + 10 > chars.len() || (i > 0 && chars[i - 1].is_ascii_digit()) {
        return false;
    }
    let span: String = chars[i..i + 10].iter().collect();
    is_date(&span) && !chars.get(i + 10).is_some_and(char::is_ascii_digit)
}

fn is_date(span: &str) -> bool {
    let b = span.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && crate::period::parse_day(span).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_glued_to_a_long_number_is_masked_in_one_call() {
        // The domain ends in digits until the number is redacted; then the address is found.
        let masked = mask_text("AB1234@x.cn1101051951010807982023年");
        assert_eq!(masked, format!("{REDACTED}{REDACTED}年"));
        assert_eq!(mask_text(&masked), masked);
    }

    #[test]
    fn identifiers_in_any_written_form_are_redacted() {
        for text in [
            "身份证号11010519491231002X。",
            "身份证号11010519491231002x",
            "号码１１０１０５１９４９１２３１００２Ｘ",
            "电话+86 138 0013 8000",
            "电话0086-138-0013-8000",
            "卡号6222020000000007",
            "旧证110105491231002",
        ] {
            let masked = mask_text(text);
            assert!(!contains_identifier(&masked), "{text} -> {masked}");
            assert!(masked.contains(REDACTED), "{text} -> {masked}");
        }
    }

    #[test]
    fn codes_dates_and_short_numbers_stay() {
        assert_eq!(mask_text("350203 闽0203 2023-05-01 共12件"), "350203 闽0203 2023-05-01 共12件");
    }

    #[test]
    fn party_names_become_mou() {
        assert_eq!(mask_text("原告张伟诉被告李娜"), "原告张某诉被告李某");
        assert_eq!(mask_text("被执行人：王小明。"), "被执行人:王某。");
        assert_eq!(mask_text("被告欧阳娜娜与法定代表人买买提·艾力"), "被告欧阳某与法定代表人买某");
    }

    #[test]
    fn new_detectors_reach_every_caller() {
        for text in
            ["车牌闽D12345", "邮箱zhang@example.com", "护照E12345678", "代码92350203MA2Y0000XX", "住湖滨南路12号"]
        {
            let masked = mask_text(text);
            assert!(masked.contains(REDACTED) && !contains_identifier(&masked), "{text} -> {masked}");
        }
        // Over-eager on purpose: a long number that is no identifier is still redacted here.
        assert_eq!(mask_text("流水号12345678901234567890"), format!("流水号{REDACTED}"));
    }

    #[test]
    fn masking_is_idempotent() {
        let once = mask_text("原告张伟，电话13800138000，身份证11010519491231002X");
        assert_eq!(mask_text(&once), once);
    }
}
