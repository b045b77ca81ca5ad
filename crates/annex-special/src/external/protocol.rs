//! The lines of git-annex's external special remote protocol
//! (doc/design/external_special_remote_protocol.mdwn and its export and
//! async appendices), parsed and written as git-annex 10.20250416 parses
//! and writes them.
//!
//! A line is a command word and a fixed number of parameters per command,
//! each after one whitespace character; the last parameter takes the rest
//! of the line, spaces and all, and an empty parameter keeps its
//! separating space (`VALUE ` for an empty value). A line that parses as
//! nothing git-annex knows is "unable to parse"; one that parses as a
//! message not expected at that moment is "not allowed at this time":
//! the caller decides the latter.

use std::fmt;

use annex_protocol::Key;

/// The extensions git-annex 10.20250416 offers, in its order. (It also
/// knows TRANSFER-RETRIEVE-URL, CHECKPRESENT-URL and DELEGATE from later
/// versions; this program offers none of those, so a remote must not use
/// them.)
pub const EXTENSIONS: [&str; 4] = ["INFO", "GETGITREMOTENAME", "UNAVAILABLERESPONSE", "ASYNC"];

/// The protocol versions git-annex speaks.
pub const VERSIONS: [u32; 2] = [1, 2];

/// Which way content goes in a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Into the remote (`STORE`).
    Store,
    /// Out of the remote (`RETRIEVE`).
    Retrieve,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Store => "STORE",
            Direction::Retrieve => "RETRIEVE",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        match s {
            "STORE" => Some(Direction::Store),
            "RETRIEVE" => Some(Direction::Retrieve),
            _ => None,
        }
    }
}

/// Whether a remote can be reached from everywhere or from here only
/// (`AVAILABILITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// `GLOBAL`: reachable from anywhere (the default).
    Global,
    /// `LOCAL`: reachable only from this machine.
    Local,
    /// `UNAVAILABLE`: not reachable now.
    Unavailable,
}

/// A request this program sends to the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `EXTENSIONS List`.
    Extensions(Vec<String>),
    /// `PREPARE`.
    Prepare,
    /// `GETCOST`.
    GetCost,
    /// `GETAVAILABILITY`.
    GetAvailability,
    /// `GETORDERED`.
    GetOrdered,
    /// `TRANSFER STORE|RETRIEVE Key File`.
    Transfer(Direction, Key, String),
    /// `CHECKPRESENT Key`.
    CheckPresent(Key),
    /// `REMOVE Key`.
    Remove(Key),
    /// `LISTCONFIGS`.
    ListConfigs,
    /// `GETINFO`.
    GetInfo,
    /// `EXPORTSUPPORTED`.
    ExportSupported,
    /// `EXPORT Name`: the exported file the next request is about.
    Export(String),
    /// `TRANSFEREXPORT STORE|RETRIEVE Key File`.
    TransferExport(Direction, Key, String),
    /// `CHECKPRESENTEXPORT Key`.
    CheckPresentExport(Key),
    /// `REMOVEEXPORT Key`.
    RemoveExport(Key),
    /// `REMOVEEXPORTDIRECTORY Directory`.
    RemoveExportDirectory(String),
    /// `RENAMEEXPORT Key NewName`.
    RenameExport(Key, String),
}

/// A value that cannot travel in one protocol line (it holds a line
/// break).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} holds a line break, which the external special remote protocol cannot carry")]
pub struct Unsendable(pub String);

fn join(words: &[&str]) -> Result<String, Unsendable> {
    let line = words.join(" ");
    if line.contains(['\n', '\r']) {
        return Err(Unsendable(line));
    }
    Ok(line)
}

impl Request {
    /// Whether PREPARE must have been sent before this request (all but
    /// EXTENSIONS, PREPARE, EXPORTSUPPORTED and LISTCONFIGS).
    pub fn needs_prepare(&self) -> bool {
        !matches!(
            self,
            Request::Extensions(_)
                | Request::Prepare
                | Request::ExportSupported
                | Request::ListConfigs
        )
    }

