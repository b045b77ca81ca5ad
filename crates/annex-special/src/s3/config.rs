//! An S3 special remote's settings, read from its remote.log fields as
//! git-annex 10.20250416 reads them (Remote/S3.hs): where the bucket is
//! (`host`, `port`, `protocol`, `requeststyle`, `datacenter`, `region`),
//! how requests are signed (`signature`), how objects are named
//! (`fileprefix`, `chunk`) and written (`partsize`, `storageclass`,
//! `public`, `x-amz-meta-*`). Settings this crate cannot honour are
//! refused, naming the setting.

use annex_branch::logs::remote_config::RemoteConfig;
use url::Url;

use crate::chunk::Chunking;
use crate::SpecialError;

/// git-annex's default S3 host: Amazon's, reached at the endpoint of the
/// remote's `datacenter`.
pub const DEFAULT_HOST: &str = "s3.amazonaws.com";

/// The smallest part S3 accepts in a multipart upload (but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The most parts a multipart upload may have.
pub const MAX_PARTS: u64 = 10_000;

/// How the bucket is named in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStyle {
    /// `HOST/BUCKET/OBJECT` (`requeststyle=path`).
    Path,
    /// `BUCKET.HOST/OBJECT`, git-annex's default.
    VirtualHost,
}

impl RequestStyle {
    /// rusty-s3's name for it.
    pub fn url_style(self) -> rusty_s3::UrlStyle {
        match self {
            RequestStyle::Path => rusty_s3::UrlStyle::Path,
            RequestStyle::VirtualHost => rusty_s3::UrlStyle::VirtualHost,
        }
    }
}

/// How requests are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// With the remote's credentials, by AWS Signature Version 4, whatever
    /// `signature=` says (`v2`, git-annex's default for hosts other than
    /// Amazon's, is signed v4 too: every server this is meant for accepts
    /// it).
    V4,
    /// `signature=anonymous`: not signed, no credentials needed.
    Anonymous,
}

/// An S3 special remote's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The remote's name in remote.log (for messages).
    pub name: String,
    /// The bucket (git-annex lower-cases it).
    pub bucket: String,
    /// Where requests go: `PROTOCOL://HOST:PORT/`.
    pub endpoint: Url,
    /// Path-style (`requeststyle=path`) or virtual-host-style requests.
    pub style: RequestStyle,
    /// The region requests are signed for.
    pub region: String,
    /// How requests are signed.
    pub signing: Signing,
    /// Put before every object name (`fileprefix=`).
    pub fileprefix: String,
    /// How content is split into objects (`chunk=`).
    pub chunking: Chunking,
    /// `partsize=`: objects larger than this are written by multipart
    /// upload in parts of this size (at least [`MIN_PART_SIZE`]).
    pub partsize: Option<u64>,
    /// `storageclass=`, sent with every object written (none when
    /// `STANDARD`, S3's default).
    pub storage_class: Option<String>,
    /// `public=yes`: objects written readable by anyone (a canned ACL).
    pub public: bool,
    /// `publicurl=`: where anyone can read the objects (kept, not used by
    /// a gateway).
    pub public_url: Option<String>,
    /// `x-amz-meta-*` headers sent with every object written.
    pub meta_headers: Vec<(String, String)>,
}

fn bad(field: &'static str, value: &str) -> SpecialError {
    SpecialError::BadSetting {
        field,
        value: value.to_owned(),
    }
}

fn unsupported(field: &'static str, value: &str) -> SpecialError {
    SpecialError::Unsupported {
        field,
        value: value.to_owned(),
    }
}

fn yes(v: Option<&str>) -> bool {
    matches!(v, Some("yes" | "true"))
}

/// The endpoint git-annex's aws library uses for an Amazon `datacenter`
/// (`s3HostName`).
fn amazon_host(datacenter: &str) -> String {
    match datacenter {
        "US" => DEFAULT_HOST.to_owned(),
        "EU" => "s3-eu-west-1.amazonaws.com".to_owned(),
        "cn-north-1" => "s3.cn-north-1.amazonaws.com.cn".to_owned(),
        r => format!("s3-{r}.amazonaws.com"),
    }
}

