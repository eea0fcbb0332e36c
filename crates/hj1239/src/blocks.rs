//! Information blocks of a real-time data unit — OBD (0x01), data streams (0x02/0x03/0x05),
//! hybrid (0x04), supplementary (0x80) — and their decoders (obd-remote-monitoring.md
//! §1.6–§1.8).

use crate::dtc::{Dtc, decode_dtc};
use crate::read::{
    DEG_SCALE, LAMBDA_SCALE, NOX_OFFSET, NOX_SCALE, REAR_O2_MAX_RAW, Rd, SPEED_SCALE, TEMP_OFFSET,
    TEMP_SCALE, ascii_field, hex_upper, v1, v2, v4,
};
use crate::time::FrameTime;
use serde::Serialize;

/// One information block of a real-time data unit (obd-remote-monitoring.md §1.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum InfoBlock {
    /// Type 0x01 OBD information (§1.6).
    Obd(ObdReport),
    /// Types 0x02 (DPF/SCR diesel), 0x03 (TWC gas), 0x05 (TWC with NOx sensor) (§1.7).
    Stream(StreamSample),
    /// Type 0x04 hybrid (§1.7).
    Hybrid(HybridSample),
    /// Type 0x80 supplementary stream (§1.7).
    Supplementary(SupplementarySample),
    /// A user-defined type (0x81–0xFE) of unknown length; only produced as the last block, when
    /// no layout decodes the body with known types alone. `data` is the rest of the body.
    Unknown {
        /// Information type byte.
        info_type: u8,
        /// Collection time, when the layout carries one.
        collected_at: Option<FrameTime>,
        /// Undecoded bytes (rest of the data unit).
        data: Vec<u8>,
    },
}

/// OBD information block, type 0x01: 96 bytes + 4·N (obd-remote-monitoring.md §1.6).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObdReport {
    /// Block collection time (HJ 1239.3 layout only).
    pub collected_at: Option<FrameTime>,
    /// OBD protocol: 0 ISO 15765, 1 ISO 27145, 2 SAE J1939; `None` for 0xFE/0xFF.
    pub protocol: Option<u8>,
    /// MIL status: 0 off, 1 on; `None` for 0xFE or any other value.
    pub mil_on: Option<bool>,
    /// Diagnostic support status bitmask (b0 catalyst … b15 comprehensive component, §1.6);
    /// `None` only for 0xFFFF (a bitmask may legitimately exceed 0xFAFF).
    pub diag_support: Option<u16>,
    /// Diagnostic readiness status bitmask (same bit order); `None` only for 0xFFFF.
    pub diag_readiness: Option<u16>,
    /// VIN reported by the ECU.
    pub vin: String,
    /// Software calibration ID (18 ASCII bytes, fill trimmed).
    pub calibration_id: String,
    /// Calibration verification number, uppercase hex of all 18 raw bytes (binary CVN plus
    /// whatever fill the terminal used; compare as-is over time).
    pub cvn: String,
    /// In-use performance ratio words 0–17 (J1979 order: OBDCOND, IGNCNTR, CATCOMP1, CATCOND1 …
    /// SO2SCOMP1, SO2SCOND1), counts; `None` for raw > 0xFAFF.
    pub iupr: Vec<Option<u16>>,
    /// DTC codes, e.g. `"P0420"` (see [`Dtc::code`]).
    pub dtcs: Vec<String>,
    /// DTCs with raw bytes and status.
    pub dtc_details: Vec<Dtc>,
}

