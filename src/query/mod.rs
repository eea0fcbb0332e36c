//! Query: a DataFusion session over every table under a tables directory, the named
//! enforcement lists, and output formatting (table, CSV with a UTF-8 BOM, JSON).
//!
//! Every SQL statement of the product (`plumewatch query`, the named lists, the plot) goes
//! through [`Lake::sql`], which is read-only (issue 9 item 1), and every table is read
//! through [`files`] (only the product's data files) with non-finite floats read as NULL
//! (issue 8 kind 9).

pub mod files;
pub mod lists;
pub mod output;
pub mod plot;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::error::Result;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path as StorePath;
use datafusion::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Statement as SqlStatement, TableFactor, Visit, Visitor};
use futures::stream::{BoxStream, StreamExt};

use crate::schema;

/// Every table: name, schema, Hive-partitioned by `date` (Date32: the calendar day of the
/// row's time in the enforcement zone, limit set `[time].zone`).
/// From [`schema::CATALOG`].
pub fn tables() -> Vec<(&'static str, SchemaRef, bool)> {
    schema::CATALOG
        .iter()
        .map(|t| (t.name, (t.schema)(), t.partition_by.is_some()))
        .collect()
}

/// Type of the Hive partition column `date` (the one place it is set: every table, empty or
/// not, takes it from here).
///
/// `date=YYYY-MM-DD` is a calendar day in the enforcement zone, typed as a date so
/// `date >= '2025-11-8'` compares days, not text (DataFusion parses the value).
pub fn date_partition_type() -> DataType {
    DataType::Date32
}

/// A session with every table under `dir` registered (an absent table is registered empty,
/// so every list runs on any directory). Errors when `dir` is missing or not a directory.
pub async fn context(dir: &Path) -> anyhow::Result<SessionContext> {
    Ok(Lake::open(dir).await?.ctx)
}

/// True the first time it is asked about `dir` in this process: the "no tables" warning is
/// given once, not once per list a run's watchlist refresh evaluates.
fn first_warning(dir: &Path) -> bool {
    static WARNED: std::sync::OnceLock<std::sync::Mutex<HashSet<PathBuf>>> =
        std::sync::OnceLock::new();
    WARNED
        .get_or_init(Default::default)
        .lock()
        .map(|mut w| w.insert(dir.to_path_buf()))
        .unwrap_or(true)
}

/// Default bound on the memory one [`Lake`]'s queries hold together (operator state: sorts,
/// windows, hash tables, aggregates), bytes: 512 MiB. Past it, sorts and aggregates spill to
/// files in the system temp directory instead of growing with the tables (issue 12 item 5:
/// every list over 50 M passes in under 1 GB); an operator that cannot spill fails with
/// DataFusion's "Resources exhausted" error naming it, never a wrong answer.
pub const DEFAULT_QUERY_MEMORY_BYTES: usize = 512 << 20;

static QUERY_MEMORY_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_QUERY_MEMORY_BYTES);

/// Sets the query memory bound of the [`Lake`]s opened from now on (`--query-memory`);
/// see [`DEFAULT_QUERY_MEMORY_BYTES`].
pub fn set_query_memory_bytes(bytes: usize) {
    QUERY_MEMORY_BYTES.store(bytes, Ordering::Relaxed);
}

/// The query memory bound of the [`Lake`]s opened now, bytes.
pub fn query_memory_bytes() -> usize {
    QUERY_MEMORY_BYTES.load(Ordering::Relaxed)
}

/// Runs read-only SQL over the tables (see [`Lake::sql`]).
pub async fn run_sql(dir: &Path, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let lake = Lake::open(dir).await?;
    let df = lake.sql(sql).await?;
    lake.collect(df).await
}

/// The tables under one directory, open for reading.
pub struct Lake {
    /// The session (tables registered; writes to local files refused by its object store).
    pub ctx: SessionContext,
    /// The same tables with Parquet filter pushdown on, for point lookups
    /// ([`Lake::lookup_sql`]); built at the end of [`Lake::open`].
    lookup_ctx: Option<SessionContext>,
    /// Data files per table (see [`files`]).
    files: BTreeMap<String, Vec<PathBuf>>,
    /// One counter per float column: non-finite values read as NULL.
    nonfinite: Vec<Arc<NonFiniteAsNull>>,
}

