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

use crate::decode::batch::Batch;
use crate::decode::mapping::Mapping;
use crate::decode::record::FieldError;
use crate::decode::record::Record;
use crate::decode::text::{
    Handler, NdjsonDecoder, ReadOptions, RecordDecoder, SourcePos, describe_input, read_csv_with,
    read_ndjson_with,
};
use crate::enrich::registry::Registry;
use crate::enrich::rsd::RsdContext;
use crate::limits::LimitSet;
use crate::pipeline::{Pipeline, StreamHandler};
use crate::schema;
use crate::sink::keys::KeyStats;
use crate::sink::manifest;
use crate::sink::parquet::SinkError;
use crate::sink::tables::TableSet;
use crate::source::file::Framer;

pub use crate::pipeline::{BATCH_ROWS, Stream};

pub use crate::source::file::Format;

/// What to ingest.
pub struct IngestOptions<'a> {
    pub stream: Stream,
    pub format: Format,
    /// VIN for OBD logs without a VIN column.
    pub vin: Option<&'a str>,
    pub mapping: Option<&'a Path>,
    pub limits: &'a LimitSet,
    pub out: &'a Path,
    pub inputs: &'a [String],
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Longest record (line) of NDJSON/CSV input, bytes; longer ones are quarantined unread
    /// (default [`crate::decode::text::DEFAULT_MAX_RECORD_BYTES`], 1 MiB).
    pub max_record_bytes: usize,
    /// Read inputs again even when the manifest says the same content was ingested (rows
    /// whose key is already stored are still not written twice).
    pub force: bool,
    /// Records between intermediate commits (default [`COMMIT_EVERY_RECORDS`]); the registry
    /// is always one commit.
    pub commit_every: u64,
}

/// What an ingest did.
#[derive(Clone, Debug, Default)]
pub struct IngestSummary {
    /// HJ 1239 frames that carry no rows (login, logout, time calibration …).
    pub frames_other: u64,
    /// Vehicles with TWC detector state (obd stream).
    pub vehicles_tracked: u64,
    /// OBD samples/reports repeating a stored key (VIN, collection time, info type) with the
    /// same values: not stored (resends 0x03, repeated records).
    pub duplicates: u64,
    /// Repeats of a stored key with different values: not stored, quarantined.
    pub duplicates_conflicting: u64,
    /// OBD keys older than the in-process key memory: stored without the check.
    pub dedup_unchecked: u64,
    /// OBD samples older than a sample already handed to the detectors (beyond the allowed
    /// lateness): stored, not seen by the detectors.
    pub late: u64,
    /// `lambda_implausible` data-quality detections (vehicles the λ-based rules cannot judge).
    pub data_quality: u64,
    pub records_in: u64,
    pub rows: BTreeMap<&'static str, u64>,
    pub quarantined: u64,
    pub bytes_in: u64,
    pub seconds: f64,
    pub files: Vec<PathBuf>,
    /// Things about the inputs that are not records (repeated CSV headers, empty inputs).
    pub notices: Vec<String>,
    /// Rows not written because their key was already stored with the same content.
    pub present: BTreeMap<&'static str, u64>,
    /// Rows not written because their key was stored with different content (quarantined,
    /// naming both versions).
    pub conflicts: u64,
    /// Inputs skipped because the manifest shows the same content ingested (one line each).
    pub skipped: Vec<String>,
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
    /// Every record was rejected (and there was at least one): nothing usable was stored.
    pub fn all_rejected(&self) -> bool {
        self.records_in > 0 && self.quarantined >= self.records_in
    }
}

