//! NFKC normalisation with a map back to the original text, so that a span found in the normalised
//! text (full-width digits folded, the ideographic space made a space, compatibility forms resolved)
//! replaces exactly the right characters of what the caller handed in.
//!
//! Each original character is normalised on its own: a sequence that NFKC would compose across two
//! original characters (a base letter and a combining mark) stays two characters here. Identifiers are
//! ASCII once folded, so nothing the detectors look for is lost by this.

use std::borrow::Cow;

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

/// Fast path: ASCII, Chinese characters and anything NFKC leaves alone on its own.
fn unchanged(c: char) -> bool {
    c.is_ascii() || ('\u{4E00}'..='\u{9FFF}').contains(&c) || is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes
}

/// `Normalized::new(text).text()`, borrowed when every character is left alone.
pub fn normalized_text(text: &str) -> Cow<'_, str> {
    if text.chars().all(unchanged) { Cow::Borrowed(text) } else { Cow::Owned(Normalized::new(text).text()) }
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
    fn one_original_character_may_expand() {
        // U+3392 SQUARE MHZ becomes three characters, all mapping to the one original.
        let original = "a㎒b";
        let n = Normalized::new(original);
        assert_eq!(n.text(), "aMHzb");
        let (a, b) = n.original_range(1, 4);
        assert_eq!(&original[a..b], "㎒");
    }
}
