//! Kafka source of `plumewatch run` (`[kafka]`): the consumer (group member), its rebalance
//! callbacks and the poll loop feeding the worker. Each topic partition is one
//! [`SourceId::Kafka`]; its position is the next offset, with the resets before it and the
//! fingerprint of the record before it.
//!
//! The manifest, not the group, is the source of truth for positions. At each assignment a
//! partition's manifest offset is compared with the broker's log (issue 10):
//! - below the low watermark: records were deleted by retention before they were read;
//! - above the high watermark: the topic was re-created (or truncated) with fewer records;
//! - inside: the record before the offset is fetched again and its fingerprint compared with
//!   the one in the manifest; a different record means the topic was re-created.
//!
//! Each case is a `source_reset` row (what was expected, what was found, what was done),
//! a warning and `plumewatch_source_resets_total`; reading goes on from the low watermark
//! (the new topic's start, or the oldest record kept). Nothing is skipped silently.
//!
//! A lost assignment (session timeout during an outage), a fatal consumer error, an
//! out-of-range fetch (`auto.offset.reset = error`) or a topic id change seen in metadata
//! ends the source with [`Msg::Lost`]: the run drops what it has not committed and starts
//! over from the manifest (see `run::run`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use sha2::Digest as _;

use serde::Deserialize;

use super::file::Format;
use super::{Builder, Framed, Msg, Source, SourceConfig, SourceCtx, SourceId};
use crate::metrics::Metrics;
use crate::pipeline::Stream;
use crate::sink::manifest;

fn d_group() -> String {
    "plumewatch".into()
}

/// `[kafka]`: Kafka sources (one consumer group) and the alert topic.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Consumer group. Default `plumewatch`.
    #[serde(default = "d_group")]
    pub group: String,
    /// Topics to consume, one stream each.
    pub topics: Vec<TopicConfig>,
    /// Topic for alerts (JSON, keyed by plate or VIN). Default: none.
    pub alerts_topic: Option<String>,
    /// Extra librdkafka properties (e.g. `security.protocol`, `sasl.mechanisms`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Watchdog: a partition with no message for this many seconds while its high
    /// watermark grows is logged and counted (`plumewatch_partition_stalls_total`).
    /// Default 60.
    pub stall_after_s: Option<u64>,
}

/// One consumed topic.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// `rsd`, `obd` (JSON samples), `frames` (HJ 1239, one frame per message) or `plates`.
    pub stream: Stream,
    pub topic: String,
    /// Column mapping for vendor JSON field names (optional).
    pub mapping: Option<PathBuf>,
}

