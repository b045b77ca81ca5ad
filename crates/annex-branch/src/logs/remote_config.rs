//! remote.log: the configuration of each special remote, in the old
//! UUID-based form (`UUID KEY=VALUE KEY=VALUE... timestamp=CLOCK`).
//!
//! The fields are written sorted by key. In a value, whitespace and `&`
//! are written as `&NUMBER;` (the character's code point in decimal), so
//! a value holds no space; keys are written as they are. When reading,
//! fields are separated by any whitespace, a field without `=` has an
//! empty value, and the last of two fields with the same key wins.
//!
//! Where git-annex would fail on a value (an escape of a code point
//! outside Unicode, or of one `char` cannot hold, or digits other than
//! ASCII digits in an escape), the line is kept as unparsed.
//!
//! A remote configured with `--sameas` has its own line under a config
//! UUID of its own, holding `sameas-uuid=` (the UUID it shares) and
//! without the fields it inherits from that remote: see [`config_map`].

use std::collections::BTreeMap;

use annex_types::Uuid;

use super::readish::is_hs_space;
use super::uuid_based::{LogValue, UuidLog, ValueError};
use crate::clock::VectorClock;

/// The key holding the UUID a sameas remote shares.
pub const SAMEAS_UUID: &str = "sameas-uuid";

/// The fields a sameas remote takes from the remote it is the same as
/// (encryption and chunking settings), never from its own config.
pub const SAMEAS_INHERITS: [&str; 7] = [
    "encryption",
    "mac",
    "cipher",
    "cipherkeys",
    "pubkeys",
    "chunksize",
    "chunk",
];

/// The configuration of one special remote: key to value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RemoteConfig(pub BTreeMap<String, String>);

