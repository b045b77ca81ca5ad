//! The p2phttp client: a [`Repository`] reached at an
//! `annex+http(s)://` URL, with any server of git-annex's HTTP API (ours or
//! git-annex's own `p2phttp`).
//!
//! The API version is agreed on first use, from v4 down to v0 as long as
//! the server answers 404. Connections are kept open and reused. A content
//! lock is held by a `keeplocked` request whose body stays open until the
//! [`ContentLock`] is dropped.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annex_protocol::{
    AssociatedFile, ByteStream, ContentLock, GetOutcome, GetSink, Key, PutData, PutOutcome,
    PutSource, RemoveOutcome, RepoError, Repository, Uuid, Validity,
};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::server::body::{next_chunk, ChannelBody, IncomingReader};
use crate::wire::{
    self, ApiVersion, Endpoint, GetTimestampResult, LockResult, Params, PutOffsetResult, PutResult,
    RemoveResult, DATA_LENGTH_HEADER, DEFAULT_PORT,
};

type RequestBody = BoxBody<Bytes, io::Error>;

/// A URL that is not an `annex+http(s)` URL this client can use.
#[derive(Debug, Error)]
pub enum UrlError {
    /// Not `annex+http://` or `annex+https://`.
    #[error("{0}: not an annex+http:// or annex+https:// URL")]
    Scheme(String),
    /// No host, or a port that is not a number.
    #[error("{0}: malformed URL")]
    Malformed(String),
}

/// Where a p2phttp server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// Whether to use https.
    pub https: bool,
    /// The host name or address (without brackets for IPv6).
    pub host: String,
    /// The port (9417 unless given).
    pub port: u16,
    /// The path before `/git-annex/`, without a trailing slash.
    pub prefix: String,
    /// A repository UUID given after `/git-annex/`, if any.
    pub uuid: Option<Uuid>,
}

impl ServerUrl {
    /// Reads `annex+http://host[:port]/[prefix/]git-annex/[UUID]`.
    pub fn parse(url: &str) -> Result<ServerUrl, UrlError> {
        let (https, rest) = if let Some(r) = url.strip_prefix("annex+https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("annex+http://") {
            (false, r)
        } else {
            return Err(UrlError::Scheme(url.to_owned()));
        };
        let bad = || UrlError::Malformed(url.to_owned());
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            let (h, after) = h.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => DEFAULT_PORT,
                None => return Err(bad()),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
                None => (authority.to_owned(), DEFAULT_PORT),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut uuid = None;
        if segments.len() >= 2 && segments[segments.len() - 2] == wire::PATH_PREFIX {
            uuid = Uuid::parse(segments[segments.len() - 1]).ok();
            if uuid.is_some() {
                segments.pop();
            }
        }
        if segments.last() == Some(&wire::PATH_PREFIX) {
            segments.pop();
        }
        let prefix = segments.iter().map(|s| format!("/{s}")).collect::<String>();
        Ok(ServerUrl {
            https,
            host,
            port,
            prefix,
            uuid,
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The newest API version to try.
    pub max_version: ApiVersion,
    /// Basic-auth user and password.
    pub credentials: Option<(String, String)>,
    /// Extra CA certificates (PEM) to trust for https.
    pub ca_file: Option<PathBuf>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// The most idle connections kept for reuse.
    pub max_idle: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_version: ApiVersion::V4,
            credentials: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(30),
            max_idle: 32,
        }
    }
}

/// What the client shares between clones and bypass views.
struct Shared {
    url: ServerUrl,
    authority: String,
    server: Uuid,
    client: Uuid,
    options: HttpOptions,
    auth: Option<HeaderValue>,
    tls: Option<tokio_rustls::TlsConnector>,
    idle: Mutex<Vec<SendRequest<RequestBody>>>,
    version: Mutex<Option<ApiVersion>>,
}

/// A repository reached over p2phttp.
#[derive(Clone)]
pub struct HttpRepository {
    shared: Arc<Shared>,
    bypass: Vec<Uuid>,
}

impl std::fmt::Debug for HttpRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRepository")
            .field("url", &self.shared.url)
            .field("server", &self.shared.server)
            .finish()
    }
}

