//! The JSON forms of the API: request bodies and query strings parsed once into the proto requests the
//! shared services take (unknown fields and parameters refused), and proto answers turned into JSON.
//! Byte strings (hashes, proofs, leaves) are lowercase hex, as the ledger's own `hash` fields are.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use shuzhu_proto::v1 as pb;

use super::problem::Problem;

/// Body of `POST /v1/query`: mirrors `QueryRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryBody {
    indicator: String,
    #[serde(default)]
    group_by: Vec<String>,
    period: PeriodBody,
    #[serde(default)]
    filters: Vec<FilterBody>,
    purpose: String,
    #[serde(default)]
    legal_basis: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeriodBody {
    from_month: u32,
    to_month: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    dimension: String,
    values: Vec<String>,
}

impl From<QueryBody> for pb::QueryRequest {
    fn from(b: QueryBody) -> Self {
        pb::QueryRequest {
            indicator: b.indicator,
            group_by: b.group_by,
            period: Some(pb::Period { from_month: b.period.from_month, to_month: b.period.to_month }),
            filters: b
                .filters
                .into_iter()
                .map(|f| pb::DimensionFilter { dimension: f.dimension, values: f.values })
                .collect(),
            purpose: b.purpose,
            legal_basis: b.legal_basis,
        }
    }
}

/// Parses a query body. The parser's message is masked: it may quote a value the caller sent.
pub(crate) fn parse_query_body(bytes: &[u8]) -> Result<pb::QueryRequest, Problem> {
    serde_json::from_slice::<QueryBody>(bytes).map(Into::into).map_err(|e| {
        Problem::invalid(format!("the request body is not a valid query: {}", crate::audit::clip(&e.to_string())))
    })
}

/// Query-string parameters, each at most once and each one the endpoint knows.
#[derive(Debug)]
pub(crate) struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `raw` (`a=1&b=x`, percent-encoded, `+` for space) allowing only `known` names.
    pub(crate) fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, Problem> {
        let mut out = BTreeMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| Problem::invalid("a query parameter is not UTF-8 once percent-decoded"))
            };
            let (k, v) = (decode(k)?, decode(v)?);
            if !known.contains(&k.as_str()) {
                return Err(Problem::invalid(format!(
                    "unknown query parameter {:?}; this endpoint takes {}",
                    crate::audit::clip(&k),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            }
            if out.insert(k.clone(), v).is_some() {
                return Err(Problem::invalid(format!("query parameter {k} is given twice")));
            }
        }
        Ok(Params(out))
    }

    /// The text of `name`, empty when absent.
    pub(crate) fn text(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }

    /// The value of `name` exactly as given (`None` when absent; an empty value is `Some("")`).
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `name` as a whole number (`default` when absent; an empty value is not a number).
    pub(crate) fn number(&self, name: &str, default: u64) -> Result<u64, Problem> {
        match self.0.get(name).map(String::as_str) {
            None => Ok(default),
            Some(v) => {
                v.parse().map_err(|_| Problem::invalid(format!("query parameter {name} must be a whole number from 0")))
            }
        }
    }

    /// `name` as a time in milliseconds since the epoch: RFC 3339 (`2026-12-01T08:00:00+08:00`) or a
    /// UTC date (`2026-12-01`, its midnight). `None` when absent; an empty value is refused.
    pub(crate) fn time_ms(&self, name: &str) -> Result<Option<u64>, Problem> {
        let Some(v) = self.0.get(name) else { return Ok(None) };
        parse_time_ms(v).map(Some).ok_or_else(|| {
            Problem::invalid(format!("query parameter {name} must be an RFC 3339 time or a date YYYY-MM-DD"))
        })
    }
}

fn parse_time_ms(v: &str) -> Option<u64> {
    use time::format_description::well_known::Rfc3339;
    let t = match time::OffsetDateTime::parse(v, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(v, &format).ok()?.midnight().assume_utc()
        }
    };
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The JSON form of an answer: the contract `shuzhu query --format json` prints and `POST /v1/query`
/// answers (one function, so the two cannot drift apart).
pub fn answer_json(r: &pb::QueryResponse) -> Value {
    let rows: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            let group: Map<String, Value> =
                row.group.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            let mut o = Map::new();
            o.insert("group".into(), Value::Object(group));
            o.insert("value".into(), row.value.map_or(Value::Null, |v| json!(v)));
            o.insert("status".into(), Value::String(row.status.clone()));
            if let Some(n) = row.numerator {
                o.insert("numerator".into(), json!(n));
            }
            if let Some(d) = row.denominator {
                o.insert("denominator".into(), json!(d));
            }
            if !row.level.is_empty() {
                o.insert("level".into(), Value::String(row.level.clone()));
            }
            Value::Object(o)
        })
        .collect();
    let cov = r.coverage.clone().unwrap_or_default();
    json!({
        "indicator": r.indicator,
        "rows": rows,
        "coverage": {
            "asked": cov.asked,
            "answered": cov.answered,
            "missing": cov.missing.iter().map(|m| json!({"node": m.node, "reason": m.reason})).collect::<Vec<_>>(),
        },
        // As `shuzhu query --format json`: a node asked did not answer (its rows may be absent).
        "partial": cov.answered < cov.asked || !cov.missing.is_empty(),
        "policy_version": r.policy_version,
        "audit_seq": r.audit_seq,
        "data_until": r.data_until,
        "threshold": r.threshold,
    })
}

