//! Replays the fuzz corpus of the log parsers (fuzz/corpus/log_parsers/)
//! through the entry point the fuzz target calls, so every test run checks
//! what the fuzzer found.

use annex_test_support::replay_fuzz_corpus;

#[test]
fn log_parsers_corpus() {
    replay_fuzz_corpus("log_parsers", annex_branch::fuzzing::log_parsers);
}