impl fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.skipped {
            writeln!(f, "{s}")?;
        }
        writeln!(f, "records in:   {}", self.records_in)?;
        for (t, n) in &self.rows {
            match self.present.get(t).copied().unwrap_or(0) {
                0 => writeln!(f, "  {t:<14}{n}")?,
                p => writeln!(f, "  {t:<14}{n} new, {p} already present")?,
            }
        }
        if self.conflicts > 0 {
            writeln!(
                f,
                "key conflicts: {} (a known key with different content; quarantined, naming both versions)",
                self.conflicts
            )?;
        }
        writeln!(f, "quarantined:  {}", self.quarantined)?;
        for n in &self.notices {
            writeln!(f, "note: {n}")?;
        }
        if self.all_rejected() {
            writeln!(
                f,
                "every record was rejected ({} of {} quarantined): nothing usable was stored",
                self.quarantined, self.records_in
            )?;
        }
        if self.frames_other > 0 {
            writeln!(
                f,
                "frames without samples (login, logout …): {}",
                self.frames_other
            )?;
        }
        if self.vehicles_tracked > 0 {
            writeln!(f, "vehicles with detector state: {}", self.vehicles_tracked)?;
        }
        if self.duplicates + self.duplicates_conflicting > 0 {
            writeln!(
                f,
                "duplicates (same VIN, collection time, info type; not stored): {} ({} with different values, quarantined)",
                self.duplicates + self.duplicates_conflicting,
                self.duplicates_conflicting
            )?;
        }
        if self.dedup_unchecked > 0 {
            writeln!(
                f,
                "keys older than the de-duplication memory (stored unchecked): {}",
                self.dedup_unchecked
            )?;
        }
        if self.late > 0 {
            writeln!(
                f,
                "late samples (older than the allowed lateness; stored, not seen by the detectors): {}",
                self.late
            )?;
        }
        if self.data_quality > 0 {
            writeln!(
                f,
                "data-quality detections (lambda_implausible: vehicle not evaluable): {}",
                self.data_quality
            )?;
        }
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
    #[error("--format hj1239 is only for --stream obd")]
    FramesNotObd,
    /// The input is plainly not in the chosen format; nothing was written.
    #[error("{0}; nothing was written")]
    WrongFormat(String),
}

/// A unique id for the files of one run: UTC time + random suffix.
pub fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        rand::random::<u32>()
    )
}

fn open_input(path: &str) -> Result<Box<dyn Read + Send>, IngestError> {
    if path == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let f = File::open(path).map_err(|source| IngestError::Input {
        path: path.to_string(),
        source,
    })?;
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
}

