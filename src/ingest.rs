//! File ingest: inputs (files or `-` for stdin) → decode → enrich → detect → Parquet tables,
//! with a progress bar on a terminal and a summary. Every input record lands in its table or
//! in `quarantine`; a bad record never stops the run.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::decode::fields::{PLATE_READ_FIELDS, RSD_FIELDS, VEHICLE_FIELDS};
use crate::decode::mapping::Mapping;
use crate::decode::record::{FieldError, FieldSpec, Record};
use crate::decode::text::{Handler, NdjsonDecoder, SourcePos, TextFormat, read_csv, read_ndjson};
use crate::enrich::registry::Registry;
use crate::enrich::rsd::RsdContext;
use crate::enrich::{plate_reads, rsd, vehicles};
use crate::limits::LimitSet;
use crate::schema::{
    self, DetectionRow, DetectionsBuilder, PlateReadsBuilder, QuarantineBuilder, RsdPassesBuilder,
    TableBuilder, VehiclesBuilder,
};
use crate::sink::parquet::TableWriter;

/// Rows per Arrow batch before it is handed to the writer (DESIGN.md: ~8k rows).
pub const BATCH_ROWS: usize = 8192;

/// Input streams of `plumewatch ingest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stream {
    /// RSD passes → `rsd_passes` (+ `detections`).
    Rsd,
    /// Registry export → `vehicles`.
    Vehicles,
    /// ANPR plate reads → `plate_reads` (+ `detections`).
    Plates,
}

impl Stream {
    /// Name used in `quarantine.stream`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Rsd => "rsd",
            Stream::Vehicles => "vehicles",
            Stream::Plates => "plates",
        }
    }
    fn specs(self) -> &'static [FieldSpec] {
        match self {
            Stream::Rsd => RSD_FIELDS,
            Stream::Vehicles => VEHICLE_FIELDS,
            Stream::Plates => PLATE_READ_FIELDS,
        }
    }
}

/// What to ingest.
pub struct IngestOptions<'a> {
    pub stream: Stream,
    pub format: TextFormat,
    pub mapping: Option<&'a Path>,
    pub limits: &'a LimitSet,
    pub out: &'a Path,
    pub inputs: &'a [String],
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// What an ingest did.
#[derive(Clone, Debug, Default)]
pub struct IngestSummary {
    pub records_in: u64,
    pub rows: BTreeMap<&'static str, u64>,
    pub quarantined: u64,
    pub bytes_in: u64,
    pub seconds: f64,
    pub files: Vec<PathBuf>,
}

impl IngestSummary {
    /// Records per second.
    pub fn records_per_s(&self) -> f64 {
        self.records_in as f64 / self.seconds.max(1e-9)
    }
    /// MB (10⁶ bytes) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes_in as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

impl fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "records in:   {}", self.records_in)?;
        for (t, n) in &self.rows {
            writeln!(f, "  {t:<14}{n}")?;
        }
        writeln!(f, "quarantined:  {}", self.quarantined)?;
        write!(
            f,
            "read {:.1} MB in {:.2} s: {:.0} records/s, {:.1} MB/s",
            self.bytes_in as f64 / 1e6,
            self.seconds,
            self.records_per_s(),
            self.mb_per_s()
        )
    }
}

/// Errors that stop an ingest (bad options, unreadable inputs, disk errors). Bad records
/// never do.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Mapping(#[from] crate::decode::mapping::MappingError),
    #[error(transparent)]
    Sink(#[from] crate::sink::parquet::SinkError),
    #[error("{path}: {source}")]
    Input {
        path: String,
        source: std::io::Error,
    },
    #[error("registry: {0}")]
    Registry(String),
}

/// A unique id for the files of one run: UTC time + random suffix.
pub fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        rand::random::<u32>()
    )
}

struct Out<B: TableBuilder> {
    builder: B,
    writer: TableWriter,
}

impl<B: TableBuilder> Out<B> {
    fn flush_if(&mut self, min: usize) -> Result<(), IngestError> {
        if self.builder.len() >= min.max(1) {
            let b = self.builder.finish();
            self.writer.write(&b)?;
        }
        Ok(())
    }
}

