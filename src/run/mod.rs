//! `plumewatch run`: the streaming core. Sources (Kafka topics through a consumer group,
//! files, stdin) feed a bounded channel; a worker thread decodes, enriches and detects,
//! delivers alerts per batch (rows, bytes or age, first wins) and commits the tables on an
//! interval with the manifest protocol of `sink::manifest` (exactly-once tables; Kafka offsets
//! are committed to the group afterwards, for lag monitoring only).
//!
//! Threads: one Kafka poll thread, one thread per file source, one worker, one table sink
//! (Parquet encoding, fsync, manifest: `sink::tables`), one metrics server. The bounded
//! channels (source → worker → sink) carry backpressure: a slow worker or disk slows the
//! consumer instead of growing memory.

pub mod alerts;
pub mod config;
mod worker;
pub use crate::metrics;
use worker::Worker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord};

use crate::decode::mapping::{CompiledMapping, Mapping};
use crate::decode::text::{ReadOptions, RecordDecoder, SourcePos};
use crate::enrich::registry::Registry;
use crate::enrich::rsd::RsdContext;
use crate::limits::LimitSet;
use crate::pipeline::{Alert, Pipeline, Stream, StreamHandler, Watch};
use crate::schema;
use crate::sink::manifest::{self, ManifestEntry};
use crate::sink::parquet::SinkError;
use crate::sink::tables::TableSet;
use crate::source::file::Format;
use crate::source::{self, Builder, Framed, Msg, Position, SourceCtx, SourceId, kafka};
use config::RunConfig;
use metrics::Metrics;

/// The error a run attempt ends with when its Kafka source was lost: what it had committed.
#[derive(Debug)]
struct SourceLost {
    why: String,
    /// Counters as of the last commit whose manifest entry was written (set by the sink
    /// thread's commit job; final once the attempt has closed its sink).
    committed: Arc<Mutex<RunSummary>>,
}

impl std::fmt::Display for SourceLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kafka source lost: {}", self.why)
    }
}

impl std::error::Error for SourceLost {}

/// What a run did (printed on shutdown).
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub records_in: u64,
    pub quarantined: u64,
    pub detections: u64,
    pub alerts: u64,
    pub commits: u64,
    pub rows: Vec<(&'static str, u64)>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub seconds: f64,
    /// Seconds from the first record processed to the last one.
    pub processing_s: Option<f64>,
    /// Seconds from the first record processed to the last commit that made rows visible.
    pub consume_to_commit_s: Option<f64>,
    /// Rows not written because their key was already stored (same content).
    pub already_present: u64,
    /// Rows not written because their key was stored with different content (quarantined).
    pub key_conflicts: u64,
    /// Alerts held back as repeats within `[alerts].dedup_window_ms`.
    pub alerts_suppressed: u64,
    /// Times the run dropped uncommitted work and started over from the manifest (the
    /// counters above cover committed work only, so nothing counts twice).
    pub restarts: u64,
    /// `source_reset` rows written.
    pub source_resets: u64,
}

