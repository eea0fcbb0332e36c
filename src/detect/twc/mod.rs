//! Streaming detectors for three-way-catalyst (TWC) and rear-O2 tampering on stoichiometric
//! (gas / petrol) engines, from 1 Hz remote-OBD samples.
//!
//! Spec: `obd-remote-monitoring.md` §2 (catalyst monitoring: oxygen storage, switch ratio, DFCO
//! lean test) and §3.3 (tampering signatures, all `[D]` heuristics). Every threshold lives in
//! [`TwcThresholds`] (limit-set TOML section `[twc]`), never in code.
//!
//! # Design
//! The data arrive at 1 Hz while the front sensor switches several times per second, so raw
//! front switching is aliased (§3.3 preamble). The detectors therefore use window statistics and
//! event tests that survive 1 Hz sampling. Per vehicle only running sums and small state machines
//! are kept ([`TwcState`], 328 bytes), never sample windows.
//!
//! * **Gating** (§3.3 preamble): only *warm* samples are analysed: coolant > 70 °C, ≥ 300 s since
//!   the session started (a data gap > [`TwcThresholds::session_gap_s`] starts a new session),
//!   engine running. This skips the cold start, where a real rear sensor reads 0 V for minutes.
//!   A sample whose rpm, λ, rear V and speed are bit-identical to the previous one is a stale
//!   re-send (slow PID polling) and is skipped.
//! * **Fuel cuts** (DFCO, §2.1, §3.3 item 4): upstream λ > 1.2, or fuel flow ≈ 0 with speed not
//!   rising (and net ≤ friction torque where reported), always rpm > 1000. Each cut is judged once
//!   on its *response window* (the first 4 s, or its end + 1 sample if shorter).
//! * **rear_o2_flatline** (item 1), per tumbling window of 300 warm samples: rear std < 0.010 V,
//!   mean 0.40–0.80 V, upstream λ std ≥ 0.005, and ≥ 1 fuel cut ≥ 3 s in the window of which the
//!   rear answered none (answered = below 0.2 V, or a drop ≥ 0.02 V within the response window).
//! * **rear_o2_periodic** (item 2), per window: rear level tracked with hysteresis (≤ 0.3 V low,
//!   ≥ 0.6 V high); ≥ 20 complete runs between level flips with run-length CV ≤ 0.35 (regular),
//!   ≤ 15 % of samples between the levels, each level ≥ 15 %, and ≤ 50 % of high→low flips
//!   within 3 s of a fuel-cut start (unrelated to engine state).
//! * **rear_o2_mirrors_front** (item 3, §2.1), per window on closed-loop samples (λ 0.85–1.15,
//!   more than 10 s after a cut): switch ratio SR = crossings(rear, 0.45 ± 0.05 V) /
//!   crossings(λ, 1.0 ± 0.003) ≥ 0.7 with ≥ 10 λ crossings, best lagged correlation of rear V with
//!   rich(λ(t−k)), k = 0–3 s, ≥ 0.1, and irregular rear runs (CV ≥ 0.45, unlike a simulator).
//! * **dfco_no_lean** (item 4): a cut ≥ 3 s whose rear starts ≥ 0.45 V passes if the rear falls
//!   below 0.2 V in the response window and fails if it stays ≥ 0.45 V. Flags at ≥ 3 failures
//!   making ≥ 80 % of the judged cuts (tallies halve every 12 cuts). Cuts are only judged while the
//!   rear is active (EW std ≥ 0.012 V, else it is the flatline case) and does not flip low on its
//!   own (≤ 0.02 unexplained flips/s, else it is the periodic case).
//! * **rear_o2_missing** (item 5): rear absent (None or invalid) while rpm and speed are valid for
//!   ≥ 180 samples, ≥ 90 % of the episode.
//! * **rear_o2_flatline, no-cut case** (item 1, rule version 2): on a stretch without any fuel
//!   cut (no lean test possible) consecutive windows with rear std < 0.006 V, mid-band mean and
//!   varying λ spanning ≥ 600 s.
//! * **rear_o2_low_band** (item 2, §3.2 (b) low-voltage simulator): per window, ≥ 95 % of the
//!   rear samples below 0.3 V, ≥ 50 % closed loop, rear std ≥ 0.01 V, ≥ 10 half-periods between
//!   crossings of the window mean (± 0.01 V) with length CV ≤ 0.35 (a spectral line), and
//!   |corr(rear, rpm)| and the lagged correlation with rich(λ) ≤ 0.5 (follows neither). A working
//!   catalyst keeps the warm closed-loop rear at ~0.6–0.8 V and does not oscillate on a period.
//! * **lambda_implausible** (item 8, data quality): every 600 warm closed-loop samples (engine
//!   running, no fuel cut by fuel flow, commanded λ 0.95–1.05 where reported; and at the end of
//!   the input on ≥ 120) the streaming median of upstream λ over that of commanded λ (or 1.0)
//!   must lie in 0.80–1.25, and λ must not read rich (< 0.9 × median) in ≥ 80 % of ≥ 10
//!   fuel-cut samples (φ = 1/λ). Otherwise a finding with a hint (PID 0x4F scale, AFR, φ) and,
//!   until a later verdict is plausible, λ is not used by any rule (fuel cuts from fuel flow
//!   only), so a silenced detector shows as "not evaluable" instead of a healthy catalyst.
//!
//! One fault gives one rule (the exclusions above). After a finding a rule is silent for
//! [`TwcThresholds::rearm_s`] (900 s) of data time, so a steady fault over 30 min gives ≤ 2–3
//! findings. Thresholds: [`TwcThresholds`] (values above are the defaults).
//!
//! All input values are sanitised (non-finite or out-of-range values are treated as missing);
//! no input can make [`TwcState::update`] panic.

