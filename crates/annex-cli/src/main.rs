//! `annex`: a git-annex compatible server, gateway and toolkit.

mod branchcmd;
mod clustercmd;
mod configcmd;
mod examine;
mod initremote;
mod logviews;
mod logwriter;
mod p2phttp;
mod postreceive;
mod preferred;
mod progress;
mod proxycmd;
mod remote;
mod routes;
mod shell;
mod sim;
mod stdio;

/// The servers allocate and free buffers of content on several threads
/// at once; mimalloc keeps those pages mapped where the system allocator
/// hands them back and faults them in again (PUT about 15% faster, see
/// benches/scripts/p2phttp.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A git-annex compatible server, gateway and toolkit.
///
/// Serves git-annex repositories over HTTP (p2phttp) and ssh (in place of
/// git-annex-shell), stands in front of the remotes a repository proxies,
/// decides preferred content as git-annex does, and speaks git-annex's P2P
/// protocol (versions 0 to 4) to any repository as a client.
#[derive(Parser)]
// Commands are listed in the order a newcomer needs them: those given a
// display_order first, the others after them as declared.
#[command(
    name = "annex",
    version,
    propagate_version = true,
    next_display_order = 10
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Talk to a git-annex repository over the P2P protocol.
    ///
    /// TARGET is a local path to a git-annex repository, an ssh location
    /// `[user@]host:path` (reached with `ssh host git-annex-shell p2pstdio
    /// path`), or a p2phttp URL `annex+http(s)://host[:port]/git-annex/`
    /// (with --uuid, or the UUID after `/git-annex/`). The other end is the
    /// real git-annex or this program's own server.
    #[command(display_order = 4)]
    Remote(remote::RemoteArgs),
    /// Show what a git-annex key is made of: backend, size, fields, and
    /// where git-annex stores its content.
    Examinekey(examine::ExamineArgs),
    /// Make the git repository here a git-annex repository (annex.uuid,
    /// annex.version 10, a git-annex branch with a description), as
    /// `git annex init` does.
    #[command(display_order = 3)]
    Init(branchcmd::InitArgs),
    /// Show or set the maximum size of repositories, as
    /// `git annex maxsize` does; without arguments, list every
    /// repository's size and maxsize.
    Maxsize(branchcmd::MaxsizeArgs),
    /// Show or set a repository's preferred content expression, as
    /// `git annex wanted` does.
    #[command(override_usage = "annex wanted REPOSITORY [EXPRESSION]")]
    Wanted(configcmd::ExpressionArgs),
    /// Show or set a repository's required content expression, as
    /// `git annex required` does.
    #[command(override_usage = "annex required REPOSITORY [EXPRESSION]")]
    Required(configcmd::ExpressionArgs),
    /// Show or set a group's preferred content expression, as
    /// `git annex groupwanted` does.
    #[command(override_usage = "annex groupwanted GROUP [EXPRESSION]")]
    Groupwanted(configcmd::GroupWantedArgs),
    /// Show a repository's groups, or add it to a group, as
    /// `git annex group` does.
    #[command(override_usage = "annex group REPOSITORY [GROUP]\n       annex group --list")]
    Group(configcmd::GroupArgs),
    /// Take a repository out of a group, as `git annex ungroup` does.
    #[command(override_usage = "annex ungroup REPOSITORY GROUP")]
    Ungroup(configcmd::UngroupArgs),
    /// Show or set the desired number of copies of each file, as
    /// `git annex numcopies` does.
    #[command(override_usage = "annex numcopies [NUMBER]")]
    Numcopies(configcmd::CopiesArgs),
    /// Show or set the minimum number of copies of each file, as
    /// `git annex mincopies` does.
    #[command(override_usage = "annex mincopies [NUMBER]")]
    Mincopies(configcmd::CopiesArgs),
    /// Show the repositories the git-annex branch knows: their sizes,
    /// maxsizes and trust, and the proxies and clusters they serve.
    Info(branchcmd::InfoArgs),
    /// Commit the journal to the git-annex branch and union-merge the
    /// remotes' git-annex branches into it.
    Merge(branchcmd::MergeArgs),
    /// Check whether a preferred content expression matches, as
    /// `git annex matchexpression` does: exit 0 when it matches, 1 when it
    /// does not, 42 when the expression is bad or needs data not given.
    ///
    /// Evaluated for the repository it runs in, with the git-annex
    /// branch's locations, groups, trust, numcopies and sizes.
    Matchexpression(preferred::MatchexpressionArgs),
    /// Show where keys belong: for each repository (of a group, of a
    /// cluster, or all), whether it has the key, whether its preferred
    /// content wants it or keeps it, whether it is required, and why.
    Placement(preferred::PlacementArgs),
    /// Make a special remote (type=S3 or type=directory, with
    /// encryption=none), as `git annex initremote` does: git-annex then
    /// uses it unchanged.
    #[command(override_usage = "annex initremote NAME KEY=VALUE...")]
    Initremote(initremote::InitremoteArgs),
    /// Record in the git-annex branch which remotes this repository
    /// proxies (those with `remote.NAME.annex-proxy` set), as
    /// `git annex updateproxy` does; clients that fetch from here then
    /// reach them through it.
    Updateproxy(proxycmd::UpdateproxyArgs),
    /// Export what a push brought to the exporttree special remotes this
    /// gateway proxies, as `git annex post-receive` does; run by git's
    /// post-receive hook (which `annex init` installs), reading the refs
    /// pushed from standard input.
    ///
    /// A remote whose `remote.NAME.annex-tracking-branch` is BRANCH (or
    /// BRANCH:SUBDIR) gets the tree of BRANCH, or of `synced/BRANCH`,
    /// when the push updated it: files moved in the tree are renamed in
    /// the remote, files taken out of it kept at its annexobjects
    /// location, and files it lacks sent to it.
    PostReceive(postreceive::PostReceiveArgs),
    /// Make a new cluster that this repository is a gateway for, as
    /// `git annex initcluster` does: a cluster UUID in
    /// `annex.cluster.NAME` and its description (default `cluster NAME`).
    #[command(override_usage = "annex initcluster NAME [DESCRIPTION]")]
    Initcluster(clustercmd::InitclusterArgs),
    /// Record the nodes of this repository's clusters (the remotes with
    /// `remote.NAME.annex-cluster-node` naming one) in the git-annex
    /// branch, and what it proxies, as `git annex updatecluster` does.
    Updatecluster(clustercmd::UpdateclusterArgs),
    /// Make this repository another gateway of the cluster NAME that the
    /// remote GATEWAY serves, as `git annex extendcluster` does.
    #[command(override_usage = "annex extendcluster GATEWAY NAME")]
    Extendcluster(clustercmd::ExtendclusterArgs),
    /// Serve git-annex repositories over HTTP, as `git annex p2phttp`.
    ///
    /// Serves the repository it is run in and the remotes it proxies
    /// (see `annex updateproxy`), or with --directory every
    /// repository in a directory, over git-annex's P2P HTTP API. Clients
    /// use it through a remote's `annexUrl`, `annex+http://HOST:PORT/git-annex/`.
    /// Some access must be given: --wideopen, --unauth-readonly,
    /// --unauth-appendonly, or credentials (--authenv, --users-file).
    #[command(display_order = 1)]
    P2phttp(Box<p2phttp::P2phttpArgs>),
    /// Simulate a network of repositories, as `git annex sim` does.
    ///
    /// `annex sim start [FILE]`, `annex sim COMMAND...`, `annex sim show`,
    /// `annex sim end`, or `annex sim run FILE` (start, run, report, end).
    /// Sim files are git-annex's; failed assertions are named with their
    /// line and make the exit status non-zero.
    Sim(sim::SimArgs),
    /// Serve a repository over ssh in place of git-annex-shell.
    ///
    /// Takes git-annex-shell's arguments: `configlist DIR`, `p2pstdio DIR
    /// UUID [--uuid UUID]`, or a git command. Install this binary as
    /// `git-annex-shell` (a symlink named so) to have ssh clients use it.
    #[command(disable_help_flag = true, display_order = 2)]
    Shell {
        /// git-annex-shell's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    // Invoked as git-annex-shell (through a symlink), behave as one.
    let mut argv = std::env::args();
    let invoked_as = argv
        .next()
        .map(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if invoked_as.as_deref() == Some("git-annex-shell") {
        return finish(shell::run(argv.collect()), "git-annex-shell");
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Command::P2phttp(_) | Command::Shell { .. }) {
        // Commands whose output is piped (`annex info | head`) end quietly
        // when the reader goes away, as Unix tools do. Servers keep
        // ignoring SIGPIPE: a peer that goes away is an error to handle.
        // SAFETY: resetting a signal's disposition before any thread is
        // started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Remote(args) => run_async(remote::run(args)),
        Command::Examinekey(args) => examine::run(args),
        Command::Init(args) => branchcmd::init(args),
        Command::Maxsize(args) => branchcmd::maxsize(args),
        Command::Wanted(args) => configcmd::expression(configcmd::ExpressionKind::Wanted, args),
        Command::Required(args) => configcmd::expression(configcmd::ExpressionKind::Required, args),
        Command::Groupwanted(args) => configcmd::groupwanted(args),
        Command::Group(args) => configcmd::group(args),
        Command::Ungroup(args) => configcmd::ungroup(args),
        Command::Numcopies(args) => configcmd::copies(configcmd::CopiesKind::NumCopies, args),
        Command::Mincopies(args) => configcmd::copies(configcmd::CopiesKind::MinCopies, args),
        Command::Info(args) => branchcmd::info(args),
        Command::Merge(args) => branchcmd::merge(args),
        Command::Matchexpression(args) => preferred::matchexpression(args),
        Command::Placement(args) => preferred::placement(args),
        Command::Initremote(args) => initremote::initremote(args),
        Command::Updateproxy(args) => proxycmd::updateproxy(args),
        Command::PostReceive(args) => postreceive::run(args),
        Command::Initcluster(args) => clustercmd::initcluster(args),
        Command::Updatecluster(args) => clustercmd::updatecluster(args),
        Command::Extendcluster(args) => clustercmd::extendcluster(args),
        Command::P2phttp(args) => p2phttp::run(*args),
        Command::Sim(args) => sim::run(args),
        Command::Shell { args } => shell::run(args),
    };
    finish(result, "annex")
}

fn finish(result: anyhow::Result<ExitCode>, name: &str) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {e:#}");
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