impl SourceConfig for KafkaConfig {
    fn check(&self) -> anyhow::Result<()> {
        for t in &self.topics {
            if t.stream == Stream::Vehicles {
                anyhow::bail!(
                    "topic {}: the registry is loaded from the tables, not streamed",
                    t.topic
                );
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    fn build(&self, b: &mut Builder) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let mut topics = HashMap::new();
        for t in &self.topics {
            topics.insert(
                t.topic.clone(),
                (t.stream, b.mapping(t.stream, t.mapping.as_deref())?),
            );
        }
        Ok(vec![Box::new(KafkaSource {
            cfg: self.clone(),
            topics,
            consumer: None,
        })])
    }
}

/// The running Kafka source: one consumer in the group, every configured topic.
pub struct KafkaSource {
    cfg: KafkaConfig,
    /// Topic → (stream, mapping index).
    topics: HashMap<String, (Stream, Option<usize>)>,
    consumer: Option<(BaseConsumer<KafkaCtx>, Arc<Shared>)>,
}

impl Source for KafkaSource {
    fn describe(&self) -> String {
        format!(
            "kafka source (group {} on {})",
            self.cfg.group, self.cfg.brokers
        )
    }

    fn join_on_stop(&self) -> bool {
        true
    }

    fn prepare(&mut self, ctx: &SourceCtx) -> anyhow::Result<()> {
        let shared = Arc::new(Shared::default());
        let kctx = KafkaCtx {
            root: ctx.tables.clone(),
            instance: ctx.instance.clone(),
            tx: ctx.tx.clone(),
            metrics: ctx.metrics.clone(),
            shared: shared.clone(),
        };
        self.consumer = Some((kafka_consumer(&self.cfg, kctx)?, shared));
        Ok(())
    }

    fn run(self: Box<Self>, ctx: SourceCtx) -> anyhow::Result<()> {
        let me = *self;
        let Some((consumer, shared)) = me.consumer else {
            anyhow::bail!("kafka source started without prepare");
        };
        let stall_after = Duration::from_secs(me.cfg.stall_after_s.unwrap_or(60).max(1));
        kafka_loop(consumer, me.topics, ctx, shared, stall_after);
        Ok(())
    }
}

/// Fingerprint of a consumed record, kept in the manifest for the record before each
/// position (`ManifestEntry::kafka_marks`): the first 8 bytes of SHA-256 over the timestamp
/// (ms, or none), whether the value is null, and the value, in hex.
pub fn fingerprint(ts_ms: Option<i64>, value: Option<&[u8]>) -> String {
    let mut h = sha2::Sha256::new();
    match ts_ms {
        Some(t) => {
            h.update([1u8]);
            h.update(t.to_le_bytes());
        }
        None => h.update([0u8]),
    }
    match value {
        Some(v) => {
            h.update([1u8]);
            h.update(v);
        }
        None => h.update([0u8]),
    }
    hex::encode(&h.finalize()[..8])
}

/// A partition position the broker no longer has: one `source_reset` row.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceReset {
    pub topic: String,
    pub partition: i32,
    /// `topic_recreated`, `offset_above_high_watermark` or `offset_below_low_watermark`.
    pub kind: &'static str,
    /// The manifest's next offset.
    pub expected_offset: i64,
    pub expected: String,
    pub low_watermark: Option<i64>,
    pub high_watermark: Option<i64>,
    pub found: String,
    /// Where reading goes on.
    pub resumed_offset: i64,
    /// Records the broker deleted before they were read (retention), when countable.
    pub records_lost: Option<i64>,
    pub action: String,
}

/// Where to start a partition, given its manifest offset `m`, the broker's watermarks and
/// whether the manifest holds the fingerprint of the record before `m`.
#[derive(Debug, PartialEq)]
pub(crate) enum Start {
    /// Start at this offset.
    At(i64),
    /// Start one record early and compare that record with the manifest's fingerprint.
    Verify(i64),
    /// The position is gone: report and start at `resumed_offset`.
    Reset(SourceReset),
}

/// Decides where a partition starts (see the module doc).
pub(crate) fn start_of(topic: &str, partition: i32, m: i64, lo: i64, hi: i64, mark: bool) -> Start {
    let reset = |kind, found: String, lost: Option<i64>, action: String| {
        Start::Reset(SourceReset {
            topic: topic.to_string(),
            partition,
            kind,
            expected_offset: m,
            expected: format!("next offset {m} (manifest)"),
            low_watermark: Some(lo),
            high_watermark: Some(hi),
            found,
            resumed_offset: lo,
            records_lost: lost,
            action,
        })
    };
    if m > hi {
        reset(
            "offset_above_high_watermark",
            format!(
                "the partition holds offsets {lo}..{hi} (high watermark {hi} < {m}): the topic was re-created or truncated"
            ),
            None,
            format!("read the partition from its low watermark {lo} (the new topic's start)"),
        )
    } else if m < lo {
        reset(
            "offset_below_low_watermark",
            format!(
                "the partition starts at offset {lo}: records {m}..{} were deleted (retention) before they were read",
                lo - 1
            ),
            Some(lo - m),
            format!("read from the low watermark {lo}; {} records lost", lo - m),
        )
    } else if mark && m > lo {
        Start::Verify(m - 1)
    } else {
        Start::At(m)
    }
}

/// State shared by the consumer's callbacks and the poll loop.
#[derive(Default)]
pub struct Shared {
    /// (topic, partition) → (offset, fingerprint) of the record to compare first.
    verify: Mutex<HashMap<(String, i32), (i64, String)>>,
    /// Why the source must start over (set by a callback; the poll loop acts on it).
    restart: Mutex<Option<String>>,
    /// Broker error log state: the last error logged, when, and how many since.
    errors: Mutex<ErrorLog>,
    /// (topic, partition) → high watermark from the client statistics.
    high: Mutex<HashMap<(String, i32), i64>>,
    /// An error was logged since the broker last answered (cheap check per message).
    in_error: AtomicBool,
}

#[derive(Default)]
struct ErrorLog {
    /// Kinds of error logged since the broker last answered: kind → its log state.
    kinds: HashMap<String, KindLog>,
}

struct KindLog {
    logged_at: Instant,
    /// Errors of this kind since it was last logged.
    repeats: u64,
    /// Seconds before a repeat is logged again (10 s doubling to 10 min).
    backoff_s: u64,
}

/// The kind of a broker error, for logging it once: every "cannot reach the broker" message
/// librdkafka gives (connect refused, transport failure, all brokers down …) is one kind;
/// other texts are their own kind with digits ignored (offsets, ports, times).
fn error_kind(text: &str) -> String {
    const UNREACHABLE: [&str; 8] = [
        "BrokerTransportFailure",
        "AllBrokersDown",
        "brokers are down",
        "Connect to",
        "Connection refused",
        "ransport failure",
        "Disconnected",
        "Failed to resolve",
    ];
    if UNREACHABLE.iter().any(|u| text.contains(u)) {
        return "broker unreachable".into();
    }
    text.chars().filter(|c| !c.is_ascii_digit()).collect()
}

impl Shared {
    fn request_restart(&self, why: String) {
        if let Ok(mut r) = self.restart.lock()
            && r.is_none()
        {
            *r = Some(why);
        }
    }

