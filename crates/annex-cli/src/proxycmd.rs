//! `annex updateproxy`: record in proxy.log what this repository proxies.

use std::process::ExitCode;

use clap::Args;

use crate::branchcmd::Here;

#[derive(Args)]
pub struct UpdateproxyArgs {}

pub fn updateproxy(_args: UpdateproxyArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let Some(uuid) = here.uuid.clone() else {
        anyhow::bail!("this repository has no annex.uuid; run `annex init` first");
    };
    // As git-annex: the remotes' branches merged first (quietly), and the
    // UUIDs of remotes read from their repositories.
    crate::clustercmd::merge(&here)?;
    let (remotes, warnings) = crate::clustercmd::remotes(&here)?;
    let update = annex_proxy::update_proxy(&here.branch, &uuid, &remotes)?;
    for w in warnings.iter().chain(&update.warnings) {
        eprintln!("  {w}");
    }
    if update.changes.is_empty() {
        println!("No proxy changes to record.");
    } else {
        for c in &update.changes {
            println!("{c}");
        }
        here.branch.commit("update")?;
    }
    Ok(ExitCode::SUCCESS)
}
