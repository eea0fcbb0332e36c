//! Repeatable ingest, natural keys, registry snapshots, alerts people can act on and the
//! operations of `run` (issue 9 items 4, 6, 7; issue 10 items 4, 6). Field case:
//! `ingest-twice-doubles` (fixtures/field-cases/ingest-twice-doubles).

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::*;
use plumewatch::run::config::RunConfig;

fn bin() -> Command {
    Command::new(bin_path())
}

fn count(dir: &Path, q: &str) -> i64 {
    scalar_i64(dir, q)
}

fn parquet_files(dir: &Path) -> Vec<String> {
    fn walk(d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p.display().to_string());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, &mut v);
    v.sort();
    v
}

// ---------------------------------------------------------------- repeatable ingest

/// The field case: the same file twice gives n 2, d 2, fail 1, pass 1; the second run says
/// it skipped the file and exits 0.
#[test]
fn field_case_ingest_twice_stores_each_pass_once() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    let input = repo("fixtures/field-cases/ingest-twice-doubles/passes.ndjson");
    let (ok1, s1, _) = ingest(&out, "rsd", "ndjson", &input, &[]);
    assert!(ok1 && s1.contains("rsd_passes    2"), "{s1}");
    let (ok2, s2, e2) = ingest(&out, "rsd", "ndjson", &input, &[]);
    assert!(ok2, "{e2}");
    assert!(
        s2.contains("skipped") && s2.contains("same content"),
        "{s2}"
    );
    assert!(s2.contains("--force"), "{s2}");
    let r = rows(&sql(
        &out,
        "SELECT count(*) AS n, count(DISTINCT pass_id) AS d FROM rsd_passes",
    ));
    assert_eq!(r[0]["n"].as_deref(), Some("2"));
    assert_eq!(r[0]["d"].as_deref(), Some("2"));
    let v = rows(&sql(
        &out,
        "SELECT verdict, count(*) AS n FROM rsd_passes GROUP BY 1 ORDER BY 1",
    ));
    let got: Vec<(String, String)> = v
        .iter()
        .map(|r| (r["verdict"].clone().unwrap(), r["n"].clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![("fail".into(), "1".into()), ("pass".into(), "1".into())]
    );
    let files = parquet_files(&out.join("rsd_passes"));
    assert_eq!(files.len(), 1, "{files:?}");
    // The ingest is in the manifest with the content hash and byte range.
    let entries = plumewatch::sink::manifest::read_all(&out).unwrap();
    let len = std::fs::metadata(&input).unwrap().len();
    let i = entries
        .iter()
        .flat_map(|e| e.inputs.iter())
        .find(|i| i.stream == "rsd")
        .expect("input recorded");
    assert_eq!((i.bytes_from, i.bytes_to), (0, len));
    assert_eq!(i.sha256.len(), 64);
}

/// `--force` reads the file again; every key is known with the same content: nothing is
/// written twice and the summary says so.
#[test]
fn forced_reingest_writes_no_key_twice() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    let input = repo("fixtures/field-cases/ingest-twice-doubles/passes.ndjson");
    assert!(ingest(&out, "rsd", "ndjson", &input, &[]).0);
    let (ok, s, e) = ingest(&out, "rsd", "ndjson", &input, &["--force"]);
    assert!(ok, "{e}");
    assert!(s.contains("rsd_passes    0 new, 2 already present"), "{s}");
    assert_eq!(count(&out, "SELECT count(*) FROM rsd_passes"), 2);
    assert_eq!(count(&out, "SELECT count(*) FROM quarantine"), 0);
}

