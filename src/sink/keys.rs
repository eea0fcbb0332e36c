//! Natural-key index of the tables: no key is written twice (DESIGN.md "Time, plates and
//! keys"). Every batch a [`crate::sink::tables::TableSet`] writes passes through
//! [`KeyIndex::filter`], per table and partition: rows whose key is new are kept, rows whose
//! key is already stored with the same content are dropped and counted ("already present"),
//! rows whose key is stored with different content are dropped and returned as
//! [`Conflict`]s (the caller quarantines them, naming both versions).
//!
//! What is known, and what it costs:
//! - the keys of the committed (visible) files of a partition are read once, the first time
//!   the session writes to that partition (only the key columns are read; the content of the
//!   stored rows is read only when a known key comes again);
//! - the keys written by this session (one `ingest`, or `run` since its start) are added as
//!   they are written.
//!
//! Memory: per key one 64-bit key hash and one 32-bit content hash in a hash table, about
//! 20–40 bytes per key (hashbrown's load factor), for the partitions (UTC days) written since
//! the start. When the total exceeds [`KeyIndex::max_keys`] after a commit, the partitions
//! used least recently are dropped (their keys are then all committed, and are read again
//! from the files if the partition is written to again). A 64-bit key-hash collision is never
//! silent: the content hashes differ too, so it is reported as a conflict.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, SchemaRef, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::hash_utils::{QualityRandomState, create_hashes};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::sink::parquet::SinkError;
use crate::sink::tables::{CATALOG, KeyDef, TableId};

/// Default bound on keys held in memory after a commit (about 35 MB per million keys, so
/// about 70 MB; issue 9 item 3 asks for a flat peak under 300 MB). Partitions evicted are read
/// again from their committed files when a later row needs them.
pub const DEFAULT_MAX_KEYS: usize = 2_000_000;

/// Rows a table kept and dropped (since the index was made).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Rows with a new key (written).
    pub new: u64,
    /// Rows whose key was already stored with the same content (not written).
    pub present: u64,
    /// Rows whose key was already stored with different content (quarantined).
    pub conflicts: u64,
}

/// A row whose key is already stored with different content.
#[derive(Clone, Debug)]
pub struct Conflict {
    pub table: &'static str,
    /// `col=value, …` of the key.
    pub key: String,
    /// The key columns, comma-separated (the quarantine `field`).
    pub key_columns: String,
    /// `source_file` / `source_offset` of the new row, when the table has them.
    pub source_file: String,
    pub source_offset: u64,
    /// Human description of both versions (the quarantine `reason`).
    pub reason: String,
    /// The new row as `col=value` lines (the quarantine `raw`).
    pub raw: Vec<u8>,
}

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeyMap = HashMap<u64, u32, BuildHasherDefault<IdHasher>>;

struct PartKeys {
    keys: KeyMap,
    /// The content hashes of the committed keys were read (else they are placeholders).
    content_loaded: bool,
    last_used: u64,
}

/// Known keys per (table, partition); see the module docs.
pub struct KeyIndex {
    root: PathBuf,
    parts: HashMap<(TableId, String), PartKeys>,
    tick: u64,
    /// Bound on keys kept after a commit ([`KeyIndex::evict`]).
    pub max_keys: usize,
    stats: Vec<KeyStats>,
    /// The manifest's files per table (relative to `root`), read at most every
    /// [`COMMITTED_TTL`] and extended by this process's own commits ([`KeyIndex::note`]).
    committed: Option<(
        std::time::Instant,
        std::collections::BTreeMap<String, Vec<PathBuf>>,
    )>,
}

