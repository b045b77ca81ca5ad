//! Answering one request: routing, parameters, access control, and each
//! endpoint calling the [`Repository`].

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use annex_protocol::{
    AssociatedFile, ByteStream, ChunkStream, GetOutcome, GetSink, Key, PutData, PutOutcome,
    PutSource, RepoError, Repository, Validity,
};
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::auth::{parse_basic, ActionClass, Decision};
use super::body::{full, next_chunk, ChannelBody, IncomingReader, RequestBody, ResponseBody};
use super::repos::Repositories;
use super::service::{Access, Gate, Secure, Shared};
use super::stall::Stall;
use super::zero_copy::{self, SpliceSlot};
use crate::wire::{
    self, ApiVersion, Endpoint, GetTimestampResult, LockResult, Params, PutOffsetResult, PutResult,
    RemoveResult, UnlockRequest, WireError, DATA_LENGTH_HEADER,
};

/// A request that ends in an error status.
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    fn bad_request(e: WireError) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, e.to_string())
    }

    /// A failed repository call: the client gets the error's text only
    /// where it is meant for a peer, else git-annex's words; the details
    /// (paths, ssh errors, a node's answers) go to the log.
    fn repo(e: RepoError) -> Failure {
        if !e.is_for_peer() {
            tracing::warn!(error = %e, "request failed");
        }
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.peer_message())
    }
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Failure {
        match e {
            WireError::NoRoute => Failure::new(StatusCode::NOT_FOUND, "not found"),
            e => Failure::bad_request(e),
        }
    }
}

/// The response for a failure.
pub(crate) fn failure_response(f: Failure) -> Response<ResponseBody> {
    let mut resp = Response::new(full(f.message));
    *resp.status_mut() = f.status;
    if f.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"git-annex\", charset=\"UTF-8\""),
        );
    }
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json<T: Serialize>(value: &T) -> Response<ResponseBody> {
    json_bytes(Bytes::from(serde_json::to_vec(value).unwrap_or_default()))
}

fn json_bytes(body: Bytes) -> Response<ResponseBody> {
    let mut resp = Response::new(full(body));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    resp
}

/// What a request asks, once parsed.
struct Call {
    version: Option<ApiVersion>,
    endpoint: Endpoint,
    params: Params,
    key: Option<Key>,
    repo: Arc<dyn Repository>,
    splice: Option<SpliceSlot>,
    /// The `Range` a GET of content asks for.
    range: Option<RangeAsk>,
}

impl Call {
    fn key(&self) -> Result<&Key, Failure> {
        match &self.key {
            Some(k) => Ok(k),
            None => self.params.require_key().map_err(Failure::bad_request),
        }
    }

    /// The version, for endpoints that always have one.
    fn api(&self) -> ApiVersion {
        self.version.unwrap_or(ApiVersion::V0)
    }
}

fn action_class(endpoint: Endpoint) -> ActionClass {
    match endpoint {
        Endpoint::Key | Endpoint::CheckPresent | Endpoint::GetTimestamp => ActionClass::Read,
        Endpoint::Put | Endpoint::PutOffset => ActionClass::Write,
        Endpoint::Remove | Endpoint::RemoveBefore => ActionClass::Remove,
        Endpoint::LockContent | Endpoint::KeepLocked => ActionClass::Lock,
    }
}

/// Answers one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<RequestBody>,
) -> Response<ResponseBody> {
    match route(&shared, req).await {
        Ok(resp) => resp,
        Err(f) => failure_response(f),
    }
}

