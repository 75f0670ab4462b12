//! The court's PostgreSQL database as a node's source: partial aggregates computed by the database
//! from SQL generated per measure ([`super::sql`]), in a `READ ONLY`, `REPEATABLE READ` transaction
//! (every measure of one request sees the same snapshot) under the configured statement timeout.
//!
//! The password is read from `password_file` and handed to the driver only; no error or log line
//! carries it, a value of the database, or the database's own error text (which may quote values):
//! errors name the SQLSTATE code. A slow or dead database gives [`SourceError::Unavailable`] within
//! the statement timeout (plus a small margin), which the service answers as `UNAVAILABLE`.
//! Population figures are never in the court's database: they stay in the node's store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use shuzhu_policy::dimension::{Dimension, time_grain};
use shuzhu_policy::disclosure::Partial;
use shuzhu_policy::indicator::Measure;
use shuzhu_policy::period::{Period, format_day};
use shuzhu_policy::schema;
use tokio_postgres::types::ToSql;

use super::config::{SourceConfig, SourceKind};
use super::sql::{self, ColumnKind, Mapped, Param, Statement};
use super::{Answer, Source, SourceError, StoreSource};
use crate::engine::{Filter, GroupOut, time_label};

/// What the database holds for one dataset, as found at start or by `check-source`.
#[derive(Clone, Debug, Default)]
pub struct DatasetFacts {
    /// Dataset name.
    pub dataset: String,
    /// Rows in the court's relation.
    pub rows: u64,
    /// Rows import would accept (the others are excluded from every aggregate).
    pub accepted: u64,
    /// Earliest anchor day and latest day of accepted rows.
    pub data_from: Option<String>,
    /// Latest day.
    pub data_until: Option<String>,
    /// Distinct district codes.
    pub regions: Vec<String>,
    /// Distinct court codes (cases).
    pub courts: Vec<String>,
}

/// The court's database, with the node's store answering what the database does not hold.
pub struct PgSource {
    pool: Pool,
    mapped: BTreeMap<&'static str, Mapped>,
    timeout: Duration,
    store: StoreSource,
}

/// Every distinct SQL text this process sent (at most [`SENT_KEPT`]), so tests and operators can
/// check what the node asks of the database. Statements carry no values: those are bound.
pub fn statements_sent() -> Vec<String> {
    sent().lock().map(|s| s.clone()).unwrap_or_default()
}

const SENT_KEPT: usize = 4096;

fn sent() -> &'static Mutex<Vec<String>> {
    static SENT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SENT.get_or_init(|| Mutex::new(Vec::new()))
}

fn record(sql: &str) {
    if let Ok(mut s) = sent().lock()
        && s.len() < SENT_KEPT
        && !s.iter().any(|x| x == sql)
    {
        s.push(sql.to_string());
    }
}

fn param_ref(p: &Param) -> &(dyn ToSql + Sync) {
    match p {
        Param::Text(t) => t,
        Param::Texts(t) => t,
        Param::Ints(i) => i,
        Param::Int(i) => i,
    }
}

/// A database error, described without the database's own message (it may quote a value).
fn db_error(what: &str, e: &tokio_postgres::Error) -> SourceError {
    let code = e.code().map(|c| c.code().to_string());
    let why = match code.as_deref() {
        Some("57014") => "statement timeout".to_string(),
        Some("42501") => "permission denied (check the node role's grants)".to_string(),
        Some("42P01") => "relation not found".to_string(),
        Some("42703") => "column not found".to_string(),
        Some(c) => format!("SQLSTATE {c}"),
        None if e.is_closed() => "connection closed".to_string(),
        None => "connection failed".to_string(),
    };
    SourceError::Unavailable(format!("the database {what}: {why}"))
}

/// The driver's connection settings from `[source]` (the password read from its file).
pub fn pg_config(cfg: &SourceConfig) -> Result<tokio_postgres::Config, SourceError> {
    let mut c = match &cfg.url {
        Some(url) => url
            .parse::<tokio_postgres::Config>()
            .map_err(|_| SourceError::Config("source.url is not a PostgreSQL connection URL".into()))?,
        None => {
            let mut c = tokio_postgres::Config::new();
            c.host(cfg.host.as_deref().unwrap_or("localhost"));
            c.port(cfg.port.unwrap_or(5432));
            c.dbname(cfg.dbname.as_deref().unwrap_or_default());
            c.user(cfg.user.as_deref().unwrap_or_default());
            c
        }
    };
    if let Some(p) = &cfg.password_file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| SourceError::Config(format!("source.password_file {}: {e}", p.display())))?;
        let pw = text.trim_end_matches(['\n', '\r']);
        if pw.is_empty() {
            return Err(SourceError::Config(format!("source.password_file {} is empty", p.display())));
        }
        c.password(pw);
    }
    c.application_name("shuzhu-node");
    c.connect_timeout(Duration::from_millis(cfg.statement_timeout_ms));
    c.ssl_mode(if cfg.tls {
        tokio_postgres::config::SslMode::Require
    } else {
        tokio_postgres::config::SslMode::Disable
    });
    Ok(c)
}

