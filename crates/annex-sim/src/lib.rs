//! A simulator of a network of git-annex repositories, reading and writing
//! the sim files of `git annex sim` (git-annex 10.20250416): repositories
//! with their preferred and required content, groups, trust, numcopies
//! and maxsize, connected as remotes, run forward in time until nothing is
//! left to transfer or drop, with assertions about where files end up.
//!
//! - [`file`](mod@file): the sim file language, with git-annex's error messages.
//! - [`Sim`]: a simulation: its [`SimState`], what [`Sim::save`] keeps,
//!   and the indexes worked out from it to decide quickly, which are not
//!   saved; [`Sim::apply`] runs one command. Every preferred content
//!   decision is made by annex-preferred.
//! - [`run`]: runs a whole sim file, naming the line of each error and
//!   each failed expectation.
//! - [`report`]: where content ended up: per repository, numcopies,
//!   balanced groups.
//! - [`visit`]: writes a simulated repository as a real git-annex
//!   repository, so that git-annex's own commands can look at it.
//!
//! A sim file read as git-annex reads it:
//!
//! ```
//! let commands = annex_sim::parse_file("init foo\nwanted foo include=*.jpg\n").unwrap();
//! assert_eq!(commands.len(), 2);
//! assert_eq!(commands[1].0, 2); // the line it came from
//! ```
#![warn(missing_docs)]

mod derived;
pub mod file;
pub mod report;
pub mod rng;
mod state;
mod step;
pub mod visit;

pub use file::{parse_file, parse_line, parse_words, Action, Command};
pub use state::{
    CommandError, Failure, Host, Loc, NoHost, RepoConfig, RepoState, Sim, SimState, StateError,
};

/// An error running a sim file: the line it came from, when it came from
/// a file, and git-annex's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LineError {
    /// The line (from 1).
    pub line: Option<usize>,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Parses a whole sim file first (nothing runs when a line cannot be
/// read), then runs its commands in order, stopping at the first that
/// cannot run. The seed is recorded first unless the file starts with
/// one.
pub fn run(sim: &mut Sim, text: &str, host: &mut dyn Host) -> Result<(), LineError> {
    let cmds = parse_file(text).map_err(|(line, e)| LineError {
        line: Some(line),
        message: e.0,
    })?;
    sim.record_seed(cmds.first().map(|(_, c)| c));
    run_commands(sim, &cmds, host)
}

/// Runs commands, each with its line.
pub fn run_commands(
    sim: &mut Sim,
    cmds: &[(usize, Command)],
    host: &mut dyn Host,
) -> Result<(), LineError> {
    for (line, c) in cmds {
        sim.line = Some(*line);
        let r = sim.apply(c, host);
        sim.line = None;
        r.map_err(|e| LineError {
            line: Some(*line),
            message: e.0,
        })?;
    }
    Ok(())
}