/// Runs one ingest. Registry joins use the `vehicles` table already under `out`.
pub fn ingest(opts: &IngestOptions<'_>) -> Result<IngestSummary, IngestError> {
    let t0 = Instant::now();
    // Committed but not yet renamed files of an earlier, interrupted commit become visible
    // first (the manifest is what was committed).
    let (_, entries) =
        manifest::recover(opts.out, "ingest").map_err(|source| IngestError::Input {
            path: manifest::dir(opts.out).display().to_string(),
            source,
        })?;
    let stream_name = match (opts.stream, opts.format) {
        (Stream::Obd | Stream::Frames, Format::Hj1239) => Stream::Frames,
        (Stream::Frames, _) => Stream::Obd,
        (s, _) => s,
    }
    .name();
    let stream = match (opts.stream, opts.format) {
        (Stream::Obd | Stream::Frames, Format::Hj1239) => Stream::Frames,
        (_, Format::Hj1239) => return Err(IngestError::FramesNotObd),
        (Stream::Frames, _) => Stream::Obd,
        (s, _) => s,
    };
    // The mapping is checked before anything is skipped or read: a bad mapping is an error
    // even when every input was ingested before.
    let specs = stream.specs();
    let mapping = match opts.mapping {
        Some(p) => Some(Mapping::load(p)?),
        None => None,
    };
    let origin = opts
        .mapping
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "canonical".into());
    let compiled =
        Mapping::compile(mapping.as_ref(), specs, &origin)?.with_time_policy(opts.limits.time());
    let reading = reading_id(opts)?;
    let (kept, skipped) = skip_ingested(opts.inputs, &entries, stream_name, &reading, opts.force)?;
    let opts = &IngestOptions {
        inputs: &kept,
        ..*opts
    };
    if opts.inputs.is_empty() {
        return Ok(IngestSummary {
            skipped,
            seconds: t0.elapsed().as_secs_f64(),
            ..Default::default()
        });
    }
    let hashing = InputHashes::start(opts.inputs, stream_name, &reading);
    let registry = match stream {
        Stream::Vehicles => Registry::default(),
        _ => Registry::load(&opts.out.join(schema::VEHICLES)).map_err(IngestError::Registry)?,
    };
    let limit_set_id = opts.limits.id();
    let run_id = new_run_id();
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
    let ctx = RsdContext {
        limits: opts.limits,
        limit_set_id: &limit_set_id,
        registry: &registry,
    };
    // Every input is checked before anything is written: one plainly in another format
    // stops the ingest here (stdin's first bytes are kept and replayed).
    let mut stdin_head: Option<Vec<u8>> = None;
    if opts.format != Format::Hj1239 {
        for input in opts.inputs {
            let (head, eof) = read_head(input)?;
            sniff(input, &head, eof, opts.format, &compiled, specs)?;
            if input == "-" {
                stdin_head = Some(head);
            }
        }
    }
    let mut pipe = Pipeline::new(ctx, opts.out, &run_id)?;
    pipe.default_vin = opts.vin;
    let mut bytes_in = 0u64;
    let read_opts = ReadOptions {
        max_record_bytes: opts.max_record_bytes,
        ..ReadOptions::default()
    };
    let mut notices: Vec<String> = Vec::new();
    let mut intermediate = Intermediate {
        run_id: run_id.clone(),
        stream,
        seq: 0,
        next_at: opts.commit_every.max(1),
        every: opts.commit_every.max(1),
        files: Vec::new(),
        error: None,
    };
    for input in opts.inputs {
        let head = if input == "-" {
            stdin_head.take()
        } else {
            None
        };
        let rdr = match head {
            Some(head) => {
                Box::new(std::io::Cursor::new(head).chain(std::io::stdin())) as Box<dyn Read + Send>
            }
            _ => open_input(input)?,
        };
        let mut h = StreamHandler {
            pipeline: &mut pipe,
            stream,
            error: None,
            progress: Some(&bar),
            bytes_before: bytes_in,
        };
        // The same framing and decoding as `run`'s sources (`source::file::Framer`,
        // `source::deliver`), on a thread of its own.
        let framer = Framer::new(rdr, opts.format, 0, opts.max_record_bytes);
        let dec = opts
            .format
            .text()
            .map(|f| RecordDecoder::new(f, compiled.clone(), specs, &read_opts));
        let mut rh = ReadHandler {
            inner: &mut h,
            notices: &mut notices,
            commits: (stream != Stream::Vehicles).then_some(&mut intermediate),
        };
        let (records, n) =
            read_ahead(input, framer, dec, &mut rh).map_err(|source| IngestError::Input {
                path: input.clone(),
                source,
            })?;
        if records == 0 {
            let what = if opts.format == Format::Hj1239 {
                "frames"
            } else {
                "records"
            };
            notices.push(format!("{input}: no {what} (empty input)"));
        }
        if let Some(e) = h.error.take() {
            return Err(e.into());
        }
        if let Some(e) = intermediate.error.take() {
            return Err(e);
        }
        bytes_in += n;
    }
    // End of input: the samples the OBD feed still holds go to the detectors, which give
    // their end-of-input verdicts, before the last flush.
    pipe.finish_obd();
    pipe.flush(1)?;
    let hashes = hashing.finish()?;
    let (last_files, key_stats) =
        commit_ingest(&mut pipe, &run_id, stream, intermediate.seq, hashes)?;
    let mut files = std::mem::take(&mut intermediate.files);
    files.extend(last_files);
    bar.finish_and_clear();
    let main_table = match stream {
        Stream::Rsd => schema::RSD_PASSES,
        Stream::Plates => schema::PLATE_READS,
        Stream::Vehicles => schema::VEHICLES,
        Stream::Obd | Stream::Frames => schema::OBD_SAMPLES,
    };
    let rows = key_stats
        .iter()
        .map(|(t, k)| (*t, k.new))
        .filter(|(t, n)| *n > 0 || *t == main_table || *t == schema::QUARANTINE)
        .collect();
    let present = key_stats
        .iter()
        .filter(|(_, k)| k.present > 0)
        .map(|(t, k)| (*t, k.present))
        .collect();
    let conflicts = key_stats.iter().map(|(_, k)| k.conflicts).sum();
    Ok(IngestSummary {
        present,
        conflicts,
        skipped,
        frames_other: pipe.counters.frames_other,
        vehicles_tracked: pipe.keyed.vehicles() as u64,
        duplicates: pipe.counters.duplicates,
        duplicates_conflicting: pipe.counters.duplicates_conflicting,
        dedup_unchecked: pipe.counters.dedup_unchecked,
        late: pipe.keyed.late,
        data_quality: pipe.counters.data_quality,
        records_in: pipe.counters.records_in,
        rows,
        quarantined: pipe.counters.quarantined + conflicts,
        bytes_in,
        seconds: t0.elapsed().as_secs_f64(),
        files,
        notices,
    })
}

