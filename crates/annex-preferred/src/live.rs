//! Repository sizes as decisions see them: the sizes recorded on the
//! branch, plus the content being sent to each repository right now.
//!
//! git-annex calls these live size updates (Annex/RepoSize/LiveUpdate.hs):
//! a decision that wants a key because of a size-dependent term (the
//! balanced family) reserves the key's size on the repository it chose
//! until the transfer ends, and decisions needing sizes are made one at a
//! time, so concurrent uploads to a group whose members have a maxsize
//! cannot overfill one of them. Only additions count; content being
//! removed is counted until its removal is recorded.
//!
//! Here the accounting is within one process; git-annex also shares it
//! between processes through a database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use annex_branch::sizes::RepoSizes;
use annex_branch::{Branch, BranchError};
use annex_types::{Key, Uuid};

use crate::FastMap;

#[derive(Debug, Default)]
struct State {
    base: FastMap<Uuid, i128>,
    adding: FastMap<Uuid, i128>,
    /// The reservations counted in `adding`, by id.
    in_flight: FastMap<u64, Reserved>,
    next_id: u64,
}

/// What a reservation in flight adds.
#[derive(Debug)]
struct Reserved {
    uuid: Uuid,
    key: Option<Key>,
    bytes: i128,
}

impl State {
    /// Takes a reservation out of `adding`; `false` when it was not
    /// there (settled by [`LiveSizes::set_base_recorded`]).
    fn release(&mut self, id: u64) -> bool {
        match self.in_flight.remove(&id) {
            Some(r) => {
                sub(&mut self.adding, &r.uuid, r.bytes);
                true
            }
            None => false,
        }
    }
}

/// Repository sizes with in-flight additions; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct LiveSizes {
    state: Arc<Mutex<State>>,
    decide: Arc<Mutex<()>>,
}

/// The sizes as one decision sees them.
#[derive(Debug)]
pub struct SizeView<'a> {
    state: MutexGuard<'a, State>,
}

impl SizeView<'_> {
    /// A repository's size with what is being added to it, or `None` when
    /// the branch knows nothing of the repository.
    pub fn size(&self, u: &Uuid) -> Option<i128> {
        let base = *self.state.base.get(u)?;
        Some(base + self.state.adding.get(u).copied().unwrap_or(0))
    }
}

/// Content being sent to a repository, counted in its size until the
/// transfer is finished (recorded) or given up (dropped).
#[derive(Debug)]
#[must_use = "dropping a reservation gives it up at once"]
pub struct Reservation {
    sizes: LiveSizes,
    id: u64,
    uuid: Uuid,
    bytes: i128,
    done: bool,
}

impl Reservation {
    /// The repository the content is going to.
    pub fn uuid(&self) -> &Uuid {
        &self.uuid
    }

    /// The transfer succeeded and its location is recorded: the size now
    /// counts as part of the repository (unless the sizes were read
    /// from the branch again after the location was recorded, which
    /// counted it already).
    pub fn finish(mut self) {
        let mut st = self.sizes.lock();
        if st.release(self.id) {
            if let Some(b) = st.base.get_mut(&self.uuid) {
                *b += self.bytes;
            }
        }
        self.done = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.sizes.lock().release(self.id);
        }
    }
}

/// A reservation not yet finished or given up, as
/// [`LiveSizes::in_flight`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// Which reservation.
    pub id: ReservationId,
    /// The repository the content is going to.
    pub uuid: Uuid,
    /// The key being sent.
    pub key: Key,
}

/// Names a reservation in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReservationId(u64);

fn sub(m: &mut FastMap<Uuid, i128>, u: &Uuid, n: i128) {
    if let Some(v) = m.get_mut(u) {
        *v -= n;
        if *v == 0 {
            m.remove(u);
        }
    }
}

/// Repository sizes as git-annex's decisions see them: every repository
/// of uuid.log (0 when it holds nothing), with the bytes the branch and
/// its journal say it holds, cluster UUIDs left out. Uses and updates the
/// saved sizes of [`RepoSizes::current`].
pub fn branch_sizes(
    branch: &Branch,
    facts: &crate::Facts,
) -> Result<HashMap<Uuid, i128>, BranchError> {
    let mut out: HashMap<Uuid, i128> = facts.known.iter().map(|u| (u.clone(), 0)).collect();
    if branch.head()?.is_some() {
        let sizes = RepoSizes::current(branch)?;
        for (u, s) in sizes.with_journal(branch)? {
            if !u.is_cluster() {
                out.insert(u, i128::from(s.bytes));
            }
        }
    }
    Ok(out)
}

impl LiveSizes {
    /// The sizes of [`branch_sizes`].
    pub fn from_branch(branch: &Branch, facts: &crate::Facts) -> Result<LiveSizes, BranchError> {
        Ok(LiveSizes::new(branch_sizes(branch, facts)?))
    }

