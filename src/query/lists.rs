//! Named enforcement lists: SQL compiled into the binary, parameters bound as values
//! (`$name` placeholders), never spliced into the SQL text. Defaults come from the limit set.

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::{DataFusionError, Result};

use crate::limits::LimitSet;

/// Type of a list parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Bool,
    /// A bound of the period: a bare date (`2024-01-31`) is 00:00 of that calendar day in the
    /// enforcement zone (limit set `[time].zone`, Asia/Shanghai by default), whatever the
    /// machine's TZ; a time with an offset (RFC 3339) is that instant; see
    /// [`crate::time::parse_bound`]. Bound as an RFC 3339 UTC text.
    Time,
}

/// One parameter of a list.
pub struct ParamDef {
    pub name: &'static str,
    pub ty: ParamType,
    pub doc: &'static str,
    /// Default value as text (from the limit set where the rule has one).
    pub default: fn(&LimitSet) -> String,
}

/// A named list.
pub struct ListDef {
    pub name: &'static str,
    pub description: &'static str,
    pub sql: &'static str,
    pub params: &'static [ParamDef],
}

const SINCE: ParamDef = ParamDef {
    name: "since",
    ty: ParamType::Time,
    doc: "first day or instant included: a date is a calendar day in the enforcement zone (limit set [time].zone, default Asia/Shanghai), or RFC 3339 with an offset; default [time].earliest (2000-01-01)",
    default: |l| l.time.earliest.clone(),
};
const UNTIL: ParamDef = ParamDef {
    name: "until",
    ty: ParamType::Time,
    doc: "first day or instant excluded (a date is a day in the enforcement zone, or RFC 3339), default 2100-01-01",
    default: |_| "2100-01-01".into(),
};

/// `rsd-repeat-exceeders`: vehicles with ≥ N valid failing passes within W days
/// (`remote-sensing.md §1.5`; N, W and "same pollutant" from the limit set's `[repeat]`).
/// The window is a window function over each plate's passes in time order (a RANGE frame
/// of W days, linear in the passes), not a self-join: the count for a pass is the passes of
/// the plate in (t − W days, t].
/// Only recognised plates (`plate_status` standard or nonstandard) are counted: a "no plate"
/// placeholder or unrecognised text never reaches a police list.
pub const RSD_REPEAT_EXCEEDERS: ListDef = ListDef {
    name: "rsd-repeat-exceeders",
    description: "plates with >= min_failing_passes valid failing RSD passes within window_days (same pollutant if same_pollutant)",
    sql: r#"
WITH f AS (
  SELECT plate, plate_color, vin, pass_id, passed_at, CAST(passed_at AS BIGINT) AS t_ms,
         site_id, limit_set, unnest(exceeded) AS pollutant
  FROM rsd_passes
  WHERE verdict = 'fail' AND valid AND plate IS NOT NULL
    AND plate_status IN ('standard', 'nonstandard')
    AND passed_at >= to_timestamp($since) AND passed_at < to_timestamp($until)
),
p AS (
  SELECT DISTINCT plate, pass_id, t_ms,
         CASE WHEN $same_pollutant THEN pollutant ELSE '' END AS pk
  FROM f
),
w AS (
  SELECT plate,
         count(*) OVER (PARTITION BY plate, pk ORDER BY t_ms
                        RANGE BETWEEN {window_days_ms_minus_1} PRECEDING AND CURRENT ROW) AS n
  FROM p
),
hits AS (
  SELECT plate, max(n) AS max_failing_in_window FROM w GROUP BY plate
  HAVING max(n) >= $min_failing_passes
)
SELECT f.plate,
       max(f.plate_color) AS plate_color,
       max(f.vin) AS vin,
       h.max_failing_in_window,
       count(DISTINCT f.pass_id) AS failing_passes,
       array_to_string(array_sort(array_agg(DISTINCT f.pollutant)), ',') AS pollutants,
       min(f.passed_at) AS first_fail,
       max(f.passed_at) AS last_fail,
       last_value(f.site_id ORDER BY f.passed_at) AS last_site,
       max(f.limit_set) AS limit_set
FROM f JOIN hits h ON f.plate = h.plate
GROUP BY f.plate, h.max_failing_in_window
ORDER BY h.max_failing_in_window DESC, last_fail DESC, f.plate
"#,
    params: &[
        ParamDef {
            name: "min_failing_passes",
            ty: ParamType::Int,
            doc: "N: failing valid passes needed (limit set [repeat].min_failing_passes)",
            default: |l| l.repeat.min_failing_passes.to_string(),
        },
        ParamDef {
            name: "window_days",
            ty: ParamType::Int,
            doc: "W: window length in days (limit set [repeat].window_days)",
            default: |l| l.repeat.window_days.to_string(),
        },
        ParamDef {
            name: "same_pollutant",
            ty: ParamType::Bool,
            doc: "count only passes failing the same pollutant (limit set [repeat].same_pollutant)",
            default: |l| l.repeat.same_pollutant.to_string(),
        },
        SINCE,
        UNTIL,
    ],
};

