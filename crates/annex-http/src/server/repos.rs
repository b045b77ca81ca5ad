//! The repositories a server serves, looked up by the UUID in the request
//! path: the [`Repositories`] trait and [`SingleRepository`] (from
//! annex-protocol, re-exported here), and [`DirectoryRepositories`].

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use annex_protocol::repositories::{Repositories, SingleRepository};
use annex_protocol::{Repository, Uuid};
use annex_repo::{looks_like_repository, LocalRepository};

/// The least time between the starts of two looks for repositories made
/// for requests naming a UUID not served: a burst of such requests costs
/// one look, and a steady stream at most one a second. A request waits for
/// the next look (at most this long, plus the look itself) rather than be
/// answered from an older one.
pub const MIN_RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the looks for repositories a server makes for requests: one at a
/// time, on a blocking thread, at most once per [`MIN_RESCAN_INTERVAL`],
/// each answering every request that arrived before it started.
#[derive(Default)]
pub(crate) struct Rescans {
    /// When the latest look started; held while looking and while waiting
    /// for the next one to be due.
    latest: Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl Rescans {
    /// Looks `uuid` up in `repos` after a look that started after this
    /// call.
    pub(crate) async fn lookup(
        &self,
        repos: &Arc<dyn Repositories>,
        uuid: &Uuid,
    ) -> Option<Arc<dyn Repository>> {
        let asked = tokio::time::Instant::now();
        let mut latest = self.latest.clone().lock_owned().await;
        if let Some(started) = *latest {
            if started >= asked {
                // Looked since this request arrived.
                drop(latest);
                return repos.lookup(uuid);
            }
            tokio::time::sleep_until(started + MIN_RESCAN_INTERVAL).await;
        }
        *latest = Some(tokio::time::Instant::now());
        let (repos, uuid) = (repos.clone(), uuid.clone());
        // The guard goes with the look, so that a request that goes away
        // meanwhile does not let a second look start beside it.
        tokio::task::spawn_blocking(move || {
            let found = repos.rescan_and_lookup(&uuid);
            drop(latest);
            found
        })
        .await
        .ok()
        .flatten()
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
///
/// A UUID that two repositories claim (a copy of a repository, or one
/// user's repository made to shadow another's) is served by neither, and
/// a warning names both paths whenever the set of such UUIDs changes.
///
/// A request may also name a repository by its path below the directory
/// (`/owner/repo/git-annex/UUID/...`, see [`Repositories::at_path`]): that
/// repository alone answers it, opened on its first such request (a
/// directory `repo.git` answers for `repo` too) and closed by
/// [`close_idle`](DirectoryRepositories::close_idle).
pub struct DirectoryRepositories {
    dirs: Vec<PathBuf>,
    served: Mutex<Served>,
    /// When the latest look started; held while looking.
    looking: Mutex<Option<Instant>>,
    /// The repositories opened for requests naming their path.
    by_request_path: Mutex<HashMap<String, AtPath>>,
    /// Whether the repositories found by looking are kept open (serving
    /// requests that name a UUID alone).
    by_uuid: bool,
    /// What a repository named by path serves (by default, itself).
    opener: Option<PathOpener>,
}

/// Makes what a repository named by its path serves, from the repository
/// opened there and that path (on a blocking thread): the repository
/// alone, or with the remotes it proxies and its clusters. `None` serves
/// nothing there.
pub type PathOpener =
    Arc<dyn Fn(LocalRepository, &Path) -> Option<Arc<dyn Repositories>> + Send + Sync>;

/// A repository opened for requests naming its path.
struct AtPath {
    served: Arc<dyn Repositories>,
    git_dir: PathBuf,
    last_used: Instant,
}

#[derive(Default)]
struct Served {
    by_uuid: HashMap<Uuid, Arc<dyn Repository>>,
    /// What was opened at each path, to reopen only what changed.
    by_path: HashMap<PathBuf, Opened>,
    /// The UUIDs more than one repository claims, with their paths
    /// (sorted): not served.
    claimed_twice: BTreeMap<Uuid, Vec<PathBuf>>,
}

#[derive(Clone)]
struct Opened {
    /// The device and inode of the path when it was opened.
    identity: (u64, u64),
    /// The repository's git directory, with symlinks resolved: paths
    /// that lead to one repository (a symlink, a linked work tree) have
    /// the same.
    git_dir: PathBuf,
    repo: Arc<dyn Repository>,
}

/// How deep below a directory repositories are looked for: deeper than
/// any layout in use, shallow enough to bound a look.
const MAX_DEPTH: usize = 32;

impl DirectoryRepositories {
    /// Serves the repositories below `dirs`, looking for them now.
    pub fn new(dirs: Vec<PathBuf>) -> DirectoryRepositories {
        let repos = DirectoryRepositories::by_path_only(dirs);
        let repos = DirectoryRepositories {
            by_uuid: true,
            ..repos
        };
        repos.rescan();
        repos
    }

    /// Serves the repositories below `dirs` to requests that name their
    /// path only: a request naming a UUID alone is not served, and nothing
    /// is looked for until a request names a path.
    pub fn by_path_only(dirs: Vec<PathBuf>) -> DirectoryRepositories {
        DirectoryRepositories {
            dirs,
            served: Mutex::new(Served::default()),
            looking: Mutex::new(None),
            by_request_path: Mutex::new(HashMap::new()),
            by_uuid: false,
            opener: None,
        }
    }

    /// Serves what `opener` makes of each repository named by its path,
    /// rather than the repository alone. Call it before serving.
    pub fn with_opener(self, opener: PathOpener) -> DirectoryRepositories {
        DirectoryRepositories {
            opener: Some(opener),
            ..self
        }
    }

    /// Closes the repositories opened for requests naming their path that
    /// no request has used for `idle` (requests in flight keep theirs
    /// until they end). Returns how many are still open.
    pub fn close_idle(&self, idle: Duration) -> usize {
        let mut open = self
            .by_request_path
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.retain(|_, a| a.last_used.elapsed() < idle);
        open.len()
    }

    /// The git directories of the repositories open now (to commit what
    /// was recorded in their journals).
    pub fn open_git_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .by_request_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|a| a.git_dir.clone())
            .collect();
        dirs.extend(
            self.served
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .by_path
                .values()
                .map(|o| o.git_dir.clone()),
        );
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The repository at `rel` below one of the directories, by the rules
    /// of the looks for repositories: every directory on the way is a
    /// directory (not a symlink) and not a repository, and the last
    /// component (or it with `.git` added) is a repository.
    fn find_at(&self, rel: &str) -> Option<PathBuf> {
        let components: Vec<&str> = rel.split('/').collect();
        if components.len() > MAX_DEPTH + 1
            || components
                .iter()
                .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0'))
        {
            return None;
        }
        let (last, parents) = components.split_last()?;
        'dirs: for dir in &self.dirs {
            let mut path = dir.clone();
            for c in parents {
                path.push(c);
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() && !looks_like_repository(&path) => {}
                    _ => continue 'dirs,
                }
            }
            for name in [last.to_string(), format!("{last}.git")] {
                let candidate = path.join(name);
                if looks_like_repository(&candidate) {
                    return Some(candidate);
                }
            }
        }
        None
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
        let (known, warned) = {
            let served = self.served.lock().unwrap_or_else(|e| e.into_inner());
            (served.by_path.clone(), served.claimed_twice.clone())
        };
        // Opening reads each new repository's config: done without holding
        // the lock that requests take.
        let mut next = Served::default();
        // For each UUID, the repositories (by git directory) claiming it,
        // with a path to each.
        let mut claims: BTreeMap<Uuid, BTreeMap<PathBuf, PathBuf>> = BTreeMap::new();
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
                        git_dir: std::fs::canonicalize(repo.git_dir())
                            .unwrap_or_else(|_| repo.git_dir().to_owned()),
                        repo: Arc::new(repo),
                    },
                    Err(_) => continue,
                },
            };
            claims
                .entry(opened.repo.uuid().clone())
                .or_default()
                .insert(opened.git_dir.clone(), path.clone());
            next.by_path.insert(path, opened);
        }
        for (uuid, repos) in claims {
            if repos.len() == 1 {
                if let Some(o) = repos.values().next().and_then(|p| next.by_path.get(p)) {
                    next.by_uuid.insert(uuid, o.repo.clone());
                }
            } else {
                let paths: Vec<PathBuf> = repos.into_values().collect();
                if warned.get(&uuid) != Some(&paths) {
                    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                    tracing::warn!(
                        %uuid,
                        paths = list.join(", "),
                        "repositories with the same UUID: serving neither"
                    );
                }
                next.claimed_twice.insert(uuid, paths);
            }
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
        self.by_uuid
    }

    fn rescan_when_refused(&self) -> bool {
        self.by_uuid
    }

    fn rescan_and_lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        if !self.by_uuid {
            return None;
        }
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

    fn serves_paths(&self) -> bool {
        true
    }

    fn at_path_open(&self, path: &str) -> Option<Arc<dyn Repositories>> {
        let mut open = self
            .by_request_path
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let at = open.get_mut(path)?;
        at.last_used = Instant::now();
        Some(at.served.clone())
    }

    fn at_path(&self, path: &str) -> Option<Arc<dyn Repositories>> {
        if let Some(served) = self.at_path_open(path) {
            return Some(served);
        }
        let found = self.find_at(path)?;
        let repo = match LocalRepository::open(&found) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(path = %found.display(), error = %e, "not served");
                return None;
            }
        };
        let git_dir = repo.git_dir().to_owned();
        let served: Arc<dyn Repositories> = match &self.opener {
            Some(open) => open(repo, &found)?,
            None => Arc::new(SingleRepository::new(Arc::new(repo))),
        };
        let mut open = self
            .by_request_path
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Another request may have opened it meanwhile: one of the two is
        // kept.
        let at = open.entry(path.to_owned()).or_insert(AtPath {
            served,
            git_dir,
            last_used: Instant::now(),
        });
        at.last_used = Instant::now();
        Some(at.served.clone())
    }
}
