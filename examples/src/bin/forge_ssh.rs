//! The command a forge's ssh server runs for each session of a git-annex
//! client (see `annex_examples::forge_ssh`), as a forced command in
//! `authorized_keys`:
//!
//! ```text
//! command="forge_ssh /srv/annex alice",no-pty ssh-ed25519 AAAA... alice
//! ```
//!
//! The client's command arrives in `SSH_ORIGINAL_COMMAND`. Users named in
//! `FORGE_WRITERS` (comma-separated) may store and remove; others only
//! read.

use std::process::ExitCode;

use annex_protocol::ServerMode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(root), Some(user)) = (args.next(), args.next()) else {
        eprintln!("usage: forge_ssh REPOSITORIES-DIRECTORY USER (with SSH_ORIGINAL_COMMAND set)");
        return ExitCode::FAILURE;
    };
    let command = std::env::var("SSH_ORIGINAL_COMMAND").unwrap_or_default();
    let writers = std::env::var("FORGE_WRITERS").unwrap_or_default();
    let mode = if writers.split(',').any(|w| w == user) {
        ServerMode::ReadWrite
    } else {
        ServerMode::ReadOnly
    };
    let root = std::path::PathBuf::from(root);
    let result = annex_examples::forge_ssh::handle(
        &root,
        mode,
        &command,
        tokio::io::stdin(),
        tokio::io::stdout(),
    )
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forge: {e}");
            ExitCode::FAILURE
        }
    }
}
