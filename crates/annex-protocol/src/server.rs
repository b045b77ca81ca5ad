//! Serving the P2P protocol: [`serve`] answers a peer over any byte stream
//! by calling a [`Repository`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::codec::{CodecError, FileOutput, ProtocolReader, ProtocolWriter, DEFAULT_MAX_LINE};
use crate::message::{AuthToken, Message, ProtocolVersion, MAX_PROTOCOL_VERSION};
use crate::repository::{
    ByteStream, GetOutcome, GetSink, PutData, PutOutcome, PutSource, RepoError, Repository,
    Validity,
};
use crate::uuid::Uuid;

/// What a peer may do, as git-annex's server modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerMode {
    /// Full read and write access.
    #[default]
    ReadWrite,
    /// Reading and storing new content, but no removal.
    AppendOnly,
    /// Reading only.
    ReadOnly,
}

/// The message git-annex sends when a read-only server refuses a request.
pub const READ_ONLY_ERROR: &str = "this repository is read-only; write access denied";
/// The message git-annex sends when an append-only server refuses a removal.
pub const APPEND_ONLY_ERROR: &str = "this repository is append-only; removal denied";

/// Checks an AUTH message's UUID and token.
pub type AuthChecker = Arc<dyn Fn(&Uuid, &AuthToken) -> bool + Send + Sync>;

/// How the peer is authenticated.
#[derive(Clone, Default)]
pub enum Authentication {
    /// Authentication happened at another layer (ssh): the server starts by
    /// sending `AUTH-SUCCESS` with its UUID, as git-annex-shell p2pstdio
    /// does.
    #[default]
    Preauthenticated,
    /// The peer must send `AUTH UUID TOKEN` first, and the checker decides.
    Token(AuthChecker),
}

impl fmt::Debug for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authentication::Preauthenticated => f.write_str("Preauthenticated"),
            Authentication::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Settings of a protocol server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// What the peer may do.
    pub mode: ServerMode,
    /// How the peer is authenticated.
    pub auth: Authentication,
    /// The highest protocol version to agree to.
    pub max_version: ProtocolVersion,
    /// The longest line accepted from the peer.
    pub max_line: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            mode: ServerMode::ReadWrite,
            auth: Authentication::Preauthenticated,
            max_version: MAX_PROTOCOL_VERSION,
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

/// Why serving stopped with a failure.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The connection failed or the peer broke the framing.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The repository failed in a way that left the connection unusable
    /// (in the middle of sending content).
    #[error("repository failed while content was being sent: {0}")]
    Repository(RepoError),
    /// The repository stopped receiving content after the peer announced
    /// it (DATA), without reading it: a full disk. The connection is
    /// closed, as git-annex's server closes it.
    #[error("{0}")]
    ReceiveStopped(RepoError),
}

/// How a served connection ended without failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeEnd {
    /// The peer closed the connection.
    Closed,
    /// The peer sent ERROR, after which git-annex servers hang up.
    PeerError(String),
}

/// Serves one connection over a duplex stream until the peer hangs up.
pub async fn serve<IO>(
    io: IO,
    repo: &dyn Repository,
    opts: &ServerOptions,
) -> Result<ServeEnd, ServeError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (r, w) = tokio::io::split(io);
    serve_split(r, w, repo, opts).await
}

/// Serves one connection over separate read and write streams (such as
/// stdin and stdout) until the peer hangs up.
pub async fn serve_split<R, W>(
    reader: R,
    writer: W,
    repo: &dyn Repository,
    opts: &ServerOptions,
) -> Result<ServeEnd, ServeError>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    serve_split_with_output(reader, writer, None, repo, opts).await
}

/// [`serve_split`], where `output` is a second descriptor of what `writer`
/// writes to (standard output, when it is a pipe or a socket): content that
/// a repository has in a file ([`GetSink::data_file`]) is then moved into
/// it by the kernel instead of being copied through this process.
pub async fn serve_split_with_output<R, W>(
    reader: R,
    writer: W,
    output: Option<FileOutput>,
    repo: &dyn Repository,
    opts: &ServerOptions,
) -> Result<ServeEnd, ServeError>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    let mut conn = Conn {
        r: ProtocolReader::with_max_line(reader, opts.max_line),
        w: ProtocolWriter::new(writer),
        out: output,
        version: ProtocolVersion::V0,
    };
    let result = run(&mut conn, repo, opts).await;
    if let Err(ServeError::Codec(CodecError::LineTooLong(_))) = &result {
        // Tell the peer why it is being hung up on; it may be gone already.
        let _ = conn
            .send(&Message::Error("protocol error: line too long".into()))
            .await;
    }
    result
}