async fn route(
    shared: &Arc<Shared>,
    req: Request<RequestBody>,
) -> Result<Response<ResponseBody>, Failure> {
    // Mounted under /git-annex by a router that takes the prefix off, the
    // path starts at the UUID.
    let path = req.uri().path();
    let (route, addressed) = split_route(&shared.repos, path)?;
    let method_ok = if route.endpoint.is_get() {
        req.method() == Method::GET
    } else {
        req.method() == Method::POST
            // checkpresent is a query: answered for GET too.
            || (route.endpoint == Endpoint::CheckPresent && req.method() == Method::GET)
    };
    if !method_ok {
        return Err(Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        ));
    }
    let params = Params::parse_for(
        req.uri().query().unwrap_or(""),
        route.endpoint,
        route.version,
    )?;
    let versioned = route.version.is_some();
    // Parameters every request of the endpoint requires, checked before
    // anything else as git-annex does.
    match route.endpoint {
        Endpoint::Key if !versioned => {}
        Endpoint::KeepLocked => {
            if params.lock_id.is_none() {
                return Err(Failure::bad_request(WireError::Missing("lockid")));
            }
        }
        _ => {
            params.require_client_uuid()?;
        }
    }
    match route.endpoint {
        Endpoint::Key | Endpoint::GetTimestamp | Endpoint::KeepLocked => {}
        _ => {
            params.require_key()?;
        }
    }
    if route.endpoint == Endpoint::RemoveBefore && params.timestamp.is_none() {
        return Err(Failure::bad_request(WireError::Missing("timestamp")));
    }
    // Only a put reads the data length; other endpoints ignore the header.
    let data_length = match req.headers().get(DATA_LENGTH_HEADER) {
        Some(v) if route.endpoint == Endpoint::Put => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(WireError::Number("X-git-annex-data-length"))?,
        ),
        _ => None,
    };
    // Required even with data-present, where no body is read, as git-annex
    // requires it.
    if route.endpoint == Endpoint::Put && data_length.is_none() {
        return Err(Failure::bad_request(WireError::Missing(
            "header X-git-annex-data-length",
        )));
    }
    // Under git-annex's rules, a header that is not basic authentication
    // is a bad request, whoever may do what, as in git-annex.
    let credentials = match (
        &shared.access,
        req.headers().get(http::header::AUTHORIZATION),
    ) {
        (Gate::Policy(_), Some(header)) => {
            Some(parse_basic(header.as_bytes()).ok_or_else(|| {
                Failure::new(StatusCode::BAD_REQUEST, "invalid basic auth header")
            })?)
        }
        _ => None,
    };
    let (parts, body) = req.into_parts();
    let class = action_class(route.endpoint);
    let secure = parts.extensions.get::<Secure>().is_some();
    let credentials = credentials
        .as_ref()
        .map(|(user, password)| (user.as_str(), password.as_str()));
    // git-annex's rules do not depend on the repository. They are decided
    // before looking for repositories again, so that a request refused
    // anyway makes the server look only where git-annex's would, and not
    // at all for an unknown UUID nobody will look for (404 whoever asks).
    let mut decision = None;
    // A request naming a repository by its path is answered by what that
    // repository serves, and nothing else.
    let (registry, repo_path) = match addressed {
        None => (shared.repos.clone(), None),
        Some(candidates) => match at_path(&shared.repos, candidates).await {
            Some((registry, path)) => (registry, Some(path)),
            None => return Err(Failure::new(StatusCode::NOT_FOUND, "not found")),
        },
    };
    let repo = match registry.lookup(&route.server_uuid) {
        Some(repo) => Some(repo),
        None if registry.rescans() => {
            let look = match &shared.access {
                Gate::Policy(policy) if !registry.rescan_when_refused() => {
                    let d = policy
                        .decide_credentials_async(credentials, secure, class)
                        .await;
                    decision = Some(d);
                    d == Decision::Allowed
                }
                _ => true,
            };
            if look {
                shared.rescans.lookup(&registry, &route.server_uuid).await
            } else {
                None
            }
        }
        None => None,
    };
    // One listed in proxy.log but not proxied is refused after the access
    // check, as git-annex's gateway refuses it when connecting.
    let refusal = match &repo {
        Some(_) => None,
        None => match registry.refusal(&route.server_uuid) {
            Some(why) => Some(why),
            None => return Err(Failure::new(StatusCode::NOT_FOUND, "not found")),
        },
    };
    let decision = match (decision, &shared.access, &repo) {
        (Some(decision), _, _) => decision,
        (None, Gate::Policy(policy), _) => {
            policy
                .decide_credentials_async(credentials, secure, class)
                .await
        }
        (None, Gate::Custom(authorizer), Some(repo)) => authorizer.authorize(&Access {
            request: &parts,
            repository: repo.uuid(),
            path: repo_path.as_deref(),
            action: class,
        }),
        (None, Gate::Async(authorizer), Some(repo)) => {
            authorizer
                .authorize(&Access {
                    request: &parts,
                    repository: repo.uuid(),
                    path: repo_path.as_deref(),
                    action: class,
                })
                .await
        }
        // A refusal under an application's own rules: 502 whoever asks.
        (None, Gate::Custom(_) | Gate::Async(_), None) => Decision::Allowed,
    };
    match decision {
        Decision::Allowed => {}
        Decision::AuthRequired => {
            return Err(Failure::new(
                StatusCode::UNAUTHORIZED,
                "authentication required",
            ))
        }
        Decision::Forbidden => return Err(Failure::new(StatusCode::FORBIDDEN, "forbidden")),
    }
    let repo = match (repo, refusal) {
        (Some(repo), _) => repo,
        (None, why) => {
            return Err(Failure::new(
                StatusCode::BAD_GATEWAY,
                why.unwrap_or_default(),
            ))
        }
    };
    let bypass_allowed = route.version.is_some_and(|v| v >= ApiVersion::V2);
    let repo = match (bypass_allowed && !params.bypass.is_empty())
        .then(|| repo.bypass(&params.bypass))
        .flatten()
    {
        Some(r) => Arc::from(r),
        None => repo,
    };
    // The connection can take content straight from a file (plain HTTP/1.1
    // served by Server): see zero_copy.
    let splice = match parts.version {
        http::Version::HTTP_11 => parts.extensions.get::<SpliceSlot>().cloned(),
        _ => None,
    };
    let range = match (route.endpoint, parts.headers.get(http::header::RANGE)) {
        (Endpoint::Key, Some(h)) => parse_range(h),
        _ => None,
    };
    let call = Call {
        version: route.version,
        endpoint: route.endpoint,
        params,
        key: route.key,
        repo,
        splice,
        range,
    };
    match call.endpoint {
        Endpoint::Key => get(shared, call).await,
        Endpoint::CheckPresent => {
            let present = call
                .repo
                .check_present(call.key()?)
                .await
                .map_err(Failure::repo)?;
            // The most frequent answer, without serialising.
            let body: &'static [u8] = if present {
                br#"{"present":true}"#
            } else {
                br#"{"present":false}"#
            };
            Ok(json_bytes(Bytes::from_static(body)))
        }
        Endpoint::Remove | Endpoint::RemoveBefore => {
            let before = match call.endpoint {
                Endpoint::RemoveBefore => call.params.timestamp,
                _ => None,
            };
            let outcome = call
                .repo
                .remove(call.key()?, before)
                .await
                .map_err(Failure::repo)?;
            Ok(json(&RemoveResult {
                removed: outcome.removed,
                plusuuids: wire::encode_plus_uuids(call.api(), &outcome.also_removed_from),
            }))
        }
        Endpoint::GetTimestamp => {
            let timestamp = call.repo.get_timestamp().await.map_err(Failure::repo)?;
            Ok(json(&GetTimestampResult { timestamp }))
        }
        Endpoint::Put => put(shared, body, data_length, call).await,
        Endpoint::PutOffset => put_offset(call).await,
        Endpoint::LockContent => lock_content(shared, call).await,
        Endpoint::KeepLocked => keep_locked(shared, call, body).await,
    }
}

