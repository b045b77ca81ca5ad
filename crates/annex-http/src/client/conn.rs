//! Connections to a p2phttp server: HTTP/1.1 over TCP or TLS, kept open
//! and reused.
//!
//! A connection is driven by the task that uses it rather than by a task
//! of its own: reading a response and moving the bytes off the socket
//! happen in the same task, so a large GET does not bounce between
//! threads for every chunk. An idle connection sits in the pool undriven;
//! taking it out checks that the server has not closed it meanwhile.

use std::future::{poll_fn, Future};
use std::io;
use std::path::Path;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use annex_protocol::RepoError;
use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::url::ServerUrl;
use crate::server::body::IncomingReader;

/// The body of every request.
pub(crate) type RequestBody = BoxBody<Bytes, io::Error>;

type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// How much of a response hyper may read from the socket at once. Bigger
/// is not faster: a chunk that still sits in the CPU cache when it is
/// copied out is what makes a large GET fast.
const READ_BUF: usize = 256 * 1024;

/// The most an answer that is not content may hold: the head of any
/// answer (status line and headers), and the body of a JSON answer or of
/// an error. git-annex's are a few dozen bytes; a server that sends more
/// is broken or hostile, and is not read further.
pub const MAX_ANSWER: usize = 64 * 1024;

/// An answer longer than [`MAX_ANSWER`] (carried as the source of an
/// [`io::Error`] of kind [`io::ErrorKind::InvalidData`] in
/// [`RepoError::Io`]).
#[derive(Debug, thiserror::Error)]
#[error("the server's answer is longer than {limit} bytes: not read further")]
pub struct AnswerTooLong {
    /// The limit, [`MAX_ANSWER`].
    pub limit: usize,
}

impl AnswerTooLong {
    fn error() -> RepoError {
        RepoError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            AnswerTooLong { limit: MAX_ANSWER },
        ))
    }
}

/// Reads a body of at most `limit` bytes whole.
async fn read_bounded(mut body: Incoming, limit: usize) -> Result<Bytes, RepoError> {
    use http_body::Body as _;
    if body.size_hint().lower() > limit as u64 {
        return Err(AnswerTooLong::error());
    }
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RepoError::context("reading the answer", e))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(AnswerTooLong::error());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// One HTTP/1.1 connection and what drives it.
pub(crate) struct Conn {
    sender: SendRequest<RequestBody>,
    driver: Option<Driver>,
    /// Made for this request rather than taken from the pool.
    fresh: bool,
}

impl Conn {
    /// Moves the connection along; once it has ended, the driver is
    /// dropped so that whatever waits on it fails.
    fn poll_driver(&mut self, cx: &mut Context<'_>) {
        if let Some(d) = &mut self.driver {
            if d.as_mut().poll(cx).is_ready() {
                self.driver = None;
            }
        }
    }

    /// Runs `fut` while driving the connection.
    pub(crate) async fn drive<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            self.poll_driver(cx);
            fut.as_mut().poll(cx)
        })
        .await
    }

    /// Whether the connection can take a request (the server has not
    /// closed it).
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            self.poll_driver(cx);
            self.sender.poll_ready(cx)
        })
        .await
        .is_ok()
    }

    /// Sends a request and waits for the head of the answer.
    pub(crate) async fn request(
        &mut self,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<RequestBody>>> {
        let fut = self.sender.try_send_request(req);
        self.drive(fut).await
    }

    /// Reads a whole answer body that is not content, of at most
    /// [`MAX_ANSWER`] bytes; a longer one fails with [`AnswerTooLong`]
    /// (and the connection is not to be used again).
    pub(crate) async fn collect(&mut self, body: Incoming) -> Result<Bytes, RepoError> {
        self.drive(read_bounded(body, MAX_ANSWER)).await
    }

    /// Sends a request and reads its answer in a task of its own: for a
    /// request that outlives the caller (keeplocked).
    pub(crate) fn spawn_request(mut self, req: Request<RequestBody>) -> JoinHandle<()> {
        tokio::spawn(async move {
            if let Ok(resp) = self.request(req).await {
                let _ = self.collect(resp.into_body()).await;
            }
        })
    }
}

/// A response body read as a byte stream, driving its connection.
pub(crate) struct BodyReader {
    conn: Conn,
    body: IncomingReader,
}

impl BodyReader {
    pub(crate) fn new(conn: Conn, body: Incoming) -> BodyReader {
        BodyReader {
            conn,
            body: IncomingReader::new(body),
        }
    }

    /// Reads at most `max` bytes into `buf`; an empty read is the end.
    pub(crate) fn poll_read_max(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        max: u64,
    ) -> Poll<io::Result<()>> {
        if let Poll::Ready(r) = self.body.poll_read_max(cx, buf, max) {
            return Poll::Ready(r);
        }
        self.conn.poll_driver(cx);
        self.body.poll_read_max(cx, buf, max)
    }

