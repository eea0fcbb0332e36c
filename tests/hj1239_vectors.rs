//! Test vectors from `shared/data/frames/remote_frames.tsv` (see shared/data/README.md
//! "frames/") against `plumewatch::decode::hj1239` (obd-remote-monitoring.md §1).

use plumewatch::decode::hj1239::{
    Body, Command, FrameError, FrameScanner, HeaderStyle, InfoBlock, ScanEvent, SerialLayout,
    decode_frame,
};
use std::path::Path;

/// `(id, kind, bytes)` rows, or `None` when ../shared/data is not present.
fn vectors() -> Option<Vec<(String, String, Vec<u8>)>> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/frames/remote_frames.tsv");
    let text = std::fs::read_to_string(path).ok()?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let mut cols = line.split('\t');
        let (Some(id), Some(kind), Some(hex)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        rows.push((id.to_string(), kind.to_string(), unhex(hex.trim())));
    }
    Some(rows)
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

macro_rules! vectors_or_skip {
    () => {
        match vectors() {
            Some(v) => v,
            None => {
                println!("skipped: ../shared/data not present");
                return;
            }
        }
    };
}

fn row<'a>(rows: &'a [(String, String, Vec<u8>)], id: &str) -> &'a [u8] {
    &rows
        .iter()
        .find(|r| r.0 == id)
        .unwrap_or_else(|| panic!("vector {id} missing"))
        .2
}

#[test]
fn every_vector_decodes_or_is_rejected_as_gb32960() {
    let rows = vectors_or_skip!();
    assert!(
        rows.len() >= 7,
        "expected at least 7 vectors, got {}",
        rows.len()
    );
    for (id, kind, bytes) in &rows {
        let res = decode_frame(bytes);
        if id.starts_with("gb32960_") {
            match res {
                Err(e @ FrameError::Gb32960 { .. }) => {
                    assert_eq!(e.reason_code(), "gb32960_frame");
                    assert!(
                        e.to_string()
                            .starts_with("GB/T 32960 frame (EV protocol), not HJ 1239: ")
                    );
                }
                other => panic!("{id} ({kind}): expected GB/T 32960 rejection, got {other:?}"),
            }
        } else if id.starts_with("hj_") {
            let f = res.unwrap_or_else(|e| panic!("{id} ({kind}): {e}"));
            assert!(id.ends_with(&f.vin), "{id}: VIN {}", f.vin);
        }
    }
}

#[test]
fn scanner_finds_every_vector_in_a_noisy_stream() {
    let rows = vectors_or_skip!();
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for (i, (_, _, bytes)) in rows.iter().enumerate() {
        stream.extend_from_slice(&[0x00, b'#', 0x55][..i % 3 + 1]);
        expected.push((stream.len() as u64, bytes.clone()));
        stream.extend_from_slice(bytes);
    }
    stream.extend_from_slice(b"##\x02trailing-truncated");
    for chunk in [1usize, 7, 64, 4096] {
        let mut sc = FrameScanner::new();
        let mut frames = Vec::new();
        let mut covered = 0u64;
        let mut on_event = |ev: ScanEvent| match ev {
            ScanEvent::Frame { offset, bytes } => {
                assert_eq!(offset, covered);
                covered += bytes.len() as u64;
                frames.push((offset, bytes));
            }
            ScanEvent::Rejected { offset, bytes, .. } => {
                assert_eq!(offset, covered);
                covered += bytes.len() as u64;
            }
        };
        for c in stream.chunks(chunk) {
            sc.push(c);
            while let Some(ev) = sc.next_event() {
                on_event(ev);
            }
        }
        while let Some(ev) = sc.finish() {
            on_event(ev);
        }
        assert_eq!(
            covered,
            stream.len() as u64,
            "chunk {chunk}: every byte reported once"
        );
        assert_eq!(frames, expected, "chunk {chunk}");
    }
}

