//! `annex placement` predicts where git-annex puts content: with balanced
//! preferred content over directory special remotes (some with a
//! maxsize), the repositories our placement says want each file are the
//! ones `git annex copy --auto` then sends it to.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use annex_test_support::{command, git, run_ok};

fn annex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_annex"))
}

fn setup(
    nodes: usize,
    groupwanted: &str,
    maxsizes: &[(usize, &str)],
) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("repo");
    git(t.path(), &["init", "-q", "repo"]);
    git(&dir, &["config", "user.name", "t"]);
    git(&dir, &["config", "user.email", "t@example.invalid"]);
    git(&dir, &["annex", "init", "-q", "main"]);
    for n in 0..nodes {
        let d = t.path().join(format!("d{n}"));
        std::fs::create_dir(&d).unwrap();
        git(
            &dir,
            &[
                "annex",
                "initremote",
                "-q",
                &format!("n{n}"),
                "type=directory",
                &format!("directory={}", d.display()),
                "encryption=none",
            ],
        );
        git(&dir, &["annex", "group", &format!("n{n}"), "nodes"]);
        git(&dir, &["annex", "wanted", &format!("n{n}"), "groupwanted"]);
    }
    git(&dir, &["annex", "groupwanted", "nodes", groupwanted]);
    for (n, size) in maxsizes {
        git(&dir, &["annex", "maxsize", &format!("n{n}"), size]);
    }
    (t, dir)
}

fn uuid_of(dir: &Path, remote: &str) -> String {
    git(dir, &["config", &format!("remote.{remote}.annex-uuid")])
        .trim()
        .to_string()
}

/// Adds `files` one at a time; before sending each, asks our placement
/// which nodes want it, then lets git-annex send it where it wants and
/// checks the two agree.
fn predict_and_send(dir: &Path, nodes: usize, files: &[(String, usize)]) -> usize {
    let mut spread = 0;
    for (i, (name, size)) in files.iter().enumerate() {
        let content: Vec<u8> = (0..*size).map(|b| (b * 7 + i * 13) as u8).collect();
        std::fs::write(dir.join(name), content).unwrap();
        git(dir, &["annex", "add", "--quiet", name]);
        git(dir, &["commit", "-q", "-m", name]);
        let out = run_ok(&mut command(
            dir,
            annex_bin(),
            &["placement", "--json", "--group", "nodes", name],
        ));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let predicted: BTreeSet<String> = v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["wants"] == true)
            .map(|r| r["uuid"].as_str().unwrap().to_string())
            .collect();
        for n in 0..nodes {
            git(
                dir,
                &[
                    "annex",
                    "copy",
                    "--quiet",
                    "--auto",
                    "--to",
                    &format!("n{n}"),
                    name,
                ],
            );
        }
        let whereis = git(dir, &["annex", "whereis", "--json", name]);
        let w: serde_json::Value = serde_json::from_str(whereis.trim()).unwrap();
        let node_uuids: BTreeSet<String> =
            (0..nodes).map(|n| uuid_of(dir, &format!("n{n}"))).collect();
        let actual: BTreeSet<String> = w["whereis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["uuid"].as_str().unwrap().to_string())
            .filter(|u| node_uuids.contains(u))
            .collect();
        assert_eq!(predicted, actual, "placement of {name} ({size} bytes)");
        spread += actual.len();
    }
    spread
}

#[test]
fn balanced_placement_is_where_git_annex_sends_content() {
    let (_t, dir) = setup(5, "balanced=nodes:2", &[(1, "2kb"), (3, "600")]);
    let files: Vec<(String, usize)> = (0..14)
        .map(|i| (format!("f{i}.bin"), 100 + i * 37))
        .collect();
    let copies = predict_and_send(&dir, 5, &files);
    // Two copies of each, except where full nodes leave fewer candidates.
    assert!(copies >= 14, "{copies}");
}

#[test]
fn sizebalanced_placement_is_where_git_annex_sends_content() {
    let (_t, dir) = setup(
        4,
        "sizebalanced=nodes:1",
        &[(0, "5kb"), (1, "3kb"), (2, "4kb"), (3, "1kb")],
    );
    let files: Vec<(String, usize)> = (0..12)
        .map(|i| (format!("s{i}.bin"), 200 + i * 53))
        .collect();
    let copies = predict_and_send(&dir, 4, &files);
    assert!(copies >= 10, "{copies}");
}
