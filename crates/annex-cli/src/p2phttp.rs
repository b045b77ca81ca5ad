//! `annex p2phttp`: serve repositories over git-annex's P2P HTTP API.

use std::io::{BufRead, IsTerminal, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use annex_cluster::ClusterRepositories;
use annex_http::server::{
    auth, listen, tls, AccessPolicy, CommandAuthorizer, DirectoryRepositories, P2pHttp, PathOpener,
    Repositories, Server, ServerSettings, SingleRepository,
};
use annex_http::wire::DEFAULT_PORT;
use annex_proxy::{GatewayRepositories, PoolSettings};
use annex_repo::LocalRepository;
use anyhow::{bail, Context};
use clap::Args;
use tracing_subscriber::EnvFilter;

#[derive(Args)]
pub struct P2phttpArgs {
    /// The git-annex repository to serve (default: the one the current
    /// directory is in).
    #[arg(value_name = "REPOSITORY", conflicts_with = "directory")]
    repository: Option<PathBuf>,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = DEFAULT_PORT, value_name = "NUMBER")]
    port: u16,
    /// Listen on a Unix socket created at this path rather than on an
    /// address (for a reverse proxy on this machine; plain HTTP).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["bind"])]
    socket: Option<PathBuf>,
    /// The permissions of the --socket (octal, as chmod): 600 lets only
    /// this user connect, 660 its group too.
    #[arg(long, default_value = "600", value_name = "MODE", requires = "socket")]
    socket_mode: String,
    /// Address to bind to (default: every address, IPv4 and IPv6).
    #[arg(long, value_name = "ADDRESS")]
    bind: Option<String>,
    /// Serve every git-annex repository found below this directory, at
    /// any depth but not inside another repository (repeatable);
    /// repositories added later are served from their first request,
    /// removed ones stop being served.
    #[arg(long, value_name = "PATH")]
    directory: Vec<PathBuf>,
    /// With --directory: serve only requests that name a repository by
    /// its path below the directory (`/owner/repo/git-annex/UUID/...`,
    /// what a client with annexUrl = annex+http://HOST/owner/repo/
    /// requests), not those naming a UUID alone; repositories are opened
    /// on demand, none at start.
    #[arg(long, requires = "directory")]
    paths_only: bool,
    /// Give unauthenticated users full read and write access.
    #[arg(long)]
    wideopen: bool,
    /// Let unauthenticated users read.
    #[arg(long)]
    unauth_readonly: bool,
    /// Let unauthenticated users read and store, but not remove.
    #[arg(long)]
    unauth_appendonly: bool,
    /// Do not let unauthenticated users lock content.
    #[arg(long)]
    unauth_nolocking: bool,
    /// Authenticate users from the environment over https:
    /// GIT_ANNEX_P2PHTTP_PASSWORD_USER=PASSWORD, and optionally
    /// GIT_ANNEX_P2PHTTP_PERMISSIONS_USER=readonly|appendonly.
    #[arg(long)]
    authenv: bool,
    /// As --authenv, over http too (the password crosses the network in
    /// the clear).
    #[arg(long = "authenv-http")]
    authenv_http: bool,
    /// Authenticate users from a file of `user:hash:permission` lines
    /// (hash from --hash-password; permission readwrite, appendonly or
    /// readonly). Accepted over https.
    #[arg(long, value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// Accept the users file's credentials over http too.
    #[arg(long)]
    users_http: bool,
    /// Decide every request by running this command (with `sh -c`): the
    /// user, repository path, UUID and action are in its environment
    /// (ANNEX_HTTP_USER, ANNEX_HTTP_PASSWORD, ANNEX_HTTP_REPOSITORY,
    /// ANNEX_HTTP_UUID, ANNEX_HTTP_ACTION = read|store|remove|lock); exit 0
    /// allows. In place of git-annex's access options.
    #[arg(
        long,
        value_name = "COMMAND",
        conflicts_with_all = ["wideopen", "unauth_readonly", "unauth_appendonly", "authenv", "authenv_http", "users_file"]
    )]
    authorize_command: Option<String>,
    /// With --authorize-command: the user is the value of this request
    /// header (set by a reverse proxy that authenticated the user, and
    /// that removes it from what clients send), when present; else the
    /// user of basic authentication.
    #[arg(long, value_name = "NAME", requires = "authorize_command")]
    user_header: Option<String>,
    /// With --authorize-command: seconds a decision is remembered for the
    /// same user, repository and action (0: ask every time).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    authorize_cache: u64,
    /// With --authorize-command: seconds the command may run before it is
    /// killed and the request refused.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    authorize_timeout: u64,
    /// With --authorize-command: how many commands run at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    authorize_jobs: usize,
    /// Read a password from standard input, print its hash for a users
    /// file, and exit.
    #[arg(long)]
    hash_password: bool,
    /// TLS certificate file (PEM), to serve https.
    #[arg(long, value_name = "FILE")]
    certfile: Option<PathBuf>,
    /// TLS private key file (PEM), to serve https.
    #[arg(long, value_name = "FILE")]
    privatekeyfile: Option<PathBuf>,
    /// TLS certificate chain file (PEM; repeatable).
    #[arg(long, value_name = "FILE")]
    chainfile: Vec<PathBuf>,
    /// The most content locks held at once.
    #[arg(long, default_value_t = 100, value_name = "NUMBER")]
    lockedfiles: usize,
    /// Accepted for compatibility with git-annex; requests are always
    /// served concurrently.
    #[arg(short = 'J', long = "jobs", value_name = "N")]
    jobs: Option<String>,
    /// The most ssh sessions kept open to each proxied remote for
    /// transfers and checks (default 1). Content locks hold sessions of
    /// their own beyond these.
    #[arg(long, value_name = "N")]
    proxyconnections: Option<u32>,
    /// Seconds a request waits for a free ssh session to a proxied remote
    /// before it fails with an error naming the remote.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    proxy_wait: u64,
    /// How many nodes of a cluster one upload writes to at once (default:
    /// annex.jobs, or all of them).
    #[arg(long, value_name = "N")]
    clusterjobs: Option<u32>,
    /// The most connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = 4096, value_name = "NUMBER")]
    max_connections: usize,
    /// Seconds a client may take to send a request's headers, and an idle
    /// connection is kept open.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    idle_timeout: u64,
    /// Seconds a download may wait for a client that reads nothing before
    /// the connection is closed, freeing what it holds (a client that
    /// reads at all, however slowly, is never cut off).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    send_timeout: u64,
    /// Seconds an upload may wait for a client that sends nothing before
    /// it is given up, freeing what it holds (a client that sends at all,
    /// however slowly, is never cut off).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    receive_timeout: u64,
    /// Seconds after the last change the server recorded (locations of
    /// content stored or dropped, here and in the nodes it proxies) that
    /// the changes are committed to the git-annex branch, so that a fetch
    /// sees them; 0 commits only at shutdown, as git-annex 10.20250416.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    commit_delay: u64,
    /// With --directory: seconds a repository opened for requests naming
    /// its path stays open after its last request (at least
    /// --commit-delay).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    repository_idle: u64,
    /// On SIGTERM or SIGINT, seconds to let transfers in flight finish.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    shutdown_timeout: u64,
    /// What to log on standard error: error, warn, info, debug or trace.
    /// RUST_LOG overrides it.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: String,
    /// Log one line per request (method, path, status, time); off by
    /// default, as it costs a busy server more than answering does.
    /// Also: RUST_LOG=annex_http::request=info.
    #[arg(long)]
    log_requests: bool,
    /// Serve Prometheus metrics at http://ADDRESS:PORT/metrics, on a
    /// listener of their own (port 0 picks a free one; the address is
    /// printed).
    #[arg(long, value_name = "ADDRESS:PORT")]
    metrics_bind: Option<String>,
}

