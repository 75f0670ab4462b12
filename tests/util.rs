//! The shared fixture: three court nodes (plus the justice and statistics nodes `gen` makes) and a
//! gateway, started once for the whole test binary on its own runtime. Logs of every test go to a
//! buffer that the privacy tests scan.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use shuzhu::federation::{self, Prepared, Running};
use shuzhu_proto::v1 as pb;

pub(crate) struct Fixture {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) data: PathBuf,
    pub(crate) prepared: Prepared,
    pub(crate) running: Running,
    pub(crate) logs: Arc<Mutex<Vec<u8>>>,
}

#[derive(Clone)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogSink;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

pub(crate) const COURTS: usize = 3;
pub(crate) const CASES_PER_COURT: usize = 4000;

/// A directory for a fixture that lives as long as the test process (statics are never dropped, so a
/// `TempDir` would not clean up): named `PREFIX<pid>-…` in the temp dir. The directories of earlier test
/// processes that have exited (no `/proc/<pid>`) are removed first, so runs do not pile up fixtures.
pub(crate) fn fixture_dir(prefix: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    tempfile::Builder::new().prefix(&format!("{prefix}{}-", std::process::id())).tempdir_in(&tmp).unwrap().keep()
}

pub(crate) fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,h2=info,hyper=info,tower=info,rustls=info,tokio_postgres=info",
            ))
            .with_writer(LogSink(Arc::clone(&logs)))
            .with_ansi(false)
            .try_init();
        let dir = fixture_dir("shuzhu-it-");
        let data = dir.join("data");
        let cfg =
            shuzhu_gen::GenConfig { courts: COURTS, cases_per_court: CASES_PER_COURT, seed: 7, ..Default::default() };
        shuzhu_gen::generate(&data, &cfg).unwrap();
        let specs = federation::discover(&data).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let prepared = federation::prepare(&dir.join("fed"), &specs, &mut |_| {}).unwrap();
        let running = rt.block_on(federation::start(&prepared)).unwrap();
        Fixture { rt, data, prepared, running, logs }
    })
}

impl Fixture {
    pub(crate) fn token(&self, name: &str) -> String {
        shuzhu::client::read_token(&self.prepared.tokens[name]).unwrap()
    }

    pub(crate) fn query(&self, token: &str, req: pb::QueryRequest) -> Result<pb::QueryResponse, tonic::Status> {
        self.rt.block_on(async {
            let ch = shuzhu::client::connect(&self.running.gateway_url, &self.prepared.pki.ca_cert).await.unwrap();
            shuzhu::client::query(ch, token, req).await
        })
    }

    pub(crate) fn list_entries(
        &self,
        token: &str,
        from_seq: u64,
        limit: u32,
    ) -> Result<pb::ListEntriesResponse, tonic::Status> {
        self.rt.block_on(async {
            let ch = shuzhu::client::connect(&self.running.gateway_url, &self.prepared.pki.ca_cert).await.unwrap();
            let mut c = pb::audit_client::AuditClient::new(ch);
            let req =
                shuzhu::client::authorized(pb::ListEntriesRequest { from_seq, limit, ..Default::default() }, token)
                    .unwrap();
            c.list_entries(req).await.map(tonic::Response::into_inner)
        })
    }

    pub(crate) fn ledger_dir(&self) -> PathBuf {
        self.prepared.dir.join("ledger")
    }

    /// Every byte the ledger stores durably (its segment files), as text where it is text.
    pub(crate) fn ledger_text(&self) -> String {
        let segments = self.ledger_dir().join("segments");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&segments).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files.iter().map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned()).collect()
    }

    pub(crate) fn court_ids(&self) -> Vec<String> {
        self.prepared.nodes.iter().map(|(id, _)| id.clone()).filter(|id| id.starts_with("court-")).collect()
    }

    pub(crate) fn cases_csvs(&self) -> Vec<PathBuf> {
        self.court_ids().iter().map(|id| self.data.join(id).join("cases.csv")).collect()
    }
}

pub(crate) fn request(indicator: &str, group_by: &[&str], from: u32, to: u32, purpose: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        indicator: indicator.into(),
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
        period: Some(pb::Period { from_month: from, to_month: to }),
        filters: vec![],
        purpose: purpose.into(),
        legal_basis: String::new(),
    }
}

