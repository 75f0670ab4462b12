//! Gateway throughput and fan-out benchmark (issue 6, "Gateway" and "Fan-out"): a whole federation
//! started in-process on loopback (federation CA, mutual TLS between gateway and nodes, TLS and
//! EdDSA JWTs between clients and gateway, durable audit and release ledgers), measured against a bare
//! tonic echo of the same `Gateway` service over the same TLS setup.
//!
//! `cargo bench --bench gateway -- [--phase all|throughput|fanout] [--nodes 32] [--cases 100000]
//! [--clients 64] [--secs 30] [--fanout 8,32,128,256] [--fanout-cases 5000] [--fanout-clients 16]
//! [--fanout-secs 10] [--reps 20] [--data DIR (default: $TMPDIR/shuzhu-gwbench-data)] [--mix 0,1,2,3,4,5]`
//!
//! Data are generated under `--data` once (`big/` and `fan/`) and reused by later runs; each run
//! prepares fresh federation directories (PKI, import) beside them. Every request loop is bounded in
//! time and count and stops by itself. Only loopback addresses are used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use shuzhu::federation::{self, NodeSpec, Prepared, Running};
use shuzhu_proto::v1 as pb;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Upper bound on queries one client sends in one run (the loops stop on time first in practice).
const MAX_QUERIES_PER_CLIENT: u64 = 1_000_000;

/// Command-line settings.
#[derive(Clone, Debug)]
struct Args {
    phase: String,
    nodes: usize,
    cases: usize,
    clients: usize,
    secs: u64,
    fanout: Vec<usize>,
    fanout_cases: usize,
    fanout_clients: usize,
    fanout_secs: u64,
    reps: usize,
    data: PathBuf,
    /// Indices into [`MIX`] the load runs cycle through (all by default).
    mix: Vec<usize>,
}

impl Args {
    fn parse() -> Result<Self> {
        let mut a = Args {
            phase: "all".into(),
            nodes: 32,
            cases: 100_000,
            clients: 64,
            secs: 30,
            fanout: vec![8, 32, 128, 256],
            fanout_cases: 5_000,
            fanout_clients: 16,
            fanout_secs: 10,
            reps: 20,
            data: std::env::temp_dir().join("shuzhu-gwbench-data"),
            mix: (0..MIX.len()).collect(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--bench" {
                continue;
            }
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--phase" => a.phase = value,
                "--nodes" => a.nodes = value.parse()?,
                "--cases" => a.cases = value.parse()?,
                "--clients" => a.clients = value.parse()?,
                "--secs" => a.secs = value.parse()?,
                "--fanout" => a.fanout = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
                "--fanout-cases" => a.fanout_cases = value.parse()?,
                "--fanout-clients" => a.fanout_clients = value.parse()?,
                "--fanout-secs" => a.fanout_secs = value.parse()?,
                "--reps" => a.reps = value.parse()?,
                "--data" => a.data = PathBuf::from(value),
                "--mix" => a.mix = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
                other => bail!("unknown flag {other}"),
            }
        }
        if a.mix.is_empty() || a.mix.iter().any(|&i| i >= MIX.len()) {
            bail!("--mix takes indices 0..{} of the query mix", MIX.len() - 1);
        }
        if !["all", "throughput", "fanout"].contains(&a.phase.as_str()) {
            bail!("--phase must be all, throughput or fanout");
        }
        Ok(a)
    }
}

/// One query of the mix: indicator, group-by, months, purpose.
struct MixQuery {
    indicator: &'static str,
    group_by: &'static [&'static str],
    from: u32,
    to: u32,
    purpose: &'static str,
}

/// A realistic mix of what an analyst agency asks.
const MIX: &[MixQuery] = &[
    MixQuery {
        indicator: "closure_rate",
        group_by: &["region", "year"],
        from: 201901,
        to: 202412,
        purpose: "诉源治理",
    },
    MixQuery { indicator: "on_time_rate", group_by: &["cause"], from: 202401, to: 202412, purpose: "司法统计" },
    MixQuery {
        indicator: "avg_trial_days",
        group_by: &["region", "quarter"],
        from: 202401,
        to: 202412,
        purpose: "司法统计",
    },
    MixQuery { indicator: "filed", group_by: &["year"], from: 201901, to: 202412, purpose: "诉源治理" },
    MixQuery {
        indicator: "mediation_withdrawal_rate",
        group_by: &["region", "year"],
        from: 202301,
        to: 202412,
        purpose: "诉源治理",
    },
    MixQuery {
        indicator: "closed",
        group_by: &["type_code", "quarter"],
        from: 202401,
        to: 202412,
        purpose: "司法统计",
    },
];

