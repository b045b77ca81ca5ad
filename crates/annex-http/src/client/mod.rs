//! The p2phttp client: a [`Repository`] reached at an
//! `annex+http(s)://` URL, with any server of git-annex's HTTP API (ours or
//! git-annex's own `p2phttp`).
//!
//! The API version is agreed on first use, from v4 down to v0 as long as
//! the server answers 404, and remembered. Connections are kept open and
//! reused. A content lock is held by a `keeplocked` request whose body
//! stays open until the [`ContentLock`] is dropped.
//!
//! The API has no request that tells a repository's UUID: as git-annex
//! does, the caller knows it (git-annex keeps it in the git config of the
//! remote), or the URL ends with it (`.../git-annex/UUID`).

mod conn;
mod url;

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use annex_protocol::{
    AssociatedFile, ByteStream, ContentLock, GetOutcome, GetSink, Key, PutOutcome, PutSource,
    RemoveOutcome, RepoError, Repository, Uuid, Validity,
};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::server::body::{next_chunk, ChannelBody};
use crate::wire::{
    self, ApiVersion, Endpoint, GetTimestampResult, LockResult, Params, PutOffsetResult, PutResult,
    RemoveResult, DATA_LENGTH_HEADER,
};
pub use conn::{AnswerTooLong, MAX_ANSWER};
use conn::{BodyReader, Pool, RequestBody};
pub use url::{ServerUrl, UrlError};

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The newest API version to try.
    pub max_version: ApiVersion,
    /// Basic-auth user and password.
    pub credentials: Option<(String, String)>,
    /// Extra CA certificates (PEM) to trust for https, besides the
    /// system's.
    pub ca_file: Option<PathBuf>,
    /// How long to wait for a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// How long to wait for the server to take a lock's `keeplocked`
    /// request, and, after a PUT was answered, for the rest of its body to
    /// go out.
    pub request_timeout: Duration,
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
            request_timeout: Duration::from_secs(30),
            max_idle: 32,
        }
    }
}

/// A lock's `keeplocked` request, and whether its guard was dropped.
struct HeldLock {
    released: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// What the client shares between clones and bypass views.
struct Shared {
    url: ServerUrl,
    server: Uuid,
    client: Uuid,
    options: HttpOptions,
    auth: Option<HeaderValue>,
    pool: Pool,
    version: Mutex<Option<ApiVersion>>,
    locks: Mutex<Vec<HeldLock>>,
}

/// A repository reached over p2phttp. Clones share connections and the
/// agreed API version.
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
            .field("bypass", &self.bypass)
            .finish()
    }
}

/// The API version to try after `v`, if any.
fn older(v: ApiVersion) -> Option<ApiVersion> {
    let i = ApiVersion::NEWEST_FIRST.iter().position(|x| *x == v)?;
    ApiVersion::NEWEST_FIRST.get(i + 1).copied()
}

impl HttpRepository {
    /// A client of the repository `server` at `url`, acting for the
    /// repository `client`. Nothing is sent until the first request.
    pub fn new(
        url: ServerUrl,
        server: Uuid,
        client: Uuid,
        options: HttpOptions,
    ) -> Result<HttpRepository, RepoError> {
        let auth = match &options.credentials {
            Some((user, password)) => {
                if user.contains(':') {
                    return Err(RepoError::Other(format!(
                        "user name {user:?}: basic authentication cannot carry a ':' in it"
                    )));
                }
                let token = STANDARD.encode(format!("{user}:{password}"));
                Some(HeaderValue::from_str(&format!("Basic {token}")).map_err(RepoError::failed)?)
            }
            None => None,
        };
        let tls = if url.https {
            Some(conn::tls_connector(options.ca_file.as_deref())?)
        } else {
            None
        };
        let pool = Pool::new(url.clone(), tls, options.connect_timeout, options.max_idle);
        Ok(HttpRepository {
            shared: Arc::new(Shared {
                url,
                server,
                client,
                options,
                auth,
                pool,
                version: Mutex::new(None),
                locks: Mutex::new(Vec::new()),
            }),
            bypass: Vec::new(),
        })
    }

    /// A client for a URL given as text. The repository's UUID is
    /// `server`, or else the one the URL ends with; without either this
    /// fails, as the API cannot tell it.
    pub fn open(
        url: &str,
        server: Option<Uuid>,
        client: Uuid,
        options: HttpOptions,
    ) -> Result<HttpRepository, RepoError> {
        let url = ServerUrl::parse(url).map_err(RepoError::failed)?;
        let server = server.or_else(|| url.uuid.clone()).ok_or_else(|| {
            RepoError::Other(format!(
                "{}: the UUID of the repository is needed (the URL can end with /git-annex/UUID)",
                url.base()
            ))
        })?;
        HttpRepository::new(url, server, client, options)
    }

