//! `annex initremote` makes S3 and directory special remotes as `git
//! annex initremote` makes them: the same remote.log fields and git
//! config (UUIDs, timestamps and bucket names apart), the name as the
//! description, the S3 credentials cached and the bucket's `annex-uuid`;
//! the real git-annex then copies, fscks, drops and gets content with
//! the remote unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use annex_test_support::proxy::ProxyEnv as Env;
use annex_test_support::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
use annex_test_support::{command, output, pseudo_random, run_ok};

/// The fields remote.log records for the remote named `name`, without
/// the timestamp.
fn remote_log_fields(env: &Env, repo: &Path, name: &str) -> (String, BTreeMap<String, String>) {
    let log = env.git(repo, &["show", "git-annex:remote.log"]);
    for line in log.lines() {
        let mut words = line.split_whitespace();
        let uuid = words.next().unwrap().to_string();
        let fields: BTreeMap<String, String> = words
            .filter_map(|w| w.split_once('='))
            .filter(|(k, _)| *k != "timestamp")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if fields.get("name").map(String::as_str) == Some(name) {
            return (uuid, fields);
        }
    }
    panic!("no remote {name} in remote.log: {log}");
}

/// The git config settings of remote `name`, its UUID replaced by `U`.
fn remote_git_config(env: &Env, repo: &Path, name: &str, uuid: &str) -> Vec<String> {
    let out = env.git(
        repo,
        &["config", "--get-regexp", &format!("^remote\\.{name}\\.")],
    );
    out.lines().map(|l| l.replace(uuid, "U")).collect()
}

fn annex_init(env: &Env, repo: &Path, args: &[&str], aws: bool) -> std::process::Output {
    let mut cmd = command(repo, env.annex_program(), args);
    cmd.env("PATH", &env.path);
    if aws {
        cmd.envs([
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]);
    }
    output(&mut cmd)
}

/// git-annex copies, fscks, drops and gets a file with the remote.
fn git_annex_uses(env: &Env, repo: &Path, remote: &str, file: &str, len: usize) {
    std::fs::write(repo.join(file), pseudo_random(len, len as u64)).unwrap();
    env.git(repo, &["annex", "add", "--quiet", file]);
    env.git(repo, &["commit", "-q", "-m", file]);
    env.git(repo, &["annex", "copy", "--quiet", "--to", remote, file]);
    env.git(repo, &["annex", "fsck", "--quiet", "--from", remote, file]);
    env.git(repo, &["annex", "drop", "--quiet", file]);
    env.git(repo, &["annex", "get", "--quiet", "--from", remote, file]);
    env.git(repo, &["annex", "drop", "--quiet", "--from", remote, file]);
}

