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
pub use crate::metrics;

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
    let mut committed_txs: Vec<Sender<Vec<(Arc<SourceId>, Position)>>> = Vec::new();
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

/// Pipeline counter values already added to the run's metrics.
#[derive(Default)]
struct SyncedCounts {
    dups: u64,
    late: u64,
    quarantined: BTreeMap<(&'static str, String), u64>,
}

fn run_id(instance: &str, seq: u64) -> String {
    format!("{instance}-{seq:012}")
}

struct Worker<'c, 'a> {
    /// Pipeline counters already added to the metrics (see [`Worker::sync_metrics`]).
    synced: SyncedCounts,
    cfg: &'c RunConfig,
    pipe: Pipeline<'a>,
    seq: u64,
    /// Source → next offset to resume from.
    positions: BTreeMap<Arc<SourceId>, i64>,
    dirty_parts: HashSet<Arc<SourceId>>,
    /// Source → its name in quarantine rows (built once per source, not per record).
    source_names: HashMap<Arc<SourceId>, Arc<str>>,
    vin_part: HashMap<String, Arc<SourceId>>,
    owned: HashSet<Arc<SourceId>>,
    /// Per source: its record decoder (CSV header, mapping state).
    decoders: HashMap<Arc<SourceId>, RecordDecoder>,
    mappings: Vec<(Stream, CompiledMapping)>,
    commits: u64,
    /// `pipe.rows_total()` at the last commit.
    rows_committed: u64,
    /// To each source: the positions of each commit, once written.
    committed_txs: Vec<Sender<Vec<(Arc<SourceId>, Position)>>>,
    metrics: Arc<Metrics>,
    pending_positions: bool,
    /// Watchlist refresh: requests to the refresher thread, new lists from it.
    refresh: Option<(std::sync::mpsc::Sender<()>, Receiver<Watch>)>,
    /// Source → source resets before its position ([`Position::resets`]).
    resets: HashMap<Arc<SourceId>, u64>,
    /// Source (one that marks records: Kafka) → the last record read (timestamp, value or
    /// null), for the fingerprint in the manifest ([`Position::mark`]).
    last_rec: HashMap<Arc<SourceId>, (Option<i64>, Option<Vec<u8>>)>,
    source_resets: u64,
    /// Counters as of the last commit whose manifest entry was written: what a lost
    /// attempt leaves behind. Set by the commit job on the sink thread, not when the job is
    /// queued: queued commits are dropped when the source is lost (issue 10 soak run:
    /// records_in 4,385 for 3,000 records after 4 start-overs).
    committed_summary: Arc<Mutex<RunSummary>>,
}

impl<'c, 'a> Worker<'c, 'a> {
    fn new(
        cfg: &'c RunConfig,
        pipe: Pipeline<'a>,
        seq: u64,
        mappings: Vec<(Stream, CompiledMapping)>,
        committed_txs: Vec<Sender<Vec<(Arc<SourceId>, Position)>>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Worker {
            synced: SyncedCounts::default(),
            cfg,
            pipe,
            seq,
            positions: BTreeMap::new(),
            dirty_parts: HashSet::new(),
            source_names: HashMap::new(),
            vin_part: HashMap::new(),
            owned: HashSet::new(),
            decoders: HashMap::new(),
            mappings,
            commits: 0,
            rows_committed: 0,
            committed_txs,
            metrics,
            pending_positions: false,
            refresh: None,
            resets: HashMap::new(),
            last_rec: HashMap::new(),
            source_resets: 0,
            committed_summary: Arc::default(),
        }
    }

    /// What this attempt did (all of it committed once `run_loop` returned `Ok`).
    fn summary(&self) -> RunSummary {
        RunSummary {
            records_in: self.pipe.counters.records_in,
            quarantined: self.pipe.counters.quarantined,
            detections: self.pipe.counters.detections,
            alerts: self.pipe.counters.alerts,
            commits: self.commits,
            rows: self.pipe.rows(),
            source_resets: self.source_resets,
            ..Default::default()
        }
    }

