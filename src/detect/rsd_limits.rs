//! RSD pass validity and verdict (`remote-sensing.md §1.4`, §1.5, §4.5): one status per
//! condition, an invalid reason, then pass / fail / invalid against the limit set's
//! per-fuel-class limits (§1.3 diesel, §3 petrol and gas).

use std::fmt::Write as _;

use crate::limits::{PollutantLimits, ValidityWindows, Window};

/// Status of one validity condition (stored as text in the `*_status` columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Inside its window.
    Ok,
    /// Outside its window: the pass is invalid.
    OutOfWindow,
    /// Required but absent: the pass is invalid.
    Missing,
    /// Optional and absent (the instrument does not measure it).
    NotMeasured,
    /// The limit set has no window for it.
    NotChecked,
}

impl Status {
    /// Column text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::OutOfWindow => "out_of_window",
            Status::Missing => "missing",
            Status::NotMeasured => "not_measured",
            Status::NotChecked => "not_checked",
        }
    }
}

/// The six conditions, in the order of `schema::STATUS_COLUMNS`.
pub const CONDITIONS: [&str; 6] = [
    "speed_kmh",
    "accel_mps2",
    "vsp_kw_t",
    "wind_mps",
    "ambient_temp_c",
    "co2_plume_pct_m",
];

/// Validity of one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Validity {
    pub statuses: [Status; 6],
    pub valid: bool,
    /// `;`-joined reasons, e.g. `speed_kmh 3.1 below 5`; `None` when valid.
    pub reason: Option<String>,
}

fn check(w: Option<&Window>, v: Option<f64>) -> Status {
    let Some(w) = w else {
        return Status::NotChecked;
    };
    match v {
        None if w.required => Status::Missing,
        None => Status::NotMeasured,
        Some(x) => {
            if w.min.is_some_and(|m| x < m) || w.max.is_some_and(|m| x > m) {
                Status::OutOfWindow
            } else {
                Status::Ok
            }
        }
    }
}

/// Checks `values` (same order as [`CONDITIONS`]) against `windows`. `windows = None`
/// (fuel class unknown) makes every condition `not_checked` and the pass invalid with
/// `pre_reason`.
pub fn validity(
    windows: Option<&ValidityWindows>,
    values: [Option<f64>; 6],
    pre_reason: Option<&str>,
) -> Validity {
    let ws = windows.map(|w| {
        [
            &w.speed_kmh,
            &w.accel_mps2,
            &w.vsp_kw_t,
            &w.wind_mps,
            &w.ambient_temp_c,
            &w.co2_plume_pct_m,
        ]
    });
    let mut statuses = [Status::NotChecked; 6];
    let mut reason = String::new();
    if let Some(r) = pre_reason {
        reason.push_str(r);
    }
    if let Some(ws) = ws {
        for i in 0..6 {
            let w = ws[i].as_ref();
            statuses[i] = check(w, values[i]);
            let sep = if reason.is_empty() { "" } else { "; " };
            match (statuses[i], w, values[i]) {
                (Status::Missing, _, _) => {
                    let _ = write!(reason, "{sep}{} missing", CONDITIONS[i]);
                }
                (Status::OutOfWindow, Some(w), Some(x)) => {
                    let _ = write!(
                        reason,
                        "{sep}{} {x:.3} outside [{}, {}]",
                        CONDITIONS[i],
                        fmt_end(w.min),
                        fmt_end(w.max)
                    );
                }
                _ => {}
            }
        }
    }
    let valid = reason.is_empty();
    Validity {
        statuses,
        valid,
        reason: (!valid).then_some(reason),
    }
}

fn fmt_end(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "∞".into())
}

/// Measured pollutants of one pass, in the units of the limits.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    pub opacity_pct: Option<f64>,
    pub ringelmann: Option<f64>,
    pub no_ppm: Option<f64>,
    pub co_pct: Option<f64>,
    pub hc_ppm: Option<f64>,
}

/// Verdict of one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// `pass`, `fail` or `invalid` (platform `pdjg` 1 / 0 / 2, `remote-sensing.md §1.5`).
    pub verdict: &'static str,
    /// Pollutants above their limit (`opacity`, `ringelmann`, `no`, `co`, `hc`).
    pub exceeded: Vec<&'static str>,
}

/// Judges a valid pass: fail when any measured pollutant is strictly above its limit.
/// An invalid pass is `invalid` whatever it measured. A valid pass with no limited pollutant
/// measured is `invalid` too (nothing to judge).
pub fn verdict(valid: bool, limits: Option<&PollutantLimits>, m: &Measured) -> Verdict {
    let Some(l) = limits.filter(|_| valid) else {
        return Verdict {
            verdict: "invalid",
            exceeded: vec![],
        };
    };
    let pairs = [
        ("opacity", m.opacity_pct, l.opacity_pct),
        ("ringelmann", m.ringelmann, l.ringelmann),
        ("no", m.no_ppm, l.no_ppm),
        ("co", m.co_pct, l.co_pct),
        ("hc", m.hc_ppm, l.hc_ppm),
    ];
    let mut judged = false;
    let mut exceeded = Vec::new();
    for (name, v, lim) in pairs {
        if let (Some(v), Some(lim)) = (v, lim) {
            judged = true;
            if v > lim {
                exceeded.push(name);
            }
        }
    }
    let verdict = if !judged {
        "invalid"
    } else if exceeded.is_empty() {
        "pass"
    } else {
        "fail"
    };
    Verdict { verdict, exceeded }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LimitSet;
    use crate::model::FuelClass;

    #[test]
    fn windows_and_verdicts() {
        let s = LimitSet::default_set();
        let ci = s.windows_for(FuelClass::CompressionIgnition);
        // Speed in window, accel negative (diesel needs a ≥ 0, §4.5), wind not measured.
        let v = validity(
            ci,
            [Some(40.0), Some(-0.2), Some(3.0), None, None, None],
            None,
        );
        assert_eq!(v.statuses[0], Status::Ok);
        assert_eq!(v.statuses[1], Status::OutOfWindow);
        assert_eq!(v.statuses[2], Status::NotChecked);
        assert_eq!(v.statuses[3], Status::NotMeasured);
        assert!(!v.valid);
        assert_eq!(
            v.reason.as_deref(),
            Some("accel_mps2 -0.200 outside [0, ∞]")
        );
        let v = validity(ci, [None, Some(0.5), None, Some(1.0), None, None], None);
        assert_eq!(v.reason.as_deref(), Some("speed_kmh missing"));
        let v = validity(
            ci,
            [Some(40.0), Some(0.5), None, Some(1.0), Some(10.0), None],
            None,
        );
        assert!(v.valid && v.reason.is_none());

        let lim = s.limits_for(FuelClass::CompressionIgnition);
        let m = Measured {
            no_ppm: Some(1500.1),
            opacity_pct: Some(12.0),
            ..Default::default()
        };
        assert_eq!(
            verdict(true, lim, &m),
            Verdict {
                verdict: "fail",
                exceeded: vec!["no"]
            }
        );
        let m = Measured {
            no_ppm: Some(1500.0),
            ..Default::default()
        };
        assert_eq!(verdict(true, lim, &m).verdict, "pass");
        assert_eq!(verdict(false, lim, &m).verdict, "invalid");
        assert_eq!(verdict(true, lim, &Measured::default()).verdict, "invalid");
    }
}
