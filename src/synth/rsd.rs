//! Seeded synthetic RSD data (SYNTHETIC, for benchmarks and the demo): a registry of
//! vehicles with Chinese plates, NDJSON passes over them, and ANPR plate reads.
//!
//! Distributions (documented so a reader can judge the realism):
//! - fleet: 70 % light vehicles (blue plates, 90 % petrol), 30 % trucks (yellow plates;
//!   diesel 70 %, natural gas 30 %); truck emission stages III 8 %, IV 22 %, V 35 %, VI 35 %
//!   with registration dates consistent with the stage; 5 % of vehicles are high emitters;
//! - passes: vehicle popularity ∝ 1/rank (Zipf), so some plates pass many times; 3 % of
//!   passes have no plate read; times spread over `days` days from 2026-10-01 00:00 +08:00;
//!   speed ~ N(40, 12) km/h, acceleration ~ N(0.3, 0.5) m/s², wind ~ |N(0, 2.5)| m/s;
//! - ratios to CO2 (mol/mol) are log-normal (emissions are gamma-like skewed,
//!   `remote-sensing.md §4.6`): CO/CO2 median 0.004 (petrol) / 0.002 (diesel), HC/CO2 median
//!   2e-4, NO/CO2 median 0.003 (petrol) / 0.004 (diesel), ×3–20 for high emitters; diesel
//!   opacity median 4 % (high emitters 35 %), Ringelmann from opacity.

use std::io::Write;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Province abbreviations weighted toward the Beijing–Tianjin–Hebei region (repeats = weight).
const PROVINCES: &[char] = &[
    '冀', '冀', '冀', '京', '京', '津', '津', '晋', '鲁', '豫', '蒙', '辽',
];
/// Plate letters: A–Z without I and O (`remote-sensing.md §6`).
const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const VIN_CHARS: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";

/// One synthetic registered vehicle.
#[derive(Clone, Debug)]
pub struct SynthVehicle {
    pub plate: String,
    pub plate_color: &'static str,
    pub vin: String,
    pub fuel: &'static str,
    pub emission_standard: u8,
    pub vehicle_type: &'static str,
    pub registered_on: String,
    pub high_emitter: bool,
}

/// RSD sites: id, grade %, lon, lat, urban entrance?
pub const SITES: &[(&str, f64, f64, f64)] = &[
    ("A130102001", 1.2, 114.5149, 38.0428),
    ("A130104002", 0.0, 114.4300, 38.0300),
    ("A110119001", 0.2, 115.9740, 40.4560),
    ("A120116003", 2.0, 117.7000, 39.0200),
    ("A140105001", 1.6, 112.5600, 37.8700),
    ("A370102004", -0.5, 117.0200, 36.6700),
];

fn normal(r: &mut ChaCha8Rng) -> f64 {
    // Box–Muller.
    let u1: f64 = r.random_range(1e-12..1.0);
    let u2: f64 = r.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn lognormal(r: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(r)).exp()
}

fn plate(r: &mut ChaCha8Rng) -> String {
    let mut p = String::new();
    p.push(PROVINCES[r.random_range(0..PROVINCES.len())]);
    p.push(LETTERS[r.random_range(0..LETTERS.len())] as char);
    for _ in 0..5 {
        if r.random_bool(0.7) {
            p.push((b'0' + r.random_range(0..10u8)) as char);
        } else {
            p.push(LETTERS[r.random_range(0..LETTERS.len())] as char);
        }
    }
    p
}

/// Share of vehicles that are high emitters in [`fleet`] (5 %).
pub const HIGH_EMITTER_SHARE: f64 = 0.05;

/// A fleet of `n` vehicles with distinct plates, [`HIGH_EMITTER_SHARE`] of them high emitters.
pub fn fleet(n: usize, seed: u64) -> Vec<SynthVehicle> {
    fleet_with(n, seed, &FleetMix::default())
}

/// Share of heavy trucks registered as China III in [`fleet`] (8 %).
pub const CHINA3_TRUCK_SHARE: f64 = 0.08;

