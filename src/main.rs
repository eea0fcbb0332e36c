//! The `plumewatch` command line. Only argument handling lives here; the work is in the
//! library (`plumewatch::*`).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use plumewatch::ingest::{self, Format, IngestOptions, Stream};
use plumewatch::limits::LimitSet;
use plumewatch::query::{self, lists, output::OutputFormat};
use plumewatch::synth::rsd as gen_rsd;

/// `println!` that returns the write error instead of panicking, so `plumewatch … | head`
/// ends quietly (main treats a broken pipe as the reader going away, not as an error).
macro_rules! outln {
    () => { writeln!(std::io::stdout().lock())? };
    ($($t:tt)*) => { writeln!(std::io::stdout().lock(), $($t)*)? };
}

#[derive(Parser)]
#[command(
    name = "plumewatch",
    version,
    about = "Streaming analyzer for vehicle-emission enforcement: RSD passes and remote OBD in, enforcement lists out."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The query memory bound of the commands that run SQL.
#[derive(clap::Args, Clone, Copy, Debug)]
struct QueryMemory {
    /// Memory this process's queries may hold together before sorts and aggregates spill to
    /// the temp directory (e.g. 512M, 2G); an operator that cannot spill fails past it.
    #[arg(long, default_value = "512M", value_parser = parse_bytes)]
    query_memory: usize,
}

