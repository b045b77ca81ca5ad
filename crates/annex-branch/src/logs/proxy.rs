//! proxy.log: the repositories each gateway proxies, in the new
//! UUID-based form (`CLOCK GATEWAY-UUID UUID:NAME UUID:NAME...`).
//!
//! NAME is the name of the gateway's remote for the proxied repository (a
//! cluster proxied by its gateway appears under the cluster's name). A
//! name goes up to the next space and may hold `:`; the UUID goes up to
//! the first `:`. git-annex ignores proxies whose name is not a legal git
//! remote name: see [`proxies`].

use std::collections::{BTreeMap, BTreeSet};

use annex_types::Uuid;

use super::uuid_based::{LogField, LogValue, UuidLog, ValueError};
use crate::clock::VectorClock;

/// A repository proxied by a gateway.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proxy {
    /// The proxied repository (or cluster).
    pub uuid: Uuid,
    /// The gateway's remote name for it.
    pub name: String,
}

impl Proxy {
    /// Whether the proxy can be written so that it reads back the same:
    /// no `:` in the UUID; a name that is not empty and holds no space or
    /// line break.
    pub fn check(&self) -> Result<(), ValueError> {
        if self.uuid.as_str().contains(':') {
            return Err(ValueError::BadProxyUuid(self.uuid.clone()));
        }
        if self.name.is_empty() || self.name.contains([' ', '\n', '\r']) {
            return Err(ValueError::BadProxyName(self.name.clone()));
        }
        Ok(())
    }
}

/// The repositories one gateway proxies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Proxies(pub BTreeSet<Proxy>);

/// Parses `UUID:NAME` at `i`, then a space or the end; returns the proxy
/// and where the next one starts. The outer `None` is git-annex's parser
/// failing there; the inner one, a proxy this crate cannot hold.
fn parse_proxy(b: &[u8], i: usize) -> Option<(Option<Proxy>, usize)> {
    let colon = i + b.get(i..)?.iter().position(|&c| c == b':')?;
    if colon == i {
        return None;
    }
    let name_start = colon + 1;
    let name_end = b[name_start..]
        .iter()
        .position(|&c| c == b' ')
        .map_or(b.len(), |p| name_start + p);
    if name_end == name_start {
        return None;
    }
    let next = if name_end == b.len() {
        name_end
    } else {
        name_end + 1
    };
    let proxy = Uuid::parse_field(&b[i..colon]).and_then(|uuid| {
        let name = String::from_utf8(b[name_start..name_end].to_vec()).ok()?;
        Some(Proxy { uuid, name })
    });
    Some((proxy, next))
}

impl LogValue for Proxies {
    fn parse_value(b: &[u8]) -> Option<Self> {
        let mut set = BTreeSet::new();
        let mut i = 0;
        while let Some((p, next)) = parse_proxy(b, i) {
            set.insert(p?);
            i = next;
        }
        (i == b.len()).then_some(Proxies(set))
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(p.uuid.as_str().as_bytes());
            out.push(b':');
            out.extend_from_slice(p.name.as_bytes());
        }
    }

    fn check_value(&self) -> Result<(), ValueError> {
        self.0.iter().try_for_each(Proxy::check)
    }
}

/// proxy.log as read.
pub type ProxyLog = UuidLog<Proxies>;

/// Parses proxy.log.
pub fn parse(data: &[u8]) -> ProxyLog {
    ProxyLog::parse_new(data)
}

/// Writes proxy.log as git-annex does.
pub fn write(log: &ProxyLog) -> Vec<u8> {
    log.write_new()
}

/// Records what a gateway proxies (`git annex updateproxy`). Callers
/// leave out repositories configured as private, as git-annex does.
/// Returns the clock used.
pub fn record(
    log: &mut ProxyLog,
    gateway: Uuid,
    proxies: BTreeSet<Proxy>,
    now: VectorClock,
) -> Result<VectorClock, ValueError> {
    log.set(gateway, Proxies(proxies), now)
}

