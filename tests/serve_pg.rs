//! `plumewatch serve`, the analysts' PostgreSQL endpoint (issue 13 item 1): the server runs
//! in-process (HTTP and `pg_listen` on 127.0.0.1:0) over tables ingested from `fixtures/demo`
//! (SYNTHETIC registry, passes and plate reads), and real clients connect:
//!
//! - `tokio-postgres` (a dev-dependency: always runs, so CI always exercises the endpoint);
//! - `psql` (Debian `postgresql-client`; "skipped" when it is not on PATH);
//! - psycopg 3 (PyPI `psycopg[binary]`, installed by `scripts/pg_test_venv.sh` into
//!   `${CARGO_TARGET_DIR:-target}/pg-venv`; "skipped" without it).
//!
//! Each runs the named lists (views `list_<name>`) and compares the rows with
//! `plumewatch list --format json`; writes are refused and the tables directory is unchanged.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use plumewatch::serve::config::{Role, ServeConfig, UserConfig};
use serde_json::Value;
use tokio_postgres::types::Type;
use tokio_postgres::{NoTls, SimpleQueryMessage};

fn user(name: &str, role: Role, password: &str) -> UserConfig {
    UserConfig {
        name: name.into(),
        role,
        password_hash: Some(plumewatch::serve::auth::hash_secret(password).unwrap().0),
        token_sha256: None,
        sites: vec![],
    }
}

fn config(instance: &str) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        pg_listen: Some("127.0.0.1:0".into()),
        instance_id: instance.into(),
        audit_commit_ms: 100,
        users: vec![
            user("ana", Role::Analyst, "pw-ana"),
            user("li", Role::Police, "pw-li"),
            user("ops", Role::Admin, "pw-ops"),
        ],
        ..ServeConfig::default()
    }
}

/// `plumewatch list NAME --format json` over `t`: rows as column → text (see [`json_text`]).
fn cli_list(t: &Path, name: &str) -> Vec<BTreeMap<String, String>> {
    let out = common::ok(&[
        "list",
        name,
        "--format",
        "json",
        "--tables",
        t.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), json_text(v)))
                .collect()
        })
        .collect()
}

/// A JSON value as comparable text: null "", booleans true/false, numbers and strings as
/// written (times are RFC 3339 UTC with milliseconds in the CLI's JSON).
fn json_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A PostgreSQL text value as comparable text: `t`/`f` as true/false, a `timestamptz`
/// (`2026-10-04 07:03:08.790000+08`) as the RFC 3339 UTC instant with milliseconds.
fn pg_text(v: Option<&str>) -> String {
    let Some(v) = v else { return String::new() };
    match v {
        "t" => return "true".into(),
        "f" => return "false".into(),
        _ => {}
    }
    match chrono::DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f%#z") {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        Err(_) => v.to_string(),
    }
}

/// Sorted, so row order (not promised through a view) does not matter; content does.
fn sorted(mut v: Vec<BTreeMap<String, String>>) -> Vec<BTreeMap<String, String>> {
    v.sort();
    v
}

/// Every file and directory under `t` but the server's own audit trail (the `audit` table
/// and the manifest entries of instances `serve…`), with sizes: what a write would change.
fn listing(t: &Path) -> Vec<(String, u64)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, u64)>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if rel == "audit" || rel.starts_with("audit/") {
                continue;
            }
            if rel.starts_with("_manifest/") && e.file_name().to_string_lossy().starts_with("serve")
            {
                continue;
            }
            let m = e.metadata().unwrap();
            out.push((rel, if m.is_dir() { 0 } else { m.len() }));
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(t, t, &mut out);
    out.sort();
    out
}

/// Audit rows of `what` written by instance `instance`: (who, role, status, rows, sql).
fn audit_rows(t: &Path, instance: &str) -> Vec<BTreeMap<String, String>> {
    common::rows(&common::sql(
        t,
        &format!(
            "SELECT who, role, method, what, CAST(status AS VARCHAR) AS status, \
             CAST(rows AS VARCHAR) AS rows, parameters FROM audit \
             WHERE instance = '{instance}' ORDER BY at, request_id"
        ),
    ))
    .into_iter()
    .map(|r| {
        r.into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    })
    .collect()
}

