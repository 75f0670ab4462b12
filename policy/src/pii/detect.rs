//! Detectors of personal identifiers in free text, in the manner of Presidio's recognizers: a shape
//! is found, a checksum (where the identifier has one) sets the confidence, and context words find
//! names. Detection runs over the NFKC-normalised text (see [`super::normalize`]) and checks
//! neighbours explicitly instead of trusting a regex `\b`: an identifier glued to Chinese text is
//! found, one inside a longer digit run is not.
//!
//! An identifier whose checksum fails is still reported, with a lower confidence: a typo does not make
//! a resident ID number any less personal.
//!
//! Names are found three ways: after a party word (原告, 被告人, 申请执行人 …, see [`names`]), around
//! 与 in `<name>与<name><cause>一案`, and wherever a transliterated name is written with a middle dot
//! (`买买提·艾力`). A surname starts the name (compound surnames first); a candidate followed, within
//! its phrase, by an organisation suffix (公司, 银行 …) is an organisation's and stays, and so does a
//! name already masked (`张某`, `欧阳某`). Of an address, the part below the county (road, number,
//! building, room) is found; the county and above are not personal.

use super::names::{self, is_han};
use super::normalize::Normalized;
use crate::pseudonym::{is_valid_resident_id, is_valid_uscc};

/// What a detected span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 18-character resident ID number (GB 11643), valid or not.
    ResidentId,
    /// 15-digit resident ID number of the first generation (no check digit).
    OldResidentId,
    /// Mainland mobile number, with or without `+86`/`0086`.
    Mobile,
    /// Unified social credit code of an organisation (GB 32100).
    CreditCode,
    /// Unified social credit code starting `92`: an individual business, so a natural person.
    IndividualBusinessCode,
    /// Bank card number (Luhn).
    BankCard,
    /// Motor vehicle licence plate.
    LicencePlate,
    /// Passport number.
    Passport,
    /// Mainland travel permit for Hong Kong and Macau, or home-return permit.
    HkMacauPermit,
    /// E-mail address.
    Email,
    /// A person's name.
    PersonName,
    /// The part of a postal address below county level (road, number, building, room).
    Address,
}

/// One detection, in characters of the normalised text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    /// First normalised character.
    pub start: usize,
    /// One past the last normalised character.
    pub end: usize,
    /// What was found.
    pub kind: Kind,
    /// How sure the detector is, 0 to 1.
    pub confidence: f32,
}

/// One detection, in bytes of the original text.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// Byte range in the text handed to [`detect`].
    pub range: std::ops::Range<usize>,
    /// What was found.
    pub kind: Kind,
    /// How sure the detector is, 0 to 1.
    pub confidence: f32,
    /// The normalised form of the span (full-width folded), for the operators.
    pub normalized: String,
}

/// Every personal identifier in `text`, non-overlapping, in order.
pub fn detect(text: &str) -> Vec<Found> {
    let n = Normalized::new(text);
    detect_normalized(&n)
        .into_iter()
        .map(|s| {
            let (a, b) = n.original_range(s.start, s.end);
            Found {
                range: a..b,
                kind: s.kind,
                confidence: s.confidence,
                normalized: n.chars[s.start..s.end].iter().collect(),
            }
        })
        .collect()
}

/// Every personal identifier in normalised characters, non-overlapping, in order.
pub fn detect_normalized(n: &Normalized) -> Vec<Span> {
    let c = &n.chars;
    let mut all = Vec::new();
    digit_runs(c, &mut all);
    alnum_tokens(c, &mut all);
    plates(c, &mut all);
    emails(c, &mut all);
    names_after_party_words(c, &mut all);
    names_around_yu(c, &mut all);
    dotted_names(c, &mut all);
    addresses(c, &mut all);
    let kept = resolve(all);
    repeated_names(c, kept)
}

