//! `plumewatch serve`, police API (issue 13 item 2, 4, 5): the server runs in-process on
//! 127.0.0.1:0 over tables ingested from `fixtures/demo` (SYNTHETIC registry, passes and plate
//! reads) and is asked over real HTTP (a blocking TCP client, `common::http`: one request per
//! connection).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::http::{Captured, basic, enc, get, user};
use plumewatch::serve::config::{Role, ServeConfig};
use serde_json::Value;

/// A flagged plate of the fixtures: a China III diesel truck (registry 蒙A78T0M, yellow,
/// ZK4H761FVX6PGDKTH), seen 18 times, last at A120116003 on 2026-10-30 14:02:10.339 Beijing.
const FLAGGED: &str = "蒙A78T0M";
/// An unflagged plate: a China V petrol car (冀HUBZ55, blue, BJGXJX8XSHT9YVXMH).
const CLEAN: &str = "冀HUBZ55";

fn cli_list(tables: &Path, name: &str, format: &str) -> Vec<u8> {
    common::ok(&[
        "list",
        name,
        "--format",
        format,
        "--tables",
        tables.to_str().unwrap(),
    ])
    .into_bytes()
}

#[test]
fn police_api_end_to_end() {
    let logs = Captured::install();

    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("tables");
    std::fs::create_dir_all(&t).unwrap();
    common::ingest_demo(&t);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".into(),
        audit_commit_ms: 100,
        users: vec![
            user("li", Role::Police, Some("pw-li-1"), None),
            user(
                "records",
                Role::Police,
                None,
                Some("tok-records-0123456789"),
            ),
            user("ana", Role::Analyst, Some("pw-ana"), None),
            user("ops", Role::Admin, None, Some("tok-ops-0123456789")),
        ],
        ..ServeConfig::default()
    };
    let server = rt.block_on(plumewatch::serve::start(&t, cfg)).unwrap();
    let a = server.addr;
    let li = basic("li", "pw-li-1");
    let records = "Bearer tok-records-0123456789";
    // Every request made, as the audit table must show it: (what, status, who).
    let mut sent: Vec<(&str, u16, Option<&str>)> = Vec::new();
    let plates_route = "/api/plates/{plate}";
    let lists_route = "/api/lists/{name}";

    // --- A flagged plate: registry row, every detection, last seen.
    let r = get(a, &format!("/api/plates/{}", enc(FLAGGED)), Some(&li));
    sent.push((plates_route, r.status, Some("li")));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["plate"], FLAGGED);
    assert_eq!(v["registry"].as_array().unwrap().len(), 1);
    let reg = &v["registry"][0];
    assert_eq!(reg["plate_color"], "yellow");
    assert_eq!(reg["vin"], "ZK4H761FVX6PGDKTH");
    assert_eq!(reg["fuel"], "diesel");
    let flags = v["flags"].as_array().unwrap();
    let n_det = common::rows(&common::sql(
        &t,
        &format!("SELECT count(*) AS n FROM detections WHERE plate = '{FLAGGED}'"),
    ))[0]["n"]
        .clone()
        .unwrap();
    assert_eq!(flags.len().to_string(), n_det);
    // One China III sighting detection per sighting the list counts (18).
    assert_eq!(flags.len(), 18);
    for f in flags {
        assert_eq!(f["rule_id"], "china3_diesel_sighting");
        assert_eq!(f["list"], "china3-diesel");
        assert_eq!(f["limit_set"], "cn-observed@2026.1");
        assert_eq!(f["evidence_text"]["basis"], "registry_emission_standard");
        assert!(f["detected_at"].as_str().unwrap().ends_with('Z'));
    }
    // Last seen = the list's last sighting of the plate.
    assert_eq!(v["last_seen"]["site_id"], "A120116003");
    assert_eq!(v["last_seen"]["seen_at"], "2026-10-30T06:02:10.339Z");
    assert_eq!(
        v["last_seen"]["seen_at_local"],
        "2026-10-30T14:02:10.339+08:00"
    );
    let flagged_rows = 1 + 18 + 1;

    // --- An unflagged plate: registry row, no flags, last seen from passes and reads.
    let r = get(a, &format!("/api/plates/{}", enc(CLEAN)), Some(records));
    sent.push((plates_route, r.status, Some("records")));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["registry"][0]["vin"], "BJGXJX8XSHT9YVXMH");
    assert_eq!(v["registry"][0]["fuel"], "petrol");
    assert_eq!(v["flags"].as_array().unwrap().len(), 0);
    let last = common::rows(&common::sql(
        &t,
        &format!(
            "SELECT site_id, seen_at FROM (SELECT site_id, passed_at AS seen_at FROM rsd_passes WHERE plate = '{CLEAN}' \
             UNION ALL SELECT site_id, read_at FROM plate_reads WHERE plate = '{CLEAN}') ORDER BY seen_at DESC LIMIT 1"
        ),
    ));
    assert_eq!(
        v["last_seen"]["site_id"].as_str(),
        last[0]["site_id"].as_deref()
    );
    let last_ms = chrono::DateTime::parse_from_rfc3339(v["last_seen"]["seen_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();

    // --- Not a plate: 400, nothing run.
    let r = get(a, &format!("/api/plates/{}", enc("DROP TABLE")), Some(&li));
    sent.push((plates_route, r.status, Some("li")));
    assert_eq!(r.status, 400);

    // --- 401 without credentials (with the challenge), 401 with a wrong password, 403 for
    // an analyst.
    let r = get(a, &format!("/api/plates/{}", enc(FLAGGED)), None);
    sent.push((plates_route, r.status, None));
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").join(", ");
    assert!(
        challenge.contains("Basic realm=\"plumewatch\""),
        "{challenge}"
    );
    assert!(challenge.contains("Bearer"), "{challenge}");
    let r = get(
        a,
        &format!("/api/plates/{}", enc(FLAGGED)),
        Some(&basic("li", "nope")),
    );
    sent.push((plates_route, r.status, Some("li")));
    assert_eq!(r.status, 401);
    let r = get(a, "/api/lists/china3-diesel", Some(&basic("ana", "pw-ana")));
    sent.push((lists_route, r.status, Some("ana")));
    assert_eq!(r.status, 403);
    let r = get(a, "/metrics", Some(records));
    sent.push(("/metrics", r.status, Some("records")));
    assert_eq!(r.status, 403);

    // --- CSV: BOM, the same bytes as `plumewatch list --format csv`.
    let cli_csv = cli_list(&t, "china3-diesel", "csv");
    let r = get(a, "/api/lists/china3-diesel?format=csv", Some(records));
    sent.push((lists_route, r.status, Some("records")));
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"\xEF\xBB\xBF"));
    assert_eq!(r.header("content-type"), vec!["text/csv; charset=utf-8"]);
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        String::from_utf8(cli_csv).unwrap()
    );

    // --- XLSX with Chinese headers: the CLI's rows, in order.
    let cli_rows: Vec<Value> =
        serde_json::from_slice(&cli_list(&t, "china3-diesel", "json")).unwrap();
    assert!(cli_rows.len() >= 2, "{}", cli_rows.len());
    let r = get(a, "/api/lists/china3-diesel?format=xlsx&lang=zh", Some(&li));
    sent.push((lists_route, r.status, Some("li")));
    assert_eq!(r.status, 200);
    {
        use calamine::{Data, Reader, Xlsx};
        let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(r.body.clone()))
            .expect("a valid XLSX");
        let sheet = wb.worksheet_range("china3-diesel").unwrap();
        let rows: Vec<&[Data]> = sheet.rows().collect();
        let head: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
        assert_eq!(
            &head[..4],
            &["号牌号码", "号牌颜色", "车辆识别代号", "发现次数"]
        );
        assert_eq!(head[5], "最后发现时间");
        assert_eq!(head[6], "最后发现站点");
        assert_eq!(head[11], "时间为Asia/Shanghai当地时间");
        assert_eq!(rows.len(), 1 + cli_rows.len());
        for (x, c) in rows[1..].iter().zip(&cli_rows) {
            assert_eq!(x[0].to_string(), c["plate"].as_str().unwrap());
            assert_eq!(x[3], Data::Float(c["sightings"].as_f64().unwrap()));
            // last_seen: an Excel date-time of the Beijing wall clock.
            let ms = chrono::DateTime::parse_from_rfc3339(c["last_seen"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            let serial = (ms + 8 * 3_600_000) as f64 / 86_400_000.0 + 25_569.0;
            let Data::DateTime(d) = &x[5] else {
                panic!("last_seen not a date-time: {:?}", x[5]);
            };
            assert!(
                (d.as_f64() - serial).abs() < 1e-7,
                "{} vs {serial}",
                d.as_f64()
            );
        }
        let first = cli_rows.iter().find(|c| c["plate"] == FLAGGED).unwrap();
        assert_eq!(first["sightings"], 18);
    }

    // --- District (the site code's division code) filters on the last site.
    let r = get(a, "/api/lists/china3-diesel?district=1201", Some(&li));
    sent.push((lists_route, r.status, Some("li")));
    assert_eq!(r.status, 200);
    let got: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["plate"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = cli_rows
        .iter()
        .filter(|c| c["last_site"].as_str().unwrap()[1..].starts_with("1201"))
        .map(|c| c["plate"].as_str().unwrap().to_string())
        .collect();
    assert!(!want.is_empty() && want.len() < cli_rows.len());
    assert_eq!(got, want);

    // --- Parameters carrying SQL text are refused as parameters: 400, nothing run.
    let vehicles_before = common::rows(&common::sql(&t, "SELECT count(*) AS n FROM vehicles"));
    for q in [
        format!("min_failing_passes={}", enc("3; DROP TABLE vehicles")),
        format!("since={}", enc("2026-01-01' OR '1'='1")),
        format!("same_pollutant={}", enc("true) OR (1=1")),
        format!("{}=1", enc("x; DELETE FROM vehicles")),
    ] {
        let r = get(
            a,
            &format!("/api/lists/rsd-repeat-exceeders?{q}"),
            Some(&li),
        );
        sent.push((lists_route, r.status, Some("li")));
        assert_eq!(r.status, 400, "{q}: {}", String::from_utf8_lossy(&r.body));
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains("parameter"), "{msg}");
    }
    assert_eq!(
        common::rows(&common::sql(&t, "SELECT count(*) AS n FROM vehicles")),
        vehicles_before
    );

    // --- A commit made while the server runs is seen by the next request (no restart).
    let late = dir.path().join("late.ndjson");
    let late_ms = last_ms + 3_600_000;
    std::fs::write(
        &late,
        format!(
            "{{\"read_id\":\"PR-LATE-1\",\"read_at\":{late_ms},\"site_id\":\"C140105001\",\"plate\":\"{CLEAN}\",\"plate_color\":\"blue\",\"confidence_pct\":90.0}}\n"
        ),
    )
    .unwrap();
    let (ok, _, err) = common::ingest(&t, "plates", "ndjson", &late, &["--quiet"]);
    assert!(ok, "{err}");
    let r = get(a, &format!("/api/plates/{}", enc(CLEAN)), Some(&li));
    sent.push((plates_route, r.status, Some("li")));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["last_seen"]["site_id"], "C140105001");
    assert_eq!(v["last_seen"]["source"], "plate_reads");
    let seen = chrono::DateTime::parse_from_rfc3339(v["last_seen"]["seen_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert_eq!(seen, late_ms);

    // --- Unknown route: 404, audited.
    let r = get(a, "/api/nothing-here", Some(&li));
    sent.push(("(no route)", r.status, None));
    assert_eq!(r.status, 404);

    // --- Metrics (admin): requests per route template and status.
    let r = get(a, "/metrics", Some("Bearer tok-ops-0123456789"));
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    let count = |route: &str, status: u16| {
        sent.iter()
            .filter(|(w, s, _)| *w == route && *s == status)
            .count()
    };
    for (route, status) in [(plates_route, 200), (plates_route, 401), (lists_route, 400)] {
        let line = format!(
            "plumewatch_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {}",
            count(route, status)
        );
        assert!(text.contains(&line), "{line} not in\n{text}");
    }
    assert!(text.contains("plumewatch_http_request_duration_seconds_bucket{le="));
    sent.push(("/metrics", 200, Some("ops")));

    // --- Every request left exactly one audit row, readable by `plumewatch query`.
    rt.block_on(server.stop()).unwrap();
    let audit = common::rows(&common::sql(
        &t,
        "SELECT request_id, what, status, who, role, rows, parameters FROM audit ORDER BY at, request_id",
    ));
    assert_eq!(audit.len(), sent.len(), "{audit:#?}");
    let ids: std::collections::BTreeSet<_> =
        audit.iter().map(|r| r["request_id"].clone()).collect();
    assert_eq!(ids.len(), audit.len());
    let mut want: BTreeMap<(String, String, Option<String>), usize> = BTreeMap::new();
    for (w, s, who) in &sent {
        *want
            .entry((w.to_string(), s.to_string(), who.map(str::to_string)))
            .or_default() += 1;
    }
    let mut got: BTreeMap<(String, String, Option<String>), usize> = BTreeMap::new();
    for r in &audit {
        *got.entry((
            r["what"].clone().unwrap(),
            r["status"].clone().unwrap(),
            r["who"].clone(),
        ))
        .or_default() += 1;
    }
    assert_eq!(got, want);
    // The first lookup: plate in the parameters, rows returned, role.
    let first = &audit[0];
    assert_eq!(first["what"].as_deref(), Some(plates_route));
    assert_eq!(first["role"].as_deref(), Some("police"));
    assert_eq!(
        first["rows"].as_deref(),
        Some(flagged_rows.to_string().as_str())
    );
    let p: Value = serde_json::from_str(first["parameters"].as_deref().unwrap()).unwrap();
    assert_eq!(p["plate"], FLAGGED);
    // The CSV export: its row count.
    let csv_row = audit
        .iter()
        .find(|r| {
            r["parameters"]
                .as_deref()
                .is_some_and(|p| p.contains("\"format\":\"csv\""))
        })
        .unwrap();
    assert_eq!(
        csv_row["rows"].as_deref(),
        Some(cli_rows.len().to_string().as_str())
    );
    // Refused requests return no rows.
    assert!(
        audit
            .iter()
            .filter(|r| r["status"].as_deref() != Some("200"))
            .all(|r| r["rows"].is_none())
    );

    // --- Limits: a list over max_rows is 413 (not cut), a query over the time limit 503.
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".into(),
        instance_id: "serve-limits".into(),
        max_rows: 1,
        users: vec![user("li", Role::Police, Some("pw-li-1"), None)],
        ..ServeConfig::default()
    };
    let small = rt.block_on(plumewatch::serve::start(&t, cfg)).unwrap();
    let r = get(small.addr, "/api/lists/china3-diesel", Some(&li));
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("more than 1 rows")
    );
    rt.block_on(small.stop()).unwrap();
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".into(),
        instance_id: "serve-limits".into(),
        query_timeout_s: 0.000_001,
        users: vec![user("li", Role::Police, Some("pw-li-1"), None)],
        ..ServeConfig::default()
    };
    let slow = rt.block_on(plumewatch::serve::start(&t, cfg)).unwrap();
    let r = get(slow.addr, "/api/lists/china3-diesel", Some(&li));
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    rt.block_on(slow.stop()).unwrap();
    let limited = common::rows(&common::sql(
        &t,
        "SELECT status FROM audit WHERE instance = 'serve-limits' ORDER BY at",
    ));
    let statuses: Vec<_> = limited
        .iter()
        .map(|r| r["status"].clone().unwrap())
        .collect();
    assert_eq!(statuses, ["413", "503"]);

    // --- The log names route templates, never a plate (raw or percent-encoded).
    let log = logs.text();
    assert!(log.contains("GET /api/plates/{plate} 200"), "{log}");
    for p in [FLAGGED, CLEAN] {
        assert!(!log.contains(p), "plate {p} in the log:\n{log}");
        assert!(!log.contains(&enc(p)), "plate {p} in the log:\n{log}");
    }
}