fn tls_connector(options: &HttpOptions) -> Result<tokio_rustls::TlsConnector, RepoError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &options.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| RepoError::Other(format!("{}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| RepoError::Other(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| RepoError::Other(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RepoError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The status codes that end a request with an error, as errors.
fn status_error(status: StatusCode, body: &[u8]) -> RepoError {
    let text = String::from_utf8_lossy(body).trim().to_owned();
    match status {
        StatusCode::UNAUTHORIZED => RepoError::Refused(
            "the server requires authentication: give a user and password".into(),
        ),
        StatusCode::FORBIDDEN => RepoError::Refused(if text.is_empty() {
            "the server does not allow this".into()
        } else {
            format!("the server does not allow this: {text}")
        }),
        _ if text.is_empty() => RepoError::Remote(format!("HTTP {status}")),
        _ => RepoError::Remote(format!("HTTP {status}: {text}")),
    }
}

impl HttpRepository {
    /// A client of the repository `server` at `url`, acting for the
    /// repository `client`.
    pub fn new(
        url: ServerUrl,
        server: Uuid,
        client: Uuid,
        options: HttpOptions,
    ) -> Result<HttpRepository, RepoError> {
        let auth = options.credentials.as_ref().map(|(u, p)| {
            let token = STANDARD.encode(format!("{u}:{p}"));
            HeaderValue::from_str(&format!("Basic {token}"))
                .unwrap_or_else(|_| HeaderValue::from_static(""))
        });
        let tls = if url.https {
            Some(tls_connector(&options)?)
        } else {
            None
        };
        Ok(HttpRepository {
            shared: Arc::new(Shared {
                authority: url.authority(),
                url,
                server,
                client,
                options,
                auth,
                tls,
                idle: Mutex::new(Vec::new()),
                version: Mutex::new(None),
            }),
            bypass: Vec::new(),
        })
    }

    /// The API version agreed with the server, once a request was made.
    pub fn version(&self) -> Option<ApiVersion> {
        *self
            .shared
            .version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, RepoError> {
        let s = &self.shared;
        let tcp = tokio::time::timeout(
            s.options.connect_timeout,
            TcpStream::connect((s.url.host.as_str(), s.url.port)),
        )
        .await
        .map_err(|_| RepoError::Other(format!("timed out connecting to {}", s.authority)))?
        .map_err(|e| RepoError::Other(format!("cannot connect to {}: {e}", s.authority)))?;
        let _ = tcp.set_nodelay(true);
        match &s.tls {
            None => {
                let (sender, conn) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| RepoError::Other(e.to_string()))?;
                tokio::spawn(conn);
                Ok(sender)
            }
            Some(tls) => {
                let name = ServerName::try_from(s.url.host.clone())
                    .map_err(|e| RepoError::Other(format!("{}: {e}", s.url.host)))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| RepoError::Other(format!("TLS with {}: {e}", s.authority)))?;
                let (sender, conn) = http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| RepoError::Other(e.to_string()))?;
                tokio::spawn(conn);
                Ok(sender)
            }
        }
    }

    /// A connection ready for a request: an idle one, or a new one.
    async fn sender(&self) -> Result<SendRequest<RequestBody>, RepoError> {
        loop {
            let candidate = self
                .shared
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            match candidate {
                Some(mut s) => {
                    if s.is_closed() {
                        continue;
                    }
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    fn give_back(&self, sender: SendRequest<RequestBody>) {
        let mut idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.shared.options.max_idle && !sender.is_closed() {
            idle.push(sender);
        }
    }

    fn request(
        &self,
        method: Method,
        version: Option<ApiVersion>,
        endpoint: Endpoint,
        key_in_path: Option<&Key>,
        params: &Params,
        body: RequestBody,
    ) -> Result<Request<RequestBody>, RepoError> {
        let mut params = params.clone();
        params.client_uuid = Some(self.shared.client.clone());
        if version.is_some_and(|v| v >= ApiVersion::V2) {
            params.bypass = self.bypass.clone();
        }
        let path = format!(
            "{}{}?{}",
            self.shared.url.prefix,
            wire::request_path(&self.shared.server, version, endpoint, key_in_path),
            params.to_query()
        );
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.shared.authority.as_str())
            .body(body)
            .map_err(|e| RepoError::Other(e.to_string()))?;
        if let Some(auth) = &self.shared.auth {
            req.headers_mut().insert(AUTHORIZATION, auth.clone());
        }
        Ok(req)
    }

    /// Sends a request on a pooled connection; the connection goes back
    /// to the pool once the answer's body is read (by [`Self::body`]).
    async fn send(
        &self,
        req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, SendRequest<RequestBody>), RepoError> {
        let mut sender = self.sender().await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| RepoError::Other(format!("{}: {e}", self.shared.authority)))?;
        Ok((resp, sender))
    }

    async fn body(
        &self,
        resp: Response<Incoming>,
        sender: SendRequest<RequestBody>,
    ) -> Result<(StatusCode, Bytes), RepoError> {
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| RepoError::Other(e.to_string()))?
            .to_bytes();
        self.give_back(sender);
        Ok((status, body))
    }

    /// The agreed version, agreeing on one first if needed: each version
    /// from the newest is tried with a checkpresent until the server does
    /// not answer 404.
    async fn agreed(&self) -> Result<ApiVersion, RepoError> {
        if let Some(v) = self.version() {
            return Ok(v);
        }
        let probe = Params {
            key: Some(
                Key::parse(
                    "SHA256E-s0--e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                )
                .expect("a valid key"),
            ),
            ..Default::default()
        };
        for v in ApiVersion::NEWEST_FIRST {
            if v > self.shared.options.max_version {
                continue;
            }
            let req = self.request(
                Method::POST,
                Some(v),
                Endpoint::CheckPresent,
                None,
                &probe,
                empty(),
            )?;
            let (resp, sender) = self.send(req).await?;
            let (status, body) = self.body(resp, sender).await?;
            match status {
                StatusCode::NOT_FOUND => continue,
                s if s.is_success() => {
                    *self
                        .shared
                        .version
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(v);
                    return Ok(v);
                }
                s => return Err(status_error(s, &body)),
            }
        }
        Err(RepoError::Remote(format!(
            "{} does not serve repository {} in any API version (404 from v{} to v0)",
            self.shared.authority,
            self.shared.server,
            self.shared.options.max_version.number()
        )))
    }

    /// A POST with an empty body whose JSON answer is read.
    async fn post_json<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: &Params,
    ) -> Result<(ApiVersion, T), RepoError> {
        let version = self.agreed().await?;
        if !version.has_endpoint(endpoint) {
            return Err(RepoError::Unsupported(endpoint.as_str()));
        }
        let req = self.request(Method::POST, Some(version), endpoint, None, params, empty())?;
        let (resp, sender) = self.send(req).await?;
        let (status, body) = self.body(resp, sender).await?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        let value = serde_json::from_slice(&body).map_err(|e| {
            RepoError::Protocol(format!(
                "unexpected answer to {}: {e}: {}",
                endpoint.as_str(),
                String::from_utf8_lossy(&body)
            ))
        })?;
        Ok((version, value))
    }
}

fn empty() -> RequestBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn key_params(key: &Key) -> Params {
    Params {
        key: Some(key.clone()),
        ..Default::default()
    }
}

fn plus(list: Option<Vec<String>>) -> Result<Vec<Uuid>, RepoError> {
    wire::decode_plus_uuids(list.as_deref()).map_err(|e| RepoError::Protocol(e.to_string()))
}

/// Holds a lock's keeplocked request open; dropping it unlocks.
struct KeepLocked {
    tx: Option<mpsc::Sender<Result<Bytes, io::Error>>>,
}

impl Drop for KeepLocked {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send(Ok(Bytes::from_static(b"{\"unlock\": true}\n")));
        }
    }
}

