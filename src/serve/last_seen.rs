//! Where and when each plate was last seen, held in memory for the plate lookup
//! (`GET /api/plates/{plate}`, `last_seen`).
//!
//! The lookup's answer is "the newest row of the plate in `rsd_passes` (`passed_at`) or
//! `plate_reads` (`read_at`)", [`super::api::LAST_SEEN_SQL`]. As SQL it scans the plate
//! column of every row group whose Bloom filter admits the plate: at 10 M passes a plate seen
//! 20 times is in about 20 row groups of 50,000 rows, decoded on every lookup. This index
//! answers the same question from a hash map: one entry per plate (time, site, source), built
//! from the committed files of the two tables (the [`Lake`]'s own file list, so it never sees
//! an uncommitted file) and extended with the new files only when a commit adds some. Its
//! answer is a batch of the SQL's shape, so the API formats both the same way; the test
//! `tests/serve_api.rs` checks it equals the SQL's answer for every plate of the demo tables.
//!
//! Memory: about 60 bytes per distinct plate (key, time, site number, source, map slot).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::query::Lake;
use crate::schema;

/// The sources in the order the SQL breaks ties of `seen_at` (`ORDER BY seen_at DESC,
/// source`): `plate_reads` before `rsd_passes`.
const SOURCES: [(&str, &str); 2] = [
    (schema::PLATE_READS, "read_at"),
    (schema::RSD_PASSES, "passed_at"),
];

/// One plate's newest sighting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    /// UTC instant, ms since the epoch.
    at_ms: i64,
    /// Number in [`Sites`]; `u32::MAX` for a row without a site.
    site: u32,
    /// Index into [`SOURCES`].
    source: u8,
}

impl Seen {
    /// Whether `self` comes before `other` in the SQL's order (newer; on the same instant the
    /// source whose name sorts first). Equal keys keep the row met first.
    fn before(&self, other: &Seen) -> bool {
        (self.at_ms, std::cmp::Reverse(self.source))
            > (other.at_ms, std::cmp::Reverse(other.source))
    }
}

/// The newest sighting of every plate in the committed `rsd_passes` and `plate_reads` files.
#[derive(Clone, Default)]
pub struct LastSeenIndex {
    /// Files folded in, per source table.
    folded: [HashSet<PathBuf>; 2],
    sites: Sites,
    by_plate: HashMap<Box<str>, Seen>,
}

impl LastSeenIndex {
    /// Brings the index to the files of `lake`: folds in the files it has not seen; starts
    /// over when a file it folded is no longer committed (the table was rewritten). Errors
    /// name the file that could not be read.
    pub fn update(&mut self, lake: &Lake) -> anyhow::Result<()> {
        let lists: Vec<&[PathBuf]> = SOURCES.iter().map(|(t, _)| lake.table_files(t)).collect();
        let gone = lists.iter().zip(&self.folded).any(|(files, folded)| {
            let now: HashSet<&PathBuf> = files.iter().collect();
            folded.iter().any(|f| !now.contains(f))
        });
        if gone {
            *self = LastSeenIndex::default();
        }
        for (source, files) in lists.into_iter().enumerate() {
            for f in files {
                if self.folded[source].contains(f) {
                    continue;
                }
                self.fold(source, f)
                    .with_context(|| format!("indexing the plates of {}", f.display()))?;
                self.folded[source].insert(f.clone());
            }
        }
        Ok(())
    }

    /// Folds the (plate, site_id, time) of every row of one data file in.
    fn fold(&mut self, source: usize, path: &std::path::Path) -> anyhow::Result<()> {
        let time_col = SOURCES[source].1;
        let file = std::fs::File::open(path)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let names = ["plate", "site_id", time_col];
        let mask = ProjectionMask::columns(builder.parquet_schema(), names);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(65_536)
            .build()?;
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        for batch in reader {
            let batch = batch?;
            let col = |name: &str, ty: &DataType| -> anyhow::Result<ArrayRef> {
                let c = batch
                    .column_by_name(name)
                    .with_context(|| format!("no column {name}"))?;
                Ok(cast(c, ty)?)
            };
            let plates = col("plate", &DataType::Utf8)?;
            let sites = col("site_id", &DataType::Utf8)?;
            let times = col(time_col, &ms)?;
            let (plates, sites) = (plates.as_string::<i32>(), sites.as_string::<i32>());
            let times =
                times.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
            for i in 0..batch.num_rows() {
                if plates.is_null(i) || times.is_null(i) {
                    continue;
                }
                let seen = Seen {
                    at_ms: times.value(i),
                    site: u32::MAX,
                    source: source as u8,
                };
                let plate = plates.value(i);
                let site = (!sites.is_null(i)).then(|| sites.value(i));
                match self.by_plate.get_mut(plate) {
                    Some(old) if !seen.before(old) => {}
                    Some(old) => {
                        *old = Seen {
                            site: self.sites.number(site),
                            ..seen
                        }
                    }
                    None => {
                        let s = Seen {
                            site: self.sites.number(site),
                            ..seen
                        };
                        self.by_plate.insert(plate.into(), s);
                    }
                }
            }
        }
        Ok(())
    }

    /// The plate's newest sighting as the SQL gives it: one batch of `site_id` (Utf8),
    /// `seen_at` (Timestamp ms, UTC), `source` (Utf8), with one row or none.
    pub fn lookup(&self, plate: &str) -> RecordBatch {
        let seen = self.by_plate.get(plate);
        let site = seen.map(|s| self.sites.list.get(s.site as usize).map(|x| x.as_ref()));
        let batch = RecordBatch::try_new(
            last_seen_schema(),
            vec![
                Arc::new(StringArray::from_iter(site)),
                Arc::new(
                    TimestampMillisecondArray::from_iter(seen.map(|s| Some(s.at_ms)))
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from_iter(
                    seen.map(|s| Some(SOURCES[s.source as usize].0)),
                )),
            ],
        );
        batch.expect("columns match the schema")
    }

    /// Distinct plates held.
    pub fn plates(&self) -> usize {
        self.by_plate.len()
    }
}

/// Site codes by number (few: one per roadside site).
#[derive(Clone, Default)]
struct Sites {
    list: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, u32>,
}

impl Sites {
    /// The number of `site`, given one when new; `u32::MAX` for none.
    fn number(&mut self, site: Option<&str>) -> u32 {
        let Some(site) = site else {
            return u32::MAX;
        };
        if let Some(n) = self.numbers.get(site) {
            return *n;
        }
        let n = self.list.len() as u32;
        let s: Arc<str> = site.into();
        self.list.push(s.clone());
        self.numbers.insert(s, n);
        n
    }
}

fn last_seen_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("site_id", DataType::Utf8, true),
        Field::new(
            "seen_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("source", DataType::Utf8, true),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_wins_and_on_the_same_instant_plate_reads_wins() {
        let pass = |at_ms| Seen {
            at_ms,
            site: 0,
            source: 1,
        };
        let read = |at_ms| Seen {
            at_ms,
            site: 0,
            source: 0,
        };
        assert!(pass(2).before(&pass(1)));
        assert!(!pass(1).before(&pass(2)));
        assert!(read(5).before(&pass(5)), "'plate_reads' < 'rsd_passes'");
        assert!(!pass(5).before(&read(5)));
        assert!(!pass(5).before(&pass(5)), "the row met first stays");
    }
}
