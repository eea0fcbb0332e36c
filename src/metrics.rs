//! Run metrics: the same counters for every stage (records, bytes, errors, batches,
//! commits), rows committed per table, quarantined records per stream and field, the
//! end-to-end alert latency, per-partition source gauges, and a `GET /metrics` endpoint
//! (served by `tiny_http`). The metrics are `prometheus-client` metrics in one registry,
//! exported in the OpenMetrics text format (which Prometheus scrapes).
//!
//! Alert latency runs from the Kafka message timestamp (CreateTime, set by the producer, or
//! LogAppendTime when the topic is configured so) to the alert leaving plumewatch. It is
//! measured only for messages whose timestamp lies in a sane window around now
//! ([`LatencyWindow`]); the others are counted by reason (`missing`, `old`, `future`) and
//! never clamped into the histogram. The quantiles on `/metrics` cover a recent window (the
//! last `window_s` seconds), so an old burst does not stay in the p99 for the rest of the
//! run; a Prometheus histogram (cumulative buckets) is exported as well, which, unlike a
//! summary, can be aggregated across instances.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as PCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram as PHistogram;
use prometheus_client::registry::Registry;

/// Label set of a metric family: (name, value) pairs.
type Labels = Vec<(String, String)>;

/// A monotonically increasing counter (a `prometheus-client` counter: clones share it).
#[derive(Clone, Debug, Default)]
pub struct Counter(PCounter<u64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.get()
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
    /// Alert latency of the whole run (sane timestamps only), µs (run summary quantiles).
    latency_us: Mutex<Histogram<u64>>,
    /// Alert latency over the recent window, µs.
    latency_recent: Mutex<RecentHistogram>,
    /// The exported latency histogram, seconds (buckets [`LATENCY_BUCKETS_S`]).
    latency_hist: PHistogram,
    /// Recent-window latency quantiles (label `quantile`), seconds; set when rendered.
    latency_recent_gauge: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Rows made visible by commits, per table (label `table`).
    committed_rows_by_table: Family<Labels, PCounter<u64>>,
    /// Quarantined records per stream and field (labels `stream`, `field`; `record` when
    /// the reason names no field).
    quarantined: Family<Labels, PCounter<u64>>,
    /// Per-partition gauges (label `partition`); set when rendered.
    partition_lag: Family<Labels, Gauge>,
    partition_idle_s: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Every metric above, for the exposition.
    registry: Registry,
    /// Alerts whose input timestamp was missing (none, or negative such as Kafka's -1).
    pub latency_skipped_missing: Counter,
    /// Alerts whose input timestamp was older than `max_age_s` (replays, backlogs, bad clocks).
    pub latency_skipped_old: Counter,
    /// Alerts whose input timestamp was more than `max_future_ms` ahead of now.
    pub latency_skipped_future: Counter,
    latency_window: LatencyWindow,
    /// Source positions the broker no longer had (`source_reset` rows written).
    pub source_resets: Counter,
    /// Times the run dropped uncommitted work and started over from the manifest (lost
    /// assignment, out-of-range fetch, re-created topic, fatal consumer error).
    pub source_restarts: Counter,
    /// Partitions the watchdog saw stop fetching while their high watermark grew.
    pub partition_stalls: Counter,
    /// Assigned Kafka partitions: (`topic/partition`, high watermark, committed offset,
    /// seconds since the last message).
    partitions: Mutex<Vec<PartitionGauge>>,
}

/// One assigned partition's gauges: key, high watermark, committed (manifest) offset,
/// seconds since its last message (or since assignment).
pub type PartitionGauge = (String, Option<i64>, Option<i64>, f64);

/// Upper bounds (seconds) of the exported latency histogram buckets.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Which input timestamps count for alert latency, and over how long the quantiles run.
/// Set in the run config's `[metrics]` (`latency_max_age_s`, `latency_max_future_ms`,
/// `latency_window_s`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyWindow {
    /// A timestamp older than this (seconds before now) is counted as `old`, not measured.
    pub max_age_s: u64,
    /// A timestamp more than this many ms after now is counted as `future` (clock skew
    /// between producer and plumewatch up to this bound is measured as 0 ms).
    pub max_future_ms: u64,
    /// The recent window of the `/metrics` quantiles, seconds (at least 2).
    pub window_s: u64,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow {
            max_age_s: 600,
            max_future_ms: 1000,
            window_s: 60,
        }
    }
}

