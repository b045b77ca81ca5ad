//! An S3 object store: put, get (whole or a range), head and delete of
//! an object named by its path in the bucket, multipart uploads, and the
//! bucket itself. Requests are signed by rusty-s3 (AWS Signature Version
//! 4, as presigned URLs) and sent with hyper over plain TCP or rustls.
//!
//! Content goes both ways as a stream: a put's body is fed by the caller
//! a piece at a time ([`BodySender`]) and can be given up before its end,
//! which the server sees as an incomplete request and stores nothing of;
//! a get's body is handed over as hyper reads it.
//!
//! Connections go only to addresses git-annex would connect to: not to
//! loopback or private ones unless `annex.security.allowed-ip-addresses`
//! allows them ([`AddressPolicy`]).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rusty_s3::{Bucket, Credentials, S3Action};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::config::{S3Config, Signing};
use super::creds::Creds;
use super::naming::{check_name, BadName};

/// How long a signed request stays valid (it is sent at once).
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// The most an answer that is not content is read (an error's XML, a
/// multipart upload's id, a list of parts).
const MAX_ANSWER: usize = 1024 * 1024;

/// Pieces of a put's body queued before the sender waits.
const BODY_QUEUE: usize = 4;

/// Why a request to the object store failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// No connection could be made (the server is down, refused, or its
    /// address is not allowed).
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The server.
        endpoint: String,
        /// Why, with the causes.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{op} {object}: {status}{}", detail(.code, .message))]
    Status {
        /// What was asked (`PUT`, `GET`, ...).
        op: &'static str,
        /// The object (or bucket) asked about.
        object: String,
        /// The HTTP status.
        status: StatusCode,
        /// S3's error code (`SignatureDoesNotMatch`, `NoSuchBucket`).
        code: Option<String>,
        /// S3's message.
        message: Option<String>,
    },
    /// The request or its answer broke off, or the answer made no sense.
    #[error("{op} {object}: {reason}")]
    Transfer {
        /// What was asked.
        op: &'static str,
        /// The object asked about.
        object: String,
        /// What went wrong, with the causes.
        reason: String,
    },
    /// A name that cannot be an object's.
    #[error(transparent)]
    BadName(#[from] BadName),
}

fn detail(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    }
}

impl S3Error {
    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            S3Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An error and its causes, in one line.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Which addresses connections may go to, as git-annex decides it from
/// `annex.security.allowed-ip-addresses`: `all`, or a list of addresses
/// (each optionally with a port: `127.0.0.1:9000`, `[::1]:9000`) allowed
/// besides the public ones; loopback and private addresses are refused
/// otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    all: bool,
    allowed: Vec<(IpAddr, Option<u16>)>,
}

/// A connection refused by the [`AddressPolicy`].
#[derive(Debug, thiserror::Error)]
#[error(
    "Configuration of annex.security.allowed-ip-addresses does not allow accessing address {0}"
)]
pub struct AddressRefused(pub SocketAddr);

impl AddressPolicy {
    /// The policy the setting's value (if set) describes; words that are
    /// not addresses are ignored, as git-annex ignores them.
    pub fn from_setting(value: Option<&str>) -> AddressPolicy {
        let words: Vec<&str> = value.unwrap_or("").split_whitespace().collect();
        if words == ["all"] {
            return AddressPolicy {
                all: true,
                allowed: Vec::new(),
            };
        }
        let allowed = words
            .iter()
            .filter_map(|w| {
                if let Ok(ip) = w.parse::<IpAddr>() {
                    return Some((ip, None));
                }
                w.parse::<SocketAddr>()
                    .ok()
                    .map(|sa| (sa.ip(), Some(sa.port())))
            })
            .collect();
        AddressPolicy {
            all: false,
            allowed,
        }
    }

    /// Any address.
    pub fn all() -> AddressPolicy {
        AddressPolicy::from_setting(Some("all"))
    }

    /// Whether a connection to `addr` may be made.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        if self.all {
            return true;
        }
        let ip = canonical(addr.ip());
        if self
            .allowed
            .iter()
            .any(|(a, p)| canonical(*a) == ip && p.is_none_or(|p| p == addr.port()))
        {
            return true;
        }
        !(is_loopback(ip) || is_private(ip))
    }
}

