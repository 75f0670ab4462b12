#![no_main]
// The harness is shuzhu_ledger::fuzzing::checkpoint_note, which tests/fuzz_replay.rs also runs over this target's corpus.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shuzhu_ledger::fuzzing::checkpoint_note(data));
