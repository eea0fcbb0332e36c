//! One RSD pass from decoded fields to an `rsd_passes` row: plate normalisation, registry
//! join, reduction (§4.2–§4.4), validity and verdict (§1.4–§1.5), China III sighting.

use datafusion::arrow::array::StringBuilder;

use crate::decode::fields::rsd as F;
use crate::decode::record::{FieldError, Record};
use crate::decode::text::SourcePos;
use crate::detect::{china3, rsd_limits};
use crate::enrich::plate_id::PlateId;
use crate::enrich::reduce::{self, Ratios};
use crate::enrich::registry::Registry;
use crate::limits::LimitSet;
use crate::model::{Fuel, FuelClass, PlateColor};
use crate::schema::{DetectionRow, RsdPassesBuilder};

/// Row flags (the `flags` column).
pub mod flag {
    /// HC/CO2 missing: taken as 0 in the carbon balance (`remote-sensing.md §4.3`).
    pub const HC_RATIO_MISSING_AS_ZERO: &str = "hc_ratio_missing_as_zero";
    /// No fuel on the pass or in the registry: MF fell back to the default.
    pub const FUEL_UNKNOWN_DEFAULT_MF: &str = "fuel_unknown_default_mf";
    /// Plate colour text not understood: `plate_color` NULL, text in `plate_color_raw`
    /// (see `enrich::plate_id::flag` for every plate flag).
    pub const PLATE_COLOR_UNKNOWN: &str = crate::enrich::plate_id::flag::PLATE_COLOR_UNKNOWN;
    /// Pass fuel and registry fuel disagree (the registry wins for limits).
    pub const FUEL_MISMATCH_REGISTRY: &str = "fuel_mismatch_registry";
    /// Plate read with no vehicle in the registry.
    pub const PLATE_NOT_REGISTERED: &str = "plate_not_registered";
}

/// What the pipeline needs to process passes.
pub struct RsdContext<'a> {
    pub limits: &'a LimitSet,
    pub limit_set_id: &'a str,
    pub registry: &'a Registry,
}

