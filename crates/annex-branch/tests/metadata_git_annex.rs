//! Per-key metadata against the real git-annex: what `git annex metadata`
//! sets, and logs written by hand with every oddity of the format, must
//! read as `git annex metadata --json` shows them (names, values and the
//! `lastchanged` pseudo fields); and the changes this crate makes must be
//! written byte for byte as git-annex writes the same changes at the same
//! clock.
//!
//! git-annex must be installed (scripts/install-deps.sh); these tests fail
//! without it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use annex_branch::key_metadata::metadata_log_path;
use annex_branch::logs::metadata::{fold_field, ModMeta};
use annex_branch::{Branch, VectorClock};
use annex_test_support::{command, git, init_annex_repo, run_ok};
use annex_types::Key;

/// Field names and values, as shown by git-annex or read by this crate.
type Shown = BTreeMap<String, BTreeSet<String>>;

struct Repo {
    _t: tempfile::TempDir,
    dir: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let t = tempfile::tempdir().unwrap();
        let (dir, _) = init_annex_repo(t.path(), "r", "here");
        git(&dir, &["config", "user.name", "t"]);
        git(&dir, &["config", "user.email", "t@example.invalid"]);
        Repo { _t: t, dir }
    }

    fn branch(&self) -> Branch {
        Branch::open(&self.dir).unwrap()
    }

    /// `git annex ARGS`, with git-annex's clock at `clock` when given.
    fn annex(&self, clock: Option<i64>, args: &[&str]) -> String {
        let mut a = vec!["annex"];
        a.extend_from_slice(args);
        let mut c = command(&self.dir, "git", &a);
        if let Some(s) = clock {
            c.env("GIT_ANNEX_VECTOR_CLOCK", s.to_string());
        }
        run_ok(&mut c)
    }

    /// Adds a file with `content` and returns its key.
    fn add(&self, name: &str, content: &str) -> Key {
        std::fs::write(self.dir.join(name), content).unwrap();
        self.annex(None, &["add", "-q", name]);
        git(&self.dir, &["commit", "-q", "-m", name]);
        let k = self.annex(None, &["lookupkey", name]);
        Key::parse(k.trim()).unwrap()
    }

    /// What `git annex metadata --json` shows for the key.
    fn shown_by_git_annex(&self, key: &Key) -> Shown {
        let out = self.annex(None, &["metadata", "--json", &format!("--key={key}")]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["fields"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(f, vs)| {
                let vs = vs
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect();
                (f.clone(), vs)
            })
            .collect()
    }

    /// What this crate reads, in the same form, after checking that
    /// `Branch::metadata` is the same with folded names.
    fn read_by_us(&self, key: &Key) -> Shown {
        let b = self.branch();
        let named = b.metadata_fields(key).unwrap();
        let md = b.metadata(key).unwrap();
        assert_eq!(
            md.0,
            named
                .iter()
                .map(|(k, f)| (k.clone(), f.values.clone()))
                .collect::<BTreeMap<_, _>>()
        );
        for (k, f) in &named {
            assert_eq!(&fold_field(&f.name), k);
        }
        named
            .into_values()
            .map(|f| {
                let vs = f
                    .values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                (f.name, vs)
            })
            .collect()
    }

    fn assert_agree(&self, key: &Key, what: &str) {
        assert_eq!(self.read_by_us(key), self.shown_by_git_annex(key), "{what}");
    }

    /// Commits `data` as the key's metadata log on the git-annex branch,
    /// with git plumbing.
    fn put_committed(&self, key: &Key, data: &[u8]) {
        let dir = &self.dir;
        let index = dir.join(".git/metadata-test-index");
        let blob = dir.join(".git/metadata-test-blob");
        std::fs::write(&blob, data).unwrap();
        let with_index =
            |args: &[&str]| run_ok(command(dir, "git", args).env("GIT_INDEX_FILE", &index));
        with_index(&["read-tree", "refs/heads/git-annex"]);
        let sha = git(dir, &["hash-object", "-w", blob.to_str().unwrap()]);
        let info = format!("100644,{},{}", sha.trim(), metadata_log_path(key));
        with_index(&["update-index", "--add", "--cacheinfo", &info]);
        let tree = with_index(&["write-tree"]);
        let commit = git(
            dir,
            &[
                "commit-tree",
                tree.trim(),
                "-p",
                "refs/heads/git-annex",
                "-m",
                "metadata written by the tests",
            ],
        );
        git(dir, &["update-ref", "refs/heads/git-annex", commit.trim()]);
        std::fs::remove_file(&index).unwrap();
    }

    /// Puts `data` in the journal as the key's metadata log.
    fn put_journalled(&self, key: &Key, data: &[u8]) {
        let b = self.branch();
        b.change(&metadata_log_path(key), |_| Some(data.to_vec()))
            .unwrap();
    }

    fn log(&self, key: &Key) -> String {
        String::from_utf8(self.branch().read(&metadata_log_path(key)).unwrap()).unwrap()
    }
}