/// Finds the git-annex repository containing `start`, and its top.
fn find_repository(start: &Path) -> anyhow::Result<(LocalRepository, PathBuf)> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if annex_repo::looks_like_repository(d) {
            return Ok((LocalRepository::open(d)?, d.to_owned()));
        }
        dir = d.parent();
    }
    bail!(
        "{} is not in a git-annex repository: give one (annex p2phttp PATH), run this inside one, \
         or serve every repository below a directory (--directory DIR); to make one: \
         git init PATH && cd PATH && annex init",
        start.display()
    )
}

/// The repository named on the command line: exactly that directory.
fn open_repository(path: &Path) -> anyhow::Result<(LocalRepository, PathBuf)> {
    if !annex_repo::looks_like_repository(path) {
        bail!(
            "{} is not a git-annex repository: to make it one, git init {0} && cd {0} && annex init",
            path.display()
        );
    }
    let top = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    Ok((LocalRepository::open(&top)?, top))
}

/// The URL clients put in `remote.NAME.annexUrl` to reach a server
/// listening on `addr`.
fn annex_url(scheme: &str, addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        host_name().unwrap_or_else(|| "localhost".into())
    } else {
        match addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        }
    };
    format!("annex+{scheme}://{host}:{}/git-annex/", addr.port())
}

