//! A court's PostgreSQL database as a node's source (issue 22): two federations over the same
//! generated data (plus rows import quarantines), one whose nodes imported it into their stores, one
//! whose court and justice nodes answer from PostgreSQL by push-down, under a role that may read only
//! the mapped non-personal columns. Every answer through the gateways must be identical, cell by cell.
//!
//! The server is found as `util::pg` says (env `SHUZHU_TEST_PG_URL`, then 127.0.0.1:5432, then a
//! throwaway cluster); these tests never skip.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use shuzhu::federation::{self, Prepared, Running};
use shuzhu_proto::v1 as pb;

use crate::util::{PgDb, fixture_dir, pg, rand_u32, request};

struct PgFed {
    rt: tokio::runtime::Runtime,
    db: PgDb,
    role: String,
    store: (Prepared, Running),
    pushed: (Prepared, Running),
    court_tables: Vec<String>,
    /// Serialises tests that change the database or depend on the order of releases.
    lock: Mutex<()>,
}

const CLOSURE_CODES: &[(&str, &str)] = &[
    ("判决", "01"),
    ("调解", "02"),
    ("准予撤诉", "03"),
    ("按撤诉处理", "04"),
    ("驳回起诉", "05"),
    ("移送", "06"),
    ("终结", "07"),
    ("维持原判", "08"),
    ("改判", "09"),
    ("发回重审", "10"),
    ("执行完毕", "11"),
    ("终结本次执行程序", "12"),
];

/// The court's own column names for the schema's fields (personal fields included: the court's
/// table has them; the node's role is not granted them).
const COURT_COLUMNS: &[(&str, &str, &str)] = &[
    ("case_no", "ah", "text PRIMARY KEY"),
    ("court_code", "fydm", "text"),
    ("region_code", "xzqh", "integer"),
    ("type_code", "ajlx", "text"),
    ("cause", "ay", "varchar(200)"),
    ("filed_on", "larq", "text"),
    ("closed_on", "jarq", "date"),
    ("deadline_on", "sxrq", "timestamp"),
    ("closure_method", "jafs", "text"),
    ("appealed", "sfss", "smallint"),
    ("origin_case_no", "ysah", "text"),
    ("claim_amount", "bde", "numeric(18,2)"),
    ("enforce_requested", "sqzxbd", "numeric(18,2)"),
    ("enforce_collected", "zxdw", "text"),
    ("online_filed", "wsla", "boolean"),
    ("pre_suit_mediated", "sqtj", "boolean"),
    ("judge_id", "cbr", "text"),
    ("plaintiff_kind", "ygxz", "text"),
    ("defendant_kind", "bgxz", "text"),
    ("plaintiff_name", "ygxm", "text"),
    ("defendant_name", "bgxm", "text"),
    ("plaintiff_id_no", "ygsfz", "text"),
    ("defendant_id_no", "bgsfz", "text"),
    ("plaintiff_phone", "ygdh", "text"),
    ("defendant_phone", "bgdh", "text"),
    ("defendant_address", "bgdz", "text"),
    ("minor_involved", "wcn", "boolean"),
    ("summary", "ajzy", "text"),
];

/// The expression converting a staged (text) CSV cell to the court's column.
fn convert(field: &str, ty: &str) -> String {
    let cell = format!("NULLIF(s.{field}, '')");
    match (field, ty) {
        ("closure_method", _) => {
            let mut e = format!("CASE WHEN {cell} IS NULL THEN NULL");
            for (label, code) in CLOSURE_CODES {
                e.push_str(&format!(" WHEN s.{field} = '{label}' THEN '{code}'"));
            }
            e + " ELSE '99' END"
        }
        ("appealed", _) => format!("CASE s.{field} WHEN 'true' THEN 1 ELSE 0 END"),
        (_, t) if t.starts_with("text") || t.starts_with("varchar") => cell,
        (_, t) => format!("{cell}::{}", t.split(' ').next().unwrap()),
    }
}

fn headers_and_rows(csv_path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(csv_path).unwrap();
    let headers = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r.records().map(|rec| rec.unwrap().iter().map(String::from).collect()).collect();
    (headers, rows)
}