impl Lake {
    /// Opens the tables under `dir`. Errors naming the path when it does not exist or is not a
    /// directory, or when the commit manifest cannot be read. Warns (stderr) once about files
    /// left out by [`files`], and when no table has any data file ("no tables under …").
    pub async fn open(dir: &Path) -> anyhow::Result<Lake> {
        let meta = std::fs::metadata(dir)
            .with_context(|| format!("tables directory {} does not exist", dir.display()))?;
        if !meta.is_dir() {
            bail!("tables directory {} is not a directory", dir.display());
        }
        let root = std::fs::canonicalize(dir)
            .with_context(|| format!("tables directory {}", dir.display()))?;
        let committed = files::committed(&root)
            .with_context(|| format!("reading the commit manifest under {}", dir.display()))?;
        // No file statistics: DataFusion 55 takes a column whose Parquet min == max as a
        // constant (`constant_columns_from_stats`), but writers leave NaN out of min/max, so a
        // NaN row would read as the other rows' value (seen: NaN, NaN, 30 read as 30, 30, 30).
        let cfg = SessionConfig::new()
            .with_information_schema(true)
            .with_collect_statistics(false);
        // One memory pool per lake, shared by its concurrent queries (the server keeps one
        // lake for every request); spill files go to the system temp directory.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(query_memory_bytes())))
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(cfg, runtime);
        let mut lake = Lake {
            ctx,
            lookup_ctx: None,
            files: BTreeMap::new(),
            nonfinite: Vec::new(),
        };
        let mut allowed = HashSet::new();
        let mut any = false;
        for (name, schema, partitioned) in tables() {
            let mut tf =
                files::table_files_with(&root, name, committed.get(name).map(|v| v.as_slice()));
            tf.forget_committed_since(&root, name);
            if let Some(w) = tf.warning(&format!("{}/{name}", dir.display())) {
                tracing::warn!("{w}");
            }
            // detections files written before the evidence maps (evidence as JSON text) are
            // read into memory with their evidence converted, not through the listing table.
            let (legacy, current): (Vec<PathBuf>, Vec<PathBuf>) = if name == schema::DETECTIONS {
                tf.files
                    .iter()
                    .cloned()
                    .partition(|f| is_legacy_detections(f))
            } else {
                (Vec::new(), tf.files.clone())
            };
            for f in &current {
                allowed.insert(StorePath::from_absolute_path(f).map_err(anyhow::Error::from)?);
            }
            let legacy = if legacy.is_empty() {
                None
            } else {
                let mut batches = Vec::new();
                for f in &legacy {
                    batches.extend(
                        upgrade_legacy_detections(f, partitioned)
                            .with_context(|| format!("reading {}", f.display()))?,
                    );
                }
                Some(batches)
            };
            any |= !tf.files.is_empty();
            lake.register(
                &root,
                name,
                schema,
                partitioned,
                !current.is_empty(),
                legacy,
            )?;
            lake.files.insert(name.to_string(), tf.files);
        }
        if !any && first_warning(&root) {
            tracing::warn!(
                "no tables under {} (none of {} has a data file): every answer is empty",
                dir.display(),
                tables().iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
            );
        }
        lake.ctx.register_object_store(
            ObjectStoreUrl::local_filesystem().as_ref(),
            Arc::new(DataFilesOnly {
                inner: Arc::new(LocalFileSystem::new()),
                allowed: Arc::new(allowed),
            }),
        );
        // Same catalog, runtime and object store (the state's parts are shared); only
        // the Parquet reading differs (`Lake::lookup_sql`).
        let mut state = lake.ctx.state();
        let exec = &mut state.config_mut().options_mut().execution;
        exec.parquet.pushdown_filters = true;
        exec.parquet.reorder_filters = true;
        lake.lookup_ctx = Some(SessionContext::new_with_state(state));
        Ok(lake)
    }

