//! Replays the fuzz corpus of the log parsers (fuzz/corpus/log_parsers/)
//! through the entry point the fuzz target calls, so every test run checks
//! what the fuzzer found.

use std::path::PathBuf;

#[test]
fn log_parsers_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/log_parsers");
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!entries.is_empty(), "corpus {} is empty", dir.display());
    for p in entries {
        let data = std::fs::read(&p).unwrap();
        let r = std::panic::catch_unwind(|| annex_branch::fuzzing::log_parsers(&data));
        assert!(r.is_ok(), "{} fails log_parsers", p.display());
    }
}
