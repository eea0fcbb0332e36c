//! The processing core shared by file ingest and the streaming run: decoded records of any
//! stream → enrich → detect → Arrow builders → table writers. Every record ends in a table row
//! or in `quarantine`; detections go to `detections`; entrance alerts are collected for the
//! caller to deliver.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::decode::hj1239::{ScanEvent, decode_frame};
use crate::decode::record::{FieldError, Record};
use crate::decode::text::{Handler, SourcePos};
use crate::detect::{self, RecordInput};
use crate::enrich::obd::{self, KeyCheck, ObdDetectors, RecentKeys};
use crate::enrich::rsd::RsdContext;
use crate::enrich::{plate_reads, rsd, vehicles};
use crate::schema::{
    AlertRow, AlertsBuilder, DetectionRow, DetectionsBuilder, ObdReportRow, ObdReportsBuilder,
    ObdSampleRow, ObdSamplesBuilder, PlateReadsBuilder, QuarantineBuilder, RsdPassesBuilder,
    TableBuilder, VehiclesBuilder,
};
use crate::sink::parquet::SinkError;
use crate::sink::tables::{self as tables, BatchSink, TableId};

/// Rows per Arrow batch before it is handed to a writer (DESIGN.md: ~8k rows).
pub const BATCH_ROWS: usize = 8192;

/// Batches (or jobs) queued to the sink thread before the pipeline waits for it. Memory held
/// for the sink is about this many batches (each what a builder held when flushed: at least
/// [`BATCH_ROWS`] rows in a batch window, more when a window brings more) plus the row groups
/// the Parquet writers buffer until a file is closed.
pub const SINK_QUEUE_BATCHES: usize = 16;

/// Input streams.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// RSD passes → `rsd_passes` (+ `detections`).
    Rsd,
    /// Registry export → `vehicles`.
    Vehicles,
    /// ANPR plate reads → `plate_reads` (+ `detections`, entrance alerts).
    Plates,
    /// Remote-OBD samples (JSON/CSV) → `obd_samples`, `obd_reports` (+ `detections`).
    Obd,
    /// HJ 1239 binary frames (one per Kafka message, or back to back in a file) → as `obd`.
    Frames,
}

impl Stream {
    /// Canonical input fields of the stream (frames decode to OBD samples).
    pub fn specs(self) -> &'static [crate::decode::record::FieldSpec] {
        use crate::decode::fields::{OBD_FIELDS, PLATE_READ_FIELDS, RSD_FIELDS, VEHICLE_FIELDS};
        match self {
            Stream::Rsd => RSD_FIELDS,
            Stream::Vehicles => VEHICLE_FIELDS,
            Stream::Plates => PLATE_READ_FIELDS,
            Stream::Obd | Stream::Frames => OBD_FIELDS,
        }
    }

    /// Name used in `quarantine.stream` and in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Rsd => "rsd",
            Stream::Vehicles => "vehicles",
            Stream::Plates => "plates",
            Stream::Obd => "obd",
            Stream::Frames => "frames",
        }
    }
}

/// Plates on the current watchlist (China III diesel trucks, gas TWC suspects, repeat
/// exceeders) and the sites that are urban entrances.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    /// Plate → reasons (list names).
    pub plates: HashMap<String, Vec<String>>,
    pub entrance_sites: HashSet<String>,
    /// Plate → (GA 802 vehicle type, VIN) of listed vehicles as the registry had them when
    /// the list was built (for alerts when the registry was updated while running).
    pub vehicles: HashMap<String, (Option<String>, Option<String>)>,
}

/// An alert to deliver (NDJSON / Kafka, keyed by plate).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Alert {
    pub kind: String,
    pub plate: Option<String>,
    pub vin: Option<String>,
    pub site_id: Option<String>,
    pub at_ms: i64,
    pub reasons: Vec<String>,
    pub detection_id: Option<String>,
    pub source_key: String,
    /// Plate colour as read (entrance alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate_color: Option<String>,
    /// GA 802 vehicle type from the registry (entrance alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicle_type: Option<String>,
    /// `at_ms` in the enforcement zone (limit set `[time].zone`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_time: Option<String>,
    /// Kafka message timestamp of the input (for end-to-end latency), if any.
    #[serde(skip)]
    pub input_ts_ms: Option<i64>,
}

struct Out<B: TableBuilder> {
    builder: B,
    table: TableId,
}