/// Processes one decoded record: appends one row to `out` and pushes a China III detection
/// to `detections` when it applies. Errors (unknown fuel) leave `out` untouched.
pub fn append_pass(
    rec: &Record,
    pos: &SourcePos<'_>,
    ctx: &RsdContext<'_>,
    out: &mut RsdPassesBuilder,
    detections: &mut Vec<DetectionRow>,
) -> Result<(), FieldError> {
    // Parse everything that can fail first.
    let pass_fuel = match rec.str(F::FUEL) {
        Some(s) => Some(Fuel::parse(s).map_err(|m| FieldError::field("fuel", m))?),
        None => None,
    };
    let mut id = PlateId::from_fields(
        rec.str(F::PLATE),
        rec.plate_placeholder,
        rec.str(F::PLATE_COLOR),
    )?;
    let joined = id.join(ctx.registry);
    let vehicle = joined.map(|j| j.vehicle);
    let plate_color = id.color;
    let mut flags: Vec<&'static str> = std::mem::take(&mut id.flags);
    let reg_fuel = vehicle.and_then(|v| v.fuel);
    let (fuel, fuel_source) = match (reg_fuel, pass_fuel) {
        (Some(r), p) => {
            if p.is_some_and(|p| p.class() != r.class()) {
                flags.push(flag::FUEL_MISMATCH_REGISTRY);
            }
            (Some(r), Some("registry"))
        }
        (None, Some(p)) => (Some(p), Some("pass")),
        (None, None) => (None, None),
    };

    let l = ctx.limits;
    let ratios = Ratios {
        co: rec.num(F::CO_CO2),
        hc: rec.num(F::HC_CO2),
        no: rec.num(F::NO_CO2),
        no2: rec.num(F::NO2_CO2),
        nh3: rec.num(F::NH3_CO2),
    };
    if ratios.co.is_some() && ratios.hc.is_none() {
        flags.push(flag::HC_RATIO_MISSING_AS_ZERO);
    }
    if fuel.is_none() && ratios.co.is_some() {
        flags.push(flag::FUEL_UNKNOWN_DEFAULT_MF);
    }
    let conc = ratios
        .co
        .map(|q| reduce::concentrations(q, ratios.hc, ratios.no));
    let ef = reduce::emission_factors(&ratios, l.mf_for(fuel), &l.reduction);
    let speed = rec.num(F::SPEED_KMH);
    let accel = rec.num(F::ACCEL_MPS2);
    let grade = rec.num(F::ROAD_GRADE_PCT);
    let vsp = match (speed, accel) {
        (Some(v), Some(a)) => Some(reduce::vsp_kw_t(v, a, grade, &l.vsp)),
        _ => None,
    };

    let class = fuel.map(Fuel::class);
    let pre_reason = match class {
        None => Some((
            rsd_limits::code::FUEL_UNKNOWN,
            "fuel unknown (not on the pass, not in the registry)",
        )),
        Some(FuelClass::None) => Some((
            rsd_limits::code::ELECTRIC,
            "electric vehicle: no tailpipe to judge",
        )),
        _ => None,
    };
    let windows = class
        .filter(|c| *c != FuelClass::None)
        .and_then(|c| l.windows_for(c));
    let validity = rsd_limits::validity(
        if pre_reason.is_some() { None } else { windows },
        [
            speed,
            accel,
            vsp,
            rec.num(F::WIND_MPS),
            rec.num(F::AMBIENT_TEMP_C),
            rec.num(F::CO2_PLUME),
        ],
        pre_reason,
    );
    let measured = rsd_limits::Measured {
        opacity_pct: rec.num(F::OPACITY_PCT),
        ringelmann: rec.num(F::RINGELMANN),
        no_ppm: conc.and_then(|c| c.no_ppm),
        co_pct: conc.map(|c| c.co_pct),
        hc_ppm: conc.and_then(|c| c.hc_ppm),
    };
    let verdict = rsd_limits::verdict(
        validity.valid,
        class.and_then(|c| l.limits_for(c)),
        &measured,
    );

    // Append the row.
    let pass_id = rec.str(F::PASS_ID).unwrap_or_default();
    let at = rec.time(F::PASSED_AT).unwrap_or_default();
    out.pass_id.append_value(pass_id);
    out.passed_at.append_value(at);
    let s = &mut out.strs;
    s[0].append_option(rec.str(F::SITE_ID));
    s[1].append_option(rec.str(F::INSTRUMENT));
    s[2].append_option(id.plate());
    s[3].append_option(plate_color.map(PlateColor::as_str));
    s[4].append_value(id.status().as_str());
    s[5].append_option(fuel.map(Fuel::as_str));
    s[6].append_option(fuel_source);
    s[7].append_option(rec.str(F::VEHICLE_CATEGORY));
    s[8].append_option(vehicle.and_then(|v| v.vin.as_deref()));
    let nums = [
        rec.num(F::LANE),
        speed,
        accel,
        grade,
        ratios.co,
        ratios.hc,
        ratios.no,
        ratios.no2,
        ratios.nh3,
        rec.num(F::OPACITY_PCT),
        rec.num(F::RINGELMANN),
        rec.num(F::CO2_PLUME),
        rec.num(F::WIND_MPS),
        rec.num(F::AMBIENT_TEMP_C),
        rec.num(F::HUMIDITY_PCT),
        rec.num(F::PRESSURE_KPA),
        rec.num(F::LON),
        rec.num(F::LAT),
        rec.num(F::PLATE_CONFIDENCE),
        conc.map(|c| c.co2_pct),
        conc.map(|c| c.co_pct),
        conc.and_then(|c| c.hc_ppm),
        conc.and_then(|c| c.no_ppm),
        ef.co_g_per_kg,
        ef.hc_g_per_kg,
        ef.no_g_per_kg,
        ef.no2_g_per_kg,
        ef.nh3_g_per_kg,
        ef.nox_g_per_kg,
        vsp,
        rec.num(F::VSP_REPORTED),
    ];
    for (b, v) in out.nums.iter_mut().zip(nums) {
        b.append_option(v);
    }
    for (b, st) in out.status.iter_mut().zip(validity.statuses) {
        b.append_value(st.as_str());
    }
    out.valid.append_value(validity.valid);
    // Why the verdict is `invalid`: the validity reasons, or, for a valid pass, that no
    // limit applies or nothing limited was measured.
    let (invalid_code, invalid_detail) = match (&validity.invalid, verdict.unjudged) {
        (Some(i), _) => (Some(i.code), Some(i.detail.clone())),
        (None, Some(c)) => (
            Some(c),
            Some(match c {
                rsd_limits::code::NO_LIMITS => format!(
                    "limit set {1} has no limits for the fuel class of {0}",
                    fuel.map(Fuel::as_str).unwrap_or("?"),
                    ctx.limit_set_id
                ),
                _ => "none of the limited pollutants measured".to_string(),
            }),
        ),
        (None, None) => (None, None),
    };
    out.invalid_code.append_option(invalid_code);
    out.invalid_detail.append_option(invalid_detail);
    out.verdict.append_value(verdict.verdict);
    append_list(&mut out.exceeded, &verdict.exceeded);
    out.limit_set.append_value(ctx.limit_set_id);
    append_list(&mut out.flags, &flags);
    out.source_file.append_value(pos.file);
    out.source_offset.append_value(pos.offset);
    out.plate_cols[0].append_option(id.raw.as_deref());
    out.plate_cols[1].append_option(id.class_str());
    out.plate_cols[2].append_option(id.color_raw.as_deref());
    out.row_done();

    if let Some(j) = joined {
        let s = china3::Sighting {
            stream: "rsd",
            source_key: pass_id,
            at_ms: at,
            site_id: rec.str(F::SITE_ID),
            lon_deg: rec.num(F::LON),
            lat_deg: rec.num(F::LAT),
            colour_confirmed: j.colour_confirmed,
            read_plate_color: plate_color.map(PlateColor::as_str),
        };
        crate::detect::check_record(
            &l.rules,
            &crate::detect::RecordInput::Sighting {
                vehicle: j.vehicle,
                sighting: &s,
            },
            ctx.limit_set_id,
            detections,
        );
    }
    Ok(())
}

fn append_list(b: &mut datafusion::arrow::array::ListBuilder<StringBuilder>, items: &[&str]) {
    for i in items {
        b.values().append_value(i);
    }
    b.append(true);
}