/// A configuration from its fields: `[("type", "directory")]`.
impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for RemoteConfig {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(fields: I) -> RemoteConfig {
        RemoteConfig(
            fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl RemoteConfig {
    /// A field's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether a key can be written: no whitespace and no `=`.
    pub fn check_key(key: &str) -> Result<(), ValueError> {
        if key.chars().any(|c| c == '=' || is_hs_space(c)) {
            Err(ValueError::BadConfigKey(key.to_string()))
        } else {
            Ok(())
        }
    }

    /// The config without the fields inherited through `sameas-uuid`, as
    /// git-annex stores it (git-annex's `removeSameasInherited`).
    pub fn without_inherited(mut self) -> RemoteConfig {
        if self.0.contains_key(SAMEAS_UUID) {
            for k in SAMEAS_INHERITS {
                self.0.remove(k);
            }
        }
        self
    }
}

/// Escapes a value as git-annex does: whitespace and `&` as `&NUMBER;`.
pub fn escape_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        if is_hs_space(c) || c == '&' {
            s.push('&');
            s.push_str(&u32::from(c).to_string());
            s.push(';');
        } else {
            s.push(c);
        }
    }
    s
}

/// Undoes [`escape_value`] as git-annex does: `&` followed by digits and
/// `;` is that character; any other `&` is itself. `None` where git-annex
/// would fail.
pub fn unescape_value(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let num_len: usize = after
            .chars()
            .take_while(|c| c.is_numeric())
            .map(char::len_utf8)
            .sum();
        let (num, tail) = after.split_at(num_len);
        match tail.strip_prefix(';') {
            Some(tail) if !num.is_empty() => {
                if !num.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                // git-annex reads the number as a 64-bit integer,
                // wrapping around.
                let n = num.bytes().fold(0u64, |n, d| {
                    n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
                }) as i64;
                out.push(char::from_u32(u32::try_from(n).ok()?)?);
                rest = tail;
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

impl LogValue for RemoteConfig {
    fn parse_value(b: &[u8]) -> Option<Self> {
        let mut m = BTreeMap::new();
        for w in std::str::from_utf8(b).ok()?.split(is_hs_space) {
            if w.is_empty() {
                continue;
            }
            let (k, v) = w.split_once('=').unwrap_or((w, ""));
            m.insert(k.to_string(), unescape_value(v)?);
        }
        Some(RemoteConfig(m))
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(escape_value(v).as_bytes());
        }
    }

    fn check_value(&self) -> Result<(), ValueError> {
        self.0.keys().try_for_each(|k| RemoteConfig::check_key(k))
    }
}

/// remote.log as read.
pub type RemoteLog = UuidLog<RemoteConfig>;

/// Parses remote.log.
pub fn parse(data: &[u8]) -> RemoteLog {
    RemoteLog::parse_old(data)
}

/// Writes remote.log as git-annex does.
pub fn write(log: &RemoteLog) -> Vec<u8> {
    log.write_old()
}

/// Records a remote's config as git-annex's `configSet` does: the fields
/// a sameas remote inherits are left out. Returns the clock used.
pub fn set(
    log: &mut RemoteLog,
    uuid: Uuid,
    config: RemoteConfig,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    log.set(uuid, config.without_inherited(), now)
}

/// The config of each remote, with the fields a sameas remote inherits
/// taken from the remote it is the same as (git-annex's
/// `calcRemoteConfigMap`): its own values of those fields are ignored,
/// and it has them only when that remote has them.
pub fn config_map(log: &RemoteLog) -> BTreeMap<Uuid, RemoteConfig> {
    let raw = log.simple_map();
    raw.iter()
        .map(|(u, c)| {
            let parent = c
                .get(SAMEAS_UUID)
                .and_then(|s| Uuid::parse(s).ok())
                .and_then(|p| raw.get(&p));
            let c = match parent {
                None => c.clone(),
                Some(parent) => {
                    let mut c = c.clone();
                    for k in SAMEAS_INHERITS {
                        match parent.0.get(k) {
                            Some(v) => c.0.insert(k.to_string(), v.clone()),
                            None => c.0.remove(k),
                        };
                    }
                    c
                }
            };
            (u.clone(), c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    fn cfg(kv: &[(&str, &str)]) -> RemoteConfig {
        kv.iter().copied().collect()
    }

    #[test]
    fn escapes_as_git_annex() {
        assert_eq!(escape_value("a b&c\td"), "a&32;b&38;c&9;d");
        assert_eq!(escape_value("x\u{a0}y\u{3000}"), "x&160;y&12288;");
        assert_eq!(unescape_value("a&32;b&38;c&9;d").unwrap(), "a b&c\td");
        assert_eq!(unescape_value("&&;&x;&32").unwrap(), "&&;&x;&32");
        assert_eq!(unescape_value("&233;t&233;").unwrap(), "été");
        assert_eq!(unescape_value("&18446744073709551681;").unwrap(), "A");
        assert_eq!(unescape_value("&1114112;"), None);
        assert_eq!(unescape_value("&55296;"), None);
        assert_eq!(unescape_value("&\u{663};"), None);
    }

    #[test]
    fn reads_fields_like_git_annex() {
        let log = parse(
            format!("{U1} type=directory name=d\u{a0}x=1\tflag  name=e dir=a&32;b timestamp=5s\n")
                .as_bytes(),
        );
        let c = log.get(&Uuid::parse(U1).unwrap()).unwrap();
        assert_eq!(
            *c,
            cfg(&[
                ("type", "directory"),
                ("name", "e"),
                ("x", "1"),
                ("flag", ""),
                ("dir", "a b")
            ])
        );
        assert_eq!(
            write(&log),
            format!("{U1} dir=a&32;b flag= name=e type=directory x=1 timestamp=5s\n").as_bytes()
        );
    }

    #[test]
    fn sameas_inherits() {
        let mut log = RemoteLog::new();
        let t = VectorClock::from_secs(5);
        let u1 = Uuid::parse(U1).unwrap();
        let u2 = Uuid::parse(U2).unwrap();
        set(
            &mut log,
            u1.clone(),
            cfg(&[("name", "a"), ("encryption", "none"), ("chunk", "1MiB")]),
            t,
        )
        .unwrap();
        set(
            &mut log,
            u2.clone(),
            cfg(&[("sameas-uuid", U1), ("chunk", "2MiB"), ("mac", "x")]),
            t,
        )
        .unwrap();
        assert_eq!(
            write(&log),
            format!(
                "{U1} chunk=1MiB encryption=none name=a timestamp=5s\n\
                 {U2} sameas-uuid={U1} timestamp=5s\n"
            )
            .as_bytes()
        );
        let mut raw = log.clone();
        raw.entries.get_mut(&u2).unwrap().value = cfg(&[("sameas-uuid", U1), ("mac", "x")]);
        let m = config_map(&raw);
        assert_eq!(
            m[&u2],
            cfg(&[
                ("sameas-uuid", U1),
                ("chunk", "1MiB"),
                ("encryption", "none")
            ])
        );
        assert!(set(&mut log, u1, cfg(&[("a b", "x")]), t).is_err());
    }
}