    /// Logs a broker error once per kind ([`error_kind`]) until the broker answers again
    /// (issue 9 item 7: a broker that is down gave 40 lines a second), and a repeating kind
    /// again only after a back-off (10 s doubling to 10 min) with its count; every error is
    /// counted in the `errors` metric.
    fn broker_error(&self, metrics: &Metrics, text: &str) {
        metrics.errors.inc();
        self.in_error.store(true, Ordering::Relaxed);
        let kind = error_kind(text);
        let Ok(mut l) = self.errors.lock() else {
            return;
        };
        let now = Instant::now();
        match l.kinds.get_mut(&kind) {
            None => {
                tracing::warn!(
                    "kafka: {text} (repeats are counted, not logged, until the broker answers)"
                );
                l.kinds.insert(
                    kind,
                    KindLog {
                        logged_at: now,
                        repeats: 0,
                        backoff_s: 10,
                    },
                );
            }
            Some(k) => {
                k.repeats += 1;
                if now.duration_since(k.logged_at).as_secs() >= k.backoff_s {
                    tracing::warn!("kafka: {text} (repeated {} times)", k.repeats);
                    k.logged_at = now;
                    k.repeats = 0;
                    k.backoff_s = (k.backoff_s * 2).min(600);
                }
            }
        }
    }

