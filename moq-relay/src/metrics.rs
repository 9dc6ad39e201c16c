//! [`Metrics`]: the relay's counters in the Prometheus text exposition format (version
//! 0.0.4), as `GET /metrics` serves them.
//!
//! Nothing is counted here: every scrape takes one [`Relay::stats`] snapshot (one pass over
//! the sessions) and encodes it with `prometheus-client`. The counters themselves live where
//! the work happens (relaxed atomics in the relay, per-group-stream totals in each session),
//! so serving metrics adds nothing to the data path. `docs/relay.md`, "Metrics", lists them.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use moq_transport_quinn::ServerStats;

use crate::{Relay, RelayStats};

/// The `Content-Type` of [`Metrics::render`]'s text: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The metrics of one [`Relay`], rendered on demand.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use moq_relay::{Relay, RelayConfig, metrics::Metrics};
///
/// let relay = Relay::new(RelayConfig::default());
/// let text = Metrics::new(relay).render();
/// assert!(text.contains("# TYPE moq_relay_sessions gauge\nmoq_relay_sessions 0\n"));
/// assert!(text.contains("moq_relay_sessions_accepted_total 0\n"));
/// # }
/// ```
pub struct Metrics {
    registry: Registry,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of `relay` (a clone of the handle: it reads the same relay).
    pub fn new(relay: Relay) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RelayCollector(relay)));
        Self { registry }
    }

    /// The current values, as text in [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, and the collector returns no error of its own.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// How a metric reads its value from a snapshot.
enum Value {
    Gauge(fn(&RelayStats, &Relay) -> u64),
    Counter(fn(&RelayStats) -> u64),
}

/// One metric: the name without its unit and `_total` suffixes (the encoder appends them),
/// the help text, the unit, the value.
struct Def {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    value: Value,
}

/// Every metric but the refusals (a counter with a `reason` label, encoded on its own).
fn defs() -> [Def; 28] {
    use Value::{Counter, Gauge};
    let def = |name, help, unit, value| Def {
        name,
        help,
        unit,
        value,
    };
    let bytes = || Some(Unit::Bytes);
    [
        def(
            "moq_relay_sessions",
            "Sessions accepted and not yet ended",
            None,
            Gauge(|s, _| s.sessions as u64),
        ),
        def(
            "moq_relay_connections",
            "Connections admitted: the sessions and the connections still in their handshake (what --max-sessions bounds)",
            None,
            Gauge(|s, _| s.connections as u64),
        ),
        def(
            "moq_relay_announced_paths",
            "Distinct paths announced by sessions",
            None,
            Gauge(|s, _| s.announced as u64),
        ),
        def(
            "moq_relay_upstream_subscriptions",
            "Subscriptions the relay holds with publishers (one per track, shared by its subscribers)",
            None,
            Gauge(|s, _| s.tracks as u64),
        ),
        def(
            "moq_relay_downstream_subscriptions",
            "Subscriptions the relay serves to subscribers",
            None,
            Gauge(|s, _| s.subscribers as u64),
        ),
        def(
            "moq_relay_group_streams",
            "Group streams being received and sent",
            None,
            Gauge(|s, _| s.group_streams as u64),
        ),
        def(
            "moq_relay_memory_used",
            "Payload bytes held for forwarded tracks (cache and groups in flight), within the --max-memory budget",
            bytes(),
            Gauge(|s, _| s.memory as u64),
        ),
        def(
            "moq_relay_memory_limit",
            "The --max-memory budget for forwarded tracks",
            bytes(),
            Gauge(|_, relay| relay.max_memory() as u64),
        ),
        def(
            "moq_relay_sessions_accepted",
            "Sessions accepted (handshake done, access granted)",
            None,
            Counter(|s| s.accepted),
        ),
        def(
            "moq_relay_udp_received",
            "UDP bytes received by the sessions' connections (QUIC statistics, headers and retransmissions included)",
            bytes(),
            Counter(|s| s.bytes_in),
        ),
        def(
            "moq_relay_udp_sent",
            "UDP bytes sent by the sessions' connections (QUIC statistics, headers and retransmissions included)",
            bytes(),
            Counter(|s| s.bytes_out),
        ),
        def(
            "moq_relay_payload_received",
            "Frame payload bytes received from publishers on group streams (counted as each group stream ends)",
            bytes(),
            Counter(|s| s.payload_bytes_in),
        ),
        def(
            "moq_relay_payload_sent",
            "Frame payload bytes sent to subscribers on group streams (counted as each group stream ends)",
            bytes(),
            Counter(|s| s.payload_bytes_out),
        ),
        def(
            "moq_relay_frames_received",
            "Frames received whole from publishers (counted as each group stream ends)",
            None,
            Counter(|s| s.frames_in),
        ),
        def(
            "moq_relay_frames_sent",
            "Frames sent whole to subscribers (counted as each group stream ends)",
            None,
            Counter(|s| s.frames_out),
        ),
        def(
            "moq_relay_groups_received",
            "Group streams received from publishers",
            None,
            Counter(|s| s.groups_in),
        ),
        def(
            "moq_relay_groups_sent",
            "Group streams opened to subscribers",
            None,
            Counter(|s| s.groups_out),
        ),
        def(
            "moq_relay_groups_skipped",
            "Groups never sent to a subscriber because they left the cache before their turn (a slow subscriber skips ahead)",
            None,
            Counter(|s| s.groups_skipped),
        ),
        def(
            "moq_relay_groups_dropped",
            "Groups given up (expired, over the stream cap) or failed while sent to a subscriber",
            None,
            Counter(|s| s.groups_dropped),
        ),
        def(
            "moq_relay_group_drops_sent",
            "GroupDrop messages sent to subscribers (each reports skipped or dropped groups)",
            None,
            Counter(|s| s.group_drops_sent),
        ),
        def(
            "moq_relay_group_drops_received",
            "GroupDrop messages received from publishers",
            None,
            Counter(|s| s.group_drops_received),
        ),
        def(
            "moq_relay_cluster_enabled",
            "1 if the relay is a cluster member (--cluster-etcd), else 0",
            None,
            Gauge(|s, _| u64::from(s.cluster.enabled)),
        ),
        def(
            "moq_relay_cluster_registered",
            "1 while the relay holds its lease and its paths are written in the registry, else 0",
            None,
            Gauge(|s, _| u64::from(s.cluster.registered)),
        ),
        def(
            "moq_relay_cluster_peers",
            "Other relays the registry lists",
            None,
            Gauge(|s, _| s.cluster.peers as u64),
        ),
        def(
            "moq_relay_cluster_links",
            "Sessions to other relays established (one per relay that announces something)",
            None,
            Gauge(|s, _| s.cluster.links as u64),
        ),
        def(
            "moq_relay_cluster_remote_routes",
            "Paths routed to another relay",
            None,
            Gauge(|s, _| s.cluster.remote_routes as u64),
        ),
        def(
            "moq_relay_cluster_registrations",
            "Times the relay registered in the registry (a new lease, its paths written)",
            None,
            Counter(|s| s.cluster.registrations),
        ),
        def(
            "moq_relay_cluster_link_failures",
            "Connections to other relays that failed or broke (each is retried)",
            None,
            Counter(|s| s.cluster.link_failures),
        ),
    ]
}