/// What a request path names: git-annex's API path (`/git-annex/UUID/...`,
/// or `/UUID/...` under a router that took `/git-annex` off), or, where
/// the repositories served can be named by path, a repository's path
/// before it (with the paths it may mean).
fn split_route(
    repos: &Arc<dyn Repositories>,
    path: &str,
) -> Result<(wire::Route, Option<Vec<String>>), Failure> {
    if path.starts_with("/git-annex/") {
        match wire::parse_path(path) {
            Ok(route) => return Ok((route, None)),
            Err(e) if !repos.serves_paths() => return Err(e.into()),
            Err(_) => {}
        }
    }
    if repos.serves_paths() {
        match wire::parse_addressed_path(path) {
            Ok(a) => return Ok((a.route, Some(a.candidates))),
            Err(WireError::NoRoute) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((wire::parse_path(&format!("/git-annex{path}"))?, None))
}

/// What the repository at the first of `candidates` that names one
/// serves, and its path; opening it (on a blocking thread) if need be.
async fn at_path(
    repos: &Arc<dyn Repositories>,
    candidates: Vec<String>,
) -> Option<(Arc<dyn Repositories>, String)> {
    for c in &candidates {
        if let Some(r) = repos.at_path_open(c) {
            return Some((r, c.clone()));
        }
    }
    let repos = repos.clone();
    tokio::task::spawn_blocking(move || {
        candidates
            .into_iter()
            .find_map(|c| repos.at_path(&c).map(|r| (r, c)))
    })
    .await
    .ok()
    .flatten()
}

/// What a GET's worker tells the handler before any content.
enum GetStart {
    Sending(u64),
    /// Content sent from a file by the connection (see zero_copy).
    SendingFile(u64, zero_copy::SplicedBody),
    NotPresent,
    Failed(RepoError),
}

/// Feeds a GET's content into the response body, holding the last chunk
/// back until the repository says whether the content was valid: invalid
/// content is sent one byte short, which is how the API says so.
struct ResponseSink {
    start: Option<oneshot::Sender<GetStart>>,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    held: Option<Bytes>,
    signal_invalid: bool,
    /// The connection's slot for content sent from a file, if it has one.
    splice: Option<SpliceSlot>,
    /// For a range: how many bytes are still to send (nothing is held
    /// back, and validity is not signalled).
    limit: Option<u64>,
    /// The range was sent whole: the repository's reading was stopped
    /// there.
    range_sent: bool,
}

impl ResponseSink {
    /// Tells the handler the content is coming: the response can start.
    fn announce(&mut self, len: u64) {
        if let Some(start) = self.start.take() {
            let _ = start.send(GetStart::Sending(len));
        }
    }

    /// Holds `chunk` back, sending the one held before it.
    async fn hold(&mut self, mut chunk: Bytes) -> Result<(), RepoError> {
        if let Some(left) = self.limit {
            if chunk.len() as u64 > left {
                chunk.truncate(left as usize);
            }
            let left = left - chunk.len() as u64;
            self.limit = Some(left);
            self.send(chunk).await?;
            if left == 0 {
                // Stops the repository's reading: the range is sent.
                self.range_sent = true;
                return Err(RepoError::Io(io::Error::other("range sent")));
            }
            return Ok(());
        }
        match self.held.replace(chunk) {
            Some(prev) => self.send(prev).await,
            None => Ok(()),
        }
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), RepoError> {
        self.tx.send(Ok(chunk)).await.map_err(|_| {
            RepoError::Io(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client went away",
            ))
        })
    }
}

#[async_trait]
impl GetSink for ResponseSink {
    async fn data_file(
        &mut self,
        len: u64,
        file: &std::fs::File,
        offset: u64,
    ) -> Result<bool, RepoError> {
        // The last byte goes as an ordinary chunk, once the content is
        // known to be valid.
        let Some(slot) = self.splice.clone().filter(|_| len >= 2) else {
            return Ok(false);
        };
        let Some(start) = self.start.take() else {
            return Ok(false);
        };
        let (done_tx, done_rx) = oneshot::channel();
        let job = zero_copy::Job::new(file.try_clone()?, offset, len - 1, done_tx);
        let (tx, rest) = mpsc::channel(1);
        self.tx = tx;
        let body = zero_copy::SplicedBody::new(slot, job, rest);
        let _ = start.send(GetStart::SendingFile(len, body));
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "client went away");
        match done_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(RepoError::Io(io::Error::other(e))),
            Err(_) => return Err(RepoError::Io(gone())),
        }
        let mut last = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut last, offset + len - 1)?;
        self.held = Some(Bytes::copy_from_slice(&last));
        Ok(true)
    }

    async fn data(&mut self, len: u64, stream: &mut dyn ByteStream) -> Result<(), RepoError> {
        self.announce(len);
        let mut remaining = len;
        while remaining > 0 {
            let buf = next_chunk(stream, remaining).await?;
            remaining -= buf.len() as u64;
            self.hold(buf).await?;
        }
        Ok(())
    }

    async fn data_chunks(
        &mut self,
        len: u64,
        chunks: &mut dyn ChunkStream,
    ) -> Result<(), RepoError> {
        self.announce(len);
        let mut remaining = len;
        while remaining > 0 {
            let mut chunk = match std::future::poll_fn(|cx| chunks.poll_chunk(cx)).await {
                Some(chunk) => chunk?,
                None => {
                    return Err(RepoError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the content ended early",
                    )))
                }
            };
            if chunk.is_empty() {
                continue;
            }
            if chunk.len() as u64 > remaining {
                chunk.truncate(remaining as usize);
            }
            remaining -= chunk.len() as u64;
            self.hold(chunk).await?;
        }
        Ok(())
    }

    async fn finish(&mut self, validity: Option<Validity>) -> Result<bool, RepoError> {
        if let Some(mut last) = self.held.take() {
            if self.signal_invalid && validity == Some(Validity::Invalid) {
                last.truncate(last.len() - 1);
            }
            if !last.is_empty() {
                self.send(last).await?;
            }
        }
        Ok(true)
    }
}