struct Ingestor<'a> {
    stream: Stream,
    ctx: RsdContext<'a>,
    passes: Option<Out<RsdPassesBuilder>>,
    reads: Option<Out<PlateReadsBuilder>>,
    vehicles: Option<Out<VehiclesBuilder>>,
    detections: Out<DetectionsBuilder>,
    quarantine: Out<QuarantineBuilder>,
    det_buf: Vec<DetectionRow>,
    quarantined: u64,
    records: u64,
    now_ms: i64,
    error: Option<IngestError>,
    bar: ProgressBar,
    bytes_before: u64,
}

impl Ingestor<'_> {
    fn process(&mut self, rec: &Record, pos: &SourcePos<'_>) -> Result<(), FieldError> {
        match self.stream {
            Stream::Rsd => {
                let o = self.passes.as_mut().expect("rsd sink");
                rsd::append_pass(rec, pos, &self.ctx, &mut o.builder, &mut self.det_buf)
            }
            Stream::Plates => {
                let o = self.reads.as_mut().expect("plates sink");
                plate_reads::append_read(rec, pos, &self.ctx, &mut o.builder, &mut self.det_buf)
            }
            Stream::Vehicles => {
                let v = vehicles::parse_vehicle(rec)?;
                vehicles::append_vehicle(
                    &v,
                    &mut self.vehicles.as_mut().expect("vehicles sink").builder,
                );
                Ok(())
            }
        }
    }

    fn flush(&mut self, min: usize) -> Result<(), IngestError> {
        for d in self.det_buf.drain(..) {
            self.detections.builder.append(&d);
        }
        if let Some(o) = self.passes.as_mut() {
            o.flush_if(min)?;
        }
        if let Some(o) = self.reads.as_mut() {
            o.flush_if(min)?;
        }
        if let Some(o) = self.vehicles.as_mut() {
            o.flush_if(min)?;
        }
        self.detections.flush_if(min)?;
        self.quarantine.flush_if(min)?;
        Ok(())
    }
}

impl Handler for Ingestor<'_> {
    fn on_record(&mut self, rec: &Record, pos: &SourcePos<'_>, raw: &[u8]) {
        self.records += 1;
        if let Err(e) = self.process(rec, pos) {
            self.on_error_inner(e, pos, raw);
        }
        if self.records % BATCH_ROWS as u64 == 0 && self.error.is_none() {
            if let Err(e) = self.flush(BATCH_ROWS) {
                self.error = Some(e);
            }
        }
    }
    fn on_error(&mut self, err: FieldError, pos: &SourcePos<'_>, raw: &[u8]) {
        self.records += 1;
        self.on_error_inner(err, pos, raw);
    }
    fn on_progress(&mut self, bytes: u64) {
        self.bar.set_position(self.bytes_before + bytes);
    }
}

impl Ingestor<'_> {
    fn on_error_inner(&mut self, err: FieldError, pos: &SourcePos<'_>, raw: &[u8]) {
        self.quarantined += 1;
        let reason = err.to_string();
        self.quarantine.builder.append(
            self.stream.name(),
            pos.file,
            pos.offset,
            pos.line,
            err.field.as_deref(),
            &reason,
            raw,
            self.now_ms,
        );
    }
}

fn open_input(path: &str) -> Result<(Box<dyn Read>, Option<u64>), IngestError> {
    if path == "-" {
        return Ok((Box::new(std::io::stdin().lock()), None));
    }
    let f = File::open(path).map_err(|source| IngestError::Input {
        path: path.to_string(),
        source,
    })?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(std::io::BufReader::with_capacity(1 << 20, f)), len))
}

