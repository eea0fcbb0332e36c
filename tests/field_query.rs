//! Field cases of the query layer and exports (issue 8 kind 9, issue 9 items 1, 2, 5):
//! read-only SQL, a `--tables` path that is wrong, stray files in the tables, NaN in a table
//! file written by another tool, spreadsheet formulas in CSV. Inputs are copied from
//! `shared/field-cases/<slug>` into `fixtures/field-cases/<slug>`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;

fn case(slug: &str, file: &str) -> String {
    repo(&format!("fixtures/field-cases/{slug}/{file}"))
        .display()
        .to_string()
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let o = pw(args);
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).to_string(),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
    }
}

fn ingest(t: &Path, stream: &str, file: &str) {
    ok(&[
        "ingest",
        "--stream",
        stream,
        "--quiet",
        "--out",
        t.to_str().unwrap(),
        file,
    ]);
}

/// CSV output read back: header row first (BOM stripped), every cell as text.
fn csv_read(text: &str) -> Vec<Vec<String>> {
    let body = text
        .strip_prefix('\u{feff}')
        .unwrap_or_else(|| panic!("no BOM: {text:?}"));
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes());
    r.records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn query_csv(t: &Path, sql: &str) -> Vec<Vec<String>> {
    csv_read(&ok(&[
        "query",
        "--tables",
        t.to_str().unwrap(),
        "--format",
        "csv",
        sql,
    ]))
}

/// Every file below `dir` (hidden ones too), relative, sorted.
fn all_files(dir: &Path) -> BTreeSet<String> {
    fn walk(d: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn glob_data(dir: &Path, table: &str) -> Vec<PathBuf> {
    all_files(&dir.join(table))
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .map(|f| dir.join(table).join(f))
        .collect()
}

// ---------------------------------------------------------------- query-not-read-only

#[test]
fn query_is_read_only_case() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ts = t.to_str().unwrap();
    ingest(
        t,
        "vehicles",
        &case("query-not-read-only", "registry.ndjson"),
    );
    ingest(t, "rsd", &case("query-not-read-only", "passes.ndjson"));
    let before = all_files(t);
    let n_d = "SELECT count(*) AS n, count(DISTINCT detection_id) AS d FROM detections";
    assert_eq!(query_csv(t, n_d), [["n", "d"], ["1", "1"]]);

    let ins = run(&[
        "query",
        "--tables",
        ts,
        "INSERT INTO detections SELECT * FROM detections",
    ]);
    assert!(!ins.ok, "INSERT exited 0: {}", ins.stdout);
    assert!(
        ins.stderr
            .contains("query is read-only: INSERT not allowed"),
        "{}",
        ins.stderr
    );
    assert_eq!(ins.stdout, "");
    assert_eq!(query_csv(t, n_d), [["n", "d"], ["1", "1"]]);

    let x = t.join("x.csv");
    let copy = run(&[
        "query",
        "--tables",
        ts,
        &format!("COPY (SELECT 1 AS x) TO '{}'", x.display()),
    ]);
    assert!(
        !copy.ok && copy.stderr.contains("COPY not allowed"),
        "{}",
        copy.stderr
    );
    assert!(!x.exists());

    let drop = run(&["query", "--tables", ts, "DROP TABLE rsd_passes"]);
    assert!(
        !drop.ok && drop.stderr.contains("DROP TABLE not allowed"),
        "{}",
        drop.stderr
    );
    assert!(!drop.stdout.contains("(no rows)"));
    // Nothing was written anywhere under the tables.
    assert_eq!(all_files(t), before);
    assert_eq!(
        query_csv(t, "SELECT count(*) AS n FROM rsd_passes"),
        [["n"], ["1"]]
    );
}

#[test]
fn query_refuses_every_writing_or_file_reading_statement() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ts = t.to_str().unwrap();
    ingest(
        t,
        "vehicles",
        &case("query-not-read-only", "registry.ndjson"),
    );
    ingest(t, "rsd", &case("query-not-read-only", "passes.ndjson"));
    let before = all_files(t);
    let out = t.join("out.parquet");
    for (sql, says) in [
        (
            "CREATE VIEW v AS SELECT * FROM rsd_passes",
            "CREATE VIEW not allowed",
        ),
        (
            "CREATE TABLE t2 AS SELECT * FROM detections",
            "CREATE TABLE not allowed",
        ),
        ("SET datafusion.execution.batch_size = 1", "SET not allowed"),
        ("DELETE FROM detections", "DELETE not allowed"),
        ("UPDATE detections SET plate = 'x'", "UPDATE not allowed"),
        (
            "CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE not allowed",
        ),
        (
            "EXPLAIN ANALYZE INSERT INTO detections SELECT * FROM detections",
            "INSERT not allowed",
        ),
        (
            &format!("COPY detections TO '{}' STORED AS PARQUET", out.display()),
            "COPY not allowed",
        ),
        (
            "SELECT * FROM read_parquet('/etc/x.parquet')",
            "table function read_parquet not allowed",
        ),
        (
            "SELECT * FROM read_csv('/etc/passwd')",
            "table function read_csv not allowed",
        ),
        ("SELECT * FROM '/etc/passwd'", ""),
    ] {
        let r = run(&["query", "--tables", ts, sql]);
        assert!(!r.ok, "{sql} exited 0: {}", r.stdout);
        assert!(r.stderr.contains(says), "{sql}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{sql}");
    }
    assert_eq!(all_files(t), before);
    // What is allowed still works.
    assert_eq!(
        query_csv(
            t,
            "WITH p AS (SELECT pass_id FROM rsd_passes) SELECT count(*) AS n FROM p"
        ),
        [["n"], ["1"]]
    );
    for sql in [
        "EXPLAIN SELECT count(*) FROM rsd_passes",
        "DESCRIBE detections",
        "SHOW TABLES",
        "SHOW COLUMNS FROM rsd_passes",
    ] {
        let r = run(&["query", "--tables", ts, sql]);
        assert!(r.ok, "{sql}: {}", r.stderr);
        assert!(!r.stdout.is_empty(), "{sql}");
    }
    let d = query_csv(t, "DESCRIBE detections");
    assert!(d.iter().any(|r| r[0] == "strength"), "{d:?}");
}