    /// Registers `name`: a view over the table's data files in which every Float64 column is
    /// `pw_finite_or_null(column)` (NaN and ±Infinity read as NULL, counted).
    fn register(
        &mut self,
        root: &Path,
        name: &str,
        schema: SchemaRef,
        partitioned: bool,
        has_files: bool,
        legacy: Option<Vec<RecordBatch>>,
    ) -> anyhow::Result<()> {
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        if partitioned {
            fields.push(Arc::new(Field::new("date", date_partition_type(), false)));
        }
        let legacy = match legacy {
            Some(b) => {
                let sch = Arc::new(Schema::new(fields.clone()));
                Some(Arc::new(MemTable::try_new(sch, vec![b])?))
            }
            None => None,
        };
        if !has_files && let Some(mem) = legacy {
            self.ctx.register_table(name, mem)?;
            return Ok(());
        }
        if !has_files {
            let sch = Arc::new(Schema::new(fields));
            let empty = RecordBatch::new_empty(sch.clone());
            self.ctx
                .register_table(name, Arc::new(MemTable::try_new(sch, vec![vec![empty]])?))?;
            return Ok(());
        }
        let url = ListingTableUrl::parse(format!("{}/", root.join(name).display()))?;
        let mut opts =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        if partitioned {
            opts =
                opts.with_table_partition_cols(vec![("date".to_string(), date_partition_type())]);
        }
        // rsd_passes files written before `invalid_code` / `invalid_detail` hold the reasons
        // in `invalid_reason`: read it too and show it as `invalid_detail` (code NULL).
        let legacy_reason = name == schema::RSD_PASSES;
        let schema = if legacy_reason {
            let mut f: Vec<_> = schema.fields().iter().cloned().collect();
            f.push(Arc::new(Field::new(
                LEGACY_INVALID_REASON,
                DataType::Utf8,
                true,
            )));
            Arc::new(Schema::new(f))
        } else {
            schema
        };
        let cfg = ListingTableConfig::new(url)
            .with_listing_options(opts)
            .with_schema(schema);
        let table = Arc::new(ListingTable::try_new(cfg)?);
        let mut exprs: Vec<Expr> = Vec::new();
        for f in &fields {
            let c = Expr::Column(Column::new_unqualified(f.name()));
            if legacy_reason && f.name() == "invalid_detail" {
                let old = Expr::Column(Column::new_unqualified(LEGACY_INVALID_REASON));
                exprs.push(datafusion::functions::expr_fn::coalesce(vec![c, old]).alias(f.name()));
            } else if f.data_type() == &DataType::Float64 {
                let udf = Arc::new(NonFiniteAsNull::new(name, f.name()));
                self.nonfinite.push(udf.clone());
                let u = ScalarUDF::new_from_shared_impl(udf as Arc<dyn ScalarUDFImpl>);
                exprs.push(u.call(vec![c]).alias(f.name()));
            } else {
                exprs.push(c);
            }
        }
        let mut plan = LogicalPlanBuilder::scan(name, provider_as_source(table), None)?;
        if let Some(mem) = legacy {
            plan = plan
                .union(LogicalPlanBuilder::scan(name, provider_as_source(mem), None)?.build()?)?;
        }
        let plan = plan.project(exprs)?.build()?;
        self.ctx
            .register_table(name, Arc::new(ViewTable::new(plan, None)))?;
        Ok(())
    }

    /// The committed data files of `table` this lake reads (empty for an unknown table).
    pub fn table_files(&self, table: &str) -> &[PathBuf] {
        self.files.get(table).map_or(&[], |v| v.as_slice())
    }

    /// Plans `sql` read-only: only SELECT/WITH, EXPLAIN, DESCRIBE and SHOW are accepted
    /// ([`check_read_only`]); DDL, DML (INSERT, COPY …) and statements (SET …) are refused by
    /// DataFusion's `SQLOptions`; only the product's tables (and `information_schema`,
    /// `generate_series`, `range`) may be read. Errors "query is read-only: X not allowed".
    pub async fn sql(&self, sql: &str) -> anyhow::Result<DataFrame> {
        Self::sql_in(&self.ctx, sql).await
    }

    /// As [`Lake::sql`], for a query that selects few rows by equality (a plate lookup):
    /// Parquet filter pushdown is on, so in each row group the Bloom filters let through,
    /// the filter column is decoded first and the other columns only at the matching rows
    /// (`datafusion.execution.parquet.pushdown_filters`, `reorder_filters`). Off for the
    /// other queries, which mostly keep most rows. Measured at 1.2 M detections: every column
    /// of a 50,000-row row group (the evidence maps included) was decoded to keep 1 row.
    pub async fn lookup_sql(&self, sql: &str) -> anyhow::Result<DataFrame> {
        Self::sql_in(self.lookup_ctx.as_ref().unwrap_or(&self.ctx), sql).await
    }

