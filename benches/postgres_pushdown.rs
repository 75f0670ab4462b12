//! The same indicators over the same generated cases three ways, side by side in one run: the node's
//! store engine (imported, in memory), push-down to PostgreSQL (the node's generated SQL through
//! `PgSource`), and DuckDB (hand-written SQL over its own table, via `python3 -c`, `pip install duckdb`).
//! Plus, to show where push-down time goes, the same PostgreSQL table with minimal hand-written SQL
//! (no import rules) and `EXPLAIN ANALYZE` of one generated statement.
//!
//! ```sh
//! SHUZHU_BENCH_CASES=1000000 nice cargo bench --bench postgres_pushdown
//! ```
//!
//! `SHUZHU_BENCH_PG_URL` names a superuser URL (default `postgresql://postgres@127.0.0.1:5432/postgres`).
//! Not a test: it prints medians and asserts only that the three agree on the first query's total.

use std::process::Command;
use std::time::{Duration, Instant};

use shuzhu_node::engine::{CaseTable, Filter};
use shuzhu_node::import::{ImportOptions, import_file};
use shuzhu_node::source::config::SourceConfig;
use shuzhu_node::source::postgres::PgSource;
use shuzhu_node::source::{Source, StoreSource};
use shuzhu_node::store::SledStore;
use shuzhu_policy::dimension::Dimension;
use shuzhu_policy::indicator::{Measure, measure};
use shuzhu_policy::period::Period;

struct Shape {
    name: &'static str,
    measures: &'static [&'static str],
    group_by: &'static [Dimension],
    from: u32,
    to: u32,
    filter: Option<(Dimension, &'static str)>,
    /// DuckDB and plain PostgreSQL SQL (same for both), `cases` with typed columns.
    plain: &'static str,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "filed by region, year (6 years)",
        measures: &["cases.filed"],
        group_by: &[Dimension::Region, Dimension::Year],
        from: 201901,
        to: 202412,
        filter: None,
        plain: "SELECT region_code, extract(year FROM filed_on) y, count(*) FROM cases WHERE filed_on BETWEEN DATE '2019-01-01' AND DATE '2024-12-31' GROUP BY 1, 2",
    },
    Shape {
        name: "closure_rate by month (1 year)",
        measures: &["cases.closed", "cases.active"],
        group_by: &[Dimension::Month],
        from: 202401,
        to: 202412,
        filter: None,
        plain: "SELECT * FROM (SELECT date_trunc('month', closed_on) m, count(*) FROM cases WHERE closed_on BETWEEN DATE '2024-01-01' AND DATE '2024-12-31' GROUP BY 1) a, (SELECT m, count(*) FROM cases, (SELECT DATE '2024-01-01' + i * INTERVAL '1 month' AS m FROM generate_series(0, 11) g(i)) ms WHERE filed_on < m + INTERVAL '1 month' AND (closed_on IS NULL OR closed_on >= m) GROUP BY m) b",
    },
    Shape {
        name: "avg_trial_days by cause, quarter (1 year)",
        measures: &["cases.trial_days", "cases.closed"],
        group_by: &[Dimension::Cause, Dimension::Quarter],
        from: 202301,
        to: 202312,
        filter: None,
        plain: "SELECT cause, extract(quarter FROM closed_on) q, sum(closed_on - filed_on), count(*), max(closed_on - filed_on) FROM cases WHERE closed_on BETWEEN DATE '2023-01-01' AND DATE '2023-12-31' GROUP BY 1, 2",
    },
    Shape {
        name: "enforcement_recovery_rate (1 year)",
        measures: &["cases.enforce_collected", "cases.enforce_requested"],
        group_by: &[],
        from: 202401,
        to: 202412,
        filter: None,
        plain: "SELECT sum(enforce_collected), count(enforce_collected), sum(enforce_requested), count(enforce_requested) FROM cases WHERE closed_on BETWEEN DATE '2024-01-01' AND DATE '2024-12-31' AND type_code IN ('执', '执恢')",
    },
    Shape {
        name: "filed, one month, rare cause filter",
        measures: &["cases.filed"],
        group_by: &[],
        from: 202406,
        to: 202406,
        filter: Some((Dimension::Cause, "劳动争议")),
        plain: "SELECT count(*) FROM cases WHERE filed_on BETWEEN DATE '2024-06-01' AND DATE '2024-06-30' AND cause = '劳动争议'",
    },
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn cpu_secs() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn psql(url: &str, sql: &str) {
    let ok = Command::new("psql").args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]).status().expect("psql");
    assert!(ok.success(), "psql failed: {sql}");
}