// ---------------------------------------------------------------- tables-path-missing-silent

#[test]
fn tables_path_missing_or_not_a_directory_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let missing = "/nonexistent/plumewatch-tables";
    let f = file.to_str().unwrap();
    let svg = tmp.path().join("p.svg");
    for (args, path, says) in [
        (
            vec!["list", "rsd-repeat-exceeders", "--tables", missing],
            missing,
            "does not exist",
        ),
        (
            vec![
                "list",
                "china3-diesel",
                "--tables",
                missing,
                "--format",
                "csv",
            ],
            missing,
            "does not exist",
        ),
        (
            vec![
                "query",
                "--tables",
                missing,
                "--format",
                "csv",
                "SELECT count(*) AS n FROM rsd_passes",
            ],
            missing,
            "does not exist",
        ),
        (
            vec![
                "query",
                "--tables",
                f,
                "--format",
                "csv",
                "SELECT count(*) AS n FROM detections",
            ],
            f,
            "is not a directory",
        ),
        // Own examples: the other readers.
        (
            vec![
                "list",
                "gas-twc-suspects",
                "--tables",
                f,
                "--format",
                "json",
            ],
            f,
            "is not a directory",
        ),
        (
            vec![
                "plot",
                "LSIMLOW0000000001",
                "--tables",
                missing,
                "--out",
                svg.to_str().unwrap(),
            ],
            missing,
            "does not exist",
        ),
    ] {
        let r = run(&args);
        assert!(!r.ok, "{args:?} exited 0");
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(
            r.stderr
                .contains(&format!("tables directory {path} {says}")),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert!(!svg.exists());
}

#[test]
fn a_directory_without_tables_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().to_str().unwrap();
    let r = run(&[
        "query",
        "--tables",
        t,
        "--format",
        "csv",
        "SELECT count(*) AS n FROM rsd_passes",
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(csv_read(&r.stdout), [["n"], ["0"]]);
    assert!(
        r.stderr.contains(&format!("no tables under {t}")),
        "{}",
        r.stderr
    );
    // An empty list in CSV still has its header row.
    let r = run(&["list", "china3-diesel", "--tables", t, "--format", "csv"]);
    assert!(r.ok, "{}", r.stderr);
    let rows = csv_read(&r.stdout);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "plate");
    assert!(r.stderr.contains("no tables under"), "{}", r.stderr);
}

// ---------------------------------------------------------------- tables-appledouble-file

#[test]
fn appledouble_files_are_skipped_with_one_warning_case() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ts = t.to_str().unwrap();
    ingest(
        t,
        "vehicles",
        &case("tables-appledouble-file", "registry.ndjson"),
    );
    ingest(t, "rsd", &case("tables-appledouble-file", "passes.ndjson"));
    let n = "SELECT count(*) AS n FROM rsd_passes";
    assert_eq!(query_csv(t, n), [["n"], ["3"]]);
    let bin = std::fs::read(case("tables-appledouble-file", "appledouble.bin")).unwrap();
    let mut made = Vec::new();
    for f in glob_data(t, "rsd_passes")
        .into_iter()
        .chain(glob_data(t, "vehicles"))
    {
        let ad = f.with_file_name(format!("._{}", f.file_name().unwrap().to_string_lossy()));
        std::fs::write(&ad, &bin).unwrap();
        made.push(ad);
    }
    assert_eq!(made.len(), 2);
    let r = run(&["query", "--tables", ts, "--format", "csv", n]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(csv_read(&r.stdout), [["n"], ["3"]]);
    // One warning per table naming the skipped file.
    let warn: Vec<_> = r
        .stderr
        .lines()
        .filter(|l| l.contains("not read as table data"))
        .collect();
    assert_eq!(warn.len(), 2, "{}", r.stderr);
    for ad in &made {
        assert!(
            r.stderr
                .contains(&ad.file_name().unwrap().to_string_lossy().to_string()),
            "{}",
            r.stderr
        );
    }
    assert_eq!(
        query_csv(t, "SELECT count(*) AS n FROM vehicles"),
        [["n"], ["1"]]
    );
    let l = csv_read(&ok(&[
        "list",
        "rsd-repeat-exceeders",
        "--tables",
        ts,
        "--format",
        "csv",
    ]));
    let col = |name: &str| l[0].iter().position(|c| c == name).unwrap();
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[1][col("plate")], "苏E9Z981");
    assert_eq!(l[1][col("failing_passes")], "2");
    assert_eq!(l[1][col("pollutants")], "co");
}

