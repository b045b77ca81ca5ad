//! A repository's remotes as git config describes them, and where each
//! repository is, as git-annex reads them: the one place for every crate
//! (gateways, clusters, special remotes, the commands).
//!
//! - [`Remote`]: one remote with the settings git-annex reads
//!   (`annex-uuid`, `annex-proxy`, `annex-cluster-node`, `annexUrl`,
//!   `annex-cost`, `annex-ignore`, ...), its [`Location`] and its cost.
//! - [`GitRemotes`]: a repository's remotes and its clusters
//!   (`annex.cluster.NAME`); the remotes proxied through a gateway as
//!   git-annex names them (`GATEWAY-NAME`, [`GitRemotes::with_proxied`]).
//! - [`annex_remote_list`] and [`GitRemotes::by_cost`]: the orders
//!   git-annex lists remotes in.
//! - [`Location::of_url`]: where a git remote URL or an ssh-style
//!   `host:path` points.
//!
//! ```
//! use annex_repo::remotes::{GitRemotes, Location};
//!
//! let config = b"remote.n1.url\n/srv/n1\0remote.n1.annex-proxy\ntrue\0";
//! let remotes = GitRemotes::parse_z(config);
//! let n1 = remotes.by_name("n1").unwrap();
//! assert!(n1.proxy);
//! assert_eq!(n1.location(), Location::Local("/srv/n1".into()));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use annex_branch::logs::proxy::Proxy;
use annex_protocol::Uuid;

use crate::config::GitConfig;

/// One remote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remote {
    /// Its name (`remote.NAME.*`).
    pub name: String,
    /// `remote.NAME.url`
    pub url: Option<String>,
    /// `remote.NAME.annexurl`: a p2phttp URL to use instead of `url`.
    pub annex_url: Option<String>,
    /// `remote.NAME.annex-uuid`
    pub uuid: Option<Uuid>,
    /// `remote.NAME.annex-proxy`: this repository proxies for it.
    pub proxy: bool,
    /// `remote.NAME.annex-cluster-node`: the clusters it is a node of.
    pub cluster_node: Vec<String>,
    /// `remote.NAME.annex-ignore`
    pub ignore: bool,
    /// `remote.NAME.annex-cost`
    pub cost: Option<f64>,
    /// `remote.NAME.annex-proxied-by`: the gateway it is reached through.
    pub proxied_by: Option<Uuid>,
    /// `remote.NAME.annex-shell`: the git-annex-shell program to run over ssh.
    pub shell: Option<String>,
    /// `remote.NAME.annex-cluster-gateway`: the clusters that the
    /// repository behind this remote is a gateway for (set by
    /// `extendcluster`).
    pub cluster_gateway: Vec<Uuid>,
    /// `remote.NAME.annex-private`: kept out of the logs that other
    /// repositories read.
    pub private: bool,
    /// Made from another remote's proxy.log entry (`GATEWAY-NAME`), not
    /// configured in git config.
    pub synthesized: bool,
}

/// Where a remote's repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path on this machine.
    Local(std::path::PathBuf),
    /// A host and path reached with ssh.
    Ssh {
        /// `[user@]host`
        host: String,
        /// Port, for `ssh://host:port/path` URLs.
        port: Option<u16>,
        /// The path on the host.
        path: String,
    },
    /// A p2phttp server (`annex+http://...`).
    Http(String),
    /// Something else (a special remote has no URL).
    Other,
}

/// git-annex's cost of a remote on this machine.
pub const CHEAP_REMOTE_COST: f64 = 100.0;
/// git-annex's cost of a remote reached over a network.
pub const EXPENSIVE_REMOTE_COST: f64 = 200.0;