impl<B: TableBuilder + Default> Out<B> {
    fn new(table: TableId) -> Self {
        Out {
            builder: B::default(),
            table,
        }
    }

    /// Hands the builder's rows to `sink` when it holds at least `min`; adds them to `rows`.
    fn flush_if(
        &mut self,
        min: usize,
        sink: &mut BatchSink,
        rows: &mut [u64; tables::CATALOG.len()],
    ) -> Result<(), SinkError> {
        let n = self.builder.len();
        if n >= min.max(1) {
            rows[self.table] += n as u64;
            sink.write(self.table, self.builder.finish())?;
        }
        Ok(())
    }
}

/// Counters of one pipeline (the same for every stage: records in, rows out, quarantined).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub records_in: u64,
    pub quarantined: u64,
    pub detections: u64,
    pub alerts: u64,
    pub frames_other: u64,
    /// OBD samples/reports whose key (VIN, collection time, info type) was already stored
    /// with the same values (resends 0x03, repeated records): not stored again.
    pub duplicates: u64,
    /// Of those keys, deliveries with different values: not stored (first delivery wins),
    /// quarantined so the conflict is visible.
    pub duplicates_conflicting: u64,
    /// OBD keys older than the in-process key memory (`[obd_stream]`): stored unchecked.
    pub dedup_unchecked: u64,
    /// `lambda_implausible` data-quality detections (vehicles the λ rules cannot judge).
    pub data_quality: u64,
    /// Quarantined records per (stream, field named by the reason, or `record`).
    pub quarantined_by: std::collections::BTreeMap<(&'static str, String), u64>,
}

/// The processing core. Borrow-only context; owns builders, detector state and the sink
/// its batches go to.
pub struct Pipeline<'a> {
    pub ctx: RsdContext<'a>,
    /// VIN for OBD logs without a VIN column.
    pub default_vin: Option<&'a str>,
    passes: Out<RsdPassesBuilder>,
    reads: Out<PlateReadsBuilder>,
    vehicles: Out<VehiclesBuilder>,
    obd_samples: Out<ObdSamplesBuilder>,
    obd_reports: Out<ObdReportsBuilder>,
    detections: Out<DetectionsBuilder>,
    quarantine: Out<QuarantineBuilder>,
    /// Entrance alerts that went out (the `alerts` table).
    alert_rows: Out<AlertsBuilder>,
    /// De-duplication of alerts per (vehicle, site, reason); `None` sends every alert.
    pub alert_dedup: Option<crate::run::alerts::AlertDedup>,
    /// The sink thread finished batches go to.
    pub sink: BatchSink,
    /// Rows handed to the sink per table (index: `sink::tables` ids).
    rows_out: [u64; tables::CATALOG.len()],
    det_buf: Vec<DetectionRow>,
    /// The keyed rules over OBD samples (per-VIN state, reorder buffer in front).
    pub keyed: ObdDetectors,
    /// Recent OBD keys for de-duplication within this process.
    pub obd_keys: RecentKeys,
    pub counters: Counters,
    /// Alerts raised since the last [`Pipeline::take_alerts`].
    pub alerts: Vec<Alert>,
    /// Detection kinds that raise alerts as they happen (besides entrance alerts).
    pub alert_kinds: HashSet<String>,
    pub watch: Option<Watch>,
    /// Kafka timestamp of the record being processed.
    pub input_ts_ms: Option<i64>,
    /// The limit set's time rules (window of plausible instants for frame times).
    pub time: crate::time::TimePolicy,
}

impl<'a> Pipeline<'a> {
    /// A pipeline writing under `root`, file names tagged with `run_id`, through a sink
    /// thread (Parquet encoding overlaps decoding). Errors: the thread cannot be started.
    pub fn new(ctx: RsdContext<'a>, root: &Path, run_id: &str) -> Result<Self, SinkError> {
        let time = ctx.limits.time();
        let sink = BatchSink::spawn(
            tables::TableSet::new(root, run_id).with_zone(time.zone),
            SINK_QUEUE_BATCHES,
        )?;
        Ok(Pipeline {
            ctx,
            default_vin: None,
            passes: Out::new(tables::RSD_PASSES),
            reads: Out::new(tables::PLATE_READS),
            vehicles: Out::new(tables::VEHICLES),
            obd_samples: Out::new(tables::OBD_SAMPLES),
            obd_reports: Out::new(tables::OBD_REPORTS),
            detections: Out::new(tables::DETECTIONS),
            quarantine: Out::new(tables::QUARANTINE),
            alert_rows: Out::new(tables::ALERTS),
            alert_dedup: None,
            sink,
            rows_out: [0; tables::CATALOG.len()],
            det_buf: Vec::new(),
            keyed: ObdDetectors::default(),
            obd_keys: RecentKeys::default(),
            counters: Counters::default(),
            alerts: Vec::new(),
            alert_kinds: HashSet::new(),
            watch: None,
            input_ts_ms: None,
            time,
        })
    }

