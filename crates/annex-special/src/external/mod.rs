//! External special remotes (`type=external`): a program
//! `git-annex-remote-NAME` found on PATH, spoken to over its standard
//! input and output with git-annex's external special remote protocol,
//! as a [`Repository`].
//!
//! - [`protocol`]: the protocol's lines, parsed and written as git-annex
//!   does.
//! - Processes (`process`, `pool`): started when first needed and kept
//!   for the requests that follow, at most
//!   [`ExternalOptions::processes`] busy at once (one process with a job
//!   number per request for a remote that takes the ASYNC extension). A
//!   remote that crashes, hangs (says nothing for
//!   [`ExternalOptions::timeout`]) or answers what the protocol does not
//!   allow fails that request with a message naming it, and is stopped;
//!   the next request starts a new process.
//! - The remote's own requests (`host`) are answered from where git-annex
//!   keeps what they ask for: remote.log's configuration, git-annex's
//!   credentials cache, the git-annex branch's state and URL logs.
//! - Content goes through files, as the protocol has it. An upload is
//!   received into one file of the gateway's, verified as it arrives and
//!   shared by every external remote it goes to (`staged`); a download is
//!   sent to the client while the remote writes the file when the remote
//!   says it writes in order (GETORDERED), otherwise once it is complete
//!   (`retrieve`).
//! - The export requests (EXPORTSUPPORTED, EXPORT, TRANSFEREXPORT,
//!   CHECKPRESENTEXPORT, REMOVEEXPORT, REMOVEEXPORTDIRECTORY,
//!   RENAMEEXPORT) as methods of [`ExternalRemote`], for a remote with
//!   `exporttree=yes`, and as an export store ([`export::ExternalExport`])
//!   that the export layer ([`crate::export`]) serves like the directory
//!   remote's and S3's.
//!
//! The program to run comes from the using repository's git config
//! (`remote.NAME.annex-externaltype`, which `git annex initremote` and
//! `enableremote` set), never from the git-annex branch, which anyone
//! who can push may write.

pub mod export;
mod host;
mod pool;
mod process;
pub mod protocol;
mod retrieve;
mod staged;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use annex_branch::logs::remote_config::RemoteConfig;
use annex_protocol::repository::{
    ContentLock, GetOutcome, GetSink, PutOutcome, PutSource, RemoveOutcome, Repository, Validity,
};
use annex_protocol::{AssociatedFile, Key, RepoError, Uuid};
use annex_repo::monotonic_seconds;
use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::chunk::Chunking;
use crate::{Setup, SpecialError};
use host::Host;
use pool::{Lease, Pool};
use process::{absolute, Hooks, Spawner, Step};
use protocol::{failure_message, Availability, Direction, Request, Response};
use retrieve::{Place, Retrieval, Retrievals};
use staged::{Phase, Role, Staging};