#[test]
fn hj_fe_header_layout_and_samples() {
    let rows = vectors_or_skip!();
    let f = decode_frame(row(&rows, "hj_fe_LETYECG28MH055508")).expect("decodes");
    assert_eq!(f.command, Command::Realtime);
    assert_eq!(
        f.header,
        HeaderStyle::Gb32960Style {
            response_flag: 0xFE
        }
    );
    assert_eq!(f.software_version, None);
    assert_eq!(f.vin, "LETYECG28MH055508");
    let Body::Realtime {
        sent_at,
        seq,
        blocks,
        serial_layout,
        block_times,
        signature_len,
        ..
    } = &f.body
    else {
        panic!("not realtime: {:?}", f.body)
    };
    assert_eq!(sent_at.to_string(), "2023-02-14 13:33:46");
    assert_eq!(*serial_layout, SerialLayout::FirstUnitOnly);
    assert!(!block_times);
    assert_eq!(*signature_len, 0);
    assert_eq!(*seq, Some(0xC8D7));
    assert_eq!(blocks.len(), 11);
    let InfoBlock::Obd(obd) = &blocks[0] else {
        panic!("first block not OBD")
    };
    assert_eq!(obd.protocol, Some(1));
    assert_eq!(obd.mil_on, Some(false));
    assert_eq!(obd.calibration_id, "MD1CC878 493LD0300");
    assert_eq!(obd.iupr.len(), 18);
    assert_eq!(obd.dtcs, vec!["P200C".to_string()]);
    // Sample 10 raw block: 02 1263 c9 82 86 1ca0 0008 183e 10c4 49 0538 374b 3632 0003 79 c7 00
    //                      0687639e 0129ded3 000fba04
    let InfoBlock::Stream(s) = &blocks[10] else {
        panic!("block 11 not a stream")
    };
    assert!((s.speed_kmh.unwrap() - 0x1263 as f64 / 256.0).abs() < 1e-9);
    assert!((s.engine_rpm.unwrap() - 0x1ca0 as f64 * 0.125).abs() < 1e-9);
    assert!((s.scr_up_nox_ppm.unwrap() - (0x183e as f64 * 0.05 - 200.0)).abs() < 1e-9);
    assert!((s.scr_down_nox_ppm.unwrap() - (0x10c4 as f64 * 0.05 - 200.0)).abs() < 1e-9);
    assert!((s.lon_deg.unwrap() - 0x0687639e as f64 / 1e6).abs() < 1e-9);
    assert!((s.lat_deg.unwrap() - 0x0129ded3 as f64 / 1e6).abs() < 1e-9);
    assert!((s.odometer_km.unwrap() - 0x000fba04 as f64 / 10.0).abs() < 1e-9);
}

#[test]
fn hj_carsimu_dtcs_are_iso_uds() {
    let rows = vectors_or_skip!();
    let f = decode_frame(row(&rows, "hj_carsimu_LGDCHA1G8MA127733")).expect("decodes");
    let Body::Realtime {
        blocks,
        serial_layout,
        ..
    } = &f.body
    else {
        panic!("not realtime")
    };
    assert_eq!(*serial_layout, SerialLayout::AfterEachInfoType);
    let InfoBlock::Obd(obd) = &blocks[0] else {
        panic!("first block not OBD")
    };
    assert_eq!(obd.protocol, Some(1));
    assert_eq!(obd.dtcs.len(), 7);
    assert!(obd.dtcs.contains(&"P2047".to_string()), "{:?}", obd.dtcs);
    assert!(obd.dtcs.contains(&"P2455".to_string()), "{:?}", obd.dtcs);
    let InfoBlock::Stream(s) = &blocks[1] else {
        panic!("second block not a stream")
    };
    // SCR temperatures and DPF dP carry 0xFEFF (> 0xFAFF) invalid markers.
    assert_eq!(
        (s.scr_in_temp_c, s.scr_out_temp_c, s.dpf_dp_kpa),
        (None, None, None)
    );
}

#[test]
fn login_logout_and_sim_vectors() {
    let rows = vectors_or_skip!();
    let f = decode_frame(row(&rows, "hj_login_LGDCH91G8KA141269")).expect("login");
    assert_eq!(f.header, HeaderStyle::Hj1239);
    match &f.body {
        Body::Login { time, seq, iccid } => {
            assert_eq!(time.to_string(), "2020-01-08 14:08:06");
            assert_eq!(*seq, 3);
            assert_eq!(iccid, "89861119222035507877");
        }
        b => panic!("{b:?}"),
    }
    let f = decode_frame(row(&rows, "hj_logout_LG6ZDANH7EY208182")).expect("logout");
    assert!(
        matches!(f.body, Body::Logout { seq: 0x1A, .. }),
        "{:?}",
        f.body
    );
    let f = decode_frame(row(&rows, "hj_sim_LCIAMMBE4G0004671")).expect("sim");
    match &f.body {
        Body::Realtime {
            blocks,
            layouts_matched,
            ..
        } => {
            assert_eq!(blocks.len(), 1);
            assert!(*layouts_matched >= 1);
        }
        b => panic!("{b:?}"),
    }
}