/// Calls (records, rejects, frames, notices, progress) after which a batch is handed from
/// the decoding thread to the pipeline; it is also handed on at [`AHEAD_BYTES`] of raw input.
/// Checked after each framed item, so a batch can exceed both by what one item released (a
/// record up to the record limit, or the records a `utc_offset_from` mapping held, up to
/// `ReadOptions::max_held_records` / `max_held_bytes`).
const AHEAD_ITEMS: usize = 1024;
/// Raw bytes after which a batch is handed on.
const AHEAD_BYTES: usize = 1 << 20;
/// Batches waiting for the pipeline. With the one being filled, the fresh one taken while a
/// send waits, the one being replayed and one on its way back, at most five batches
/// (≈ 5 × 1 MiB of raw bytes plus their values, in the usual case) are alive per input.
const AHEAD_BATCHES: usize = 2;
/// A batch that grew past this many record slots (a release of held records) is dropped
/// after replay instead of being reused, so its memory does not stay for the whole input.
const AHEAD_REUSE_MAX_RECORDS: usize = 4 * AHEAD_ITEMS;

/// Frames and decodes one input on a thread of its own (`decode`) while the calling thread
/// hands the decoded records, rejects and frames to `h` in input order (framing and decoding
/// were about a third of the thread that also enriched, judged and appended). Returns the
/// records (or, without a text decoder, frames) read and the bytes read. Errors: a read error
/// of the input (what was decoded before it has been handed on first), or the thread could
/// not be started.
fn read_ahead<R: Read + Send>(
    input: &str,
    mut framer: Framer<R>,
    mut dec: Option<RecordDecoder>,
    h: &mut dyn Handler,
) -> std::io::Result<(u64, u64)> {
    use std::sync::mpsc;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Batch>(AHEAD_BATCHES);
        let (back_tx, back_rx) = mpsc::channel::<Batch>();
        let reader = std::thread::Builder::new()
            .name("decode".into())
            .spawn_scoped(s, move || -> std::io::Result<(u64, u64)> {
                let mut batch = Batch::default();
                let mut items = 0u64;
                let mut next_progress = 1u64 << 20;
                loop {
                    let item = match framer.next_item() {
                        Ok(Some(item)) => item,
                        Ok(None) => break,
                        Err(e) => {
                            // What was decoded before the error is handed on, as without
                            // the thread.
                            let _ = tx.send(batch);
                            return Err(e);
                        }
                    };
                    items += 1;
                    crate::source::deliver(&item, input, dec.as_mut(), &mut batch);
                    if framer.bytes_read() >= next_progress {
                        batch.on_progress(framer.bytes_read());
                        next_progress = framer.bytes_read() + (1 << 20);
                    }
                    if batch.len() >= AHEAD_ITEMS || batch.bytes_len() >= AHEAD_BYTES {
                        let next = back_rx.try_recv().unwrap_or_default();
                        if tx.send(std::mem::replace(&mut batch, next)).is_err() {
                            // The pipeline side is gone (it panicked): nothing to hand on.
                            return Ok((items, framer.bytes_read()));
                        }
                    }
                }
                let records = match dec.as_mut() {
                    Some(d) => {
                        d.finish(input, &mut batch);
                        d.records()
                    }
                    None => items,
                };
                batch.on_progress(framer.bytes_read());
                let _ = tx.send(batch);
                Ok((records, framer.bytes_read()))
            })?;
        for mut batch in rx {
            batch.replay(input, h);
            if batch.capacity() <= AHEAD_REUSE_MAX_RECORDS {
                batch.clear();
                let _ = back_tx.send(batch);
            }
        }
        reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Bytes of each input looked at before anything is written.
const SNIFF_BYTES: usize = 64 << 10;
/// Records of each input decoded to check the format.
const SNIFF_RECORDS: usize = 16;

/// The first [`SNIFF_BYTES`] of an input, and whether that is all of it.
fn read_head(path: &str) -> Result<(Vec<u8>, bool), IngestError> {
    let err = |source| IngestError::Input {
        path: path.to_string(),
        source,
    };
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut rdr = open_input(path)?.take(SNIFF_BYTES as u64);
    rdr.read_to_end(&mut head).map_err(err)?;
    let eof = head.len() < SNIFF_BYTES;
    Ok((head, eof))
}

/// Collects the outcome of the first records of an input.
#[derive(Default)]
struct SniffCollect {
    ok: usize,
    errors: Vec<String>,
}

impl Handler for SniffCollect {
    fn on_record(&mut self, _: &Record, _: &SourcePos<'_>, _: &[u8]) {
        if self.ok + self.errors.len() < SNIFF_RECORDS {
            self.ok += 1;
        }
    }
    fn on_error(&mut self, err: FieldError, _: &SourcePos<'_>, _: &[u8]) {
        if self.ok + self.errors.len() < SNIFF_RECORDS {
            self.errors.push(err.to_string());
        }
    }
}

/// The kind of a reason, without the values quoted in it (for "all fail the same way").
fn reason_class(r: &str) -> &str {
    let end = r
        .find(|c: char| c == '"' || c == '\'' || c == '(' || c.is_ascii_digit())
        .unwrap_or(r.len());
    r[..end].trim_end()
}

/// Stops an ingest whose input is plainly not in `format`: its first records all fail and
/// it looks like something else (a CSV header fed as NDJSON, a Parquet or other binary file),
/// or at least three of them fail the same way (a wrong `--stream` or `--mapping`).
fn sniff(
    input: &str,
    head: &[u8],
    eof: bool,
    format: Format,
    mapping: &crate::decode::mapping::CompiledMapping,
    specs: &'static [crate::decode::record::FieldSpec],
) -> Result<(), IngestError> {
    let looks = describe_input(head);
    let binary = looks.as_deref().is_some_and(|l| {
        !l.starts_with("the first line") && !l.starts_with("NDJSON") && !l.starts_with("a JSON")
    });
    // Only whole records: the head may end inside one.
    let cut = if eof {
        head.len()
    } else {
        head.iter().rposition(|&b| b == b'\n').map_or(0, |k| k + 1)
    };
    let mut c = SniffCollect::default();
    let mut body = &head[..cut];
    let _ = match format {
        Format::Csv => read_csv_with(
            mapping,
            specs,
            &mut body,
            input,
            &ReadOptions::default(),
            &mut c,
        ),
        _ => {
            let mut dec = NdjsonDecoder::new(mapping.clone(), specs);
            read_ndjson_with(&mut dec, &mut body, input, &ReadOptions::default(), &mut c)
        }
    };
    let fmt_name = match format {
        Format::Csv => "CSV",
        Format::Ndjson => "NDJSON",
        Format::Hj1239 => "HJ 1239 frames",
    };
    let n = c.ok + c.errors.len();
    if c.ok > 0 {
        return Ok(());
    }
    // Evidence: failed records, a file signature, or (CSV) a whole first line that is no CSV
    // header. An input whose first line is too long to look at is left to the record limit.
    let magic = binary
        && looks
            .as_deref()
            .is_some_and(|l| !l.starts_with("binary data"));
    if let Some(l) = &looks {
        let other = match format {
            Format::Ndjson => !l.starts_with("NDJSON"),
            _ => !l.starts_with("the first line is a CSV"),
        };
        let header_seen = format == Format::Csv && cut > 0;
        if other && (magic || n > 0 || header_seen) {
            let hint = if l.starts_with("the first line is a CSV") {
                "; use --format csv"
            } else if l.starts_with("NDJSON") {
                "; use --format ndjson"
            } else {
                ""
            };
            return Err(IngestError::WrongFormat(format!(
                "{input} does not look like {fmt_name} ({l}){hint}"
            )));
        }
    }
    if n >= 3 {
        let first = reason_class(&c.errors[0]);
        if c.errors.iter().all(|e| reason_class(e) == first) {
            return Err(IngestError::WrongFormat(format!(
                "{input}: the first {n} records all fail the same way ({}); check --stream, --format and --mapping",
                c.errors[0]
            )));
        }
    }
    Ok(())
}

/// Forwards the text decoders' calls to the pipeline, flushes on rejects too (an input of
/// only bad records must not pile up in memory) and keeps the notices.
struct ReadHandler<'h, 'p, 'a> {
    inner: &'h mut StreamHandler<'p, 'a>,
    notices: &'h mut Vec<String>,
    /// Intermediate commits of a long input (`None` for the registry, a snapshot).
    commits: Option<&'h mut Intermediate>,
}

