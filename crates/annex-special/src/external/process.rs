//! One running `git-annex-remote-NAME` program: started as git-annex
//! starts it (found on PATH, `GIT_DIR` and `GIT_WORK_TREE` set, its stderr
//! relayed to the log), greeted (VERSION, EXTENSIONS), prepared once
//! (PREPARE), and asked one request at a time per job: a job is the
//! whole process, or under the ASYNC extension one job number of it.
//!
//! While a request is pending, the remote's own requests are answered
//! by the [`Host`]. A remote that exits, closes its output, sends a line
//! that is not the protocol's (or not allowed at that moment), sends
//! ERROR, or says nothing for longer than the deadline, fails the request
//! and is stopped (with its process group): a process is never used again
//! after that.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use super::host::Host;
use super::protocol::{
    failure_message, Incoming, RemoteRequest, Reply, Request, Response, Tagged, EXTENSIONS,
    VERSIONS,
};
use super::ExternalError;

/// The longest line read from a remote. (git-annex reads lines of any
/// length; a bound keeps a runaway remote from taking the gateway's
/// memory.)
pub const MAX_LINE: usize = 1 << 20;

/// Lines queued for a job before the remote is made to wait.
const QUEUE: usize = 64;

/// How a process is started and what it is told.
pub(crate) struct Spawner {
    /// `git-annex-remote-NAME`.
    pub program: String,
    /// The name the remote goes by in messages.
    pub label: String,
    /// The using repository's git directory (`GIT_DIR`).
    pub git_dir: PathBuf,
    /// Its work tree (`GIT_WORK_TREE`), unless bare.
    pub work_tree: Option<PathBuf>,
    /// How long a request waits for a sign of life from the remote.
    pub timeout: Duration,
    /// Answers the remote's requests.
    pub host: Arc<Host>,
    /// The configuration each process starts with (remote.log's).
    pub config: BTreeMap<String, String>,
    /// Where the program is looked for: PATH when `None`.
    pub search: Option<Vec<PathBuf>>,
}

/// Hooks of one request: progress reports, and a check that the remote
/// is still at work when it has said nothing for a while.
#[derive(Default)]
pub(crate) struct Hooks<'a> {
    /// Called with each `PROGRESS` count.
    pub progress: Option<&'a (dyn Fn(u64) + Send + Sync)>,
    /// Whether the remote did something since the last call (a file it
    /// writes grew): the deadline then starts again.
    pub alive: Option<&'a (dyn Fn() -> bool + Send + Sync)>,
}

/// What a request's handler makes of a reply: the answer, a reply in a
/// block that goes on (LISTCONFIGS, GETINFO), or a reply not allowed at
/// this time.
pub(crate) enum Step<T> {
    /// The request is answered.
    Done(T),
    /// More replies follow.
    Next,
    /// A protocol error.
    Unexpected,
}

impl<T> From<Option<T>> for Step<T> {
    fn from(o: Option<T>) -> Step<T> {
        match o {
            Some(v) => Step::Done(v),
            None => Step::Unexpected,
        }
    }
}

static NEXT_PROCESS: AtomicU64 = AtomicU64::new(1);

/// The lines routed to one job.
type Lines = mpsc::Receiver<String>;

/// A running remote program.
pub(crate) struct Process {
    /// A number for the log.
    pub id: u64,
    spawner: Arc<Spawner>,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    child: Mutex<Option<Child>>,
    pid: Option<i32>,
    /// Whether the ASYNC extension is in use.
    pub is_async: bool,
    /// Without ASYNC: the one job's lines.
    sync_lines: Option<Arc<tokio::sync::Mutex<Lines>>>,
    /// With ASYNC: where the reader sends each job's lines.
    routes: Arc<Mutex<HashMap<u64, mpsc::Sender<String>>>>,
    /// With ASYNC: job numbers not in use, with their lines.
    free_jobs: Mutex<Vec<(u64, Lines)>>,
    next_job: AtomicU64,
    /// Why the process cannot be used any more.
    broken: Arc<Mutex<Option<String>>>,
    prepared: tokio::sync::Mutex<bool>,
    /// The remote's configuration as this process sees it (SETCONFIG
    /// changes it for this process only, as git-annex's does).
    pub config: Mutex<BTreeMap<String, String>>,
}

