//! Where a node's partial aggregates come from: its own store ([`StoreSource`], the in-memory engine
//! built from imported data) or the court's PostgreSQL database ([`postgres::PgSource`], aggregation
//! pushed down as generated SQL). Both answer the same [`Source::aggregate`] with the same partials,
//! so the gateway cannot tell them apart; the `Node` service calls the one the config's `[source]`
//! chose.

pub mod config;
pub mod postgres;
pub mod sql;

use std::sync::Arc;

use shuzhu_policy::dimension::Dimension;
use shuzhu_policy::indicator::Measure;
use shuzhu_policy::period::Period;

use crate::engine::{CaseTable, Filter, GroupOut};
use crate::tables::{MediationTable, PopulationTable};

/// The partials of one request, with the data span they cover.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// Groups, sorted by key.
    pub groups: Vec<GroupOut>,
    /// Latest day of the data, `YYYY-MM-DD`.
    pub data_until: Option<String>,
    /// Earliest day of the data, `YYYY-MM-DD`.
    pub data_from: Option<String>,
}

/// Why a source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The request cannot be computed over this dataset (an unknown dimension, a measure of another
    /// dataset).
    #[error("{0}")]
    Invalid(String),
    /// The source is down, slow or refused the statement: the node answers `UNAVAILABLE`.
    #[error("{0}")]
    Unavailable(String),
    /// The source's configuration or mapping is wrong (at start or in `check-source`).
    #[error("{0}")]
    Config(String),
}

/// A source of partial aggregates.
#[tonic::async_trait]
pub trait Source: Send + Sync {
    /// Computes `measures` (all over `dataset`) grouped by `group_by` over `period`, keeping the
    /// records that pass `filters`.
    async fn aggregate(
        &self,
        dataset: &str,
        measures: Vec<&'static Measure>,
        group_by: Vec<Dimension>,
        period: Period,
        filters: Vec<Filter>,
    ) -> Result<Answer, SourceError>;
}

/// The node's own store, loaded into memory at start.
pub struct StoreSource {
    /// Cases.
    pub cases: Arc<CaseTable>,
    /// Mediations.
    pub mediations: Arc<MediationTable>,
    /// Population figures.
    pub population: Arc<PopulationTable>,
}

#[tonic::async_trait]
impl Source for StoreSource {
    async fn aggregate(
        &self,
        dataset: &str,
        measures: Vec<&'static Measure>,
        group_by: Vec<Dimension>,
        period: Period,
        filters: Vec<Filter>,
    ) -> Result<Answer, SourceError> {
        let (cases, mediations, population) =
            (Arc::clone(&self.cases), Arc::clone(&self.mediations), Arc::clone(&self.population));
        let dataset = dataset.to_string();
        // The engine's scans take milliseconds: off the async threads.
        tokio::task::spawn_blocking(move || {
            let (groups, until, from) = match dataset.as_str() {
                "mediations" => (
                    mediations.aggregate(&measures, &group_by, period, &filters).map_err(|e| e.to_string()),
                    mediations.data_until(),
                    mediations.data_from(),
                ),
                "population" => (
                    population.aggregate(&measures, &group_by, period, &filters).map_err(|e| e.to_string()),
                    population.data_until(),
                    population.data_from(),
                ),
                _ => (
                    cases.aggregate(&measures, &group_by, period, &filters).map_err(|e| e.to_string()),
                    cases.data_until(),
                    cases.data_from(),
                ),
            };
            groups.map(|groups| Answer { groups, data_until: until, data_from: from }).map_err(SourceError::Invalid)
        })
        .await
        .map_err(|_| SourceError::Unavailable("aggregation task failed".into()))?
    }
}
