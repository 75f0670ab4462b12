//! Masking operators and the rule a catalogue names per field: drop, redact, partial mask (the
//! conventions of Chinese systems: `张*`, `110101********1234`, `138****5678`, card first 4 + last 4,
//! plate `闽D4***0`), keyed pseudonym (HMAC-SHA-256 under the node's secret, see
//! [`crate::pseudonym`]), generalisation (date → month or year, address → county code, resident ID →
//! birth year, sex and region of issue) and free-text scrubbing.
//!
//! A partially masked identifier still identifies a person: it is for display inside the data
//! owner's walls, never for release.

use serde::{Deserialize, Serialize};

use super::counties::county_code;
use super::detect::Kind;
use super::names::{self, is_han};
use super::normalize::Normalized;
use crate::pseudonym::{IdAttributes, PseudonymKey, derive_from_resident_id};

/// What replaces a redacted value.
pub const REDACTED: &str = "[已遮蔽]";

/// The rule applied to one field, as a catalogue names it (`rule = "partial_mask"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskingRule {
    /// The value is kept as it is (only for fields that are not personal).
    Keep,
    /// The value is not kept at all.
    Drop,
    /// The value is replaced by [`REDACTED`].
    Redact,
    /// Identifiers keep a few leading and trailing characters, names their surname.
    PartialMask,
    /// The value becomes a keyed pseudonym.
    Pseudonym,
    /// A date becomes its month, `YYYY-MM`.
    GeneraliseMonth,
    /// A date becomes its year, `YYYY`.
    GeneraliseYear,
    /// An address becomes the 6-digit code of its county, or is dropped if no county is recognised.
    GeneraliseCounty,
    /// A resident ID number (18 characters, or 15 digits of the first generation) becomes birth year,
    /// sex and region of issue (the city, first four digits of the area code).
    GeneraliseResidentId,
    /// Free text is scrubbed as judgments are for publication (see [`super::scrub_text`]).
    Scrub,
}

/// The result of applying a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Masked {
    /// Nothing is kept.
    Dropped,
    /// Text to keep.
    Text(String),
    /// The coarse attributes of a resident ID number.
    IdAttributes(IdAttributes),
}

/// Why a rule could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MaskError {
    /// The pseudonym rule was asked for without the node's key.
    #[error("the pseudonym rule needs the node's pseudonym key")]
    NoKey,
}

/// Applies `rule` to `value` of a field whose pseudonym domain is `domain`. A value the rule cannot
/// generalise (not a date, no county recognised, not a valid resident ID) is dropped.
pub fn apply_rule(
    rule: MaskingRule,
    domain: &str,
    value: &str,
    key: Option<&PseudonymKey>,
) -> Result<Masked, MaskError> {
    let text = |s: Option<String>| s.map_or(Masked::Dropped, Masked::Text);
    Ok(match rule {
        MaskingRule::Keep => Masked::Text(value.to_string()),
        MaskingRule::Drop => Masked::Dropped,
        MaskingRule::Redact => Masked::Text(REDACTED.to_string()),
        MaskingRule::PartialMask => Masked::Text(partial_mask(value)),
        MaskingRule::Pseudonym => Masked::Text(key.ok_or(MaskError::NoKey)?.pseudonym(domain, value)),
        MaskingRule::GeneraliseMonth => text(parse_date(value).map(|(y, m, _)| format!("{y:04}-{m:02}"))),
        MaskingRule::GeneraliseYear => text(parse_date(value).map(|(y, _, _)| format!("{y:04}"))),
        MaskingRule::GeneraliseCounty => {
            text(county_code(&super::normalize::normalized_text(value)).map(str::to_string))
        }
        MaskingRule::GeneraliseResidentId => {
            let upgraded = super::detect::upgrade_old_resident_id(value);
            derive_from_resident_id(upgraded.as_deref().unwrap_or(value)).map_or(Masked::Dropped, Masked::IdAttributes)
        }
        MaskingRule::Scrub => Masked::Text(super::scrub_text(value)),
    })
}

