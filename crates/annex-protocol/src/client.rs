//! The protocol client: a [`Repository`] reached over a byte stream.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::codec::{CodecError, ProtocolReader, ProtocolWriter, DEFAULT_MAX_LINE};
use crate::key::Key;
use crate::message::{AssociatedFile, AuthToken, Message, ProtocolVersion, MAX_PROTOCOL_VERSION};
use crate::repository::{
    ContentLock, GetOutcome, GetSink, PutData, PutOutcome, PutSource, RemoveOutcome, RepoError,
    Repository, Validity,
};
use crate::uuid::Uuid;

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Settings of a client connection.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The highest protocol version to offer.
    pub max_version: ProtocolVersion,
    /// Cluster gateways the server should not relay to (BYPASS, v2+).
    pub bypass: Vec<Uuid>,
    /// The longest line accepted from the server.
    pub max_line: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_version: MAX_PROTOCOL_VERSION,
            bypass: Vec::new(),
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

struct Conn {
    r: ProtocolReader<BoxRead>,
    w: ProtocolWriter<BoxWrite>,
    /// A content lock was released without UNLOCKCONTENT being sent yet.
    unlock_pending: bool,
    /// The connection is out of step with the server and cannot be used.
    broken: Option<String>,
}

impl Conn {
    async fn send(&mut self, m: &Message) -> Result<(), RepoError> {
        self.w.send(m).await.map_err(|e| self.fail(e))
    }

    async fn recv(&mut self) -> Result<Message, RepoError> {
        match self.r.read_message().await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(self.fail(CodecError::UnexpectedEof)),
            Err(e) if e.is_recoverable() => {
                let text = e.to_string();
                // git-annex answers a reply it cannot parse with ERROR, and
                // the server then hangs up.
                let _ = self.w.send(&Message::Error(text.clone())).await;
                Err(self.fail_with(RepoError::Protocol(text)))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, e: CodecError) -> RepoError {
        self.fail_with(RepoError::Codec(e))
    }

    fn fail_with(&mut self, e: RepoError) -> RepoError {
        if self.broken.is_none() {
            self.broken = Some(e.to_string());
        }
        e
    }

    /// Tells the server its reply was not what the protocol allows, as
    /// git-annex does, and gives up on the connection.
    async fn unexpected(&mut self, expected: &str, got: &Message) -> RepoError {
        let _ = self
            .w
            .send(&Message::Error(format!("expected {expected}")))
            .await;
        self.fail_with(RepoError::Protocol(format!(
            "expected {expected}, got {}",
            got.name()
        )))
    }

    async fn ready(&mut self) -> Result<(), RepoError> {
        if let Some(why) = &self.broken {
            return Err(RepoError::Other(format!("connection unusable: {why}")));
        }
        if self.unlock_pending {
            self.unlock_pending = false;
            self.send(&Message::UnlockContent).await?;
        }
        Ok(())
    }
}

/// A repository reached over a P2P protocol connection.
///
/// Requests on one client run one at a time, as the protocol requires;
/// open several clients for parallel transfers.
pub struct Client {
    conn: Arc<Mutex<Conn>>,
    uuid: Uuid,
    version: ProtocolVersion,
    /// The peer's process, when the client started one.
    child: Option<tokio::process::Child>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("uuid", &self.uuid)
            .field("version", &self.version)
            .finish()
    }
}

