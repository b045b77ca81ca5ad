//! The repositories a server serves, looked up by the UUID in the request
//! path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use annex_protocol::{Repository, Uuid};
use annex_repo::LocalRepository;

/// The repositories a server serves.
pub trait Repositories: Send + Sync + 'static {
    /// The repository with this UUID, if it is served.
    fn lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>>;

    /// The UUIDs served now (for logs).
    fn uuids(&self) -> Vec<Uuid>;
}

/// Serves exactly one repository.
pub struct SingleRepository(Arc<dyn Repository>);

impl SingleRepository {
    /// Serves `repo`.
    pub fn new(repo: Arc<dyn Repository>) -> SingleRepository {
        SingleRepository(repo)
    }
}

impl Repositories for SingleRepository {
    fn lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        (self.0.uuid() == uuid).then(|| self.0.clone())
    }

    fn uuids(&self) -> Vec<Uuid> {
        vec![self.0.uuid().clone()]
    }
}

/// Serves every git-annex repository directly inside some directories,
/// as git-annex's `p2phttp --directory` does. A request for a UUID not
/// served rescans the directories (at most once a second), so
/// repositories added later are served without a restart.
pub struct DirectoryRepositories {
    dirs: Vec<PathBuf>,
    state: Mutex<DirectoryState>,
}

struct DirectoryState {
    by_uuid: HashMap<Uuid, Arc<dyn Repository>>,
    by_path: HashMap<PathBuf, Uuid>,
    scanned: Option<Instant>,
}

/// How often a request for an unknown UUID may rescan.
const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

impl DirectoryRepositories {
    /// Serves the repositories in `dirs`, scanning them now.
    pub fn new(dirs: Vec<PathBuf>) -> DirectoryRepositories {
        let repos = DirectoryRepositories {
            dirs,
            state: Mutex::new(DirectoryState {
                by_uuid: HashMap::new(),
                by_path: HashMap::new(),
                scanned: None,
            }),
        };
        repos.rescan();
        repos
    }

    /// Looks for repositories again, keeping those already open.
    pub fn rescan(&self) {
        let mut found = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                // Symlinks are not followed: no cycles, no escaping the
                // directory.
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if is_dir {
                    found.push(entry.path());
                }
            }
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for path in found {
            if state.by_path.contains_key(&path) {
                continue;
            }
            if let Some(repo) = open_annex(&path) {
                let uuid = repo.uuid().clone();
                state.by_path.insert(path, uuid.clone());
                state.by_uuid.entry(uuid).or_insert(Arc::new(repo));
            }
        }
        state.scanned = Some(Instant::now());
    }
}

fn open_annex(path: &Path) -> Option<LocalRepository> {
    LocalRepository::open(path).ok()
}

impl Repositories for DirectoryRepositories {
    fn lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        let due = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = state.by_uuid.get(uuid) {
                return Some(r.clone());
            }
            state.scanned.is_none_or(|t| t.elapsed() >= RESCAN_INTERVAL)
        };
        if !due {
            return None;
        }
        self.rescan();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.by_uuid.get(uuid).cloned()
    }

    fn uuids(&self) -> Vec<Uuid> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Uuid> = state.by_uuid.keys().cloned().collect();
        v.sort();
        v
    }
}