struct Conn<R, W> {
    r: ProtocolReader<R>,
    w: ProtocolWriter<W>,
    /// Where file content can be moved by the kernel, if anywhere.
    out: Option<FileOutput>,
    version: ProtocolVersion,
}

impl<R: AsyncRead + Send + Unpin, W: AsyncWrite + Send + Unpin> Conn<R, W> {
    async fn send(&mut self, m: &Message) -> Result<(), CodecError> {
        self.w.send(m).await
    }

    async fn error(&mut self, text: impl Into<String>) -> Result<(), CodecError> {
        self.send(&Message::Error(text.into())).await
    }

    /// Answers a failed request with ERROR: the error's own text where it
    /// is meant for the peer, else git-annex's words, with the details in
    /// the log (see [`RepoError::peer_message`]).
    async fn repo_error(&mut self, request: &str, e: &RepoError) -> Result<(), CodecError> {
        if !e.is_for_peer() {
            tracing::warn!(request, error = %e, "request failed");
        }
        self.error(e.peer_message()).await
    }

    /// Reads the next message; an unparsable line is answered with ERROR and
    /// reported as `Ok(Some(None))`.
    async fn recv(&mut self) -> Result<Option<Option<Message>>, CodecError> {
        match self.r.read_message().await {
            Ok(Some(m)) => Ok(Some(Some(m))),
            Ok(None) => Ok(None),
            Err(e) if e.is_recoverable() => {
                self.error("unknown command").await?;
                Ok(Some(None))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends a success or failure, with a -PLUS list when the version allows
    /// and the list is not empty.
    async fn send_result(&mut self, ok: bool, plus: Vec<Uuid>) -> Result<(), CodecError> {
        let m = match (ok, plus.is_empty() || !self.version.has_plus()) {
            (true, true) => Message::Success,
            (true, false) => Message::SuccessPlus(plus),
            (false, true) => Message::Failure,
            (false, false) => Message::FailurePlus(plus),
        };
        self.send(&m).await
    }
}

async fn run<R, W>(
    c: &mut Conn<R, W>,
    repo: &dyn Repository,
    opts: &ServerOptions,
) -> Result<ServeEnd, ServeError>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    match &opts.auth {
        Authentication::Preauthenticated => {
            c.send(&Message::AuthSuccess(repo.uuid().clone())).await?;
        }
        Authentication::Token(check) => loop {
            match c.recv().await? {
                None => return Ok(ServeEnd::Closed),
                Some(None) => {}
                Some(Some(Message::Auth(u, t))) => {
                    if check(&u, &t) {
                        c.send(&Message::AuthSuccess(repo.uuid().clone())).await?;
                        break;
                    }
                    c.send(&Message::AuthFailure).await?;
                }
                Some(Some(Message::Error(e))) => return Ok(ServeEnd::PeerError(e)),
                Some(Some(_)) => c.error("unexpected command").await?,
            }
        },
    }

    let mut bypassed: Option<Box<dyn Repository>> = None;
    loop {
        let msg = match c.recv().await? {
            None => return Ok(ServeEnd::Closed),
            Some(None) => continue,
            Some(Some(m)) => m,
        };
        let repo: &dyn Repository = bypassed.as_deref().unwrap_or(repo);
        match msg {
            Message::Error(e) => return Ok(ServeEnd::PeerError(e)),
            Message::Version(v) => {
                c.version = v.min(opts.max_version);
                let v = c.version;
                c.send(&Message::Version(v)).await?;
            }
            Message::Bypass(gateways) if c.version.has_plus() => {
                if let Some(view) = repo.bypass(&gateways) {
                    bypassed = Some(view);
                }
            }
            Message::CheckPresent(key) => match repo.check_present(&key).await {
                Ok(b) => c.send_result(b, Vec::new()).await?,
                Err(e) => c.repo_error("CHECKPRESENT", &e).await?,
            },
            Message::LockContent(key) => match repo.lock_content(&key).await {
                Ok(Some(lock)) => {
                    c.send(&Message::Success).await?;
                    let next = c.recv().await;
                    match next {
                        // The client went away without unlocking.
                        Ok(None) | Err(_) => lock.abandon(),
                        Ok(Some(_)) => drop(lock),
                    }
                    match next? {
                        None => return Ok(ServeEnd::Closed),
                        Some(Some(Message::UnlockContent)) => {}
                        Some(Some(Message::Error(e))) => return Ok(ServeEnd::PeerError(e)),
                        Some(_) => c.error("expected UNLOCKCONTENT").await?,
                    }
                }
                Ok(None) => c.send(&Message::Failure).await?,
                Err(e) => c.repo_error("LOCKCONTENT", &e).await?,
            },
            Message::Remove(key) => handle_remove(c, repo, opts, &key, None).await?,
            Message::RemoveBefore(ts, key) if c.version.has_remove_before() => {
                handle_remove(c, repo, opts, &key, Some(ts)).await?
            }
            Message::GetTimestamp if c.version.has_remove_before() => {
                match repo.get_timestamp().await {
                    Ok(ts) => c.send(&Message::Timestamp(ts)).await?,
                    Err(e) => c.repo_error("GETTIMESTAMP", &e).await?,
                }
            }
            Message::Put(file, key) => {
                if opts.mode == ServerMode::ReadOnly {
                    c.error(READ_ONLY_ERROR).await?;
                    continue;
                }
                handle_put(c, repo, &key, &file).await?;
            }
            Message::Get(offset, file, key) => {
                let mut sink = ServerSink {
                    c: &mut *c,
                    state: SinkState::Idle,
                };
                let result = repo.get(&key, &file, offset, &mut sink).await;
                let state = sink.state;
                match (result, state) {
                    (Ok(_), SinkState::Finished) => {}
                    (Ok(GetOutcome::NotPresent), SinkState::Idle) => {
                        send_missing_content(c).await?;
                    }
                    (Err(e), SinkState::Idle) => c.repo_error("GET", &e).await?,
                    // The peer hung up during or right after the transfer.
                    (Err(RepoError::Codec(CodecError::UnexpectedEof)), _) => {
                        return Ok(ServeEnd::Closed)
                    }
                    (Err(e), SinkState::Failed) => return Err(ServeError::Repository(e)),
                    (r, s) => {
                        // The repository broke the sink's contract: the peer
                        // is mid-transfer and cannot be resynchronised.
                        let e = match r {
                            Err(e) => e,
                            Ok(_) => RepoError::Protocol(format!(
                                "repository returned from get with the transfer {s:?}"
                            )),
                        };
                        return Err(ServeError::Repository(e));
                    }
                }
            }
            _ => c.error("unexpected command").await?,
        }
    }
}

async fn handle_remove<R, W>(
    c: &mut Conn<R, W>,
    repo: &dyn Repository,
    opts: &ServerOptions,
    key: &crate::Key,
    before: Option<u64>,
) -> Result<(), CodecError>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    match opts.mode {
        ServerMode::ReadOnly => return c.error(READ_ONLY_ERROR).await,
        ServerMode::AppendOnly => return c.error(APPEND_ONLY_ERROR).await,
        ServerMode::ReadWrite => {}
    }
    match repo.remove(key, before).await {
        Ok(o) => c.send_result(o.removed, o.also_removed_from).await,
        Err(e) => c.repo_error("REMOVE", &e).await,
    }
}

/// Content that is not available is sent as empty, invalid data, as
/// git-annex does; the peer's answer is read and ignored.
async fn send_missing_content<R, W>(c: &mut Conn<R, W>) -> Result<(), CodecError>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    c.w.send_data_bytes(b"").await?;
    if c.version.has_validity() {
        c.send(&Message::Invalid).await?;
    }
    read_transfer_answer(c).await.map(|_| ())
}