/// Another file carrying known keys (same pass, other spelling and order) and a new one
/// stores only the new one; a known key with different content is quarantined naming both
/// versions and the stored row is unchanged.
#[test]
fn other_file_with_known_keys_stores_only_new_and_reports_conflicts() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    let input = repo("fixtures/field-cases/ingest-twice-doubles/passes.ndjson");
    assert!(ingest(&out, "rsd", "ndjson", &input, &[]).0);
    let b = t.path().join("b.ndjson");
    std::fs::write(
        &b,
        concat!(
            // t1 again: fields in another order, time with an offset (the same instant).
            "{\"co_co2_ratio\":0.5,\"pass_id\":\"t1\",\"passed_at\":\"2025-11-08T10:00:00+08:00\",\"site_id\":\"A110119001\",\"plate\":\"苏E9Z971\",\"plate_color\":\"blue\",\"fuel\":\"petrol\",\"speed_kmh\":40,\"accel_mps2\":0.2}\n",
            // t3: new.
            "{\"pass_id\":\"t3\",\"passed_at\":\"2025-11-08T04:00:00Z\",\"site_id\":\"A110119001\",\"plate\":\"苏E9Z973\",\"plate_color\":\"blue\",\"fuel\":\"petrol\",\"speed_kmh\":40,\"accel_mps2\":0.2,\"co_co2_ratio\":0.01}\n",
            // t2 with another CO/CO2 ratio: a conflict, not a silent drop or overwrite.
            "{\"pass_id\":\"t2\",\"passed_at\":\"2025-11-08T03:00:00Z\",\"site_id\":\"A110119001\",\"plate\":\"苏E9Z972\",\"plate_color\":\"blue\",\"fuel\":\"petrol\",\"speed_kmh\":40,\"accel_mps2\":0.2,\"co_co2_ratio\":0.3}\n",
        ),
    )
    .unwrap();
    let (ok, s, e) = ingest(&out, "rsd", "ndjson", &b, &[]);
    assert!(ok, "{e}");
    assert!(s.contains("rsd_passes    1 new, 1 already present"), "{s}");
    assert!(s.contains("key conflicts: 1"), "{s}");
    assert!(s.contains("records in:   3"), "{s}");
    assert!(s.contains("quarantined:  1"), "{s}");
    let r = rows(&sql(
        &out,
        "SELECT pass_id, co_co2_ratio FROM rsd_passes ORDER BY pass_id",
    ));
    let got: Vec<(String, String)> = r
        .iter()
        .map(|r| {
            (
                r["pass_id"].clone().unwrap(),
                r["co_co2_ratio"].clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("t1".into(), "0.5".into()),
            ("t2".into(), "0.01".into()),
            ("t3".into(), "0.01".into())
        ]
    );
    let q = rows(&sql(
        &out,
        "SELECT stream, field, reason, source_file, source_offset FROM quarantine",
    ));
    assert_eq!(q.len(), 1);
    let reason = q[0]["reason"].clone().unwrap();
    assert_eq!(q[0]["field"].as_deref(), Some("pass_id"));
    assert!(reason.contains("pass_id=t2"), "{reason}");
    assert!(
        reason.contains("co_co2_ratio: stored 0.01, new 0.3"),
        "{reason}"
    );
    // Both versions named by their source.
    assert!(reason.contains("passes.ndjson at byte"), "{reason}");
    assert!(reason.contains("b.ndjson at byte"), "{reason}");
    assert!(
        q[0]["source_file"]
            .as_deref()
            .unwrap()
            .ends_with("b.ndjson")
    );
}