/// The example config loads, and its example secrets are what its comments say.
#[test]
fn example_config_loads() {
    let cfg = ServeConfig::load(&common::repo("fixtures/serve.example.toml")).unwrap();
    assert_eq!(cfg.listen, "127.0.0.1:8080");
    assert_eq!(cfg.users.len(), 4);
    assert_eq!(
        (cfg.board.buffer, cfg.board.retention_s, cfg.board.backlog),
        (10_000, 86_400, 20)
    );
    let users = plumewatch::serve::auth::Users::new(cfg.users.clone());
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        axum::http::header::AUTHORIZATION,
        basic("police1", "change-me-police").parse().unwrap(),
    );
    assert_eq!(users.authenticate(&h).unwrap().role, Role::Police);
    h.insert(
        axum::http::header::AUTHORIZATION,
        "Bearer change-me-token".parse().unwrap(),
    );
    assert_eq!(users.authenticate(&h).unwrap().name, "records-office");
}

/// What `plumewatch demo` prints to try the server works on the demo's tables with the
/// demo's `serve.toml` (only the ports moved to free ones): the curl line's bearer token
/// looks up the flagged plate (200, its TWC detections), the patrol's board URL opens, and the
/// psql line's analyst password logs in to the PostgreSQL endpoint, where
/// `list_gas_twc_suspects` has the list's rows.
#[test]
fn demo_serve_config_answers_the_printed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("demo");
    let text = common::ok(&["demo", "--out", t.to_str().unwrap()]);
    let after = |marker: &str, end: char| -> String {
        let i = text
            .find(marker)
            .unwrap_or_else(|| panic!("no '{marker}' in {text}"));
        text[i + marker.len()..]
            .split(end)
            .next()
            .unwrap()
            .to_string()
    };
    let token = after("Authorization: Bearer ", '"');
    let url = after("\"http://127.0.0.1:8080", '"');
    let board = after("http://127.0.0.1:8080/board", '\n');
    let password = after("PGPASSWORD=", ' ');
    let analyst = after(" -U ", ' ');
    let plate = after("# a flagged plate (", ')');
    assert!(url.starts_with("/api/plates/%"), "{url}");

    let mut cfg = ServeConfig::load(&t.join("serve.toml")).unwrap();
    cfg.listen = "127.0.0.1:0".into();
    cfg.pg_listen = Some("127.0.0.1:0".into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(plumewatch::serve::start(&t, cfg)).unwrap();

    let r = get(server.addr, &url, Some(&format!("Bearer {token}")));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["plate"], plate.as_str());
    assert_eq!(v["registry"][0]["fuel"], "natural_gas", "{v}");
    let flags = v["flags"].as_array().unwrap();
    assert!(!flags.is_empty(), "{v}");
    assert!(flags.iter().all(|f| f["list"] == "gas-twc-suspects"), "{v}");
    // Every detection of the plate or of its registry VIN (OBD detections carry the VIN),
    // each once.
    let vin = v["registry"][0]["vin"].as_str().unwrap();
    let want = common::scalar_i64(
        &t,
        &format!("SELECT count(*) FROM detections WHERE plate = '{plate}' OR vin = '{vin}'"),
    );
    assert_eq!(flags.len() as i64, want, "{v}");
    assert!(flags.iter().all(|f| f["vin"] == vin), "{v}");
    assert_eq!(get(server.addr, &url, None).status, 401);
    assert_eq!(
        get(server.addr, &format!("/board{board}"), None).status,
        200
    );
    assert_eq!(
        get(server.addr, "/board?token=not-the-token", None).status,
        401
    );

    let pg = server.pg_addr().unwrap();
    let n = rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(
            &format!(
                "host={} port={} user={analyst} password={password} dbname=plumewatch",
                pg.ip(),
                pg.port()
            ),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let row = c
            .query_one("SELECT count(*) FROM list_gas_twc_suspects", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0)
    });
    let listed: Vec<Value> =
        serde_json::from_slice(&cli_list(&t, "gas-twc-suspects", "json")).unwrap();
    assert_eq!(n as usize, listed.len());
    assert!(n > 0);
    rt.block_on(server.stop()).unwrap();
}

