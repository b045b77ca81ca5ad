//! Running the simulation forward: the actions repositories take on files
//! (get what they want from a remote, send a remote what it wants, drop
//! what is not wanted when enough copies are verified), git-annex branch
//! merges, and `step`/`stepstable` picking actions at random until
//! nothing is left to do.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use annex_branch::logs::metadata::MetaData;
use annex_preferred::{Decider, EvalError, KeyInfo, Subject};
use annex_types::{Key, Uuid};

use crate::file::{Action, Command};
use crate::rng::Permutation;
use crate::state::{fail, CommandError, Host, Sim};

/// What an action does to each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `u` gets from `r` what it wants.
    Get,
    /// `u` sends `r` what `r` wants.
    Send,
    /// `u` drops from `r` (itself when `r == u`) what `r` does not want.
    Drop,
}

/// An action over every file: git-annex's list of per-file closures.
#[derive(Debug, Clone)]
struct Spec {
    kind: Kind,
    u: u32,
    /// The acting repository's name.
    name: String,
    r: u32,
    /// The remote's name (or the repository's own for a local drop).
    rname: String,
}

/// Metadata for decisions; locations are always given with the subject.
struct SimKeys<'a> {
    metadata: &'a HashMap<Key, MetaData>,
}

impl KeyInfo for SimKeys<'_> {
    fn locations(&self, _key: &Key) -> Result<Cow<'_, [Uuid]>, EvalError> {
        Ok(Cow::Borrowed(&[]))
    }

    fn metadata(&self, key: &Key) -> Result<MetaData, EvalError> {
        Ok(self.metadata.get(key).cloned().unwrap_or_default())
    }
}

impl Sim {
    fn metadata_map(&self) -> HashMap<Key, MetaData> {
        self.state
            .metadata
            .iter()
            .map(|(k, md)| {
                (
                    self.derived.key_objs[*k as usize].clone(),
                    MetaData(
                        md.iter()
                            .map(|(f, vs)| {
                                (
                                    f.clone(),
                                    vs.iter().map(|v| v.as_bytes().to_vec()).collect(),
                                )
                            })
                            .collect(),
                    ),
                )
            })
            .collect()
    }

    /// Whether repository `target`'s preferred content matches key `k`
    /// (of `file`), as `viewer` knows things, with `target` assumed not
    /// to have it when `drop`; `false` when it has no preferred content
    /// (git-annex's sim asks with that default).
    fn preferred(
        &mut self,
        viewer: u32,
        target: u32,
        k: u32,
        file: &str,
        drop: bool,
        md: &HashMap<Key, MetaData>,
    ) -> bool {
        self.derived.ensure_compiled(&self.state);
        let needs_sizes = match self
            .derived
            .compiled
            .as_ref()
            .and_then(|c| c.kinds.get(target as usize).copied().flatten())
        {
            Some(n) => n,
            None => return false,
        };
        if needs_sizes {
            self.derived.refresh_live(&self.state, viewer);
        }
        let mut locations = std::mem::take(&mut self.derived.scratch);
        locations.clear();
        let st = &self.state.states[viewer as usize];
        if self.derived.uuid_objs.len() <= 64 {
            // The presence bits say it all, without reading the log.
            let mut bits = self.bits(viewer, k);
            while bits != 0 {
                let r = bits.trailing_zeros() as usize;
                locations.push(self.derived.uuid_objs[r].clone());
                bits &= bits - 1;
            }
        } else {
            locations.extend(
                st.present(k)
                    .map(|r| self.derived.uuid_objs[r as usize].clone()),
            );
        }
        let tu = &self.derived.uuid_objs[target as usize];
        let matches = match self.derived.compiled.as_ref() {
            Some(c) => match c.by_index.get(target as usize).and_then(Option::as_ref) {
                Some(policy) => {
                    let keys = SimKeys { metadata: md };
                    let sizes = needs_sizes
                        .then(|| self.derived.live.get(viewer as usize).map(|l| &l.0))
                        .flatten();
                    let decider = Decider {
                        facts: &c.facts,
                        keys: &keys,
                        sizes,
                        settings: &c.settings,
                    };
                    let key = &self.derived.key_objs[k as usize];
                    let subject = Subject::key(key, Some(file)).with_locations(&locations);
                    let not_present: HashSet<Uuid> = if drop {
                        [tu.clone()].into_iter().collect()
                    } else {
                        HashSet::new()
                    };
                    // The reservation a size-dependent decision makes is
                    // given up at once: the location is recorded right
                    // away, and sizes with it.
                    decider
                        .evaluate(policy, &subject, &not_present, false)
                        .map(|v| v.matches)
                        .unwrap_or(false)
                }
                None => false,
            },
            None => false,
        };
        self.derived.scratch = locations;
        matches
    }