#[test]
fn stray_files_of_other_tools_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    ingest(
        t,
        "vehicles",
        &case("tables-appledouble-file", "registry.ndjson"),
    );
    ingest(t, "rsd", &case("tables-appledouble-file", "passes.ndjson"));
    let part = glob_data(t, "rsd_passes").remove(0);
    let d = part.parent().unwrap().to_path_buf();
    // Spark/Hadoop leftovers: a success marker, a checksum file, an unfinished temp file,
    // a half-written file under _temporary/, a hidden copy of a real data file.
    std::fs::write(d.join("_SUCCESS"), b"").unwrap();
    std::fs::write(d.join(".part-00000.parquet.crc"), b"crc!").unwrap();
    std::fs::write(d.join("part-x.parquet.tmp"), b"PAR1 half").unwrap();
    std::fs::create_dir_all(t.join("rsd_passes/_temporary/0")).unwrap();
    std::fs::write(
        t.join("rsd_passes/_temporary/0/part-00000.parquet"),
        b"PAR1",
    )
    .unwrap();
    std::fs::copy(&part, d.join(".hidden-copy.parquet")).unwrap();
    std::fs::copy(&part, d.join("_copy.parquet")).unwrap();
    let r = run(&[
        "query",
        "--tables",
        t.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT count(*) AS n, count(DISTINCT pass_id) AS d FROM rsd_passes",
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(csv_read(&r.stdout), [["n", "d"], ["3", "3"]]);
    for name in [
        "_SUCCESS",
        ".part-00000.parquet.crc",
        "part-x.parquet.tmp",
        "_temporary",
        ".hidden-copy.parquet",
        "_copy.parquet",
    ] {
        assert!(r.stderr.contains(name), "{name}: {}", r.stderr);
    }
    assert!(r.stderr.contains("6 file(s)"), "{}", r.stderr);
}

#[test]
fn registry_loader_uses_the_same_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    ingest(
        t,
        "vehicles",
        &case("tables-appledouble-file", "registry.ndjson"),
    );
    let v = glob_data(t, "vehicles").remove(0);
    let bin = std::fs::read(case("tables-appledouble-file", "appledouble.bin")).unwrap();
    std::fs::write(
        v.with_file_name(format!("._{}", v.file_name().unwrap().to_string_lossy())),
        &bin,
    )
    .unwrap();
    // A half-written file of another tool under `_temporary/`: hidden by the `_` rule.
    std::fs::create_dir_all(t.join("vehicles/_temporary/0")).unwrap();
    std::fs::write(t.join("vehicles/_temporary/0/part-00000.parquet"), &bin).unwrap();
    let reg = plumewatch::enrich::registry::Registry::load(&t.join("vehicles")).unwrap();
    assert_eq!(reg.len(), 1);
    assert_eq!(
        reg.by_vin("LZZ5ELSDXND999901").map(|v| v.plate.as_str()),
        Some("苏E9Z981")
    );
    // And ingest (which loads the registry) still joins: both failing passes get the VIN.
    ingest(t, "rsd", &case("tables-appledouble-file", "passes.ndjson"));
    assert_eq!(
        query_csv(
            t,
            "SELECT count(*) AS n FROM rsd_passes WHERE vin = 'LZZ5ELSDXND999901'"
        ),
        [["n"], ["2"]]
    );
}

