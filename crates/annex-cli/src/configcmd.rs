//! Commands that show or set configuration kept in the git-annex branch:
//! `annex wanted`, `required`, `groupwanted`, `group`, `ungroup`,
//! `numcopies` and `mincopies`, with git-annex's arguments, output and
//! errors.
//!
//! Like git-annex, a command that sets something announces it as
//! `NAME ITEM ` and ends the line with `ok` or `failed`; the journal is then
//! committed to the branch, said as `(recording state in git...)`. An
//! argument that cannot be used (an unknown repository, a bad number) is
//! refused before anything is announced.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use annex_branch::logs::numcopies::Copies;
use annex_branch::logs::paths::{
    GROUP_LOG, GROUP_PREFERRED_CONTENT_LOG, MINCOPIES_LOG, NUMCOPIES_LOG, PREFERRED_CONTENT_LOG,
    REQUIRED_CONTENT_LOG,
};
use annex_branch::logs::readish::read_int;
use annex_branch::logs::{group, numcopies, preferred_content};
use annex_branch::VectorClock;
use annex_protocol::Uuid;
use anyhow::{anyhow, bail};
use clap::Args;

use crate::branchcmd::Here;

/// Arguments of `annex wanted` and `annex required`.
#[derive(Args)]
pub struct ExpressionArgs {
    /// The repository: a remote's name, a UUID, a description, or `here`
    /// (also `.`).
    repository: Option<String>,
    /// The expression to set, like `include=*.mp3 and not copies=2`, or
    /// `standard` for the repository's standard group's. Without it, the
    /// current expression is shown.
    expression: Option<String>,
    #[arg(hide = true)]
    extra: Vec<String>,
}

/// Arguments of `annex groupwanted`.
#[derive(Args)]
pub struct GroupWantedArgs {
    /// The group.
    group: Option<String>,
    /// The expression to set, used by the group's repositories whose own
    /// expression is `groupwanted`. Without it, the current one is shown.
    expression: Option<String>,
    #[arg(hide = true)]
    extra: Vec<String>,
}

/// Arguments of `annex group`.
#[derive(Args)]
pub struct GroupArgs {
    /// The repository: a remote's name, a UUID, a description, or `here`
    /// (also `.`).
    repository: Option<String>,
    /// The group to add the repository to. Without it, the repository's
    /// groups are shown.
    group: Option<String>,
    #[arg(hide = true)]
    extra: Vec<String>,
    /// List every group of the repositories that are not dead.
    #[arg(long)]
    list: bool,
}

/// Arguments of `annex ungroup`.
#[derive(Args)]
pub struct UngroupArgs {
    /// The repository: a remote's name, a UUID, a description, or `here`
    /// (also `.`).
    repository: Option<String>,
    /// The group to take it out of.
    group: Option<String>,
    #[arg(hide = true)]
    extra: Vec<String>,
}

/// Arguments of `annex numcopies` and `annex mincopies`.
#[derive(Args)]
pub struct CopiesArgs {
    /// The number to set (at least 1). Without it, the current one is
    /// shown.
    number: Option<String>,
    #[arg(hide = true)]
    extra: Vec<String>,
}

/// Which expression log `annex wanted`/`required` works on.
#[derive(Clone, Copy)]
pub enum ExpressionKind {
    /// preferred-content.log (`wanted`).
    Wanted,
    /// required-content.log (`required`).
    Required,
}

impl ExpressionKind {
    fn command(self) -> &'static str {
        match self {
            ExpressionKind::Wanted => "wanted",
            ExpressionKind::Required => "required",
        }
    }

    fn log(self) -> &'static str {
        match self {
            ExpressionKind::Wanted => PREFERRED_CONTENT_LOG,
            ExpressionKind::Required => REQUIRED_CONTENT_LOG,
        }
    }
}

/// Which number `annex numcopies`/`mincopies` works on.
#[derive(Clone, Copy)]
pub enum CopiesKind {
    /// numcopies.log.
    NumCopies,
    /// mincopies.log.
    MinCopies,
}

