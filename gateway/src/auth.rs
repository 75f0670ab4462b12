//! Requester authentication: turns the value of an `authorization: Bearer <JWT>` header into a
//! verified [`Principal`], or into an [`AuthFailure`] whose short [`AuthFailure::reason`] goes to
//! the audit ledger while the requester only hears "unauthenticated".
//!
//! This module owns three things:
//!
//! * **The JWT crypto provider.** The workspace uses one crypto library, `ring`, everywhere, and
//!   `jsonwebtoken` 10 ships no `ring` backend. [`install_jwt_crypto_provider`] installs a
//!   provider backed by `ring` that signs and verifies exactly EdDSA (Ed25519) and ES256 (ECDSA
//!   P-256 with SHA-256 and the fixed-length `r‖s` signatures JWS requires); every other algorithm,
//!   HMAC included, is refused by the provider itself, so no code path in this process can be
//!   talked into verifying an HS256 token with a public key as its secret.
//! * **The [`Authenticator`]**, built once from the federation's trusted issuers. It reads the
//!   unverified `iss` claim only to choose the issuer's key, lets `jsonwebtoken` check the header
//!   algorithm and the signature, and then checks every claim by hand from the verified payload.
//!   The claim checks are ours rather than `jsonwebtoken`'s `Validation` for two reasons: its time
//!   checks read the system clock (we take `now_unix`, so tests and replays are deterministic), and
//!   it coerces floating-point `exp`/`nbf` to integers where we want a typed failure
//!   (`claim_type`) that the audit ledger can record precisely.
//! * **Dev tooling**: [`SigningKey`] and [`issue_token`] mint tokens for `shuzhu token issue`
//!   and for tests.
//!
//! ```
//! use shuzhu_gateway::auth::*;
//!
//! install_jwt_crypto_provider();
//! let (key, _private_pem, public_pem) = SigningKey::generate(JwtAlgorithm::EdDsa)?;
//! let authenticator = Authenticator::new(
//!     vec![TrustedIssuer {
//!         issuer: "https://idp.example".into(),
//!         audience: "shuzhu-gateway".into(),
//!         algorithm: JwtAlgorithm::EdDsa,
//!         public_key_pem: public_pem,
//!     }],
//!     AuthPolicy::default(),
//! )?;
//! let now = 1_700_000_000;
//! let token = issue_token(&key, &TokenClaims {
//!     iss: "https://idp.example".into(),
//!     aud: "shuzhu-gateway".into(),
//!     sub: "analyst-7".into(),
//!     agency: "翔安区司法局".into(),
//!     roles: vec!["requester".into()],
//!     iat: now,
//!     exp: now + 600,
//!     nbf: None,
//!     jti: None,
//! })?;
//! let principal = authenticator.authenticate(&format!("Bearer {token}"), now + 1)?;
//! assert!(principal.has_role(Role::Requester));
//! assert!(!principal.has_role(Role::Auditor));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, new_error};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
    UnparsedPublicKey, VerificationAlgorithm,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest bearer token accepted, in bytes; longer ones are `malformed` before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest `sub`, `agency`, `jti` (and each `aud` entry) accepted, in characters.
pub const MAX_CLAIM_CHARS: usize = 128;
/// Most entries accepted in the `roles` and `aud` arrays.
const MAX_ARRAY_ENTRIES: usize = 32;

// ---------------------------------------------------------------------------------------------
// The ring-backed jsonwebtoken crypto provider
// ---------------------------------------------------------------------------------------------

/// The process-wide provider. A `static` (not a `const`) so its address identifies it when
/// `CryptoProvider::install_default` reports that a provider is already installed.
static RING_JWT_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: ring_signer,
    verifier_factory: ring_verifier,
    jwk_utils: JwkUtils {
        extract_rsa_public_key_components: ring_rsa_components_unsupported,
        extract_ec_public_key_coordinates: ring_ec_public_key_coordinates,
        compute_digest: ring_digest,
    },
};

/// Whether the installed provider is ours; decided once per process (a `OnceLock` is a
/// `std::sync::Once` that also remembers the outcome).
static RING_PROVIDER_ACTIVE: OnceLock<bool> = OnceLock::new();

/// Installs the `ring`-backed JWT crypto provider for this process. Idempotent and cheap after
/// the first call; call it from `main` before anything touches `jsonwebtoken`.
///
/// If some other provider got installed first (or `jsonwebtoken` was used before this call and
/// fell back to its panicking placeholder), this logs an error, and [`Authenticator::new`] and
/// [`issue_token`] refuse to work rather than verify tokens with unknown cryptography.
pub fn install_jwt_crypto_provider() {
    let _ = ring_provider_active();
}

fn ring_provider_active() -> bool {
    *RING_PROVIDER_ACTIVE.get_or_init(|| match RING_JWT_PROVIDER.install_default() {
        Ok(()) => true,
        Err(existing) => {
            let ours = std::ptr::eq(existing, &RING_JWT_PROVIDER);
            if !ours {
                tracing::error!("another jsonwebtoken crypto provider is installed; jwt authentication is disabled");
            }
            ours
        }
    })
}

/// Ed25519 signer: `ring` signs deterministically.
struct RingEdDsaSigner(Ed25519KeyPair);

impl Signer<Vec<u8>> for RingEdDsaSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        Ok(self.0.sign(msg).as_ref().to_vec())
    }
}

impl JwtSigner for RingEdDsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

/// ES256 signer producing the fixed-length `r‖s` form (64 bytes), not ASN.1 DER.
struct RingEs256Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer<Vec<u8>> for RingEs256Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        self.key
            .sign(&self.rng, msg)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| jsonwebtoken::signature::Error::new())
    }
}

impl JwtSigner for RingEs256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

fn ring_signer(algorithm: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    match (algorithm, key.family()) {
        (Algorithm::EdDSA, AlgorithmFamily::Ed) => {
            // `maybe_unchecked` also accepts PKCS#8 v1 (what OpenSSL writes); v2 documents are
            // still checked against their embedded public key.
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.inner())
                .map_err(|_| new_error(ErrorKind::InvalidEddsaKey))?;
            Ok(Box::new(RingEdDsaSigner(pair)))
        }
        (Algorithm::ES256, AlgorithmFamily::Ec) => {
            let rng = SystemRandom::new();
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.inner(), &rng)
                .map_err(|_| new_error(ErrorKind::InvalidEcdsaKey))?;
            Ok(Box::new(RingEs256Signer { key: pair, rng }))
        }
        (Algorithm::EdDSA | Algorithm::ES256, _) => Err(new_error(ErrorKind::InvalidKeyFormat)),
        _ => Err(new_error(ErrorKind::InvalidAlgorithm)),
    }
}

