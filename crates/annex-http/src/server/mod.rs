//! The p2phttp server: git-annex's HTTP API over any
//! [`Repository`](annex_protocol::Repository), streaming content both ways.
//!
//! [`Server::run`] accepts connections on any number of listeners (plain or
//! TLS), answers each request by calling the repository it names (see
//! [`Repositories`]), enforces the access rules of [`AccessPolicy`], logs
//! every request with `tracing`, and on shutdown stops accepting and lets
//! requests in flight finish up to a deadline.

pub mod auth;
pub(crate) mod body;
mod handlers;
pub mod listen;
pub mod locks;
pub mod repos;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;

pub use auth::{AccessPolicy, ActionClass, Decision};
pub use locks::LockTable;
pub use repos::{DirectoryRepositories, Repositories, SingleRepository};

use body::ResponseBody;

/// Settings of a server.
#[derive(Debug)]
pub struct ServerSettings {
    /// Who may do what.
    pub policy: AccessPolicy,
    /// Serve https with this configuration instead of http.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The most connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (also how
    /// long an idle keep-alive connection is kept).
    pub header_timeout: Duration,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// The most content locks held at once (git-annex's `--lockedfiles`).
    pub max_locked_files: usize,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            policy: AccessPolicy::default(),
            tls: None,
            max_connections: 4096,
            header_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(30),
            max_locked_files: 100,
            shutdown_timeout: Duration::from_secs(60),
        }
    }
}

/// What every request handler shares.
pub(crate) struct Shared {
    repos: Arc<dyn Repositories>,
    policy: AccessPolicy,
    locks: Arc<LockTable>,
}

/// A p2phttp server.
pub struct Server {
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
    header_timeout: Duration,
    handshake_timeout: Duration,
    shutdown_timeout: Duration,
}

impl Server {
    /// A server of `repos`.
    pub fn new(repos: Arc<dyn Repositories>, settings: ServerSettings) -> Server {
        Server {
            shared: Arc::new(Shared {
                repos,
                policy: settings.policy,
                locks: LockTable::new(settings.max_locked_files, locks::LOCK_LIFETIME),
            }),
            tls: settings.tls.map(TlsAcceptor::from),
            max_connections: settings.max_connections.max(1),
            header_timeout: settings.header_timeout,
            handshake_timeout: settings.handshake_timeout,
            shutdown_timeout: settings.shutdown_timeout,
        }
    }

    /// Serves connections from `listeners` until `shutdown` completes, then
    /// stops accepting and waits for requests in flight, up to the
    /// shutdown timeout.
    pub async fn run(
        self,
        listeners: Vec<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let (accepted_tx, mut accepted) = mpsc::channel::<TcpStream>(64);
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let mut acceptors = Vec::new();
        for listener in listeners {
            let tx = accepted_tx.clone();
            let slots = slots.clone();
            acceptors.push(tokio::spawn(async move {
                loop {
                    // Wait for a free slot before accepting, so a flood of
                    // connections waits in the kernel's queue.
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    match listener.accept().await {
                        Ok((stream, _peer)) => {
                            permit.forget();
                            if tx.send(stream).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            drop(permit);
                            // Out of file descriptors and the like: wait a
                            // little rather than spin.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
        drop(accepted_tx);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                stream = accepted.recv() => {
                    let Some(stream) = stream else { break };
                    let _ = stream.set_nodelay(true);
                    self.spawn_connection(stream, &graceful, slots.clone());
                }
                () = &mut shutdown => break,
            }
        }
        for a in &acceptors {
            a.abort();
        }
        // The listening sockets are closed once the acceptors are gone.
        for a in acceptors {
            let _ = a.await;
        }
        // Connections accepted but not served yet are closed now, rather
        // than left unanswered until the shutdown ends.
        accepted.close();
        while let Ok(stream) = accepted.try_recv() {
            drop(stream);
        }
        tracing::info!(
            connections = graceful.count(),
            "shutting down: waiting for requests in flight"
        );
        if tokio::time::timeout(self.shutdown_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("shutdown timeout passed with requests still in flight");
        }
        Ok(())
    }

    fn spawn_connection(
        &self,
        stream: TcpStream,
        graceful: &GracefulShutdown,
        slots: Arc<Semaphore>,
    ) {
        let shared = self.shared.clone();
        let header_timeout = self.header_timeout;
        let watcher = graceful.watcher();
        match &self.tls {
            None => {
                tokio::spawn(async move {
                    serve_connection(stream, shared, false, header_timeout, watcher).await;
                    slots.add_permits(1);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = self.handshake_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_connection(tls, shared, true, header_timeout, watcher).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    slots.add_permits(1);
                });
            }
        }
    }
}

async fn serve_connection<I>(
    io: I,
    shared: Arc<Shared>,
    secure: bool,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move { Ok::<Response<ResponseBody>, Infallible>(logged(shared, req, secure).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_buf_size(1 << 20);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn logged(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    secure: bool,
) -> Response<ResponseBody> {
    if !tracing::enabled!(tracing::Level::INFO) {
        return handlers::handle(shared, req, secure).await;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let resp = handlers::handle(shared, req, secure).await;
    let data_length = resp
        .headers()
        .get(crate::wire::DATA_LENGTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    tracing::info!(
        %method,
        path,
        query,
        status = resp.status().as_u16(),
        data_length,
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}