/// Records between intermediate commits of one ingest: the natural-key index keeps the keys of
/// everything written since the last commit, so without a commit its memory would grow with
/// the input (about 35 MB per million rows); a commit lets it forget down to its bound.
pub const COMMIT_EVERY_RECORDS: u64 = 1_000_000;

/// State of an ingest's intermediate commits (entries `ingest-<run id>` seq 0, 1, …; the last
/// entry, written at the end, also names the inputs and their content hashes).
struct Intermediate {
    run_id: String,
    stream: Stream,
    seq: u64,
    next_at: u64,
    every: u64,
    files: Vec<PathBuf>,
    error: Option<IngestError>,
}

impl Intermediate {
    /// Commits what was written so far when `records_in` passed the next mark.
    fn maybe_commit(&mut self, pipe: &mut Pipeline<'_>) {
        if self.error.is_some() || pipe.counters.records_in < self.next_at {
            return;
        }
        self.next_at = pipe.counters.records_in + self.every;
        let r = pipe
            .flush(1)
            .map_err(IngestError::from)
            .and_then(|()| commit_ingest(pipe, &self.run_id, self.stream, self.seq, Vec::new()));
        match r {
            Ok((files, _)) => {
                self.files.extend(files);
                self.seq += 1;
            }
            Err(e) => self.error = Some(e),
        }
    }
}