/// Data-stream sample, info type 0x02 (diesel DPF/SCR), 0x03 (gas TWC) or 0x05 (gas TWC with
/// NOx sensor), obd-remote-monitoring.md §1.7. `phys = raw × scale + offset`; a field is `None`
/// when it does not exist in the type or its raw value is a sentinel (§1.8: 1-byte raw > 0xFA,
/// 2-byte > 0xFAFF, 4-byte > 0xFAFFFFFF; rear O2 above 1.275 V).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamSample {
    /// 0x02, 0x03 or 0x05.
    pub info_type: u8,
    /// Block collection time (HJ 1239.3 layout only).
    pub collected_at: Option<FrameTime>,
    /// Vehicle speed, km/h (2 B × 1/256).
    pub speed_kmh: Option<f64>,
    /// Barometric pressure, kPa (1 B × 0.5).
    pub barometric_kpa: Option<f64>,
    /// Engine net output torque, % of reference (1 B − 125).
    pub net_torque_pct: Option<f64>,
    /// Friction torque, % (1 B − 125).
    pub friction_torque_pct: Option<f64>,
    /// Engine speed, rpm (2 B × 0.125).
    pub engine_rpm: Option<f64>,
    /// Engine fuel flow, L/h (2 B × 0.05).
    pub fuel_flow_lph: Option<f64>,
    /// SCR upstream NOx, ppm (2 B × 0.05 − 200), type 0x02.
    pub scr_up_nox_ppm: Option<f64>,
    /// SCR downstream NOx, ppm (2 B × 0.05 − 200), type 0x02.
    pub scr_down_nox_ppm: Option<f64>,
    /// Reagent (urea) level, % (1 B × 0.4), type 0x02.
    pub reagent_pct: Option<f64>,
    /// Intake air flow, kg/h (2 B × 0.05).
    pub intake_air_kgph: Option<f64>,
    /// SCR inlet temperature, °C (2 B × 0.03125 − 273), type 0x02.
    pub scr_in_temp_c: Option<f64>,
    /// SCR outlet temperature, °C (2 B × 0.03125 − 273), type 0x02.
    pub scr_out_temp_c: Option<f64>,
    /// DPF differential pressure, kPa (2 B × 0.1), type 0x02.
    pub dpf_dp_kpa: Option<f64>,
    /// Coolant temperature, °C (1 B − 40).
    pub coolant_c: Option<f64>,
    /// Fuel tank level, % (1 B × 0.4), type 0x02.
    pub tank_pct: Option<f64>,
    /// TWC upstream O2 sensor output, lambda (dimensionless, 2 B × 0.0000305), types 0x03/0x05.
    pub upstream_lambda: Option<f64>,
    /// TWC downstream (rear) O2 sensor voltage, V (1 B × 0.01; `None` above 1.275 V, §1.8),
    /// types 0x03/0x05.
    pub rear_o2_v: Option<f64>,
    /// TWC downstream NOx, ppm (2 B × 0.05 − 200), type 0x05.
    pub twc_down_nox_ppm: Option<f64>,
    /// TWC temperature, °C (2 B × 0.03125 − 273), types 0x03/0x05.
    pub twc_temp_c: Option<f64>,
    /// Position status bit 0 (0 = valid); `None` when the status byte is > 0xFA.
    pub position_valid: Option<bool>,
    /// Longitude, degrees (4 B × 1e-6), negative when status bit 2 (W) is set.
    pub lon_deg: Option<f64>,
    /// Latitude, degrees (4 B × 1e-6), negative when status bit 1 (S) is set.
    pub lat_deg: Option<f64>,
    /// Odometer, km (4 B × 0.1).
    pub odometer_km: Option<f64>,
}

/// Hybrid block, type 0x04, 8 bytes (obd-remote-monitoring.md §1.7).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HybridSample {
    /// Block collection time (HJ 1239.3 layout only).
    pub collected_at: Option<FrameTime>,
    /// Motor speed, rpm (2 B × 1).
    pub motor_rpm: Option<f64>,
    /// Motor load, % (1 B × 1).
    pub motor_load_pct: Option<f64>,
    /// Traction battery voltage, V (2 B × 0.1).
    pub battery_v: Option<f64>,
    /// Traction battery current, A (2 B × 0.1 − 1000).
    pub battery_a: Option<f64>,
    /// Battery state of charge, % (1 B × 1).
    pub soc_pct: Option<f64>,
}