/// How one alert's input timestamp was classed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencySample {
    /// Measured: latency in µs.
    Measured(u64),
    Missing,
    Old,
    Future,
}

impl LatencyWindow {
    /// Classes an input timestamp `ts_ms` (Unix ms) seen at `now_ms`.
    pub fn classify(&self, ts_ms: Option<i64>, now_ms: i64) -> LatencySample {
        let Some(ts) = ts_ms.filter(|t| *t >= 0) else {
            return LatencySample::Missing;
        };
        let d = now_ms.saturating_sub(ts);
        if d < 0 {
            if d.unsigned_abs() > self.max_future_ms {
                LatencySample::Future
            } else {
                LatencySample::Measured(1)
            }
        } else if d as u64 > self.max_age_s.saturating_mul(1000) {
            LatencySample::Old
        } else {
            LatencySample::Measured((d as u64).saturating_mul(1000).max(1))
        }
    }
}

/// A histogram over the last `slots × slot_s` seconds: one HdrHistogram per slot, rotated as
/// time passes; quantiles merge the live slots.
#[derive(Debug)]
struct RecentHistogram {
    slots: Vec<(u64, Histogram<u64>)>,
    slot_s: u64,
}

const RECENT_SLOTS: usize = 6;

fn latency_histogram(max_us: u64) -> Histogram<u64> {
    Histogram::new_with_bounds(1, max_us.max(2), 3).expect("valid histogram bounds")
}

impl RecentHistogram {
    fn new(window_s: u64, max_us: u64) -> Self {
        let slot_s = (window_s / RECENT_SLOTS as u64).max(1);
        RecentHistogram {
            slots: (0..RECENT_SLOTS)
                .map(|_| (u64::MAX, latency_histogram(max_us)))
                .collect(),
            slot_s,
        }
    }

    fn record(&mut self, now_s: u64, us: u64) {
        let epoch = now_s / self.slot_s;
        let i = (epoch % RECENT_SLOTS as u64) as usize;
        let (e, h) = &mut self.slots[i];
        if *e != epoch {
            h.reset();
            *e = epoch;
        }
        let hi = h.high();
        let _ = h.record(us.min(hi));
    }

    fn merged(&self, now_s: u64) -> Option<Histogram<u64>> {
        let epoch = now_s / self.slot_s;
        let mut out: Option<Histogram<u64>> = None;
        for (e, h) in &self.slots {
            if *e == u64::MAX || *e > epoch || epoch - *e >= RECENT_SLOTS as u64 || h.is_empty() {
                continue;
            }
            match out.as_mut() {
                Some(o) => {
                    let _ = o.add(h);
                }
                None => out = Some(h.clone()),
            }
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_latency_window(LatencyWindow::default())
    }
}

impl Metrics {
    /// Metrics whose alert latency uses `w`, every metric registered for `/metrics`.
    pub fn with_latency_window(w: LatencyWindow) -> Self {
        let max_us = w.max_age_s.max(1).saturating_mul(1_000_000);
        let mut m = Metrics {
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
            latency_us: Mutex::new(latency_histogram(max_us)),
            latency_recent: Mutex::new(RecentHistogram::new(w.window_s.max(2), max_us)),
            latency_hist: PHistogram::new(LATENCY_BUCKETS_S),
            latency_recent_gauge: Family::default(),
            committed_rows_by_table: Family::default(),
            quarantined: Family::default(),
            partition_lag: Family::default(),
            partition_idle_s: Family::default(),
            registry: Registry::with_prefix("plumewatch"),
            latency_skipped_missing: Counter::default(),
            latency_skipped_old: Counter::default(),
            latency_skipped_future: Counter::default(),
            latency_window: w,
            source_resets: Counter::default(),
            source_restarts: Counter::default(),
            partition_stalls: Counter::default(),
            partitions: Mutex::new(Vec::new()),
        };
        m.register();
        m
    }