/// Notices kept per ingest (the rest are counted).
const MAX_NOTICES: usize = 50;

impl Handler for ReadHandler<'_, '_, '_> {
    fn on_record(&mut self, rec: &Record, pos: &SourcePos<'_>, raw: &[u8]) {
        self.inner.on_record(rec, pos, raw);
        if let Some(c) = self.commits.as_mut() {
            c.maybe_commit(self.inner.pipeline);
        }
    }
    fn on_error(&mut self, err: FieldError, pos: &SourcePos<'_>, raw: &[u8]) {
        self.inner.on_error(err, pos, raw);
        let p = &mut self.inner.pipeline;
        if p.counters.records_in.is_multiple_of(BATCH_ROWS as u64)
            && self.inner.error.is_none()
            && let Err(e) = p.flush(BATCH_ROWS)
        {
            self.inner.error = Some(e);
        }
        if let Some(c) = self.commits.as_mut() {
            c.maybe_commit(self.inner.pipeline);
        }
    }
    fn on_frame(&mut self, bytes: &[u8], pos: &SourcePos<'_>) {
        self.inner.on_frame(bytes, pos);
        if let Some(c) = self.commits.as_mut() {
            c.maybe_commit(self.inner.pipeline);
        }
    }
    fn on_progress(&mut self, bytes: u64) {
        self.inner.on_progress(bytes);
    }
    fn on_notice(&mut self, pos: &SourcePos<'_>, message: &str) {
        if self.notices.len() < MAX_NOTICES {
            self.notices.push(format!("{}: {message}", pos.file));
        } else if self.notices.len() == MAX_NOTICES {
            self.notices.push("… more notices not shown".into());
        }
    }
}

