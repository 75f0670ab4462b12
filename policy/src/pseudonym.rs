//! Keyed pseudonyms and coarse attributes: what a node keeps instead of personal fields.
//!
//! A pseudonym is HMAC-SHA-256 under the node's own secret over a domain label and the normalised
//! value, so the same person gets the same pseudonym inside one node (aggregates can count distinct
//! parties) while nobody without the secret can test a guess. From a resident ID number only the birth
//! year, the sex and the city of issue are kept. The key never appears in `Debug` output.

use std::borrow::Cow;
use std::fmt;

use ring::hmac;

/// The node's pseudonymisation secret.
pub struct PseudonymKey(hmac::Key);

/// Why a key was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Fewer than 32 bytes of key material.
    #[error("pseudonym key must hold at least 32 bytes (64 hex digits), found {0}")]
    TooShort(usize),
    /// The key file is not hex.
    #[error("pseudonym key is not hex")]
    NotHex,
}

impl PseudonymKey {
    /// A key from raw bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < 32 {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(PseudonymKey(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    /// A key from hex text (as stored in the node's key file).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::NotHex)?;
        Self::from_bytes(&bytes)
    }

    /// The pseudonym of `value` in `domain` (e.g. `party`, `judge`): 32 hex digits.
    pub fn pseudonym(&self, domain: &str, value: &str) -> String {
        // Already normal (no lower case, no white space, nothing to fold): hashed as it is.
        let unchanged = value.chars().all(|c| {
            (c.is_ascii() && !c.is_ascii_lowercase() && !c.is_whitespace()) || ('\u{4E00}'..='\u{9FFF}').contains(&c)
        });
        let normal =
            if unchanged { Cow::Borrowed(value) } else { Cow::Owned(fold_upper(value, |c| c.is_whitespace())) };
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(domain.as_bytes());
        ctx.update(&[0]);
        ctx.update(normal.as_bytes());
        let mut out = String::with_capacity(32);
        for b in &ctx.sign().as_ref()[..16] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<secret>)")
    }
}

/// Normalises an identifier as typed: width folded, spaces and dashes removed, `x` upper-cased.
pub fn normalize_identifier(text: &str) -> String {
    fold_upper(text, |c| matches!(c, ' ' | '-'))
}

/// [`normalize_identifier`], borrowed when the text is already normal (ASCII digits and upper-case
/// letters only).
fn normal_identifier(text: &str) -> Cow<'_, str> {
    if text.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(normalize_identifier(text))
    }
}

/// `text` width-folded (as [`crate::mask::fold_width`]), without the characters `skip` selects once folded, and
/// upper-cased, in one pass with one allocation.
fn fold_upper(text: &str, skip: impl Fn(&char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        };
        if skip(&c) {
            continue;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_uppercase());
        } else {
            out.extend(c.to_uppercase());
        }
    }
    out
}

/// Lower-case hex digits, as `hex::encode` writes them.
const HEX: &[u8; 16] = b"0123456789abcdef";

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The GB 11643 check character of the first 17 digits (ISO 7064 MOD 11-2).
pub fn resident_id_check(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let s: u32 = first17.bytes().zip(ID_WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    "10X98765432".chars().nth((s % 11) as usize)
}

/// Whether `text` is an 18-character resident ID number with a valid birth date and check character.
pub fn is_valid_resident_id(text: &str) -> bool {
    is_valid_normalized_resident_id(&normal_identifier(text))
}

/// [`is_valid_resident_id`] of an identifier already through [`normalize_identifier`].
fn is_valid_normalized_resident_id(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 18 || !b.is_ascii() {
        return false;
    }
    let mut birth = *b"0000-00-00";
    birth[..4].copy_from_slice(&b[6..10]);
    birth[5..7].copy_from_slice(&b[10..12]);
    birth[8..].copy_from_slice(&b[12..14]);
    std::str::from_utf8(&birth).ok().and_then(crate::period::parse_day).is_some()
        && resident_id_check(&id[..17]) == Some(char::from(b[17]))
}

/// Sex as recorded in a resident ID number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sex {
    /// Odd sequence number.
    Male,
    /// Even sequence number.
    Female,
}

/// The coarse attributes kept from a resident ID number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdAttributes {
    /// Year of birth.
    pub birth_year: u16,
    /// Sex.
    pub sex: Sex,
    /// First four digits of the area code (city of issue).
    pub city: u16,
}