/// Verifier for EdDSA or ES256 over a raw public key (32-byte Ed25519 key or 65-byte
/// uncompressed SEC1 P-256 point).
struct RingVerifier {
    algorithm: Algorithm,
    key: UnparsedPublicKey<Vec<u8>>,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), jsonwebtoken::signature::Error> {
        self.key.verify(msg, signature).map_err(|_| jsonwebtoken::signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn ring_verifier(algorithm: &Algorithm, key: &DecodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    let (verification, family, bad_key): (&'static dyn VerificationAlgorithm, _, _) = match algorithm {
        Algorithm::EdDSA => (&ED25519, AlgorithmFamily::Ed, ErrorKind::InvalidEddsaKey),
        Algorithm::ES256 => (&ECDSA_P256_SHA256_FIXED, AlgorithmFamily::Ec, ErrorKind::InvalidEcdsaKey),
        _ => return Err(new_error(ErrorKind::InvalidAlgorithm)),
    };
    if key.family() != family {
        return Err(new_error(ErrorKind::InvalidKeyFormat));
    }
    // Matching on the kind (rather than `DecodingKey::as_bytes`, which panics on RSA
    // components) keeps a misuse an error.
    let DecodingKeyKind::SecretOrDer(bytes) = key.kind() else {
        return Err(new_error(ErrorKind::InvalidKeyFormat));
    };
    let Some(jwt_algorithm) = JwtAlgorithm::from_jsonwebtoken(*algorithm) else {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    };
    if !raw_public_key_has_shape(jwt_algorithm, bytes) {
        return Err(new_error(bad_key));
    }
    Ok(Box::new(RingVerifier { algorithm: *algorithm, key: UnparsedPublicKey::new(verification, bytes.clone()) }))
}

fn ring_rsa_components_unsupported(_private_key_der: &[u8]) -> jsonwebtoken::errors::Result<(Vec<u8>, Vec<u8>)> {
    Err(new_error(ErrorKind::Provider("rsa keys are not supported by the shuzhu ring provider".to_owned())))
}

fn ring_ec_public_key_coordinates(
    private_key_der: &[u8],
    algorithm: Algorithm,
) -> jsonwebtoken::errors::Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    if algorithm != Algorithm::ES256 {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    }
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, private_key_der, &SystemRandom::new())
        .map_err(|_| new_error(ErrorKind::InvalidEcdsaKey))?;
    match pair.public_key().as_ref() {
        [0x04, xy @ ..] if xy.len() == 64 => {
            let (x, y) = xy.split_at(32);
            Ok((EllipticCurve::P256, x.to_vec(), y.to_vec()))
        }
        _ => Err(new_error(ErrorKind::InvalidEcdsaKey)),
    }
}

fn ring_digest(data: &[u8], hash: ThumbprintHash) -> Vec<u8> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
    };
    ring::digest::digest(algorithm, data).as_ref().to_vec()
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// A JWS algorithm the gateway accepts. Everything else (`none`, HS*, RS*, PS*, ES384) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// Ed25519 signatures (RFC 8037).
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// ECDSA on P-256 with SHA-256, fixed-length `r‖s` signatures (RFC 7518 §3.4).
    #[serde(rename = "ES256")]
    Es256,
}

impl JwtAlgorithm {
    /// The name used in the JWS `alg` header and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    /// Parses a JWS `alg` header value; exact and case-sensitive, as RFC 7515 requires.
    fn from_header_alg(alg: &str) -> Option<Self> {
        match alg {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
        }
    }

    fn from_jsonwebtoken(algorithm: Algorithm) -> Option<Self> {
        match algorithm {
            Algorithm::EdDSA => Some(Self::EdDsa),
            Algorithm::ES256 => Some(Self::Es256),
            _ => None,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a principal may do at the gateway. An auditor cannot query data and a requester cannot
/// read the ledger; those rules live with the services, this is only the vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An agency analyst asking for indicators (查询方).
    Requester,
    /// An auditor reading and verifying the ledger (审计员).
    Auditor,
    /// A federation administrator.
    Admin,
}

impl Role {
    /// The role's name in the `roles` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requester => "requester",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }

    /// Parses a `roles` claim entry; `None` for names this gateway does not know.
    pub fn from_claim(name: &str) -> Option<Self> {
        match name {
            "requester" => Some(Self::Requester),
            "auditor" => Some(Self::Auditor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An identity provider the federation trusts, as written in the gateway config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The exact `iss` claim value of its tokens.
    pub issuer: String,
    /// The `aud` value its tokens must carry to be meant for this gateway.
    pub audience: String,
    /// The one algorithm its tokens are signed with.
    pub algorithm: JwtAlgorithm,
    /// Its public key, an SPKI `-----BEGIN PUBLIC KEY-----` PEM (Ed25519 or P-256).
    pub public_key_pem: String,
}

/// Limits on the tokens the gateway accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthPolicy {
    /// Longest accepted `exp − iat`, in seconds.
    pub max_lifetime_secs: u64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Authentication failures of one peer (IP address) recorded as their own audit entries per
    /// minute; beyond, they are counted into summaries (see `failures`).
    pub failures_recorded_per_peer_per_minute: u32,
    /// Seconds between two summaries of counted authentication failures.
    pub failure_summary_secs: u64,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            max_lifetime_secs: 12 * 3600,
            leeway_secs: 60,
            failures_recorded_per_peer_per_minute: 30,
            failure_summary_secs: 5,
        }
    }
}

/// The verified identity behind a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The `sub` claim: who is asking.
    pub subject: String,
    /// The `agency` claim: the agency (机构) the subject acts for.
    pub agency: String,
    /// The known roles granted, deduplicated and sorted; never empty.
    pub roles: Vec<Role>,
    /// The `iss` claim: which trusted issuer vouched for the subject.
    pub issuer: String,
    /// The `jti` claim, if the issuer set one.
    pub token_id: Option<String>,
    /// The `exp` claim, in Unix seconds.
    pub expires_at: u64,
}

impl Principal {
    /// Whether the token granted `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Why the trusted-issuer configuration was refused. Fails start-up, never a request.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// The list of trusted issuers is empty, so nobody could ever authenticate.
    #[error("no trusted token issuers are configured")]
    NoIssuers,
    /// A trusted issuer has an empty `issuer` or `audience`.
    #[error("trusted issuer #{index} has an empty {field}")]
    EmptyField {
        /// Position of the issuer in the configured list, from 1.
        index: usize,
        /// The empty field.
        field: &'static str,
    },
    /// Two trusted issuers share the same `issuer` name.
    #[error("trusted issuer {issuer} is configured more than once")]
    DuplicateIssuer {
        /// The repeated issuer name.
        issuer: String,
    },
    /// A trusted issuer's key is not an SPKI PEM public key for its configured algorithm.
    #[error("public key of trusted issuer {issuer} is not a valid {algorithm} public key pem: {why}")]
    BadPublicKey {
        /// The issuer whose key was refused.
        issuer: String,
        /// The algorithm configured for it.
        algorithm: JwtAlgorithm,
        /// What is wrong with the key.
        why: &'static str,
    },
    /// The policy cannot admit any token.
    #[error("auth policy is invalid: {why}")]
    BadPolicy {
        /// What is wrong with it.
        why: &'static str,
    },
    /// A jsonwebtoken crypto provider other than ours is installed in this process.
    #[error("another jsonwebtoken crypto provider is installed in this process")]
    ForeignCryptoProvider,
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/// Why a bearer token was refused. The display is for operators and never contains the token or
/// any claim value; the gRPC layer answers the requester with a generic UNAUTHENTICATED and puts
/// [`AuthFailure::reason`] into the audit ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The header value is not `Bearer <token>` (scheme case-insensitive, one space).
    #[error("authorization is not a bearer token")]
    MissingBearer,
    /// The token is not a compact JWS with a JSON-object header and payload, or is too long.
    #[error("token is malformed")]
    Malformed,
    /// The header's `alg` is not EdDSA or ES256, or not the issuer's configured algorithm.
    #[error("token algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The `iss` claim names no trusted issuer.
    #[error("token issuer is not trusted")]
    UnknownIssuer,
    /// The signature does not verify with the issuer's key.
    #[error("token signature does not verify")]
    BadSignature,
    /// A required claim is absent.
    #[error("token lacks required claim {claim}")]
    MissingClaim {
        /// The claim's name.
        claim: &'static str,
    },
    /// A claim has the wrong JSON type (e.g. a string or float `exp`) or an unusable shape
    /// (empty, over-long, control characters, too many entries).
    #[error("token claim {claim} has the wrong type or shape")]
    ClaimType {
        /// The claim's name.
        claim: &'static str,
    },
    /// The `aud` claim does not name this gateway's audience.
    #[error("token is not meant for this gateway")]
    WrongAudience,
    /// `exp` has passed, leeway included.
    #[error("token has expired")]
    Expired,
    /// `nbf` is still in the future, leeway included.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future, leeway included.
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// `exp` is before `iat`.
    #[error("token expires before it was issued")]
    ExpiresBeforeIssued,
    /// `exp − iat` exceeds the policy's maximum lifetime.
    #[error("token lifetime exceeds the allowed maximum")]
    LifetimeTooLong,
    /// The `roles` claim holds no role this gateway knows.
    #[error("token grants no known role")]
    NoKnownRole,
    /// The `roles` claim mixes a data role (`requester`) with the audit role (`auditor`): separation
    /// of duties means whoever reads the data is not who audits the reading.
    #[error("token mixes data and audit roles")]
    MixedRoles,
    /// The crypto provider could not build a verifier (a key or provider problem, not the token's).
    #[error("token verifier is unavailable")]
    VerifierUnavailable,
}

impl AuthFailure {
    /// Short, stable code for the audit ledger.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingBearer => "missing_bearer",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnknownIssuer => "unknown_issuer",
            Self::BadSignature => "bad_signature",
            Self::MissingClaim { .. } => "missing_claim",
            Self::ClaimType { .. } => "claim_type",
            Self::WrongAudience => "wrong_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::ExpiresBeforeIssued => "exp_before_iat",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::NoKnownRole => "no_known_role",
            Self::MixedRoles => "mixed_roles",
            Self::VerifierUnavailable => "verifier_unavailable",
        }
    }
}

