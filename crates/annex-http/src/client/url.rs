//! `annex+http(s)://` URLs.

use annex_protocol::Uuid;
use thiserror::Error;

use crate::wire::{self, DEFAULT_PORT};

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

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL again, in the form git-annex writes it (without a UUID).
    pub fn base(&self) -> String {
        format!(
            "annex+{}://{}{}/{}/",
            if self.https { "https" } else { "http" },
            self.authority(),
            self.prefix,
            wire::PATH_PREFIX
        )
    }
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
        assert_eq!(u.base(), "annex+http://example.com:9417/git-annex/");
        let u = ServerUrl::parse(
            "annex+https://[::1]:8443/forge/git-annex/ecf6d4ca-07e8-11ef-8990-9b8c1f696bf6",
        )
        .unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.prefix.as_str()),
            (true, "::1", 8443, "/forge")
        );
        assert_eq!(
            u.uuid.as_ref().unwrap().as_str(),
            "ecf6d4ca-07e8-11ef-8990-9b8c1f696bf6"
        );
        assert_eq!(u.base(), "annex+https://[::1]:8443/forge/git-annex/");
        let u = ServerUrl::parse("annex+http://127.0.0.1:9/").unwrap();
        assert_eq!((u.port, u.prefix.as_str(), u.uuid), (9, "", None));
        let u = ServerUrl::parse("annex+http://user@host/git-annex").unwrap();
        assert_eq!((u.host.as_str(), u.prefix.as_str()), ("host", ""));
        assert!(ServerUrl::parse("http://example.com/").is_err());
        assert!(ServerUrl::parse("annex+http://example.com:x/").is_err());
        assert!(ServerUrl::parse("annex+http:///git-annex/").is_err());
        assert!(ServerUrl::parse("annex+http://[::1/git-annex/").is_err());
    }
}
