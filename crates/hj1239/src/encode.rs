//! Test encoder: HJ 1239 frames from a data unit, and real-time frames of type-0x03 (gas TWC)
//! blocks from [`StreamSample`]s, for tests and the fleet generator.

use crate::blocks::StreamSample;
use crate::frame::{FRAME_OVERHEAD, MAX_DATA_UNIT_LEN};
use crate::read::{DEG_SCALE, LAMBDA_SCALE, SPEED_SCALE, TEMP_OFFSET, TEMP_SCALE};
use crate::time::FrameTime;

/// Wrap a data unit in an HJ 1239 header (`## cmd VIN17 version enc len`) and BCC
/// (obd-remote-monitoring.md §1.2). The VIN is truncated/NUL-padded to 17 bytes. `None` when
/// the data unit is longer than 65531 bytes.
pub fn encode_frame(
    command: u8,
    vin: &str,
    software_version: u8,
    encryption: u8,
    data_unit: &[u8],
) -> Option<Vec<u8>> {
    let len = u16::try_from(data_unit.len())
        .ok()
        .filter(|&l| usize::from(l) <= MAX_DATA_UNIT_LEN)?;
    let mut f = Vec::with_capacity(data_unit.len() + FRAME_OVERHEAD);
    f.extend_from_slice(b"##");
    f.push(command);
    let mut v = [0u8; 17];
    for (d, s) in v.iter_mut().zip(vin.bytes()) {
        *d = s;
    }
    f.extend_from_slice(&v);
    f.push(software_version);
    f.push(encryption);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(data_unit);
    let bcc = f.get(2..).unwrap_or(&[]).iter().fold(0u8, |a, &b| a ^ b);
    f.push(bcc);
    Some(f)
}

fn enc1(v: Option<f64>, scale: f64, offset: f64) -> u8 {
    match v {
        Some(x) if x.is_finite() => ((x - offset) / scale).round().clamp(0.0, 250.0) as u8,
        _ => 0xFF,
    }
}
fn enc2(v: Option<f64>, scale: f64, offset: f64) -> u16 {
    match v {
        Some(x) if x.is_finite() => ((x - offset) / scale).round().clamp(0.0, 64255.0) as u16,
        _ => 0xFFFF,
    }
}
fn enc4(v: Option<f64>, scale: f64, offset: f64) -> u32 {
    match v {
        Some(x) if x.is_finite() => ((x - offset) / scale)
            .round()
            .clamp(0.0, f64::from(0xFAFF_FFFFu32)) as u32,
        _ => 0xFFFF_FFFF,
    }
}

/// Encoded size of one type-0x03 block with its collection time: type 1 + time 6 + body 30.
pub(crate) const TWC_BLOCK_LEN: usize = 1 + 6 + 30;

fn push_twc_block(out: &mut Vec<u8>, sent_at: FrameTime, s: &StreamSample) {
    out.push(0x03);
    out.extend_from_slice(&s.collected_at.unwrap_or(sent_at).to_bytes());
    out.extend_from_slice(&enc2(s.speed_kmh, SPEED_SCALE, 0.0).to_be_bytes());
    out.push(enc1(s.barometric_kpa, 0.5, 0.0));
    out.push(enc1(s.net_torque_pct, 1.0, -125.0));
    out.push(enc1(s.friction_torque_pct, 1.0, -125.0));
    out.extend_from_slice(&enc2(s.engine_rpm, 0.125, 0.0).to_be_bytes());
    out.extend_from_slice(&enc2(s.fuel_flow_lph, 0.05, 0.0).to_be_bytes());
    out.extend_from_slice(&enc2(s.upstream_lambda, LAMBDA_SCALE, 0.0).to_be_bytes());
    let rear = match s.rear_o2_v {
        Some(v) if v.is_finite() && v <= 1.275 => (v / 0.01).round().clamp(0.0, 127.0) as u8,
        _ => 0xFF,
    };
    out.push(rear);
    out.extend_from_slice(&enc2(s.intake_air_kgph, 0.05, 0.0).to_be_bytes());
    out.push(enc1(s.coolant_c, 1.0, -40.0));
    out.extend_from_slice(&enc2(s.twc_temp_c, TEMP_SCALE, TEMP_OFFSET).to_be_bytes());
    let no_position = s.position_valid.is_none() && s.lon_deg.is_none() && s.lat_deg.is_none();
    let status = if no_position {
        0xFF
    } else {
        u8::from(s.position_valid != Some(true))
            | (u8::from(s.lat_deg.is_some_and(|v| v < 0.0)) << 1)
            | (u8::from(s.lon_deg.is_some_and(|v| v < 0.0)) << 2)
    };
    out.push(status);
    out.extend_from_slice(&enc4(s.lon_deg.map(f64::abs), DEG_SCALE, 0.0).to_be_bytes());
    out.extend_from_slice(&enc4(s.lat_deg.map(f64::abs), DEG_SCALE, 0.0).to_be_bytes());
    out.extend_from_slice(&enc4(s.odometer_km, 0.1, 0.0).to_be_bytes());
}

