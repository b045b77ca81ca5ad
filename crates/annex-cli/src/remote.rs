//! `annex remote TARGET ...`: P2P protocol requests to one repository.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use annex_http::client::{HttpOptions, HttpRepository, ServerUrl};
use annex_http::wire::ApiVersion;
use annex_protocol::{
    AssociatedFile, ByteStream, Client, ClientOptions, GetOutcome, GetSink, Key, ProtocolVersion,
    PutData, PutOutcome, PutSource, RepoError, Repository, Uuid, Validity,
};
use annex_proxy::ssh::GitAnnexShell;
use annex_repo::config::GitConfig;
use annex_repo::remotes::Location;
use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::progress::{bar, Counted};

#[derive(Args)]
pub struct RemoteArgs {
    /// A local path to a git-annex repository, `[user@]host:path` or
    /// `ssh://[user@]host[:port]/path`, or a
    /// p2phttp URL `annex+http(s)://HOST[:PORT]/git-annex/[UUID]`.
    target: String,
    /// For annex+http(s) URLs: the UUID of the repository to reach (unless
    /// the URL ends with it).
    #[arg(long, value_name = "UUID")]
    uuid: Option<String>,
    /// For annex+http(s) URLs: the user to authenticate as; the password
    /// is read from the environment variable ANNEX_P2PHTTP_PASSWORD.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// For annex+https URLs: a PEM file of CA certificates to trust as well
    /// as the system's.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// The git-annex-shell program to run for the repository.
    #[arg(long, default_value = "git-annex-shell", value_name = "PROGRAM")]
    shell: String,
    /// The highest protocol version to offer (0 to 4).
    #[arg(long, default_value_t = 4, value_name = "N")]
    protocol_version: u64,
    /// Print results as JSON lines.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    op: Op,
}

#[derive(Subcommand)]
enum Op {
    /// Check whether the repository has each key's content; exits 1 if any
    /// is missing.
    Checkpresent {
        /// Keys to check.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Download a key's content to a file. An interrupted download resumes
    /// from FILE.part, which is renamed to FILE once complete. Only the
    /// size is checked against the key; the content is not hashed.
    Get {
        key: String,
        /// Where to write the content (default: the key's name in this
        /// directory); `-` for standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Upload a file as a key's content. The receiving repository verifies
    /// it against the key.
    Put {
        key: String,
        file: PathBuf,
        /// The file name to tell the repository (information only).
        #[arg(long)]
        associated_file: Option<String>,
    },
    /// Remove a key's content from the repository.
    Remove {
        key: String,
        /// Fail unless the removal happens before this timestamp of the
        /// repository's monotonic clock (see `timestamp`).
        #[arg(long, value_name = "TIMESTAMP")]
        before: Option<u64>,
    },
    /// Lock a key's content against removal until standard input closes.
    Lock { key: String },
    /// Print the repository's monotonic clock, in seconds.
    Timestamp,
}

/// A connection to a repository, over either transport.
enum Connection {
    P2p(Client),
    Http(HttpRepository),
}

impl std::ops::Deref for Connection {
    type Target = dyn Repository;

    fn deref(&self) -> &Self::Target {
        match self {
            Connection::P2p(c) => c,
            Connection::Http(h) => h,
        }
    }
}

impl Connection {
    async fn close(self) -> Result<(), RepoError> {
        match self {
            Connection::P2p(c) => c.close().await,
            Connection::Http(_) => Ok(()),
        }
    }
}

fn connect_http(args: &RemoteArgs) -> anyhow::Result<HttpRepository> {
    let url = ServerUrl::parse(&args.target)?;
    let server = match (&args.uuid, &url.uuid) {
        (Some(u), _) => Uuid::parse(u).map_err(|e| anyhow!("--uuid {u}: {e}"))?,
        (None, Some(u)) => u.clone(),
        (None, None) => {
            bail!("give the repository's UUID with --uuid, or end the URL with /git-annex/UUID")
        }
    };
    let credentials = match &args.user {
        Some(user) => {
            let password = std::env::var("ANNEX_P2PHTTP_PASSWORD").map_err(|_| {
                anyhow!("--user {user}: set the password in the environment variable ANNEX_P2PHTTP_PASSWORD")
            })?;
            Some((user.clone(), password))
        }
        None => None,
    };
    let max_version = match args.protocol_version.min(4) {
        0 => ApiVersion::V0,
        1 => ApiVersion::V1,
        2 => ApiVersion::V2,
        3 => ApiVersion::V3,
        _ => ApiVersion::V4,
    };
    let options = HttpOptions {
        max_version,
        credentials,
        ca_file: args.cacert.clone(),
        ..Default::default()
    };
    Ok(HttpRepository::new(url, server, client_uuid(), options)?)
}

pub async fn run(args: RemoteArgs) -> anyhow::Result<ExitCode> {
    let client = match locate(&args.target) {
        Location::Http(_) => Connection::Http(connect_http(&args)?),
        location => Connection::P2p(connect(&args, location).await?),
    };
    let json = args.json;
    let code = match args.op {
        Op::Checkpresent { keys } => {
            let mut all = true;
            for k in keys {
                let key = parse_key(&k)?;
                let present = client.check_present(&key).await?;
                all &= present;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"key": key.as_str(), "present": present})
                    );
                } else {
                    println!("{key} {}", if present { "present" } else { "absent" });
                }
            }
            if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Op::Get { key, output } => get(&*client, &parse_key(&key)?, output, json).await?,
        Op::Put {
            key,
            file,
            associated_file,
        } => put(&*client, &parse_key(&key)?, &file, associated_file, json).await?,
        Op::Remove { key, before } => {
            let key = parse_key(&key)?;
            let out = client.remove(&key, before).await?;
            report(json, &key, "remove", out.removed, &out.also_removed_from);
            if out.removed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Op::Lock { key } => {
            let key = parse_key(&key)?;
            match client.lock_content(&key).await? {
                Some(lock) => {
                    println!("locked {key}");
                    let mut sink = Vec::new();
                    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
                    drop(lock);
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("annex: could not lock {key}: not present or not lockable");
                    ExitCode::from(1)
                }
            }
        }
        Op::Timestamp => {
            println!("{}", client.get_timestamp().await?);
            ExitCode::SUCCESS
        }
    };
    client.close().await?;
    Ok(code)
}

