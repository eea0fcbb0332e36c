//! Canonical field tables of the input streams (`rsd`, `vehicles`, `plates`). The JSON
//! Schemas in `schemas/` describe the same fields; a test keeps the two in step.

use super::record::{FieldSpec, Kind};

const fn f(name: &'static str, kind: Kind, required: bool) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required,
    }
}

/// `rsd_pass` input fields. Ratios are molar ratios to CO2 (mol/mol); HC as propane (NDIR).
pub const RSD_FIELDS: &[FieldSpec] = &[
    f("pass_id", Kind::Id, true),
    f("passed_at", Kind::Time, true),
    f("site_id", Kind::Str, false),
    f("lane", Kind::Num, false),
    f("instrument", Kind::Str, false),
    f("plate", Kind::Str, false),
    f("plate_color", Kind::Str, false),
    f("fuel", Kind::Str, false),
    f("vehicle_category", Kind::Str, false),
    f("speed_kmh", Kind::Num, false),
    f("accel_mps2", Kind::Num, false),
    f("road_grade_pct", Kind::Num, false),
    f("co_co2_ratio", Kind::Num, false),
    f("hc_co2_ratio", Kind::Num, false),
    f("no_co2_ratio", Kind::Num, false),
    f("no2_co2_ratio", Kind::Num, false),
    f("nh3_co2_ratio", Kind::Num, false),
    f("opacity_pct", Kind::Num, false),
    f("ringelmann", Kind::Num, false),
    f("co2_plume_pct_m", Kind::Num, false),
    f("wind_mps", Kind::Num, false),
    f("ambient_temp_c", Kind::Num, false),
    f("humidity_pct", Kind::Num, false),
    f("pressure_kpa", Kind::Num, false),
    f("vsp_reported_kw_t", Kind::Num, false),
    f("lon_deg", Kind::Num, false),
    f("lat_deg", Kind::Num, false),
    f("plate_confidence_pct", Kind::Num, false),
];

/// Slots of [`RSD_FIELDS`].
pub mod rsd {
    pub const PASS_ID: usize = 0;
    pub const PASSED_AT: usize = 1;
    pub const SITE_ID: usize = 2;
    pub const LANE: usize = 3;
    pub const INSTRUMENT: usize = 4;
    pub const PLATE: usize = 5;
    pub const PLATE_COLOR: usize = 6;
    pub const FUEL: usize = 7;
    pub const VEHICLE_CATEGORY: usize = 8;
    pub const SPEED_KMH: usize = 9;
    pub const ACCEL_MPS2: usize = 10;
    pub const ROAD_GRADE_PCT: usize = 11;
    pub const CO_CO2: usize = 12;
    pub const HC_CO2: usize = 13;
    pub const NO_CO2: usize = 14;
    pub const NO2_CO2: usize = 15;
    pub const NH3_CO2: usize = 16;
    pub const OPACITY_PCT: usize = 17;
    pub const RINGELMANN: usize = 18;
    pub const CO2_PLUME: usize = 19;
    pub const WIND_MPS: usize = 20;
    pub const AMBIENT_TEMP_C: usize = 21;
    pub const HUMIDITY_PCT: usize = 22;
    pub const PRESSURE_KPA: usize = 23;
    pub const VSP_REPORTED: usize = 24;
    pub const LON: usize = 25;
    pub const LAT: usize = 26;
    pub const PLATE_CONFIDENCE: usize = 27;
}

/// `vehicles` (registry export) input fields.
pub const VEHICLE_FIELDS: &[FieldSpec] = &[
    f("plate", Kind::Str, true),
    f("plate_color", Kind::Str, false),
    f("vin", Kind::Str, false),
    f("fuel", Kind::Str, false),
    f("emission_standard", Kind::Str, false),
    f("vehicle_type", Kind::Str, false),
    f("registered_on", Kind::Date, false),
];

/// Slots of [`VEHICLE_FIELDS`].
pub mod veh {
    pub const PLATE: usize = 0;
    pub const PLATE_COLOR: usize = 1;
    pub const VIN: usize = 2;
    pub const FUEL: usize = 3;
    pub const EMISSION_STANDARD: usize = 4;
    pub const VEHICLE_TYPE: usize = 5;
    pub const REGISTERED_ON: usize = 6;
}

/// `plate_read` (ANPR camera) input fields.
pub const PLATE_READ_FIELDS: &[FieldSpec] = &[
    f("read_id", Kind::Id, true),
    f("read_at", Kind::Time, true),
    f("site_id", Kind::Str, false),
    f("plate", Kind::Str, true),
    f("plate_color", Kind::Str, false),
    f("confidence_pct", Kind::Num, false),
    f("lon_deg", Kind::Num, false),
    f("lat_deg", Kind::Num, false),
];

/// Slots of [`PLATE_READ_FIELDS`].
pub mod pr {
    pub const READ_ID: usize = 0;
    pub const READ_AT: usize = 1;
    pub const SITE_ID: usize = 2;
    pub const PLATE: usize = 3;
    pub const PLATE_COLOR: usize = 4;
    pub const CONFIDENCE: usize = 5;
    pub const LON: usize = 6;
    pub const LAT: usize = 7;
}
