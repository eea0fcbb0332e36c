//! `obd_readiness_incomplete`: an OBD report says a supported catalyst or exhaust-gas-sensor
//! monitor has not completed (`obd-remote-monitoring.md` §3.3 item 6: "readiness b0/b5 not
//! complete"; §1.6: diag support and diag readiness, bit b0 catalyst, b5 exhaust-gas sensor,
//! b6 its heater). A monitor that never completes is what a cleared DTC, a disconnected
//! battery or an ECU flashed to hide a removed catalyst look like to the platform; it is a
//! lead, not proof (a monitor also reads incomplete for a while after a legitimate repair),
//! hence strength 0.5.
//!
//! The readiness polarity is J1979's (1 = not complete); for GB 17691 it is marked [U] in
//! §1.6, so it is a parameter (`incomplete_bit = 1`), as are the monitors checked.

use serde::{Deserialize, Serialize};

use super::{RecordInput, RecordRule, Rule};
use crate::schema::{DetectionRow, ObdReportRow};

/// Rule id stored in `detections.rule_id`.
pub const RULE_ID: &str = "obd_readiness_incomplete";
/// Rule version.
pub const RULE_VERSION: &str = "1";

/// Names of the 16 diag support / readiness bits, b0 first (§1.6).
pub const MONITORS: [&str; 16] = [
    "catalyst",
    "heated_catalyst",
    "evaporative_system",
    "secondary_air",
    "ac_refrigerant",
    "exhaust_gas_sensor",
    "exhaust_gas_sensor_heater",
    "egr_vvt",
    "cold_start_aid",
    "boost_pressure",
    "dpf",
    "scr_nox_adsorber",
    "nmhc_catalyst",
    "misfire",
    "fuel_system",
    "comprehensive_component",
];

/// Limit-set section `[obd_readiness]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct ObdReadinessRule {
    /// Bits checked (§1.6 numbering). Default `[0, 5]`: catalyst and exhaust-gas sensor
    /// (§3.3 item 6).
    pub monitors: Vec<u8>,
    /// Value of a readiness bit that means "not complete". Default 1 (SAE J1979; the GB
    /// polarity is [U], §1.6).
    pub incomplete_bit: u8,
    /// Only monitors whose diag support bit is set are judged (a monitor the engine does not
    /// have cannot complete). Default true.
    pub supported_only: bool,
}

impl Default for ObdReadinessRule {
    fn default() -> Self {
        ObdReadinessRule {
            monitors: vec![0, 5],
            incomplete_bit: 1,
            supported_only: true,
        }
    }
}

/// The rule in the registry ([`crate::detect::RULES`]): [`check`] on a
/// [`RecordInput::ObdReport`].
pub struct ObdReadinessIncomplete;

impl Rule for ObdReadinessIncomplete {
    const RULE_IDS: &'static [&'static str] = &[RULE_ID];
    type Params = ObdReadinessRule;
}

impl RecordRule for ObdReadinessIncomplete {
    fn check(
        input: &RecordInput<'_>,
        params: &ObdReadinessRule,
        limit_set: &str,
    ) -> Option<DetectionRow> {
        let RecordInput::ObdReport { report, stream } = *input else {
            return None;
        };
        check(report, params, limit_set, stream)
    }
}

/// The checked monitors of `r` that are (supported and) not complete, by name; empty when
/// the report carries no readiness word (0xFE/0xFF invalid is decoded as absent).
pub fn incomplete_monitors(r: &ObdReportRow, rule: &ObdReadinessRule) -> Vec<&'static str> {
    let Some(ready) = r.diag_readiness else {
        return Vec::new();
    };
    let support = r.diag_support;
    rule.monitors
        .iter()
        .filter(|&&b| b < 16)
        .filter(|&&b| {
            let bit = (ready >> b) & 1;
            let supported = support.is_some_and(|s| (s >> b) & 1 == 1);
            u16::from(rule.incomplete_bit) == bit && (supported || !rule.supported_only)
        })
        .map(|&b| MONITORS[usize::from(b)])
        .collect()
}

/// The detection for a report, if the rule fires.
pub fn check(
    r: &ObdReportRow,
    rule: &ObdReadinessRule,
    limit_set: &str,
    stream: &str,
) -> Option<DetectionRow> {
    let hits = incomplete_monitors(r, rule);
    if hits.is_empty() {
        return None;
    }
    let evidence = serde_json::json!({
        "monitors_incomplete": hits,
        "diag_support": r.diag_support,
        "diag_readiness": r.diag_readiness,
        "mil_on": r.mil_on,
        "dtcs_all": r.dtcs,
    });
    Some(super::obd_report_detection(
        (RULE_ID, RULE_VERSION),
        r,
        stream,
        limit_set,
        0.5,
        &evidence,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(support: Option<u16>, readiness: Option<u16>) -> ObdReportRow {
        ObdReportRow {
            vin: "LZZ5ELSDXND999901".into(),
            reported_at_ms: 1_762_567_200_000,
            diag_support: support,
            diag_readiness: readiness,
            ..Default::default()
        }
    }

    /// The field case's real-layout report: support 0x0021 (b0 catalyst, b5 exhaust-gas
    /// sensor), readiness 0 (all complete): nothing. Readiness 0x0021: both incomplete.
    /// Readiness 0x0001 with support 0x0020: the catalyst is not supported, so not judged.
    #[test]
    fn supported_incomplete_monitors_fire() {
        let rule = ObdReadinessRule::default();
        assert!(check(&report(Some(0x21), Some(0)), &rule, "x", "obd").is_none());
        let d = check(&report(Some(0x21), Some(0x21)), &rule, "cn@1", "obd").unwrap();
        assert_eq!(d.rule_id, "obd_readiness_incomplete");
        assert_eq!(
            d.evidence.text("monitors_incomplete"),
            Some("catalyst,exhaust_gas_sensor")
        );
        assert_eq!(d.strength, Some(0.5));
        assert_eq!(d.source_key, "LZZ5ELSDXND999901@1762567200000");
        assert!(check(&report(Some(0x20), Some(0x01)), &rule, "x", "obd").is_none());
        // Bits not checked (b1 heated catalyst) never fire; no readiness word never fires.
        assert!(check(&report(Some(0xFFFF), Some(0x02)), &rule, "x", "obd").is_none());
        assert!(check(&report(Some(0x21), None), &rule, "x", "obd").is_none());
    }

    /// The polarity and the support requirement are parameters (§1.6 [U]).
    #[test]
    fn polarity_and_support_are_parameters() {
        let inverted = ObdReadinessRule {
            incomplete_bit: 0,
            ..Default::default()
        };
        // With 0 = incomplete, readiness 0x0020 means the catalyst (b0 = 0) is incomplete.
        assert_eq!(
            incomplete_monitors(&report(Some(0x21), Some(0x20)), &inverted),
            ["catalyst"]
        );
        let any = ObdReadinessRule {
            supported_only: false,
            monitors: vec![0, 6, 40],
            ..Default::default()
        };
        assert_eq!(
            incomplete_monitors(&report(None, Some(0x41)), &any),
            ["catalyst", "exhaust_gas_sensor_heater"]
        );
        let p: ObdReadinessRule = toml::from_str("monitors = [0]\n").unwrap();
        assert_eq!(
            (p.monitors, p.incomplete_bit, p.supported_only),
            (vec![0], 1, true)
        );
    }
}
