//! Entry points shared by the fuzz targets (fuzz/) and the test that
//! replays their corpora, so that both check the same properties.

use crate::logs::{
    cluster, group, maxsize, numcopies, preferred_content, proxy, remote_config, trust, union,
    uuid_log,
};

/// Parses, writes and parses again; the second parse must equal the
/// first, and writing it again must give the same bytes.
macro_rules! stable {
    ($data:expr, $parse:path, $write:path) => {{
        let a = $parse($data);
        let w = $write(&a);
        let b = $parse(&w);
        assert_eq!(a, b, "{} changed in a round trip", stringify!($parse));
        assert_eq!($write(&b), w, "{} wrote differently", stringify!($write));
        a
    }};
}

/// Reading two versions one after the other must be their union.
macro_rules! union_law {
    ($a:expr, $b:expr, $whole:expr, $parse:path) => {{
        let mut m = $parse($a);
        m.union(&$parse($b));
        assert_eq!(m, $parse($whole), "{} union", stringify!($parse));
    }};
}

/// Feeds `data` to every parser of the non-location logs: each must read
/// it without panicking; writing what it read and reading that again must
/// change nothing; reading the first half and the second half (split at a
/// line end) and merging them must be reading the whole; the union merge
/// of the data with its rewrite must not panic; and the meanings derived
/// from the logs must not panic.
pub fn log_parsers(data: &[u8]) {
    stable!(data, uuid_log::parse, uuid_log::write);
    let t = stable!(data, trust::parse, trust::write);
    let g = stable!(data, group::parse, group::write);
    stable!(data, preferred_content::parse, preferred_content::write);
    stable!(
        data,
        preferred_content::parse_group,
        preferred_content::write_group
    );
    let r = stable!(data, remote_config::parse, remote_config::write);
    let p = stable!(data, proxy::parse, proxy::write);
    let c = stable!(data, cluster::parse, cluster::write);
    let m = stable!(data, maxsize::parse, maxsize::write);
    let n = stable!(data, numcopies::parse, numcopies::write);

    let _ = trust::trust_map(&t);
    let _ = group::uuids_by_group(&g);
    let _ = remote_config::config_map(&r);
    let _ = proxy::proxies(&p);
    let _ = cluster::clusters(&c, &t);
    let _ = maxsize::max_sizes(&m);
    let _ = numcopies::get(&n);

    let mid = data.len() / 2;
    let cut = data[..mid]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let (a, b) = data.split_at(cut);
    union_law!(a, b, data, uuid_log::parse);
    union_law!(a, b, data, trust::parse);
    union_law!(a, b, data, group::parse);
    union_law!(a, b, data, preferred_content::parse_group);
    union_law!(a, b, data, remote_config::parse);
    union_law!(a, b, data, proxy::parse);
    union_law!(a, b, data, cluster::parse);
    union_law!(a, b, data, maxsize::parse);
    union_law!(a, b, data, numcopies::parse);

    let merged = union::merge(&[a, b]);
    let again = union::merge(&[&merged, a]);
    assert_eq!(again, merged, "a merge already holds both versions");
}
