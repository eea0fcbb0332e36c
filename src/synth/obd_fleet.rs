//! Labelled synthetic fleet of 1 Hz remote-OBD samples for the TWC / rear-O2 detectors
//! (`detect::twc`), with healthy vehicles and the tampering classes of
//! `obd-remote-monitoring.md` §3.2–§3.3.
//!
//! No public heavy gas-truck log exists (shared/data/README.md "obd/"); this generator is a
//! physically motivated stand-in, checked against the real healthy petrol log
//! (`torque_petrol_2022_warm_healthy.csv`): rear ≈ 0.75–0.85 V in warm closed loop, 0 V within
//! 1–2 s of a fuel cut, lean for a few seconds after the cut while the catalyst's stored O2 is
//! purged; upstream λ at 1 Hz ≈ 0.99 ± 0.02 with little sample-to-sample correlation (aliased
//! switching), saturating lean (~1.23) in fuel cuts.
//!
//! # Models (all per vehicle, randomised from the seed)
//! * **Drive cycle**: a sequence of idle → accelerate → cruise → decelerate segments with urban,
//!   suburban and highway speed targets. Decelerations are usually closed-throttle coasting
//!   (the ECU cuts fuel: DFCO), sometimes light-throttle (no cut).
//! * **Engine**: internal simulation at 10 Hz, output every 1 s (with ±3 ms timestamp jitter).
//!   rpm = speed × gear ratio (automatic gear choice keeping 1100–1900 rpm, idle 650–800 rpm when
//!   slow or stopped); load from rolling/aero resistance, acceleration and a slowly varying grade;
//!   fuel flow ∝ rpm × load, 0 in fuel cut; net torque = load − friction, −friction in fuel cut.
//! * **Coolant**: first-order warm-up from ambient (5–35 °C; some hot restarts) toward the
//!   thermostat set-point (86–92 °C), time constant 300–450 s.
//! * **Upstream λ**: unavailable while the sensor heats (15–30 s), then open-loop rich, then closed
//!   loop: 1 + slow trim bias + slow noise (Ornstein–Uhlenbeck, τ ≈ 6 s) + limit-cycle dither
//!   (0.5–1.5 Hz, ±0.015–0.03: aliased at 1 Hz) + white noise; lean spike on tip-in, enrichment
//!   (λ ≈ 0.92) at full load, rich purge (λ ≈ 0.93) for 2–4 s after a fuel cut; the exhaust is
//!   pure air in a cut and the wide-band sensor saturates (1.23–1.6 per vehicle).
//! * **Healthy TWC**: oxygen-storage model. Storage fill s ∈ 0..=1 obeys
//!   ds/dt = k · flow · (λ_exh − 1): fills within 1–2 s in a cut, is purged by the rich
//!   post-cut phase, drifts with the trim bias. Rear equilibrium voltage: rich-side level
//!   0.6–0.88 V (set by the catalyst-smoothed exhaust λ) while s < 0.3, falling to ≈0.05 V as
//!   s → 1; sensor first-order lag τ ≈ 1 s, 3 mV noise, 5 mV quantisation (PID 0x15 = A/200 V).
//!   Like the real log, every rear sensor reads 0 V until it is heated (first 120–220 s).
//! * **CatalystRemoved**: no storage; the rear is a narrow-band sensor on the exhaust λ with a
//!   0.3–1.0 s transport delay and τ ≈ 0.15 s (§2.1: "degraded: rear mirrors front").
//! * **FlatSimulator**: constant 0.45–0.70 V ± 2–6 mV (§3.2 (b)/(c)).
//! * **SquareWaveSimulator**: two levels (0–0.1 V / 0.7–0.9 V) flipping every 2–5 s, a per-vehicle
//!   constant (§3.2 (a): 555 timer, ≈3.3 s).
//! * **SlowSensor**: the healthy rear signal through an extra first-order lag of 20–40 s (aged or
//!   poisoned sensor, or an RC "clamp", §3.2 (c)): it does not go lean in fuel cuts (§2.1 P0139/P013A).
//! * **MissingSensor**: healthy signals, but the rear voltage is `None` for long stretches
//!   (the whole drive, or 8–20 min stretches with 1–4 min breaks) while every other field is valid
//!   (§3.3 item 5).
//!
//! * **Telemetry**: 1 Hz with ±3 ms timestamp jitter, 0.05 % of samples lost, 0.2 % of samples
//!   with one field missing; values quantised like the HJ 1239 fields (§1.7).
//!
//! Output is deterministic for (vin, class, minutes, seed, start_ms): ChaCha8 seeded from the
//! seed and an FNV-1a hash of the VIN.

