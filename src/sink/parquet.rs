//! Parquet table writer: Hive-partitioned by `date=YYYY-MM-DD`, the calendar day of a
//! timestamp column in the enforcement zone (limit set `[time].zone`, Asia/Shanghai by
//! default; DESIGN.md "Time, plates and keys"), one open file per partition, committed
//! atomically: written under a temporary name, fsynced, renamed, and the directory fsynced
//! (DESIGN.md "Delivery guarantees").

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, BooleanArray, TimestampMillisecondArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Errors of the table sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: parquet: {source}")]
    Parquet {
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error("table {table}: {message}")]
    Schema { table: String, message: String },
    /// The sink thread stopped (after an earlier error, or closed).
    #[error("table sink stopped: {0}")]
    Stopped(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.display().to_string(),
        source,
    }
}

struct OpenFile {
    tmp: PathBuf,
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

/// Writer of one table under `root/<table>/`.
pub struct TableWriter {
    dir: PathBuf,
    table: String,
    schema: SchemaRef,
    /// Timestamp column that decides the partition; `None` = unpartitioned.
    partition_by: Option<String>,
    run_id: String,
    seq: u32,
    open: BTreeMap<String, OpenFile>,
    /// Zone whose calendar days name the partitions.
    zone: chrono_tz::Tz,
}

/// `YYYY-MM-DD` of a Unix-ms instant (UTC).
pub fn utc_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|e| e.checked_add_signed(chrono::Duration::days(days)))
        .unwrap_or_default();
    d.format("%Y-%m-%d").to_string()
}

/// `YYYY-MM-DD` of a Unix-ms instant in `zone`: the `date=` partition value.
pub fn local_date(ms: i64, zone: chrono_tz::Tz) -> String {
    crate::time::local_date(ms, zone)
        .format("%Y-%m-%d")
        .to_string()
}

/// Encoded bytes of a row group held in memory before it is written out (per open file).
pub const ROW_GROUP_BYTES: usize = 4 << 20;
/// Encoded bytes all open files of one table may hold in memory together.
pub const TABLE_BUFFER_BYTES: usize = 16 << 20;

/// Names of text columns that are unique per row (ids, raw bytes, free text): a dictionary
/// cannot help there and costs interning and comparisons per value (issue 12 item 3).
const UNIQUE_TEXT_COLUMNS: [&str; 8] = [
    "pass_id",
    "read_id",
    "detection_id",
    "source_key",
    "raw",
    "reason",
    "invalid_detail",
    "evidence_json",
];

/// Columns a plate lookup filters on by equality (`plate = …`, `vin = …`): each row group
/// carries a split-block Bloom filter of them, so DataFusion skips the row groups that cannot
/// hold the plate (`bloom_filter_on_read`, on by default) instead of reading the column of
/// every row group (issue 12 item 5, issue 13 plate lookups). Min/max statistics cannot do
/// this: plates are not sorted within a file.
pub const BLOOM_COLUMNS: [&str; 2] = ["plate", "vin"];

/// Distinct values a row group's Bloom filter is sized for: a row group closes at
/// [`ROW_GROUP_BYTES`] (4 MiB), about 50,000 passes, each of them at most one plate. With
/// [`BLOOM_FPP`] this is a 64 KiB filter per column and row group (about 1.5 % of the row
/// group); more distinct values than this only raise the false-positive rate.
pub const BLOOM_NDV: u64 = 50_000;

/// Target false-positive probability of the Bloom filters (a false positive costs one row
/// group read, never a wrong answer).
pub const BLOOM_FPP: f64 = 0.01;

/// Parquet writer settings per column of `schema`: Snappy pages; Bloom filters on
/// [`BLOOM_COLUMNS`]; no dictionary for unique text
/// ([`UNIQUE_TEXT_COLUMNS`]), for floats (measurements: few repeats) and for timestamps
/// (delta-encoded instead: they rise within a batch); dictionary (the default) for
/// low-cardinality text such as site, fuel, status and plate colour.
pub fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    use datafusion::arrow::datatypes::DataType;
    use parquet::basic::Encoding;
    use parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder().set_compression(Compression::SNAPPY);
    for f in schema.fields() {
        let col = ColumnPath::from(f.name().as_str());
        match f.data_type() {
            DataType::Float64 | DataType::Float32 => {
                b = b.set_column_dictionary_enabled(col, false);
            }
            DataType::Timestamp(_, _) => {
                b = b
                    .set_column_dictionary_enabled(col.clone(), false)
                    .set_column_encoding(col, Encoding::DELTA_BINARY_PACKED);
            }
            DataType::Utf8 | DataType::Binary
                if UNIQUE_TEXT_COLUMNS.contains(&f.name().as_str()) =>
            {
                b = b.set_column_dictionary_enabled(col, false);
            }
            DataType::Utf8 if BLOOM_COLUMNS.contains(&f.name().as_str()) => {
                b = b
                    .set_column_bloom_filter_enabled(col.clone(), true)
                    .set_column_bloom_filter_max_ndv(col.clone(), BLOOM_NDV)
                    .set_column_bloom_filter_fpp(col, BLOOM_FPP);
            }
            _ => {}
        }
    }
    b.build()
}

