//! Connections cannot be held forever: a TLS connection that sends nothing is closed after the
//! first-request timeout, and connections beyond the per-address cap are refused at accept.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::util::{fx, own_gateway};

/// A TLS client that trusts the federation CA and speaks h2 (it will not send anything).
fn connector() -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in shuzhu_net::load_certs(&fx().prepared.pki.ca_cert).unwrap() {
        roots.add(c).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Opens a TLS connection to `url` and completes the handshake; sends nothing.
async fn silent(url: &str) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let addr = url.trim_start_matches("https://");
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(shuzhu_net::party_dns_name(
        shuzhu_net::Role::Gateway,
        shuzhu::federation::DEMO_GATEWAY,
    ))
    .unwrap();
    let mut tls = connector().connect(name, tcp).await?;
    // The server speaks first at the HTTP/2 level (its SETTINGS); a refused connection is closed.
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "closed")),
        _ => Ok(tls),
    }
}

/// Reads until the server closes the connection; false if it is still open after `within`.
async fn closed_within(tls: &mut tokio_rustls::client::TlsStream<TcpStream>, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[test]
fn a_tls_connection_that_sends_nothing_is_closed_after_the_first_request_timeout() {
    let (url, _state, stop) = own_gateway("silent", "", "[server]\nfirst_request_timeout_ms = 300\n");
    fx().rt.block_on(async {
        let mut tls = silent(&url).await.unwrap();
        // The generous bound only keeps a broken build from hanging; the timeout is 300 ms.
        assert!(closed_within(&mut tls, Duration::from_secs(30)).await, "a silent connection must be closed");
        // A client that asks is answered (positive control: the limits do not refuse honest use).
        let ch = shuzhu::client::connect(&url, &fx().prepared.pki.ca_cert).await.unwrap();
        let mut c = shuzhu_proto::v1::gateway_client::GatewayClient::new(ch);
        let req = shuzhu::client::authorized(shuzhu_proto::v1::ListIndicatorsRequest {}, &fx().token("requester"));
        c.list_indicators(req.unwrap()).await.unwrap();
    });
    let _ = stop.send(());
}

#[test]
fn connections_beyond_the_per_address_cap_are_refused_and_a_freed_place_is_reused() {
    let (url, _state, stop) =
        own_gateway("capped", "", "[server]\nmax_connections_per_peer = 3\nmax_connections = 8\n");
    fx().rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(silent(&url).await.expect("within the cap"));
        }
        assert!(silent(&url).await.is_err(), "a fourth connection from one address must be refused");
        drop(held.pop());
        // The server frees the place once it sees the close; retry until then (bounded).
        let mut reopened = false;
        for _ in 0..100 {
            if silent(&url).await.is_ok() {
                reopened = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(reopened, "a place freed by a closed connection is given to the next");
    });
    let _ = stop.send(());
}

/// Established server-side connections of the gateway listening on `port` (from /proc/net/tcp).
fn established_to(port: u16) -> usize {
    let hex = format!(":{port:04X}");
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&hex) && f[3] == "01"
        })
        .count()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Figures for the report (run once by hand: `cargo test --test integration limits::figures -- --ignored
/// --nocapture`): open descriptors with 2 000 idle TLS connections before and after their timeout.
#[test]
#[ignore]
fn figures_fds_with_2000_idle_connections() {
    let (url, _state, stop) = own_gateway(
        "fds",
        "",
        "[server]\nfirst_request_timeout_ms = 5000\nmax_connections_per_peer = 4000\nmax_connections = 4000\n",
    );
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    fx().rt.block_on(async {
        let before = (open_fds(), established_to(port));
        let mut held = Vec::new();
        for _ in 0..2000 {
            held.push(silent(&url).await.unwrap());
        }
        let open = (open_fds(), established_to(port));
        tokio::time::sleep(Duration::from_secs(8)).await;
        let after = (open_fds(), established_to(port));
        println!(
            "fds (process, gateway-side sockets): before {before:?}, 2000 idle open {open:?}, after the 5 s timeout {after:?}"
        );
        drop(held);
    });
    let _ = stop.send(());
}
