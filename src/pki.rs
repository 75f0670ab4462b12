//! `shuzhu pki`: a development federation CA and certificates, made with rcgen (ECDSA P-256).
//!
//! Each certificate names its party twice in the SAN: `shuzhu://<role>/<id>` and `<id>.<role>.shuzhu`
//! (the DNS form is what TLS verifies). The gateway's also carries `localhost` and `127.0.0.1` so
//! requesters on the same machine can reach it. Production federations use their own CA; the layout
//! of files is the same.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use shuzhu_net::{Role, party_dns_name, party_uri};

/// Where `pki init` put everything.
#[derive(Clone, Debug)]
pub struct PkiLayout {
    /// Directory.
    pub dir: PathBuf,
    /// CA certificate.
    pub ca_cert: PathBuf,
    /// CA private key (keep it offline in production).
    pub ca_key: PathBuf,
}

impl PkiLayout {
    /// The layout under `dir`.
    pub fn at(dir: &Path) -> Self {
        PkiLayout { dir: dir.to_path_buf(), ca_cert: dir.join("ca.pem"), ca_key: dir.join("ca.key") }
    }

    /// Certificate and key paths of a party.
    pub fn party(&self, role: Role, id: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.join(format!("{}s", role.as_str()));
        (d.join(format!("{id}.pem")), d.join(format!("{id}.key")))
    }

    /// A node's receipt signing key (PKCS#8) and its public key (hex), for the release journal.
    pub fn journal_key(&self, id: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.join(format!("{}s", Role::Node.as_str()));
        (d.join(format!("{id}.journal.pk8")), d.join(format!("{id}.journal.pub")))
    }
}

/// Writes a private key: created 0600 at open time (never chmod'ed after writing), its missing
/// directories 0700.
fn write_private(path: &Path, text: &str) -> Result<()> {
    shuzhu_net::secret::write_secret_file(path, text.as_bytes())?;
    Ok(())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "Shuzhu development federation CA");
    params.distinguished_name.push(DnType::OrganizationName, "Shuzhu federation");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// Creates a CA in `dir` (refuses to overwrite one unless `force`).
pub fn init_ca(dir: &Path, force: bool) -> Result<PkiLayout> {
    let layout = PkiLayout::at(dir);
    if layout.ca_cert.exists() && !force {
        bail!("{} already exists; pass --force to replace the whole PKI", layout.ca_cert.display());
    }
    let key = KeyPair::generate().context("generating CA key")?;
    let cert = ca_params().self_signed(&key).context("signing CA certificate")?;
    write_private(&layout.ca_key, &key.serialize_pem())?;
    fs::write(&layout.ca_cert, cert.pem()).with_context(|| format!("writing {}", layout.ca_cert.display()))?;
    Ok(layout)
}

/// Issues a certificate for party `id` of `role`, signed by the CA in `layout`.
pub fn issue(layout: &PkiLayout, role: Role, id: &str) -> Result<(PathBuf, PathBuf)> {
    if !shuzhu_net::is_valid_party_id(id) {
        bail!("party id {id:?} must be 1-63 characters of a-z, 0-9 and -");
    }
    let ca_key_pem =
        fs::read_to_string(&layout.ca_key).with_context(|| format!("reading {}", layout.ca_key.display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).context("parsing CA key")?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut params = CertificateParams::new(vec![party_dns_name(role, id)]).context("certificate parameters")?;
    params.distinguished_name.push(DnType::CommonName, party_uri(role, id));
    params.subject_alt_names.push(SanType::URI(party_uri(role, id).try_into().context("party uri")?));
    if role == Role::Gateway {
        params.subject_alt_names.push(SanType::DnsName("localhost".try_into().context("dns name")?));
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().context("generating key")?;
    let cert = params.signed_by(&key, &issuer).context("signing certificate")?;
    let (cert_path, key_path) = layout.party(role, id);
    write_private(&key_path, &key.serialize_pem())?;
    fs::write(&cert_path, cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    if role == Role::Node {
        // A node also gets the key it signs release receipts with (replaced with its certificate).
        let (jkey, jpub) = layout.journal_key(id);
        for f in [&jkey, &jpub] {
            if f.exists() {
                fs::remove_file(f).with_context(|| format!("replacing {}", f.display()))?;
            }
        }
        shuzhu_ledger::receipt::ReceiptSigner::generate_files(&jkey, &jpub)
            .with_context(|| format!("writing the receipt key of node {id}"))?;
    }
    Ok((cert_path, key_path))
}

/// `pki init`: a CA plus certificates for one gateway and the given nodes.
pub fn init(dir: &Path, gateway: &str, nodes: &[String], force: bool) -> Result<PkiLayout> {
    let layout = init_ca(dir, force)?;
    issue(&layout, Role::Gateway, gateway)?;
    for n in nodes {
        issue(&layout, Role::Node, n)?;
    }
    Ok(layout)
}
