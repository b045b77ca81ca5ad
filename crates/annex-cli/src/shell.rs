//! `annex shell`: a git-annex-shell replacement for ssh access to a
//! repository. The binary behaves the same when invoked under the name
//! `git-annex-shell`.
//!
//! Supported: `configlist DIR`, `p2pstdio DIR UUID` (with `--uuid`), the
//! `-c "COMMAND"` form of ssh forced commands and login shells, the
//! `-- field=value --` fields, and git-upload-pack, git-receive-pack and
//! git-upload-archive handed on to git-shell. GIT_ANNEX_SHELL_READONLY,
//! GIT_ANNEX_SHELL_APPENDONLY, GIT_ANNEX_SHELL_LIMITED and
//! GIT_ANNEX_SHELL_DIRECTORY have git-annex's meanings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use annex_branch::Branch;
use annex_protocol::{serve_split_with_output, ServeEnd, ServerMode, ServerOptions};
use annex_proxy::Served;
use annex_repo::LocalRepository;
use anyhow::{anyhow, bail, Context};

const USAGE: &str = "usage: git-annex-shell [-c] COMMAND DIRECTORY [PARAMS ...] [--uuid UUID]
commands:
  configlist DIRECTORY             print the repository's annex.uuid
  p2pstdio DIRECTORY CLIENT-UUID   speak the git-annex P2P protocol on stdio
  git-upload-pack DIRECTORY        (and git-receive-pack, git-upload-archive)
                                   handed on to git-shell";

const BUILTINS: &[&str] = &[
    "configlist",
    "p2pstdio",
    "notifychanges",
    "inannex",
    "sendkey",
    "recvkey",
    "dropkey",
    "gcryptsetup",
];

/// Whether an environment variable is set to something non-empty.
fn env_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// Runs the shell with its arguments (without the program name).
pub fn run(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let mut args = args;
    // ssh passes `-c "COMMAND"`; skip leading -c options.
    while args.first().map(String::as_str) == Some("-c") {
        args.remove(0);
    }
    if args.is_empty() {
        bail!("bad parameters\n\n{USAGE}");
    }
    // A single string holding the whole command (login shell, forced
    // command): split it as a POSIX shell would.
    if args.len() == 1 {
        let words =
            shell_split(&args[0]).ok_or_else(|| anyhow!("cannot parse command {:?}", args[0]))?;
        match words.first().map(String::as_str) {
            Some("git-annex-shell") => return run(words[1..].to_vec()),
            Some(cmd) if BUILTINS.contains(&cmd) && words.len() > 1 => return run(words),
            Some(cmd) if BUILTINS.contains(&cmd) => bail!("bad parameters\n\n{USAGE}"),
            _ => return external(&words),
        }
    }
    let cmd = args[0].as_str();
    if !BUILTINS.contains(&cmd) {
        return external(&args);
    }
    let dir = args[1].clone();
    check_directory(Some(&dir))?;
    let (params, fields, uuid) = partition(&args[2..])?;
    let _ = fields;
    match cmd {
        "configlist" => configlist(&dir),
        "p2pstdio" => {
            let client = params
                .first()
                .ok_or_else(|| anyhow!("missing UUID parameter"))?;
            p2pstdio(&dir, client, uuid.as_deref())
        }
        other => bail!(
            "git-annex-shell {other} is not supported here; this server speaks the P2P protocol (p2pstdio), which git-annex uses since version 6.20180312"
        ),
    }
}

/// Splits parameters into plain ones, `-- field=value --` fields, and the
/// `--uuid` option.
#[allow(clippy::type_complexity)]
fn partition(
    args: &[String],
) -> anyhow::Result<(Vec<String>, Vec<(String, String)>, Option<String>)> {
    let mut params = Vec::new();
    let mut fields = Vec::new();
    let mut uuid = None;
    let mut in_fields = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => in_fields = !in_fields,
            "--uuid" => {
                uuid = Some(
                    it.next()
                        .ok_or_else(|| anyhow!("--uuid needs a value"))?
                        .clone(),
                );
            }
            s if s.starts_with("--uuid=") => uuid = Some(s["--uuid=".len()..].to_owned()),
            s if in_fields => {
                let (k, v) = s.split_once('=').unwrap_or((s, ""));
                fields.push((k.to_owned(), v.to_owned()));
            }
            s => params.push(s.to_owned()),
        }
    }
    Ok((params, fields, uuid))
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The repository path a client named: `~/x` and `/~/x` are under the
/// home directory, a relative path is relative to it.
fn resolve_dir(dir: &str) -> PathBuf {
    if let Some(rest) = dir.strip_prefix("/~/").or_else(|| dir.strip_prefix("~/")) {
        home().join(rest)
    } else if dir == "~" || dir == "/~" {
        home()
    } else {
        let p = Path::new(dir);
        if p.is_absolute() {
            p.to_owned()
        } else {
            home().join(p)
        }
    }
}