/// Build a valid HJ 1239 real-time frame (command 0x02, software version 0x01, encryption 0x01
/// "none", HJ 1239.3 layout: send time, serial once, then per block type 0x03 + 6-byte
/// collection time + 30-byte TWC body; no signature), obd-remote-monitoring.md §1.5/§1.7.
///
/// The inverse of [`decode_frame`](crate::decode_frame) for the type-0x03 fields: values are quantised to the wire
/// scale and clamped to the valid raw range; `None` (and rear O2 above 1.275 V) encodes as the
/// all-ones sentinel; `collected_at: None` encodes the send time; `info_type` is ignored
/// (always 0x03); the position status is 0xFF when validity and both coordinates are `None`,
/// else bit 0 = not `Some(true)`, bit 1 = latitude < 0, bit 2 = longitude < 0. Samples beyond
/// what fits in a 65531-byte data unit (1770) are dropped.
pub fn encode_twc_realtime_frame(
    vin: &str,
    sent_at: FrameTime,
    seq: u16,
    samples: &[StreamSample],
) -> Vec<u8> {
    encode_twc_realtime_frame_signed(vin, sent_at, seq, samples, &[], &[])
}

/// As [`encode_twc_realtime_frame`], followed by an SM2-style signature `R-len R S-len S`
/// (§1.4) when `sig_r` is non-empty (the decoder recognises R/S lengths 16–33; longer inputs
/// are truncated to 33 bytes). The bytes are not a real signature.
pub fn encode_twc_realtime_frame_signed(
    vin: &str,
    sent_at: FrameTime,
    seq: u16,
    samples: &[StreamSample],
    sig_r: &[u8],
    sig_s: &[u8],
) -> Vec<u8> {
    let sig_r = sig_r.get(..33).unwrap_or(sig_r);
    let sig_s = sig_s.get(..33).unwrap_or(sig_s);
    let sig_len = if sig_r.is_empty() {
        0
    } else {
        2 + sig_r.len() + sig_s.len()
    };
    let room = MAX_DATA_UNIT_LEN.saturating_sub(8 + sig_len) / TWC_BLOCK_LEN;
    let samples = samples.get(..room).unwrap_or(samples);
    let mut d = Vec::with_capacity(8 + samples.len() * TWC_BLOCK_LEN + sig_len);
    d.extend_from_slice(&sent_at.to_bytes());
    d.extend_from_slice(&seq.to_be_bytes());
    for s in samples {
        push_twc_block(&mut d, sent_at, s);
    }
    if sig_len > 0 {
        d.push(sig_r.len() as u8);
        d.extend_from_slice(sig_r);
        d.push(sig_s.len() as u8);
        d.extend_from_slice(sig_s);
    }
    encode_frame(0x02, vin, 0x01, 0x01, &d).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::*;
    use proptest::prelude::*;

    // --- hand-made frames ---------------------------------------------------------------------

    #[test]
    fn twc_encoder_roundtrip() {
        let sent = t(2024, 5, 6, 7, 8, 10);
        let samples: Vec<StreamSample> = (0..10).map(twc_sample).collect();
        let bytes = encode_twc_realtime_frame("LZGJX4W28PX000001", sent, 77, &samples);
        assert_eq!(bytes.len(), FRAME_OVERHEAD + 8 + 10 * TWC_BLOCK_LEN);
        let f = decode_frame(&bytes).expect("decodes");
        assert_eq!(
            (f.command, f.encryption, f.software_version),
            (Command::Realtime, 1, Some(1))
        );
        assert_eq!(f.vin, "LZGJX4W28PX000001");
        let (blocks, layout, times, sig, seq) = realtime(&f);
        assert_eq!(
            (layout, times, sig, seq),
            (SerialLayout::OncePerFrame, true, 0, Some(77))
        );
        if let Body::Realtime {
            sent_at,
            layouts_matched,
            ..
        } = &f.body
        {
            assert_eq!((*sent_at, *layouts_matched), (sent, 1));
        }
        for (b, want) in blocks.iter().zip(&samples) {
            let s = stream(b);
            assert_eq!(s.info_type, 3);
            assert_eq!(s.collected_at, want.collected_at);
            for (got, exp) in [
                (s.speed_kmh, want.speed_kmh),
                (s.barometric_kpa, want.barometric_kpa),
                (s.net_torque_pct, want.net_torque_pct),
                (s.friction_torque_pct, want.friction_torque_pct),
                (s.engine_rpm, want.engine_rpm),
                (s.fuel_flow_lph, want.fuel_flow_lph),
                (s.upstream_lambda, want.upstream_lambda),
                (s.rear_o2_v, want.rear_o2_v),
                (s.intake_air_kgph, want.intake_air_kgph),
                (s.coolant_c, want.coolant_c),
                (s.twc_temp_c, want.twc_temp_c),
                (s.lon_deg, want.lon_deg),
                (s.lat_deg, want.lat_deg),
                (s.odometer_km, want.odometer_km),
            ] {
                close(got, exp.unwrap());
            }
            assert_eq!(s.position_valid, Some(true));
            assert_eq!(
                (s.scr_up_nox_ppm, s.twc_down_nox_ppm, s.reagent_pct),
                (None, None, None)
            );
        }
    }

    #[test]
    fn twc_encoder_sentinels_and_signature() {
        let sent = t(2024, 5, 6, 7, 8, 10);
        let s = StreamSample {
            rear_o2_v: Some(1.28), // above 1.275 V -> sentinel
            lon_deg: Some(-0.5),
            lat_deg: Some(10.0),
            position_valid: Some(false),
            ..Default::default()
        };
        let bytes =
            encode_twc_realtime_frame_signed("VIN", sent, 1, &[s], &[0xAA; 32], &[0xBB; 32]);
        let f = decode_frame(&bytes).expect("decodes");
        assert_eq!(f.vin, "VIN");
        let (blocks, layout, times, sig, _) = realtime(&f);
        assert_eq!((layout, times, sig), (SerialLayout::OncePerFrame, true, 66));
        let d = stream(&blocks[0]);
        assert_eq!(d.rear_o2_v, None);
        assert_eq!(d.speed_kmh, None);
        assert_eq!(d.collected_at, Some(sent));
        // An invalid fix has no coordinates (never the numbers in the fields).
        assert_eq!(
            (d.position_valid, d.lon_deg, d.lat_deg),
            (Some(false), None, None)
        );
        // rear O2 1.27 V is still valid; all-None position encodes status 0xFF.
        let s = StreamSample {
            rear_o2_v: Some(1.27),
            ..Default::default()
        };
        let f = decode_frame(&encode_twc_realtime_frame("V", sent, 1, &[s])).unwrap();
        let d = stream(&realtime(&f).0[0]);
        close(d.rear_o2_v, 1.27);
        assert_eq!((d.position_valid, d.lon_deg, d.lat_deg), (None, None, None));
    }

    #[test]
    fn encoder_caps_samples() {
        let samples = vec![twc_sample(1); 2000];
        let bytes = encode_twc_realtime_frame("V", t(2024, 1, 1, 0, 0, 0), 1, &samples);
        assert!(bytes.len() <= MAX_FRAME_LEN);
        let f = decode_frame(&bytes).unwrap();
        assert_eq!(realtime(&f).0.len(), 1770);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

        /// Encoder/decoder round trip on quantised type-0x03 samples.
        #[test]
        fn twc_roundtrip(
            raws in prop::collection::vec((0u16..=0xFAFF, 0u8..=0xFA, 0u16..=0xFAFF, 0u8..=127, 0u32..=180_000_000, 0u32..=90_000_000, 0u32..=0xFAFF_FFFF, 0u8..8), 0..20),
            seq in any::<u16>(),
        ) {
            let samples: Vec<StreamSample> = raws.iter().map(|&(a, b, c, d, lon, lat, odo, st)| StreamSample {
                info_type: 3,
                collected_at: Some(t(2030, 12, 31, 23, 59, 59)),
                speed_kmh: Some(f64::from(a) * SPEED_SCALE),
                barometric_kpa: Some(f64::from(b) * 0.5),
                net_torque_pct: Some(f64::from(b) - 125.0),
                friction_torque_pct: Some(f64::from(b) - 125.0),
                engine_rpm: Some(f64::from(c) * 0.125),
                fuel_flow_lph: Some(f64::from(c) * 0.05),
                upstream_lambda: Some(f64::from(c) * LAMBDA_SCALE),
                rear_o2_v: Some(f64::from(d) * 0.01),
                intake_air_kgph: Some(f64::from(a) * 0.05),
                coolant_c: Some(f64::from(b) - 40.0),
                twc_temp_c: Some(f64::from(c) * TEMP_SCALE + TEMP_OFFSET),
                // Valid fixes only: an invalid one decodes without coordinates (not re-encodable).
                position_valid: Some(true),
                lon_deg: Some(f64::from(lon.max(1)) * DEG_SCALE * if st & 4 != 0 { -1.0 } else { 1.0 }),
                lat_deg: Some(f64::from(lat) * DEG_SCALE * if st & 2 != 0 && lat != 0 { -1.0 } else { 1.0 }),
                odometer_km: Some(f64::from(odo) * 0.1),
                ..Default::default()
            }).collect();
            let bytes = encode_twc_realtime_frame("LNGTRUCK000000001", t(2030, 12, 31, 23, 59, 59), seq, &samples);
            let f = decode_frame(&bytes).unwrap();
            let Body::Realtime { blocks, seq: got_seq, .. } = f.body else { panic!("not realtime") };
            prop_assert_eq!(got_seq, Some(seq));
            prop_assert_eq!(blocks.len(), samples.len());
            for (b, s) in blocks.iter().zip(&samples) {
                let InfoBlock::Stream(d) = b else { panic!("stream") };
                let again = encode_twc_realtime_frame("LNGTRUCK000000001", t(2030, 12, 31, 23, 59, 59), seq, std::slice::from_ref(d));
                let orig = encode_twc_realtime_frame("LNGTRUCK000000001", t(2030, 12, 31, 23, 59, 59), seq, std::slice::from_ref(s));
                prop_assert_eq!(again, orig);
            }
        }
    }
}