/// An IPv4 address embedded in an IPv6 one (mapped, translated, or of
/// the 64:ff9b:: prefix) as itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = matches!(
                s,
                [0, 0, 0, 0, 0, 0xffff, _, _]
                    | [0, 0, 0, 0, 0xffff, 0, _, _]
                    | [0x64, 0xff9b, 0, 0, 0, 0, _, _]
            );
            if embedded {
                let o = v6.octets();
                IpAddr::from([o[12], o[13], o[14], o[15]])
            } else {
                ip
            }
        }
        v4 => v4,
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127 || v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, _, _] = v4.octets();
            a == 10
                || (a == 172 && (16..=31).contains(&b))
                || (a == 192 && b == 168)
                || (a == 100 && (64..=127).contains(&b))
                || (a == 169 && b == 254)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            (0xfc00..=0xfdff).contains(&s) || (0xfe80..=0xfebf).contains(&s)
        }
    }
}

/// A connection: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Opens connections to the store's server, to allowed addresses only.
#[derive(Clone)]
struct Connector {
    tls: Option<tokio_rustls::TlsConnector>,
    policy: Arc<AddressPolicy>,
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> ConnectFuture {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other("no host in the URL"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect();
            let mut last: Option<io::Error> = None;
            let mut tcp = None;
            for addr in addrs {
                if !this.policy.allows(addr) {
                    last = Some(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        AddressRefused(addr),
                    ));
                    continue;
                }
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        tcp = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let tcp = tcp.ok_or_else(|| {
                last.unwrap_or_else(|| io::Error::other(format!("{host} has no address")))
            })?;
            let _ = tcp.set_nodelay(true);
            if !https {
                return Ok(TokioIo::new(Stream::Plain(tcp)));
            }
            let tls = this
                .tls
                .as_ref()
                .ok_or_else(|| io::Error::other("no TLS configuration"))?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let s = tls.connect(name, tcp).await?;
            Ok(TokioIo::new(Stream::Tls(Box::new(s))))
        })
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A request body fed piece by piece through a [`BodySender`], of a
/// length known in advance.
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
    remaining: u64,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => {
                if b.len() as u64 > self.remaining {
                    return Poll::Ready(Some(Err(io::Error::other("more content than announced"))));
                }
                self.remaining -= b.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            // The sender went away before the end: the request is given
            // up, and the server stores nothing.
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the upload was given up",
            )))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Feeds a streamed request's body.
pub struct BodySender {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
}

impl BodySender {
    /// Sends the next piece; fails when the request has already ended
    /// (its answer, or its failure, is in the request's task).
    pub async fn send(&self, piece: Bytes) -> Result<(), ()> {
        self.tx.send(Ok(piece)).await.map_err(|_| ())
    }

    /// Gives the request up: the server sees it break off before its end
    /// and stores nothing.
    pub async fn abort(self) {
        let _ = self
            .tx
            .send(Err(io::Error::other("the upload was given up")))
            .await;
    }
}

/// A request whose body is being sent: its feed, and the task that
/// answers with the written object's (or part's) entity tag once the
/// server has all of it.
pub type Streaming = (
    BodySender,
    tokio::task::JoinHandle<Result<Option<String>, S3Error>>,
);

/// The body of every request.
type ReqBody = http_body_util::combinators::BoxBody<Bytes, io::Error>;

fn bytes_body(b: Bytes) -> ReqBody {
    http_body_util::Full::new(b)
        .map_err(|never| match never {})
        .boxed()
}

/// What a head of an object says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its size.
    pub len: u64,
    /// Its entity tag, if the server sent one.
    pub etag: Option<String>,
}

/// A part of a multipart upload the server has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// Its number, from 1.
    pub number: u16,
    /// Its size.
    pub size: u64,
    /// Its entity tag (empty when the server does not say).
    pub etag: String,
}

/// The content of an object being read: `len` bytes to come in `body`.
pub struct ObjectBody {
    /// How many bytes the answer holds.
    pub len: u64,
    /// The answer's body.
    pub body: Incoming,
}

/// Headers sent with every object written.
#[derive(Debug, Clone, Default)]
struct WriteHeaders(Vec<(String, String)>);