#[test]
fn manifest_decides_which_files_a_table_has() {
    use plumewatch::sink::manifest::{CommittedFile, ManifestEntry, write_entry};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    ingest(t, "rsd", &case("tables-appledouble-file", "passes.ndjson"));
    let part = glob_data(t, "rsd_passes").remove(0);
    let rel = part.strip_prefix(t).unwrap().to_path_buf();
    let e = ManifestEntry {
        instance: "i1".into(),
        seq: 1,
        files: vec![CommittedFile {
            table: "rsd_passes".into(),
            tmp: rel.with_file_name(".x.tmp"),
            path: rel.clone(),
            rows: 3,
        }],
        ..Default::default()
    };
    write_entry(t, &e).unwrap();
    // A visible copy (Finder's "copy", a re-sync) is not committed: it must not double a count.
    std::fs::copy(&part, part.with_file_name("part-copy (1).parquet")).unwrap();
    let r = run(&[
        "query",
        "--tables",
        t.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT count(*) AS n FROM rsd_passes",
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(csv_read(&r.stdout), [["n"], ["3"]]);
    assert!(
        r.stderr.contains("part-copy (1).parquet") && r.stderr.contains("manifest"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------- sql-nan-compares-greater

fn read_parquet(p: &Path) -> RecordBatch {
    let f = std::fs::File::open(p).unwrap();
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let b: Vec<_> = r.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&b[0].schema(), &b).unwrap()
}

fn write_parquet(p: &Path, b: &RecordBatch) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let f = std::fs::File::create(p).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, b.schema(), None).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
}

/// A batch of `schema` with `n` rows: the given columns, NULL (or the type's default for
/// non-nullable columns) elsewhere.
fn batch(schema: &SchemaRef, n: usize, cols: &[(&str, ArrayRef)]) -> RecordBatch {
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if let Some((_, a)) = cols.iter().find(|(c, _)| c == f.name()) {
                return a.clone();
            }
            // A non-nullable map (the detections' evidence): n empty maps.
            if let datafusion::arrow::datatypes::DataType::Map(entries, sorted) = f.data_type()
                && !f.is_nullable()
            {
                let empty = datafusion::arrow::array::new_empty_array(entries.data_type());
                let empty = empty
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StructArray>()
                    .unwrap()
                    .clone();
                return Arc::new(datafusion::arrow::array::MapArray::new(
                    entries.clone(),
                    datafusion::arrow::buffer::OffsetBuffer::new_zeroed(n),
                    empty,
                    None,
                    *sorted,
                ));
            }
            let s = if f.is_nullable() {
                ScalarValue::try_new_null(f.data_type()).unwrap()
            } else {
                ScalarValue::new_default(f.data_type()).unwrap()
            };
            s.to_array_of_size(n).unwrap()
        })
        .collect();
    RecordBatch::try_new(schema.clone(), arrays).unwrap()
}