    /// Rows handed to the sink per table so far (before and after commits).
    pub fn rows(&self) -> Vec<(&'static str, u64)> {
        tables::CATALOG
            .iter()
            .zip(self.rows_out)
            .map(|(t, n)| (t.name, n))
            .collect()
    }

    /// Rows handed to the sink so far, all tables.
    pub fn rows_total(&self) -> u64 {
        self.rows_out.iter().sum()
    }

    /// One decoded record of `stream`; a rule or parse error sends it to quarantine.
    pub fn record(&mut self, stream: Stream, rec: &Record, pos: &SourcePos<'_>, raw: &[u8]) {
        self.counters.records_in += 1;
        let res = match stream {
            Stream::Rsd => rsd::append_pass(
                rec,
                pos,
                &self.ctx,
                &mut self.passes.builder,
                &mut self.det_buf,
            ),
            Stream::Plates => plate_reads::append_read(
                rec,
                pos,
                &self.ctx,
                &mut self.reads.builder,
                &mut self.det_buf,
            )
            .map(|plate| {
                // Only a recognised plate can raise an entrance alert (never "no plate").
                if let Some(p) = plate {
                    // A banned truck's first read: watched before its entrance check.
                    self.watch_china3();
                    self.entrance_check(rec, &p);
                }
            }),
            Stream::Vehicles => vehicles::parse_vehicle(rec)
                .map(|v| vehicles::append_vehicle(&v, &mut self.vehicles.builder)),
            Stream::Obd | Stream::Frames => obd::sample_from_record(rec, self.default_vin)
                .map(|row| self.obd_sample(stream, &row, pos, raw)),
        };
        if let Err(e) = res {
            self.quarantine_record(stream, e, pos, raw);
        }
        self.after_record();
    }

    /// A record that could not be decoded.
    pub fn reject(&mut self, stream: Stream, err: FieldError, pos: &SourcePos<'_>, raw: &[u8]) {
        self.counters.records_in += 1;
        self.quarantine_record(stream, err, pos, raw);
    }

    fn quarantine_record(
        &mut self,
        stream: Stream,
        err: FieldError,
        pos: &SourcePos<'_>,
        raw: &[u8],
    ) {
        self.counters.quarantined += 1;
        *self
            .counters
            .quarantined_by
            .entry((
                stream.name(),
                err.field.clone().unwrap_or_else(|| "record".into()),
            ))
            .or_default() += 1;
        let reason = err.to_string();
        self.quarantine.builder.append(
            stream.name(),
            pos.file,
            pos.offset,
            pos.line,
            err.field.as_deref(),
            &reason,
            raw,
            chrono::Utc::now().timestamp_millis(),
        );
    }