fn check_directory(dir: Option<&str>) -> anyhow::Result<()> {
    let Some(allowed) = std::env::var_os("GIT_ANNEX_SHELL_DIRECTORY") else {
        return Ok(());
    };
    let allowed = resolve_dir(&allowed.to_string_lossy());
    let Some(dir) = dir else {
        bail!(
            "Only allowed to access {} and could not determine directory from command line",
            allowed.display()
        );
    };
    let wanted = resolve_dir(dir);
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    if canon(&allowed) != canon(&wanted) {
        bail!(
            "Only allowed to access {} not {}",
            allowed.display(),
            wanted.display()
        );
    }
    Ok(())
}

fn open_repo(dir: &str) -> anyhow::Result<LocalRepository> {
    let path = resolve_dir(dir);
    LocalRepository::open(&path).with_context(|| {
        format!(
            "failed to read git config of git repository on {dir}; perhaps this repository is not set up correctly or has moved"
        )
    })
}

fn configlist(dir: &str) -> anyhow::Result<ExitCode> {
    let path = resolve_dir(dir);
    let git_dir = if path.join(".git").is_dir() {
        path.join(".git")
    } else {
        path.clone()
    };
    let cfg = annex_repo::config::GitConfig::read(&git_dir)
        .with_context(|| format!("{dir} is not a git repository"))?;
    println!("annex.uuid={}", cfg.get("annex.uuid").unwrap_or(""));
    println!("core.gcrypt-id={}", cfg.get("core.gcrypt-id").unwrap_or(""));
    Ok(ExitCode::SUCCESS)
}

fn p2pstdio(dir: &str, _client_uuid: &str, expected: Option<&str>) -> anyhow::Result<ExitCode> {
    use annex_protocol::Repository;
    // Why a request failed, where the peer is only told that it did:
    // standard error, which is the server's log (git-annex-shell writes
    // its failures there too).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
    let repo = open_repo(dir)?;
    let work = resolve_dir(dir);
    // A UUID other than this repository's is a repository it proxies, if
    // proxy.log and git config agree that it does.
    let mut proxied = None;
    let mut cluster = None;
    if let Some(expected) = expected.filter(|e| *e != repo.uuid().as_str()) {
        let branch = Branch::open(&work)?;
        let remotes = annex_repo::remotes::GitRemotes::read(repo.git_dir())?;
        let gateway = annex_proxy::Gateway::load(&branch, repo.uuid().clone(), remotes)?;
        match gateway.served(expected) {
            Ok(Served::Own) => {}
            Ok(Served::Node(p)) => proxied = Some((p, branch)),
            Ok(Served::Cluster(cu)) => {
                let branch = std::sync::Arc::new(std::sync::Mutex::new(branch));
                let jobs = annex_cluster::served::cluster_jobs(repo.git_dir());
                cluster = Some(annex_cluster::open_cluster(
                    &gateway, &cu, &work, &branch, jobs,
                )?);
            }
            Err(e) => bail!("{e}"),
        }
    }
    let mode = if env_set("GIT_ANNEX_SHELL_READONLY") {
        ServerMode::ReadOnly
    } else if env_set("GIT_ANNEX_SHELL_APPENDONLY") {
        ServerMode::AppendOnly
    } else {
        ServerMode::ReadWrite
    };
    let mut opts = ServerOptions {
        mode,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut node_git_dirs = Vec::new();
    let end = rt.block_on(async {
        if let Some((cluster, pools)) = cluster {
            // Content a local node has goes to standard output inside
            // the kernel, as for this repository's own.
            let (stdin, stdout) = (crate::stdio::stdin(), crate::stdio::stdout());
            let output = crate::stdio::stdout_file_output();
            let end = serve_split_with_output(stdin, stdout, output, &cluster, &opts).await;
            // The nodes' own git-annex-shells finish (and commit) too.
            for p in &pools {
                p.close().await;
                node_git_dirs.extend(p.local_git_dir());
            }
            return end.map_err(anyhow::Error::from);
        }
        match proxied {
            None => {
                let (stdin, stdout) = (crate::stdio::stdin(), crate::stdio::stdout());
                let output = crate::stdio::stdout_file_output();
                serve_split_with_output(stdin, stdout, output, &repo, &opts).await
            }
            Some((p, branch)) => {
                let branch = std::sync::Arc::new(std::sync::Mutex::new(branch));
                let node = annex_proxy::connect(&p, &work, repo.uuid(), opts.max_version, &branch)
                    .await
                    .map_err(|e| anyhow!("{e}\nUnable to connect to remote."))?;
                opts.max_version = node.max_version();
                if let annex_proxy::Node::Local(l) = &node {
                    node_git_dirs.push(l.git_dir().to_owned());
                }
                let recorded = annex_proxy::Recorded::new(node.into_repository(), branch);
                // Content of a node on this machine is moved into standard
                // output by the kernel, as the gateway's own is.
                let (stdin, stdout) = (crate::stdio::stdin(), crate::stdio::stdout());
                let output = crate::stdio::stdout_file_output();
                serve_split_with_output(stdin, stdout, output, &recorded, &opts).await
            }
        }
        .map_err(anyhow::Error::from)
    });
    // git-annex-shell commits what the session recorded when it ends, so
    // that a fetch from here sees it; so does the git-annex-shell a
    // gateway runs for a node.
    // (The two repositories are independent: both at once.)
    std::thread::scope(|s| {
        for d in &node_git_dirs {
            s.spawn(move || commit_journal(d));
        }
        commit_journal(repo.git_dir());
    });
    match end {
        Ok(ServeEnd::Closed) | Ok(ServeEnd::PeerError(_)) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow!("p2pstdio: {e}")),
    }
}