impl Cmd {
    /// `--query-memory` of the commands that run SQL.
    fn query_memory(&self) -> Option<QueryMemory> {
        match self {
            Cmd::Query { mem, .. }
            | Cmd::List { mem, .. }
            | Cmd::Plot { mem, .. }
            | Cmd::Run { mem, .. }
            | Cmd::Serve { mem, .. } => Some(*mem),
            _ => None,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole flow on bundled and generated data (REAL: CONOX passes, a healthy
    /// petrol car's Torque log; SYNTHETIC: a registry, passes and plate reads with Chinese
    /// plates, a labelled gas-truck fleet as HJ 1239 frames), print the enforcement lists, the
    /// fleet's labels against the detectors' verdicts and an evidence plot's path, and write a
    /// ready `serve` config (demo-only secrets) for the tables.
    Demo {
        /// Tables directory to write (default: a new folder under the system temp dir).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// Then serve the demo tables with the demo's serve.toml (until Ctrl-C).
        #[arg(long)]
        serve: bool,
    },
    /// Ingest files (or `-` for stdin) into the tables under --out.
    Ingest {
        #[arg(long, value_enum)]
        stream: Stream,
        #[arg(long, value_enum, default_value = "ndjson")]
        format: Format,
        /// VIN of an OBD log that has no VIN column.
        #[arg(long)]
        vin: Option<String>,
        /// Column mapping TOML (vendor column/field names, units, missing tokens).
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Limit set TOML (default: the embedded cn-observed set).
        #[arg(long)]
        limits: Option<PathBuf>,
        /// Tables directory.
        #[arg(long)]
        out: PathBuf,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
        /// Longest NDJSON/CSV record (line), bytes (suffixes K, M, G: KiB, MiB, GiB); a longer
        /// one is quarantined with its length and first 4 KiB, never held in memory.
        #[arg(long, default_value = "1M", value_parser = parse_bytes)]
        max_record_bytes: usize,
        /// Read inputs again even when the manifest shows the same content already ingested
        /// (rows whose key is already stored are still not written twice).
        #[arg(long)]
        force: bool,
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Run SQL (DataFusion) over every table under --tables. Table and CSV output show times
    /// in the enforcement zone with their offset (JSON: UTC); the `date` column is the
    /// partition day in that zone.
    Query {
        #[arg(long)]
        tables: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// Limit set TOML whose [time].zone times are shown in (default: Asia/Shanghai).
        #[arg(long)]
        limits: Option<PathBuf>,
        sql: String,
        #[command(flatten)]
        mem: QueryMemory,
    },
    /// Run a named enforcement list; without NAME, list the lists and their parameters.
    /// Dates (since, until) are calendar days in the enforcement zone (limit set [time].zone,
    /// default Asia/Shanghai), whatever the machine's TZ; table and CSV output show times in
    /// that zone with their offset.
    List {
        name: Option<String>,
        #[arg(long)]
        tables: Option<PathBuf>,
        /// KEY=VALUE, bound as a query parameter (repeatable).
        #[arg(long = "param", value_parser = parse_kv)]
        params: Vec<(String, String)>,
        /// Limit set TOML supplying parameter defaults.
        #[arg(long)]
        limits: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        #[command(flatten)]
        mem: QueryMemory,
    },
    /// Decode one HJ 1239 frame given in hex, field by field (exits non-zero when rejected).
    InspectFrame {
        hex: String,
        #[arg(long, value_enum, default_value = "text")]
        format: InspectFormat,
    },
    /// Plot upstream lambda and rear O2 voltage of one vehicle with flagged windows shaded (SVG).
    Plot {
        vin: String,
        #[arg(long)]
        tables: PathBuf,
        /// First instant (a date is a day in the enforcement zone, or RFC 3339).
        #[arg(long, default_value = "1970-01-01")]
        from: String,
        /// Instant after the last (a date is a day in the enforcement zone, or RFC 3339).
        #[arg(long, default_value = "2100-01-01")]
        to: String,
        #[arg(long)]
        out: PathBuf,
        /// Limit set TOML whose [time].zone the time axis and the dates are in (default:
        /// Asia/Shanghai).
        #[arg(long)]
        limits: Option<PathBuf>,
        /// Samples further apart than this many seconds are not joined by a line.
        #[arg(long, default_value_t = 5.0)]
        gap_s: f64,
        #[command(flatten)]
        mem: QueryMemory,
    },
    /// Streaming mode: consume Kafka topics (or files / stdin) until stopped, commit the
    /// tables exactly once, send alerts. Either --config FILE, or the flags below.
    Run {
        /// Configuration TOML (see fixtures/run.example.toml); flags below override it.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        brokers: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        tables: Option<PathBuf>,
        /// STREAM=TOPIC, STREAM one of rsd, obd, frames, plates (repeatable).
        #[arg(long = "topic", value_parser = parse_kv)]
        topics: Vec<(String, String)>,
        #[arg(long)]
        alerts_topic: Option<String>,
        /// Append alerts as NDJSON to this file (`-` = stdout).
        #[arg(long)]
        alerts_ndjson: Option<String>,
        /// Site id of an urban entrance (repeatable).
        #[arg(long = "entrance")]
        entrances: Vec<String>,
        #[arg(long)]
        instance_id: Option<String>,
        /// Prometheus endpoint host:port.
        #[arg(long)]
        metrics_listen: Option<String>,
        /// Exit after this many ms without input (after a final commit).
        #[arg(long)]
        idle_exit_ms: Option<u64>,
        #[command(flatten)]
        mem: QueryMemory,
    },
    /// Serve the tables over HTTP to police (plate lookups, lists as JSON/CSV/XLSX) and to
    /// entrance patrols (the live alert board /board, from the committed `alerts` table), with
    /// users and roles from the `[serve]` config (fixtures/serve.example.toml), every request
    /// audited in the `audit` table. Reads committed data only; new commits are seen at once.
    /// A `[serve]` section in a `run` config hosts the same server inside `run`.
    Serve {
        #[arg(long)]
        tables: PathBuf,
        /// Config TOML with a [serve] section (users, listen address, limits).
        #[arg(long)]
        config: Option<PathBuf>,
        /// host:port, overriding [serve] listen.
        #[arg(long)]
        listen: Option<String>,
        #[command(flatten)]
        mem: QueryMemory,
    },
    /// Read a secret (password or token) from stdin and print its argon2 hash (for
    /// `password_hash`) and its SHA-256 (for `token_sha256`) for the [serve] config.
    HashSecret,
    /// Generate seeded synthetic inputs (SYNTHETIC data, for benchmarks and demos).
    Gen {
        #[command(subcommand)]
        what: GenCmd,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum InspectFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct FleetArgs {
    /// Number of vehicles (50 % healthy, 10 % each fault class).
    #[arg(long)]
    vehicles: usize,
    /// Minutes of 1 Hz data per vehicle.
    #[arg(long, default_value_t = 30)]
    minutes: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    /// Labels CSV (vin, class, expected rules); default OUT with `.labels.csv`.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Registry CSV (natural gas, China VI); default OUT with `.vehicles.csv`.
    #[arg(long)]
    registry: Option<PathBuf>,
}

#[derive(Subcommand)]
enum GenCmd {
    /// A labelled OBD fleet (healthy; catalyst removed; flat simulator; square-wave simulator;
    /// slow sensor; missing sensor) as `obd_sample` NDJSON.
    Obd(FleetArgs),
    /// The same fleet as HJ 1239 type-0x03 binary frames.
    Frames(FleetArgs),
    /// NDJSON RSD passes with Chinese plates, plus the matching registry CSV.
    Rsd {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// Registry CSV to write (default: OUT with `.vehicles.csv`).
        #[arg(long)]
        registry: Option<PathBuf>,
        /// Fleet size (default: count / 20, at least 100).
        #[arg(long)]
        vehicles: Option<usize>,
        /// Days the passes span.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Share of the fleet that are high emitters (0–1): their passes fail the limits
        /// most of the time (about 4 % of passes fail at the default 0.05).
        #[arg(long, default_value_t = gen_rsd::HIGH_EMITTER_SHARE, value_parser = parse_share)]
        high_emitter_share: f64,
        /// Share of trucks registered as China III (0–1; default 0.08). At 0.5 about 12 % of
        /// passes are China III diesel sightings (detections; 1.19 M of 10 M in scripts/serve_load.sh).
        #[arg(long, default_value_t = gen_rsd::CHINA3_TRUCK_SHARE, value_parser = parse_share)]
        china3_truck_share: f64,
        /// Seed of the fleet (plates, VINs, registry), default --seed. Give the same fleet seed
        /// and different --seed values to generate passes in chunks over one registry.
        #[arg(long)]
        fleet_seed: Option<u64>,
        /// Also write this many ANPR plate reads to --plates-out.
        #[arg(long, default_value_t = 0)]
        plate_reads: usize,
        #[arg(long)]
        plates_out: Option<PathBuf>,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

/// Writes query results; table and CSV output show times in `zone` with their offset.
fn show(
    batches: &[datafusion::arrow::record_batch::RecordBatch],
    format: OutputFormat,
    zone: chrono_tz::Tz,
    w: &mut dyn Write,
) -> Result<()> {
    if format == OutputFormat::Json {
        return query::output::write(batches, format, w);
    }
    let local = query::output::in_zone(batches, zone.name())?;
    query::output::write(&local, format, w)
}

/// A share between 0 and 1.
fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("expected a share between 0 and 1, got '{s}'")),
    }
}

/// `4096`, `64K`, `1M`, `2G` (binary multiples) → bytes.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches(['i', 'I']);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    match num.trim().parse::<usize>() {
        Ok(n) if n > 0 => n
            .checked_mul(mult)
            .ok_or_else(|| format!("'{s}' is too large")),
        _ => Err(format!(
            "expected a positive size such as 4096, 64K or 1M, got '{s}'"
        )),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn main() {
    let cli = Cli::parse();
    if let Some(m) = cli.cmd.query_memory() {
        query::set_query_memory_bytes(m.query_memory);
    }
    // The server logs one line per request (route template, status, time; never a plate).
    let level = match cli.cmd {
        Cmd::Serve { .. } | Cmd::Demo { serve: true, .. } => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        // Colour codes only on a terminal: logs piped to a file or journald stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(e) = run(cli) {
        // `plumewatch query … | head`: the reader went away; that is not an error.
        if is_broken_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("error: {}", error_text(&e));
        std::process::exit(1);
    }
}

/// True when the error is a write to a closed pipe (EPIPE).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(
                |e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == BrokenPipe),
            )
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(BrokenPipe))
    })
}

