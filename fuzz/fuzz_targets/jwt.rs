#![no_main]
// The harness is shuzhu_gateway::fuzzing::jwt, which tests/fuzz_replay.rs also runs over this target's corpus.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shuzhu_gateway::fuzzing::jwt(data));
