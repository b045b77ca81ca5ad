//! `annex`: a git-annex compatible P2P server and client.

mod examine;
mod progress;
mod remote;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A git-annex compatible P2P protocol client.
///
/// Speaks git-annex's P2P protocol (versions 0 to 4) to any git-annex
/// repository reachable over ssh or as a local path.
#[derive(Parser)]
#[command(name = "annex", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Talk to a git-annex repository over the P2P protocol.
    ///
    /// TARGET is a local path to a git-annex repository, or an ssh location
    /// `[user@]host:path` (reached with `ssh host git-annex-shell p2pstdio
    /// path`). The repository's git-annex-shell answers; the real git-annex
    /// or this program's own server.
    Remote(remote::RemoteArgs),
    /// Show what a git-annex key is made of: backend, size, fields, and
    /// where git-annex stores its content.
    Examinekey(examine::ExamineArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Remote(args) => run_async(remote::run(args)),
        Command::Examinekey(args) => examine::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("annex: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_async<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(f)
}
