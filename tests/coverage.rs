//! A node that is down makes the answer partial: coverage names it, and the rows it could have
//! contributed to carry no number.

use shuzhu::federation;
use shuzhu_proto::v1 as pb;

use crate::util::request;

/// A small federation of two court nodes prepared under `dir`, a runtime to start it on, and the
/// analyst's token.
pub(crate) fn small_federation(
    dir: &std::path::Path,
    cases: usize,
    seed: u64,
) -> (federation::Prepared, tokio::runtime::Runtime, String) {
    let data = dir.join("data");
    let cfg = shuzhu_gen::GenConfig { courts: 2, cases_per_court: cases, seed, ..Default::default() };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let specs: Vec<_> =
        federation::discover(&data).unwrap().into_iter().filter(|s| s.id.starts_with("court-")).collect();
    let prepared = federation::prepare(&dir.join("fed"), &specs, &mut |_| {}).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let token = shuzhu::client::read_token(&prepared.tokens["requester"]).unwrap();
    (prepared, rt, token)
}

#[test]
fn a_missing_node_marks_its_rows_partial_and_coverage_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let (prepared, rt, token) = small_federation(dir.path(), 800, 11);
    rt.block_on(async {
        let mut running = federation::start(&prepared).await.unwrap();
        let ask = |url: String| {
            let ca = prepared.pki.ca_cert.clone();
            let token = token.clone();
            async move {
                let ch = shuzhu::client::connect(&url, &ca).await.unwrap();
                shuzhu::client::query(ch, &token, request("filed", &["region", "year"], 202301, 202412, "诉源治理"))
                    .await
            }
        };
        let full = ask(running.gateway_url.clone()).await.unwrap();
        assert!(full.rows.iter().all(|r| r.status != "partial"));
        let stopped = running.nodes[1].id.clone();
        let stopped_regions = running.nodes[1].regions.clone();
        running.stop_node(&stopped).await;
        let part = ask(running.gateway_url.clone()).await.unwrap();
        let cov = part.coverage.clone().unwrap();
        assert_eq!((cov.asked, cov.answered), (2, 1));
        assert_eq!(cov.missing[0].node, stopped);
        assert!(!cov.missing[0].reason.is_empty());
        // The stopped node's own region has no rows left (nobody else serves it); the other region's
        // rows are still whole and equal to the full answer.
        for r in &part.rows {
            assert!(!stopped_regions.contains(&r.group["region"]), "{r:?}");
            let same = full.rows.iter().find(|f| f.group == r.group).unwrap();
            assert_eq!(r, same);
        }
        // Grouped by year only, every row could hold the missing node's cases: all partial, no number.
        let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
        let by_year =
            shuzhu::client::query(ch, &token, request("filed", &["year"], 202301, 202412, "诉源治理")).await.unwrap();
        assert!(!by_year.rows.is_empty());
        assert!(by_year.rows.iter().all(|r| r.status == "partial" && r.value.is_none()), "{:?}", by_year.rows);
        running.shutdown().await;
    });
}

#[test]
fn the_gateway_refuses_a_node_that_presents_another_nodes_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (prepared, rt, token) = small_federation(dir.path(), 300, 5);
    rt.block_on(async {
        let running = federation::start(&prepared).await.unwrap();
        // A second gateway whose configuration sends node A's traffic to node B's address: B's
        // certificate does not name A, so A must come back missing, never with B's numbers.
        let (a, b) = (&running.nodes[0], &running.nodes[1]);
        let text = std::fs::read_to_string(&running.gateway_config).unwrap();
        let swapped = text.replace(&format!("127.0.0.1:{}", a.addr.port()), &format!("127.0.0.1:{}", b.addr.port()));
        let path = prepared.dir.join("gateway-swapped.toml");
        std::fs::write(&path, swapped.replace("ledger_dir = \"ledger\"", "ledger_dir = \"ledger-swapped\"")).unwrap();
        let config = shuzhu_gateway::config::GatewayConfig::load(&path).unwrap();
        let state = std::sync::Arc::new(shuzhu_gateway::state::GatewayState::open(&config).unwrap());
        let tls = shuzhu_net::tls_server(&config.tls.cert, &config.tls.key).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(shuzhu_gateway::service::serve(state, tls, listener, async {
            let _ = rx.await;
        }));
        let ch = shuzhu::client::connect(&url, &prepared.pki.ca_cert).await.unwrap();
        let resp =
            shuzhu::client::query(ch, &token, request("filed", &["region"], 202301, 202412, "诉源治理")).await.unwrap();
        let cov = resp.coverage.unwrap();
        assert_eq!((cov.asked, cov.answered), (2, 1));
        assert_eq!(cov.missing[0].node, a.id);
        assert!(resp.rows.iter().all(|r| b.regions.contains(&r.group["region"])), "only B's own region is answered");
        let _ = stop.send(());
        let _ = server.await;
        running.shutdown().await;
    });
}

/// A compromised node: it holds node A's certificate, asks the real node A (with the gateway's
/// certificate) and then lies about the answer, as `mode` says: 1 inflates the contributors of every
/// count, 2 relabels every group as a region A does not serve.
struct LyingNode {
    real: tonic::transport::Channel,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    foreign_region: String,
}

#[tonic::async_trait]
impl pb::node_server::Node for LyingNode {
    async fn describe(
        &self,
        req: tonic::Request<pb::DescribeRequest>,
    ) -> Result<tonic::Response<pb::DescribeResponse>, tonic::Status> {
        pb::node_client::NodeClient::new(self.real.clone()).describe(req.into_inner()).await
    }

