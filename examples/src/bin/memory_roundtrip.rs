//! Embedding the protocol crate: serve a repository and talk to it.
//!
//! A forge would pass its own `Repository` implementation and the stdio of
//! its ssh handler to `serve_split`; here an in-memory repository is served
//! over an in-process pipe, and the protocol client stores and fetches a
//! file through it.
//!
//! Run with `cargo run -p annex-examples --bin memory_roundtrip`.

use annex_protocol::{
    serve, AssociatedFile, BytesSource, Client, ClientOptions, Key, MemoryRepository, Repository,
    ServerOptions, Uuid, VecSink,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = MemoryRepository::new(Uuid::new_v4());
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let served = repo.clone();
    let server =
        tokio::spawn(async move { serve(server_end, &served, &ServerOptions::default()).await });

    let (r, w) = tokio::io::split(client_end);
    let client = Client::connect(r, w, &ClientOptions::default()).await?;
    println!(
        "connected to {} with protocol version {}",
        client.uuid(),
        client.version()
    );

    let content = b"large file content\n".repeat(1000);
    let key = Key::parse(&format!("WORM-s{}-m1700000000--example.txt", content.len()))?;
    let file = AssociatedFile::from_path("example.txt");
    let stored = client
        .put(&key, &file, &mut BytesSource::new(content.clone()))
        .await?;
    println!("put {key}: {stored:?}");
    println!("present: {}", client.check_present(&key).await?);

    let mut download = VecSink::new(1 << 20);
    let got = client.get(&key, &file, 0, &mut download).await?;
    let data = download.into_data();
    println!(
        "get: {got:?}, {} bytes, identical: {}",
        data.len(),
        data == content
    );

    let removed = client.remove(&key, None).await?;
    println!("remove: {removed:?}");
    client.close().await?;
    println!("server: {:?}", server.await?);
    Ok(())
}
