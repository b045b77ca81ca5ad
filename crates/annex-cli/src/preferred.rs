//! `annex matchexpression` and `annex placement`: preferred content
//! decisions, asked from the command line.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use annex_preferred::eval::SubjectKind;
use annex_preferred::{
    BranchKeys, Decider, EvalError, Expansion, Facts, LiveSizes, Policy, Settings, Subject,
};
use annex_protocol::{Key, Uuid};

use crate::branchcmd::Here;

#[derive(Args)]
pub struct MatchexpressionArgs {
    /// The preferred content expression.
    #[arg(value_name = "EXPRESSION")]
    expression: String,
    /// The file name to match against.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    file: Option<String>,
    /// The key to match against (its size is used when --size is not given).
    #[arg(long, value_name = "KEY", value_parser = parse_key, allow_hyphen_values = true)]
    key: Option<Key>,
    /// The size to match against (`100`, `1mb`, `2 GiB`...).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    size: Option<String>,
    /// Print why the expression matched or did not.
    #[arg(long)]
    explain: bool,
    /// Act as with --rebalance: balanced terms act as their fully
    /// balanced forms.
    #[arg(long)]
    rebalance: bool,
}

fn parse_key(s: &str) -> Result<Key, String> {
    Key::parse(s).map_err(|e| e.to_string())
}

/// An option whose value does not parse, refused as git-annex's option
/// parser refuses it: its message, then the usage, and exit code 1.
fn bad_option(option: &str) -> ExitCode {
    use clap::CommandFactory;
    let mut cli = crate::Cli::command();
    cli.build();
    let usage = cli
        .find_subcommand_mut("matchexpression")
        .map(|c| c.render_usage().to_string())
        .unwrap_or_default();
    eprintln!("option --{option}: parse error\n\n{usage}");
    ExitCode::FAILURE
}

/// The exit code git-annex uses when an expression cannot be matched.
const NOT_ENOUGH_DATA: u8 = 42;

/// The decision-making context of the repository the command runs in.
pub(crate) struct Context {
    pub(crate) facts: Facts,
    pub(crate) sizes: LiveSizes,
    pub(crate) settings: Settings,
    pub(crate) unused: HashSet<Key>,
}

impl Context {
    /// Key information from the branch, with this repository's own content
    /// checked on disk when it can be opened.
    pub(crate) fn keys<'a>(
        &self,
        here: &'a Here,
        local: Option<&'a annex_repo::LocalRepository>,
    ) -> BranchKeys<'a> {
        let keys = BranchKeys::new(&here.branch, self.facts.clusters.clone())
            .with_unused(self.unused.clone());
        match local {
            Some(repo) => keys.with_local_content(move |k| repo.has_content(k)),
            None => keys,
        }
    }

    /// A decider over these facts and sizes, reading keys from `keys`.
    pub(crate) fn decider<'a>(&'a self, keys: &'a BranchKeys<'_>) -> Decider<'a> {
        Decider {
            facts: &self.facts,
            keys,
            sizes: Some(&self.sizes),
            settings: &self.settings,
        }
    }

    pub(crate) fn load(here: &Here, rebalance: bool) -> anyhow::Result<Context> {
        let facts = Facts::load(&here.branch)?;
        let sizes = LiveSizes::from_branch(&here.branch, &facts)?;
        let threshold = here
            .config
            .get("annex.fullybalancedthreshhold")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v / 100.0)
            .unwrap_or(0.9);
        Ok(Context {
            unused: annex_preferred::keys::read_unused_log(here.branch.git_dir()),
            facts,
            sizes,
            settings: Settings {
                here: here.uuid.clone(),
                rebalance,
                fully_balanced_threshold: threshold,
            },
        })
    }
}