    /// The request's name, for messages (`TRANSFER`).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Extensions(_) => "EXTENSIONS",
            Request::Prepare => "PREPARE",
            Request::GetCost => "GETCOST",
            Request::GetAvailability => "GETAVAILABILITY",
            Request::GetOrdered => "GETORDERED",
            Request::Transfer(..) => "TRANSFER",
            Request::CheckPresent(_) => "CHECKPRESENT",
            Request::Remove(_) => "REMOVE",
            Request::ListConfigs => "LISTCONFIGS",
            Request::GetInfo => "GETINFO",
            Request::ExportSupported => "EXPORTSUPPORTED",
            Request::Export(_) => "EXPORT",
            Request::TransferExport(..) => "TRANSFEREXPORT",
            Request::CheckPresentExport(_) => "CHECKPRESENTEXPORT",
            Request::RemoveExport(_) => "REMOVEEXPORT",
            Request::RemoveExportDirectory(_) => "REMOVEEXPORTDIRECTORY",
            Request::RenameExport(..) => "RENAMEEXPORT",
        }
    }

    /// The line, without its newline. Fails for a parameter holding a
    /// line break.
    pub fn to_line(&self) -> Result<String, Unsendable> {
        let name = self.name();
        match self {
            Request::Extensions(l) => {
                let list = l.join(" ");
                join(&[name, &list])
            }
            Request::Prepare
            | Request::GetCost
            | Request::GetAvailability
            | Request::GetOrdered
            | Request::ListConfigs
            | Request::GetInfo
            | Request::ExportSupported => join(&[name]),
            Request::Transfer(d, k, f) | Request::TransferExport(d, k, f) => {
                join(&[name, d.word(), k.as_str(), f])
            }
            Request::CheckPresent(k)
            | Request::Remove(k)
            | Request::CheckPresentExport(k)
            | Request::RemoveExport(k) => join(&[name, k.as_str()]),
            Request::Export(s) | Request::RemoveExportDirectory(s) => join(&[name, s]),
            Request::RenameExport(k, s) => join(&[name, k.as_str(), s]),
        }
    }
}

/// The size in `CHECKURL-CONTENTS`: bytes, or unknown.
pub type UrlSize = Option<u64>;

/// A reply of the remote to a request.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Response {
    Extensions(Vec<String>),
    PrepareSuccess,
    PrepareFailure(String),
    TransferSuccess(Direction, Key),
    TransferFailure(Direction, Key, String),
    TransferRetrieveUrl(Key, String),
    CheckPresentSuccess(Key),
    CheckPresentFailure(Key),
    CheckPresentUnknown(Key, String),
    CheckPresentUrl(Key, String),
    RemoveSuccess(Key),
    RemoveFailure(Key, String),
    Cost(f64),
    Availability(Availability),
    Ordered,
    Unordered,
    InitRemoteSuccess,
    InitRemoteFailure(String),
    ClaimUrlSuccess,
    ClaimUrlFailure,
    CheckUrlContents(UrlSize, String),
    CheckUrlMulti(Vec<(String, UrlSize, String)>),
    CheckUrlFailure(String),
    WhereisSuccess(String),
    WhereisFailure,
    Config(String, String),
    ConfigEnd,
    InfoField(String),
    InfoValue(String),
    InfoEnd,
    ExportSupportedSuccess,
    ExportSupportedFailure,
    RemoveExportDirectorySuccess,
    RemoveExportDirectoryFailure,
    RenameExportSuccess(Key),
    RenameExportFailure(Key),
    Delegate(Vec<String>),
    UnsupportedRequest,
}

