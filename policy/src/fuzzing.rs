//! Fuzz harnesses of the policy crate's parsers of untrusted text, shared by the `cargo fuzz` targets in
//! `fuzz/` and by the corpus replay in `tests/fuzz_replay.rs` (so CI replays every committed corpus file
//! through the very function the fuzzer calls, on the stable toolchain). Not an API: each function takes
//! arbitrary bytes, must never panic on them, and panics only when an invariant it states is broken.

use crate::catalogue::{Catalogue, EMBEDDED};
use crate::dimension::Dimension;
use crate::grant::FederationPolicy;
use crate::mask::{contains_identifier, mask_text};

/// The policy file (`policy.toml`): parsed and checked as `shuzhu policy check` and the gateway do.
/// Invariants: every problem names a line inside the file; an accepted policy has one stable version.
pub fn policy_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match FederationPolicy::check_text(text) {
        Ok(policy) => {
            let v = policy.version();
            assert_eq!(v, policy.version(), "the policy version is stable");
            assert!(FederationPolicy::parse(text).is_ok(), "check_text and parse agree");
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "a refused policy names at least one problem");
            let lines = text.split('\n').count();
            for p in &problems {
                assert!(p.line.is_none_or(|l| (1..=lines).contains(&l)), "problem line {:?} of {lines}", p.line);
            }
        }
    }
}

/// The catalogue file given with `--catalogue`: a file of measures and indicators extends the embedded
/// catalogue, one with datasets replaces it (as `shuzhu --catalogue` reads it). An accepted catalogue is
/// queried for every indicator as planning does.
pub fn catalogue_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let text = if text.contains("[[dataset]]") { text.to_string() } else { format!("{EMBEDDED}\n{text}") };
    let Ok(cat) = Catalogue::parse(&text) else { return };
    let _ = cat.digest();
    for ind in &cat.indicators {
        let _ = cat.reads(&ind.id);
        let _ = cat.reads_in(&ind.id);
        let dims: Vec<Dimension> = ind.dimensions.iter().filter_map(|d| Dimension::parse(d)).collect();
        let _ = cat.grade_of(&ind.id, &dims);
        let _ = cat.qualified_fields_read(&ind.id, &dims);
    }
    for ds in &cat.datasets {
        let _ = cat.is_protected(&ds.name);
    }
}

/// The masking the gateway applies to everything it emits. Invariants: the output of [`mask_text`]
/// holds no detectable identifier ([`contains_identifier`]), and masking it again changes nothing.
pub fn masking(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let masked = mask_text(&text);
    assert!(!contains_identifier(&masked), "mask_text left an identifier: {text:?} -> {masked:?}");
    let again = mask_text(&masked);
    assert_eq!(again, masked, "mask_text is not idempotent on {text:?}");
    let _ = crate::pii::detect(&text);
}
