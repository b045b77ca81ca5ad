//! Property tests of the log parsers and writers: a log written reads back
//! the same; reading, writing and reading again changes nothing; reading
//! two versions one after the other is merging them; numbers read back.

use std::collections::{BTreeMap, BTreeSet};

use annex_branch::logs::cluster::{self, ClusterNodes};
use annex_branch::logs::group::{self, Groups};
use annex_branch::logs::maxsize::{self, MaxSize};
use annex_branch::logs::numcopies::{self, Copies};
use annex_branch::logs::proxy::{self, Proxies, Proxy};
use annex_branch::logs::readish::{read_int, read_integer};
use annex_branch::logs::remote_config::{self, escape_value, unescape_value, RemoteConfig};
use annex_branch::logs::trust::{self, TrustLevel};
use annex_branch::logs::uuid_based::{Entry, MapLog};
use annex_branch::logs::{preferred_content, union, uuid_log};
use annex_branch::VectorClock;
use annex_types::Uuid;
use proptest::prelude::*;
use proptest::string::string_regex;

fn uuid() -> impl Strategy<Value = Uuid> {
    prop_oneof![
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}",
        "ac[0-9a-f]{6}-[0-9a-f]{4}-8[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}",
        "[a-zA-Z0-9._@+\u{e9}-]{1,12}",
    ]
    .prop_map(|s| Uuid::parse(&s).unwrap())
}

fn clock() -> impl Strategy<Value = VectorClock> {
    (0i64..4_000_000_000, 0u32..1000, 0u32..3).prop_map(|(s, f, kind)| {
        let text = match kind {
            0 => format!("{s}s"),
            1 => format!("{s}.{f}s"),
            _ => format!("{s}.000000{f}s"),
        };
        VectorClock::parse(text.as_bytes()).unwrap()
    })
}

fn text() -> impl Strategy<Value = String> {
    "[^\r\n]{0,30}"
}

fn word() -> impl Strategy<Value = String> {
    "[^ \r\n]{1,12}"
}

fn map_log<K: Ord + Clone + std::fmt::Debug, V: Clone + std::fmt::Debug>(
    field: impl Strategy<Value = K>,
    value: impl Strategy<Value = V>,
) -> impl Strategy<Value = MapLog<K, V>> {
    prop::collection::btree_map(field, (clock(), value), 0..6).prop_map(|m| MapLog {
        entries: m
            .into_iter()
            .map(|(k, (clock, value))| (k, Entry { clock, value }))
            .collect(),
        unparsed: Vec::new(),
    })
}

fn config() -> impl Strategy<Value = RemoteConfig> {
    prop::collection::btree_map("[^\\s=]{0,8}", "\\PC{0,10}|[ &;0-9\t\u{a0}a]{0,10}", 0..5)
        .prop_map(RemoteConfig)
}

fn proxies() -> impl Strategy<Value = Proxies> {
    prop::collection::btree_set(
        (
            uuid().prop_filter("no colon", |u| !u.as_str().contains(':')),
            word(),
        )
            .prop_map(|(uuid, name)| Proxy { uuid, name }),
        0..4,
    )
    .prop_map(Proxies)
}

/// Lines a log might hold: real ones of every kind, odd ones, garbage.
fn line() -> impl Strategy<Value = String> {
    let u = "(11111111-1111-4111-8111-111111111111|ac222222-2222-8222-8222-222222222222|x)";
    let c = "(5s|5|6.5s|-1s|0|12s|x5s|)";
    let re = |r: String| string_regex(&r).unwrap();
    prop_oneof![
        re(format!("{u}( [a-z&;0-9=:]{{0,4}}){{0,3}}( timestamp={c})?")),
        re(format!("{c} {u}( [a-z0-9=:-]{{0,4}}|:[a-z]| {u}){{0,3}} ?")),
        re(format!("{c}  ?[-+()0-9xoe. ]{{0,6}}")),
        re(format!("{c} [a-z]{{0,3}} [a-z ]{{0,8}}")),
        re("\\PC{0,20}".to_string()),
    ]
}

fn log_text() -> impl Strategy<Value = String> {
    prop::collection::vec((line(), "(\n|\r\n|\r|\n\n)"), 0..8)
        .prop_map(|v| v.into_iter().map(|(l, e)| l + &e).collect())
}

macro_rules! stable {
    ($data:expr, $parse:path, $write:path) => {{
        let a = $parse($data);
        let w = $write(&a);
        let b = $parse(&w);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!($write(&b), w);
    }};
}

macro_rules! union_law {
    ($a:expr, $b:expr, $parse:path) => {{
        let mut m = $parse($a);
        m.union(&$parse($b));
        prop_assert_eq!(m, $parse(&[$a, $b].concat()));
    }};
}

