//! The committed fuzz corpora replayed on the stable toolchain: every file of `fuzz/corpus/TARGET/` and
//! `fuzz/regressions/TARGET/` goes through the very harness function the `cargo fuzz` target `TARGET`
//! calls (each crate's `fuzzing` module), so CI catches a regression of anything a fuzzing campaign
//! once reached or broke, without nightly or libFuzzer. Campaigns: `scripts/fuzz.sh`; figures:
//! `docs/reliability.md`.

use std::path::{Path, PathBuf};

/// A harness: arbitrary bytes in, a panic only when an invariant breaks.
type Harness = fn(&[u8]);

/// Every fuzz target and its harness (the target `fuzz/fuzz_targets/NAME.rs` calls the same function).
const TARGETS: &[(&str, Harness)] = &[
    ("csv_import", shuzhu_node::fuzzing::csv_import),
    ("node_config", shuzhu_node::fuzzing::node_config),
    ("policy_file", shuzhu_policy::fuzzing::policy_file),
    ("catalogue_file", shuzhu_policy::fuzzing::catalogue_file),
    ("masking", shuzhu_policy::fuzzing::masking),
    ("gateway_config", shuzhu_gateway::fuzzing::gateway_config),
    ("jwt", shuzhu_gateway::fuzzing::jwt),
    ("query_request", shuzhu_gateway::fuzzing::query_request),
    ("node_answer", shuzhu_gateway::fuzzing::node_answer),
    ("export_lines", shuzhu_ledger::fuzzing::export_lines),
    ("checkpoint_note", shuzhu_ledger::fuzzing::checkpoint_note),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_committed_fuzz_input_passes_its_harness() {
    let mut failed = Vec::new();
    let mut replayed = 0;
    for (name, harness) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz target {name} has no committed corpus in fuzz/corpus/{name}");
        for file in corpus.iter().chain(&files(&fuzz_dir().join("regressions").join(name))) {
            let data = std::fs::read(file).unwrap();
            if std::panic::catch_unwind(|| harness(&data)).is_err() {
                failed.push(file.display().to_string());
            }
            replayed += 1;
        }
    }
    assert!(failed.is_empty(), "{} of {replayed} fuzz inputs fail their harness: {failed:?}", failed.len());
    eprintln!("replayed {replayed} fuzz inputs over {} targets", TARGETS.len());
}

#[test]
fn every_fuzz_target_is_replayed() {
    let mut on_disk: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    on_disk.sort();
    let mut here: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    here.sort();
    assert_eq!(on_disk, here, "fuzz/fuzz_targets and the replay list differ");
    for (name, _) in TARGETS {
        let source = std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"))).unwrap();
        assert!(source.contains(&format!("fuzzing::{name}(data)")), "target {name} calls another harness");
    }
}

