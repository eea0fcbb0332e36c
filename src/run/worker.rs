//! The worker of `run`: takes the sources' messages in order, decodes, enriches, judges
//! (through `source::deliver` and the pipeline, as `ingest` does), delivers alerts per batch,
//! keeps each source's position and the per-source detector state, and commits (positions,
//! state and files in one manifest entry, on the sink thread).

use super::*;

/// The last record read from a source that marks records: (timestamp, value or null).
type LastRecord = (Option<i64>, Option<Vec<u8>>);

/// Pipeline counter values already added to the run's metrics.
#[derive(Default)]
struct SyncedCounts {
    dups: u64,
    late: u64,
    quarantined: BTreeMap<(&'static str, String), u64>,
}

pub(super) struct Worker<'c, 'a> {
    /// Pipeline counters already added to the metrics (see [`Worker::sync_metrics`]).
    synced: SyncedCounts,
    pub(super) cfg: &'c RunConfig,
    pub(super) pipe: Pipeline<'a>,
    pub(super) seq: u64,
    /// Source → next offset to resume from.
    pub(super) positions: BTreeMap<Arc<SourceId>, i64>,
    pub(super) dirty_parts: HashSet<Arc<SourceId>>,
    /// Source → its name in quarantine rows (built once per source, not per record).
    pub(super) source_names: HashMap<Arc<SourceId>, Arc<str>>,
    pub(super) vin_part: HashMap<String, Arc<SourceId>>,
    pub(super) owned: HashSet<Arc<SourceId>>,
    /// Per source: its record decoder (CSV header, mapping state).
    pub(super) decoders: HashMap<Arc<SourceId>, RecordDecoder>,
    pub(super) mappings: Vec<(Stream, CompiledMapping)>,
    pub(super) commits: u64,
    /// `pipe.rows_total()` at the last commit.
    pub(super) rows_committed: u64,
    /// To each source: the positions of each commit, once written.
    pub(super) committed_txs: Vec<Sender<source::Committed>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) pending_positions: bool,
    /// Watchlist refresh: requests to the refresher thread, new lists from it.
    pub(super) refresh: Option<(std::sync::mpsc::Sender<()>, Receiver<Watch>)>,
    /// Source → source resets before its position ([`Position::resets`]).
    pub(super) resets: HashMap<Arc<SourceId>, u64>,
    /// Source (one that marks records: Kafka) → the last record read (timestamp, value or
    /// null), for the fingerprint in the manifest ([`Position::mark`]).
    pub(super) last_rec: HashMap<Arc<SourceId>, LastRecord>,
    pub(super) source_resets: u64,
    /// Counters as of the last commit whose manifest entry was written: what a lost
    /// attempt leaves behind. Set by the commit job on the sink thread, not when the job is
    /// queued: queued commits are dropped when the source is lost (issue 10 soak run:
    /// records_in 4,385 for 3,000 records after 4 start-overs).
    pub(super) committed_summary: Arc<Mutex<RunSummary>>,
}

impl<'c, 'a> Worker<'c, 'a> {
    pub(super) fn new(
        cfg: &'c RunConfig,
        pipe: Pipeline<'a>,
        seq: u64,
        mappings: Vec<(Stream, CompiledMapping)>,
        committed_txs: Vec<Sender<source::Committed>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Worker {
            synced: SyncedCounts::default(),
            cfg,
            pipe,
            seq,
            positions: BTreeMap::new(),
            dirty_parts: HashSet::new(),
            source_names: HashMap::new(),
            vin_part: HashMap::new(),
            owned: HashSet::new(),
            decoders: HashMap::new(),
            mappings,
            commits: 0,
            rows_committed: 0,
            committed_txs,
            metrics,
            pending_positions: false,
            refresh: None,
            resets: HashMap::new(),
            last_rec: HashMap::new(),
            source_resets: 0,
            committed_summary: Arc::default(),
        }
    }

