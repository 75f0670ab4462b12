//! Reading a policy file for people: where each problem is. The policy is parsed twice — once into
//! `toml`'s spanned tree (to know the line of every key), once into the typed policy — and every
//! problem found is reported with its line and key (`grant[2].threshold`): every unknown key, every
//! value of the wrong type (each key is tried on its own, since serde stops at the first), then every
//! rule the typed policy breaks ([`FederationPolicy::problems`](crate::grant::FederationPolicy::problems)).

use std::ops::Range;

use crate::grant::{Agency, DenyRule, FederationPolicy, FieldConstraint, Grant, Problem};

/// The keys each part of the file may hold (for reporting every unknown key at once).
pub(crate) const TOP_KEYS: &[&str] = &["default_threshold", "purposes", "agency", "grant", "deny", "constraint"];
const AGENCY_KEYS: &[&str] = &["id", "name"];
const GRANT_KEYS: &[&str] = &[
    "agency",
    "roles",
    "clearance",
    "indicators",
    "dimensions",
    "filters",
    "purposes",
    "legal_basis_required",
    "valid_from",
    "valid_until",
    "rate_limit",
    "daily_quota",
    "accept_partial",
    "threshold",
    "protection",
    "dp_epsilon_milli",
    "dp_budget_milli",
];
const DENY_KEYS: &[&str] = &["agency", "indicator", "dimension", "purpose", "reason"];
const CONSTRAINT_KEYS: &[&str] = &["agency", "field", "threshold", "values"];

/// The 1-based line of byte offset `at`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

fn get<'a, 'i>(table: &'a toml::de::DeTable<'i>, key: &str) -> Option<(Range<usize>, &'a toml::de::DeValue<'i>)> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(k, v)| (k.span(), v.get_ref()))
}

/// The span of `key` (`grant[2].threshold`, `deny[0]`, `default_threshold`) in the parsed file.
pub(crate) fn locate(root: &toml::de::DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let (head, sub) = match key.split_once('.') {
        Some((h, s)) => (h, Some(s)),
        None => (key, None),
    };
    let Some((section, index)) = head.strip_suffix(']').and_then(|h| h.split_once('[')) else {
        return get(root, head).map(|(span, _)| span);
    };
    let index: usize = index.parse().ok()?;
    let (section_span, value) = get(root, section)?;
    let entry = value.as_array().and_then(|a| a.get(index));
    let Some(entry) = entry else { return Some(section_span) };
    match (sub, entry.get_ref().as_table()) {
        (Some(sub), Some(t)) => get(t, sub).map(|(span, _)| span).or(Some(entry.span())),
        _ => Some(entry.span()),
    }
}

/// The type errors of every key of the file. Serde stops at the first error, so each key is tried on
/// its own: its value put into a minimal well-typed entry of its section (or an empty policy for a
/// top-level key) and deserialised.
pub(crate) fn entry_type_errors(text: &str, root: &toml::de::DeTable<'_>) -> Vec<Problem> {
    fn probe<T: serde::de::DeserializeOwned>(value: toml::Table) -> Option<String> {
        T::deserialize(toml::Value::Table(value)).err().map(|e| e.message().trim().to_string())
    }
    let Ok(table) = text.parse::<toml::Table>() else { return Vec::new() };
    let template = |pairs: &[(&str, toml::Value)]| -> toml::Table {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    };
    let s = |v: &str| toml::Value::String(v.into());
    let empty = || toml::Value::Array(vec![]);
    let mut out = Vec::new();
    let mut report = |key: String, message: String| {
        let line = locate(root, &key).map(|s| line_of(text, s.start));
        out.push(Problem { line, key, message });
    };
    for (key, value) in &table {
        let (base, check): (toml::Table, fn(toml::Table) -> Option<String>) = match key.as_str() {
            "agency" => (template(&[("id", s("x")), ("name", s("x"))]), probe::<Agency>),
            "grant" => (
                template(&[("agency", s("x")), ("clearance", s("L1")), ("indicators", empty()), ("purposes", empty())]),
                probe::<Grant>,
            ),
            "deny" => (toml::Table::new(), probe::<DenyRule>),
            "constraint" => (template(&[("agency", s("x")), ("field", s("x"))]), probe::<FieldConstraint>),
            _ => {
                let mut alone = toml::Table::new();
                alone.insert(key.clone(), value.clone());
                if let Some(message) = probe::<FederationPolicy>(alone) {
                    report(key.clone(), message);
                }
                continue;
            }
        };
        let Some(entries) = value.as_array() else {
            report(key.clone(), format!("`{key}` must be an array of tables ([[{key}]])"));
            continue;
        };
        for (i, entry) in entries.iter().enumerate() {
            let Some(entry) = entry.as_table() else {
                report(format!("{key}[{i}]"), "expected a table".into());
                continue;
            };
            for (k, v) in entry {
                let mut one = base.clone();
                one.insert(k.clone(), v.clone());
                if let Some(message) = check(one) {
                    report(format!("{key}[{i}].{k}"), message);
                }
            }
            if let Some(missing) = base.keys().find(|k| !entry.contains_key(*k)) {
                report(format!("{key}[{i}]"), format!("missing field `{missing}`"));
            }
        }
    }
    out
}

/// Every key the policy's shape does not know, with its line.
pub(crate) fn unknown_keys(text: &str, root: &toml::de::DeTable<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    for (k, v) in root {
        let name = k.get_ref().as_ref();
        let allowed = match name {
            "agency" => AGENCY_KEYS,
            "grant" => GRANT_KEYS,
            "deny" => DENY_KEYS,
            "constraint" => CONSTRAINT_KEYS,
            _ if TOP_KEYS.contains(&name) => continue,
            _ => {
                out.push(Problem {
                    line: Some(line_of(text, k.span().start)),
                    key: name.to_string(),
                    message: format!("unknown field `{name}`, expected one of {}", TOP_KEYS.join(", ")),
                });
                continue;
            }
        };
        let Some(entries) = v.get_ref().as_array() else { continue };
        for (i, e) in entries.iter().enumerate() {
            let Some(t) = e.get_ref().as_table() else { continue };
            for (sk, _) in t {
                let sub = sk.get_ref().as_ref();
                if !allowed.contains(&sub) {
                    out.push(Problem {
                        line: Some(line_of(text, sk.span().start)),
                        key: format!("{name}[{i}].{sub}"),
                        message: format!("unknown field `{sub}`, expected one of {}", allowed.join(", ")),
                    });
                }
            }
        }
    }
    out
}
