//! Differential test of `annex p2phttp` against the real `git annex
//! p2phttp` (git-annex 10.20250416, run with -J4: see [`GIT_ANNEX_JOBS`]).
//!
//! One repository is made by git-annex (present content, absent keys, and
//! partial uploads left in `.git/annex/tmp`), then copied once for each
//! server, so both serve the same repository under the same UUID. The same
//! table of raw HTTP/1.1 requests goes to both over plain TCP, in the same
//! order, so both see the same sequence of state changes; every answer is
//! compared: the status always, the JSON body where both answer JSON (the
//! lock id only for its presence, the monotonic timestamp within a few
//! seconds), the content of a GET where both send it, and the headers that
//! matter: the class of `Content-Type`, `X-git-annex-data-length`, and
//! `WWW-Authenticate`.
//!
//! The main table runs against `--wideopen` servers; smaller tables check
//! the access rules of `--unauth-readonly`, `--unauth-appendonly
//! --unauth-nolocking`, `--authenv-http` and `--authenv` (which accepts no
//! credentials over http), each with a pair of servers of its own.
//!
//! A difference fails the test unless [`ALLOWED`] lists it: the case by
//! its exact name, the fields that differ and both statuses, saying why
//! our answer may differ from git-annex's. All differences, allowed or
//! not, are printed (run with `--nocapture` to see them).
//!
//! Not covered: HEAD requests (git-annex would start streaming content
//! nobody reads, holding a worker), and keeplocked held open as a real
//! long poll (each keeplocked here sends its unlock at once).
//!
//! With `ANNEX_DIFF_TRACE=1` in the environment, each case is written to
//! standard error as it is answered, with both servers' times.
//!
//! This test needs git-annex 10.20250416 and fails (never skips) without it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use annex_test_support::{
    free_port, git, git_annex_p2phttp_jobs, init_annex_repo, output, pseudo_random,
    read_response_head, sha256e_key, spawn_annex_p2phttp, wait_for_port, KillOnDrop,
};
use serde_json::Value;

/// The client UUID the requests give.
const CLIENT: &str = "c1c1c1c1-0000-4000-8000-000000000001";

/// A well-formed UUID neither server serves.
const UNKNOWN_UUID: &str = "0badbeef-0000-4000-8000-00000000dead";

/// How long a server may take to answer one request. Generous: the
/// machine may be loaded; no request of the tables should take more than
/// a fraction of a second.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// How far apart the two servers' monotonic timestamps may be (both read
/// the system's monotonic clock in seconds, a few milliseconds apart).
const TIMESTAMP_TOLERANCE: i64 = 5;

/// A difference that is acceptable: the case, by its exact name; exactly
/// how the answers differ (the list [`compare`] gives, in its order); the
/// statuses git-annex and we answer (0: no answer); and why. A difference
/// of that case in anything else (another status, another field) is not
/// excused.
struct Allowed {
    case: &'static str,
    differs: &'static [&'static str],
    statuses: (u16, u16),
    why: &'static str,
}

impl Allowed {
    fn excuses(&self, d: &Difference) -> bool {
        self.case == d.case.name && self.differs == d.what.as_slice() && self.statuses == d.statuses
    }
}

const STATUS: &[&str] = &["status"];
const JSON_REFUSED: &[&str] = &["status", "Content-Type", "JSON body"];
const CONTENT_REFUSED: &[&str] = &["status", "Content-Type", "X-git-annex-data-length"];
const AUTH_ASKED: &[&str] = &["status", "WWW-Authenticate"];

const fn allowed(
    case: &'static str,
    differs: &'static [&'static str],
    statuses: (u16, u16),
    why: &'static str,
) -> Allowed {
    Allowed {
        case,
        differs,
        statuses,
        why,
    }
}

/// The differences that are acceptable, each with the reason.
///
/// git-annex's behaviour was checked in its source (tag 10.20250416):
/// P2P/Http.hs (the servant API), P2P/Http/Types.hs (how values parse),
/// P2P/Http/Server.hs, P2P/Http/State.hs, P2P/Protocol.hs, P2P/Annex.hs,
/// Command/P2PHttp.hs, and the servant router it is built on. A difference
/// is acceptable when git-annex misbehaves (hangs, contradicts its own
/// design document, doc/design/p2p_protocol_over_http.mdwn), when its
/// answer is an accident of servant rather than of the API, or when the
/// input is outside what the API can carry and our answer is a clean
/// refusal or a leniency that changes the meaning of no valid request.
/// Differences in answers to valid requests (extra or repeated query
/// parameters included) are not acceptable and are not listed here.
const ALLOWED: &[Allowed] = &[
    // --- Versions an endpoint does not have, wrong methods -----------------
    //
    // servant tries every alternative of the API; the version is a capture
    // parsed by parseAPIVersion, which fails with 400 "bad version" in
    // every alternative but the one of the right version, and servant's
    // router keeps the failure it ranks highest, 400 above 405 and 404. So
    // git-annex answers 400 for an unknown version, for a version an
    // endpoint does not exist in, and for a wrong method on a versioned
    // path. The design document says an unsupported version "will fail
    // with a 404, and the client should fall back to an earlier version"
    // (git-annex's client, P2P/Http/Client.hs, falls back on 404 only), so
    // our 404 is the documented answer; 405 is the right status for a
    // wrong method.
    allowed(
        "path unknown version v5",
        STATUS,
        (400, 404),
        "git-annex: 400 \"bad version\" (servant ranks it above 404); the design document says 404",
    ),
    allowed(
        "path version v10",
        STATUS,
        (400, 404),
        "git-annex: 400 \"bad version\" (servant ranks it above 404); the design document says 404",
    ),
    allowed(
        "path version upper-case V4",
        STATUS,
        (400, 404),
        "git-annex: 400 \"bad version\" (servant ranks it above 404); 404 as for any unknown version",
    ),
    allowed(
        "path gettimestamp v2",
        STATUS,
        (400, 404),
        "gettimestamp is v3 and later: git-annex 400 \"bad version\", the design document 404",
    ),
    allowed(
        "path remove-before v2",
        STATUS,
        (400, 404),
        "remove-before is v3 and later: git-annex 400 \"bad version\", the design document 404",
    ),
    allowed(
        "path putoffset v0",
        STATUS,
        (400, 404),
        "putoffset is v1 and later: git-annex 400 \"bad version\", the design document 404",
    ),
    allowed(
        "method GET on checkpresent",
        JSON_REFUSED,
        (400, 200),
        "checkpresent answered for GET as for POST, as git-annex's users ask (issue 25): git-annex 400 \"bad version\"",
    ),
    allowed(
        "method PUT on put",
        STATUS,
        (400, 405),
        "wrong method: git-annex 400 \"bad version\" (from the other versions' alternatives), we 405",
    ),
    allowed(
        "method DELETE on remove",
        STATUS,
        (400, 405),
        "wrong method: git-annex 400 \"bad version\" (from the other versions' alternatives), we 405",
    ),
    allowed(
        "method POST on key",
        STATUS,
        (400, 405),
        "wrong method: git-annex 400 \"bad version\" (from the other versions' alternatives), we 405",
    ),
    allowed(
        "keeplocked with GET",
        STATUS,
        (400, 405),
        "wrong method: git-annex 400 \"bad version\" (from the other versions' alternatives), we 405",
    ),
    // --- Numbers git-annex reads as unbounded Integers -----------------------
    //
    // Offsets, timestamps and data lengths are parsed with readMaybe into
    // Haskell's unbounded Integer (P2P/Http/Types.hs), so git-annex takes
    // negative numbers and numbers past 2^64 and acts on them; we refuse
    // them with 400: no client sends them and they mean nothing.
    allowed(
        "remove-before negative timestamp",
        JSON_REFUSED,
        (200, 400),
        "git-annex reads -1 as a timestamp and answers removed:false; we 400",
    ),
    allowed(
        "remove-before timestamp past u64",
        JSON_REFUSED,
        (200, 400),
        "git-annex reads 10^23 as a timestamp and removes; we 400",
    ),
    allowed(
        "get v4 negative offset",
        CONTENT_REFUSED,
        (200, 400),
        "git-annex reads offset -1, announces a data length of size+1 and sends no byte; we 400",
    ),
    allowed(
        "put negative data length",
        JSON_REFUSED,
        (200, 400),
        "git-annex reads data length -1 and answers stored:false; we 400",
    ),
    // --- Keys and UUIDs the P2P protocol cannot carry ------------------------
    //
    // git-annex's deserializeKey' takes keys holding whitespace or control
    // characters, and toUUID any non-empty text; such values cannot travel
    // in the P2P protocol's space-separated lines, and we refuse them
    // (README: "Keys holding whitespace or control characters are
    // refused"). git-annex answers present:false for the keys.
    allowed(
        "checkpresent key with space",
        JSON_REFUSED,
        (200, 400),
        "a key with whitespace: git-annex present:false, we 400",
    ),
    allowed(
        "checkpresent key with newline",
        JSON_REFUSED,
        (200, 400),
        "a key with a control character: git-annex present:false, we 400",
    ),
    allowed(
        "checkpresent key with NUL",
        JSON_REFUSED,
        (200, 400),
        "a key with a control character: git-annex present:false, we 400",
    ),
    allowed(
        "checkpresent key plus as space",
        JSON_REFUSED,
        (200, 400),
        "`+` decodes to a space in both; keys with whitespace: git-annex present:false, we 400",
    ),
    allowed(
        "checkpresent clientuuid with space",
        JSON_REFUSED,
        (200, 400),
        "git-annex takes any non-empty text as a client UUID; we refuse whitespace in UUIDs",
    ),
    // --- Leniencies that change the meaning of no valid request --------------
    allowed(
        "get v4 key unpadded base64",
        CONTENT_REFUSED,
        (400, 200),
        "git-annex's base64url decoder wants padding; we also take it without (RFC 4648 allows \
         leaving it out), and git-annex never sends it so",
    ),
    // --- Locks ----------------------------------------------------------------
    allowed(
        "remove while locked",
        &["status", "completeness of the answer", "Content-Type", "JSON body"],
        (0, 200),
        "git-annex's P2P server fails REMOVE of locked content with an exception (\"content is \
         locked\", lockContentUsing in Annex/Content.hs) that ends the session unanswered: the \
         request hangs; we answer removed:false at once",
    ),
    // --- --authenv over http --------------------------------------------------
    //
    // --authenv accepts credentials over https only (Command/P2PHttp.hs
    // mkGetServerMode), yet its `canauth` holds whatever the transport, so
    // over http git-annex answers 401, asking for credentials it can never
    // accept there, to an anonymous request that read-only access does
    // not allow. We answer 403 over http, where credentials would not help
    // (the design document: 403 "also is sent when the server does not
    // support authentication"). Nothing else is excused: an anonymous
    // write let through would be a difference of another status.
    allowed(
        "authenv-over-http+readonly/putoffset anonymous",
        AUTH_ASKED,
        (401, 403),
        "git-annex asks for credentials (401) it cannot accept over http with --authenv; we 403",
    ),
    allowed(
        "authenv-over-http+readonly/put anonymous",
        AUTH_ASKED,
        (401, 403),
        "git-annex asks for credentials (401) it cannot accept over http with --authenv; we 403",
    ),
    allowed(
        "authenv-over-http+readonly/remove anonymous",
        AUTH_ASKED,
        (401, 403),
        "git-annex asks for credentials (401) it cannot accept over http with --authenv; we 403",
    ),
];