/// The error and its causes, `: `-separated, each said once (an error whose text already
/// includes its cause, like "path: No such file", is not followed by the cause again).
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in e.chain() {
        let t = c.to_string();
        if out.contains(&t) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&t);
    }
    out
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Demo { out, format, serve } => demo(out, format, serve),
        Cmd::Ingest {
            stream,
            format,
            vin,
            mapping,
            limits,
            out,
            quiet,
            max_record_bytes,
            force,
            inputs,
        } => {
            let limits = LimitSet::load(limits.as_deref())?;
            let s = ingest::ingest(&IngestOptions {
                stream,
                format,
                vin: vin.as_deref(),
                mapping: mapping.as_deref(),
                limits: &limits,
                out: &out,
                inputs: &inputs,
                progress: !quiet && std::io::stderr().is_terminal(),
                max_record_bytes,
                force,
                commit_every: ingest::COMMIT_EVERY_RECORDS,
            })?;
            outln!("{s}");
            if s.all_rejected() {
                bail!(
                    "every record ({}) was rejected; see the quarantine table",
                    s.records_in
                );
            }
            Ok(())
        }
        Cmd::Query {
            tables,
            format,
            limits,
            sql,
            ..
        } => {
            let zone = LimitSet::load(limits.as_deref())?.zone();
            let batches = runtime()?.block_on(query::run_sql(&tables, &sql))?;
            show(&batches, format, zone, &mut std::io::stdout().lock())
        }
        Cmd::List {
            name,
            tables,
            params,
            limits,
            format,
            ..
        } => {
            let limits = LimitSet::load(limits.as_deref())?;
            let Some(name) = name else {
                outln!(
                    "Dates (since, until) are calendar days in {} (limit set [time].zone); a time with an offset is that instant.",
                    limits.zone()
                );
                for l in lists::LISTS {
                    outln!("{}: {}", l.name, l.description);
                    for p in l.params {
                        outln!("    --param {}=…  {}", p.name, p.doc);
                    }
                }
                return Ok(());
            };
            let list = lists::find(&name).with_context(|| {
                let names: Vec<_> = lists::LISTS.iter().map(|l| l.name).collect();
                format!("no list '{name}' (lists: {})", names.join(", "))
            })?;
            let Some(tables) = tables else {
                bail!("--tables DIR is required to run a list")
            };
            let batches = runtime()?.block_on(lists::run(&tables, list, &limits, &params))?;
            show(
                &batches,
                format,
                limits.zone(),
                &mut std::io::stdout().lock(),
            )
        }
        Cmd::InspectFrame { hex, format } => {
            let bytes = plumewatch::inspect::parse_hex(&hex)?;
            let text = plumewatch::inspect::inspect(&bytes, matches!(format, InspectFormat::Json))?;
            print!("{text}");
            if !text.ends_with('\n') {
                outln!();
            }
            Ok(())
        }
        Cmd::Plot {
            vin,
            tables,
            from,
            to,
            out,
            limits,
            gap_s,
            ..
        } => {
            if !(gap_s.is_finite() && gap_s > 0.0) {
                anyhow::bail!("--gap-s must be a positive number of seconds (got {gap_s})");
            }
            let zone = LimitSet::load(limits.as_deref())?.zone();
            let iso = |t: &str| -> Result<String> {
                Ok(plumewatch::time::parse_bound(t, zone)
                    .map_err(|m| anyhow::anyhow!("{t}: {m}"))?
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            };
            let s = runtime()?.block_on(plumewatch::query::plot::plot(
                &tables,
                &vin,
                &iso(&from)?,
                &iso(&to)?,
                &out,
                &plumewatch::query::plot::PlotOptions {
                    zone,
                    gap_ms: (gap_s * 1000.0).round() as i64,
                },
            ))?;
            outln!(
                "wrote {} ({} samples, {} flagged windows)",
                out.display(),
                s.samples,
                s.windows.len()
            );
            Ok(())
        }
        Cmd::Run {
            config,
            brokers,
            group,
            tables,
            topics,
            alerts_topic,
            alerts_ndjson,
            entrances,
            instance_id,
            metrics_listen,
            idle_exit_ms,
            ..
        } => {
            use plumewatch::run::config::{KafkaConfig, RunConfig, TopicConfig};
            let mut cfg = match &config {
                Some(p) => RunConfig::load(p)?,
                None => {
                    let Some(t) = tables.clone() else {
                        bail!("give --config FILE or --tables DIR with --brokers and --topic")
                    };
                    toml::from_str::<RunConfig>(&format!("tables = {:?}", t.display().to_string()))?
                }
            };
            if let Some(t) = tables {
                cfg.tables = t;
            }
            if brokers.is_some() || !topics.is_empty() {
                let mut k = cfg.sources.kafka.take().unwrap_or(KafkaConfig {
                    brokers: String::new(),
                    group: "plumewatch".into(),
                    topics: vec![],
                    alerts_topic: None,
                    properties: Default::default(),
                    stall_after_s: None,
                });
                if let Some(b) = brokers {
                    k.brokers = b;
                }
                for (s, t) in topics {
                    let stream: Stream = clap::ValueEnum::from_str(&s, true)
                        .map_err(|e| anyhow::anyhow!("--topic {s}={t}: {e}"))?;
                    k.topics.push(TopicConfig {
                        stream,
                        topic: t,
                        mapping: None,
                    });
                }
                cfg.sources.kafka = Some(k);
            }
            if let (Some(k), Some(g)) = (cfg.sources.kafka.as_mut(), group) {
                k.group = g;
            }
            if let (Some(k), Some(a)) = (cfg.sources.kafka.as_mut(), alerts_topic) {
                k.alerts_topic = Some(a);
            }
            if alerts_ndjson.is_some() {
                cfg.alerts.ndjson = alerts_ndjson;
            }
            cfg.sites.urban_entrances.extend(entrances);
            if let Some(i) = instance_id {
                cfg.instance_id = i;
            }
            if metrics_listen.is_some() {
                cfg.metrics.listen = metrics_listen;
            }
            if idle_exit_ms.is_some() {
                cfg.idle_exit_ms = idle_exit_ms;
            }
            cfg.check()?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                // A second signal while stopping ends the process at once (exit 1).
                signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())?;
                signal_hook::flag::register(sig, stop.clone())?;
            }
            let summary = plumewatch::run::run(cfg, stop)?;
            eprintln!("{summary}");
            Ok(())
        }
        Cmd::Serve {
            tables,
            config,
            listen,
            ..
        } => {
            let mut cfg = match &config {
                Some(p) => plumewatch::serve::ServeConfig::load(p)?,
                None => plumewatch::serve::ServeConfig::default(),
            };
            if let Some(l) = listen {
                cfg.listen = l;
            }
            plumewatch::serve::run_until_signal(&tables, cfg)
        }
        Cmd::HashSecret => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let secret = line.trim_end_matches(['\r', '\n']);
            if secret.is_empty() {
                bail!("give the secret on stdin (one line)");
            }
            let (phc, sha) = plumewatch::serve::auth::hash_secret(secret)?;
            outln!("password_hash = \"{phc}\"");
            outln!("token_sha256 = \"{sha}\"");
            Ok(())
        }
        Cmd::Gen {
            what: GenCmd::Obd(a),
        } => gen_fleet(a, false),
        Cmd::Gen {
            what: GenCmd::Frames(a),
        } => gen_fleet(a, true),
        Cmd::Gen {
            what:
                GenCmd::Rsd {
                    count,
                    seed,
                    out,
                    registry,
                    vehicles,
                    days,
                    high_emitter_share,
                    china3_truck_share,
                    fleet_seed,
                    plate_reads,
                    plates_out,
                },
        } => {
            let n = vehicles.unwrap_or((count / 20).max(100));
            let mix = gen_rsd::FleetMix {
                high_emitter_share,
                china3_truck_share,
            };
            let fleet = gen_rsd::fleet_with(n, fleet_seed.unwrap_or(seed), &mix);
            let reg = registry.unwrap_or_else(|| out.with_extension("vehicles.csv"));
            gen_rsd::write_registry(&mut create(&reg)?, &fleet)?;
            let mut w = create(&out)?;
            let bytes = gen_rsd::write_passes(&mut w, &fleet, count, days, seed)?;
            w.flush()?;
            outln!(
                "wrote {count} passes ({:.1} MB) to {} and {n} vehicles to {}",
                bytes as f64 / 1e6,
                out.display(),
                reg.display()
            );
            if plate_reads > 0 {
                let p = plates_out.unwrap_or_else(|| out.with_extension("plates.ndjson"));
                let mut w = create(&p)?;
                gen_rsd::write_plate_reads(&mut w, &fleet, plate_reads, days, seed)?;
                w.flush()?;
                outln!("wrote {plate_reads} plate reads to {}", p.display());
            }
            Ok(())
        }
    }
}

