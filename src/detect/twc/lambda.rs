//! Upstream-λ plausibility (`lambda_implausible`, §3.3 item 8, data quality): streaming
//! medians of upstream and commanded λ, the rich-in-cut test, the verdict and its hint.

use super::*;

impl TwcState {
    /// Upstream-λ plausibility (§3.3 item 8): on warm closed-loop samples (engine running, no
    /// fuel cut by fuel flow, commanded λ stoichiometric where reported) a streaming median of
    /// upstream and commanded λ; on fuel-cut samples whether λ reads rich (φ = 1/λ). A verdict
    /// every `lambda_check_samples` samples, see [`Self::lambda_verdict`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_lambda_check(
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
    pub(super) fn lambda_verdict(
        &mut self,
        end_ms: i64,
        th: &TwcThresholds,
        out: &mut Vec<TwcFinding>,
    ) {
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
}

/// A hint for the `lambda_implausible` evidence: which known mistake the ratio median(upstream)
/// / median(commanded) looks like (obd-remote-monitoring.md §1.7, §3.3 item 8). Presentation
/// only; the verdict itself uses the limit-set thresholds.
pub(super) fn lambda_hint(ratio: f64, level_bad: bool) -> &'static str {
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
    use super::super::testutil::*;
    use super::super::*;

    /// The findings of `pts`, asserting there are some and all are `lambda_implausible`.
    fn implausible_only(pts: &[ObdPoint]) -> Vec<TwcFinding> {
        let f = run(pts);
        assert!(!f.is_empty());
        assert!(
            f.iter().all(|x| x.rule == TwcRule::LambdaImplausible),
            "{f:?}"
        );
        f
    }

    /// §3.3 item 8: λ divided by 16 (PID 0x4F scale ignored) gives one `lambda_implausible`
    /// per re-arm period with the median ratio ≈ 1/16 and the scale hint, and no TWC rule.
    #[test]
    fn lambda_divided_by_16_is_implausible_not_silent() {
        let mut pts = drive(1800, 0, |i, _, _| Some(0.6 + 0.004 * noise(i, 9)));
        with_lambda(&mut pts, |l| l / 16.0);
        let f = implausible_only(&pts);
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
        let f = implausible_only(&pts);
        assert!((ev(&f[0], "ratio") - 0.99 * 14.7).abs() < 0.3, "{f:?}");
        assert!(f[0].note.unwrap().starts_with("air-fuel ratio"));
    }

    /// φ = 1/λ sent as λ: the closed-loop level is ≈ 1 (plausible), but it reads rich in every
    /// fuel cut (0.81 instead of ≥ 1.2): implausible with the φ hint.
    #[test]
    fn phi_sent_as_lambda_is_implausible() {
        let mut pts = drive(1800, 0, healthy_rear);
        with_lambda(&mut pts, |l| 1.0 / l);
        let f = implausible_only(&pts);
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
}
