//! The one way this workspace runs `git-annex-shell` on another host:
//! `ssh HOST [-p PORT] -T 'SHELL SUBCOMMAND ARGS...'`, every argument
//! quoted.
//!
//! ssh hands its command to the login shell of the remote user, which
//! parses it again. Whatever reaches the command line (a path from git
//! config, a UUID from the git-annex branch or from a client) is quoted
//! here, so that none of it can be read as more than one word. Only the
//! program itself (`remote.NAME.annex-shell`, from git config, which is
//! trusted) is left as written, as git-annex leaves it: it may be a path
//! or hold options.
//!
//! The options are in git-annex's order (the host first, then `-p PORT`
//! and `-T`), and, as git-annex does, a host starting with `-` is
//! refused rather than passed to ssh, where it would be read as an option.
//!
//! ```
//! use annex_proxy::ssh::GitAnnexShell;
//!
//! let c = GitAnnexShell::new("user@host", Some(2222), None, "p2pstdio", &["/srv/r", "it's"])
//!     .unwrap();
//! assert_eq!(
//!     c.args(),
//!     ["user@host", "-p", "2222", "-T", r#"git-annex-shell 'p2pstdio' '/srv/r' 'it'"'"'s'"#]
//! );
//! ```

/// The program run on the other host when the remote names none.
pub const DEFAULT_SHELL: &str = "git-annex-shell";

/// Why an ssh command was not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    /// The host would be read by ssh as an option.
    #[error("rejecting ssh hostname that starts with '-': {0}")]
    OptionHost(String),
    /// The host is empty.
    #[error("empty ssh hostname")]
    EmptyHost,
}

/// Quotes `word` for a POSIX shell: one word, whatever it holds, read back
/// as exactly `word`. The form is git-annex's (`'...'`, with each `'`
/// written `'"'"'`), which `sh`, git-annex-shell run as a login shell
/// (`-c "git-annex-shell ..."`) and this workspace's shell all read
/// alike. (git-shell reads a different quoting: see `annex shell`.)
pub fn shell_quote(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str(r#"'"'"'"#);
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// An ssh command that runs `git-annex-shell` (or the remote's
/// `annex-shell`) on another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitAnnexShell {
    args: Vec<String>,
}

impl GitAnnexShell {
    /// The command running `SHELL SUBCOMMAND ARGS...` on `host` (`[user@]host`),
    /// on `port` when given. `shell` is the remote's `annex-shell`
    /// ([`DEFAULT_SHELL`] when `None`) and is left as written; the
    /// subcommand and every argument are quoted with [`shell_quote`].
    pub fn new(
        host: &str,
        port: Option<u16>,
        shell: Option<&str>,
        subcommand: &str,
        args: &[&str],
    ) -> Result<GitAnnexShell, SshError> {
        if host.is_empty() {
            return Err(SshError::EmptyHost);
        }
        if host.starts_with('-') {
            return Err(SshError::OptionHost(host.to_owned()));
        }
        let mut remote = shell.unwrap_or(DEFAULT_SHELL).to_owned();
        for word in std::iter::once(subcommand).chain(args.iter().copied()) {
            remote.push(' ');
            remote.push_str(&shell_quote(word));
        }
        let mut out = vec![host.to_owned()];
        if let Some(p) = port {
            out.push("-p".into());
            out.push(p.to_string());
        }
        out.push("-T".into());
        out.push(remote);
        Ok(GitAnnexShell { args: out })
    }

    /// The arguments of `ssh`, the command for the other host last.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The command line the other host's shell runs.
    pub fn remote_command(&self) -> &str {
        self.args.last().map_or("", String::as_str)
    }

    /// `ssh` with these arguments, for a blocking caller.
    pub fn std_command(&self) -> std::process::Command {
        let mut c = std::process::Command::new("ssh");
        c.args(&self.args);
        c
    }

    /// `ssh` with these arguments, for an async caller.
    pub fn tokio_command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.args(&self.args);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `word` as `sh` reads it back from `shell_quote(word)`.
    fn through_sh(words: &[String]) -> Vec<String> {
        let script = format!(
            "for w in {}; do printf '%s\\0' \"$w\"; done",
            words
                .iter()
                .map(|w| shell_quote(w))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out);
        let s = String::from_utf8(out.stdout).unwrap();
        let mut v: Vec<String> = s.split('\0').map(str::to_owned).collect();
        assert_eq!(v.pop().as_deref(), Some(""));
        v
    }

    /// Every character one at a time, between others and alone, with
    /// quotes next to each other and UTF-8.
    fn hard_words() -> Vec<String> {
        let mut words: Vec<String> = (1u8..=0x7f)
            .map(|b| {
                let c = char::from(b);
                format!("a{c}b")
            })
            .collect();
        words.extend((1u8..=0x7f).map(|b| char::from(b).to_string()));
        words.extend(
            [
                "",
                "''",
                "'\"'\"'",
                "\\'",
                "a;touch${IFS}/tmp/x;b",
                "$(id)`id`",
                "été ☃ 𝄞",
                "-x",
                "--",
                "*",
                "~",
                "a\nb",
            ]
            .map(str::to_owned),
        );
        words.push((1u8..=0x7f).map(char::from).collect());
        words
    }

    #[test]
    fn sh_reads_every_word_back() {
        let words = hard_words();
        assert_eq!(through_sh(&words), words);
    }

    /// How git-annex-shell, run as a login shell, splits its command
    /// line: `'` and `"` quote up to the next of the same, spaces
    /// separate words, nothing else is special.
    fn split_like_git_annex_shell(s: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut quote = None;
        for c in s.chars() {
            match (quote, c) {
                (None, ' ') => words.push(std::mem::take(&mut cur)),
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, c) => cur.push(c),
            }
        }
        words.push(cur);
        words
    }

    #[test]
    fn git_annex_shell_reads_every_word_back() {
        for w in hard_words() {
            let c = GitAnnexShell::new("h", None, None, "p2pstdio", &[&w, "x"]).unwrap();
            assert_eq!(
                split_like_git_annex_shell(c.remote_command()),
                ["git-annex-shell", "p2pstdio", w.as_str(), "x"],
                "{w:?}"
            );
        }
    }

    #[test]
    fn ssh_arguments_in_git_annex_order() {
        let c =
            GitAnnexShell::new("h", None, Some("/opt/bin/gas --x"), "configlist", &["/r"]).unwrap();
        assert_eq!(c.args(), ["h", "-T", "/opt/bin/gas --x 'configlist' '/r'"]);
        let c = GitAnnexShell::new("u@h", Some(22), None, "p2pstdio", &[]).unwrap();
        assert_eq!(
            c.args(),
            ["u@h", "-p", "22", "-T", "git-annex-shell 'p2pstdio'"]
        );
        assert_eq!(c.std_command().get_program(), "ssh");
        assert_eq!(
            c.std_command().get_args().collect::<Vec<_>>(),
            c.args()
                .iter()
                .map(std::ffi::OsStr::new)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn refuses_a_host_ssh_would_read_as_an_option() {
        assert_eq!(
            GitAnnexShell::new("-oProxyCommand=x", None, None, "configlist", &[]),
            Err(SshError::OptionHost("-oProxyCommand=x".into()))
        );
        assert_eq!(
            GitAnnexShell::new("", None, None, "configlist", &[]),
            Err(SshError::EmptyHost)
        );
    }
}