/// The make-up of a generated fleet. The default gives the fleets of [`fleet`].
#[derive(Clone, Copy, Debug)]
pub struct FleetMix {
    /// Share of vehicles (0–1) that are high emitters: their passes fail most of the time.
    pub high_emitter_share: f64,
    /// Share of trucks (0–1) registered as China III (stage 3); the other stages keep their
    /// relative shares (IV 22 : V 35 : VI 35). About 70 % of trucks are diesel, so
    /// `0.5` makes about 12 % of passes China III diesel sightings (1.19 M of 10 M).
    pub china3_truck_share: f64,
}

impl Default for FleetMix {
    fn default() -> Self {
        FleetMix {
            high_emitter_share: HIGH_EMITTER_SHARE,
            china3_truck_share: CHINA3_TRUCK_SHARE,
        }
    }
}

/// A fleet of `n` vehicles with distinct plates in the proportions of `mix`; the same seed
/// gives the same plates and VINs whatever the mix, and the default mix the same fleet as
/// [`fleet`].
pub fn fleet_with(n: usize, seed: u64, mix: &FleetMix) -> Vec<SynthVehicle> {
    let high_emitter_share = mix.high_emitter_share;
    let s3 = mix.china3_truck_share;
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = plate(&mut r);
        if !seen.insert(p.clone()) {
            continue;
        }
        let truck = r.random_bool(0.3);
        let (plate_color, fuel, vehicle_type) = if truck {
            let t = ["H11", "H12", "Q11", "H21", "H17"][r.random_range(0..5)];
            (
                "yellow",
                if r.random_bool(0.7) {
                    "diesel"
                } else {
                    "natural_gas"
                },
                t,
            )
        } else {
            (
                "blue",
                if r.random_bool(0.9) {
                    "petrol"
                } else {
                    "diesel"
                },
                "K33",
            )
        };
        let u: f64 = r.random();
        let stage: u8 = if !truck {
            if u < 0.5 { 5 } else { 6 }
        } else if u < s3 {
            3
        } else {
            // Above s3, u is mapped onto the default's [0.08, 1) so that the other stages
            // keep their relative shares (the identity at the default s3 = 0.08).
            let v = CHINA3_TRUCK_SHARE + (u - s3) * (1.0 - CHINA3_TRUCK_SHARE) / (1.0 - s3);
            if v < 0.30 {
                4
            } else if v < 0.65 {
                5
            } else {
                6
            }
        };
        // Registration year consistent with the stage (China III HD diesel before 2013-07).
        let year = match stage {
            3 => r.random_range(2008..2013),
            4 => r.random_range(2013..2017),
            5 => r.random_range(2017..2021),
            _ => r.random_range(2021..2026),
        };
        let vin: String = (0..17)
            .map(|_| VIN_CHARS[r.random_range(0..VIN_CHARS.len())] as char)
            .collect();
        out.push(SynthVehicle {
            plate: p,
            plate_color,
            vin,
            fuel,
            emission_standard: stage,
            vehicle_type,
            registered_on: format!(
                "{year}-{:02}-{:02}",
                r.random_range(1..13),
                r.random_range(1..29)
            ),
            // One u64 drawn whatever the share (as `random_bool` draws for 0 < p < 1, so the
            // default share gives the same fleets as before the option).
            high_emitter: {
                let v: u64 = r.random();
                high_emitter_share >= 1.0 || (v as f64) < high_emitter_share * 2f64.powi(64)
            },
        });
    }
    out
}

/// Writes the registry CSV (canonical `vehicles` fields).
pub fn write_registry(w: &mut dyn Write, fleet: &[SynthVehicle]) -> std::io::Result<()> {
    let mut cw = csv::Writer::from_writer(w);
    cw.write_record([
        "plate",
        "plate_color",
        "vin",
        "fuel",
        "emission_standard",
        "vehicle_type",
        "registered_on",
    ])?;
    for v in fleet {
        cw.write_record([
            v.plate.as_str(),
            v.plate_color,
            &v.vin,
            v.fuel,
            &format!(
                "国{}",
                ["0", "I", "II", "III", "IV", "V", "VI"][v.emission_standard as usize]
            ),
            v.vehicle_type,
            &v.registered_on,
        ])?;
    }
    cw.flush()
}