impl RunSummary {
    /// Adds the counters of another attempt.
    fn add(&mut self, o: &RunSummary) {
        self.records_in += o.records_in;
        self.quarantined += o.quarantined;
        self.detections += o.detections;
        self.alerts += o.alerts;
        self.commits += o.commits;
        self.source_resets += o.source_resets;
        self.already_present += o.already_present;
        self.key_conflicts += o.key_conflicts;
        self.alerts_suppressed += o.alerts_suppressed;
        for &(t, n) in &o.rows {
            match self.rows.iter_mut().find(|r| r.0 == t) {
                Some(r) => r.1 += n,
                None => self.rows.push((t, n)),
            }
        }
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "records in: {}  quarantined: {}  detections: {}  alerts: {}  commits: {}",
            self.records_in, self.quarantined, self.detections, self.alerts, self.commits
        )?;
        for (t, n) in &self.rows {
            if *n > 0 {
                writeln!(f, "  {t:<14}{n}")?;
            }
        }
        if self.already_present > 0 || self.key_conflicts > 0 {
            writeln!(
                f,
                "rows not written: {} already present, {} with a known key and different content (quarantined)",
                self.already_present, self.key_conflicts
            )?;
        }
        if self.alerts_suppressed > 0 {
            writeln!(
                f,
                "alerts held back as repeats within the window: {}",
                self.alerts_suppressed
            )?;
        }
        if let (Some(a), Some(b)) = (self.latency_p50_ms, self.latency_p99_ms) {
            writeln!(
                f,
                "alert latency (input timestamp → alert): p50 {a:.1} ms, p99 {b:.1} ms"
            )?;
        }
        if let (Some(p), Some(c)) = (self.processing_s, self.consume_to_commit_s) {
            writeln!(
                f,
                "throughput: {:.0} records/s processed ({p:.2} s first to last record), {:.0} records/s consume→commit ({c:.2} s to the last commit)",
                self.records_in as f64 / p,
                self.records_in as f64 / c,
            )?;
        }
        if self.restarts > 0 || self.source_resets > 0 {
            writeln!(
                f,
                "restarts from the manifest: {}  source resets (table source_reset): {}",
                self.restarts, self.source_resets
            )?;
        }
        write!(f, "ran {:.1} s", self.seconds)
    }
}

/// Builds the watchlist from the tables: China III diesel trucks, gas TWC suspects and
/// repeat exceeders (the lists of `query::lists`, default parameters). Plates that are not
/// recognised (`model::PlateStatus::is_recognised`) are left out.
pub fn build_watchlist(
    tables: &Path,
    limits: &LimitSet,
    entrances: &[String],
) -> anyhow::Result<Watch> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut w = Watch {
        entrance_sites: entrances.iter().cloned().collect(),
        ..Default::default()
    };
    // The registry's banned vehicles are watched before their first sighting: the first
    // read of a China III truck at an entrance is the one that matters (issue 10 item 6).
    let registered = (
        &crate::query::lists::CHINA3_REGISTERED,
        crate::query::lists::CHINA3_DIESEL.name,
    );
    let lists = crate::query::lists::LISTS
        .iter()
        .map(|l| (*l, l.name))
        .chain(std::iter::once(registered));
    for (l, reason) in lists {
        let batches = rt.block_on(crate::query::lists::run(tables, l, limits, &[]))?;
        for row in crate::query::output::to_json(&batches)? {
            // Only recognised plates: a placeholder or unrecognised text (old tables, another
            // writer) never reaches the watchlist.
            if let Some(p) = row.get("plate").and_then(|v| v.as_str())
                && crate::model::Plate(p.to_string()).status().is_recognised()
            {
                let r = w.plates.entry(p.to_string()).or_default();
                if !r.iter().any(|x| x == reason) {
                    r.push(reason.to_string());
                }
                let text = |c: &str| row.get(c).and_then(|v| v.as_str()).map(str::to_string);
                if let Some(vt) = text("vehicle_type") {
                    w.vehicles.insert(p.to_string(), (Some(vt), text("vin")));
                }
            }
        }
    }
    Ok(w)
}

struct AlertSink {
    /// The hosted server's alert board (`[serve]`), if any.
    board: Option<Arc<crate::serve::board::AlertHub>>,
    ndjson: Option<Box<dyn Write + Send>>,
    producer: Option<(BaseProducer, String)>,
    metrics: Arc<Metrics>,
}