    /// Records, once, that the broker answers again after errors.
    fn broker_ok(&self) {
        if !self.in_error.swap(false, Ordering::Relaxed) {
            return;
        }
        if let Ok(mut l) = self.errors.lock()
            && !l.kinds.is_empty()
        {
            let n: u64 = l.kinds.values().map(|k| k.repeats).sum();
            tracing::info!("kafka: broker reachable again ({n} repeated errors not logged)");
            *l = ErrorLog::default();
        }
    }
}

/// The topic id change librdkafka reports in its `metadata` debug log
/// ("Topic T changed id from OLD to NEW"); `None` for other lines and for a first id
/// (OLD all zero).
fn topic_id_change(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("Topic ")?;
    let (topic, ids) = rest.split_once(" changed id from ")?;
    let (old, _new) = ids.split_once(" to ")?;
    if old.chars().all(|c| c == 'A' || c == '=') {
        return None;
    }
    Some(topic)
}

pub(crate) struct KafkaCtx {
    pub(crate) root: std::path::PathBuf,
    pub(crate) instance: String,
    pub(crate) tx: SyncSender<Msg>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shared: Arc<Shared>,
}

impl ClientContext for KafkaCtx {
    /// librdkafka's own lines. Errors also arrive as error events ([`Self::error`]), which
    /// log them once: here they go to debug. A topic id change in the metadata debug log
    /// (topic deleted and re-created) restarts the source.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, line: &str) {
        match level {
            RDKafkaLogLevel::Debug => {
                if let Some(topic) = topic_id_change(line) {
                    tracing::warn!("kafka: topic {topic} was re-created (its id changed)");
                    self.shared
                        .request_restart(format!("topic {topic} was re-created"));
                }
            }
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::debug!("librdkafka {fac}: {line}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!("librdkafka {fac}: {line}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!("librdkafka {fac}: {line}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let text = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_string()
        };
        self.shared.broker_error(&self.metrics, &text);
        if let KafkaError::Global(RDKafkaErrorCode::Fatal) = error {
            self.shared
                .request_restart(format!("fatal consumer error: {text}"));
        }
    }

    /// High watermarks per partition, for the lag metric and the stall watchdog.
    fn stats(&self, s: Statistics) {
        let Ok(mut high) = self.shared.high.lock() else {
            return;
        };
        for (t, ts) in &s.topics {
            for (p, ps) in &ts.partitions {
                if *p >= 0 && ps.hi_offset >= 0 {
                    high.insert((t.clone(), *p), ps.hi_offset);
                }
            }
        }
    }
}

impl KafkaCtx {
    /// Where each assigned partition starts: the manifest's position checked against the
    /// broker's log. Returns the resets to report.
    fn place(
        &self,
        c: &BaseConsumer<Self>,
        keys: &[(String, i32)],
        tpl: &mut TopicPartitionList,
        view: &manifest::Resume,
    ) -> Vec<SourceReset> {
        let mut resets = Vec::new();
        for (t, p) in keys {
            let key = format!("{t}/{p}");
            let pos = view.positions.get(&SourceId::Kafka {
                topic: t.clone(),
                partition: *p,
            });
            let off = match pos.map(|p| p.next) {
                None => Offset::Beginning,
                Some(m) => match c.fetch_watermarks(t, *p, Duration::from_secs(10)) {
                    Err(e) => {
                        self.shared.broker_error(
                            &self.metrics,
                            &format!(
                                "{key}: watermarks not available ({e}); resuming at {m} unchecked"
                            ),
                        );
                        Offset::Offset(m)
                    }
                    Ok((lo, hi)) => {
                        let mark = pos.and_then(|p| p.mark.as_ref());
                        match start_of(t, *p, m, lo, hi, mark.is_some()) {
                            Start::At(o) => Offset::Offset(o),
                            Start::Verify(o) => {
                                if let (Ok(mut v), Some(mark)) = (self.shared.verify.lock(), mark) {
                                    v.insert((t.clone(), *p), (o, mark.clone()));
                                }
                                Offset::Offset(o)
                            }
                            Start::Reset(r) => {
                                let o = Offset::Offset(r.resumed_offset);
                                resets.push(r);
                                o
                            }
                        }
                    }
                },
            };
            let _ = tpl.set_partition_offset(t, *p, off);
        }
        resets
    }
}

impl ConsumerContext for KafkaCtx {
    fn rebalance(&self, c: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let keys: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let names: Vec<Arc<SourceId>> = keys
            .iter()
            .map(|(t, p)| {
                Arc::new(SourceId::Kafka {
                    topic: t.clone(),
                    partition: *p,
                })
            })
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.shared.broker_ok();
                // Resume each partition from the latest position any instance committed.
                let entries = match manifest::read_all(&self.root) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = self.tx.send(Msg::Fatal(format!(
                            "cannot read the manifest at assignment: {e}"
                        )));
                        return;
                    }
                };
                let view = manifest::resume_view(&entries, &self.instance);
                let resets = self.place(c, &keys, tpl, &view);
                let _ = self.tx.send(Msg::Assigned(names));
                for r in resets {
                    let _ = self.tx.send(Msg::SourceReset(r));
                }
                if let Err(e) = c.assign(tpl) {
                    self.shared
                        .broker_error(&self.metrics, &format!("assign failed: {e}"));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if c.assignment_lost() => {
                // Someone else may already own these partitions: committing now could write
                // rows twice. Drop what is not committed; the run starts over from the
                // manifest and rejoins the group.
                self.shared.request_restart(
                    "partition assignment lost (session timed out, e.g. a broker outage)".into(),
                );
                let _ = c.unassign();
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Commit everything read from these partitions before giving them up; wait as
                // long as that takes (giving them up earlier could duplicate rows).
                let (atx, arx) = sync_channel(1);
                if self.tx.send(Msg::Revoke(names, atx)).is_ok() {
                    let _ = arx.recv();
                }
                let _ = c.unassign();
            }
            _ => {
                self.shared
                    .request_restart(format!("rebalance error {err:?}"));
                let _ = c.unassign();
            }
        }
    }
}