use serde::{Deserialize, Serialize};

mod fuel_cut;
mod gating;
mod lambda;
mod params;
mod rules;
mod stats;
#[cfg(test)]
mod testutil;

pub use params::TwcThresholds;
use rules::*;
use stats::*;

/// One 1 Hz sample of one vehicle, as the detectors see it (from the `obd_samples` table).
/// Units are in the field names; `None` = missing (NA sentinel decoded, `obd-remote-monitoring.md` §1.8).
#[derive(Clone, Copy, Debug, Default)]
pub struct ObdPoint {
    /// Sample time, milliseconds since the Unix epoch (collection time, §1.5).
    pub t_ms: i64,
    /// Vehicle speed, km/h (§1.7 common head, offset 0).
    pub speed_kmh: Option<f64>,
    /// Engine speed, rpm (§1.7 common head, offset 5).
    pub engine_rpm: Option<f64>,
    /// Engine coolant temperature, °C (§1.7 type 0x03 offset 14).
    pub coolant_c: Option<f64>,
    /// Upstream (pre-catalyst) O2 sensor output as equivalence ratio λ, dimensionless (§1.7 type 0x03 offset 9).
    pub upstream_lambda: Option<f64>,
    /// Downstream (rear, post-catalyst) narrow-band O2 sensor voltage, V (§1.7 type 0x03 offset 11).
    pub rear_o2_v: Option<f64>,
    /// Engine fuel flow, L/h (§1.7 common head, offset 7).
    pub fuel_flow_lph: Option<f64>,
    /// Engine net output torque, % of reference torque (§1.7 common head, offset 3).
    pub net_torque_pct: Option<f64>,
    /// Engine friction torque, % of reference torque (§1.7 common head, offset 4).
    pub friction_torque_pct: Option<f64>,
    /// Commanded equivalence ratio λ, dimensionless (J1979 PID 0x44; not used by the rules yet).
    pub commanded_lambda: Option<f64>,
}

