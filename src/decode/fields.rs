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

/// Numeric columns of `obd_samples` (and fields of the `obd_sample` input), in order.
/// Units in the names; scales of HJ 1239 frames in `obd-remote-monitoring.md §1.7`.
pub const OBD_NUMS: [&str; 23] = [
    "speed_kmh",
    "barometric_kpa",
    "net_torque_pct",
    "friction_torque_pct",
    "engine_rpm",
    "fuel_flow_lph",
    "scr_up_nox_ppm",
    "scr_down_nox_ppm",
    "reagent_pct",
    "intake_air_kgph",
    "scr_in_temp_c",
    "scr_out_temp_c",
    "dpf_dp_kpa",
    "coolant_c",
    "tank_pct",
    "upstream_lambda",
    "rear_o2_v",
    "twc_down_nox_ppm",
    "twc_temp_c",
    "commanded_lambda",
    "lon_deg",
    "lat_deg",
    "odometer_km",
];

/// Index of each name in [`OBD_NUMS`].
pub mod obd {
    pub const SPEED_KMH: usize = 0;
    pub const NET_TORQUE_PCT: usize = 2;
    pub const FRICTION_TORQUE_PCT: usize = 3;
    pub const ENGINE_RPM: usize = 4;
    pub const FUEL_FLOW_LPH: usize = 5;
    pub const COOLANT_C: usize = 13;
    pub const UPSTREAM_LAMBDA: usize = 15;
    pub const REAR_O2_V: usize = 16;
    pub const COMMANDED_LAMBDA: usize = 19;
    pub const LON: usize = 20;
    pub const LAT: usize = 21;
    /// Record slots: `vin`, `sampled_at`, `info_type`, then the numbers.
    pub const SLOT_VIN: usize = 0;
    pub const SLOT_SAMPLED_AT: usize = 1;
    pub const SLOT_INFO_TYPE: usize = 2;
    pub const SLOT_FIRST_NUM: usize = 3;
}

/// `obd_sample` input fields (NDJSON, or CSV logs through a mapping).
pub const OBD_FIELDS: &[FieldSpec] = &[
    // Required, but a log without a VIN column takes it from `--vin` (checked on use).
    f("vin", Kind::Str, false),
    f("sampled_at", Kind::Time, true),
    f("info_type", Kind::Num, false),
    f(OBD_NUMS[0], Kind::Num, false),
    f(OBD_NUMS[1], Kind::Num, false),
    f(OBD_NUMS[2], Kind::Num, false),
    f(OBD_NUMS[3], Kind::Num, false),
    f(OBD_NUMS[4], Kind::Num, false),
    f(OBD_NUMS[5], Kind::Num, false),
    f(OBD_NUMS[6], Kind::Num, false),
    f(OBD_NUMS[7], Kind::Num, false),
    f(OBD_NUMS[8], Kind::Num, false),
    f(OBD_NUMS[9], Kind::Num, false),
    f(OBD_NUMS[10], Kind::Num, false),
    f(OBD_NUMS[11], Kind::Num, false),
    f(OBD_NUMS[12], Kind::Num, false),
    f(OBD_NUMS[13], Kind::Num, false),
    f(OBD_NUMS[14], Kind::Num, false),
    f(OBD_NUMS[15], Kind::Num, false),
    f(OBD_NUMS[16], Kind::Num, false),
    f(OBD_NUMS[17], Kind::Num, false),
    f(OBD_NUMS[18], Kind::Num, false),
    f(OBD_NUMS[19], Kind::Num, false),
    f(OBD_NUMS[20], Kind::Num, false),
    f(OBD_NUMS[21], Kind::Num, false),
    f(OBD_NUMS[22], Kind::Num, false),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn check(schema: &str, specs: &[FieldSpec]) {
        let v: serde_json::Value = serde_json::from_str(schema).unwrap();
        let props: Vec<&str> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut names: Vec<&str> = specs.iter().map(|s| s.name).collect();
        let mut p = props.clone();
        p.sort_unstable();
        names.sort_unstable();
        assert_eq!(p, names);
        let req: Vec<&str> = v["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        let want: Vec<&str> = specs
            .iter()
            .filter(|s| s.required)
            .map(|s| s.name)
            .collect();
        assert_eq!(req, want);
    }

    #[test]
    fn json_schemas_match_field_tables() {
        check(
            include_str!("../../schemas/rsd_pass.schema.json"),
            RSD_FIELDS,
        );
        check(
            include_str!("../../schemas/vehicle.schema.json"),
            VEHICLE_FIELDS,
        );
        check(
            include_str!("../../schemas/plate_read.schema.json"),
            PLATE_READ_FIELDS,
        );
        check(
            include_str!("../../schemas/obd_sample.schema.json"),
            OBD_FIELDS,
        );
        for (i, n) in OBD_NUMS.iter().enumerate() {
            assert_eq!(OBD_FIELDS[obd::SLOT_FIRST_NUM + i].name, *n);
        }
    }
}