/// Own examples, other streams: plate reads by `read_id`, OBD samples by (VIN, collection
/// time, info type) — a sample at the same time with another info type is another row —
/// and a registry export listing one vehicle twice.
#[test]
fn every_stream_keeps_its_key_unique() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    let r1 = t.path().join("reads1.ndjson");
    let r2 = t.path().join("reads2.ndjson");
    let read = |id: &str, plate: &str| {
        format!(
            "{{\"read_id\":\"{id}\",\"read_at\":\"2026-10-03T08:00:00+08:00\",\"site_id\":\"S1\",\"plate\":\"{plate}\"}}\n"
        )
    };
    std::fs::write(&r1, read("r1", "冀A12345") + &read("r2", "冀B54321")).unwrap();
    // r2 again (same content), r1 again inside the same file twice, r3 new.
    std::fs::write(
        &r2,
        read("r3", "冀C11111") + &read("r2", "冀B54321") + &read("r3", "冀C11111"),
    )
    .unwrap();
    assert!(ingest(&out, "plates", "ndjson", &r1, &[]).0);
    let (ok, s, _) = ingest(&out, "plates", "ndjson", &r2, &[]);
    assert!(ok);
    assert!(s.contains("plate_reads   1 new, 2 already present"), "{s}");
    assert_eq!(count(&out, "SELECT count(*) FROM plate_reads"), 3);
    assert_eq!(
        count(&out, "SELECT count(DISTINCT read_id) FROM plate_reads"),
        3
    );

    let o1 = t.path().join("obd1.ndjson");
    let o2 = t.path().join("obd2.ndjson");
    let sample = |at: &str, info: u8, rpm: u32| {
        format!(
            "{{\"vin\":\"LZZ1CCND0JW000001\",\"sampled_at\":\"{at}\",\"info_type\":{info},\"engine_rpm\":{rpm}}}\n"
        )
    };
    std::fs::write(
        &o1,
        sample("2026-10-03T00:00:00Z", 2, 800) + &sample("2026-10-03T00:00:01Z", 2, 810),
    )
    .unwrap();
    std::fs::write(
        &o2,
        sample("2026-10-03T00:00:01Z", 2, 810)
            + &sample("2026-10-03T00:00:01Z", 128, 810)
            + &sample("2026-10-03T00:00:02Z", 2, 820),
    )
    .unwrap();
    assert!(ingest(&out, "obd", "ndjson", &o1, &[]).0);
    let (ok, s, e) = ingest(&out, "obd", "ndjson", &o2, &[]);
    assert!(ok, "{e}");
    assert!(s.contains("obd_samples   2 new, 1 already present"), "{s}");
    assert_eq!(count(&out, "SELECT count(*) FROM obd_samples"), 4);

    let reg = t.path().join("reg.csv");
    std::fs::write(
        &reg,
        "plate,plate_color,vin,fuel,emission_standard,vehicle_type,registered_on\n冀A12345,yellow,LZZ1CCND0JW000001,diesel,国III,H11,2012-01-01\n冀A12345,yellow,LZZ1CCND0JW000001,diesel,国III,H11,2012-01-01\n冀A12345,blue,LSVAA4182E2000002,petrol,国VI,K33,2021-01-01\n",
    )
    .unwrap();
    let (ok, s, e) = ingest(&out, "vehicles", "csv", &reg, &[]);
    assert!(ok, "{e}");
    assert!(s.contains("vehicles      2 new, 1 already present"), "{s}");
    assert_eq!(count(&out, "SELECT count(*) FROM vehicles"), 2);
}

// ---------------------------------------------------------------- registry snapshots

