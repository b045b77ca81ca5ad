//! `annex remote` against a repository served by the real git-annex-shell.

use std::path::Path;
use std::process::Output;

use annex_test_support::{command, git, init_annex_repo, output};

fn annex(dir: &Path, args: &[&str]) -> Output {
    output(&mut command(dir, env!("CARGO_BIN_EXE_annex"), args))
}

#[test]
fn checkpresent_get_put_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let (srv, _) = init_annex_repo(tmp.path(), "srv", "served");
    std::fs::write(srv.join("f"), b"some content\n").unwrap();
    git(&srv, &["annex", "add", "-q", "f"]);
    git(&srv, &["commit", "-qm", "add"]);
    let key = git(&srv, &["annex", "lookupkey", "f"]).trim().to_owned();
    let target = srv.to_str().unwrap();

    let out = annex(tmp.path(), &["remote", target, "checkpresent", &key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{key} present\n")
    );

    let out = annex(tmp.path(), &["remote", target, "get", &key, "-o", "copy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(tmp.path().join("copy")).unwrap(),
        b"some content\n"
    );
    assert!(!tmp.path().join("copy.part").exists());

    // A key whose content is not there: absent, exit 1.
    let missing = "SHA256E-s1--0000000000000000000000000000000000000000000000000000000000000000";
    let out = annex(tmp.path(), &["--help"]);
    assert!(out.status.success());
    let out = annex(tmp.path(), &["remote", target, "checkpresent", missing]);
    assert_eq!(out.status.code(), Some(1));

    // Put new content; git-annex verifies it and then has it.
    std::fs::write(tmp.path().join("abc"), b"abc").unwrap();
    let k2 = "SHA256E-s3--ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let out = annex(tmp.path(), &["remote", "--json", target, "put", k2, "abc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["success"], true);
    git(&srv, &["annex", "contentlocation", k2]);

    // Content that does not match its key is refused.
    std::fs::write(tmp.path().join("xyz"), b"xyz").unwrap();
    let out = annex(
        tmp.path(),
        &[
            "remote",
            target,
            "put",
            k2.replace("ba78", "ba79").as_str(),
            "xyz",
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    let out = annex(tmp.path(), &["remote", target, "remove", k2]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = annex(tmp.path(), &["remote", target, "checkpresent", k2]);
    assert_eq!(out.status.code(), Some(1));

    // A bad key is a clear error.
    let out = annex(tmp.path(), &["remote", target, "checkpresent", "not a key"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid git-annex key"));
}
