//! Sources of per-key information: the git-annex branch, or memory.

use std::borrow::Cow;
use std::collections::HashSet;

use annex_branch::locations::{add_cluster_uuids, location_log_path, present_uuids};
use annex_branch::logs::cluster::Clusters;
use annex_branch::logs::metadata::MetaData;
use annex_branch::Branch;
use annex_types::{Key, Uuid};

use crate::eval::{EvalError, KeyInfo};
use crate::FastMap;

/// A check of the local repository's content.
type ContentCheck<'a> = Box<dyn Fn(&Key) -> bool + 'a>;

/// Key information read from a repository's git-annex branch and journal.
pub struct BranchKeys<'a> {
    branch: &'a Branch,
    clusters: Clusters,
    here: Option<ContentCheck<'a>>,
    unused: HashSet<Key>,
}

impl<'a> BranchKeys<'a> {
    /// Reads locations and metadata from `branch`, adding the clusters of
    /// nodes as `clusters` says (see [`Branch::clusters`]).
    pub fn new(branch: &'a Branch, clusters: Clusters) -> BranchKeys<'a> {
        BranchKeys {
            branch,
            clusters,
            here: None,
            unused: HashSet::new(),
        }
    }

    /// Checks the local repository's own content with `has_content`.
    pub fn with_local_content(mut self, has_content: impl Fn(&Key) -> bool + 'a) -> Self {
        self.here = Some(Box::new(has_content));
        self
    }

    /// The keys `git annex unused` listed.
    pub fn with_unused(mut self, unused: HashSet<Key>) -> Self {
        self.unused = unused;
        self
    }
}

impl KeyInfo for BranchKeys<'_> {
    fn locations(&self, key: &Key) -> Result<Cow<'_, [Uuid]>, EvalError> {
        let log = self.branch.read(&location_log_path(key))?;
        Ok(Cow::Owned(add_cluster_uuids(
            &self.clusters,
            present_uuids(&log),
        )))
    }

    fn metadata(&self, key: &Key) -> Result<MetaData, EvalError> {
        Ok(self.branch.metadata(key)?)
    }

    fn has_content_here(&self, key: &Key) -> Result<Option<bool>, EvalError> {
        Ok(self.here.as_ref().map(|f| f(key)))
    }

    fn is_unused(&self, key: &Key) -> Result<bool, EvalError> {
        Ok(self.unused.contains(key))
    }

    fn urls(&self, key: &Key) -> Result<Vec<String>, EvalError> {
        let path = format!("{}{}.log.web", key.hash_dir_lower(), key.to_file_name());
        let log = self.branch.read(&path)?;
        Ok(annex_branch::logs::presence::present(&log)
            .into_iter()
            .map(|u| String::from_utf8_lossy(&u).into_owned())
            .collect())
    }
}

/// The keys `git annex unused` last listed (`.git/annex/unused`, lines of
/// `NUMBER KEY TIMESTAMP`); none when there is no such file.
pub fn read_unused_log(git_dir: &std::path::Path) -> HashSet<Key> {
    let Ok(text) = std::fs::read_to_string(git_dir.join("annex/unused")) else {
        return HashSet::new();
    };
    text.lines()
        .filter_map(|l| {
            let (n, rest) = l.split_once(' ')?;
            annex_branch::logs::readish::read_int(n.as_bytes())?;
            let (k, _timestamp) = rest.rsplit_once(' ')?;
            Key::parse(k).ok()
        })
        .collect()
}

/// Key information held in memory (for tests, benchmarks and simulations).
#[derive(Debug, Clone, Default)]
pub struct MemoryKeys {
    /// Each key's logged locations (clusters included).
    pub locations: FastMap<Key, Vec<Uuid>>,
    /// Each key's metadata.
    pub metadata: FastMap<Key, MetaData>,
    /// Keys whose content the local repository has.
    pub here: Option<HashSet<Key>>,
    /// Keys listed as unused.
    pub unused: HashSet<Key>,
    /// Each key's URLs (as the web log writes them).
    pub urls: FastMap<Key, Vec<String>>,
}

impl KeyInfo for MemoryKeys {
    fn locations(&self, key: &Key) -> Result<Cow<'_, [Uuid]>, EvalError> {
        Ok(match self.locations.get(key) {
            Some(l) => Cow::Borrowed(l.as_slice()),
            None => Cow::Borrowed(&[]),
        })
    }

    fn metadata(&self, key: &Key) -> Result<MetaData, EvalError> {
        Ok(self.metadata.get(key).cloned().unwrap_or_default())
    }

    fn has_content_here(&self, key: &Key) -> Result<Option<bool>, EvalError> {
        Ok(self.here.as_ref().map(|h| h.contains(key)))
    }

    fn urls(&self, key: &Key) -> Result<Vec<String>, EvalError> {
        Ok(self.urls.get(key).cloned().unwrap_or_default())
    }

    fn is_unused(&self, key: &Key) -> Result<bool, EvalError> {
        Ok(self.unused.contains(key))
    }
}
