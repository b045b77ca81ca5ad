//! Embedding the protocol crate: serve a repository and talk to it.
//!
//! A forge would pass its own `Repository` implementation and the stdio of
//! its ssh handler to `serve_split`; here an in-memory repository is served
//! over an in-process pipe, and the protocol client stores and fetches a
//! file through it.
//!
//! Run with `cargo run -p annex-examples --bin memory_roundtrip`.

use annex_protocol::{
    serve, AssociatedFile, ByteStream, Client, ClientOptions, GetSink, Key, MemoryRepository,
    PutData, PutSource, RepoError, Repository, ServerOptions, Uuid, Validity,
};
use async_trait::async_trait;
use tokio::io::AsyncReadExt;

/// Content to upload, from memory.
struct Upload(std::io::Cursor<Vec<u8>>);

#[async_trait]
impl PutSource for Upload {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        self.0.set_position(offset);
        let len = self.0.get_ref().len() as u64 - offset;
        Ok(PutData::Stream {
            len,
            stream: &mut self.0,
        })
    }
    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(Some(Validity::Valid))
    }
}

/// Downloaded content, into memory.
#[derive(Default)]
struct Download(Vec<u8>);

#[async_trait]
impl GetSink for Download {
    async fn data(&mut self, len: u64, stream: &mut dyn ByteStream) -> Result<(), RepoError> {
        stream.take(len).read_to_end(&mut self.0).await?;
        Ok(())
    }
    async fn finish(&mut self, validity: Option<Validity>) -> Result<bool, RepoError> {
        Ok(validity != Some(Validity::Invalid))
    }
}

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
        .put(
            &key,
            &file,
            &mut Upload(std::io::Cursor::new(content.clone())),
        )
        .await?;
    println!("put {key}: {stored:?}");
    println!("present: {}", client.check_present(&key).await?);

    let mut download = Download::default();
    let got = client.get(&key, &file, 0, &mut download).await?;
    println!(
        "get: {got:?}, {} bytes, identical: {}",
        download.0.len(),
        download.0 == content
    );

    let removed = client.remove(&key, None).await?;
    println!("remove: {removed:?}");
    client.close().await?;
    println!("server: {:?}", server.await?);
    Ok(())
}
