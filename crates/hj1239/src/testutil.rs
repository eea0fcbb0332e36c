//! Shared test helpers: the public test vectors and scanner checks.

use crate::read::LAMBDA_SCALE;
use crate::*;

/// `hj_fe_LETYECG28MH055508` from shared/data/frames/remote_frames.tsv (public test code).
pub(crate) const HJ_FE: &str = "232302fe4c45545945434732384d483035353530380101e917020e0d212e01c8d70100fea000004c45545945434732384d483035353530384d44314343383738203439334c44303330302d2cecf4303030303030303030303030303004d80c3c005f005f085f04d80000000000810081029e04d803c404d5050c04d507ef04d801200c6468021ca9c9828723f0000a1b4a10f84907d8372b3615000779c700068761a30129ded7000fba04021b5bc985871f74000c169c11ee4905d2372e3618000679c700068761e90129ded4000fba040219f8c984861b54000817de136c4904f83735361b000479c700068762330129ded5000fba040218d4c984861a580009170e1342490474373b3622000379c700068762770129ded8000fba04021783c9848619d4000817aa120e490452373e3625000379c700068762b70129ded6000fba04021631c98486198c000817ae11344903fa37423628000279c700068762f60129ded4000fba040214d1c984861950000817f610ea4904203745362b000379c700068763320129ded2000fba040214d1c984861950000817f610ea4904203745362b000379c700068763320129ded2000fba040213b1c986861c40000b182210da4904b03748362f000379c7000687636a0129decf000fba04021263c982861ca00008183e10c4490538374b3632000379c7000687639e0129ded3000fba0453";
/// `hj_carsimu_LGDCHA1G8MA127733`.
pub(crate) const HJ_CARSIMU: &str = "2323024c47444348413147384d41313237373333010100ad15080e082f230100010100abdea9d64c47444348413147384d4131323737333359435933303136352d363020202020200000ec40a1bf000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000007145600afe00200afe06200afe00900af204700af245500afe01200af0200010000c57d830000000000000000610000fefffefffeff3d000006afd31701ea55fe000000289f";
/// `gb32960_bitnei_login_LGHC4V1D9HE204406`.
pub(crate) const GB_LOGIN: &str = "232301fe4c4748433456314439484532303434303601001e140215171f29008a3839383630313137373935393530303839323938010063";

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(crate) fn close(v: Option<f64>, expected: f64) {
    let v = v.expect("value present");
    assert!((v - expected).abs() < 1e-9, "{v} != {expected}");
}

pub(crate) fn t(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> FrameTime {
    FrameTime {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
    }
}

pub(crate) fn realtime(f: &Frame) -> (&[InfoBlock], SerialLayout, bool, usize, Option<u16>) {
    match &f.body {
        Body::Realtime {
            blocks,
            serial_layout,
            block_times,
            signature_len,
            seq,
            ..
        } => (blocks, *serial_layout, *block_times, *signature_len, *seq),
        b => panic!("not realtime: {b:?}"),
    }
}

pub(crate) fn stream(b: &InfoBlock) -> &StreamSample {
    match b {
        InfoBlock::Stream(s) => s,
        b => panic!("not a stream block: {b:?}"),
    }
}

pub(crate) fn twc_sample(i: u32) -> StreamSample {
    StreamSample {
        info_type: 3,
        collected_at: Some(t(2024, 5, 6, 7, 8, (i % 60) as u8)),
        speed_kmh: Some(f64::from(i % 20000) / 256.0),
        barometric_kpa: Some(100.5),
        net_torque_pct: Some(-20.0),
        friction_torque_pct: Some(8.0),
        engine_rpm: Some(1200.125),
        fuel_flow_lph: Some(12.35),
        upstream_lambda: Some(32_787.0 * LAMBDA_SCALE),
        rear_o2_v: Some(0.65),
        intake_air_kgph: Some(420.05),
        coolant_c: Some(85.0),
        twc_temp_c: Some(512.5),
        position_valid: Some(true),
        lon_deg: Some(113.123456),
        lat_deg: Some(-23.654321),
        odometer_km: Some(123_456.7),
        ..Default::default()
    }
}

pub(crate) fn scan_all(input: &[u8], chunk: usize) -> (Vec<ScanEvent>, FrameScanner, u64) {
    let mut sc = FrameScanner::new();
    let mut evs = Vec::new();
    let mut calls = 0u64;
    for c in input.chunks(chunk.max(1)) {
        sc.push(c);
        loop {
            calls += 1;
            match sc.next_event() {
                Some(e) => evs.push(e),
                None => break,
            }
        }
    }
    loop {
        calls += 1;
        match sc.finish() {
            Some(e) => evs.push(e),
            None => break,
        }
    }
    (evs, sc, calls)
}

/// Every byte appears in exactly one event, in order.
pub(crate) fn assert_coverage(input: &[u8], evs: &[ScanEvent]) {
    let mut off = 0u64;
    let mut joined = Vec::with_capacity(input.len());
    for e in evs {
        let (o, b) = match e {
            ScanEvent::Frame { offset, bytes } | ScanEvent::Rejected { offset, bytes, .. } => {
                (*offset, bytes)
            }
        };
        assert_eq!(o, off);
        assert!(!b.is_empty());
        off += b.len() as u64;
        joined.extend_from_slice(b);
    }
    assert_eq!(joined, input);
}

pub(crate) fn frames_of(evs: &[ScanEvent]) -> Vec<(u64, Vec<u8>)> {
    evs.iter()
        .filter_map(|e| match e {
            ScanEvent::Frame { offset, bytes } => Some((*offset, bytes.clone())),
            ScanEvent::Rejected { .. } => None,
        })
        .collect()
}

pub(crate) fn reasons_of(evs: &[ScanEvent]) -> Vec<&'static str> {
    evs.iter()
        .filter_map(|e| match e {
            ScanEvent::Rejected { reason, .. } => Some(reason.reason_code()),
            ScanEvent::Frame { .. } => None,
        })
        .collect()
}

pub(crate) fn check_scan(input: &[u8], chunk: usize) {
    let (evs, sc, calls) = scan_all(input, chunk);
    assert_coverage(input, &evs);
    let n = input.len() as u64;
    assert!(
        sc.work_units() <= 4 * n + 4 * calls + 16,
        "work {} for {n} bytes",
        sc.work_units()
    );
    assert!(sc.buffered_len() <= 2 * MAX_FRAME_LEN + MAX_GARBAGE_RUN + 4096 + chunk);
    for e in &evs {
        match e {
            ScanEvent::Frame { bytes, .. } => {
                assert!(bytes.len() >= FRAME_OVERHEAD && bytes.len() <= MAX_FRAME_LEN);
                // Decoding must not panic, and must not reject the framing the scanner accepted.
                if let Err(e) = decode_frame(bytes) {
                    assert!(
                        !matches!(
                            e,
                            FrameError::BadBcc { .. }
                                | FrameError::Truncated { .. }
                                | FrameError::TrailingBytes { .. }
                        ),
                        "{e}"
                    );
                }
            }
            ScanEvent::Rejected { reason, .. } => {
                let _ = (reason.to_string(), reason.reason_code());
            }
        }
    }
}

/// 3000 cases per property by default; `PROPTEST_CASES=N` for long fuzzing runs.
pub(crate) fn fuzz_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}