/// The registered vehicles the China III rule applies to (`obd-remote-monitoring.md §5`,
/// as `detect::china3::applies`): diesel (or diesel hybrid) medium/heavy truck (GA 802
/// H1x/H2x/Q1x/Q2x/Z51), emission stage ≤ `$max_emission_standard`, or no stage on file and
/// registered before `$infer_registered_before`. Only recognised registry plates. Columns
/// plate, plate_color, vin, vehicle_type, plate_regs (registry rows with this plate number,
/// any colour, for the plate-only join rule), basis.
macro_rules! china3_registered_sql {
    () => {
        r#"
  SELECT plate, plate_color, vin, vehicle_type, plate_regs,
         CASE WHEN emission_standard IS NOT NULL THEN 'registry_emission_standard'
              ELSE 'registered_before_cutoff' END AS basis
  FROM (SELECT *, count(*) OVER (PARTITION BY plate) AS plate_regs
        FROM vehicles WHERE plate IS NOT NULL AND plate_status IN ('standard', 'nonstandard'))
  WHERE fuel IN ('diesel', 'hybrid_diesel')
    AND length(trim(vehicle_type)) = 3
    AND (upper(substr(trim(vehicle_type), 1, 2)) IN ('H1', 'H2', 'Q1', 'Q2')
         OR upper(trim(vehicle_type)) = 'Z51')
    AND (emission_standard <= $max_emission_standard
         OR (emission_standard IS NULL
             AND registered_on < CAST(to_timestamp($infer_registered_before) AS DATE)))
"#
    };
}

const MAX_EMISSION_STANDARD: ParamDef = ParamDef {
    name: "max_emission_standard",
    ty: ParamType::Int,
    doc: "highest banned emission stage (limit set [china3].max_emission_standard)",
    default: |l| l.china3.max_emission_standard.to_string(),
};
const INFER_REGISTERED_BEFORE: ParamDef = ParamDef {
    name: "infer_registered_before",
    ty: ParamType::Time,
    doc: "no stage on file: registered before this date counts (limit set [china3].infer_registered_before)",
    default: |l| {
        if l.china3.infer_registered_before.is_empty() {
            "1900-01-01".into()
        } else {
            l.china3.infer_registered_before.clone()
        }
    },
};