/// Supplementary stream, type 0x80, 17 bytes (obd-remote-monitoring.md §1.7).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SupplementarySample {
    /// Block collection time (HJ 1239.3 layout only).
    pub collected_at: Option<FrameTime>,
    /// Engine torque mode enum (0 overspeed fail, 1 speed ctl, 2 torque ctl, 3 speed/torque,
    /// 9 normal); `None` for > 0xFA.
    pub torque_mode: Option<u8>,
    /// Accelerator pedal, % (1 B × 0.4).
    pub accelerator_pct: Option<f64>,
    /// Cumulative fuel consumption, L (4 B × 0.5).
    pub cumulative_fuel_l: Option<f64>,
    /// Urea tank temperature, °C (1 B − 40).
    pub urea_tank_temp_c: Option<f64>,
    /// Actual urea dosing, mL/h (4 B × 0.01).
    pub urea_dosing_ml_h: Option<f64>,
    /// Cumulative urea consumption, g (4 B × 1).
    pub cumulative_urea_g: Option<f64>,
    /// DPF exhaust temperature, °C (2 B × 0.03125 − 273).
    pub dpf_exhaust_temp_c: Option<f64>,
}

pub(crate) fn decode_block(t: u8, ct: Option<FrameTime>, b: &[u8]) -> Option<InfoBlock> {
    let mut r = Rd::new(b);
    Some(match t {
        0x01 => InfoBlock::Obd(decode_obd(ct, &mut r)?),
        0x02 | 0x03 | 0x05 => InfoBlock::Stream(decode_stream(t, ct, &mut r)?),
        0x04 => InfoBlock::Hybrid(HybridSample {
            collected_at: ct,
            motor_rpm: v2(r.u16()?, 1.0, 0.0),
            motor_load_pct: v1(r.u8()?, 1.0, 0.0),
            battery_v: v2(r.u16()?, 0.1, 0.0),
            battery_a: v2(r.u16()?, 0.1, -1000.0),
            soc_pct: v1(r.u8()?, 1.0, 0.0),
        }),
        0x80 => InfoBlock::Supplementary(SupplementarySample {
            collected_at: ct,
            torque_mode: r.u8().map(|m| (m <= 0xFA).then_some(m))?,
            accelerator_pct: v1(r.u8()?, 0.4, 0.0),
            cumulative_fuel_l: v4(r.u32()?, 0.5, 0.0),
            urea_tank_temp_c: v1(r.u8()?, 1.0, -40.0),
            urea_dosing_ml_h: v4(r.u32()?, 0.01, 0.0),
            cumulative_urea_g: v4(r.u32()?, 1.0, 0.0),
            dpf_exhaust_temp_c: v2(r.u16()?, TEMP_SCALE, TEMP_OFFSET),
        }),
        _ => InfoBlock::Unknown {
            info_type: t,
            collected_at: ct,
            data: b.to_vec(),
        },
    })
}

fn decode_obd(ct: Option<FrameTime>, r: &mut Rd<'_>) -> Option<ObdReport> {
    let protocol = r.u8().map(|p| (p < 0xFE).then_some(p))?;
    let mil_on = match r.u8()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    };
    let bitmask = |v: u16| (v != 0xFFFF).then_some(v);
    let diag_support = bitmask(r.u16()?);
    let diag_readiness = bitmask(r.u16()?);
    let vin = ascii_field(r.take(17)?);
    let calibration_id = ascii_field(r.take(18)?);
    let cvn = hex_upper(r.take(18)?);
    let mut iupr = Vec::with_capacity(18);
    for _ in 0..18 {
        let w = r.u16()?;
        iupr.push((w <= 0xFAFF).then_some(w));
    }
    let n = r.u8()?;
    let mut dtc_details = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        dtc_details.push(decode_dtc(protocol, r.arr::<4>()?));
    }
    let dtcs = dtc_details.iter().map(|d| d.code.clone()).collect();
    Some(ObdReport {
        collected_at: ct,
        protocol,
        mil_on,
        diag_support,
        diag_readiness,
        vin,
        calibration_id,
        cvn,
        iupr,
        dtcs,
        dtc_details,
    })
}

