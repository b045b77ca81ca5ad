//! Content locks taken by `lockcontent` and kept by `keeplocked`.
//!
//! A lock lives until the client sends `{"unlock": true}` on its
//! `keeplocked` request, that request ends (the connection broke), or, when
//! no `keeplocked` request ever came, for ten minutes. At most a fixed
//! number of locks are held at once; past that `lockcontent` answers
//! `{"locked": false}`, as git-annex's `--lockedfiles` limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annex_protocol::{ContentLock, Uuid};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a lock nobody keeps lives.
pub const LOCK_LIFETIME: Duration = Duration::from_secs(600);

struct Held {
    _lock: ContentLock,
    _permit: OwnedSemaphorePermit,
    _counted: Counted,
    kept: bool,
}

/// A lock counted in `annex_locks_held` while it lives.
struct Counted;

impl Counted {
    fn new() -> Counted {
        annex_metrics::global().locks_held.inc();
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        annex_metrics::global().locks_held.dec();
    }
}

/// The locks held for clients, by lock id.
pub struct LockTable {
    held: Mutex<HashMap<String, Held>>,
    slots: Arc<Semaphore>,
    lifetime: Duration,
}

impl LockTable {
    /// A table holding at most `max` locks, each living `lifetime` unless
    /// kept.
    pub fn new(max: usize, lifetime: Duration) -> Arc<LockTable> {
        Arc::new(LockTable {
            held: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(max)),
            lifetime,
        })
    }

    /// A slot for one more lock, if any is free.
    pub fn reserve(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Holds `lock` under a new id, releasing it after the lifetime unless
    /// [`LockTable::keep`] is called first.
    pub fn insert(self: &Arc<Self>, lock: ContentLock, permit: OwnedSemaphorePermit) -> String {
        let id = Uuid::new_v4().as_str().to_owned();
        self.held.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id.clone(),
            Held {
                _lock: lock,
                _permit: permit,
                _counted: Counted::new(),
                kept: false,
            },
        );
        let table = Arc::downgrade(self);
        let expiring = id.clone();
        let lifetime = self.lifetime;
        tokio::spawn(async move {
            tokio::time::sleep(lifetime).await;
            if let Some(table) = table.upgrade() {
                let mut held = table.held.lock().unwrap_or_else(|e| e.into_inner());
                if held.get(&expiring).is_some_and(|h| !h.kept) {
                    held.remove(&expiring);
                }
            }
        });
        id
    }

    /// Keeps the lock past its lifetime, until [`LockTable::release`].
    /// Returns whether the lock is held.
    pub fn keep(&self, id: &str) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.get_mut(id) {
            Some(h) => {
                h.kept = true;
                true
            }
            None => false,
        }
    }

    /// Releases the lock, if held.
    pub fn release(&self, id: &str) {
        let removed = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        drop(removed);
    }

    /// How many locks are held.
    pub fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no lock is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