    /// The connection, for reuse once the body was read to its end.
    pub(crate) fn into_conn(self) -> Conn {
        self.conn
    }
}

impl AsyncRead for BodyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_read_max(cx, buf, u64::MAX)
    }
}

/// Makes TLS connections trusting the system's certificates and those of
/// `ca_file`.
pub(crate) fn tls_connector(
    ca_file: Option<&Path>,
) -> Result<tokio_rustls::TlsConnector, RepoError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let bad = |e: Box<dyn std::error::Error + Send + Sync>| {
            RepoError::context(path.display().to_string(), e)
        };
        let mut found = false;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.into()))? {
            roots
                .add(cert.map_err(|e| bad(e.into()))?)
                .map_err(|e| bad(e.into()))?;
            found = true;
        }
        if !found {
            return Err(bad("no PEM certificate in the file".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(RepoError::failed)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Opens connections to one server and keeps idle ones for reuse.
pub(crate) struct Pool {
    url: ServerUrl,
    authority: String,
    tls: Option<tokio_rustls::TlsConnector>,
    connect_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    pub(crate) fn new(
        url: ServerUrl,
        tls: Option<tokio_rustls::TlsConnector>,
        connect_timeout: Duration,
        max_idle: usize,
    ) -> Pool {
        Pool {
            authority: url.authority(),
            url,
            tls,
            connect_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// A new connection.
    pub(crate) async fn connect(&self) -> Result<Conn, RepoError> {
        let connect = async {
            let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
                .await
                .map_err(|e| {
                    RepoError::context(format!("cannot connect to {}", self.authority), e)
                })?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => handshake(tcp).await,
                Some(tls) => {
                    let name = ServerName::try_from(self.url.host.clone())
                        .map_err(|e| RepoError::context(self.url.host.clone(), e))?;
                    let stream = tls.connect(name, tcp).await.map_err(|e| {
                        RepoError::context(format!("TLS with {}", self.authority), e)
                    })?;
                    handshake(stream).await
                }
            }
        };
        tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| RepoError::Other(format!("timed out connecting to {}", self.authority)))?
    }

    /// A connection ready for a request: an idle one, or a new one.
    async fn take(&self) -> Result<Conn, RepoError> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some(mut conn) => {
                    if conn.ready().await {
                        conn.fresh = false;
                        return Ok(conn);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    /// Keeps a connection whose last answer was read to its end.
    pub(crate) fn give_back(&self, conn: Conn) {
        if conn.driver.is_none() || conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// Sends a request on a pooled connection (on a new one when the
    /// server closed the pooled one before the request went out), and
    /// waits for the head of the answer.
    pub(crate) async fn send(
        &self,
        req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Conn), RepoError> {
        let mut req = Some(req);
        self.send_with(|| {
            req.take()
                .ok_or_else(|| RepoError::Other("a request cannot be sent again".into()))
        })
        .await
    }

    /// Sends the request `make` makes, as [`Pool::send`]; a request of
    /// this kind can also be made again when a pooled connection was
    /// closed by the server after it went out but before any answer (the
    /// server closing an idle connection as the request arrived).
    pub(crate) async fn send_with(
        &self,
        mut make: impl FnMut() -> Result<Request<RequestBody>, RepoError>,
    ) -> Result<(Response<Incoming>, Conn), RepoError> {
        let mut req = make()?;
        loop {
            let mut conn = self.take().await?;
            match conn.request(req).await {
                Ok(resp) => return Ok((resp, conn)),
                Err(mut e) => {
                    let again = if conn.fresh {
                        None
                    } else if let Some(unsent) = e.take_message() {
                        Some(unsent)
                    } else if e.error().is_incomplete_message() {
                        make().ok()
                    } else {
                        None
                    };
                    match again {
                        Some(r) => req = r,
                        None if e.error().is_parse_too_large() => {
                            return Err(AnswerTooLong::error())
                        }
                        None => {
                            return Err(RepoError::Other(format!(
                                "{}: {}",
                                self.authority,
                                e.into_error()
                            )))
                        }
                    }
                }
            }
        }
    }
}

/// Starts HTTP/1.1 on a connected stream.
async fn handshake<T>(io: T) -> Result<Conn, RepoError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .max_buf_size(READ_BUF)
        .max_header_size(MAX_ANSWER)
        .handshake(TokioIo::new(io))
        .await
        .map_err(RepoError::failed)?;
    Ok(Conn {
        sender,
        driver: Some(Box::pin(conn)),
        fresh: true,
    })
}