    async fn sql_in(ctx: &SessionContext, sql: &str) -> anyhow::Result<DataFrame> {
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let stmt = state.sql_to_statement(sql, &dialect)?;
        let plan = plan_read_only(ctx, stmt, &ExtraSources::default()).await?;
        Ok(ctx.execute_logical_plan(plan).await?)
    }

    /// Runs `df`. An empty result still carries its columns (one empty batch), so CSV and
    /// table output keep their header. Afterwards, warns once per file and column about
    /// non-finite floats that were read as NULL.
    pub async fn collect(&self, df: DataFrame) -> anyhow::Result<Vec<RecordBatch>> {
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut batches = df.collect().await?;
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        for w in self.nonfinite_warnings() {
            tracing::warn!("{w}");
        }
        Ok(batches)
    }

    /// Warnings about non-finite values met since the last call: one per (file, column),
    /// with the count of such values in that file. Only columns a query evaluated are looked at.
    pub fn nonfinite_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for u in &self.nonfinite {
            if u.seen.swap(0, Ordering::Relaxed) == 0 {
                continue;
            }
            for f in self.files.get(&u.table).into_iter().flatten() {
                match count_nonfinite(f, &u.column) {
                    Ok(0) => {}
                    Ok(n) => out.push(format!(
                        "{}: column {} of table {} has {n} NaN/Infinity value(s); read as NULL",
                        f.display(),
                        u.column,
                        u.table
                    )),
                    Err(e) => out.push(format!(
                        "{}: column {} of table {} has NaN/Infinity values (read as NULL); counting them failed: {e}",
                        f.display(),
                        u.column,
                        u.table
                    )),
                }
            }
        }
        out
    }
}

/// What a read-only plan may read besides the product's tables, `information_schema` and
/// `generate_series()`/`range()` (the PostgreSQL endpoint adds `pg_catalog` and the list
/// views, `serve::pg`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExtraSources<'a> {
    /// Whole schemas, e.g. `pg_catalog`.
    pub schemas: &'a [&'a str],
    /// Tables of the default schema, e.g. `list_china3_diesel`.
    pub tables: &'a [&'a str],
}

/// The read-only guard of [`Lake::sql`] over any session: refuses what [`check_read_only`]
/// refuses, then plans `stmt` on `ctx` and refuses plans DataFusion's `SQLOptions` calls DDL,
/// DML or statements, plans reading anything but the product's tables (and `extra`), and a
/// date compared with an integer ([`check_date_comparisons`]). Errors "query is read-only: …"
/// for a refusal, DataFusion's planning error otherwise.
pub async fn plan_read_only(
    ctx: &SessionContext,
    stmt: DfStatement,
    extra: &ExtraSources<'_>,
) -> anyhow::Result<LogicalPlan> {
    check_read_only(&stmt).map_err(anyhow::Error::msg)?;
    let plan = ctx.state().statement_to_plan(stmt).await?;
    let opts = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    opts.verify_plan(&plan)
        .map_err(|e| anyhow::anyhow!("query is read-only: {e}"))?;
    check_sources(&plan, extra).map_err(anyhow::Error::msg)?;
    check_date_comparisons(&plan)?;
    Ok(plan)
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

/// The `rsd_passes` column of files written before `invalid_code` / `invalid_detail` (the
/// same `;`-joined human text `invalid_detail` holds now).
const LEGACY_INVALID_REASON: &str = "invalid_reason";

/// True for a `detections` Parquet file written before the evidence maps (its `evidence`
/// column is JSON text). Reads the footer only; an unreadable file is not legacy (the query
/// then reports it as it would any file).
fn is_legacy_detections(file: &Path) -> bool {
    let Ok(f) = std::fs::File::open(file) else {
        return false;
    };
    let Ok(b) = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f) else {
        return false;
    };
    b.schema().field_with_name("evidence").is_ok_and(|f| {
        matches!(
            f.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
    })
}

/// The rows of a legacy `detections` file (see [`is_legacy_detections`]) in today's schema:
/// the JSON text of `evidence` split into the `evidence` / `evidence_text` maps by
/// [`schema::Evidence::from_json`] (text that is not a JSON object gives empty maps), other
/// columns taken by name (absent ones NULL), and, when `partitioned`, the `date` column from
/// the file's `date=YYYY-MM-DD` directory. Errors: unreadable file, no `date=` directory.
pub fn upgrade_legacy_detections(
    file: &Path,
    partitioned: bool,
) -> anyhow::Result<Vec<RecordBatch>> {
    use datafusion::arrow::array::{Array, ArrayRef, Date32Array, new_null_array};
    let f = std::fs::File::open(file)?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)?.build()?;
    let target = schema::detections();
    let date = if partitioned {
        let d = file
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("date="))
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .with_context(|| "not in a date=YYYY-MM-DD directory")?;
        Some((d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32)
    } else {
        None
    };
    let mut out = Vec::new();
    for b in reader {
        let b = b?;
        let n = b.num_rows();
        let mut rows = schema::DetectionsBuilder::default();
        let json = b
            .column_by_name("evidence")
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8))
            .transpose()?;
        for r in 0..n {
            let ev = json
                .as_ref()
                .filter(|c| !c.is_null(r))
                .and_then(|c| serde_json::from_str(c.as_string::<i32>().value(r)).ok())
                .unwrap_or(serde_json::Value::Null);
            rows.append(&schema::DetectionRow {
                evidence: schema::Evidence::from_json(&ev),
                ..Default::default()
            });
        }
        let maps = schema::TableBuilder::finish(&mut rows);
        let mut cols: Vec<ArrayRef> = Vec::new();
        let mut fields = Vec::new();
        for f in target.fields() {
            let c = match f.name().as_str() {
                "evidence" | "evidence_text" => {
                    maps.column_by_name(f.name()).expect("built").clone()
                }
                name => match b.column_by_name(name) {
                    Some(c) => datafusion::arrow::compute::cast(c, f.data_type())?,
                    None => new_null_array(f.data_type(), n),
                },
            };
            cols.push(c);
            fields.push(f.as_ref().clone());
        }
        if let Some(d) = date {
            cols.push(Arc::new(Date32Array::from(vec![d; n])));
            fields.push(Field::new("date", date_partition_type(), false));
        }
        out.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?);
    }
    Ok(out)
}

