//! What the simulator works out from a simulation's state so that its
//! steps decide quickly: the keys and UUIDs parsed, every repository's
//! view of every key as presence bits, the preferred content compiled,
//! the sizes each repository sees, the files of each key, and the bit
//! masks of one action or step. None of it is saved: [`Derived::new`]
//! works it all out again from a state read back.

use std::collections::HashMap;

use annex_branch::logs::trust::TrustLevel;
use annex_preferred::{Facts, LiveSizes, Policies, Settings};
use annex_types::{Key, Uuid};

use crate::state::{loc_bits, trust_level, SimState, StateError};

/// Indexes worked out from a [`SimState`], and the rule that keeps each
/// one a function of that state alone. A change to the state is made by
/// `Sim`, which applies the rule of what the change touches:
///
/// - `key_objs`, `uuid_objs`: always complete, one entry for each entry
///   of `keys` and `uuids`, appended with it (`Sim::add_key`,
///   `Sim::index_of_uuid` are the only places either grows).
/// - `pres`: written with every change to a location log
///   (`Sim::set_present_in`, `Sim::merge`) while it covers every key and
///   repository; [`Derived::ensure_pres`] rebuilds it whole before an
///   action or step when keys or repositories were added since. Readers
///   fall back to the logs when it does not cover them.
/// - `compiled`, `live`, `key_files`: dropped by the change they follow
///   ([`Derived::config_changed`], [`Derived::sizes_changed`],
///   [`Derived::files_changed`]) and rebuilt at their next use.
/// - `step_keys`, `masks`: set at the start of an action or step, for its
///   length (the files, connections, trust and special remotes they
///   follow do not change while one runs); `masks` is dropped at the
///   start of every command.
#[derive(Default)]
pub(crate) struct Derived {
    /// Each key, parsed, by index.
    pub(crate) key_objs: Vec<Key>,
    /// Each repository's UUID, parsed, by index.
    pub(crate) uuid_objs: Vec<Uuid>,
    /// Presence bits of every key in every repository's log, at
    /// `key * pres_stride + repository`: what every action checks first,
    /// the repositories' views of one key side by side. Valid while
    /// `pres_stride` is the number of repositories and it covers every
    /// key; otherwise the logs are read.
    pub(crate) pres: Vec<u64>,
    pub(crate) pres_stride: usize,
    /// The configuration compiled; `None` until the next decision needs it.
    pub(crate) compiled: Option<Compiled>,
    /// The sizes each repository (by index) sees, and whether they are to
    /// be worked out again from its tallies before they are read.
    pub(crate) live: Vec<(LiveSizes, bool)>,
    /// Each key's files, when more than one file has it; `None` until the
    /// next drop decision needs it.
    pub(crate) key_files: Option<HashMap<u32, Vec<String>>>,
    /// While an action or step runs: the key of each file, in file order.
    pub(crate) step_keys: Vec<u32>,
    /// While an action or step runs: each repository's remotes, the
    /// trusted ones and the special remotes, as bit masks (when there are
    /// at most 64).
    pub(crate) masks: Option<Masks>,
    /// A buffer the decisions reuse for a key's locations.
    pub(crate) scratch: Vec<Uuid>,
}

/// Compiled configuration, rebuilt when the configuration changes.
pub(crate) struct Compiled {
    pub(crate) facts: Facts,
    pub(crate) settings: Settings,
    /// For each repository (by index): `None` when it has no preferred
    /// content (or an empty one), else whether its decisions read sizes.
    pub(crate) kinds: Vec<Option<bool>>,
    /// Each repository's preferred content policy, by index.
    pub(crate) by_index: Vec<Option<annex_preferred::Policy>>,
}

/// Repositories as bit masks of their indices.
#[derive(Debug, Clone)]
pub(crate) struct Masks {
    pub(crate) remotes: Vec<u64>,
    pub(crate) trusted: u64,
    pub(crate) special: u64,
}