/// Rows import quarantines, appended to a court's CSV: each breaks one rule the push-down must apply.
fn add_bad_rows(csv_path: &Path) -> usize {
    let (headers, rows) = headers_and_rows(csv_path);
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let template = rows
        .iter()
        .find(|r| {
            !r[at("closed_on")].is_empty() && r[at("type_code")] == "民初" && r[at("filed_on")].starts_with("2023")
        })
        .unwrap()
        .clone();
    let variants: Vec<(&str, &str)> = vec![
        ("closed_on", "2000-01-01"),      // closed before filed
        ("deadline_on", "2000-01-01"),    // deadline before filed
        ("closure_method", "和解"),       // not a closure method
        ("closed_on", ""),                // a closure method without a closing date
        ("enforce_collected", "100.123"), // three decimals
        ("cause", "民间借贷纠纷 "),       // trailing space
        ("type_code", "民特"),            // not a case type
        ("filed_on", "2023-02-30"),       // no such day
        ("filed_on", "2023-2-3"),         // not YYYY-MM-DD
        ("court_code", "闽0203\u{7}"),    // a control character
    ];
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(std::fs::OpenOptions::new().append(true).open(csv_path).unwrap());
    for (i, (field, value)) in variants.iter().enumerate() {
        let mut row = template.clone();
        row[at("case_no")] = format!("{}-bad{i}", row[at("case_no")]);
        row[at(field)] = value.to_string();
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
    variants.len()
}

/// Loads a CSV into a staging table of text columns (one array parameter per column).
async fn stage(c: &tokio_postgres::Client, table: &str, csv_path: &Path) {
    let (headers, rows) = headers_and_rows(csv_path);
    let cols: Vec<String> = headers.iter().map(|h| format!("{h} text")).collect();
    c.batch_execute(&format!("CREATE TABLE {table} ({})", cols.join(", "))).await.unwrap();
    let columns: Vec<Vec<String>> = (0..headers.len()).map(|i| rows.iter().map(|r| r[i].clone()).collect()).collect();
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        columns.iter().map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
    let args: Vec<String> = (1..=headers.len()).map(|i| format!("${i}::text[]")).collect();
    c.execute(&format!("INSERT INTO {table} SELECT * FROM unnest({})", args.join(", ")), &params).await.unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Keeps only the header line of a CSV (the node's store stays empty; the database serves it).
fn header_only(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, format!("{}\n", text.lines().next().unwrap())).unwrap();
}

fn source_section(db: &str, role: &str, dataset_section: &str) -> String {
    let s = pg();
    format!(
        "\n[source]\nkind = \"postgres\"\nhost = {host:?}\nport = {port}\ndbname = {db:?}\nuser = {role:?}\npassword_file = \"pg.password\"\ntls = false\npool_size = 2\nstatement_timeout_ms = 4000\n{dataset_section}",
        host = s.host,
        port = s.port,
    )
}

fn cases_section(table: &str) -> String {
    let cols: Vec<String> = COURT_COLUMNS
        .iter()
        .filter(|(f, _, _)| {
            shuzhu_node::source::sql::read_fields(&shuzhu_policy::schema::CASES).iter().any(|x| x.name == *f)
        })
        .map(|(f, c, _)| format!("{f} = {c:?}"))
        .collect();
    let codes: Vec<String> = CLOSURE_CODES.iter().map(|(l, c)| format!("{c:?} = {l:?}")).collect();
    format!(
        "\n[source.cases]\ntable = \"public.{table}\"\ncolumns = {{ {} }}\n[source.cases.values]\nclosure_method = {{ {} }}\nappealed = {{ \"1\" = \"true\", \"0\" = \"false\" }}\n",
        cols.join(", "),
        codes.join(", ")
    )
}

fn pf() -> &'static PgFed {
    static F: OnceLock<PgFed> = OnceLock::new();
    F.get_or_init(|| {
        let _ = crate::util::fx(); // the shared log subscriber
        let server = pg();
        let dir = fixture_dir("shuzhu-pgfed-");
        let data = dir.join("data");
        let cfg = shuzhu_gen::GenConfig { courts: 2, cases_per_court: 3000, seed: 11, ..Default::default() };
        shuzhu_gen::generate(&data, &cfg).unwrap();
        let specs = federation::discover(&data).unwrap();
        let courts: Vec<_> = specs.iter().filter(|s| s.id.starts_with("court-")).cloned().collect();
        let justice = specs.iter().find(|s| s.id.starts_with("justice-")).unwrap().clone();
        add_bad_rows(&courts[0].data.join("cases.csv"));

        let db = PgDb::create(server);
        let role = format!("shuzhu_test_{}_{:08x}", std::process::id(), rand_u32());
        let password = format!("{:08x}{:08x}", rand_u32(), rand_u32());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut court_tables = Vec::new();
        rt.block_on(async {
            let c = server.connect(&db.name).await.unwrap();
            c.batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'")).await.unwrap();
            c.batch_execute(&format!("GRANT CONNECT ON DATABASE \"{}\" TO {role}", db.name)).await.unwrap();
            for s in &courts {
                let table = format!("ajxx_{}", s.id.trim_start_matches("court-"));
                stage(&c, &format!("stage_{table}"), &s.data.join("cases.csv")).await;
                let defs: Vec<String> = COURT_COLUMNS.iter().map(|(_, col, ty)| format!("{col} {ty}")).collect();
                c.batch_execute(&format!("CREATE TABLE {table} ({})", defs.join(", "))).await.unwrap();
                let exprs: Vec<String> = COURT_COLUMNS.iter().map(|(f, _, ty)| convert(f, ty)).collect();
                c.batch_execute(&format!("INSERT INTO {table} SELECT {} FROM stage_{table} s", exprs.join(", ")))
                    .await
                    .unwrap();
                // The node's role: SELECT on the non-personal columns it reads, nothing else.
                let granted: Vec<&str> = COURT_COLUMNS
                    .iter()
                    .filter(|(f, _, _)| {
                        shuzhu_node::source::sql::read_fields(&shuzhu_policy::schema::CASES)
                            .iter()
                            .any(|x| x.name == *f)
                    })
                    .map(|(_, col, _)| *col)
                    .collect();
                c.batch_execute(&format!("GRANT SELECT ({}) ON {table} TO {role}", granted.join(", "))).await.unwrap();
                court_tables.push(table);
            }
            stage(&c, "tjxx", &justice.data.join("mediations.csv")).await;
            c.batch_execute(
                "CREATE TABLE shuzhu_knob (delay float8 NOT NULL); INSERT INTO shuzhu_knob VALUES (0);
                 CREATE VIEW shuzhu_mediations AS
                   SELECT region_code, org_type, dispute_type, source, NULLIF(accepted_on, '')::date AS accepted_on,
                          NULLIF(closed_on, '')::date AS closed_on, NULLIF(result, '') AS result, agreement_amount,
                          auto_fulfilled, judicial_confirm_case_no
                   FROM tjxx, (SELECT pg_sleep(delay) FROM shuzhu_knob) slow",
            )
            .await
            .unwrap();
            c.batch_execute(&format!("GRANT SELECT ON shuzhu_mediations TO {role}")).await.unwrap();
        });

        // The store federation: everything imported.
        let store = federation::prepare(&dir.join("fed-store"), &specs, &mut |_| {}).unwrap();
        // The push-down federation: same data, but the court and justice stores stay empty.
        let data_b = dir.join("data-pushed");
        copy_dir(&data, &data_b);
        for s in &courts {
            header_only(&data_b.join(&s.id).join("cases.csv"));
        }
        header_only(&data_b.join(&justice.id).join("mediations.csv"));
        let specs_b = federation::discover(&data_b).unwrap();
        let pushed = federation::prepare(&dir.join("fed-pushed"), &specs_b, &mut |_| {}).unwrap();
        for (id, config) in &pushed.nodes {
            let section = if let Some(region) = id.strip_prefix("court-") {
                cases_section(&format!("ajxx_{region}"))
            } else if id.starts_with("justice-") {
                "\n[source.mediations]\nview = \"shuzhu_mediations\"\n".to_string()
            } else {
                continue;
            };
            let pw = config.parent().unwrap().join("pg.password");
            shuzhu_net::secret::write_secret_file(&pw, format!("{password}\n").as_bytes()).unwrap();
            let mut text = std::fs::read_to_string(config).unwrap();
            text.push_str(&source_section(&db.name, &role, &section));
            std::fs::write(config, text).unwrap();
        }
        let running_store = rt.block_on(federation::start(&store)).unwrap();
        let running_pushed = rt.block_on(federation::start(&pushed)).unwrap();
        PgFed {
            rt,
            db,
            role,
            store: (store, running_store),
            pushed: (pushed, running_pushed),
            court_tables,
            lock: Mutex::new(()),
        }
    })
}

impl PgFed {
    fn query(&self, pushed: bool, token: &str, req: pb::QueryRequest) -> Result<pb::QueryResponse, tonic::Status> {
        let (prepared, running) = if pushed { &self.pushed } else { &self.store };
        let token = shuzhu::client::read_token(&prepared.tokens[token]).unwrap();
        self.rt.block_on(async {
            let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
            shuzhu::client::query(ch, &token, req).await
        })
    }

    /// The same request to both federations; the answers (all but the audit sequence) must agree.
    fn both(&self, token: &str, req: pb::QueryRequest) -> Result<pb::QueryResponse, String> {
        let what = format!("{} by {:?} {:?} filters {:?}", req.indicator, req.group_by, req.period, req.filters);
        let a = self.query(false, token, req.clone());
        let b = self.query(true, token, req);
        match (a, b) {
            (Ok(mut a), Ok(mut b)) => {
                a.audit_seq = 0;
                b.audit_seq = 0;
                assert_eq!(a, b, "store and push-down differ for {what}");
                Ok(a)
            }
            (Err(a), Err(b)) => {
                assert_eq!(
                    (a.code(), a.message()),
                    (b.code(), b.message()),
                    "store and push-down refuse differently: {what}"
                );
                Err(a.message().to_string())
            }
            (a, b) => panic!("store and push-down differ for {what}: {a:?} vs {b:?}"),
        }
    }

    fn sql(&self, q: &str) -> Vec<tokio_postgres::Row> {
        self.rt.block_on(async { pg().connect(&self.db.name).await.unwrap().query(q, &[]).await.unwrap() })
    }
}

fn filtered(mut req: pb::QueryRequest, dimension: &str, values: &[&str]) -> pb::QueryRequest {
    req.filters.push(pb::DimensionFilter {
        dimension: dimension.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    });
    req
}

#[test]
fn every_indicator_answers_the_same_from_postgres_as_from_the_store() {
    let f = pf();
    let _g = f.lock.lock().unwrap_or_else(|e| e.into_inner());
    let indicators = shuzhu_policy::indicator::indicators();
    assert!(indicators.len() >= 17, "{} indicators", indicators.len());
    let region = f.store.1.nodes.iter().find(|n| n.id.starts_with("court-")).unwrap().regions[0].clone();
    let mut answered = 0;
    let mut cells = 0;
    let mut with_values = 0;
    for ind in &indicators {
        let dims: Vec<&str> = ind.dimensions.iter().map(|d| d.as_str()).collect();
        let has = |d: &str| dims.contains(&d);
        let mut shapes: Vec<pb::QueryRequest> = vec![
            request(ind.id, &[], 202301, 202312, "审判管理"),
            request(ind.id, &["year"], 202101, 202412, "审判管理"),
            request(ind.id, &["quarter"], 202302, 202407, "审判管理"),
            request(ind.id, &["month"], 202405, 202408, "审判管理"),
        ];
        if has("region") {
            shapes.push(request(ind.id, &["region", "year"], 202201, 202412, "审判管理"));
            shapes.push(request(ind.id, &["region:city", "quarter"], 202401, 202406, "审判管理"));
            shapes.push(filtered(request(ind.id, &["year"], 202201, 202312, "审判管理"), "region", &[&region]));
        }
        if has("court") {
            shapes.push(request(ind.id, &["court", "month"], 202403, 202405, "审判管理"));
        }
        if has("division") {
            shapes.push(request(ind.id, &["division", "instance"], 202301, 202412, "审判管理"));
            shapes.push(filtered(request(ind.id, &["year"], 202301, 202412, "审判管理"), "division", &["民事"]));
        }
        if has("type_code") {
            shapes.push(filtered(
                request(ind.id, &["type_code"], 202401, 202412, "审判管理"),
                "type_code",
                &["民初", "执"],
            ));
        }
        if has("cause") {
            shapes.push(filtered(
                request(ind.id, &["cause", "year"], 202201, 202412, "审判管理"),
                "cause",
                &["民间借贷纠纷", "劳动争议"],
            ));
        }
        if has("dispute_type") {
            shapes.push(request(ind.id, &["dispute_type", "year"], 202201, 202412, "审判管理"));
        }
        for req in shapes {
            if let Ok(resp) = f.both("manager", req) {
                answered += 1;
                cells += resp.rows.len();
                with_values += resp.rows.iter().filter(|r| r.value.is_some()).count();
            }
        }
    }
    // The comparison means something only if most answers carry values.
    assert!(answered >= 17 * 4, "only {answered} answers");
    assert!(with_values * 2 > cells && with_values > 500, "{with_values} values in {cells} cells");
}

#[test]
fn hostile_filter_values_are_bound_never_spliced() {
    let f = pf();
    let _g = f.lock.lock().unwrap_or_else(|e| e.into_inner());
    let table = &f.court_tables[0];
    let before: i64 = f.sql(&format!("SELECT count(*) FROM {table}"))[0].get(0);
    let hostile = [
        "'; DROP TABLE ajxx; --",
        "x' OR 'a'='a",
        "民间借贷纠纷' --",
        "/* 注释 */ 劳动争议",
        "劳动争议); SELECT pg_sleep(",
        "＇；ＤＲＯＰ",
        "\\' OR TRUE --",
        "$ab$ OR TRUE $ab$",
        "e'\\x'",
    ];
    for v in hostile {
        let resp = f
            .both("requester", filtered(request("filed", &["year"], 202101, 202412, "诉源治理"), "cause", &[v]))
            .unwrap();
        assert!(resp.rows.is_empty(), "{v:?} matched rows: {:?}", resp.rows);
    }
    let court = ["闽0203'--", "闽'OR'1'='1", "闽;DELETE"];
    for v in court {
        let resp = f
            .both("manager", filtered(request("closed", &["year"], 202101, 202412, "审判管理"), "court", &[v]))
            .unwrap();
        assert!(resp.rows.is_empty(), "{v:?} matched rows");
    }
    // A hostile value next to a real one still finds the real one's cases.
    let real = f
        .both(
            "requester",
            filtered(request("filed", &["year"], 202101, 202412, "诉源治理"), "cause", &["劳动争议", "x' OR 'a'='a"]),
        )
        .unwrap();
    assert!(real.rows.iter().any(|r| r.value.is_some()), "{real:?}");
    let after: i64 = f.sql(&format!("SELECT count(*) FROM {table}"))[0].get(0);
    assert_eq!(before, after);
}

#[test]
fn the_node_never_reads_a_personal_column() {
    let f = pf();
    {
        let _g = f.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Answer something of every dataset the database serves, so there are statements to inspect.
        for ind in [
            "closure_rate",
            "avg_trial_days",
            "long_pending_ratio",
            "enforcement_recovery_rate",
            "mediation_success_rate",
            "judicial_confirmation_rate",
        ] {
            let _ = f.query(true, "manager", request(ind, &["region", "quarter"], 202301, 202412, "审判管理"));
        }
    }
    let sent = shuzhu_node::source::postgres::statements_sent();
    assert!(sent.len() >= 6, "{} statements", sent.len());
    let personal: Vec<(&str, &str)> = COURT_COLUMNS
        .iter()
        .filter(|(field, _, _)| {
            shuzhu_policy::schema::CASES.field(field).is_some_and(|x| x.grade >= shuzhu_policy::schema::Grade::L4)
        })
        .map(|(field, col, _)| (*field, *col))
        .collect();
    assert_eq!(personal.len(), 9);
    let identifiers = [
        "ah",
        "ysah",
        "cbr",
        "case_no",
        "judge_id",
        "mediation_id",
        "mediator_id",
        "party_name",
        "party_id_no",
        "party_phone",
    ];
    for sql in &sent {
        let words: Vec<&str> = sql.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
        for (field, col) in &personal {
            assert!(
                !words.contains(col) && !words.contains(field),
                "statement names personal column {col} ({field}): {sql}"
            );
        }
        for id in identifiers {
            assert!(!words.contains(&id), "statement names identifier {id}: {sql}");
        }
        let upper = sql.to_uppercase();
        for verb in ["INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER", "GRANT", "COPY", "TRUNCATE"] {
            assert!(!upper.split(|c: char| !c.is_alphanumeric()).any(|w| w == verb), "{verb} sent: {sql}");
        }
    }
    // And the database agrees: the role holds no privilege on any personal column.
    for (_, col) in &personal {
        let rows =
            f.sql(&format!("SELECT has_column_privilege('{}', '{}', '{col}', 'SELECT')", f.role, f.court_tables[0]));
        assert!(!rows[0].get::<_, bool>(0), "{col} is granted");
    }
}

#[test]
fn a_slow_database_makes_the_node_answer_unavailable_within_its_timeout() {
    let f = pf();
    let _g = f.lock.lock().unwrap_or_else(|e| e.into_inner());
    let req = request("mediation_success_rate", &["year"], 202301, 202412, "诉源治理");
    let fast = f.query(true, "requester", req.clone()).unwrap();
    assert_eq!(fast.coverage.as_ref().unwrap().missing.len(), 0, "{fast:?}");
    f.sql("UPDATE shuzhu_knob SET delay = 30");
    let slow = f.query(true, "requester", req.clone());
    f.sql("UPDATE shuzhu_knob SET delay = 0");
    // The justice node is the only one holding mediations: the gateway answers at once that no node
    // answered, naming it; the node says why in its log (never a value of the database).
    let status = slow.expect_err("no node answered");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("justice-"), "{}", status.message());
    let logs = String::from_utf8_lossy(&crate::util::fx().logs.lock().unwrap()).into_owned();
    assert!(
        logs.lines()
            .any(|l| l.contains("source cannot answer") && l.contains("justice-") && l.contains("statement timeout")),
        "no log line says the database timed out"
    );
    // And it answers again once the database does.
    let again = f.query(true, "requester", req).unwrap();
    assert_eq!(again.coverage.unwrap().missing.len(), 0);
}

