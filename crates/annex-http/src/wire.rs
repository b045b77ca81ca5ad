//! The p2phttp wire format shared by the server and the client: API
//! versions, request paths, query parameters, the `[base64url]` wrapping of
//! values, and the JSON bodies of answers.
//!
//! The API is git-annex's "P2P protocol over HTTP": every request goes to
//! `/git-annex/SERVERUUID/VERSION/ENDPOINT?key=...&clientuuid=...`, except
//! the unversioned `GET /git-annex/SERVERUUID/key/KEY`.

use std::fmt;

use annex_protocol::{AssociatedFile, Key, Uuid};
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The first segment of every request path.
pub const PATH_PREFIX: &str = "git-annex";

/// The header giving how many bytes of content a body holds.
pub const DATA_LENGTH_HEADER: &str = "x-git-annex-data-length";

/// The port p2phttp listens on when none is given.
pub const DEFAULT_PORT: u16 = 9417;

/// The realm of HTTP basic authentication.
pub const AUTH_REALM: &str = "git-annex";

/// A malformed request or answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// A `[...]` value is not valid base64url.
    #[error("unable to base64 decode [] wrapped value")]
    Base64,
    /// A value is not percent-encoded UTF-8.
    #[error("invalid percent-encoding in {0}")]
    Percent(&'static str),
    /// A key does not parse.
    #[error("key parse error: {0}")]
    Key(String),
    /// A UUID does not parse.
    #[error("invalid UUID in {0}")]
    Uuid(&'static str),
    /// A number does not parse.
    #[error("{0} parse error")]
    Number(&'static str),
    /// A required parameter is missing.
    #[error("missing required parameter {0}")]
    Missing(&'static str),
    /// The path names no endpoint of the API.
    #[error("no such endpoint")]
    NoRoute,
    /// An answer's JSON is not what the API documents.
    #[error("unexpected answer: {0}")]
    Json(String),
}

/// A version of the API, matching the P2P protocol version it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    /// v0: no data-length header on GET, no plus UUIDs.
    V0,
    /// v1: data-length header on GET.
    V1,
    /// v2: plus UUIDs, bypass.
    V2,
    /// v3: remove-before, gettimestamp.
    V3,
    /// v4: data-present on put.
    V4,
}

impl ApiVersion {
    /// Every version, newest first: the order a client falls back in.
    pub const NEWEST_FIRST: [ApiVersion; 5] = [
        ApiVersion::V4,
        ApiVersion::V3,
        ApiVersion::V2,
        ApiVersion::V1,
        ApiVersion::V0,
    ];

    /// The path segment, `v0` to `v4`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V0 => "v0",
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
            ApiVersion::V3 => "v3",
            ApiVersion::V4 => "v4",
        }
    }

    /// Reads a path segment.
    pub fn parse(segment: &str) -> Option<ApiVersion> {
        Some(match segment {
            "v0" => ApiVersion::V0,
            "v1" => ApiVersion::V1,
            "v2" => ApiVersion::V2,
            "v3" => ApiVersion::V3,
            "v4" => ApiVersion::V4,
            _ => return None,
        })
    }

    /// The P2P protocol version number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Whether answers carry `plusuuids` (remove, put, putoffset).
    pub fn has_plus_uuids(self) -> bool {
        self >= ApiVersion::V2
    }

    /// Whether GET answers carry the data-length header.
    pub fn has_data_length_on_get(self) -> bool {
        self >= ApiVersion::V1
    }

    /// Whether the endpoint exists in this version.
    pub fn has_endpoint(self, endpoint: Endpoint) -> bool {
        match endpoint {
            Endpoint::RemoveBefore | Endpoint::GetTimestamp => self >= ApiVersion::V3,
            Endpoint::PutOffset => self >= ApiVersion::V1,
            _ => true,
        }
    }

    /// Whether `put` accepts `data-present`.
    pub fn has_data_present(self) -> bool {
        self >= ApiVersion::V4
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET .../key/KEY`: the content of a key.
    Key,
    /// `POST .../checkpresent`.
    CheckPresent,
    /// `POST .../remove`.
    Remove,
    /// `POST .../remove-before`.
    RemoveBefore,
    /// `POST .../gettimestamp`.
    GetTimestamp,
    /// `POST .../put`.
    Put,
    /// `POST .../putoffset`.
    PutOffset,
    /// `POST .../lockcontent`.
    LockContent,
    /// `POST .../keeplocked`.
    KeepLocked,
}

impl Endpoint {
    /// The path segment naming the endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Key => "key",
            Endpoint::CheckPresent => "checkpresent",
            Endpoint::Remove => "remove",
            Endpoint::RemoveBefore => "remove-before",
            Endpoint::GetTimestamp => "gettimestamp",
            Endpoint::Put => "put",
            Endpoint::PutOffset => "putoffset",
            Endpoint::LockContent => "lockcontent",
            Endpoint::KeepLocked => "keeplocked",
        }
    }

    /// Reads a path segment.
    pub fn parse(segment: &str) -> Option<Endpoint> {
        Some(match segment {
            "key" => Endpoint::Key,
            "checkpresent" => Endpoint::CheckPresent,
            "remove" => Endpoint::Remove,
            "remove-before" => Endpoint::RemoveBefore,
            "gettimestamp" => Endpoint::GetTimestamp,
            "put" => Endpoint::Put,
            "putoffset" => Endpoint::PutOffset,
            "lockcontent" => Endpoint::LockContent,
            "keeplocked" => Endpoint::KeepLocked,
            _ => return None,
        })
    }

    /// Whether a request of this endpoint reads the query parameter `name`
    /// (`version` None: the unversioned `key`). These are the parameters
    /// git-annex's API declares for it; a server ignores all others.
    pub fn takes_param(self, version: Option<ApiVersion>, name: &str) -> bool {
        match name {
            "clientuuid" | "bypass" => true,
            "key" => !matches!(
                self,
                Endpoint::Key | Endpoint::GetTimestamp | Endpoint::KeepLocked
            ),
            "associatedfile" | "offset" => {
                self == Endpoint::Put || (self == Endpoint::Key && version.is_some())
            }
            "timestamp" => self == Endpoint::RemoveBefore,
            "lockid" => self == Endpoint::KeepLocked,
            "data-present" => {
                self == Endpoint::Put && version.is_some_and(ApiVersion::has_data_present)
            }
            _ => false,
        }
    }

    /// Whether the endpoint is requested with GET (only `key`); all others
    /// are POST.
    pub fn is_get(self) -> bool {
        self == Endpoint::Key
    }
}

/// Wraps a value as the API does: UTF-8 text is sent as it is, anything
/// else (and text that itself looks like `[...]`) as `[base64url]`.
pub fn encode_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !(text.starts_with('[') && text.ends_with(']')) => text.to_owned(),
        _ => format!("[{}]", URL_SAFE.encode(value)),
    }
}

/// Unwraps a value: `[base64url]` is decoded (with or without padding),
/// anything else is taken as it is.
pub fn decode_value(text: &str) -> Result<Vec<u8>, WireError> {
    match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(inner) => URL_SAFE
            .decode(inner)
            .or_else(|_| URL_SAFE_NO_PAD.decode(inner))
            .map_err(|_| WireError::Base64),
        None => Ok(text.as_bytes().to_vec()),
    }
}

/// Reads a wrapped key.
pub fn decode_key(text: &str) -> Result<Key, WireError> {
    let bytes = decode_value(text)?;
    Key::parse_bytes(&bytes).map_err(|e| WireError::Key(e.to_string()))
}

/// Reads a wrapped UUID; `what` names the parameter in errors.
pub fn decode_uuid(text: &str, what: &'static str) -> Result<Uuid, WireError> {
    let bytes = decode_value(text)?;
    let s = std::str::from_utf8(&bytes).map_err(|_| WireError::Uuid(what))?;
    Uuid::parse(s).map_err(|_| WireError::Uuid(what))
}

/// Characters escaped in a path segment or query value.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a (wrapped) value for a path segment or query value.
pub fn escape(text: &str) -> String {
    utf8_percent_encode(text, ESCAPED).to_string()
}

/// Percent-decodes a path segment.
pub fn unescape(text: &str, what: &'static str) -> Result<String, WireError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| WireError::Percent(what))
}

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The repository the request is for.
    pub server_uuid: Uuid,
    /// The API version; `None` for the unversioned `key` request.
    pub version: Option<ApiVersion>,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The key in the path of a `key` request.
    pub key: Option<Key>,
}

/// The path of a request (without the query).
pub fn request_path(
    server: &Uuid,
    version: Option<ApiVersion>,
    endpoint: Endpoint,
    key: Option<&Key>,
) -> String {
    let mut path = format!(
        "/{PATH_PREFIX}/{}",
        escape(&encode_value(server.as_str().as_bytes()))
    );
    if let Some(v) = version {
        path.push('/');
        path.push_str(v.as_str());
    }
    path.push('/');
    path.push_str(endpoint.as_str());
    if let Some(key) = key {
        path.push('/');
        path.push_str(&escape(&encode_value(key.as_bytes())));
    }
    path
}

/// Reads a request path (without the query). A version the endpoint does
/// not exist in is [`WireError::NoRoute`], as the server answers 404 for
/// it.
pub fn parse_path(path: &str) -> Result<Route, WireError> {
    // A trailing slash names the same route, as in git-annex's router.
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut segments = path.strip_prefix('/').ok_or(WireError::NoRoute)?.split('/');
    if segments.next() != Some(PATH_PREFIX) {
        return Err(WireError::NoRoute);
    }
    let uuid_segment = segments.next().ok_or(WireError::NoRoute)?;
    let rest: Vec<&str> = segments.collect();
    let (version, endpoint, key_segment) = match rest.as_slice() {
        ["key", key] => (None, Endpoint::Key, Some(*key)),
        [v, "key", key] => (
            Some(ApiVersion::parse(v).ok_or(WireError::NoRoute)?),
            Endpoint::Key,
            Some(*key),
        ),
        [v, e] => {
            let version = ApiVersion::parse(v).ok_or(WireError::NoRoute)?;
            let endpoint = Endpoint::parse(e).ok_or(WireError::NoRoute)?;
            if endpoint == Endpoint::Key || !version.has_endpoint(endpoint) {
                return Err(WireError::NoRoute);
            }
            (Some(version), endpoint, None)
        }
        _ => return Err(WireError::NoRoute),
    };
    let server_uuid = decode_uuid(&unescape(uuid_segment, "serveruuid")?, "serveruuid")?;
    let key = match key_segment {
        Some(k) => Some(decode_key(&unescape(k, "key")?)?),
        None => None,
    };
    Ok(Route {
        server_uuid,
        version,
        endpoint,
        key,
    })
}

/// A request path that names a repository by its path before git-annex's
/// API path, as `/owner/repo/git-annex/UUID/v4/put`: what it names, and
/// the repository paths it may mean, most likely first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressedRoute {
    /// What the API part of the path names.
    pub route: Route,
    /// The repository's path (relative, `/`-separated, percent-decoded),
    /// and, when it ends in `/git-annex`, that path without it: a client
    /// given `annexUrl = annex+http://HOST/owner/repo/git-annex/` requests
    /// `/owner/repo/git-annex/git-annex/UUID/...`.
    pub candidates: Vec<String>,
}

/// Splits `path` into a repository path and git-annex's API path, if it is
/// one. Components of the repository path that are empty, `.` or `..`, or
/// that decode to something holding `/` or NUL, make it no route.
pub fn parse_addressed_path(path: &str) -> Result<AddressedRoute, WireError> {
    let segments: Vec<&str> = path
        .strip_prefix('/')
        .ok_or(WireError::NoRoute)?
        .split('/')
        .collect();
    for i in 1..segments.len() {
        if segments[i] != PATH_PREFIX {
            continue;
        }
        let api = format!("/{}", segments[i..].join("/"));
        let Ok(route) = parse_path(&api) else {
            continue;
        };
        let mut components = Vec::with_capacity(i);
        for s in &segments[..i] {
            let c = unescape(s, "repository path")?;
            if c.is_empty() || c == "." || c == ".." || c.contains(['/', '\0']) {
                return Err(WireError::NoRoute);
            }
            components.push(c);
        }
        let mut candidates = vec![components.join("/")];
        if components.len() > 1 && components.last().map(String::as_str) == Some(PATH_PREFIX) {
            candidates.push(components[..components.len() - 1].join("/"));
        }
        return Ok(AddressedRoute { route, candidates });
    }
    Err(WireError::NoRoute)
}

/// The query parameters of a request, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// `key`.
    pub key: Option<Key>,
    /// `clientuuid`.
    pub client_uuid: Option<Uuid>,
    /// `bypass`, any number of times.
    pub bypass: Vec<Uuid>,
    /// `associatedfile`.
    pub associated_file: Option<Vec<u8>>,
    /// `offset`.
    pub offset: Option<u64>,
    /// `timestamp` (remove-before).
    pub timestamp: Option<u64>,
    /// `lockid` (keeplocked).
    pub lock_id: Option<String>,
    /// `data-present` (v4 put).
    pub data_present: Option<bool>,
}