/// The byte range a GET asks for with `Range: bytes=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeAsk {
    /// From the first byte named to the last named, or to the end.
    From(u64, Option<u64>),
    /// The last bytes, this many.
    Suffix(u64),
}

/// The one range a `Range` header asks for; `None` (serve the whole
/// content, as RFC 9110 lets a server do) for anything else: other units,
/// several ranges, a malformed header.
fn parse_range(header: &HeaderValue) -> Option<RangeAsk> {
    let spec = header.to_str().ok()?.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |t: &str| -> Option<u64> {
        let t = t.trim();
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Some(RangeAsk::Suffix(number(last)?)),
        (false, true) => Some(RangeAsk::From(number(first)?, None)),
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            (a <= b).then_some(RangeAsk::From(a, Some(b)))
        }
        (true, true) => None,
    }
}

/// A 416 answer for content of `size` bytes.
fn range_not_satisfiable(size: Option<u64>) -> Response<ResponseBody> {
    let mut resp = failure_response(Failure::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range not satisfiable",
    ));
    if let Some(size) = size {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            resp.headers_mut().insert(http::header::CONTENT_RANGE, v);
        }
    }
    resp
}

async fn get(_shared: &Arc<Shared>, call: Call) -> Result<Response<ResponseBody>, Failure> {
    let key = call.key()?.clone();
    let file = call.params.associated_file();
    // A range is resolved against the size the key names; without one,
    // only a range from a first byte can be served.
    let range = match (call.range, key.size()) {
        (None, _) => None,
        (Some(RangeAsk::From(first, _)), Some(size)) if first >= size => {
            return Ok(range_not_satisfiable(Some(size)))
        }
        (Some(RangeAsk::From(first, last)), size) => Some((
            first,
            match (last, size) {
                (Some(l), Some(s)) => Some(l.min(s - 1)),
                (l, _) => l,
            },
        )),
        (Some(RangeAsk::Suffix(0)), size) | (Some(RangeAsk::Suffix(_)), size @ Some(0)) => {
            return Ok(range_not_satisfiable(size))
        }
        (Some(RangeAsk::Suffix(n)), Some(size)) => Some((size.saturating_sub(n), Some(size - 1))),
        (Some(RangeAsk::Suffix(_)), None) => None,
    };
    let offset = match range {
        Some((first, _)) => first,
        None => call.params.offset.unwrap_or(0),
    };
    // The unversioned request and v0 do not signal invalid content: their
    // answers say their length. So does a range's.
    let signal_invalid = range.is_none() && call.version.is_some_and(|v| v >= ApiVersion::V1);
    let content_length = !signal_invalid;
    let (start_tx, start_rx) = oneshot::channel();
    let (tx, body) = ChannelBody::new(4);
    let repo = call.repo.clone();
    // Content sent from a file goes as a chunked body: not where the
    // length is said.
    let splice = call.splice.clone().filter(|_| signal_invalid);
    let limit = range.and_then(|(first, last)| last.map(|l| l - first + 1));
    tokio::spawn(async move {
        let mut sink = ResponseSink {
            start: Some(start_tx),
            tx: tx.clone(),
            held: None,
            signal_invalid,
            splice,
            limit,
            range_sent: false,
        };
        let result = repo.get(&key, &file, offset, &mut sink).await;
        let start = sink.start.take();
        let result = match result {
            Err(_) if sink.range_sent => Ok(GetOutcome::Sent { accepted: true }),
            r => r,
        };
        match (result, start) {
            (Ok(GetOutcome::NotPresent), Some(s)) => {
                let _ = s.send(GetStart::NotPresent);
            }
            (Err(e), Some(s)) => {
                let _ = s.send(GetStart::Failed(e));
            }
            (Err(e), None) => {
                // Cut the response short: the client sees less than the
                // data length and discards it.
                tracing::warn!(key = %key, error = %e, "GET failed while sending");
                let _ = sink.tx.send(Err(io::Error::other(e))).await;
            }
            _ => {}
        }
    });
    match start_rx.await {
        Ok(start @ (GetStart::Sending(_) | GetStart::SendingFile(..))) => {
            let (len, body) = match start {
                GetStart::SendingFile(len, spliced) => {
                    (len, http_body_util::BodyExt::boxed(spliced))
                }
                GetStart::Sending(len) => (len, http_body_util::BodyExt::boxed(body)),
                _ => unreachable!("matched above"),
            };
            let mut resp = Response::new(body);
            let headers = resp.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(
                http::header::ACCEPT_RANGES,
                HeaderValue::from_static("bytes"),
            );
            match range {
                None => {
                    headers.insert(DATA_LENGTH_HEADER, HeaderValue::from(len));
                    if content_length {
                        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
                    }
                }
                Some((first, last)) => {
                    // The repository sends from the first byte to the end.
                    let size = first + len;
                    if len == 0 {
                        return Ok(range_not_satisfiable(Some(size)));
                    }
                    let last = last.map_or(size - 1, |l| l.min(size - 1));
                    let sent = last - first + 1;
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}")) {
                        headers.insert(http::header::CONTENT_RANGE, v);
                    }
                    headers.insert(DATA_LENGTH_HEADER, HeaderValue::from(sent));
                    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(sent));
                    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                }
            }
            Ok(resp)
        }
        // Content not here: as git-annex's server answers, a successful
        // answer of no bytes, which a client fails to verify as the key's
        // content at once (a 404 has git-annex's client try every older
        // API version first).
        // Not the git-annex API's way, for a range (browsers, FUSE
        // readers): plainly not found.
        Ok(GetStart::NotPresent) if range.is_some() => {
            Err(Failure::new(StatusCode::NOT_FOUND, "key not present"))
        }
        Ok(GetStart::NotPresent) => {
            let mut resp = Response::new(full(Bytes::new()));
            let headers = resp.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(DATA_LENGTH_HEADER, HeaderValue::from(0u64));
            Ok(resp)
        }
        Ok(GetStart::Failed(e)) => Err(Failure::repo(e)),
        Err(_) => Err(Failure::new(StatusCode::NOT_FOUND, "key not present")),
    }
}