impl Remote {
    /// The remote `name` as `config` sets it up, each setting read as
    /// git-annex reads it (the last value set).
    pub fn from_config(config: &GitConfig, name: &str) -> Remote {
        let get = |var: &str| config.get(&format!("remote.{name}.{var}"));
        let flag = |var: &str| config.bool_or(&format!("remote.{name}.{var}"), false);
        let uuid = |var: &str| get(var).and_then(|v| Uuid::parse(v.trim()).ok());
        Remote {
            name: name.to_owned(),
            url: get("url").map(str::to_owned),
            annex_url: get("annexurl").map(str::to_owned),
            uuid: uuid("annex-uuid"),
            proxy: flag("annex-proxy"),
            cluster_node: get("annex-cluster-node")
                .map(|v| v.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
            ignore: flag("annex-ignore"),
            cost: get("annex-cost").and_then(|v| v.trim().parse().ok()),
            proxied_by: uuid("annex-proxied-by"),
            shell: get("annex-shell").map(str::to_owned),
            cluster_gateway: get("annex-cluster-gateway")
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|u| Uuid::parse(u).ok())
                        .filter(Uuid::is_cluster)
                        .collect()
                })
                .unwrap_or_default(),
            private: flag("annex-private"),
            synthesized: false,
        }
    }

    /// The cost git-annex gives the remote when `annex-cost` is not set:
    /// cheap on this machine, expensive over a network.
    pub fn default_cost(&self) -> f64 {
        match self.location() {
            Location::Local(_) => CHEAP_REMOTE_COST,
            _ => EXPENSIVE_REMOTE_COST,
        }
    }

    /// The remote's cost: `annex-cost`, or its default.
    pub fn effective_cost(&self) -> f64 {
        self.cost.unwrap_or_else(|| self.default_cost())
    }

    /// Whether git-annex makes proxied remotes (`NAME-PROXIED`) of the
    /// repositories this remote's proxy.log entry lists: a p2phttp remote
    /// or an ssh remote, not a local path.
    pub fn can_list_proxied(&self) -> bool {
        match self.location() {
            Location::Http(_) => true,
            Location::Ssh { .. } => true,
            Location::Local(_) | Location::Other => false,
        }
    }

    /// Where the repository is: its `annexUrl` when that is a p2phttp
    /// URL, else its `url` (see [`Location::of_url`]); [`Location::Other`]
    /// without either.
    pub fn location(&self) -> Location {
        if let Some(l) = self.annex_url.as_deref().and_then(Location::of_annex_url) {
            return l;
        }
        match self.url.as_deref() {
            Some(url) => Location::of_url(url),
            None => Location::Other,
        }
    }
}

impl Location {
    /// A p2phttp URL (`annex+http://...`, `annex+https://...`) as a
    /// location; `None` for anything else.
    pub fn of_annex_url(url: &str) -> Option<Location> {
        (url.starts_with("annex+http://") || url.starts_with("annex+https://"))
            .then(|| Location::Http(url.to_owned()))
    }

    /// Where a git remote URL points, as git reads it: `file://PATH` and
    /// a plain path on this machine; `ssh://[USER@]HOST[:PORT]/PATH`
    /// (`/~/PATH` relative to the home directory) and `[USER@]HOST:PATH`
    /// (unless a `/` comes before the `:`) over ssh; any other URL is
    /// [`Location::Other`].
    pub fn of_url(url: &str) -> Location {
        if let Some(p) = url.strip_prefix("file://") {
            return Location::Local(p.into());
        }
        if let Some(rest) = url.strip_prefix("ssh://") {
            let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
                    (h.to_owned(), p.parse().ok())
                }
                _ => (hostport.to_owned(), None),
            };
            let path = match path.strip_prefix('~') {
                Some(home) => home.trim_start_matches('/').to_owned(),
                None => format!("/{path}"),
            };
            return Location::Ssh { host, port, path };
        }
        if url.contains("://") {
            return Location::Other;
        }
        match url.split_once(':') {
            // `host:path`, unless a `/` comes before the `:`.
            Some((host, path)) if !host.is_empty() && !host.contains('/') => Location::Ssh {
                host: host.to_owned(),
                port: None,
                path: if path.is_empty() {
                    ".".into()
                } else {
                    path.to_owned()
                },
            },
            _ => Location::Local(url.into()),
        }
    }
}

/// Where the git directory of the repository at `path` is: `path/.git`
/// (a directory, or a file naming one), or `path` itself when it is a
/// bare repository. `None` when there is no repository there.
pub fn git_dir_of(path: &Path) -> Option<PathBuf> {
    let dotgit = path.join(".git");
    if dotgit.is_dir() {
        return Some(dotgit);
    }
    if dotgit.is_file() {
        let text = std::fs::read_to_string(&dotgit).ok()?;
        let target = text.trim().strip_prefix("gitdir:")?.trim();
        return Some(path.join(target));
    }
    (path.join("config").is_file() && path.join("objects").is_dir()).then(|| path.to_path_buf())
}

