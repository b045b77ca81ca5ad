//! The messages of the git-annex P2P protocol (versions 0 to 4) and their
//! line serialisation.
//!
//! Parsing follows git-annex's rules: the first word names the message, and
//! the last parameter takes the rest of the line. Serialising joins the
//! words with single spaces, so an empty associated file shows as two
//! spaces (`PUT  KEY`), exactly as git-annex writes it.

use std::fmt;

use nom::bytes::complete::{tag, take_till, take_while1};
use nom::character::complete::digit1;
use nom::combinator::{all_consuming, map_res, opt};
use nom::IResult;
use thiserror::Error;

use crate::key::Key;
use crate::uuid::Uuid;

/// The highest protocol version this crate speaks.
pub const MAX_PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion(4);

/// A P2P protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProtocolVersion(pub u64);

impl ProtocolVersion {
    /// Version 0, spoken until VERSION is negotiated.
    pub const V0: ProtocolVersion = ProtocolVersion(0);
    /// Version 1: VALID/INVALID after DATA.
    pub const V1: ProtocolVersion = ProtocolVersion(1);
    /// Version 2: -PLUS replies and BYPASS.
    pub const V2: ProtocolVersion = ProtocolVersion(2);
    /// Version 3: REMOVE-BEFORE and GETTIMESTAMP.
    pub const V3: ProtocolVersion = ProtocolVersion(3);
    /// Version 4: DATA-PRESENT.
    pub const V4: ProtocolVersion = ProtocolVersion(4);

    /// Whether VALID or INVALID follows each DATA of content.
    pub fn has_validity(self) -> bool {
        self >= Self::V1
    }
    /// Whether SUCCESS-PLUS, FAILURE-PLUS, ALREADY-HAVE-PLUS and BYPASS may
    /// be used.
    pub fn has_plus(self) -> bool {
        self >= Self::V2
    }
    /// Whether REMOVE-BEFORE and GETTIMESTAMP may be used.
    pub fn has_remove_before(self) -> bool {
        self >= Self::V3
    }
    /// Whether DATA-PRESENT may be used.
    pub fn has_data_present(self) -> bool {
        self >= Self::V4
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A service reached with CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `git-upload-pack`: fetching from the server.
    UploadPack,
    /// `git-receive-pack`: pushing to the server.
    ReceivePack,
}

impl Service {
    /// The service's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }
}

/// An authentication token: ASCII letters and digits, compared
/// case-insensitively (git-annex lower-cases them).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct AuthToken(String);

impl AuthToken {
    /// Makes a token, lower-casing it. Returns `None` if it holds anything
    /// but ASCII letters and digits.
    pub fn new(s: &str) -> Option<AuthToken> {
        if s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Some(AuthToken(s.to_ascii_lowercase()))
        } else {
            None
        }
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(<hidden>)")
    }
}

/// The file a key belongs to, as sent in GET and PUT: for information only.
///
/// Kept in its wire form, where `%` stands for whitespace and `%%` for `%`,
/// so that a message serialises back to the bytes it was parsed from.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct AssociatedFile(Option<Box<[u8]>>);

impl AssociatedFile {
    /// No associated file (the empty string on the wire).
    pub fn none() -> AssociatedFile {
        AssociatedFile(None)
    }

    /// Escapes a relative path for the wire. An empty path is no file.
    pub fn from_path(path: &str) -> AssociatedFile {
        if path.is_empty() {
            return AssociatedFile(None);
        }
        let mut out = Vec::with_capacity(path.len());
        for c in path.chars() {
            match c {
                '%' => out.extend_from_slice(b"%%"),
                c if is_haskell_space(c) => out.push(b'%'),
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        AssociatedFile(Some(out.into_boxed_slice()))
    }

    /// Accepts a wire form as git-annex does: the decoded path must be
    /// relative. Returns `None` for an absolute path.
    pub fn from_wire(wire: &[u8]) -> Option<AssociatedFile> {
        if wire.is_empty() {
            return Some(AssociatedFile(None));
        }
        if wire[0] == b'/' {
            return None;
        }
        Some(AssociatedFile(Some(wire.into())))
    }

    /// The wire form (empty for no file).
    pub fn wire(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(b"")
    }

    /// Whether there is no associated file.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// The path as git-annex decodes it for display: `%%` is `%`, a lone `%`
    /// (whitespace on the sender's side) and control characters become `_`.
    pub fn display_path(&self) -> Option<String> {
        let wire = self.0.as_deref()?;
        let s = String::from_utf8_lossy(wire);
        let mut out = String::with_capacity(s.len());
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '%' if chars.peek() == Some(&'%') => {
                    chars.next();
                    out.push('%');
                }
                '%' => out.push('_'),
                c if c.is_control() => out.push('_'),
                c => out.push(c),
            }
        }
        Some(out)
    }
}