/// A hint to the processor to fetch what `p` points to into the cache.
#[inline]
fn prefetch_ptr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint that never faults, whatever the
    // address; callers pass addresses inside their own buffers besides.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Derived {
    /// The indexes of a state read back: the keys and UUIDs parsed, the
    /// rest left to be built at first use.
    pub(crate) fn new(state: &SimState) -> Result<Derived, StateError> {
        let key_objs = state
            .keys
            .iter()
            .map(|k| Key::parse(k).map_err(|e| StateError::Invalid(e.to_string())))
            .collect::<Result<_, _>>()?;
        let uuid_objs = state
            .uuids
            .iter()
            .map(|u| Uuid::parse(u).map_err(|e| StateError::Invalid(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Derived {
            key_objs,
            uuid_objs,
            ..Derived::default()
        })
    }

    /// The configuration (repositories, trust, groups, preferred and
    /// required content, numcopies, mincopies, maxsize, rebalance,
    /// metadata) changed: it is compiled again, and the sizes every
    /// repository sees worked out again, at their next use.
    pub(crate) fn config_changed(&mut self) {
        self.compiled = None;
        for l in &mut self.live {
            l.1 = true;
        }
    }

    /// The sizes `viewer`'s logs add up to were worked out anew: the sizes
    /// it sees are worked out again at their next use.
    pub(crate) fn sizes_changed(&mut self, viewer: u32) {
        if let Some(l) = self.live.get_mut(viewer as usize) {
            l.1 = true;
        }
    }

    /// The files changed: the files of each key are listed again at
    /// their next use.
    pub(crate) fn files_changed(&mut self) {
        self.key_files = None;
    }

    /// Whether the presence bits cover every repository and key.
    #[inline]
    fn pres_index(&self, viewer: u32, k: usize) -> Option<usize> {
        let i = k * self.pres_stride + viewer as usize;
        (self.pres_stride == self.uuid_objs.len() && i < self.pres.len()).then_some(i)
    }

    /// Records the presence bits of `viewer`'s log of key `k`, when the
    /// bits cover them.
    #[inline]
    pub(crate) fn write_pres(&mut self, viewer: u32, k: usize, bits: u64) {
        if let Some(i) = self.pres_index(viewer, k) {
            self.pres[i] = bits;
        }
    }

    /// Makes the presence bits cover every repository and key.
    pub(crate) fn ensure_pres(&mut self, state: &SimState) {
        let n = self.uuid_objs.len();
        let keys = self.key_objs.len();
        if self.pres_stride == n && self.pres.len() == n * keys {
            return;
        }
        self.pres_stride = n;
        self.pres = vec![0; n * keys];
        for (v, st) in state.states.iter().enumerate() {
            for k in 0..st.locs.len().min(keys) {
                self.pres[k * n + v] = loc_bits(&st.locs[k]);
            }
        }
    }

    /// Which of the first 64 repositories `viewer`'s log of key `k` says
    /// are present.
    #[inline]
    pub(crate) fn bits(&self, state: &SimState, viewer: u32, k: u32) -> u64 {
        match self.pres_index(viewer, k as usize) {
            Some(i) => self.pres[i],
            None => state.states[viewer as usize].bits_of(k),
        }
    }

    /// Whether `viewer`'s log says `r` has key `k`.
    #[inline]
    pub(crate) fn has_in(&self, state: &SimState, viewer: u32, k: u32, r: u32) -> bool {
        if r < 64 {
            self.bits(state, viewer, k) >> r & 1 == 1
        } else {
            state.states[viewer as usize].has(k, r)
        }
    }

    /// Asks the processor to fetch the key of the file at position `fi`
    /// (a hint: nothing is read or changed).
    #[inline]
    pub(crate) fn prefetch_key(&self, fi: u32) {
        if let Some(p) = self.step_keys.get(fi as usize) {
            prefetch_ptr(p as *const u32);
        }
    }

    /// Asks the processor to fetch the presence bits that an action of
    /// `u` on remote `r` for the file at position `fi` will read (a hint:
    /// nothing is read or changed).
    #[inline]
    pub(crate) fn prefetch(&self, u: u32, r: u32, fi: u32) {
        let Some(&k) = self.step_keys.get(fi as usize) else {
            return;
        };
        let base = k as usize * self.pres_stride;
        if self.pres_stride != self.uuid_objs.len() || base + self.pres_stride > self.pres.len() {
            return;
        }
        for v in [u, r] {
            prefetch_ptr(self.pres[base..].as_ptr().wrapping_add(v as usize));
        }
    }

    /// Compiles the configuration, unless it is compiled.
    pub(crate) fn ensure_compiled(&mut self, state: &SimState) {
        if self.compiled.is_none() {
            self.compiled = Some(Compiled::new(state, &self.uuid_objs));
        }
    }

    /// Brings the sizes `viewer` sees up to date when they changed.
    pub(crate) fn refresh_live(&mut self, state: &SimState, viewer: u32) {
        let n = self.uuid_objs.len();
        if self.live.len() < n {
            self.live.resize_with(n, || (LiveSizes::default(), true));
        }
        let (live, dirty) = &mut self.live[viewer as usize];
        if *dirty {
            let st = &state.states[viewer as usize];
            let base = self
                .uuid_objs
                .iter()
                .enumerate()
                .map(|(i, u)| (u.clone(), st.sizes.get(i).copied().unwrap_or(0)))
                .collect();
            live.set_base(base);
            *dirty = false;
        }
    }

    /// Each key's files (when more than one file has it).
    pub(crate) fn files_of_key(&mut self, state: &SimState) -> &HashMap<u32, Vec<String>> {
        self.key_files.get_or_insert_with(|| {
            let mut m: HashMap<u32, Vec<String>> = HashMap::new();
            for (f, k) in &state.files {
                m.entry(*k).or_default().push(f.clone());
            }
            m.retain(|_, v| v.len() > 1);
            m
        })
    }

    /// Works out the masks of an action or step (none past 64
    /// repositories).
    pub(crate) fn set_masks(&mut self, state: &SimState) {
        self.masks = Masks::new(state);
    }
}

impl Compiled {
    fn new(state: &SimState, uuid_objs: &[Uuid]) -> Compiled {
        let mut facts = Facts::default();
        let u = |i: &u32| uuid_objs[*i as usize].clone();
        facts.set_groups(
            state
                .groups
                .iter()
                .filter(|(_, g)| !g.is_empty())
                .map(|(i, g)| (u(i), g.clone()))
                .collect(),
        );
        facts.trust = state
            .trust
            .iter()
            .map(|(i, t)| (u(i), trust_level(t)))
            .filter(|(_, t)| *t != TrustLevel::Semitrusted)
            .collect();
        facts.numcopies = Some(state.numcopies as u64);
        facts.mincopies = Some(state.mincopies as u64);
        facts.maxsizes = state.maxsize.iter().map(|(i, m)| (u(i), *m)).collect();
        facts.known = uuid_objs.iter().cloned().collect();
        facts.preferred = state
            .wanted
            .iter()
            .map(|(i, e)| (u(i), e.clone()))
            .collect();
        facts.required = state
            .required
            .iter()
            .map(|(i, e)| (u(i), e.clone()))
            .collect();
        facts.group_wanted = state.group_wanted.clone();
        let policies = Policies::compile(&facts);
        let settings = Settings {
            here: None,
            rebalance: state.rebalance,
            ..Settings::default()
        };
        let kinds = uuid_objs
            .iter()
            .map(|u| match policies.preferred(u) {
                Some(p) if !p.is_empty() => Some(p.needs_sizes()),
                _ => None,
            })
            .collect();
        let by_index = uuid_objs
            .iter()
            .map(|u| policies.preferred(u).cloned())
            .collect();
        Compiled {
            facts,
            settings,
            kinds,
            by_index,
        }
    }
}

impl Masks {
    /// The masks of `state`'s repositories, when there are at most 64.
    fn new(state: &SimState) -> Option<Masks> {
        let n = state.uuids.len();
        if n > 64 {
            return None;
        }
        let remotes = state
            .connections
            .iter()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| state.repos.get(c))
                    .fold(0u64, |m, &r| m | 1 << r)
            })
            .collect();
        let trusted = (0..n as u32)
            .filter(|&r| state.trust_of(r) == "trusted")
            .fold(0u64, |m, r| m | 1 << r);
        let special = (0..n)
            .filter(|&r| state.states[r].special)
            .fold(0u64, |m, r| m | 1 << r);
        Some(Masks {
            remotes,
            trusted,
            special,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{run, Host, NoHost, Sim};

    /// A work tree holding the files given.
    struct Tree(Vec<(String, Key)>);

    impl Host for Tree {
        fn tree_files(&mut self, _: &str, _: &str) -> Result<Vec<(String, Key)>, String> {
            Ok(self.0.clone())
        }
    }

    /// Checks that every index `sim` holds is what its state gives when
    /// worked out from nothing.
    fn assert_indexes_follow_the_state(sim: &mut Sim) {
        let state = &sim.state;
        let mut fresh = Derived::new(state).unwrap();
        let kept = &mut sim.derived;
        assert!(kept.key_objs == fresh.key_objs);
        assert!(kept.uuid_objs == fresh.uuid_objs);
        let n = kept.uuid_objs.len();
        if kept.pres_stride == n && kept.pres.len() == n * kept.key_objs.len() {
            fresh.ensure_pres(state);
            assert_eq!(kept.pres, fresh.pres);
        }
        for (v, (live, stale)) in kept.live.iter().enumerate() {
            if !stale {
                for (i, u) in kept.uuid_objs.iter().enumerate() {
                    let tally = state.states[v].sizes.get(i).copied().unwrap_or(0);
                    assert_eq!(live.size(u), Some(tally), "viewer {v}, repository {i}");
                }
            }
        }
        if let Some(c) = &kept.compiled {
            fresh.ensure_compiled(state);
            assert_eq!(c.kinds, fresh.compiled.as_ref().unwrap().kinds);
        }
        if let Some(files) = kept.key_files.clone() {
            assert_eq!(&files, fresh.files_of_key(state));
        }
    }

    #[test]
    fn the_indexes_kept_in_step_are_those_worked_out_from_the_state() {
        let mut sim = Sim::new(1);
        let mut host = NoHost::default();
        run(&mut sim, include_str!("../tests/data/saved.sim"), &mut host).unwrap();
        assert_indexes_follow_the_state(&mut sim);
        // Keys, repositories, files and configuration added after the
        // indexes were built, then merges, actions and steps.
        for line in [
            "addmulti 4 .y 10kb 300kb bar",
            "init late",
            "connect late <-> foo",
            "wanted late include=*.y",
            "action late gitpull foo",
            "action late getwanted foo",
            "step 20",
            "maxsize bar 1mb",
            "action foo sync bar",
            "stepstable 300",
        ] {
            run(&mut sim, line, &mut host).unwrap();
            assert_indexes_follow_the_state(&mut sim);
        }
        // Files added with a key other files have.
        let key = sim.key(0).clone();
        let mut tree = Tree(vec![("copy1".into(), key.clone()), ("copy2".into(), key)]);
        for line in ["addtree late anything", "stepstable 300"] {
            run(&mut sim, line, &mut tree).unwrap();
            assert_indexes_follow_the_state(&mut sim);
        }
        assert!(sim.derived.compiled.is_some() && sim.derived.key_files.is_some());
        assert!(sim.derived.live.iter().any(|l| !l.1));
    }
}