/// How an ingest reads its inputs, for the manifest's "same input" test: the format, the
/// mapping's content hash (or `canonical`) and the `--vin` given. Reading the same bytes
/// another way (a corrected mapping) is a new input.
fn reading_id(opts: &IngestOptions<'_>) -> Result<String, IngestError> {
    let mapping = match opts.mapping {
        Some(p) => {
            let (sha, _) =
                sha256_file(&p.display().to_string()).map_err(|source| IngestError::Input {
                    path: p.display().to_string(),
                    source,
                })?;
            format!("mapping={}", &sha[..16])
        }
        None => "canonical".into(),
    };
    let vin = opts.vin.map(|v| format!(";vin={v}")).unwrap_or_default();
    Ok(format!("{:?};{mapping}{vin}", opts.format).to_ascii_lowercase())
}

/// SHA-256 and length of a file, hex.
fn sha256_file(path: &str) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Splits `inputs` into those to read and one message per input skipped because a manifest
/// entry records the same content (SHA-256 over the whole file) of the same stream. Only
/// files of the same length as a recorded input are hashed here; stdin is never skipped.
fn skip_ingested(
    inputs: &[String],
    entries: &[manifest::ManifestEntry],
    stream: &str,
    reading: &str,
    force: bool,
) -> Result<(Vec<String>, Vec<String>), IngestError> {
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        let len = std::fs::metadata(input).map(|m| m.len()).ok();
        let candidate = input != "-"
            && len.is_some_and(|len| {
                entries.iter().any(|e| {
                    e.inputs
                        .iter()
                        .any(|i| i.stream == stream && i.bytes_from == 0 && i.bytes_to == len)
                })
            });
        if !candidate {
            kept.push(input.clone());
            continue;
        }
        let (sha, len) = sha256_file(input).map_err(|source| IngestError::Input {
            path: input.clone(),
            source,
        })?;
        match manifest::find_ingested(entries, stream, reading, &sha, len) {
            Some((e, i)) if !force => {
                let when = chrono::DateTime::from_timestamp_millis(e.committed_at_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default();
                skipped.push(format!(
                    "skipped {input}: the same content ({len} bytes, sha256 {}…) was ingested as {} on {when} (manifest entry {}-{}); nothing new to store. Use --force to read it again (rows already stored are still not written twice).",
                    &sha[..12],
                    i.path,
                    e.instance,
                    e.seq
                ));
            }
            _ => kept.push(input.clone()),
        }
    }
    Ok((kept, skipped))
}

/// SHA-256 of the ingested files, computed on a thread of its own while they are read
/// (recorded in the manifest entry of the ingest).
struct InputHashes {
    handle: std::thread::JoinHandle<Vec<std::io::Result<manifest::IngestedInput>>>,
}

impl InputHashes {
    fn start(inputs: &[String], stream: &str, reading: &str) -> Self {
        let inputs: Vec<String> = inputs.iter().filter(|p| *p != "-").cloned().collect();
        let stream = stream.to_string();
        let reading = reading.to_string();
        let handle = std::thread::spawn(move || {
            inputs
                .into_iter()
                .map(|p| {
                    let (sha256, len) = sha256_file(&p)?;
                    Ok(manifest::IngestedInput {
                        path: p,
                        stream: stream.clone(),
                        reading: reading.clone(),
                        sha256,
                        bytes_from: 0,
                        bytes_to: len,
                    })
                })
                .collect()
        });
        InputHashes { handle }
    }

