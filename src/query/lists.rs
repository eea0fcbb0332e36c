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
    sql: include_str!("lists/rsd_repeat_exceeders.sql"),
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
///
/// It is the SQL fragment `{china3_registered}` ([`FRAGMENTS`]: shared by lists, written
/// `{name}` in a list's SQL and expanded before planning, see [`expand`]).
const FRAGMENTS: [(&str, &str); 1] = [(
    "china3_registered",
    include_str!("lists/china3_registered.sql"),
)];

const MAX_EMISSION_STANDARD: ParamDef = ParamDef {
    name: "max_emission_standard",
    ty: ParamType::Int,
    doc: "highest banned emission stage (limit set [china3].max_emission_standard)",
    default: |l| l.rules.china3.max_emission_standard.to_string(),
};
const INFER_REGISTERED_BEFORE: ParamDef = ParamDef {
    name: "infer_registered_before",
    ty: ParamType::Time,
    doc: "no stage on file: registered before this date counts (limit set [china3].infer_registered_before)",
    default: |l| {
        if l.rules.china3.infer_registered_before.is_empty() {
            "1900-01-01".into()
        } else {
            l.rules.china3.infer_registered_before.clone()
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
    sql: include_str!("lists/china3_diesel.sql"),
    params: &[MAX_EMISSION_STANDARD, INFER_REGISTERED_BEFORE, SINCE, UNTIL],
};

/// The registry's China III vehicles, seen or not (the entrance watchlist of `run`, so a
/// banned truck's first read at an entrance alerts; issue 10 item 6). Not a named list.
pub const CHINA3_REGISTERED: ListDef = ListDef {
    name: "china3-registered",
    description: "registered China III-or-older diesel medium/heavy trucks (registry only)",
    sql: "{china3_registered}ORDER BY plate",
    params: &[MAX_EMISSION_STANDARD, INFER_REGISTERED_BEFORE],
};

/// `gas-twc-suspects`: one row per vehicle with TWC / rear-O2 detections (§3.3), a
/// catalyst DTC (§2.2) or a catalyst / exhaust-gas-sensor monitor not complete (§3.3 item 6), ranked by the strongest evidence; by default only vehicles registered
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
    sql: include_str!("lists/gas_twc_suspects.sql"),
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
    let lake = super::Lake::open(dir).await?;
    let df = plan(&lake, list, params).await?;
    lake.collect(df).await
}

/// Plans `list` over an open lake with parameters already bound by [`bind`] (values only,
/// never spliced: see [`expand`]); the caller may filter or limit the frame before running it
/// (the server's district filter and row limit).
pub async fn plan(
    lake: &super::Lake,
    list: &ListDef,
    params: ParamValues,
) -> anyhow::Result<datafusion::prelude::DataFrame> {
    let sql = expand(list.sql, &params)?;
    Ok(lake.sql(&sql).await?.with_param_values(params)?)
}

/// The SQL a list runs: `{fragment}` becomes a shared fragment ([`FRAGMENTS`]), and
/// `{NAME_ms_minus_1}` (window frame sizes, which SQL cannot take as placeholders) the bound
/// integer parameter NAME (days) as milliseconds minus one: an `i64` parsed by [`bind`],
/// formatted back, so nothing but digits reaches the SQL. Errors for an unknown `{…}`, when
/// NAME is not an integer parameter, or when the product overflows.
pub fn expand(sql: &str, params: &ParamValues) -> Result<String> {
    let mut out = sql.to_string();
    while let Some(a) = out.find('{') {
        let Some(len) = out[a..].find('}') else { break };
        let token = out[a + 1..a + len].to_string();
        if let Some((_, frag)) = FRAGMENTS.iter().find(|(n, _)| *n == token) {
            out.replace_range(a..a + len + 1, frag);
            continue;
        }
        let Some(name) = token.strip_suffix("_ms_minus_1") else {
            return Err(DataFusionError::Plan(format!(
                "list SQL: unknown {{{token}}}"
            )));
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