    /// An entrance alert when the read's normalised, recognised `plate` is on the watchlist.
    fn entrance_check(&mut self, rec: &Record, plate: &str) {
        use crate::decode::fields::pr as F;
        use crate::model::PlateColor;
        let Some(w) = &self.watch else { return };
        let Some(site) = rec.str(F::SITE_ID) else {
            return;
        };
        if !w.entrance_sites.contains(site) {
            return;
        }
        let plate = crate::model::Plate(plate.to_string());
        let Some(reasons) = w.plates.get(&plate.0) else {
            return;
        };
        let mut reasons = reasons.clone();
        reasons.sort();
        reasons.dedup();
        let at_ms = rec.time(F::READ_AT).unwrap_or_default();
        if let Some(d) = self.alert_dedup.as_mut()
            && !d.admit(&plate.0, site, &reasons.join(","), at_ms)
        {
            return;
        }
        let read_id = rec.str(F::READ_ID).unwrap_or_default().to_string();
        let color = rec.str(F::PLATE_COLOR).and_then(PlateColor::parse);
        let vehicle = match self.ctx.registry.lookup(&plate.0, color) {
            crate::enrich::registry::Lookup::Matched(v)
            | crate::enrich::registry::Lookup::PlateOnly(v) => Some(v),
            _ => None,
        };
        let listed = w.vehicles.get(&plate.0);
        let row = AlertRow {
            detection_id: crate::detect::china3::detection_id("entrance_alert", "plates", &read_id),
            kind: "entrance_alert".into(),
            seen_at_ms: at_ms,
            seen_at_local: crate::run::alerts::local_time(at_ms, self.time.zone),
            plate: plate.0.clone(),
            plate_color: color.map(|c| c.as_str().to_string()),
            vehicle_type: vehicle
                .and_then(|v| v.vehicle_type.clone())
                .or_else(|| listed.and_then(|l| l.0.clone())),
            vin: vehicle
                .and_then(|v| v.vin.clone())
                .or_else(|| listed.and_then(|l| l.1.clone())),
            site_id: site.to_string(),
            reasons,
            source_key: read_id,
        };
        self.alert_rows.builder.append(&row);
        self.alerts.push(Alert {
            kind: row.kind,
            plate: Some(row.plate),
            vin: row.vin,
            site_id: Some(row.site_id),
            at_ms,
            reasons: row.reasons,
            detection_id: Some(row.detection_id),
            source_key: row.source_key,
            plate_color: row.plate_color,
            vehicle_type: row.vehicle_type,
            local_time: Some(row.seen_at_local),
            input_ts_ms: self.input_ts_ms,
        });
        self.counters.alerts += 1;
    }

    /// Adds the plates of China III detections waiting in `det_buf` to the watchlist.
    fn watch_china3(&mut self) {
        let Some(w) = self.watch.as_mut() else { return };
        for d in &self.det_buf {
            if let Some(p) = d.plate.as_ref()
                && d.rule_id == crate::detect::china3::RULE_ID
                && crate::model::Plate(p.clone()).status().is_recognised()
            {
                let r = w.plates.entry(p.clone()).or_default();
                if !r.iter().any(|x| x == "china3-diesel") {
                    r.push("china3-diesel".into());
                }
            }
        }
    }

    /// De-duplication on (VIN, collection time, info type): `false` when the row must not be
    /// stored (a repeat is counted; a conflicting repeat is also quarantined).
    fn obd_key_new(
        &mut self,
        stream: Stream,
        vin: &str,
        key: obd::SampleKey,
        fp: u32,
        pos: &SourcePos<'_>,
        raw: &[u8],
    ) -> bool {
        match self
            .obd_keys
            .check(vin, key, fp, &self.ctx.limits.obd_stream)
        {
            KeyCheck::New => true,
            KeyCheck::Unchecked => {
                self.counters.dedup_unchecked += 1;
                true
            }
            KeyCheck::Duplicate => {
                self.counters.duplicates += 1;
                false
            }
            KeyCheck::Conflict => {
                self.counters.duplicates_conflicting += 1;
                let at = chrono::DateTime::from_timestamp_millis(key.at_ms)
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_else(|| key.at_ms.to_string());
                let err = FieldError::record(format!(
                    "duplicate_key_conflict: (VIN {vin}, collection time {at}, info type {}) was \
                     already delivered with different values; the first delivery is kept",
                    if key.info_type > 0xFF {
                        "none".to_string()
                    } else {
                        key.info_type.to_string()
                    }
                ));
                self.quarantine_record(stream, err, pos, raw);
                false
            }
        }
    }

    fn obd_sample(&mut self, stream: Stream, row: &ObdSampleRow, pos: &SourcePos<'_>, raw: &[u8]) {
        let (vin, key) = obd::sample_key(row);
        if !self.obd_key_new(stream, vin, key, obd::sample_fingerprint(row), pos, raw) {
            return;
        }
        self.obd_samples.builder.append(row, pos.file, pos.offset);
        self.keyed.update(
            row,
            &self.ctx.limits.rules.twc,
            &self.ctx.limits.obd_stream,
            self.ctx.limit_set_id,
            &mut self.det_buf,
        );
    }

    /// Hands the samples the detectors still hold to them (a streaming commit: the detector
    /// snapshot then covers every committed sample).
    pub fn release_obd(&mut self) {
        self.keyed.release_all(
            &self.ctx.limits.rules.twc,
            self.ctx.limit_set_id,
            &mut self.det_buf,
        );
        self.after_record();
    }

