//! scripts/install-deps.sh against a make-believe apt: `apt-cache`,
//! `apt-get` and `git-annex` stand-ins first on the PATH, with the
//! versions of git-annex a bookworm-backports suite has. It installs
//! 10.20250416 while the suite has it, else what the suite has (with a
//! warning), and says which version is installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use annex_test_support::write_executable;

/// apt-cache madison: the suite's versions, then bookworm's own.
const APT_CACHE: &str = r#"#!/bin/bash
[ "$1" = madison ] && [ "$2" = git-annex ] || exit 1
for v in $FAKE_BACKPORTS; do
  echo " git-annex | $v | http://mirror.invalid/debian bookworm-backports/main amd64 Packages"
done
echo " git-annex | 10.20230126-3 | http://mirror.invalid/debian bookworm/main amd64 Packages"
"#;

/// apt-get: `update` does nothing; `install ... git-annex=PATTERN` installs
/// the first of the suite's versions the pattern matches, or fails as apt
/// does. Every call is logged.
const APT_GET: &str = r#"#!/bin/bash
echo "apt-get $*" >> "$FAKE_STATE/log"
[ "$1" = update ] && exit 0
for a in "$@"; do
  case $a in
    git-annex=*) want=${a#git-annex=} ;;
  esac
done
for v in $FAKE_BACKPORTS; do
  if [[ $v == $want ]]; then
    echo "${v%%-*}" > "$FAKE_STATE/installed"
    exit 0
  fi
done
echo "E: Version '$want' for 'git-annex' was not found" >&2
exit 100
"#;

/// git-annex version --raw: the version installed, if any.
const GIT_ANNEX: &str = r#"#!/bin/bash
[ -f "$FAKE_STATE/installed" ] || exit 127
printf '%s' "$(cat "$FAKE_STATE/installed")"
"#;

struct FakeApt {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    state: PathBuf,
    sources: PathBuf,
}

fn fake_apt() -> FakeApt {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    let state = tmp.path().join("state");
    let sources = tmp.path().join("sources.list.d");
    for d in [&bin, &state, &sources] {
        std::fs::create_dir(d).unwrap();
    }
    for (name, text) in [
        ("apt-cache", APT_CACHE),
        ("apt-get", APT_GET),
        ("git-annex", GIT_ANNEX),
    ] {
        write_executable(&bin.join(name), text);
    }
    std::fs::write(
        sources.join("debian.sources"),
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n\
         Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    )
    .unwrap();
    FakeApt {
        _tmp: tmp,
        bin,
        state,
        sources,
    }
}

impl FakeApt {
    /// Runs the script with the suite holding `backports` (newest first).
    fn run(&self, backports: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-deps.sh");
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .arg(script)
            .env("PATH", path)
            .env("APT_SOURCES_DIR", &self.sources)
            .env("FAKE_STATE", &self.state)
            .env("FAKE_BACKPORTS", backports.join(" "))
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("log")).unwrap_or_default()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn installs_10_20250416_while_the_suite_has_it() {
    let apt = fake_apt();
    let out = apt.run(&["10.20250929-1~bpo12+1", "10.20250416-2~bpo12+1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("install-deps: git-annex 10.20250416 installed"),
        "{out:?}"
    );
    assert!(
        apt.log().contains("git-annex=10.20250416-2~bpo12+1"),
        "{}",
        apt.log()
    );
    // The backports source, made from the machine's bookworm one.
    let made = std::fs::read_to_string(apt.sources.join("bookworm-backports.sources")).unwrap();
    assert!(made.contains("Suites: bookworm-backports\n"), "{made}");
    // Installed: a second run asks apt nothing.
    std::fs::remove_file(apt.state.join("log")).unwrap();
    let out = apt.run(&["10.20250929-1~bpo12+1", "10.20250416-2~bpo12+1"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(apt.log(), "");
}

#[test]
fn installs_what_the_suite_has_once_it_moved_on_and_says_so() {
    let apt = fake_apt();
    let out = apt.run(&["10.20251114-1~bpo12+1", "10.20250929-1~bpo12+1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("install-deps: git-annex 10.20251114 installed"),
        "{out:?}"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("no longer has git-annex 10.20250416")
            && err.contains("installing 10.20251114-1~bpo12+1"),
        "{err}"
    );
}

#[test]
fn fails_clearly_without_git_annex_in_the_suite() {
    let apt = fake_apt();
    let out = apt.run(&[]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        text(&out.stderr).contains("bookworm-backports has no git-annex"),
        "{out:?}"
    );
}
