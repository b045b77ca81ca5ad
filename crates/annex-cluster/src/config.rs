//! Cluster configuration, kept as git-annex keeps it: a gateway's
//! clusters in git config (`annex.cluster.NAME = CLUSTER-UUID`), its nodes
//! as remotes with `remote.NODE.annex-cluster-node = NAME...`, further
//! gateways as `remote.GATEWAY.annex-cluster-gateway = CLUSTER-UUID`, and
//! in the git-annex branch the cluster's description (uuid.log), its nodes
//! (cluster.log) and what each gateway proxies (proxy.log).
//!
//! - [`init_cluster`]: `git annex initcluster NAME [DESCRIPTION]`.
//! - [`update_clusters`]: the cluster.log part of `git annex
//!   updatecluster` (the proxy.log part is [`annex_proxy::update_proxy`]).
//! - [`extend_cluster`]: `git annex extendcluster GATEWAY NAME`.
//! - [`discover_uuids`]: the UUIDs of remotes, read from their
//!   repositories (on this machine, or over ssh) as git-annex reads them
//!   when it lists remotes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use annex_branch::logs::cluster::{self, Clusters};
use annex_branch::logs::paths::{CLUSTER_LOG, PROXY_LOG, TRUST_LOG, UUID_LOG};
use annex_branch::logs::uuid_based::ValueError;
use annex_branch::logs::{proxy, trust, uuid_log};
use annex_branch::{Branch, BranchError, VectorClock};
use annex_protocol::Uuid;
use annex_proxy::ssh::GitAnnexShell;
use annex_repo::config::{self, GitConfig};
use annex_repo::remotes::{
    annex_remote_list, git_dir_of, repository_uuid, GitRemotes, Location, Remote,
};

