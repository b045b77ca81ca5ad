//! `annex sim`: git-annex's simulator (`git annex sim`), over the annex-sim
//! crate. The simulation is kept where git-annex keeps its own,
//! `.git/annex/sim/` (the state in `state`, the repositories `visit`
//! writes in directories named by UUID), between `start` and `end`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

use annex_branch::logs::paths::REMOTE_LOG;
use annex_branch::logs::remote_config;
use annex_preferred::{BranchKeys, Decider, Expansion, Facts, Policy, Settings, Subject};
use annex_protocol::{Key, Uuid};
use annex_sim::{report, run_commands, visit, Host, RepoConfig, Sim};
use anyhow::{anyhow, bail, Context};
use clap::Args;

use crate::branchcmd::Here;

/// Arguments of `annex sim`.
#[derive(Args)]
pub struct SimArgs {
    /// With `run`: the end-of-run report as JSON (notes go to standard
    /// error).
    #[arg(long)]
    json: bool,
    /// `start [FILE]`, `end`, `show`, `run FILE`, or a sim command such
    /// as `step 10` or `visit REPO git annex whereis`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    args: Vec<String>,
}

fn git_dir() -> anyhow::Result<PathBuf> {
    let out = Process::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .context("running git rev-parse")?;
    if !out.status.success() {
        bail!("Not in a git repository.");
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    ))
}

struct CliHost {
    dir: PathBuf,
    json: bool,
    here: Option<Here>,
}

impl CliHost {
    fn here(&mut self) -> Result<&Here, String> {
        if self.here.is_none() {
            self.here = Some(Here::open_annex().map_err(|e| format!("{e:#}"))?);
        }
        self.here.as_ref().ok_or_else(|| "no repository".to_owned())
    }

    fn facts(&mut self) -> Result<Facts, String> {
        let here = self.here()?;
        Facts::load(&here.branch).map_err(|e| e.to_string())
    }
}

impl Host for CliHost {
    fn existing_repo(&mut self, name: &str) -> Result<RepoConfig, String> {
        let facts = self.facts()?;
        let here = self.here()?;
        let u = here
            .overview()
            .and_then(|ov| ov.resolve_with_here(name, here.uuid.as_ref()))
            .map_err(|e| format!("{e:#}"))?;
        let remotes = here
            .branch
            .read(REMOTE_LOG)
            .map(|d| remote_config::config_map(&remote_config::parse(&d)))
            .map_err(|e| e.to_string())?;
        let groups: BTreeSet<String> = facts.groups_of.get(&u).cloned().unwrap_or_default();
        Ok(RepoConfig {
            uuid: u.as_str().to_owned(),
            special: remotes.contains_key(&u),
            trust: facts.trust_of(&u).as_str().to_owned(),
            wanted: facts.preferred.get(&u).cloned(),
            required: facts.required.get(&u).cloned(),
            group_wanted: facts
                .group_wanted
                .iter()
                .filter(|(g, _)| groups.contains(*g))
                .map(|(g, e)| (g.clone(), e.clone()))
                .collect(),
            maxsize: facts.maxsizes.get(&u).copied(),
            groups,
        })
    }

    fn tree_files(&mut self, uuid: &str, expression: &str) -> Result<Vec<(String, Key)>, String> {
        let facts = self.facts()?;
        let here = self.here()?;
        let u = Uuid::parse(uuid).map_err(|e| e.to_string())?;
        let policy = Policy::compile_strict(
            &facts,
            &u,
            expression,
            "provided expression",
            Expansion::Repository,
        )
        .map_err(|e| e.to_string())?;
        let out = Process::new("git")
            .args(["ls-files", "-z", "--full-name"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err("git ls-files failed".into());
        }
        let top = here.work.clone();
        let clusters = facts.clusters.clone();
        let keys = BranchKeys::new(&here.branch, clusters);
        let settings = Settings::default();
        let decider = Decider {
            facts: &facts,
            keys: &keys,
            sizes: None,
            settings: &settings,
        };
        let toplevel = Process::new("git")
            .args(["rev-parse", "--show-toplevel"])
            .output()
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_owned()))
            .unwrap_or(top);
        let mut found = Vec::new();
        for f in out.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
            let f = String::from_utf8_lossy(f).into_owned();
            let Some(key) = annex_repo::annexed_key(&toplevel.join(&f)) else {
                continue;
            };
            let subject = Subject::key(&key, Some(&f));
            let v = decider
                .evaluate(&policy, &subject, &Default::default(), false)
                .map_err(|e| e.to_string())?;
            if v.matches || policy.is_empty() {
                found.push((f, key));
            }
        }
        Ok(found)
    }

    fn visit(&mut self, sim: &Sim, repo: &str, command: &[String]) -> Result<i32, String> {
        let r = sim.known_repo(repo).map_err(|e| e.0)?;
        let dir = self.dir.join(sim.uuid(r));
        visit::materialise(sim, repo, &dir).map_err(|e| e.to_string())?;
        let mut p = if command.is_empty() {
            self.note("Starting a shell in the simulated repository.");
            Process::new(std::env::var("SHELL").unwrap_or_else(|_| "sh".into()))
        } else {
            let mut p = Process::new("sh");
            p.arg("-c").arg(command.join(" "));
            p
        };
        if self.json {
            // Keep standard output for the report.
            p.stdout(std::process::Stdio::from(std::io::stderr()));
        }
        let status = p.current_dir(&dir).status().map_err(|e| e.to_string())?;
        if command.is_empty() {
            self.note("Finished visit to simulated repository.");
        }
        Ok(status.code().unwrap_or(1))
    }

    fn note(&mut self, text: &str) {
        if self.json {
            eprintln!("\n  {text}");
        } else {
            println!("\n  {text}");
        }
    }
}

