//! The `[source]` section of `node.toml`: where the node's `cases` and `mediations` come from.
//!
//! `kind = "store"` (the default) answers from the node's own store, filled by `shuzhu node import`.
//! `kind = "postgres"` answers straight from the court's PostgreSQL database (or a PostgreSQL-family
//! system): aggregation is pushed down as SQL generated from each measure's definition, and only
//! partial aggregates leave the database. A `[source.cases]` / `[source.mediations]` table maps the
//! court's own table (or view) and column names, and the spellings of its coded values, to the schema:
//!
//! ```toml
//! [source]
//! kind = "postgres"
//! url = "postgresql://shuzhu_node@db.court.local:5432/court"   # no password here: password_file
//! password_file = "pg.password"
//! ca_file = "db-ca.pem"            # TLS, verifying the server's certificate (tls = false only on one host)
//! pool_size = 4
//! statement_timeout_ms = 3000
//!
//! [source.cases]
//! table = "spgl.ajxx"              # or view = "shuzhu_cases"
//! columns = { court_code = "fydm", filed_on = "larq", closed_on = "jarq" }
//! values.closure_method = { "01" = "判决", "02" = "调解" }
//! ```
//!
//! A field left out of `columns` is read from a column of its own name. Personal (L4) fields cannot be
//! mapped: the node never reads them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use shuzhu_policy::schema::{self, Grade};

/// Which source answers aggregates.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The node's own store (imported CSV or a PostgreSQL snapshot).
    #[default]
    Store,
    /// The court's PostgreSQL database, with aggregation pushed down.
    Postgres,
}

/// The `[source]` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `store` (default) or `postgres`.
    #[serde(default)]
    pub kind: SourceKind,
    /// `postgresql://user@host:port/dbname` (without a password), instead of host/port/dbname/user.
    pub url: Option<String>,
    /// Database host.
    pub host: Option<String>,
    /// Database port (default 5432).
    pub port: Option<u16>,
    /// Database name.
    pub dbname: Option<String>,
    /// Role the node logs in as (a read-only role: see docs/operations.md).
    pub user: Option<String>,
    /// File holding the role's password (never in the config, never logged).
    pub password_file: Option<PathBuf>,
    /// TLS to the database (default on; then `ca_file` is required).
    #[serde(default = "yes")]
    pub tls: bool,
    /// PEM file of the CA that signed the database server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Host name the server's certificate must carry (default: `host`).
    pub tls_server_name: Option<String>,
    /// Connections kept open (default 4).
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// Longest a query may run, in milliseconds (default 3000); keep it below the gateway's
    /// `node_timeout_ms`, so a slow database makes the node answer `UNAVAILABLE` in time.
    #[serde(default = "default_timeout")]
    pub statement_timeout_ms: u64,
    /// Mapping of the court's `cases` table.
    pub cases: Option<DatasetMapping>,
    /// Mapping of the justice bureau's `mediations` table.
    pub mediations: Option<DatasetMapping>,
}

fn yes() -> bool {
    true
}

fn default_pool() -> usize {
    4
}

fn default_timeout() -> u64 {
    3000
}

/// How one of the court's tables (or views) maps onto a dataset of the schema.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetMapping {
    /// The court's table, `name` or `schema.name`.
    pub table: Option<String>,
    /// Or a view the court maintains (same form).
    pub view: Option<String>,
    /// Schema field → the court's column (a field left out is read from a column of its own name).
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Schema field → (the court's stored value → the schema's label), e.g. closure methods stored as
    /// codes. A value not listed is taken as it is (and excluded if it is not a label of the field).
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
}

impl DatasetMapping {
    /// The relation read: the table or the view.
    pub fn relation(&self) -> &str {
        self.table.as_deref().or(self.view.as_deref()).unwrap_or("")
    }

    /// The court's column holding schema field `field`.
    pub fn column<'a>(&'a self, field: &'a str) -> &'a str {
        self.columns.get(field).map_or(field, String::as_str)
    }