fn parse_key(s: &str) -> anyhow::Result<Key> {
    Key::parse(s).map_err(|e| anyhow!("{s:?} is not a valid git-annex key: {e}"))
}

fn report(json: bool, key: &Key, op: &str, ok: bool, also: &[Uuid]) {
    println!("{}", report_line(json, key, op, ok, also));
}

fn report_line(json: bool, key: &Key, op: &str, ok: bool, also: &[Uuid]) -> String {
    if json {
        let also: Vec<&str> = also.iter().map(Uuid::as_str).collect();
        serde_json::json!({"command": op, "key": key.as_str(), "success": ok, "uuids": also})
            .to_string()
    } else {
        let mut line = format!("{op} {key} {}", if ok { "ok" } else { "failed" });
        if !also.is_empty() {
            let l: Vec<&str> = also.iter().map(Uuid::as_str).collect();
            line.push_str(&format!(" (also {})", l.join(" ")));
        }
        line
    }
}

/// Where a target is: a path that exists on this machine, a p2phttp URL,
/// or else as git reads a remote's URL (`[user@]host:path`,
/// `ssh://host[:port]/path`, `file://path`, a path).
fn locate(target: &str) -> Location {
    if Path::new(target).exists() {
        return Location::Local(PathBuf::from(target));
    }
    Location::of_annex_url(target).unwrap_or_else(|| Location::of_url(target))
}

/// This repository's UUID when run inside one, or a fresh one.
fn client_uuid() -> Uuid {
    std::env::current_dir()
        .ok()
        .and_then(|dir| GitConfig::read_in(&dir).ok())
        .and_then(|c| Uuid::parse(c.get("annex.uuid")?.trim()).ok())
        .unwrap_or_else(Uuid::new_v4)
}

async fn connect(args: &RemoteArgs, location: Location) -> anyhow::Result<Client> {
    let me = client_uuid();
    let cmd = match location {
        Location::Local(path) => {
            let path = std::fs::canonicalize(&path)
                .with_context(|| format!("{} is not a repository path", path.display()))?;
            let mut c = tokio::process::Command::new(&args.shell);
            c.arg("p2pstdio").arg(path).arg(me.as_str());
            c
        }
        Location::Ssh { host, port, path } => GitAnnexShell::new(
            &host,
            port,
            Some(&args.shell),
            "p2pstdio",
            &[&path, me.as_str()],
        )?
        .tokio_command(),
        Location::Http(_) | Location::Other => {
            bail!("{} is not a git-annex repository's location", args.target)
        }
    };
    let opts = ClientOptions {
        max_version: ProtocolVersion(args.protocol_version.min(4)),
        ..Default::default()
    };
    Client::spawn(cmd, &opts)
        .await
        .with_context(|| format!("cannot reach a git-annex repository at {}", args.target))
}

