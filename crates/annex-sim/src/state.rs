//! The simulation's state and the commands that change it (git-annex's
//! Annex/Sim.hs): repositories, each with its own view of where content
//! is, their connections, the configuration they share, the files, and
//! the history that `show` writes back as a sim file. [`SimState`] is
//! what is saved; [`Sim`] is that state with the indexes worked out from
//! it (crate::derived), and the only way to change it.

use std::collections::{BTreeMap, BTreeSet};

use annex_branch::logs::metadata::{CurrentField, ModMeta};
use annex_branch::logs::trust::TrustLevel;
use annex_preferred::check_expression;
use annex_types::{Key, Uuid};
use serde::{Deserialize, Serialize};
use sha1::Digest as _;

use crate::derived::Derived;
use crate::file::{format_command, Command};
use crate::rng::Rng;

/// What went wrong running a command: git-annex's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

pub(crate) fn fail<T>(msg: impl Into<String>) -> Result<T, CommandError> {
    Err(CommandError(msg.into()))
}

/// An existing repository's configuration, for `use`.
#[derive(Debug, Clone, Default)]
pub struct RepoConfig {
    /// Its UUID.
    pub uuid: String,
    /// Whether it is a special remote.
    pub special: bool,
    /// Its groups.
    pub groups: BTreeSet<String>,
    /// Its trust level (`trusted`, `semitrusted`, `untrusted`, `dead`).
    pub trust: String,
    /// Its preferred content.
    pub wanted: Option<String>,
    /// Its required content.
    pub required: Option<String>,
    /// The groupwanted expressions of its groups.
    pub group_wanted: BTreeMap<String, String>,
    /// Its maxsize.
    pub maxsize: Option<i128>,
}

/// What the simulation asks of the world outside it: the repository it
/// runs in (for `use` and `addtree`), a shell (for `visit`), and where its
/// notes go.
pub trait Host {
    /// The configuration of an existing repository named as `git annex`
    /// commands name them (here, a remote, a UUID, a description); the
    /// error says why there is none.
    fn existing_repo(&mut self, name: &str) -> Result<RepoConfig, String> {
        Err(format!("there is no repository named \"{name}\""))
    }

    /// The annexed files (path from the top of the work tree, key) that
    /// `expression`, compiled for the repository `uuid` with the real
    /// repository's configuration, matches.
    fn tree_files(&mut self, uuid: &str, expression: &str) -> Result<Vec<(String, Key)>, String> {
        let _ = (uuid, expression);
        Err("there is no work tree to add files from".into())
    }

    /// Runs `command` (or a shell) in the materialised repository of
    /// `repo`; returns its exit code.
    fn visit(&mut self, sim: &Sim, repo: &str, command: &[String]) -> Result<i32, String> {
        let _ = (sim, repo, command);
        Err("Simulated repository unavailable.".into())
    }

    /// A note for the user (`Simulation has stabilized after 3 steps.`).
    fn note(&mut self, text: &str) {
        let _ = text;
    }
}

/// A host with no repository and no shell, whose notes are kept.
#[derive(Debug, Default)]
pub struct NoHost {
    /// The notes, in order.
    pub notes: Vec<String>,
}

impl Host for NoHost {
    fn note(&mut self, text: &str) {
        self.notes.push(text.to_owned());
    }
}

/// One repository's record of a key in one location log: which
/// repository, the command (clock) that wrote it, present or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loc(pub u32, pub u64, pub bool);

/// What one repository knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoState {
    /// The name it was given.
    pub name: String,
    /// Whether it is a special remote.
    pub special: bool,
    /// For each key (by index), the location log as this repository has
    /// it.
    pub locs: Vec<Vec<Loc>>,
    /// The size of each repository (by index) as this repository's
    /// location logs add up.
    pub sizes: Vec<i128>,
    /// Whether `sizes` may differ from what the logs add up to: git-annex
    /// counts a change to a key's size even when the log keeps an entry
    /// as new as the change, and works sizes out anew at the next merge.
    #[serde(default)]
    pub(crate) drifted: bool,
}

impl RepoState {
    fn new(name: &str, special: bool) -> RepoState {
        RepoState {
            name: name.to_owned(),
            special,
            locs: Vec::new(),
            sizes: Vec::new(),
            drifted: false,
        }
    }