    /// Writes the `source_reset` row of `r` and moves the partition's position to where
    /// reading goes on (committed with the next manifest entry).
    fn source_reset(&mut self, r: kafka::SourceReset) -> anyhow::Result<()> {
        use datafusion::arrow::array::{
            ArrayRef, Int64Array, StringArray, TimestampMillisecondArray,
        };
        let key = Arc::new(SourceId::Kafka {
            topic: r.topic.clone(),
            partition: r.partition,
        });
        let source = key.to_string();
        tracing::warn!(
            "source reset on {source} ({}): expected {}; found {}; {}",
            r.kind,
            r.expected,
            r.found,
            r.action
        );
        let now = chrono::Utc::now().timestamp_millis();
        let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
        let i = |v: Option<i64>| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
        let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
            schema::source_reset(),
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![now]).with_timezone("UTC")),
                s(&self.cfg.instance_id),
                s(&source),
                s(&r.topic),
                i(Some(i64::from(r.partition))),
                s(r.kind),
                i(Some(r.expected_offset)),
                s(&r.expected),
                i(r.low_watermark),
                i(r.high_watermark),
                s(&r.found),
                i(Some(r.resumed_offset)),
                i(r.records_lost),
                s(&r.action),
            ],
        )?;
        self.pipe
            .sink
            .write(crate::sink::tables::SOURCE_RESET, batch)?;
        *self.resets.entry(key.clone()).or_insert(0) += 1;
        self.last_rec.remove(&key);
        self.positions.insert(key, r.resumed_offset);
        self.pending_positions = true;
        self.source_resets += 1;
        self.metrics.source_resets.inc();
        Ok(())
    }

    fn run_loop(
        &mut self,
        rx: &Receiver<Msg>,
        stop: &AtomicBool,
        alerts: &mut AlertSink,
        n_files: usize,
    ) -> anyhow::Result<()> {
        let b = &self.cfg.batch;
        let commit_every = Duration::from_millis(self.cfg.commit.interval_ms.max(1));
        let max_age = Duration::from_millis(b.max_age_ms.max(1));
        let mut batch_rows = 0usize;
        let mut batch_bytes = 0usize;
        let mut batch_start: Option<Instant> = None;
        let mut last_commit = Instant::now();
        let mut last_input = Instant::now();
        let mut files_done = 0usize;
        // With Kafka, idleness counts only once the group gave this instance partitions.
        let mut assigned_once = self.cfg.sources.kafka.is_none();
        let refresh_every = Duration::from_millis(self.cfg.alerts.watchlist_refresh_ms.max(1));
        let mut last_refresh = Instant::now();
        loop {
            if let Some((tx, rx)) = &self.refresh {
                while let Ok(w) = rx.try_recv() {
                    self.pipe.watch = Some(w);
                }
                if last_refresh.elapsed() >= refresh_every {
                    let _ = tx.send(());
                    last_refresh = Instant::now();
                }
            }
            let wait = match batch_start {
                Some(s) => max_age.saturating_sub(s.elapsed()),
                None => Duration::from_millis(50),
            }
            .min(commit_every.saturating_sub(last_commit.elapsed()))
            .max(Duration::from_millis(1));
            match rx.recv_timeout(wait) {
                Ok(Msg::Data {
                    stream,
                    source,
                    item,
                    next,
                    null_value,
                    ts_ms,
                    mapping,
                    format,
                }) => {
                    if !self.owned.contains(&source) {
                        continue; // a partition this instance no longer owns
                    }
                    last_input = Instant::now();
                    batch_start.get_or_insert(last_input);
                    batch_rows += 1;
                    batch_bytes += item.len();
                    let marks = source.marks_records();
                    if marks && (null_value || item.is_empty()) {
                        self.reject_empty(stream, &source, item.offset(), null_value);
                    } else {
                        self.process(stream, &source, &item, ts_ms, mapping, format)?;
                    }
                    if marks {
                        let v = match item {
                            Framed::Record { bytes, .. } if !null_value => Some(bytes.into_owned()),
                            _ => None,
                        };
                        self.last_rec.insert(source.clone(), (ts_ms, v));
                    }
                    self.positions.insert(source, next);
                    self.pending_positions = true;
                }
                Ok(Msg::SourceReset(r)) => self.source_reset(r)?,
                Ok(Msg::Lost(why)) => {
                    self.pipe.sink.abandon();
                    return Err(anyhow::Error::new(SourceLost {
                        why,
                        committed: self.committed_summary.clone(),
                    }));
                }
                Ok(Msg::Assigned(keys)) => {
                    if keys.iter().any(|k| k.shared()) {
                        assigned_once = true;
                    }
                    last_input = Instant::now();
                    self.load_state(&keys)?;
                    self.owned.extend(keys);
                }
                Ok(Msg::Revoke(keys, ack)) => {
                    alerts.deliver(self.pipe.take_alerts());
                    self.commit(true)?;
                    last_commit = Instant::now();
                    for k in &keys {
                        self.owned.remove(k);
                        self.positions.remove(k);
                        self.resets.remove(k);
                        self.last_rec.remove(k);
                        self.decoders.remove(k);
                    }
                    let drop_keys: HashSet<&SourceId> = keys.iter().map(|k| k.as_ref()).collect();
                    let gone: Vec<String> = self
                        .vin_part
                        .iter()
                        .filter(|(_, p)| drop_keys.contains(p.as_ref()))
                        .map(|(v, _)| v.clone())
                        .collect();
                    for v in gone {
                        self.pipe.keyed.states_mut().remove(&v);
                        self.vin_part.remove(&v);
                    }
                    let _ = ack.send(());
                }
                Ok(Msg::Closed(id)) => {
                    // Its records are processed; nothing of it is read again.
                    self.decoders.remove(&id);
                    self.source_names.remove(&id);
                    self.owned.remove(&id);
                    self.positions.remove(&id);
                }
                Ok(Msg::Done) => files_done += 1,
                Ok(Msg::Fatal(why)) => {
                    self.pipe.sink.abandon();
                    anyhow::bail!(
                        "{why}; stopping without a commit (a restart resumes from the last manifest entry)"
                    );
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    alerts.deliver(self.pipe.take_alerts());
                    self.commit(true)?;
                    return Ok(());
                }
            }
            // Alerts go out as they happen; the batch bounds only table flushes.
            if !self.pipe.alerts.is_empty() {
                alerts.deliver(self.pipe.take_alerts());
            }
            if batch_rows >= b.max_rows
                || batch_bytes >= b.max_bytes
                || batch_start.is_some_and(|s| s.elapsed() >= max_age)
            {
                alerts.deliver(self.pipe.take_alerts());
                self.pipe.flush(crate::pipeline::BATCH_ROWS)?;
                self.metrics.batches.inc();
                self.sync_metrics();
                batch_rows = 0;
                batch_bytes = 0;
                batch_start = None;
            }
            if last_commit.elapsed() >= commit_every {
                self.commit(false)?;
                last_commit = Instant::now();
            }
            let idle = self.cfg.idle_exit_ms.is_some_and(|ms| {
                assigned_once
                    && last_input.elapsed() >= Duration::from_millis(ms)
                    && files_done >= n_files
            });
            if stop.load(Ordering::SeqCst) || idle {
                alerts.deliver(self.pipe.take_alerts());
                self.commit(true)?;
                stop.store(true, Ordering::SeqCst);
                if self.cfg.sources.kafka.is_none() {
                    return Ok(());
                }
                // Drain revocations the Kafka thread sends while leaving the group.
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(Msg::Revoke(_, ack)) => {
                            let _ = ack.send(());
                        }
                        Ok(_) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                }
                return Ok(());
            }
        }
    }

    /// The name of `source` in quarantine rows (built once per source, not per record).
    fn source_name(&mut self, source: &Arc<SourceId>) -> Arc<str> {
        self.source_names
            .entry(source.clone())
            .or_insert_with(|| Arc::from(source.quarantine_name()))
            .clone()
    }

    /// Quarantines a Kafka record without content: a tombstone (null value) or an empty
    /// value, each with its own reason (issue 10 item 7).
    fn reject_empty(
        &mut self,
        stream: Stream,
        source: &Arc<SourceId>,
        offset: u64,
        null_value: bool,
    ) {
        let file = self.source_name(source);
        let pos = SourcePos {
            file: &file,
            offset,
            line: 0,
        };
        let why = if null_value {
            "tombstone: Kafka record with a null value"
        } else {
            "empty value: Kafka record with a zero-length value"
        };
        self.pipe.reject(
            stream,
            crate::decode::record::FieldError::record(why),
            &pos,
            b"",
        );
        self.metrics.worker_records.inc();
        self.metrics.mark_record();
    }

    /// One framed item: decoded by its source's decoder (the same path as `ingest`:
    /// `source::deliver`), then enriched, judged and buffered by the pipeline.
    fn process(
        &mut self,
        stream: Stream,
        source: &Arc<SourceId>,
        item: &Framed<'_>,
        ts_ms: Option<i64>,
        mapping: Option<usize>,
        format: Format,
    ) -> anyhow::Result<()> {
        self.pipe.input_ts_ms = ts_ms;
        let file = self.source_name(source);
        // A message value may end in a line end (file framing already drops it).
        let trimmed;
        let item = match item {
            Framed::Record {
                offset,
                line,
                bytes,
            } if format.text().is_some() => {
                trimmed = Framed::Record {
                    offset: *offset,
                    line: *line,
                    bytes: std::borrow::Cow::Borrowed(trim(bytes)),
                };
                &trimmed
            }
            other => other,
        };
        let dec = match format.text() {
            None => None,
            Some(text) => Some(self.decoders.entry(source.clone()).or_insert_with(|| {
                let m = match mapping {
                    Some(i) => self.mappings[i].1.clone(),
                    None => Mapping::compile(None, stream.specs(), "canonical")
                        .expect("canonical mapping")
                        .with_time_policy(self.pipe.ctx.limits.time()),
                };
                // A stream does not wait for a `utc_offset_from` offset: a record is read
                // when it arrives (a held record would sit past a committed position).
                let opts = ReadOptions {
                    max_held_records: 0,
                    ..ReadOptions::default()
                };
                RecordDecoder::new(text, m, stream.specs(), &opts)
            })),
        };
        let mut h = StreamHandler {
            pipeline: &mut self.pipe,
            stream,
            error: None,
            progress: None,
            bytes_before: 0,
        };
        source::deliver(item, &file, dec, &mut h);
        if let Some(e) = h.error.take() {
            return Err(e.into());
        }
        // A vehicle's state belongs to the source it was first seen on (keyed by VIN, like
        // Kafka); mark that source dirty so the next commit snapshots the vehicle.
        for vin in self.pipe.keyed.take_touched() {
            let part = self
                .vin_part
                .entry(vin)
                .or_insert_with(|| source.clone())
                .clone();
            self.dirty_parts.insert(part);
        }
        self.metrics.worker_records.inc();
        self.metrics.mark_record();
        Ok(())
    }

    /// Adds what the pipeline counted since the last call to the run's metrics (once per
    /// batch: OBD duplicates and late samples, quarantined records per stream and field).
    fn sync_metrics(&mut self) {
        let c = &self.pipe.counters;
        let dups = c.duplicates + c.duplicates_conflicting;
        self.metrics
            .obd_duplicates
            .add(dups.saturating_sub(self.synced.dups));
        self.synced.dups = dups;
        let late = self.pipe.keyed.late;
        self.metrics
            .obd_late
            .add(late.saturating_sub(self.synced.late));
        self.synced.late = late;
        for (k, &n) in &c.quarantined_by {
            let seen = self.synced.quarantined.entry(k.clone()).or_default();
            if n > *seen {
                self.metrics.add_quarantined(k.0, &k.1, n - *seen);
                *seen = n;
            }
        }
    }

    /// Restores the detector state the manifest holds for `keys` (sources this instance
    /// now reads) and their source-reset counts.
    fn load_state(&mut self, keys: &[Arc<SourceId>]) -> anyhow::Result<()> {
        let entries = manifest::read_all(&self.cfg.tables)
            .context("reading the manifest to restore detector state")?;
        let view = manifest::resume_view(&entries, &self.cfg.instance_id);
        for k in keys {
            if let Some(p) = view.positions.get(k.as_ref()).filter(|p| p.resets > 0) {
                self.resets.insert(k.clone(), p.resets);
            }
        }
        let states = self.pipe.keyed.states_mut();
        for k in keys {
            let Some((inst, seq)) = view.state_source.get(k.as_ref()) else {
                continue;
            };
            let Some(e) = entries
                .iter()
                .find(|e| &e.instance == inst && e.seq == *seq)
            else {
                continue;
            };
            for (vin, v) in e.state.get(k.as_ref()).into_iter().flatten() {
                states.restore(vin, v).with_context(|| {
                    format!("detector state of {vin} in manifest entry {inst}-{seq}")
                })?;
                self.vin_part.insert(vin.clone(), k.clone());
            }
        }
        Ok(())
    }

    /// Commits what was processed so far: hands the remaining rows to the sink thread, then a
    /// job that closes the files, writes the manifest entry (files, positions, detector state
    /// of dirty partitions), renames the files into place and passes the Kafka offsets to the
    /// source thread. The entry's positions and state are taken here, on the worker, at the
    /// same point in the record stream as the batches before the job: that is what makes the
    /// tables exactly-once with the sink running behind. With `wait`, returns after the job
    /// (rebalance, shutdown); otherwise the worker goes on while the sink commits.
    fn commit(&mut self, wait: bool) -> anyhow::Result<()> {
        // A commit that failed on the sink thread stops the run here, input or not.
        self.pipe.sink.check()?;
        // Samples held for ordering go to the detectors now, so the state snapshot below
        // covers every sample of this commit.
        self.pipe.release_obd();
        self.sync_metrics();
        self.pipe.flush(1)?;
        let rows = self.pipe.rows_total();
        if rows == self.rows_committed && !self.pending_positions {
            if wait {
                // Nothing new, but earlier commits may still be queued: a revoke or shutdown
                // must not go on before they are written.
                self.pipe.sink.run(|_| Ok(()))?;
            }
            return Ok(());
        }
        let mut e = ManifestEntry {
            instance: self.cfg.instance_id.clone(),
            seq: self.seq,
            ..Default::default()
        };
        // Positions of resumable sources (stdin and TCP connections cannot be read again).
        for (k, v) in &self.positions {
            if !k.resumable() {
                continue;
            }
            let mark = if k.marks_records() {
                self.last_rec
                    .get(k)
                    .map(|(ts, val)| kafka::fingerprint(*ts, val.as_deref()))
            } else {
                None
            };
            e.positions.insert(
                k.as_ref().clone(),
                Position {
                    next: *v,
                    resets: self.resets.get(k).copied().unwrap_or(0),
                    mark,
                },
            );
        }
        let committed: Vec<(Arc<SourceId>, Position)> = e
            .positions
            .iter()
            .map(|(k, p)| (Arc::new(k.clone()), p.clone()))
            .collect();
        let states = self.pipe.keyed.states();
        for vin in states.keys() {
            let Some(part) = self.vin_part.get(vin) else {
                continue;
            };
            if !self.dirty_parts.contains(part) {
                continue;
            }
            if !part.resumable() {
                continue;
            }
            if let Some(v) = states.snapshot(vin) {
                e.state
                    .entry(part.as_ref().clone())
                    .or_default()
                    .insert(vin.to_string(), v);
            }
        }
        for p in self.dirty_parts.iter().filter(|p| p.resumable()) {
            e.state.entry(p.as_ref().clone()).or_default();
        }
        let next_run_id = run_id(&self.cfg.instance_id, self.seq + 1);
        let mut done_summary = self.summary();
        done_summary.commits += 1;
        let done = self.committed_summary.clone();
        let committed_txs = self.committed_txs.clone();
        let metrics = self.metrics.clone();
        let refresh = self.refresh.as_ref().map(|(tx, _)| tx.clone());
        let job = move |t: &mut TableSet| -> Result<(), SinkError> {
            let e = t.commit_entry(e, |_, _| Ok(Vec::new()))?;
            t.set_run_id(&next_run_id);
            metrics.mark_commit(e.files.iter().map(|f| f.rows).sum());
            for f in &e.files {
                metrics.add_committed_rows(&f.table, f.rows);
            }
            if let Ok(mut d) = done.lock() {
                *d = done_summary;
            }
            for tx in &committed_txs {
                let _ = tx.send(committed.clone());
            }
            if let Some(r) = &refresh {
                let _ = r.send(());
            }
            Ok(())
        };
        if wait {
            self.pipe.sink.run(job)?;
        } else {
            self.pipe.sink.submit(Box::new(job))?;
        }
        self.seq += 1;
        self.commits += 1;
        self.rows_committed = rows;
        self.dirty_parts.clear();
        self.pending_positions = false;
        Ok(())
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let mut e = b.len();
    while e > 0 && b[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    &b[..e]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A revoke or shutdown commits with `wait`; when nothing is new since the last periodic
    /// commit, it must still wait for that commit, queued on the sink thread, to be written
    /// (otherwise the partitions are given up before their manifest entry exists).
    #[test]
    fn waiting_commit_waits_for_queued_commits_with_nothing_new() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: RunConfig = toml::from_str(&format!(
            "tables = {:?}\n",
            dir.path().display().to_string()
        ))
        .unwrap();
        let limits = LimitSet::default_set();
        let id = limits.id();
        let registry = Registry::default();
        let ctx = RsdContext {
            limits: &limits,
            limit_set_id: &id,
            registry: &registry,
        };

        let pipe = Pipeline::new(ctx, &cfg.tables, &run_id(&cfg.instance_id, 0)).unwrap();
        let mut w = Worker::new(
            &cfg,
            pipe,
            0,
            Vec::new(),
            Vec::new(),
            Arc::new(Metrics::default()),
        );
        let key = Arc::new(SourceId::File("x.ndjson".into()));
        let line = br#"{"read_id":"r1","read_at":1790784000000,"site_id":"S1","plate":"A12345"}"#;
        let item = Framed::Record {
            offset: 0,
            line: 1,
            bytes: std::borrow::Cow::Borrowed(&line[..]),
        };
        w.process(Stream::Plates, &key, &item, None, None, Format::Ndjson)
            .unwrap();
        w.positions.insert(key, line.len() as i64 + 1);
        w.pending_positions = true;

        // Hold the sink thread: the periodic commit queues behind a job waiting for a gate.
        let (gate_tx, gate_rx) = sync_channel::<()>(0);
        w.pipe
            .sink
            .submit(Box::new(move |_| {
                let _ = gate_rx.recv();
                Ok(())
            }))
            .unwrap();
        w.commit(false).unwrap();
        assert!(manifest::read_all(dir.path()).unwrap().is_empty());
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            gate_tx.send(()).unwrap();
        });
        w.commit(true).unwrap();
        let entries = manifest::read_all(dir.path()).unwrap();
        assert_eq!(
            entries.len(),
            1,
            "the queued commit was written before returning"
        );
        assert_eq!(
            entries[0]
                .positions
                .get(&SourceId::File("x.ndjson".into()))
                .map(|p| p.next),
            Some(line.len() as i64 + 1)
        );
        assert_eq!(entries[0].files.iter().map(|f| f.rows).sum::<u64>(), 1);
        opener.join().unwrap();
    }
}