fn parse_number(text: &str, what: &'static str) -> Result<u64, WireError> {
    text.parse().map_err(|_| WireError::Number(what))
}

impl Params {
    /// Reads a query string (without the `?`), every parameter of the API.
    /// Unknown parameters are ignored; a malformed known one is an error.
    /// A parameter given more than once counts the first time (`bypass`
    /// collects them all).
    pub fn parse(query: &str) -> Result<Params, WireError> {
        Params::parse_with(query, |_| true)
    }

    /// Reads the query string of a request of `endpoint` in `version`, as
    /// git-annex's server does: only the parameters the endpoint takes are
    /// read (see [`Endpoint::takes_param`]), and of each the first.
    pub fn parse_for(
        query: &str,
        endpoint: Endpoint,
        version: Option<ApiVersion>,
    ) -> Result<Params, WireError> {
        Params::parse_with(query, |name| endpoint.takes_param(version, name))
    }

    fn parse_with(query: &str, takes: impl Fn(&str) -> bool) -> Result<Params, WireError> {
        let mut params = Params::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if !takes(&name) {
                continue;
            }
            match name.as_ref() {
                "key" if params.key.is_none() => params.key = Some(decode_key(&value)?),
                "clientuuid" if params.client_uuid.is_none() => {
                    params.client_uuid = Some(decode_uuid(&value, "clientuuid")?)
                }
                "bypass" => params.bypass.push(decode_uuid(&value, "bypass")?),
                "associatedfile" if params.associated_file.is_none() => {
                    params.associated_file = Some(decode_value(&value)?)
                }
                "offset" if params.offset.is_none() => {
                    params.offset = Some(parse_number(&value, "offset")?)
                }
                "timestamp" if params.timestamp.is_none() => {
                    params.timestamp = Some(parse_number(&value, "timestamp")?)
                }
                "lockid" if params.lock_id.is_none() => {
                    let bytes = decode_value(&value)?;
                    let id = String::from_utf8(bytes).map_err(|_| WireError::Uuid("lockid"))?;
                    if id.is_empty() {
                        return Err(WireError::Uuid("lockid"));
                    }
                    params.lock_id = Some(id);
                }
                "data-present" if params.data_present.is_none() => {
                    // Either case, as git-annex's parser of booleans.
                    params.data_present = Some(if value.eq_ignore_ascii_case("true") {
                        true
                    } else if value.eq_ignore_ascii_case("false") {
                        false
                    } else {
                        return Err(WireError::Number("data-present"));
                    })
                }
                _ => {}
            }
        }
        Ok(params)
    }

    /// Writes the query string (without the `?`).
    pub fn to_query(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if let Some(key) = &self.key {
            out.append_pair("key", &encode_value(key.as_bytes()));
        }
        if let Some(uuid) = &self.client_uuid {
            out.append_pair("clientuuid", &encode_value(uuid.as_str().as_bytes()));
        }
        for uuid in &self.bypass {
            out.append_pair("bypass", &encode_value(uuid.as_str().as_bytes()));
        }
        if let Some(file) = &self.associated_file {
            out.append_pair("associatedfile", &encode_value(file));
        }
        if let Some(offset) = self.offset {
            out.append_pair("offset", &offset.to_string());
        }
        if let Some(ts) = self.timestamp {
            out.append_pair("timestamp", &ts.to_string());
        }
        if let Some(id) = &self.lock_id {
            out.append_pair("lockid", &encode_value(id.as_bytes()));
        }
        if let Some(present) = self.data_present {
            out.append_pair("data-present", if present { "true" } else { "false" });
        }
        out.finish()
    }

    /// The key, or the error a missing `key` is.
    pub fn require_key(&self) -> Result<&Key, WireError> {
        self.key.as_ref().ok_or(WireError::Missing("key"))
    }

    /// The client UUID, or the error a missing `clientuuid` is.
    pub fn require_client_uuid(&self) -> Result<&Uuid, WireError> {
        self.client_uuid
            .as_ref()
            .ok_or(WireError::Missing("clientuuid"))
    }

    /// The associated file as the P2P protocol carries it.
    pub fn associated_file(&self) -> AssociatedFile {
        match &self.associated_file {
            Some(f) => AssociatedFile::from_path(&String::from_utf8_lossy(f)),
            None => AssociatedFile::none(),
        }
    }
}