/// Why a request to an external special remote failed. Each message
/// names the remote.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExternalError {
    /// The program is not on PATH (git-annex's words).
    #[error("Cannot run {program} -- It is not installed in PATH ({path})")]
    NotInstalled {
        /// `git-annex-remote-NAME`.
        program: String,
        /// The PATH searched.
        path: String,
    },
    /// The program could not be started.
    #[error("Cannot run {program} -- Make sure it's executable and that its dependencies are installed ({source})")]
    CannotRun {
        /// `git-annex-remote-NAME`.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The remote sent a line the protocol does not allow then.
    #[error("external special remote {remote}: protocol error, unexpectedly received \"{line}\" ({why})")]
    Protocol {
        /// The remote.
        remote: String,
        /// The line (cut short if long).
        line: String,
        /// git-annex's words: `unable to parse command` or `command not
        /// allowed at this time`.
        why: &'static str,
    },
    /// The program exited, closed its output, or cannot be written to.
    #[error("external special remote {remote}: {why}")]
    Broken {
        /// The remote.
        remote: String,
        /// What happened.
        why: String,
    },
    /// The remote said nothing for longer than the deadline; it was
    /// stopped.
    #[error("external special remote {remote}: no answer to {request} within {secs} s; the program was stopped")]
    Timeout {
        /// The remote.
        remote: String,
        /// The request it did not answer.
        request: &'static str,
        /// The deadline.
        secs: u64,
    },
    /// The remote sent ERROR.
    #[error("external special remote {remote} error: {message}")]
    RemoteError {
        /// The remote.
        remote: String,
        /// Its message.
        message: String,
    },
    /// The remote answered that the request failed (TRANSFER-FAILURE,
    /// REMOVE-FAILURE, CHECKPRESENT-UNKNOWN, ...).
    #[error("external special remote {remote}: {message}")]
    Failed {
        /// The remote.
        remote: String,
        /// Its reason, or git-annex's words for none.
        message: String,
    },
    /// The remote cannot be used: an unknown protocol version or
    /// extension, or PREPARE failed.
    #[error("external special remote {remote} cannot be used: {message}")]
    Unusable {
        /// The remote.
        remote: String,
        /// Why.
        message: String,
    },
    /// Every process the remote may have is busy, and none came free in
    /// time.
    #[error("external special remote {remote}: no process came free within {secs} s (all {processes} are busy)")]
    Busy {
        /// The remote.
        remote: String,
        /// The wait.
        secs: u64,
        /// The most processes.
        processes: usize,
    },
    /// A value cannot be sent in one protocol line.
    #[error("external special remote {remote}: {source}")]
    Unsendable {
        /// The remote.
        remote: String,
        /// The value.
        source: protocol::Unsendable,
    },
}

impl ExternalError {
    /// Whether the process that made the error cannot be used again.
    pub fn breaks_process(&self) -> bool {
        !matches!(
            self,
            ExternalError::Failed { .. }
                | ExternalError::Busy { .. }
                | ExternalError::NotInstalled { .. }
                | ExternalError::CannotRun { .. }
        )
    }
}

impl From<ExternalError> for RepoError {
    fn from(e: ExternalError) -> RepoError {
        RepoError::failed(e)
    }
}

/// How an external special remote's processes are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalOptions {
    /// The most requests at once: processes, or jobs of the one process
    /// of a remote using ASYNC (`remote.NAME.annex-external-processes`).
    pub processes: usize,
    /// How long a request waits for a sign of life from the remote (a
    /// line, or a file it retrieves growing) before the process is
    /// stopped, and for a process to come free
    /// (`remote.NAME.annex-external-timeout`, in seconds).
    pub timeout: Duration,
}

/// The most processes of one remote at once, unless configured.
pub const DEFAULT_PROCESSES: usize = 4;

/// The deadline of a request, unless configured: long enough for a
/// remote that copies a large file without sending PROGRESS.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for ExternalOptions {
    fn default() -> ExternalOptions {
        ExternalOptions {
            processes: DEFAULT_PROCESSES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ExternalOptions {
    /// The options in the remote's git config settings (`setup`), the
    /// defaults otherwise.
    fn from_setup(setup: &Setup) -> Result<ExternalOptions, SpecialError> {
        let mut o = ExternalOptions::default();
        if let Some(v) = setup.git("annex-external-processes") {
            o.processes = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| SpecialError::BadSetting {
                    field: "annex-external-processes",
                    value: v.to_owned(),
                })?;
        }
        if let Some(v) = setup.git("annex-external-timeout") {
            let secs = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| SpecialError::BadSetting {
                    field: "annex-external-timeout",
                    value: v.to_owned(),
                })?;
            o.timeout = Duration::from_secs_f64(secs);
        }
        Ok(o)
    }
}

/// An external special remote.
#[derive(Clone)]
pub struct ExternalRemote {
    inner: Arc<Inner>,
}

struct Inner {
    uuid: Uuid,
    label: String,
    externaltype: String,
    options: ExternalOptions,
    pool: Pool,
    staging: Staging,
    get_dir: PathBuf,
    git_dir: PathBuf,
    disk_reserve: u64,
    ordered: OnceCell<bool>,
    retrievals: Retrievals,
}

