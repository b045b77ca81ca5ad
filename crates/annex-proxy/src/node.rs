//! Reaching a proxied repository: in this process for a repository on
//! this machine, with `git-annex-shell p2pstdio` over ssh, or over
//! p2phttp; and recording, in the gateway's own branch, where content
//! went, as git-annex's gateway does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use annex_branch::locations::location_log_path;
use annex_branch::logs::presence::{self, Status};
use annex_branch::{Branch, VectorClock};
use annex_http::client::{HttpOptions, HttpRepository, ServerUrl};
use annex_protocol::client::{Client, ClientOptions};
use annex_protocol::message::MAX_PROTOCOL_VERSION;
use annex_protocol::repository::{
    ContentLock, GetOutcome, GetSink, PutOutcome, PutSource, RemoveOutcome, Repository,
};
use annex_protocol::{AssociatedFile, Key, ProtocolVersion, RepoError, Uuid};
use annex_repo::LocalRepository;
use async_trait::async_trait;

use crate::gateway::Proxied;
use crate::remotes::Location;

/// How a node was reached.
pub enum Node {
    /// A repository on this machine, used in this process.
    Local(LocalRepository),
    /// A `git-annex-shell p2pstdio` session over ssh.
    Ssh(Client),
    /// A p2phttp server.
    Http(HttpRepository),
}

impl Node {
    /// The node as a repository.
    pub fn into_repository(self) -> Arc<dyn Repository> {
        match self {
            Node::Local(r) => Arc::new(r),
            Node::Ssh(c) => Arc::new(c),
            Node::Http(h) => Arc::new(h),
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

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Connects to a proxied repository. `gateway_work` is where relative
/// paths of remotes start; `gateway` is this gateway's UUID, which the
/// node sees as its client.
pub async fn connect(
    proxied: &Proxied,
    gateway_work: &Path,
    gateway: &Uuid,
    max_version: ProtocolVersion,
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
            let shell = r.shell.clone().unwrap_or_else(|| "git-annex-shell".into());
            let mut cmd = tokio::process::Command::new("ssh");
            if let Some(p) = port {
                cmd.arg("-p").arg(p.to_string());
            }
            cmd.arg(&host).arg("-T").arg(format!(
                "{shell} {} {} {} --uuid {}",
                shell_quote("p2pstdio"),
                shell_quote(&path),
                shell_quote(gateway.as_str()),
                proxied.uuid
            ));
            let opts = ClientOptions {
                max_version,
                ..ClientOptions::default()
            };
            Node::Ssh(Client::spawn(cmd, &opts).await?)
        }
        Location::Http(url) => {
            let url = ServerUrl::parse(&url).map_err(|e| RepoError::Other(e.to_string()))?;
            Node::Http(HttpRepository::new(
                url,
                proxied.uuid.clone(),
                gateway.clone(),
                HttpOptions::default(),
            )?)
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
        Node::Http(_) => None,
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

/// A proxied node whose changes are also recorded in the gateway's
/// branch: content stored there (with any further repositories it
/// names) is logged present after the store, content removed is logged
/// missing before the answer.
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
            let status = if present {
                Status::Present
            } else {
                Status::Missing
            };
            for u in uuids.iter().filter(|u| !u.is_cluster()) {
                b.change(&location_log_path(&key), |old| {
                    presence::change(old, u.as_str().as_bytes(), status, VectorClock::now())
                })
                .map_err(|e| RepoError::Other(format!("recording the location: {e}")))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| RepoError::Other(e.to_string()))?
    }
}

#[async_trait]
impl Repository for Recorded {
    fn uuid(&self) -> &Uuid {
        self.inner.uuid()
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        self.inner.check_present(key).await
    }

    async fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, RepoError> {
        self.inner.lock_content(key).await
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        let out = self.inner.remove(key, before).await?;
        let mut gone = out.also_removed_from.clone();
        if out.removed {
            gone.insert(0, self.inner.uuid().clone());
        }
        if !gone.is_empty() {
            self.log(key, gone, false).await?;
        }
        Ok(out)
    }

    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        self.inner.get_timestamp().await
    }

    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        self.inner.get(key, file, offset, sink).await
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

    fn bypass(&self, gateways: &[Uuid]) -> Option<Box<dyn Repository>> {
        self.inner.bypass(gateways)
    }
}