fn random_seed() -> i64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    annex_sim::rng::mix64(t ^ (u64::from(std::process::id()) << 32)) as i64
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("state")
}

fn load(dir: &Path) -> anyhow::Result<Sim> {
    let data = std::fs::read(state_file(dir)).map_err(|e| {
        anyhow!("No simulation is running ({e}); start one with `annex sim start`.")
    })?;
    Ok(Sim::load(&data)?)
}

fn save(dir: &Path, sim: &Sim) -> anyhow::Result<()> {
    let tmp = dir.join("state.tmp");
    std::fs::write(&tmp, sim.save()?)?;
    std::fs::rename(tmp, state_file(dir))?;
    Ok(())
}

fn print_failures(sim: &Sim, file: Option<&str>) {
    for f in &sim.failures {
        match (file, f.line) {
            (Some(file), Some(l)) => eprintln!("annex: {file} line {l}: {}", f.message),
            (_, Some(l)) => eprintln!("annex: line {l}: {}", f.message),
            _ => eprintln!("annex: {}", f.message),
        }
    }
}

/// Reads a sim file and runs it in a new simulation; on an error nothing
/// is left behind.
fn start(dir: &Path, file: Option<&str>, host: &mut CliHost) -> anyhow::Result<Sim> {
    if dir.exists() {
        bail!("A sim was previously started. Use `annex sim end` to stop it before starting a new one.");
    }
    host.note("Sim started.");
    let mut sim = Sim::new(random_seed());
    let cmds = match file {
        None => Vec::new(),
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?;
            annex_sim::parse_file(&text).map_err(|(line, e)| anyhow!("{f} line {line}: {}", e.0))?
        }
    };
    sim.record_seed(cmds.first().map(|(_, c)| c));
    std::fs::create_dir_all(dir)?;
    if let Err(e) = run_commands(&mut sim, &cmds, host) {
        let _ = std::fs::remove_dir_all(dir);
        let f = file.unwrap_or("");
        match e.line {
            Some(l) => bail!("{f} line {l}: {}", e.message),
            None => bail!("{}", e.message),
        }
    }
    Ok(sim)
}

fn end(dir: &Path, host: &mut CliHost) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    host.note("Sim ended.");
    Ok(())
}

/// `annex sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let dir = git_dir()?.join("annex").join("sim");
    // `--json` may come after `run` too.
    let run_json =
        args.args.first().is_some_and(|a| a == "run") && args.args.iter().any(|a| a == "--json");
    let json = args.json || run_json;
    let mut host = CliHost {
        dir: dir.clone(),
        json,
        here: None,
    };
    let words: Vec<&str> = args
        .args
        .iter()
        .map(String::as_str)
        .filter(|a| !(run_json && *a == "--json"))
        .collect();
    match words.as_slice() {
        ["start"] | ["start", _] => {
            let sim = start(&dir, words.get(1).copied(), &mut host)?;
            save(&dir, &sim)?;
            if sim.failed() {
                print_failures(&sim, words.get(1).copied());
                bail!("Simulation had errors.");
            }
            Ok(ExitCode::SUCCESS)
        }
        ["end"] => {
            end(&dir, &mut host)?;
            Ok(ExitCode::SUCCESS)
        }
        ["show"] => {
            print!("{}", load(&dir)?.show());
            Ok(ExitCode::SUCCESS)
        }
        ["run", file] => {
            let sim = start(&dir, Some(file), &mut host)?;
            end(&dir, &mut host)?;
            let rep = report::report(&sim);
            if json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            }
            if sim.failed() {
                if !json {
                    print!("{}", sim.show());
                }
                print_failures(&sim, Some(file));
                bail!("Simulation shown above had errors.");
            }
            if !json {
                print!("{}", rep.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        ws => {
            let cmd = annex_sim::parse_words(ws).map_err(|e| anyhow!("{}", e.0))?;
            let mut sim = load(&dir)?;
            let failed_before = sim.failures.len();
            // A command that cannot run changes nothing: the state is
            // saved only after it ran.
            sim.apply(&cmd, &mut host).map_err(|e| anyhow!("{}", e.0))?;
            save(&dir, &sim)?;
            if sim.failures.len() > failed_before {
                for f in &sim.failures[failed_before..] {
                    eprintln!("annex: {}", f.message);
                }
                bail!("Simulation had errors.");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