/// This machine's host name, as other machines would reach it by.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?;
    (!name.is_empty()).then(|| name.to_owned())
}

fn addresses(bind: Option<&str>, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    match bind {
        None => Ok(vec![SocketAddr::new(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port,
        )]),
        Some(host) => {
            if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
                return Ok(vec![SocketAddr::new(ip, port)]);
            }
            let found: Vec<SocketAddr> = (host, port)
                .to_socket_addrs()
                .with_context(|| format!("cannot resolve --bind {host}"))?
                .collect();
            if found.is_empty() {
                bail!("--bind {host} resolves to no address");
            }
            Ok(found)
        }
    }
}

fn policy(args: &P2phttpArgs) -> anyhow::Result<AccessPolicy> {
    let mut policy = AccessPolicy::default();
    policy.wide_open = args.wideopen;
    policy.unauth_append_only = args.unauth_appendonly;
    policy.unauth_read_only = args.unauth_readonly;
    policy.unauth_no_locking = args.unauth_nolocking;
    policy.auth_env = args.authenv;
    policy.auth_env_http = args.authenv_http;
    policy.users_http = args.users_http;
    if args.authenv || args.authenv_http {
        policy.env_users = auth::env_users(std::env::vars());
    }
    if let Some(f) = &args.users_file {
        policy.file_users = auth::read_users_file(f)?;
    }
    let can_auth = !policy.env_users.is_empty() || !policy.file_users.is_empty();
    if !args.wideopen && !args.unauth_readonly && !args.unauth_appendonly && !can_auth {
        bail!(
            "no one could use this server: give --wideopen, --unauth-readonly or --unauth-appendonly, \
             or credentials with --authenv/--authenv-http (GIT_ANNEX_P2PHTTP_PASSWORD_<user>) or --users-file"
        );
    }
    Ok(policy)
}

