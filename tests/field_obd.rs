//! Field cases of issue 8, kinds 7 (HJ 1239 frames) and 8 (signal plausibility and the TWC
//! detectors), through the binary, with the values of each `case.md` and further examples of
//! the same kinds. Inputs: `fixtures/field-cases/<slug>/` (copied unchanged from
//! shared/field-cases, see fixtures/field-cases/README.md).

mod common;

use std::path::Path;

use common::*;
use plumewatch::decode::hj1239::{
    FrameTime, StreamSample, decode_frame, encode_frame, encode_twc_realtime_frame,
};

fn fixture(rel: &str) -> String {
    repo(&format!("fixtures/field-cases/{rel}"))
        .to_str()
        .unwrap()
        .to_string()
}

fn ingest_frames(out: &Path, file: &str) -> String {
    ok(&[
        "ingest",
        "--stream",
        "obd",
        "--format",
        "hj1239",
        "--out",
        out.to_str().unwrap(),
        file,
    ])
}

fn json_rows(out: &Path, q: &str) -> Vec<serde_json::Value> {
    let s = ok(&[
        "query",
        "--tables",
        out.to_str().unwrap(),
        "--format",
        "json",
        q,
    ]);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn suspects(out: &Path) -> Vec<serde_json::Value> {
    let s = ok(&[
        "list",
        "gas-twc-suspects",
        "--tables",
        out.to_str().unwrap(),
        "--param",
        "all_vehicles=true",
        "--format",
        "json",
    ]);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn close(v: &serde_json::Value, want: f64, tol: f64) {
    let x = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((x - want).abs() <= tol, "{x} != {want} ± {tol}");
}

fn sample(at: FrameTime, valid: Option<bool>, lon: Option<f64>, lat: Option<f64>) -> StreamSample {
    StreamSample {
        info_type: 3,
        collected_at: Some(at),
        speed_kmh: Some(40.0),
        engine_rpm: Some(1200.0),
        upstream_lambda: Some(1.0),
        rear_o2_v: Some(0.7),
        coolant_c: Some(85.0),
        position_valid: valid,
        lon_deg: lon,
        lat_deg: lat,
        ..Default::default()
    }
}

/// A type-0x03 frame whose position status byte and raw coordinates are given as sent.
fn frame_with_position(
    vin: &str,
    at: FrameTime,
    status: u8,
    lon_raw: u32,
    lat_raw: u32,
) -> Vec<u8> {
    let f = encode_twc_realtime_frame(vin, at, 1, &[sample(at, Some(true), Some(1.0), Some(1.0))]);
    // data unit: time 6 + seq 2 + type 1 + time 6 + body 30; position at body offset 17.
    let mut d = f[24..f.len() - 1].to_vec();
    let p = 8 + 1 + 6 + 17;
    d[p] = status;
    d[p + 1..p + 5].copy_from_slice(&lon_raw.to_be_bytes());
    d[p + 5..p + 9].copy_from_slice(&lat_raw.to_be_bytes());
    encode_frame(2, vin, 1, 1, &d).unwrap()
}

// ------------------------------------------------------------------------------------------
// Kind 7: HJ 1239 frames
// ------------------------------------------------------------------------------------------

/// obd-invalid-position-zero: status bit 0 set → lon/lat NULL (inspect-frame and table), the
/// list's last position is the valid 10:00:00 fix, every other field of frame 2 decodes.
#[test]
fn invalid_position_is_null_and_never_the_last_position() {
    let hex = std::fs::read_to_string(fixture("obd-invalid-position-zero/frames.hex")).unwrap();
    let line2 = hex.lines().nth(1).unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["inspect-frame", line2, "--format", "json"])).unwrap();
    let s = &j["obd_samples"][0];
    assert_eq!(s["position_valid"], false);
    assert!(s["lon_deg"].is_null() && s["lat_deg"].is_null(), "{s}");
    close(&s["speed_kmh"], 30.0, 1e-9);
    close(&s["engine_rpm"], 800.0, 1e-9);
    close(&s["upstream_lambda"], 1.0, 0.001);
    close(&s["rear_o2_v"], 0.75, 1e-9);

    let t = tempfile::tempdir().unwrap();
    let s = ingest_frames(t.path(), &fixture("obd-invalid-position-zero/frames.bin"));
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = json_rows(
        t.path(),
        "SELECT sampled_at, position_valid, lon_deg, lat_deg FROM obd_samples ORDER BY 1",
    );
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["position_valid"], true);
    close(&r[0]["lon_deg"], 113.264385, 1e-9);
    close(&r[0]["lat_deg"], 23.129112, 1e-9);
    assert_eq!(r[1]["position_valid"], false);
    assert!(
        r[1]["lon_deg"].is_null() && r[1]["lat_deg"].is_null(),
        "{:?}",
        r[1]
    );
    let l = suspects(t.path());
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["vin"], "LZZ5ELSDXND999901");
    assert_eq!(l[0]["obd_catalyst_dtc"], 1);
    close(&l[0]["last_lon_deg"], 113.264385, 1e-9);
    close(&l[0]["last_lat_deg"], 23.129112, 1e-9);
    // The ISO DTC keeps its failure-type and status bytes (P0139, 0x00, 0x08).
    let r = json_rows(
        t.path(),
        "SELECT dtcs[1] AS code, dtc_raw[1] AS raw, dtc_failure_type[1] AS ft, dtc_status[1] AS st, \
         dtc_cm[1] AS cm, dtc_oc[1] AS oc, array_length(dtc_status, 1) AS n FROM obd_reports",
    );
    assert_eq!(r[0]["code"], "P0139");
    assert_eq!(r[0]["raw"], "01390008");
    assert_eq!(r[0]["ft"], 0);
    assert_eq!(r[0]["st"], 8);
    assert!(r[0]["cm"].is_null() && r[0]["oc"].is_null(), "{:?}", r[0]);
    assert_eq!(r[0]["n"], 1);
}