/// 2026-10-01T00:00:00+08:00 in Unix ms.
pub const START_MS: i64 = 1_790_784_000_000;

fn pick(r: &mut ChaCha8Rng, n: usize) -> usize {
    // Zipf-like: index = floor(n^u) - 1 gives P(k) ∝ 1/k.
    let u: f64 = r.random();
    ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
}

/// Writes `count` NDJSON passes over `fleet`, spread over `days` days. Returns bytes written.
pub fn write_passes(
    w: &mut dyn Write,
    fleet: &[SynthVehicle],
    count: usize,
    days: u32,
    seed: u64,
) -> std::io::Result<u64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0f_7a55);
    let span_ms = days as f64 * 86_400_000.0;
    let mut bytes = 0u64;
    let mut line = String::with_capacity(512);
    for i in 0..count {
        use std::fmt::Write as _;
        let v = &fleet[pick(&mut r, fleet.len())];
        let (site, grade, lon, lat) = SITES[r.random_range(0..SITES.len())];
        let t = START_MS + (span_ms * (i as f64 + r.random::<f64>()) / count as f64) as i64;
        let diesel = v.fuel == "diesel";
        let k = if v.high_emitter { 1.0 } else { 0.0 };
        let co = lognormal(
            &mut r,
            if diesel { 0.002 } else { 0.004 } * (1.0 + 19.0 * k),
            0.9,
        );
        let hc = lognormal(&mut r, 2e-4 * (1.0 + 4.0 * k), 0.8);
        let no = lognormal(
            &mut r,
            if diesel { 0.004 } else { 0.003 } * (1.0 + 2.5 * k),
            0.6,
        );
        let speed = (40.0 + 12.0 * normal(&mut r)).clamp(3.0, 110.0);
        let accel = 0.3 + 0.5 * normal(&mut r);
        let wind = (2.5 * normal(&mut r)).abs();
        line.clear();
        let _ = write!(
            line,
            "{{\"pass_id\":\"SYN-{seed}-{i:09}\",\"passed_at\":{t},\"site_id\":\"{site}\",\"lane\":{}",
            1 + (i % 2)
        );
        if !r.random_bool(0.03) {
            let _ = write!(
                line,
                ",\"plate\":\"{}\",\"plate_color\":\"{}\"",
                v.plate, v.plate_color
            );
        }
        let _ = write!(
            line,
            ",\"fuel\":\"{}\",\"speed_kmh\":{speed:.2},\"accel_mps2\":{accel:.3},\"road_grade_pct\":{grade},\"co_co2_ratio\":{co:.6},\"hc_co2_ratio\":{hc:.7},\"no_co2_ratio\":{no:.6},\"wind_mps\":{wind:.2},\"ambient_temp_c\":{:.1},\"lon_deg\":{lon},\"lat_deg\":{lat}",
            v.fuel,
            8.0 + 6.0 * normal(&mut r)
        );
        if diesel {
            let op = lognormal(&mut r, if v.high_emitter { 35.0 } else { 4.0 }, 0.5).min(100.0);
            let ringelmann = if op > 40.0 {
                2
            } else if op > 20.0 {
                1
            } else {
                0
            };
            let _ = write!(line, ",\"opacity_pct\":{op:.1},\"ringelmann\":{ringelmann}");
        }
        line.push_str("}\n");
        w.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
    }
    Ok(bytes)
}

