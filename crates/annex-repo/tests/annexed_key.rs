//! `annexed_key` reads the key of a work-tree file as git-annex does:
//! locked files (symlinks) and unlocked files whose content is absent
//! (pointer files) agree with `git annex lookupkey`; and a file is taken
//! as a pointer exactly when git-annex's clean filter takes it as one
//! when it is `git add`ed (then the index holds the key it points to,
//! else git-annex stores the file's own content under another key).

use std::path::Path;

use annex_repo::{annexed_key, worktree::MAX_POINTER_SIZE};
use annex_test_support::{git, init_annex_repo};

/// `git annex lookupkey FILE`: the key git-annex finds, if any.
fn lookupkey(dir: &Path, file: &str) -> Option<String> {
    let out = annex_test_support::output(&mut annex_test_support::command(
        dir,
        "git",
        &["annex", "lookupkey", file],
    ));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn ours(dir: &Path, file: &str) -> Option<String> {
    annexed_key(&dir.join(file)).map(|k| k.to_string())
}

#[test]
fn locked_and_unlocked_files_as_git_annex_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init_annex_repo(tmp.path(), "r", "r");
    std::fs::write(dir.join("locked.txt"), "locked content\n").unwrap();
    std::fs::write(dir.join("unlocked.bin"), "unlocked content\n").unwrap();
    git(&dir, &["annex", "add", "-q", "locked.txt", "unlocked.bin"]);
    git(&dir, &["annex", "unlock", "-q", "unlocked.bin"]);
    git(&dir, &["annex", "drop", "-q", "--force", "unlocked.bin"]);
    for file in ["locked.txt", "unlocked.bin"] {
        let theirs = lookupkey(&dir, file);
        assert!(theirs.is_some(), "{file}");
        assert_eq!(ours(&dir, file), theirs, "{file}");
    }
    // Not annexed: a file in git, a symlink elsewhere.
    std::fs::write(dir.join("plain"), "plain\n").unwrap();
    std::os::unix::fs::symlink("plain", dir.join("link")).unwrap();
    assert_eq!(ours(&dir, "plain"), None);
    assert_eq!(ours(&dir, "link"), None);
}

#[test]
fn pointer_files_are_those_git_annex_takes_for_pointers() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init_annex_repo(tmp.path(), "r", "r");
    std::fs::write(dir.join("content.txt"), "some content\n").unwrap();
    git(&dir, &["annex", "add", "-q", "content.txt"]);
    let key = lookupkey(&dir, "content.txt").unwrap();
    let first = format!("/annex/objects/{key}\n");
    // A pointer whose further line fills it to `len` bytes.
    let padded = |len: usize| {
        let mut text = format!("{first}/annex/").into_bytes();
        text.resize(len - 1, b'a');
        text.push(b'\n');
        text
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("plain", first.clone().into_bytes()),
        ("no-newline", first.trim_end().as_bytes().to_vec()),
        ("crlf", format!("{}\r\n", first.trim_end()).into_bytes()),
        (
            "more-lines",
            format!("{first}/annex/x\n/annex/y\n").into_bytes(),
        ),
        ("appended", format!("{first}appended\n").into_bytes()),
        ("unterminated", format!("{first}/annex/x").into_bytes()),
        ("at-limit", padded(MAX_POINTER_SIZE)),
        ("over-limit", padded(MAX_POINTER_SIZE + 1)),
        (
            "link-path",
            format!("../.git/annex/objects/Ab/Cd/{key}/{key}\n").into_bytes(),
        ),
        ("not-a-key", b"/annex/objects/not a key\n".to_vec()),
        ("text", b"hello\n".to_vec()),
    ];
    let mut agreed_pointers = 0;
    for (name, text) in &cases {
        std::fs::write(dir.join(name), text).unwrap();
        let found = ours(&dir, name);
        git(&dir, &["add", name]);
        let theirs = lookupkey(&dir, name);
        let git_annex_pointer = theirs.as_deref() == Some(key.as_str());
        assert_eq!(
            found.as_deref() == Some(key.as_str()),
            git_annex_pointer,
            "{name}: ours {found:?}, git-annex {theirs:?}"
        );
        assert!(found.is_none() || git_annex_pointer, "{name}");
        agreed_pointers += usize::from(git_annex_pointer);
    }
    // Both kinds were seen.
    assert_eq!(agreed_pointers, 6);
}