/// A request of the remote, which this program answers (or takes note
/// of) while one of its own requests is pending.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum RemoteRequest {
    Version(i64),
    Progress(i64),
    DirHash(Key),
    DirHashLower(Key),
    SetConfig(String, String),
    GetConfig(String),
    SetCreds(String, String, String),
    GetCreds(String),
    GetUuid,
    GetGitDir,
    GetGitRemoteName,
    SetWanted(String),
    GetWanted,
    SetState(Key, String),
    GetState(Key),
    SetUrlPresent(Key, String),
    SetUrlMissing(Key, String),
    SetUriPresent(Key, String),
    SetUriMissing(Key, String),
    GetUrls(Key, String),
    Debug(String),
    Info(String),
}

/// This program's answer to a [`RemoteRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `VALUE Value`.
    Value(String),
    /// `VALUE Value` once for each (GETURLS: the URLs, then an empty
    /// one).
    Values(Vec<String>),
    /// `CREDS User Password`.
    Creds(String, String),
    /// `ERROR Message`: the request cannot be answered here.
    Error(String),
}

impl Reply {
    /// The lines, without their newlines.
    pub fn to_lines(&self) -> Result<Vec<String>, Unsendable> {
        match self {
            Reply::Value(v) => Ok(vec![join(&["VALUE", v])?]),
            Reply::Values(vs) => vs.iter().map(|v| join(&["VALUE", v])).collect(),
            Reply::Creds(u, p) => Ok(vec![join(&["CREDS", u, p])?]),
            Reply::Error(e) => Ok(vec![join(&["ERROR", e])?]),
        }
    }

    /// Whether the reply goes without a job number under ASYNC (ERROR
    /// does).
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Any line the remote may send.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A reply to the pending request.
    Response(Response),
    /// A request of the remote's.
    Request(RemoteRequest),
    /// `ERROR Message`: the remote gives up.
    Error(String),
}

/// Whether Haskell's `isSpace` holds: the ASCII spaces and the Unicode
/// space separators (not NEL, nor the line and paragraph separators).
fn is_space(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Splits at the first whitespace character, which is dropped (git-annex's
/// `splitWord`).
fn split_word(s: &str) -> (&str, &str) {
    match s.char_indices().find(|(_, c)| is_space(*c)) {
        Some((i, c)) => (&s[..i], &s[i + c.len_utf8()..]),
        None => (s, ""),
    }
}

fn p0<T>(v: T, rest: &str) -> Option<T> {
    rest.is_empty().then_some(v)
}

fn key(s: &str) -> Option<Key> {
    Key::parse(s).ok()
}

fn two(rest: &str) -> (&str, &str) {
    split_word(rest)
}

fn three(rest: &str) -> (&str, &str, &str) {
    let (a, r) = split_word(rest);
    let (b, c) = split_word(r);
    (a, b, c)
}

/// The number at the start of `s`, as Haskell's `reads` finds it (what
/// follows is ignored, as git-annex's `readish` ignores it): optional
/// whitespace, an optional `-`, digits.
fn readish_int(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let n: i64 = digits[..end].parse().ok()?;
    Some(if neg { -n } else { n })
}

/// A floating point number at the start of `s` (`readish` of a Float):
/// digits, an optional fraction and exponent.
fn readish_float(s: &str) -> Option<f64> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == int_start {
        return None;
    }
    let mut end = i;
    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        end = i;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            end = j;
        }
    }
    t[..end].parse().ok()
}

fn url_size(s: &str) -> Option<UrlSize> {
    if s == "UNKNOWN" {
        return Some(None);
    }
    let n = readish_int(s)?;
    Some(u64::try_from(n).ok())
}

