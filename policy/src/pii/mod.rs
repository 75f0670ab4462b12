//! Personal information in values and free text: detection, masking operators and the scrubbing of
//! free text as judgments are scrubbed for publication.
//!
//! The pipeline follows Presidio's (recognizer → checksum → context → operator): the text is
//! normalised with NFKC ([`normalize`]), detectors find spans with a kind and a confidence
//! ([`detect`]), and an operator chosen per field ([`operators::MaskingRule`]) or per kind
//! ([`scrub_text`]) replaces each span in the ORIGINAL text. Everything here is pure.

pub mod counties;
pub mod detect;
pub mod names;
pub mod normalize;
pub mod operators;

pub use detect::{Found, Kind, detect};
pub use operators::{Masked, MaskingRule, REDACTED, apply_rule, partial_mask};

/// Replaces every detection in `text` by what `op` makes of it; the rest of the text is untouched.
pub fn replace_found(text: &str, op: impl Fn(&Found) -> String) -> String {
    splice(text, &detect(text), &op)
}

fn splice(text: &str, found: &[Found], op: &impl Fn(&Found) -> String) -> String {
    let with: Vec<String> = found.iter().map(op).collect();
    splice_with(text, found, &with)
}

/// `text` with each of `found` replaced by the string of `with` at the same index.
fn splice_with(text: &str, found: &[Found], with: &[String]) -> String {
    if found.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (f, w) in found.iter().zip(with) {
        out.push_str(&text[at..f.range.start]);
        out.push_str(w);
        at = f.range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Scrubs free text as judgments are for publication: a name keeps its surname and becomes `某`
/// (`张某`, `欧阳某`), every identifier (resident ID, phone, credit code, bank card, plate, passport,
/// permit, e-mail) and the part of an address below county level are redacted. Idempotent: passes
/// repeat until nothing more is found (overlapping candidates, such as a name after a party word and
/// a dotted name sharing a character, can leave a second detection once the first is masked).
pub fn scrub_text(text: &str) -> String {
    to_fixpoint(text, |f| match f.kind {
        Kind::PersonName => operators::mask_name(&f.normalized, "某"),
        _ => REDACTED.to_string(),
    })
}

/// Replaces detections with `op` until a pass finds nothing to change. A replacement changes what its
/// neighbours see (an e-mail address glued to an ID number is found once the number is redacted;
/// a name after a party word and a dotted name can share a character), so a pass that replaced
/// anything is normally followed by another. One case is final at once, see [`redaction_is_final`]:
/// every detection of the pass is an identifier written in ASCII, redacted whole, between Chinese
/// characters or Chinese punctuation. The bound is a guard: every pass replaces detections by text no
/// detector matches and never lengthens a name, so a fixpoint comes within a few passes.
pub(crate) fn to_fixpoint(text: &str, op: impl Fn(&Found) -> String) -> String {
    let mut current = text.to_string();
    for _ in 0..9 {
        let found = detect(&current);
        if found.is_empty() {
            break;
        }
        let with: Vec<String> = found.iter().map(&op).collect();
        let last = found.iter().zip(&with).all(|(f, w)| w == REDACTED && redaction_is_final(&current, f));
        let next = splice_with(&current, &found, &with);
        if next == current {
            break;
        }
        current = next;
        if last {
            break;
        }
    }
    current
}

/// Whether redacting `f` whole (by [`REDACTED`]) can leave nothing for another pass to find, whatever
/// else the pass replaces under the same condition. It holds when the span is an identifier other
/// than a plate (its normalised form starts and ends with an ASCII letter, digit or `+`, never with a
/// Chinese character) and each neighbour in `text` is the text's edge, a Chinese character
/// (U+4E00–U+9FFF) or one of `，。、；：（）`. Then no detector's view across the span's edges changes:
///
/// - numbers, tokens and e-mail addresses are runs of ASCII letters, digits, `+ - . _ %` and spaces;
///   such a neighbour would join the span (the e-mail case), and none of these neighbours is one;
///   `[` and `]` end such runs exactly as a Chinese character or that punctuation does;
/// - names, dotted names, party words and road names are runs of Chinese characters, which the span's
///   first and last characters (ASCII) ended before just as `[` and `]` end them now; the sentence
///   marks and `与` that open a name look at the character before a name, never at the span;
/// - a plate (province + letter + body) or an address (road + digits + `号` + units) that reached into
///   the span was longer than it and would have been taken instead (then this rule is not used); a
///   shorter one that lost to the span cannot re-form, since `[` is no letter and `]` no digit;
/// - the redaction itself, `[已遮蔽]`, is three Chinese characters between brackets that are no
///   surname, no party word and no `号`, so nothing is found in it (tested below).
///
/// The property test `the_fixpoint_shortcut_equals_the_full_fixpoint` holds this to repeating passes.
fn redaction_is_final(text: &str, f: &Found) -> bool {
    let ascii_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '+');
    let quiet =
        |c: Option<char>| c.is_none_or(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c) || "，。、；：（）".contains(c));
    !matches!(f.kind, Kind::PersonName | Kind::Address | Kind::LicencePlate)
        && ascii_edge(f.normalized.chars().next())
        && ascii_edge(f.normalized.chars().next_back())
        && quiet(text[..f.range.start].chars().next_back())
        && quiet(text[f.range.end..].chars().next())
}