/// The TWC / rear-O2 rules (obd-remote-monitoring.md §3.3 items 1–5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum TwcRule {
    /// Rear voltage nearly constant in mid-band while upstream λ varies (simulator / RC clamp), §3.3 item 1.
    RearO2Flatline,
    /// Rear voltage a regular two-level square wave unrelated to engine state (simulator), §3.3 item 2.
    RearO2Periodic,
    /// Rear switches like the front (catalyst removed or dead), §3.3 item 3 and §2.1.
    RearO2MirrorsFront,
    /// Rear does not go lean during deceleration fuel cut-off, §3.3 item 4 and §2.1.
    DfcoNoLean,
    /// Rear signal absent while the rest of the sample is valid, §3.3 item 5.
    RearO2Missing,
    /// Rear held in the low band (< 0.3 V) with a small regular oscillation in warm closed loop
    /// (low-voltage simulator), §3.2 (b) and §3.3 item 2.
    RearO2LowBand,
    /// Data quality: the upstream λ cannot be a warm closed-loop λ (wrong scale, φ = 1/λ, AFR),
    /// so the λ-based rules cannot judge the vehicle ("not evaluable"), §3.3 item 8.
    LambdaImplausible,
}

impl TwcRule {
    /// All rules, in index order.
    pub const ALL: [TwcRule; 7] = [
        TwcRule::RearO2Flatline,
        TwcRule::RearO2Periodic,
        TwcRule::RearO2MirrorsFront,
        TwcRule::DfcoNoLean,
        TwcRule::RearO2Missing,
        TwcRule::RearO2LowBand,
        TwcRule::LambdaImplausible,
    ];

    /// Rule versions (bump when a rule's logic or default thresholds change), indexed like [`Self::ALL`].
    /// `rear_o2_flatline` 2: also fires on a long flat stretch without fuel cuts.
    pub const VERSION: [&'static str; 7] = ["2", "1", "1", "1", "1", "1", "1"];

    /// True for a data-quality rule (the vehicle could not be judged), false for a tampering
    /// signature.
    pub fn is_data_quality(&self) -> bool {
        matches!(self, TwcRule::LambdaImplausible)
    }

    /// Stable rule identifier written to findings (obd-remote-monitoring.md §3.3).
    pub fn rule_id(&self) -> &'static str {
        TWC_RULE_IDS[self.index()]
    }

    /// The rule's version string (see [`Self::VERSION`]).
    pub fn rule_version(&self) -> &'static str {
        Self::VERSION[self.index()]
    }

    /// Position of the rule in [`Self::ALL`].
    pub fn index(&self) -> usize {
        match self {
            TwcRule::RearO2Flatline => 0,
            TwcRule::RearO2Periodic => 1,
            TwcRule::RearO2MirrorsFront => 2,
            TwcRule::DfcoNoLean => 3,
            TwcRule::RearO2Missing => 4,
            TwcRule::RearO2LowBand => 5,
            TwcRule::LambdaImplausible => 6,
        }
    }
}

/// One detection: a rule fired over a window or episode (obd-remote-monitoring.md §3.3).
#[derive(Clone, Debug, Serialize)]
pub struct TwcFinding {
    /// The rule that fired.
    pub rule: TwcRule,
    /// Start of the evidence window / episode, ms since the Unix epoch.
    pub window_start_ms: i64,
    /// End (last sample) of the evidence window / episode, ms since the Unix epoch.
    pub window_end_ms: i64,
    /// The window's statistics, name with unit suffix and value, e.g. `("rear_o2_std_v", 0.004)`.
    pub evidence: Vec<(&'static str, f64)>,
    /// 0..1: how far the evidence exceeds the thresholds, for ranking (not a probability).
    pub strength: f64,
    /// A hint for people, e.g. `"upstream λ scale (PID 0x4F)?"` (data-quality rules).
    pub note: Option<&'static str>,
}

/// The TWC / rear-O2 detectors in the registry ([`crate::detect::RULES`]): a keyed rule over
/// one vehicle's 1 Hz samples ([`ObdPoint`]), state [`TwcState`], parameters `[twc]`.
pub struct Twc;

const TWC_RULE_IDS: [&str; 7] = [
    "rear_o2_flatline",
    "rear_o2_periodic",
    "rear_o2_mirrors_front",
    "dfco_no_lean",
    "rear_o2_missing",
    "rear_o2_low_band",
    "lambda_implausible",
];

impl crate::detect::Rule for Twc {
    const RULE_IDS: &'static [&'static str] = &TWC_RULE_IDS;
    const DATA_QUALITY_IDS: &'static [&'static str] = &["lambda_implausible"];
    type Params = TwcThresholds;
}

