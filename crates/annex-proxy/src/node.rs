//! Reaching a proxied repository: in this process for a repository on
//! this machine, with `git-annex-shell p2pstdio` over ssh, or over
//! p2phttp; a special remote in this process (annex-special); and recording,
//! in the gateway's own branch, where content went, as git-annex's
//! gateway does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use annex_branch::Branch;
use annex_http::client::{HttpOptions, HttpRepository, ServerUrl};
use annex_protocol::client::{Client, ClientOptions};
use annex_protocol::message::MAX_PROTOCOL_VERSION;
use annex_protocol::repository::{
    GetOutcome, GetSink, PutOutcome, PutSource, RemoveOutcome, Repository,
};
use annex_protocol::{AssociatedFile, Forward, Key, ProtocolVersion, RepoError, Uuid};
use annex_repo::config::GitConfig;
use annex_repo::LocalRepository;
use async_trait::async_trait;

use crate::gateway::Proxied;
use crate::remotes::{Location, Remote};
use crate::ssh::GitAnnexShell;
use annex_special::{Setup, SpecialRemote};

/// How a node was reached.
pub enum Node {
    /// A repository on this machine, used in this process.
    Local(LocalRepository),
    /// A `git-annex-shell p2pstdio` session over ssh.
    Ssh(Client),
    /// A p2phttp server.
    Http(HttpRepository),
    /// A special remote, used in this process.
    Special(SpecialRemote),
    /// A repository reached through another gateway's view that avoids
    /// some gateways (BYPASS).
    Relayed(Arc<dyn Repository>),
}

impl Node {
    /// The node as a repository.
    pub fn into_repository(self) -> Arc<dyn Repository> {
        match self {
            Node::Local(r) => Arc::new(r),
            Node::Ssh(c) => Arc::new(c),
            Node::Http(h) => Arc::new(h),
            Node::Special(s) => Arc::new(SpecialReports(s.into_repository())),
            Node::Relayed(r) => r,
        }
    }

    /// The highest protocol version to agree with a client of this node:
    /// what the node agreed with the gateway.
    pub fn max_version(&self) -> ProtocolVersion {
        match self {
            Node::Ssh(c) => c.version(),
            _ => MAX_PROTOCOL_VERSION,
        }
    }
}

/// Opens a special remote (one without a URL) from its configuration in
/// the gateway's remote.log (under `remote.NAME.annex-config-uuid` for a
/// `--sameas` remote), with the remote's git config settings (paths
/// relative to `gateway_work`) and the gateway's annex.diskreserve.
pub fn open_special(
    r: &Remote,
    uuid: &Uuid,
    gateway_work: &Path,
    branch: &Arc<Mutex<Branch>>,
) -> Result<SpecialRemote, RepoError> {
    let refused = |why: String| RepoError::Other(format!("cannot proxy to {}: {why}", r.name));
    let git_dir = branch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .git_dir()
        .to_owned();
    let cfg = GitConfig::read(&git_dir)?;
    let prefix = format!("remote.{}.", r.name);
    // The last value of each of the remote's settings, as git-annex reads
    // them.
    let git_config: BTreeMap<String, String> = cfg
        .entries()
        .iter()
        .filter_map(|e| {
            Some((
                e.name.strip_prefix(&prefix)?.to_owned(),
                e.text().to_owned(),
            ))
        })
        .collect();
    let config_uuid = git_config
        .get("annex-config-uuid")
        .and_then(|u| Uuid::parse(u.trim()).ok())
        .unwrap_or_else(|| uuid.clone());
    let config = {
        let b = branch.lock().unwrap_or_else(|p| p.into_inner());
        annex_special::remote_config(&b, &config_uuid).map_err(|e| {
            RepoError::context(format!("cannot proxy to {}: reading remote.log", r.name), e)
        })?
    };
    let Some(config) = config else {
        return Err(refused(
            "not a git-annex repository this gateway can reach, nor a special remote configured in remote.log".into(),
        ));
    };
    let setup = Setup {
        uuid: uuid.clone(),
        git_config,
        work: gateway_work.to_owned(),
        disk_reserve: annex_repo::config::disk_reserve(cfg.get("annex.diskreserve")),
        branch: branch.clone(),
        name: Some(r.name.clone()),
    };
    annex_special::open(&config, setup)
        .map_err(|e| RepoError::context(format!("cannot proxy to {}", r.name), e))
}

/// Connects to a proxied repository. `gateway_work` is where relative
/// paths of remotes start; `gateway` is this gateway's UUID, which the
/// node sees as its client; `branch` is the gateway's git-annex branch,
/// where a special remote's configuration is read and its chunks are
/// recorded.
pub async fn connect(
    proxied: &Proxied,
    gateway_work: &Path,
    gateway: &Uuid,
    max_version: ProtocolVersion,
    branch: &Arc<Mutex<Branch>>,
) -> Result<Node, RepoError> {
    connect_bypassing(proxied, gateway_work, gateway, max_version, branch, &[]).await
}

