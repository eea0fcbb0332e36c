//! Run metrics: the same counters for every stage (records, bytes, errors, batches,
//! commits), the end-to-end alert latency, and a Prometheus text endpoint (`GET /metrics`,
//! served by `tiny_http`).
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
    /// Alert latency of the whole run (sane timestamps only), µs.
    latency_us: Mutex<Histogram<u64>>,
    /// Alert latency over the recent window, µs.
    latency_recent: Mutex<RecentHistogram>,
    /// Cumulative Prometheus buckets (upper bounds [`LATENCY_BUCKETS_S`]) and the sum, µs.
    latency_buckets: [Counter; LATENCY_BUCKETS_S.len()],
    latency_sum_us: Counter,
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
            latency_us: Mutex::new(latency_histogram(
                LatencyWindow::default().max_age_s * 1_000_000,
            )),
            latency_recent: Mutex::new(RecentHistogram::new(
                LatencyWindow::default().window_s,
                LatencyWindow::default().max_age_s * 1_000_000,
            )),
            latency_buckets: Default::default(),
            latency_sum_us: Counter::default(),
            latency_skipped_missing: Counter::default(),
            latency_skipped_old: Counter::default(),
            latency_skipped_future: Counter::default(),
            latency_window: LatencyWindow::default(),
            source_resets: Counter::default(),
            source_restarts: Counter::default(),
            partition_stalls: Counter::default(),
            partitions: Mutex::new(Vec::new()),
        }
    }
}

impl Metrics {
    /// Metrics whose alert latency uses `w` instead of the defaults.
    pub fn with_latency_window(w: LatencyWindow) -> Self {
        let max_us = w.max_age_s.max(1).saturating_mul(1_000_000);
        Metrics {
            latency_us: Mutex::new(latency_histogram(max_us)),
            latency_recent: Mutex::new(RecentHistogram::new(w.window_s.max(2), max_us)),
            latency_window: w,
            ..Metrics::default()
        }
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
                self.latency_sum_us.add(us);
                let s = us as f64 / 1e6;
                for (b, ub) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_S) {
                    if s <= ub {
                        b.inc();
                    }
                }
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

    /// Source resets, restarts, stalls and the per-partition lag gauges, Prometheus text.
    fn render_source(&self, s: &mut String) {
        for (name, help, v) in [
            (
                "source_resets_total",
                "Source positions the broker no longer had (rows of source_reset).",
                self.source_resets.get(),
            ),
            (
                "source_restarts_total",
                "Restarts from the manifest after a lost assignment, out-of-range fetch, re-created topic or fatal consumer error.",
                self.source_restarts.get(),
            ),
            (
                "partition_stalls_total",
                "Partitions that stopped fetching while their high watermark grew.",
                self.partition_stalls.get(),
            ),
        ] {
            s.push_str(&format!("# HELP plumewatch_{name} {help}\n# TYPE plumewatch_{name} counter\nplumewatch_{name} {v}\n"));
        }
        let parts = self.partitions();
        s.push_str("# HELP plumewatch_partition_lag Records behind: high watermark - committed (manifest) offset.\n# TYPE plumewatch_partition_lag gauge\n");
        for (k, hi, c, _) in &parts {
            if let (Some(h), Some(c)) = (hi, c) {
                s.push_str(&format!(
                    "plumewatch_partition_lag{{partition=\"{k}\"}} {}\n",
                    (h - c).max(0)
                ));
            }
        }
        s.push_str("# HELP plumewatch_partition_seconds_since_last_message Seconds since the partition's last message (or its assignment).\n# TYPE plumewatch_partition_seconds_since_last_message gauge\n");
        for (k, _, _, idle) in &parts {
            s.push_str(&format!(
                "plumewatch_partition_seconds_since_last_message{{partition=\"{k}\"}} {idle:.1}\n"
            ));
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
        s.push_str("# HELP plumewatch_alert_latency_seconds Input timestamp to alert delivery (sane timestamps only).\n# TYPE plumewatch_alert_latency_seconds histogram\n");
        let mut total = 0;
        for (b, ub) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_S) {
            s.push_str(&format!(
                "plumewatch_alert_latency_seconds_bucket{{le=\"{ub}\"}} {}\n",
                b.get()
            ));
        }
        if let Ok(h) = self.latency_us.lock() {
            total = h.len();
        }
        s.push_str(&format!(
            "plumewatch_alert_latency_seconds_bucket{{le=\"+Inf\"}} {total}\nplumewatch_alert_latency_seconds_sum {}\nplumewatch_alert_latency_seconds_count {total}\n",
            self.latency_sum_us.get() as f64 / 1e6
        ));
        let (p50, p99) = self.recent_latency_quantiles();
        s.push_str(&format!(
            "# HELP plumewatch_alert_latency_recent_seconds Alert latency quantiles over the last {} s.\n# TYPE plumewatch_alert_latency_recent_seconds gauge\n",
            self.latency_window.window_s
        ));
        for (q, v) in [("0.5", p50), ("0.99", p99)] {
            if let Some(v) = v {
                s.push_str(&format!(
                    "plumewatch_alert_latency_recent_seconds{{quantile=\"{q}\"}} {}\n",
                    v / 1000.0
                ));
            }
        }
        s.push_str("# HELP plumewatch_alert_latency_skipped_total Alerts whose input timestamp was not measured, by reason.\n# TYPE plumewatch_alert_latency_skipped_total counter\n");
        let (m, o, f) = self.latency_skipped();
        for (r, v) in [("missing", m), ("old", o), ("future", f)] {
            s.push_str(&format!(
                "plumewatch_alert_latency_skipped_total{{reason=\"{r}\"}} {v}\n"
            ));
        }
        self.render_source(&mut s);
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