    fn problems(&self, dataset: &'static str, out: &mut Vec<String>) {
        let at = format!("source.{dataset}");
        match (&self.table, &self.view) {
            (Some(_), Some(_)) => out.push(format!("{at}: give table or view, not both")),
            (None, None) => out.push(format!("{at}: table (or view) is required")),
            _ => {}
        }
        let rel = self.relation();
        if !rel.is_empty() && !rel.split('.').all(is_identifier) || rel.split('.').count() > 2 {
            out.push(format!("{at}: {rel:?} is not a table name like name or schema.name"));
        }
        let ds = schema::dataset(dataset);
        let field_of = |f: &str| ds.and_then(|d| d.field(f));
        for (field, column) in &self.columns {
            match field_of(field) {
                None => out.push(format!("{at}.columns: {field:?} is not a field of {dataset}")),
                Some(f) if f.grade >= Grade::L4 => out
                    .push(format!("{at}.columns.{field}: a personal (L4) field is never read by the node; remove it")),
                Some(_) if !is_identifier(column) => {
                    out.push(format!("{at}.columns.{field}: {column:?} is not a column name"))
                }
                Some(_) => {}
            }
        }
        for (field, map) in &self.values {
            match field_of(field) {
                Some(f) if matches!(f.ty, schema::FieldType::Enum(_) | schema::FieldType::Bool) => {
                    for (stored, label) in map {
                        let ok = match f.ty {
                            schema::FieldType::Enum(labels) => labels.contains(&label.as_str()),
                            _ => label == "true" || label == "false",
                        };
                        if !ok {
                            out.push(format!(
                                "{at}.values.{field}: {stored:?} maps to {label:?}, which is not a value of {field}"
                            ));
                        }
                    }
                }
                Some(_) => out.push(format!("{at}.values.{field}: only enumerated and boolean fields take value maps")),
                None => out.push(format!("{at}.values: {field:?} is not a field of {dataset}")),
            }
        }
    }
}

/// A plain SQL identifier: a letter or `_`, then letters, digits or `_` (at most 63 bytes). Quoted
/// when used, so case is kept.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

impl SourceConfig {
    /// Every problem of the section, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.kind == SourceKind::Store {
            let set = [
                ("url", self.url.is_some()),
                ("host", self.host.is_some()),
                ("dbname", self.dbname.is_some()),
                ("user", self.user.is_some()),
                ("password_file", self.password_file.is_some()),
                ("ca_file", self.ca_file.is_some()),
                ("cases", self.cases.is_some()),
                ("mediations", self.mediations.is_some()),
            ];
            for (key, given) in set {
                if given {
                    out.push(format!("source.{key} is only for kind = \"postgres\""));
                }
            }
            return out;
        }
        match (&self.url, &self.host) {
            (Some(_), Some(_)) => out.push("source: give url or host, not both".into()),
            (None, None) => out.push("source: url or host (with dbname and user) is required".into()),
            (Some(url), None) => match url.parse::<tokio_postgres::Config>() {
                Err(_) => out.push("source.url is not a PostgreSQL URL like postgresql://user@host:5432/dbname".into()),
                Ok(c) if c.get_password().is_some() => {
                    out.push("source.url must not carry a password: put it in source.password_file".into())
                }
                Ok(c) if c.get_user().is_none() => out.push("source.url must name the user".into()),
                Ok(_) => {}
            },
            (None, Some(_)) => {
                if self.dbname.is_none() {
                    out.push("source.dbname is required with source.host".into());
                }
                if self.user.is_none() {
                    out.push("source.user is required with source.host".into());
                }
            }
        }
        if self.url.is_some() && (self.port.is_some() || self.dbname.is_some() || self.user.is_some()) {
            out.push("source: port, dbname and user go in the url when url is given".into());
        }
        if self.tls && self.ca_file.is_none() {
            out.push(
                "source.ca_file is required: TLS to the database verifies the server's certificate against this CA (tls = false only for a database on the same host)"
                    .into(),
            );
        }
        if !(1..=64).contains(&self.pool_size) {
            out.push(format!("source.pool_size {} must be between 1 and 64", self.pool_size));
        }
        if !(100..=600_000).contains(&self.statement_timeout_ms) {
            out.push(format!(
                "source.statement_timeout_ms {} must be between 100 and 600000",
                self.statement_timeout_ms
            ));
        }
        if self.cases.is_none() && self.mediations.is_none() {
            out.push("source: map at least one of [source.cases] and [source.mediations]".into());
        }
        if let Some(m) = &self.cases {
            m.problems("cases", &mut out);
        }
        if let Some(m) = &self.mediations {
            m.problems("mediations", &mut out);
        }
        out
    }

    /// The mapping of `dataset`, when the database serves it.
    pub fn mapping(&self, dataset: &str) -> Option<&DatasetMapping> {
        match dataset {
            "cases" => self.cases.as_ref(),
            "mediations" => self.mediations.as_ref(),
            _ => None,
        }
    }

    /// Paths inside the section (resolved against the config file's directory).
    pub fn paths(&mut self) -> Vec<&mut PathBuf> {
        self.password_file.iter_mut().chain(self.ca_file.iter_mut()).collect()
    }
}
