//! NFKC normalisation with a map back to the original text, so that a span found in the normalised
//! text (full-width digits folded, the ideographic space made a space, compatibility forms resolved)
//! replaces exactly the right characters of what the caller handed in.
//!
//! Each original character is normalised on its own: a sequence that NFKC would compose across two
//! original characters (a base letter and a combining mark) stays two characters here. Identifiers are
//! ASCII once folded, so nothing the detectors look for is lost by this.

use std::borrow::Cow;
use std::sync::LazyLock;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// Text after NFKC, as characters, with the original byte range each one came from.
#[derive(Clone, Debug)]
pub struct Normalized {
    /// The normalised characters.
    pub chars: Vec<char>,
    /// For each normalised character, the byte range of the original character it came from.
    origin: Vec<(usize, usize)>,
}

impl Normalized {
    /// Normalises `text`.
    pub fn new(text: &str) -> Self {
        let mut chars = Vec::with_capacity(text.len());
        let mut origin = Vec::with_capacity(text.len());
        for (at, c) in text.char_indices() {
            let end = at + c.len_utf8();
            if is_plain(c) {
                chars.push(c);
                origin.push((at, end));
                continue;
            }
            if let Some(form) = cached_form(c) {
                for &n in form {
                    chars.push(n);
                    origin.push((at, end));
                }
                continue;
            }
            if unchanged(c) {
                chars.push(c);
                origin.push((at, end));
                continue;
            }
            for n in std::iter::once(c).nfkc() {
                chars.push(n);
                origin.push((at, end));
            }
        }
        Normalized { chars, origin }
    }

    /// The byte range of the original text that normalised characters `start..end` came from.
    /// `start < end <= chars.len()` must hold.
    pub fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        (self.origin[start].0, self.origin[end - 1].1)
    }

    /// The normalised text as a string.
    ///
    /// [`normalized_text`] gives the same without building the map when the text is already normal.
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }
}

/// ASCII and the Chinese characters, which NFKC leaves alone.
fn is_plain(c: char) -> bool {
    c.is_ascii() || ('\u{4E00}'..='\u{9FFF}').contains(&c)
}

/// Fast path: ASCII, Chinese characters and anything NFKC leaves alone on its own.
fn unchanged(c: char) -> bool {
    is_plain(c) || is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes
}

/// What [`Normalized::new`] makes of `c` on its own.
fn form_of(c: char) -> Vec<char> {
    if unchanged(c) { vec![c] } else { std::iter::once(c).nfkc().collect() }
}

/// The blocks outside the Chinese characters that Chinese text uses most (general punctuation, CJK
/// symbols and punctuation, kana, half- and full-width forms): each character's form is worked out
/// once.
const CACHED: [std::ops::Range<u32>; 3] = [0x2000..0x2070, 0x3000..0x3100, 0xFF00..0xFFF0];

static FORMS: LazyLock<Vec<Vec<Vec<char>>>> = LazyLock::new(|| {
    CACHED.iter().map(|r| r.clone().map(|u| char::from_u32(u).map(form_of).unwrap_or_default()).collect()).collect()
});

/// The form of `c` from the table, if `c` lies in one of the [`CACHED`] blocks.
fn cached_form(c: char) -> Option<&'static [char]> {
    let u = c as u32;
    CACHED
        .iter()
        .zip(FORMS.iter())
        .find(|(r, _)| r.contains(&u))
        .map(|(r, forms)| forms[(u - r.start) as usize].as_slice())
}

/// Whether what [`Normalized::new`] makes of `c` is `c` itself (from the table where it can).
fn stays(c: char) -> bool {
    is_plain(c) || cached_form(c).map_or_else(|| unchanged(c), |form| form == [c])
}

/// `Normalized::new(text).text()`, borrowed when every character is left alone.
pub fn normalized_text(text: &str) -> Cow<'_, str> {
    if text.chars().all(stays) { Cow::Borrowed(text) } else { Cow::Owned(Normalized::new(text).text()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_digits_fold_and_map_back() {
        let original = "号码１１０１０５１９４９１２３１００２Ｘ。";
        let n = Normalized::new(original);
        assert_eq!(n.text(), "号码11010519491231002X。");
        let (a, b) = n.original_range(2, 20);
        assert_eq!(&original[a..b], "１１０１０５１９４９１２３１００２Ｘ");
    }

    #[test]
    fn ideographic_space_and_colon_fold() {
        let n = Normalized::new("被告：\u{3000}张伟");
        assert_eq!(n.text(), "被告: 张伟");
        assert_eq!(normalized_text("被告：\u{3000}张伟"), "被告: 张伟");
        assert!(matches!(normalized_text("福建省厦门市思明区湖滨南路123号"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_table_gives_what_nfkc_gives() {
        for r in CACHED {
            for c in r.filter_map(char::from_u32) {
                let direct: Vec<char> = if c.is_ascii() || is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes {
                    vec![c]
                } else {
                    std::iter::once(c).nfkc().collect()
                };
                assert_eq!(cached_form(c), Some(direct.as_slice()), "{c:?}");
                let one = format!("a{c}张");
                assert_eq!(normalized_text(&one), Normalized::new(&one).text(), "{c:?}");
            }
        }
        assert_eq!(cached_form('张'), None);
        assert_eq!(Normalized::new("（张伟）：１２。“引”…").text(), "(张伟):12。“引”...");
    }

    #[test]
    fn one_original_character_may_expand() {
        // U+3392 SQUARE MHZ becomes three characters, all mapping to the one original.
        let original = "a㎒b";
        let n = Normalized::new(original);
        assert_eq!(n.text(), "aMHzb");
        let (a, b) = n.original_range(1, 4);
        assert_eq!(&original[a..b], "㎒");
    }
}
