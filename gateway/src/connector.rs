//! The gateway's mutual-TLS connector to its nodes, with a deny list of certificate serials.
//!
//! tonic's own TLS client takes only a CA and an identity, so the gateway builds the rustls client
//! itself: the usual webpki verification against the federation CA and the node's expected name
//! (`<node-id>.node.shuzhu`), then a refusal of any certificate whose serial is listed in
//! `deny_serials` (gateway.toml) — a revoked certificate whose key may be in other hands. A refused
//! handshake is remembered per node ([`Refusals`]) so that the answer names the node as missing with
//! the reason ("certificate serial … is on deny_serials") instead of a bare "unreachable".

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::Uri;

/// The reason the last handshake with a node was refused by the deny list, if it was.
#[derive(Clone, Debug, Default)]
pub struct Refusals(Arc<Mutex<Option<String>>>);

impl Refusals {
    fn set(&self, reason: Option<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = reason;
    }

    /// Why the last handshake was refused (cleared by a handshake that passed).
    pub fn last(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// webpki verification, then the deny list.
#[derive(Debug)]
struct DenySerials {
    inner: Arc<dyn ServerCertVerifier>,
    deny: Arc<BTreeSet<String>>,
    refusals: Refusals,
}

impl ServerCertVerifier for DenySerials {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        if let Some(serial) = shuzhu_net::certificate_serial(end_entity).filter(|s| self.deny.contains(s)) {
            let reason = format!("refused: its certificate serial {serial} is on deny_serials (revoked)");
            tracing::warn!(%serial, "a node presented a denied certificate; refused");
            self.refusals.set(Some(reason));
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked));
        }
        self.refusals.set(None);
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What the connector needs to reach one node.
#[derive(Clone)]
pub struct NodeConnector {
    tls: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl NodeConnector {
    /// A connector presenting `identity` (certificate chain and key), trusting `roots` for a node
    /// certificate naming `dns_name`, refusing the serials in `deny` (normalised) and noting a refusal
    /// in `refusals`.
    pub fn new(
        roots: rustls::RootCertStore,
        identity: (Vec<CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>),
        dns_name: &str,
        deny: Arc<BTreeSet<String>>,
        refusals: Refusals,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| format!("tls: {e}"))?;
        let verifier = Arc::new(DenySerials { inner: webpki, deny, refusals });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(identity.0, identity.1)
            .map_err(|e| format!("tls: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = ServerName::try_from(dns_name.to_owned()).map_err(|e| format!("tls name {dns_name}: {e}"))?;
        Ok(NodeConnector { tls: tokio_rustls::TlsConnector::from(Arc::new(config)), name })
    }
}

type Io = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl tower::Service<Uri> for NodeConnector {
    type Response = Io;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Io, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (tls, name) = (self.tls.clone(), self.name.clone());
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| std::io::Error::other("node address has no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            Ok(hyper_util::rt::TokioIo::new(tls.connect(name, tcp).await?))
        })
    }
}