/// Non-finite (NaN, ±Infinity) values of `column` in one Parquet file.
pub fn count_nonfinite(file: &Path, column: &str) -> anyhow::Result<u64> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let f = std::fs::File::open(file)?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f)?;
    let Some(idx) = b.schema().fields().iter().position(|x| x.name() == column) else {
        return Ok(0);
    };
    let Some(leaf) = b
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts().first().map(String::as_str) == Some(column))
    else {
        return Ok(0);
    };
    let _ = idx;
    let mask = ProjectionMask::leaves(b.parquet_schema(), [leaf]);
    let mut n = 0;
    for batch in b.with_projection(mask).build()? {
        let batch = batch?;
        let c = batch.column(0);
        if let Some(a) = c.as_primitive_opt::<Float64Type>() {
            n += a.iter().flatten().filter(|v| !v.is_finite()).count() as u64;
        }
    }
    Ok(n)
}

/// `pw_finite_or_null(x)`: x when finite, NULL for NaN and ±Infinity (which would otherwise
/// compare greater than every limit: DataFusion orders floats totally, NaN above +Infinity).
/// Counts what it nulls, so the query layer can name the files afterwards.
#[derive(Debug)]
struct NonFiniteAsNull {
    table: String,
    column: String,
    seen: AtomicU64,
    signature: Signature,
}

