//! The seven output tables as one set of writers, and the sink that feeds them either inline
//! or from a thread of its own.
//!
//! Encoding and compressing Parquet is the most expensive step after decoding; in run mode it
//! must not stall the worker that delivers alerts (issue 4: alert latency p99 < 100 ms). A
//! [`BatchSink::spawn`]ed sink owns the [`TableSet`] on a separate thread and takes finished
//! Arrow batches and jobs (a commit: close files, write the manifest entry, rename) through a
//! bounded channel, in order. Order is what keeps exactly-once intact: a commit job sent after
//! batches covers exactly those batches, and the positions the worker put in its manifest
//! entry are the positions of the records in them. The bound carries backpressure: a slow disk
//! blocks the worker's next send, which fills the source channel, which slows the consumer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::schema::{self, QuarantineBuilder, TableBuilder};
use crate::sink::keys::{KeyIndex, KeyStats};
use crate::sink::manifest::CommittedFile;
use crate::sink::parquet::{SinkError, TableWriter};

/// Index of a table in a [`TableSet`] (and in [`TABLES`]).
pub type TableId = usize;
pub const RSD_PASSES: TableId = 0;
pub const PLATE_READS: TableId = 1;
pub const VEHICLES: TableId = 2;
pub const OBD_SAMPLES: TableId = 3;
pub const OBD_REPORTS: TableId = 4;
pub const DETECTIONS: TableId = 5;
pub const QUARANTINE: TableId = 6;
pub const ALERTS: TableId = 7;
pub const SOURCE_RESET: TableId = 8;

/// Name, Arrow schema and Hive-partition timestamp column of every table (DESIGN.md "Tables";
/// partitions are calendar days of that column in the enforcement zone, `vehicles` is
/// unpartitioned).
pub const TABLES: [(&str, fn() -> SchemaRef, Option<&str>); 9] = [
    (schema::RSD_PASSES, schema::rsd_passes, Some("passed_at")),
    (schema::PLATE_READS, schema::plate_reads, Some("read_at")),
    (schema::VEHICLES, schema::vehicles, None),
    (schema::OBD_SAMPLES, schema::obd_samples, Some("sampled_at")),
    (
        schema::OBD_REPORTS,
        schema::obd_reports,
        Some("reported_at"),
    ),
    (schema::DETECTIONS, schema::detections, Some("detected_at")),
    (
        schema::QUARANTINE,
        schema::quarantine,
        Some("quarantined_at"),
    ),
    (schema::ALERTS, schema::alerts, Some("seen_at")),
    (schema::SOURCE_RESET, schema::source_reset, Some("reset_at")),
];

/// Natural keys of the tables, index-aligned with [`TABLES`] (DESIGN.md "Time, plates and
/// keys": no key is written twice, by `run`, by `ingest` or by a repeated file). Enforced by
/// [`crate::sink::keys::KeyIndex`] in [`TableSet::write`].
pub const TABLE_KEYS: [KeyDef; 9] = [
    KeyDef {
        table: schema::RSD_PASSES,
        key: &["pass_id"],
        // Derived at ingest from the registry and the limit set: the same pass read again
        // after a registry or limit-set change is the same pass, not a conflict.
        not_content: &[
            "plate_status",
            "fuel",
            "fuel_source",
            "vehicle_category",
            "vin",
            "co2_pct",
            "co_pct",
            "hc_ppm",
            "no_ppm",
            "co_g_per_kg",
            "hc_g_per_kg",
            "no_g_per_kg",
            "no2_g_per_kg",
            "nh3_g_per_kg",
            "nox_g_per_kg",
            "vsp_kw_t",
            "speed_status",
            "accel_status",
            "vsp_status",
            "wind_status",
            "temp_status",
            "co2_status",
            "valid",
            "invalid_code",
            "invalid_detail",
            "verdict",
            "exceeded",
            "limit_set",
            "flags",
            "source_file",
            "source_offset",
        ],
        conflicts: true,
        snapshot: false,
    },
    KeyDef {
        table: schema::PLATE_READS,
        key: &["read_id"],
        not_content: &["plate_status", "vin", "source_file", "source_offset"],
        conflicts: true,
        snapshot: false,
    },
    KeyDef {
        table: schema::VEHICLES,
        key: &["plate", "plate_color"],
        not_content: &[],
        conflicts: true,
        snapshot: true,
    },
    KeyDef {
        table: schema::OBD_SAMPLES,
        key: &["vin", "sampled_at", "info_type"],
        not_content: &["source_file", "source_offset"],
        conflicts: true,
        snapshot: false,
    },
    KeyDef {
        table: schema::OBD_REPORTS,
        key: &["vin", "reported_at"],
        not_content: &["source_file", "source_offset"],
        conflicts: true,
        snapshot: false,
    },
    KeyDef {
        table: schema::DETECTIONS,
        key: &["detection_id"],
        // Not compared (conflicts: false); the maps are left out of the content hash.
        not_content: &["evidence", "evidence_text"],
        conflicts: false,
        snapshot: false,
    },
    KeyDef {
        table: schema::QUARANTINE,
        key: &["stream", "source_file", "source_offset", "raw"],
        not_content: &[],
        conflicts: false,
        snapshot: false,
    },
    KeyDef {
        table: schema::ALERTS,
        key: &["detection_id"],
        not_content: &[],
        conflicts: false,
        snapshot: false,
    },
    KeyDef {
        table: schema::SOURCE_RESET,
        key: &["instance", "source", "reset_at"],
        not_content: &[],
        conflicts: false,
        snapshot: false,
    },
];

