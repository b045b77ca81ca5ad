//! Commands run inside a repository that read and write its git-annex
//! branch: `annex init`, `annex maxsize`, `annex info`, `annex merge`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use annex_branch::sizes::RepoSizes;
use annex_branch::Branch;
use annex_protocol::Uuid;
use annex_repo::config::{self, GitConfig};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde_json::json;

use crate::logviews::{self, Overview};
use annex_types::size::{precise_size, read_size, rough_size, show_imprecise};

/// Arguments of `annex init`.
#[derive(Args)]
pub struct InitArgs {
    /// A description of this repository, shown by `git annex info` and
    /// `annex info` (default: user@host:path).
    description: Option<String>,
}

/// Arguments of `annex maxsize`.
#[derive(Args)]
pub struct MaxsizeArgs {
    /// The repository: a remote's name, a UUID, a description, or `here`.
    /// Without it, every repository's size and maxsize are listed.
    repository: Option<String>,
    /// The maximum size to record, like `500 GB` or `2TiB` (0 for none).
    /// Without it, the repository's maxsize is shown.
    size: Option<String>,
    /// Show sizes in bytes.
    #[arg(long)]
    bytes: bool,
    /// Print JSON, as git-annex's `--json` does.
    #[arg(long)]
    json: bool,
}

/// Arguments of `annex info`.
#[derive(Args)]
pub struct InfoArgs {
    /// Show sizes in bytes.
    #[arg(long)]
    bytes: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `annex merge`.
#[derive(Args)]
pub struct MergeArgs {}

/// The repository the command runs in, with its branch.
pub(crate) struct Here {
    /// The directory the command runs in.
    pub(crate) work: PathBuf,
    /// Its git-annex branch.
    pub(crate) branch: Branch,
    /// Its annex.uuid, if it has one.
    pub(crate) uuid: Option<Uuid>,
    /// Its git config, as read when the command started.
    pub(crate) config: GitConfig,
}

impl Here {
    fn open() -> anyhow::Result<Here> {
        let work = std::env::current_dir()?;
        let branch = Branch::open(&work)?;
        let config = GitConfig::read(branch.git_dir()).context("reading git config")?;
        let uuid = config
            .get("annex.uuid")
            .filter(|u| !u.is_empty())
            .map(Uuid::parse)
            .transpose()
            .map_err(|e| anyhow!("annex.uuid: {e}"))?;
        Ok(Here {
            work,
            branch,
            uuid,
            config,
        })
    }

    /// `git config NAME VALUE` in this repository.
    pub(crate) fn set_config(&self, name: &str, value: &str) -> anyhow::Result<()> {
        Ok(config::set(self.branch.git_dir(), name, value)?)
    }

    /// Commits the journal as git-annex does when a command ends (unless
    /// annex.alwayscommit is false); whether a commit was made.
    pub(crate) fn commit_at_end(&self) -> anyhow::Result<bool> {
        if !self.config.bool_or("annex.alwayscommit", true) {
            return Ok(false);
        }
        Ok(self.branch.commit("update")?.is_some())
    }

    /// Opens a repository that must already be a git-annex repository.
    pub(crate) fn open_annex() -> anyhow::Result<Here> {
        let here = Here::open()?;
        here.branch.require_head()?;
        if here.uuid.is_none() {
            bail!("this repository has no annex.uuid; run `annex init` first");
        }
        Ok(here)
    }

    /// What the branch says about repositories, with this repository's
    /// remotes.
    pub(crate) fn overview(&self) -> anyhow::Result<Overview> {
        logviews::overview(&self.branch, &self.work)
    }
}

fn default_description(dir: &Path) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "user".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}:{}", dir.display())
}