    /// Whether this repository's location log says `r` has key `k`.
    pub fn has(&self, k: u32, r: u32) -> bool {
        self.locs
            .get(k as usize)
            .is_some_and(|l| l.iter().any(|x| x.0 == r && x.2))
    }

    /// Which of the first 64 repositories the log of key `k` says are
    /// present, as bits.
    pub(crate) fn bits_of(&self, k: u32) -> u64 {
        self.locs.get(k as usize).map_or(0, |l| loc_bits(l))
    }

    /// The repositories this repository's location log says have key `k`.
    pub fn present(&self, k: u32) -> impl Iterator<Item = u32> + '_ {
        self.locs
            .get(k as usize)
            .into_iter()
            .flatten()
            .filter(|x| x.2)
            .map(|x| x.0)
    }

    fn add_size(&mut self, r: u32, delta: i128) {
        let r = r as usize;
        if self.sizes.len() <= r {
            self.sizes.resize(r + 1, 0);
        }
        self.sizes[r] += delta;
    }
}

/// The repositories (of the first 64) a key's log says are present.
pub(crate) fn loc_bits(l: &[Loc]) -> u64 {
    l.iter()
        .filter(|x| x.2 && x.0 < 64)
        .fold(0, |b, x| b | 1 << x.0)
}

/// A failed expectation: a `present` or `notpresent` that did not hold,
/// or a `stepstable` that did not stabilise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The line of the sim file, when the command came from one.
    pub line: Option<usize>,
    /// git-annex's message.
    pub message: String,
}

/// What a simulation is, and all that is saved of it between commands
/// (as JSON, in this order of fields: the form `annex sim` has always
/// kept). The indexes the simulator works out from it to decide quickly
/// are kept beside it in [`Sim`], never in it.
#[derive(Serialize, Deserialize)]
pub struct SimState {
    /// Repository names and their indices.
    pub(crate) repos: BTreeMap<String, u32>,
    /// Each repository's UUID, by index.
    pub(crate) uuids: Vec<String>,
    /// What each repository knows, by index.
    pub(crate) states: Vec<RepoState>,
    /// Each repository's remotes, by name.
    pub(crate) connections: Vec<BTreeSet<String>>,
    /// Cluster node names and the repositories they are.
    pub(crate) cluster_nodes: BTreeMap<String, u32>,
    /// The files and their keys (by index).
    pub(crate) files: BTreeMap<String, u32>,
    /// The keys.
    pub(crate) keys: Vec<String>,
    pub(crate) rng: i64,
    pub(crate) trust: BTreeMap<u32, String>,
    pub(crate) numcopies: i64,
    pub(crate) mincopies: i64,
    pub(crate) groups: BTreeMap<u32, BTreeSet<String>>,
    pub(crate) metadata: BTreeMap<u32, BTreeMap<String, BTreeSet<String>>>,
    pub(crate) wanted: BTreeMap<u32, String>,
    pub(crate) required: BTreeMap<u32, String>,
    pub(crate) group_wanted: BTreeMap<String, String>,
    pub(crate) maxsize: BTreeMap<u32, i128>,
    pub(crate) rebalance: bool,
    pub(crate) history: Vec<Command>,
    pub(crate) clock: u64,
    /// The failed expectations so far.
    pub failures: Vec<Failure>,
}

/// A simulation: its [`SimState`] and the indexes worked out from that
/// state to decide quickly. A `Sim` reads as its state (`sim.failures`,
/// `sim.known_repo(..)`); the state changes only through `Sim`'s
/// methods, which keep the indexes a function of it (the rule of each
/// index is on `Derived`, in derived.rs).
pub struct Sim {
    /// What is saved.
    pub(crate) state: SimState,
    /// What is worked out from `state`, never saved.
    pub(crate) derived: Derived,
    /// The line of the sim file now running, for failures.
    pub(crate) line: Option<usize>,
}

impl std::ops::Deref for Sim {
    type Target = SimState;

    fn deref(&self) -> &SimState {
        &self.state
    }
}

