//! The life of a query after authentication: parse, decide, plan, fan out, merge, suppress.
//!
//! The caller (the `Gateway` service) appends the audit entry this fills in before it answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use shuzhu_policy::dimension::Dimension;
use shuzhu_policy::disclosure::audit::Refusal;
use shuzhu_policy::disclosure::{self, Cell, Partial, Status as CellStatus};
use shuzhu_policy::grant::{AccessRequest, Decision};
use shuzhu_policy::indicator::{self, Indicator, IndicatorKind};
use shuzhu_policy::period::{Month, Period, days_from_civil};
use shuzhu_policy::protect::{self, Protection};
use shuzhu_proto::v1 as pb;
use tonic::{Code, Status};

use crate::audit::{AuditRecord, NodeRecord, ReceiptRecord, clip};
use crate::auth::Principal;
use crate::quota::QuotaExceeded;
use crate::state::{GatewayState, NodeHandle};

/// Most values a node accepts in a region filter (`shuzhu_node::service::MAX_REGION_FILTER`; the gateway
/// does not link the node crate). Beyond it the counted districts are not sent, and no rate per population
/// is shown (its rows are `partial`).
const NODE_MAX_REGION_FILTER: usize = 4096;

/// Most values one dimension's filter may hold (a node refuses more), counted after repeated filters
/// on the dimension are merged.
const MAX_FILTER_VALUES: usize = 64;

/// Largest node answer the gateway reads.
const MAX_NODE_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// A parsed, checked query.
pub struct ParsedQuery {
    /// Indicator.
    pub indicator: &'static Indicator,
    /// Group-by dimensions.
    pub group_by: Vec<Dimension>,
    /// Period.
    pub period: Period,
    /// Filters.
    pub filters: Vec<(Dimension, Vec<String>)>,
    /// Purpose.
    pub purpose: String,
    /// Digits of the region code a `region` group keeps: 6 (district), 4 (city, `region:city`) or 2
    /// (province, `region:province`); rolled-up labels are padded with zeros (350200, 350000).
    pub region_level: usize,
    /// Each rolled-up region label's districts (those any node serves or reported), so that the release
    /// ledger sees a city as the set of its districts.
    pub region_members: BTreeMap<String, Vec<String>>,
}

fn invalid(record: &mut AuditRecord, message: String) -> Status {
    record.decision = "invalid".into();
    record.reason = clip(&message);
    Status::invalid_argument(clip(&message))
}

/// Parses the request, recording what was asked (masked) in `record`.
pub fn parse(req: &pb::QueryRequest, record: &mut AuditRecord) -> Result<ParsedQuery, Status> {
    record.indicator = clip(&req.indicator);
    record.group_by = req.group_by.iter().map(|d| clip(d)).collect();
    record.filters = req.filters.iter().map(|f| clip(&format!("{}={}", f.dimension, f.values.join("|")))).collect();
    record.purpose = clip(&req.purpose);
    record.legal_basis = clip(&req.legal_basis);
    if let Some(p) = &req.period {
        record.period = format!("{}..{}", p.from_month, p.to_month);
    }
    let Some(ind) = indicator::indicator(&req.indicator) else {
        return Err(invalid(
            record,
            format!("unknown indicator {:?}; ListIndicators shows the catalogue", req.indicator),
        ));
    };
    let mut group_by = Vec::new();
    let mut region_level = 6;
    for d in &req.group_by {
        let d = match d.split_once(':') {
            Some(("region", level)) => {
                region_level = match level {
                    "district" => 6,
                    "city" => 4,
                    "province" => 2,
                    _ => {
                        return Err(invalid(
                            record,
                            format!(
                                "unknown region level {level:?}; use region:district, region:city or region:province"
                            ),
                        ));
                    }
                };
                "region"
            }
            _ => d.as_str(),
        };
        let Some(dim) = Dimension::parse(d) else {
            return Err(invalid(record, format!("unknown dimension {d:?}")));
        };
        if !ind.allows(dim) {
            return Err(invalid(record, format!("indicator {} cannot be grouped by {dim}", ind.id)));
        }
        if group_by.contains(&dim) {
            return Err(invalid(record, format!("dimension {dim} is repeated")));
        }
        group_by.push(dim);
    }
    if group_by.len() > 4 {
        return Err(invalid(record, "at most 4 group-by dimensions".into()));
    }
    let Some(p) = &req.period else {
        return Err(invalid(record, "a period (from and to month) is required".into()));
    };
    let period = Period::from_wire(p.from_month, p.to_month).map_err(|e| invalid(record, format!("period: {e}")))?;
    record.period = period.to_string();
    // A rate per population relates P to the population of P's year: a period over several years has
    // no one population unless each year is its own row.
    if matches!(ind.kind, IndicatorKind::PerPopulation { .. })
        && shuzhu_policy::dimension::time_grain(&group_by) == shuzhu_policy::dimension::TimeGrain::Whole
        && period.from().year() != period.to().year()
    {
        return Err(invalid(
            record,
            format!(
                "indicator {} divides by the population of P's year: keep the period within one calendar year or group by year",
                ind.id
            ),
        ));
    }
    if req.filters.len() > 8 {
        return Err(invalid(record, "at most 8 filters".into()));
    }
    let mut filters: Vec<(Dimension, Vec<String>)> = Vec::new();
    for f in &req.filters {
        let Some(dim) = Dimension::parse(&f.dimension) else {
            return Err(invalid(record, format!("unknown filter dimension {:?}", f.dimension)));
        };
        if dim.is_time() {
            return Err(invalid(record, format!("{dim} cannot be a filter; choose the period with from and to")));
        }
        if !ind.allows(dim) {
            return Err(invalid(record, format!("indicator {} cannot be filtered by {dim}", ind.id)));
        }
        if f.values.is_empty() || f.values.len() > MAX_FILTER_VALUES {
            return Err(invalid(record, format!("filter {dim} needs 1 to {MAX_FILTER_VALUES} values")));
        }
        if let Some(bad) = f.values.iter().find(|v| !dim.accepts_value(v)) {
            return Err(invalid(record, format!("{bad:?} is not a {dim} value")));
        }
        match filters.iter_mut().find(|(d, _)| *d == dim) {
            Some((_, vals)) => vals.extend(f.values.iter().cloned()),
            None => filters.push((dim, f.values.clone())),
        }
    }
    // Repeated filters on one dimension are merged (duplicates dropped): the merged list is what
    // nodes receive, so it is what must stay within their limit.
    for (dim, vals) in &mut filters {
        let mut seen = std::collections::BTreeSet::new();
        vals.retain(|v| seen.insert(v.clone()));
        if vals.len() > MAX_FILTER_VALUES {
            return Err(invalid(
                record,
                format!(
                    "filter {dim} has {} distinct values after merging repeated filters; the limit is {MAX_FILTER_VALUES}",
                    vals.len()
                ),
            ));
        }
    }
    let purpose = req.purpose.trim().to_string();
    if purpose.is_empty() || purpose.chars().count() > 64 {
        return Err(invalid(record, "a purpose (at most 64 characters) is required, e.g. 诉源治理".into()));
    }
    if req.legal_basis.chars().count() > 500 {
        return Err(invalid(record, "legal_basis is longer than 500 characters".into()));
    }
    let q = ParsedQuery {
        indicator: ind,
        group_by,
        period,
        filters,
        purpose,
        region_level,
        region_members: BTreeMap::new(),
    };
    if let Err(why) = node_plan(&q) {
        return Err(invalid(record, why));
    }
    Ok(q)
}

/// What the gateway asks each node for one query: group-by, period and, for a deviation, the time
/// grain the answer is split by.
#[derive(Debug)]
pub(crate) struct NodePlan {
    /// Group-by dimensions of the node request.
    pub(crate) dims: Vec<Dimension>,
    /// Period of the node request.
    period: Period,
    /// For a deviation: the time dimension (last of `dims`) whose labels are folded into P and its
    /// baseline years, and how many baseline years.
    deviation: Option<(Dimension, u32)>,
}

