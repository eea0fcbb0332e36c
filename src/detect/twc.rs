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

/// Thresholds of the TWC / rear-O2 detectors: limit-set TOML section `[twc]`
/// (`obd-remote-monitoring.md` "How to use": `[D]` thresholds are configuration).
///
/// Every field is a `[D]` heuristic of §3.3; defaults are calibrated on the real healthy 1 Hz log
/// `torque_petrol_2022_warm_healthy.csv` (shared/data/obd) and on the synthetic fleet of
/// `gen::obd_fleet`; recalibrate on fleet data.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TwcThresholds {
    // ---- gating -------------------------------------------------------------------------
    /// s; a gap between two samples longer than this starts a new session (warm-up timer and
    /// windows restart). obd-remote-monitoring.md §1.9 (1 Hz records) / §3.3 preamble. `[D]` heuristic.
    pub session_gap_s: f64,
    /// °C; coolant above this counts as warm. obd-remote-monitoring.md §3.3 preamble ("warm (coolant >70 °C)"). `[D]` heuristic.
    pub warm_coolant_c: f64,
    /// s; samples earlier than this after the session start are cold start (the real log's rear
    /// sensor reads 0 V for its first ~200 s). obd-remote-monitoring.md §3.3 preamble. `[D]` heuristic.
    pub warm_after_start_s: f64,
    /// rpm; engine counts as running above this. obd-remote-monitoring.md §3.3 preamble. `[D]` heuristic.
    pub engine_running_rpm: f64,
    /// V; a rear voltage above this is an invalid value (narrow-band max ≈1.1 V; 1.275 V = PID 0x15
    /// full scale) and is treated as missing. obd-remote-monitoring.md §1.8. `[D]` heuristic.
    pub rear_v_max_valid: f64,
    /// λ; upstream λ at or above this is not closed loop (excluded from λ statistics and crossing
    /// counts). obd-remote-monitoring.md §3.3 item 8 (closed loop 1.00 ± ~0.03). `[D]` heuristic.
    pub closed_loop_lambda_max: f64,
    /// λ; upstream λ at or below this is open-loop enrichment (excluded like above).
    /// obd-remote-monitoring.md §3.3 item 8. `[D]` heuristic.
    pub closed_loop_lambda_min: f64,
    /// Number of warm samples (≈ s at 1 Hz) in one analysis window of the flatline, periodic and
    /// mirror rules; §3.3 asks for ≥ 60 s, the real healthy log needs ≥ 120 s (its rear std over
    /// 60-s windows goes down to 0.012 V). obd-remote-monitoring.md §3.3 preamble. `[D]` heuristic.
    pub window_samples: u32,
    /// s of data time; after a finding a rule stays silent this long (re-arm), so a steady fault
    /// gives a handful of findings, not one per window. obd-remote-monitoring.md §3.3. `[D]` heuristic.
    pub rearm_s: f64,

    // ---- rear_o2_flatline (§3.3 item 1) --------------------------------------------------
    /// V; flat if the rear voltage's standard deviation over the window is below this (spec: 0.01–0.02 V;
    /// healthy real log ≥ 0.26 V over 300-s windows, a simulator ±5 mV ≈ 0.003 V).
    /// obd-remote-monitoring.md §3.3 item 1. `[D]` heuristic.
    pub flat_std_max_v: f64,
    /// V; lower bound of the "mid-band" window mean. obd-remote-monitoring.md §3.3 item 1 (0.4–0.75 V). `[D]` heuristic.
    pub flat_mean_min_v: f64,
    /// V; upper bound of the "mid-band" window mean (0.8 V: the healthy rich-side level of the
    /// real log is ~0.76–0.8 V, a clamp can sit there too). obd-remote-monitoring.md §3.3 item 1. `[D]` heuristic.
    pub flat_mean_max_v: f64,
    /// λ; upstream λ must vary: its standard deviation over the window's closed-loop samples must be
    /// at least this (real log ≥ 0.010 over 60-s windows). obd-remote-monitoring.md §3.3 item 1. `[D]` heuristic.
    pub flat_lambda_std_min: f64,
    /// Count; the window must contain at least this many fuel cuts (≥ [`Self::flat_cut_min_s`])
    /// and the rear must answer none of them (a healthy sensor goes lean in every cut ≥ 2 s; see
    /// [`Self::flat_cut_drop_max_v`]).
    /// 0 disables this cue. obd-remote-monitoring.md §3.3 items 1 and 4. `[D]` heuristic.
    pub flat_min_unanswered_cuts: u32,
    /// V; a cut counts as answered if the rear falls below [`Self::dfco_lean_v`] or drops by at least
    /// this much within the cut's response window. A simulator moves only by its noise (± few mV);
    /// a slow (low-passed) sensor still moves ≥ 0.05 V in 4 s and is `dfco_no_lean`'s case.
    /// obd-remote-monitoring.md §3.3 items 1 and 4. `[D]` heuristic.
    pub flat_cut_drop_max_v: f64,
    /// s; minimum fuel-cut duration counted as a lean-test opportunity by the flatline rule
    /// (real log: every cut ≥ 2 s drops the rear below 0.1 V within 3 s). obd-remote-monitoring.md §3.3 item 4. `[D]` heuristic.
    pub flat_cut_min_s: f64,

    // ---- rear_o2_periodic (§3.3 item 2) --------------------------------------------------
    /// V; rear at or below this is the "low" level (hysteresis lower edge). obd-remote-monitoring.md §3.3 item 2, §3.2 (a). `[D]` heuristic.
    pub per_low_max_v: f64,
    /// V; rear at or above this is the "high" level (hysteresis upper edge). obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub per_high_min_v: f64,
    /// Fraction; at most this share of the window's samples may lie between the two levels
    /// (square shape, "two levels only"). obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub per_mid_frac_max: f64,
    /// Fraction; each level must hold at least this share of the window's samples. obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub per_level_frac_min: f64,
    /// Count; at least this many complete level runs (flip to flip) in the window. obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub per_min_runs: u32,
    /// Coefficient of variation (std/mean) of the run lengths between level flips at or below which
    /// the flipping is "regular" (a 555 simulator flipping every 3.3 s sampled at 1 Hz gives runs
    /// of 3 and 4 s, CV ≈ 0.14; the healthy log's flips follow fuel cuts, CV ≫ 0.5).
    /// obd-remote-monitoring.md §3.3 item 2, §3.2 (a). `[D]` heuristic.
    pub per_run_cv_max: f64,
    /// Fraction; at most this share of the high→low flips may coincide with a fuel cut (flips
    /// "independent of engine state"; on the healthy log nearly every flip to low is a cut).
    /// obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub per_cut_explained_max: f64,
    /// s; a high→low flip within this time after the start of a fuel cut counts as explained by the
    /// cut (healthy: the rear is below 0.1 V by the 2nd–3rd sample of a cut).
    /// obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub per_explain_s: f64,

    // ---- rear_o2_mirrors_front (§3.3 item 3, §2.1) ----------------------------------------
    /// V; rear crossing level of the switch-ratio proxy. obd-remote-monitoring.md §3.3 item 3 (0.45 V). `[D]` heuristic.
    pub mirror_rear_v: f64,
    /// V; hysteresis half-band around [`Self::mirror_rear_v`] (a crossing needs the rear to go below
    /// level − hyst and then above level + hyst, or back). obd-remote-monitoring.md §3.3 item 3. `[D]` heuristic.
    pub mirror_rear_hyst_v: f64,
    /// λ; upstream crossing level of the switch-ratio proxy. obd-remote-monitoring.md §3.3 item 3 (λ = 1.0). `[D]` heuristic.
    pub mirror_lambda: f64,
    /// λ; hysteresis half-band around [`Self::mirror_lambda`]. obd-remote-monitoring.md §3.3 item 3. `[D]` heuristic.
    pub mirror_lambda_hyst: f64,
    /// Switch ratio SR = crossings(rear)/crossings(λ_up) at or above which the rear mirrors the front
    /// (healthy ≈ 0.2, fail 0.7:1). obd-remote-monitoring.md §2.1, §3.3 item 3. `[D]` heuristic.
    pub mirror_sr_min: f64,
    /// Count; minimum upstream crossings in the window for SR to be meaningful. obd-remote-monitoring.md §3.3 item 3. `[D]` heuristic.
    pub mirror_min_lambda_crossings: u32,
    /// Correlation; the best lagged correlation of rear V with rich(λ_up(t−k)), k = 0–3 s, must be at
    /// least this. Weak on purpose: at 1 Hz the fast front switching is aliased and only its slow
    /// part is visible (the healthy log gives ≤ 0). obd-remote-monitoring.md §3.3 item 3. `[D]` heuristic.
    pub mirror_corr_min: f64,
    /// Coefficient of variation of the rear's level-run lengths at or above which the rear switching
    /// is irregular like the front's (excludes a regular simulator square wave).
    /// obd-remote-monitoring.md §3.3 items 2–3. `[D]` heuristic.
    pub mirror_run_cv_min: f64,
    /// s; samples within this time after a fuel cut are left out of the switch-ratio and correlation
    /// statistics (a healthy catalyst's rear is lean while the stored O2 is purged after a cut).
    /// obd-remote-monitoring.md §2.1 (DFCO), §3.3 item 3. `[D]` heuristic.
    pub mirror_post_cut_s: f64,

    // ---- dfco_no_lean (§3.3 item 4, §2.1) ------------------------------------------------
    /// λ; upstream λ above this is a fuel cut (a wide-band sensor saturates lean; real log: 1.232).
    /// obd-remote-monitoring.md §3.3 item 4. `[D]` heuristic.
    pub dfco_lambda_min: f64,
    /// rpm; a fuel cut needs engine speed above this. obd-remote-monitoring.md §3.3 item 4 (rpm > 1000). `[D]` heuristic.
    pub dfco_min_rpm: f64,
    /// L/h; fuel flow at or below this is "≈ 0" (a fuel cut when speed is not rising and, where both
    /// torques are reported, net torque ≤ friction torque). obd-remote-monitoring.md §3.3 item 4. `[D]` heuristic.
    pub dfco_fuel_flow_max_lph: f64,
    /// s; a fuel cut counts as a lean test if it lasts at least this long. obd-remote-monitoring.md §3.3 item 4 (≥ 3 s). `[D]` heuristic.
    pub dfco_min_cut_s: f64,
    /// s; the rear must go lean within this time from the cut start (spec 2–3 s, plus 1 s for the
    /// sensor's sample lag; real log: the rear is below 0.1 V by the 2nd or 3rd sample of every cut).
    /// A cut is judged on the samples of this window (or up to its end + grace if shorter).
    /// obd-remote-monitoring.md §2.1 (P0139: 0.6→0.3 V within 2 s), §3.3 item 4. `[D]` heuristic.
    pub dfco_response_s: f64,
    /// Count; a cut is judged only if its response window holds at least this many fresh rear
    /// samples (guards against slowly refreshed or stale data). obd-remote-monitoring.md §1.9, §3.3 item 4. `[D]` heuristic.
    pub dfco_min_response_samples: u32,
    /// Samples after the end of a cut still searched for the lean response (sensor lag ~1–2 s).
    /// obd-remote-monitoring.md §2.1 (P0139 ≤ 2 s), §3.3 item 4. `[D]` heuristic.
    pub dfco_grace_samples: u32,
    /// V; the cut passes if the rear falls below this (spec 0.2–0.3 V; healthy log < 0.1 V).
    /// obd-remote-monitoring.md §3.3 item 4. `[D]` heuristic.
    pub dfco_lean_v: f64,
    /// V; the cut fails if the rear stays at or above this throughout its response window. A cut is
    /// judged only if the rear reads at least this at the cut's first sample (the test starts from
    /// rich, like P0139's 0.6→0.3 V). obd-remote-monitoring.md §2.1, §3.3 item 4 (~0.45 V). `[D]` heuristic.
    pub dfco_stuck_v: f64,
    /// Count; failed cuts needed before flagging ("several events"). obd-remote-monitoring.md §3.3 item 4. `[D]` heuristic.
    pub dfco_min_events: u32,
    /// Fraction; failed / (failed + passed) cuts needed before flagging. obd-remote-monitoring.md §3.3 item 4. `[D]` heuristic.
    pub dfco_fail_frac_min: f64,
    /// Count; when failed + passed reaches this the tallies are halved (old events fade).
    /// obd-remote-monitoring.md §3.3 item 4. `[D]` heuristic.
    pub dfco_episode_events: u32,
    /// V; cuts are only judged while the rear signal is active: exponentially weighted std of the
    /// warm, non-cut rear voltage at least this (a flat signal is `rear_o2_flatline`'s case).
    /// obd-remote-monitoring.md §3.3 items 1 and 4. `[D]` heuristic.
    pub dfco_min_rear_std_v: f64,
    /// 1/s; cuts are only judged while the rear's high→low flips that no fuel cut explains are rarer
    /// than this (exponentially weighted, time constant [`Self::dfco_activity_tau_s`]): a rear that
    /// switches by itself (square-wave simulator, `rear_o2_periodic`'s case) is no lean test.
    /// obd-remote-monitoring.md §3.3 items 2 and 4. `[D]` heuristic.
    pub dfco_max_free_flip_rate: f64,
    /// s; time constant of that exponentially weighted std and of the free-flip rate. obd-remote-monitoring.md §3.3 item 4. `[D]` heuristic.
    pub dfco_activity_tau_s: f64,

    // ---- rear_o2_missing (§3.3 item 5) ---------------------------------------------------
    /// s; a missing-rear episode must hold at least this many missing samples (engine running,
    /// speed and rpm present). obd-remote-monitoring.md §3.3 item 5. `[D]` heuristic.
    pub missing_min_s: f64,
    /// Fraction; missing / all samples of the episode must be at least this. obd-remote-monitoring.md §3.3 item 5. `[D]` heuristic.
    pub missing_frac_min: f64,
    /// s; this many consecutive present rear samples end a missing episode. obd-remote-monitoring.md §3.3 item 5. `[D]` heuristic.
    pub missing_reset_present_s: f64,

    // ---- rear_o2_flatline, long window without fuel cuts (§3.3 item 1) -------------------
    /// V; on a stretch without any fuel cut (no lean test), the rear counts as flat only if its
    /// std over each window is below this (stricter than [`Self::flat_std_max_v`]: a healthy
    /// rear at steady cruise is quiet too, but not a ±5 mV line for many minutes; real log
    /// ≥ 0.012 V over every 60-s window). obd-remote-monitoring.md §3.3 item 1. `[D]` heuristic.
    pub flat_nocut_std_max_v: f64,
    /// s; consecutive flat mid-band windows without any fuel cut, while upstream λ varies, must
    /// span at least this long (0 disables the no-cut case). obd-remote-monitoring.md §3.3
    /// item 1. `[D]` heuristic.
    pub flat_nocut_min_s: f64,

    // ---- rear_o2_low_band (§3.3 item 2, §3.2 (b)) ---------------------------------------
    /// V; the "low band": a rear held below this in warm closed loop is the low-voltage
    /// simulator's level (§3.2 (b): < 300 mV with a small oscillation; a working catalyst keeps
    /// the rear at ~0.6–0.8 V, real log median 0.74–0.76 V). obd-remote-monitoring.md §3.2 (b),
    /// §3.3 item 2. `[D]` heuristic.
    pub low_band_max_v: f64,
    /// Fraction; at least this share of the window's samples must be below
    /// [`Self::low_band_max_v`]. obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub low_band_frac_min: f64,
    /// Fraction; at least this share of the window's samples must be closed loop (upstream λ
    /// within the closed-loop band, no fuel cut): the rear is judged in warm closed loop only.
    /// obd-remote-monitoring.md §3.3 preamble. `[D]` heuristic.
    pub low_band_closed_loop_frac_min: f64,
    /// V; the rear must oscillate: its std over the window at least this (a constant low line
    /// is another fault). obd-remote-monitoring.md §3.2 (b). `[D]` heuristic.
    pub low_band_std_min_v: f64,
    /// V; hysteresis half-band of the crossings of the window's mean that delimit the
    /// oscillation's half-periods. obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub low_band_hyst_v: f64,
    /// Count; at least this many complete half-periods (crossing to crossing) in the window.
    /// obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub low_band_min_runs: u32,
    /// Coefficient of variation of the half-period lengths at or below which the oscillation
    /// is regular (a spectral line: 11-s sine at 1 Hz gives half-periods of 5 and 6 s, CV ≈ 0.1;
    /// noise gives CV ≳ 0.6). obd-remote-monitoring.md §3.3 item 2. `[D]` heuristic.
    pub low_band_run_cv_max: f64,
    /// Correlation; the rear must follow neither engine speed nor λ: |corr(rear, rpm)| and the
    /// best lagged correlation with rich(λ) at most this. obd-remote-monitoring.md §3.3 item 2
    /// ("period unrelated to rpm/load"). `[D]` heuristic.
    pub low_band_max_abs_corr: f64,

    // ---- lambda_implausible (§3.3 item 8, data quality) -----------------------------------
    /// Count; warm closed-loop samples (engine running, no fuel cut by fuel flow, commanded λ
    /// stoichiometric where reported) per plausibility verdict on the upstream λ.
    /// obd-remote-monitoring.md §3.3 item 8. `[D]` heuristic.
    pub lambda_check_samples: u32,
    /// Count; at the end of a session or of the input, a verdict needs at least this many.
    /// obd-remote-monitoring.md §3.3 item 8. `[D]` heuristic.
    pub lambda_check_min_samples: u32,
    /// Ratio; the median upstream λ divided by the median commanded λ (1.0 when the source has
    /// none) must be at least this (§3.3 item 8: closed loop centres at 1.00 ± ~0.03; 0.5 or 2
    /// means a wrong scale). obd-remote-monitoring.md §3.3 item 8. `[D]` heuristic.
    pub lambda_ratio_min: f64,
    /// Ratio; … and at most this. obd-remote-monitoring.md §3.3 item 8. `[D]` heuristic.
    pub lambda_ratio_max: f64,
    /// λ; a sample is stoichiometric closed loop only if its commanded λ (where reported) lies
    /// within [`Self::lambda_cmd_min`, `Self::lambda_cmd_max`] (power enrichment is excluded).
    /// obd-remote-monitoring.md §3.3 item 8. `[D]` heuristic.
    pub lambda_cmd_min: f64,
    /// λ; upper end of that window. obd-remote-monitoring.md §3.3 item 8. `[D]` heuristic.
    pub lambda_cmd_max: f64,
    /// Count; fuel-cut samples (by fuel flow) needed for the direction test: in a cut the
    /// exhaust is air and λ must read lean; a value read rich there is φ = 1/λ.
    /// obd-remote-monitoring.md §2.1 (DFCO), §3.3 item 8. `[D]` heuristic.
    pub lambda_cut_min_samples: u32,
    /// Fraction; the upstream signal is inverted (φ sent as λ) if at least this share of the
    /// fuel-cut samples read below [`Self::lambda_cut_rich_factor`] × the closed-loop median.
    /// obd-remote-monitoring.md §3.3 item 8. `[D]` heuristic.
    pub lambda_cut_rich_frac_min: f64,
    /// Factor; a fuel-cut sample reads "rich" below this × the closed-loop median (true λ goes to
    /// ≥ 1.2 in a cut, φ to ≤ 0.83). obd-remote-monitoring.md §3.3 item 8. `[D]` heuristic.
    pub lambda_cut_rich_factor: f64,
}

