//! Query: a DataFusion session over every table under a tables directory, the named
//! enforcement lists, and output formatting (table, CSV with a UTF-8 BOM, JSON).

pub mod lists;
pub mod output;
pub mod plot;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::schema;

/// Every table: name, schema, Hive-partitioned by `date`.
pub fn tables() -> Vec<(&'static str, SchemaRef, bool)> {
    vec![
        (schema::RSD_PASSES, schema::rsd_passes(), true),
        (schema::PLATE_READS, schema::plate_reads(), true),
        (schema::VEHICLES, schema::vehicles(), false),
        (schema::OBD_SAMPLES, schema::obd_samples(), true),
        (schema::OBD_REPORTS, schema::obd_reports(), true),
        (schema::DETECTIONS, schema::detections(), true),
        (schema::QUARANTINE, schema::quarantine(), true),
        (schema::SOURCE_RESET, schema::source_reset(), true),
    ]
}

/// A session with every table under `dir` registered (an absent table is registered empty,
/// so every list runs on any directory).
pub async fn context(dir: &Path) -> Result<SessionContext> {
    let ctx = SessionContext::new();
    for (name, schema, partitioned) in tables() {
        let path = dir.join(name);
        let has_files = !crate::enrich::registry::walk_parquet(&path).is_empty();
        if !has_files {
            let mut s: Vec<_> = schema.fields().iter().cloned().collect();
            if partitioned {
                s.push(Arc::new(datafusion::arrow::datatypes::Field::new(
                    "date",
                    DataType::Utf8,
                    true,
                )));
            }
            let sch = Arc::new(datafusion::arrow::datatypes::Schema::new(s));
            let empty = RecordBatch::new_empty(sch.clone());
            ctx.register_table(name, Arc::new(MemTable::try_new(sch, vec![vec![empty]])?))?;
            continue;
        }
        let abs = std::fs::canonicalize(&path).unwrap_or(path);
        let url = ListingTableUrl::parse(format!("{}/", abs.display()))?;
        let mut opts =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        if partitioned {
            opts = opts.with_table_partition_cols(vec![("date".to_string(), DataType::Utf8)]);
        }
        let cfg = ListingTableConfig::new(url)
            .with_listing_options(opts)
            .with_schema(schema);
        ctx.register_table(name, Arc::new(ListingTable::try_new(cfg)?))?;
    }
    Ok(ctx)
}

/// Runs SQL over the tables.
pub async fn run_sql(dir: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    let ctx = context(dir).await?;
    ctx.sql(sql).await?.collect().await
}