/// Writes the seed inputs each target's corpus starts from (run once by hand, then minimised with
/// `cargo fuzz cmin`): `cargo test --test integration fuzz_replay::write_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes seed files into fuzz/corpus; run by hand"]
fn write_fuzz_seeds() {
    let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| seeds.push((target, name.to_string(), bytes));

    // CSV files as a court exports them: generated rows, then the shapes import must survive.
    let gen_dir = tempfile::tempdir().unwrap();
    let cfg = shuzhu_gen::GenConfig { courts: 1, cases_per_court: 6, seed: 3, from_year: 2022, to_year: 2023 };
    shuzhu_gen::generate(gen_dir.path(), &cfg).unwrap();
    let mut csvs = Vec::new();
    let mut stack = vec![gen_dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "csv") {
                csvs.push(p);
            }
        }
    }
    csvs.sort();
    for p in &csvs {
        let text = std::fs::read_to_string(p).unwrap();
        let lines: Vec<&str> = text.lines().take(5).collect();
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        let lf = lines.join("\n") + "\n";
        add("csv_import", &format!("{stem}-lf"), lf.clone().into_bytes());
        add("csv_import", &format!("{stem}-crlf"), (lines.join("\r\n") + "\r\n").into_bytes());
        add("csv_import", &format!("{stem}-bom"), [&b"\xEF\xBB\xBF"[..], lf.as_bytes()].concat());
        if lines.len() > 2 {
            let quoted = format!("{}\n\"{}\n{}\n", lines[0], lines[1], lines[2]);
            add("csv_import", &format!("{stem}-open-quote"), quoted.into_bytes());
            let dup = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[1]);
            add("csv_import", &format!("{stem}-repeated-key"), dup.into_bytes());
        }
    }

    // Configs as `shuzhu demo` writes them.
    add(
        "node_config",
        "demo",
        r#"node_id = "court-350213"
listen = "127.0.0.1:7443"
store = "store"
journal = "journal"
pseudonym_key_file = "pseudonym.key"
journal_key_file = "journal.key"

[tls]
ca = "ca.pem"
cert = "node.pem"
key = "node.key"

[policy]
gateways = ["gw-xiamen"]
agencies = ["*"]
agencies_by_gateway = { gw-xiamen = ["翔安区司法局"] }
datasets = ["cases", "mediations"]
max_grade = "L3"
threshold = 10
keep_raw = []

[minimise]
scrub_summary = true
address_to_county = false
"#
        .as_bytes()
        .to_vec(),
    );
    add(
        "node_config",
        "postgres",
        r#"node_id = "court-350203"
listen = "127.0.0.1:0"
store = "store"
pseudonym_key_file = "k"
[tls]
ca = "ca.pem"
cert = "c.pem"
key = "c.key"
[policy]
gateways = ["gw"]
agencies = ["*"]
datasets = ["cases"]
[source]
kind = "postgres"
"#
        .as_bytes()
        .to_vec(),
    );
    add(
        "gateway_config",
        "demo",
        r#"gateway_id = "gw-xiamen"
listen = "127.0.0.1:8443"
http_listen = "127.0.0.1:8444"
policy = "policy.toml"
ledger_dir = "ledger"
node_timeout_ms = 5000
cell_key_secret = "cell-key.secret"

[ledger]
origin = "audit.court.example/shuzhu"
retain_logs_days = 183
retain_personal_info_days = 1095

[tls]
ca = "ca.pem"
cert = "gw.pem"
key = "gw.key"

[[issuer]]
issuer = "https://idp.example"
audience = "shuzhu-gateway"
algorithm = "EdDSA"
public_key = "issuer.pub.pem"

[[node]]
id = "court-350213"
address = "https://127.0.0.1:7443"
datasets = ["cases"]
regions = ["350213"]
courts = ["闽0213"]
receipt_key_file = "court.receipt.pub"
"#
        .as_bytes()
        .to_vec(),
    );

    add("policy_file", "demo", shuzhu::federation::demo_policy().into_bytes());
    add("catalogue_file", "withdrawal_rate", include_bytes!("data/withdrawal_rate.toml").to_vec());
    add("catalogue_file", "embedded", shuzhu_policy::catalogue::EMBEDDED.as_bytes().to_vec());

    for (i, text) in [
        "原告张伟诉被告李娜民间借贷纠纷，身份证号110101199003074514，电话13812345678。",
        "被告王芳住所地福建省厦门市思明区湖滨南路123号，邮箱wang.fang@example.com",
        "统一社会信用代码91350200MA2XXXXXX1，银行卡6222021234567890128，车牌闽D12345",
        "（２０２３）闽０２１３民初１２３４号，＋８６ １３８ １２３４ ５６７８",
        "护照E12345678，港澳通行证C01234567，2023-01-05立案",
        "当事人欧阳娜娜于2023年1月5日起诉",
    ]
    .iter()
    .enumerate()
    {
        add("masking", &format!("text-{i}"), text.as_bytes().to_vec());
    }

    // Tokens: the whole header value, and header + claims signed with the harness's key.
    let now = shuzhu_gateway::fuzzing::FUZZ_NOW;
    let header = br#"{"alg":"EdDSA","typ":"JWT"}"#;
    let claims = format!(
        r#"{{"iss":"{}","aud":"{}","sub":"analyst-7","agency":"翔安区司法局","roles":["requester"],"iat":{},"exp":{},"nbf":{},"jti":"t-1"}}"#,
        shuzhu_gateway::fuzzing::FUZZ_ISSUER,
        shuzhu_gateway::fuzzing::FUZZ_AUDIENCE,
        now - 10,
        now + 600,
        now - 10
    );
    let token = shuzhu_gateway::fuzzing::signed_token(header, claims.as_bytes());
    add("jwt", "header-value", [&[0u8][..], format!("Bearer {token}").as_bytes()].concat());
    add("jwt", "signed-parts", [&[1u8][..], header, b"\n", claims.as_bytes()].concat());
    let auditor = claims.replace(r#"["requester"]"#, r#"["auditor","admin"]"#).replace(r#","nbf":"#, r#","x":"#);
    add("jwt", "signed-auditor", [&[1u8][..], header, b"\n", auditor.as_bytes()].concat());

    // Query requests: protobuf (gRPC) and JSON (HTTP).
    use prost::Message as _;
    use shuzhu_proto::v1 as pb;
    let q = |indicator: &str, group_by: &[&str], filters: &[(&str, &[&str])]| pb::QueryRequest {
        indicator: indicator.into(),
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
        period: Some(pb::Period { from_month: 202301, to_month: 202312 }),
        filters: filters
            .iter()
            .map(|(d, v)| pb::DimensionFilter {
                dimension: d.to_string(),
                values: v.iter().map(|s| s.to_string()).collect(),
            })
            .collect(),
        purpose: "诉源治理".into(),
        legal_basis: "《人民法院在线诉讼规则》".into(),
    };
    let requests = [
        q("filed", &["region", "month"], &[]),
        q("closure_rate", &["region:city", "year"], &[("type_code", &["民初", "民终"])]),
        q("litigation_per_10k", &["region", "year"], &[("region", &["350213", "350203"])]),
        q("filing_deviation", &["court"], &[("cause", &["民间借贷纠纷"])]),
    ];
    for (i, r) in requests.iter().enumerate() {
        add("query_request", &format!("proto-{i}"), [&[0u8][..], &r.encode_to_vec()].concat());
    }
    let bodies = [
        r#"{"indicator":"filed","group_by":["region","month"],"period":{"from_month":202301,"to_month":202312},"purpose":"诉源治理"}"#,
        r#"{"indicator":"mediation_withdrawal_rate","group_by":["court"],"period":{"from_month":202201,"to_month":202212},"filters":[{"dimension":"region","values":["350213"]}],"purpose":"审判管理","legal_basis":"x"}"#,
    ];
    for (i, b) in bodies.iter().enumerate() {
        add("query_request", &format!("json-{i}"), [&[1u8][..], b.as_bytes()].concat());
    }

    // Node answers, one per question the harness asks (keys shaped like each question's dimensions).
    let m = |id: &str, value: i64, contributors: u64| pb::MeasureValue {
        id: id.into(),
        value,
        contributors,
        max_single: value.min(value / contributors.max(1) as i64 + 1),
    };
    let answers: Vec<(u8, Vec<pb::GroupPartial>)> = vec![
        (
            0,
            vec![pb::GroupPartial {
                key: vec!["350213".into(), "2023-01".into()],
                measures: vec![m("cases.filed", 40, 40)],
            }],
        ),
        (
            1,
            vec![pb::GroupPartial {
                key: vec!["闽0213".into(), "2023".into()],
                measures: vec![m("cases.closed", 30, 30), m("cases.active", 42, 42)],
            }],
        ),
        (
            3,
            vec![pb::GroupPartial {
                key: vec!["民间借贷纠纷".into(), "2023-Q1".into()],
                measures: vec![m("cases.trial_days", 1200, 20), m("cases.closed", 20, 20)],
            }],
        ),
        (
            7,
            vec![pb::GroupPartial {
                key: vec![],
                measures: vec![m("cases.closed", 50, 50), m("cases.closed_judgment", 20, 20)],
            }],
        ),
    ];
    for (which, groups) in answers {
        let a = pb::AggregateResponse {
            node_id: "court-350213".into(),
            groups,
            data_until: "2023-12-31".into(),
            release_digest: "00".repeat(32),
            threshold: 10,
            local_policy_version: "0123456789abcdef".into(),
            receipt: None,
            data_from: "2019-01-02".into(),
        };
        add("node_answer", &format!("answer-{which}"), [&[which, 1u8][..], &a.encode_to_vec()].concat());
    }

    // A ledger export and its notes, signed with the harness's key.
    let dir = tempfile::tempdir().unwrap();
    let signer = shuzhu_ledger::fuzzing::fuzz_signer();
    let verifier_text = signer.verifier().to_text();
    let ledger = shuzhu_ledger::Ledger::open(dir.path(), shuzhu_ledger::LedgerOptions::new(signer)).unwrap();
    for i in 0..4u64 {
        ledger
            .append(
                shuzhu_ledger::EntryFields::new(1_700_000_000_000 + i)
                    .with("agency", format!("a{i}"))
                    .with("decision", "allow"),
            )
            .unwrap();
    }
    let (cp, note) = ledger.checkpoint().unwrap().unwrap();
    let mut export = Vec::new();
    shuzhu_ledger::verify::write_export(&ledger, &mut export).unwrap();
    add("export_lines", "four-entries", export);
    add("checkpoint_note", "note", note.into_bytes());
    add("checkpoint_note", "body", cp.body().into_bytes());
    add("checkpoint_note", "verifier-key", verifier_text.into_bytes());

    for (target, name, bytes) in seeds {
        let d = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("seed-{name}")), bytes).unwrap();
    }
}