async fn connect(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conn = format!(
        "host={} port={} user={user} password={password} dbname=plumewatch",
        addr.ip(),
        addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Rows of a simple query as column → comparable text ([`pg_text`]).
async fn simple_rows(c: &tokio_postgres::Client, sql: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for m in c.simple_query(sql).await.unwrap() {
        if let SimpleQueryMessage::Row(r) = m {
            let mut row = BTreeMap::new();
            for (i, col) in r.columns().iter().enumerate() {
                row.insert(col.name().to_string(), pg_text(r.get(i)));
            }
            out.push(row);
        }
    }
    out
}

/// The SQLSTATE and message of a refused statement.
fn refusal(e: tokio_postgres::Error) -> (String, String) {
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {e}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// A statement that runs for minutes (10^10 generated rows, summed so no statistic answers
/// it) and yields between batches, so it stops soon after the time limit.
const SLOW: &str = "SELECT sum(value % 7) FROM generate_series(1, 10000000000)";

const LISTS: [(&str, &str); 3] = [
    ("rsd-repeat-exceeders", "list_rsd_repeat_exceeders"),
    ("china3-diesel", "list_china3_diesel"),
    ("gas-twc-suspects", "list_gas_twc_suspects"),
];

#[test]
fn tokio_postgres_client_end_to_end() {
    let (_dir, t) = common::demo_tables();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(plumewatch::serve::start(&t, config("serve-pg")))
        .unwrap();
    let pg = server.pg_addr().expect("pg_listen set");

    // --- A commit made while the server runs is seen by the next statement of an open
    // connection (the session is rebuilt over the lake as committed).
    let count_reads = |c: &tokio_postgres::Client| {
        rt.block_on(async {
            let n: i64 = c
                .query_one("SELECT count(*) FROM plate_reads", &[])
                .await
                .unwrap()
                .get(0);
            n
        })
    };
    let early = rt.block_on(connect(pg, "ana", "pw-ana")).unwrap();
    assert_eq!(count_reads(&early), 2000);
    // A statement prepared before the commit and run after it sees it too, even over a table
    // that had no file yet (quarantine: every fixture record was stored).
    let prepared = rt
        .block_on(early.prepare("SELECT count(*) AS n FROM quarantine"))
        .unwrap();
    let n: i64 = rt.block_on(early.query_one(&prepared, &[])).unwrap().get(0);
    assert_eq!(n, 0);
    let late = t.parent().unwrap().join("late.ndjson");
    std::fs::write(
        &late,
        "{\"read_id\":\"PR-LATE-1\",\"read_at\":1790784849616,\"site_id\":\"C140105001\",\"plate\":\"豫H56935\",\"plate_color\":\"blue\"}\n\
         {\"read_id\":\"PR-LATE-2\",\"read_at\":\"not a time\",\"site_id\":\"C140105001\",\"plate\":\"豫H56935\",\"plate_color\":\"blue\"}\n",
    )
    .unwrap();
    let (ok, _, err) = common::ingest(&t, "plates", "ndjson", &late, &["--quiet"]);
    assert!(ok, "{err}");
    assert_eq!(count_reads(&early), 2001);
    let n: i64 = rt.block_on(early.query_one(&prepared, &[])).unwrap().get(0);
    assert_eq!(n, 1, "the quarantined line of late.ndjson");
    drop(early);

    let before = listing(&t);
    let copy_target = t.parent().unwrap().join("copied.csv");
    let fails_4408b = common::scalar_i64(
        &t,
        "SELECT count(*) FROM rsd_passes WHERE plate = '京Y4408B' AND verdict = 'fail'",
    );

    rt.block_on(async {
        // --- Login: analyst and admin in; police and a wrong password out.
        let c = connect(pg, "ana", "pw-ana").await.unwrap();
        let e = connect(pg, "li", "pw-li").await.err().unwrap();
        assert_eq!(
            refusal(e),
            (
                "28000".into(),
                "role police may not use SQL (analyst or admin only)".into()
            )
        );
        let e = connect(pg, "ana", "wrong").await.err().unwrap();
        assert_eq!(refusal(e).0, "28P01");
        let admin = connect(pg, "ops", "pw-ops").await.unwrap();
        let n: i64 = admin
            .query_one("SELECT count(*) FROM vehicles", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 150, "fixtures/demo/synthetic_vehicles.csv has 150 rows");

        // --- version() reads as PostgreSQL for client libraries.
        let v: String = c.query_one("SELECT version()", &[]).await.unwrap().get(0);
        assert!(v.starts_with("PostgreSQL 16.6 (plumewatch "), "{v}");

        // --- Types: timestamptz for times, date for the partition, text[] for lists.
        let st = c
            .prepare("SELECT passed_at, date, exceeded, plate FROM rsd_passes LIMIT 1")
            .await
            .unwrap();
        let types: Vec<&Type> = st.columns().iter().map(|c| c.type_()).collect();
        assert_eq!(
            types,
            [
                &Type::TIMESTAMPTZ,
                &Type::DATE,
                &Type::TEXT_ARRAY,
                &Type::TEXT
            ]
        );

        // --- Extended protocol with a bound parameter: the plate of the fixtures with the
        // most failing passes, counted as the table says.
        let plate = "京Y4408B";
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM rsd_passes WHERE plate = $1 AND verdict = 'fail'",
                &[&plate],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, fails_4408b);
        assert!(n >= 5, "{plate} fails at least 5 times in the fixtures");

        // --- Every list as a view: the same rows as `plumewatch list`.
        for (list, view) in LISTS {
            let got = simple_rows(&c, &format!("SELECT * FROM {view}")).await;
            let want = cli_list(&t, list);
            assert_eq!(
                sorted(got),
                sorted(want),
                "{view} vs plumewatch list {list}"
            );
        }
        assert_eq!(
            simple_rows(&c, "SELECT * FROM list_china3_diesel")
                .await
                .len(),
            cli_list(&t, "china3-diesel").len()
        );
        assert!(!cli_list(&t, "china3-diesel").is_empty());

        // --- psql-style catalog queries: the tables as tables, the lists as views.
        let rels = simple_rows(
            &c,
            "SELECT c.relname, c.relkind FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' ORDER BY 1",
        )
        .await;
        let kinds: BTreeMap<&str, &str> = rels
            .iter()
            .map(|r| (r["relname"].as_str(), r["relkind"].as_str()))
            .collect();
        assert_eq!(kinds.get("rsd_passes"), Some(&"r"));
        assert_eq!(kinds.get("plate_reads"), Some(&"r"));
        assert_eq!(kinds.get("list_china3_diesel"), Some(&"v"));

        // --- EXPLAIN (the plan stays the root: no row limit wraps it).
        let plan = simple_rows(&c, "EXPLAIN SELECT count(*) FROM vehicles").await;
        assert!(
            plan.iter().any(|r| r["plan_type"] == "physical_plan"),
            "{plan:?}"
        );

        // --- SET/SHOW answered per connection, never changing the shared session.
        c.batch_execute("SET application_name = 'pgtest'; SET datafusion.execution.batch_size = 1")
            .await
            .unwrap();
        let shown = simple_rows(&c, "SHOW application_name").await;
        assert_eq!(shown[0]["application_name"], "pgtest");

        // --- Refused: DDL, DML, COPY TO (two spellings), file-reading table functions.
        let copy = format!("COPY rsd_passes TO '{}'", copy_target.display());
        let copy2 = format!(
            "COPY (SELECT 1) TO '{}' STORED AS CSV",
            copy_target.display()
        );
        for (sql, kind) in [
            ("DROP TABLE rsd_passes", "DROP TABLE"),
            ("INSERT INTO vehicles (plate) VALUES ('京A00000')", "INSERT"),
            ("DELETE FROM vehicles", "DELETE"),
            ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
            (copy.as_str(), "COPY"),
            (copy2.as_str(), "COPY"),
        ] {
            for simple in [true, false] {
                let e = if simple {
                    c.simple_query(sql).await.err()
                } else {
                    c.prepare(sql).await.err()
                }
                .unwrap_or_else(|| panic!("{sql} was not refused"));
                assert_eq!(
                    refusal(e),
                    (
                        "25006".into(),
                        format!("query is read-only: {kind} not allowed")
                    ),
                    "{sql} (simple: {simple})"
                );
            }
        }
        let e = c
            .simple_query("SELECT * FROM read_csv('/etc/passwd')")
            .await
            .err()
            .unwrap();
        let (code, msg) = refusal(e);
        assert_eq!(code, "25006");
        assert!(msg.contains("table function read_csv not allowed"), "{msg}");
    });
    assert!(!copy_target.exists(), "COPY wrote a file");
    assert_eq!(listing(&t), before, "the tables changed");

    // --- Audit: one row per statement, with its text and the rows returned.
    let committed = rt.block_on(server.flush_audit()).unwrap();
    assert!(committed > 0);
    let rows = audit_rows(&t, "serve-pg");
    let find = |sql: &str| {
        rows.iter()
            .filter(|r| serde_json::from_str::<Value>(&r["parameters"]).unwrap()["sql"] == sql)
            .collect::<Vec<_>>()
    };
    let v = find("SELECT version()");
    assert_eq!(v.len(), 1);
    assert_eq!(
        (
            v[0]["who"].as_str(),
            v[0]["role"].as_str(),
            v[0]["method"].as_str(),
            v[0]["what"].as_str(),
            v[0]["status"].as_str(),
            v[0]["rows"].as_str()
        ),
        ("ana", "analyst", "PG", "sql", "200", "1")
    );
    let china3 = find("SELECT * FROM list_china3_diesel");
    assert_eq!(china3.len(), 2);
    assert_eq!(
        china3[0]["rows"],
        cli_list(&t, "china3-diesel").len().to_string()
    );
    let bound = find("SELECT count(*) FROM rsd_passes WHERE plate = $1 AND verdict = 'fail'");
    assert_eq!(bound.len(), 1);
    let p: Value = serde_json::from_str(&bound[0]["parameters"]).unwrap();
    assert_eq!(p["params"], serde_json::json!(["京Y4408B"]));
    let drops = find("DROP TABLE rsd_passes");
    assert_eq!(drops.len(), 2, "simple and extended");
    assert!(
        drops
            .iter()
            .all(|r| r["status"] == "403" && r["rows"].is_empty())
    );
    let logins: Vec<_> = rows.iter().filter(|r| r["what"] == "sql login").collect();
    let outcomes: Vec<(&str, &str)> = logins
        .iter()
        .map(|r| (r["who"].as_str(), r["status"].as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("ana", "200"),
            ("ana", "200"),
            ("li", "403"),
            ("ana", "401"),
            ("ops", "200")
        ]
    );
    rt.block_on(server.stop()).unwrap();

    // --- Limits: over the time limit 57014, over max_rows 54000; nothing changes on disk.
    let cfg = ServeConfig {
        query_timeout_s: 1.0,
        max_rows: 100,
        ..config("serve-pg-limits")
    };
    let limited = rt.block_on(plumewatch::serve::start(&t, cfg)).unwrap();
    let pg = limited.pg_addr().unwrap();
    rt.block_on(async {
        let c = connect(pg, "ana", "pw-ana").await.unwrap();
        // 3000 passes > max_rows 100: refused, not cut; 100 rows are fine.
        let e = c
            .query("SELECT pass_id FROM rsd_passes", &[])
            .await
            .err()
            .unwrap();
        let (code, msg) = refusal(e);
        assert_eq!(code, "54000");
        assert!(msg.contains("more than 100 rows"), "{msg}");
        let ok = c
            .query("SELECT pass_id FROM rsd_passes LIMIT 100", &[])
            .await
            .unwrap();
        assert_eq!(ok.len(), 100);
        // Over the limit of 1 s: stopped and answered promptly.
        let t0 = std::time::Instant::now();
        let e = c.simple_query(SLOW).await.err().unwrap();
        let took = t0.elapsed().as_secs_f64();
        let (code, msg) = refusal(e);
        assert_eq!(code, "57014", "{msg}");
        assert!(msg.contains("limit of 1 s"), "{msg}");
        assert!(took < 3.0, "stopped after {took:.1} s");
        // The client's own statement_timeout applies when shorter.
        c.batch_execute("SET statement_timeout = 200")
            .await
            .unwrap();
        let t0 = std::time::Instant::now();
        let e = c.query(SLOW, &[]).await.err().unwrap();
        assert_eq!(refusal(e).0, "57014");
        assert!(t0.elapsed().as_secs_f64() < 0.9);
        // The stopped statements hold nothing: the next one answers at once.
        c.batch_execute("SET statement_timeout = 0").await.unwrap();
        let t0 = std::time::Instant::now();
        let n: i64 = c
            .query_one("SELECT count(*) FROM vehicles", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 150);
        assert!(t0.elapsed().as_secs_f64() < 0.9);
    });
    rt.block_on(limited.flush_audit()).unwrap();
    let rows = audit_rows(&t, "serve-pg-limits");
    let statuses: Vec<&str> = rows
        .iter()
        .filter(|r| r["what"] == "sql" && !r["parameters"].contains("statement_timeout"))
        .map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, ["413", "200", "503", "503", "200"]);
    rt.block_on(limited.stop()).unwrap();
    assert_eq!(listing(&t), before, "the tables changed");
}

/// Runs `psql -c sql` as `user` with `PGPASSWORD`, CSV output: (success, stdout, stderr).
fn run_psql(
    psql: &Path,
    pg: SocketAddr,
    user: &str,
    password: &str,
    sql: &str,
) -> (bool, String, String) {
    let (host, port) = (pg.ip().to_string(), pg.port().to_string());
    common::run_psql(
        psql,
        &[
            "--csv",
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            user,
            "-d",
            "plumewatch",
            "-c",
            sql,
        ],
        password,
    )
}

/// psql's CSV output as rows of column → comparable text ([`pg_text`]; empty is NULL).
fn csv_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            header
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.clone(), pg_text((!v.is_empty()).then_some(v))))
                .collect()
        })
        .collect()
}