    fn want_drop(
        &mut self,
        viewer: u32,
        r: u32,
        k: u32,
        file: &str,
        md: &HashMap<Key, MetaData>,
    ) -> bool {
        if self.preferred(viewer, r, k, file, true, md) {
            return false;
        }
        // Another file with the same key that is preferred keeps it.
        let others: Vec<String> = self
            .derived
            .files_of_key(&self.state)
            .get(&k)
            .map(|fs| fs.iter().filter(|f| f.as_str() != file).cloned().collect())
            .unwrap_or_default();
        !others
            .iter()
            .any(|f| self.preferred(viewer, r, k, f, true, md))
    }

    /// Whether enough copies other than `dropfrom`'s are verified for
    /// `u` to drop it (git-annex's safeDropAnalysis with no lock on the
    /// content being dropped).
    fn safe_drop(&self, u: u32, dropfrom: u32, k: u32) -> bool {
        if let Some(m) = &self.derived.masks {
            let mut verified = 0i64;
            let mut full = 0i64;
            let mut bits = self.bits(u, k) & !(1u64 << dropfrom);
            while bits != 0 {
                let ru = bits.trailing_zeros();
                bits &= bits - 1;
                if !self.has_in(ru, k, ru) {
                    continue;
                }
                let b = 1u64 << ru;
                if m.remotes[u as usize] & b != 0 || ru == u {
                    verified += 1;
                    if m.special & b == 0 {
                        full += 1;
                    }
                } else if m.trusted & b != 0 {
                    verified += 1;
                    full += 1;
                }
            }
            return verified >= self.state.numcopies && full >= self.state.mincopies;
        }
        let remotes: HashSet<u32> = self.state.connections[u as usize]
            .iter()
            .filter_map(|n| self.state.repos.get(n).copied())
            .collect();
        let mut verified = 0i64;
        let mut full = 0i64;
        let mut seen = HashSet::new();
        for ru in self.state.states[u as usize].present(k) {
            if ru == dropfrom || !seen.insert(ru) {
                continue;
            }
            if !self.state.states[ru as usize].has(k, ru) {
                continue;
            }
            if remotes.contains(&ru) || ru == u {
                verified += 1;
                if !self.state.states[ru as usize].special {
                    full += 1;
                }
            } else if self.state.trust_of(ru) == "trusted" {
                verified += 1;
                full += 1;
            }
        }
        verified >= self.state.numcopies && full >= self.state.mincopies
    }