/// The body of a PUT, limited to the bytes the repository asked for. When
/// `strict`, the last byte is only handed over once the body is known to
/// end there: a body longer than declared fails the read, so the
/// repository never completes content the client did not vouch for.
struct LimitedBody {
    reader: IncomingReader<RequestBody>,
    limit: u64,
    read: u64,
    strict: bool,
    last: Option<u8>,
    /// The body ended before the limit.
    short: bool,
    /// The body went on past the limit.
    long: bool,
    /// How long the body may send nothing.
    stall: Stall,
    /// The body sent nothing for that long.
    stalled: bool,
}

/// What a PUT given up for its body says.
const NOT_SENDING: &str = "the client sent nothing";

impl LimitedBody {
    /// Reads from the body with `op`, failing once the body has sent
    /// nothing for the receive timeout.
    fn poll_body<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        op: impl FnOnce(
            &mut IncomingReader<RequestBody>,
            &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<T>>,
    ) -> std::task::Poll<io::Result<T>> {
        let reader = &mut self.reader;
        let r = self.stall.poll(cx, NOT_SENDING, |cx| op(reader, cx));
        if matches!(&r, std::task::Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut) {
            self.stalled = true;
        }
        r
    }
}

impl AsyncRead for LimitedBody {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::{ready, Poll};
        let this = self.get_mut();
        let left = this.limit - this.read;
        if left == 0 || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if !this.strict || left > 1 {
            let max = if this.strict { left - 1 } else { left };
            let before = buf.filled().len();
            ready!(this.poll_body(cx, |r, cx| r.poll_read_max(cx, buf, max)))?;
            let n = buf.filled().len() - before;
            if n == 0 {
                this.short = true;
            }
            this.read += n as u64;
            return Poll::Ready(Ok(()));
        }
        if this.last.is_none() {
            let mut one = [0u8; 1];
            let mut rb = ReadBuf::new(&mut one);
            ready!(this.poll_body(cx, |r, cx| r.poll_read_max(cx, &mut rb, 1)))?;
            if rb.filled().is_empty() {
                this.short = true;
                return Poll::Ready(Ok(()));
            }
            this.last = Some(one[0]);
        }
        let mut probe = [0u8; 1];
        let mut rb = ReadBuf::new(&mut probe);
        ready!(this.poll_body(cx, |r, cx| r.poll_read_max(cx, &mut rb, 1)))?;
        if !rb.filled().is_empty() {
            this.long = true;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the body is longer than X-git-annex-data-length",
            )));
        }
        if let Some(b) = this.last.take() {
            buf.put_slice(&[b]);
            this.read += 1;
        }
        Poll::Ready(Ok(()))
    }
}