impl Default for TwcThresholds {
    fn default() -> Self {
        Self {
            session_gap_s: 30.0,
            warm_coolant_c: 70.0,
            warm_after_start_s: 300.0,
            engine_running_rpm: 400.0,
            rear_v_max_valid: 1.275,
            closed_loop_lambda_max: 1.15,
            closed_loop_lambda_min: 0.85,
            window_samples: 300,
            rearm_s: 900.0,

            flat_std_max_v: 0.010,
            flat_mean_min_v: 0.40,
            flat_mean_max_v: 0.80,
            flat_lambda_std_min: 0.005,
            flat_min_unanswered_cuts: 1,
            flat_cut_drop_max_v: 0.02,
            flat_cut_min_s: 3.0,

            per_low_max_v: 0.30,
            per_high_min_v: 0.60,
            per_mid_frac_max: 0.15,
            per_level_frac_min: 0.15,
            per_min_runs: 20,
            per_run_cv_max: 0.35,
            per_cut_explained_max: 0.5,
            per_explain_s: 3.0,

            mirror_rear_v: 0.45,
            mirror_rear_hyst_v: 0.05,
            mirror_lambda: 1.0,
            mirror_lambda_hyst: 0.003,
            mirror_sr_min: 0.7,
            mirror_min_lambda_crossings: 10,
            mirror_corr_min: 0.1,
            mirror_run_cv_min: 0.45,
            mirror_post_cut_s: 10.0,

            dfco_lambda_min: 1.2,
            dfco_min_rpm: 1000.0,
            dfco_fuel_flow_max_lph: 0.2,
            dfco_min_cut_s: 3.0,
            dfco_response_s: 4.0,
            dfco_min_response_samples: 3,
            dfco_grace_samples: 1,
            dfco_lean_v: 0.2,
            dfco_stuck_v: 0.45,
            dfco_min_events: 3,
            dfco_fail_frac_min: 0.8,
            dfco_episode_events: 12,
            dfco_min_rear_std_v: 0.012,
            dfco_activity_tau_s: 120.0,
            dfco_max_free_flip_rate: 0.02,

            missing_min_s: 180.0,
            missing_frac_min: 0.9,
            missing_reset_present_s: 10.0,

            flat_nocut_std_max_v: 0.006,
            flat_nocut_min_s: 600.0,

            low_band_max_v: 0.30,
            low_band_frac_min: 0.95,
            low_band_closed_loop_frac_min: 0.5,
            low_band_std_min_v: 0.01,
            low_band_hyst_v: 0.01,
            low_band_min_runs: 10,
            low_band_run_cv_max: 0.35,
            low_band_max_abs_corr: 0.5,

            lambda_check_samples: 600,
            lambda_check_min_samples: 120,
            lambda_ratio_min: 0.80,
            lambda_ratio_max: 1.25,
            lambda_cmd_min: 0.95,
            lambda_cmd_max: 1.05,
            lambda_cut_min_samples: 10,
            lambda_cut_rich_frac_min: 0.8,
            lambda_cut_rich_factor: 0.9,
        }
    }
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

/// Finite value within [lo, hi], else None.
fn clean(v: Option<f64>, lo: f64, hi: f64) -> Option<f64> {
    match v {
        Some(x) if x.is_finite() && x >= lo && x <= hi => Some(x),
        _ => None,
    }
}

fn clamp01(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Sample standard deviation from a Welford M2 and count.
fn welford_std(m2: f32, n: u16) -> f64 {
    if n < 2 {
        return 0.0;
    }
    (f64::from(m2.max(0.0)) / f64::from(n - 1)).sqrt()
}

/// Pearson correlation from sums; 0 when degenerate.
fn corr_from_sums(n: f64, sx: f64, sy: f64, sxx: f64, syy: f64, sxy: f64) -> f64 {
    if n < 3.0 {
        return 0.0;
    }
    let cov = sxy - sx * sy / n;
    let vx = sxx - sx * sx / n;
    let vy = syy - sy * sy / n;
    if vx <= 1e-9 || vy <= 1e-9 {
        return 0.0;
    }
    let r = cov / (vx * vy).sqrt();
    if r.is_finite() {
        r.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// 32-bit fingerprint of the fields that change every second in fresh data.
fn fingerprint(c: &Clean) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in [c.rpm, c.lam, c.rear, c.speed] {
        let bits = v.map_or(0x7ff8_dead_beef_0001, f64::to_bits);
        h ^= bits;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    (h ^ (h >> 32)) as u32
}

/// One step of a streaming median estimate (stochastic approximation): `m` moves by `step`
/// toward `x` (not at all when equal or not finite).
fn step_toward(m: f32, x: f32, step: f32) -> f32 {
    if !x.is_finite() || !m.is_finite() {
        return if m.is_finite() { m } else { x };
    }
    if x > m {
        m + step
    } else if x < m {
        m - step
    } else {
        m
    }
}

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

    /// Feed one sample (samples of one vehicle in time order; a sample not later than the previous
    /// one is ignored). Findings are appended to `out`. Never panics on any input.
    ///
    /// Implements obd-remote-monitoring.md §3.3 items 1–5 with the gating of the §3.3 preamble.
    pub fn update(&mut self, p: &ObdPoint, th: &TwcThresholds, out: &mut Vec<TwcFinding>) {
        let mut c = Clean {
            t: p.t_ms,
            speed: clean(p.speed_kmh, 0.0, 400.0),
            rpm: clean(p.engine_rpm, 0.0, 20_000.0),
            coolant: clean(p.coolant_c, -60.0, 260.0),
            lam: clean(p.upstream_lambda, 0.05, 20.0),
            rear: clean(p.rear_o2_v, -0.5, th.rear_v_max_valid),
            fuel: clean(p.fuel_flow_lph, -1.0, 5000.0),
            net_tq: clean(p.net_torque_pct, -200.0, 200.0),
            fric_tq: clean(p.friction_torque_pct, -200.0, 200.0),
        };

        // --- session handling ---
        if self.flag(F_SESSION) {
            if c.t <= self.last_t_ms {
                return; // out of order or duplicate
            }
            let gap_ms = c.t.saturating_sub(self.last_t_ms);
            let dec = u32::try_from(gap_ms).unwrap_or(u32::MAX);
            for r in self.rearm_left_ms.iter_mut() {
                *r = r.saturating_sub(dec);
            }
            if (gap_ms as f64) > th.session_gap_s * 1000.0 {
                self.new_session(c.t);
            }
        } else {
            self.new_session(c.t);
            self.rearm_left_ms = [0; 7];
            self.dfco_fail = 0.0;
            self.dfco_pass = 0.0;
            self.missing_start_ms = c.t;
            self.set_flag(F_SESSION, true);
        }
        self.last_t_ms = c.t;
        if let Some(cool) = c.coolant {
            self.last_coolant_c = cool as f32;
        }

        self.update_missing(&c, th, out);

        // A sample whose rpm, λ, rear V and speed are bit-identical to the previous one is a
        // re-send of stale values (loggers that poll PIDs slowly, e.g. the Golf log refreshes
        // every ~5 s): it carries no new information and is skipped.
        let fp = fingerprint(&c);
        let stale = self.flag(F_FP_VALID) && fp == self.prev_fp;
        self.prev_fp = fp;
        self.set_flag(F_FP_VALID, true);
        if stale {
            return;
        }
        // An upstream λ found implausible (§3.3 item 8) is not used by the rules until a later
        // verdict finds it plausible again; fuel cuts then come from fuel flow alone.
        let lam_raw = p
            .upstream_lambda
            .filter(|x| x.is_finite() && *x > 1e-4 && *x < 1e4);
        if self.flag(F_LAM_BAD) {
            c.lam = None;
        }

        let running = c.rpm.is_some_and(|r| r >= th.engine_running_rpm);
        let since_start_s = c.t.saturating_sub(self.session_start_ms) as f64 / 1000.0;
        let warm = running
            && self.last_coolant_c.is_finite()
            && f64::from(self.last_coolant_c) > th.warm_coolant_c
            && since_start_s >= th.warm_after_start_s;

        let speed_prev = self.prev_speed_kmh;
        if let Some(s) = c.speed {
            self.prev_speed_kmh = s as f32;
        } else {
            self.prev_speed_kmh = f32::NAN;
        }

        // --- fuel cut detection (§3.3 item 4) ---
        let rpm_ok = c.rpm.is_some_and(|r| r > th.dfco_min_rpm);
        let lam_cut = c.lam.is_some_and(|l| l > th.dfco_lambda_min);
        let speed_not_rising = match c.speed {
            Some(s) => speed_prev.is_finite() && s <= f64::from(speed_prev),
            None => false,
        };
        let torque_ok = match (c.net_tq, c.fric_tq) {
            (Some(n), Some(f)) => n <= f,
            _ => true,
        };
        let fuel_cut =
            c.fuel.is_some_and(|f| f <= th.dfco_fuel_flow_max_lph) && speed_not_rising && torque_ok;
        let is_cut = rpm_ok && (lam_cut || fuel_cut);

        let cmd = p
            .commanded_lambda
            .filter(|x| x.is_finite() && *x > 0.05 && *x < 20.0);
        self.update_lambda_check(c.t, warm, rpm_ok && fuel_cut, lam_raw, cmd, th, out);
        if self.flag(F_LAM_BAD) {
            c.lam = None;
        }

        // --- rear activity (EW std of the non-cut rear while the engine runs) ---
        if let (Some(r), true, false) = (c.rear, running, is_cut) {
            let r = r as f32;
            if self.flag(F_EW_INIT) {
                let alpha = (1.0 / th.dfco_activity_tau_s.max(1.0)) as f32;
                let d = r - self.ew_mean;
                self.ew_mean += alpha * d;
                self.ew_var = (1.0 - alpha) * (self.ew_var + alpha * d * d);
            } else {
                self.ew_mean = r;
                self.ew_var = 0.0;
                self.set_flag(F_EW_INIT, true);
            }
        }

        if !warm {
            // Leaving warm operation aborts a running cut without judging it.
            self.set_flag(F_IN_CUT, false);
            self.cut_grace_left = 0;
            return;
        }

        self.track_cut(&c, is_cut, th, out);
        if is_cut {
            self.last_cut_ms = c.t;
        }

        // --- window accumulation ---
        let (Some(rear), Some(lam)) = (c.rear, c.lam) else {
            return;
        };
        self.accumulate_window(c.t, rear, lam, c.rpm, is_cut, th);
        if u32::from(self.n_win) >= th.window_samples.clamp(10, 60_000) {
            self.evaluate_window(th, out);
            self.reset_window(c.t);
        }
    }

    fn new_session(&mut self, t: i64) {
        self.session_start_ms = t;
        self.last_cut_ms = i64::MIN;
        self.last_coolant_c = f32::NAN;
        self.prev_speed_kmh = f32::NAN;
        self.last_flip_ms = i64::MIN;
        self.level = 0;
        self.hist_rich = 0;
        self.hist_valid = 0;
        self.cut_grace_left = 0;
        self.set_flag(F_IN_CUT, false);
        self.set_flag(F_EW_INIT, false);
        self.set_flag(F_FP_VALID, false);
        self.ew_mean = 0.0;
        self.ew_var = 0.0;
        self.free_flip_rate = 0.0;
        self.flat_nocut_start_ms = i64::MIN;
        self.reset_window(t);
    }

    fn reset_window(&mut self, t: i64) {
        self.win_start_ms = t;
        self.rear_mean = 0.0;
        self.rear_m2 = 0.0;
        self.lam_mean = 0.0;
        self.lam_m2 = 0.0;
        self.corr_sy = 0.0;
        self.corr_syy = 0.0;
        self.corr_sx = [0.0; 4];
        self.corr_sxy = [0.0; 4];
        self.run_mean_s = 0.0;
        self.run_m2 = 0.0;
        self.n_win = 0;
        self.n_lam = 0;
        self.n_corr = 0;
        self.rear_cross = 0;
        self.lam_cross = 0;
        self.n_runs = 0;
        self.flips_low = 0;
        self.flips_low_explained = 0;
        self.n_low = 0;
        self.n_high = 0;
        self.n_mid = 0;
        self.win_cuts = 0;
        self.win_cuts_answered = 0;
        self.win_max_cut_drop = 0.0;
        self.lb_n_low = 0;
        self.lb_runs = 0;
        self.lb_last_cross_ms = i64::MIN;
        self.lb_run_mean = 0.0;
        self.lb_run_m2 = 0.0;
        self.lb_med = 0.0;
        self.lb_max = f32::NEG_INFINITY;
        self.rpm_mean = 0.0;
        self.rpm_m2 = 0.0;
        self.rear_rpm_c = 0.0;
        self.set_flag(F_LB_KNOWN, false);
    }

    fn rearmed(&self, rule: TwcRule) -> bool {
        self.rearm_left_ms[rule.index()] == 0
    }

    fn emit(&mut self, th: &TwcThresholds, f: TwcFinding, out: &mut Vec<TwcFinding>) {
        let idx = f.rule.index();
        let rearm_ms = (th.rearm_s.max(0.0) * 1000.0).min(f64::from(u32::MAX)) as u32;
        self.rearm_left_ms[idx] = rearm_ms;
        out.push(f);
    }

    // ------------------------------------------------------------------ missing (§3.3 item 5)
    fn update_missing(&mut self, c: &Clean, th: &TwcThresholds, out: &mut Vec<TwcFinding>) {
        let rest_valid = c.rpm.is_some_and(|r| r >= th.engine_running_rpm) && c.speed.is_some();
        if !rest_valid {
            return;
        }
        if c.rear.is_none() {
            if self.missing_n == 0 {
                self.missing_start_ms = c.t;
                self.missing_present = 0;
            }
            self.missing_n = self.missing_n.saturating_add(1);
            self.missing_present_run = 0;
        } else if self.missing_n > 0 {
            self.missing_present = self.missing_present.saturating_add(1);
            self.missing_present_run = self.missing_present_run.saturating_add(1);
            if f64::from(self.missing_present_run) >= th.missing_reset_present_s {
                self.missing_n = 0;
                self.missing_present = 0;
                self.missing_present_run = 0;
            }
            return;
        } else {
            return;
        }
        let total = f64::from(self.missing_n) + f64::from(self.missing_present);
        let frac = f64::from(self.missing_n) / total.max(1.0);
        if f64::from(self.missing_n) >= th.missing_min_s
            && frac >= th.missing_frac_min
            && self.rearmed(TwcRule::RearO2Missing)
        {
            let strength = clamp01(f64::from(self.missing_n) / (2.0 * th.missing_min_s.max(1.0)))
                * clamp01(frac);
            let f = TwcFinding {
                rule: TwcRule::RearO2Missing,
                window_start_ms: self.missing_start_ms,
                window_end_ms: c.t,
                evidence: vec![
                    ("missing_samples", f64::from(self.missing_n)),
                    ("present_samples", f64::from(self.missing_present)),
                    ("missing_frac", frac),
                    (
                        "episode_s",
                        c.t.saturating_sub(self.missing_start_ms) as f64 / 1000.0,
                    ),
                ],
                strength,
                note: None,
            };
            self.emit(th, f, out);
            // New episode starts after the finding.
            self.missing_n = 0;
            self.missing_present = 0;
        }
    }

    // ------------------------------------------------------------------ fuel cuts (§3.3 item 4)
    /// Fuel-cut state machine. A cut is judged once: `dfco_response_s` after its start if it
    /// lasts that long, else `dfco_grace_samples` samples after its end. The judged rear minimum
    /// covers the samples from the cut start up to the judgement (the response window).
    fn track_cut(
        &mut self,
        c: &Clean,
        is_cut: bool,
        th: &TwcThresholds,
        out: &mut Vec<TwcFinding>,
    ) {
        let rear = c.rear.map(|r| r as f32);
        if is_cut {
            if self.cut_grace_left > 0 {
                // A new cut during the grace period of the previous one: judge the previous now.
                self.finish_cut(th, out);
            }
            if !self.flag(F_IN_CUT) {
                self.set_flag(F_IN_CUT, true);
                self.set_flag(F_CUT_JUDGED, false);
                self.cut_start_ms = c.t;
                self.cut_min_rear = f32::INFINITY;
                self.cut_n = 0;
                self.cut_start_rear = rear.unwrap_or(f32::NAN);
                // A cut is a lean test only if the rear signal is active and starts rich.
                let active = self.flag(F_EW_INIT)
                    && f64::from(self.ew_var.max(0.0)).sqrt() >= th.dfco_min_rear_std_v
                    && rear.is_some_and(|r| f64::from(r) >= th.dfco_stuck_v)
                    && f64::from(self.free_flip_rate) <= th.dfco_max_free_flip_rate;
                self.set_flag(F_CUT_ACTIVE, active);
            }
            self.cut_last_ms = c.t;
            if self.flag(F_CUT_JUDGED) {
                return;
            }
            let offset_s = c.t.saturating_sub(self.cut_start_ms) as f64 / 1000.0;
            if offset_s < th.dfco_response_s - 0.25 {
                if let Some(r) = rear {
                    self.cut_min_rear = self.cut_min_rear.min(r);
                    self.cut_n = self.cut_n.saturating_add(1);
                }
            } else {
                self.finish_cut(th, out);
            }
            return;
        }
        if self.flag(F_IN_CUT) {
            self.set_flag(F_IN_CUT, false);
            if self.flag(F_CUT_JUDGED) {
                return;
            }
            self.cut_grace_left = th.dfco_grace_samples.min(10) as u8;
            if self.cut_grace_left == 0 {
                self.finish_cut(th, out);
                return;
            }
        }
        if self.cut_grace_left > 0 {
            if let Some(r) = rear {
                self.cut_min_rear = self.cut_min_rear.min(r);
                self.cut_n = self.cut_n.saturating_add(1);
            }
            self.cut_grace_left -= 1;
            if self.cut_grace_left == 0 {
                self.finish_cut(th, out);
            }
        }
    }

    /// Judge a cut: window cue for the flatline rule, pass/fail for dfco_no_lean.
    fn finish_cut(&mut self, th: &TwcThresholds, out: &mut Vec<TwcFinding>) {
        self.cut_grace_left = 0;
        self.set_flag(F_CUT_JUDGED, true);
        let dur_s = self.cut_last_ms.saturating_sub(self.cut_start_ms) as f64 / 1000.0 + 1.0;
        let min_rear = f64::from(self.cut_min_rear);
        let has_rear = min_rear.is_finite() && self.cut_n >= 2;
        let drop_v = f64::from(self.cut_start_rear) - min_rear;
        if has_rear && drop_v.is_finite() && dur_s >= th.flat_cut_min_s - 0.25 {
            self.win_cuts = self.win_cuts.saturating_add(1);
            self.win_max_cut_drop = self.win_max_cut_drop.max(drop_v as f32);
            if min_rear < th.dfco_lean_v || drop_v >= th.flat_cut_drop_max_v {
                self.win_cuts_answered = self.win_cuts_answered.saturating_add(1);
            }
        }
        if !has_rear
            || dur_s < th.dfco_min_cut_s - 0.25
            || u32::from(self.cut_n) < th.dfco_min_response_samples
            || !self.flag(F_CUT_ACTIVE)
        {
            return;
        }
        let pass = min_rear < th.dfco_lean_v;
        let fail = min_rear >= th.dfco_stuck_v;
        if !pass && !fail {
            return;
        }
        if self.dfco_fail + self.dfco_pass < 0.5 {
            self.dfco_ep_start_ms = self.cut_start_ms;
        }
        if pass {
            self.dfco_pass += 1.0;
        } else {
            self.dfco_fail += 1.0;
        }
        let total = self.dfco_fail + self.dfco_pass;
        let fail_frac = f64::from(self.dfco_fail) / f64::from(total.max(1.0));
        if f64::from(self.dfco_fail) >= f64::from(th.dfco_min_events) - 1e-3
            && fail_frac >= th.dfco_fail_frac_min
            && self.rearmed(TwcRule::DfcoNoLean)
        {
            let strength = clamp01(fail_frac)
                * clamp01(f64::from(self.dfco_fail) / (2.0 * f64::from(th.dfco_min_events.max(1))))
                * clamp01(
                    (min_rear - th.dfco_lean_v) / (th.dfco_stuck_v - th.dfco_lean_v).max(1e-3),
                );
            let f = TwcFinding {
                rule: TwcRule::DfcoNoLean,
                window_start_ms: self.dfco_ep_start_ms,
                window_end_ms: self.cut_last_ms,
                evidence: vec![
                    ("failed_cuts", f64::from(self.dfco_fail)),
                    ("passed_cuts", f64::from(self.dfco_pass)),
                    ("fail_frac", fail_frac),
                    ("last_cut_judged_s", dur_s),
                    ("last_cut_min_rear_o2_v", min_rear),
                    ("rear_o2_ew_std_v", f64::from(self.ew_var.max(0.0)).sqrt()),
                ],
                strength,
                note: None,
            };
            self.emit(th, f, out);
            self.dfco_fail = 0.0;
            self.dfco_pass = 0.0;
        } else if total >= th.dfco_episode_events.max(2) as f32 {
            self.dfco_fail *= 0.5;
            self.dfco_pass *= 0.5;
        }
    }

    // ------------------------------------------------------------------ windows
    fn accumulate_window(
        &mut self,
        t: i64,
        rear: f64,
        lam: f64,
        rpm: Option<f64>,
        is_cut: bool,
        th: &TwcThresholds,
    ) {
        if self.n_win == 0 {
            self.win_start_ms = t;
        }
        self.n_win = self.n_win.saturating_add(1);
        let r = rear as f32;
        // Welford rear.
        let n = f32::from(self.n_win);
        let d = r - self.rear_mean;
        self.rear_mean += d / n;
        self.rear_m2 += d * (r - self.rear_mean);
        // Welford rpm and the rear–rpm co-moment (low band: "follows neither rpm nor λ").
        let y = rpm.map_or(self.rpm_mean, |v| v as f32);
        let dy = y - self.rpm_mean;
        self.rpm_mean += dy / n;
        self.rpm_m2 += dy * (y - self.rpm_mean);
        self.rear_rpm_c += d * (y - self.rpm_mean);
        self.accumulate_low_band(t, rear, th);

        let closed_loop =
            lam > th.closed_loop_lambda_min && lam < th.closed_loop_lambda_max && !is_cut;
        if closed_loop {
            self.n_lam = self.n_lam.saturating_add(1);
            let l = lam as f32;
            let d = l - self.lam_mean;
            self.lam_mean += d / f32::from(self.n_lam);
            self.lam_m2 += d * (l - self.lam_mean);
        }

        // --- periodic: level tracker with hysteresis, run lengths ---
        let new_level = if rear <= th.per_low_max_v {
            self.n_low = self.n_low.saturating_add(1);
            1
        } else if rear >= th.per_high_min_v {
            self.n_high = self.n_high.saturating_add(1);
            2
        } else {
            self.n_mid = self.n_mid.saturating_add(1);
            self.level
        };
        let mut free_flip = false;
        if new_level != 0 && new_level != self.level {
            if self.level != 0 {
                // a flip
                if self.last_flip_ms != i64::MIN {
                    let run_s = (t.saturating_sub(self.last_flip_ms) as f64 / 1000.0) as f32;
                    self.n_runs = self.n_runs.saturating_add(1);
                    let d = run_s - self.run_mean_s;
                    self.run_mean_s += d / f32::from(self.n_runs);
                    self.run_m2 += d * (run_s - self.run_mean_s);
                }
                self.last_flip_ms = t;
                if new_level == 1 {
                    self.flips_low = self.flips_low.saturating_add(1);
                    let explained = self.last_cut_ms != i64::MIN
                        && (t.saturating_sub(self.cut_start_ms) as f64)
                            <= th.per_explain_s * 1000.0;
                    if explained {
                        self.flips_low_explained = self.flips_low_explained.saturating_add(1);
                    } else {
                        free_flip = true;
                    }
                }
            }
            self.level = new_level;
        }
        let alpha = (1.0 / th.dfco_activity_tau_s.max(1.0)) as f32;
        self.free_flip_rate += alpha * (f32::from(u8::from(free_flip)) - self.free_flip_rate);

        // --- mirror: switch ratio + lagged correlation on closed-loop, not-after-cut samples ---
        let after_cut = self.last_cut_ms != i64::MIN
            && (t.saturating_sub(self.last_cut_ms) as f64) <= th.mirror_post_cut_s * 1000.0;
        if !closed_loop || after_cut {
            // break the lag history and crossing continuity
            self.hist_valid <<= 1;
            self.hist_valid &= 0b111;
            self.hist_rich <<= 1;
            self.hist_rich &= 0b111;
            return;
        }
        // rear crossings with hysteresis
        let hi = th.mirror_rear_v + th.mirror_rear_hyst_v;
        let lo = th.mirror_rear_v - th.mirror_rear_hyst_v;
        if self.flag(F_REAR_KNOWN) {
            let high = self.flag(F_REAR_HIGH);
            if high && rear < lo {
                self.set_flag(F_REAR_HIGH, false);
                self.rear_cross = self.rear_cross.saturating_add(1);
            } else if !high && rear > hi {
                self.set_flag(F_REAR_HIGH, true);
                self.rear_cross = self.rear_cross.saturating_add(1);
            }
        } else if rear > hi || rear < lo {
            self.set_flag(F_REAR_KNOWN, true);
            self.set_flag(F_REAR_HIGH, rear > hi);
        }
        // λ crossings with hysteresis (rich = λ below the level)
        let lhi = th.mirror_lambda + th.mirror_lambda_hyst;
        let llo = th.mirror_lambda - th.mirror_lambda_hyst;
        if self.flag(F_LAM_KNOWN) {
            let rich = self.flag(F_LAM_RICH);
            if rich && lam > lhi {
                self.set_flag(F_LAM_RICH, false);
                self.lam_cross = self.lam_cross.saturating_add(1);
            } else if !rich && lam < llo {
                self.set_flag(F_LAM_RICH, true);
                self.lam_cross = self.lam_cross.saturating_add(1);
            }
        } else if lam > lhi || lam < llo {
            self.set_flag(F_LAM_KNOWN, true);
            self.set_flag(F_LAM_RICH, lam < llo);
        }
        // lagged correlation: use the sample only if the 3 previous ones are eligible too
        let rich_now = lam < th.mirror_lambda;
        if self.hist_valid & 0b111 == 0b111 {
            self.n_corr = self.n_corr.saturating_add(1);
            self.corr_sy += r;
            self.corr_syy += r * r;
            for k in 0..4 {
                let x = if k == 0 {
                    rich_now
                } else {
                    (self.hist_rich >> (k - 1)) & 1 == 1
                };
                if x {
                    self.corr_sx[k] += 1.0;
                    self.corr_sxy[k] += r;
                }
            }
        }
        self.hist_rich = ((self.hist_rich << 1) | u8::from(rich_now)) & 0b111;
        self.hist_valid = ((self.hist_valid << 1) | 1) & 0b111;
    }

    /// Low-band tracking (§3.2 (b)): share below `low_band_max_v`, a streaming median, the max,
    /// and the half-periods between crossings of the window's running mean (with hysteresis,
    /// after the first 20 samples so the mean has settled).
    fn accumulate_low_band(&mut self, t: i64, rear: f64, th: &TwcThresholds) {
        let r = rear as f32;
        if rear < th.low_band_max_v {
            self.lb_n_low = self.lb_n_low.saturating_add(1);
        }
        self.lb_max = self.lb_max.max(r);
        self.lb_med = if self.n_win <= 1 {
            r
        } else {
            step_toward(self.lb_med, r, 0.005)
        };
        if self.n_win < 20 {
            return;
        }
        let hyst = th.low_band_hyst_v.max(0.0);
        let hi = f64::from(self.rear_mean) + hyst;
        let lo = f64::from(self.rear_mean) - hyst;
        if self.flag(F_LB_KNOWN) {
            let high = self.flag(F_LB_HIGH);
            if (high && rear < lo) || (!high && rear > hi) {
                self.set_flag(F_LB_HIGH, !high);
                if self.lb_last_cross_ms != i64::MIN {
                    let run_s = (t.saturating_sub(self.lb_last_cross_ms) as f64 / 1000.0) as f32;
                    self.lb_runs = self.lb_runs.saturating_add(1);
                    let d = run_s - self.lb_run_mean;
                    self.lb_run_mean += d / f32::from(self.lb_runs);
                    self.lb_run_m2 += d * (run_s - self.lb_run_mean);
                }
                self.lb_last_cross_ms = t;
            }
        } else if rear > hi || rear < lo {
            self.set_flag(F_LB_KNOWN, true);
            self.set_flag(F_LB_HIGH, rear > hi);
        }
    }

    /// Upstream-λ plausibility (§3.3 item 8): on warm closed-loop samples (engine running, no
    /// fuel cut by fuel flow, commanded λ stoichiometric where reported) a streaming median of
    /// upstream and commanded λ; on fuel-cut samples whether λ reads rich (φ = 1/λ). A verdict
    /// every `lambda_check_samples` samples, see [`Self::lambda_verdict`].
    #[allow(clippy::too_many_arguments)]
    fn update_lambda_check(
        &mut self,
        t: i64,
        warm: bool,
        fuel_cut: bool,
        up: Option<f64>,
        cmd: Option<f64>,
        th: &TwcThresholds,
        out: &mut Vec<TwcFinding>,
    ) {
        let Some(up) = up else { return };
        if !warm {
            return;
        }
        if fuel_cut {
            if self.lp_n >= 30 {
                self.lp_cut_n = self.lp_cut_n.saturating_add(1);
                if up < f64::from(self.lp_ln_up).exp() * th.lambda_cut_rich_factor {
                    self.lp_cut_rich = self.lp_cut_rich.saturating_add(1);
                }
            }
            return;
        }
        if cmd.is_some_and(|c| c < th.lambda_cmd_min || c > th.lambda_cmd_max) {
            return;
        }
        let step = |n: u16| (0.5 / f64::from(n.max(1)).powf(0.75)).max(0.001) as f32;
        let ln_up = up.ln() as f32;
        if self.lp_n == 0 {
            self.lp_start_ms = t;
            self.lp_ln_up = ln_up;
            self.lp_n_cmd = 0;
            self.lp_cut_n = 0;
            self.lp_cut_rich = 0;
        } else {
            let e = step(self.lp_n);
            self.lp_ln_up = step_toward(self.lp_ln_up, ln_up, e);
        }
        self.lp_n = self.lp_n.saturating_add(1);
        if let Some(c) = cmd {
            let ln_c = c.ln() as f32;
            if self.lp_n_cmd == 0 {
                self.lp_ln_cmd = ln_c;
            } else {
                let e = step(self.lp_n_cmd);
                self.lp_ln_cmd = step_toward(self.lp_ln_cmd, ln_c, e);
            }
            self.lp_n_cmd = self.lp_n_cmd.saturating_add(1);
        }
        let due = th.lambda_check_samples.clamp(10, u32::from(u16::MAX));
        if u32::from(self.lp_n) >= due {
            self.lambda_verdict(t, th, out);
        }
    }

    /// Judge the accumulated upstream λ (§3.3 item 8): the ratio median(upstream) /
    /// median(commanded, else 1.0) outside `lambda_ratio_min..=lambda_ratio_max`, or λ reading
    /// rich in fuel cuts (φ), makes it implausible: a `lambda_implausible` finding (once per
    /// re-arm period) and the λ-based rules stop using λ until a later verdict is plausible.
    fn lambda_verdict(&mut self, end_ms: i64, th: &TwcThresholds, out: &mut Vec<TwcFinding>) {
        let n = self.lp_n;
        if n == 0 {
            return;
        }
        let up = f64::from(self.lp_ln_up).exp();
        let cmd =
            (u32::from(self.lp_n_cmd) * 2 >= u32::from(n)).then(|| f64::from(self.lp_ln_cmd).exp());
        let ratio = up / cmd.unwrap_or(1.0);
        let level_bad = !(ratio >= th.lambda_ratio_min && ratio <= th.lambda_ratio_max);
        let cut_rich_frac = f64::from(self.lp_cut_rich) / f64::from(self.lp_cut_n.max(1));
        let inverted = u32::from(self.lp_cut_n) >= th.lambda_cut_min_samples.max(1)
            && cut_rich_frac >= th.lambda_cut_rich_frac_min;
        let bad = level_bad || inverted;
        self.set_flag(F_LAM_BAD, bad);
        if bad && self.rearmed(TwcRule::LambdaImplausible) {
            let strength = if level_bad {
                clamp01(ratio.ln().abs() / std::f64::consts::LN_2)
            } else {
                clamp01(cut_rich_frac)
            };
            let f = TwcFinding {
                rule: TwcRule::LambdaImplausible,
                window_start_ms: self.lp_start_ms,
                window_end_ms: end_ms,
                evidence: vec![
                    ("n_samples", f64::from(n)),
                    ("upstream_lambda_median", up),
                    ("commanded_lambda_median", cmd.unwrap_or(f64::NAN)),
                    ("ratio", ratio),
                    ("cut_samples", f64::from(self.lp_cut_n)),
                    ("cut_rich_frac", cut_rich_frac),
                ],
                strength,
                note: Some(lambda_hint(ratio, level_bad)),
            };
            self.emit(th, f, out);
        }
        self.lp_n = 0;
        self.lp_n_cmd = 0;
        self.lp_cut_n = 0;
        self.lp_cut_rich = 0;
    }

    /// End of the input: verdicts that are due on what was accumulated (a λ plausibility
    /// verdict on at least `lambda_check_min_samples` samples). Streams never call it.
    pub fn finish(&mut self, th: &TwcThresholds, out: &mut Vec<TwcFinding>) {
        if u32::from(self.lp_n) >= th.lambda_check_min_samples.max(1) {
            let end = self.last_t_ms;
            self.lambda_verdict(end, th, out);
        }
    }

    /// True when the last λ plausibility verdict found the upstream λ implausible (§3.3 item 8).
    pub fn lambda_implausible(&self) -> bool {
        self.flag(F_LAM_BAD)
    }

    fn run_cv(&self) -> Option<f64> {
        if self.n_runs < 3 || self.run_mean_s <= 0.0 {
            return None;
        }
        let sd = welford_std(self.run_m2, self.n_runs);
        Some(sd / f64::from(self.run_mean_s))
    }

    fn best_lag_corr(&self) -> (f64, usize) {
        let n = f64::from(self.n_corr);
        let mut best = (f64::NEG_INFINITY, 0usize);
        for k in 0..4 {
            let sx = f64::from(self.corr_sx[k]);
            let r = corr_from_sums(
                n,
                sx,
                f64::from(self.corr_sy),
                sx, // x is 0/1, so Σx² = Σx
                f64::from(self.corr_syy),
                f64::from(self.corr_sxy[k]),
            );
            if r > best.0 {
                best = (r, k);
            }
        }
        if best.0.is_finite() { best } else { (0.0, 0) }
    }

    fn low_band_cv(&self) -> Option<f64> {
        if self.lb_runs < 3 || self.lb_run_mean <= 0.0 {
            return None;
        }
        Some(welford_std(self.lb_run_m2, self.lb_runs) / f64::from(self.lb_run_mean))
    }

    /// Correlation of rear V and rpm over the window (0 when degenerate).
    fn rear_rpm_corr(&self) -> f64 {
        let v = f64::from(self.rear_m2) * f64::from(self.rpm_m2);
        if v <= 1e-12 {
            return 0.0;
        }
        let r = f64::from(self.rear_rpm_c) / v.sqrt();
        if r.is_finite() {
            r.clamp(-1.0, 1.0)
        } else {
            0.0
        }
    }

    fn evaluate_window(&mut self, th: &TwcThresholds, out: &mut Vec<TwcFinding>) {
        let end = self.last_t_ms;
        let n = f64::from(self.n_win);
        let rear_std = welford_std(self.rear_m2, self.n_win);
        let rear_mean = f64::from(self.rear_mean);
        let lam_std = welford_std(self.lam_m2, self.n_lam);
        let run_cv = self.run_cv();
        let (corr, lag) = self.best_lag_corr();
        let sr = f64::from(self.rear_cross) / f64::from(self.lam_cross.max(1));

        // ---- rear_o2_flatline (§3.3 item 1) ----
        let cuts_unanswered =
            self.win_cuts_answered == 0 && u32::from(self.win_cuts) >= th.flat_min_unanswered_cuts;
        if rear_std < th.flat_std_max_v
            && rear_mean >= th.flat_mean_min_v
            && rear_mean <= th.flat_mean_max_v
            && lam_std >= th.flat_lambda_std_min
            && cuts_unanswered
            && self.rearmed(TwcRule::RearO2Flatline)
        {
            let f = TwcFinding {
                rule: TwcRule::RearO2Flatline,
                window_start_ms: self.win_start_ms,
                window_end_ms: end,
                evidence: vec![
                    ("rear_o2_std_v", rear_std),
                    ("rear_o2_mean_v", rear_mean),
                    ("upstream_lambda_std", lam_std),
                    ("n_cut_events", f64::from(self.win_cuts)),
                    ("n_cut_responses", f64::from(self.win_cuts_answered)),
                    ("max_cut_drop_v", f64::from(self.win_max_cut_drop)),
                    ("n_samples", n),
                ],
                strength: clamp01(1.0 - rear_std / th.flat_std_max_v.max(1e-9)),
                note: None,
            };
            self.emit(th, f, out);
        }

        // ---- rear_o2_flatline, long stretch without fuel cuts (§3.3 item 1) ----
        let flat_nocut = th.flat_nocut_min_s > 0.0
            && self.win_cuts == 0
            && rear_std < th.flat_nocut_std_max_v
            && rear_mean >= th.flat_mean_min_v
            && rear_mean <= th.flat_mean_max_v
            && lam_std >= th.flat_lambda_std_min;
        if flat_nocut {
            if self.flat_nocut_start_ms == i64::MIN {
                self.flat_nocut_start_ms = self.win_start_ms;
            }
            let span_s = end.saturating_sub(self.flat_nocut_start_ms) as f64 / 1000.0 + 1.0;
            if span_s >= th.flat_nocut_min_s - 0.5 && self.rearmed(TwcRule::RearO2Flatline) {
                let f = TwcFinding {
                    rule: TwcRule::RearO2Flatline,
                    window_start_ms: self.flat_nocut_start_ms,
                    window_end_ms: end,
                    evidence: vec![
                        ("rear_o2_std_v", rear_std),
                        ("rear_o2_mean_v", rear_mean),
                        ("upstream_lambda_std", lam_std),
                        ("n_cut_events", 0.0),
                        ("flat_span_s", span_s),
                        ("n_samples", n),
                    ],
                    strength: clamp01(1.0 - rear_std / th.flat_nocut_std_max_v.max(1e-9)),
                    note: None,
                };
                self.emit(th, f, out);
                self.flat_nocut_start_ms = i64::MIN;
            }
        } else {
            self.flat_nocut_start_ms = i64::MIN;
        }

        // ---- rear_o2_low_band (§3.2 (b), §3.3 item 2) ----
        let lb_low_frac = f64::from(self.lb_n_low) / n.max(1.0);
        let cl_frac = f64::from(self.n_lam) / n.max(1.0);
        let rpm_corr = self.rear_rpm_corr();
        if let Some(cv) = self.low_band_cv()
            && cv <= th.low_band_run_cv_max
            && u32::from(self.lb_runs) >= th.low_band_min_runs
            && lb_low_frac >= th.low_band_frac_min
            && cl_frac >= th.low_band_closed_loop_frac_min
            && rear_std >= th.low_band_std_min_v
            && rpm_corr.abs() <= th.low_band_max_abs_corr
            && corr <= th.low_band_max_abs_corr
            && self.rearmed(TwcRule::RearO2LowBand)
        {
            let f = TwcFinding {
                rule: TwcRule::RearO2LowBand,
                window_start_ms: self.win_start_ms,
                window_end_ms: end,
                evidence: vec![
                    ("rear_o2_median_v", f64::from(self.lb_med)),
                    ("rear_o2_mean_v", rear_mean),
                    ("rear_o2_max_v", f64::from(self.lb_max)),
                    ("rear_o2_std_v", rear_std),
                    ("low_frac", lb_low_frac),
                    ("period_s", 2.0 * f64::from(self.lb_run_mean)),
                    ("half_period_cv", cv),
                    ("n_half_periods", f64::from(self.lb_runs)),
                    ("rpm_corr", rpm_corr),
                    ("lag_corr_max", corr),
                    ("closed_loop_frac", cl_frac),
                    ("n_samples", n),
                ],
                strength: clamp01(1.0 - cv / th.low_band_run_cv_max.max(1e-9))
                    * clamp01(lb_low_frac),
                note: None,
            };
            self.emit(th, f, out);
        }

        // ---- rear_o2_periodic (§3.3 item 2) ----
        let low_frac = f64::from(self.n_low) / n.max(1.0);
        let high_frac = f64::from(self.n_high) / n.max(1.0);
        let mid_frac = f64::from(self.n_mid) / n.max(1.0);
        let explained = f64::from(self.flips_low_explained) / f64::from(self.flips_low.max(1));
        if let Some(cv) = run_cv
            && cv <= th.per_run_cv_max
            && u32::from(self.n_runs) >= th.per_min_runs
            && mid_frac <= th.per_mid_frac_max
            && low_frac >= th.per_level_frac_min
            && high_frac >= th.per_level_frac_min
            && explained <= th.per_cut_explained_max
            && self.rearmed(TwcRule::RearO2Periodic)
        {
            let f = TwcFinding {
                rule: TwcRule::RearO2Periodic,
                window_start_ms: self.win_start_ms,
                window_end_ms: end,
                evidence: vec![
                    ("n_runs", f64::from(self.n_runs)),
                    ("run_mean_s", f64::from(self.run_mean_s)),
                    ("run_cv", cv),
                    ("low_frac", low_frac),
                    ("high_frac", high_frac),
                    ("mid_frac", mid_frac),
                    ("cut_explained_frac", explained),
                    ("lag_corr_max", corr),
                    ("n_samples", n),
                ],
                strength: clamp01(1.0 - cv / th.per_run_cv_max.max(1e-9)),
                note: None,
            };
            self.emit(th, f, out);
        }

        // ---- rear_o2_mirrors_front (§3.3 item 3) ----
        let irregular = run_cv.is_some_and(|cv| cv >= th.mirror_run_cv_min);
        if u32::from(self.lam_cross) >= th.mirror_min_lambda_crossings
            && sr >= th.mirror_sr_min
            && corr >= th.mirror_corr_min
            && irregular
            && self.rearmed(TwcRule::RearO2MirrorsFront)
        {
            let f = TwcFinding {
                rule: TwcRule::RearO2MirrorsFront,
                window_start_ms: self.win_start_ms,
                window_end_ms: end,
                evidence: vec![
                    ("switch_ratio", sr),
                    ("rear_crossings", f64::from(self.rear_cross)),
                    ("lambda_crossings", f64::from(self.lam_cross)),
                    ("lag_corr_max", corr),
                    ("lag_corr_best_lag_s", lag as f64),
                    ("run_cv", run_cv.unwrap_or(0.0)),
                    ("n_corr_samples", f64::from(self.n_corr)),
                    ("n_samples", n),
                ],
                strength: clamp01(
                    (sr / th.mirror_sr_min.max(1e-9) - 1.0).max(0.0) * 0.5 + corr.max(0.0) * 0.5,
                ),
                note: None,
            };
            self.emit(th, f, out);
        }
    }

    /// Current `dfco_no_lean` tallies (failed cuts, passed cuts), halved every
    /// [`TwcThresholds::dfco_episode_events`] judged cuts and reset after a finding. Diagnostics,
    /// obd-remote-monitoring.md §3.3 item 4.
    pub fn dfco_tallies(&self) -> (f64, f64) {
        (f64::from(self.dfco_fail), f64::from(self.dfco_pass))
    }

    /// Window statistics so far (diagnostics / calibration): rear std V, rear mean V, λ std,
    /// run CV, switch ratio, best lagged correlation, samples. obd-remote-monitoring.md §3.3.
    pub fn window_stats(&self) -> [(&'static str, f64); 12] {
        let (corr, lag) = self.best_lag_corr();
        let n = f64::from(self.n_win).max(1.0);
        [
            ("n_samples", f64::from(self.n_win)),
            ("rear_o2_std_v", welford_std(self.rear_m2, self.n_win)),
            ("rear_o2_mean_v", f64::from(self.rear_mean)),
            ("upstream_lambda_std", welford_std(self.lam_m2, self.n_lam)),
            ("run_cv", self.run_cv().unwrap_or(-1.0)),
            ("n_runs", f64::from(self.n_runs)),
            (
                "switch_ratio",
                f64::from(self.rear_cross) / f64::from(self.lam_cross.max(1)),
            ),
            ("lambda_crossings", f64::from(self.lam_cross)),
            ("lag_corr_max", corr),
            ("lag_corr_best_lag_s", lag as f64),
            ("mid_frac", f64::from(self.n_mid) / n),
            (
                "cut_explained_frac",
                f64::from(self.flips_low_explained) / f64::from(self.flips_low.max(1)),
            ),
        ]
    }
}

/// A hint for the `lambda_implausible` evidence: which known mistake the ratio median(upstream)
/// / median(commanded) looks like (obd-remote-monitoring.md §1.7, §3.3 item 8). Presentation
/// only; the verdict itself uses the limit-set thresholds.
fn lambda_hint(ratio: f64, level_bad: bool) -> &'static str {
    let near = |x: f64, target: f64, tol: f64| (x / target - 1.0).abs() <= tol;
    if !level_bad {
        "φ = 1/λ sent instead of λ? (reads rich in fuel cuts)"
    } else if near(ratio, 1.0 / 16.0, 0.06) || near(ratio, 16.0, 0.06) {
        "upstream λ scale (PID 0x4F)?"
    } else if near(ratio, 0.5, 0.1) || near(ratio, 2.0, 0.1) {
        "upstream λ scale (PID 0x4F, or 1/16384 vs 1/32768 per bit, §1.7)?"
    } else if (12.0..=20.0).contains(&ratio) {
        "air-fuel ratio (≈14.7 petrol, ≈17.2 natural gas) sent instead of λ?"
    } else {
        "upstream λ field: wrong scale, unit or column?"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Simple deterministic pseudo-noise in [-1, 1) (no RNG dependency needed here).
    fn noise(i: u64, salt: u64) -> f64 {
        let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// A warm, closed-loop drive: λ dithers around 0.99, a fuel cut (λ 1.23) of 5 s every 60 s.
    /// `rear(i, in_cut, since_cut_s)` gives the rear voltage.
    fn drive(n: u64, t0: i64, rear: impl Fn(u64, bool, u64) -> Option<f64>) -> Vec<ObdPoint> {
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

    fn healthy_rear(i: u64, in_cut: bool, since_cut: u64) -> Option<f64> {
        let v = if in_cut && i % 60 > 30 {
            0.02
        } else if since_cut < 6 {
            0.05 + 0.1 * since_cut as f64
        } else {
            0.76 + 0.03 * noise(i, 3)
        };
        Some(v)
    }

    fn run(points: &[ObdPoint]) -> Vec<TwcFinding> {
        let th = TwcThresholds::default();
        let mut st = TwcState::default();
        let mut out = Vec::new();
        for p in points {
            st.update(p, &th, &mut out);
        }
        out
    }

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
    fn thresholds_deserialize_with_defaults() {
        use serde::de::value::{Error, MapDeserializer};
        let empty: Vec<(&str, f64)> = Vec::new();
        let th = TwcThresholds::deserialize(MapDeserializer::<_, Error>::new(empty.into_iter()))
            .expect("defaults");
        assert_eq!(th.flat_std_max_v, TwcThresholds::default().flat_std_max_v);
        let one = vec![("flat_std_max_v", 0.02f64)];
        let th = TwcThresholds::deserialize(MapDeserializer::<_, Error>::new(one.into_iter()))
            .expect("override");
        assert_eq!(th.flat_std_max_v, 0.02);
        assert_eq!(th.window_samples, 300);
    }

    #[test]
    fn healthy_synthetic_drive_is_silent() {
        let f = run(&drive(3600, 0, healthy_rear));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn flat_rear_flags_once_per_rearm_period() {
        // 0.6 V ± 4 mV for 60 min: 12 windows, but the re-arm time (900 s) limits findings.
        let pts = drive(3600, 0, |i, _, _| Some(0.6 + 0.004 * noise(i, 9)));
        let f = run(&pts);
        assert!(!f.is_empty());
        assert!(f.iter().all(|x| x.rule == TwcRule::RearO2Flatline), "{f:?}");
        assert!(f.len() <= 4, "{} findings: flooding", f.len());
        for w in f.windows(2) {
            assert!(w[1].window_end_ms - w[0].window_end_ms >= 900_000);
        }
        assert!(f.iter().all(|x| (0.0..=1.0).contains(&x.strength)));
    }

    #[test]
    fn cold_start_is_excluded() {
        // Flat rear only during the first 290 s (cold), healthy afterwards: no finding.
        let pts = drive(1800, 0, |i, c, s| {
            if i < 290 {
                Some(0.6)
            } else {
                healthy_rear(i, c, s)
            }
        });
        assert!(run(&pts).is_empty());
    }

    #[test]
    fn gap_starts_new_session_with_new_warm_up() {
        // 250 s of flat rear, a 60-s gap, 250 s more: the warm-up timer restarts, never warm.
        let mut pts = drive(250, 0, |i, _, _| Some(0.6 + 0.004 * noise(i, 5)));
        pts.extend(drive(250, 310_000, |i, _, _| {
            Some(0.6 + 0.004 * noise(i, 6))
        }));
        assert!(run(&pts).is_empty());
    }

    #[test]
    fn stale_and_out_of_order_samples_are_ignored() {
        let pts = drive(1800, 0, healthy_rear);
        let mut doubled = Vec::new();
        for p in &pts {
            doubled.push(*p);
            let mut q = *p;
            q.t_ms -= 500; // out of order
            doubled.push(q);
            let mut r = *p;
            r.t_ms += 400; // stale re-send of the same values
            doubled.push(r);
        }
        assert!(run(&doubled).is_empty());
    }

    #[test]
    fn missing_rear_flags() {
        let pts = drive(1800, 0, |i, c, s| {
            if (300..900).contains(&i) {
                None
            } else {
                healthy_rear(i, c, s)
            }
        });
        let f = run(&pts);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule, TwcRule::RearO2Missing);
        assert_eq!(f[0].window_start_ms, 300_000);
    }

    #[test]
    fn rear_stuck_rich_in_cuts_flags_dfco() {
        // Healthy-looking rear that stays ≥ 0.7 V in every cut.
        let pts = drive(1800, 0, |i, c, s| {
            if c || s < 6 {
                Some(0.7 + 0.05 * noise(i, 4).abs())
            } else {
                healthy_rear(i, c, s)
            }
        });
        let f = run(&pts);
        assert!(!f.is_empty());
        assert!(f.iter().all(|x| x.rule == TwcRule::DfcoNoLean), "{f:?}");
    }

    fn ev(f: &TwcFinding, k: &str) -> f64 {
        f.evidence
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {k} in {f:?}"))
    }

    fn with_lambda(pts: &mut [ObdPoint], f: impl Fn(f64) -> f64) {
        for p in pts {
            p.upstream_lambda = p.upstream_lambda.map(&f);
        }
    }

    /// §3.3 item 8: λ divided by 16 (PID 0x4F scale ignored) gives one `lambda_implausible`
    /// per re-arm period with the median ratio ≈ 1/16 and the scale hint, and no TWC rule.
    #[test]
    fn lambda_divided_by_16_is_implausible_not_silent() {
        let mut pts = drive(1800, 0, |i, _, _| Some(0.6 + 0.004 * noise(i, 9)));
        with_lambda(&mut pts, |l| l / 16.0);
        let f = run(&pts);
        assert!(!f.is_empty());
        assert!(
            f.iter().all(|x| x.rule == TwcRule::LambdaImplausible),
            "{f:?}"
        );
        let x = &f[0];
        assert_eq!(ev(x, "n_samples"), 600.0);
        assert!(
            (ev(x, "upstream_lambda_median") - 0.99 / 16.0).abs() < 0.002,
            "{x:?}"
        );
        assert!((ev(x, "commanded_lambda_median") - 1.0).abs() < 1e-6);
        assert!((ev(x, "ratio") - 0.99 / 16.0).abs() < 0.002);
        assert_eq!(x.note, Some("upstream λ scale (PID 0x4F)?"));
        // The same drive with a true λ: the flat rear is found (flatline), no λ verdict.
        let f = run(&drive(1800, 0, |i, _, _| Some(0.6 + 0.004 * noise(i, 9))));
        assert!(
            f.iter().all(|x| x.rule == TwcRule::RearO2Flatline) && !f.is_empty(),
            "{f:?}"
        );
    }

    /// An air-fuel ratio (λ × 14.7) sent as λ: implausible with the AFR hint; the saturated
    /// "λ > 1.2" does not turn the whole drive into fuel cuts (no dfco_no_lean).
    #[test]
    fn afr_sent_as_lambda_is_implausible() {
        let mut pts = drive(1800, 0, healthy_rear);
        with_lambda(&mut pts, |l| l * 14.7);
        let f = run(&pts);
        assert!(!f.is_empty());
        assert!(
            f.iter().all(|x| x.rule == TwcRule::LambdaImplausible),
            "{f:?}"
        );
        assert!((ev(&f[0], "ratio") - 0.99 * 14.7).abs() < 0.3, "{f:?}");
        assert!(f[0].note.unwrap().starts_with("air-fuel ratio"));
    }

    /// φ = 1/λ sent as λ: the closed-loop level is ≈ 1 (plausible), but it reads rich in every
    /// fuel cut (0.81 instead of ≥ 1.2): implausible with the φ hint.
    #[test]
    fn phi_sent_as_lambda_is_implausible() {
        let mut pts = drive(1800, 0, healthy_rear);
        with_lambda(&mut pts, |l| 1.0 / l);
        let f = run(&pts);
        assert!(!f.is_empty());
        assert!(
            f.iter().all(|x| x.rule == TwcRule::LambdaImplausible),
            "{f:?}"
        );
        let x = &f[0];
        assert!((ev(x, "ratio") - 1.0 / 0.99).abs() < 0.02, "{x:?}");
        assert!(
            ev(x, "cut_samples") >= 10.0 && ev(x, "cut_rich_frac") >= 0.99,
            "{x:?}"
        );
        assert!(x.note.unwrap().starts_with("φ = 1/λ"));
    }

    /// A λ scaled 1/16384 instead of 1/32768 per bit (§1.7 Yuchai) reads ×2: implausible.
    #[test]
    fn lambda_times_two_is_implausible() {
        let mut pts = drive(1800, 0, healthy_rear);
        with_lambda(&mut pts, |l| l * 2.0);
        let f = run(&pts);
        assert!(
            f.iter().any(|x| x.rule == TwcRule::LambdaImplausible),
            "{f:?}"
        );
        assert!(f[0].note.unwrap().contains("1/16384"));
    }

    /// A short log (< lambda_check_samples warm samples) gets its verdict at the end of input.
    #[test]
    fn lambda_verdict_at_end_of_input() {
        let mut pts = drive(700, 0, healthy_rear);
        with_lambda(&mut pts, |l| l / 16.0);
        let th = TwcThresholds::default();
        let mut st = TwcState::default();
        let mut out = Vec::new();
        for p in &pts {
            st.update(p, &th, &mut out);
        }
        assert!(out.is_empty());
        st.finish(&th, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rule, TwcRule::LambdaImplausible);
        assert!(st.lambda_implausible());
        // A healthy λ gives no verdict at the end either.
        let mut st = TwcState::default();
        let mut out = Vec::new();
        for p in &drive(700, 0, healthy_rear) {
            st.update(p, &th, &mut out);
        }
        st.finish(&th, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    /// A low-voltage simulator: rear = level + amp·sin(2πt/period), warm closed loop.
    fn low_sim(level: f64, amp: f64, period_s: f64) -> impl Fn(u64, bool, u64) -> Option<f64> {
        move |i, _, _| {
            let t = i as f64;
            Some(level + amp * (2.0 * std::f64::consts::PI * t / period_s).sin())
        }
    }

    /// §3.2 (b): the field case's 0.22 V ± 0.06 V, 11 s, and two other simulators (0.15 V ±
    /// 0.04 V at 7 s, 0.10 V ± 0.03 V at 17 s) give rear_o2_low_band only, with the period.
    #[test]
    fn low_band_simulators_flag() {
        for (level, amp, period) in [(0.22, 0.06, 11.0), (0.15, 0.04, 7.0), (0.10, 0.03, 17.0)] {
            let f = run(&drive(1800, 0, low_sim(level, amp, period)));
            assert!(!f.is_empty(), "{level} {period}");
            assert!(f.iter().all(|x| x.rule == TwcRule::RearO2LowBand), "{f:?}");
            let x = &f[0];
            assert!((ev(x, "period_s") - period).abs() < 0.6, "{x:?}");
            assert!((ev(x, "rear_o2_median_v") - level).abs() < 0.02, "{x:?}");
            assert!(
                ev(x, "rear_o2_max_v") < 0.3 && ev(x, "low_frac") == 1.0,
                "{x:?}"
            );
            assert!(ev(x, "half_period_cv") < 0.35);
        }
    }

    /// A low rear that wanders irregularly (noise, no spectral line) and a low sine that reaches
    /// above 0.3 V half the time are not the low-band simulator.
    #[test]
    fn low_band_needs_low_and_regular() {
        let f = run(&drive(1800, 0, |i, _, _| Some(0.2 + 0.05 * noise(i, 21))));
        assert!(f.iter().all(|x| x.rule != TwcRule::RearO2LowBand), "{f:?}");
        let f = run(&drive(1800, 0, low_sim(0.30, 0.06, 11.0)));
        assert!(f.iter().all(|x| x.rule != TwcRule::RearO2LowBand), "{f:?}");
    }

    /// A drive without fuel cuts: λ dithers, cruise at 80 km/h.
    fn drive_nocut(n: u64, rear: impl Fn(u64) -> Option<f64>) -> Vec<ObdPoint> {
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

    /// §3.3 item 1 without a lean test: a rear at 0.65 V ± 2 mV for 10 min of cut-free cruise
    /// is a flatline (v2), with 0 cut events; a quiet healthy rear (± 30 mV) is not.
    #[test]
    fn flat_rear_without_fuel_cuts_flags_after_long_window() {
        let f = run(&drive_nocut(1800, |i| Some(0.65 + 0.002 * noise(i, 33))));
        assert!(!f.is_empty());
        assert!(f.iter().all(|x| x.rule == TwcRule::RearO2Flatline), "{f:?}");
        assert_eq!(ev(&f[0], "n_cut_events"), 0.0);
        assert!(ev(&f[0], "flat_span_s") >= 600.0);
        // first finding after 300 s warm-up + 600 s of flat windows
        assert!(f[0].window_end_ms >= 899_000, "{:?}", f[0]);
        let f = run(&drive_nocut(1800, |i| Some(0.72 + 0.03 * noise(i, 34))));
        assert!(f.is_empty(), "{f:?}");
        // 9 min only: not yet
        let f = run(&drive_nocut(840, |i| Some(0.65 + 0.002 * noise(i, 33))));
        assert!(f.is_empty(), "{f:?}");
    }

    /// A random field value: missing, NaN/inf, extreme, or plausible.
    fn wild(rng: &mut ChaCha8Rng) -> Option<f64> {
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

    fn wild_point(rng: &mut ChaCha8Rng, t_ms: i64) -> ObdPoint {
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