    /// The server's URL.
    pub fn url(&self) -> &ServerUrl {
        &self.shared.url
    }

    /// The API version agreed with the server, once a request was made.
    pub fn version(&self) -> Option<ApiVersion> {
        *self
            .shared
            .version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn set_version(&self, v: ApiVersion) {
        *self
            .shared
            .version
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(v);
    }

    /// Waits until the locks whose guards were dropped are released on the
    /// server (their `{"unlock": true}` sent and answered), at most
    /// `request_timeout` each. A program that is about to exit calls this
    /// so that no lock is left to expire on its own ten minutes later.
    /// Locks still held are left alone.
    pub async fn close(&self) {
        let released: Vec<HeldLock> = {
            let mut locks = self.shared.locks.lock().unwrap_or_else(|e| e.into_inner());
            let (done, held) = std::mem::take(&mut *locks)
                .into_iter()
                .partition(|l| l.released.load(Ordering::Acquire));
            *locks = held;
            done
        };
        for l in released {
            let _ = tokio::time::timeout(self.shared.options.request_timeout, l.task).await;
        }
    }

    /// The error a status other than success is.
    fn status_error(&self, status: StatusCode, body: &[u8]) -> RepoError {
        let text = String::from_utf8_lossy(body).trim().to_owned();
        match status {
            // Refusals are relayed as they are by a gateway to its
            // clients: they do not name the server.
            StatusCode::UNAUTHORIZED if self.shared.auth.is_some() => RepoError::Refused(
                "authentication failed: the server did not accept the user and password".into(),
            ),
            StatusCode::UNAUTHORIZED => RepoError::Refused(
                "authentication required: the server asks for a user and password".into(),
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

    fn request(
        &self,
        method: Method,
        version: ApiVersion,
        endpoint: Endpoint,
        key_in_path: Option<&Key>,
        params: &Params,
        body: RequestBody,
    ) -> Result<Request<RequestBody>, RepoError> {
        let mut params = params.clone();
        params.client_uuid = Some(self.shared.client.clone());
        if version >= ApiVersion::V2 {
            params.bypass = self.bypass.clone();
        }
        let path = format!(
            "{}{}?{}",
            self.shared.url.prefix,
            wire::request_path(&self.shared.server, Some(version), endpoint, key_in_path),
            params.to_query()
        );
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.shared.pool.authority())
            .body(body)
            .map_err(RepoError::failed)?;
        if let Some(auth) = &self.shared.auth {
            req.headers_mut().insert(AUTHORIZATION, auth.clone());
        }
        Ok(req)
    }

    /// A POST with an empty body in one version: its status and answer.
    async fn post(
        &self,
        version: ApiVersion,
        endpoint: Endpoint,
        params: &Params,
    ) -> Result<(StatusCode, Bytes), RepoError> {
        let (resp, mut conn) = self
            .shared
            .pool
            .send_with(|| self.request(Method::POST, version, endpoint, None, params, empty()))
            .await?;
        let status = resp.status();
        let body = conn.collect(resp.into_body()).await?;
        self.shared.pool.give_back(conn);
        Ok((status, body))
    }

    /// The agreed version, agreeing on one first if needed: from `from`
    /// down, each version is tried with a checkpresent until the server
    /// does not answer 404.
    async fn agreed_from(&self, from: ApiVersion) -> Result<ApiVersion, RepoError> {
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
        let mut next = Some(from.min(self.shared.options.max_version));
        while let Some(v) = next {
            let (status, body) = self.post(v, Endpoint::CheckPresent, &probe).await?;
            match status {
                StatusCode::NOT_FOUND => next = older(v),
                s if s.is_success() => {
                    self.set_version(v);
                    return Ok(v);
                }
                s => return Err(self.status_error(s, &body)),
            }
        }
        Err(self.not_served())
    }

    async fn agreed(&self) -> Result<ApiVersion, RepoError> {
        self.agreed_from(ApiVersion::V4).await
    }

    fn not_served(&self) -> RepoError {
        RepoError::Remote(format!(
            "{} does not serve repository {} in any API version (404 from v{} to v0)",
            self.shared.pool.authority(),
            self.shared.server,
            self.shared.options.max_version.number()
        ))
    }

    /// A POST with an empty body whose JSON answer is read. Before a
    /// version is agreed, the request itself is tried from the newest
    /// version down.
    async fn post_json<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: &Params,
    ) -> Result<(ApiVersion, T), RepoError> {
        let (version, negotiating) = match self.version() {
            Some(v) => (v, false),
            None => (self.shared.options.max_version, true),
        };
        let mut next = Some(version);
        while let Some(v) = next {
            if !v.has_endpoint(endpoint) {
                // Older versions lack the endpoint: whether the server
                // speaks one of them decides between "unsupported" and
                // "not served".
                let v = self.agreed_from(v).await?;
                if !v.has_endpoint(endpoint) {
                    return Err(RepoError::Unsupported(endpoint.as_str()));
                }
            }
            let (status, body) = self.post(v, endpoint, params).await?;
            if status == StatusCode::NOT_FOUND && negotiating {
                next = older(v);
                continue;
            }
            if !status.is_success() {
                return Err(self.status_error(status, &body));
            }
            let value = serde_json::from_slice(&body).map_err(|e| {
                RepoError::Protocol(format!(
                    "unexpected answer to {}: {e}: {}",
                    endpoint.as_str(),
                    String::from_utf8_lossy(&body)
                ))
            })?;
            if negotiating {
                self.set_version(v);
            }
            return Ok((v, value));
        }
        Err(self.not_served())
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
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    released: Arc<AtomicBool>,
}

impl Drop for KeepLocked {
    fn drop(&mut self) {
        // The request took the previous line, so there is room for this
        // one; the body ends when `tx` goes.
        let _ = self
            .tx
            .try_send(Ok(Bytes::from_static(b"{\"unlock\": true}\n")));
        self.released.store(true, Ordering::Release);
    }
}

/// A GET's answer: exactly `limit` bytes of its body.
struct Content {
    reader: BodyReader,
    limit: u64,
    read: u64,
}

impl AsyncRead for Content {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let left = this.limit - this.read;
        let r = this.reader.poll_read_max(cx, buf, left);
        let n = buf.filled().len() - before;
        this.read += n as u64;
        if let Poll::Ready(Ok(())) = &r {
            if n == 0 && left > 0 && buf.remaining() > 0 {
                // git-annex's servers send a byte less than announced when
                // the content changed while it was sent.
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the server sent {} bytes of the {} it announced: the content was not valid (it changed while it was sent)",
                        this.read, this.limit
                    ),
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
        let (tx, body) = ChannelBody::new(1);
        let mut req = self.request(
            Method::POST,
            version,
            Endpoint::KeepLocked,
            None,
            &params,
            body.boxed(),
        )?;
        let headers = req.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONNECTION, HeaderValue::from_static("Keep-Alive"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=1200"));
        let _ = tx
            .send(Ok(Bytes::from_static(b"{\"unlock\": false}\n")))
            .await;
        // A connection of its own, held for the life of the lock.
        let conn = self.shared.pool.connect().await?;
        let task = conn.spawn_request(req);
        // Once the request has taken the first line it is under way, as
        // git-annex's client waits for before relying on the lock.
        match tokio::time::timeout(self.shared.options.request_timeout, tx.reserve()).await {
            Ok(Ok(permit)) => drop(permit),
            _ => {
                task.abort();
                return Err(RepoError::Other(format!(
                    "{}: the keeplocked request holding the lock on {key} did not start",
                    self.shared.pool.authority()
                )));
            }
        }
        let released = Arc::new(AtomicBool::new(false));
        {
            let mut locks = self.shared.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|l| !l.task.is_finished());
            locks.push(HeldLock {
                released: released.clone(),
                task,
            });
        }
        Ok(Some(ContentLock::new(KeepLocked { tx, released })))
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
        // round trip and spares it (and agrees on a version).
        if !self.check_present(key).await? {
            return Ok(GetOutcome::NotPresent);
        }
        let version = self.agreed().await?;
        let params = Params {
            associated_file: file.display_path().map(String::into_bytes),
            offset: (offset > 0).then_some(offset),
            ..Default::default()
        };
        let (resp, mut conn) = self
            .shared
            .pool
            .send_with(|| {
                self.request(
                    Method::GET,
                    version,
                    Endpoint::Key,
                    Some(key),
                    &params,
                    empty(),
                )
            })
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = conn.collect(resp.into_body()).await?;
            self.shared.pool.give_back(conn);
            if status == StatusCode::NOT_FOUND {
                return Ok(GetOutcome::NotPresent);
            }
            return Err(self.status_error(status, &body));
        }
        let announced = resp
            .headers()
            .get(DATA_LENGTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // git-annex's server answers a GET of content it does not have
        // (removed since the checkpresent) with an empty body rather than
        // 404.
        if announced == Some(0) && key.size().is_some_and(|s| s > offset) {
            let _ = conn.collect(resp.into_body()).await;
            return Ok(GetOutcome::NotPresent);
        }
        // v0 servers need not say; then the key's size does.
        let len = match announced.or_else(|| key.size().map(|s| s.saturating_sub(offset))) {
            Some(l) => l,
            None => {
                return Err(RepoError::Protocol(
                    "the server did not say how much content it sends, and the key has no size"
                        .into(),
                ))
            }
        };
        let mut content = Content {
            reader: BodyReader::new(conn, resp.into_body()),
            limit: len,
            read: 0,
        };
        sink.data(len, &mut content).await?;
        // Nothing may follow the announced length.
        let mut probe = [0u8; 1];
        // Without an announced length, nothing can be said of validity.
        let vouched = announced.map(|_| Validity::Valid);
        let validity = match content.reader.read(&mut probe).await {
            Ok(0) => {
                self.shared.pool.give_back(content.reader.into_conn());
                vouched
            }
            Ok(_) => Some(Validity::Invalid),
            // The content arrived whole; only the connection is lost.
            Err(_) => vouched,
        };
        let accepted = sink.finish(validity).await?;
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
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let (tx, body) = ChannelBody::new(4);
        let mut params = key_params(key);
        params.associated_file = file.display_path().map(String::into_bytes);
        params.offset = (offset > 0).then_some(offset);
        let request = async {
            let Ok(len) = len_rx.await else {
                return Err(RepoError::Other("the content could not be read".into()));
            };
            let body = match len {
                Some(_) => body.boxed(),
                None => {
                    params.data_present = Some(true);
                    empty()
                }
            };
            let mut req =
                self.request(Method::POST, version, Endpoint::Put, None, &params, body)?;
            let headers = req.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(DATA_LENGTH_HEADER, HeaderValue::from(len.unwrap_or(0)));
            let (resp, mut conn) = self.shared.pool.send(req).await?;
            let status = resp.status();
            let body = conn.collect(resp.into_body()).await?;
            // A server may answer before it has read all the content
            // (refusing it): keep the connection going until the rest is
            // handed over, or give up on the connection.
            let handed_over =
                tokio::time::timeout(self.shared.options.request_timeout, conn.drive(done_rx))
                    .await;
            if handed_over.is_ok() {
                self.shared.pool.give_back(conn);
            }
            if !status.is_success() {
                return Err(self.status_error(status, &body));
            }
            serde_json::from_slice::<PutResult>(&body).map_err(|e| {
                RepoError::Protocol(format!(
                    "unexpected answer to put: {e}: {}",
                    String::from_utf8_lossy(&body)
                ))
            })
        };
        let pump = async move {
            let _done = done_tx;
            let last = match source.open(offset).await?.into_stream() {
                // DATA-PRESENT: the content is not sent.
                None => {
                    if !version.has_data_present() {
                        return Err(RepoError::Unsupported("data-present needs API v4"));
                    }
                    let _ = len_tx.send(None);
                    return Ok(());
                }
                Some((len, mut data)) => {
                    let _ = len_tx.send(Some(len));
                    pump_stream(data.stream(), len, &tx).await?
                }
            };
            if let Some(mut last) = last {
                if source.validity().await? == Some(Validity::Invalid) {
                    // As git-annex's client does: a body a byte short of
                    // its announced length tells the server the content
                    // is not valid.
                    last.truncate(last.len() - 1);
                }
                if !last.is_empty() {
                    let _ = tx.send(Ok(last)).await;
                }
            }
            Ok::<(), RepoError>(())
        };
        let (answer, pumped) = tokio::join!(request, pump);
        pumped?;
        let answer = answer?;
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

/// Sends `len` bytes of `stream` but the last chunk, which it returns
/// (`None` when the server stopped taking the content, or there is none).
async fn pump_stream(
    stream: &mut dyn ByteStream,
    len: u64,
    tx: &mpsc::Sender<Result<Bytes, io::Error>>,
) -> Result<Option<Bytes>, RepoError> {
    let mut remaining = len;
    let mut held: Option<Bytes> = None;
    while remaining > 0 {
        let buf = next_chunk(stream, remaining).await?;
        remaining -= buf.len() as u64;
        if let Some(previous) = held.replace(buf) {
            if tx.send(Ok(previous)).await.is_err() {
                // The server answered before taking everything; its
                // answer says why.
                return Ok(None);
            }
        }
    }
    Ok(held)
}