/// Further examples of the kind: an invalid fix with stale non-zero coordinates, a "valid"
/// (0, 0), an unknown status byte (0xFF) and a southern/western valid fix; the last valid fix
/// wins in the list even when later samples are invalid.
#[test]
fn invalid_positions_of_other_shapes_are_null() {
    let at = |s: u8| FrameTime {
        year: 2025,
        month: 11,
        day: 8,
        hour: 10,
        minute: 0,
        second: s,
    };
    let vin = "LPOSTEST000000001";
    let frames = [
        frame_with_position(vin, at(0), 0x00, 116_400_000, 39_900_000), // valid Beijing
        frame_with_position(vin, at(1), 0x01, 113_000_000, 23_000_000), // invalid, stale coords
        frame_with_position(vin, at(2), 0x00, 0, 0),                    // "valid" (0, 0)
        frame_with_position(vin, at(3), 0xFF, 114_000_000, 30_000_000), // unknown status
        frame_with_position(vin, at(4), 0x06, 70_000_000, 33_000_000),  // valid, S and W
    ];
    let want: [(Option<bool>, Option<f64>, Option<f64>); 5] = [
        (Some(true), Some(116.4), Some(39.9)),
        (Some(false), None, None),
        (Some(true), None, None),
        (None, None, None),
        (Some(true), Some(-70.0), Some(-33.0)),
    ];
    let t = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for (f, w) in frames.iter().zip(want) {
        let j: serde_json::Value =
            serde_json::from_str(&ok(&["inspect-frame", &hex::encode(f), "--format", "json"]))
                .unwrap();
        let s = &j["obd_samples"][0];
        assert_eq!(s["position_valid"].as_bool(), w.0, "{s}");
        assert_eq!(s["lon_deg"].as_f64(), w.1, "{s}");
        assert_eq!(s["lat_deg"].as_f64(), w.2, "{s}");
        all.extend_from_slice(f);
    }
    // Only the Beijing fix and the S/W one are positions; last valid = the S/W one at :04.
    // Drop :04 to check that the invalid ones after Beijing never become the last position.
    let file = t.path().join("p.bin");
    let keep: Vec<u8> = frames[..4].concat();
    std::fs::write(&file, &keep).unwrap();
    let out = t.path().join("tables");
    ingest_frames(&out, file.to_str().unwrap());
    let n = scalar_i64(
        &out,
        "SELECT count(*) FROM obd_samples WHERE lon_deg IS NOT NULL OR lat_deg IS NOT NULL",
    );
    assert_eq!(n, 1);
    assert_eq!(
        scalar_i64(
            &out,
            "SELECT count(*) FROM obd_samples WHERE lon_deg = 0 OR lat_deg = 0"
        ),
        0
    );
}