/// Every value of the personal columns of every CSV under `data`.
pub(crate) fn personal_values(data: &Path) -> Vec<String> {
    let personal = [
        "plaintiff_name",
        "defendant_name",
        "plaintiff_id_no",
        "defendant_id_no",
        "plaintiff_phone",
        "defendant_phone",
        "defendant_address",
        "party_name",
        "party_id_no",
        "party_phone",
    ];
    let mut out = Vec::new();
    for entry in walk(data) {
        if entry.extension().is_some_and(|e| e == "csv") {
            let mut r = csv::Reader::from_path(&entry).unwrap();
            let headers = r.headers().unwrap().clone();
            let idx: Vec<usize> =
                headers.iter().enumerate().filter(|(_, h)| personal.contains(h)).map(|(i, _)| i).collect();
            for rec in r.records() {
                let rec = rec.unwrap();
                for &i in &idx {
                    let v = rec[i].trim();
                    // Names of two characters are short enough to occur inside ordinary words; they
                    // are still checked, but only where they cannot be a common word.
                    if v.chars().count() >= 2 {
                        out.push(v.to_string());
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A second gateway beside the fixture's, sharing its nodes, policy and keys but with its own ledger
/// directory `ledger-NAME` and the given extra configuration: `top` is placed before every table (plain
/// keys), `tables` after them (`[server]`, `[auth]`). Returns its URL, a stop switch and the server task.
pub(crate) fn own_gateway(
    name: &str,
    top: &str,
    tables: &str,
) -> (String, std::sync::Arc<shuzhu_gateway::state::GatewayState>, tokio::sync::oneshot::Sender<()>) {
    let f = fx();
    let text = std::fs::read_to_string(&f.running.gateway_config).unwrap();
    let text = text.replace("ledger_dir = \"ledger\"", &format!("ledger_dir = \"ledger-{name}\""));
    let path = f.prepared.dir.join(format!("gateway-{name}.toml"));
    std::fs::write(&path, format!("{top}\n{text}\n{tables}\n")).unwrap();
    let config = shuzhu_gateway::config::GatewayConfig::load(&path).unwrap();
    f.rt.block_on(async {
        let state = std::sync::Arc::new(shuzhu_gateway::state::GatewayState::open(&config).unwrap());
        let tls = shuzhu_net::tls_server(&config.tls.cert, &config.tls.key).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(shuzhu_gateway::service::serve(std::sync::Arc::clone(&state), tls, listener, async {
            let _ = rx.await;
        }));
        (url, state, stop)
    })
}
/// The environment variable naming a PostgreSQL server for the tests (a superuser's URL, e.g.
/// `postgresql://postgres@127.0.0.1:5432/postgres`). Without it the tests use the server on
/// `127.0.0.1:5432`, or else start a throwaway cluster with the installed `initdb` and `pg_ctl`.
pub(crate) const PG_URL_ENV: &str = "SHUZHU_TEST_PG_URL";

/// A PostgreSQL server the tests may create databases and roles on, as a superuser.
pub(crate) struct PgServer {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    /// The superuser's password, when the URL gave one.
    pub(crate) password: Option<String>,
}

impl PgServer {
    /// A superuser connection to database `db`.
    pub(crate) async fn connect(&self, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host).port(self.port).user(&self.user).dbname(db);
        c.connect_timeout(std::time::Duration::from_secs(5));
        if let Some(p) = &self.password {
            c.password(p);
        }
        let (client, conn) = c.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// A libpq URL of database `db` (for `psql`).
    fn url(&self, db: &str) -> String {
        match &self.password {
            Some(p) => format!("postgresql://{}:{p}@{}:{}/{db}", self.user, self.host, self.port),
            None => format!("postgresql://{}@{}:{}/{db}", self.user, self.host, self.port),
        }
    }
}

fn block<F: std::future::Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    // Fixture set-up runs outside any runtime or inside `block_in_place`: a runtime of its own.
    std::thread::scope(|s| {
        s.spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f))
            .join()
            .unwrap()
    })
}

/// Finds (or starts) the PostgreSQL server the tests use: the URL in [`PG_URL_ENV`], the server on
/// 127.0.0.1:5432, or a throwaway cluster. Panics with one line saying what to install otherwise.
pub(crate) fn pg() -> &'static PgServer {
    static PG: OnceLock<PgServer> = OnceLock::new();
    PG.get_or_init(|| {
        if let Ok(url) = std::env::var(PG_URL_ENV) {
            let c: tokio_postgres::Config = url.parse().unwrap_or_else(|_| panic!("{PG_URL_ENV} is not a PostgreSQL URL"));
            let host = match c.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                _ => "127.0.0.1".into(),
            };
            let server = PgServer {
                host,
                port: c.get_ports().first().copied().unwrap_or(5432),
                user: c.get_user().unwrap_or("postgres").to_string(),
                password: c.get_password().map(|p| String::from_utf8_lossy(p).into_owned()),
            };
            block(server.connect("postgres")).unwrap_or_else(|e| panic!("{PG_URL_ENV}: cannot connect: {e}"));
            return server;
        }
        let local = PgServer { host: "127.0.0.1".into(), port: 5432, user: "postgres".into(), password: None };
        if block(local.connect("postgres")).is_ok() {
            return local;
        }
        throwaway_cluster().unwrap_or_else(|why| {
            panic!(
                "PostgreSQL tests need a server: set {PG_URL_ENV}, run PostgreSQL on 127.0.0.1:5432, or install PostgreSQL's server binaries (Debian: apt-get install postgresql) ({why})"
            )
        })
    })
}

/// Where `initdb` and `pg_ctl` are: on the PATH, or under /usr/lib/postgresql/<version>/bin.
fn pg_bin(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
        .unwrap_or_default();
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> =
            std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten().map(|e| e.path()).collect();
        versions.sort();
        versions.into_iter().rev().map(|v| v.join("bin").join(name)).find(|f| f.is_file())
    })
}