/// The UUID of the repository whose git directory is `git_dir`, from its
/// own config file (`annex.uuid`), as git-annex reads the UUID of a
/// remote on this machine; `None` when it has none or cannot be read.
pub fn repository_uuid(git_dir: &Path) -> Option<Uuid> {
    let config = GitConfig::read_file(&git_dir.join("config")).ok()?;
    Uuid::parse(config.get("annex.uuid")?.trim()).ok()
}

/// The remotes and clusters of a repository's git config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GitRemotes {
    /// The remotes, in the order git lists them.
    pub remotes: Vec<Remote>,
    /// `annex.cluster.NAME = UUID`: the clusters this repository is a
    /// gateway for, by name.
    pub clusters: BTreeMap<String, Uuid>,
    /// `annex.private`: this repository is kept out of the logs that
    /// other repositories read.
    pub private: bool,
}

impl GitRemotes {
    /// Reads the config that applies in `git_dir`.
    pub fn read(git_dir: &Path) -> io::Result<GitRemotes> {
        Ok(GitRemotes::from_config(&GitConfig::read(git_dir)?))
    }

    /// Parses `git config --list -z` output.
    pub fn parse_z(out: &[u8]) -> GitRemotes {
        GitRemotes::from_config(&GitConfig::parse_z(out))
    }

    /// The remotes and clusters of a git config, each setting read as
    /// git-annex reads it: the last value of each; `annex-proxy`,
    /// `annex-ignore` and `annex-private` as booleans (a variable without
    /// a value is true).
    pub fn from_config(config: &GitConfig) -> GitRemotes {
        let mut order: Vec<String> = Vec::new();
        let mut by_name: BTreeMap<String, Remote> = BTreeMap::new();
        let mut clusters = BTreeMap::new();
        let private = config.bool_or("annex.private", false);
        for entry in config.entries() {
            let k = entry.name.as_str();
            if let Some(name) = k.strip_prefix("annex.cluster.") {
                match config.get(k).map(|v| Uuid::parse(v.trim())) {
                    Some(Ok(u)) => {
                        clusters.insert(name.to_owned(), u);
                    }
                    _ => {
                        clusters.remove(name);
                    }
                }
                continue;
            }
            let Some(rest) = k.strip_prefix("remote.") else {
                continue;
            };
            let Some((name, _)) = rest.rsplit_once('.') else {
                continue;
            };
            if name.is_empty() || by_name.contains_key(name) {
                continue;
            }
            order.push(name.to_owned());
            by_name.insert(name.to_owned(), Remote::from_config(config, name));
        }
        GitRemotes {
            remotes: order
                .into_iter()
                .filter_map(|n| by_name.remove(&n))
                .collect(),
            clusters,
            private,
        }
    }

    /// The remote of that name.
    pub fn by_name(&self, name: &str) -> Option<&Remote> {
        self.remotes.iter().find(|r| r.name == name)
    }

    /// These remotes and, as git-annex lists them, the remotes proxied
    /// through them: for each ssh or p2phttp remote whose repository
    /// proxy.log (`proxies`, by gateway UUID) lists as proxying others, a
    /// remote `REMOTE-NAME` for each, reached through the gateway with its
    /// settings, `proxied_by` the gateway. A node of a cluster that the
    /// same gateway proxies costs a little more than the gateway by
    /// default (`cluster_nodes`: a node's clusters). A name that git
    /// config already configures is left to git config.
    pub fn with_proxied(
        &self,
        proxies: &BTreeMap<Uuid, BTreeSet<Proxy>>,
        cluster_nodes: impl Fn(&Uuid) -> BTreeSet<Uuid>,
    ) -> GitRemotes {
        let mut out = self.clone();
        for r in &self.remotes {
            let Some(gw) = &r.uuid else { continue };
            if !r.can_list_proxied() {
                continue;
            }
            let Some(listed) = proxies.get(gw) else {
                continue;
            };
            let proxied_uuids: BTreeSet<&Uuid> = listed.iter().map(|p| &p.uuid).collect();
            for p in listed {
                let name = format!("{}-{}", r.name, p.name);
                if self.by_name(&name).is_some() || out.by_name(&name).is_some() {
                    continue;
                }
                let with_its_cluster = cluster_nodes(&p.uuid)
                    .iter()
                    .any(|c| proxied_uuids.contains(c));
                let cost = if with_its_cluster {
                    Some(r.default_cost() + 0.1)
                } else {
                    r.cost
                };
                out.remotes.push(Remote {
                    name,
                    url: r.url.clone(),
                    annex_url: r.annex_url.clone(),
                    uuid: Some(p.uuid.clone()),
                    proxy: r.proxy,
                    cluster_node: Vec::new(),
                    ignore: r.ignore,
                    cost,
                    proxied_by: Some(gw.clone()),
                    shell: r.shell.clone(),
                    cluster_gateway: Vec::new(),
                    private: false,
                    synthesized: true,
                });
            }
        }
        out
    }

