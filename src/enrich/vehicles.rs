//! One registry row to a `vehicles` row: plate normalised and classified (non-standard plates
//! are flagged, not rejected, `remote-sensing.md §6`), fuel and emission stage parsed.

use crate::decode::fields::veh as F;
use crate::decode::record::{FieldError, Record};
use crate::enrich::registry::VehicleInfo;
use crate::model::{EmissionStandard, Fuel, Plate, PlateColor};
use crate::schema::VehiclesBuilder;

/// Parses one registry record. Errors name the field (unknown fuel, unknown emission stage,
/// unknown plate colour, empty plate).
pub fn parse_vehicle(rec: &Record) -> Result<VehicleInfo, FieldError> {
    let plate = rec
        .str(F::PLATE)
        .and_then(Plate::normalise)
        .ok_or_else(|| FieldError::field("plate", "empty plate"))?;
    let plate_color = match rec.str(F::PLATE_COLOR) {
        Some(c) => Some(PlateColor::parse(c).ok_or_else(|| {
            FieldError::field(
                "plate_color",
                format!(
                    "unknown plate colour '{c}' (map source codes with a mapping's values table)"
                ),
            )
        })?),
        None => None,
    };
    let fuel = match rec.str(F::FUEL) {
        Some(f) => Some(Fuel::parse(f).map_err(|m| FieldError::field("fuel", m))?),
        None => None,
    };
    let raw_es = rec.str(F::EMISSION_STANDARD);
    let emission_standard = match raw_es {
        Some(s) => Some(
            EmissionStandard::parse(s)
                .ok_or_else(|| {
                    FieldError::field("emission_standard", format!("unknown emission stage '{s}'"))
                })?
                .0,
        ),
        None => None,
    };
    Ok(VehicleInfo {
        plate: plate.0,
        plate_color,
        vin: rec.str(F::VIN).map(|v| v.trim().to_ascii_uppercase()),
        fuel,
        emission_standard,
        emission_standard_raw: raw_es.map(str::to_string),
        vehicle_type: rec
            .str(F::VEHICLE_TYPE)
            .map(|t| t.trim().to_ascii_uppercase()),
        registered_on: rec.date(F::REGISTERED_ON),
    })
}

/// Appends a parsed vehicle.
pub fn append_vehicle(v: &VehicleInfo, out: &mut VehiclesBuilder) {
    out.plate.append_value(&v.plate);
    out.plate_color
        .append_option(v.plate_color.map(PlateColor::as_str));
    out.plate_status
        .append_value(Plate(v.plate.clone()).status().as_str());
    out.vin.append_option(v.vin.as_deref());
    out.fuel.append_option(v.fuel.map(Fuel::as_str));
    out.emission_standard
        .append_option(v.emission_standard.map(i64::from));
    out.emission_standard_raw
        .append_option(v.emission_standard_raw.as_deref());
    out.vehicle_type.append_option(v.vehicle_type.as_deref());
    out.registered_on.append_option(v.registered_on);
}