/// `china3-diesel`: one row per plate of a China III-or-older diesel medium/heavy truck
/// seen in the period (`obd-remote-monitoring.md §5`). Judged by the CURRENT registry at
/// query time (issue 9 item 4): every RSD pass and plate read of the period with a recognised
/// plate joined with the `vehicles` snapshot, so a vehicle seen before a registry update is
/// judged by the update. The join is the one of `enrich::plate_id` (DESIGN.md "Time, plates
/// and keys"): plate + colour; on the plate number alone only when the number is registered
/// once and one side has no colour (`plate_colour_confirmed` false); never for a colour that
/// was given but not understood (flag `plate_color_unknown`).
pub const CHINA3_DIESEL: ListDef = ListDef {
    name: "china3-diesel",
    description: "China III-or-older diesel medium/heavy trucks seen (RSD passes and plate reads), one row per plate, judged by the current registry",
    sql: concat!(
        r#"
WITH v AS ("#,
        china3_registered_sql!(),
        r#"),
s AS (
  SELECT plate, plate_color, 'rsd:' || pass_id AS sighting, passed_at AS seen_at, site_id, flags
  FROM rsd_passes
  WHERE plate IS NOT NULL AND plate_status IN ('standard', 'nonstandard')
    AND passed_at >= to_timestamp($since) AND passed_at < to_timestamp($until)
  UNION ALL
  SELECT plate, plate_color, 'plates:' || read_id, read_at, site_id, flags
  FROM plate_reads
  WHERE plate IS NOT NULL AND plate_status IN ('standard', 'nonstandard')
    AND read_at >= to_timestamp($since) AND read_at < to_timestamp($until)
),
j AS (
  SELECT s.plate, coalesce(v.plate_color, s.plate_color) AS plate_color, v.vin, v.basis,
         s.sighting, s.seen_at, s.site_id,
         (s.plate_color IS NOT NULL AND v.plate_color = s.plate_color) AS colour_confirmed
  FROM s JOIN v ON s.plate = v.plate
   AND ((s.plate_color IS NOT NULL AND v.plate_color = s.plate_color)
        OR (v.plate_regs = 1 AND (s.plate_color IS NULL OR v.plate_color IS NULL)))
  WHERE NOT array_has(coalesce(s.flags, make_array()), 'plate_color_unknown')
)
SELECT plate,
       max(plate_color) AS plate_color,
       max(vin) AS vin,
       count(DISTINCT sighting) AS sightings,
       min(seen_at) AS first_seen,
       max(seen_at) AS last_seen,
       last_value(site_id ORDER BY seen_at) AS last_site,
       array_to_string(array_sort(array_agg(DISTINCT site_id)), ',') AS sites,
       max(basis) AS basis,
       bool_and(colour_confirmed) AS plate_colour_confirmed,
       '1' AS rule_version
FROM j
GROUP BY plate
ORDER BY last_seen DESC, plate
"#
    ),
    params: &[MAX_EMISSION_STANDARD, INFER_REGISTERED_BEFORE, SINCE, UNTIL],
};

/// The registry's China III vehicles, seen or not (the entrance watchlist of `run`, so a
/// banned truck's first read at an entrance alerts; issue 10 item 6). Not a named list.
pub const CHINA3_REGISTERED: ListDef = ListDef {
    name: "china3-registered",
    description: "registered China III-or-older diesel medium/heavy trucks (registry only)",
    sql: concat!(china3_registered_sql!(), "ORDER BY plate"),
    params: &[MAX_EMISSION_STANDARD, INFER_REGISTERED_BEFORE],
};

/// `gas-twc-suspects`: one row per vehicle with TWC / rear-O2 detections (§3.3) or a
/// catalyst DTC (§2.2), ranked by the strongest evidence; by default only vehicles registered
/// as natural gas with emission standard VI (registry join by VIN, or plate + colour for a
/// detection without VIN; a registered plate that is not recognised is shown as NULL).
///
/// A vehicle whose upstream λ was found implausible (`lambda_implausible`, §3.3 item 8) is
/// listed too, with `status` `not_evaluable` and the reason, after the suspects: its λ-based
/// detectors could not judge it, which must not read as a healthy catalyst. The last position
/// comes from valid fixes only (position status bit 0 clear; never (0, 0)).
pub const GAS_TWC_SUSPECTS: ListDef = ListDef {
    name: "gas-twc-suspects",
    description: "China VI gas trucks with TWC / rear-O2 detections, one row per vehicle, strongest evidence first; vehicles with an implausible upstream lambda listed as not_evaluable",
    sql: r#"
WITH d AS (
  SELECT * FROM detections
  WHERE rule_id IN ('rear_o2_flatline', 'rear_o2_periodic', 'rear_o2_mirrors_front', 'dfco_no_lean',
                    'rear_o2_missing', 'rear_o2_low_band', 'obd_catalyst_dtc', 'lambda_implausible')
    AND detected_at >= to_timestamp($since) AND detected_at < to_timestamp($until)
),
v AS (
  SELECT vin, plate_color, fuel, emission_standard,
         CASE WHEN plate_status IN ('standard', 'nonstandard') THEN plate END AS plate
  FROM vehicles
),
j AS (
  SELECT d.*, v.plate AS reg_plate, v.plate_color AS reg_plate_color,
         (v.fuel = 'natural_gas' AND v.emission_standard = 6) AS gas_vi,
         (d.rule_id = 'lambda_implausible') AS dq
  FROM d LEFT JOIN v ON (d.vin = v.vin
    OR (d.vin IS NULL AND d.plate = v.plate AND d.plate_color = v.plate_color))
),
dq AS (
  SELECT vin, max(detected_at) AS dq_last_at,
         last_value(evidence['upstream_lambda_median'] ORDER BY detected_at) AS dq_upstream,
         last_value(evidence['commanded_lambda_median'] ORDER BY detected_at) AS dq_commanded,
         last_value(evidence['ratio'] ORDER BY detected_at) AS dq_ratio,
         last_value(evidence['n_samples'] ORDER BY detected_at) AS dq_n_samples,
         last_value(evidence_text['hint'] ORDER BY detected_at) AS dq_hint
  FROM d WHERE rule_id = 'lambda_implausible' GROUP BY vin
),
last_pos AS (
  SELECT vin, max(sampled_at) AS last_sampled_at,
         last_value(lon_deg ORDER BY sampled_at) AS last_lon_deg,
         last_value(lat_deg ORDER BY sampled_at) AS last_lat_deg
  FROM obd_samples
  WHERE lon_deg IS NOT NULL AND lat_deg IS NOT NULL AND position_valid IS NOT FALSE
    AND NOT (lon_deg = 0 AND lat_deg = 0)
  GROUP BY vin
),
g AS (
SELECT j.vin,
       max(j.reg_plate) AS plate,
       max(j.reg_plate_color) AS plate_color,
       count(DISTINCT CASE WHEN NOT j.dq THEN j.detection_id END) AS detections,
       sum(CASE WHEN j.rule_id = 'rear_o2_flatline' THEN 1 ELSE 0 END) AS rear_o2_flatline,
       sum(CASE WHEN j.rule_id = 'rear_o2_periodic' THEN 1 ELSE 0 END) AS rear_o2_periodic,
       sum(CASE WHEN j.rule_id = 'rear_o2_mirrors_front' THEN 1 ELSE 0 END) AS rear_o2_mirrors_front,
       sum(CASE WHEN j.rule_id = 'dfco_no_lean' THEN 1 ELSE 0 END) AS dfco_no_lean,
       sum(CASE WHEN j.rule_id = 'rear_o2_missing' THEN 1 ELSE 0 END) AS rear_o2_missing,
       sum(CASE WHEN j.rule_id = 'obd_catalyst_dtc' THEN 1 ELSE 0 END) AS obd_catalyst_dtc,
       max(CASE WHEN NOT j.dq THEN j.strength END) AS max_strength,
       first_value(j.rule_id ORDER BY CASE WHEN j.dq THEN 1 ELSE 0 END, j.strength DESC NULLS LAST, j.detected_at DESC) AS strongest_rule,
       first_value(j.evidence ORDER BY CASE WHEN j.dq THEN 1 ELSE 0 END, j.strength DESC NULLS LAST, j.detected_at DESC) AS strongest_evidence,
       first_value(j.evidence_text ORDER BY CASE WHEN j.dq THEN 1 ELSE 0 END, j.strength DESC NULLS LAST, j.detected_at DESC) AS strongest_evidence_text,
       max(j.detected_at) AS last_detected_at,
       max(p.last_sampled_at) AS last_seen_at,
       max(p.last_lon_deg) AS last_lon_deg,
       max(p.last_lat_deg) AS last_lat_deg,
       max(j.limit_set) AS limit_set,
       sum(CASE WHEN j.rule_id = 'rear_o2_low_band' THEN 1 ELSE 0 END) AS rear_o2_low_band,
       sum(CASE WHEN j.dq THEN 1 ELSE 0 END) AS lambda_implausible
FROM j LEFT JOIN last_pos p ON j.vin = p.vin
WHERE $all_vehicles OR coalesce(j.gas_vi, false)
GROUP BY j.vin
)
SELECT g.*,
       CASE WHEN g.detections > 0 THEN 'suspect' ELSE 'not_evaluable' END AS status,
       CASE WHEN q.dq_last_at IS NULL THEN NULL ELSE
         'lambda_implausible: upstream lambda not plausible for a warm closed loop (median '
         || coalesce(CAST(round(q.dq_upstream, 4) AS VARCHAR), '?')
         || ' vs commanded '
         || coalesce(CAST(round(q.dq_commanded, 4) AS VARCHAR), 'none reported')
         || ', ratio '
         || coalesce(CAST(round(q.dq_ratio, 4) AS VARCHAR), '?')
         || ', ' || coalesce(CAST(CAST(q.dq_n_samples AS BIGINT) AS VARCHAR), '?')
         || ' samples): ' || coalesce(q.dq_hint, '')
         || '; lambda-based TWC / rear-O2 rules not evaluated'
       END AS not_evaluable_reason
FROM g LEFT JOIN dq q ON g.vin = q.vin
ORDER BY CASE WHEN g.detections > 0 THEN 0 ELSE 1 END, g.max_strength DESC NULLS LAST,
         g.detections DESC, g.vin
"#,
    params: &[
        ParamDef {
            name: "all_vehicles",
            ty: ParamType::Bool,
            doc: "include vehicles not registered as natural gas China VI (default false)",
            default: |_| "false".into(),
        },
        SINCE,
        UNTIL,
    ],
};

/// Every list, by name.
pub const LISTS: &[&ListDef] = &[&RSD_REPEAT_EXCEEDERS, &CHINA3_DIESEL, &GAS_TWC_SUSPECTS];

/// Finds a list by name.
pub fn find(name: &str) -> Option<&'static ListDef> {
    LISTS.iter().copied().find(|l| l.name == name)
}