impl MixQuery {
    fn request(&self) -> pb::QueryRequest {
        pb::QueryRequest {
            indicator: self.indicator.into(),
            group_by: self.group_by.iter().map(|d| d.to_string()).collect(),
            period: Some(pb::Period { from_month: self.from, to_month: self.to }),
            filters: vec![],
            purpose: self.purpose.into(),
            legal_basis: String::new(),
        }
    }

    fn label(&self) -> String {
        format!("{} by {}", self.indicator, self.group_by.join("×"))
    }
}

/// The bare baseline: the `Gateway` service answering every query with an empty answer, no token
/// check, no node, no ledger.
struct Echo;

#[tonic::async_trait]
impl pb::gateway_server::Gateway for Echo {
    async fn query(&self, req: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let q = req.into_inner();
        Ok(Response::new(pb::QueryResponse { indicator: q.indicator, ..Default::default() }))
    }

    async fn list_indicators(
        &self,
        _req: Request<pb::ListIndicatorsRequest>,
    ) -> Result<Response<pb::ListIndicatorsResponse>, Status> {
        Ok(Response::new(pb::ListIndicatorsResponse::default()))
    }
}

/// Starts the echo with the gateway's certificate on loopback; returns its URL and a stopper.
async fn start_echo(prepared: &Prepared) -> Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let (cert, key) = prepared.pki.party(shuzhu_net::Role::Gateway, federation::DEMO_GATEWAY);
    let tls = shuzhu_net::tls_server(&cert, &key)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let incoming = shuzhu_net::tls_incoming(listener, tls, Duration::from_secs(10));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .timeout(Duration::from_secs(60))
            .add_service(pb::gateway_server::GatewayServer::new(Echo))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            eprintln!("echo server stopped: {e}");
        }
    });
    Ok((format!("https://127.0.0.1:{port}"), stop))
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 120 s at 3 significant digits: fixed, valid bounds.
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// What a load run measured.
struct Load {
    ok: u64,
    errors: BTreeMap<String, u64>,
    elapsed: Duration,
    hist: Histogram<u64>,
}

impl Load {
    fn qps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    fn line(&self) -> String {
        format!(
            "{:>9.1} q/s  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  ({} ok, errors {:?})",
            self.qps(),
            self.ms(0.5),
            self.ms(0.99),
            self.hist.max() as f64 / 1000.0,
            self.ok,
            self.errors
        )
    }
}