/// The TLS connector: rustls (ring), trusting only `ca_file`, verifying the server's certificate and
/// name. Without TLS the connector is never used (`sslmode=disable`).
pub fn tls_connector(cfg: &SourceConfig) -> Result<tokio_postgres_rustls::MakeRustlsConnect, SourceError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &cfg.ca_file {
        let certs = shuzhu_net::load_certs(ca).map_err(|e| SourceError::Config(format!("source.ca_file: {e}")))?;
        for c in certs {
            roots.add(c).map_err(|e| SourceError::Config(format!("source.ca_file: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Config(format!("source TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// One connection, for start-up checks and tools (`check-source`, snapshot import).
pub async fn connect(cfg: &SourceConfig) -> Result<tokio_postgres::Client, SourceError> {
    let (client, conn) =
        pg_config(cfg)?.connect(tls_connector(cfg)?).await.map_err(|e| db_error("cannot be reached", &e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(code = ?e.code().map(|c| c.code().to_string()), "database connection ended");
        }
    });
    let set = format!(
        "SET default_transaction_read_only = on; SET statement_timeout = {}; SET jit = off",
        cfg.statement_timeout_ms
    );
    record(&set);
    client.batch_execute(&set).await.map_err(|e| db_error("refused the session settings", &e))?;
    Ok(client)
}

/// Checks the mapping of `dataset` against the relation: every read column exists (and is granted)
/// with a type the field can be read from. Returns the mapped dataset with its column kinds.
pub async fn check_mapping(
    client: &tokio_postgres::Client,
    cfg: &SourceConfig,
    dataset: &'static str,
) -> Result<Mapped, SourceError> {
    let mapping =
        cfg.mapping(dataset).cloned().ok_or_else(|| SourceError::Config(format!("[source.{dataset}] is missing")))?;
    let ds = schema::dataset(dataset).ok_or_else(|| SourceError::Config(format!("unknown dataset {dataset}")))?;
    let rel = sql::quote_relation(mapping.relation());
    // Only the names and types of columns the role may read (column privileges are honoured).
    let q = "SELECT a.attname::text, t.typname::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             AND has_column_privilege(a.attrelid, a.attnum, 'SELECT')";
    record(q);
    let rows = client.query(q, &[&rel]).await.map_err(|e| db_error("could not be inspected", &e))?;
    if rows.is_empty() {
        return Err(SourceError::Config(format!(
            "source.{dataset}: relation {:?} not found, or the node's role may read none of its columns",
            mapping.relation()
        )));
    }
    let columns: BTreeMap<String, String> =
        rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect();
    let mut kinds = BTreeMap::new();
    let mut problems = Vec::new();
    for f in sql::read_fields(ds) {
        let col = mapping.column(f.name);
        match columns.get(col) {
            None => problems.push(format!(
                "source.{dataset}.columns.{}: column {col:?} not found in {:?} (or not granted to the node's role)",
                f.name,
                mapping.relation()
            )),
            Some(ty) => match ColumnKind::of(ty) {
                Some(k) if k.fits(f.ty) => {
                    kinds.insert(f.name, k);
                }
                _ => problems.push(format!(
                    "source.{dataset}.columns.{}: column {col:?} has type {ty}, which cannot hold a {} value",
                    f.name,
                    type_name(f.ty)
                )),
            },
        }
    }
    if !problems.is_empty() {
        return Err(SourceError::Config(problems.join("; ")));
    }
    Ok(Mapped { dataset: ds, mapping, kinds })
}

fn type_name(ty: schema::FieldType) -> &'static str {
    match ty {
        schema::FieldType::Text => "text",
        schema::FieldType::Region => "6-digit region code",
        schema::FieldType::Enum(_) => "enumerated (text or integer code)",
        schema::FieldType::Date => "date",
        schema::FieldType::Bool => "boolean",
        schema::FieldType::Amount => "money (numeric, integer or text)",
        schema::FieldType::Integer => "integer",
    }
}

async fn run(
    client: &impl tokio_postgres::GenericClient,
    st: &Statement,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    record(&st.sql);
    let params: Vec<&(dyn ToSql + Sync)> = st.params.iter().map(param_ref).collect();
    client.query(st.sql.as_str(), &params).await
}

/// Row counts, data span, regions and courts of a mapped dataset.
pub async fn facts(client: &impl tokio_postgres::GenericClient, mapped: &Mapped) -> Result<DatasetFacts, SourceError> {
    let span = run(client, &sql::span_statement(mapped)).await.map_err(|e| db_error("could not be read", &e))?;
    let row = span.first().ok_or_else(|| SourceError::Unavailable("the database returned no span".into()))?;
    let distinct = |rows: Vec<tokio_postgres::Row>| rows.iter().filter_map(|r| r.get::<_, Option<String>>(0)).collect();
    let regions = run(client, &sql::distinct_statement(mapped, "f_region_code"))
        .await
        .map_err(|e| db_error("could not be read", &e))?;
    let courts = if mapped.dataset.name == "cases" {
        distinct(
            run(client, &sql::distinct_statement(mapped, "f_court_code"))
                .await
                .map_err(|e| db_error("could not be read", &e))?,
        )
    } else {
        vec![]
    };
    Ok(DatasetFacts {
        dataset: mapped.dataset.name.to_string(),
        rows: row.get::<_, i64>(0) as u64,
        accepted: row.get::<_, i64>(1) as u64,
        data_from: row.get::<_, Option<i32>>(2).map(format_day),
        data_until: row.get::<_, Option<i32>>(3).map(format_day),
        regions: distinct(regions),
        courts,
    })
}

impl PgSource {
    /// Connects once to check the mapping and read what the database holds (for `Describe`), and
    /// builds the pool (its connections open when first needed). Population stays with `store`.
    pub async fn open(cfg: &SourceConfig, store: StoreSource) -> Result<(Self, Vec<DatasetFacts>), SourceError> {
        if cfg.kind != SourceKind::Postgres {
            return Err(SourceError::Config("source.kind is not postgres".into()));
        }
        let client = connect(cfg).await?;
        let mut mapped = BTreeMap::new();
        let mut all = Vec::new();
        for ds in ["cases", "mediations"] {
            if cfg.mapping(ds).is_some() {
                let m = check_mapping(&client, cfg, ds).await?;
                all.push(facts(&client, &m).await?);
                mapped.insert(ds, m);
            }
        }
        let manager = Manager::from_config(
            pg_config(cfg)?,
            tls_connector(cfg)?,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let wait = Duration::from_millis(cfg.statement_timeout_ms);
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(wait))
            .create_timeout(Some(wait))
            .recycle_timeout(Some(wait))
            .build()
            .map_err(|e| SourceError::Config(format!("source pool: {e}")))?;
        Ok((PgSource { pool, mapped, timeout: wait, store }, all))
    }

    async fn pushdown(
        &self,
        mapped: &Mapped,
        measures: &[&'static Measure],
        group_by: &[Dimension],
        period: Period,
        filters: &[Filter],
    ) -> Result<Answer, SourceError> {
        let mut client = self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => db_error("cannot be reached", &e),
            _ => SourceError::Unavailable("the database cannot be reached (no connection in time)".into()),
        })?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| db_error("refused a transaction", &e))?;
        // An integer of the config, not a value of a request. JIT off: compiling the generated
        // expressions costs more (up to a second per statement) than it saves on a court's table.
        let set = format!("SET LOCAL statement_timeout = {}; SET LOCAL jit = off", self.timeout.as_millis());
        record(&set);
        tx.batch_execute(&set).await.map_err(|e| db_error("refused the statement timeout", &e))?;
        let grain = time_grain(group_by);
        let pa = period.from().index();
        let cols = sql::group_columns(group_by);
        let mut cells: BTreeMap<Vec<String>, Vec<Partial>> = BTreeMap::new();
        for (i, m) in measures.iter().enumerate() {
            let st = sql::measure_statement(mapped, m, group_by, period, filters);
            let rows = run(&*tx, &st).await.map_err(|e| db_error("did not answer", &e))?;
            for r in rows {
                let text = |c: &str| -> String {
                    cols.iter().position(|x| *x == c).and_then(|k| r.get::<_, Option<String>>(k)).unwrap_or_default()
                };
                let bucket: i32 = r.get(cols.len());
                let key = group_by
                    .iter()
                    .map(|d| match d {
                        d if d.is_time() => time_label(*d, grain, pa, bucket as u32),
                        Dimension::Division => schema::division_of(&text("f_type_code")).unwrap_or("").to_string(),
                        Dimension::Instance => schema::instance_of(&text("f_type_code")).unwrap_or("").to_string(),
                        Dimension::Region => text("f_region_code"),
                        Dimension::Court => text("f_court_code"),
                        Dimension::Cause => text("f_cause"),
                        Dimension::TypeCode => text("f_type_code"),
                        _ => text("f_dispute_type"),
                    })
                    .collect();
                let p = Partial {
                    value: r.get(cols.len() + 1),
                    contributors: r.get::<_, i64>(cols.len() + 2) as u64,
                    max_single: r.get(cols.len() + 3),
                };
                cells.entry(key).or_insert_with(|| vec![Partial::default(); measures.len()])[i].merge(p);
            }
        }
        let f = facts_span(&tx, mapped).await?;
        tx.rollback().await.map_err(|e| db_error("did not end the transaction", &e))?;
        let groups = cells.into_iter().map(|(key, partials)| GroupOut { key, partials }).collect();
        Ok(Answer { groups, data_until: f.1, data_from: f.0 })
    }
}

async fn facts_span(
    tx: &deadpool_postgres::Transaction<'_>,
    mapped: &Mapped,
) -> Result<(Option<String>, Option<String>), SourceError> {
    let rows = run(&**tx, &sql::span_statement(mapped)).await.map_err(|e| db_error("did not answer", &e))?;
    let r = rows.first().ok_or_else(|| SourceError::Unavailable("the database returned no span".into()))?;
    Ok((r.get::<_, Option<i32>>(2).map(format_day), r.get::<_, Option<i32>>(3).map(format_day)))
}

#[tonic::async_trait]
impl Source for PgSource {
    async fn aggregate(
        &self,
        dataset: &str,
        measures: Vec<&'static Measure>,
        group_by: Vec<Dimension>,
        period: Period,
        filters: Vec<Filter>,
    ) -> Result<Answer, SourceError> {
        let Some(mapped) = self.mapped.get(dataset) else {
            return self.store.aggregate(dataset, measures, group_by, period, filters).await;
        };
        if let Some(m) = measures.iter().find(|m| m.dataset != dataset) {
            return Err(SourceError::Invalid(format!("measure {} is not over dataset {dataset}", m.id)));
        }
        if let Some(d) =
            group_by.iter().chain(filters.iter().map(|f| &f.dimension)).find(|d| !sql::dimension_allowed(dataset, **d))
        {
            return Err(SourceError::Invalid(format!("dimension {d} is not available for dataset {dataset}")));
        }
        // The statement timeout bounds each statement; this bounds the whole request (pool wait,
        // several statements) a little above it.
        let limit = self.timeout + Duration::from_millis(250);
        match tokio::time::timeout(limit, self.pushdown(mapped, &measures, &group_by, period, &filters)).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Unavailable("the database did not answer within the statement timeout".into())),
        }
    }
}