/// obd-resend-duplicates: 13 frames → exactly 10 rows keyed (VIN, collection time, info type),
/// 2 duplicates counted, `source_cmd` 3 for :03 :04 :05 and 2 for the rest.
#[test]
fn resends_and_repeats_are_stored_once_with_source_cmd() {
    let t = tempfile::tempdir().unwrap();
    let s = ingest_frames(t.path(), &fixture("obd-resend-duplicates/resend.bin"));
    assert!(s.contains("records in:   13"), "{s}");
    assert!(s.contains("obd_samples   10"), "{s}");
    assert!(
        s.contains("duplicates (same VIN, collection time, info type; not stored): 2 (0 with different values"),
        "{s}"
    );
    assert!(s.contains("quarantined:  0"), "{s}");
    assert!(!s.contains("late samples"), "{s}");
    let r = json_rows(
        t.path(),
        "SELECT sampled_at, count(*) AS n, max(source_cmd) AS cmd FROM obd_samples GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(r.len(), 10);
    for (i, row) in r.iter().enumerate() {
        assert_eq!(
            row["sampled_at"].as_str().unwrap(),
            format!("2025-11-08T02:00:0{i}Z"),
            "{row}"
        );
        assert_eq!(row["n"], 1);
        let want = if (3..=5).contains(&i) { 3 } else { 2 };
        assert_eq!(row["cmd"], want, "{row}");
    }
    let d = ok(&[
        "query",
        "--tables",
        t.path().to_str().unwrap(),
        "DESCRIBE obd_samples",
    ]);
    assert!(d.contains("source_cmd"), "{d}");
}

/// Further examples of the kind: a resend of a sample with *different* content (first kept,
/// the conflict quarantined and counted); NDJSON records repeated (source_cmd NULL); and the
/// allowed lateness: with 2 s, the resent :03–:05 arriving after :09 are counted late.
#[test]
fn conflicting_resend_repeated_records_and_lateness() {
    let at = FrameTime {
        year: 2025,
        month: 11,
        day: 8,
        hour: 10,
        minute: 0,
        second: 0,
    };
    let vin = "LRESEND0000000001";
    let live = encode_twc_realtime_frame(
        vin,
        at,
        1,
        &[sample(at, Some(true), Some(116.4), Some(39.9))],
    );
    let mut changed = sample(at, Some(true), Some(116.4), Some(39.9));
    changed.speed_kmh = Some(41.0);
    let resend = {
        let f = encode_twc_realtime_frame(vin, at, 2, &[changed]);
        encode_frame(3, vin, 1, 1, &f[24..f.len() - 1]).unwrap()
    };
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("c.bin");
    std::fs::write(&file, [live.clone(), resend].concat()).unwrap();
    let out = t.path().join("tables");
    let s = ingest_frames(&out, file.to_str().unwrap());
    assert!(s.contains("(1 with different values, quarantined)"), "{s}");
    let r = json_rows(&out, "SELECT speed_kmh, source_cmd FROM obd_samples");
    assert_eq!(r.len(), 1);
    close(&r[0]["speed_kmh"], 40.0, 1e-9);
    assert_eq!(r[0]["source_cmd"], 2);
    let q = json_rows(&out, "SELECT reason FROM quarantine");
    assert_eq!(q.len(), 1);
    let reason = q[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("duplicate_key_conflict")
            && reason.contains(vin)
            && reason.contains("info type 3"),
        "{reason}"
    );

    // NDJSON: the same record twice, and once more with another info type (a different key).
    let rec = |ty: u8| {
        format!(
            "{{\"vin\":\"LNDJSON0000000001\",\"sampled_at\":\"2025-11-08T02:00:00Z\",\"info_type\":{ty},\"speed_kmh\":50}}\n"
        )
    };
    let nd = t.path().join("r.ndjson");
    std::fs::write(&nd, [rec(3), rec(3), rec(5)].concat()).unwrap();
    let out2 = t.path().join("tables2");
    let s = ok(&[
        "ingest",
        "--stream",
        "obd",
        "--out",
        out2.to_str().unwrap(),
        nd.to_str().unwrap(),
    ]);
    assert!(s.contains("obd_samples   2"), "{s}");
    assert!(s.contains("not stored): 1 (0 with different values"), "{s}");
    let r = json_rows(
        &out2,
        "SELECT count(*) AS n, count(source_cmd) AS c FROM obd_samples",
    );
    assert_eq!((r[0]["n"].as_i64(), r[0]["c"].as_i64()), (Some(2), Some(0)));

    // Lateness 2 s: the resend case's :03, :04, :05 arrive after :09 was handed over → late.
    let limits = t.path().join("limits.toml");
    let text = std::fs::read_to_string(repo("fixtures/limits/cn-observed.toml"))
        .unwrap()
        .replace("allowed_lateness_s = 30.0", "allowed_lateness_s = 2.0");
    assert!(text.contains("allowed_lateness_s = 2.0"));
    std::fs::write(&limits, text).unwrap();
    let out3 = t.path().join("tables3");
    let s = ok(&[
        "ingest",
        "--stream",
        "obd",
        "--format",
        "hj1239",
        "--limits",
        limits.to_str().unwrap(),
        "--out",
        out3.to_str().unwrap(),
        &fixture("obd-resend-duplicates/resend.bin"),
    ]);
    assert!(
        s.contains(
            "late samples (older than the allowed lateness; stored, not seen by the detectors): 3"
        ),
        "{s}"
    );
    assert_eq!(scalar_i64(&out3, "SELECT count(*) FROM obd_samples"), 10);
}

/// hj1239-signature-after-each-block: signature parts skipped after each block; 132 signature
/// bytes; the OBD (J1939) and diesel data-stream blocks decode with the listed values.
#[test]
fn signature_after_each_block_is_skipped() {
    let hex =
        std::fs::read_to_string(fixture("hj1239-signature-after-each-block/frame.hex")).unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["inspect-frame", hex.trim(), "--format", "json"])).unwrap();
    assert_eq!(j["frame"]["signature_len"], 132);
    assert_eq!(j["frame"]["signature_parts"], 2);

    let t = tempfile::tempdir().unwrap();
    let s = ingest_frames(
        t.path(),
        &fixture("hj1239-signature-after-each-block/frame.bin"),
    );
    assert!(s.contains("quarantined:  0"), "{s}");
    assert_eq!(scalar_i64(t.path(), "SELECT count(*) FROM quarantine"), 0);
    let r = json_rows(
        t.path(),
        "SELECT info_type, sampled_at, speed_kmh, engine_rpm, fuel_flow_lph, scr_up_nox_ppm, scr_down_nox_ppm, \
         reagent_pct, intake_air_kgph, scr_in_temp_c, scr_out_temp_c, dpf_dp_kpa, coolant_c, tank_pct, \
         position_valid, lon_deg, lat_deg, odometer_km FROM obd_samples",
    );
    assert_eq!(r.len(), 1);
    let x = &r[0];
    assert_eq!(x["info_type"], 2);
    assert_eq!(x["sampled_at"], "2025-11-08T02:30:00Z");
    for (k, v) in [
        ("speed_kmh", 60.0),
        ("engine_rpm", 1400.0),
        ("fuel_flow_lph", 20.0),
        ("scr_up_nox_ppm", 400.0),
        ("scr_down_nox_ppm", 40.0),
        ("reagent_pct", 60.0),
        ("intake_air_kgph", 600.0),
        ("scr_in_temp_c", 300.0),
        ("scr_out_temp_c", 280.0),
        ("dpf_dp_kpa", 2.5),
        ("coolant_c", 85.0),
        ("tank_pct", 50.0),
        ("lon_deg", 114.514),
        ("lat_deg", 38.042),
        ("odometer_km", 250000.0),
    ] {
        close(&x[k], v, 1e-6);
    }
    assert_eq!(x["position_valid"], true);
    let r = json_rows(
        t.path(),
        "SELECT protocol, mil_on, dtcs, calibration_id, iupr, dtc_cm[1] AS cm, dtc_oc[1] AS oc, \
         dtc_failure_type[1] AS ft, dtc_raw[1] AS raw FROM obd_reports",
    );
    assert_eq!(r.len(), 1);
    let o = &r[0];
    assert_eq!(o["protocol"], 2);
    assert_eq!(o["mil_on"], false);
    assert_eq!(o["calibration_id"], "GB17691CAL0001");
    assert_eq!(o["dtcs"], "[SPN 3226 FMI 2]");
    assert_eq!(o["cm"], 0);
    assert_eq!(o["oc"], 1);
    assert_eq!(o["raw"], "9A0C0201");
    assert!(o["ft"].is_null(), "{o}");
    let iupr: Vec<String> = [150, 160]
        .into_iter()
        .chain([40; 16])
        .map(|v: i32| v.to_string())
        .collect();
    assert_eq!(o["iupr"], format!("[{}]", iupr.join(", ")));
}