/// Reads the SUCCESS or FAILURE a receiver sends after content.
async fn read_transfer_answer<R, W>(c: &mut Conn<R, W>) -> Result<bool, CodecError>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    match c.recv().await? {
        Some(Some(Message::Success)) | Some(Some(Message::SuccessPlus(_))) => Ok(true),
        Some(Some(Message::Failure)) | Some(Some(Message::FailurePlus(_))) => Ok(false),
        Some(Some(Message::Error(_))) | Some(None) => Ok(false),
        Some(Some(_)) => {
            c.error("expected SUCCESS or FAILURE").await?;
            Ok(false)
        }
        None => Err(CodecError::UnexpectedEof),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SinkState {
    Idle,
    DataSent,
    Finished,
    Failed,
}

/// Sends GET content to the peer.
struct ServerSink<'c, R, W> {
    c: &'c mut Conn<R, W>,
    state: SinkState,
}

#[async_trait]
impl<R, W> GetSink for ServerSink<'_, R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    async fn data(&mut self, len: u64, stream: &mut dyn ByteStream) -> Result<(), RepoError> {
        if self.state != SinkState::Idle {
            self.state = SinkState::Failed;
            return Err(RepoError::Protocol("content sent twice".into()));
        }
        self.state = SinkState::Failed;
        self.c.w.send_data(len, stream).await?;
        self.state = SinkState::DataSent;
        Ok(())
    }

    async fn data_file(
        &mut self,
        len: u64,
        file: &std::fs::File,
        offset: u64,
    ) -> Result<bool, RepoError> {
        let Some(out) = self.c.out.as_ref() else {
            return Ok(false);
        };
        if self.state != SinkState::Idle {
            self.state = SinkState::Failed;
            return Err(RepoError::Protocol("content sent twice".into()));
        }
        self.state = SinkState::Failed;
        self.c.w.send_data_file(out, len, file, offset).await?;
        self.state = SinkState::DataSent;
        Ok(true)
    }

    async fn finish(&mut self, validity: Option<Validity>) -> Result<bool, RepoError> {
        if self.state != SinkState::DataSent {
            self.state = SinkState::Failed;
            return Err(RepoError::Protocol("finish before data".into()));
        }
        self.state = SinkState::Failed;
        if self.c.version.has_validity() {
            let m = match validity.unwrap_or(Validity::Valid) {
                Validity::Valid => Message::Valid,
                Validity::Invalid => Message::Invalid,
            };
            self.c.send(&m).await?;
        }
        let ok = read_transfer_answer(self.c).await?;
        self.state = SinkState::Finished;
        Ok(ok)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceState {
    Idle,
    /// PUT-FROM sent and DATA received; payload being read.
    Streaming,
    /// DATA-PRESENT received.
    Present,
    /// Validity read (or not needed); the answer is due.
    Done,
    /// The peer answered PUT-FROM with something else (already answered
    /// with ERROR, or the peer's ERROR); nothing more is sent.
    Abandoned,
}

/// Receives PUT content from the peer.
struct ServerSource<'c, R, W> {
    c: &'c mut Conn<R, W>,
    state: SourceState,
}

