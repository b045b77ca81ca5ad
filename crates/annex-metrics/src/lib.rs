//! The counters a gateway keeps about itself, in the Prometheus text
//! exposition format (with the Prometheus project's own Rust client,
//! `prometheus-client`).
//!
//! One set of metrics per process ([`global`]): every crate feeds it
//! where the thing happens (the HTTP service its requests, the node pools
//! their sessions and health, the clusters their sizes) without passing
//! a handle through every constructor. `annex p2phttp --metrics-bind`
//! serves [`Metrics::encode`]; an application embedding the service adds
//! the same families to its own registry with [`Metrics::register`].

use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::{text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use prometheus_client;

/// Labels of `annex_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The API's name of the endpoint (`checkpresent`, `key`, ...), or
    /// `other` for a path that names none.
    pub endpoint: &'static str,
    /// The HTTP status answered.
    pub status: u16,
}

/// Labels naming an endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// As in [`RequestLabels::endpoint`].
    pub endpoint: &'static str,
}

/// Labels of `annex_transfer_bytes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransferLabels {
    /// `sent` or `received`.
    pub direction: &'static str,
    /// The UUID of the repository served or proxied.
    pub repository: String,
}

/// Labels naming a repository by UUID.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepositoryLabels {
    /// The repository's UUID.
    pub repository: String,
}

/// Labels of `annex_node_up`: a node by UUID, with its remote's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeNameLabels {
    /// The node's UUID.
    pub node: String,
    /// The name of the gateway's remote reaching it.
    pub name: String,
}

/// Labels naming a node by UUID.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// The node's UUID.
    pub node: String,
}

/// Sets gauges whose values live elsewhere, before an encoding.
type Refresher = Box<dyn Fn(&Metrics) + Send + Sync>;

/// Every metric of the process.
pub struct Metrics {
    /// `annex_http_requests_total{endpoint,status}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `annex_http_request_duration_seconds{endpoint}`.
    pub request_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    /// `annex_transfer_bytes_total{direction,repository}`.
    pub transfer_bytes: Family<TransferLabels, Counter>,
    /// `annex_transfers_in_flight{repository}`.
    pub transfers_in_flight: Family<RepositoryLabels, Gauge>,
    /// `annex_node_up{node,name}`: 1 up, 0 down.
    pub node_up: Family<NodeNameLabels, Gauge>,
    /// `annex_node_errors_total{node}`.
    pub node_errors: Family<NodeLabels, Counter>,
    /// `annex_repository_size_bytes{repository}`.
    pub repository_size: Family<RepositoryLabels, Gauge>,
    /// `annex_repository_maxsize_bytes{repository}`.
    pub repository_maxsize: Family<RepositoryLabels, Gauge>,
    /// `annex_locks_held`.
    pub locks_held: Gauge,
    /// `annex_ssh_sessions_open{node}`.
    pub sessions_open: Family<NodeLabels, Gauge>,
    /// `annex_ssh_sessions_waiting{node}`.
    pub sessions_waiting: Family<NodeLabels, Gauge>,
    /// Called before each encoding, to bring gauges read from elsewhere
    /// (the branch's sizes) up to date.
    refreshers: Mutex<Vec<Refresher>>,
}