fn words(s: &str) -> Vec<String> {
    s.split(is_space)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Response {
    /// Parses a reply of the remote, as git-annex does.
    pub fn parse(line: &str) -> Option<Response> {
        use Response as R;
        let (cmd, rest) = split_word(line);
        let s = |x: &str| x.to_owned();
        Some(match cmd {
            "EXTENSIONS" => R::Extensions(words(rest)),
            "PREPARE-SUCCESS" => p0(R::PrepareSuccess, rest)?,
            "PREPARE-FAILURE" => R::PrepareFailure(s(rest)),
            "TRANSFER-SUCCESS" => {
                let (d, k) = two(rest);
                R::TransferSuccess(Direction::parse(d)?, key(k)?)
            }
            "TRANSFER-FAILURE" => {
                let (d, k, m) = three(rest);
                R::TransferFailure(Direction::parse(d)?, key(k)?, s(m))
            }
            "TRANSFER-RETRIEVE-URL" => {
                let (k, u) = two(rest);
                R::TransferRetrieveUrl(key(k)?, s(u))
            }
            "CHECKPRESENT-SUCCESS" => R::CheckPresentSuccess(key(rest)?),
            "CHECKPRESENT-FAILURE" => R::CheckPresentFailure(key(rest)?),
            "CHECKPRESENT-UNKNOWN" => {
                let (k, m) = two(rest);
                R::CheckPresentUnknown(key(k)?, s(m))
            }
            "CHECKPRESENT-URL" => {
                let (k, u) = two(rest);
                R::CheckPresentUrl(key(k)?, s(u))
            }
            "REMOVE-SUCCESS" => R::RemoveSuccess(key(rest)?),
            "REMOVE-FAILURE" => {
                let (k, m) = two(rest);
                R::RemoveFailure(key(k)?, s(m))
            }
            "COST" => R::Cost(readish_float(rest)?),
            "AVAILABILITY" => R::Availability(match rest {
                "GLOBAL" => Availability::Global,
                "LOCAL" => Availability::Local,
                "UNAVAILABLE" => Availability::Unavailable,
                _ => return None,
            }),
            "ORDERED" => p0(R::Ordered, rest)?,
            "UNORDERED" => p0(R::Unordered, rest)?,
            "INITREMOTE-SUCCESS" => p0(R::InitRemoteSuccess, rest)?,
            "INITREMOTE-FAILURE" => R::InitRemoteFailure(s(rest)),
            "CLAIMURL-SUCCESS" => p0(R::ClaimUrlSuccess, rest)?,
            "CLAIMURL-FAILURE" => p0(R::ClaimUrlFailure, rest)?,
            "CHECKURL-CONTENTS" => {
                let (sz, f) = two(rest);
                R::CheckUrlContents(url_size(sz)?, s(f))
            }
            "CHECKURL-MULTI" => {
                let w = words(rest);
                R::CheckUrlMulti(
                    w.chunks_exact(3)
                        .map(|t| (t[0].clone(), url_size(&t[1]).flatten(), t[2].clone()))
                        .collect(),
                )
            }
            "CHECKURL-FAILURE" => R::CheckUrlFailure(s(rest)),
            "WHEREIS-SUCCESS" => R::WhereisSuccess(s(rest)),
            "WHEREIS-FAILURE" => p0(R::WhereisFailure, rest)?,
            "CONFIG" => {
                let (n, d) = two(rest);
                R::Config(s(n), s(d))
            }
            "CONFIGEND" => p0(R::ConfigEnd, rest)?,
            "INFOFIELD" => R::InfoField(s(rest)),
            "INFOVALUE" => R::InfoValue(s(rest)),
            "INFOEND" => p0(R::InfoEnd, rest)?,
            "EXPORTSUPPORTED-SUCCESS" => p0(R::ExportSupportedSuccess, rest)?,
            "EXPORTSUPPORTED-FAILURE" => p0(R::ExportSupportedFailure, rest)?,
            "REMOVEEXPORTDIRECTORY-SUCCESS" => p0(R::RemoveExportDirectorySuccess, rest)?,
            "REMOVEEXPORTDIRECTORY-FAILURE" => p0(R::RemoveExportDirectoryFailure, rest)?,
            "RENAMEEXPORT-SUCCESS" => R::RenameExportSuccess(key(rest)?),
            "RENAMEEXPORT-FAILURE" => R::RenameExportFailure(key(rest)?),
            "DELEGATE" => R::Delegate(words(rest)),
            "UNSUPPORTED-REQUEST" => p0(R::UnsupportedRequest, rest)?,
            _ => return None,
        })
    }
}

impl RemoteRequest {
    /// Parses a request of the remote, as git-annex does.
    pub fn parse(line: &str) -> Option<RemoteRequest> {
        use RemoteRequest as Q;
        let (cmd, rest) = split_word(line);
        let s = |x: &str| x.to_owned();
        Some(match cmd {
            "VERSION" => Q::Version(readish_int(rest)?),
            "PROGRESS" => Q::Progress(readish_int(rest)?),
            "DIRHASH" => Q::DirHash(key(rest)?),
            "DIRHASH-LOWER" => Q::DirHashLower(key(rest)?),
            "SETCONFIG" => {
                let (a, b) = two(rest);
                Q::SetConfig(s(a), s(b))
            }
            "GETCONFIG" => Q::GetConfig(s(rest)),
            "SETCREDS" => {
                let (a, b, c) = three(rest);
                Q::SetCreds(s(a), s(b), s(c))
            }
            "GETCREDS" => Q::GetCreds(s(rest)),
            "GETUUID" => p0(Q::GetUuid, rest)?,
            "GETGITDIR" => p0(Q::GetGitDir, rest)?,
            "GETGITREMOTENAME" => p0(Q::GetGitRemoteName, rest)?,
            "SETWANTED" => Q::SetWanted(s(rest)),
            "GETWANTED" => p0(Q::GetWanted, rest)?,
            "SETSTATE" => {
                let (k, v) = two(rest);
                Q::SetState(key(k)?, s(v))
            }
            "GETSTATE" => Q::GetState(key(rest)?),
            "SETURLPRESENT" => {
                let (k, u) = two(rest);
                Q::SetUrlPresent(key(k)?, s(u))
            }
            "SETURLMISSING" => {
                let (k, u) = two(rest);
                Q::SetUrlMissing(key(k)?, s(u))
            }
            "SETURIPRESENT" => {
                let (k, u) = two(rest);
                Q::SetUriPresent(key(k)?, uri(u)?)
            }
            "SETURIMISSING" => {
                let (k, u) = two(rest);
                Q::SetUriMissing(key(k)?, uri(u)?)
            }
            "GETURLS" => {
                let (k, p) = two(rest);
                Q::GetUrls(key(k)?, s(p))
            }
            "DEBUG" => Q::Debug(s(rest)),
            "INFO" => Q::Info(s(rest)),
            _ => return None,
        })
    }
}

/// A URI as git-annex's parser takes it: a scheme (a letter, then
/// letters, digits, `+`, `-` or `.`), a colon, and no whitespace.
fn uri(s: &str) -> Option<String> {
    let (scheme, _) = s.split_once(':')?;
    let mut cs = scheme.chars();
    let first_ok = cs.next().is_some_and(|c| c.is_ascii_alphabetic());
    let ok = first_ok
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !s.contains(|c: char| c.is_whitespace());
    ok.then(|| s.to_owned())
}

impl Incoming {
    /// Parses any line of the remote: a reply, else a request of its own,
    /// else ERROR; `None` when it is none of them ("unable to parse").
    pub fn parse(line: &str) -> Option<Incoming> {
        if let Some(r) = Response::parse(line) {
            return Some(Incoming::Response(r));
        }
        if let Some(q) = RemoteRequest::parse(line) {
            return Some(Incoming::Request(q));
        }
        match split_word(line) {
            ("ERROR", msg) => Some(Incoming::Error(msg.to_owned())),
            _ => None,
        }
    }
}

/// A line under the ASYNC extension: `J n message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged<'a> {
    /// The job number.
    pub job: u64,
    /// The message.
    pub message: &'a str,
}