/// An S3 bucket, reached over HTTP.
#[derive(Clone)]
pub struct ObjectStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    bucket: Bucket,
    creds: Option<Credentials>,
    http: Client<Connector, ReqBody>,
    write_headers: WriteHeaders,
    endpoint: String,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("endpoint", &self.inner.endpoint)
            .field("bucket", &self.inner.bucket.name())
            .finish_non_exhaustive()
    }
}

/// Why an object store cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreSetupError(String);

impl ObjectStore {
    /// The bucket `config` describes, reached with `creds` (none for
    /// anonymous requests), connecting only where `policy` allows.
    pub fn new(
        config: &S3Config,
        creds: Option<&Creds>,
        policy: AddressPolicy,
    ) -> Result<ObjectStore, StoreSetupError> {
        let bucket = Bucket::new(
            config.endpoint.clone(),
            config.style.url_style(),
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| StoreSetupError(format!("bucket {}: {e}", config.bucket)))?;
        let creds = match (config.signing, creds) {
            (Signing::Anonymous, _) | (_, None) => None,
            (Signing::V4, Some(c)) => Some(match &c.token {
                Some(t) => Credentials::new_with_token(&c.key_id, &c.secret, t),
                None => Credentials::new(&c.key_id, &c.secret),
            }),
        };
        let tls = if config.endpoint.scheme() == "https" {
            Some(tls_connector().map_err(StoreSetupError)?)
        } else {
            None
        };
        let connector = Connector {
            tls,
            policy: Arc::new(policy),
        };
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let mut headers = Vec::new();
        if let Some(class) = &config.storage_class {
            headers.push(("x-amz-storage-class".to_owned(), class.clone()));
        }
        if config.public {
            headers.push(("x-amz-acl".to_owned(), "public-read".to_owned()));
        }
        headers.extend(config.meta_headers.iter().cloned());
        let endpoint = config.endpoint.as_str().trim_end_matches('/').to_owned();
        Ok(ObjectStore {
            inner: Arc::new(StoreInner {
                bucket,
                creds,
                http,
                write_headers: WriteHeaders(headers),
                endpoint,
            }),
        })
    }

    /// The server, as `PROTOCOL://HOST:PORT` (for messages).
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The bucket's name.
    pub fn bucket_name(&self) -> &str {
        self.inner.bucket.name()
    }

    fn creds(&self) -> Option<&Credentials> {
        self.inner.creds.as_ref()
    }

    /// Sends a signed request whose body is in memory; the answer's head,
    /// or why there is none. A request that fails on a kept-alive
    /// connection the server had closed meanwhile is sent once more, on
    /// a new one.
    async fn send(
        &self,
        op: &'static str,
        object: &str,
        method: Method,
        url: url::Url,
        headers: &[(Cow<'_, str>, Cow<'_, str>)],
        body: Bytes,
    ) -> Result<Response<Incoming>, S3Error> {
        let first = self
            .send_once(
                op,
                object,
                method.clone(),
                url.clone(),
                headers,
                bytes_body(body.clone()),
            )
            .await;
        match first {
            Err(S3Error::Transfer { .. }) => {
                self.send_once(op, object, method, url, headers, bytes_body(body))
                    .await
            }
            other => other,
        }
    }

    /// Sends a signed request once.
    async fn send_once(
        &self,
        op: &'static str,
        object: &str,
        method: Method,
        url: url::Url,
        headers: &[(Cow<'_, str>, Cow<'_, str>)],
        body: ReqBody,
    ) -> Result<Response<Incoming>, S3Error> {
        let mut req = Request::builder().method(method).uri(url.as_str());
        for (k, v) in headers {
            req = req.header(k.as_ref(), v.as_ref());
        }
        let req = req.body(body).map_err(|e| S3Error::Transfer {
            op,
            object: object.to_owned(),
            reason: e.to_string(),
        })?;
        match self.inner.http.request(req).await {
            Ok(r) => Ok(r),
            Err(e) if e.is_connect() => Err(S3Error::Connect {
                endpoint: self.inner.endpoint.clone(),
                reason: chain(&e),
            }),
            Err(e) => Err(S3Error::Transfer {
                op,
                object: object.to_owned(),
                reason: chain(&e),
            }),
        }
    }