    /// Runs one action on one file; whether it did something.
    fn run_component(
        &mut self,
        spec: &Spec,
        file: &Lazy<'_>,
        k: u32,
        md: &HashMap<Key, MetaData>,
    ) -> bool {
        let (u, r) = (spec.u, spec.r);
        // The file's name is read only once the presence checks pass.
        match spec.kind {
            Kind::Get => {
                if !(self.has_in(u, k, r) && self.has_in(r, k, r) && !self.has_in(u, k, u)) {
                    return false;
                }
                let file = file.name();
                if !self.preferred(u, u, k, file, false, md) {
                    return false;
                }
                self.state
                    .history
                    .push(Command::Present(spec.name.clone(), file.to_owned()));
                self.set_present(true, u, &spec.name, k, u);
                true
            }
            Kind::Send => {
                if self.has_in(u, k, r) || self.has_in(r, k, r) || !self.has_in(u, k, u) {
                    return false;
                }
                let file = file.name();
                if !self.preferred(u, r, k, file, false, md) {
                    return false;
                }
                self.state
                    .history
                    .push(Command::Present(spec.rname.clone(), file.to_owned()));
                self.set_present(true, r, &spec.rname, k, u);
                self.set_present(true, r, &spec.rname, k, r);
                true
            }
            Kind::Drop => {
                if !self.has_in(u, k, r) {
                    return false;
                }
                let file = file.name();
                if !self.want_drop(u, r, k, file, md) || !self.safe_drop(u, r, k) {
                    return false;
                }
                self.state
                    .history
                    .push(Command::NotPresent(spec.rname.clone(), file.to_owned()));
                self.set_present(false, r, &spec.rname, k, r);
                self.set_present(false, r, &spec.rname, k, u);
                true
            }
        }
    }

    fn spec_for(&self, kind: Kind, repo: &str, remote: Option<&str>) -> Result<Spec, CommandError> {
        match (kind, remote) {
            (Kind::Drop, None) => {
                let u = self.state.known_not_special(repo)?;
                Ok(Spec {
                    kind,
                    u,
                    name: repo.to_owned(),
                    r: u,
                    rname: repo.to_owned(),
                })
            }
            (_, remote) => {
                let remote = remote.unwrap_or_default();
                let u = if kind == Kind::Drop {
                    self.state.known_repo(repo)?
                } else {
                    self.state.known_not_special(repo)?
                };
                let r = self.state.known_remote(remote, repo, u)?;
                Ok(Spec {
                    kind,
                    u,
                    name: repo.to_owned(),
                    r,
                    rname: remote.to_owned(),
                })
            }
        }
    }

    fn merge_indices(&self, src: &str, dest: &str) -> Result<(u32, u32), CommandError> {
        match (self.state.repos.get(src), self.state.repos.get(dest)) {
            (Some(&s), Some(&d)) => Ok((s, d)),
            _ => fail(format!("Unable to find {src} or {dest} in simRepos")),
        }
    }

    /// Checks an action and, when it can run, applies its merges at once
    /// and returns the per-file actions it stands for, in order, as
    /// git-annex's getSimActionComponents does.
    fn action_parts(&mut self, a: &Action) -> Result<Vec<Part>, CommandError> {
        self.check_action(a)?;
        Ok(self.apply_action(a))
    }

    fn check_action(&self, a: &Action) -> Result<(), CommandError> {
        match a {
            Action::GetWanted(r, m) => self.spec_for(Kind::Get, r, Some(m)).map(|_| ()),
            Action::SendWanted(r, m) => self.spec_for(Kind::Send, r, Some(m)).map(|_| ()),
            Action::DropUnwanted(r, m) => self.spec_for(Kind::Drop, r, m.as_deref()).map(|_| ()),
            Action::GitPush(r, m) | Action::GitPull(r, m) => {
                let u = self.state.known_not_special(r)?;
                self.state.known_remote(m, r, u)?;
                self.merge_indices(r, m).map(|_| ())
            }
            Action::Pull(r, m) => {
                self.check_action(&Action::GitPull(r.clone(), m.clone()))?;
                self.check_action(&Action::GetWanted(r.clone(), m.clone()))?;
                self.check_action(&Action::DropUnwanted(r.clone(), None))
            }
            Action::Push(r, m) => {
                self.check_action(&Action::SendWanted(r.clone(), m.clone()))?;
                self.check_action(&Action::DropUnwanted(r.clone(), Some(m.clone())))?;
                self.check_action(&Action::GitPush(r.clone(), m.clone()))
            }
            Action::Sync(r, m) => {
                self.check_action(&Action::GitPull(r.clone(), m.clone()))?;
                self.check_action(&Action::GetWanted(r.clone(), m.clone()))?;
                self.check_action(&Action::SendWanted(r.clone(), m.clone()))?;
                self.check_action(&Action::DropUnwanted(r.clone(), Some(m.clone())))?;
                self.check_action(&Action::GitPush(r.clone(), m.clone()))
            }
            Action::While(a, b) => {
                self.check_action(a)?;
                self.check_action(b)
            }
        }
    }