/// Scrubs `text` knowing values that must not survive in it (the parties of the same record): each
/// occurrence of a known value of two or more characters is replaced first (a name by its surname and
/// `某`, anything else redacted), longest first, then [`scrub_text`] runs over the result.
pub fn scrub_text_known(text: &str, known: &[&str]) -> String {
    let mut known: Vec<&str> = known.iter().map(|k| k.trim()).filter(|k| k.chars().count() >= 2).collect();
    known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    known.dedup();
    // One pass over the original text finds, for each known value, its occurrences as a left-to-right
    // search for that value alone would (non-overlapping, leftmost first); the text is rebuilt once.
    // Where a shorter value's occurrence overlaps a longer one's (rare), what is left of it after the
    // longer is masked must go too: then replace value by value, longest first, as the slow path.
    let taken = occurrences(text, &known);
    let mut end = 0;
    for (r, _) in &taken {
        if r.start < end {
            return scrub_text(&replace_each(text, &known));
        }
        end = end.max(r.end);
    }
    if taken.is_empty() {
        return scrub_text(text);
    }
    let with: Vec<Option<String>> = {
        let mut used = vec![false; known.len()];
        taken.iter().for_each(|&(_, n)| used[n] = true);
        known
            .iter()
            .zip(used)
            .map(|(k, u)| {
                u.then(|| {
                    if operators::looks_like_name(k) { operators::mask_name(k, "某") } else { REDACTED.to_string() }
                })
            })
            .collect()
    };
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (r, n) in taken {
        out.push_str(&text[at..r.start]);
        out.push_str(with[n].as_deref().unwrap_or(REDACTED));
        at = r.end;
    }
    out.push_str(&text[at..]);
    scrub_text(&out)
}

/// Every occurrence of each of `known` (each of two bytes or more) in `text`, in order of position (then of
/// `known`): for each value, the occurrences a left-to-right search for it alone finds. A hash of the
/// first two bytes of each value filters the positions.
fn occurrences(text: &str, known: &[&str]) -> Vec<(std::ops::Range<usize>, usize)> {
    let bucket = |a: u8, b: u8| (usize::from(a).wrapping_mul(31) ^ usize::from(b)) & 255;
    let mut filter = [0u64; 4];
    for k in known {
        let b = k.as_bytes();
        if let [a, second, ..] = b {
            let h = bucket(*a, *second);
            filter[h / 64] |= 1 << (h % 64);
        }
    }
    let bytes = text.as_bytes();
    let mut next_free = vec![0usize; known.len()];
    let mut taken = Vec::new();
    for at in 0..bytes.len().saturating_sub(1) {
        // A value starts a character: UTF-8 continuation bytes (0x80–0xBF) are skipped.
        if (bytes[at] as i8) < -64 {
            continue;
        }
        let h = bucket(bytes[at], bytes[at + 1]);
        if filter[h / 64] >> (h % 64) & 1 == 0 {
            continue;
        }
        for (n, k) in known.iter().enumerate() {
            let k = k.as_bytes();
            // Two bytes compared inline before the whole value (every value has two or more).
            if at >= next_free[n] && k[..2] == bytes[at..at + 2] && bytes[at..].starts_with(k) {
                taken.push((at..at + k.len(), n));
                next_free[n] = at + k.len();
            }
        }
    }
    taken
}

