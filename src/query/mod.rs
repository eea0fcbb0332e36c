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

/// Every table: name, schema, Hive-partitioned by `date` (Date32: the calendar day of the
/// row's time in the enforcement zone, limit set `[time].zone`).
pub fn tables() -> Vec<(&'static str, SchemaRef, bool)> {
    vec![
        (schema::RSD_PASSES, schema::rsd_passes(), true),
        (schema::PLATE_READS, schema::plate_reads(), true),
        (schema::VEHICLES, schema::vehicles(), false),
        (schema::OBD_SAMPLES, schema::obd_samples(), true),
        (schema::OBD_REPORTS, schema::obd_reports(), true),
        (schema::DETECTIONS, schema::detections(), true),
        (schema::QUARANTINE, schema::quarantine(), true),
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
                // Same type and nullability as a listing table's partition column.
                s.push(Arc::new(datafusion::arrow::datatypes::Field::new(
                    "date",
                    DataType::Date32,
                    false,
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
            // `date=YYYY-MM-DD` is a calendar day in the enforcement zone, typed as a date so
            // `date >= '2025-11-8'` compares days, not text (DataFusion parses the value).
            opts = opts.with_table_partition_cols(vec![("date".to_string(), DataType::Date32)]);
        }
        let cfg = ListingTableConfig::new(url)
            .with_listing_options(opts)
            .with_schema(schema);
        ctx.register_table(name, Arc::new(ListingTable::try_new(cfg)?))?;
    }
    Ok(ctx)
}

/// Runs SQL over the tables. Errors: a date compared with an integer (see
/// [`check_date_comparisons`]).
pub async fn run_sql(dir: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    let ctx = context(dir).await?;
    let df = ctx.sql(sql).await?;
    check_date_comparisons(df.logical_plan())?;
    df.collect().await
}

/// Refuses a date compared with an integer (`date = 20251108`, also in `BETWEEN` / `IN`):
/// DataFusion would read the integer as days since 1970 and silently match nothing.
pub fn check_date_comparisons(plan: &datafusion::logical_expr::LogicalPlan) -> Result<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Expr, ExprSchemable, Operator};
    plan.apply(|node| {
        let inputs = node.inputs();
        let ty = |e: &Expr| {
            inputs
                .iter()
                .find_map(|i| e.get_type(i.schema().as_ref()).ok())
        };
        let is_date = |e: &Expr| matches!(ty(e), Some(DataType::Date32 | DataType::Date64));
        let is_int = |e: &Expr| ty(e).is_some_and(|t| t.is_integer());
        for e in node.expressions() {
            e.apply(|x| {
                let bad = match x {
                    Expr::BinaryExpr(b)
                        if matches!(
                            b.op,
                            Operator::Eq
                                | Operator::NotEq
                                | Operator::Lt
                                | Operator::LtEq
                                | Operator::Gt
                                | Operator::GtEq
                        ) =>
                    {
                        (is_date(&b.left) && is_int(&b.right))
                            || (is_int(&b.left) && is_date(&b.right))
                    }
                    Expr::Between(b) => is_date(&b.expr) && (is_int(&b.low) || is_int(&b.high)),
                    Expr::InList(l) => is_date(&l.expr) && l.list.iter().any(is_int),
                    _ => false,
                };
                if bad {
                    return Err(datafusion::error::DataFusionError::Plan(format!(
                        "{x}: a date compared with an integer; write the day as text, e.g. date = '2025-11-08'"
                    )));
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(())
}