/// One trusted issuer, parsed once at start-up.
struct IssuerKey {
    audience: String,
    algorithm: JwtAlgorithm,
    key: DecodingKey,
    /// Signature and `alg` checks only; claims are checked by hand (see the module docs).
    validation: Validation,
}

/// Verifies bearer tokens against the federation's trusted issuers.
pub struct Authenticator {
    issuers: HashMap<String, IssuerKey>,
    policy: AuthPolicy,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut issuers: Vec<&str> = self.issuers.keys().map(String::as_str).collect();
        issuers.sort_unstable();
        f.debug_struct("Authenticator").field("issuers", &issuers).field("policy", &self.policy).finish()
    }
}

impl Authenticator {
    /// Parses every issuer's key once. Installs the JWT crypto provider if nobody has yet.
    pub fn new(issuers: Vec<TrustedIssuer>, policy: AuthPolicy) -> Result<Self, AuthConfigError> {
        if !ring_provider_active() {
            return Err(AuthConfigError::ForeignCryptoProvider);
        }
        if issuers.is_empty() {
            return Err(AuthConfigError::NoIssuers);
        }
        if policy.max_lifetime_secs == 0 {
            return Err(AuthConfigError::BadPolicy { why: "max_lifetime_secs must be positive" });
        }
        if !(1..=3600).contains(&policy.failure_summary_secs) {
            return Err(AuthConfigError::BadPolicy { why: "failure_summary_secs must be within 1..=3600" });
        }
        let mut parsed = HashMap::with_capacity(issuers.len());
        for (position, trusted) in issuers.into_iter().enumerate() {
            let index = position + 1;
            if trusted.issuer.is_empty() {
                return Err(AuthConfigError::EmptyField { index, field: "issuer" });
            }
            if trusted.audience.is_empty() {
                return Err(AuthConfigError::EmptyField { index, field: "audience" });
            }
            let raw = parse_public_key_pem(trusted.algorithm, &trusted.public_key_pem).map_err(|why| {
                AuthConfigError::BadPublicKey { issuer: trusted.issuer.clone(), algorithm: trusted.algorithm, why }
            })?;
            let key = match trusted.algorithm {
                JwtAlgorithm::EdDsa => DecodingKey::from_ed_der(&raw),
                JwtAlgorithm::Es256 => DecodingKey::from_ec_der(&raw),
            };
            let mut validation = Validation::new(trusted.algorithm.jsonwebtoken());
            validation.required_spec_claims = HashSet::new();
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            validation.leeway = 0;
            let entry = IssuerKey { audience: trusted.audience, algorithm: trusted.algorithm, key, validation };
            if parsed.insert(trusted.issuer.clone(), entry).is_some() {
                return Err(AuthConfigError::DuplicateIssuer { issuer: trusted.issuer });
            }
        }
        Ok(Self { issuers: parsed, policy })
    }

    /// Verifies `authorization_header_value` (`Bearer <JWT>`) at time `now_unix` (Unix seconds).
    pub fn authenticate(&self, authorization_header_value: &str, now_unix: u64) -> Result<Principal, AuthFailure> {
        let token = bearer_token(authorization_header_value)?;
        let (header_b64, payload_b64) = split_compact(token)?;

        let header = decode_json_object(header_b64)?;
        let algorithm = match header.get("alg") {
            Some(Value::String(alg)) => JwtAlgorithm::from_header_alg(alg).ok_or(AuthFailure::AlgorithmNotAllowed)?,
            _ => return Err(AuthFailure::Malformed),
        };
        // We understand no JWS extension, so a token that marks one critical must be refused
        // (RFC 7515 §4.1.11); jsonwebtoken parses `crit` but does not enforce it.
        if header.contains_key("crit") {
            return Err(AuthFailure::Malformed);
        }

        // The unverified payload is read only to pick the issuer's key.
        let unverified = decode_json_object(payload_b64)?;
        let issuer_name = bounded_string(&unverified, "iss", usize::MAX)?;
        let issuer = self.issuers.get(issuer_name).ok_or(AuthFailure::UnknownIssuer)?;
        if algorithm != issuer.algorithm {
            return Err(AuthFailure::AlgorithmNotAllowed);
        }

        let verified = jsonwebtoken::decode::<Value>(token, &issuer.key, &issuer.validation)
            .map_err(classify_jsonwebtoken_error)?;
        let Value::Object(claims) = verified.claims else {
            return Err(AuthFailure::Malformed);
        };
        let claims = ClaimSet::parse(&claims)?;
        self.check(issuer, claims, now_unix)
    }

