//! Remote OBD end to end through the binary: Torque logs through `fixtures/mappings/torque.toml`,
//! a labelled fleet as HJ 1239 frames → tables → detections per class, `gas-twc-suspects`,
//! `inspect-frame`, `plot`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

#[test]
fn torque_logs_read_through_the_mapping_and_the_healthy_one_gives_no_detection() {
    let Some(healthy) = shared("obd/torque_petrol_2022_warm_healthy.csv") else {
        return;
    };
    let Some(golf) = shared("obd/torque_golf_2007_borderline.csv") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let o = t.path().to_str().unwrap();
    let mapping = repo("fixtures/mappings/torque.toml");
    let m = mapping.to_str().unwrap();
    for (log, vin, records) in [
        (&healthy, "LTORQUEHEALTHY001", 2662),
        (&golf, "LTORQUEGOLF000001", 1801),
    ] {
        let s = ok(&[
            "ingest",
            "--stream",
            "obd",
            "--format",
            "csv",
            "--mapping",
            m,
            "--vin",
            vin,
            "--out",
            o,
            log.to_str().unwrap(),
        ]);
        assert!(
            s.contains(&format!("records in:   {records}")) && s.contains("quarantined:  0"),
            "{s}"
        );
        let dups = if records == 1801 { 152 } else { 0 };
        assert_eq!(
            s.contains(&format!("not stored): {dups} (0 with different values")),
            dups > 0,
            "{s}"
        );
    }
    // Values read with units: the healthy log's rear sensor median is ~0.76 V warm (data README);
    // the Golf's speed column is mph, converted to km/h.
    let r = rows(&sql(
        t.path(),
        "SELECT vin, count(*) AS n, count(rear_o2_v) AS rear, count(upstream_lambda) AS lam, max(speed_kmh) AS vmax, \
         min(sampled_at) AS t0 FROM obd_samples GROUP BY vin ORDER BY vin",
    ));
    let golf_row = &r[0];
    let healthy_row = &r[1];
    assert_eq!(healthy_row["n"].as_deref(), Some("2662"));
    assert!(
        healthy_row["rear"]
            .as_deref()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 2000
    );
    assert!(
        healthy_row["t0"]
            .as_deref()
            .unwrap()
            .starts_with("2022-02-22T22:34:27.403"),
        "{healthy_row:?}"
    ); // 06:34:27.403 +08:00
    // 152 of the Golf's 1801 rows repeat the previous row exactly (same Device Time, same
    // values): stored once, counted as duplicates (key VIN, collection time, info type).
    assert_eq!(golf_row["n"].as_deref(), Some("1649"));
    assert!(golf_row["lam"].as_deref().unwrap().parse::<i64>().unwrap() > 1000);
    // Zero detections on both (healthy; borderline below the thresholds).
    assert_eq!(scalar_i64(t.path(), "SELECT count(*) FROM detections"), 0);
}