/// One request of a table.
#[derive(Clone)]
struct Case {
    name: String,
    method: &'static str,
    /// The request target; `{LOCKID}` is replaced by the lock id of the
    /// server's last `lockcontent` answer.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send the body with chunked transfer encoding.
    chunked: bool,
    /// How long to wait for each answer, if not [`ANSWER_TIMEOUT`].
    timeout: Option<Duration>,
}

impl Case {
    fn new(name: impl Into<String>, method: &'static str, target: impl Into<String>) -> Case {
        Case {
            name: name.into(),
            method,
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
            chunked: false,
            timeout: None,
        }
    }

    fn get(name: impl Into<String>, target: impl Into<String>) -> Case {
        Case::new(name, "GET", target)
    }

    fn post(name: impl Into<String>, target: impl Into<String>) -> Case {
        Case::new(name, "POST", target)
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Case {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Case {
        self.body = body.into();
        self
    }

    /// A put body: the content with its data length.
    fn data(self, content: &[u8]) -> Case {
        self.header("X-git-annex-data-length", content.len().to_string())
            .body(content.to_vec())
    }

    fn chunked(mut self) -> Case {
        self.chunked = true;
        self
    }

    fn timeout(mut self, timeout: Duration) -> Case {
        self.timeout = Some(timeout);
        self
    }

    fn with_name(mut self, name: &str) -> Case {
        self.name = name.to_owned();
        self
    }

    /// The bytes of the request, for a server whose last lock id is
    /// `lock_id`.
    fn bytes(&self, lock_id: &str) -> Vec<u8> {
        let target = self.target.replace("{LOCKID}", &percent(lock_id));
        let mut out = format!(
            "{} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
            self.method
        );
        for (n, v) in &self.headers {
            let _ = write!(out, "{n}: {v}\r\n");
        }
        let mut out = out.into_bytes();
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in self.body.chunks(333) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            let explicit = self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
            if !explicit && (self.method == "POST" || !self.body.is_empty()) {
                out.extend_from_slice(
                    format!("Content-Length: {}\r\n", self.body.len()).as_bytes(),
                );
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// The request line, for reports.
    fn summary(&self) -> String {
        let mut s = format!("{} {}", self.method, self.target);
        for (n, v) in &self.headers {
            let _ = write!(s, " [{n}: {v}]");
        }
        if !self.body.is_empty() {
            let _ = write!(
                s,
                " [{} body bytes{}]",
                self.body.len(),
                if self.chunked { ", chunked" } else { "" }
            );
        }
        s
    }
}

/// Percent-encodes everything but unreserved characters.
fn percent(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// base64url with padding, as git-annex writes `[...]` values.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A value wrapped as `[base64url]`, percent-encoded for a URL.
fn wrapped(text: &str) -> String {
    percent(&format!("[{}]", b64url(text.as_bytes())))
}

/// What a server answered.
#[derive(Debug, Default)]
struct Answer {
    /// 0 when there was no answer.
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Why the answer is missing or incomplete.
    problem: Option<String>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn content_class(&self) -> &'static str {
        match self.header("content-type") {
            Some(t) if t.contains("json") => "json",
            Some(t) if t.starts_with("application/octet-stream") => "octet-stream",
            _ => "other",
        }
    }

    fn summary(&self) -> String {
        let mut s = format!("{}", self.status);
        if let Some(p) = &self.problem {
            let _ = write!(s, " ({p})");
        }
        let _ = write!(s, ", {}", self.content_class());
        if let Some(l) = self.header("x-git-annex-data-length") {
            let _ = write!(s, ", data length {l}");
        }
        if let Some(w) = self.header("www-authenticate") {
            let _ = write!(s, ", WWW-Authenticate: {w}");
        }
        let text = String::from_utf8_lossy(&self.body);
        let text: String = text.chars().take(160).collect();
        if self.content_class() == "octet-stream" {
            let _ = write!(s, ", {} body bytes", self.body.len());
        } else if !text.trim().is_empty() {
            let _ = write!(s, ", body {:?}", text.trim());
        }
        s
    }
}

/// Sends `request` to 127.0.0.1:`port` and reads the whole answer.
fn exchange(port: u16, request: &[u8], timeout: Duration) -> Answer {
    let mut answer = Answer::default();
    let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            answer.problem = Some(format!("connect: {e}"));
            return answer;
        }
    };
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    // A server may answer (and close) before reading all of a body it
    // refuses: write errors are not failures, the answer is what counts.
    let _ = stream.write_all(request);
    let _ = stream.flush();
    let mut r = BufReader::new(stream);
    let head = match read_response_head(&mut r) {
        Ok(h) => h,
        Err(e) => {
            answer.problem = Some(if is_timeout(&e) {
                "no answer in time".into()
            } else {
                format!("no answer: {e}")
            });
            return answer;
        }
    };
    answer.status = head.status;
    answer.headers = head.headers.clone();
    if head.status == 204 || head.status == 304 || head.status < 200 {
        return answer;
    }
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let length = head
        .header("content-length")
        .and_then(|l| l.trim().parse::<usize>().ok());
    let result = if chunked {
        read_chunked(&mut r, &mut answer.body)
    } else if let Some(len) = length {
        let mut body = vec![0u8; len];
        let res = r.read_exact(&mut body);
        answer.body = body;
        res
    } else {
        r.read_to_end(&mut answer.body).map(|_| ())
    };
    if let Err(e) = result {
        answer.problem = Some(if is_timeout(&e) {
            "body not finished in time".into()
        } else {
            format!("body cut short: {e}")
        });
    }
    answer
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn read_chunked(r: &mut impl BufRead, body: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        line.clear();
        r.read_line(&mut line)?;
    }
}

/// A server, killed when dropped.
struct Running {
    _child: KillOnDrop,
    port: u16,
}

/// The jobs git-annex's server runs with. With -J2, git-annex
/// 10.20250416 serves nothing else while a lock is held (a lock keeps a
/// worker of the pool, and every request needs one: the "server stall"
/// fixed upstream in 1c67f2310a, "Locks no longer use up worker pool
/// slots"); with four, other requests go on.
const GIT_ANNEX_JOBS: u32 = 4;

fn start_git_annex(repo: &Path, log: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Running {
    let port = free_port();
    let file = std::fs::File::create(&log).unwrap();
    let mut c = git_annex_p2phttp_jobs(repo, port, GIT_ANNEX_JOBS);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = KillOnDrop(c.spawn().expect("git-annex must be installed"));
    wait_for_port(port, &mut child, Some(&log));
    Running {
        _child: child,
        port,
    }
}

fn start_ours(repo: &Path, log: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
    c.args(["p2phttp", "--port", "0", "--bind", "127.0.0.1"])
        .args(args)
        .current_dir(repo)
        .envs(env.iter().copied());
    let (child, port) = spawn_annex_p2phttp(c, &log);
    Running {
        _child: child,
        port,
    }
}

/// The two servers of one configuration.
struct Pair {
    label: &'static str,
    git_annex: Running,
    ours: Running,
}

/// A difference between the answers to one case.
struct Difference {
    label: &'static str,
    case: Case,
    what: Vec<String>,
    /// The statuses git-annex and we answered.
    statuses: (u16, u16),
    git_annex: String,
    ours: String,
}

/// Sends every case to both servers of `pair`, in order: git-annex first,
/// then ours, so both see the same sequence of changes.
fn run_table(pair: &Pair, cases: &[Case]) -> (Vec<Difference>, Vec<String>) {
    let mut lock_ids = (String::from("none"), String::from("none"));
    let mut differences = Vec::new();
    let mut lines = Vec::new();
    for case in cases {
        let timeout = case.timeout.unwrap_or(ANSWER_TIMEOUT);
        let started = Instant::now();
        let mut ga = exchange(pair.git_annex.port, &case.bytes(&lock_ids.0), timeout);
        // git-annex's server now and then leaves a request unanswered when
        // the machine is busy (other tests run beside this one); a GET
        // changes nothing, so it is asked once more before that counts.
        if case.method == "GET" && ga.problem.as_deref() == Some("no answer in time") {
            ga = exchange(pair.git_annex.port, &case.bytes(&lock_ids.0), timeout);
        }
        let ga_time = started.elapsed();
        let started = Instant::now();
        let ours = exchange(pair.ours.port, &case.bytes(&lock_ids.1), timeout);
        let our_time = started.elapsed();
        if std::env::var_os("ANNEX_DIFF_TRACE").is_some() {
            eprintln!("{} {:?} {:?} {}", pair.label, ga_time, our_time, case.name);
        }
        for (answer, id) in [(&ga, &mut lock_ids.0), (&ours, &mut lock_ids.1)] {
            if let Some(l) = answer
                .json()
                .and_then(|j| j.get("lockid").and_then(Value::as_str).map(str::to_owned))
            {
                *id = l;
            }
        }
        let what = compare(case, &ga, &ours);
        lines.push(format!(
            "{:<4} {:>3} {:>3}  {}",
            if what.is_empty() { "same" } else { "DIFF" },
            ga.status,
            ours.status,
            case.name
        ));
        if !what.is_empty() {
            differences.push(Difference {
                label: pair.label,
                case: case.clone(),
                what,
                statuses: (ga.status, ours.status),
                git_annex: ga.summary(),
                ours: ours.summary(),
            });
        }
    }
    (differences, lines)
}

/// How the answers differ; empty when they agree.
fn compare(case: &Case, ga: &Answer, ours: &Answer) -> Vec<String> {
    let mut what = Vec::new();
    if ga.status != ours.status {
        what.push("status".to_owned());
    }
    if ga.problem.is_some() != ours.problem.is_some() {
        what.push("completeness of the answer".to_owned());
    }
    if ga.content_class() != ours.content_class() {
        what.push("Content-Type".to_owned());
    }
    let dl = (
        ga.header("x-git-annex-data-length"),
        ours.header("x-git-annex-data-length"),
    );
    if dl.0 != dl.1 {
        what.push("X-git-annex-data-length".to_owned());
    }
    if ga.header("www-authenticate").is_some() != ours.header("www-authenticate").is_some() {
        what.push("WWW-Authenticate".to_owned());
    }
    match (ga.json(), ours.json()) {
        (Some(a), Some(b)) => {
            if let Some(w) = compare_json(a, b) {
                what.push(w);
            }
        }
        (Some(_), None) | (None, Some(_))
            if ga.content_class() == "json" || ours.content_class() == "json" =>
        {
            what.push("JSON body".to_owned());
        }
        _ => {}
    }
    let content = ga.content_class() == "octet-stream" && ours.content_class() == "octet-stream";
    if case.method == "GET" && content && ga.body != ours.body {
        what.push("content".to_owned());
    }
    what
}

/// Compares JSON answers, lock ids by presence only and timestamps within
/// [`TIMESTAMP_TOLERANCE`].
fn compare_json(mut a: Value, mut b: Value) -> Option<String> {
    if let (Some(oa), Some(ob)) = (a.as_object_mut(), b.as_object_mut()) {
        match (oa.remove("lockid"), ob.remove("lockid")) {
            (Some(Value::String(_)), Some(Value::String(_))) | (None, None) => {}
            _ => return Some("JSON lockid".to_owned()),
        }
        match (oa.remove("timestamp"), ob.remove("timestamp")) {
            (None, None) => {}
            (Some(x), Some(y)) => match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) if (x - y).abs() <= TIMESTAMP_TOLERANCE => {}
                _ => return Some("JSON timestamp".to_owned()),
            },
            _ => return Some("JSON timestamp".to_owned()),
        }
    }
    (a != b).then(|| "JSON body".to_owned())
}

/// Content and keys of the repository both servers serve.
struct Fixture {
    uuid: String,
    /// Keys and content of the files `p1` to `p6`, present.
    present: Vec<(String, Vec<u8>)>,
    /// The key of the empty file, present.
    empty_key: String,
    /// A key whose content is nowhere.
    absent: String,
    /// New content to put, by name.
    new: Vec<(&'static str, String, Vec<u8>)>,
}

impl Fixture {
    fn key(&self, i: usize) -> &str {
        &self.present[i - 1].0
    }

