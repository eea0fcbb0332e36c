//! Versioned limit sets: every threshold, validity window and repeat-offender rule that the
//! RSD and China III rules use comes from here, never from code constants (DESIGN.md "Rules
//! are data"; `remote-sensing.md` §1.3–§1.5, §2, §3, §4.3–§4.5).
//!
//! The default set (`fixtures/limits/cn-observed.toml`, embedded in the binary) holds values
//! observed on deployed Chinese platforms; the statutory tables are unconfirmed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{Fuel, FuelClass};

/// The embedded default limit set.
pub const DEFAULT_LIMITS_TOML: &str = include_str!("../fixtures/limits/cn-observed.toml");

/// Errors loading a limit set.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("cannot read limit set {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("limit set {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("limit set {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Identity of the set, stored in every verdict and detection as `name@version`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LimitSetInfo {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub valid_from: String,
    #[serde(default)]
    pub provenance: String,
}

/// Constants of the carbon-balance reduction (`remote-sensing.md §4.3`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Reduction {
    /// NDIR → total-HC response factor RF (2.0 in §4.3).
    pub hc_response_factor: f64,
    /// Carbon atoms in the HC calibration gas, SF (3.0 for propane, §4.3).
    pub hc_carbon_atoms: f64,
}

/// VSP coefficients, `VSP = v·(accel·a + grade·g + rolling) + aero·v³` with v in m/s,
/// a in m/s², g the road grade as a fraction (`remote-sensing.md §4.4`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct VspCoefficients {
    pub accel_coef: f64,
    pub grade_coef: f64,
    pub rolling_coef: f64,
    pub aero_coef: f64,
}

/// Per-fuel constants.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct FuelConstants {
    /// Fuel mass per mole of carbon, g/mol C (`remote-sensing.md §4.3`).
    pub mf_g_per_mol_c: f64,
}

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

/// Repeat-exceeder rule (`remote-sensing.md §1.5`): ≥ `min_failing_passes` valid failing
/// passes within `window_days`; `same_pollutant` counts per pollutant.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RepeatRule {
    pub min_failing_passes: i64,
    pub window_days: i64,
    pub same_pollutant: bool,
}

/// China III rule parameters (`obd-remote-monitoring.md §5.1–§5.2`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct China3Rule {
    /// Highest emission stage that is banned (3 = China III).
    pub max_emission_standard: u8,
    /// When the registry has no emission stage: registered before this date ⇒ possible
    /// China III (§5.2 [D]); empty string disables the fallback.
    pub infer_registered_before: String,
}

/// One versioned limit set.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LimitSet {
    pub limit_set: LimitSetInfo,
    pub reduction: Reduction,
    pub vsp: VspCoefficients,
    pub fuels: BTreeMap<String, FuelConstants>,
    /// Fallback mass per mole of carbon when the fuel is unknown.
    pub default_mf_g_per_mol_c: f64,
    pub validity: BTreeMap<String, ValidityWindows>,
    pub limits: BTreeMap<String, PollutantLimits>,
    pub repeat: RepeatRule,
    pub china3: China3Rule,
    /// `obd_catalyst_dtc` codes (`obd-remote-monitoring.md §2.2`).
    #[serde(default)]
    pub obd_dtc: crate::detect::obd_dtc::ObdDtcRule,
    /// TWC / rear-O2 detector thresholds (`obd-remote-monitoring.md §3.3`, [D] heuristics).
    #[serde(default)]
    pub twc: crate::detect::twc::TwcThresholds,
    /// Enforcement time zone and the window of plausible instants (DESIGN.md "Time, plates
    /// and keys"); defaults when the table is absent.
    #[serde(default)]
    pub time: TimeConfig,
    /// OBD stream de-duplication and ordering (`[obd_stream]`, DESIGN.md "Time, plates and keys").
    #[serde(default)]
    pub obd_stream: crate::enrich::obd::ObdStreamConfig,
}

/// `[time]`: the enforcement zone (list days, `date` partitions, times shown to people,
/// naive source times without a zone of their own) and the window an absolute instant must
/// fall in (`[earliest, now + max_ahead_s]`; outside it a record is quarantined, field named).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    /// IANA zone name. Default `Asia/Shanghai`.
    #[serde(default = "d_zone")]
    pub zone: String,
    /// Earliest accepted instant: a date (00:00 UTC) or RFC 3339. Default `2000-01-01`.
    #[serde(default = "d_earliest")]
    pub earliest: String,
    /// Accepted lead of an instant over the wall clock, seconds. Default 86400 (one day).
    #[serde(default = "d_max_ahead")]
    pub max_ahead_s: i64,
}

fn d_zone() -> String {
    crate::time::DEFAULT_ZONE.into()
}
fn d_earliest() -> String {
    crate::time::DEFAULT_EARLIEST.into()
}
fn d_max_ahead() -> i64 {
    crate::time::DEFAULT_MAX_AHEAD_S
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            zone: d_zone(),
            earliest: d_earliest(),
            max_ahead_s: d_max_ahead(),
        }
    }
}

/// Key of a fuel class in the `[validity.*]` and `[limits.*]` tables.
pub fn class_key(c: FuelClass) -> &'static str {
    match c {
        FuelClass::CompressionIgnition => "compression_ignition",
        FuelClass::SparkIgnition => "spark_ignition",
        FuelClass::None => "electric",
    }
}