    fn check(&self, issuer: &IssuerKey, claims: ClaimSet, now: u64) -> Result<Principal, AuthFailure> {
        if !claims.aud.contains(&issuer.audience) {
            return Err(AuthFailure::WrongAudience);
        }
        let leeway = self.policy.leeway_secs;
        if claims.iat > now.saturating_add(leeway) {
            return Err(AuthFailure::IssuedInFuture);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(AuthFailure::NotYetValid);
        }
        if now >= claims.exp.saturating_add(leeway) {
            return Err(AuthFailure::Expired);
        }
        let Some(lifetime) = claims.exp.checked_sub(claims.iat) else {
            return Err(AuthFailure::ExpiresBeforeIssued);
        };
        if lifetime > self.policy.max_lifetime_secs {
            return Err(AuthFailure::LifetimeTooLong);
        }
        let mut roles: Vec<Role> = claims.roles.iter().filter_map(|name| Role::from_claim(name)).collect();
        roles.sort_unstable();
        roles.dedup();
        if roles.is_empty() {
            return Err(AuthFailure::NoKnownRole);
        }
        if roles.contains(&Role::Requester) && roles.contains(&Role::Auditor) {
            return Err(AuthFailure::MixedRoles);
        }
        Ok(Principal {
            subject: claims.sub,
            agency: claims.agency,
            roles,
            issuer: claims.iss,
            token_id: claims.jti,
            expires_at: claims.exp,
        })
    }
}

/// Extracts the token from `Bearer <token>`.
fn bearer_token(value: &str) -> Result<&str, AuthFailure> {
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(AuthFailure::MissingBearer);
    };
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.starts_with(' ') {
        return Err(AuthFailure::MissingBearer);
    }
    Ok(token)
}

/// Checks the compact JWS shape and returns the header and payload segments.
fn split_compact(token: &str) -> Result<(&str, &str), AuthFailure> {
    if token.len() > MAX_TOKEN_BYTES
        || !token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(AuthFailure::Malformed);
    }
    let mut segments = token.split('.');
    match (segments.next(), segments.next(), segments.next(), segments.next()) {
        (Some(header), Some(payload), Some(_signature), None) if !header.is_empty() && !payload.is_empty() => {
            Ok((header, payload))
        }
        _ => Err(AuthFailure::Malformed),
    }
}

fn decode_json_object(segment: &str) -> Result<Map<String, Value>, AuthFailure> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| AuthFailure::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(AuthFailure::Malformed),
    }
}

fn classify_jsonwebtoken_error(error: jsonwebtoken::errors::Error) -> AuthFailure {
    match error.kind() {
        ErrorKind::InvalidSignature => AuthFailure::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
            AuthFailure::AlgorithmNotAllowed
        }
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            AuthFailure::Malformed
        }
        // Key and provider errors: the issuer keys were checked at start-up, so this is a bug
        // or a foreign provider. The kind names no token content.
        kind => {
            tracing::error!(?kind, "jwt verifier could not be built");
            AuthFailure::VerifierUnavailable
        }
    }
}

/// The claims the gateway relies on, typed. Built only from a verified payload.
struct ClaimSet {
    iss: String,
    aud: Vec<String>,
    sub: String,
    agency: String,
    roles: Vec<String>,
    iat: u64,
    exp: u64,
    nbf: Option<u64>,
    jti: Option<String>,
}

impl ClaimSet {
    fn parse(claims: &Map<String, Value>) -> Result<Self, AuthFailure> {
        let iss = bounded_string(claims, "iss", usize::MAX)?.to_owned();
        let aud = match required(claims, "aud")? {
            Value::String(aud) => vec![aud.clone()],
            Value::Array(entries) => string_array(entries, "aud")?,
            _ => return Err(AuthFailure::ClaimType { claim: "aud" }),
        };
        let exp = numeric_date(required(claims, "exp")?, "exp")?;
        let iat = numeric_date(required(claims, "iat")?, "iat")?;
        let nbf = match claims.get("nbf") {
            None => None,
            Some(value) => Some(numeric_date(value, "nbf")?),
        };
        let sub = bounded_string(claims, "sub", MAX_CLAIM_CHARS)?.to_owned();
        let agency = bounded_string(claims, "agency", MAX_CLAIM_CHARS)?.to_owned();
        let roles = match required(claims, "roles")? {
            Value::Array(entries) => string_array(entries, "roles")?,
            _ => return Err(AuthFailure::ClaimType { claim: "roles" }),
        };
        let jti = match claims.get("jti") {
            None => None,
            Some(_) => Some(bounded_string(claims, "jti", MAX_CLAIM_CHARS)?.to_owned()),
        };
        Ok(Self { iss, aud, sub, agency, roles, iat, exp, nbf, jti })
    }
}

fn required<'a>(claims: &'a Map<String, Value>, claim: &'static str) -> Result<&'a Value, AuthFailure> {
    claims.get(claim).ok_or(AuthFailure::MissingClaim { claim })
}

/// A NumericDate as a JSON non-negative integer: not a string, not a float, not negative.
fn numeric_date(value: &Value, claim: &'static str) -> Result<u64, AuthFailure> {
    match value {
        Value::Number(number) => number.as_u64().ok_or(AuthFailure::ClaimType { claim }),
        _ => Err(AuthFailure::ClaimType { claim }),
    }
}

/// A required, non-empty string of at most `max_chars` characters without control characters.
fn bounded_string<'a>(
    claims: &'a Map<String, Value>,
    claim: &'static str,
    max_chars: usize,
) -> Result<&'a str, AuthFailure> {
    match required(claims, claim)? {
        Value::String(text) if is_bounded_text(text, max_chars) => Ok(text),
        _ => Err(AuthFailure::ClaimType { claim }),
    }
}

fn is_bounded_text(text: &str, max_chars: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max_chars && !text.chars().any(char::is_control)
}

