//! Crash test: a child process (this test binary re-executed in child mode) appends from several
//! threads and prints each seq after `append` returns; the parent kills it with SIGKILL at random
//! moments, many times, and after each kill reopens the ledger and checks that every acknowledged
//! entry is present, the root recomputes from the leaves, and the last signed checkpoint is
//! consistent with the recovered tree.
//!
//! When to kill is decided by what the child has acknowledged, not by the wall clock: most rounds
//! wait until the child has acknowledged a random number of new entries (then kill it mid-append),
//! a few kill it right after spawning (during recovery). A loaded machine therefore makes the test
//! slower, never weaker: with a fixed sleep, a child slowed at start-up acknowledged almost nothing
//! and the final "acknowledged too little" guard failed by chance.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use shuzhu_ledger::checkpoint::NoteSigner;
use shuzhu_ledger::merkle::{self, MemTree};
use shuzhu_ledger::{EntryFields, Ledger, LedgerOptions};

const CHILD_DIR: &str = "SHUZHU_LEDGER_CRASH_CHILD_DIR";
const KEY_NAME: &str = "shuzhu.test/crash";
const ROUNDS: usize = 24;
/// How long the parent waits for the acknowledgements it asked for before calling the child stuck.
const ACK_WAIT: Duration = Duration::from_secs(300);

/// The seqs the child acknowledged so far, and whether its stdout has closed.
#[derive(Default)]
struct Acks {
    state: Mutex<(Vec<u64>, bool)>,
    changed: Condvar,
}

impl Acks {
    /// Reads `ack N` lines until the child's stdout closes.
    fn read_from(&self, stdout: impl std::io::Read) {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line.strip_prefix("ack ") {
                self.state.lock().unwrap().0.push(seq.parse::<u64>().unwrap());
                self.changed.notify_all();
            }
        }
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    /// Blocks until `n` acknowledgements have been read; panics if the child exits or stalls first.
    fn wait_for(&self, n: usize, round: usize) {
        let deadline = Instant::now() + ACK_WAIT;
        let mut state = self.state.lock().unwrap();
        while state.0.len() < n {
            assert!(!state.1, "round {round}: the child exited after {} of {n} acknowledgements", state.0.len());
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "round {round}: the child acknowledged {} of {n} in {ACK_WAIT:?}", state.0.len());
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
    }
}

fn options(dir: &Path, timer: bool) -> LedgerOptions {
    let signer = NoteSigner::load(KEY_NAME, &dir.join("key.pk8")).expect("key");
    let mut o = LedgerOptions::new(signer);
    o.segment_bytes = 32 << 10;
    o.checkpoint_every = 64;
    o.checkpoint_interval = timer.then(|| Duration::from_millis(40));
    o
}

/// Whether `e` is sled failing to take its directory lock.
fn is_lock_contention(e: &shuzhu_ledger::LedgerError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::WouldBlock)
            || s.to_string().contains("could not acquire lock")
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Opens the child's ledger, waiting for the directory lock: the parent has just dropped its own
/// `Ledger` after checking the previous round, and sled 0.34 releases its file lock from a
/// background thread some time after the `Db` is dropped (spacejam/sled#1234), much later on a
/// loaded machine. Without the wait the child died at once and the round acknowledged nothing.
fn open_waiting_for_lock(dir: &Path) -> Ledger {
    let started = Instant::now();
    loop {
        match Ledger::open(&dir.join("ledger"), options(dir, true)) {
            Ok(l) => return l,
            Err(e) if is_lock_contention(&e) && started.elapsed() < ACK_WAIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("child open: {e}"),
        }
    }
}

/// Child mode: append from 4 threads until killed (or the parent is gone: printing then fails;
/// bounded at 600 s as a last resort).
fn child(dir: &Path) {
    let ledger = Arc::new(open_waiting_for_lock(dir));
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while started.elapsed() < Duration::from_secs(600) {
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
        // A new ledger seals its empty tree: size 0 is consistent with every tree (no proof exists).
        if cp.size == 0 {
            return (size, torn, discarded);
        }
        let proof = ledger.consistency_proof(cp.size, size).unwrap();
        merkle::verify_consistency(cp.size, size, &cp.root, &root, &proof).expect("checkpoint consistent with tree");
    }
    (size, torn, discarded)
}

/// Simulates a write cut short by the crash: half a frame at the end of the last segment. Returns
/// false, tearing nothing, when that segment's header is incomplete (the child was killed between
/// creating the file and writing its header): no frame can follow such a header, so a torn frame
/// there is a state no crash produces, and recovery rightly refuses it as a bad header.
fn tear_tail(dir: &Path) -> bool {
    let seg_dir = dir.join("ledger/segments");
    let Some(last) = shuzhu_ledger::segment::list_segments(&seg_dir).unwrap().pop() else { return false };
    let path = shuzhu_ledger::segment::segment_path(&seg_dir, last);
    if std::fs::metadata(&path).unwrap().len() < shuzhu_ledger::segment::HEADER_LEN {
        return false;
    }
    let mut frame = Vec::new();
    shuzhu_ledger::segment::encode_frame(&[0x5a; 300], &mut frame);
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&frame[..150]).unwrap();
    true
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
            // A child that fails says why in the test's output.
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acks = Arc::new(Acks::default());
        let reader = {
            let acks = acks.clone();
            std::thread::spawn(move || acks.read_from(stdout))
        };
        if round % 4 == 1 {
            // Right after spawning: the kill may land anywhere in start-up or recovery.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        } else {
            // Mid-append, once the child has acknowledged a random number of new entries.
            acks.wait_for(rng.random_range(8..=64), round);
            std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        acked.extend(acks.state.lock().unwrap().0.iter().copied());
        let tore = round % 4 == 3 && dir.join("ledger/segments").exists() && tear_tail(dir);
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
