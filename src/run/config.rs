//! `plumewatch run` configuration (TOML). Every option has a documented default; see
//! `fixtures/run.example.toml` for a complete file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

fn d_instance() -> String {
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

/// The keys of [`RunConfig`] outside its source sections (unknown keys are an error: see
/// [`RunConfig::parse`]).
const RUN_KEYS: &[&str] = &[
    "tables",
    "instance_id",
    "limits",
    "time_zone",
    "batch",
    "commit",
    "alerts",
    "sites",
    "metrics",
    "idle_exit_ms",
    "channel_capacity",
    "serve",
];

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
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
    /// The sources, one section per kind (`crate::source`): `[[files]]` (files or `-` =
    /// stdin), `[[tcp]]` (TCP listeners), `[kafka]` (topics and the alert topic).
    #[serde(flatten)]
    pub sources: SourcesConfig,
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
    /// `[serve]`: host the HTTP server (`plumewatch serve`'s, same options:
    /// `fixtures/serve.example.toml`) in this process, over `tables`; the run's entrance alerts
    /// reach the alert board as they are delivered. Default: none.
    #[serde(default)]
    pub serve: Option<crate::serve::ServeConfig>,
}

pub use crate::source::SourcesConfig;
pub use crate::source::file::FileSourceConfig as FileSource;
pub use crate::source::kafka::{KafkaConfig, TopicConfig};
pub use crate::source::tcp::TcpSourceConfig as TcpSource;

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
        let c = Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
        c.check()?;
        Ok(c)
    }

    /// Parses a config text. Unknown keys are an error naming the key (a misspelt option
    /// must not be silently ignored).
    pub fn parse(text: &str) -> anyhow::Result<RunConfig> {
        let table: toml::Table = toml::from_str(text)?;
        for k in table.keys() {
            if !RUN_KEYS.contains(&k.as_str()) && !SourcesConfig::SECTIONS.contains(&k.as_str()) {
                let mut known: Vec<&str> = RUN_KEYS.to_vec();
                known.extend(SourcesConfig::SECTIONS);
                anyhow::bail!("unknown field `{k}`, expected one of {}", known.join(", "));
            }
        }
        Ok(toml::from_str(text)?)
    }

    /// Checks the combination of options.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.sources.is_empty() {
            anyhow::bail!(
                "no sources: give [kafka] topics, [[files]] or [[tcp]] ({})",
                SourcesConfig::SECTIONS.join(", ")
            );
        }
        self.sources.check()?;
        if let Some(s) = &self.serve {
            s.check()?;
        }
        if self.instance_id.is_empty() || self.instance_id.contains(['/', '.']) {
            anyhow::bail!("instance_id must be non-empty without '/' or '.'");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example parses and passes the checks; so does its every commented
    /// source option written out (`[[files]]` as CSV with a mapping, `[[tcp]]`).
    #[test]
    fn example_config_and_its_source_options_parse() {
        let text = include_str!("../../fixtures/run.example.toml");
        let c = RunConfig::parse(text).unwrap();
        c.check().unwrap();
        assert_eq!(c.sources.kafka.as_ref().unwrap().topics.len(), 4);
        let more = format!(
            "{text}\n[[files]]\nstream = \"rsd\"\npath = \"/data/p.csv\"\nformat = \"csv\"\nmapping = \"fixtures/mappings/conox.toml\"\nmax_record_bytes = 1048576\n[[tcp]]\nstream = \"frames\"\nlisten = \"0.0.0.0:7001\"\nformat = \"hj1239\"\nmax_connections = 64\n"
        );
        let c = RunConfig::parse(&more).unwrap();
        c.check().unwrap();
        assert_eq!(
            c.sources.files[0].format,
            Some(crate::source::file::Format::Csv)
        );
        assert_eq!(c.sources.tcp[0].max_connections, 64);
    }

    /// A misspelt key is an error naming it (the source sections are flattened, so serde's
    /// own check cannot see it), as is a bad combination inside a source section.
    #[test]
    fn unknown_keys_and_bad_sources_are_errors() {
        let e = RunConfig::parse("tables = \"t\"\nidle_exit = 5\n").unwrap_err();
        assert!(
            e.to_string().starts_with("unknown field `idle_exit`"),
            "{e}"
        );
        let e = RunConfig::parse(
            "tables = \"t\"\n[[tcp]]\nstream = \"rsd\"\nlisten = \"x\"\nport = 1\n",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("unknown field `port`"), "{e:#}");
        let c = RunConfig::parse(
            "tables = \"t\"\n[[tcp]]\nstream = \"rsd\"\nlisten = \"127.0.0.1:1\"\nformat = \"csv\"\n",
        )
        .unwrap();
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("format csv is not offered over TCP"), "{e}");
        let c = RunConfig::parse("tables = \"t\"\n").unwrap();
        assert!(c.check().unwrap_err().to_string().starts_with("no sources"));
    }

    /// The example run config loads, and so does it with its commented `[serve]` section
    /// switched on (the hosted server's certificate, users, board options and the patrol's
    /// sites).
    #[test]
    fn example_config_with_and_without_serve() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/run.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(RunConfig::parse(&text).unwrap().serve.is_none());
        let (head, tail) = text.split_at(text.find("\n# [serve]\n").unwrap() + 1);
        let on: String = tail
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c = RunConfig::parse(&format!("{head}{on}\n")).unwrap();
        c.check().unwrap();
        let s = c.serve.unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080");
        let tls = s.tls.as_ref().unwrap();
        assert_eq!(tls.cert, Path::new("/etc/plumewatch/tls/fullchain.pem"));
        assert_eq!(tls.key, Path::new("/etc/plumewatch/tls/privkey.pem"));
        assert_eq!(s.board.poll_ms, 1000);
        assert_eq!(s.users[0].sites, ["C130102001"]);
        // The token is the example config's "change-me-gate".
        assert_eq!(
            s.users[0].token_sha256.as_deref(),
            Some(
                crate::serve::auth::hash_secret("change-me-gate")
                    .unwrap()
                    .1
                    .as_str()
            )
        );
        let e = RunConfig::parse(&format!("{head}[serve]\nlisten_on = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_on"), "{e}");
    }
}
