//! Parsing and serialising short protocol messages, on one core.

use annex_protocol::Message;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const LINES: &[&str] = &[
    "SUCCESS",
    "CHECKPRESENT SHA256E-s1048576--2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae.txt",
    "PUT dir/file.txt SHA256E-s1048576--2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae.txt",
    "DATA 1048576",
    "SUCCESS-PLUS 6e5a0a5b-7e62-4c59-b0b8-5b4e2b1b8d16 0b5f3a2c-1d4e-4f60-8a7b-9c8d7e6f5a4b",
];

fn parse(c: &mut Criterion) {
    let lines: Vec<&[u8]> = LINES.iter().map(|l| l.as_bytes()).collect();
    let msgs: Vec<Message> = lines.iter().map(|l| Message::parse(l).unwrap()).collect();
    let mut g = c.benchmark_group("messages");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("parse a mix of 5 short messages", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(Message::parse(black_box(l)).unwrap());
            }
        })
    });
    let mut out = Vec::with_capacity(256);
    g.bench_function("serialise a mix of 5 short messages", |b| {
        b.iter(|| {
            for m in &msgs {
                out.clear();
                black_box(m).write_line(&mut out);
                black_box(&out);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