/// An array of at most `MAX_ARRAY_ENTRIES` strings (each bounded, as `aud`/`roles` entries).
fn string_array(entries: &[Value], claim: &'static str) -> Result<Vec<String>, AuthFailure> {
    if entries.len() > MAX_ARRAY_ENTRIES {
        return Err(AuthFailure::ClaimType { claim });
    }
    entries
        .iter()
        .map(|entry| match entry {
            Value::String(text) if text.chars().count() <= MAX_CLAIM_CHARS => Ok(text.clone()),
            _ => Err(AuthFailure::ClaimType { claim }),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Keys: SPKI and PKCS#8 PEM
// ---------------------------------------------------------------------------------------------

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480: id-ecPublicKey, prime256v1), followed
/// by the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn raw_public_key_has_shape(algorithm: JwtAlgorithm, raw: &[u8]) -> bool {
    match algorithm {
        JwtAlgorithm::EdDsa => raw.len() == 32,
        JwtAlgorithm::Es256 => raw.len() == 65 && raw[0] == 0x04,
    }
}

/// Parses an SPKI `PUBLIC KEY` PEM into the raw key `ring` verifies with. Exact DER prefixes
/// pin the key type and, for ECDSA, the curve: a P-384 or RSA key is refused here, at start-up,
/// rather than failing every request later.
fn parse_public_key_pem(algorithm: JwtAlgorithm, pem: &str) -> Result<Vec<u8>, &'static str> {
    let der = pem_decode(pem, "PUBLIC KEY")?;
    let prefix: &[u8] = match algorithm {
        JwtAlgorithm::EdDsa => &ED25519_SPKI_PREFIX,
        JwtAlgorithm::Es256 => &P256_SPKI_PREFIX,
    };
    let Some(raw) = der.strip_prefix(prefix) else {
        return Err("the key is of another type or curve");
    };
    if !raw_public_key_has_shape(algorithm, raw) {
        return Err("the key has the wrong length");
    }
    Ok(raw.to_vec())
}

fn spki_pem(algorithm: JwtAlgorithm, raw: &[u8]) -> String {
    let prefix: &[u8] = match algorithm {
        JwtAlgorithm::EdDsa => &ED25519_SPKI_PREFIX,
        JwtAlgorithm::Es256 => &P256_SPKI_PREFIX,
    };
    pem_encode("PUBLIC KEY", &[prefix, raw].concat())
}

/// Decodes a text holding exactly one PEM block with the given label.
fn pem_decode(text: &str, label: &str) -> Result<Vec<u8>, &'static str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(rest) = text.trim().strip_prefix(begin.as_str()) else {
        return Err("no pem begin line with the expected label");
    };
    let Some(body) = rest.strip_suffix(end.as_str()) else {
        return Err("no pem end line with the expected label");
    };
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(base64).map_err(|_| "the pem body is not base64")
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let base64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 text is ASCII, so 64-byte chunks are whole characters.
    for line in base64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// ---------------------------------------------------------------------------------------------
// Dev tooling: signing keys and token issuance
// ---------------------------------------------------------------------------------------------

/// Why a token could not be issued or a signing key loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenIssueError {
    /// The PEM is not a PKCS#8 Ed25519 or P-256 private key.
    #[error("signing key is not a pkcs#8 ed25519 or p-256 private key pem: {why}")]
    InvalidKey {
        /// What is wrong with it.
        why: &'static str,
    },
    /// The system random generator failed while generating a key.
    #[error("key generation failed")]
    KeyGeneration,
    /// jsonwebtoken could not encode or sign the token.
    #[error("token encoding failed")]
    Encode(#[source] jsonwebtoken::errors::Error),
    /// A jsonwebtoken crypto provider other than ours is installed in this process.
    #[error("another jsonwebtoken crypto provider is installed in this process")]
    ForeignCryptoProvider,
}

/// A private key that signs tokens (dev tooling and tests; production tokens come from the
/// federation's identity provider).
pub struct SigningKey {
    algorithm: JwtAlgorithm,
    encoding_key: EncodingKey,
    public_key: Vec<u8>,
    key_id: Option<String>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// Loads a PKCS#8 `PRIVATE KEY` PEM; the algorithm follows from the key (Ed25519 → EdDSA,
    /// P-256 → ES256).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, TokenIssueError> {
        let der = pem_decode(pem, "PRIVATE KEY").map_err(|why| TokenIssueError::InvalidKey { why })?;
        Self::from_pkcs8_der(&der)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, TokenIssueError> {
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(Self {
                algorithm: JwtAlgorithm::EdDsa,
                encoding_key: EncodingKey::from_ed_der(der),
                public_key: pair.public_key().as_ref().to_vec(),
                key_id: None,
            });
        }
        let rng = SystemRandom::new();
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
            return Ok(Self {
                algorithm: JwtAlgorithm::Es256,
                encoding_key: EncodingKey::from_ec_der(der),
                public_key: pair.public_key().as_ref().to_vec(),
                key_id: None,
            });
        }
        Err(TokenIssueError::InvalidKey { why: "ring accepts it neither as ed25519 nor as p-256" })
    }

    /// Generates a fresh key; returns it with its PKCS#8 `PRIVATE KEY` PEM and its SPKI
    /// `PUBLIC KEY` PEM (the form [`TrustedIssuer::public_key_pem`] takes).
    pub fn generate(algorithm: JwtAlgorithm) -> Result<(Self, String, String), TokenIssueError> {
        let rng = SystemRandom::new();
        let document = match algorithm {
            JwtAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
            JwtAlgorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
        }
        .map_err(|_| TokenIssueError::KeyGeneration)?;
        let key = Self::from_pkcs8_der(document.as_ref())?;
        let private_pem = pem_encode("PRIVATE KEY", document.as_ref());
        let public_pem = key.public_key_pem();
        Ok((key, private_pem, public_pem))
    }

    /// Sets the `kid` header of the tokens this key issues.
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// The SPKI `PUBLIC KEY` PEM of this key.
    pub fn public_key_pem(&self) -> String {
        spki_pem(self.algorithm, &self.public_key)
    }
}

/// The claims [`issue_token`] signs; the shape [`Authenticator::authenticate`] expects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Issuer; must match a [`TrustedIssuer::issuer`].
    pub iss: String,
    /// Audience; must match the issuer's [`TrustedIssuer::audience`].
    pub aud: String,
    /// Subject: who is asking.
    pub sub: String,
    /// The agency the subject acts for.
    pub agency: String,
    /// Role names (`requester`, `auditor`, `admin`; others are ignored by the gateway).
    pub roles: Vec<String>,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Signs `claims` with `key` into a compact JWT (`typ: JWT`, `kid` if the key has one).
