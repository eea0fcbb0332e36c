//! Writers for the labelled SYNTHETIC OBD fleet (`plumewatch gen obd` / `gen frames`): the
//! same vehicles as `obd_sample` NDJSON or as HJ 1239 type-0x03 frames, plus a labels CSV
//! (vin, class, expected rules) and a registry CSV (natural gas, China VI, Q11 tractors) so
//! the `gas-twc-suspects` list can be exercised end to end. Models: `synth::obd_fleet`.

use std::io::{self, Write};

use crate::decode::hj1239::{FrameTime, StreamSample, encode_twc_realtime_frame};
use crate::detect::twc::ObdPoint;
use crate::synth::obd_fleet::{FleetClass, class_for_index, generate_vehicle};

/// 2026-10-01T00:00:00+08:00.
pub const START_MS: i64 = super::rsd::START_MS;

/// VIN of fleet vehicle `i` (17 characters, no I/O/Q).
pub fn vin_for(i: usize, seed: u64) -> String {
    format!("LSYN{:03}{:010}", seed % 1000, i)
}

/// What a fleet writer produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct FleetOutput {
    pub vehicles: usize,
    pub samples: u64,
    pub frames: u64,
    pub bytes: u64,
}

/// Writes the labels CSV and the registry CSV of the fleet.
pub fn write_labels_and_registry(
    labels: &mut dyn Write,
    registry: &mut dyn Write,
    vehicles: usize,
    seed: u64,
) -> io::Result<()> {
    writeln!(labels, "vin,class,expected_rules")?;
    writeln!(
        registry,
        "plate,plate_color,vin,fuel,emission_standard,vehicle_type,registered_on"
    )?;
    let provinces = ['冀', '晋', '鲁', '豫', '津', '京'];
    for i in 0..vehicles {
        let c = class_for_index(i, seed);
        let rules: Vec<&str> = c.expected_rules().iter().map(|r| r.rule_id()).collect();
        let vin = vin_for(i, seed);
        writeln!(labels, "{vin},{},{}", c.name(), rules.join(";"))?;
        let plate = format!(
            "{}{}{:05}",
            provinces[i % provinces.len()],
            ['A', 'B', 'C', 'D', 'E'][(i / 6) % 5],
            i % 100_000
        );
        writeln!(
            registry,
            "{plate},yellow,{vin},natural_gas,国VI,Q11,2022-0{}-15",
            1 + i % 9
        )?;
    }
    Ok(())
}

fn each_vehicle(
    vehicles: usize,
    minutes: u32,
    seed: u64,
    mut f: impl FnMut(&str, FleetClass, &[ObdPoint]) -> io::Result<()>,
) -> io::Result<()> {
    for i in 0..vehicles {
        let vin = vin_for(i, seed);
        let class = class_for_index(i, seed);
        let pts = generate_vehicle(
            &vin,
            class,
            minutes,
            seed,
            START_MS + (i as i64 % 600) * 1000,
        );
        f(&vin, class, &pts)?;
    }
    Ok(())
}

fn num(line: &mut String, name: &str, v: Option<f64>, digits: usize) {
    use std::fmt::Write as _;
    if let Some(v) = v.filter(|v| v.is_finite()) {
        let _ = write!(line, ",\"{name}\":{v:.digits$}");
    }
}

/// Writes the fleet as `obd_sample` NDJSON (schemas/obd_sample.schema.json).
pub fn write_ndjson(
    w: &mut dyn Write,
    vehicles: usize,
    minutes: u32,
    seed: u64,
) -> io::Result<FleetOutput> {
    let mut out = FleetOutput {
        vehicles,
        ..Default::default()
    };
    let mut line = String::with_capacity(400);
    each_vehicle(vehicles, minutes, seed, |vin, _, pts| {
        for p in pts {
            line.clear();
            line.push_str("{\"vin\":\"");
            line.push_str(vin);
            line.push_str("\",\"sampled_at\":");
            line.push_str(&p.t_ms.to_string());
            line.push_str(",\"info_type\":3");
            num(&mut line, "speed_kmh", p.speed_kmh, 2);
            num(&mut line, "engine_rpm", p.engine_rpm, 1);
            num(&mut line, "coolant_c", p.coolant_c, 1);
            num(&mut line, "upstream_lambda", p.upstream_lambda, 5);
            num(&mut line, "rear_o2_v", p.rear_o2_v, 3);
            num(&mut line, "fuel_flow_lph", p.fuel_flow_lph, 2);
            num(&mut line, "net_torque_pct", p.net_torque_pct, 1);
            num(&mut line, "friction_torque_pct", p.friction_torque_pct, 1);
            line.push_str("}\n");
            w.write_all(line.as_bytes())?;
            out.bytes += line.len() as u64;
            out.samples += 1;
        }
        Ok(())
    })?;
    Ok(out)
}

/// Writes the fleet as HJ 1239 real-time frames (type 0x03 blocks, 10 per frame, each with
/// its own collection time), back to back.
pub fn write_frames(
    w: &mut dyn Write,
    vehicles: usize,
    minutes: u32,
    seed: u64,
) -> io::Result<FleetOutput> {
    let mut out = FleetOutput {
        vehicles,
        ..Default::default()
    };
    each_vehicle(vehicles, minutes, seed, |vin, _, pts| {
        for (k, chunk) in pts.chunks(10).enumerate() {
            let samples: Vec<StreamSample> = chunk
                .iter()
                .map(|p| StreamSample {
                    info_type: 3,
                    collected_at: FrameTime::from_unix_ms_utc8(nearest_second(p.t_ms)),
                    speed_kmh: p.speed_kmh,
                    engine_rpm: p.engine_rpm,
                    coolant_c: p.coolant_c,
                    upstream_lambda: p.upstream_lambda,
                    rear_o2_v: p.rear_o2_v,
                    fuel_flow_lph: p.fuel_flow_lph,
                    net_torque_pct: p.net_torque_pct,
                    friction_torque_pct: p.friction_torque_pct,
                    ..Default::default()
                })
                .collect();
            let sent = chunk
                .last()
                .and_then(|p| FrameTime::from_unix_ms_utc8(nearest_second(p.t_ms)));
            let Some(sent) = sent else { continue };
            let f = encode_twc_realtime_frame(vin, sent, k as u16, &samples);
            w.write_all(&f)?;
            out.bytes += f.len() as u64;
            out.frames += 1;
            out.samples += samples.len() as u64;
        }
        Ok(())
    })?;
    Ok(out)
}

/// Frames carry whole seconds: round (not truncate) the ±3 ms jitter of the model's clock,
/// so consecutive 1 Hz samples never share a second.
fn nearest_second(ms: i64) -> i64 {
    (ms + 500).div_euclid(1000) * 1000
}
