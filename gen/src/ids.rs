//! Check characters of the two national identifiers the datasets carry, and their generation.
//!
//! - Resident ID (居民身份证号码, GB 11643-1999): area code, birth date, sequence (odd = male), then
//!   an ISO 7064 MOD 11-2 check character.
//! - Unified social credit code (统一社会信用代码, GB 32100-2015): registration authority and
//!   category, area code, the organisation code (GB 11714, itself with a check character), then a
//!   MOD 31 check character.
//!
//! The validators check form and check character only, as `testdata/pii/identifiers.md` defines
//! validity: they do not look up area codes or test that a birth date exists.

use crate::sample::{GenRng, splitmix, uniform};
use crate::text::push_padded;

const RESIDENT_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const RESIDENT_CHECKS: &[u8; 11] = b"10X98765432";

/// The 31 characters a unified social credit code may use (no I, O, S, V, Z).
pub(crate) const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const ORG_CODE_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// The check character (`0`–`9` or `X`) of a resident ID, from its first 17 characters.
///
/// Returns `'?'`, which never matches a real check character, when `first17` is not exactly 17
/// ASCII digits.
pub fn resident_id_check(first17: &str) -> char {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 || !bytes.iter().all(u8::is_ascii_digit) {
        return '?';
    }
    let sum: u32 = bytes.iter().zip(RESIDENT_WEIGHTS).map(|(&b, w)| u32::from(b - b'0') * w).sum();
    char::from(RESIDENT_CHECKS[(sum % 11) as usize])
}

/// Whether `s` is an 18-character resident ID whose check character is right (`x` accepted for `X`).
pub fn is_valid_resident_id(s: &str) -> bool {
    if s.len() != 18 || !s.is_ascii() {
        return false;
    }
    let (body, check) = s.split_at(17);
    let check = check.as_bytes()[0].to_ascii_uppercase();
    resident_id_check(body) == char::from(check)
}

fn uscc_value(b: u8) -> Option<u32> {
    USCC_ALPHABET.iter().position(|&a| a == b).map(|i| i as u32)
}

/// The check character of a unified social credit code, from its first 17 characters.
///
/// Returns `'?'`, which never matches a real check character, when `first17` is not exactly 17
/// characters of the code's alphabet (digits and upper-case letters other than I, O, S, V, Z).
pub fn uscc_check(first17: &str) -> char {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 {
        return '?';
    }
    let mut sum = 0u32;
    for (&b, w) in bytes.iter().zip(USCC_WEIGHTS) {
        let Some(v) = uscc_value(b) else { return '?' };
        sum += v * w;
    }
    char::from(USCC_ALPHABET[((31 - sum % 31) % 31) as usize])
}

/// Whether `s` is an 18-character unified social credit code whose check character is right.
pub fn is_valid_uscc(s: &str) -> bool {
    if s.len() != 18 || !s.is_ascii() {
        return false;
    }
    let (body, check) = s.split_at(17);
    uscc_check(body) == char::from(check.as_bytes()[0])
}

/// The GB 11714 check character of an organisation code's first 8 characters (digits and
/// upper-case letters, A = 10 … Z = 35).
pub(crate) fn org_code_check(first8: &[u8; 8]) -> u8 {
    let sum: u32 = first8
        .iter()
        .zip(ORG_CODE_WEIGHTS)
        .map(|(&b, w)| {
            let v = if b.is_ascii_digit() { u32::from(b - b'0') } else { u32::from(b - b'A') + 10 };
            v * w
        })
        .sum();
    match 11 - sum % 11 {
        10 => b'X',
        11 => b'0',
        c => b'0' + c as u8,
    }
}

/// Appends a resident ID for a person born on `birth` (`(year, month, day)`) in `area` (6 digits).
pub(crate) fn push_resident_id(out: &mut String, rng: &mut GenRng, area: &str, birth: (i32, u32, u32), male: bool) {
    let start = out.len();
    out.push_str(area);
    push_padded(out, birth.0.max(0) as u64, 4);
    push_padded(out, u64::from(birth.1), 2);
    push_padded(out, u64::from(birth.2), 2);
    let sequence = if male { uniform(rng, 0, 499) * 2 + 1 } else { uniform(rng, 1, 499) * 2 };
    push_padded(out, u64::from(sequence), 3);
    let check = resident_id_check(&out[start..]);
    out.push(check);
}

