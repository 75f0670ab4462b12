//! Transport shared by the Shuzhu node and gateway: PEM loading, rustls server configurations (TLS 1.3
//! only, ring provider), a TLS listener that feeds tonic, and the identity check on federation
//! certificates.
//!
//! Identities: the federation CA issues every party a certificate whose SAN names it twice, as the URI
//! `shuzhu://<role>/<id>` (for people reading the certificate) and as the DNS name
//! `<id>.<role>.shuzhu` (which webpki can verify). A node checks that its caller's certificate is valid
//! for `<gateway-id>.gateway.shuzhu`; the gateway connects to a node expecting `<node-id>.node.shuzhu`.
//!
//! Depends on no other Shuzhu crate.

pub mod admin;
pub mod config;
pub mod reload;
pub mod secret;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::{io, path::Path, sync::Arc, time::Duration};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        what: &'static str,
    },
    /// rustls refused the configuration (e.g. key does not match certificate).
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
    /// A party's own certificate names another party (or none): started with someone else's files.
    #[error(
        "certificate {path} names {found}, but this {role} is configured as {configured}: it is another party's certificate (use the one issued for {configured}, e.g. `shuzhu pki issue --role {role} --id {configured}`)"
    )]
    WrongIdentity {
        /// The certificate file.
        path: String,
        /// `node` or `gateway`.
        role: &'static str,
        /// The configured id, as its certificate name `shuzhu://<role>/<id>`.
        configured: String,
        /// The party names the certificate carries (`shuzhu://…` URIs and `….shuzhu` DNS names), or
        /// `no shuzhu party`.
        found: String,
    },
}

/// The two kinds of party in a federation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A gateway.
    Gateway,
    /// A node.
    Node,
}

impl Role {
    /// `gateway` or `node`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Node => "node",
        }
    }
}

/// The DNS name a party's certificate carries: `<id>.<role>.shuzhu`.
pub fn party_dns_name(role: Role, id: &str) -> String {
    format!("{id}.{}.shuzhu", role.as_str())
}

/// The URI a party's certificate carries: `shuzhu://<role>/<id>`.
pub fn party_uri(role: Role, id: &str) -> String {
    format!("shuzhu://{}/{id}", role.as_str())
}

/// Whether `id` can name a party: 1–63 characters of `a-z`, `0-9` and `-`, not starting or ending with
/// `-` (it becomes a DNS label in certificates).
pub fn is_valid_party_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

/// Whether the end-entity certificate `cert` (already verified against the federation CA by the TLS
/// handshake) names party `id` of `role`.
pub fn certificate_names(cert: &CertificateDer<'_>, role: Role, id: &str) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(party_dns_name(role, id)) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}

/// The federation party names a certificate carries: its `shuzhu://` URIs and `*.shuzhu` DNS names.
pub fn certificate_party_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return Vec::new();
    };
    let mut names: Vec<String> =
        ee.valid_uri_names().filter(|u| u.starts_with("shuzhu://")).map(String::from).collect();
    names.extend(ee.valid_dns_names().filter(|d| d.ends_with(".shuzhu")).map(String::from));
    names
}

/// Checks, at start, that the party's own certificate (the first in the PEM file `cert`) names party
/// `id` of `role`: a node or gateway started with another party's certificate is refused with both
/// names, instead of running and failing every handshake.
pub fn check_own_certificate(cert: &Path, role: Role, id: &str) -> Result<(), NetError> {
    let certs = load_certs(cert)?;
    if certificate_names(&certs[0], role, id) {
        return Ok(());
    }
    let names = certificate_party_names(&certs[0]);
    Err(NetError::WrongIdentity {
        path: cert.display().to_string(),
        role: role.as_str(),
        configured: party_uri(role, id),
        found: if names.is_empty() { "no shuzhu party".into() } else { names.join(" and ") },
    })
}