fn duration_histogram() -> Histogram {
    // 100 µs to about 100 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A new set, all empty.
    pub fn new() -> Metrics {
        Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            transfer_bytes: Family::default(),
            transfers_in_flight: Family::default(),
            node_up: Family::default(),
            node_errors: Family::default(),
            repository_size: Family::default(),
            repository_maxsize: Family::default(),
            locks_held: Gauge::default(),
            sessions_open: Family::default(),
            sessions_waiting: Family::default(),
            refreshers: Mutex::new(Vec::new()),
        }
    }

    /// Adds every family to `registry` (they stay shared with this set:
    /// an application mounts them beside its own).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "annex_http_requests",
            "Requests answered, by API endpoint and HTTP status",
            self.requests.clone(),
        );
        registry.register(
            "annex_http_request_duration_seconds",
            "Time to answer a request (to its response's headers), by API endpoint",
            self.request_duration.clone(),
        );
        registry.register(
            "annex_transfer_bytes",
            "Content bytes sent and received, by repository served or proxied",
            self.transfer_bytes.clone(),
        );
        registry.register(
            "annex_transfers_in_flight",
            "Downloads and uploads under way, by repository",
            self.transfers_in_flight.clone(),
        );
        registry.register(
            "annex_node_up",
            "Whether a proxied or cluster node answers (1) or is down (0)",
            self.node_up.clone(),
        );
        registry.register(
            "annex_node_errors",
            "Failures reaching a node (connection refused, ssh exited, session broken)",
            self.node_errors.clone(),
        );
        registry.register(
            "annex_repository_size_bytes",
            "Content size recorded in the git-annex branch, with sizes reserved by uploads in flight",
            self.repository_size.clone(),
        );
        registry.register(
            "annex_repository_maxsize_bytes",
            "The repository's maxsize from maxsize.log",
            self.repository_maxsize.clone(),
        );
        registry.register(
            "annex_locks_held",
            "Content locks held for clients",
            self.locks_held.clone(),
        );
        registry.register(
            "annex_ssh_sessions_open",
            "ssh sessions open to a node (idle or in use)",
            self.sessions_open.clone(),
        );
        registry.register(
            "annex_ssh_sessions_waiting",
            "Requests waiting for a free ssh session to a node",
            self.sessions_waiting.clone(),
        );
    }

    /// Has `refresh` called before each [`encode`](Metrics::encode), to set
    /// gauges whose values live elsewhere.
    pub fn on_encode(&self, refresh: impl Fn(&Metrics) + Send + Sync + 'static) {
        self.refreshers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(refresh));
    }

    /// Brings the gauges set by [`on_encode`](Metrics::on_encode) up to
    /// date (an application serving its own registry calls it first).
    pub fn refresh(&self) {
        let refreshers = self.refreshers.lock().unwrap_or_else(|p| p.into_inner());
        for r in refreshers.iter() {
            r(self);
        }
    }

    /// The metrics in Prometheus' text exposition format (version
    /// 0.0.4, [`CONTENT_TYPE`]), with HELP and TYPE lines.
    pub fn encode(&self) -> String {
        self.refresh();
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut open_metrics = String::new();
        // Writing to a String cannot fail.
        let _ = text::encode_registry(&mut open_metrics, &registry);
        to_prometheus_text(&open_metrics)
    }

    /// Makes `repository` (a UUID the server serves) known, so that its
    /// transfers are counted in flight from the first one. Requests for
    /// UUIDs not known get series only once answered with success.
    pub fn register_repository(&self, repository: &str) {
        let _ = self.transfers_in_flight.get_or_create(&RepositoryLabels {
            repository: repository.to_owned(),
        });
    }

    /// Counts a failure reaching `node`.
    pub fn node_error(&self, node: &str) {
        self.node_errors
            .get_or_create(&NodeLabels {
                node: node.to_owned(),
            })
            .inc();
    }

    /// Sets whether `node` (reached by remote `name`) is up.
    pub fn set_node_up(&self, node: &str, name: &str, up: bool) {
        self.node_up
            .get_or_create(&NodeNameLabels {
                node: node.to_owned(),
                name: name.to_owned(),
            })
            .set(i64::from(up));
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text (as `prometheus-client` writes it) in Prometheus'
/// own text format: a counter's HELP and TYPE lines name its samples
/// (`X_total`), and there are no UNIT or EOF lines.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let described = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        if let Some((prefix, rest)) = described {
            let name = rest.split(' ').next().unwrap_or("");
            if counters.contains(name) && !name.ends_with("_total") {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total");
                out.push_str(&rest[name.len()..]);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_parses_with_the_names_dashboards_use() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                endpoint: "checkpresent",
                status: 200,
            })
            .inc_by(3);
        m.set_node_up("u1", "node1", false);
        m.request_duration
            .get_or_create(&EndpointLabels {
                endpoint: "checkpresent",
            })
            .observe(0.001);
        m.node_error("u1");
        let text = m.encode();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let requests = scrape
            .samples
            .iter()
            .find(|s| s.metric == "annex_http_requests_total")
            .unwrap();
        assert_eq!(requests.labels.get("endpoint"), Some("checkpresent"));
        assert_eq!(requests.labels.get("status"), Some("200"));
        assert!(matches!(requests.value, prometheus_parse::Value::Counter(v) if v == 3.0));
        let up = scrape
            .samples
            .iter()
            .find(|s| s.metric == "annex_node_up")
            .unwrap();
        assert_eq!(up.labels.get("name"), Some("node1"));
        assert!(matches!(up.value, prometheus_parse::Value::Gauge(v) if v == 0.0));
        assert!(text.contains("# TYPE annex_http_request_duration_seconds histogram"));
        assert!(text.contains("# HELP annex_locks_held"));
        assert!(!text.contains("# EOF"));
        assert!(text.contains("# TYPE annex_node_errors_total counter"));
    }
}