impl crate::detect::KeyedRule for Twc {
    type Sample = ObdPoint;
    type State = TwcState;
    type Finding = TwcFinding;

    fn update(st: &mut TwcState, p: &ObdPoint, th: &TwcThresholds, out: &mut Vec<TwcFinding>) {
        st.update(p, th, out);
    }

    fn finish(st: &mut TwcState, th: &TwcThresholds, out: &mut Vec<TwcFinding>) {
        st.finish(th, out);
    }

    /// `detection_id` from rule id + `VIN@window start`, stream `obd`; evidence = the window
    /// bounds, the finding's statistics and its hint.
    fn detection(vin: &str, f: &TwcFinding, limit_set: &str) -> crate::schema::DetectionRow {
        let rule_id = f.rule.rule_id();
        let key = format!("{vin}@{}", f.window_start_ms);
        let mut ev = serde_json::Map::new();
        ev.insert("window_start_ms".into(), f.window_start_ms.into());
        ev.insert("window_end_ms".into(), f.window_end_ms.into());
        for (k, v) in &f.evidence {
            ev.insert(
                (*k).into(),
                serde_json::Number::from_f64(*v)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null),
            );
        }
        if let Some(n) = f.note {
            ev.insert("hint".into(), n.into());
        }
        crate::schema::DetectionRow {
            detection_id: crate::detect::detection_id(rule_id, "obd", &key),
            rule_id: rule_id.into(),
            rule_version: f.rule.rule_version().into(),
            limit_set: limit_set.into(),
            detected_at_ms: f.window_end_ms,
            vin: Some(vin.to_string()),
            source_stream: "obd".into(),
            source_key: key,
            strength: Some(f.strength),
            evidence: crate::schema::Evidence::from_json(&serde_json::Value::Object(ev)),
            ..Default::default()
        }
    }
}

