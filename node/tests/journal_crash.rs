//! Crash test of the release journal: a child process (this test binary re-executed in child
//! mode) appends from several threads and prints each record's seq and hash after `append`
//! returns; the parent kills it with SIGKILL at random moments, many times, and after each kill
//! reopens the journal and checks that every acknowledged record is present with the hash it was
//! acknowledged with, and that the hash chain verifies from the genesis.
//!
//! When to kill is decided by what the child has acknowledged, not by the wall clock: most rounds
//! wait until the child has acknowledged a random number of new records (then kill it mid-append),
//! a few kill it right after spawning (during recovery). A loaded machine therefore makes the test
//! slower, never weaker: with a fixed sleep, a child slowed at start-up acknowledged almost nothing
//! and the final "acknowledged too little" guard could fail by chance.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use shuzhu_node::journal::{self, KIND_REFUSAL, KIND_RELEASE, Release, ReleaseJournal};

const CHILD_DIR: &str = "SHUZHU_JOURNAL_CRASH_CHILD_DIR";
const ROUNDS: usize = 20;
/// How long the parent waits for the acknowledgements it asked for before calling the child stuck.
const ACK_WAIT: Duration = Duration::from_secs(300);

/// The (seq, hash) pairs the child acknowledged so far, and whether its stdout has closed.
#[derive(Default)]
struct Acks {
    state: Mutex<(Vec<(u64, String)>, bool)>,
    changed: Condvar,
}

impl Acks {
    /// Reads `ack SEQ HASH` lines until the child's stdout closes.
    fn read_from(&self, stdout: impl std::io::Read) {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ack ") {
                let (seq, hash) = rest.split_once(' ').unwrap();
                self.state.lock().unwrap().0.push((seq.parse::<u64>().unwrap(), hash.to_string()));
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

fn release(t: usize, i: u64) -> Release {
    let refusal = i % 5 == 4;
    Release {
        kind: if refusal { KIND_REFUSAL } else { KIND_RELEASE },
        request_id: format!("req-{t}-{i}"),
        gateway: "gw-1".into(),
        agency: format!("agency-{t}"),
        dataset: "cases".into(),
        measures: vec!["cases.closed".into(); 1 + (i % 4) as usize],
        period: "202401..202412".into(),
        group_by: vec!["region".into()],
        filters: vec![format!("region={}", "3502".repeat((i % 50) as usize))],
        release_digest: if refusal { String::new() } else { format!("{i:064x}") },
        reason: if refusal { "threshold 3 is below this node's own threshold 10".into() } else { String::new() },
    }
}

/// Child mode: append from 4 threads until killed (or the parent is gone: printing then fails;
/// bounded at 600 s as a last resort).
fn child(dir: &Path) {
    let (j, _) = ReleaseJournal::open(dir, "court-1", None).expect("child open");
    let j = Arc::new(j);
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while started.elapsed() < Duration::from_secs(600) {
                    let a = j.append(&release(t, i)).expect("append");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {} {}", a.seq, a.record_hash).expect("stdout");
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

/// Simulates a write cut short by the crash: half a frame at the end of the last segment. Returns
/// false, tearing nothing, when that segment's header is incomplete (the child was killed between
/// creating the file and writing its header): no frame can follow such a header, so a torn frame
/// there is a state no crash produces, and recovery rightly refuses it as a bad header.
fn tear_tail(dir: &Path) -> bool {
    let Some(last) = shuzhu_ledger::segment::list_segments(dir).unwrap().pop() else { return false };
    let path = shuzhu_ledger::segment::segment_path(dir, last);
    if std::fs::metadata(&path).unwrap().len() < shuzhu_ledger::segment::HEADER_LEN {
        return false;
    }
    let mut frame = Vec::new();
    shuzhu_ledger::segment::encode_frame(&[b'{'; 300], &mut frame);
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&frame[..150]).unwrap();
    true
}

#[test]
fn acknowledged_journal_records_survive_sigkill() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        child(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let (mut size, mut torn_tails) = (0, 0);
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "acknowledged_journal_records_survive_sigkill", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
            // Mid-append, once the child has acknowledged a random number of new records.
            acks.wait_for(rng.random_range(8..=64), round);
            std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        for (seq, hash) in acks.state.lock().unwrap().0.drain(..) {
            // A seq acknowledged twice with different hashes would be a record lost and rewritten.
            let old = acked.insert(seq, hash.clone());
            assert!(old.is_none_or(|o| o == hash), "round {round}: record {seq} was acknowledged twice differently");
        }
        let tore = round % 4 == 3 && dir.exists() && tear_tail(&dir);
        // Reopening verifies the whole chain (and truncates a torn tail).
        let (j, report) = ReleaseJournal::open(&dir, "court-1", None)
            .unwrap_or_else(|e| panic!("round {round}: the journal does not reopen: {e}"));
        assert!(!tore || report.torn_bytes > 0, "round {round}: the torn tail was not truncated");
        torn_tails += usize::from(report.torn_bytes > 0);
        drop(j);
        let (records, chain) = journal::load(&dir).unwrap();
        assert_eq!(chain.records, report.records);
        assert_eq!(chain.head, report.head);
        for (seq, hash) in &acked {
            let r = records.get(*seq as usize).unwrap_or_else(|| {
                panic!("round {round}: acknowledged record {seq} lost: recovered {}", records.len())
            });
            assert_eq!(&r.hash, hash, "round {round}: record {seq} is not the one acknowledged");
        }
        assert!(chain.records >= size, "round {round}: the journal shrank from {size} to {}", chain.records);
        size = chain.records;
    }
    eprintln!(
        "journal crash test: {ROUNDS} kills, {} acknowledged, {size} recovered, {torn_tails} torn tails truncated",
        acked.len()
    );
    assert!(acked.len() > 100, "the child acknowledged too little to test anything: {}", acked.len());
}
