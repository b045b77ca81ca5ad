//! Property tests: keys format back to the bytes they were parsed from,
//! file names escape reversibly and safely, and no input panics.

use annex_types::key::KeyParts;
use annex_types::Key;
use proptest::prelude::*;

fn backend() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SHA256E".to_owned()),
        Just("SHA256".to_owned()),
        Just("SHA512E".to_owned()),
        Just("SHA1".to_owned()),
        Just("MD5E".to_owned()),
        Just("BLAKE2B256E".to_owned()),
        Just("SHA3_256".to_owned()),
        Just("WORM".to_owned()),
        Just("URL".to_owned()),
        Just("VURL".to_owned()),
        "X[A-Z0-9]{1,6}E?",
        "[A-Z][A-Z0-9_]{0,10}",
    ]
}

/// Names as real keys have them: hex digests with extensions, and WORM and
/// URL names with '/', ':', '&', '%' and '-'.
fn name(backend: &str) -> BoxedStrategy<String> {
    let ext = "(\\.[a-z0-9]{1,5}){0,2}";
    if backend.ends_with('E') {
        proptest::string::string_regex(&format!("[0-9a-f]{{8,64}}{ext}"))
            .expect("valid regex")
            .boxed()
    } else {
        "[A-Za-z0-9/:&%._~?=+-]{0,60}".boxed()
    }
}

/// Backend, size, mtime, chunk (size, number) and name of a key.
type PartsTuple = (String, Option<u64>, Option<u64>, Option<(u64, u64)>, String);

fn key_parts() -> impl Strategy<Value = PartsTuple> {
    backend().prop_flat_map(|b| {
        let n = name(&b);
        (
            Just(b),
            proptest::option::of(any::<u64>()),
            proptest::option::of(0u64..4_000_000_000),
            proptest::option::of((1u64..1 << 40, 1u64..100_000)),
            n,
        )
    })
}

proptest! {
    #[test]
    fn format_parse_round_trip((backend, size, mtime, chunk, name) in key_parts()) {
        let parts = KeyParts {
            backend: &backend,
            size,
            mtime,
            chunk_size: chunk.map(|c| c.0),
            chunk_num: chunk.map(|c| c.1),
            name: &name,
        };
        let key = Key::from_parts(&parts).unwrap();
        let text = key.as_str().to_owned();
        let again = Key::parse(&text).unwrap();
        prop_assert_eq!(again.as_str(), text.as_str());
        prop_assert_eq!(&again, &key);
        prop_assert_eq!(again.backend(), backend.as_str());
        prop_assert_eq!(again.name(), name.as_str());
        prop_assert_eq!(again.size(), size);
        prop_assert_eq!(again.mtime(), mtime);
        prop_assert_eq!(again.chunk_size(), chunk.map(|c| c.0));
        prop_assert_eq!(again.chunk_num(), chunk.map(|c| c.1));
    }

    #[test]
    fn file_names_are_reversible_and_safe((backend, size, _m, _c, name) in key_parts()) {
        let key = Key::from_parts(&KeyParts { backend: &backend, size, name: &name, ..Default::default() }).unwrap();
        let f = key.to_file_name();
        prop_assert!(!f.contains('/'));
        prop_assert!(f != "." && f != "..");
        prop_assert_eq!(Key::from_file_name(&f).unwrap(), key);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(k) = Key::parse_bytes(&bytes) {
            // Whatever parses formats to something that parses the same.
            let again = Key::parse(k.as_str()).unwrap();
            prop_assert_eq!(again, k.clone());
            prop_assert!(!k.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
        }
    }

    #[test]
    fn key_like_strings_never_panic(s in "[A-Z0-9]{0,6}(-[smSC][0-9]{0,22}){0,5}-{0,3}[ -~]{0,30}") {
        if let Ok(k) = Key::parse(&s) {
            prop_assert_eq!(Key::parse(k.as_str()).unwrap(), k);
        }
    }
}
