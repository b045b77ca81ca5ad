//! A repository's remotes as git config describes them, with the settings
//! a gateway reads (`annex-uuid`, `annex-proxy`, `annex-cluster-node`,
//! `annexUrl`, `annex-cost`, `annex-ignore`), and its clusters
//! (`annex.cluster.NAME`).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use annex_branch::logs::proxy::Proxy;
use annex_protocol::Uuid;

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

fn truthy(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1" | ""
    )
}

/// git-annex's cost of a remote on this machine.
pub const CHEAP_REMOTE_COST: f64 = 100.0;
/// git-annex's cost of a remote reached over a network.
pub const EXPENSIVE_REMOTE_COST: f64 = 200.0;

impl Remote {
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

    /// Where the repository is.
    pub fn location(&self) -> Location {
        if let Some(u) = &self.annex_url {
            if u.starts_with("annex+http://") || u.starts_with("annex+https://") {
                return Location::Http(u.clone());
            }
        }
        let Some(url) = self.url.as_deref() else {
            return Location::Other;
        };
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

/// The remotes and clusters of a repository's git config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GitRemotes {
    /// The remotes, in the order git lists them.
    pub remotes: Vec<Remote>,
    /// `annex.cluster.NAME = UUID`: the clusters this repository is a
    /// gateway for, by name.
    pub clusters: BTreeMap<String, Uuid>,
}

impl GitRemotes {
    /// Reads the config that applies in `git_dir`.
    pub fn read(git_dir: &Path) -> io::Result<GitRemotes> {
        Ok(GitRemotes::parse_z(&annex_repo::config::list_z(git_dir)?))
    }

    /// Parses `git config --list -z` output.
    pub fn parse_z(out: &[u8]) -> GitRemotes {
        let mut order: Vec<String> = Vec::new();
        let mut by_name: BTreeMap<String, Remote> = BTreeMap::new();
        let mut clusters = BTreeMap::new();
        for entry in out.split(|&b| b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let (k, v) = match entry.split_once('\n') {
                Some((k, v)) => (k, v),
                None => (entry.as_ref(), ""),
            };
            if let Some(name) = k.strip_prefix("annex.cluster.") {
                if let Ok(u) = Uuid::parse(v.trim()) {
                    clusters.insert(name.to_owned(), u);
                }
                continue;
            }
            let Some(rest) = k.strip_prefix("remote.") else {
                continue;
            };
            let Some((name, var)) = rest.rsplit_once('.') else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let r = by_name.entry(name.to_owned()).or_insert_with(|| {
                order.push(name.to_owned());
                Remote {
                    name: name.to_owned(),
                    ..Remote::default()
                }
            });
            match var.to_ascii_lowercase().as_str() {
                "url" => r.url = Some(v.to_owned()),
                "annexurl" => r.annex_url = Some(v.to_owned()),
                "annex-uuid" => r.uuid = Uuid::parse(v.trim()).ok(),
                "annex-proxy" => r.proxy = truthy(v),
                "annex-cluster-node" => {
                    r.cluster_node = v.split_whitespace().map(String::from).collect()
                }
                "annex-ignore" => r.ignore = truthy(v),
                "annex-cost" => r.cost = v.trim().parse().ok(),
                "annex-proxied-by" => r.proxied_by = Uuid::parse(v.trim()).ok(),
                "annex-shell" => r.shell = Some(v.to_owned()),
                "annex-cluster-gateway" => {
                    r.cluster_gateway = v
                        .split_whitespace()
                        .filter_map(|u| Uuid::parse(u).ok())
                        .filter(Uuid::is_cluster)
                        .collect()
                }
                _ => {}
            }
        }
        GitRemotes {
            remotes: order
                .into_iter()
                .filter_map(|n| by_name.remove(&n))
                .collect(),
            clusters,
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
                    synthesized: true,
                });
            }
        }
        out
    }

    /// The remotes sorted by cost, cheapest first (stable: git's order
    /// among equal costs), as git-annex orders them.
    pub fn by_cost(&self) -> Vec<&Remote> {
        let mut v: Vec<&Remote> = self.remotes.iter().collect();
        v.sort_by(|a, b| {
            a.effective_cost()
                .partial_cmp(&b.effective_cost())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
