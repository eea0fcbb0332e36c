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
mod kafka;
pub mod metrics;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord};

use crate::decode::hj1239::{FrameScanner, ScanEvent};
use crate::decode::mapping::{CompiledMapping, Mapping};
use crate::decode::text::{NdjsonDecoder, SourcePos};
use crate::enrich::registry::Registry;
use crate::enrich::rsd::RsdContext;
use crate::limits::LimitSet;
use crate::pipeline::{Alert, Pipeline, Stream, Watch};
use crate::schema;
use crate::sink::manifest::{self, ManifestEntry};
use crate::sink::parquet::{SinkError, finalize};
use crate::sink::tables::TableSet;
use config::RunConfig;
use metrics::Metrics;

/// A message from a source to the worker.
enum Msg {
    Data {
        stream: Stream,
        /// `topic/partition` or `file:<path>`.
        key: Arc<str>,
        /// Kafka offset or byte offset of the record.
        offset: i64,
        /// Position to resume from after this record.
        next: i64,
        payload: Vec<u8>,
        /// A Kafka tombstone (null value; `payload` is empty).
        null_value: bool,
        ts_ms: Option<i64>,
        mapping: Option<usize>,
    },
    /// Partitions (keys) assigned to this instance.
    Assigned(Vec<String>),
    /// Partitions about to be revoked: commit, drop their state, then ack.
    Revoke(Vec<String>, SyncSender<()>),
    /// A line of a file source longer than its record limit: skipped unread, quarantined
    /// with its length and first bytes.
    TooLong {
        stream: Stream,
        key: Arc<str>,
        offset: u64,
        next: u64,
        prefix: Vec<u8>,
        len: u64,
        max: usize,
    },
    /// A file source reached its end.
    SourceDone,
    /// The manifest could not be read: stop without committing; a restart resumes exactly.
    Fatal(String),
    /// The Kafka source must start over (lost assignment, out-of-range fetch, re-created
    /// topic, fatal consumer error): drop what is not committed; `run` starts again from
    /// the manifest.
    Lost(String),
    /// A partition position the broker no longer has: write a `source_reset` row and go on
    /// from the offset it names.
    SourceReset(kafka::SourceReset),
}

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
    ndjson: Option<Box<dyn Write + Send>>,
    producer: Option<(BaseProducer, String)>,
    metrics: Arc<Metrics>,
}