/// The certificate serial number of `cert` as lowercase hex without leading zero bytes (as
/// `openssl x509 -serial` shows it, lowercased), for deny lists.
pub fn certificate_serial(cert: &CertificateDer<'_>) -> Option<String> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    let serial = ee.serial();
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len().saturating_sub(1));
    Some(serial[start..].iter().map(|b| format!("{b:02x}")).collect())
}

/// A certificate serial as deny lists compare it: lowercase hex without leading zero bytes (as
/// [`certificate_serial`] gives it), whatever the case, colons or `0x` prefix of `text`; `None` when
/// `text` is not hex.
pub fn normalise_serial(text: &str) -> Option<String> {
    let t = text.trim().trim_start_matches("0x").replace(':', "").to_ascii_lowercase();
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let t = if t.len() % 2 == 1 { format!("0{t}") } else { t };
    let mut s = t.as_str();
    while s.len() > 2 && s.starts_with("00") {
        s = &s[2..];
    }
    Some(s.to_owned())
}

/// A client-certificate verifier that refuses listed serials after the WebPKI check.
#[derive(Debug)]
struct DenyClientSerials {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    deny: std::collections::BTreeSet<String>,
}

impl rustls::server::danger::ClientCertVerifier for DenyClientSerials {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if let Some(serial) = certificate_serial(end_entity).filter(|s| self.deny.contains(s)) {
            tracing::warn!(%serial, "a client presented a certificate on deny_serials; refused");
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, NetError> {
    std::fs::read(path).map_err(|source| NetError::Read { path: path.display().to_string(), source })
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(NetError::Pem { path: path.display().to_string(), what: "no certificate found" });
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, NetError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| NetError::Pem { path: path.display().to_string(), what: "no private key found" })
}

/// The raw PEM text of a file (for tonic's client configuration).
pub fn load_pem(path: &Path) -> Result<Vec<u8>, NetError> {
    let pem = read(path)?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN") {
        return Err(NetError::Pem { path: path.display().to_string(), what: "not a PEM file" });
    }
    Ok(pem)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide rustls provider (idempotent). Call once at start-up.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A TLS 1.3 server configuration that demands a client certificate issued by the CA in `ca`.
pub fn mutual_tls_server(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, NetError> {
    mutual_tls_server_denying(ca, cert, key, &[])
}

/// [`mutual_tls_server`], refusing client certificates whose serial is in `deny_serials` (hex, see
/// [`normalise_serial`]; values that are not hex are ignored: configurations check them first).
pub fn mutual_tls_server_denying(
    ca: &Path,
    cert: &Path,
    key: &Path,
    deny_serials: &[String],
) -> Result<Arc<ServerConfig>, NetError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c)?;
    }
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| NetError::Verifier(e.to_string()))?;
    let deny: std::collections::BTreeSet<String> = deny_serials.iter().filter_map(|s| normalise_serial(s)).collect();
    let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> =
        if deny.is_empty() { webpki } else { Arc::new(DenyClientSerials { inner: webpki, deny }) };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS 1.3 server configuration without client certificates (requesters authenticate with tokens).
