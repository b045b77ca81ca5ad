//! A scratch area for tests of gateways with the real git-annex as the
//! client: repositories under one temporary directory, reached over a
//! fake `ssh` that runs the command on this machine, with the program
//! under test standing in for `git-annex-shell`.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::{command, output, pseudo_random, run_ok, write_executable};

/// What the fake ssh does with the command it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeSsh {
    /// Runs it with bash, without the caller's GIT_ variables, as a real
    /// ssh would.
    Clean,
    /// Runs it with bash in the caller's environment, so that a test can
    /// hand the server side its GIT_ANNEX_SHELL_ settings.
    KeepingEnv,
    /// Hands it whole to `git-annex-shell -c`, as sshd does for a user
    /// whose login shell is git-annex-shell (in the caller's environment).
    LoginShell,
}

/// Writes an executable fake ssh at `path`: `ssh [options] host
/// command...` drops the options and the host, and runs the command on
/// this machine as `kind` says.
pub fn write_fake_ssh(path: &Path, kind: FakeSsh) {
    let mut script = String::from(
        "#!/bin/bash\nhost=\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n    -o|-p|-F|-i|-l|-S) shift 2;;\n    -*) shift;;\n    *) if [ -z \"$host\" ]; then host=$1; shift; else break; fi;;\n  esac\ndone\n",
    );
    script.push_str(match kind {
        FakeSsh::Clean => "for v in $(env | grep -o '^GIT_[A-Za-z_]*'); do unset \"$v\"; done\nexec bash -c \"$*\"\n",
        FakeSsh::KeepingEnv => "exec bash -c \"$*\"\n",
        FakeSsh::LoginShell => "exec git-annex-shell -c \"$*\"\n",
    });
    write_executable(path, &script);
}

/// The real `git-annex-shell` on PATH.
pub fn real_git_annex_shell() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v git-annex-shell"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// How a gateway reaches a repository behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// At its path, opened in the gateway's own process.
    Local,
    /// Over the fake ssh, served by the program under test (the
    /// `git-annex-shell` first on PATH).
    Ssh,
    /// Over the fake ssh, served by the real `git-annex-shell`
    /// (`remote.NAME.annex-shell`).
    SshReal,
    /// Over annex+http, by the server on this port of 127.0.0.1
    /// (`remote.NAME.annexUrl`).
    Http(u16),
}

/// What a gateway is to a repository behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role<'a> {
    /// It proxies it (`remote.NAME.annex-proxy`).
    Proxied,
    /// The repository is a node of this cluster of the gateway
    /// (`remote.NAME.annex-cluster-node`).
    Node(&'a str),
}

/// A temporary directory with `bin/ssh` (the fake ssh), and
/// `bin/git-annex-shell` and `bin/annex` (the program under test), first
/// on the PATH its commands run with.
pub struct ProxyEnv {
    /// The temporary directory; removed when dropped.
    pub tmp: tempfile::TempDir,
    /// The PATH commands run with.
    pub path: String,
    annex: PathBuf,
}

impl ProxyEnv {
    /// A new scratch area; `annex` is the program under test (the
    /// test's `CARGO_BIN_EXE_annex`).
    pub fn new(annex: &str) -> ProxyEnv {
        ProxyEnv::with_ssh(annex, FakeSsh::Clean)
    }

    /// [`ProxyEnv::new`] with a fake ssh of `kind`.
    pub fn with_ssh(annex: &str, kind: FakeSsh) -> ProxyEnv {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        write_fake_ssh(&bin.join("ssh"), kind);
        std::os::unix::fs::symlink(annex, bin.join("git-annex-shell")).unwrap();
        // As installed: also under its own name, for git hooks that run
        // `annex post-receive`.
        std::os::unix::fs::symlink(annex, bin.join("annex")).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        ProxyEnv {
            tmp,
            path,
            annex: PathBuf::from(annex),
        }
    }

