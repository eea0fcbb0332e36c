//! China III ban rule (`obd-remote-monitoring.md §5`): a registered diesel medium/heavy
//! truck (GA 802 H1x/H2x/Q1x/Q2x/Z51) with emission stage III or older, seen in any RSD pass
//! or plate read, gives a `china3_diesel_sighting` detection with site and time.
//! Without an emission stage in the registry, a registration date before
//! `[china3].infer_registered_before` (2013-07-01, §5.2 [D]) marks a *possible* China III.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use super::detection_id;
use super::{RecordInput, RecordRule, Rule};
use crate::enrich::registry::VehicleInfo;
use crate::model::{Fuel, is_medium_or_heavy_truck};
use crate::schema::DetectionRow;

/// Rule id stored in `detections.rule_id`.
pub const RULE_ID: &str = "china3_diesel_sighting";
/// Rule version stored in `detections.rule_version`.
pub const RULE_VERSION: &str = "1";

/// Why a vehicle counts as China III.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The registry's emission stage is ≤ the banned stage.
    EmissionStandard(u8),
    /// No stage on file; registered before the cut-off date.
    RegisteredBefore,
}

/// China III rule parameters, limit-set section `[china3]` (`obd-remote-monitoring.md
/// §5.1–§5.2`). Defaults = `fixtures/limits/cn-observed.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct China3Rule {
    /// Highest emission stage that is banned (3 = China III, §5.1).
    pub max_emission_standard: u8,
    /// When the registry has no emission stage: registered before this date ⇒ possible
    /// China III (§5.2 [D], default `2013-07-01`, the national China IV date for diesel
    /// trucks); empty string disables the fallback.
    pub infer_registered_before: String,
}

impl Default for China3Rule {
    fn default() -> Self {
        China3Rule {
            max_emission_standard: 3,
            infer_registered_before: "2013-07-01".into(),
        }
    }
}

/// The rule in the registry ([`crate::detect::RULES`]): a [`RecordInput::Sighting`] of a
/// vehicle it [`applies`] to gives its [`detection`].
pub struct China3Diesel;

impl Rule for China3Diesel {
    const RULE_IDS: &'static [&'static str] = &[RULE_ID];
    type Params = China3Rule;
}

impl RecordRule for China3Diesel {
    fn check(
        input: &RecordInput<'_>,
        params: &China3Rule,
        limit_set: &str,
    ) -> Option<DetectionRow> {
        let RecordInput::Sighting { vehicle, sighting } = *input else {
            return None;
        };
        let basis = applies(vehicle, params)?;
        Some(detection(vehicle, basis, sighting, params, limit_set))
    }
}

/// Does the rule apply to this registered vehicle?
pub fn applies(v: &VehicleInfo, rule: &China3Rule) -> Option<Basis> {
    if !matches!(v.fuel, Some(Fuel::Diesel) | Some(Fuel::HybridDiesel)) {
        return None;
    }
    if !v
        .vehicle_type
        .as_deref()
        .is_some_and(is_medium_or_heavy_truck)
    {
        return None;
    }
    match v.emission_standard {
        Some(s) if s <= rule.max_emission_standard => Some(Basis::EmissionStandard(s)),
        Some(_) => None,
        None => {
            let cutoff =
                NaiveDate::parse_from_str(&rule.infer_registered_before, "%Y-%m-%d").ok()?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
            let cut_days = (cutoff - epoch).num_days() as i32;
            v.registered_on
                .filter(|d| *d < cut_days)
                .map(|_| Basis::RegisteredBefore)
        }
    }
}

/// Where and when the vehicle was seen.
#[derive(Clone, Copy, Debug)]
pub struct Sighting<'a> {
    /// `rsd` or `plates`.
    pub stream: &'a str,
    /// `pass_id` or `read_id`.
    pub source_key: &'a str,
    pub at_ms: i64,
    pub site_id: Option<&'a str>,
    pub lon_deg: Option<f64>,
    pub lat_deg: Option<f64>,
    /// Plate and colour both matched the registry. False when the pass or read had no colour
    /// and was joined on the plate number alone (evidence `plate_color_confirmed: false`).
    pub colour_confirmed: bool,
    /// Colour on the pass or read, if any (canonical name).
    pub read_plate_color: Option<&'a str>,
}