impl Client {
    /// Connects to a server that authenticates at another layer and starts
    /// by sending AUTH-SUCCESS, as git-annex-shell p2pstdio does; then
    /// negotiates the protocol version.
    pub async fn connect<R, W>(
        reader: R,
        writer: W,
        opts: &ClientOptions,
    ) -> Result<Client, RepoError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let conn = Self::conn(reader, writer, opts);
        Self::finish_connect(conn, opts).await
    }

    /// Connects to a server that needs `AUTH UUID TOKEN` first; then
    /// negotiates the protocol version.
    pub async fn connect_with_auth<R, W>(
        reader: R,
        writer: W,
        my_uuid: &Uuid,
        token: &AuthToken,
        opts: &ClientOptions,
    ) -> Result<Client, RepoError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let mut conn = Self::conn(reader, writer, opts);
        conn.send(&Message::Auth(my_uuid.clone(), token.clone()))
            .await?;
        Self::finish_connect(conn, opts).await
    }

    fn conn<R, W>(reader: R, writer: W, opts: &ClientOptions) -> Conn
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        Conn {
            r: ProtocolReader::with_max_line(Box::new(reader), opts.max_line),
            w: ProtocolWriter::new(Box::new(writer)),
            unlock_pending: false,
            broken: None,
        }
    }

    /// Reads the server's AUTH-SUCCESS, then negotiates the version.
    async fn finish_connect(mut conn: Conn, opts: &ClientOptions) -> Result<Client, RepoError> {
        let uuid = match conn.recv().await? {
            Message::AuthSuccess(u) => u,
            Message::AuthFailure => return Err(RepoError::Refused("authentication failed".into())),
            Message::Error(e) => return Err(RepoError::Remote(e)),
            m => return Err(conn.unexpected("AUTH-SUCCESS", &m).await),
        };
        let mut version = ProtocolVersion::V0;
        if opts.max_version > ProtocolVersion::V0 {
            conn.send(&Message::Version(opts.max_version)).await?;
            version = match conn.recv().await? {
                Message::Version(v) if v <= opts.max_version => v,
                // A server too old to know VERSION answers ERROR.
                Message::Error(_) => ProtocolVersion::V0,
                m => return Err(conn.unexpected("VERSION", &m).await),
            };
        }
        if version.has_plus() && !opts.bypass.is_empty() {
            conn.send(&Message::Bypass(opts.bypass.clone())).await?;
        }
        Ok(Client {
            conn: Arc::new(Mutex::new(conn)),
            uuid,
            version,
            child: None,
        })
    }

    /// Starts a command that speaks the protocol on its standard input and
    /// output, such as `ssh HOST git-annex-shell p2pstdio DIR UUID`, and
    /// connects to it as with [`Client::connect`]. The process is killed
    /// when the client is dropped; its standard error is inherited.
    pub async fn spawn(
        mut cmd: tokio::process::Command,
        opts: &ClientOptions,
    ) -> Result<Client, RepoError> {
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(RepoError::Other(
                "child process has no standard input or output".into(),
            ));
        };
        grow_pipe(&stdin);
        grow_pipe(&stdout);
        let mut client = match Client::connect(stdout, stdin, opts).await {
            Ok(c) => c,
            Err(e) => {
                // Report how the process ended when that explains the failure.
                let status = child.try_wait().ok().flatten();
                let _ = child.kill().await;
                return Err(match status {
                    Some(s) if !s.success() => {
                        RepoError::context(format!("protocol command exited with {s}"), e)
                    }
                    _ => e,
                });
            }
        };
        client.child = Some(child);
        Ok(client)
    }

    /// Sends what is pending (the UNLOCKCONTENT of a lock given up), so
    /// that the peer acts on it now rather than at the next request.
    pub async fn flush(&self) -> Result<(), RepoError> {
        self.lock().await.map(|_| ())
    }

    /// Whether the connection is known to be unusable (it failed, or the
    /// peer closed it). A connection in use by a request is not.
    pub fn is_broken(&self) -> bool {
        match self.conn.try_lock() {
            Ok(c) => c.broken.is_some(),
            Err(_) => false,
        }
    }

    /// The protocol version agreed with the server.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    async fn lock(&self) -> Result<OwnedMutexGuard<Conn>, RepoError> {
        let mut g = self.conn.clone().lock_owned().await;
        g.ready().await?;
        Ok(g)
    }

    /// Reads SUCCESS or FAILURE (and the -PLUS forms from v2).
    async fn read_result(&self, c: &mut Conn) -> Result<(bool, Vec<Uuid>), RepoError> {
        let m = c.recv().await?;
        match m {
            Message::Success => Ok((true, Vec::new())),
            Message::Failure => Ok((false, Vec::new())),
            Message::SuccessPlus(l) if self.version.has_plus() => Ok((true, l)),
            Message::FailurePlus(l) if self.version.has_plus() => Ok((false, l)),
            Message::Error(e) => Err(RepoError::Remote(e)),
            m => Err(c.unexpected("SUCCESS or FAILURE", &m).await),
        }
    }

    /// Hangs up: closes the write side, and waits for the peer's process to
    /// exit when the client started one.
    pub async fn close(mut self) -> Result<(), RepoError> {
        {
            let mut c = self.conn.lock().await;
            c.ready().await?;
            c.w.shutdown().await?;
            // Some streams (a child's stdin) only close when dropped.
            c.w = ProtocolWriter::new(Box::new(tokio::io::sink()));
            c.broken = Some("connection closed".into());
        }
        if let Some(mut child) = self.child.take() {
            let status = child.wait().await?;
            if !status.success() {
                return Err(RepoError::Other(format!(
                    "protocol command exited with {status}"
                )));
            }
        }
        Ok(())
    }
}