/// Derives the coarse attributes of a valid resident ID number.
pub fn derive_from_resident_id(text: &str) -> Option<IdAttributes> {
    let id = normal_identifier(text);
    if !is_valid_normalized_resident_id(&id) {
        return None;
    }
    let birth_year = id[6..10].parse().ok()?;
    let seq: u32 = id[14..17].parse().ok()?;
    let city = id[..4].parse().ok()?;
    Some(IdAttributes { birth_year, sex: if seq % 2 == 1 { Sex::Male } else { Sex::Female }, city })
}

const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Whether `text` is a unified social credit code (GB 32100) with a valid check character.
pub fn is_valid_uscc(text: &str) -> bool {
    let code = normal_identifier(text);
    if code.len() != 18 {
        return false;
    }
    let mut sum = 0;
    for (c, w) in code.chars().take(17).zip(USCC_WEIGHTS) {
        match USCC_ALPHABET.find(c) {
            Some(v) => sum += v as u32 * w,
            None => return false,
        }
    }
    let check = USCC_ALPHABET.chars().nth(((31 - sum % 31) % 31) as usize);
    check == code.chars().nth(17)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_folding_matches_fold_filter_uppercase() {
        for t in ["１１０１０５ １９４９-1231002ｘ", "a\u{3000}b\tß·ｚ", "", "张 伟-x", "E１２３４５６７８"]
        {
            let old = |skip: fn(&char) -> bool| {
                crate::mask::fold_width(t).chars().filter(|c| !skip(c)).collect::<String>().to_uppercase()
            };
            assert_eq!(normalize_identifier(t), old(|c| matches!(c, ' ' | '-')), "{t}");
            assert_eq!(fold_upper(t, |c| c.is_whitespace()), old(|c| c.is_whitespace()), "{t}");
        }
    }

    #[test]
    fn resident_id_known_answers() {
        for (id, ok) in [
            ("11010519491231002X", true),
            ("11010519491231002x", true),
            ("440524188001010014", true),
            ("110101199003071233", true),
            ("310115200001010024", true),
            ("110105194912310021", false),
            ("１１０１０５１９４９１２３１００２Ｘ", true),
        ] {
            assert_eq!(is_valid_resident_id(id), ok, "{id}");
        }
        let a = derive_from_resident_id("11010519491231002X").unwrap();
        assert_eq!((a.birth_year, a.sex, a.city), (1949, Sex::Female, 1101));
    }

    #[test]
    fn uscc_known_answers() {
        assert!(is_valid_uscc("91110000600037341L"));
        assert!(is_valid_uscc("91230184MA1BUFLT44"));
        assert!(!is_valid_uscc("91110000600037341M"));
        assert!(!is_valid_uscc("9111000060003734IL"));
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let k1 = PseudonymKey::from_bytes(&[7u8; 32]).unwrap();
        let k2 = PseudonymKey::from_bytes(&[8u8; 32]).unwrap();
        assert_eq!(k1.pseudonym("party", "11010519491231002x"), k1.pseudonym("party", "11010519491231002X"));
        assert_ne!(k1.pseudonym("party", "张伟"), k2.pseudonym("party", "张伟"));
        assert_ne!(k1.pseudonym("party", "张伟"), k1.pseudonym("judge", "张伟"));
        assert!(!format!("{k1:?}").contains('7'));
        assert!(PseudonymKey::from_bytes(&[1u8; 16]).is_err());
        // Known answer: the value is hashed as normalised, whichever path normalises it.
        let k = PseudonymKey::from_bytes(&[7u8; 32]).unwrap();
        let direct = |value: &str| {
            let mut ctx = hmac::Context::with_key(&k.0);
            ctx.update(b"party\0");
            ctx.update(value.as_bytes());
            hex::encode(&ctx.sign().as_ref()[..16])
        };
        for (typed, normal) in [("张伟", "张伟"), ("张 伟", "张伟"), ("abc 12", "ABC12"), ("J0213001", "J0213001")]
        {
            assert_eq!(k.pseudonym("party", typed), direct(normal), "{typed}");
        }
    }

    #[test]
    fn identifiers_of_other_scripts_are_refused_without_panic() {
        // 18 bytes, but not 18 ASCII characters.
        for id in ["中中中中中中", "110105中中中1002X", "１１０１０５１９４９１２３１００２Ｘ"]
        {
            assert!(!is_valid_uscc(id) || id.is_ascii());
            let _ = is_valid_resident_id(id);
            let _ = derive_from_resident_id(id);
        }
        assert!(is_valid_resident_id("１１０１０５１９４９１２３１００２Ｘ"));
        assert!(!is_valid_resident_id("中中中中中中"));
    }
}