#[test]
fn nan_never_compares_greater_than_a_limit_case() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dst = t.join("rsd_passes/date=2025-11-08/part-foreign-00001.parquet");
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(
        case("sql-nan-compares-greater", "foreign_nan.parquet"),
        &dst,
    )
    .unwrap();
    let rows = query_csv(
        t,
        "SELECT pass_id, co_pct, verdict FROM rsd_passes ORDER BY 1",
    );
    assert_eq!(rows[0], ["pass_id", "co_pct", "verdict"]);
    let ids: Vec<_> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["f1", "f2", "f3"]);
    assert_eq!(rows[1][1], "", "NaN must read as NULL");
    assert!((rows[2][1].parse::<f64>().unwrap() - 1.0034).abs() < 1e-4);
    assert!((rows[3][1].parse::<f64>().unwrap() - 5.5409).abs() < 1e-4);
    let r = run(&[
        "query",
        "--tables",
        t.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT count(*) AS n FROM rsd_passes WHERE co_pct > 4.5",
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(csv_read(&r.stdout), [["n"], ["1"]]);
    let warn: Vec<_> = r.stderr.lines().filter(|l| l.contains("NaN")).collect();
    assert_eq!(warn.len(), 1, "{}", r.stderr);
    assert!(
        warn[0].contains("part-foreign-00001.parquet")
            && warn[0].contains("column co_pct")
            && warn[0].contains("1 NaN/Infinity value"),
        "{}",
        warn[0]
    );
}

#[test]
fn infinities_are_null_too() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let b = read_parquet(&repo(
        "fixtures/field-cases/sql-nan-compares-greater/foreign_nan.parquet",
    ));
    let i = b.schema().index_of("co_pct").unwrap();
    let mut cols = b.columns().to_vec();
    cols[i] = Arc::new(Float64Array::from(vec![
        Some(f64::INFINITY),
        Some(1.0),
        Some(f64::NEG_INFINITY),
    ]));
    let j = b.schema().index_of("no_ppm").unwrap();
    cols[j] = Arc::new(Float64Array::from(vec![
        Some(f64::NAN),
        Some(f64::NAN),
        Some(30.0),
    ]));
    let b2 = RecordBatch::try_new(b.schema(), cols).unwrap();
    write_parquet(
        &t.join("rsd_passes/date=2025-11-08/part-other-tool.parquet"),
        &b2,
    );
    assert_eq!(
        query_csv(
            t,
            "SELECT count(*) AS n FROM rsd_passes WHERE co_pct > 4.5 OR no_ppm > 1000 OR co_pct < -1"
        ),
        [["n"], ["0"]]
    );
    // The file's min/max statistics leave NaN out (min = max = 30): the NaN rows must not
    // read as 30 (DataFusion 55 takes such a column as the constant 30 when it uses file
    // statistics).
    assert_eq!(
        query_csv(t, "SELECT count(*) AS n FROM rsd_passes WHERE no_ppm > 20"),
        [["n"], ["1"]]
    );
    let r = run(&[
        "query",
        "--tables",
        t.to_str().unwrap(),
        "--format",
        "json",
        "SELECT pass_id, co_pct, no_ppm, max(co_pct) OVER () AS top FROM rsd_passes ORDER BY pass_id",
    ]);
    assert!(r.ok, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["co_pct"], serde_json::Value::Null);
    assert_eq!(v[1]["co_pct"], 1.0);
    assert_eq!(v[2]["co_pct"], serde_json::Value::Null);
    assert_eq!(v[0]["no_ppm"], serde_json::Value::Null);
    assert_eq!(v[1]["no_ppm"], serde_json::Value::Null);
    assert_eq!(v[2]["no_ppm"], 30.0);
    assert_eq!(v[0]["top"], 1.0, "+Infinity must not be the maximum");
    assert!(
        r.stderr.contains("column co_pct") && r.stderr.contains("2 NaN/Infinity"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("column no_ppm") && r.stderr.contains("2 NaN/Infinity"),
        "{}",
        r.stderr
    );
}

#[test]
fn nan_in_detections_and_positions_does_not_rank_or_place_a_vehicle() {
    // gas-twc-suspects ranks by max(strength) and shows the last valid position.
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ts_ms = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    };
    let det = plumewatch::schema::detections();
    let d = batch(
        &det,
        2,
        &[
            (
                "detection_id",
                Arc::new(StringArray::from(vec!["d1", "d2"])),
            ),
            (
                "rule_id",
                Arc::new(StringArray::from(vec![
                    "rear_o2_flatline",
                    "rear_o2_flatline",
                ])),
            ),
            (
                "detected_at",
                Arc::new(
                    TimestampMillisecondArray::from(vec![
                        ts_ms("2025-11-08T02:00:00Z"),
                        ts_ms("2025-11-08T02:00:00Z"),
                    ])
                    .with_timezone("UTC"),
                ),
            ),
            (
                "vin",
                Arc::new(StringArray::from(vec![
                    "VINNAN00000000001",
                    "VINOK000000000002",
                ])),
            ),
            (
                "source_stream",
                Arc::new(StringArray::from(vec!["obd", "obd"])),
            ),
            (
                "strength",
                Arc::new(Float64Array::from(vec![f64::NAN, 0.5])),
            ),
        ],
    );
    write_parquet(&t.join("detections/date=2025-11-08/part-other.parquet"), &d);
    let obd = plumewatch::schema::obd_samples();
    let s = batch(
        &obd,
        2,
        &[
            (
                "vin",
                Arc::new(StringArray::from(vec![
                    "VINOK000000000002",
                    "VINOK000000000002",
                ])),
            ),
            (
                "sampled_at",
                Arc::new(
                    TimestampMillisecondArray::from(vec![
                        ts_ms("2025-11-08T01:00:00Z"),
                        ts_ms("2025-11-08T01:00:01Z"),
                    ])
                    .with_timezone("UTC"),
                ),
            ),
            (
                "lon_deg",
                Arc::new(Float64Array::from(vec![113.264385, f64::NAN])),
            ),
            (
                "lat_deg",
                Arc::new(Float64Array::from(vec![23.129112, 23.5])),
            ),
        ],
    );
    write_parquet(
        &t.join("obd_samples/date=2025-11-08/part-other.parquet"),
        &s,
    );
    let out = ok(&[
        "list",
        "gas-twc-suspects",
        "--tables",
        t.to_str().unwrap(),
        "--param",
        "all_vehicles=true",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2, "{out}");
    assert_eq!(v[0]["vin"], "VINOK000000000002", "{out}");
    assert_eq!(v[0]["max_strength"], 0.5);
    assert_eq!(v[0]["last_lon_deg"], 113.264385);
    assert_eq!(v[0]["last_lat_deg"], 23.129112);
    assert_eq!(v[1]["vin"], "VINNAN00000000001");
    assert_eq!(v[1]["max_strength"], serde_json::Value::Null);
    // Integer columns are JSON numbers.
    assert_eq!(v[0]["detections"], 1);
    assert_eq!(v[0]["rear_o2_flatline"], 1);
}

// ---------------------------------------------------------------- csv-formula-injection

/// The same result as CSV and as JSON: every CSV text cell is the JSON text, with a `'` in
/// front exactly when that text starts with `=`, `+`, `-`, `@`, TAB or CR.
fn assert_csv_is_json_escaped(csv_rows: &[Vec<String>], json: &serde_json::Value) {
    let rows = json.as_array().unwrap();
    assert_eq!(csv_rows.len(), rows.len() + 1, "{csv_rows:?}");
    for (r, row) in rows.iter().enumerate() {
        for (c, name) in csv_rows[0].iter().enumerate() {
            let cell = &csv_rows[r + 1][c];
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']) || row[name].is_number(),
                "{name}: {cell}"
            );
            if let Some(text) = row[name].as_str() {
                let want = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                    format!("'{text}")
                } else {
                    text.to_string()
                };
                assert_eq!(cell, &want, "{name}");
            }
        }
    }
}

