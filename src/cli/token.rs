//! `shuzhu token`: development signing keys and tokens. Production tokens come from the identity
//! provider the federation trusts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use shuzhu_gateway::auth::{AuthPolicy, JwtAlgorithm, Role, SigningKey, TokenClaims, issue_token};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Create a signing key pair (PKCS#8 private key, SPKI public key for the gateway config).
    #[command(after_help = "Example:\n  shuzhu token keygen --out issuer --alg EdDSA")]
    Keygen {
        /// Output folder (issuer.key, issuer.pub.pem).
        #[arg(long)]
        out: PathBuf,
        /// EdDSA or ES256.
        #[arg(long, default_value = "EdDSA")]
        alg: String,
    },
    /// Sign a token.
    #[command(
        after_help = "Example:\n  shuzhu token issue --key issuer/issuer.key --issuer https://idp.shuzhu.test --audience shuzhu-gateway \\\n      --sub analyst-001 --agency xm-sfj --role requester --ttl 3600 --out analyst.jwt"
    )]
    Issue {
        /// Signing key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// `iss` claim.
        #[arg(long)]
        issuer: String,
        /// `aud` claim.
        #[arg(long)]
        audience: String,
        /// `sub` claim.
        #[arg(long)]
        sub: String,
        /// `agency` claim.
        #[arg(long)]
        agency: String,
        /// Roles (repeatable): requester, auditor, admin.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Lifetime in seconds (at most the gateway's `[auth] max_lifetime_secs`, 43200 by default).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// The gateway's config file, to read its `[auth] max_lifetime_secs` (otherwise the default).
        #[arg(long, value_name = "GATEWAY_TOML")]
        max_lifetime_from: Option<PathBuf>,
        /// Write the token here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub(crate) fn run(c: Command) -> Result<ExitCode> {
    shuzhu_gateway::auth::install_jwt_crypto_provider();
    match c {
        Command::Keygen { out, alg } => {
            let alg = match alg.as_str() {
                "EdDSA" => JwtAlgorithm::EdDsa,
                "ES256" => JwtAlgorithm::Es256,
                other => anyhow::bail!("algorithm {other:?} must be EdDSA or ES256"),
            };
            let (_, private_pem, public_pem) = SigningKey::generate(alg)?;
            // The private key is created 0600 (its folder 0700) as it is opened.
            shuzhu_net::secret::write_secret_file(&out.join("issuer.key"), private_pem.as_bytes())?;
            std::fs::write(out.join("issuer.pub.pem"), public_pem)?;
            println!("{} {}", out.join("issuer.key").display(), out.join("issuer.pub.pem").display());
        }
        Command::Issue { key, issuer, audience, sub, agency, roles, ttl, max_lifetime_from, out } => {
            // A token the gateway would refuse, or that authorises nothing, is refused here.
            let known: Vec<&str> = [Role::Requester, Role::Auditor, Role::Admin].iter().map(|r| r.as_str()).collect();
            if let Some(bad) = roles.iter().find(|r| Role::from_claim(r).is_none()) {
                anyhow::bail!("role {bad:?} is not one the gateway knows ({})", known.join(", "));
            }
            let max = match &max_lifetime_from {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    let doc: toml::Value =
                        toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
                    match doc.get("auth").and_then(|a| a.get("max_lifetime_secs")) {
                        Some(v) => v.as_integer().and_then(|n| u64::try_from(n).ok()).with_context(|| {
                            format!("{}: [auth] max_lifetime_secs is not a number of seconds", path.display())
                        })?,
                        None => AuthPolicy::default().max_lifetime_secs,
                    }
                }
                None => AuthPolicy::default().max_lifetime_secs,
            };
            if ttl > max {
                anyhow::bail!(
                    "--ttl {ttl} is above the gateway's maximum token lifetime of {max} s, so it would refuse the token \
                     (give --max-lifetime-from GATEWAY_TOML if its [auth] max_lifetime_secs is another)"
                );
            }
            let pem = std::fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
            let key = SigningKey::from_pkcs8_pem(&pem)?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let claims = TokenClaims {
                iss: issuer,
                aud: audience,
                sub,
                agency,
                roles,
                iat: now,
                exp: now + ttl,
                nbf: None,
                jti: None,
            };
            let token = issue_token(&key, &claims)?;
            match out {
                // A token is a bearer secret: created 0600.
                Some(p) => shuzhu_net::secret::write_secret_file(&p, token.as_bytes())
                    .with_context(|| format!("writing {}", p.display()))?,
                None => println!("{token}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
