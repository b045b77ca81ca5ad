//! The names of the logs at the top of the git-annex branch, and which
//! form each is written in.

/// Repository descriptions (old UUID-based form).
pub const UUID_LOG: &str = "uuid.log";
/// Special remote configurations (old UUID-based form).
pub const REMOTE_LOG: &str = "remote.log";
/// Trust levels (old UUID-based form).
pub const TRUST_LOG: &str = "trust.log";
/// Groups of repositories (old UUID-based form).
pub const GROUP_LOG: &str = "group.log";
/// Preferred content expressions of repositories (old UUID-based form).
pub const PREFERRED_CONTENT_LOG: &str = "preferred-content.log";
/// Required content expressions of repositories (old UUID-based form).
pub const REQUIRED_CONTENT_LOG: &str = "required-content.log";
/// Preferred content expressions of groups (`CLOCK GROUP EXPRESSION`).
pub const GROUP_PREFERRED_CONTENT_LOG: &str = "group-preferred-content.log";
/// The global numcopies setting (single value).
pub const NUMCOPIES_LOG: &str = "numcopies.log";
/// The global mincopies setting (single value).
pub const MINCOPIES_LOG: &str = "mincopies.log";
/// Repository-global git configuration (`git annex config`).
pub const CONFIG_LOG: &str = "config.log";
/// Scheduled jobs (old UUID-based form).
pub const SCHEDULE_LOG: &str = "schedule.log";
/// Last activity of repositories (old UUID-based form).
pub const ACTIVITY_LOG: &str = "activity.log";
/// Tuning differences of repositories (old UUID-based form).
pub const DIFFERENCE_LOG: &str = "difference.log";
/// Multicast addresses (old UUID-based form).
pub const MULTICAST_LOG: &str = "multicast.log";
/// Exports to special remotes (new UUID-based form).
pub const EXPORT_LOG: &str = "export.log";
/// Repositories a gateway proxies (new UUID-based form).
pub const PROXY_LOG: &str = "proxy.log";
/// Nodes of clusters (new UUID-based form).
pub const CLUSTER_LOG: &str = "cluster.log";
/// Maximum sizes of repositories (new UUID-based form).
pub const MAX_SIZE_LOG: &str = "maxsize.log";

/// The top-level logs in the old UUID-based form,
/// `UUID VALUE timestamp=CLOCK`.
pub const OLD_UUID_BASED_LOGS: [&str; 10] = [
    UUID_LOG,
    REMOTE_LOG,
    TRUST_LOG,
    GROUP_LOG,
    PREFERRED_CONTENT_LOG,
    REQUIRED_CONTENT_LOG,
    SCHEDULE_LOG,
    ACTIVITY_LOG,
    DIFFERENCE_LOG,
    MULTICAST_LOG,
];

/// The top-level logs in the new UUID-based form, `CLOCK UUID VALUE`.
pub const NEW_UUID_BASED_LOGS: [&str; 4] = [EXPORT_LOG, PROXY_LOG, CLUSTER_LOG, MAX_SIZE_LOG];

/// The other top-level logs.
pub const OTHER_TOP_LEVEL_LOGS: [&str; 4] = [
    NUMCOPIES_LOG,
    MINCOPIES_LOG,
    CONFIG_LOG,
    GROUP_PREFERRED_CONTENT_LOG,
];