    fn apply_action(&mut self, a: &Action) -> Vec<Part> {
        let spec = |s: &Sim, kind, r: &str, m: Option<&str>| s.spec_for(kind, r, m).ok();
        let over_files = |s: &Sim, sp: Option<Spec>| -> Vec<Part> {
            match sp {
                Some(sp) => {
                    let sp = std::rc::Rc::new(sp);
                    (0..s.state.files.len() as u32)
                        .map(|i| Part(sp.clone(), i))
                        .collect()
                }
                None => Vec::new(),
            }
        };
        match a {
            Action::GetWanted(r, m) => over_files(self, spec(self, Kind::Get, r, Some(m))),
            Action::SendWanted(r, m) => over_files(self, spec(self, Kind::Send, r, Some(m))),
            Action::DropUnwanted(r, m) => over_files(self, spec(self, Kind::Drop, r, m.as_deref())),
            Action::GitPush(r, m) => {
                if let Ok((s, d)) = self.merge_indices(r, m) {
                    self.merge(s, d);
                }
                Vec::new()
            }
            Action::GitPull(r, m) => {
                if let Ok((d, s)) = self.merge_indices(r, m) {
                    self.merge(s, d);
                }
                Vec::new()
            }
            Action::Pull(r, m) => [
                Action::GitPull(r.clone(), m.clone()),
                Action::GetWanted(r.clone(), m.clone()),
                Action::DropUnwanted(r.clone(), None),
            ]
            .iter()
            .flat_map(|a| self.apply_action(a))
            .collect(),
            Action::Push(r, m) => [
                Action::SendWanted(r.clone(), m.clone()),
                Action::DropUnwanted(r.clone(), Some(m.clone())),
                Action::GitPush(r.clone(), m.clone()),
            ]
            .iter()
            .flat_map(|a| self.apply_action(a))
            .collect(),
            Action::Sync(r, m) => sync_parts(r, m)
                .iter()
                .flat_map(|a| self.apply_action(a))
                .collect(),
            Action::While(a, b) => {
                let xs = self.apply_action(a);
                let ys = self.apply_action(b);
                self.mingle(xs, ys)
            }
        }
    }

    /// Interleaves two lists of per-file actions with coin flips.
    fn mingle(&mut self, xs: Vec<Part>, ys: Vec<Part>) -> Vec<Part> {
        if xs.is_empty() {
            return ys;
        }
        if ys.is_empty() {
            return xs;
        }
        let mut out = Vec::with_capacity(xs.len() + ys.len());
        let mut xs = xs.into_iter().peekable();
        let mut ys = ys.into_iter().peekable();
        while xs.peek().is_some() && ys.peek().is_some() {
            let coin = self.state.random(|r| r.coin());
            if coin {
                out.extend(xs.next());
            } else {
                out.extend(ys.next());
            }
        }
        out.extend(xs);
        out.extend(ys);
        out
    }

    /// `action ...`: runs every per-file action it stands for, in order.
    pub(crate) fn run_action(&mut self, a: &Action) -> Result<(), CommandError> {
        let parts = self.action_parts(a)?;
        self.derived.set_masks(&self.state);
        self.derived.ensure_pres(&self.state);
        let files: Vec<(String, u32)> = self
            .state
            .files
            .iter()
            .map(|(f, k)| (f.clone(), *k))
            .collect();
        let md = self.metadata_map();
        for Part(spec, i) in parts {
            let (f, k) = &files[i as usize];
            self.run_component(&spec, &Lazy(f), *k, &md);
        }
        Ok(())
    }