#[test]
fn postgres_source_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = "node_id = \"court-350203\"\nlisten = \"127.0.0.1:7443\"\nstore = \"store\"\npseudonym_key_file = \"k\"\n[tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n[policy]\ngateways = [\"gw-1\"]\nagencies = [\"*\"]\ndatasets = [\"cases\"]\n";
    let load = |extra: &str| -> String {
        let p = dir.path().join("node.toml");
        std::fs::write(&p, format!("{base}{extra}")).unwrap();
        match shuzhu_node::config::NodeConfig::load(&p) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let ok = "[source]\nkind = \"postgres\"\nurl = \"postgresql://node@db:5432/court\"\npassword_file = \"pw\"\nca_file = \"ca.pem\"\n[source.cases]\ntable = \"ajxx\"\n";
    assert_eq!(load(ok), "");
    for (bad, key) in [
        (ok.replace("node@db", "node:secret@db"), "source.url must not carry a password"),
        (ok.replace("ca_file = \"ca.pem\"\n", ""), "source.ca_file"),
        (ok.replace("table = \"ajxx\"", "table = \"ajxx; DROP TABLE x\""), "source.cases"),
        (
            ok.replace("table = \"ajxx\"", "table = \"ajxx\"\ncolumns = { plaintiff_name = \"ygxm\" }"),
            "source.cases.columns.plaintiff_name",
        ),
        (
            ok.replace("table = \"ajxx\"", "table = \"ajxx\"\ncolumns = { court = \"fydm\" }"),
            "\"court\" is not a field",
        ),
        (
            ok.replace("table = \"ajxx\"", "table = \"ajxx\"\nvalues = { closure_method = { \"1\" = \"胜诉\" } }"),
            "source.cases.values.closure_method",
        ),
        (ok.replace("pool_size", "x").replace("[source]\n", "[source]\npool_siz = 3\n"), "pool_siz"),
        (ok.replace("kind = \"postgres\"", "kind = \"mysql\""), "kind"),
        ("[source]\nurl = \"postgresql://n@h/d\"\n".to_string(), "source.url is only for kind = \"postgres\""),
    ] {
        let e = load(&bad);
        assert!(e.contains(key), "{key:?} not in {e:?}");
        assert!(!e.contains("secret"), "{e}");
    }
}

#[test]
fn check_source_counts_rows_excluded_by_reason_without_values() {
    let f = pf();
    let (id, config) = f.pushed.0.nodes.iter().find(|(id, _)| id.starts_with("court-")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu"))
        .args(["node", "check-source", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{id}: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("rows: 3010, accepted: 3000, excluded: 10"), "{text}");
    for reason in [
        "closed_on: before filed_on",
        "deadline_on: before filed_on",
        "closure_method: not a valid value",
        "closure_method: not given exactly when closed_on is",
        "enforce_collected: not a valid value",
        "cause: not a valid value",
        "type_code: not a valid value",
        "filed_on: not a valid value",
        "court_code: not a valid value",
    ] {
        assert!(text.contains(reason), "{reason:?} missing: {text}");
    }
    assert!(text.contains("data span: 20"), "{text}");
    // Counts and codes only: no value of a bad row, no personal value.
    for v in ["和解", "100.123", "民特", "2023-02-30", "民间借贷纠纷 "] {
        assert!(!text.contains(v), "{v:?} shown: {text}");
    }
}