#[async_trait]
impl<R, W> PutSource for ServerSource<'_, R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        if self.state != SourceState::Idle {
            return Err(RepoError::Protocol("content requested twice".into()));
        }
        self.state = SourceState::Abandoned;
        self.c.send(&Message::PutFrom(offset)).await?;
        match self.c.r.read_message().await {
            Ok(Some(Message::Data(len))) => {
                self.state = SourceState::Streaming;
                Ok(PutData::Stream {
                    len,
                    stream: &mut self.c.r,
                })
            }
            Ok(Some(Message::DataPresent)) if self.c.version.has_data_present() => {
                self.state = SourceState::Present;
                Ok(PutData::Present)
            }
            other => Err(unexpected_reply(self.c, other, "DATA").await),
        }
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        match self.state {
            SourceState::Streaming => {}
            SourceState::Present => {
                self.state = SourceState::Done;
                return Ok(Some(Validity::Valid));
            }
            _ => return Err(RepoError::Protocol("validity asked before content".into())),
        }
        self.c.r.skip_data().await?;
        self.state = SourceState::Done;
        read_validity(self.c).await
    }
}

/// Turns what the peer sent instead of `expected` into an error, answering
/// a wrong or unparsable message with ERROR as git-annex does.
async fn unexpected_reply<R, W>(
    c: &mut Conn<R, W>,
    got: Result<Option<Message>, CodecError>,
    expected: &str,
) -> RepoError
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    match got {
        Ok(Some(Message::Error(e))) => RepoError::Remote(e),
        Ok(None) => CodecError::UnexpectedEof.into(),
        Err(e) if !e.is_recoverable() => e.into(),
        _ => {
            if let Err(e) = c.error(format!("expected {expected}")).await {
                return e.into();
            }
            RepoError::Protocol(format!("expected {expected}"))
        }
    }
}