/// Reads at most `limit` bytes of a response body.
struct BodyStream {
    reader: IncomingReader,
    limit: u64,
    read: u64,
}

impl AsyncRead for BodyStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let left = this.limit - this.read;
        let r = this.reader.poll_read_max(cx, buf, left);
        let n = buf.filled().len() - before;
        this.read += n as u64;
        if let std::task::Poll::Ready(Ok(())) = &r {
            if n == 0 && left > 0 {
                return std::task::Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server sent less than it announced: the content changed while it was sent; try again",
                )));
            }
        }
        r
    }
}

#[async_trait]
impl Repository for HttpRepository {
    fn uuid(&self) -> &Uuid {
        &self.shared.server
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        let (_, r): (_, wire::CheckPresentResult) = self
            .post_json(Endpoint::CheckPresent, &key_params(key))
            .await?;
        Ok(r.present)
    }

    async fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, RepoError> {
        let (version, r): (_, LockResult) = self
            .post_json(Endpoint::LockContent, &key_params(key))
            .await?;
        let Some(lockid) = r.lockid.filter(|_| r.locked) else {
            return Ok(None);
        };
        let lockid = String::from_utf8(
            wire::decode_value(&lockid).map_err(|e| RepoError::Protocol(e.to_string()))?,
        )
        .map_err(|_| RepoError::Protocol("lock id is not text".into()))?;
        let params = Params {
            lock_id: Some(lockid),
            ..Default::default()
        };
        let (tx, body) = ChannelBody::new(4);
        let mut req = self.request(
            Method::POST,
            Some(version),
            Endpoint::KeepLocked,
            None,
            &params,
            body.boxed(),
        )?;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        req.headers_mut().insert(
            http::header::CONNECTION,
            HeaderValue::from_static("Keep-Alive"),
        );
        req.headers_mut()
            .insert("keep-alive", HeaderValue::from_static("timeout=1200"));
        // A connection of its own, held for the life of the lock.
        let mut sender = self.connect().await?;
        let (started_tx, started_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = started_tx.send(());
            if let Ok(resp) = sender.send_request(req).await {
                let _ = resp.into_body().collect().await;
            }
        });
        let _ = started_rx.await;
        let _ = tx
            .send(Ok(Bytes::from_static(b"{\"unlock\": false}\n")))
            .await;
        Ok(Some(ContentLock::new(KeepLocked { tx: Some(tx) })))
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        let mut params = key_params(key);
        let endpoint = match before {
            Some(t) => {
                params.timestamp = Some(t);
                Endpoint::RemoveBefore
            }
            None => Endpoint::Remove,
        };
        let (_, r): (_, RemoveResult) = self.post_json(endpoint, &params).await?;
        Ok(RemoveOutcome {
            removed: r.removed,
            also_removed_from: plus(r.plusuuids)?,
        })
    }

    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        let (_, r): (_, GetTimestampResult) = self
            .post_json(Endpoint::GetTimestamp, &Params::default())
            .await?;
        Ok(r.timestamp)
    }

    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        // Asked for content it does not have, git-annex's server answers
        // an empty 200 and keeps one of its -J workers busy for good; a
        // few such requests and it stops answering. Asking first costs a
        // round trip and spares it.
        if !self.check_present(key).await? {
            return Ok(GetOutcome::NotPresent);
        }
        let version = self.agreed().await?;
        let params = Params {
            associated_file: file.display_path().map(String::into_bytes),
            offset: (offset > 0).then_some(offset),
            ..Default::default()
        };
        let req = self.request(
            Method::GET,
            Some(version),
            Endpoint::Key,
            Some(key),
            &params,
            empty(),
        )?;
        let (resp, sender) = self.send(req).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            let _ = self.body(resp, sender).await;
            return Ok(GetOutcome::NotPresent);
        }
        if !status.is_success() {
            let (status, body) = self.body(resp, sender).await?;
            return Err(status_error(status, &body));
        }
        let announced = resp
            .headers()
            .get(DATA_LENGTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // git-annex's server answers a GET of content it does not have
        // with an empty body rather than 404.
        if announced == Some(0) && key.size().is_some_and(|s| s > offset) {
            let _ = self.body(resp, sender).await;
            return Ok(GetOutcome::NotPresent);
        }
        let len = match announced.or_else(|| key.size().map(|s| s.saturating_sub(offset))) {
            Some(l) => l,
            None => {
                return Err(RepoError::Protocol(
                    "the server did not say how much content it sends".into(),
                ))
            }
        };
        let mut stream = BodyStream {
            reader: IncomingReader::new(resp.into_body()),
            limit: len,
            read: 0,
        };
        sink.data(len, &mut stream).await?;
        // Nothing may follow the announced length.
        stream.limit = stream.read + 1;
        let mut probe = [0u8; 1];
        let extra = stream.reader.read(&mut probe).await.unwrap_or(0);
        let validity = if extra > 0 {
            Validity::Invalid
        } else {
            Validity::Valid
        };
        if extra == 0 {
            self.give_back(sender);
        }
        let accepted = sink.finish(Some(validity)).await?;
        Ok(GetOutcome::Sent { accepted })
    }

    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        let version = self.agreed().await?;
        let offset = if version.has_endpoint(Endpoint::PutOffset) {
            let (_, r): (_, PutOffsetResult) = self
                .post_json(Endpoint::PutOffset, &key_params(key))
                .await?;
            if r.alreadyhave == Some(true) {
                return Ok(PutOutcome::AlreadyHave(plus(r.plusuuids)?));
            }
            r.offset.unwrap_or(0)
        } else {
            0
        };
        let (len_tx, len_rx) = oneshot::channel::<Option<u64>>();
        let (tx, body) = ChannelBody::new(4);
        let mut params = key_params(key);
        params.associated_file = file.display_path().map(String::into_bytes);
        params.offset = (offset > 0).then_some(offset);
        let this = self.clone();
        let request = async move {
            let Ok(len) = len_rx.await else {
                return Err(RepoError::Other("the content could not be read".into()));
            };
            let mut params = params;
            let body = match len {
                Some(_) => body.boxed(),
                None => {
                    params.data_present = Some(true);
                    empty()
                }
            };
            let mut req = this.request(
                Method::POST,
                Some(version),
                Endpoint::Put,
                None,
                &params,
                body,
            )?;
            req.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            req.headers_mut()
                .insert(DATA_LENGTH_HEADER, HeaderValue::from(len.unwrap_or(0)));
            let (resp, sender) = this.send(req).await?;
            let (status, body) = this.body(resp, sender).await?;
            if !status.is_success() {
                return Err(status_error(status, &body));
            }
            serde_json::from_slice::<PutResult>(&body).map_err(|e| {
                RepoError::Protocol(format!(
                    "unexpected answer to put: {e}: {}",
                    String::from_utf8_lossy(&body)
                ))
            })
        };
        let pump = async move {
            match source.open(offset).await? {
                PutData::Present => {
                    if !version.has_data_present() {
                        return Err(RepoError::Unsupported("data-present needs API v4"));
                    }
                    let _ = len_tx.send(None);
                }
                PutData::Stream { len, stream } => {
                    let _ = len_tx.send(Some(len));
                    pump_stream(stream, len, &tx).await?;
                }
            }
            if source.validity().await? == Some(Validity::Invalid) {
                // Cut the body short: the server discards it.
                let _ = tx
                    .send(Err(io::Error::other("content changed while sent")))
                    .await;
            }
            drop(tx);
            Ok::<(), RepoError>(())
        };
        let (answer, pumped) = tokio::join!(request, pump);
        let answer = answer?;
        pumped?;
        Ok(if answer.stored {
            PutOutcome::Stored(plus(answer.plusuuids)?)
        } else {
            PutOutcome::NotStored
        })
    }

    fn bypass(&self, gateways: &[Uuid]) -> Option<Box<dyn Repository>> {
        let mut view = self.clone();
        view.bypass.extend(gateways.iter().cloned());
        Some(Box::new(view))
    }
}

