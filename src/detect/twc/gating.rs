//! Gating and warm-up (§3.3 preamble): sanitising each sample, stale re-sends, sessions
//! (a data gap starts a new one), the warm-up timer, and the entry point [`TwcState::update`]
//! that hands warm samples to the fuel-cut tracker, the window statistics and the rules.

use super::*;

/// Finite value within [lo, hi], else None.
pub(super) fn clean(v: Option<f64>, lo: f64, hi: f64) -> Option<f64> {
    match v {
        Some(x) if x.is_finite() && x >= lo && x <= hi => Some(x),
        _ => None,
    }
}

/// 32-bit fingerprint of the fields that change every second in fresh data.
/// Fingerprint of a sample's rpm, upstream λ **as sent** (`lam_sent`: a λ outside the clean
/// range, e.g. sent ×100 or as a raw PID count, still tells samples apart, so the λ
/// plausibility check sees every one), rear voltage and speed.
pub(super) fn fingerprint(c: &Clean, lam_sent: Option<f64>) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in [c.rpm, lam_sent, c.rear, c.speed] {
        let bits = v.map_or(0x7ff8_dead_beef_0001, f64::to_bits);
        h ^= bits;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    (h ^ (h >> 32)) as u32
}

impl TwcState {
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
        let fp = fingerprint(&c, p.upstream_lambda);
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
            .filter(|x| x.is_finite() && *x > 1e-6 && *x < 1e7);
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

    pub(super) fn new_session(&mut self, t: i64) {
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

    pub(super) fn reset_window(&mut self, t: i64) {
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
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

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
}