/// Reads the relay at each scrape.
struct RelayCollector(Relay);

impl fmt::Debug for RelayCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayCollector").finish_non_exhaustive()
    }
}

impl Collector for RelayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let stats = self.0.stats();
        for def in defs() {
            match def.value {
                Value::Gauge(read) => {
                    let gauge = ConstGauge::new(read(&stats, &self.0));
                    let metric = encoder.encode_descriptor(
                        def.name,
                        def.help,
                        def.unit.as_ref(),
                        gauge.metric_type(),
                    )?;
                    gauge.encode(metric)?;
                }
                Value::Counter(read) => {
                    let counter = ConstCounter::new(read(&stats));
                    let metric = encoder.encode_descriptor(
                        def.name,
                        def.help,
                        def.unit.as_ref(),
                        counter.metric_type(),
                    )?;
                    counter.encode(metric)?;
                }
            }
        }
        let mut refused = encoder.encode_descriptor(
            "moq_relay_sessions_refused",
            "Connections refused when they arrived, by reason: limit (a relay-wide limit, code 11) or unauthorized (the access control, code 16)",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            ("limit", stats.refused),
            ("unauthorized", stats.unauthorized),
        ] {
            let labels = [("reason", reason)];
            ConstCounter::new(value).encode(refused.encode_family(&labels)?)?;
        }
        self.encode_endpoints(&mut encoder)
    }
}

impl RelayCollector {
    /// The UDP endpoints sharing the port (`--endpoints`), summed over the servers served.
    fn encode_endpoints(&self, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let servers = self.0.server_stats();
        let mut connections: Vec<u64> = Vec::new();
        for server in &servers {
            let counts = server.connections_per_endpoint();
            connections.resize(connections.len().max(counts.len()), 0);
            for (total, count) in connections.iter_mut().zip(counts) {
                *total += count;
            }
        }
        let mut family = encoder.encode_descriptor(
            "moq_relay_endpoint_connections",
            "Connections that arrived at each UDP endpoint sharing the port (--endpoints), counted as the endpoint hands them over, before their handshake: how the kernel spreads clients",
            None,
            MetricType::Counter,
        )?;
        for (index, value) in connections.into_iter().enumerate() {
            let labels = [("endpoint", index.to_string())];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        for (name, help, read) in [
            (
                "moq_relay_forwarded_datagrams",
                "Datagrams that reached another endpoint's socket and were passed to the endpoint owning their connection (clients whose address changed)",
                ServerStats::forwarded_datagrams as fn(&ServerStats) -> u64,
            ),
            (
                "moq_relay_forward_drops",
                "Datagrams for another endpoint dropped instead of passed on: its inbox full, or the endpoint gone",
                ServerStats::forward_drops,
            ),
        ] {
            let counter = ConstCounter::new(servers.iter().map(read).sum::<u64>());
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}