/// The answer of `checkpresent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckPresentResult {
    /// Whether the key is present.
    pub present: bool,
}

/// The answer of `remove` and `remove-before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveResult {
    /// Whether the content is gone.
    pub removed: bool,
    /// Further repositories it was removed from (v2 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plusuuids: Option<Vec<String>>,
}

/// The answer of `gettimestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTimestampResult {
    /// The server's monotonic clock in seconds.
    pub timestamp: u64,
}

/// The answer of `put`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResult {
    /// Whether the content was stored.
    pub stored: bool,
    /// Further repositories it was stored in (v2 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plusuuids: Option<Vec<String>>,
}

/// The answer of `putoffset`: an offset to send from, or "already have".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOffsetResult {
    /// The offset to send the content from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Set (to true) when the server already has the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alreadyhave: Option<bool>,
    /// With `alreadyhave`, further repositories that have it (v2 and
    /// later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plusuuids: Option<Vec<String>>,
}

/// The answer of `lockcontent` and `keeplocked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockResult {
    /// Whether the content is locked.
    pub locked: bool,
    /// The lock's id, for `keeplocked` (wrapped as any value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockid: Option<String>,
}

/// One line of a `keeplocked` request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockRequest {
    /// True to release the lock now; false only keeps the connection alive.
    pub unlock: bool,
}

