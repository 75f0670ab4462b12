//! A node answers only the configured gateway over mutual TLS: no certificate, a certificate from
//! another CA (even one naming the right gateway), or a node's own certificate gets no answer.

use std::path::Path;

use shuzhu::pki;
use shuzhu_net::Role;
use shuzhu_proto::v1 as pb;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::util::fx;

fn aggregate_request() -> pb::AggregateRequest {
    pb::AggregateRequest {
        request_id: "mtls-test".into(),
        dataset: "cases".into(),
        measures: vec![pb::MeasureRequest { id: "cases.filed".into() }],
        group_by: vec!["year".into()],
        period: Some(pb::Period { from_month: 202001, to_month: 202412 }),
        filters: vec![],
        agency: "xm-sfj".into(),
        purpose: "诉源治理".into(),
        policy_version: String::new(),
        threshold: 10,
    }
}

fn call(identity: Option<(&Path, &Path)>, ca: &Path) -> Result<pb::AggregateResponse, String> {
    let node = &fx().running.nodes.iter().find(|n| n.id.starts_with("court-")).unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name(shuzhu_net::party_dns_name(Role::Node, &node.id));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()));
    }
    fx().rt.block_on(async {
        let ch: Channel = Endpoint::from_shared(format!("https://{}", node.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut c = pb::node_client::NodeClient::new(ch);
        c.aggregate(aggregate_request())
            .await
            .map(|r| r.into_inner())
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    })
}

#[test]
fn the_configured_gateway_gets_an_answer() {
    let p = &fx().prepared.pki;
    let (cert, key) = p.party(Role::Gateway, shuzhu::federation::DEMO_GATEWAY);
    let r = call(Some((&cert, &key)), &p.ca_cert).expect("the gateway's own certificate must work (positive control)");
    assert!(!r.groups.is_empty());
    assert_eq!(r.release_digest.len(), 64);
    // Describe: datasets, fields with grades and how they are stored, row counts, freshness.
    let node = fx().running.nodes.iter().find(|n| n.id.starts_with("court-")).unwrap();
    let d = fx().rt.block_on(async {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(&p.ca_cert).unwrap()))
            .identity(Identity::from_pem(std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap()))
            .domain_name(shuzhu_net::party_dns_name(Role::Node, &node.id));
        let ch = Endpoint::from_shared(format!("https://{}", node.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        pb::node_client::NodeClient::new(ch).describe(pb::DescribeRequest {}).await.unwrap().into_inner()
    });
    assert_eq!(d.node_id, node.id);
    let cases = &d.datasets[0];
    assert_eq!((cases.name.as_str(), cases.rows), ("cases", crate::util::CASES_PER_COURT as u64));
    assert!(cases.data_until.starts_with("2024-"));
    let field = |n: &str| cases.fields.iter().find(|f| f.name == n).unwrap();
    assert_eq!(
        (field("plaintiff_name").grade.as_str(), field("plaintiff_name").stored_as.as_str()),
        ("L4", "pseudonym")
    );
    assert_eq!(field("summary").stored_as, "scrubbed");
    assert_eq!(field("defendant_address").stored_as, "county");
    assert_eq!(field("plaintiff_phone").stored_as, "dropped");
    assert_eq!(field("region_code").grade, "L1");
}

#[test]
fn a_client_without_certificate_gets_nothing() {
    let err = call(None, &fx().prepared.pki.ca_cert).unwrap_err();
    assert!(!err.contains("Ok"), "{err}");
}

#[test]
fn a_node_certificate_is_not_a_gateway() {
    let p = &fx().prepared.pki;
    let other = fx().court_ids().last().unwrap().clone();
    let (cert, key) = p.party(Role::Node, &other);
    let err = call(Some((&cert, &key)), &p.ca_cert).unwrap_err();
    assert!(err.starts_with("PermissionDenied"), "{err}");
    assert!(err.contains("not a gateway"), "{err}");
}

#[test]
fn a_certificate_from_another_ca_is_refused_even_with_the_right_name() {
    let dir = tempfile::tempdir().unwrap();
    let rogue = pki::init(dir.path(), shuzhu::federation::DEMO_GATEWAY, &[], false).unwrap();
    let (cert, key) = rogue.party(Role::Gateway, shuzhu::federation::DEMO_GATEWAY);
    let err = call(Some((&cert, &key)), &fx().prepared.pki.ca_cert).unwrap_err();
    assert!(!err.is_empty());
}

#[test]
fn a_node_or_gateway_started_with_another_partys_certificate_is_refused_with_both_names() {
    let p = &fx().prepared.pki;
    let courts = fx().court_ids();
    let (me, other) = (&courts[0], &courts[1]);
    // A copy of a court's config (beside it, so relative paths resolve the same) naming another court's
    // certificate and key: refused before anything is opened.
    let config = &fx().prepared.nodes.iter().find(|(id, _)| id == me).unwrap().1;
    let (cert, key) = p.party(Role::Node, other);
    let (my_cert, my_key) = p.party(Role::Node, me);
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace(&format!("{:?}", my_cert.display().to_string()), &format!("{:?}", cert.display().to_string()))
        .replace(&format!("{:?}", my_key.display().to_string()), &format!("{:?}", key.display().to_string()));
    let wrong = config.with_file_name("node-wrong-cert.toml");
    std::fs::write(&wrong, text).unwrap();
    let loaded = shuzhu_node::config::NodeConfig::load(&wrong).unwrap();
    let err = match shuzhu_node::service::NodeState::open(&loaded) {
        Ok(_) => panic!("a node started with another node's certificate"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("shuzhu://node/{other}")) && err.contains(&format!("shuzhu://node/{me}")), "{err}");
    // The gateway, given a node's certificate.
    let gw = &fx().running.gateway_config;
    let (gw_cert, gw_key) = p.party(Role::Gateway, shuzhu::federation::DEMO_GATEWAY);
    let text = std::fs::read_to_string(gw)
        .unwrap()
        .replace(&format!("{:?}", gw_cert.display().to_string()), &format!("{:?}", my_cert.display().to_string()))
        .replace(&format!("{:?}", gw_key.display().to_string()), &format!("{:?}", my_key.display().to_string()));
    let wrong = gw.with_file_name("gateway-wrong-cert.toml");
    std::fs::write(&wrong, text).unwrap();
    let loaded = shuzhu_gateway::config::GatewayConfig::load(&wrong).unwrap();
    let err = match fx().rt.block_on(async { shuzhu_gateway::state::GatewayState::open(&loaded) }) {
        Ok(_) => panic!("a gateway started with a node's certificate"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("shuzhu://gateway/{}", shuzhu::federation::DEMO_GATEWAY))
            && err.contains(&format!("shuzhu://node/{me}")),
        "{err}"
    );
}

fn shuzhu_cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// Whether the certificate in `cert` verifies against the CA in `ca` for node `id`, `days` from now.
fn valid_in(ca: &Path, cert: &Path, id: &str, days: u64) -> Result<(), rustls::Error> {
    use rustls::client::danger::ServerCertVerifier;
    let mut roots = rustls::RootCertStore::empty();
    for c in shuzhu_net::load_certs(ca).unwrap() {
        roots.add(c).unwrap();
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let leaf = shuzhu_net::load_certs(cert).unwrap().remove(0);
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86_400);
    let name = rustls::pki_types::ServerName::try_from(shuzhu_net::party_dns_name(Role::Node, id)).unwrap();
    verifier
        .verify_server_cert(
            &leaf,
            &[],
            &name,
            &[],
            rustls::pki_types::UnixTime::since_unix_epoch(now.duration_since(std::time::UNIX_EPOCH).unwrap()),
        )
        .map(|_| ())
}

#[test]
fn renewing_a_node_certificate_keeps_its_receipt_key_unless_asked_and_certificates_expire() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let layout = pki::init(dir.path(), "gw-1", &["court-1".to_string()], false).unwrap();
    let (_, public) = layout.journal_key("court-1");
    let (cert, _) = layout.party(Role::Node, "court-1");
    let receipt_key = std::fs::read(&public).unwrap();
    let first_cert = std::fs::read(&cert).unwrap();
    let (code, out) = shuzhu_cli(&["pki", "issue", "--dir", d, "--role", "node", "--id", "court-1"]);
    assert_eq!(code, 0, "{out}");
    assert_ne!(std::fs::read(&cert).unwrap(), first_cert, "a new certificate");
    assert_eq!(std::fs::read(&public).unwrap(), receipt_key, "renewing the certificate kept the receipt key: {out}");
    assert!(out.contains("receipt key kept"), "{out}");
    // Two years by default.
    valid_in(&layout.ca_cert, &cert, "court-1", 0).unwrap();
    valid_in(&layout.ca_cert, &cert, "court-1", 729).unwrap();
    let expired = valid_in(&layout.ca_cert, &cert, "court-1", 731).unwrap_err();
    assert!(format!("{expired:?}").contains("Expired"), "{expired:?}");
    // Asked for, the receipt key is replaced and the output says what to give the gateway; --days.
    let (code, out) = shuzhu_cli(&[
        "pki",
        "issue",
        "--dir",
        d,
        "--role",
        "node",
        "--id",
        "court-1",
        "--days",
        "30",
        "--rotate-receipt-key",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_ne!(std::fs::read(&public).unwrap(), receipt_key);
    assert!(out.contains("new receipt key") && out.contains("serial "), "{out}");
    valid_in(&layout.ca_cert, &cert, "court-1", 29).unwrap();
    assert!(valid_in(&layout.ca_cert, &cert, "court-1", 31).is_err());
}

#[test]
fn a_node_whose_certificate_serial_is_denied_is_missing_with_the_reason() {
    let f = fx();
    let revoked = f.court_ids()[0].clone();
    let (cert, _) = f.prepared.pki.party(Role::Node, &revoked);
    let serial = shuzhu_net::certificate_serial(&shuzhu_net::load_certs(&cert).unwrap()[0]).unwrap();
    let (url, _state, stop) = crate::util::own_gateway("denied", &format!("deny_serials = [\"{serial}\"]"), "");
    let answer = f.rt.block_on(async {
        let ch = shuzhu::client::connect(&url, &f.prepared.pki.ca_cert).await.unwrap();
        let req = crate::util::request("filed", &["region"], 202301, 202312, "司法统计");
        shuzhu::client::query(ch, &f.token("requester"), req).await
    });
    let _ = stop.send(());
    let answer = answer.expect("the other nodes still answer");
    let cov = answer.coverage.unwrap();
    assert_eq!(cov.answered + 1, cov.asked, "{cov:?}");
    let missing: Vec<&pb::MissingNode> = cov.missing.iter().collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].node, revoked);
    let reason = &missing[0].reason;
    assert!(reason.contains("deny_serials") && reason.contains(&serial), "the reason says why: {reason}");
}

#[test]
fn a_node_refuses_a_gateway_whose_certificate_serial_it_denies() {
    let dir = tempfile::tempdir().unwrap();
    let (prepared, rt, token) = crate::coverage::small_federation(dir.path(), 300, 17);
    let (gateway_cert, _) = prepared.pki.party(Role::Gateway, shuzhu::federation::DEMO_GATEWAY);
    let serial = shuzhu_net::certificate_serial(&shuzhu_net::load_certs(&gateway_cert).unwrap()[0]).unwrap();
    // The first node denies the gateway's certificate (a top-level key goes before every table).
    let (denying, config) = prepared.nodes.first().unwrap().clone();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("deny_serials = [\"{}\"]\n{text}", serial.to_uppercase())).unwrap();
    rt.block_on(async {
        let running = shuzhu::federation::start(&prepared).await.unwrap();
        let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
        let req = crate::util::request("filed", &["region"], 202301, 202412, "诉源治理");
        let resp = shuzhu::client::query(ch, &token, req).await.unwrap();
        let cov = resp.coverage.unwrap();
        assert_eq!((cov.asked, cov.answered), (2, 1), "{cov:?}");
        assert_eq!(cov.missing[0].node, denying);
        running.shutdown().await;
    });
}