    /// Reads an answer that is not content, up to [`MAX_ANSWER`] bytes.
    async fn small_body(op: &'static str, object: &str, body: Incoming) -> Result<Bytes, S3Error> {
        let mut body = body;
        let mut out = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| S3Error::Transfer {
                op,
                object: object.to_owned(),
                reason: chain(&e),
            })?;
            if let Ok(d) = frame.into_data() {
                if out.len() + d.len() > MAX_ANSWER {
                    return Err(S3Error::Transfer {
                        op,
                        object: object.to_owned(),
                        reason: format!("the answer is longer than {MAX_ANSWER} bytes"),
                    });
                }
                out.extend_from_slice(&d);
            }
        }
        Ok(out.freeze())
    }

    /// The error of an answer with an error status, with S3's code and
    /// message when its body has them.
    async fn status_error(op: &'static str, object: &str, resp: Response<Incoming>) -> S3Error {
        let status = resp.status();
        let body = Self::small_body(op, object, resp.into_body())
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        S3Error::Status {
            op,
            object: object.to_owned(),
            status,
            code: xml_field(&text, "Code"),
            message: xml_field(&text, "Message"),
        }
    }

    fn object_url_check(&self, name: &str) -> Result<(), S3Error> {
        check_name(name)?;
        Ok(())
    }

    /// What the server knows of the object `name`; `None` when there is
    /// no such object.
    pub async fn head(&self, name: &str) -> Result<Option<ObjectInfo>, S3Error> {
        self.object_url_check(name)?;
        let action = self.inner.bucket.head_object(self.creds(), name);
        let url = action.sign(SIGNED_FOR);
        let resp = self
            .send("HEAD", name, Method::HEAD, url, &[], Bytes::new())
            .await?;
        match resp.status() {
            s if s.is_success() => {
                let len = content_length(&resp).ok_or_else(|| S3Error::Transfer {
                    op: "HEAD",
                    object: name.to_owned(),
                    reason: "no Content-Length in the answer".into(),
                })?;
                Ok(Some(ObjectInfo {
                    len,
                    etag: etag(&resp),
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::status_error("HEAD", name, resp).await),
        }
    }

    /// The content of the object `name` from byte `from` (to its end);
    /// `None` when there is no such object. With `if_match`, the object
    /// must still have that entity tag.
    pub async fn get(
        &self,
        name: &str,
        from: u64,
        if_match: Option<&str>,
    ) -> Result<Option<ObjectBody>, S3Error> {
        self.object_url_check(name)?;
        let action = self.inner.bucket.get_object(self.creds(), name);
        let url = action.sign(SIGNED_FOR);
        let mut headers: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
        if from > 0 {
            headers.push(("range".into(), format!("bytes={from}-").into()));
        }
        if let Some(tag) = if_match {
            headers.push(("if-match".into(), tag.into()));
        }
        let resp = self
            .send("GET", name, Method::GET, url, &headers, Bytes::new())
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let ranged = from > 0 && status == StatusCode::PARTIAL_CONTENT;
        let whole = status == StatusCode::OK;
        if !(ranged || whole) {
            return Err(Self::status_error("GET", name, resp).await);
        }
        let len = content_length(&resp).ok_or_else(|| S3Error::Transfer {
            op: "GET",
            object: name.to_owned(),
            reason: "no Content-Length in the answer".into(),
        })?;
        if whole && from > 0 {
            // A server that ignores ranges: the rest would need skipping.
            return Err(S3Error::Transfer {
                op: "GET",
                object: name.to_owned(),
                reason: "the server answered a range request with the whole object".into(),
            });
        }
        Ok(Some(ObjectBody {
            len,
            body: resp.into_body(),
        }))
    }

    /// The whole object `name`, when it is small (up to 1 MiB).
    pub async fn get_small(&self, name: &str) -> Result<Option<Bytes>, S3Error> {
        match self.get(name, 0, None).await? {
            None => Ok(None),
            Some(o) => Self::small_body("GET", name, o.body).await.map(Some),
        }
    }

    fn put_headers(&self) -> &[(String, String)] {
        &self.inner.write_headers.0
    }

    /// Starts writing the object `name` of `len` bytes: the returned
    /// sender feeds its content, and the task answers once the server
    /// has it all (with the object's entity tag) or the request failed.
    /// The object exists only once all `len` bytes were sent; a sender
    /// dropped or [aborted](BodySender::abort) before leaves nothing.
    pub fn put(&self, name: &str, len: u64) -> Result<Streaming, S3Error> {
        self.object_url_check(name)?;
        let mut action = self.inner.bucket.put_object(self.creds(), name);
        for (k, v) in self.put_headers() {
            action.headers_mut().insert(k.as_str(), v.as_str());
        }
        let headers: Vec<(String, String)> = action
            .headers_mut()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let url = action.sign(SIGNED_FOR);
        self.streamed("PUT", name, url, headers, len)
    }

    /// A streamed PUT to a signed URL.
    fn streamed(
        &self,
        op: &'static str,
        name: &str,
        url: url::Url,
        mut headers: Vec<(String, String)>,
        len: u64,
    ) -> Result<Streaming, S3Error> {
        let (tx, rx) = mpsc::channel(BODY_QUEUE);
        let body = ChannelBody { rx, remaining: len }.boxed();
        headers.push(("content-length".into(), len.to_string()));
        let this = self.clone();
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let h: Vec<(Cow<'_, str>, Cow<'_, str>)> = headers
                .iter()
                .map(|(k, v)| (Cow::from(k.as_str()), Cow::from(v.as_str())))
                .collect();
            let resp = this
                .send_once(op, &name, Method::PUT, url, &h, body)
                .await?;
            if !resp.status().is_success() {
                return Err(Self::status_error(op, &name, resp).await);
            }
            let tag = etag(&resp);
            // Read the rest so that the connection can be reused.
            let _ = Self::small_body(op, &name, resp.into_body()).await;
            Ok(tag)
        });
        Ok((BodySender { tx }, task))
    }

    /// Writes the object `name` holding `content`.
    pub async fn put_bytes(&self, name: &str, content: Bytes) -> Result<(), S3Error> {
        let (tx, task) = self.put(name, content.len() as u64)?;
        if !content.is_empty() {
            let _ = tx.send(content).await;
        }
        drop(tx);
        match task.await {
            Ok(r) => r.map(|_| ()),
            Err(e) => Err(S3Error::Transfer {
                op: "PUT",
                object: name.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// Deletes the object `name` (no error when there is none).
    pub async fn delete(&self, name: &str) -> Result<(), S3Error> {
        self.object_url_check(name)?;
        let action = self.inner.bucket.delete_object(self.creds(), name);
        let url = action.sign(SIGNED_FOR);
        let resp = self
            .send("DELETE", name, Method::DELETE, url, &[], Bytes::new())
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => {
                let _ = Self::small_body("DELETE", name, resp.into_body()).await;
                Ok(())
            }
            _ => Err(Self::status_error("DELETE", name, resp).await),
        }
    }

    /// Starts a multipart upload of the object `name`; its upload id.
    pub async fn create_multipart(&self, name: &str) -> Result<String, S3Error> {
        self.object_url_check(name)?;
        let mut action = self
            .inner
            .bucket
            .create_multipart_upload(self.creds(), name);
        for (k, v) in self.put_headers() {
            action.headers_mut().insert(k.as_str(), v.as_str());
        }
        let headers: Vec<(Cow<'_, str>, Cow<'_, str>)> = action
            .headers_mut()
            .iter()
            .map(|(k, v)| (Cow::from(k.to_owned()), Cow::from(v.to_owned())))
            .collect();
        let url = action.sign(SIGNED_FOR);
        let op = "CreateMultipartUpload";
        let resp = self
            .send(op, name, Method::POST, url, &headers, Bytes::new())
            .await?;
        if !resp.status().is_success() {
            return Err(Self::status_error(op, name, resp).await);
        }
        let body = Self::small_body(op, name, resp.into_body()).await?;
        let text = String::from_utf8_lossy(&body);
        rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
            .map(|r| r.upload_id().to_owned())
            .map_err(|e| S3Error::Transfer {
                op,
                object: name.to_owned(),
                reason: format!("unreadable answer: {e}"),
            })
    }

    /// Starts writing part `number` (from 1) of `len` bytes of the
    /// multipart upload `upload_id` of `name`, as [`ObjectStore::put`]
    /// does; the task answers with the part's entity tag.
    pub fn upload_part(
        &self,
        name: &str,
        upload_id: &str,
        number: u16,
        len: u64,
    ) -> Result<Streaming, S3Error> {
        self.object_url_check(name)?;
        let action = self
            .inner
            .bucket
            .upload_part(self.creds(), name, number, upload_id);
        let url = action.sign(SIGNED_FOR);
        self.streamed("UploadPart", name, url, Vec::new(), len)
    }

    /// Completes the multipart upload `upload_id` of `name` from its
    /// parts' entity tags, in order: the object then exists.
    pub async fn complete_multipart(
        &self,
        name: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), S3Error> {
        self.object_url_check(name)?;
        let action = self.inner.bucket.complete_multipart_upload(
            self.creds(),
            name,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        let body = action.body();
        let op = "CompleteMultipartUpload";
        let resp = self
            .send(op, name, Method::POST, url, &[], Bytes::from(body))
            .await?;
        if !resp.status().is_success() {
            return Err(Self::status_error(op, name, resp).await);
        }
        // S3 may answer 200 and report an error in the body.
        let body = Self::small_body(op, name, resp.into_body()).await?;
        let text = String::from_utf8_lossy(&body);
        if text.contains("<Error>") {
            return Err(S3Error::Transfer {
                op,
                object: name.to_owned(),
                reason: detail(&xml_field(&text, "Code"), &xml_field(&text, "Message")),
            });
        }
        Ok(())
    }

    /// Gives up the multipart upload `upload_id` of `name`, and its parts.
    pub async fn abort_multipart(&self, name: &str, upload_id: &str) -> Result<(), S3Error> {
        self.object_url_check(name)?;
        let action = self
            .inner
            .bucket
            .abort_multipart_upload(self.creds(), name, upload_id);
        let url = action.sign(SIGNED_FOR);
        let op = "AbortMultipartUpload";
        let resp = self
            .send(op, name, Method::DELETE, url, &[], Bytes::new())
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => {
                let _ = Self::small_body(op, name, resp.into_body()).await;
                Ok(())
            }
            _ => Err(Self::status_error(op, name, resp).await),
        }
    }

    /// The parts the server has of the multipart upload `upload_id` of
    /// `name`, by number; `None` when there is no such upload.
    pub async fn list_parts(
        &self,
        name: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<PartInfo>>, S3Error> {
        self.object_url_check(name)?;
        let op = "ListParts";
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let mut action = self.inner.bucket.list_parts(self.creds(), name, upload_id);
            if let Some(m) = marker {
                action.set_part_number_marker(m);
            }
            let url = action.sign(SIGNED_FOR);
            let resp = self
                .send(op, name, Method::GET, url, &[], Bytes::new())
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(Self::status_error(op, name, resp).await);
            }
            let body = Self::small_body(op, name, resp.into_body()).await?;
            let text = String::from_utf8_lossy(&body);
            let (page, next) = parse_list_parts(&text).ok_or_else(|| S3Error::Transfer {
                op,
                object: name.to_owned(),
                reason: "unreadable answer".into(),
            })?;
            parts.extend(page);
            match next {
                Some(m) if marker != Some(m) => marker = Some(m),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(Some(parts))
    }

    /// Whether the bucket exists (and these credentials may use it).
    pub async fn bucket_exists(&self) -> Result<bool, S3Error> {
        let action = self.inner.bucket.head_bucket(self.creds());
        let url = action.sign(SIGNED_FOR);
        let name = self.inner.bucket.name().to_owned();
        let resp = self
            .send("HEAD", &name, Method::HEAD, url, &[], Bytes::new())
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Self::status_error("HEAD", &name, resp).await),
        }
    }

    /// Creates the bucket, in `location` (a location constraint; none
    /// for us-east-1, Amazon's `US`).
    pub async fn create_bucket(&self, location: Option<&str>) -> Result<(), S3Error> {
        let name = self.inner.bucket.name().to_owned();
        let creds = self.creds().ok_or_else(|| S3Error::Transfer {
            op: "CreateBucket",
            object: name.clone(),
            reason: "creating a bucket needs credentials".into(),
        })?;
        let action = self.inner.bucket.create_bucket(creds);
        let url = action.sign(SIGNED_FOR);
        let body = match location {
            Some(l) => Bytes::from(format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{l}</LocationConstraint></CreateBucketConfiguration>"
            )),
            None => Bytes::new(),
        };
        let resp = self
            .send("CreateBucket", &name, Method::PUT, url, &[], body)
            .await?;
        if !resp.status().is_success() {
            return Err(Self::status_error("CreateBucket", &name, resp).await);
        }
        let _ = Self::small_body("CreateBucket", &name, resp.into_body()).await;
        Ok(())
    }
}

fn content_length(resp: &Response<Incoming>) -> Option<u64> {
    resp.headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn etag(resp: &Response<Incoming>) -> Option<String> {
    resp.headers()
        .get(http::header::ETAG)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// The parts of a ListParts answer, and the marker of the next page if
/// it is truncated. A part's ETag may be missing (s3s-fs sends none):
/// it is then empty.
fn parse_list_parts(text: &str) -> Option<(Vec<PartInfo>, Option<u16>)> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<Part>") {
        let end = start + rest[start..].find("</Part>")?;
        let part = &rest[start..end];
        parts.push(PartInfo {
            number: xml_field(part, "PartNumber")?.trim().parse().ok()?,
            size: xml_field(part, "Size")?.trim().parse().ok()?,
            etag: xml_field(part, "ETag").unwrap_or_default(),
        });
        rest = &rest[end..];
    }
    let truncated = xml_field(text, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next = match xml_field(text, "NextPartNumberMarker") {
        Some(m) if truncated => Some(m.trim().parse().ok()?),
        _ => None,
    };
    Some((parts, next))
}

/// The text of the first `<FIELD>...</FIELD>` of an XML answer, with
/// the five predefined entities decoded.
fn xml_field(text: &str, field: &str) -> Option<String> {
    let open = format!("<{field}>");
    let close = format!("</{field}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    let raw = &text[start..end];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_allowed_as_git_annex_allows_them() {
        let default = AddressPolicy::from_setting(None);
        for refused in [
            "127.0.0.1:80",
            "0.0.0.0:80",
            "10.1.2.3:80",
            "172.20.0.1:80",
            "192.168.1.1:80",
            "169.254.1.1:80",
            "100.64.0.1:80",
            "[::1]:80",
            "[::]:80",
            "[fd00::1]:80",
            "[fe80::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[64:ff9b::10.0.0.1]:80",
        ] {
            assert!(!default.allows(sa(refused)), "{refused}");
        }
        for allowed in ["8.8.8.8:443", "172.32.0.1:80", "[2001:db8::1]:80"] {
            assert!(default.allows(sa(allowed)), "{allowed}");
        }
        assert!(AddressPolicy::all().allows(sa("127.0.0.1:9000")));
        let some = AddressPolicy::from_setting(Some("127.0.0.1:9000 ::1 junk"));
        assert!(some.allows(sa("127.0.0.1:9000")));
        assert!(!some.allows(sa("127.0.0.1:9001")));
        assert!(some.allows(sa("[::1]:1")));
        assert!(!some.allows(sa("10.0.0.1:1")));
    }

    #[test]
    fn list_parts_answers_read_with_or_without_etags() {
        let aws = "<ListPartsResult><Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag><Size>5</Size></Part>\
            <Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag><Size>6</Size></Part>\
            <IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker></ListPartsResult>";
        let (parts, next) = parse_list_parts(aws).unwrap();
        assert_eq!(next, Some(2));
        assert_eq!(
            parts[0],
            PartInfo {
                number: 2,
                size: 5,
                etag: "\"e2\"".into()
            }
        );
        assert_eq!(parts[1].etag, "\"e1\"");
        let plain = "<ListPartsResult><Part><PartNumber>1</PartNumber><Size>7</Size></Part></ListPartsResult>";
        let (parts, next) = parse_list_parts(plain).unwrap();
        assert_eq!((parts[0].size, parts[0].etag.as_str(), next), (7, "", None));
        assert!(
            parse_list_parts("<Part><PartNumber>x</PartNumber><Size>1</Size></Part>").is_none()
        );
    }

    #[test]
    fn error_fields_read_from_s3_answers() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match &amp; so on</Message></Error>";
        assert_eq!(
            xml_field(xml, "Code").as_deref(),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(
            xml_field(xml, "Message").as_deref(),
            Some("The request signature we calculated does not match & so on")
        );
        assert_eq!(xml_field(xml, "Resource"), None);
    }
}
