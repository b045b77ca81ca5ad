//! A repository's remotes as git config describes them, with the settings
//! a gateway reads (`annex-uuid`, `annex-proxy`, `annex-cluster-node`,
//! `annexUrl`, `annex-cost`, `annex-ignore`), and its clusters
//! (`annex.cluster.NAME`).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

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

impl Remote {
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
