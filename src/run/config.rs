//! `plumewatch run` configuration (TOML). Every option has a documented default; see
//! `fixtures/run.example.toml` for a complete file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pipeline::Stream;

fn d_instance() -> String {
    "plumewatch".into()
}
fn d_group() -> String {
    "plumewatch".into()
}
fn d_rows() -> usize {
    8192
}
fn d_bytes() -> usize {
    4 << 20
}
fn d_age() -> u64 {
    50
}
fn d_commit() -> u64 {
    2000
}
fn d_capacity() -> usize {
    20_000
}
fn d_dedup() -> u64 {
    600_000
}
fn d_refresh() -> u64 {
    10_000
}
fn d_kinds() -> Vec<String> {
    vec!["entrance_alert".into(), "china3_diesel_sighting".into()]
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Tables directory (Parquet tables and `_manifest/`). Required.
    pub tables: PathBuf,
    /// Stable name of this instance: names its files and manifest entries, so a restart
    /// with the same name resumes its own work. Default `plumewatch`. Several instances in
    /// one group need distinct names.
    #[serde(default = "d_instance")]
    pub instance_id: String,
    /// Limit set TOML (default: the embedded cn-observed set).
    pub limits: Option<PathBuf>,
    /// Enforcement time zone (IANA name), overriding the limit set's `[time].zone`: the
    /// `date=` partition days and naive source times without a zone of their own.
    pub time_zone: Option<String>,
    /// Kafka sources and the alert topic.
    pub kafka: Option<KafkaConfig>,
    /// File (or `-` = stdin) sources.
    #[serde(default)]
    pub files: Vec<FileSource>,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub commit: CommitConfig,
    #[serde(default)]
    pub alerts: AlertConfig,
    #[serde(default)]
    pub sites: SitesConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Exit (after a final commit) once no input arrived for this long, ms. Default: never
    /// (run until SIGINT/SIGTERM). Useful for batch-like runs and tests.
    pub idle_exit_ms: Option<u64>,
    /// Messages buffered between the source and the worker (backpressure bound). Default 20000.
    #[serde(default = "d_capacity")]
    pub channel_capacity: usize,
}

/// Kafka settings.
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

/// One file source (NDJSON, or HJ 1239 frames back to back for `frames`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    pub stream: Stream,
    /// Path, or `-` for stdin (stdin cannot resume after a restart).
    pub path: String,
    pub mapping: Option<PathBuf>,
    /// Longest line, bytes (default 1 MiB); a longer one is quarantined with its length and
    /// first 4 KiB, never held in memory.
    pub max_record_bytes: Option<usize>,
}

/// When a batch is processed and its alerts delivered: rows, bytes or age, first wins.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "d_rows")]
    pub max_rows: usize,
    #[serde(default = "d_bytes")]
    pub max_bytes: usize,
    #[serde(default = "d_age")]
    pub max_age_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: d_rows(),
            max_bytes: d_bytes(),
            max_age_ms: d_age(),
        }
    }
}

/// How often tables are committed (files + manifest entry + Kafka offsets).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitConfig {
    /// Default 2000 ms.
    #[serde(default = "d_commit")]
    pub interval_ms: u64,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            interval_ms: d_commit(),
        }
    }
}

/// Alert delivery.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Kinds sent out: `entrance_alert` and detection rule ids. Default: entrance alerts
    /// and China III sightings.
    #[serde(default = "d_kinds")]
    pub kinds: Vec<String>,
    /// NDJSON file to append alerts to (`-` = stdout). Default: none.
    pub ndjson: Option<String>,
    /// An alert for the same (plate, site, reason) within this many ms of event time after
    /// the last one sent is held back (counted, not sent, not stored). Default 600000
    /// (10 minutes); 0 sends every alert.
    #[serde(default = "d_dedup")]
    pub dedup_window_ms: u64,
    /// The watchlist is rebuilt from the tables after every commit that wrote rows, and at
    /// least this often otherwise (ms), so plates listed by other processes (a registry
    /// ingest, another instance) are watched. Default 10000.
    #[serde(default = "d_refresh")]
    pub watchlist_refresh_ms: u64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            kinds: d_kinds(),
            ndjson: None,
            dedup_window_ms: d_dedup(),
            watchlist_refresh_ms: d_refresh(),
        }
    }
}

/// Sites.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitesConfig {
    /// Site ids of cameras / RSD sites at urban entrances: a watch-listed plate read there
    /// raises an `entrance_alert`.
    #[serde(default)]
    pub urban_entrances: Vec<String>,
}

/// Metrics.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` of the Prometheus text endpoint (`/metrics`). Default: none.
    pub listen: Option<String>,
    /// Alert latency is measured only for input timestamps at most this many seconds old;
    /// older ones are counted as `old`. Default 600.
    pub latency_max_age_s: Option<u64>,
    /// Input timestamps more than this many ms ahead of now are counted as `future`.
    /// Default 1000.
    pub latency_max_future_ms: Option<u64>,
    /// Window of the recent latency quantiles on `/metrics`, seconds. Default 60.
    pub latency_window_s: Option<u64>,
}

impl MetricsConfig {
    /// The latency window these settings describe (defaults filled in).
    pub fn latency_window(&self) -> super::metrics::LatencyWindow {
        let d = super::metrics::LatencyWindow::default();
        super::metrics::LatencyWindow {
            max_age_s: self.latency_max_age_s.unwrap_or(d.max_age_s),
            max_future_ms: self.latency_max_future_ms.unwrap_or(d.max_future_ms),
            window_s: self.latency_window_s.unwrap_or(d.window_s),
        }
    }
}

impl RunConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> anyhow::Result<RunConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let c: RunConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        c.check()?;
        Ok(c)
    }

    /// Checks the combination of options.
    pub fn check(&self) -> anyhow::Result<()> {
        if self
            .kafka
            .as_ref()
            .map(|k| k.topics.is_empty())
            .unwrap_or(true)
            && self.files.is_empty()
        {
            anyhow::bail!("no sources: give [kafka] topics or [[files]]");
        }
        if let Some(k) = &self.kafka {
            for t in &k.topics {
                if t.stream == Stream::Vehicles {
                    anyhow::bail!(
                        "topic {}: the registry is loaded from the tables, not streamed",
                        t.topic
                    );
                }
            }
        }
        if self.instance_id.is_empty() || self.instance_id.contains(['/', '.']) {
            anyhow::bail!("instance_id must be non-empty without '/' or '.'");
        }
        Ok(())
    }
}