/// What `shuzhu node check-source` found for one dataset.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// The relation read.
    pub relation: String,
    /// Field → (column, kind) of every read column.
    pub columns: Vec<(String, String, String)>,
    /// Counts, span, regions and courts.
    pub facts: DatasetFacts,
    /// Rows import would refuse, by reason (a row may break several rules; only non-zero counts).
    pub excluded: Vec<(String, u64)>,
}

/// Connects, checks every mapped dataset's columns and types, and counts rows, the rows import would
/// refuse by reason, and the data span. Returns the server version and one report per dataset. No
/// value of the database is read: only counts, dates of the span, and region and court codes.
pub async fn check(cfg: &SourceConfig) -> Result<(String, Vec<CheckReport>), SourceError> {
    let client = connect(cfg).await?;
    let version = client
        .query_one("SHOW server_version", &[])
        .await
        .map(|r| r.get::<_, String>(0))
        .map_err(|e| db_error("did not say its version", &e))?;
    let mut out = Vec::new();
    for ds in ["cases", "mediations"] {
        if cfg.mapping(ds).is_none() {
            continue;
        }
        let mapped = check_mapping(&client, cfg, ds).await?;
        let facts = facts(&client, &mapped).await?;
        let mut excluded = Vec::new();
        for (label, st) in sql::exclusion_statements(&mapped) {
            let rows = run(&client, &st).await.map_err(|e| db_error("could not count excluded rows", &e))?;
            let n = rows.first().map_or(0, |r| r.get::<_, i64>(0));
            if n > 0 {
                excluded.push((label, n as u64));
            }
        }
        let columns = sql::read_fields(mapped.dataset)
            .iter()
            .map(|f| {
                let kind = mapped.kinds.get(f.name).map(|k| format!("{k:?}").to_lowercase()).unwrap_or_default();
                (f.name.to_string(), mapped.mapping.column(f.name).to_string(), kind)
            })
            .collect();
        out.push(CheckReport { relation: mapped.mapping.relation().to_string(), columns, facts, excluded });
    }
    Ok((version, out))
}
