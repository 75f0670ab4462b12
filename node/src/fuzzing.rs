//! Fuzz harnesses of the node's parsers of untrusted input, shared by the `cargo fuzz` targets in `fuzz/`
//! and by the corpus replay in `tests/fuzz_replay.rs` (CI replays every committed corpus file through the
//! very function the fuzzer calls, on the stable toolchain). Not an API: each function takes arbitrary
//! bytes, must never panic on them, and panics only when an invariant it states is broken.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use shuzhu_policy::pseudonym::PseudonymKey;

use crate::config::NodeConfig;
use crate::import::{ImportError, ImportOptions, import_reader};
use crate::record::{MinimiseOptions, Record};
use crate::store::{Store, StoreError, StoredForms};

/// A store in memory: the harness runs the whole import pipeline without a disk.
/// Records by dataset and key.
type Rows = BTreeMap<(String, Vec<u8>), Vec<u8>>;

#[derive(Default)]
struct MemStore {
    rows: Mutex<Rows>,
    meta: Mutex<BTreeMap<String, String>>,
    forms: Mutex<BTreeMap<String, StoredForms>>,
}

impl Store for MemStore {
    fn upsert(&self, dataset: &str, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let mut map = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in rows {
            map.insert((dataset.to_string(), k.clone()), v.clone());
        }
        Ok(())
    }
    fn make_durable(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn scan(&self, dataset: &str, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        let map = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for ((d, k), v) in map.iter() {
            if d == dataset {
                f(k, v);
            }
        }
        Ok(())
    }
    fn count(&self, dataset: &str) -> Result<u64, StoreError> {
        let map = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map.keys().filter(|(d, _)| d == dataset).count() as u64)
    }
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.meta.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned())
    }
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner()).insert(key.into(), value.into());
        Ok(())
    }
    fn upsert_recording(
        &self,
        dataset: &str,
        rows: &[(Vec<u8>, Vec<u8>)],
        forms: StoredForms,
    ) -> Result<(), StoreError> {
        self.upsert(dataset, rows)?;
        let mut f = self.forms.lock().unwrap_or_else(|e| e.into_inner());
        let entry = f.entry(dataset.to_string()).or_default();
        *entry = entry.union(forms);
        Ok(())
    }
    fn stored_forms(&self, dataset: &str) -> Result<Option<StoredForms>, StoreError> {
        Ok(self.forms.lock().unwrap_or_else(|e| e.into_inner()).get(dataset).copied())
    }
}

/// The dataset a fuzzed CSV file is imported as: the one whose key column its text names.
fn dataset_of(data: &[u8]) -> &'static str {
    let has = |w: &[u8]| data.windows(w.len()).any(|x| x == w);
    if has(b"mediation_id") {
        "mediations"
    } else if has(b"resident_pop") {
        "population"
    } else {
        "cases"
    }
}

/// CSV record validation and minimisation: the whole `node import` pipeline (CSV reading, validation,
/// minimisation, encoding, repeated keys, quarantine) over an in-memory store. Invariants: only the
/// header can refuse the file; every data row read is either stored or quarantined, exactly; the store
/// holds exactly the rows imported, each a decodable record of the dataset's width; quarantine comes in
/// line order, after the header, and its reasons carry no identifier.
pub fn csv_import(data: &[u8]) {
    let dataset = dataset_of(data);
    let schema = shuzhu_policy::schema::dataset(dataset).unwrap_or(&shuzhu_policy::schema::CASES);
    let store = MemStore::default();
    let key = PseudonymKey::from_bytes(&[7u8; 32]).unwrap_or_else(|_| unreachable!("32 bytes make a key"));
    let minimise = MinimiseOptions {
        scrub_summary: data.len().is_multiple_of(2),
        address_to_county: !data.len().is_multiple_of(3),
    };
    let opts = ImportOptions { dataset, key: &key, keep_raw: &[], minimise, progress: &mut |_| {} };
    let report = match import_reader(&store, data, "fuzz.csv", opts) {
        Ok(r) => r,
        Err(ImportError::Header { .. }) => return,
        Err(e) => panic!("an import over a store that cannot fail failed: {e}"),
    };
    assert_eq!(report.rows_read, report.imported + report.rejected_rows, "every row is stored or quarantined");
    assert_eq!(report.total_records, report.imported, "a fresh store holds exactly the rows imported");
    assert!(report.rejected_rows <= report.quarantine.len() as u64, "every refused row has a problem");
    let mut last = 2;
    for q in &report.quarantine {
        assert!(q.line >= last, "quarantine out of line order: {} after {last}", q.line);
        last = q.line;
        assert!(!shuzhu_policy::mask::contains_identifier(&q.reason), "a reason carries an identifier: {q:?}");
    }
    store
        .scan(dataset, &mut |_, v| {
            let r: Record = postcard::from_bytes(v).unwrap_or_else(|e| panic!("stored record does not decode: {e}"));
            assert_eq!(r.values.len(), schema.fields.len(), "a stored record has one value per field");
        })
        .unwrap_or_else(|e| panic!("memory store scan: {e}"));
}

/// The node configuration file (`node.toml`), parsed and checked as `node serve` loads it.
/// Invariant: an accepted config has one stable local-policy version and no policy problem unreported.
pub fn node_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = shuzhu_net::config::parse::<NodeConfig>(Path::new("/fuzz/node.toml"), text) else { return };
    assert!(config.policy.problems().is_empty(), "an accepted config has no local-policy problem");
    assert_eq!(config.policy.version(), config.policy.version(), "the local policy version is stable");
    let _ = config.journal_dir();
    for g in &config.policy.gateways {
        let _ = config.policy.answers(g, "翔安区司法局");
    }
}