/// Commits the journal of the repository at `git_dir`, if it has one;
/// a failure is reported and otherwise left for the next commit.
fn commit_journal(git_dir: &Path) {
    if let Err(e) = annex_proxy::commit_journal(git_dir) {
        eprintln!("git-annex-shell: committing the git-annex branch: {e}");
    }
}

/// Hands git's own commands on to git-shell, as git-annex-shell does.
fn external(words: &[String]) -> anyhow::Result<ExitCode> {
    if env_set("GIT_ANNEX_SHELL_LIMITED") {
        bail!("Action blocked by GIT_ANNEX_SHELL_LIMITED");
    }
    let (params, _, _) = partition(words)?;
    check_directory(params.last().map(String::as_str))?;
    let command = params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 0 {
                p.clone()
            } else {
                git_shell_quote(p)
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let status = std::process::Command::new("git-shell")
        .arg("-c")
        .arg(&command)
        .status()
        .context("cannot run git-shell")?;
    if !status.success() {
        bail!("git-shell failed");
    }
    Ok(ExitCode::SUCCESS)
}

/// Quotes a word as git quotes one for git-shell (`'...'`, each `'`
/// written `'\''`), the only quoting git-shell reads for a command's
/// argument. (The quoting of a command sent over ssh is another:
/// [`annex_proxy::ssh::shell_quote`], which git-annex-shell also reads.)
fn git_shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Splits a command line as a POSIX shell would for plain words, single
/// and double quotes and backslashes (no expansions).
fn shell_split(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                have = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => cur.push(c),
                    }
                }
            }
            '"' => {
                have = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => cur.push(c),
                            c => {
                                cur.push('\\');
                                cur.push(c);
                            }
                        },
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                have = true;
                cur.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if have {
                    words.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        words.push(cur);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            shell_split("git-annex-shell 'p2pstdio' '/a b/c' \"x\\\"y\" z\\ w").unwrap(),
            vec!["git-annex-shell", "p2pstdio", "/a b/c", "x\"y", "z w"]
        );
        assert_eq!(shell_split("'unterminated"), None);
    }

    /// What a gateway or client sends over ssh reads back word for word
    /// when this program is the login shell (`-c "COMMAND"`).
    #[test]
    fn reads_the_ssh_command_back() {
        let mut words: Vec<String> = (1u8..=0x7f)
            .map(|b| format!("a{}b", char::from(b)))
            .collect();
        words.extend(
            [
                "",
                "'",
                "''",
                "\\'",
                "a;touch${IFS}/tmp/x;b",
                "$(id)`id`",
                "été ☃",
            ]
            .map(str::to_owned),
        );
        for w in &words {
            let c = annex_proxy::ssh::GitAnnexShell::new(
                "h",
                None,
                None,
                "p2pstdio",
                &[w, "--uuid", w],
            )
            .unwrap();
            assert_eq!(
                shell_split(c.remote_command()).unwrap(),
                [
                    "git-annex-shell",
                    "p2pstdio",
                    w.as_str(),
                    "--uuid",
                    w.as_str()
                ],
                "{w:?}"
            );
        }
    }

    #[test]
    fn fields_and_uuid() {
        let args: Vec<String> = [
            "u1",
            "--",
            "remoteuuid=abc",
            "autoinit=1",
            "--",
            "--uuid",
            "u2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (p, f, u) = partition(&args).unwrap();
        assert_eq!(p, vec!["u1"]);
        assert_eq!(
            f,
            vec![
                ("remoteuuid".into(), "abc".into()),
                ("autoinit".into(), "1".into())
            ]
        );
        assert_eq!(u.as_deref(), Some("u2"));
    }

    #[test]
    fn home_relative_dirs() {
        let h = home();
        assert_eq!(resolve_dir("~/r"), h.join("r"));
        assert_eq!(resolve_dir("/~/r"), h.join("r"));
        assert_eq!(resolve_dir("/abs"), PathBuf::from("/abs"));
    }
}