impl ChunkStream for LimitedBody {
    fn poll_chunk(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<io::Result<Bytes>>> {
        use std::task::{ready, Poll};
        let left = self.limit - self.read;
        if left == 0 {
            return Poll::Ready(None);
        }
        if !self.strict || left > 1 {
            let max = if self.strict { left - 1 } else { left };
            return Poll::Ready(
                match ready!(self.poll_body(cx, |r, cx| r.poll_chunk_max(cx, max))) {
                    Err(e) => Some(Err(e)),
                    Ok(None) => {
                        self.short = true;
                        None
                    }
                    Ok(Some(chunk)) => {
                        self.read += chunk.len() as u64;
                        Some(Ok(chunk))
                    }
                },
            );
        }
        // The last byte, handed over once the body is known to end there.
        let mut one = [0u8; 1];
        let mut rb = ReadBuf::new(&mut one);
        ready!(std::pin::Pin::new(&mut *self).poll_read(cx, &mut rb))?;
        Poll::Ready(match rb.filled() {
            [] => None,
            last => Some(Ok(Bytes::copy_from_slice(last))),
        })
    }
}

/// The content of a PUT request's body, from the offset the repository
/// asks for. A body shorter or longer than the data length makes the
/// content invalid: it is not stored.
struct BodySource {
    body: LimitedBody,
    declared: u64,
    client_offset: u64,
    data_present: bool,
    invalid: Arc<AtomicBool>,
    opened: bool,
}

impl BodySource {
    fn fail(&self, message: String) -> RepoError {
        self.invalid.store(true, Ordering::Relaxed);
        RepoError::Other(message)
    }
}

#[async_trait]
impl PutSource for BodySource {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        if self.data_present {
            return Ok(PutData::Present);
        }
        if offset < self.client_offset {
            return Err(self.fail(format!(
                "the content was sent from offset {}, but the repository needs it from offset {offset}",
                self.client_offset
            )));
        }
        let skip = offset - self.client_offset;
        if skip > self.declared {
            return Err(
                self.fail("the repository needs content past the end of what was sent".into())
            );
        }
        // Skip what the repository already has.
        self.body.limit = skip;
        self.body.strict = false;
        let skipped = tokio::io::copy(&mut self.body, &mut tokio::io::sink()).await?;
        if skipped < skip {
            return Err(self.fail("the body ended before the offset the repository needs".into()));
        }
        self.body.limit = self.declared;
        self.body.strict = true;
        self.opened = true;
        Ok(PutData::Chunks {
            len: self.declared - skip,
            chunks: &mut self.body,
        })
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        let complete = self.opened && self.body.read == self.body.limit;
        if !complete || self.body.short || self.body.long {
            self.invalid.store(true, Ordering::Relaxed);
            return Ok(Some(Validity::Invalid));
        }
        Ok(Some(Validity::Valid))
    }
}