/// Per-vehicle compact detector state: running statistics and small state machines, no stored
/// windows (obd-remote-monitoring.md §3.3, §6.2 sizing). Serialisable so it can be snapshotted.
/// Fresh state = `TwcState::default()`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TwcState {
    // --- session / gating ---
    last_t_ms: i64,
    session_start_ms: i64,
    /// ms of data time left before each rule may fire again (re-arm), indexed like `TwcRule::ALL`.
    rearm_left_ms: [u32; 7],
    /// Fingerprint of the previous sample's (rpm, λ, rear V, speed), to spot stale re-sent values.
    prev_fp: u32,
    /// Last fuel-cut sample time (ms), `i64::MIN` = none this session.
    last_cut_ms: i64,
    last_coolant_c: f32,
    prev_speed_kmh: f32,

    // --- tumbling window (flatline / periodic / mirror) ---
    win_start_ms: i64,
    last_flip_ms: i64,
    rear_mean: f32,
    rear_m2: f32,
    lam_mean: f32,
    lam_m2: f32,
    corr_sy: f32,
    corr_syy: f32,
    corr_sx: [f32; 4],
    corr_sxy: [f32; 4],
    run_mean_s: f32,
    run_m2: f32,
    n_win: u16,
    n_lam: u16,
    n_corr: u16,
    rear_cross: u16,
    lam_cross: u16,
    n_runs: u16,
    flips_low: u16,
    flips_low_explained: u16,
    n_low: u16,
    n_high: u16,
    n_mid: u16,
    win_cuts: u16,
    win_cuts_answered: u16,
    /// Largest rear drop (V) over a cut's response window in the current window.
    win_max_cut_drop: f32,
    /// Rear V at the first sample of the current cut (NaN = unknown).
    cut_start_rear: f32,

    // --- fuel-cut event tracker / dfco ---
    cut_start_ms: i64,
    dfco_ep_start_ms: i64,
    cut_min_rear: f32,
    ew_mean: f32,
    ew_var: f32,
    dfco_fail: f32,
    /// Exponentially weighted rate (1/s) of rear high→low flips not explained by a fuel cut.
    free_flip_rate: f32,
    dfco_pass: f32,
    cut_last_ms: i64,

    // --- missing ---
    missing_start_ms: i64,
    missing_n: u32,
    missing_present: u32,
    missing_present_run: u16,

    // --- small flags ---
    /// bit0 session started, bit1 in cut, bit2 rear active at cut start, bit3 rear side high
    /// (mirror), bit4 rear side known, bit5 λ side rich, bit6 λ side known, bit7 ew initialised,
    /// bit8 current cut already judged, bit9 `prev_fp` valid, bit10 λ implausible, bit11 rear
    /// above the window mean (low band), bit12 that side known.
    flags: u16,
    /// Periodic level: 0 unknown, 1 low, 2 high.
    level: u8,
    /// Rich(λ) of the previous 3 mirror-eligible samples (bit k-1 = t−k).
    hist_rich: u8,
    /// Validity of those 3 history bits.
    hist_valid: u8,
    /// Grace samples left after a cut ended (0 = no pending evaluation).
    cut_grace_left: u8,
    /// Rear samples in the current cut's response window.
    cut_n: u8,

    // --- lambda plausibility (§3.3 item 8) ---
    /// First sample time of the current plausibility accumulation (ms).
    lp_start_ms: i64,
    /// Streaming median estimate of ln(upstream λ) (stochastic approximation, step 0.5·n^-0.75).
    lp_ln_up: f32,
    /// Streaming median estimate of ln(commanded λ).
    lp_ln_cmd: f32,
    /// Warm closed-loop samples in the accumulation.
    lp_n: u16,
    /// Of those, samples with a commanded λ.
    lp_n_cmd: u16,
    /// Fuel-cut samples (by fuel flow) seen after the median settled.
    lp_cut_n: u16,
    /// Of those, samples reading rich (below `lambda_cut_rich_factor` × median).
    lp_cut_rich: u16,

    // --- low band (§3.2 (b)), per window ---
    lb_n_low: u16,
    lb_runs: u16,
    lb_last_cross_ms: i64,
    lb_run_mean: f32,
    lb_run_m2: f32,
    /// Streaming median estimate of the rear V in the window (±5 mV steps).
    lb_med: f32,
    lb_max: f32,
    rpm_mean: f32,
    rpm_m2: f32,
    /// Co-moment of rear V and rpm (Welford), for their correlation.
    rear_rpm_c: f32,

    // --- rear_o2_flatline without fuel cuts ---
    /// Start of the current run of flat, cut-free windows (ms), `i64::MIN` = none.
    flat_nocut_start_ms: i64,
}

const F_SESSION: u16 = 1;
const F_IN_CUT: u16 = 2;
const F_CUT_ACTIVE: u16 = 4;
const F_REAR_HIGH: u16 = 8;
const F_REAR_KNOWN: u16 = 16;
const F_LAM_RICH: u16 = 32;
const F_LAM_KNOWN: u16 = 64;
const F_EW_INIT: u16 = 128;
const F_CUT_JUDGED: u16 = 256;
const F_FP_VALID: u16 = 512;
/// The last λ plausibility verdict was "implausible": λ is not used by the rules.
const F_LAM_BAD: u16 = 1024;
const F_LB_HIGH: u16 = 2048;
const F_LB_KNOWN: u16 = 4096;