/// Why a saved simulation could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state file is not a simulation's.
    #[error("unable to parse sim state file: {0}")]
    Parse(#[from] serde_json::Error),
    /// A key or UUID in it is not valid.
    #[error("unable to parse sim state file: {0}")]
    Invalid(String),
}

fn simulated_uuid(name: &str, random: &[u8]) -> String {
    // A name-based (version 5) UUID in a namespace of this simulator's,
    // from the repository's name and random bytes, as git-annex makes
    // the UUIDs of simulated repositories.
    const NAMESPACE: [u8; 16] = [
        0x6b, 0x2d, 0x4f, 0x31, 0x9a, 0x52, 0x5e, 0x0c, 0x8d, 0x17, 0x3e, 0x44, 0xa1, 0x90, 0x5c,
        0x2e,
    ];
    let mut h = sha1::Sha1::new();
    h.update(NAMESPACE);
    h.update(name.as_bytes());
    h.update(random);
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub(crate) fn trust_level(s: &str) -> TrustLevel {
    match s {
        "trusted" => TrustLevel::Trusted,
        "untrusted" => TrustLevel::Untrusted,
        "dead" => TrustLevel::Dead,
        _ => TrustLevel::Semitrusted,
    }
}

impl SimState {
    fn new(seed: i64) -> SimState {
        SimState {
            repos: BTreeMap::new(),
            uuids: Vec::new(),
            states: Vec::new(),
            connections: Vec::new(),
            cluster_nodes: BTreeMap::new(),
            files: BTreeMap::new(),
            keys: Vec::new(),
            rng: seed,
            trust: BTreeMap::new(),
            numcopies: 1,
            mincopies: 1,
            groups: BTreeMap::new(),
            metadata: BTreeMap::new(),
            wanted: BTreeMap::new(),
            required: BTreeMap::new(),
            group_wanted: BTreeMap::new(),
            maxsize: BTreeMap::new(),
            rebalance: false,
            history: Vec::new(),
            clock: 0,
            failures: Vec::new(),
        }
    }

    /// Whether an expectation failed.
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// The current seed.
    pub fn seed(&self) -> i64 {
        self.rng
    }

    /// The history as a sim file, as `git annex sim show` writes it.
    pub fn show(&self) -> String {
        let mut out = String::new();
        for c in &self.history {
            out.push_str(&format_command(c));
            out.push('\n');
        }
        out
    }

    /// Repository names, sorted.
    pub fn repo_names(&self) -> impl Iterator<Item = (&str, u32)> {
        self.repos.iter().map(|(n, i)| (n.as_str(), *i))
    }

    /// A repository's UUID by index.
    pub fn uuid(&self, r: u32) -> &str {
        &self.uuids[r as usize]
    }

    /// What a repository knows, by index.
    pub fn state(&self, r: u32) -> &RepoState {
        &self.states[r as usize]
    }

    /// The files and the indices of their keys.
    pub fn files(&self) -> impl Iterator<Item = (&str, u32)> {
        self.files.iter().map(|(f, k)| (f.as_str(), *k))
    }

    /// The numcopies setting.
    pub fn numcopies(&self) -> i64 {
        self.numcopies
    }

    /// The mincopies setting.
    pub fn mincopies(&self) -> i64 {
        self.mincopies
    }

    /// A repository's trust level.
    pub fn trust_of(&self, r: u32) -> &str {
        self.trust.get(&r).map_or("semitrusted", String::as_str)
    }

    /// A repository's groups.
    pub fn groups_of(&self, r: u32) -> Option<&BTreeSet<String>> {
        self.groups.get(&r)
    }

    /// A repository's preferred content.
    pub fn wanted_of(&self, r: u32) -> Option<&str> {
        self.wanted.get(&r).map(String::as_str)
    }

    /// A repository's required content.
    pub fn required_of(&self, r: u32) -> Option<&str> {
        self.required.get(&r).map(String::as_str)
    }

    /// The groupwanted expressions.
    pub fn group_wanted(&self) -> &BTreeMap<String, String> {
        &self.group_wanted
    }

    /// A repository's maxsize.
    pub fn maxsize_of(&self, r: u32) -> Option<i128> {
        self.maxsize.get(&r).copied()
    }

    /// A key's metadata.
    pub fn metadata_of(&self, k: u32) -> Option<&BTreeMap<String, BTreeSet<String>>> {
        self.metadata.get(&k)
    }

    /// The random generator for one use; the seed moves on after it.
    pub(crate) fn random<T>(&mut self, f: impl FnOnce(&mut Rng) -> T) -> T {
        let mut r = Rng::new(self.rng);
        let v = f(&mut r);
        self.rng = r.next_u64() as i64;
        v
    }

    fn check_nonexistent(&self, name: &str) -> Result<(), CommandError> {
        if self.repos.contains_key(name) {
            return fail(format!(
                "There is already a repository in the simulation named \"{name}\"."
            ));
        }
        if self.cluster_nodes.contains_key(name) {
            return fail(format!(
                "There is already a cluster node in the simulation named \"{name}\"."
            ));
        }
        Ok(())
    }

    /// The repository a name (or cluster node name) stands for, with
    /// git-annex's message when there is none.
    pub fn known_repo(&self, name: &str) -> Result<u32, CommandError> {
        if let Some(&r) = self
            .repos
            .get(name)
            .or_else(|| self.cluster_nodes.get(name))
        {
            return Ok(r);
        }
        let names: Vec<&str> = self.repos.keys().map(String::as_str).collect();
        fail(format!(
            "No repository in the simulation is named \"{name}\". Choose from: {}",
            names.join(" ")
        ))
    }

    pub(crate) fn known_not_special(&self, name: &str) -> Result<u32, CommandError> {
        let r = self.known_repo(name)?;
        if self.states[r as usize].special {
            return fail(format!(
                "{name} is a special remote, so git-annex cannot run on it."
            ));
        }
        Ok(r)
    }

    pub(crate) fn known_remote(
        &self,
        remote: &str,
        repo: &str,
        u: u32,
    ) -> Result<u32, CommandError> {
        if self.connections[u as usize].contains(remote) {
            self.known_repo(remote)
        } else {
            fail(format!(
                "Repository {repo} does not have a remote \"{remote}\"."
            ))
        }
    }
}

impl Sim {
    /// A new, empty simulation with a random seed.
    pub fn new(seed: i64) -> Sim {
        Sim {
            state: SimState::new(seed),
            derived: Derived::default(),
            line: None,
        }
    }

    /// Serialises the simulation's state (to keep it between commands).
    pub fn save(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&self.state)
    }

    /// Reads a simulation [`Sim::save`] wrote; its indexes are worked out
    /// again.
    pub fn load(data: &[u8]) -> Result<Sim, StateError> {
        let state: SimState = serde_json::from_slice(data)?;
        let derived = Derived::new(&state)?;
        Ok(Sim {
            state,
            derived,
            line: None,
        })
    }

    /// Adds `seed N` to the history unless the commands about to run
    /// start with a seed (git-annex's recordSeed).
    pub fn record_seed(&mut self, first: Option<&Command>) {
        if !matches!(first, Some(Command::Seed(_))) {
            self.state.history.push(Command::Seed(self.state.rng));
        }
    }

    /// A key by index.
    pub fn key(&self, k: u32) -> &Key {
        &self.derived.key_objs[k as usize]
    }

    fn index_of_uuid(&mut self, uuid: &str) -> Result<u32, CommandError> {
        if let Some(i) = self.state.uuids.iter().position(|u| u == uuid) {
            return Ok(i as u32);
        }
        let parsed = Uuid::parse(uuid).map_err(|e| CommandError(e.to_string()))?;
        self.state.uuids.push(uuid.to_owned());
        self.derived.uuid_objs.push(parsed);
        self.state.states.push(RepoState::new("", false));
        self.state.connections.push(BTreeSet::new());
        Ok((self.state.uuids.len() - 1) as u32)
    }

    fn add_repo(&mut self, name: &str, cfg: RepoConfig) -> Result<(), CommandError> {
        let u = self.index_of_uuid(&cfg.uuid)?;
        self.state.repos.insert(name.to_owned(), u);
        self.state.states[u as usize] = RepoState::new(name, cfg.special);
        self.state.connections[u as usize] = BTreeSet::new();
        self.state.groups.insert(u, cfg.groups);
        self.state.trust.insert(u, cfg.trust);
        match cfg.wanted {
            Some(e) => self.state.wanted.insert(u, e),
            None => self.state.wanted.remove(&u),
        };
        match cfg.required {
            Some(e) => self.state.required.insert(u, e),
            None => self.state.required.remove(&u),
        };
        for (g, e) in cfg.group_wanted {
            self.state.group_wanted.insert(g, e);
        }
        match cfg.maxsize {
            Some(m) => self.state.maxsize.insert(u, m),
            None => self.state.maxsize.remove(&u),
        };
        self.derived.config_changed();
        Ok(())
    }

    fn new_repo(&mut self, name: &str, special: bool) -> Result<(), CommandError> {
        self.state.check_nonexistent(name)?;
        let random = self.state.random(|r| r.bytes(32));
        let uuid = simulated_uuid(name, &random);
        self.add_repo(
            name,
            RepoConfig {
                uuid,
                special,
                trust: "semitrusted".into(),
                ..RepoConfig::default()
            },
        )
    }

    pub(crate) fn key_index(&mut self, key: Key) -> u32 {
        if let Some(i) = self.derived.key_objs.iter().rposition(|k| *k == key) {
            return i as u32;
        }
        self.add_key(key)
    }

    /// Adds a key to the state and its parsed form to the indexes.
    fn add_key(&mut self, key: Key) -> u32 {
        self.state.keys.push(key.as_str().to_owned());
        self.derived.key_objs.push(key);
        (self.state.keys.len() - 1) as u32
    }

    fn new_key(&mut self, size: i128) -> u32 {
        let random = self.state.random(|r| r.bytes(32));
        let hash = sha2::Sha256::digest(&random);
        let hex: String = hash.iter().map(|x| format!("{x:02x}")).collect();
        let text = format!("SHA256E-s{}--{hex}.this-is-a-test-key", size.max(0));
        let key = Key::parse(&text).unwrap_or_else(|_| {
            // A size no key can hold: keep the key without one.
            Key::parse(&format!("SHA256E--{hex}.this-is-a-test-key"))
                .unwrap_or_else(|_| self.derived.key_objs[0].clone())
        });
        self.add_key(key)
    }

    /// Records that repository `r` has (or no longer has) key `k` in the
    /// location log of `viewer` (git-annex's setPresentKey'), keeping the
    /// newer record when one exists; the sizes follow what `viewer` had.
    pub(crate) fn set_present_in(&mut self, present: bool, r: u32, k: u32, viewer: u32) {
        let clock = self.state.clock;
        let st = &mut self.state.states[viewer as usize];
        let old = st.has(k, r);
        if old != present {
            let size = i128::from(self.derived.key_objs[k as usize].size().unwrap_or(0));
            let delta = if present { size } else { -size };
            st.add_size(r, delta);
            // The sizes decisions see follow (unless they are to be
            // worked out again anyway).
            if let Some((live, false)) = self.derived.live.get(viewer as usize) {
                live.add_to_base(&self.derived.uuid_objs[r as usize], delta);
            }
        }
        let st = &mut self.state.states[viewer as usize];
        let k = k as usize;
        if st.locs.len() <= k {
            st.locs.resize(k + 1, Vec::new());
        }
        let l = &mut st.locs[k];
        match l.iter_mut().find(|x| x.0 == r) {
            Some(x) => {
                if clock > x.1 {
                    *x = Loc(r, clock, present);
                } else if old != present {
                    st.drifted = true;
                }
            }
            None => l.push(Loc(r, clock, present)),
        }
        let bits = loc_bits(l);
        self.derived.write_pres(viewer, k, bits);
    }

    /// git-annex's setPresentKey: also, when `name` is a cluster node
    /// standing for `r`, every other repository with a connection to
    /// that node learns of the change at once.
    pub(crate) fn set_present(&mut self, present: bool, r: u32, name: &str, k: u32, viewer: u32) {
        self.set_present_in(present, r, k, viewer);
        if self.state.cluster_nodes.get(name) == Some(&r) {
            let others: Vec<u32> = (0..self.state.connections.len() as u32)
                .filter(|&c| c != viewer && self.state.connections[c as usize].contains(name))
                .collect();
            for c in others {
                self.set_present_in(present, r, k, c);
            }
        }
    }

    /// Which of the first 64 repositories `viewer`'s log of key `k` says
    /// are present.
    #[inline]
    pub(crate) fn bits(&self, viewer: u32, k: u32) -> u64 {
        self.derived.bits(&self.state, viewer, k)
    }

    /// Whether `viewer`'s log says `r` has key `k`.
    #[inline]
    pub(crate) fn has_in(&self, viewer: u32, k: u32, r: u32) -> bool {
        self.derived.has_in(&self.state, viewer, k, r)
    }

    /// `dest` learns what `src` knows (a git-annex branch merge): for
    /// each key and repository the newer record wins, `src`'s when they
    /// are as new.
    pub(crate) fn merge(&mut self, src: u32, dest: u32) {
        if src == dest {
            return;
        }
        let (s, d) = if src < dest {
            let (a, b) = self.state.states.split_at_mut(dest as usize);
            (&a[src as usize], &mut b[0])
        } else {
            let (a, b) = self.state.states.split_at_mut(src as usize);
            (&b[0], &mut a[dest as usize])
        };
        if d.locs.len() < s.locs.len() {
            d.locs.resize(s.locs.len(), Vec::new());
        }
        let incremental = !d.drifted;
        if d.sizes.len() < self.state.uuids.len() {
            d.sizes.resize(self.state.uuids.len(), 0);
        }
        for (k, sl) in s.locs.iter().enumerate() {
            if sl.is_empty() {
                continue;
            }
            let size = i128::from(self.derived.key_objs[k].size().unwrap_or(0));
            let dl = &mut d.locs[k];
            for x in sl {
                let was = match dl.iter_mut().find(|y| y.0 == x.0) {
                    Some(y) => {
                        let was = y.2;
                        if y.1 <= x.1 {
                            *y = *x;
                        }
                        was
                    }
                    None => {
                        dl.push(*x);
                        false
                    }
                };
                let now = dl.iter().any(|y| y.0 == x.0 && y.2);
                if incremental && was != now {
                    d.sizes[x.0 as usize] += if now { size } else { -size };
                }
            }
            let bits = loc_bits(dl);
            self.derived.write_pres(dest, k, bits);
        }
        if !incremental {
            // Worked out anew, as git-annex does after every merge.
            let mut sizes = vec![0i128; self.state.uuids.len()];
            for (k, l) in d.locs.iter().enumerate() {
                let size = i128::from(self.derived.key_objs[k].size().unwrap_or(0));
                for x in l.iter().filter(|x| x.2) {
                    sizes[x.0 as usize] += size;
                }
            }
            d.sizes = sizes;
            d.drifted = false;
        }
        self.derived.sizes_changed(dest);
    }

    /// Runs one command. `present`/`notpresent` that do not hold and a
    /// `stepstable` that does not stabilise are recorded as failures;
    /// anything else that cannot be done is the error, and then the
    /// simulation may have been changed in part (callers keep a copy, or
    /// throw the simulation away, as `annex sim` does).
    pub fn apply(&mut self, cmd: &Command, host: &mut dyn Host) -> Result<(), CommandError> {
        self.derived.masks = None;
        match cmd {
            Command::Present(repo, file) => return self.expect(true, repo, file),
            Command::NotPresent(repo, file) => return self.expect(false, repo, file),
            Command::Visit(repo, command) => {
                self.state.known_repo(repo)?;
                let code = host.visit(self, repo, command).map_err(CommandError)?;
                if command.is_empty() {
                    return Ok(());
                }
                if code != 0 {
                    return fail(format!("Command {} exited nonzero.", command.join(" ")));
                }
                self.state.history.push(cmd.clone());
                return Ok(());
            }
            _ => {}
        }
        self.state.clock += 1;
        self.state.history.push(cmd.clone());
        self.apply_inner(cmd, host)
    }

    fn expect(&mut self, want: bool, repo: &str, file: &str) -> Result<(), CommandError> {
        let u = self.state.known_repo(repo)?;
        let message = match self.state.files.get(file) {
            None => format!(
                "Expected {file} to {} be present in {repo}, but the simulation does not include that file.",
                if want { "" } else { "not" }
            )
            .replace("to  be", "to be"),
            Some(&k) => {
                let has = self.state.states[u as usize].has(k, u);
                match (want, has) {
                    (true, false) => {
                        format!("Expected {file} to be present in {repo}, but it is not.")
                    }
                    (false, true) => {
                        format!("Expected {file} not to be present in {repo}, but it is present.")
                    }
                    _ => return Ok(()),
                }
            }
        };
        self.state.failures.push(Failure {
            line: self.line,
            message,
        });
        Ok(())
    }

    fn check_expressions(exprs: &[&str]) -> Result<(), CommandError> {
        for e in exprs {
            if let Err(err) = check_expression(e) {
                return fail(format!("Failed parsing \"{e}\": {err}"));
            }
        }
        Ok(())
    }

    fn random_expression(&mut self, terms: &[String]) -> String {
        if terms.is_empty() {
            return String::new();
        }
        self.state.random(|r| {
            let n = r.range(1, terms.len() as i128);
            let mut parts: Vec<Vec<&str>> = Vec::new();
            for _ in 0..n {
                let term = &terms[r.range(0, terms.len() as i128 - 1) as usize];
                let notted = r.coin();
                let and = r.coin();
                let mut sub = Vec::new();
                if notted {
                    sub.push("not");
                }
                sub.push(term.as_str());
                if !parts.is_empty() {
                    sub.push(if and { "and" } else { "or" });
                }
                parts.insert(0, sub);
            }
            parts.concat().join(" ")
        })
    }

    fn apply_inner(&mut self, cmd: &Command, host: &mut dyn Host) -> Result<(), CommandError> {
        use Command as C;
        match cmd {
            C::Init(name) => self.new_repo(name, false)?,
            C::InitRemote(name) => self.new_repo(name, true)?,
            C::Use(name, what) => {
                let cfg = host.existing_repo(what).map_err(|msg| {
                    CommandError(format!(
                        "Unable to use a repository \"{name}\" in the simulation because {msg}"
                    ))
                })?;
                self.state.check_nonexistent(name)?;
                self.add_repo(name, cfg)?;
            }
            C::Connect(cs) => {
                for (repo, remote) in cs.links() {
                    let u = self.state.known_repo(repo)?;
                    if self.state.states[u as usize].special {
                        return fail(format!(
                            "{repo} is a special remote, and cannot connect to {remote}"
                        ));
                    }
                    self.state.connections[u as usize].insert(remote.to_owned());
                }
            }
            C::Disconnect(cs) => {
                for (repo, remote) in cs.links() {
                    let u = self.state.known_repo(repo)?;
                    self.state.connections[u as usize].remove(remote);
                }
            }
            C::AddTree(repo, expr) => {
                let u = self.state.known_repo(repo)?;
                Self::check_expressions(&[expr])?;
                let uuid = self.state.uuids[u as usize].clone();
                let found = host.tree_files(&uuid, expr).map_err(CommandError)?;
                for (file, key) in found {
                    let k = self.key_index(key);
                    self.insert_file(file, k);
                    self.set_present(true, u, repo, k, u);
                }
            }
            C::Add(file, size, repos) => {
                let k = self.new_key(*size);
                self.add_file(file, k, repos)?;
            }
            C::AddMulti(n, suffix, min, max, repos) => {
                let mut i = *n;
                while i >= 1 {
                    let (lo, hi) = (*min, *max);
                    let size = self.state.random(|r| r.range(lo, hi));
                    let k = self.new_key(size);
                    self.add_file(&format!("{i}{suffix}"), k, repos)?;
                    i -= 1;
                }
            }
            C::Step(n) => self.handle_step(false, *n, host),
            C::StepStable(n) => self.handle_step(true, *n, host),
            C::Action(a) => self.run_action(a)?,
            C::Seed(n) => self.state.rng = *n,
            C::NumCopies(n) => {
                self.state.numcopies = (*n).max(1);
                self.derived.config_changed();
            }
            C::MinCopies(n) => {
                self.state.mincopies = (*n).max(1);
                self.derived.config_changed();
            }
            C::TrustLevel(repo, level) => {
                let u = self.state.known_repo(repo)?;
                self.state.trust.insert(u, level.clone());
                self.derived.config_changed();
            }
            C::Group(repo, group) => {
                let u = self.state.known_repo(repo)?;
                self.state
                    .groups
                    .entry(u)
                    .or_default()
                    .insert(group.clone());
                self.derived.config_changed();
            }
            C::Ungroup(repo, group) => {
                let u = self.state.known_repo(repo)?;
                if let Some(g) = self.state.groups.get_mut(&u) {
                    g.remove(group);
                }
                self.derived.config_changed();
            }
            C::MetaData(file, modmeta) => {
                let m = ModMeta::parse(modmeta).map_err(|e| CommandError(e.to_string()))?;
                let Some(&k) = self.state.files.get(file) else {
                    return fail(format!("Cannot set metadata of unknown file {file}"));
                };
                let md = self.state.metadata.entry(k).or_default();
                apply_modmeta(md, &m);
                self.derived.config_changed();
            }
            C::Wanted(repo, expr) => {
                let u = self.state.known_repo(repo)?;
                Self::check_expressions(&[expr])?;
                self.state.wanted.insert(u, expr.clone());
                self.derived.config_changed();
            }
            C::Required(repo, expr) => {
                let u = self.state.known_repo(repo)?;
                Self::check_expressions(&[expr])?;
                self.state.required.insert(u, expr.clone());
                self.derived.config_changed();
            }
            C::GroupWanted(group, expr) => {
                Self::check_expressions(&[expr])?;
                self.state.group_wanted.insert(group.clone(), expr.clone());
                self.derived.config_changed();
            }
            C::RandomWanted(repo, terms) | C::RandomRequired(repo, terms) => {
                let u = self.state.known_repo(repo)?;
                Self::check_expressions(&terms.iter().map(String::as_str).collect::<Vec<_>>())?;
                let e = self.random_expression(terms);
                if matches!(cmd, C::RandomWanted(..)) {
                    self.state.wanted.insert(u, e);
                } else {
                    self.state.required.insert(u, e);
                }
                self.derived.config_changed();
            }
            C::RandomGroupWanted(group, terms) => {
                Self::check_expressions(&terms.iter().map(String::as_str).collect::<Vec<_>>())?;
                let e = self.random_expression(terms);
                self.state.group_wanted.insert(group.clone(), e);
                self.derived.config_changed();
            }
            C::MaxSize(repo, size) => {
                let u = self.state.known_repo(repo)?;
                self.state.maxsize.insert(u, *size);
                self.derived.config_changed();
            }
            C::Rebalance(b) => {
                self.state.rebalance = *b;
                self.derived.config_changed();
            }
            C::ClusterNode(node, repo) => {
                let u = self.state.known_repo(repo)?;
                self.state.check_nonexistent(node)?;
                self.state.cluster_nodes.insert(node.clone(), u);
            }
            C::Comment(_) | C::Blank => {}
            C::Present(..) | C::NotPresent(..) | C::Visit(..) => {}
        }
        Ok(())
    }

    fn add_file(&mut self, file: &str, k: u32, repos: &[String]) -> Result<(), CommandError> {
        for repo in repos {
            let u = self.state.known_repo(repo)?;
            self.insert_file(file.to_owned(), k);
            self.set_present(true, u, repo, k, u);
        }
        Ok(())
    }

    /// Adds (or moves) a file to the state.
    fn insert_file(&mut self, file: String, k: u32) {
        self.state.files.insert(file, k);
        self.derived.files_changed();
    }
}

fn apply_modmeta(md: &mut BTreeMap<String, BTreeSet<String>>, m: &ModMeta) {
    use annex_branch::logs::metadata::fold_field;
    let current: BTreeMap<String, CurrentField> = md
        .iter()
        .map(|(f, vs)| {
            (
                fold_field(f),
                CurrentField {
                    name: f.clone(),
                    values: vs.iter().map(|v| v.as_bytes().to_vec()).collect(),
                },
            )
        })
        .collect();
    let changes = m.changes(&current);
    for (_, fc) in changes.0 {
        let field = fold_field(&fc.name);
        let entry = md.entry(field.clone()).or_default();
        for (v, set) in fc.values {
            let v = String::from_utf8_lossy(&v).into_owned();
            if set {
                entry.insert(v);
            } else {
                entry.remove(&v);
            }
        }
        if entry.is_empty() {
            md.remove(&field);
        }
    }
}