impl NonFiniteAsNull {
    fn new(table: &str, column: &str) -> Self {
        NonFiniteAsNull {
            table: table.to_string(),
            column: column.to_string(),
            seen: AtomicU64::new(0),
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl PartialEq for NonFiniteAsNull {
    fn eq(&self, o: &Self) -> bool {
        self.table == o.table && self.column == o.column
    }
}
impl Eq for NonFiniteAsNull {}
impl Hash for NonFiniteAsNull {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.table.hash(h);
        self.column.hash(h);
    }
}

impl ScalarUDFImpl for NonFiniteAsNull {
    fn name(&self) -> &str {
        "pw_finite_or_null"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(arg) = args.args.into_iter().next() else {
            return datafusion::common::plan_err!("pw_finite_or_null takes one argument");
        };
        match arg {
            ColumnarValue::Array(a) => {
                let f = a.as_primitive::<Float64Type>();
                let bad = f.iter().flatten().filter(|v| !v.is_finite()).count();
                if bad == 0 {
                    return Ok(ColumnarValue::Array(a));
                }
                self.seen.fetch_add(bad as u64, Ordering::Relaxed);
                let out: Float64Array = f.iter().map(|v| v.filter(|x| x.is_finite())).collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            ColumnarValue::Scalar(ScalarValue::Float64(Some(v))) if !v.is_finite() => {
                self.seen.fetch_add(1, Ordering::Relaxed);
                Ok(ColumnarValue::Scalar(ScalarValue::Float64(None)))
            }
            s => Ok(s),
        }
    }
}

/// Statement kinds a read-only query may be: SELECT/WITH (and VALUES), EXPLAIN of one of
/// these, DESCRIBE, SHOW TABLES/COLUMNS/FUNCTIONS/a setting. Refuses everything else, and
/// table functions other than `generate_series`/`range` (file readers such as `read_parquet`
/// would read any file the process can). Error text: "query is read-only: X not allowed".
pub fn check_read_only(stmt: &DfStatement) -> std::result::Result<(), String> {
    let refuse = |what: &str| Err(format!("query is read-only: {what} not allowed"));
    match stmt {
        DfStatement::Statement(s) => check_sql_statement(s),
        DfStatement::Explain(e) => check_read_only(&e.statement),
        DfStatement::CopyTo(_) => refuse("COPY"),
        DfStatement::CreateExternalTable(_) => refuse("CREATE EXTERNAL TABLE"),
        DfStatement::Reset(_) => refuse("RESET"),
    }
}

fn check_sql_statement(s: &SqlStatement) -> std::result::Result<(), String> {
    match s {
        SqlStatement::Query(_)
        | SqlStatement::ExplainTable { .. }
        | SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. }
        | SqlStatement::ShowFunctions { .. }
        | SqlStatement::ShowVariable { .. } => {}
        SqlStatement::Explain { statement, .. } => check_sql_statement(statement)?,
        other => {
            return Err(format!(
                "query is read-only: {} not allowed",
                statement_kind(&other.to_string())
            ));
        }
    }
    let mut v = TableFunctions(None);
    let _ = s.visit(&mut v);
    match v.0 {
        Some(f) => Err(format!(
            "query is read-only: table function {f} not allowed (only the tables and generate_series/range can be read)"
        )),
        None => Ok(()),
    }
}

/// The leading keywords of a statement's text: `INSERT`, `COPY`, `DROP TABLE`,
/// `CREATE OR REPLACE VIEW` …
fn statement_kind(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some(first) = words.first() else {
        return "this statement".into();
    };
    let first = first.to_ascii_uppercase();
    if !matches!(first.as_str(), "CREATE" | "DROP" | "ALTER" | "TRUNCATE") {
        return first;
    }
    let mut kind = vec![first];
    for w in words.iter().skip(1).take(3) {
        if w.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            kind.push(w.to_string());
        } else {
            break;
        }
    }
    kind.join(" ")
}

/// Finds the first table function (or other function-as-table) that is not allowed.
struct TableFunctions(Option<String>);

impl Visitor for TableFunctions {
    type Break = ();
    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        let bad = match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                let n = name.to_string().to_ascii_lowercase();
                (!matches!(n.as_str(), "generate_series" | "range")).then_some(name.to_string())
            }
            TableFactor::TableFunction { expr, .. } => Some(expr.to_string()),
            TableFactor::Function { name, .. } => Some(name.to_string()),
            TableFactor::JsonTable { .. } => Some("JSON_TABLE".into()),
            TableFactor::OpenJsonTable { .. } => Some("OPENJSON".into()),
            TableFactor::XmlTable { .. } => Some("XMLTABLE".into()),
            _ => None,
        };
        match bad {
            Some(b) => {
                self.0 = Some(b);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    }
}