use crate::detect::twc::{ObdPoint, TwcRule};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Vehicle classes of the labelled fleet (obd-remote-monitoring.md §3.2–§3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FleetClass {
    /// Working catalyst and rear sensor: no rule should fire.
    Healthy,
    /// Catalyst removed or dead: rear mirrors the front (§3.3 item 3).
    CatalystRemoved,
    /// Rear replaced by a constant-voltage simulator (§3.3 item 1).
    FlatSimulator,
    /// Rear replaced by a square-wave simulator (§3.3 item 2).
    SquareWaveSimulator,
    /// Rear heavily low-passed (slow sensor / RC clamp): no lean in fuel cuts (§3.3 item 4).
    SlowSensor,
    /// Rear signal absent for long stretches (§3.3 item 5).
    MissingSensor,
}

impl FleetClass {
    /// All classes, healthy first.
    pub const ALL: [FleetClass; 6] = [
        FleetClass::Healthy,
        FleetClass::CatalystRemoved,
        FleetClass::FlatSimulator,
        FleetClass::SquareWaveSimulator,
        FleetClass::SlowSensor,
        FleetClass::MissingSensor,
    ];

    /// The rules that should fire for this class (and only these), obd-remote-monitoring.md §3.3.
    pub fn expected_rules(&self) -> &'static [TwcRule] {
        match self {
            FleetClass::Healthy => &[],
            FleetClass::CatalystRemoved => &[TwcRule::RearO2MirrorsFront],
            FleetClass::FlatSimulator => &[TwcRule::RearO2Flatline],
            FleetClass::SquareWaveSimulator => &[TwcRule::RearO2Periodic],
            FleetClass::SlowSensor => &[TwcRule::DfcoNoLean],
            FleetClass::MissingSensor => &[TwcRule::RearO2Missing],
        }
    }

    /// Short snake-case name.
    pub fn name(&self) -> &'static str {
        match self {
            FleetClass::Healthy => "healthy",
            FleetClass::CatalystRemoved => "catalyst_removed",
            FleetClass::FlatSimulator => "flat_simulator",
            FleetClass::SquareWaveSimulator => "square_wave_simulator",
            FleetClass::SlowSensor => "slow_sensor",
            FleetClass::MissingSensor => "missing_sensor",
        }
    }
}

