//! A node that is down makes the answer partial: coverage names it, and the rows it could have
//! contributed to carry no number.

use shuzhu::federation;

use crate::util::request;

/// A small federation of two court nodes prepared under `dir`, a runtime to start it on, and the
/// analyst's token.
fn small_federation(
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
