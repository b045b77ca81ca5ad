//! DATA payloads through the protocol codec, on one core: reading a DATA
//! message and streaming its payload out, and writing one.

use annex_protocol::codec::{ProtocolReader, ProtocolWriter};
use annex_protocol::Message;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tokio::io::AsyncWriteExt;

const PAYLOAD: usize = 256 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn data_passthrough(c: &mut Criterion) {
    let rt = runtime();
    let mut input = format!("DATA {PAYLOAD}\n").into_bytes();
    input.resize(input.len() + PAYLOAD, 0x5a);
    input.extend_from_slice(b"VALID\n");

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(PAYLOAD as u64));
    g.sample_size(20);
    g.bench_function("read DATA payload (256 MiB)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut r = ProtocolReader::new(&input[..]);
                let m = r.read_message().await.unwrap();
                assert_eq!(m, Some(Message::Data(PAYLOAD as u64)));
                let n = tokio::io::copy(&mut r, &mut tokio::io::sink())
                    .await
                    .unwrap();
                assert_eq!(n, PAYLOAD as u64);
                assert_eq!(r.read_message().await.unwrap(), Some(Message::Valid));
            })
        })
    });
    let payload = vec![0x5au8; PAYLOAD];
    g.bench_function("write DATA payload (256 MiB)", |b| {
        b.iter_batched(
            || (),
            |()| {
                rt.block_on(async {
                    let mut w = ProtocolWriter::new(tokio::io::sink());
                    w.send_data(PAYLOAD as u64, &mut &payload[..])
                        .await
                        .unwrap();
                    w.into_inner().flush().await.unwrap();
                })
            },
            BatchSize::SmallInput,
        )
    });
    // Reader to writer, as a proxy relays a payload.
    g.bench_function("relay DATA payload (256 MiB)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut r = ProtocolReader::new(&input[..]);
                let Some(Message::Data(len)) = r.read_message().await.unwrap() else {
                    unreachable!()
                };
                let mut w = ProtocolWriter::new(tokio::io::sink());
                w.send_data(len, &mut r).await.unwrap();
            })
        })
    });
    g.finish();
}

criterion_group!(benches, data_passthrough);
criterion_main!(benches);