pub fn tls_server(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, NetError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Limits on a server's connections and requests (the `[server]` section of a party's config). Every
/// value bounds what one anonymous network client can hold: a TCP connection that never finishes its TLS
/// handshake, a TLS connection that never sends a request, one that goes quiet, and how many of each.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// A TLS handshake must complete within this many milliseconds of the TCP accept.
    pub handshake_timeout_ms: u64,
    /// After the handshake, the client's first bytes (the HTTP/2 preface) must arrive within this
    /// many milliseconds, or the connection is closed.
    pub first_request_timeout_ms: u64,
    /// A connection from which nothing was read for this many milliseconds is closed (a live client
    /// answers the keepalive pings, which count as reads).
    pub idle_timeout_ms: u64,
    /// The server pings every connection this often (HTTP/2 keepalive), in milliseconds.
    pub keepalive_interval_ms: u64,
    /// A ping not answered within this many milliseconds closes the connection.
    pub keepalive_timeout_ms: u64,
    /// Every connection is closed gracefully after this many seconds, however busy (a client reconnects).
    pub max_connection_age_secs: u64,
    /// Most connections open at once (handshakes included); further ones are closed at accept.
    pub max_connections: usize,
    /// Most connections open at once from one IP address; further ones are closed at accept.
    pub max_connections_per_peer: usize,
    /// Most requests in progress on one connection (HTTP/2 concurrent streams).
    pub max_requests_per_connection: usize,
    /// Most requests in progress over all connections; beyond it a request is refused at once
    /// (UNAVAILABLE) rather than queued.
    pub max_concurrent_requests: usize,
    /// On the HTTPS JSON API (HTTP/1.1), a request's line and headers must all arrive within this many
    /// milliseconds of its first byte, or the connection is closed (a client trickling its headers
    /// byte by byte — slowloris — never holds a connection longer).
    pub header_read_timeout_ms: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            handshake_timeout_ms: 10_000,
            first_request_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            keepalive_interval_ms: 60_000,
            keepalive_timeout_ms: 20_000,
            max_connection_age_secs: 3_600,
            max_connections: 1_024,
            max_connections_per_peer: 64,
            max_requests_per_connection: 64,
            max_concurrent_requests: 256,
            header_read_timeout_ms: 10_000,
        }
    }
}

impl ServerLimits {
    /// Checks the values; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("first_request_timeout_ms", self.first_request_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("keepalive_interval_ms", self.keepalive_interval_ms),
            ("keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("max_connection_age_secs", self.max_connection_age_secs),
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_peer", self.max_connections_per_peer as u64),
            ("max_requests_per_connection", self.max_requests_per_connection as u64),
            ("max_concurrent_requests", self.max_concurrent_requests as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("[server] {key} must be positive"));
        }
        if self.max_connections_per_peer > self.max_connections {
            return Err("[server] max_connections_per_peer must not exceed max_connections".into());
        }
        if self.max_requests_per_connection > u32::MAX as usize {
            return Err("[server] max_requests_per_connection is too large".into());
        }
        Ok(())
    }

    /// A tonic server builder with these limits: HTTP/2 keepalive, connection age, streams per
    /// connection, and a global concurrency limit that sheds (refuses at once) what it cannot take.
    pub fn server_builder(
        &self,
    ) -> tonic::transport::Server<
        tower::layer::util::Stack<tower::limit::GlobalConcurrencyLimitLayer, tower::layer::util::Identity>,
    > {
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_millis(self.keepalive_interval_ms)))
            .http2_keepalive_timeout(Some(Duration::from_millis(self.keepalive_timeout_ms)))
            .max_connection_age(Duration::from_secs(self.max_connection_age_secs))
            .max_concurrent_streams(Some(self.max_requests_per_connection as u32))
            .concurrency_limit_per_connection(self.max_requests_per_connection)
            .load_shed(true)
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(self.max_concurrent_requests))
    }
}

/// Open connections, overall and by IP address; a [`ConnectionSlot`] gives its place back when dropped.
#[derive(Default)]
struct ConnectionCount {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// One accepted connection's place in the count, held for the connection's whole life.
struct ConnectionSlot {
    count: Arc<Mutex<ConnectionCount>>,
    peer: IpAddr,
}

impl ConnectionSlot {
    /// Takes a place for a connection from `peer`, or `None` when a cap is reached.
    fn take(count: &Arc<Mutex<ConnectionCount>>, peer: IpAddr, limits: &ServerLimits) -> Option<Self> {
        let mut c = count.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let from_peer = c.by_peer.get(&peer).copied().unwrap_or(0);
        if c.total >= limits.max_connections || from_peer >= limits.max_connections_per_peer {
            return None;
        }
        c.total += 1;
        *c.by_peer.entry(peer).or_default() += 1;
        Some(Self { count: Arc::clone(count), peer })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.count.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                c.by_peer.remove(&self.peer);
            }
        }
    }
}