/// Further examples of the kind: a signature after the first of three TWC blocks only; after
/// each of three blocks; then input of another protocol (JT/T 808) is named, and a truncated
/// frame's reason names the declared length.
#[test]
fn signature_after_some_blocks_and_other_protocols() {
    let at = |s: u8| FrameTime {
        year: 2025,
        month: 11,
        day: 8,
        hour: 10,
        minute: 30,
        second: s,
    };
    let vin = "LSIGTEST000000001";
    let samples: Vec<StreamSample> = (0..3)
        .map(|i| sample(at(i), Some(true), Some(114.0 + f64::from(i)), Some(38.0)))
        .collect();
    let plain = encode_twc_realtime_frame(vin, at(0), 7, &samples);
    let unit = &plain[24..plain.len() - 1];
    let sig: Vec<u8> = [vec![0x20], vec![0xAB; 32], vec![0x1F], vec![0xCD; 31]].concat();
    let block = |k: usize| &unit[8 + 37 * k..8 + 37 * (k + 1)];
    let after_first = [&unit[..8], block(0), &sig, block(1), block(2)].concat();
    let after_each = [&unit[..8], block(0), &sig, block(1), &sig, block(2), &sig].concat();
    for (d, parts) in [(after_first, 1u64), (after_each, 3)] {
        let f = encode_frame(2, vin, 1, 1, &d).unwrap();
        let j: serde_json::Value = serde_json::from_str(&ok(&[
            "inspect-frame",
            &hex::encode(&f),
            "--format",
            "json",
        ]))
        .unwrap();
        assert_eq!(j["frame"]["signature_parts"], parts, "{j}");
        assert_eq!(j["frame"]["signature_len"], 65 * parts, "{j}");
        let s = j["obd_samples"].as_array().unwrap();
        assert_eq!(s.len(), 3);
        close(&s[2]["lon_deg"], 116.0, 1e-9);
        assert_eq!(s[2]["sampled_at"], "2025-11-08T02:30:02+00:00");
    }

    // JT/T 808 location reports (0x7E-delimited) fed as HJ 1239.
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("jt808.bin");
    let msgs = [jtt808_location(1), jtt808_location(2)].concat();
    std::fs::write(&file, &msgs).unwrap();
    let out = t.path().join("tables");
    // Every record rejected: the ingest says so and exits non-zero, the record is quarantined.
    let o = pw(&[
        "ingest",
        "--stream",
        "obd",
        "--format",
        "hj1239",
        "--out",
        out.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("every record (1) was rejected"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("quarantined:  1"), "{s}");
    let q = json_rows(&out, "SELECT reason FROM quarantine");
    let reason = q[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("other_protocol: JT/T 808 data, not HJ 1239: 2 message(s)")
            && reason.contains("0x0200 location report"),
        "{reason}"
    );
    let o = pw(&["inspect-frame", &hex::encode(jtt808_location(3))]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("JT/T 808"));

    // A truncated frame names the declared length.
    let cut = &plain[..plain.len() - 20];
    let e = decode_frame(cut).unwrap_err().to_string();
    let declared = plain.len() - 25;
    assert!(
        e.contains(&format!("declared data-unit length {declared}")),
        "{e}"
    );
}

/// A JT/T 808-2013 location report (0x0200), escaped and framed by 0x7E.
fn jtt808_location(serial: u16) -> Vec<u8> {
    let mut m = vec![0x02, 0x00, 0x00, 28];
    m.extend([0x01, 0x38, 0x00, 0x13, 0x80, 0x00]); // phone BCD
    m.extend(serial.to_be_bytes());
    m.extend([0u8; 8]); // alarm, status
    m.extend(39_900_000u32.to_be_bytes());
    m.extend(116_400_000u32.to_be_bytes());
    m.extend([0, 50, 0x02, 0x58, 0, 90]); // altitude, speed, direction
    m.extend([0x25, 0x11, 0x08, 0x10, 0x7E, 0x7D]); // BCD time with bytes that need escaping
    let check = m.iter().fold(0u8, |a, &b| a ^ b);
    m.push(check);
    let mut out = vec![0x7E];
    for b in m {
        match b {
            0x7E => out.extend([0x7D, 0x02]),
            0x7D => out.extend([0x7D, 0x01]),
            b => out.push(b),
        }
    }
    out.push(0x7E);
    out
}

// ------------------------------------------------------------------------------------------
// Kind 8: signal plausibility and the TWC detectors
// ------------------------------------------------------------------------------------------

/// obd-lambda-misscaled-silent: one visible `lambda_implausible` (600 samples, median 0.0625 vs
/// 1.000, ratio 1/16, scale hint), no TWC detection, the vehicle "not evaluable" in the list;
/// with the λ scale declared in a mapping the same samples are judged normally.
#[test]
fn misscaled_lambda_is_visible_and_not_evaluable() {
    let input = fixture("obd-lambda-misscaled-silent/lambda_div16.ndjson");
    let t = tempfile::tempdir().unwrap();
    let s = ok(&[
        "ingest",
        "--stream",
        "obd",
        "--out",
        t.path().to_str().unwrap(),
        &input,
    ]);
    assert!(s.contains("obd_samples   900"), "{s}");
    assert!(s.contains("quarantined:  0"), "{s}");
    assert!(
        s.contains("lambda_implausible: vehicle not evaluable): 1"),
        "{s}"
    );
    // The evidence is addressed in SQL (a map, not JSON text).
    let d = json_rows(
        t.path(),
        "SELECT vin, rule_id, evidence['n_samples'] AS n_samples, \
         evidence['upstream_lambda_median'] AS upstream_lambda_median, \
         evidence['commanded_lambda_median'] AS commanded_lambda_median, \
         evidence['ratio'] AS ratio, evidence_text['hint'] AS hint, \
         CAST(evidence['window_start_ms'] AS BIGINT) AS window_start_ms, \
         evidence['no_such_entry'] AS absent FROM detections",
    );
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["rule_id"], "lambda_implausible");
    assert_eq!(d[0]["vin"], "LZZ5ELSDXND999901");
    let ev = &d[0];
    assert_eq!(ev["n_samples"], 600.0);
    close(&ev["upstream_lambda_median"], 0.0625, 0.0015);
    close(&ev["commanded_lambda_median"], 1.0, 1e-6);
    close(&ev["ratio"], 0.0625, 0.0015);
    assert_eq!(ev["hint"], "upstream λ scale (PID 0x4F)?");
    assert_eq!(ev["window_start_ms"], 1_762_567_200_000i64 + 300_000); // 02:05:00Z
    assert_eq!(ev["absent"], serde_json::Value::Null);
    let l = suspects(t.path());
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["status"], "not_evaluable");
    assert_eq!(l[0]["detections"], 0);
    assert_eq!(l[0]["lambda_implausible"], 1);
    let why = l[0]["not_evaluable_reason"].as_str().unwrap();
    assert!(
        why.contains("PID 0x4F") && why.contains("600 samples"),
        "{why}"
    );

    // The same samples with the source's λ scale declared (×16): no λ verdict.
    let mapping = t.path().join("scaled.toml");
    let mut m = String::from("[mapping]\nname = \"lambda-x16\"\n");
    for f in [
        "vin",
        "info_type",
        "speed_kmh",
        "engine_rpm",
        "coolant_c",
        "fuel_flow_lph",
        "commanded_lambda",
        "rear_o2_v",
    ] {
        m.push_str(&format!("[fields.{f}]\nsource = \"{f}\"\n"));
    }
    m.push_str("[fields.sampled_at]\nsource = \"sampled_at\"\ntime = \"rfc3339\"\n");
    m.push_str("[fields.upstream_lambda]\nsource = \"upstream_lambda\"\nscale = 16.0\n");
    std::fs::write(&mapping, m).unwrap();
    let out = t.path().join("scaled");
    ok(&[
        "ingest",
        "--stream",
        "obd",
        "--mapping",
        mapping.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        &input,
    ]);
    close(
        &json_rows(&out, "SELECT max(upstream_lambda) AS m FROM obd_samples")[0]["m"],
        1.02,
        1e-9,
    );
    assert_eq!(
        scalar_i64(
            &out,
            "SELECT count(*) FROM detections WHERE rule_id = 'lambda_implausible'"
        ),
        0
    );
    // … and judged: the constant 0.70 V rear over 600 s of cut-free warm closed loop while λ
    // alternates 0.98 / 1.02 is the flat-line signature (no-cut case of rear_o2_flatline).
    let d = json_rows(&out, "SELECT rule_id, evidence FROM detections");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["rule_id"], "rear_o2_flatline");
    let ev = &d[0]["evidence"];
    assert_eq!(ev["n_cut_events"], 0.0);
    assert_eq!(ev["flat_span_s"], 600.0);
}