/// Runs one ingest. Registry joins use the `vehicles` table already under `out`.
pub fn ingest(opts: &IngestOptions<'_>) -> Result<IngestSummary, IngestError> {
    let t0 = Instant::now();
    let specs = opts.stream.specs();
    let mapping = match opts.mapping {
        Some(p) => Some(Mapping::load(p)?),
        None => None,
    };
    let origin = opts
        .mapping
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "canonical".into());
    let compiled = Mapping::compile(mapping.as_ref(), specs, &origin)?;
    let registry = match opts.stream {
        Stream::Vehicles => Registry::default(),
        _ => Registry::load(&opts.out.join(schema::VEHICLES)).map_err(IngestError::Registry)?,
    };
    let limit_set_id = opts.limits.id();
    let run_id = new_run_id();
    let w = |t: &str, s, p: Option<&str>| TableWriter::new(opts.out, t, s, p, &run_id);
    let total: u64 = opts
        .inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = if opts.progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut ing = Ingestor {
        stream: opts.stream,
        ctx: RsdContext {
            limits: opts.limits,
            limit_set_id: &limit_set_id,
            registry: &registry,
        },
        passes: (opts.stream == Stream::Rsd).then(|| Out {
            builder: RsdPassesBuilder::default(),
            writer: w(schema::RSD_PASSES, schema::rsd_passes(), Some("passed_at")),
        }),
        reads: (opts.stream == Stream::Plates).then(|| Out {
            builder: PlateReadsBuilder::default(),
            writer: w(schema::PLATE_READS, schema::plate_reads(), Some("read_at")),
        }),
        vehicles: (opts.stream == Stream::Vehicles).then(|| Out {
            builder: VehiclesBuilder::default(),
            writer: w(schema::VEHICLES, schema::vehicles(), None),
        }),
        detections: Out {
            builder: DetectionsBuilder::default(),
            writer: w(
                schema::DETECTIONS,
                schema::detections(),
                Some("detected_at"),
            ),
        },
        quarantine: Out {
            builder: QuarantineBuilder::default(),
            writer: w(
                schema::QUARANTINE,
                schema::quarantine(),
                Some("quarantined_at"),
            ),
        },
        det_buf: Vec::new(),
        quarantined: 0,
        records: 0,
        now_ms: chrono::Utc::now().timestamp_millis(),
        error: None,
        bar,
        bytes_before: 0,
    };
    let mut bytes_in = 0u64;
    let mut ndjson = NdjsonDecoder::new(compiled.clone(), specs);
    for input in opts.inputs {
        let (mut rdr, _) = open_input(input)?;
        let n = match opts.format {
            TextFormat::Ndjson => {
                let mut counting = CountingReader {
                    inner: &mut rdr,
                    n: 0,
                };
                read_ndjson(&mut ndjson, &mut counting, input, &mut ing).map_err(|source| {
                    IngestError::Input {
                        path: input.clone(),
                        source,
                    }
                })?;
                counting.n
            }
            TextFormat::Csv => {
                let mut data = Vec::new();
                rdr.read_to_end(&mut data)
                    .map_err(|source| IngestError::Input {
                        path: input.clone(),
                        source,
                    })?;
                read_csv(&compiled, specs, &data, input, &mut ing);
                data.len() as u64
            }
        };
        bytes_in += n;
        ing.bytes_before += n;
        if let Some(e) = ing.error.take() {
            return Err(e);
        }
    }
    ing.flush(1)?;
    ing.bar.finish_and_clear();
    let mut files = Vec::new();
    let mut rows = BTreeMap::new();
    macro_rules! commit {
        ($o:expr, $name:expr) => {
            if let Some(o) = $o {
                rows.insert($name, o.writer.rows());
                files.extend(o.writer.commit()?);
            }
        };
    }
    commit!(ing.passes.as_mut(), schema::RSD_PASSES);
    commit!(ing.reads.as_mut(), schema::PLATE_READS);
    commit!(ing.vehicles.as_mut(), schema::VEHICLES);
    commit!(Some(&mut ing.detections), schema::DETECTIONS);
    commit!(Some(&mut ing.quarantine), schema::QUARANTINE);
    Ok(IngestSummary {
        records_in: ing.records,
        rows,
        quarantined: ing.quarantined,
        bytes_in,
        seconds: t0.elapsed().as_secs_f64(),
        files,
    })
}

struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    n: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}