impl fmt::Debug for AssociatedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AssociatedFile({:?})",
            String::from_utf8_lossy(self.wire())
        )
    }
}

/// Whitespace as Haskell's `isSpace` sees it.
fn is_haskell_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' | '\u{a0}')
        || (c as u32 > 0xff && c.is_whitespace() && !matches!(c, '\u{2028}' | '\u{2029}'))
}

/// One message of the P2P protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `AUTH UUID TOKEN`: the client authenticates.
    Auth(Uuid, AuthToken),
    /// `AUTH-SUCCESS UUID`: the server's UUID, after authentication.
    AuthSuccess(Uuid),
    /// `AUTH-FAILURE`.
    AuthFailure,
    /// `VERSION N`: offered by the client, answered by the server.
    Version(ProtocolVersion),
    /// `BYPASS UUID...`: cluster gateways to avoid (v2+).
    Bypass(Vec<Uuid>),
    /// `CONNECT SERVICE`.
    Connect(Service),
    /// `CONNECTDONE EXITCODE`.
    ConnectDone(i32),
    /// `NOTIFYCHANGE`.
    NotifyChange,
    /// `CHANGED REF...`.
    Changed(Vec<String>),
    /// `CHECKPRESENT KEY`.
    CheckPresent(Key),
    /// `LOCKCONTENT KEY`.
    LockContent(Key),
    /// `UNLOCKCONTENT`.
    UnlockContent,
    /// `REMOVE KEY`.
    Remove(Key),
    /// `REMOVE-BEFORE TIMESTAMP KEY` (v3+).
    RemoveBefore(u64, Key),
    /// `GETTIMESTAMP` (v3+).
    GetTimestamp,
    /// `TIMESTAMP N`: the server's monotonic clock, in seconds.
    Timestamp(u64),
    /// `GET OFFSET FILE KEY`.
    Get(u64, AssociatedFile, Key),
    /// `PUT FILE KEY`.
    Put(AssociatedFile, Key),
    /// `PUT-FROM OFFSET`.
    PutFrom(u64),
    /// `ALREADY-HAVE`.
    AlreadyHave,
    /// `ALREADY-HAVE-PLUS UUID...` (v2+).
    AlreadyHavePlus(Vec<Uuid>),
    /// `SUCCESS`.
    Success,
    /// `SUCCESS-PLUS UUID...` (v2+).
    SuccessPlus(Vec<Uuid>),
    /// `FAILURE`.
    Failure,
    /// `FAILURE-PLUS UUID...` (v2+).
    FailurePlus(Vec<Uuid>),
    /// `DATA LEN`, followed by LEN bytes.
    Data(u64),
    /// `DATA-PRESENT` (v4+).
    DataPresent,
    /// `VALID` (v1+).
    Valid,
    /// `INVALID` (v1+).
    Invalid,
    /// `ERROR TEXT`.
    Error(String),
}

/// Why a line is not a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The first word names no message.
    #[error("unknown command")]
    UnknownCommand,
    /// The message's parameters are missing or malformed.
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// The line holds a newline, so it is more than one line.
    #[error("a protocol line holds a newline")]
    Newline,
}

type Res<'a, T> = IResult<&'a [u8], T>;

fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// Splits off the first word and one separator after it, as git-annex's
/// splitWord does.
fn split_word(input: &[u8]) -> (&[u8], &[u8]) {
    let r: Res<'_, &[u8]> = take_till(is_sep)(input);
    let (rest, word) = r.unwrap_or((input, b""));
    (word, rest.get(1..).unwrap_or(b""))
}