/// A new registry export replaces the previous one (kept as a dated version outside the
/// table), and the China III list judges sightings made before the update by the update.
#[test]
fn registry_is_a_snapshot_and_lists_use_the_current_one() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    let head = "plate,plate_color,vin,fuel,emission_standard,vehicle_type,registered_on\n";
    let v1 = t.path().join("v1.csv");
    let v2 = t.path().join("v2.csv");
    std::fs::write(
        &v1,
        format!("{head}冀A12345,yellow,LZZ1CCND0JW000001,diesel,国V,H11,2016-01-01\n冀B00002,yellow,LZZ1CCND0JW000002,diesel,国III,H21,2011-01-01\n"),
    )
    .unwrap();
    // The registry was corrected: 冀A12345 is China III; 冀B00002 was re-registered as China VI.
    std::fs::write(
        &v2,
        format!("{head}冀A12345,yellow,LZZ1CCND0JW000001,diesel,国III,H11,2011-06-01\n冀B00002,yellow,LZZ1CCND0JW000002,diesel,国VI,H21,2021-01-01\n"),
    )
    .unwrap();
    assert!(ingest(&out, "vehicles", "csv", &v1, &[]).0);
    let reads = t.path().join("reads.ndjson");
    std::fs::write(
        &reads,
        "{\"read_id\":\"r1\",\"read_at\":\"2026-10-03T08:00:00+08:00\",\"site_id\":\"S1\",\"plate\":\"冀A12345\",\"plate_color\":\"yellow\"}\n{\"read_id\":\"r2\",\"read_at\":\"2026-10-03T09:00:00+08:00\",\"site_id\":\"S2\",\"plate\":\"冀B00002\",\"plate_color\":\"yellow\"}\n",
    )
    .unwrap();
    assert!(ingest(&out, "plates", "ndjson", &reads, &[]).0);
    let listed = |out: &Path| -> Vec<(String, String)> {
        let v: Vec<serde_json::Value> = serde_json::from_str(&ok(&[
            "list",
            "china3-diesel",
            "--tables",
            out.to_str().unwrap(),
            "--format",
            "json",
        ]))
        .unwrap();
        v.iter()
            .map(|r| {
                (
                    r["plate"].as_str().unwrap().to_string(),
                    r["sightings"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        listed(&out),
        vec![("冀B00002".to_string(), "1".to_string())]
    );

    let (ok2, s, e) = ingest(&out, "vehicles", "csv", &v2, &[]);
    assert!(ok2, "{e}");
    assert!(s.contains("vehicles      2"), "{s}");
    // Only the current snapshot is in `vehicles`.
    assert_eq!(count(&out, "SELECT count(*) FROM vehicles"), 2);
    assert_eq!(
        count(
            &out,
            "SELECT emission_standard FROM vehicles WHERE plate = '冀A12345'"
        ),
        3
    );
    // The old one is kept as a dated version.
    let versions = parquet_files(&out.join("_versions/vehicles"));
    assert_eq!(versions.len(), 1, "{versions:?}");
    // Seen before the update, judged by it: 冀A12345 listed, 冀B00002 no longer.
    assert_eq!(
        listed(&out),
        vec![("冀A12345".to_string(), "1".to_string())]
    );
    // The same export again: skipped, still one snapshot of two vehicles.
    let (_, s3, _) = ingest(&out, "vehicles", "csv", &v2, &[]);
    assert!(s3.contains("skipped"), "{s3}");
    assert_eq!(count(&out, "SELECT count(*) FROM vehicles"), 2);
    // Forced: replaced by itself, still two vehicles, one more dated version.
    assert!(ingest(&out, "vehicles", "csv", &v2, &["--force"]).0);
    assert_eq!(count(&out, "SELECT count(*) FROM vehicles"), 2);
    assert_eq!(parquet_files(&out.join("_versions/vehicles")).len(), 2);
}

// ---------------------------------------------------------------- alerts

const REGISTRY: &str = "plate,plate_color,vin,fuel,emission_standard,vehicle_type,registered_on\n冀A12345,yellow,LZZ1CCND0JW000001,diesel,国III,H11,2011-06-01\n冀B54321,yellow,LZZ1CCND0JW000002,diesel,国VI,H11,2021-06-01\n";

fn file_run_config(tables: &Path, files: &[(&str, &Path)], extra: &str) -> RunConfig {
    let files: Vec<String> = files
        .iter()
        .map(|(s, p)| {
            format!(
                "[[files]]\nstream = \"{s}\"\npath = {:?}\n",
                p.display().to_string()
            )
        })
        .collect();
    let text = format!(
        "tables = {:?}\ninstance_id = \"t\"\nidle_exit_ms = 300\n{}\n{extra}",
        tables.display().to_string(),
        files.join("")
    );
    toml::from_str(&text).unwrap()
}

/// The first read of a registered China III truck at an entrance alerts (issue 10 item 6);
/// repeats at that entrance within the window do not (issue 9: 3,238 alerts for one plate);
/// another entrance does; the alert is stored in `alerts` with what a patrol needs.
#[test]
fn entrance_alerts_first_read_once_per_window_and_stored() {
    let t = tempfile::tempdir().unwrap();
    let tables = t.path().join("tables");
    let reg = t.path().join("reg.csv");
    std::fs::write(&reg, REGISTRY).unwrap();
    assert!(ingest(&tables, "vehicles", "csv", &reg, &[]).0);
    let reads = t.path().join("reads.ndjson");
    let mut text = String::new();
    // Six reads, one a minute, at E1 from 08:00 local; one at E2; one unlisted truck.
    for i in 0..6 {
        text += &format!(
            "{{\"read_id\":\"r{i}\",\"read_at\":\"2026-10-03T08:0{i}:00+08:00\",\"site_id\":\"E1\",\"plate\":\"冀A12345\",\"plate_color\":\"yellow\"}}\n"
        );
    }
    text += "{\"read_id\":\"r7\",\"read_at\":\"2026-10-03T08:03:30+08:00\",\"site_id\":\"E2\",\"plate\":\"冀A12345\",\"plate_color\":\"yellow\"}\n";
    text += "{\"read_id\":\"r8\",\"read_at\":\"2026-10-03T08:04:00+08:00\",\"site_id\":\"E1\",\"plate\":\"冀B54321\",\"plate_color\":\"yellow\"}\n";
    // Eleven minutes after the first: a new window.
    text += "{\"read_id\":\"r9\",\"read_at\":\"2026-10-03T08:11:00+08:00\",\"site_id\":\"E1\",\"plate\":\"冀A12345\",\"plate_color\":\"yellow\"}\n";
    std::fs::write(&reads, text).unwrap();
    let alerts = t.path().join("alerts.ndjson");
    let mut cfg = file_run_config(&tables, &[("plates", &reads)], "");
    cfg.alerts.ndjson = Some(alerts.display().to_string());
    cfg.alerts.kinds = vec!["entrance_alert".into()];
    cfg.sites.urban_entrances = vec!["E1".into(), "E2".into()];
    let s = plumewatch::run::run(cfg, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(s.records_in, 9);
    assert_eq!(s.alerts_suppressed, 5, "{s}");
    let sent: Vec<serde_json::Value> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: Vec<(String, String)> = sent
        .iter()
        .map(|a| {
            (
                a["source_key"].as_str().unwrap().to_string(),
                a["site_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("r0".to_string(), "E1".to_string()),
            ("r7".to_string(), "E2".to_string()),
            ("r9".to_string(), "E1".to_string())
        ]
    );
    let r = rows(&sql(
        &tables,
        "SELECT detection_id, plate, plate_color, vehicle_type, vin, site_id, seen_at_local, array_to_string(reasons, ',') AS reasons, source_key FROM alerts ORDER BY seen_at",
    ));
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["plate"].as_deref(), Some("冀A12345"));
    assert_eq!(r[0]["plate_color"].as_deref(), Some("yellow"));
    assert_eq!(r[0]["vehicle_type"].as_deref(), Some("H11"));
    assert_eq!(r[0]["vin"].as_deref(), Some("LZZ1CCND0JW000001"));
    assert_eq!(r[0]["site_id"].as_deref(), Some("E1"));
    assert_eq!(
        r[0]["seen_at_local"].as_deref(),
        Some("2026-10-03 08:00:00+08:00")
    );
    assert_eq!(r[0]["reasons"].as_deref(), Some("china3-diesel"));
    assert_eq!(r[0]["source_key"].as_deref(), Some("r0"));
    assert_eq!(
        r[0]["detection_id"].as_deref(),
        Some(plumewatch::detect::china3::detection_id("entrance_alert", "plates", "r0").as_str())
    );
    assert_eq!(
        sent[0]["detection_id"],
        r[0]["detection_id"].clone().unwrap()
    );
    assert_eq!(
        r[2]["seen_at_local"].as_deref(),
        Some("2026-10-03 08:11:00+08:00")
    );
}

// ---------------------------------------------------------------- operations

/// A second process with the same instance id on the same tables exits at once with a
/// message, before recovery touches anything.
#[test]
fn run_takes_the_instance_lock_before_recovery() {
    let t = tempfile::tempdir().unwrap();
    let tables = t.path().join("tables");
    let input = repo("fixtures/field-cases/ingest-twice-doubles/passes.ndjson");
    std::fs::create_dir_all(tables.join("rsd_passes/date=2025-11-08")).unwrap();
    // A twin's file in flight: recovery would delete it as this instance's uncommitted file.
    let inflight = tables.join("rsd_passes/date=2025-11-08/.part-t-000000000000-00001.parquet.tmp");
    std::fs::write(&inflight, b"twin").unwrap();
    let held = plumewatch::sink::manifest::lock_instance(&tables, "t").unwrap();
    let t0 = Instant::now();
    let err = plumewatch::run::run(
        file_run_config(&tables, &[("rsd", &input)], ""),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("instance id 't' is already running"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(inflight.exists(), "recovery ran without the lock");
    drop(held);
    std::fs::remove_file(&inflight).unwrap();
    let s = plumewatch::run::run(
        file_run_config(&tables, &[("rsd", &input)], ""),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert_eq!(s.records_in, 2);
    // A second run over the same file after its offsets were lost writes no key twice.
    for e in std::fs::read_dir(tables.join("_manifest"))
        .unwrap()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "json") {
            let mut m =
                plumewatch::sink::manifest::parse_entry(&std::fs::read(e.path()).unwrap()).unwrap();
            m.positions.clear();
            std::fs::write(e.path(), serde_json::to_vec(&m).unwrap()).unwrap();
        }
    }
    let s2 = plumewatch::run::run(
        file_run_config(&tables, &[("rsd", &input)], ""),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    assert_eq!(s2.records_in, 2);
    assert_eq!(s2.already_present, 2, "{s2}");
    assert_eq!(count(&tables, "SELECT count(*) FROM rsd_passes"), 2);
}

/// SIGTERM stops `run` (commit, exit 0) while its source blocks reading stdin.
#[test]
fn sigterm_stops_run_blocked_on_stdin() {
    let t = tempfile::tempdir().unwrap();
    let tables = t.path().join("tables");
    let cfg = t.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "tables = {:?}\n[commit]\ninterval_ms = 200\n[[files]]\nstream = \"rsd\"\npath = \"-\"\n",
            tables.display().to_string()
        ),
    )
    .unwrap();
    let mut child = bin()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let line = std::fs::read_to_string(repo(
        "fixtures/field-cases/ingest-twice-doubles/passes.ndjson",
    ))
    .unwrap();
    stdin
        .write_all(line.lines().next().unwrap().as_bytes())
        .unwrap();
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    // Wait until the record is committed (a commit every 200 ms once running).
    let t_start = Instant::now();
    while plumewatch::sink::manifest::read_all(&tables)
        .map(|e| e.is_empty())
        .unwrap_or(true)
    {
        assert!(t_start.elapsed() < Duration::from_secs(30), "no commit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > Duration::from_secs(15) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(status) = status else {
        let _ = child.kill();
        panic!("run did not stop within 15 s of SIGTERM while stdin was open");
    };
    drop(stdin);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(count(&tables, "SELECT count(*) FROM rsd_passes"), 1);
}

/// The binary under test (`PLUMEWATCH_BIN` overrides it, to compare with another build).
fn bin_path() -> String {
    std::env::var("PLUMEWATCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_plumewatch").into())
}

/// Runs `run` as a child for `secs` with the given args, then SIGTERM; returns stderr.
fn run_child_for(args: &[&str], secs: u64, during: impl FnOnce()) -> String {
    let mut child = Command::new(bin_path())
        .arg("run")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    during();
    std::thread::sleep(Duration::from_secs(secs));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// A broker that is down: a few lines, not a line per retry (issue 9: 40 lines a second;
/// each error twice); no colour codes in a pipe. Two outages: a broker that never answers,
/// and a broker (MockCluster) that goes down while `run` consumes from it.
#[test]
fn kafka_broker_down_is_logged_once_per_state_without_colour() {
    let t = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tables = t.path().join("a");
    let err = run_child_for(
        &[
            "--tables",
            tables.to_str().unwrap(),
            "--brokers",
            &format!("127.0.0.1:{port}"),
            "--topic",
            "rsd=rsd",
        ],
        8,
        || {},
    );
    let lines = err.lines().filter(|l| l.contains("kafka")).count();
    assert!((1..=2).contains(&lines), "{lines} lines:\n{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI codes in piped stderr:\n{err}"
    );

    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    mock.create_topic("rsd", 1, 1).unwrap();
    let bs = mock.bootstrap_servers();
    let tables = t.path().join("b");
    let err = run_child_for(
        &[
            "--tables",
            tables.to_str().unwrap(),
            "--brokers",
            &bs,
            "--topic",
            "rsd=rsd",
        ],
        8,
        || {
            std::thread::sleep(Duration::from_secs(3));
            mock.broker_down(1).unwrap();
        },
    );
    let lines = err.lines().filter(|l| l.contains("kafka")).count();
    assert!(lines <= 4, "{lines} lines:\n{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI codes in piped stderr:\n{err}"
    );
}

/// `plumewatch query … | head`: the reader closing the pipe is not an error.
#[test]
fn closed_pipe_ends_quietly() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    let input = repo("fixtures/field-cases/ingest-twice-doubles/passes.ndjson");
    assert!(ingest(&out, "rsd", "ndjson", &input, &[]).0);
    let mut child = bin()
        .args([
            "query",
            "--tables",
            out.to_str().unwrap(),
            "--format",
            "csv",
            "SELECT a.pass_id, x FROM rsd_passes a CROSS JOIN unnest(range(0, 300000)) AS u(x)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{:?} {err}", o.status);
    assert!(err.is_empty(), "{err}");
}

/// An I/O error is said once, not once per layer.
#[test]
fn io_errors_are_printed_once() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.ndjson");
    let (ok, _, err) = ingest(&t.path().join("tables"), "rsd", "ndjson", &missing, &[]);
    assert!(!ok);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("missing.ndjson"), "{err}");
}

/// A plate listed while `run` runs is watched from then on: the registry that lists it is
/// ingested by another command mid-run; the read before gives no alert, the read after does.
#[test]
fn kafka_watchlist_is_refreshed_while_running() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    mock.create_topic("plates", 1, 1).unwrap();
    let bs = mock.bootstrap_servers();
    let t = tempfile::tempdir().unwrap();
    let tables = t.path().join("tables");
    std::fs::create_dir_all(&tables).unwrap();
    let alerts = t.path().join("alerts.ndjson");
    let cfg: RunConfig = toml::from_str(&format!(
        "tables = {:?}\ninstance_id = \"w\"\nidle_exit_ms = 2500\n[commit]\ninterval_ms = 200\n[alerts]\nndjson = {:?}\nkinds = [\"entrance_alert\"]\nwatchlist_refresh_ms = 200\n[sites]\nurban_entrances = [\"E1\"]\n[kafka]\nbrokers = \"{bs}\"\ngroup = \"g-refresh\"\ntopics = [{{ stream = \"plates\", topic = \"plates\" }}]\n",
        tables.display().to_string(),
        alerts.display().to_string()
    ))
    .unwrap();
    let runner = std::thread::spawn(move || {
        plumewatch::run::run(cfg, Arc::new(AtomicBool::new(false))).unwrap()
    });
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    let send = |id: &str| {
        let v = format!(
            "{{\"read_id\":\"{id}\",\"read_at\":\"2026-10-03T08:00:00+08:00\",\"site_id\":\"E1\",\"plate\":\"冀A12345\",\"plate_color\":\"yellow\"}}"
        );
        p.send(BaseRecord::to("plates").key("冀A12345").payload(&v))
            .unwrap();
        p.flush(Duration::from_secs(10)).unwrap();
    };
    let reads = |dir: &Path| {
        plumewatch::sink::manifest::read_all(dir)
            .unwrap_or_default()
            .iter()
            .flat_map(|e| e.files.iter())
            .filter(|f| f.table == "plate_reads")
            .map(|f| f.rows)
            .sum::<u64>()
    };
    send("r1");
    let t0 = Instant::now();
    while reads(&tables) < 1 {
        assert!(t0.elapsed() < Duration::from_secs(30), "r1 not committed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let reg = t.path().join("reg.csv");
    std::fs::write(&reg, REGISTRY).unwrap();
    assert!(ingest(&tables, "vehicles", "csv", &reg, &[]).0);
    std::thread::sleep(Duration::from_millis(1500));
    send("r2");
    let s = runner.join().unwrap();
    assert_eq!(s.records_in, 2);
    let text = std::fs::read_to_string(&alerts).unwrap_or_default();
    let sent: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 1, "{text}");
    assert_eq!(sent[0]["source_key"], "r2");
    // The registry came after `run` started: the listed vehicle's type comes with the list.
    assert_eq!(sent[0]["vehicle_type"], "H11", "{text}");
    assert_eq!(sent[0]["vin"], "LZZ1CCND0JW000001", "{text}");
}

/// A stray file in a table (tables-appledouble-file, found by a tester: a non-hidden
/// `junk.parquet`, or a valid copy `part (1).parquet`) is not read by the key index either,
/// as the query layer does not read it: the next ingest neither fails on a corrupt footer nor
/// takes the copy's keys as stored.
#[test]
fn stray_files_neither_break_ingest_nor_count_as_stored_keys() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("t");
    let case = repo("fixtures/field-cases/tables-appledouble-file");
    let (ok1, s1, e1) = ingest(&out, "rsd", "ndjson", &case.join("passes.ndjson"), &[]);
    assert!(ok1, "{s1}{e1}");
    let n0 = count(&out, "SELECT count(*) FROM rsd_passes");
    assert!(n0 >= 2, "{n0}");
    let part = out.join("rsd_passes/date=2025-11-08");
    let real = std::fs::read_dir(&part)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    std::fs::copy(case.join("appledouble.bin"), part.join("junk.parquet")).unwrap();
    // A valid copy of a committed file, holding the keys of passes not ingested yet.
    let more = t.path().join("more.ndjson");
    std::fs::write(
        &more,
        "{\"pass_id\":\"z9\",\"passed_at\":\"2025-11-08T05:00:00Z\",\"site_id\":\"A110119001\",\"plate\":\"苏E9Z981\",\"plate_color\":\"blue\",\"fuel\":\"petrol\",\"speed_kmh\":40,\"accel_mps2\":0.2,\"co_co2_ratio\":0.5}\n",
    )
    .unwrap();
    let side = t.path().join("side");
    let (ok2, s2, e2) = ingest(&side, "rsd", "ndjson", &more, &[]);
    assert!(ok2, "{s2}{e2}");
    let side_file = std::fs::read_dir(side.join("rsd_passes/date=2025-11-08"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    std::fs::copy(&side_file, part.join("part (1).parquet")).unwrap();
    assert!(real.is_file());
    // The next ingest reads the stray files neither for keys nor for the answer.
    let (ok3, s3, e3) = ingest(&out, "rsd", "ndjson", &more, &[]);
    assert!(ok3, "{s3}{e3}");
    assert!(!e3.contains("Corrupt footer"), "{e3}");
    assert!(
        s3.contains("rsd_passes    1"),
        "z9 is new, not 'already present': {s3}"
    );
    assert_eq!(count(&out, "SELECT count(*) FROM rsd_passes"), n0 + 1);
    assert_eq!(
        count(&out, "SELECT count(*) FROM rsd_passes WHERE pass_id = 'z9'"),
        1
    );
}

/// A registry re-ingest archives the previous snapshot; the query layer no longer warns
/// that the manifest's files of the old snapshot are "missing" (found by a tester: the
/// warning repeated on every later command and grew with each registry load).
#[test]
fn a_replaced_registry_is_not_reported_missing() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("t");
    let reg = repo("fixtures/field-cases/tables-appledouble-file/registry.ndjson");
    let (ok1, s1, e1) = ingest(&out, "vehicles", "ndjson", &reg, &[]);
    assert!(ok1, "{s1}{e1}");
    let (ok2, s2, e2) = ingest(&out, "vehicles", "ndjson", &reg, &["--force"]);
    assert!(ok2, "{s2}{e2}");
    assert!(
        std::fs::read_dir(out.join("_versions/vehicles"))
            .unwrap()
            .count()
            >= 1,
        "the first snapshot is kept as a version"
    );
    let o = pw(&[
        "query",
        "--tables",
        out.to_str().unwrap(),
        "SELECT count(*) AS n FROM vehicles",
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("missing"), "{err}");
    let (ok3, s3, e3) = ingest(
        &out,
        "rsd",
        "ndjson",
        &repo("fixtures/field-cases/tables-appledouble-file/passes.ndjson"),
        &[],
    );
    assert!(ok3, "{s3}{e3}");
    assert!(!e3.contains("missing"), "{e3}");
    assert_eq!(count(&out, "SELECT count(*) FROM vehicles"), 1);
}

/// A long input is committed every `commit_every` records, so the key index can forget what
/// is committed (its memory no longer grows with the input); keys stay unique across those
/// commits: a pass repeated after a commit is "already present", not written twice.
#[test]
fn intermediate_commits_keep_keys_unique() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("p.ndjson");
    let pass = |i: u32| {
        format!(
            "{{\"pass_id\":\"p{i}\",\"passed_at\":\"2025-11-08T02:{:02}:00Z\",\"site_id\":\"S1\",\"plate\":\"苏E9Z981\",\"plate_color\":\"blue\",\"fuel\":\"petrol\",\"speed_kmh\":40,\"accel_mps2\":0.2,\"co_co2_ratio\":0.01}}\n",
            i % 60
        )
    };
    let mut nd = String::new();
    for i in 0..25 {
        nd += &pass(i);
    }
    nd += &pass(3); // record 26: p3 again, after two commits
    std::fs::write(&input, nd).unwrap();
    let out = t.path().join("t");
    let limits = plumewatch::limits::LimitSet::default_set();
    let s = plumewatch::ingest::ingest(&plumewatch::ingest::IngestOptions {
        stream: plumewatch::pipeline::Stream::Rsd,
        format: plumewatch::ingest::Format::Ndjson,
        vin: None,
        mapping: None,
        limits: &limits,
        out: &out,
        inputs: &[input.display().to_string()],
        progress: false,
        max_record_bytes: plumewatch::decode::text::DEFAULT_MAX_RECORD_BYTES,
        force: false,
        commit_every: 10,
    })
    .unwrap();
    assert_eq!(s.records_in, 26);
    let text = s.to_string();
    assert!(
        text.contains("rsd_passes    25 new, 1 already present"),
        "{text}"
    );
    assert_eq!(count(&out, "SELECT count(*) FROM rsd_passes"), 25);
    assert_eq!(
        count(&out, "SELECT count(DISTINCT pass_id) FROM rsd_passes"),
        25
    );
    // Three manifest entries: after records 10 and 20, and the last one with the input's hash.
    let entries = std::fs::read_dir(out.join("_manifest"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(entries, 3);
    // The same file again is recognised as ingested (the last entry names it).
    let (ok2, s2, e2) = ingest(&out, "rsd", "ndjson", &input, &[]);
    assert!(ok2, "{s2}{e2}");
    assert!(s2.contains("skipped"), "{s2}");
}
