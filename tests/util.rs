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
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,h2=info,hyper=info,tower=info,rustls=info"))
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