    /// End of the input: held samples to the detectors, then their end-of-input verdicts.
    pub fn finish_obd(&mut self) {
        self.keyed.finish_all(
            &self.ctx.limits.rules.twc,
            self.ctx.limit_set_id,
            &mut self.det_buf,
        );
        self.after_record();
    }

    fn obd_report(&mut self, row: &ObdReportRow, pos: &SourcePos<'_>, raw: &[u8]) {
        let (vin, key) = obd::report_key(row);
        if !self.obd_key_new(
            Stream::Frames,
            vin,
            key,
            obd::report_fingerprint(row),
            pos,
            raw,
        ) {
            return;
        }
        self.obd_reports.builder.append(row, pos.file, pos.offset);
        detect::check_record(
            &self.ctx.limits.rules,
            &RecordInput::ObdReport {
                report: row,
                stream: "obd",
            },
            self.ctx.limit_set_id,
            &mut self.det_buf,
        );
    }

    /// One complete frame (a Kafka message, or a frame found by the scanner).
    pub fn frame(&mut self, bytes: &[u8], pos: &SourcePos<'_>) {
        self.counters.records_in += 1;
        let (received_ms, policy) = (self.input_ts_ms, self.time);
        match decode_frame(bytes)
            .map_err(|e| FieldError::record(format!("{}: {e}", e.reason_code())))
            .and_then(|f| {
                let (mut samples, reports) =
                    obd::rows_from_frame(&f).map_err(FieldError::record)?;
                frame_times(&f, &mut samples, &reports, received_ms, &policy)?;
                Ok((samples, reports))
            }) {
            Err(e) => self.quarantine_record(Stream::Frames, e, pos, bytes),
            Ok((samples, reports)) => {
                if samples.is_empty() && reports.is_empty() {
                    self.counters.frames_other += 1;
                }
                for r in &reports {
                    self.obd_report(r, pos, bytes);
                }
                for s in &samples {
                    self.obd_sample(Stream::Frames, s, pos, bytes);
                }
            }
        }
        self.after_record();
    }

    /// One scanner event of a frame byte stream.
    pub fn frame_event(&mut self, ev: ScanEvent, file: &str) {
        match ev {
            ScanEvent::Rejected {
                offset,
                bytes,
                reason,
            } => {
                let pos = SourcePos {
                    file,
                    offset,
                    line: 0,
                };
                self.reject(
                    Stream::Frames,
                    FieldError::record(format!("{}: {reason}", reason.reason_code())),
                    &pos,
                    &bytes,
                );
            }
            ScanEvent::Frame { offset, bytes } => {
                let pos = SourcePos {
                    file,
                    offset,
                    line: 0,
                };
                self.frame(&bytes, &pos);
            }
        }
    }

    fn after_record(&mut self) {
        if self.det_buf.is_empty() {
            return;
        }
        for d in self.det_buf.drain(..) {
            self.counters.detections += 1;
            if detect::is_data_quality(&d.rule_id) {
                self.counters.data_quality += 1;
            }
            let who = d.plate.as_deref().or(d.vin.as_deref()).unwrap_or_default();
            let admitted = self.alert_kinds.contains(&d.rule_id)
                && self.alert_dedup.as_mut().is_none_or(|x| {
                    x.admit(
                        who,
                        d.site_id.as_deref().unwrap_or_default(),
                        &d.rule_id,
                        d.detected_at_ms,
                    )
                });
            if admitted {
                self.alerts.push(Alert {
                    kind: d.rule_id.clone(),
                    plate: d.plate.clone(),
                    vin: d.vin.clone(),
                    site_id: d.site_id.clone(),
                    at_ms: d.detected_at_ms,
                    reasons: vec![d.rule_id.clone()],
                    detection_id: Some(d.detection_id.clone()),
                    source_key: d.source_key.clone(),
                    plate_color: d.plate_color.clone(),
                    vehicle_type: None,
                    local_time: Some(crate::run::alerts::local_time(
                        d.detected_at_ms,
                        self.time.zone,
                    )),
                    input_ts_ms: self.input_ts_ms,
                });
                self.counters.alerts += 1;
            }
            if let (Some(w), Some(p)) = (self.watch.as_mut(), d.plate.as_ref())
                && d.rule_id == crate::detect::china3::RULE_ID
                && crate::model::Plate(p.clone()).status().is_recognised()
            {
                let r = w.plates.entry(p.clone()).or_default();
                if !r.iter().any(|x| x == "china3-diesel") {
                    r.push("china3-diesel".into());
                }
            }
            self.detections.builder.append(&d);
        }
    }

