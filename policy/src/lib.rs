//! Pure rules of Shuzhu (数助): what the data is, who may ask what, and how answers are computed and
//! protected. Everything here is synchronous and does no I/O beyond parsing text handed to it:
//!
//! - [`schema`]: the datasets, their fields, grades (L1–L4) and personal-information tags, and the
//!   enumerations of DESIGN.md (case types with their division and instance, closure methods …);
//! - [`period`]: whole-month periods, parsed once at the edge;
//! - [`dimension`]: the dimensions an answer may be grouped or filtered by;
//! - [`indicator`]: the indicator catalogue and the partial measures each one needs, and the exact
//!   arithmetic that turns merged partials into values;
//! - [`disclosure`]: threshold suppression of merged cells, record sets of released numbers and the
//!   exact differencing audit over them ([`disclosure::recordset`], [`disclosure::audit`]);
//! - [`catalogue`]: every dataset's fields with category, grade, personal-information kind and masking
//!   rule, the important/core flags, and the fields each indicator reads (embedded `catalogue.toml`);
//! - [`grant`]: the federation policy (agencies, grants, deny rules, field constraints), deny-by-default
//!   decisions, quotas and the policy version;
//! - [`check`]: where each problem of a policy file is (line and key), for `shuzhu policy check`;
//! - [`pii`]: detectors of personal identifiers (NFKC first), masking operators and rules, free-text
//!   scrubbing; [`mask`]: the gateway's over-eager masking, built on [`pii`]; [`pseudonym`]: keyed
//!   pseudonyms and the coarse attributes derived from resident ID numbers.
//!
//! This crate must not depend on `shuzhu-proto`, `shuzhu-node` or `shuzhu-gateway`, nor on tokio, tonic
//! or sled: the node and the gateway both call into it, so a rule is written once.

pub mod catalogue;
pub mod check;
pub mod deviation;
pub mod dimension;
pub mod disclosure;
#[doc(hidden)]
pub mod fuzzing;
pub mod grant;
pub mod indicator;
pub mod mask;
pub mod period;
pub mod pii;
pub mod protect;
pub mod pseudonym;
pub mod schema;

pub use catalogue::Catalogue;
pub use dimension::Dimension;
pub use grant::{Decision, FederationPolicy};
pub use indicator::{Indicator, IndicatorKind, MeasureId};
pub use period::{Month, Period};
pub use schema::Grade;
