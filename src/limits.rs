//! Versioned limit sets: every threshold, validity window and repeat-offender rule that the
//! RSD and China III rules use comes from here, never from code constants (DESIGN.md "Rules
//! are data"; `remote-sensing.md` §1.3–§1.5, §2, §3, §4.3–§4.5).
//!
//! The default set (`fixtures/limits/cn-observed.toml`, embedded in the binary) holds values
//! observed on deployed Chinese platforms; the statutory tables are unconfirmed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::detect::RuleParams;
pub use crate::detect::china3::China3Rule;
pub use crate::detect::rsd_limits::{PollutantLimits, ValidityWindows, Window};
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

/// Repeat-exceeder rule (`remote-sensing.md §1.5`): ≥ `min_failing_passes` valid failing
/// passes within `window_days`; `same_pollutant` counts per pollutant.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RepeatRule {
    pub min_failing_passes: i64,
    pub window_days: i64,
    pub same_pollutant: bool,
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
    /// The parameters of every registered rule (`crate::detect::RULES`), each in its own
    /// top-level table (`[china3]`, `[obd_dtc]`, `[twc]`, …), owned by the rule's module.
    #[serde(flatten)]
    pub rules: RuleParams,
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

    /// The rules' sections of the embedded set load into the registry's parameters with the
    /// values written in `cn-observed.toml` (a table left out would take the rule's defaults).
    #[test]
    fn rule_sections_load_into_the_registry() {
        let s = LimitSet::default_set();
        assert_eq!(s.rules.china3.max_emission_standard, 3);
        assert_eq!(s.rules.china3.infer_registered_before, "2013-07-01");
        assert_eq!(s.rules.obd_dtc.codes.len(), 18);
        assert_eq!(s.rules.obd_dtc.codes[0], "P0420");
        assert!(s.rules.obd_dtc.mil_on);
        assert_eq!(s.rules.twc.flat_nocut_std_max_v, 0.006);
        assert_eq!(s.rules.twc.flat_nocut_min_s, 600.0);
        let mut want = crate::detect::obd_dtc::ObdDtcRule::default().codes;
        let mut got = s.rules.obd_dtc.codes.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_fuel_key_is_rejected() {
        let text = DEFAULT_LIMITS_TOML.replace("[fuels.lpg]", "[fuels.kerosene]");
        let err = LimitSet::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("kerosene"), "{err}");
    }
}