#[test]
fn psql_end_to_end() {
    let Some(psql) = common::psql() else { return };
    let (_dir, t) = common::demo_tables();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(plumewatch::serve::start(&t, config("serve-psql")))
        .unwrap();
    let pg = server.pg_addr().unwrap();
    let before = listing(&t);

    // The lists' rows, as `plumewatch list` gives them.
    for (list, view) in LISTS {
        let (ok, out, err) = run_psql(&psql, pg, "ana", "pw-ana", &format!("SELECT * FROM {view}"));
        assert!(ok, "{err}");
        let want = cli_list(&t, list);
        if want.is_empty() {
            assert_eq!(out.lines().count(), 1, "header only: {out}");
        } else {
            assert_eq!(sorted(csv_rows(&out)), sorted(want), "{view}");
        }
    }

    // \dt lists the lake's tables.
    let (ok, out, err) = run_psql(&psql, pg, "ana", "pw-ana", "\\dt");
    assert!(ok, "{err}");
    let names: Vec<String> = csv_rows(&out).iter().map(|r| r["Name"].clone()).collect();
    for table in [
        "rsd_passes",
        "plate_reads",
        "vehicles",
        "detections",
        "audit",
    ] {
        assert!(names.iter().any(|n| n == table), "{table} not in {names:?}");
    }

    // Refused, with the message; nothing written.
    let copy_target = t.parent().unwrap().join("x.csv");
    for (sql, msg) in [
        (
            "DROP TABLE rsd_passes",
            "query is read-only: DROP TABLE not allowed",
        ),
        (
            "INSERT INTO vehicles (plate) VALUES ('京A00000')",
            "query is read-only: INSERT not allowed",
        ),
        (
            &format!("COPY rsd_passes TO '{}'", copy_target.display()),
            "query is read-only: COPY not allowed",
        ),
    ] {
        let (ok, _, err) = run_psql(&psql, pg, "ana", "pw-ana", sql);
        assert!(!ok, "{sql} ran");
        assert!(err.contains(msg), "{sql}: {err}");
    }
    let (ok, _, err) = run_psql(&psql, pg, "li", "pw-li", "SELECT 1");
    assert!(!ok);
    assert!(err.contains("role police may not use SQL"), "{err}");
    rt.block_on(server.stop()).unwrap();

    // Over the time limit.
    let cfg = ServeConfig {
        query_timeout_s: 1.0,
        ..config("serve-psql-limits")
    };
    let limited = rt.block_on(plumewatch::serve::start(&t, cfg)).unwrap();
    let (ok, _, err) = run_psql(&psql, limited.pg_addr().unwrap(), "ana", "pw-ana", SLOW);
    assert!(!ok);
    assert!(err.contains("ran longer than the limit of 1 s"), "{err}");
    rt.block_on(limited.stop()).unwrap();
    assert!(!copy_target.exists());
    assert_eq!(listing(&t), before, "the tables changed");
}