/// A table's natural key and how a second row with a known key is judged.
#[derive(Clone, Copy, Debug)]
pub struct KeyDef {
    pub table: &'static str,
    /// Key columns (a row's key is the tuple; NULL is a value).
    pub key: &'static [&'static str],
    /// Columns left out when comparing a known key's content: provenance (`source_file`,
    /// `source_offset`) and values derived at ingest from the registry or the limit set.
    pub not_content: &'static [&'static str],
    /// A known key with different content is reported (quarantined, naming both versions).
    /// `false` for derived tables (`detections`, `alerts`: the first row is kept) and for
    /// `quarantine` (its key is its content).
    pub conflicts: bool,
    /// The table is a snapshot replaced as a whole (`vehicles`): keys are unique within one
    /// snapshot; committed rows of an older snapshot are not consulted.
    pub snapshot: bool,
}

/// One [`TableWriter`] per table under one root.
pub struct TableSet {
    root: PathBuf,
    writers: Vec<TableWriter>,
    /// Natural keys already stored or written (see `sink::keys`).
    pub(crate) keys: KeyIndex,
}

impl TableSet {
    /// Writers under `root`; file names carry `run_id` (unique per run / per commit).
    pub fn new(root: &Path, run_id: &str) -> Self {
        TableSet {
            root: root.to_path_buf(),
            writers: TABLES
                .iter()
                .map(|(t, s, p)| TableWriter::new(root, t, s(), *p, run_id))
                .collect(),
            keys: KeyIndex::new(root),
        }
    }

    /// Partitions every table by calendar days in `zone` (the enforcement zone).
    pub fn with_zone(mut self, zone: chrono_tz::Tz) -> Self {
        self.writers = self
            .writers
            .into_iter()
            .map(|w| w.with_zone(zone))
            .collect();
        self
    }

    /// The tables' root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Appends the rows of `batch` whose natural key is new to table `t` ([`TABLE_KEYS`]);
    /// rows with a known key are dropped (counted in [`TableSet::key_stats`]), and those
    /// with different content are written to `quarantine` instead, naming both versions.
    /// Errors: I/O, Parquet, or a batch of another schema.
    pub fn write(&mut self, t: TableId, batch: &RecordBatch) -> Result<(), SinkError> {
        let mut conflicts = Vec::new();
        for (part, sub) in self.writers[t].split(batch)? {
            let (kept, c) = self.keys.filter(t, &part, &sub)?;
            self.writers[t].write_part(&part, &kept)?;
            conflicts.extend(c);
        }
        if !conflicts.is_empty() {
            let now = chrono::Utc::now().timestamp_millis();
            let mut q = QuarantineBuilder::default();
            for c in &conflicts {
                tracing::warn!("{}", c.reason);
                q.append(
                    c.table,
                    &c.source_file,
                    c.source_offset,
                    0,
                    Some(&c.key_columns),
                    &c.reason,
                    &c.raw,
                    now,
                );
            }
            self.write(QUARANTINE, &q.finish())?;
        }
        Ok(())
    }