async fn put(
    shared: &Arc<Shared>,
    body: RequestBody,
    data_length: Option<u64>,
    call: Call,
) -> Result<Response<ResponseBody>, Failure> {
    let key = call.key()?.clone();
    let file: AssociatedFile = call.params.associated_file();
    // Params::parse_for reads data-present only in versions that have it.
    let data_present = call.params.data_present == Some(true);
    let invalid = Arc::new(AtomicBool::new(false));
    let mut source = BodySource {
        body: LimitedBody {
            reader: IncomingReader::new(body),
            limit: 0,
            read: 0,
            strict: true,
            last: None,
            short: false,
            long: false,
            stall: Stall::new(shared.receive_timeout),
            stalled: false,
        },
        declared: data_length.unwrap_or(0),
        client_offset: call.params.offset.unwrap_or(0),
        data_present,
        invalid: invalid.clone(),
        opened: false,
    };
    let result = call.repo.put(&key, &file, &mut source).await;
    if source.body.stalled {
        tracing::info!(key = %key, "PUT given up: {NOT_SENDING} for {} s", shared.receive_timeout.as_secs());
    }
    let bad_body = invalid.load(Ordering::Relaxed)
        || source.body.short
        || source.body.long
        || source.body.stalled;
    let (stored, plus) = match result {
        Ok(PutOutcome::Stored(plus)) | Ok(PutOutcome::AlreadyHave(plus)) => (true, plus),
        Ok(PutOutcome::NotStored) => (false, Vec::new()),
        // The client's data was not what it declared: not stored, and the
        // answer says so rather than blaming the server.
        Err(_) if bad_body => (false, Vec::new()),
        Err(e) => return Err(Failure::repo(e)),
    };
    Ok(json(&PutResult {
        stored,
        plusuuids: wire::encode_plus_uuids(call.api(), &plus),
    }))
}

