//! The `plumewatch` command line. Only argument handling lives here; the work is in the
//! library (`plumewatch::*`).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use plumewatch::decode::text::TextFormat;
use plumewatch::ingest::{self, IngestOptions, Stream};
use plumewatch::limits::LimitSet;
use plumewatch::query::{self, lists, output::OutputFormat};
use plumewatch::synth::rsd as gen_rsd;

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

#[derive(Clone, Copy, clap::ValueEnum)]
enum InputFormat {
    Ndjson,
    Csv,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole flow on the bundled fixtures (real CONOX passes + a SYNTHETIC registry,
    /// passes and plate reads with Chinese plates) and print the enforcement lists.
    Demo {
        /// Tables directory to write (default: a new folder under the system temp dir).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Ingest files (or `-` for stdin) into the tables under --out.
    Ingest {
        #[arg(long, value_enum)]
        stream: Stream,
        #[arg(long, value_enum, default_value = "ndjson")]
        format: InputFormat,
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
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Run SQL (DataFusion) over every table under --tables.
    Query {
        #[arg(long)]
        tables: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        sql: String,
    },
    /// Run a named enforcement list; without NAME, list the lists and their parameters.
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
    },
    /// Generate seeded synthetic inputs (SYNTHETIC data, for benchmarks and demos).
    Gen {
        #[command(subcommand)]
        what: GenCmd,
    },
}

#[derive(Subcommand)]
enum GenCmd {
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Demo { out, format } => demo(out, format),
        Cmd::Ingest {
            stream,
            format,
            mapping,
            limits,
            out,
            quiet,
            inputs,
        } => {
            let limits = LimitSet::load(limits.as_deref())?;
            let s = ingest::ingest(&IngestOptions {
                stream,
                format: match format {
                    InputFormat::Ndjson => TextFormat::Ndjson,
                    InputFormat::Csv => TextFormat::Csv,
                },
                mapping: mapping.as_deref(),
                limits: &limits,
                out: &out,
                inputs: &inputs,
                progress: !quiet && std::io::stderr().is_terminal(),
            })?;
            println!("{s}");
            Ok(())
        }
        Cmd::Query {
            tables,
            format,
            sql,
        } => {
            let batches = runtime()?.block_on(query::run_sql(&tables, &sql))?;
            query::output::write(&batches, format, &mut std::io::stdout().lock())
        }
        Cmd::List {
            name,
            tables,
            params,
            limits,
            format,
        } => {
            let Some(name) = name else {
                for l in lists::LISTS {
                    println!("{}: {}", l.name, l.description);
                    for p in l.params {
                        println!("    --param {}=…  {}", p.name, p.doc);
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
            let limits = LimitSet::load(limits.as_deref())?;
            let batches = runtime()?.block_on(lists::run(&tables, list, &limits, &params))?;
            query::output::write(&batches, format, &mut std::io::stdout().lock())
        }
        Cmd::Gen {
            what:
                GenCmd::Rsd {
                    count,
                    seed,
                    out,
                    registry,
                    vehicles,
                    days,
                    plate_reads,
                    plates_out,
                },
        } => {
            let n = vehicles.unwrap_or((count / 20).max(100));
            let fleet = gen_rsd::fleet(n, seed);
            let reg = registry.unwrap_or_else(|| out.with_extension("vehicles.csv"));
            gen_rsd::write_registry(&mut create(&reg)?, &fleet)?;
            let mut w = create(&out)?;
            let bytes = gen_rsd::write_passes(&mut w, &fleet, count, days, seed)?;
            w.flush()?;
            println!(
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
                println!("wrote {plate_reads} plate reads to {}", p.display());
            }
            Ok(())
        }
    }
}

fn create(p: &Path) -> Result<BufWriter<File>> {
    if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    Ok(BufWriter::new(File::create(p).with_context(|| {
        format!("cannot create {}", p.display())
    })?))
}

fn demo(out: Option<PathBuf>, format: OutputFormat) -> Result<()> {
    let out = out.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("plumewatch-demo-{}", ingest::new_run_id()))
    });
    let summary = plumewatch::demo::run(&out)?;
    let mut w = std::io::stdout().lock();
    writeln!(w, "{summary}")?;
    let limits = LimitSet::default_set();
    let rt = runtime()?;
    writeln!(
        w,
        "\n== Real data: CONOX (UK 2012–13, University of Denver FEAT and RSD 4600; no plates) =="
    )?;
    let b = rt.block_on(query::run_sql(&out, plumewatch::demo::CONOX_SUMMARY_SQL))?;
    query::output::write(&b, format, &mut w)?;
    for l in lists::LISTS {
        writeln!(
            w,
            "\n== List {} (SYNTHETIC plates and registry, labelled as such) ==",
            l.name
        )?;
        let b = rt.block_on(lists::run(&out, l, &limits, &[]))?;
        query::output::write(&b, format, &mut w)?;
    }
    writeln!(
        w,
        "\nTables written to {}; try:\n  plumewatch query --tables {} \"SELECT verdict, count(*) FROM rsd_passes GROUP BY verdict\"",
        out.display(),
        out.display()
    )?;
    Ok(())
}