    /// Per table: rows written (new key), dropped as already present, quarantined as
    /// conflicting, since this set was made.
    pub fn key_stats(&self) -> Vec<(&'static str, KeyStats)> {
        self.keys.stats()
    }

    /// Bound on natural keys held in memory between commits (see `sink::keys`).
    pub fn set_max_keys(&mut self, n: usize) {
        self.keys.max_keys = n;
    }

    /// Closes and fsyncs every open file under its temporary name (run mode); the caller
    /// writes the manifest entry naming them, then calls `sink::parquet::finalize`.
    pub fn prepare(&mut self) -> Result<Vec<CommittedFile>, SinkError> {
        let mut out = Vec::new();
        for w in &mut self.writers {
            let table = w.table().to_string();
            for (tmp, path, rows) in w.prepare()? {
                out.push(CommittedFile {
                    table: table.clone(),
                    tmp,
                    path,
                    rows,
                });
            }
        }
        // Every file is closed: what the index forgets is read again from the files.
        self.keys.evict();
        Ok(out)
    }

    /// Closes, fsyncs and renames every open file into place (file ingest). Returns the paths.
    pub fn commit(&mut self) -> Result<Vec<PathBuf>, SinkError> {
        let mut out = Vec::new();
        for w in &mut self.writers {
            out.extend(w.commit()?);
        }
        self.keys.evict();
        Ok(out)
    }

    /// Names the files opened from now on.
    pub fn set_run_id(&mut self, run_id: &str) {
        for w in &mut self.writers {
            w.set_run_id(run_id);
        }
    }
}

/// Work for the sink thread, run in order with the batches around it.
pub type SinkJob = Box<dyn FnOnce(&mut TableSet) -> Result<(), SinkError> + Send>;

enum SinkMsg {
    Batch(TableId, RecordBatch),
    Job(SinkJob),
}

/// The sink thread a pipeline's finished Arrow batches go to ([`BatchSink::spawn`]).
pub struct BatchSink {
    tx: Option<SyncSender<SinkMsg>>,
    handle: Option<JoinHandle<Result<(), SinkError>>>,
    /// Set by [`BatchSink::abandon`]: queued work is dropped, not done.
    abandon: Arc<AtomicBool>,
    /// The error the thread stopped with, repeated to every later call.
    failed: Option<String>,
}

impl BatchSink {
    /// A sink thread owning `tables`, fed through a channel of `capacity` messages (batches —
    /// whatever a builder held when it was flushed — or jobs).
    pub fn spawn(mut tables: TableSet, capacity: usize) -> Result<Self, SinkError> {
        let (tx, rx) = sync_channel::<SinkMsg>(capacity.max(1));
        let abandon = Arc::new(AtomicBool::new(false));
        let flag = abandon.clone();
        let handle = std::thread::Builder::new()
            .name("table-sink".into())
            .spawn(move || sink_loop(&mut tables, &rx, &flag))
            .map_err(|e| SinkError::Io {
                path: "table-sink thread".into(),
                source: e,
            })?;
        Ok(BatchSink {
            tx: Some(tx),
            handle: Some(handle),
            abandon,
            failed: None,
        })
    }

    /// Appends a batch to table `t`. The thread's earlier failure is returned here (the
    /// thread stops at its first error).
    pub fn write(&mut self, t: TableId, batch: RecordBatch) -> Result<(), SinkError> {
        self.send(SinkMsg::Batch(t, batch))
    }

    /// Runs `job` after everything sent so far, without waiting for it.
    pub fn submit(&mut self, job: SinkJob) -> Result<(), SinkError> {
        self.send(SinkMsg::Job(job))
    }