impl AlertSink {
    fn deliver(&mut self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        if let Some(b) = &self.board {
            b.publish(
                alerts
                    .iter()
                    .filter_map(crate::serve::board::NewAlert::from_alert)
                    .collect(),
            );
        }
        let now = chrono::Utc::now().timestamp_millis();
        for a in &alerts {
            let text = serde_json::to_string(a).unwrap_or_default();
            if let Some(w) = self.ndjson.as_mut() {
                let _ = writeln!(w, "{text}");
            }
            if let Some((p, topic)) = self.producer.as_ref() {
                let key = a
                    .plate
                    .clone()
                    .or_else(|| a.vin.clone())
                    .unwrap_or_default();
                if let Err((e, _)) = p.send(BaseRecord::to(topic).key(&key).payload(&text)) {
                    tracing::warn!("alert not sent: {e}");
                    self.metrics.errors.inc();
                }
            }
            self.metrics.record_alert_latency(a.input_ts_ms, now);
        }
        if let Some(w) = self.ndjson.as_mut() {
            let _ = w.flush();
        }
        if let Some((p, _)) = self.producer.as_ref() {
            p.poll(Duration::ZERO);
        }
    }
}

/// Runs until `stop` is set (or the idle timeout ends it). Returns the summary.
///
/// Rides through Kafka source faults: when the source is lost (assignment lost after a
/// broker outage longer than the session timeout, an out-of-range fetch, a re-created topic,
/// a fatal consumer error) the attempt drops what it has not committed and the run starts
/// over from the manifest, after a back-off of 0.5 s doubling to 30 s (reset after a minute
/// of running). Each restart is logged once and counted (`plumewatch_source_restarts_total`).
pub fn run(cfg: RunConfig, stop: Arc<AtomicBool>) -> anyhow::Result<RunSummary> {
    let t0 = Instant::now();
    cfg.check()?;
    let mut run_metrics = Metrics::with_latency_window(cfg.metrics.latency_window());
    // The hosted server's metrics are also on the run's `/metrics` (`[metrics] listen`).
    let serve_metrics = cfg.serve.as_ref().map(|_| {
        let m = crate::serve::metrics::ServeMetrics::default();
        run_metrics.register_more(|r| m.register(r));
        m
    });
    let metrics = Arc::new(run_metrics);
    let metrics_server = match &cfg.metrics.listen {
        Some(addr) => Some(metrics::serve(addr, metrics.clone(), stop.clone())?),
        None => None,
    };
    std::fs::create_dir_all(&cfg.tables)
        .with_context(|| format!("cannot create {}", cfg.tables.display()))?;
    // One process per instance id, taken before recovery (recovery deletes this instance's
    // uncommitted files, which a running twin is writing). Held until `run` returns, across
    // restarts of the source.
    let _lock = manifest::lock_instance(&cfg.tables, &cfg.instance_id)?;
    // `[serve]`: the server runs beside the run (its own runtime), across source restarts.
    let hosted = match (&cfg.serve, serve_metrics) {
        (Some(s), Some(m)) => {
            Some(crate::serve::host(&cfg.tables, s.clone(), m).context("[serve]")?)
        }
        _ => None,
    };
    let board = hosted.as_ref().map(|h| h.board.clone());
    let mut total = RunSummary::default();
    let mut quick_failures = 0u32;
    let res = loop {
        let started = Instant::now();
        // The attempt's own stop flag: set by the caller's, or by the attempt when it ends.
        let attempt_stop = Arc::new(AtomicBool::new(false));
        let relay = {
            let (a, s) = (attempt_stop.clone(), stop.clone());
            std::thread::spawn(move || {
                while !a.load(Ordering::SeqCst) {
                    if s.load(Ordering::SeqCst) {
                        a.store(true, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let r = run_attempt(&cfg, attempt_stop.clone(), &metrics, board.clone());
        attempt_stop.store(true, Ordering::SeqCst);
        let _ = relay.join();
        match r {
            Ok(s) => {
                total.add(&s);
                break Ok(());
            }
            Err(e) => match e.downcast::<SourceLost>() {
                Ok(lost) => {
                    // The attempt closed its sink: no commit job runs any more.
                    total.add(&lost.committed.lock().map(|s| s.clone()).unwrap_or_default());
                    if stop.load(Ordering::SeqCst) {
                        break Ok(());
                    }
                    total.restarts += 1;
                    metrics.source_restarts.inc();
                    if started.elapsed() >= Duration::from_secs(60) {
                        quick_failures = 0;
                    }
                    let wait = Duration::from_millis(500 << quick_failures.min(6))
                        .min(Duration::from_secs(30));
                    quick_failures += 1;
                    tracing::warn!(
                        "{lost}; uncommitted work dropped, starting over from the manifest in {:.1} s (restart {})",
                        wait.as_secs_f64(),
                        total.restarts
                    );
                    let until = Instant::now() + wait;
                    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if stop.load(Ordering::SeqCst) {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            },
        }
    };
    stop.store(true, Ordering::SeqCst);
    if let Some(s) = metrics_server {
        let _ = s.join();
    }
    let served = hosted.map(|h| h.stop()).unwrap_or(Ok(()));
    res?;
    served.context("stopping the hosted server")?;
    let (p50, p99) = metrics.latency_quantiles();
    total.latency_p50_ms = p50;
    total.latency_p99_ms = p99;
    total.seconds = t0.elapsed().as_secs_f64();
    total.processing_s = metrics.processing_s();
    total.consume_to_commit_s = metrics.consume_to_commit_s();
    Ok(total)
}

/// One attempt of [`run`]: recovery, sources, worker, until `stop`, the idle timeout, an
/// error, or a lost Kafka source ([`SourceLost`]).
fn run_attempt(
    cfg: &RunConfig,
    stop: Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
    board: Option<Arc<crate::serve::board::AlertHub>>,
) -> anyhow::Result<RunSummary> {
    std::fs::create_dir_all(&cfg.tables)
        .with_context(|| format!("cannot create {}", cfg.tables.display()))?;
    let mut limits = LimitSet::load(cfg.limits.as_deref())?;
    if let Some(z) = &cfg.time_zone {
        limits.time.zone = z.clone();
        limits
            .time_policy()
            .map_err(|m| anyhow::anyhow!("run config time_zone: {m}"))?;
    }
    let limit_set_id = limits.id();
    let (resume, _) =
        manifest::recover(&cfg.tables, &cfg.instance_id).context("manifest recovery")?;
    let registry =
        Registry::load(&cfg.tables.join(schema::VEHICLES)).map_err(|e| anyhow::anyhow!(e))?;
    let watch = build_watchlist(&cfg.tables, &limits, &cfg.sites.urban_entrances)?;

    let (tx, rx) = sync_channel::<Msg>(cfg.channel_capacity.max(1));
    // Sources (`crate::source`): built from their config sections, prepared here (a port
    // taken, a consumer that cannot be created stop the run now), then one thread each.
    let mut builder = Builder::new(limits.time());
    let mut sources = cfg.sources.build(&mut builder)?;
    let mappings = builder.mappings;
    let resume = Arc::new(resume);
    let mut committed_txs: Vec<Sender<source::Committed>> = Vec::new();
    let mut contexts = Vec::new();
    for s in &mut sources {
        let (ctx_tx, committed) = std::sync::mpsc::channel();
        committed_txs.push(ctx_tx);
        let ctx = SourceCtx {
            tx: tx.clone(),
            stop: stop.clone(),
            metrics: metrics.clone(),
            committed,
            resume: resume.clone(),
            tables: cfg.tables.clone(),
            instance: cfg.instance_id.clone(),
        };
        s.prepare(&ctx)
            .with_context(|| format!("starting {}", s.describe()))?;
        contexts.push(ctx);
    }
    // Only sources that must be (a Kafka consumer leaving its group) are joined: a file
    // source blocked reading stdin must not keep a stopped run from exiting.
    let mut threads = Vec::new();
    let mut n_finite = 0usize;
    for (s, ctx) in sources.into_iter().zip(contexts) {
        let (finite, join) = (s.finite(), s.join_on_stop());
        n_finite += usize::from(finite);
        let (tx2, m2) = (tx.clone(), metrics.clone());
        let h = std::thread::Builder::new()
            .name("source".into())
            .spawn(move || {
                let what = s.describe();
                if let Err(e) = s.run(ctx) {
                    tracing::error!("{what}: {e:#}");
                    m2.errors.inc();
                }
                if finite {
                    let _ = tx2.send(Msg::Done);
                }
            })?;
        if join {
            threads.push(h);
        }
    }
    drop(tx);

    // Alerts.
    let ndjson: Option<Box<dyn Write + Send>> = match cfg.alerts.ndjson.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("alerts file {p}"))?,
        )),
    };
    let producer = match cfg
        .sources
        .kafka
        .as_ref()
        .and_then(|k| k.alerts_topic.clone().map(|t| (k, t)))
    {
        Some((k, t)) => {
            let mut pc = ClientConfig::new();
            pc.set("bootstrap.servers", &k.brokers)
                .set("linger.ms", "0");
            for (a, b) in &k.properties {
                pc.set(a, b);
            }
            Some((pc.create::<BaseProducer>().context("alert producer")?, t))
        }
        None => None,
    };
    let mut alerts = AlertSink {
        board,
        ndjson,
        producer,
        metrics: metrics.clone(),
    };

    // Worker (this thread).
    let ctx = RsdContext {
        limits: &limits,
        limit_set_id: &limit_set_id,
        registry: &registry,
    };
    let mut w = Worker::new(
        cfg,
        Pipeline::new(ctx, &cfg.tables, &run_id(&cfg.instance_id, resume.next_seq))?,
        resume.next_seq,
        mappings,
        committed_txs,
        metrics.clone(),
    );
    w.pipe.watch = Some(watch);
    w.pipe.keyed.track_touched = true;
    w.pipe.alert_kinds = cfg.alerts.kinds.iter().cloned().collect();
    w.pipe.alert_dedup = Some(alerts::AlertDedup::new(cfg.alerts.dedup_window_ms));
    // The watchlist is rebuilt from the committed tables on a thread of its own after each
    // commit (and every `watchlist_refresh_ms`): a plate listed while `run` runs is watched
    // from then on.
    let (refresh_tx, refresh_rx) = std::sync::mpsc::channel::<()>();
    let (watch_tx, watch_rx) = std::sync::mpsc::channel::<Watch>();
    {
        let tables = cfg.tables.clone();
        let entrances = cfg.sites.urban_entrances.clone();
        let limits = limits.clone();
        let m2 = metrics.clone();
        drop(
            std::thread::Builder::new()
                .name("watchlist".into())
                .spawn(move || {
                    let mut failing = false;
                    while refresh_rx.recv().is_ok() {
                        while refresh_rx.try_recv().is_ok() {}
                        match build_watchlist(&tables, &limits, &entrances) {
                            Ok(w) => {
                                failing = false;
                                if watch_tx.send(w).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                m2.errors.inc();
                                if !failing {
                                    tracing::warn!("watchlist refresh failed (the previous list stays in use): {e:#}");
                                }
                                failing = true;
                            }
                        }
                    }
                })?,
        );
    }
    w.refresh = Some((refresh_tx, watch_rx));
    let res = w.run_loop(&rx, &stop, &mut alerts, n_finite);
    // The sink goes idle before the sources stop (the Kafka thread leaves the group then): on
    // an error, queued commits are dropped rather than landing after the partitions are gone.
    if res.is_err() {
        w.pipe.sink.abandon();
    }
    let key_stats = if res.is_ok() {
        w.pipe.sink.run(|t| Ok(t.key_stats())).unwrap_or_default()
    } else {
        Vec::new()
    };
    let sink_res = w.pipe.sink.close();
    stop.store(true, Ordering::SeqCst);
    drop(rx);
    for t in threads {
        let _ = t.join();
    }
    res?;
    sink_res?;
    Ok(RunSummary {
        already_present: key_stats.iter().map(|(_, k)| k.present).sum(),
        key_conflicts: key_stats.iter().map(|(_, k)| k.conflicts).sum(),
        alerts_suppressed: w.pipe.alert_dedup.as_ref().map_or(0, |d| d.suppressed),
        ..w.summary()
    })
}

fn run_id(instance: &str, seq: u64) -> String {
    format!("{instance}-{seq:012}")
}