#[test]
fn csv_cells_never_start_a_formula_case() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ts = t.to_str().unwrap();
    ingest(t, "rsd", &case("csv-formula-injection", "passes.ndjson"));
    let list = [
        "list",
        "rsd-repeat-exceeders",
        "--tables",
        ts,
        "--param",
        "min_failing_passes=1",
        "--format",
    ];
    let l = csv_read(&ok(&[&list[..], &["csv"]].concat()));
    let lj: serde_json::Value =
        serde_json::from_str(&ok(&[&list[..], &["json"]].concat())).unwrap();
    assert_csv_is_json_escaped(&l, &lj);
    let sql = "SELECT pass_id, plate, site_id FROM rsd_passes ORDER BY 1";
    let q = query_csv(t, sql);
    let qj: serde_json::Value =
        serde_json::from_str(&ok(&["query", "--tables", ts, "--format", "json", sql])).unwrap();
    assert_csv_is_json_escaped(&q, &qj);
    // The case's values. JSON keeps the stored text.
    assert_eq!(q[0], ["pass_id", "plate", "site_id"]);
    assert_eq!(q[3][0], "i3");
    assert_eq!(q[3][2], "'@SUM(1+1)");
    assert_eq!(qj[2]["site_id"], "@SUM(1+1)");
    let plates: Vec<_> = q[1..].iter().map(|r| r[1].as_str()).collect();
    if qj[0]["plate"] == "=1+2" {
        // Stored as the plate (text normalisation as of this test).
        assert_eq!(plates[0], "'=1+2");
        assert_eq!(plates[2], "'+1+1");
        assert!(plates[1].starts_with("'=HYPERLINK("), "{plates:?}");
    }
    if l.len() > 1 {
        let col = |name: &str| l[0].iter().position(|c| c == name).unwrap();
        let sites: BTreeSet<_> = l[1..].iter().map(|r| r[col("last_site")].clone()).collect();
        assert!(sites.contains("'@SUM(1+1)"), "{sites:?}");
    }
}

#[test]
fn csv_escapes_minus_at_tab_cr_but_never_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let q = query_csv(
        t,
        "SELECT '-2+3' AS a, '@cmd' AS b, concat(chr(9), '=1') AS c, concat(chr(13), 'x') AS d, \
         -0.02 AS num, CAST(-5 AS BIGINT) AS i, 'A-1' AS e, '' AS f",
    );
    assert_eq!(
        q,
        [
            vec!["a", "b", "c", "d", "num", "i", "e", "f"],
            vec!["'-2+3", "'@cmd", "'\t=1", "'\rx", "-0.02", "-5", "A-1", ""],
        ]
    );
}

#[test]
fn plot_refuses_an_extension_it_cannot_write() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["p.png", "p.pdf", "p"] {
        let out = tmp.path().join(name);
        let r = run(&[
            "plot",
            "LSIMLOW0000000001",
            "--tables",
            tmp.path().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!r.ok, "{name}");
        assert!(
            r.stderr.contains("plot writes SVG only"),
            "{name}: {}",
            r.stderr
        );
        assert!(!out.exists(), "{name}");
    }
}

