#![no_main]

use libfuzzer_sys::fuzz_target;

// The entry point is shared with the test that replays the corpus.
#[path = "../../crates/annex-preferred/tests/fuzz_corpus.rs"]
mod fuzz_corpus;

fuzz_target!(|data: &[u8]| fuzz_corpus::expression_parser(data));
