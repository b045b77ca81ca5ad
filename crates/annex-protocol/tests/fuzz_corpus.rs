//! Replays the fuzz corpora (fuzz/corpus/) through the entry points the
//! fuzz targets call, so every test run checks what the fuzzers found.

use annex_test_support::replay_fuzz_corpus;

#[test]
fn message_parser_corpus() {
    replay_fuzz_corpus("message_parser", annex_protocol::fuzzing::message_parser);
}

#[test]
fn key_parser_corpus() {
    replay_fuzz_corpus("key_parser", annex_protocol::fuzzing::key_parser);
}

#[test]
fn server_session_corpus() {
    replay_fuzz_corpus("server_session", annex_protocol::fuzzing::server_session);
}
