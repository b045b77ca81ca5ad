//! Benchmarks of the annex crates. The criterion benchmarks are under
//! `benches/benches/`; run them with `cargo bench -p annex-benches`.