/// The detection row for a sighting of a vehicle the rule applies to.
pub fn detection(
    v: &VehicleInfo,
    basis: Basis,
    s: &Sighting<'_>,
    rule: &China3Rule,
    limit_set: &str,
) -> DetectionRow {
    let registered_on = v.registered_on.and_then(|d| {
        NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(d as i64))
    });
    let (basis_text, strength) = match basis {
        Basis::EmissionStandard(_) => ("registry_emission_standard", 1.0),
        Basis::RegisteredBefore => ("registered_before_cutoff", 0.5),
    };
    let evidence = serde_json::json!({
        "basis": basis_text,
        "emission_standard": v.emission_standard,
        "emission_standard_raw": v.emission_standard_raw,
        "max_emission_standard": rule.max_emission_standard,
        "registered_on": registered_on.map(|d| d.to_string()),
        "infer_registered_before": rule.infer_registered_before,
        "fuel": v.fuel.map(|f| f.as_str()),
        "vehicle_type": v.vehicle_type,
        "plate_color_confirmed": s.colour_confirmed,
        "read_plate_color": s.read_plate_color,
    });
    DetectionRow {
        detection_id: detection_id(RULE_ID, s.stream, s.source_key),
        rule_id: RULE_ID.into(),
        rule_version: RULE_VERSION.into(),
        limit_set: limit_set.into(),
        detected_at_ms: s.at_ms,
        plate: Some(v.plate.clone()),
        plate_color: v.plate_color.map(|c| c.as_str().to_string()),
        vin: v.vin.clone(),
        site_id: s.site_id.map(str::to_string),
        lon_deg: s.lon_deg,
        lat_deg: s.lat_deg,
        source_stream: s.stream.into(),
        source_key: s.source_key.into(),
        strength: Some(strength),
        evidence: crate::schema::Evidence::from_json(&evidence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LimitSet;

    fn truck(es: Option<u8>, reg: &str) -> VehicleInfo {
        let d = NaiveDate::parse_from_str(reg, "%Y-%m-%d").unwrap();
        VehicleInfo {
            plate: "冀A12345".into(),
            plate_color: None,
            vin: Some("LVIN".into()),
            fuel: Some(Fuel::Diesel),
            emission_standard: es,
            emission_standard_raw: None,
            vehicle_type: Some("H11".into()),
            registered_on: Some(
                (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32,
            ),
        }
    }

    #[test]
    fn rule_applies_by_stage_or_date() {
        let r = LimitSet::default_set().rules.china3;
        assert_eq!(
            applies(&truck(Some(3), "2016-01-01"), &r),
            Some(Basis::EmissionStandard(3))
        );
        assert_eq!(applies(&truck(Some(4), "2010-01-01"), &r), None);
        assert_eq!(
            applies(&truck(None, "2013-06-30"), &r),
            Some(Basis::RegisteredBefore)
        );
        assert_eq!(applies(&truck(None, "2013-07-01"), &r), None);
        let mut car = truck(Some(3), "2010-01-01");
        car.vehicle_type = Some("K33".into());
        assert_eq!(applies(&car, &r), None);
        let mut gas = truck(Some(3), "2010-01-01");
        gas.fuel = Some(Fuel::NaturalGas);
        assert_eq!(applies(&gas, &r), None);
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = detection_id(RULE_ID, "rsd", "p1");
        assert_eq!(a, detection_id(RULE_ID, "rsd", "p1"));
        assert_ne!(a, detection_id(RULE_ID, "plates", "p1"));
        assert_eq!(a.len(), 32);
    }
}
