//! One registry row to a `vehicles` row: plate normalised and classified by the one plate
//! normaliser (non-standard plates are flagged, not rejected, `remote-sensing.md §6`), fuel
//! and emission stage parsed. A registry row keys a vehicle by plate + colour, so a row whose
//! plate is a "no plate" placeholder, or whose colour is not understood, is quarantined.

use crate::decode::fields::veh as F;
use crate::decode::record::{FieldError, Record};
use crate::enrich::plate_id::{PlateId, flag};
use crate::enrich::plate_reads::append_list;
use crate::enrich::registry::VehicleInfo;
use crate::model::{EmissionStandard, Fuel, PlateColor, PlateStatus};
use crate::schema::VehiclesBuilder;

/// A parsed registry row: the vehicle and its plate as received.
#[derive(Clone, Debug)]
pub struct VehicleRow {
    pub vehicle: VehicleInfo,
    pub plate: PlateId,
}

/// Parses one registry record. Errors name the field (unknown fuel, unknown emission stage,
/// unknown plate colour, no plate, control characters inside the plate).
pub fn parse_vehicle(rec: &Record) -> Result<VehicleRow, FieldError> {
    let id = PlateId::from_fields(
        rec.str(F::PLATE),
        rec.plate_placeholder,
        rec.str(F::PLATE_COLOR),
    )?;
    let plate = match (id.status(), id.plate()) {
        (PlateStatus::NoPlate, _) | (_, None) => {
            return Err(FieldError::field(
                "plate",
                format!(
                    "no plate ('{}' is a \"no plate\" placeholder): a registry row needs a plate",
                    id.raw.as_deref().unwrap_or_default()
                ),
            ));
        }
        (_, Some(p)) => p.to_string(),
    };
    if id.flags.contains(&flag::PLATE_COLOR_UNKNOWN) {
        return Err(FieldError::field(
            "plate_color",
            format!(
                "unknown plate colour '{}' (map source codes with a mapping's values table)",
                id.color_raw.as_deref().unwrap_or_default()
            ),
        ));
    }
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
    Ok(VehicleRow {
        vehicle: VehicleInfo {
            plate,
            plate_color: id.color,
            vin: rec.str(F::VIN).map(|v| v.trim().to_ascii_uppercase()),
            fuel,
            emission_standard,
            emission_standard_raw: raw_es.map(str::to_string),
            vehicle_type: rec
                .str(F::VEHICLE_TYPE)
                .map(|t| t.trim().to_ascii_uppercase()),
            registered_on: rec.date(F::REGISTERED_ON),
        },
        plate: id,
    })
}

/// Appends a parsed vehicle.
pub fn append_vehicle(row: &VehicleRow, out: &mut VehiclesBuilder) {
    let v = &row.vehicle;
    out.plate.append_value(&v.plate);
    out.plate_color
        .append_option(v.plate_color.map(PlateColor::as_str));
    out.plate_status.append_value(row.plate.status().as_str());
    out.vin.append_option(v.vin.as_deref());
    out.fuel.append_option(v.fuel.map(Fuel::as_str));
    out.emission_standard
        .append_option(v.emission_standard.map(i64::from));
    out.emission_standard_raw
        .append_option(v.emission_standard_raw.as_deref());
    out.vehicle_type.append_option(v.vehicle_type.as_deref());
    out.registered_on.append_option(v.registered_on);
    out.plate_cols[0].append_option(row.plate.raw.as_deref());
    out.plate_cols[1].append_option(row.plate.class_str());
    out.plate_cols[2].append_option(row.plate.color_raw.as_deref());
    append_list(&mut out.flags, &row.plate.flags);
}