/// Every other mention of a name found in context (after a party word, around 与, with a middle
/// dot): a party named once (`原告张伟`) is often named again bare (`张伟称`), and that mention is as
/// personal. Where a longer name starts with the known one (`欧阳娜` then `欧阳娜娜`), the longer one
/// is taken, so no given-name character is left behind.
fn repeated_names(c: &[char], kept: Vec<Span>) -> Vec<Span> {
    let mut known: Vec<&[char]> =
        kept.iter().filter(|s| s.kind == Kind::PersonName).map(|s| &c[s.start..s.end]).collect();
    if known.is_empty() {
        return kept;
    }
    known.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    known.dedup();
    let mut all = kept.clone();
    let free = |a: usize, b: usize| kept.iter().all(|k| b <= k.start || a >= k.end);
    for name in known {
        let mut i = 0;
        while i + name.len() <= c.len() {
            if c[i] == name[0] && c[i..].starts_with(name) && free(i, i + name.len()) {
                let len = name_at(c, i).filter(|&l| l > name.len()).unwrap_or(name.len());
                push(&mut all, i, i + len, Kind::PersonName, 0.75);
                i += len;
            } else {
                i += 1;
            }
        }
    }
    resolve(all)
}

/// Keeps the longest (then the most confident) of overlapping spans.
fn resolve(mut all: Vec<Span>) -> Vec<Span> {
    all.sort_by(|a, b| {
        (b.end - b.start)
            .cmp(&(a.end - a.start))
            .then(b.confidence.total_cmp(&a.confidence))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Span> = Vec::new();
    for s in all {
        if kept.iter().all(|k| s.end <= k.start || s.start >= k.end) {
            kept.push(s);
        }
    }
    kept.sort_by_key(|s| s.start);
    kept
}

fn push(out: &mut Vec<Span>, start: usize, end: usize, kind: Kind, confidence: f32) {
    out.push(Span { start, end, kind, confidence });
}

/// Luhn check over ASCII digits.
pub fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// Whether `y-m-d` is a calendar date.
pub fn valid_ymd(y: u32, m: u32, d: u32) -> bool {
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn num(s: &str) -> u32 {
    s.parse().unwrap_or(0)
}

/// Whether an 18-digit string carries a plausible birth date (1900–2099) at positions 7–14.
fn id_date_ok(id: &str) -> bool {
    let y = num(&id[6..10]);
    (1900..2100).contains(&y) && valid_ymd(y, num(&id[10..12]), num(&id[12..14]))
}

/// Whether a 15-digit string is an old resident ID number: a valid date `YYMMDD` (19YY) at 7–12.
pub fn is_old_resident_id(id: &str) -> bool {
    id.len() == 15
        && id.bytes().all(|b| b.is_ascii_digit())
        && valid_ymd(1900 + num(&id[6..8]), num(&id[8..10]), num(&id[10..12]))
}

/// The 18-character form of a 15-digit resident ID number: `19` inserted before the year and the
/// check character computed (GB 11643).
pub fn upgrade_old_resident_id(old: &str) -> Option<String> {
    let old = Normalized::new(old).text();
    if !is_old_resident_id(&old) {
        return None;
    }
    let first17 = format!("{}19{}", &old[..6], &old[6..]);
    let check = crate::pseudonym::resident_id_check(&first17)?;
    Some(format!("{first17}{check}"))
}

fn is_mobile(d: &str) -> bool {
    d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9')
}

/// Classifies a number written as digits (with a possible final `X`), `plus` when a `+` precedes it.
fn classify_number(d: &str, plus: bool) -> Option<(Kind, f32)> {
    let len = d.len();
    if d.ends_with('X') {
        return (len == 18).then(|| (Kind::ResidentId, if is_valid_resident_id(d) { 0.95 } else { 0.6 }));
    }
    for prefix in ["0086", "86"] {
        if let Some(rest) = d.strip_prefix(prefix)
            && is_mobile(rest)
        {
            return Some((Kind::Mobile, if plus || prefix == "0086" { 0.9 } else { 0.7 }));
        }
    }
    if plus {
        return None;
    }
    let card_prefix = d.starts_with("62") || d.starts_with('4') || d.starts_with('5');
    match len {
        11 if is_mobile(d) => Some((Kind::Mobile, 0.85)),
        15 if is_old_resident_id(d) => Some((Kind::OldResidentId, 0.7)),
        15 if luhn_ok(d) && card_prefix => Some((Kind::BankCard, 0.5)),
        18 if is_valid_resident_id(d) => Some((Kind::ResidentId, 0.95)),
        18 if d.starts_with("62") && luhn_ok(d) => Some((Kind::BankCard, 0.8)),
        18 if id_date_ok(d) => Some((Kind::ResidentId, 0.6)),
        18 if luhn_ok(d) => Some((Kind::BankCard, 0.6)),
        // ID-shaped: 18 digits with a wrong check still counts as a resident ID number.
        18 => Some((Kind::ResidentId, 0.4)),
        16 | 17 | 19 if luhn_ok(d) => Some((Kind::BankCard, if card_prefix { 0.9 } else { 0.7 })),
        16 | 17 | 19 if d.starts_with("62") => Some((Kind::BankCard, 0.3)),
        _ => None,
    }
}

/// Numbers written with digits, single spaces or dashes between groups, an optional `+` and a final
/// `X`. A maximal run is classified whole; failing that, runs of consecutive groups are tried (so a
/// year followed by a phone number splits), but never a part of one group (a longer digit run is not
/// an identifier).
fn digit_runs(c: &[char], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < c.len() {
        let starts = c[i].is_ascii_digit() && (i == 0 || !c[i - 1].is_ascii_digit());
        if !starts {
            i += 1;
            continue;
        }
        let plus_at = (i > 0 && c[i - 1] == '+').then(|| i - 1);
        // Groups: (start, end) of each maximal digit run.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut j = i;
        loop {
            let g = j;
            while j < c.len() && c[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((g, j));
            if j + 1 < c.len() && matches!(c[j], ' ' | '-') && c[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        // A check `X` may close the last group, if no letter follows (a digit may: an ID glued to a
        // phone number is still an ID).
        let x_end = (j < c.len() && matches!(c[j], 'X' | 'x') && !c.get(j + 1).is_some_and(char::is_ascii_alphabetic))
            .then_some(j + 1);
        let mut a = 0;
        while a < groups.len() {
            let mut taken = None;
            for b in (a + 1..=groups.len()).rev() {
                let mut d: String = groups[a..b].iter().flat_map(|&(s, e)| c[s..e].iter()).collect();
                let mut end = groups[b - 1].1;
                if b == groups.len()
                    && let Some(xe) = x_end
                    && d.len() == 17
                {
                    d.push('X');
                    end = xe;
                }
                let plus = a == 0 && plus_at.is_some();
                if let Some((kind, conf)) = classify_number(&d, plus) {
                    let start = if plus { plus_at.unwrap_or(groups[a].0) } else { groups[a].0 };
                    push(out, start, end, kind, conf);
                    taken = Some(b);
                    break;
                }
            }
            a = taken.unwrap_or(a + 1);
        }
        i = x_end.unwrap_or(j).max(i + 1);
    }
}

const USCC_FIRST: &str = "123456789ANY";

/// Maximal ASCII alphanumeric tokens: credit codes, passports and permits.
fn alnum_tokens(c: &[char], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < c.len() {
        if !c[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let s = i;
        while i < c.len() && c[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if !matches!(i - s, 9 | 11 | 18) {
            continue;
        }
        let tok: String = c[s..i].iter().collect::<String>().to_ascii_uppercase();
        if let Some((kind, conf)) = classify_token(&tok) {
            push(out, s, i, kind, conf);
        }
    }
}

fn classify_token(t: &str) -> Option<(Kind, f32)> {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let all_digits = digits(0..b.len());
    if b.len() == 18 {
        let code_kind = if t.starts_with("92") { Kind::IndividualBusinessCode } else { Kind::CreditCode };
        if is_valid_uscc(t) && !(all_digits && is_valid_resident_id(t)) {
            return Some((code_kind, 0.95));
        }
        if !all_digits
            && !digits(0..17)
            && USCC_FIRST.contains(t.chars().next()?)
            && digits(2..8)
            && t.chars().all(|ch| "0123456789ABCDEFGHJKLMNPQRTUWXY".contains(ch))
        {
            return Some((code_kind, 0.5));
        }
    }
    match (b.len(), b.first()?) {
        (9, b'E' | b'G') if digits(1..9) => Some((Kind::Passport, 0.8)),
        (9, b'E') if b[1].is_ascii_uppercase() && digits(2..9) => Some((Kind::Passport, 0.7)),
        (9, b'C' | b'H' | b'M') if digits(1..9) => Some((Kind::HkMacauPermit, 0.8)),
        (11, b'H' | b'M') if digits(1..11) => Some((Kind::HkMacauPermit, 0.7)),
        _ => None,
    }
}

/// Province abbreviations used on licence plates.
const PLATE_PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

/// `闽D12345`, `闽D·12345`, new-energy `闽DD12345`.
fn plates(c: &[char], out: &mut Vec<Span>) {
    for i in 0..c.len() {
        if !c.get(i + 1).is_some_and(char::is_ascii_uppercase) || !PLATE_PROVINCES.contains(c[i]) {
            continue;
        }
        let mut j = i + 2;
        if c.get(j).is_some_and(|ch| matches!(ch, '·' | ' ' | '-' | '.')) {
            j += 1;
        }
        let s = j;
        while j < c.len() && c[j].is_ascii_alphanumeric() {
            j += 1;
        }
        let body = &c[s..j];
        let letters_ok = body.iter().all(|ch| ch.is_ascii_digit() || ch.is_ascii_uppercase());
        if matches!(body.len(), 5 | 6) && letters_ok && body.iter().filter(|ch| ch.is_ascii_digit()).count() >= 3 {
            push(out, i, j, Kind::LicencePlate, if body.len() == 5 { 0.8 } else { 0.75 });
        }
    }
}

fn local_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || "._%+-".contains(ch)
}

fn emails(c: &[char], out: &mut Vec<Span>) {
    for at in 0..c.len() {
        if c[at] != '@' {
            continue;
        }
        let mut s = at;
        while s > 0 && local_char(c[s - 1]) {
            s -= 1;
        }
        let mut e = at + 1;
        while e < c.len() && (c[e].is_ascii_alphanumeric() || matches!(c[e], '.' | '-')) {
            e += 1;
        }
        while e > at + 1 && matches!(c[e - 1], '.' | '-') {
            e -= 1;
        }
        let domain: String = c[at + 1..e].iter().collect();
        let tld_ok = domain.rsplit_once('.').is_some_and(|(head, tld)| {
            !head.is_empty() && tld.len() >= 2 && tld.chars().all(|x| x.is_ascii_alphabetic())
        });
        if s < at && tld_ok {
            push(out, s, e, Kind::Email, 0.9);
        }
    }
}

/// The length of a name (surname + one or two given characters) at `c[i..]`, if one is there and is
/// not already masked.
fn name_at(c: &[char], i: usize) -> Option<usize> {
    let dot_near = c.iter().skip(i).take(8).any(|&d| is_dot(d));
    if dot_near && let Some(len) = dotted_name_at(c, i) {
        return Some(len);
    }
    let s = names::surname_at(c, i)?;
    if names::party_word_at(c, i).is_some() || names::not_name_at(c, i) {
        return None;
    }
    let mut given = 0;
    while given < 2 {
        let k = i + s + given;
        let Some(&ch) = c.get(k) else { break };
        if !is_han(ch)
            || names::is_name_stop(ch)
            || names::party_word_at(c, k).is_some()
            || names::not_name_at(c, k)
            || (given == 1 && names::cause_head_at(c, k))
        {
            break;
        }
        given += 1;
    }
    (given > 0 && !names::organisation_follows(c, i + s)).then_some(s + given)
}

/// Names in `<name>与<name><cause>一案`: a name opening a sentence and followed by `与`/`诉`, and a
/// name right after `与` (the other party; an organisation there is recognised by its suffix).
fn names_around_yu(c: &[char], out: &mut Vec<Span>) {
    for i in 0..c.len() {
        let sentence_start = i == 0 || matches!(c[i - 1], '。' | '；' | ';' | '\n' | ':');
        if sentence_start
            && let Some(len) = name_at(c, i)
            && c.get(i + len).is_some_and(|&n| matches!(n, '与' | '诉'))
        {
            push(out, i, i + len, Kind::PersonName, 0.7);
        }
        if c[i] == '与'
            && i > 0
            && c[i - 1] != '参'
            && let Some(len) = name_at(c, i + 1)
        {
            push(out, i + 1, i + 1 + len, Kind::PersonName, 0.65);
        }
    }
}

/// A transliterated name written with a middle dot (`买买提·艾力`) starting exactly at `c[i]`: two
/// runs of two to six Chinese characters around the dot.
fn dotted_name_at(c: &[char], i: usize) -> Option<usize> {
    let part = |from: usize| {
        let mut k = from;
        while k < c.len()
            && k - from < 6
            && is_han(c[k])
            && !names::is_dot_name_stop(c[k])
            && (k == from || names::party_word_at(c, k).is_none())
            && (k < from + 2 || !names::cause_head_at(c, k))
        {
            k += 1;
        }
        k
    };
    let j = part(i);
    if j < i + 2 || !c.get(j).is_some_and(|&d| is_dot(d)) || names::party_word_at(c, j + 1).is_some() {
        return None;
    }
    let k = part(j + 1);
    (k >= j + 3).then_some(k - i)
}

fn is_dot(c: char) -> bool {
    matches!(c, '·' | '•' | '‧' | '・')
}

fn names_after_party_words(c: &[char], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < c.len() {
        let Some(word) = names::party_word_at(c, i) else {
            i += 1;
            continue;
        };
        let mut j = i + word.chars().count();
        while j < c.len() && matches!(c[j], ':' | ' ') {
            j += 1;
        }
        match name_at(c, j) {
            Some(len) => {
                push(out, j, j + len, Kind::PersonName, 0.85);
                i = j + len;
            }
            None => i = j,
        }
    }
}

/// Names with a middle dot anywhere: a run of Chinese characters, a dot, another run.
fn dotted_names(c: &[char], out: &mut Vec<Span>) {
    for d in 0..c.len() {
        if !is_dot(c[d]) || d == 0 || !is_han(c[d - 1]) {
            continue;
        }
        let mut s = d;
        while s > 0 && d - s < 6 && is_han(c[s - 1]) && !names::is_dot_name_stop(c[s - 1]) {
            s -= 1;
        }
        // Do not swallow a party word in front of the name (`被告人买买提·艾力`).
        for q in s.saturating_sub(8)..d {
            if let Some(w) = names::party_word_at(c, q) {
                s = s.max(q + w.chars().count());
            }
        }
        if s < d
            && let Some(len) = dotted_name_at(c, s)
        {
            push(out, s, s + len, Kind::PersonName, 0.8);
        }
    }
}

/// Characters that end a county-level (or higher) place name; what follows is below county level.
const COUNTY_MARKS: &str = "省市区县旗州盟";
/// Characters that end a road, street or village name.
const ROAD_ENDS: &str = "路街道巷弄里村组胡同坊";
/// Characters that can introduce an address and are not part of it.
const ADDRESS_INTRO: &str = "住址在于居位至为是：:，,。（）() ";

/// Street addresses: `<road><number>号[<building>栋|幢|座][<unit>单元][<room>室]`, the span starting
/// after the last county-level place name. The county and above stay (they are not personal).
fn addresses(c: &[char], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < c.len() {
        if c[i] != '号' || i == 0 || !c[i - 1].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Digits (with `-`) before 号, then the road name before them.
        let mut s = i;
        while s > 0 && (c[s - 1].is_ascii_digit() || c[s - 1] == '-') {
            s -= 1;
        }
        if s == 0 || !ROAD_ENDS.contains(c[s - 1]) {
            i += 1;
            continue;
        }
        let mut r = s;
        while r > 0
            && s - r < 12
            && is_han(c[r - 1])
            && !COUNTY_MARKS.contains(c[r - 1])
            && !ADDRESS_INTRO.contains(c[r - 1])
        {
            r -= 1;
        }
        // The unit part after 号.
        let mut e = i + 1;
        loop {
            let mut k = e;
            if c.get(k) == Some(&'之') {
                k += 1;
            }
            let d0 = k;
            while k < c.len() && (c[k].is_ascii_digit() || c[k] == '-') {
                k += 1;
            }
            if k == d0 {
                break;
            }
            let unit = ["栋", "幢", "座", "单元", "楼", "层", "室", "号", "户"]
                .iter()
                .find(|u| names::starts_with(&c[k..], u));
            match unit {
                Some(u) => e = k + u.chars().count(),
                None if c[d0 - 1] == '之' => e = k,
                None => break,
            }
        }
        if r < s {
            push(out, r, e, Kind::Address, 0.7);
        }
        i = e.max(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, String)> {
        detect(text).into_iter().map(|f| (f.kind, text[f.range].to_string())).collect()
    }

    fn one(text: &str, kind: Kind, span: &str) {
        assert_eq!(kinds(text), vec![(kind, span.to_string())], "{text}");
    }

    #[test]
    fn resident_ids_in_every_written_form() {
        one("11010519491231002X", Kind::ResidentId, "11010519491231002X");
        one("440524188001010014", Kind::ResidentId, "440524188001010014");
        one("110101199003071233", Kind::ResidentId, "110101199003071233");
        one("310115200001010024", Kind::ResidentId, "310115200001010024");
        one("身份证号11010519491231002x。", Kind::ResidentId, "11010519491231002x");
        one("号码１１０１０５１９４９１２３１００２Ｘ后", Kind::ResidentId, "１１０１０５１９４９１２３１００２Ｘ");
        one("证号110105 19491231 002X，", Kind::ResidentId, "110105 19491231 002X");
        one("证号110105-19491231-002X", Kind::ResidentId, "110105-19491231-002X");
        one("旧证110105491231002号", Kind::OldResidentId, "110105491231002");
    }

    #[test]
    fn old_ids_upgrade_as_the_standard_says() {
        assert_eq!(upgrade_old_resident_id("110105491231002").as_deref(), Some("11010519491231002X"));
        assert!(is_valid_resident_id("11010519491231002X"));
        assert_eq!(upgrade_old_resident_id("110105491331002"), None);
        assert_eq!(upgrade_old_resident_id("11010549123100"), None);
    }

    #[test]
    fn wrong_check_is_still_a_resident_id_with_less_confidence() {
        let f = detect("身份证110105194912310021");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, Kind::ResidentId);
        let good = detect("身份证11010519491231002X");
        assert!(f[0].confidence < good[0].confidence);
    }

    #[test]
    fn longer_digit_runs_are_not_identifiers() {
        assert!(detect("编号11010519491231002XA").is_empty());
        assert_eq!(kinds("11010519491231002X13800138000").len(), 2);
        assert!(detect("流水号12345678901234567890").is_empty());
        assert!(!detect("流水号911010519491231002X").iter().any(|f| f.kind == Kind::ResidentId));
        assert!(detect("1138001380001").is_empty());
    }

    #[test]
    fn ordinary_numbers_stay() {
        for t in [
            "标的额12345.00元",
            "（2023）闽0213民初1234号",
            "(2023)闽0213民初1234号",
            "2023-05-01",
            "2023年5月1日",
            "共12件，350203",
            "金额1,234,567.89元",
        ] {
            assert!(detect(t).is_empty(), "{t}: {:?}", kinds(t));
        }
    }

    #[test]
    fn mobiles() {
        one("电话13800138000", Kind::Mobile, "13800138000");
        one("电话+86 138 0013 8000。", Kind::Mobile, "+86 138 0013 8000");
        one("电话+86 138-0013-8000", Kind::Mobile, "+86 138-0013-8000");
        one("0086-13800138000", Kind::Mobile, "0086-13800138000");
        one("手机138-0592-1234", Kind::Mobile, "138-0592-1234");
        one("２０２３ 13800138000", Kind::Mobile, "13800138000");
        assert!(detect("12800138000").is_empty());
    }

    #[test]
    fn credit_codes_and_individual_businesses() {
        one("统一社会信用代码91110000600037341L。", Kind::CreditCode, "91110000600037341L");
        one("代码91230184MA1BUFLT44", Kind::CreditCode, "91230184MA1BUFLT44");
        let f = detect("代码92350203MA2Y0000XX");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, Kind::IndividualBusinessCode);
        assert!(f[0].confidence < 0.9);
    }

    #[test]
    fn bank_cards_need_luhn() {
        one("卡号6222020000000007", Kind::BankCard, "6222020000000007");
        one("卡号6222 0200 0000 0007", Kind::BankCard, "6222 0200 0000 0007");
        assert!(luhn_ok("6222020000000007") && !luhn_ok("6222020000000008"));
        assert!(detect("单号1234567890123456").is_empty());
    }

    #[test]
    fn plates_passports_permits_emails() {
        one("车牌闽D12345被扣", Kind::LicencePlate, "闽D12345");
        one("闽DD12345", Kind::LicencePlate, "闽DD12345");
        one("闽D·A1234", Kind::LicencePlate, "闽D·A1234");
        one("护照E12345678", Kind::Passport, "E12345678");
        one("护照号G12345678。", Kind::Passport, "G12345678");
        one("通行证C12345678", Kind::HkMacauPermit, "C12345678");
        one("回乡证H12345678", Kind::HkMacauPermit, "H12345678");
        one("邮箱zhang.wei+x@example.com.cn。", Kind::Email, "zhang.wei+x@example.com.cn");
        assert!(detect("闽0213").is_empty());
    }

    #[test]
    fn names_after_party_words() {
        assert_eq!(
            kinds("原告张伟诉被告欧阳娜娜"),
            vec![(Kind::PersonName, "张伟".into()), (Kind::PersonName, "欧阳娜娜".into())]
        );
        one("被执行人：王小明。", Kind::PersonName, "王小明");
        one("法定代表人李娜，", Kind::PersonName, "李娜");
        one("被告人买买提·艾力犯盗窃罪", Kind::PersonName, "买买提·艾力");
        one("证人阿依古丽·依明，", Kind::PersonName, "阿依古丽·依明");
        one("申请执行人艾合买提·阿不都，", Kind::PersonName, "艾合买提·阿不都");
        one("被告古丽娜尔·依明生命权纠纷", Kind::PersonName, "古丽娜尔·依明");
        one("申请人杨梅申请对被申请人", Kind::PersonName, "杨梅");
        one("上诉人林芳因与被上诉人", Kind::PersonName, "林芳");
        one("原审被告人陈泽（身份证号码", Kind::PersonName, "陈泽");
        one("异议人魏梅婷（", Kind::PersonName, "魏梅婷");
    }

    #[test]
    fn a_verb_after_a_one_character_given_name_is_not_part_of_the_name() {
        // Not 王强调 + 解: the name is 王强, and 调解 (mediation) follows it.
        one("原告王强调解不成", Kind::PersonName, "王强");
        assert_eq!(crate::pii::scrub_text("原告王强调解不成，被告李明诉称"), "原告王某调解不成，被告李某诉称");
        one("被告张伟拖欠货款", Kind::PersonName, "张伟");
        one("被告人刘军驾驶车辆", Kind::PersonName, "刘军");
        // Two-character given names are still taken whole.
        one("原告王强国调解不成", Kind::PersonName, "王强国");
    }

    #[test]
    fn names_around_yu() {
        assert_eq!(
            kinds("林霞霞与方志雅民间借贷纠纷一案。"),
            vec![(Kind::PersonName, "林霞霞".into()), (Kind::PersonName, "方志雅".into())]
        );
        one("交通银行股份有限公司太平洋信用卡中心与王敏萍信用卡纠纷一案", Kind::PersonName, "王敏萍");
        one("中信银行股份有限公司与李霞民间借贷纠纷一案", Kind::PersonName, "李霞");
        one("诉被告汪敏薇公司解散纠纷一案", Kind::PersonName, "汪敏薇");
        one("陈华与厦门恒润房地产开发有限公司生命权纠纷一案", Kind::PersonName, "陈华");
        // Organisations after 与 stay.
        for t in [
            "陈某与华夏银行股份有限公司金融借款合同纠纷",
            "甲与平安银行信用卡中心",
            "参与马拉松",
            "原告诉称",
            "被告公民身份号码",
            "被告阳光财产保险股份有限公司",
            "原告马上消费金融股份有限公司",
        ] {
            assert!(detect(t).is_empty(), "{t}: {:?}", kinds(t));
        }
    }

    #[test]
    fn masked_names_and_non_names_stay() {
        for t in
            ["原告张某诉被告欧阳某", "被告张某某", "判令被告支付货款", "原告诉称", "被告尚欠", "被告厦门某贸易有限公司"]
        {
            assert!(detect(t).is_empty(), "{t}: {:?}", kinds(t));
        }
    }

    #[test]
    fn addresses_below_county_level() {
        one("被告住福建省厦门市思明区湖滨南路123号5栋1201室。", Kind::Address, "湖滨南路123号5栋1201室");
        one("住所地福州市鼓楼区五四路8号之3", Kind::Address, "五四路8号之3");
        one("住中山路1号", Kind::Address, "中山路1号");
    }
}
