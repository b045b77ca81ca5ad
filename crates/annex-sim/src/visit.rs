//! Materialising a simulated repository as a real git-annex repository
//! (git-annex's updateSimRepos): its git-annex branch, written through
//! annex-branch, holds what that repository knows (descriptions, groups,
//! trust, preferred and required content, numcopies, mincopies, maxsize,
//! metadata and its location logs), and its index holds the annexed
//! files, so that `git annex whereis`, `git annex maxsize` or `annex info`
//! run inside it report the simulated state.

use std::path::Path;
use std::process::Command as Process;

use annex_branch::locations::location_log_path;
use annex_branch::logs::metadata::ModMeta;
use annex_branch::logs::paths::{
    GROUP_LOG, GROUP_PREFERRED_CONTENT_LOG, MAX_SIZE_LOG, MINCOPIES_LOG, NUMCOPIES_LOG,
    PREFERRED_CONTENT_LOG, REQUIRED_CONTENT_LOG, TRUST_LOG, UUID_LOG,
};
use annex_branch::logs::{group, maxsize, numcopies, preferred_content, presence, trust, uuid_log};
use annex_branch::{Branch, BranchError, VectorClock};
use annex_types::Uuid;

use crate::state::{trust_level, Sim};

/// Why a repository could not be written.
#[derive(Debug, thiserror::Error)]
pub enum VisitError {
    /// A file or directory.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// git failed.
    #[error("git {0} failed: {1}")]
    Git(String, String),
    /// The branch.
    #[error(transparent)]
    Branch(#[from] BranchError),
    /// A value no log can hold.
    #[error("{0}")]
    Value(String),
}

fn git(dir: &Path, args: &[&str]) -> Result<(), VisitError> {
    let out = Process::new("git").current_dir(dir).args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(VisitError::Git(
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

fn uuid(s: &str) -> Result<Uuid, VisitError> {
    Uuid::parse(s).map_err(|e| VisitError::Value(e.to_string()))
}

fn value<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, VisitError> {
    r.map_err(|e| VisitError::Value(e.to_string()))
}

/// Writes a file of the new repository's journal as the journal names
/// it, without syncing it to disk.
fn write_journal(branch: &Branch, path: &str, content: &[u8]) -> Result<(), VisitError> {
    let dir = branch.journal().dir();
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(annex_branch::journal::journal_file_name(path)),
        content,
    )?;
    Ok(())
}

/// A change to one log: its new content from the old.
type LogChange<'a> = dyn FnMut(&[u8]) -> Result<Vec<u8>, VisitError> + 'a;

/// The description git-annex gives a simulated repository.
pub fn description(name: &str) -> String {
    format!("simulated repository {name}")
}

/// Writes repository `name` of the simulation as a git-annex repository
/// in `dir` (made anew: whatever was there is removed).
pub fn materialise(sim: &Sim, name: &str, dir: &Path) -> Result<(), VisitError> {
    let r = sim.known_repo(name).map_err(|e| VisitError::Value(e.0))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    git(dir, &["init", "--quiet"])?;
    let me = sim.uuid(r);
    git(dir, &["config", "annex.uuid", me])?;
    git(dir, &["config", "annex.version", "10"])?;
    let branch = Branch::open(dir)?;
    let now = VectorClock::now();
    let repos: Vec<(&str, u32)> = sim.repo_names().collect();
    let mut err: Option<VisitError> = None;
    let mut change = |path: &str, f: &mut LogChange<'_>| {
        if err.is_some() {
            return;
        }
        let mut e = None;
        let r = branch.change(path, |old| match f(old) {
            Ok(v) => Some(v),
            Err(x) => {
                e = Some(x);
                None
            }
        });
        if let Err(x) = r {
            e = Some(x.into());
        }
        err = e;
    };
    change(UUID_LOG, &mut |old| {
        let mut log = uuid_log::parse(old);
        for (n, i) in &repos {
            value(uuid_log::describe(
                &mut log,
                uuid(sim.uuid(*i))?,
                &description(n),
                now,
            ))?;
        }
        Ok(uuid_log::write(&log))
    });
    change(TRUST_LOG, &mut |old| {
        let mut log = trust::parse(old);
        for (_, i) in &repos {
            let t = trust_level(sim.trust_of(*i));
            value(trust::set(&mut log, uuid(sim.uuid(*i))?, t, now))?;
        }
        Ok(trust::write(&log))
    });
    change(GROUP_LOG, &mut |old| {
        let mut log = group::parse(old);
        for (_, i) in &repos {
            let gs = sim.groups_of(*i).cloned().unwrap_or_default();
            value(group::change(
                &mut log,
                uuid(sim.uuid(*i))?,
                |g| *g = gs,
                now,
            ))?;
        }
        Ok(group::write(&log))
    });
    change(PREFERRED_CONTENT_LOG, &mut |old| {
        let mut log = preferred_content::parse(old);
        for (_, i) in &repos {
            if let Some(e) = sim.wanted_of(*i) {
                value(preferred_content::set(
                    &mut log,
                    uuid(sim.uuid(*i))?,
                    e,
                    now,
                ))?;
            }
        }
        Ok(preferred_content::write(&log))
    });
    change(REQUIRED_CONTENT_LOG, &mut |old| {
        let mut log = preferred_content::parse(old);
        for (_, i) in &repos {
            if let Some(e) = sim.required_of(*i) {
                value(preferred_content::set(
                    &mut log,
                    uuid(sim.uuid(*i))?,
                    e,
                    now,
                ))?;
            }
        }
        Ok(preferred_content::write(&log))
    });
    change(GROUP_PREFERRED_CONTENT_LOG, &mut |old| {
        let mut log = preferred_content::parse_group(old);
        for (g, e) in sim.group_wanted() {
            value(preferred_content::set_group(&mut log, g, e, now))?;
        }
        Ok(preferred_content::write_group(&log))
    });
    change(NUMCOPIES_LOG, &mut |old| {
        let mut log = numcopies::parse(old);
        value(numcopies::set(&mut log, sim.numcopies() as u64, now))?;
        Ok(numcopies::write(&log))
    });
    change(MINCOPIES_LOG, &mut |old| {
        let mut log = numcopies::parse(old);
        value(numcopies::set(&mut log, sim.mincopies() as u64, now))?;
        Ok(numcopies::write(&log))
    });
    change(MAX_SIZE_LOG, &mut |old| {
        let mut log = maxsize::parse(old);
        for (_, i) in &repos {
            if let Some(m) = sim.maxsize_of(*i) {
                value(maxsize::set(&mut log, uuid(sim.uuid(*i))?, m, now))?;
            }
        }
        Ok(maxsize::write(&log))
    });
    if let Some(e) = err {
        return Err(e);
    }
    // What this repository knows of where content is: each key's location
    // log written whole into the journal of this new repository, under one
    // hold of the journal lock and without syncing each file to disk (the
    // repository is made anew at each visit).
    let st = sim.state(r);
    let lock = branch.journal().lock()?;
    for (k, locs) in st.locs.iter().enumerate() {
        let key = sim.key(k as u32);
        if !locs.is_empty() {
            let mut lines: Vec<(&str, bool)> = locs.iter().map(|l| (sim.uuid(l.0), l.2)).collect();
            lines.sort();
            let mut log = Vec::new();
            for (u, present) in lines {
                let status = if present {
                    presence::Status::Present
                } else {
                    presence::Status::Missing
                };
                presence::write_line(now, status, u.as_bytes(), &mut log);
            }
            write_journal(&branch, &location_log_path(key), &log)?;
        }
        if let Some(md) = sim.metadata_of(k as u32) {
            let mods: Vec<ModMeta> = md
                .iter()
                .map(|(f, vs)| {
                    ModMeta::Set(
                        f.clone(),
                        vs.iter().map(|v| v.as_bytes().to_vec()).collect(),
                    )
                })
                .collect();
            let path = annex_branch::key_metadata::metadata_log_path(key);
            if let Some(log) = annex_branch::logs::metadata::modify(&[], &mods, now) {
                write_journal(&branch, &path, &log)?;
            }
        }
    }
    drop(lock);
    branch.commit("update")?;
    // The annexed files, as links to where the content would be.
    let mut staged = 0;
    for (f, k) in sim.files() {
        let key = sim.key(k);
        let target = format!(
            ".git/annex/objects/{}{}/{}",
            key.hash_dir_mixed(),
            key.to_file_name(),
            key.to_file_name()
        );
        let path = dir.join(f);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let depth = f.matches('/').count();
        let target = format!("{}{target}", "../".repeat(depth));
        std::os::unix::fs::symlink(target, &path)?;
        staged += 1;
    }
    if staged > 0 {
        git(dir, &["add", "--all", "."])?;
    }
    Ok(())
}
