//! Prometheus metrics: requests by route and status, latency by route, and the runtime's
//! counters (commits, durability rounds, open objects, evictions), read at scrape time.

use std::sync::Mutex;

use cairn_runtime::RuntimeStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Replies released per durability round (group-commit batch sizes), copied from the runtime's
/// counters at scrape time.
#[derive(Clone, Debug, Default)]
struct RoundSizes {
    /// Per-bucket counts and the sum of replies; shared with the registry's copy.
    snapshot: std::sync::Arc<Mutex<([u64; 12], u64)>>,
}

impl prometheus_client::encoding::EncodeMetric for RoundSizes {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (counts, sum) = *self.snapshot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let buckets: Vec<(f64, u64)> = cairn_runtime::ROUND_SIZE_BOUNDS
            .iter()
            .map(|&b| b as f64)
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts)
            .collect();
        let count = counts.iter().sum();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum as f64, count, &buckets, None)
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

impl prometheus_client::metrics::TypedMetric for RoundSizes {
    const TYPE: prometheus_client::metrics::MetricType = prometheus_client::metrics::MetricType::Histogram;
}

/// The server's metrics registry.
pub(crate) struct Metrics {
    /// The registry, behind a mutex only because encoding needs `&Registry` while the families
    /// are updated through their own handles (cheap clones) without it.
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    runtime: RuntimeGauges,
    rooms: RoomGauges,
}

/// The room host's gauges and counters, copied at scrape time.
#[derive(Default)]
struct RoomGauges {
    active: Gauge,
    hibernated: Gauge,
    sockets: Gauge,
    connections: Gauge,
    messages_in: Gauge,
    messages_out: Gauge,
    auto_responses: Gauge,
    starts: Gauge,
    wakeups: Gauge,
    hibernations: Gauge,
    handler_errors: Gauge,
    alarm_runs: Gauge,
    alarm_retries: Gauge,
    alarm_failures: Gauge,
}

impl RoomGauges {
    fn register(&self, registry: &mut Registry) {
        let all: [(&str, &str, &Gauge); 14] = [
            ("rooms_active", "Rooms whose instance is in memory", &self.active),
            ("rooms_hibernated", "Rooms with open sockets and no instance", &self.hibernated),
            ("room_sockets", "Open room WebSockets", &self.sockets),
            ("room_connections", "Room WebSockets accepted (total)", &self.connections),
            ("room_messages_in", "Messages received from room WebSockets (total)", &self.messages_in),
            ("room_messages_out", "Frames sent to room WebSockets, per recipient (total)", &self.messages_out),
            (
                "room_auto_responses",
                "Messages answered by an auto-response without waking a room (total)",
                &self.auto_responses,
            ),
            ("room_starts", "Room instances started (total)", &self.starts),
            ("room_wakeups", "Room instances started for a hibernating room (total)", &self.wakeups),
            ("room_hibernations", "Room instances dropped for idleness (total)", &self.hibernations),
            ("room_handler_errors", "Room hooks that failed and were rolled back (total)", &self.handler_errors),
            ("room_alarm_runs", "Room alarm handlers run (total)", &self.alarm_runs),
            ("room_alarm_retries", "Room alarm failures scheduled for a retry (total)", &self.alarm_retries),
            ("room_alarm_failures", "Room alarms abandoned after their last retry (total)", &self.alarm_failures),
        ];
        for (name, help, gauge) in all {
            registry.register(name, help, gauge.clone());
        }
    }

    fn set(&self, s: &cairn_rooms::RoomStats) {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.active.set(g(s.active_rooms));
        self.hibernated.set(g(s.hibernated_rooms));
        self.sockets.set(g(s.sockets));
        self.connections.set(g(s.connections));
        self.messages_in.set(g(s.messages_in));
        self.messages_out.set(g(s.messages_out));
        self.auto_responses.set(g(s.auto_responses));
        self.starts.set(g(s.starts));
        self.wakeups.set(g(s.wakeups));
        self.hibernations.set(g(s.hibernations));
        self.handler_errors.set(g(s.handler_errors));
        self.alarm_runs.set(g(s.alarm_runs));
        self.alarm_retries.set(g(s.alarm_retries));
        self.alarm_failures.set(g(s.alarm_failures));
    }
}

#[derive(Default)]
struct RuntimeGauges {
    events: Gauge,
    commits: Gauge,
    sync_rounds: Gauge,
    fdatasync_calls: Gauge,
    syncfs_calls: Gauge,
    open_objects: Gauge,
    evictions: Gauge,
    round_sizes: RoundSizes,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cairn");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, method and status", requests.clone());
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        let runtime = RuntimeGauges::default();
        registry.register("events", "Events run (total)", runtime.events.clone());
        registry.register("commits", "Commits that wrote something (total)", runtime.commits.clone());
        registry.register(
            "sync_rounds",
            "Durability rounds, each shared by many commits (total)",
            runtime.sync_rounds.clone(),
        );
        registry.register("fdatasync_calls", "fdatasync calls (total)", runtime.fdatasync_calls.clone());
        registry.register("syncfs_calls", "syncfs calls (total)", runtime.syncfs_calls.clone());
        registry.register("open_objects", "Objects open now", runtime.open_objects.clone());
        registry.register(
            "evictions",
            "Objects closed to stay within the open-object budget (total)",
            runtime.evictions.clone(),
        );
        registry.register(
            "group_commit_size",
            "Events whose replies one durability round (one fsync cycle) released",
            runtime.round_sizes.clone(),
        );
        let rooms = RoomGauges::default();
        rooms.register(&mut registry);
        Metrics { registry: Mutex::new(registry), requests, latency, runtime, rooms }
    }

    /// Records one finished request.
    pub(crate) fn record(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { route: route.to_owned(), method: method.to_owned(), status })
            .inc();
        self.latency.get_or_create(&RouteLabels { route: route.to_owned() }).observe(seconds);
    }

    /// The text exposition, with the runtime's counters as of now.
    pub(crate) fn render(&self, stats: RuntimeStats, rooms: &cairn_rooms::RoomStats) -> String {
        self.rooms.set(rooms);
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let r = &self.runtime;
        r.events.set(g(stats.events));
        r.commits.set(g(stats.commits));
        r.sync_rounds.set(g(stats.sync_rounds));
        r.fdatasync_calls.set(g(stats.fdatasync_calls));
        r.syncfs_calls.set(g(stats.syncfs_calls));
        r.open_objects.set(g(stats.open_objects));
        r.evictions.set(g(stats.evictions));
        *r.round_sizes.snapshot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            (stats.round_sizes, stats.round_replies);
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Writing to a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}