    fn content(&self, i: usize) -> &[u8] {
        &self.present[i - 1].1
    }

    fn new_content(&self, name: &str) -> (&str, &[u8]) {
        let (_, k, c) = self
            .new
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("no new content {name}"));
        (k, c)
    }
}

/// How much of the `resume` contents is left in `.git/annex/tmp`.
const PARTIAL: usize = 700;

/// Makes the repository (in `dir/origin`): present files, and partial
/// uploads of the `resume` and `resume-whole` contents.
fn make_origin(dir: &Path) -> (PathBuf, Fixture) {
    let (origin, uuid) = init_annex_repo(dir, "origin", "served");
    let mut present = Vec::new();
    for i in 1..=6u64 {
        let content = pseudo_random(1000 + 500 * i as usize, i);
        let name = format!("p{i}");
        std::fs::write(origin.join(&name), &content).unwrap();
        present.push((name, content));
    }
    std::fs::write(origin.join("empty"), b"").unwrap();
    git(&origin, &["annex", "add", "-q", "."]);
    git(&origin, &["commit", "-q", "-m", "content"]);
    let lookup = |name: &str| {
        git(&origin, &["annex", "lookupkey", name])
            .trim()
            .to_owned()
    };
    let present: Vec<(String, Vec<u8>)> = present
        .into_iter()
        .map(|(name, content)| (lookup(&name), content))
        .collect();
    for (k, c) in &present {
        assert_eq!(k, &sha256e_key(c, ""), "git-annex's key");
    }
    let empty_key = lookup("empty");
    let absent = sha256e_key(&pseudo_random(500, 11), "");
    let names = [
        "v4",
        "v3",
        "v2",
        "v1",
        "v0",
        "chunked",
        "associated",
        "resume",
        "resume-whole",
        "wrong-offset",
        "bad",
        "short",
        "long",
        "wrong-length",
        "data-present",
        "mode",
    ];
    let new: Vec<(&'static str, String, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let content = pseudo_random(2000, 100 + i as u64);
            (*n, sha256e_key(&content, ""), content)
        })
        .collect();
    let tmp = origin.join(".git/annex/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    for (n, k, c) in &new {
        if *n == "resume" || *n == "resume-whole" {
            std::fs::write(tmp.join(k), &c[..PARTIAL]).unwrap();
        }
    }
    (
        origin,
        Fixture {
            uuid,
            present,
            empty_key,
            absent,
            new,
        },
    )
}