/// The node request of a query. Most indicators ask for exactly what the requester asked. A deviation
/// asks once per node for the whole span from `baseline_years` before P to the end of P, split by the
/// coarsest time grain that keeps P and each shifted period whole (year when P is whole years, quarter
/// when whole quarters, else month; never coarser than a time dimension asked), so that the gateway can
/// add each grain unit to P or to the baseline year it falls in, exactly; one request per node keeps
/// the nodes' journals and receipts to one entry per query.
pub(crate) fn node_plan(q: &ParsedQuery) -> Result<NodePlan, String> {
    // A rate per population joins its two sides per district and year, whatever the cells: the gateway
    // rolls the joined figures up ([`join_population`]), so that no cell divides by a partial population.
    if matches!(q.indicator.kind, IndicatorKind::PerPopulation { .. }) {
        return Ok(NodePlan { dims: vec![Dimension::Region, Dimension::Year], period: q.period, deviation: None });
    }
    let IndicatorKind::Deviation { baseline_years, .. } = q.indicator.kind else {
        return Ok(NodePlan { dims: q.group_by.clone(), period: q.period, deviation: None });
    };
    // Within 12 months, P and its shifted periods are disjoint: each case counts in one of them only,
    // which the ε charge (the count in P and the baseline sum) and the release ledger rely on. A longer
    // P overlaps its own baseline (a case would count in P and again in a baseline year, or in several
    // cells' baselines when grouped by year), so it is refused rather than under-charged.
    if q.period.months() > 12 {
        return Err(format!(
            "indicator {} compares P with the same months of the {baseline_years} years before: P may span at most 12 months (a longer P overlaps its own baseline); ask one year at a time",
            q.indicator.id
        ));
    }
    let (from, to) = (q.period.from(), q.period.to());
    let aligned = |n: u32| (from.month() - 1) % n == 0 && to.month() % n == 0;
    let rank = |d: Dimension| match d {
        Dimension::Month => 0,
        Dimension::Quarter => 1,
        _ => 2,
    };
    let by_period = if aligned(12) {
        Dimension::Year
    } else if aligned(3) {
        Dimension::Quarter
    } else {
        Dimension::Month
    };
    let grain = q.group_by.iter().copied().filter(|d| d.is_time()).chain([by_period]).min_by_key(|d| rank(*d));
    let grain = grain.unwrap_or(by_period);
    let mut dims: Vec<Dimension> = q.group_by.iter().copied().filter(|d| !d.is_time()).collect();
    if dims.len() > 3 {
        return Err(format!(
            "indicator {} takes at most 3 group-by dimensions besides year, quarter and month",
            q.indicator.id
        ));
    }
    dims.push(grain);
    // No data is held before the earliest year: a baseline reaching before it is refused, not zero.
    let earliest = Month::new(shuzhu_policy::period::MIN_YEAR, 1).map_err(|e| e.to_string())?;
    let start = Month::from_index(from.index() - 12 * baseline_years as i32);
    if start < earliest {
        return Err(format!(
            "indicator {} compares P with the {baseline_years} years before it, which would start in {start}, before {earliest}: choose a later period",
            q.indicator.id
        ));
    }
    let period = Period::new(start, to).map_err(|e| format!("period with its {baseline_years} baseline years: {e}"))?;
    Ok(NodePlan { dims, period, deviation: Some((grain, baseline_years)) })
}

/// Folds a deviation's node-level groups (the asked record dimensions, then a time-grain label) into
/// the requester's cells: for each cell, the partial of P and of each of the `years` previous years'
/// same months (year −1 first). A grain unit counts for baseline year `y` when, moved `y` years later,
/// it lies in P; its time labels are those of the moved unit.
fn fold_deviation(
    q: &ParsedQuery,
    grain: Dimension,
    years: u32,
    merged: BTreeMap<Vec<String>, Vec<Partial>>,
) -> BTreeMap<Vec<String>, Vec<Partial>> {
    let (from, to) = (q.period.from().index(), q.period.to().index());
    let mut out: BTreeMap<Vec<String>, Vec<Partial>> = BTreeMap::new();
    for (key, partials) in merged {
        // check_answer has refused keys of the wrong length or with a time label that does not parse.
        let (Some((label, rest)), Some(p)) = (key.split_last(), partials.first()) else { continue };
        let Some((a, b)) = crate::releases::label_months(grain, label) else { continue };
        for y in 0..=years {
            let (a, b) = (a + 12 * y as i32, b + 12 * y as i32);
            if a < from || b > to {
                continue;
            }
            let month = Month::from_index(a);
            let mut rest = rest.iter();
            let cell: Vec<String> = q
                .group_by
                .iter()
                .map(|d| match d {
                    Dimension::Year => month.year().to_string(),
                    Dimension::Quarter => format!("{}-Q{}", month.year(), month.quarter()),
                    Dimension::Month => month.to_string(),
                    _ => rest.next().cloned().unwrap_or_default(),
                })
                .collect();
            out.entry(cell).or_insert_with(|| vec![Partial::default(); years as usize + 1])[y as usize].merge(*p);
        }
    }
    out
}

/// Today as a day number (UTC).
pub fn today() -> i32 {
    let now = time::OffsetDateTime::now_utc();
    days_from_civil(now.year(), u32::from(u8::from(now.month())), u32::from(now.day()))
}

