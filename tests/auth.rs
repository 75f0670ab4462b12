//! Hostile and broken tokens are refused with a generic message, and the reason lands in the ledger;
//! roles separate querying data from reading the ledger.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use shuzhu::federation::{DEV_AUDIENCE, DEV_ISSUER};

use crate::util::{fx, request};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

/// Signs `claims` with the federation's dev issuer key (Ed25519), with any header.
fn sign(header: Value, claims: Value) -> String {
    let pem = std::fs::read_to_string(&fx().prepared.issuer_key).unwrap();
    let key = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pem_der(&pem)).unwrap();
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn claims() -> Value {
    json!({"iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": "analyst-x", "agency": "xm-sfj",
           "roles": ["requester"], "iat": now() - 10, "exp": now() + 600})
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

fn ask(token: &str) -> Result<shuzhu_proto::v1::QueryResponse, tonic::Status> {
    fx().query(token, request("filed", &["year"], 202401, 202412, "诉源治理"))
}

#[test]
fn a_well_formed_token_is_accepted() {
    let t = sign(json!({"alg": "EdDSA", "typ": "JWT"}), claims());
    ask(&t).expect("a valid token must be accepted (positive control for the refusals below)");
}

#[test]
fn broken_and_hostile_tokens_are_refused() {
    let ed = json!({"alg": "EdDSA", "typ": "JWT"});
    let public_pem = std::fs::read_to_string(&fx().prepared.issuer_pub).unwrap();
    let hs256 = {
        let input = format!(
            "{}.{}",
            B64.encode(json!({"alg":"HS256","typ":"JWT"}).to_string()),
            B64.encode(claims().to_string())
        );
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public_pem.as_bytes());
        format!("{input}.{}", B64.encode(ring::hmac::sign(&k, input.as_bytes()).as_ref()))
    };
    let none =
        format!("{}.{}.", B64.encode(json!({"alg":"none","typ":"JWT"}).to_string()), B64.encode(claims().to_string()));
    let other_key = {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let k = ring::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let input = format!("{}.{}", B64.encode(ed.to_string()), B64.encode(claims().to_string()));
        format!("{input}.{}", B64.encode(k.sign(input.as_bytes()).as_ref()))
    };
    let cases: Vec<(&str, String)> = vec![
        ("expired", sign(ed.clone(), with(with(claims(), "exp", json!(now() - 3600)), "iat", json!(now() - 7200)))),
        ("not_yet_valid", sign(ed.clone(), with(claims(), "nbf", json!(now() + 3600)))),
        ("exp as string", sign(ed.clone(), with(claims(), "exp", json!((now() + 600).to_string())))),
        ("nbf as string", sign(ed.clone(), with(claims(), "nbf", json!((now() - 60).to_string())))),
        ("wrong audience", sign(ed.clone(), with(claims(), "aud", json!("someone-else")))),
        ("wrong issuer", sign(ed.clone(), with(claims(), "iss", json!("https://evil.example")))),
        ("no agency", sign(ed.clone(), without(claims(), "agency"))),
        ("roles not a list", sign(ed.clone(), with(claims(), "roles", json!("requester")))),
        ("lifetime too long", sign(ed.clone(), with(claims(), "exp", json!(now() + 40 * 24 * 3600)))),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("another key", other_key),
        ("garbage", "not.a.token".into()),
    ];
    let before = fx().running.gateway.ledger.len();
    for (name, token) in &cases {
        let err = ask(token).expect_err(name);
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{name}");
        assert_eq!(err.message(), "invalid or missing credentials", "{name}: the reason must not reach the requester");
    }
    // Each refusal is in the ledger with its reason, and no token is.
    let entries = fx().list_entries(&fx().token("auditor"), before + 1, 1000).unwrap();
    let text: String = entries.entries.iter().map(|e| e.body.clone()).collect::<Vec<_>>().join("\n");
    assert!(text.matches("\"unauthenticated\"").count() >= cases.len(), "{text}");
    for reason in
        ["expired", "not_yet_valid", "wrong_audience", "unknown_issuer", "algorithm_not_allowed", "bad_signature"]
    {
        assert!(text.contains(reason), "ledger lacks reason {reason}");
    }
    for (_, token) in &cases {
        if token.len() > 20 {
            assert!(!text.contains(token.as_str()), "a token reached the ledger");
        }
    }
}

#[test]
fn no_token_is_refused() {
    let err = fx().rt.block_on(async {
        let ch = shuzhu::client::connect(&fx().running.gateway_url, &fx().prepared.pki.ca_cert).await.unwrap();
        let mut c = shuzhu_proto::v1::gateway_client::GatewayClient::new(ch);
        c.query(request("filed", &[], 202401, 202412, "诉源治理")).await.unwrap_err()
    });
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

#[test]
fn an_auditor_cannot_query_and_a_requester_cannot_read_the_ledger() {
    let err = ask(&fx().token("auditor")).unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let err = fx().list_entries(&fx().token("requester"), 1, 10).unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let ok = fx().list_entries(&fx().token("auditor"), 1, 10).unwrap();
    assert!(!ok.entries.is_empty());
}