/// A server-side TLS connection that closes itself when the client is silent: no first bytes within
/// the first-request timeout, or nothing read for the idle timeout. It holds the connection's place in
/// the connection count until dropped.
pub struct LimitedStream {
    inner: TlsStream<TcpStream>,
    /// When the current silence ends the connection; reset by every read that returns bytes.
    deadline: Pin<Box<tokio::time::Sleep>>,
    idle: Duration,
    _slot: ConnectionSlot,
}

impl LimitedStream {
    /// The TLS stream inside.
    pub fn get_ref(&self) -> &TlsStream<TcpStream> {
        &self.inner
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + this.idle;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client silent too long"))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for LimitedStream {
    type ConnectInfo = <TlsStream<TcpStream> as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Accepts TCP connections on `listener` and yields those that complete a TLS handshake within
/// `handshake_timeout`, with the other limits at their defaults ([`tls_incoming_limited`]).
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
) -> ReceiverStream<Result<LimitedStream, io::Error>> {
    let limits = ServerLimits { handshake_timeout_ms: handshake_timeout.as_millis() as u64, ..Default::default() };
    tls_incoming_limited(listener, config, &limits)
}

/// Accepts TCP connections on `listener` and yields those that complete a TLS handshake in time, for
/// `tonic::transport::Server::serve_with_incoming_shutdown`. A connection beyond the global or
/// per-address cap is closed at accept; failed handshakes are logged and dropped; they never stop the
/// server. Each yielded connection closes itself when the client stays silent (see [`LimitedStream`]).
/// The accept loop ends when the server drops the stream.
pub fn tls_incoming_limited(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: &ServerLimits,
) -> ReceiverStream<Result<LimitedStream, io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let limits = limits.clone();
    let handshake_timeout = Duration::from_millis(limits.handshake_timeout_ms);
    let first_request = Duration::from_millis(limits.first_request_timeout_ms);
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let count = Arc::new(Mutex::new(ConnectionCount::default()));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = ConnectionSlot::take(&count, peer.ip(), &limits) else {
                tracing::warn!(%peer, "connection refused: connection cap reached");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let deadline = Box::pin(tokio::time::sleep(first_request));
                        let _ = tx.send(Ok(LimitedStream { inner: tls, deadline, idle, _slot: slot })).await;
                    }
                    Ok(Err(error)) => tracing::info!(%peer, %error, "tls handshake refused"),
                    Err(_) => tracing::info!(%peer, "tls handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// The certificates the peer presented on this request's connection, if any.
pub fn peer_certificates<T>(request: &tonic::Request<T>) -> Option<Arc<Vec<CertificateDer<'static>>>> {
    request
        .extensions()
        .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()?
        .peer_certs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_ids_are_dns_labels() {
        assert!(is_valid_party_id("court-350203"));
        assert!(!is_valid_party_id("Court"));
        assert!(!is_valid_party_id("-a"));
        assert!(!is_valid_party_id("闽0203"));
        assert!(!is_valid_party_id(""));
    }

    #[test]
    fn certificates_name_their_party_only() {
        let mut params = rcgen::CertificateParams::new(vec![party_dns_name(Role::Gateway, "gw-1")]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der();
        assert!(certificate_names(der, Role::Gateway, "gw-1"));
        assert!(!certificate_names(der, Role::Gateway, "gw-2"));
        assert!(!certificate_names(der, Role::Node, "gw-1"));
        assert_eq!(certificate_party_names(der), vec![party_dns_name(Role::Gateway, "gw-1")]);
        assert!(certificate_serial(der).is_some_and(|s| !s.is_empty() && !s.starts_with("00")));
    }

    #[test]
    fn serials_compare_as_lowercase_hex_without_leading_zero_bytes() {
        assert_eq!(normalise_serial("00:4A:5b").as_deref(), Some("4a5b"));
        assert_eq!(normalise_serial("0x0abc").as_deref(), Some("0abc"));
        assert_eq!(normalise_serial("00").as_deref(), Some("00"));
        assert_eq!(normalise_serial("xyz"), None);
        assert_eq!(normalise_serial(""), None);
    }
}