/// Why a cluster command refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `initcluster` with a name git would not take as a remote name.
    #[error("That cluster name is not a valid git remote name.")]
    BadName,
    /// No remote of that name (or UUID).
    #[error("there is no available git remote named \"{0}\"")]
    NoRemote(String),
    /// `extendcluster`: `GATEWAY-NAME` is a remote, but not of a cluster.
    #[error("{0} is not a cluster remote.")]
    NotClusterRemote(String),
    /// The description cannot be logged.
    #[error("{0}")]
    Value(#[from] ValueError),
    /// The git-annex branch could not be read or written.
    #[error(transparent)]
    Branch(#[from] BranchError),
    /// git config could not be read or written.
    #[error("{0}")]
    Config(String),
}

/// Whether git-annex takes `name` as a remote (and cluster) name: not
/// empty, only letters, digits, `_`, `-` and `.`, not starting with `-`
/// or `.` (git-annex's `isLegalName`).
pub fn is_legal_name(name: &str) -> bool {
    proxy::is_legal_remote_name(name)
}

/// `git config KEY VALUE` in the repository at `git_dir`.
pub fn set_git_config(git_dir: &Path, key: &str, value: &str) -> Result<(), ConfigError> {
    config::set(git_dir, key, value).map_err(|e| ConfigError::Config(e.to_string()))
}

/// Reads the UUIDs of the remotes on this machine from their repositories
/// and records a new or changed one as `remote.NAME.annex-uuid`, as
/// git-annex does whenever it lists remotes (unless `annex-ignore` or
/// `annex-checkuuid=false`); asks an ssh remote whose UUID is not known
/// (see `ssh_uuid`). `work` is the directory relative remote paths
/// start from (the work tree, or the git directory of a bare
/// repository). Returns git-annex's warnings for the remotes whose
/// repository cannot be reached and whose UUID is not known.
pub fn discover_uuids(
    work: &Path,
    git_dir: &Path,
    remotes: &mut GitRemotes,
) -> Result<Vec<String>, ConfigError> {
    let config = GitConfig::read(git_dir).map_err(|e| ConfigError::Config(e.to_string()))?;
    let mut warnings = Vec::new();
    let mut order: Vec<usize> = (0..remotes.remotes.len()).collect();
    order.sort_by_key(|&i| format!("remote.{}.url", remotes.remotes[i].name).into_bytes());
    for i in order {
        let r = &mut remotes.remotes[i];
        if r.synthesized || r.ignore || r.url.is_none() || r.annex_url.is_some() {
            continue;
        }
        let path = match r.location() {
            Location::Local(path) => work.join(path),
            Location::Ssh { host, port, path } => {
                if r.uuid.is_none() {
                    if let Some(w) = ssh_uuid(git_dir, r, &host, port, &path)? {
                        warnings.extend(w);
                    }
                }
                continue;
            }
            _ => continue,
        };
        // A remote on this machine is read each time, unless told not to.
        if !config.bool_or(&format!("remote.{}.annex-checkuuid", r.name), true) {
            continue;
        }
        let Some(dir) = git_dir_of(&path) else {
            if r.uuid.is_none() {
                warnings.push(format!("Remote {} cannot currently be accessed.", r.name));
            }
            continue;
        };
        if let Some(u) = repository_uuid(&dir) {
            if r.uuid.as_ref() != Some(&u) {
                set_git_config(
                    git_dir,
                    &format!("remote.{}.annex-uuid", r.name),
                    u.as_str(),
                )?;
                r.uuid = Some(u);
            }
        }
    }
    Ok(warnings)
}

/// Asks the repository of an ssh remote for its UUID with
/// `git-annex-shell configlist`, as git-annex does for a remote whose UUID
/// it does not know, and records it as `remote.NAME.annex-uuid`. When ssh
/// cannot connect, git-annex's warning; when the remote answers without a
/// UUID, git-annex's warnings, and the remote is set to be ignored
/// (`annex-ignore`) as git-annex sets it.
fn ssh_uuid(
    git_dir: &Path,
    r: &mut Remote,
    host: &str,
    port: Option<u16>,
    path: &str,
) -> Result<Option<Vec<String>>, ConfigError> {
    let cmd = match GitAnnexShell::new(host, port, r.shell.as_deref(), "configlist", &[path]) {
        Ok(c) => c,
        Err(e) => return Ok(Some(vec![format!("Remote {}: {e}", r.name)])),
    };
    let out = cmd
        .std_command()
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| ConfigError::Config(format!("running ssh: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let found = text
        .lines()
        .find_map(|l| l.strip_prefix("annex.uuid="))
        .and_then(|u| Uuid::parse(u.trim()).ok());
    if let (true, Some(u)) = (out.status.success(), found) {
        set_git_config(
            git_dir,
            &format!("remote.{}.annex-uuid", r.name),
            u.as_str(),
        )?;
        r.uuid = Some(u);
        return Ok(None);
    }
    let describe = match port {
        Some(p) => format!("ssh://{host}:{p}{}", slash_path(path)),
        None => format!("ssh://{host}{}", slash_path(path)),
    };
    if out.status.code() == Some(255) {
        return Ok(Some(vec![format!(
            "Unable to connect to repository {describe} to get its annex.uuid configuration."
        )]));
    }
    let n = &r.name;
    set_git_config(git_dir, &format!("remote.{n}.annex-ignore"), "true")?;
    r.ignore = true;
    Ok(Some(vec![
        format!("Remote {n} does not have git-annex installed; setting annex-ignore"),
        format!("This could be a problem with the git-annex installation on the remote. Please make sure that git-annex-shell is available in PATH when you ssh into the remote. Once you have fixed the git-annex installation, run: git annex enableremote {n}"),
    ]))
}

/// An ssh remote's path as git-annex writes it in a URL.
fn slash_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/~/{path}")
    }
}

/// `git annex initcluster NAME DESCRIPTION`: unless this repository
/// already has a cluster of that name (as git config lists it, names in
/// lower case), a new cluster UUID as `annex.cluster.NAME` and its
/// description in uuid.log. Returns the new cluster's UUID, or `None` when
/// the name was taken. The journal is left for the caller to commit.
pub fn init_cluster(
    branch: &Branch,
    remotes: &GitRemotes,
    name: &str,
    description: &str,
) -> Result<Option<Uuid>, ConfigError> {
    if !is_legal_name(name) {
        return Err(ConfigError::BadName);
    }
    // Taken only by a cluster UUID: git-annex ignores any other value.
    if remotes.clusters.get(name).is_some_and(Uuid::is_cluster) {
        return Ok(None);
    }
    let cu = Uuid::new_cluster();
    // Checked before anything is written.
    uuid_log::escape_description(description)?;
    set_git_config(
        branch.git_dir(),
        &format!("annex.cluster.{name}"),
        cu.as_str(),
    )?;
    branch.set_description::<ConfigError>(&cu, description)?;
    Ok(Some(cu))
}

/// What [`update_clusters`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterUpdate {
    /// What git-annex says, in its order: for each cluster (by name),
    /// `No cluster node changes for cluster: NAME`, or `Added node REMOTE
    /// to cluster: NAME` and `Removed node DESCRIPTION from cluster: NAME`
    /// lines.
    pub messages: Vec<String>,
    /// Remotes configured as nodes that cannot be.
    pub warnings: Vec<String>,
}

