//! Fuzz harnesses of the gateway's parsers of untrusted input, shared by the `cargo fuzz` targets in
//! `fuzz/` and by the corpus replay in `tests/fuzz_replay.rs` (CI replays every committed corpus file
//! through the very function the fuzzer calls, on the stable toolchain). Not an API: each function takes
//! arbitrary bytes, must never panic on them, and panics only when an invariant it states is broken.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use prost::Message as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use shuzhu_policy::disclosure::{self, Partial, Status as CellStatus};
use shuzhu_policy::mask::contains_identifier;
use shuzhu_proto::v1 as pb;

use crate::audit::AuditRecord;
use crate::auth::{AuthPolicy, Authenticator, JwtAlgorithm, Role, TrustedIssuer};
use crate::config::{GatewayConfig, NodeEntry};

/// The issuer of the JWT harness's tokens.
pub const FUZZ_ISSUER: &str = "https://idp.fuzz.example";
/// The audience of the JWT harness's tokens.
pub const FUZZ_AUDIENCE: &str = "shuzhu-gateway";
/// The time the JWT harness authenticates at (Unix seconds).
pub const FUZZ_NOW: u64 = 1_800_000_000;

/// The fixed Ed25519 key of the JWT harness (a constant seed: never a real key).
fn jwt_key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        Ed25519KeyPair::from_seed_unchecked(&[0x42; 32]).unwrap_or_else(|_| unreachable!("32 bytes are a seed"))
    })
}

fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        // SPKI of an Ed25519 public key (RFC 8410): a 12-byte prefix, then the key.
        let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        spki.extend_from_slice(jwt_key().public_key().as_ref());
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(spki));
        let issuer = TrustedIssuer {
            issuer: FUZZ_ISSUER.into(),
            audience: FUZZ_AUDIENCE.into(),
            algorithm: JwtAlgorithm::EdDsa,
            public_key_pem: pem,
        };
        Authenticator::new(vec![issuer], AuthPolicy::default())
            .unwrap_or_else(|e| unreachable!("a fixed valid issuer: {e}"))
    })
}

/// A compact JWS over `header` and `payload` (any bytes), signed with the harness's key.
pub fn signed_token(header: &[u8], payload: &[u8]) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let sig = jwt_key().sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// JWT header and claims parsing. The first byte chooses the form: even, the rest is the whole
/// `authorization` header value; odd, the rest is a JWS header and a payload (split at the first
/// newline) signed with the trusted key, so that the claim checks behind the signature are reached.
/// Invariants: a principal has a subject and an agency, at least one role, never both a data and the
/// audit role, and a token not expired at the time of the check.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let auth = authenticator();
    let value = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let (header, payload) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
        format!("Bearer {}", signed_token(header, payload))
    };
    match auth.authenticate(&value, FUZZ_NOW) {
        Ok(p) => {
            assert!(!p.subject.is_empty() && !p.agency.is_empty(), "a principal has a subject and an agency");
            assert!(!p.roles.is_empty(), "a principal has a role");
            assert!(
                !(p.has_role(Role::Requester) && p.has_role(Role::Auditor)),
                "data and audit roles are never mixed"
            );
            assert!(FUZZ_NOW < p.expires_at.saturating_add(AuthPolicy::default().leeway_secs), "not expired");
            assert_eq!(p.issuer, FUZZ_ISSUER);
        }
        Err(failure) => {
            let _ = failure.reason();
        }
    }
}

/// The query request shape: the first byte chooses the form, even a protobuf `QueryRequest` as gRPC
/// delivers it, odd the JSON body of `POST /v1/query`; both go through the gateway's parse and check.
/// Invariants: what the audit record keeps of the request, and every error message, carries no
/// identifier; a refused request is recorded as `invalid`.
pub fn query_request(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let req = if mode % 2 == 0 {
        match pb::QueryRequest::decode(rest) {
            Ok(r) => r,
            Err(_) => return,
        }
    } else {
        match crate::http::wire::parse_query_body(rest) {
            Ok(r) => r,
            Err(problem) => {
                assert!(!contains_identifier(&problem.detail), "a refusal quotes an identifier: {:?}", problem.detail);
                return;
            }
        }
    };
    let mut record = AuditRecord::new("fuzz-gw", "req-1", "query", "v0");
    let parsed = crate::query::parse(&req, &mut record);
    let kept = [&record.indicator, &record.purpose, &record.legal_basis, &record.reason]
        .into_iter()
        .chain(&record.group_by)
        .chain(&record.filters);
    for text in kept {
        assert!(!contains_identifier(text), "the audit record keeps an identifier: {text:?}");
    }
    match parsed {
        Ok(q) => {
            assert!(q.group_by.len() <= 4 && q.filters.iter().all(|(_, v)| !v.is_empty() && v.len() <= 64));
            assert!(crate::query::node_plan(&q).is_ok(), "a parsed query has a node plan");
        }
        Err(status) => {
            assert_eq!(record.decision, "invalid", "a refused request is recorded as invalid");
            assert!(!contains_identifier(status.message()), "an error quotes an identifier: {:?}", status.message());
        }
    }
}