/// Class of fleet vehicle `i`: a deterministic mix, 50 % `Healthy` and 10 % each of the five
/// fault classes (hash of `i` and `seed`, so the mix holds for any fleet size on average).
pub fn class_for_index(i: usize, seed: u64) -> FleetClass {
    let h = splitmix64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    match h % 10 {
        0..=4 => FleetClass::Healthy,
        5 => FleetClass::CatalystRemoved,
        6 => FleetClass::FlatSimulator,
        7 => FleetClass::SquareWaveSimulator,
        8 => FleetClass::SlowSensor,
        _ => FleetClass::MissingSensor,
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Standard normal deviate (Box–Muller).
fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn uni(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Ornstein–Uhlenbeck step: mean-reverting noise with time constant `tau` (s) and stationary std `sigma`.
fn ou(x: f64, tau: f64, sigma: f64, dt: f64, rng: &mut ChaCha8Rng) -> f64 {
    let a = (-dt / tau).exp();
    x * a + sigma * (1.0 - a * a).sqrt() * gauss(rng)
}

/// First-order lag step toward `target` with time constant `tau` (s).
fn lag(y: f64, target: f64, tau: f64, dt: f64) -> f64 {
    if tau <= dt {
        return target;
    }
    y + (target - y) * (1.0 - (-dt / tau).exp())
}

fn quantize(v: f64, step: f64) -> f64 {
    (v / step).round() * step
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Idle,
    Accel,
    Cruise,
    Decel,
}

/// Generate `minutes` of 1 Hz samples for one vehicle of class `class`, starting at `start_ms`
/// (ms since the Unix epoch) with a cold (or hot-restart) engine start.
/// Deterministic for the same arguments. Models: see the module documentation.
pub fn generate_vehicle(
    vin: &str,
    class: FleetClass,
    minutes: u32,
    seed: u64,
    start_ms: i64,
) -> Vec<ObdPoint> {
    let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(seed ^ fnv1a(vin)));
    let total_s = u64::from(minutes) * 60;
    let mut out = Vec::with_capacity(total_s as usize);

    // ---------------- per-vehicle parameters ----------------
    let gear_scale = uni(&mut rng, 0.85, 1.15);
    let gears: [f64; 6] = [110.0, 66.0, 45.0, 33.0, 26.0, 21.0].map(|g| g * gear_scale); // rpm per km/h
    let idle_rpm = uni(&mut rng, 650.0, 800.0);
    let cut_rpm_off = uni(&mut rng, 950.0, 1050.0);
    let cut_delay_s = uni(&mut rng, 0.5, 1.5);
    let hot_restart = rng.random::<f64>() < 0.15;
    let ambient_c = uni(&mut rng, 5.0, 35.0);
    let mut coolant = if hot_restart {
        uni(&mut rng, 60.0, 85.0)
    } else {
        ambient_c
    };
    let thermostat_c = uni(&mut rng, 86.0, 92.0);
    let warm_tau_s = uni(&mut rng, 300.0, 450.0);
    let lam_sensor_ready_s = uni(&mut rng, 15.0, 30.0);
    let closed_loop_s = lam_sensor_ready_s + uni(&mut rng, 20.0, 60.0);
    let lam_sat = uni(&mut rng, 1.23, 1.6);
    let dither_amp = uni(&mut rng, 0.015, 0.03);
    let mut dither_f = uni(&mut rng, 0.5, 1.5);
    let mut dither_phase = uni(&mut rng, 0.0, std::f64::consts::TAU);
    let trim_bias = uni(&mut rng, -0.009, -0.004);
    let mix = uni(&mut rng, 0.0, 1.0); // urban … highway preference
    let gentle_decel_p = uni(&mut rng, 0.1, 0.3);
    let k_osc = uni(&mut rng, 2.5, 4.5); // storage fill rate per unit flow per unit (λ−1), 1/s
    let rear_tau = uni(&mut rng, 0.7, 1.3);
    let nb_delay_s = uni(&mut rng, 0.3, 1.0);
    let slow_tau = uni(&mut rng, 20.0, 40.0);
    let flat_v = uni(&mut rng, 0.45, 0.70);
    let flat_a = uni(&mut rng, 0.002, 0.006);
    let sq_period = uni(&mut rng, 2.0, 5.0);
    let sq_phase = uni(&mut rng, 0.0, sq_period * 2.0);
    let sq_low = uni(&mut rng, 0.0, 0.1);
    let sq_high = uni(&mut rng, 0.7, 0.9);
    // Missing-rear stretches (s from start): whole drive or several long stretches.
    let mut missing: Vec<(f64, f64)> = Vec::new();
    if class == FleetClass::MissingSensor {
        if rng.random::<f64>() < 0.4 {
            missing.push((0.0, f64::INFINITY));
        } else {
            let mut t = uni(&mut rng, 0.0, 300.0);
            while t < total_s as f64 {
                let len = uni(&mut rng, 480.0, 1200.0);
                missing.push((t, t + len));
                t += len + uni(&mut rng, 60.0, 240.0);
            }
        }
    }

    // ---------------- dynamic state ----------------
    let dt = 0.1;
    let steps_per_s = 10u64;
    let mut phase = Phase::Idle;
    let mut phase_left = uni(&mut rng, 5.0, 30.0);
    let mut speed = 0.0f64; // km/h
    let mut target = 0.0f64;
    let mut accel_rate = 2.0; // km/h/s
    let mut gentle = false;
    let mut clutch_kmh = 15.0f64; // speed at which the driver declutches in a deceleration (cut ends)
    let mut rpm = idle_rpm;
    let mut grade = 0.0f64;
    let mut closed_throttle_s = 0.0f64;
    let mut in_cut = false;
    let mut purge_s = 0.0f64;
    let mut since_accel_start = 1e9f64;
    let mut lam_slow = 0.0f64;
    let mut bias_ou = 0.0f64;
    let mut lam_ws = 1.0f64; // wide-band sensor reading (filtered)
    let mut osc_s = 0.2f64; // catalyst O2 storage fill 0..1
    let mut lam_cat = 1.0f64; // catalyst-smoothed exhaust λ
    let mut rear = 0.0f64;
    let mut rear_slow = 0.0f64;
    let mut nb_hist = [1.0f64; 16]; // exhaust λ history at 10 Hz for the narrow-band delay
    let mut nb_idx = 0usize;
    let mut nb_v = 0.1f64;
    let mut rear_heated = false;
    let rear_heat_s = uni(&mut rng, 120.0, 220.0); // rear sensor dew-point / heater wait (reads 0 V before)

    for step in 0..(total_s * steps_per_s) {
        let t_s = step as f64 * dt;

        // ---- drive cycle ----
        phase_left -= dt;
        if phase_left <= 0.0 {
            match phase {
                Phase::Idle => {
                    phase = Phase::Accel;
                    let r = rng.random::<f64>();
                    target = if r < 0.6 * (1.0 - mix) + 0.1 {
                        uni(&mut rng, 20.0, 50.0)
                    } else if r < 0.85 {
                        uni(&mut rng, 40.0, 70.0)
                    } else {
                        uni(&mut rng, 65.0, 90.0)
                    };
                    accel_rate = uni(&mut rng, 1.2, 3.5);
                    phase_left = 120.0;
                    since_accel_start = 0.0;
                }
                Phase::Accel => {
                    phase = Phase::Cruise;
                    phase_left = if target > 65.0 {
                        uni(&mut rng, 40.0, 300.0)
                    } else {
                        uni(&mut rng, 10.0, 90.0)
                    };
                }
                Phase::Cruise => {
                    phase = Phase::Decel;
                    gentle = rng.random::<f64>() < gentle_decel_p;
                    clutch_kmh = uni(&mut rng, 12.0, 35.0);
                    accel_rate = if gentle {
                        uni(&mut rng, 0.5, 1.2)
                    } else {
                        uni(&mut rng, 1.5, 4.0)
                    };
                    // stop, or slow down to a lower speed and go on
                    target = if rng.random::<f64>() < 0.5 {
                        0.0
                    } else {
                        speed * uni(&mut rng, 0.3, 0.7)
                    };
                    phase_left = 200.0;
                }
                Phase::Decel => {
                    if speed < 3.0 {
                        phase = Phase::Idle;
                        speed = 0.0;
                        phase_left = uni(&mut rng, 5.0, 60.0) * (1.0 - 0.7 * mix);
                    } else {
                        phase = Phase::Accel;
                        target = (speed + uni(&mut rng, 10.0, 40.0)).min(90.0);
                        accel_rate = uni(&mut rng, 1.0, 3.0);
                        phase_left = 120.0;
                        since_accel_start = 0.0;
                    }
                }
            }
        }
        let mut accel = 0.0; // km/h/s
        match phase {
            Phase::Idle => speed = 0.0,
            Phase::Accel => {
                accel = accel_rate * (1.0 - (speed / 100.0).powi(2)).max(0.2);
                speed += accel * dt;
                if speed >= target {
                    speed = target;
                    phase_left = 0.0;
                }
            }
            Phase::Cruise => {
                let v_err = target - speed;
                accel = (0.3 * v_err).clamp(-1.0, 1.0) + 0.3 * gauss(&mut rng);
                speed = (speed + accel * dt).max(0.0);
            }
            Phase::Decel => {
                accel = -accel_rate;
                speed += accel * dt;
                if speed <= target.max(0.0) || speed <= 0.5 {
                    speed = target.max(0.0);
                    phase_left = 0.0;
                }
            }
        }
        since_accel_start += dt;

        // ---- engine ----
        grade = ou(grade, 60.0, 0.06, dt, &mut rng);
        let moving = speed > 12.0;
        let gear = if moving {
            // keep rpm in 1100..1900: choose the highest gear giving ≥ 1100 rpm
            let mut g = 0;
            for (i, r) in gears.iter().enumerate() {
                if speed * r >= 1100.0 {
                    g = i;
                }
            }
            if speed * gears[g] > 1900.0 && g + 1 < gears.len() {
                g += 1;
            }
            g
        } else {
            0
        };
        let rpm_target = if moving {
            speed * gears[gear]
        } else if phase == Phase::Accel {
            idle_rpm + 60.0 * speed
        } else {
            idle_rpm
        };
        rpm = lag(rpm, rpm_target, 0.3, dt) + 3.0 * gauss(&mut rng);
        let throttle_closed = phase == Phase::Decel && !gentle || phase == Phase::Idle;
        let mut load = if phase == Phase::Idle {
            0.15
        } else {
            0.12 + 0.45 * (speed / 90.0).powi(2) + 0.18 * accel.max(-2.0) + grade
        };
        if phase == Phase::Decel && !gentle {
            load = 0.0;
        }
        load = load.clamp(0.0, 1.0);

        // ---- ECU fuel cut (DFCO) ----
        if phase == Phase::Decel && !gentle {
            closed_throttle_s += dt;
        } else {
            closed_throttle_s = 0.0;
        }
        let was_cut = in_cut;
        in_cut = closed_throttle_s > cut_delay_s
            && rpm > cut_rpm_off
            && moving
            && speed > clutch_kmh
            && coolant > 35.0;
        if was_cut && !in_cut {
            purge_s = uni(&mut rng, 2.0, 4.0);
        }
        let _ = throttle_closed;

        // ---- coolant ----
        let heat_target = if coolant < thermostat_c {
            thermostat_c + 10.0
        } else {
            thermostat_c
        };
        coolant = lag(coolant, heat_target, warm_tau_s * (1.2 - 0.4 * load), dt);
        if coolant > thermostat_c {
            coolant = thermostat_c + 0.5 * (coolant - thermostat_c);
        }

        // ---- exhaust λ and upstream sensor ----
        lam_slow = ou(lam_slow, 6.0, 0.008, dt, &mut rng);
        bias_ou = ou(bias_ou, 40.0, 0.004, dt, &mut rng);
        dither_f = (dither_f + 0.02 * gauss(&mut rng) * dt.sqrt()).clamp(0.4, 1.8);
        dither_phase += std::f64::consts::TAU * dither_f * dt;
        let lam_exh_excess; // λ − 1 of the exhaust gas
        let closed = t_s > closed_loop_s;
        if in_cut {
            lam_exh_excess = 4.0; // air: far lean (the sensor saturates)
        } else if !closed {
            lam_exh_excess = -0.06 + 0.01 * gauss(&mut rng);
        } else {
            let mut e = trim_bias
                + bias_ou
                + lam_slow
                + dither_amp * dither_phase.sin()
                + 0.004 * gauss(&mut rng);
            if purge_s > 0.0 {
                e = -0.07 + 0.01 * gauss(&mut rng);
                purge_s -= dt;
            } else if load > 0.85 && rpm > 1500.0 {
                e = -0.08 + 0.01 * gauss(&mut rng); // full-load enrichment
            } else if since_accel_start < 1.0 {
                e += 0.03; // tip-in lean spike
            }
            lam_exh_excess = e;
        }
        let lam_exh = 1.0 + lam_exh_excess;
        lam_ws = lag(lam_ws, lam_exh.min(lam_sat), 0.15, dt);

        // ---- catalyst + rear sensor ----
        let flow = (rpm / 1500.0) * (0.3 + load);
        let d_osc = k_osc * flow * lam_exh_excess.min(1.0) * dt;
        osc_s = (osc_s + d_osc).clamp(0.0, 1.0);
        lam_cat = lag(lam_cat, lam_exh.min(1.1), 8.0, dt);
        let v_rich = (0.74 + 3.0 * (1.0 - lam_cat)).clamp(0.6, 0.88);
        let x = ((osc_s - 0.3) / 0.65).clamp(0.0, 1.0);
        let g = x * x * (3.0 - 2.0 * x);
        let v_eq = v_rich - (v_rich - 0.05) * g;
        rear = lag(rear, v_eq, rear_tau, dt);
        rear_slow = lag(rear_slow, rear, slow_tau, dt);
        nb_hist[nb_idx % nb_hist.len()] = lam_exh;
        nb_idx += 1;
        let delay_steps = (nb_delay_s / dt).round() as usize;
        let delayed = nb_hist
            [(nb_idx + nb_hist.len() - 1 - delay_steps.min(nb_hist.len() - 1)) % nb_hist.len()];
        let nb_eq = 0.47 + 0.40 * ((1.0 - delayed) / 0.006).tanh();
        nb_v = lag(nb_v, nb_eq, 0.15, dt);
        if t_s > rear_heat_s {
            rear_heated = true;
        }

        // ---- output one sample per second ----
        if (step + 1) % steps_per_s != 0 {
            continue;
        }
        let sec = (step + 1) / steps_per_s;
        // rare whole-sample gaps (telemetry loss of 1–3 s)
        if rng.random::<f64>() < 0.0005 {
            continue;
        }
        let jitter = rng.random_range(-3i64..=3);
        let t_ms = start_ms.saturating_add((sec as i64) * 1000 + jitter);

        let fuel = if in_cut {
            0.0
        } else {
            (1.2 + 40.0 * load * rpm / 2000.0) * (1.0 + 0.02 * gauss(&mut rng))
        };
        let friction = 5.0 + 4.0 * rpm / 2000.0;
        let net = if in_cut {
            -friction
        } else {
            100.0 * load - friction * 0.2
        };
        let cmd_lambda = if in_cut {
            1.999
        } else if !closed || (load > 0.85 && rpm > 1500.0) {
            0.92
        } else {
            1.0
        };
        let lam_out = if t_s < lam_sensor_ready_s {
            None
        } else {
            Some((lam_ws + 0.002 * gauss(&mut rng)).max(0.5))
        };

        let healthy_rear = if rear_heated { rear } else { 0.0 };
        let rear_v = match class {
            FleetClass::Healthy | FleetClass::MissingSensor => {
                healthy_rear + 0.003 * gauss(&mut rng)
            }
            FleetClass::SlowSensor => {
                if rear_heated {
                    rear_slow + 0.003 * gauss(&mut rng)
                } else {
                    0.0
                }
            }
            FleetClass::CatalystRemoved => {
                if rear_heated {
                    nb_v + 0.005 * gauss(&mut rng)
                } else {
                    0.0
                }
            }
            FleetClass::FlatSimulator => flat_v + uni(&mut rng, -flat_a, flat_a),
            FleetClass::SquareWaveSimulator => {
                let ph = ((t_s + dt + sq_phase) / sq_period).floor() as i64;
                let base = if ph % 2 == 0 { sq_high } else { sq_low };
                base + 0.005 * gauss(&mut rng)
            }
        };
        let rear_v = quantize(rear_v.clamp(0.0, 1.275), 0.005);
        let rear_missing = missing
            .iter()
            .any(|&(a, b)| (sec as f64) >= a && (sec as f64) < b);

        let mut p = ObdPoint {
            t_ms,
            speed_kmh: Some(quantize(speed, 1.0 / 256.0)),
            engine_rpm: Some(quantize(rpm.max(0.0), 0.125)),
            coolant_c: Some(coolant.round()),
            upstream_lambda: lam_out,
            rear_o2_v: if rear_missing { None } else { Some(rear_v) },
            fuel_flow_lph: Some(quantize(fuel.max(0.0), 0.05)),
            net_torque_pct: Some(net.round().clamp(-125.0, 125.0)),
            friction_torque_pct: Some(friction.round()),
            commanded_lambda: Some(cmd_lambda),
        };
        // rare single-field dropouts
        if rng.random::<f64>() < 0.002 {
            match rng.random_range(0..5u32) {
                0 => p.speed_kmh = None,
                1 => p.coolant_c = None,
                2 => p.upstream_lambda = None,
                3 => p.rear_o2_v = None,
                _ => p.fuel_flow_lph = None,
            }
        }
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::twc::{TwcFinding, TwcState, TwcThresholds};
    use std::collections::BTreeSet;

    /// Rules with no fault class in this generator (low-voltage simulator, λ plausibility).
    fn rule_without_fleet_class(rule: TwcRule) -> bool {
        matches!(rule, TwcRule::RearO2LowBand | TwcRule::LambdaImplausible)
    }

    fn rules_fired(points: &[ObdPoint]) -> BTreeSet<TwcRule> {
        let th = TwcThresholds::default();
        let mut st = TwcState::default();
        let mut out: Vec<TwcFinding> = Vec::new();
        for p in points {
            st.update(p, &th, &mut out);
        }
        out.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn deterministic_per_arguments() {
        let a = generate_vehicle("LTEST000000000001", FleetClass::Healthy, 5, 7, 0);
        let b = generate_vehicle("LTEST000000000001", FleetClass::Healthy, 5, 7, 0);
        let c = generate_vehicle("LTEST000000000001", FleetClass::Healthy, 5, 8, 0);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.t_ms == y.t_ms
            && x.rear_o2_v == y.rear_o2_v
            && x.upstream_lambda == y.upstream_lambda));
        assert!(a.iter().zip(&c).any(|(x, y)| x.engine_rpm != y.engine_rpm));
        assert!(a.len() >= 295 && a.len() <= 300, "{}", a.len());
    }

    #[test]
    fn class_mix_is_half_healthy() {
        let n = 10_000;
        let healthy = (0..n)
            .filter(|&i| class_for_index(i, 3) == FleetClass::Healthy)
            .count();
        assert!((4_800..5_200).contains(&healthy), "{healthy}");
        for c in FleetClass::ALL {
            let k = (0..n).filter(|&i| class_for_index(i, 3) == c).count();
            assert!(k > 800, "{} {k}", c.name());
        }
    }

    #[test]
    fn healthy_vehicle_physics() {
        let pts = generate_vehicle("LPHYS000000000001", FleetClass::Healthy, 30, 11, 1_000);
        // warms up
        let late = &pts[pts.len() - 300..];
        assert!(late.iter().filter_map(|p| p.coolant_c).all(|c| c > 70.0));
        // fuel cuts exist and read lean upstream; rear goes lean within 3 s in cuts ≥ 3 s
        let mut cuts = 0;
        let mut i = 0;
        while i < pts.len() {
            if pts[i].fuel_flow_lph == Some(0.0) && pts[i].coolant_c.is_some_and(|c| c > 70.0) {
                let s = i;
                while i < pts.len() && pts[i].fuel_flow_lph == Some(0.0) {
                    i += 1;
                }
                if i - s >= 3 {
                    cuts += 1;
                    assert!(pts[s + 2].upstream_lambda.is_none_or(|l| l > 1.2));
                    let min = pts[s..(s + 4).min(i)]
                        .iter()
                        .filter_map(|p| p.rear_o2_v)
                        .fold(9.0, f64::min);
                    assert!(min < 0.2, "cut at {s}: rear min {min}");
                }
            }
            i += 1;
        }
        assert!(cuts >= 3, "{cuts} cuts");
        // warm closed-loop rear is mostly rich-side
        let warm: Vec<f64> = pts[600..].iter().filter_map(|p| p.rear_o2_v).collect();
        let high = warm.iter().filter(|&&v| v > 0.45).count() as f64 / warm.len() as f64;
        assert!(high > 0.5, "rich-side fraction {high}");
    }

    /// Small labelled fleet (60 vehicles × 30 min, mix of `class_for_index`): per rule precision ≥ 0.99
    /// and recall ≥ 0.95; a vehicle is predicted positive for a rule if any finding of it is emitted.
    #[test]
    fn small_fleet_precision_recall() {
        let seed = 2024;
        let fleet: Vec<(FleetClass, BTreeSet<TwcRule>)> = (0..60)
            .map(|i| {
                let class = class_for_index(i, seed);
                let pts = generate_vehicle(
                    &format!("LFLEET{i:011}"),
                    class,
                    30,
                    seed,
                    1_700_000_000_000,
                );
                (class, rules_fired(&pts))
            })
            .collect();
        for rule in TwcRule::ALL {
            let expected = |c: FleetClass| c.expected_rules().contains(&rule);
            let tp = fleet
                .iter()
                .filter(|(c, r)| expected(*c) && r.contains(&rule))
                .count();
            let fp = fleet
                .iter()
                .filter(|(c, r)| !expected(*c) && r.contains(&rule))
                .count();
            let pos = fleet.iter().filter(|(c, _)| expected(*c)).count();
            if rule_without_fleet_class(rule) {
                // No fault class of the generator is built for this rule (tested on the
                // field cases and in detect::twc): it must not fire on any vehicle here.
                assert_eq!(tp + fp, 0, "{} fired on the fleet", rule.rule_id());
                continue;
            }
            assert!(pos > 0, "no vehicle of the class for {}", rule.rule_id());
            let precision = if tp + fp == 0 {
                1.0
            } else {
                tp as f64 / (tp + fp) as f64
            };
            let recall = tp as f64 / pos as f64;
            println!(
                "{:<22} n={pos:>2} tp={tp:>2} fp={fp} precision={precision:.3} recall={recall:.3}",
                rule.rule_id()
            );
            assert!(
                precision >= 0.99,
                "{} precision {precision}",
                rule.rule_id()
            );
            assert!(recall >= 0.95, "{} recall {recall}", rule.rule_id());
        }
        let healthy_flagged = fleet
            .iter()
            .filter(|(c, r)| *c == FleetClass::Healthy && !r.is_empty())
            .count();
        assert_eq!(healthy_flagged, 0);
    }
}