    /// Runs `f` after everything sent so far and waits for its result.
    pub fn run<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut TableSet) -> Result<R, SinkError> + Send + 'static,
    ) -> Result<R, SinkError> {
        let (rtx, rrx) = sync_channel(1);
        self.submit(Box::new(move |ts: &mut TableSet| {
            let r = f(ts);
            let failed = r.as_ref().err().map(|e| e.to_string());
            let _ = rtx.send(r);
            match failed {
                // Stop the thread too: later work must not run after a failed commit.
                Some(m) => Err(SinkError::Stopped(m)),
                None => Ok(()),
            }
        }))?;
        rrx.recv().unwrap_or_else(|_| Err(self.join_error()))
    }

    /// Drops queued work instead of doing it (the run stops without committing). A job that
    /// already started completes.
    pub fn abandon(&mut self) {
        self.abandon.store(true, Ordering::SeqCst);
    }

    /// Returns the error the sink thread stopped with, if it stopped; does not wait.
    pub fn check(&mut self) -> Result<(), SinkError> {
        let stopped = match &self.handle {
            Some(h) => h.is_finished(),
            None => self.failed.is_some(),
        };
        if stopped {
            Err(self.join_error())
        } else {
            Ok(())
        }
    }

    /// Waits for the sink thread to finish what was sent, then stops it.
    pub fn close(&mut self) -> Result<(), SinkError> {
        drop(self.tx.take());
        let Some(h) = self.handle.take() else {
            return Ok(());
        };
        let r = h
            .join()
            .unwrap_or_else(|_| Err(SinkError::Stopped("the table-sink thread panicked".into())));
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    fn send(&mut self, m: SinkMsg) -> Result<(), SinkError> {
        match &self.tx {
            Some(tx) if tx.send(m).is_ok() => Ok(()),
            _ => Err(self.join_error()),
        }
    }

    /// The error the sink thread stopped with (the first call returns it as it was; later
    /// calls repeat its message).
    fn join_error(&mut self) -> SinkError {
        match self.close() {
            Err(e) => e,
            Ok(()) => SinkError::Stopped(
                self.failed
                    .clone()
                    .unwrap_or_else(|| "the table sink is closed".into()),
            ),
        }
    }
}

impl Drop for BatchSink {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!("table sink: {e}");
        }
    }
}

fn sink_loop(
    tables: &mut TableSet,
    rx: &Receiver<SinkMsg>,
    abandon: &AtomicBool,
) -> Result<(), SinkError> {
    while let Ok(m) = rx.recv() {
        if abandon.load(Ordering::SeqCst) {
            return Ok(());
        }
        match m {
            SinkMsg::Batch(t, b) => tables.write(t, &b)?,
            SinkMsg::Job(job) => job(tables)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quarantine_batch(n: usize) -> RecordBatch {
        let mut b = QuarantineBuilder::default();
        // Distinct source positions per batch size: quarantine rows are keyed by position.
        for i in 0..n {
            b.append(
                "rsd",
                "t.ndjson",
                (n * 100 + i) as u64,
                i as u64 + 1,
                Some("plate"),
                "bad plate",
                b"{}",
                1_790_784_000_000,
            );
        }
        b.finish()
    }

    #[test]
    fn thread_sink_writes_in_order_and_reports_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BatchSink::spawn(TableSet::new(dir.path(), "t-1"), 2).unwrap();
        for n in [3, 5, 7] {
            s.write(QUARANTINE, quarantine_batch(n)).unwrap();
        }
        let files = s.run(|t| t.commit()).unwrap();
        assert_eq!(files.len(), 1);
        let f = std::fs::File::open(&files[0]).unwrap();
        let r = parquet::file::reader::SerializedFileReader::new(f).unwrap();
        use parquet::file::reader::FileReader;
        assert_eq!(r.metadata().file_metadata().num_rows(), 15);
        s.close().unwrap();
    }

    #[test]
    fn thread_sink_error_surfaces_on_the_next_call() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BatchSink::spawn(TableSet::new(dir.path(), "t-1"), 1).unwrap();
        // A batch of the wrong schema: the thread stops with a schema error.
        s.write(DETECTIONS, quarantine_batch(2)).unwrap();
        let err = s.run(|t| t.commit()).unwrap_err().to_string();
        assert!(
            err.contains("detections") && err.contains("schema"),
            "{err}"
        );
        // And keeps saying so, with the same cause.
        let again = s
            .write(QUARANTINE, quarantine_batch(1))
            .unwrap_err()
            .to_string();
        assert!(again.contains("detections"), "{again}");
        assert!(s.check().is_err());
    }
}