/// Runs an allowed-or-denied query to its answer. Fills `record`; never appends it.
pub async fn execute(
    state: &GatewayState,
    principal: &Principal,
    req: pb::QueryRequest,
    request_id: &str,
    record: &mut AuditRecord,
) -> Result<pb::QueryResponse, Status> {
    let mut q = parse(&req, record)?;
    let policy = state.current_policy();
    record.policy_version = policy.version.clone();
    let filter_dims: Vec<Dimension> = q.filters.iter().map(|(d, _)| *d).collect();
    let roles: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
    let decision = policy.policy.decide(&AccessRequest {
        agency: &principal.agency,
        roles: &roles,
        indicator: q.indicator,
        group_by: &q.group_by,
        filters: &filter_dims,
        filter_values: &q.filters,
        purpose: &q.purpose,
        legal_basis: &req.legal_basis,
        today: today(),
    });
    let (threshold, accept_partial, protection, dp_epsilon_milli, dp_budget_milli) = match decision {
        Decision::Allow { threshold, accept_partial, protection, dp_epsilon_milli, dp_budget_milli, .. } => {
            (threshold, accept_partial, protection, dp_epsilon_milli, dp_budget_milli)
        }
        Decision::Deny { rule, reason } => {
            record.decision = "deny".into();
            record.reason = format!("{rule}: {}", clip(&reason));
            let message = format!("{} (rule {rule}, policy {})", clip(&reason), policy.version);
            return Err(with_version(Status::permission_denied(message), &policy.version));
        }
    };
    // Counting against a daily quota appends to the quota file and fdatasyncs it: off the async worker
    // threads, as the release ledger's check is.
    let (book, agency, quota) =
        (Arc::clone(&state.quotas), principal.agency.clone(), policy.policy.quota(&principal.agency, today()));
    let now = std::time::Instant::now();
    let taken =
        tokio::task::spawn_blocking(move || book.take(&agency, quota, now, today())).await.unwrap_or_else(|e| {
            tracing::error!(request_id, error = %e, "the quota count failed");
            Err(QuotaExceeded::Unrecorded)
        });
    if let Err(over) = taken {
        return Err(with_version(quota_refusal(&over, record), &policy.version));
    }
    if protection == Protection::CellKey && state.cell_key_secret.is_none() {
        record.decision = "error".into();
        record.reason = "cell_key protection without a configured secret".into();
        return Err(with_version(
            Status::failed_precondition(
                "the grant asks for cell_key protection but the gateway has no cell_key_secret configured",
            ),
            &policy.version,
        ));
    }
    record.decision = "allow".into();

    // Plan: for each dataset the indicator reads, the nodes serving it and, where a region or court
    // filter is given, serving that; each is asked for the measures over its dataset.
    let measures = q.indicator.measures();
    let plan = node_plan(&q).map_err(|why| invalid(record, why))?;
    let (chosen, requests, counted_regions) =
        plan_nodes(state, &q, &measures, |dataset, ms, filters| pb::AggregateRequest {
            request_id: request_id.to_string(),
            dataset: dataset.into(),
            measures: ms.iter().map(|m| pb::MeasureRequest { id: (*m).into() }).collect(),
            group_by: plan.dims.iter().map(|d| d.as_str().into()).collect(),
            period: Some(pb::Period { from_month: plan.period.from().yyyymm(), to_month: plan.period.to().yyyymm() }),
            filters,
            agency: principal.agency.clone(),
            purpose: q.purpose.clone(),
            policy_version: policy.version.clone(),
            threshold,
        });
    let calls = chosen.iter().zip(&requests).map(|(n, r)| ask_node(n, Arc::clone(r), state.node_timeout));
    let answers = futures::future::join_all(calls).await;

    // Merge exactly, by group key (a region rolled up to its city or province first).
    let region_pos = q.group_by.iter().position(|d| *d == Dimension::Region);
    let node_region_pos = plan.dims.iter().position(|d| *d == Dimension::Region);
    let level = q.region_level;
    let roll = |district: &str| format!("{:0<6}", district.get(..level).unwrap_or(district));
    // A rate per population is merged per district and year, and rolled up by `join_population`.
    let per_population = matches!(q.indicator.kind, IndicatorKind::PerPopulation { .. });
    let node_level = if per_population { 6 } else { level };
    // How many nodes reported each (district, year) population figure (a rate per population only).
    let population_measure = match q.indicator.kind {
        IndicatorKind::PerPopulation { population, .. } => Some(population),
        _ => None,
    };
    let mut population_reports: BTreeMap<Vec<String>, u32> = BTreeMap::new();
    let mut members: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    if region_pos.is_some() && level < 6 {
        for r in state.nodes.iter().flat_map(|n| n.entry.regions.iter()) {
            members.entry(roll(r)).or_default().insert(r.clone());
        }
    }
    let mut merged: BTreeMap<Vec<String>, Vec<Partial>> = BTreeMap::new();
    let mut missing: Vec<(&NodeHandle, String)> = Vec::new();
    let mut data_until: Option<String> = None;
    // Each answering node's first month of data (a node without records gives none).
    let mut data_from: Vec<(&NodeHandle, i32)> = Vec::new();
    for ((node, answer), asked) in chosen.iter().zip(answers).zip(&requests) {
        let dataset = asked.dataset.as_str();
        let asked: Vec<&str> = asked.measures.iter().map(|m| m.id.as_str()).collect();
        let answer = answer.and_then(|a| check_answer(a, &node.entry, &plan.dims, &asked));
        let answer = answer.and_then(|a| check_receipt(node, request_id, a));
        // A node that serves the dataset but holds no record of it (an empty or mistyped store) adds
        // nothing: it is missing from the answer, with the reason, not silently counted as answering.
        let answer = answer.and_then(|(a, r)| {
            if a.data_until.is_empty() && a.groups.is_empty() {
                Err(format!("no data for dataset {dataset}"))
            } else {
                Ok((a, r))
            }
        });
        match answer {
            Ok((a, receipt)) => {
                record.nodes.push(NodeRecord {
                    node: node.entry.id.clone(),
                    status: "answered",
                    release_digest: a.release_digest.clone(),
                    reason: String::new(),
                    receipt,
                });
                if !a.data_until.is_empty() && data_until.as_ref().is_none_or(|d| a.data_until < *d) {
                    data_until = Some(a.data_until.clone());
                }
                if let Some(first) = covered_from(&a) {
                    data_from.push((*node, first));
                }
                for mut g in a.groups {
                    if population_measure.is_some_and(|p| g.measures.iter().any(|v| v.id == p)) {
                        *population_reports.entry(g.key.clone()).or_default() += 1;
                    }
                    if let Some(i) = node_region_pos.filter(|_| node_level < 6)
                        && let Some(district) = g.key.get_mut(i)
                    {
                        let rolled = roll(district);
                        members.entry(rolled.clone()).or_default().insert(std::mem::take(district));
                        *district = rolled;
                    }
                    let slot = merged.entry(g.key).or_insert_with(|| vec![Partial::default(); measures.len()]);
                    for (i, m) in measures.iter().enumerate() {
                        if let Some(v) = g.measures.iter().find(|v| v.id == *m) {
                            slot[i].merge(Partial {
                                value: v.value,
                                contributors: v.contributors,
                                max_single: v.max_single,
                            });
                        }
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(request_id, node = %node.entry.id, %reason, "node missing from answer");
                record.nodes.push(NodeRecord {
                    node: node.entry.id.clone(),
                    status: "missing",
                    release_digest: String::new(),
                    reason: reason.clone(),
                    receipt: None,
                });
                missing.push((node, reason));
            }
        }
    }
    if !chosen.is_empty() && missing.len() == chosen.len() {
        record.decision = "error".into();
        record.reason = "no node answered".into();
        let why: Vec<String> = missing.iter().map(|(n, r)| format!("{}: {r}", n.entry.id)).collect();
        return Err(Status::unavailable(format!("no node answered ({})", why.join("; "))));
    }
    if !missing.is_empty() && !accept_partial {
        record.decision = "error".into();
        record.reason = "partial answer refused by the grant".into();
        let why: Vec<String> = missing.iter().map(|(n, r)| format!("{}: {r}", n.entry.id)).collect();
        return Err(Status::unavailable(format!(
            "the grant accepts only complete answers and some nodes did not answer ({})",
            why.join("; ")
        )));
    }

    let merged = if per_population {
        join_population(&q, counted_regions.as_deref(), merged, &population_reports, &mut members)
    } else {
        merged
    };
    q.region_members = members.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect();
    let q = q;
    // A deviation's groups are folded into P and its baseline years: [current, year −1, year −2, …].
    let merged = match plan.deviation {
        Some((grain, years)) => fold_deviation(&q, grain, years, merged),
        None => merged,
    };
    let deviation = plan.deviation.is_some();

    // Evaluate and suppress each cell (primary rules), then secondary suppression across lines.
    let court_pos = q.group_by.iter().position(|d| *d == Dimension::Court);
    // Whether a node's records can lie in the cell of `key` (by the region and court it serves).
    let touches = |n: &NodeHandle, key: &[String]| {
        let by_region = region_pos
            .map(|i| n.entry.regions.is_empty() || n.entry.regions.iter().any(|r| roll(r) == key[i] || *r == key[i]));
        let by_court = court_pos.map(|i| n.entry.courts.is_empty() || n.entry.courts.contains(&key[i]));
        by_region.unwrap_or(true) && by_court.unwrap_or(true)
    };
    // A deviation cell's baseline must lie within the data of every node counting it: months before a
    // node's first month of data are not covered, and counting them as zero filings would raise false
    // warnings. Such a cell shows its count in P only (`no_baseline`).
    let time_pos = q.group_by.iter().position(|d| d.is_time());
    let baseline_uncovered = |key: &[String]| -> bool {
        let Some((_, years)) = plan.deviation else { return false };
        let from = q.period.from().index();
        let first = time_pos
            .and_then(|i| crate::releases::label_months(q.group_by[i], &key[i]))
            .map_or(from, |(a, _)| a.max(from));
        let covered_from = data_from.iter().filter(|(n, _)| touches(n, key)).map(|(_, m)| *m).max();
        covered_from.is_some_and(|m| first - 12 * (years as i32) < m)
    };
    let get = |partials: &Vec<Partial>, m: &str| {
        measures.iter().position(|x| *x == m).map(|i| partials[i]).unwrap_or_default()
    };
    let mut cells: Vec<Cell> = Vec::with_capacity(merged.len());
    let mut protected: Vec<disclosure::Protected> = Vec::with_capacity(merged.len());
    for (key, partials) in &merged {
        let affected = missing.iter().any(|(n, _)| touches(n, key));
        let (current, baseline) = partials.split_first().map_or((Partial::default(), &[][..]), |(c, b)| (*c, b));
        let cell: Cell = if affected {
            Cell::partial()
        } else if deviation {
            let mut cell = disclosure::evaluate_deviation(q.indicator, threshold, current, baseline);
            if cell.status == CellStatus::Ok && baseline_uncovered(key) {
                cell = Cell { value: None, denominator: None, rule: Some("baseline before the data"), ..cell };
            }
            cell
        } else {
            disclosure::evaluate(q.indicator, threshold, |m| get(partials, m))
        };
        let counts = if deviation {
            disclosure::deviation_protected_counts(current, baseline)
        } else {
            disclosure::protected_counts(q.indicator, |m| get(partials, m))
        };
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
        cells[i] = Cell::suppressed("secondary suppression");
    }

    // Differential privacy takes the answer's cost from the agency's budget for the dataset before the
    // release ledger records the cells, so that a refusal here never leaves cells recorded as released
    // that were not; any later refusal or failure gives it back (`refund`), so only what is released
    // is charged. The spend may fdatasync, so off the async worker threads.
    let mut charged: Option<u64> = None;
    if protection == Protection::Dp {
        let cost = crate::protection::dp_cost(&q, dp_epsilon_milli);
        let (book, agency, dataset) = (Arc::clone(&state.budget), principal.agency.clone(), q.indicator.dataset);
        let spent = tokio::task::spawn_blocking(move || book.spend(&agency, dataset, cost, u64::from(dp_budget_milli)))
            .await
            .unwrap_or_else(|e| Err(crate::releases::ReleaseError::Io(std::io::Error::other(e.to_string()))));
        match spent {
            Ok(Ok(_)) => charged = Some(cost),
            Ok(Err(over)) => {
                record.decision = "deny".into();
                record.reason = "privacy budget spent".into();
                let message = format!(
                    "privacy budget spent: agency {} has used ε {}.{:03} of {}.{:03} on dataset {}; this query needs {}.{:03}",
                    principal.agency,
                    over.used_milli / 1000,
                    over.used_milli % 1000,
                    over.budget_milli / 1000,
                    over.budget_milli % 1000,
                    q.indicator.dataset,
                    cost / 1000,
                    cost % 1000
                );
                return Err(with_version(Status::resource_exhausted(clip(&message)), &policy.version));
            }
            Err(e) => {
                record.decision = "error".into();
                record.reason = "privacy budget ledger unavailable".into();
                tracing::error!(request_id, error = %e, "privacy budget ledger failed");
                return Err(Status::unavailable("the privacy budget ledger is unavailable; nothing was answered"));
            }
        }
    }
    // Differencing defence: every number the answer shows, as equations over record sets, audited
    // exactly against everything released before in the scope.
    let answer: Vec<crate::releases::AnswerCell<'_>> =
        merged.iter().zip(&cells).map(|((k, p), c)| (k, p, c.status == CellStatus::Ok)).collect();
    // With a node missing, absent groups are unknown rather than zero: no empty remainder is released.
    let topology = state.releases.topology();
    let release = if deviation {
        crate::releases::releases_of_deviation(&q, &answer, missing.is_empty(), topology)
    } else {
        crate::releases::releases_of_answer(&q, &measures, &answer, missing.is_empty(), topology)
    };
    // The audit is exact linear algebra over the scope's releases and the record may fdatasync the
    // ledger file: both on a blocking thread, never on the async workers. The scope's lock is taken
    // there, for the audit and the record only (the fan-out above ran without it).
    let book = state.releases.clone();
    let agency = principal.agency.clone();
    let checked = tokio::task::spawn_blocking(move || book.audit_and_record(&agency, release, threshold))
        .await
        .unwrap_or_else(|e| Err(crate::releases::ReleaseError::Io(std::io::Error::other(e.to_string()))));
    if !matches!(checked, Ok(Ok(_))) {
        refund(state, principal, q.indicator.dataset, charged, request_id).await;
    }
    match checked {
        Ok(Ok(how)) => {
            record.disclosure_check = match how {
                Some(shuzhu_policy::disclosure::audit::Checked::Exact) => "exact".into(),
                Some(shuzhu_policy::disclosure::audit::Checked::Pairs) => "pairs".into(),
                None => String::new(),
            };
        }
        Ok(Err(refusal)) => {
            record.decision = "deny".into();
            record.reason = format!("differencing: {}", refusal.reason());
            let message = differencing_message(&refusal, threshold, &policy.version);
            return Err(with_version(Status::permission_denied(message), &policy.version));
        }
        Err(e) => {
            record.decision = "error".into();
            record.reason = "release ledger unavailable".into();
            tracing::error!(request_id, error = %e, "release ledger failed");
            return Err(Status::unavailable("the release ledger is unavailable; nothing was answered"));
        }
    }

    // Protection beyond suppression, on the cells shown.
    if protection != Protection::Suppress {
        // The random source is not `Send`: the cells are protected in a block of their own, ended
        // before the refund below awaits.
        let failed = {
            let rng = ring::rand::SystemRandom::new();
            let mut uniform = protect::Uniform::new(&rng);
            let shape = describe_query(&q);
            let cell_key = protect::CellKey::new(state.cell_key_secret.as_deref().unwrap_or_default());
            let records = crate::protection::CellRecords::new(&q, &state.nodes, &state.court_region);
            let mut failed = None;
            for ((key, _), cell) in merged.iter().zip(cells.iter_mut()) {
                if cell.status != CellStatus::Ok {
                    continue;
                }
                let mut noisy = |what: &str, v: i64| -> Result<i64, protect::NoiseError> {
                    let out = match protection {
                        Protection::Suppress => v,
                        Protection::Round5 => protect::round_to(v, 5),
                        // Keyed on the records the count counts, so that every query asking for them gets
                        // the same value; on the query's wording only where a label does not parse.
                        Protection::CellKey => match records.key(what, key) {
                            Some(records) => cell_key.apply_bytes(&records, v),
                            None => cell_key.apply(&format!("{shape}|{}|{what}", key.join("\u{1f}")), v),
                        },
                        Protection::Dp => protect::dp_count(&mut uniform, v, dp_epsilon_milli)?,
                    };
                    Ok(crate::protection::shown(protection, threshold, v, out))
                };
                if let Err(e) = protect_cell(q.indicator, cell, &mut noisy) {
                    failed = Some(e);
                    break;
                }
            }
            failed
        };
        if let Some(e) = failed {
            refund(state, principal, q.indicator.dataset, charged, request_id).await;
            record.decision = "error".into();
            record.reason = "noise could not be drawn".into();
            tracing::error!(request_id, error = %e, "noise failed");
            return Err(Status::internal("noise could not be drawn; nothing was answered"));
        }
    }

    let mut rows = Vec::with_capacity(merged.len());
    let mut suppressed = 0u32;
    for ((key, _), cell) in merged.iter().zip(&cells) {
        if cell.status == CellStatus::Suppressed {
            suppressed += 1;
        }
        let group = q.group_by.iter().zip(key).map(|(d, v)| (d.as_str().to_string(), clip(v))).collect();
        let (status, level) = row_status_and_level(q.indicator, cell);
        rows.push(pb::Row {
            group,
            value: cell.value,
            status,
            numerator: cell.numerator,
            denominator: cell.denominator,
            level,
        });
    }
    record.cells = rows.len() as u32;
    record.cells_suppressed = suppressed;
    record.answer_digest = answer_digest(&rows);
    Ok(pb::QueryResponse {
        indicator: q.indicator.id.into(),
        rows,
        coverage: Some(pb::Coverage {
            asked: chosen.len() as u32,
            answered: (chosen.len() - missing.len()) as u32,
            missing: missing
                .iter()
                .map(|(n, r)| pb::MissingNode { node: n.entry.id.clone(), reason: r.clone() })
                .collect(),
        }),
        policy_version: policy.version.clone(),
        audit_seq: 0,
        data_until: data_until.unwrap_or_default(),
        threshold,
    })
}

/// What a requester is told when the release audit refuses an answer: the rule, never a value (the
/// refusal names the measure whose release completes a derivation, nothing of the data).
fn differencing_message(refusal: &Refusal, threshold: u32, version: &str) -> String {
    let k = threshold.max(disclosure::MIN_THRESHOLD);
    match refusal {
        Refusal::Small { measure } => format!(
            "differencing: with numbers already released, this answer would let someone derive a count of 1..{} \
             records ({measure}); nothing was answered: ask for a coarser or identical grouping, period or filter \
             (policy {version})",
            k - 1
        ),
        Refusal::Money { measure } => format!(
            "differencing: with numbers already released, this answer would let someone derive a sum of money over \
             records that were never shown as a protected cell ({measure}); nothing was answered: ask for a \
             coarser or identical grouping, period or filter (policy {version})"
        ),
        Refusal::TooComplex => format!(
            "differencing: this answer, with the numbers already released, is too complex to audit exactly, so \
             nothing was answered; ask for fewer cells, a coarser grouping or a shorter period (policy {version})"
        ),
    }
}

/// A row's status and warning level. A shown deviation has the level of its numerator (the count in P)
/// against its denominator (the baseline years' sum), or, over a zero baseline, status `no_baseline`
/// and no level; every other row has no level.
fn row_status_and_level(ind: &Indicator, cell: &Cell) -> (String, String) {
    let status = cell.status.as_str().to_string();
    let IndicatorKind::Deviation { baseline_years, levels, .. } = ind.kind else { return (status, String::new()) };
    match (cell.status, cell.numerator, cell.denominator) {
        (CellStatus::Ok, Some(n), Some(d)) => match levels.level(n, d, baseline_years) {
            Some(level) => (status, level.as_str().into()),
            None => ("no_baseline".into(), String::new()),
        },
        // A baseline reaching before the data of a node counting the cell.
        (CellStatus::Ok, Some(_), None) => ("no_baseline".into(), String::new()),
        _ => (status, String::new()),
    }
}

/// Gives back a `dp` query's spend (`charged`) when it is refused or fails after the spend, so that
/// only what is released is charged. When the refund cannot be written the spend stays: the agency is
/// over-charged, never under-charged.
async fn refund(
    state: &GatewayState,
    principal: &Principal,
    dataset: &'static str,
    charged: Option<u64>,
    request_id: &str,
) {
    let Some(cost) = charged else { return };
    let (book, agency) = (Arc::clone(&state.budget), principal.agency.clone());
    let refunded = tokio::task::spawn_blocking(move || book.refund(&agency, dataset, cost))
        .await
        .unwrap_or_else(|e| Err(crate::releases::ReleaseError::Io(std::io::Error::other(e.to_string()))));
    if let Err(e) = refunded {
        tracing::error!(request_id, error = %e, "a privacy budget refund failed; the spend stays");
    }
}

/// Joins a rate per population's district-and-year groups (`merged`, keyed `[district, year]`) into the
/// requester's cells. A cell's population is the sum over its counted districts (those the counting
/// nodes serve, within the region filter, and any a counting node reported) and its years (the cell's
/// year, or the period's one year) of each district's figure for that year. Unless every one of these
/// has exactly one positive figure (from one node), the cell has no population (it is then `partial`,
/// never a rate over part of its people): so too when the counted districts are not known
/// (`counted == None`). Rolled-up region labels' districts are added to `members`.
fn join_population(
    q: &ParsedQuery,
    counted: Option<&[String]>,
    merged: BTreeMap<Vec<String>, Vec<Partial>>,
    reports: &BTreeMap<Vec<String>, u32>,
    members: &mut BTreeMap<String, std::collections::BTreeSet<String>>,
) -> BTreeMap<Vec<String>, Vec<Partial>> {
    use std::collections::BTreeSet;
    let IndicatorKind::PerPopulation { numerator, population, .. } = q.indicator.kind else { return merged };
    let measures = q.indicator.measures();
    let (Some(ni), Some(pi)) =
        (measures.iter().position(|m| *m == numerator), measures.iter().position(|m| *m == population))
    else {
        return merged;
    };
    let level = q.region_level;
    let roll = |district: &str| format!("{:0<6}", district.get(..level).unwrap_or(district));
    let filter: Option<&Vec<String>> = q.filters.iter().find(|(d, _)| *d == Dimension::Region).map(|(_, v)| v);
    let counted: Option<BTreeSet<&str>> =
        counted.map(|c| c.iter().filter(|d| filter.is_none_or(|f| f.contains(d))).map(|d| d.as_str()).collect());
    let cell_of = |district: &str, year: &str| -> Vec<String> {
        q.group_by
            .iter()
            .map(|d| match d {
                Dimension::Region => roll(district),
                _ => year.to_string(),
            })
            .collect()
    };
    // Each cell's numerator and the districts a counting node reported in it.
    let mut cells: BTreeMap<Vec<String>, (Partial, BTreeSet<String>)> = BTreeMap::new();
    let mut figures: BTreeMap<(String, String), Partial> = BTreeMap::new();
    for (key, partials) in merged {
        // check_answer has refused keys of another length than [district, year].
        let [district, year] = key.as_slice() else { continue };
        let cell = cells.entry(cell_of(district, year)).or_default();
        let n = partials.get(ni).copied().unwrap_or_default();
        if n.contributors > 0 || n.value > 0 {
            cell.1.insert(district.clone());
        }
        cell.0.merge(n);
        if let Some(p) = partials.get(pi) {
            figures.insert((district.clone(), year.clone()), *p);
        }
        if level < 6 && q.group_by.contains(&Dimension::Region) {
            members.entry(roll(district)).or_default().insert(district.clone());
        }
    }
    let period_years: Vec<String> = (q.period.from().year()..=q.period.to().year()).map(|y| y.to_string()).collect();
    let region_pos = q.group_by.iter().position(|d| *d == Dimension::Region);
    let year_pos = q.group_by.iter().position(|d| *d == Dimension::Year);
    cells
        .into_iter()
        .map(|(key, (n, reported))| {
            let people = counted.as_ref().and_then(|counted| {
                let districts: BTreeSet<&str> = counted
                    .iter()
                    .copied()
                    .filter(|d| region_pos.is_none_or(|i| roll(d) == key[i]))
                    .chain(reported.iter().map(|d| d.as_str()))
                    .collect();
                let years: Vec<&String> = match year_pos {
                    Some(i) => vec![&key[i]],
                    None => period_years.iter().collect(),
                };
                let mut sum = Partial::default();
                for d in &districts {
                    for y in &years {
                        let k = vec![d.to_string(), y.to_string()];
                        let figure = figures.get(&(k[0].clone(), k[1].clone()))?;
                        if reports.get(&k) != Some(&1) || figure.value <= 0 {
                            return None;
                        }
                        sum.merge(*figure);
                    }
                }
                (!districts.is_empty()).then_some(sum)
            });
            let mut partials = vec![Partial::default(); measures.len()];
            partials[ni] = n;
            partials[pi] = people.unwrap_or_default();
            (key, partials)
        })
        .collect()
}

/// The nodes to ask and, for each, its request (made by `request` from the dataset, its measures and
/// the filters to send), and the districts the counting nodes serve when they all say which (at most
/// [`NODE_MAX_REGION_FILTER`]). A population measure is restricted to these, so that the two sides of a
/// rate per population cover the same districts.
#[allow(clippy::type_complexity)]
fn plan_nodes<'a>(
    state: &'a GatewayState,
    q: &ParsedQuery,
    measures: &[&'static str],
    request: impl Fn(&str, Vec<&'static str>, Vec<pb::DimensionFilter>) -> pb::AggregateRequest,
) -> (Vec<&'a NodeHandle>, Vec<Arc<pb::AggregateRequest>>, Option<Vec<String>>) {
    let serving = |dataset: &str| -> Vec<&'a NodeHandle> {
        state
            .nodes
            .iter()
            .filter(|n| n.entry.datasets.iter().any(|d| d == dataset))
            .filter(|n| {
                q.filters.iter().all(|(d, vals)| match d {
                    Dimension::Region if !n.entry.regions.is_empty() => {
                        vals.iter().any(|v| n.entry.regions.contains(v))
                    }
                    Dimension::Court if !n.entry.courts.is_empty() => vals.iter().any(|v| n.entry.courts.contains(v)),
                    _ => true,
                })
            })
            .collect()
    };
    let filters = |extra_regions: Option<Vec<String>>| -> Vec<pb::DimensionFilter> {
        let mut out: Vec<pb::DimensionFilter> = q
            .filters
            .iter()
            .map(|(d, v)| pb::DimensionFilter { dimension: d.as_str().into(), values: v.clone() })
            .collect();
        if let Some(regions) = extra_regions {
            match out.iter_mut().find(|f| f.dimension == Dimension::Region.as_str()) {
                Some(f) => f.values.retain(|v| regions.contains(v)),
                None => out.push(pb::DimensionFilter { dimension: Dimension::Region.as_str().into(), values: regions }),
            }
        }
        out
    };
    let own = serving(q.indicator.dataset);
    if own.is_empty() {
        // Nothing counts the indicator's records here: no figure of another dataset can make a row.
        return (vec![], vec![], None);
    }
    let counted_regions: Option<Vec<String>> = (!own.is_empty() && own.iter().all(|n| !n.entry.regions.is_empty()))
        .then(|| {
            let mut r: Vec<String> = own.iter().flat_map(|n| n.entry.regions.iter().cloned()).collect();
            r.sort();
            r.dedup();
            r
        })
        .filter(|r| r.len() <= NODE_MAX_REGION_FILTER);
    let (mut chosen, mut requests) = (Vec::new(), Vec::new());
    for dataset in q.indicator.datasets() {
        let ms: Vec<&'static str> =
            measures.iter().copied().filter(|m| indicator::measure(m).is_some_and(|x| x.dataset == dataset)).collect();
        let population = ms.iter().any(|m| {
            indicator::measure(m).is_some_and(|x| matches!(x.accumulate, indicator::Accumulate::Total { .. }))
        });
        let extra = if population { counted_regions.clone() } else { None };
        let nodes = if dataset == q.indicator.dataset { own.clone() } else { serving(dataset) };
        let filters = filters(extra);
        if filters.iter().any(|f| f.values.is_empty()) {
            // The filter leaves no district that is counted: nothing to join.
            continue;
        }
        let req = Arc::new(request(dataset, ms, filters));
        for n in nodes {
            chosen.push(n);
            requests.push(Arc::clone(&req));
        }
    }
    (chosen, requests, counted_regions)
}

/// The canonical description of a query's cells (without the group values), for the cell key.
fn describe_query(q: &ParsedQuery) -> String {
    let mut filters: Vec<String> = q
        .filters
        .iter()
        .map(|(d, v)| {
            let mut v = v.clone();
            v.sort();
            v.dedup();
            format!("{d}={}", v.join(","))
        })
        .collect();
    filters.sort();
    let dims: Vec<&str> = q.group_by.iter().map(|d| d.as_str()).collect();
    format!("{}|{}|{}|{}", q.indicator.id, q.period, dims.join(","), filters.join(";"))
}

/// Replaces a shown cell's counts by their protected values: a count's value, a ratio's numerator and
/// denominator (the rate recomputed from them), a mean's count (the sum of days is then withheld).
fn protect_cell(
    ind: &Indicator,
    cell: &mut Cell,
    noisy: &mut dyn FnMut(&str, i64) -> Result<i64, protect::NoiseError>,
) -> Result<(), protect::NoiseError> {
    match ind.kind {
        IndicatorKind::Count { .. } => {
            if let Some(v) = cell.value {
                cell.value = Some(noisy("count", v as i64)? as f64);
            }
        }
        IndicatorKind::Ratio { subset, .. } => {
            if let (Some(n), Some(d)) = (cell.numerator, cell.denominator) {
                let d2 = noisy("denominator", d)?;
                let mut n2 = noisy("numerator", n)?;
                if subset {
                    n2 = n2.min(d2);
                }
                cell.numerator = Some(n2);
                cell.denominator = Some(d2);
                cell.value = (d2 != 0).then(|| n2 as f64 / d2 as f64);
            }
        }
        IndicatorKind::Mean { .. } => {
            if let Some(d) = cell.denominator {
                cell.denominator = Some(noisy("count", d)?);
                cell.numerator = None;
            }
        }
        IndicatorKind::Deviation { baseline_years, .. } => {
            // The count in P is shown even without a baseline (`no_baseline`): protected either way.
            if let Some(n) = cell.numerator {
                cell.numerator = Some(noisy("numerator", n)?);
            }
            // A zero baseline stays zero (no deviation, `no_baseline`): noise must not make one up.
            if let (Some(n2), Some(d)) = (cell.numerator, cell.denominator.filter(|d| *d != 0)) {
                let d2 = noisy("denominator", d)?;
                cell.denominator = Some(d2);
                cell.value = shuzhu_policy::deviation::deviation(n2, d2, baseline_years);
            }
        }
        IndicatorKind::PerPopulation { scale, .. } => {
            // The population is public; only the count is protected, and the rate recomputed from it.
            if let (Some(n), Some(p)) = (cell.numerator, cell.denominator) {
                let n2 = noisy("numerator", n)?;
                cell.numerator = Some(n2);
                cell.value = (p > 0).then(|| (i128::from(n2) * i128::from(scale)) as f64 / p as f64);
            }
        }
    }
    Ok(())
}

/// Metadata key naming the policy version that refused a request (answers carry it in the body).
pub const POLICY_VERSION_HEADER: &str = "x-shuzhu-policy-version";

/// Adds the deciding policy version to a refusal.
/// The status of a query the quota book did not count, with its audit decision and reason: over a limit
/// is the caller's `RESOURCE_EXHAUSTED`; a quota file that could not be written is our own failure,
/// `UNAVAILABLE`.
fn quota_refusal(over: &QuotaExceeded, record: &mut AuditRecord) -> Status {
    match over {
        QuotaExceeded::RateLimit { .. } | QuotaExceeded::Daily { .. } => {
            record.decision = "deny".into();
            record.reason = format!("quota: {over}");
            Status::resource_exhausted(over.to_string())
        }
        QuotaExceeded::Unrecorded => {
            record.decision = "error".into();
            record.reason = "quota file unavailable".into();
            Status::unavailable(
                "the quota file is unavailable, so the query could not be counted; nothing was answered",
            )
        }
    }
}

fn with_version(mut status: Status, version: &str) -> Status {
    // The version is 16 hex digits, always a valid header value; a failure would only drop the header.
    if let Ok(v) = version.parse() {
        status.metadata_mut().insert(POLICY_VERSION_HEADER, v);
    }
    status
}

async fn ask_node(
    node: &NodeHandle,
    req: Arc<pb::AggregateRequest>,
    deadline: std::time::Duration,
) -> Result<pb::AggregateResponse, String> {
    let mut client =
        pb::node_client::NodeClient::new(node.channel.clone()).max_decoding_message_size(MAX_NODE_ANSWER_BYTES);
    let mut request = tonic::Request::new((*req).clone());
    request.set_timeout(deadline);
    if let Ok(id) = req.request_id.parse() {
        request.metadata_mut().insert(crate::ops::REQUEST_ID_HEADER, id);
    }
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(deadline, client.aggregate(request)).await;
    node.round_trip.record(started.elapsed().as_secs_f64());
    match answer {
        Err(_) => Err("timed out".into()),
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err(match status.code() {
            // A handshake the deny list refused says so (the node's certificate is revoked).
            Code::Unavailable => node.refusals.last().unwrap_or_else(|| "unreachable".into()),
            Code::DeadlineExceeded | Code::Cancelled => "timed out".into(),
            Code::PermissionDenied | Code::FailedPrecondition | Code::Unimplemented => clip(status.message()),
            other => format!("error {other:?}: {}", clip(status.message())),
        }),
    }
}

/// The first month an answering node's data covers: its `data_from`, or — when it sends groups but no
/// `data_from` (a node built before the field existed) — no month at all (`i32::MAX`), so that no baseline
/// it counts is taken as covered. A node with neither groups nor `data_from` holds no records.
fn covered_from(a: &pb::AggregateResponse) -> Option<i32> {
    first_month(&a.data_from).or_else(|| (!a.groups.is_empty()).then_some(i32::MAX))
}

/// The month index of a node's `data_from` (`YYYY-MM-DD`), if it has one.
fn first_month(data_from: &str) -> Option<i32> {
    shuzhu_policy::period::parse_day(data_from)?;
    Month::parse(data_from.get(..7)?).ok().map(Month::index)
}

/// Refuses a node answer whose shape does not match the question, whose numbers cannot be true, or
/// that speaks for a court or region the node does not serve (a node must never be trusted to be
/// well-formed or honest about its scope). The error is the reason coverage shows for the node.
pub(crate) fn check_answer(
    a: pb::AggregateResponse,
    node: &crate::config::NodeEntry,
    dims: &[Dimension],
    measures: &[&str],
) -> Result<pb::AggregateResponse, String> {
    for g in &a.groups {
        if g.key.len() != dims.len()
            || g.measures.iter().any(|m| !measures.contains(&m.id.as_str()) || m.value < 0)
            // A time label that does not parse would escape the release ledger's differencing check.
            || dims.iter().zip(&g.key).any(|(d, label)| {
                d.is_time() && crate::releases::label_months(*d, label).is_none()
            })
        {
            return Err("malformed answer".into());
        }
        for m in &g.measures {
            // A count's contributors are its records: never more than the count, never none for a
            // non-zero count; no partial has a value without a contributor, or a single record
            // larger than the whole.
            let count = indicator::measure(&m.id).is_some_and(|x| x.accumulate == indicator::Accumulate::Count);
            if (count && m.contributors > m.value as u64)
                || (m.value != 0 && m.contributors == 0)
                || m.max_single < 0
                || m.max_single > m.value
            {
                return Err(format!("inconsistent contributor counts for measure {}", clip(&m.id)));
            }
        }
        for (d, label) in dims.iter().zip(&g.key) {
            let (served, what) = match d {
                Dimension::Region => (&node.regions, "region"),
                Dimension::Court => (&node.courts, "court"),
                _ => continue,
            };
            if !served.is_empty() && !served.contains(label) {
                return Err(format!("answered for {what} {} it does not serve", clip(label)));
            }
        }
    }
    // An unreadable first month of data would hide how far the node's data reaches back.
    if !a.data_from.is_empty() && first_month(&a.data_from).is_none() {
        return Err("malformed answer".into());
    }
    Ok(a)
}

/// Checks the node's receipt against its configured key (when there is one) and returns what the
/// ledger records of it. A configured node whose receipt is missing or does not verify is refused.
fn check_receipt(
    node: &NodeHandle,
    request_id: &str,
    a: pb::AggregateResponse,
) -> Result<(pb::AggregateResponse, Option<ReceiptRecord>), String> {
    // A hash is recorded as given only when it is one (64 hex digits): nothing else from a node is.
    let well_formed = |r: &pb::ReleaseReceipt| {
        r.record_hash.len() == 64 && r.record_hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let verified = match (&node.receipt_key, &a.receipt) {
        (None, _) => false,
        (Some(key), Some(r))
            if well_formed(r)
                && key.verify(
                    &node.entry.id,
                    r.journal_seq,
                    &r.record_hash,
                    &a.release_digest,
                    request_id,
                    &r.signature,
                ) =>
        {
            true
        }
        (Some(_), r) => {
            // A receipt that names (by a well-formed id) a key other than the configured one: the node's
            // receipt key was rotated, which is an operator's change to confirm, not a forgery to report.
            let named = r
                .as_ref()
                .map(|r| r.key_id.as_str())
                .filter(|k| k.len() == 16 && k.bytes().all(|b| b.is_ascii_hexdigit()));
            return Err(match (named, &node.receipt_key_id) {
                (Some(now), Some(configured)) if now != configured => format!(
                    "receipt key changed: node {} now signs with key {now}, not the configured {configured}",
                    node.entry.id
                ),
                _ => "receipt invalid".into(),
            });
        }
    };
    let receipt = a.receipt.as_ref().filter(|r| well_formed(r)).map(|r| ReceiptRecord {
        journal_seq: r.journal_seq,
        record_hash: r.record_hash.clone(),
        signature: hex::encode(&r.signature[..r.signature.len().min(64)]),
        verified,
    });
    Ok((a, receipt))
}

/// SHA-256 over the answer's canonical lines (docs/operations.md, "Checking an answer against the
/// ledger"; docs/answer_digest.py recomputes it from a JSON answer): one line per row, in order, the
/// compact JSON array `[group, value, status, numerator, denominator, level]` and a newline — group as
/// `[dimension, label]` pairs sorted by dimension, value as its IEEE-754 bits in 16 hex digits or null.
fn answer_digest(rows: &[pb::Row]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for r in rows {
        let group: BTreeMap<&String, &String> = r.group.iter().collect();
        let pairs: Vec<[&String; 2]> = group.into_iter().map(|(k, v)| [k, v]).collect();
        let bits = r.value.map(|v| format!("{:016x}", v.to_bits()));
        let line = serde_json::json!([pairs, bits, r.status, r.numerator, r.denominator, r.level]);
        ctx.update(line.to_string().as_bytes());
        ctx.update(b"\n");
    }
    hex::encode(ctx.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_answering_groups_without_data_from_covers_no_baseline() {
        let group = pb::GroupPartial { key: vec!["350203".into()], measures: vec![] };
        let with =
            pb::AggregateResponse { data_from: "2019-01-05".into(), groups: vec![group.clone()], ..Default::default() };
        assert_eq!(covered_from(&with), first_month("2019-01-05"));
        let old_node = pb::AggregateResponse { groups: vec![group], ..Default::default() };
        assert_eq!(covered_from(&old_node), Some(i32::MAX));
        assert_eq!(covered_from(&pb::AggregateResponse::default()), None, "no records, nothing to cover");
    }

    fn q(group_by: &[Dimension], from: u32, to: u32) -> ParsedQuery {
        ParsedQuery {
            indicator: indicator::indicator("filing_deviation").unwrap(),
            group_by: group_by.to_vec(),
            period: Period::from_wire(from, to).unwrap(),
            filters: Vec::new(),
            purpose: "诉源治理".into(),
            region_level: 6,
            region_members: BTreeMap::new(),
        }
    }

    fn p(n: i64) -> Partial {
        Partial { value: n, contributors: n as u64, max_single: 1 }
    }

    #[test]
    fn the_node_request_spans_the_baseline_at_the_coarsest_exact_grain() {
        let plan = node_plan(&q(&[Dimension::Region], 202401, 202412)).unwrap();
        assert_eq!(plan.dims, vec![Dimension::Region, Dimension::Year]);
        assert_eq!((plan.period.from().yyyymm(), plan.period.to().yyyymm()), (202101, 202412));
        assert_eq!(plan.deviation, Some((Dimension::Year, 3)));
        let plan = node_plan(&q(&[Dimension::Year, Dimension::Court], 202304, 202309)).unwrap();
        assert_eq!(plan.dims, vec![Dimension::Court, Dimension::Quarter]);
        assert_eq!(plan.period.from().yyyymm(), 202004);
        // A month asked, or a period of loose months, splits by month.
        assert_eq!(node_plan(&q(&[Dimension::Month], 202401, 202412)).unwrap().dims, vec![Dimension::Month]);
        assert_eq!(node_plan(&q(&[], 202402, 202403)).unwrap().dims, vec![Dimension::Month]);
        // A baseline reaching before the first year any data is held is refused, not counted as zero.
        assert_eq!(node_plan(&q(&[], 199301, 199312)).unwrap().period.from().yyyymm(), 199001);
        assert!(node_plan(&q(&[], 199212, 199311)).unwrap_err().contains("before 1990-01"));
        // P longer than 12 months would overlap its own baseline: refused, grouped by year or not.
        assert!(node_plan(&q(&[Dimension::Year], 202201, 202412)).unwrap_err().contains("at most 12 months"));
        assert!(node_plan(&q(&[], 202301, 202401)).unwrap_err().contains("at most 12 months"));
        assert!(node_plan(&q(&[Dimension::Month], 202302, 202401)).is_ok());
        let four = [Dimension::Region, Dimension::Division, Dimension::Instance, Dimension::Cause];
        assert!(node_plan(&q(&four, 202401, 202412)).unwrap_err().contains("at most 3"));
        // Other indicators ask for exactly what was asked.
        let mut other = q(&four, 202401, 202412);
        other.indicator = indicator::indicator("filed").unwrap();
        let plan = node_plan(&other).unwrap();
        assert_eq!((plan.dims, plan.deviation), (four.to_vec(), None));
    }

    #[test]
    fn a_population_cell_needs_one_figure_for_each_counted_district_and_year() {
        let mut query = q(&[Dimension::Region, Dimension::Year], 202201, 202312);
        query.indicator = indicator::indicator("litigation_per_10k").unwrap();
        query.region_level = 4;
        assert_eq!(node_plan(&query).unwrap().dims, vec![Dimension::Region, Dimension::Year]);
        let pop = |n: i64| Partial { value: n, contributors: 1, max_single: n };
        // [district, year] → [filings, population]; 350205 has no 2023 figure, 350206 is not counted.
        let mut merged = BTreeMap::new();
        let mut reports = BTreeMap::new();
        for (district, year, filed, people) in [
            ("350203", "2022", 40, Some(1000)),
            ("350205", "2022", 30, Some(2000)),
            ("350203", "2023", 50, Some(1100)),
            ("350205", "2023", 35, None),
        ] {
            let key = vec![district.to_string(), year.to_string()];
            merged.insert(key.clone(), vec![p(filed), people.map(pop).unwrap_or_default()]);
            if people.is_some() {
                reports.insert(key, 1);
            }
        }
        let counted = ["350203".to_string(), "350205".to_string()];
        let cell = |j: &BTreeMap<Vec<String>, Vec<Partial>>, year: &str| {
            let c = &j[&vec!["350200".to_string(), year.to_string()]];
            (c[0].value, c[1].value, c[1].contributors)
        };
        let mut members = BTreeMap::new();
        let joined = join_population(&query, Some(&counted), merged.clone(), &reports, &mut members);
        assert_eq!(cell(&joined, "2022"), (70, 3000, 2));
        assert_eq!(cell(&joined, "2023"), (85, 0, 0), "one district lacks its figure: no population");
        assert_eq!(members["350200"].len(), 2);
        // A counted district with no filings still needs its figure.
        let only = ["350203".to_string(), "350205".to_string(), "350206".to_string()];
        let joined = join_population(&query, Some(&only), merged.clone(), &reports, &mut members);
        assert_eq!(cell(&joined, "2022"), (70, 0, 0));
        // Counted districts unknown: no population anywhere.
        let joined = join_population(&query, None, merged.clone(), &reports, &mut members);
        assert_eq!(cell(&joined, "2022"), (70, 0, 0));
        // A figure reported by two nodes is not added twice: no population.
        reports.insert(vec!["350205".to_string(), "2022".to_string()], 2);
        let joined = join_population(&query, Some(&counted), merged, &reports, &mut members);
        assert_eq!(cell(&joined, "2022"), (70, 0, 0));
        // Evaluated, such a cell is partial without numbers.
        let c = disclosure::evaluate(query.indicator, 10, |m| {
            let i = query.indicator.measures().iter().position(|x| *x == m).unwrap();
            joined[&vec!["350200".to_string(), "2022".to_string()]][i]
        });
        assert_eq!((c.status, c.value, c.numerator, c.denominator), (CellStatus::Partial, None, None, None));
    }

    #[test]
    fn grain_units_fold_into_p_and_each_baseline_year() {
        // P = 2024-Q2..Q3 by region × quarter; node groups by region and quarter from 2021-Q2.
        let query = q(&[Dimension::Region, Dimension::Quarter], 202404, 202409);
        let mut merged = BTreeMap::new();
        for (region, label, n) in [
            ("350203", "2024-Q2", 40),
            ("350203", "2023-Q2", 30),
            ("350203", "2022-Q2", 20),
            ("350203", "2021-Q2", 10),
            ("350203", "2021-Q3", 11),
            // Outside every shifted period: dropped.
            ("350203", "2021-Q4", 99),
            ("350203", "2024-Q1", 99),
        ] {
            merged.insert(vec![region.to_string(), label.to_string()], vec![p(n)]);
        }
        let folded = fold_deviation(&query, Dimension::Quarter, 3, merged);
        let q2 = &folded[&vec!["350203".to_string(), "2024-Q2".to_string()]];
        assert_eq!(q2.iter().map(|x| x.value).collect::<Vec<_>>(), vec![40, 30, 20, 10]);
        let q3 = &folded[&vec!["350203".to_string(), "2024-Q3".to_string()]];
        assert_eq!(q3.iter().map(|x| x.value).collect::<Vec<_>>(), vec![0, 0, 0, 11]);
        assert_eq!(folded.len(), 2);
    }

    #[test]
    fn the_ledger_gets_the_count_of_p_and_of_each_baseline_year() {
        let query = q(&[Dimension::Region, Dimension::Year], 202401, 202412);
        let key = vec!["350203".to_string(), "2024".to_string()];
        let partials = vec![p(40), p(30), p(20), p(10)];
        let answer = vec![(&key, &partials, true)];
        let topology = shuzhu_policy::disclosure::recordset::Topology::default();
        let rel = crate::releases::releases_of_deviation(&query, &answer, false, &topology);
        let day = |y: i32| days_from_civil(y, 1, 1);
        let mut got: Vec<(i32, i32, i64)> =
            rel.iter().map(|r| (r.terms[0].1.first.lo, r.terms[0].1.first.hi, r.count)).collect();
        got.sort();
        let want: Vec<(i32, i32, i64)> = [(2021, 10), (2022, 20), (2023, 30), (2024, 40)]
            .iter()
            .map(|&(y, n)| (day(y), day(y + 1) - 1, n))
            .collect();
        assert_eq!(got, want);
        assert!(rel.iter().all(|r| r.measure == "cases.filed" && r.terms.len() == 1));
        assert!(rel.iter().flat_map(|r| &r.terms).all(|(_, s)| s.fields["region"] == ["350203"]));
        // With every node answering, the empty remainder of P and of each baseline year too.
        assert_eq!(crate::releases::releases_of_deviation(&query, &answer, true, &topology).len(), 4 + 4);
    }

    #[test]
    fn protection_never_makes_up_a_baseline() {
        let ind = indicator::indicator("filing_deviation").unwrap();
        // Noise that moves every count, zeros included (dp_count(0) is often 1 or 2).
        let mut plus_two = |_: &str, v: i64| -> Result<i64, protect::NoiseError> { Ok(v + 2) };
        let mut cell = disclosure::evaluate_deviation(ind, 10, p(50), &[p(0), p(0), p(0)]);
        protect_cell(ind, &mut cell, &mut plus_two).unwrap();
        assert_eq!((cell.numerator, cell.denominator, cell.value), (Some(52), Some(0), None));
        assert_eq!(row_status_and_level(ind, &cell), ("no_baseline".into(), String::new()));
        // A true baseline is noised and the deviation recomputed from the noisy counts.
        let mut cell = disclosure::evaluate_deviation(ind, 10, p(40), &[p(40), p(40), p(38)]);
        protect_cell(ind, &mut cell, &mut plus_two).unwrap();
        assert_eq!((cell.numerator, cell.denominator), (Some(42), Some(120)));
        assert_eq!(cell.value, shuzhu_policy::deviation::deviation(42, 120, 3));
    }

    #[test]
    fn rows_carry_the_level_or_no_baseline() {
        let ind = indicator::indicator("filing_deviation").unwrap();
        let cell = disclosure::evaluate_deviation(ind, 10, p(131), &[p(100), p(100), p(100)]);
        assert_eq!(row_status_and_level(ind, &cell), ("ok".into(), "red".into()));
        let cell = disclosure::evaluate_deviation(ind, 10, p(50), &[p(0), p(0), p(0)]);
        assert_eq!(row_status_and_level(ind, &cell), ("no_baseline".into(), String::new()));
        let cell = disclosure::evaluate_deviation(ind, 10, p(50), &[p(5), p(20), p(20)]);
        assert_eq!(row_status_and_level(ind, &cell), ("suppressed".into(), String::new()));
        // A baseline before the data: the count in P without a denominator.
        let cell =
            Cell { value: None, denominator: None, ..disclosure::evaluate_deviation(ind, 10, p(50), &[p(40); 3]) };
        assert_eq!(row_status_and_level(ind, &cell), ("no_baseline".into(), String::new()));
        assert_eq!(first_month("2019-01-07"), Some(Month::new(2019, 1).unwrap().index()));
        assert_eq!((first_month(""), first_month("2019-02-30"), first_month("2019-01")), (None, None, None));
        let filed = indicator::indicator("filed").unwrap();
        let cell = disclosure::evaluate(filed, 10, |_| p(50));
        assert_eq!(row_status_and_level(filed, &cell), ("ok".into(), String::new()));
    }

    #[test]
    fn a_quota_file_failure_is_unavailable_and_a_limit_is_resource_exhausted() {
        let mut record = AuditRecord::new("gw-1", "req-1", "query", "v1");
        let status = quota_refusal(&QuotaExceeded::Unrecorded, &mut record);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("quota file is unavailable"), "{}", status.message());
        assert_eq!((record.decision.as_str(), record.reason.as_str()), ("error", "quota file unavailable"));

        let daily = QuotaExceeded::Daily { agency: "xm-sfj".into(), limit: 3 };
        let status = quota_refusal(&daily, &mut record);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), daily.to_string());
        assert_eq!(record.decision, "deny");
        assert!(record.reason.starts_with("quota: daily quota of 3"), "{}", record.reason);

        let rate = QuotaExceeded::RateLimit { agency: "xm-sfj".into(), limit: 2, retry_secs: 40 };
        assert_eq!(quota_refusal(&rate, &mut record).code(), Code::ResourceExhausted);
    }
}