/// Holds a client connection while content is locked on the server; sends
/// UNLOCKCONTENT when dropped.
struct RemoteLock {
    conn: Option<OwnedMutexGuard<Conn>>,
}

impl Drop for RemoteLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        conn.unlock_pending = true;
        // Unlock at once when a runtime is at hand; otherwise the next
        // request on this connection sends UNLOCKCONTENT first.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = conn.ready().await;
            });
        }
    }
}

#[async_trait]
impl Repository for Client {
    fn uuid(&self) -> &Uuid {
        &self.uuid
    }

    async fn check_present(&self, key: &Key) -> Result<bool, RepoError> {
        let mut c = self.lock().await?;
        c.send(&Message::CheckPresent(key.clone())).await?;
        let (ok, _) = self.read_result(&mut c).await?;
        Ok(ok)
    }

    async fn lock_content(&self, key: &Key) -> Result<Option<ContentLock>, RepoError> {
        let mut c = self.lock().await?;
        c.send(&Message::LockContent(key.clone())).await?;
        let (ok, _) = self.read_result(&mut c).await?;
        if !ok {
            return Ok(None);
        }
        Ok(Some(ContentLock::new(RemoteLock { conn: Some(c) })))
    }

    async fn remove(&self, key: &Key, before: Option<u64>) -> Result<RemoveOutcome, RepoError> {
        let mut c = self.lock().await?;
        let m = match before {
            None => Message::Remove(key.clone()),
            Some(ts) if self.version.has_remove_before() => Message::RemoveBefore(ts, key.clone()),
            Some(_) => {
                return Err(RepoError::Unsupported(
                    "REMOVE-BEFORE needs protocol version 3",
                ))
            }
        };
        c.send(&m).await?;
        let (removed, also) = self.read_result(&mut c).await?;
        Ok(RemoveOutcome {
            removed,
            also_removed_from: also,
        })
    }

    async fn get_timestamp(&self) -> Result<u64, RepoError> {
        if !self.version.has_remove_before() {
            return Err(RepoError::Unsupported(
                "GETTIMESTAMP needs protocol version 3",
            ));
        }
        let mut c = self.lock().await?;
        c.send(&Message::GetTimestamp).await?;
        match c.recv().await? {
            Message::Timestamp(ts) => Ok(ts),
            Message::Error(e) => Err(RepoError::Remote(e)),
            m => Err(c.unexpected("TIMESTAMP", &m).await),
        }
    }