/// Sanitised view of one sample.
struct Clean {
    t: i64,
    speed: Option<f64>,
    rpm: Option<f64>,
    coolant: Option<f64>,
    lam: Option<f64>,
    rear: Option<f64>,
    fuel: Option<f64>,
    net_tq: Option<f64>,
    fric_tq: Option<f64>,
}

impl TwcState {
    /// Bytes of detector state per vehicle (`size_of::<TwcState>()`), for capacity planning (§6.2).
    pub const BYTES: usize = std::mem::size_of::<TwcState>();

    /// A fresh state (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    fn flag(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    fn set_flag(&mut self, f: u16, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn state_is_compact() {
        // Goal ≤ 256 bytes before the low-band, no-cut flatline and λ-plausibility state;
        // 328 with them (x86-64).
        assert!(
            std::mem::size_of::<TwcState>() <= 328,
            "TwcState is {} bytes",
            std::mem::size_of::<TwcState>()
        );
        assert_eq!(TwcState::BYTES, std::mem::size_of::<TwcState>());
    }

    #[test]
    fn rule_ids_and_versions() {
        let ids: Vec<&str> = TwcRule::ALL.iter().map(TwcRule::rule_id).collect();
        assert_eq!(
            ids,
            [
                "rear_o2_flatline",
                "rear_o2_periodic",
                "rear_o2_mirrors_front",
                "dfco_no_lean",
                "rear_o2_missing",
                "rear_o2_low_band",
                "lambda_implausible"
            ]
        );
        for (i, r) in TwcRule::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            let v = if *r == TwcRule::RearO2Flatline {
                "2"
            } else {
                "1"
            };
            assert_eq!(r.rule_version(), v);
            assert_eq!(r.is_data_quality(), *r == TwcRule::LambdaImplausible);
        }
    }

    #[test]
    fn healthy_synthetic_drive_is_silent() {
        let f = run(&drive(3600, 0, healthy_rear));
        assert!(f.is_empty(), "{f:?}");
    }

    /// Fuzz: arbitrary (non-finite, out-of-range, out-of-order, extreme-time) input never panics
    /// (debug builds check overflow), also from a warm busy state and with extreme thresholds;
    /// strengths stay in 0..1 and evidence is never NaN.
    #[test]
    fn never_panics_on_arbitrary_input() {
        let mut rng = ChaCha8Rng::seed_from_u64(0xF022);
        for case in 0..200u32 {
            let mut th = TwcThresholds::default();
            if case % 4 == 3 {
                th.window_samples = 0;
                th.rearm_s = f64::INFINITY;
                th.dfco_activity_tau_s = 0.0;
                th.dfco_grace_samples = u32::MAX;
                th.session_gap_s = f64::NAN;
                th.missing_min_s = -1.0;
            }
            let mut st = TwcState::default();
            let mut out = Vec::new();
            if case % 2 == 0 {
                for p in drive(900, 0, healthy_rear) {
                    st.update(&p, &th, &mut out);
                }
            }
            let mut t = if case % 3 == 0 {
                rng.random::<i64>()
            } else {
                900_000
            };
            for _ in 0..rng.random_range(0..800usize) {
                t = match rng.random_range(0..10u32) {
                    0 => rng.random::<i64>(),
                    1 => t.saturating_sub(rng.random_range(0..5000)),
                    2 => t.saturating_add(rng.random_range(0..10_000_000)),
                    _ => t.saturating_add(1000),
                };
                let p = wild_point(&mut rng, t);
                st.update(&p, &th, &mut out);
            }
            for f in &out {
                assert!((0.0..=1.0).contains(&f.strength), "{f:?}");
                assert!(f.evidence.iter().all(|(_, v)| !v.is_nan()), "{f:?}");
            }
        }
    }
}
