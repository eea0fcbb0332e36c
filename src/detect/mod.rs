//! Rules: each rule is one module that owns its parameters (one limit-set section, serde
//! defaults) and its tests; its docstring cites the clause or domain-doc section. This module
//! holds the two rule shapes ([`RecordRule`], [`KeyedRule`]) and the one registry
//! ([`registry!`] below: [`RULES`], [`RuleParams`], [`check_record`]).
//!
//! # Adding a rule
//! 1. A file `src/detect/<name>.rs` (or a folder `src/detect/<name>/mod.rs`) with a unit type,
//!    its parameters struct (`Clone + Debug + Default + Serialize + Deserialize`, with
//!    `#[serde(default)]` and a docstring naming the source of every threshold), an
//!    `impl Rule` and an `impl RecordRule` (one input record → at most one detection) or an
//!    `impl KeyedRule` (state per key, fed samples in order), and its tests.
//! 2. One line in [`registry!`] below: `record <section>: <name>::<Type>,` or
//!    `keyed <section>: <name>::<Type>,`. `<section>` is the limit-set TOML table of the
//!    parameters (`[<section>]`), read into `LimitSet::rules.<section>`.
//!
//! A per-record rule then runs wherever the pipeline calls [`check_record`] with the input
//! kind it matches ([`RecordInput`]). Keyed state is generic ([`keyed::KeyedStates`]): `run`
//! snapshots and restores it through [`keyed::StateStore`] without naming the state type.
//!
//! The dependency arrow runs `limits → detect`: `LimitSet` gathers [`RuleParams`]; nothing
//! in `detect` (outside tests that load the embedded default set) uses `limits`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::enrich::registry::VehicleInfo;
use crate::schema::{DetectionRow, ObdReportRow};

pub mod china3;
pub mod keyed;
pub mod obd_dtc;
pub mod obd_readiness;
pub mod rsd_limits;
pub mod twc;

/// Deterministic detection id: SHA-256 of rule id, stream and source key (first 16 bytes,
/// hex), so a replay of the same record gives the same id (DESIGN.md "Delivery guarantees").
pub fn detection_id(rule_id: &str, stream: &str, source_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(rule_id.as_bytes());
    h.update([0]);
    h.update(stream.as_bytes());
    h.update([0]);
    h.update(source_key.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The `detections` row of a rule that judged one OBD report: keyed `<vin>@<reported_at_ms>`
/// (a resent report gives the same detection id), detected at the report's time.
pub fn obd_report_detection(
    (rule_id, rule_version): (&str, &str),
    r: &ObdReportRow,
    stream: &str,
    limit_set: &str,
    strength: f64,
    evidence: &serde_json::Value,
) -> DetectionRow {
    let key = format!("{}@{}", r.vin, r.reported_at_ms);
    DetectionRow {
        detection_id: detection_id(rule_id, stream, &key),
        rule_id: rule_id.into(),
        rule_version: rule_version.into(),
        limit_set: limit_set.into(),
        detected_at_ms: r.reported_at_ms,
        vin: Some(r.vin.clone()),
        source_stream: stream.into(),
        source_key: key,
        strength: Some(strength),
        evidence: crate::schema::Evidence::from_json(evidence),
        ..Default::default()
    }
}

/// What every rule declares: the ids it writes and its parameters type.
pub trait Rule {
    /// Every `detections.rule_id` the rule can write (a keyed rule may write several).
    const RULE_IDS: &'static [&'static str];
    /// The subset of [`Rule::RULE_IDS`] that are data-quality findings (the vehicle could not be
    /// judged), counted apart from tampering signatures.
    const DATA_QUALITY_IDS: &'static [&'static str] = &[];
    /// The rule's parameters: one limit-set TOML section, every field with a default.
    type Params: Clone + std::fmt::Debug + Default + Serialize + DeserializeOwned;
}

/// The records a per-record rule can be asked about.
#[derive(Clone, Copy, Debug)]
pub enum RecordInput<'a> {
    /// A registered vehicle seen in an RSD pass or a plate read.
    Sighting {
        /// The registry's record of the vehicle the pass or read joined.
        vehicle: &'a VehicleInfo,
        /// Where and when it was seen.
        sighting: &'a china3::Sighting<'a>,
    },
    /// One OBD report (HJ 1239 OBD information block) on stream `stream` (`obd`).
    ObdReport {
        /// The decoded report.
        report: &'a ObdReportRow,
        /// `detections.source_stream`.
        stream: &'a str,
    },
}

/// A stateless rule: one input record in, at most one detection out. A rule ignores the
/// input kinds it does not judge (returns `None`).
pub trait RecordRule: Rule {
    /// The detection for `input`, if the rule fires; `limit_set` is `name@version`.
    fn check(
        input: &RecordInput<'_>,
        params: &Self::Params,
        limit_set: &str,
    ) -> Option<DetectionRow>;
}

/// A stateful rule with one state per key (a VIN), fed its key's samples in time order.
/// The state is serde so a run can snapshot it into the manifest and restore it
/// ([`keyed::StateStore`]); a fresh key starts from `State::default()`.
pub trait KeyedRule: Rule {
    /// One sample of one key.
    type Sample;
    /// Per-key state (compact: running sums and small state machines).
    type State: Default + Serialize + DeserializeOwned;
    /// What the rule reports before it becomes a `detections` row.
    type Finding;
    /// Feeds one sample; pushes findings.
    fn update(
        state: &mut Self::State,
        sample: &Self::Sample,
        params: &Self::Params,
        out: &mut Vec<Self::Finding>,
    );
    /// End of the input (file ingest; streams never call it): verdicts that are due.
    fn finish(state: &mut Self::State, params: &Self::Params, out: &mut Vec<Self::Finding>);
    /// The `detections` row of a finding of key `key` (position columns left empty: the
    /// caller knows where the sample was taken).
    fn detection(key: &str, finding: &Self::Finding, limit_set: &str) -> DetectionRow;
}

