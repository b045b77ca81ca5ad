//! `annex post-receive`: run by git's post-receive hook in a gateway (see
//! `annex init`), as `git annex post-receive` is. It reads the refs a
//! push updated from standard input and exports the pushed tree to each
//! exporttree special remote the gateway proxies whose
//! `remote.NAME.annex-tracking-branch` names the branch pushed (or its
//! `synced/` twin), as `git annex export BRANCH --to NAME` would.
//!
//! git-annex exports to the first such remote only; this exports to each.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use annex_branch::Branch;
use annex_preferred::{Policies, Wants};
use annex_proxy::{Gateway, GitRemotes, Served};
use annex_special::export::{
    filter_for_export, parse_hook_input, pushed_export, ExportOptions, ObjectId,
};
use annex_special::SpecialRemote;
use anyhow::Context as _;
use clap::Args;

use crate::branchcmd::Here;

/// Arguments of `annex post-receive`.
#[derive(Args)]
pub struct PostReceiveArgs {}

/// git runs the post-receive hook in the git directory with `GIT_DIR=.`:
/// the command works from the work tree instead, with nothing of git's
/// environment left to mislead the git commands it runs (git-annex's
/// `fixPostReceiveHookEnv`).
fn leave_hook_environment() -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os("GIT_DIR") else {
        return Ok(());
    };
    let git_dir = std::env::current_dir()?.join(dir);
    let work = match Branch::open(&git_dir) {
        Ok(b) => b.repo().workdir().map(|w| w.to_owned()),
        Err(_) => None,
    };
    for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_PREFIX"] {
        // SAFETY: no other thread has been started yet.
        unsafe { std::env::remove_var(var) };
    }
    std::env::set_current_dir(work.unwrap_or(git_dir))?;
    Ok(())
}

/// `annex post-receive`.
pub fn run(_args: PostReceiveArgs) -> anyhow::Result<ExitCode> {
    leave_hook_environment()?;
    let here = Here::open_annex()?;
    let uuid = here.uuid.clone().context("no annex.uuid")?;
    let mut input = Vec::new();
    std::io::stdin()
        .take(16 << 20)
        .read_to_end(&mut input)
        .context("reading the refs pushed")?;
    let pushed = parse_hook_input(&input);
    if pushed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let git_dir = here.branch.git_dir().to_owned();
    let remotes = GitRemotes::read(&git_dir)?;
    let gateway = Gateway::load(&here.branch, uuid.clone(), remotes)?;
    let branch = Arc::new(Mutex::new(Branch::open(&git_dir)?));
    let db_parent = here
        .config
        .get("annex.dbdir")
        .filter(|d| !d.is_empty())
        .map(|d| here.work.join(d))
        .unwrap_or_else(|| git_dir.join("annex"));

    // The remotes to export to, each with the tree pushed for it.
    let mut exports = Vec::new();
    for u in gateway.listed.keys() {
        let Ok(Served::Node(p)) = gateway.served(u.as_str()) else {
            continue;
        };
        let name = p.remote.name.clone();
        let Some(tb) = here
            .config
            .get(&format!("remote.{name}.annex-tracking-branch"))
            .filter(|t| !t.is_empty())
        else {
            continue;
        };
        if p.remote.url.is_some() {
            continue;
        }
        let Ok(SpecialRemote::Export(remote)) =
            annex_proxy::node::open_special(&p.remote, &p.uuid, &here.work, &branch)
        else {
            continue;
        };
        let found = {
            let b = branch.lock().unwrap_or_else(|p| p.into_inner());
            pushed_export(b.repo(), &pushed, tb, &name)
        };
        if let Some(e) = found {
            exports.push((name, p.uuid.clone(), remote, e));
        }
    }
    if exports.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }

    // Actions that failed, counted as git-annex counts them.
    let mut failed = 0usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for (name, remote_uuid, remote, pushed) in exports {
        let tree = {
            let b = branch.lock().unwrap_or_else(|p| p.into_inner());
            filter_with_preferred_content(&here, &b, pushed.tree, &remote_uuid)?
        };
        let opts = ExportOptions {
            name: name.clone(),
            here: uuid.clone(),
            db_parent: db_parent.clone(),
            local: annex_repo::LocalRepository::open(&here.work).ok(),
            tracking: pushed.tracking.clone(),
        };
        let report = rt.block_on(remote.export(tree, &opts, &|line: &str| println!("{line}")));
        match report {
            Ok(r) => failed += r.unavailable.len() + r.failures.len(),
            Err(e) => {
                eprintln!("annex: export to {name} failed: {e:#}");
                failed += 1;
            }
        }
    }
    branch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .commit("update")?;
    if failed == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("post-receive: {failed} failed");
    Ok(ExitCode::FAILURE)
}

/// The tree to export of `tree`: what git-annex's `filterExport` keeps,
/// annexed files the remote's preferred content does not want left out.
fn filter_with_preferred_content(
    here: &Here,
    branch: &Branch,
    tree: ObjectId,
    remote: &annex_protocol::Uuid,
) -> anyhow::Result<ObjectId> {
    let repo = branch.repo();
    let annex_dir: PathBuf = here.branch.git_dir().join("annex");
    let facts = annex_preferred::Facts::load(&here.branch)?;
    let policies = Policies::compile(&facts);
    let wants_something = policies.preferred(remote).is_some_and(|p| !p.is_empty());
    if !wants_something {
        return Ok(filter_for_export(repo, tree, None, &annex_dir, remote)?);
    }
    let ctx = crate::preferred::Context::load(here, false)?;
    let local = annex_repo::LocalRepository::open(&here.work).ok();
    let keys = ctx.keys(here, local.as_ref());
    let wants = Wants {
        decider: ctx.decider(&keys),
        policies: &policies,
    };
    let wanted = |key: &annex_protocol::Key, file: &str| {
        wants
            .want_get(remote, key, Some(file), true)
            .map(|v| v.matches)
            .unwrap_or(true)
    };
    Ok(filter_for_export(
        repo,
        tree,
        Some(&wanted),
        &annex_dir,
        remote,
    )?)
}
