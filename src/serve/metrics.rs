//! Server metrics (`prometheus-client`, like `run`'s): requests per route template and status,
//! a latency histogram per route template, open alert-board streams and failed TLS
//! handshakes per listener. Labels carry route templates (`/api/plates/{plate}`), never paths,
//! so no plate reaches the metrics.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Upper bounds (seconds) of the request latency buckets: a plate lookup is expected in
/// milliseconds, an XLSX export of a large list in seconds.
pub const REQUEST_BUCKETS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The server's metrics.
pub struct ServeMetrics {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    audit_rows: Counter,
    /// Open Server-Sent-Events connections (alert boards).
    sse_clients: prometheus_client::metrics::gauge::Gauge,
    /// Failed TLS handshakes by `endpoint` (`http`, `pg`).
    tls_failures: Family<Labels, Counter>,
    /// Queries running / waiting for a slot (`super::gate`).
    pub(crate) queries_running: prometheus_client::metrics::gauge::Gauge,
    pub(crate) queries_waiting: prometheus_client::metrics::gauge::Gauge,
    /// Queries answered "busy" without running, by `reason` (`queue_full`, `queue_timeout`).
    queries_rejected: Family<Labels, Counter>,
    registry: Registry,
}

fn new_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS_S)
}

impl Default for ServeMetrics {
    fn default() -> Self {
        let mut m = ServeMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(new_histogram),
            audit_rows: Counter::default(),
            sse_clients: Default::default(),
            tls_failures: Family::default(),
            queries_running: Default::default(),
            queries_waiting: Default::default(),
            queries_rejected: Family::default(),
            registry: Registry::with_prefix("plumewatch"),
        };
        m.register_on_own();
        m
    }
}

impl ServeMetrics {
    fn register_on_own(&mut self) {
        let mut r = std::mem::take(&mut self.registry);
        self.register(&mut r);
        self.registry = r;
    }

    /// Registers the server's metrics on `r` (a `plumewatch`-prefixed registry): so `run`
    /// can expose them on its own `/metrics` when it hosts the server.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "http_requests",
            "HTTP requests by route template and status.",
            self.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request handling time by route template, seconds.",
            self.latency.clone(),
        );
        r.register(
            "audit_rows",
            "Audit rows queued (one per request).",
            self.audit_rows.clone(),
        );
        r.register(
            "sse_clients",
            "Open alert-board event streams (GET /api/alerts/stream).",
            self.sse_clients.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed, by endpoint (http: the HTTPS listener, time-outs \
             included; pg: the PostgreSQL endpoint, a TLS error or a client closing mid-handshake).",
            self.tls_failures.clone(),
        );
        r.register(
            "queries_running",
            "Queries (lookups, lists, SQL statements) running now ([serve] max_concurrent_queries).",
            self.queries_running.clone(),
        );
        r.register(
            "queries_waiting",
            "Queries waiting for a slot now ([serve] max_queued_queries).",
            self.queries_waiting.clone(),
        );
        r.register(
            "queries_rejected",
            "Queries answered busy (HTTP 503, SQLSTATE 53300) without running, by reason \
             (queue_full, queue_timeout).",
            self.queries_rejected.clone(),
        );
    }

    /// The counter of queries the gate refused for `reason`, created at 0
    /// (`plumewatch_queries_rejected_total{reason}`).
    pub fn queries_rejected(&self, reason: &str) -> Counter {
        self.queries_rejected
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .clone()
    }

    /// The counter of failed TLS handshakes of `endpoint` (`http` or `pg`), created at 0 so
    /// `/metrics` shows it before the first failure (`plumewatch_tls_handshake_failures_total`).
    pub fn tls_handshake_failures(&self, endpoint: &str) -> Counter {
        self.tls_failures
            .get_or_create(&vec![("endpoint".to_string(), endpoint.to_string())])
            .clone()
    }

    /// Adds `delta` (+1 at connect, -1 when the stream ends) to the SSE clients gauge.
    pub fn sse_client(&self, delta: i64) {
        self.sse_clients.inc_by(delta);
    }

    /// Counts one request of `route` answered with `status` after `seconds`.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("route".to_string(), route.to_string()),
                ("status".to_string(), status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("route".to_string(), route.to_string())])
            .observe(seconds);
        self.audit_rows.inc();
    }

    /// The exposition (OpenMetrics text).
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Err(e) = encode(&mut s, &self.registry) {
            s = format!("# metrics encoding failed: {e}\n");
        }
        s
    }
}