/// git-annex's names for repositories in messages: uuid.log's
/// descriptions (this repository's included, empty when it has none)
/// with the names of the remotes added (`DESC [NAME]`, or `[NAME]`).
fn descriptions(
    branch: &Branch,
    here: &Uuid,
    list: &[&Remote],
) -> Result<BTreeMap<Uuid, String>, BranchError> {
    let mut descs = uuid_log::descriptions(&uuid_log::parse(&branch.read(UUID_LOG)?));
    descs.entry(here.clone()).or_default();
    let names: BTreeMap<Uuid, String> = list
        .iter()
        .filter_map(|r| Some((r.uuid.clone()?, r.name.clone())))
        .collect();
    for (u, n) in names {
        match descs.get_mut(&u) {
            Some(d) if d.is_empty() || *d == n => *d = format!("[{n}]"),
            Some(d) => *d = format!("{d} [{n}]"),
            None => {
                descs.insert(u, n);
            }
        }
    }
    Ok(descs)
}

/// The remotes and clusters of git config with the remotes proxied
/// through other gateways added from proxy.log, as git-annex lists them.
pub fn remotes_with_proxied(
    branch: &Branch,
    remotes: &GitRemotes,
) -> Result<GitRemotes, BranchError> {
    let proxies = proxy::proxies(&proxy::parse(&branch.read(PROXY_LOG)?));
    let all_nodes = Clusters::from_log(&cluster::parse(&branch.read(CLUSTER_LOG)?));
    Ok(remotes.with_proxied(&proxies, |u| {
        all_nodes.clusters_of(u).cloned().unwrap_or_default()
    }))
}

/// Records in cluster.log the nodes of each of this repository's clusters
/// (`annex.cluster.NAME`), as `git annex updatecluster` does: the remotes
/// whose `annex-cluster-node` names the cluster, and the nodes already
/// recorded that are reached through another gateway. Dead nodes are
/// dropped; private repositories are kept out of the log. `here` is this
/// repository's UUID, `remotes` its git config's remotes. The journal is
/// left for the caller to commit.
pub fn update_clusters(
    branch: &Branch,
    here: &Uuid,
    remotes: &GitRemotes,
) -> Result<ClusterUpdate, ConfigError> {
    let full = remotes_with_proxied(branch, remotes)?;
    let list = annex_remote_list(&full);
    let mut update = ClusterUpdate::default();
    // Each cluster's nodes among the remotes, ordered as git-annex orders
    // remotes in a set: by cost, then UUID.
    type CostKey = (u64, Uuid);
    let cost_key = |r: &Remote, u: &Uuid| -> CostKey {
        // Costs are not negative; their bits order as the numbers do.
        (r.effective_cost().max(0.0).to_bits(), u.clone())
    };
    let unproxyable = annex_proxy::gateway::unproxyable_exports(branch, remotes)?;
    let mut my_nodes: BTreeMap<&str, BTreeMap<CostKey, &Remote>> = BTreeMap::new();
    for r in &list {
        let names: Vec<&String> = r.cluster_node.iter().filter(|n| is_legal_name(n)).collect();
        if names.is_empty() {
            continue;
        }
        let Some(u) = &r.uuid else {
            update.warnings.push(format!(
                "{} is a git remote without a known annex-uuid. Cannot use this remote as a cluster node.",
                r.name
            ));
            continue;
        };
        if unproxyable.contains(&r.name) {
            update
                .warnings
                .push(annex_proxy::gateway::unproxyable_warning(
                    &r.name,
                    "Cannot use this remote as a cluster node.",
                ));
            continue;
        }
        for n in names {
            let set = my_nodes.entry(n.as_str()).or_default();
            if !set.values().any(|o| o.uuid.as_ref() == Some(u)) {
                set.insert(cost_key(r, u), r);
            }
        }
    }
    // As read, so that nodes whose UUIDs are not plain (which
    // `Clusters::from_log` skips) are dropped by the update.
    let cluster_log = cluster::parse(&branch.read(CLUSTER_LOG)?);
    let trust_log = trust::parse(&branch.read(TRUST_LOG)?);
    let descs = descriptions(branch, here, &list)?;
    let private = remotes.private_uuids(here);
    for (name, cu) in &remotes.clusters {
        if !is_legal_name(name) || !cu.is_cluster() {
            continue;
        }
        let mine = my_nodes.remove(name.as_str()).unwrap_or_default();
        let old = cluster::recorded(&cluster_log, &trust_log, cu);
        let proxied = list.iter().filter_map(|r| {
            let u = r.uuid.as_ref()?;
            (old.contains(u) && r.proxied_by.is_some()).then(|| u.clone())
        });
        let all: BTreeSet<Uuid> = mine
            .values()
            .filter_map(|r| r.uuid.clone())
            .chain(proxied)
            .collect();
        if all == old {
            update
                .messages
                .push(format!("No cluster node changes for cluster: {name}"));
            continue;
        }
        for r in mine.values() {
            if r.uuid.as_ref().is_some_and(|u| !old.contains(u)) {
                update
                    .messages
                    .push(format!("Added node {} to cluster: {name}", r.name));
            }
        }
        for n in old.difference(&all) {
            let d = descs.get(n).cloned().unwrap_or_else(|| n.to_string());
            update
                .messages
                .push(format!("Removed node {d} from cluster: {name}"));
        }
        let nodes: BTreeSet<Uuid> = all.difference(&private).cloned().collect();
        let cu = cu.clone();
        branch.try_change::<ConfigError>(CLUSTER_LOG, |old| {
            let mut log = cluster::parse(old);
            cluster::record(&mut log, cu, nodes, VectorClock::now())?;
            Ok(Some(cluster::write(&log)))
        })?;
    }
    Ok(update)
}