#[test]
fn s3_remotes_made_as_git_annex_makes_them() {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let server = S3Server::start(&env.dir("s3"));
    let port = format!("port={}", server.port);
    let common = |bucket: &'static str| {
        vec![
            "type=S3".to_string(),
            "encryption=none".into(),
            "host=127.0.0.1".into(),
            port.clone(),
            "protocol=http".into(),
            "requeststyle=path".into(),
            format!("bucket={bucket}"),
            "chunk=1MiB".into(),
            "fileprefix=pre/".into(),
        ]
    };
    let (ours, _) = env.init("ours", "ours");
    let (theirs, _) = env.init("theirs", "theirs");
    for r in [&ours, &theirs] {
        env.git(r, &["config", "annex.security.allowed-ip-addresses", "all"]);
    }
    let mut args = vec!["initremote".to_string(), "s3".into()];
    args.extend(common("ourbucket"));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = annex_init(&env, &ours, &a, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut gargs = vec![
        "annex".to_string(),
        "initremote".into(),
        "-q".into(),
        "s3".into(),
    ];
    gargs.extend(common("theirbucket"));
    let g: Vec<&str> = gargs.iter().map(String::as_str).collect();
    run_ok(
        command(&theirs, "git", &g)
            .env("PATH", &env.path)
            .envs(server.env()),
    );

    let (our_uuid, mut our_fields) = remote_log_fields(&env, &ours, "s3");
    let (their_uuid, mut their_fields) = remote_log_fields(&env, &theirs, "s3");
    assert_eq!(our_fields.remove("bucket").as_deref(), Some("ourbucket"));
    assert_eq!(
        their_fields.remove("bucket").as_deref(),
        Some("theirbucket")
    );
    assert_eq!(our_fields, their_fields);
    assert_eq!(
        remote_git_config(&env, &ours, "s3", &our_uuid),
        remote_git_config(&env, &theirs, "s3", &their_uuid)
    );
    let desc = env.git(&ours, &["show", "git-annex:uuid.log"]);
    assert!(
        desc.contains(&format!("{our_uuid} s3 timestamp=")),
        "{desc}"
    );
    let creds = |repo: &Path, u: &str| {
        std::fs::read_to_string(repo.join(".git/annex/creds").join(u)).unwrap()
    };
    assert_eq!(creds(&ours, &our_uuid), creds(&theirs, &their_uuid));
    let uuid_object = server.root.join("ourbucket/pre/annex-uuid");
    assert_eq!(std::fs::read_to_string(uuid_object).unwrap(), our_uuid);

    // git-annex uses it, with no credentials in its environment.
    git_annex_uses(&env, &ours, "s3", "big.bin", 2_500_000);
    git_annex_uses(&env, &ours, "s3", "small.bin", 100);

    // embedcreds=yes: the credentials recorded in remote.log as
    // git-annex records them.
    let mut ours_e = vec!["initremote".to_string(), "s3e".into()];
    ours_e.extend(common("ourembedded"));
    ours_e.push("embedcreds=yes".into());
    let a: Vec<&str> = ours_e.iter().map(String::as_str).collect();
    let out = annex_init(&env, &ours, &a, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut theirs_e = vec![
        "annex".to_string(),
        "initremote".into(),
        "-q".into(),
        "s3e".into(),
    ];
    theirs_e.extend(common("theirembedded"));
    theirs_e.push("embedcreds=yes".into());
    let g: Vec<&str> = theirs_e.iter().map(String::as_str).collect();
    run_ok(
        command(&theirs, "git", &g)
            .env("PATH", &env.path)
            .envs(server.env()),
    );
    let (_, mut our_fields) = remote_log_fields(&env, &ours, "s3e");
    let (_, mut their_fields) = remote_log_fields(&env, &theirs, "s3e");
    our_fields.remove("bucket");
    their_fields.remove("bucket");
    assert!(their_fields.contains_key("s3creds"), "{their_fields:?}");
    assert_eq!(our_fields, their_fields);

    // A second remote on the same bucket and prefix is refused; a name
    // taken is refused; encryption must be said, and be none.
    let mut again = vec!["initremote".to_string(), "s3b".into()];
    again.extend(common("ourbucket"));
    let a: Vec<&str> = again.iter().map(String::as_str).collect();
    let out = annex_init(&env, &ours, &a, true);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Cannot reuse this bucket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (args, says) in [
        (
            vec!["initremote", "s3", "type=S3", "encryption=none"],
            "There is already a special remote named \"s3\"",
        ),
        (
            vec!["initremote", "x", "type=S3"],
            "Specify encryption=none",
        ),
        (
            vec!["initremote", "x", "type=S3", "encryption=shared"],
            "encryption=shared is not supported yet",
        ),
        (
            vec!["initremote", "x", "type=rsync", "encryption=none"],
            "special remote type rsync is not supported yet",
        ),
    ] {
        let out = annex_init(&env, &ours, &args, true);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // No credentials in the environment: named.
    let out = annex_init(
        &env,
        &ours,
        &[
            "initremote",
            "x",
            "type=S3",
            "encryption=none",
            "host=127.0.0.1",
            &port,
            "bucket=b3",
        ],
        false,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
}

#[test]
fn directory_remotes_made_as_git_annex_makes_them() {
    let env = Env::new(env!("CARGO_BIN_EXE_annex"));
    let (ours, _) = env.init("ours", "ours");
    let (theirs, _) = env.init("theirs", "theirs");
    let store = env.dir("store");
    std::fs::create_dir(&store).unwrap();
    let dir = format!("directory={}", store.display());
    let args = [
        "type=directory",
        dir.as_str(),
        "encryption=none",
        "chunk=64KiB",
    ];
    let mut a = vec!["initremote", "d"];
    a.extend(args);
    let out = annex_init(&env, &ours, &a, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut g = vec!["annex", "initremote", "-q", "d"];
    g.extend(args);
    env.git(&theirs, &g);
    let (our_uuid, our_fields) = remote_log_fields(&env, &ours, "d");
    let (their_uuid, their_fields) = remote_log_fields(&env, &theirs, "d");
    assert_eq!(our_fields, their_fields);
    assert_eq!(
        remote_git_config(&env, &ours, "d", &our_uuid),
        remote_git_config(&env, &theirs, "d", &their_uuid)
    );
    git_annex_uses(&env, &ours, "d", "f.bin", 200_000);
    let out = annex_init(
        &env,
        &ours,
        &[
            "initremote",
            "e",
            "type=directory",
            "directory=/nonexistent/x",
            "encryption=none",
        ],
        false,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Directory does not exist"));
}