/// A question: indicator, group-by, filters (dimension, value).
type Question = (&'static str, &'static [&'static str], &'static [(&'static str, &'static str)]);

/// The questions the node-answer harness asks: the first byte of the input chooses one.
const ASKED: &[Question] = &[
    ("filed", &["region", "month"], &[]),
    ("closure_rate", &["court", "year"], &[("type_code", "民初")]),
    ("enforcement_recovery_rate", &["region:city"], &[]),
    ("avg_trial_days", &["cause", "quarter"], &[]),
    ("on_time_rate", &["division"], &[("region", "350213")]),
    ("mediation_success_rate", &["dispute_type", "year"], &[]),
    ("litigation_per_10k", &["region", "year"], &[]),
    ("judgment_rate", &[], &[]),
];

/// A node's answer as the gateway reads it: the first byte chooses the question, the second the node's
/// declared scope, the rest is the node's `AggregateResponse` (protobuf). The answer is checked as the
/// gateway checks it, then merged (twice, as two nodes' answers), evaluated and suppressed, and its
/// release cells are computed. Invariants: an accepted answer has keys of the question's width and
/// consistent contributor counts; a cell shown has no protected count of 1..k−1 contributors.
pub fn node_answer(data: &[u8]) {
    let [which, scope, rest @ ..] = data else { return };
    let (indicator, group_by, filters) = ASKED[usize::from(*which) % ASKED.len()];
    let req = pb::QueryRequest {
        indicator: indicator.into(),
        group_by: group_by.iter().map(|d| d.to_string()).collect(),
        period: Some(pb::Period { from_month: 202301, to_month: 202312 }),
        filters: filters
            .iter()
            .map(|(d, v)| pb::DimensionFilter { dimension: d.to_string(), values: vec![v.to_string()] })
            .collect(),
        purpose: "诉源治理".into(),
        legal_basis: String::new(),
    };
    let mut record = AuditRecord::new("fuzz-gw", "req-1", "query", "v0");
    let q = crate::query::parse(&req, &mut record).unwrap_or_else(|e| unreachable!("a fixed valid query: {e:?}"));
    let plan = crate::query::node_plan(&q).unwrap_or_else(|e| unreachable!("a fixed valid plan: {e}"));
    let Ok(answer) = pb::AggregateResponse::decode(rest) else { return };
    let scoped = scope % 2 == 1;
    let node = NodeEntry {
        id: "court-350213".into(),
        address: "https://127.0.0.1:1".into(),
        datasets: vec!["cases".into(), "mediations".into(), "population".into()],
        regions: if scoped { vec!["350213".into()] } else { vec![] },
        courts: if scoped { vec!["闽0213".into()] } else { vec![] },
        receipt_key_file: None,
    };
    let measures = q.indicator.measures();
    let Ok(answer) = crate::query::check_answer(answer, &node, &plan.dims, &measures) else { return };
    let mut merged: BTreeMap<Vec<String>, Vec<Partial>> = BTreeMap::new();
    for g in answer.groups.iter().chain(&answer.groups) {
        assert_eq!(g.key.len(), plan.dims.len(), "an accepted group has one label per dimension");
        let slot = merged.entry(g.key.clone()).or_insert_with(|| vec![Partial::default(); measures.len()]);
        for (i, m) in measures.iter().enumerate() {
            for v in g.measures.iter().filter(|v| v.id == *m) {
                assert!(v.value >= 0 && v.max_single <= v.value && (v.value == 0 || v.contributors > 0));
                slot[i].merge(Partial { value: v.value, contributors: v.contributors, max_single: v.max_single });
            }
        }
    }
    let threshold = 10;
    let get = |partials: &Vec<Partial>, m: &str| {
        measures.iter().position(|x| *x == m).map(|i| partials[i]).unwrap_or_default()
    };
    let mut cells = Vec::new();
    let mut protected = Vec::new();
    for (key, partials) in &merged {
        let cell = disclosure::evaluate(q.indicator, threshold, |m| get(partials, m));
        let counts = disclosure::protected_counts(q.indicator, |m| get(partials, m));
        if cell.status == CellStatus::Ok {
            assert!(
                counts.iter().all(|c| *c == 0 || *c >= u64::from(threshold)),
                "a cell shown with a small count: {counts:?}"
            );
        }
        protected.push(disclosure::Protected {
            key: key.clone(),
            counts,
            suppressed: cell.status == CellStatus::Suppressed,
            eligible: cell.status == CellStatus::Ok,
        });
        cells.push(cell);
    }
    let parents: Vec<Vec<disclosure::Parent>> = q.group_by.iter().map(|d| disclosure::parents_of(*d)).collect();
    for i in disclosure::secondary_suppress_nested(&mut protected, &parents, threshold) {
        assert!(i < cells.len(), "secondary suppression names a cell of the answer");
    }
    let shown: Vec<(&Vec<String>, &Vec<Partial>, bool)> =
        merged.iter().zip(&cells).map(|((k, p), c)| (k, p, c.status == CellStatus::Ok)).collect();
    let _ = crate::releases::releases_of_answer(
        &q,
        &measures,
        &shown,
        true,
        &shuzhu_policy::disclosure::recordset::Topology::default(),
    );
}

/// The gateway configuration file (`gateway.toml`), parsed and checked as `gateway serve` loads it.
pub fn gateway_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut config) = shuzhu_net::config::parse::<GatewayConfig>(Path::new("/fuzz/gateway.toml"), text) else {
        return;
    };
    if config.ledger.origin.is_none() {
        config.ledger.origin = Some(crate::config::default_origin(&config.gateway_id));
    }
    assert!(shuzhu_net::is_valid_party_id(&config.gateway_id), "an accepted config has a valid gateway id");
    assert!(!config.issuers.is_empty(), "an accepted config names an issuer");
}
