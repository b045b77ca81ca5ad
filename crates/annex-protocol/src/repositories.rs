//! Registries of repositories: what a server serves, looked up by UUID.
//!
//! A server of many repositories (p2phttp's `/git-annex/UUID/...`, a
//! gateway's proxied remotes, a cluster) asks a [`Repositories`] for the
//! [`Repository`] a request names. [`SingleRepository`] serves one.

use std::sync::Arc;

use crate::repository::Repository;
use crate::uuid::Uuid;

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
    /// true, never two at once and at most once in its rescan interval
    /// (annex-http's `MIN_RESCAN_INTERVAL`).
    fn rescan_and_lookup(&self, uuid: &Uuid) -> Option<Arc<dyn Repository>> {
        self.lookup(uuid)
    }

    /// Whether a request that is refused anyway (401 or 403) looks again
    /// for a UUID not served, as every request does with git-annex's
    /// `p2phttp --directory`: it is then answered as refused rather than
    /// 404 when the repository has appeared since the last look. When
    /// false (the default, as git-annex's server of one repository, whose
    /// set of repositories is fixed), only requests allowed to go on make
    /// the server look again.
    fn rescan_when_refused(&self) -> bool {
        false
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

    /// Whether requests may name one of the repositories served by its
    /// path (`/PATH/git-annex/UUID/...`, as a forge addresses a user's
    /// repository). False by default.
    fn serves_paths(&self) -> bool {
        false
    }

    /// What is served to requests addressed to the repository at `path`
    /// (relative, `/`-separated, with no empty, `.` or `..` component),
    /// when it is already open: it must not block.
    fn at_path_open(&self, _path: &str) -> Option<Arc<dyn Repositories>> {
        None
    }

    /// What is served to requests addressed to the repository at `path`,
    /// opening it if need be (which may block, on the file system: the
    /// server calls it on a blocking thread). `None` when no repository
    /// served is there.
    fn at_path(&self, path: &str) -> Option<Arc<dyn Repositories>> {
        self.at_path_open(path)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryRepository;

    #[test]
    fn a_single_repository_serves_its_uuid_alone() {
        let u = Uuid::parse("5b7d8c3e-0f55-4f3a-9e3b-6b2d1c0a9f00").unwrap();
        let other = Uuid::parse("6c8e9d4f-1066-4b4b-8f4c-7c3e2d1b0a11").unwrap();
        let single = SingleRepository::new(Arc::new(MemoryRepository::new(u.clone())));
        assert_eq!(single.lookup(&u).map(|r| r.uuid().clone()), Some(u.clone()));
        assert!(single.lookup(&other).is_none());
        assert_eq!(single.uuids(), vec![u]);
        assert!(!single.rescans() && single.refusal(&other).is_none());
    }
}