    async fn aggregate(
        &self,
        req: tonic::Request<pb::AggregateRequest>,
    ) -> Result<tonic::Response<pb::AggregateResponse>, tonic::Status> {
        let mut a = pb::node_client::NodeClient::new(self.real.clone()).aggregate(req.into_inner()).await?.into_inner();
        let region_pos = 0; // the test groups by region only
        for g in &mut a.groups {
            match self.mode.load(std::sync::atomic::Ordering::SeqCst) {
                1 => g.measures.iter_mut().for_each(|m| m.contributors = m.value as u64 + 5),
                2 => g.key[region_pos] = self.foreign_region.clone(),
                _ => {}
            }
        }
        Ok(tonic::Response::new(a))
    }
}

#[test]
fn a_node_whose_counts_or_scope_are_false_is_missing_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (prepared, rt, token) = small_federation(dir.path(), 300, 9);
    rt.block_on(async {
        let running = federation::start(&prepared).await.unwrap();
        let (a, b) = (&running.nodes[0], &running.nodes[1]);
        // The liar listens with A's certificate and forwards to the real A as the gateway would.
        let (gw_cert, gw_key) = prepared.pki.party(shuzhu_net::Role::Gateway, federation::DEMO_GATEWAY);
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(&prepared.pki.ca_cert).unwrap()))
            .identity(tonic::transport::Identity::from_pem(
                std::fs::read(&gw_cert).unwrap(),
                std::fs::read(&gw_key).unwrap(),
            ))
            .domain_name(shuzhu_net::party_dns_name(shuzhu_net::Role::Node, &a.id));
        let real = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{}", a.addr.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_lazy();
        let mode = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
        let liar = LyingNode { real, mode: std::sync::Arc::clone(&mode), foreign_region: b.regions[0].clone() };
        let (a_cert, a_key) = prepared.pki.party(shuzhu_net::Role::Node, &a.id);
        let server_tls = shuzhu_net::mutual_tls_server(&prepared.pki.ca_cert, &a_cert, &a_key).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let liar_port = listener.local_addr().unwrap().port();
        let incoming = shuzhu_net::tls_incoming(listener, server_tls, std::time::Duration::from_secs(10));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::node_server::NodeServer::new(liar))
                .serve_with_incoming(incoming),
        );
        // A gateway whose node A is the liar.
        let text = std::fs::read_to_string(&running.gateway_config).unwrap();
        let text = text.replace(&format!("127.0.0.1:{}", a.addr.port()), &format!("127.0.0.1:{liar_port}"));
        let path = prepared.dir.join("gateway-liar.toml");
        std::fs::write(&path, text.replace("ledger_dir = \"ledger\"", "ledger_dir = \"ledger-liar\"")).unwrap();
        let config = shuzhu_gateway::config::GatewayConfig::load(&path).unwrap();
        let state = std::sync::Arc::new(shuzhu_gateway::state::GatewayState::open(&config).unwrap());
        let tls = shuzhu_net::tls_server(&config.tls.cert, &config.tls.key).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(shuzhu_gateway::service::serve(state, tls, listener, async {
            let _ = rx.await;
        }));
        let ask = || async {
            let ch = shuzhu::client::connect(&url, &prepared.pki.ca_cert).await.unwrap();
            shuzhu::client::query(ch, &token, request("filed", &["region"], 202301, 202412, "诉源治理")).await.unwrap()
        };
        // Honest, the liar is A and A's rows are there (positive control).
        let honest = ask().await;
        assert_eq!(honest.coverage.unwrap().answered, 2);
        for (m, why) in [(1u8, "contributor"), (2, "does not serve")] {
            mode.store(m, std::sync::atomic::Ordering::SeqCst);
            let resp = ask().await;
            let cov = resp.coverage.unwrap();
            assert_eq!((cov.asked, cov.answered), (2, 1), "mode {m}");
            assert_eq!(cov.missing[0].node, a.id);
            assert!(cov.missing[0].reason.contains(why), "mode {m}: {}", cov.missing[0].reason);
            assert!(resp.rows.iter().all(|r| !a.regions.contains(&r.group["region"])), "none of A's numbers");
            for r in &resp.rows {
                let same = honest.rows.iter().find(|h| h.group == r.group).unwrap();
                assert_eq!(r.value, same.value, "B's rows are unchanged by A's lie");
            }
        }
        let _ = stop.send(());
        let _ = server.await;
        running.shutdown().await;
    });
}

#[test]
fn repeated_filters_merged_past_the_node_limit_are_invalid_argument() {
    let letters: Vec<char> = ('a'..='z').collect();
    let causes: Vec<String> = (0..80).map(|i| format!("纠纷{}{}", letters[i / 26], letters[i % 26])).collect();
    let mut req = request("filed", &["year"], 202401, 202412, "诉源治理");
    req.filters = vec![
        pb::DimensionFilter { dimension: "cause".into(), values: causes[..40].to_vec() },
        pb::DimensionFilter { dimension: "cause".into(), values: causes[40..].to_vec() },
    ];
    let err = crate::util::fx().query(&crate::util::fx().token("requester"), req.clone()).unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("cause") && err.message().contains("64"), "{}", err.message());
    // The same value repeated is one value: within the limit, the query is answered.
    req.filters = vec![
        pb::DimensionFilter { dimension: "cause".into(), values: causes[..40].to_vec() },
        pb::DimensionFilter { dimension: "cause".into(), values: causes[..40].to_vec() },
    ];
    crate::util::fx().query(&crate::util::fx().token("requester"), req).unwrap();
}
