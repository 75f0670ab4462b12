//! The audit entry the gateway writes for every request, allowed or denied, and its canonical
//! encoding. Every text a requester supplied is masked before it is written; tokens never are.

use serde::Serialize;
use shuzhu_policy::mask::mask_text;

use crate::auth::Principal;

/// Version of the entry encoding. Version 2 added `peer`, `jti` and `failures` at the end; entries of
/// version 1 lack them and verify unchanged (the ledger commits to each entry's own bytes). Version 3
/// added `books` at the end (present only when the privacy books changed, see [`crate::books`]).
pub const ENTRY_VERSION: u32 = 3;

/// Who asked, as recorded.
#[derive(Clone, Debug, Serialize)]
pub struct PrincipalRecord {
    /// `sub`.
    pub sub: String,
    /// `agency`.
    pub agency: String,
    /// Roles.
    pub roles: Vec<String>,
    /// `iss`.
    pub issuer: String,
}

impl From<&Principal> for PrincipalRecord {
    fn from(p: &Principal) -> Self {
        PrincipalRecord {
            sub: clip(&p.subject),
            agency: clip(&p.agency),
            roles: p.roles.iter().map(|r| r.as_str().to_string()).collect(),
            issuer: clip(&p.issuer),
        }
    }
}

/// What one node did for the request.
#[derive(Clone, Debug, Serialize)]
pub struct NodeRecord {
    /// Node id.
    pub node: String,
    /// `answered` or `missing`.
    pub status: &'static str,
    /// Digest of the node's release (when answered).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub release_digest: String,
    /// Why it is missing.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The node's receipt for its release, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptRecord>,
}

/// A node's signed receipt as recorded: the journal record it names and the signature (hex).
#[derive(Clone, Debug, Serialize)]
pub struct ReceiptRecord {
    /// Seq of the record in the node's release journal.
    pub journal_seq: u64,
    /// SHA-256 (hex) of that record.
    pub record_hash: String,
    /// Ed25519 signature (hex) over the receipt message.
    pub signature: String,
    /// Whether the gateway checked it against the node's configured key.
    pub verified: bool,
}

/// One audit entry. Field order is the canonical order.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRecord {
    /// Encoding version.
    pub v: u32,
    /// RFC 3339 UTC time.
    pub time: String,
    /// Request id.
    pub request_id: String,
    /// Gateway id.
    pub gateway: String,
    /// Who asked; absent when authentication failed.
    pub principal: Option<PrincipalRecord>,
    /// `query`, `list_indicators`, `audit.list_entries`.
    pub action: String,
    /// Indicator id.
    pub indicator: String,
    /// Group-by dimensions.
    pub group_by: Vec<String>,
    /// Period `YYYY-MM..YYYY-MM`.
    pub period: String,
    /// Filters as `dim=v1|v2`, masked.
    pub filters: Vec<String>,
    /// Stated purpose, masked.
    pub purpose: String,
    /// Legal basis, masked.
    pub legal_basis: String,
    /// `allow`, `deny`, `unauthenticated`, `invalid`, `error`.
    pub decision: String,
    /// Rule or reason behind the decision.
    pub reason: String,
    /// Policy version in force.
    pub policy_version: String,
    /// Nodes asked.
    pub nodes: Vec<NodeRecord>,
    /// SHA-256 of the answer's rows.
    pub answer_digest: String,
    /// Cells in the answer.
    pub cells: u32,
    /// Cells suppressed.
    pub cells_suppressed: u32,
    /// Latency in milliseconds.
    pub latency_ms: u64,
    /// The network peer (`ip:port`) the request came from (version 2).
    pub peer: String,
    /// The token's `jti`, when it was verified and carried one (version 2).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// For a summary of authentication failures (`action` `auth_failures`): how many, first and last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<FailureCount>,
    /// The privacy books' lines and chain heads, when they changed since the last entry that carried
    /// them (version 3): the commitment checked at start (see [`crate::books`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub books: Option<crate::books::BookHeads>,
    /// How the answer's new releases were found safe, when they were audited: `exact`, or `pairs`
    /// when the shape was too large for the exact audit and only the pairwise check ran.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub disclosure_check: String,
    /// Set when this request's failure is only counted into a periodic summary, not appended alone.
    #[serde(skip)]
    pub counted_only: bool,
}

/// Authentication failures of one peer and reason, counted between two summaries.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FailureCount {
    /// How many requests failed.
    pub count: u64,
    /// RFC 3339 time of the first.
    pub first: String,
    /// RFC 3339 time of the last.
    pub last: String,
}

impl AuditRecord {
    /// A blank entry for `action`.
    pub fn new(gateway: &str, request_id: &str, action: &str, policy_version: &str) -> Self {
        AuditRecord {
            v: ENTRY_VERSION,
            time: now_rfc3339(),
            request_id: request_id.into(),
            gateway: gateway.into(),
            principal: None,
            action: action.into(),
            indicator: String::new(),
            group_by: vec![],
            period: String::new(),
            filters: vec![],
            purpose: String::new(),
            legal_basis: String::new(),
            decision: String::new(),
            reason: String::new(),
            policy_version: policy_version.into(),
            nodes: vec![],
            answer_digest: String::new(),
            cells: 0,
            cells_suppressed: 0,
            latency_ms: 0,
            peer: String::new(),
            jti: String::new(),
            failures: None,
            books: None,
            disclosure_check: String::new(),
            counted_only: false,
        }
    }

    /// The canonical JSON text that is hashed into the chain.
    pub fn canonical(&self) -> String {
        // Serialising a struct of strings, numbers and vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Masks and bounds a requester-supplied text before it is written anywhere.
pub fn clip(text: &str) -> String {
    mask_text(&text.chars().take(200).collect::<String>())
}

/// The current UTC time as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}