    /// The actions of every repository on each of its remotes, as a step
    /// looks for something to do: `sync` when `sync`, else getwanted,
    /// sendwanted and dropunwantedfrom. Merges of `sync` are applied at
    /// once. Actions that cannot run (a remote that is not in the
    /// simulation) are left out.
    fn step_specs(&mut self, sync: bool) -> Vec<Spec> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, &u) in self.state.repos.iter().rev() {
            for remote in &self.state.connections[u as usize] {
                pairs.push((name.clone(), remote.clone()));
            }
        }
        let mut specs = Vec::new();
        for (repo, remote) in pairs {
            let actions: Vec<Action> = if sync {
                vec![Action::Sync(repo.clone(), remote.clone())]
            } else {
                vec![
                    Action::GetWanted(repo.clone(), remote.clone()),
                    Action::SendWanted(repo.clone(), remote.clone()),
                    Action::DropUnwanted(repo.clone(), Some(remote.clone())),
                ]
            };
            for a in actions {
                if self.check_action(&a).is_err() {
                    continue;
                }
                let parts = match &a {
                    Action::Sync(r, m) => sync_parts(r, m),
                    other => vec![other.clone()],
                };
                for p in parts {
                    match &p {
                        Action::GitPull(r, m) => {
                            if let Ok((d, s)) = self.merge_indices(r, m) {
                                self.merge(s, d);
                            }
                        }
                        Action::GitPush(r, m) => {
                            if let Ok((s, d)) = self.merge_indices(r, m) {
                                self.merge(s, d);
                            }
                        }
                        Action::GetWanted(r, m) => {
                            specs.extend(self.spec_for(Kind::Get, r, Some(m)).ok())
                        }
                        Action::SendWanted(r, m) => {
                            specs.extend(self.spec_for(Kind::Send, r, Some(m)).ok())
                        }
                        Action::DropUnwanted(r, m) => {
                            specs.extend(self.spec_for(Kind::Drop, r, m.as_deref()).ok())
                        }
                        _ => {}
                    }
                }
            }
        }
        specs
    }

    /// `step N` and `stepstable N` (git-annex's handleStep): each step
    /// runs one action on one file that does something, chosen at random
    /// among those not yet tried; when none is left, the repositories
    /// sync with their remotes and look again; when that finds nothing
    /// either, the simulation has stabilised.
    pub(crate) fn handle_step(&mut self, must: bool, start: i64, host: &mut dyn Host) {
        let files: Vec<(String, u32)> = self
            .state
            .files
            .iter()
            .map(|(f, k)| (f.clone(), *k))
            .collect();
        let keys: Vec<u32> = files.iter().map(|(_, k)| *k).collect();
        self.derived.step_keys = keys.clone();
        let md = self.metadata_map();
        self.derived.set_masks(&self.state);
        self.derived.ensure_pres(&self.state);
        let mut n = start;
        loop {
            if n < 0 {
                return self.unstable(must, start, host);
            }
            let specs = self.step_specs(false);
            let mut round = self.new_round(specs, files.len());
            if self.run_one(&mut round, &files, &keys, &md, false) && round.remaining() > 0 {
                n -= 1;
            } else {
                let specs = self.step_specs(true);
                round = self.new_round(specs, files.len());
                if !(self.run_one(&mut round, &files, &keys, &md, false) && round.remaining() > 0) {
                    host.note(&format!(
                        "Simulation has stabilized after {} steps.",
                        start - n
                    ));
                    return;
                }
                n -= 1;
            }
            // runrest: go on with the actions left until none is.
            loop {
                if n < 0 {
                    return self.unstable(must, start, host);
                }
                let did = self.run_one(&mut round, &files, &keys, &md, true);
                if !did || round.remaining() == 0 {
                    break;
                }
                n -= 1;
            }
        }
    }

    fn unstable(&mut self, must: bool, start: i64, host: &mut dyn Host) {
        if must {
            let message = format!("Simulation failed to stabilize after {start} steps.");
            host.note(&message);
            self.state.failures.push(crate::state::Failure {
                line: self.line,
                message,
            });
        }
    }

    fn new_round(&mut self, specs: Vec<Spec>, nfiles: usize) -> Round {
        let total = specs.len() as u64 * nfiles as u64;
        let seed = self.state.random(|r| r.next_u64());
        Round {
            specs,
            nfiles: nfiles as u64,
            perm: Permutation::new(total, seed),
            ahead: std::collections::VecDeque::with_capacity(LOOKAHEAD),
        }
    }

    /// Tries the round's actions in its random order until one does
    /// something. In `last_discarded` mode (git-annex's runrest), an
    /// action that would be the round's last is not run: git-annex
    /// throws away what the last one of a round does there.
    fn run_one(
        &mut self,
        round: &mut Round,
        files: &[(String, u32)],
        keys: &[u32],
        md: &HashMap<Key, MetaData>,
        last_discarded: bool,
    ) -> bool {
        while let Some(i) = round.next_index(self) {
            if last_discarded && round.remaining() == 0 {
                return false;
            }
            let spec = &round.specs[(i / round.nfiles) as usize];
            let fi = (i % round.nfiles) as usize;
            if self.run_component(spec, &Lazy(&files[fi].0), keys[fi], md) {
                return true;
            }
        }
        false
    }
}