/// A date written `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYY.MM.DD` or `YYYY年M月D日`, validated.
pub fn parse_date(value: &str) -> Option<(u32, u32, u32)> {
    let text = Normalized::new(value.trim()).text();
    let parts: Vec<&str> = text.split(['-', '/', '.', '年', '月', '日']).filter(|p| !p.is_empty()).collect();
    let [y, m, d] = parts.as_slice() else { return None };
    if y.len() != 4 || ![m, d].iter().all(|p| (1..=2).contains(&p.len())) {
        return None;
    }
    let (y, m, d): (u32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    super::detect::valid_ymd(y, m, d).then_some((y, m, d))
}

/// Whether `value` on its own looks like a person's name: a surname and one to three more Chinese
/// characters, or a transliterated name with a middle dot.
pub fn looks_like_name(value: &str) -> bool {
    // At most 14 characters can look like a name: the first 15 are enough to decide.
    let mut buf = ['\0'; 15];
    let mut n = 0;
    for c in value.chars() {
        if n == buf.len() {
            return false;
        }
        buf[n] = c;
        n += 1;
    }
    let chars = &buf[..n];
    let dotted = chars.iter().filter(|c| matches!(c, '·' | '•')).count() == 1
        && chars.iter().all(|&c| is_han(c) || matches!(c, '·' | '•'))
        && (4..=14).contains(&chars.len());
    dotted
        || ((2..=4).contains(&chars.len())
            && chars.iter().all(|&c| is_han(c))
            && names::surname_at(chars, 0).is_some_and(|s| s < chars.len()))
}

/// The masked form of a name: its surname and `suffix` (`张` + `某`, `欧阳` + `*`); a transliterated
/// name keeps its first character.
pub fn mask_name(name: &str, suffix: &str) -> String {
    let keep = if name.contains(['·', '•', '‧', '・']) { 1 } else { names::surname_len(name) };
    let mut out: String = name.chars().take(keep).collect();
    out.push_str(suffix);
    out
}

fn stars(n: usize) -> String {
    "*".repeat(n)
}

fn keep_ends(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return stars(chars.len());
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&stars(chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// The partial mask of one detected identifier, from its normalised text.
pub fn partial_mask_one(kind: Kind, normalized: &str) -> String {
    let compact: String = normalized.chars().filter(|c| !matches!(c, ' ' | '-' | '+' | '·' | '.')).collect();
    match kind {
        Kind::ResidentId | Kind::OldResidentId => keep_ends(&compact.to_uppercase(), 6, 4),
        Kind::Mobile => keep_ends(&compact[compact.len().saturating_sub(11)..], 3, 4),
        Kind::BankCard => keep_ends(&compact, 4, 4),
        Kind::CreditCode | Kind::IndividualBusinessCode => keep_ends(&compact.to_uppercase(), 2, 2),
        Kind::Passport | Kind::HkMacauPermit => keep_ends(&compact.to_uppercase(), 2, 2),
        Kind::LicencePlate => {
            let head: String = compact.chars().take(2).collect();
            format!("{head}{}", keep_ends(&compact.chars().skip(2).collect::<String>(), 1, 1))
        }
        Kind::Email => match normalized.split_once('@') {
            Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
            None => REDACTED.to_string(),
        },
        Kind::PersonName => mask_name(normalized, "*"),
        Kind::Address => REDACTED.to_string(),
    }
}

/// Partially masks `value`: a bare name keeps its surname (`张*`), every identifier found in it keeps
/// the characters the conventions allow. Idempotent.
pub fn partial_mask(value: &str) -> String {
    if looks_like_name(value) && !names::is_masked_name(value) {
        return mask_name(value, "*");
    }
    super::to_fixpoint(value, |f| partial_mask_one(f.kind, &f.normalized))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_masks_follow_the_conventions() {
        assert_eq!(partial_mask("张伟"), "张*");
        assert_eq!(partial_mask("欧阳娜娜"), "欧阳*");
        assert_eq!(partial_mask("买买提·艾力"), "买*");
        assert_eq!(partial_mask("110101199003071233"), "110101********1233");
        assert_eq!(partial_mask("11010519491231002x"), "110105********002X");
        assert_eq!(partial_mask("13856785678"), "138****5678");
        assert_eq!(partial_mask("+86 138 5678 5678"), "138****5678");
        assert_eq!(partial_mask("6222020000000007"), "6222********0007");
        assert_eq!(partial_mask("闽D41230"), "闽D4***0");
        assert_eq!(partial_mask("闽DD12345"), "闽DD****5");
        assert_eq!(partial_mask("zhang@example.com"), "z***@example.com");
        assert_eq!(partial_mask("电话13856785678。"), "电话138****5678。");
        for v in ["张伟", "110101199003071233", "13856785678", "6222020000000007", "闽D41230", "欧阳娜娜"] {
            let once = partial_mask(v);
            assert_eq!(partial_mask(&once), once, "{v}");
        }
    }

    #[test]
    fn what_looks_like_a_name() {
        for yes in ["张伟", "欧阳娜娜", "买买提·艾力", "阿依古丽·依明依明依明依明依"] {
            assert!(looks_like_name(yes), "{yes}");
        }
        for no in ["张", "厦门某某贸易有限公司", "J0213001", "张伟伟伟伟", "阿依古丽·依明依明依明依明依明", ""]
        {
            assert!(!looks_like_name(no), "{no}");
        }
    }

    #[test]
    fn generalisation() {
        let g = |rule, v| apply_rule(rule, "x", v, None).unwrap();
        assert_eq!(g(MaskingRule::GeneraliseMonth, "2023-05-17"), Masked::Text("2023-05".into()));
        assert_eq!(g(MaskingRule::GeneraliseYear, "2023年5月17日"), Masked::Text("2023".into()));
        assert_eq!(g(MaskingRule::GeneraliseMonth, "2023-02-30"), Masked::Dropped);
        assert_eq!(
            g(MaskingRule::GeneraliseCounty, "福建省厦门市湖里区枋湖路12号3栋101室"),
            Masked::Text("350206".into())
        );
        assert_eq!(g(MaskingRule::GeneraliseCounty, "湖滨南路12号"), Masked::Dropped);
        match g(MaskingRule::GeneraliseResidentId, "11010519491231002X") {
            Masked::IdAttributes(a) => assert_eq!((a.birth_year, a.city), (1949, 1101)),
            other => panic!("{other:?}"),
        }
        assert_eq!(g(MaskingRule::GeneraliseResidentId, "110105194912310021"), Masked::Dropped);
        assert_eq!(
            g(MaskingRule::GeneraliseResidentId, "110105491231002"),
            g(MaskingRule::GeneraliseResidentId, "11010519491231002X")
        );
        assert_eq!(g(MaskingRule::Drop, "张伟"), Masked::Dropped);
        assert_eq!(g(MaskingRule::Redact, "张伟"), Masked::Text(REDACTED.into()));
        assert_eq!(apply_rule(MaskingRule::Pseudonym, "party", "张伟", None), Err(MaskError::NoKey));
    }

    #[test]
    fn pseudonyms_use_the_node_key() {
        let key = PseudonymKey::from_bytes(&[3u8; 32]).unwrap();
        let a = apply_rule(MaskingRule::Pseudonym, "party", "张伟", Some(&key)).unwrap();
        assert_eq!(a, Masked::Text(key.pseudonym("party", "张伟")));
        assert!(!format!("{a:?}").contains("张伟"));
    }

    #[test]
    fn rules_are_named_in_snake_case() {
        #[derive(Deserialize)]
        struct Field {
            rule: MaskingRule,
        }
        let f: Field = toml::from_str("rule = \"generalise_county\"").unwrap();
        assert_eq!(f.rule, MaskingRule::GeneraliseCounty);
        let f: Field = toml::from_str("rule = \"partial_mask\"").unwrap();
        assert_eq!(f.rule, MaskingRule::PartialMask);
    }
}
