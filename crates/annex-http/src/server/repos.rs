//! The repositories a server serves, looked up by the UUID in the request
//! path.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use annex_protocol::{Repository, Uuid};
use annex_repo::{looks_like_repository, LocalRepository};

/// The repositories a server serves.
pub trait Repositories: Send + Sync + 'static {
    /// The repository with this UUID, if it is served. This is called for
    /// every request, on the server's async threads: it must not block.
    fn lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>>;

    /// Whether [`rescan_and_lookup`](Repositories::rescan_and_lookup) can
    /// find repositories [`lookup`](Repositories::lookup) did not.
    fn rescans(&self) -> bool {
        false
    }

    /// Looks for repositories again (which may block, on the file system),
    /// then looks `uuid` up. The server calls it on a blocking thread when
    /// `lookup` found nothing and [`rescans`](Repositories::rescans) is
    /// true.
    fn rescan_and_lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        self.lookup(uuid)
    }

    /// The UUIDs served now (for logs).
    fn uuids(&self) -> Vec<Uuid>;

    /// Why a UUID this server knows of, but does not serve, is refused:
    /// answered 502 Bad Gateway with this text, as git-annex's gateway
    /// answers for a repository it is not configured to proxy. `None` (the
    /// default) answers 404.
    fn refusal(&self, _uuid: &Uuid) -> Option<String> {
        None
    }
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

/// Serves every git-annex repository found below some directories, as
/// git-annex's `p2phttp --directory` does: `DIR/a` and `DIR/user/b` alike,
/// but not a repository inside another one, and not through a symlink to
/// a directory that is not a repository.
///
/// A request for a UUID not served looks again, so a repository added
/// later is served from its first request, and one removed is served no
/// longer once a later look has not found it. Looks are never run two at
/// once: requests that arrive during one wait for the next.
pub struct DirectoryRepositories {
    dirs: Vec<PathBuf>,
    served: Mutex<Served>,
    /// When the latest look started; held while looking.
    looking: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Served {
    by_uuid: HashMap<Uuid, Arc<dyn Repository>>,
    /// What was opened at each path, to reopen only what changed.
    by_path: HashMap<PathBuf, Opened>,
}

#[derive(Clone)]
struct Opened {
    /// The device and inode of the path when it was opened.
    identity: (u64, u64),
    repo: Arc<dyn Repository>,
}

/// How deep below a directory repositories are looked for: deeper than
/// any layout in use, shallow enough to bound a look.
const MAX_DEPTH: usize = 32;

impl DirectoryRepositories {
    /// Serves the repositories below `dirs`, looking for them now.
    pub fn new(dirs: Vec<PathBuf>) -> DirectoryRepositories {
        let repos = DirectoryRepositories {
            dirs,
            served: Mutex::new(Served::default()),
            looking: Mutex::new(None),
        };
        repos.rescan();
        repos
    }

    /// Looks for repositories again: those found are served (already open
    /// ones are kept unless the path now holds another directory), those
    /// no longer found are not.
    pub fn rescan(&self) {
        let mut looking = self.looking.lock().unwrap_or_else(|e| e.into_inner());
        *looking = Some(Instant::now());
        self.look();
    }

    fn look(&self) {
        let mut found = Vec::new();
        for dir in &self.dirs {
            find_repositories(dir, 0, &mut found);
        }
        let known = self
            .served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_path
            .clone();
        // Opening reads each new repository's config: done without holding
        // the lock that requests take.
        let mut next = Served::default();
        for path in found {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let identity = (meta.dev(), meta.ino());
            let opened = match known.get(&path) {
                Some(o) if o.identity == identity => o.clone(),
                _ => match LocalRepository::open(&path) {
                    Ok(repo) => Opened {
                        identity,
                        repo: Arc::new(repo),
                    },
                    Err(_) => continue,
                },
            };
            next.by_uuid
                .entry(opened.repo.uuid().clone())
                .or_insert_with(|| opened.repo.clone());
            next.by_path.insert(path, opened);
        }
        *self.served.lock().unwrap_or_else(|e| e.into_inner()) = next;
    }
}

/// Adds the repositories below `dir` to `found`, by git-annex's rules:
/// each entry that is a repository is one (and is not looked into);
/// other directories are looked into, unless they are symlinks. Entries
/// that cannot be read are passed over.
fn find_repositories(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if looks_like_repository(&path) {
            found.push(path);
        } else if depth < MAX_DEPTH && entry.file_type().is_ok_and(|t| t.is_dir()) {
            find_repositories(&path, depth + 1, found);
        }
    }
}

impl Repositories for DirectoryRepositories {
    fn lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        let served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        served.by_uuid.get(uuid).cloned()
    }

    fn rescans(&self) -> bool {
        true
    }

    fn rescan_and_lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        let asked = Instant::now();
        let mut looking = self.looking.lock().unwrap_or_else(|e| e.into_inner());
        // A look that started after this request arrived has finished
        // while this one waited: its answer is fresh enough.
        if looking.is_none_or(|started| started <= asked) {
            *looking = Some(Instant::now());
            self.look();
        }
        drop(looking);
        self.lookup(uuid)
    }

    fn uuids(&self) -> Vec<Uuid> {
        let served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Uuid> = served.by_uuid.keys().cloned().collect();
        v.sort();
        v
    }
}
