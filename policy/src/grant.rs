//! The federation policy: agencies and their grants, and the deny-by-default decision.
//!
//! A grant gives an agency a clearance (the highest grade its indicators may read), the indicators,
//! dimensions and filters it may use, its purposes, a validity window and optionally a stricter
//! threshold. A request is allowed only when one grant covers all of it; otherwise the refusal names the
//! rule that refused it, in words a person can act on. The policy version is a hash of its canonical
//! form and travels with every answer and audit entry.

use serde::{Deserialize, Serialize};

use crate::dimension::Dimension;
use crate::disclosure::{DEFAULT_THRESHOLD, MIN_THRESHOLD};
use crate::indicator::{Indicator, indicator};
use crate::period::parse_day;
use crate::schema::Grade;

/// An agency of the federation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    /// Identifier, matched against the `agency` claim of tokens.
    pub id: String,
    /// Display name, e.g. 厦门市司法局.
    pub name: String,
}

/// What one agency may ask.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The agency the grant is for.
    pub agency: String,
    /// Highest grade the indicators (and dimensions) may read.
    pub clearance: Grade,
    /// Indicator ids.
    pub indicators: Vec<String>,
    /// Dimensions the answer may be grouped by.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Dimensions the request may filter on.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Purposes (诉源治理, 司法统计 …).
    pub purposes: Vec<String>,
    /// First day the grant is valid (`YYYY-MM-DD`), inclusive.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// Last day the grant is valid (`YYYY-MM-DD`), inclusive.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// Threshold k for this grant; never below 5; the larger of this and the policy default applies.
    #[serde(default)]
    pub threshold: Option<u32>,
}

/// The federation policy file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FederationPolicy {
    /// Threshold k for every grant that sets none.
    #[serde(default = "default_threshold")]
    pub default_threshold: u32,
    /// Agencies.
    #[serde(default, rename = "agency")]
    pub agencies: Vec<Agency>,
    /// Grants.
    #[serde(default, rename = "grant")]
    pub grants: Vec<Grant>,
}

fn default_threshold() -> u32 {
    DEFAULT_THRESHOLD
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The TOML did not parse into the policy's shape (unknown field, wrong type …); the message carries
    /// the line and key.
    #[error("{0}")]
    Syntax(String),
    /// The policy parsed but breaks a rule; every problem is listed.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// The outcome of a decision. A denial is a value, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the grant at `grant` (index into the policy's grants).
    Allow {
        /// Index of the deciding grant.
        grant: usize,
        /// Threshold k that applies.
        threshold: u32,
    },
    /// Refused.
    Deny {
        /// Short rule name for the audit ledger (`no_grant`, `purpose` …).
        rule: &'static str,
        /// A sentence the requester can act on.
        reason: String,
    },
}

/// What is asked, already parsed.
#[derive(Clone, Copy, Debug)]
pub struct AccessRequest<'a> {
    /// The requesting agency (from the verified token).
    pub agency: &'a str,
    /// The indicator.
    pub indicator: &'a Indicator,
    /// Group-by dimensions.
    pub group_by: &'a [Dimension],
    /// Filter dimensions.
    pub filters: &'a [Dimension],
    /// Stated purpose.
    pub purpose: &'a str,
    /// Today as a day number (days since 1970-01-01).
    pub today: i32,
}

