//! What the CLI shows of the branch's logs: repository descriptions, trust,
//! maxsizes, proxies and clusters, and the remote names of this repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use annex_branch::logs::paths::{CLUSTER_LOG, MAX_SIZE_LOG, PROXY_LOG, TRUST_LOG, UUID_LOG};
use annex_branch::logs::trust::TrustLevel;
use annex_branch::logs::{cluster, maxsize, proxy, trust, uuid_log};
use annex_branch::{Branch, VectorClock};
use annex_protocol::Uuid;
use annex_repo::remotes::{git_dir_of, repository_uuid, GitRemotes, Location};
use anyhow::anyhow;

/// git-annex's built-in special remotes, which every repository knows.
const BUILTIN: &[&str] = &[
    "00000000-0000-0000-0000-000000000001",
    "00000000-0000-0000-0000-000000000002",
];

/// Whether `u` is one of git-annex's built-in special remotes (web,
/// bittorrent).
pub fn is_builtin(u: &Uuid) -> bool {
    BUILTIN.contains(&u.as_str())
}

/// Everything the branch says about repositories.
#[derive(Debug, Default)]
pub struct Overview {
    /// Descriptions from uuid.log, with remote names added as git-annex
    /// adds them (`desc [name]`).
    pub descriptions: BTreeMap<Uuid, String>,
    /// Descriptions as uuid.log has them.
    pub raw_descriptions: BTreeMap<Uuid, String>,
    /// This repository's remotes whose UUID is known: name and UUID.
    pub remotes: Vec<(String, Uuid)>,
    /// This repository's remotes whose UUID is not known.
    pub uuidless_remotes: Vec<String>,
    /// maxsize.log.
    pub maxsizes: BTreeMap<Uuid, u64>,
    /// trust.log, as git-annex names the levels.
    pub trust: BTreeMap<Uuid, String>,
    /// Repositories marked dead.
    pub dead: BTreeSet<Uuid>,
    /// proxy.log: each gateway's proxied remotes (UUID and name).
    pub proxies: BTreeMap<Uuid, Vec<(Uuid, String)>>,
    /// cluster.log: each cluster's nodes.
    pub clusters: BTreeMap<Uuid, BTreeSet<Uuid>>,
}

/// The descriptions in uuid.log.
pub fn descriptions(branch: &Branch) -> anyhow::Result<BTreeMap<Uuid, String>> {
    Ok(uuid_log::descriptions(&uuid_log::parse(
        &branch.read(UUID_LOG)?,
    )))
}

/// Records a repository's description in uuid.log.
pub fn set_description(branch: &Branch, uuid: &Uuid, desc: &str) -> anyhow::Result<()> {
    uuid_log::escape_description(desc)
        .map_err(|e| anyhow!("cannot record that description: {e}"))?;
    branch.set_description::<anyhow::Error>(uuid, desc)?;
    Ok(())
}

/// Records a repository's maxsize in maxsize.log.
pub fn set_maxsize(branch: &Branch, uuid: &Uuid, size: u64) -> anyhow::Result<()> {
    branch.try_change::<anyhow::Error>(MAX_SIZE_LOG, |old| {
        let mut log = maxsize::parse(old);
        maxsize::set(&mut log, uuid.clone(), i128::from(size), VectorClock::now())
            .map_err(|e| anyhow!("cannot record that maxsize: {e}"))?;
        Ok(Some(maxsize::write(&log)))
    })?;
    Ok(())
}

/// Reads every log the CLI shows, and the repository's remotes.
pub fn overview(branch: &Branch, work: &Path) -> anyhow::Result<Overview> {
    let trust_log = trust::parse(&branch.read(TRUST_LOG)?);
    let raw = descriptions(branch)?;
    let mut ov = Overview {
        descriptions: raw.clone(),
        raw_descriptions: raw,
        maxsizes: maxsize::max_sizes(&maxsize::parse(&branch.read(MAX_SIZE_LOG)?))
            .into_iter()
            .filter_map(|(u, n)| u64::try_from(n).ok().map(|n| (u, n)))
            .collect(),
        proxies: proxy::proxies(&proxy::parse(&branch.read(PROXY_LOG)?))
            .into_iter()
            .map(|(g, ps)| (g, ps.into_iter().map(|p| (p.uuid, p.name)).collect()))
            .collect(),
        clusters: cluster::clusters(&cluster::parse(&branch.read(CLUSTER_LOG)?), &trust_log).nodes,
        ..Overview::default()
    };
    for (u, level) in trust::trust_map(&trust_log) {
        if level == TrustLevel::Dead {
            ov.dead.insert(u.clone());
        }
        ov.trust.insert(u, level.as_str().to_string());
    }
    let list = remotes(branch.git_dir(), work)?;
    ov.remotes = list.known;
    ov.uuidless_remotes = list.unknown;
    for (name, u) in &ov.remotes {
        let d = ov.descriptions.entry(u.clone()).or_default();
        *d = if d.is_empty() || d == name {
            format!("[{name}]")
        } else {
            format!("{d} [{name}]")
        };
    }
    Ok(ov)
}