/// The directories of PATH where git-annex looks for programs.
fn search_path() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// The program `name` in `dirs` (PATH when `None`), as git-annex finds
/// it (the first executable file of that name).
pub(crate) fn find_program(name: &str, dirs: Option<&[PathBuf]>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dirs = dirs.map(<[PathBuf]>::to_vec).unwrap_or_else(search_path);
    dirs.into_iter().find_map(|d| {
        let p = d.join(name);
        let m = std::fs::metadata(&p).ok()?;
        (m.is_file() && m.permissions().mode() & 0o111 != 0).then_some(p)
    })
}

/// Reads one line (without its newline) of at most `max` bytes; `None`
/// at the end of the output.
async fn read_line<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    max: usize,
) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await.map_err(|e| e.to_string())?;
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            // A last line without its newline.
            break;
        }
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&buf[..i]);
            r.consume(i + 1);
            break;
        }
        let n = buf.len();
        line.extend_from_slice(buf);
        r.consume(n);
        if line.len() > max {
            return Err(format!("sent a line longer than {max} bytes"));
        }
    }
    if line.len() > max {
        return Err(format!("sent a line longer than {max} bytes"));
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// A line for a message, cut short.
fn shown(line: &str) -> String {
    const MAX: usize = 200;
    if line.len() <= MAX {
        return line.to_owned();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

impl Spawner {
    fn protocol_error(&self, line: &str, parsed: bool) -> ExternalError {
        ExternalError::Protocol {
            remote: self.label.clone(),
            line: shown(line),
            why: if parsed {
                "command not allowed at this time"
            } else {
                "unable to parse command"
            },
        }
    }

    fn broken(&self, why: impl Into<String>) -> ExternalError {
        ExternalError::Broken {
            remote: self.label.clone(),
            why: why.into(),
        }
    }

    fn timeout(&self, request: &'static str) -> ExternalError {
        ExternalError::Timeout {
            remote: self.label.clone(),
            request,
            secs: self.timeout.as_secs(),
        }
    }

    /// Starts the program and greets it: VERSION, then EXTENSIONS.
    pub async fn start(self: &Arc<Spawner>) -> Result<Arc<Process>, ExternalError> {
        let dirs = self.search.clone().unwrap_or_else(search_path);
        let path = find_program(&self.program, Some(&dirs)).ok_or_else(|| {
            ExternalError::NotInstalled {
                program: self.program.clone(),
                path: dirs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            }
        })?;
        let mut cmd = tokio::process::Command::new(&path);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("GIT_DIR", &self.git_dir)
            // Its own process group, so that what it starts stops with it.
            .process_group(0)
            .kill_on_drop(true);
        match &self.work_tree {
            Some(w) => {
                cmd.env("GIT_WORK_TREE", w).current_dir(w);
            }
            None => {
                cmd.env_remove("GIT_WORK_TREE").current_dir(&self.git_dir);
            }
        }
        let mut child = cmd.spawn().map_err(|source| ExternalError::CannotRun {
            program: self.program.clone(),
            source,
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(self.broken("its standard input and output could not be opened"));
        };
        let id = NEXT_PROCESS.fetch_add(1, Ordering::Relaxed);
        let label = format!("{}[{id}]", self.program);
        tokio::spawn(relay_stderr(stderr, label));

        let mut stdout = BufReader::new(stdout);
        let mut stdin = stdin;
        let greeted = tokio::time::timeout(self.timeout, self.greet(&mut stdin, &mut stdout)).await;
        let kill = |child: &mut Child| {
            kill_group(pid);
            let _ = child.start_kill();
        };
        let is_async = match greeted {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                kill(&mut child);
                return Err(e);
            }
            Err(_) => {
                kill(&mut child);
                return Err(self.timeout("VERSION"));
            }
        };
        tracing::debug!(remote = %self.label, process = id, is_async, "external special remote started");

        let broken = Arc::new(Mutex::new(None));
        let routes: Arc<Mutex<HashMap<u64, mpsc::Sender<String>>>> = Arc::default();
        let (sync_lines, sync_tx) = if is_async {
            (None, None)
        } else {
            let (tx, rx) = mpsc::channel(QUEUE);
            (Some(Arc::new(tokio::sync::Mutex::new(rx))), Some(tx))
        };
        tokio::spawn(route_lines(
            stdout,
            sync_tx,
            routes.clone(),
            broken.clone(),
            self.program.clone(),
        ));
        Ok(Arc::new(Process {
            id,
            spawner: self.clone(),
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            child: Mutex::new(Some(child)),
            pid,
            is_async,
            sync_lines,
            routes,
            free_jobs: Mutex::new(Vec::new()),
            next_job: AtomicU64::new(1),
            broken,
            prepared: tokio::sync::Mutex::new(false),
            config: Mutex::new(self.config.clone()),
        }))
    }

    async fn read_greeting<R: AsyncRead + Unpin>(
        &self,
        stdout: &mut BufReader<R>,
    ) -> Result<String, ExternalError> {
        let program = &self.program;
        read_line(stdout, MAX_LINE)
            .await
            .map_err(|e| self.broken(format!("{program} {e}")))?
            .ok_or_else(|| self.broken(format!("{program} exited before it was ready")))
    }

    /// VERSION from the remote, EXTENSIONS both ways; whether ASYNC is
    /// in use.
    async fn greet<R: AsyncRead + Unpin>(
        &self,
        stdin: &mut ChildStdin,
        stdout: &mut BufReader<R>,
    ) -> Result<bool, ExternalError> {
        let line = self.read_greeting(stdout).await?;
        match Incoming::parse(&line) {
            Some(Incoming::Request(RemoteRequest::Version(v)))
                if u32::try_from(v).is_ok_and(|v| VERSIONS.contains(&v)) => {}
            Some(Incoming::Request(RemoteRequest::Version(v))) => {
                let _ = write_line(stdin, "ERROR unsupported VERSION").await;
                return Err(ExternalError::Unusable {
                    remote: self.label.clone(),
                    message: format!("{} speaks protocol VERSION {v}, not 1 or 2", self.program),
                });
            }
            Some(_) => return Err(self.protocol_error(&line, true)),
            None => return Err(self.protocol_error(&line, false)),
        }
        let ext = Request::Extensions(EXTENSIONS.iter().map(|s| s.to_string()).collect());
        let ext = ext.to_line().map_err(|e| self.broken(e.to_string()))?;
        write_line(stdin, &ext)
            .await
            .map_err(|e| self.broken(format!("cannot write to {}: {e}", self.program)))?;
        let line = self.read_greeting(stdout).await?;
        let wanted = match Incoming::parse(&line) {
            Some(Incoming::Response(Response::Extensions(l))) => l,
            Some(Incoming::Response(Response::UnsupportedRequest)) => Vec::new(),
            Some(_) => return Err(self.protocol_error(&line, true)),
            None => return Err(self.protocol_error(&line, false)),
        };
        let unknown: Vec<&str> = wanted
            .iter()
            .map(String::as_str)
            .filter(|e| !EXTENSIONS.contains(e))
            .collect();
        if !unknown.is_empty() {
            return Err(ExternalError::Unusable {
                remote: self.label.clone(),
                message: format!(
                    "{} requested extensions that this program does not support: {}",
                    self.program,
                    unknown.join(" ")
                ),
            });
        }
        Ok(wanted.iter().any(|e| e == "ASYNC"))
    }
}

async fn write_line(stdin: &mut ChildStdin, line: &str) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    stdin.write_all(&buf).await?;
    stdin.flush().await
}

/// Passes the remote's stderr to the log, line by line.
async fn relay_stderr(stderr: tokio::process::ChildStderr, label: String) {
    let mut r = BufReader::new(stderr);
    loop {
        match read_line(&mut r, 64 * 1024).await {
            Ok(Some(line)) => tracing::warn!(target: "annex_special::external", "{label}: {line}"),
            Ok(None) => return,
            Err(_) => {
                // A line too long to show: what is left of it is skipped.
                let mut skip = Vec::new();
                if r.read_until(b'\n', &mut skip).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads the remote's output and hands each line to the job it is for,
/// until the output ends or breaks the protocol; then records why, and
/// lets every job know by closing its lines.
async fn route_lines<R: AsyncRead + Unpin>(
    mut stdout: BufReader<R>,
    sync_tx: Option<mpsc::Sender<String>>,
    routes: Arc<Mutex<HashMap<u64, mpsc::Sender<String>>>>,
    broken: Arc<Mutex<Option<String>>>,
    program: String,
) {
    let why = loop {
        let line = match read_line(&mut stdout, MAX_LINE).await {
            Ok(Some(l)) => l,
            Ok(None) => break format!("{program} exited"),
            Err(e) => break format!("{program} {e}"),
        };
        if let Some(tx) = &sync_tx {
            if tx.send(line).await.is_err() {
                break "the process was stopped".into();
            }
            continue;
        }
        if let Some(t) = Tagged::parse(&line) {
            let tx = routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&t.job)
                .cloned();
            match tx {
                Some(tx) => {
                    // A job that went away: its lines are dropped.
                    let _ = tx.send(t.message.to_owned()).await;
                }
                None => {
                    break format!(
                        "protocol error, unexpectedly received \"{}\" (unknown job number)",
                        shown(&line)
                    )
                }
            }
        } else if matches!(Incoming::parse(&line), Some(Incoming::Error(_))) {
            // ERROR goes to every job.
            let all: Vec<_> = routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect();
            for tx in all {
                let _ = tx.send(line.clone()).await;
            }
        } else {
            break format!(
                "protocol error, unexpectedly received \"{}\" (unexpected non-async message)",
                shown(&line)
            );
        }
    };
    let mut b = broken.lock().unwrap_or_else(|p| p.into_inner());
    if b.is_none() {
        *b = Some(why);
    }
    drop(b);
    routes.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// Stops the process group of `pid`.
fn kill_group(pid: Option<i32>) {
    if let Some(pid) = pid.filter(|p| *p > 0) {
        // SAFETY: signalling a process group this program started (the
        // remote was made the leader of its own group).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

impl Process {
    /// Why the process cannot be used, if it cannot.
    pub fn broken(&self) -> Option<String> {
        self.broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the process can take more requests.
    pub fn is_usable(&self) -> bool {
        self.broken().is_none()
    }

    /// Stops the process for good, recording why.
    pub fn stop(&self, why: &str) {
        {
            let mut b = self.broken.lock().unwrap_or_else(|p| p.into_inner());
            if b.is_none() {
                *b = Some(why.to_owned());
            }
        }
        tracing::debug!(remote = %self.spawner.label, process = self.id, why, "stopping external special remote");
        kill_group(self.pid);
        if let Some(c) = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            let _ = c.start_kill();
        }
    }

    /// A job of this process: the process itself, or a job number of it
    /// under ASYNC.
    pub async fn job(self: &Arc<Process>) -> Job {
        if let Some(lines) = &self.sync_lines {
            return Job {
                process: self.clone(),
                number: None,
                lines: JobLines::Sync(lines.clone().lock_owned().await),
                in_flight: false,
            };
        }
        let reused = self
            .free_jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let (n, rx) = match reused {
            Some(j) => j,
            None => {
                let n = self.next_job.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = mpsc::channel(QUEUE);
                self.routes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(n, tx);
                (n, rx)
            }
        };
        Job {
            process: self.clone(),
            number: Some(n),
            lines: JobLines::Async(Some(rx)),
            in_flight: false,
        }
    }

    async fn write(&self, job: Option<u64>, line: &str) -> Result<(), ExternalError> {
        let line = match job {
            Some(n) => format!("J {n} {line}"),
            None => line.to_owned(),
        };
        let mut stdin = self.stdin.lock().await;
        let Some(w) = stdin.as_mut() else {
            return Err(self.spawner.broken("the process was stopped"));
        };
        if let Err(e) = write_line(w, &line).await {
            drop(stdin);
            let why = format!("cannot write to {}: {e}", self.spawner.program);
            self.stop(&why);
            return Err(self.spawner.broken(why));
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.broken().is_some() {
            kill_group(self.pid);
            return;
        }
        // Done with it: its input closes, and it exits on its own (or is
        // stopped if it does not soon).
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        let stdin = self.stdin.get_mut().take();
        drop(stdin);
        let pid = self.pid;
        match (child, tokio::runtime::Handle::try_current()) {
            (Some(mut child), Ok(rt)) => {
                rt.spawn(async move {
                    if tokio::time::timeout(Duration::from_secs(10), child.wait())
                        .await
                        .is_err()
                    {
                        kill_group(pid);
                        let _ = child.kill().await;
                    }
                });
            }
            _ => kill_group(pid),
        }
    }
}

enum JobLines {
    Sync(tokio::sync::OwnedMutexGuard<Lines>),
    Async(Option<Lines>),
}

/// One request at a time on a process: the process itself, or one job
/// number of it (ASYNC). Dropped in the middle of a request (its caller
/// gave up), it stops the process, whose state is then unknown.
pub(crate) struct Job {
    process: Arc<Process>,
    number: Option<u64>,
    lines: JobLines,
    in_flight: bool,
}

impl Job {
    fn spawner(&self) -> &Spawner {
        &self.process.spawner
    }

    /// Sends a request that has no reply (EXPORT).
    pub async fn send(&mut self, req: &Request) -> Result<(), ExternalError> {
        let line = req.to_line().map_err(|e| ExternalError::Unsendable {
            remote: self.spawner().label.clone(),
            source: e,
        })?;
        self.process.write(self.number, &line).await
    }

    async fn reply(&mut self, reply: &Reply) -> Result<(), ExternalError> {
        let lines = reply.to_lines().map_err(|e| ExternalError::Unsendable {
            remote: self.spawner().label.clone(),
            source: e,
        })?;
        // ERROR goes without a job number.
        let job = if reply.is_error() { None } else { self.number };
        for line in lines {
            self.process.write(job, &line).await?;
        }
        Ok(())
    }

    async fn next_line(
        &mut self,
        request: &'static str,
        hooks: &Hooks<'_>,
    ) -> Result<String, ExternalError> {
        let timeout = self.spawner().timeout;
        loop {
            let got = match &mut self.lines {
                JobLines::Sync(rx) => tokio::time::timeout(timeout, rx.recv()).await,
                JobLines::Async(rx) => match rx {
                    Some(rx) => tokio::time::timeout(timeout, rx.recv()).await,
                    None => Ok(None),
                },
            };
            match got {
                Ok(Some(line)) => return Ok(line),
                Ok(None) => {
                    let why = self
                        .process
                        .broken()
                        .unwrap_or_else(|| format!("{} exited", self.spawner().program));
                    return Err(self.spawner().broken(why));
                }
                Err(_) => {
                    if hooks.alive.is_some_and(|alive| alive()) {
                        continue;
                    }
                    return Err(self.spawner().timeout(request));
                }
            }
        }
    }

    /// Sends PREPARE if this process has not been prepared yet.
    pub async fn prepare(&mut self) -> Result<(), ExternalError> {
        let process = self.process.clone();
        let mut prepared = process.prepared.lock().await;
        if *prepared {
            return Ok(());
        }
        let label = self.spawner().label.clone();
        let result = self
            .exchange(&Request::Prepare, &Hooks::default(), |r| match r {
                Response::PrepareSuccess => Step::Done(Ok(())),
                Response::PrepareFailure(m) => Step::Done(Err(failure_message("PREPARE", &m))),
                _ => Step::Unexpected,
            })
            .await?;
        match result {
            Ok(()) => {
                *prepared = true;
                Ok(())
            }
            Err(message) => {
                // Tried again by a new process next time.
                self.process.stop("PREPARE failed");
                Err(ExternalError::Unusable {
                    remote: label,
                    message,
                })
            }
        }
    }

    /// Sends `req` (preparing the process first when the request needs
    /// it) and reads the remote's lines, answering its requests, until
    /// `handle` accepts a reply. A reply `handle` does not accept is a
    /// protocol error.
    pub async fn request<T>(
        &mut self,
        req: &Request,
        hooks: &Hooks<'_>,
        handle: impl FnMut(Response) -> Step<T>,
    ) -> Result<T, ExternalError> {
        if req.needs_prepare() {
            self.prepare().await?;
        }
        self.exchange(req, hooks, handle).await
    }

    /// Sends EXPORT then `req` on this job, as git-annex keeps the two
    /// together.
    pub async fn request_export<T>(
        &mut self,
        name: &str,
        req: &Request,
        hooks: &Hooks<'_>,
        handle: impl FnMut(Response) -> Step<T>,
    ) -> Result<T, ExternalError> {
        self.prepare().await?;
        self.send(&Request::Export(name.to_owned())).await?;
        self.exchange(req, hooks, handle).await
    }

    async fn exchange<T>(
        &mut self,
        req: &Request,
        hooks: &Hooks<'_>,
        mut handle: impl FnMut(Response) -> Step<T>,
    ) -> Result<T, ExternalError> {
        self.in_flight = true;
        let r = async {
            self.send(req).await?;
            loop {
                let line = self.next_line(req.name(), hooks).await?;
                match Incoming::parse(&line) {
                    Some(Incoming::Response(resp)) => match handle(resp) {
                        Step::Done(v) => return Ok(v),
                        Step::Next => {}
                        Step::Unexpected => return Err(self.spawner().protocol_error(&line, true)),
                    },
                    Some(Incoming::Request(q)) => self.answer(q, hooks).await?,
                    Some(Incoming::Error(message)) => {
                        return Err(ExternalError::RemoteError {
                            remote: self.spawner().label.clone(),
                            message,
                        })
                    }
                    None => return Err(self.spawner().protocol_error(&line, false)),
                }
            }
        }
        .await;
        match &r {
            Err(e) if e.breaks_process() => self.process.stop(&e.to_string()),
            _ => self.in_flight = false,
        }
        r
    }

    async fn answer(&mut self, q: RemoteRequest, hooks: &Hooks<'_>) -> Result<(), ExternalError> {
        let label = &self.process.spawner.label;
        let reply = match q {
            RemoteRequest::Progress(n) => {
                if let Some(p) = hooks.progress {
                    p(u64::try_from(n).unwrap_or(0));
                }
                None
            }
            RemoteRequest::Debug(m) => {
                tracing::debug!(target: "annex_special::external", "{label}: {m}");
                None
            }
            RemoteRequest::Info(m) => {
                tracing::info!(target: "annex_special::external", "{label}: {m}");
                None
            }
            RemoteRequest::Version(_) => Some(Reply::Error("too late to send VERSION".into())),
            q => self.spawner().host.answer(q, &self.process.config).await?,
        };
        match reply {
            Some(r) => self.reply(&r).await,
            None => Ok(()),
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.in_flight {
            // Given up while the remote was at work: its state is unknown.
            self.process.stop("a request was abandoned");
            return;
        }
        if let (Some(n), JobLines::Async(rx)) = (self.number, &mut self.lines) {
            if let Some(rx) = rx.take() {
                self.process
                    .free_jobs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((n, rx));
            }
        }
    }
}

/// The process of a job, for the log and tests.
impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("process", &self.process.id)
            .field("number", &self.number)
            .finish()
    }
}

/// The absolute form of `p` (relative to the current directory).
pub(crate) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_owned();
    }
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_owned())
}