impl FederationPolicy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let policy: FederationPolicy = toml::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        let problems = policy.problems();
        if problems.is_empty() { Ok(policy) } else { Err(PolicyError::Invalid(problems)) }
    }

    /// Every rule the policy breaks, each as one line.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.default_threshold < MIN_THRESHOLD {
            out.push(format!("default_threshold {} is below the minimum {MIN_THRESHOLD}", self.default_threshold));
        }
        for (i, a) in self.agencies.iter().enumerate() {
            if a.id.trim().is_empty() {
                out.push(format!("agency[{i}]: id is empty"));
            }
            if self.agencies.iter().filter(|b| b.id == a.id).count() > 1 {
                out.push(format!("agency[{i}]: id {:?} is declared twice", a.id));
            }
        }
        for (i, g) in self.grants.iter().enumerate() {
            let at = format!("grant[{i}] ({})", g.agency);
            if !self.agencies.iter().any(|a| a.id == g.agency) {
                out.push(format!("{at}: agency is not declared in [[agency]]"));
            }
            if let Some(t) = g.threshold
                && t < MIN_THRESHOLD
            {
                out.push(format!("{at}: threshold {t} is below the minimum {MIN_THRESHOLD}"));
            }
            if g.purposes.is_empty() {
                out.push(format!("{at}: purposes is empty"));
            }
            for d in g.dimensions.iter().chain(&g.filters) {
                if Dimension::parse(d).is_none() {
                    out.push(format!("{at}: unknown dimension {d:?}"));
                }
            }
            for f in &g.filters {
                if Dimension::parse(f).is_some_and(Dimension::is_time) {
                    out.push(format!("{at}: {f:?} cannot be a filter; periods choose time"));
                }
            }
            for id in &g.indicators {
                match indicator(id) {
                    None => out.push(format!("{at}: unknown indicator {id:?}")),
                    Some(ind) => {
                        let grade = ind.grade_with(&[]);
                        if grade > g.clearance {
                            out.push(format!(
                                "{at}: indicator {id:?} reads {grade} fields above the grant's clearance {}",
                                g.clearance
                            ));
                        }
                    }
                }
            }
            for (key, v) in [("valid_from", &g.valid_from), ("valid_until", &g.valid_until)] {
                if let Some(v) = v
                    && parse_day(v).is_none()
                {
                    out.push(format!("{at}: {key} {v:?} is not a date YYYY-MM-DD"));
                }
            }
        }
        out
    }

    /// The policy version: the first 16 hex digits of SHA-256 over the canonical (JSON) form.
    pub fn version(&self) -> String {
        // Serialising plain structs of strings and vectors cannot fail.
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
        hex::encode(&digest.as_ref()[..8])
    }

    /// Decides a request: deny by default; allowed only when one valid grant covers all of it.
    pub fn decide(&self, req: &AccessRequest<'_>) -> Decision {
        let grants: Vec<(usize, &Grant)> =
            self.grants.iter().enumerate().filter(|(_, g)| g.agency == req.agency).collect();
        if grants.is_empty() {
            return deny("no_grant", format!("agency {} holds no grant", req.agency));
        }
        // Explain the refusal of the grant that came closest, checking rules in a fixed order.
        let mut best: Option<(u8, &'static str, String)> = None;
        for (i, g) in grants {
            match check_grant(g, req) {
                Ok(()) => {
                    let threshold = g.threshold.unwrap_or(0).max(self.default_threshold).max(MIN_THRESHOLD);
                    return Decision::Allow { grant: i, threshold };
                }
                Err((depth, rule, reason)) => {
                    if best.as_ref().is_none_or(|(d, _, _)| depth > *d) {
                        best = Some((depth, rule, reason));
                    }
                }
            }
        }
        let (_, rule, reason) = best.unwrap_or((0, "no_grant", "no grant applies".into()));
        deny(rule, reason)
    }
}

fn deny(rule: &'static str, reason: String) -> Decision {
    Decision::Deny { rule, reason }
}