/// Whether a name is a legal git remote name as git-annex judges it: not
/// empty, only letters, digits, `_`, `-` and `.`, and not starting with
/// `-` or `.`.
pub fn is_legal_remote_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Why a UUID read from a log is skipped: it is not plain (see
/// [`Uuid::is_plain`]).
pub(crate) fn not_plain(log: &str, what: &str, u: &Uuid) -> String {
    format!(
        "{log}: skipping {what}: {:?} is not a UUID (only ASCII letters, digits and '-', at most {} of them)",
        u.as_str(),
        annex_types::uuid::MAX_PLAIN_LEN
    )
}

/// What each gateway proxies, leaving out proxies whose name is not a
/// legal remote name (git-annex's `getProxies`), and every gateway and
/// proxied repository whose UUID is not plain (see [`Uuid::is_plain`]):
/// a UUID from here names a repository a gateway reaches. See
/// [`proxies_checked`] for the warnings.
pub fn proxies(log: &ProxyLog) -> BTreeMap<Uuid, BTreeSet<Proxy>> {
    proxies_checked(log).0
}

/// [`proxies`], with a warning for each entry skipped because a UUID is
/// not plain.
pub fn proxies_checked(log: &ProxyLog) -> (BTreeMap<Uuid, BTreeSet<Proxy>>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut out = BTreeMap::new();
    for (g, e) in &log.entries {
        if !g.is_plain() {
            warnings.push(not_plain("proxy.log", "gateway", g));
            continue;
        }
        let mut ok = BTreeSet::new();
        for p in e.value.0.iter().filter(|p| is_legal_remote_name(&p.name)) {
            if p.uuid.is_plain() {
                ok.insert(p.clone());
            } else {
                warnings.push(not_plain(
                    "proxy.log",
                    &format!("{} proxied by {g}", p.name),
                    &p.uuid,
                ));
            }
        }
        out.insert(g.clone(), ok);
    }
    (out, warnings)
}

/// What proxy.log records for `gateway`, leaving out only proxies whose
/// name is not a legal remote name (what git-annex compares with when it
/// updates the log): entries [`proxies`] skips are kept, so that an
/// update can drop them.
pub fn recorded(log: &ProxyLog, gateway: &Uuid) -> BTreeSet<Proxy> {
    log.entries
        .get(gateway)
        .map(|e| {
            e.value
                .0
                .iter()
                .filter(|p| is_legal_remote_name(&p.name))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    fn p(u: &str, n: &str) -> Proxy {
        Proxy {
            uuid: Uuid::parse(u).unwrap(),
            name: n.into(),
        }
    }

    #[test]
    fn reads_like_git_annex() {
        let ok = |s: &str| Proxies::parse_value(s.as_bytes()).map(|p| p.0);
        assert_eq!(ok(""), Some(BTreeSet::new()));
        assert_eq!(
            ok(&format!("{U2}:b {U1}:a:x ")),
            Some(BTreeSet::from([p(U1, "a:x"), p(U2, "b")]))
        );
        assert_eq!(ok(&format!("{U1}:a {U2}")), None);
        assert_eq!(ok(&format!("{U1}:")), None);
        assert_eq!(ok(":a"), None);
        assert_eq!(ok(&format!(" {U1}:a")), None);
        // git-annex would read a UUID " x" here; this crate cannot.
        assert_eq!(ok(&format!("{U1}:a  x:b")), None);
    }

    #[test]
    fn skips_uuids_that_are_not_plain() {
        let hostile = "a;touch${IFS}/tmp/x;b";
        let log = parse(
            format!("5s {G} {U1}:n1 {hostile}:n2 {U2}:n3\n5s {hostile} {U1}:x\n6s {U2} {U1}:y\n")
                .as_bytes(),
        );
        let (ok, warnings) = proxies_checked(&log);
        let g = Uuid::parse(G).unwrap();
        let u2 = Uuid::parse(U2).unwrap();
        assert_eq!(
            ok,
            BTreeMap::from([
                (g.clone(), BTreeSet::from([p(U1, "n1"), p(U2, "n3")])),
                (u2, BTreeSet::from([p(U1, "y")])),
            ])
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().all(|w| w.contains(hostile)), "{warnings:?}");
        // What an update compares with keeps the hostile entry, so that
        // the update drops it.
        assert_eq!(recorded(&log, &g).len(), 3);
    }

    #[test]
    fn legal_names() {
        for n in ["node1", "a.b", "a-b_c", "été", "x."] {
            assert!(is_legal_remote_name(n), "{n}");
        }
        for n in ["", "-a", ".a", "a/b", "a b", "a:b", "a\u{1b}"] {
            assert!(!is_legal_remote_name(n), "{n}");
        }
    }

    #[test]
    fn records_and_filters() {
        let mut log = ProxyLog::new();
        let g = Uuid::parse(G).unwrap();
        record(
            &mut log,
            g.clone(),
            BTreeSet::from([p(U2, "node2"), p(U1, "-bad")]),
            VectorClock::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            write(&log),
            format!("5s {G} {U1}:-bad {U2}:node2\n").as_bytes()
        );
        assert_eq!(proxies(&log)[&g], BTreeSet::from([p(U2, "node2")]));
        assert_eq!(recorded(&log, &g), BTreeSet::from([p(U2, "node2")]));
        assert!(record(
            &mut log,
            g,
            BTreeSet::from([p(U1, "a b")]),
            VectorClock::from_secs(5)
        )
        .is_err());
    }
}