/// Connects as [`connect`] does, asking a node that is itself a gateway
/// (a cluster behind another gateway) not to relay to the gateways in
/// `bypass` (BYPASS over ssh, `bypass=` over p2phttp).
pub async fn connect_bypassing(
    proxied: &Proxied,
    gateway_work: &Path,
    gateway: &Uuid,
    max_version: ProtocolVersion,
    branch: &Arc<Mutex<Branch>>,
    bypass: &[Uuid],
) -> Result<Node, RepoError> {
    let r = &proxied.remote;
    let node = match r.location() {
        Location::Local(path) => {
            let path: PathBuf = gateway_work.join(path);
            let repo = LocalRepository::open(&path).map_err(|e| {
                RepoError::Other(format!(
                    "failed to read git config of git repository on {}; perhaps this repository is not set up correctly or has moved ({e})",
                    path.display()
                ))
            })?;
            Node::Local(repo)
        }
        Location::Ssh { host, port, path } => {
            let cmd = GitAnnexShell::new(
                &host,
                port,
                r.shell.as_deref(),
                "p2pstdio",
                &[&path, gateway.as_str(), "--uuid", proxied.uuid.as_str()],
            )
            .map_err(|e| RepoError::context(format!("cannot proxy to {}", r.name), e))?
            .tokio_command();
            let opts = ClientOptions {
                max_version,
                bypass: bypass.to_vec(),
                ..ClientOptions::default()
            };
            Node::Ssh(Client::spawn(cmd, &opts).await?)
        }
        Location::Http(url) => {
            let url = ServerUrl::parse(&url).map_err(RepoError::failed)?;
            let h = HttpRepository::new(
                url,
                proxied.uuid.clone(),
                gateway.clone(),
                HttpOptions::default(),
            )?;
            let view = if bypass.is_empty() {
                None
            } else {
                h.bypass(bypass)
            };
            match view {
                Some(view) => Node::Relayed(Arc::from(view)),
                None => Node::Http(h),
            }
        }
        // A special remote has a UUID and no URL.
        Location::Other if r.url.is_none() => {
            Node::Special(open_special(r, &proxied.uuid, gateway_work, branch)?)
        }
        Location::Other => {
            return Err(RepoError::Other(format!(
                "cannot proxy to {}: not a git-annex repository this gateway can reach",
                r.name
            )))
        }
    };
    let got = match &node {
        Node::Ssh(c) => Some(c.uuid().clone()),
        Node::Local(l) => Some(l.uuid().clone()),
        Node::Http(_) | Node::Special(_) | Node::Relayed(_) => None,
    };
    if let Some(got) = got {
        if got != proxied.uuid {
            return Err(RepoError::Other(format!(
                "{} has UUID {got}, not the proxied {}",
                r.name, proxied.uuid
            )));
        }
    }
    Ok(node)
}

/// A special remote behind the gateway, whose refusals reach the client
/// as git-annex's gateway words them (`proxied special remote reports:
/// WHY`, its Annex/Proxy.hs).
struct SpecialReports(Arc<dyn Repository>);

/// `e`, told as a proxied special remote's: a refusal (or a want of disk
/// space, kept as such) prefixed as git-annex prefixes it; other errors,
/// which the client is not told of, as they are.
fn special_reports(e: RepoError) -> RepoError {
    const PREFIX: &str = "proxied special remote reports: ";
    match e {
        RepoError::Refused(why) => RepoError::Refused(format!("{PREFIX}{why}")),
        RepoError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => RepoError::Io(
            std::io::Error::new(std::io::ErrorKind::StorageFull, format!("{PREFIX}{io}")),
        ),
        e => e,
    }
}

#[async_trait]
impl Forward for SpecialReports {
    fn inner(&self) -> &dyn Repository {
        &*self.0
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        self.0.check_present(key).await.map_err(special_reports)
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        self.0.remove(key, before).await.map_err(special_reports)
    }

    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        self.0
            .get(key, file, offset, sink)
            .await
            .map_err(special_reports)
    }

    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        self.0.put(key, file, source).await.map_err(special_reports)
    }
}

/// Commits the journal of the repository at `git_dir` (the gateway's, or a
/// node's used in this process) to its git-annex branch, as a
/// git-annex-shell session does when it ends.
pub fn commit_journal(git_dir: &Path) -> Result<(), annex_branch::BranchError> {
    Branch::open(git_dir)?.commit("update").map(|_| ())
}

/// A proxied node whose changes are also recorded in the gateway's
/// branch: content stored there (with any further repositories it
/// names) is logged present after the store, content removed is logged
/// missing before the answer. Every other call goes to the node as it is.
pub struct Recorded {
    inner: Arc<dyn Repository>,
    gateway: Arc<Mutex<Branch>>,
}

impl Recorded {
    /// Wraps `inner`, recording into `gateway`'s branch.
    pub fn new(inner: Arc<dyn Repository>, gateway: Arc<Mutex<Branch>>) -> Recorded {
        Recorded { inner, gateway }
    }

    async fn log(&self, key: &Key, uuids: Vec<Uuid>, present: bool) -> Result<(), RepoError> {
        let branch = self.gateway.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            let b = branch.lock().unwrap_or_else(|p| p.into_inner());
            // (Cluster UUIDs are never recorded: set_location skips them.)
            for u in &uuids {
                b.set_location(&key, u, present)
                    .map_err(|e| RepoError::context("recording the location", e))?;
            }
            Ok(())
        })
        .await
        .map_err(RepoError::failed)?
    }
}

#[async_trait]
impl Forward for Recorded {
    fn inner(&self) -> &dyn Repository {
        &*self.inner
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        let mut out = self.inner.remove(key, before).await?;
        let mut gone = out.also_removed_from.clone();
        if out.removed {
            gone.insert(0, self.inner.uuid().clone());
        }
        if !gone.is_empty() {
            self.log(key, gone, false).await?;
        }
        // A node that answers with further repositories (SUCCESS-PLUS)
        // is named among them, as git-annex's gateway names it.
        if out.removed && !out.also_removed_from.is_empty() {
            out.also_removed_from.insert(0, self.inner.uuid().clone());
        }
        Ok(out)
    }

    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        let out = self.inner.put(key, file, source).await?;
        if let PutOutcome::Stored(more) = &out {
            let mut stored = vec![self.inner.uuid().clone()];
            stored.extend(more.iter().cloned());
            self.log(key, stored, true).await?;
        }
        Ok(out)
    }
}
