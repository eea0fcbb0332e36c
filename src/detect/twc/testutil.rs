//! Test drives shared by the TWC tests: synthetic warm drives, healthy and faulty rear
//! sensors, arbitrary input.

use super::*;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Simple deterministic pseudo-noise in [-1, 1) (no RNG dependency needed here).
pub(super) fn noise(i: u64, salt: u64) -> f64 {
    let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// A warm, closed-loop drive: λ dithers around 0.99, a fuel cut (λ 1.23) of 5 s every 60 s.
/// `rear(i, in_cut, since_cut_s)` gives the rear voltage.
pub(super) fn drive(
    n: u64,
    t0: i64,
    rear: impl Fn(u64, bool, u64) -> Option<f64>,
) -> Vec<ObdPoint> {
    let mut v = Vec::new();
    let mut since_cut = 1000;
    for i in 0..n {
        let in_cut = i % 60 >= 30 && i % 60 < 35;
        if in_cut {
            since_cut = 0;
        } else {
            since_cut += 1;
        }
        let lam = if in_cut {
            1.232
        } else {
            0.99 + 0.02 * noise(i, 1)
        };
        v.push(ObdPoint {
            t_ms: t0 + (i as i64) * 1000,
            speed_kmh: Some(if in_cut {
                60.0 - (i % 60 - 30) as f64
            } else {
                60.0
            }),
            engine_rpm: Some(1800.0 + 50.0 * noise(i, 2)),
            coolant_c: Some(if i < 200 { 40.0 + 0.2 * i as f64 } else { 90.0 }),
            upstream_lambda: Some(lam),
            rear_o2_v: rear(i, in_cut, since_cut),
            fuel_flow_lph: Some(if in_cut { 0.0 } else { 5.0 }),
            net_torque_pct: Some(if in_cut { -8.0 } else { 30.0 }),
            friction_torque_pct: Some(8.0),
            commanded_lambda: Some(1.0),
        });
    }
    v
}

pub(super) fn healthy_rear(i: u64, in_cut: bool, since_cut: u64) -> Option<f64> {
    let v = if in_cut && i % 60 > 30 {
        0.02
    } else if since_cut < 6 {
        0.05 + 0.1 * since_cut as f64
    } else {
        0.76 + 0.03 * noise(i, 3)
    };
    Some(v)
}

pub(super) fn run(points: &[ObdPoint]) -> Vec<TwcFinding> {
    let th = TwcThresholds::default();
    let mut st = TwcState::default();
    let mut out = Vec::new();
    for p in points {
        st.update(p, &th, &mut out);
    }
    out
}

pub(super) fn ev(f: &TwcFinding, k: &str) -> f64 {
    f.evidence
        .iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {k} in {f:?}"))
}

pub(super) fn with_lambda(pts: &mut [ObdPoint], f: impl Fn(f64) -> f64) {
    for p in pts {
        p.upstream_lambda = p.upstream_lambda.map(&f);
    }
}

/// A low-voltage simulator: rear = level + amp·sin(2πt/period), warm closed loop.
pub(super) fn low_sim(
    level: f64,
    amp: f64,
    period_s: f64,
) -> impl Fn(u64, bool, u64) -> Option<f64> {
    move |i, _, _| {
        let t = i as f64;
        Some(level + amp * (2.0 * std::f64::consts::PI * t / period_s).sin())
    }
}

/// A drive without fuel cuts: λ dithers, cruise at 80 km/h.
pub(super) fn drive_nocut(n: u64, rear: impl Fn(u64) -> Option<f64>) -> Vec<ObdPoint> {
    (0..n)
        .map(|i| ObdPoint {
            t_ms: i as i64 * 1000,
            speed_kmh: Some(80.0 + 2.0 * noise(i, 30)),
            engine_rpm: Some(1900.0 + 50.0 * noise(i, 31)),
            coolant_c: Some(if i < 200 {
                40.0 + 0.25 * i as f64
            } else {
                90.0
            }),
            upstream_lambda: Some(0.995 + 0.02 * noise(i, 32)),
            rear_o2_v: rear(i),
            fuel_flow_lph: Some(6.0),
            net_torque_pct: Some(35.0),
            friction_torque_pct: Some(8.0),
            commanded_lambda: Some(1.0),
        })
        .collect()
}

/// A random field value: missing, NaN/inf, extreme, or plausible.
pub(super) fn wild(rng: &mut ChaCha8Rng) -> Option<f64> {
    match rng.random_range(0..8u32) {
        0 => None,
        1 => Some(f64::NAN),
        2 => Some(if rng.random::<bool>() {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        }),
        3 => Some(f64::from_bits(rng.random::<u64>())),
        4 => Some(rng.random_range(-1e6..1e6)),
        5 => Some(rng.random_range(0.0..2.0)),
        _ => Some(rng.random_range(-10.0..3000.0)),
    }
}

pub(super) fn wild_point(rng: &mut ChaCha8Rng, t_ms: i64) -> ObdPoint {
    ObdPoint {
        t_ms,
        speed_kmh: wild(rng),
        engine_rpm: wild(rng),
        coolant_c: wild(rng),
        upstream_lambda: wild(rng),
        rear_o2_v: wild(rng),
        fuel_flow_lph: wild(rng),
        net_torque_pct: wild(rng),
        friction_torque_pct: wild(rng),
        commanded_lambda: wild(rng),
    }
}