    /// The UUIDs git config marks private (`annex.private` for this
    /// repository, `here`; `annex-private` for a remote with a known
    /// UUID), which git-annex keeps out of proxy.log and cluster.log.
    pub fn private_uuids(&self, here: &Uuid) -> BTreeSet<Uuid> {
        let mine = self.private.then(|| here.clone());
        self.remotes
            .iter()
            .filter(|r| r.private)
            .filter_map(|r| r.uuid.clone())
            .chain(mine)
            .collect()
    }

    /// The remotes in git-annex's order by cost (its `byCost` over
    /// [`annex_remote_list`]): cheapest first, and among remotes of the
    /// same cost the one listed last first.
    pub fn by_cost(&self) -> Vec<&Remote> {
        let mut v = annex_remote_list(self);
        v.reverse();
        v.sort_by(|a, b| {
            a.effective_cost()
                .partial_cmp(&b.effective_cost())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        v
    }
}

/// The remotes in the order git-annex lists them (its `remoteList`): the
/// remotes proxied through a remote (`GATEWAY-NAME`, see
/// [`GitRemotes::with_proxied`]) first, each gateway's in proxy.log's
/// order, then the git remotes sorted by their `remote.NAME.url` key, then
/// the remotes with a UUID and no URL (special remotes) by name. A remote
/// with neither a URL nor a UUID is no remote for git-annex.
pub fn annex_remote_list(remotes: &GitRemotes) -> Vec<&Remote> {
    let mut git: Vec<&Remote> = remotes
        .remotes
        .iter()
        .filter(|r| !r.synthesized && r.url.is_some())
        .collect();
    git.sort_by_key(|r| format!("remote.{}.url", r.name).into_bytes());
    let mut special: Vec<&Remote> = remotes
        .remotes
        .iter()
        .filter(|r| !r.synthesized && r.url.is_none() && r.uuid.is_some())
        .collect();
    special.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for g in &git {
        let Some(gu) = &g.uuid else { continue };
        let prefix = format!("{}-", g.name);
        out.extend(remotes.remotes.iter().filter(|r| {
            r.synthesized && r.proxied_by.as_ref() == Some(gu) && r.name.starts_with(&prefix)
        }));
    }
    out.extend(git);
    out.extend(special);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "11111111-1111-4111-8111-111111111111";
    const U3: &str = "33333333-3333-4333-8333-333333333333";
    const G: &str = "99999999-9999-4999-8999-999999999999";

    fn u(s: &str) -> Uuid {
        Uuid::parse(s).unwrap()
    }

    #[test]
    fn reads_remotes_and_clusters() {
        let cfg = b"core.bare\nfalse\0remote.Node1.url\n../n1\0remote.Node1.annex-uuid\n11111111-1111-4111-8111-111111111111\0remote.Node1.annex-proxy\ntrue\0remote.h.annexurl\nannex+http://127.0.0.1:9/git-annex/\0annex.cluster.c\nac000000-0000-8000-8000-000000000000\0remote.s.url\nhost:/srv/r\0remote.s.annex-cluster-node\nc d\0";
        let g = GitRemotes::parse_z(cfg);
        assert_eq!(g.remotes.len(), 3);
        let n = g.by_name("Node1").unwrap();
        assert!(n.proxy);
        assert_eq!(n.location(), Location::Local("../n1".into()));
        assert_eq!(
            g.by_name("h").unwrap().location(),
            Location::Http("annex+http://127.0.0.1:9/git-annex/".into())
        );
        let s = g.by_name("s").unwrap();
        assert_eq!(s.cluster_node, vec!["c", "d"]);
        assert_eq!(
            s.location(),
            Location::Ssh {
                host: "host".into(),
                port: None,
                path: "/srv/r".into()
            }
        );
        assert_eq!(g.clusters.len(), 1);
    }

    #[test]
    fn ssh_urls() {
        let r = Remote {
            url: Some("ssh://u@h:2222/~/repo".into()),
            ..Remote::default()
        };
        assert_eq!(
            r.location(),
            Location::Ssh {
                host: "u@h".into(),
                port: Some(2222),
                path: "repo".into()
            }
        );
    }

    #[test]
    fn private_repositories() {
        let here = u(G);
        let cfg = format!(
            "remote.n1.url\n../n1\0remote.n1.annex-uuid\n{U1}\0annex.private\ntrue\0remote.n1.annex-private\0remote.zz.annex-private\ntrue\0"
        );
        assert_eq!(
            GitRemotes::parse_z(cfg.as_bytes()).private_uuids(&here),
            BTreeSet::from([here.clone(), u(U1)])
        );
        let cfg = format!(
            "remote.n1.annex-uuid\n{U1}\0annex.private\nfalse\0remote.n1.annex-private\n\0"
        );
        assert!(GitRemotes::parse_z(cfg.as_bytes())
            .private_uuids(&here)
            .is_empty());
    }

    #[test]
    fn remotes_in_git_annex_order() {
        let cfg = format!(
            "remote.a.url\n../a\0remote.b.url\nhost:/b\0remote.b.annex-uuid\n{G}\0remote.a-b.url\n../ab\0remote.s.annex-uuid\n{U3}\0remote.nothing.annex-cost\n5\0"
        );
        let remotes = GitRemotes::parse_z(cfg.as_bytes());
        let x = Proxy {
            uuid: u(U1),
            name: "x".into(),
        };
        let proxies = BTreeMap::from([(u(G), BTreeSet::from([x]))]);
        let full = remotes.with_proxied(&proxies, |_| BTreeSet::new());
        let names: Vec<&str> = annex_remote_list(&full)
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        // `remote.a-b.url` sorts before `remote.a.url`.
        assert_eq!(names, ["b-x", "a-b", "a", "b", "s"]);
    }

    #[test]
    fn by_cost_as_git_annex_orders_remotes() {
        // Equal costs: the one git-annex lists last comes first.
        let cfg = format!(
            "remote.a.url\n../a\0remote.b.url\n../b\0remote.c.url\nhost:/c\0remote.d.url\n../d\0remote.d.annex-cost\n300\0remote.s.annex-uuid\n{U3}\0remote.s.annex-cost\n50\0"
        );
        let remotes = GitRemotes::parse_z(cfg.as_bytes());
        let names: Vec<&str> = remotes.by_cost().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["s", "b", "a", "c", "d"]);
    }

    #[test]
    fn locations_of_urls() {
        assert_eq!(Location::of_url("/srv/r"), Location::Local("/srv/r".into()));
        assert_eq!(Location::of_url("../r"), Location::Local("../r".into()));
        assert_eq!(
            Location::of_url("file:///srv/r"),
            Location::Local("/srv/r".into())
        );
        assert_eq!(Location::of_url("./a:b"), Location::Local("./a:b".into()));
        assert_eq!(
            Location::of_url("u@h:"),
            Location::Ssh {
                host: "u@h".into(),
                port: None,
                path: ".".into()
            }
        );
        assert_eq!(
            Location::of_url("ssh://h/srv/r"),
            Location::Ssh {
                host: "h".into(),
                port: None,
                path: "/srv/r".into()
            }
        );
        assert_eq!(Location::of_url("https://example.com/r"), Location::Other);
        assert_eq!(Location::of_annex_url("https://example.com/r"), None);
        assert_eq!(
            Location::of_annex_url("annex+https://h/git-annex/"),
            Some(Location::Http("annex+https://h/git-annex/".into()))
        );
    }

    #[test]
    fn git_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        assert_eq!(git_dir_of(p), None);
        std::fs::create_dir(p.join("objects")).unwrap();
        std::fs::write(
            p.join("config"),
            "[annex]\n\tuuid = 33333333-3333-4333-8333-333333333333\n",
        )
        .unwrap();
        assert_eq!(git_dir_of(p), Some(p.to_path_buf()));
        assert_eq!(repository_uuid(p), Some(u(U3)));
        std::fs::create_dir(p.join(".git")).unwrap();
        assert_eq!(git_dir_of(p), Some(p.join(".git")));
        assert_eq!(repository_uuid(&p.join(".git")), None);
    }
}