fn key(n: usize) -> Key {
    Key::parse(&format!("SHA256E-s{n}--{n:064x}.dat")).unwrap()
}

fn on_file<'a>(file: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["metadata", "-q"];
    a.extend_from_slice(args);
    a.push(file);
    a
}

#[test]
fn what_git_annex_sets_reads_the_same() {
    let r = Repo::new();
    let a = r.add("a", "first\n");
    let b = r.add("b", "second\n");
    let c = r.add("c", "third\n");
    // The log is where git-annex keeps it.
    r.annex(None, &on_file("a", &["-s", "Author=Alice"]));
    let path = metadata_log_path(&a);
    git(&r.dir, &["cat-file", "-e", &format!("git-annex:{path}")]);
    r.assert_agree(&a, "a set");
    let steps: &[(&str, &[&str])] = &[
        ("a", &["-t", "tag1", "-t", "two words", "-t", "!bang"]),
        (
            "a",
            &[
                "-s",
                "author+=bob",
                "-s",
                "note=line1\nline2",
                "-s",
                "empty=",
            ],
        ),
        ("b", &["-s", "year=2024", "-s", "month=01", "-s", "n=5"]),
        ("a", &["-u", "tag1", "-r", "AUTHOR"]),
        (
            "b",
            &["-s", "n-=5", "-s", "n+=6", "-s", "n?=7", "-s", "new?=1"],
        ),
        ("c", &["-s", "Straße=1", "-s", "x.y_z-w=é"]),
        ("c", &["-s", "STRASSE+=2", "-s", "ünïcode=ok"]),
        ("c", &["--remove-all"]),
        ("c", &["-s", "back=again", "-s", "lastchanged=ignored"]),
        ("b", &["-s", "N=10", "-s", "tag+=x y"]),
    ];
    for (i, (file, args)) in steps.iter().enumerate() {
        // Every other step stays in the journal, which we read first.
        let mut cmd = on_file(file, args);
        if i % 2 == 1 {
            cmd.splice(1..1, ["-c", "annex.alwayscommit=false"]);
        }
        r.annex(None, &cmd);
        for k in [&a, &b, &c] {
            r.assert_agree(k, &format!("after {file} {args:?}"));
        }
    }
    assert!(r.shown_by_git_annex(&c).contains_key("lastchanged"));
    assert!(r.read_by_us(&a).contains_key("tag-lastchanged"));
}

/// Logs as only a hand (or a union merge, or a future git-annex) writes
/// them.
const CRAFTED: &[&str] = &[
    "100s foo +x\n200s foo -x bar +y\n",
    "100s foo -x\n",
    "100s foo +x\n200s garbage\n",
    "100s foo +x +y\n100s foo -x\n",
    "100s foo -x\n100s foo +x\n",
    "100s foo +x\n100s foo -x\n",
    "100s foo +x\n100s foo +x -y\n150s foo -y\n100s foo -x +y\n",
    "100s b -x\n100s a +q b +x\n",
    "100s a +q b +x\n100s b -x\n",
    "100s foo +!Zm9v +!Zm9 +!Zm +!Z +! bar +a\n",
    "100s foo +!Zm9= bar +a\n",
    "100s foo +!Zh== +!Zm9vYmF= +!Zm9v====\n",
    "100s foo +!@@@@ +b\n",
    "100s foo  +x  +y bar +z\n",
    "100s foo +\n",
    "100s foo +x FOO -x\n",
    "-5.5s foo +x\n",
    "0 foo +x\n",
    "100s Foo +x\n200s foo +y\n",
    "100s lastchanged +x foo-lastchanged +q foo +z\n",
    "-60000000000s foo +x\n",
    "-70000000000s foo +x\n",
    "400000000000s foo +x\n",
    "1e3s foo +x\n100s bar +y x\n",
    "100s foo +x\r\r200s bar +y\n",
    "100.9s foo +x\n",
    "100s foo +x\n 200s foo -x\n",
    "100s foo *x\n",
    "100s\n200s\n",
    "100s \n",
    "100s foo +x\u{a0}bar +y\n",
    "100s Straße +x STRASSE +y\n",
    "100s Σ +x ς +y σ +z\n",
    "100s ﬁ +x FI +y\n",
    "100s \u{ab70} +x \u{13a0} +y \u{13f8} +z \u{13f0} +w\n",
    "+100s a +1\n100 a -1 b +2\n",
    "100s a +1\n200s A -1 +2\n150s a +3\n",
    "1431286201.113452s tag +x\n1431286201.5s tag -x +y\n",
];