    /// The hashes; a file that could not be hashed is not recorded (it was read, or the
    /// ingest failed before).
    fn finish(self) -> Result<Vec<manifest::IngestedInput>, IngestError> {
        let all = self
            .handle
            .join()
            .map_err(|_| IngestError::Registry("the input hashing thread panicked".into()))?;
        Ok(all.into_iter().filter_map(Result::ok).collect())
    }
}

/// Commits a file ingest like `run` does: the files are closed under hidden names, one
/// manifest entry names them with the inputs' content hashes and byte ranges, then they are
/// renamed into place. A `vehicles` ingest is a new registry snapshot: the files of the
/// previous one move to `_versions/vehicles/<UTC time>-<run id>/` (kept, no longer read)
/// in the same commit. Returns the visible paths and the key statistics.
fn commit_ingest(
    pipe: &mut Pipeline<'_>,
    run_id: &str,
    stream: Stream,
    seq: u64,
    inputs: Vec<manifest::IngestedInput>,
) -> Result<(Vec<PathBuf>, Vec<(&'static str, KeyStats)>), IngestError> {
    let instance = format!("ingest-{run_id}");
    let snapshot = stream == Stream::Vehicles;
    let version = format!("{}-{run_id}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let entry = manifest::ManifestEntry {
        instance,
        seq,
        inputs,
        ..Default::default()
    };
    let r = pipe.sink.run(move |t: &mut TableSet| {
        let e = t.commit_entry(entry, |root, files| {
            let mut archived = Vec::new();
            if !snapshot || !files.iter().any(|f| f.table == schema::VEHICLES) {
                return Ok(archived);
            }
            let table = root.join(schema::VEHICLES);
            let previous = crate::enrich::registry::walk_parquet(&table).map_err(|message| {
                SinkError::Schema {
                    table: schema::VEHICLES.into(),
                    message,
                }
            })?;
            for old in previous {
                let (Ok(rel), Ok(inner)) = (old.strip_prefix(root), old.strip_prefix(&table))
                else {
                    continue;
                };
                archived.push(manifest::ArchivedFile {
                    from: rel.to_path_buf(),
                    to: Path::new("_versions")
                        .join(schema::VEHICLES)
                        .join(&version)
                        .join(inner),
                });
            }
            Ok(archived)
        })?;
        let root = t.root().to_path_buf();
        let paths = e.files.iter().map(|f| root.join(&f.path)).collect();
        Ok((paths, t.key_stats()))
    })?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three lines, then a read error.
    struct FailsAfter(Option<&'static [u8]>);

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.take() {
                Some(b) => {
                    buf[..b.len()].copy_from_slice(b);
                    Ok(b.len())
                }
                None => Err(std::io::Error::other("the disk went away")),
            }
        }
    }

    #[derive(Default)]
    struct Count(Vec<(u64, u64)>);

    impl Handler for Count {
        fn on_record(&mut self, _: &Record, pos: &SourcePos<'_>, _: &[u8]) {
            self.0.push((pos.offset, pos.line));
        }
        fn on_error(&mut self, _: FieldError, pos: &SourcePos<'_>, _: &[u8]) {
            self.0.push((pos.offset, pos.line));
        }
    }

    #[test]
    fn a_read_error_mid_input_hands_on_what_was_decoded_before_it() {
        let specs = Stream::Obd.specs();
        let compiled = Mapping::compile(None, specs, "canonical").unwrap();
        let dec = Format::Ndjson
            .text()
            .map(|f| RecordDecoder::new(f, compiled, specs, &ReadOptions::default()));
        let framer = Framer::new(
            FailsAfter(Some(b"{\"vin\":1}\nnot json\n{}\n")),
            Format::Ndjson,
            0,
            1 << 20,
        );
        let mut seen = Count::default();
        let err = read_ahead("in.ndjson", framer, dec, &mut seen).unwrap_err();
        assert_eq!(err.to_string(), "the disk went away");
        // Every line before the error reached the handler, in order, with its place.
        assert_eq!(seen.0, vec![(0, 1), (10, 2), (19, 3)]);
    }
}
