//! `annex initcluster`, `annex updatecluster` and `annex extendcluster`:
//! a cluster's configuration, with git-annex's messages, errors and exit
//! codes.
//!
//! As with git-annex: `initcluster` and `extendcluster` announce
//! themselves (`initcluster NAME ok`, unless --quiet); `updatecluster`
//! prints what changed in cluster.log and proxy.log whatever the options;
//! warnings go to standard error, indented; the remotes' git-annex
//! branches are merged first.

use std::io::Write;
use std::process::ExitCode;

use annex_branch::MergeReport;
use annex_cluster::config::{self as cluster_config, ConfigError};
use annex_repo::remotes::GitRemotes;
use anyhow::bail;
use clap::Args;

use crate::branchcmd::Here;

/// Arguments of `annex initcluster`.
#[derive(Args)]
pub struct InitclusterArgs {
    /// The cluster's name, and optionally its description (default:
    /// `cluster NAME`).
    #[arg(value_name = "NAME [DESCRIPTION]")]
    params: Vec<String>,
    /// Say nothing but errors and warnings.
    #[arg(short, long)]
    quiet: bool,
}

/// Arguments of `annex updatecluster`.
#[derive(Args)]
pub struct UpdateclusterArgs {
    /// Accepted as git-annex accepts it; updatecluster's report is
    /// printed anyway.
    #[arg(short, long)]
    quiet: bool,
}

/// Arguments of `annex extendcluster`.
#[derive(Args)]
pub struct ExtendclusterArgs {
    /// The remote that is a gateway of the cluster, and the cluster's
    /// name there.
    #[arg(value_name = "GATEWAY NAME")]
    params: Vec<String>,
    /// Say nothing but errors, warnings and updatecluster's report.
    #[arg(short, long)]
    quiet: bool,
}

/// Merges the remotes' git-annex branches, as git-annex does before it
/// reads its branch; the side messages git-annex shows for it.
pub(crate) fn merge(here: &Here) -> anyhow::Result<Vec<String>> {
    let MergeReport {
        journal_commit,
        merged,
        fast_forwarded,
        ..
    } = here.branch.merge()?;
    let mut said = Vec::new();
    if !merged.is_empty() {
        let names: Vec<&str> = merged
            .iter()
            .map(|n| {
                n.strip_prefix("refs/remotes/")
                    .or_else(|| n.strip_prefix("refs/heads/"))
                    .unwrap_or(n)
            })
            .collect();
        said.push(format!("(merging {} into git-annex...)", names.join(" ")));
    }
    if journal_commit.is_some() || (!merged.is_empty() && !fast_forwarded) {
        said.push("(recording state in git...)".into());
    }
    Ok(said)
}

fn open() -> anyhow::Result<(Here, annex_protocol::Uuid)> {
    let here = Here::open_annex()?;
    let Some(uuid) = here.uuid.clone() else {
        bail!("this repository has no annex.uuid; run `annex init` first");
    };
    Ok((here, uuid))
}

fn work_dir(here: &Here) -> std::path::PathBuf {
    match here.branch.repo().workdir() {
        Some(w) => w.to_path_buf(),
        None => here.branch.git_dir().to_path_buf(),
    }
}

/// The remotes of git config, with the UUIDs of those on this machine
/// read from their repositories; the warnings that gave.
pub(crate) fn remotes(here: &Here) -> anyhow::Result<(GitRemotes, Vec<String>)> {
    let mut remotes = GitRemotes::read(here.branch.git_dir())?;
    let warnings =
        cluster_config::discover_uuids(&work_dir(here), here.branch.git_dir(), &mut remotes)?;
    Ok((remotes, warnings))
}

/// Shows warnings as git-annex does. A command that announces itself
/// (`make_way`) first ends the line on standard output, as git-annex
/// does, so that a warning never follows an announcement on one line.
fn warn_with(warnings: &[String], make_way: bool) {
    for w in warnings {
        if make_way {
            println!();
            let _ = std::io::stdout().flush();
        }
        eprintln!("  {w}");
    }
}

fn warn(warnings: &[String]) {
    warn_with(warnings, false);
}

/// `annex initcluster NAME [DESCRIPTION]`.
pub fn initcluster(args: InitclusterArgs) -> anyhow::Result<ExitCode> {
    let (name, description) = match args.params.as_slice() {
        [name] => (name.clone(), format!("cluster {name}")),
        [name, desc] => (name.clone(), desc.clone()),
        _ => bail!("Expected two parameters, name and description."),
    };
    let (here, _) = open()?;
    merge(&here)?;
    let remotes = GitRemotes::read(here.branch.git_dir())?;
    let mut out = std::io::stdout();
    if !args.quiet {
        print!("initcluster {name} ");
        out.flush()?;
    }
    match cluster_config::init_cluster(&here.branch, &remotes, &name, &description) {
        Ok(_) => {
            if !args.quiet {
                println!("ok");
            }
            if here.commit_at_end()? && !args.quiet {
                println!("(recording state in git...)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (ConfigError::BadName | ConfigError::Value(_))) => {
            if !args.quiet {
                println!();
                out.flush()?;
            }
            eprintln!("annex: {e}");
            if !args.quiet {
                println!("failed");
                out.flush()?;
            }
            eprintln!("initcluster: 1 failed");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// updatecluster's work, after the remotes are read: cluster.log, then
/// proxy.log, each reported as git-annex reports them.
fn update(here: &Here, uuid: &annex_protocol::Uuid, remotes: &GitRemotes) -> anyhow::Result<()> {
    let clusters = cluster_config::update_clusters(&here.branch, uuid, remotes)?;
    warn(&clusters.warnings);
    for m in &clusters.messages {
        println!("{m}");
    }
    let proxies = annex_proxy::update_proxy(&here.branch, uuid, remotes)?;
    warn(&proxies.warnings);
    if proxies.changes.is_empty() {
        println!("No proxy changes to record.");
    } else {
        for c in &proxies.changes {
            println!("{c}");
        }
    }
    std::io::stdout().flush()?;
    here.commit_at_end()?;
    Ok(())
}

/// `annex updatecluster`.
pub fn updatecluster(_args: UpdateclusterArgs) -> anyhow::Result<ExitCode> {
    let (here, uuid) = open()?;
    merge(&here)?;
    let (remotes, warnings) = remotes(&here)?;
    warn(&warnings);
    update(&here, &uuid, &remotes)?;
    Ok(ExitCode::SUCCESS)
}

/// `annex extendcluster GATEWAY NAME`.
pub fn extendcluster(args: ExtendclusterArgs) -> anyhow::Result<ExitCode> {
    let [gateway, name] = args.params.as_slice() else {
        bail!("Expected two parameters, gateway and clustername.");
    };
    let (here, uuid) = open()?;
    for m in merge(&here)? {
        if !args.quiet {
            println!("{m}");
        }
    }
    let (remotes, warnings) = remotes(&here)?;
    warn_with(&warnings, !args.quiet);
    cluster_config::extend_cluster(&here.branch, &remotes, gateway, name)?;
    if !args.quiet {
        println!("extendcluster {name} ok");
    }
    // annex.cluster.NAME may be new.
    let remotes = GitRemotes::read(here.branch.git_dir())?;
    // updatecluster's own warnings make no way, even here.
    update(&here, &uuid, &remotes)?;
    Ok(ExitCode::SUCCESS)
}