/// `clients` clients, each on its own TLS connection, cycling through the mix for `secs` seconds.
async fn load(url: &str, ca: &Path, token: &str, clients: usize, secs: u64, mix: &[usize]) -> Result<Load> {
    let mut channels = Vec::with_capacity(clients);
    for _ in 0..clients {
        channels.push(shuzhu::client::connect(url, ca).await?);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::with_capacity(clients);
    for (c, channel) in channels.into_iter().enumerate() {
        let token = token.to_string();
        let mix = mix.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut ok = 0u64;
            let mut i = c;
            while Instant::now() < deadline && ok + errors.values().sum::<u64>() < MAX_QUERIES_PER_CLIENT {
                let req = MIX[mix[i % mix.len()]].request();
                i += 1;
                let t = Instant::now();
                match shuzhu::client::query(channel.clone(), &token, req).await {
                    Ok(_) => {
                        ok += 1;
                        let _ = hist.record(t.elapsed().as_micros() as u64);
                    }
                    Err(s) => *errors.entry(format!("{:?}", s.code())).or_default() += 1,
                }
            }
            (ok, errors, hist)
        }));
    }
    let mut total = Load { ok: 0, errors: BTreeMap::new(), elapsed: Duration::ZERO, hist: histogram() };
    for t in tasks {
        let (ok, errors, hist) = t.await?;
        total.ok += ok;
        for (k, v) in errors {
            *total.errors.entry(k).or_default() += v;
        }
        total.hist.add(&hist)?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn node_request(running: &Running, q: &MixQuery) -> Result<pb::AggregateRequest> {
    let ind = shuzhu_policy::indicator::indicator(q.indicator).with_context(|| format!("{} unknown", q.indicator))?;
    let policy = running.gateway.current_policy();
    Ok(pb::AggregateRequest {
        request_id: "bench".into(),
        dataset: ind.dataset.into(),
        measures: ind.measures().iter().map(|m| pb::MeasureRequest { id: (*m).into() }).collect(),
        group_by: q.group_by.iter().map(|d| d.to_string()).collect(),
        period: Some(pb::Period { from_month: q.from, to_month: q.to }),
        filters: vec![],
        agency: federation::ANALYST_AGENCY.into(),
        purpose: q.purpose.into(),
        policy_version: policy.version.clone(),
        threshold: 10,
    })
}

async fn aggregate(channel: Channel, req: pb::AggregateRequest) -> Result<Duration> {
    let mut client = pb::node_client::NodeClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let t = Instant::now();
    client.aggregate(req).await.context("direct node aggregate")?;
    Ok(t.elapsed())
}

/// Gateway overhead, one idle client: per query of the mix, the end-to-end median against the
/// slowest node's own median (each node called alone, over the gateway's own mutual-TLS channel, so
/// with the gateway's client identity) and against a direct concurrent fan-out to every node.
async fn overhead(running: &Running, ca: &Path, token: &str, reps: usize) -> Result<()> {
    println!("\n## Gateway overhead (one client, {reps} repetitions per query, medians)");
    println!(
        "{:<42} {:>6} {:>10} {:>12} {:>8} {:>12} {:>8}",
        "query", "rows", "e2e ms", "slowest ms", "ratio", "fan-out ms", "ratio"
    );
    let ch = shuzhu::client::connect(&running.gateway_url, ca).await?;
    let mut ratios = Vec::new();
    for q in MIX {
        let ind = shuzhu_policy::indicator::indicator(q.indicator).context("indicator")?;
        let nodes: Vec<Channel> = running
            .gateway
            .nodes
            .iter()
            .filter(|n| n.entry.datasets.iter().any(|d| d == ind.dataset))
            .map(|n| n.channel.clone())
            .collect();
        let req = node_request(running, q)?;
        // Warm every path once.
        let answer = shuzhu::client::query(ch.clone(), token, q.request()).await;
        let rows = match &answer {
            Ok(a) => a.rows.len(),
            Err(s) => {
                println!("{:<42} refused: {}", q.label(), shuzhu::client::explain(s));
                continue;
            }
        };
        let mut e2e = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            shuzhu::client::query(ch.clone(), token, q.request()).await.map_err(|s| anyhow::anyhow!("{s}"))?;
            e2e.push(t.elapsed());
        }
        let mut slowest = Duration::ZERO;
        for n in &nodes {
            let mut own = Vec::with_capacity(reps);
            for _ in 0..reps {
                own.push(aggregate(n.clone(), req.clone()).await?);
            }
            slowest = slowest.max(median(own));
        }
        let mut fan = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            let calls: Vec<_> = nodes.iter().map(|n| tokio::spawn(aggregate(n.clone(), req.clone()))).collect();
            for c in calls {
                c.await??;
            }
            fan.push(t.elapsed());
        }
        let (e, s, f) = (median(e2e), slowest, median(fan));
        let ratio = e.as_secs_f64() / s.as_secs_f64();
        ratios.push(ratio);
        println!(
            "{:<42} {:>6} {:>10.2} {:>12.2} {:>8.2} {:>12.2} {:>8.2}",
            q.label(),
            rows,
            e.as_secs_f64() * 1e3,
            s.as_secs_f64() * 1e3,
            ratio,
            f.as_secs_f64() * 1e3,
            e.as_secs_f64() / f.as_secs_f64()
        );
    }
    if !ratios.is_empty() {
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        println!("mean overhead (e2e ÷ slowest node): {mean:.2} (target ≤ 1.5)");
    }
    Ok(())
}

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(|l| l[field.len()..].trim().to_string()))
        .unwrap_or_default()
}

fn resources() -> String {
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    format!(
        "rss {} (peak {}), threads {}, open fds {fds}",
        proc_status("VmRSS:"),
        proc_status("VmHWM:"),
        proc_status("Threads:")
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Generates `courts` courts × `cases` cases under `out` unless already there.
fn ensure_data(out: &Path, courts: usize, cases: usize) -> Result<Vec<NodeSpec>> {
    // The marker holds "COURTS CASES" of the data present; fewer courts reuse the first ones.
    let marker = out.join(".generated");
    let have = std::fs::read_to_string(&marker).unwrap_or_default();
    let mut fields = have.split_whitespace().map(|f| f.parse::<usize>().unwrap_or(0));
    let (have_courts, have_cases) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
    if have_cases != cases || have_courts < courts {
        let t = Instant::now();
        let cfg = shuzhu_gen::GenConfig { courts, cases_per_court: cases, ..Default::default() };
        shuzhu_gen::generate(out, &cfg)?;
        std::fs::write(&marker, format!("{courts} {cases}"))?;
        println!("generated {courts} courts × {cases} cases in {:.1} s", t.elapsed().as_secs_f64());
    }
    let specs: Vec<NodeSpec> =
        federation::discover(out)?.into_iter().filter(|s| s.id.starts_with("court-")).take(courts).collect();
    if specs.len() < courts {
        bail!("{} holds {} courts, {courts} needed", out.display(), specs.len());
    }
    Ok(specs)
}

fn prepare(dir: &Path, specs: &[NodeSpec]) -> Result<Prepared> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let t = Instant::now();
    let prepared = federation::prepare(dir, specs, &mut |_| {})?;
    let rows: u64 = prepared.imports.iter().map(|(_, r)| r.imported).sum();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "prepared {} nodes (PKI, configs, import of {rows} rows) in {secs:.1} s ({:.0} rows/s)",
        specs.len(),
        rows as f64 / secs
    );
    Ok(prepared)
}