/// Replaces each value of `known` (longest first) in turn, each over the result of the one before.
fn replace_each(text: &str, known: &[&str]) -> String {
    let mut out = text.to_string();
    for k in known {
        if out.contains(k) {
            let with =
                if operators::looks_like_name(k) { operators::mask_name(k, "某") } else { REDACTED.to_string() };
            out = out.replace(k, &with);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scrubbing_known_answers() {
        assert_eq!(
            scrub_text("原告张伟（身份证号11010519491231002X，电话+86 138 0013 8000）诉被告欧阳娜娜"),
            "原告张某（身份证号[已遮蔽]，电话[已遮蔽]）诉被告欧阳某"
        );
        assert_eq!(scrub_text("被告人买买提·艾力犯盗窃罪"), "被告人买某犯盗窃罪");
        assert_eq!(
            scrub_text("被告住福建省厦门市思明区湖滨南路123号5栋1201室。"),
            "被告住福建省厦门市思明区[已遮蔽]。"
        );
        assert_eq!(scrub_text("号码１１０１０５１９４９１２３１００２Ｘ。"), "号码[已遮蔽]。");
        // A wrong check digit does not make an ID number less personal; a 20-digit run is no ID.
        assert_eq!(scrub_text("身份证110105194912310021。"), "身份证[已遮蔽]。");
        assert_eq!(scrub_text("流水号12345678901234567890"), "流水号12345678901234567890");
        assert_eq!(
            scrub_text("车牌闽D41230，邮箱a.b@example.cn，护照E12345678"),
            "车牌[已遮蔽]，邮箱[已遮蔽]，护照[已遮蔽]"
        );
        let plain = "（2023）闽0213民初1234号，标的额12345.00元，2023-05-01立案，原告张某诉被告欧阳某";
        assert_eq!(scrub_text(plain), plain);
    }

    #[test]
    fn known_values_go_first() {
        let text = "陈伟与厦门鑫盛贸易有限公司民间借贷纠纷一案，被告住所地福建省厦门市湖里区枋湖路5号";
        let out = scrub_text_known(text, &["陈伟", "厦门鑫盛贸易有限公司", "福建省厦门市湖里区枋湖路5号"]);
        assert_eq!(out, "陈某与[已遮蔽]民间借贷纠纷一案，被告住所地[已遮蔽]");
        assert_eq!(scrub_text_known(&out, &["陈伟"]), out);
        // Overlapping known values: the longer is taken whole, nothing of either survives.
        let out = scrub_text_known("李张伟华到庭，张伟华称", &["李张", "张伟华"]);
        assert!(!out.contains("伟华") && !out.contains("李张"), "{out}");
    }

    /// The occurrences of each known value, as `str::match_indices` finds them one value at a time.
    fn occurrences_one_by_one(text: &str, known: &[&str]) -> Vec<(std::ops::Range<usize>, usize)> {
        let mut all: Vec<(std::ops::Range<usize>, usize)> = known
            .iter()
            .enumerate()
            .flat_map(|(n, k)| text.match_indices(k).map(move |(at, _)| (at..at + k.len(), n)))
            .collect();
        all.sort_by_key(|(r, n)| (r.start, *n));
        all
    }

    #[test]
    fn one_pass_finds_what_each_search_finds() {
        let cases: &[(&str, &[&str])] = &[
            ("李张伟华到庭，张伟华称", &["张伟华", "李张"]),
            ("aaaa", &["aa"]),
            ("张伟张伟张伟", &["张伟张伟", "张伟"]),
            ("电话13800138000，13800138000", &["13800138000", "张伟"]),
            ("", &["张伟"]),
            ("张", &["张伟"]),
        ];
        for (text, known) in cases {
            assert_eq!(occurrences(text, known), occurrences_one_by_one(text, known), "{text}");
        }
    }

    // ---- property tests -------------------------------------------------------------------------

    const ID_AREAS: &[&str] = &["110105", "350203", "350582", "440524", "650102"];

    fn resident_id() -> impl Strategy<Value = String> {
        (0..ID_AREAS.len(), 1950u32..2005, 1u32..13, 1u32..29, 0u32..1000).prop_map(|(a, y, m, d, s)| {
            let first17 = format!("{}{y:04}{m:02}{d:02}{s:03}", ID_AREAS[a]);
            let check = crate::pseudonym::resident_id_check(&first17).unwrap_or('0');
            format!("{first17}{check}")
        })
    }

    fn mobile() -> impl Strategy<Value = String> {
        (3u32..10, 0u64..1_000_000_000).prop_map(|(p, rest)| format!("1{p}{rest:09}"))
    }

    fn card() -> impl Strategy<Value = String> {
        (0u64..10_000_000_000_000).prop_map(|body| {
            let first15 = format!("62{body:013}");
            (0..10).map(|c| format!("{first15}{c}")).find(|s| detect::luhn_ok(s)).unwrap_or_default()
        })
    }

    /// Writes `value` as people type it: separators inside, full-width digits, lowercase `x`.
    fn written(value: String, form: u8) -> String {
        match form % 5 {
            0 => value,
            1 => value.chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)).collect(),
            2 => value.to_lowercase(),
            3 => {
                let (a, b) = value.split_at(3);
                let (b, c) = b.split_at(4);
                format!("{a} {b} {c}")
            }
            _ => {
                let (a, b) = value.split_at(6);
                format!("{a}-{b}")
            }
        }
    }

    fn chinese() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("原告"),
                Just("被告"),
                Just("的"),
                Just("一案"),
                Just("，"),
                Just("。"),
                Just("张伟"),
                Just("欧阳娜娜"),
                Just("民间借贷纠纷"),
                Just("身份证号"),
                Just("电话"),
                Just(" "),
                Just("2023年"),
                Just("12345.00元"),
                Just("号"),
                Just("路"),
                Just("区"),
                Just("某"),
                Just("·"),
                Just("艾力"),
            ],
            0..8,
        )
        .prop_map(|v| v.concat())
    }

    /// Characters of given names (those of the generator and more).
    const GIVEN: &str = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊芳娜敏静丽艳娟霞秀玲桂英燕萍红婷雪琳晶慧颖倩洁梅丹莉欣悦佳怡琪晓小一子雨春秋玉永立少";

    fn digits_only(s: &str) -> String {
        normalize::Normalized::new(s).text().chars().filter(char::is_ascii_digit).collect()
    }

    /// Regression (proptest): a name after a party word, then a tail opening with the same compound
    /// surname and a longer given name.
    #[test]
    fn party_word_name_then_longer_name_with_same_compound_surname() {
        let text = "委托诉讼代理人欧阳娜，欧阳娜娜";
        let once = scrub_text(text);
        assert!(!once.contains("欧阳娜"), "{once}");
        assert!(once.contains("欧阳某"), "{once}");
        assert_eq!(scrub_text(&once), once);
        // A party named once and then bare is masked both times.
        assert_eq!(scrub_text("原告张伟，张伟称借款已还"), "原告张某，张某称借款已还");
    }

    #[test]
    fn an_identifier_glued_to_an_email_does_not_hide_it() {
        // The e-mail's domain ends in digits until the ID number is redacted: a second pass finds it.
        assert_eq!(scrub_text("a.b@example.cn110105195001010004"), format!("{REDACTED}{REDACTED}"));
        assert_eq!(scrub_text("电话13800138000，"), format!("电话{REDACTED}，"));
    }

    #[test]
    fn the_redaction_holds_nothing_a_detector_starts_from() {
        let inner: Vec<char> = REDACTED.chars().filter(|&c| names::is_han(c)).collect();
        assert_eq!(inner.len(), 3);
        for i in 0..inner.len() {
            assert_eq!(names::surname_at(&inner, i), None);
            assert_eq!(names::party_word_at(&inner, i), None);
        }
        assert!(!REDACTED.contains(['号', '与', '·', '•', '‧', '・', ':', ';', '。', '；', '\n']));
        for around in ["原告", "被告人", "与", "。", "：", "湖滨南路", "·", "买买提"] {
            let text = format!("{around}{REDACTED}{around}");
            assert!(detect(&text).is_empty(), "{text}");
        }
    }

    /// The fixpoint without the shortcut of [`to_fixpoint`]: passes repeat until one changes nothing.
    fn full_fixpoint(text: &str, op: impl Fn(&Found) -> String) -> String {
        let mut current = text.to_string();
        for _ in 0..32 {
            let next = replace_found(&current, &op);
            if next == current {
                break;
            }
            current = next;
        }
        current
    }

    /// Hostile free text: party words, surnames (compound too), given-name characters, masks (`某`, `*`,
    /// the redaction marker) right next to them, middle dots, 与/诉, organisation suffixes, road names
    /// and house numbers, and identifiers in every written form (full-width, spaced, lowercase `x`).
    fn hostile() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            (0..names::PARTY_WORDS.len()).prop_map(|i| names::PARTY_WORDS[i].to_string()),
            (0..names::COMPOUND_SURNAMES.len()).prop_map(|i| names::COMPOUND_SURNAMES[i].to_string()),
            (0..names::SURNAMES.chars().count()).prop_map(|i| names::SURNAMES
                .chars()
                .nth(i)
                .unwrap_or('张')
                .to_string()),
            (0..GIVEN.chars().count()).prop_map(|i| GIVEN.chars().nth(i).unwrap_or('伟').to_string()),
            (resident_id(), 0u8..5).prop_map(|(v, f)| written(v, f)),
            (mobile(), 0u8..5).prop_map(|(v, f)| written(v, f)),
            card(),
            prop_oneof![
                Just("某"),
                Just("某某"),
                Just("*"),
                Just("**"),
                Just(REDACTED),
                Just("·"),
                Just("•"),
                Just("与"),
                Just("诉"),
                Just("公司"),
                Just("银行"),
                Just("。"),
                Just("，"),
                Just("："),
                Just(":"),
                Just("；"),
                Just("\n"),
                Just(" "),
                Just("-"),
                Just("+86 "),
                Just("X"),
                Just("湖滨南路"),
                Just("思明区"),
                Just("厦门市"),
                Just("123号"),
                Just("5栋"),
                Just("1201室"),
                Just("之2"),
                Just("１２３"),
                Just("闽D41230"),
                Just("a.b@example.cn"),
                Just("E12345678"),
                Just("91350200MAYE0CNP5J"),
                Just("民间借贷纠纷"),
                Just("一案"),
                Just("（"),
                Just("）"),
                Just("、"),
                Just("号"),
                Just("AB1234@x.cn"),
                Just("称"),
                Just("买买提"),
                Just("艾力"),
            ]
            .prop_map(str::to_string),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        /// The shortcut of [`to_fixpoint`] (a pass that replaced no name and no address is final) gives
        /// exactly the text that repeating passes until nothing changes gives, for both operators that
        /// use it, and the scrubbed text holds nothing detectable.
        #[test]
        fn the_fixpoint_shortcut_equals_the_full_fixpoint(text in hostile()) {
            let scrub = |f: &Found| match f.kind {
                Kind::PersonName => operators::mask_name(&f.normalized, "某"),
                _ => REDACTED.to_string(),
            };
            let fast = to_fixpoint(&text, scrub);
            prop_assert_eq!(&fast, &full_fixpoint(&text, scrub), "{}", text);
            prop_assert!(detect(&fast).is_empty(), "{} -> {}: {:?}", text, fast, detect(&fast));
            let partial = |f: &Found| operators::partial_mask_one(f.kind, &f.normalized);
            prop_assert_eq!(to_fixpoint(&text, partial), full_fixpoint(&text, partial), "{}", text);
            let masked = crate::mask::mask_text(&text);
            prop_assert_eq!(crate::mask::mask_text(&masked), masked.clone(), "{}", text);
            prop_assert!(!crate::mask::contains_identifier(&masked), "{} -> {}", text, masked);
        }
    }

    proptest! {
        #[test]
        fn scrubbing_is_idempotent_and_leaves_nothing_detectable(
            head in chinese(), tail in chinese(), id in resident_id(), phone in mobile(), form in 0u8..5,
        ) {
            let text = format!("{head}{}{tail}{}{head}", written(id, form), written(phone, form));
            let once = scrub_text(&text);
            prop_assert_eq!(scrub_text(&once), once.clone());
            prop_assert!(detect(&once).is_empty(), "{} -> {}: {:?}", text, once, detect(&once));
            let masked = crate::mask::mask_text(&text);
            prop_assert_eq!(crate::mask::mask_text(&masked), masked.clone());
            prop_assert!(!crate::mask::contains_identifier(&masked), "{} -> {}", text, masked);
        }

        #[test]
        fn embedded_identifiers_never_survive(
            head in chinese(), tail in chinese(), id in resident_id(), phone in mobile(), card in card(),
            form in 0u8..5, which in 0u8..3,
        ) {
            let value = match which { 0 => id, 1 => phone, _ => card };
            let text = format!("{head}为{}。{tail}", written(value.clone(), form));
            for out in [scrub_text(&text), crate::mask::mask_text(&text)] {
                prop_assert!(!digits_only(&out).contains(&value[..value.len() - 1]), "{} -> {}", text, out);
            }
        }

        #[test]
        fn names_after_party_words_lose_their_given_name(
            word in 0..names::PARTY_WORDS.len(),
            surname in prop_oneof![
                (0..names::COMPOUND_SURNAMES.len()).prop_map(|i| names::COMPOUND_SURNAMES[i].to_string()),
                (0..names::SURNAMES.chars().count()).prop_map(|i| names::SURNAMES.chars().nth(i).unwrap_or('张').to_string()),
            ],
            given in proptest::collection::vec(0..GIVEN.chars().count(), 1..3),
            colon in any::<bool>(),
            tail in chinese(),
        ) {
            let given: String = given.iter().filter_map(|&i| GIVEN.chars().nth(i)).collect();
            let name = format!("{surname}{given}");
            let text = format!("{}{}{name}，{tail}", names::PARTY_WORDS[word], if colon { "：" } else { "" });
            let once = scrub_text(&text);
            prop_assert!(!once.contains(&name), "{} -> {}", text, once);
            prop_assert!(once.contains(&format!("{surname}某")), "{} -> {}", text, once);
            prop_assert_eq!(scrub_text(&once), once.clone());
        }

        #[test]
        fn one_pass_occurrences_equal_one_search_per_value(
            text in chinese(), a in chinese(), b in chinese(), c in 10u32..2000,
        ) {
            let c = c.to_string().replace('1', "11");
            let text = format!("{text}{c}{a}{text}{b}{c}{c}");
            let mut known: Vec<&str> =
                [a.as_str(), b.as_str(), c.as_str()].into_iter().filter(|k| k.chars().count() >= 2).collect();
            known.sort_by_key(|k| std::cmp::Reverse(k.len()));
            prop_assert_eq!(occurrences(&text, &known), occurrences_one_by_one(&text, &known));
        }

        #[test]
        fn partial_masking_is_idempotent(head in chinese(), id in resident_id(), phone in mobile(), form in 0u8..5) {
            let text = format!("{head}{}{head}{}", written(id, form), written(phone, form));
            let once = partial_mask(&text);
            prop_assert_eq!(partial_mask(&once), once.clone());
            let left: Vec<Kind> = detect(&once).into_iter().map(|f| f.kind).collect();
            prop_assert!(!left.iter().any(|k| matches!(k, Kind::ResidentId | Kind::Mobile)), "{} -> {}", text, once);
        }
    }
}