impl LimitSet {
    /// The embedded default set.
    pub fn default_set() -> LimitSet {
        LimitSet::parse(DEFAULT_LIMITS_TOML, "<embedded cn-observed.toml>")
            .expect("embedded limit set is valid")
    }

    /// Loads `path`, or the default set when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<LimitSet, LimitsError> {
        match path {
            None => Ok(LimitSet::default_set()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| LimitsError::Io {
                    path: p.display().to_string(),
                    source,
                })?;
                LimitSet::parse(&text, &p.display().to_string())
            }
        }
    }

    /// Parses and checks a limit set.
    pub fn parse(text: &str, origin: &str) -> Result<LimitSet, LimitsError> {
        let set: LimitSet = toml::from_str(text).map_err(|e| LimitsError::Parse {
            path: origin.to_string(),
            source: Box::new(e),
        })?;
        for (name, f) in &set.fuels {
            Fuel::parse(name).map_err(|m| LimitsError::Invalid {
                path: origin.to_string(),
                message: format!("[fuels.{name}]: {m}"),
            })?;
            if !(f.mf_g_per_mol_c > 0.0) {
                return Err(LimitsError::Invalid {
                    path: origin.to_string(),
                    message: format!("[fuels.{name}].mf_g_per_mol_c must be > 0"),
                });
            }
        }
        if set.repeat.min_failing_passes < 1 || set.repeat.window_days < 1 {
            return Err(LimitsError::Invalid {
                path: origin.to_string(),
                message: "[repeat] min_failing_passes and window_days must be ≥ 1".into(),
            });
        }
        set.time_policy().map_err(|message| LimitsError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(set)
    }

    /// The compiled `[time]` rules. Errors: unknown zone, bad `earliest`, negative lead.
    pub fn time_policy(&self) -> Result<crate::time::TimePolicy, String> {
        crate::time::TimePolicy::new(&self.time.zone, &self.time.earliest, self.time.max_ahead_s)
    }

    /// The compiled `[time]` rules (checked when the set was parsed).
    pub fn time(&self) -> crate::time::TimePolicy {
        self.time_policy().unwrap_or_default()
    }

    /// The enforcement zone (`[time].zone`, default Asia/Shanghai).
    pub fn zone(&self) -> chrono_tz::Tz {
        self.time().zone
    }

    /// `name@version`, the value of every `limit_set` column.
    pub fn id(&self) -> String {
        format!("{}@{}", self.limit_set.name, self.limit_set.version)
    }

    /// Mass per mole of carbon for `fuel` (`remote-sensing.md §4.3`).
    pub fn mf_for(&self, fuel: Option<Fuel>) -> f64 {
        fuel.and_then(|f| self.fuels.get(f.as_str()))
            .map(|c| c.mf_g_per_mol_c)
            .unwrap_or(self.default_mf_g_per_mol_c)
    }

    /// Validity windows for a fuel class (empty when the set has none).
    pub fn windows_for(&self, c: FuelClass) -> Option<&ValidityWindows> {
        self.validity.get(class_key(c))
    }

    /// Limits for a fuel class.
    pub fn limits_for(&self, c: FuelClass) -> Option<&PollutantLimits> {
        self.limits.get(class_key(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_loads_with_observed_values() {
        let s = LimitSet::default_set();
        // remote-sensing.md §1.3: opacity 30 %, Ringelmann 1, NO 1500 ppm (OBSERVED [S13]).
        let ci = s.limits_for(FuelClass::CompressionIgnition).unwrap();
        assert_eq!(ci.opacity_pct, Some(30.0));
        assert_eq!(ci.ringelmann, Some(1.0));
        assert_eq!(ci.no_ppm, Some(1500.0));
        // §3: CO 2.5 %, HC 1200 ppm, NO 1500 ppm (OBSERVED [S13]).
        let si = s.limits_for(FuelClass::SparkIgnition).unwrap();
        assert_eq!(
            (si.co_pct, si.hc_ppm, si.no_ppm),
            (Some(2.5), Some(1200.0), Some(1500.0))
        );
        assert_eq!(s.mf_for(Some(Fuel::NaturalGas)), 16.04);
        assert_eq!(s.mf_for(None), 14.0);
        assert_eq!(s.repeat.min_failing_passes, 2);
    }

    #[test]
    fn time_table_sets_the_zone_and_window() {
        let s = LimitSet::default_set();
        assert_eq!(s.zone(), chrono_tz::Tz::Asia__Shanghai);
        assert_eq!(s.time().earliest_ms, 946_684_800_000);
        let text =
            DEFAULT_LIMITS_TOML.replace("zone = \"Asia/Shanghai\"", "zone = \"Europe/Lisbon\"");
        assert_eq!(
            LimitSet::parse(&text, "t").unwrap().zone(),
            chrono_tz::Tz::Europe__Lisbon
        );
        let bad = DEFAULT_LIMITS_TOML.replace("zone = \"Asia/Shanghai\"", "zone = \"Beijing\"");
        let err = LimitSet::parse(&bad, "t.toml").unwrap_err().to_string();
        assert!(
            err.contains("[time].zone") && err.contains("Beijing"),
            "{err}"
        );
    }

    #[test]
    fn bad_fuel_key_is_rejected() {
        let text = DEFAULT_LIMITS_TOML.replace("[fuels.lpg]", "[fuels.kerosene]");
        let err = LimitSet::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("kerosene"), "{err}");
    }
}