/// Further examples of the kind: an air-fuel ratio sent as λ and φ = 1/λ sent as λ (a drive
/// with fuel cuts every 60 s), as NDJSON through the binary.
#[test]
fn afr_and_phi_are_implausible_with_their_hints() {
    let t = tempfile::tempdir().unwrap();
    for (name, f, hint) in [
        (
            "afr",
            (|l: f64| l * 14.7) as fn(f64) -> f64,
            "air-fuel ratio",
        ),
        ("phi", |l: f64| 1.0 / l, "φ = 1/λ"),
    ] {
        let mut nd = String::new();
        for i in 0..1500u32 {
            let cut = i % 60 >= 30 && i % 60 < 35;
            let lam = if cut {
                1.25
            } else {
                0.98 + 0.04 * f64::from(i % 2)
            };
            let speed = if cut { 60 - (i % 60 - 30) } else { 60 };
            nd.push_str(&format!(
                "{{\"vin\":\"L{name:0>16}\",\"sampled_at\":{},\"info_type\":3,\"speed_kmh\":{speed},\"engine_rpm\":1800,\"coolant_c\":88,\"fuel_flow_lph\":{},\"upstream_lambda\":{},\"rear_o2_v\":{}}}\n",
                1_762_567_200_000u64 + u64::from(i) * 1000,
                if cut { 0.0 } else { 5.0 },
                f(lam),
                if cut { 0.05 } else { 0.75 },
            ));
        }
        let file = t.path().join(format!("{name}.ndjson"));
        std::fs::write(&file, nd).unwrap();
        let out = t.path().join(name);
        ok(&[
            "ingest",
            "--stream",
            "obd",
            "--out",
            out.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        let d = json_rows(
            &out,
            "SELECT rule_id, evidence_text['hint'] AS hint FROM detections",
        );
        assert!(!d.is_empty(), "{name}");
        assert!(
            d.iter().all(|r| r["rule_id"] == "lambda_implausible"),
            "{name}: {d:?}"
        );
        let ev = &d[0];
        assert!(ev["hint"].as_str().unwrap().starts_with(hint), "{ev}");
        assert_eq!(suspects(&out)[0]["status"], "not_evaluable");
    }
}

/// The gzipped fixture, decompressed by the system's `gzip` (no extra crate for one test).
fn gunzip(rel: &str) -> Vec<u8> {
    let o = std::process::Command::new("gzip")
        .args(["-dc", &fixture(rel)])
        .output()
        .expect("gzip on PATH");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// rear-o2-low-oscillation-missed: the real healthy log with a low-voltage simulator (0.22 V ±
/// 0.06 V, 11 s) after 300 s gives rear_o2_low_band detections (median ≈ 0.22 V, all < 0.3 V,
/// line at 11 s), and the vehicle is in the list.
#[test]
fn low_voltage_rear_simulator_is_detected() {
    let t = tempfile::tempdir().unwrap();
    let csv = t.path().join("lowsim.csv");
    std::fs::write(
        &csv,
        gunzip("rear-o2-low-oscillation-missed/torque_petrol_2022_rear_o2_lowsim.csv.gz"),
    )
    .unwrap();
    let out = t.path().join("tables");
    let s = ok(&[
        "ingest",
        "--stream",
        "obd",
        "--format",
        "csv",
        "--mapping",
        repo("fixtures/mappings/torque.toml").to_str().unwrap(),
        "--vin",
        "LSIMLOW0000000001",
        "--out",
        out.to_str().unwrap(),
        csv.to_str().unwrap(),
    ]);
    assert!(s.contains("records in:   2662"), "{s}");
    let r = json_rows(
        &out,
        "SELECT count(*) AS n, median(rear_o2_v) AS rear_median, min(rear_o2_v) AS lo, max(rear_o2_v) AS hi \
         FROM obd_samples WHERE sampled_at BETWEEN TIMESTAMP '2022-02-22T22:39:32Z' AND TIMESTAMP '2022-02-22T23:18:46.5Z' \
         AND coolant_c > 70 AND upstream_lambda BETWEEN 0.85 AND 1.15",
    );
    assert_eq!(r[0]["n"], 1961);
    close(&r[0]["rear_median"], 0.219, 0.0015);
    close(&r[0]["lo"], 0.161, 0.0015);
    close(&r[0]["hi"], 0.280, 0.0015);
    let d = json_rows(
        &out,
        "SELECT rule_id, evidence FROM detections ORDER BY detected_at",
    );
    assert!(d.len() >= 2, "{d:?}");
    assert!(
        d.iter().all(|x| x["rule_id"] == "rear_o2_low_band"),
        "{d:?}"
    );
    let evs: Vec<serde_json::Value> = d.iter().map(|x| x["evidence"].clone()).collect();
    for ev in &evs {
        close(&ev["rear_o2_median_v"], 0.22, 0.02);
        assert!(ev["low_frac"].as_f64().unwrap() >= 0.95, "{ev}");
        close(&ev["period_s"], 11.0, 0.5);
        assert!(ev["rpm_corr"].as_f64().unwrap().abs() <= 0.5, "{ev}");
    }
    // The first window still holds a few real samples from before the simulator (the log's
    // clock starts before the engine's run-time counter); the later ones are all below 0.3 V.
    let last = evs.last().unwrap();
    assert!(last["rear_o2_max_v"].as_f64().unwrap() < 0.3, "{last}");
    assert_eq!(last["low_frac"], 1.0);
    let l = suspects(&out);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["vin"], "LSIMLOW0000000001");
    assert_eq!(l[0]["status"], "suspect");
    assert!(l[0]["rear_o2_low_band"].as_i64().unwrap() >= 1);
    assert_eq!(l[0]["strongest_rule"], "rear_o2_low_band");
}

/// Other wrong λ scales of the same 900 samples are just as visible (a tester found them
/// silent: values outside the detector's clean range read as "missing", and identical cleaned
/// samples were skipped as stale): λ × 100 (percent), λ / 32 and the raw PID count
/// (λ × 32768, SAE J1979 PID 0x24 A·B / 32768). Each gives one `lambda_implausible` whose ratio
/// is the scale, and the vehicle is "not evaluable".
#[test]
fn other_lambda_scales_are_visible_too() {
    let src = std::fs::read_to_string(fixture("obd-lambda-misscaled-silent/lambda_div16.ndjson"))
        .unwrap();
    for (name, scale) in [
        ("percent", 100.0),
        ("div32", 1.0 / 32.0),
        ("raw_count", 32768.0),
    ] {
        let t = tempfile::tempdir().unwrap();
        let mut out = String::new();
        for line in src.lines().filter(|l| !l.trim().is_empty()) {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            // The fixture sends true λ / 16.
            let sent = v["upstream_lambda"].as_f64().unwrap() * 16.0 * scale;
            v["upstream_lambda"] = serde_json::json!(sent);
            out.push_str(&v.to_string());
            out.push('\n');
        }
        let input = t.path().join(format!("{name}.ndjson"));
        std::fs::write(&input, out).unwrap();
        let tables = t.path().join("t");
        let s = ok(&[
            "ingest",
            "--stream",
            "obd",
            "--out",
            tables.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        assert!(s.contains("obd_samples   900"), "{name}: {s}");
        let d = json_rows(
            &tables,
            "SELECT rule_id, evidence['ratio'] AS ratio FROM detections",
        );
        assert_eq!(d.len(), 1, "{name}: {d:?}");
        assert_eq!(d[0]["rule_id"], "lambda_implausible", "{name}");
        // True λ alternates 0.98 / 1.02 around 1.0 commanded: the ratio is the scale.
        let ratio = d[0]["ratio"].as_f64().unwrap();
        assert!(
            (ratio / scale - 1.0).abs() < 0.03,
            "{name}: ratio {ratio} vs scale {scale}"
        );
        let l = suspects(&tables);
        assert_eq!(l.len(), 1, "{name}: {l:?}");
        assert_eq!(l[0]["status"], "not_evaluable", "{name}");
    }
}

/// The rule added as issue 11's proof (`detect/obd_readiness.rs`, one registry line): the
/// field case's real-layout OBD report (support 0x0021, readiness 0) gives no
/// `obd_readiness_incomplete`; the same frame with readiness 0x0021 (catalyst and
/// exhaust-gas sensor not complete; BCC recomputed) gives one, naming both monitors.
#[test]
fn readiness_incomplete_rule_end_to_end() {
    let orig = std::fs::read(fixture("obd-invalid-position-zero/frames.bin")).unwrap();
    let needle = b"\x00\x21\x00\x00LZZ5ELSDXND999901";
    let at = orig
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("support/readiness words before the VIN")
        + 2;
    // The frame holding it ends at its BCC: header 24 bytes + data unit length (bytes 22..24).
    let start = orig[..at].windows(2).rposition(|w| w == b"##").unwrap();
    let len = u16::from_be_bytes([orig[start + 22], orig[start + 23]]) as usize;
    let bcc_at = start + 24 + len;
    let mut patched = orig.clone();
    patched[at + 1] = 0x21;
    patched[bcc_at] ^= 0x21;
    let rule = "SELECT vin, evidence_text['monitors_incomplete'] AS m, strength FROM detections WHERE rule_id = 'obd_readiness_incomplete'";
    let t = tempfile::tempdir().unwrap();
    ingest_frames(t.path(), &fixture("obd-invalid-position-zero/frames.bin"));
    assert!(json_rows(t.path(), rule).is_empty());
    let t2 = tempfile::tempdir().unwrap();
    let p = t2.path().join("patched.bin");
    std::fs::write(&p, &patched).unwrap();
    let s = ingest_frames(&t2.path().join("tables"), p.to_str().unwrap());
    assert!(s.contains("quarantined:  0"), "{s}");
    let r = json_rows(&t2.path().join("tables"), rule);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["vin"], "LZZ5ELSDXND999901");
    assert_eq!(r[0]["m"], "catalyst,exhaust_gas_sensor");
    close(&r[0]["strength"], 0.5, 1e-12);
}
