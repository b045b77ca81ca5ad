//! Replays the fuzz corpora (fuzz/corpus/) through the entry points the
//! fuzz targets call, so every test run checks what the fuzzers found.

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!entries.is_empty(), "corpus {} is empty", dir.display());
    for p in entries {
        let data = std::fs::read(&p).unwrap();
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "{} fails {target}", p.display());
    }
}

#[test]
fn message_parser_corpus() {
    replay("message_parser", annex_protocol::fuzzing::message_parser);
}

#[test]
fn key_parser_corpus() {
    replay("key_parser", annex_protocol::fuzzing::key_parser);
}

#[test]
fn server_session_corpus() {
    replay("server_session", annex_protocol::fuzzing::server_session);
}