proptest! {
    #[test]
    fn typed_logs_read_back(
        desc in map_log(uuid(), text()),
        trust in map_log(uuid(), prop::sample::select(TrustLevel::ALL.to_vec())),
        groups in map_log(uuid(), prop::collection::btree_set(word(), 0..4).prop_map(Groups)),
        exprs in map_log(uuid(), text()),
        gexprs in map_log("[^ \r\n]{0,8}", text()),
        configs in map_log(uuid(), config()),
        prox in map_log(uuid(), proxies()),
        nodes in map_log(uuid(), prop::collection::btree_set(uuid(), 0..4).prop_map(ClusterNodes)),
        sizes in map_log(uuid(), any::<i128>().prop_map(MaxSize)),
    ) {
        prop_assert_eq!(uuid_log::parse(&uuid_log::write(&desc)), desc);
        prop_assert_eq!(trust::parse(&trust::write(&trust)), trust);
        prop_assert_eq!(group::parse(&group::write(&groups)), groups);
        prop_assert_eq!(preferred_content::parse(&preferred_content::write(&exprs)), exprs);
        prop_assert_eq!(
            preferred_content::parse_group(&preferred_content::write_group(&gexprs)),
            gexprs
        );
        prop_assert_eq!(remote_config::parse(&remote_config::write(&configs)), configs);
        prop_assert_eq!(proxy::parse(&proxy::write(&prox)), prox);
        prop_assert_eq!(cluster::parse(&cluster::write(&nodes)), nodes);
        prop_assert_eq!(maxsize::parse(&maxsize::write(&sizes)), sizes);
    }

    #[test]
    fn copies_read_back(
        entries in prop::collection::btree_set(
            (clock(), (1..=i64::MAX as u64).prop_map(|n| Copies::new(n).unwrap()))
                .prop_map(|(clock, value)| Entry { clock, value }),
            0..5,
        )
    ) {
        let log = numcopies::CopiesLog { entries, unparsed: Vec::new() };
        prop_assert_eq!(numcopies::parse(&numcopies::write(&log)), log);
    }

    #[test]
    fn reading_writing_and_reading_again_changes_nothing(data in log_text()) {
        let d = data.as_bytes();
        stable!(d, uuid_log::parse, uuid_log::write);
        stable!(d, trust::parse, trust::write);
        stable!(d, group::parse, group::write);
        stable!(d, preferred_content::parse, preferred_content::write);
        stable!(d, preferred_content::parse_group, preferred_content::write_group);
        stable!(d, remote_config::parse, remote_config::write);
        stable!(d, proxy::parse, proxy::write);
        stable!(d, cluster::parse, cluster::write);
        stable!(d, maxsize::parse, maxsize::write);
        stable!(d, numcopies::parse, numcopies::write);
    }

    #[test]
    fn union_is_reading_one_version_after_the_other(a in log_text(), b in log_text()) {
        let a = format!("{a}\n");
        let (a, b) = (a.as_bytes(), b.as_bytes());
        union_law!(a, b, uuid_log::parse);
        union_law!(a, b, trust::parse);
        union_law!(a, b, group::parse);
        union_law!(a, b, remote_config::parse);
        union_law!(a, b, preferred_content::parse_group);
        union_law!(a, b, proxy::parse);
        union_law!(a, b, cluster::parse);
        union_law!(a, b, maxsize::parse);
        union_law!(a, b, numcopies::parse);
    }

    #[test]
    fn merged_files_mean_both_versions_when_clocks_differ(
        a in map_log(uuid(), text()),
        b in map_log(uuid(), text()),
    ) {
        let mut b = b;
        // Make every clock of b differ from a's for the same UUID.
        for (u, e) in b.entries.iter_mut() {
            if let Some(x) = a.entries.get(u) {
                if x.clock == e.clock {
                    e.clock = VectorClock::advance(e.clock, [x.clock]);
                }
            }
        }
        let (wa, wb) = (uuid_log::write(&a), uuid_log::write(&b));
        let merged = union::merge(&[&wa, &wb]);
        let mut both = a.clone();
        both.union(&b);
        prop_assert_eq!(uuid_log::parse(&merged), both);
        prop_assert_eq!(union::merge(&[&merged, &wa]), merged.clone());
    }

    #[test]
    fn config_values_escape_and_unescape(v in "\\PC*|[ &;0-9\t\r\n\u{a0}\u{3000}\u{2028}a]*") {
        let e = escape_value(&v);
        // No whitespace as git-annex sees it (U+2028 is not, for one).
        let spaces = [' ', '\t', '\n', '\r', '\u{a0}', '\u{3000}'];
        prop_assert!(!e.contains(spaces), "{:?}", e);
        prop_assert_eq!(unescape_value(&e), Some(v));
    }

    #[test]
    fn numbers_read_back(n in any::<i64>(), m in any::<i128>()) {
        prop_assert_eq!(read_int(n.to_string().as_bytes()), Some(n));
        prop_assert_eq!(read_int(format!(" ({n})").as_bytes()), Some(n));
        prop_assert_eq!(read_integer(m.to_string().as_bytes()), Some(m));
    }

    #[test]
    fn meanings_never_panic(data in log_text()) {
        let d = data.as_bytes();
        let _ = remote_config::config_map(&remote_config::parse(d));
        let _ = proxy::proxies(&proxy::parse(d));
        let t = trust::parse(d);
        let _ = cluster::clusters(&cluster::parse(d), &t);
        let g = group::parse(d);
        let by: BTreeMap<String, BTreeSet<Uuid>> = group::uuids_by_group(&g);
        let n: usize = by.values().map(BTreeSet::len).sum();
        let m: usize = group::groups_by_uuid(&g).values().map(BTreeSet::len).sum();
        prop_assert_eq!(n, m);
    }
}