/// This repository's remotes, as git-annex lists them: those with a URL
/// and those with an annex-uuid (special remotes).
struct RemoteList {
    /// The remotes whose UUID is known: name and UUID.
    known: Vec<(String, Uuid)>,
    /// The remotes whose UUID is not known.
    unknown: Vec<String>,
}

/// The repository's remotes with their UUIDs. A remote without an
/// annex-uuid (and not ignored) whose URL is a local path gets the UUID of
/// the repository there, as git-annex finds it (git-annex also records it
/// in the git config; this does not).
fn remotes(git_dir: &Path, work: &Path) -> anyhow::Result<RemoteList> {
    let mut list = RemoteList {
        known: Vec::new(),
        unknown: Vec::new(),
    };
    for r in GitRemotes::read(git_dir)?.remotes {
        let uuid = r
            .uuid
            .or_else(|| match r.url.as_deref().map(Location::of_url) {
                Some(Location::Local(path)) if !r.ignore => {
                    repository_uuid(&git_dir_of(&work.join(path))?)
                }
                _ => None,
            });
        match (uuid, r.url) {
            (Some(u), _) => list.known.push((r.name, u)),
            (None, Some(_)) => list.unknown.push(r.name),
            (None, None) => {}
        }
    }
    Ok(list)
}

impl Overview {
    /// The UUID a user means by `name`, resolved as git-annex resolves a
    /// repository named on its command line: `here` or `.`; then a remote,
    /// by its name or its UUID (git-annex's built-in `web` and
    /// `bittorrent` included); then a description in uuid.log (this
    /// repository counting as described by the empty text when it is
    /// not); then a UUID of uuid.log. The errors are git-annex's.
    pub fn resolve_with_here(&self, name: &str, here: Option<&Uuid>) -> anyhow::Result<Uuid> {
        if name == "here" || name == "." {
            return here
                .cloned()
                .ok_or_else(|| anyhow!("this repository has no UUID; run `annex init`"));
        }
        let builtin = [("web", BUILTIN[0]), ("bittorrent", BUILTIN[1])];
        let remote = self
            .remotes
            .iter()
            .map(|(n, u)| (n.as_str(), Some(u.as_str())))
            .chain(builtin.iter().map(|(n, u)| (*n, Some(*u))))
            .chain(self.uuidless_remotes.iter().map(|n| (n.as_str(), None)))
            .find(|(n, u)| *n == name || *u == Some(name));
        let not_found = match remote {
            _ if name.is_empty() => "no repository name specified".to_string(),
            Some((_, Some(u))) => return Ok(Uuid::parse(u)?),
            Some((n, None)) => {
                return Err(anyhow!(
                    "cannot determine uuid for {n} (perhaps you need to run \"git annex sync\"?)"
                ))
            }
            None => format!("there is no available git remote named \"{name}\""),
        };
        let mut described = self.raw_descriptions.clone();
        if let Some(h) = here {
            described.entry(h.clone()).or_default();
        }
        let by_desc: Vec<&Uuid> = described
            .iter()
            .filter(|(_, d)| d.as_str() == name)
            .map(|(u, _)| u)
            .collect();
        match by_desc.as_slice() {
            [u] => Ok((*u).clone()),
            [] => described
                .keys()
                .find(|u| u.as_str() == name)
                .cloned()
                .ok_or_else(|| anyhow!(not_found)),
            _ => Err(anyhow!(
                "found multiple repositories with that description (use the uuid instead to disambiguate)"
            )),
        }
    }

    /// A repository's description as the JSON output gives it.
    pub fn description_of(&self, u: &Uuid) -> String {
        self.descriptions.get(u).cloned().unwrap_or_default()
    }

    /// A repository's trust level.
    pub fn trust_of(&self, u: &Uuid) -> String {
        self.trust
            .get(u)
            .cloned()
            .unwrap_or_else(|| "semitrusted".into())
    }

    /// `UUID -- description [here]`, as git-annex lists a repository.
    pub fn pretty(&self, u: &Uuid, here: Option<&Uuid>) -> String {
        let n = self.description_of(u);
        let is_here = Some(u) == here;
        let d = if n.is_empty() && is_here {
            "here".to_string()
        } else if is_here {
            if n == "here" {
                "[here]".into()
            } else {
                format!("{n} [here]")
            }
        } else {
            n
        };
        if d.is_empty() {
            u.to_string()
        } else {
            format!("{u} -- {d}")
        }
    }
}
