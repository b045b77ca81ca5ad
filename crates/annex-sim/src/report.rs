//! Where content ended up, at the end of a run: for each repository its
//! files, bytes, maxsize and how full it is; the files with fewer copies
//! than numcopies and those in no repository; and for each group a
//! balanced expression names, how evenly its members are filled.
//!
//! A repository has a file when its own location log says it has the
//! file's key (what the repository itself would say).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::state::{Failure, Sim};
use annex_types::size::rough_size;

/// One repository's share.
#[derive(Debug, Clone, Serialize)]
pub struct RepoReport {
    /// Its name in the simulation.
    pub name: String,
    /// Its UUID.
    pub uuid: String,
    /// Whether it is a special remote.
    pub special: bool,
    /// Its trust level.
    pub trust: String,
    /// How many files it has.
    pub files: usize,
    /// The bytes of the keys it has.
    pub bytes: i128,
    /// Its maxsize, when it has one.
    pub maxsize: Option<i128>,
    /// How full it is in percent of its maxsize.
    pub full_percent: Option<f64>,
}

/// A balanced group's spread.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// The group.
    pub group: String,
    /// Its members (their names).
    pub members: Vec<String>,
    /// The largest difference between members, in percentage points of
    /// their maxsize when all have one, else in percent of the fullest
    /// member's bytes.
    pub spread_percent: f64,
    /// Whether the spread is of fullness (all have a maxsize).
    pub by_maxsize: bool,
}

/// The end-of-run report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed the run ended with.
    pub seed: i64,
    /// The number of files.
    pub files: usize,
    /// numcopies.
    pub numcopies: i64,
    /// The repositories, by name.
    pub repositories: Vec<RepoReport>,
    /// Files with fewer copies than numcopies (copies in untrusted and
    /// dead repositories not counted).
    pub below_numcopies: Vec<String>,
    /// Files no repository has.
    pub in_no_repository: Vec<String>,
    /// Groups named by balanced expressions.
    pub balanced_groups: Vec<GroupReport>,
    /// Failed expectations.
    pub failures: Vec<Failure>,
}

fn balanced_groups(sim: &Sim) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let exprs = sim
        .repo_names()
        .flat_map(|(_, r)| [sim.wanted_of(r), sim.required_of(r)])
        .flatten()
        .chain(sim.group_wanted().values().map(String::as_str));
    for e in exprs {
        for w in e.split_whitespace() {
            let w = w.trim_start_matches('(');
            for p in [
                "balanced=",
                "fullybalanced=",
                "sizebalanced=",
                "fullysizebalanced=",
            ] {
                if let Some(rest) = w.strip_prefix(p) {
                    let g = rest.split(':').next().unwrap_or(rest).trim_end_matches(')');
                    out.insert(g.to_owned());
                }
            }
        }
    }
    out
}

/// Builds the report.
pub fn report(sim: &Sim) -> Report {
    let names: Vec<(&str, u32)> = sim.repo_names().collect();
    let mut repositories: Vec<RepoReport> = names
        .iter()
        .map(|&(name, r)| {
            let st = sim.state(r);
            let mut files = 0;
            let mut bytes = 0i128;
            for (_, k) in sim.files() {
                if st.has(k, r) {
                    files += 1;
                    bytes += i128::from(sim.key(k).size().unwrap_or(0));
                }
            }
            let maxsize = sim.maxsize_of(r);
            RepoReport {
                name: name.to_owned(),
                uuid: sim.uuid(r).to_owned(),
                special: st.special,
                trust: sim.trust_of(r).to_owned(),
                files,
                bytes,
                maxsize,
                full_percent: maxsize
                    .filter(|m| *m > 0)
                    .map(|m| bytes as f64 * 100.0 / m as f64),
            }
        })
        .collect();
    repositories.sort_by(|a, b| a.name.cmp(&b.name));
    let mut below = Vec::new();
    let mut none = Vec::new();
    let mut unique: Vec<u32> = names.iter().map(|(_, r)| *r).collect();
    unique.sort_unstable();
    unique.dedup();
    for (f, k) in sim.files() {
        let holders: Vec<u32> = unique
            .iter()
            .copied()
            .filter(|&r| sim.state(r).has(k, r))
            .collect();
        if holders.is_empty() {
            none.push(f.to_owned());
        }
        let counted = holders
            .iter()
            .filter(|&&r| !matches!(sim.trust_of(r), "untrusted" | "dead"))
            .count() as i64;
        if counted < sim.numcopies() {
            below.push(f.to_owned());
        }
    }
    let balanced_groups = balanced_groups(sim)
        .into_iter()
        .map(|g| {
            let members: Vec<&RepoReport> = names
                .iter()
                .filter(|(_, r)| sim.groups_of(*r).is_some_and(|gs| gs.contains(&g)))
                .filter_map(|(n, _)| repositories.iter().find(|x| x.name == *n))
                .collect();
            let by_maxsize =
                !members.is_empty() && members.iter().all(|m| m.full_percent.is_some());
            let values: Vec<f64> = members
                .iter()
                .map(|m| {
                    if by_maxsize {
                        m.full_percent.unwrap_or(0.0)
                    } else {
                        m.bytes as f64
                    }
                })
                .collect();
            let max = values.iter().copied().fold(f64::MIN, f64::max);
            let min = values.iter().copied().fold(f64::MAX, f64::min);
            let spread_percent = if values.is_empty() {
                0.0
            } else if by_maxsize {
                max - min
            } else if max > 0.0 {
                (max - min) * 100.0 / max
            } else {
                0.0
            };
            GroupReport {
                group: g,
                members: members.iter().map(|m| m.name.clone()).collect(),
                spread_percent,
                by_maxsize,
            }
        })
        .collect();
    Report {
        seed: sim.seed(),
        files: sim.files().count(),
        numcopies: sim.numcopies(),
        repositories,
        below_numcopies: below,
        in_no_repository: none,
        balanced_groups,
        failures: sim.failures.clone(),
    }
}

impl Report {
    /// The report as text for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = self
            .repositories
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(4)
            .max(10);
        let _ = writeln!(
            s,
            "{:<w$} {:>8} {:>12} {:>12} {:>6}",
            "repository", "files", "size", "maxsize", "full"
        );
        for r in &self.repositories {
            let _ = writeln!(
                s,
                "{:<w$} {:>8} {:>12} {:>12} {:>6}",
                r.name,
                r.files,
                rough_size(r.bytes, 2),
                r.maxsize
                    .map(|m| rough_size(m, 2))
                    .unwrap_or_else(|| "-".into()),
                r.full_percent
                    .map(|p| format!("{p:.0}%"))
                    .unwrap_or_else(|| "-".into())
            );
        }
        let _ = writeln!(
            s,
            "files: {}; below numcopies ({}): {}; in no repository: {}",
            self.files,
            self.numcopies,
            self.below_numcopies.len(),
            self.in_no_repository.len()
        );
        for g in &self.balanced_groups {
            let _ = writeln!(
                s,
                "balanced group {} ({} members): spread {:.1}{}",
                g.group,
                g.members.len(),
                g.spread_percent,
                if g.by_maxsize {
                    " percentage points of maxsize"
                } else {
                    "% of the fullest member's size"
                }
            );
        }
        s
    }
}
