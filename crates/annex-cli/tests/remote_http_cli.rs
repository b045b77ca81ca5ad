//! `annex remote annex+http://...` against the real `git annex p2phttp` and
//! against `annex p2phttp`: put, checkpresent, get, remove.
//!
//! git-annex 10.20250416 must be installed; these tests fail without it.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git and git-annex must be installed (scripts/install-deps.sh)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited: {status}");
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn annex(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annex"))
        .args(args)
        .current_dir(dir)
        .env("ANNEX_P2PHTTP_PASSWORD", "pw")
        .output()
        .unwrap()
}

fn session(served: &Path, url: &str, user: Option<&str>) {
    let dir = served.parent().unwrap();
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let file = dir.join("content");
    std::fs::write(&file, &data).unwrap();
    let key = {
        use sha2::{Digest, Sha256};
        let hex: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("SHA256E-s{}--{hex}", data.len())
    };
    let mut base: Vec<&str> = vec!["remote", url];
    if let Some(u) = user {
        base.extend(["--user", u]);
    }
    let run = |extra: &[&str]| {
        let mut a = base.clone();
        a.extend_from_slice(extra);
        annex(dir, &a)
    };
    let out = run(&["checkpresent", &key]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run(&["put", &key, file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["--json", "checkpresent", &key]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"present\":true"),
        "{out:?}"
    );
    let got = dir.join("got");
    let out = run(&["get", &key, "-o", got.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&got).unwrap(), data);
    // git-annex's fsck of what was stored.
    git(served, &["annex", "fsck", "--key", &key]);
    let out = run(&["remove", &key]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["checkpresent", &key]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

fn served_repo(tmp: &Path) -> (std::path::PathBuf, String) {
    let served = tmp.join("served");
    std::fs::create_dir(&served).unwrap();
    git(&served, &["init", "-q"]);
    git(&served, &["annex", "init", "-q", "served"]);
    let uuid = git(&served, &["config", "annex.uuid"]).trim().to_owned();
    (served, uuid)
}

#[test]
fn annex_remote_against_git_annex_p2phttp() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, uuid) = served_repo(tmp.path());
    let port = free_port();
    let mut child = Command::new("git-annex")
        .args([
            "p2phttp",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-J2",
        ])
        .args(["--authenv-http"])
        .env("GIT_ANNEX_P2PHTTP_PASSWORD_alice", "pw")
        .current_dir(&served)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(port, &mut child);
    let _server = Killed(child);
    let url = format!("annex+http://127.0.0.1:{port}/git-annex/{uuid}");
    // Without credentials: refused, with a message saying what to do.
    let out = annex(
        tmp.path(),
        &["remote", &url, "checkpresent", "SHA256E-s1--00"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("authentication"), "{err}");
    session(&served, &url, Some("alice"));
}

#[test]
fn annex_remote_against_annex_p2phttp() {
    let tmp = tempfile::tempdir().unwrap();
    let (served, uuid) = served_repo(tmp.path());
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_annex"))
        .args([
            "p2phttp",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--wideopen",
        ])
        .current_dir(&served)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(port, &mut child);
    let _server = Killed(child);
    let url = format!("annex+http://127.0.0.1:{port}/git-annex/");
    let out = annex(tmp.path(), &["remote", &url, "timestamp"]);
    assert!(!out.status.success(), "no UUID given: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--uuid"));
    let out = annex(tmp.path(), &["remote", &url, "--uuid", &uuid, "timestamp"]);
    assert!(out.status.success(), "{out:?}");
    session(&served, &format!("{url}{uuid}"), None);
}