    /// What this attempt did (all of it committed once `run_loop` returned `Ok`).
    pub(super) fn summary(&self) -> RunSummary {
        RunSummary {
            records_in: self.pipe.counters.records_in,
            quarantined: self.pipe.counters.quarantined,
            detections: self.pipe.counters.detections,
            alerts: self.pipe.counters.alerts,
            commits: self.commits,
            rows: self.pipe.rows(),
            source_resets: self.source_resets,
            ..Default::default()
        }
    }

    /// Writes the `source_reset` row of `r` and moves the partition's position to where
    /// reading goes on (committed with the next manifest entry).
    pub(super) fn source_reset(&mut self, r: kafka::SourceReset) -> anyhow::Result<()> {
        use datafusion::arrow::array::{
            ArrayRef, Int64Array, StringArray, TimestampMillisecondArray,
        };
        let key = Arc::new(SourceId::Kafka {
            topic: r.topic.clone(),
            partition: r.partition,
        });
        let source = key.to_string();
        tracing::warn!(
            "source reset on {source} ({}): expected {}; found {}; {}",
            r.kind,
            r.expected,
            r.found,
            r.action
        );
        let now = chrono::Utc::now().timestamp_millis();
        let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
        let i = |v: Option<i64>| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
        let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
            schema::source_reset(),
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![now]).with_timezone("UTC")),
                s(&self.cfg.instance_id),
                s(&source),
                s(&r.topic),
                i(Some(i64::from(r.partition))),
                s(r.kind),
                i(Some(r.expected_offset)),
                s(&r.expected),
                i(r.low_watermark),
                i(r.high_watermark),
                s(&r.found),
                i(Some(r.resumed_offset)),
                i(r.records_lost),
                s(&r.action),
            ],
        )?;
        self.pipe
            .sink
            .write(crate::sink::tables::SOURCE_RESET, batch)?;
        *self.resets.entry(key.clone()).or_insert(0) += 1;
        self.last_rec.remove(&key);
        self.positions.insert(key, r.resumed_offset);
        self.pending_positions = true;
        self.source_resets += 1;
        self.metrics.source_resets.inc();
        Ok(())
    }

    pub(super) fn run_loop(
        &mut self,
        rx: &Receiver<Msg>,
        stop: &AtomicBool,
        alerts: &mut AlertSink,
        n_files: usize,
    ) -> anyhow::Result<()> {
        let b = &self.cfg.batch;
        let commit_every = Duration::from_millis(self.cfg.commit.interval_ms.max(1));
        let max_age = Duration::from_millis(b.max_age_ms.max(1));
        let mut batch_rows = 0usize;
        let mut batch_bytes = 0usize;
        let mut batch_start: Option<Instant> = None;
        let mut last_commit = Instant::now();
        let mut last_input = Instant::now();
        let mut files_done = 0usize;
        // With Kafka, idleness counts only once the group gave this instance partitions.
        let mut assigned_once = self.cfg.sources.kafka.is_none();
        let refresh_every = Duration::from_millis(self.cfg.alerts.watchlist_refresh_ms.max(1));
        let mut last_refresh = Instant::now();
        loop {
            if let Some((tx, rx)) = &self.refresh {
                while let Ok(w) = rx.try_recv() {
                    self.pipe.watch = Some(w);
                }
                if last_refresh.elapsed() >= refresh_every {
                    let _ = tx.send(());
                    last_refresh = Instant::now();
                }
            }
            let wait = match batch_start {
                Some(s) => max_age.saturating_sub(s.elapsed()),
                None => Duration::from_millis(50),
            }
            .min(commit_every.saturating_sub(last_commit.elapsed()))
            .max(Duration::from_millis(1));
            match rx.recv_timeout(wait) {
                Ok(Msg::Data {
                    stream,
                    source,
                    item,
                    next,
                    null_value,
                    ts_ms,
                    mapping,
                    format,
                }) => {
                    if !self.owned.contains(&source) {
                        continue; // a partition this instance no longer owns
                    }
                    last_input = Instant::now();
                    batch_start.get_or_insert(last_input);
                    batch_rows += 1;
                    batch_bytes += item.len();
                    let marks = source.marks_records();
                    if marks && (null_value || item.is_empty()) {
                        self.reject_empty(stream, &source, item.offset(), null_value);
                    } else {
                        self.process(stream, &source, &item, ts_ms, mapping, format)?;
                    }
                    if marks {
                        let v = match item {
                            Framed::Record { bytes, .. } if !null_value => Some(bytes.into_owned()),
                            _ => None,
                        };
                        self.last_rec.insert(source.clone(), (ts_ms, v));
                    }
                    self.positions.insert(source, next);
                    self.pending_positions = true;
                }
                Ok(Msg::SourceReset(r)) => self.source_reset(r)?,
                Ok(Msg::Lost(why)) => {
                    self.pipe.sink.abandon();
                    return Err(anyhow::Error::new(SourceLost {
                        why,
                        committed: self.committed_summary.clone(),
                    }));
                }
                Ok(Msg::Assigned(keys)) => {
                    if keys.iter().any(|k| k.shared()) {
                        assigned_once = true;
                    }
                    last_input = Instant::now();
                    self.load_state(&keys)?;
                    self.owned.extend(keys);
                }
                Ok(Msg::Revoke(keys, ack)) => {
                    alerts.deliver(self.pipe.take_alerts());
                    self.commit(true)?;
                    last_commit = Instant::now();
                    for k in &keys {
                        self.owned.remove(k);
                        self.positions.remove(k);
                        self.resets.remove(k);
                        self.last_rec.remove(k);
                        self.decoders.remove(k);
                    }
                    let drop_keys: HashSet<&SourceId> = keys.iter().map(|k| k.as_ref()).collect();
                    let gone: Vec<String> = self
                        .vin_part
                        .iter()
                        .filter(|(_, p)| drop_keys.contains(p.as_ref()))
                        .map(|(v, _)| v.clone())
                        .collect();
                    for v in gone {
                        self.pipe.keyed.states_mut().remove(&v);
                        self.vin_part.remove(&v);
                    }
                    let _ = ack.send(());
                }
                Ok(Msg::Closed(id)) => {
                    // Its records are processed; nothing of it is read again.
                    self.decoders.remove(&id);
                    self.source_names.remove(&id);
                    self.owned.remove(&id);
                    self.positions.remove(&id);
                }
                Ok(Msg::Done) => files_done += 1,
                Ok(Msg::Fatal(why)) => {
                    self.pipe.sink.abandon();
                    anyhow::bail!(
                        "{why}; stopping without a commit (a restart resumes from the last manifest entry)"
                    );
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    alerts.deliver(self.pipe.take_alerts());
                    self.commit(true)?;
                    return Ok(());
                }
            }
            // Alerts go out as they happen; the batch bounds only table flushes.
            if !self.pipe.alerts.is_empty() {
                alerts.deliver(self.pipe.take_alerts());
            }
            if batch_rows >= b.max_rows
                || batch_bytes >= b.max_bytes
                || batch_start.is_some_and(|s| s.elapsed() >= max_age)
            {
                alerts.deliver(self.pipe.take_alerts());
                self.pipe.flush(crate::pipeline::BATCH_ROWS)?;
                self.metrics.batches.inc();
                self.sync_metrics();
                batch_rows = 0;
                batch_bytes = 0;
                batch_start = None;
            }
            if last_commit.elapsed() >= commit_every {
                self.commit(false)?;
                last_commit = Instant::now();
            }
            let idle = self.cfg.idle_exit_ms.is_some_and(|ms| {
                assigned_once
                    && last_input.elapsed() >= Duration::from_millis(ms)
                    && files_done >= n_files
            });
            if stop.load(Ordering::SeqCst) || idle {
                alerts.deliver(self.pipe.take_alerts());
                self.commit(true)?;
                stop.store(true, Ordering::SeqCst);
                if self.cfg.sources.kafka.is_none() {
                    return Ok(());
                }
                // Drain revocations the Kafka thread sends while leaving the group.
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(Msg::Revoke(_, ack)) => {
                            let _ = ack.send(());
                        }
                        Ok(_) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                }
                return Ok(());
            }
        }
    }

    /// The name of `source` in quarantine rows (built once per source, not per record).
    pub(super) fn source_name(&mut self, source: &Arc<SourceId>) -> Arc<str> {
        self.source_names
            .entry(source.clone())
            .or_insert_with(|| Arc::from(source.quarantine_name()))
            .clone()
    }

    /// Quarantines a Kafka record without content: a tombstone (null value) or an empty
    /// value, each with its own reason (issue 10 item 7).
    pub(super) fn reject_empty(
        &mut self,
        stream: Stream,
        source: &Arc<SourceId>,
        offset: u64,
        null_value: bool,
    ) {
        let file = self.source_name(source);
        let pos = SourcePos {
            file: &file,
            offset,
            line: 0,
        };
        let why = if null_value {
            "tombstone: Kafka record with a null value"
        } else {
            "empty value: Kafka record with a zero-length value"
        };
        self.pipe.reject(
            stream,
            crate::decode::record::FieldError::record(why),
            &pos,
            b"",
        );
        self.metrics.worker_records.inc();
        self.metrics.mark_record();
    }

    /// One framed item: decoded by its source's decoder (the same path as `ingest`:
    /// `source::deliver`), then enriched, judged and buffered by the pipeline.
    pub(super) fn process(
        &mut self,
        stream: Stream,
        source: &Arc<SourceId>,
        item: &Framed<'_>,
        ts_ms: Option<i64>,
        mapping: Option<usize>,
        format: Format,
    ) -> anyhow::Result<()> {
        self.pipe.input_ts_ms = ts_ms;
        let file = self.source_name(source);
        // A message value may end in a line end (file framing already drops it).
        let trimmed;
        let item = match item {
            Framed::Record {
                offset,
                line,
                bytes,
            } if format.text().is_some() => {
                trimmed = Framed::Record {
                    offset: *offset,
                    line: *line,
                    bytes: std::borrow::Cow::Borrowed(trim(bytes)),
                };
                &trimmed
            }
            other => other,
        };
        let dec = match format.text() {
            None => None,
            Some(text) => Some(self.decoders.entry(source.clone()).or_insert_with(|| {
                let m = match mapping {
                    Some(i) => self.mappings[i].1.clone(),
                    None => Mapping::compile(None, stream.specs(), "canonical")
                        .expect("canonical mapping")
                        .with_time_policy(self.pipe.ctx.limits.time()),
                };
                // A stream does not wait for a `utc_offset_from` offset: a record is read
                // when it arrives (a held record would sit past a committed position).
                let opts = ReadOptions {
                    max_held_records: 0,
                    ..ReadOptions::default()
                };
                RecordDecoder::new(text, m, stream.specs(), &opts)
            })),
        };
        let mut h = StreamHandler {
            pipeline: &mut self.pipe,
            stream,
            error: None,
            progress: None,
            bytes_before: 0,
        };
        source::deliver(item, &file, dec, &mut h);
        if let Some(e) = h.error.take() {
            return Err(e.into());
        }
        // A vehicle's state belongs to the source it was first seen on (keyed by VIN, like
        // Kafka); mark that source dirty so the next commit snapshots the vehicle.
        for vin in self.pipe.keyed.take_touched() {
            let part = self
                .vin_part
                .entry(vin)
                .or_insert_with(|| source.clone())
                .clone();
            self.dirty_parts.insert(part);
        }
        self.metrics.worker_records.inc();
        self.metrics.mark_record();
        Ok(())
    }

    /// Adds what the pipeline counted since the last call to the run's metrics (once per
    /// batch: OBD duplicates and late samples, quarantined records per stream and field).
    pub(super) fn sync_metrics(&mut self) {
        let c = &self.pipe.counters;
        let dups = c.duplicates + c.duplicates_conflicting;
        self.metrics
            .obd_duplicates
            .add(dups.saturating_sub(self.synced.dups));
        self.synced.dups = dups;
        let late = self.pipe.keyed.late;
        self.metrics
            .obd_late
            .add(late.saturating_sub(self.synced.late));
        self.synced.late = late;
        for (k, &n) in &c.quarantined_by {
            let seen = self.synced.quarantined.entry(k.clone()).or_default();
            if n > *seen {
                self.metrics.add_quarantined(k.0, &k.1, n - *seen);
                *seen = n;
            }
        }
    }

    /// Restores the detector state the manifest holds for `keys` (sources this instance
    /// now reads) and their source-reset counts.
    pub(super) fn load_state(&mut self, keys: &[Arc<SourceId>]) -> anyhow::Result<()> {
        // Only resumable sources have positions or state in the manifest: a TCP connection
        // (one per terminal) must not read every manifest entry when it opens.
        if !keys.iter().any(|k| k.resumable()) {
            return Ok(());
        }
        let entries = manifest::read_all(&self.cfg.tables)
            .context("reading the manifest to restore detector state")?;
        let view = manifest::resume_view(&entries, &self.cfg.instance_id);
        for k in keys {
            if let Some(p) = view.positions.get(k.as_ref()).filter(|p| p.resets > 0) {
                self.resets.insert(k.clone(), p.resets);
            }
        }
        let states = self.pipe.keyed.states_mut();
        for k in keys {
            let Some((inst, seq)) = view.state_source.get(k.as_ref()) else {
                continue;
            };
            let Some(e) = entries
                .iter()
                .find(|e| &e.instance == inst && e.seq == *seq)
            else {
                continue;
            };
            for (vin, v) in e.state.get(k.as_ref()).into_iter().flatten() {
                states.restore(vin, v).with_context(|| {
                    format!("detector state of {vin} in manifest entry {inst}-{seq}")
                })?;
                self.vin_part.insert(vin.clone(), k.clone());
            }
        }
        Ok(())
    }

    /// Commits what was processed so far: hands the remaining rows to the sink thread, then a
    /// job that closes the files, writes the manifest entry (files, positions, detector state
    /// of dirty partitions), renames the files into place and passes the Kafka offsets to the
    /// source thread. The entry's positions and state are taken here, on the worker, at the
    /// same point in the record stream as the batches before the job: that is what makes the
    /// tables exactly-once with the sink running behind. With `wait`, returns after the job
    /// (rebalance, shutdown); otherwise the worker goes on while the sink commits.
    pub(super) fn commit(&mut self, wait: bool) -> anyhow::Result<()> {
        // A commit that failed on the sink thread stops the run here, input or not.
        self.pipe.sink.check()?;
        // Samples held for ordering go to the detectors now, so the state snapshot below
        // covers every sample of this commit.
        self.pipe.release_obd();
        self.sync_metrics();
        self.pipe.flush(1)?;
        let rows = self.pipe.rows_total();
        if rows == self.rows_committed && !self.pending_positions {
            if wait {
                // Nothing new, but earlier commits may still be queued: a revoke or shutdown
                // must not go on before they are written.
                self.pipe.sink.run(|_| Ok(()))?;
            }
            return Ok(());
        }
        let mut e = ManifestEntry {
            instance: self.cfg.instance_id.clone(),
            seq: self.seq,
            ..Default::default()
        };
        // Positions of resumable sources (stdin and TCP connections cannot be read again).
        for (k, v) in &self.positions {
            if !k.resumable() {
                continue;
            }
            let mark = if k.marks_records() {
                self.last_rec
                    .get(k)
                    .map(|(ts, val)| kafka::fingerprint(*ts, val.as_deref()))
            } else {
                None
            };
            e.positions.insert(
                k.as_ref().clone(),
                Position {
                    next: *v,
                    resets: self.resets.get(k).copied().unwrap_or(0),
                    mark,
                },
            );
        }
        let committed: Vec<(Arc<SourceId>, Position)> = e
            .positions
            .iter()
            .map(|(k, p)| (Arc::new(k.clone()), p.clone()))
            .collect();
        let states = self.pipe.keyed.states();
        for vin in states.keys() {
            let Some(part) = self.vin_part.get(vin) else {
                continue;
            };
            if !self.dirty_parts.contains(part) {
                continue;
            }
            if !part.resumable() {
                continue;
            }
            if let Some(v) = states.snapshot(vin) {
                e.state
                    .entry(part.as_ref().clone())
                    .or_default()
                    .insert(vin.to_string(), v);
            }
        }
        for p in self.dirty_parts.iter().filter(|p| p.resumable()) {
            e.state.entry(p.as_ref().clone()).or_default();
        }
        let next_run_id = run_id(&self.cfg.instance_id, self.seq + 1);
        let mut done_summary = self.summary();
        done_summary.commits += 1;
        let done = self.committed_summary.clone();
        let committed_txs = self.committed_txs.clone();
        let metrics = self.metrics.clone();
        let refresh = self.refresh.as_ref().map(|(tx, _)| tx.clone());
        let job = move |t: &mut TableSet| -> Result<(), SinkError> {
            let e = t.commit_entry(e, |_, _| Ok(Vec::new()))?;
            t.set_run_id(&next_run_id);
            metrics.mark_commit(e.files.iter().map(|f| f.rows).sum());
            for f in &e.files {
                metrics.add_committed_rows(&f.table, f.rows);
            }
            if let Ok(mut d) = done.lock() {
                *d = done_summary;
            }
            for tx in &committed_txs {
                let _ = tx.send(committed.clone());
            }
            if let Some(r) = &refresh {
                let _ = r.send(());
            }
            Ok(())
        };
        if wait {
            self.pipe.sink.run(job)?;
        } else {
            self.pipe.sink.submit(Box::new(job))?;
        }
        self.seq += 1;
        self.commits += 1;
        self.rows_committed = rows;
        self.dirty_parts.clear();
        self.pending_positions = false;
        Ok(())
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let mut e = b.len();
    while e > 0 && b[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    &b[..e]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A revoke or shutdown commits with `wait`; when nothing is new since the last periodic
    /// commit, it must still wait for that commit, queued on the sink thread, to be written
    /// (otherwise the partitions are given up before their manifest entry exists).
    #[test]
    fn waiting_commit_waits_for_queued_commits_with_nothing_new() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: RunConfig = toml::from_str(&format!(
            "tables = {:?}\n",
            dir.path().display().to_string()
        ))
        .unwrap();
        let limits = LimitSet::default_set();
        let id = limits.id();
        let registry = Registry::default();
        let ctx = RsdContext {
            limits: &limits,
            limit_set_id: &id,
            registry: &registry,
        };

        let pipe = Pipeline::new(ctx, &cfg.tables, &run_id(&cfg.instance_id, 0)).unwrap();
        let mut w = Worker::new(
            &cfg,
            pipe,
            0,
            Vec::new(),
            Vec::new(),
            Arc::new(Metrics::default()),
        );
        let key = Arc::new(SourceId::File("x.ndjson".into()));
        let line = br#"{"read_id":"r1","read_at":1790784000000,"site_id":"S1","plate":"A12345"}"#;
        let item = Framed::Record {
            offset: 0,
            line: 1,
            bytes: std::borrow::Cow::Borrowed(&line[..]),
        };
        w.process(Stream::Plates, &key, &item, None, None, Format::Ndjson)
            .unwrap();
        w.positions.insert(key, line.len() as i64 + 1);
        w.pending_positions = true;

        // Hold the sink thread: the periodic commit queues behind a job waiting for a gate.
        let (gate_tx, gate_rx) = sync_channel::<()>(0);
        w.pipe
            .sink
            .submit(Box::new(move |_| {
                let _ = gate_rx.recv();
                Ok(())
            }))
            .unwrap();
        w.commit(false).unwrap();
        assert!(manifest::read_all(dir.path()).unwrap().is_empty());
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            gate_tx.send(()).unwrap();
        });
        w.commit(true).unwrap();
        let entries = manifest::read_all(dir.path()).unwrap();
        assert_eq!(
            entries.len(),
            1,
            "the queued commit was written before returning"
        );
        assert_eq!(
            entries[0]
                .positions
                .get(&SourceId::File("x.ndjson".into()))
                .map(|p| p.next),
            Some(line.len() as i64 + 1)
        );
        assert_eq!(entries[0].files.iter().map(|f| f.rows).sum::<u64>(), 1);
        opener.join().unwrap();
    }
}
