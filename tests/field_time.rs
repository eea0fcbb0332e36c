//! Issue 8 kind 1, time: field cases `time-epoch-seconds`, `time-zone-in-data-ignored`,
//! `list-dates-utc-not-beijing`, `date-partition-text-compare` (inputs copied to
//! `fixtures/field-cases/`), plus own examples of each kind: epoch µs on plate reads, offsets
//! `-05:00` / `Z` / `+0530` in vendor text, `%f` fractions, naive times in the source's zone,
//! a relative clock in seconds, a Spanish Torque log with its own GMT offset, instants ahead of
//! the clock on every stream, HJ 1239 clock skew, and Beijing-day boundaries on every list.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::*;

fn case(slug: &str, file: &str) -> String {
    repo(&format!("fixtures/field-cases/{slug}/{file}"))
        .to_str()
        .unwrap()
        .to_string()
}

fn ingest(out: &Path, stream: &str, extra: &[&str], input: &str) -> String {
    let mut a = vec![
        "ingest",
        "--stream",
        stream,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    a.extend_from_slice(extra);
    a.push(input);
    ingest_ok_or_all_rejected(&a)
}

/// Rows of `q` as maps (display text; timestamps in UTC as the library shows them).
fn q(dir: &Path, sql_text: &str) -> Vec<HashMap<String, Option<String>>> {
    rows(&sql(dir, sql_text))
}

fn col(r: &[HashMap<String, Option<String>>], c: &str) -> Vec<String> {
    r.iter()
        .map(|m| m[c].clone().unwrap_or_else(|| "NULL".into()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `ingest --stream obd --format FORMAT --mapping fixtures/mappings/torque.toml --vin VIN INPUT`.
fn ingest_torque_as(out: &Path, format: &str, vin: &str, input: &str) -> String {
    ingest(
        out,
        "obd",
        &[
            "--format",
            format,
            "--mapping",
            repo("fixtures/mappings/torque.toml").to_str().unwrap(),
            "--vin",
            vin,
        ],
        input,
    )
}

// --- time-epoch-seconds -------------------------------------------------------------------

#[test]
fn epoch_seconds_are_refused_with_every_reading_never_guessed() {
    let t = tempfile::tempdir().unwrap();
    let s = ingest(
        t.path(),
        "rsd",
        &[],
        &case("time-epoch-seconds", "passes.ndjson"),
    );
    assert!(s.contains("quarantined:  3"), "{s}");
    let r = q(
        t.path(),
        "SELECT pass_id, passed_at, CAST(date AS VARCHAR) AS d FROM rsd_passes ORDER BY pass_id",
    );
    assert_eq!(col(&r, "pass_id"), ["e3"]);
    assert_eq!(col(&r, "passed_at"), ["2025-11-08T03:00:00Z"]);
    assert_eq!(col(&r, "d"), ["2025-11-08"]);
    let qr = q(
        t.path(),
        "SELECT source_line, field, reason FROM quarantine ORDER BY source_line",
    );
    assert_eq!(col(&qr, "source_line"), ["1", "2", "4"]);
    assert_eq!(col(&qr, "field"), ["passed_at", "passed_at", "passed_at"]);
    let reasons = col(&qr, "reason");
    for (reason, want) in reasons.iter().zip([
        [
            "as ms 1970-01-21T09:36:07.200Z",
            "as s 2025-11-08T02:00:00Z",
        ],
        [
            "as ms 1970-01-21T09:36:07.201Z",
            "as s 2025-11-08T02:00:00.500Z",
        ],
        ["as µs 2025-11-08T02:00:00Z", "read as ms is"],
    ]) {
        for w in want {
            assert!(reason.contains(w), "{w} in {reason}");
        }
        assert!(reason.contains("declare the unit"), "{reason}");
    }
    assert!(reasons[0].contains("before the earliest accepted 2000-01-01T00:00:00Z"));
    assert!(reasons[2].contains("after now"), "{}", reasons[2]);

    // The same passes with the unit declared: e1, e2 right; e3 (ms read as s) and e4 refused.
    let m = write(
        t.path(),
        "unix_s.toml",
        "[mapping]\nname = \"unix-s\"\n[fields.pass_id]\nsource = \"pass_id\"\n[fields.passed_at]\nsource = \"passed_at\"\ntime = \"unix_s\"\n[fields.fuel]\nsource = \"fuel\"\n",
    );
    let t2 = tempfile::tempdir().unwrap();
    let s = ingest(
        t2.path(),
        "rsd",
        &["--mapping", m.to_str().unwrap()],
        &case("time-epoch-seconds", "passes.ndjson"),
    );
    assert!(s.contains("quarantined:  2"), "{s}");
    let r = q(
        t2.path(),
        "SELECT pass_id, passed_at FROM rsd_passes ORDER BY pass_id",
    );
    assert_eq!(col(&r, "pass_id"), ["e1", "e2"]);
    assert_eq!(
        col(&r, "passed_at"),
        ["2025-11-08T02:00:00Z", "2025-11-08T02:00:00.500Z"]
    );

    // The same floor on plate reads and OBD samples.
    let t3 = tempfile::tempdir().unwrap();
    ingest(
        t3.path(),
        "plates",
        &[],
        &case("time-epoch-seconds", "read.ndjson"),
    );
    ingest(
        t3.path(),
        "obd",
        &[],
        &case("time-epoch-seconds", "sample.ndjson"),
    );
    assert_eq!(scalar_i64(t3.path(), "SELECT count(*) FROM plate_reads"), 0);
    assert_eq!(scalar_i64(t3.path(), "SELECT count(*) FROM obd_samples"), 0);
    let qr = q(
        t3.path(),
        "SELECT stream, field, reason FROM quarantine ORDER BY stream",
    );
    assert_eq!(col(&qr, "stream"), ["obd", "plates"]);
    assert_eq!(col(&qr, "field"), ["sampled_at", "read_at"]);
    assert!(
        col(&qr, "reason")
            .iter()
            .all(|r| r.contains("as s 2025-11-08T02:00:00Z"))
    );
}

#[test]
fn golf_log_relative_clock_stores_1649_samples_flagged_relative() {
    let Some(golf) = shared("obd/torque_golf_2007_borderline.csv") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let s = ingest_torque_as(t.path(), "csv", "WVWZZZ1KZ7W000001", golf.to_str().unwrap());
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = q(
        t.path(),
        "SELECT count(*) AS n, sum(CASE WHEN time_relative THEN 1 ELSE 0 END) AS rel, \
         min(sampled_at) AS t0, max(sampled_at) AS t1 FROM obd_samples",
    );
    // 152 of the 1801 lines repeat another line exactly (same clock, same values): the OBD
    // key (VIN, collection time, info type) stores each sample once (tests/obd_pipeline.rs).
    assert_eq!(col(&r, "n"), ["1649"]);
    assert_eq!(col(&r, "rel"), ["1649"]);
    // 25:36.7 is 25 min 36.7 s after the (cut) hour: 1970-01-01 + elapsed, never an instant.
    assert_eq!(col(&r, "t0"), ["1970-01-01T00:25:36.700Z"]);
    // No list period contains it (lists start at [time].earliest, 2000-01-01).
    let out = ok(&[
        "list",
        "gas-twc-suspects",
        "--tables",
        t.path().to_str().unwrap(),
        "--param",
        "all_vehicles=true",
        "--format",
        "json",
    ]);
    assert_eq!(out.trim(), "[]");
}

#[test]
fn relative_clock_in_seconds_is_flagged_and_refused_for_passes() {
    let t = tempfile::tempdir().unwrap();
    // An engine-run-time column (seconds since start), like carOBD's ENGINE_RUN_TINE.
    let csv = write(
        t.path(),
        "run.csv",
        "run_s,rpm,speed\n0,800,0\n1.5,820,0\n3600,2000,50\n",
    );
    let m = write(
        t.path(),
        "run.toml",
        "[mapping]\nname = \"run-time\"\n[fields.sampled_at]\nsource = \"run_s\"\ntime = \"elapsed_s\"\n[fields.engine_rpm]\nsource = \"rpm\"\n[fields.speed_kmh]\nsource = \"speed\"\n",
    );
    let out = t.path().join("tables");
    let s = ingest(
        &out,
        "obd",
        &[
            "--format",
            "csv",
            "--mapping",
            m.to_str().unwrap(),
            "--vin",
            "LRUN0000000000001",
        ],
        csv.to_str().unwrap(),
    );
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = q(
        &out,
        "SELECT sampled_at, time_relative, clock_skew_s FROM obd_samples ORDER BY sampled_at",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        [
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:01.500Z",
            "1970-01-01T01:00:00Z"
        ]
    );
    assert_eq!(col(&r, "time_relative"), ["true", "true", "true"]);
    assert_eq!(col(&r, "clock_skew_s"), ["NULL", "NULL", "NULL"]);
    // A relative clock can never time an RSD pass or a plate read: the mapping is refused.
    let m2 = write(
        t.path(),
        "bad.toml",
        "[mapping]\nname = \"x\"\n[fields.pass_id]\nsource = \"id\"\n[fields.passed_at]\nsource = \"t\"\ntime = \"clock_mmss\"\n",
    );
    let o = pw(&[
        "ingest",
        "--stream",
        "rsd",
        "--format",
        "csv",
        "--mapping",
        m2.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        csv.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("[fields.passed_at]") && err.contains("relative clock"),
        "{err}"
    );
}

#[test]
fn epoch_micros_on_plate_reads_and_future_instants_on_every_stream() {
    let t = tempfile::tempdir().unwrap();
    let future = chrono::Utc::now() + chrono::Duration::days(3);
    let fut = future.to_rfc3339();
    let nd = write(
        t.path(),
        "reads.ndjson",
        "{\"id\":\"u1\",\"t\":1762567200123456,\"plate\":\"苏E9Z998\"}\n\
         {\"id\":\"u2\",\"t\":1762567200123,\"plate\":\"苏E9Z998\"}\n\
         {\"id\":\"u3\",\"t\":\"1762567200123456\",\"plate\":\"苏E9Z998\"}\n",
    );
    let m = write(
        t.path(),
        "us.toml",
        "[mapping]\nname = \"us\"\n[fields.read_id]\nsource = \"id\"\n[fields.read_at]\nsource = \"t\"\ntime = \"unix_us\"\n[fields.plate]\nsource = \"plate\"\n",
    );
    let out = t.path().join("tables");
    ingest(
        &out,
        "plates",
        &["--mapping", m.to_str().unwrap()],
        nd.to_str().unwrap(),
    );
    let r = q(
        &out,
        "SELECT read_id, read_at FROM plate_reads ORDER BY read_id",
    );
    assert_eq!(col(&r, "read_id"), ["u1", "u3"]);
    assert_eq!(
        col(&r, "read_at"),
        ["2025-11-08T02:00:00.123Z", "2025-11-08T02:00:00.123Z"]
    );
    let qr = q(&out, "SELECT field, reason FROM quarantine");
    assert_eq!(col(&qr, "field"), ["read_at"]);
    assert!(
        qr[0]["reason"]
            .as_deref()
            .unwrap()
            .contains("as ms 2025-11-08T02:00:00.123Z"),
        "{qr:?}"
    );
    // A clock three days ahead, on passes, reads and samples (canonical RFC 3339).
    let t2 = tempfile::tempdir().unwrap();
    let o2 = t2.path().join("tables");
    for (stream, line) in [
        (
            "rsd",
            format!("{{\"pass_id\":\"f1\",\"passed_at\":\"{fut}\"}}\n"),
        ),
        (
            "plates",
            format!("{{\"read_id\":\"f2\",\"read_at\":\"{fut}\",\"plate\":\"苏E9Z998\"}}\n"),
        ),
        (
            "obd",
            format!("{{\"vin\":\"LFUT0000000000001\",\"sampled_at\":\"{fut}\"}}\n"),
        ),
    ] {
        let p = write(t2.path(), &format!("{stream}.ndjson"), &line);
        let s = ingest(&o2, stream, &[], p.to_str().unwrap());
        assert!(s.contains("quarantined:  1"), "{stream}: {s}");
    }
    let qr = q(&o2, "SELECT field, reason FROM quarantine ORDER BY field");
    assert_eq!(col(&qr, "field"), ["passed_at", "read_at", "sampled_at"]);
    assert!(
        col(&qr, "reason")
            .iter()
            .all(|r| r.contains("after now + 86400 s"))
    );
}

#[test]
fn registry_date_in_the_future_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let next_year = chrono::Utc::now().date_naive() + chrono::Duration::days(400);
    let csv = write(
        t.path(),
        "v.csv",
        &format!(
            "plate,plate_color,vin,fuel,emission_standard,vehicle_type,registered_on\n\
             冀A11111,yellow,LVIN0000000000001,diesel,3,H11,1998-05-01\n\
             冀A22222,yellow,LVIN0000000000002,diesel,3,H11,{next_year}\n"
        ),
    );
    let s = ingest(
        t.path(),
        "vehicles",
        &["--format", "csv"],
        csv.to_str().unwrap(),
    );
    assert!(s.contains("quarantined:  1"), "{s}");
    // A registration before 2000 is fine: the floor is for instants, not registry dates.
    let r = q(t.path(), "SELECT plate, registered_on FROM vehicles");
    assert_eq!(col(&r, "registered_on"), ["1998-05-01"]);
    let qr = q(t.path(), "SELECT field FROM quarantine");
    assert_eq!(col(&qr, "field"), ["registered_on"]);
}

// --- time-zone-in-data-ignored --------------------------------------------------------------

#[test]
fn offset_in_the_value_wins_over_the_mapping() {
    let t = tempfile::tempdir().unwrap();
    let s = ingest(
        t.path(),
        "rsd",
        &[
            "--format",
            "csv",
            "--mapping",
            &case("time-zone-in-data-ignored", "zone.toml"),
        ],
        &case("time-zone-in-data-ignored", "zone.csv"),
    );
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = q(
        t.path(),
        "SELECT pass_id, passed_at FROM rsd_passes ORDER BY 1",
    );
    assert_eq!(
        col(&r, "passed_at"),
        ["2025-11-08T02:00:00Z", "2025-11-08T10:00:00Z"]
    );
    // Torque GPS Time with its GMT+01:00 through the case's mapping.
    let t2 = tempfile::tempdir().unwrap();
    ingest(
        t2.path(),
        "obd",
        &[
            "--format",
            "csv",
            "--mapping",
            &case("time-zone-in-data-ignored", "torque_gmt.toml"),
            "--vin",
            "LZZ5ELSDXND999901",
        ],
        &case("time-zone-in-data-ignored", "torque_pt.csv"),
    );
    let r = q(
        t2.path(),
        "SELECT sampled_at, coolant_c FROM obd_samples ORDER BY 1",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        ["2026-08-05T17:57:56Z", "2026-08-05T17:58:20Z"]
    );
}

#[test]
fn stock_torque_mapping_reads_a_localised_log() {
    let t = tempfile::tempdir().unwrap();
    let s = ingest_torque_as(
        t.path(),
        "csv",
        "LZZ5ELSDXND999901",
        &case("time-zone-in-data-ignored", "torque_pt.csv"),
    );
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = q(
        t.path(),
        "SELECT sampled_at, coolant_c, net_torque_pct, engine_rpm, time_relative FROM obd_samples ORDER BY 1",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        ["2026-08-05T17:57:56.813Z", "2026-08-05T17:58:20.818Z"]
    );
    let cool = f64s(
        &sql(
            t.path(),
            "SELECT coolant_c FROM obd_samples ORDER BY sampled_at",
        ),
        "coolant_c",
    );
    assert!((cool[0].unwrap() - 31.0).abs() < 1e-3, "{cool:?}");
    assert!((cool[1].unwrap() - 34.0).abs() < 1e-3, "{cool:?}");
    assert_eq!(col(&r, "net_torque_pct"), ["NULL", "NULL"]);
    assert_eq!(col(&r, "time_relative"), ["false", "false"]);
    assert_eq!(scalar_i64(t.path(), "SELECT count(*) FROM detections"), 0);
    assert_eq!(scalar_i64(t.path(), "SELECT count(*) FROM quarantine"), 0);
}

#[test]
fn spanish_torque_log_with_a_western_offset_and_fahrenheit() {
    // Own example: Spanish month (`dic.`), GMT-05:00, the second row has no GPS fix and keeps
    // the offset last seen; 212 °F = 100 °C.
    let t = tempfile::tempdir().unwrap();
    let csv = write(
        t.path(),
        "es.csv",
        "GPS Time, Device Time,Engine Coolant Temperature(°F),Engine RPM(rpm)\n\
         Fri Dec 05 08:00:00 GMT-05:00 2025,05-dic.-2025 08:00:00.5,212,900\n\
         -,05-dic.-2025 08:00:01.5,32,905\n",
    );
    let out = t.path().join("tables");
    let s = ingest_torque_as(&out, "csv", "LESP0000000000001", csv.to_str().unwrap());
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = q(
        &out,
        "SELECT sampled_at, coolant_c FROM obd_samples ORDER BY 1",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        ["2025-12-05T13:00:00.500Z", "2025-12-05T13:00:01.500Z"]
    );
    assert_eq!(col(&r, "coolant_c"), ["100.0", "0.0"]);
}

#[test]
fn vendor_text_offsets_fractions_and_naive_zones() {
    let t = tempfile::tempdir().unwrap();
    let csv = write(
        t.path(),
        "v.csv",
        "id,t\n\
         o1,2025-11-08 10:30:00.25-05:00\n\
         o2,2025-11-08 10:30:00.250Z\n\
         o3,2025-11-08 10:30:00.123456\n\
         o4,2025-11-08 10:30:00.5 +0530\n\
         o5,2025-11-08 10:30\n",
    );
    let m = write(
        t.path(),
        "v.toml",
        "[mapping]\nname = \"v\"\n[fields.pass_id]\nsource = \"id\"\n[fields.passed_at]\nsource = \"t\"\n\
         time = [\"%Y-%m-%d %H:%M:%S.%f%:z\", \"%Y-%m-%d %H:%M:%S.%f\"]\nutc_offset = \"+08:00\"\n",
    );
    let out = t.path().join("tables");
    let s = ingest(
        &out,
        "rsd",
        &["--format", "csv", "--mapping", m.to_str().unwrap()],
        csv.to_str().unwrap(),
    );
    assert!(s.contains("quarantined:  1"), "{s}"); // o5 matches no pattern
    let r = q(&out, "SELECT pass_id, passed_at FROM rsd_passes ORDER BY 1");
    assert_eq!(
        col(&r, "passed_at"),
        [
            "2025-11-08T15:30:00.250Z",
            "2025-11-08T10:30:00.250Z",
            "2025-11-08T02:30:00.123Z",
            "2025-11-08T05:00:00.500Z"
        ]
    );
    // A naive time with no zone in the mapping is read in the enforcement zone: Beijing by
    // default, UTC with a limit set that says so; an IANA zone follows DST (Lisbon, summer).
    let naive = write(t.path(), "n.csv", "id,t\nn1,2026/08/05 18:57\n");
    let nm = write(
        t.path(),
        "n.toml",
        "[mapping]\nname = \"n\"\n[fields.pass_id]\nsource = \"id\"\n[fields.passed_at]\nsource = \"t\"\ntime = \"%Y/%m/%d %H:%M\"\n",
    );
    let lisbon = write(
        t.path(),
        "l.toml",
        "[mapping]\nname = \"l\"\n[fields.pass_id]\nsource = \"id\"\n[fields.passed_at]\nsource = \"t\"\ntime = \"%Y/%m/%d %H:%M\"\nutc_offset = \"Europe/Lisbon\"\n",
    );
    let limits_utc = write(
        t.path(),
        "utc.toml",
        &std::fs::read_to_string(repo("fixtures/limits/cn-observed.toml"))
            .unwrap()
            .replace("zone = \"Asia/Shanghai\"", "zone = \"UTC\""),
    );
    let mut got = Vec::new();
    for extra in [
        vec!["--mapping", nm.to_str().unwrap()],
        vec![
            "--mapping",
            nm.to_str().unwrap(),
            "--limits",
            limits_utc.to_str().unwrap(),
        ],
        vec!["--mapping", lisbon.to_str().unwrap()],
    ] {
        let d = tempfile::tempdir().unwrap();
        let mut a = vec!["--format", "csv"];
        a.extend(extra);
        ingest(d.path(), "rsd", &a, naive.to_str().unwrap());
        got.extend(col(
            &q(d.path(), "SELECT passed_at FROM rsd_passes"),
            "passed_at",
        ));
    }
    assert_eq!(
        got,
        [
            "2026-08-05T10:57:00Z",
            "2026-08-05T18:57:00Z",
            "2026-08-05T17:57:00Z"
        ]
    );
    // Zone names are refused, not guessed (CST is China and US Central).
    let zm = write(
        t.path(),
        "z.toml",
        "[mapping]\nname = \"z\"\n[fields.pass_id]\nsource = \"id\"\n[fields.passed_at]\nsource = \"t\"\ntime = \"%Y-%m-%d %H:%M:%S %Z\"\n",
    );
    let o = pw(&[
        "ingest",
        "--stream",
        "rsd",
        "--format",
        "csv",
        "--mapping",
        zm.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        csv.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("%Z"));
}

// --- list-dates-utc-not-beijing ------------------------------------------------------------

fn list_with_tz(tz: &str, args: &[&str]) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_plumewatch"))
        .env("TZ", tz)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn plates_of(json: &str) -> Vec<(String, i64)> {
    let v: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    v.iter()
        .map(|r| {
            (
                r["plate"].as_str().unwrap_or("").to_string(),
                r.get("failing_passes")
                    .or(r.get("sightings"))
                    .or(r.get("detections"))
                    .and_then(|x| x.as_i64())
                    .unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn list_dates_are_beijing_days_for_any_machine_tz() {
    let t = tempfile::tempdir().unwrap();
    ingest(
        t.path(),
        "rsd",
        &[],
        &case("list-dates-utc-not-beijing", "passes.ndjson"),
    );
    let o = t.path().to_str().unwrap();
    for tz in ["UTC", "America/New_York", "Asia/Shanghai"] {
        let out = list_with_tz(
            tz,
            &[
                "list",
                "rsd-repeat-exceeders",
                "--tables",
                o,
                "--format",
                "json",
                "--param",
                "min_failing_passes=1",
                "--param",
                "since=2025-11-08",
                "--param",
                "until=2025-11-09",
            ],
        );
        assert_eq!(plates_of(&out), [("苏E9Z995".to_string(), 1)], "TZ={tz}");
        // An explicit offset is still an instant: UTC midnight cuts the other way.
        let out = list_with_tz(
            tz,
            &[
                "list",
                "rsd-repeat-exceeders",
                "--tables",
                o,
                "--format",
                "json",
                "--param",
                "min_failing_passes=1",
                "--param",
                "since=2025-11-08T00:00:00Z",
                "--param",
                "until=2025-11-09T00:00:00Z",
            ],
        );
        assert_eq!(plates_of(&out), [("苏E9Z996".to_string(), 1)], "TZ={tz}");
    }
    // The partition is the Beijing day: z1 (23:30Z on 7 Nov) is filed under 8 Nov.
    let mut dirs: Vec<String> = std::fs::read_dir(t.path().join("rsd_passes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["date=2025-11-08", "date=2025-11-09"]);
    // CSV output shows the local time with its offset; JSON stays UTC.
    let csv = ok(&[
        "list",
        "rsd-repeat-exceeders",
        "--tables",
        o,
        "--format",
        "csv",
        "--param",
        "min_failing_passes=1",
        "--param",
        "since=2025-11-08",
        "--param",
        "until=2025-11-09",
    ]);
    assert!(csv.contains("2025-11-08T07:30:00+08:00"), "{csv}");
    let help = ok(&["list"]);
    assert!(help.contains("Asia/Shanghai"), "{help}");
    // A limit set in another zone moves the partition day too.
    let utc = write(
        t.path(),
        "utc.toml",
        &std::fs::read_to_string(repo("fixtures/limits/cn-observed.toml"))
            .unwrap()
            .replace("zone = \"Asia/Shanghai\"", "zone = \"UTC\""),
    );
    let t2 = tempfile::tempdir().unwrap();
    ingest(
        t2.path(),
        "rsd",
        &["--limits", utc.to_str().unwrap()],
        &case("list-dates-utc-not-beijing", "passes.ndjson"),
    );
    let r = q(
        t2.path(),
        "SELECT pass_id, CAST(date AS VARCHAR) AS d FROM rsd_passes ORDER BY 1",
    );
    assert_eq!(col(&r, "d"), ["2025-11-07", "2025-11-08"]);
}

#[test]
fn china3_diesel_list_cuts_at_beijing_midnight() {
    let t = tempfile::tempdir().unwrap();
    let reg = write(
        t.path(),
        "v.csv",
        "plate,plate_color,vin,fuel,emission_standard,vehicle_type,registered_on\n\
         冀A12345,yellow,LC3D0000000000001,diesel,3,H11,2010-05-01\n",
    );
    ingest(
        t.path(),
        "vehicles",
        &["--format", "csv"],
        reg.to_str().unwrap(),
    );
    // 2025-11-07T23:30Z = 8 Nov 07:30 in Beijing; 2025-11-08T16:30Z = 9 Nov 00:30.
    let reads = write(
        t.path(),
        "r.ndjson",
        "{\"read_id\":\"c1\",\"read_at\":\"2025-11-07T23:30:00Z\",\"site_id\":\"C1\",\"plate\":\"冀A12345\",\"plate_color\":\"yellow\"}\n\
         {\"read_id\":\"c2\",\"read_at\":\"2025-11-08T16:30:00Z\",\"site_id\":\"C2\",\"plate\":\"冀A12345\",\"plate_color\":\"yellow\"}\n\
         {\"read_id\":\"c3\",\"read_at\":\"2025-11-08T15:59:59.999Z\",\"site_id\":\"C3\",\"plate\":\"冀A12345\",\"plate_color\":\"yellow\"}\n",
    );
    ingest(t.path(), "plates", &[], reads.to_str().unwrap());
    let o = t.path().to_str().unwrap();
    for tz in ["UTC", "America/New_York"] {
        let out = list_with_tz(
            tz,
            &[
                "list",
                "china3-diesel",
                "--tables",
                o,
                "--format",
                "json",
                "--param",
                "since=2025-11-08",
                "--param",
                "until=2025-11-09",
            ],
        );
        let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(v.len(), 1, "{out}");
        assert_eq!(v[0]["sightings"], 2, "{out}"); // c1 and c3 (23:59:59.999 Beijing)
        assert_eq!(v[0]["sites"], "C1,C3", "{out}");
    }
}

#[test]
fn gas_twc_suspects_list_cuts_at_beijing_midnight() {
    // The generated fleet starts 2026-10-01T00:00+08:00 (= 2026-09-30T16:00Z): its detections
    // are on the Beijing day 1 Oct, on the UTC day 30 Sep.
    let t = tempfile::tempdir().unwrap();
    let frames = t.path().join("fleet.hj1239");
    let f = frames.to_str().unwrap();
    ok(&[
        "gen",
        "frames",
        "--vehicles",
        "10",
        "--minutes",
        "20",
        "--seed",
        "5",
        "--out",
        f,
    ]);
    let out = t.path().join("tables");
    let o = out.to_str().unwrap();
    ok(&[
        "ingest",
        "--stream",
        "vehicles",
        "--format",
        "csv",
        "--out",
        o,
        t.path().join("fleet.vehicles.csv").to_str().unwrap(),
    ]);
    ok(&[
        "ingest", "--stream", "obd", "--format", "hj1239", "--out", o, f,
    ]);
    let n_all = plates_of(&ok(&[
        "list",
        "gas-twc-suspects",
        "--tables",
        o,
        "--format",
        "json",
    ]))
    .len();
    assert!(n_all > 0);
    let run = |since: &str, until: &str| {
        plates_of(&list_with_tz(
            "UTC",
            &[
                "list",
                "gas-twc-suspects",
                "--tables",
                o,
                "--format",
                "json",
                "--param",
                &format!("since={since}"),
                "--param",
                &format!("until={until}"),
            ],
        ))
        .len()
    };
    assert_eq!(run("2026-10-01", "2026-10-02"), n_all);
    assert_eq!(run("2026-09-30", "2026-10-01"), 0);
    // The samples are filed under the Beijing day.
    let r = q(
        &out,
        "SELECT DISTINCT CAST(date AS VARCHAR) AS d FROM obd_samples",
    );
    assert_eq!(col(&r, "d"), ["2026-10-01"]);
}

// --- date-partition-text-compare ------------------------------------------------------------

#[test]
fn date_partition_is_a_date32_and_filters_compare_days() {
    let t = tempfile::tempdir().unwrap();
    ingest(
        t.path(),
        "rsd",
        &[],
        &case("date-partition-text-compare", "passes.ndjson"),
    );
    let n = |w: &str| {
        scalar_i64(
            t.path(),
            &format!("SELECT count(*) FROM rsd_passes WHERE {w}"),
        )
    };
    assert_eq!(n("date >= '2025-11-8'"), 4);
    assert_eq!(n("date = '2025-11-8'"), 1);
    assert_eq!(n("date BETWEEN '2025-11-1' AND '2025-11-30'"), 3);
    // An integer never silently matches nothing: 1 row, or a clear type error.
    let rt = tokio::runtime::Runtime::new().unwrap();
    match rt.block_on(plumewatch::query::run_sql(
        t.path(),
        "SELECT count(*) AS n FROM rsd_passes WHERE date = 20251108",
    )) {
        Ok(b) => assert_eq!(col(&rows(&b), "n"), ["1"]),
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains("a date compared with an integer"), "{m}");
        }
    }
    // Date32 on the populated and the empty table alike.
    let e = tempfile::tempdir().unwrap();
    for dir in [t.path(), e.path()] {
        let d = q(dir, "DESCRIBE rsd_passes");
        let date = d
            .iter()
            .find(|r| r["column_name"].as_deref() == Some("date"))
            .unwrap();
        assert_eq!(date["data_type"].as_deref(), Some("Date32"));
        assert_eq!(date["is_nullable"].as_deref(), Some("NO"));
    }
    // The filter still prunes partitions: only the 8 Nov file is scanned.
    let plan = q(
        t.path(),
        "EXPLAIN SELECT pass_id FROM rsd_passes WHERE date = '2025-11-8'",
    );
    let text: String = plan
        .iter()
        .filter_map(|r| r["plan"].clone())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("date=2025-11-08"), "{text}");
    assert!(!text.contains("date=2025-11-09"), "{text}");
}

#[test]
fn query_csv_shows_local_times_with_offset() {
    let t = tempfile::tempdir().unwrap();
    ingest(
        t.path(),
        "rsd",
        &[],
        &case("date-partition-text-compare", "passes.ndjson"),
    );
    let o = t.path().to_str().unwrap();
    let csv = ok(&[
        "query",
        "--tables",
        o,
        "--format",
        "csv",
        "SELECT pass_id, passed_at, date FROM rsd_passes ORDER BY pass_id LIMIT 1",
    ]);
    assert_eq!(
        csv,
        "\u{feff}pass_id,passed_at,date\nd2025-11-08,2025-11-08T10:00:00+08:00,2025-11-08\n"
    );
    let json = ok(&[
        "query",
        "--tables",
        o,
        "--format",
        "json",
        "SELECT passed_at FROM rsd_passes ORDER BY pass_id LIMIT 1",
    ]);
    assert!(json.contains("\"2025-11-08T02:00:00Z\""), "{json}");
}

// --- HJ 1239 frames -------------------------------------------------------------------------

#[test]
fn frames_store_clock_skew_and_refuse_a_clock_ahead() {
    use plumewatch::decode::hj1239::{FrameTime, StreamSample, encode_twc_realtime_frame};
    use plumewatch::decode::text::SourcePos;
    use plumewatch::enrich::registry::Registry;
    use plumewatch::enrich::rsd::RsdContext;
    use plumewatch::limits::LimitSet;
    use plumewatch::pipeline::Pipeline;

    let frame = |at_ms: i64| {
        let at = FrameTime::from_unix_ms_utc8(at_ms).unwrap();
        let s = StreamSample {
            info_type: 3,
            collected_at: Some(at),
            speed_kmh: Some(50.0),
            ..Default::default()
        };
        encode_twc_realtime_frame("LSKW0000000000001", at, 1, &[s])
    };
    let t = tempfile::tempdir().unwrap();
    let limits = LimitSet::default_set();
    let id = limits.id();
    let registry = Registry::default();
    let ctx = RsdContext {
        limits: &limits,
        limit_set_id: &id,
        registry: &registry,
    };
    let mut p = Pipeline::new(ctx, t.path(), "t").unwrap();
    let pos = SourcePos {
        file: "kafka:frames-0",
        offset: 0,
        line: 0,
    };
    // Terminal clock 90 s ahead of the receive time (2026-10-01T08:00:00+08:00).
    let sent = 1_790_812_800_000;
    p.input_ts_ms = Some(sent - 90_000);
    p.frame(&frame(sent), &pos);
    // No receive time: NULL.
    p.input_ts_ms = None;
    p.frame(&frame(sent + 1000), &pos);
    // A terminal clock three days ahead of now: quarantined, field named.
    let ahead = chrono::Utc::now().timestamp_millis() + 3 * 86_400_000;
    p.frame(&frame(ahead), &pos);
    p.commit_files().unwrap();
    let r = q(
        t.path(),
        "SELECT sampled_at, clock_skew_s FROM obd_samples ORDER BY sampled_at",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        ["2026-10-01T00:00:00Z", "2026-10-01T00:00:01Z"]
    );
    assert_eq!(col(&r, "clock_skew_s"), ["90.0", "NULL"]);
    let qr = q(t.path(), "SELECT field, reason FROM quarantine");
    assert_eq!(col(&qr, "field"), ["sampled_at"]);
    assert!(
        col(&qr, "reason")[0].contains("after now + 86400 s"),
        "{qr:?}"
    );
}

// --- time-zone-in-data-ignored, variation: rows before the first GPS fix -------------------
// Issue 8 (lookahead): a Torque log whose first rows have no GPS fix (`GPS Time` = `-`) used
// to read them at +08:00 (no offset seen yet); they wait for the log's first offset instead.

/// `torque_pt.csv` of the field case with a row before its data rows: Device Time 18:57:50
/// local, no GPS fix (same column order as the file).
fn torque_pt_with_unfixed_first_row(dir: &Path, gmt: &str) -> PathBuf {
    let src = std::fs::read_to_string(case("time-zone-in-data-ignored", "torque_pt.csv")).unwrap();
    let (header, rows) = src.split_once('\n').unwrap();
    assert!(header.starts_with("GPS Time, Device Time, Longitude, Latitude,"));
    let rows = rows.replace("GMT+01:00", gmt);
    write(
        dir,
        "torque_unfixed.csv",
        &format!("{header}\n-,05-ago.-2026 18:57:50.000,-,-,87.79999852,1728,0,-\n{rows}"),
    )
}

fn ingest_torque(out: &Path, input: &Path) -> String {
    ingest_torque_as(out, "csv", "LZZ5ELSDXND999901", input.to_str().unwrap())
}

#[test]
fn rows_before_the_first_gps_fix_take_the_logs_offset() {
    let t = tempfile::tempdir().unwrap();
    let csv = torque_pt_with_unfixed_first_row(t.path(), "GMT+01:00");
    let out = t.path().join("tables");
    let s = ingest_torque(&out, &csv);
    assert!(s.contains("quarantined:  0"), "{s}");
    // Input order (source_offset) kept: the held row first. 18:57:50 at +01:00 = 17:57:50Z,
    // not 10:57:50Z (+08:00); the two fixed rows as in the case.
    let r = q(
        &out,
        "SELECT sampled_at, source_offset FROM obd_samples ORDER BY source_offset",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        [
            "2026-08-05T17:57:50Z",
            "2026-08-05T17:57:56.813Z",
            "2026-08-05T17:58:20.818Z"
        ]
    );
    // 87.79999852 °F = 31.0 °C for the held row too.
    let cool = f64s(
        &sql(
            &out,
            "SELECT coolant_c FROM obd_samples ORDER BY source_offset",
        ),
        "coolant_c",
    );
    assert!((cool[0].unwrap() - 31.0).abs() < 1e-3, "{cool:?}");
    assert_eq!(scalar_i64(&out, "SELECT count(*) FROM quarantine"), 0);
}

#[test]
fn rows_before_the_first_fix_with_a_western_offset() {
    // Own example: GMT-05:00 — the +08:00 reading was 13 h off. 18:57:50 at -05:00 = 23:57:50Z.
    let t = tempfile::tempdir().unwrap();
    let csv = torque_pt_with_unfixed_first_row(t.path(), "GMT-05:00");
    let out = t.path().join("tables");
    let s = ingest_torque(&out, &csv);
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = q(
        &out,
        "SELECT sampled_at FROM obd_samples ORDER BY source_offset",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        [
            "2026-08-05T23:57:50Z",
            "2026-08-05T23:57:56.813Z",
            "2026-08-05T23:58:20.818Z"
        ]
    );
}

#[test]
fn held_rows_keep_order_with_quarantined_rows_between_and_later_gaps_keep_the_last_offset() {
    // Own example: three rows without a fix (one of them bad), then a fix at +05:30, then a
    // row without a fix (last offset seen), then a fix at +01:00. Rows + quarantine = records.
    let t = tempfile::tempdir().unwrap();
    let csv = write(
        t.path(),
        "gaps.csv",
        "GPS Time, Device Time,Engine RPM(rpm)\n\
         -,05-ago.-2026 10:00:00.0,800\n\
         -,05-ago.-2026 10:00:01.0,fast\n\
         -,05-ago.-2026 10:00:02.0,802\n\
         Wed Aug 05 10:00:03 GMT+05:30 2026,05-ago.-2026 10:00:03.0,803\n\
         -,05-ago.-2026 10:00:04.0,804\n\
         Wed Aug 05 10:00:05 GMT+01:00 2026,05-ago.-2026 10:00:05.0,805\n",
    );
    let out = t.path().join("tables");
    let s = ingest_torque(&out, &csv);
    assert!(s.contains("quarantined:  1"), "{s}");
    let r = q(
        &out,
        "SELECT sampled_at, engine_rpm FROM obd_samples ORDER BY source_offset",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        [
            "2026-08-05T04:30:00Z",
            "2026-08-05T04:30:02Z",
            "2026-08-05T04:30:03Z",
            "2026-08-05T04:30:04Z",
            "2026-08-05T09:00:05Z"
        ]
    );
    assert_eq!(
        col(&r, "engine_rpm"),
        ["800.0", "802.0", "803.0", "804.0", "805.0"]
    );
    let qr = q(&out, "SELECT source_line, reason FROM quarantine");
    assert_eq!(col(&qr, "source_line"), ["3"]);
    assert!(col(&qr, "reason")[0].contains("engine_rpm"), "{qr:?}");
}

#[test]
fn a_log_without_any_offset_is_read_in_the_configured_zone() {
    // Own example: no GPS fix at all: +08:00 (the mapping's utc_offset), as before.
    let t = tempfile::tempdir().unwrap();
    let csv = write(
        t.path(),
        "nofix.csv",
        "GPS Time, Device Time,Engine RPM(rpm)\n\
         -,05-ago.-2026 18:57:50.0,800\n\
         -,05-ago.-2026 18:57:51.0,801\n",
    );
    let out = t.path().join("tables");
    let s = ingest_torque(&out, &csv);
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = q(
        &out,
        "SELECT sampled_at FROM obd_samples ORDER BY source_offset",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        ["2026-08-05T10:57:50Z", "2026-08-05T10:57:51Z"]
    );
}

#[test]
fn ndjson_records_before_the_first_offset_wait_for_it() {
    // Own example: the same mapping on NDJSON (keys are the Torque column names).
    let t = tempfile::tempdir().unwrap();
    let nd = write(
        t.path(),
        "torque.ndjson",
        "{\"GPS Time\":\"-\",\"Device Time\":\"05-ago.-2026 18:57:50.000\",\"Engine RPM(rpm)\":1728}\n\
         {\"GPS Time\":\"Wed Aug 05 18:57:56 GMT-03:00 2026\",\"Device Time\":\"05-ago.-2026 18:57:56.813\",\"Engine RPM(rpm)\":1730}\n",
    );
    let out = t.path().join("tables");
    let s = ingest_torque_as(&out, "ndjson", "LZZ5ELSDXND999901", nd.to_str().unwrap());
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = q(
        &out,
        "SELECT sampled_at FROM obd_samples ORDER BY source_offset",
    );
    assert_eq!(
        col(&r, "sampled_at"),
        ["2026-08-05T21:57:50Z", "2026-08-05T21:57:56.813Z"]
    );
}

/// Collects what the readers pass on: (line, sampled_at ms) per record, errors, notices.
#[derive(Default)]
struct Collect {
    ok: Vec<(u64, Option<i64>)>,
    bad: Vec<u64>,
    notices: Vec<String>,
}

impl plumewatch::decode::text::Handler for Collect {
    fn on_record(
        &mut self,
        rec: &plumewatch::decode::record::Record,
        pos: &plumewatch::decode::text::SourcePos<'_>,
        _: &[u8],
    ) {
        self.ok.push((
            pos.line,
            rec.time(plumewatch::decode::fields::obd::SLOT_SAMPLED_AT),
        ));
    }
    fn on_error(
        &mut self,
        _: plumewatch::decode::record::FieldError,
        pos: &plumewatch::decode::text::SourcePos<'_>,
        _: &[u8],
    ) {
        self.bad.push(pos.line);
    }
    fn on_notice(&mut self, _: &plumewatch::decode::text::SourcePos<'_>, message: &str) {
        self.notices.push(message.to_string());
    }
}

#[test]
fn the_wait_is_bounded_then_the_configured_zone_with_a_notice() {
    use plumewatch::decode::{
        fields::OBD_FIELDS,
        mapping::Mapping,
        text::{NdjsonDecoder, ReadOptions, read_csv_with, read_ndjson_with},
    };
    let path = repo("fixtures/mappings/torque.toml");
    let m = Mapping::load(&path).unwrap();
    let cm = Mapping::compile(Some(&m), OBD_FIELDS, "torque.toml").unwrap();
    let opts = ReadOptions {
        max_held_records: 2,
        ..ReadOptions::default()
    };
    // Three rows without a fix (more than 2 held), then one at +01:00, then one without.
    let csv = "GPS Time, Device Time,Engine RPM(rpm)\n\
               -,05-ago.-2026 18:00:00.0,800\n\
               -,05-ago.-2026 18:00:01.0,801\n\
               -,05-ago.-2026 18:00:02.0,802\n\
               -,05-ago.-2026 18:00:03.0,803\n\
               Wed Aug 05 18:00:04 GMT+01:00 2026,05-ago.-2026 18:00:04.0,804\n\
               -,05-ago.-2026 18:00:05.0,805\n";
    let mut c = Collect::default();
    let n = read_csv_with(&cm, OBD_FIELDS, &mut csv.as_bytes(), "t.csv", &opts, &mut c).unwrap();
    assert_eq!(n, 6);
    // 2026-08-05T18:00:00 as UTC ms = 1_785_952_800_000; +08:00 → −8 h, +01:00 → −1 h.
    let local = |s: i64| 1_785_952_800_000 + s * 1000;
    let at8 = |s: i64| Some(local(s) - 8 * 3_600_000);
    let at1 = |s: i64| Some(local(s) - 3_600_000);
    assert_eq!(
        c.ok,
        [
            (2, at8(0)),
            (3, at8(1)),
            (4, at8(2)),
            (5, at8(3)),
            (6, at1(4)),
            (7, at1(5))
        ]
    );
    assert!(c.bad.is_empty());
    assert_eq!(c.notices.len(), 1, "{:?}", c.notices);
    assert!(
        c.notices[0].contains("first 3 records (up to line 4)"),
        "{}",
        c.notices[0]
    );

    // NDJSON: the same bound (by bytes this time: 1 byte holds one record, then gives up).
    let nd = "{\"GPS Time\":\"-\",\"Device Time\":\"05-ago.-2026 18:00:00.0\"}\n\
              {\"GPS Time\":\"-\",\"Device Time\":\"05-ago.-2026 18:00:01.0\"}\n\
              {\"GPS Time\":\"GMT+01:00\",\"Device Time\":\"05-ago.-2026 18:00:02.0\"}\n";
    let opts = ReadOptions {
        max_held_bytes: 1,
        ..ReadOptions::default()
    };
    let mut dec = NdjsonDecoder::new(cm.clone(), OBD_FIELDS);
    let mut c = Collect::default();
    read_ndjson_with(&mut dec, &mut nd.as_bytes(), "t.ndjson", &opts, &mut c).unwrap();
    assert_eq!(c.ok, [(1, at8(0)), (2, at8(1)), (3, at1(2))]);
    assert_eq!(c.notices.len(), 1, "{:?}", c.notices);
    // Without a bound reached, the held NDJSON records take +01:00.
    let mut dec = NdjsonDecoder::new(cm, OBD_FIELDS);
    let mut c = Collect::default();
    read_ndjson_with(
        &mut dec,
        &mut nd.as_bytes(),
        "t.ndjson",
        &ReadOptions::default(),
        &mut c,
    )
    .unwrap();
    assert_eq!(c.ok, [(1, at1(0)), (2, at1(1)), (3, at1(2))]);
    assert!(c.notices.is_empty());
}