/// Reads a list of plus UUIDs from an answer.
pub fn decode_plus_uuids(list: Option<&[String]>) -> Result<Vec<Uuid>, WireError> {
    list.unwrap_or_default()
        .iter()
        .map(|u| decode_uuid(u, "plusuuids"))
        .collect()
}

/// Writes a list of plus UUIDs for an answer of `version`: `None` before
/// v2, where the field does not exist.
pub fn encode_plus_uuids(version: ApiVersion, uuids: &[Uuid]) -> Option<Vec<String>> {
    version
        .has_plus_uuids()
        .then(|| uuids.iter().map(|u| u.as_str().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_wrapped_only_when_needed() {
        assert_eq!(encode_value(b"foo"), "foo");
        assert_eq!(decode_value("[Zm9v]").unwrap(), b"foo");
        assert_eq!(encode_value(b"[foo]"), "[W2Zvb10=]");
        assert_eq!(decode_value("[W2Zvb10=]").unwrap(), b"[foo]");
        assert_eq!(
            decode_value(&encode_value(b"\xff\x00")).unwrap(),
            b"\xff\x00"
        );
        assert_eq!(decode_value("[!!]"), Err(WireError::Base64));
        assert_eq!(decode_value("[").unwrap(), b"[");
    }

    #[test]
    fn addressed_paths_name_a_repository_path() {
        let u = "ecf6d4ca-07e8-11ef-8990-9b8c1f696bf6";
        let a = parse_addressed_path(&format!("/alice/my%20repo/git-annex/{u}/v4/put")).unwrap();
        assert_eq!(a.candidates, vec!["alice/my repo".to_owned()]);
        assert_eq!(a.route.endpoint, Endpoint::Put);
        assert_eq!(a.route.server_uuid.to_string(), u);
        let a =
            parse_addressed_path(&format!("/o/r/git-annex/git-annex/{u}/key/SHA1-s1--a")).unwrap();
        assert_eq!(
            a.candidates,
            vec!["o/r/git-annex".to_owned(), "o/r".to_owned()]
        );
        assert_eq!(a.route.endpoint, Endpoint::Key);
        for bad in [
            format!("/git-annex/{u}/v4/put"),
            format!("/a/../git-annex/{u}/v4/put"),
            format!("/a//b/git-annex/{u}/v4/put"),
            format!("/a/%2F/git-annex/{u}/v4/put"),
            format!("/a/%00/git-annex/{u}/v4/put"),
            format!("/a/b/git-annex/{u}/v4/nosuch"),
            "/a/b/c".to_owned(),
        ] {
            assert!(parse_addressed_path(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_round_trip() {
        let server = Uuid::parse("ecf6d4ca-07e8-11ef-8990-9b8c1f696bf6").unwrap();
        let key = Key::parse("SHA256E-s3--abc.tar.gz").unwrap();
        for version in ApiVersion::NEWEST_FIRST {
            let path = request_path(&server, Some(version), Endpoint::Key, Some(&key));
            let route = parse_path(&path).unwrap();
            assert_eq!(route.version, Some(version));
            assert_eq!(route.key.as_ref(), Some(&key));
        }
        let path = request_path(&server, None, Endpoint::Key, Some(&key));
        assert_eq!(
            path,
            format!("/git-annex/{}/key/SHA256E-s3--abc.tar.gz", server.as_str())
        );
        assert_eq!(parse_path(&path).unwrap().version, None);
        let path = request_path(&server, Some(ApiVersion::V2), Endpoint::GetTimestamp, None);
        assert_eq!(parse_path(&path), Err(WireError::NoRoute));
        let path = request_path(&server, Some(ApiVersion::V3), Endpoint::RemoveBefore, None);
        assert_eq!(parse_path(&path).unwrap().endpoint, Endpoint::RemoveBefore);
        assert_eq!(
            parse_path("/git-annex//v4/checkpresent"),
            Err(WireError::Uuid("serveruuid"))
        );
        assert_eq!(
            parse_path("/other/x/v4/checkpresent"),
            Err(WireError::NoRoute)
        );
        assert_eq!(
            parse_path("/git-annex/x/v9/checkpresent"),
            Err(WireError::NoRoute)
        );
    }

    #[test]
    fn params_round_trip() {
        let params = Params {
            key: Some(Key::parse("SHA1--foo").unwrap()),
            client_uuid: Some(Uuid::parse("79a5a1f4-07e8-11ef-873d-97f93ca91925").unwrap()),
            bypass: vec![Uuid::parse("ecf6d4ca-07e8-11ef-8990-9b8c1f696bf6").unwrap()],
            associated_file: Some(b"dir/a b&c=d\xff".to_vec()),
            offset: Some(10),
            timestamp: Some(4949292929),
            lock_id: Some("lock".into()),
            data_present: Some(true),
        };
        assert_eq!(Params::parse(&params.to_query()).unwrap(), params);
        assert_eq!(Params::parse("offset=x"), Err(WireError::Number("offset")));
        assert_eq!(Params::parse("unknown=1").unwrap(), Params::default());
    }

    #[test]
    fn params_read_as_git_annex_reads_them() {
        let v4 = Some(ApiVersion::V4);
        // The first of a repeated parameter counts; later ones are not
        // even read. bypass collects every one.
        let p = Params::parse_for(
            "key=SHA1--a&key=not-a-key&clientuuid=79a5a1f4-07e8-11ef-873d-97f93ca91925&clientuuid=",
            Endpoint::CheckPresent,
            v4,
        )
        .unwrap();
        assert_eq!(p.key, Some(Key::parse("SHA1--a").unwrap()));
        assert!(p.client_uuid.is_some());
        let u = "79a5a1f4-07e8-11ef-873d-97f93ca91925";
        let p = Params::parse_for(&format!("bypass={u}&bypass={u}"), Endpoint::Remove, v4).unwrap();
        assert_eq!(p.bypass.len(), 2);
        // Parameters the endpoint does not take are not read.
        let p = Params::parse_for(
            "key=SHA1--a&offset=ten&lockid=%5B!!%5D&timestamp=soon&data-present=maybe",
            Endpoint::CheckPresent,
            v4,
        )
        .unwrap();
        assert_eq!(
            (p.offset, p.lock_id, p.timestamp, p.data_present),
            (None, None, None, None)
        );
        assert!(Params::parse_for("key=nokey", Endpoint::GetTimestamp, v4)
            .unwrap()
            .key
            .is_none());
        assert!(Params::parse_for("data-present=x", Endpoint::Put, Some(ApiVersion::V3)).is_ok());
        assert_eq!(
            Params::parse_for("data-present=x", Endpoint::Put, v4),
            Err(WireError::Number("data-present"))
        );
        assert_eq!(
            Params::parse_for("data-present=True", Endpoint::Put, v4)
                .unwrap()
                .data_present,
            Some(true)
        );
        assert_eq!(
            Params::parse_for("offset=x", Endpoint::Key, v4),
            Err(WireError::Number("offset"))
        );
        assert!(Params::parse_for("offset=x", Endpoint::Key, None).is_ok());
        assert_eq!(
            Params::parse_for("lockid=", Endpoint::KeepLocked, v4),
            Err(WireError::Uuid("lockid"))
        );
    }

    #[test]
    fn a_trailing_slash_names_the_same_route() {
        let a = parse_path("/git-annex/79a5a1f4-07e8-11ef-873d-97f93ca91925/v4/checkpresent/");
        assert_eq!(a.unwrap().endpoint, Endpoint::CheckPresent);
        // An empty key segment is then no key route at all.
        assert_eq!(
            parse_path("/git-annex/79a5a1f4-07e8-11ef-873d-97f93ca91925/v4/key/"),
            Err(WireError::NoRoute)
        );
    }

    #[test]
    fn answers_read_as_git_annex_writes_them() {
        let r: PutOffsetResult =
            serde_json::from_str(r#"{"alreadyhave":true,"plusuuids":[]}"#).unwrap();
        assert_eq!(r.alreadyhave, Some(true));
        let r: PutOffsetResult = serde_json::from_str(r#"{"offset":10}"#).unwrap();
        assert_eq!(r.offset, Some(10));
        let r: LockResult = serde_json::from_str(r#"{"locked":true,"lockid":"foo"}"#).unwrap();
        assert_eq!(r.lockid.as_deref(), Some("foo"));
        assert_eq!(
            serde_json::to_string(&RemoveResult {
                removed: true,
                plusuuids: None
            })
            .unwrap(),
            r#"{"removed":true}"#
        );
    }
}
