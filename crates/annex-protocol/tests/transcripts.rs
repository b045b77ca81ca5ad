//! Transcripts of real git-annex P2P sessions (captured from `--debug`
//! output by scripts/capture-transcripts.sh): every message parses, and
//! serialises back to exactly the bytes git-annex sent.

use std::collections::BTreeSet;
use std::path::PathBuf;

use annex_protocol::Message;

fn transcripts() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no transcripts in {}", dir.display());
    out
}

#[test]
fn every_real_message_round_trips() {
    let mut seen = BTreeSet::new();
    let mut count = 0;
    for (path, text) in transcripts() {
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let wire = line
                .strip_prefix("> ")
                .or_else(|| line.strip_prefix("< "))
                .unwrap_or_else(|| panic!("{}:{}: no direction: {line:?}", path.display(), n + 1));
            // git-annex hides AUTH tokens in its debug output.
            let wire_for_parse = wire.replace("<AUTHTOKEN>", "hidden");
            let m = Message::parse(wire_for_parse.as_bytes())
                .unwrap_or_else(|e| panic!("{}:{}: {e}: {wire:?}", path.display(), n + 1));
            let back = match &m {
                Message::Auth(..) => m.to_debug_line(),
                _ => String::from_utf8(m.to_line()).unwrap(),
            };
            assert_eq!(back, wire, "{}:{}", path.display(), n + 1);
            seen.insert(m.name());
            count += 1;
        }
    }
    assert!(count > 50, "only {count} messages in the transcripts");
    for kind in [
        "VERSION",
        "AUTH-SUCCESS",
        "CHECKPRESENT",
        "LOCKCONTENT",
        "UNLOCKCONTENT",
        "GET",
        "PUT",
        "PUT-FROM",
        "DATA",
        "VALID",
        "SUCCESS",
        "FAILURE",
        "ALREADY-HAVE",
        "REMOVE",
    ] {
        assert!(
            seen.contains(kind),
            "no {kind} message in any transcript; seen: {seen:?}"
        );
    }
}