fn gen_fleet(a: FleetArgs, frames: bool) -> Result<()> {
    use plumewatch::synth::obd as fleet;
    let labels = a
        .labels
        .unwrap_or_else(|| a.out.with_extension("labels.csv"));
    let registry = a
        .registry
        .unwrap_or_else(|| a.out.with_extension("vehicles.csv"));
    fleet::write_labels_and_registry(
        &mut create(&labels)?,
        &mut create(&registry)?,
        a.vehicles,
        a.seed,
    )?;
    let mut w = create(&a.out)?;
    let o = if frames {
        fleet::write_frames(&mut w, a.vehicles, a.minutes, a.seed)?
    } else {
        fleet::write_ndjson(&mut w, a.vehicles, a.minutes, a.seed)?
    };
    w.flush()?;
    outln!(
        "wrote {} samples{} of {} vehicles ({:.1} MB) to {}; labels {}; registry {}",
        o.samples,
        if frames {
            format!(" in {} frames", o.frames)
        } else {
            String::new()
        },
        o.vehicles,
        o.bytes as f64 / 1e6,
        a.out.display(),
        labels.display(),
        registry.display()
    );
    Ok(())
}

fn create(p: &Path) -> Result<BufWriter<File>> {
    if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    Ok(BufWriter::new(File::create(p).with_context(|| {
        format!("cannot create {}", p.display())
    })?))
}

