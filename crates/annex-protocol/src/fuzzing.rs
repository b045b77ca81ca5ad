//! Entry points shared by the fuzz targets (fuzz/) and the test that
//! replays their corpora, so that both check the same properties.

use crate::{Key, Message};

/// Parses `data` as a protocol line; whatever parses must serialise to a
/// line that parses to the same message.
pub fn message_parser(data: &[u8]) {
    if let Ok(m) = Message::parse(data) {
        let line = m.to_line();
        assert!(!line.contains(&b'\n'), "serialised message holds a newline");
        let again = Message::parse(&line).expect("a serialised message parses");
        assert_eq!(again, m, "message changed in a round trip");
    }
}

/// Parses `data` as a key; whatever parses must format back to bytes that
/// parse to the same key, and its file name must be safe and reversible.
pub fn key_parser(data: &[u8]) {
    if let Ok(k) = Key::parse_bytes(data) {
        let again = Key::parse(k.as_str()).expect("a formatted key parses");
        assert_eq!(again, k, "key changed in a round trip");
        let f = k.to_file_name();
        assert!(
            !f.contains('/') && f != "." && f != "..",
            "unsafe file name {f:?}"
        );
        assert_eq!(Key::from_file_name(&f).expect("file name parses"), k);
    }
}

/// Feeds `data` to a server of an empty in-memory repository as if a peer
/// sent it; the server must answer without panicking and finish.
pub fn server_session(data: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let repo = crate::MemoryRepository::new(crate::Uuid::parse("fuzz").expect("uuid"));
        let (peer, server_end) = tokio::io::duplex(1 << 16);
        let (mut from_server, mut to_server) = tokio::io::split(peer);
        let server = async {
            let _ = crate::serve(server_end, &repo, &crate::ServerOptions::default()).await;
        };
        // Write and read at once, so that neither side waits on the other.
        let client = async {
            let write = async {
                let _ = to_server.write_all(data).await;
                let _ = to_server.shutdown().await;
            };
            let read = async {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = from_server.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            tokio::join!(write, read);
        };
        let both = async { tokio::join!(server, client) };
        tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("the server finished");
    });
}
