//! RSD pass validity and verdict (`remote-sensing.md §1.4`, §1.5, §4.5): one status per
//! condition, an invalid reason, then pass / fail / invalid against the limit set's
//! per-fuel-class limits (§1.3 diesel, §3 petrol and gas).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// A closed window `[min, max]`; either end may be open. `required`: a missing value makes
/// the pass invalid (otherwise it is recorded as `not_measured`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Window {
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// Validity windows of one fuel class (`remote-sensing.md §1.4`, §4.5). A window left out is
/// `not_checked`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ValidityWindows {
    pub speed_kmh: Option<Window>,
    pub accel_mps2: Option<Window>,
    pub vsp_kw_t: Option<Window>,
    pub wind_mps: Option<Window>,
    pub ambient_temp_c: Option<Window>,
    /// Path-integrated plume CO2 (`co2_plume_pct_m`), §1.4 `co2jgstatus`.
    pub co2_plume_pct_m: Option<Window>,
}

/// Emission limits of one fuel class (`remote-sensing.md §1.3`, §3). Absent = not judged.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PollutantLimits {
    pub opacity_pct: Option<f64>,
    pub ringelmann: Option<f64>,
    pub no_ppm: Option<f64>,
    pub co_pct: Option<f64>,
    pub hc_ppm: Option<f64>,
}

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

/// Short names of the six conditions in the `invalid_code` values, same order as
/// [`CONDITIONS`] (the prefixes of `schema::STATUS_COLUMNS`).
pub const CODE_NAMES: [&str; 6] = ["speed", "accel", "vsp", "wind", "temp", "co2"];

/// Stable `invalid_code` values (the `rsd_passes` column; `remote-sensing.md §1.4`: one
/// status per condition plus an invalid-reason code, the platforms' `wxyy`). Every code a
/// pass can carry, for documentation and tests: `<condition>_missing` (required, absent),
/// `<condition>_too_low` / `<condition>_too_high` (outside its window, below the minimum or
/// above the maximum), with `<condition>` one of [`CODE_NAMES`]; and the codes that are not
/// about one condition, [`code::FUEL_UNKNOWN`], [`code::ELECTRIC`], [`code::NO_LIMITS`],
/// [`code::NOTHING_MEASURED`].
pub mod code {
    /// No fuel on the pass and none in the registry: no window or limit applies.
    pub const FUEL_UNKNOWN: &str = "fuel_unknown";
    /// Electric vehicle: no tailpipe to judge.
    pub const ELECTRIC: &str = "electric_vehicle";
    /// The pass is valid but the limit set has no limits for its fuel class.
    pub const NO_LIMITS: &str = "no_limits_for_fuel_class";
    /// The pass is valid but none of the limited pollutants was measured.
    pub const NOTHING_MEASURED: &str = "no_limited_pollutant_measured";

    /// Every condition code, `<condition>_{missing,too_low,too_high}` per
    /// [`super::CODE_NAMES`], in that order.
    pub const CONDITION: [[&str; 3]; 6] = [
        ["speed_missing", "speed_too_low", "speed_too_high"],
        ["accel_missing", "accel_too_low", "accel_too_high"],
        ["vsp_missing", "vsp_too_low", "vsp_too_high"],
        ["wind_missing", "wind_too_low", "wind_too_high"],
        ["temp_missing", "temp_too_low", "temp_too_high"],
        ["co2_missing", "co2_too_low", "co2_too_high"],
    ];
}

/// Why a pass is not judged: a stable code (groupable) and the human detail.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// The first reason's code, in the order: fuel (unknown / electric), then the conditions
    /// in [`CONDITIONS`] order (see [`code`]). The other failing conditions are in `detail`
    /// and in their `*_status` columns.
    pub code: &'static str,
    /// Every reason, `; `-joined, e.g. `speed_kmh 3.100 outside [5, ∞]; wind_mps missing`.
    pub detail: String,
}

