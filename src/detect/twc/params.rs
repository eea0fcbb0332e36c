//! Parameters of the TWC / rear-O2 detectors: limit-set section `[twc]`, every field a
//! documented `[D]` heuristic of `obd-remote-monitoring.md` §3.3 with its default.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::super::*;
    use serde::Deserialize;

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
}