    /// Sizes starting from `base` (bytes per repository).
    pub fn new(base: HashMap<Uuid, i128>) -> LiveSizes {
        let sizes = LiveSizes::default();
        sizes.lock().base = base.into_iter().collect();
        sizes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the recorded sizes (after the branch changed); content in
    /// flight stays counted.
    pub fn set_base(&self, base: HashMap<Uuid, i128>) {
        self.lock().base = base.into_iter().collect();
    }

    /// The reservations in flight that name a key, for a caller that
    /// reads the sizes from the branch again to tell which of them the
    /// branch already records ([`LiveSizes::set_base_recorded`]).
    pub fn in_flight(&self) -> Vec<InFlight> {
        let st = self.lock();
        let mut v: Vec<InFlight> = st
            .in_flight
            .iter()
            .filter_map(|(&id, r)| {
                Some(InFlight {
                    id: ReservationId(id),
                    uuid: r.uuid.clone(),
                    key: r.key.clone()?,
                })
            })
            .collect();
        v.sort_by_key(|r| r.id.0);
        v
    }

    /// Replaces the recorded sizes with `base`, read from the branch when
    /// the locations of the reservations `recorded` were on it already
    /// (their transfers ended, and were recorded, while they were still
    /// in flight here): those count as part of `base` from now on, no
    /// longer in flight, and finishing them adds nothing more. The other
    /// reservations in flight stay counted. A reservation finished since
    /// [`LiveSizes::in_flight`] listed it is counted in `base` only, as
    /// long as `base` was read after its location was recorded.
    pub fn set_base_recorded(&self, base: HashMap<Uuid, i128>, recorded: &[ReservationId]) {
        let mut st = self.lock();
        for id in recorded {
            st.release(id.0);
        }
        st.base = base.into_iter().collect();
    }

    /// Adds `delta` bytes to a repository's recorded size (a change the
    /// caller has just recorded, such as a simulation moving content);
    /// content in flight stays counted. A repository without a recorded
    /// size gets one.
    pub fn add_to_base(&self, u: &Uuid, delta: i128) {
        *self.lock().base.entry(u.clone()).or_default() += delta;
    }

    /// A repository's recorded size with what is in flight to it.
    pub fn size(&self, u: &Uuid) -> Option<i128> {
        SizeView { state: self.lock() }.size(u)
    }

    /// Runs a decision about `key` that reads sizes, one at a time with
    /// the others; `decide` returns its answer and, when it wants the key
    /// because of sizes, the repository and bytes to reserve.
    pub fn decide<T>(
        &self,
        key: Option<&Key>,
        decide: impl FnOnce(&SizeView<'_>) -> (T, Option<(Uuid, i128)>),
    ) -> (T, Option<Reservation>) {
        let _one_at_a_time = self.decide.lock().unwrap_or_else(|p| p.into_inner());
        let (answer, reserve) = {
            let view = SizeView { state: self.lock() };
            decide(&view)
        };
        let reservation = reserve.map(|(uuid, bytes)| {
            let mut st = self.lock();
            *st.adding.entry(uuid.clone()).or_default() += bytes;
            let id = st.next_id;
            st.next_id += 1;
            st.in_flight.insert(
                id,
                Reserved {
                    uuid: uuid.clone(),
                    key: key.cloned(),
                    bytes,
                },
            );
            Reservation {
                sizes: self.clone(),
                id,
                uuid,
                bytes,
                done: false,
            }
        });
        (answer, reservation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Uuid {
        Uuid::parse(s).unwrap()
    }

    #[test]
    fn reservations_count_until_finished_or_dropped() {
        let sizes = LiveSizes::new([(u("a"), 100)].into_iter().collect());
        let (_, r) = sizes.decide(None, |v| (v.size(&u("a")), Some((u("a"), 50))));
        assert_eq!(sizes.size(&u("a")), Some(150));
        drop(r);
        assert_eq!(sizes.size(&u("a")), Some(100));
        let (_, r) = sizes.decide(None, |_| ((), Some((u("a"), 50))));
        r.unwrap().finish();
        assert_eq!(sizes.size(&u("a")), Some(150));
        sizes.add_to_base(&u("a"), 25);
        assert_eq!(sizes.size(&u("a")), Some(175));
        sizes.add_to_base(&u("a"), -25);
        // Unknown repositories stay unknown.
        let (_, r) = sizes.decide(None, |_| ((), Some((u("b"), 5))));
        assert_eq!(sizes.size(&u("b")), None);
        drop(r);
    }

    /// Sizes read from the branch again while uploads are in flight: an
    /// upload whose location the branch records already counts in the
    /// sizes read, once, whether it is finished before or after; one not
    /// yet recorded stays counted as in flight.
    #[test]
    fn reservations_recorded_before_a_reread_count_once() {
        let k = |n: u32| Key::parse(&format!("WORM-s{n}--k{n}")).ok();
        let sizes = LiveSizes::new([(u("a"), 100)].into_iter().collect());
        let (_, recorded) = sizes.decide(k(50).as_ref(), |_| ((), Some((u("a"), 50))));
        let (_, pending) = sizes.decide(k(7).as_ref(), |_| ((), Some((u("a"), 7))));
        let (_, keyless) = sizes.decide(None, |_| ((), Some((u("a"), 3))));
        let listed = sizes.in_flight();
        assert_eq!(
            listed.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            vec!["WORM-s50--k50", "WORM-s7--k7"]
        );
        // The branch read records the first upload only.
        sizes.set_base_recorded([(u("a"), 150)].into_iter().collect(), &[listed[0].id]);
        assert_eq!(sizes.size(&u("a")), Some(160));
        recorded.unwrap().finish();
        assert_eq!(sizes.size(&u("a")), Some(160));
        pending.unwrap().finish();
        assert_eq!(sizes.size(&u("a")), Some(160));
        drop(keyless);
        assert_eq!(sizes.size(&u("a")), Some(157));
        assert!(sizes.in_flight().is_empty());
    }
}
