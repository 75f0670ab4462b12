//! `shuzhu indicators`: the indicator catalogue — each indicator's id, Chinese name, kind, formula and the
//! dimensions it may be grouped by — as the gateway serves it (`ListIndicators`), or as this binary's
//! catalogue defines it with `--local`.

use std::process::ExitCode;

use anyhow::Result;
use shuzhu_proto::v1 as pb;

pub(crate) const EXAMPLES: &str = "Examples:
  shuzhu indicators --demo ./demo
  shuzhu indicators --local
  shuzhu --catalogue my-catalogue.toml indicators --local   # with indicators added in a catalogue file";

/// Arguments of `shuzhu indicators`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    conn: super::Connection,
    /// Show this binary's catalogue instead of asking a gateway.
    #[arg(long)]
    local: bool,
    /// Which demo token to use with --demo (requester or manager).
    #[arg(long, default_value = "requester")]
    as_role: String,
}

/// The local catalogue in the gateway's answer shape.
pub(crate) fn local() -> Vec<pb::IndicatorInfo> {
    shuzhu_gateway::service::indicator_infos()
}

/// One block per indicator: `id  name  (kind)`, then its formula and dimensions, indented.
pub(crate) fn render(list: &[pb::IndicatorInfo]) -> String {
    let mut out = String::new();
    for i in list {
        out.push_str(&format!("{}  {}  ({})\n", i.id, i.name, i.kind));
        out.push_str(&format!("    formula:    {}\n", i.formula));
        out.push_str(&format!("    dimensions: {}\n", i.dimensions.join(", ")));
        if !i.datasets.is_empty() {
            out.push_str(&format!("    datasets:   {}\n", i.datasets.join(" + ")));
        }
    }
    out
}

pub(crate) fn run(a: Args) -> Result<ExitCode> {
    let list = if a.local {
        local()
    } else {
        let (gateway, ca, token) = a.conn.resolve(&a.as_role)?;
        let rt = super::runtime()?;
        rt.block_on(async {
            let ch = crate::client::connect(&gateway, &ca).await?;
            let mut g = pb::gateway_client::GatewayClient::new(ch);
            let req = crate::client::authorized(pb::ListIndicatorsRequest {}, &token)?;
            let resp = g.list_indicators(req).await.map_err(|s| anyhow::anyhow!(crate::client::explain(&s)))?;
            anyhow::Ok(resp.into_inner().indicators)
        })?
    };
    print!("{}", render(&list));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_catalogue_shows_names_formulas_and_dimensions() {
        let text = render(&local());
        assert!(text.contains("closure_rate  结案率  (ratio)"), "{text}");
        assert!(text.contains("formula:    closed in P ÷ (pending at start of P + filed in P)"), "{text}");
        assert!(text.contains("dimensions: region, court, division"), "{text}");
    }
}