/// The venv python of `scripts/pg_test_venv.sh`, else None (and the skip line).
fn venv_python() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo("target"));
    let target = if target.is_absolute() {
        target
    } else {
        common::repo("").join(target)
    };
    let py = target.join("pg-venv/bin/python");
    if py.is_file() {
        Some(py)
    } else {
        println!(
            "skipped: no psycopg venv at {} (run scripts/pg_test_venv.sh)",
            py.display()
        );
        None
    }
}

/// Fetches a list view with psycopg (extended protocol, a bound parameter) and prints one
/// JSON object per row: times as UTC RFC 3339 with ms, plus what Python made of them.
const PSYCOPG_SCRIPT: &str = r#"
import datetime, json, sys
import psycopg
host, port = sys.argv[1], int(sys.argv[2])
with psycopg.connect(host=host, port=port, user="ana", password="pw-ana", dbname="plumewatch") as c:
    cur = c.execute("SELECT * FROM list_rsd_repeat_exceeders WHERE failing_passes >= %s", [0])
    cols = [d.name for d in cur.description]
    for row in cur.fetchall():
        out, aware = {}, []
        for k, v in zip(cols, row):
            if isinstance(v, datetime.datetime):
                aware.append(v.tzinfo is not None and v.utcoffset() is not None)
                out["_offset_s"] = v.utcoffset().total_seconds()
                v = v.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            elif isinstance(v, bool):
                v = "true" if v else "false"
            elif v is None:
                v = ""
            else:
                v = str(v)
            out[k] = v
        out["_aware"] = all(aware) and len(aware) > 0
        print(json.dumps(out, ensure_ascii=False))
    try:
        c.execute("DROP TABLE rsd_passes")
        print(json.dumps({"_drop": "ran"}))
    except psycopg.Error as e:
        print(json.dumps({"_drop": type(e).__name__, "_sqlstate": e.sqlstate}))