#[test]
fn fleet_as_frames_detects_each_fault_class_and_lists_gas_suspects() {
    let t = tempfile::tempdir().unwrap();
    let frames = t.path().join("fleet.hj1239");
    let f = frames.to_str().unwrap();
    let g = ok(&[
        "gen",
        "frames",
        "--vehicles",
        "36",
        "--minutes",
        "30",
        "--seed",
        "5",
        "--out",
        f,
    ]);
    let generated: i64 = g.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(generated > 36 * 29 * 60, "{g}");
    let out = t.path().join("tables");
    let o = out.to_str().unwrap();
    let vehicles = t.path().join("fleet.vehicles.csv");
    ok(&[
        "ingest",
        "--stream",
        "vehicles",
        "--format",
        "csv",
        "--out",
        o,
        vehicles.to_str().unwrap(),
    ]);
    let s = ok(&[
        "ingest", "--stream", "obd", "--format", "hj1239", "--out", o, f,
    ]);
    assert!(s.contains("quarantined:  0"), "{s}");
    assert_eq!(
        scalar_i64(&out, "SELECT count(*) FROM obd_samples"),
        generated
    );
    // Labels: vin → expected rules.
    let labels = std::fs::read_to_string(t.path().join("fleet.labels.csv")).unwrap();
    let mut expect: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in labels.lines().skip(1) {
        let c: Vec<_> = l.split(',').collect();
        expect.insert(
            c[0].to_string(),
            c[2].split(';')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect(),
        );
    }
    let got_rows = rows(&sql(&out, "SELECT DISTINCT vin, rule_id FROM detections"));
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &got_rows {
        got.entry(r["vin"].clone().unwrap())
            .or_default()
            .insert(r["rule_id"].clone().unwrap());
    }
    // Every flagged vehicle is flagged for its own fault only (precision 1 on this fleet), and
    // every faulty vehicle is found except at most one (recall ≥ 0.95 overall).
    let mut missed = 0;
    for (vin, rules) in &expect {
        let g = got.get(vin).cloned().unwrap_or_default();
        assert!(g.is_subset(rules), "{vin}: expected {rules:?}, got {g:?}");
        if !rules.is_empty() && g.is_empty() {
            missed += 1;
        }
    }
    let faulty = expect.values().filter(|r| !r.is_empty()).count();
    assert!(faulty >= 10, "{faulty}");
    assert!(
        missed as f64 <= 0.05 * faulty as f64 + 1.0,
        "missed {missed} of {faulty}"
    );

    // The list: one row per flagged registered China VI gas vehicle, with its plate.
    let list = ok(&[
        "list",
        "gas-twc-suspects",
        "--tables",
        o,
        "--format",
        "json",
    ]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(v.len(), got.len());
    for r in &v {
        assert!(r["plate"].as_str().is_some_and(|p| !p.is_empty()));
        let vin = r["vin"].as_str().unwrap();
        let n: i64 = [
            "rear_o2_flatline",
            "rear_o2_periodic",
            "rear_o2_mirrors_front",
            "dfco_no_lean",
            "rear_o2_missing",
        ]
        .iter()
        .map(|k| r[*k].as_i64().unwrap())
        .sum();
        assert_eq!(n, r["detections"].as_i64().unwrap(), "{vin}");
        // Typed evidence: the window start is a number (ms since the epoch, a 2020s instant).
        let ws = r["strongest_evidence"]["window_start_ms"].as_f64().unwrap();
        assert!(ws > 1.5e12 && ws < 2.0e12, "{ws}");
        assert!(r["last_seen_at"].is_string() || r["last_seen_at"].is_null());
    }

    // Evidence plot of a flagged vehicle: an SVG with its windows shaded.
    let vin = v[0]["vin"].as_str().unwrap();
    let svg = t.path().join("e.svg");
    let msg = ok(&["plot", vin, "--tables", o, "--out", svg.to_str().unwrap()]);
    assert!(msg.contains("1800 samples"), "{msg}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("upstream lambda") && text.contains("<rect"));
    let unknown = pw(&[
        "plot",
        "NOSUCHVIN",
        "--tables",
        o,
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert!(!unknown.status.success());
}

#[test]
fn inspect_frame_decodes_and_rejects() {
    // A logout frame (shared/data/frames hj_logout_LG6ZDANH7EY208182, copied as a literal).
    let out = ok(&[
        "inspect-frame",
        "2323044C47365A44414E4837455932303831383202010008140911132e34001A5E",
    ]);
    assert!(
        out.contains("LG6ZDANH7EY208182") && out.contains("logout"),
        "{out}"
    );
    // The same with a wrong BCC is rejected with the reason, exit code non-zero.
    let bad = pw(&[
        "inspect-frame",
        "2323044C47365A44414E4837455932303831383202010008140911132e34001A5F",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("BCC"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // A generated TWC frame as JSON uses the table's column names.
    let s = plumewatch::decode::hj1239::StreamSample {
        info_type: 3,
        collected_at: plumewatch::decode::hj1239::FrameTime::from_unix_ms_utc8(1_790_784_000_000),
        speed_kmh: Some(50.0),
        rear_o2_v: Some(0.62),
        upstream_lambda: Some(1.0),
        ..Default::default()
    };
    let f = plumewatch::decode::hj1239::encode_twc_realtime_frame(
        "LSYN0010000000007",
        s.collected_at.unwrap(),
        1,
        &[s],
    );
    let j = ok(&["inspect-frame", &hex::encode(&f), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    let sample = &v["obd_samples"][0];
    assert_eq!(sample["vin"], "LSYN0010000000007");
    assert_eq!(sample["speed_kmh"], 50.0);
    assert_eq!(sample["rear_o2_v"], 0.62);
    assert!((sample["upstream_lambda"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    assert_eq!(sample["sampled_at"], "2026-09-30T16:00:00+00:00");
}