impl std::fmt::Debug for ExternalRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalRemote")
            .field("uuid", &self.inner.uuid)
            .field("externaltype", &self.inner.externaltype)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Whether `name` can name a program `git-annex-remote-NAME` on PATH: not
/// empty, no `/`, no NUL.
fn valid_externaltype(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\0'])
}

fn path_str(p: &Path) -> Result<String, ExternalError> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| ExternalError::Failed {
            remote: p.display().to_string(),
            message: "the path is not UTF-8, which the protocol cannot carry".into(),
        })
}

impl ExternalRemote {
    /// The remote described by its configuration in remote.log (of type
    /// `external`), as `setup` says: the program named by
    /// `remote.NAME.annex-externaltype` in git config. Refuses chunking,
    /// and `externaltype=readonly` (git-annex's read-only mode, which
    /// downloads from recorded URLs).
    pub fn open(config: &RemoteConfig, setup: Setup) -> Result<ExternalRemote, SpecialError> {
        ExternalRemote::open_in(config, setup, None)
    }

    /// [`ExternalRemote::open`], looking for the program in `search`
    /// rather than PATH when given.
    fn open_in(
        config: &RemoteConfig,
        setup: Setup,
        search: Option<Vec<PathBuf>>,
    ) -> Result<ExternalRemote, SpecialError> {
        match config.get("type") {
            Some("external") => {}
            Some(other) => return Err(SpecialError::UnsupportedType(other.to_owned())),
            None => return Err(SpecialError::MissingType),
        }
        crate::check_supported(config)?;
        match Chunking::from_config(config)? {
            Chunking::None => {}
            _ => {
                let (field, value) = config
                    .get("chunk")
                    .map(|v| ("chunk", v))
                    .or_else(|| config.get("chunksize").map(|v| ("chunksize", v)))
                    .unwrap_or(("chunk", ""));
                return Err(SpecialError::Unsupported {
                    field,
                    value: value.to_owned(),
                });
            }
        }
        if let Some(v @ ("yes" | "true")) = config.get("readonly") {
            return Err(SpecialError::Unsupported {
                field: "readonly",
                value: v.to_owned(),
            });
        }
        let externaltype = setup
            .git("annex-externaltype")
            .ok_or(SpecialError::Missing("externaltype"))?
            .to_owned();
        if externaltype == "readonly" {
            return Err(SpecialError::Unsupported {
                field: "externaltype",
                value: externaltype,
            });
        }
        if !valid_externaltype(&externaltype) {
            return Err(SpecialError::BadSetting {
                field: "externaltype",
                value: externaltype,
            });
        }
        let options = ExternalOptions::from_setup(&setup)?;
        let git_dir = absolute(
            setup
                .branch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .git_dir(),
        );
        let work = absolute(&setup.work);
        let work_tree = (work != git_dir && !setup.work.as_os_str().is_empty()).then_some(work);
        let cache_creds = annex_repo::config::GitConfig::read(&git_dir)
            .map(|c| c.bool_or("annex.cachecreds", true))
            .unwrap_or(true);
        let program = format!("git-annex-remote-{externaltype}");
        let label = match &setup.name {
            Some(n) => format!("{n} ({program})"),
            None => program.clone(),
        };
        let git_dir_answer = work_tree
            .as_ref()
            .and_then(|w| git_dir.strip_prefix(w).ok())
            .filter(|rel| !rel.as_os_str().is_empty())
            .unwrap_or(&git_dir)
            .display()
            .to_string();
        let host = Arc::new(Host {
            uuid: setup.uuid.clone(),
            git_dir: git_dir.clone(),
            git_dir_answer,
            remote_name: setup.name.clone(),
            branch: setup.branch.clone(),
            cache_creds,
            label: label.clone(),
        });
        let spawner = Arc::new(Spawner {
            program,
            label: label.clone(),
            git_dir: git_dir.clone(),
            work_tree,
            timeout: options.timeout,
            host,
            config: config.0.clone(),
            search,
        });
        let tmp = git_dir.join("annex").join("tmp").join("external");
        Ok(ExternalRemote {
            inner: Arc::new(Inner {
                uuid: setup.uuid.clone(),
                label,
                externaltype,
                options,
                pool: Pool::new(spawner, options.processes, options.timeout),
                staging: Staging {
                    dir: tmp.join("put"),
                    git_dir: git_dir.clone(),
                    reserve: setup.disk_reserve,
                },
                get_dir: tmp.join("get").join(setup.uuid.as_str()),
                git_dir,
                disk_reserve: setup.disk_reserve,
                ordered: OnceCell::new(),
                retrievals: Retrievals::default(),
            }),
        })
    }