    /// Has every `git-annex-shell` session this environment starts (our
    /// program under that name) write its arguments, one line each, to the
    /// file returned (read it with [`ProxyEnv::take_sessions`]).
    pub fn log_shell_sessions(&self) -> PathBuf {
        let log = self.dir("sessions.log");
        let ours = self.dir("ours/git-annex-shell");
        std::fs::create_dir_all(ours.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&self.annex, &ours).unwrap();
        let shell = self.dir("bin/git-annex-shell");
        std::fs::remove_file(&shell).unwrap();
        crate::write_executable(
            &shell,
            &format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                ours.display()
            ),
        );
        log
    }

    /// The `p2pstdio` sessions logged in `log` (see
    /// [`ProxyEnv::log_shell_sessions`]) since the last call, as argument
    /// lines; the log is emptied.
    pub fn take_sessions(&self, log: &Path) -> Vec<String> {
        let s = std::fs::read_to_string(log).unwrap_or_default();
        std::fs::write(log, "").unwrap();
        s.lines()
            .filter(|l| l.starts_with("p2pstdio "))
            .map(str::to_owned)
            .collect()
    }

    /// `name` under the temporary directory.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Runs `prog ARGS` in `dir`; its output, whatever its exit status.
    pub fn run(&self, dir: &Path, prog: &str, args: &[&str]) -> Output {
        output(command(dir, prog, args).env("PATH", &self.path))
    }

    /// Runs `prog ARGS` in `dir`, which must succeed; its stdout.
    pub fn ok(&self, dir: &Path, prog: &str, args: &[&str]) -> String {
        run_ok(command(dir, prog, args).env("PATH", &self.path))
    }

    /// `git ARGS` in `dir`, which must succeed.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        self.ok(dir, "git", args)
    }

    /// The program under test with `ARGS` in `dir`, which must succeed.
    pub fn annex(&self, dir: &Path, args: &[&str]) -> String {
        run_ok(command(dir, &self.annex, args).env("PATH", &self.path))
    }

    /// The program under test.
    pub fn annex_program(&self) -> &Path {
        &self.annex
    }

    /// A new git-annex repository `name` described as `desc`; its path
    /// and UUID.
    pub fn init(&self, name: &str, desc: &str) -> (PathBuf, String) {
        let d = self.dir(name);
        self.git(self.tmp.path(), &["init", "-q", name]);
        self.git(&d, &["config", "user.name", "t"]);
        self.git(&d, &["config", "user.email", "t@example.invalid"]);
        self.git(&d, &["annex", "init", "-q", desc]);
        let u = self.git(&d, &["config", "annex.uuid"]).trim().to_string();
        (d, u)
    }

    /// Adds the repository at `dir`, reached over the fake ssh, as the
    /// remote `name` of the repository `repo`.
    pub fn add_ssh_remote(&self, repo: &Path, name: &str, dir: &Path) {
        let url = format!("localhost:{}", dir.display());
        self.git(repo, &["remote", "add", name, &url]);
    }

    /// Makes the repository at `dir`, whose UUID is `uuid`, the remote
    /// `name` of the gateway `gw`, reached as `reach`, in `role` (for
    /// `annex updateproxy` or `annex updatecluster` to record). Nothing is
    /// fetched.
    pub fn add_remote(
        &self,
        gw: &Path,
        name: &str,
        dir: &Path,
        uuid: &str,
        reach: Reach,
        role: Role<'_>,
    ) {
        match reach {
            Reach::Ssh | Reach::SshReal => self.add_ssh_remote(gw, name, dir),
            Reach::Local | Reach::Http(_) => {
                self.git(gw, &["remote", "add", name, &dir.display().to_string()]);
            }
        }
        let config = |setting: &str, value: &str| {
            self.git(gw, &["config", &format!("remote.{name}.{setting}"), value]);
        };
        config("annex-uuid", uuid);
        match role {
            Role::Proxied => config("annex-proxy", "true"),
            Role::Node(cluster) => config("annex-cluster-node", cluster),
        }
        match reach {
            Reach::SshReal => config("annex-shell", &real_git_annex_shell()),
            Reach::Http(port) => config(
                "annexUrl",
                &format!("annex+http://127.0.0.1:{port}/git-annex/"),
            ),
            Reach::Local | Reach::Ssh => {}
        }
    }

    /// A directory special remote `name` of the repository `repo`, made
    /// by git-annex (`git annex initremote -q NAME type=directory
    /// directory=STORE PARAMS...`) in a new directory `store` under the
    /// temporary directory; that directory and the remote's UUID.
    pub fn init_directory_remote(
        &self,
        repo: &Path,
        name: &str,
        store: &str,
        params: &[&str],
    ) -> (PathBuf, String) {
        let dir = self.dir(store);
        std::fs::create_dir(&dir).unwrap();
        let directory = format!("directory={}", dir.display());
        let mut args = vec!["annex", "initremote", "-q", name, "type=directory"];
        args.push(&directory);
        args.extend(params);
        self.git(repo, &args);
        let uuid = self
            .git(repo, &["config", &format!("remote.{name}.annex-uuid")])
            .trim()
            .to_string();
        (dir, uuid)
    }

    /// Whether the repository at `dir` has the content of `key` (its own
    /// `git annex contentlocation` finds it).
    pub fn has_key(&self, dir: &Path, key: &str) -> bool {
        self.run(dir, "git", &["annex", "contentlocation", key])
            .status
            .success()
    }

    /// A clone `name` of the gateway `gw` over the fake ssh, initialised
    /// by git-annex (without ssh connection caching).
    pub fn clone_client(&self, gw: &Path, name: &str) -> PathBuf {
        self.git(
            self.tmp.path(),
            &["clone", "-q", &format!("localhost:{}", gw.display()), name],
        );
        let c = self.dir(name);
        self.git(&c, &["config", "user.name", "t"]);
        self.git(&c, &["config", "user.email", "t@example.invalid"]);
        self.git(&c, &["config", "annex.sshcaching", "false"]);
        self.git(&c, &["annex", "init", "-q", name]);
        c
    }

    /// Our `annex p2phttp --wideopen` serving `dir` (and what it proxies)
    /// on a free port of 127.0.0.1, logging to `log` under the temporary
    /// directory; stopped when the guard is dropped.
    pub fn serve_p2phttp(&self, dir: &Path, log: &str) -> (crate::KillOnDrop, u16) {
        self.serve_p2phttp_with(dir, log, &[])
    }

    /// [`ProxyEnv::serve_p2phttp`] with further options (`--log-requests`
    /// for a log line per request).
    pub fn serve_p2phttp_with(
        &self,
        dir: &Path,
        log: &str,
        options: &[&str],
    ) -> (crate::KillOnDrop, u16) {
        let mut cmd = command(dir, &self.annex, &[]);
        cmd.args([
            "p2phttp",
            "--wideopen",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .args(options)
        .env("PATH", &self.path);
        crate::spawn_annex_p2phttp(cmd, &self.dir(log))
    }

    /// The real `git annex p2phttp --wideopen` serving `dir` on a free
    /// port of 127.0.0.1; stopped when the guard is dropped.
    pub fn serve_git_annex_p2phttp(&self, dir: &Path) -> (crate::KillOnDrop, u16) {
        let port = crate::free_port();
        let mut child = crate::git_annex_p2phttp(dir, port)
            .arg("--wideopen")
            .env("PATH", &self.path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        crate::wait_for_port(port, &mut child, None);
        (crate::KillOnDrop(child), port)
    }

    /// A clone `name` of the gateway `gw` (as [`ProxyEnv::clone_client`])
    /// whose `origin` is reached over p2phttp on `port`.
    pub fn clone_http_client(&self, gw: &Path, name: &str, port: u16) -> PathBuf {
        let c = self.clone_client(gw, name);
        self.git(
            &c,
            &["config", "annex.security.allowed-ip-addresses", "all"],
        );
        self.git(
            &c,
            &[
                "config",
                "remote.origin.annexUrl",
                &format!("annex+http://127.0.0.1:{port}/git-annex/"),
            ],
        );
        c
    }

    /// `git annex copy --to REMOTE FILE` in `client`, slowed down to
    /// `bwlimit` so that it can be interrupted, started in a process group
    /// of its own (signal `-pid` to stop all of it).
    pub fn slow_copy(
        &self,
        client: &Path,
        remote: &str,
        file: &str,
        bwlimit: &str,
    ) -> std::process::Child {
        self.slow_annex(client, &["copy", "--to", remote, file], bwlimit)
    }

    /// `git annex get --from REMOTE FILE` in `client`, slowed down as
    /// [`ProxyEnv::slow_copy`] is.
    pub fn slow_get(
        &self,
        client: &Path,
        remote: &str,
        file: &str,
        bwlimit: &str,
    ) -> std::process::Child {
        self.slow_annex(client, &["get", "--from", remote, file], bwlimit)
    }

    /// `git annex ARGS` in `client` at `bwlimit`, in a process group of
    /// its own, its output discarded.
    fn slow_annex(&self, client: &Path, args: &[&str], bwlimit: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("git")
            .current_dir(client)
            .args(["-c", "annex.stalldetection=false", "-c"])
            .arg(format!("annex.bwlimit={bwlimit}"))
            .arg("annex")
            .args(args)
            .env("PATH", &self.path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// The UUIDs `git annex whereis` lists for `file` in `dir`.
    pub fn whereis_uuids(&self, dir: &Path, file: &str) -> Vec<String> {
        let out = self.git(dir, &["annex", "whereis", "--json", file]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["whereis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["uuid"].as_str().unwrap().to_string())
            .collect()
    }

    /// Writes `content` to `file` in the repository `dir`, annexes it and
    /// commits it; its key.
    pub fn add_file(&self, dir: &Path, file: &str, content: &[u8]) -> String {
        std::fs::write(dir.join(file), content).unwrap();
        self.git(dir, &["annex", "add", "--quiet", file]);
        self.git(dir, &["commit", "-q", "-m", file]);
        self.git(dir, &["annex", "lookupkey", file])
            .trim()
            .to_string()
    }

    /// Every operation of a git-annex client (`client`) on `remote`, a
    /// proxied node with UUID `node_uuid`, for a new file `file` of `len`
    /// pseudo-random bytes from `seed`: copy --to, whereis, get --from,
    /// fsck --from, drop --from (with its lock proofs), move --from and
    /// move --to, ending with the content on the node only. Returns the
    /// file's key.
    pub fn exercise(
        &self,
        client: &Path,
        remote: &str,
        node_uuid: &str,
        file: &str,
        len: usize,
        seed: u64,
    ) -> String {
        let content = pseudo_random(len, seed);
        let node = node_uuid.to_string();
        let key = self.add_file(client, file, &content);
        self.git(client, &["annex", "copy", "--quiet", "--to", remote, file]);
        assert!(self.whereis_uuids(client, file).contains(&node));
        self.git(client, &["annex", "drop", "--quiet", file]);
        self.git(client, &["annex", "get", "--quiet", "--from", remote, file]);
        assert_eq!(std::fs::read(client.join(file)).unwrap(), content);
        self.git(
            client,
            &["annex", "fsck", "--quiet", "--from", remote, file],
        );
        self.git(
            client,
            &["annex", "drop", "--quiet", "--from", remote, file],
        );
        assert!(!self.whereis_uuids(client, file).contains(&node));
        self.git(client, &["annex", "copy", "--quiet", "--to", remote, file]);
        self.git(
            client,
            &["annex", "move", "--quiet", "--from", remote, file],
        );
        assert!(!self.whereis_uuids(client, file).contains(&node));
        self.git(client, &["annex", "move", "--quiet", "--to", remote, file]);
        let w = self.whereis_uuids(client, file);
        assert!(w.contains(&node), "{w:?}");
        // The client itself holds it no longer.
        assert!(!client.join(file).exists() || std::fs::read(client.join(file)).is_err());
        key
    }
}