fn check_grant(g: &Grant, req: &AccessRequest<'_>) -> Result<(), (u8, &'static str, String)> {
    let ind = req.indicator;
    if g.valid_from.as_deref().and_then(parse_day).is_some_and(|from| req.today < from) {
        return Err((1, "not_yet_valid", "the grant is not yet valid".into()));
    }
    if g.valid_until.as_deref().and_then(parse_day).is_some_and(|until| req.today > until) {
        return Err((1, "expired", "the grant has expired".into()));
    }
    if !g.indicators.iter().any(|i| i == ind.id) {
        return Err((2, "indicator", format!("the grant does not include indicator {}", ind.id)));
    }
    if !g.purposes.iter().any(|p| p == req.purpose) {
        return Err((3, "purpose", format!("purpose {:?} is not among the grant's purposes", req.purpose)));
    }
    for d in req.group_by {
        if !g.dimensions.iter().any(|x| x == d.as_str()) {
            let why = if *d == Dimension::Court {
                "grouping by court is for court managers; ask for regions instead".to_string()
            } else {
                format!("the grant does not allow grouping by {d}")
            };
            return Err((4, "dimension", why));
        }
    }
    for d in req.filters {
        if !g.filters.iter().any(|x| x == d.as_str()) {
            return Err((5, "filter", format!("the grant does not allow filtering by {d}")));
        }
    }
    let grade = ind.grade_with(req.group_by);
    if grade > g.clearance {
        return Err((
            6,
            "clearance",
            format!("the request reads {grade} data above the grant's clearance {}", g.clearance),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::days_from_civil;

    const POLICY: &str = r#"
default_threshold = 10
[[agency]]
id = "xm-sfj"
name = "厦门市司法局"
[[agency]]
id = "xm-spb"
name = "厦门中院审管办"
[[grant]]
agency = "xm-sfj"
clearance = "L2"
indicators = ["filed", "closure_rate"]
dimensions = ["region", "year"]
filters = ["region"]
purposes = ["诉源治理"]
valid_until = "2030-12-31"
[[grant]]
agency = "xm-spb"
clearance = "L2"
indicators = ["filed"]
dimensions = ["court", "month"]
purposes = ["审判管理"]
threshold = 12
"#;

    fn ask(p: &FederationPolicy, agency: &str, ind: &str, dims: &[Dimension], purpose: &str) -> Decision {
        p.decide(&AccessRequest {
            agency,
            indicator: indicator(ind).unwrap(),
            group_by: dims,
            filters: &[],
            purpose,
            today: days_from_civil(2025, 1, 1),
        })
    }

    #[test]
    fn grants_allow_and_deny_with_reasons() {
        let p = FederationPolicy::parse(POLICY).unwrap();
        assert!(matches!(
            ask(&p, "xm-sfj", "filed", &[Dimension::Region], "诉源治理"),
            Decision::Allow { threshold: 10, .. }
        ));
        assert!(matches!(
            ask(&p, "xm-spb", "filed", &[Dimension::Court], "审判管理"),
            Decision::Allow { threshold: 12, .. }
        ));
        let Decision::Deny { rule, reason } = ask(&p, "xm-sfj", "filed", &[Dimension::Court], "诉源治理") else {
            panic!("court grouping allowed")
        };
        assert_eq!(rule, "dimension");
        assert!(reason.contains("court"));
        assert!(matches!(ask(&p, "xm-sfj", "filed", &[], "营商环境评估"), Decision::Deny { rule: "purpose", .. }));
        assert!(matches!(ask(&p, "xm-sfj", "on_time_rate", &[], "诉源治理"), Decision::Deny { rule: "indicator", .. }));
        assert!(matches!(ask(&p, "nobody", "filed", &[], "诉源治理"), Decision::Deny { rule: "no_grant", .. }));
    }

    #[test]
    fn expired_grants_deny() {
        let p = FederationPolicy::parse(POLICY).unwrap();
        let d = p.decide(&AccessRequest {
            agency: "xm-sfj",
            indicator: indicator("filed").unwrap(),
            group_by: &[],
            filters: &[],
            purpose: "诉源治理",
            today: days_from_civil(2031, 1, 1),
        });
        assert!(matches!(d, Decision::Deny { rule: "expired", .. }));
    }

    #[test]
    fn bad_policies_are_refused_with_every_problem() {
        let bad = POLICY.replace("threshold = 12", "threshold = 3").replace("\"closure_rate\"", "\"closure_rat\"");
        let err = FederationPolicy::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("threshold 3"), "{err}");
        assert!(err.contains("closure_rat"), "{err}");
        let unknown = format!("{POLICY}\nsurprise = 1\n");
        assert!(FederationPolicy::parse(&unknown).unwrap_err().to_string().contains("surprise"));
    }

    #[test]
    fn version_changes_with_content() {
        let a = FederationPolicy::parse(POLICY).unwrap();
        let b = FederationPolicy::parse(&POLICY.replace("threshold = 12", "threshold = 15")).unwrap();
        assert_eq!(a.version(), FederationPolicy::parse(POLICY).unwrap().version());
        assert_ne!(a.version(), b.version());
        assert_eq!(a.version().len(), 16);
    }
}
