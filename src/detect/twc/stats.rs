//! Windowed statistics: running sums (Welford), correlations, streaming medians and run
//! lengths over the tumbling window of warm samples and the low-band tracker, plus the
//! diagnostics read from them. No samples are stored.

use super::*;

/// Sample standard deviation from a Welford M2 and count.
pub(super) fn welford_std(m2: f32, n: u16) -> f64 {
    if n < 2 {
        return 0.0;
    }
    (f64::from(m2.max(0.0)) / f64::from(n - 1)).sqrt()
}

/// Pearson correlation from sums; 0 when degenerate.
pub(super) fn corr_from_sums(n: f64, sx: f64, sy: f64, sxx: f64, syy: f64, sxy: f64) -> f64 {
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

/// One step of a streaming median estimate (stochastic approximation): `m` moves by `step`
/// toward `x` (not at all when equal or not finite).
pub(super) fn step_toward(m: f32, x: f32, step: f32) -> f32 {
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

impl TwcState {
    // ------------------------------------------------------------------ windows
    pub(super) fn accumulate_window(
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
    pub(super) fn accumulate_low_band(&mut self, t: i64, rear: f64, th: &TwcThresholds) {
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

    pub(super) fn run_cv(&self) -> Option<f64> {
        if self.n_runs < 3 || self.run_mean_s <= 0.0 {
            return None;
        }
        let sd = welford_std(self.run_m2, self.n_runs);
        Some(sd / f64::from(self.run_mean_s))
    }

    pub(super) fn best_lag_corr(&self) -> (f64, usize) {
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

    pub(super) fn low_band_cv(&self) -> Option<f64> {
        if self.lb_runs < 3 || self.lb_run_mean <= 0.0 {
            return None;
        }
        Some(welford_std(self.lb_run_m2, self.lb_runs) / f64::from(self.lb_run_mean))
    }

    /// Correlation of rear V and rpm over the window (0 when degenerate).
    pub(super) fn rear_rpm_corr(&self) -> f64 {
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