    async fn get(
        &self,
        key: &Key,
        file: &AssociatedFile,
        offset: u64,
        sink: &mut dyn GetSink,
    ) -> Result<GetOutcome, RepoError> {
        let mut c = self.lock().await?;
        c.send(&Message::Get(offset, file.clone(), key.clone()))
            .await?;
        let len = match c.recv().await? {
            Message::Data(len) => len,
            Message::Error(e) => return Err(RepoError::Remote(e)),
            m => return Err(c.unexpected("DATA", &m).await),
        };
        if let Err(e) = sink.data(len, &mut c.r).await {
            // The rest of the payload cannot be told apart from messages
            // without reading it; give up on the connection.
            let _ = c.fail_with(RepoError::Other(format!("get interrupted: {e}")));
            return Err(e);
        }
        if c.r.data_remaining() > 0 {
            let e = RepoError::Protocol("receiver did not read all the content".into());
            return Err(c.fail_with(e));
        }
        let validity = if self.version.has_validity() {
            match c.recv().await? {
                Message::Valid => Some(Validity::Valid),
                Message::Invalid => Some(Validity::Invalid),
                m => return Err(c.unexpected("VALID or INVALID", &m).await),
            }
        } else {
            None
        };
        let accepted = match sink.finish(validity).await {
            Ok(a) => a,
            Err(e) => {
                c.send(&Message::Failure).await?;
                return Err(e);
            }
        };
        c.send(if accepted {
            &Message::Success
        } else {
            &Message::Failure
        })
        .await?;
        Ok(GetOutcome::Sent { accepted })
    }

    async fn put(
        &self,
        key: &Key,
        file: &AssociatedFile,
        source: &mut dyn PutSource,
    ) -> Result<PutOutcome, RepoError> {
        let mut c = self.lock().await?;
        c.send(&Message::Put(file.clone(), key.clone())).await?;
        let offset = match c.recv().await? {
            Message::PutFrom(o) => o,
            Message::AlreadyHave => return Ok(PutOutcome::AlreadyHave(Vec::new())),
            Message::AlreadyHavePlus(l) if self.version.has_plus() => {
                return Ok(PutOutcome::AlreadyHave(l))
            }
            Message::Error(e) => return Err(RepoError::Remote(e)),
            m => return Err(c.unexpected("PUT-FROM or ALREADY-HAVE", &m).await),
        };
        let opened = source.open(offset).await.map(PutData::into_stream);
        let sent_data = match opened {
            Ok(Some((len, mut data))) => {
                if let Err(e) = c.w.send_data(len, data.stream()).await {
                    return Err(c.fail(e));
                }
                true
            }
            // DATA-PRESENT: the content is not sent.
            Ok(None) if self.version.has_data_present() => {
                c.send(&Message::DataPresent).await?;
                false
            }
            other => {
                // Nothing to send: send empty, invalid data so that the
                // server discards the transfer, as git-annex does.
                c.w.send_data_bytes(b"").await.map_err(|e| c.fail(e))?;
                if self.version.has_validity() {
                    c.send(&Message::Invalid).await?;
                }
                let _ = self.read_result(&mut c).await?;
                return match other {
                    Err(e) => Err(e),
                    Ok(_) => Err(RepoError::Unsupported(
                        "DATA-PRESENT needs protocol version 4",
                    )),
                };
            }
        };
        if sent_data && self.version.has_validity() {
            let v = match source.validity().await {
                Ok(v) => v.unwrap_or(Validity::Valid),
                Err(_) => Validity::Invalid,
            };
            c.send(match v {
                Validity::Valid => &Message::Valid,
                Validity::Invalid => &Message::Invalid,
            })
            .await?;
        }
        let (ok, also) = self.read_result(&mut c).await?;
        Ok(if ok {
            PutOutcome::Stored(also)
        } else {
            PutOutcome::NotStored
        })
    }
}

/// Asks for a 1 MiB pipe buffer (the unprivileged maximum by default), so
/// that large transfers wake both ends less often; ignored where not
/// allowed.
fn grow_pipe(fd: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ takes an int argument and only affects pipes.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}