/// The region of an Amazon `datacenter` (`US` and `EU` are the old
/// location constraints of us-east-1 and eu-west-1).
fn amazon_region(datacenter: &str) -> String {
    match datacenter {
        "US" => "us-east-1".to_owned(),
        "EU" => "eu-west-1".to_owned(),
        r => r.to_owned(),
    }
}

impl S3Config {
    /// The settings of `config` (a remote.log entry of type `S3`), or
    /// the first setting that is refused or cannot be read.
    pub fn from_remote_config(config: &RemoteConfig) -> Result<S3Config, SpecialError> {
        match config.get("type") {
            Some("S3") => {}
            Some(other) => return Err(SpecialError::UnsupportedType(other.to_owned())),
            None => return Err(SpecialError::MissingType),
        }
        crate::check_supported(config)?;
        // What git-annex does with these, this crate does not do yet.
        for field in ["versioning", "restore"] {
            if let Some(v) = config.get(field).filter(|v| yes(Some(v))) {
                return Err(unsupported(field, v));
            }
        }
        if let Some(v) = config.get("mungekeys") {
            return Err(unsupported("mungekeys", v));
        }
        if let Some(v) = config.get("x-amz-tagging") {
            return Err(unsupported("x-amz-tagging", v));
        }
        if let Some(v) = config.get("chunksize") {
            return Err(unsupported("chunksize", v));
        }
        let name = config.get("name").unwrap_or("").to_owned();
        let host = config.get("host").unwrap_or(DEFAULT_HOST);
        if host.is_empty() {
            return Err(bad("host", host));
        }
        // The Internet Archive's S3 has ways of its own.
        if host.ends_with("archive.org") {
            return Err(unsupported("host", host));
        }
        let datacenter = config.get("datacenter").unwrap_or("US");
        let protocol = match config.get("protocol") {
            None => None,
            Some("https") => Some(true),
            Some("http") => Some(false),
            Some(other) => return Err(bad("protocol", other)),
        };
        let port: u16 = match config.get("port") {
            Some(p) => match p.trim().parse::<u16>() {
                // protocol=https overrides git-annex's default port 80.
                Ok(80) if protocol == Some(true) => 443,
                Ok(n) => n,
                Err(_) => return Err(bad("port", p)),
            },
            None => match protocol {
                Some(true) => 443,
                _ => 80,
            },
        };
        let https = protocol.unwrap_or(port == 443);
        let endpoint_host = if host == DEFAULT_HOST {
            amazon_host(datacenter)
        } else {
            host.to_owned()
        };
        let scheme = if https { "https" } else { "http" };
        // An IPv6 address is written in brackets in a URL.
        let url_host = if endpoint_host.contains(':') && !endpoint_host.starts_with('[') {
            format!("[{endpoint_host}]")
        } else {
            endpoint_host.clone()
        };
        let endpoint = Url::parse(&format!("{scheme}://{url_host}:{port}/"))
            .ok()
            .filter(|u| u.host_str().is_some() && u.path() == "/")
            .ok_or_else(|| bad("host", host))?;
        let style = match config.get("requeststyle") {
            None => RequestStyle::VirtualHost,
            Some("path") => RequestStyle::Path,
            Some(other) => return Err(bad("requeststyle", other)),
        };
        let region = match config.get("region") {
            Some(r) if !r.is_empty() => r.to_owned(),
            _ if host == DEFAULT_HOST => amazon_region(datacenter),
            // Other servers take any region, most of them this one.
            _ => "us-east-1".to_owned(),
        };
        let signing = match config.get("signature") {
            None | Some("v2" | "v4") => Signing::V4,
            Some("anonymous") => Signing::Anonymous,
            Some(other) => return Err(bad("signature", other)),
        };
        let bucket = config
            .get("bucket")
            .filter(|b| !b.is_empty())
            .ok_or(SpecialError::Missing("bucket"))?
            .to_lowercase();
        if !bucket
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
        {
            return Err(bad("bucket", &bucket));
        }
        let fileprefix = config.get("fileprefix").unwrap_or("").to_owned();
        crate::s3::naming::check_prefix(&fileprefix).map_err(|_| bad("fileprefix", &fileprefix))?;
        let chunking = Chunking::from_config(config)?;
        let partsize = match config.get("partsize") {
            None => None,
            Some(v) => match annex_types::size::read_size(v).and_then(|n| u64::try_from(n).ok()) {
                Some(0) => None,
                Some(n) => Some(n.max(MIN_PART_SIZE)),
                None => return Err(bad("partsize", v)),
            },
        };
        let storage_class = config
            .get("storageclass")
            .filter(|s| !s.is_empty() && *s != "STANDARD")
            .map(str::to_owned);
        if let Some(s) = &storage_class {
            if !s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return Err(bad("storageclass", s));
            }
        }
        let mut meta_headers = Vec::new();
        for (k, v) in &config.0 {
            if let Some(suffix) = k.strip_prefix("x-amz-meta-") {
                let ok_name = !suffix.is_empty()
                    && suffix
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
                if !ok_name || http::HeaderValue::from_str(v).is_err() {
                    return Err(SpecialError::BadSetting {
                        field: "x-amz-meta-*",
                        value: format!("{k}={v}"),
                    });
                }
                meta_headers.push((k.to_ascii_lowercase(), v.clone()));
            }
        }
        Ok(S3Config {
            name,
            bucket,
            endpoint,
            style,
            region,
            signing,
            fileprefix,
            chunking,
            partsize,
            storage_class,
            public: yes(config.get("public")),
            public_url: config.get("publicurl").map(str::to_owned),
            meta_headers,
        })
    }

    /// The part size of a multipart upload of `len` bytes, when one is
    /// made: with `partsize=` for an object larger than it, and for any
    /// object larger than S3 takes in one request (5 GiB); in no more than
    /// [`MAX_PARTS`] parts.
    pub fn part_size_for(&self, len: u64) -> Option<u64> {
        const SINGLE_MAX: u64 = 5 * 1024 * 1024 * 1024;
        let wanted = match self.partsize {
            Some(p) if len > p => p,
            _ if len > SINGLE_MAX => 1024 * 1024 * 1024,
            _ => return None,
        };
        Some(wanted.max(len.div_ceil(MAX_PARTS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kv: &[(&str, &str)]) -> RemoteConfig {
        kv.iter().copied().collect()
    }

    /// The fields `git annex initremote` wrote (10.20250416, against a
    /// local server).
    fn local(extra: &[(&str, &str)]) -> RemoteConfig {
        let mut c = cfg(&[
            ("bucket", "annextest"),
            ("datacenter", "US"),
            ("encryption", "none"),
            ("host", "127.0.0.1"),
            ("name", "s3"),
            ("port", "9000"),
            ("protocol", "http"),
            ("requeststyle", "path"),
            ("storageclass", "STANDARD"),
            ("type", "S3"),
        ]);
        for (k, v) in extra {
            c.0.insert((*k).into(), (*v).into());
        }
        c
    }

    #[test]
    fn a_local_server_as_initremote_recorded_it() {
        let c = S3Config::from_remote_config(&local(&[("fileprefix", "pre/")])).unwrap();
        assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(c.style, RequestStyle::Path);
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.signing, Signing::V4);
        assert_eq!(c.bucket, "annextest");
        assert_eq!(c.fileprefix, "pre/");
        assert_eq!(c.storage_class, None);
        assert_eq!(c.chunking, Chunking::None);
        assert_eq!(c.name, "s3");
        let c = S3Config::from_remote_config(&local(&[
            ("chunk", "1MiB"),
            ("signature", "v2"),
            ("region", "garage"),
            ("x-amz-meta-owner", "alice"),
            ("storageclass", "STANDARD_IA"),
            ("partsize", "1MiB"),
        ]))
        .unwrap();
        assert_eq!(c.chunking, Chunking::Chunks(1 << 20));
        assert_eq!(c.region, "garage");
        assert_eq!(
            c.meta_headers,
            vec![("x-amz-meta-owner".into(), "alice".into())]
        );
        assert_eq!(c.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(c.partsize, Some(MIN_PART_SIZE));
    }

    #[test]
    fn ports_protocols_and_amazon_endpoints_as_git_annex_reads_them() {
        let ep = |extra: &[(&str, &str)]| {
            let mut c = cfg(&[("type", "S3"), ("bucket", "b")]);
            for (k, v) in extra {
                c.0.insert((*k).into(), (*v).into());
            }
            let c = S3Config::from_remote_config(&c).unwrap();
            (c.endpoint.to_string(), c.region, c.style)
        };
        assert_eq!(
            ep(&[]),
            (
                "http://s3.amazonaws.com/".into(),
                "us-east-1".into(),
                RequestStyle::VirtualHost
            )
        );
        assert_eq!(
            ep(&[("datacenter", "EU"), ("port", "80"), ("protocol", "https")]).0,
            "https://s3-eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            ep(&[("datacenter", "us-west-2"), ("port", "443")]),
            (
                "https://s3-us-west-2.amazonaws.com/".into(),
                "us-west-2".into(),
                RequestStyle::VirtualHost
            )
        );
        assert_eq!(
            ep(&[("host", "::1"), ("port", "9000")]).0,
            "http://[::1]:9000/"
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        let msg = |extra: &[(&str, &str)]| {
            S3Config::from_remote_config(&local(extra))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            msg(&[("encryption", "hybrid")]),
            "encryption=hybrid is not supported yet"
        );
        assert_eq!(
            msg(&[("exporttree", "yes")]),
            "exporttree=yes is not supported yet"
        );
        assert_eq!(
            msg(&[("versioning", "yes")]),
            "versioning=yes is not supported yet"
        );
        assert_eq!(
            msg(&[("restore", "yes")]),
            "restore=yes is not supported yet"
        );
        assert_eq!(
            msg(&[("chunksize", "1MiB")]),
            "chunksize=1MiB is not supported yet"
        );
        assert_eq!(
            msg(&[("protocol", "ftp")]),
            "bad configuration protocol=ftp"
        );
        assert_eq!(msg(&[("port", "x")]), "bad configuration port=x");
        assert_eq!(
            msg(&[("requeststyle", "dns")]),
            "bad configuration requeststyle=dns"
        );
        assert_eq!(
            msg(&[("signature", "v3")]),
            "bad configuration signature=v3"
        );
        assert_eq!(
            msg(&[("fileprefix", "../other/")]),
            "bad configuration fileprefix=../other/"
        );
        assert_eq!(msg(&[("host", "a/b")]), "bad configuration host=a/b");
        let mut no_bucket = local(&[]);
        no_bucket.0.remove("bucket");
        assert_eq!(
            S3Config::from_remote_config(&no_bucket).unwrap_err(),
            SpecialError::Missing("bucket")
        );
        assert_eq!(
            S3Config::from_remote_config(&local(&[("signature", "anonymous")]))
                .unwrap()
                .signing,
            Signing::Anonymous
        );
    }

    #[test]
    fn part_sizes() {
        let c = S3Config::from_remote_config(&local(&[("partsize", "8MiB")])).unwrap();
        assert_eq!(c.part_size_for(8 << 20), None);
        assert_eq!(c.part_size_for((8 << 20) + 1), Some(8 << 20));
        // No more than 10,000 parts.
        assert_eq!(c.part_size_for(100_000 << 20), Some(10_485_760));
        let plain = S3Config::from_remote_config(&local(&[])).unwrap();
        assert_eq!(plain.part_size_for(1 << 32), None);
        assert_eq!(plain.part_size_for(6 << 30), Some(1 << 30));
    }
}
