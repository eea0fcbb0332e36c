//! `obd_catalyst_dtc`: an OBD report carries a catalyst or rear-O2 DTC (P0420/P0430,
//! P0136–P0141, P013A–P013F, P2096–P2099) or the MIL is on (`obd-remote-monitoring.md §2.2`,
//! §3.3 item 6). The code list comes from the limit set's `[obd_dtc]` table.

use serde::{Deserialize, Serialize};

use super::{RecordInput, RecordRule, Rule};
use crate::schema::{DetectionRow, ObdReportRow};

/// Rule id stored in `detections.rule_id`.
pub const RULE_ID: &str = "obd_catalyst_dtc";
/// Rule version.
pub const RULE_VERSION: &str = "1";

/// Limit-set section `[obd_dtc]`; defaults = the codes of §2.2 and MIL on (§3.3 item 6), the
/// values of `fixtures/limits/cn-observed.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct ObdDtcRule {
    /// DTCs that indicate a catalyst or rear-O2 fault (§2.2).
    pub codes: Vec<String>,
    /// MIL on alone is a detection (§3.3 item 6).
    pub mil_on: bool,
}

impl Default for ObdDtcRule {
    fn default() -> Self {
        let mut codes: Vec<String> = ["P0420", "P0430", "P2096", "P2097", "P2098", "P2099"]
            .map(String::from)
            .to_vec();
        codes.extend((0x136..=0x141).map(|c| format!("P{c:04X}")));
        codes.extend((0x13A..=0x13F).map(|c| format!("P{c:04X}")));
        codes.sort();
        codes.dedup();
        ObdDtcRule {
            codes,
            mil_on: true,
        }
    }
}

/// The rule in the registry ([`crate::detect::RULES`]): [`check`] on a
/// [`RecordInput::ObdReport`].
pub struct ObdCatalystDtc;

impl Rule for ObdCatalystDtc {
    const RULE_IDS: &'static [&'static str] = &[RULE_ID];
    type Params = ObdDtcRule;
}

impl RecordRule for ObdCatalystDtc {
    fn check(
        input: &RecordInput<'_>,
        params: &ObdDtcRule,
        limit_set: &str,
    ) -> Option<DetectionRow> {
        let RecordInput::ObdReport { report, stream } = *input else {
            return None;
        };
        check(report, params, limit_set, stream)
    }
}

/// The detection for a report, if the rule fires.
pub fn check(
    r: &ObdReportRow,
    rule: &ObdDtcRule,
    limit_set: &str,
    stream: &str,
) -> Option<DetectionRow> {
    let hits: Vec<&str> = r
        .dtcs
        .iter()
        .map(String::as_str)
        .filter(|d| rule.codes.iter().any(|c| c == d))
        .collect();
    let mil = rule.mil_on && r.mil_on == Some(true);
    if hits.is_empty() && !mil {
        return None;
    }
    let evidence = serde_json::json!({
        "dtcs_matched": hits,
        "dtcs_all": r.dtcs,
        "mil_on": r.mil_on,
        "diag_readiness": r.diag_readiness,
        "iupr_catcomp1": r.iupr.get(2).copied().flatten(),
        "iupr_catcond1": r.iupr.get(3).copied().flatten(),
        "iupr_so2scomp1": r.iupr.get(16).copied().flatten(),
        "iupr_so2scond1": r.iupr.get(17).copied().flatten(),
    });
    Some(super::obd_report_detection(
        (RULE_ID, RULE_VERSION),
        r,
        stream,
        limit_set,
        if hits.is_empty() { 0.5 } else { 1.0 },
        &evidence,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_mil() {
        let rule = ObdDtcRule::default();
        assert!(
            rule.codes.contains(&"P013A".to_string()) && rule.codes.contains(&"P0141".to_string())
        );
        assert!(!rule.codes.contains(&"P0142".to_string()));
        let mut r = ObdReportRow {
            vin: "V".into(),
            dtcs: vec!["P2047".into()],
            mil_on: Some(false),
            ..Default::default()
        };
        assert!(check(&r, &rule, "x", "obd").is_none());
        r.dtcs.push("P0420".into());
        let d = check(&r, &rule, "x", "obd").unwrap();
        assert_eq!(d.evidence.text("dtcs_matched"), Some("P0420"));
        assert_eq!(d.evidence.text("dtcs_all"), Some("P2047,P0420"));
        assert_eq!(d.evidence.text("mil_on"), Some("false"));
        let r2 = ObdReportRow {
            vin: "V".into(),
            mil_on: Some(true),
            ..Default::default()
        };
        assert_eq!(check(&r2, &rule, "x", "obd").unwrap().strength, Some(0.5));
    }
}