/// Every table a plan reads is one of the product's tables, `information_schema`, or
/// `generate_series()`/`range()`, or named by `extra` (a URL or file path as a table name is
/// refused).
fn check_sources(plan: &LogicalPlan, extra: &ExtraSources<'_>) -> std::result::Result<(), String> {
    let mut ours: BTreeSet<&str> = tables().iter().map(|t| t.0).collect();
    ours.extend(extra.tables.iter().copied());
    let mut bad = None;
    let _ = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(s) = p {
            let t = &s.table_name;
            let ok = match t.schema() {
                Some("information_schema") => true,
                Some(s) if extra.schemas.contains(&s) => true,
                None | Some("public") => {
                    ours.contains(t.table()) || matches!(t.table(), "generate_series()" | "range()")
                }
                _ => false,
            };
            if !ok {
                bad = Some(t.to_string());
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    match bad {
        Some(t) => Err(format!(
            "query is read-only: reading {t} not allowed (only the tables under --tables)"
        )),
        None => Ok(()),
    }
}

/// The local file system as the query layer sees it: only the data files chosen by
/// [`files`] are listed or read, and nothing can be written, renamed or deleted (a second
/// guard behind [`Lake::sql`]).
#[derive(Debug)]
struct DataFilesOnly {
    inner: Arc<dyn ObjectStore>,
    allowed: Arc<HashSet<StorePath>>,
}

impl fmt::Display for DataFilesOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataFilesOnly({})", self.inner)
    }
}

fn read_only_err(what: &str, p: &StorePath) -> datafusion::object_store::Error {
    datafusion::object_store::Error::Generic {
        store: "plumewatch tables",
        source: format!("query is read-only: {what} {p} not allowed").into(),
    }
}

#[async_trait]
impl ObjectStore for DataFilesOnly {
    async fn put_opts(
        &self,
        location: &StorePath,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> datafusion::object_store::Result<PutResult> {
        Err(read_only_err("writing", location))
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        _opts: PutMultipartOptions,
    ) -> datafusion::object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only_err("writing", location))
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> datafusion::object_store::Result<GetResult> {
        if !self.allowed.contains(location) {
            return Err(datafusion::object_store::Error::NotFound {
                path: location.to_string(),
                source: "not a data file of the tables".into(),
            });
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, datafusion::object_store::Result<StorePath>>,
    ) -> BoxStream<'static, datafusion::object_store::Result<StorePath>> {
        locations
            .map(|l| l.and_then(|p| Err(read_only_err("deleting", &p))))
            .boxed()
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, datafusion::object_store::Result<ObjectMeta>> {
        let allowed = self.allowed.clone();
        self.inner
            .list(prefix)
            .filter(move |m| {
                let keep = match m {
                    Ok(m) => allowed.contains(&m.location),
                    Err(_) => true,
                };
                futures::future::ready(keep)
            })
            .boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> datafusion::object_store::Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        r.objects.retain(|m| self.allowed.contains(&m.location));
        Ok(r)
    }

    async fn copy_opts(
        &self,
        _from: &StorePath,
        to: &StorePath,
        _options: CopyOptions,
    ) -> datafusion::object_store::Result<()> {
        Err(read_only_err("writing", to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> DfStatement {
        let ctx = SessionContext::new();
        let state = ctx.state();
        let d = state.config().options().sql_parser.dialect;
        state.sql_to_statement(sql, &d).unwrap()
    }

    #[test]
    fn read_only_statement_kinds() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "EXPLAIN SELECT * FROM rsd_passes",
            "DESCRIBE rsd_passes",
            "SHOW TABLES",
            "SHOW COLUMNS FROM rsd_passes",
            "SELECT * FROM generate_series(1, 3)",
        ] {
            assert_eq!(check_read_only(&parse(ok)), Ok(()), "{ok}");
        }
        for (bad, kind) in [
            ("INSERT INTO detections SELECT * FROM detections", "INSERT"),
            ("COPY (SELECT 1 AS x) TO '/tmp/x.csv'", "COPY"),
            ("DROP TABLE rsd_passes", "DROP TABLE"),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            (
                "CREATE OR REPLACE VIEW v AS SELECT 1",
                "CREATE OR REPLACE VIEW",
            ),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("DELETE FROM detections", "DELETE"),
            ("UPDATE detections SET plate = 'x'", "UPDATE"),
            (
                "EXPLAIN INSERT INTO detections SELECT * FROM detections",
                "INSERT",
            ),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/y.csv'", "COPY"),
        ] {
            let e = check_read_only(&parse(bad)).unwrap_err();
            assert_eq!(
                e,
                format!("query is read-only: {kind} not allowed"),
                "{bad}"
            );
        }
        for bad in [
            "SELECT * FROM read_parquet('/etc/x.parquet')",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT count(*) FROM rsd_passes WHERE pass_id IN (SELECT * FROM parquet_metadata('/x'))",
        ] {
            let e = check_read_only(&parse(bad)).unwrap_err();
            assert!(
                e.starts_with("query is read-only: table function"),
                "{bad}: {e}"
            );
        }
    }
}