async fn pump_stream(
    stream: &mut dyn ByteStream,
    len: u64,
    tx: &mpsc::Sender<Result<Bytes, io::Error>>,
) -> Result<(), RepoError> {
    let mut remaining = len;
    while remaining > 0 {
        let buf = next_chunk(stream, remaining).await?;
        remaining -= buf.len() as u64;
        if tx.send(Ok(buf)).await.is_err() {
            // The server answered before taking everything; its answer
            // says why.
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = ServerUrl::parse("annex+http://example.com/git-annex/").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.prefix.as_str()),
            (false, "example.com", 9417, "")
        );
        let u = ServerUrl::parse(
            "annex+https://[::1]:8443/forge/git-annex/ecf6d4ca-07e8-11ef-8990-9b8c1f696bf6",
        )
        .unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.prefix.as_str()),
            (true, "::1", 8443, "/forge")
        );
        assert_eq!(
            u.uuid.unwrap().as_str(),
            "ecf6d4ca-07e8-11ef-8990-9b8c1f696bf6"
        );
        let u = ServerUrl::parse("annex+http://127.0.0.1:9/").unwrap();
        assert_eq!((u.port, u.prefix.as_str(), u.uuid), (9, "", None));
        assert!(ServerUrl::parse("http://example.com/").is_err());
        assert!(ServerUrl::parse("annex+http://example.com:x/").is_err());
        assert!(ServerUrl::parse("annex+http:///git-annex/").is_err());
    }
}
