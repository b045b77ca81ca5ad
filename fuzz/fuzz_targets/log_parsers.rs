#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| annex_branch::fuzzing::log_parsers(data));
