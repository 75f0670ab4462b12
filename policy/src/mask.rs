//! Masking of personal identifiers in free text, applied by the gateway to everything it emits (labels,
//! error messages, audit plaintext) and by nodes to anything they echo.
//!
//! This is the first line of defence, deliberately over-eager: any run of seven or more digits
//! (resident ID numbers with or without the check `X`, mobile numbers with `+86`, bank cards, written
//! with spaces or dashes or in full-width digits) is redacted, and the given name after a party word
//! (原告, 被告, 当事人 …) becomes 某. Dates (`YYYY-MM-DD`) and six-digit region codes stay.

/// What replaces a redacted number.
pub const REDACTED: &str = "[已遮蔽]";

const PARTY_WORDS: &[&str] = &[
    "申请执行人",
    "被申请人",
    "被执行人",
    "被上诉人",
    "犯罪嫌疑人",
    "被害人",
    "被告人",
    "当事人",
    "申请人",
    "上诉人",
    "第三人",
    "原告",
    "被告",
];

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

fn is_han(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c) || ('\u{3400}'..='\u{4DBF}').contains(&c)
}

/// Redacts identifier-like numbers and party names in `text`.
pub fn mask_text(text: &str) -> String {
    let chars: Vec<char> = fold_width(text).chars().collect();
    let mut out = String::with_capacity(text.len());
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
            } else {
                out.push_str(&span);
            }
            i = end;
            continue;
        }
        if let Some(word) = PARTY_WORDS.iter().find(|w| starts_with(&chars[i..], w)) {
            out.push_str(word);
            i += word.chars().count();
            while i < chars.len() && matches!(chars[i], ':' | '：' | ' ') {
                out.push(chars[i]);
                i += 1;
            }
            let mut name_len = 0;
            while name_len < 3
                && chars.get(i + name_len).is_some_and(|c| is_han(*c) || *c == '·')
                && !(name_len > 0 && NAME_STOPS.contains(chars[i + name_len]))
                && !PARTY_WORDS.iter().any(|w| starts_with(&chars[i + name_len..], w))
            {
                name_len += 1;
            }
            if name_len >= 2 {
                // Keep the surname (one character; two for a compound surname is not detected here),
                // replace the given name, as judgments are published.
                out.push(chars[i]);
                out.push('某');
                i += name_len;
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Whether `text` still holds an identifier-like number after width folding.
pub fn contains_identifier(text: &str) -> bool {
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

fn starts_with(chars: &[char], word: &str) -> bool {
    let mut it = chars.iter();
    word.chars().all(|w| it.next() == Some(&w))
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

/// Characters that end a name: verbs and particles that follow a party's name in legal prose.
const NAME_STOPS: &str = "诉与和及等的因于称在向对是为、，。";

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
    }

    #[test]
    fn masking_is_idempotent() {
        let once = mask_text("原告张伟，电话13800138000，身份证11010519491231002X");
        assert_eq!(mask_text(&once), once);
    }
}