/// The plate lookup's `last_seen` comes from an in-memory index (`serve::last_seen`), not from
/// its SQL (`serve::api::LAST_SEEN_SQL`): both give the same row for every plate of the demo
/// tables and for a plate never seen, after the first build and after a commit folded in
/// incrementally (plate reads added to tables that held passes only).
#[test]
fn last_seen_index_answers_as_its_sql_does() {
    use datafusion::arrow::array::Array;
    use plumewatch::query::{Lake, output};
    use plumewatch::serve::api::{LAST_SEEN_SQL, rows};
    use plumewatch::serve::last_seen::LastSeenIndex;

    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("tables");
    std::fs::create_dir_all(&t).unwrap();
    let demo = common::repo("fixtures/demo");
    for (stream, format, file) in [
        ("vehicles", "csv", "synthetic_vehicles.csv"),
        ("rsd", "ndjson", "synthetic_passes.ndjson"),
    ] {
        let (ok, _, err) = common::ingest(&t, stream, format, &demo.join(file), &["--quiet"]);
        assert!(ok, "{err}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    // (plates compared, plates last seen in a plate read)
    let compare = |lake: &Lake, ix: &LastSeenIndex| -> (usize, usize) {
        let plates: Vec<String> = common::sql(
            &t,
            "SELECT DISTINCT plate FROM (SELECT plate FROM rsd_passes UNION ALL SELECT plate FROM plate_reads) WHERE plate IS NOT NULL",
        )
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_any().downcast_ref::<datafusion::arrow::array::StringArray>().unwrap();
            (0..c.len()).map(|i| c.value(i).to_string()).collect::<Vec<_>>()
        })
        .chain(["京Z00000".to_string()])
        .collect();
        let mut by_reads = 0;
        for p in &plates {
            let by_sql = rt
                .block_on(rows(lake, LAST_SEEN_SQL, &[("plate", p)]))
                .unwrap();
            let want = output::to_json(&by_sql).unwrap();
            let got = output::to_json(&[ix.lookup(p)]).unwrap();
            assert_eq!(got, want, "plate {p}");
            by_reads += usize::from(got.first().is_some_and(|r| r["source"] == "plate_reads"));
        }
        (plates.len(), by_reads)
    };
    let lake = rt.block_on(Lake::open(&t)).unwrap();
    let mut ix = LastSeenIndex::default();
    ix.update(&lake).unwrap();
    let (n, reads) = compare(&lake, &ix);
    assert_eq!(ix.plates(), n - 1, "one entry per plate seen");
    assert!(n > 100, "{n} plates");
    assert_eq!(reads, 0);

    // A commit adds plate reads: folded in incrementally, the same as built afresh.
    let (ok, _, err) = common::ingest(
        &t,
        "plates",
        "ndjson",
        &demo.join("synthetic_plate_reads.ndjson"),
        &["--quiet"],
    );
    assert!(ok, "{err}");
    let lake = rt.block_on(Lake::open(&t)).unwrap();
    ix.update(&lake).unwrap();
    let mut fresh = LastSeenIndex::default();
    fresh.update(&lake).unwrap();
    let (n2, reads) = compare(&lake, &ix);
    assert_eq!(compare(&lake, &fresh), (n2, reads));
    assert_eq!(ix.plates(), n2 - 1);
    assert!(reads > 10, "{reads} plates now last seen in a plate read");
}