/// The JSON form of a catalogue entry.
pub(crate) fn indicator_json(i: &pb::IndicatorInfo) -> Value {
    json!({
        "id": i.id,
        "name": i.name,
        "formula": i.formula,
        "dimensions": i.dimensions,
        "kind": i.kind,
        "datasets": i.datasets,
        "grade": i.grade,
    })
}

/// The JSON form of a ledger entry (`body` is the canonical JSON text exactly as hashed).
pub(crate) fn entry_json(e: &pb::AuditEntry) -> Value {
    json!({
        "seq": e.seq,
        "time_ms": e.time_ms,
        "body": e.body,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
        "purged": e.purged,
    })
}

/// Byte strings as lowercase hex.
pub(crate) fn hexes(raw: &[Vec<u8>]) -> Vec<String> {
    raw.iter().map(hex::encode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_body_becomes_the_proto_request() {
        let q = parse_query_body(
            br#"{"indicator":"filed","group_by":["region"],"period":{"from_month":202401,"to_month":202403},
                "filters":[{"dimension":"region","values":["350203"]}],"purpose":"p"}"#,
        )
        .unwrap();
        assert_eq!(q.indicator, "filed");
        assert_eq!(q.period, Some(pb::Period { from_month: 202401, to_month: 202403 }));
        assert_eq!(q.filters[0].values, ["350203"]);
        assert_eq!(q.legal_basis, "");
    }

    #[test]
    fn unknown_fields_and_missing_ones_are_named() {
        let e =
            parse_query_body(br#"{"indicator":"filed","period":{"from_month":1,"to_month":2},"purpose":"p","x":1}"#)
                .unwrap_err();
        assert!(e.detail.contains("unknown field `x`"), "{}", e.detail);
        let e = parse_query_body(br#"{"indicator":"filed","purpose":"p"}"#).unwrap_err();
        assert!(e.detail.contains("missing field `period`"), "{}", e.detail);
        let e =
            parse_query_body(br#"{"indicator":"filed","period":{"from_month":1,"to_month":2,"day":3},"purpose":"p"}"#)
                .unwrap_err();
        assert!(e.detail.contains("unknown field `day`"), "{}", e.detail);
    }

    #[test]
    fn a_personal_value_quoted_by_the_parser_is_masked() {
        let e = parse_query_body(br#"{"indicator":13812345678,"period":{"from_month":1,"to_month":2},"purpose":"p"}"#)
            .unwrap_err();
        assert!(!e.detail.contains("13812345678"), "{}", e.detail);
    }

    #[test]
    fn parameters_are_decoded_known_and_single() {
        let p = Params::parse(Some("agency=xm%2Dsfj&from=2026-12-01&limit=5"), &["agency", "from", "limit"]).unwrap();
        assert_eq!(p.text("agency"), "xm-sfj");
        assert_eq!(p.number("limit", 100).unwrap(), 5);
        assert_eq!(p.time_ms("from").unwrap(), Some(1_796_083_200_000));
        assert!(Params::parse(Some("a=1&a=2"), &["a"]).is_err());
        assert!(Params::parse(Some("token=x"), &["a"]).unwrap_err().detail.contains("unknown query parameter"));
        assert!(Params::parse(Some("limit=-1"), &["limit"]).unwrap().number("limit", 1).is_err());
        assert!(Params::parse(Some("from=yesterday"), &["from"]).unwrap().time_ms("from").is_err());
        assert!(Params::parse(Some("from="), &["from"]).unwrap().time_ms("from").is_err());
        assert!(Params::parse(Some("limit="), &["limit"]).unwrap().number("limit", 1).is_err());
        let t = Params::parse(Some("to=2026-12-01T08:00:00%2B08:00"), &["to"]).unwrap();
        assert_eq!(t.time_ms("to").unwrap(), Some(1_796_083_200_000));
    }
}
