//! `shuzhu policy`: check a federation policy file (every problem, with file, line and key) and explain
//! the decision it gives a request, with the rule or grant behind it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use shuzhu_policy::dimension::Dimension;
use shuzhu_policy::grant::{AccessRequest, Decision, FederationPolicy};
use shuzhu_policy::indicator::indicator;
use shuzhu_policy::period::parse_day;

pub(crate) const CHECK_EXAMPLES: &str = "Examples:
  shuzhu policy check policy.toml
  shuzhu policy check demo/fed/policy.toml && echo clean

Exit status 0 when the policy is clean, 1 when it has problems (each printed as FILE:LINE: KEY: what).";

pub(crate) const EXPLAIN_EXAMPLES: &str = "Examples:
  shuzhu policy explain --policy policy.toml --agency xm-sfj --indicator closure_rate --group-by region,year --purpose 诉源治理
  shuzhu policy explain --policy policy.toml --agency xm-sfj --indicator filed --group-by court --purpose 诉源治理 --date 2026-01-31

Exit status 0 when allowed, 2 when denied, 1 when the policy or the request is unusable.";

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Validate a policy file and report every problem with file, line and key.
    #[command(after_help = CHECK_EXAMPLES)]
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Show the decision a policy gives one request, and the rule or grant behind it.
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
}

/// Arguments of `shuzhu policy explain`.
#[derive(clap::Args, Debug)]
pub(crate) struct ExplainArgs {
    /// The policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The requesting agency.
    #[arg(long)]
    agency: String,
    /// Indicator id.
    #[arg(long)]
    indicator: String,
    /// Group-by dimensions, comma separated.
    #[arg(long, value_delimiter = ',')]
    group_by: Vec<String>,
    /// Filter dimension (dim, dim=value or dim=a|b; repeatable).
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Purpose.
    #[arg(long)]
    purpose: String,
    /// Legal basis stated with the request.
    #[arg(long, default_value = "")]
    legal_basis: String,
    /// Role of the requester's token.
    #[arg(long, default_value = "requester")]
    role: String,
    /// Day of the decision, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    date: Option<String>,
}

pub(crate) fn run(c: Command) -> Result<ExitCode> {
    match c {
        Command::Check { file } => check(&file),
        Command::Explain(a) => explain(a),
    }
}

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

fn check(file: &Path) -> Result<ExitCode> {
    let text = read(file)?;
    match FederationPolicy::check_text(&text) {
        Ok(policy) => {
            println!(
                "{}: ok, policy version {} ({} agencies, {} grants, {} deny rules)",
                file.display(),
                policy.version(),
                policy.agencies.len(),
                policy.grants.len(),
                policy.denies.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                let line = p.line.map(|l| format!(":{l}")).unwrap_or_default();
                let key = if p.key.is_empty() { String::new() } else { format!(" {}:", p.key) };
                println!("{}{line}:{key} {}", file.display(), p.message);
            }
            // The file's shape (TOML syntax, unknown keys, types) is checked first: while it does not
            // parse into a policy, the rules cannot be checked and more problems may follow.
            let shape_only = toml::from_str::<FederationPolicy>(&text).is_err();
            let more = if shape_only { "; fix these first: semantic checks run once the file parses" } else { "" };
            println!("{} problem(s){more}", problems.len());
            Ok(ExitCode::from(1))
        }
    }
}

fn explain(a: ExplainArgs) -> Result<ExitCode> {
    let text = read(&a.policy)?;
    let policy = match FederationPolicy::check_text(&text) {
        Ok(p) => p,
        Err(problems) => {
            bail!(
                "{} does not pass the check ({} problems; run shuzhu policy check)",
                a.policy.display(),
                problems.len()
            )
        }
    };
    let Some(ind) = indicator(&a.indicator) else { bail!("unknown indicator {:?}", a.indicator) };
    let parse_dims = |list: &[String]| -> Result<Vec<Dimension>> {
        list.iter()
            .map(|d| {
                let name = d.split_once('=').map_or(d.as_str(), |(n, _)| n);
                Dimension::parse(name.trim()).ok_or_else(|| anyhow::anyhow!("unknown dimension {name:?}"))
            })
            .collect()
    };
    let group_by = parse_dims(&a.group_by)?;
    let filters = parse_dims(&a.filters)?;
    let filter_values: Vec<(Dimension, Vec<String>)> = filters
        .iter()
        .zip(&a.filters)
        .filter_map(|(d, text)| {
            let (_, values) = text.split_once('=')?;
            Some((*d, values.split('|').map(|v| v.trim().to_string()).collect()))
        })
        .collect();
    let today = match &a.date {
        Some(d) => parse_day(d).ok_or_else(|| anyhow::anyhow!("--date {d:?} is not YYYY-MM-DD"))?,
        None => shuzhu_gateway::query::today(),
    };
    let roles = [a.role.as_str()];
    let decision = policy.decide(&AccessRequest {
        agency: &a.agency,
        roles: &roles,
        indicator: ind,
        group_by: &group_by,
        filters: &filters,
        filter_values: &filter_values,
        purpose: &a.purpose,
        legal_basis: &a.legal_basis,
        today,
    });
    println!("policy version {}", policy.version());
    match decision {
        Decision::Allow { grant, threshold, accept_partial, protection, dp_epsilon_milli, dp_budget_milli } => {
            let g = &policy.grants[grant];
            println!("decision: ALLOW");
            println!(
                "grant: grant[{grant}] for {} (clearance {}, purposes {})",
                g.agency,
                g.clearance,
                g.purposes.join(", ")
            );
            println!("threshold: {threshold} (strictest of the applicable grants and field constraints)");
            println!("partial answers: {}", if accept_partial { "accepted" } else { "refused" });
            match protection {
                shuzhu_policy::protect::Protection::Dp => println!(
                    "protection: dp (ε {}.{:03} per count, budget {}.{:03} per dataset)",
                    dp_epsilon_milli / 1000,
                    dp_epsilon_milli % 1000,
                    dp_budget_milli / 1000,
                    dp_budget_milli % 1000
                ),
                other => println!("protection: {}", other.as_str()),
            }
            let q = policy.quota(&a.agency, today);
            let show = |v: Option<u32>| v.map_or("none".to_string(), |v| v.to_string());
            println!("quotas: {} per minute, {} per day", show(q.per_minute), show(q.per_day));
            Ok(ExitCode::SUCCESS)
        }
        Decision::Deny { rule, reason } => {
            println!("decision: DENY");
            println!("rule: {rule}");
            println!("reason: {reason}");
            Ok(ExitCode::from(2))
        }
    }
}