/// Position status byte and coordinates (§1.7 "Position status"): `(valid, lon, lat)`.
///
/// Coordinates are given only for a usable fix: status bit 0 clear (valid) and a known status
/// byte (≤ 0xFA, §1.8). An invalid or unknown fix gives `None` for both, never the (0, 0) or
/// stale numbers the terminal put in the fields; so does (0, 0) itself, which is an
/// uninitialised receiver, not a place (field case obd-invalid-position-zero).
pub(crate) fn decode_position(
    status: u8,
    lon: u32,
    lat: u32,
) -> (Option<bool>, Option<f64>, Option<f64>) {
    let known = status <= 0xFA;
    let valid = known.then_some(status & 0x01 == 0);
    if valid != Some(true) || (lon == 0 && lat == 0) {
        return (valid, None, None);
    }
    let sign = |neg: bool| if neg { -1.0 } else { 1.0 };
    (
        valid,
        v4(lon, DEG_SCALE, 0.0).map(|v| v * sign(status & 0x04 != 0)),
        v4(lat, DEG_SCALE, 0.0).map(|v| v * sign(status & 0x02 != 0)),
    )
}

fn decode_stream(t: u8, ct: Option<FrameTime>, r: &mut Rd<'_>) -> Option<StreamSample> {
    let mut s = StreamSample {
        info_type: t,
        collected_at: ct,
        speed_kmh: v2(r.u16()?, SPEED_SCALE, 0.0),
        barometric_kpa: v1(r.u8()?, 0.5, 0.0),
        net_torque_pct: v1(r.u8()?, 1.0, -125.0),
        friction_torque_pct: v1(r.u8()?, 1.0, -125.0),
        engine_rpm: v2(r.u16()?, 0.125, 0.0),
        fuel_flow_lph: v2(r.u16()?, 0.05, 0.0),
        ..Default::default()
    };
    if t == 0x02 {
        s.scr_up_nox_ppm = v2(r.u16()?, NOX_SCALE, NOX_OFFSET);
        s.scr_down_nox_ppm = v2(r.u16()?, NOX_SCALE, NOX_OFFSET);
        s.reagent_pct = v1(r.u8()?, 0.4, 0.0);
        s.intake_air_kgph = v2(r.u16()?, 0.05, 0.0);
        s.scr_in_temp_c = v2(r.u16()?, TEMP_SCALE, TEMP_OFFSET);
        s.scr_out_temp_c = v2(r.u16()?, TEMP_SCALE, TEMP_OFFSET);
        s.dpf_dp_kpa = v2(r.u16()?, 0.1, 0.0);
        s.coolant_c = v1(r.u8()?, 1.0, -40.0);
        s.tank_pct = v1(r.u8()?, 0.4, 0.0);
    } else {
        s.upstream_lambda = v2(r.u16()?, LAMBDA_SCALE, 0.0);
        let rear = r.u8()?;
        s.rear_o2_v = (rear <= REAR_O2_MAX_RAW).then(|| f64::from(rear) * 0.01);
        if t == 0x05 {
            s.twc_down_nox_ppm = v2(r.u16()?, NOX_SCALE, NOX_OFFSET);
        }
        s.intake_air_kgph = v2(r.u16()?, 0.05, 0.0);
        s.coolant_c = v1(r.u8()?, 1.0, -40.0);
        s.twc_temp_c = v2(r.u16()?, TEMP_SCALE, TEMP_OFFSET);
    }
    let (valid, lon, lat) = decode_position(r.u8()?, r.u32()?, r.u32()?);
    s.position_valid = valid;
    s.lon_deg = lon;
    s.lat_deg = lat;
    s.odometer_km = v4(r.u32()?, 0.1, 0.0);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::*;

    fn stream_head() -> Vec<u8> {
        // speed 0x2323 (contains "##"), baro 200, torque 125, friction 125, rpm 0x1F40, fuel 0x0064
        vec![0x23, 0x23, 200, 125, 125, 0x1F, 0x40, 0x00, 0x64]
    }

    #[test]
    fn type05_hybrid_supplementary_hand_built() {
        let sent = t(2024, 1, 2, 3, 4, 5);
        let mut d = sent.to_bytes().to_vec();
        d.extend_from_slice(&[0x12, 0x34]); // serial once
        // 0x05 TWC with NOx: head | lambda 0x8000 | rear 0x41 | NOx 0x1000 | air 0x0100 | coolant 0x7D
        // | TWC temp 0x4000 | status 0x06 (valid, S, W) | lon | lat | odo
        d.push(0x05);
        d.extend_from_slice(&stream_head());
        d.extend_from_slice(&[
            0x80, 0x00, 0x41, 0x10, 0x00, 0x01, 0x00, 0x7D, 0x40, 0x00, 0x06,
        ]);
        d.extend_from_slice(&100_000_000u32.to_be_bytes());
        d.extend_from_slice(&30_000_000u32.to_be_bytes());
        d.extend_from_slice(&0xFFFF_FFFFu32.to_be_bytes());
        // 0x04 hybrid: rpm 3000 | load 50 | 0x0FA0 V | 0x2710 A | SOC 0xFF
        d.push(0x04);
        d.extend_from_slice(&[0x0B, 0xB8, 50, 0x0F, 0xA0, 0x27, 0x10, 0xFF]);
        // 0x80 supplementary: mode 9 | pedal 100 | fuel 2000 | urea temp 60 | dosing 12345 |
        // urea 0xFB000000 (sentinel) | DPF temp 0x3000
        d.push(0x80);
        d.extend_from_slice(&[9, 100]);
        d.extend_from_slice(&2000u32.to_be_bytes());
        d.push(60);
        d.extend_from_slice(&12345u32.to_be_bytes());
        d.extend_from_slice(&0xFB00_0000u32.to_be_bytes());
        d.extend_from_slice(&[0x30, 0x00]);
        let f = decode_frame(&encode_frame(0x03, "LNGTRUCK000000001", 6, 1, &d).unwrap()).unwrap();
        assert_eq!(f.command, Command::Resend);
        let (blocks, layout, times, _, seq) = realtime(&f);
        assert_eq!(
            (layout, times, seq, blocks.len()),
            (SerialLayout::OncePerFrame, false, Some(0x1234), 3)
        );
        let s = stream(&blocks[0]);
        assert_eq!(s.info_type, 5);
        close(s.speed_kmh, 0x2323 as f64 / 256.0);
        close(s.barometric_kpa, 100.0);
        close(s.net_torque_pct, 0.0);
        close(s.engine_rpm, 1000.0);
        close(s.fuel_flow_lph, 5.0);
        close(s.upstream_lambda, 32768.0 * 0.0000305);
        close(s.rear_o2_v, 0.65);
        close(s.twc_down_nox_ppm, 4096.0 * 0.05 - 200.0);
        close(s.intake_air_kgph, 12.8);
        close(s.coolant_c, 85.0);
        close(s.twc_temp_c, 16384.0 / 32.0 - 273.0);
        assert_eq!(s.position_valid, Some(true));
        close(s.lon_deg, -100.0);
        close(s.lat_deg, -30.0);
        assert_eq!(s.odometer_km, None);
        let InfoBlock::Hybrid(h) = &blocks[1] else {
            panic!("hybrid")
        };
        close(h.motor_rpm, 3000.0);
        close(h.motor_load_pct, 50.0);
        close(h.battery_v, 400.0);
        close(h.battery_a, 0.0);
        assert_eq!(h.soc_pct, None);
        let InfoBlock::Supplementary(x) = &blocks[2] else {
            panic!("supplementary")
        };
        assert_eq!(x.torque_mode, Some(9));
        close(x.accelerator_pct, 40.0);
        close(x.cumulative_fuel_l, 1000.0);
        close(x.urea_tank_temp_c, 20.0);
        close(x.urea_dosing_ml_h, 123.45);
        assert_eq!(x.cumulative_urea_g, None);
        close(x.dpf_exhaust_temp_c, 12288.0 / 32.0 - 273.0);
    }
}