fn decimal(input: &[u8]) -> Res<'_, u64> {
    map_res(digit1, |d: &[u8]| {
        // digit1 guarantees ASCII digits.
        std::str::from_utf8(d)
            .map_err(|_| ())
            .and_then(|s| s.parse::<u64>().map_err(|_| ()))
    })(input)
}

fn whole<'a, T>(input: &'a [u8], p: impl FnMut(&'a [u8]) -> Res<'a, T>) -> Option<T> {
    all_consuming(p)(input).ok().map(|(_, v)| v)
}

fn signed(input: &[u8]) -> Res<'_, i32> {
    let (rest, neg) = opt(tag(b"-"))(input)?;
    let (rest, n) = decimal(rest)?;
    let v = i64::try_from(n).unwrap_or(i64::MAX);
    let v = if neg.is_some() { -v } else { v };
    match i32::try_from(v) {
        Ok(v) => Ok((rest, v)),
        Err(_) => Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::TooLarge,
        ))),
    }
}

fn key(s: &[u8]) -> Option<Key> {
    Key::parse_bytes(s).ok()
}

fn uuid(s: &[u8]) -> Option<Uuid> {
    Uuid::parse(std::str::from_utf8(s).ok()?).ok()
}

fn uuid_list(s: &[u8]) -> Option<Vec<Uuid>> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let r: Res<'_, &[u8]> = take_while1(is_sep)(rest);
        if let Ok((after, _)) = r {
            rest = after;
        }
        if rest.is_empty() {
            return Some(out);
        }
        let r: Res<'_, &[u8]> = take_till(is_sep)(rest);
        let (after, word) = r.ok()?;
        out.push(uuid(word)?);
        rest = after;
    }
}

fn words(s: &[u8]) -> Option<Vec<String>> {
    std::str::from_utf8(s)
        .ok()
        .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect())
}

