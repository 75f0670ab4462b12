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
