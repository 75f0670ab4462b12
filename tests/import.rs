//! Import: malformed rows are quarantined with line, field and reason while the good rows are
//! stored; importing the same file twice changes nothing.

use shuzhu_node::import::{ImportOptions, import_file};
use shuzhu_node::store::{SledStore, Store, StoredForms};
use shuzhu_policy::pseudonym::PseudonymKey;

use crate::util::fx;

fn snapshot(store: &SledStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    store.scan("cases", &mut |k, v| out.push((k.to_vec(), v.to_vec()))).unwrap();
    out.sort();
    out
}

#[test]
fn bad_rows_are_quarantined_good_rows_kept_and_reimport_changes_nothing() {
    let src = &fx().cases_csvs()[0];
    let text = std::fs::read_to_string(src).unwrap();
    let mut lines: Vec<String> = text.lines().take(41).map(String::from).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    // Corrupt copies of good rows (each with a new case number so only its own fault counts).
    let corrupt = |line: &str, n: usize, field: &str, value: &str| -> String {
        let mut rec: Vec<String> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes())
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(String::from)
            .collect();
        rec[col("case_no")] = format!("(2099)闽9999民初{n}号");
        if !field.is_empty() {
            rec[col(field)] = value.into();
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&rec).unwrap();
        String::from_utf8(w.into_inner().unwrap()).unwrap().trim_end().to_string()
    };
    let base = lines[1].clone();
    let bad = vec![
        (corrupt(&base, 1, "filed_on", "2023-02-30"), "filed_on"),
        (corrupt(&base, 2, "type_code", "民特"), "type_code"),
        (corrupt(&base, 3, "appealed", "yes"), "appealed"),
        (corrupt(&base, 4, "claim_amount", "12.345"), "claim_amount"),
        (corrupt(&base, 5, "region_code", "35020"), "region_code"),
        ("too,few,fields".to_string(), "row"),
        (corrupt(&base, 6, "closed_on", "1999-01-01"), "closed_on"),
        (lines[2].clone(), "case_no"),
    ];
    let first_bad_line = lines.len() as u64 + 1;
    for (l, _) in &bad {
        lines.push(l.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.csv");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let key = PseudonymKey::from_bytes(&[42u8; 32]).unwrap();
    let run = |store: &SledStore| {
        import_file(
            store,
            &file,
            ImportOptions {
                dataset: "cases",
                key: &key,
                keep_raw: &[],
                minimise: Default::default(),
                progress: &mut |_| {},
            },
        )
        .unwrap()
    };
    let r = run(&store);
    assert_eq!(r.rows_read, 40 + bad.len() as u64);
    assert_eq!(r.imported, 40);
    assert_eq!(r.rejected_rows, bad.len() as u64);
    assert_eq!(r.total_records, 40);
    for (i, (_, field)) in bad.iter().enumerate() {
        let line = first_bad_line + i as u64;
        let q = r.quarantine.iter().find(|q| q.line == line).unwrap_or_else(|| panic!("line {line} not reported"));
        assert_eq!(q.field, *field, "line {line}: {q:?}");
        assert!(!q.reason.is_empty());
    }
    let report = r.quarantine_csv();
    assert!(report.starts_with("line,field,reason\n"));
    let before = snapshot(&store);
    let again = run(&store);
    assert_eq!((again.imported, again.total_records), (40, 40));
    assert_eq!(snapshot(&store), before, "re-importing the same file must change nothing");
}

#[test]
fn a_file_with_unknown_or_missing_columns_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let key = PseudonymKey::from_bytes(&[1u8; 32]).unwrap();
    let file = dir.path().join("x.csv");
    std::fs::write(&file, "case_no,court_code,secret_column\n1,2,3\n").unwrap();
    let err = import_file(
        &store,
        &file,
        ImportOptions {
            dataset: "cases",
            key: &key,
            keep_raw: &[],
            minimise: Default::default(),
            progress: &mut |_| {},
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing columns") && err.contains("secret_column"), "{err}");
    assert_eq!(store.count("cases").unwrap(), 0);
}

/// Rows of the fixture's first cases file, repeated under new case numbers up to `n` rows.
fn big_cases_csv(path: &std::path::Path, n: usize) {
    let mut r = csv::Reader::from_path(&fx().cases_csvs()[0]).unwrap();
    let header = r.headers().unwrap().clone();
    let case_no = header.iter().position(|h| h == "case_no").unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(&header).unwrap();
    for i in 0..n {
        let mut rec: Vec<String> = rows[i % rows.len()].iter().map(String::from).collect();
        rec[case_no] = format!("(2098)闽9998民初{i}号");
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn an_import_killed_mid_way_leaves_a_consistent_store_and_a_rerun_completes_it() {
    use std::os::unix::process::ExitStatusExt;
    const N: usize = 130_000;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.csv");
    big_cases_csv(&file, N);
    // The first fixture node's configuration, with a store of its own.
    let (_, node_cfg) = &fx().prepared.nodes[0];
    let store_dir = dir.path().join("store");
    let cfg_text: String = std::fs::read_to_string(node_cfg)
        .unwrap()
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some(("store", _)) => format!("store = {:?}", store_dir.display().to_string()),
            Some(("pseudonym_key_file", f)) => {
                let f = node_cfg.parent().unwrap().join(f.trim_matches('"'));
                format!("pseudonym_key_file = {:?}", f.display().to_string())
            }
            _ => l.into(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let key = shuzhu_node::config::NodeConfig::load(&cfg).unwrap().pseudonym_key().unwrap();

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu"))
        .args(["node", "import", "--config"])
        .arg(&cfg)
        .args(["--dataset", "cases"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as its second block file appears: the first batch is committed to sled (maybe
    // not yet flushed), the second written and maybe not committed.
    let blocks = store_dir.join("blocks").join("cases");
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the import ended before it could be killed");
        if std::fs::read_dir(&blocks).map(|d| d.count() > 1).unwrap_or(false) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));

    // The store opens and holds only whole committed batches of complete, decodable records.
    let store = SledStore::open(&store_dir).unwrap();
    let partial = snapshot(&store);
    assert!(partial.len() < N, "killed mid-way");
    assert_eq!(partial.len() % 50_000, 0, "only whole batches are committed");
    assert_eq!(store.count("cases").unwrap(), partial.len() as u64);
    for (k, v) in &partial {
        let k = std::str::from_utf8(k).unwrap();
        assert!(k.starts_with("(2098)闽9998民初"));
        postcard::from_bytes::<shuzhu_node::record::Record>(v).unwrap();
    }
    let run = |store: &SledStore| {
        import_file(
            store,
            &file,
            ImportOptions {
                dataset: "cases",
                key: &key,
                keep_raw: &[],
                minimise: Default::default(),
                progress: &mut |_| {},
            },
        )
        .unwrap()
    };
    let r = run(&store);
    assert_eq!((r.imported, r.rejected_rows, r.total_records), (N as u64, 0, N as u64));
    let rerun = snapshot(&store);
    drop(store);

    // The same contents as one uninterrupted import into a fresh store.
    let clean = SledStore::open(&dir.path().join("clean")).unwrap();
    run(&clean);
    assert_eq!(rerun, snapshot(&clean));
    assert_eq!(rerun.len(), N);
    // What survived the crash is exactly what the complete import stores for those keys.
    assert!(partial.iter().all(|p| rerun.binary_search(p).is_ok()));
}

#[test]
fn the_import_line_says_what_minimise_dropped_and_the_store_records_the_forms_held() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.csv");
    big_cases_csv(&file, 20);
    let (_, node_cfg) = &fx().prepared.nodes[0];
    let store_dir = dir.path().join("store");
    let base: String = std::fs::read_to_string(node_cfg)
        .unwrap()
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some(("store", _)) => format!("store = {:?}", store_dir.display().to_string()),
            Some(("pseudonym_key_file", f)) => {
                let f = node_cfg.parent().unwrap().join(f.trim_matches('"'));
                format!("pseudonym_key_file = {:?}", f.display().to_string())
            }
            _ => l.into(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!base.contains("[minimise]"), "the fixture config sets no [minimise]");
    let import = |extra: &str| -> String {
        let cfg = dir.path().join("node.toml");
        std::fs::write(&cfg, format!("{base}\n{extra}")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu"))
            .args(["node", "import", "--config"])
            .arg(&cfg)
            .args(["--dataset", "cases"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let forms = || SledStore::open(&store_dir).unwrap().stored_forms("cases").unwrap();

    let off = import("[minimise]\nscrub_summary = false\naddress_to_county = false\n");
    assert!(off.contains("[minimise] turned off the minimised form of"), "{off}");
    assert!(off.contains("summary") && off.contains("defendant_address"), "{off}");
    assert_eq!(forms(), Some(StoredForms::default()));

    let on = import("");
    assert!(!on.contains("[minimise]"), "{on}");
    assert_eq!(forms(), Some(StoredForms::LEGACY));
    // Every row re-imported without the county code: no row holds it any more, but the record is sticky
    // until the store is rebuilt.
    let again = import("[minimise]\naddress_to_county = false\n");
    assert!(again.contains("form of defendant_address:"), "{again}");
    assert_eq!(forms(), Some(StoredForms::LEGACY));
}

#[test]
fn a_gb18030_file_from_excel_imports_detected_or_chosen_and_the_import_is_quiet_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let utf8 = dir.path().join("utf8.csv");
    big_cases_csv(&utf8, 30);
    // What Excel writes on a Chinese Windows: GB18030 bytes with CRLF line ends.
    let text = std::fs::read_to_string(&utf8).unwrap().replace('\n', "\r\n");
    let (gb, _, unmappable) = encoding_rs::GB18030.encode(&text);
    assert!(!unmappable && gb.windows(2).any(|w| w == [0xC3, 0xF6]), "闽 is C3F6 in GB18030");
    let file = dir.path().join("cases-gbk.csv");
    std::fs::write(&file, &gb).unwrap();
    let (_, node_cfg) = &fx().prepared.nodes[0];
    let cfg = dir.path().join("node.toml");
    let store_dir = dir.path().join("store");
    let text: String = std::fs::read_to_string(node_cfg)
        .unwrap()
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some(("store", _)) => format!("store = {:?}", store_dir.display().to_string()),
            Some(("pseudonym_key_file", f)) => {
                let f = node_cfg.parent().unwrap().join(f.trim_matches('"'));
                format!("pseudonym_key_file = {:?}", f.display().to_string())
            }
            _ => l.into(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, text).unwrap();
    let cfg = cfg.display().to_string();
    let file = file.display().to_string();
    for encoding in [&[][..], &["--encoding", "gbk"][..]] {
        let mut args = vec!["node", "import", "--config", &cfg, "--dataset", "cases"];
        args.extend(encoding);
        args.push(&file);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(&args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("cases: read 30 rows (GB18030), imported 30, refused 0"), "{stdout}");
        // No progress bar and nothing else on stderr when it is not a terminal.
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    }
    let (code, out) =
        shuzhu_cli(&["node", "import", "--config", &cfg, "--dataset", "cases", "--encoding", "latin1", &file]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown encoding \"latin1\"; use auto, utf-8, gb18030 or gbk"), "{out}");
}

/// A small federation of its own under `dir` (courts of 80 cases, plus the justice and statistics
/// nodes).
fn small_federation(dir: &std::path::Path, courts: usize) -> shuzhu::federation::Prepared {
    let data = dir.join("data");
    let cfg = shuzhu_gen::GenConfig { courts, cases_per_court: 80, seed: 9, ..Default::default() };
    shuzhu_gen::generate(&data, &cfg).unwrap();
    let specs = shuzhu::federation::discover(&data).unwrap();
    shuzhu::federation::prepare(&dir.join("fed"), &specs, &mut |_| {}).unwrap()
}

fn shuzhu_cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shuzhu")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn an_import_while_the_node_serves_is_refused_naming_the_serving_process() {
    let tmp = tempfile::tempdir().unwrap();
    let prepared = small_federation(tmp.path(), 1);
    let (id, config) = prepared.nodes.iter().find(|(id, _)| id.starts_with("court-")).unwrap().clone();
    let store_dir = config.parent().unwrap().join("store");
    // Five cases the node does not hold yet (copies of its first rows under new case numbers).
    let mut reader = csv::Reader::from_path(tmp.path().join("data").join(&id).join("cases.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let at = headers.iter().position(|h| h == "case_no").unwrap();
    let mut w = csv::Writer::from_path(tmp.path().join("more.csv")).unwrap();
    w.write_record(&headers).unwrap();
    for (i, rec) in reader.records().take(5).enumerate() {
        let mut rec: Vec<String> = rec.unwrap().iter().map(String::from).collect();
        rec[at] = format!("(2099)闽9999民初{i}号");
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
    let more = tmp.path().join("more.csv");
    let args = ["node", "import", "--config", config.to_str().unwrap(), "--dataset", "cases", more.to_str().unwrap()];

    let rt = runtime();
    let running = rt.block_on(shuzhu::federation::start(&prepared)).unwrap();
    let (code, out) = shuzhu_cli(&args);
    assert_ne!(code, 0, "an import while the node serves must be refused: {out}");
    assert!(out.contains(&format!("in use by process {}", std::process::id())), "{out}");
    assert!(out.contains(&store_dir.display().to_string()), "{out}");
    rt.block_on(running.shutdown());
    let held = SledStore::open(&store_dir).unwrap().count("cases").unwrap();
    let imported = prepared.imports.iter().find(|(n, r)| *n == id && r.dataset == "cases").unwrap().1.total_records;
    assert_eq!(held, imported, "the refused import changed nothing");
    // Once the node is stopped the same import goes through.
    let (code, out) = shuzhu_cli(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("durable"), "{out}");
    assert_eq!(SledStore::open(&store_dir).unwrap().count("cases").unwrap(), imported + 5);
}

#[test]
fn a_mistyped_store_is_refused_unless_allowed_and_a_node_without_data_is_missing_from_coverage() {
    let tmp = tempfile::tempdir().unwrap();
    let prepared = small_federation(tmp.path(), 2);
    let courts: Vec<(String, std::path::PathBuf)> =
        prepared.nodes.iter().filter(|(id, _)| id.starts_with("court-")).cloned().collect();
    let (empty_id, config) = &courts[1];
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, text.replace("store = \"store\"", "store = \"stroe\"")).unwrap();
    let typo = config.parent().unwrap().join("stroe");
    let open = || match shuzhu_node::service::NodeState::open(&shuzhu_node::config::NodeConfig::load(config).unwrap()) {
        Ok(_) => panic!("a node started on a store that does not exist or is empty"),
        Err(e) => e.to_string(),
    };
    let err = open();
    assert!(err.contains(&typo.display().to_string()) && err.contains("does not exist"), "{err}");
    assert!(err.contains("--allow-empty"), "{err}");
    assert!(!typo.exists(), "nothing was created at the mistyped path");
    // An existing but empty store is refused too.
    std::fs::create_dir(&typo).unwrap();
    let err = open();
    assert!(err.contains("holds no record of cases"), "{err}");
    // Allowed, it serves; the gateway shows it missing for lack of data instead of counting it.
    std::fs::write(config, text.replace("store = \"store\"", "store = \"stroe\"\nallow_empty = true")).unwrap();
    let rt = runtime();
    let running = rt.block_on(shuzhu::federation::start(&prepared)).unwrap();
    let token = shuzhu::client::read_token(&prepared.tokens["requester"]).unwrap();
    let resp = rt
        .block_on(async {
            let ch = shuzhu::client::connect(&running.gateway_url, &prepared.pki.ca_cert).await.unwrap();
            shuzhu::client::query(ch, &token, crate::util::request("filed", &["year"], 202001, 202412, "诉源治理"))
                .await
        })
        .unwrap();
    let cov = resp.coverage.unwrap();
    assert_eq!((cov.asked, cov.answered), (2, 1), "{cov:?}");
    assert_eq!(cov.missing.len(), 1, "{cov:?}");
    assert_eq!(
        (cov.missing[0].node.as_str(), cov.missing[0].reason.as_str()),
        (empty_id.as_str(), "no data for dataset cases")
    );
    rt.block_on(running.shutdown());
}
