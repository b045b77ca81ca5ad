//! The ssh side of a forge: the command its ssh server runs for a session
//! (a forced command, with the client's command in
//! `SSH_ORIGINAL_COMMAND`), answering what a git-annex client asks
//! `git-annex-shell` for.
//!
//! The forge, not the client, decides which repository a session reaches
//! ([`choose_repository`]: a name directly below the forge's directory)
//! and what the user may do there ([`ServerMode`]). `configlist` tells the
//! client the repository's UUID; `p2pstdio` hands the session's standard
//! input and output to [`serve_split`](annex_protocol::serve_split) over
//! the local repository, then commits what the session recorded to the
//! git-annex branch, as git-annex-shell does. git's own commands are left
//! to the forge's git handling.

use std::path::{Path, PathBuf};

use annex_protocol::{ServeEnd, ServerMode, ServerOptions};
use annex_repo::LocalRepository;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Splits a command line as a POSIX shell would for the quoting git-annex
/// uses (`git-annex-shell 'p2pstdio' '/~/repo' ...`): words separated by
/// blanks, single and double quotes, backslash escapes.
pub fn split_command(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The forge's rule: a client's path names the repository by its last
/// component (`/~/photos`, `photos.git`, `user/photos` all name `photos`),
/// which must be a git-annex repository directly below `root`.
pub fn choose_repository(root: &Path, requested: &str) -> Option<PathBuf> {
    let last = requested.trim_end_matches('/').rsplit('/').next()?;
    let name = last.strip_suffix(".git").unwrap_or(last);
    if name.is_empty() || name.starts_with('.') {
        return None;
    }
    [name.to_owned(), format!("{name}.git")]
        .iter()
        .map(|n| root.join(n))
        .find(|p| annex_repo::looks_like_repository(p))
}

/// Answers one session's command, reading from `input` and writing to
/// `output` (the session's standard input and output). Returns the text
/// of an error to show the client, if it failed.
pub async fn handle<R, W>(
    root: &Path,
    mode: ServerMode,
    original_command: &str,
    input: R,
    mut output: W,
) -> Result<(), String>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    let words = split_command(original_command);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (verb, path) = match words.as_slice() {
        ["git-annex-shell", verb, path, ..] => (*verb, *path),
        _ => return Err("this forge's ssh serves git-annex-shell commands only".into()),
    };
    let dir = choose_repository(root, path).ok_or_else(|| format!("{path}: no such repository"))?;
    let repo = LocalRepository::open(&dir).map_err(|e| e.to_string())?;
    match verb {
        "configlist" => {
            let uuid = annex_protocol::Repository::uuid(&repo);
            let text = format!("annex.uuid={uuid}\ncore.gcrypt-id=\n");
            output
                .write_all(text.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            output.flush().await.map_err(|e| e.to_string())
        }
        "p2pstdio" => {
            let opts = ServerOptions {
                mode,
                ..Default::default()
            };
            let end = annex_protocol::serve_split(input, output, &repo, &opts).await;
            // What the session stored or removed, in the git-annex branch
            // where a fetch sees it.
            let committed = annex_branch::Branch::open(repo.git_dir())
                .and_then(|b| b.commit("update").map(|_| ()));
            match end {
                Ok(ServeEnd::Closed) | Ok(ServeEnd::PeerError(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
            committed.map_err(|e| e.to_string())
        }
        other => Err(format!(
            "git-annex-shell {other} is not served by this forge"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_as_a_shell_splits_them() {
        assert_eq!(
            split_command("git-annex-shell 'p2pstdio' '/~/my repo' \"--debug\" x\\ y"),
            [
                "git-annex-shell",
                "p2pstdio",
                "/~/my repo",
                "--debug",
                "x y"
            ]
        );
        assert_eq!(split_command("  a  ''  b "), ["a", "", "b"]);
    }
}