async fn throughput(a: &Args) -> Result<()> {
    println!("\n# Throughput: {} nodes × {} cases, {} clients, {} s", a.nodes, a.cases, a.clients, a.secs);
    let specs = ensure_data(&a.data.join("big"), a.nodes, a.cases)?;
    let prepared = tokio::task::block_in_place(|| prepare(&a.data.join("fed-big"), &specs))?;
    let t = Instant::now();
    let running = federation::start(&prepared).await?;
    println!("started in {:.1} s; {}", t.elapsed().as_secs_f64(), resources());
    let ca = prepared.pki.ca_cert.clone();
    let token = shuzhu::client::read_token(&prepared.tokens["requester"])?;

    overhead(&running, &ca, &token, a.reps).await?;

    let labels: Vec<String> = a.mix.iter().map(|&i| MIX[i].label()).collect();
    println!(
        "\n## Load ({} clients, {} s each, identical queries repeated from: {})",
        a.clients,
        a.secs,
        labels.join("; ")
    );
    println!("load average before gateway run: {}", loadavg());
    let gw = load(&running.gateway_url, &ca, &token, a.clients, a.secs, &a.mix).await?;
    println!("gateway: {}", gw.line());
    println!("load average after: {}; {}", loadavg(), resources());
    let (echo_url, echo_stop) = start_echo(&prepared).await?;
    let echo = load(&echo_url, &ca, &token, a.clients, a.secs, &a.mix).await?;
    let _ = echo_stop.send(());
    println!("echo:    {}", echo.line());
    println!("load average after: {}", loadavg());
    println!(
        "ratios: gateway q/s ÷ echo q/s = {:.4}; p50 gateway ÷ echo = {:.1}; p99 gateway ÷ echo = {:.1}",
        gw.qps() / echo.qps(),
        gw.ms(0.5) / echo.ms(0.5),
        gw.ms(0.99) / echo.ms(0.99)
    );
    println!("target ≥ 2000 q/s: {}", if gw.qps() >= 2000.0 { "met" } else { "NOT met" });
    running.shutdown().await;
    Ok(())
}

async fn fanout(a: &Args) -> Result<()> {
    let max = a.fanout.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return Ok(());
    }
    println!("\n# Fan-out: {:?} nodes × {} cases", a.fanout, a.fanout_cases);
    let specs = ensure_data(&a.data.join("fan"), max, a.fanout_cases)?;
    let prepared = tokio::task::block_in_place(|| prepare(&a.data.join("fed-fan"), &specs))?;
    let ca = prepared.pki.ca_cert.clone();
    let token = shuzhu::client::read_token(&prepared.tokens["requester"])?;
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10}  resources",
        "nodes", "1c q/s", "1c p50 ms", "1c p99 ms", "Nc q/s", "Nc p50 ms", "Nc p99 ms"
    );
    for &n in &a.fanout {
        let mut subset = prepared.clone();
        subset.nodes.truncate(n);
        // Each size starts with an empty audit and release ledger: the release ledger is keyed by
        // cells, and a different node set changes the counts behind the same cells.
        let _ = std::fs::remove_dir_all(prepared.dir.join("ledger"));
        let running = federation::start(&subset).await?;
        let one = load(&running.gateway_url, &ca, &token, 1, a.fanout_secs, &a.mix).await?;
        let many = load(&running.gateway_url, &ca, &token, a.fanout_clients, a.fanout_secs, &a.mix).await?;
        println!(
            "{:>6} {:>10.1} {:>10.2} {:>10.2} {:>12.1} {:>10.2} {:>10.2}  {}; load {}; errors {:?}/{:?}",
            n,
            one.qps(),
            one.ms(0.5),
            one.ms(0.99),
            many.qps(),
            many.ms(0.5),
            many.ms(0.99),
            resources(),
            loadavg(),
            one.errors,
            many.errors
        );
        running.shutdown().await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse()?;
    std::fs::create_dir_all(&a.data)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("gateway bench: {a:?}; {cores} cores; load average {}", loadavg());
    if a.phase != "fanout" {
        throughput(&a).await?;
    }
    if a.phase != "throughput" {
        fanout(&a).await?;
    }
    Ok(())
}