/// Plots (issue 9 item 5): a gap (more than `gap_ms` between samples, or a missing value)
/// breaks the line; the time axis is local time in the zone, named; the registry's plate is
/// in the title with the VIN.
#[test]
fn plot_draws_gaps_local_time_and_plate() {
    use datafusion::arrow::array::BooleanArray;
    use plumewatch::query::plot::{PlotOptions, plot};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let vin = "LTESTPLOT00000001";
    let t0 = chrono::DateTime::parse_from_rfc3339("2025-11-08T02:00:00Z")
        .unwrap()
        .timestamp_millis();
    // Seconds after t0: 0–4 (1 Hz), then 12–16 (8 s without a sample); λ missing at 15 s.
    let secs = [0i64, 1, 2, 3, 4, 12, 13, 14, 15, 16];
    let lam = [
        Some(1.0),
        Some(1.01),
        Some(0.99),
        Some(1.0),
        Some(1.02),
        Some(0.98),
        Some(1.0),
        Some(1.01),
        None,
        Some(1.0),
    ];
    let rear = [0.7, 0.71, 0.69, 0.7, 0.7, 0.6, 0.61, 0.6, 0.62, 0.6];
    let n = secs.len();
    let s = batch(
        &plumewatch::schema::obd_samples(),
        n,
        &[
            ("vin", Arc::new(StringArray::from(vec![vin; n]))),
            (
                "sampled_at",
                Arc::new(
                    TimestampMillisecondArray::from(
                        secs.iter().map(|s| t0 + s * 1000).collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
            ),
            (
                "upstream_lambda",
                Arc::new(Float64Array::from(lam.to_vec())),
            ),
            ("rear_o2_v", Arc::new(Float64Array::from(rear.to_vec()))),
            (
                "time_inferred",
                Arc::new(BooleanArray::from(vec![false; n])),
            ),
            (
                "time_relative",
                Arc::new(BooleanArray::from(vec![false; n])),
            ),
            ("source_file", Arc::new(StringArray::from(vec!["x"; n]))),
        ],
    );
    write_parquet(&t.join("obd_samples/date=2025-11-08/part-x.parquet"), &s);
    let v = batch(
        &plumewatch::schema::vehicles(),
        1,
        &[
            ("plate", Arc::new(StringArray::from(vec!["京A12345"]))),
            ("plate_color", Arc::new(StringArray::from(vec!["yellow"]))),
            (
                "plate_status",
                Arc::new(StringArray::from(vec!["standard"])),
            ),
            ("vin", Arc::new(StringArray::from(vec![vin]))),
        ],
    );
    write_parquet(&t.join("vehicles/part-x.parquet"), &v);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let svg = t.join("p.svg");
    let draw = |gap_ms: i64| {
        rt.block_on(plot(
            t,
            vin,
            "2025-11-08T00:00:00Z",
            "2025-11-09T00:00:00Z",
            &svg,
            &PlotOptions {
                zone: chrono_tz::Asia::Shanghai,
                gap_ms,
            },
        ))
        .unwrap()
    };
    let s = draw(5_000);
    assert_eq!(s.samples, 10);
    // λ: [0–4], [12–14], [16] (the 8 s gap and the missing value); rear O2: [0–4], [12–16].
    assert_eq!(s.segments, [3, 2]);
    assert_eq!(s.plate.as_deref(), Some("京A12345 (yellow)"));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("京A12345 (yellow), VIN LTESTPLOT00000001"),
        "{}",
        s.title
    );
    // 02:00:00Z is 10:00:00 in Shanghai; the axis says so.
    assert!(
        text.contains("local time, Asia/Shanghai (UTC+08:00), from 2025-11-08 10:00:00"),
        "{text}"
    );
    // (plotters writes each label on its own line inside <text>)
    assert!(text.contains("\n10:00:00\n"), "{text}");
    assert!(text.contains("\n10:00:16\n"), "{text}");
    assert!(!text.contains("\n02:00:00\n"), "{text}");
    // Blue (λ) polylines: 3 runs + the legend's sample line.
    assert_eq!(text.matches(r##"stroke="#0000FF""##).count(), 3 + 1);
    // A 10 s gap joins 4 s → 12 s: λ [0–14], [16]; rear O2 one line.
    assert_eq!(draw(10_000).segments, [2, 1]);

    // Not in the registry: the plate of its latest detection; with neither, the VIN alone.
    let other = |v: &str, file: &str| {
        let b = batch(
            &plumewatch::schema::obd_samples(),
            2,
            &[
                ("vin", Arc::new(StringArray::from(vec![v; 2]))),
                (
                    "sampled_at",
                    Arc::new(
                        TimestampMillisecondArray::from(vec![t0, t0 + 1000]).with_timezone("UTC"),
                    ),
                ),
                (
                    "time_inferred",
                    Arc::new(BooleanArray::from(vec![false; 2])),
                ),
                (
                    "time_relative",
                    Arc::new(BooleanArray::from(vec![false; 2])),
                ),
                ("source_file", Arc::new(StringArray::from(vec!["x"; 2]))),
            ],
        );
        write_parquet(&t.join(format!("obd_samples/date=2025-11-08/{file}")), &b);
    };
    other("LTESTPLOT00000002", "part-y.parquet");
    other("LTESTPLOT00000003", "part-z.parquet");
    let mut db = plumewatch::schema::DetectionsBuilder::default();
    for (i, plate) in ["冀B00001", "冀B00002"].iter().enumerate() {
        db.append(&plumewatch::schema::DetectionRow {
            detection_id: format!("d{i}"),
            rule_id: "obd_catalyst_dtc".into(),
            detected_at_ms: t0 + i as i64 * 60_000,
            plate: Some(plate.to_string()),
            plate_color: Some("blue".into()),
            vin: Some("LTESTPLOT00000002".into()),
            source_stream: "obd".into(),
            ..Default::default()
        });
    }
    let d = plumewatch::schema::TableBuilder::finish(&mut db);
    write_parquet(&t.join("detections/date=2025-11-08/part-d.parquet"), &d);
    let opts = PlotOptions::default();
    let s2 = rt
        .block_on(plot(
            t,
            "LTESTPLOT00000002",
            "2025-11-08T00:00:00Z",
            "2025-11-09T00:00:00Z",
            &svg,
            &opts,
        ))
        .unwrap();
    assert_eq!(s2.plate.as_deref(), Some("冀B00002 (blue)"));
    let s3 = rt
        .block_on(plot(
            t,
            "LTESTPLOT00000003",
            "2025-11-08T00:00:00Z",
            "2025-11-09T00:00:00Z",
            &svg,
            &opts,
        ))
        .unwrap();
    assert_eq!(s3.plate, None);
    assert!(
        s3.title.starts_with("VIN LTESTPLOT00000003: "),
        "{}",
        s3.title
    );
    // No λ values at all: no line, no panic.
    assert_eq!(s3.segments, [0, 0]);
}

/// A `detections` file written before the evidence maps (evidence as JSON text) still reads:
/// its evidence is split into the maps, next to a file written today.
#[test]
fn detections_with_json_evidence_text_still_read() {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let now = plumewatch::schema::detections();
    let old: Vec<Field> = now
        .fields()
        .iter()
        .filter(|f| f.name() != "evidence_text")
        .map(|f| {
            if f.name() == "evidence" {
                Field::new("evidence", DataType::Utf8, false)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let old = Arc::new(Schema::new(old));
    let b = batch(
        &old,
        1,
        &[
            ("detection_id", Arc::new(StringArray::from(vec!["d-old"]))),
            (
                "rule_id",
                Arc::new(StringArray::from(vec!["lambda_implausible"])),
            ),
            (
                "detected_at",
                Arc::new(
                    TimestampMillisecondArray::from(vec![1_762_567_500_000i64])
                        .with_timezone("UTC"),
                ),
            ),
            (
                "evidence",
                Arc::new(StringArray::from(vec![
                    r#"{"ratio":0.0625,"n_samples":600,"hint":"upstream λ scale (PID 0x4F)?","mil_on":null}"#,
                ])),
            ),
        ],
    );
    write_parquet(&t.join("detections/date=2025-11-08/part-old.parquet"), &b);
    let mut db = plumewatch::schema::DetectionsBuilder::default();
    db.append(&plumewatch::schema::DetectionRow {
        detection_id: "d-new".into(),
        rule_id: "rear_o2_flatline".into(),
        detected_at_ms: 1_762_653_600_000, // 2025-11-09T02:00:00Z
        evidence: plumewatch::schema::Evidence {
            num: vec![("ratio".into(), 0.5)],
            text: vec![("hint".into(), "new".into())],
        },
        ..Default::default()
    });
    let nb = plumewatch::schema::TableBuilder::finish(&mut db);
    write_parquet(&t.join("detections/date=2025-11-09/part-new.parquet"), &nb);
    let r = rows(&sql(
        t,
        "SELECT detection_id, CAST(date AS VARCHAR) AS date, evidence['ratio'] AS ratio, \
         evidence['n_samples'] AS n, evidence_text['hint'] AS hint, evidence_text['mil_on'] AS mil \
         FROM detections ORDER BY detection_id",
    ));
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0]["detection_id"].as_deref(), Some("d-new"));
    assert_eq!(r[0]["ratio"].as_deref(), Some("0.5"));
    assert_eq!(r[0]["date"].as_deref(), Some("2025-11-09"));
    assert_eq!(r[1]["detection_id"].as_deref(), Some("d-old"));
    assert_eq!(r[1]["date"].as_deref(), Some("2025-11-08"));
    assert_eq!(r[1]["ratio"].as_deref(), Some("0.0625"));
    assert_eq!(r[1]["n"].as_deref(), Some("600.0"));
    assert_eq!(
        r[1]["hint"].as_deref(),
        Some("upstream λ scale (PID 0x4F)?")
    );
    assert_eq!(r[1]["mil"], None);
}

/// An `rsd_passes` file written before `invalid_code` / `invalid_detail` (reasons in
/// `invalid_reason`) still shows its reasons, as `invalid_detail`; its code is NULL.
#[test]
fn rsd_passes_with_invalid_reason_show_it_as_detail() {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let old: Vec<Field> = plumewatch::schema::rsd_passes()
        .fields()
        .iter()
        .filter(|f| f.name() != "invalid_detail")
        .map(|f| {
            if f.name() == "invalid_code" {
                Field::new("invalid_reason", DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let b = batch(
        &Arc::new(Schema::new(old)),
        2,
        &[
            ("pass_id", Arc::new(StringArray::from(vec!["p1", "p2"]))),
            (
                "invalid_reason",
                Arc::new(StringArray::from(vec![Some("speed_kmh missing"), None])),
            ),
        ],
    );
    write_parquet(&t.join("rsd_passes/date=2025-11-08/part-old.parquet"), &b);
    let r = rows(&sql(
        t,
        "SELECT pass_id, invalid_code, invalid_detail FROM rsd_passes ORDER BY pass_id",
    ));
    assert_eq!(r[0]["invalid_detail"].as_deref(), Some("speed_kmh missing"));
    assert_eq!(r[0]["invalid_code"], None);
    assert_eq!(r[1]["invalid_detail"], None);
    // `invalid_reason` itself is not a column of the table any more.
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(
        rt.block_on(plumewatch::query::run_sql(
            t,
            "SELECT invalid_reason FROM rsd_passes"
        ))
        .is_err()
    );
}
