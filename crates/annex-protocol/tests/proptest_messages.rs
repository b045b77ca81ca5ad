//! Property tests: every message serialises to a line that parses back to
//! it, and no line panics the parser.

use annex_protocol::{AssociatedFile, AuthToken, Key, Message, ProtocolVersion, Service, Uuid};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        "[0-9a-f]{64}(\\.[a-z]{1,4})?"
            .prop_map(|h| Key::parse(&format!("SHA256E-s123--{h}")).unwrap()),
        "[A-Za-z0-9/:&%._-]{1,40}".prop_map(|n| Key::parse(&format!("WORM-s5-m17--{n}")).unwrap()),
        "[A-Za-z0-9/:&%._?=-]{1,40}".prop_map(|n| Key::parse(&format!("URL--{n}")).unwrap()),
    ]
}

fn uuid() -> impl Strategy<Value = Uuid> {
    prop_oneof![
        Just(()).prop_map(|_| Uuid::new_v4()),
        "[a-zA-Z0-9-]{1,40}".prop_map(|s| Uuid::parse(&s).unwrap()),
    ]
}

fn file() -> impl Strategy<Value = AssociatedFile> {
    prop_oneof![
        Just(AssociatedFile::none()),
        "[^/\\x00-\\x1f][^\\x00]{0,30}".prop_map(|p| AssociatedFile::from_path(&p)),
    ]
}

fn uuids() -> impl Strategy<Value = Vec<Uuid>> {
    proptest::collection::vec(uuid(), 0..4)
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (uuid(), "[a-z0-9]{0,20}").prop_map(|(u, t)| Message::Auth(u, AuthToken::new(&t).unwrap())),
        uuid().prop_map(Message::AuthSuccess),
        Just(Message::AuthFailure),
        any::<u64>().prop_map(|v| Message::Version(ProtocolVersion(v))),
        uuids().prop_map(Message::Bypass),
        prop_oneof![Just(Service::UploadPack), Just(Service::ReceivePack)]
            .prop_map(Message::Connect),
        any::<i32>().prop_map(Message::ConnectDone),
        Just(Message::NotifyChange),
        proptest::collection::vec("refs/[a-z/]{1,20}", 0..3).prop_map(Message::Changed),
        key().prop_map(Message::CheckPresent),
        key().prop_map(Message::LockContent),
        Just(Message::UnlockContent),
        key().prop_map(Message::Remove),
        (any::<u64>(), key()).prop_map(|(t, k)| Message::RemoveBefore(t, k)),
        Just(Message::GetTimestamp),
        any::<u64>().prop_map(Message::Timestamp),
        (any::<u64>(), file(), key()).prop_map(|(o, f, k)| Message::Get(o, f, k)),
        (file(), key()).prop_map(|(f, k)| Message::Put(f, k)),
        any::<u64>().prop_map(Message::PutFrom),
        Just(Message::AlreadyHave),
        uuids().prop_map(Message::AlreadyHavePlus),
        Just(Message::Success),
        uuids().prop_map(Message::SuccessPlus),
        Just(Message::Failure),
        uuids().prop_map(Message::FailurePlus),
        any::<u64>().prop_map(Message::Data),
        Just(Message::DataPresent),
        Just(Message::Valid),
        Just(Message::Invalid),
        "[^\\n\\r]{0,60}".prop_map(Message::Error),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(m in message()) {
        let line = m.to_line();
        prop_assert!(!line.contains(&b'\n'));
        let back = Message::parse(&line).unwrap();
        prop_assert_eq!(back, m);
    }

    #[test]
    fn arbitrary_lines_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(m) = Message::parse(&bytes) {
            let again = Message::parse(&m.to_line()).unwrap();
            prop_assert_eq!(again, m);
        }
    }

    #[test]
    fn message_like_lines_never_panic(
        cmd in "(AUTH|AUTH-SUCCESS|VERSION|BYPASS|CONNECT|CONNECTDONE|CHANGED|CHECKPRESENT|LOCKCONTENT|REMOVE|REMOVE-BEFORE|TIMESTAMP|GET|PUT|PUT-FROM|ALREADY-HAVE-PLUS|SUCCESS-PLUS|FAILURE-PLUS|DATA|ERROR|SUCCESS|VALID)",
        rest in "[ -~\\t]{0,80}",
    ) {
        let line = format!("{cmd} {rest}");
        if let Ok(m) = Message::parse(line.as_bytes()) {
            prop_assert_eq!(Message::parse(&m.to_line()).unwrap(), m);
        }
    }
}