#[test]
fn hand_written_logs_read_the_same() {
    let r = Repo::new();
    for (i, log) in CRAFTED.iter().enumerate() {
        let k = key(i + 1);
        if i % 2 == 0 {
            r.put_committed(&k, log.as_bytes());
        } else {
            r.put_journalled(&k, log.as_bytes());
        }
        r.assert_agree(&k, log);
    }
    // A field name that is not UTF-8 ends its line.
    let k = key(1000);
    r.put_committed(&k, b"100s a +1 \xff +x b +2\n200s c +3\n");
    r.assert_agree(&k, "bad field name");
}

/// The same modifications as `git annex metadata` options and as ours.
fn mods(args: &[&str]) -> Vec<ModMeta> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        out.push(match *a {
            "--remove-all" => ModMeta::DelAll,
            "-s" => ModMeta::parse(it.next().unwrap()).unwrap(),
            "-t" => ModMeta::Add("tag".into(), it.next().unwrap().as_bytes().to_vec()),
            "-u" => ModMeta::Del("tag".into(), Some(it.next().unwrap().as_bytes().to_vec())),
            "-r" => ModMeta::Del(it.next().unwrap().to_string(), None),
            other => panic!("{other}"),
        });
    }
    out
}

#[test]
fn what_we_write_git_annex_writes() {
    let r = Repo::new();
    let b = r.branch();
    let starts: &[&str] = &[
        "",
        "100s foo +x\n",
        "100s bar +y\n150s bar -y baz +w\n200s foo -x\n",
        "5000s foo +x\n",
        "100s Foo +x +y\n120s FOO -y\n",
        "100s foo +x\njunk\n",
    ];
    let steps: &[&[&str]] = &[
        &["-r", "nosuch"],
        &["-s", "foo=y", "-s", "foo+=z"],
        &["--remove-all"],
        &["-s", "Bar=1"],
        &["-s", "v=a b", "-s", "v+=!x", "-s", "v+=", "-s", "v+=l\r"],
        &["-s", "lastchanged=x"],
        &["-s", "foo-lastchanged=x", "-t", "t1"],
        &["-t", "t2", "-u", "t1", "-s", "FOO?=q", "-s", "new?=1"],
        &["-s", "foo-=y", "-s", "foo+=y"],
        &["-r", "TAG"],
    ];
    for (si, start) in starts.iter().enumerate() {
        let theirs = key(2000 + 2 * si);
        let ours = key(2001 + 2 * si);
        r.put_committed(&theirs, start.as_bytes());
        r.put_committed(&ours, start.as_bytes());
        for (i, step) in steps.iter().enumerate() {
            let clock = 1000 + i as i64;
            let mut a = vec!["metadata", "-q"];
            a.extend_from_slice(step);
            let k = format!("--key={theirs}");
            a.push(&k);
            r.annex(Some(clock), &a);
            b.change_metadata_at(&ours, &mods(step), VectorClock::from_secs(clock))
                .unwrap();
            let expect = r.log(&theirs);
            // git-annex drops lines that do not parse; we keep them last.
            let got = r.log(&ours).replace("junk\n", "");
            assert_eq!(got, expect, "{start:?} then {step:?}");
            assert_eq!(
                r.shown_by_git_annex(&ours),
                r.shown_by_git_annex(&theirs),
                "{start:?} then {step:?}"
            );
            r.assert_agree(&ours, "ours");
        }
    }
}