fn main() {
    let n: usize = std::env::var("SHUZHU_BENCH_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let admin =
        std::env::var("SHUZHU_BENCH_PG_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let runs = 5;
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let cfg = shuzhu_gen::GenConfig { courts: 1, cases_per_court: n, seed: 5, ..Default::default() };
    shuzhu_gen::generate(&dir.path().join("data"), &cfg).unwrap();
    let csv = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("cases.csv"))
        .find(|p| p.exists())
        .unwrap();
    println!("generated {n} cases in {:.1}s", t.elapsed().as_secs_f64());

    // The store engine.
    let t = Instant::now();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let key = shuzhu_policy::pseudonym::PseudonymKey::from_hex(&"ab".repeat(32)).unwrap();
    let r = import_file(
        &store,
        &csv,
        ImportOptions {
            dataset: "cases",
            key: &key,
            keep_raw: &[],
            minimise: Default::default(),
            progress: &mut |_| {},
        },
    )
    .unwrap();
    let table = CaseTable::load(&store).unwrap();
    println!("store: imported {} in {:.1}s, loaded {} cases", r.imported, t.elapsed().as_secs_f64(), table.len());

    // PostgreSQL: the CSV copied in, typed, analysed.
    let db = format!("shuzhu_bench_{}", std::process::id());
    let db_url = admin.rsplit_once('/').map(|(base, _)| format!("{base}/{db}")).unwrap();
    psql(&admin, &format!("CREATE DATABASE {db}"));
    let t = Instant::now();
    let header = std::fs::read_to_string(&csv).unwrap().lines().next().unwrap().to_string();
    let cols: Vec<String> = header.split(',').map(|c| format!("{c} text")).collect();
    psql(&db_url, &format!("CREATE TABLE stage ({})", cols.join(", ")));
    psql(&db_url, &format!("\\copy stage FROM '{}' CSV HEADER", csv.display()));
    psql(
        &db_url,
        "CREATE TABLE cases AS SELECT court_code, region_code, type_code, cause, filed_on::date AS filed_on, NULLIF(closed_on, '')::date AS closed_on, deadline_on::date AS deadline_on, NULLIF(closure_method, '') AS closure_method, appealed::boolean AS appealed, NULLIF(claim_amount, '')::numeric AS claim_amount, NULLIF(enforce_requested, '')::numeric AS enforce_requested, NULLIF(enforce_collected, '')::numeric AS enforce_collected, online_filed::boolean AS online_filed, pre_suit_mediated::boolean AS pre_suit_mediated, plaintiff_kind, defendant_kind FROM stage; DROP TABLE stage",
    );
    psql(&db_url, "VACUUM ANALYZE cases");
    println!("postgres: loaded {n} cases in {:.1}s", t.elapsed().as_secs_f64());

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let pgcfg: tokio_postgres::Config = db_url.parse().unwrap();
    let host = match pgcfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let source: SourceConfig = toml::from_str(&format!(
        "kind = \"postgres\"\nhost = {host:?}\nport = {}\ndbname = {db:?}\nuser = {:?}\ntls = false\npool_size = 2\nstatement_timeout_ms = 600000\n[cases]\ntable = \"cases\"\n",
        pgcfg.get_ports().first().copied().unwrap_or(5432),
        pgcfg.get_user().unwrap_or("postgres"),
    ))
    .unwrap();
    let empty =
        StoreSource { cases: Default::default(), mediations: Default::default(), population: Default::default() };
    let (pg, _) = rt.block_on(PgSource::open(&source, empty)).unwrap();
    let plain_client = rt.block_on(async {
        let (c, conn) = pgcfg.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c.batch_execute("SET jit = off").await.unwrap();
        c
    });

    // DuckDB: its own table from the same CSV; times every query `runs` times, prints medians (ms).
    let duck_script = format!(
        r#"
import duckdb, time, json, sys
c = duckdb.connect()
t = time.time()
c.execute("CREATE TABLE cases AS SELECT * FROM read_csv('{csv}', header=true, all_varchar=false)")
load = time.time() - t
out = {{"load_s": load, "q": []}}
for q in json.loads(sys.argv[1]):
    ts = []
    for _ in range({runs}):
        t = time.perf_counter(); c.execute(q).fetchall(); ts.append(time.perf_counter() - t)
    ts.sort(); out["q"].append(ts[len(ts) // 2] * 1000)
first = c.execute("SELECT count(*) FROM cases WHERE filed_on BETWEEN DATE '2019-01-01' AND DATE '2024-12-31'").fetchone()[0]
out["first_total"] = first
print(json.dumps(out))
"#,
        csv = csv.display()
    );
    let queries = serde_json::to_string(&SHAPES.iter().map(|s| s.plain).collect::<Vec<_>>()).unwrap();
    let duck = Command::new("nice").args(["python3", "-c", &duck_script, &queries]).output().expect("python3");
    let duck: serde_json::Value = serde_json::from_slice(&duck.stdout)
        .unwrap_or_else(|_| panic!("duckdb failed (pip install duckdb): {}", String::from_utf8_lossy(&duck.stderr)));
    println!("duckdb: loaded the CSV in {:.1}s", duck["load_s"].as_f64().unwrap_or(0.0));

    println!("\n{n} cases, medians of {runs} runs (ms); engine CPU in brackets");
    println!("{:<44} {:>12} {:>12} {:>12} {:>12}", "query", "engine", "push-down", "pg plain", "duckdb");
    let mut first_totals = (0i64, 0i64);
    for (i, s) in SHAPES.iter().enumerate() {
        let ms_: Vec<&'static Measure> = s.measures.iter().map(|m| measure(m).unwrap()).collect();
        let period = Period::from_wire(s.from, s.to).unwrap();
        let filters: Vec<Filter> =
            s.filter.iter().map(|(d, v)| Filter { dimension: *d, values: vec![v.to_string()] }).collect();
        let (mut e, mut p, mut q) = (vec![], vec![], vec![]);
        let cpu0 = cpu_secs();
        let mut engine_out = vec![];
        for _ in 0..runs {
            let t = Instant::now();
            engine_out = table.aggregate(&ms_, s.group_by, period, &filters).unwrap();
            e.push(t.elapsed());
        }
        let engine_cpu = (cpu_secs() - cpu0) / runs as f64;
        let mut pushed_out = vec![];
        for _ in 0..runs {
            let t = Instant::now();
            let a =
                rt.block_on(pg.aggregate("cases", ms_.clone(), s.group_by.to_vec(), period, filters.clone())).unwrap();
            p.push(t.elapsed());
            pushed_out = a.groups;
        }
        assert_eq!(engine_out, pushed_out, "engine and push-down differ on {}", s.name);
        for _ in 0..runs {
            let t = Instant::now();
            rt.block_on(plain_client.query(s.plain, &[])).unwrap();
            q.push(t.elapsed());
        }
        if i == 0 {
            first_totals =
                (engine_out.iter().map(|g| g.partials[0].value).sum(), duck["first_total"].as_i64().unwrap_or(-1));
        }
        let d = duck["q"][i].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<44} {:>6} [{:>4.0}] {:>12} {:>12} {:>12.1}",
            s.name,
            ms(median(e)),
            engine_cpu * 1000.0,
            ms(median(p)),
            ms(median(q)),
            d
        );
    }
    println!("first query total: engine {} (valid rows), duckdb {} (all rows)", first_totals.0, first_totals.1);

    // Where push-down time goes: the plan of the first shape's generated statement.
    let m = measure(SHAPES[0].measures[0]).unwrap();
    let period = Period::from_wire(SHAPES[0].from, SHAPES[0].to).unwrap();
    let mapped = rt.block_on(async {
        let c = shuzhu_node::source::postgres::connect(&source).await.unwrap();
        shuzhu_node::source::postgres::check_mapping(&c, &source, "cases").await.unwrap()
    });
    let st = shuzhu_node::source::sql::measure_statement(&mapped, m, SHAPES[0].group_by, period, &[]);
    let params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync>> = st
        .params
        .iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync> {
            match p {
                shuzhu_node::source::sql::Param::Text(t) => Box::new(t.clone()),
                shuzhu_node::source::sql::Param::Texts(t) => Box::new(t.clone()),
                shuzhu_node::source::sql::Param::Ints(i) => Box::new(i.clone()),
                shuzhu_node::source::sql::Param::Int(i) => Box::new(*i),
            }
        })
        .collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
    let plan = rt.block_on(plain_client.query(&format!("EXPLAIN (ANALYZE, BUFFERS) {}", st.sql), &refs)).unwrap();
    println!("\nEXPLAIN ANALYZE of the generated statement of \"{}\":", SHAPES[0].name);
    for r in plan {
        let line: String = r.get(0);
        println!("  {}", line.chars().take(160).collect::<String>());
    }
    drop(plain_client);
    drop(pg);
    drop(rt);
    psql(&admin, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
}
