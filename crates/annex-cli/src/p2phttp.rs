//! `annex p2phttp`: serve repositories over git-annex's P2P HTTP API.

use std::io::{BufRead, IsTerminal, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use annex_cluster::ClusterRepositories;
use annex_http::server::{
    auth, listen, tls, AccessPolicy, DirectoryRepositories, Repositories, Server, ServerSettings,
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
    /// Address to bind to (default: every address, IPv4 and IPv6).
    #[arg(long, value_name = "ADDRESS")]
    bind: Option<String>,
    /// Serve every git-annex repository found below this directory, at
    /// any depth but not inside another repository (repeatable);
    /// repositories added later are served from their first request,
    /// removed ones stop being served.
    #[arg(long, value_name = "PATH")]
    directory: Vec<PathBuf>,
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
        Arc::new(DirectoryRepositories::new(args.directory.clone()))
    };
    let tls = match (&args.certfile, &args.privatekeyfile) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(tls::server_config(cert, &args.chainfile, key)?),
        _ => bail!("use both --certfile and --privatekeyfile to serve https"),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let settings = ServerSettings {
        policy: policy(&args)?,
        tls,
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        max_locked_files: args.lockedfiles,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        send_timeout: Duration::from_secs(args.send_timeout.max(1)),
        receive_timeout: Duration::from_secs(args.receive_timeout.max(1)),
        ..Default::default()
    };
    let std_listeners = match listen::systemd_listeners()? {
        Some(l) => l,
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
    rt.block_on(async move {
        if let Some(g) = &closing {
            tokio::spawn(g.clone().watch(Duration::from_secs(1)));
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
        let uuids: Vec<String> = repos.uuids().iter().map(ToString::to_string).collect();
        tracing::info!(uuids = uuids.join(" "), "serving");
        let server = Server::new(repos, settings);
        server.run(listeners, shutdown_signal()).await?;
        if let Some(m) = metrics {
            m.abort();
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
    Ok(ExitCode::SUCCESS)
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