impl Message {
    /// Parses one line, given without its newline. Trailing `\r`s are
    /// removed, as git-annex does; a line that holds a newline is refused.
    pub fn parse(line: &[u8]) -> Result<Message, ParseError> {
        if line.contains(&b'\n') {
            return Err(ParseError::Newline);
        }
        let mut line = line;
        while let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        let (cmd, rest) = split_word(line);
        let bad = ParseError::Malformed;
        let none = |name: &'static str, m: Message| {
            if rest.is_empty() {
                Ok(m)
            } else {
                Err(bad(name))
            }
        };
        match cmd {
            b"AUTH" => {
                let (u, t) = split_word(rest);
                let t = std::str::from_utf8(t).ok().and_then(AuthToken::new);
                match (uuid(u), t) {
                    (Some(u), Some(t)) => Ok(Message::Auth(u, t)),
                    _ => Err(bad("AUTH")),
                }
            }
            b"AUTH-SUCCESS" => uuid(rest)
                .map(Message::AuthSuccess)
                .ok_or(bad("AUTH-SUCCESS")),
            b"AUTH-FAILURE" => none("AUTH-FAILURE", Message::AuthFailure),
            b"VERSION" => whole(rest, decimal)
                .map(|v| Message::Version(ProtocolVersion(v)))
                .ok_or(bad("VERSION")),
            b"BYPASS" => uuid_list(rest).map(Message::Bypass).ok_or(bad("BYPASS")),
            b"CONNECT" => match rest {
                b"git-upload-pack" => Ok(Message::Connect(Service::UploadPack)),
                b"git-receive-pack" => Ok(Message::Connect(Service::ReceivePack)),
                _ => Err(bad("CONNECT")),
            },
            b"CONNECTDONE" => whole(rest, signed)
                .map(Message::ConnectDone)
                .ok_or(bad("CONNECTDONE")),
            b"NOTIFYCHANGE" => none("NOTIFYCHANGE", Message::NotifyChange),
            b"CHANGED" => words(rest).map(Message::Changed).ok_or(bad("CHANGED")),
            b"CHECKPRESENT" => key(rest)
                .map(Message::CheckPresent)
                .ok_or(bad("CHECKPRESENT")),
            b"LOCKCONTENT" => key(rest)
                .map(Message::LockContent)
                .ok_or(bad("LOCKCONTENT")),
            b"UNLOCKCONTENT" => none("UNLOCKCONTENT", Message::UnlockContent),
            b"REMOVE" => key(rest).map(Message::Remove).ok_or(bad("REMOVE")),
            b"REMOVE-BEFORE" => {
                let (ts, k) = split_word(rest);
                match (whole(ts, decimal), key(k)) {
                    (Some(ts), Some(k)) => Ok(Message::RemoveBefore(ts, k)),
                    _ => Err(bad("REMOVE-BEFORE")),
                }
            }
            b"GETTIMESTAMP" => none("GETTIMESTAMP", Message::GetTimestamp),
            b"TIMESTAMP" => whole(rest, decimal)
                .map(Message::Timestamp)
                .ok_or(bad("TIMESTAMP")),
            b"GET" => {
                let (off, rest) = split_word(rest);
                let (af, k) = split_word(rest);
                match (whole(off, decimal), AssociatedFile::from_wire(af), key(k)) {
                    (Some(off), Some(af), Some(k)) => Ok(Message::Get(off, af, k)),
                    _ => Err(bad("GET")),
                }
            }
            b"PUT" => {
                let (af, k) = split_word(rest);
                match (AssociatedFile::from_wire(af), key(k)) {
                    (Some(af), Some(k)) => Ok(Message::Put(af, k)),
                    _ => Err(bad("PUT")),
                }
            }
            b"PUT-FROM" => whole(rest, decimal)
                .map(Message::PutFrom)
                .ok_or(bad("PUT-FROM")),
            b"ALREADY-HAVE" => none("ALREADY-HAVE", Message::AlreadyHave),
            b"ALREADY-HAVE-PLUS" => uuid_list(rest)
                .map(Message::AlreadyHavePlus)
                .ok_or(bad("ALREADY-HAVE-PLUS")),
            b"SUCCESS" => none("SUCCESS", Message::Success),
            b"SUCCESS-PLUS" => uuid_list(rest)
                .map(Message::SuccessPlus)
                .ok_or(bad("SUCCESS-PLUS")),
            b"FAILURE" => none("FAILURE", Message::Failure),
            b"FAILURE-PLUS" => uuid_list(rest)
                .map(Message::FailurePlus)
                .ok_or(bad("FAILURE-PLUS")),
            b"DATA" => whole(rest, decimal).map(Message::Data).ok_or(bad("DATA")),
            b"DATA-PRESENT" => none("DATA-PRESENT", Message::DataPresent),
            b"VALID" => none("VALID", Message::Valid),
            b"INVALID" => none("INVALID", Message::Invalid),
            b"ERROR" => Ok(Message::Error(String::from_utf8_lossy(rest).into_owned())),
            _ => Err(ParseError::UnknownCommand),
        }
    }

    /// The message's name, as the first word of its line.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Auth(..) => "AUTH",
            Message::AuthSuccess(_) => "AUTH-SUCCESS",
            Message::AuthFailure => "AUTH-FAILURE",
            Message::Version(_) => "VERSION",
            Message::Bypass(_) => "BYPASS",
            Message::Connect(_) => "CONNECT",
            Message::ConnectDone(_) => "CONNECTDONE",
            Message::NotifyChange => "NOTIFYCHANGE",
            Message::Changed(_) => "CHANGED",
            Message::CheckPresent(_) => "CHECKPRESENT",
            Message::LockContent(_) => "LOCKCONTENT",
            Message::UnlockContent => "UNLOCKCONTENT",
            Message::Remove(_) => "REMOVE",
            Message::RemoveBefore(..) => "REMOVE-BEFORE",
            Message::GetTimestamp => "GETTIMESTAMP",
            Message::Timestamp(_) => "TIMESTAMP",
            Message::Get(..) => "GET",
            Message::Put(..) => "PUT",
            Message::PutFrom(_) => "PUT-FROM",
            Message::AlreadyHave => "ALREADY-HAVE",
            Message::AlreadyHavePlus(_) => "ALREADY-HAVE-PLUS",
            Message::Success => "SUCCESS",
            Message::SuccessPlus(_) => "SUCCESS-PLUS",
            Message::Failure => "FAILURE",
            Message::FailurePlus(_) => "FAILURE-PLUS",
            Message::Data(_) => "DATA",
            Message::DataPresent => "DATA-PRESENT",
            Message::Valid => "VALID",
            Message::Invalid => "INVALID",
            Message::Error(_) => "ERROR",
        }
    }

    /// Appends the message's line, without a newline, to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name().as_bytes());
        let word = |out: &mut Vec<u8>, w: &[u8]| {
            out.push(b' ');
            out.extend_from_slice(w);
        };
        let num = |out: &mut Vec<u8>, n: u64| {
            let buf = itoa_buf(n);
            word(out, buf.as_bytes());
        };
        match self {
            Message::Auth(u, t) => {
                word(out, u.as_str().as_bytes());
                word(out, t.as_str().as_bytes());
            }
            Message::AuthSuccess(u) => word(out, u.as_str().as_bytes()),
            Message::Version(v) => num(out, v.0),
            Message::Bypass(us)
            | Message::AlreadyHavePlus(us)
            | Message::SuccessPlus(us)
            | Message::FailurePlus(us) => {
                for u in us {
                    word(out, u.as_str().as_bytes());
                }
            }
            Message::Connect(s) => word(out, s.as_str().as_bytes()),
            Message::ConnectDone(c) => word(out, c.to_string().as_bytes()),
            Message::Changed(refs) => {
                for r in refs {
                    word(out, r.as_bytes());
                }
            }
            Message::CheckPresent(k) | Message::LockContent(k) | Message::Remove(k) => {
                word(out, k.as_bytes())
            }
            Message::RemoveBefore(ts, k) => {
                num(out, *ts);
                word(out, k.as_bytes());
            }
            Message::Timestamp(ts) => num(out, *ts),
            Message::Get(off, af, k) => {
                num(out, *off);
                word(out, af.wire());
                word(out, k.as_bytes());
            }
            Message::Put(af, k) => {
                word(out, af.wire());
                word(out, k.as_bytes());
            }
            Message::PutFrom(off) => num(out, *off),
            Message::Data(len) => num(out, *len),
            // A newline would end the line early; it becomes a space.
            Message::Error(e) => {
                out.push(b' ');
                out.extend(e.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
            }
            Message::AuthFailure
            | Message::NotifyChange
            | Message::UnlockContent
            | Message::GetTimestamp
            | Message::AlreadyHave
            | Message::Success
            | Message::Failure
            | Message::DataPresent
            | Message::Valid
            | Message::Invalid => {}
        }
    }

    /// The message's line, without a newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        self.write_line(&mut v);
        v
    }

    /// The message as git-annex's `--debug` output shows it: an AUTH token
    /// is hidden.
    pub fn to_debug_line(&self) -> String {
        match self {
            Message::Auth(u, _) => format!("AUTH {u} <AUTHTOKEN>"),
            m => String::from_utf8_lossy(&m.to_line()).into_owned(),
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_line()))
    }
}

