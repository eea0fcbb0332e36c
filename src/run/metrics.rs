//! Run metrics: the same counters for every stage (records, bytes, errors, batches,
//! commits), the end-to-end alert latency in an HdrHistogram, and a Prometheus text
//! endpoint (`GET /metrics`, served by `tiny_http`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Sets the value (a counter kept elsewhere, mirrored here).
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of a run.
#[derive(Debug)]
pub struct Metrics {
    pub source_records: Counter,
    pub source_bytes: Counter,
    pub worker_records: Counter,
    pub batches: Counter,
    pub commits: Counter,
    /// Rows made visible by commits, all tables.
    pub committed_rows: Counter,
    pub errors: Counter,
    /// OBD samples/reports not stored because their key (VIN, collection time, info type) was
    /// already stored (resends, repeats; conflicting ones included).
    pub obd_duplicates: Counter,
    /// OBD samples older than the allowed lateness (stored, not seen by the detectors).
    pub obd_late: Counter,
    /// When the run started; the two marks below are µs after it (0 = not yet).
    started: Instant,
    first_record_us: AtomicU64,
    last_record_us: AtomicU64,
    last_commit_us: AtomicU64,
    /// Alert latency, µs (1 µs … 1 h, 3 significant digits).
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            source_records: Counter::default(),
            source_bytes: Counter::default(),
            worker_records: Counter::default(),
            batches: Counter::default(),
            commits: Counter::default(),
            committed_rows: Counter::default(),
            errors: Counter::default(),
            obd_duplicates: Counter::default(),
            obd_late: Counter::default(),
            started: Instant::now(),
            first_record_us: AtomicU64::new(0),
            last_record_us: AtomicU64::new(0),
            last_commit_us: AtomicU64::new(0),
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
        }
    }
}

impl Metrics {
    fn since_start_us(&self) -> u64 {
        (self.started.elapsed().as_micros() as u64).max(1)
    }

    /// Marks a record the worker processed (the first and the last one are kept).
    pub fn mark_record(&self) {
        let now = self.since_start_us();
        let _ = self
            .first_record_us
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_record_us.store(now, Ordering::Relaxed);
    }

    /// Counts a commit that made `rows` rows visible, and marks its time when `rows > 0`.
    pub fn mark_commit(&self, rows: u64) {
        self.commits.inc();
        if rows > 0 {
            self.committed_rows.add(rows);
            self.last_commit_us
                .store(self.since_start_us(), Ordering::Relaxed);
        }
    }

    /// Seconds from the first record processed to the last commit that made rows visible:
    /// the span over which consume→commit throughput is measured.
    pub fn consume_to_commit_s(&self) -> Option<f64> {
        self.span_s(&self.last_commit_us)
    }

    /// Seconds from the first record processed to the last one.
    pub fn processing_s(&self) -> Option<f64> {
        self.span_s(&self.last_record_us)
    }

    fn span_s(&self, end: &AtomicU64) -> Option<f64> {
        let a = self.first_record_us.load(Ordering::Relaxed);
        let b = end.load(Ordering::Relaxed);
        (a > 0 && b > a).then(|| (b - a) as f64 / 1e6)
    }

    /// Records one alert latency in ms.
    pub fn record_latency_ms(&self, ms: u64) {
        if let Ok(mut h) = self.latency_us.lock() {
            let _ = h.record((ms * 1000).clamp(1, 3_600_000_000));
        }
    }

    /// (p50, p99) in ms, when any latency was recorded.
    pub fn latency_quantiles(&self) -> (Option<f64>, Option<f64>) {
        match self.latency_us.lock() {
            Ok(h) if !h.is_empty() => (
                Some(h.value_at_quantile(0.5) as f64 / 1000.0),
                Some(h.value_at_quantile(0.99) as f64 / 1000.0),
            ),
            _ => (None, None),
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let c = |s: &mut String, name: &str, help: &str, v: u64| {
            s.push_str(&format!("# HELP plumewatch_{name} {help}\n# TYPE plumewatch_{name} counter\nplumewatch_{name} {v}\n"));
        };
        c(
            &mut s,
            "source_records_total",
            "Records read by the sources.",
            self.source_records.get(),
        );
        c(
            &mut s,
            "source_bytes_total",
            "Bytes read by the sources.",
            self.source_bytes.get(),
        );
        c(
            &mut s,
            "worker_records_total",
            "Records processed by the worker.",
            self.worker_records.get(),
        );
        c(
            &mut s,
            "batches_total",
            "Batches processed.",
            self.batches.get(),
        );
        c(
            &mut s,
            "commits_total",
            "Table commits (manifest entries).",
            self.commits.get(),
        );
        c(
            &mut s,
            "committed_rows_total",
            "Rows made visible by table commits.",
            self.committed_rows.get(),
        );
        c(
            &mut s,
            "errors_total",
            "Source, sink and alert errors.",
            self.errors.get(),
        );
        c(
            &mut s,
            "obd_duplicates_total",
            "OBD samples/reports not stored: key (VIN, collection time, info type) already stored.",
            self.obd_duplicates.get(),
        );
        c(
            &mut s,
            "obd_late_total",
            "OBD samples older than the allowed lateness (stored, not seen by the detectors).",
            self.obd_late.get(),
        );
        if let Ok(h) = self.latency_us.lock() {
            s.push_str("# HELP plumewatch_alert_latency_seconds Input timestamp to alert delivery.\n# TYPE plumewatch_alert_latency_seconds summary\n");
            for q in [0.5, 0.9, 0.99] {
                s.push_str(&format!(
                    "plumewatch_alert_latency_seconds{{quantile=\"{q}\"}} {}\n",
                    h.value_at_quantile(q) as f64 / 1e6
                ));
            }
            s.push_str(&format!(
                "plumewatch_alert_latency_seconds_count {}\n",
                h.len()
            ));
        }
        s
    }
}

/// Serves `/metrics` on `addr` until `stop` is set.
pub fn serve(
    addr: &str,
    m: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("metrics endpoint {addr}: {e}"))?;
    Ok(std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(200)) {
                    let body = if req.url() == "/metrics" {
                        m.render()
                    } else {
                        "see /metrics\n".into()
                    };
                    let _ = req.respond(tiny_http::Response::from_string(body));
                }
            }
        })?)
}