/// Binds `overrides` (KEY=VALUE) over the defaults; errors name the parameter.
pub fn bind(
    list: &ListDef,
    limits: &LimitSet,
    overrides: &[(String, String)],
) -> Result<ParamValues> {
    let mut map = HashMap::new();
    for (k, _) in overrides {
        if !list.params.iter().any(|p| p.name == k) {
            let known: Vec<_> = list.params.iter().map(|p| p.name).collect();
            return Err(DataFusionError::Plan(format!(
                "list {} has no parameter '{k}' (parameters: {})",
                list.name,
                known.join(", ")
            )));
        }
    }
    for p in list.params {
        let text = overrides
            .iter()
            .rev()
            .find(|(k, _)| k == p.name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| (p.default)(limits));
        let bad =
            |why: &str| DataFusionError::Plan(format!("parameter {}: {why}: '{text}'", p.name));
        let v = match p.ty {
            ParamType::Int => ScalarValue::Int64(Some(
                text.trim()
                    .parse()
                    .map_err(|_| bad("expected an integer"))?,
            )),
            ParamType::Bool => ScalarValue::Boolean(Some(match text.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(bad("expected true or false")),
            })),
            ParamType::Time => {
                let at = crate::time::parse_bound(&text, limits.zone()).map_err(|m| bad(&m))?;
                ScalarValue::Utf8(Some(
                    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ))
            }
        };
        map.insert(p.name.to_string(), v.into());
    }
    Ok(ParamValues::Map(map))
}