impl AlertSink {
    fn deliver(&mut self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
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
    let metrics = Arc::new(Metrics::with_latency_window(cfg.metrics.latency_window()));
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
        let r = run_attempt(&cfg, attempt_stop.clone(), &metrics);
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
    res?;
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
    // Mappings per source (index into `mappings`).
    let mut mappings: Vec<(Stream, CompiledMapping)> = Vec::new();
    let mut compile =
        |stream: Stream, path: &Option<std::path::PathBuf>| -> anyhow::Result<Option<usize>> {
            let Some(p) = path else { return Ok(None) };
            let m = Mapping::load(p)?;
            mappings.push((
                stream,
                Mapping::compile(Some(&m), stream.specs(), &p.display().to_string())?
                    .with_time_policy(limits.time()),
            ));
            Ok(Some(mappings.len() - 1))
        };
    let mut topic_streams: HashMap<String, (Stream, Option<usize>)> = HashMap::new();
    if let Some(k) = &cfg.kafka {
        for t in &k.topics {
            topic_streams.insert(t.topic.clone(), (t.stream, compile(t.stream, &t.mapping)?));
        }
    }
    let mut file_sources = Vec::new();
    for f in &cfg.files {
        file_sources.push((f.clone(), compile(f.stream, &f.mapping)?));
    }

    // Kafka source thread.
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<Vec<(String, i32, i64)>>();
    // Only the Kafka thread is joined: a file source blocked reading stdin must not keep a
    // stopped run from exiting (it ends with the process).
    let mut threads = Vec::new();
    if let Some(kcfg) = cfg.kafka.clone() {
        let shared = Arc::new(kafka::Shared::default());
        let ctx = kafka::KafkaCtx {
            root: cfg.tables.clone(),
            instance: cfg.instance_id.clone(),
            tx: tx.clone(),
            metrics: metrics.clone(),
            shared: shared.clone(),
        };
        let stall_after = Duration::from_secs(kcfg.stall_after_s.unwrap_or(60).max(1));
        let consumer = kafka::kafka_consumer(&kcfg, ctx)?;
        let stop2 = stop.clone();
        let tx2 = tx.clone();
        let m2 = metrics.clone();
        threads.push(
            std::thread::Builder::new()
                .name("kafka-source".into())
                .spawn(move || {
                    kafka::kafka_loop(
                        consumer,
                        topic_streams,
                        tx2,
                        commit_rx,
                        stop2,
                        m2,
                        shared,
                        stall_after,
                    );
                })?,
        );
    } else {
        drop(commit_rx);
    }
    let n_files = file_sources.len();
    for (f, mapping) in file_sources {
        let start = if f.path == "-" {
            0
        } else {
            resume.file_offsets.get(&f.path).copied().unwrap_or(0)
        };
        let tx2 = tx.clone();
        let stop2 = stop.clone();
        let m2 = metrics.clone();
        // Detached (see `threads`).
        drop(
            std::thread::Builder::new()
                .name("file-source".into())
                .spawn(move || {
                    if let Err(e) = file_loop(&f, mapping, start, &tx2, &stop2, &m2) {
                        tracing::error!("file source {}: {e:#}", f.path);
                        m2.errors.inc();
                    }
                    let _ = tx2.send(Msg::SourceDone);
                })?,
        );
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
        commit_tx,
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
    // File sources own their state from the start.
    for f in &cfg.files {
        let key = format!("file:{}", f.path);
        w.load_state(std::slice::from_ref(&key))?;
        w.owned.insert(key);
    }
    let res = w.run_loop(&rx, &stop, &mut alerts, n_files);
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

fn file_loop(
    f: &config::FileSource,
    mapping: Option<usize>,
    start: u64,
    tx: &SyncSender<Msg>,
    stop: &AtomicBool,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let key: Arc<str> = Arc::from(format!("file:{}", f.path));
    let mut rdr: Box<dyn Read> = if f.path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let mut file = std::fs::File::open(&f.path).with_context(|| f.path.clone())?;
        file.seek(std::io::SeekFrom::Start(start))?;
        Box::new(file)
    };
    let send = |payload: Vec<u8>, offset: u64, next: u64| -> bool {
        metrics.source_records.inc();
        metrics.source_bytes.add(payload.len() as u64);
        tx.send(Msg::Data {
            stream: f.stream,
            key: key.clone(),
            offset: offset as i64,
            next: next as i64,
            payload,
            null_value: false,
            ts_ms: None,
            mapping,
        })
        .is_ok()
    };
    if f.stream == Stream::Frames {
        let mut sc = FrameScanner::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let k = rdr.read(&mut buf)?;
            if k == 0 {
                while let Some(ev) = sc.finish() {
                    let (ScanEvent::Frame { offset, bytes }
                    | ScanEvent::Rejected { offset, bytes, .. }) = ev;
                    let next = start + offset + bytes.len() as u64;
                    if !send(bytes, start + offset, next) {
                        return Ok(());
                    }
                }
                return Ok(());
            }
            sc.push(&buf[..k]);
            while let Some(ev) = sc.next_event() {
                let (ScanEvent::Frame { offset, bytes }
                | ScanEvent::Rejected { offset, bytes, .. }) = ev;
                let next = start + offset + bytes.len() as u64;
                if !send(bytes, start + offset, next) {
                    return Ok(());
                }
            }
        }
    }
    // Lines are bounded: a longer one is skipped unread (memory stays flat on any input).
    let max = f
        .max_record_bytes
        .unwrap_or(crate::decode::text::DEFAULT_MAX_RECORD_BYTES);
    let mut lr = crate::decode::text::LineReader::new(rdr, max, false);
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let ok = match lr.next_line()? {
            None => return Ok(()),
            Some(crate::decode::text::LineItem::Record { bytes, offset, .. }) => {
                if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                let payload = bytes.to_vec();
                send(payload, start + offset, start + lr.consumed())
            }
            Some(crate::decode::text::LineItem::TooLong {
                prefix,
                offset,
                len,
                ..
            }) => {
                let prefix = prefix.to_vec();
                metrics.source_records.inc();
                tx.send(Msg::TooLong {
                    stream: f.stream,
                    key: key.clone(),
                    offset: start + offset,
                    next: start + lr.consumed(),
                    prefix,
                    len,
                    max,
                })
                .is_ok()
            }
        };
        if !ok {
            return Ok(());
        }
    }
}