fn kafka_consumer(cfg: &KafkaConfig, ctx: KafkaCtx) -> anyhow::Result<BaseConsumer<KafkaCtx>> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // An out-of-range position is an error, not a silent jump: the run starts over and
        // the assignment check records a `source_reset` row.
        .set("auto.offset.reset", "error")
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("session.timeout.ms", "10000")
        // Latency over batching on the fetch side: alerts must leave within a second.
        .set("fetch.wait.max.ms", "20")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "300000")
        // A re-created topic shows as a topic id change at the next metadata refresh.
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("debug", "metadata")
        // High watermarks for the lag metric.
        .set("statistics.interval.ms", "2000");
    for (k, v) in &cfg.properties {
        cc.set(k, v);
    }
    let c: BaseConsumer<KafkaCtx> = cc.create_with_context(ctx).context("kafka consumer")?;
    let topics: Vec<&str> = cfg.topics.iter().map(|t| t.topic.as_str()).collect();
    c.subscribe(&topics).context("subscribe")?;
    Ok(c)
}

/// Per-partition fetch progress, for the metrics and the stall watchdog.
struct Progress {
    last_message: Instant,
    /// High watermark when the last message arrived (or when first seen).
    high_at_last: i64,
    stalled: bool,
}

fn kafka_loop(
    consumer: BaseConsumer<KafkaCtx>,
    topics: HashMap<String, (Stream, Option<usize>)>,
    ctx: SourceCtx,
    shared: Arc<Shared>,
    stall_after: Duration,
) {
    let SourceCtx {
        tx,
        stop,
        metrics,
        committed: commits,
        ..
    } = ctx;
    let mut keys: HashMap<(String, i32), Arc<SourceId>> = HashMap::new();
    let mut progress: HashMap<(String, i32), Progress> = HashMap::new();
    let mut committed: HashMap<(String, i32), i64> = HashMap::new();
    let mut last_check = Instant::now();
    let mut lost = false;
    while !stop.load(Ordering::SeqCst) {
        while let Ok(offsets) = commits.try_recv() {
            let mut tpl = TopicPartitionList::new();
            for (id, pos) in offsets {
                if let SourceId::Kafka { topic, partition } = id.as_ref() {
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(pos.next));
                    committed.insert((topic.clone(), *partition), pos.next);
                }
            }
            if tpl.count() == 0 {
                continue;
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!("group offset commit (lag monitoring only): {e}");
            }
        }
        if let Some(why) = shared.restart.lock().ok().and_then(|mut r| r.take()) {
            let _ = tx.send(Msg::Lost(why));
            lost = true;
            break;
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            watch(
                &consumer,
                &shared,
                &metrics,
                &mut progress,
                &committed,
                stall_after,
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                shared.broker_error(
                    &metrics,
                    "fetch position out of range (topic re-created, truncated, or retention passed it)",
                );
                shared.request_restart("fetch position out of range".into());
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                shared.broker_error(&metrics, &format!("fatal consumer error: {code}"));
                shared.request_restart(format!("fatal consumer error: {code}"));
            }
            Some(Err(e)) => shared.broker_error(&metrics, &e.to_string()),
            Some(Ok(m)) => {
                let topic = m.topic().to_string();
                let Some((stream, mapping)) = topics.get(&topic).copied() else {
                    continue;
                };
                shared.broker_ok();
                let tp = (topic.clone(), m.partition());
                let ts_ms = m.timestamp().to_millis();
                let high = shared.high.lock().ok().and_then(|h| h.get(&tp).copied());
                let pr = progress.entry(tp.clone()).or_insert(Progress {
                    last_message: Instant::now(),
                    high_at_last: 0,
                    stalled: false,
                });
                pr.last_message = Instant::now();
                pr.high_at_last = high.unwrap_or(m.offset() + 1).max(m.offset() + 1);
                if pr.stalled {
                    pr.stalled = false;
                    tracing::info!("kafka: {}/{} fetching again", tp.0, tp.1);
                }
                // The first record of a resumed partition is the one before the manifest's
                // position: the same record means the same log; another means a new topic.
                let check = shared.verify.lock().ok().and_then(|mut v| v.remove(&tp));
                if let Some((o, mark)) = check {
                    if m.offset() == o {
                        let fp = fingerprint(ts_ms, m.payload());
                        if fp == mark {
                            continue;
                        }
                        let (lo, hi) = consumer
                            .fetch_watermarks(&tp.0, tp.1, Duration::from_secs(10))
                            .map(|(l, h)| (Some(l), Some(h)))
                            .unwrap_or((None, None));
                        let to = lo.unwrap_or(0);
                        if let Err(e) =
                            consumer.seek(&tp.0, tp.1, Offset::Offset(to), Duration::from_secs(10))
                        {
                            shared.broker_error(&metrics, &format!("seek {}/{}: {e}", tp.0, tp.1));
                            shared.request_restart(format!("seek failed after a reset: {e}"));
                            continue;
                        }
                        let r = SourceReset {
                            topic: tp.0.clone(),
                            partition: tp.1,
                            kind: "topic_recreated",
                            expected_offset: o + 1,
                            expected: format!(
                                "record at offset {o} with fingerprint {mark} (the last one read)"
                            ),
                            low_watermark: lo,
                            high_watermark: hi,
                            found: format!(
                                "a different record at offset {o} (fingerprint {fp}): the topic was deleted and re-created"
                            ),
                            resumed_offset: to,
                            records_lost: None,
                            action: format!("read the new topic from its start, offset {to}"),
                        };
                        if tx.send(Msg::SourceReset(r)).is_err() {
                            break;
                        }
                        continue;
                    } else if m.offset() > o + 1 {
                        tracing::info!(
                            "kafka: {}/{}: resumed at {} instead of {} (records compacted or transaction markers)",
                            tp.0,
                            tp.1,
                            m.offset(),
                            o + 1
                        );
                    }
                }
                let source = keys
                    .entry(tp)
                    .or_insert_with(|| {
                        Arc::new(SourceId::Kafka {
                            topic: topic.clone(),
                            partition: m.partition(),
                        })
                    })
                    .clone();
                let null_value = m.payload().is_none();
                let payload = m.payload().unwrap_or_default().to_vec();
                metrics.source_records.inc();
                metrics.source_bytes.add(payload.len() as u64);
                let msg = Msg::Data {
                    stream,
                    source,
                    item: Framed::Record {
                        offset: m.offset().max(0) as u64,
                        line: 0,
                        bytes: Cow::Owned(payload),
                    },
                    next: m.offset() + 1,
                    null_value,
                    ts_ms,
                    mapping,
                    format: if stream == Stream::Frames {
                        Format::Hj1239
                    } else {
                        Format::Ndjson
                    },
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        }
    }
    if lost {
        // Nothing read since the last commit may be committed now: close without the
        // revoke callback's commit (the worker no longer listens) and without waiting.
        metrics.clear_partitions();
        return;
    }
    // Leave the group cleanly: the revoke callback commits what was read.
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if consumer.poll(Duration::from_millis(50)).is_none()
            && consumer
                .assignment()
                .map(|a| a.count() == 0)
                .unwrap_or(true)
        {
            break;
        }
    }
    metrics.clear_partitions();
}