pub fn run(args: P2phttpArgs) -> anyhow::Result<ExitCode> {
    if args.hash_password {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            bail!("give the password on standard input");
        }
        println!(
            "{}",
            auth::hash_password(password).map_err(anyhow::Error::msg)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| {
            let request_lines = if args.log_requests { "info" } else { "off" };
            EnvFilter::try_new(format!(
                "{},{}={request_lines}",
                args.log_level,
                annex_http::server::REQUEST_LOG_TARGET
            ))
        })
        .context("--log-level")?;
    // To a terminal or a pipe, written by a thread of its own: a request
    // never waits for the log's reader.
    let (log, _flush_log) = crate::logwriter::stderr_writer()?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();

    let mut gateway = None;
    let mut directory: Option<Arc<DirectoryRepositories>> = None;
    let mut own_git_dir: Option<PathBuf> = None;
    let repos: Arc<dyn Repositories> = if args.directory.is_empty() {
        // The repository given or here, and the remotes it proxies.
        let (repo, top) = match &args.repository {
            Some(path) => open_repository(path)?,
            None => find_repository(&std::env::current_dir()?)?,
        };
        eprintln!(
            "annex p2phttp: serving {} ({})",
            top.display(),
            annex_protocol::Repository::uuid(&repo)
        );
        let git_dir = repo.git_dir().to_owned();
        own_git_dir = Some(git_dir.clone());
        let pools = PoolSettings {
            session_wait: Duration::from_secs(args.proxy_wait.max(1)),
            ..PoolSettings::new(args.proxyconnections.unwrap_or(1) as usize)
        };
        let g = Arc::new(GatewayRepositories::with_settings(
            Arc::new(repo),
            &top,
            &git_dir,
            pools,
        )?);
        let jobs = match args.clusterjobs {
            Some(n) => Some(n.max(1) as usize),
            None => annex_cluster::served::cluster_jobs(&git_dir),
        };
        let c = Arc::new(ClusterRepositories::new(g, jobs));
        let sized = Arc::downgrade(&c);
        annex_metrics::global().on_encode(move |m| {
            if let Some(c) = sized.upgrade() {
                c.report_sizes(m);
                c.report_sessions(m);
            }
        });
        gateway = Some(c.clone());
        c
    } else {
        for d in &args.directory {
            if !d.is_dir() {
                bail!("--directory {}: not a directory", d.display());
            }
        }
        let d = if args.paths_only {
            DirectoryRepositories::by_path_only(args.directory.clone())
        } else {
            DirectoryRepositories::new(args.directory.clone())
        };
        let d = Arc::new(d.with_opener(gateway_opener(&args)));
        directory = Some(d.clone());
        d
    };
    let tls = match (&args.certfile, &args.privatekeyfile) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(tls::server_config(cert, &args.chainfile, key)?),
        _ => bail!("use both --certfile and --privatekeyfile to serve https"),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let hook = match &args.authorize_command {
        Some(command) => {
            let header = match &args.user_header {
                Some(h) => Some(
                    annex_http::server::hook::header_name(h)
                        .with_context(|| format!("--user-header {h}: not a header name"))?,
                ),
                None => None,
            };
            Some(
                CommandAuthorizer::new(command.clone(), header)
                    .cache_time(Duration::from_secs(args.authorize_cache))
                    .timeout(Duration::from_secs(args.authorize_timeout.max(1)))
                    .concurrency(args.authorize_jobs),
            )
        }
        None => None,
    };
    let settings = ServerSettings {
        policy: match hook {
            Some(_) => AccessPolicy::default(),
            None => policy(&args)?,
        },
        tls,
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        max_locked_files: args.lockedfiles,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        send_timeout: Duration::from_secs(args.send_timeout.max(1)),
        receive_timeout: Duration::from_secs(args.receive_timeout.max(1)),
        ..Default::default()
    };
    let unix_listener = match &args.socket {
        Some(path) => {
            let mode = u32::from_str_radix(&args.socket_mode, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .with_context(|| {
                    format!("--socket-mode {}: not an octal mode", args.socket_mode)
                })?;
            Some((listen::bind_unix(path, mode)?, path.clone()))
        }
        None => None,
    };
    let std_listeners = match listen::systemd_listeners()? {
        Some(l) => l,
        // A Unix socket rather than an address, as git-annex's --socket.
        None if unix_listener.is_some() => Vec::new(),
        None => {
            let addrs = addresses(args.bind.as_deref(), args.port)?;
            match listen::bind(&addrs) {
                Ok(l) => l,
                // No IPv6 here: every IPv4 address instead.
                Err(_) if args.bind.is_none() => {
                    listen::bind(&[SocketAddr::from(([0, 0, 0, 0], args.port))])?
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let metrics_listener = match &args.metrics_bind {
        Some(a) => {
            let addrs: Vec<SocketAddr> = a
                .to_socket_addrs()
                .with_context(|| format!("--metrics-bind {a}: give ADDRESS:PORT"))?
                .collect();
            Some(
                listen::bind(&addrs[..addrs.len().min(1)])?
                    .pop()
                    .with_context(|| format!("--metrics-bind {a} resolves to no address"))?,
            )
        }
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let closing = gateway.clone();
    let directory_served = directory.clone();
    rt.block_on(async move {
        if let Some(g) = &closing {
            tokio::spawn(g.clone().watch(Duration::from_secs(1)));
        }
        let committed = Committed {
            gateway: closing.clone().zip(own_git_dir),
            directory: directory_served,
        };
        if args.commit_delay > 0 || committed.directory.is_some() {
            let delay = Duration::from_secs(args.commit_delay);
            let idle = Duration::from_secs(args.repository_idle.max(args.commit_delay));
            tokio::spawn(committed.clone().run(delay, idle));
        }
        let mut listeners = Vec::new();
        for l in std_listeners {
            let addr = l.local_addr()?;
            eprintln!("annex p2phttp: listening on {scheme}://{addr}/");
            // On standard output, for a script to read: what a client
            // sets to use this server.
            let _ = writeln!(
                std::io::stdout(),
                "git config remote.NAME.annexUrl {}",
                annex_url(scheme, addr)
            );
            listeners.push(tokio::net::TcpListener::from_std(l)?);
        }
        let metrics = match metrics_listener {
            Some(l) => {
                eprintln!(
                    "annex p2phttp: metrics on http://{}/metrics",
                    l.local_addr()?
                );
                let l = tokio::net::TcpListener::from_std(l)?;
                let server = annex_http::server::metrics_endpoint::serve(l, std::future::pending());
                Some(tokio::spawn(server))
            }
            None => None,
        };
        let mut unix = Vec::new();
        if let Some((l, path)) = &unix_listener {
            eprintln!("annex p2phttp: listening on unix:{}", path.display());
            unix.push(tokio::net::UnixListener::from_std(l.try_clone()?)?);
        }
        let uuids: Vec<String> = repos.uuids().iter().map(ToString::to_string).collect();
        for u in &uuids {
            annex_metrics::global().register_repository(u);
        }
        tracing::info!(uuids = uuids.join(" "), "serving");
        let server = match hook {
            None => Server::new(repos, settings),
            Some(hook) => {
                let service = P2pHttp::with_async_authorizer(repos, hook)
                    .max_locked_files(settings.max_locked_files)
                    .receive_timeout(settings.receive_timeout);
                Server::with_service(service, settings)
            }
        };
        server
            .run_with_unix(listeners, unix, shutdown_signal())
            .await?;
        if let Some(m) = metrics {
            m.abort();
        }
        if let Some((_, path)) = &unix_listener {
            let _ = std::fs::remove_file(path);
        }
        if let Some(g) = &closing {
            g.close().await;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // What was recorded for proxied remotes while serving is committed at
    // shutdown, so that a fetch from here sees it.
    if let Some(g) = gateway {
        for e in g.commit() {
            eprintln!("annex p2phttp: committing the git-annex branch: {e}");
        }
    }
    if let Some(d) = directory {
        for git_dir in d.open_git_dirs() {
            if let Err(e) = commit_journal(&git_dir) {
                eprintln!(
                    "annex p2phttp: committing the git-annex branch of {}: {e}",
                    git_dir.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a repository named by its path under --directory serves: itself
/// alone, or, when its git config makes it a gateway (remotes with
/// `annex-proxy` or `annex-cluster-node`, clusters in `annex.cluster.NAME`),
/// also the remotes it proxies and its clusters, as the repository served
/// alone would be.
fn gateway_opener(args: &P2phttpArgs) -> PathOpener {
    let pools = PoolSettings {
        session_wait: Duration::from_secs(args.proxy_wait.max(1)),
        ..PoolSettings::new(args.proxyconnections.unwrap_or(1) as usize)
    };
    let clusterjobs = args.clusterjobs;
    Arc::new(move |repo: LocalRepository, top: &Path| {
        let git_dir = repo.git_dir().to_owned();
        // Most repositories of a forge are no gateway: their config file
        // says nothing of proxies or clusters (nor includes another),
        // which is read without running git.
        let maybe = std::fs::read(git_dir.join("config")).map_or(true, |text| {
            let text = String::from_utf8_lossy(&text).to_lowercase();
            ["annex-proxy", "annex-cluster-node", "cluster", "include"]
                .iter()
                .any(|w| text.contains(w))
        });
        let gateway = maybe
            && annex_repo::config::GitConfig::read(&git_dir)
                .map(|c| {
                    c.entries().iter().any(|e| {
                        (e.name.starts_with("remote.")
                            && (e.name.ends_with(".annex-proxy")
                                || e.name.ends_with(".annex-cluster-node")))
                            || e.name.starts_with("annex.cluster.")
                    })
                })
                .unwrap_or(false);
        if !gateway {
            return Some(Arc::new(SingleRepository::new(Arc::new(repo))) as Arc<dyn Repositories>);
        }
        let g = match GatewayRepositories::with_settings(Arc::new(repo), top, &git_dir, pools) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(path = %top.display(), error = %e, "cannot serve the gateway");
                return None;
            }
        };
        let jobs = match clusterjobs {
            Some(n) => Some(n.max(1) as usize),
            None => annex_cluster::served::cluster_jobs(&git_dir),
        };
        Some(Arc::new(ClusterRepositories::new(Arc::new(g), jobs)) as Arc<dyn Repositories>)
    })
}

/// What the server commits to git-annex branches while it runs.
#[derive(Clone)]
struct Committed {
    /// The gateway (and the nodes it proxies), with its git directory.
    gateway: Option<(Arc<ClusterRepositories>, PathBuf)>,
    /// The repositories of --directory.
    directory: Option<Arc<DirectoryRepositories>>,
}

impl Committed {
    /// Commits what was recorded once `delay` has passed without a
    /// change (not at all when `delay` is zero), and closes the
    /// repositories of --directory opened by path and idle for `idle`.
    async fn run(self, delay: Duration, idle: Duration) {
        let tick = (delay / 2).clamp(Duration::from_millis(200), Duration::from_secs(1));
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.commit_settled(delay, idle)).await;
        }
    }

    fn commit_settled(&self, delay: Duration, idle: Duration) {
        let committing = !delay.is_zero();
        if let Some((g, git_dir)) = &self.gateway {
            if committing && settled(git_dir, delay) {
                for e in g.commit() {
                    tracing::warn!(error = %e, "committing the git-annex branch");
                }
            }
        }
        if let Some(d) = &self.directory {
            if committing {
                for git_dir in d.open_git_dirs() {
                    if settled(&git_dir, delay) {
                        if let Err(e) = commit_journal(&git_dir) {
                            tracing::warn!(
                                git_dir = %git_dir.display(),
                                error = %e,
                                "committing the git-annex branch"
                            );
                        }
                    }
                }
            }
            d.close_idle(idle);
        }
    }
}

/// Whether the journal of the repository at `git_dir` holds changes and
/// has had none for `delay`.
fn settled(git_dir: &Path, delay: Duration) -> bool {
    annex_branch::journal::Journal::new(git_dir)
        .settled(delay)
        .unwrap_or(false)
}

/// Commits the journal of the repository at `git_dir` to its branch, if
/// it holds anything.
fn commit_journal(git_dir: &Path) -> Result<(), annex_branch::BranchError> {
    if !annex_branch::journal::Journal::new(git_dir)
        .is_dirty()
        .unwrap_or(true)
    {
        return Ok(());
    }
    annex_branch::Branch::open(git_dir)?
        .commit("update")
        .map(|_| ())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
    tracing::info!("signal received: shutting down");
}
