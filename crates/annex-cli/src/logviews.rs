//! What the CLI shows of the branch's logs: repository descriptions, trust,
//! maxsizes, proxies and clusters, and the remote names of this repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use annex_branch::logs::paths::{CLUSTER_LOG, MAX_SIZE_LOG, PROXY_LOG, TRUST_LOG, UUID_LOG};
use annex_branch::logs::trust::TrustLevel;
use annex_branch::logs::{cluster, maxsize, proxy, trust, uuid_log};
use annex_branch::{Branch, VectorClock};
use annex_protocol::Uuid;
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
    /// This repository's git remotes: name and UUID.
    pub remotes: Vec<(String, Uuid)>,
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
    let mut err = None;
    branch.change(UUID_LOG, |old| {
        let mut log = uuid_log::parse(old);
        match uuid_log::describe(&mut log, uuid.clone(), desc, VectorClock::now()) {
            Ok(_) => Some(uuid_log::write(&log)),
            Err(e) => {
                err = Some(e);
                None
            }
        }
    })?;
    match err {
        Some(e) => Err(anyhow!("cannot record that description: {e}")),
        None => Ok(()),
    }
}

/// Records a repository's maxsize in maxsize.log.
pub fn set_maxsize(branch: &Branch, uuid: &Uuid, size: u64) -> anyhow::Result<()> {
    let mut err = None;
    branch.change(MAX_SIZE_LOG, |old| {
        let mut log = maxsize::parse(old);
        match maxsize::set(&mut log, uuid.clone(), i128::from(size), VectorClock::now()) {
            Ok(_) => Some(maxsize::write(&log)),
            Err(e) => {
                err = Some(e);
                None
            }
        }
    })?;
    match err {
        Some(e) => Err(anyhow!("cannot record that maxsize: {e}")),
        None => Ok(()),
    }
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
    ov.remotes = remotes(work)?;
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

/// The repository's git remotes that have an annex-uuid.
fn remotes(work: &Path) -> anyhow::Result<Vec<(String, Uuid)>> {
    let out = std::process::Command::new("git")
        .current_dir(work)
        .args(["config", "--get-regexp", r"^remote\..*\.annex-uuid$"])
        .output()?;
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((k, u)) = line.split_once(' ') else {
            continue;
        };
        let Some(name) = k
            .strip_prefix("remote.")
            .and_then(|k| k.strip_suffix(".annex-uuid"))
        else {
            continue;
        };
        if let Ok(u) = Uuid::parse(u.trim()) {
            v.push((name.to_string(), u));
        }
    }
    Ok(v)
}

impl Overview {
    /// The UUID a user means by `name`: `here` or `.`, a remote's name, a
    /// description, or a UUID, as git-annex resolves them.
    pub fn resolve_with_here(&self, name: &str, here: Option<&Uuid>) -> anyhow::Result<Uuid> {
        if name == "here" || name == "." {
            return here
                .cloned()
                .ok_or_else(|| anyhow!("this repository has no UUID; run `annex init`"));
        }
        if let Some((_, u)) = self.remotes.iter().find(|(n, _)| n == name) {
            return Ok(u.clone());
        }
        let by_desc: Vec<&Uuid> = self
            .raw_descriptions
            .iter()
            .filter(|(_, d)| d.as_str() == name)
            .map(|(u, _)| u)
            .collect();
        match by_desc.as_slice() {
            [u] => return Ok((*u).clone()),
            [] => {}
            _ => {
                return Err(anyhow!(
                    "found multiple repositories with that description (use the uuid instead to disambiguate)"
                ))
            }
        }
        if let Ok(u) = Uuid::parse(name) {
            if self.descriptions.contains_key(&u) || self.remotes.iter().any(|(_, r)| *r == u) {
                return Ok(u);
            }
        }
        Err(anyhow!(
            "there is no available git remote named \"{name}\" (and no repository with that description or UUID)"
        ))
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