impl<'a> Tagged<'a> {
    /// Parses `J n message` (the job number a plain decimal number).
    pub fn parse(line: &'a str) -> Option<Tagged<'a>> {
        let (cmd, rest) = split_word(line);
        if cmd != "J" {
            return None;
        }
        let (n, message) = split_word(rest);
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Tagged {
            job: n.parse().ok()?,
            message,
        })
    }
}

impl fmt::Display for Tagged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "J {} {}", self.job, self.message)
    }
}

/// The message git-annex gives for a failure the remote gave no reason
/// for (`TRANSFER failed with no reason given`).
pub fn failure_message(request: &str, message: &str) -> String {
    if message.is_empty() {
        format!("{request} failed with no reason given")
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

    fn k() -> Key {
        Key::parse(K).unwrap()
    }

    #[test]
    fn requests_are_written_as_git_annex_writes_them() {
        let ext = Request::Extensions(EXTENSIONS.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            ext.to_line().unwrap(),
            "EXTENSIONS INFO GETGITREMOTENAME UNAVAILABLERESPONSE ASYNC"
        );
        let t = Request::Transfer(Direction::Store, k(), "/tmp/a file".into());
        assert_eq!(
            t.to_line().unwrap(),
            format!("TRANSFER STORE {K} /tmp/a file")
        );
        assert_eq!(
            Request::RenameExport(k(), "dir/new name".into())
                .to_line()
                .unwrap(),
            format!("RENAMEEXPORT {K} dir/new name")
        );
        assert_eq!(
            Request::Export("".into()).to_line().unwrap(),
            "EXPORT ",
            "an empty parameter keeps its space"
        );
        assert!(Request::Export("a\nTRANSFER".into()).to_line().is_err());
        assert_eq!(Reply::Value(String::new()).to_lines().unwrap(), ["VALUE "]);
        assert_eq!(
            Reply::Creds(String::new(), String::new())
                .to_lines()
                .unwrap(),
            ["CREDS  "]
        );
        assert_eq!(
            Reply::Values(vec!["http://a b".into(), String::new()])
                .to_lines()
                .unwrap(),
            ["VALUE http://a b", "VALUE "]
        );
        assert!(Reply::Value("x\ry".into()).to_lines().is_err());
        assert!(!Request::ExportSupported.needs_prepare());
        assert!(!Request::ListConfigs.needs_prepare());
        assert!(Request::CheckPresent(k()).needs_prepare());
    }

    #[test]
    fn replies_parse_with_exact_parameter_counts() {
        use Response as R;
        assert_eq!(R::parse("PREPARE-SUCCESS"), Some(R::PrepareSuccess));
        // One separator is dropped: a trailing space leaves no parameter.
        assert_eq!(R::parse("PREPARE-SUCCESS "), Some(R::PrepareSuccess));
        assert_eq!(R::parse("PREPARE-SUCCESS\r"), Some(R::PrepareSuccess));
        assert_eq!(R::parse("PREPARE-SUCCESS  "), None);
        assert_eq!(R::parse("PREPARE-SUCCESS x"), None);
        assert_eq!(
            R::parse(&format!("TRANSFER-FAILURE STORE {K}")),
            Some(R::TransferFailure(Direction::Store, k(), String::new()))
        );
        assert_eq!(
            R::parse(&format!("TRANSFER-FAILURE RETRIEVE {K} disk  full ")),
            Some(R::TransferFailure(
                Direction::Retrieve,
                k(),
                "disk  full ".into()
            ))
        );
        assert_eq!(R::parse(&format!("TRANSFER-SUCCESS SEND {K}")), None);
        assert_eq!(R::parse(&format!("CHECKPRESENT-SUCCESS {K} extra")), None);
        assert_eq!(
            R::parse(&format!("CHECKPRESENT-UNKNOWN {K} not mounted")),
            Some(R::CheckPresentUnknown(k(), "not mounted".into()))
        );
        assert_eq!(R::parse("COST 150"), Some(R::Cost(150.0)));
        assert_eq!(R::parse("COST 12.5abc"), Some(R::Cost(12.5)));
        assert_eq!(R::parse("COST x"), None);
        assert_eq!(
            R::parse("AVAILABILITY UNAVAILABLE"),
            Some(R::Availability(Availability::Unavailable))
        );
        assert_eq!(R::parse("AVAILABILITY local"), None);
        assert_eq!(
            R::parse("EXTENSIONS INFO  ASYNC"),
            Some(R::Extensions(vec!["INFO".into(), "ASYNC".into()]))
        );
        assert_eq!(R::parse("EXTENSIONS"), Some(R::Extensions(vec![])));
        assert_eq!(
            R::parse("CONFIG directory store data here"),
            Some(R::Config("directory".into(), "store data here".into()))
        );
        assert_eq!(
            R::parse("CHECKURL-MULTI u1 10 f1 u2 UNKNOWN f2 u3"),
            Some(R::CheckUrlMulti(vec![
                ("u1".into(), Some(10), "f1".into()),
                ("u2".into(), None, "f2".into())
            ]))
        );
        assert_eq!(R::parse("UNSUPPORTED-REQUEST"), Some(R::UnsupportedRequest));
        assert_eq!(R::parse(""), None);
        assert_eq!(R::parse(" PREPARE-SUCCESS"), None);
        assert_eq!(R::parse("HELLO"), None);
    }

    #[test]
    fn remote_requests_and_errors_parse() {
        use RemoteRequest as Q;
        assert_eq!(
            Incoming::parse("VERSION 2"),
            Some(Incoming::Request(Q::Version(2)))
        );
        assert_eq!(
            Incoming::parse("PROGRESS 10240"),
            Some(Incoming::Request(Q::Progress(10240)))
        );
        assert_eq!(
            Incoming::parse("SETCREDS mycreds user pass word"),
            Some(Incoming::Request(Q::SetCreds(
                "mycreds".into(),
                "user".into(),
                "pass word".into()
            )))
        );
        assert_eq!(
            Incoming::parse(&format!("SETSTATE {K} some state")),
            Some(Incoming::Request(Q::SetState(k(), "some state".into())))
        );
        assert_eq!(
            Incoming::parse(&format!("SETURIPRESENT {K} ipfs:Qm1")),
            Some(Incoming::Request(Q::SetUriPresent(k(), "ipfs:Qm1".into())))
        );
        assert_eq!(
            Incoming::parse(&format!("SETURIPRESENT {K} no scheme")),
            None
        );
        assert_eq!(
            Incoming::parse(&format!("GETURLS {K} ")),
            Some(Incoming::Request(Q::GetUrls(k(), String::new())))
        );
        assert_eq!(
            Incoming::parse("ERROR it all went wrong"),
            Some(Incoming::Error("it all went wrong".into()))
        );
        assert_eq!(Incoming::parse("GETUUID now"), None);
        assert_eq!(Incoming::parse("DIRHASH not a key"), None);
    }

    #[test]
    fn async_lines_carry_job_numbers() {
        let t = Tagged::parse("J 12 PROGRESS 5").unwrap();
        assert_eq!(t.job, 12);
        assert_eq!(t.message, "PROGRESS 5");
        assert_eq!(t.to_string(), "J 12 PROGRESS 5");
        assert!(Tagged::parse("J x PROGRESS 5").is_none());
        assert!(Tagged::parse("J -1 PROGRESS 5").is_none());
        assert!(Tagged::parse("PROGRESS 5").is_none());
        assert_eq!(
            failure_message("TRANSFER", ""),
            "TRANSFER failed with no reason given"
        );
    }
}