fn sync_parts(r: &str, m: &str) -> Vec<Action> {
    vec![
        Action::GitPull(r.to_owned(), m.to_owned()),
        Action::GetWanted(r.to_owned(), m.to_owned()),
        Action::SendWanted(r.to_owned(), m.to_owned()),
        Action::DropUnwanted(r.to_owned(), Some(m.to_owned())),
        Action::GitPush(r.to_owned(), m.to_owned()),
    ]
}

/// A file's name, looked at only when needed.
struct Lazy<'a>(&'a String);

impl Lazy<'_> {
    fn name(&self) -> &str {
        self.0.as_str()
    }
}

/// One per-file action of an `action` command.
struct Part(std::rc::Rc<Spec>, u32);

/// The actions of one round of a step, in a random order.
struct Round {
    specs: Vec<Spec>,
    nfiles: u64,
    perm: Permutation,
    /// The next actions in the order, drawn early so that what they will
    /// read is fetched into the cache while the ones before run.
    ahead: std::collections::VecDeque<(u64, u32)>,
}

/// How many actions are drawn ahead.
const LOOKAHEAD: usize = 32;

impl Round {
    /// The next action in the round's order. Actions are drawn
    /// [`LOOKAHEAD`] ahead: when drawn, the file's key is fetched into the
    /// cache; half way, the presence bits of that key.
    fn next_index(&mut self, sim: &Sim) -> Option<u64> {
        while self.ahead.len() < LOOKAHEAD {
            let Some(i) = self.perm.next_index() else {
                break;
            };
            let fi = (i % self.nfiles) as u32;
            sim.derived.prefetch_key(fi);
            self.ahead.push_back((i, fi));
        }
        if let Some(&(i, fi)) = self.ahead.get(LOOKAHEAD / 2) {
            let spec = &self.specs[(i / self.nfiles) as usize];
            sim.derived.prefetch(spec.u, spec.r, fi);
        }
        self.ahead.pop_front().map(|(i, _)| i)
    }

    /// How many actions have not been drawn.
    fn remaining(&self) -> u64 {
        self.perm.remaining() + self.ahead.len() as u64
    }
}
