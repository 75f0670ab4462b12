//! Ledger benchmark (not a test): durable appends per second with 1, 8 and 64 concurrent
//! writers against raw sled `insert` + `flush` per entry on the same disk in the same run, then
//! inclusion-proof time at 1 M and 10 M entries, and finding a signed checkpoint by size (what a
//! proof request needs) against reading back and verifying every note (what it used to cost).
//!
//! `cargo run --release -p shuzhu-ledger --example ledger_bench [-- SECONDS_PER_RUN [MAX_PROOF_SIZE [WRITERS,…]]]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shuzhu_ledger::checkpoint::NoteSigner;
use shuzhu_ledger::merkle::{self, Hash, NodeStore};
use shuzhu_ledger::tree::NodeFiles;
use shuzhu_ledger::{EntryFields, Ledger, LedgerOptions};

fn entry(i: u64) -> EntryFields {
    EntryFields::new(1_764_000_000_000 + i)
        .with("action", "query")
        .with("gateway", "gw-1")
        .with("principal", format!("judge-{}", i % 97))
        .with("agency", format!("court-{}", i % 13))
        .with("indicator", "closure_rate")
        .with("dimensions", "court,month")
        .with("filters", "cause=contract")
        .with("purpose", "statistics")
        .with("legal_basis", "art-**")
        .with("decision", "allow")
        .with("reason", "grant 7")
        .with("policy_version", "2026-11-30.3")
        .with("node_releases", "n1:0f3a..,n2:9b1c..")
        .with("answer_digest", "5e2d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5")
        .with("cells_suppressed", "2")
        .with("latency_ms", "14")
}

/// Runs `writers` threads calling `op` for `secs`; returns operations per second.
fn run(writers: usize, secs: f64, op: Arc<dyn Fn(u64) + Send + Sync>) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|t| {
            let (stop, count, op) = (stop.clone(), count.clone(), op.clone());
            std::thread::spawn(move || {
                let mut i = t as u64 * 1_000_000_000;
                while !stop.load(Ordering::Relaxed) {
                    op(i);
                    i += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer thread");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn proof_time(size: u64, dir: &std::path::Path) {
    let build = Instant::now();
    let mut tree = NodeFiles::open(dir, 0).expect("node files");
    let chunk = 1 << 16;
    let mut next = 0u64;
    let mut leaves: Vec<Hash> = Vec::with_capacity(chunk);
    while next < size {
        leaves.clear();
        let end = (next + chunk as u64).min(size);
        leaves.extend((next..end).map(|i| merkle::leaf_hash(&i.to_be_bytes())));
        tree.append(&leaves).expect("append");
        next = end;
    }
    let built = build.elapsed();
    let root = merkle::root(&tree, size).expect("root");
    let n = 20_000u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let start = Instant::now();
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let idx = x % size;
        let t = Instant::now();
        let proof = merkle::inclusion_proof(&tree, idx, size).expect("proof");
        times.push(t.elapsed());
        merkle::verify_inclusion(idx, size, &tree.node(0, idx).expect("leaf"), &proof, &root).expect("verifies");
    }
    let per = start.elapsed() / n as u32;
    times.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "inclusion proof at {size} entries: generation p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs; {:.1} µs mean with verification; tree built in {:.1} s",
        us(times[times.len() / 2]),
        us(times[times.len() * 99 / 100]),
        us(times[times.len() - 1]),
        us(per),
        built.as_secs_f64()
    );
}

/// A proof request names a signed checkpoint by size: look one up among the hundreds signed while
/// 20 000 entries are appended, from the in-memory index, against reading and verifying every
/// note in `checkpoints.log`.
fn checkpoint_lookup(dir: &std::path::Path, key: &[u8]) {
    let mut o = LedgerOptions::new(NoteSigner::from_pkcs8("bench/audit", key).expect("signer"));
    o.checkpoint_interval = None;
    o.checkpoint_every = 0;
    let ledger = Arc::new(Ledger::open(dir, o).expect("open"));
    // 64 writers (group commit keeps this quick), each asking for a checkpoint every 10 entries.
    let threads: Vec<_> = (0..64u64)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                for i in 0..313 {
                    ledger.append(entry(t * 1_000 + i)).expect("append");
                    if i % 10 == 9 {
                        ledger.checkpoint().expect("checkpoint");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    let start = Instant::now();
    let all = ledger.checkpoints().expect("read all");
    let read_all = start.elapsed();
    let sizes: Vec<u64> = all.iter().map(|n| ledger.verifier().verify(n).expect("signed").size).collect();
    let n = 2_000usize;
    let start = Instant::now();
    for i in 0..n {
        let size = sizes[(i * 7919) % sizes.len()];
        ledger.checkpoint_note(size).expect("read").expect("signed");
    }
    let by_size = start.elapsed() / n as u32;
    println!(
        "checkpoint by size among {} signed: {:.1} µs each (index in memory, one pread + signature check); reading back and verifying every note: {:.1} ms",
        all.len(),
        by_size.as_secs_f64() * 1e6,
        read_all.as_secs_f64() * 1e3
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4.0);
    let max_proof: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let writer_counts: Vec<usize> =
        args.get(3).map(|s| s.split(',').filter_map(|w| w.parse().ok()).collect()).unwrap_or_else(|| vec![1, 8, 64]);
    let base = tempfile::Builder::new().prefix("ledger-bench").tempdir_in("/work").or_else(|_| tempfile::tempdir());
    let base = base.expect("temp dir");
    println!("data in {} ({} s per run)", base.path().display(), secs);

    let key = NoteSigner::generate_pkcs8().expect("key");
    for writers in writer_counts {
        let dir = base.path().join(format!("ledger-{writers}"));
        let mut o = LedgerOptions::new(NoteSigner::from_pkcs8("bench/audit", &key).expect("signer"));
        o.checkpoint_every = 10_000;
        let ledger = Arc::new(Ledger::open(&dir, o).expect("open"));
        let l = ledger.clone();
        let ours = run(
            writers,
            secs,
            Arc::new(move |i| {
                l.append(entry(i)).expect("append");
            }),
        );

        let db = sled::Config::new().path(base.path().join(format!("sled-{writers}"))).open().expect("sled");
        let payload = {
            let e = entry(0);
            e.fields.iter().map(|(k, v)| format!("{k}={v};")).collect::<String>().into_bytes()
        };
        let db2 = db.clone();
        let raw = run(
            writers,
            secs,
            Arc::new(move |i| {
                db2.insert(i.to_be_bytes(), payload.as_slice()).expect("insert");
                db2.flush().expect("flush");
            }),
        );
        println!(
            "{writers:>2} writers: ledger {ours:>9.0} durable appends/s | raw sled insert+flush {raw:>9.0}/s | ratio {:.2}x",
            ours / raw
        );
        let size = ledger.size();
        drop(ledger);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(base.path().join(format!("sled-{writers}")));
        println!("   ({size} entries appended in that run)");
    }
    checkpoint_lookup(&base.path().join("lookup"), &key);
    let _ = std::fs::remove_dir_all(base.path().join("lookup"));
    for size in [1_000_000u64, 10_000_000] {
        if size > max_proof {
            continue;
        }
        let dir = base.path().join(format!("tree-{size}"));
        proof_time(size, &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
