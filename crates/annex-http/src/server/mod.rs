//! The p2phttp server: git-annex's HTTP API over any
//! [`Repository`](annex_protocol::Repository), streaming content both ways.
//!
//! Two ways to serve it:
//!
//! - [`P2pHttp`]: the API as a `tower` service, for an application's own
//!   HTTP server or router (`axum::Router::nest_service("/git-annex",
//!   service)`), with the application's own authentication deciding each
//!   request ([`Authorize`]).
//! - [`Server`]: a whole server around that service, as `annex p2phttp`
//!   runs it: it accepts connections on any number of listeners (plain or
//!   TLS), enforces the access rules of [`AccessPolicy`], bounds
//!   connections and slow clients, sends stored content over plain HTTP
//!   with `sendfile`, and on shutdown stops accepting and lets requests in
//!   flight finish up to a deadline.
//!
//! Either answers each request by calling the repository it names (see
//! [`Repositories`]) and logs it with `tracing`.

pub mod auth;
pub(crate) mod body;
mod handlers;
pub mod hook;
pub mod listen;
pub mod locks;
mod metered;
pub mod metrics_endpoint;
pub mod repos;
mod service;
mod stall;
pub mod tls;
mod zero_copy;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;

pub use auth::{AccessPolicy, ActionClass, Decision};
pub use body::{BoxError, ResponseBody};
pub use hook::CommandAuthorizer;
pub use locks::LockTable;
pub use repos::{
    DirectoryRepositories, PathOpener, Repositories, SingleRepository, MIN_RESCAN_INTERVAL,
};
pub use service::{
    Access, Authorize, AuthorizeAsync, P2pHttp, Secure, DEFAULT_MAX_LOCKED_FILES,
    DEFAULT_RECEIVE_TIMEOUT, REQUEST_LOG_TARGET,
};
use zero_copy::SpliceStream;

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
    /// How long a response may wait for a client that reads nothing
    /// before the connection is closed (a GET whose client stopped
    /// reading then frees the node session it holds).
    pub send_timeout: Duration,
    /// How long a PUT's body may send nothing before the upload is given
    /// up (see [`P2pHttp::receive_timeout`]; not used by
    /// [`Server::with_service`], whose service has its own).
    pub receive_timeout: Duration,
}

/// How long a response may wait for a client that reads nothing, unless
/// told otherwise: far longer than any pause of a slow but live client.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(300);

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
            send_timeout: DEFAULT_SEND_TIMEOUT,
            receive_timeout: DEFAULT_RECEIVE_TIMEOUT,
        }
    }
}

/// A p2phttp server: a [`P2pHttp`] service behind listeners.
pub struct Server {
    service: P2pHttp,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
    header_timeout: Duration,
    handshake_timeout: Duration,
    shutdown_timeout: Duration,
    send_timeout: Duration,
}

impl Server {
    /// A server of `repos`.
    pub fn new(repos: Arc<dyn Repositories>, mut settings: ServerSettings) -> Server {
        let policy = std::mem::take(&mut settings.policy);
        let service = P2pHttp::new(repos, policy)
            .max_locked_files(settings.max_locked_files)
            .receive_timeout(settings.receive_timeout);
        Server::with_service(service, settings)
    }

    /// A server of `service`, which decides who may do what: the policy
    /// of `settings` is not used.
    pub fn with_service(service: P2pHttp, settings: ServerSettings) -> Server {
        Server {
            service,
            tls: settings.tls.map(TlsAcceptor::from),
            max_connections: settings.max_connections.max(1),
            header_timeout: settings.header_timeout,
            handshake_timeout: settings.handshake_timeout,
            shutdown_timeout: settings.shutdown_timeout,
            send_timeout: settings.send_timeout,
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
        self.run_with_unix(listeners, Vec::new(), shutdown).await
    }

    /// As [`run`](Server::run), also serving connections from Unix
    /// sockets (plain HTTP, for a reverse proxy on this machine, whatever
    /// the TLS settings).
    pub async fn run_with_unix(
        self,
        listeners: Vec<TcpListener>,
        unix: Vec<UnixListener>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let (accepted_tx, mut accepted) = mpsc::channel::<Accepted>(64);
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let mut acceptors = Vec::new();
        for listener in unix {
            let tx = accepted_tx.clone();
            let slots = slots.clone();
            acceptors.push(tokio::spawn(async move {
                loop {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    match listener.accept().await {
                        Ok((stream, _peer)) => {
                            permit.forget();
                            if tx.send(Accepted::Unix(stream)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            drop(permit);
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
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
                            if tx.send(Accepted::Tcp(stream)).await.is_err() {
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
                    match stream {
                        None => break,
                        Some(Accepted::Tcp(stream)) => {
                            let _ = stream.set_nodelay(true);
                            self.spawn_connection(stream, &graceful, slots.clone());
                        }
                        Some(Accepted::Unix(stream)) => {
                            self.spawn_unix_connection(stream, &graceful, slots.clone());
                        }
                    }
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

    fn spawn_unix_connection(
        &self,
        stream: UnixStream,
        graceful: &GracefulShutdown,
        slots: Arc<Semaphore>,
    ) {
        let service = self.service.clone();
        let header_timeout = self.header_timeout;
        let send_timeout = self.send_timeout;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = stall::WriteDeadline::new(stream, send_timeout);
            serve_connection(stream, service, |_| {}, header_timeout, watcher).await;
            slots.add_permits(1);
        });
    }

    fn spawn_connection(
        &self,
        stream: TcpStream,
        graceful: &GracefulShutdown,
        slots: Arc<Semaphore>,
    ) {
        let service = self.service.clone();
        let header_timeout = self.header_timeout;
        let send_timeout = self.send_timeout;
        let watcher = graceful.watcher();
        match &self.tls {
            None => {
                tokio::spawn(async move {
                    // Plain HTTP: stored content may go by sendfile.
                    let (stream, slot) = SpliceStream::new(stream, send_timeout);
                    let extend = move |req: &mut Request<Incoming>| {
                        req.extensions_mut().insert(slot.clone());
                    };
                    serve_connection(stream, service, extend, header_timeout, watcher).await;
                    slots.add_permits(1);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = self.handshake_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let tls = stall::WriteDeadline::new(tls, send_timeout);
                            let extend = |req: &mut Request<Incoming>| {
                                req.extensions_mut().insert(Secure);
                            };
                            serve_connection(tls, service, extend, header_timeout, watcher).await
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

/// A connection accepted.
enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Serves one connection with `service`, `extend` adding what the
/// connection tells each request.
async fn serve_connection<I>(
    io: I,
    service: P2pHttp,
    extend: impl Fn(&mut Request<Incoming>) + Send + Sync + 'static,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let extend = Arc::new(extend);
    let service = service_fn(move |mut req: Request<Incoming>| {
        let service = service.clone();
        extend(&mut req);
        async move { Ok::<Response<ResponseBody>, Infallible>(service.call(req).await) }
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