struct Worker<'c, 'a> {
    /// Pipeline counters already added to the metrics (see [`Worker::sync_metrics`]).
    synced: SyncedCounts,
    cfg: &'c RunConfig,
    pipe: Pipeline<'a>,
    seq: u64,
    /// Partition key → next position to resume from.
    positions: BTreeMap<Arc<str>, i64>,
    dirty_parts: HashSet<Arc<str>>,
    source_names: HashMap<Arc<str>, String>,
    vin_part: HashMap<String, Arc<str>>,
    owned: HashSet<String>,
    decoders: HashMap<(Stream, Option<usize>), NdjsonDecoder>,
    mappings: Vec<(Stream, CompiledMapping)>,
    commits: u64,
    /// `pipe.rows_total()` at the last commit.
    rows_committed: u64,
    commit_tx: std::sync::mpsc::Sender<Vec<(String, i32, i64)>>,
    metrics: Arc<Metrics>,
    pending_positions: bool,
    /// Watchlist refresh: requests to the refresher thread, new lists from it.
    refresh: Option<(std::sync::mpsc::Sender<()>, Receiver<Watch>)>,
    /// Kafka partition key → source resets before its position (`kafka_resets`).
    resets: HashMap<Arc<str>, u64>,
    /// Kafka partition key → the last record read (timestamp, value or null), for the
    /// fingerprint in the manifest (`kafka_marks`).
    last_rec: HashMap<Arc<str>, (Option<i64>, Option<Vec<u8>>)>,
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
        commit_tx: std::sync::mpsc::Sender<Vec<(String, i32, i64)>>,
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
            commit_tx,
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
        let key: Arc<str> = Arc::from(format!("{}/{}", r.topic, r.partition));
        let source = format!("kafka:{key}");
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
        let mut assigned_once = self.cfg.kafka.is_none();
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
                    key,
                    offset,
                    next,
                    payload,
                    null_value,
                    ts_ms,
                    mapping,
                }) => {
                    let kafka = !key.starts_with("file:");
                    if kafka && !self.owned.contains(key.as_ref()) {
                        continue; // a partition this instance no longer owns
                    }
                    last_input = Instant::now();
                    batch_start.get_or_insert(last_input);
                    batch_rows += 1;
                    batch_bytes += payload.len();
                    if kafka && (null_value || payload.is_empty()) {
                        self.reject_empty(stream, &key, offset, null_value);
                    } else {
                        self.process(stream, &key, offset, &payload, ts_ms, mapping);
                    }
                    if kafka {
                        let v = (!null_value).then_some(payload);
                        self.last_rec.insert(key.clone(), (ts_ms, v));
                    }
                    self.positions.insert(key, next);
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
                    assigned_once = true;
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
                        self.positions.retain(|p, _| p.as_ref() != k);
                        self.resets.retain(|p, _| p.as_ref() != k);
                        self.last_rec.retain(|p, _| p.as_ref() != k);
                    }
                    let drop_keys: HashSet<&str> = keys.iter().map(String::as_str).collect();
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
                Ok(Msg::TooLong {
                    stream,
                    key,
                    offset,
                    next,
                    prefix,
                    len,
                    max,
                }) => {
                    last_input = Instant::now();
                    batch_start.get_or_insert(last_input);
                    batch_rows += 1;
                    let pos = SourcePos {
                        file: key.strip_prefix("file:").unwrap_or(&key),
                        offset,
                        line: 0,
                    };
                    let err = crate::decode::text::too_long_error(len, max);
                    self.pipe.reject(stream, err, &pos, &prefix);
                    self.positions.insert(key, next as i64);
                    self.pending_positions = true;
                }
                Ok(Msg::SourceDone) => files_done += 1,
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
                if self.cfg.kafka.is_none() {
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

    /// Quarantines a Kafka record without content: a tombstone (null value) or an empty
    /// value, each with its own reason (issue 10 item 7).
    fn reject_empty(&mut self, stream: Stream, key: &Arc<str>, offset: i64, null_value: bool) {
        let file: &str = self
            .source_names
            .entry(key.clone())
            .or_insert_with(|| format!("kafka:{key}"));
        let pos = SourcePos {
            file,
            offset: offset.max(0) as u64,
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

    fn process(
        &mut self,
        stream: Stream,
        key: &Arc<str>,
        offset: i64,
        payload: &[u8],
        ts_ms: Option<i64>,
        mapping: Option<usize>,
    ) {
        self.pipe.input_ts_ms = ts_ms;
        // Source name for quarantine rows: built once per partition, not per record.
        let file: &str = match key.strip_prefix("file:") {
            Some(path) => path,
            None => self
                .source_names
                .entry(key.clone())
                .or_insert_with(|| format!("kafka:{key}")),
        };
        let pos = SourcePos {
            file,
            offset: offset.max(0) as u64,
            line: 0,
        };
        if stream == Stream::Frames {
            self.pipe.frame(payload, &pos);
        } else {
            let (specs, mp) = (stream.specs(), mapping);
            let dec = self.decoders.entry((stream, mp)).or_insert_with(|| {
                let m = match mp {
                    Some(i) => self.mappings[i].1.clone(),
                    None => Mapping::compile(None, specs, "canonical")
                        .expect("canonical mapping")
                        .with_time_policy(self.pipe.ctx.limits.time()),
                };
                NdjsonDecoder::new(m, specs)
            });
            let line = trim(payload);
            match dec.decode_line(line) {
                Ok(rec) => self.pipe.record(stream, rec, &pos, line),
                Err(e) => self.pipe.reject(stream, e, &pos, line),
            }
        }
        // A vehicle's state belongs to the partition it was first seen on (keyed by VIN, like
        // Kafka); mark that partition dirty so the next commit snapshots the vehicle.
        for vin in self.pipe.keyed.take_touched() {
            let part = self
                .vin_part
                .entry(vin)
                .or_insert_with(|| key.clone())
                .clone();
            self.dirty_parts.insert(part);
        }
        self.metrics.worker_records.inc();
        self.metrics.mark_record();
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

    fn load_state(&mut self, keys: &[String]) -> anyhow::Result<()> {
        let entries = manifest::read_all(&self.cfg.tables)
            .context("reading the manifest to restore detector state")?;
        let view = manifest::resume_view(&entries, &self.cfg.instance_id);
        for k in keys {
            if let Some(n) = view.kafka_resets.get(k).filter(|n| **n > 0) {
                self.resets.insert(Arc::from(k.as_str()), *n);
            }
        }
        let states = self.pipe.keyed.states_mut();
        for k in keys {
            let Some((inst, seq)) = view.state_source.get(k) else {
                continue;
            };
            let Some(e) = entries
                .iter()
                .find(|e| &e.instance == inst && e.seq == *seq)
            else {
                continue;
            };
            let part: Arc<str> = Arc::from(k.as_str());
            for (vin, v) in e.state.get(k).into_iter().flatten() {
                states.restore(vin, v).with_context(|| {
                    format!("detector state of {vin} in manifest entry {inst}-{seq}")
                })?;
                self.vin_part.insert(vin.clone(), part.clone());
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
        let mut kafka = Vec::new();
        for (k, v) in &self.positions {
            if let Some(path) = k.strip_prefix("file:") {
                e.file_offsets.insert(path.to_string(), *v as u64);
            } else {
                e.kafka_offsets.insert(k.to_string(), *v);
                if let Some(n) = self.resets.get(k) {
                    e.kafka_resets.insert(k.to_string(), *n);
                }
                if let Some((ts, val)) = self.last_rec.get(k) {
                    e.kafka_marks
                        .insert(k.to_string(), kafka::fingerprint(*ts, val.as_deref()));
                }
                if let Some((t, p)) = k.rsplit_once('/')
                    && let Ok(p) = p.parse::<i32>()
                {
                    kafka.push((t.to_string(), p, *v));
                }
            }
        }
        let states = self.pipe.keyed.states();
        for vin in states.keys() {
            let Some(part) = self.vin_part.get(vin) else {
                continue;
            };
            if !self.dirty_parts.contains(part) {
                continue;
            }
            if let Some(v) = states.snapshot(vin) {
                e.state
                    .entry(part.to_string())
                    .or_default()
                    .insert(vin.to_string(), v);
            }
        }
        for p in &self.dirty_parts {
            e.state.entry(p.to_string()).or_default();
        }
        let next_run_id = run_id(&self.cfg.instance_id, self.seq + 1);
        let mut done_summary = self.summary();
        done_summary.commits += 1;
        let done = self.committed_summary.clone();
        let commit_tx = self.commit_tx.clone();
        let metrics = self.metrics.clone();
        let refresh = self.refresh.as_ref().map(|(tx, _)| tx.clone());
        let job = move |t: &mut TableSet| -> Result<(), SinkError> {
            let root = t.root().to_path_buf();
            let mut files = t.prepare()?;
            // Paths relative to the tables root (see `sink::manifest::CommittedFile`).
            for f in &mut files {
                for p in [&mut f.tmp, &mut f.path] {
                    if let Ok(rel) = p.strip_prefix(&root) {
                        *p = rel.to_path_buf();
                    }
                }
            }
            e.files = files;
            e.committed_at_ms = chrono::Utc::now().timestamp_millis();
            manifest::write_entry(&root, &e).map_err(|source| SinkError::Io {
                path: manifest::dir(&root).display().to_string(),
                source,
            })?;
            let abs: Vec<_> = e
                .files
                .iter()
                .map(|f| (root.join(&f.tmp), root.join(&f.path)))
                .collect();
            finalize(abs.iter().map(|(t, p)| (t.as_path(), p.as_path())))?;
            t.set_run_id(&next_run_id);
            metrics.mark_commit(e.files.iter().map(|f| f.rows).sum());
            for f in &e.files {
                metrics.add_committed_rows(&f.table, f.rows);
            }
            if let Ok(mut d) = done.lock() {
                *d = done_summary;
            }
            if !kafka.is_empty() {
                let _ = commit_tx.send(kafka);
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
        let (commit_tx, _commit_rx) = std::sync::mpsc::channel();
        let pipe = Pipeline::new(ctx, &cfg.tables, &run_id(&cfg.instance_id, 0)).unwrap();
        let mut w = Worker::new(
            &cfg,
            pipe,
            0,
            Vec::new(),
            commit_tx,
            Arc::new(Metrics::default()),
        );
        let key: Arc<str> = Arc::from("file:x.ndjson");
        let line = br#"{"read_id":"r1","read_at":1790784000000,"site_id":"S1","plate":"A12345"}"#;
        w.process(Stream::Plates, &key, 0, line, None, None);
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
            entries[0].file_offsets.get("x.ndjson"),
            Some(&(line.len() as u64 + 1))
        );
        assert_eq!(entries[0].files.iter().map(|f| f.rows).sum::<u64>(), 1);
        opener.join().unwrap();
    }
}
