//! The output tables as one set of writers, and the sink that feeds them either inline
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

use datafusion::arrow::record_batch::RecordBatch;

pub use crate::schema::{CATALOG, KeyDef, TableDef};
use crate::schema::{QuarantineBuilder, TableBuilder};
use crate::sink::keys::{KeyIndex, KeyStats};
use crate::sink::manifest::{self, ArchivedFile, CommittedFile, ManifestEntry};
use crate::sink::parquet::{SinkError, TableWriter};

/// Index of a table in a [`TableSet`] (and in [`crate::schema::CATALOG`]).
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
pub const AUDIT: TableId = 9;

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
            writers: CATALOG
                .iter()
                .map(|t| TableWriter::new(root, t.name, (t.schema)(), t.partition_by, run_id))
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

    /// Appends the rows of `batch` whose natural key is new to table `t` ([`CATALOG`] keys);
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
                self.keys.note(&table, &path);
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
            let table = w.table().to_string();
            for p in w.commit()? {
                self.keys.note(&table, &p);
                out.push(p);
            }
        }
        self.keys.evict();
        Ok(out)
    }

    /// The commit protocol of [`crate::sink::manifest`] over this set's open files, the one
    /// commit of `ingest` and `run`: closes and fsyncs them under their temporary names,
    /// asks `archive` for the files of a replaced snapshot (the registry) to move out, writes
    /// `entry` naming the files (paths relative to the root, `committed_at_ms` now) — the
    /// commit point — moves the archived files, then renames the new files into place.
    /// Returns the entry as written.
    ///
    /// Errors: an I/O error writing a file or the entry (nothing is visible before the entry
    /// is written; after it, recovery rolls the commit forward).
    pub fn commit_entry(
        &mut self,
        mut entry: ManifestEntry,
        archive: impl FnOnce(&Path, &[CommittedFile]) -> Result<Vec<ArchivedFile>, SinkError>,
    ) -> Result<ManifestEntry, SinkError> {
        let root = self.root.clone();
        let io = |p: &Path| {
            let path = p.display().to_string();
            move |source| SinkError::Io { path, source }
        };
        let mut files = self.prepare()?;
        // Paths relative to the tables root (see `sink::manifest::CommittedFile`).
        for f in &mut files {
            for p in [&mut f.tmp, &mut f.path] {
                if let Ok(rel) = p.strip_prefix(&root) {
                    *p = rel.to_path_buf();
                }
            }
        }
        entry.archived = archive(&root, &files)?;
        entry.files = files;
        entry.committed_at_ms = chrono::Utc::now().timestamp_millis();
        manifest::write_entry(&root, &entry).map_err(io(&manifest::dir(&root)))?;
        for a in &entry.archived {
            let to = root.join(&a.to);
            if let Some(d) = to.parent() {
                std::fs::create_dir_all(d).map_err(io(d))?;
            }
            manifest::rename_idempotent(&root.join(&a.from), &to).map_err(io(&to))?;
        }
        let abs: Vec<_> = entry
            .files
            .iter()
            .map(|f| (root.join(&f.tmp), root.join(&f.path)))
            .collect();
        crate::sink::parquet::finalize(abs.iter().map(|(t, p)| (t.as_path(), p.as_path())))?;
        Ok(entry)
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