/// Validity of one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Validity {
    pub statuses: [Status; 6],
    pub valid: bool,
    /// Code and detail of the reasons; `None` when valid.
    pub invalid: Option<Invalid>,
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
/// `pre_reason` (its code, its detail).
pub fn validity(
    windows: Option<&ValidityWindows>,
    values: [Option<f64>; 6],
    pre_reason: Option<(&'static str, &str)>,
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
    let mut first: Option<&'static str> = None;
    if let Some((c, r)) = pre_reason {
        reason.push_str(r);
        first = Some(c);
    }
    if let Some(ws) = ws {
        for i in 0..6 {
            let w = ws[i].as_ref();
            statuses[i] = check(w, values[i]);
            let sep = if reason.is_empty() { "" } else { "; " };
            match (statuses[i], w, values[i]) {
                (Status::Missing, _, _) => {
                    let _ = write!(reason, "{sep}{} missing", CONDITIONS[i]);
                    first.get_or_insert(code::CONDITION[i][0]);
                }
                (Status::OutOfWindow, Some(w), Some(x)) => {
                    let low = w.min.is_some_and(|m| x < m);
                    first.get_or_insert(code::CONDITION[i][if low { 1 } else { 2 }]);
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
        invalid: (!valid).then(|| Invalid {
            code: first.expect("a reason has a code"),
            detail: reason,
        }),
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
    /// For a valid pass judged `invalid`: [`code::NO_LIMITS`] or [`code::NOTHING_MEASURED`].
    /// `None` otherwise (an invalid pass has its code in [`Validity::invalid`]).
    pub unjudged: Option<&'static str>,
}

/// Judges a valid pass: fail when any measured pollutant is strictly above its limit.
/// An invalid pass is `invalid` whatever it measured. A valid pass with no limited pollutant
/// measured is `invalid` too (nothing to judge).
pub fn verdict(valid: bool, limits: Option<&PollutantLimits>, m: &Measured) -> Verdict {
    let Some(l) = limits.filter(|_| valid) else {
        return Verdict {
            verdict: "invalid",
            exceeded: vec![],
            unjudged: valid.then_some(code::NO_LIMITS),
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
    Verdict {
        verdict,
        exceeded,
        unjudged: (!judged).then_some(code::NOTHING_MEASURED),
    }
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
            v.invalid,
            Some(Invalid {
                code: "accel_too_low",
                detail: "accel_mps2 -0.200 outside [0, ∞]".into()
            })
        );
        let v = validity(ci, [None, Some(0.5), None, Some(1.0), None, None], None);
        assert_eq!(
            v.invalid,
            Some(Invalid {
                code: "speed_missing",
                detail: "speed_kmh missing".into()
            })
        );
        let v = validity(
            ci,
            [Some(40.0), Some(0.5), None, Some(1.0), Some(10.0), None],
            None,
        );
        assert!(v.valid && v.invalid.is_none());
        // Petrol at 130 km/h with VSP 20 kW/t: both out of their windows ([5, 120], [0, 14]);
        // the code is the first condition's, the detail names both, in condition order.
        let si = s.windows_for(FuelClass::SparkIgnition);
        let v = validity(
            si,
            [Some(130.0), Some(0.1), Some(20.0), None, None, None],
            None,
        );
        assert_eq!(
            v.invalid,
            Some(Invalid {
                code: "speed_too_high",
                detail: "speed_kmh 130.000 outside [5, 120]; vsp_kw_t 20.000 outside [0, 14]"
                    .into()
            })
        );
        // A fuel reason comes first and its code wins.
        let v = validity(
            None,
            [Some(3.0); 6],
            Some((code::FUEL_UNKNOWN, "fuel unknown")),
        );
        assert_eq!(v.invalid.map(|i| i.code), Some("fuel_unknown"));

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
                exceeded: vec!["no"],
                unjudged: None,
            }
        );
        let m = Measured {
            no_ppm: Some(1500.0),
            ..Default::default()
        };
        assert_eq!(verdict(true, lim, &m).verdict, "pass");
        assert_eq!(verdict(false, lim, &m).verdict, "invalid");
        assert_eq!(verdict(false, lim, &m).unjudged, None);
        let v = verdict(true, lim, &Measured::default());
        assert_eq!(
            (v.verdict, v.unjudged),
            ("invalid", Some(code::NOTHING_MEASURED))
        );
        assert_eq!(verdict(true, None, &m).unjudged, Some(code::NO_LIMITS));
    }
}