/// `cp -a`: a copy of a repository, with the same UUID and the same
/// content.
fn copy_repo(from: &Path, to: &Path) {
    let out = output(Command::new("cp").arg("-a").arg(from).arg(to));
    assert!(out.status.success(), "cp -a: {out:?}");
}

/// The main table, for `--wideopen` servers.
fn main_table(f: &Fixture) -> Vec<Case> {
    let u = &f.uuid;
    let base = format!("/git-annex/{u}");
    let c = CLIENT;
    let (p1, p2, p3, p4, p5) = (f.key(1), f.key(2), f.key(3), f.key(4), f.key(5));
    let a = &f.absent;
    let mut t = Vec::new();

    // GET of a key's content: unversioned and every version.
    t.push(Case::get(
        "get unversioned present",
        format!("{base}/key/{p1}"),
    ));
    t.push(Case::get(
        "get unversioned with clientuuid and bypass",
        format!("{base}/key/{p1}?clientuuid={c}&bypass={UNKNOWN_UUID}"),
    ));
    t.push(Case::get(
        "get unversioned absent",
        format!("{base}/key/{a}"),
    ));
    t.push(Case::get(
        "get unversioned empty content",
        format!("{base}/key/{}", f.empty_key),
    ));
    t.push(Case::get(
        "get unversioned bad clientuuid",
        format!("{base}/key/{p1}?clientuuid=%5B!!%5D"),
    ));
    for v in ["v0", "v1", "v2", "v3", "v4"] {
        t.push(Case::get(
            format!("get {v} present"),
            format!("{base}/{v}/key/{p1}?clientuuid={c}"),
        ));
        t.push(Case::get(
            format!("get {v} absent"),
            format!("{base}/{v}/key/{a}?clientuuid={c}"),
        ));
    }
    t.push(Case::get(
        "get v4 empty content",
        format!("{base}/v4/key/{}?clientuuid={c}", f.empty_key),
    ));
    let size = f.content(1).len();
    for (name, offset) in [
        ("get v4 offset inside", "1000".to_owned()),
        ("get v4 offset at end", size.to_string()),
        ("get v4 offset past end", (size + 1000).to_string()),
        ("get v4 negative offset", "-1".to_owned()),
        ("get v4 offset not a number", "ten".to_owned()),
        ("get v4 empty offset", String::new()),
    ] {
        t.push(Case::get(
            name,
            format!("{base}/v4/key/{p1}?clientuuid={c}&offset={offset}"),
        ));
    }
    t.push(Case::get(
        "get v1 offset inside",
        format!("{base}/v1/key/{p1}?clientuuid={c}&offset=17"),
    ));
    t.push(Case::get(
        "get v4 associatedfile",
        format!("{base}/v4/key/{p1}?clientuuid={c}&associatedfile=dir%2Ffile.bin"),
    ));
    t.push(Case::get(
        "get v4 associatedfile base64",
        format!(
            "{base}/v4/key/{p1}?clientuuid={c}&associatedfile={}",
            wrapped("[odd] name")
        ),
    ));
    t.push(Case::get(
        "get v4 associatedfile bad base64",
        format!("{base}/v4/key/{p1}?clientuuid={c}&associatedfile=%5B!!%5D"),
    ));
    t.push(Case::get(
        "get v4 without clientuuid",
        format!("{base}/v4/key/{p1}"),
    ));
    t.push(Case::get(
        "get v4 key base64",
        format!("{base}/v4/key/{}?clientuuid={c}", wrapped(p1)),
    ));
    t.push(Case::get(
        "get v4 key bad base64",
        format!("{base}/v4/key/%5B!!%5D?clientuuid={c}"),
    ));
    t.push(Case::get(
        "get v4 key unpadded base64",
        format!(
            "{base}/v4/key/{}?clientuuid={c}",
            percent(&format!(
                "[{}]",
                b64url(p1.as_bytes()).trim_end_matches('=')
            ))
        ),
    ));
    t.push(Case::get(
        "get v4 malformed key",
        format!("{base}/v4/key/notakey?clientuuid={c}"),
    ));
    t.push(Case::get(
        "get v4 key bad size field",
        format!("{base}/v4/key/SHA256E-sx--abc?clientuuid={c}"),
    ));
    t.push(Case::get(
        "get v4 empty key segment",
        format!("{base}/v4/key/?clientuuid={c}"),
    ));
    t.push(Case::get(
        "get v4 bad bypass",
        format!("{base}/v4/key/{p1}?clientuuid={c}&bypass=%5B!!%5D"),
    ));
    t.push(Case::get(
        "get v4 raw brackets in query",
        format!("{base}/v4/key/{p1}?clientuuid={c}&associatedfile=[Zm9v]"),
    ));

    // checkpresent.
    for v in ["v0", "v1", "v2", "v3", "v4"] {
        t.push(Case::post(
            format!("checkpresent {v} present"),
            format!("{base}/{v}/checkpresent?key={p1}&clientuuid={c}"),
        ));
        t.push(Case::post(
            format!("checkpresent {v} absent"),
            format!("{base}/{v}/checkpresent?key={a}&clientuuid={c}"),
        ));
    }
    let cp = format!("{base}/v4/checkpresent");
    for (name, query) in [
        (
            "checkpresent key base64",
            format!("key={}&clientuuid={c}", wrapped(p1)),
        ),
        (
            "checkpresent clientuuid base64",
            format!("key={p1}&clientuuid={}", wrapped(c)),
        ),
        ("checkpresent missing key", format!("clientuuid={c}")),
        ("checkpresent missing clientuuid", format!("key={p1}")),
        ("checkpresent empty key", format!("key=&clientuuid={c}")),
        ("checkpresent key without =", format!("key&clientuuid={c}")),
        (
            "checkpresent key bad base64",
            format!("key=%5B!!%5D&clientuuid={c}"),
        ),
        (
            "checkpresent key empty base64",
            format!("key=%5B%5D&clientuuid={c}"),
        ),
        (
            "checkpresent malformed key",
            format!("key=notakey&clientuuid={c}"),
        ),
        (
            "checkpresent key bad size field",
            format!("key=SHA256E-sx--abc&clientuuid={c}"),
        ),
        (
            "checkpresent key unknown backend",
            format!("key=NOSUCHBACKEND-s1--abc&clientuuid={c}"),
        ),
        (
            "checkpresent clientuuid bad base64",
            format!("key={p1}&clientuuid=%5B!!%5D"),
        ),
        (
            "checkpresent empty clientuuid",
            format!("key={p1}&clientuuid="),
        ),
        (
            "checkpresent clientuuid not a uuid",
            format!("key={p1}&clientuuid=not-a-uuid"),
        ),
        (
            "checkpresent clientuuid with space",
            format!("key={p1}&clientuuid=a%20b"),
        ),
        (
            "checkpresent bypass",
            format!("key={p1}&clientuuid={c}&bypass={UNKNOWN_UUID}&bypass={c}"),
        ),
        (
            "checkpresent bad bypass",
            format!("key={p1}&clientuuid={c}&bypass=%5B!!%5D"),
        ),
        (
            "checkpresent unknown parameter",
            format!("key={p1}&clientuuid={c}&frobnicate=yes"),
        ),
        // Parameters of other endpoints: checkpresent has none of these.
        (
            "checkpresent malformed offset",
            format!("key={p1}&clientuuid={c}&offset=ten"),
        ),
        (
            "checkpresent malformed lockid",
            format!("key={p1}&clientuuid={c}&lockid=%5B!!%5D"),
        ),
        (
            "checkpresent duplicated key present first",
            format!("key={p1}&key={a}&clientuuid={c}"),
        ),
        (
            "checkpresent duplicated key absent first",
            format!("key={a}&key={p1}&clientuuid={c}"),
        ),
        (
            "checkpresent duplicated key malformed second",
            format!("key={p1}&key=notakey&clientuuid={c}"),
        ),
        (
            "checkpresent duplicated key malformed first",
            format!("key=notakey&key={p1}&clientuuid={c}"),
        ),
        (
            "checkpresent duplicated clientuuid empty second",
            format!("key={p1}&clientuuid={c}&clientuuid="),
        ),
        (
            "checkpresent key with slashes",
            format!("key=SHA256E-s6--0%2F..%2F..%2Fconfig&clientuuid={c}"),
        ),
        (
            "checkpresent key dot-dot",
            format!("key=..%2F..%2F..%2Fetc%2Fpasswd&clientuuid={c}"),
        ),
        (
            "checkpresent key with space",
            format!("key=SHA256E-s6--0%20a&clientuuid={c}"),
        ),
        (
            "checkpresent key with newline",
            format!("key=SHA256E-s6--0%0Aa&clientuuid={c}"),
        ),
        (
            "checkpresent key with NUL",
            format!("key=SHA256E-s6--0%00a&clientuuid={c}"),
        ),
        (
            "checkpresent key not UTF-8",
            format!("key=SHA256E-s6--0%FFa&clientuuid={c}"),
        ),
        (
            "checkpresent key plus as space",
            format!("key=SHA256E-s6--0+a&clientuuid={c}"),
        ),
    ] {
        t.push(Case::post(name, format!("{cp}?{query}")));
    }
    t.push(
        Case::post(
            "checkpresent with a body",
            format!("{cp}?key={p1}&clientuuid={c}"),
        )
        .body("ignored"),
    );
    t.push(
        Case::post(
            "checkpresent non-basic Authorization",
            format!("{cp}?key={p1}&clientuuid={c}"),
        )
        .header("Authorization", "Bearer abc"),
    );
    t.push(
        Case::post(
            "checkpresent unknown basic credentials",
            format!("{cp}?key={p1}&clientuuid={c}"),
        )
        .header("Authorization", "Basic bm9ib2R5Om5vdGhpbmc="),
    );

    // Wrong methods.
    t.push(Case::get(
        "method GET on checkpresent",
        format!("{cp}?key={p1}&clientuuid={c}"),
    ));
    t.push(Case::new(
        "method PUT on put",
        "PUT",
        format!("{base}/v4/put?key={a}&clientuuid={c}"),
    ));
    t.push(Case::new(
        "method DELETE on remove",
        "DELETE",
        format!("{base}/v4/remove?key={a}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "method POST on key",
        format!("{base}/v4/key/{p1}?clientuuid={c}"),
    ));
    t.push(Case::post(
        "method POST on unversioned key",
        format!("{base}/key/{p1}"),
    ));

    // Paths.
    let q = format!("key={p1}&clientuuid={c}");
    for (name, path) in [
        ("path root", "/".to_owned()),
        ("path git-annex", "/git-annex".to_owned()),
        ("path git-annex slash", "/git-annex/".to_owned()),
        ("path uuid only", base.clone()),
        ("path version only", format!("{base}/v4")),
        ("path version slash", format!("{base}/v4/")),
        ("path unknown endpoint", format!("{base}/v4/nosuch")),
        (
            "path endpoint upper-case",
            format!("{base}/v4/CHECKPRESENT"),
        ),
        ("path unknown version v5", format!("{base}/v5/checkpresent")),
        ("path version v10", format!("{base}/v10/checkpresent")),
        (
            "path version upper-case V4",
            format!("{base}/V4/checkpresent"),
        ),
        ("path gettimestamp v2", format!("{base}/v2/gettimestamp")),
        ("path remove-before v2", format!("{base}/v2/remove-before")),
        ("path putoffset v0", format!("{base}/v0/putoffset")),
        ("path trailing slash", format!("{base}/v4/checkpresent/")),
        (
            "path extra segment",
            format!("{base}/v4/checkpresent/extra"),
        ),
        (
            "path double slash before",
            format!("//git-annex/{u}/v4/checkpresent"),
        ),
        (
            "path double slash inside",
            format!("{base}/v4//checkpresent"),
        ),
        ("path other prefix", format!("/other/{u}/v4/checkpresent")),
        (
            "path unknown server uuid",
            format!("/git-annex/{UNKNOWN_UUID}/v4/checkpresent"),
        ),
        (
            "path server uuid base64",
            format!("/git-annex/{}/v4/checkpresent", wrapped(u)),
        ),
        (
            "path server uuid bad base64",
            "/git-annex/%5B!!%5D/v4/checkpresent".to_owned(),
        ),
        (
            "path empty server uuid",
            "/git-annex//v4/checkpresent".to_owned(),
        ),
        (
            "path server uuid percent-encoded",
            format!("/git-annex/{}/v4/checkpresent", u.replace('-', "%2D")),
        ),
        (
            "path traversal dot-dot as version",
            format!("{base}/../v4/checkpresent"),
        ),
        (
            "path traversal before git-annex",
            format!("/../git-annex/{u}/v4/checkpresent"),
        ),
        (
            "path traversal encoded uuid",
            "/git-annex/..%2F..%2Fetc/v4/checkpresent".to_owned(),
        ),
    ] {
        t.push(Case::post(name, format!("{path}?{q}")));
    }
    t.push(Case::post(
        "path absolute-form target",
        format!("http://127.0.0.1{base}/v4/checkpresent?{q}"),
    ));
    for (name, key) in [
        (
            "path traversal key encoded",
            "..%2F..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        ),
        (
            "path traversal key in a key",
            "SHA256E-s6--x%2F..%2F..%2Fconfig".to_owned(),
        ),
        ("path traversal key base64", wrapped("../../config")),
    ] {
        t.push(Case::get(
            name,
            format!("{base}/v4/key/{key}?clientuuid={c}"),
        ));
    }
    t.push(Case::get(
        "path traversal key raw",
        format!("{base}/v4/key/../../../../etc/passwd?clientuuid={c}"),
    ));
    t.push(Case::get(
        "path unknown server uuid get",
        format!("/git-annex/{UNKNOWN_UUID}/key/{p1}"),
    ));

    // gettimestamp.
    for v in ["v3", "v4"] {
        t.push(Case::post(
            format!("gettimestamp {v}"),
            format!("{base}/{v}/gettimestamp?clientuuid={c}"),
        ));
    }
    t.push(Case::post(
        "gettimestamp missing clientuuid",
        format!("{base}/v4/gettimestamp"),
    ));
    t.push(Case::post(
        "gettimestamp with a key",
        format!("{base}/v4/gettimestamp?clientuuid={c}&key={p1}"),
    ));
    t.push(Case::post(
        "gettimestamp with a malformed key",
        format!("{base}/v4/gettimestamp?clientuuid={c}&key=notakey"),
    ));

    // remove and remove-before.
    for v in ["v0", "v1", "v2", "v3", "v4"] {
        t.push(Case::post(
            format!("remove {v} absent"),
            format!("{base}/{v}/remove?key={a}&clientuuid={c}"),
        ));
    }
    t.push(Case::post(
        "remove v4 present",
        format!("{base}/v4/remove?key={p2}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "checkpresent after remove",
        format!("{base}/v4/checkpresent?key={p2}&clientuuid={c}"),
    ));
    t.push(Case::get(
        "get v4 removed content",
        format!("{base}/v4/key/{p2}?clientuuid={c}"),
    ));
    t.push(Case::post(
        "remove v4 again",
        format!("{base}/v4/remove?key={p2}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "remove v1 present",
        format!("{base}/v1/remove?key={p3}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "remove with a malformed timestamp",
        format!("{base}/v4/remove?key={a}&clientuuid={c}&timestamp=soon"),
    ));
    t.push(Case::post(
        "remove missing key",
        format!("{base}/v4/remove?clientuuid={c}"),
    ));
    t.push(Case::post(
        "remove missing clientuuid",
        format!("{base}/v4/remove?key={a}"),
    ));
    let rb = format!("{base}/v4/remove-before");
    t.push(Case::post(
        "remove-before v3 absent",
        format!("{base}/v3/remove-before?key={a}&clientuuid={c}&timestamp=9999999999"),
    ));
    t.push(Case::post(
        "remove-before past timestamp",
        format!("{rb}?key={p4}&clientuuid={c}&timestamp=0"),
    ));
    t.push(Case::post(
        "checkpresent after remove-before past",
        format!("{base}/v4/checkpresent?key={p4}&clientuuid={c}"),
    ));
    for (name, ts) in [
        ("remove-before negative timestamp", "-1"),
        ("remove-before timestamp not a number", "soon"),
        ("remove-before fractional timestamp", "1.5"),
        ("remove-before empty timestamp", ""),
    ] {
        t.push(Case::post(
            name,
            format!("{rb}?key={p4}&clientuuid={c}&timestamp={ts}"),
        ));
    }
    t.push(Case::post(
        "remove-before missing timestamp",
        format!("{rb}?key={p4}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "remove-before missing key",
        format!("{rb}?clientuuid={c}&timestamp=9999999999"),
    ));
    t.push(Case::post(
        "remove-before future timestamp",
        format!("{rb}?key={p4}&clientuuid={c}&timestamp=9999999999"),
    ));
    t.push(Case::post(
        "checkpresent after remove-before future",
        format!("{base}/v4/checkpresent?key={p4}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "remove-before timestamp past u64",
        format!("{rb}?key={a}&clientuuid={c}&timestamp=99999999999999999999999"),
    ));

    // lockcontent and keeplocked. git-annex holds one of its workers for
    // as long as a lock lives, so one lock at a time, each unlocked before
    // the next. A lockcontent that fails (absent content) never gives its
    // worker back in git-annex 10.20250416 (serveLockContent waits for an
    // unlock that cannot come; fixed upstream in 91dbcf0b56, "fix p2phttp
    // worker thread leak"): with -J2 the first one stops the server (it
    // answers, then serves nothing more), so that request is the last of
    // the table, and the mode tables lock present content only.
    //
    // keeplocked is a long poll: the lock lives until the body says
    // `{"unlock": true}` or ends. Every keeplocked here sends its whole
    // body at once, so the answer comes at once; a lock held across
    // requests is only tested by "remove while locked" below.
    for v in ["v0", "v1", "v2", "v3", "v4"] {
        t.push(Case::post(
            format!("lockcontent {v} present"),
            format!("{base}/{v}/lockcontent?key={p1}&clientuuid={c}"),
        ));
        t.push(
            Case::post(
                format!("keeplocked {v} unlock"),
                format!("{base}/{v}/keeplocked?lockid={{LOCKID}}&clientuuid={c}"),
            )
            .body("{\"unlock\": true}\n"),
        );
    }
    t.push(Case::post(
        "lockcontent missing key",
        format!("{base}/v4/lockcontent?clientuuid={c}"),
    ));
    t.push(Case::post(
        "lockcontent missing clientuuid",
        format!("{base}/v4/lockcontent?key={p5}"),
    ));
    t.push(Case::post(
        "lockcontent v2 present again",
        format!("{base}/v2/lockcontent?key={p1}&clientuuid={c}"),
    ));
    t.push(
        Case::post(
            "keeplocked unlock without clientuuid",
            format!("{base}/v2/keeplocked?lockid={{LOCKID}}"),
        )
        .body("{\"unlock\": true}\n"),
    );
    t.push(
        Case::post(
            "keeplocked unknown lockid",
            format!("{base}/v4/keeplocked?lockid={UNKNOWN_UUID}&clientuuid={c}"),
        )
        .body("{\"unlock\": true}\n"),
    );
    t.push(Case::post(
        "keeplocked empty body",
        format!("{base}/v4/keeplocked?lockid={UNKNOWN_UUID}&clientuuid={c}"),
    ));
    t.push(
        Case::post(
            "keeplocked garbage body",
            format!("{base}/v4/keeplocked?lockid={UNKNOWN_UUID}&clientuuid={c}"),
        )
        .body("garbage\n"),
    );
    t.push(
        Case::post(
            "keeplocked missing lockid",
            format!("{base}/v4/keeplocked?clientuuid={c}"),
        )
        .body("{\"unlock\": true}\n"),
    );
    t.push(
        Case::post(
            "keeplocked empty lockid",
            format!("{base}/v4/keeplocked?lockid=&clientuuid={c}"),
        )
        .body("{\"unlock\": true}\n"),
    );
    t.push(
        Case::post(
            "keeplocked lockid bad base64",
            format!("{base}/v4/keeplocked?lockid=%5B!!%5D&clientuuid={c}"),
        )
        .body("{\"unlock\": true}\n"),
    );
    t.push(
        Case::get(
            "keeplocked with GET",
            format!("{base}/v4/keeplocked?lockid={UNKNOWN_UUID}&clientuuid={c}"),
        )
        .body("{\"unlock\": true}\n"),
    );

    // put and putoffset.
    let put = |v: &str, name: &str, query: &str| -> Case {
        let (k, _) = f.new_content(name);
        Case::post(
            format!("put {v} {name}"),
            format!("{base}/{v}/put?key={k}&clientuuid={c}{query}"),
        )
    };
    let (k4, c4) = f.new_content("v4");
    t.push(Case::post(
        "putoffset v4 new",
        format!("{base}/v4/putoffset?key={k4}&clientuuid={c}"),
    ));
    t.push(put("v4", "v4", "").data(c4));
    t.push(Case::post(
        "checkpresent after put",
        format!("{base}/v4/checkpresent?key={k4}&clientuuid={c}"),
    ));
    t.push(Case::get(
        "get after put",
        format!("{base}/v4/key/{k4}?clientuuid={c}"),
    ));
    t.push(Case::post(
        "putoffset v4 already have",
        format!("{base}/v4/putoffset?key={k4}&clientuuid={c}"),
    ));
    t.push(
        Case::post(
            "put v4 already have",
            format!("{base}/v4/put?key={k4}&clientuuid={c}"),
        )
        .data(c4),
    );
    for v in ["v3", "v2", "v1", "v0"] {
        let (_, content) = f.new_content(v);
        t.push(put(v, v, "").data(content));
    }
    let (k1, _) = f.new_content("v1");
    t.push(Case::post(
        "putoffset v1 already have",
        format!("{base}/v1/putoffset?key={k1}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "putoffset v1 new",
        format!("{base}/v1/putoffset?key={a}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "putoffset v2 new",
        format!("{base}/v2/putoffset?key={a}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "putoffset missing key",
        format!("{base}/v4/putoffset?clientuuid={c}"),
    ));
    t.push(Case::post(
        "putoffset missing clientuuid",
        format!("{base}/v4/putoffset?key={a}"),
    ));
    let (_, cc) = f.new_content("chunked");
    t.push(put("v4", "chunked", "").data(cc).chunked());
    let (_, ca) = f.new_content("associated");
    t.push(
        put(
            "v4",
            "associated",
            &format!("&associatedfile={}", wrapped("[dir]/a b.bin")),
        )
        .data(ca),
    );
    // A partial upload of PARTIAL bytes is in the repository's tmp.
    let (kr, cr) = f.new_content("resume");
    t.push(Case::post(
        "putoffset v4 partial upload",
        format!("{base}/v4/putoffset?key={kr}&clientuuid={c}"),
    ));
    t.push(Case::post(
        "putoffset v1 partial upload",
        format!("{base}/v1/putoffset?key={kr}&clientuuid={c}"),
    ));
    t.push(
        put("v4", "resume", &format!("&offset={PARTIAL}"))
            .header("X-git-annex-data-length", (cr.len() - PARTIAL).to_string())
            .body(cr[PARTIAL..].to_vec()),
    );
    t.push(Case::post(
        "checkpresent after resumed put",
        format!("{base}/v4/checkpresent?key={kr}&clientuuid={c}"),
    ));
    // The server wants the content from PARTIAL; all of it is sent.
    let (_, cw) = f.new_content("resume-whole");
    t.push(put("v4", "resume-whole", "&offset=0").data(cw));
    // The server wants the content from 0; it is sent from 300.
    let (kw, cw) = f.new_content("wrong-offset");
    t.push(
        put("v4", "wrong-offset", "&offset=300")
            .header("X-git-annex-data-length", (cw.len() - 300).to_string())
            .body(cw[300..].to_vec()),
    );
    t.push(Case::post(
        "checkpresent after put from a wrong offset",
        format!("{base}/v4/checkpresent?key={kw}&clientuuid={c}"),
    ));
    t.push(
        put("v4", "bad", "&offset=ten")
            .with_name("put offset not a number")
            .data(cw),
    );
    // Content that is not the key's.
    let (kb, _) = f.new_content("bad");
    t.push(put("v4", "bad", "").data(&pseudo_random(2000, 999)));
    t.push(Case::post(
        "checkpresent after bad content",
        format!("{base}/v4/checkpresent?key={kb}&clientuuid={c}"),
    ));
    // A body shorter than the data length, and one longer.
    let (ks, cs) = f.new_content("short");
    t.push(
        put("v4", "short", "")
            .header("X-git-annex-data-length", cs.len().to_string())
            .body(cs[..400].to_vec()),
    );
    t.push(Case::post(
        "checkpresent after short body",
        format!("{base}/v4/checkpresent?key={ks}&clientuuid={c}"),
    ));
    let (kl, cl) = f.new_content("long");
    let mut longer = cl.to_vec();
    longer.extend_from_slice(b"0123456789");
    t.push(
        put("v4", "long", "")
            .header("X-git-annex-data-length", cl.len().to_string())
            .body(longer),
    );
    t.push(Case::post(
        "checkpresent after long body",
        format!("{base}/v4/checkpresent?key={kl}&clientuuid={c}"),
    ));
    // The data length and body agree, but not with the key's size.
    let (kwl, cwl) = f.new_content("wrong-length");
    t.push(put("v4", "wrong-length", "").data(&cwl[..1999]));
    t.push(Case::post(
        "checkpresent after wrong length",
        format!("{base}/v4/checkpresent?key={kwl}&clientuuid={c}"),
    ));
    // Malformed puts.
    let (kd, _) = f.new_content("data-present");
    let pk = format!("{base}/v4/put?key={kd}&clientuuid={c}");
    t.push(Case::post("put without data length", pk.clone()).body(cw.to_vec()));
    t.push(
        Case::post("put data length not a number", pk.clone())
            .header("X-git-annex-data-length", "lots")
            .body(cw.to_vec()),
    );
    t.push(
        Case::post("put negative data length", pk.clone()).header("X-git-annex-data-length", "-1"),
    );
    t.push(Case::post("put missing key", format!("{base}/v4/put?clientuuid={c}")).data(cw));
    t.push(Case::post("put missing clientuuid", format!("{base}/v4/put?key={kd}")).data(cw));
    t.push(
        Case::post(
            "put associatedfile bad base64",
            format!("{pk}&associatedfile=%5B!!%5D"),
        )
        .data(cw),
    );
    // data-present (v4 only).
    t.push(
        Case::post("put data-present absent", format!("{pk}&data-present=true"))
            .header("X-git-annex-data-length", "0"),
    );
    t.push(
        Case::post(
            "put data-present present",
            format!("{base}/v4/put?key={p1}&clientuuid={c}&data-present=true"),
        )
        .header("X-git-annex-data-length", "0"),
    );
    t.push(Case::post(
        "put data-present without data length",
        format!("{pk}&data-present=true"),
    ));
    t.push(
        Case::post(
            "put data-present on v3",
            format!("{base}/v3/put?key={kd}&clientuuid={c}&data-present=true"),
        )
        .header("X-git-annex-data-length", "0"),
    );
    t.push(
        Case::post(
            "put data-present not a boolean",
            format!("{pk}&data-present=maybe"),
        )
        .header("X-git-annex-data-length", "0"),
    );
    t.push(
        Case::post(
            "put data-present not a boolean on v3",
            format!("{base}/v3/put?key={kd}&clientuuid={c}&data-present=maybe"),
        )
        .header("X-git-annex-data-length", "0"),
    );
    t.push(
        Case::post(
            "put data-present capitalised",
            format!("{pk}&data-present=True"),
        )
        .header("X-git-annex-data-length", "0"),
    );
    t.push(
        Case::post("put data-present false", format!("{pk}&data-present=false"))
            .header("X-git-annex-data-length", "0"),
    );
    t.push(Case::post(
        "checkpresent after data-present",
        format!("{base}/v4/checkpresent?key={kd}&clientuuid={c}"),
    ));
    // Removing locked content: git-annex's P2P server fails the REMOVE
    // with an exception ("content is locked", lockContentUsing in
    // Annex/Content.hs), which ends its P2P session without an answer, so
    // the HTTP request waits forever (and keeps a worker). Near the end,
    // with a short wait.
    t.push(Case::post(
        "lockcontent v4 present then remove",
        format!("{base}/v4/lockcontent?key={p5}&clientuuid={c}"),
    ));
    t.push(
        Case::post(
            "remove while locked",
            format!("{base}/v4/remove?key={p5}&clientuuid={c}"),
        )
        .timeout(Duration::from_secs(4)),
    );
    t.push(
        Case::post(
            "keeplocked unlock",
            format!("{base}/v4/keeplocked?lockid={{LOCKID}}&clientuuid={c}"),
        )
        .header("Content-Type", "application/json")
        .body("{\"unlock\": false}\n{\"unlock\": true}\n"),
    );
    t.push(Case::post(
        "remove after unlock",
        format!("{base}/v4/remove?key={p5}&clientuuid={c}"),
    ));
    // Last: git-annex answers, then leaks a worker (see above).
    t.push(Case::post(
        "lockcontent absent",
        format!("{base}/v4/lockcontent?key={a}&clientuuid={c}"),
    ));
    t
}

/// A server configuration and who asks it.
struct Mode {
    label: &'static str,
    args: &'static [&'static str],
}

const MODES: &[Mode] = &[
    Mode {
        label: "readonly",
        args: &["--unauth-readonly"],
    },
    Mode {
        label: "appendonly-nolocking",
        args: &["--unauth-appendonly", "--unauth-nolocking"],
    },
    Mode {
        label: "authenv-http",
        args: &["--authenv-http"],
    },
    Mode {
        label: "authenv-http+readonly",
        args: &["--authenv-http", "--unauth-readonly"],
    },
    Mode {
        label: "authenv-over-http+readonly",
        args: &["--authenv", "--unauth-readonly"],
    },
];

/// The credentials both servers get in their environment: alice may do
/// anything, bob only read.
const CREDENTIALS: &[(&str, &str)] = &[
    ("GIT_ANNEX_P2PHTTP_PASSWORD_alice", "alicepw"),
    ("GIT_ANNEX_P2PHTTP_PASSWORD_bob", "bobpw"),
    ("GIT_ANNEX_P2PHTTP_PERMISSIONS_bob", "readonly"),
];

/// The table for a mode: each operation class, asked by each identity.
fn mode_table(label: &str, f: &Fixture) -> Vec<Case> {
    let base = format!("/git-annex/{}", f.uuid);
    let c = CLIENT;
    let p6 = f.key(6);
    let a = &f.absent;
    let (kn, cn) = f.new_content("mode");
    let identities: [(&str, Option<String>); 6] = [
        ("anonymous", None),
        ("alice", Some(basic("alice", "alicepw"))),
        ("alice wrong password", Some(basic("alice", "nope"))),
        ("bob", Some(basic("bob", "bobpw"))),
        ("non-basic", Some("Bearer alicepw".to_owned())),
        ("basic garbage", Some("Basic !!!".to_owned())),
    ];
    let mut t = Vec::new();
    for (who, auth) in identities {
        let ops = [
            Case::get("get", format!("{base}/v4/key/{p6}?clientuuid={c}")),
            Case::post(
                "checkpresent",
                format!("{base}/v4/checkpresent?key={p6}&clientuuid={c}"),
            ),
            Case::post(
                "putoffset",
                format!("{base}/v4/putoffset?key={a}&clientuuid={c}"),
            ),
            Case::post("put", format!("{base}/v4/put?key={kn}&clientuuid={c}")).data(cn),
            Case::post("remove", format!("{base}/v4/remove?key={a}&clientuuid={c}")),
            // Present content: a failed lock would stop git-annex (see
            // main_table). Unlocked at once.
            Case::post(
                "lockcontent",
                format!("{base}/v4/lockcontent?key={p6}&clientuuid={c}"),
            ),
            Case::post(
                "keeplocked",
                format!("{base}/v4/keeplocked?lockid={{LOCKID}}&clientuuid={c}"),
            )
            .body("{\"unlock\": true}\n"),
        ];
        for op in ops {
            let name = format!("{label}/{} {who}", op.name);
            let mut op = op.with_name(&name);
            if let Some(a) = &auth {
                op = op.header("Authorization", a.clone());
            }
            t.push(op);
        }
    }
    // Errors in parameters come before access checks in both.
    t.push(Case::post(
        format!("{label}/put missing key anonymous"),
        format!("{base}/v4/put?clientuuid={c}"),
    ));
    t.push(Case::post(
        format!("{label}/checkpresent unknown server anonymous"),
        format!("/git-annex/{UNKNOWN_UUID}/v4/checkpresent?key={p6}&clientuuid={c}"),
    ));
    t
}

/// An Authorization header of HTTP basic authentication.
fn basic(user: &str, password: &str) -> String {
    // Standard base64 differs from base64url in two characters.
    let encoded: String = b64url(format!("{user}:{password}").as_bytes())
        .chars()
        .map(|ch| match ch {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    format!("Basic {encoded}")
}

/// Makes every directory below `dir` writable again (git-annex leaves
/// object directories read-only), so the temporary directory can go.
struct Writable(PathBuf);

impl Drop for Writable {
    fn drop(&mut self) {
        let _ = Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(&self.0)
            .status();
    }
}

#[test]
fn answers_match_git_annex_p2phttp() {
    let tmp = tempfile::tempdir().unwrap();
    let _writable = Writable(tmp.path().to_owned());
    let (origin, f) = make_origin(tmp.path());
    let mut configs: Vec<(&'static str, &'static [&'static str], bool)> =
        vec![("wideopen", &["--wideopen"], false)];
    for m in MODES {
        configs.push((m.label, m.args, true));
    }
    let mut pairs = Vec::new();
    for (label, args, with_env) in &configs {
        let ga_repo = tmp.path().join(format!("{label}-git-annex"));
        let our_repo = tmp.path().join(format!("{label}-annex"));
        copy_repo(&origin, &ga_repo);
        copy_repo(&origin, &our_repo);
        let env: &[(&str, &str)] = if *with_env { CREDENTIALS } else { &[] };
        let git_annex = start_git_annex(
            &ga_repo,
            tmp.path().join(format!("{label}-git-annex.log")),
            args,
            env,
        );
        let ours = start_ours(
            &our_repo,
            tmp.path().join(format!("{label}-annex.log")),
            args,
            env,
        );
        pairs.push(Pair {
            label,
            git_annex,
            ours,
        });
    }

    let mut tables = vec![main_table(&f)];
    for m in MODES {
        tables.push(mode_table(m.label, &f));
    }
    let mut names = BTreeSet::new();
    for case in tables.iter().flatten() {
        assert!(
            names.insert(case.name.clone()),
            "two cases named {}",
            case.name
        );
    }
    for a in ALLOWED {
        assert!(
            names.contains(a.case),
            "the allow-list entry for {:?} names no case",
            a.case
        );
    }

    // Each pair runs its table on a thread of its own.
    let results: Vec<(Vec<Difference>, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = pairs
            .iter()
            .zip(&tables)
            .map(|(pair, table)| s.spawn(move || run_table(pair, table)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut report = String::new();
    let mut allowed_report = String::new();
    let mut unexplained_report = String::new();
    let mut unexplained = 0;
    let mut excused = Vec::new();
    for (pair, (differences, lines)) in pairs.iter().zip(&results) {
        let _ = writeln!(
            report,
            "\n=== {} (git-annex on port {}, annex on port {}): status from git-annex, from annex",
            pair.label, pair.git_annex.port, pair.ours.port
        );
        for l in lines {
            let _ = writeln!(report, "  {l}");
        }
        for d in differences {
            let allowed = ALLOWED.iter().find(|a| a.excuses(d));
            if let Some(a) = allowed {
                excused.push(a.case);
            }
            let text = format!(
                "\n  [{}] {}\n    request:   {}\n    differs:   {}\n    git-annex: {}\n    annex:     {}\n",
                d.label,
                d.case.name,
                d.case.summary(),
                d.what.join(", "),
                d.git_annex,
                d.ours
            );
            match allowed {
                Some(a) => {
                    allowed_report.push_str(&text);
                    let _ = writeln!(allowed_report, "    allowed:   {}", a.why);
                }
                None => {
                    unexplained += 1;
                    unexplained_report.push_str(&text);
                    // An entry for the case that excuses another difference.
                    if let Some(a) = ALLOWED.iter().find(|a| a.case == d.case.name) {
                        let _ = writeln!(
                            unexplained_report,
                            "    the allow-list excuses only: {}, statuses {} and {}",
                            a.differs.join(", "),
                            a.statuses.0,
                            a.statuses.1
                        );
                    }
                }
            }
        }
    }
    let _ = writeln!(report, "\n=== allowed differences\n{allowed_report}");
    // An entry no difference needs is stale: the list must say only what
    // is true.
    let mut stale = 0;
    for a in ALLOWED {
        if !excused.contains(&a.case) {
            stale += 1;
            let _ = writeln!(
                report,
                "  STALE: the allow-list entry for {:?} excuses no difference: the servers \
                 agree, or differ otherwise (see above)",
                a.case
            );
        }
    }
    let _ = writeln!(
        report,
        "\n=== differences not in the allow-list: {unexplained}\n{unexplained_report}"
    );
    println!("{report}");
    assert_eq!(
        unexplained, 0,
        "{unexplained} differences from git-annex not in the allow-list (see above)"
    );
    assert_eq!(
        stale, 0,
        "{stale} allow-list entries match no difference (see above)"
    );
}