/// Learns where a put would start by starting one and stopping at the
/// offset the repository asks for, as git-annex does.
struct OffsetProbe {
    offset: Option<u64>,
}

#[async_trait]
impl PutSource for OffsetProbe {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        self.offset = Some(offset);
        Err(RepoError::Other(
            "putoffset only asks for the offset".into(),
        ))
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        Ok(Some(Validity::Invalid))
    }
}

async fn put_offset(call: Call) -> Result<Response<ResponseBody>, Failure> {
    let key = call.key()?.clone();
    let mut probe = OffsetProbe { offset: None };
    let result = call
        .repo
        .put(&key, &AssociatedFile::none(), &mut probe)
        .await;
    match (result, probe.offset) {
        (Ok(PutOutcome::AlreadyHave(plus)), _) => Ok(json(&PutOffsetResult {
            offset: None,
            alreadyhave: Some(true),
            plusuuids: wire::encode_plus_uuids(call.api(), &plus),
        })),
        (_, Some(offset)) => Ok(json(&PutOffsetResult {
            offset: Some(offset),
            alreadyhave: None,
            plusuuids: None,
        })),
        (Err(e), None) => Err(Failure::repo(e)),
        (Ok(_), None) => Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the repository did not say where to put from",
        )),
    }
}

async fn lock_content(shared: &Arc<Shared>, call: Call) -> Result<Response<ResponseBody>, Failure> {
    let key = call.key()?.clone();
    let Some(permit) = shared.locks.reserve() else {
        return Ok(json(&LockResult {
            locked: false,
            lockid: None,
        }));
    };
    match call.repo.lock_content(&key).await.map_err(Failure::repo)? {
        Some(lock) => {
            let id = shared.locks.insert(lock, permit);
            Ok(json(&LockResult {
                locked: true,
                lockid: Some(wire::encode_value(id.as_bytes())),
            }))
        }
        None => Ok(json(&LockResult {
            locked: false,
            lockid: None,
        })),
    }
}

/// The longest line of a keeplocked body accepted.
const MAX_UNLOCK_LINE: usize = 1024;

async fn keep_locked(
    shared: &Arc<Shared>,
    call: Call,
    body: RequestBody,
) -> Result<Response<ResponseBody>, Failure> {
    let id = call.params.lock_id.clone().unwrap_or_default();
    shared.locks.keep(&id);
    let mut reader = IncomingReader::new(body);
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    // Until {"unlock": true}, the end of the body, or a broken connection.
    'reading: loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                let unlock = serde_json::from_slice::<UnlockRequest>(&line)
                    .map(|u| u.unlock)
                    .unwrap_or(false);
                line.clear();
                if unlock {
                    break 'reading;
                }
            } else if line.len() < MAX_UNLOCK_LINE {
                line.push(b);
            }
        }
        if !line.is_empty()
            && serde_json::from_slice::<UnlockRequest>(&line).is_ok_and(|u| u.unlock)
        {
            break;
        }
    }
    shared.locks.release(&id);
    Ok(json(&LockResult {
        locked: false,
        lockid: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        let p = |s: &str| parse_range(&HeaderValue::from_str(s).unwrap());
        assert_eq!(p("bytes=0-99"), Some(RangeAsk::From(0, Some(99))));
        assert_eq!(p("bytes= 5 - "), Some(RangeAsk::From(5, None)));
        assert_eq!(p("bytes=-20"), Some(RangeAsk::Suffix(20)));
        for ignored in [
            "bytes=9-3",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(p(ignored), None, "{ignored}");
        }
    }
}