    /// Registers every metric (clones share their values) under the `plumewatch_` prefix.
    fn register(&mut self) {
        let r = &mut self.registry;
        for (name, help, c) in [
            (
                "source_records",
                "Records read by the sources.",
                &self.source_records,
            ),
            (
                "source_bytes",
                "Bytes read by the sources.",
                &self.source_bytes,
            ),
            (
                "worker_records",
                "Records processed by the worker.",
                &self.worker_records,
            ),
            ("batches", "Batches processed.", &self.batches),
            (
                "commits",
                "Table commits (manifest entries).",
                &self.commits,
            ),
            (
                "committed_rows",
                "Rows made visible by table commits, all tables.",
                &self.committed_rows,
            ),
            ("errors", "Source, sink and alert errors.", &self.errors),
            (
                "obd_duplicates",
                "OBD samples/reports not stored: key (VIN, collection time, info type) already stored.",
                &self.obd_duplicates,
            ),
            (
                "obd_late",
                "OBD samples older than the allowed lateness (stored, not seen by the detectors).",
                &self.obd_late,
            ),
            (
                "source_resets",
                "Source positions the broker no longer had (rows of source_reset).",
                &self.source_resets,
            ),
            (
                "source_restarts",
                "Restarts from the manifest after a lost assignment, out-of-range fetch, re-created topic or fatal consumer error.",
                &self.source_restarts,
            ),
            (
                "partition_stalls",
                "Partitions that stopped fetching while their high watermark grew.",
                &self.partition_stalls,
            ),
        ] {
            r.register(name, help, c.0.clone());
        }
        r.register(
            "alert_latency_seconds",
            "Input timestamp to alert delivery (sane timestamps only).",
            self.latency_hist.clone(),
        );
        r.register(
            "alert_latency_recent_seconds",
            format!(
                "Alert latency quantiles over the last {} s.",
                self.latency_window.window_s
            ),
            self.latency_recent_gauge.clone(),
        );
        let skipped: Family<Labels, PCounter<u64>> = Family::default();
        for (reason, c) in [
            ("missing", &mut self.latency_skipped_missing),
            ("old", &mut self.latency_skipped_old),
            ("future", &mut self.latency_skipped_future),
        ] {
            *c = Counter(
                skipped
                    .get_or_create(&vec![("reason".to_string(), reason.to_string())])
                    .clone(),
            );
        }
        r.register(
            "alert_latency_skipped",
            "Alerts whose input timestamp was not measured, by reason.",
            skipped,
        );
        r.register(
            "committed_rows_by_table",
            "Rows made visible by table commits, per table.",
            self.committed_rows_by_table.clone(),
        );
        r.register(
            "quarantined",
            "Records sent to the quarantine table, per stream and field.",
            self.quarantined.clone(),
        );
        r.register(
            "partition_lag",
            "Records behind: high watermark - committed (manifest) offset.",
            self.partition_lag.clone(),
        );
        r.register(
            "partition_seconds_since_last_message",
            "Seconds since the partition's last message (or its assignment).",
            self.partition_idle_s.clone(),
        );
    }

    /// Adds `rows` committed rows of `table`.
    pub fn add_committed_rows(&self, table: &str, rows: u64) {
        self.committed_rows_by_table
            .get_or_create(&vec![("table".to_string(), table.to_string())])
            .inc_by(rows);
    }

    /// Adds `n` quarantined records of `stream` whose reason names `field` (`record` when
    /// none).
    pub fn add_quarantined(&self, stream: &str, field: &str, n: u64) {
        self.quarantined
            .get_or_create(&vec![
                ("stream".to_string(), stream.to_string()),
                ("field".to_string(), field.to_string()),
            ])
            .inc_by(n);
    }

    /// Quarantined records counted for (`stream`, `field`).
    pub fn quarantined(&self, stream: &str, field: &str) -> u64 {
        self.quarantined
            .get_or_create(&vec![
                ("stream".to_string(), stream.to_string()),
                ("field".to_string(), field.to_string()),
            ])
            .get()
    }

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

