//! Crash test: a child process (this test binary re-executed in child mode) appends from several
//! threads and prints each seq after `append` returns; the parent kills it with SIGKILL at random
//! moments, many times, and after each kill reopens the ledger and checks that every acknowledged
//! entry is present, the root recomputes from the leaves, and the last signed checkpoint is
//! consistent with the recovered tree.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use shuzhu_ledger::checkpoint::NoteSigner;
use shuzhu_ledger::merkle::{self, MemTree};
use shuzhu_ledger::{EntryFields, Ledger, LedgerOptions};

const CHILD_DIR: &str = "SHUZHU_LEDGER_CRASH_CHILD_DIR";
const KEY_NAME: &str = "shuzhu.test/crash";
const ROUNDS: usize = 24;

fn options(dir: &Path, timer: bool) -> LedgerOptions {
    let signer = NoteSigner::load(KEY_NAME, &dir.join("key.pk8")).expect("key");
    let mut o = LedgerOptions::new(signer);
    o.segment_bytes = 32 << 10;
    o.checkpoint_every = 64;
    o.checkpoint_interval = timer.then(|| Duration::from_millis(40));
    o
}

/// Child mode: append forever (bounded at 30 s in case the parent died) from 4 threads.
fn child(dir: &Path) {
    let ledger = Arc::new(Ledger::open(&dir.join("ledger"), options(dir, true)).expect("child open"));
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while started.elapsed() < Duration::from_secs(30) {
                    let e = EntryFields::new(i)
                        .with("agency", format!("agency-{t}"))
                        .with("principal", format!("writer-{t}"))
                        .with("decision", "allow")
                        .with("answer", "x".repeat((i % 200) as usize));
                    let a = ledger.append(e).expect("append");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {}", a.seq).expect("stdout");
                    out.flush().expect("stdout");
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
}

/// What one reopen found: recovered size, torn tail truncated, index discarded.
fn check_recovered(dir: &Path, acked: &BTreeSet<u64>) -> (u64, bool, bool) {
    let ledger = Ledger::open(&dir.join("ledger"), options(dir, false)).expect("reopen after kill");
    let torn = ledger.open_report().torn_tail.is_some();
    let discarded = ledger.open_report().index_discarded;
    let (size, root) = ledger.head().unwrap();
    if let Some(&max) = acked.last() {
        assert!(max < size, "acknowledged entry {max} lost: recovered size {size}");
    }
    let mut tree = MemTree::default();
    for seq in 0..size {
        let e = ledger.get(seq).unwrap_or_else(|err| panic!("entry {seq} unreadable: {err}"));
        assert_eq!(e.seq, seq);
        assert!(e.value("agency").is_some_and(|a| a.starts_with("agency-")));
        tree.push(e.leaf_hash());
    }
    assert_eq!(merkle::root(&tree, size).unwrap(), root, "root does not recompute from the leaves");
    if let Some((cp, note)) = ledger.last_checkpoint() {
        let verified = ledger.verifier().verify(&note).unwrap();
        assert_eq!(verified, cp);
        assert!(cp.size <= size);
        let proof = ledger.consistency_proof(cp.size, size).unwrap();
        merkle::verify_consistency(cp.size, size, &cp.root, &root, &proof).expect("checkpoint consistent with tree");
    }
    (size, torn, discarded)
}

/// Simulates a write cut short by the crash: half a frame at the end of the last segment.
fn tear_tail(dir: &Path) {
    let seg_dir = dir.join("ledger/segments");
    let last = shuzhu_ledger::segment::list_segments(&seg_dir).unwrap().pop().unwrap();
    let mut frame = Vec::new();
    shuzhu_ledger::segment::encode_frame(&[0x5a; 300], &mut frame);
    let mut f =
        std::fs::OpenOptions::new().append(true).open(shuzhu_ledger::segment::segment_path(&seg_dir, last)).unwrap();
    f.write_all(&frame[..150]).unwrap();
}

#[test]
fn acknowledged_entries_survive_sigkill() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        child(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    NoteSigner::generate_key_file(&dir.join("key.pk8")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut acked = BTreeSet::new();
    let mut torn_tails = 0;
    let mut discarded_indexes = 0;
    let mut with_checkpoint = 0;
    let mut size = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "acknowledged_entries_survive_sigkill", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(seq) = line.strip_prefix("ack ") {
                        seen.lock().unwrap().push(seq.parse::<u64>().unwrap());
                    }
                }
            })
        };
        // Kill at a random moment: sometimes during recovery, mostly mid-append.
        std::thread::sleep(Duration::from_millis(rng.random_range(5..400)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        acked.extend(seen.lock().unwrap().iter().copied());
        let tore = round % 4 == 3 && dir.join("ledger/segments").exists();
        if tore {
            tear_tail(dir);
        }
        let (recovered, torn, discarded) = check_recovered(dir, &acked);
        assert!(!tore || torn, "round {round}: the torn tail was not reported");
        discarded_indexes += usize::from(discarded);
        assert!(recovered >= size, "round {round}: the ledger shrank from {size} to {recovered}");
        size = recovered;
        torn_tails += usize::from(torn);
        let ledger_has_cp = std::fs::metadata(dir.join("ledger/checkpoints.log")).is_ok_and(|m| m.len() > 0);
        with_checkpoint += usize::from(ledger_has_cp);
    }
    eprintln!(
        "crash test: {ROUNDS} kills, {} acknowledged, {size} recovered, {torn_tails} torn tails truncated, {with_checkpoint} rounds with a signed checkpoint, {discarded_indexes} unreadable indexes rebuilt",
        acked.len()
    );
    assert!(acked.len() > 100, "the child acknowledged too little to test anything: {}", acked.len());
    assert!(with_checkpoint > 0, "no checkpoint was ever signed");
}