"#;

#[test]
fn psycopg_end_to_end() {
    let Some(py) = venv_python() else { return };
    let (_dir, t) = common::demo_tables();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(plumewatch::serve::start(&t, config("serve-psycopg")))
        .unwrap();
    let pg = server.pg_addr().unwrap();
    let before = listing(&t);
    let out = Command::new(&py)
        .args(["-c", PSYCOPG_SCRIPT])
        .arg(pg.ip().to_string())
        .arg(pg.port().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got = Vec::new();
    let mut drop = None;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v.get("_drop").is_some() {
            drop = Some(v);
            continue;
        }
        // Every timestamptz arrives as a tz-aware datetime in the enforcement zone (+08:00).
        assert_eq!(v["_aware"], true, "{v}");
        assert_eq!(v["_offset_s"], 28800.0, "{v}");
        let row: BTreeMap<String, String> = v
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(k, v)| (k.clone(), json_text(v)))
            .collect();
        got.push(row);
    }
    let want = cli_list(&t, "rsd-repeat-exceeders");
    assert!(!want.is_empty());
    assert_eq!(sorted(got), sorted(want));
    let drop = drop.expect("the DROP line");
    assert_eq!(drop["_drop"], "ReadOnlySqlTransaction");
    assert_eq!(drop["_sqlstate"], "25006");
    rt.block_on(server.stop()).unwrap();
    assert_eq!(listing(&t), before, "the tables changed");
}

