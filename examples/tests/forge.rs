//! The forge examples used by the real git-annex as the client: the axum
//! application's router serving p2phttp at /git-annex/ beside its own
//! routes, with its own authentication, and the ssh handler serving a
//! repository the forge chose. Content goes both ways and git-annex's own
//! fsck in the served repository finds it valid.
//!
//! These tests need git-annex 10.20250416 and fail (never skip) without it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use annex_test_support::{command, git, init_annex_repo, output};

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A forge directory with the repository `photos`, and a client clone of
/// it whose git URL leads nowhere (content can only go the way the test
/// sets up). Returns (tmp, forge directory, photos, client).
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let forge = tmp.path().join("forge");
    std::fs::create_dir(&forge).unwrap();
    let (photos, _) = init_annex_repo(&forge, "photos", "forge photos");
    let (client, _) = init_annex_repo(tmp.path(), "client", "client");
    git(
        &client,
        &["config", "annex.security.allowed-ip-addresses", "all"],
    );
    (tmp, forge, photos, client)
}

fn add(client: &Path, name: &str, content: &[u8]) {
    std::fs::write(client.join(name), content).unwrap();
    git(client, &["annex", "add", "-q", name]);
    git(client, &["commit", "-q", "-m", name]);
}

/// git-annex's own check of every object in the served repository.
fn fsck_served(photos: &Path) {
    let out = git(photos, &["annex", "fsck", "--all"]);
    assert!(!out.contains("failed"), "{out}");
}

#[test]
fn git_annex_through_the_forges_axum_router() {
    let (tmp, forge, photos, client) = setup();
    let uuid = git(&photos, &["config", "annex.uuid"]).trim().to_owned();
    let users = annex_examples::forge_http::Users::parse("alice:secret");
    let app = annex_examples::forge_http::router(&forge, users);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });

    // The forge's own routes answer beside git-annex's.
    let page = output(&mut command(
        tmp.path(),
        "curl",
        &["-s", &format!("http://{addr}/api/health")],
    ));
    assert_eq!(String::from_utf8_lossy(&page.stdout), "ok\n");

    git(
        &client,
        &["remote", "add", "forge", "http://127.0.0.1:9/nothing.git"],
    );
    git(&client, &["config", "remote.forge.annex-uuid", &uuid]);
    let url = format!("annex+http://{addr}/git-annex/");
    git(&client, &["config", "remote.forge.annexUrl", &url]);
    add(&client, "holiday.jpg", b"a photo from the holidays\n");

    // Without credentials: storing is refused by the forge's rule.
    git(&client, &["config", "credential.helper", ""]);
    let out = output(
        command(
            &client,
            "git",
            &["annex", "copy", "--to", "forge", "holiday.jpg"],
        )
        .env("GIT_TERMINAL_PROMPT", "0"),
    );
    assert!(!out.status.success(), "stored without signing in");

    // As alice, through a credential helper: stored, dropped here with the
    // forge's lock as proof, and got back.
    let helper = tmp.path().join("credential-helper");
    executable(
        &helper,
        "#!/bin/sh\nif [ \"$1\" = get ]; then echo username=alice; echo password=secret; fi\n",
    );
    git(
        &client,
        &["config", "credential.helper", helper.to_str().unwrap()],
    );
    git(
        &client,
        &["annex", "copy", "-q", "--to", "forge", "holiday.jpg"],
    );
    git(&client, &["annex", "drop", "-q", "holiday.jpg"]);

    // Reading needs no one signed in.
    git(&client, &["config", "credential.helper", ""]);
    git(
        &client,
        &["annex", "get", "-q", "--from", "forge", "holiday.jpg"],
    );
    assert_eq!(
        std::fs::read(client.join("holiday.jpg")).unwrap(),
        b"a photo from the holidays\n"
    );
    fsck_served(&photos);

    // The forge's metrics, with the git-annex service's beside its own.
    let page = output(&mut command(
        tmp.path(),
        "curl",
        &["-s", &format!("http://{addr}/metrics")],
    ));
    let metrics = String::from_utf8_lossy(&page.stdout);
    assert!(metrics.contains("# TYPE forge_pages counter"), "{metrics}");
    assert!(
        metrics.contains(r#"annex_http_requests_total{endpoint="put",status="200"} "#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"annex_http_requests_total{endpoint="key",status="200"} "#),
        "{metrics}"
    );
}

#[test]
fn git_annex_through_the_forges_ssh_handler() {
    let (tmp, forge, photos, client) = setup();
    let uuid = git(&photos, &["config", "annex.uuid"]).trim().to_owned();
    // ssh as the forge's server runs it: the client's command in
    // SSH_ORIGINAL_COMMAND, the forced command run for user alice.
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    executable(
        &bin.join("ssh"),
        &format!(
            "#!/bin/bash\nhost=\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n    -o|-p|-F|-i|-l|-S) shift 2;;\n    -*) shift;;\n    *) if [ -z \"$host\" ]; then host=$1; shift; else break; fi;;\n  esac\ndone\nSSH_ORIGINAL_COMMAND=\"$*\" FORGE_WRITERS=alice exec {} {} alice\n",
            env!("CARGO_BIN_EXE_forge_ssh"),
            forge.display()
        ),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let annex = |args: &[&str]| {
        let mut a = vec!["annex"];
        a.extend_from_slice(args);
        let out = output(command(&client, "git", &a).env("PATH", &path));
        assert!(
            out.status.success(),
            "git {a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&client, &["config", "annex.sshcaching", "false"]);
    // The client names the repository its own way; the forge chooses.
    git(
        &client,
        &["remote", "add", "forge", "forge.example:/~/photos.git"],
    );
    git(&client, &["config", "remote.forge.annex-uuid", &uuid]);
    add(&client, "song.ogg", b"a song\n");
    annex(&["copy", "-q", "--to", "forge", "song.ogg"]);
    annex(&["drop", "-q", "song.ogg"]);
    annex(&["get", "-q", "--from", "forge", "song.ogg"]);
    assert_eq!(std::fs::read(client.join("song.ogg")).unwrap(), b"a song\n");
    // The session committed its locations to the forge's git-annex branch.
    let journal = photos.join(".git/annex/journal");
    let left = std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "journal not committed");
    fsck_served(&photos);
}