fn demo(out: Option<PathBuf>, format: OutputFormat, serve: bool) -> Result<()> {
    use plumewatch::demo;
    let out = out.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("plumewatch-demo-{}", ingest::new_run_id()))
    });
    let summary = demo::run(&out)?;
    let mut w = std::io::stdout().lock();
    writeln!(w, "{summary}")?;
    let limits = LimitSet::default_set();
    let zone = limits.zone();
    let rt = runtime()?;
    writeln!(
        w,
        "\n== Real data: CONOX (UK 2012–13, University of Denver FEAT and RSD 4600; no plates) =="
    )?;
    let b = rt.block_on(query::run_sql(&out, demo::CONOX_SUMMARY_SQL))?;
    show(&b, format, zone, &mut w)?;
    let mut suspect = None;
    for l in lists::LISTS {
        let b = rt.block_on(lists::run(&out, l, &limits, &[]))?;
        if l.name == lists::GAS_TWC_SUSPECTS.name {
            writeln!(
                w,
                "\n== List {} (SYNTHETIC gas-truck fleet; the REAL log's car is petrol, so never listed: its verdict is below) ==\n\
                 Evidence columns; every column: plumewatch list {} --tables {} --format json",
                l.name,
                l.name,
                out.display()
            )?;
            show(
                &demo::project(&b, &demo::GAS_LIST_COLUMNS)?,
                format,
                zone,
                &mut w,
            )?;
            suspect = demo::first_suspect(&b)?;
        } else {
            writeln!(
                w,
                "\n== List {} (SYNTHETIC plates and registry, labelled as such) ==",
                l.name
            )?;
            show(&b, format, zone, &mut w)?;
        }
    }
    writeln!(
        w,
        "\n== Labels of the SYNTHETIC gas-truck fleet (gen frames --vehicles {} --minutes {} --seed {}) and the REAL healthy log vs the detectors ==",
        demo::FLEET_VEHICLES,
        demo::FLEET_MINUTES,
        demo::FLEET_SEED
    )?;
    let v = rt.block_on(demo::verdicts(&out))?;
    show(&[demo::verdicts_batch(&v)?], format, zone, &mut w)?;
    writeln!(w, "{}", demo::agreement_line(&v))?;
    if let Some((vin, _)) = &suspect {
        let (svg, s) = rt.block_on(demo::evidence_plot(&out, vin, zone))?;
        writeln!(
            w,
            "\n== Evidence plot of a suspect (the first with a rear O2 signal to show) ==\nwrote {} ({} samples, {} flagged windows shaded; open it in a browser)",
            svg.display(),
            s.samples,
            s.windows.len()
        )?;
    }
    let d = demo::write_serve_config(&out)?;
    writeln!(
        w,
        "\nTables written to {}; try:\n  plumewatch query --tables {} \"SELECT verdict, count(*) FROM rsd_passes GROUP BY verdict\"\n",
        out.display(),
        out.display()
    )?;
    write!(
        w,
        "{}",
        demo::serve_instructions(&out, &d, suspect.as_ref().and_then(|(_, p)| p.as_deref()))
    )?;
    w.flush()?;
    drop(w);
    if serve {
        drop(rt);
        let cfg = plumewatch::serve::ServeConfig::load(&d.path)?;
        plumewatch::serve::run_until_signal(&out, cfg)?;
    }
    Ok(())
}