impl TableWriter {
    /// A writer for `table` under `root`; `run_id` makes file names unique per run.
    pub fn new(
        root: &Path,
        table: &str,
        schema: SchemaRef,
        partition_by: Option<&str>,
        run_id: &str,
    ) -> Self {
        TableWriter {
            dir: root.join(table),
            table: table.to_string(),
            schema,
            partition_by: partition_by.map(str::to_string),
            run_id: run_id.to_string(),
            seq: 0,
            open: BTreeMap::new(),
            zone: chrono_tz::Tz::Asia__Shanghai,
        }
    }

    /// Partitions by calendar days in `zone` (default Asia/Shanghai).
    pub fn with_zone(mut self, zone: chrono_tz::Tz) -> Self {
        self.zone = zone;
        self
    }

    fn file_for(&mut self, part: &str) -> Result<&mut OpenFile, SinkError> {
        if !self.open.contains_key(part) {
            let dir = if part.is_empty() {
                self.dir.clone()
            } else {
                self.dir.join(format!("date={part}"))
            };
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            // Never reuse a committed name (a rename would replace committed data).
            let (name, path) = loop {
                self.seq += 1;
                let name = format!("part-{}-{:05}.parquet", self.run_id, self.seq);
                let path = dir.join(&name);
                if !path.exists() {
                    break (name, path);
                }
            };
            let tmp = dir.join(format!(".{name}.tmp"));
            let file = File::create(&tmp).map_err(io(&tmp))?;
            let props = writer_properties(&self.schema);
            let writer =
                ArrowWriter::try_new(file, self.schema.clone(), Some(props)).map_err(|source| {
                    SinkError::Parquet {
                        path: tmp.display().to_string(),
                        source,
                    }
                })?;
            self.open.insert(
                part.to_string(),
                OpenFile {
                    tmp,
                    path,
                    writer,
                    rows: 0,
                },
            );
        }
        Ok(self.open.get_mut(part).expect("inserted above"))
    }