/// Writes `count` NDJSON plate reads at the sites (canonical `plate_read` fields).
pub fn write_plate_reads(
    w: &mut dyn Write,
    fleet: &[SynthVehicle],
    count: usize,
    days: u32,
    seed: u64,
) -> std::io::Result<()> {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0xca_3e7a);
    let span_ms = days as f64 * 86_400_000.0;
    for i in 0..count {
        let v = &fleet[pick(&mut r, fleet.len())];
        let (site, _, lon, lat) = SITES[r.random_range(0..SITES.len())];
        let t = START_MS + (span_ms * (i as f64 + r.random::<f64>()) / count as f64) as i64;
        let conf = 80.0 + 20.0 * r.random::<f64>();
        writeln!(
            w,
            "{{\"read_id\":\"PR-{seed}-{i:08}\",\"read_at\":{t},\"site_id\":\"C{}\",\"plate\":\"{}\",\"plate_color\":\"{}\",\"confidence_pct\":{conf:.1},\"lon_deg\":{lon},\"lat_deg\":{lat}}}",
            &site[1..],
            v.plate,
            v.plate_color
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_emitter_share_changes_only_the_high_emitters() {
        let base = fleet(2000, 7);
        let he = |share| FleetMix {
            high_emitter_share: share,
            ..FleetMix::default()
        };
        let none = fleet_with(2000, 7, &he(0.0));
        let all = fleet_with(2000, 7, &he(1.0));
        let some = fleet_with(2000, 7, &he(0.25));
        for f in [&none, &all, &some] {
            assert!(
                f.iter()
                    .zip(&base)
                    .all(|(a, b)| a.plate == b.plate && a.vin == b.vin)
            );
        }
        let n = |f: &[SynthVehicle]| f.iter().filter(|v| v.high_emitter).count();
        assert_eq!((n(&none), n(&all)), (0, 2000));
        // 2,000 draws at p = 0.25: 500 ± 3 standard deviations (19.4).
        assert!((442..=558).contains(&n(&some)), "{}", n(&some));
        assert!((60..=140).contains(&n(&base)), "{}", n(&base));
    }

    #[test]
    fn china3_truck_share_moves_trucks_to_stage_3_only() {
        let base = fleet(4000, 7);
        let half = fleet_with(
            4000,
            7,
            &FleetMix {
                china3_truck_share: 0.5,
                ..FleetMix::default()
            },
        );
        let mut trucks = 0;
        for (a, b) in half.iter().zip(&base) {
            assert_eq!((&a.plate, &a.vin, a.fuel), (&b.plate, &b.vin, b.fuel));
            if a.plate_color == "blue" {
                assert_eq!(a.emission_standard, b.emission_standard, "{}", a.plate);
                continue;
            }
            trucks += 1;
            // A truck at stage 3 by default stays there; the others move to 3 or keep an
            // order-preserving stage (the map is monotone in the same draw).
            if b.emission_standard == 3 {
                assert_eq!(a.emission_standard, 3);
            } else {
                assert!(a.emission_standard == 3 || a.emission_standard <= b.emission_standard);
            }
        }
        let s3 = |f: &[SynthVehicle]| {
            f.iter()
                .filter(|v| v.plate_color == "yellow" && v.emission_standard == 3)
                .count() as f64
                / trucks as f64
        };
        // ~1,200 trucks: 3 standard deviations of a share at p = 0.5 is about 0.043, at
        // p = 0.08 about 0.024.
        assert!((s3(&half) - 0.5).abs() < 0.043, "{}", s3(&half));
        assert!((s3(&base) - 0.08).abs() < 0.024, "{}", s3(&base));
    }

    #[test]
    fn generation_is_seeded_and_plates_are_standard() {
        let a = fleet(200, 7);
        let b = fleet(200, 7);
        assert_eq!(
            a.iter().map(|v| &v.plate).collect::<Vec<_>>(),
            b.iter().map(|v| &v.plate).collect::<Vec<_>>()
        );
        for v in &a {
            let p = crate::model::Plate::normalise(&v.plate).unwrap();
            assert_eq!(
                p.status(),
                crate::model::PlateStatus::Standard,
                "{}",
                v.plate
            );
        }
        let mut x = Vec::new();
        let mut y = Vec::new();
        write_passes(&mut x, &a, 100, 3, 7).unwrap();
        write_passes(&mut y, &a, 100, 3, 7).unwrap();
        assert_eq!(x, y);
        assert_eq!(x.iter().filter(|&&c| c == b'\n').count(), 100);
    }
}
