//! What decisions read about the repositories, loaded once from the
//! git-annex branch: groups, trust, numcopies, maxsizes, special remote
//! configs, clusters, and the preferred and required content expressions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use annex_branch::logs::cluster::Clusters;
use annex_branch::logs::paths::{
    GROUP_LOG, GROUP_PREFERRED_CONTENT_LOG, MAX_SIZE_LOG, MINCOPIES_LOG, NUMCOPIES_LOG,
    PREFERRED_CONTENT_LOG, REMOTE_LOG, REQUIRED_CONTENT_LOG, TRUST_LOG, UUID_LOG,
};
use annex_branch::logs::trust::TrustLevel;
use annex_branch::logs::{
    group, maxsize, numcopies, preferred_content, remote_config, trust, uuid_log,
};
use annex_branch::{Branch, BranchError};
use annex_types::Uuid;

use crate::balanced::Picker;
use crate::FastMap;

/// A group's members and its balanced picker.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    /// The members, sorted.
    pub members: Vec<Uuid>,
    /// The picker over all members.
    pub picker: Picker,
}

/// The repository-wide facts decisions read.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Each repository's groups.
    pub groups_of: BTreeMap<Uuid, BTreeSet<String>>,
    /// Each group's members, with its balanced picker.
    pub groups: FastMap<String, Arc<GroupInfo>>,
    /// Trust levels that are not semitrusted.
    pub trust: FastMap<Uuid, TrustLevel>,
    /// The global numcopies, when set.
    pub numcopies: Option<u64>,
    /// The global mincopies, when set.
    pub mincopies: Option<u64>,
    /// The maxsize of each repository that has one.
    pub maxsizes: FastMap<Uuid, i128>,
    /// The `preferreddir` of special remotes that have one.
    pub preferreddirs: FastMap<Uuid, String>,
    /// The clusters (dead nodes left out).
    pub clusters: Clusters,
    /// The repositories uuid.log knows.
    pub known: BTreeSet<Uuid>,
    /// preferred-content.log
    pub preferred: BTreeMap<Uuid, String>,
    /// required-content.log
    pub required: BTreeMap<Uuid, String>,
    /// group-preferred-content.log
    pub group_wanted: BTreeMap<String, String>,
}

impl Facts {
    /// Loads the facts from the branch (journal included).
    pub fn load(branch: &Branch) -> Result<Facts, BranchError> {
        let read = |p: &str| branch.read(p);
        let group_log = group::parse(&read(GROUP_LOG)?);
        let trust_log = trust::parse(&read(TRUST_LOG)?);
        let mut facts = Facts::default();
        facts.set_groups(group::groups_by_uuid(&group_log));
        facts.trust = trust::trust_map(&trust_log)
            .into_iter()
            .filter(|(_, t)| *t != TrustLevel::Semitrusted)
            .collect();
        facts.numcopies = numcopies::get(&numcopies::parse(&read(NUMCOPIES_LOG)?));
        facts.mincopies = numcopies::get(&numcopies::parse(&read(MINCOPIES_LOG)?));
        facts.maxsizes = maxsize::max_sizes(&maxsize::parse(&read(MAX_SIZE_LOG)?))
            .into_iter()
            .collect();
        facts.preferreddirs = remote_config::config_map(&remote_config::parse(&read(REMOTE_LOG)?))
            .into_iter()
            .filter_map(|(u, c)| c.get("preferreddir").map(|d| (u, d.to_owned())))
            .collect();
        facts.clusters = branch.clusters()?;
        facts.known = uuid_log::descriptions(&uuid_log::parse(&read(UUID_LOG)?))
            .into_keys()
            .collect();
        facts.preferred = preferred_content::expressions(&preferred_content::parse(&read(
            PREFERRED_CONTENT_LOG,
        )?));
        facts.required =
            preferred_content::expressions(&preferred_content::parse(&read(REQUIRED_CONTENT_LOG)?));
        facts.group_wanted = preferred_content::group_expressions(&preferred_content::parse_group(
            &read(GROUP_PREFERRED_CONTENT_LOG)?,
        ));
        Ok(facts)
    }

    /// Sets every repository's groups, and the groups' members and pickers.
    pub fn set_groups(&mut self, groups_of: BTreeMap<Uuid, BTreeSet<String>>) {
        let mut members: HashMap<String, Vec<Uuid>> = HashMap::new();
        for (u, gs) in &groups_of {
            for g in gs {
                members.entry(g.clone()).or_default().push(u.clone());
            }
        }
        self.groups = members
            .into_iter()
            .map(|(g, mut ms)| {
                ms.sort();
                ms.dedup();
                let picker = Picker::new(&ms);
                (
                    g,
                    Arc::new(GroupInfo {
                        members: ms,
                        picker,
                    }),
                )
            })
            .collect();
        self.groups_of = groups_of;
    }

    /// A repository's trust level.
    pub fn trust_of(&self, u: &Uuid) -> TrustLevel {
        self.trust.get(u).copied().unwrap_or_default()
    }

    /// A group's members (none for an unknown group).
    pub fn members(&self, g: &str) -> &[Uuid] {
        self.groups
            .get(g)
            .map(|i| i.members.as_slice())
            .unwrap_or(&[])
    }

    /// Whether the repository is in the group.
    pub fn in_group(&self, u: &Uuid, g: &str) -> bool {
        self.groups_of.get(u).is_some_and(|gs| gs.contains(g))
    }

    /// The numcopies decisions use: the global setting, or 1.
    pub fn numcopies_or_default(&self) -> u64 {
        self.numcopies.unwrap_or(1)
    }
}
