//! The audit trail: one `audit` row per request ([`crate::schema::audit`]), committed through
//! the same sink and manifest as every other table, so `plumewatch query` reads it like the
//! rest of the lake and a reader never sees a half-written file.
//!
//! Rows are batched: a thread of its own takes them from a channel and commits (one Parquet
//! file per partition day, one manifest entry `<instance>-<seq>.json`) at most
//! `audit_commit_ms` after the first pending row, at [`AuditLog::flush`] and when the server
//! stops. Batching keeps a busy server at one file and one manifest entry per interval instead
//! of one per request (every reader lists every manifest entry); the price is that a crash
//! (kill -9, power loss) loses the rows of the last interval, at most `audit_commit_ms` of
//! requests. A graceful stop (SIGINT/SIGTERM) commits them.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::schema::{AuditBuilder, AuditRow, TableBuilder};
use crate::sink::manifest;
use crate::sink::parquet::SinkError;
use crate::sink::tables::{AUDIT, TableSet};

enum Msg {
    Row(Box<AuditRow>),
    /// Commit what is pending, then answer.
    Flush(SyncSender<Result<usize, String>>),
}

/// The audit writer of one server process.
pub struct AuditLog {
    tx: Option<Sender<Msg>>,
    handle: Option<JoinHandle<()>>,
    /// Instance name (manifest entries, file names, the `instance` column).
    pub instance: String,
    /// Held while the server runs: one process per instance name and tables directory.
    _lock: std::fs::File,
}

impl AuditLog {
    /// Takes the instance lock under `root` (errors when another server with the same
    /// `instance` runs there), rolls committed files forward and this instance's uncommitted
    /// ones back (`sink::manifest::recover`), and starts the writer thread. Partition days are
    /// local days in `zone`.
    pub fn open(
        root: &Path,
        instance: &str,
        zone: chrono_tz::Tz,
        commit_every: Duration,
    ) -> anyhow::Result<AuditLog> {
        let lock = manifest::lock_instance(root, instance)
            .with_context(|| format!("audit writer on {}", root.display()))?;
        let (resume, _) = manifest::recover(root, instance)
            .with_context(|| format!("recovering the commit manifest of {}", root.display()))?;
        let tables = TableSet::new(root, instance).with_zone(zone);
        let (tx, rx) = channel();
        let mut w = Writer {
            root: root.to_path_buf(),
            instance: instance.to_string(),
            seq: resume.next_seq,
            tables,
            pending: AuditBuilder::default(),
            every: commit_every,
        };
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || w.run(rx))?;
        Ok(AuditLog {
            tx: Some(tx),
            handle: Some(handle),
            instance: instance.to_string(),
            _lock: lock,
        })
    }

    /// Queues one row (never blocks the request).
    pub fn record(&self, row: AuditRow) {
        if let Some(tx) = &self.tx
            && tx.send(Msg::Row(Box::new(row))).is_err()
        {
            tracing::error!("audit writer stopped: an audit row was lost");
        }
    }

    /// Commits every row queued so far and waits for it. Returns the rows committed.
    pub fn flush(&self) -> anyhow::Result<usize> {
        let (rtx, rrx) = sync_channel(1);
        self.tx
            .as_ref()
            .context("audit writer closed")?
            .send(Msg::Flush(rtx))
            .map_err(|_| anyhow::anyhow!("audit writer stopped"))?;
        rrx.recv()
            .map_err(|_| anyhow::anyhow!("audit writer stopped"))?
            .map_err(anyhow::Error::msg)
    }
}

impl Drop for AuditLog {
    /// Commits what is pending and stops the writer.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Writer {
    root: PathBuf,
    instance: String,
    seq: u64,
    tables: TableSet,
    pending: AuditBuilder,
    every: Duration,
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        let mut due: Option<Instant> = None;
        loop {
            let msg = match due {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Row(r)) => {
                    self.pending.append(&r);
                    due.get_or_insert_with(|| Instant::now() + self.every);
                }
                Ok(Msg::Flush(reply)) => {
                    let r = self.commit().map_err(|e| e.to_string());
                    due = None;
                    let _ = reply.send(r);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.commit_logged();
                    due = None;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit_logged();
                    return;
                }
            }
        }
    }

    fn commit_logged(&mut self) {
        if let Err(e) = self.commit() {
            tracing::error!("audit commit failed: {e}");
        }
    }

    /// Writes the pending rows as one commit: files under hidden names, the manifest entry,
    /// then the renames (`sink::manifest`). Returns the rows committed.
    fn commit(&mut self) -> Result<usize, SinkError> {
        let n = self.pending.len();
        if n == 0 {
            return Ok(0);
        }
        let batch = self.pending.finish();
        // File names carry instance and seq, the pattern `manifest::recover` rolls back.
        self.tables
            .set_run_id(&format!("{}-{:012}", self.instance, self.seq));
        self.tables.write(AUDIT, &batch)?;
        let mut files = self.tables.prepare()?;
        for f in &mut files {
            for p in [&mut f.tmp, &mut f.path] {
                if let Ok(rel) = p.strip_prefix(&self.root) {
                    *p = rel.to_path_buf();
                }
            }
        }
        let entry = manifest::ManifestEntry {
            instance: self.instance.clone(),
            seq: self.seq,
            committed_at_ms: chrono::Utc::now().timestamp_millis(),
            files,
            ..Default::default()
        };
        let dir = manifest::dir(&self.root);
        manifest::write_entry(&self.root, &entry).map_err(|source| SinkError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        self.seq += 1;
        let abs: Vec<_> = entry
            .files
            .iter()
            .map(|f| (self.root.join(&f.tmp), self.root.join(&f.path)))
            .collect();
        crate::sink::parquet::finalize(abs.iter().map(|(t, p)| (t.as_path(), p.as_path())))?;
        Ok(n)
    }
}