    /// Records the latency of one alert whose input carried timestamp `ts_ms` (Unix ms,
    /// `None` when the source has none), delivered at `now_ms`. Timestamps outside the sane
    /// window are counted by reason and not measured. Returns how the sample was classed.
    pub fn record_alert_latency(&self, ts_ms: Option<i64>, now_ms: i64) -> LatencySample {
        let c = self.latency_window.classify(ts_ms, now_ms);
        match c {
            LatencySample::Missing => self.latency_skipped_missing.inc(),
            LatencySample::Old => self.latency_skipped_old.inc(),
            LatencySample::Future => self.latency_skipped_future.inc(),
            LatencySample::Measured(us) => {
                if let Ok(mut h) = self.latency_us.lock() {
                    let hi = h.high();
                    let _ = h.record(us.min(hi));
                }
                let now_s = self.started.elapsed().as_secs();
                if let Ok(mut r) = self.latency_recent.lock() {
                    r.record(now_s, us);
                }
                self.latency_hist.observe(us as f64 / 1e6);
            }
        }
        c
    }

    /// (p50, p99) in ms over the whole run (sane timestamps only), when any was measured.
    pub fn latency_quantiles(&self) -> (Option<f64>, Option<f64>) {
        match self.latency_us.lock() {
            Ok(h) if !h.is_empty() => (
                Some(h.value_at_quantile(0.5) as f64 / 1000.0),
                Some(h.value_at_quantile(0.99) as f64 / 1000.0),
            ),
            _ => (None, None),
        }
    }

    /// (p50, p99) in ms over the recent window, when any was measured in it.
    pub fn recent_latency_quantiles(&self) -> (Option<f64>, Option<f64>) {
        let now_s = self.started.elapsed().as_secs();
        match self
            .latency_recent
            .lock()
            .ok()
            .and_then(|r| r.merged(now_s))
        {
            Some(h) => (
                Some(h.value_at_quantile(0.5) as f64 / 1000.0),
                Some(h.value_at_quantile(0.99) as f64 / 1000.0),
            ),
            None => (None, None),
        }
    }

    /// Alerts whose latency was not measured: (missing, old, future).
    pub fn latency_skipped(&self) -> (u64, u64, u64) {
        (
            self.latency_skipped_missing.get(),
            self.latency_skipped_old.get(),
            self.latency_skipped_future.get(),
        )
    }

    /// Replaces the per-partition gauges (the Kafka source, once a second).
    pub fn set_partitions(&self, p: Vec<PartitionGauge>) {
        if let Ok(mut g) = self.partitions.lock() {
            *g = p;
        }
    }

    /// Drops the per-partition gauges (the source stopped).
    pub fn clear_partitions(&self) {
        self.set_partitions(Vec::new());
    }

    /// The per-partition gauges.
    pub fn partitions(&self) -> Vec<PartitionGauge> {
        self.partitions
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// The exposition (OpenMetrics text): the gauges computed at scrape time (recent latency
    /// quantiles, per-partition lag and idle time) are set first.
    /// Registers more metrics on this exposition before the `Metrics` is shared: the server
    /// that `run` hosts (`[serve]`) adds its request and SSE-client metrics
    /// (`serve::metrics::ServeMetrics::register`), so one scrape of `[metrics] listen` has both.
    pub fn register_more(&mut self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry);
    }

