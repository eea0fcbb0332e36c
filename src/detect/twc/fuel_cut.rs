//! Fuel cuts (DFCO, §2.1, §3.3 item 4): the cut state machine and the judgement of each cut
//! on its response window (flatline cue, `dfco_no_lean` pass / fail tallies).

use super::*;

impl TwcState {
    // ------------------------------------------------------------------ fuel cuts (§3.3 item 4)
    /// Fuel-cut state machine. A cut is judged once: `dfco_response_s` after its start if it
    /// lasts that long, else `dfco_grace_samples` samples after its end. The judged rear minimum
    /// covers the samples from the cut start up to the judgement (the response window).
    pub(super) fn track_cut(
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
    pub(super) fn finish_cut(&mut self, th: &TwcThresholds, out: &mut Vec<TwcFinding>) {
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
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

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
}