/// `annex init`.
pub fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open()?;
    let dir = &here.work;
    let bare = here.branch.repo().is_bare();
    let uuid = match &here.uuid {
        Some(u) => u.clone(),
        None => {
            let u = Uuid::new_v4();
            here.set_config("annex.uuid", u.as_str())?;
            u
        }
    };
    here.branch.create("branch created")?;
    if here.config.get("annex.version").is_none() {
        here.set_config("annex.version", "10")?;
    }
    if !bare {
        for hook in &HOOKS {
            write_hook(here.branch.git_dir(), hook)?;
        }
        for (k, v) in [
            ("filter.annex.smudge", "git-annex smudge -- %f"),
            ("filter.annex.clean", "git-annex smudge --clean -- %f"),
            ("filter.annex.process", "git-annex filter-process"),
        ] {
            here.set_config(k, v)?;
        }
        let info = here.branch.git_dir().join("info");
        std::fs::create_dir_all(&info)?;
        let attrs = info.join("attributes");
        let current = std::fs::read_to_string(&attrs).unwrap_or_default();
        if !current.lines().any(|l| l.trim() == "* filter=annex") {
            let mut new = current;
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str("* filter=annex\n");
            std::fs::write(&attrs, new)?;
        }
    }
    let has_description = logviews::descriptions(&here.branch)?.contains_key(&uuid);
    if args.description.is_some() || !has_description {
        let desc = args
            .description
            .clone()
            .unwrap_or_else(|| default_description(dir));
        logviews::set_description(&here.branch, &uuid, &desc)?;
    }
    here.branch.commit("update")?;
    println!(
        "init {}ok",
        args.description
            .map(|d| format!("{d} "))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// A hook `annex init` installs: its name, its script, and the scripts
/// it replaces (earlier versions, left by git-annex or by this program).
struct Hook {
    name: &'static str,
    script: &'static str,
    replaces: &'static [&'static str],
}

/// The hooks git-annex's init writes in a repository with a work tree,
/// with its scripts, but for post-receive, which runs this program's
/// `annex post-receive` (exporting pushed trees to the exporttree remotes
/// a gateway proxies), or git-annex's where this program is not
/// installed. git-annex's own post-receive scripts (its current one, and
/// the older one it upgrades itself) are replaced by it.
const HOOKS: [Hook; 4] = [
    Hook {
        name: "pre-commit",
        script: "#!/bin/sh\n# automatically configured by git-annex\ngit annex pre-commit .\n",
        replaces: &[],
    },
    Hook {
        name: "post-receive",
        script: "#!/bin/sh\n# automatically configured by annex\nif annex post-receive --help >/dev/null 2>&1; then annex post-receive; elif git annex post-receive --help >/dev/null 2>&1; then git annex post-receive; fi\n",
        replaces: &[
            "#!/bin/sh\n# automatically configured by git-annex\nif git annex post-receive --help >/dev/null 2>&1; then git annex post-receive; fi\n",
            "#!/bin/sh\n# automatically configured by git-annex\ngit annex post-receive\n",
        ],
    },
    Hook {
        name: "post-checkout",
        script: "#!/bin/sh\n# automatically configured by git-annex\ngit annex smudge --update\n",
        replaces: &[],
    },
    Hook {
        name: "post-merge",
        script: "#!/bin/sh\n# automatically configured by git-annex\ngit annex smudge --update\n",
        replaces: &[],
    },
];