    /// The `NAME` of `git-annex-remote-NAME`.
    pub fn externaltype(&self) -> &str {
        &self.inner.externaltype
    }

    /// How the remote's processes are run.
    pub fn options(&self) -> ExternalOptions {
        self.inner.options
    }

    fn failed(&self, message: String) -> ExternalError {
        ExternalError::Failed {
            remote: self.inner.label.clone(),
            message,
        }
    }

    async fn lease(&self) -> Result<Lease, ExternalError> {
        self.inner.pool.lease().await
    }

    /// Sends `req` to a process of the remote and returns what `handle`
    /// makes of the reply.
    async fn ask<T>(
        &self,
        req: Request,
        handle: impl FnMut(Response) -> Step<T>,
    ) -> Result<T, ExternalError> {
        let mut lease = self.lease().await?;
        lease.request(&req, &Hooks::default(), handle).await
    }

    /// The remote's cost (GETCOST), git-annex's cost of an expensive
    /// remote (200) when it does not say.
    pub async fn cost(&self) -> Result<f64, ExternalError> {
        self.ask(Request::GetCost, |r| match r {
            Response::Cost(c) => Step::Done(c),
            Response::UnsupportedRequest => Step::Done(200.0),
            _ => Step::Unexpected,
        })
        .await
    }

    /// Whether the remote is available from everywhere, from here only,
    /// or not now (GETAVAILABILITY); globally when it does not say or
    /// cannot be asked, as git-annex takes it.
    pub async fn availability(&self) -> Availability {
        self.ask(Request::GetAvailability, |r| match r {
            Response::Availability(a) => Step::Done(a),
            Response::UnsupportedRequest => Step::Done(Availability::Global),
            _ => Step::Unexpected,
        })
        .await
        .unwrap_or(Availability::Global)
    }

    /// Whether the remote writes retrieved files in order (GETORDERED,
    /// asked once): anything but ORDERED, or a failure to ask, is no.
    pub async fn ordered(&self) -> bool {
        *self
            .inner
            .ordered
            .get_or_init(|| async {
                self.ask(Request::GetOrdered, |r| Step::Done(r == Response::Ordered))
                    .await
                    .unwrap_or(false)
            })
            .await
    }

    /// The settings the remote uses, with their descriptions
    /// (LISTCONFIGS); `None` when it does not say.
    pub async fn list_configs(&self) -> Result<Option<Vec<(String, String)>>, ExternalError> {
        let mut got = Vec::new();
        self.ask(Request::ListConfigs, |r| match r {
            Response::Config(n, d) => {
                got.push((n, d));
                Step::Next
            }
            Response::ConfigEnd => Step::Done(true),
            Response::UnsupportedRequest => Step::Done(false),
            _ => Step::Unexpected,
        })
        .await
        .map(|listed| listed.then_some(got))
    }

    /// What the remote says about itself (GETINFO), for `info`.
    pub async fn info(&self) -> Result<Vec<(String, String)>, ExternalError> {
        let mut got: Vec<(String, String)> = Vec::new();
        let mut field: Option<String> = None;
        self.ask(Request::GetInfo, |r| match r {
            Response::InfoField(f) if field.is_none() => {
                field = Some(f);
                Step::Next
            }
            Response::InfoValue(v) => match field.take() {
                Some(f) => {
                    got.push((f, v));
                    Step::Next
                }
                None => Step::Unexpected,
            },
            Response::InfoEnd if field.is_none() => Step::Done(()),
            Response::UnsupportedRequest => Step::Done(()),
            _ => Step::Unexpected,
        })
        .await?;
        Ok(got)
    }