/// A partition stalls when records arrived on the broker since its last message (the high
/// watermark grew) and that message is older than `stall_after`.
fn stalls(since_last: Duration, high_at_last: i64, high_now: i64, stall_after: Duration) -> bool {
    high_now > high_at_last && since_last >= stall_after
}

/// Publishes per-partition lag and idle time, and flags partitions that stopped fetching
/// while records arrive (the high watermark grew since their last message, for longer
/// than `stall_after`): logged once per stall, counted in `partition_stalls_total`.
fn watch(
    consumer: &BaseConsumer<KafkaCtx>,
    shared: &Shared,
    metrics: &Metrics,
    progress: &mut HashMap<(String, i32), Progress>,
    committed: &HashMap<(String, i32), i64>,
    stall_after: Duration,
) {
    let Ok(assigned) = consumer.assignment() else {
        return;
    };
    let high = shared.high.lock().map(|h| h.clone()).unwrap_or_default();
    let mut now_assigned = Vec::new();
    for e in assigned.elements() {
        let tp = (e.topic().to_string(), e.partition());
        let hi = high.get(&tp).copied();
        let pr = progress.entry(tp.clone()).or_insert(Progress {
            last_message: Instant::now(),
            high_at_last: hi.unwrap_or(0),
            stalled: false,
        });
        if let Some(h) = hi
            && !pr.stalled
            && stalls(pr.last_message.elapsed(), pr.high_at_last, h, stall_after)
        {
            pr.stalled = true;
            metrics.partition_stalls.inc();
            tracing::warn!(
                "kafka: {}/{} stopped fetching: no message for {:.0} s while its high watermark grew from {} to {h}",
                tp.0,
                tp.1,
                pr.last_message.elapsed().as_secs_f64(),
                pr.high_at_last
            );
        }
        now_assigned.push((
            format!("{}/{}", tp.0, tp.1),
            hi,
            committed.get(&tp).copied(),
            pr.last_message.elapsed().as_secs_f64(),
        ));
    }
    progress.retain(|tp, _| {
        assigned
            .elements()
            .iter()
            .any(|e| e.topic() == tp.0 && e.partition() == tp.1)
    });
    metrics.set_partitions(now_assigned);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_checks_the_manifest_offset_against_the_watermarks() {
        // Issue 10 item 2: manifest 500, topic re-created with 100 records.
        let Start::Reset(r) = start_of("t", 0, 500, 0, 100, true) else {
            panic!("not a reset")
        };
        assert_eq!(r.kind, "offset_above_high_watermark");
        assert_eq!((r.expected_offset, r.resumed_offset), (500, 0));
        assert_eq!((r.low_watermark, r.high_watermark), (Some(0), Some(100)));
        assert_eq!(r.records_lost, None);
        // Retention deleted 500..1199 before they were read.
        let Start::Reset(r) = start_of("t", 3, 500, 1200, 5000, true) else {
            panic!("not a reset")
        };
        assert_eq!(r.kind, "offset_below_low_watermark");
        assert_eq!((r.resumed_offset, r.records_lost), (1200, Some(700)));
        // Inside the log: compare the record before the position (600 records, item 2).
        assert_eq!(start_of("t", 0, 500, 0, 600, true), Start::Verify(499));
        assert_eq!(start_of("t", 0, 500, 0, 600, false), Start::At(500));
        // At the high watermark (nothing new) and at the low watermark.
        assert_eq!(start_of("t", 0, 600, 0, 600, true), Start::Verify(599));
        assert_eq!(start_of("t", 0, 40, 40, 90, true), Start::At(40));
    }

    #[test]
    fn fingerprint_tells_records_apart() {
        let a = fingerprint(Some(1_790_000_000_000), Some(b"{\"read_id\":\"r1\"}"));
        assert_eq!(a.len(), 16);
        assert_eq!(
            a,
            fingerprint(Some(1_790_000_000_000), Some(b"{\"read_id\":\"r1\"}"))
        );
        assert_ne!(
            a,
            fingerprint(Some(1_790_000_000_001), Some(b"{\"read_id\":\"r1\"}"))
        );
        assert_ne!(
            a,
            fingerprint(Some(1_790_000_000_000), Some(b"{\"read_id\":\"r2\"}"))
        );
        // A tombstone differs from an empty value.
        assert_ne!(fingerprint(None, None), fingerprint(None, Some(b"")));
    }

    #[test]
    fn watchdog_flags_a_partition_idle_while_its_log_grows() {
        let after = Duration::from_secs(60);
        // Idle 61 s while 40 records arrived: stalled.
        assert!(stalls(Duration::from_secs(61), 1000, 1040, after));
        // Idle 61 s with nothing new: a quiet topic, not a stall.
        assert!(!stalls(Duration::from_secs(61), 1000, 1000, after));
        // Records waiting but the last message is recent: still fetching.
        assert!(!stalls(Duration::from_secs(5), 1000, 1040, after));
    }

    #[test]
    fn topic_id_change_lines() {
        assert_eq!(
            topic_id_change(
                "Topic plates changed id from 3q2-7wAAQkKm9vX0zAAAAA to Vw8dL2xUQ0a7p8b2c1d2eA"
            ),
            Some("plates")
        );
        // A first id is not a change.
        assert_eq!(
            topic_id_change(
                "Topic plates changed id from AAAAAAAAAAAAAAAAAAAAAA to Vw8dL2xUQ0a7p8b2c1d2eA"
            ),
            None
        );
        assert_eq!(
            topic_id_change("Topic plates partition count changed from 1 to 2"),
            None
        );
    }

    #[test]
    fn broker_errors_are_logged_once_per_kind_and_all_counted() {
        let s = Shared::default();
        let m = Metrics::default();
        // What librdkafka says while a broker is down, in turn: one kind.
        for i in 0..5 {
            s.broker_error(
                &m,
                &format!("127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after {i}ms in state CONNECT)"),
            );
            s.broker_error(&m, "Message consumption error: BrokerTransportFailure (Local: Broker transport failure)");
            s.broker_error(&m, "1/1 brokers are down");
            s.broker_error(&m, "Message consumption error: AllBrokersDown (Local: All broker connections are down)");
        }
        assert_eq!(m.errors.get(), 20);
        {
            let l = s.errors.lock().unwrap();
            assert_eq!(l.kinds.len(), 1);
            let k = &l.kinds["broker unreachable"];
            assert_eq!(k.repeats, 19, "logged once, then repeats counted");
            assert_eq!(k.backoff_s, 10);
        }
        // Another kind is logged once too; offsets in it do not make it new.
        s.broker_error(
            &m,
            "t/0: watermarks not available (timed out); resuming at 41 unchecked",
        );
        s.broker_error(
            &m,
            "t/0: watermarks not available (timed out); resuming at 42 unchecked",
        );
        assert_eq!(s.errors.lock().unwrap().kinds.len(), 2);
        // The broker answers: the outage is over; the next failure is logged again.
        s.broker_ok();
        assert!(s.errors.lock().unwrap().kinds.is_empty());
        s.broker_error(
            &m,
            "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed",
        );
        assert_eq!(
            s.errors.lock().unwrap().kinds["broker unreachable"].repeats,
            0
        );
        assert_eq!(m.errors.get(), 23);
    }
}