/// Runs a named list over the tables in `dir`.
pub async fn run(
    dir: &Path,
    list: &ListDef,
    limits: &LimitSet,
    overrides: &[(String, String)],
) -> anyhow::Result<Vec<RecordBatch>> {
    let params = bind(list, limits, overrides)?;
    let sql = frame_sizes(list.sql, &params)?;
    let lake = super::Lake::open(dir).await?;
    let df = lake.sql(&sql).await?.with_param_values(params)?;
    lake.collect(df).await
}

/// Window frame sizes, which SQL cannot take as placeholders: `{NAME_ms_minus_1}` in a
/// list's SQL becomes the bound integer parameter NAME (days) as milliseconds minus one. The
/// value is an `i64` parsed by [`bind`], formatted back, so nothing but digits reaches the SQL.
/// Errors when NAME is not an integer parameter or the product overflows.
fn frame_sizes(sql: &str, params: &ParamValues) -> Result<String> {
    let mut out = sql.to_string();
    while let Some(a) = out.find('{') {
        let Some(len) = out[a..].find('}') else { break };
        let token = &out[a + 1..a + len];
        let Some(name) = token.strip_suffix("_ms_minus_1") else {
            break;
        };
        let days = match params {
            ParamValues::Map(m) => match m.get(name).map(|v| &v.value) {
                Some(ScalarValue::Int64(Some(d))) => *d,
                _ => {
                    return Err(DataFusionError::Plan(format!(
                        "list SQL frame {{{token}}}: no integer parameter {name}"
                    )));
                }
            },
            ParamValues::List(_) => {
                return Err(DataFusionError::Plan("list parameters are named".into()));
            }
        };
        let ms = days
            .checked_mul(86_400_000)
            .and_then(|v| v.checked_sub(1))
            .filter(|v| *v >= 0)
            .ok_or_else(|| {
                DataFusionError::Plan(format!("parameter {name}: {days} days is out of range"))
            })?;
        out.replace_range(a..a + len + 1, &ms.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(limits: &LimitSet, v: &str) -> String {
        let p = bind(
            &CHINA3_DIESEL,
            limits,
            &[("since".to_string(), v.to_string())],
        )
        .unwrap();
        let ParamValues::Map(m) = p else { panic!() };
        m["since"].value.to_string()
    }

    #[test]
    fn bare_dates_are_days_in_the_enforcement_zone() {
        let l = LimitSet::default_set();
        assert_eq!(since(&l, "2025-11-08"), "2025-11-07T16:00:00.000Z");
        assert_eq!(
            since(&l, "2025-11-08T00:00:00Z"),
            "2025-11-08T00:00:00.000Z"
        );
        assert_eq!(
            since(&l, "2025-11-08T00:00:00-05:00"),
            "2025-11-08T05:00:00.000Z"
        );
        let mut utc = l.clone();
        utc.time.zone = "UTC".into();
        assert_eq!(since(&utc, "2025-11-08"), "2025-11-08T00:00:00.000Z");
        let err = bind(&CHINA3_DIESEL, &l, &[("until".into(), "08/11/2025".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("parameter until"), "{err}");
    }
}