    /// Stores the content of `key`, which is in `file`, in the remote
    /// (TRANSFER STORE).
    pub async fn store_file(&self, key: &Key, file: &Path) -> Result<(), ExternalError> {
        let f = path_str(&absolute(file))?;
        let k = key.clone();
        let r = self
            .ask(
                Request::Transfer(Direction::Store, key.clone(), f),
                |r| match r {
                    Response::TransferSuccess(Direction::Store, got) if got == k => {
                        Step::Done(Ok(()))
                    }
                    Response::TransferFailure(Direction::Store, got, m) if got == k => {
                        Step::Done(Err(failure_message("TRANSFER", &m)))
                    }
                    _ => Step::Unexpected,
                },
            )
            .await?;
        r.map_err(|m| self.failed(m))
    }

    /// Retrieves the content of `key` from the remote into `file`
    /// (TRANSFER RETRIEVE; a remote able to resume may continue a partial
    /// `file`), calling `progress` with the remote's PROGRESS counts.
    pub async fn retrieve_file(
        &self,
        key: &Key,
        file: &Path,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<(), ExternalError> {
        let mut lease = self.lease().await?;
        self.retrieve_on(&mut lease, key, file, progress).await
    }

    async fn retrieve_on(
        &self,
        lease: &mut Lease,
        key: &Key,
        file: &Path,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> Result<(), ExternalError> {
        let abs = absolute(file);
        let f = path_str(&abs)?;
        let last = AtomicU64::new(std::fs::metadata(&abs).map(|m| m.len()).unwrap_or(0));
        let alive = || retrieve::grew(&abs, &last);
        let hooks = Hooks {
            progress,
            alive: Some(&alive),
        };
        let k = key.clone();
        let r = lease
            .request(
                &Request::Transfer(Direction::Retrieve, key.clone(), f),
                &hooks,
                |r| match r {
                    Response::TransferSuccess(Direction::Retrieve, got) if got == k => {
                        Step::Done(Ok(()))
                    }
                    Response::TransferFailure(Direction::Retrieve, got, m) if got == k => {
                        Step::Done(Err(failure_message("TRANSFER", &m)))
                    }
                    _ => Step::Unexpected,
                },
            )
            .await?;
        r.map_err(|m| self.failed(m))
    }

    /// The retrieve of `key` in progress, or a new one started.
    async fn retrieval(&self, key: &Key, ordered: bool) -> Result<Arc<Retrieval>, RepoError> {
        let _one = self.inner.retrievals.starting.lock().await;
        if let Some(r) = self.inner.retrievals.current(key) {
            return Ok(r);
        }
        let place = Place {
            dir: self.inner.get_dir.clone(),
            git_dir: self.inner.git_dir.clone(),
            reserve: self.inner.disk_reserve,
            ordered,
        };
        let r = self.inner.retrievals.prepare(key, &place).await?;
        let this = self.clone();
        let k = key.clone();
        let path = r.path.clone();
        let progress = r.progress.clone();
        if r.resumed_from > 0 {
            tracing::debug!(remote = %self.inner.label, key = %k, from = r.resumed_from, "retrieve continues a partial file");
        }
        let task = tokio::spawn(async move {
            let moved = || progress.moved.notify_waiters();
            // Checked against the key before it counts as retrieved: a
            // download waiting for the whole file is served nothing
            // else, and one streamed while the remote wrote ends INVALID.
            let outcome = match this.retrieve_file_noting(&k, &path, &moved).await {
                Ok(()) => verify_file(&k, &path)
                    .await
                    .map_err(|m| this.failed(m).to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = &outcome {
                tracing::warn!(key = %k, "retrieve failed: {e}");
            }
            progress.finish(outcome);
        });
        r.started(task.abort_handle());
        Ok(r)
    }

    async fn retrieve_file_noting(
        &self,
        key: &Key,
        file: &Path,
        moved: &(dyn Fn() + Send + Sync),
    ) -> Result<(), ExternalError> {
        let progress = |_n: u64| moved();
        self.retrieve_file(key, file, Some(&progress)).await
    }

    /// After a failed retrieve: not present when the remote says so, the
    /// failure (a message naming the remote) otherwise.
    async fn absent_or(&self, key: &Key, failure: String) -> Result<GetOutcome, RepoError> {
        match self.check_present(key).await {
            Ok(false) => Ok(GetOutcome::NotPresent),
            _ => Err(RepoError::Other(failure)),
        }
    }

    /// Runs `req` about the exported file `name` (EXPORT, then the
    /// request, on one process).
    async fn ask_export<T>(
        &self,
        name: &str,
        req: Request,
        hooks: &Hooks<'_>,
        handle: impl FnMut(Response) -> Step<T>,
    ) -> Result<T, ExternalError> {
        let mut lease = self.lease().await?;
        lease.request_export(name, &req, hooks, handle).await
    }

    /// Whether the remote supports exports (EXPORTSUPPORTED); no when it
    /// does not say or cannot be asked, as git-annex takes it.
    pub async fn export_supported(&self) -> bool {
        self.ask(Request::ExportSupported, |r| match r {
            Response::ExportSupportedSuccess => Step::Done(true),
            Response::ExportSupportedFailure | Response::UnsupportedRequest => Step::Done(false),
            _ => Step::Unexpected,
        })
        .await
        .unwrap_or(false)
    }

    async fn transfer_export(
        &self,
        direction: Direction,
        key: &Key,
        name: &str,
        file: &Path,
    ) -> Result<(), ExternalError> {
        let abs = absolute(file);
        let f = path_str(&abs)?;
        let last = AtomicU64::new(0);
        let alive = || direction == Direction::Retrieve && retrieve::grew(&abs, &last);
        let hooks = Hooks {
            progress: None,
            alive: Some(&alive),
        };
        let k = key.clone();
        let r = self
            .ask_export(
                name,
                Request::TransferExport(direction, key.clone(), f),
                &hooks,
                |r| match r {
                    Response::TransferSuccess(d, got) if d == direction && got == k => {
                        Step::Done(Ok(()))
                    }
                    Response::TransferFailure(d, got, m) if d == direction && got == k => {
                        Step::Done(Err(failure_message("TRANSFER", &m)))
                    }
                    Response::UnsupportedRequest => Step::Done(Err(
                        "TRANSFEREXPORT not implemented by external special remote".into(),
                    )),
                    _ => Step::Unexpected,
                },
            )
            .await?;
        r.map_err(|m| self.failed(m))
    }

    /// Stores `file`, the content of `key`, as the exported file `name`
    /// (EXPORT, TRANSFEREXPORT STORE).
    pub async fn store_export(
        &self,
        key: &Key,
        name: &str,
        file: &Path,
    ) -> Result<(), ExternalError> {
        self.transfer_export(Direction::Store, key, name, file)
            .await
    }

    /// Retrieves the exported file `name`, which should hold the content
    /// of `key`, into `file` (EXPORT, TRANSFEREXPORT RETRIEVE), and checks
    /// it against the key, as git-annex does.
    pub async fn retrieve_export(
        &self,
        key: &Key,
        name: &str,
        file: &Path,
    ) -> Result<(), ExternalError> {
        self.transfer_export(Direction::Retrieve, key, name, file)
            .await?;
        verify_file(key, file).await.map_err(|m| self.failed(m))
    }

    /// Whether the exported file `name` holds the content of `key`
    /// (EXPORT, CHECKPRESENTEXPORT).
    pub async fn check_present_export(&self, key: &Key, name: &str) -> Result<bool, ExternalError> {
        let k = key.clone();
        let r = self
            .ask_export(
                name,
                Request::CheckPresentExport(key.clone()),
                &Hooks::default(),
                |r| match r {
                    Response::CheckPresentSuccess(got) if got == k => Step::Done(Ok(true)),
                    Response::CheckPresentFailure(got) if got == k => Step::Done(Ok(false)),
                    Response::CheckPresentUnknown(got, m) if got == k => {
                        Step::Done(Err(failure_message("CHECKPRESENT", &m)))
                    }
                    Response::UnsupportedRequest => Step::Done(Err(
                        "CHECKPRESENTEXPORT not implemented by external special remote".into(),
                    )),
                    _ => Step::Unexpected,
                },
            )
            .await?;
        r.map_err(|m| self.failed(m))
    }

    /// Removes the exported file `name`, which held the content of `key`
    /// (EXPORT, REMOVEEXPORT).
    pub async fn remove_export(&self, key: &Key, name: &str) -> Result<(), ExternalError> {
        let k = key.clone();
        let r = self
            .ask_export(
                name,
                Request::RemoveExport(key.clone()),
                &Hooks::default(),
                |r| match r {
                    Response::RemoveSuccess(got) if got == k => Step::Done(Ok(())),
                    Response::RemoveFailure(got, m) if got == k => {
                        Step::Done(Err(failure_message("REMOVE", &m)))
                    }
                    Response::UnsupportedRequest => Step::Done(Err(
                        "REMOVEEXPORT not implemented by external special remote".into(),
                    )),
                    _ => Step::Unexpected,
                },
            )
            .await?;
        r.map_err(|m| self.failed(m))
    }

    /// Removes the exported directory `dir` (REMOVEEXPORTDIRECTORY); a
    /// remote that does not implement it needs nothing removed.
    pub async fn remove_export_directory(&self, dir: &str) -> Result<(), ExternalError> {
        let r = self
            .ask(
                Request::RemoveExportDirectory(dir.to_owned()),
                |r| match r {
                    Response::RemoveExportDirectorySuccess | Response::UnsupportedRequest => {
                        Step::Done(Ok(()))
                    }
                    Response::RemoveExportDirectoryFailure => {
                        Step::Done(Err("failed to remove directory".to_owned()))
                    }
                    _ => Step::Unexpected,
                },
            )
            .await?;
        r.map_err(|m| self.failed(m))
    }

    /// Renames the exported file `from`, the content of `key`, to `to`
    /// (EXPORT, RENAMEEXPORT). `None` when the remote cannot rename (the
    /// caller then stores and removes instead).
    pub async fn rename_export(
        &self,
        key: &Key,
        from: &str,
        to: &str,
    ) -> Result<Option<()>, ExternalError> {
        let k = key.clone();
        let r = self
            .ask_export(
                from,
                Request::RenameExport(key.clone(), to.to_owned()),
                &Hooks::default(),
                |r| match r {
                    Response::RenameExportSuccess(got) if got == k => Step::Done(Ok(Some(()))),
                    Response::RenameExportFailure(got) if got == k => {
                        Step::Done(Err("failed to rename exported file".to_owned()))
                    }
                    Response::UnsupportedRequest => Step::Done(Ok(None)),
                    _ => Step::Unexpected,
                },
            )
            .await?;
        r.map_err(|m| self.failed(m))
    }
}

/// Checks that `file` holds the content of `key` (its hash, or its size
/// for keys without one).
async fn verify_file(key: &Key, file: &Path) -> Result<(), String> {
    let k = key.clone();
    let f = file.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut v = annex_repo::verify::Verifier::new(&k);
        let mut r = std::fs::File::open(&f).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            v.update(&buf[..n]);
        }
        v.finish()
            .map_err(|_| format!("the content retrieved does not match {k}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

#[async_trait]
impl Repository for ExternalRemote {
    fn uuid(&self) -> &Uuid {
        &self.inner.uuid
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        let k = key.clone();
        let r = self
            .ask(Request::CheckPresent(key.clone()), |r| match r {
                Response::CheckPresentSuccess(got) if got == k => Step::Done(Ok(true)),
                Response::CheckPresentFailure(got) if got == k => Step::Done(Ok(false)),
                Response::CheckPresentUnknown(got, m) if got == k => {
                    Step::Done(Err(failure_message("CHECKPRESENT", &m)))
                }
                _ => Step::Unexpected,
            })
            .await?;
        Ok(r.map_err(|m| self.failed(m))?)
    }

    async fn lock_content(&self, _key: &Key) -> Result<Option<ContentLock>, RepoError> {
        // A special remote cannot lock content.
        Ok(None)
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        if before.is_some_and(|deadline| monotonic_seconds() >= deadline) {
            return Ok(RemoveOutcome::default());
        }
        let k = key.clone();
        let r = self
            .ask(Request::Remove(key.clone()), |r| match r {
                Response::RemoveSuccess(got) if got == k => Step::Done(Ok(())),
                Response::RemoveFailure(got, m) if got == k => {
                    Step::Done(Err(failure_message("REMOVE", &m)))
                }
                _ => Step::Unexpected,
            })
            .await?;
        r.map_err(|m| self.failed(m))?;
        Ok(RemoveOutcome {
            removed: true,
            also_removed_from: Vec::new(),
        })
    }

    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        Ok(monotonic_seconds())
    }

    async fn get(
        &self,
        key: &Key,
        _file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        let ordered = self.ordered().await;
        let size = key.size();
        if size.is_some_and(|s| offset >= s) {
            // Nothing left to send.
            if !self.check_present(key).await? {
                return Ok(GetOutcome::NotPresent);
            }
            sink.data(0, &mut tokio::io::empty()).await?;
            let accepted = sink.finish(Some(Validity::Valid)).await?;
            return Ok(GetOutcome::Sent { accepted });
        }
        let r = self.retrieval(key, ordered).await?;
        let validity = match size {
            Some(size) if ordered => {
                if let Err(e) = r.first_bytes(offset).await {
                    return self.absent_or(key, e).await;
                }
                let mut chunks = r.stream(offset, size);
                sink.data_chunks(size - offset, &mut chunks).await?;
                // All sent: valid unless the retrieve then failed (content
                // completed from a partial file that did not match).
                match r.finished().await {
                    Ok(()) => Validity::Valid,
                    Err(e) => {
                        tracing::warn!(remote = %self.inner.label, key = %key, "{e}");
                        Validity::Invalid
                    }
                }
            }
            _ => {
                if let Err(e) = r.finished().await {
                    return self.absent_or(key, e).await;
                }
                let path = r.path.clone();
                let file = tokio::task::spawn_blocking(move || std::fs::File::open(path))
                    .await
                    .map_err(|e| RepoError::context("background task failed", e))??;
                let total = file.metadata()?.len();
                if size.is_some_and(|s| s != total) {
                    return Err(self
                        .failed(format!(
                            "retrieved {total} bytes of {key}, whose size is {}",
                            size.unwrap_or_default()
                        ))
                        .into());
                }
                let start = offset.min(total);
                let len = total - start;
                if !sink.data_file(len, &file, start).await? {
                    let mut f = tokio::fs::File::from_std(file);
                    use tokio::io::{AsyncReadExt, AsyncSeekExt};
                    f.seek(std::io::SeekFrom::Start(start)).await?;
                    let mut limited = f.take(len);
                    sink.data(len, &mut limited).await?;
                }
                Validity::Valid
            }
        };
        let accepted = sink.finish(Some(validity)).await?;
        Ok(GetOutcome::Sent { accepted })
    }

    async fn put(
        &self,
        key: &Key,
        _file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        if self.check_present(key).await? {
            return Ok(PutOutcome::AlreadyHave(Vec::new()));
        }
        let (staged, role) = self.inner.staging.join(key).await?;
        let phase = match role {
            Role::Writer { offset } => staged.receive(offset, source).await?,
            Role::Joiner => staged.wait_for_writer(source).await?,
        };
        match phase {
            Phase::Ready(_) => {
                self.store_file(key, staged.path()).await?;
                Ok(PutOutcome::Stored(Vec::new()))
            }
            Phase::Invalid => Ok(PutOutcome::NotStored),
            Phase::Present => Ok(if self.check_present(key).await? {
                PutOutcome::Stored(Vec::new())
            } else {
                PutOutcome::NotStored
            }),
            Phase::Failed(why) => Err(RepoError::Other(format!(
                "the upload of {key} this one shared failed: {why}"
            ))),
            Phase::Receiving => Err(RepoError::Other(format!(
                "the upload of {key} did not finish"
            ))),
        }
    }
}