/// A small stack buffer holding a decimal number.
struct ItoaBuf {
    buf: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut n: u64) -> ItoaBuf {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    ItoaBuf { buf, start: i }
}

/// Parses `s` as a single message and checks that it serialises back to
/// the same bytes; for tests and fuzzing.
#[doc(hidden)]
pub fn check_round_trip(line: &[u8]) -> Option<Message> {
    let m = Message::parse(line).ok()?;
    // Whatever parsed must serialise to something that parses to the same
    // message.
    let again = Message::parse(&m.to_line()).expect("serialised message parses");
    assert_eq!(again, m, "round trip changed the message");
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(line: &str) -> Message {
        let m = Message::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(String::from_utf8(m.to_line()).unwrap(), line);
        m
    }

    const K: &str =
        "SHA256E-s3--2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae.txt";
    const U: &str = "6e5a0a5b-7e62-4c59-b0b8-5b4e2b1b8d16";

    #[test]
    fn every_message_round_trips() {
        for line in [
            format!("AUTH {U} abc123"),
            format!("AUTH-SUCCESS {U}"),
            "AUTH-FAILURE".into(),
            "VERSION 4".into(),
            format!("BYPASS {U} {U}"),
            "BYPASS".into(),
            "CONNECT git-upload-pack".into(),
            "CONNECT git-receive-pack".into(),
            "CONNECTDONE 0".into(),
            "CONNECTDONE 128".into(),
            "CONNECTDONE -1".into(),
            "NOTIFYCHANGE".into(),
            "CHANGED refs/heads/master refs/heads/git-annex".into(),
            format!("CHECKPRESENT {K}"),
            format!("LOCKCONTENT {K}"),
            "UNLOCKCONTENT".into(),
            format!("REMOVE {K}"),
            format!("REMOVE-BEFORE 1234 {K}"),
            "GETTIMESTAMP".into(),
            "TIMESTAMP 98765".into(),
            format!("GET 0 foo%bar%%.txt {K}"),
            format!("GET 10  {K}"),
            format!("PUT dir/file {K}"),
            format!("PUT  {K}"),
            "PUT-FROM 0".into(),
            "ALREADY-HAVE".into(),
            format!("ALREADY-HAVE-PLUS {U}"),
            "SUCCESS".into(),
            format!("SUCCESS-PLUS {U} {U}"),
            "FAILURE".into(),
            format!("FAILURE-PLUS {U}"),
            "DATA 1048576".into(),
            "DATA-PRESENT".into(),
            "VALID".into(),
            "INVALID".into(),
            "ERROR this repository is read-only; write access denied".into(),
        ] {
            rt(&line);
        }
    }

    #[test]
    fn newlines_and_carriage_returns() {
        assert_eq!(Message::parse(b"ERROR a\nb"), Err(ParseError::Newline));
        assert_eq!(Message::parse(b"SUCCESS\n"), Err(ParseError::Newline));
        assert_eq!(
            Message::parse(b"ERROR x\r\r").unwrap(),
            Message::Error("x".into())
        );
        assert_eq!(Message::parse(b"SUCCESS\r").unwrap(), Message::Success);
        assert_eq!(Message::Error("a\nb".into()).to_line(), b"ERROR a b");
    }

    #[test]
    fn associated_file_escaping() {
        let af = AssociatedFile::from_path("my file 100%.txt");
        assert_eq!(af.wire(), b"my%file%100%%.txt");
        assert_eq!(af.display_path().unwrap(), "my_file_100%.txt");
        assert!(AssociatedFile::from_wire(b"/etc/passwd").is_none());
        let m = Message::parse(format!("PUT /abs {K}").as_bytes());
        assert_eq!(m, Err(ParseError::Malformed("PUT")));
    }

    #[test]
    fn malformed_lines_are_refused() {
        for line in [
            "",
            "FOO",
            "SUCCESS x",
            "VERSION",
            "VERSION x",
            "VERSION 1 2",
            "DATA -1",
            "DATA 99999999999999999999999",
            "CHECKPRESENT",
            "CHECKPRESENT a b",
            "GET 0",
            "PUT-FROM",
            "CONNECT git-foo",
            "AUTH u bad-token",
            "CONNECTDONE 99999999999",
        ] {
            assert!(Message::parse(line.as_bytes()).is_err(), "{line:?}");
        }
        assert_eq!(Message::parse(b"FOO"), Err(ParseError::UnknownCommand));
    }

    #[test]
    fn lenient_where_git_annex_is() {
        assert_eq!(Message::parse(b"SUCCESS\r").unwrap(), Message::Success);
        assert_eq!(Message::parse(b"SUCCESS ").unwrap(), Message::Success);
        assert_eq!(
            Message::parse(b"SUCCESS-PLUS").unwrap(),
            Message::SuccessPlus(vec![])
        );
        assert_eq!(
            Message::parse(b"AUTH u ABC").unwrap(),
            Message::Auth(Uuid::parse("u").unwrap(), AuthToken::new("abc").unwrap())
        );
        assert_eq!(
            Message::parse(b"ERROR").unwrap(),
            Message::Error(String::new())
        );
    }
}
