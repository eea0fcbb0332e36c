//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub mod http;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// `../shared/data/<rel>` when present; prints the skip line and returns None otherwise.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        println!("skipped: ../shared/data not present ({rel})");
        None
    }
}

/// A path inside the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs SQL over a tables directory.
pub fn sql(dir: &Path, q: &str) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(plumewatch::query::run_sql(dir, q))
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// Rows as maps column → display text (null = None).
pub fn rows(batches: &[RecordBatch]) -> Vec<HashMap<String, Option<String>>> {
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            let mut m = HashMap::new();
            for (i, field) in b.schema().fields().iter().enumerate() {
                let v = (!b.column(i).is_null(r)).then(|| f[i].value(r).to_string());
                m.insert(field.name().clone(), v);
            }
            out.push(m);
        }
    }
    out
}

/// A Float64 column's values (null = None) across batches.
pub fn f64s(batches: &[RecordBatch], col: &str) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column_by_name(col).unwrap().as_primitive::<Float64Type>();
        for i in 0..a.len() {
            out.push((!a.is_null(i)).then(|| a.value(i)));
        }
    }
    out
}

/// A single integer from a one-row, one-column result.
pub fn scalar_i64(dir: &Path, q: &str) -> i64 {
    let b = sql(dir, q);
    let r = rows(&b);
    r[0].values()
        .next()
        .unwrap()
        .as_ref()
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs the `plumewatch` binary.
pub fn pw(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_plumewatch"))
        .args(args)
        .output()
        .unwrap()
}

/// `plumewatch ingest --stream S --format F --out OUT [extra…] FILE`: (exit ok, stdout,
/// stderr).
#[allow(dead_code)]
pub fn ingest(
    out: &Path,
    stream: &str,
    format: &str,
    file: &Path,
    extra: &[&str],
) -> (bool, String, String) {
    let mut args = vec![
        "ingest",
        "--stream",
        stream,
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    let o = pw(&args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// Ingests the bundled demo data (`fixtures/demo`: 150 registered vehicles, 3,000 passes,
/// 2,000 plate reads) into `tables`; panics naming the file when one fails.
#[allow(dead_code)]
pub fn ingest_demo(tables: &Path) {
    let demo = repo("fixtures/demo");
    for (stream, format, file) in [
        ("vehicles", "csv", "synthetic_vehicles.csv"),
        ("rsd", "ndjson", "synthetic_passes.ndjson"),
        ("plates", "ndjson", "synthetic_plate_reads.ndjson"),
    ] {
        let (ok, _, err) = ingest(tables, stream, format, &demo.join(file), &["--quiet"]);
        assert!(ok, "ingest {file}: {err}");
    }
}

/// A temporary directory with `tables/` holding the ingested demo data ([`ingest_demo`]).
pub fn demo_tables() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("tables");
    std::fs::create_dir_all(&t).unwrap();
    ingest_demo(&t);
    (dir, t)
}

/// Runs an ingest that may reject every record (exit status 1 with "every record (N) was
/// rejected"; the rows went to quarantine): returns stdout. Any other failure panics.
pub fn ingest_ok_or_all_rejected(args: &[&str]) -> String {
    let o = pw(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() || err.contains("was rejected; see the quarantine table"),
        "{args:?}: {err}"
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs the binary, asserts success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = pw(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `psql` on PATH, else None (and the skip line).
pub fn psql() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("psql"))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        println!("skipped: psql not found (Debian: apt-get install postgresql-client)");
    }
    found
}

/// Runs `psql -X -v ON_ERROR_STOP=1 ARGS…` with `PGPASSWORD` = `password` and a 10 s connect
/// timeout: (success, stdout, stderr).
pub fn run_psql(psql: &Path, args: &[&str], password: &str) -> (bool, String, String) {
    let out = std::process::Command::new(psql)
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Connects to `addr`, retrying for up to 30 s while a run binds its listeners.
#[allow(dead_code)]
pub fn connect_retrying<A: std::net::ToSocketAddrs + std::fmt::Display>(
    addr: A,
) -> std::net::TcpStream {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match std::net::TcpStream::connect(&addr) {
            Ok(s) => return s,
            Err(_) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("connect {addr}: {e}"),
        }
    }
}
