//! `shuzhu query`: ask the gateway for an indicator.

use std::process::ExitCode;

use anyhow::{Result, bail};
use shuzhu_policy::period::Month;
use shuzhu_proto::v1 as pb;

use crate::output::{self, Format};

pub(crate) const EXAMPLES: &str = "Examples:
  shuzhu query --demo ./demo --indicator closure_rate --group-by region,year --from 2023-01 --to 2024-12
  shuzhu query --gateway https://127.0.0.1:8443 --ca pki/ca.pem --token-file analyst.jwt \\
      --indicator on_time_rate --group-by cause --filter region=350213 --from 2024-01 --to 2024-06 --purpose 诉源治理
  shuzhu query --demo ./demo --indicator filed --group-by month --from 2024-01 --to 2024-12 --format csv
  shuzhu query --demo ./demo --indicator filing_deviation --group-by region --from 2024-01 --to 2024-12

Indicators: `shuzhu indicators --local` lists them with their formulas and dimensions
Dimensions: region (or region:city, region:province) court division instance type_code cause year quarter month dispute_type
Cells with fewer contributors than the threshold (10 by default) show as <10; partial means a node was missing.
filing_deviation rows have a level (绿 green < 15 %, 黄 yellow to 30 %, 红 red above, on |deviation|) and compare
with the same months of the three previous years; no baseline means none was filed in them.

Exit codes:
  0  a complete answer (every node asked answered), or a partial one with --allow-partial
  1  an error: refused, invalid, unavailable, or the answer could not be read
  2  the command line is wrong
  3  a partial answer (a node was missing): the answer is printed, marked partial (a `coverage` column and
     a `# partial answer` line in CSV, a PARTIAL ANSWER line under the table, \"partial\": true in JSON)";

/// Arguments of `shuzhu query`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    conn: super::Connection,
    /// Indicator id (see the list below).
    #[arg(long)]
    indicator: String,
    /// Group-by dimensions, comma separated.
    #[arg(long, value_delimiter = ',')]
    group_by: Vec<String>,
    /// First month, YYYY-MM (default: January of last year).
    #[arg(long)]
    from: Option<String>,
    /// Last month, YYYY-MM (default: December of last year).
    #[arg(long)]
    to: Option<String>,
    /// Filter dim=value (repeatable; dim=a|b for several values).
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Purpose of the request, as in the grant.
    #[arg(long, default_value = "司法统计")]
    purpose: String,
    /// Legal basis (free text, recorded masked in the audit ledger).
    #[arg(long, default_value = "")]
    legal_basis: String,
    /// table, json or csv.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Which demo token to use with --demo (requester or manager).
    #[arg(long, default_value = "requester")]
    as_role: String,
    /// Exit 0 even when the answer is partial (a node was missing); the output still says so.
    #[arg(long)]
    allow_partial: bool,
    /// CSV for Excel: column headers in English (`en`, the default) or Chinese (`zh`).
    #[arg(long, value_enum, default_value = "en")]
    headers: output::Headers,
    /// CSV without the UTF-8 byte-order mark (Excel needs the mark to read UTF-8; scripts may not want it).
    #[arg(long)]
    no_bom: bool,
}

/// Exit code of a partial answer (unless `--allow-partial`).
pub(crate) const EXIT_PARTIAL: u8 = 3;

pub(crate) fn run(a: Args) -> Result<ExitCode> {
    let (gateway, ca, token) = a.conn.resolve(&a.as_role)?;
    let last_year = time::OffsetDateTime::now_utc().year() - 1;
    let from = Month::parse(a.from.as_deref().unwrap_or(&format!("{last_year}-01")))
        .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to = Month::parse(a.to.as_deref().unwrap_or(&format!("{last_year}-12")))
        .map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let mut filters = Vec::new();
    for f in &a.filters {
        let Some((dim, values)) = f.split_once('=') else { bail!("--filter {f:?} must look like dim=value") };
        let dim = dim.trim();
        let mut vals: Vec<String> = values.split('|').map(|v| v.trim().to_string()).collect();
        if dim == "region" {
            vals = vals.iter().map(|v| region_code(v)).collect::<Result<_>>()?;
        }
        filters.push(pb::DimensionFilter { dimension: dim.into(), values: vals });
    }
    let req = pb::QueryRequest {
        indicator: a.indicator.clone(),
        group_by: a.group_by.clone(),
        period: Some(pb::Period { from_month: from.yyyymm(), to_month: to.yyyymm() }),
        filters,
        purpose: a.purpose.clone(),
        legal_basis: a.legal_basis.clone(),
    };
    let rt = super::runtime()?;
    let resp = rt.block_on(async {
        let ch = crate::client::connect(&gateway, &ca).await?;
        crate::client::query(ch, &token, req).await.map_err(|s| anyhow::anyhow!(crate::client::explain(&s)))
    })?;
    let kind = shuzhu_policy::indicator::indicator(&resp.indicator).map_or("count", |i| i.kind.as_str());
    // `region:city` and `region:province` come back as the `region` column.
    let group_by: Vec<String> = a.group_by.iter().map(|d| d.split(':').next().unwrap_or(d).to_string()).collect();
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&output::answer_json(&resp))?),
        Format::Csv => {
            let csv = output::answer_csv_for(&resp, &group_by, a.headers);
            print!("{}{csv}", if a.no_bom { "" } else { "\u{feff}" })
        }
        Format::Table => {
            let name = shuzhu_policy::indicator::indicator(&resp.indicator).map_or("", |i| i.name);
            println!("{} {} {}..{}", resp.indicator, name, from, to);
            print!("{}", output::answer_table(&resp, &group_by, kind));
        }
    }
    if let Some(line) = output::partial_line(&resp) {
        if a.allow_partial {
            eprintln!("warning: {line}");
        } else {
            eprintln!("error: {line} (exit {EXIT_PARTIAL}; --allow-partial accepts it)");
            return Ok(ExitCode::from(EXIT_PARTIAL));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A region given by its code (as is) or by its name: a district or county (`思明区`, or with its
/// city, `厦门市思明区`), a city (`厦门市`) or a province (`福建省`), from the names the catalogue of
/// counties knows (GB/T 2260). A name several places share is refused with their codes.
fn region_code(value: &str) -> Result<String> {
    if value.chars().all(|c| c.is_ascii_digit()) {
        return Ok(value.to_string());
    }
    let mut found: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (code, province, city, county) in shuzhu_policy::pii::counties::COUNTIES {
        let short_city = city.trim_end_matches('市');
        if [county.to_string(), format!("{city}{county}"), format!("{short_city}{county}")].iter().any(|n| n == value) {
            found.insert(code.to_string(), format!("{city}{county}"));
        }
        if value == *city || value == short_city {
            found.insert(format!("{}00", &code[..4]), city.to_string());
        }
        if value == *province {
            found.insert(format!("{}0000", &code[..2]), province.to_string());
        }
    }
    match found.len() {
        1 => Ok(found.into_keys().next().unwrap_or_default()),
        0 => bail!(
            "--filter region={value:?}: neither a 6-digit region code nor a district, city or province name known here"
        ),
        _ => bail!(
            "--filter region={value:?} names several places: {} (give the code or the name with its city)",
            found.iter().map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", ")
        ),
    }
}