/// The kind of a registered rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// [`RecordRule`].
    Record,
    /// [`KeyedRule`].
    Keyed,
}

/// One registered rule.
#[derive(Clone, Copy, Debug)]
pub struct RuleInfo {
    /// Limit-set section of its parameters (`[china3]`), also its field in [`RuleParams`].
    pub section: &'static str,
    /// Per-record or keyed.
    pub kind: RuleKind,
    /// The `detections.rule_id` values it writes.
    pub rule_ids: &'static [&'static str],
    /// Of those, the data-quality ones.
    pub data_quality_ids: &'static [&'static str],
    /// Rust name of its parameters type (documentation, `plumewatch` diagnostics).
    pub params_type: fn() -> &'static str,
}

/// Access to one rule's parameters inside [`RuleParams`] (implemented by [`registry!`]).
pub trait ParamsOf<R: Rule> {
    /// The parameters of rule `R`.
    fn params(&self) -> &R::Params;
}

/// The registry: one line per rule, `record|keyed <section>: <module>::<Type>`. Generates
/// [`RuleParams`] (one `#[serde(default)]` field per section, gathered by `LimitSet`),
/// [`RULES`] and [`check_record`] (every per-record rule, in registry order).
macro_rules! registry {
    ($($kind:ident $section:ident : $rule:ty),* $(,)?) => {
        /// The parameters of every registered rule, one limit-set TOML table each
        /// (`[china3]`, `[obd_dtc]`, `[twc]`); a table left out takes the rule's defaults.
        #[derive(Clone, Debug, Default, Deserialize, Serialize)]
        pub struct RuleParams {
            $(
                #[doc = concat!("`[", stringify!($section), "]`: parameters of [`", stringify!($rule), "`].")]
                #[serde(default)]
                pub $section: <$rule as Rule>::Params,
            )*
        }

        $(
            impl ParamsOf<$rule> for RuleParams {
                fn params(&self) -> &<$rule as Rule>::Params {
                    &self.$section
                }
            }
        )*

        /// Every registered rule, in registry order.
        pub const RULES: &[RuleInfo] = &[
            $(
                RuleInfo {
                    section: stringify!($section),
                    kind: registry!(@kind $kind),
                    rule_ids: <$rule as Rule>::RULE_IDS,
                    data_quality_ids: <$rule as Rule>::DATA_QUALITY_IDS,
                    params_type: std::any::type_name::<<$rule as Rule>::Params>,
                },
            )*
        ];

        /// Runs every registered per-record rule on `input` (registry order) and pushes
        /// their detections to `out`.
        pub fn check_record(
            params: &RuleParams,
            input: &RecordInput<'_>,
            limit_set: &str,
            out: &mut Vec<DetectionRow>,
        ) {
            $( registry!(@check $kind $rule, params, input, limit_set, out); )*
        }
    };
    (@kind record) => { RuleKind::Record };
    (@kind keyed) => { RuleKind::Keyed };
    (@check record $rule:ty, $p:ident, $i:ident, $l:ident, $o:ident) => {
        if let Some(d) = <$rule as RecordRule>::check($i, ParamsOf::<$rule>::params($p), $l) {
            $o.push(d);
        }
    };
    (@check keyed $rule:ty, $p:ident, $i:ident, $l:ident, $o:ident) => {};
}

registry! {
    record china3: china3::China3Diesel,
    record obd_dtc: obd_dtc::ObdCatalystDtc,
    record obd_readiness: obd_readiness::ObdReadinessIncomplete,
    keyed twc: twc::Twc,
}

/// True when `rule_id` is a data-quality finding of a registered rule.
pub fn is_data_quality(rule_id: &str) -> bool {
    RULES.iter().any(|r| r.data_quality_ids.contains(&rule_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry lists each rule once, under the limit-set section of its parameters, and
    /// the rule ids written to `detections` are unique across rules.
    #[test]
    fn registry_lists_rules_with_sections_and_ids() {
        let sections: Vec<_> = RULES.iter().map(|r| (r.section, r.kind)).collect();
        assert_eq!(
            sections,
            [
                ("china3", RuleKind::Record),
                ("obd_dtc", RuleKind::Record),
                ("obd_readiness", RuleKind::Record),
                ("twc", RuleKind::Keyed)
            ]
        );
        let mut ids: Vec<&str> = RULES
            .iter()
            .flat_map(|r| r.rule_ids.iter().copied())
            .collect();
        assert_eq!(ids.len(), 3 + 7);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10);
        assert!(is_data_quality("lambda_implausible"));
        assert!(!is_data_quality("rear_o2_flatline") && !is_data_quality("obd_catalyst_dtc"));
        assert!((RULES[3].params_type)().ends_with("TwcThresholds"));
    }

    /// The registry's parameters read the sections of the embedded default set to the values
    /// written there (`fixtures/limits/cn-observed.toml`).
    #[test]
    fn params_read_their_sections() {
        let p: RuleParams = toml::from_str(
            "[china3]\nmax_emission_standard = 2\n[obd_dtc]\ncodes = [\"P0420\"]\nmil_on = false\n[twc]\nrearm_s = 60.0\n",
        )
        .unwrap();
        assert_eq!(p.china3.max_emission_standard, 2);
        assert_eq!(p.china3.infer_registered_before, "2013-07-01");
        assert_eq!(
            (p.obd_dtc.codes.as_slice(), p.obd_dtc.mil_on),
            (&["P0420".to_string()][..], false)
        );
        assert_eq!(p.twc.rearm_s, 60.0);
        assert_eq!(p.twc.window_samples, 300);
    }
}