pub fn issue_token(key: &SigningKey, claims: &TokenClaims) -> Result<String, TokenIssueError> {
    if !ring_provider_active() {
        return Err(TokenIssueError::ForeignCryptoProvider);
    }
    let mut header = Header::new(key.algorithm.jsonwebtoken());
    header.kid = key.key_id.clone();
    jsonwebtoken::encode(&header, claims, &key.encoding_key).map_err(TokenIssueError::Encode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const ISSUER: &str = "https://idp.xm.example";
    const OTHER_ISSUER: &str = "https://idp.fz.example";
    const AUDIENCE: &str = "shuzhu-gateway";

    struct Fixture {
        authenticator: Authenticator,
        ed_key: SigningKey,
        ed_public_pem: String,
        es_key: SigningKey,
    }

    /// One EdDSA issuer and one ES256 issuer.
    fn fixture() -> Fixture {
        install_jwt_crypto_provider();
        let (ed_key, _, ed_public_pem) = SigningKey::generate(JwtAlgorithm::EdDsa).unwrap();
        let (es_key, _, es_public_pem) = SigningKey::generate(JwtAlgorithm::Es256).unwrap();
        let authenticator = Authenticator::new(
            vec![
                TrustedIssuer {
                    issuer: ISSUER.into(),
                    audience: AUDIENCE.into(),
                    algorithm: JwtAlgorithm::EdDsa,
                    public_key_pem: ed_public_pem.clone(),
                },
                TrustedIssuer {
                    issuer: OTHER_ISSUER.into(),
                    audience: AUDIENCE.into(),
                    algorithm: JwtAlgorithm::Es256,
                    public_key_pem: es_public_pem,
                },
            ],
            AuthPolicy::default(),
        )
        .unwrap();
        Fixture { authenticator, ed_key, ed_public_pem, es_key }
    }

    fn claims(iss: &str) -> serde_json::Value {
        json!({
            "iss": iss,
            "aud": AUDIENCE,
            "sub": "analyst-7",
            "agency": "翔安区司法局",
            "roles": ["requester", "data-steward"],
            "iat": NOW - 10,
            "exp": NOW + 600,
            "jti": "t-1",
        })
    }

    /// Signs arbitrary JSON claims, so tests can give claims the wrong types.
    fn sign(key: &SigningKey, claims: &serde_json::Value) -> String {
        let header = Header::new(key.algorithm.jsonwebtoken());
        jsonwebtoken::encode(&header, claims, &key.encoding_key).unwrap()
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    /// Asserts the refusal reason, and that the failure's display never echoes the token.
    fn assert_refused(fixture: &Fixture, token: &str, reason: &str) {
        let failure =
            fixture.authenticator.authenticate(&format!("Bearer {token}"), NOW).expect_err("token must be refused");
        assert_eq!(failure.reason(), reason, "{failure}");
        assert_display_hides(&failure, token);
    }

    fn assert_display_hides(failure: &AuthFailure, token: &str) {
        let shown = format!("{failure} {failure:?}");
        assert!(!token.is_empty() && !shown.contains(token));
        for segment in token.split('.').filter(|s| s.len() > 3) {
            assert!(!shown.contains(segment), "{shown}");
        }
    }

    #[test]
    fn valid_eddsa_token_is_accepted() {
        let f = fixture();
        let token = issue_token(
            &f.ed_key,
            &TokenClaims {
                iss: ISSUER.into(),
                aud: AUDIENCE.into(),
                sub: "analyst-7".into(),
                agency: "翔安区司法局".into(),
                roles: vec!["requester".into(), "data-steward".into(), "requester".into()],
                iat: NOW - 10,
                exp: NOW + 600,
                nbf: Some(NOW - 10),
                jti: Some("t-1".into()),
            },
        )
        .unwrap();
        let principal = f.authenticator.authenticate(&format!("Bearer {token}"), NOW).unwrap();
        assert_eq!(
            principal,
            Principal {
                subject: "analyst-7".into(),
                agency: "翔安区司法局".into(),
                roles: vec![Role::Requester],
                issuer: ISSUER.into(),
                token_id: Some("t-1".into()),
                expires_at: NOW + 600,
            }
        );
        assert!(principal.has_role(Role::Requester));
        assert!(!principal.has_role(Role::Auditor));
    }

    #[test]
    fn valid_es256_token_is_accepted_and_scheme_is_case_insensitive() {
        let f = fixture();
        let mut body = claims(OTHER_ISSUER);
        body["roles"] = json!(["auditor", "admin"]);
        body["aud"] = json!(["someone-else", AUDIENCE]);
        let token = sign(&f.es_key, &body);
        // JWS ES256 signatures are the fixed 64-byte r‖s form, not DER.
        let signature = token.rsplit('.').next().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(signature).unwrap().len(), 64);
        let principal = f.authenticator.authenticate(&format!("bEaReR {token}"), NOW).unwrap();
        assert_eq!(principal.roles, vec![Role::Auditor, Role::Admin]);
        assert_eq!(principal.issuer, OTHER_ISSUER);
    }

    #[test]
    fn kid_header_is_issued_and_accepted() {
        let (key, _, public_pem) = SigningKey::generate(JwtAlgorithm::EdDsa).unwrap();
        let key = key.with_key_id("2025-01");
        let token = sign_claims(&key, &claims(ISSUER));
        let header = decode_json_object(token.split('.').next().unwrap()).unwrap();
        assert_eq!(header["kid"], "2025-01");
        let authenticator = Authenticator::new(
            vec![TrustedIssuer {
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                algorithm: JwtAlgorithm::EdDsa,
                public_key_pem: public_pem,
            }],
            AuthPolicy::default(),
        )
        .unwrap();
        assert!(authenticator.authenticate(&format!("Bearer {token}"), NOW).is_ok());
    }

    fn sign_claims(key: &SigningKey, body: &serde_json::Value) -> String {
        let claims: TokenClaims = serde_json::from_value(body.clone()).unwrap();
        issue_token(key, &claims).unwrap()
    }

    #[test]
    fn expired_token_is_refused_but_leeway_is_honoured() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["iat"] = json!(NOW - 700);
        body["exp"] = json!(NOW - 61);
        assert_refused(&f, &sign(&f.ed_key, &body), "expired");
        body["exp"] = json!(NOW - 30);
        let token = sign(&f.ed_key, &body);
        assert!(f.authenticator.authenticate(&format!("Bearer {token}"), NOW).is_ok());
    }

    #[test]
    fn token_before_nbf_is_refused() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["nbf"] = json!(NOW + 300);
        assert_refused(&f, &sign(&f.ed_key, &body), "not_yet_valid");
    }

    #[test]
    fn token_issued_in_the_future_is_refused() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["iat"] = json!(NOW + 300);
        body["exp"] = json!(NOW + 900);
        assert_refused(&f, &sign(&f.ed_key, &body), "issued_in_future");
    }

    #[test]
    fn exp_given_as_string_is_a_claim_type_failure() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["exp"] = json!("9999999999");
        assert_refused(&f, &sign(&f.ed_key, &body), "claim_type");
    }

    #[test]
    fn iat_given_as_string_is_a_claim_type_failure() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["iat"] = json!("1700000000");
        assert_refused(&f, &sign(&f.ed_key, &body), "claim_type");
    }

    #[test]
    fn float_or_negative_or_string_nbf_dates_are_claim_type_failures() {
        let f = fixture();
        for (claim, value) in
            [("exp", json!((NOW + 600) as f64)), ("exp", json!(-1)), ("nbf", json!("0")), ("nbf", json!(null))]
        {
            let mut body = claims(ISSUER);
            body[claim] = value;
            assert_refused(&f, &sign(&f.ed_key, &body), "claim_type");
        }
    }

    #[test]
    fn wrong_audience_is_refused() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["aud"] = json!("another-gateway");
        assert_refused(&f, &sign(&f.ed_key, &body), "wrong_audience");
        body["aud"] = json!([]);
        assert_refused(&f, &sign(&f.ed_key, &body), "wrong_audience");
        body["aud"] = json!(7);
        assert_refused(&f, &sign(&f.ed_key, &body), "claim_type");
    }

    #[test]
    fn unknown_issuer_is_refused() {
        let f = fixture();
        let body = claims("https://idp.evil.example");
        assert_refused(&f, &sign(&f.ed_key, &body), "unknown_issuer");
    }

    #[test]
    fn missing_agency_is_refused() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body.as_object_mut().unwrap().remove("agency");
        let token = sign(&f.ed_key, &body);
        assert_refused(&f, &token, "missing_claim");
        let failure = f.authenticator.authenticate(&format!("Bearer {token}"), NOW).unwrap_err();
        assert_eq!(failure, AuthFailure::MissingClaim { claim: "agency" });
    }

    #[test]
    fn missing_iss_exp_iat_sub_or_roles_is_refused() {
        let f = fixture();
        for claim in ["iss", "aud", "exp", "iat", "sub", "roles"] {
            let mut body = claims(ISSUER);
            body.as_object_mut().unwrap().remove(claim);
            assert_refused(&f, &sign(&f.ed_key, &body), "missing_claim");
        }
    }

    #[test]
    fn roles_not_an_array_is_refused() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["roles"] = json!("requester");
        assert_refused(&f, &sign(&f.ed_key, &body), "claim_type");
        body["roles"] = json!(["requester", 3]);
        assert_refused(&f, &sign(&f.ed_key, &body), "claim_type");
    }

    #[test]
    fn a_token_mixing_requester_and_auditor_is_refused() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["roles"] = json!(["requester", "auditor"]);
        assert_refused(&f, &sign(&f.ed_key, &body), "mixed_roles");
    }

    #[test]
    fn no_known_role_is_refused() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["roles"] = json!(["Requester", "superuser"]);
        assert_refused(&f, &sign(&f.ed_key, &body), "no_known_role");
    }

    #[test]
    fn empty_or_overlong_subject_is_refused() {
        let f = fixture();
        for value in [json!(""), json!("x".repeat(MAX_CLAIM_CHARS + 1)), json!("a\nb")] {
            let mut body = claims(ISSUER);
            body["sub"] = value;
            assert_refused(&f, &sign(&f.ed_key, &body), "claim_type");
        }
    }

    #[test]
    fn lifetime_beyond_policy_is_refused() {
        let f = fixture();
        let mut body = claims(ISSUER);
        body["iat"] = json!(NOW - 10);
        body["exp"] = json!(NOW - 10 + 12 * 3600 + 1);
        assert_refused(&f, &sign(&f.ed_key, &body), "lifetime_too_long");
        body["exp"] = json!(NOW - 10 + 12 * 3600);
        let token = sign(&f.ed_key, &body);
        assert!(f.authenticator.authenticate(&format!("Bearer {token}"), NOW).is_ok());
    }

    #[test]
    fn alg_none_is_refused() {
        let f = fixture();
        for alg in ["none", "None", "NONE"] {
            let token = format!("{}.{}.", b64(&json!({"alg": alg, "typ": "JWT"})), b64(&claims(ISSUER)));
            assert_refused(&f, &token, "algorithm_not_allowed");
        }
    }

    #[test]
    fn hs256_signed_with_the_issuers_public_key_is_refused() {
        let f = fixture();
        let signing_input = format!("{}.{}", b64(&json!({"alg": "HS256", "typ": "JWT"})), b64(&claims(ISSUER)));
        let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, f.ed_public_pem.as_bytes());
        let tag = ring::hmac::sign(&secret, signing_input.as_bytes());
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_refused(&f, &token, "algorithm_not_allowed");

        // Even jsonwebtoken used directly cannot verify HMAC in this process: the provider
        // refuses to build the verifier.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let direct =
            jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(f.ed_public_pem.as_bytes()), &validation);
        assert_eq!(direct.unwrap_err().kind(), &ErrorKind::InvalidAlgorithm);
    }

    #[test]
    fn other_algorithms_in_the_header_are_refused() {
        let f = fixture();
        for alg in ["HS256", "HS512", "RS256", "PS256", "ES384", "ES512", "eddsa", "EdDSA "] {
            let token = format!("{}.{}.c2ln", b64(&json!({"alg": alg})), b64(&claims(ISSUER)));
            assert_refused(&f, &token, "algorithm_not_allowed");
        }
    }

    #[test]
    fn token_signed_by_another_key_of_the_same_algorithm_is_refused() {
        let f = fixture();
        let (stranger, _, _) = SigningKey::generate(JwtAlgorithm::EdDsa).unwrap();
        assert_refused(&f, &sign(&stranger, &claims(ISSUER)), "bad_signature");
        let (stranger, _, _) = SigningKey::generate(JwtAlgorithm::Es256).unwrap();
        assert_refused(&f, &sign(&stranger, &claims(OTHER_ISSUER)), "bad_signature");
    }

    #[test]
    fn tampered_payload_is_refused() {
        let f = fixture();
        let token = sign(&f.ed_key, &claims(ISSUER));
        let mut elevated = claims(ISSUER);
        elevated["roles"] = json!(["admin"]);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], b64(&elevated), parts[2]);
        assert_refused(&f, &forged, "bad_signature");
        let stripped = format!("{}.{}.", parts[0], parts[1]);
        assert_refused(&f, &stripped, "bad_signature");
    }

    #[test]
    fn algorithm_other_than_the_issuers_configured_one_is_refused() {
        let f = fixture();
        // ES256 issuer, EdDSA token (and the reverse).
        assert_refused(&f, &sign(&f.ed_key, &claims(OTHER_ISSUER)), "algorithm_not_allowed");
        assert_refused(&f, &sign(&f.es_key, &claims(ISSUER)), "algorithm_not_allowed");
    }

    #[test]
    fn garbage_is_malformed() {
        let f = fixture();
        let valid = sign(&f.ed_key, &claims(ISSUER));
        let parts: Vec<&str> = valid.split('.').collect();
        let too_long = "a".repeat(MAX_TOKEN_BYTES + 1);
        let garbage = [
            "garbage",
            "a.b",
            "a.b.c.d",
            "..",
            "!!!.???.***",
            "eyJhbGciOiJFZERTQSJ9.bm90IGpzb24.c2ln",
            "bm90IGpzb24.bm90IGpzb24.c2ln",
            &format!("{}.{}.{}", b64(&json!(["EdDSA"])), parts[1], parts[2]),
            &format!("{}.{}.{}", parts[0], b64(&json!("claims")), parts[2]),
            &format!("{}.{}.{}", b64(&json!({"alg": 5})), parts[1], parts[2]),
            &format!("{}.{}.{}", b64(&json!({"alg": "EdDSA", "crit": ["exp"], "exp": "x"})), parts[1], parts[2]),
            &format!("{}.{}.{}+", parts[0], parts[1], parts[2]),
            &format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            &too_long,
        ];
        for token in garbage {
            assert_refused(&f, token, "malformed");
        }
    }

    #[test]
    fn header_without_bearer_is_refused() {
        let f = fixture();
        let token = sign(&f.ed_key, &claims(ISSUER));
        for value in [
            token.clone(),
            format!("Basic {token}"),
            format!("Bearer  {token}"),
            format!("Bearer\t{token}"),
            format!("Bearer{token}"),
            "Bearer ".to_owned(),
            String::new(),
        ] {
            let failure = f.authenticator.authenticate(&value, NOW).unwrap_err();
            assert_eq!(failure.reason(), "missing_bearer", "{value:?}");
            assert_display_hides(&failure, &token);
        }
    }

    #[test]
    fn provider_refuses_every_algorithm_but_eddsa_and_es256() {
        install_jwt_crypto_provider();
        install_jwt_crypto_provider();
        let secret = DecodingKey::from_secret(b"secret");
        let rsa = DecodingKey::from_rsa_raw_components(&[0xc1; 256], &[1, 0, 1]);
        for algorithm in [
            Algorithm::HS256,
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES384,
        ] {
            assert!((RING_JWT_PROVIDER.verifier_factory)(&algorithm, &secret).is_err());
            assert!((RING_JWT_PROVIDER.verifier_factory)(&algorithm, &rsa).is_err());
            let encoding = EncodingKey::from_secret(b"secret");
            assert!((RING_JWT_PROVIDER.signer_factory)(&algorithm, &encoding).is_err());
        }
        // The right algorithm with a key of the wrong family is refused too.
        assert!((RING_JWT_PROVIDER.verifier_factory)(&Algorithm::EdDSA, &secret).is_err());
        assert!((RING_JWT_PROVIDER.verifier_factory)(&Algorithm::ES256, &rsa).is_err());
        assert!((RING_JWT_PROVIDER.verifier_factory)(&Algorithm::ES256, &DecodingKey::from_ec_der(&[4; 64])).is_err());
    }

    #[test]
    fn jwk_utils_work_for_p256_and_error_cleanly_otherwise() {
        install_jwt_crypto_provider();
        let (key, _, _) = SigningKey::generate(JwtAlgorithm::Es256).unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key.encoding_key, Algorithm::ES256).unwrap();
        let jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(params) = &jwk.algorithm else {
            panic!("expected an ec jwk");
        };
        assert_eq!(params.curve, EllipticCurve::P256);
        let mut point = vec![4];
        point.extend(URL_SAFE_NO_PAD.decode(&params.x).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(&params.y).unwrap());
        assert_eq!(point, key.public_key);
        assert!(jsonwebtoken::jwk::Jwk::from_encoding_key(&key.encoding_key, Algorithm::ES384).is_err());
        assert!(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&EncodingKey::from_rsa_der(&[0; 8]), Algorithm::RS256).is_err()
        );
        // Known answer: SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            hex::encode(ring_digest(b"abc", ThumbprintHash::SHA256)),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn signing_key_pem_round_trips() {
        install_jwt_crypto_provider();
        for algorithm in [JwtAlgorithm::EdDsa, JwtAlgorithm::Es256] {
            let (key, private_pem, public_pem) = SigningKey::generate(algorithm).unwrap();
            assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            let loaded = SigningKey::from_pkcs8_pem(&private_pem).unwrap();
            assert_eq!(loaded.algorithm(), algorithm);
            assert_eq!(loaded.public_key_pem(), public_pem);
            assert_eq!(key.public_key_pem(), public_pem);
            assert!(!format!("{loaded:?}").contains(&private_pem[30..60]));
        }
        assert!(SigningKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
    }

    #[test]
    fn openssl_style_pkcs8_v1_ed25519_key_is_accepted() {
        install_jwt_crypto_provider();
        // RFC 8410 §10.3 example private key (PKCS#8 v1, as OpenSSL writes it).
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pkcs8_pem(pem).unwrap();
        assert_eq!(key.algorithm(), JwtAlgorithm::EdDsa);
        // RFC 8410 §10.1: the matching public key.
        assert_eq!(
            key.public_key_pem(),
            "-----BEGIN PUBLIC KEY-----\n\
             MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
             -----END PUBLIC KEY-----\n"
        );
    }

    #[test]
    fn bad_issuer_configuration_names_the_issuer() {
        install_jwt_crypto_provider();
        let (_, _, ed_public) = SigningKey::generate(JwtAlgorithm::EdDsa).unwrap();
        let (_, es_private, es_public) = SigningKey::generate(JwtAlgorithm::Es256).unwrap();
        let issuer = |name: &str, algorithm, pem: &str| TrustedIssuer {
            issuer: name.into(),
            audience: AUDIENCE.into(),
            algorithm,
            public_key_pem: pem.into(),
        };
        for (pem, algorithm) in [
            ("not a pem", JwtAlgorithm::EdDsa),
            (es_public.as_str(), JwtAlgorithm::EdDsa),
            (ed_public.as_str(), JwtAlgorithm::Es256),
            (es_private.as_str(), JwtAlgorithm::Es256),
        ] {
            let error =
                Authenticator::new(vec![issuer("https://idp.broken.example", algorithm, pem)], AuthPolicy::default())
                    .unwrap_err();
            assert!(matches!(error, AuthConfigError::BadPublicKey { .. }));
            assert!(error.to_string().contains("https://idp.broken.example"), "{error}");
        }
        let duplicate = Authenticator::new(
            vec![issuer(ISSUER, JwtAlgorithm::EdDsa, &ed_public), issuer(ISSUER, JwtAlgorithm::Es256, &es_public)],
            AuthPolicy::default(),
        );
        assert!(matches!(duplicate, Err(AuthConfigError::DuplicateIssuer { .. })));
        assert!(matches!(Authenticator::new(vec![], AuthPolicy::default()), Err(AuthConfigError::NoIssuers)));
    }

    #[test]
    fn config_forms_deserialize() {
        let issuer: TrustedIssuer = serde_json::from_value(json!({
            "issuer": ISSUER, "audience": AUDIENCE, "algorithm": "ES256", "public_key_pem": "x"
        }))
        .unwrap();
        assert_eq!(issuer.algorithm, JwtAlgorithm::Es256);
        let policy: AuthPolicy = serde_json::from_value(json!({"leeway_secs": 5})).unwrap();
        assert_eq!(policy, AuthPolicy { max_lifetime_secs: 43_200, leeway_secs: 5, ..AuthPolicy::default() });
        assert!(serde_json::from_value::<JwtAlgorithm>(json!("HS256")).is_err());
        assert_eq!(serde_json::to_value(Role::Auditor).unwrap(), json!("auditor"));
    }
}