/// Writes GET content to a file or standard output, with a progress bar.
struct FileSink {
    out: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    bar: ProgressBar,
    received: u64,
}

#[async_trait]
impl GetSink for FileSink {
    async fn data(&mut self, len: u64, stream: &mut dyn ByteStream) -> Result<(), RepoError> {
        self.bar.set_length(self.bar.position() + len);
        let mut buf = vec![0u8; 1 << 20];
        let mut remaining = len;
        while remaining > 0 {
            let want = buf.len().min(remaining as usize);
            let n = stream.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(RepoError::Other("content ended early".into()));
            }
            self.out.write_all(&buf[..n]).await?;
            remaining -= n as u64;
            self.received += n as u64;
            self.bar.inc(n as u64);
        }
        self.out.flush().await?;
        Ok(())
    }

    async fn finish(&mut self, validity: Option<Validity>) -> Result<bool, RepoError> {
        Ok(validity != Some(Validity::Invalid))
    }
}

async fn get(
    client: &dyn Repository,
    key: &Key,
    output: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let to_stdout = output.as_deref() == Some(Path::new("-"));
    let dest = output.unwrap_or_else(|| PathBuf::from(key.to_file_name()));
    let part = if to_stdout {
        None
    } else {
        let mut p = dest.clone().into_os_string();
        p.push(".part");
        Some(PathBuf::from(p))
    };
    let (out, offset): (Box<dyn tokio::io::AsyncWrite + Send + Unpin>, u64) = match &part {
        Some(p) => {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .await
                .with_context(|| format!("cannot write {}", p.display()))?;
            let off = f.seek(std::io::SeekFrom::End(0)).await?;
            (Box::new(f), off)
        }
        None => (crate::stdio::stdout(), 0),
    };
    let pb = bar(key.size().unwrap_or(0), "get");
    pb.set_position(offset);
    let mut sink = FileSink {
        out,
        bar: pb,
        received: 0,
    };
    let out = client
        .get(key, &AssociatedFile::none(), offset, &mut sink)
        .await?;
    sink.bar.finish_and_clear();
    let total = offset + sink.received;
    let ok = match out {
        GetOutcome::Sent { accepted } => accepted && key.size().is_none_or(|s| s == total),
        GetOutcome::NotPresent => false,
    };
    if let Some(p) = &part {
        if ok {
            tokio::fs::rename(p, &dest).await?;
        } else if total == 0 {
            let _ = tokio::fs::remove_file(p).await;
        }
    }
    if to_stdout {
        // The content went to standard output: the report goes to
        // standard error, after the content is all written.
        sink.out.flush().await?;
        eprintln!("{}", report_line(json, key, "get", ok, &[]));
    } else {
        report(json, key, "get", ok, &[]);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Reads PUT content from a file, with a progress bar.
struct FileSource {
    path: PathBuf,
    file: Option<Counted<tokio::io::BufReader<File>>>,
    bar: ProgressBar,
    size: u64,
}

#[async_trait]
impl PutSource for FileSource {
    async fn open(&mut self, offset: u64) -> Result<PutData<'_>, RepoError> {
        let mut f = File::open(&self.path).await?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        self.bar.set_length(self.size);
        self.bar.set_position(offset);
        self.file = Some(Counted {
            inner: tokio::io::BufReader::with_capacity(1 << 20, f),
            bar: self.bar.clone(),
        });
        Ok(PutData::Stream {
            len: self.size.saturating_sub(offset),
            stream: self.file.as_mut().expect("just set"),
        })
    }

    async fn validity(&mut self) -> Result<Option<Validity>, RepoError> {
        // The file is valid if its size did not change while it was sent.
        let now = tokio::fs::metadata(&self.path).await?.len();
        Ok(Some(if now == self.size {
            Validity::Valid
        } else {
            Validity::Invalid
        }))
    }
}

async fn put(
    client: &dyn Repository,
    key: &Key,
    path: &Path,
    associated_file: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let size = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if let Some(s) = key.size() {
        if s != size {
            bail!("{} has {size} bytes but the key says {s}", path.display());
        }
    }
    let pb = bar(size, "put");
    let mut src = FileSource {
        path: path.to_owned(),
        file: None,
        bar: pb.clone(),
        size,
    };
    let af = associated_file
        .as_deref()
        .map(AssociatedFile::from_path)
        .unwrap_or_default();
    let out = client.put(key, &af, &mut src).await?;
    pb.finish_and_clear();
    let (ok, also) = match out {
        PutOutcome::Stored(also) | PutOutcome::AlreadyHave(also) => (true, also),
        PutOutcome::NotStored => (false, Vec::new()),
    };
    report(json, key, "put", ok, &also);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
