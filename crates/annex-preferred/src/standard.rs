//! git-annex's standard groups and their preferred content, as 10.20250416
//! has them (Types/StandardGroups.hs).

/// A standard group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StandardGroup {
    /// `client`: a repository on your computer.
    Client,
    /// `transfer`: distributes files to clients.
    Transfer,
    /// `backup`: backs up all files.
    Backup,
    /// `incrementalbackup`: backs up files not backed up elsewhere.
    IncrementalBackup,
    /// `smallarchive`: archives files located in "archive" directories.
    SmallArchive,
    /// `archive`: archives all files not archived elsewhere.
    FullArchive,
    /// `source`: moves files on to other repositories.
    Source,
    /// `manual`: only stores files you manually choose.
    Manual,
    /// `public`: publishes files located in an associated directory.
    Public,
    /// `unwanted`: remove content from this repository.
    Unwanted,
}

const NOT_ARCHIVED: &str = "not (copies=archive:1 or copies=smallarchive:1)";

fn last_resort(s: &str) -> String {
    format!("({s}) or approxlackingcopies=1")
}

impl StandardGroup {
    /// Every standard group, in git-annex's order.
    pub const ALL: [StandardGroup; 10] = [
        StandardGroup::Client,
        StandardGroup::Transfer,
        StandardGroup::Backup,
        StandardGroup::IncrementalBackup,
        StandardGroup::SmallArchive,
        StandardGroup::FullArchive,
        StandardGroup::Source,
        StandardGroup::Manual,
        StandardGroup::Public,
        StandardGroup::Unwanted,
    ];

    /// The group's name in group.log.
    pub fn name(self) -> &'static str {
        match self {
            StandardGroup::Client => "client",
            StandardGroup::Transfer => "transfer",
            StandardGroup::Backup => "backup",
            StandardGroup::IncrementalBackup => "incrementalbackup",
            StandardGroup::SmallArchive => "smallarchive",
            StandardGroup::FullArchive => "archive",
            StandardGroup::Source => "source",
            StandardGroup::Manual => "manual",
            StandardGroup::Public => "public",
            StandardGroup::Unwanted => "unwanted",
        }
    }

    /// The standard group of that name.
    pub fn from_name(name: &str) -> Option<StandardGroup> {
        StandardGroup::ALL.into_iter().find(|g| g.name() == name)
    }

    /// git-annex's one-line description of the group.
    pub fn description(self) -> &'static str {
        match self {
            StandardGroup::Client => "client: a repository on your computer",
            StandardGroup::Transfer => "transfer: distributes files to clients",
            StandardGroup::Backup => "full backup: backs up all files",
            StandardGroup::IncrementalBackup => {
                "incremental backup: backs up files not backed up elsewhere"
            }
            StandardGroup::SmallArchive => {
                "small archive: archives files located in \"archive\" directories"
            }
            StandardGroup::FullArchive => "full archive: archives all files not archived elsewhere",
            StandardGroup::Source => "file source: moves files on to other repositories",
            StandardGroup::Manual => "manual mode: only stores files you manually choose",
            StandardGroup::Public => "public: publishes files located in an associated directory",
            StandardGroup::Unwanted => "unwanted: remove content from this repository",
        }
    }

    /// The group's preferred content expression.
    pub fn expression(self) -> String {
        match self {
            StandardGroup::Client => last_resort(&format!(
                "include=* and ((exclude=*/archive/* and exclude=archive/*) or ({NOT_ARCHIVED}))"
            )),
            StandardGroup::Transfer => last_resort(&format!(
                "not (inallgroup=client and copies=client:2) and ({})",
                StandardGroup::Client.expression()
            )),
            StandardGroup::Backup => "anything".into(),
            StandardGroup::IncrementalBackup => {
                last_resort("(not copies=backup:1) and (not copies=incrementalbackup:1)")
            }
            StandardGroup::SmallArchive => last_resort(&format!(
                "(include=*/archive/* or include=archive/*) and ({})",
                StandardGroup::FullArchive.expression()
            )),
            StandardGroup::FullArchive => last_resort(NOT_ARCHIVED),
            StandardGroup::Source => "not (copies=1)".into(),
            StandardGroup::Manual => {
                format!("present and ({})", StandardGroup::Client.expression())
            }
            StandardGroup::Public => "inpreferreddir".into(),
            StandardGroup::Unwanted => "not anything".into(),
        }
    }

    /// The directory whose files the group wants (`archive` for the
    /// archives, the `preferreddir` config or `public` for public).
    pub fn associated_directory(self, preferreddir: Option<&str>) -> Option<String> {
        match self {
            StandardGroup::SmallArchive | StandardGroup::FullArchive => Some("archive".into()),
            StandardGroup::Public => Some(preferreddir.unwrap_or("public").to_owned()),
            _ => None,
        }
    }

    /// Whether only special remotes belong in the group.
    pub fn special_remote_only(self) -> bool {
        self == StandardGroup::Public
    }
}

/// The standard group of a repository: its one standard group, when it is
/// in exactly one.
pub fn standard_group_of<'a>(
    groups: impl IntoIterator<Item = &'a String>,
) -> Option<StandardGroup> {
    let mut found = groups
        .into_iter()
        .filter_map(|g| StandardGroup::from_name(g));
    match (found.next(), found.next()) {
        (Some(g), None) => Some(g),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_expression_parses() {
        for g in StandardGroup::ALL {
            crate::check_expression(&g.expression()).unwrap();
            assert_eq!(StandardGroup::from_name(g.name()), Some(g));
        }
    }

    #[test]
    fn expressions_as_git_annex_has_them() {
        assert_eq!(
            StandardGroup::Client.expression(),
            "(include=* and ((exclude=*/archive/* and exclude=archive/*) or (not (copies=archive:1 or copies=smallarchive:1)))) or approxlackingcopies=1"
        );
        assert_eq!(
            StandardGroup::IncrementalBackup.expression(),
            "((not copies=backup:1) and (not copies=incrementalbackup:1)) or approxlackingcopies=1"
        );
    }

    #[test]
    fn one_standard_group_only() {
        let gs: Vec<String> = vec!["client".into(), "mine".into()];
        assert_eq!(standard_group_of(&gs), Some(StandardGroup::Client));
        let gs: Vec<String> = vec!["client".into(), "backup".into()];
        assert_eq!(standard_group_of(&gs), None);
    }
}