impl CopiesKind {
    fn command(self) -> &'static str {
        match self {
            CopiesKind::NumCopies => "numcopies",
            CopiesKind::MinCopies => "mincopies",
        }
    }

    fn log(self) -> &'static str {
        match self {
            CopiesKind::NumCopies => NUMCOPIES_LOG,
            CopiesKind::MinCopies => MINCOPIES_LOG,
        }
    }
}

/// Text as git-annex prints a value from the branch: without control
/// characters other than newline and tab.
fn safe_output(s: &str) -> String {
    s.chars()
        .filter(|&c| c == '\n' || c == '\t' || (c >= ' ' && c != '\u{7f}'))
        .collect()
}

/// Runs an action that sets something, announced as `NAME ITEM ` and
/// ended by `ok` or `failed` as git-annex ends it; after `ok`, the journal
/// is committed.
fn announce(
    here: &Here,
    name: &str,
    item: &str,
    action: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    print!("{name} {item} ");
    out.flush()?;
    match action() {
        Ok(()) => {
            println!("ok");
            record(here)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!();
            out.flush()?;
            eprintln!("annex: {e:#}");
            println!("failed");
            out.flush()?;
            eprintln!("{name}: 1 failed");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Commits the journal to the branch as git-annex does at the end of a
/// command (unless annex.alwayscommit is false), saying so when there was
/// something to commit.
fn record(here: &Here) -> anyhow::Result<()> {
    if here.commit_at_end()? {
        println!("(recording state in git...)");
    }
    Ok(())
}

/// Changes a log through the journal with `f`, which may refuse the
/// change with an error (then nothing is written).
fn change_log<E: std::fmt::Display>(
    here: &Here,
    path: &str,
    f: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, E>,
) -> anyhow::Result<()> {
    here.branch
        .try_change::<anyhow::Error>(path, |old| f(old).map_err(|e| anyhow!(e.to_string())))?;
    Ok(())
}

/// Checks an expression as git-annex does before recording it.
fn check_expression(expression: &str) -> anyhow::Result<()> {
    annex_preferred::check_expression(expression).map_err(|e| anyhow!("Parse error: {e}"))
}

fn resolve(here: &Here, name: &str) -> anyhow::Result<Uuid> {
    here.overview()?.resolve_with_here(name, here.uuid.as_ref())
}

/// `annex wanted` and `annex required`.
pub fn expression(kind: ExpressionKind, args: ExpressionArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let (Some(name), true) = (&args.repository, args.extra.is_empty()) else {
        bail!("Specify a repository.");
    };
    let uuid = resolve(&here, name)?;
    match &args.expression {
        None => {
            let log = preferred_content::parse(&here.branch.read(kind.log())?);
            let current = preferred_content::expressions(&log).remove(&uuid);
            println!("{}", safe_output(current.as_deref().unwrap_or("")));
            Ok(ExitCode::SUCCESS)
        }
        Some(expr) => announce(&here, kind.command(), name, || {
            check_expression(expr)?;
            change_log(&here, kind.log(), |old| {
                let mut log = preferred_content::parse(old);
                preferred_content::set(&mut log, uuid, expr, VectorClock::now())
                    .map(|_| Some(preferred_content::write(&log)))
            })
        }),
    }
}

/// `annex groupwanted`.
pub fn groupwanted(args: GroupWantedArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let (Some(group), true) = (&args.group, args.extra.is_empty()) else {
        bail!("Specify a group.");
    };
    match &args.expression {
        None => {
            let log =
                preferred_content::parse_group(&here.branch.read(GROUP_PREFERRED_CONTENT_LOG)?);
            let current = preferred_content::group_expressions(&log).remove(group);
            println!("{}", safe_output(current.as_deref().unwrap_or("")));
            Ok(ExitCode::SUCCESS)
        }
        Some(expr) => announce(&here, "groupwanted", group, || {
            check_expression(expr)?;
            change_log(&here, GROUP_PREFERRED_CONTENT_LOG, |old| {
                let mut log = preferred_content::parse_group(old);
                preferred_content::set_group(&mut log, group, expr, VectorClock::now())
                    .map(|_| Some(preferred_content::write_group(&log)))
            })
        }),
    }
}

/// Groups as git-annex lists them: in order, separated by spaces.
fn print_groups(groups: &BTreeSet<String>) {
    let list: Vec<&str> = groups.iter().map(String::as_str).collect();
    println!("{}", safe_output(&list.join(" ")));
}

/// `annex group`.
pub fn group(args: GroupArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    if args.list {
        if args.repository.is_some() {
            bail!("Cannot combine --list with other options");
        }
        let ov = here.overview()?;
        let by_uuid = group::groups_by_uuid(&group::parse(&here.branch.read(GROUP_LOG)?));
        let mut described: BTreeSet<&Uuid> = ov.raw_descriptions.keys().collect();
        described.extend(here.uuid.as_ref());
        let all: BTreeSet<String> = described
            .into_iter()
            .filter(|u| !ov.dead.contains(*u))
            .filter_map(|u| by_uuid.get(u))
            .flatten()
            .cloned()
            .collect();
        print_groups(&all);
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(name), true) = (&args.repository, args.extra.is_empty()) else {
        bail!("Specify a repository and a group.");
    };
    let uuid = resolve(&here, name)?;
    match &args.group {
        None => {
            let log = group::parse(&here.branch.read(GROUP_LOG)?);
            print_groups(&group::lookup(&log, &uuid));
            Ok(ExitCode::SUCCESS)
        }
        Some(g) => announce(&here, "group", name, || {
            change_log(&here, GROUP_LOG, |old| {
                let mut log = group::parse(old);
                // git-annex writes the name as it is, so a name with
                // spaces reads back as the groups it is made of (and an
                // empty one as none): the same is recorded here.
                group::change(
                    &mut log,
                    uuid,
                    |gs| gs.extend(g.split(' ').filter(|p| !p.is_empty()).map(String::from)),
                    VectorClock::now(),
                )
                .map(|_| Some(group::write(&log)))
            })
        }),
    }
}

/// `annex ungroup`.
pub fn ungroup(args: UngroupArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let (Some(name), Some(g), true) = (&args.repository, &args.group, args.extra.is_empty()) else {
        bail!("Specify a repository and a group.");
    };
    let uuid = resolve(&here, name)?;
    announce(&here, "ungroup", name, || {
        change_log(&here, GROUP_LOG, |old| {
            let mut log = group::parse(old);
            group::remove(&mut log, uuid, g, VectorClock::now()).map(|_| Some(group::write(&log)))
        })
    })
}

/// `annex numcopies` and `annex mincopies`.
pub fn copies(kind: CopiesKind, args: CopiesArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let setting = kind.command();
    if !args.extra.is_empty() {
        bail!("Specify a single number.");
    }
    let Some(text) = &args.number else {
        let current = numcopies::get(&numcopies::parse(&here.branch.read(kind.log())?));
        match (current, kind) {
            (Some(n), _) => println!("{n}"),
            (None, CopiesKind::MinCopies) => println!("global mincopies is not set"),
            (None, CopiesKind::NumCopies) => {
                println!("global numcopies is not set");
                let deprecated = here
                    .config
                    .get("annex.numcopies")
                    .and_then(|v| read_int(v.as_bytes()))
                    .map(Copies::configured);
                match deprecated {
                    None => println!("(default is 1)"),
                    Some(n) => println!(
                        "(deprecated git config annex.numcopies is set to {} locally)",
                        n.get()
                    ),
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let n = match read_int(text.as_bytes()) {
        None => bail!("Bad number: {text}"),
        Some(0) => bail!("Cannot set {setting} to 0."),
        Some(n) if n < 0 => bail!("{setting} cannot be negative!"),
        Some(n) => n.unsigned_abs(),
    };
    announce(&here, setting, &n.to_string(), || {
        change_log(&here, kind.log(), |old| {
            let mut log = numcopies::parse(old);
            // Nothing is logged when the number is already the one set.
            numcopies::set(&mut log, n, VectorClock::now())
                .map(|changed| changed.map(|_| numcopies::write(&log)))
        })
    })
}
