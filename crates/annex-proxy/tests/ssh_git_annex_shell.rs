//! The command [`GitAnnexShell`] sends over ssh, read on the other side
//! both ways an ssh login reads it: by the user's shell (`sh -c`), and by
//! the real git-annex-shell as a forced command or login shell
//! (`git-annex-shell -c "COMMAND"`). A repository whose path holds every
//! character a shell treats specially answers `configlist` either way.

use annex_proxy::ssh::GitAnnexShell;
use annex_test_support::{init_annex_repo, output};

#[test]
fn both_ways_of_reading_the_command_reach_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    // No `/`; the rest of what a shell reads specially, and UTF-8.
    let name = "it's \"q\" $HOME;`true`&|<>(){}[]*?~!#\\ \t é";
    let (repo, uuid) = init_annex_repo(tmp.path(), name, "hard path");
    let path = repo.to_str().unwrap();
    let cmd = GitAnnexShell::new("localhost", None, None, "configlist", &[path]).unwrap();
    let want = format!("annex.uuid={uuid}");
    for (program, args) in [
        ("sh", ["-c", cmd.remote_command()]),
        ("git-annex-shell", ["-c", cmd.remote_command()]),
    ] {
        let out = output(std::process::Command::new(program).args(args));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.lines().any(|l| l == want),
            "{program}: {out:?}"
        );
    }
}