    /// Appends a batch, split by partition.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        for (part, sub) in self.split(batch)? {
            self.write_part(&part, &sub)?;
        }
        Ok(())
    }

    /// Splits a batch by partition: `(partition value, rows)`, `""` for an unpartitioned
    /// table. Errors: a batch of another schema, no partition column.
    pub fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, SinkError> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        if batch.schema() != self.schema {
            return Err(SinkError::Schema {
                table: self.table.clone(),
                message: "batch schema differs".into(),
            });
        }
        let Some(col) = self.partition_by.as_deref() else {
            return Ok(vec![(String::new(), batch.clone())]);
        };
        let ts = batch
            .column_by_name(col)
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
            .ok_or_else(|| SinkError::Schema {
                table: self.table.clone(),
                message: format!("no timestamp column {col}"),
            })?;
        let mut local = crate::time::LocalDays::new(self.zone);
        let days: Vec<i32> = ts.values().iter().map(|ms| local.days(*ms)).collect();
        let mut distinct = days.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let mut out = Vec::with_capacity(distinct.len());
        for day in distinct {
            let part = utc_date(i64::from(day) * 86_400_000);
            let sub = if days.iter().all(|d| *d == day) {
                batch.clone()
            } else {
                let mask: BooleanArray = days.iter().map(|d| Some(*d == day)).collect();
                filter_record_batch(batch, &mask).map_err(|e| SinkError::Schema {
                    table: self.table.clone(),
                    message: e.to_string(),
                })?
            };
            out.push((part, sub));
        }
        Ok(out)
    }

    /// Appends rows of one partition (as [`TableWriter::split`] gives them).
    pub fn write_part(&mut self, part: &str, sub: &RecordBatch) -> Result<(), SinkError> {
        if sub.num_rows() == 0 {
            return Ok(());
        }
        let f = self.file_for(part)?;
        f.rows += sub.num_rows() as u64;
        let err = |f: &OpenFile, source| SinkError::Parquet {
            path: f.tmp.display().to_string(),
            source,
        };
        f.writer.write(sub).map_err(|e| err(f, e))?;
        // A row group is encoded in memory until it is flushed: with one open file per day
        // partition, waiting for the default 1 M rows made memory grow with the input. A
        // file's row group is closed at ROW_GROUP_BYTES, and the largest ones while the
        // table's open files hold more than TABLE_BUFFER_BYTES (issue 9 item 3).
        if f.writer.in_progress_size() >= ROW_GROUP_BYTES {
            f.writer.flush().map_err(|e| err(f, e))?;
        }
        loop {
            let total: usize = self
                .open
                .values()
                .map(|o| o.writer.in_progress_size())
                .sum();
            if total <= TABLE_BUFFER_BYTES {
                break;
            }
            let Some(big) = self
                .open
                .values_mut()
                .max_by_key(|o| o.writer.in_progress_size())
            else {
                break;
            };
            big.writer.flush().map_err(|e| err(big, e))?;
        }
        Ok(())
    }

    /// Sets the id used in the names of files opened from now on (run mode: one per commit).
    pub fn set_run_id(&mut self, run_id: &str) {
        self.run_id = run_id.to_string();
        self.seq = 0;
    }

    /// Table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Closes every open file and fsyncs it, leaving it under its hidden temporary name.
    /// Returns `(tmp, final path, rows)` per file; [`finalize`] makes them visible.
    pub fn prepare(&mut self) -> Result<Vec<(PathBuf, PathBuf, u64)>, SinkError> {
        let mut done = Vec::new();
        for (_, f) in std::mem::take(&mut self.open) {
            let rows = f.rows;
            let file = f.writer.into_inner().map_err(|source| SinkError::Parquet {
                path: f.tmp.display().to_string(),
                source,
            })?;
            file.sync_all().map_err(io(&f.tmp))?;
            // The directory entry of the new file must be durable before a manifest names it.
            if let Some(d) = f.tmp.parent().and_then(|p| File::open(p).ok()) {
                let _ = d.sync_all();
            }
            done.push((f.tmp, f.path, rows));
        }
        Ok(done)
    }

    /// Closes, fsyncs, renames into place and fsyncs the directories. Returns the paths.
    pub fn commit(&mut self) -> Result<Vec<PathBuf>, SinkError> {
        let files = self.prepare()?;
        finalize(files.iter().map(|(t, p, _)| (t.as_path(), p.as_path())))?;
        Ok(files.into_iter().map(|(_, p, _)| p).collect())
    }
}

/// Renames prepared files to their visible names and fsyncs their directories.
pub fn finalize<'a>(
    files: impl IntoIterator<Item = (&'a Path, &'a Path)>,
) -> Result<(), SinkError> {
    for (tmp, path) in files {
        crate::sink::manifest::rename_idempotent(tmp, path).map_err(io(path))?;
        if let Some(parent) = path.parent()
            && let Ok(d) = File::open(parent)
        {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMillisecondArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    fn dirs(zone: chrono_tz::Tz) -> Vec<String> {
        let t = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        )]));
        // 2025-11-07T23:30Z (07:30 on 8 Nov in Beijing), 2025-11-08T16:30Z (00:30 on 9 Nov).
        let a = TimestampMillisecondArray::from(vec![1_762_558_200_000, 1_762_619_400_000])
            .with_timezone("UTC");
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(a)]).unwrap();
        let mut w = TableWriter::new(t.path(), "x", schema, Some("at"), "r").with_zone(zone);
        w.write(&b).unwrap();
        w.commit().unwrap();
        let mut v: Vec<String> = fs::read_dir(t.path().join("x"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn partitions_are_local_days_of_the_zone() {
        assert_eq!(
            dirs(chrono_tz::Tz::Asia__Shanghai),
            ["date=2025-11-08", "date=2025-11-09"]
        );
        // The same instants in UTC days, and in New York days.
        assert_eq!(
            dirs(chrono_tz::Tz::UTC),
            ["date=2025-11-07", "date=2025-11-08"]
        );
        assert_eq!(
            dirs(chrono_tz::Tz::America__New_York),
            ["date=2025-11-07", "date=2025-11-08"]
        );
    }
}