/// Writes a hook as git-annex's `hookWrite` does: when there is none, or
/// in place of an earlier version of its script; a hook holding anything
/// else is left alone, with git-annex's warning.
fn write_hook(git_dir: &Path, hook: &Hook) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let hooks = git_dir.join("hooks");
    std::fs::create_dir_all(&hooks)?;
    let path = hooks.join(hook.name);
    match std::fs::read(&path) {
        Ok(current) if current == hook.script.as_bytes() => return Ok(()),
        Ok(current) if hook.replaces.iter().any(|r| r.as_bytes() == current) => {}
        Ok(_) => {
            // Named from where the command runs, as git-annex names it.
            let cwd = std::env::current_dir().unwrap_or_default();
            let shown = path.strip_prefix(&cwd).unwrap_or(&path);
            eprintln!(
                "  {} hook ({}) already exists, not configuring",
                hook.name,
                shown.display()
            );
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    // Written beside, then renamed over, as git-annex writes it.
    let tmp = hooks.join(format!(".{}.tmp", hook.name));
    std::fs::write(&tmp, hook.script)?;
    let mode = std::fs::metadata(&tmp)?.permissions().mode() | 0o111;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// `annex merge`.
pub fn merge(_args: MergeArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let report = here.branch.merge()?;
    if report.merged.is_empty() {
        println!("merge git-annex ok");
    } else {
        let names: Vec<&str> = report
            .merged
            .iter()
            .map(|n| n.trim_start_matches("refs/remotes/"))
            .collect();
        println!(
            "merge git-annex ({} {} into git-annex) ok",
            if report.fast_forwarded {
                "fast-forwarded to"
            } else {
                "merged"
            },
            names.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A percentage of `have` in `full`, with no decimals, like `42%`.
fn percentage(full: u64, have: u64) -> String {
    if full == 0 {
        return "0%".into();
    }
    let p = have as f64 * 100.0 / full as f64;
    format!("{}%", show_imprecise(0, p))
}

fn size_text(bytes_opt: bool, n: u64) -> String {
    if bytes_opt {
        n.to_string()
    } else {
        rough_size(n, 0)
    }
}

/// `annex maxsize`.
pub fn maxsize(args: MaxsizeArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let input: Vec<String> = args
        .repository
        .iter()
        .chain(args.size.iter())
        .cloned()
        .collect();
    match (&args.repository, &args.size) {
        (None, _) => maxsize_overview(&here, &args),
        (Some(name), None) => {
            let ov = here.overview()?;
            let u = ov.resolve_with_here(name, here.uuid.as_ref())?;
            let v = ov.maxsizes.get(&u).copied();
            if args.json {
                println!(
                    "{}",
                    json!({"command": "maxsize", "error-messages": [], "input": input,
                           "maxsize": v, "success": true})
                );
            } else {
                println!(
                    "{}",
                    match v {
                        Some(n) if args.bytes => n.to_string(),
                        Some(n) => precise_size(n),
                        None => String::new(),
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        (Some(name), Some(size)) => {
            let ov = here.overview()?;
            let u = ov.resolve_with_here(name, here.uuid.as_ref())?;
            // git-annex would record a negative maxsize too; ours refuses
            // it, as a size no repository can keep under.
            let n = read_size(size)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| anyhow!("Unable to parse size."))?;
            logviews::set_maxsize(&here.branch, &u, n)?;
            here.branch.commit("update")?;
            if args.json {
                println!(
                    "{}",
                    json!({"command": "maxsize", "error-messages": [], "input": input,
                           "success": true})
                );
            } else {
                println!("maxsize {name} ok");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A repository's maxsize and size, compared in that order.
type MaxAndSize = (Option<u64>, Option<u64>);

fn maxsize_overview(here: &Here, args: &MaxsizeArgs) -> anyhow::Result<ExitCode> {
    let ov = here.overview()?;
    let sizes = current_sizes(here)?;
    let mut rows: BTreeMap<Uuid, MaxAndSize> = BTreeMap::new();
    for (u, s) in &sizes {
        rows.insert(u.clone(), (ov.maxsizes.get(u).copied(), Some(s.bytes)));
    }
    for (u, m) in &ov.maxsizes {
        rows.entry(u.clone()).or_insert((Some(*m), Some(0)));
    }
    rows.retain(|u, _| !ov.dead.contains(u));
    // Largest maxsize first, then largest size, as git-annex orders them.
    let mut list: Vec<(Uuid, MaxAndSize)> = rows.into_iter().collect();
    list.reverse();
    list.sort_by_key(|r| std::cmp::Reverse(r.1));
    if args.json {
        let repos: Vec<_> = list
            .iter()
            .map(|(u, (max, size))| {
                json!({"uuid": u.as_str(), "description": ov.description_of(u),
                       "here": Some(u) == here.uuid.as_ref(),
                       "size": {"size": size, "maxsize": max}})
            })
            .collect();
        println!(
            "{}",
            json!({"command": "maxsize", "error-messages": [], "input": [],
                   "repositories": repos, "success": true})
        );
        return Ok(ExitCode::SUCCESS);
    }
    let pad = |w: usize, s: &str| format!("{}{s}", " ".repeat(w.saturating_sub(s.chars().count())));
    println!(
        "{} {} {}  repository",
        pad(7, "size"),
        pad(7, "maxsize"),
        pad(6, "%full")
    );
    let fmt = |n: Option<u64>| n.map(|n| size_text(args.bytes, n)).unwrap_or_default();
    for (u, (max, size)) in &list {
        let full = match (size, max) {
            (Some(s), Some(m)) if s <= m => percentage(*m, *s),
            (Some(_), Some(_)) => ">100%".into(),
            _ => String::new(),
        };
        println!(
            "{} {} {}  {}",
            pad(7, &fmt(*size)),
            pad(7, &fmt(*max)),
            pad(6, &full),
            ov.pretty(u, here.uuid.as_ref())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn current_sizes(here: &Here) -> anyhow::Result<BTreeMap<Uuid, annex_branch::sizes::RepoSize>> {
    let sizes = RepoSizes::current(&here.branch)?;
    Ok(sizes.with_journal(&here.branch)?)
}

/// `annex info`.
pub fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let ov = here.overview()?;
    let sizes = current_sizes(&here)?;
    let mut uuids: BTreeSet<Uuid> = ov.descriptions.keys().cloned().collect();
    uuids.extend(sizes.keys().cloned());
    uuids.extend(ov.maxsizes.keys().cloned());
    uuids.retain(|u| !logviews::is_builtin(u));
    let total: u64 = sizes.values().map(|s| s.bytes).sum();
    let routes = match &here.uuid {
        Some(u) => Some(crate::routes::routes(&here.branch, u)?),
        None => None,
    };
    if args.json {
        let repos: Vec<_> = uuids
            .iter()
            .map(|u| {
                let s = sizes.get(u).copied().unwrap_or_default();
                json!({"uuid": u.as_str(), "description": ov.description_of(u),
                       "here": Some(u) == here.uuid.as_ref(),
                       "trust": ov.trust_of(u),
                       "keys": s.keys, "size": s.bytes,
                       "maxsize": ov.maxsizes.get(u),
                       "cluster": u.is_cluster()})
            })
            .collect();
        let proxies: Vec<_> = ov
            .proxies
            .iter()
            .map(|(gw, remotes)| {
                json!({"gateway": gw.as_str(),
                       "remotes": remotes.iter().map(|(u, n)| json!({"uuid": u.as_str(), "name": n})).collect::<Vec<_>>()})
            })
            .collect();
        let clusters: Vec<_> = ov
            .clusters
            .iter()
            .map(|(c, nodes)| {
                json!({"cluster": c.as_str(), "description": ov.description_of(c),
                       "nodes": nodes.iter().map(|n| n.as_str()).collect::<Vec<_>>()})
            })
            .collect();
        println!(
            "{}",
            json!({"command": "info", "success": true,
            "here": here.uuid.as_ref().map(|u| u.as_str()),
            "branch": here.branch.require_head()?.to_string(),
            "repositories": repos, "combined size": total,
            "proxies": proxies, "clusters": clusters,
            "routes": routes.as_ref().map(|r| json!({
                "remotes": r.remotes.iter().map(|x| x.json()).collect::<Vec<_>>(),
                "proxied": r.proxied.iter().map(|x| x.json()).collect::<Vec<_>>(),
                "clusters": r.clusters.iter().map(|(c, nodes)| json!({
                    "cluster": c.as_str(),
                    "nodes": nodes.iter().map(|x| x.json()).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            }))})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("repositories: {}", uuids.len());
    for u in &uuids {
        let s = sizes.get(u).copied().unwrap_or_default();
        let max = ov
            .maxsizes
            .get(u)
            .map(|m| format!(" of {}", size_text(args.bytes, *m)))
            .unwrap_or_default();
        println!(
            "\t{} ({}; {} keys, {}{max})",
            ov.pretty(u, here.uuid.as_ref()),
            ov.trust_of(u),
            s.keys,
            size_text(args.bytes, s.bytes)
        );
    }
    println!(
        "combined annex size of all repositories: {}",
        size_text(args.bytes, total)
    );
    for (gw, remotes) in &ov.proxies {
        println!("proxy {}:", ov.pretty(gw, here.uuid.as_ref()));
        for (u, name) in remotes {
            println!("\t{name}: {u}");
        }
    }
    for (c, nodes) in &ov.clusters {
        println!("cluster {}:", ov.pretty(c, here.uuid.as_ref()));
        for n in nodes {
            println!("\tnode {}", ov.pretty(n, here.uuid.as_ref()));
        }
    }
    if let Some(routes) = &routes {
        // Gateways in between, and the cost of reading that makes.
        if !routes.remotes.is_empty() {
            println!("remotes, by cost (gateways in between):");
            for r in &routes.remotes {
                println!("\t{}", r.text());
            }
        }
        if !routes.proxied.is_empty() {
            println!("proxied here:");
            for r in &routes.proxied {
                println!("\t{}", r.text());
            }
        }
        for (c, nodes) in &routes.clusters {
            println!(
                "cluster {} served here, nodes by cost:",
                ov.pretty(c, here.uuid.as_ref())
            );
            for r in nodes {
                println!("\t{}", r.text());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::percentage;

    #[test]
    fn percentages() {
        assert_eq!(percentage(1000, 0), "0%");
        // Halves round to even, as Haskell's round does.
        assert_eq!(percentage(1000, 425), "42%");
        assert_eq!(percentage(1000, 435), "44%");
        assert_eq!(percentage(0, 5), "0%");
    }
}