/// Starts a cluster in a temporary directory on a free loopback port; a watchdog stops it when this
/// test process exits. As root, the cluster runs as the `postgres` user (initdb refuses root).
fn throwaway_cluster() -> Result<PgServer, String> {
    let (initdb, pg_ctl) = (pg_bin("initdb").ok_or("initdb not found")?, pg_bin("pg_ctl").ok_or("pg_ctl not found")?);
    let dir = fixture_dir("shuzhu-pg-");
    let root =
        std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    let run_as = |program: &Path| -> std::process::Command {
        if root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        }
    };
    if root {
        let ok = std::process::Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("cannot hand the cluster directory to the postgres user".into());
        }
    }
    let data = dir.join("data");
    let out = run_as(&initdb)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "-D"])
        .arg(&data)
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")));
    }
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let opts = format!("-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={}", dir.display());
    let out = run_as(&pg_ctl)
        .args(["-w", "-l"])
        .arg(dir.join("log"))
        .args(["-o", &opts, "-D"])
        .arg(&data)
        .arg("start")
        .output()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        ));
    }
    // Stop the cluster once this process has gone (statics are never dropped).
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas}{pg_ctl} -m immediate -D {data} stop >/dev/null 2>&1",
        pid = std::process::id(),
        runas = if root { "runuser -u postgres -- " } else { "" },
        pg_ctl = pg_ctl.display(),
        data = data.display(),
    );
    std::process::Command::new("sh")
        .args(["-c", &stop])
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let server = PgServer { host: "127.0.0.1".into(), port, user: "postgres".into(), password: None };
    block(server.connect("postgres")).map_err(|e| format!("the throwaway cluster does not answer: {e}"))?;
    Ok(server)
}

/// A database of this test run (random name), dropped with its test roles when the test process
/// exits (a watchdog runs `psql`), and at the next run if that failed.
pub(crate) struct PgDb {
    pub(crate) name: String,
}

impl PgDb {
    pub(crate) fn create(server: &PgServer) -> PgDb {
        let pid = std::process::id();
        let name = format!("shuzhu_test_{pid}_{:08x}", rand_u32());
        block(async {
            let c = server.connect("postgres").await.unwrap();
            // Databases and roles of earlier runs whose process has gone.
            for row in c
                .query("SELECT datname::text FROM pg_database WHERE datname LIKE 'shuzhu\\_test\\_%'", &[])
                .await
                .unwrap()
            {
                let db: String = row.get(0);
                let owner_pid = db.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
                if owner_pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")).await;
                }
            }
            for row in
                c.query("SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'shuzhu\\_test\\_%'", &[]).await.unwrap()
            {
                let role: String = row.get(0);
                let owner_pid = role.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
                if owner_pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                    let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\"")).await;
                }
            }
            c.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
        });
        let drop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; psql -q '{url}' -c 'DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)' >/dev/null 2>&1; for r in $(psql -qtA '{url}' -c \"SELECT rolname FROM pg_roles WHERE rolname LIKE 'shuzhu\\_test\\_{pid}\\_%'\"); do psql -q '{url}' -c \"DROP ROLE IF EXISTS $r\" >/dev/null 2>&1; done",
            url = server.url("postgres"),
        );
        let _ = std::process::Command::new("sh").args(["-c", &drop]).stdin(std::process::Stdio::null()).spawn();
        PgDb { name }
    }
}

/// A random u32 from the system's random source.
pub(crate) fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    u32::from_le_bytes(b)
}