/// Appends a unified social credit code derived from `key` (normally a hash of the holder's name,
/// so the same organisation always gets the same code). `head` is the registration authority and
/// category (`91` enterprise, `92` individual business, `11` government body, `12` public
/// institution); `area` is the 6-digit area code of the registering office.
pub(crate) fn push_uscc(out: &mut String, head: &str, area: &str, key: u64) {
    let mut state = key;
    let mut org = [0u8; 8];
    let bits = splitmix(&mut state);
    // Government bodies and public institutions keep all-digit codes.
    if bits & 3 != 0 && head.starts_with('9') {
        // Codes issued since 2015 start with "MA" (or "MA" + a digit); older ones are all digits.
        org[0] = b'M';
        org[1] = b'A';
        for slot in &mut org[2..] {
            *slot = USCC_ALPHABET[(splitmix(&mut state) % 31) as usize];
        }
    } else {
        for slot in &mut org {
            *slot = b'0' + (splitmix(&mut state) % 10) as u8;
        }
        if org[0] == b'0' {
            org[0] = b'7';
        }
    }
    let start = out.len();
    out.push_str(head);
    out.push_str(area);
    out.extend(org.iter().map(|&b| char::from(b)));
    out.push(char::from(org_code_check(&org)));
    let check = uscc_check(&out[start..]);
    out.push(check);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::rng_for;

    #[test]
    fn resident_id_known_answers() {
        for valid in ["11010519491231002X", "440524188001010014", "110101199003071233", "310115200001010024"] {
            assert!(is_valid_resident_id(valid), "{valid}");
        }
        assert!(is_valid_resident_id("11010519491231002x"), "lowercase x is accepted");
        assert!(!is_valid_resident_id("110105194912310021"), "wrong check");
        assert_eq!(resident_id_check("11010519491231002"), 'X');
        assert_eq!(resident_id_check("44052418800101001"), '4');
        // The old 15-digit form converts by inserting "19" before the year.
        assert_eq!(resident_id_check("11010519491231002"), 'X');
    }

    #[test]
    fn resident_id_rejects_malformed_input() {
        assert_eq!(resident_id_check("1101051949123100"), '?');
        assert_eq!(resident_id_check("1101051949123100A"), '?');
        for bad in ["", "11010519491231002", "1101051949123100XX", "110105194912310０2X", "11010519491231002Y"] {
            assert!(!is_valid_resident_id(bad), "{bad}");
        }
    }

    #[test]
    fn uscc_known_answers() {
        assert!(is_valid_uscc("91110000600037341L"));
        assert!(is_valid_uscc("91230184MA1BUFLT44"));
        assert!(!is_valid_uscc("91110000600037341M"));
        assert!(!is_valid_uscc("91230184MA1BUFLT4"));
        assert!(!is_valid_uscc("91230184MA1BUFLTI4"), "I is not in the alphabet");
        assert_eq!(uscc_check("91110000600037341"), 'L');
        assert_eq!(uscc_check("9111000060003734"), '?');
    }

    #[test]
    fn organisation_code_check_matches_published_codes() {
        // The organisation codes inside the two known-good credit codes carry GB 11714 checks.
        assert_eq!(org_code_check(b"MA1BUFLT"), b'4');
        assert_eq!(org_code_check(b"60003734"), b'1');
    }

    #[test]
    fn generated_identifiers_pass_their_checks() {
        let mut rng = rng_for(7, 0, b"idtest\0\0");
        let mut saw_x = false;
        for i in 0..5_000u64 {
            let mut id = String::new();
            push_resident_id(&mut id, &mut rng, "350203", (1988, 5, 12), i % 2 == 0);
            assert!(is_valid_resident_id(&id), "{id}");
            let sequence: u32 = id[14..17].parse().unwrap();
            assert_eq!(sequence % 2 == 1, i % 2 == 0, "odd sequence means male: {id}");
            saw_x |= id.ends_with('X');
            let mut code = String::new();
            push_uscc(&mut code, if i % 3 == 0 { "92" } else { "91" }, "350200", i);
            assert!(is_valid_uscc(&code), "{code}");
            let org: [u8; 8] = code.as_bytes()[8..16].try_into().unwrap();
            assert_eq!(org_code_check(&org), code.as_bytes()[16], "{code}");
        }
        assert!(saw_x);
    }
}