/// How long the manifest's file list is reused before it is read again (other processes'
/// commits are seen after at most this long; this process's own at once).
const COMMITTED_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Per-row hashes of `cols` of `b`, seeded with `salt`: DataFusion's vectorised
/// `create_hashes` (column at a time, foldhash quality tier; a null leaves the row's hash as
/// it was, so `NULL` and `""` differ). The hashes live only in this process's memory: the
/// committed keys are hashed again by the same function when a partition is loaded, so the
/// hash need not be stable across versions.
fn row_hashes(b: &RecordBatch, cols: &[usize], salt: u64) -> Result<Vec<u64>, String> {
    let mut out = vec![0u64; b.num_rows()];
    let state = QualityRandomState::with_seed(salt);
    create_hashes(cols.iter().map(|i| b.column(*i)), &state, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Hashes of the key columns of every row of `b`.
fn key_hashes(b: &RecordBatch, cols: &[usize]) -> Result<Vec<u64>, String> {
    row_hashes(b, cols, 0x6b65_7973)
}

/// Hashes of the content columns of every row of `b` (by name, so a file's column order
/// does not matter); 0 columns gives 0 for every row.
fn content_hashes(b: &RecordBatch, names: &[String]) -> Result<Vec<u32>, String> {
    if names.is_empty() {
        return Ok(vec![0; b.num_rows()]);
    }
    let schema = b.schema();
    let cols = names
        .iter()
        .map(|n| schema.index_of(n).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(row_hashes(b, &cols, 0x636f_6e74)?
        .into_iter()
        .map(|h| (h ^ (h >> 32)) as u32)
        .collect())
}

/// Column indices of the key and of the content of table `t` in `schema`.
fn columns(def: &KeyDef, schema: &SchemaRef) -> Result<(Vec<usize>, Vec<usize>), String> {
    let key = def
        .key
        .iter()
        .map(|c| schema.index_of(c).map_err(|_| format!("no key column {c}")))
        .collect::<Result<Vec<_>, _>>()?;
    let content = (0..schema.fields().len())
        .filter(|i| {
            let n = schema.field(*i).name();
            !def.not_content.contains(&n.as_str()) && !def.key.contains(&n.as_str())
        })
        .collect();
    Ok((key, content))
}

fn sink_err(path: &Path, message: String) -> SinkError {
    SinkError::Schema {
        table: path.display().to_string(),
        message,
    }
}

/// Reads `file`, only the columns named (all when `names` is None).
fn read_file(file: &Path, names: Option<&[&str]>) -> Result<Vec<RecordBatch>, SinkError> {
    let f = File::open(file).map_err(|source| SinkError::Io {
        path: file.display().to_string(),
        source,
    })?;
    let pq = |source| SinkError::Parquet {
        path: file.display().to_string(),
        source,
    };
    let mut b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(pq)?;
    if let Some(names) = names {
        let schema = b.schema().clone();
        let idx = names
            .iter()
            .map(|n| {
                schema
                    .index_of(n)
                    .map_err(|_| sink_err(file, format!("no column {n}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mask = ProjectionMask::roots(b.parquet_schema(), idx);
        b = b.with_projection(mask);
    }
    let rdr = b.build().map_err(pq)?;
    rdr.map(|r| r.map_err(|e| sink_err(file, e.to_string())))
        .collect()
}

/// `col=value` of column `i` of row `r` (NULL for a null).
fn cell(b: &RecordBatch, i: usize, r: usize) -> String {
    let c = b.column(i);
    if c.is_null(r) {
        return "NULL".into();
    }
    match ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()) {
        Ok(f) => f.value(r).to_string(),
        Err(_) => "?".into(),
    }
}

fn source_of(b: &RecordBatch, r: usize) -> (String, u64) {
    let file = b
        .column_by_name("source_file")
        .filter(|c| c.data_type() == &DataType::Utf8 && !c.is_null(r))
        .map(|c| c.as_string::<i32>().value(r).to_string())
        .unwrap_or_default();
    let off = b
        .column_by_name("source_offset")
        .filter(|c| c.data_type() == &DataType::UInt64 && !c.is_null(r))
        .map(|c| c.as_primitive::<UInt64Type>().value(r))
        .unwrap_or(0);
    (file, off)
}

impl KeyIndex {
    /// An empty index for the tables under `root`.
    pub fn new(root: &Path) -> Self {
        KeyIndex {
            root: root.to_path_buf(),
            parts: HashMap::new(),
            tick: 0,
            max_keys: DEFAULT_MAX_KEYS,
            stats: vec![KeyStats::default(); CATALOG.len()],
            committed: None,
        }
    }

    /// Files this process committed (or is committing) for `table`: known to the index at
    /// once, before the manifest is read again.
    pub fn note(&mut self, table: &str, path: &Path) {
        let rel = path.strip_prefix(&self.root).unwrap_or(path).to_path_buf();
        if let Some((_, m)) = self.committed.as_mut() {
            let v = m.entry(table.to_string()).or_default();
            if !v.contains(&rel) {
                v.push(rel);
            }
        }
    }

    /// The data files of one partition by the query layer's rule (`query::files`): the files
    /// the commit manifest names, or without a manifest the Hadoop rule; a stray file (`junk.parquet`,
    /// a copy) is never read, so it neither breaks an ingest nor counts as stored keys.
    fn partition_files(&mut self, t: TableId, part: &str) -> Result<Vec<PathBuf>, SinkError> {
        let dir = self.dir(t, part);
        let stale = self
            .committed
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= COMMITTED_TTL);
        if stale {
            let m = crate::query::files::committed(&self.root)
                .map_err(|e| sink_err(&self.root, format!("reading the commit manifest: {e}")))?;
            self.committed = Some((std::time::Instant::now(), m));
        }
        let named = self
            .committed
            .as_ref()
            .and_then(|(_, m)| m.get(CATALOG[t].name))
            .map(|v| v.as_slice());
        let tf = crate::query::files::table_files_with(&self.root, CATALOG[t].name, named);
        Ok(tf
            .files
            .into_iter()
            .filter(|f| f.starts_with(&dir))
            .collect())
    }

    /// Per table: rows kept, already present, in conflict.
    pub fn stats(&self) -> Vec<(&'static str, KeyStats)> {
        CATALOG
            .iter()
            .zip(&self.stats)
            .map(|(t, s)| (t.name, *s))
            .collect()
    }

    /// Keys held in memory.
    pub fn keys_in_memory(&self) -> usize {
        self.parts.values().map(|p| p.keys.len()).sum()
    }

    fn dir(&self, t: TableId, part: &str) -> PathBuf {
        let d = self.root.join(CATALOG[t].name);
        if part.is_empty() {
            d
        } else {
            d.join(format!("date={part}"))
        }
    }

    /// Loads the committed keys of a partition (first use in this session).
    fn load(&mut self, t: TableId, part: &str) -> Result<(), SinkError> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(p) = self.parts.get_mut(&(t, part.to_string())) {
            p.last_used = tick;
            return Ok(());
        }
        let def = &CATALOG[t].key;
        let mut keys = KeyMap::default();
        if !def.snapshot {
            let schema = (CATALOG[t].schema)();
            let (kc, _) = columns(def, &schema).map_err(|m| sink_err(&self.dir(t, part), m))?;
            for f in self.partition_files(t, part)? {
                for b in read_file(&f, Some(def.key))? {
                    let idx: Vec<usize> = (0..kc.len()).collect();
                    for h in key_hashes(&b, &idx).map_err(|m| sink_err(&f, m))? {
                        keys.insert(h, 0);
                    }
                }
            }
        }
        let empty = keys.is_empty();
        self.parts.insert(
            (t, part.to_string()),
            PartKeys {
                keys,
                content_loaded: empty,
                last_used: tick,
            },
        );
        Ok(())
    }

    /// The (key hash, content hash) pairs of the committed rows of a partition.
    fn load_content(&mut self, t: TableId, part: &str) -> Result<Vec<(u64, u32)>, SinkError> {
        let def = &CATALOG[t].key;
        let schema = (CATALOG[t].schema)();
        let dir = self.dir(t, part);
        let (kc, cc) = columns(def, &schema).map_err(|m| sink_err(&dir, m))?;
        let names: Vec<String> = cc.iter().map(|i| schema.field(*i).name().clone()).collect();
        let mut found = Vec::new();
        for f in self.partition_files(t, part)? {
            for b in read_file(&f, None)? {
                let s = b.schema();
                let kidx = kc
                    .iter()
                    .map(|i| s.index_of(schema.field(*i).name()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| sink_err(&f, e.to_string()))?;
                let kh = key_hashes(&b, &kidx).map_err(|m| sink_err(&f, m))?;
                let ch = content_hashes(&b, &names).map_err(|m| sink_err(&f, m))?;
                found.extend(kh.into_iter().zip(ch));
            }
        }
        Ok(found)
    }

    /// The stored row with key hash `kh` in the committed files of a partition, if any.
    fn find_stored(
        &mut self,
        t: TableId,
        part: &str,
        kh: u64,
    ) -> Result<Option<(PathBuf, RecordBatch, usize)>, SinkError> {
        let def = &CATALOG[t].key;
        for f in self.partition_files(t, part)? {
            for b in read_file(&f, None)? {
                let s = b.schema();
                let kidx = def
                    .key
                    .iter()
                    .map(|c| s.index_of(c))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| sink_err(&f, e.to_string()))?;
                let hs = key_hashes(&b, &kidx).map_err(|m| sink_err(&f, m))?;
                if let Some(r) = hs.iter().position(|h| *h == kh) {
                    return Ok(Some((f, b, r)));
                }
            }
        }
        Ok(None)
    }

    /// Keeps the rows of `batch` (table `t`, partition `part`; `""` = unpartitioned) whose
    /// key is new, records their keys, and returns the known-key rows with different content
    /// as conflicts. Errors: unreadable committed files of the partition.
    pub fn filter(
        &mut self,
        t: TableId,
        part: &str,
        batch: &RecordBatch,
    ) -> Result<(RecordBatch, Vec<Conflict>), SinkError> {
        let def = &CATALOG[t].key;
        let schema = batch.schema();
        let err = |m: String| SinkError::Schema {
            table: CATALOG[t].name.to_string(),
            message: m,
        };
        let (kc, cc) = columns(def, &schema).map_err(err)?;
        let names: Vec<String> = cc.iter().map(|i| schema.field(*i).name().clone()).collect();
        let kh = key_hashes(batch, &kc).map_err(err)?;
        let ch = content_hashes(batch, &names).map_err(err)?;
        self.load(t, part)?;
        let pk = (t, part.to_string());
        // The partition's keys are taken out of the map for the batch (one map lookup per
        // batch, not per row) and always put back, also when reading a stored file fails.
        let Some(mut pkeys) = self.parts.remove(&pk) else {
            return Err(err(format!("partition {part:?} not loaded")));
        };
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut conflicts = Vec::new();
        let res = self.filter_rows(
            t,
            part,
            batch,
            &mut pkeys,
            (&kh, &ch),
            (&kc, &names),
            &mut keep,
            &mut conflicts,
        );
        self.parts.insert(pk, pkeys);
        res?;
        if keep.iter().all(|k| *k) {
            return Ok((batch.clone(), conflicts));
        }
        let mask = BooleanArray::from(keep);
        let kept = filter_record_batch(batch, &mask).map_err(|e| err(e.to_string()))?;
        Ok((kept, conflicts))
    }

    /// The per-row part of [`KeyIndex::filter`] over one partition's keys `p`: pushes to
    /// `keep` whether each row is written, and to `conflicts` the rows in conflict.
    #[allow(clippy::too_many_arguments)]
    fn filter_rows(
        &mut self,
        t: TableId,
        part: &str,
        batch: &RecordBatch,
        p: &mut PartKeys,
        (kh, ch): (&[u64], &[u32]),
        (kc, names): (&[usize], &[String]),
        keep: &mut Vec<bool>,
        conflicts: &mut Vec<Conflict>,
    ) -> Result<(), SinkError> {
        let def = &CATALOG[t].key;
        let mut n = KeyStats::default();
        let res = (|| {
            for r in 0..batch.num_rows() {
                let Some(mut stored) = p.keys.get(&kh[r]).copied() else {
                    p.keys.insert(kh[r], ch[r]);
                    n.new += 1;
                    keep.push(true);
                    continue;
                };
                keep.push(false);
                if !def.conflicts {
                    n.present += 1;
                    continue;
                }
                if !p.content_loaded {
                    for (k, c) in self.load_content(t, part)? {
                        p.keys.insert(k, c);
                    }
                    p.content_loaded = true;
                    stored = p.keys.get(&kh[r]).copied().unwrap_or(stored);
                }
                if stored == ch[r] {
                    n.present += 1;
                    continue;
                }
                n.conflicts += 1;
                conflicts.push(self.conflict(t, part, batch, r, kh[r], kc, names)?);
            }
            Ok(())
        })();
        let s = &mut self.stats[t];
        s.new += n.new;
        s.present += n.present;
        s.conflicts += n.conflicts;
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn conflict(
        &mut self,
        t: TableId,
        part: &str,
        batch: &RecordBatch,
        r: usize,
        kh: u64,
        kc: &[usize],
        content: &[String],
    ) -> Result<Conflict, SinkError> {
        let def = &CATALOG[t].key;
        let schema = batch.schema();
        let key = kc
            .iter()
            .map(|i| format!("{}={}", schema.field(*i).name(), cell(batch, *i, r)))
            .collect::<Vec<_>>()
            .join(", ");
        let (file, off) = source_of(batch, r);
        let this = if file.is_empty() {
            "this version".to_string()
        } else {
            format!("this version from {file} at byte {off}")
        };
        let reason = match self.find_stored(t, part, kh)? {
            Some((path, sb, sr)) => {
                let ss = sb.schema();
                let mut diffs = Vec::new();
                for n in content {
                    let (Ok(i), Ok(j)) = (schema.index_of(n), ss.index_of(n)) else {
                        continue;
                    };
                    let (a, b) = (cell(&sb, j, sr), cell(batch, i, r));
                    if a != b {
                        diffs.push(format!("{n}: stored {a}, new {b}"));
                    }
                }
                let (sf, so) = source_of(&sb, sr);
                let stored = if sf.is_empty() {
                    format!("stored version in {}", path.display())
                } else {
                    format!(
                        "stored version from {sf} at byte {so} (in {})",
                        path.display()
                    )
                };
                format!(
                    "{} key {key} is already stored with different content ({}); {stored}; {this} not written",
                    CATALOG[t].name,
                    diffs.join("; ")
                )
            }
            None => format!(
                "{} key {key} was already written earlier in this run with different content (that first version is kept); {this} not written",
                CATALOG[t].name
            ),
        };
        let raw = (0..schema.fields().len())
            .map(|i| format!("{}={}", schema.field(i).name(), cell(batch, i, r)))
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes();
        Ok(Conflict {
            table: CATALOG[t].name,
            key,
            key_columns: def.key.join(","),
            source_file: file,
            source_offset: off,
            reason,
            raw,
        })
    }

    /// Drops the least recently used partitions while more than [`KeyIndex::max_keys`] keys
    /// are held. Call only when every written row is committed (their keys are then in the
    /// visible files and are read again when needed).
    pub fn evict(&mut self) {
        let mut total = self.keys_in_memory();
        if total <= self.max_keys {
            return;
        }
        let mut order: Vec<((TableId, String), u64, usize)> = self
            .parts
            .iter()
            .map(|(k, p)| (k.clone(), p.last_used, p.keys.len()))
            .collect();
        order.sort_by_key(|(_, t, _)| *t);
        for (k, _, n) in order {
            if total <= self.max_keys {
                break;
            }
            // A snapshot table's session keys are not in the files of older snapshots.
            if CATALOG[k.0].key.snapshot {
                continue;
            }
            self.parts.remove(&k);
            total -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{PlateReadsBuilder, TableBuilder};
    use crate::sink::tables::{PLATE_READS, TableSet};

    const AT: i64 = 1_790_985_600_000; // 2026-10-03T00:00:00Z

    fn reads(rows: &[(&str, &str, u64)]) -> RecordBatch {
        let mut b = PlateReadsBuilder::default();
        for (id, plate, off) in rows {
            b.read_id.append_value(id);
            b.read_at.append_value(AT);
            b.site_id.append_value("S1");
            b.plate.append_value(plate);
            b.plate_color.append_null();
            b.plate_status.append_value("standard");
            b.confidence_pct.append_null();
            b.lon_deg.append_null();
            b.lat_deg.append_null();
            b.vin.append_null();
            b.source_file.append_value("reads.ndjson");
            b.source_offset.append_value(*off);
            b.plate_cols[0].append_value(plate);
            b.plate_cols[1].append_value("ordinary");
            b.plate_cols[2].append_null();
            b.flags.append(false);
        }
        b.finish()
    }

    fn stats(t: &TableSet, table: &str) -> KeyStats {
        t.key_stats()
            .into_iter()
            .find(|(n, _)| *n == table)
            .map(|(_, s)| s)
            .unwrap()
    }

    #[test]
    fn keys_within_a_session_across_sessions_and_after_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TableSet::new(dir.path(), "s1");
        t.write(
            PLATE_READS,
            &reads(&[("r1", "冀A12345", 0), ("r2", "冀B54321", 80)]),
        )
        .unwrap();
        // The same read again in a later batch of the same session.
        t.write(PLATE_READS, &reads(&[("r1", "冀A12345", 160)]))
            .unwrap();
        t.commit().unwrap();
        assert_eq!(
            stats(&t, "plate_reads"),
            KeyStats {
                new: 2,
                present: 1,
                conflicts: 0
            }
        );
        // A new session reads the committed keys; r1 comes back with another plate.
        let mut t2 = TableSet::new(dir.path(), "s2");
        t2.write(
            PLATE_READS,
            &reads(&[
                ("r2", "冀B54321", 0),
                ("r3", "冀C11111", 80),
                ("r1", "冀A99999", 160),
            ]),
        )
        .unwrap();
        t2.set_max_keys(0);
        let files = t2.commit().unwrap();
        assert_eq!(
            stats(&t2, "plate_reads"),
            KeyStats {
                new: 1,
                present: 1,
                conflicts: 1
            }
        );
        assert_eq!(stats(&t2, "quarantine").new, 1);
        let q = files
            .iter()
            .find(|p| p.starts_with(dir.path().join("quarantine")))
            .unwrap();
        let b = read_file(q, None).unwrap();
        let reason = b[0]
            .column_by_name("reason")
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string();
        assert!(reason.contains("read_id=r1"), "{reason}");
        assert!(
            reason.contains("plate: stored 冀A12345, new 冀A99999"),
            "{reason}"
        );
        assert!(reason.contains("reads.ndjson at byte 0"), "{reason}");
        assert!(reason.contains("reads.ndjson at byte 160"), "{reason}");
        // Everything was evicted at the commit (max 0 keys): r3 is read back from the files.
        assert_eq!(t2.keys.keys_in_memory(), 0);
        t2.write(PLATE_READS, &reads(&[("r3", "冀C11111", 240)]))
            .unwrap();
        assert_eq!(stats(&t2, "plate_reads").present, 2);
    }
}