/// Reads the VALID or INVALID that follows content (v1+).
async fn read_validity<R, W>(c: &mut Conn<R, W>) -> Result<Option<Validity>, RepoError>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    if !c.version.has_validity() {
        return Ok(None);
    }
    match c.r.read_message().await {
        Ok(Some(Message::Valid)) => Ok(Some(Validity::Valid)),
        Ok(Some(Message::Invalid)) => Ok(Some(Validity::Invalid)),
        other => Err(unexpected_reply(c, other, "VALID or INVALID").await),
    }
}

async fn handle_put<R, W>(
    c: &mut Conn<R, W>,
    repo: &dyn Repository,
    key: &crate::Key,
    file: &crate::AssociatedFile,
) -> Result<(), ServeError>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    let mut source = ServerSource {
        c: &mut *c,
        state: SourceState::Idle,
    };
    let result = repo.put(key, file, &mut source).await;
    let state = source.state;
    // A repository that has no room for content announced with DATA
    // stops before reading it: the connection is closed rather than
    // the payload read to no use, as git-annex's server does.
    match result {
        Err(e) if state == SourceState::Streaming && is_storage_full(&e) => {
            Err(ServeError::ReceiveStopped(e))
        }
        result => finish_put(c, state, result).await,
    }
}

/// Whether a repository stopped a receive for want of disk space.
fn is_storage_full(e: &RepoError) -> bool {
    matches!(e, RepoError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull)
}

/// Answers a PUT the repository has handled.
async fn finish_put<R, W>(
    c: &mut Conn<R, W>,
    mut state: SourceState,
    result: Result<PutOutcome, RepoError>,
) -> Result<(), ServeError>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    // Whatever the repository did, the payload and the validity that
    // follows it are consumed, so the connection stays in step.
    if state == SourceState::Streaming {
        c.r.skip_data().await?;
        match read_validity(c).await {
            Ok(_) => state = SourceState::Done,
            Err(RepoError::Codec(e)) => return Err(e.into()),
            Err(_) => state = SourceState::Abandoned,
        }
    }
    match (state, result) {
        (SourceState::Idle, Ok(PutOutcome::AlreadyHave(plus)))
        | (SourceState::Idle, Ok(PutOutcome::Stored(plus))) => {
            let m = if plus.is_empty() || !c.version.has_plus() {
                Message::AlreadyHave
            } else {
                Message::AlreadyHavePlus(plus)
            };
            c.send(&m).await?;
        }
        (SourceState::Idle, Ok(PutOutcome::NotStored)) => {
            c.error("content could not be stored").await?;
        }
        (SourceState::Idle, Err(e)) => c.repo_error("PUT", &e).await?,
        (SourceState::Abandoned, Err(RepoError::Codec(e))) => return Err(e.into()),
        (SourceState::Abandoned, _) => {}
        (SourceState::Done | SourceState::Present, Ok(PutOutcome::Stored(plus)))
        | (SourceState::Done | SourceState::Present, Ok(PutOutcome::AlreadyHave(plus))) => {
            c.send_result(true, plus).await?;
        }
        (SourceState::Done | SourceState::Present, Ok(PutOutcome::NotStored)) => {
            c.send_result(false, Vec::new()).await?;
        }
        (SourceState::Done | SourceState::Present, Err(RepoError::Codec(e))) => {
            return Err(e.into())
        }
        (SourceState::Done | SourceState::Present, Err(e)) => {
            if !e.is_for_peer() {
                tracing::warn!(request = "PUT", error = %e, "request failed");
            }
            c.send_result(false, Vec::new()).await?;
        }
        (SourceState::Streaming, _) => unreachable!("payload consumed above"),
    }
    Ok(())
}