pub fn matchexpression(args: MatchexpressionArgs) -> anyhow::Result<ExitCode> {
    let size_option = match args.size.as_deref().map(annex_types::size::read_size) {
        Some(None) => return Ok(bad_option("size")),
        Some(Some(size)) => Some(size),
        None => None,
    };
    let here = Here::open_annex()?;
    let ctx = Context::load(&here, args.rebalance)?;
    let Some(u) = here.uuid.clone() else {
        anyhow::bail!("this repository has no annex.uuid");
    };
    let policy = match Policy::compile_strict(
        &ctx.facts,
        &u,
        &args.expression,
        "provided expression",
        Expansion::MatchAll,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bad expression: {e}");
            return Ok(ExitCode::from(NOT_ENOUGH_DATA));
        }
    };
    let local = annex_repo::LocalRepository::open(&here.work).ok();
    let keys = ctx.keys(&here, local.as_ref());
    let decider = ctx.decider(&keys);
    // A key that has a size gives it, over --size (as git-annex does).
    let size = args
        .key
        .as_ref()
        .and_then(|k| k.size())
        .map(i128::from)
        .or(size_option);
    let subject = Subject {
        key: args.key.as_ref(),
        file: args.file.as_deref(),
        size,
        kind: SubjectKind::User,
        numcopies: None,
        locations: None,
    };
    match decider.evaluate(&policy, &subject, &HashSet::new(), args.explain) {
        Ok(v) => {
            if let Some(e) = v.explanation {
                println!("[ {e} ]");
            }
            Ok(if v.matches {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(EvalError::Missing(what)) => {
            eprintln!("cannot match this expression without {what} data");
            Ok(ExitCode::from(NOT_ENOUGH_DATA))
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

#[derive(Args)]
pub struct PlacementArgs {
    /// Only the repositories of this group.
    #[arg(long, value_name = "GROUP", conflicts_with = "cluster")]
    group: Option<String>,
    /// Only the nodes of this cluster (its name in `annex.cluster.NAME`,
    /// or its UUID).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Act as with --rebalance: balanced terms act as their fully
    /// balanced forms.
    #[arg(long)]
    rebalance: bool,
    /// One JSON object per key.
    #[arg(long)]
    json: bool,
    /// Keys, or annexed files (their key is looked up).
    #[arg(value_name = "KEY|FILE", required = true)]
    items: Vec<String>,
}

/// What one repository makes of one key.
#[derive(serde::Serialize)]
struct Placement {
    uuid: String,
    description: String,
    present: bool,
    /// Would it want the key if it did not have it?
    wants: Option<bool>,
    /// Does it keep the key it has (its preferred content still matches
    /// when it is assumed not to have it)?
    keeps: Option<bool>,
    required: Option<bool>,
    #[serde(rename = "preferred content")]
    preferred: Option<String>,
    #[serde(rename = "required content")]
    required_expression: Option<String>,
    explanation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

pub fn placement(args: PlacementArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let ctx = Context::load(&here, args.rebalance)?;
    let overview = here.overview()?;
    let policies = annex_preferred::Policies::compile(&ctx.facts);
    let repos: Vec<Uuid> = if let Some(g) = &args.group {
        let m = ctx.facts.members(g).to_vec();
        if m.is_empty() {
            anyhow::bail!("no repository is in group {g}");
        }
        m
    } else if let Some(c) = &args.cluster {
        let cu = match here.config.get(&format!("annex.cluster.{c}")) {
            Some(u) => Uuid::parse(u.trim())?,
            None => Uuid::parse(c).map_err(|_| anyhow::anyhow!("no cluster named {c}"))?,
        };
        match ctx.facts.clusters.nodes_of(&cu) {
            Some(n) => n.iter().cloned().collect(),
            None => anyhow::bail!("{c} is not a cluster in cluster.log"),
        }
    } else {
        let mut all: std::collections::BTreeSet<Uuid> = ctx.facts.known.clone();
        all.extend(policies.all_preferred().map(|(u, _)| u.clone()));
        all.into_iter()
            .filter(|u| !u.is_cluster() && !crate::logviews::is_builtin(u))
            .collect()
    };
    let local = annex_repo::LocalRepository::open(&here.work).ok();
    let keys = ctx.keys(&here, local.as_ref());
    let decider = ctx.decider(&keys);
    let mut status = ExitCode::SUCCESS;
    for item in &args.items {
        let (key, file) = match Key::parse(item) {
            Ok(k) if !Path::new(item).exists() => (k, None),
            _ => match annex_repo::annexed_key(&here.work.join(item)) {
                Some(k) => (k, Some(item.as_str())),
                None => {
                    eprintln!("annex: {item} is neither a key nor an annexed file");
                    status = ExitCode::FAILURE;
                    continue;
                }
            },
        };
        let subject = Subject::key(&key, file);
        let locations: Vec<Uuid> = {
            use annex_preferred::KeyInfo;
            keys.locations(&key)?.into_owned()
        };
        let mut rows = Vec::new();
        for u in &repos {
            let present = locations.contains(u);
            let pc = policies.preferred(u);
            let rc = policies.required(u);
            let ask = |p: &Policy, not_present: HashSet<Uuid>, explain: bool| {
                decider
                    .evaluate(p, &subject, &not_present, explain)
                    .map(|v| (v.matches, v.explanation))
            };
            let (wants, explanation) = match pc {
                Some(p) if !p.is_empty() => {
                    let (m, e) = ask(p, HashSet::new(), true)?;
                    (Some(m), e)
                }
                _ => (None, None),
            };
            let keeps = match pc {
                Some(p) if !p.is_empty() => {
                    Some(ask(p, [u.clone()].into_iter().collect(), false)?.0)
                }
                _ => None,
            };
            let required = match rc {
                Some(p) if !p.is_empty() => {
                    Some(ask(p, [u.clone()].into_iter().collect(), false)?.0)
                }
                _ => None,
            };
            let warning = pc
                .and_then(|p| p.unreadable())
                .or_else(|| rc.and_then(|p| p.unreadable()))
                .map(|w| format!("unreadable expression, treated as present: {w}"));
            rows.push(Placement {
                uuid: u.to_string(),
                description: overview.description_of(u),
                present,
                wants,
                keeps,
                required,
                preferred: ctx.facts.preferred.get(u).cloned(),
                required_expression: ctx.facts.required.get(u).cloned(),
                explanation,
                warning,
            });
        }
        if args.json {
            let v = serde_json::json!({
                "key": key.to_string(),
                "file": file,
                "repositories": rows,
            });
            println!("{v}");
        } else {
            print_placement(&key, file, &rows, here.uuid.as_ref(), &overview);
        }
    }
    Ok(status)
}

fn print_placement(
    key: &Key,
    file: Option<&str>,
    rows: &[Placement],
    here: Option<&Uuid>,
    overview: &crate::logviews::Overview,
) {
    match file {
        Some(f) => println!("{f} ({key})"),
        None => println!("{key}"),
    }
    let yes_no = |b: Option<bool>, yes: &str, no: &str| match b {
        Some(true) => yes.to_owned(),
        Some(false) => no.to_owned(),
        None => "no preferred content".to_owned(),
    };
    for r in rows {
        let u = Uuid::parse(&r.uuid).ok();
        let name = u
            .as_ref()
            .map(|u| overview.pretty(u, here))
            .unwrap_or_else(|| r.uuid.clone());
        let mut facts = vec![if r.present {
            "has it"
        } else {
            "does not have it"
        }
        .to_owned()];
        if r.present {
            facts.push(yes_no(r.keeps, "keeps it", "would drop it"));
        } else {
            facts.push(yes_no(r.wants, "wants it", "does not want it"));
        }
        match r.required {
            Some(true) => facts.push("required".into()),
            Some(false) => facts.push("not required".into()),
            None => {}
        }
        println!("  {name}: {}", facts.join(", "));
        if let Some(e) = &r.explanation {
            println!("    {e}");
        }
        if let Some(w) = &r.warning {
            println!("    warning: {w}");
        }
    }
}