/// `fixtures/serve.example.toml` documents `pg_listen` (commented out: off by default) and an
/// analyst user; uncommented, they load and the analyst's example password logs in.
#[test]
fn example_config_documents_pg_listen() {
    let path = common::repo("fixtures/serve.example.toml");
    let as_shipped = ServeConfig::load(&path).unwrap();
    assert_eq!(as_shipped.pg_listen, None);
    let text = std::fs::read_to_string(&path).unwrap();
    let uncommented: String = text
        .lines()
        .map(|l| {
            let bare = l.strip_prefix("# ").unwrap_or(l);
            if bare.starts_with("pg_listen =")
                || bare == "[[serve.users]]" && l.starts_with('#')
                || [
                    "name = \"analyst1\"",
                    "role = \"analyst\"",
                    "password_hash = \"$argon2id$v=19$m=19456,t=2,p=1$XbP3",
                ]
                .iter()
                .any(|p| bare.starts_with(p))
            {
                bare.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("serve.toml");
    std::fs::write(&p, uncommented).unwrap();
    let cfg = ServeConfig::load(&p).unwrap();
    assert_eq!(cfg.pg_listen.as_deref(), Some("127.0.0.1:5433"));
    let analyst = cfg.users.iter().find(|u| u.name == "analyst1").unwrap();
    assert_eq!(analyst.role, Role::Analyst);
    let users = plumewatch::serve::auth::Users::new(cfg.users.clone());
    let mut h = axum::http::HeaderMap::new();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "analyst1:change-me-analyst"
        )
    );
    h.insert(axum::http::header::AUTHORIZATION, basic.parse().unwrap());
    assert_eq!(users.authenticate(&h).unwrap().role, Role::Analyst);
}

/// Admission control (`serve::gate`), across both endpoints: with one query slot and one queue
/// place, a slow statement holds the slot; a second statement waits and is refused with
/// `53300` once it waited `queue_timeout_s`; while it waits, an HTTP plate lookup finds the
/// queue full and is answered 503 with `Retry-After` at once. When the slow statement is
/// stopped at its time limit, lookups answer again; the refusals are counted by reason.
#[test]
fn a_busy_server_refuses_what_it_cannot_start_in_time() {
    use common::http::{basic, enc, get};
    use std::time::{Duration, Instant};
    let (_dir, t) = common::demo_tables();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cfg = ServeConfig {
        query_timeout_s: 4.0,
        max_concurrent_queries: 1,
        max_queued_queries: 1,
        queue_timeout_s: 1.0,
        ..config("serve-busy")
    };
    let server = rt.block_on(plumewatch::serve::start(&t, cfg)).unwrap();
    let (pg, http) = (server.pg_addr().unwrap(), server.addr);
    let ops = basic("ops", "pw-ops");
    let metric = |line_start: &str| -> Option<f64> {
        let m = get(http, "/metrics", Some(&ops));
        assert_eq!(m.status, 200);
        m.text()
            .lines()
            .find_map(|l| l.strip_prefix(line_start))
            .map(|v| v.trim().parse().unwrap())
    };
    let wait_for = |line_start: &str, want: f64| {
        let t0 = Instant::now();
        while metric(line_start) != Some(want) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{line_start} never {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // The slow statement takes the one slot.
    let slow = rt.spawn(async move {
        let c = connect(pg, "ana", "pw-ana").await.unwrap();
        refusal(c.simple_query(SLOW).await.err().unwrap())
    });
    wait_for("plumewatch_queries_running ", 1.0);
    // A second statement waits in the queue.
    let queued = rt.spawn(async move {
        let c = connect(pg, "ana", "pw-ana").await.unwrap();
        let t0 = Instant::now();
        let e = c
            .simple_query("SELECT count(*) FROM vehicles")
            .await
            .err()
            .expect("no slot frees within the queue time");
        (refusal(e), t0.elapsed())
    });
    wait_for("plumewatch_queries_waiting ", 1.0);
    // The queue is full: a lookup is refused at once, with Retry-After.
    let lookup = format!("/api/plates/{}", enc("京A12345"));
    let li = basic("li", "pw-li");
    let t0 = Instant::now();
    let a = get(http, &lookup, Some(&li));
    let took = t0.elapsed();
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(a.header("retry-after"), ["1"]);
    let msg = a.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("max_queued_queries"), "{msg}");
    assert!(took < Duration::from_millis(900), "refused after {took:?}");
    // The waiting statement is refused after the queue time, while the slow one still runs.
    let ((code, msg), waited) = rt.block_on(queued).unwrap();
    assert_eq!(code, "53300", "{msg}");
    assert!(msg.contains("queue_timeout_s"), "{msg}");
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    // The slow statement is stopped at its limit (4 s from admission); the slot frees.
    let (code, msg) = rt.block_on(slow).unwrap();
    assert_eq!(code, "57014", "{msg}");
    wait_for("plumewatch_queries_running ", 0.0);
    let a = get(http, &lookup, Some(&li));
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["plate"], "京A12345");
    assert_eq!(
        metric("plumewatch_queries_rejected_total{reason=\"queue_full\"} "),
        Some(1.0)
    );
    assert_eq!(
        metric("plumewatch_queries_rejected_total{reason=\"queue_timeout\"} "),
        Some(1.0)
    );
    rt.block_on(server.stop()).unwrap();
}