    /// Takes the alerts raised so far.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.alerts)
    }

    /// Hands builders with at least `min` rows to the sink. Errors: the sink's (a sink
    /// thread reports its failure on the next call).
    pub fn flush(&mut self, min: usize) -> Result<(), SinkError> {
        let (s, r) = (&mut self.sink, &mut self.rows_out);
        self.passes.flush_if(min, s, r)?;
        self.reads.flush_if(min, s, r)?;
        self.vehicles.flush_if(min, s, r)?;
        self.obd_samples.flush_if(min, s, r)?;
        self.obd_reports.flush_if(min, s, r)?;
        self.detections.flush_if(min, s, r)?;
        self.quarantine.flush_if(min, s, r)?;
        self.alert_rows.flush_if(min, s, r)?;
        Ok(())
    }

    /// Flushes everything and commits the files directly (file ingest); waits for the sink.
    pub fn commit_files(&mut self) -> Result<Vec<std::path::PathBuf>, SinkError> {
        self.finish_obd();
        self.flush(1)?;
        self.sink.run(|t| t.commit())
    }
}

/// Checks the times of a frame's rows against the window of plausible instants (limit set
/// `[time]`; a terminal clock far ahead is refused, field named) and stores each sample's
/// clock skew: the terminal's send time (HJ 1239 data-sending time, GMT+8) minus the receive
/// time (`received_ms`, the Kafka message timestamp), in s; left NULL without a receive time.
fn frame_times(
    f: &crate::decode::hj1239::Frame,
    samples: &mut [ObdSampleRow],
    reports: &[ObdReportRow],
    received_ms: Option<i64>,
    policy: &crate::time::TimePolicy,
) -> Result<(), FieldError> {
    for s in samples.iter() {
        policy.check("sampled_at", s.sampled_at_ms)?;
    }
    for r in reports {
        policy.check("reported_at", r.reported_at_ms)?;
    }
    let sent_ms = match &f.body {
        crate::decode::hj1239::Body::Realtime { sent_at, .. } => sent_at.unix_ms_utc8(),
        _ => None,
    };
    if let (Some(sent), Some(rx)) = (sent_ms, received_ms) {
        let skew_s = (sent - rx) as f64 / 1000.0;
        for s in samples.iter_mut() {
            s.clock_skew_s = Some(skew_s);
        }
    }
    Ok(())
}

/// Adapts a pipeline to the text decoders' [`Handler`] for one stream.
pub struct StreamHandler<'p, 'a> {
    pub pipeline: &'p mut Pipeline<'a>,
    pub stream: Stream,
    pub error: Option<SinkError>,
    pub progress: Option<&'p indicatif::ProgressBar>,
    pub bytes_before: u64,
}

impl StreamHandler<'_, '_> {
    /// Flushes full batches every [`BATCH_ROWS`] records (an error is kept for the caller).
    fn flush_every_batch(&mut self) {
        if self
            .pipeline
            .counters
            .records_in
            .is_multiple_of(BATCH_ROWS as u64)
            && self.error.is_none()
            && let Err(e) = self.pipeline.flush(BATCH_ROWS)
        {
            self.error = Some(e);
        }
    }
}

impl Handler for StreamHandler<'_, '_> {
    fn on_record(&mut self, rec: &Record, pos: &SourcePos<'_>, raw: &[u8]) {
        self.pipeline.record(self.stream, rec, pos, raw);
        self.flush_every_batch();
    }
    fn on_error(&mut self, err: FieldError, pos: &SourcePos<'_>, raw: &[u8]) {
        self.pipeline.reject(self.stream, err, pos, raw);
    }
    fn on_frame(&mut self, bytes: &[u8], pos: &SourcePos<'_>) {
        self.pipeline.frame(bytes, pos);
        self.flush_every_batch();
    }
    fn on_progress(&mut self, bytes: u64) {
        if let Some(b) = self.progress {
            b.set_position(self.bytes_before + bytes);
        }
    }
}
