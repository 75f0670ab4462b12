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

/// Default validity of an issued certificate, in days (two years).
pub const DEFAULT_DAYS: u32 = 730;

/// How [`issue_with`] issues a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssueOptions {
    /// Days the certificate is valid from now (1 to 3650).
    pub days: u32,
    /// Replace a node's receipt signing key that already exists. Off by default: the receipt key has a
    /// life of its own (the gateway's `receipt_key_file` names it), and renewing a certificate must
    /// not silently change it.
    pub rotate_receipt_key: bool,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions { days: DEFAULT_DAYS, rotate_receipt_key: false }
    }
}

/// What [`issue_with`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// Certificate file.
    pub cert: PathBuf,
    /// Private key file.
    pub key: PathBuf,
    /// The certificate's serial number (hex, as a gateway's `deny_serials` lists it).
    pub serial: String,
    /// Last day of validity (UTC, `YYYY-MM-DD`).
    pub not_after: String,
    /// For a node: whether a new receipt key was written (first issue, or `rotate_receipt_key`).
    pub new_receipt_key: bool,
}

/// Issues a certificate for party `id` of `role`, signed by the CA in `layout`, with the default
/// [`IssueOptions`].
pub fn issue(layout: &PkiLayout, role: Role, id: &str) -> Result<(PathBuf, PathBuf)> {
    let issued = issue_with(layout, role, id, IssueOptions::default())?;
    Ok((issued.cert, issued.key))
}

/// Issues a certificate for party `id` of `role`, valid for `opts.days` from now, signed by the CA in
/// `layout`. A node also gets a receipt signing key, unless it has one and `opts.rotate_receipt_key`
/// is off.
pub fn issue_with(layout: &PkiLayout, role: Role, id: &str, opts: IssueOptions) -> Result<Issued> {
    if !(1..=3650).contains(&opts.days) {
        bail!("--days {} must be between 1 and 3650", opts.days);
    }
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
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks a little behind the issuer's.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(opts.days));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().context("generating key")?;
    let cert = params.signed_by(&key, &issuer).context("signing certificate")?;
    let (cert_path, key_path) = layout.party(role, id);
    write_private(&key_path, &key.serialize_pem())?;
    fs::write(&cert_path, cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    let mut new_receipt_key = false;
    if role == Role::Node {
        // A node also gets the key it signs release receipts with: made once, replaced only on request.
        let (jkey, jpub) = layout.journal_key(id);
        let exists = jkey.exists() && jpub.exists();
        if !exists || opts.rotate_receipt_key {
            for f in [&jkey, &jpub] {
                if f.exists() {
                    fs::remove_file(f).with_context(|| format!("replacing {}", f.display()))?;
                }
            }
            shuzhu_ledger::receipt::ReceiptSigner::generate_files(&jkey, &jpub)
                .with_context(|| format!("writing the receipt key of node {id}"))?;
            new_receipt_key = true;
        }
    }
    let serial = shuzhu_net::certificate_serial(cert.der()).unwrap_or_default();
    let not_after = params.not_after.date().to_string();
    Ok(Issued { cert: cert_path, key: key_path, serial, not_after, new_receipt_key })
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