/// The remote git-annex finds by `name`: the first in its order whose
/// name, or else whose UUID, is `name` (git-annex's `byName`).
fn by_name<'a>(list: &[&'a Remote], name: &str) -> Result<&'a Remote, ConfigError> {
    list.iter()
        .find(|r| r.name == name || r.uuid.as_ref().is_some_and(|u| u.as_str() == name))
        .copied()
        .ok_or_else(|| ConfigError::NoRemote(name.to_owned()))
}

/// `git annex extendcluster GATEWAY NAME`: this repository becomes a
/// gateway of the cluster that the remote `GATEWAY` serves as its
/// cluster `NAME`, found as the remote `GATEWAY-NAME` that proxy.log makes
/// (after a `git fetch` from the gateway). Sets `annex.cluster.NAME`
/// (unless this repository already has a cluster of that name) and
/// `remote.GATEWAY.annex-cluster-gateway`; returns the cluster's UUID.
/// [`update_clusters`] and [`annex_proxy::update_proxy`] are to be run
/// after it, as git-annex does.
pub fn extend_cluster(
    branch: &Branch,
    remotes: &GitRemotes,
    gateway: &str,
    name: &str,
) -> Result<Uuid, ConfigError> {
    let full = remotes_with_proxied(branch, remotes)?;
    let list = annex_remote_list(&full);
    let cluster_remote = format!("{gateway}-{name}");
    let c = by_name(&list, &cluster_remote)?;
    let g = by_name(&list, gateway)?;
    let cu = c
        .uuid
        .clone()
        .filter(Uuid::is_cluster)
        .ok_or_else(|| ConfigError::NotClusterRemote(cluster_remote.clone()))?;
    let mine = remotes
        .clusters
        .iter()
        .any(|(n, u)| n == name && is_legal_name(n) && u.is_cluster());
    if !mine {
        set_git_config(
            branch.git_dir(),
            &format!("annex.cluster.{name}"),
            cu.as_str(),
        )?;
    }
    set_git_config(
        branch.git_dir(),
        &format!("remote.{}.annex-cluster-gateway", g.name),
        cu.as_str(),
    )?;
    Ok(cu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_names() {
        for ok in ["c", "my-cluster", "a.b_c", "Ünï", "x-"] {
            assert!(is_legal_name(ok), "{ok}");
        }
        for bad in ["", "bad name", "-c", ".c", "a/b", "a:b", "a\nb"] {
            assert!(!is_legal_name(bad), "{bad:?}");
        }
    }
}
