//! An S3 special remote with `exporttree=yes annexobjects=yes`, made by
//! the real git-annex (`git annex initremote dex type=S3 ...
//! exporttree=yes annexobjects=yes`) on a local S3 server that checks
//! signatures (s3s-fs, which keeps each object as a file named by it),
//! proxied by a gateway: the scenario of [`super::proxy_export`] with
//! the bucket in place of the directory. A client push exports the tree
//! (objects named `fileprefix` + their paths), copies land at their
//! exported paths or under annexobjects, gets read either, drops remove
//! annexobjects copies only, wrong content is visible nowhere, and
//! git-annex's own `export` and `fsck --from` in the gateway agree; the
//! remote is the same after each step as behind git-annex's gateway.

use std::path::{Path, PathBuf};

use annex_test_support::proxy::ProxyEnv as Env;
use annex_test_support::s3::S3Server;

use super::proxy_export::{scenario, setup_remote, Gateway, Transport};
use super::proxy_s3::initremote;

const BUCKET: &str = "exportbucket";
const PREFIX: &str = "tree/";

/// The S3 remote `dex` on a server of its own, its objects under
/// `fileprefix=tree/`: the directory in which s3s-fs keeps them (each
/// exported file one object, so one file at its path there).
fn s3_remote(env: &Env, gw: &Path) -> (PathBuf, String, Option<S3Server>) {
    let server = S3Server::start(&env.dir("s3"));
    // git-annex refuses 127.0.0.1 without it, and so do we.
    env.git(
        gw,
        &["config", "annex.security.allowed-ip-addresses", "all"],
    );
    let bucket = format!("bucket={BUCKET}");
    let prefix = format!("fileprefix={PREFIX}");
    let dex = initremote(
        env,
        &server,
        gw,
        "dex",
        &[&bucket, &prefix, "exporttree=yes", "annexobjects=yes"],
    );
    let store = server.root.join(BUCKET).join(PREFIX);
    std::fs::create_dir_all(&store).unwrap();
    (store, dex, Some(server))
}

/// Short keys: s3s-fs keeps a bookkeeping file named by the base64 of
/// each object's name, which for an annexobjects name of a SHA256E key
/// (`.git/annex/objects/xxx/yyy/KEY/KEY`) is longer than a file name
/// may be, and it then answers 500 (measured with s3s-fs 0.14.1; real
/// S3 takes names of up to 1024 bytes).
const CLIENT: &[(&str, &str)] = &[("annex.backend", "MD5E")];

#[test]
fn s3_exporttree_remote_behind_the_gateway_over_ssh_as_behind_git_annex() {
    let mut ours = setup_remote(Gateway::Ours, Transport::Ssh, "master", s3_remote, CLIENT);
    let mine = scenario(&mut ours);
    let mut theirs = setup_remote(
        Gateway::GitAnnex,
        Transport::Ssh,
        "master",
        s3_remote,
        CLIENT,
    );
    let reference = scenario(&mut theirs);
    assert_eq!(mine.len(), reference.len());
    for (m, r) in mine.iter().zip(&reference) {
        assert_eq!(m, r);
    }
}

#[test]
fn s3_exporttree_remote_behind_the_gateway_over_p2phttp() {
    let mut ours = setup_remote(Gateway::Ours, Transport::Http, "master", s3_remote, CLIENT);
    scenario(&mut ours);
}
