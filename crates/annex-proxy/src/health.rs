//! Whether each node answers: a node that fails to be reached
//! (connection refused, ssh exits, its session breaks, a timeout) is
//! marked down at once, and probed again with backoff; while down,
//! requests to it fail at once instead of waiting on it, clusters skip it
//! for downloads and leave it out of uploads, and `annex_node_up` says
//! so. When it answers again (a probe, or a request let through when a
//! probe is due) it is up again, without a restart. Each change of state
//! is logged once, not each failed request.
//!
//! One health per node UUID in the process, shared by every pool that
//! reaches the node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use annex_protocol::{RepoError, Uuid};

/// The first wait before a down node is tried again; doubled at each
/// failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between two tries of a down node.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Whether a node answers, and when to try it again if not.
#[derive(Debug)]
pub struct NodeHealth {
    uuid: Uuid,
    name: String,
    up: AtomicBool,
    probing: AtomicBool,
    down: Mutex<Down>,
}

#[derive(Debug)]
struct Down {
    since: Option<Instant>,
    backoff: Duration,
    next_try: Option<Instant>,
}

/// The health of `uuid` (reached by remote `name`), shared by every
/// caller in the process; a node first asked about is up.
pub fn of(uuid: &Uuid, name: &str) -> Arc<NodeHealth> {
    type All = HashMap<(Uuid, String), Arc<NodeHealth>>;
    static ALL: OnceLock<Mutex<All>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    all.entry((uuid.clone(), name.to_owned()))
        .or_insert_with(|| {
            annex_metrics::global().set_node_up(uuid.as_str(), name, true);
            Arc::new(NodeHealth {
                uuid: uuid.clone(),
                name: name.to_owned(),
                up: AtomicBool::new(true),
                probing: AtomicBool::new(false),
                down: Mutex::new(Down {
                    since: None,
                    backoff: FIRST_BACKOFF,
                    next_try: None,
                }),
            })
        })
        .clone()
}

/// Whether `e`, from reaching a node or from a request to it, says the
/// node cannot be reached (rather than being the node's answer).
pub fn is_unreachable(e: &RepoError) -> bool {
    match e {
        RepoError::Refused(_) | RepoError::Remote(_) | RepoError::Unsupported(_) => false,
        RepoError::Codec(_) | RepoError::Protocol(_) => true,
        RepoError::Io(io) => is_unreachable_io(io.kind()),
        RepoError::Other(text) => text.contains("timed out") || text.contains("cannot connect"),
        RepoError::Failed { context, source } => {
            context.contains("cannot connect")
                || source
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| is_unreachable_io(io.kind()))
                || source
                    .downcast_ref::<RepoError>()
                    .is_some_and(is_unreachable)
        }
    }
}

/// Whether `e`, from a request to a node, says that no connection to the
/// node could be made (refused, timed out): not a session that broke,
/// which is replaced by a new one, whose failure then tells.
pub fn is_connect_failure(e: &RepoError) -> bool {
    use std::io::ErrorKind::*;
    let refused = |kind| {
        matches!(
            kind,
            ConnectionRefused | TimedOut | HostUnreachable | NetworkUnreachable
        )
    };
    match e {
        RepoError::Io(io) => refused(io.kind()),
        RepoError::Other(text) => {
            text.contains("timed out connecting") || text.contains("cannot connect")
        }
        RepoError::Failed { context, source } => {
            context.contains("cannot connect")
                || source
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| refused(io.kind()))
                || source
                    .downcast_ref::<RepoError>()
                    .is_some_and(is_connect_failure)
        }
        _ => false,
    }
}

fn is_unreachable_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
    )
}

impl NodeHealth {
    /// The node.
    pub fn uuid(&self) -> &Uuid {
        &self.uuid
    }

    /// Whether the node answered last time it was tried.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Whether the node is down and not due to be tried again yet: a
    /// request to it then fails at once.
    pub fn is_resting(&self) -> bool {
        if self.is_up() {
            return false;
        }
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.next_try.is_some_and(|t| Instant::now() < t)
    }

    /// The error a request to a resting node fails with.
    pub fn down_error(&self) -> RepoError {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        let since = down.since.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
        let next = down
            .next_try
            .map(|t| t.saturating_duration_since(Instant::now()).as_secs_f64())
            .unwrap_or(0.0);
        RepoError::Other(format!(
            "{} is down (not answering for {since:.1} s; tried again in {next:.1} s)",
            self.name
        ))
    }

    /// Records that the node could not be reached: down at once, tried
    /// again after the backoff.
    pub fn failed(&self, e: &RepoError) {
        annex_metrics::global().node_error(self.uuid.as_str());
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if self.up.swap(false, Ordering::AcqRel) {
            down.since = Some(now);
            down.backoff = FIRST_BACKOFF;
            annex_metrics::global().set_node_up(self.uuid.as_str(), &self.name, false);
            tracing::warn!(node = %self.uuid, name = %self.name, error = %e, "node marked down");
        } else {
            down.backoff = (down.backoff * 2).min(MAX_BACKOFF);
        }
        down.next_try = Some(now + down.backoff);
    }

    /// Records that the node answered: up again if it was down.
    pub fn answered(&self) {
        if self.up.load(Ordering::Acquire) {
            return;
        }
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if !self.up.swap(true, Ordering::AcqRel) {
            annex_metrics::global().set_node_up(self.uuid.as_str(), &self.name, true);
            let secs = down.since.map(|s| s.elapsed().as_secs()).unwrap_or(0);
            tracing::warn!(node = %self.uuid, name = %self.name, down_for_s = secs, "node back up");
        }
    }

    /// Whether a probe should start now: the node is down, due to be
    /// tried, and no probe is running. The caller probes and then calls
    /// [`NodeHealth::probe_done`].
    pub fn start_probe(&self) -> bool {
        if self.is_up() || self.is_resting() {
            return false;
        }
        !self.probing.swap(true, Ordering::AcqRel)
    }

    /// A probe started by [`NodeHealth::start_probe`] ended.
    pub fn probe_done(&self) {
        self.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_marks_down_at_once_and_an_answer_brings_it_back() {
        let u = Uuid::new_v4();
        let h = of(&u, "node1");
        assert!(h.is_up());
        h.failed(&RepoError::Io(std::io::ErrorKind::ConnectionRefused.into()));
        assert!(!h.is_up());
        assert!(h.is_resting(), "tried again only after the backoff");
        assert!(!h.start_probe());
        assert!(Arc::ptr_eq(&h, &of(&u, "node1")), "one health per node");
        h.answered();
        assert!(h.is_up());
        assert!(!h.is_resting());
    }

    #[test]
    fn answers_from_the_node_are_not_unreachability() {
        assert!(!is_unreachable(&RepoError::Remote("no".into())));
        assert!(!is_unreachable(&RepoError::Refused("no".into())));
        assert!(is_unreachable(&RepoError::Io(
            std::io::ErrorKind::ConnectionRefused.into()
        )));
        let refused = RepoError::context(
            "cannot connect to localhost:1",
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert!(is_unreachable(&refused));
        assert!(is_connect_failure(&refused));
        // A session that broke is replaced; only a new one failing tells.
        assert!(!is_connect_failure(&RepoError::Protocol("eof".into())));
    }
}
