//! `metadata=` terms against the real git-annex: in a repository where a
//! key has metadata set by `git annex metadata`, every term must be refused
//! with the message `git annex matchexpression` gives, or match exactly
//! when git-annex's does (exit 0 for a match, 1 for none, 42 and `bad
//! expression: Parse failure: MESSAGE` for a refused term). The key's
//! metadata is read from the branch by annex-branch, so this also checks
//! that what `metadata=` sees (the `lastchanged` pseudo fields included) is
//! what git-annex sees.
//!
//! git-annex must be installed (scripts/install-deps.sh); these tests fail
//! without it.

use std::path::Path;

use annex_branch::Branch;
use annex_preferred::metadata::MetaDataMatcher;
use annex_test_support::{command, git, init_annex_repo, output, PseudoRandom};
use annex_types::Key;

/// What git-annex made of a term.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Match,
    NoMatch,
    Refused(String),
    Failed(String),
}

fn git_annex(dir: &Path, key: &Key, term: &str) -> Outcome {
    let expr = format!("metadata={term}");
    let key = key.to_string();
    let out = output(&mut command(
        dir,
        "git",
        &["annex", "matchexpression", &expr, "--key", &key],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Outcome::Match,
        Some(1) if stderr.contains("failed to compile regex") => Outcome::Failed(stderr),
        Some(1) if stderr.is_empty() => Outcome::NoMatch,
        Some(42) => {
            let msg = stderr
                .trim_end()
                .strip_prefix("bad expression: Parse failure: ")
                .unwrap_or_else(|| panic!("{term:?}: {stderr}"));
            Outcome::Refused(msg.to_string())
        }
        other => panic!("{term:?}: exit {other:?}: {stderr}"),
    }
}

fn ours(md: &annex_branch::logs::metadata::MetaData, term: &str) -> Outcome {
    match MetaDataMatcher::parse(term) {
        Err(e) => Outcome::Refused(e),
        Ok(m) => match m.try_matches(md) {
            Ok(true) => Outcome::Match,
            Ok(false) => Outcome::NoMatch,
            Err(e) => Outcome::Failed(e.to_string()),
        },
    }
}

/// Field values set with `git annex metadata -s FIELD=VALUE`.
const VALUES: &[(&str, &str)] = &[
    ("foo", "Hello"),
    ("n", "10"),
    ("path", "a/b"),
    ("p2", "a//b"),
    ("bs", "a\\b"),
    ("e", ""),
    ("d", "2024-01-05"),
    ("h", "0x10"),
    ("o", "0O17"),
    ("w", " 7 "),
    ("p", "(3)"),
    ("pp", " ( ( 3 ) ) "),
    ("neg", "-5"),
    ("s", "- 5"),
    ("nn", "1e+2"),
    ("u", "1_0"),
    ("t", "1e"),
    ("dot", ".5"),
    ("nb", "7\u{a0}"),
    ("nel", "7\u{85}"),
    ("ls", "7\u{2028}"),
    ("ar", "٣"),
    ("nl", "\n7\n"),
    ("z", "-0"),
    ("xn", "NaN"),
    ("mn", "-NaN"),
    ("inf", "Infinity"),
    ("bin", "0b11"),
    ("big", "9007199254740993"),
    ("ex", "1e-400"),
    ("he", "1e-99999999999999999999"),
    ("wrap", "1e9223372036854775807"),
    ("ml", "x\nHello"),
    ("Straße", "x"),
    ("multi", "1"),
    ("multi+", "20"),
    ("multi+", "300"),
    ("tag+", "two words"),
    ("tag+", "B"),
    ("tag+", "!bang"),
];

const TERMS: &[&str] = &[
    // Globs.
    "foo=hello",
    "foo=HELLO",
    "FOO=hello",
    "foo=h*",
    "foo=H?LLO",
    "foo=[[:upper:]]ello",
    "foo=[[:lower:]]ELLO",
    "foo=[!h]*",
    "foo=[a-h]*",
    "foo=*o\\>",
    "foo=hel'*",
    "foo=<x",
    "foo=*",
    "foo=",
    "foo",
    "e",
    "e=",
    "e=*",
    "path=a/b",
    "path=a*b",
    "path=a?b",
    "p2=a/b",
    "p2=a//b",
    "bs=a\\b",
    "bs=a\\\\b",
    "bs=a?b",
    "bs=a[\\]b",
    "ml=hello",
    "ml=x",
    "ml=x*",
    "ml=x?hello",
    "tag=two*",
    "tag=b",
    "tag=!*",
    "straße=X",
    "STRASSE=x",
    "multi=2*",
    "nosuch=*",
    "nosuch=[",
    "foo=[",
    "foo=[]",
    "foo=a[",
    "lastchanged=2*",
    "foo-lastchanged=*@*",
    // Comparisons that are not numbers on both sides.
    "d>2024-01-04",
    "d<2024-01-06",
    "d<2024-1-6",
    "d>=2024-01-05",
    "d<=2024-01-05",
    "lastchanged>1969",
    "LASTCHANGED>2000-01-01@00-00-00",
    "foo-lastchanged<9999",
    "n<>x",
    "n=>1",
    "n>=",
    "n<",
    "n>",
    "multi<100",
    "multi>25",
    // Refused.
    "",
    "=x",
    "<5",
    ">=1",
    "_a=x",
    "f$=x",
    "-x>1",
    "a,b=1",
    "a/b=1",
    "\u{e9}\u{301}=x",
    // Accepted names.
    "a_=x",
    "é=x",
    "1=x",
    "a.b-c_d<3",
];

/// Operands for generated comparisons.
const OPERANDS: &[&str] = &[
    "10",
    "9",
    "9.5",
    "0xA",
    "0x9",
    "0o17",
    "-5",
    "-6",
    "1e1",
    "1E1",
    "1e",
    "1.5e1",
    "+5",
    ".5",
    "5.",
    "0b1",
    "NaN",
    "Infinity",
    "-Infinity",
    "0",
    "-0",
    "7",
    "8",
    "6",
    "2",
    "4",
    "100",
    "101",
    "99",
    "1e300",
    "1e-999",
    "1e99999",
    "9007199254740992",
    "abc",
    "J",
    "O",
    "٣",
    "2024-01-05",
];

const OPS: &[&str] = &["<", "<=", ">", ">="];

#[test]
fn metadata_terms_agree_with_git_annex() {
    let t = tempfile::tempdir().unwrap();
    let (dir, _) = init_annex_repo(t.path(), "r", "here");
    std::fs::write(dir.join("f"), "content\n").unwrap();
    git(&dir, &["annex", "add", "-q", "f"]);
    git(&dir, &["commit", "-q", "-m", "f"]);
    let key = Key::parse(git(&dir, &["annex", "lookupkey", "f"]).trim()).unwrap();
    let mut args = vec!["annex".to_string(), "metadata".into(), "-q".into()];
    for (f, v) in VALUES {
        args.push("-s".into());
        args.push(format!("{f}={v}"));
    }
    args.push(format!("--key={key}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    git(&dir, &args);

    let md = Branch::open(&dir).unwrap().metadata(&key).unwrap();

    let mut terms: Vec<String> = TERMS.iter().map(|s| s.to_string()).collect();
    let fields: Vec<&str> = VALUES
        .iter()
        .map(|(f, _)| f.trim_end_matches('+'))
        .chain(["lastchanged", "nosuch"])
        .collect();
    let mut rng = PseudoRandom::new(20250416);
    let pick = |rng: &mut PseudoRandom, n: usize| (rng.next_u64() % n as u64) as usize;
    for _ in 0..400 {
        let f = fields[pick(&mut rng, fields.len())];
        let op = OPS[pick(&mut rng, OPS.len())];
        let v = OPERANDS[pick(&mut rng, OPERANDS.len())];
        terms.push(format!("{f}{op}{v}"));
    }
    terms.sort();
    terms.dedup();

    let mut seen = [0usize; 4];
    for term in &terms {
        let want = git_annex(&dir, &key, term);
        let got = ours(&md, term);
        match (&want, &got) {
            // git-annex's message has more around it.
            (Outcome::Failed(w), Outcome::Failed(g)) => {
                assert!(w.contains(g.as_str()), "{term:?}: {w} / {g}")
            }
            _ => assert_eq!(got, want, "metadata={term}"),
        }
        seen[match want {
            Outcome::Match => 0,
            Outcome::NoMatch => 1,
            Outcome::Refused(_) => 2,
            Outcome::Failed(_) => 3,
        }] += 1;
    }
    // Every outcome was exercised.
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
}