    pub fn render(&self) -> String {
        self.latency_recent_gauge.clear();
        let (p50, p99) = self.recent_latency_quantiles();
        for (q, v) in [("0.5", p50), ("0.99", p99)] {
            if let Some(v) = v {
                self.latency_recent_gauge
                    .get_or_create(&vec![("quantile".to_string(), q.to_string())])
                    .set(v / 1000.0);
            }
        }
        self.partition_lag.clear();
        self.partition_idle_s.clear();
        for (k, hi, c, idle) in self.partitions() {
            let l = vec![("partition".to_string(), k)];
            if let (Some(h), Some(c)) = (hi, c) {
                self.partition_lag.get_or_create(&l).set((h - c).max(0));
            }
            self.partition_idle_s.get_or_create(&l).set(idle);
        }
        let mut s = String::new();
        if let Err(e) = encode(&mut s, &self.registry) {
            s = format!("# metrics encoding failed: {e}\n");
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
                    let resp = if req.url() == "/metrics" {
                        let mut r = tiny_http::Response::from_string(m.render());
                        if let Ok(h) = tiny_http::Header::from_bytes(
                            &b"Content-Type"[..],
                            &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                        ) {
                            r.add_header(h);
                        }
                        r
                    } else {
                        tiny_http::Response::from_string("see /metrics\n")
                    };
                    let _ = req.respond(resp);
                }
            }
        })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_outside_the_sane_window_are_counted_not_clamped() {
        let m = Metrics::default();
        let now = 1_762_567_200_000; // 2025-11-08T02:00:00Z
        // 2 h old, 1 ms after the epoch, 5 s in the future, -1 (Kafka "no timestamp"), none.
        for ts in [
            Some(now - 7_200_000),
            Some(1),
            Some(now + 5_000),
            Some(-1),
            None,
        ] {
            m.record_alert_latency(ts, now);
        }
        assert_eq!(m.latency_skipped(), (2, 2, 1));
        assert_eq!(m.latency_quantiles(), (None, None));
        // 40 ms and 250 ms are measured; 300 ms of producer clock skew ahead counts as ~0.
        assert_eq!(
            m.record_alert_latency(Some(now - 40), now),
            LatencySample::Measured(40_000)
        );
        m.record_alert_latency(Some(now - 250), now);
        assert_eq!(
            m.record_alert_latency(Some(now + 300), now),
            LatencySample::Measured(1)
        );
        let (p50, p99) = m.latency_quantiles();
        assert!((p50.unwrap() - 40.0).abs() < 0.1, "{p50:?}");
        assert!((p99.unwrap() - 250.0).abs() < 0.5, "{p99:?}");
        let text = m.render();
        assert!(
            text.contains("plumewatch_alert_latency_seconds_bucket{le=\"0.05\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("plumewatch_alert_latency_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("plumewatch_alert_latency_skipped_total{reason=\"old\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("plumewatch_alert_latency_skipped_total{reason=\"missing\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn families_per_table_stream_and_partition_in_the_exposition() {
        let m = Metrics::default();
        m.add_committed_rows("rsd_passes", 40);
        m.add_committed_rows("rsd_passes", 2);
        m.add_committed_rows("quarantine", 3);
        m.add_quarantined("rsd", "fuel", 2);
        m.add_quarantined("rsd", "record", 1);
        m.source_records.add(45);
        m.set_partitions(vec![
            ("plates/0".into(), Some(120), Some(100), 1.5),
            ("plates/1".into(), None, Some(7), 0.25),
        ]);
        let text = m.render();
        for line in [
            "plumewatch_committed_rows_by_table_total{table=\"rsd_passes\"} 42\n",
            "plumewatch_committed_rows_by_table_total{table=\"quarantine\"} 3\n",
            "plumewatch_quarantined_total{stream=\"rsd\",field=\"fuel\"} 2\n",
            "plumewatch_quarantined_total{stream=\"rsd\",field=\"record\"} 1\n",
            "plumewatch_source_records_total 45\n",
            "plumewatch_partition_lag{partition=\"plates/0\"} 20\n",
            "plumewatch_partition_seconds_since_last_message{partition=\"plates/1\"} 0.25\n",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
        // No lag without a high watermark; a partition that went away disappears.
        assert!(!text.contains("plumewatch_partition_lag{partition=\"plates/1\"}"));
        m.clear_partitions();
        assert!(!m.render().contains("plates/0"));
        assert_eq!(m.quarantined("rsd", "fuel"), 2);
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn the_recent_window_forgets_an_old_burst() {
        let mut r = RecentHistogram::new(60, 600_000_000);
        // A 9-minute burst at t = 0 s, then normal 20 ms traffic from t = 30 s to t = 200 s.
        for _ in 0..1000 {
            r.record(0, 540_000_000);
        }
        for t in 30..32 {
            r.record(t, 20_000);
        }
        let early = r.merged(31).unwrap();
        assert!(early.value_at_quantile(0.99) > 500_000_000);
        for t in 32..200 {
            r.record(t, 20_000);
        }
        let later = r.merged(200).unwrap();
        assert_eq!(later.value_at_quantile(0.99) / 1000, 20);
        assert!(r.merged(400).is_none(), "nothing recorded in the last 60 s");
    }
}
